/* The dashboard's database side: one statement, JSON built by PostgreSQL. */
#include "ops/dashboard_data.h"
#include "db/pg.h"

#include <string.h>

/* The minutes of the last hour, the current (partial) one last. */
#define MINUTES                                                                                    \
    "SELECT generate_series(date_trunc('minute', now()) - interval '59 minutes', "                 \
    "date_trunc('minute', now()), interval '1 minute') AS t"

/* Runs finished in minute m.t with the condition that follows (and a closing bracket). */
#define FINISHED_IN                                                                                \
    "(SELECT count(*) FROM ingestion_runs r WHERE r.completed_at >= m.t AND "                      \
    "r.completed_at < m.t + interval '1 minute' AND "

#define STATUS_COUNTS                                                                              \
    "(SELECT coalesce(json_object_agg(s.status, s.n ORDER BY s.status), '{}'::json) "              \
    "FROM (SELECT upper(status) AS status, count(*) AS n FROM ingestion_runs "                     \
    "GROUP BY upper(status)) s)"

#define PER_MINUTE                                                                                 \
    "(SELECT json_agg(json_build_object('minute', cworker_iso8601(m.t), "                          \
    "'completed', " FINISHED_IN "upper(r.status) = 'COMPLETE'), "                                  \
    "'failed', " FINISHED_IN "upper(r.status) = 'FAILED'), "                                       \
    "'retried', " FINISHED_IN "r.retry_count > 0)) ORDER BY m.t) FROM (" MINUTES ") m)"

#define RECENT_FAILURES                                                                            \
    "(SELECT coalesce(json_agg(json_build_object('run_id', f.id, 'label', f.label, "               \
    "'error_message', f.error_message, 'retry_count', f.retry_count, "                             \
    "'completed_at', cworker_iso8601(f.completed_at), 'error_traceback', f.error_traceback) "      \
    "ORDER BY f.completed_at DESC NULLS LAST, f.id DESC), '[]'::json) "                            \
    "FROM (SELECT id, label, error_message, retry_count, completed_at, error_traceback "           \
    "FROM ingestion_runs WHERE upper(status) = 'FAILED' "                                          \
    "ORDER BY completed_at DESC NULLS LAST, id DESC LIMIT 10) f)"

/* Retries waiting, per delay queue, as every worker recorded them (migration 007). */
#define DELAY_QUEUES                                                                               \
    "(SELECT coalesce(json_agg(json_build_object('name', q.retry_queue, 'scheduled', q.n, "        \
    "'next_due_at', cworker_iso8601(q.due), "                                                      \
    "'next_due_in_seconds', extract(epoch FROM q.due - now())::float8) "                           \
    "ORDER BY q.retry_queue), '[]'::json) "                                                        \
    "FROM (SELECT retry_queue, count(*) AS n, min(retry_due_at) AS due FROM cworker_tasks "        \
    "WHERE retry_queue IS NOT NULL AND status IS NULL GROUP BY retry_queue) q)"

static const char dashboard_sql[] = "SELECT json_build_object("
                                    "'status_counts', " STATUS_COUNTS ", "
                                    "'total_runs', (SELECT count(*) FROM ingestion_runs), "
                                    "'per_minute', " PER_MINUTE ", "
                                    "'recent_failures', " RECENT_FAILURES ", "
                                    "'delay_queues', " DELAY_QUEUES ")::text";

int dashboard_data_get(PGconn *conn, json_object **out, struct cw_error *err)
{
    *out = NULL;
    PGresult *res = pg_exec(conn, "reading the dashboard", dashboard_sql, 0, NULL, err);
    if (!res)
        return -1;
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
        *out = json_tokener_parse(PQgetvalue(res, 0, 0));
    PQclear(res);
    if (!*out)
        CW_FAIL(err, CW_ERR_INTERNAL, "the dashboard query returned no JSON");
    return *out ? 0 : -1;
}
