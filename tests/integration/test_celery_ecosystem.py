"""The Celery ecosystem sees cworker (issue 5), checked with the real Python Celery 5.2
client against the real binary:

- results: `parse_run.delay(run_id).get()` with result_backend="rpc://" returns the task's
  result, raises the failure of a failed run, raises celery.exceptions.NotRegistered for an
  unknown task name, passes through RETRY for a retried run, and raises TaskRevokedError
  for a revoked task id (celery_rpc.h);
- events: app.events.Receiver sees cworker's worker-heartbeat events, and once task events
  are enabled (`enable_events`) task-received -> task-started -> task-succeeded for a run;
  worker-offline when it stops (celery_events.h);
- remote control: `celery inspect ping|active|stats|registered|revoked`, `celery control
  revoke|shutdown`, an unknown command, node selection by name (celery_control.h).

The worker of this module has its own node name (CWORKER_NODENAME) and queue, so other
workers on the same broker never interfere; commands name it with -d. Celery's own
behaviour is the reference throughout: what a Celery 5.2.6 worker answered on this machine
(captured for celery_control.h) is what cworker must answer — including `control shutdown`,
which a Celery worker never replies to ("No nodes replied", exit 69) before it exits.
"""

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

import producer
from celery_cli_app import TASK_NAME, make_app
from conftest import REPO, paloalto_upload, start_worker, wait_for_final_status

PYTHON = "/usr/bin/python3"
HOST = socket.gethostname()
CONF = ("inputs.conf", b"[monitor:///var/log/app.log]\nindex = main\nsourcetype = app\n\n"
                       b"[script://./bin/check.sh]\ndisabled = 1\ninterval = 60\n")
RETRY_DELAY = 2  # seconds: the module worker's RETRY_DELAYS


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def eq():
    return "cwit.ecosystem.%s" % uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def node():
    return "cwit-%s@%s" % (uuid.uuid4().hex[:8], HOST)


def _queues(q):
    return (q, q + ".dead", "%s.retry.%ds" % (q, RETRY_DELAY))


@pytest.fixture(scope="module")
def eco_worker(env, eq, node, tmp_path_factory):
    """cworker run on queue eq as node `node`; runs are slowed (150 ms per .conf entry) so
    that `inspect active` can catch one."""
    log = tmp_path_factory.mktemp("eco") / "worker.log"
    w = start_worker(env, eq, log, {"CWORKER_NODENAME": node, "RETRY_DELAYS": str(RETRY_DELAY),
                                    "RETRY_JITTER": "0", "CONCURRENCY": "2",
                                    "CWORKER_DEBUG_ENTRY_DELAY_MS": "400"})
    yield w
    died = not w.alive()
    rc = w.stop()
    env.delete_queues(*_queues(eq))
    w.check_log()
    assert not died, "worker died (exit %s) during the module:\n%s" % (rc, w.tail())
    assert rc == 0, "worker exited %s after SIGTERM:\n%s" % (rc, w.tail())


@pytest.fixture(autouse=True)
def _eco_worker_healthy(request):
    yield
    if "eco_worker" in request.fixturenames:
        w = request.getfixturevalue("eco_worker")
        w.check_log()
        assert w.alive(), "worker died (exit %s):\n%s" % (w.proc.returncode, w.tail())


@pytest.fixture(scope="module")
def client(env, eq):
    """(app, parse_run) of the application's configuration with result_backend rpc://."""
    app, parse_run = make_app(env.broker_url, eq)
    yield app, parse_run
    app.close()


# ----------------------------------------------------------------------------- helpers


def create_run(env, uploads, run_type="SINGLE_CONF"):
    conn = env.producer_conn()
    try:
        run_id, _ = producer.create_run(conn, uploads, str(env.storage), run_type=run_type)
    finally:
        conn.close()
    return run_id


def delay(env, parse_run, run_id, **options):
    """parse_run.delay(run_id), then the application's commit of PARSING (CONTRACT 1.5)."""
    res = parse_run.apply_async(args=[run_id], **options)
    conn = env.producer_conn()
    try:
        producer.mark_parsing(conn, run_id, res.id)
    finally:
        conn.close()
    return res


def celery_cli(env, eq, *args, timeout=90):
    """`python3 -m celery -A celery_cli_app <args>` as an operator runs it."""
    penv = dict(os.environ, CELERY_BROKER_URL=env.broker_url, CWORKER_TEST_QUEUE=eq,
                PYTHONPATH=str(REPO / "tests" / "py"))
    return subprocess.run([PYTHON, "-m", "celery", "--no-color", "-A", "celery_cli_app"]
                          + list(args), env=penv, capture_output=True, text=True,
                          timeout=timeout, cwd=str(REPO))


def cli_json(proc):
    """The JSON document `celery inspect ... --json` printed (its last non-empty line)."""
    assert proc.returncode == 0, "rc %s\nstdout: %s\nstderr: %s" % (
        proc.returncode, proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    return json.loads(lines[-1])


def wait_pingable(app, node, worker, timeout=30.0):
    """Until `node` answers a ping: its pidbox queue is consumed."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not worker.alive():
            pytest.fail("worker exited %s:\n%s" % (worker.proc.returncode, worker.tail()))
        replies = app.control.ping(destination=[node], timeout=1.0)
        if any(node in r for r in replies):
            return
    pytest.fail("%s never answered a ping in %ss:\n%s" % (node, timeout, worker.tail()))


class EventLog:
    """app.events.Receiver in a thread (as `celery events`/Flower run it), keeping every
    event it sees."""

    def __init__(self, app):
        self.app = app
        self.events = []
        self.error = None
        self._cond = threading.Condition()
        self._receiver = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _on_event(self, event):
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def _run(self):
        try:
            with self.app.connection_for_read() as conn:
                self._receiver = self.app.events.Receiver(conn, handlers={"*": self._on_event})
                self._receiver.capture(limit=None, timeout=None, wakeup=False)
        except Exception as e:  # reported by wait_for
            self.error = e

    def wait_for(self, pred, timeout, what):
        deadline = time.time() + timeout
        with self._cond:
            while True:
                for e in self.events:
                    if pred(e):
                        return e
                left = deadline - time.time()
                if left <= 0 or self.error is not None:
                    pytest.fail("no %s within %ss (receiver error: %r); saw %r" % (
                        what, timeout, self.error,
                        [(e.get("type"), e.get("hostname")) for e in self.events][-20:]))
                self._cond.wait(min(left, 0.5))

    def of(self, **fields):
        with self._cond:
            return [e for e in self.events if all(e.get(k) == v for k, v in fields.items())]

    def close(self):
        if self._receiver is not None:
            self._receiver.should_stop = True
        self._thread.join(10)


@pytest.fixture
def events(client):
    log = EventLog(client[0])
    yield log
    log.close()


def broadcast(app, node, command, **arguments):
    """The reply of `node` to a remote control command (app.control.broadcast)."""
    replies = app.control.broadcast(command, arguments=arguments, destination=[node],
                                    reply=True, timeout=10)
    assert len(replies) == 1 and node in replies[0], replies
    return replies[0][node]


def run_row(env, run_id):
    return env.row("SELECT * FROM ingestion_runs WHERE id = %s", (run_id,))


# ============================================================================ results


def test_get_returns_the_result_of_a_good_run(env, eco_worker, client):
    """AsyncResult.get() returns parse_run's result dict (CONTRACT 1.5 step 7)."""
    _, parse_run = client
    run_id = create_run(env, [CONF])
    res = delay(env, parse_run, run_id)
    out = res.get(timeout=60)
    assert isinstance(out, dict), out
    for key in ("run_id", "status", "files_parsed", "stanzas_created", "typed_projections",
                "duration_seconds", "parse_errors"):
        assert key in out, out
    assert out["run_id"] == run_id and out["status"] == "completed", out
    assert out["files_parsed"] == 1 and out["stanzas_created"] == 2, out
    assert res.state == "SUCCESS" and res.successful()
    assert res.date_done is not None
    assert wait_for_final_status(env, run_id, worker=eco_worker)["status"] == "COMPLETE"


def test_get_raises_for_a_failed_run(env, eco_worker, client):
    """A permanent failure reaches the client as an exception: cworker's PermanentError
    with the message, state FAILURE, and the context chain as the traceback."""
    _, parse_run = client
    run_id = create_run(env, [])  # no files: permanent
    res = delay(env, parse_run, run_id)
    with pytest.raises(Exception) as ei:
        res.get(timeout=60)
    assert type(ei.value).__name__ == "PermanentError", repr(ei.value)
    assert "No files found for run %d" % run_id in str(ei.value), str(ei.value)
    assert res.state == "FAILURE" and res.failed()
    assert res.traceback, "no traceback in the FAILURE result"
    row = wait_for_final_status(env, run_id, worker=eco_worker)
    assert row["status"] == "FAILED", row


def test_get_raises_not_registered_for_an_unknown_task(env, eco_worker, client, eq):
    """Celery's consumer answers an unknown task name with NotRegistered(name); the
    message itself still goes to Q.dead (CONTRACT 1.2)."""
    from celery.exceptions import NotRegistered

    app, _ = client
    name = "app.worker.tasks.no_such_task"
    res = app.send_task(name, args=[1], queue=eq)
    with pytest.raises(NotRegistered) as ei:
        res.get(timeout=30)
    assert name in str(ei.value), str(ei.value)
    assert res.state == "FAILURE"
    dead = env.get_message(eq + ".dead", timeout=15)
    assert dead is not None, "unknown task not dead-lettered:\n" + eco_worker.tail()
    assert dead["headers"].get("task") == name, dead["headers"]


def test_retried_run_reports_retry_then_its_result(env, eco_worker, client):
    """A transient failure (the blob is not in storage yet) is a RETRY state with the
    cause (cworker's TransientError) while the retry waits; once the blob is there the
    retry succeeds and get() returns the result."""
    _, parse_run = client
    name, data = CONF
    run_id = create_run(env, [{"name": name, "data": data, "store": False}])
    blob = Path(env.storage) / ("runs/%d/%s" % (run_id, name))
    seen = []

    def on_message(meta):
        seen.append(meta)
        if meta["status"] == "RETRY" and not blob.exists():
            blob.parent.mkdir(parents=True, exist_ok=True)
            blob.write_bytes(data)

    res = delay(env, parse_run, run_id)
    out = res.get(timeout=60 + 3 * RETRY_DELAY, on_message=on_message)
    statuses = [m["status"] for m in seen]
    assert "RETRY" in statuses, statuses
    assert statuses[-1] == "SUCCESS", statuses
    retry = next(m for m in seen if m["status"] == "RETRY")
    assert retry["task_id"] == res.id
    assert retry["result"]["exc_type"] == "TransientError", retry
    assert retry["result"]["exc_message"] and retry["result"]["exc_message"][0], retry
    assert out["status"] == "completed" and out["run_id"] == run_id, out
    row = wait_for_final_status(env, run_id, worker=eco_worker)
    assert row["status"] == "COMPLETE" and row["retry_count"] == 1, row


# ============================================================================ events


def test_events_heartbeats_and_a_runs_task_events(env, eco_worker, client, node, events):
    """Heartbeats always (as a Celery worker sends them, every 2 s); after enable_events,
    task-received -> task-started -> task-succeeded for one run, which Celery's events
    State understands."""
    app, parse_run = client
    hb = events.wait_for(lambda e: e.get("type") == "worker-heartbeat"
                         and e.get("hostname") == node, 15, "worker-heartbeat from " + node)
    assert hb["sw_ident"] == "cworker" and hb["sw_sys"] == "Linux", hb
    assert hb["freq"] == 2.0 and isinstance(hb["processed"], int) and hb["active"] >= 0, hb
    assert len(hb["loadavg"]) == 3 and hb["pid"] == eco_worker.proc.pid, hb
    assert isinstance(hb["clock"], int) and isinstance(hb["timestamp"], float), hb
    # cworker's own extra field (the dashboard's Workers table): Celery's Receiver keeps it.
    assert hb["concurrency"] == 2, hb

    wait_pingable(app, node, eco_worker)
    assert broadcast(app, node, "enable_events")["ok"] in (
        "task events enabled", "task events already enabled")
    run_id = create_run(env, [CONF])
    res = delay(env, parse_run, run_id)
    events.wait_for(lambda e: e.get("type") == "task-succeeded" and e.get("uuid") == res.id,
                    60, "task-succeeded for " + res.id)
    mine = [e for e in events.of(uuid=res.id)]
    assert [e["type"] for e in mine] == ["task-received", "task-started", "task-succeeded"], \
        [e["type"] for e in mine]
    received, started, succeeded = mine
    assert all(e["hostname"] == node for e in mine), mine
    assert received["name"] == TASK_NAME and received["args"] == "[%d]" % run_id, received
    assert received["kwargs"] == "{}" and received["retries"] == 0, received
    assert received["root_id"] == res.id and received["eta"] is None, received
    assert "'status': 'completed'" in succeeded["result"], succeeded  # a Python repr
    assert succeeded["runtime"] >= 0, succeeded
    assert received["clock"] < started["clock"] < succeeded["clock"], mine
    assert res.get(timeout=30)["status"] == "completed"

    state = app.events.State()
    for e in events.of(hostname=node):
        state.event(dict(e))
    assert state.workers[node].alive
    task = state.tasks[res.id]
    assert task.state == "SUCCESS" and task.name == TASK_NAME, task

    assert broadcast(app, node, "disable_events") == {"ok": "task events disabled"}


# ============================================================================ remote control


def test_cli_inspect_ping_registered_stats(env, eco_worker, client, node, eq):
    app, _ = client
    wait_pingable(app, node, eco_worker)
    p = celery_cli(env, eq, "inspect", "ping", "-d", node, "-t", "10")
    assert p.returncode == 0, p.stdout + p.stderr
    assert re.search(r"->\s+%s: OK\n\s+pong" % re.escape(node), p.stdout), p.stdout
    assert "1 node online." in p.stdout, p.stdout

    p = celery_cli(env, eq, "inspect", "registered", "-d", node, "-t", "10")
    assert p.returncode == 0, p.stdout + p.stderr
    assert re.search(r"->\s+%s: OK\n\s+\* %s\n" % (re.escape(node), re.escape(TASK_NAME)),
                     p.stdout), p.stdout

    stats = cli_json(celery_cli(env, eq, "inspect", "stats", "-d", node, "-t", "10", "--json"))
    s = stats[node]
    assert s["pid"] == eco_worker.proc.pid, s
    assert s["pool"]["max-concurrency"] == 2, s
    assert len(s["pool"]["processes"]) == 2 and s["pid"] not in s["pool"]["processes"], s
    assert isinstance(s["total"], dict) and isinstance(s["uptime"], int), s
    assert s["prefetch_count"] >= 2 and int(s["clock"]) > 0, s
    assert s["broker"]["hostname"] in ("127.0.0.1", "localhost"), s


def test_cli_inspect_without_destination_includes_us(env, eco_worker, client, node, eq):
    """No -d: every node on the broker answers; ours is among them."""
    wait_pingable(client[0], node, eco_worker)
    p = celery_cli(env, eq, "inspect", "ping", "-t", "3")
    assert p.returncode == 0, p.stdout + p.stderr
    assert re.search(r"->\s+%s: OK" % re.escape(node), p.stdout), p.stdout


def test_cli_inspect_active_shows_a_running_task(env, eco_worker, client, node, eq):
    """While a run executes, `inspect active` lists it as Celery's Request.info() does."""
    app, parse_run = client
    wait_pingable(app, node, eco_worker)
    run_id = create_run(env, [paloalto_upload("tar.gz")], run_type="APP_BUNDLE")
    t0 = time.time()
    res = delay(env, parse_run, run_id)
    info = None
    deadline = time.time() + 30
    while info is None and time.time() < deadline and not res.ready():
        replies = app.control.inspect(destination=[node], timeout=5).active() or {}
        info = next((t for t in replies.get(node, []) if t["id"] == res.id), None)
    assert info is not None, "task never seen active:\n" + eco_worker.tail()
    assert info["name"] == TASK_NAME and info["type"] == TASK_NAME, info
    assert info["args"] == [run_id] and info["kwargs"] == {}, info
    assert info["hostname"] == node and info["acknowledged"] is False, info
    assert isinstance(info["worker_pid"], int) and info["worker_pid"] != eco_worker.proc.pid
    assert t0 - 5 <= info["time_start"] <= time.time() + 5, info
    assert info["delivery_info"]["routing_key"] == eq, info

    p = celery_cli(env, eq, "inspect", "active", "-d", node, "-t", "10")
    assert p.returncode == 0, p.stdout + p.stderr
    if not res.ready():  # the CLI takes a moment to start; the run may be over by then
        assert res.id in p.stdout and TASK_NAME in p.stdout, p.stdout
    assert res.get(timeout=60)["status"] == "completed"
    p = celery_cli(env, eq, "inspect", "active", "-d", node, "-t", "10")
    assert re.search(r"->\s+%s: OK\n\s+- empty -" % re.escape(node), p.stdout), p.stdout


def test_cli_control_revoke_skips_the_task(env, eco_worker, client, node, eq):
    """`celery control revoke <id>` answers as Celery does; the id is listed by `inspect
    revoked`; a message with that id is then not run: acked, REVOKED for the client,
    the run untouched."""
    from celery.exceptions import TaskRevokedError

    app, parse_run = client
    wait_pingable(app, node, eco_worker)
    task_id = str(uuid.uuid4())
    p = celery_cli(env, eq, "control", "revoke", task_id, "-d", node, "-t", "10")
    assert p.returncode == 0, p.stdout + p.stderr
    assert re.search(r"->\s+%s: OK\n\s+tasks %s flagged as revoked" % (
        re.escape(node), task_id), p.stdout), p.stdout
    revoked = cli_json(celery_cli(env, eq, "inspect", "revoked", "-d", node, "-t", "10",
                                  "--json"))
    assert task_id in revoked[node], revoked

    run_id = create_run(env, [CONF])
    res = parse_run.apply_async(args=[run_id], task_id=task_id)
    with pytest.raises(TaskRevokedError):
        res.get(timeout=30)
    assert res.state == "REVOKED"
    time.sleep(1)
    assert run_row(env, run_id)["status"] == "STORED"
    assert env.ctl_counts(eq) == (0, 0)


def test_unknown_command_gets_celerys_error(env, eco_worker, client, node):
    app, _ = client
    wait_pingable(app, node, eco_worker)
    assert broadcast(app, node, "no_such_command") == {"error": "KeyError('no_such_command')"}


def test_node_selection(env, eco_worker, client, node):
    """A request for another node is not answered; a glob pattern that matches is."""
    app, _ = client
    wait_pingable(app, node, eco_worker)
    assert app.control.ping(destination=["nobody-%s@nowhere" % uuid.uuid4().hex[:6]],
                            timeout=1.0) == []
    prefix = node.split("@")[0]
    replies = app.control.broadcast("ping", reply=True, timeout=3, pattern=prefix + "@*",
                                    matcher="glob")
    assert {node: {"ok": "pong"}} in replies, replies


def test_default_node_name(env, client, tmp_path):
    """Without -n/CWORKER_NODENAME the node is cworker@<hostname>."""
    q = "cwit.ecosystem.default.%s" % uuid.uuid4().hex[:8]
    w = start_worker(env, q, tmp_path / "worker.log")
    try:
        name = "cworker@" + HOST
        wait_pingable(client[0], name, w)
    finally:
        rc = w.stop()
        env.delete_queues(*_queues(q))
    w.check_log()
    assert rc == 0, w.tail()


def test_cli_control_shutdown_stops_the_worker(env, client, tmp_path):
    """`celery control shutdown`: like a Celery worker, cworker sends no reply (the CLI
    says "No nodes replied" and exits 69), announces worker-offline, finishes and exits 0."""
    app, _ = client
    q = "cwit.ecosystem.shutdown.%s" % uuid.uuid4().hex[:8]
    name = "cwit-shutdown-%s@%s" % (uuid.uuid4().hex[:6], HOST)
    w = start_worker(env, q, tmp_path / "worker.log", {"CWORKER_NODENAME": name})
    log = EventLog(app)
    try:
        wait_pingable(app, name, w)
        log.wait_for(lambda e: e.get("type") == "worker-heartbeat" and e.get("hostname") == name,
                     15, "a heartbeat of " + name)
        p = celery_cli(env, q, "control", "shutdown", "-d", name, "-t", "3")
        assert p.returncode == 69, (p.returncode, p.stdout, p.stderr)
        assert "No nodes replied within time constraint" in p.stdout + p.stderr
        try:
            rc = w.proc.wait(30)
        except subprocess.TimeoutExpired:
            pytest.fail("worker still running 30 s after `control shutdown`:\n" + w.tail())
        assert rc == 0, "exit %s:\n%s" % (rc, w.tail())
        log.wait_for(lambda e: e.get("type") == "worker-offline" and e.get("hostname") == name,
                     10, "worker-offline of " + name)
    finally:
        log.close()
        if w.alive():
            w.proc.send_signal(signal.SIGKILL)
        w.stop()
        env.delete_queues(*_queues(q))
    w.check_log()
