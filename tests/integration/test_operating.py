"""Operating cworker (issue 4): the views of migration 006, `cworker status` and
`cworker metrics`, the HTTP listener (`--http`/CWORKER_HTTP: /healthz, /metrics,
/v1/worker/...), JSON logs, and the compose file.

The module works in a database of its own (created and migrated here), so the aggregate
values are exact: runs in every state are written with fixed timestamps and the views and
commands must give exactly the numbers the application's endpoints would. Then a real
worker with an HTTP listener runs real tasks, and its endpoints must agree with the
commands and with what happened.
"""

import datetime
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import psycopg2
import pytest

import producer
from faults import free_port
from conftest import (REPO, SANITIZER_RE, Env, Worker, _services_env, paloalto_upload,
                      start_worker, wait_for_final_status)

TASK = producer.TASK_NAME
UTC = datetime.timezone.utc
PROGRESS_KEYS = {"files_total", "files_done", "conf_files_parsed", "stanzas_so_far",
                 "bytes_parsed"}
STATUS_KEYS = ["id", "type", "label", "notes", "created_at", "status", "task_id", "retry_count",
               "error_message", "error_traceback", "last_heartbeat", "started_at",
               "completed_at", "metrics"]


def iso(dt):
    """The worker's timestamp text: UTC, always with microseconds."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00") if dt else None


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def openv(tmp_path_factory):
    """A fresh, migrated database for this module only (exact aggregates)."""
    services = _services_env()
    dbname = "cwop_%d_%s" % (os.getpid(), uuid.uuid4().hex[:6])
    admin = psycopg2.connect(services["ADMIN_DATABASE_URL"])
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute('CREATE DATABASE "%s" OWNER cworker' % dbname)
    e = Env(services, dbname, tmp_path_factory.mktemp("opstorage"))
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


def cli(env, *args):
    """`cworker <args>` against env's database: (exit code, parsed stdout or None, stderr)."""
    cenv = dict(os.environ, DATABASE_URL=env.database_url)
    r = subprocess.run([env.bin] + [str(a) for a in args], env=cenv, capture_output=True,
                       text=True, timeout=60)
    assert not SANITIZER_RE.search(r.stderr), r.stderr
    out = json.loads(r.stdout) if r.stdout.strip() else None
    return r.returncode, out, r.stderr


class HttpWorker:
    """A worker with an HTTP listener and JSON logs, on a queue of its own (or `queue`)."""

    def __init__(self, env, log_path, listen=None, extra_env=None, wait=True, queue=None):
        self.port = free_port()
        self.queue = queue or "cwit.operating.%s" % uuid.uuid4().hex[:8]
        self.base = "http://127.0.0.1:%d" % self.port
        settings = {"CWORKER_HTTP": listen or "127.0.0.1:%d" % self.port,
                    "LOG_FORMAT": "json", "CONCURRENCY": "2"}
        settings.update(extra_env or {})
        self.worker = (start_worker if wait else Worker)(env, self.queue, log_path, settings)
        self.runs = []  # ids of the runs published to this worker's queue

    def get(self, path, method="GET", data=None, timeout=10):
        """(status, headers, body bytes); HTTP errors are answers too."""
        req = urllib.request.Request(self.base + path, method=method, data=data)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def get_json(self, path):
        status, headers, body = self.get(path)
        assert headers["Content-Type"] == "application/json", (path, headers["Content-Type"])
        return status, json.loads(body)

    def wait_http(self, timeout=20.0, want=None):
        """Until the listener answers /healthz (with status `want`, when given)."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            if not self.worker.alive():
                pytest.fail("worker exited %s:\n%s" % (self.worker.proc.returncode,
                                                       self.worker.tail()))
            try:
                last = self.get_json("/healthz")
                if want is None or last[0] == want:
                    return last
            except (urllib.error.URLError, ConnectionError, socket.timeout) as e:
                last = repr(e)
            time.sleep(0.2)
        pytest.fail("/healthz not %s after %ss (last: %r)\n%s"
                    % (want or "answering", timeout, last, self.worker.tail()))

    def stop(self, env):
        died = not self.worker.alive()
        rc = self.worker.stop()
        env.delete_queues(self.queue, self.queue + ".dead", self.queue + ".retry.60s",
                          self.queue + ".retry.180s", self.queue + ".retry.600s")
        self.worker.check_log()
        assert not died, "worker died (exit %s):\n%s" % (rc, self.worker.tail())
        assert rc == 0, "worker exited %s after SIGTERM:\n%s" % (rc, self.worker.tail())


@pytest.fixture(scope="module")
def http_worker(openv, tmp_path_factory):
    hw = HttpWorker(openv, tmp_path_factory.mktemp("opworker") / "worker.log")
    yield hw
    hw.stop(openv)


# ----------------------------------------------------------------------------- Prometheus


SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|\})')
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def _labels(text):
    if not text:
        return ()
    out, pos = [], 1
    while pos < len(text):
        m = LABEL_RE.match(text, pos)
        assert m, "bad label set %r" % text
        value = re.sub(r"\\(.)", lambda e: {"n": "\n"}.get(e.group(1), e.group(1)), m.group(2))
        out.append((m.group(1), value))
        pos = m.end()
    return tuple(sorted(out))


def parse_prometheus(text):
    """Text format 0.0.4 -> ({family: type}, {(sample name, labels): value}); strict about
    what the format requires (TYPE before samples, one TYPE per family, valid values)."""
    types, helps, samples = {}, {}, {}
    assert text.endswith("\n")
    for line in text.split("\n")[:-1]:
        if line.startswith("# HELP "):
            name, _, help_ = line[7:].partition(" ")
            assert name not in helps, "second HELP for " + name
            helps[name] = help_
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert kind in TYPES and name not in types, line
            assert not any(s[0].startswith(name) for s in samples), "TYPE after samples: " + line
            types[name] = kind
        elif line.startswith("#"):
            continue
        else:
            m = SAMPLE_RE.match(line)
            assert m, "bad sample line %r" % line
            name, labels, value = m.group(1), _labels(m.group(2)), float(m.group(3))
            family = name
            for suffix in ("_bucket", "_sum", "_count"):
                if name.endswith(suffix) and types.get(name[:-len(suffix)]) == "histogram":
                    family = name[:-len(suffix)]
            assert family in types, "sample without TYPE: " + line
            assert (name, labels) not in samples, "duplicate sample " + line
            samples[(name, labels)] = value
    assert set(helps) == set(types)
    return types, samples


def check_histograms(types, samples):
    """Every histogram series: cumulative buckets ending in +Inf == _count, a _sum."""
    for family, kind in types.items():
        if kind != "histogram":
            continue
        series = {}
        for (name, labels), v in samples.items():
            if name == family + "_bucket":
                rest = tuple(kv for kv in labels if kv[0] != "le")
                le = dict(labels)["le"]
                series.setdefault(rest, []).append((float(le), v))
        for rest, buckets in series.items():
            buckets.sort()
            counts = [v for _, v in buckets]
            assert counts == sorted(counts), (family, rest, buckets)
            assert buckets[-1][0] == float("inf")
            assert samples[(family + "_count", rest)] == counts[-1]
            assert (family + "_sum", rest) in samples


def scrape(hw):
    status, headers, body = hw.get("/metrics")
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    types, samples = parse_prometheus(body.decode("utf-8"))
    check_histograms(types, samples)
    return types, samples


def task_value(samples, name, task=TASK):
    return samples.get((name, (("task", task),)))


# ----------------------------------------------------------------------------- fixed runs

T0 = datetime.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def add_run(env, status, run_type="APP_BUNDLE", label=None, notes=None, task_id=None,
            retry_count=0, error_message=None, error_traceback=None, started=None,
            completed=None, heartbeat=None, metrics=None, created=T0, progress=None):
    run_id = env.scalar(
        "INSERT INTO ingestion_runs (created_at, type, label, status, notes, task_id,"
        " retry_count, error_message, error_traceback, last_heartbeat, started_at,"
        " completed_at, metrics) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) RETURNING id",
        (created, run_type, label, status, notes, task_id, retry_count, error_message,
         error_traceback, heartbeat, started, completed,
         json.dumps(metrics) if metrics is not None else None))
    if task_id and progress is not None:
        env.scalar("INSERT INTO cworker_tasks (task_id, run_id, progress) VALUES (%s, %s, %s)"
                   " RETURNING 1", (task_id, run_id, json.dumps(progress)))
    return run_id


def expected_status(env, run_id, progress=None):
    """What GET /v1/worker/runs/{id}/status returns, from the row (names, ISO times)."""
    r = env.run(run_id)
    out = {k: r[k] for k in STATUS_KEYS}
    for k in ("created_at", "last_heartbeat", "started_at", "completed_at"):
        out[k] = iso(r[k])
    out["type"], out["status"] = r["type"].upper(), r["status"].upper()
    if progress is not None:
        out["progress"] = progress
    return out


def test_every_state_in_views_and_commands(openv):
    """STORED, PARSING with progress, COMPLETE, FAILED (with retries, lower-case, never
    completed): the views and both commands give exact values."""
    env = openv
    now = datetime.datetime.now(UTC)
    progress = {"files_total": 2, "files_done": 1, "conf_files_parsed": 7,
                "stanzas_so_far": 321, "bytes_parsed": 45678}
    stored = add_run(env, "STORED", label="etc", notes="uploaded by ops")
    parsing = add_run(env, "PARSING", "DS_ETC", task_id="task-parsing", retry_count=1,
                      error_message="Transient error (retry 1): storage unreadable",
                      started=now - datetime.timedelta(seconds=20),
                      heartbeat=now - datetime.timedelta(seconds=3), progress=progress)
    done_metrics = {"files_parsed": 1, "stanzas_created": 42, "duration_seconds": 12.4,
                    "parse_errors": 0, "retry_count": 0,
                    "typed_projections": {"inputs": 3, "props": 4, "transforms": 5,
                                          "indexes": 0, "outputs": 0, "serverclasses": 0}}
    complete1 = add_run(env, "COMPLETE", task_id="task-done-1", started=T0,
                        completed=T0 + datetime.timedelta(seconds=12.5), heartbeat=T0,
                        metrics=done_metrics, progress=progress)
    complete2 = add_run(env, "COMPLETE", "SINGLE_CONF", task_id="task-done-2", retry_count=1,
                        started=T0.replace(microsecond=0),
                        completed=T0.replace(microsecond=0) + datetime.timedelta(seconds=7.5))
    failed_retries = add_run(env, "FAILED", task_id="task-failed", retry_count=3,
                             error_message="Failed after 3 retries: storage unreadable",
                             error_traceback="Traceback (most recent call last):\n  ...",
                             started=T0, completed=T0 + datetime.timedelta(hours=1),
                             metrics={"error_type": "transient_exhausted", "retry_count": 3,
                                      "duration_seconds": 0.5})
    failed_lower = add_run(env, "failed", "instance_etc", error_message="written by a tool")
    failed_latest = add_run(env, "FAILED", task_id="task-perm",
                            error_message="Permanent error: No files found for run 0",
                            started=T0, completed=T0 + datetime.timedelta(hours=2))

    # ---- the views
    rows = {r["id"]: r for r in env.rows("SELECT * FROM cworker_run_status")}
    assert set(rows) == {stored, parsing, complete1, complete2, failed_retries, failed_lower,
                         failed_latest}
    assert rows[stored]["status"] == "STORED" and rows[stored]["progress"] is None
    assert rows[stored]["duration_seconds"] is None
    assert rows[stored]["heartbeat_age_seconds"] is None
    p = rows[parsing]
    assert p["progress"] == progress and p["task_id"] == "task-parsing"
    assert 2.0 <= p["heartbeat_age_seconds"] < 60
    assert 19.0 <= p["duration_seconds"] < 80
    assert rows[complete1]["duration_seconds"] == 12.5
    assert rows[complete2]["duration_seconds"] == 7.5
    assert rows[failed_retries]["duration_seconds"] == 3600.0
    assert rows[failed_lower]["status"] == "FAILED"
    assert rows[failed_lower]["type"] == "INSTANCE_ETC"
    assert rows[failed_lower]["duration_seconds"] is None
    assert rows[complete1]["metrics"] == done_metrics

    expected_metrics = {
        "status_counts": {"STORED": 1, "PARSING": 1, "COMPLETE": 2, "FAILED": 3},
        "retry_stats": {"avg_retries": 5 / 7, "max_retries": 3},
        "avg_duration_seconds": 10.0,
        "recent_failures": [
            {"run_id": failed_latest, "retry_count": 0,
             "error_message": "Permanent error: No files found for run 0",
             "completed_at": "2026-01-02T05:04:05.123456+00:00"},
            {"run_id": failed_retries, "retry_count": 3,
             "error_message": "Failed after 3 retries: storage unreadable",
             "completed_at": "2026-01-02T04:04:05.123456+00:00"},
            {"run_id": failed_lower, "retry_count": 0, "error_message": "written by a tool",
             "completed_at": None},
        ],
    }
    view = env.row("SELECT * FROM cworker_worker_metrics")
    assert view["status_counts"] == expected_metrics["status_counts"]
    assert view["avg_retries"] == pytest.approx(5 / 7, abs=1e-12)
    assert view["max_retries"] == 3 and view["avg_duration_seconds"] == 10.0
    assert view["recent_failures"] == expected_metrics["recent_failures"]

    # ---- cworker status: every state
    rc, out, err = cli(env, "status", stored)
    assert (rc, err) == (0, "")
    assert list(out) == STATUS_KEYS
    assert out == expected_status(env, stored)
    assert out["created_at"] == "2026-01-02T03:04:05.123456+00:00"
    assert out["label"] == "etc" and out["notes"] == "uploaded by ops"

    rc, out, _ = cli(env, "status", parsing)
    assert rc == 0 and out == expected_status(env, parsing, progress)
    assert list(out) == STATUS_KEYS + ["progress"]

    rc, out, _ = cli(env, "status", complete1)  # progress recorded but no longer shown
    assert rc == 0 and out == expected_status(env, complete1)
    assert out["metrics"] == done_metrics  # an object, not a string
    assert out["completed_at"] == "2026-01-02T03:04:17.623456+00:00"

    rc, out, _ = cli(env, "status", complete2)
    assert out["started_at"] == "2026-01-02T03:04:05.000000+00:00"
    assert out["completed_at"] == "2026-01-02T03:04:12.500000+00:00"
    assert out["type"] == "SINGLE_CONF" and out["retry_count"] == 1

    rc, out, _ = cli(env, "status", failed_retries)
    assert rc == 0 and out == expected_status(env, failed_retries)
    assert out["retry_count"] == 3 and out["error_traceback"].startswith("Traceback")
    assert out["metrics"]["error_type"] == "transient_exhausted"

    rc, out, _ = cli(env, "status", failed_lower)
    assert out["status"] == "FAILED" and out["type"] == "INSTANCE_ETC"

    # ---- cworker metrics
    rc, out, err = cli(env, "metrics")
    assert (rc, err) == (0, "")
    assert list(out) == ["status_counts", "retry_stats", "avg_duration_seconds",
                         "recent_failures"]
    assert out["retry_stats"]["avg_retries"] == pytest.approx(5 / 7, abs=1e-12)
    out["retry_stats"]["avg_retries"] = 5 / 7
    assert out == expected_metrics


def test_status_unknown_run_and_bad_arguments(openv):
    rc, out, err = cli(openv, "status", 999999)
    assert rc == 1 and out is None
    assert err.strip() == "cworker status: run 999999 not found"
    for args in (("status",), ("status", "abc"), ("status", "0"), ("status", "1", "2"),
                 ("status", "99999999999"), ("metrics", "1"), ("status", "1", "--bogus")):
        rc, out, err = cli(openv, *args)
        assert rc == 2 and out is None and err.startswith("cworker %s: " % args[0]), (args, err)


def test_commands_without_database(openv):
    bad = "postgresql://cworker:secret-pw@127.0.0.1:1/nowhere?connect_timeout=2"
    for args in (("status", "1"), ("metrics",)):
        rc, out, err = cli(openv, *args, "--database", bad)
        assert rc == 1 and out is None
        assert "cannot connect to PostgreSQL" in err and "secret-pw" not in err


def test_progress_while_parsing(openv, tmp_path):
    """A real slow run shows the worker's progress in `cworker status` while PARSING, and
    none once COMPLETE."""
    hw = HttpWorker(openv, tmp_path / "slow.log",
                    extra_env={"HEARTBEAT_INTERVAL": "0.2",
                               "CWORKER_DEBUG_ENTRY_DELAY_MS": "250"})
    try:
        celery = producer.celery_app(openv.broker_url)
        pconn = openv.producer_conn()
        run_id, _ = producer.create_run(pconn, [paloalto_upload("tar.gz")], str(openv.storage))
        producer.enqueue(pconn, celery, run_id, queue=hw.queue)
        pconn.close()
        seen = None
        deadline = time.time() + 30
        while time.time() < deadline and seen is None:
            rc, out, _ = cli(openv, "status", run_id)
            assert rc == 0
            if out["status"] == "PARSING" and (out.get("progress") or {}).get("files_done") == 0 \
                    and out["progress"]["conf_files_parsed"] >= 2:
                seen = out
            assert out["status"] != "COMPLETE" or seen, "finished before any progress showed"
            time.sleep(0.1)
        assert seen, "no progress seen"
        assert set(seen["progress"]) == PROGRESS_KEYS
        assert seen["progress"]["files_total"] == 1
        assert seen["progress"]["stanzas_so_far"] > 0 and seen["progress"]["bytes_parsed"] > 0
        # The HTTP route says the same thing.
        status, body = hw.get_json("/v1/worker/runs/%d/status" % run_id)
        assert status == 200 and body["status"] in ("PARSING", "COMPLETE")
        row = wait_for_final_status(openv, run_id, timeout=60, worker=hw.worker)
        assert row["status"] == "COMPLETE"
        rc, out, _ = cli(openv, "status", run_id)
        assert "progress" not in out and out["status"] == "COMPLETE"
    finally:
        hw.stop(openv)


# ----------------------------------------------------------------------------- HTTP


def test_healthz_ok(http_worker):
    status, body = http_worker.wait_http(want=200)
    assert body["status"] == "ok" and body["problems"] == []
    assert body["broker_connected"] is True and body["database_connected"] is True
    assert body["executors"] == 2
    assert body["snapshot_age_seconds"] < 10
    status, headers, raw = http_worker.get("/healthz", method="HEAD")
    assert status == 200 and raw == b""


def test_metrics_count_real_runs(openv, http_worker):
    http_worker.wait_http(want=200)
    _, before = scrape(http_worker)
    assert before[("cworker_broker_connected", ())] == 1
    assert before[("cworker_database_connected", ())] == 1
    assert before[("cworker_circuit_breaker_open", ())] == 0
    assert before[("cworker_executors", ())] == 2
    assert task_value(before, "cworker_tasks_received_total") in (None, 0)

    celery = producer.celery_app(openv.broker_url)
    pconn = openv.producer_conn()
    good, _ = producer.create_run(pconn, [paloalto_upload("tar.gz")], str(openv.storage))
    empty, _ = producer.create_run(pconn, [], str(openv.storage))  # no files: permanent
    producer.enqueue(pconn, celery, good, queue=http_worker.queue)
    producer.enqueue(pconn, celery, empty, queue=http_worker.queue)
    http_worker.runs += [good, empty]
    pconn.close()
    assert wait_for_final_status(openv, good, worker=http_worker.worker)["status"] == "COMPLETE"
    assert wait_for_final_status(openv, empty, worker=http_worker.worker)["status"] == "FAILED"

    deadline = time.time() + 10
    while True:
        types, after = scrape(http_worker)
        done = (task_value(after, "cworker_tasks_succeeded_total") or 0) + \
            (task_value(after, "cworker_tasks_failed_total") or 0)
        if done >= 2 or time.time() > deadline:
            break
        time.sleep(0.3)
    assert types["cworker_tasks_received_total"] == "counter"
    assert types["cworker_task_duration_seconds"] == "histogram"
    assert types["cworker_executors_busy"] == "gauge"
    assert task_value(after, "cworker_tasks_received_total") == 2
    assert task_value(after, "cworker_tasks_succeeded_total") == 1
    assert task_value(after, "cworker_tasks_failed_total") == 1
    assert task_value(after, "cworker_tasks_retried_total") == 0
    assert task_value(after, "cworker_task_duration_seconds_count") == 2
    key = ("cworker_task_duration_seconds_bucket", (("le", "+Inf"), ("task", TASK)))
    assert after[key] == 2
    assert 0 < task_value(after, "cworker_task_duration_seconds_sum") < 60
    assert after[("cworker_executors_busy", ())] == 0
    assert after[("cworker_dead_lettered_total", ())] == 0
    for name in ("cworker_retries_waiting", "cworker_tasks_pending"):
        assert name in types


def test_run_routes_equal_the_commands(openv, http_worker):
    http_worker.wait_http(want=200)
    ids = [r["id"] for r in openv.rows("SELECT id FROM ingestion_runs ORDER BY id")]
    assert ids
    for run_id in ids:
        status, body = http_worker.get_json("/v1/worker/runs/%d/status" % run_id)
        rc, out, _ = cli(openv, "status", run_id)
        assert status == 200 and rc == 0
        if out["status"] == "PARSING":  # a heartbeat may land between the two reads
            body.pop("progress", None), out.pop("progress", None)
            body.pop("last_heartbeat"), out.pop("last_heartbeat")
        assert body == out
    status, body = http_worker.get_json("/v1/worker/metrics")
    rc, out, _ = cli(openv, "metrics")
    assert status == 200 and rc == 0 and body == out


def test_http_errors(http_worker):
    http_worker.wait_http()
    status, body = http_worker.get_json("/v1/worker/runs/987654/status")
    assert status == 404 and body == {"detail": "Run with id 987654 not found"}
    for path in ("/nope", "/runs/abc", "/v1/worker/runs/abc/status", "/v1/worker/runs/0/status",
                 "/v1/worker/runs/1/status/x", "/v1/worker/runs//status",
                 "/v1/worker/runs/99999999999999999999/status", "/healthz/"):
        status, _, _ = http_worker.get(path)
        assert status == 404, path
    for method in ("POST", "PUT", "DELETE"):
        status, headers, _ = http_worker.get("/metrics", method=method, data=b"x=1")
        assert status == 405 and "GET" in headers["Allow"], method
    # Garbage on the socket is refused, and the listener keeps serving.
    with socket.create_connection(("127.0.0.1", http_worker.port), timeout=5) as s:
        s.sendall(b"\x00\xffNOT HTTP\r\n\r\n")
        try:
            s.recv(1024)
        except (ConnectionError, socket.timeout):
            pass
    assert http_worker.get("/healthz")[0] == 200


def test_healthz_503_when_broker_unreachable(openv, tmp_path):
    """A worker pointed at a port where no broker listens: its listener says why."""
    hw = HttpWorker(openv, tmp_path / "nobroker.log", wait=False,
                    extra_env={"CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:%d//"
                               % free_port()})
    try:
        status, body = hw.wait_http(want=503)
        assert body["status"] == "unavailable"
        assert body["broker_connected"] is False and body["database_connected"] is True
        assert "broker not connected" in body["problems"]
        _, samples = scrape(hw)
        assert samples[("cworker_broker_connected", ())] == 0
        assert samples[("cworker_database_connected", ())] == 1
    finally:
        rc = hw.worker.stop()
        hw.worker.check_log()
        assert rc == 0, hw.worker.tail()


def test_healthz_503_when_database_unreachable(openv, tmp_path):
    hw = HttpWorker(openv, tmp_path / "nodb.log", wait=False,
                    extra_env={"DATABASE_URL": "postgresql://cworker:secret-pw@127.0.0.1:%d/x"
                               % free_port()})
    try:
        status, body = hw.wait_http(want=503)
        assert body["database_connected"] is False
        assert any("PostgreSQL" in p for p in body["problems"]), body
        assert "secret-pw" not in json.dumps(body)
        _, samples = scrape(hw)
        assert samples[("cworker_database_connected", ())] == 0
    finally:
        hw.worker.stop()
        hw.worker.check_log()
        assert "secret-pw" not in hw.worker.log()


def test_json_logs(openv, http_worker):
    """LOG_FORMAT=json: every line is one JSON object with ts/level/msg; the lines about a
    task carry its task_id and run_id; no password anywhere."""
    assert http_worker.runs, "the HTTP tests ran no task"
    runs = openv.rows("SELECT id, task_id FROM ingestion_runs WHERE id = ANY(%s)",
                      (http_worker.runs,))
    text = http_worker.worker.log()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    assert lines
    records = []
    for line in lines:
        rec = json.loads(line)
        assert isinstance(rec, dict), line
        assert {"ts", "level", "msg"} <= set(rec), line
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", rec["ts"]), line
        assert rec["level"] in ("DEBUG", "INFO", "WARNING", "ERROR"), line
        records.append(rec)
    for run in runs:
        # Every line about the task -- the supervisor's as well as the executor's -- says
        # which task and which run in its own fields, so operators can filter on them.
        about = [r for r in records
                 if r.get("task_id") == run["task_id"] or run["task_id"] in r["msg"]]
        assert about, "no log line about task %s" % run["task_id"]
        for r in about:
            assert (r.get("task_id"), r.get("run_id")) == (run["task_id"], run["id"]), r
    for secret in (openv.database_url, openv.broker_url, ":cworker@", ":guest@"):
        assert secret not in text


# ----------------------------------------------------------------------------- deployment


def test_compose_file_is_valid():
    compose = shutil.which("docker-compose")
    cmd = [compose] if compose else None
    if cmd is None and shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        cmd = ["docker", "compose"] if probe.returncode == 0 else None
    if cmd is None:
        pytest.skip("neither docker-compose nor the docker compose plugin is installed")
    r = subprocess.run(cmd + ["-f", str(REPO / "docker" / "docker-compose.yml"), "config", "-q"],
                       capture_output=True, text=True, timeout=60, cwd=str(REPO))
    assert r.returncode == 0, r.stderr
