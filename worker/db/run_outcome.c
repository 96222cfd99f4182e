/* The writes of a run's outcome: the one result transaction (rows COPYed, COMPLETE) and a
 * failure or pending retry. Each is conditional, in SQL, on the run still being PARSING
 * for the writing task, so no ordering of kills and redeliveries overwrites a final state
 * (see db/db.h). */
#include "db/db.h"
#include "db/db_internal.h"
#include "db/run_writer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The condition every outcome write carries: $1 the run id, $2 the task id. */
#define STILL_OURS "id = $1::bigint AND upper(status) = 'PARSING' AND task_id = $2"

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

/* All rows of the run at once, through the streaming writer. */
int db_run_complete(struct db *db, long run_id, const char *task_id, const struct run_rows *rows,
                    const char *metrics_json, const char *result_json, const struct db_tick *tick,
                    bool *written, struct cw_error *err)
{
    struct db_run_writer w;
    bool ours = false;
    *written = false;
    if (db_run_writer_begin(&w, db, run_id, task_id, tick, &ours, err) != 0)
        return -1;
    if (!ours)
        return 0;
    int rc = db_run_writer_stanzas(&w, &rows->stanzas, err);
    for (int t = 0; rc == 0 && t < PROJ_COUNT; t++)
        rc = db_run_writer_typed(&w, (enum proj_table)t, &rows->typed[t], err);
    if (rc != 0) {
        db_run_writer_abort(&w);
        return -1;
    }
    return db_run_writer_commit(&w, metrics_json, result_json, written, err);
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
