"""The delivery lifecycle under faults that once confused it (issue: one delivery
lifecycle): the consumer connection closed by the broker while deliveries are pending and
running, and messages larger than one supervisor<->executor datagram.

Asserted from the outside: rows in PostgreSQL, queue counts in RabbitMQ, and the worker's
own log lines (which execution ended how), never timings of the work itself.
"""

import re
import subprocess
import uuid

import pytest

import faults
import producer
from faults import (assert_parsed_once, create_run, pal_expected, pal_upload, run_locks,
                    submit, wait_final, wait_until)

# The executor's closing line for one execution: "task <name> <outcome> in <s> s".
OUTCOME_RE = re.compile(r"task=(?P<tid>[0-9a-f-]{36}) .*task \S+ (?P<outcome>succeeded|failed|"
                        r"retry|skipped|requeue) in ")
ORPHAN_RE = re.compile(r"task=(?P<tid>[0-9a-f-]{36}) .*after its connection was lost")


def consumer_connection(env, queue):
    """The pid of the connection consuming `queue` (rabbitmqctl's view)."""
    out = subprocess.run(env.rabbitmqctl + ["-q", "list_consumers", "queue_name", "channel_pid"],
                         check=True, capture_output=True, text=True).stdout
    channels = [l.split("\t")[1] for l in out.splitlines() if l.split("\t")[0] == queue]
    assert channels, "nobody consumes %s:\n%s" % (queue, out)
    out = subprocess.run(env.rabbitmqctl + ["-q", "list_channels", "pid", "connection"],
                         check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        pid, conn = line.split("\t")
        if pid == channels[0]:
            return conn
    raise AssertionError("no connection for channel %s:\n%s" % (channels[0], out))


def executions(log):
    """task id -> list of outcomes of its executions, in log order."""
    seen = {}
    for m in OUTCOME_RE.finditer(log):
        seen.setdefault(m.group("tid"), []).append(m.group("outcome"))
    return seen


@pytest.mark.expect_log_errors(r"broker connection lost")
def test_consumer_connection_closed_with_deliveries_pending_and_running(env, workers, celery):
    """Concurrency 2, prefetch 4: two runs execute and two wait in the supervisor when the
    broker closes the consumer connection. The waiting ones are given up at once and never
    executed from the dead connection; the running ones finish, but nothing is acked or
    published for them; their redeliveries wait until they are done, then find the runs
    COMPLETE. Every run ends exactly once, no retry is consumed, nothing is left queued."""
    w = workers.start(CONCURRENCY=2, PREFETCH_MULTIPLIER=2, CWORKER_DEBUG_ENTRY_DELAY_MS=150)
    runs = [submit(env, celery, pal_upload(), workers.queue) for _ in range(6)]
    wait_until(lambda: run_locks(env) >= 2, 30, "two runs executing")
    conn = consumer_connection(env, workers.queue)
    subprocess.run(env.rabbitmqctl + ["close_connection", conn, "test: consumer closed"],
                   check=True, capture_output=True)
    for run_id, _ in runs:
        run = wait_final(env, run_id, timeout=120, workers=[w])
        assert run["status"] == "COMPLETE", "%r\n%s" % (run, w.tail(80))
        assert_parsed_once(env, run_id, pal_expected(), retry_count=0)
    faults.wait_queue_settled(env, workers.queue)
    assert env.ready(workers.queue + ".dead") == 0
    log = w.log()
    lost_at = log.index("broker connection lost")
    # Reconnected at once, not after a backoff or a closing handshake that never ends.
    assert log.count("connected to the broker") >= 2, w.tail(80)
    orphans = {m.group("tid") for m in ORPHAN_RE.finditer(log)}
    assert 1 <= len(orphans) <= 2, "runs running at the loss: %r\n%s" % (orphans, w.tail(80))
    runs_by_task = executions(log)
    for run_id, tid in runs:
        outcomes = runs_by_task.get(tid, [])
        assert set(outcomes) <= {"succeeded", "skipped"}, (tid, outcomes, w.tail(80))
        # An orphan's redelivery runs after it and finds the run COMPLETE; any other run
        # executes exactly once (a delivery of the dead connection never starts).
        assert len(outcomes) == (2 if tid in orphans else 1), (tid, outcomes, w.tail(80))
    for tid in orphans:
        orphan_line = [m.start() for m in ORPHAN_RE.finditer(log) if m.group("tid") == tid][0]
        assert orphan_line > lost_at
        ends = [m.start() for m in OUTCOME_RE.finditer(log) if m.group("tid") == tid]
        assert ends[0] < orphan_line < ends[1], (tid, w.tail(80))
    assert w.proc.poll() is None, "the worker died:\n%s" % w.tail(80)


@pytest.mark.parametrize("size", [300_000, 5_000_000], ids=["300kB", "5MB"])
def test_message_larger_than_a_channel_datagram_runs(env, workers, size):
    """A parse_run whose body carries megabytes (a keyword argument parse_run does not take)
    is handed to the executor whole (in a memfd): the executor sees the argument and fails
    the run as Python would; the ordinary run published after it completes, in the same
    executor."""
    w = workers.start(CONCURRENCY=1)
    run_id = create_run(env, pal_upload())
    tid = str(uuid.uuid4())
    kwargs = {"note": "x" * size}
    headers = producer.celery_v2_headers(tid, args=[run_id], kwargsrepr="{'note': '...'}")
    producer.publish_raw(env.broker_url, workers.queue, producer.celery_v2_body([run_id], kwargs),
                         headers=headers, properties={"correlation_id": tid})
    pconn = env.producer_conn()
    producer.mark_parsing(pconn, run_id, tid)
    pconn.close()
    next_run = create_run(env, pal_upload())
    ntid = str(uuid.uuid4())
    producer.publish_raw(env.broker_url, workers.queue, producer.celery_v2_body([next_run]),
                         headers=producer.celery_v2_headers(ntid, args=[next_run]),
                         properties={"correlation_id": ntid})
    pconn = env.producer_conn()
    producer.mark_parsing(pconn, next_run, ntid)
    pconn.close()
    run = wait_final(env, run_id, timeout=60, workers=[w])
    assert run["status"] == "FAILED", "%r\n%s" % (run, w.tail(60))
    assert run["error_message"] == ("Permanent error: parse_run() got an unexpected keyword "
                                    "argument 'note'"), run
    assert run["retry_count"] == 0
    run = wait_final(env, next_run, timeout=60, workers=[w])
    assert run["status"] == "COMPLETE", "%r\n%s" % (run, w.tail(60))
    assert_parsed_once(env, next_run, pal_expected(), retry_count=0)
    faults.wait_queue_settled(env, workers.queue)
    assert env.ready(workers.queue + ".dead") == 0
    assert len(faults.children(w.proc.pid)) == 1, "the executor was replaced:\n%s" % w.tail(60)
