"""A sick broker connection: frozen both ways without closing (through a loopback TCP
proxy, tests/py/tcp_proxy.py) and a resource alarm (connection.blocked). The supervisor
loop must keep running through both: it notices the frozen connection by its heartbeats,
keeps reading executor results and enforcing time limits, reconnects when the connection
thaws, pauses new work while the broker blocks publishing, and every run ends once."""

import re
import subprocess
import time
import urllib.parse

import pytest

import faults
from faults import (assert_parsed_once, pal_expected, pal_upload, run_locks, submit,
                    wait_final, wait_until)
from tcp_proxy import TcpProxy

@pytest.fixture
def proxy(env):
    u = urllib.parse.urlsplit(env.broker_url)
    p = TcpProxy((u.hostname, u.port))
    yield p
    p.close()


def through(env, proxy):
    u = urllib.parse.urlsplit(env.broker_url)
    netloc = "%s:%s@127.0.0.1:%d" % (u.username, u.password, proxy.port)
    return urllib.parse.urlunsplit((u.scheme, netloc, u.path, u.query, u.fragment))


def wait_log(worker, pattern, timeout, what):
    rx = re.compile(pattern)
    return wait_until(lambda: rx.search(worker.log()), timeout, what + "\n" + worker.tail(60))


@pytest.mark.expect_log_errors(r"broker connection lost", r"exceeded its hard time limit")
def test_frozen_connection_is_noticed_and_the_loop_keeps_working(env, workers, celery, proxy):
    """Heartbeat 2 s. Two runs execute when the proxy freezes: one ordinary (about 5 s),
    one with a 3 s hard time limit. Within two heartbeat intervals (plus a poll) the
    supervisor gives the connection up; while it is still frozen the ordinary run's result
    is read and the hard limit is enforced. After the thaw the worker reconnects through
    the proxy, the redeliveries settle both runs, and a run published then completes."""
    w = workers.start(CELERY_BROKER_URL=through(env, proxy), BROKER_HEARTBEAT=2,
                      CONCURRENCY=2, CWORKER_DEBUG_ENTRY_DELAY_MS=300)
    slow, _ = submit(env, celery, pal_upload(), workers.queue)
    limited, _ = submit(env, celery, pal_upload(), workers.queue, time_limit=3)
    wait_until(lambda: run_locks(env) >= 2, 30, "both runs executing")
    proxy.freeze()
    frozen_at = time.monotonic()
    wait_log(w, r"broker connection lost", 15, "the frozen connection noticed")
    noticed = time.monotonic() - frozen_at
    assert noticed < 2 * 2 + 3, "noticed after %.1f s" % noticed
    wait_log(w, r"exceeded its hard time limit", 20, "the hard limit enforced while frozen")
    wait_log(w, r"after its connection was lost", 20, "a result read while frozen")
    assert w.proc.poll() is None
    proxy.thaw()
    run = wait_final(env, slow, timeout=120, workers=[w])
    assert run["status"] == "COMPLETE", "%r\n%s" % (run, w.tail(80))
    assert_parsed_once(env, slow, pal_expected(), retry_count=0)
    run = wait_final(env, limited, timeout=120, workers=[w])
    assert run["status"] == "FAILED", "%r\n%s" % (run, w.tail(80))
    assert run["error_message"] == "Task exceeded time limit", run
    assert faults.row_counts(env, limited)["stanzas"] == 0
    after, _ = submit(env, celery, pal_upload(), workers.queue)
    run = wait_final(env, after, timeout=60, workers=[w])
    assert run["status"] == "COMPLETE", "%r\n%s" % (run, w.tail(80))
    faults.wait_queue_settled(env, workers.queue, timeout=60)
    assert w.log().count("connected to the broker") >= 2


def set_watermark(env, value):
    subprocess.run(env.rabbitmqctl + ["set_vm_memory_high_watermark", str(value)], check=True,
                   capture_output=True)


def test_resource_alarm_pauses_work_and_loses_nothing(env, workers, celery):
    """A memory alarm blocks publishing: the worker says so, starts no new task while it
    lasts (the run executing when it began still finishes: acks are not publishes), and
    when it clears the waiting runs execute, including one whose transient failure needs a
    retry published. Nothing is lost or run twice."""
    w = workers.start(CONCURRENCY=1, CWORKER_DEBUG_ENTRY_DELAY_MS=200)
    first, _ = submit(env, celery, pal_upload(), workers.queue)
    waiting, _ = submit(env, celery, pal_upload(), workers.queue)
    name, data = pal_upload()
    missing = faults.create_run(env, {"name": name, "data": data, "store": False})
    faults.enqueue(env, celery, missing, workers.queue)
    wait_until(lambda: run_locks(env) >= 1, 30, "the first run executing")
    try:
        set_watermark(env, 0.0001)
        wait_log(w, r"the broker blocks publishing", 20, "the block noticed")
        run = wait_final(env, first, timeout=60, workers=[w])
        assert run["status"] == "COMPLETE", "%r\n%s" % (run, w.tail(60))
        time.sleep(3)
        assert faults.run_row(env, waiting)["status"] == "PARSING"
        assert run_locks(env) == 0, "a task started while the broker blocked publishing"
        assert w.proc.poll() is None
    finally:
        set_watermark(env, 0.4)
    wait_log(w, r"the broker unblocked publishing", 30, "the unblock noticed")
    run = wait_final(env, waiting, timeout=60, workers=[w])
    assert run["status"] == "COMPLETE", "%r\n%s" % (run, w.tail(60))
    run = wait_final(env, missing, timeout=90, workers=[w])
    assert run["status"] == "FAILED", run
    assert run["retry_count"] == 3, run
    faults.wait_queue_settled(env, workers.queue, timeout=60)
    for r in (first, waiting):
        assert_parsed_once(env, r, pal_expected(), retry_count=0)
