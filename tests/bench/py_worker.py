"""The Python baseline for `make bench`: `app.worker.tasks.parse_run` as the Python
application's own Celery 5 worker would run it (CONTRACT 1.5-1.6), so that cworker is
compared with an honest, reasonably efficient implementation rather than a strawman.

    cd tests/bench && PYTHONPATH=../py python3 -m celery -A py_worker worker -Q QUEUE \
        -c 2 --pool prefork --without-gossip --without-mingle

Environment: CELERY_BROKER_URL, DATABASE_URL, STORAGE_PATH (as the application).

What it does per task: load the run, record task id / retry count / PARSING / heartbeat
(commit), load the `files` rows, read each blob from STORAGE_PATH, verify its SHA-256,
open it by content (tar, tar.gz/bz2/xz, zip, or a bare .conf) in memory, parse every
regular `.conf` entry with the reference reader (tests/py/splunk_conf_ref.py, the same
rules the integration tests hold cworker to), derive conf_type and app/scope/layer from
the entry's path, and write the stanza rows with psycopg2.extras.execute_values (batched)
in one transaction together with status COMPLETE, completed_at and the metrics.

What it does NOT do (each makes the baseline faster, so ratios stay conservative):
- no typed projections (inputs, props, transforms, indexes, outputs, serverclasses);
- no heartbeats during the run, no per-run advisory lock, no record of the task's outcome
  for the application's late-PARSING race, no retries with delay queues, no limits on
  hostile archives beyond what tarfile/zipfile do, no result backend (as the app).
"""

import hashlib
import io
import json
import os
import sys
import tarfile
import time
import zipfile

import psycopg2
import psycopg2.extras
from celery import Celery
from celery.signals import worker_process_init

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "py"))
import splunk_conf_ref  # noqa: E402

# The application's Celery configuration (tests/py/producer.py celery_app), nothing tuned.
app = Celery("splunk_auto_doc", broker=os.environ.get("CELERY_BROKER_URL"))
app.conf.update(task_serializer="json", accept_content=["json"], task_acks_late=True)

APP_CONTAINERS = {"apps", "deployment-apps", "manager-apps", "master-apps", "slave-apps",
                  "peer-apps"}
PAGE_SIZE = 1000  # execute_values rows per INSERT statement

_conn = None


@worker_process_init.connect
def _forget_parent_connection(**_):
    """Each pool process opens its own connection (never share one across fork)."""
    global _conn
    _conn = None


def db():
    """This process's connection, opened on first use and kept (as an engine pool would)."""
    global _conn
    if _conn is None or _conn.closed:
        _conn = psycopg2.connect(os.environ["DATABASE_URL"])
    return _conn


class PermanentError(Exception):
    pass


# ----------------------------------------------------------------------------- paths


def normalize(name):
    """The entry's path inside the archive, or None for absolute or `..` paths."""
    if name.startswith("/"):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def provenance(path):
    """(app, scope, layer) from the entry's path, the rules of CONTRACT 1.6."""
    c = path.split("/")
    if len(c) < 3:
        return None, None, None
    s = len(c) - 2
    if c[s] not in ("default", "local"):
        return None, None, None
    if s >= 2 and c[s - 2] in APP_CONTAINERS:
        return c[s - 1], c[s], "app"
    if c[s - 1] == "system":
        return None, c[s], "system"
    if s >= 3 and c[s - 3] == "users":
        return c[s - 1], c[s], "user"
    if s == 1 and c[0] != "etc":
        return c[0], c[s], "app"
    return None, None, None


# ----------------------------------------------------------------------------- archives


def conf_entries(data, filename):
    """Yield (path inside the archive, bytes) for every regular .conf entry, by content."""
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for info in z.infolist():
                path = normalize(info.filename)
                if path and not info.is_dir() and path.endswith(".conf"):
                    yield path, z.read(info)
        return
    try:
        t = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
    except tarfile.TarError:
        if data[:2] in (b"\x1f\x8b", b"BZ") or data[:6] == b"\xfd7zXZ\x00":
            raise PermanentError("Invalid archive format: corrupt compressed archive")
        yield filename, data  # a bare .conf file (SINGLE_CONF)
        return
    try:
        with t:
            for m in t:
                path = normalize(m.name)
                if path and m.isreg() and path.endswith(".conf"):
                    yield path, t.extractfile(m).read()
    except (tarfile.TarError, EOFError, OSError) as e:
        raise PermanentError("Invalid archive format: %s" % e)


# ----------------------------------------------------------------------------- the task


@app.task(name="app.worker.tasks.parse_run", bind=True)
def parse_run(self, run_id):
    started = time.monotonic()
    conn = db()
    try:
        return _parse_run(self, conn, run_id, started)
    except Exception as e:
        conn.rollback()
        permanent = isinstance(e, PermanentError)
        with conn.cursor() as cur:
            cur.execute(
                "UPDATE ingestion_runs SET status = 'FAILED', completed_at = now(),"
                " error_message = %s, metrics = %s WHERE id = %s",
                ("%s error: %s" % ("Permanent" if permanent else "Unexpected", e),
                 json.dumps({"duration_seconds": round(time.monotonic() - started, 3),
                             "error_type": "permanent" if permanent else "unexpected"}),
                 run_id))
        conn.commit()
        raise


def _parse_run(task, conn, run_id, started):
    retries = task.request.retries or 0
    with conn.cursor() as cur:
        cur.execute("SELECT status FROM ingestion_runs WHERE id = %s", (run_id,))
        row = cur.fetchone()
        if row is None:
            raise PermanentError("Run %s not found" % run_id)
        if row[0].upper() == "COMPLETE":
            conn.rollback()
            return {"run_id": run_id, "status": "already_completed", "duration_seconds": 0}
        cur.execute(
            "UPDATE ingestion_runs SET status = 'PARSING', task_id = %s, retry_count = %s,"
            " started_at = COALESCE(started_at, now()), last_heartbeat = now() WHERE id = %s",
            (task.request.id, retries, run_id))
    conn.commit()

    with conn.cursor() as cur:
        cur.execute("SELECT id, path, sha256, stored_object_key FROM files WHERE run_id = %s"
                    " ORDER BY id", (run_id,))
        files = cur.fetchall()
    if not files:
        raise PermanentError("No files found for run %s" % run_id)

    storage = os.environ.get("STORAGE_PATH", "/data/storage")
    rows, errors, files_parsed = [], [], 0
    for file_id, name, sha, key in files:
        with open(os.path.join(storage, key), "rb") as f:
            data = f.read()
        if hashlib.sha256(data).hexdigest() != sha.lower():
            raise PermanentError("Checksum mismatch for %s" % name)
        for path, raw in conf_entries(data, name):
            try:
                stanzas = splunk_conf_ref.parse(raw.decode("utf-8"))
            except UnicodeDecodeError as e:
                errors.append({"file": path, "error": "not UTF-8: %s" % e})
                continue
            files_parsed += 1
            ctype = splunk_conf_ref.conf_type(path)
            app_name, scope, layer = provenance(path)
            for order, (stanza, kv) in enumerate(stanzas):
                rows.append((run_id, file_id, ctype, stanza, app_name, scope, layer, order,
                             path, json.dumps(kv)))

    duration = round(time.monotonic() - started, 3)
    metrics = {"files_parsed": files_parsed, "stanzas_created": len(rows),
               "typed_projections": None, "typed_projections_skipped": True,
               "duration_seconds": duration, "parse_errors": len(errors),
               "retry_count": retries}
    with conn.cursor() as cur:
        # One transaction: a redelivered message replaces rather than duplicates.
        cur.execute("DELETE FROM stanzas WHERE run_id = %s", (run_id,))
        psycopg2.extras.execute_values(
            cur,
            "INSERT INTO stanzas (run_id, file_id, conf_type, name, app, scope, layer,"
            " order_in_file, source_path, raw_kv) VALUES %s",
            rows, page_size=PAGE_SIZE)
        cur.execute(
            "UPDATE ingestion_runs SET status = 'COMPLETE', completed_at = now(),"
            " error_message = NULL, error_traceback = NULL, metrics = %s WHERE id = %s",
            (json.dumps(metrics), run_id))
    conn.commit()
    return {"run_id": run_id, "status": "completed", "files_parsed": files_parsed,
            "stanzas_created": len(rows), "typed_projections": None,
            "duration_seconds": duration, "parse_errors": errors or None}
