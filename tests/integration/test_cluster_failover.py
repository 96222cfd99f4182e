"""cworker beyond one machine, on the topology of tests/env/cluster.sh (three RabbitMQ nodes
with AMQPS on node 1, a PostgreSQL primary with a streaming standby, TLS from a private CA):

- quorum work queue, two workers whose CELERY_BROKER_URL lists the nodes in different
  orders; the node worker A consumes from (and the queue's leader) is SIGKILLed mid-batch
  and started again later: every run COMPLETE exactly once, no retry consumed, queue empty;
- the PostgreSQL primary stopped and the standby promoted mid-batch, workers and producer
  on the libpq multi-host URL (target_session_attrs=read-write): every run ends COMPLETE,
  none twice, none left PARSING;
- the primary SIGKILLed while the standby's WAL receiver was frozen: commits it had
  acknowledged are lost at promotion; the stuck-run and orphan sweeps bring those runs
  back (short VISIBILITY_TIMEOUT / ORPHAN_TIMEOUT here) and each ends COMPLETE once;
- TLS: amqps:// with BROKER_USE_SSL_CA_CERTS and sslmode=verify-full complete a run; a
  wrong CA for the broker stops the worker at start (exit 2, the certificate named); a
  wrong CA for PostgreSQL stops it at start too (a configuration error, not an outage).

consumer_timeout is covered on the single broker (test_quorum_queues.py); the cluster adds
nothing to it. The module stops the cluster when it ends (`cluster.sh stop`).
Skipped unless CWORKER_CLUSTER=1 (`make test-cluster`).
"""

import os
import signal
import shlex
import subprocess
import time
import uuid

import psycopg2
import pytest

import cluster
import faults
import producer
from conftest import PALOALTO, REPO, Env, Worker
from faults import assert_parsed_once, run_row, wait_until

pytestmark = pytest.mark.skipif(not cluster.enabled(), reason="cluster tests: CWORKER_CLUSTER=1")

INPUTS = ("inputs.conf", (PALOALTO / "default" / "inputs.conf").read_bytes())
INPUTS_EXPECTED = {"inputs": 3}
BATCH = 200
# A run takes >= 150 ms: the batch lasts long enough for a failure in its middle.
SLOW = {"CONCURRENCY": "2", "HEARTBEAT_INTERVAL": "0.5", "CWORKER_DEBUG_ENTRY_DELAY_MS": "150"}

# The ERROR lines a lost broker node may cause (supervisor/broker.c sup_consumer_lost).
BROKER_LOST = r"^broker connection lost: "
# An executor that cannot write a run's failure while no primary is writable.
FAILURE_NOT_RECORDED = r"^could not record the failure of run \d+: "


def with_db(url, dbname):
    """url with its database replaced, query string (target_session_attrs) kept."""
    head, _, query = url.partition("?")
    base = head.rpartition("/")[0]
    return base + "/" + dbname + ("?" + query if query else "")


def node_url(c, n):
    return c.amqp_urls[n]


def urls_from(c, first):
    """The nodes' URLs as a ';' failover list starting at node `first`."""
    order = [first] + [n for n in cluster.NODES if n != first]
    return ";".join(node_url(c, n) for n in order)


class ClusterEnv(Env):
    """conftest.Env's interface (rows, queue counts, rabbitmqctl) on the cluster: broker
    inspection goes through a node that is up (`down` holds the ones a test took away)."""

    def __init__(self, c, dbname, storage):
        self.c = c
        self.down = set()
        self.broker_url = c.broker_urls
        self.admin_url = c.admin_primary_url
        self.database_url = with_db(c.database_url, dbname)
        self.dbname = dbname
        self.storage = storage
        self.bin = os.environ.get("CWORKER_BIN") or str(REPO / "build" / "cworker")
        self._conn = None

    def live_node(self):
        return next(n for n in cluster.NODES if n not in self.down)

    @property
    def rabbitmqctl(self):
        return shlex.split(self.c.env["CLUSTER_RABBITMQCTL_%d" % self.live_node()])

    def _kombu(self):
        from kombu import Connection

        return Connection(node_url(self.c, self.live_node()), connect_timeout=10)

    def queue_type(self, name):
        q = self.c.queue(name, via=self.live_node())
        return q and q["type"]

    def connections_on(self, n):
        """How many client connections node n accepted (its own, not the cluster's)."""
        out = self.c.ctl(n, "-q", "list_connections", "node", "port")
        port = str(self.c.amqp_ports[n])
        return sum(1 for line in out.splitlines()
                   if line.split("\t")[:2] == [cluster.node_name(n), port])


@pytest.fixture(scope="module")
def c():
    cl = cluster.Cluster.started()
    yield cl
    cluster.cluster_sh("stop")


@pytest.fixture(scope="module")
def cenv(c, tmp_path_factory):
    dbname = "cwcl_%d_%s" % (os.getpid(), uuid.uuid4().hex[:6])
    admin = psycopg2.connect(c.admin_primary_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute('CREATE DATABASE "%s" OWNER cworker' % dbname)
    admin.close()
    e = ClusterEnv(c, dbname, tmp_path_factory.mktemp("cluster-storage"))
    assert os.access(e.bin, os.X_OK), "CWORKER_BIN %s is not executable" % e.bin
    r = subprocess.run([e.bin, "migrate", "--migrations-dir", str(REPO / "migrations")],
                       env=dict(os.environ, DATABASE_URL=e.database_url),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, "migrate failed (%d):\n%s%s" % (r.returncode, r.stdout, r.stderr)
    # The standby has the new database too (physical replication of the whole server).
    cluster.wait_until("%s on the standby" % dbname, lambda: cluster.pg_one(
        c.admin_standby_url, "SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)))
    yield e
    if e._conn is not None:
        e._conn.close()


@pytest.fixture
def workers(cenv, request, tmp_path):
    pool = faults.WorkerPool(cenv, faults.unique_queue("cluster", request.node.name), tmp_path,
                             Worker)
    yield pool
    cenv.c.ensure_all_nodes()
    cenv.down.clear()
    pool.close()


def wait_consumers(cenv, queue, n, timeout=30):
    return wait_until(lambda: (cenv.queue_counts(queue) or (0, 0))[1] >= n, timeout,
                      "%d consumers on %s" % (n, queue))


def quorum_celery_app(url, queue):
    """The application's Celery client as one that uses quorum queues configures it: the
    queue declared with x-queue-type quorum (kombu declares before publishing, and RabbitMQ
    refuses a declare without the argument once the queue is a quorum queue)."""
    from kombu import Exchange, Queue

    app = producer.celery_app(url)
    app.conf.task_queues = [Queue(queue, Exchange(queue, "direct"), routing_key=queue,
                                  queue_arguments={"x-queue-type": "quorum"})]
    return app


def submit_batch(cenv, celery, queue, n):
    """n SINGLE_CONF runs of inputs.conf, created and enqueued as the application does
    (one producer connection to PostgreSQL for the batch)."""
    pconn = cenv.producer_conn()
    try:
        ids = []
        for _ in range(n):
            run_id, _ = producer.create_run(pconn, [INPUTS], str(cenv.storage),
                                            run_type="SINGLE_CONF")
            producer.enqueue(pconn, celery, run_id, queue=queue)
            ids.append(run_id)
        return ids
    finally:
        pconn.close()


def status_counts(cenv, run_ids):
    rows = faults.db_retry(cenv, lambda e: e.rows(
        "SELECT status, count(*) AS n FROM ingestion_runs WHERE id = ANY(%s) GROUP BY 1",
        (list(run_ids),)))
    return dict((r["status"], r["n"]) for r in rows)


def wait_completed(cenv, run_ids, at_least, timeout=60):
    return wait_until(lambda: status_counts(cenv, run_ids).get("COMPLETE", 0) >= at_least,
                      timeout, "%d runs COMPLETE" % at_least, interval=0.2)


def batch_figures(cenv, run_ids):
    """{runs, complete, lost (not COMPLETE), duplicated (stanzas beyond one set), retries}."""
    rows = faults.db_retry(cenv, lambda e: e.rows(
        "SELECT r.id, r.status, r.retry_count,"
        " (SELECT count(*) FROM stanzas s WHERE s.run_id = r.id) AS stanzas"
        " FROM ingestion_runs r WHERE r.id = ANY(%s)", (list(run_ids),)))
    one_set = sum(INPUTS_EXPECTED.values())
    return {
        "runs": len(rows),
        "complete": sum(1 for r in rows if r["status"] == "COMPLETE"),
        "lost": sum(1 for r in rows if r["status"] != "COMPLETE"),
        "duplicated": sum(1 for r in rows if r["stanzas"] > one_set),
        "retries": sum(r["retry_count"] or 0 for r in rows),
    }


def assert_batch_done_once(cenv, pool, run_ids, workers):
    faults.wait_all_final(cenv, run_ids, timeout=180, workers=workers)
    figures = batch_figures(cenv, run_ids)
    print("figures:", figures)
    for r in run_ids:
        assert_parsed_once(cenv, r, INPUTS_EXPECTED, retry_count=0)
    faults.wait_queue_settled(cenv, pool.queue, timeout=60)
    delays = faults.BASE_SETTINGS["RETRY_DELAYS"]
    faults.assert_queues_empty(cenv, pool.queue + ".dead", *faults.retry_queues(pool.queue, delays))
    assert figures == {"runs": len(run_ids), "complete": len(run_ids), "lost": 0,
                       "duplicated": 0, "retries": 0}, figures
    return figures


# ------------------------------------------------------------------ RabbitMQ node failure


@pytest.mark.expect_log_errors(BROKER_LOST)
def test_cluster_quorum_queue_survives_the_node_a_worker_consumes_from(cenv, workers):
    c = cenv.c
    a = workers.start(wait=False, CELERY_QUEUE_TYPE="quorum",
                      CELERY_BROKER_URL=urls_from(c, 1), **SLOW)
    wait_consumers(cenv, workers.queue, 1)
    b = workers.start(wait=False, CELERY_QUEUE_TYPE="quorum",
                      CELERY_BROKER_URL=urls_from(c, 2), **SLOW)
    wait_consumers(cenv, workers.queue, 2)
    assert cenv.queue_type(workers.queue) == "quorum"
    assert a.wait_log(r"connected to the broker at [^ ]*:%d" % c.amqp_ports[1]), a.tail()
    assert b.wait_log(r"connected to the broker at [^ ]*:%d" % c.amqp_ports[2]), b.tail()
    q = c.queue(workers.queue)
    assert sorted(q["members"]) == [cluster.node_name(n) for n in cluster.NODES], q

    # The producer lists the nodes too (from node 2: its publishes do not die with node 1).
    celery = quorum_celery_app(urls_from(c, 2), workers.queue)
    run_ids = submit_batch(cenv, celery, workers.queue, BATCH)
    wait_completed(cenv, run_ids, BATCH // 4)
    done_before = status_counts(cenv, run_ids).get("COMPLETE", 0)
    assert done_before < BATCH, "the batch finished before the node went"

    leader_before = c.queue(workers.queue)["leader"]
    c.kill_node(1)
    cenv.down.add(1)
    leader = c.wait_for_leader(workers.queue, not_on=cluster.node_name(1))
    # Worker A moves to the next node of its list; both keep consuming.
    assert a.wait_log(r"connected to the broker at [^ ]*:%d" % c.amqp_ports[2], timeout=30), \
        a.tail()
    wait_consumers(cenv, workers.queue, 2)
    wait_completed(cenv, run_ids, done_before + 20)
    c.start_node(1)
    cenv.down.discard(1)

    figures = assert_batch_done_once(cenv, workers, run_ids, [a, b])
    received = sum(faults.log_count(w, r" received \(retries 0\)") for w in (a, b))
    print("node 1 killed once; done before the kill: %d; leader %s -> %s; deliveries %d "
          "(%d redelivered); figures %r" % (done_before, leader_before, leader, received,
                                            received - BATCH, figures))
    assert received >= BATCH
    assert a.alive() and b.alive()
    assert "broker connection lost" in a.log(), a.tail()


# ------------------------------------------------------------------ PostgreSQL failover


def new_primary_port(cenv):
    return cluster.pg_one(cenv.database_url, "SELECT inet_server_port()")


@pytest.mark.expect_log_errors(FAILURE_NOT_RECORDED)
def test_cluster_postgresql_primary_lost_and_standby_promoted_mid_batch(cenv, workers):
    c = cenv.c
    assert new_primary_port(cenv) == c.primary_port
    ws = [workers.start(wait=False, CELERY_BROKER_URL=urls_from(c, n), **SLOW) for n in (1, 2)]
    wait_consumers(cenv, workers.queue, 2)
    celery = producer.celery_app(urls_from(c, 1))
    half = BATCH // 2
    run_ids = submit_batch(cenv, celery, workers.queue, half)
    wait_completed(cenv, run_ids, half // 4)
    try:
        c.stop_primary()
        time.sleep(2)  # no writable server for a while: workers pause intake
        c.promote()
        assert new_primary_port(cenv) == c.standby_port
        # The producer writes to the new primary through the same multi-host URL.
        run_ids += submit_batch(cenv, celery, workers.queue, half)
        figures = assert_batch_done_once(cenv, workers, run_ids, ws)
        assert status_counts(cenv, run_ids) == {"COMPLETE": len(run_ids)}
        received = sum(faults.log_count(w, r" received \(retries 0\)") for w in ws)
        interrupted = sum(faults.log_count(w, r"pausing task intake") for w in ws)
        print("primary stopped and standby promoted once; intake paused %d times; deliveries"
              " %d (%d redelivered); figures %r" % (interrupted, received,
                                                   received - len(run_ids), figures))
        assert interrupted >= 1, "no run was in flight when the primary went"
    finally:
        cenv._conn = None
        c.restore()


# ------------------------------------------------------------------ TLS


def tls_env(cenv, broker_ca, pg_ca):
    """A worker on AMQPS (node 1) and on the primary with verify-full (host name localhost,
    the certificates' name)."""
    c = cenv.c
    db = ("postgresql://cworker:cworker@localhost:%d/%s?sslmode=verify-full&sslrootcert=%s"
          % (c.primary_port, cenv.dbname, pg_ca))
    return {"CELERY_BROKER_URL": c.tls_url, "BROKER_USE_SSL_CA_CERTS": broker_ca,
            "DATABASE_URL": db}


def test_cluster_tls_broker_and_postgresql_complete_a_run(cenv, workers):
    c = cenv.c
    w = workers.start(wait=False, **tls_env(cenv, c.ca, c.ca))
    wait_consumers(cenv, workers.queue, 1)
    assert w.wait_log(r"connected to the broker at [^ ]*:%d" % c.tls_port), w.tail()
    celery = producer.celery_app(c.broker_urls)
    [run_id] = submit_batch(cenv, celery, workers.queue, 1)
    faults.wait_final(cenv, run_id, timeout=60, workers=[w])
    assert_parsed_once(cenv, run_id, INPUTS_EXPECTED, retry_count=0)
    # Both connections of the worker are TLS: the server says so for PostgreSQL.
    ssl_rows = faults.db_retry(cenv, lambda e: e.scalar(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)"
        " WHERE a.datname = %s AND s.ssl", (cenv.dbname,)))
    assert ssl_rows >= 1


def wait_exit(w, timeout=30):
    try:
        return w.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


@pytest.mark.expect_log_errors(r"cannot start: the broker's TLS certificate does not verify")
def test_cluster_tls_wrong_broker_ca_stops_the_worker_at_start(cenv, workers):
    c = cenv.c
    w = workers.start(wait=False, **tls_env(cenv, c.wrong_ca, c.ca))
    w.expected_exit = True
    rc = wait_exit(w)
    assert rc == 2, "exit %r:\n%s" % (rc, w.tail())
    assert "the broker's TLS certificate does not verify" in w.log(), w.tail()
    assert "BROKER_USE_SSL_CA_CERTS" in w.log(), w.tail()


PG_TLS_UNVERIFIABLE = r"cannot start: PostgreSQL's TLS certificate does not verify"


@pytest.mark.expect_log_errors(PG_TLS_UNVERIFIABLE)
def test_cluster_tls_wrong_postgresql_ca_stops_the_worker_at_start(cenv, workers):
    """A server certificate that does not verify will not verify on the next try either: a
    configuration error like the broker's, exit 2 at start, with libpq's reason."""
    c = cenv.c
    w = workers.start(wait=False, **tls_env(cenv, c.ca, c.wrong_ca))
    w.expected_exit = True
    rc = wait_exit(w, timeout=20)
    assert rc == 2, "exit %r:\n%s" % (rc, w.tail())
    assert "certificate verify failed" in w.log(), w.tail()
    assert "sslrootcert" in w.log(), w.tail()


@pytest.mark.expect_log_errors(PG_TLS_UNVERIFIABLE)
def test_cluster_tls_wrong_postgresql_ca_loses_no_run(cenv, workers):
    """The worker that stops at start took nothing: the run stays PARSING, its message in
    the queue, no retry consumed; a worker with the right CA then completes it once."""
    c = cenv.c
    celery = producer.celery_app(c.broker_urls)
    [run_id] = submit_batch(cenv, celery, workers.queue, 1)  # kombu declares the queue
    bad = workers.start(wait=False, **tls_env(cenv, c.ca, c.wrong_ca))
    bad.expected_exit = True
    assert wait_exit(bad, timeout=20) == 2, bad.tail()
    run = run_row(cenv, run_id)
    assert (run["status"], run["retry_count"]) == ("PARSING", 0), run
    faults.assert_untouched(cenv, run_id)
    assert sum(cenv.ctl_counts(workers.queue)) == 1, cenv.ctl_counts(workers.queue)
    faults.assert_queues_empty(cenv, workers.queue + ".dead")
    good = workers.start(wait=False, **tls_env(cenv, c.ca, c.ca))
    faults.wait_final(cenv, run_id, timeout=60, workers=[good])
    assert_parsed_once(cenv, run_id, INPUTS_EXPECTED, retry_count=0)


# ------------------------------------------------------------------ a crash that loses commits


def server_pids(admin_url):
    """The postmaster's pid and its children's, from the server's own data directory."""
    datadir = cluster.pg_one(admin_url, "SHOW data_directory")
    with open(os.path.join(datadir, "postmaster.pid")) as f:
        pm = int(f.readline())
    return [pm] + faults.children(pm)


@pytest.mark.expect_log_errors(FAILURE_NOT_RECORDED)
def test_cluster_primary_crash_loses_acknowledged_commits_and_the_runs_come_back(cenv,
                                                                                  workers):
    """Asynchronous replication: commits the primary acknowledged after the standby stopped
    receiving are gone once the standby is promoted. Those runs are PARSING again on the new
    primary while their deliveries are acked: only the stuck-run sweep can bring them back
    (VISIBILITY_TIMEOUT). The standby's WAL receiver is frozen (SIGSTOP) while runs commit,
    the primary is SIGKILLed, the receiver killed (its socket buffer goes with it)."""
    c = cenv.c
    ws = [workers.start(wait=False, CELERY_BROKER_URL=urls_from(c, n), VISIBILITY_TIMEOUT=3,
                        ORPHAN_TIMEOUT=6, **SLOW) for n in (1, 2)]
    wait_consumers(cenv, workers.queue, 2)
    celery = producer.celery_app(urls_from(c, 1))
    run_ids = submit_batch(cenv, celery, workers.queue, 60)
    wait_completed(cenv, run_ids, 10)
    receiver = cluster.pg_one(c.admin_standby_url, "SELECT pid FROM pg_stat_wal_receiver")
    assert receiver, "the standby streams nothing"
    try:
        faults.kill(receiver, signal.SIGSTOP)
        before = status_counts(cenv, run_ids).get("COMPLETE", 0)
        wait_completed(cenv, run_ids, before + 8)
        lost_complete = set(r["id"] for r in cenv.rows(
            "SELECT id FROM ingestion_runs WHERE id = ANY(%s) AND status = 'COMPLETE'",
            (run_ids,)))
        for p in server_pids(c.admin_primary_url):
            faults.kill(p)
    finally:
        faults.kill(receiver, signal.SIGKILL)
        faults.kill(receiver, signal.SIGCONT)
    cenv._conn = None
    try:
        cluster.wait_until("the standby back after its receiver died", lambda: cluster.pg_one(
            c.admin_standby_url, "SELECT pg_is_in_recovery()") is True, timeout=60)
        c.promote()
        assert new_primary_port(cenv) == c.standby_port
        complete_now = set(r["id"] for r in faults.db_retry(cenv, lambda e: e.rows(
            "SELECT id FROM ingestion_runs WHERE id = ANY(%s) AND status = 'COMPLETE'",
            (run_ids,))))
        lost = lost_complete - complete_now
        print("COMPLETE on the old primary before the crash: %d; on the promoted standby: %d;"
              " commits lost: %d" % (len(lost_complete), len(complete_now), len(lost)))
        assert lost, "no acknowledged commit was lost: the test exercised nothing"
        faults.wait_all_final(cenv, run_ids, timeout=120, workers=ws)
        figures = batch_figures(cenv, run_ids)
        print("after the crash: figures %r" % figures)
        assert figures["lost"] == 0 and figures["duplicated"] == 0, figures
        for r in run_ids:  # one set of rows each; a sweep's re-enqueue may spend a retry
            assert_parsed_once(cenv, r, INPUTS_EXPECTED)
        faults.wait_queue_settled(cenv, workers.queue, timeout=60)
    finally:
        cenv._conn = None
        c.restore()
