"""Infrastructure outages are not task failures (CONTRACT 1.8, Part 2 "Outages"): RabbitMQ or
PostgreSQL goes away in the middle of a batch of runs; when it is back, every run ends
COMPLETE exactly once, none is lost, and no retry was spent on it (retry_count 0).

These tests restart servers, so they never touch the shared services of the other test
modules: the module starts its own private RabbitMQ + PostgreSQL with tests/env/services.sh
on other ports and another state directory (CWORKER_STATE_DIR=.state/outages), and stops
them at the end. A lock file serialises concurrent runs of this module on one machine.
Ports: CWORKER_OUTAGE_{AMQP,PG,EPMD,DIST}_PORT (default 5692, 5452, 4389, 25692).
"""

import fcntl
import os
import shlex
import subprocess
import time
import uuid

import psycopg2
import pytest

import faults
import producer
from conftest import PALOALTO, REPO, Env, Worker
from faults import assert_parsed_once, pal_upload, run_row, submit, wait_until

SERVICES = str(REPO / "tests" / "env" / "services.sh")
STATE = REPO / ".state" / "outages"
PG_BIN = "/usr/lib/postgresql/15/bin"
PAL_TOP = "Splunk_TA_paloalto"
BATCH = 4
# Long enough per run (16 entries x 100 ms) that the outage lands mid-batch.
SLOW = {"CONCURRENCY": "2", "HEARTBEAT_INTERVAL": "0.3", "CWORKER_DEBUG_ENTRY_DELAY_MS": "100"}


def service_env():
    return dict(os.environ,
                CWORKER_STATE_DIR=str(STATE),
                CWORKER_AMQP_PORT=os.environ.get("CWORKER_OUTAGE_AMQP_PORT", "5692"),
                CWORKER_PG_PORT=os.environ.get("CWORKER_OUTAGE_PG_PORT", "5452"),
                CWORKER_EPMD_PORT=os.environ.get("CWORKER_OUTAGE_EPMD_PORT", "4389"),
                CWORKER_DIST_PORT=os.environ.get("CWORKER_OUTAGE_DIST_PORT", "25692"))


def services(cmd, timeout=240):
    r = subprocess.run(["bash", SERVICES, cmd], env=service_env(), capture_output=True,
                       text=True, timeout=timeout)
    if r.returncode != 0:
        pytest.fail("services.sh %s failed (%d):\n%s%s" % (cmd, r.returncode, r.stdout,
                                                           r.stderr))
    return r.stdout


def parse_env(out):
    env = {}
    for line in out.splitlines():
        if line.startswith("export "):
            k, _, v = line[len("export "):].partition("=")
            env[k] = shlex.split(v)[0] if v.startswith('"') else v
    return env


def as_postgres(argv):
    return (["runuser", "-u", "postgres", "--"] + argv) if os.geteuid() == 0 else argv


class Outages:
    """The private servers and the faults done to them."""

    def __init__(self, env):
        self.env = env
        self.pg_root = os.path.realpath(str(STATE / "pg"))
        self.pg_data = os.path.join(self.pg_root, "data")
        self.pg_log = os.path.join(self.pg_root, "postgres.log")

    def ctl(self, *args, timeout=120):
        return subprocess.run(self.env.rabbitmqctl + ["-q"] + list(args), capture_output=True,
                              text=True, timeout=timeout)

    def pg_ctl(self, *args, timeout=120):
        r = subprocess.run(as_postgres([PG_BIN + "/pg_ctl", "-D", self.pg_data] + list(args)),
                           capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 0, "pg_ctl %s: %s%s" % (args, r.stdout, r.stderr)

    # RabbitMQ
    def rabbit_stop_app(self):
        r = self.ctl("stop_app")
        assert r.returncode == 0, r.stderr

    def rabbit_start_app(self):
        r = self.ctl("start_app")
        assert r.returncode == 0, r.stderr
        r = self.ctl("await_startup", "--timeout", "60")
        assert r.returncode == 0, r.stderr

    def rabbit_node_stop(self):
        r = self.ctl("stop", str(STATE / "rabbitmq" / "rabbitmq.pid"))
        assert r.returncode == 0, r.stderr

    def rabbit_up(self):
        return self.ctl("await_startup", "--timeout", "2", timeout=30).returncode == 0

    # PostgreSQL
    def pg_restart(self):
        self.pg_ctl("restart", "-m", "fast", "-w", "-t", "60", "-l", self.pg_log)

    def pg_stop(self):
        self.pg_ctl("stop", "-m", "fast", "-w", "-t", "60")

    def pg_start(self):
        self.pg_ctl("start", "-w", "-t", "60", "-l", self.pg_log)

    def pg_up(self):
        r = subprocess.run(as_postgres([PG_BIN + "/pg_ctl", "-D", self.pg_data, "status"]),
                           capture_output=True, text=True, timeout=30)
        return r.returncode == 0

    def heal(self):
        """Whatever a failed test left down comes back up."""
        if not self.pg_up():
            self.pg_start()
        if not self.rabbit_up():
            if self.ctl("start_app").returncode != 0:
                services("start")
            self.ctl("await_startup", "--timeout", "60")


@pytest.fixture(scope="module")
def oenv(tmp_path_factory):
    STATE.parent.mkdir(parents=True, exist_ok=True)
    lock = open(str(STATE) + ".lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        services("start")
        svc = parse_env(services("env"))
        dbname = "cwout_%d_%s" % (os.getpid(), uuid.uuid4().hex[:6])
        admin = psycopg2.connect(svc["ADMIN_DATABASE_URL"])
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute('CREATE DATABASE "%s" OWNER cworker' % dbname)
        admin.close()
        e = Env(svc, dbname, tmp_path_factory.mktemp("outage-storage"))
        r = subprocess.run([e.bin, "migrate", "--migrations-dir", str(REPO / "migrations")],
                           env=dict(os.environ, DATABASE_URL=e.database_url),
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, "migrate failed (%d):\n%s%s" % (r.returncode, r.stdout,
                                                                   r.stderr)
        e.outages = Outages(e)
        yield e
        if e._conn is not None:
            e._conn.close()
    finally:
        try:
            services("stop")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()


@pytest.fixture
def workers(oenv, request, tmp_path):
    pool = faults.WorkerPool(oenv, faults.unique_queue("outages", request.node.name), tmp_path,
                             Worker)
    yield pool
    oenv.outages.heal()
    pool.close()


def start_batch(oenv, workers):
    """A batch of paloalto runs on a slow worker; returns (worker, run ids) once the first
    runs execute (their heartbeat moved past what the producer wrote)."""
    w = workers.start(**SLOW)
    celery = producer.celery_app(oenv.broker_url)
    run_ids = [submit(oenv, celery, pal_upload(), workers.queue)[0] for _ in range(BATCH)]
    base = dict((r, run_row(oenv, r)["last_heartbeat"]) for r in run_ids)
    wait_until(lambda: any(run_row(oenv, r)["last_heartbeat"] != base[r] for r in run_ids),
               30, "first runs executing\n" + w.tail())
    pending = [r for r in run_ids if run_row(oenv, r)["status"] not in faults.FINAL]
    assert len(pending) >= 2, "the batch finished before the outage"
    return w, run_ids


def assert_batch_done_once(oenv, workers, w, run_ids):
    expected = faults.reference_counts(PALOALTO, PAL_TOP)
    faults.wait_all_final(oenv, run_ids, timeout=120, workers=[w])
    for r in run_ids:
        assert_parsed_once(oenv, r, expected, retry_count=0)
    faults.wait_queue_settled(oenv, workers.queue, timeout=60)
    time.sleep(0.5)
    for r in run_ids:  # and nothing redid them afterwards
        assert_parsed_once(oenv, r, expected, retry_count=0)
    faults.assert_queues_empty(oenv, workers.queue + ".dead",
                               *faults.retry_queues(workers.queue, w.settings["RETRY_DELAYS"]))
    assert w.alive(), "worker died:\n" + w.tail()
    # Still consuming: a new run completes (a fresh producer connection).
    celery = producer.celery_app(oenv.broker_url)
    run_id, _ = submit(oenv, celery, ("inputs.conf",
                                      (PALOALTO / "default" / "inputs.conf").read_bytes()),
                       workers.queue, run_type="SINGLE_CONF")
    faults.wait_final(oenv, run_id, timeout=60, workers=[w])
    assert_parsed_once(oenv, run_id, {"inputs": 3}, retry_count=0)


# The only ERROR lines an outage may cause (any other fails the test): the supervisor's
# consumer loses the broker (worker/supervisor/broker.c sup_consumer_lost; reconnect
# attempts are warnings), or an executor cannot write a run's failure while PostgreSQL is
# away (worker/tasks/parse_run.c; a detected outage requeues silently and the circuit
# breaker is a warning, so a PostgreSQL outage may well log no ERROR at all).
BROKER_LOST = r"^broker connection lost: "
FAILURE_NOT_RECORDED = r"^could not record the failure of run \d+: "


@pytest.mark.expect_log_errors(BROKER_LOST)
@pytest.mark.parametrize("how", ["stop_app", "node_restart"])
def test_rabbitmq_restart_mid_batch(oenv, workers, how):
    """The broker goes away for ~3 s (`rabbitmqctl stop_app` / start_app) or the whole node
    is stopped and started again, while runs execute and others wait in the queue."""
    w, run_ids = start_batch(oenv, workers)
    o = oenv.outages
    try:
        if how == "stop_app":
            o.rabbit_stop_app()
            time.sleep(3)
            o.rabbit_start_app()
        else:
            o.rabbit_node_stop()
            time.sleep(1)
            services("start")
    finally:
        o.heal()
    assert_batch_done_once(oenv, workers, w, run_ids)


@pytest.mark.expect_log_errors(FAILURE_NOT_RECORDED)
@pytest.mark.parametrize("how", ["restart", "stop_3s_start"])
def test_postgresql_restart_mid_batch(oenv, workers, how):
    """PostgreSQL restarted (`pg_ctl restart -m fast`: every connection is terminated) or
    down for ~3 s while runs execute: runs in flight are redone when it is back, not
    retried; none is lost or duplicated."""
    w, run_ids = start_batch(oenv, workers)
    o = oenv.outages
    try:
        if how == "restart":
            o.pg_restart()
        else:
            o.pg_stop()
            time.sleep(3)
            o.pg_start()
    finally:
        o.heal()
    assert_batch_done_once(oenv, workers, w, run_ids)
