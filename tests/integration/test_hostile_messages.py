"""Hostile messages (CONTRACT 1.1, 1.2, 1.8): whatever a producer sends, every delivery ends
in a clear state within seconds and the worker goes on serving.

The rule for parse_run's arguments: a message that names an existing run but calls the task
wrongly (an extra positional or keyword argument, run_id twice) fails that run with
`Permanent error: <Python's TypeError wording>`; a message that names no run (run_id missing,
not an integer, outside ingestion_runs.id's 1..2^31-1, or no such row) is dead-lettered to
`<queue>.dead` with an `x-cworker-reason`. Nothing is requeued, no retry is consumed and the
circuit breaker never trips. Headers of the wrong type or shape, huge and deeply nested
headers, and bodies up to ~16 MB are covered the same way.

All cases share one worker and are published in one batch (each marked with an
`x-test-case` header, which a dead letter keeps), followed by an ordinary paloalto run; one
test per case then checks what became of it.
"""

import re
import time
import uuid

import pytest
from kombu import Connection

import faults
import producer
from conftest import PALOALTO, paloalto_upload, wait_drained

INPUTS = ("inputs.conf", (PALOALTO / "default" / "inputs.conf").read_bytes())
MARK = "x-test-case"
NO_SUCH_RUN = r"Run %s not found \(run ids are 1 to 2147483647\)"
MAX_HEADER_STRING = 120 * 1024  # the content header must fit in one frame (frame_max 128 kB)
DEEP = 450  # tables nested as deep as py-amqp's recursive encoder manages (~498)
NEAR_16MB = 16 * 1024 * 1024 - 64 * 1024


class Run:
    """Placeholder for the case's run id (created fresh for the case); Run(2) a second one."""

    def __init__(self, n=1, plus=None, as_text=False):
        self.n, self.plus, self.as_text = n, plus, as_text


R, R2 = Run(1), Run(2)


def resolve(value, runs):
    if isinstance(value, Run):
        v = runs[value.n] if value.plus is None else runs[value.n] + value.plus
        return str(v) if value.as_text else v
    if isinstance(value, list):
        return [resolve(v, runs) for v in value]
    if isinstance(value, dict):
        return {k: resolve(v, runs) for k, v in value.items()}
    return value


def names_runs(value):
    """The run numbers a payload's placeholders name."""
    if isinstance(value, Run):
        return {value.n}
    if isinstance(value, (list, tuple)):
        return set().union(*[names_runs(v) for v in value]) if value else set()
    if isinstance(value, dict):
        return names_runs(list(value.values()))
    return set()


def deep_table(depth):
    t = {"leaf": 1}
    for _ in range(depth - 1):
        t = {"n": t}
    return t


def failed(message):
    return ("failed", "Permanent error: " + message)


def dead(reason_regex):
    return ("dead", reason_regex)


COMPLETE = ("complete", None)
MISSING = "parse_run() missing 1 required positional argument: 'run_id'"
TWO_POSITIONAL = "parse_run() takes 1 positional argument but 2 were given"
MULTIPLE = "parse_run() got multiple values for argument 'run_id'"
RETRIES = r"retries is not an integer in 0\.\.2147483646"
TIMELIMIT = r"timelimit is not \[hard, soft\] seconds or None"


def unexpected(name):
    return "parse_run() got an unexpected keyword argument '%s'" % name


# (name, how, payload, expectation). how: "task" = real Celery send_task(args, kwargs);
# "raw" = publish_raw with Celery's protocol 2 headers updated by `headers` (a value None
# removes the header) and body [args, kwargs, embed]. Runs named by R / R2 are created
# fresh (STORED) for the case.
CASES = [
    # ---- run_id values
    ("negative", "task", dict(args=[-1]), dead(NO_SUCH_RUN % "-1")),
    ("zero", "task", dict(args=[0]), dead(NO_SUCH_RUN % "0")),
    ("above_2_31", "task", dict(args=[2 ** 31]), dead(NO_SUCH_RUN % "2147483648")),
    ("above_2_63", "task", dict(args=[2 ** 63]), dead(NO_SUCH_RUN % "9223372036854775808")),
    # json-c clamps integers beyond 2^64 to 2^64-1: still a run that cannot exist.
    ("above_2_64", "task", dict(args=[2 ** 70]), dead(NO_SUCH_RUN % r"\d{20,}")),
    ("unknown_run", "task", dict(args=[2_147_483_000]), dead(r"Run 2147483000 not found")),
    ("float_integral", "task", dict(args=[Run(plus=0.0)]), COMPLETE),
    ("float_fraction", "task", dict(args=[Run(plus=0.5)]),
     dead(r"run_id must be an integer, got float \d+\.5")),
    ("integral_string", "task", dict(args=[Run(as_text=True)]), COMPLETE),
    ("string_abc", "task", dict(args=["abc"]), dead(r"run_id must be an integer, got str 'abc'")),
    ("null", "task", dict(args=[None]), dead(r"run_id must be an integer, got None")),
    ("bool", "task", dict(args=[True]), dead(r"run_id must be an integer, got bool True")),
    ("list", "task", dict(args=[[R]]), dead(r"run_id must be an integer, got list \[\d+\]")),
    ("dict", "task", dict(args=[{"id": R}]),
     dead(r"run_id must be an integer, got dict \{'id': \d+\}")),
    ("kwarg_null", "task", dict(kwargs={"run_id": None}),
     dead(r"run_id must be an integer, got None")),
    # ---- the call
    ("missing", "task", dict(args=[]), dead(re.escape(MISSING))),
    ("only_other_kwarg", "task", dict(kwargs={"id": R}), dead(re.escape(unexpected("id")))),
    ("extra_positional", "task", dict(args=[R, 2]), failed(TWO_POSITIONAL)),
    ("extra_kwarg", "task", dict(args=[R], kwargs={"x": 1}), failed(unexpected("x"))),
    ("kwarg_and_extra_kwarg", "task", dict(kwargs={"run_id": R, "force": True}),
     failed(unexpected("force"))),
    ("positional_and_kwarg_same", "task", dict(args=[R], kwargs={"run_id": R}), failed(MULTIPLE)),
    ("positional_and_kwarg_differ", "task", dict(args=[R], kwargs={"run_id": R2}),
     dead(re.escape(MULTIPLE))),
    ("extra_positional_unknown_run", "task", dict(args=[2_147_483_001, 2]),
     dead(re.escape("Run 2147483001 not found; and " + TWO_POSITIONAL))),
    ("kwargs_300kB", "task", dict(args=[R], kwargs={"blob": "x" * 300_000}),
     failed(unexpected("blob"))),
    ("body_near_16MB", "task", dict(args=[R], kwargs={"blob": "y" * NEAR_16MB}),
     failed(unexpected("blob"))),
    ("body_near_16MB_no_run", "task", dict(args=[-7], kwargs={"blob": "z" * NEAR_16MB}),
     dead(re.escape(unexpected("blob")))),
    # ---- headers
    ("retries_string", "raw", dict(headers={"retries": "3"}), dead(RETRIES)),
    ("retries_negative", "raw", dict(headers={"retries": -1}), dead(RETRIES)),
    ("eta_garbage", "raw", dict(headers={"eta": "next tuesday"}), dead(r"eta is not an ISO-8601 time: next tuesday")),
    ("eta_int", "raw", dict(headers={"eta": 12345}), dead(r"eta is not an ISO-8601 time: 12345")),
    ("expires_garbage", "raw", dict(headers={"expires": "soon"}), dead(r"expires is not an ISO-8601 time: soon")),
    ("timelimit_string", "raw", dict(headers={"timelimit": "60"}), dead(TIMELIMIT)),
    ("timelimit_one", "raw", dict(headers={"timelimit": [60]}), dead(TIMELIMIT)),
    ("timelimit_three", "raw", dict(headers={"timelimit": [60, 30, 1]}), dead(TIMELIMIT)),
    ("timelimit_table", "raw", dict(headers={"timelimit": {"hard": 60}}), dead(TIMELIMIT)),
    ("timelimit_strings", "raw", dict(headers={"timelimit": ["a", "b"]}), dead(TIMELIMIT)),
    ("id_int", "raw", dict(headers={"id": 12345}), dead(r"id is not a string")),
    ("task_int", "raw", dict(headers={"task": 7}), dead(r"task is not a string")),
    ("group_index_string", "raw", dict(headers={"group_index": "one"}), dead(r"group_index is not an integer")),
    ("ignore_result_string", "raw", dict(headers={"ignore_result": "no"}),
     dead(r"ignore_result is not a boolean")),
    ("root_id_table", "raw", dict(headers={"root_id": {"a": 1}}), dead(r"root_id is not a string")),
    ("argsrepr_list", "raw", dict(headers={"argsrepr": [1, 2]}), dead(r"argsrepr is not a string")),
    ("lang_deep_table", "raw", dict(headers={"lang": deep_table(DEEP)}), dead(r"header lang: nesting deeper than 32 levels")),
    ("custom_deep_table", "raw", dict(headers={"x-deep": deep_table(DEEP)}), COMPLETE),
    ("custom_deep_100", "raw", dict(headers={"x-deep": deep_table(100)}), COMPLETE),
    ("custom_huge_string", "raw", dict(headers={"x-junk": "j" * MAX_HEADER_STRING}), COMPLETE),
    ("argsrepr_huge_string", "raw", dict(headers={"argsrepr": "a" * MAX_HEADER_STRING}),
     COMPLETE),
    ("id_huge_string", "raw", dict(headers={"id": "i" * MAX_HEADER_STRING}),
     dead(r"task id is %d characters long; a run records at most 255 "
          r"\(ingestion_runs.task_id\)" % MAX_HEADER_STRING)),
]
CASE_NAMES = [c[0] for c in CASES]


def publish(env, celery, queue, case, runs):
    name, how, payload, _ = case
    marker = {MARK: name}
    if how == "task":
        args = resolve(payload.get("args", []), runs)
        kwargs = resolve(payload.get("kwargs", {}), runs)
        celery.send_task(producer.TASK_NAME, args=args, kwargs=kwargs, queue=queue,
                         headers=marker)
        return
    tid = str(uuid.uuid4())
    headers = producer.celery_v2_headers(tid, args=[runs[1]])
    headers.update(payload.get("headers", {}))
    headers.update(marker)
    body = producer.celery_v2_body(args=[runs[1]])
    producer.publish_raw(env.broker_url, queue, body, headers=headers,
                         properties={"correlation_id": tid})


def collect_dead_letters(env, queue, names, timeout):
    """{case name: {"headers", "body"}} of the dead letters of the named cases."""
    found = {}
    deadline = time.time() + timeout
    with Connection(env.broker_url) as c:
        ch = c.channel()
        while set(names) - set(found) and time.time() < deadline:
            m = ch.basic_get(queue=queue + ".dead", no_ack=True)
            if m is None:
                time.sleep(0.2)
                continue
            headers = dict(m.properties.get("application_headers") or {})
            case = faults.text(headers.get(MARK))
            found[case] = {"headers": headers, "body_len": len(m.body)}
    return found


@pytest.fixture(scope="module")
def outcome(env, worker, queue):
    """Publishes every case, then a paloalto run; returns what became of each."""
    celery = producer.celery_app(env.broker_url)
    runs = {}
    for name, how, payload, _ in CASES:
        numbers = {1} if how == "raw" else names_runs(payload)
        runs[name] = {n: faults.create_run(env, INPUTS, "SINGLE_CONF") for n in numbers}
    started = time.time()
    for case in CASES:
        publish(env, celery, queue, case, runs[case[0]])
    pal = faults.create_run(env, paloalto_upload("tar.gz"), "APP_BUNDLE")
    faults.enqueue(env, celery, pal, queue)
    dead_names = [c[0] for c in CASES if c[3][0] == "dead"]
    dead_letters = collect_dead_letters(env, queue, dead_names, timeout=30)
    rows = {}
    for case in CASES:
        if case[3][0] != "dead":
            rows[case[0]] = faults.wait_final(env, runs[case[0]][1], timeout=60,
                                              workers=[worker])
    pal_row = faults.wait_final(env, pal, timeout=60, workers=[worker])
    elapsed = time.time() - started
    wait_drained(env, queue, timeout=30)
    return {"runs": runs, "dead": dead_letters, "rows": rows, "pal": pal_row,
            "elapsed": elapsed}


def untouched(env, run_id):
    row = env.run(run_id)
    assert row["status"] == "STORED" and row["task_id"] is None, row
    assert not any(faults.row_counts(env, run_id).values())


@pytest.mark.parametrize("name", CASE_NAMES)
def test_case(env, queue, outcome, name):
    case = dict((c[0], c) for c in CASES)[name]
    kind, expected = case[3]
    runs = outcome["runs"][name]  # {placeholder number: run id}
    if kind == "dead":
        letter = outcome["dead"].get(name)
        assert letter is not None, "no dead letter for %s" % name
        h = letter["headers"]
        reason = faults.text(h.get("x-cworker-reason"))
        assert re.fullmatch(expected, reason), reason
        assert faults.text(h.get("x-cworker-original-queue")) == queue
        assert h.get("x-cworker-dead-lettered-at")
        for run_id in runs.values():
            untouched(env, run_id)
        return
    row = outcome["rows"][name]
    if kind == "complete":
        assert row["status"] == "COMPLETE", row
        assert faults.row_counts(env, runs[1])["inputs"] == 3
    else:
        assert row["status"] == "FAILED", row
        assert row["error_message"] == expected, row["error_message"]
        assert row["retry_count"] == 0
        assert row["metrics"]["error_type"] == "permanent", row["metrics"]
        assert not any(faults.row_counts(env, runs[1]).values())
    assert name not in outcome["dead"]


def test_worker_keeps_serving(env, queue, worker, outcome):
    """After all of them: the paloalto run published last completed, nothing is left in the
    queue (ready or unacked), no retry was scheduled, the breaker never opened, and every
    case ended within seconds."""
    assert outcome["pal"]["status"] == "COMPLETE", outcome["pal"]
    assert outcome["pal"]["metrics"]["stanzas_created"] == 181
    assert env.ctl_counts(queue) == (0, 0)
    for d in ("60s", "180s", "600s"):
        assert env.ready("%s.retry.%s" % (queue, d)) == 0
    assert env.ready(queue + ".dead") == 0  # every dead letter was one of the cases
    log = worker.log()
    assert "pausing task intake" not in log
    assert "retry 1 published" not in log
    assert outcome["elapsed"] < 45, outcome["elapsed"]


def test_completed_run_is_not_overwritten_by_a_wrong_call(env, queue, worker, celery):
    """A finished run stays COMPLETE when a message with extra arguments names it: the
    call is reported as failed (and acked), the row is left alone."""
    run_id = faults.create_run(env, INPUTS, "SINGLE_CONF")
    faults.enqueue(env, celery, run_id, queue)
    before = faults.wait_final(env, run_id, workers=[worker])
    assert before["status"] == "COMPLETE"
    celery.send_task(producer.TASK_NAME, args=[run_id, "again"], queue=queue)
    assert worker.wait_log(r"task %s failed in .*: %s" % (re.escape(producer.TASK_NAME),
                                                          re.escape(TWO_POSITIONAL)))
    wait_drained(env, queue)
    after = env.run(run_id)
    for k in ("status", "completed_at", "error_message", "task_id", "retry_count"):
        assert after[k] == before[k], k
    assert env.ready(queue + ".dead") == 0


def test_header_beyond_the_frame_size_never_arrives(env, queue, worker, celery):
    """A 1 MB header string cannot be carried: the content header must fit in one AMQP
    frame (RabbitMQ's frame_max, 128 kB), so the broker refuses the publish and nothing
    reaches the worker; it goes on serving."""
    tid = str(uuid.uuid4())
    run_id = faults.create_run(env, INPUTS, "SINGLE_CONF")
    headers = producer.celery_v2_headers(tid, args=[run_id])
    headers["x-junk"] = "m" * (1 << 20)
    try:
        producer.publish_raw(env.broker_url, queue, producer.celery_v2_body(args=[run_id]),
                             headers=headers, properties={"correlation_id": tid})
    except Exception:
        pass  # the broker closes the connection on the oversized frame
    faults.enqueue(env, celery, run_id, queue)
    row = faults.wait_final(env, run_id, workers=[worker])
    assert row["status"] == "COMPLETE" and row["task_id"] != tid, row
    wait_drained(env, queue)
    assert env.ready(queue + ".dead") == 0


def test_rejected_message_reports_a_failure_to_the_client(env, queue, worker):
    """A client waiting on the result (rpc://) of a message that names no run gets a
    PermanentError with the reason, as for any failure; the message is dead-lettered."""
    app = producer.celery_app(env.broker_url)
    app.conf.result_backend = "rpc://"
    try:
        res = app.send_task(producer.TASK_NAME, args=[-1], queue=queue)
        with pytest.raises(Exception) as ei:
            res.get(timeout=30)
        assert type(ei.value).__name__ == "PermanentError", repr(ei.value)
        assert "Run -1 not found (run ids are 1 to 2147483647)" in str(ei.value)
        assert res.state == "FAILURE"
    finally:
        app.close()
    letter = env.get_message(queue + ".dead", timeout=15)
    assert letter is not None and letter["headers"].get("id") == res.id
    wait_drained(env, queue)
