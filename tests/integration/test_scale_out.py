"""Scale-out (issue 4): three `cworker run` processes consume one queue. A few hundred runs
published by Python Celery, the application's way (publish, then commit PARSING), each
end COMPLETE exactly once -- the right stanza rows, no duplicates, one execution -- and
every worker did part of the work."""

import json
import time
import uuid

import pytest

import producer
from conftest import start_worker

RUNS = 240
WORKERS = 3
TIMEOUT = 90.0


def conf_upload(i):
    """A small inputs.conf with 1-7 stanzas (so each run has its own expected count)."""
    n = i % 7 + 1
    lines = []
    for k in range(n):
        lines.append("[monitor:///var/log/app%d/file%d.log]" % (i, k))
        lines.append("index = idx%d" % (k % 3))
        lines.append("sourcetype = st:%d" % i)
        lines.append("disabled = %s" % ("true" if k % 2 else "false"))
        lines.append("")
    return ("inputs.conf", "\n".join(lines).encode()), n


@pytest.fixture
def workers(env, tmp_path):
    queue = "cwit.scale_out.%s" % uuid.uuid4().hex[:8]
    ws = [start_worker(env, queue, tmp_path / ("worker%d.log" % i),
                       {"CONCURRENCY": "2", "LOG_FORMAT": "json",
                        "CWORKER_NODENAME": "scale%d@test" % i})
          for i in range(WORKERS)]
    yield queue, ws
    rcs = [w.stop() for w in ws]
    env.delete_queues(queue, queue + ".dead", queue + ".retry.60s", queue + ".retry.180s",
                      queue + ".retry.600s")
    for w, rc in zip(ws, rcs):
        w.check_log()
        assert rc == 0, "worker exited %s:\n%s" % (rc, w.tail())


def finished_lines(worker):
    """(run_id, outcome word) of each task-finished line in a JSON log."""
    out = []
    for line in worker.log().splitlines():
        rec = json.loads(line)
        msg = rec.get("msg", "")
        words = msg.split()
        # The executor's line: "task <name> <outcome> in <seconds> s". The supervisor's
        # lines about a task ("task <name> <id> received ...") carry run_id too.
        if (rec.get("run_id") and msg.startswith("task " + producer.TASK_NAME + " ")
                and len(words) > 3 and words[3] == "in"):
            out.append((rec["run_id"], words[2]))
    return out


def test_three_workers_share_one_queue(env, workers):
    queue, ws = workers
    celery = producer.celery_app(env.broker_url)
    pconn = env.producer_conn()
    expected = {}
    started = time.time()
    for i in range(RUNS):
        upload, n = conf_upload(i)
        run_id, _ = producer.create_run(pconn, [upload], str(env.storage),
                                        run_type="SINGLE_CONF")
        producer.enqueue(pconn, celery, run_id, queue=queue)
        expected[run_id] = n
    pconn.close()
    ids = list(expected)

    deadline = started + TIMEOUT
    while True:
        left = env.scalar("SELECT count(*) FROM ingestion_runs WHERE id = ANY(%s)"
                          " AND status NOT IN ('COMPLETE', 'FAILED')", (ids,))
        if left == 0:
            break
        for w in ws:
            assert w.alive(), "a worker died:\n%s" % w.tail()
        if time.time() > deadline:
            pytest.fail("%d of %d runs unfinished after %.0f s" % (left, RUNS, TIMEOUT))
        time.sleep(0.3)

    runs = {r["id"]: r for r in env.rows(
        "SELECT id, status, retry_count, metrics, task_id FROM ingestion_runs"
        " WHERE id = ANY(%s)", (ids,))}
    assert {r["status"] for r in runs.values()} == {"COMPLETE"}
    assert {r["retry_count"] for r in runs.values()} == {0}

    # Stanza rows: the expected number per run, no duplicates.
    counts = {r["run_id"]: r for r in env.rows(
        "SELECT run_id, count(*) AS n, count(DISTINCT (source_path, order_in_file)) AS d,"
        " min(order_in_file) AS lo, max(order_in_file) AS hi FROM stanzas"
        " WHERE run_id = ANY(%s) GROUP BY run_id", (ids,))}
    inputs = dict((r["run_id"], r["n"]) for r in env.rows(
        "SELECT run_id, count(*) AS n FROM inputs WHERE run_id = ANY(%s) GROUP BY run_id",
        (ids,)))
    for run_id, n in expected.items():
        c = counts.get(run_id)
        assert c is not None, "run %d has no stanza rows" % run_id
        assert (c["n"], c["d"], c["lo"], c["hi"]) == (n, n, 0, n - 1), (run_id, c)
        assert inputs.get(run_id) == n, run_id
        assert runs[run_id]["metrics"]["stanzas_created"] == n

    # One task per run, executed once (no redelivery ran it a second time).
    tasks = env.rows("SELECT run_id, status, attempts FROM cworker_tasks WHERE run_id = ANY(%s)",
                     (ids,))
    assert len(tasks) == RUNS
    assert {(t["status"], t["attempts"]) for t in tasks} == {("COMPLETE", 1)}

    # Every worker did part of the work, and each run finished in exactly one of them.
    per_worker = [finished_lines(w) for w in ws]
    for i, lines in enumerate(per_worker):
        assert lines, "worker %d ran no task:\n%s" % (i, ws[i].tail())
        assert {outcome for _, outcome in lines} == {"succeeded"}, lines
    done = [run_id for lines in per_worker for run_id, _ in lines]
    assert sorted(done) == sorted(ids)
    assert time.time() - started < TIMEOUT
