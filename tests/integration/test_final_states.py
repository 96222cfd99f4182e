"""Final states are final, and the database layer keeps its secrets (DESIGN 1.5, 1.8).

A run that reached COMPLETE stays COMPLETE whatever happens to the executor that wrote it
afterwards: killed before its result reached the supervisor (the delivery is redelivered),
or killed for its hard time limit (the next executor records the forced failure, which
must then be a no-op). The test-only knob CWORKER_DEBUG_AFTER_COMMIT_DELAY_MS makes the
executor pause between the run's COMMIT and its report, so a test can strike in between.

Also: a malformed DATABASE_URL never prints its password, and a run id beyond the
integer column's range is a permanent failure (acked once), never a requeue loop.
"""

import os
import signal
import subprocess
import time
import uuid

import pytest

import faults
import producer
from faults import children, run_row, submit, wait_until

# The paloalto upload (the tq and workers fixtures are conftest's).
from test_failures import INPUTS, pal_expected, pal_upload  # noqa: F401


class StatusWatch:
    """Every status and error_message the run shows, sampled as fast as the test polls."""

    def __init__(self, env, run_id):
        self.env, self.run_id, self.seen = env, run_id, []

    def sample(self):
        r = run_row(self.env, self.run_id)
        self.seen.append((r["status"], r["error_message"]))
        return r

    def wait_status(self, status, timeout):
        return wait_until(lambda: (lambda r: r if r["status"] == status else None)(
            self.sample()), timeout, "run %s %s" % (self.run_id, status), interval=0.02)

    def watch(self, seconds):
        deadline = time.time() + seconds
        while time.time() < deadline:
            self.sample()
            time.sleep(0.05)

    def assert_never_failed(self):
        bad = [s for s in self.seen if s[0] == "FAILED" or s[1] is not None]
        assert not bad, "the run showed %r" % bad[:3]


def assert_complete_intact(env, run_id, task_id, expected):
    run = faults.assert_parsed_once(env, run_id, expected)
    assert run["error_message"] is None and run["error_traceback"] is None, run
    assert run["task_id"] == task_id, run
    rec = env.row("SELECT status, error_message FROM cworker_tasks WHERE task_id = %s",
                  (task_id,))
    assert rec == {"status": "COMPLETE", "error_message": None}, rec
    return run


@pytest.mark.expect_log_errors(r"executor \d+ died of signal 9")
def test_executor_killed_after_its_commit_leaves_the_run_complete(env, workers, celery):
    """SIGKILL the executor in the pause after its COMMIT: the supervisor redelivers, the
    redelivery finds the run COMPLETE and acks; the stanza rows are those of the one run
    and no failure is ever written."""
    w = workers.start(CONCURRENCY=1, CWORKER_DEBUG_AFTER_COMMIT_DELAY_MS=5000)
    # Every connection names itself (db/pg.h): the executor's is cworker/executor.
    wait_until(lambda: env.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname ="
                                  " current_database() AND application_name ="
                                  " 'cworker/executor'"), 10, "the executor's connection")
    run_id, task_id = submit(env, celery, pal_upload(), workers.queue)
    watch = StatusWatch(env, run_id)
    committed = watch.wait_status("COMPLETE", 60)
    (pid,) = children(w.proc.pid)
    faults.kill(pid, signal.SIGKILL)
    assert faults.wait_gone([pid], 10)
    # The kill came before the report: the supervisor saw a death, not a result.
    wait_until(lambda: faults.log_count(w, r"died of signal 9 [^\n]*running task %s" % task_id), 10,
               "the supervisor noticed the death")
    faults.wait_queue_settled(env, workers.queue, timeout=60)
    watch.watch(1.0)
    watch.assert_never_failed()
    expected = pal_expected()
    run = assert_complete_intact(env, run_id, task_id, expected)
    assert run["completed_at"] == committed["completed_at"], "the run was written again"
    assert faults.row_counts(env, run_id)["stanzas"] == sum(expected.values()) == 181
    assert faults.log_count(w, r"%s[^\n]*received" % task_id) == 2, w.tail()
    assert env.ready(workers.queue + ".dead") == 0


@pytest.mark.expect_log_errors(r"exceeded its hard time limit")
def test_hard_time_limit_after_the_commit_does_not_fail_the_run(env, workers, celery):
    """TIME_LIMIT shorter than the pause after the COMMIT: the supervisor kills the
    executor for its hard limit and has the next one record `hard time limit exceeded`;
    the run is no longer PARSING for the task, so that write is a no-op (skipped) and the
    run stays COMPLETE."""
    w = workers.start(CONCURRENCY=1, TIME_LIMIT=3, SOFT_TIME_LIMIT=3,
                      CWORKER_DEBUG_AFTER_COMMIT_DELAY_MS=20000)
    run_id, task_id = submit(env, celery, INPUTS, workers.queue, run_type="SINGLE_CONF")
    watch = StatusWatch(env, run_id)
    committed = watch.wait_status("COMPLETE", 30)
    wait_until(lambda: faults.log_count(w, r"task %s exceeded its hard time limit" % task_id),
               15, "the hard time limit kill")
    wait_until(lambda: faults.log_count(w, r"run %d is COMPLETE under task %s, no longer "
                                           r"PARSING for this task: its failure is not "
                                           r"recorded" % (run_id, task_id)),
               15, "the forced failure skipped")
    faults.wait_queue_settled(env, workers.queue, timeout=30)
    watch.watch(1.0)
    watch.assert_never_failed()
    run = assert_complete_intact(env, run_id, task_id, {"inputs": 3})
    assert run["completed_at"] == committed["completed_at"]
    assert env.ready(workers.queue + ".dead") == 0


def _parse_again(env, celery, run_id, queue, publish=True):
    """A new parse of the run under a new task id, PARSING committed BEFORE the publish (so
    the worker never sees the run's earlier state); returns the task id."""
    task_id = str(uuid.uuid4())
    pconn = env.producer_conn()
    try:
        producer.mark_parsing(pconn, run_id, task_id)
    finally:
        pconn.close()
    if publish:
        producer.send_parse_run(celery, run_id, queue=queue, task_id=task_id)
    return task_id


def _complete_under(env, run_id, task_id, timeout):
    wait_until(lambda: (lambda r: r["status"] == "COMPLETE" and r["task_id"] == task_id)(
        run_row(env, run_id)), timeout, "run %s COMPLETE under %s" % (run_id, task_id))


def test_reparse_of_a_complete_run_replaces_its_rows(env, workers, celery):
    """A COMPLETE run parsed again under a new task id: the claim sees the run's earlier
    rows, and the new result transaction removes them before writing its own: one set of
    rows (stanzas and typed), under the new task."""
    workers.start(CONCURRENCY=1)
    run_id, first = submit(env, celery, pal_upload(), workers.queue)
    _complete_under(env, run_id, first, 60)
    second = _parse_again(env, celery, run_id, workers.queue)
    _complete_under(env, run_id, second, 60)
    assert_complete_intact(env, run_id, second, pal_expected())
    faults.wait_queue_settled(env, workers.queue, timeout=30)


def test_result_of_a_run_that_is_no_longer_ours_is_rolled_back(env, workers, celery):
    """While a (slowed) parse runs, the application starts a new parse of the run: the
    first execution's COMPLETE, sent with its COMMIT in one round trip, finds the run no
    longer PARSING for its task, so the COMMIT is skipped and its streamed rows roll back;
    it is reported skipped. The new task then parses the run once."""
    w = workers.start(CONCURRENCY=1, CWORKER_DEBUG_ENTRY_DELAY_MS=200)
    run_id, first = submit(env, celery, pal_upload(), workers.queue)
    wait_until(lambda: faults.run_locks(env) >= 1, 30, "the first parse running")
    second = _parse_again(env, celery, run_id, workers.queue, publish=False)
    wait_until(lambda: faults.log_count(
        w, r"run %d is PARSING under task %s, no longer PARSING for this task: its result is"
           r" not recorded" % (run_id, second)), 30, "the first result dropped")
    assert faults.row_counts(env, run_id) == {t: 0 for t in ("stanzas",) + faults.TYPED}
    assert run_row(env, run_id)["status"] == "PARSING"
    producer.send_parse_run(celery, run_id, queue=workers.queue, task_id=second)
    _complete_under(env, run_id, second, 60)
    assert_complete_intact(env, run_id, second, pal_expected())
    faults.wait_queue_settled(env, workers.queue, timeout=30)


def test_run_id_beyond_int32_is_dead_lettered_once_not_requeued(env, workers, celery):
    """parse_run(2**31 + 7): no ingestion_runs row can hold it; the delivery is settled
    once, dead-lettered with the reason, not redelivered in a loop."""
    w = workers.start(CONCURRENCY=1)
    big = 2 ** 31 + 7
    task_id = producer.send_parse_run(celery, big, queue=workers.queue)
    faults.wait_queue_settled(env, workers.queue, timeout=30)
    time.sleep(1.0)
    assert faults.log_count(w, r"%s[^\n]*received" % task_id) == 1, w.tail()
    assert faults.log_count(w, r"Run %d not found" % big) >= 1, w.tail()
    assert env.ctl_counts(workers.queue) == (0, 0)
    dead = env.get_message(workers.queue + ".dead", timeout=10)
    assert dead is not None and dead["headers"].get("id") == task_id
    assert faults.text(dead["headers"]["x-cworker-reason"]) == \
        "Run %d not found (run ids are 1 to 2147483647)" % big


SECRET = "s3cret%zz"


@pytest.mark.parametrize("args", [("migrate",), ("status", "1"), ("run",)],
                         ids=["migrate", "status", "run"])
def test_malformed_database_url_never_prints_its_password(env, args, tmp_path):
    """libpq would echo `invalid percent-encoded token: "s3cret%zz"`; cworker refuses the
    URL at start (exit 2, config.c) and names the part, not the text."""
    url = "postgresql://cworker:%s@127.0.0.1:5442/%s" % (SECRET, env.dbname)
    cenv = dict(os.environ, DATABASE_URL=url, CELERY_BROKER_URL=env.broker_url,
                CELERY_QUEUES="cwit.final.never.%s" % uuid.uuid4().hex[:8])
    r = subprocess.run([env.bin] + list(args), env=cenv, capture_output=True, text=True,
                       timeout=30, cwd=str(tmp_path))
    out = r.stdout + r.stderr
    assert "s3cret" not in out, out
    assert r.returncode == 2, (r.returncode, out)
    assert "DATABASE_URL" in r.stderr and "in the password" in r.stderr, r.stderr
