/* The write of a run's failure or pending retry (the result transaction is
 * db/run_writer.c). Each is conditional, in SQL, on the run still being PARSING
 * for the writing task, so no ordering of kills and redeliveries overwrites a final state
 * (see db/db.h). */
#include "db/db.h"
#include "db/db_internal.h"

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

int db_run_record_error(struct db *db, long run_id, const char *task_id,
                        const struct db_run_error *e, bool *written, struct cw_error *err)
{
    char id[24], r[24], due[32], stale[32];
    const char *retry_queue = e->final ? NULL : e->retry_queue;
    format_run_id(id, sizeof id, run_id);
    snprintf(r, sizeof r, "%d", e->retry_count);
    snprintf(due, sizeof due, "%.3f", e->retry_in);
    snprintf(stale, sizeof stale, "%.3f", e->stale_for);
    const char *values[] = {id,
                            task_id,
                            e->final ? "FAILED" : "PARSING",
                            r,
                            e->message,
                            e->traceback,
                            e->metrics_json,
                            due,
                            stale,
                            retry_queue};
    /* One statement: the run and the task's record change together or not at all. retry_due_at
     * is when a scheduled retry runs (NULL for a final failure); the stuck-run sweeper
     * leaves the run alone until then; retry_queue is the delay queue it waits in. */
    return exec_count(
        db, "recording the run's error",
        "WITH run AS (UPDATE ingestion_runs SET status = $3::varchar, retry_count = $4::int, "
        "  error_message = $5, error_traceback = $6, metrics = $7::json, last_heartbeat = now(), "
        "  completed_at = CASE WHEN $3::varchar = 'FAILED' THEN now() END "
        " WHERE " STILL_OURS " AND ($9::float8 <= 0 "
        "   OR last_heartbeat < now() - make_interval(secs => $9::float8)) RETURNING id) "
        "INSERT INTO cworker_tasks AS t (task_id, run_id, status, error_message, error_traceback, "
        "  metrics, completed_at, retry_due_at, retry_queue) "
        "SELECT $2, id, nullif($3::varchar, 'PARSING'), $5, $6, $7::json, "
        "  CASE WHEN $3::varchar = 'FAILED' THEN now() END, "
        "  CASE WHEN $3::varchar = 'FAILED' THEN NULL "
        "       ELSE now() + make_interval(secs => $8::float8) END, $10 FROM run "
        "ON CONFLICT (task_id) DO UPDATE SET status = EXCLUDED.status, "
        "  error_message = EXCLUDED.error_message, error_traceback = EXCLUDED.error_traceback, "
        "  metrics = EXCLUDED.metrics, completed_at = EXCLUDED.completed_at, "
        "  retry_due_at = EXCLUDED.retry_due_at, retry_queue = EXCLUDED.retry_queue, "
        "  updated_at = now() RETURNING task_id",
        10, values, written, err);
}
