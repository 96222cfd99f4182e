/* The claim of a run (db/run_claim.h): lock, claim statement, BEGIN; one round trip. */
#include "db/run_claim.h"
#include "db/db_internal.h"
#include "db/pipeline.h"
#include "base/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOCK_TIMEOUT_STATE "55P03"

/* $1 run id, $2 task id, $3 retries, $4 max attempts, $5 adopt a COMPLETE run's outcome.
 * One row per file when the run was marked (one with NULL file columns when it has none),
 * one row when it was not, none when there is no such run. The data-modifying CTEs see
 * the same snapshot; `marked` depends on `task` through its RETURNING, so a finished or
 * crash-looping task never marks the run. */
static const char CLAIM_SQL[] =
    "WITH run AS (SELECT id, upper(status) AS status FROM ingestion_runs WHERE id = $1::bigint), "
    "adopted AS (INSERT INTO cworker_tasks (task_id, run_id, status, completed_at, "
    "  error_message, error_traceback, metrics) "
    "  SELECT $2, r.id, upper(r.status), r.completed_at, r.error_message, r.error_traceback, "
    "    r.metrics FROM ingestion_runs r JOIN run ON run.id = r.id "
    "   WHERE run.status = 'COMPLETE' AND $5::bool "
    "  ON CONFLICT (task_id) DO NOTHING), "
    "task AS (INSERT INTO cworker_tasks AS t (task_id, run_id, attempts, attempt_retries) "
    "  SELECT $2, id, 1, $3::int FROM run WHERE status IS DISTINCT FROM 'COMPLETE' "
    "  ON CONFLICT (task_id) DO UPDATE SET "
    "    attempts = CASE WHEN t.attempt_retries = EXCLUDED.attempt_retries "
    "                    THEN t.attempts + 1 ELSE 1 END, "
    "    attempt_retries = EXCLUDED.attempt_retries, retry_queue = NULL, updated_at = now() "
    "  RETURNING attempts, coalesce(status, '') AS final_status, result::text AS result), "
    "marked AS (UPDATE ingestion_runs SET status = 'PARSING', task_id = $2, "
    "  retry_count = $3::int, started_at = coalesce(started_at, now()), last_heartbeat = now() "
    "  WHERE id = $1::bigint "
    "    AND EXISTS (SELECT 1 FROM task WHERE final_status = '' AND attempts <= $4::int) "
    "  RETURNING id) "
    "SELECT coalesce(run.status, ''), coalesce(task.attempts, 0), coalesce(task.final_status, ''), "
    "  task.result, m.id IS NOT NULL, "
    "  m.id IS NOT NULL AND EXISTS (SELECT 1 FROM stanzas s WHERE s.run_id = m.id), "
    "  f.id, f.path, f.sha256, f.size_bytes, f.stored_object_key "
    "FROM run LEFT JOIN task ON true LEFT JOIN marked m ON true "
    "  LEFT JOIN files f ON f.run_id = m.id "
    "ORDER BY f.id";

#define CLAIM_NAME "cworker_claim"

enum { C_STATUS, C_ATTEMPTS, C_FINAL, C_RESULT, C_MARKED, C_EARLIER, C_FILE };

static void read_files(const PGresult *res, struct db_claim *c)
{
    int rows = PQntuples(res);
    c->files = cw_xcalloc(rows ? (size_t)rows : 1, sizeof *c->files);
    for (int i = 0; i < rows; i++) {
        if (PQgetisnull(res, i, C_FILE))
            continue; /* the run has no files */
        struct db_file *f = &c->files[c->nfiles++];
        f->id = strtol(PQgetvalue(res, i, C_FILE), NULL, 10);
        f->path = cw_xstrdup(PQgetvalue(res, i, C_FILE + 1));
        f->sha256 = cw_xstrdup(PQgetvalue(res, i, C_FILE + 2));
        f->size_bytes = strtoll(PQgetvalue(res, i, C_FILE + 3), NULL, 10);
        f->stored_object_key = cw_xstrdup(PQgetvalue(res, i, C_FILE + 4));
    }
}

static void read_claim(const PGresult *res, struct db_claim *c)
{
    c->found = PQntuples(res) > 0;
    if (!c->found)
        return;
    snprintf(c->status, sizeof c->status, "%s", PQgetvalue(res, 0, C_STATUS));
    c->task.attempts = (int)strtol(PQgetvalue(res, 0, C_ATTEMPTS), NULL, 10);
    snprintf(c->task.final_status, sizeof c->task.final_status, "%s", PQgetvalue(res, 0, C_FINAL));
    c->task.result_json =
        PQgetisnull(res, 0, C_RESULT) ? NULL : cw_xstrdup(PQgetvalue(res, 0, C_RESULT));
    c->marked = PQgetvalue(res, 0, C_MARKED)[0] == 't';
    c->earlier_rows = PQgetvalue(res, 0, C_EARLIER)[0] == 't';
    if (c->marked)
        read_files(res, c);
}

/* Lock timeout, lock, claim, sync; then the writer's BEGIN, sync. */
static int send_claim(struct db *db, const struct db_claim_request *req, struct cw_error *err)
{
    char id[24], retries[24], max_attempts[24], timeout[32];
    format_run_id(id, sizeof id, req->run_id);
    snprintf(retries, sizeof retries, "%d", req->retries);
    snprintf(max_attempts, sizeof max_attempts, "%d", req->max_attempts);
    snprintf(timeout, sizeof timeout, "%d", (int)(req->lock_wait_s * 1000));
    const char *timeout_values[] = {timeout};
    const char *lock_values[] = {id};
    const char *claim_values[] = {id, req->task_id, retries, max_attempts,
                                  req->adopt_complete ? "true" : "false"};
    PGconn *conn = db->conn;
    /* is_local: the timeout ends with the implicit transaction, at the sync. */
    if (pipeline_send(conn, "setting the lock timeout",
                      "SELECT set_config('lock_timeout', $1, true)", 1, timeout_values, err) != 0 ||
        pipeline_send(conn, "waiting for the run lock", "SELECT pg_advisory_lock($1::bigint)", 1,
                      lock_values, err) != 0 ||
        pipeline_send_prepared(conn, "claiming the run", CLAIM_NAME, 5, claim_values, err) != 0 ||
        pipeline_sync(conn, "claiming the run", err) != 0)
        return -1;
    if (req->writer && (db_run_writer_queue_begin(req->writer, db, req->run_id, req->task_id,
                                                  req->tick, err) != 0 ||
                        pipeline_sync(conn, "starting the result transaction", err) != 0))
        return -1;
    return 0;
}

/* The lock's result: granted, timed out (0, not locked) or an error. */
static int read_lock(PGconn *conn, struct db_claim *c, struct cw_error *err)
{
    PGresult *set = pipeline_ok(conn, "setting the lock timeout", err);
    PGresult *res = pipeline_next(conn);
    int rc = set ? 0 : -1;
    PQclear(set);
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        c->locked = true;
    else if (rc == 0 && !(state && strcmp(state, LOCK_TIMEOUT_STATE) == 0))
        rc = pg_fail(err, conn, res, "waiting for the run lock", NULL);
    PQclear(res);
    return rc;
}

static int read_results(struct db *db, const struct db_claim_request *req, struct db_claim *c,
                        struct cw_error *err)
{
    PGconn *conn = db->conn;
    int rc = read_lock(conn, c, err);
    PGresult *res = pipeline_next(conn);
    if (rc == 0 && c->locked) {
        if (PQresultStatus(res) == PGRES_TUPLES_OK)
            read_claim(res, c);
        else
            rc = pg_fail(err, conn, res, "claiming the run", CLAIM_SQL);
    }
    PQclear(res);
    pipeline_to_sync(conn);
    if (req->writer) {
        struct cw_error begin_err;
        if (db_run_writer_begun(req->writer, &begin_err) != 0 && rc == 0 && c->marked) {
            *err = begin_err;
            rc = -1;
        }
        pipeline_to_sync(conn);
    }
    return rc;
}

int db_run_claim(struct db *db, const struct db_claim_request *req, struct db_claim *c,
                 struct cw_error *err)
{
    memset(c, 0, sizeof *c);
    if (db_prepare_once(db, DB_STMT_CLAIM, CLAIM_NAME, CLAIM_SQL, 5, err) != 0 ||
        pipeline_enter(db->conn, "claiming the run", err) != 0)
        return -1;
    int rc = send_claim(db, req, err);
    if (rc == 0)
        rc = read_results(db, req, c, err);
    else if (req->writer)
        req->writer->queued = false; /* never sent, or sent and not to be read */
    /* A send libpq refused means a broken connection: what it may have sent is dropped
     * with it (the lock too, when the session ends). */
    rc = pipeline_leave(db->conn, rc, err);
    if (req->writer && (rc != 0 || !c->marked))
        db_run_writer_abort(req->writer);
    return rc;
}

void db_claim_free(struct db_claim *c)
{
    db_files_free(c->files, c->nfiles);
    c->files = NULL;
    c->nfiles = 0;
    db_task_record_free(&c->task);
}
