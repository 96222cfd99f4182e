"""The CELERY_BROKER_URL password never appears in anything the worker prints or serves
(CONTRACT 1.8: messages never contain secrets): a malformed URL refused at start, an
unreachable broker retried in the log (also at LOG_LEVEL=debug), the HTTP listener while
it retries, the operator commands that talk to the broker, and a real worker's answers to
`celery inspect stats|conf|report` (a Python Celery worker omits the password from
`stats` and masks it in `conf`). The DATABASE_URL side is tested in test_final_states.py.

Every password is distinctive (a random token), so its absence is meaningful.
"""

import json
import os
import signal
import subprocess
import time
import urllib.request
import uuid

import pytest

from conftest import REPO, SANITIZER_RE, Worker
from faults import free_port

PYTHON = "/usr/bin/python3"


def token():
    return "pw" + uuid.uuid4().hex[:16]


def worker_env(env, broker_url, **extra):
    e = dict(os.environ, CELERY_BROKER_URL=broker_url, DATABASE_URL=env.database_url,
             CELERY_QUEUES="cwit.secrets.%s" % uuid.uuid4().hex[:8])
    e.update({k: str(v) for k, v in extra.items()})
    return e


def assert_no_secret(secret, *texts):
    for t in texts:
        assert secret not in t, "the password %r leaked:\n%s" % (secret, t)
        assert not SANITIZER_RE.search(t), t


def http_get(port, path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
            return r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:  # /healthz answers 503 while the broker is away
        return e.read().decode(errors="replace")


# ============================================================================ bad URLs


@pytest.mark.parametrize("url", [
    "amqp://guest:%s%%zz@127.0.0.1:1//",  # a bad percent escape
    "amqp://guest:%s@@127.0.0.1:1//",     # an unescaped @
    "amqp://guest:%s@127.0.0.1:port//",   # not a port
], ids=["bad-escape", "two-at", "bad-port"])
def test_malformed_broker_url_is_refused_without_its_password(env, url):
    secret = token()
    broker = url % secret
    p = subprocess.run([env.bin, "run"], env=worker_env(env, broker), capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "CELERY_BROKER_URL" in p.stderr, p.stderr
    assert_no_secret(secret, p.stdout, p.stderr)
    for args in (["dlq", "list", "--queue", "cwit.secrets.none"],
                 ["runs", "retry", "1", "--queue", "cwit.secrets.none"]):
        c = subprocess.run([env.bin] + args, env=worker_env(env, broker), capture_output=True,
                           text=True, timeout=30)
        assert c.returncode != 0, (args, c.stdout, c.stderr)
        assert_no_secret(secret, c.stdout, c.stderr)


def test_unreachable_broker_is_retried_without_its_password(env, tmp_path):
    """Connection failures are logged with host:port/vhost only, at every log level; the
    HTTP listener's health and metrics say nothing of the URL either."""
    secret = token()
    port = free_port()
    broker = "amqp://cwuser:%s@127.0.0.1:1//" % secret
    log = tmp_path / "worker.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen([env.bin, "run"], stdout=f, stderr=subprocess.STDOUT,
                                env=worker_env(env, broker, LOG_LEVEL="debug",
                                               CWORKER_HTTP="127.0.0.1:%d" % port),
                                cwd=str(REPO))
    try:
        deadline = time.time() + 20
        while time.time() < deadline and log.read_text().count("127.0.0.1:1/") < 3:
            time.sleep(0.2)
        served = [http_get(port, p) for p in ("/healthz", "/metrics")]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    out = log.read_text(errors="replace")
    assert out.count("127.0.0.1:1/") >= 3, "no connection attempts logged:\n" + out
    assert_no_secret(secret, out, *served)
    assert "cworker_" in served[1], served[1]  # the metrics were really served

    # The operator commands that talk to the broker fail the same way.
    for args in (["dlq", "list", "--queue", "cwit.secrets.none"],):
        c = subprocess.run([env.bin] + args, env=worker_env(env, broker), capture_output=True,
                           text=True, timeout=60)
        assert c.returncode != 0, (args, c.stdout, c.stderr)
        assert "127.0.0.1:1" in c.stdout + c.stderr, (c.stdout, c.stderr)
        assert_no_secret(secret, c.stdout, c.stderr)


# ============================================================================ real broker


@pytest.fixture
def broker_user(env):
    """A RabbitMQ user with a distinctive password on the default vhost, removed after."""
    user, secret = "cwit-secrets-%s" % uuid.uuid4().hex[:8], token()
    ctl = env.rabbitmqctl
    subprocess.run(ctl + ["add_user", user, secret], check=True, capture_output=True)
    try:
        subprocess.run(ctl + ["set_permissions", "-p", "/", user, ".*", ".*", ".*"], check=True,
                       capture_output=True)
        yield user, secret
    finally:
        subprocess.run(ctl + ["delete_user", user], capture_output=True)


def celery_cli(env, *args):
    penv = dict(os.environ, CELERY_BROKER_URL=env.broker_url, CWORKER_TEST_QUEUE="celery",
                PYTHONPATH=str(REPO / "tests" / "py"))
    return subprocess.run([PYTHON, "-m", "celery", "--no-color", "-A", "celery_cli_app"]
                          + list(args), env=penv, capture_output=True, text=True, timeout=90,
                          cwd=str(REPO))


def test_inspect_and_metrics_of_a_real_worker_never_show_the_password(env, tmp_path,
                                                                     broker_user):
    user, secret = broker_user
    port = free_port()
    node = "cwit-secrets-%s@localhost" % uuid.uuid4().hex[:8]
    queue = "cwit.secrets.%s" % uuid.uuid4().hex[:8]
    host_port = env.broker_url.split("@", 1)[1]
    w = Worker(env, queue, tmp_path / "worker.log",
               {"CELERY_BROKER_URL": "amqp://%s:%s@%s" % (user, secret, host_port),
                "CWORKER_NODENAME": node, "CWORKER_HTTP": "127.0.0.1:%d" % port})
    try:
        w.wait_ready()
        stats = celery_cli(env, "inspect", "stats", "-d", node, "-t", "10", "--json")
        assert stats.returncode == 0, stats.stdout + stats.stderr
        s = json.loads([ln for ln in stats.stdout.splitlines() if ln.strip()][-1])[node]
        assert s["broker"]["userid"] == user, s["broker"]  # the real connection's info
        assert s["broker"].get("password") in (None, "**", "********"), s["broker"]
        conf = celery_cli(env, "inspect", "conf", "-d", node, "-t", "10", "--json")
        assert conf.returncode == 0, conf.stdout + conf.stderr
        c = json.loads([ln for ln in conf.stdout.splitlines() if ln.strip()][-1])[node]
        assert c["broker_url"].startswith("amqp://%s:*" % user), c["broker_url"]
        report = celery_cli(env, "inspect", "report", "-d", node, "-t", "10")
        assert report.returncode == 0, report.stdout + report.stderr
        served = [http_get(port, p) for p in ("/healthz", "/metrics", "/v1/worker/metrics")]
        assert "cworker_" in served[1], served[1]
        status = subprocess.run([env.bin, "metrics"], env=worker_env(env, env.broker_url),
                                capture_output=True, text=True, timeout=60)
        assert_no_secret(secret, stats.stdout, stats.stderr, conf.stdout, report.stdout,
                         *served, status.stdout, status.stderr)
    finally:
        w.stop()
    w.check_log()
    assert_no_secret(secret, w.log())
