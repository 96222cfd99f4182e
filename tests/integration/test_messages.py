"""Message-level behaviour: idempotence, missing runs, hostile messages, dead-lettering,
the application's PARSING race. Each test asserts database rows and queue contents."""

import time
import uuid

import producer
from conftest import PALOALTO, paloalto_upload, wait_drained, wait_for_final_status

CONF = ("inputs.conf", (PALOALTO / "default" / "inputs.conf").read_bytes())


def create(env, upload=CONF, run_type="SINGLE_CONF"):
    pconn = env.producer_conn()
    run_id, _ = producer.create_run(pconn, [upload], str(env.storage), run_type=run_type)
    pconn.close()
    return run_id


def row_counts(env, run_id):
    return tuple(env.scalar("SELECT count(*) FROM %s WHERE run_id = %%s" % t, (run_id,))
                 for t in ("stanzas", "inputs", "props", "transforms"))


def complete_one(env, worker, celery, upload=CONF, run_type="SINGLE_CONF"):
    run_id = create(env, upload, run_type)
    pconn = env.producer_conn()
    producer.enqueue(pconn, celery, run_id, queue=worker.queue)
    pconn.close()
    run = wait_for_final_status(env, run_id, worker=worker)
    assert run["status"] == "COMPLETE", run
    return run_id, run


def test_already_complete_run_is_not_touched(env, worker, celery):
    run_id, before = complete_one(env, worker, celery)
    counts = row_counts(env, run_id)
    assert counts[0] == 3
    # A second delivery for the finished run (a redelivery, or a second click).
    producer.send_parse_run(celery, run_id, queue=worker.queue)
    wait_drained(env, worker.queue)
    time.sleep(0.5)
    after = env.run(run_id)
    for k in ("status", "completed_at", "metrics", "error_message", "error_traceback"):
        assert after[k] == before[k], k
    assert row_counts(env, run_id) == counts
    assert env.ready(worker.queue + ".dead") == 0


def test_missing_run_is_dead_lettered(env, worker, celery):
    # A run id that names no row can never run: dead-lettered with why, nothing recorded.
    missing = 2_000_000_000 + (uuid.uuid4().int % 100_000_000)
    tid = producer.send_parse_run(celery, missing, queue=worker.queue)
    msg = assert_dead_lettered(env, worker, "app.worker.tasks.parse_run", ("not found",))
    assert msg["headers"].get("id") == tid
    assert msg["headers"]["x-cworker-reason"] == "Run %d not found" % missing
    wait_drained(env, worker.queue)
    assert env.run(missing) is None  # nothing invented
    assert env.ready(worker.queue + ".dead") == 0
    for d in ("60s", "180s", "600s"):
        assert env.ready("%s.retry.%s" % (worker.queue, d)) == 0


def assert_dead_lettered(env, worker, task_name_or_none, reason_words):
    msg = env.get_message(worker.queue + ".dead", timeout=15)
    assert msg is not None, "nothing in %s.dead:\n%s" % (worker.queue, worker.tail())
    h = msg["headers"]
    reason = h.get("x-cworker-reason")
    if isinstance(reason, bytes):
        reason = reason.decode()
    assert reason, h
    assert any(w in reason.lower() for w in reason_words), reason
    oq = h.get("x-cworker-original-queue")
    assert (oq.decode() if isinstance(oq, bytes) else oq) == worker.queue, h
    assert h.get("x-cworker-dead-lettered-at"), h
    if task_name_or_none:
        assert h.get("task") == task_name_or_none, h  # the original headers are kept
    return msg


def test_unknown_task_is_dead_lettered_and_worker_goes_on(env, worker, celery):
    tid = celery.send_task("app.worker.tasks.no_such_task", args=[1], queue=worker.queue).id
    msg = assert_dead_lettered(env, worker, "app.worker.tasks.no_such_task",
                               ("unknown", "not registered", "no such task", "unregistered"))
    assert msg["headers"].get("id") == tid
    assert env.ready(worker.queue + ".dead") == 0
    wait_drained(env, worker.queue)
    # The worker keeps working.
    complete_one(env, worker, celery)


def test_pickle_message_is_dead_lettered_never_decoded(env, worker, celery):
    run_id = create(env)
    # The application would never send pickle; a misconfigured producer might.
    producer.send_parse_run(celery, run_id, queue=worker.queue, serializer="pickle")
    msg = assert_dead_lettered(env, worker, "app.worker.tasks.parse_run",
                               ("pickle", "content", "serializ", "python-serialize"))
    assert msg["properties"].get("content_type") == "application/x-python-serialize"
    wait_drained(env, worker.queue)
    run = env.run(run_id)
    assert run["status"] == "STORED" and run["task_id"] is None, run
    assert row_counts(env, run_id) == (0, 0, 0, 0)
    complete_one(env, worker, celery)


def test_undecodable_json_is_dead_lettered(env, worker):
    tid = str(uuid.uuid4())
    producer.publish_raw(env.broker_url, worker.queue, b"[[1], {}, {",
                         headers=producer.celery_v2_headers(tid, args=[1]),
                         properties={"correlation_id": tid})
    assert_dead_lettered(env, worker, "app.worker.tasks.parse_run",
                         ("json", "decode", "body", "malformed", "invalid", "parse"))
    wait_drained(env, worker.queue)


def test_same_run_published_twice_gives_one_set_of_rows(env, worker, celery):
    run_id = create(env, paloalto_upload("tar.gz"), "APP_BUNDLE")
    pconn = env.producer_conn()
    producer.send_parse_run(celery, run_id, queue=worker.queue)
    producer.enqueue(pconn, celery, run_id, queue=worker.queue)  # CONCURRENCY=2: both at once
    pconn.close()
    run = wait_for_final_status(env, run_id, worker=worker)
    assert run["status"] == "COMPLETE", run
    wait_drained(env, worker.queue, timeout=30)
    time.sleep(0.5)
    run = env.run(run_id)
    assert run["status"] == "COMPLETE", run
    assert env.scalar("SELECT count(*) FROM stanzas WHERE run_id = %s", (run_id,)) == 181
    assert env.scalar("SELECT count(*) FROM props WHERE run_id = %s", (run_id,)) == 25
    assert env.scalar("SELECT count(*) FROM transforms WHERE run_id = %s", (run_id,)) == 60
    assert env.scalar("SELECT count(*) FROM inputs WHERE run_id = %s", (run_id,)) == 3
    assert env.ready(worker.queue + ".dead") == 0


def test_late_parsing_commit_is_undone(env, worker, celery):
    """CONTRACT 1.5: the application commits PARSING after publishing; a fast worker has
    finished by then. The run must not stay PARSING."""
    run_id = create(env)
    pconn = env.producer_conn()
    task_id = producer.send_parse_run(celery, run_id, queue=worker.queue)
    done = wait_for_final_status(env, run_id, worker=worker)
    assert done["status"] == "COMPLETE"
    producer.mark_parsing(pconn, run_id, task_id)  # the application's late commit
    pconn.close()
    deadline = time.time() + 15
    while time.time() < deadline:
        run = env.run(run_id)
        if run["status"] == "COMPLETE":
            break
        time.sleep(0.2)
    assert run["status"] == "COMPLETE", run
    assert run["completed_at"] is not None and run["metrics"] == done["metrics"]
    assert run["error_message"] is None
    assert env.scalar("SELECT count(*) FROM stanzas WHERE run_id = %s", (run_id,)) == 3


def test_countdown_runs_at_eta_not_before(env, worker, celery):
    run_id = create(env)
    pconn = env.producer_conn()
    t0 = time.time()
    producer.enqueue(pconn, celery, run_id, queue=worker.queue, countdown=3)
    pconn.close()
    time.sleep(1.5)
    assert env.run(run_id)["status"] == "PARSING"  # not yet: its eta is in the future
    run = wait_for_final_status(env, run_id, timeout=20, worker=worker)
    assert run["status"] == "COMPLETE", run
    assert time.time() - t0 >= 2.9
    assert run["completed_at"].timestamp() >= t0 + 2.9


def test_expired_message_is_not_run(env, worker, celery):
    import datetime

    run_id = create(env)
    pconn = env.producer_conn()
    past = producer.now() - datetime.timedelta(minutes=5)
    task_id = producer.enqueue(pconn, celery, run_id, queue=worker.queue, expires=past)
    pconn.close()
    assert worker.wait_log(task_id), worker.tail()
    wait_drained(env, worker.queue)
    time.sleep(0.5)
    run = env.run(run_id)
    assert run["status"] == "PARSING" and run["task_id"] == task_id, run  # as the app left it
    assert row_counts(env, run_id) == (0, 0, 0, 0)
    assert "expired" in worker.log().lower()
    assert env.ready(worker.queue + ".dead") == 0


def test_protocol_1_message_runs(env, worker):
    """Protocol 1 (no `task` header): a JSON object body (CONTRACT 1.1)."""
    import json

    run_id = create(env)
    tid = str(uuid.uuid4())
    body = json.dumps({"task": "app.worker.tasks.parse_run", "id": tid, "args": [run_id],
                       "kwargs": {}, "retries": 0, "eta": None, "expires": None,
                       "timelimit": [None, None], "callbacks": None, "errbacks": None,
                       "utc": True})
    producer.publish_raw(env.broker_url, worker.queue, body,
                         properties={"correlation_id": tid})
    run = wait_for_final_status(env, run_id, worker=worker)
    assert run["status"] == "COMPLETE" and run["task_id"] == tid, run
    assert row_counts(env, run_id)[0] == 3


def test_celery_routing_as_documented(env, celery, monkeypatch):
    """Pins what tests/py/producer.py documents and the worker's topology relies on:
    send_task(queue=Q) publishes to the default exchange "" with routing key Q, after
    declaring queue Q (durable, no arguments) bound to direct exchange Q with key Q."""
    import kombu.messaging

    seen = []
    orig = kombu.messaging.Producer._publish

    def spy(self, body, priority, content_type, content_encoding, headers, properties,
            routing_key, mandatory, immediate, exchange, declare, *rest):
        seen.append((exchange, routing_key, content_type, properties.get("delivery_mode"),
                     list(declare)))
        return orig(self, body, priority, content_type, content_encoding, headers,
                    properties, routing_key, mandatory, immediate, exchange, declare, *rest)

    monkeypatch.setattr(kombu.messaging.Producer, "_publish", spy)
    q = "cwit.routing.%s" % uuid.uuid4().hex[:8]
    try:
        celery.send_task("app.worker.tasks.parse_run", args=[1], queue=q)
        assert len(seen) == 1
        exchange, rk, ctype, mode, declare = seen[0]
        assert (exchange, rk, ctype, mode) == ("", q, "application/json", 2)
        (dq,) = declare
        assert dq.name == q and dq.durable and not dq.auto_delete and not dq.exclusive
        assert not dq.queue_arguments
        assert (dq.exchange.name, dq.exchange.type, dq.routing_key) == (q, "direct", q)
        assert env.queue_counts(q) == (1, 0)
    finally:
        env.delete_queues(q)
