"""Helpers for the fault-injection integration tests (tests/integration/test_failures.py,
test_outages.py): workers started with per-test settings on per-test queues, process
surgery (the worker's executor children, signals), database polling that survives a
PostgreSQL restart, and the independent stanza counts a finished run is checked against.

Nothing here knows how the worker is built inside: processes are found with pgrep, the
outcome is read from the application's tables and from RabbitMQ.
"""

import math
import os
import re
import signal
import socket
import subprocess
import time
import uuid

from pathlib import Path

import psycopg2
import pytest

import producer
import splunk_conf_ref

PALOALTO = Path(__file__).resolve().parents[1] / "testdata" / "splunk_ta_paloalto"
PAL_TOP = "Splunk_TA_paloalto"
_PAL = {}

TYPED = ("inputs", "props", "transforms", "indexes", "outputs", "serverclasses")
FINAL = ("COMPLETE", "FAILED")

# Fast settings every fault test starts from; a test overrides what it exercises.
BASE_SETTINGS = {
    "RETRY_DELAYS": "1,2,3",
    "MAX_RETRIES": "3",
    "RETRY_JITTER": "0",
    "SHUTDOWN_GRACE": "15",
    "CONCURRENCY": "2",
}


# ----------------------------------------------------------------------------- names


def delay_name(delay):
    """How the worker spells a delay in a retry queue name: %.0f when integral, else %g."""
    d = float(delay)
    return "%.0f" % d if d == math.floor(d) else "%g" % d


def retry_queue(queue, delay):
    return "%s.retry.%ss" % (queue, delay_name(delay))


def retry_queues(queue, delays):
    return [retry_queue(queue, d) for d in str(delays).split(",") if d.strip()]


def free_port():
    """A loopback TCP port nothing listens on now (for a worker's --http, a proxy)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unique_queue(kind, test_name):
    slug = re.sub(r"[^A-Za-z0-9]+", "_", test_name)[:40].strip("_")
    return "cwit.%s.%s.%s" % (kind, slug, uuid.uuid4().hex[:8])


# ----------------------------------------------------------------------------- waiting


def wait_until(fn, timeout, what, interval=0.1):
    """Call fn until it returns something truthy; return it, or fail after timeout."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    pytest.fail("%s: not after %.0f s (last: %r)" % (what, timeout, last))


def db_retry(env, fn, timeout=60.0):
    """fn(env) with the test's own connection re-made when PostgreSQL went away."""
    deadline = time.time() + timeout
    while True:
        try:
            return fn(env)
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            if env._conn is not None:
                try:
                    env._conn.close()
                except Exception:
                    pass
            env._conn = None
            if time.time() > deadline:
                raise
            time.sleep(0.3)


def run_row(env, run_id):
    return db_retry(env, lambda e: e.run(run_id))


def wait_final(env, run_id, timeout=60.0, workers=()):
    """Poll the run until COMPLETE or FAILED (surviving database restarts)."""
    deadline = time.time() + timeout
    row = None
    while time.time() < deadline:
        row = run_row(env, run_id)
        if row is not None and row["status"] in FINAL:
            return row
        for w in workers:
            if not w.alive() and not getattr(w, "expected_exit", False):
                pytest.fail("worker died (exit %s) while run %s was %s:\n%s"
                            % (w.proc.returncode, run_id, row and row["status"], w.tail()))
        time.sleep(0.1)
    tails = "".join("\n--- worker log %s:\n%s" % (w.log_path, w.tail(60)) for w in workers)
    pytest.fail("run %s not final after %.0f s (row: %r)%s" % (run_id, timeout, row, tails))


def wait_all_final(env, run_ids, timeout=90.0, workers=()):
    deadline = time.time() + timeout
    return {r: wait_final(env, r, max(1.0, deadline - time.time()), workers) for r in run_ids}


def wait_queue_settled(env, queue, timeout=30.0):
    """Until `queue` holds no ready and no unacked message, twice in a row."""
    zeros = 0

    def settled():
        nonlocal zeros
        zeros = zeros + 1 if env.ctl_counts(queue) == (0, 0) else 0
        return zeros >= 2

    wait_until(settled, timeout, "queue %s drained (%r)" % (queue, queue), interval=0.3)


# ----------------------------------------------------------------------------- processes


def children(pid):
    """Pids of the direct children of pid (the worker's executors)."""
    r = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in r.stdout.split()]


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def kill(pid, sig=signal.SIGKILL):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def wait_gone(pids, timeout=15.0):
    """True when every pid has ended within timeout."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not [p for p in pids if alive(p)]:
            return True
        time.sleep(0.1)
    return False


# ----------------------------------------------------------------------------- runs


def create_run(env, upload, run_type="APP_BUNDLE"):
    pconn = env.producer_conn()
    try:
        run_id, _ = producer.create_run(pconn, [upload], str(env.storage), run_type=run_type)
    finally:
        pconn.close()
    return run_id


def enqueue(env, celery, run_id, queue, **options):
    """POST /v1/runs/{id}/parse: publish, then commit PARSING (the application's order)."""
    pconn = env.producer_conn()
    try:
        return producer.enqueue(pconn, celery, run_id, queue=queue, **options)
    finally:
        pconn.close()


def submit(env, celery, upload, queue, run_type="APP_BUNDLE", **options):
    """Create a run from one upload and enqueue it; return (run_id, task_id)."""
    run_id = create_run(env, upload, run_type)
    return run_id, enqueue(env, celery, run_id, queue, **options)


def store_blob(env, run_id, name, data):
    """Write the upload where the application would have (storage catching up)."""
    dest = os.path.join(str(env.storage), "runs/%d/%s" % (run_id, name))
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with open(dest + ".tmp", "wb") as f:
        f.write(data)
    os.rename(dest + ".tmp", dest)


_REFERENCE = {}


def reference_counts(path, top=None):
    """{conf_type: stanzas} for the tree under path, from the independent reader."""
    key = (str(path), top)
    if key not in _REFERENCE:
        _REFERENCE[key] = splunk_conf_ref.counts_by_type(splunk_conf_ref.parse_tree(str(path),
                                                                                    top=top))
    return _REFERENCE[key]


def row_counts(env, run_id):
    """{table: rows of run_id} for stanzas and every typed table."""
    def q(e):
        return {t: e.scalar("SELECT count(*) FROM %s WHERE run_id = %%s" % t, (run_id,))
                for t in ("stanzas",) + TYPED}
    return db_retry(env, q)


def assert_parsed_once(env, run_id, expected_by_type, retry_count=None):
    """The run is COMPLETE and holds exactly one set of rows: stanza counts per conf_type
    equal the independent count, no (source_path, order_in_file) twice, typed rows equal
    the metrics. Returns the run row."""
    run = run_row(env, run_id)
    assert run["status"] == "COMPLETE", run
    assert run["completed_at"] is not None and run["error_message"] is None, run
    got = dict((r["conf_type"], r["n"]) for r in db_retry(env, lambda e: e.rows(
        "SELECT conf_type, count(*) AS n FROM stanzas WHERE run_id = %s GROUP BY 1",
        (run_id,))))
    assert got == expected_by_type, (run_id, got, expected_by_type)
    dups = db_retry(env, lambda e: e.scalar(
        "SELECT count(*) FROM (SELECT source_path, order_in_file FROM stanzas WHERE run_id = %s"
        " GROUP BY 1, 2 HAVING count(*) > 1) d", (run_id,)))
    assert dups == 0, "run %s has duplicated stanzas" % run_id
    m = run["metrics"]
    assert m["stanzas_created"] == sum(expected_by_type.values()), m
    counts = row_counts(env, run_id)
    for t in TYPED:
        assert counts[t] == m["typed_projections"][t], (t, counts, m)
    if retry_count is not None:
        assert run["retry_count"] == retry_count, run
        assert m["retry_count"] == retry_count, m
    return run


def assert_untouched(env, run_id):
    """No rows were written for run_id."""
    counts = row_counts(env, run_id)
    assert not any(counts.values()), (run_id, counts)


def log_count(worker, pattern):
    return len(re.findall(pattern, worker.log()))


# ----------------------------------------------------------------------------- workers


class WorkerPool:
    """Workers a test starts on its own queue with its own settings. At teardown every
    worker still running gets SIGTERM and must exit 0 (unless the test marked it
    `expected_exit`), no log may hold a sanitizer report, and the test's queues go. ERROR
    lines the test did not declare fail it too (conftest.check_error_lines)."""

    def __init__(self, env, queue, tmp_path, worker_cls):
        self.env = env
        self.queue = queue
        self.tmp_path = tmp_path
        self.worker_cls = worker_cls
        self.workers = []
        self.delays = set(BASE_SETTINGS["RETRY_DELAYS"].split(","))
        self.extra_queues = []

    def start(self, wait=True, queue=None, expect_errors=(), **settings):
        """Start `cworker run` on the test's queue (or `queue`, which the pool then also
        deletes at the end) with BASE_SETTINGS updated by settings. expect_errors: regexes
        of ERROR lines this worker may log (beyond the test's expect_log_errors marker)."""
        if queue and queue not in self.extra_queues:
            self.extra_queues.append(queue)
        s = dict(BASE_SETTINGS)
        s.update({k: str(v) for k, v in settings.items()})
        self.delays.update(d for d in s["RETRY_DELAYS"].split(",") if d.strip())
        log = self.tmp_path / ("worker%d.log" % len(self.workers))
        w = self.worker_cls(self.env, queue or self.queue, log, s, expect_errors)
        w.settings = s
        w.expected_exit = False
        self.workers.append(w)
        if wait:
            w.wait_ready()
        return w

    def logs(self):
        return "".join("\n--- %s:\n%s" % (w.log_path, w.tail(60)) for w in self.workers)

    def close(self):
        problems = []
        for w in self.workers:
            was_alive = w.alive()
            rc = w.stop(timeout=60)
            if not w.expected_exit and not was_alive:
                problems.append("worker %s died during the test (exit %s):\n%s"
                                % (w.log_path, rc, w.tail()))
            elif not w.expected_exit and rc != 0:
                problems.append("worker %s exited %s after SIGTERM:\n%s" % (w.log_path, rc,
                                                                            w.tail()))
        for w in self.workers:
            w.check_log()
        names = []
        for q in [self.queue] + self.extra_queues:
            names += [q, q + ".dead"] + [retry_queue(q, d) for d in sorted(self.delays)]
        try:
            self.env.delete_queues(*names)
        except Exception:
            pass
        if problems:
            pytest.fail("\n".join(problems))


# ----------------------------------------------------------------------------- broker


def ctl_all(env):
    """{queue: (ready, unacked)} for every queue, from one rabbitmqctl call."""
    out = subprocess.run(env.rabbitmqctl + ["-q", "list_queues", "name", "messages_ready",
                                            "messages_unacknowledged"],
                         check=True, capture_output=True, text=True).stdout
    counts = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[1].isdigit():
            counts[parts[0]] = (int(parts[1]), int(parts[2]))
    return counts


def wait_counts(env, queue, expected, timeout=10.0):
    """Until rabbitmqctl reports (ready, unacked) == expected for queue."""
    deadline = time.time() + timeout
    got = None
    while time.time() < deadline:
        got = env.ctl_counts(queue)
        if got == expected:
            return
        time.sleep(0.2)
    pytest.fail("queue %s: (ready, unacked) = %r, expected %r" % (queue, got, expected))


def assert_queues_empty(env, *queues):
    """Every queue named holds no ready and no unacked message (or does not exist)."""
    counts = ctl_all(env)
    full = dict((q, counts[q]) for q in queues if counts.get(q, (0, 0)) != (0, 0))
    assert not full, "messages left (ready, unacked): %r" % full


def queue_info(env, queue):
    """{"durable": bool, "arguments": {name: value}} from rabbitmqctl, or None."""
    import json

    out = subprocess.run(env.rabbitmqctl + ["-q", "--formatter", "json", "list_queues", "name",
                                            "durable", "arguments"],
                         check=True, capture_output=True, text=True).stdout
    for q in json.loads(out or "[]"):
        if q["name"] == queue:
            args = q["arguments"]
            if isinstance(args, list):
                args = dict((a[0], a[-1]) for a in args)
            return {"durable": q["durable"], "arguments": args}
    return None


def text(v):
    return v.decode() if isinstance(v, bytes) else v


# ----------------------------------------------------------------------------- uploads


def pal_upload():
    """The paloalto app as the user uploads it (tar.gz, 16 .conf entries), built once."""
    if "up" not in _PAL:
        _PAL["up"] = ("Splunk_TA_paloalto.tar.gz",
                      producer.build_upload_bytes(str(PALOALTO), "tar.gz", top=PAL_TOP))
    return _PAL["up"]


def pal_expected():
    """Its stanza counts by type, from the independent reader (181 in all)."""
    exp = reference_counts(PALOALTO, PAL_TOP)
    assert sum(exp.values()) == 181  # grep -c '^\s*\[' over the 16 files
    return exp


def run_locks(env):
    """Advisory locks held in the test's database: one per run an executor is running."""
    return env.scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database ="
                      " (SELECT oid FROM pg_database WHERE datname = current_database())")
