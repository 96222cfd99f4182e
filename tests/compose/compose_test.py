#!/usr/bin/python3
"""`make compose-test`: docker/Dockerfile built and docker/docker-compose.yml run for real.

With podman and podman-compose (Debian 12), no image registry: the Debian 12 base image is
debootstrapped (build-base.sh), RabbitMQ and PostgreSQL images are built from Debian's
packages (rabbitmq/, postgres/), the worker and demo-producer images from the compose
file's own build sections. Then the stack runs with three workers and this checks:

  * migrate ran once and applied every migration; the workers run as the non-root user;
  * `cworker health` (the image's HEALTHCHECK) reports healthy, and unhealthy while
    PostgreSQL is down;
  * runs published with the real Celery client from the host all end COMPLETE, each
    exactly once (one success in the logs, one cworker_tasks row, the same stanza rows),
    spread over the three worker containers (their LOG_FORMAT=json logs);
  * PostgreSQL stopped mid-batch and started again loses no run and consumes no retry
    (retry_count 0);
  * the demo-producer service publishes a run that completes;
  * `podman-compose down` leaves no container of the project.

Exit 0 passed, 1 failed, 77 skipped (podman cannot run containers on this machine).
Every wait is bounded and the whole test has a deadline (COMPOSE_TEST_TIMEOUT, 1500 s);
the stack, its volumes and network are removed on every exit path.
"""

import glob
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
STATE = os.path.join(REPO, ".state", "compose")
COMPOSE_FILE = os.path.join(REPO, "docker", "docker-compose.yml")
PROJECT = "cworkerctest"
WORKERS = 3
WORKER_UID = "10001"
TESTDATA = os.path.join(REPO, "tests", "testdata", "splunk_ta_paloalto")
EXIT_SKIP = 77

# The images the compose file names, built here from Debian's packages.
SERVICE_IMAGES = [
    ("docker.io/library/postgres:15", os.path.join(HERE, "postgres")),
    ("docker.io/library/rabbitmq:3.12-management", os.path.join(HERE, "rabbitmq")),
]
CONTEXT_LABEL = "cworker.compose-test.context"

sys.path.insert(0, os.path.join(REPO, "tests", "py"))


class Skip(Exception):
    pass


class Failed(Exception):
    pass


class Deadline(Exception):
    pass


def log(msg):
    print("compose-test: %s" % msg, flush=True)


def run(cmd, timeout=120, check=True, quiet=True, env=None):
    """Runs cmd; returns CompletedProcess with text stdout/stderr."""
    try:
        p = subprocess.run(cmd, capture_output=quiet, text=True, timeout=timeout, env=env,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise Failed("%s: no answer within %d s" % (" ".join(cmd[:4]), timeout))
    if check and p.returncode != 0:
        detail = (p.stderr or p.stdout or "").strip()[-2000:] if quiet else ""
        raise Failed("%s exited %d: %s" % (" ".join(cmd[:6]), p.returncode, detail))
    return p


def wait_for(what, predicate, timeout, interval=1.0):
    """Polls predicate() until it returns a true value; Failed after timeout seconds."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= end:
            raise Failed("timed out after %d s waiting for %s" % (timeout, what))
        time.sleep(interval)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def container(service, n=1):
    return "%s_%s_%d" % (PROJECT, service, n)


# ----------------------------------------------------------------------------- images


def tree_hash(path, extra=""):
    h = hashlib.sha256(extra.encode())
    for f in sorted(glob.glob(os.path.join(path, "**"), recursive=True)):
        if os.path.isfile(f):
            h.update(os.path.relpath(f, path).encode() + b"\0")
            with open(f, "rb") as fh:
                h.update(fh.read())
    return h.hexdigest()[:16]


def image_label(tag, label):
    p = run(["podman", "image", "inspect", "--format",
             "{{index .Labels \"%s\"}}" % label, tag], check=False)
    return p.stdout.strip() if p.returncode == 0 else None


def build_images():
    t0 = time.monotonic()
    for tool in ("podman", "podman-compose", "debootstrap"):
        if run(["sh", "-c", "command -v %s" % tool], check=False).returncode != 0:
            raise Skip("%s is not installed (tests/compose/install-deps.sh)" % tool)
    info = run(["podman", "info"], timeout=120, check=False)
    if info.returncode != 0:
        raise Skip("podman does not work here: %s" % info.stderr.strip()[-500:])
    run(["bash", os.path.join(HERE, "build-base.sh"), STATE], timeout=900, quiet=False)
    probe = run(["podman", "run", "--rm", "--pull=never", "docker.io/library/debian:12", "true"],
                timeout=120, check=False)
    if probe.returncode != 0:
        raise Skip("podman cannot run containers here: %s" % probe.stderr.strip()[-500:])
    base_id = run(["podman", "image", "inspect", "--format", "{{.Id}}",
                   "docker.io/library/debian:12"]).stdout.strip()
    for tag, context in SERVICE_IMAGES:
        want = tree_hash(context, base_id)
        if image_label(tag, CONTEXT_LABEL) == want:
            log("%s is up to date" % tag)
            continue
        log("building %s" % tag)
        run(["podman", "build", "--pull=never", "-q", "--label", "%s=%s" % (CONTEXT_LABEL, want),
             "-t", tag, context], timeout=900)
    # The worker and demo-producer images from the compose file's build sections; the
    # layer cache makes this quick when the sources did not change.
    log("building cworker:latest and cworker-demo-producer:latest (podman-compose build)")
    with open(os.path.join(STATE, "build.log"), "w") as out:
        p = subprocess.run(compose_cmd("build", "migrate", "demo-producer"), stdout=out,
                           stderr=subprocess.STDOUT, timeout=900, env=compose_env(),
                           stdin=subprocess.DEVNULL)
    if p.returncode != 0 or run(["podman", "image", "exists", "cworker:latest"],
                                check=False).returncode != 0:
        raise Failed("podman-compose build failed: see %s/build.log" % STATE)
    log("images ready in %.0f s" % (time.monotonic() - t0))


def image_sizes():
    p = run(["podman", "images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}"], check=False)
    wanted = ("debian:12", "postgres:15", "rabbitmq:3.12", "cworker:", "cworker-demo-producer")
    return [line for line in p.stdout.splitlines() if any(w in line for w in wanted)]


# ----------------------------------------------------------------------------- the stack

PORTS = {}


def compose_env():
    env = dict(os.environ)
    env.update({k: str(v) for k, v in PORTS.items()})
    env["CWORKER_REPLICAS"] = str(WORKERS)
    return env


def compose_cmd(*args):
    return ["podman-compose", "-p", PROJECT, "-f", COMPOSE_FILE] + list(args)


def compose(*args, timeout=300):
    with open(os.path.join(STATE, "compose.log"), "a") as out:
        out.write("\n$ podman-compose %s\n" % " ".join(args))
        out.flush()
        try:
            p = subprocess.run(compose_cmd(*args), stdout=out, stderr=subprocess.STDOUT,
                               timeout=timeout, env=compose_env(), stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise Failed("podman-compose %s: no answer within %d s" % (args[0], timeout))
    return p.returncode


def project_containers():
    p = run(["podman", "ps", "-a", "--format", "{{.Names}}", "--filter",
             "label=io.podman.compose.project=%s" % PROJECT], check=False)
    return p.stdout.split()


def teardown():
    """Removes everything of the project, whatever state it is in."""
    try:
        compose("down", "-t", "10", timeout=300)
    except Failed as e:
        log("teardown: %s" % e)
    for name in project_containers():
        run(["podman", "rm", "-f", "-t", "5", name], check=False, timeout=60)
    p = run(["podman", "volume", "ls", "-q", "--filter",
             "label=io.podman.compose.project=%s" % PROJECT], check=False)
    for vol in p.stdout.split():
        run(["podman", "volume", "rm", "-f", vol], check=False)
    run(["podman", "network", "rm", "-f", "%s_default" % PROJECT], check=False)


def inspect(name):
    p = run(["podman", "inspect", "--type", "container", name], check=False)
    return json.loads(p.stdout)[0] if p.returncode == 0 else None


def healthy(name):
    """Runs the container's health check now; True when it passed."""
    return run(["podman", "healthcheck", "run", name], check=False, timeout=30).returncode == 0


def health_status(name):
    state = (inspect(name) or {}).get("State", {})
    return (state.get("Health") or state.get("Healthcheck") or {}).get("Status")


def logs(name):
    p = run(["podman", "logs", name], check=False, timeout=60)
    return p.stdout + p.stderr


def save_logs():
    os.makedirs(os.path.join(STATE, "logs"), exist_ok=True)
    for name in project_containers():
        with open(os.path.join(STATE, "logs", name + ".log"), "w") as f:
            f.write(logs(name))
    log("container logs saved under %s/logs/" % STATE)


def start_stack():
    # podman-compose 1.0 ignores depends_on conditions: start the servers, wait for their
    # health checks (what `condition: service_healthy` means), then the rest.
    compose("up", "-d", "rabbitmq", "postgres")
    for svc in ("rabbitmq", "postgres"):
        wait_for("%s healthy" % svc, lambda: healthy(container(svc)), 180, 2)
    log("rabbitmq and postgres healthy")
    compose("up", "-d", "migrate", "worker")

    def migrate_done():
        c = inspect(container("migrate"))
        return c and c["State"]["Status"] == "exited" and c
    c = wait_for("migrate to finish", migrate_done, 120)
    if c["State"]["ExitCode"] != 0:
        raise Failed("migrate exited %d:\n%s" % (c["State"]["ExitCode"], logs(container("migrate"))))
    for n in range(1, WORKERS + 1):
        w = container("worker", n)
        wait_for("%s healthy" % w, lambda: healthy(w), 90, 2)
    log("migrate done, %d workers healthy" % WORKERS)


# ----------------------------------------------------------------------------- checks


def database_url():
    return "postgresql://splunk:splunk@127.0.0.1:%d/splunk_auto_doc" % PORTS["POSTGRES_PORT"]


def broker_url():
    return "amqp://guest:guest@127.0.0.1:%d//" % PORTS["RABBITMQ_PORT"]


def check_migrate_once(conn):
    c = inspect(container("migrate"))
    migrations = sorted(os.path.basename(f) for f in glob.glob(os.path.join(REPO, "migrations",
                                                                            "*.sql")))
    text = logs(container("migrate"))
    applying = [line for line in text.splitlines() if "applying migration" in line]
    with conn.cursor() as cur:
        cur.execute("SELECT filename FROM cworker_schema_migrations ORDER BY filename")
        ledger = [r[0] for r in cur.fetchall()]
    conn.commit()
    if c["RestartCount"] != 0 or len(applying) != len(migrations) or ledger != migrations:
        raise Failed("migrate: restarts %d, %d 'applying' lines for %d migrations, ledger %s"
                     % (c["RestartCount"], len(applying), len(migrations), ledger))
    log("migrate ran once: %d migrations applied, no restart" % len(migrations))


def check_non_root():
    for n in range(1, WORKERS + 1):
        w = container("worker", n)
        uid = run(["podman", "exec", w, "id", "-u"]).stdout.strip()
        users = run(["podman", "top", w, "user"]).stdout.split()[1:]
        status = run(["podman", "exec", w, "cat", "/proc/1/status"]).stdout
        pid1_uid = [line.split()[1] for line in status.splitlines() if line.startswith("Uid:")]
        if uid != WORKER_UID or pid1_uid != [WORKER_UID] or set(users) != {"cworker"}:
            raise Failed("%s: id -u %s, pid 1 uid %s, processes' users %s"
                         % (w, uid, pid1_uid, sorted(set(users))))
    log("the workers run as cworker (uid %s)" % WORKER_UID)


def check_health_reported():
    for n in range(1, WORKERS + 1):
        w = container("worker", n)
        if health_status(w) != "healthy":
            raise Failed("%s: podman inspect says health %r" % (w, health_status(w)))
    out = run(["podman", "exec", container("worker"), "cworker", "health"]).stdout
    body = json.loads(out)
    if body.get("status") != "ok" or not body.get("database_connected"):
        raise Failed("cworker health answered %s" % out)
    log("HEALTHCHECK healthy (podman inspect); cworker health says %s" % body["status"])


def run_statuses(conn, run_ids):
    with conn.cursor() as cur:
        cur.execute("SELECT id, status, retry_count FROM ingestion_runs WHERE id = ANY(%s)",
                    (list(run_ids),))
        rows = {r[0]: (r[1], r[2]) for r in cur.fetchall()}
    conn.commit()
    return rows


def wait_finished(conn, run_ids, timeout):
    def finished():
        try:
            rows = run_statuses(conn, run_ids)
        except Exception:  # the database restarting: ask again
            conn.rollback() if not conn.closed else None
            return False
        return len(rows) == len(run_ids) and all(s not in ("STORED", "PARSING")
                                                 for s, _ in rows.values()) and rows
    return wait_for("%d runs to finish" % len(run_ids), finished, timeout, 1)


UPLOAD = {}


def upload_bytes():
    """The Palo Alto app bundle as the application receives it (built once)."""
    import producer
    if "data" not in UPLOAD:
        UPLOAD["data"] = producer.build_upload_bytes(TESTDATA, "tar.gz", "Splunk_TA_paloalto")
    return UPLOAD["data"]


def create_runs(conn, storage, count):
    """count STORED runs with their upload in the storage volume, as POST /v1/runs."""
    import producer
    return [producer.create_run(conn, [("Splunk_TA_paloalto.tar.gz", upload_bytes())],
                                storage)[0] for _ in range(count)]


def submit_runs(conn, app, storage, count):
    """count runs, each published and then marked PARSING, as POST /v1/runs/{id}/parse."""
    import producer
    ids = create_runs(conn, storage, count)
    for run_id in ids:
        producer.enqueue(conn, app, run_id)
    return ids


def completions_by_container():
    """{container: [run ids whose parse_run succeeded there]} from the JSON logs."""
    out = {}
    for n in range(1, WORKERS + 1):
        w = container("worker", n)
        done = []
        for line in logs(w).splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if "run_id" in rec and " succeeded in " in rec.get("msg", ""):
                done.append(rec["run_id"])
        out[w] = done
    return out


def check_exactly_once(conn, run_ids):
    rows = run_statuses(conn, run_ids)
    bad = {i: r for i, r in rows.items() if r != ("COMPLETE", 0)}
    if len(rows) != len(run_ids) or bad:
        raise Failed("runs not COMPLETE with retry_count 0: %s" % dict(list(bad.items())[:10]))
    with conn.cursor() as cur:
        cur.execute("SELECT run_id, count(*) FILTER (WHERE status = 'COMPLETE'), count(*)"
                    " FROM cworker_tasks WHERE run_id = ANY(%s) GROUP BY run_id", (run_ids,))
        tasks = {r[0]: (r[1], r[2]) for r in cur.fetchall()}
        cur.execute("SELECT run_id, count(*) FROM stanzas WHERE run_id = ANY(%s) GROUP BY run_id",
                    (run_ids,))
        stanzas = {r[0]: r[1] for r in cur.fetchall()}
    conn.commit()
    if any(tasks.get(i) != (1, 1) for i in run_ids):
        raise Failed("cworker_tasks rows per run are not one COMPLETE: %s"
                     % {i: tasks.get(i) for i in run_ids if tasks.get(i) != (1, 1)})
    counts = set(stanzas.get(i, 0) for i in run_ids)
    if len(counts) != 1 or 0 in counts:
        raise Failed("stanza rows differ between runs of the same upload: %s" % sorted(counts))
    by_container = completions_by_container()
    seen = [r for done in by_container.values() for r in done]
    wanted = set(run_ids)
    mine = sorted(r for r in seen if r in wanted)
    if mine != sorted(wanted):
        dup = sorted(r for r in wanted if mine.count(r) > 1)
        missing = sorted(wanted - set(mine))
        raise Failed("successes in the worker logs: duplicated %s, missing %s" % (dup, missing))
    spread = {w: len([r for r in done if r in wanted]) for w, done in by_container.items()}
    if any(n == 0 for n in spread.values()):
        raise Failed("a worker container completed nothing: %s" % spread)
    log("%d runs COMPLETE exactly once (%d stanzas each), retry_count 0; per container %s"
        % (len(run_ids), counts.pop(), spread))


def database_outage(conn, app, storage, count):
    """Stops PostgreSQL mid-batch and starts it again; returns the batch's run ids."""
    # A backlog the workers are in the middle of when the database goes away: every run is
    # created, then all are published, and the application's PARSING commits come after the
    # outage (a slow API; the worker's trigger keeps what finished first). Committing after
    # each publish would be paced by the workers: the UPDATE waits for the run's row lock.
    import producer
    ids = create_runs(conn, storage, count)
    task_ids = {run_id: producer.send_parse_run(app, run_id) for run_id in ids}
    log("published %d runs; stopping postgres once a few are done" % count)

    def some_done():
        rows = run_statuses(conn, ids)
        done = sum(1 for s, _ in rows.values() if s == "COMPLETE")
        return done >= 3 and (done, len(ids) - done)
    done, unfinished = wait_for("the first runs of the batch", some_done, 120, 0.1)
    if unfinished < count // 2:
        raise Failed("only %d of %d runs left when postgres was to stop: not mid-batch"
                     % (unfinished, count))
    conn.close()
    pg = container("postgres")
    run(["podman", "stop", "-t", "10", pg], timeout=60)
    t_down = time.monotonic()
    log("postgres stopped with %d of %d runs of the batch not finished" % (unfinished, count))
    w = container("worker")
    wait_for("%s's health check to fail while postgres is down" % w, lambda: not healthy(w), 30, 1)
    log("cworker health reports %s unhealthy while postgres is down" % w)
    time.sleep(max(0.0, 8 - (time.monotonic() - t_down)))
    run(["podman", "start", pg], timeout=60)
    wait_for("postgres healthy again", lambda: healthy(pg), 120, 1)
    log("postgres started again after %.0f s down" % (time.monotonic() - t_down))
    return ids, task_ids


def check_demo_producer(conn):
    compose("run", "--no-deps", "--rm", "-T", "demo-producer", timeout=180)
    with conn.cursor() as cur:
        cur.execute("SELECT max(id) FROM ingestion_runs")
        run_id = cur.fetchone()[0]
    conn.commit()
    rows = wait_finished(conn, [run_id], 120)
    if rows[run_id] != ("COMPLETE", 0):
        raise Failed("the demo producer's run %d ended %s" % (run_id, rows[run_id]))
    log("demo-producer published run %d; it is COMPLETE" % run_id)


def check_down():
    if compose("down", "-t", "10") != 0:
        raise Failed("podman-compose down failed: see %s/compose.log" % STATE)
    left = project_containers()
    running = run(["podman", "ps", "--format", "{{.Names}}"], check=False).stdout.split()
    if left or any(n.startswith(PROJECT + "_") for n in running):
        raise Failed("podman-compose down left containers: %s" % left)
    log("podman-compose down left no container")


# ----------------------------------------------------------------------------- main


def test(storage_runs, outage_runs):
    import producer
    import psycopg2

    start_stack()
    storage = run(["podman", "volume", "inspect", "--format", "{{.Mountpoint}}",
                   "%s_storage" % PROJECT]).stdout.strip()
    conn = psycopg2.connect(database_url())
    app = producer.celery_app(broker_url())
    check_migrate_once(conn)
    check_non_root()
    check_health_reported()

    t0 = time.monotonic()
    batch1 = submit_runs(conn, app, storage, storage_runs)
    wait_finished(conn, batch1, 300)
    log("batch 1: %d runs finished in %.1f s" % (len(batch1), time.monotonic() - t0))
    check_exactly_once(conn, batch1)

    batch2, task_ids = database_outage(conn, app, storage, outage_runs)
    conn = wait_for("a database connection", lambda: try_connect(psycopg2), 60)
    for run_id in batch2:
        producer.mark_parsing(conn, run_id, task_ids[run_id])
    wait_finished(conn, batch2, 300)
    check_exactly_once(conn, batch1 + batch2)
    for n in range(1, WORKERS + 1):
        w = container("worker", n)
        wait_for("%s healthy after the outage" % w, lambda: healthy(w), 60, 2)
    log("after the outage: every run COMPLETE once, no retry used, workers healthy")

    check_demo_producer(conn)
    conn.close()
    check_down()


def try_connect(psycopg2):
    try:
        return psycopg2.connect(database_url())
    except psycopg2.OperationalError:
        return None


def on_deadline(signum, frame):
    raise Deadline("the compose test exceeded its deadline" if signum == signal.SIGALRM
                   else "terminated by signal %d" % signum)


def main():
    os.makedirs(STATE, exist_ok=True)
    open(os.path.join(STATE, "compose.log"), "w").close()
    os.environ.setdefault("CONTAINERS_CONF", os.path.join(HERE, "containers.conf"))
    # podman builds OCI images by default, and the OCI format has no HEALTHCHECK: podman
    # would drop the Dockerfile's with a warning.
    os.environ["BUILDAH_FORMAT"] = "docker"
    if not os.path.isdir(TESTDATA):
        log("FAILED: no test data at %s" % TESTDATA)
        return 1
    signal.signal(signal.SIGALRM, on_deadline)
    signal.signal(signal.SIGTERM, on_deadline)  # CI's own timeout: still tear down
    signal.alarm(int(os.environ.get("COMPOSE_TEST_TIMEOUT", "1500")))
    t0 = time.monotonic()
    rc = 1
    try:
        build_images()
        t_built = time.monotonic()
        PORTS.update(RABBITMQ_PORT=free_port(), RABBITMQ_MANAGEMENT_PORT=free_port(),
                     POSTGRES_PORT=free_port())
        teardown()  # a stack left by an interrupted earlier run
        try:
            test(int(os.environ.get("COMPOSE_TEST_RUNS", "30")),
                 int(os.environ.get("COMPOSE_TEST_OUTAGE_RUNS", "120")))
            rc = 0
        except BaseException:
            save_logs()
            raise
        finally:
            signal.alarm(300)  # the teardown gets its own bounded time
            teardown()
        log("images %.0f s, stack and checks %.0f s" % (t_built - t0, time.monotonic() - t_built))
        for line in image_sizes():
            log("image %s" % line)
        log("PASSED in %.0f s" % (time.monotonic() - t0))
    except Skip as e:
        log("skipped: %s" % e)
        rc = EXIT_SKIP
    except (Failed, Deadline) as e:
        log("FAILED: %s" % e)
    finally:
        signal.alarm(0)
    return rc


if __name__ == "__main__":
    sys.exit(main())
