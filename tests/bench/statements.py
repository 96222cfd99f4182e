"""Statements and round trips per small run (a COPY is two: its start and its end), counted
in the worker's executor by an
LD_PRELOAD shim around libpq (tests/bench/pq_count.c, built here with cc): BENCH_STMT_RUNS
runs of the Palo Alto app (5) parsed one after the other by a cworker with concurrency 1;
what its executor sent, divided by the runs. Statements of the connection set-up and the
supervisor's own (migrations, sweeps) are not counted."""

import collections
import os
import subprocess
import time

import psycopg2

import bench as B
import producer


def build_shim(workdir):
    so = os.path.join(workdir, "pq_count.so")
    cflags = subprocess.run(["pkg-config", "--cflags", "libpq"], capture_output=True,
                            text=True).stdout.split()
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", so,
                    os.path.join(B.HERE, "pq_count.c"), "-ldl"] + cflags, check=True)
    return so


def count(env, workdir, upload, cworker):
    n_runs = int(os.environ.get("BENCH_STMT_RUNS", "5"))
    so = build_shim(workdir)
    trace = os.path.join(workdir, "pq_count.log")
    if os.path.exists(trace):
        os.unlink(trace)
    tag = "stmts_%d" % os.getpid()
    queue, dbname = "bench." + tag, "bench_" + tag
    storage = os.path.join(workdir, tag)
    os.makedirs(storage)
    url = B.fresh_database(env, dbname)
    try:
        wenv = dict(os.environ, CELERY_BROKER_URL=env["CELERY_BROKER_URL"], DATABASE_URL=url,
                    STORAGE_BACKEND="local", STORAGE_PATH=storage, CELERY_QUEUES=queue)
        subprocess.run([cworker, "migrate", "--migrations-dir",
                        os.path.join(B.REPO, "migrations")], env=wenv, check=True,
                       capture_output=True)
        conn = psycopg2.connect(url)
        runs = [producer.create_run(conn, [(B.APP_TOP + ".tar.gz", upload)], storage)[0]
                for _ in range(n_runs)]
        conn.autocommit = True
        app = producer.celery_app(env["CELERY_BROKER_URL"])
        wenv.update(LD_PRELOAD=so, PQCOUNT_LOG=trace)
        proc = subprocess.Popen([cworker, "run", "--concurrency", "1"], env=wenv,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while (B.queue_consumers(env["CELERY_BROKER_URL"], queue) or 0) < 1:
                time.sleep(0.1)
            time.sleep(0.5)
            start = os.path.getsize(trace) if os.path.exists(trace) else 0
            for run_id in runs:
                producer.enqueue(conn, app, run_id, queue=queue)
                with conn.cursor() as cur:
                    while True:
                        cur.execute("SELECT completed_at IS NOT NULL FROM ingestion_runs"
                                    " WHERE id = %s", (run_id,))
                        if cur.fetchone()[0]:
                            break
                        time.sleep(0.05)
            time.sleep(0.5)  # the unlock after the COMMIT
        finally:
            B.stop_tree(proc)
            app.close()
        conn.close()
        with open(trace) as f:
            f.seek(start)
            lines = [ln.rstrip("\n").split(" ", 2) for ln in f]
    finally:
        B.drop_database(env, dbname)
        B.delete_queues(env["CELERY_BROKER_URL"], queue)
        subprocess.run(["rm", "-rf", storage])
    executor = [ln for ln in lines if int(ln[0]) != proc.pid]
    stmts = [ln[2] if len(ln) > 2 else "" for ln in executor if ln[1] == "S"]
    trips = sum(1 for ln in executor if ln[1] == "R")
    kinds = collections.Counter(" ".join(s.split()[:2]) for s in stmts)
    return {"runs": n_runs, "statements_per_run": round(len(stmts) / n_runs, 1),
            "round_trips_per_run": round(trips / n_runs, 1),
            "statement_kinds": dict(kinds.most_common())}


def report(r):
    return ["", "statements per small run (Palo Alto app, %d runs, counted in the executor):"
            " %.1f statements, %.1f round trips" % (r["runs"], r["statements_per_run"],
                                                    r["round_trips_per_run"]),
            "  by kind (all runs): " + ", ".join("%s x%d" % kv for kv in
                                                 r["statement_kinds"].items())]
