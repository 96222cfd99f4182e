/* The dashboard's database side: one statement, JSON built by PostgreSQL. */
#include "ops/dashboard_data.h"
#include "db/pg.h"

#include <string.h>

/* The minutes of the last hour, the current (partial) one last. */
#define MINUTES                                                                                    \
    "SELECT generate_series(date_trunc('minute', now()) - interval '59 minutes', "                 \
    "date_trunc('minute', now()), interval '1 minute') AS t"

/* Runs finished in minute m.t with the given condition. */
#define FINISHED_IN(cond)                                                                          \
    "(SELECT count(*) FROM ingestion_runs r WHERE r.completed_at >= m.t AND "                      \
    "r.completed_at < m.t + interval '1 minute' AND " cond ")"

static const char dashboard_sql[] =
    "SELECT json_build_object("
    "'status_counts', (SELECT coalesce(json_object_agg(s.status, s.n ORDER BY s.status), "
    "'{}'::json) FROM (SELECT upper(status) AS status, count(*) AS n FROM ingestion_runs "
    "GROUP BY upper(status)) s), "
    "'total_runs', (SELECT count(*) FROM ingestion_runs), "
    "'per_minute', (SELECT json_agg(json_build_object("
    "'minute', cworker_iso8601(m.t), "
    "'completed', " FINISHED_IN(
        "upper(r.status) = 'COMPLETE'") ", "
                                        "'failed', " FINISHED_IN(
                                            "upper(r.status) = 'FAILED'") ", "
                                                                          "'retried',"
                                                                          " " FINISHED_IN(
                                                                              "r.retry_count > "
                                                                              "0") ") ORDER BY "
                                                                                   "m.t) FROM "
                                                                                   "(" MINUTES
                                                                                   ") m), "
                                                                                   "'recent_"
                                                                                   "failures', "
                                                                                   "(SELECT "
                                                                                   "coalesce("
                                                                                   "json_agg("
                                                                                   "json_build_"
                                                                                   "object("
                                                                                   "'run_id', "
                                                                                   "f.id, "
                                                                                   "'label', "
                                                                                   "f.label, "
                                                                                   "'error_"
                                                                                   "message', "
                                                                                   "f.error_"
                                                                                   "message, "
                                                                                   "'retry_"
                                                                                   "count', "
                                                                                   "f.retry_"
                                                                                   "count, "
                                                                                   "'completed_"
                                                                                   "at', "
                                                                                   "cworker_"
                                                                                   "iso8601(f."
                                                                                   "completed_"
                                                                                   "at), "
                                                                                   "'error_"
                                                                                   "traceback',"
                                                                                   " f.error_"
                                                                                   "traceback) "
                                                                                   "ORDER BY "
                                                                                   "f."
                                                                                   "completed_"
                                                                                   "at DESC "
                                                                                   "NULLS "
                                                                                   "LAST, f.id "
                                                                                   "DESC), "
                                                                                   "'[]'::json)"
                                                                                   " "
                                                                                   "FROM "
                                                                                   "(SELECT "
                                                                                   "id, label, "
                                                                                   "error_"
                                                                                   "message, "
                                                                                   "retry_"
                                                                                   "count, "
                                                                                   "completed_"
                                                                                   "at, "
                                                                                   "error_"
                                                                                   "traceback "
                                                                                   "FROM "
                                                                                   "ingestion_"
                                                                                   "runs WHERE "
                                                                                   "upper("
                                                                                   "status) = "
                                                                                   "'FAILED' "
                                                                                   "ORDER BY "
                                                                                   "completed_"
                                                                                   "at DESC "
                                                                                   "NULLS "
                                                                                   "LAST, id "
                                                                                   "DESC LIMIT "
                                                                                   "10) "
                                                                                   "f))::text";

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
