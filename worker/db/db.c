/* libpq queries of the executor: runs, files, task records, locks, COPY of results. */
#include "db/db.h"
#include "db/db_internal.h"
#include "base/log.h"
#include "base/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int db_connect_as(struct db *db, const char *url, const char *role, struct cw_error *err)
{
    db->conn = pg_connect(url, role, err);
    db->prepared = 0;
    return db->conn ? 0 : -1;
}

/* 0 when the newest migration is recorded; else -1 with err (the connection is kept:
 * the caller closes it). */
static int check_schema(struct db *db, struct cw_error *err)
{
    const char *values[] = {DB_SCHEMA_LATEST};
    PGresult *res =
        PQexecParams(db->conn, "SELECT 1 FROM cworker_schema_migrations WHERE filename = $1", 1,
                     NULL, values, NULL, NULL, 0);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    bool no_ledger = state && strcmp(state, "42P01") == 0; /* undefined_table */
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        PQclear(res);
        return 0;
    }
    if (PQresultStatus(res) == PGRES_TUPLES_OK || no_ledger) {
        CW_FAIL(err, CW_ERR_TRANSIENT,
                "the database is not migrated for this worker: migration %s is missing (run "
                "`cworker migrate`); runs wait until it is",
                DB_SCHEMA_LATEST);
        err->unavailable = true;
    } else {
        pg_fail(err, db->conn, res, "checking the database schema", NULL);
    }
    PQclear(res);
    return -1;
}

int db_connect(struct db *db, const char *url, struct cw_error *err)
{
    if (db_connect_as(db, url, PG_ROLE_EXECUTOR, err) != 0)
        return -1;
    if (check_schema(db, err) == 0)
        return 0;
    db_close(db);
    return -1;
}

void db_close(struct db *db)
{
    if (db->conn)
        PQfinish(db->conn);
    db->conn = NULL;
    db->prepared = 0;
}

bool db_ensure_connected(struct db *db)
{
    if (!db->conn)
        return false;
    if (PQstatus(db->conn) == CONNECTION_OK)
        return true;
    PQreset(db->conn);
    db->prepared = 0; /* a new session: its prepared statements are gone */
    return PQstatus(db->conn) == CONNECTION_OK;
}

/* The one-key bigint form with the run id itself (DESIGN: pg_try_advisory_lock(run_id)):
 * it covers every run id, and no two runs share a key. (The two-key int4 form is a
 * different lock space, so it never collides with these either.) */
int db_run_try_lock(struct db *db, long run_id, bool *locked, struct cw_error *err)
{
    char id[24];
    format_run_id(id, sizeof id, run_id);
    const char *values[] = {id};
    PGresult *res = exec_params(db, "locking the run", "SELECT pg_try_advisory_lock($1::bigint)", 1,
                                values, err);
    if (!res)
        return -1;
    *locked = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    return 0;
}

int db_run_lock_wait(struct db *db, long run_id, double timeout_s, bool *locked,
                     struct cw_error *err)
{
    /* Almost always free: one statement, and the lock_timeout dance only when it is not. */
    if (db_run_try_lock(db, run_id, locked, err) != 0)
        return -1;
    if (*locked)
        return 0;
    char id[24], timeout[32];
    format_run_id(id, sizeof id, run_id);
    snprintf(timeout, sizeof timeout, "%d", (int)(timeout_s * 1000));
    const char *values[] = {timeout};
    if (exec_simple(db, "setting the lock timeout", "SELECT set_config('lock_timeout', $1, false)",
                    1, values, err) != 0)
        return -1;
    const char *lock_values[] = {id};
    PGresult *res = PQexecParams(db->conn, "SELECT pg_advisory_lock($1::bigint)", 1, NULL,
                                 lock_values, NULL, NULL, 0);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    int rc = 0;
    *locked = PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!*locked && !(state && strcmp(state, "55P03") == 0)) /* 55P03: lock_timeout */
        rc = pg_fail(err, db->conn, res, "waiting for the run lock", NULL);
    PQclear(res);
    struct cw_error ignored;
    (void)exec_simple(db, "resetting the lock timeout", "RESET lock_timeout", 0, NULL, &ignored);
    return rc;
}

void db_run_unlock(struct db *db, long run_id)
{
    char id[24];
    format_run_id(id, sizeof id, run_id);
    const char *values[] = {id};
    struct cw_error ignored;
    /* If this fails the connection is broken, and its end releases the lock anyway. */
    PGresult *res = exec_params(db, "unlocking the run", "SELECT pg_advisory_unlock($1::bigint)", 1,
                                values, &ignored);
    PQclear(res);
}

int db_run_load(struct db *db, long run_id, struct db_run *run, bool *found, struct cw_error *err)
{
    char id[24];
    format_run_id(id, sizeof id, run_id);
    const char *values[] = {id};
    PGresult *res = exec_params(db, "loading the run",
                                "SELECT id, upper(status), retry_count, coalesce(task_id, '') "
                                "FROM ingestion_runs "
                                "WHERE id = $1::bigint",
                                1, values, err);
    if (!res)
        return -1;
    *found = PQntuples(res) == 1;
    if (*found) {
        run->id = strtol(PQgetvalue(res, 0, 0), NULL, 10);
        snprintf(run->status, sizeof run->status, "%s", PQgetvalue(res, 0, 1));
        run->retry_count = (int)strtol(PQgetvalue(res, 0, 2), NULL, 10);
        snprintf(run->task_id, sizeof run->task_id, "%s", PQgetvalue(res, 0, 3));
    }
    PQclear(res);
    return 0;
}

void db_task_record_free(struct db_task_record *rec)
{
    free(rec->result_json);
    rec->result_json = NULL;
}

int db_run_heartbeat(struct db *db, long run_id, const char *task_id, const char *progress_json,
                     struct cw_error *err)
{
    char id[24];
    format_run_id(id, sizeof id, run_id);
    const char *values[] = {id, task_id, progress_json};
    return exec_simple(db, "writing the heartbeat",
                       "WITH progress AS (UPDATE cworker_tasks SET progress = $3::json, "
                       "updated_at = now() WHERE task_id = $2 AND $3::json IS NOT NULL) "
                       "UPDATE ingestion_runs SET last_heartbeat = now() WHERE id = $1::bigint",
                       3, values, err);
}

void db_files_free(struct db_file *files, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(files[i].path);
        free(files[i].sha256);
        free(files[i].stored_object_key);
    }
    free(files);
}

int db_stuck_runs(struct db *db, double visibility_timeout, struct db_stuck_run **runs, size_t *n,
                  struct cw_error *err)
{
    char vt[32];
    snprintf(vt, sizeof vt, "%.3f", visibility_timeout);
    const char *values[] = {vt};
    /* Only runs a worker started (a cworker_tasks row for the run's task id): a message
     * still waiting in a backlog is not stuck. */
    PGresult *res = exec_params(
        db, "looking for stuck runs",
        "SELECT r.id, r.task_id, r.retry_count, "
        "       extract(epoch FROM now() - r.last_heartbeat)::float8 "
        "  FROM ingestion_runs r JOIN cworker_tasks t ON t.task_id = r.task_id AND t.run_id = r.id "
        " WHERE upper(r.status) = 'PARSING' AND t.status IS NULL "
        "   AND r.last_heartbeat < now() - make_interval(secs => $1::float8) "
        "   AND (t.retry_due_at IS NULL "
        "        OR t.retry_due_at < now() - make_interval(secs => $1::float8)) "
        " ORDER BY r.id LIMIT 100",
        1, values, err);
    if (!res)
        return -1;
    *n = (size_t)PQntuples(res);
    *runs = cw_xcalloc(*n ? *n : 1, sizeof **runs);
    for (size_t i = 0; i < *n; i++) {
        struct db_stuck_run *r = &(*runs)[i];
        r->run_id = strtol(PQgetvalue(res, (int)i, 0), NULL, 10);
        snprintf(r->task_id, sizeof r->task_id, "%s", PQgetvalue(res, (int)i, 1));
        r->retry_count = (int)strtol(PQgetvalue(res, (int)i, 2), NULL, 10);
        r->silent_for = strtod(PQgetvalue(res, (int)i, 3), NULL);
    }
    PQclear(res);
    return 0;
}

int db_stuck_run_claim(struct db *db, const struct db_stuck_run *run, double visibility_timeout,
                       const char *message, bool *claimed, struct cw_error *err)
{
    char id[24], vt[32];
    format_run_id(id, sizeof id, run->run_id);
    snprintf(vt, sizeof vt, "%.3f", visibility_timeout);
    const char *values[] = {id, vt, message, run->task_id};
    /* The heartbeat condition makes the claim race-free among sweepers: one UPDATE wins. */
    PGresult *res = exec_params(
        db, "claiming a stuck run",
        "WITH claimed AS ("
        "  UPDATE ingestion_runs SET retry_count = retry_count + 1, last_heartbeat = now(), "
        "         error_message = $3 "
        "   WHERE id = $1::bigint AND upper(status) = 'PARSING' AND task_id = $4 "
        "     AND last_heartbeat < now() - make_interval(secs => $2::float8) RETURNING id) "
        "UPDATE cworker_tasks SET retry_due_at = now(), retry_queue = NULL, updated_at = now() "
        " WHERE task_id = $4 AND EXISTS (SELECT 1 FROM claimed) RETURNING task_id",
        4, values, err);
    if (!res)
        return -1;
    *claimed = PQntuples(res) == 1;
    PQclear(res);
    return 0;
}
