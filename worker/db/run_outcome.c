/* The writes of a run's outcome: the one result transaction (rows COPYed, COMPLETE) and a
 * failure or pending retry. Each is conditional, in SQL, on the run still being PARSING
 * for the writing task, so no ordering of kills and redeliveries overwrites a final state
 * (see db/db.h). */
#include "db/db.h"
#include "db/db_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COPY_CHUNK (1 << 20)

/* The condition every outcome write carries: $1 the run id, $2 the task id. */
#define STILL_OURS "id = $1::bigint AND upper(status) = 'PARSING' AND task_id = $2"

/* Sends rows in chunks, calling tick between them; the COPY is ended (aborted when tick
 * failed) either way. */
static int send_copy_data(struct db *db, const struct strbuf *rows, const struct db_tick *tick,
                          struct cw_error *err)
{
    int rc = 0;
    for (size_t off = 0; off < rows->len && rc == 0; off += COPY_CHUNK) {
        size_t len = rows->len - off < COPY_CHUNK ? rows->len - off : COPY_CHUNK;
        if (PQputCopyData(db->conn, rows->data + off, (int)len) != 1)
            rc = pg_fail(err, db->conn, NULL, "sending COPY data", NULL);
        else if (tick && tick->fn(tick->ctx, err) != 0)
            rc = -1; /* a time limit: aborting the COPY aborts the transaction */
    }
    if (PQputCopyEnd(db->conn, rc ? "aborted by the worker" : NULL) != 1 && rc == 0)
        rc = pg_fail(err, db->conn, NULL, "ending COPY", NULL);
    return rc;
}

static int copy_rows(struct db *db, const char *target, const struct strbuf *rows,
                     const struct db_tick *tick, struct cw_error *err)
{
    if (rows->len == 0)
        return 0;
    char sql[512];
    snprintf(sql, sizeof sql, "COPY %s FROM STDIN", target);
    PGresult *res = PQexec(db->conn, sql);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        pg_fail(err, db->conn, res, "starting COPY", NULL);
        PQclear(res);
        CW_WRAP(err, "COPY %s", target);
        return -1;
    }
    PQclear(res);
    int rc = send_copy_data(db, rows, tick, err);
    res = PQgetResult(db->conn);
    if (rc == 0 && PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = pg_fail(err, db->conn, res, "copying rows", NULL);
    PQclear(res);
    while ((res = PQgetResult(db->conn)) != NULL)
        PQclear(res);
    if (rc != 0)
        CW_WRAP(err, "COPY %s", target);
    return rc;
}

static const char *const run_tables[] = {"stanzas", "inputs",  "props",        "transforms",
                                         "indexes", "outputs", "serverclasses"};

static int delete_previous_rows(struct db *db, const char *run_id, struct cw_error *err)
{
    const char *values[] = {run_id};
    for (size_t i = 0; i < sizeof run_tables / sizeof run_tables[0]; i++) {
        char sql[128];
        snprintf(sql, sizeof sql, "DELETE FROM %s WHERE run_id = $1::bigint", run_tables[i]);
        if (exec_simple(db, "removing earlier rows of the run", sql, 1, values, err) != 0)
            return -1;
    }
    return 0;
}

static int write_rows(struct db *db, const char *run_id, const struct run_rows *rows,
                      const struct db_tick *tick, struct cw_error *err)
{
    if (delete_previous_rows(db, run_id, err) != 0)
        return -1;
    if (copy_rows(db, STANZAS_COPY_TARGET, &rows->stanzas, tick, err) != 0)
        return -1;
    for (int t = 0; t < PROJ_COUNT; t++)
        if (copy_rows(db, proj_copy_target((enum proj_table)t), &rows->typed[t], tick, err) != 0)
            return -1;
    return 0;
}

/* Runs a statement and says whether it touched (or returned) a row. */
static int exec_count(struct db *db, const char *what, const char *sql, int n,
                      const char *const *values, bool *hit, struct cw_error *err)
{
    PGresult *res = exec_params(db, what, sql, n, values, err);
    if (!res)
        return -1;
    *hit = PQntuples(res) > 0; /* every statement here SELECTs or RETURNs its rows */
    PQclear(res);
    return 0;
}

/* rc 0 with *written: COMMIT; anything else: ROLLBACK (best effort). */
static int finish_transaction(struct db *db, int rc, bool written, struct cw_error *err)
{
    if (rc == 0 && written)
        return exec_simple(db, "committing", "COMMIT", 0, NULL, err);
    struct cw_error ignored;
    if (db->conn && PQtransactionStatus(db->conn) != PQTRANS_IDLE)
        (void)exec_simple(db, "rolling back", "ROLLBACK", 0, NULL, &ignored);
    return rc;
}

/* The run COMPLETE and the task's outcome, both only when the run is still ours.
 * clock_timestamp(), not now() (the transaction's start): heartbeats written on the other
 * connection during the COPY must not be later than the completion. */
static int mark_complete(struct db *db, const char *id, const char *task_id,
                         const char *metrics_json, const char *result_json, bool *written,
                         struct cw_error *err)
{
    const char *values[] = {id, task_id, metrics_json, result_json};
    return exec_count(
        db, "marking the run COMPLETE",
        "WITH run AS (UPDATE ingestion_runs SET status = 'COMPLETE', "
        "  completed_at = clock_timestamp(), last_heartbeat = clock_timestamp(), "
        "  error_message = NULL, error_traceback = NULL, "
        "  metrics = $3::json WHERE " STILL_OURS " RETURNING id, completed_at) "
        "INSERT INTO cworker_tasks AS t (task_id, run_id, status, metrics, result, completed_at) "
        "SELECT $2, id, 'COMPLETE', $3::json, $4::json, completed_at FROM run "
        "ON CONFLICT (task_id) DO UPDATE SET status = 'COMPLETE', metrics = $3::json, "
        "  result = $4::json, error_message = NULL, error_traceback = NULL, "
        "  completed_at = EXCLUDED.completed_at, updated_at = now() RETURNING task_id",
        4, values, written, err);
}

int db_run_complete(struct db *db, long run_id, const char *task_id, const struct run_rows *rows,
                    const char *metrics_json, const char *result_json, const struct db_tick *tick,
                    bool *written, struct cw_error *err)
{
    char id[24];
    format_run_id(id, sizeof id, run_id);
    *written = false;
    if (exec_simple(db, "starting the result transaction", "BEGIN", 0, NULL, err) != 0)
        return -1;
    /* Checked first only to spare writing rows that would be rolled back; the UPDATE's own
     * condition is what makes it safe. */
    const char *values[] = {id, task_id};
    bool ours = false;
    int rc = exec_count(db, "checking the run is still ours",
                        "SELECT 1 FROM ingestion_runs WHERE " STILL_OURS, 2, values, &ours, err);
    if (rc == 0 && ours)
        rc = write_rows(db, id, rows, tick, err);
    if (rc == 0 && ours)
        rc = mark_complete(db, id, task_id, metrics_json, result_json, written, err);
    return finish_transaction(db, rc, *written, err);
}

int db_run_record_error(struct db *db, long run_id, const char *task_id,
                        const struct db_run_error *e, bool *written, struct cw_error *err)
{
    char id[24], r[24], due[32], stale[32];
    format_run_id(id, sizeof id, run_id);
    snprintf(r, sizeof r, "%d", e->retry_count);
    snprintf(due, sizeof due, "%.3f", e->retry_in);
    snprintf(stale, sizeof stale, "%.3f", e->stale_for);
    const char *values[] = {
        id,  task_id, e->final ? "FAILED" : "PARSING", r, e->message, e->traceback, e->metrics_json,
        due, stale};
    /* One statement: the run and the task's record change together or not at all. retry_due_at
     * is when a scheduled retry runs (NULL for a final failure); the stuck-run sweeper
     * leaves the run alone until then. */
    return exec_count(
        db, "recording the run's error",
        "WITH run AS (UPDATE ingestion_runs SET status = $3::varchar, retry_count = $4::int, "
        "  error_message = $5, error_traceback = $6, metrics = $7::json, last_heartbeat = now(), "
        "  completed_at = CASE WHEN $3::varchar = 'FAILED' THEN now() END "
        " WHERE " STILL_OURS " AND ($9::float8 <= 0 "
        "   OR last_heartbeat < now() - make_interval(secs => $9::float8)) RETURNING id) "
        "INSERT INTO cworker_tasks AS t (task_id, run_id, status, error_message, error_traceback, "
        "  metrics, completed_at, retry_due_at) "
        "SELECT $2, id, nullif($3::varchar, 'PARSING'), $5, $6, $7::json, "
        "  CASE WHEN $3::varchar = 'FAILED' THEN now() END, "
        "  CASE WHEN $3::varchar = 'FAILED' THEN NULL "
        "       ELSE now() + make_interval(secs => $8::float8) END FROM run "
        "ON CONFLICT (task_id) DO UPDATE SET status = EXCLUDED.status, "
        "  error_message = EXCLUDED.error_message, error_traceback = EXCLUDED.error_traceback, "
        "  metrics = EXCLUDED.metrics, completed_at = EXCLUDED.completed_at, "
        "  retry_due_at = EXCLUDED.retry_due_at, updated_at = now() RETURNING task_id",
        9, values, written, err);
}
