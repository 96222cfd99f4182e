"""Operator commands against the real servers: `cworker dlq list|replay` and
`cworker runs list|retry` (issue 3). Each test checks the queues and rows afterwards,
not only the command's output."""

import json
import os
import re
import subprocess
import time
import uuid

import pytest

import producer
from conftest import PALOALTO, SANITIZER_RE, start_worker, wait_for_final_status

CONF = ("inputs.conf", (PALOALTO / "default" / "inputs.conf").read_bytes())
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
LIST_KEYS = {"position", "task_id", "task", "reason", "original_queue", "dead_lettered_at",
             "content_type", "body_bytes", "run_id"}
RUN_KEYS = {"id", "type", "status", "retry_count", "error_message", "task_id", "created_at",
            "started_at", "completed_at"}


# ----------------------------------------------------------------------------- helpers


def cli(env, *args, extra_env=None, timeout=60):
    """Runs `cworker <args>` with the session's servers; returns (rc, JSON lines, stderr)."""
    cenv = dict(os.environ, CELERY_BROKER_URL=env.broker_url, DATABASE_URL=env.database_url)
    cenv.pop("CELERY_QUEUES", None)
    cenv.update(extra_env or {})
    r = subprocess.run([env.bin] + [str(a) for a in args], env=cenv, capture_output=True,
                       text=True, timeout=timeout)
    assert not SANITIZER_RE.search(r.stderr), r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    return r.returncode, lines, r.stderr


def create_run(env, status="STORED", upload=CONF):
    pconn = env.producer_conn()
    run_id, _ = producer.create_run(pconn, [upload], str(env.storage), run_type="SINGLE_CONF",
                                    status=status)
    pconn.close()
    return run_id


def set_run(env, run_id, **cols):
    sets = ", ".join("%s = %%s" % k for k in cols)
    env.rows("UPDATE ingestion_runs SET %s WHERE id = %%s RETURNING id" % sets,
             tuple(cols.values()) + (run_id,))


def declare_dead_queue(env, queue):
    """Q.dead as the worker declares it (durable, no arguments)."""
    from kombu import Connection

    with Connection(env.broker_url) as c:
        c.channel().queue_declare(queue=queue + ".dead", durable=True, auto_delete=False)


def dead_letter_by_hand(env, queue, run_id, reason="worker shut down mid-way", extra=None):
    """Puts a valid parse_run message in Q.dead with the headers the worker adds."""
    tid = str(uuid.uuid4())
    headers = producer.celery_v2_headers(tid, args=[run_id])
    headers.update(extra or {})
    headers.update({"x-cworker-reason": reason, "x-cworker-original-queue": queue,
                    "x-cworker-dead-lettered-at": "2026-11-24T21:00:00.000000+00:00"})
    producer.publish_raw(env.broker_url, queue + ".dead", producer.celery_v2_body([run_id]),
                         headers=headers,
                         properties={"correlation_id": tid, "reply_to": "reply-oid-1",
                                     "priority": 0},
                         declare=False)
    return tid


def peek(env, queue, timeout=10.0):
    """The head message of queue, given back unacked (so it stays): body, headers, props."""
    from kombu import Connection

    deadline = time.time() + timeout
    while time.time() < deadline:
        with Connection(env.broker_url) as c:
            ch = c.channel()
            m = ch.basic_get(queue=queue, no_ack=False)
            if m is not None:
                props = dict(m.properties)
                headers = dict(props.pop("application_headers", None) or {})
                ch.basic_reject(m.delivery_tag, requeue=True)
                return {"body": m.body, "headers": headers, "properties": props}
        time.sleep(0.2)
    return None


def wait_counts(env, queue, expected, timeout=10.0):
    """Until rabbitmqctl shows (ready, unacked) == expected; returns the last counts."""
    deadline = time.time() + timeout
    counts = env.ctl_counts(queue)
    while counts != expected and time.time() < deadline:
        time.sleep(0.2)
        counts = env.ctl_counts(queue)
    return counts


def text(v):
    return v.decode() if isinstance(v, bytes) else v


@pytest.fixture
def spare_queue(env):
    """A queue no worker consumes (yet); deleted with its worker queues afterwards."""
    q = "cwit.cli.spare.%s" % uuid.uuid4().hex[:8]
    yield q
    env.delete_queues(q, q + ".dead", q + ".retry.60s", q + ".retry.180s", q + ".retry.600s")


@pytest.fixture
def spare_worker(env, spare_queue, tmp_path):
    """Starts a worker on spare_queue when called; stopped (and checked) at teardown."""
    started = []

    def start():
        w = start_worker(env, spare_queue, tmp_path / "spare-worker.log")
        started.append(w)
        return w

    yield start
    for w in started:
        died = not w.alive()
        rc = w.stop()
        w.check_log()
        assert not died and rc == 0, "spare worker exited %s:\n%s" % (rc, w.tail())


# ----------------------------------------------------------------------------- usage


@pytest.mark.parametrize("args", [
    ["dlq", "--help"], ["dlq", "list", "--help"], ["dlq", "replay", "--help"],
    ["runs", "--help"], ["runs", "list", "--help"], ["runs", "retry", "--help"],
])
def test_help(env, args):
    r = subprocess.run([env.bin] + args, capture_output=True, text=True, timeout=10,
                       env={"PATH": os.environ.get("PATH", "")})
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: cworker %s" % args[0]), r.stdout
    assert r.stderr == ""


@pytest.mark.parametrize("args", [
    ["dlq"], ["dlq", "peek"], ["dlq", "list", "--frobnicate"], ["dlq", "list", "--limit"],
    ["dlq", "list", "--limit", "0"], ["dlq", "list", "extra"], ["dlq", "replay"],
    ["dlq", "replay", "--all", "--task-id", "x"], ["runs"], ["runs", "list", "--status", "odd"],
    ["runs", "retry"], ["runs", "retry", "abc"], ["runs", "retry", "1", "2"],
    ["runs", "retry", "1", "--queue"],
])
def test_usage_errors_are_one_line_and_exit_2(env, args):
    rc, out, err = cli(env, *args)
    assert rc == 2, (args, rc, err)
    assert out == []
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("cworker "), err


def test_passwords_are_never_printed(env):
    secret = "s3cret-%s" % uuid.uuid4().hex[:6]
    rc, out, err = cli(env, "dlq", "list", "--broker", "amqp://guest:%s@127.0.0.1:1//" % secret)
    assert rc == 1 and secret not in err and "127.0.0.1:1" in err, err
    rc, out, err = cli(env, "runs", "list",
                       "--database", "postgresql://cworker:%s@127.0.0.1:1/x" % secret)
    assert rc == 1 and secret not in err, err
    rc, out, err = cli(env, "runs", "retry", "1", "--database",
                       "postgresql://cworker:%s@127.0.0.1:1/x" % secret)
    assert rc == 1 and secret not in err, err


# ----------------------------------------------------------------------------- dlq list


def test_dlq_list_shows_dead_letters_and_leaves_them(env, worker, celery):
    q = worker.queue
    run_id = create_run(env)
    pickle_id = producer.send_parse_run(celery, run_id, queue=q, serializer="pickle")
    unknown_id = celery.send_task("app.worker.tasks.no_such_task", args=[7], queue=q).id
    assert wait_counts(env, q + ".dead", (2, 0), timeout=20) == (2, 0), worker.tail()

    rc, lines, err = cli(env, "dlq", "list", "--queue", q)
    assert rc == 0, err
    assert len(lines) == 2, lines
    by_id = {m["task_id"]: m for m in lines}
    assert set(by_id) == {pickle_id, unknown_id}
    for m in lines:
        assert set(m) == LIST_KEYS, m
        assert m["original_queue"] == q
        assert m["dead_lettered_at"].startswith("20")
        assert m["body_bytes"] > 0
    assert [m["position"] for m in lines] == [1, 2]
    pk = by_id[pickle_id]
    assert pk["task"] == "app.worker.tasks.parse_run"
    assert pk["content_type"] == "application/x-python-serialize"
    assert "python-serialize" in pk["reason"] or "pickle" in pk["reason"], pk
    assert pk["run_id"] is None  # a pickle body is never decoded
    un = by_id[unknown_id]
    assert un["task"] == "app.worker.tasks.no_such_task"
    assert "unknown task" in un["reason"], un
    assert un["content_type"] == "application/json"
    assert un["run_id"] is None  # not a parse_run

    # Nothing consumed: the same messages, in the same order, and none left unacked.
    assert wait_counts(env, q + ".dead", (2, 0)) == (2, 0)
    rc, again, _ = cli(env, "dlq", "list", "--queue", q)
    assert rc == 0 and [m["task_id"] for m in again] == [m["task_id"] for m in lines]
    rc, first, _ = cli(env, "dlq", "list", "--queue", q, "--limit", "1")
    assert rc == 0 and [m["task_id"] for m in first] == [lines[0]["task_id"]]
    assert wait_counts(env, q + ".dead", (2, 0)) == (2, 0)
    # The default queue comes from CELERY_QUEUES, as the worker's does.
    rc, via_env, _ = cli(env, "dlq", "list", extra_env={"CELERY_QUEUES": q + ",other"})
    assert rc == 0 and len(via_env) == 2
    assert env.run(run_id)["status"] == "STORED"


def test_dlq_list_reports_run_id_and_protocol_1_ids(env, spare_queue):
    declare_dead_queue(env, spare_queue)
    tid = dead_letter_by_hand(env, spare_queue, 4242)
    v1_id = str(uuid.uuid4())
    body = json.dumps({"task": "app.worker.tasks.parse_run", "id": v1_id, "args": [1],
                       "kwargs": {}, "retries": "many"})  # undecodable retries
    producer.publish_raw(env.broker_url, spare_queue + ".dead", body, declare=False,
                         headers={"x-cworker-reason": "retries is not an integer"})
    rc, lines, err = cli(env, "dlq", "list", "--queue", spare_queue)
    assert rc == 0, err
    assert [(m["task_id"], m["run_id"]) for m in lines] == [(tid, 4242), (v1_id, None)]
    assert lines[1]["task"] == "app.worker.tasks.parse_run"
    assert lines[1]["original_queue"] is None


def test_dlq_list_killed_halfway_loses_nothing(env, spare_queue):
    from kombu import Connection

    q, n = spare_queue, 3000
    declare_dead_queue(env, q)
    with Connection(env.broker_url) as c:
        p = c.Producer()
        for i in range(n):
            p.publish(b"\x80\x04K%d." % (i % 100), exchange="", routing_key=q + ".dead",
                      content_type="application/x-python-serialize", headers={"id": "m%d" % i})
    assert wait_counts(env, q + ".dead", (n, 0)) == (n, 0)
    cenv = dict(os.environ, CELERY_BROKER_URL=env.broker_url)
    proc = subprocess.Popen([env.bin, "dlq", "list", "--queue", q, "--limit", str(n)],
                            env=cenv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = json.loads(proc.stdout.readline())  # it holds messages now
    assert proc.poll() is None, "the listing ended before it could be killed"
    proc.kill()
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    assert first["task_id"] == "m0"
    assert wait_counts(env, q + ".dead", (n, 0)) == (n, 0)
    rc, lines, err = cli(env, "dlq", "list", "--queue", q, "--limit", str(n))
    assert rc == 0, err
    assert [m["task_id"] for m in lines] == ["m%d" % i for i in range(n)]  # order kept


def test_dlq_list_of_a_missing_queue_fails(env):
    rc, lines, err = cli(env, "dlq", "list", "--queue", "cwit.cli.none.%s" % uuid.uuid4().hex)
    assert rc == 1 and lines == [] and "NOT_FOUND" in err, err


# ----------------------------------------------------------------------------- dlq replay


def test_dlq_replay_selected_message_runs_and_others_stay(env, spare_queue, spare_worker):
    q = spare_queue
    declare_dead_queue(env, q)
    run_id = create_run(env)
    other_run = create_run(env)
    keep_before = dead_letter_by_hand(env, q, other_run)
    tid = dead_letter_by_hand(env, q, run_id, extra={"x-app-trace": "trace-1"})
    keep_after = dead_letter_by_hand(env, q, other_run)
    assert wait_counts(env, q + ".dead", (3, 0)) == (3, 0)

    rc, lines, err = cli(env, "dlq", "replay", "--queue", q, "--task-id", tid)
    assert rc == 0, err
    assert len(lines) == 1, lines
    assert lines[0]["task_id"] == tid and lines[0]["to"] == q and lines[0]["run_id"] == run_id
    assert lines[0]["position"] == 2

    # Back in its queue (declared as kombu does: no worker has run on q yet), without the
    # x-cworker headers and with everything else as the producer sent it.
    msg = peek(env, q)
    assert msg is not None
    h = msg["headers"]
    assert not [k for k in h if k.startswith("x-cworker-")], h
    assert h["id"] == tid and h["task"] == "app.worker.tasks.parse_run"
    assert h["x-app-trace"] == "trace-1" and h["argsrepr"] == "[%d]" % run_id
    assert h["timelimit"] == [None, None] and h["retries"] == 0
    assert json.loads(msg["body"]) == json.loads(producer.celery_v2_body([run_id]))
    p = msg["properties"]
    assert p["correlation_id"] == tid and p["reply_to"] == "reply-oid-1"
    assert p["content_type"] == "application/json" and p["delivery_mode"] == 2
    assert wait_counts(env, q, (1, 0)) == (1, 0)

    # The unselected messages stay in the DLQ, in their order.
    assert wait_counts(env, q + ".dead", (2, 0)) == (2, 0)
    rc, left, _ = cli(env, "dlq", "list", "--queue", q)
    assert [m["task_id"] for m in left] == [keep_before, keep_after]

    # A worker runs the replayed message.
    w = spare_worker()
    run = wait_for_final_status(env, run_id, worker=w)
    assert run["status"] == "COMPLETE" and run["task_id"] == tid, run
    assert env.run(other_run)["status"] == "STORED"


def test_dlq_replay_all_and_unknown_task_id(env, spare_queue, spare_worker):
    q = spare_queue
    declare_dead_queue(env, q)
    runs = [create_run(env) for _ in range(2)]
    tids = [dead_letter_by_hand(env, q, r) for r in runs]

    # An id that is not there: exit 1, nothing moved.
    rc, lines, err = cli(env, "dlq", "replay", "--queue", q, "--task-id", "no-such-id")
    assert rc == 1 and lines == [] and "no-such-id" in err, err
    assert wait_counts(env, q + ".dead", (2, 0)) == (2, 0)

    w = spare_worker()
    rc, lines, err = cli(env, "dlq", "replay", "--queue", q, "--all")
    assert rc == 0, err
    assert [m["task_id"] for m in lines] == tids
    for run_id, tid in zip(runs, tids):
        run = wait_for_final_status(env, run_id, worker=w)
        assert run["status"] == "COMPLETE" and run["task_id"] == tid, run
    assert wait_counts(env, q + ".dead", (0, 0)) == (0, 0)


def test_dlq_replay_of_a_message_that_fails_again_is_not_looped(env, spare_queue,
                                                                 spare_worker):
    """A replayed message that the worker dead-letters again lands at the DLQ's tail;
    --all handles only what was there when it started."""
    q = spare_queue
    w = spare_worker()
    celery = producer.celery_app(env.broker_url)
    celery.send_task("app.worker.tasks.no_such_task", args=[1], queue=q)
    assert wait_counts(env, q + ".dead", (1, 0), timeout=20) == (1, 0), w.tail()
    rc, lines, err = cli(env, "dlq", "replay", "--queue", q, "--all")
    assert rc == 0 and len(lines) == 1, err
    assert wait_counts(env, q + ".dead", (1, 0), timeout=20) == (1, 0), w.tail()
    rc, again, _ = cli(env, "dlq", "list", "--queue", q)
    assert "unknown task" in again[0]["reason"]


# ----------------------------------------------------------------------------- runs list


def test_runs_list_status_failed_lists_exactly_the_failed_runs(env):
    failed = [create_run(env, status="FAILED") for _ in range(2)]
    lower = create_run(env)
    set_run(env, lower, status="failed", error_message="Permanent error: x")  # other tools
    others = [create_run(env, status=s) for s in ("STORED", "COMPLETE", "PARSING")]

    rc, lines, err = cli(env, "runs", "list", "--status", "FAILED", "--limit", "1000000")
    assert rc == 0, err
    ids = [r["id"] for r in lines]
    expected = [r["id"] for r in env.rows(
        "SELECT id FROM ingestion_runs WHERE upper(status) = 'FAILED'"
        " ORDER BY created_at DESC, id DESC")]
    assert ids == expected
    assert set(failed) | {lower} <= set(ids)
    assert not set(others) & set(ids)
    assert all(set(r) == RUN_KEYS for r in lines)
    assert next(r for r in lines if r["id"] == lower)["error_message"] == "Permanent error: x"
    created = [r["created_at"] for r in lines]
    assert created == sorted(created, reverse=True)  # ISO-8601 UTC strings sort as times

    rc, lines_lc, _ = cli(env, "runs", "list", "--status", "failed", "--limit", "1000000")
    assert rc == 0 and [r["id"] for r in lines_lc] == ids
    rc, top, _ = cli(env, "runs", "list", "--limit", "2")
    assert rc == 0 and len(top) == 2 and top[0]["id"] == others[-1]
    assert top[0]["created_at"].endswith("+00:00")


# ----------------------------------------------------------------------------- runs retry


def test_runs_retry_of_a_failed_run_is_completed(env, worker):
    run_id = create_run(env)
    set_run(env, run_id, status="FAILED", task_id="old-task", retry_count=3,
            error_message="Failed after 3 retries: storage unreadable",
            error_traceback="Traceback ...")
    rc, lines, err = cli(env, "runs", "retry", run_id, "--queue", worker.queue)
    assert rc == 0, err
    (out,) = lines
    assert out["run_id"] == run_id and out["previous_status"] == "FAILED"
    assert out["queue"] == worker.queue and UUID_RE.match(out["task_id"]), out
    run = wait_for_final_status(env, run_id, worker=worker)
    time.sleep(0.5)  # the commit after the confirm may land after the worker finished
    run = env.run(run_id)
    assert run["status"] == "COMPLETE", run
    assert run["task_id"] == out["task_id"] != "old-task"
    assert run["error_message"] is None and run["error_traceback"] is None
    assert env.scalar("SELECT count(*) FROM stanzas WHERE run_id = %s", (run_id,)) == 3


def test_runs_retry_publishes_what_celery_publishes(env, spare_queue):
    """The message matches Celery 5's own send_task message, header for header."""
    q = spare_queue
    run_id = create_run(env)
    celery = producer.celery_app(env.broker_url)
    celery_id = producer.send_parse_run(celery, run_id, queue=q)
    theirs = peek(env, q)
    env.delete_queues(q)
    t0 = time.time()
    rc, lines, err = cli(env, "runs", "retry", run_id, "--queue", q)
    assert rc == 0, err
    ours = peek(env, q)
    tid = lines[0]["task_id"]

    assert set(ours["headers"]) == set(theirs["headers"])
    for k, v in theirs["headers"].items():
        if k in ("id", "root_id", "origin"):
            continue
        assert ours["headers"][k] == v, k
    h = ours["headers"]
    assert h["id"] == h["root_id"] == tid and tid != celery_id
    assert h["parent_id"] is None and h["retries"] == 0 and h["lang"] == "py"
    assert re.match(r"^gen\d+@.+", h["origin"]), h["origin"]
    assert json.loads(ours["body"]) == json.loads(theirs["body"]) == \
        [[run_id], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    p = ours["properties"]
    for k in ("content_type", "content_encoding", "delivery_mode", "priority"):
        assert p[k] == theirs["properties"][k], k
    assert p["correlation_id"] == tid

    # Committed after the publish, as the application does it.
    run = env.run(run_id)
    assert run["status"] == "PARSING" and run["task_id"] == tid, run
    assert run["error_message"] is None and run["error_traceback"] is None
    assert run["started_at"].timestamp() >= t0 - 1
    assert run["last_heartbeat"] == run["started_at"]


def test_runs_retry_refuses_complete_and_running_runs(env, spare_queue):
    q = spare_queue
    done = create_run(env, status="COMPLETE")
    before = env.run(done)
    for force in ([], ["--force"]):
        rc, lines, err = cli(env, "runs", "retry", done, "--queue", q, *force)
        assert rc == 1 and lines == [] and "COMPLETE" in err, err
        assert len(err.strip().splitlines()) == 1, err
    assert env.run(done) == before
    assert env.queue_counts(q) is None  # nothing published, nothing declared

    busy = create_run(env, status="PARSING")
    rc, lines, err = cli(env, "runs", "retry", busy, "--queue", q)
    assert rc == 1 and "PARSING" in err and "--force" in err, err
    assert env.queue_counts(q) is None
    rc, lines, err = cli(env, "runs", "retry", busy, "--queue", q, "--force")
    assert rc == 0 and lines[0]["previous_status"] == "PARSING", err
    assert env.run(busy)["task_id"] == lines[0]["task_id"]
    assert wait_counts(env, q, (1, 0)) == (1, 0)


def test_runs_retry_of_a_missing_run(env):
    missing = 2_000_000_000 + uuid.uuid4().int % 100_000_000
    rc, lines, err = cli(env, "runs", "retry", missing)
    assert rc == 1 and lines == [] and "does not exist" in err, err
