#!/usr/bin/python3
"""Producer side of cworker's contract, done exactly as the Python application does it.

CONTRACT 1.5: the application (POST /v1/runs, POST /v1/runs/{id}/parse) creates an
`ingestion_runs` row (status STORED), a `files` row per upload, stores the upload under the
storage root at `stored_object_key`, then calls `parse_run.delay(run_id)` and only AFTER
publishing commits status PARSING, task_id, started_at, last_heartbeat and clears the error
columns. This module reproduces that, with the real Celery 5 client.

Importable helpers (used by tests/integration and tests/env/demo.sh) and a CLI:

    producer.py build  --src DIR --format tar.gz --top Splunk_TA_paloalto -o out.tar.gz
    producer.py create UPLOAD [--type APP_BUNDLE] [--name NAME]      -> prints run id
    producer.py enqueue RUN_ID [--queue Q] [--kwargs]                 -> prints task id
    producer.py submit --src DIR --format tar.gz --top NAME [--type T] [--queue Q]
                                                                     -> prints JSON
    producer.py publish-raw --queue Q --body '...' [--content-type T] [--header k=v]

Environment: DATABASE_URL, CELERY_BROKER_URL, STORAGE_PATH (as the application).

Celery routing (verified by capturing kombu's Producer._publish with Celery 5.2.6 / kombu
5.2.4 against RabbitMQ 3.10): `send_task(name, args)` publishes to the DEFAULT exchange ""
with routing key "celery"; `send_task(..., queue="Q")` publishes to exchange "" with routing
key "Q". Before publishing, kombu declares the queue: exchange "Q" (direct, durable),
queue "Q" (durable, no arguments) and the binding Q -> Q with routing key "Q" — so a
message sent before any worker runs is kept. Messages are persistent (delivery_mode 2).
"""

import argparse
import datetime
import hashlib
import io
import json
import os
import sys
import tarfile
import zipfile

import psycopg2

TASK_NAME = "app.worker.tasks.parse_run"
APP_NAME = "splunk_auto_doc"

FORMATS = ("tar.gz", "tgz", "spl", "tar", "zip", "conf")


# ----------------------------------------------------------------------------- uploads


def _walk(src):
    """Regular files under src, sorted, as (absolute path, path relative to src)."""
    out = []
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for f in sorted(files):
            full = os.path.join(root, f)
            out.append((full, os.path.relpath(full, src)))
    return out


def build_upload_bytes(src, fmt, top=None):
    """Return the bytes of an upload built from `src`.

    fmt: tar.gz|tgz|spl (gzip tar), tar, zip, or conf (src is then one file, returned
    as is). Entries are `<top>/<relative path>` when top is given (an app bundle whose
    top folder is the app, as `tar czf X.tgz Splunk_TA_paloalto/` makes it), with the
    directory entries tar/zip tools write too.
    """
    if fmt == "conf":
        with open(src, "rb") as f:
            return f.read()
    if fmt not in FORMATS:
        raise ValueError("unknown format %r" % fmt)
    files = _walk(src)
    names = []
    dirs = set()
    for full, rel in files:
        name = rel if not top else top + "/" + rel
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
        names.append((full, name))
    buf = io.BytesIO()
    if fmt == "zip":
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for d in sorted(dirs):
                z.writestr(d + "/", b"")
            for full, name in names:
                z.write(full, name)
    else:
        mode = "w" if fmt == "tar" else "w:gz"
        with tarfile.open(fileobj=buf, mode=mode, format=tarfile.PAX_FORMAT) as t:
            for d in sorted(dirs):
                info = tarfile.TarInfo(d)
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                t.addfile(info)
            for full, name in names:
                t.add(full, arcname=name, recursive=False)
    return buf.getvalue()


def build_upload(src, fmt, out_path, top=None):
    """Write build_upload_bytes(...) to out_path; return out_path."""
    data = build_upload_bytes(src, fmt, top)
    with open(out_path, "wb") as f:
        f.write(data)
    return out_path


# ----------------------------------------------------------------------------- database


def connect(database_url=None):
    """psycopg2 connection to DATABASE_URL (postgresql://...)."""
    return psycopg2.connect(database_url or os.environ["DATABASE_URL"])


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def create_run(conn, uploads, storage_path=None, run_type="APP_BUNDLE", label=None,
               status="STORED", notes=None):
    """Create a run as POST /v1/runs does; return (run_id, [file ids]).

    uploads: list of (filename, bytes) or of dicts {"name", "data", optional "sha256",
    "size_bytes", "store": False to skip writing the blob, "key" to override
    stored_object_key}. The blob is written under storage_path at stored_object_key
    `runs/<run_id>/<filename>`; the files row gets the real sha256 and size unless
    overridden (the checksum-mismatch test).
    """
    storage_path = storage_path or os.environ["STORAGE_PATH"]
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO ingestion_runs (created_at, type, label, status, notes, retry_count)"
            " VALUES (%s, %s, %s, %s, %s, 0) RETURNING id",
            (now(), run_type, label, status, notes))
        run_id = cur.fetchone()[0]
        file_ids = []
        for up in uploads:
            if not isinstance(up, dict):
                up = {"name": up[0], "data": up[1]}
            name, data = up["name"], up["data"]
            key = up.get("key") or "runs/%d/%s" % (run_id, name)
            sha = up.get("sha256") or hashlib.sha256(data).hexdigest()
            size = up.get("size_bytes", len(data))
            if up.get("store", True):
                dest = os.path.join(storage_path, key)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                with open(dest, "wb") as f:
                    f.write(data)
            cur.execute(
                "INSERT INTO files (run_id, path, sha256, size_bytes, stored_object_key)"
                " VALUES (%s, %s, %s, %s, %s) RETURNING id",
                (run_id, name, sha, size, key))
            file_ids.append(cur.fetchone()[0])
    conn.commit()
    return run_id, file_ids


def mark_parsing(conn, run_id, task_id):
    """What the API commits AFTER parse_run.delay() returned (CONTRACT 1.5)."""
    ts = now()
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE ingestion_runs SET status = 'PARSING', task_id = %s, started_at = %s,"
            " last_heartbeat = %s, error_message = NULL, error_traceback = NULL"
            " WHERE id = %s",
            (task_id, ts, ts, run_id))
    conn.commit()


# ----------------------------------------------------------------------------- Celery


def celery_app(broker_url=None):
    """The application's Celery client configuration."""
    from celery import Celery

    app = Celery(APP_NAME, broker=broker_url or os.environ["CELERY_BROKER_URL"])
    app.conf.update(task_serializer="json", accept_content=["json"], task_acks_late=True)
    return app


def send_parse_run(app, run_id, queue=None, as_kwargs=False, serializer=None,
                   task_name=TASK_NAME, **options):
    """parse_run.delay(run_id) equivalent; return the task id.

    as_kwargs sends kwargs={"run_id": id} instead of args=[id]; serializer overrides the
    JSON serializer (the pickle test); options go to send_task (countdown, expires, ...).
    """
    kw = dict(options)
    if queue:
        kw["queue"] = queue
    if serializer:
        kw["serializer"] = serializer
    if as_kwargs:
        res = app.send_task(task_name, kwargs={"run_id": run_id}, **kw)
    else:
        res = app.send_task(task_name, args=[run_id], **kw)
    return res.id


def enqueue(conn, app, run_id, queue=None, as_kwargs=False, serializer=None,
            mark=True, **options):
    """POST /v1/runs/{id}/parse: publish, then commit PARSING (the app's real order)."""
    task_id = send_parse_run(app, run_id, queue=queue, as_kwargs=as_kwargs,
                             serializer=serializer, **options)
    if mark:
        mark_parsing(conn, run_id, task_id)
    return task_id


def submit(conn, app, src, fmt="tar.gz", top=None, run_type=None, name=None,
           storage_path=None, queue=None, as_kwargs=False):
    """Build an upload from src, create the run and enqueue it; return (run_id, task_id)."""
    data = build_upload_bytes(src, fmt, top)
    if run_type is None:
        run_type = "SINGLE_CONF" if fmt == "conf" else "APP_BUNDLE"
    if name is None:
        base = os.path.basename(src.rstrip("/")) if fmt == "conf" else (top or "upload")
        name = base if fmt == "conf" else "%s.%s" % (base, fmt)
    run_id, _ = create_run(conn, [(name, data)], storage_path, run_type=run_type)
    task_id = enqueue(conn, app, run_id, queue=queue, as_kwargs=as_kwargs)
    return run_id, task_id


# ----------------------------------------------------------------------------- raw AMQP


def publish_raw(broker_url, queue, body, content_type="application/json",
                content_encoding="utf-8", headers=None, properties=None, declare=True):
    """Publish one hand-made message to the default exchange with routing key `queue`.

    body: bytes or str, sent as is (no serialization). headers: AMQP table. properties:
    extra basic properties (correlation_id, reply_to, delivery_mode, expiration, ...).
    With declare, the queue is declared as kombu/Celery declares it (see module doc).
    """
    from kombu import Connection, Exchange, Queue

    if isinstance(body, str):
        body = body.encode("utf-8")
    props = {"delivery_mode": 2}
    props.update(properties or {})
    with Connection(broker_url or os.environ["CELERY_BROKER_URL"]) as conn:
        producer = conn.Producer()
        decl = [Queue(queue, Exchange(queue, "direct"), routing_key=queue)] if declare else []
        producer.publish(body, exchange="", routing_key=queue, content_type=content_type,
                         content_encoding=content_encoding, headers=headers or {},
                         declare=decl, retry=True, **props)


def celery_v2_headers(task_id, task=TASK_NAME, args=(), kwargs=None, **overrides):
    """Protocol 2 headers as Celery 5.2 writes them (CONTRACT 1.1), for raw messages."""
    kwargs = kwargs or {}
    h = {
        "lang": "py", "task": task, "id": task_id, "shadow": None, "eta": None,
        "expires": None, "group": None, "group_index": None, "retries": 0,
        "timelimit": [None, None], "root_id": task_id, "parent_id": None,
        "argsrepr": repr(list(args)), "kwargsrepr": repr(kwargs),
        "origin": "gen%d@producer.py" % os.getpid(), "ignore_result": False,
    }
    h.update(overrides)
    return h


def celery_v2_body(args=(), kwargs=None):
    return json.dumps([list(args), kwargs or {},
                       {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])


# ----------------------------------------------------------------------------- CLI


def _main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    b = sub.add_parser("build", help="build an upload from a directory")
    b.add_argument("--src", required=True)
    b.add_argument("--format", choices=FORMATS, default="tar.gz")
    b.add_argument("--top")
    b.add_argument("-o", "--output", required=True)

    c = sub.add_parser("create", help="create a STORED run from an upload file")
    c.add_argument("upload")
    c.add_argument("--type", default="APP_BUNDLE")
    c.add_argument("--name", help="uploaded file name (default: basename)")
    c.add_argument("--label")

    e = sub.add_parser("enqueue", help="publish parse_run and mark the run PARSING")
    e.add_argument("run_id", type=int)
    e.add_argument("--queue")
    e.add_argument("--kwargs", action="store_true")

    s = sub.add_parser("submit", help="build + create + enqueue")
    s.add_argument("--src", required=True)
    s.add_argument("--format", choices=FORMATS, default="tar.gz")
    s.add_argument("--top")
    s.add_argument("--type")
    s.add_argument("--name")
    s.add_argument("--queue")
    s.add_argument("--kwargs", action="store_true")

    r = sub.add_parser("publish-raw", help="publish one raw AMQP message")
    r.add_argument("--queue", required=True)
    r.add_argument("--body", required=True)
    r.add_argument("--content-type", default="application/json")
    r.add_argument("--header", action="append", default=[], help="k=v (v parsed as JSON"
                   " when possible)")

    a = p.parse_args(argv)
    if a.cmd == "build":
        build_upload(a.src, a.format, a.output, a.top)
        print(a.output)
    elif a.cmd == "create":
        with open(a.upload, "rb") as f:
            data = f.read()
        conn = connect()
        run_id, _ = create_run(conn, [(a.name or os.path.basename(a.upload), data)],
                               run_type=a.type, label=a.label)
        print(run_id)
    elif a.cmd == "enqueue":
        conn = connect()
        print(enqueue(conn, celery_app(), a.run_id, queue=a.queue, as_kwargs=a.kwargs))
    elif a.cmd == "submit":
        conn = connect()
        run_id, task_id = submit(conn, celery_app(), a.src, a.format, a.top, a.type,
                                 a.name, queue=a.queue, as_kwargs=a.kwargs)
        print(json.dumps({"run_id": run_id, "task_id": task_id}))
    elif a.cmd == "publish-raw":
        headers = {}
        for kv in a.header:
            k, _, v = kv.partition("=")
            try:
                headers[k] = json.loads(v)
            except ValueError:
                headers[k] = v
        publish_raw(None, a.queue, a.body, content_type=a.content_type, headers=headers)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
