#!/usr/bin/python3
"""Chaos run: many parse_run jobs from Python Celery while faults are injected.

Two workers consume one queue. While a batch of runs is processed, the script repeatedly
SIGKILLs executors, SIGKILLs a whole worker (and starts it again), restarts RabbitMQ's
application and restarts PostgreSQL. Some runs are corrupt (they must end FAILED, once);
some have their blob stored late (they must retry and end COMPLETE). At the end it checks
every run against the contract:

  - every run is COMPLETE or FAILED (none lost),
  - every COMPLETE run has exactly the reference stanza count (no duplicates, no partial
    runs), every FAILED run has no stanza,
  - the corrupt runs are FAILED with a permanent error and nothing else is.

Usage (services from tests/env/services.sh must run; the worker binary is built):

    /usr/bin/python3 tests/py/chaos.py --runs 150 --seconds 60 [--bin build/cworker]

Prints a JSON summary and exits 0 only when the run is clean. It talks to loopback only
and stops everything it started.
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import producer  # noqa: E402

SERVICES = os.path.join(REPO, "tests", "env", "services.sh")
PALOALTO = os.path.join(REPO, "tests", "testdata", "splunk_ta_paloalto")


def services_env():
    out = subprocess.run(["bash", SERVICES, "env"], check=True, capture_output=True, text=True)
    env = {}
    for line in out.stdout.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = value.strip("'\"")
    return env


def fresh_database(env, name):
    admin = psycopg2.connect(env["ADMIN_DATABASE_URL"])
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cur.execute(f'CREATE DATABASE "{name}" OWNER cworker')
    admin.close()
    base = env["DATABASE_URL"].rsplit("/", 1)[0]
    return f"{base}/{name}"


class Worker:
    def __init__(self, binary, env, name, log_dir):
        self.binary, self.env, self.name = binary, env, name
        self.log = open(os.path.join(log_dir, f"{name}.log"), "ab")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([self.binary, "run", "-n", f"{self.name}@chaos"],
                                     env=self.env, stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL)

    def executors(self):
        try:
            out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True,
                                 text=True).stdout
        except OSError:
            return []
        return [int(p) for p in out.split()]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def pg_data_dir():
    state = os.environ.get("CWORKER_STATE_DIR", os.path.join(REPO, ".state"))
    link = os.path.join(state, "pg")
    return os.path.join(os.path.realpath(link), "data")


def restart_postgres():
    # -l: the new postmaster logs to its file; without it, it would inherit (and hold
    # open) whatever stdout we gave pg_ctl.
    data = pg_data_dir()
    log = os.path.join(os.path.dirname(data), "postgres.log")
    subprocess.run(["runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_ctl",
                    "-D", data, "-l", log, "restart", "-m", "fast", "-w"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=60)


def restart_rabbitmq(env):
    ctl = env["RABBITMQCTL"].split()
    subprocess.run(ctl + ["stop_app"], check=True, capture_output=True, timeout=120)
    time.sleep(2)
    subprocess.run(ctl + ["start_app"], check=True, capture_output=True, timeout=120)


def reference_count():
    """Stanzas per run, from the independent reference reader of CONTRACT 1.6."""
    import splunk_conf_ref
    tree = splunk_conf_ref.parse_tree(PALOALTO)
    return sum(len(stanzas) for stanzas in tree.values())


def publish(conn, app, queue, uploads, kinds, storage):
    runs = {}
    for i, kind in enumerate(kinds):
        data = uploads["corrupt"] if kind == "corrupt" else uploads["good"]
        store = kind != "late"
        run_id, _ = producer.create_run(conn, [{"name": f"upload{i}.tar.gz", "data": data,
                                                "store": store}], storage_path=storage)
        producer.enqueue(conn, app, run_id, queue=queue)
        runs[run_id] = kind
    return runs


def store_late_blobs(conn, runs, uploads, storage):
    with conn.cursor() as cur:
        for run_id, kind in runs.items():
            if kind != "late":
                continue
            cur.execute("SELECT stored_object_key FROM files WHERE run_id = %s", (run_id,))
            key = cur.fetchone()[0]
            path = os.path.join(storage, key)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(uploads["good"])


def inject(workers, env, deadline, log):
    faults = ["kill_executor", "kill_executor", "kill_worker", "restart_rabbitmq",
              "restart_postgres"]
    turn = 0
    while time.time() < deadline:
        time.sleep(random.uniform(2.0, 4.0))
        fault = faults[turn % len(faults)]  # every kind of fault, in turn
        turn += 1
        w = random.choice(workers)
        try:
            if fault == "kill_executor":
                pids = w.executors()
                if pids:
                    os.kill(random.choice(pids), signal.SIGKILL)
            elif fault == "kill_worker":
                for p in w.executors():
                    os.kill(p, signal.SIGKILL)
                w.proc.kill()
                w.proc.wait()
                time.sleep(1)
                w.start()
            elif fault == "restart_rabbitmq":
                restart_rabbitmq(env)
            elif fault == "restart_postgres":
                restart_postgres()
            log.append(fault)
        except Exception as e:  # a fault that could not be injected is reported, not fatal
            log.append(f"{fault} (not injected: {e})")


def final_state(url, runs, timeout):
    deadline = time.time() + timeout
    while True:
        try:
            conn = psycopg2.connect(url)
            with conn.cursor() as cur:
                cur.execute("SELECT r.id, r.status, r.retry_count, r.error_message, "
                            "(SELECT count(*) FROM stanzas s WHERE s.run_id = r.id) "
                            "FROM ingestion_runs r WHERE r.id = ANY(%s)", (list(runs),))
                rows = {r[0]: r[1:] for r in cur.fetchall()}
            conn.close()
        except psycopg2.OperationalError:
            rows = {}
        pending = [r for r in runs if rows.get(r, ("PARSING",))[0] not in ("COMPLETE", "FAILED")]
        if not pending or time.time() > deadline:
            return rows, pending
        time.sleep(1)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=150)
    p.add_argument("--seconds", type=float, default=60, help="how long faults are injected")
    p.add_argument("--bin", default=os.path.join(REPO, "build", "cworker"))
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args()
    random.seed(args.seed)
    env = services_env()
    url = fresh_database(env, f"chaos_{os.getpid()}")
    storage = tempfile.mkdtemp(prefix="cworker-chaos-")
    queue = f"chaos{os.getpid()}"
    wenv = dict(os.environ, CELERY_BROKER_URL=env["CELERY_BROKER_URL"], DATABASE_URL=url,
                STORAGE_BACKEND="local", STORAGE_PATH=storage, CELERY_QUEUES=queue,
                CONCURRENCY="2", RETRY_DELAYS="2,4,8", HEARTBEAT_INTERVAL="1",
                VISIBILITY_TIMEOUT="6", CWORKER_DEBUG_ENTRY_DELAY_MS="100",
                CWORKER_MIGRATIONS_DIR=os.path.join(REPO, "migrations"))
    subprocess.run([args.bin, "migrate"], env=wenv, check=True, capture_output=True)
    good = producer.build_upload_bytes(PALOALTO, "tar.gz", "Splunk_TA_paloalto")
    uploads = {"good": good, "corrupt": good[: len(good) // 2]}
    expected = reference_count()
    kinds = ["corrupt" if i % 30 == 7 else "late" if i % 30 == 13 else "good"
             for i in range(args.runs)]
    workers = [Worker(args.bin, wenv, f"w{i}", storage) for i in range(2)]
    for w in workers:
        w.start()
    conn = psycopg2.connect(url)
    conn.autocommit = True
    os.environ["STORAGE_PATH"] = storage
    app = producer.celery_app(env["CELERY_BROKER_URL"])
    started = time.time()
    runs = publish(conn, app, queue, uploads, kinds, storage)
    faults = []
    # The late blobs arrive while their first retry waits (RETRY_DELAYS 2,4,8 s).
    time.sleep(1.5)
    store_late_blobs(conn, runs, uploads, storage)
    inject(workers, env, time.time() + args.seconds, faults)
    rows, pending = final_state(url, runs, timeout=240)
    for w in workers:
        w.stop()
    complete = [r for r, row in rows.items() if row[0] == "COMPLETE"]
    failed = [r for r, row in rows.items() if row[0] == "FAILED"]
    wrong_counts = [r for r in complete if rows[r][3] != expected]
    failed_with_rows = [r for r in failed if rows[r][3] != 0]
    unexpected_failed = [r for r in failed if runs[r] != "corrupt"]
    corrupt_not_failed = [r for r, k in runs.items() if k == "corrupt" and r not in failed]
    summary = {
        "runs": len(runs), "seconds": round(time.time() - started, 1),
        "faults": {f: faults.count(f) for f in sorted(set(faults))},
        "complete": len(complete), "failed": len(failed),
        "late_blob_runs_retried": sum(1 for r, k in runs.items()
                                      if k == "late" and rows.get(r, (0, 0))[1] > 0),
        "lost": len(pending), "duplicated_or_partial": len(wrong_counts) + len(failed_with_rows),
        "unexpected_failed": {r: rows[r][2] for r in unexpected_failed},
        "corrupt_not_failed": corrupt_not_failed,
        "expected_stanzas_per_run": expected,
    }
    print(json.dumps(summary, indent=2))
    clean = not (pending or wrong_counts or failed_with_rows or unexpected_failed
                 or corrupt_not_failed)
    sys.exit(0 if clean else 1)


if __name__ == "__main__":
    main()
