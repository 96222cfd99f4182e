"""Quorum queues (CELERY_QUEUE_TYPE=quorum) and RabbitMQ's consumer_timeout, on the private
broker (a single node runs quorum queues too; the cluster tests add node failures).

- new queues are declared as kombu declares quorum queues, and runs complete on them;
- an existing queue keeps its type: a classic-configured worker on an existing quorum
  queue adapts to per-consumer QoS, a quorum-configured one on a classic queue uses it as
  it is; nothing fails with PRECONDITION_FAILED;
- a countdown task held on a quorum queue does not stop runnable tasks (the per-consumer
  window is widened by re-consuming);
- with consumer_timeout 10 s: a 30 s countdown is handed back before the broker would close
  the channel, and a run slower than 10 s still ends exactly once.
"""

import subprocess
import time

import pytest

import faults
import producer
from faults import assert_parsed_once, pal_upload, submit, wait_final
from faults import pal_expected as expected

@pytest.fixture
def qcelery(env, tq):
    """The application configured for quorum queues as a Celery 5.2 app can be: the queue
    declared with x-queue-type quorum (Celery 5.5's task_default_queue_type does the same)."""
    from kombu import Exchange, Queue

    app = producer.celery_app(env.broker_url)
    app.conf.task_queues = [Queue(tq, Exchange(tq, "direct"), routing_key=tq,
                                  queue_arguments={"x-queue-type": "quorum"})]
    return app


def queue_types(env, prefix):
    out = subprocess.run(env.rabbitmqctl + ["-q", "list_queues", "name", "type"], check=True,
                         capture_output=True, text=True).stdout
    return {l.split("\t")[0]: l.split("\t")[1] for l in out.splitlines()
            if l.startswith(prefix) and "\t" in l}


def declare_quorum(env, name):
    with env._kombu() as c:
        c.channel().queue_declare(queue=name, durable=True, auto_delete=False,
                                  arguments={"x-queue-type": "quorum"})


def test_new_queues_are_quorum_queues_and_runs_complete(env, workers, qcelery):
    celery = qcelery
    w = workers.start(CELERY_QUEUE_TYPE="quorum", CONCURRENCY=2)
    runs = [submit(env, celery, pal_upload(), workers.queue)[0] for _ in range(6)]
    for r in runs:
        run = wait_final(env, r, timeout=60, workers=[w])
        assert run["status"] == "COMPLETE", "%r\n%s" % (run, w.tail())
        assert_parsed_once(env, r, expected(), retry_count=0)
    types = queue_types(env, workers.queue)
    assert types[workers.queue] == "quorum", types
    assert types[workers.queue + ".dead"] == "quorum", types
    assert all(t == "quorum" for n, t in types.items() if ".retry." in n), types
    faults.wait_queue_settled(env, workers.queue)


def test_existing_quorum_queue_under_classic_setting_adapts(env, workers, qcelery, tq):
    celery = qcelery
    declare_quorum(env, tq)
    w = workers.start(CONCURRENCY=1)  # CELERY_QUEUE_TYPE left at classic
    run_id, _ = submit(env, celery, pal_upload(), workers.queue)
    run = wait_final(env, run_id, timeout=60, workers=[w])
    assert run["status"] == "COMPLETE", "%r\n%s" % (run, w.tail())
    assert queue_types(env, tq)[tq] == "quorum"
    assert "PRECONDITION_FAILED" not in w.log()


def test_existing_classic_queue_under_quorum_setting_is_used_as_it_is(env, workers, celery, tq):
    with env._kombu() as c:
        c.channel().queue_declare(queue=tq, durable=True, auto_delete=False)
    w = workers.start(CELERY_QUEUE_TYPE="quorum", CONCURRENCY=1)
    run_id, _ = submit(env, celery, pal_upload(), workers.queue)
    run = wait_final(env, run_id, timeout=60, workers=[w])
    assert run["status"] == "COMPLETE", "%r\n%s" % (run, w.tail())
    assert queue_types(env, tq)[tq] == "classic"
    assert "PRECONDITION_FAILED" not in w.log()


def test_countdown_on_a_quorum_queue_does_not_block_runnable_tasks(env, workers, qcelery):
    """Prefetch 1: the held countdown task takes the only slot unless the per-consumer
    window is widened."""
    celery = qcelery
    w = workers.start(CELERY_QUEUE_TYPE="quorum", CONCURRENCY=1, PREFETCH_MULTIPLIER=1)
    later, _ = submit(env, celery, pal_upload(), workers.queue, countdown=12)
    time.sleep(1)
    now_runs = [submit(env, celery, pal_upload(), workers.queue)[0] for _ in range(3)]
    for r in now_runs:
        run = wait_final(env, r, timeout=10, workers=[w])
        assert run["status"] == "COMPLETE", "%r\n%s" % (run, w.tail())
    assert faults.run_row(env, later)["status"] == "PARSING"
    run = wait_final(env, later, timeout=40, workers=[w])
    assert run["status"] == "COMPLETE"
    assert_parsed_once(env, later, expected(), retry_count=0)


@pytest.fixture
def short_consumer_timeout(env):
    """consumer_timeout 10 s for the channels opened meanwhile (RabbitMQ reads it when a
    channel starts); restored afterwards."""
    def set_timeout(ms):
        subprocess.run(env.rabbitmqctl + ["eval", "application:set_env(rabbit, consumer_timeout,"
                                          " %d)." % ms], check=True, capture_output=True)
    set_timeout(10000)
    yield
    set_timeout(1800000)


@pytest.mark.expect_log_errors(r"broker connection lost")
def test_consumer_timeout_long_countdown_and_slow_run(env, workers, celery,
                                                      short_consumer_timeout):
    """CONSUMER_TIMEOUT=10: a 30 s countdown is handed back every ~5 s instead of being held
    past the broker's limit; a run of ~13 s outlives it, the broker closes the channel, and
    each run still ends exactly once."""
    w = workers.start(CONSUMER_TIMEOUT=10, CONCURRENCY=1, CWORKER_DEBUG_ENTRY_DELAY_MS=800)
    slow, _ = submit(env, celery, pal_upload(), workers.queue)
    countdown, _ = submit(env, celery, pal_upload(), workers.queue, countdown=30)
    for r in (slow, countdown):
        run = wait_final(env, r, timeout=120, workers=[w])
        assert run["status"] == "COMPLETE", "%r\n%s" % (run, w.tail(60))
        assert_parsed_once(env, r, expected(), retry_count=0)
    assert "handed back" in w.log(), w.tail(60)
    faults.wait_queue_settled(env, workers.queue, timeout=60)
