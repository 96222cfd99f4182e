"""`cworker migrate` against a real PostgreSQL: schema parity with the app, idempotence,
concurrent starts, and the trigger that undoes the application's late PARSING commit.

Each test gets a fresh database (CREATE DATABASE from ADMIN_DATABASE_URL, owned by the
DATABASE_URL role, which is the role `cworker migrate` runs as). Needs:
  DATABASE_URL, ADMIN_DATABASE_URL  (else taken from `tests/env/services.sh env`)
  CWORKER_BIN                       (else build/cworker)
"""

import os
import re
import subprocess
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

import psycopg2
import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine.url import make_url
from sqlalchemy.orm import Session

REPO = Path(__file__).resolve().parents[2]
MIGRATIONS = REPO / "migrations"
sys.path.insert(0, str(REPO / "tests" / "py"))
import app_models  # noqa: E402
from app_models import IngestionRun, IngestionStatus, IngestionType  # noqa: E402

CWORKER_TABLES = ("cworker_tasks", "cworker_schema_migrations")


def _service_env():
    """DATABASE_URL / ADMIN_DATABASE_URL from the environment, else from services.sh."""
    env = {k: os.environ.get(k) for k in ("DATABASE_URL", "ADMIN_DATABASE_URL")}
    if all(env.values()):
        return env
    out = subprocess.run(
        ["bash", str(REPO / "tests/env/services.sh"), "env"],
        check=True, capture_output=True, text=True,
    ).stdout
    for m in re.finditer(r"^export (\w+)=(.*)$", out, re.M):
        if m.group(1) in env and not env[m.group(1)]:
            env[m.group(1)] = m.group(2).strip("'\"")
    return env


def _url_string(url):
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def urls():
    env = _service_env()
    return make_url(env["DATABASE_URL"]), make_url(env["ADMIN_DATABASE_URL"])


@pytest.fixture(scope="module")
def cworker_bin():
    path = os.environ.get("CWORKER_BIN") or str(REPO / "build" / "cworker")
    if not os.access(path, os.X_OK):
        pytest.fail(f"cworker binary not found at {path} (set CWORKER_BIN or run make)")
    return path


def admin_exec(admin_url, *statements, dbname=None):
    """Runs statements outside a transaction (CREATE/DROP DATABASE need that)."""
    conn = psycopg2.connect(_url_string(admin_url.set(database=dbname or admin_url.database)))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
    finally:
        conn.close()


@pytest.fixture
def fresh_db(urls):
    """A new empty database owned by the worker's role; yields its URL (worker role)."""
    worker_url, admin_url = urls
    name = f"cw_migtest_{uuid.uuid4().hex[:12]}"
    admin_exec(admin_url, f'CREATE DATABASE "{name}" OWNER "{worker_url.username}"')
    yield worker_url.set(database=name)
    admin_exec(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _migrate(cworker_bin, db_url, **popen):
    # LOG_LEVEL=info: the concurrency test counts the "applying migration" lines.
    env = dict(os.environ, DATABASE_URL=_url_string(db_url), LOG_LEVEL="info")
    return subprocess.Popen(
        [cworker_bin, "migrate", "--migrations-dir", str(MIGRATIONS)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen,
    )


def run_migrate(cworker_bin, db_url):
    proc = _migrate(cworker_bin, db_url)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, f"cworker migrate failed ({proc.returncode}):\n{out}\n{err}"
    return err


def _query(db_url, sql, params=None):
    with psycopg2.connect(_url_string(db_url)) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall()
    conn.close()
    return rows


def schema_snapshot(db_url, tables):
    """Everything about `tables` a schema comparison should see, as sorted lists."""
    tables = list(tables)
    columns = _query(db_url, """
        SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod),
               a.attnotnull, pg_get_expr(d.adbin, d.adrelid)
          FROM pg_attribute a
          JOIN pg_class c ON c.oid = a.attrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
          LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE c.relname = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY 1, 2""", (tables,))
    info_schema = _query(db_url, """
        SELECT table_name, column_name, data_type, udt_name, character_maximum_length,
               is_nullable, column_default
          FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name = ANY(%s)
         ORDER BY 1, 2""", (tables,))
    indexes = _query(db_url, """
        SELECT tablename, indexname, indexdef FROM pg_indexes
         WHERE schemaname = 'public' AND tablename = ANY(%s) ORDER BY 1, 2""", (tables,))
    constraints = _query(db_url, """
        SELECT c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid)
          FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
         WHERE c.relname = ANY(%s) ORDER BY 1, 2""", (tables,))
    sequences = _query(db_url, """
        SELECT s.relname, t.relname, a.attname
          FROM pg_class s
          JOIN pg_depend d ON d.objid = s.oid AND d.deptype = 'a'
          JOIN pg_class t ON t.oid = d.refobjid
          JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
         WHERE s.relkind = 'S' AND t.relname = ANY(%s) ORDER BY 1""", (tables,))
    triggers = _query(db_url, """
        SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid)
          FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
         WHERE NOT t.tgisinternal AND c.relname = ANY(%s) ORDER BY 1, 2""", (tables,))
    return {
        "columns": columns,
        "information_schema": info_schema,
        "indexes": indexes,
        "constraints": constraints,
        "sequences": sequences,
        "triggers": triggers,
    }


def create_all(db_url):
    """Stands in for the application's Alembic: the app's schema, made by SQLAlchemy."""
    engine = create_engine(_url_string(db_url))
    app_models.metadata.create_all(engine)
    engine.dispose()


def ledger(db_url):
    return _query(db_url, "SELECT filename, checksum, applied_at FROM cworker_schema_migrations"
                          " ORDER BY filename")


def migration_files():
    return sorted(p.name for p in MIGRATIONS.glob("*.sql"))


# ------------------------------------------------------------------ schema parity


def test_empty_database_gets_exactly_the_app_schema(cworker_bin, fresh_db, urls):
    run_migrate(cworker_bin, fresh_db)

    # The reference: the same schema made by SQLAlchemy in a second fresh database.
    worker_url, admin_url = urls
    ref_name = f"cw_migref_{uuid.uuid4().hex[:12]}"
    admin_exec(admin_url, f'CREATE DATABASE "{ref_name}" OWNER "{worker_url.username}"')
    try:
        ref_url = worker_url.set(database=ref_name)
        create_all(ref_url)
        expected = schema_snapshot(ref_url, app_models.APP_TABLES)
    finally:
        admin_exec(admin_url, f'DROP DATABASE IF EXISTS "{ref_name}" WITH (FORCE)')

    got = schema_snapshot(fresh_db, app_models.APP_TABLES)
    # The worker's trigger on ingestion_runs is its own addition, not the app's schema.
    assert [t[1] for t in got.pop("triggers")] == ["cworker_restore_final_state"]
    expected.pop("triggers")
    for key in expected:
        assert got[key] == expected[key], f"{key} differ"
    # Sanity: the comparison saw every app table and every named index.
    assert {row[0] for row in got["columns"]} == set(app_models.APP_TABLES)
    assert {"ix_stanzas_raw_kv_gin", "idx_ingestion_runs_task_id", "ix_serverclasses_kv_gin",
            "ix_outputs_servers_gin"} <= {row[1] for row in got["indexes"]}
    # Non-native Enum in SQLAlchemy 1.4 makes no CHECK constraint.
    assert not [c for c in got["constraints"] if c[2] == "c"]


def test_alembic_made_database_is_left_alone(cworker_bin, fresh_db):
    create_all(fresh_db)
    with Session(create_engine(_url_string(fresh_db))) as session:
        session.add(IngestionRun(type=IngestionType.DS_ETC, status=IngestionStatus.STORED,
                                 label="before migrate"))
        session.commit()
    before = schema_snapshot(fresh_db, app_models.APP_TABLES)
    rows_before = _query(fresh_db, "SELECT * FROM ingestion_runs ORDER BY id")

    stderr = run_migrate(cworker_bin, fresh_db)

    after = schema_snapshot(fresh_db, app_models.APP_TABLES)
    # Only the worker's trigger is added on the app's table; nothing else changes.
    assert [t[1] for t in after.pop("triggers")] == ["cworker_restore_final_state"]
    assert before.pop("triggers") == []
    assert after == before
    assert _query(fresh_db, "SELECT * FROM ingestion_runs ORDER BY id") == rows_before
    assert [r[0] for r in ledger(fresh_db)] == migration_files()
    assert _query(fresh_db, "SELECT to_regclass('cworker_tasks') IS NOT NULL") == [(True,)]
    assert "ERROR" not in stderr


def test_second_run_is_a_no_op(cworker_bin, fresh_db):
    run_migrate(cworker_bin, fresh_db)
    tables = app_models.APP_TABLES + CWORKER_TABLES
    schema_before, ledger_before = schema_snapshot(fresh_db, tables), ledger(fresh_db)

    run_migrate(cworker_bin, fresh_db)

    assert schema_snapshot(fresh_db, tables) == schema_before
    assert ledger(fresh_db) == ledger_before  # same rows, same applied_at: nothing re-ran
    assert [r[0] for r in ledger_before] == migration_files()
    assert all(re.fullmatch(r"[0-9a-f]{64}", r[1]) for r in ledger_before)


def test_concurrent_starts_both_succeed_and_apply_once(cworker_bin, fresh_db):
    procs = [_migrate(cworker_bin, fresh_db) for _ in range(3)]
    results = [p.communicate(timeout=60) for p in procs]
    for proc, (out, err) in zip(procs, results):
        assert proc.returncode == 0, f"{out}\n{err}"
    names = [r[0] for r in ledger(fresh_db)]
    assert names == migration_files()  # each once (filename is the primary key, too)
    applying = [line for _, err in results for line in err.splitlines()
                if "applying migration" in line]
    assert len(applying) == len(migration_files()), "some migration ran twice"


# ------------------------------------------------------------------ the PARSING race


@pytest.fixture
def app_session(cworker_bin, fresh_db, urls):
    """A migrated database and an ORM session as a role with the app's rights only:
    it can use the app's tables but has no rights at all on cworker_tasks, so the
    trigger works only because its function is SECURITY DEFINER."""
    run_migrate(cworker_bin, fresh_db)
    _, admin_url = urls
    role = f"cw_app_{uuid.uuid4().hex[:10]}"
    admin_exec(
        admin_url,
        f"CREATE ROLE {role} LOGIN PASSWORD 'app'",
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ingestion_runs, files TO {role}",
        f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}",
        dbname=fresh_db.database,
    )
    engine = create_engine(_url_string(fresh_db.set(username=role, password="app")))
    session = Session(engine)
    yield session
    session.close()
    engine.dispose()
    admin_exec(admin_url, f'DROP DATABASE IF EXISTS "{fresh_db.database}" WITH (FORCE)',
               f"DROP ROLE IF EXISTS {role}")


def _new_run(session, status=IngestionStatus.STORED):
    run = IngestionRun(type=IngestionType.DS_ETC, status=status)
    session.add(run)
    session.commit()
    return run.id


def _worker_finishes(db_url, run_id, task_id, status, metrics='{"files_parsed": 1}',
                     error=None):
    """What the worker writes when a task ends: its own record, then the run row."""
    with psycopg2.connect(_url_string(db_url)) as conn, conn.cursor() as cur:
        cur.execute("""INSERT INTO cworker_tasks (task_id, run_id, attempts, status,
                              error_message, metrics, completed_at)
                       VALUES (%s, %s, 1, %s, %s, %s, now())""",
                    (task_id, run_id, status, error, metrics))
        cur.execute("""UPDATE ingestion_runs SET status = %s, task_id = %s, error_message = %s,
                              metrics = %s, completed_at = now()
                        WHERE id = %s RETURNING completed_at""",
                    (status, task_id, error, metrics, run_id))
        completed_at = cur.fetchone()[0]
    conn.close()
    return completed_at


def _app_commits_parsing(session, run_id, task_id):
    """The application's commit after parse_run.delay(): the late write of the race."""
    run = session.get(IngestionRun, run_id)
    run.status = IngestionStatus.PARSING
    run.task_id = task_id
    run.started_at = datetime.now(timezone.utc)
    run.last_heartbeat = datetime.now(timezone.utc)
    run.error_message = None
    run.error_traceback = None
    session.commit()
    session.expire_all()
    return session.get(IngestionRun, run_id)


def test_late_parsing_commit_cannot_overwrite_a_finished_run(app_session, fresh_db):
    run_id = _new_run(app_session)
    completed_at = _worker_finishes(fresh_db, run_id, "task-1", "COMPLETE")

    run = _app_commits_parsing(app_session, run_id, "task-1")

    assert run.status is IngestionStatus.COMPLETE  # loads through the app's Enum
    assert run.completed_at == completed_at
    assert run.metrics == {"files_parsed": 1}
    assert run.task_id == "task-1" and run.started_at is not None  # the rest of NEW kept


def test_late_parsing_commit_cannot_overwrite_a_failed_run(app_session, fresh_db):
    run_id = _new_run(app_session)
    _worker_finishes(fresh_db, run_id, "task-1", "FAILED", metrics=None,
                     error="Permanent error: No files found for run 1")

    run = _app_commits_parsing(app_session, run_id, "task-1")

    assert run.status is IngestionStatus.FAILED
    assert run.error_message == "Permanent error: No files found for run 1"


def test_reparse_with_a_new_task_id_stays_parsing(app_session, fresh_db):
    run_id = _new_run(app_session)
    _worker_finishes(fresh_db, run_id, "task-1", "FAILED", metrics=None, error="boom")

    run = _app_commits_parsing(app_session, run_id, "task-2")

    assert run.status is IngestionStatus.PARSING
    assert run.error_message is None and run.task_id == "task-2"


def test_running_task_does_not_restore(app_session, fresh_db):
    run_id = _new_run(app_session)
    _worker_finishes(fresh_db, run_id, "task-1", "COMPLETE")
    # The worker has started the same task id again and not finished it (status NULL).
    _query(fresh_db, "UPDATE cworker_tasks SET status = NULL WHERE task_id = 'task-1'"
                     " RETURNING 1")

    run = _app_commits_parsing(app_session, run_id, "task-1")

    assert run.status is IngestionStatus.PARSING


def test_lower_case_final_status_from_other_tools_is_recognised(app_session, fresh_db):
    run_id = _new_run(app_session)
    _worker_finishes(fresh_db, run_id, "task-1", "COMPLETE")
    _query(fresh_db, "ALTER TABLE ingestion_runs DISABLE TRIGGER USER; "
                     "UPDATE ingestion_runs SET status = 'complete' WHERE id = %s; "
                     "ALTER TABLE ingestion_runs ENABLE TRIGGER USER; SELECT 1", (run_id,))
    # The app's raw SQL may write the value, too; the trigger compares case-insensitively.
    app_session.execute(
        IngestionRun.__table__.update().where(IngestionRun.id == run_id)
        .values(status="parsing", task_id="task-1"))
    app_session.commit()

    assert _query(fresh_db, "SELECT status FROM ingestion_runs WHERE id = %s",
                  (run_id,)) == [("COMPLETE",)]


# ------------------------------------------------------------------ schema the worker needs


def test_the_worker_names_the_newest_migration():
    """DB_SCHEMA_LATEST (include/db/db.h) is what a new migration must move forward."""
    header = (REPO / "include" / "db" / "db.h").read_text()
    latest = re.search(r'#define DB_SCHEMA_LATEST "([^"]+)"', header).group(1)
    assert latest == migration_files()[-1]


def test_runs_wait_for_a_database_not_migrated_for_the_worker(env, workers, celery):
    """A worker started before `cworker migrate` (a new image, the migrate job still to run)
    fails nothing: each run is requeued with no retry consumed, the log says what to do, and
    once the migration is there the run completes."""
    import faults
    latest = migration_files()[-1]
    conn = env.producer_conn()
    conn.autocommit = True
    with conn.cursor() as cur:
        # As if the newest migration had never run, and 008 with it (008 made cworker_require,
        # which a run's COMMIT needs): `cworker migrate` below applies both again.
        cur.execute("DELETE FROM cworker_schema_migrations WHERE filename IN (%s, %s)",
                    (latest, "008_cworker_require.sql"))
        cur.execute("DROP FUNCTION IF EXISTS cworker_require(boolean, text)")
    try:
        w = workers.start()
        run_id, _ = faults.submit(env, celery, faults.pal_upload(), workers.queue)
        faults.wait_until(lambda: "migration %s is missing" % latest in w.log(), 30,
                          "the worker saying the database is not migrated")
        row = env.run(run_id)
        assert (row["status"], row["retry_count"], row["error_message"]) == ("PARSING", 0, None)
    finally:
        run_migrate(env.bin, make_url(env.database_url))
        conn.close()
    row = faults.wait_final(env, run_id, timeout=90)
    assert (row["status"], row["retry_count"]) == ("COMPLETE", 0)
