"""The large-archive workload of `make bench` (tests/bench/bench.py): one run of
BENCH_LARGE_STANZAS stanzas (default 1,000,000) over several .conf files in one tar.gz,
generated at bench time, parsed by cworker and by the Python baseline in turn, each on
its own fresh database, with concurrency 1. Reported for each: peak RSS of the worker's
process tree, stanzas/s (publish to completed_at), PostgreSQL CPU over the same window,
and the bytes the worker's processes wrote to disk (/proc/<pid>/io write_bytes summed
over the tree, reaped children included through their parent). Two floors for the same
work: PostgreSQL's own COPY of exactly the rows cworker wrote, stanza and typed rows (psql
\\copy from files into the same tables in one transaction, rolled back), and `sha256sum` plus
`gzip -dc` of the same archive. Ratios are printed, never asserted.
"""

import io
import os
import subprocess
import tarfile
import threading
import time

import psycopg2

import bench as B
import producer
import upload

TYPES = ("props", "inputs", "transforms", "indexes", "outputs", "savedsearches", "macros",
         "eventtypes")
PER_FILE = 90000  # under the parser's 100000 stanzas per file


def conf_text(conf_type, first, count):
    out = io.StringIO()
    for i in range(first, first + count):
        if conf_type == "inputs":
            out.write("[monitor:///var/log/bench/%d.log]\nindex = idx%d\nsourcetype = st%d\n"
                      "disabled = 0\n\n" % (i, i % 50, i % 300))
        elif conf_type == "transforms":
            out.write("[tr_%d]\nREGEX = ^(\\d+) value %d$\nFORMAT = field::$1\n"
                      "DEST_KEY = MetaData:Sourcetype\n\n" % (i, i))
        elif conf_type == "props":
            out.write("[st_%d]\nTRANSFORMS-a = tr_%d, tr_%d\nSHOULD_LINEMERGE = false\n\n"
                      % (i, i, i + 1))
        else:
            out.write("[%s_%d]\nkey_a = value %d\nkey_b = another value for %d\n\n"
                      % (conf_type, i, i, i))
    return out.getvalue().encode()


def build_archive(path, stanzas):
    """A tar.gz of ceil(stanzas / PER_FILE) .conf files over several apps; returns the
    number of files and of uncompressed bytes."""
    nfiles, total, done = 0, 0, 0
    with tarfile.open(path, "w:gz", compresslevel=6) as tar:
        while done < stanzas:
            count = min(PER_FILE, stanzas - done)
            conf_type = TYPES[nfiles % len(TYPES)]
            data = conf_text(conf_type, done, count)
            info = tarfile.TarInfo("etc/apps/bench_app%d/default/%s.conf" % (nfiles, conf_type))
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            nfiles, total, done = nfiles + 1, total + len(data), done + count
    return nfiles, total


def copy_log(pipe, path):
    with open(path, "wb") as f:
        for line in pipe:
            f.write(line)


def max_vm_peak(pids):
    """The largest VmPeak (address space, what EXECUTOR_MEMORY_LIMIT caps) in the tree."""
    peak = 0
    for pid in pids:
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmPeak:"):
                        peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
    return round(peak / 1024.0, 1)


def write_bytes(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/io" % pid) as f:
                for line in f:
                    if line.startswith("write_bytes:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def run_large(name, env, archive, stanzas, workdir, pg_pid, cworker):
    tag = "large_%s_%d" % (name, os.getpid())
    queue, dbname = "bench." + tag, "bench_" + tag
    storage = os.path.join(workdir, tag)
    os.makedirs(storage)
    url = B.fresh_database(env, dbname)
    try:
        return measure(name, env, url, queue, storage, archive, stanzas, workdir, pg_pid,
                       cworker)
    finally:
        B.drop_database(env, dbname)
        B.delete_queues(env["CELERY_BROKER_URL"], queue)
        subprocess.run(["rm", "-rf", storage])


def measure(name, env, url, queue, storage, archive, stanzas, workdir, pg_pid, cworker):
    wenv = dict(os.environ, CELERY_BROKER_URL=env["CELERY_BROKER_URL"], DATABASE_URL=url,
                STORAGE_BACKEND="local", STORAGE_PATH=storage, CELERY_QUEUES=queue,
                SOFT_TIME_LIMIT="3000", TIME_LIMIT="3500",
                MAX_RUN_STANZAS=str(max(1000000, stanzas)))  # 2M for "twice its size"
    subprocess.run([cworker, "migrate", "--migrations-dir", os.path.join(B.REPO, "migrations")],
                   env=wenv, check=True, capture_output=True)
    conn = psycopg2.connect(url)
    with open(archive, "rb") as f:
        data = f.read()
    run_id = producer.create_run(conn, [("bench_large.tar.gz", data)], storage)[0]
    del data
    app = producer.celery_app(env["CELERY_BROKER_URL"])
    argv, cwd, extra = B.contender_cmd(name, 1)
    if name == "cworker":
        argv[0] = cworker
    argv = [a.replace("{queue}", queue) for a in argv]
    wenv.update(extra)
    log_path = os.path.join(workdir, "large_%s.log" % name)
    # The log goes through a pipe and is written by the bench: a worker whose stdout is a
    # file would have its own log lines counted as its disk writes.
    proc = subprocess.Popen(argv, cwd=cwd, env=wenv, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    copier = threading.Thread(target=copy_log, args=(proc.stdout, log_path), daemon=True)
    copier.start()
    try:
        launched = time.monotonic()
        while (B.queue_consumers(env["CELERY_BROKER_URL"], queue) or 0) < 1:
            if proc.poll() is not None or time.monotonic() - launched > 60:
                raise RuntimeError("%s did not start; log %s" % (name, log_path))
            time.sleep(0.1)
        sampler = B.Sampler(proc.pid)
        sampler.start()
        time.sleep(1.0)
        written_before = write_bytes(B.tree_pids(proc.pid))
        pg_before = B.cpu_seconds(B.tree_pids(pg_pid)) if pg_pid else 0.0
        cpu_before = B.cpu_seconds(B.tree_pids(proc.pid))
        t0 = time.monotonic()
        producer.enqueue(conn, app, run_id, queue=queue)
        conn.autocommit = True
        done = False
        with conn.cursor() as cur:
            while not done and proc.poll() is None and time.monotonic() - t0 < 3600:
                time.sleep(0.05)
                cur.execute("SELECT completed_at IS NOT NULL FROM ingestion_runs WHERE id = %s",
                            (run_id,))
                done = cur.fetchone()[0]
        t1 = time.monotonic()
        pids = B.tree_pids(proc.pid)
        vm_peak = max_vm_peak(pids)
        cpu_after = B.cpu_seconds(pids)
        pg_after = B.cpu_seconds(B.tree_pids(pg_pid)) if pg_pid else 0.0
        written = write_bytes(pids) - written_before
        time.sleep(0.3)
        sampler.stop()
    finally:
        B.stop_tree(proc)
        app.close()
        copier.join(10)
    with conn.cursor() as cur:
        cur.execute("SELECT status, error_message FROM ingestion_runs WHERE id = %s", (run_id,))
        status, error = cur.fetchone()
        cur.execute("SELECT count(*) FROM stanzas WHERE run_id = %s", (run_id,))
        rows = cur.fetchone()[0]
    conn.close()
    floor = copy_floor(url, run_id, workdir) if name == "cworker" and rows else (None, 0, 0)
    busy = sampler.window(t0, t1 + 0.3) or sampler.samples
    wall = t1 - t0
    return {"copy_floor_seconds": floor[0] and round(floor[0], 2),
            "copy_floor_bytes": floor[1], "rows_written": floor[2],
            "contender": name, "status": status, "error": error, "stanzas": rows,
            "wall_seconds": round(wall, 2),
            "stanzas_per_second": round(rows / wall) if wall > 0 else 0,
            "rss_peak_mib": round(max(s[1] for s in busy) / B.MIB, 1),
            "cpu_seconds": round(cpu_after - cpu_before, 2),
            "pg_cpu_seconds": round(pg_after - pg_before, 2),
            "write_bytes": written, "vm_peak_mib": vm_peak, "log": log_path}


# The tables cworker writes a run's rows into: the stanzas and the six typed projections.
ROW_TABLES = ("stanzas", "inputs", "props", "transforms", "indexes", "outputs", "serverclasses")


def table_columns(cur, table):
    """Every column but the serial id, in table order."""
    cur.execute("SELECT column_name FROM information_schema.columns WHERE table_name = %s"
                " AND column_name <> 'id' ORDER BY ordinal_position", (table,))
    return ", ".join(r[0] for r in cur.fetchall())


def copy_floor(url, run_id, workdir):
    """PostgreSQL's own COPY of exactly the rows cworker wrote for the run (stanzas and
    typed rows): dumped to files, then COPYed by psql in one transaction into the same
    tables (their indexes, foreign keys and defaults: the cost those rows have there), and
    rolled back. Returns (seconds, bytes, rows)."""
    conn = psycopg2.connect(url)
    paths, script, rows = [], ["BEGIN;"], 0
    with conn.cursor() as cur:
        for table in ROW_TABLES:
            cols = table_columns(cur, table)
            path = os.path.join(workdir, "floor_%s.copy" % table)
            with open(path, "wb") as f:
                subprocess.run(["psql", url, "-qAt", "-c", "COPY (SELECT %s FROM %s WHERE run_id"
                                " = %d ORDER BY id) TO STDOUT" % (cols, table, run_id)],
                               stdout=f, check=True)
            cur.execute("SELECT count(*) FROM %s WHERE run_id = %%s" % table, (run_id,))
            rows += cur.fetchone()[0]
            paths.append(path)
            script.append("\\copy %s (%s) FROM '%s'" % (table, cols, path))
    conn.close()
    script.append("ROLLBACK;")
    t0 = time.monotonic()
    subprocess.run(["psql", url, "-q", "-v", "ON_ERROR_STOP=1"], input="\n".join(script) + "\n",
                   text=True, check=True, capture_output=True)
    seconds = time.monotonic() - t0
    size = sum(os.path.getsize(p) for p in paths)
    for p in paths:
        os.unlink(p)
    return seconds, size, rows


def tool_floor(archive):
    t0 = time.monotonic()
    subprocess.run(["sha256sum", archive], check=True, capture_output=True)
    t1 = time.monotonic()
    subprocess.run("gzip -dc '%s' > /dev/null" % archive, shell=True, check=True)
    return t1 - t0, time.monotonic() - t1


def main(env, workdir, pg_pid):
    stanzas = int(os.environ.get("BENCH_LARGE_STANZAS", "1000000"))
    cworker = os.environ.get("BENCH_CWORKER", B.CWORKER)
    contenders = os.environ.get("BENCH_LARGE_CONTENDERS", "cworker,python").split(",")
    archive = os.path.join(workdir, "bench_large.tar.gz")
    B.log("large: generating %d stanzas" % stanzas)
    nfiles, text_bytes = build_archive(archive, stanzas)
    sha_s, gunzip_s = tool_floor(archive)
    results = []
    for name in contenders:
        B.log("large: %s" % name)
        r = run_large(name, env, archive, stanzas, workdir, pg_pid, cworker)
        B.log("  %(status)s, %(stanzas)d stanzas in %(wall_seconds).1f s,"
              " RSS peak %(rss_peak_mib).1f MiB" % r)
        results.append(r)
    archive_bytes = os.path.getsize(archive)
    os.unlink(archive)
    up = upload.main(env, workdir, pg_pid, cworker, contenders)
    return {"upload": up, "stanzas": stanzas, "files": nfiles, "text_bytes": text_bytes,
            "archive_bytes": archive_bytes, "archive": archive,
            "sha256sum_seconds": round(sha_s, 2), "gzip_dc_seconds": round(gunzip_s, 2),
            "results": results, "cworker": cworker}


def report(large):
    """Lines for the printed report."""
    n = large["stanzas"]
    out = ["", "large archive: %d stanzas in %d .conf files (%.1f MB of text, %.1f MB tar.gz),"
           " one run, concurrency 1" % (n, large["files"], large["text_bytes"] / 1e6,
                                        large["archive_bytes"] / 1e6), ""]
    head = "%-10s %9s %10s %12s %10s %10s %14s" % ("contender", "status", "wall s", "stanzas/s",
                                                  "RSS MiB", "PG CPU s", "disk write B")
    out += [head, "-" * len(head)]
    by = {}
    for r in large["results"]:
        by[r["contender"]] = r
        out.append("%-10s %9s %10.1f %12d %10.1f %10.1f %14d" % (
            r["contender"], r["status"], r["wall_seconds"], r["stanzas_per_second"],
            r["rss_peak_mib"], r["pg_cpu_seconds"], r["write_bytes"]))
    floors = ["", "floors for the same archive: sha256sum %.2f s, gzip -dc %.2f s"
              % (large["sha256sum_seconds"], large["gzip_dc_seconds"])]
    cw, py = by.get("cworker"), by.get("python")
    tools = large["sha256sum_seconds"] + large["gzip_dc_seconds"]
    if cw and tools > 0:
        floors.append("cworker's run %.1f s against sha256sum + gzip -dc %.1f s: %.2fx of it"
                      % (cw["wall_seconds"], tools, cw["wall_seconds"] / tools))
    if cw and cw.get("copy_floor_seconds"):
        rate = cw["rows_written"] / cw["copy_floor_seconds"]
        ours = cw["rows_written"] / cw["wall_seconds"]
        floors.append("PostgreSQL COPY of the %d rows cworker wrote (stanza and typed rows, %.1f MB,"
                      " psql \\copy into the same tables, rolled back): %.1f s, %d rows/s;"
                      " cworker %d rows/s, %.2fx of it"
                      % (cw["rows_written"], cw["copy_floor_bytes"] / 1e6,
                         cw["copy_floor_seconds"], rate, ours, ours / rate))
    if cw and py and py["stanzas_per_second"] and cw["rss_peak_mib"]:
        floors.append("cworker/python: stanzas/s %.2fx, peak RSS python/cworker %.2fx, PG CPU"
                      " %.2fx" % (cw["stanzas_per_second"] / py["stanzas_per_second"],
                                  py["rss_peak_mib"] / cw["rss_peak_mib"],
                                  cw["pg_cpu_seconds"] / py["pg_cpu_seconds"]
                                  if py["pg_cpu_seconds"] else 0))
    return out + floors + upload.report(large.get("upload"))
