"""Celery 5.5's native delayed delivery (CONTRACT 1.2, 1.3) on the private broker: the
celery_delayed_27 ... celery_delayed_0 ladder ending in the celery_delayed_delivery exchange,
with quorum queues and topic exchanges (CELERY_QUEUE_TYPE=quorum, CELERY_EXCHANGE_TYPE=topic).

The machine's Celery is 5.2, so the producer here does what Celery 5.5's send_task does
for a countdown when it detects quorum queues (celery/app/base.py): the message keeps its
eta header and goes to exchange celery_delayed_27 with kombu's routing key, the countdown's
28 binary digits then the queue's routing key (kombu/transport/native_delayed_delivery.py,
calculate_routing_key). KOMBU_LADDER is kombu's declaration of the ladder, written out.

- the worker declares the ladder and binds its queue exactly as kombu and Celery 5.5's
  worker do: the same bindings, and kombu's own declarations are accepted afterwards;
- a countdown through the ladder runs once, not before its eta, and the ladder itself
  holds a message that carries no eta;
- RETRY_TRANSPORT=native: the worker's retries travel the ladder (twice through the same
  level), never its delay queues;
- a held eta handed back before the consumer timeout goes into the ladder for what is left
  of its wait, without the x-death headers of its first trip: RabbitMQ 3.x would drop it
  as a dead-letter cycle at the level it passes twice.
"""

import datetime
import json
import subprocess
import time
import urllib.request

import pytest

import faults
import producer
from faults import assert_parsed_once, pal_upload, run_row, wait_final, wait_until
from faults import pal_expected as expected

LEVELS = 28
DELIVERY = "celery_delayed_delivery"
NATIVE = {"CELERY_QUEUE_TYPE": "quorum", "CELERY_EXCHANGE_TYPE": "topic"}


def level_name(level):
    return "celery_delayed_%d" % level


def calculate_routing_key(countdown, routing_key):
    """kombu's rule: the countdown as 28 binary digits joined by dots, then the key."""
    assert countdown >= 1 and routing_key
    return ".".join(format(countdown, "028b")) + "." + routing_key


def kombu_ladder():
    """What kombu's declare_native_delayed_delivery_exchanges_and_queues declares (quorum):
    ({queue: arguments}, {(source, destination, routing key)})."""
    queues, bindings = {}, set()
    key = "1.#"
    for level in range(LEVELS - 1, -1, -1):
        name = level_name(level)
        queues[name] = {
            "x-queue-type": "quorum",
            "x-overflow": "reject-publish",
            "x-message-ttl": 2 ** level * 1000,
            "x-dead-letter-exchange": level_name(level - 1) if level > 0 else DELIVERY,
            "x-dead-letter-strategy": "at-least-once",
        }
        bindings.add((name, name, key))
        key = "*." + key
    key = "0.#"
    for level in range(LEVELS - 1, 0, -1):
        bindings.add((level_name(level), level_name(level - 1), key))
        key = "*." + key
    bindings.add((level_name(0), DELIVERY, key))
    return queues, bindings


def declare_as_kombu(env):
    """kombu's own declarations, non-passive: RabbitMQ refuses any that differs from what
    exists (PRECONDITION_FAILED closes the channel, and py-amqp raises)."""
    queues, bindings = kombu_ladder()
    with env._kombu() as c:
        ch = c.channel()
        for name, args in queues.items():
            ch.exchange_declare(exchange=name, type="topic", durable=True, auto_delete=False)
            ch.queue_declare(queue=name, durable=True, auto_delete=False, arguments=args)
        ch.exchange_declare(exchange=DELIVERY, type="topic", durable=True, auto_delete=False)
        for source, dest, key in bindings:
            if source == dest:
                ch.queue_bind(queue=dest, exchange=source, routing_key=key)
            else:
                ch.exchange_bind(destination=dest, source=source, routing_key=key)


def list_bindings(env):
    out = subprocess.run(env.rabbitmqctl + ["-q", "list_bindings", "source_name",
                                            "destination_name", "routing_key"],
                         check=True, capture_output=True, text=True).stdout
    return {tuple(line.split("\t")) for line in out.splitlines() if line.count("\t") == 2}


@pytest.fixture
def celery55(env, tq):
    """The application as Celery 5.5 sees it with task_default_queue_type=quorum and
    task_default_exchange_type=topic: queue tq on topic exchange tq, routing key tq."""
    from kombu import Exchange, Queue

    app = producer.celery_app(env.broker_url)
    app.conf.task_queues = [Queue(tq, Exchange(tq, "topic"), routing_key=tq,
                                  queue_arguments={"x-queue-type": "quorum"})]
    app.conf.task_default_queue = tq
    return app


def send_countdown(env, app, run_id, queue, countdown, eta=True):
    """Celery 5.5's send_task for a countdown on quorum queues: the eta header as usual,
    published to celery_delayed_27 with kombu's routing key for int(countdown). Without
    eta the message carries none (only the ladder delays it). Returns the publish time."""
    from kombu import Exchange

    rk = calculate_routing_key(int(countdown), queue)
    sent = time.time()
    opts = {"countdown": countdown} if eta else {}
    task_id = producer.send_parse_run(app, run_id, exchange=Exchange(level_name(27), "topic"),
                                      routing_key=rk, **opts)
    pconn = env.producer_conn()
    try:
        producer.mark_parsing(pconn, run_id, task_id)
    finally:
        pconn.close()
    return sent, task_id


def wait_ladder_empty(env):
    """Nothing left in the ladder. At-least-once dead-lettering settles a quorum queue's
    message only after the next stop confirmed it, so its count follows a little later."""
    def empty():
        counts = faults.ctl_all(env)
        return all(counts.get(level_name(l), (0, 0)) == (0, 0) for l in range(LEVELS))
    wait_until(empty, 30, "the ladder to be empty")


def completed_epoch(env, run_id):
    """When the run ended (started_at is the producer's mark; a run ends after it began)."""
    return run_row(env, run_id)["completed_at"].timestamp()


def test_ladder_and_bindings_are_kombus(env, workers, tq):
    w = workers.start(**NATIVE)
    queues, bindings = kombu_ladder()
    have = list_bindings(env)
    assert bindings <= have, sorted(bindings - have)
    ours = {b for b in have if b[1] == tq}
    assert ours == {(DELIVERY, tq, "#." + tq), (tq, tq, tq), (tq, tq, "#." + tq),
                    ("", tq, tq)}, ours
    for name, args in queues.items():
        info = faults.queue_info(env, name)
        assert info is not None and info["durable"], (name, info)
        assert info["arguments"] == args, (name, info["arguments"])
    declare_as_kombu(env)
    assert "PRECONDITION_FAILED" not in w.log()


def test_countdown_through_the_ladder_runs_once_at_its_eta(env, workers, celery55, tq):
    w = workers.start(**NATIVE)
    declare_as_kombu(env)  # what a Celery 5.5 worker on the same broker would declare too
    run_id = faults.create_run(env, pal_upload())
    sent, task_id = send_countdown(env, celery55, run_id, tq, 3.7)
    # 5.5 routes int(3.7) = 3 s through the ladder: the message arrives before its eta
    # and is held for the rest
    run = wait_final(env, run_id, timeout=60, workers=[w])
    assert run["status"] == "COMPLETE", "%r\n%s" % (run, w.tail())
    assert_parsed_once(env, run_id, expected(), retry_count=0)
    assert completed_epoch(env, run_id) >= sent + 3.7, "ran before its eta"
    assert w.log().count("task app.worker.tasks.parse_run %s received" % task_id) == 1, w.tail()
    faults.wait_queue_settled(env, tq)
    wait_ladder_empty(env)


def test_the_ladder_delays_a_message_without_eta(env, workers, celery55, tq):
    """No eta header: only the ladder (1 s + 4 s queues for 5 = 101b) delays it."""
    w = workers.start(**NATIVE)
    run_id = faults.create_run(env, pal_upload())
    sent, _ = send_countdown(env, celery55, run_id, tq, 5, eta=False)
    run = wait_final(env, run_id, timeout=60, workers=[w])
    assert run["status"] == "COMPLETE", "%r\n%s" % (run, w.tail())
    assert_parsed_once(env, run_id, expected(), retry_count=0)
    assert completed_epoch(env, run_id) >= sent + 5 - 0.05, "not delayed by the ladder"


def test_retries_travel_the_ladder(env, workers, celery55, tq):
    """RETRY_DELAYS=2,2: both retries pass celery_delayed_1 (2 = 10b); the delay queues
    stay unused. The blob appears after the second failure."""
    w = workers.start(RETRY_TRANSPORT="native", RETRY_DELAYS="2,2", MAX_RETRIES=3, **NATIVE)
    name, data = pal_upload()
    run_id = faults.create_run(env, {"name": name, "data": data, "store": False})
    task_id = faults.enqueue(env, celery55, run_id, tq)
    wait_until(lambda: run_row(env, run_id)["retry_count"] == 2, 40,
               "second transient failure of run %s" % run_id)
    faults.store_blob(env, run_id, name, data)
    run = wait_final(env, run_id, timeout=60, workers=[w])
    assert run["status"] == "COMPLETE", "%r\n%s" % (run, w.tail())
    run = assert_parsed_once(env, run_id, expected(), retry_count=2)
    assert run["task_id"] == task_id
    rk = calculate_routing_key(2, tq)
    for n in (1, 2):
        line = "task %s retry %d published to %s with routing key %s" % (task_id, n,
                                                                          level_name(27), rk)
        assert line in w.log(), w.tail()
    assert ".retry." not in w.log()
    faults.wait_queue_settled(env, tq)
    faults.assert_queues_empty(env, *faults.retry_queues(tq, "2"))
    wait_ladder_empty(env)


def get_json(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
        return json.loads(r.read())


def test_a_native_retry_is_shown_waiting_in_the_ladder(env, workers, celery55, tq):
    """The dashboard's data: the retry recorded as waiting in the ladder with its due time,
    and the ladder's messages counted with the queue's delay queues."""
    port = faults.free_port()
    w = workers.start(RETRY_TRANSPORT="native", RETRY_DELAYS="4", MAX_RETRIES=3,
                      CWORKER_HTTP="127.0.0.1:%d" % port, **NATIVE)
    name, data = pal_upload()
    run_id = faults.create_run(env, {"name": name, "data": data, "store": False})
    faults.enqueue(env, celery55, run_id, tq)
    wait_until(lambda: run_row(env, run_id)["retry_count"] == 1, 30,
               "first transient failure of run %s" % run_id)
    due = get_json(port, "/v1/worker/dashboard")["database"]["delay_queues"]
    ladder = [q for q in due if q["name"] == "celery_delayed_27..0"]
    assert len(ladder) == 1 and ladder[0]["scheduled"] == 1, due
    assert 0 < ladder[0]["next_due_in_seconds"] <= 4, due
    queues = get_json(port, "/v1/worker/queues")["queues"]
    counted = {q["name"]: q["messages"] for q in queues[0]["delay_queues"]}
    assert counted.get("celery_delayed_27..0") == 1, queues
    faults.store_blob(env, run_id, name, data)
    run = wait_final(env, run_id, timeout=60, workers=[w])
    assert run["status"] == "COMPLETE", "%r\n%s" % (run, w.tail())
    wait_ladder_empty(env)


def test_held_eta_handed_back_through_the_ladder_without_x_death(env, workers, celery55, tq):
    """CONSUMER_TIMEOUT=8: a delivery held 4 s is handed back. The message took
    celery_delayed_0 (countdown 1) with an eta 14 s away; what is left (about 9 s = 1001b)
    passes celery_delayed_0 again. With its first x-death kept, RabbitMQ 3.x would drop it
    there as a cycle and the run would never start."""
    w = workers.start(RETRY_TRANSPORT="native", CONSUMER_TIMEOUT=8, **NATIVE)
    run_id = faults.create_run(env, pal_upload())
    from kombu import Exchange

    eta = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=14)
    task_id = producer.send_parse_run(celery55, run_id, eta=eta,
                                      exchange=Exchange(level_name(27), "topic"),
                                      routing_key=calculate_routing_key(1, tq))
    pconn = env.producer_conn()
    try:
        producer.mark_parsing(pconn, run_id, task_id)
    finally:
        pconn.close()
    run = wait_final(env, run_id, timeout=60, workers=[w])
    assert run["status"] == "COMPLETE", "%r\n%s" % (run, w.tail())
    assert_parsed_once(env, run_id, expected(), retry_count=0)
    assert "handed back to %s with routing key" % level_name(27) in w.log(), w.tail()
    assert completed_epoch(env, run_id) >= eta.timestamp(), "ran before its eta"
    faults.wait_queue_settled(env, tq)
    wait_ladder_empty(env)


def test_native_retries_need_a_topic_exchange(env, workers):
    w = workers.start(wait=False, RETRY_TRANSPORT="native")
    w.expected_exit = True
    wait_until(lambda: not w.alive(), 15, "the worker to exit")
    assert w.proc.wait() == 2
    assert "RETRY_TRANSPORT=native needs CELERY_EXCHANGE_TYPE=topic" in w.log()
