#!/usr/bin/python3
"""`make bench`: throughput, memory and CPU of cworker against a Python Celery 5 worker
(tests/bench/py_worker.py) doing the same job, reported as ratios, never asserted.

For each contender, BENCH_REPEAT times (interleaved), on its own queue and its own fresh
database (migrated with `cworker migrate`) and storage directory:
  1. create BENCH_RUNS runs of the Palo Alto app (one tar.gz built once, stored per run)
     as the application does (tests/py/producer.py create_run), untimed;
  2. start the worker (concurrency 2), wait until it consumes from its empty queue (ready s),
     sample its idle memory for a second, and stop it;
  3. publish every run through producer.enqueue (the real Celery client, then the app's
     PARSING commit) with no worker running, so the producer's speed and CPU are not what
     is measured (publish runs/s is printed apart: about 1000/s here, idle);
  4. start the worker again, sampling its process tree from /proc every 100 ms (sum of RSS,
     and PSS, which counts pages shared after fork once), and time from its first delivery
     (the queue's ready count first seen below BENCH_RUNS, polled every 10 ms on one broker
     channel) until every run has completed_at set (polled every 25 ms; both workers set it
     in the transaction that writes the stanzas);
  5. read the CPU time of the tree (utime+stime, plus cutime+cstime of reaped children) and
     of the whole PostgreSQL server over that window, check the stanza rows per run, stop
     the worker.
Both contenders are measured by this same method. Until this method, runs were published
while the worker ran and timed from the first publish: the publisher then shared the two
CPUs with the worker and PostgreSQL (its PARSING commits included in PostgreSQL's CPU).
Prints a table of medians and the ratios, and writes everything to .state/bench.json
(the workers' logs go to .state/bench/).

Then the large-archive workload (tests/bench/large.py): one run of BENCH_LARGE_STANZAS
stanzas (1,000,000; 0 skips it) generated at bench time, for both contenders, with peak
RSS, stanzas/s, PostgreSQL CPU, bytes written to disk by the worker, and two floors
(PostgreSQL's own COPY of the same rows; sha256sum and gzip -dc of the archive).

Environment: BENCH_RUNS (200; 0 skips the small runs), BENCH_REPEAT (2), BENCH_CONCURRENCY
(2), BENCH_LARGE_STANZAS, BENCH_LARGE_CONTENDERS (cworker,python), BENCH_STMT_RUNS (5; statements per small run,
tests/bench/statements.py), BENCH_CWORKER (the binary,
build/cworker). Test data: tests/testdata/. Exits 1 only when a contender did not finish or the stanza rows differ.
"""

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PY_DIR = os.path.join(REPO, "tests", "py")
sys.path.insert(0, PY_DIR)
import producer  # noqa: E402
import splunk_conf_ref  # noqa: E402

SERVICES = os.path.join(REPO, "tests", "env", "services.sh")
CWORKER = os.environ.get("BENCH_CWORKER") or os.path.join(REPO, "build", "cworker")
PYTHON = "/usr/bin/python3"
APP_DIR = "splunk_ta_paloalto"
APP_TOP = "Splunk_TA_paloalto"
SAMPLE_INTERVAL = 0.1
POLL_INTERVAL = 0.025
DELIVERY_POLL = 0.01
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")
MIB = 1024.0 * 1024.0


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def services_env():
    out = subprocess.run(["bash", SERVICES, "env"], check=True, capture_output=True, text=True)
    env = {}
    for line in out.stdout.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = value.strip("'\"")
    return env


# ----------------------------------------------------------------------------- /proc


def _stat_fields(pid):
    """Fields of /proc/<pid>/stat after the command name (index 0 = state)."""
    with open("/proc/%d/stat" % pid) as f:
        data = f.read()
    return data[data.rindex(")") + 2:].split()


def tree_pids(root):
    """root and all its descendants (no /proc/<pid>/task/*/children here: scan /proc)."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(name))[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def rss_bytes(pid):
    with open("/proc/%d/statm" % pid) as f:
        return int(f.read().split()[1]) * PAGE


def pss_bytes(pid):
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pids):
    """utime+stime of each live process, plus cutime+cstime (children it reaped)."""
    total = 0
    for pid in pids:
        try:
            f = _stat_fields(pid)
        except OSError:
            continue
        # After the name: state(0) ppid ... utime(11) stime(12) cutime(13) cstime(14)
        total += sum(int(x) for x in f[11:15])
    return total / TICK


class Sampler(threading.Thread):
    """Memory of a process tree every SAMPLE_INTERVAL; the tree is rescanned each second."""

    def __init__(self, root):
        super().__init__(daemon=True)
        self.root = root
        self.samples = []  # (monotonic time, rss bytes, pss bytes, processes)
        self.stopping = threading.Event()

    def run(self):
        pids, scanned = [], 0.0
        while not self.stopping.is_set():
            now = time.monotonic()
            if now - scanned >= 1.0:
                pids, scanned = tree_pids(self.root), now
            rss = pss = 0
            alive = 0
            for pid in pids:
                try:
                    rss += rss_bytes(pid)
                    pss += pss_bytes(pid)
                    alive += 1
                except OSError:
                    scanned = 0.0  # a process went away: rescan next time
            self.samples.append((now, rss, pss, alive))
            self.stopping.wait(SAMPLE_INTERVAL)

    def stop(self):
        self.stopping.set()
        self.join()

    def window(self, start, end):
        return [s for s in self.samples if start <= s[0] <= end]


# ----------------------------------------------------------------------------- setup


def postmaster_pid(state):
    """The private PostgreSQL's postmaster (its backends are its children), or None."""
    try:
        with open(os.path.join(os.path.realpath(os.path.join(state, "pg")), "data",
                               "postmaster.pid")) as f:
            return int(f.readline())
    except (OSError, ValueError):
        return None


def fresh_database(env, name):
    admin = psycopg2.connect(env["ADMIN_DATABASE_URL"])
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
        cur.execute('CREATE DATABASE "%s" OWNER cworker' % name)
    admin.close()
    return env["DATABASE_URL"].rsplit("/", 1)[0] + "/" + name


def drop_database(env, name):
    admin = psycopg2.connect(env["ADMIN_DATABASE_URL"])
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
    admin.close()


def queue_consumers(broker_url, queue):
    """Consumers on queue, or None while it does not exist."""
    from kombu import Connection

    with Connection(broker_url) as c:
        try:
            return c.channel().queue_declare(queue=queue, passive=True).consumer_count
        except Exception as e:  # 404 NOT_FOUND closes the channel
            if "NOT_FOUND" in str(e) or "404" in str(e):
                return None
            raise


def delete_queues(broker_url, queue):
    """The contender's queue, its exchange and cworker's retry/dead queues."""
    from kombu import Connection

    names = [queue, queue + ".dead"] + ["%s.retry.%ds" % (queue, d) for d in (60, 180, 600)]
    with Connection(broker_url) as c:
        for name in names:
            try:
                c.channel().queue_delete(name)
            except Exception:
                pass
        try:
            c.channel().exchange_delete(queue)
        except Exception:
            pass


# ----------------------------------------------------------------------------- contenders


def contender_cmd(name, concurrency):
    """(argv, cwd, extra env) of a contender's worker."""
    if name == "cworker":
        return [CWORKER, "run", "--concurrency", str(concurrency)], REPO, {}
    pypath = os.pathsep.join(p for p in (PY_DIR, HERE, os.environ.get("PYTHONPATH")) if p)
    return ([PYTHON, "-m", "celery", "-A", "py_worker", "worker", "-Q", "{queue}",
             "-c", str(concurrency), "--pool", "prefork", "--without-gossip",
             "--without-mingle"], HERE, {"PYTHONPATH": pypath})


def stop_tree(proc, timeout=30.0):
    """SIGTERM (both workers shut down gracefully on it), then SIGKILL what is left."""
    pids = tree_pids(proc.pid)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pid in pids[1:]:  # children of ours that outlived their parent
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def bench_one(name, rep, env, upload, n_runs, concurrency, workdir, pg_pid):
    """One contender once, on its own queue, database and storage; returns its numbers."""
    tag = "%s_%d_%d" % (name, rep, os.getpid())
    queue, dbname = "bench." + tag, "bench_" + tag
    storage = os.path.join(workdir, tag)
    os.makedirs(storage)
    url = fresh_database(env, dbname)
    try:
        r = measure(name, env, url, queue, storage, upload, n_runs, concurrency,
                    os.path.join(workdir, tag + ".log"), pg_pid)
    finally:
        drop_database(env, dbname)
        delete_queues(env["CELERY_BROKER_URL"], queue)
        shutil.rmtree(storage, ignore_errors=True)
    r.update(contender=name, repeat=rep)
    return r


def launch(name, argv, cwd, wenv, log_path, env, queue):
    """Starts a contender; returns (process, seconds until it consumed from queue)."""
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen(argv, cwd=cwd, env=wenv, stdout=logf, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    launched = time.monotonic()
    try:
        while (queue_consumers(env["CELERY_BROKER_URL"], queue) or 0) < 1:
            if proc.poll() is not None or time.monotonic() - launched > 60:
                raise RuntimeError("%s did not start consuming %s; log %s"
                                   % (name, queue, log_path))
            time.sleep(0.1)
    except BaseException:
        stop_tree(proc)
        raise
    return proc, time.monotonic() - launched


def idle_memory(name, argv, cwd, wenv, log_path, env, queue):
    """The first launch, on the empty queue: (ready seconds, idle samples). The worker is
    stopped again before anything is published."""
    proc, ready_s = launch(name, argv, cwd, wenv, log_path, env, queue)
    try:
        sampler = Sampler(proc.pid)
        sampler.start()
        time.sleep(1.0)  # ready and waiting
        sampler.stop()
    finally:
        stop_tree(proc)
    return ready_s, sampler.samples


def first_delivery(broker_url, queue, n_runs, proc, log_path):
    """Polls the queue's ready count on one channel until the worker took a message; the
    monotonic time it was first seen below n_runs."""
    from kombu import Connection

    with Connection(broker_url) as c:
        ch = c.channel()
        deadline = time.monotonic() + 60
        while ch.queue_declare(queue=queue, passive=True).message_count >= n_runs:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the worker took nothing from %s; log %s" % (queue, log_path))
            time.sleep(DELIVERY_POLL)
    return time.monotonic()


def measure(name, env, url, queue, storage, upload, n_runs, concurrency, log_path, pg_pid):
    wenv = dict(os.environ, CELERY_BROKER_URL=env["CELERY_BROKER_URL"], DATABASE_URL=url,
                STORAGE_BACKEND="local", STORAGE_PATH=storage, CELERY_QUEUES=queue)
    subprocess.run([CWORKER, "migrate", "--migrations-dir", os.path.join(REPO, "migrations")],
                   env=wenv, check=True, capture_output=True)
    conn = psycopg2.connect(url)
    runs = [producer.create_run(conn, [(APP_TOP + ".tar.gz", upload)], storage)[0]
            for _ in range(n_runs)]
    argv, cwd, extra = contender_cmd(name, concurrency)
    argv = [a.replace("{queue}", queue) for a in argv]
    wenv.update(extra)
    ready_s, idle = idle_memory(name, argv, cwd, wenv, log_path, env, queue)

    # Every run published (and committed PARSING) as the application does, with no worker
    # running: the producer's speed and CPU stay out of what is measured.
    app = producer.celery_app(env["CELERY_BROKER_URL"])
    p0 = time.monotonic()
    try:
        for run_id in runs:
            producer.enqueue(conn, app, run_id, queue=queue)
    finally:
        app.close()
    publish_s = time.monotonic() - p0

    proc, _ = launch(name, argv, cwd, wenv, log_path, env, queue)
    try:
        sampler = Sampler(proc.pid)
        sampler.start()
        t0 = first_delivery(env["CELERY_BROKER_URL"], queue, n_runs, proc, log_path)
        cpu_before = cpu_seconds(tree_pids(proc.pid))
        pg_before = cpu_seconds(tree_pids(pg_pid)) if pg_pid else 0.0
        conn.autocommit = True
        done, deadline = 0, t0 + 120 + n_runs
        with conn.cursor() as cur:
            while done < n_runs and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(POLL_INTERVAL)
                cur.execute("SELECT count(*) FROM ingestion_runs WHERE id = ANY(%s)"
                            " AND completed_at IS NOT NULL", (runs,))
                done = cur.fetchone()[0]
        t1 = time.monotonic()
        cpu_after = cpu_seconds(tree_pids(proc.pid))
        pg_after = cpu_seconds(tree_pids(pg_pid)) if pg_pid else 0.0
        time.sleep(0.3)  # a few samples after the last commit
        sampler.stop()
    finally:
        stop_tree(proc)

    with conn.cursor() as cur:
        cur.execute("SELECT status, count(*) FROM ingestion_runs WHERE id = ANY(%s)"
                    " GROUP BY status", (runs,))
        statuses = dict(cur.fetchall())
        cur.execute("SELECT r.id, count(s.id) FROM ingestion_runs r LEFT JOIN stanzas s"
                    " ON s.run_id = r.id WHERE r.id = ANY(%s) GROUP BY r.id", (runs,))
        per_run = [c for _, c in cur.fetchall()]
        cur.execute("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY"
                    " (metrics->>'duration_seconds')::float) FROM ingestion_runs"
                    " WHERE id = ANY(%s)", (runs,))
        task_median = cur.fetchone()[0] or 0.0
        # The content of one run's rows, to compare across contenders (jsonb is canonical).
        cur.execute("SELECT md5(string_agg(concat_ws('|', conf_type, name, app, scope, layer,"
                    " order_in_file, source_path, raw_kv::text), E'\\n' ORDER BY source_path,"
                    " order_in_file)) FROM stanzas WHERE run_id = %s", (runs[0],))
        digest = cur.fetchone()[0]
        typed = 0
        for table in ("inputs", "props", "transforms", "indexes", "outputs", "serverclasses"):
            cur.execute("SELECT count(*) FROM %s" % table)
            typed += cur.fetchone()[0]
    conn.close()

    busy = sampler.window(t0, t1 + 0.3) or sampler.samples
    idle = idle or busy[:1]
    wall = t1 - t0
    return {
        "runs": n_runs, "completed": done,
        "ready_seconds": round(ready_s, 2),
        "wall_seconds": round(wall, 3), "publish_seconds": round(publish_s, 3),
        "publish_runs_per_second": round(n_runs / publish_s, 1) if publish_s > 0 else 0.0,
        "runs_per_second": round(done / wall, 2) if wall > 0 else 0.0,
        "cpu_seconds_busy": round(cpu_after - cpu_before, 2),
        "cpu_seconds_total": round(cpu_after, 2),
        "cpu_ms_per_run": round(1000.0 * (cpu_after - cpu_before) / max(done, 1), 2),
        "task_ms_median": round(1000.0 * task_median, 1),
        "pg_cpu_ms_per_run": round(1000.0 * (pg_after - pg_before) / max(done, 1), 2),
        "rss_peak_mib": round(max(s[1] for s in busy) / MIB, 1),
        "rss_steady_mib": round(statistics.median(s[1] for s in busy) / MIB, 1),
        "rss_idle_mib": round(statistics.median(s[1] for s in idle) / MIB, 1),
        "pss_peak_mib": round(max(s[2] for s in busy) / MIB, 1),
        "pss_steady_mib": round(statistics.median(s[2] for s in busy) / MIB, 1),
        "processes": max(s[3] for s in busy),
        "samples": len(sampler.samples),
        "statuses": statuses,
        "stanzas_per_run": sorted(set(per_run)),
        "first_run_rows_md5": digest,
        "typed_projection_rows": typed,
        "log": log_path,
    }


# ----------------------------------------------------------------------------- report

COLUMNS = [
    ("runs/s", "runs_per_second", "%.1f"),
    ("wall s", "wall_seconds", "%.2f"),
    ("ready s", "ready_seconds", "%.2f"),
    ("CPU s", "cpu_seconds_busy", "%.2f"),
    ("CPU s incl. start", "cpu_seconds_total", "%.2f"),
    ("CPU ms/run", "cpu_ms_per_run", "%.1f"),
    ("task ms", "task_ms_median", "%.1f"),
    ("PG CPU ms/run", "pg_cpu_ms_per_run", "%.1f"),
    ("RSS peak MiB", "rss_peak_mib", "%.1f"),
    ("RSS steady MiB", "rss_steady_mib", "%.1f"),
    ("RSS idle MiB", "rss_idle_mib", "%.1f"),
    ("PSS peak MiB", "pss_peak_mib", "%.1f"),
]


NOTES = """
runs/s, wall s: the worker's first delivery until every run has completed_at (polled every
  25 ms); all runs were published and committed PARSING before the worker started.
ready s: launch until the worker consumes from its (empty) queue.
CPU s: the worker's process tree (utime+stime, plus cutime+cstime of reaped children),
  first delivery to last completion; "incl. start" counts from the worker's launch.
task ms: median of each worker's own metrics.duration_seconds, task entry to its final
  statements. cworker streams its rows while it parses, so its figure includes the writes
  but the COMPLETE/COMMIT; the Python baseline's excludes its whole write transaction.
PG CPU ms/run: the whole private PostgreSQL server over the same window (any other load on
  it included, such as the 25 ms completion poll); RabbitMQ is not counted.
RSS: sum over the worker's process tree, sampled every 100 ms (pages shared after fork
  count once per process); PSS counts them once. steady = median over the busy window,
  idle = a second on the empty queue (a first launch of the worker, before publishing).
The Python baseline (tests/bench/py_worker.py) runs the application's Celery config
  (prefetch multiplier 4; cworker uses 1) and skips typed projections, heartbeats, the
  per-run lock, the late-PARSING repair and archive limits: the ratios favour it.
This machine has %(cpus)s CPUs, shared by the worker, PostgreSQL, RabbitMQ and the bench's pollers;
  PostgreSQL used %(pg_share)sx cworker's own CPU per run%(pg_bound)s"""


def median_of(results, key):
    return statistics.median(r[key] for r in results)


def table(rows):
    """rows: [(label, {key: value})] -> aligned text."""
    head = ["contender"] + [c[0] for c in COLUMNS]
    body = [[label] + [fmt % vals[key] for _, key, fmt in COLUMNS] for label, vals in rows]
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    line = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                               for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in body])


def main():
    n_runs = int(os.environ.get("BENCH_RUNS", "200"))
    repeat = int(os.environ.get("BENCH_REPEAT", "2"))
    concurrency = int(os.environ.get("BENCH_CONCURRENCY", "2"))
    src = os.path.join(REPO, "tests", "testdata", APP_DIR)

    log("building cworker")
    subprocess.run(["make", "-C", REPO, "--no-print-directory", "all"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["bash", SERVICES, "start"], check=True)
    env = services_env()
    upload = producer.build_upload_bytes(src, "tar.gz", APP_TOP)
    tree = splunk_conf_ref.parse_tree(src, APP_TOP)
    reference = sum(len(s) for s in tree.values())

    contenders = ["cworker", "python"]
    results = {c: [] for c in contenders}
    state = env.get("CWORKER_STATE_DIR") or os.path.join(REPO, ".state")
    workdir = os.path.join(state, "bench")  # workers' logs and the runs' storage
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    started = time.monotonic()
    if n_runs <= 0:
        return large_only(env, workdir, state, started)
    for rep in range(1, repeat + 1):
        for name in contenders:
            log("%s, repeat %d/%d: %d runs" % (name, rep, repeat, n_runs))
            r = bench_one(name, rep, env, upload, n_runs, concurrency, workdir,
                          postmaster_pid(state))
            results[name].append(r)
            log("  %(runs_per_second).1f runs/s, %(wall_seconds).2f s, CPU %(cpu_seconds_busy).2f s,"
                " PG CPU %(pg_cpu_ms_per_run).1f ms/run, RSS peak %(rss_peak_mib).1f MiB"
                " (published beforehand at %(publish_runs_per_second).0f runs/s)" % r)

    med = {c: {key: median_of(results[c], key) for _, key, _ in COLUMNS} for c in contenders}
    cw, py = med["cworker"], med["python"]

    def ratio(a, b):
        return round(a / b, 2) if b else None

    ratios = {
        "throughput_cworker_over_python": ratio(cw["runs_per_second"], py["runs_per_second"]),
        "peak_rss_python_over_cworker": ratio(py["rss_peak_mib"], cw["rss_peak_mib"]),
        "steady_rss_python_over_cworker": ratio(py["rss_steady_mib"], cw["rss_steady_mib"]),
        "peak_pss_python_over_cworker": ratio(py["pss_peak_mib"], cw["pss_peak_mib"]),
        "cpu_per_run_python_over_cworker": ratio(py["cpu_ms_per_run"], cw["cpu_ms_per_run"]),
        "cpu_per_run_with_postgresql_python_over_cworker": ratio(
            py["cpu_ms_per_run"] + py["pg_cpu_ms_per_run"],
            cw["cpu_ms_per_run"] + cw["pg_cpu_ms_per_run"]),
    }
    counts = {c: sorted({n for r in results[c] for n in r["stanzas_per_run"]})
              for c in contenders}
    finished = all(r["completed"] == n_runs for c in contenders for r in results[c])
    digests = {r["first_run_rows_md5"] for c in contenders for r in results[c]}
    same_rows = all(counts[c] == [reference] for c in contenders) and len(digests) == 1

    print()
    print("cworker vs Python Celery %s: %d runs of %s (%d-byte tar.gz, %d .conf files, %d"
          " stanzas per run), concurrency %d, median of %d repeat(s)"
          % (__import__("celery").__version__, n_runs, APP_TOP, len(upload), len(tree),
             reference, concurrency, repeat))
    print()
    print(table([(c, med[c]) for c in contenders]))
    print()
    print("throughput   cworker/python  %sx   (the producer alone published %s runs/s)"
          % (ratios["throughput_cworker_over_python"],
             round(statistics.median(r["publish_runs_per_second"]
                                     for c in contenders for r in results[c]))))
    print("peak RSS     python/cworker  %sx   (steady %sx, peak PSS %sx)"
          % (ratios["peak_rss_python_over_cworker"], ratios["steady_rss_python_over_cworker"],
             ratios["peak_pss_python_over_cworker"]))
    print("CPU per run  python/cworker  %sx   (worker + PostgreSQL %sx)"
          % (ratios["cpu_per_run_python_over_cworker"],
             ratios["cpu_per_run_with_postgresql_python_over_cworker"]))
    print()
    print("stanza rows per run: cworker %s, python %s, reference reader %d; content of the"
          " first run's rows (md5) %s -> %s"
          % (counts["cworker"], counts["python"], reference,
             "equal" if len(digests) == 1 else "DIFFERENT",
             "same" if same_rows else "DIFFERENT"))
    print("statuses: " + "; ".join("%s %s" % (c, [r["statuses"] for r in results[c]])
                                   for c in contenders))
    print("typed projection rows per repeat: cworker %s, python 0 (the baseline skips typed"
          " projections, which makes it faster)"
          % [r["typed_projection_rows"] for r in results["cworker"]])
    pg_share = ratio(cw["pg_cpu_ms_per_run"], cw["cpu_ms_per_run"])
    print(NOTES % {"cpus": os.cpu_count(),
                   "pg_share": pg_share,
                   "pg_bound": ":\n  with runs this small the database, more than the worker,"
                               " bounds throughput." if pg_share and pg_share > 1 else "."})
    stmts = count_statements(env, workdir)
    large = run_large_workload(env, workdir, state)
    out = os.path.join(state, "bench.json")
    with open(out, "w") as f:
        json.dump({"large": large, "statements": stmts, "runs": n_runs, "repeat": repeat, "concurrency": concurrency,
                   "upload_bytes": len(upload), "conf_files": len(tree),
                   "reference_stanzas_per_run": reference,
                   "python_baseline": {"celery": __import__("celery").__version__,
                                       "typed_projections": "skipped"},
                   "median": med, "ratios": ratios, "repeats": results,
                   "all_runs_finished": finished, "same_stanza_rows": same_rows,
                   "seconds": round(time.monotonic() - started, 1)}, f, indent=2)
    print("written to %s (%.0f s in all)" % (out, time.monotonic() - started))
    if not (finished and same_rows):
        print("bench: a contender did not finish every run or wrote different rows; worker"
              " logs in %s" % workdir, file=sys.stderr)
        return 1
    return 0


def count_statements(env, workdir):
    """Statements per small run (tests/bench/statements.py); None when BENCH_STMT_RUNS=0."""
    import statements as S

    if int(os.environ.get("BENCH_STMT_RUNS", "5")) <= 0:
        return None
    upload = producer.build_upload_bytes(os.path.join(REPO, "tests", "testdata", APP_DIR),
                                         "tar.gz", APP_TOP)
    r = S.count(env, workdir, upload, CWORKER)
    print("\n".join(S.report(r)))
    return r


def run_large_workload(env, workdir, state):
    """The large-archive workload, printed; None when BENCH_LARGE_STANZAS=0."""
    import large as L

    if int(os.environ.get("BENCH_LARGE_STANZAS", "1000000")) <= 0:
        return None
    large = L.main(env, workdir, postmaster_pid(state))
    print("\n".join(L.report(large)))
    return large


def large_only(env, workdir, state, started):
    stmts = count_statements(env, workdir)
    large = run_large_workload(env, workdir, state)
    out = os.path.join(state, "bench.json")
    with open(out, "w") as f:
        json.dump({"large": large, "statements": stmts, "seconds": round(time.monotonic() - started, 1)}, f,
                  indent=2)
    print("written to %s (%.0f s in all)" % (out, time.monotonic() - started))
    return 0 if large is None or all(r["status"] == "COMPLETE" for r in large["results"]) else 1


if __name__ == "__main__":
    sys.exit(main())
