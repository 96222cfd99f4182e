"""parse_run end to end: real uploads of the Splunk_TA_paloalto app and failure cases,
published exactly as the Python application publishes them (tests/py/producer.py).

Expected rows come from an independent Python reader of the same files
(tests/py/splunk_conf_ref.py). Its stanza counts agree with a plain header count
(`grep -c '^\\s*\\['` gives 181 for the 16 .conf files): no paloalto file has settings before
its first header, and no continued line starts with `[`.
"""

import hashlib
import json
import time

import pytest

import producer
import splunk_conf_ref
from conftest import PALOALTO, paloalto_reference, paloalto_upload, wait_for_final_status

TYPED = ("inputs", "props", "transforms", "indexes", "outputs", "serverclasses")
SECRETS = ("cworker:cworker", "guest:guest", "postgres:postgres", "password")

PAN_LOG_TRANSFORMS = [
    "pan_threat", "pan_traffic", "pan_system", "pan_config", "pan_hipmatch",
    "pan_correlation", "pan_userid", "pan_traps4", "pan_threat_traps",
    "pan_analytics_traps", "pan_system_traps", "pan_config_traps",
]


def submit(env, celery, upload, run_type="APP_BUNDLE", **kw):
    pconn = env.producer_conn()
    try:
        run_id, file_ids = producer.create_run(pconn, [upload], str(env.storage),
                                               run_type=run_type)
        task_id = producer.enqueue(pconn, celery, run_id, **kw)
    finally:
        pconn.close()
    return run_id, file_ids, task_id


def stanza_rows(env, run_id):
    return env.rows("SELECT * FROM stanzas WHERE run_id = %s ORDER BY source_path, order_in_file",
                    (run_id,))


def expected_rows(tree):
    """[(source_path, order_in_file, conf_type, name, raw_kv)] from the reference reader."""
    out = []
    for path in sorted(tree):
        for i, (name, kv) in enumerate(tree[path]):
            out.append((path, i, splunk_conf_ref.conf_type(path), name, kv))
    return out


def assert_complete(env, run_id, task_id, files_parsed, stanzas, typed):
    run = env.run(run_id)
    assert run["status"] == "COMPLETE", run
    assert run["completed_at"] is not None
    assert run["started_at"] is not None and run["started_at"] <= run["completed_at"]
    assert run["error_message"] is None and run["error_traceback"] is None
    assert run["task_id"] == task_id
    assert run["retry_count"] == 0
    m = run["metrics"]
    assert isinstance(m, dict), m
    for k in ("files_parsed", "stanzas_created", "typed_projections", "duration_seconds",
              "parse_errors", "retry_count"):
        assert k in m, (k, m)
    assert m["files_parsed"] == files_parsed
    assert m["stanzas_created"] == stanzas
    assert m["parse_errors"] == 0
    assert m["retry_count"] == 0
    assert isinstance(m["duration_seconds"], (int, float)) and m["duration_seconds"] >= 0
    assert set(m["typed_projections"]) == set(TYPED), m["typed_projections"]
    assert m["typed_projections"] == typed
    for t in TYPED:
        assert env.scalar("SELECT count(*) FROM %s WHERE run_id = %%s" % t, (run_id,)) == typed[t], t
    return run


def check_paloalto_run(env, run_id, file_id, task_id):
    tree = paloalto_reference()
    counts = splunk_conf_ref.counts_by_type(tree)
    assert counts == {"inputs": 3, "props": 25, "transforms": 60, "other": 93}
    typed = {t: counts.get(t, 0) for t in TYPED}
    assert_complete(env, run_id, task_id, files_parsed=len(tree), stanzas=181, typed=typed)

    # Stanza counts per conf_type, and every row exactly as the reference reader sees it.
    got = dict((r["conf_type"], r["n"]) for r in env.rows(
        "SELECT conf_type, count(*) AS n FROM stanzas WHERE run_id = %s GROUP BY 1", (run_id,)))
    assert got == counts
    rows = stanza_rows(env, run_id)
    assert [(r["source_path"], r["order_in_file"], r["conf_type"], r["name"], r["raw_kv"])
            for r in rows] == expected_rows(tree)
    for r in rows:
        assert (r["app"], r["scope"], r["layer"]) == ("Splunk_TA_paloalto", "default", "app"), r
        assert r["file_id"] == file_id

    # A few values straight from the files.
    def one(conf_type, name):
        rs = [r for r in rows if r["conf_type"] == conf_type and r["name"] == name]
        assert len(rs) == 1, (conf_type, name, rs)
        return rs[0]

    pan_log = one("props", "pan:log")
    assert pan_log["source_path"] == "Splunk_TA_paloalto/default/props.conf"
    assert pan_log["raw_kv"]["TRANSFORMS-sourcetype"] == ", ".join(PAN_LOG_TRANSFORMS)
    assert pan_log["raw_kv"]["TIME_PREFIX"] == "^(?:[^,]*,){5}"
    threat = one("props", "pan:threat")
    assert threat["raw_kv"]["REPORT-search"] == (
        "extract_threat, extract_threat_id, extract_threat_name, extract_dest_hostname, "
        "extract_http_referrer_name, extract_major_content_type, extract_filename")
    feed = one("inputs", "minemeld_feed")
    assert feed["raw_kv"] == {"index": "default", "start_by_shell": "false",
                              "sourcetype": "pan:minemeld", "interval": "30"}
    assert feed["source_path"] == "Splunk_TA_paloalto/default/inputs.conf"
    # The commented-out threatlist:// stanzas are comments, not stanzas.
    assert not [r for r in rows if r["name"].startswith("threatlist://")]
    # A value continued over several lines keeps its line breaks, loses the backslashes.
    cam = [r for r in rows if r["source_path"].endswith("alert_actions.conf")][0]
    assert cam["raw_kv"]["param._cam"].startswith('{\n    "category" :')
    assert "\\" not in cam["raw_kv"]["param._cam"]

    # Typed projections.
    p = env.row("SELECT * FROM props WHERE run_id = %s AND target = 'pan:log'", (run_id,))
    assert p["transforms_list"] == PAN_LOG_TRANSFORMS
    t = env.row("SELECT * FROM transforms WHERE run_id = %s AND name = 'pan_threat'", (run_id,))
    assert t["dest_key"] == "MetaData:Sourcetype"
    assert t["regex"] == "^[^,]+,[^,]+,[^,]+,THREAT,"
    assert t["format"] == "sourcetype::pan:threat"
    assert t["writes_meta_sourcetype"] is True
    assert t["writes_meta_index"] is False
    i = env.row("SELECT * FROM inputs WHERE run_id = %s AND source_path LIKE '%%inputs.conf'"
                " AND index = 'default' AND sourcetype = 'AutoFocus'", (run_id,))
    assert i is not None
    assert i["disabled"] is None
    assert i["kv"] == {"start_by_shell": "false", "interval": "3200"}
    assert (i["app"], i["scope"], i["layer"]) == ("Splunk_TA_paloalto", "default", "app")
    ap = env.row("SELECT * FROM inputs WHERE run_id = %s AND sourcetype = 'pan:aperture'",
                 (run_id,))
    assert ap["index"] is None and ap["kv"] is None


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_paloalto_app(env, worker, celery, fmt):
    upload = paloalto_upload(fmt)
    run_id, (file_id,), task_id = submit(env, celery, upload, queue=worker.queue)
    wait_for_final_status(env, run_id, worker=worker)
    check_paloalto_run(env, run_id, file_id, task_id)


def test_paloalto_app_run_id_as_kwargs(env, worker, celery):
    run_id, (file_id,), task_id = submit(env, celery, paloalto_upload("tar"),
                                         queue=worker.queue, as_kwargs=True)
    wait_for_final_status(env, run_id, worker=worker)
    check_paloalto_run(env, run_id, file_id, task_id)


def test_single_props_conf(env, worker, celery):
    path = PALOALTO / "default" / "props.conf"
    data = path.read_bytes()
    run_id, (file_id,), task_id = submit(env, celery, ("props.conf", data),
                                         run_type="SINGLE_CONF", queue=worker.queue)
    wait_for_final_status(env, run_id, worker=worker)
    ref = splunk_conf_ref.parse(data.decode())
    assert len(ref) == 25
    run = assert_complete(env, run_id, task_id, files_parsed=1, stanzas=25,
                          typed={"inputs": 0, "props": 25, "transforms": 0, "indexes": 0,
                                 "outputs": 0, "serverclasses": 0})
    assert run["type"] == "SINGLE_CONF"
    rows = stanza_rows(env, run_id)
    assert [(r["order_in_file"], r["name"], r["raw_kv"]) for r in rows] == \
        [(i, n, kv) for i, (n, kv) in enumerate(ref)]
    for r in rows:
        assert r["conf_type"] == "props"
        assert r["source_path"] == "props.conf"
        assert r["file_id"] == file_id
    p = env.row("SELECT * FROM props WHERE run_id = %s AND target = 'pan:log'", (run_id,))
    assert p["transforms_list"] == PAN_LOG_TRANSFORMS


def assert_permanent_failure(env, run_id, prefix, worker):
    run = wait_for_final_status(env, run_id, worker=worker)
    assert run["status"] == "FAILED", run
    assert run["error_message"].startswith(prefix), run["error_message"]
    tb = run["error_traceback"]
    assert tb and tb.strip(), run
    for s in SECRETS:
        assert s not in tb and s not in run["error_message"], s
    m = run["metrics"]
    assert m["error_type"] == "permanent", m
    assert "duration_seconds" in m and m["retry_count"] == 0, m
    assert run["retry_count"] == 0
    assert env.scalar("SELECT count(*) FROM stanzas WHERE run_id = %s", (run_id,)) == 0
    for t in TYPED:
        assert env.scalar("SELECT count(*) FROM %s WHERE run_id = %%s" % t, (run_id,)) == 0
    # Not retried: nothing waits in the retry queues.
    for d in ("60s", "180s", "600s"):
        assert env.ready("%s.retry.%s" % (worker.queue, d)) == 0
    return run


def test_corrupt_archive(env, worker, celery):
    name, data = paloalto_upload("tar.gz")
    broken = data[: len(data) * 6 // 10]  # gzip magic, then the stream stops mid-way
    run_id, _, _ = submit(env, celery, (name, broken), queue=worker.queue)
    assert_permanent_failure(env, run_id, "Permanent error: Invalid archive format", worker)


def test_garbage_gzip(env, worker, celery):
    data = b"\x1f\x8b\x08\x00" + bytes(range(256)) * 8  # gzip header, garbage deflate data
    run_id, _, _ = submit(env, celery, ("Splunk_TA_paloalto.tgz", data), queue=worker.queue)
    assert_permanent_failure(env, run_id, "Permanent error: Invalid archive format", worker)


def test_checksum_mismatch(env, worker, celery):
    name, data = paloalto_upload("tar.gz")
    wrong = hashlib.sha256(b"something else").hexdigest()
    run_id, _, _ = submit(env, celery, {"name": name, "data": data, "sha256": wrong},
                          queue=worker.queue)
    run = assert_permanent_failure(env, run_id, "Permanent error: ", worker)
    msg = run["error_message"].lower()
    assert "checksum" in msg or "sha256" in msg or "sha-256" in msg, run["error_message"]


def test_run_without_files(env, worker, celery):
    pconn = env.producer_conn()
    run_id, _ = producer.create_run(pconn, [], str(env.storage))
    producer.enqueue(pconn, celery, run_id, queue=worker.queue)
    pconn.close()
    run = assert_permanent_failure(env, run_id, "Permanent error: ", worker)
    assert run["error_message"] == "Permanent error: No files found for run %d" % run_id


def test_metrics_is_json_object(env, worker, celery):
    """metrics is a `json` column the application reads with json.loads: a plain object."""
    run_id, _, _ = submit(env, celery, ("inputs.conf",
                                        (PALOALTO / "default" / "inputs.conf").read_bytes()),
                          run_type="SINGLE_CONF", queue=worker.queue)
    wait_for_final_status(env, run_id, worker=worker)
    text = env.scalar("SELECT metrics::text FROM ingestion_runs WHERE id = %s", (run_id,))
    m = json.loads(text)
    assert m["stanzas_created"] == 3 and m["typed_projections"]["inputs"] == 3


def test_missing_blob_is_transient_and_waits_in_retry_queue(env, worker, celery):
    """Storage may be catching up: a missing blob is retried after 60 s (CONTRACT 1.8). We
    only check the first step: the row says so and the retry waits in Q.retry.60s."""
    name, data = paloalto_upload("tar.gz")
    run_id, _, task_id = submit(env, celery, {"name": name, "data": data, "store": False},
                                queue=worker.queue)
    deadline = time.time() + 20
    run = env.run(run_id)
    while time.time() < deadline:
        run = env.run(run_id)
        if run["retry_count"] == 1 or run["status"] in ("COMPLETE", "FAILED"):
            break
        time.sleep(0.1)
    assert run["status"] == "PARSING", run
    assert run["retry_count"] == 1, run
    assert run["error_message"].startswith("Transient error (retry 1): "), run["error_message"]
    msg = env.get_message(worker.queue + ".retry.60s", timeout=5)
    assert msg is not None, worker.tail()
    h = msg["headers"]
    assert h["id"] == task_id and h["retries"] == 1 and h["eta"], h
    assert json.loads(msg["body"])[0] == [run_id]
    assert env.scalar("SELECT count(*) FROM stanzas WHERE run_id = %s", (run_id,)) == 0


def test_max_run_stanzas_is_a_setting(env, workers, celery):
    """MAX_RUN_STANZAS=100: the Palo Alto app's 181 stanzas fail the run for good, with no
    rows left; a permanent error, so no retry."""
    import faults
    workers.start(MAX_RUN_STANZAS="100")
    run_id, _ = faults.submit(env, celery, faults.pal_upload(), workers.queue)
    row = faults.wait_final(env, run_id, timeout=60)
    assert row["status"] == "FAILED" and row["retry_count"] == 0, row
    assert "Archive limit exceeded: more than 100 stanzas in the run" in row["error_message"]
    assert env.scalar("SELECT count(*) FROM stanzas WHERE run_id = %s", (run_id,)) == 0
