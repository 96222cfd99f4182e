"""Orphaned runs (ORPHAN_TIMEOUT): a run the application marked PARSING whose message was
lost before any worker received it (Celery publishes without confirms) is found by the
sweeper once the mark is older than ORPHAN_TIMEOUT and no execution of its task id ever
started, and parse_run(run_id) is published again under the run's own task id.

A lost message is simulated by producer.create_run + mark_parsing without publishing;
the mark is aged by moving started_at/last_heartbeat back. Every test asserts the final
rows, the messages and the executions, never how fast the worker is.
"""

import re
import time
import uuid

import faults
import producer
from conftest import PALOALTO
from faults import assert_parsed_once, create_run, enqueue, run_row, wait_final, wait_until

INPUTS = ("inputs.conf", (PALOALTO / "default" / "inputs.conf").read_bytes())
INPUTS_EXPECTED = {"inputs": 3}
RECOVERED = r"run %d: its message never reached a worker; parse_run re-published as task (\S+)"


def lost_message_run(env, task_id="auto", age_s=3600):
    """A run the application marked PARSING (as after parse_run.delay()) whose message never
    arrived, marked age_s seconds ago. task_id None: a PARSING run without a task id.
    Returns (run_id, task_id)."""
    run_id = create_run(env, INPUTS, "SINGLE_CONF")
    tid = str(uuid.uuid4()) if task_id == "auto" else task_id
    pconn = env.producer_conn()
    producer.mark_parsing(pconn, run_id, tid)
    pconn.close()
    if age_s:
        age(env, run_id, age_s)
    return run_id, tid


def age(env, run_id, seconds):
    env.scalar("UPDATE ingestion_runs SET started_at = now() - make_interval(secs => %s),"
               " last_heartbeat = now() - make_interval(secs => %s) WHERE id = %s RETURNING id",
               (seconds, seconds, run_id))


def recoveries(workers_, run_id):
    """The task ids the workers' logs say run_id was re-published as."""
    return [t for w in workers_ for t in re.findall(RECOVERED % run_id, w.log())]


def executions(env, task_id):
    """cworker_tasks.attempts for the task id (0: never started)."""
    n = env.scalar("SELECT attempts FROM cworker_tasks WHERE task_id = %s", (task_id,))
    return n or 0


def received(workers_, task_id):
    return sum(faults.log_count(w, r"%s[^\n]*received" % re.escape(task_id)) for w in workers_)


def retire(env, run_id):
    """A run this test leaves PARSING is closed, so no later test's sweeper recovers it."""
    faults.db_retry(env, lambda e: e.scalar(
        "UPDATE ingestion_runs SET status = 'FAILED', error_message = 'test cleanup'"
        " WHERE id = %s AND status = 'PARSING' RETURNING id", (run_id,)))


# ============================================================================ recovery


def test_orphan_is_republished_and_completes_once(env, workers):
    """Two orphans marked an hour ago, one with the application's task id and one with
    none: each is re-published once and ends COMPLETE with one set of rows and
    retry_count 0; the first under its own task id, the second under a new UUID that the
    claim stored on the run."""
    w = workers.start(VISIBILITY_TIMEOUT=1, ORPHAN_TIMEOUT=3)
    with_id, tid = lost_message_run(env)
    without_id, _ = lost_message_run(env, task_id=None)
    assert run_row(env, without_id)["task_id"] is None

    run = wait_final(env, with_id, timeout=30, workers=[w])
    assert run["status"] == "COMPLETE", "%r\n%s" % (run, w.tail())
    run = assert_parsed_once(env, with_id, INPUTS_EXPECTED, retry_count=0)
    assert run["task_id"] == tid
    assert recoveries([w], with_id) == [tid], w.tail()
    assert executions(env, tid) == 1

    run = wait_final(env, without_id, timeout=30, workers=[w])
    run = assert_parsed_once(env, without_id, INPUTS_EXPECTED, retry_count=0)
    new_id = run["task_id"]
    assert new_id is not None and str(uuid.UUID(new_id)) == new_id, run
    assert recoveries([w], without_id) == [new_id], w.tail()
    assert executions(env, new_id) == 1
    assert received([w], new_id) == 1

    faults.wait_queue_settled(env, workers.queue)
    time.sleep(2.5)  # more sweeps: a COMPLETE run is never re-published
    assert len(recoveries([w], with_id)) == 1 and len(recoveries([w], without_id)) == 1
    assert received([w], tid) == 1
    assert env.ready(workers.queue + ".dead") == 0


def test_recent_or_backlogged_runs_are_left_alone(env, workers, celery):
    """ORPHAN_TIMEOUT=8 with sweeps every second: a run marked PARSING just now without a
    message, and a run whose message waits in a queue no worker consumes yet, are left
    alone (no re-publish, nothing executed) while younger than ORPHAN_TIMEOUT. The
    backlogged message then runs once when a consumer comes; the message-less run is
    recovered once ORPHAN_TIMEOUT has passed (which shows the sweeper was looking)."""
    backlog = faults.unique_queue("orphans", "backlog")
    workers.extra_queues.append(backlog)
    w = workers.start(VISIBILITY_TIMEOUT=1, ORPHAN_TIMEOUT=8)
    t0 = time.time()
    recent_id, recent_tid = lost_message_run(env, age_s=0)
    backlogged_id = create_run(env, INPUTS, "SINGLE_CONF")
    backlogged_tid = enqueue(env, celery, backlogged_id, backlog)
    while time.time() < t0 + 5:  # several sweeps, all younger than ORPHAN_TIMEOUT
        for run_id in (recent_id, backlogged_id):
            r = run_row(env, run_id)
            assert (r["status"], r["retry_count"], r["error_message"]) == \
                ("PARSING", 0, None), r
        time.sleep(0.25)
    assert recoveries([w], recent_id) == [] and recoveries([w], backlogged_id) == []
    assert executions(env, recent_tid) == 0 and executions(env, backlogged_tid) == 0
    assert env.ctl_counts(backlog) == (1, 0)
    assert env.ctl_counts(workers.queue) == (0, 0)

    w2 = workers.start(queue=backlog, VISIBILITY_TIMEOUT=1, ORPHAN_TIMEOUT=8)
    wait_final(env, backlogged_id, workers=[w, w2])
    assert_parsed_once(env, backlogged_id, INPUTS_EXPECTED, retry_count=0)

    run = wait_final(env, recent_id, timeout=30, workers=[w, w2])
    assert run["completed_at"].timestamp() >= t0 + 8, "recovered before ORPHAN_TIMEOUT"
    assert_parsed_once(env, recent_id, INPUTS_EXPECTED, retry_count=0)
    assert len(recoveries([w, w2], recent_id)) == 1
    assert recoveries([w, w2], backlogged_id) == []
    assert executions(env, backlogged_tid) == 1 and received([w, w2], backlogged_tid) == 1


def test_two_workers_sweeping_at_once_republish_each_orphan_once(env, workers):
    """Two workers on one queue, both sweeping every second: each of five orphans is
    claimed by exactly one sweeper (one INFO line across both logs), its message is
    received once and executed once."""
    runs = [lost_message_run(env) for _ in range(4)] + [lost_message_run(env, task_id=None)]
    w1 = workers.start(wait=False, VISIBILITY_TIMEOUT=1, ORPHAN_TIMEOUT=5)
    w2 = workers.start(wait=False, VISIBILITY_TIMEOUT=1, ORPHAN_TIMEOUT=5)
    w1.wait_ready()
    w2.wait_ready()
    both = [w1, w2]
    faults.wait_all_final(env, [r for r, _ in runs], timeout=60, workers=both)
    faults.wait_queue_settled(env, workers.queue)
    time.sleep(2.5)  # more sweeps by both: nothing more is published
    for run_id, tid in runs:
        run = assert_parsed_once(env, run_id, INPUTS_EXPECTED, retry_count=0)
        tid = tid or run["task_id"]
        assert recoveries(both, run_id) == [tid], (run_id, recoveries(both, run_id))
        assert received(both, tid) == 1, (run_id, tid)
        assert executions(env, tid) == 1, (run_id, tid)
    total = sum(len(re.findall(RECOVERED % r, w.log())) for w in both for r, _ in runs)
    assert total == len(runs)
    assert env.ctl_counts(workers.queue) == (0, 0)


def test_late_original_message_after_recovery_changes_nothing(env, workers, celery):
    """The lost message was only late: it arrives after the re-published task completed
    the run. It is a duplicate of the same task id and finds the run COMPLETE: the row
    and the rows of the run stay exactly as they were, nothing is dead-lettered."""
    w = workers.start(VISIBILITY_TIMEOUT=1, ORPHAN_TIMEOUT=3)
    run_id, tid = lost_message_run(env)
    wait_final(env, run_id, timeout=30, workers=[w])
    before = assert_parsed_once(env, run_id, INPUTS_EXPECTED, retry_count=0)
    counts = faults.row_counts(env, run_id)
    stanza_ids = env.rows("SELECT id FROM stanzas WHERE run_id = %s ORDER BY id", (run_id,))
    assert recoveries([w], run_id) == [tid]

    producer.publish_raw(env.broker_url, workers.queue, producer.celery_v2_body([run_id]),
                         headers=producer.celery_v2_headers(tid, args=[run_id]),
                         properties={"correlation_id": tid, "reply_to": celery.thread_oid})
    wait_until(lambda: received([w], tid) >= 2, 20, "late original received\n" + w.tail())
    faults.wait_queue_settled(env, workers.queue)
    time.sleep(1.5)  # and a few sweeps
    assert run_row(env, run_id) == before
    assert faults.row_counts(env, run_id) == counts
    assert env.rows("SELECT id FROM stanzas WHERE run_id = %s ORDER BY id",
                    (run_id,)) == stanza_ids
    assert recoveries([w], run_id) == [tid]
    assert env.ready(workers.queue + ".dead") == 0


def test_orphan_timeout_below_visibility_timeout_is_refused(env, tmp_path):
    """An explicit ORPHAN_TIMEOUT below VISIBILITY_TIMEOUT would duplicate messages that
    merely wait in a backlog: refused at start (exit 2) naming both variables."""
    import os
    import subprocess

    e = dict(os.environ, CELERY_BROKER_URL=env.broker_url, DATABASE_URL=env.database_url,
             VISIBILITY_TIMEOUT="600", ORPHAN_TIMEOUT="300")
    p = subprocess.run([env.bin, "run"], env=e, capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    out = p.stdout + p.stderr
    assert "ORPHAN_TIMEOUT" in out and "VISIBILITY_TIMEOUT" in out, out
