"""The operator's dashboard (issue 15): GET / and /runs/<id> on the HTTP listener, its JSON
endpoints (/v1/worker/dashboard, /v1/worker/queues, /v1/worker/cluster) and POST
/v1/worker/dlq/replay.

The module works in a database of its own (as test_operating.py does), so the counts are
exact: runs in several states are written, the JSON must give the database's numbers, and
Debian's headless Chromium must show them after the page's scripts ran, with a hostile
label shown as text. The last tests drive Chromium over the DevTools protocol
(tests/py/cdp.py): the workers on the broker (two cworkers and a Python Celery worker),
a retry's due time, and a click on a dead letter's replay button. Without chromium the
browser tests skip (the JSON tests still run).
"""

import datetime
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from html.parser import HTMLParser
from pathlib import Path

import psycopg2
import pytest

import faults
import producer
from conftest import REPO, Env, _services_env, start_worker, wait_for_final_status
from test_cli import CONF, create_run, dead_letter_by_hand, set_run
from test_operating import HttpWorker, free_port

HOSTILE = "<img src=x onerror=alert(1)>"
UTC = datetime.timezone.utc
SCREENSHOT = REPO / ".state" / "dashboard.png"


@pytest.fixture(scope="module")
def denv(tmp_path_factory):
    """A fresh, migrated database for this module only (exact counts)."""
    services = _services_env()
    dbname = "cwdash_%d_%s" % (os.getpid(), uuid.uuid4().hex[:6])
    admin = psycopg2.connect(services["ADMIN_DATABASE_URL"])
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute('CREATE DATABASE "%s" OWNER cworker' % dbname)
    e = Env(services, dbname, tmp_path_factory.mktemp("dashstorage"))
    r = subprocess.run([e.bin, "migrate", "--migrations-dir", str(REPO / "migrations")],
                       env=dict(os.environ, DATABASE_URL=e.database_url), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    yield e
    if e._conn is not None:
        e._conn.close()
    with admin.cursor() as cur:
        cur.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % dbname)
    admin.close()


def add_run(env, status, label=None, error=None, traceback=None, retries=0, finished=True):
    now = datetime.datetime.now(UTC)
    return env.scalar(
        "INSERT INTO ingestion_runs (created_at, type, label, status, retry_count, error_message,"
        " error_traceback, started_at, completed_at) VALUES (%s,'APP_BUNDLE',%s,%s,%s,%s,%s,%s,%s)"
        " RETURNING id",
        (now, label, status, retries, error, traceback, now, now if finished else None))


@pytest.fixture(scope="module")
def runs(denv):
    """COMPLETE x2, FAILED permanent (with traceback), FAILED with a hostile label after
    a retry, PARSING."""
    ids = {
        "complete": [add_run(denv, "COMPLETE", label="ok-1"), add_run(denv, "COMPLETE")],
        "failed": add_run(denv, "FAILED", label="bad archive", error="not a tar archive",
                          traceback="Traceback (most recent call last):\n  <b>frame</b>"),
        "hostile": add_run(denv, "FAILED", label=HOSTILE, error="<script>alert(2)</script>",
                           retries=2),
        "parsing": add_run(denv, "PARSING", label="busy", finished=False),
    }
    return ids


@pytest.fixture(scope="module")
def dash(denv, runs, tmp_path_factory):
    """A worker with its listener on 127.0.0.1 and admin actions left off."""
    hw = HttpWorker(denv, tmp_path_factory.mktemp("dashworker") / "worker.log",
                    extra_env={"CWORKER_NODENAME": node("dash")})
    hw.wait_http(want=200)
    yield hw
    hw.stop(denv)


def node(kind):
    """A node name of its own: workers of the same name are one worker on the broker."""
    return "cwdash-%s-%s@test" % (kind, uuid.uuid4().hex[:6])


def db_counts(env):
    return {r["status"]: r["n"] for r in env.rows(
        "SELECT upper(status) AS status, count(*)::int AS n FROM ingestion_runs GROUP BY 1")}


def wait_for(fn, timeout=15.0):
    deadline = time.time() + timeout
    while True:
        value = fn()
        if value or time.time() > deadline:
            return value
        time.sleep(0.3)


# ----------------------------------------------------------------------------- JSON


def test_dashboard_json_equals_the_database(denv, runs, dash):
    status, body = dash.get_json("/v1/worker/dashboard")
    assert status == 200, body
    d = body["database"]
    assert body["database_error"] is None
    assert d["status_counts"] == db_counts(denv) == {"COMPLETE": 2, "FAILED": 2, "PARSING": 1}
    assert d["total_runs"] == 5
    minutes = d["per_minute"]
    assert len(minutes) == 60
    assert sum(m["completed"] for m in minutes) == 2
    assert sum(m["failed"] for m in minutes) == 2
    assert sum(m["retried"] for m in minutes) == 1
    assert [f["run_id"] for f in d["recent_failures"]] == [runs["hostile"], runs["failed"]]
    hostile = d["recent_failures"][0]
    assert hostile["label"] == HOSTILE and hostile["retry_count"] == 2
    assert d["recent_failures"][1]["error_traceback"].startswith("Traceback")
    w = wait_for(lambda: dash.get_json("/v1/worker/dashboard")[1]["worker"])
    assert w["concurrency"] == 2 and w["busy_executors"] == 0 and w["nodename"]


def test_queues_json_lists_dead_letters(denv, dash):
    run_id = create_run(denv)
    tid = dead_letter_by_hand(denv, dash.queue, run_id, reason="unknown task <x>")
    body = wait_for(lambda: (lambda r: r[1] if r[1]["queues"][0]["dead"]["messages"] else None)(
        dash.get_json("/v1/worker/queues")))
    q = body["queues"][0]
    assert q["queue"] == dash.queue
    assert [d["name"] for d in q["delay_queues"]] == [
        dash.queue + ".retry.60s", dash.queue + ".retry.180s", dash.queue + ".retry.600s"]
    assert q["dead"]["messages"] == 1
    shown = q["dead"]["shown"]
    assert [(m["task_id"], m["run_id"], m["reason"]) for m in shown] == [
        (tid, run_id, "unknown task <x>")]
    # A reading is served again for a few seconds (age_seconds says how old it is); the
    # next one shows the listing consumed nothing.
    first_read = time.time() - body["age_seconds"]
    fresh = wait_for(lambda: (lambda b: b if time.time() - b["age_seconds"] > first_read + 0.5
                              else None)(dash.get_json("/v1/worker/queues")[1]))
    assert fresh, "the queues were never read again"
    assert fresh["queues"][0]["dead"]["messages"] == 1


def test_pages_are_served(dash, runs):
    for path in ("/", "/runs/%d" % runs["failed"]):
        status, headers, body = dash.get(path)
        assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
        assert b"<title>cworker dashboard</title>" in body and b"innerHTML" not in body
        assert headers["X-Frame-Options"] == "DENY"
    assert dash.get("/runs/abc")[0] == 404
    assert dash.get("/runs/0")[0] == 404


def post_replay(hw, task_id, headers=None, queue=None):
    data = json.dumps({"task_id": task_id, "queue": queue or hw.queue}).encode()
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    req = urllib.request.Request(hw.base + "/v1/worker/dlq/replay", data=data, method="POST",
                                 headers=h)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_replay_refused_without_admin(denv, dash):
    tid = dead_letter_by_hand(denv, dash.queue, create_run(denv))
    status, body = post_replay(dash, tid)
    assert status == 403 and "CWORKER_HTTP_ADMIN=1" in body["detail"], body
    assert dash.get("/v1/worker/dlq/replay")[0] == 405
    # Still there (once the cached reading of the queues is renewed).
    assert wait_for(lambda: tid in [m["task_id"] for m in dash.get_json(
        "/v1/worker/queues")[1]["queues"][0]["dead"]["shown"]])


@pytest.fixture
def admin_worker(denv, tmp_path):
    hw = HttpWorker(denv, tmp_path / "admin-worker.log", extra_env={"CWORKER_HTTP_ADMIN": "1"})
    hw.wait_http(want=200)
    yield hw
    hw.stop(denv)


def test_replay_with_admin_runs_the_task(denv, admin_worker):
    hw = admin_worker
    run_id = create_run(denv)
    tid = dead_letter_by_hand(denv, hw.queue, run_id)
    keep = dead_letter_by_hand(denv, hw.queue, create_run(denv))
    # Cross-origin and non-JSON requests are refused even with admin on.
    assert post_replay(hw, tid, {"Origin": "http://evil.example"})[0] == 403
    assert post_replay(hw, tid, {"Content-Type": "text/plain"})[0] == 403
    assert post_replay(hw, tid, queue="not-my-queue")[0] == 400
    assert post_replay(hw, "no-such-task")[0] == 404
    status, body = post_replay(hw, tid)
    assert status == 200, body
    assert [(m["task_id"], m["to"]) for m in body["replayed"]] == [(tid, hw.queue)]
    run = wait_for_final_status(denv, run_id, worker=hw.worker)
    assert run["status"] == "COMPLETE" and run["task_id"] == tid, run
    shown = hw.get_json("/v1/worker/queues")[1]["queues"][0]["dead"]["shown"]
    assert [m["task_id"] for m in shown] == [keep]


def test_replay_on_a_network_listener_needs_a_token(denv, tmp_path):
    # Bound to all interfaces (":PORT"): admin on but no token configured is refused.
    port = free_port()
    net = HttpWorker(denv, tmp_path / "net-worker.log", listen=":%d" % port,
                     extra_env={"CWORKER_HTTP_ADMIN": "1"})
    net.port, net.base = port, "http://127.0.0.1:%d" % port
    try:
        net.wait_http(want=200)
        status, body = post_replay(net, "any")
        assert status == 403 and "CWORKER_HTTP_TOKEN" in body["detail"], body
    finally:
        net.stop(denv)


def test_delay_queues_forget_a_retry_once_it_ran(denv, dash, tmp_path):
    """A retry waiting in Q.retry.1s is listed with its due time only while it waits: once it
    ran (and failed for good, MAX_RETRIES 1) the database says no retry waits there."""
    queue = "cwit.dash.retry.%s" % uuid.uuid4().hex[:8]
    w = start_worker(denv, queue, tmp_path / "worker.log", {"RETRY_DELAYS": "1",
                                                            "MAX_RETRIES": "1"})
    try:
        run_id = missing_blob_run(denv, producer.celery_app(denv.broker_url), queue)
        run = wait_for_final_status(denv, run_id, worker=w)
        assert run["status"] == "FAILED" and run["retry_count"] == 1, run
        row = denv.row("SELECT retry_queue, retry_due_at FROM cworker_tasks WHERE run_id = %s",
                       (run_id,))
        assert row == {"retry_queue": None, "retry_due_at": None}, row
        names = [d["name"] for d in dash.get_json("/v1/worker/dashboard")[1]["database"]
                 ["delay_queues"]]
        assert queue + ".retry.1s" not in names, names
    finally:
        w.stop()
        w.check_log()
        denv.delete_queues(queue, queue + ".dead", queue + ".retry.1s")


# ----------------------------------------------------------------------------- browser


def chromium():
    exe = shutil.which("chromium")
    if not exe:
        pytest.skip("chromium is not installed (tests/env/install-deps.sh installs Debian's)")
    return exe


def browse(url, *extra):
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--user-data-dir=%s" % Path(os.environ.get("TMPDIR", "/tmp"),
                                                       "cwdash-chromium-%d" % os.getpid()),
           "--virtual-time-budget=5000"] + list(extra) + [url]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired:
        pytest.skip("chromium did not finish in 90 s")
    if r.returncode != 0:
        pytest.skip("chromium does not start here (exit %s): %s"
                    % (r.returncode, r.stderr.strip()[-400:]))
    return r.stdout


class Cells(HTMLParser):
    """The text of every <td>/<th> per table row, keyed by the table's id; and every tag."""

    def __init__(self):
        super().__init__()
        self.tables, self.tags, self._table, self._row, self._cell = {}, [], None, None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "table":
            self._table = self.tables.setdefault(a.get("id"), [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def test_browser_shows_the_database(denv, runs, dash):
    dom = browse(dash.base + "/", "--dump-dom")
    page = Cells()
    page.feed(dom)
    shown = {r[0]: int(r[1]) for r in page.tables["status-table"][1:-1]}
    assert shown == db_counts(denv), dom[:2000]
    assert page.tables["status-table"][-1] == ["Total", str(sum(shown.values()))]
    # The hostile label is text: escaped in the DOM, no element made from it.
    assert "&lt;img src=x onerror=alert(1)&gt;" in dom
    assert not [a for t, a in page.tags if t == "img"], "an <img> element was injected"
    assert not [a for t, a in page.tags if t == "script" and "alert" in str(a)]
    failures = {r[0]: r for r in page.tables["failure-table"][1:]}
    assert failures["#%d" % runs["hostile"]][1] == HOSTILE
    assert failures["#%d" % runs["failed"]][2].startswith("not a tar archive")
    dead = dash.get_json("/v1/worker/queues")[1]["queues"][0]["dead"]["shown"]
    assert [r[0] for r in page.tables["dlq-table"][1:]] == (
        [m["task_id"] for m in dead] or ["no dead letters"])
    nodename = dash.get_json("/v1/worker/dashboard")[1]["worker"]["nodename"]
    worker = [r for r in page.tables["worker-table"][1:] if r[0] == nodename]
    assert [r[1:3] for r in worker] == [["2", "0"]], page.tables["worker-table"]
    # The refresh ran and succeeded (the status line says so, and not "update failed").
    assert re.search(r'<span id="updated" role="status"[^>]*>updated [^<]*</span>', dom), dom


def test_browser_run_page_and_screenshot(denv, runs, dash):
    dom = browse(dash.base + "/runs/%d" % runs["hostile"], "--dump-dom")
    assert 'data-field="label">&lt;img src=x onerror=alert(1)&gt;</dd>' in dom, dom[-3000:]
    assert "<img" not in dom
    assert '<main id="overview" hidden="">' in dom and '<main id="run-detail">' in dom
    SCREENSHOT.parent.mkdir(exist_ok=True)
    if SCREENSHOT.exists():
        SCREENSHOT.unlink()
    browse(dash.base + "/", "--screenshot=%s" % SCREENSHOT, "--window-size=1280,800",
           "--hide-scrollbars")
    assert SCREENSHOT.stat().st_size > 10000
    narrow = SCREENSHOT.with_name("dashboard-390.png")
    browse(dash.base + "/", "--screenshot=%s" % narrow, "--window-size=390,1400",
           "--hide-scrollbars")
    assert narrow.stat().st_size > 5000


# ----------------------------------------------------------------------------- DevTools


@pytest.fixture
def browser():
    """Chromium driven over the DevTools protocol (tests/py/cdp.py)."""
    import cdp

    exe = chromium()
    try:
        b = cdp.Browser(exe)
    except cdp.BrowserError as e:
        pytest.skip("chromium's DevTools protocol is not usable here: %s" % e)
    yield b
    try:
        assert not b.dialogs, "the page opened a dialog (markup from data ran): %s" % b.dialogs
        assert not b.exceptions, "the page threw: %s" % b.exceptions
    finally:
        b.close()


def missing_blob_run(env, celery, queue):
    """A run whose blob is not in storage (transient: retried after 60 s, CONTRACT 1.8),
    published to queue; returns its id once its first retry is scheduled."""
    run_id = create_run(env, upload={"name": CONF[0], "data": CONF[1], "store": False})
    faults.enqueue(env, celery, run_id, queue)
    faults.wait_until(lambda: env.run(run_id)["retry_count"] == 1, 30, "run %d retried" % run_id)
    return run_id


def python_celery_worker(env, queue, hostname, log_path):
    """A real Celery worker (Debian's python3-celery, tests/env/install-deps.sh) with events
    on, on a queue of its own."""
    penv = dict(os.environ, CELERY_BROKER_URL=env.broker_url,
                PYTHONPATH=str(REPO / "tests" / "py"))
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        ["/usr/bin/python3", "-m", "celery", "-A", "celery_cli_app", "worker", "-E", "-n",
         hostname, "-Q", queue, "-P", "solo", "-c", "1", "--without-mingle", "--without-gossip",
         "-l", "WARNING"], env=penv, stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, cwd=str(REPO))
    log.close()
    return proc


def stop_python_worker(proc):
    if proc.poll() is None:
        proc.terminate()  # warm shutdown: it sends worker-offline
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def publish_worker_event(env, event):
    """One event on the celeryev exchange, as any client on the broker may send."""
    from kombu import Connection, Exchange, Producer

    with Connection(env.broker_url) as c:
        Producer(c.channel(), exchange=Exchange("celeryev", type="topic")).publish(
            event, routing_key=event["type"].replace("-", "."), serializer="json")


def cluster_by_host(hw):
    status, body = hw.get_json("/v1/worker/cluster")
    assert status == 200, body
    return {w["hostname"]: w for w in body["workers"]}, body["receiver"]


def test_page_shows_the_workers_on_the_broker_and_when_retries_are_due(denv, browser,
                                                                      tmp_path):
    """Worker B (concurrency 3, no listener) schedules a retry; then worker A (concurrency
    2, with the listener) joins the same queue, and a Python Celery worker runs elsewhere on
    the broker. A's page lists all three from their heartbeat events, with the concurrency
    cworker adds to its own (a Celery heartbeat has none), and the retry B published, with
    when it is due, from the database."""
    queue = "cwit.dash.cluster.%s" % uuid.uuid4().hex[:8]
    names = {"a": node("a"), "b": node("b"), "py": node("py")}
    b = start_worker(denv, queue, tmp_path / "b.log",
                     {"CWORKER_NODENAME": names["b"], "CONCURRENCY": "3"})
    py_queue = queue + ".python"
    py = python_celery_worker(denv, py_queue, names["py"], tmp_path / "python-worker.log")
    a = None
    try:
        run_id = missing_blob_run(denv, producer.celery_app(denv.broker_url), queue)
        due_at = denv.scalar("SELECT cworker_iso8601(retry_due_at) FROM cworker_tasks "
                             "WHERE run_id = %s AND retry_queue = %s", (run_id, queue + ".retry.60s"))
        assert due_at, "the retry's delay queue and due time are not recorded"
        a = HttpWorker(denv, tmp_path / "a.log", queue=queue,
                       extra_env={"CWORKER_NODENAME": names["a"], "CONCURRENCY": "2"})
        a.wait_http(want=200)
        dead = dead_letter_by_hand(denv, queue, create_run(denv), reason=HOSTILE)

        # The JSON: every worker online, cworker's with their concurrency.
        want = [names["a"], names["b"], names["py"]]
        seen = wait_for(lambda: (lambda c: c if all(
            n in c and c[n]["state"] == "online" for n in want) else None)(cluster_by_host(a)[0]),
            timeout=45)
        assert seen, "not all of %s online: %s\n(Python worker: %s)" % (
            want, cluster_by_host(a), (tmp_path / "python-worker.log").read_text()[-2000:])
        assert (seen[names["a"]]["concurrency"], seen[names["b"]]["concurrency"]) == (2, 3)
        assert seen[names["a"]]["sw_ident"] == "cworker"
        assert seen[names["py"]]["sw_ident"] == "py-celery"
        assert seen[names["py"]]["concurrency"] is None  # Celery's heartbeat does not say
        assert cluster_by_host(a)[1]["connected"] is True

        # The database part: B's retry, waiting in queue.retry.60s, due at the recorded time.
        delays = {d["name"]: d for d in a.get_json("/v1/worker/dashboard")[1]["database"]
                  ["delay_queues"]}
        mine = delays[queue + ".retry.60s"]
        assert (mine["scheduled"], mine["next_due_at"]) == (1, due_at), mine
        assert 0 < mine["next_due_in_seconds"] <= 60

        # Anyone on the broker can send events: a hostile host name is text on the page.
        publish_worker_event(denv, {"hostname": HOSTILE, "type": "worker-heartbeat",
                                    "freq": 2.0, "active": 0, "processed": 0,
                                    "concurrency": "<b>4</b>", "timestamp": time.time()})
        assert wait_for(lambda: HOSTILE in cluster_by_host(a)[0])
        want.append(HOSTILE)

        # The page, in a real browser.
        browser.goto(a.base + "/")
        rows = browser.wait(
            "(() => { const r = Array.from(document.querySelectorAll('#worker-table tbody tr'),"
            " tr => Array.from(tr.cells, c => c.textContent.trim()));"
            " return %s.every(n => r.some(x => x[0] === n)) ? r : null; })()" % json.dumps(want),
            timeout=30, what="the workers %s in the Workers table" % want)
        by_host = {r[0]: r for r in rows}
        assert by_host[names["a"]][1:3] == ["2", "0"], rows
        assert by_host[names["b"]][1] == "3", rows
        assert by_host[names["a"]][4] == "online (this worker)", rows
        assert by_host[names["b"]][4] == "online", rows
        assert by_host[names["py"]][1] == "–", rows
        assert by_host[HOSTILE][1] == "–", rows  # a concurrency that is not a number is dropped
        browser.wait("!!document.querySelector('#dlq-table tr[data-task-id=\"%s\"]')" % dead,
                     what="the queues and the dead letter %s" % dead)
        queues = {r[0]: r for r in browser.table("queue-table")}
        retry = queues[queue + ".retry.60s"]
        assert retry[1] == "1", retry
        assert re.fullmatch(r"in [0-9]+ s \(%s UTC\)" % due_at[11:19], retry[2]), retry
        assert queues[queue + ".dead"][1] == "1"
        reason = browser.evaluate(
            "document.querySelector('#dlq-table tr[data-task-id=\"%s\"] td.msg').textContent"
            % dead)
        assert reason == HOSTILE
        assert browser.evaluate("document.querySelectorAll('img, b').length") == 0
        SCREENSHOT.parent.mkdir(exist_ok=True)
        browser.screenshot(SCREENSHOT)
        assert SCREENSHOT.stat().st_size > 10000

        # B leaves: its worker-offline event marks it offline at once.
        b.stop()
        b.check_log()
        gone = wait_for(lambda: cluster_by_host(a)[0][names["b"]]["state"] == "offline")
        assert gone, cluster_by_host(a)
        browser.wait("document.querySelector('#worker-table tr[data-hostname=\"%s\"]')"
                     ".dataset.state === 'offline'" % names["b"], what="B shown offline")
    finally:
        stop_python_worker(py)
        denv.delete_queues(py_queue)
        b.stop()
        if a is not None:
            a.stop(denv)


def test_replay_button_click_in_the_browser_runs_the_task(denv, admin_worker, browser):
    """The operator clicks the replay button of the dead letter with the hostile label and
    reason: the dead letter goes back to its queue, the run completes, and the page no longer
    lists it."""
    hw = admin_worker
    run_id = create_run(denv)
    set_run(denv, run_id, label=HOSTILE)
    tid = dead_letter_by_hand(denv, hw.queue, run_id, reason=HOSTILE)
    keep = dead_letter_by_hand(denv, hw.queue, create_run(denv))
    browser.goto(hw.base + "/")
    button = 'button[data-task-id="%s"]' % tid
    browser.wait("!!document.querySelector(%s)" % json.dumps(button), what="the replay button")
    assert browser.evaluate(
        "document.querySelector('#dlq-table tr[data-task-id=\"%s\"] td.msg').textContent"
        % tid) == HOSTILE
    browser.click(button)
    run = wait_for_final_status(denv, run_id, worker=hw.worker)
    assert run["status"] == "COMPLETE" and run["task_id"] == tid, run
    assert run["label"] == HOSTILE
    browser.wait("document.getElementById('replay-result').textContent === %s"
                 % json.dumps("replayed " + tid), what="the replay's answer")
    # Gone from the page (it refreshes after the replay), the other dead letter still there.
    browser.wait("!document.querySelector(%s) && !!document.querySelector("
                 "'button[data-task-id=\"%s\"]')" % (json.dumps(button), keep),
                 what="the replayed dead letter gone, the other one listed")
    assert [m["task_id"] for m in hw.get_json("/v1/worker/queues")[1]["queues"][0]["dead"]
            ["shown"]] == [keep]
    browser.screenshot(SCREENSHOT.with_name("dashboard-replayed.png"))
