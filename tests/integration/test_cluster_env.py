"""The cluster topology of tests/env/cluster.sh works (no cworker here): a quorum queue is
replicated on the three RabbitMQ nodes and its messages survive the loss of its leader;
AMQPS verifies with the private CA and not with another; PostgreSQL streams to the standby,
fails over to it, and a libpq multi-host URL finds the new primary; verify-full TLS works
with the CA and fails with the wrong one.

Skipped unless CWORKER_CLUSTER=1 (`make test-cluster` starts the cluster and sets it).
"""

import ssl
import subprocess
import uuid

import amqp
import kombu
import psycopg2
import psycopg2.errors
import pytest

import cluster
from cluster import NODES, pg_connect, pg_one, wait_until

pytestmark = pytest.mark.skipif(not cluster.enabled(), reason="cluster tests: CWORKER_CLUSTER=1")

MESSAGES = 50


@pytest.fixture(scope="module")
def c():
    cl = cluster.Cluster.started()
    yield cl
    cl.ensure_all_nodes()


def amqp_conn(c, n):
    # confirm_publish: basic_publish returns once the broker confirmed (for a quorum queue:
    # a majority has the message). Without it a leader killed right after the publishes
    # loses the tail that was not committed yet (seen: 7 of 50).
    conn = amqp.Connection(host="127.0.0.1:%d" % c.amqp_ports[n], userid="guest",
                           password="guest", connect_timeout=10, confirm_publish=True)
    conn.connect()
    return conn


def drain(ch, queue):
    """Every message of `queue`, acked, as decoded bodies in order."""
    bodies = []
    while True:
        m = ch.basic_get(queue)
        if m is None:
            return bodies
        bodies.append(m.body.decode() if isinstance(m.body, bytes) else m.body)
        ch.basic_ack(m.delivery_tag)


# ------------------------------------------------------------------ RabbitMQ cluster


def test_cluster_has_three_running_nodes_with_quorum_queues(c):
    assert c.running_nodes(via=1) == [cluster.node_name(n) for n in NODES]
    assert c.running_nodes(via=3) == [cluster.node_name(n) for n in NODES]
    assert c.partitions(via=1) == "[]"
    flags = c.ctl(1, "-q", "list_feature_flags", "name", "state")
    assert any(line.split() == ["quorum_queue", "enabled"] for line in flags.splitlines()), flags


@pytest.mark.parametrize("how", ["sigkill", "stop_app"])
def test_cluster_quorum_queue_survives_its_leader(c, how):
    name = "cwc.test.quorum.%s.%s" % (how, uuid.uuid4().hex[:8])
    conn = amqp_conn(c, 1)
    ch = conn.channel()
    ch.queue_declare(name, durable=True, auto_delete=False,
                     arguments={"x-queue-type": "quorum"})
    for i in range(MESSAGES):
        ch.basic_publish(amqp.Message(str(i), delivery_mode=2), routing_key=name)
    conn.close()

    q = wait_until("3 members of " + name,
                   lambda: (r := c.queue(name)) and len(r["members"]) == 3 and r)
    assert q["type"] == "quorum"
    assert sorted(q["members"]) == [cluster.node_name(n) for n in NODES]
    leader = q["leader"]
    down = int(leader[len("cwc")])
    try:
        if how == "sigkill":
            c.kill_node(down)
        else:
            c.stop_app(down)
        new_leader = c.wait_for_leader(name, not_on=leader)
        assert new_leader != leader
        survivor = next(n for n in NODES if n != down)
        conn = amqp_conn(c, survivor)
        ch = conn.channel()
        assert drain(ch, name) == [str(i) for i in range(MESSAGES)]
        conn.close()
    finally:
        c.start_node(down)
    q = wait_until("%s back in %s" % (leader, name),
                   lambda: (r := c.queue(name, via=down)) and leader in r["members"] and r)
    assert len(q["members"]) == 3
    conn = amqp_conn(c, down)
    conn.channel().queue_delete(name)
    conn.close()


def test_cluster_broker_urls_fail_over_in_kombu(c):
    """The ';' list of CLUSTER_BROKER_URLS: kombu connects to the next node when one is down."""
    c.kill_node(1)
    try:
        with kombu.Connection(c.broker_urls, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=len(NODES))
            assert conn.connected
            assert conn.as_uri().endswith(":%d//" % c.amqp_ports[2]), conn.as_uri()
    finally:
        c.start_node(1)


# ------------------------------------------------------------------ AMQPS


def tls_opts(ca, cert=None, key=None):
    opts = {"ca_certs": ca, "cert_reqs": ssl.CERT_REQUIRED, "server_hostname": "localhost"}
    if cert:
        opts.update(certfile=cert, keyfile=key)
    return opts


def test_cluster_amqps_with_the_ca_connects(c):
    with kombu.Connection(c.tls_url, ssl=tls_opts(c.ca), connect_timeout=10) as conn:
        conn.connect()
        assert conn.connected
        ch = conn.channel()
        _, count, _ = ch.queue_declare("", exclusive=True)
        assert count == 0
    # The client certificate of the same CA is accepted by the server's verify_peer.
    with kombu.Connection(c.tls_url, ssl=tls_opts(c.ca, c.client_cert, c.client_key),
                          connect_timeout=10) as conn:
        conn.connect()
        assert conn.connected


def test_cluster_amqps_with_the_wrong_ca_is_refused(c):
    conn = amqp.Connection(host="localhost:%d" % c.tls_port, userid="guest", password="guest",
                           ssl=tls_opts(c.wrong_ca), connect_timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        conn.connect()


def test_cluster_amqps_refuses_a_client_certificate_of_another_ca(c, tmp_path):
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=intruder", "-days", "1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    conn = amqp.Connection(host="localhost:%d" % c.tls_port, userid="guest", password="guest",
                           ssl=tls_opts(c.ca, str(cert), str(key)), connect_timeout=10)
    # The server's verify_peer answers with a bad_certificate alert; under TLS 1.3 it comes
    # after the client's handshake, so the client reads it or just the closed socket (EOF).
    # A listener that is down would be ConnectionRefusedError, not an SSLError.
    with pytest.raises(ssl.SSLError, match="BAD_CERTIFICATE|UNKNOWN_CA|EOF occurred"):
        conn.connect()
        conn.channel()


# ------------------------------------------------------------------ PostgreSQL


def verify_full_dsn(port, ca):
    return ("host=localhost port=%d dbname=cworker user=cworker password=cworker "
            "sslmode=verify-full sslrootcert=%s" % (port, ca))


@pytest.mark.parametrize("server", ["primary", "standby"])
def test_cluster_pg_verify_full_with_the_ca(c, server):
    port = c.primary_port if server == "primary" else c.standby_port
    dsn = verify_full_dsn(port, c.ca)
    assert pg_one(dsn, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") is True
    with pytest.raises(psycopg2.OperationalError, match="certificate verify failed"):
        pg_connect(verify_full_dsn(port, c.wrong_ca))


def test_cluster_pg_fails_over_to_the_promoted_standby(c):
    table = "cwc_failover_%s" % uuid.uuid4().hex[:8]
    token = uuid.uuid4().hex
    try:
        assert pg_one(c.database_url, "SELECT inet_server_port()") == c.primary_port
        conn = pg_connect(c.primary_url)
        with conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE %s (v text)" % table)
            cur.execute("INSERT INTO %s VALUES (%%s)" % table, (token,))
        conn.close()
        wait_until("the row on the standby",
                   lambda: pg_one(c.standby_url, "SELECT v FROM %s" % table) == token)
        with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
            pg_one(c.standby_url, "INSERT INTO %s VALUES ('x')" % table)

        c.stop_primary()
        with pytest.raises(psycopg2.OperationalError):
            pg_connect(c.database_url)  # only a read-only server is left
        c.promote()
        assert pg_one(c.database_url, "SELECT inet_server_port()") == c.standby_port
        conn = pg_connect(c.database_url)
        with conn, conn.cursor() as cur:
            cur.execute("INSERT INTO %s VALUES ('after')" % table)
            cur.execute("SELECT v FROM %s ORDER BY v = 'after', v" % table)
            assert [r[0] for r in cur.fetchall()] == [token, "after"]
        conn.close()
    finally:
        c.restore()
    # restore(): the designed topology again, replicating.
    assert pg_one(c.database_url, "SELECT inet_server_port()") == c.primary_port
    assert pg_one(c.admin_standby_url, "SELECT pg_is_in_recovery()") is True
    pg_one(c.primary_url, "DROP TABLE %s" % table)
