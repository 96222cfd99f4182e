"""Black-box fixtures: the real cworker binary against the private RabbitMQ/PostgreSQL of
tests/env/services.sh (PgBouncer test/conftest.py and Redis tests/support style).

- `env` (session): sources `services.sh env`, creates a fresh database for the session and
  runs `$CWORKER_BIN migrate` on it.
- `worker` (module): `$CWORKER_BIN run` on a queue unique to the test module (leftovers
  of other modules or runs never interfere), stderr captured to a file, SIGTERM at
  teardown; fails when the worker died, did not exit 0, or printed a sanitizer report.
- every worker the harness starts (`Worker`, `start_worker`, faults.WorkerPool) fails the
  test during which it logged an ERROR line the test did not declare with
  `@pytest.mark.expect_log_errors(r"regex", ...)` (test, class or module) or the worker
  with `expect_errors=`: each test owns the log lines written between its start and its
  end, so a module-scoped worker's lines go to the test that was running (tests/py/
  log_errors.py has the line formats).
- helpers: `db` (rows as dicts), `wait_for_final_status`, queue inspection through kombu
  (message/consumer counts, basic_get of dead-lettered messages with their headers) and
  rabbitmqctl (ready + unacked counts).

Environment: CWORKER_BIN (required). Test data: tests/testdata/ in the repository.
"""

import os
import re
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg2
import psycopg2.extras
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "py"))

import log_errors  # noqa: E402
import producer  # noqa: E402
import splunk_conf_ref  # noqa: E402

SANITIZER_RE = re.compile(r"ERROR: \w*Sanitizer|runtime error:|Sanitizer: detected")
FINAL = ("COMPLETE", "FAILED")


TESTDATA = REPO / "tests" / "testdata"
PALOALTO = TESTDATA / "splunk_ta_paloalto"


def _services_env():
    out = subprocess.run(["bash", str(REPO / "tests/env/services.sh"), "env"], check=True,
                         capture_output=True, text=True).stdout
    env = {}
    for line in out.splitlines():
        if not line.startswith("export "):
            continue
        k, _, v = line[len("export "):].partition("=")
        env[k] = shlex.split(v)[0] if v.startswith('"') else v
    return env


def _with_db(url, dbname):
    base, _, _ = url.rpartition("/")
    return base + "/" + dbname


class Env:
    """Connection facts for the session."""

    def __init__(self, services, dbname, storage):
        self.broker_url = services["CELERY_BROKER_URL"]
        self.admin_url = services["ADMIN_DATABASE_URL"]
        self.database_url = _with_db(services["DATABASE_URL"], dbname)
        self.dbname = dbname
        self.rabbitmqctl = shlex.split(services["RABBITMQCTL"])
        self.storage = storage
        self.bin = os.environ.get("CWORKER_BIN") or str(REPO / "build" / "cworker")
        self._conn = None

    # ------------------------------------------------------------------ database

    def conn(self):
        if self._conn is None or self._conn.closed:
            self._conn = psycopg2.connect(self.database_url)
            self._conn.autocommit = True
        return self._conn

    def rows(self, sql, args=()):
        with self.conn().cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(sql, args)
            return [dict(r) for r in cur.fetchall()]

    def row(self, sql, args=()):
        r = self.rows(sql, args)
        return r[0] if r else None

    def scalar(self, sql, args=()):
        with self.conn().cursor() as cur:
            cur.execute(sql, args)
            r = cur.fetchone()
            return r[0] if r else None

    def run(self, run_id):
        return self.row("SELECT * FROM ingestion_runs WHERE id = %s", (run_id,))

    def producer_conn(self):
        """A fresh non-autocommit connection, as the application has."""
        return producer.connect(self.database_url)

    # ------------------------------------------------------------------ broker

    def _kombu(self):
        from kombu import Connection

        return Connection(self.broker_url)

    def queue_counts(self, queue):
        """(ready messages, consumers) of queue, or None when it does not exist."""
        with self._kombu() as c:
            ch = c.channel()
            try:
                ok = ch.queue_declare(queue=queue, passive=True)
            except Exception as e:  # 404 NOT_FOUND closes the channel
                if "NOT_FOUND" in str(e) or "404" in str(e):
                    return None
                raise
            return ok.message_count, ok.consumer_count

    def ready(self, queue):
        c = self.queue_counts(queue)
        return 0 if c is None else c[0]

    def ctl_counts(self, queue):
        """(ready, unacked) from rabbitmqctl, (0, 0) for a missing queue."""
        out = subprocess.run(self.rabbitmqctl + ["-q", "list_queues", "name", "messages_ready",
                                                 "messages_unacknowledged"],
                             check=True, capture_output=True, text=True).stdout
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) == 3 and parts[0] == queue:
                return int(parts[1]), int(parts[2])
        return 0, 0

    def get_message(self, queue, timeout=10.0):
        """basic_get one message (acked) from queue, waiting up to timeout; returns
        {"body", "headers", "properties"} or None."""
        deadline = time.time() + timeout
        while True:
            with self._kombu() as c:
                ch = c.channel()
                try:
                    m = ch.basic_get(queue=queue, no_ack=True)
                except Exception as e:
                    if "NOT_FOUND" not in str(e) and "404" not in str(e):
                        raise
                    m = None
                if m is not None:
                    props = dict(m.properties)
                    headers = dict(props.pop("application_headers", None) or {})
                    return {"body": m.body, "headers": headers, "properties": props}
            if time.time() > deadline:
                return None
            time.sleep(0.2)

    def delete_queues(self, *names):
        with self._kombu() as c:
            for n in names:
                ch = c.channel()
                try:
                    ch.queue_delete(queue=n)
                except Exception:
                    pass
                ch = c.channel()
                try:
                    ch.exchange_delete(exchange=n)
                except Exception:
                    pass


@pytest.fixture(scope="session")
def env(tmp_path_factory):
    services = _services_env()
    dbname = "cwit_%d_%s" % (os.getpid(), uuid.uuid4().hex[:6])
    admin = psycopg2.connect(services["ADMIN_DATABASE_URL"])
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute('CREATE DATABASE "%s" OWNER cworker' % dbname)
    e = Env(services, dbname, tmp_path_factory.mktemp("storage"))
    assert os.access(e.bin, os.X_OK), "CWORKER_BIN %s is not executable" % e.bin
    menv = dict(os.environ, DATABASE_URL=e.database_url)
    r = subprocess.run([e.bin, "migrate", "--migrations-dir", str(REPO / "migrations")],
                       env=menv, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, "migrate failed (%d):\n%s%s" % (r.returncode, r.stdout, r.stderr)
    yield e
    if e._conn is not None:
        e._conn.close()
    if not os.environ.get("CWORKER_KEEP_DB"):
        with admin.cursor() as cur:
            cur.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % dbname)
    admin.close()


# Every Worker whose log still has lines no test has been held responsible for.
_UNCHECKED_WORKERS = []


class Worker:
    def __init__(self, env, queue, log_path, extra_env=None, expect_errors=()):
        self.env = env
        self.queue = queue
        self.log_path = log_path
        self.expect_errors = log_errors.compile_all(expect_errors)
        self.checked_bytes = 0
        wenv = dict(os.environ)
        wenv.update({
            "CELERY_BROKER_URL": env.broker_url,
            "DATABASE_URL": env.database_url,
            "STORAGE_BACKEND": "local",
            "STORAGE_PATH": str(env.storage),
            "CELERY_QUEUES": queue,
            "CONCURRENCY": "2",
        })
        if os.environ.get("CWORKER_LOG_LEVEL"):
            wenv["LOG_LEVEL"] = os.environ["CWORKER_LOG_LEVEL"]
        wenv.update(extra_env or {})
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen([env.bin, "run"], env=wenv, stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     cwd=str(REPO))
        _UNCHECKED_WORKERS.append(self)

    def log(self):
        try:
            return Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, n=40):
        return "\n".join(self.log().splitlines()[-n:])

    def alive(self):
        return self.proc.poll() is None

    def wait_ready(self, timeout=30.0):
        """Until the worker consumes from its queue (a consumer on it)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not self.alive():
                pytest.fail("worker exited with %s during startup:\n%s"
                            % (self.proc.returncode, self.tail()))
            c = self.env.queue_counts(self.queue)
            if c is not None and c[1] >= 1:
                return
            time.sleep(0.2)
        pytest.fail("worker not consuming %s after %ss:\n%s" % (self.queue, timeout, self.tail()))

    def check_log(self):
        m = SANITIZER_RE.search(self.log())
        if m:
            pytest.fail("sanitizer report in worker log %s:\n%s" % (self.log_path, self.tail(80)))

    def _log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def settle_log(self, quiet=0.1, timeout=1.5):
        """Until a running worker's log has not grown for `quiet` seconds: the lines a test
        caused may land just after the test saw its outcome in the database."""
        deadline = time.time() + timeout
        size = self._log_size()
        while self.alive() and time.time() < deadline:
            time.sleep(quiet)
            now = self._log_size()
            if now == size:
                return
            size = now

    def new_unexpected_errors(self, patterns):
        """ERROR lines logged since the last call that neither `patterns` nor the worker's
        own expect_errors match. A running worker's unfinished last line waits."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.checked_bytes)
                data = f.read()
        except OSError:
            return []
        if self.alive():
            data = data[:data.rfind(b"\n") + 1]
        self.checked_bytes += len(data)
        return log_errors.unexpected_errors(data.decode(errors="replace"),
                                            list(patterns) + self.expect_errors)

    def fully_checked(self):
        return not self.alive() and self.checked_bytes >= self._log_size()

    def wait_log(self, pattern, timeout=15.0):
        rx = re.compile(pattern)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if rx.search(self.log()):
                return True
            time.sleep(0.2)
        return False

    def stop(self, timeout=20.0):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._log.close()
                pytest.fail("worker ignored SIGTERM for %ss:\n%s" % (timeout, self.tail()))
        self._log.close()
        return self.proc.returncode


def start_worker(env, queue, log_path, extra_env=None, expect_errors=()):
    w = Worker(env, queue, log_path, extra_env, expect_errors)
    w.wait_ready()
    return w


# ----------------------------------------------------------------------------- ERROR lines


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "%s(*regexes): ERROR lines of the worker log this test causes (re.search "
        "in the message or the line); any other ERROR line fails the test" % log_errors.MARKER)


def expected_errors(node):
    """The regexes of every expect_log_errors marker on node and its parents."""
    return [p for m in node.iter_markers(log_errors.MARKER) for p in m.args]


def check_error_lines(node, settle):
    """Fail unless every ERROR line the harness's workers logged since the last check is
    declared for `node`; the lines are checked once, by the test during which they came."""
    patterns = expected_errors(node)
    problems = []
    for w in list(_UNCHECKED_WORKERS):
        if settle:
            w.settle_log()
        lines = w.new_unexpected_errors(patterns)
        if lines:
            problems.append("%s:\n    %s" % (w.log_path, "\n    ".join(lines)))
        if w.fully_checked():
            _UNCHECKED_WORKERS.remove(w)
    if problems:
        pytest.fail("unexpected ERROR line(s) in the worker log (declare the ones %s causes "
                    "with @pytest.mark.%s(r\"regex\")):\n  %s"
                    % (node.name, log_errors.MARKER, "\n  ".join(problems)), pytrace=False)


@pytest.hookimpl(trylast=True)
def pytest_runtest_call(item):
    """After the test body passed: its unexpected ERROR lines fail the test itself."""
    check_error_lines(item, settle=False)


@pytest.fixture(autouse=True)
def _no_unexpected_error_lines(request):
    """Lines that came after the body (late ones, those of the workers the test's own
    fixtures stop) fail the test at teardown."""
    yield
    check_error_lines(request.node, settle=True)


@pytest.fixture(scope="module", autouse=True)
def _no_unexpected_error_lines_in_module(request):
    """What module-scoped workers log while they stop (after the module's last test)."""
    yield
    check_error_lines(request.node, settle=False)


@pytest.fixture(scope="module")
def queue(request):
    mod = request.module.__name__.rsplit(".", 1)[-1]
    return "cwit.%s.%s" % (mod, uuid.uuid4().hex[:8])


@pytest.fixture(scope="module")
def worker(env, queue, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    w = start_worker(env, queue, log_path)
    yield w
    died = not w.alive()
    rc = w.stop()
    env.delete_queues(queue, queue + ".dead", queue + ".retry.60s", queue + ".retry.180s",
                      queue + ".retry.600s")
    w.check_log()
    assert not died, "worker died (exit %s) during the module:\n%s" % (rc, w.tail())
    assert rc == 0, "worker exited %s after SIGTERM:\n%s" % (rc, w.tail())


@pytest.fixture(autouse=True)
def _worker_still_healthy(request):
    """After each test that used a worker: it is alive and printed no sanitizer report."""
    yield
    if "worker" in request.fixturenames:
        w = request.getfixturevalue("worker")
        w.check_log()
        assert w.alive(), "worker died (exit %s):\n%s" % (w.proc.returncode, w.tail())


@pytest.fixture
def celery(env):
    return producer.celery_app(env.broker_url)


@pytest.fixture
def tq(request):
    """A queue of the test's own: cwit.<module>.<test>.<random> (faults.unique_queue)."""
    import faults
    kind = request.module.__name__.rpartition(".")[2].removeprefix("test_")
    return faults.unique_queue(kind, request.node.name)


@pytest.fixture
def workers(env, tq, tmp_path):
    """Workers started on tq as the test needs them (faults.WorkerPool), all stopped and
    their logs checked at teardown."""
    import faults
    pool = faults.WorkerPool(env, tq, tmp_path, Worker)
    yield pool
    pool.close()


@pytest.fixture
def pconn(env):
    c = env.producer_conn()
    yield c
    c.close()


def wait_for_final_status(env, run_id, timeout=30.0, worker=None):
    """Poll the run until COMPLETE or FAILED; return its row. Fails with the worker log."""
    deadline = time.time() + timeout
    row = None
    while time.time() < deadline:
        row = env.run(run_id)
        if row is not None and row["status"] in FINAL:
            return row
        if worker is not None and not worker.alive():
            pytest.fail("worker died (exit %s) while run %s was %s:\n%s"
                        % (worker.proc.returncode, run_id, row and row["status"], worker.tail()))
        time.sleep(0.1)
    pytest.fail("run %s not final after %ss (row: %r)%s" % (
        run_id, timeout, row, ("\nworker log:\n" + worker.tail()) if worker else ""))


def wait_drained(env, queue, timeout=20.0):
    """Until queue has no ready and no unacked messages (twice in a row)."""
    deadline = time.time() + timeout
    zeros = 0
    while time.time() < deadline:
        if env.ctl_counts(queue) == (0, 0):
            zeros += 1
            if zeros >= 2:
                return
        else:
            zeros = 0
        time.sleep(0.3)
    pytest.fail("queue %s not drained after %ss: %r" % (queue, timeout, env.ctl_counts(queue)))


def paloalto_upload(fmt):
    """(file name, bytes) of the paloalto app as the user would upload it."""
    data = producer.build_upload_bytes(str(PALOALTO), fmt, top="Splunk_TA_paloalto")
    return ("Splunk_TA_paloalto.%s" % fmt, data)


def paloalto_reference():
    return splunk_conf_ref.parse_tree(str(PALOALTO), top="Splunk_TA_paloalto")
