"""Hostile input for the dashboard's view of the workers on the broker (GET /v1/worker/cluster,
worker/ops/cluster_watch.c + cluster_table.c): anyone who may publish to the celeryev
exchange can send the listener's event receiver anything. Real messages are published
there with py-amqp (what a misbehaving client or a hostile one would send), and after each
attack:

- /v1/worker/cluster still answers strict JSON (RFC 8259: no NaN/Infinity, valid UTF-8),
  which the page's fetch().json() must be able to read;
- the table holds at most 256 workers, and a worker that keeps sending heartbeats is not
  pushed out by a flood of made-up host names;
- the listener keeps answering while the events pour in, and the worker keeps running tasks
  (a Palo Alto run completes right after);
- the receiver reconnects after the broker went away, and a SIGTERM while it is connected
  ends the worker cleanly;
- the worker log has no sanitizer report (run it with the sanitizer build).
"""

import json
import math
import os
import signal
import subprocess
import threading
import time
import uuid

import pytest

import faults
import producer
from conftest import paloalto_upload, wait_for_final_status
from test_dashboard import browser  # noqa: F401 - the fixture
from test_operating import HttpWorker

PALOALTO_STANZAS = 181
TABLE_MAX = 256
BROKER_LOST = r"^broker connection lost: "


def node(kind):
    return "cwhostile-%s-%s@test" % (kind, uuid.uuid4().hex[:6])


def strict_json(data):
    """json.loads as a browser's JSON.parse reads it: UTF-8 only, no NaN or Infinity."""
    def refuse(constant):
        raise ValueError("not JSON: %s" % constant)

    return json.loads(data.decode("utf-8"), parse_constant=refuse)


def cluster(hw, timeout=10):
    status, headers, body = hw.get("/v1/worker/cluster", timeout=timeout)
    assert status == 200, body
    assert headers["Content-Type"] == "application/json"
    return strict_json(body)


def workers(hw):
    return {w["hostname"]: w for w in cluster(hw)["workers"]}


def wait_for(fn, timeout=20.0, what="condition"):
    deadline = time.time() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.time() > deadline:
            pytest.fail("timed out waiting for %s" % what)
        time.sleep(0.2)


def subscribed(hw):
    """Until the listener's receiver consumes (the first reading subscribes it)."""
    return wait_for(lambda: (lambda c: c["receiver"] if c["receiver"]["connected"] else None)(
        cluster(hw)), what="the event receiver to subscribe")


class Events:
    """One py-amqp connection publishing raw messages to the celeryev exchange."""

    def __init__(self, env):
        from kombu import Connection

        self.conn = Connection(env.broker_url)
        self.conn.connect()
        self.ch = self.conn.connection.channel()

    def raw(self, body, routing_key="worker.heartbeat", content_type="application/json"):
        import amqp

        if isinstance(body, str):
            body = body.encode()
        self.ch.basic_publish(amqp.Message(body, content_type=content_type,
                                           content_encoding="utf-8"),
                              exchange="celeryev", routing_key=routing_key)

    def event(self, **fields):
        fields.setdefault("type", "worker-heartbeat")
        fields.setdefault("freq", 2.0)
        fields.setdefault("timestamp", time.time())
        self.raw(json.dumps(fields), fields["type"].replace("-", ".")
                 if isinstance(fields["type"], str) else "worker.heartbeat")

    def close(self):
        self.conn.release()


@pytest.fixture
def events(env):
    e = Events(env)
    yield e
    e.close()


def sentinel(hw, events):
    """A valid heartbeat after the rest, waited for: everything published before it on the
    same channel was taken (one queue, one consumer, in order)."""
    name = node("sentinel")
    events.event(hostname=name)
    wait_for(lambda: name in workers(hw), what="the sentinel heartbeat %s" % name)
    return name


@pytest.fixture(scope="module")
def hw(env, tmp_path_factory):
    name = node("me")
    h = HttpWorker(env, tmp_path_factory.mktemp("hostileworker") / "worker.log",
                   extra_env={"CWORKER_NODENAME": name})
    h.nodename = name
    h.wait_http(want=200)
    subscribed(h)
    yield h
    h.stop(env)


def paloalto_completes(env, hw):
    """The worker still runs tasks: a Palo Alto run published now completes."""
    celery = producer.celery_app(env.broker_url)
    run_id, _ = faults.submit(env, celery, paloalto_upload("tar.gz"), hw.queue)
    row = wait_for_final_status(env, run_id, timeout=60, worker=hw.worker)
    assert row["status"] == "COMPLETE", row
    assert row["metrics"]["stanzas_created"] == PALOALTO_STANZAS


# ----------------------------------------------------------------------------- bodies


def test_bodies_that_are_not_events_are_ignored(env, hw, events):
    """Not JSON, pickle, empty, a JSON array, nesting deeper than any parser should follow,
    10 MB events, a 100 kB host name, host names that are not strings, unknown types."""
    import pickle

    bad = "cwhostile-never-%s" % uuid.uuid4().hex[:6]
    events.raw(b"\x00\xff not json at all {")
    events.raw(pickle.dumps({"hostname": bad, "type": "worker-heartbeat"}),
               content_type="application/x-python-serialize")
    events.raw(b"")
    events.raw(json.dumps([{"hostname": bad, "type": "worker-heartbeat"}]))
    events.raw("[" * 100000 + "]" * 100000)
    events.raw('{"hostname": "%s", "type": "worker-heartbeat", "x": %s}'
               % (bad, "[" * 50000 + "]" * 50000))
    big = node("big")
    events.raw(json.dumps({"hostname": big, "type": "worker-heartbeat",
                           "junk": "x" * (10 << 20)}))
    events.raw(json.dumps({"hostname": "h" * (10 << 20), "type": "worker-heartbeat"}))
    events.raw(json.dumps({"hostname": "h" * 100000, "type": "worker-heartbeat"}))
    for h in (123, None, ["a"], {"a": 1}, True, ""):
        events.raw(json.dumps({"hostname": h, "type": "worker-heartbeat"}))
    for t in (None, 7, "task-succeeded", "worker-bogus"):
        events.raw(json.dumps({"hostname": bad, "type": t}))
    events.raw(json.dumps({"hostname": bad}))
    sentinel(hw, events)
    seen = workers(hw)
    assert not [h for h in seen if h.startswith(bad) or h.startswith("hhh")], list(seen)
    # Not even a 10 MB event with an ordinary host name: no event is that large.
    assert big not in seen
    assert hw.get_json("/healthz")[0] == 200


# ----------------------------------------------------------------------------- values


def test_numbers_out_of_range_keep_the_answer_json(env, hw, events):
    """NaN, Infinity (1e999), huge, negative and wrongly typed values: the answer must stay
    strict JSON (json-c writes NaN and Infinity bare, which no JSON reader accepts) and the
    numbers shown must be the sane ones or nothing."""
    names = {}
    weird = [float("nan"), float("inf"), float("-inf"), 1e300, -1e300, -5, 2 ** 70, "7", [1],
             {"a": 1}, None, True]
    for i, v in enumerate(weird):
        h = node("num%d" % i)
        names[h] = v
        # json.dumps writes NaN / Infinity / -Infinity, as Python's json (and kombu) do.
        events.event(hostname=h, freq=v, active=v, processed=v, concurrency=v, pid=v,
                     loadavg=[v, v, v], timestamp=v)
    h = node("e999")
    events.raw('{"hostname": "%s", "type": "worker-heartbeat", "freq": 1e999, "active": 1e999,'
               ' "processed": -1e999, "concurrency": 1e999, "pid": 1e999,'
               ' "loadavg": [1e999, -1e999, 1e999], "timestamp": 1e999}' % h)
    names[h] = "1e999"
    sentinel(hw, events)
    seen = workers(hw)  # strict: fails on NaN / Infinity
    for h, v in names.items():
        w = seen[h]
        assert w["state"] == "online", (v, w)
        assert math.isfinite(w["freq"]) and 0 < w["freq"] <= 3600, (v, w)
        assert isinstance(w["active"], int) and 0 <= w["active"] < 2 ** 31, (v, w)
        assert isinstance(w["processed"], int) and 0 <= w["processed"] < 2 ** 63, (v, w)
        assert w["concurrency"] is None or 0 < w["concurrency"] < 2 ** 31, (v, w)
        assert w["pid"] is None or 0 < w["pid"] < 2 ** 63, (v, w)
        assert all(isinstance(x, (int, float)) and math.isfinite(x) for x in w["loadavg"]), w
        assert w["timestamp"] is None or math.isfinite(w["timestamp"]), (v, w)
    sane = seen[[h for h, v in names.items() if v == -5][0]]
    assert sane["active"] == 0 and sane["processed"] == 0 and sane["pid"] is None, sane


def test_timestamps_far_away_do_not_change_liveness(env, hw, events):
    """Liveness is the receiver's clock: a sender's clock a century off is only shown."""
    past, future = node("past"), node("future")
    events.event(hostname=past, timestamp=0.5)
    events.event(hostname=future, timestamp=time.time() + 100 * 365 * 86400)
    sentinel(hw, events)
    seen = workers(hw)
    assert seen[past]["state"] == seen[future]["state"] == "online", seen


def test_worker_offline_for_a_host_never_seen(env, hw, events):
    h = node("ghost")
    events.event(hostname=h, type="worker-offline", active=5)
    sentinel(hw, events)
    w = workers(hw)[h]
    assert (w["state"], w["active"]) == ("offline", 0), w


def test_host_names_that_are_not_utf8_keep_the_answer_utf8(env, hw, events):
    """Invalid UTF-8 in a host name or a version (raw bytes in the JSON string), a NUL, and
    a sw_ver whose cut to the table's 32 bytes would fall inside a character: the answer
    stays valid UTF-8 (strict_json decodes it) with the strings escaped."""
    tag = uuid.uuid4().hex[:6]
    events.raw(b'{"hostname": "cwbad-%s-\xff\xfe\xc3", "type": "worker-heartbeat"}' % tag.encode())
    events.raw(b'{"hostname": "cwbad-%s-ok", "type": "worker-heartbeat",'
               b' "sw_ident": "\xed\xa0\x80", "sw_ver": "%s"}'
               % (tag.encode(), ("v" * 30 + "\u00e9\u00e9").encode()))
    events.raw(json.dumps({"hostname": "cwbad-%s-nul\u0000tail" % tag,
                           "type": "worker-heartbeat"}))
    quote = 'cwbad-%s-"\\</script>\u2028\u00e9' % tag
    events.event(hostname=quote)
    sentinel(hw, events)
    seen = workers(hw)  # strict: fails on bytes that are not UTF-8
    mine = {h: w for h, w in seen.items() if tag in h}
    assert quote in mine, mine
    ok = mine["cwbad-%s-ok" % tag]
    assert ok["sw_ver"] is None or ok["sw_ver"].startswith("v" * 30), ok
    assert not [h for h in mine if "nul" in h], mine  # a NUL would cut it to another name


def test_page_still_lists_the_workers_after_hostile_events(env, hw, events, browser):
    """The page in Chromium (tests/py/cdp.py): after an event with Infinity and NaN and one
    with a host name that is not UTF-8, its fetch().json() of /v1/worker/cluster still
    works and the Workers table lists this worker and the hostile event's host."""
    h = node("inf")
    events.raw('{"hostname": "%s", "type": "worker-heartbeat", "freq": Infinity,'
               ' "loadavg": [NaN, 1e999, -Infinity], "timestamp": 1e999}' % h)
    events.raw(b'{"hostname": "cwbad-\xff-page", "type": "worker-heartbeat"}')
    sentinel(hw, events)
    browser.goto(hw.base + "/")
    want = [hw.nodename, h]
    browser.wait(
        "(() => { const r = Array.from(document.querySelectorAll('#worker-table tbody tr'),"
        " tr => tr.dataset.hostname); return %s.every(n => r.includes(n)); })()"
        % json.dumps(want), timeout=30, what="%s in the Workers table" % want)
    assert browser.evaluate("document.getElementById('cluster-error').hidden") is True


# ----------------------------------------------------------------------------- volume


def listener_pid(hw):
    """The HTTP listener child of the worker: the one process holding its port."""
    import glob

    want = ":%04X" % hw.port
    inodes = set()
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        f = line.split()
        if f[1].endswith(want) and f[3] == "0A":
            inodes.add(f[9])
    for fd in glob.glob("/proc/[0-9]*/fd/*"):
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            return int(fd.split("/")[2])
    return None


def rss_kb(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def sanitized(path):
    with open(path, "rb") as f:
        data = f.read()
    return b"__asan_init" in data or b"__tsan_init" in data


def publish_many(env, n, make, rate_report=None):
    e = Events(env)
    t0 = time.time()
    try:
        for i in range(n):
            e.raw(make(i))
    finally:
        e.close()
    if rate_report is not None:
        rate_report.append(n / (time.time() - t0))


def receiver_queue_drained(env, hw):
    q = cluster(hw)["receiver"]["queue"]
    return env.ctl_counts(q) == (0, 0)


def test_a_flood_of_host_names_neither_grows_the_table_nor_pushes_out_real_workers(env, hw):
    """100,000 made-up host names, as fast as one connection publishes them. While they
    pour in the listener answers, every reading holds at most 256 workers, and this worker
    (heartbeating all along) stays in it; afterwards the worker runs a Palo Alto run."""
    me = hw.nodename
    wait_for(lambda: me in workers(hw), what="this worker's own heartbeat")
    pid = listener_pid(hw)
    before = rss_kb(pid)
    tag = uuid.uuid4().hex[:6]
    rates = []
    body = '{"hostname": "cwflood-%s-%%d", "type": "worker-heartbeat", "freq": 2.0}' % tag
    t = threading.Thread(target=publish_many, args=(env, 100000, lambda i: body % i, rates))
    t.start()
    readings = 0
    missing = []
    while t.is_alive():
        seen = workers(hw)
        readings += 1
        assert len(seen) <= TABLE_MAX
        if me not in seen:
            missing.append(len(seen))
        time.sleep(0.2)
    t.join()
    wait_for(lambda: receiver_queue_drained(env, hw), timeout=60, what="the receiver to drain")
    seen = workers(hw)
    assert len(seen) <= TABLE_MAX
    assert me in seen and seen[me]["state"] == "online", sorted(seen)[:5]
    assert not missing, "this worker was missing from %d of %d readings during the flood" % (
        len(missing), readings)
    after = rss_kb(pid)
    print("published %.0f events/s; %d readings during the flood; listener RSS %d -> %d kB"
          % (rates[0], readings, before, after))
    if not sanitized(env.bin):  # ASan's quarantine alone holds up to 256 MB of freed blocks
        assert after - before < 32 << 10, "the listener grew from %d to %d kB" % (before, after)
    assert cluster(hw)["receiver"]["dropped"] > 0
    paloalto_completes(env, hw)


def test_a_flood_of_events_leaves_the_listener_and_the_tasks_running(env, hw):
    """Heartbeats of 200 hosts, 2 kB each, from two connections, while 30 clients
    read /v1/worker/cluster and /healthz over and over and a Palo Alto run executes: every
    request is answered, the run completes."""
    tag = uuid.uuid4().hex[:6]
    pad = "p" * 2000
    body = ('{"hostname": "cwstorm-%s-%%d", "type": "worker-heartbeat", "freq": 2.0,'
            ' "active": 1, "processed": %%d, "pad": "%s"}' % (tag, pad))
    stop = threading.Event()
    failures, answered = [], [0]

    def reader(path):
        while not stop.is_set():
            try:
                status, _, data = hw.get(path, timeout=30)
                if status != 200:
                    failures.append((path, status, data[:200]))
                elif path == "/v1/worker/cluster":
                    strict_json(data)
                answered[0] += 1
            except Exception as e:  # noqa: BLE001 - every failure is reported
                failures.append((path, repr(e)))

    pubs = [threading.Thread(target=publish_many, args=(env, 7500, lambda i: body % (i % 200, i)))
            for _ in range(2)]
    readers = [threading.Thread(target=reader, args=(p,))
               for p in ["/v1/worker/cluster"] * 25 + ["/healthz"] * 5]
    for th in pubs + readers:
        th.start()
    try:
        celery = producer.celery_app(env.broker_url)
        run_id, _ = faults.submit(env, celery, paloalto_upload("tar.gz"), hw.queue)
        row = wait_for_final_status(env, run_id, timeout=90, worker=hw.worker)
        for th in pubs:
            th.join()
    finally:
        stop.set()
        for th in readers:
            th.join()
    assert row["status"] == "COMPLETE", row
    assert not failures, failures[:5]
    assert answered[0] > 30
    print("%d requests answered during the flood" % answered[0])


def test_many_clients_at_once(env, hw):
    """60 clients (the listener's connection limit is 64), 12 requests each, at once, over
    the cluster, the queues (one cached reading under a lock), the dashboard and /healthz
    (copies of the snapshot): every one is answered with JSON."""
    failures = []
    barrier = threading.Barrier(60)
    paths = ["/v1/worker/cluster", "/v1/worker/queues", "/v1/worker/dashboard", "/healthz"]

    def client(k):
        barrier.wait()
        for i in range(12):
            path = paths[(k + i) % len(paths)]
            try:
                status, _, data = hw.get(path, timeout=30)
                body = strict_json(data)
                if status != 200:
                    failures.append((path, status, body))
            except Exception as e:  # noqa: BLE001
                failures.append((path, repr(e)))

    ths = [threading.Thread(target=client, args=(k,)) for k in range(60)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    assert not failures, failures[:5]


# ----------------------------------------------------------------------------- broker, SIGTERM


def rabbitmqctl(env, *args, timeout=120):
    r = subprocess.run(env.rabbitmqctl + ["-q"] + list(args), capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, (args, r.stdout, r.stderr)


@pytest.mark.expect_log_errors(BROKER_LOST)
def test_broker_away_and_back_while_subscribed(env, hw, events):
    """rabbitmqctl stop_app while the receiver consumes: the listener keeps answering (the
    receiver says it is disconnected), and after start_app it subscribes again and new
    heartbeats arrive; the worker runs a Palo Alto run."""
    pid = listener_pid(hw)
    subscribed(hw)
    events.close()
    try:
        rabbitmqctl(env, "stop_app")
        gone = wait_for(lambda: (lambda r: r if not r["connected"] else None)(
            cluster(hw)["receiver"]), timeout=40, what="the receiver to notice")
        assert gone["error"], gone
        time.sleep(1)
        assert hw.get_json("/healthz")[0] == 503
    finally:
        rabbitmqctl(env, "start_app")
        rabbitmqctl(env, "await_startup", "--timeout", "60")
    subscribed(hw)
    e = Events(env)
    try:
        sentinel(hw, e)
    finally:
        e.close()
    assert listener_pid(hw) == pid, "the listener was restarted"
    assert "the HTTP listener ended" not in hw.worker.log()
    hw.wait_http(want=200, timeout=60)
    paloalto_completes(env, hw)


@pytest.mark.expect_log_errors(BROKER_LOST)
@pytest.mark.parametrize("when", ["flooded", "broker_down"])
def test_sigterm_while_the_receiver_works(env, tmp_path, when):
    """SIGTERM while the receiver consumes a flood of events, or while it tries to reconnect
    to a broker that is down: the worker exits 0 in time with no sanitizer report. (While
    it idles: the module's worker, at its teardown.)"""
    w = HttpWorker(env, tmp_path / "worker.log", extra_env={"CWORKER_NODENAME": node("term")})
    w.wait_http(want=200)
    subscribed(w)
    flood = None
    try:
        if when == "flooded":
            body = '{"hostname": "cwterm-%d", "type": "worker-heartbeat"}'
            flood = threading.Thread(target=publish_many, args=(env, 10000, lambda i: body % i))
            flood.start()
            wait_for(lambda: len(workers(w)) > 20, what="the flood to arrive")
        elif when == "broker_down":
            rabbitmqctl(env, "stop_app")
            wait_for(lambda: not cluster(w)["receiver"]["connected"], timeout=40,
                     what="the receiver to notice")
        t0 = time.time()
        w.worker.proc.terminate()
        rc = w.worker.proc.wait(30)
        took = time.time() - t0
    finally:
        if when == "broker_down":
            rabbitmqctl(env, "start_app")
            rabbitmqctl(env, "await_startup", "--timeout", "60")
        if flood is not None:
            flood.join()
    print("exit %s after %.1f s" % (rc, took))
    w.worker.check_log()
    assert rc == 0, w.worker.tail()
    w.worker.stop()
    env.delete_queues(w.queue)


def rabbit_pid(env):
    from conftest import REPO

    state = os.environ.get("CWORKER_STATE_DIR") or str(REPO / ".state")
    with open(os.path.join(state, "rabbitmq", "rabbitmq.pid")) as f:
        return int(f.read().split()[0])


@pytest.mark.expect_log_errors(BROKER_LOST)
def test_a_hung_broker_holds_neither_healthz_nor_the_exit(env, tmp_path):
    """The broker stops answering (SIGSTOP: TCP still accepts) while the receiver is
    subscribed. A dashboard's reading of the queues then waits up to the 5 s handshake
    timeout; /healthz, asked meanwhile on another connection, is answered before it (the
    listener used to serve one request at a time). A SIGTERM then still ends the worker
    with exit 0 and no sanitizer report."""
    w = HttpWorker(env, tmp_path / "worker.log", extra_env={"CWORKER_NODENAME": node("hung")})
    w.wait_http(want=200)
    subscribed(w)
    pid = rabbit_pid(env)
    os.kill(pid, signal.SIGSTOP)
    try:
        done = {}

        def read_queues():
            done["queues"] = w.get("/v1/worker/queues", timeout=60)[0]
        th = threading.Thread(target=read_queues)
        th.start()
        time.sleep(0.5)  # the reading is under way
        status = w.get("/healthz", timeout=60)[0]
        assert "queues" not in done, "/healthz waited for the queues (%s)" % done
        th.join()
        assert done["queues"] == 503 and status in (200, 503), (done, status)
        assert cluster(w)["workers"] is not None
        t0 = time.time()
        w.worker.proc.terminate()
        rc = w.worker.proc.wait(60)
        print("exit %s %.1f s after SIGTERM with the broker hung" % (rc, time.time() - t0))
    finally:
        os.kill(pid, signal.SIGCONT)
    rabbitmqctl(env, "await_startup", "--timeout", "60")
    w.worker.stop()
    w.worker.check_log()
    assert rc == 0, w.worker.tail()
    env.delete_queues(w.queue)
