"""Failure handling (CONTRACT 1.3, 1.5, 1.8), by fault injection against the real binary:
transient errors and their retry messages, permanent errors, soft and hard time limits,
heartbeats, stuck-run recovery, executors and whole workers killed mid-run, crash loops,
duplicate deliveries, eta/expires, and graceful/forced shutdown.

Every test starts its own worker(s) with short delays on its own queue (faults.WorkerPool)
and asserts the final database state and queue contents, never how fast the worker is.
Runs are made to last long enough to be interrupted with the test-only knob
CWORKER_DEBUG_ENTRY_DELAY_MS (extra milliseconds per .conf entry; the paloalto app has 16
entries). Expected stanza counts come from the independent reader in splunk_conf_ref.
"""

import datetime
import json
import subprocess
import signal
import time
import uuid

import pytest

import faults
import producer
from conftest import PALOALTO
from faults import (assert_parsed_once, assert_untouched, children, create_run, enqueue,
                    retry_queue, run_row, submit, text, wait_final, wait_until, pal_upload,
                    pal_expected)

INPUTS = ("inputs.conf", (PALOALTO / "default" / "inputs.conf").read_bytes())
INPUTS_EXPECTED = {"inputs": 3}

# The ERROR lines the supervisor logs for the faults these tests inject
# (worker/supervisor/executors.c); any other ERROR line fails the test.
HARD_LIMIT_KILL = r"^task \S+ exceeded its hard time limit \(2 s\); killing executor \d+$"


def executor_died(signo):
    return (r"^executor \d+ died of signal %d \([^)]*\) running task \S+; it is requeued$"
            % signo)


def retire(env, run_id):
    """A run this test deliberately left PARSING is closed so that no stuck-run sweeper of
    a later test picks it up."""
    faults.db_retry(env, lambda e: e.scalar(
        "UPDATE ingestion_runs SET status = 'FAILED', error_message = 'test cleanup'"
        " WHERE id = %s AND status = 'PARSING' RETURNING id", (run_id,)))


def stanzas(env, run_id):
    return faults.row_counts(env, run_id)["stanzas"]


def claim_counted(env, run_id):
    """The claim of the run's task is committed: it counted an attempt in cworker_tasks."""
    return env.scalar("SELECT count(*) FROM ingestion_runs r JOIN cworker_tasks t"
                      " ON t.task_id = r.task_id AND t.run_id = r.id WHERE r.id = %s",
                      (run_id,)) == 1


def wait_started(env, run_id, baseline_heartbeat, timeout=30.0):
    """Until the worker has claimed the run and it is PARSING: last_heartbeat moved past
    what the producer wrote (the claim writes it; HEARTBEAT_INTERVAL keeps moving it), or
    the claim counted its attempt (a claim made before the baseline was read)."""
    def started():
        r = run_row(env, run_id)
        moved = r["last_heartbeat"] != baseline_heartbeat or claim_counted(env, run_id)
        return r if moved and r["status"] == "PARSING" else None
    return wait_until(started, timeout, "run %s claimed by the worker" % run_id, interval=0.05)


# ============================================================================ transient


def test_transient_error_publishes_a_celery_retry_message(env, workers, celery):
    """A missing blob is transient: the row says `Transient error (retry 1): ...` with
    retry_count 1, status PARSING, and the retry waits in Q.retry.30s as the message
    Celery's Task.retry() publishes - which a Python Celery worker runs correctly."""
    w = workers.start(RETRY_DELAYS="30")
    name, data = INPUTS
    run_id = create_run(env, {"name": name, "data": data, "store": False}, "SINGLE_CONF")
    t0 = time.time()
    task_id = enqueue(env, celery, run_id, workers.queue)
    rq = retry_queue(workers.queue, 30)
    assert rq == workers.queue + ".retry.30s"
    msg = env.get_message(rq, timeout=30)
    assert msg is not None, "nothing in %s:\n%s" % (rq, w.tail())
    t1 = time.time()

    run = run_row(env, run_id)
    assert run["status"] == "PARSING", run
    assert run["retry_count"] == 1, run
    assert run["error_message"].startswith("Transient error (retry 1): "), run["error_message"]
    assert run["task_id"] == task_id
    assert_untouched(env, run_id)

    # The durable delay queue: per-queue TTL, dead-letters back to Q.
    info = faults.queue_info(env, rq)
    assert info["durable"] is True, info
    assert info["arguments"]["x-message-ttl"] == 30000, info
    assert info["arguments"]["x-dead-letter-exchange"] == "", info
    assert info["arguments"]["x-dead-letter-routing-key"] == workers.queue, info

    h = dict((k, text(v)) for k, v in msg["headers"].items())
    p = msg["properties"]
    assert h["task"] == producer.TASK_NAME and h["lang"] == "py", h
    assert h["id"] == task_id and h["root_id"] == task_id, h
    assert h["parent_id"] == task_id, h  # it was None: Task.retry() sets the task itself
    assert h["retries"] == 1, h
    assert h["argsrepr"] == "[%d]" % run_id and h["kwargsrepr"] == "{}", h
    assert h["expires"] is None and h["group"] is None, h
    assert list(h["timelimit"]) == [None, None], h
    assert h["eta"].endswith("+00:00"), h["eta"]
    eta = datetime.datetime.fromisoformat(h["eta"]).timestamp()
    assert t0 + 30 - 1 <= eta <= t1 + 30 + 1, (h["eta"], t0, t1)
    assert text(p.get("correlation_id")) == task_id, p
    assert text(p.get("content_type")) == "application/json", p
    assert text(p.get("content_encoding")) == "utf-8", p
    assert p.get("delivery_mode") == 2, p
    assert text(p.get("reply_to")) == celery.thread_oid, p  # other headers kept
    assert json.loads(msg["body"]) == [[run_id], {}, {"callbacks": None, "errbacks": None,
                                                      "chain": None, "chord": None}]

    # What a Python Celery worker makes of it (celery.worker.request.Request, as its
    # consumer builds it from the delivery), and that it runs the task with it. In a fresh
    # interpreter: Celery keeps process-wide state that other tests' apps leave behind.
    check = r"""
import json, sys
from celery import Celery
from celery.worker.request import Request
from kombu.message import Message
msg, props, queue, task_name = json.load(sys.stdin)
app = Celery("check", broker="memory://")
app.conf.update(task_serializer="json", accept_content=["json"])
seen = []
@app.task(name=task_name, bind=True)
def parse_run(self, run_id):
    seen.append([run_id, self.request.id, self.request.retries])
    return "ok"
m = Message(body=msg["body"], headers=msg["headers"], properties=props,
            content_type=props.get("content_type"),
            content_encoding=props.get("content_encoding"),
            delivery_info={"exchange": "", "routing_key": queue}, channel=None)
req = Request(m, app=app, task=app.tasks[task_name])
assert req.eta is not None
print(json.dumps({"id": req.id, "args": req.args, "seen": (req.execute(), seen)[1]}))
"""
    payload = json.dumps([{"body": text(msg["body"]), "headers": msg["headers"]},
                          {k: text(v) if isinstance(v, bytes) else v for k, v in p.items()},
                          workers.queue, producer.TASK_NAME], default=str)
    out = subprocess.run(["/usr/bin/python3", "-c", check], input=payload, text=True,
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["id"] == task_id and result["args"] == [run_id], result
    assert result["seen"] == [[run_id, task_id, 1]], result
    retire(env, run_id)


def test_transient_error_exhausts_retries(env, workers, celery):
    """Blob never appears: PARSING with `Transient error (retry n)` for n = 1, 2, 3, each
    retry through its own delay queue (1 s, 1.5 s, 2 s; names Q.retry.1s, Q.retry.1.5s,
    Q.retry.2s), then FAILED `Failed after 3 retries: <msg>`, error_type
    transient_exhausted, retry_count 3. No retry runs before its eta."""
    w = workers.start(RETRY_DELAYS="1,1.5,2", MAX_RETRIES=3)
    name, data = INPUTS
    run_id = create_run(env, {"name": name, "data": data, "store": False}, "SINGLE_CONF")
    t0 = time.time()
    task_id = enqueue(env, celery, run_id, workers.queue)
    seen = {}
    deadline = time.time() + 60
    run = None
    while time.time() < deadline:
        run = run_row(env, run_id)
        if run["status"] in faults.FINAL:
            break
        if run["retry_count"] and run["error_message"]:
            seen.setdefault(run["retry_count"], run["error_message"])
        time.sleep(0.05)
    t_final = time.time()
    assert run["status"] == "FAILED", "%r\n%s" % (run, w.tail())
    assert sorted(seen) == [1, 2, 3], seen
    reasons = set()
    for n, m in seen.items():
        prefix = "Transient error (retry %d): " % n
        assert m.startswith(prefix), (n, m)
        reasons.add(m[len(prefix):])
    assert len(reasons) == 1, reasons
    (reason,) = reasons
    assert reason, seen
    assert run["error_message"] == "Failed after 3 retries: " + reason, run["error_message"]
    assert run["retry_count"] == 3, run
    assert run["task_id"] == task_id
    assert run["error_traceback"] and run["error_traceback"].strip(), run
    m = run["metrics"]
    assert m["error_type"] == "transient_exhausted", m
    assert m["retry_count"] == 3 and "duration_seconds" in m, m
    assert t_final >= t0 + 1 + 1.5 + 2 - 0.2, "retries ran before their eta"
    assert_untouched(env, run_id)
    for d in ("1", "1.5", "2"):
        q = workers.queue + ".retry.%ss" % d
        assert faults.queue_info(env, q) is not None, "%s was never declared" % q
    faults.wait_queue_settled(env, workers.queue)
    faults.assert_queues_empty(env, workers.queue + ".dead",
                               *faults.retry_queues(workers.queue, "1,1.5,2"))


def test_blob_arriving_during_the_retry_wait_completes(env, workers, celery):
    """Storage catching up: the retry finds the blob and the run completes with
    retry_count 1 and exactly one set of rows."""
    w = workers.start(RETRY_DELAYS="2")
    name, data = pal_upload()
    run_id = create_run(env, {"name": name, "data": data, "store": False})
    task_id = enqueue(env, celery, run_id, workers.queue)
    wait_until(lambda: run_row(env, run_id)["retry_count"] == 1, 30,
               "first transient failure of run %s" % run_id)
    assert run_row(env, run_id)["status"] == "PARSING"
    faults.store_blob(env, run_id, name, data)
    run = wait_final(env, run_id, workers=[w])
    run = assert_parsed_once(env, run_id, pal_expected(), retry_count=1)
    assert run["task_id"] == task_id and run["error_traceback"] is None
    faults.wait_queue_settled(env, workers.queue)


def test_permanent_error_is_never_retried(env, workers, celery):
    """A corrupt archive fails at once (Permanent error, error_type permanent) and stays
    failed after the shortest retry delay has passed: nothing was re-run."""
    w = workers.start(RETRY_DELAYS="0.5")
    name, data = pal_upload()
    run_id, _ = submit(env, celery, (name, data[: len(data) // 2]), workers.queue)
    run = wait_final(env, run_id, workers=[w])
    assert run["status"] == "FAILED", run
    assert run["error_message"].startswith("Permanent error: "), run["error_message"]
    assert run["metrics"]["error_type"] == "permanent" and run["retry_count"] == 0, run
    faults.wait_queue_settled(env, workers.queue)
    time.sleep(1.5)
    again = run_row(env, run_id)
    for k in ("status", "error_message", "retry_count", "metrics", "completed_at"):
        assert again[k] == run[k], k
    assert env.ctl_counts(retry_queue(workers.queue, 0.5)) == (0, 0)
    assert_untouched(env, run_id)


# ============================================================================ time limits


def assert_timed_out(env, run_id, worker):
    run = wait_final(env, run_id, timeout=60, workers=[worker])
    assert run["status"] == "FAILED", "%r\n%s" % (run, worker.tail())
    assert run["error_message"] == "Task exceeded time limit", "%r\n%s" % (run, worker.tail())
    assert run["metrics"]["error_type"] == "timeout", run["metrics"]
    assert run["retry_count"] == 0, run
    assert_untouched(env, run_id)
    return run


def test_soft_time_limit(env, workers, celery):
    w = workers.start(SOFT_TIME_LIMIT=1, CWORKER_DEBUG_ENTRY_DELAY_MS=300)
    run_id, _ = submit(env, celery, pal_upload(), workers.queue)
    assert_timed_out(env, run_id, w)
    faults.wait_queue_settled(env, workers.queue)
    faults.assert_queues_empty(env, *faults.retry_queues(workers.queue,
                                                         w.settings["RETRY_DELAYS"]))


def test_soft_time_limit_from_message(env, workers, celery):
    """`timelimit` = [None, 1] in the message (send_task(soft_time_limit=1))."""
    w = workers.start(CWORKER_DEBUG_ENTRY_DELAY_MS=300)
    run_id, _ = submit(env, celery, pal_upload(), workers.queue, soft_time_limit=1)
    assert_timed_out(env, run_id, w)


def freeze_executor(env, worker, run_id):
    """SIGSTOP the executor once it has claimed the run: a stuck executor that cannot
    notice its soft limit, so only the supervisor's hard limit can end the task."""
    base = run_row(env, run_id)["last_heartbeat"]
    wait_started(env, run_id, base)
    (pid,) = children(worker.proc.pid)
    faults.kill(pid, signal.SIGSTOP)
    return pid


@pytest.mark.expect_log_errors(HARD_LIMIT_KILL)
def test_hard_time_limit_kills_and_replaces_the_executor(env, workers, celery):
    """TIME_LIMIT=2 and an executor that hangs (SIGSTOPped): the supervisor kills it, the
    run ends FAILED `Task exceeded time limit` (and is not redone), and a new executor
    takes the next task."""
    w = workers.start(TIME_LIMIT=2, SOFT_TIME_LIMIT=2, CONCURRENCY=1, HEARTBEAT_INTERVAL=0.3,
                      CWORKER_DEBUG_ENTRY_DELAY_MS=300)
    run_id, _ = submit(env, celery, pal_upload(), workers.queue)
    pid = freeze_executor(env, w, run_id)
    try:
        assert_timed_out(env, run_id, w)
        assert faults.wait_gone([pid], 10), "the hung executor was not killed"
    finally:
        faults.kill(pid, signal.SIGCONT)
    # A replacement executor runs the next task (1 entry: well inside the limit).
    ok_id, _ = submit(env, celery, INPUTS, workers.queue, run_type="SINGLE_CONF")
    wait_final(env, ok_id, workers=[w])
    assert_parsed_once(env, ok_id, INPUTS_EXPECTED, retry_count=0)
    faults.wait_queue_settled(env, workers.queue)
    assert_timed_out(env, run_id, w)  # still: not redone


@pytest.mark.expect_log_errors(HARD_LIMIT_KILL)
def test_hard_time_limit_from_message(env, workers, celery):
    """`timelimit` = [2, None] in the message (send_task(time_limit=2)) overrides the
    worker's TIME_LIMIT (default 3600 s); the executor hangs (SIGSTOP) as above."""
    w = workers.start(CONCURRENCY=1, HEARTBEAT_INTERVAL=0.3, CWORKER_DEBUG_ENTRY_DELAY_MS=300)
    run_id, _ = submit(env, celery, pal_upload(), workers.queue, time_limit=2)
    pid = freeze_executor(env, w, run_id)
    try:
        assert_timed_out(env, run_id, w)
    finally:
        faults.kill(pid, signal.SIGCONT)
    faults.wait_queue_settled(env, workers.queue)


def test_message_time_limits_override_the_workers(env, workers, celery):
    """The message's [hard, soft] wins in the other direction too: a worker configured
    with 1 s / 2 s limits runs a task that asks for 50 s / 60 s to completion."""
    w = workers.start(SOFT_TIME_LIMIT=1, TIME_LIMIT=2, CWORKER_DEBUG_ENTRY_DELAY_MS=200)
    run_id, _ = submit(env, celery, pal_upload(), workers.queue, time_limit=60,
                       soft_time_limit=50)
    wait_final(env, run_id, workers=[w])
    assert_parsed_once(env, run_id, pal_expected(), retry_count=0)


# ============================================================================ heartbeat


def test_heartbeat_advances_while_a_run_executes(env, workers, celery):
    """With HEARTBEAT_INTERVAL=0.3, the database clock never sees a heartbeat older than
    the interval plus a generous 2 s while the run is PARSING, and it moves many times
    during a run of about 4 s."""
    w = workers.start(HEARTBEAT_INTERVAL=0.3, CWORKER_DEBUG_ENTRY_DELAY_MS=250)
    run_id, _ = submit(env, celery, pal_upload(), workers.queue)
    samples = []
    deadline = time.time() + 60
    while time.time() < deadline:
        r = env.row("SELECT status, last_heartbeat, clock_timestamp() AS now"
                    " FROM ingestion_runs WHERE id = %s", (run_id,))
        if r["status"] in faults.FINAL:
            break
        samples.append(r)
        time.sleep(0.05)
    run = wait_final(env, run_id, workers=[w])
    assert_parsed_once(env, run_id, pal_expected(), retry_count=0)
    beats = sorted(set(s["last_heartbeat"] for s in samples))
    assert len(beats) >= 5, "heartbeat moved %d times during the run: %r" % (len(beats), beats)
    # From the first heartbeat the worker wrote (after the producer's) to the end.
    first = beats[1]
    late = [(s["now"] - s["last_heartbeat"]).total_seconds() for s in samples
            if s["last_heartbeat"] >= first]
    assert max(late) <= 0.3 + 2.0, "heartbeat %.2f s old while PARSING" % max(late)
    assert run["completed_at"] >= beats[-1]


def test_heartbeat_and_progress_advance_during_the_copy_of_a_run(env, workers, celery):
    """Rows stream into the run's COPY while the archive is read: from another connection,
    while the executor's connection is inside `COPY stanzas` for this run (the backend
    holding the run's advisory lock), last_heartbeat moves, cworker_tasks.progress counts
    stanzas so far, and no stanza of the run is visible yet (one transaction)."""
    w = workers.start(HEARTBEAT_INTERVAL=0.3, CWORKER_DEBUG_ENTRY_DELAY_MS=250)
    run_id, _ = submit(env, celery, pal_upload(), workers.queue)
    during_copy = []
    deadline = time.time() + 60
    while time.time() < deadline:
        r = env.row(
            "SELECT r.status, r.last_heartbeat, t.progress::text AS progress, a.query,"
            "       (SELECT count(*) FROM stanzas s WHERE s.run_id = r.id) AS visible"
            "  FROM ingestion_runs r"
            "  LEFT JOIN cworker_tasks t ON t.task_id = r.task_id"
            "  LEFT JOIN pg_locks l ON l.locktype = 'advisory' AND l.granted"
            "       AND l.classid = 0 AND l.objid = r.id AND l.objsubid = 1"
            "  LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE r.id = %s", (run_id,))
        if r["status"] in faults.FINAL:
            break
        if r["query"] and r["query"].startswith("COPY stanzas"):
            during_copy.append(r)
        time.sleep(0.05)
    wait_final(env, run_id, workers=[w])
    assert_parsed_once(env, run_id, pal_expected(), retry_count=0)
    beats = sorted(set(s["last_heartbeat"] for s in during_copy))
    assert len(beats) >= 3, "heartbeat moved %d times during the COPY: %r" % (len(beats), beats)
    so_far = sorted(set(json.loads(s["progress"])["stanzas_so_far"] for s in during_copy
                        if s["progress"]))
    assert len(so_far) >= 3 and so_far[-1] < 181, so_far
    assert all(s["visible"] == 0 for s in during_copy)


def test_a_later_upload_failing_rolls_back_rows_already_streamed(env, workers, celery):
    """Two uploads: the first is parsed and its rows sent into the COPY, the second's
    checksum does not match. The run FAILS with no rows at all."""
    w = workers.start()
    name, data = pal_upload()
    pconn = env.producer_conn()
    try:
        run_id, _ = producer.create_run(
            pconn, [(name, data), {"name": "second.tar.gz", "data": data, "sha256": "0" * 64}],
            str(env.storage))
        producer.enqueue(pconn, celery, run_id, queue=workers.queue)
    finally:
        pconn.close()
    run = wait_final(env, run_id, workers=[w])
    assert run["status"] == "FAILED", run
    assert run["error_message"].startswith("Permanent error: Checksum mismatch for second.tar.gz"), \
        run["error_message"]
    assert faults.row_counts(env, run_id) == dict.fromkeys(("stanzas",) + faults.TYPED, 0)


def _built_with_asan(path):
    with open(path, "rb") as f:
        return b"__asan_init" in f.read()


def _one_big_stanza_upload():
    """One stanza of four 1 MB values of control characters: within the parser's limits
    (4 MiB per stanza, 1 MiB per line), but each character becomes \\u0001 in the COPY row,
    so the row alone needs some 30 MB."""
    import io
    import tarfile
    text = b"[big]\n" + b"".join(b"k%d = %s\n" % (i, b"\x01" * 1000000) for i in range(4))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("big_app/default/savedsearches.conf")
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))
    return "big_app.tar.gz", buf.getvalue()


def test_memory_limit_fails_the_run_and_the_executor_goes_on(env, workers, celery):
    """EXECUTOR_MEMORY_LIMIT=100 (MB of address space; an idle executor has about 75): a
    stanza whose COPY row is some 30 MB needs more (stanzas stream, so a file of many
    stanzas no longer does), and its run FAILS at once with the limit named and no rows,
    instead of the executor aborting or the host's OOM killer stepping in. The same
    executor then parses a small run."""
    if _built_with_asan(env.bin):
        pytest.skip("EXECUTOR_MEMORY_LIMIT is not applied in AddressSanitizer builds")
    w = workers.start(CONCURRENCY=1, EXECUTOR_MEMORY_LIMIT=100, MAX_RETRIES=0)
    big, _ = submit(env, celery, _one_big_stanza_upload(), workers.queue)
    run = wait_final(env, big, workers=[w])
    assert run["status"] == "FAILED", run
    assert run["error_message"] == ("Permanent error: the run needed more than 100 MB"
                                    " (EXECUTOR_MEMORY_LIMIT)"), run["error_message"]
    assert faults.row_counts(env, big) == dict.fromkeys(("stanzas",) + faults.TYPED, 0)
    pids = children(w.proc.pid)
    small, _ = submit(env, celery, INPUTS, workers.queue, run_type="SINGLE_CONF")
    assert wait_final(env, small, workers=[w])["status"] == "COMPLETE"
    assert children(w.proc.pid) == pids, "the executor was replaced"


# ============================================================================ stuck runs


def strand_run(env, workers, celery, retries=0):
    """A run whose owner vanished and whose message is lost: a worker claims it, is
    SIGKILLed mid-run, and the redelivered message is taken away before any worker sees
    it again (a lost message). Returns (run_id, task_id). The run stays PARSING with a
    heartbeat that only ages. (A PARSING run no worker ever started is a backlogged
    message, not a stuck run: the application marks PARSING at publish time.)"""
    w = workers.start(CONCURRENCY=1, HEARTBEAT_INTERVAL=0.3, CWORKER_DEBUG_ENTRY_DELAY_MS=300)
    run_id = create_run(env, pal_upload())
    tid = str(uuid.uuid4())
    producer.publish_raw(env.broker_url, workers.queue, producer.celery_v2_body([run_id]),
                         headers=producer.celery_v2_headers(tid, args=[run_id],
                                                            retries=retries),
                         properties={"correlation_id": tid, "reply_to": celery.thread_oid})
    pconn = env.producer_conn()
    producer.mark_parsing(pconn, run_id, tid)
    pconn.close()
    base = run_row(env, run_id)["last_heartbeat"]
    wait_started(env, run_id, base)
    w.expected_exit = True
    faults.kill(w.proc.pid, signal.SIGKILL)
    w.proc.wait()
    lost = env.get_message(workers.queue, timeout=10)
    assert lost is not None and text(lost["headers"]["id"]) == tid, lost
    run = run_row(env, run_id)
    assert run["status"] == "PARSING" and run["retry_count"] == retries, run
    assert_untouched(env, run_id)
    return run_id, tid


def test_stuck_run_is_recovered(env, workers, celery):
    """VISIBILITY_TIMEOUT: a PARSING run whose heartbeat stopped, with no live owner and
    no retry pending, is re-enqueued as a retry by a running worker and completes with
    retry_count 1."""
    run_id, tid = strand_run(env, workers, celery)
    w = workers.start(VISIBILITY_TIMEOUT=1, HEARTBEAT_INTERVAL=0.3)
    run = wait_final(env, run_id, timeout=30, workers=[w])
    assert run["status"] == "COMPLETE", "%r\n%s" % (run, w.tail())
    run = assert_parsed_once(env, run_id, pal_expected(), retry_count=1)
    assert run["task_id"] == tid


def test_stuck_run_with_retries_spent_fails(env, workers, celery):
    run_id, _ = strand_run(env, workers, celery, retries=3)
    w = workers.start(VISIBILITY_TIMEOUT=1, HEARTBEAT_INTERVAL=0.3, MAX_RETRIES=3)
    run = wait_final(env, run_id, timeout=30, workers=[w])
    assert run["status"] == "FAILED", "%r\n%s" % (run, w.tail())
    assert run["error_message"].startswith("Failed after 3 retries: "), run["error_message"]
    assert run["metrics"]["error_type"] == "transient_exhausted", run["metrics"]
    assert run["retry_count"] == 3, run
    assert_untouched(env, run_id)


def test_backlogged_run_is_not_recovered(env, workers, celery):
    """A run the application marked PARSING whose message no worker has taken yet (a
    backlog) is not stuck, however old its heartbeat: the sweeper leaves it alone and the
    message runs it normally, retry_count 0."""
    other = faults.unique_queue("failures", "backlog")
    workers.extra_queues.append(other)
    w = workers.start(VISIBILITY_TIMEOUT=1, HEARTBEAT_INTERVAL=0.3)
    run_id = create_run(env, INPUTS, "SINGLE_CONF")
    enqueue(env, celery, run_id, other)  # a queue no worker consumes yet
    env.scalar("UPDATE ingestion_runs SET last_heartbeat = now() - interval '1 hour'"
               " WHERE id = %s RETURNING id", (run_id,))
    time.sleep(3)  # several sweeps (every second with VISIBILITY_TIMEOUT=1)
    run = run_row(env, run_id)
    assert (run["status"], run["retry_count"], run["error_message"]) == \
        ("PARSING", 0, None), run
    assert env.ctl_counts(other) == (1, 0)
    w2 = workers.start(queue=other)
    wait_final(env, run_id, workers=[w, w2])
    assert_parsed_once(env, run_id, INPUTS_EXPECTED, retry_count=0)


def test_run_waiting_for_its_retry_is_not_recovered(env, workers, celery):
    """A run whose retry waits in Q.retry.5s ages past VISIBILITY_TIMEOUT=1 without being
    touched: it completes from that retry (not earlier), with retry_count 1."""
    w = workers.start(RETRY_DELAYS="5", VISIBILITY_TIMEOUT=1, HEARTBEAT_INTERVAL=0.3)
    name, data = pal_upload()
    run_id = create_run(env, {"name": name, "data": data, "store": False})
    t0 = time.time()
    enqueue(env, celery, run_id, workers.queue)
    wait_until(lambda: run_row(env, run_id)["retry_count"] == 1, 30, "first transient failure")
    waiting = run_row(env, run_id)
    faults.store_blob(env, run_id, name, data)
    while time.time() < t0 + 4:  # while the retry waits, nothing changes the row
        r = run_row(env, run_id)
        assert (r["status"], r["retry_count"], r["error_message"]) == \
            (waiting["status"], 1, waiting["error_message"]), r
        time.sleep(0.1)
    run = wait_final(env, run_id, workers=[w])
    assert run["completed_at"].timestamp() >= t0 + 5, "completed before its retry's eta"
    assert_parsed_once(env, run_id, pal_expected(), retry_count=1)


def test_run_with_a_live_owner_is_not_recovered(env, workers, celery):
    """While the run executes, the test keeps pushing its heartbeat an hour back: the
    executor still holds the run, so the sweeper must leave it alone. The run completes
    once, from its only delivery."""
    w = workers.start(VISIBILITY_TIMEOUT=1, HEARTBEAT_INTERVAL=0.3,
                      CWORKER_DEBUG_ENTRY_DELAY_MS=250)
    run_id, task_id = submit(env, celery, pal_upload(), workers.queue)
    deadline = time.time() + 60
    while time.time() < deadline:
        st = env.scalar("UPDATE ingestion_runs SET last_heartbeat = now() - interval '1 hour'"
                        " WHERE id = %s AND status = 'PARSING' RETURNING status", (run_id,))
        if st is None:
            break
        time.sleep(0.1)
    wait_final(env, run_id, workers=[w])
    assert_parsed_once(env, run_id, pal_expected(), retry_count=0)
    faults.wait_queue_settled(env, workers.queue)
    time.sleep(1.5)  # a wrongly published retry (1 s) would have been received by now
    received = faults.log_count(w, r"%s[^\n]*received" % task_id)
    assert received == 1, "task received %d times:\n%s" % (received, w.tail())
    assert run_row(env, run_id)["retry_count"] == 0


# ============================================================================ crashes


@pytest.mark.parametrize("sig", [
    pytest.param(signal.SIGKILL, id="SIGKILL",
                 marks=pytest.mark.expect_log_errors(executor_died(signal.SIGKILL))),
    pytest.param(signal.SIGSEGV, id="SIGSEGV",
                 marks=pytest.mark.expect_log_errors(executor_died(signal.SIGSEGV)))])
def test_executor_killed_mid_run_is_redone_once(env, workers, celery, sig):
    # The SIGSEGV is injected from outside: under an AddressSanitizer build, ASan's own SEGV
    # handler would report it as a memory error. handle_segv=0 lets the signal kill the
    # executor as it does in a production build; every other sanitizer check stays on.
    asan = {"ASAN_OPTIONS": "handle_segv=0"} if sig == signal.SIGSEGV else {}
    w = workers.start(CONCURRENCY=1, HEARTBEAT_INTERVAL=0.3, CWORKER_DEBUG_ENTRY_DELAY_MS=200,
                      **asan)
    run_id, task_id = submit(env, celery, pal_upload(), workers.queue)
    base = run_row(env, run_id)["last_heartbeat"]
    wait_started(env, run_id, base)
    time.sleep(0.5)
    (pid,) = children(w.proc.pid)
    assert run_row(env, run_id)["status"] == "PARSING", "run ended before the kill"
    faults.kill(pid, sig)
    run = wait_final(env, run_id, workers=[w])
    assert run["status"] == "COMPLETE", "%r\n%s" % (run, w.tail())
    assert_parsed_once(env, run_id, pal_expected())
    assert run["task_id"] == task_id
    assert not faults.alive(pid)
    faults.wait_queue_settled(env, workers.queue)
    assert env.ready(workers.queue + ".dead") == 0


def test_worker_killed_mid_run_then_restarted(env, workers, celery):
    """SIGKILL the whole worker (supervisor) while a run is PARSING: its executors go
    with it, the delivery returns to the queue, and a new worker completes the run once."""
    w1 = workers.start(CONCURRENCY=2, HEARTBEAT_INTERVAL=0.3, CWORKER_DEBUG_ENTRY_DELAY_MS=200)
    run_ids = [submit(env, celery, pal_upload(), workers.queue)[0] for _ in range(2)]
    base = run_row(env, run_ids[0])["last_heartbeat"]
    wait_started(env, run_ids[0], base)
    time.sleep(0.5)
    execs = children(w1.proc.pid)
    assert execs
    assert run_row(env, run_ids[0])["status"] == "PARSING", "run ended before the kill"
    w1.expected_exit = True
    faults.kill(w1.proc.pid, signal.SIGKILL)
    w1.proc.wait()
    assert faults.wait_gone(execs, 15), "executors outlived their supervisor"
    for r in run_ids:
        assert run_row(env, r)["status"] == "PARSING"
    w2 = workers.start()
    for r in run_ids:
        wait_final(env, r, workers=[w2])
        assert_parsed_once(env, r, pal_expected())
    faults.wait_queue_settled(env, workers.queue)


@pytest.mark.expect_log_errors(executor_died(signal.SIGKILL))
def test_task_that_kills_its_executor_every_time_ends_failed(env, workers, celery):
    """Simulated crash loop: every attempt's executor is SIGKILLed once it has claimed
    the run. The run must end FAILED after a bounded number of attempts (at most 8 here)
    instead of looping, with no rows, and the message must not stay in the queue."""
    w = workers.start(CONCURRENCY=1, CWORKER_DEBUG_ENTRY_DELAY_MS=300, MAX_RETRIES=3)
    run_id, task_id = submit(env, celery, pal_upload(), workers.queue)
    kills = 0
    # Each claim counts its attempt in cworker_tasks (the run's last_heartbeat cannot tell:
    # a claim made before the test first reads it looks like no claim at all).
    seen = None
    while kills < 8:
        def claimed_or_final():
            r = run_row(env, run_id)
            attempt = env.rows("SELECT attempts, attempt_retries FROM cworker_tasks"
                               " WHERE task_id = %s", (task_id,))
            return r if r["status"] in faults.FINAL or (attempt and attempt != seen) else None
        r = wait_until(claimed_or_final, 60, "attempt %d of run %s\n%s" % (kills + 1, run_id,
                                                                          w.tail()))
        if r["status"] in faults.FINAL:
            break
        seen = env.rows("SELECT attempts, attempt_retries FROM cworker_tasks WHERE task_id = %s",
                        (task_id,))
        time.sleep(0.3)
        r = run_row(env, run_id)
        if r["status"] in faults.FINAL:
            break
        for pid in children(w.proc.pid):
            faults.kill(pid)
        kills += 1
    run = wait_final(env, run_id, workers=[w])
    assert run["status"] == "FAILED", "still %r after %d kills\n%s" % (run, kills, w.tail())
    assert kills >= 1
    assert run["error_message"], run
    assert_untouched(env, run_id)
    faults.wait_queue_settled(env, workers.queue)


# ============================================================================ duplicates


def test_same_run_published_twice_at_once_executes_once(env, workers, celery):
    """Two clicks on "parse": two task ids for one run, both in flight at once on a
    2-executor worker. One set of rows."""
    w = workers.start(CONCURRENCY=2, CWORKER_DEBUG_ENTRY_DELAY_MS=100)
    run_id = create_run(env, pal_upload())
    enqueue(env, celery, run_id, workers.queue)
    enqueue(env, celery, run_id, workers.queue)
    wait_final(env, run_id, workers=[w])
    faults.wait_queue_settled(env, workers.queue)
    time.sleep(0.5)
    assert_parsed_once(env, run_id, pal_expected(), retry_count=0)
    assert env.ready(workers.queue + ".dead") == 0


def test_run_whose_lock_stays_held_is_dropped_after_the_lock_wait(env, workers, celery):
    """Another session holds the run's advisory lock (an execution that never ends): the
    claim waits its 30 s lock timeout, then the delivery is dropped (skipped) without
    touching the run: the claim statement queued behind the lock never ran, so there is
    no cworker_tasks row, no rows, and the run is still as the application left it."""
    w = workers.start(CONCURRENCY=1)
    run_id = create_run(env, pal_upload())
    holder = env.producer_conn()
    holder.autocommit = True
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s::bigint)", (run_id,))
        tid = enqueue(env, celery, run_id, workers.queue)
        wait_until(lambda: faults.log_count(
            w, r"run %d is still being executed by another delivery after 30 s" % run_id),
            60, "the delivery dropped after the lock wait")
        faults.wait_queue_settled(env, workers.queue)
        assert env.scalar("SELECT count(*) FROM cworker_tasks WHERE task_id = %s", (tid,)) == 0
        assert faults.row_counts(env, run_id)["stanzas"] == 0
        row = run_row(env, run_id)
        assert (row["status"], row["task_id"]) == ("PARSING", tid), row
    finally:
        holder.close()


def test_same_message_delivered_twice_at_once_executes_once(env, workers, celery):
    """The very same message (one task id) twice, as a duplicated publish would give."""
    w = workers.start(CONCURRENCY=2, CWORKER_DEBUG_ENTRY_DELAY_MS=100)
    run_id = create_run(env, pal_upload())
    tid = str(uuid.uuid4())
    headers = producer.celery_v2_headers(tid, args=[run_id])
    props = {"correlation_id": tid, "reply_to": celery.thread_oid}
    for _ in range(2):
        producer.publish_raw(env.broker_url, workers.queue, producer.celery_v2_body([run_id]),
                             headers=headers, properties=props)
    pconn = env.producer_conn()
    producer.mark_parsing(pconn, run_id, tid)
    pconn.close()
    wait_final(env, run_id, workers=[w])
    faults.wait_queue_settled(env, workers.queue)
    time.sleep(0.5)
    run = assert_parsed_once(env, run_id, pal_expected(), retry_count=0)
    assert run["task_id"] == tid


def test_late_commit_of_a_duplicate_click_is_undone(env, workers, celery):
    """Two clicks race (both saw STORED): the application publishes task 1 and task 2,
    then commits PARSING for each. The worker finishes the run with task 1 and settles
    task 2 as a duplicate before the commits land. CONTRACT 1.5: the run must not be left
    PARSING by the late commit - whichever task id it names - and is not re-parsed."""
    w = workers.start()
    run_id = create_run(env, INPUTS, "SINGLE_CONF")
    t1 = producer.send_parse_run(celery, run_id, queue=workers.queue)
    t2 = producer.send_parse_run(celery, run_id, queue=workers.queue)
    wait_final(env, run_id, workers=[w])
    wait_until(lambda: faults.log_count(w, r"%s[^\n]*received" % t2) >= 1, 20,
               "second click's task received\n" + w.tail())
    faults.wait_queue_settled(env, workers.queue)
    done = assert_parsed_once(env, run_id, INPUTS_EXPECTED, retry_count=0)
    pconn = env.producer_conn()
    producer.mark_parsing(pconn, run_id, t1)  # the application's late commits
    producer.mark_parsing(pconn, run_id, t2)
    pconn.close()
    deadline = time.time() + 15
    run = None
    while time.time() < deadline:
        run = run_row(env, run_id)
        if run["status"] != "PARSING":
            break
        time.sleep(0.2)
    assert run["status"] == "COMPLETE", "left %s by the late commit of task %s: %r" % (
        run["status"], t2, run)
    assert run["completed_at"] == done["completed_at"] and run["metrics"] == done["metrics"]
    assert_parsed_once(env, run_id, INPUTS_EXPECTED, retry_count=0)


def test_redelivery_for_a_complete_run_changes_nothing(env, workers, celery):
    """The ack was lost: the same task id arrives again for a COMPLETE run."""
    w = workers.start()
    run_id, task_id = submit(env, celery, INPUTS, workers.queue, run_type="SINGLE_CONF")
    wait_final(env, run_id, workers=[w])
    before = assert_parsed_once(env, run_id, INPUTS_EXPECTED, retry_count=0)
    counts = faults.row_counts(env, run_id)
    producer.publish_raw(env.broker_url, workers.queue, producer.celery_v2_body([run_id]),
                         headers=producer.celery_v2_headers(task_id, args=[run_id]),
                         properties={"correlation_id": task_id,
                                     "reply_to": celery.thread_oid})
    wait_until(lambda: faults.log_count(w, r"%s[^\n]*received" % task_id) >= 2, 20,
               "second delivery received\n" + w.tail())
    faults.wait_queue_settled(env, workers.queue)
    time.sleep(0.5)
    after = run_row(env, run_id)
    assert after == before
    assert faults.row_counts(env, run_id) == counts
    assert env.ready(workers.queue + ".dead") == 0


# ============================================================================ eta / expires


def test_eta_is_honoured_and_does_not_block_later_runs(env, workers, celery):
    """countdown=4 on a one-executor worker: the run does not finish before its eta,
    and a run published after it is not held up behind it (Celery raises its prefetch
    for eta tasks for the same reason)."""
    w = workers.start(CONCURRENCY=1)
    late_id = create_run(env, INPUTS, "SINGLE_CONF")
    now_id = create_run(env, INPUTS, "SINGLE_CONF")
    t0 = time.time()
    enqueue(env, celery, late_id, workers.queue, countdown=4)
    enqueue(env, celery, now_id, workers.queue)
    wait_final(env, now_id, timeout=30, workers=[w])
    late = run_row(env, late_id)
    assert late["status"] == "PARSING" and late["completed_at"] is None, \
        "the run published after the eta task was held up behind it (eta run: %r)" % late
    run_now = assert_parsed_once(env, now_id, INPUTS_EXPECTED, retry_count=0)
    run_late = wait_final(env, late_id, timeout=30, workers=[w])
    assert_parsed_once(env, late_id, INPUTS_EXPECTED, retry_count=0)
    assert run_late["completed_at"].timestamp() >= t0 + 4, (run_late["completed_at"], t0)
    assert run_now["completed_at"] < run_late["completed_at"]
    faults.wait_queue_settled(env, workers.queue)


def assert_left_as_the_producer_left_it(env, run_id, task_id, marked):
    run = run_row(env, run_id)
    for k in ("status", "task_id", "started_at", "last_heartbeat", "retry_count",
              "error_message", "error_traceback", "completed_at", "metrics"):
        assert run[k] == marked[k], (k, run, marked)
    assert run["status"] == "PARSING" and run["task_id"] == task_id
    assert_untouched(env, run_id)


def test_expired_message_is_not_run(env, workers, celery):
    """expires= in the past, published by hand (no AMQP expiration, so the broker cannot
    drop it first): acked, logged as revoked (expired), the run left as the producer left
    it."""
    w = workers.start()
    run_id = create_run(env, INPUTS, "SINGLE_CONF")
    tid = str(uuid.uuid4())
    past = (datetime.datetime.now(datetime.timezone.utc)
            - datetime.timedelta(minutes=5)).isoformat()
    producer.publish_raw(env.broker_url, workers.queue, producer.celery_v2_body([run_id]),
                         headers=producer.celery_v2_headers(tid, args=[run_id], expires=past),
                         properties={"correlation_id": tid, "reply_to": celery.thread_oid})
    pconn = env.producer_conn()
    producer.mark_parsing(pconn, run_id, tid)
    pconn.close()
    marked = run_row(env, run_id)
    assert w.wait_log(r"%s[^\n]*(revoked|expired)|(revoked|expired)[^\n]*%s" % (tid, tid), 20), \
        "worker log never says the task was revoked/expired:\n" + w.tail()
    faults.wait_queue_settled(env, workers.queue)
    time.sleep(0.5)
    assert_left_as_the_producer_left_it(env, run_id, tid, marked)
    assert env.ready(workers.queue + ".dead") == 0
    retire(env, run_id)


def test_expired_message_from_celery_is_not_run(env, workers, celery):
    """send_task(expires=<past datetime>): Celery 5.2 also sets AMQP expiration 0, so the
    broker may drop it itself; either way the run is not executed and nothing is left in
    the queue."""
    w = workers.start()
    run_id = create_run(env, INPUTS, "SINGLE_CONF")
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    task_id = enqueue(env, celery, run_id, workers.queue, expires=past)
    marked = run_row(env, run_id)
    faults.wait_queue_settled(env, workers.queue)
    time.sleep(1.0)
    assert_left_as_the_producer_left_it(env, run_id, task_id, marked)
    # The worker goes on with the next one.
    ok_id, _ = submit(env, celery, INPUTS, workers.queue, run_type="SINGLE_CONF")
    wait_final(env, ok_id, workers=[w])
    assert_parsed_once(env, ok_id, INPUTS_EXPECTED)
    assert_left_as_the_producer_left_it(env, run_id, task_id, marked)
    retire(env, run_id)


# ============================================================================ shutdown


def started_runs(env, run_ids, baselines):
    return [r for r in run_ids if run_row(env, r)["last_heartbeat"] != baselines[r]]


def test_sigterm_finishes_running_tasks_and_leaves_the_rest(env, workers, celery):
    """SIGTERM with 2 runs executing and 3 waiting: no new task starts, the 2 finish within
    SHUTDOWN_GRACE, the worker exits 0, the 3 stay in the queue untouched; a second
    worker completes them. Every run exactly once."""
    w1 = workers.start(CONCURRENCY=2, HEARTBEAT_INTERVAL=0.3, SHUTDOWN_GRACE=30,
                       CWORKER_DEBUG_ENTRY_DELAY_MS=150)
    run_ids = [submit(env, celery, pal_upload(), workers.queue)[0] for _ in range(5)]
    baselines = dict((r, run_row(env, r)["last_heartbeat"]) for r in run_ids)
    running = wait_until(lambda: (lambda s: s if len(s) >= 2 else None)(
        started_runs(env, run_ids, baselines)), 30, "two runs executing\n" + w1.tail())
    unfinished = [r for r in running if run_row(env, r)["status"] == "PARSING"]
    assert unfinished, "runs finished before SIGTERM: is CWORKER_DEBUG_ENTRY_DELAY_MS honoured?"
    w1.proc.send_signal(signal.SIGTERM)
    rc = w1.proc.wait(60)
    w1.expected_exit = True  # checked here
    assert rc == 0, w1.tail()
    for r in running:
        run = run_row(env, r)
        assert run["status"] == "COMPLETE", "in-flight run %s not finished: %r\n%s" % (
            r, run, w1.tail())
    rest = [r for r in run_ids if r not in running]
    for r in rest:
        run = run_row(env, r)
        assert run["status"] == "PARSING" and run["completed_at"] is None, run
        assert run["last_heartbeat"] == baselines[r], "run %s was started" % r
        assert_untouched(env, r)
    faults.wait_counts(env, workers.queue, (len(rest), 0))  # never started: still queued
    done = dict((r, run_row(env, r)) for r in running)

    w2 = workers.start()
    for r in run_ids:
        wait_final(env, r, workers=[w2])
        assert_parsed_once(env, r, pal_expected(), retry_count=0)
    for r in running:  # not redone
        assert run_row(env, r)["completed_at"] == done[r]["completed_at"]
    faults.wait_queue_settled(env, workers.queue)


def test_second_sigterm_stops_at_once(env, workers, celery):
    """A second SIGTERM does not wait for the running tasks (runs of ~6 s here): they are
    stopped unfinished, their deliveries go back unacked, and another worker completes
    every run exactly once."""
    w1 = workers.start(CONCURRENCY=2, HEARTBEAT_INTERVAL=0.3, SHUTDOWN_GRACE=60,
                       CWORKER_DEBUG_ENTRY_DELAY_MS=400)
    run_ids = [submit(env, celery, pal_upload(), workers.queue)[0] for _ in range(3)]
    baselines = dict((r, run_row(env, r)["last_heartbeat"]) for r in run_ids)
    running = wait_until(lambda: (lambda s: s if len(s) >= 2 else None)(
        started_runs(env, run_ids, baselines)), 30, "two runs executing\n" + w1.tail())
    execs = children(w1.proc.pid)
    w1.expected_exit = True  # the exit status of a forced stop is not pinned
    w1.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    w1.proc.send_signal(signal.SIGTERM)
    try:
        w1.proc.wait(20)
    except Exception:
        pytest.fail("worker still running 20 s after the second SIGTERM:\n" + w1.tail())
    assert faults.wait_gone(execs, 10), "executors kept running after the forced stop"
    for r in running:
        run = run_row(env, r)
        assert run["status"] == "PARSING", "run %s finished: the stop was not immediate" % r
        assert_untouched(env, r)
    faults.wait_counts(env, workers.queue, (3, 0))  # all 3 deliveries back, unacked

    w2 = workers.start()
    for r in run_ids:
        wait_final(env, r, workers=[w2])
        assert_parsed_once(env, r, pal_expected(), retry_count=0)
    faults.wait_queue_settled(env, workers.queue)
