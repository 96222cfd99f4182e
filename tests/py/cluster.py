"""Helpers for tests against the cluster topology of tests/env/cluster.sh: a three-node
RabbitMQ cluster (cwc1..cwc3@localhost, AMQPS on node 1) and a PostgreSQL primary with a
streaming standby, all with certificates from a private CA.

    c = Cluster.started()          # cluster.sh start (a no-op when all runs), then its env
    c.broker_urls                  # "amqp://...:5701//;amqp://...:5702//;..." (kombu failover)
    c.queues()                     # [{"name", "type", "leader", "members"}, ...]
    c.kill_node(2) / c.stop_app(2) # a crash (SIGKILL of the VM) / a clean stop of the broker
    c.start_node(2)                # back again either way; it rejoins from its disk
    c.stop_primary(); c.promote()  # PostgreSQL failover; c.restore() makes the designed
                                   # topology again (primary writable, standby replaying)

Nothing here knows cworker: it drives rabbitmqctl, cluster.sh and the servers' own state.
"""

import json
import os
import shlex
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SH = REPO / "tests" / "env" / "cluster.sh"
NODES = (1, 2, 3)


def enabled():
    """Cluster tests run only when asked for (`make test-cluster`): they cost ~30 s cold."""
    return os.environ.get("CWORKER_CLUSTER") == "1"


def cluster_sh(*args, timeout=300):
    """Run tests/env/cluster.sh; its log lines go to our stderr, its stdout is returned."""
    return subprocess.run(["bash", str(CLUSTER_SH), *args], check=True, text=True,
                          stdout=subprocess.PIPE, timeout=timeout).stdout


def cluster_env():
    """The `export` lines of `cluster.sh env` as a dict."""
    env = {}
    for line in cluster_sh("env").splitlines():
        if line.startswith("export "):
            k, _, v = line[len("export "):].partition("=")
            env[k] = shlex.split(v)[0] if v else ""
    return env


def node_name(n):
    return "cwc%d@localhost" % n


def wait_until(what, predicate, timeout=60, interval=0.25):
    """predicate()'s first truthy value; AssertionError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as e:  # a node or server in the middle of going away
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError("timed out after %ss waiting for %s (last: %r)" % (timeout, what, last))


class Cluster:
    def __init__(self, env):
        self.env = env
        self.broker_urls = env["CLUSTER_BROKER_URLS"]
        self.amqp_urls = {n: env["CLUSTER_AMQP_URL_%d" % n] for n in NODES}
        self.amqp_ports = {n: int(p) for n, p in zip(NODES, env["CLUSTER_AMQP_PORTS"].split(","))}
        self.tls_url = env["CLUSTER_TLS_URL"]
        self.tls_port = int(env["CLUSTER_TLS_PORT"])
        self.ca = env["CLUSTER_CA"]
        self.wrong_ca = env["CLUSTER_WRONG_CA"]
        self.client_cert = env["CLUSTER_CLIENT_CERT"]
        self.client_key = env["CLUSTER_CLIENT_KEY"]
        self.database_url = env["CLUSTER_DATABASE_URL"]
        self.primary_url = env["CLUSTER_PRIMARY_URL"]
        self.standby_url = env["CLUSTER_STANDBY_URL"]
        self.admin_primary_url = env["CLUSTER_ADMIN_PRIMARY_URL"]
        self.admin_standby_url = env["CLUSTER_ADMIN_STANDBY_URL"]
        self.primary_port = int(env["CLUSTER_PG_PRIMARY_PORT"])
        self.standby_port = int(env["CLUSTER_PG_STANDBY_PORT"])

    @classmethod
    def started(cls):
        cluster_sh("start")
        return cls(cluster_env())

    # ------------------------------------------------------------------ RabbitMQ

    def ctl(self, n, *args, timeout=60, check=True):
        """rabbitmqctl against node n; stdout."""
        cmd = shlex.split(self.env["CLUSTER_RABBITMQCTL_%d" % n]) + list(args)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError("%s: exit %d: %s%s" % (" ".join(args), r.returncode, r.stdout,
                                                      r.stderr))
        return r.stdout

    def queues(self, via=None):
        """Every queue of / with its type, leader and members, asked of node `via` (the first
        node whose broker answers when None)."""
        for n in ([via] if via else NODES):
            try:
                out = self.ctl(n, "-q", "list_queues", "name", "type", "leader", "members",
                               "--formatter", "json")
            except RuntimeError:
                if via:
                    raise
                continue
            return json.loads(out or "[]")
        raise RuntimeError("no node answers list_queues")

    def queue(self, name, via=None):
        """One queue's row of queues(), or None."""
        return next((q for q in self.queues(via) if q["name"] == name), None)

    def wait_for_leader(self, name, not_on=None, timeout=60):
        """The queue's leader once it has one that is not `not_on` (a node name)."""
        def leader():
            q = self.queue(name)
            return q and q.get("leader") not in (None, "", not_on) and q["leader"]
        return wait_until("a leader of %s other than %s" % (name, not_on), leader, timeout)

    def running_nodes(self, via=1):
        out = self.ctl(via, "-q", "eval", "rabbit_nodes:all_running().")
        return sorted(node_name(n) for n in NODES if node_name(n) in out)

    def partitions(self, via=1):
        """The network partitions node `via` has recorded (Erlang text; "[]" when none)."""
        return self.ctl(via, "-q", "eval", "rabbit_node_monitor:partitions().").strip()

    def kill_node(self, n):
        """A crash: SIGKILL of node n's Erlang VM, no goodbye to its peers."""
        cluster_sh("kill-node", str(n))

    def stop_app(self, n):
        """A clean stop of node n's broker (the Erlang VM stays up)."""
        self.ctl(n, "-q", "stop_app")

    def start_node(self, n):
        """Node n back (after kill_node or stop_app), ready; it rejoins the cluster."""
        cluster_sh("start-node", str(n))

    def ensure_all_nodes(self):
        for n in NODES:
            self.start_node(n)

    # ------------------------------------------------------------------ PostgreSQL

    def stop_primary(self):
        cluster_sh("stop-primary")

    def promote(self):
        """The standby becomes a primary (returns once it accepts writes)."""
        cluster_sh("promote")

    def restore(self):
        """The designed topology again: the primary writable (restarted if it was stopped),
        the standby replaying from it (re-made from a base backup if it was promoted)."""
        cluster_sh("start")


def pg_connect(url, **kwargs):
    import psycopg2
    return psycopg2.connect(url, connect_timeout=10, **kwargs)


def pg_one(url, sql, args=None, **kwargs):
    """The first column of the first row of `sql` (None when it returns no rows) on a
    fresh autocommit connection."""
    conn = pg_connect(url, **kwargs)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql, args)
            row = cur.fetchone() if cur.description else None
            return row[0] if row else None
    finally:
        conn.close()
