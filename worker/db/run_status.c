/* Run status and worker metrics as JSON, from the cworker_run_status and
 * cworker_worker_metrics views. PostgreSQL builds the JSON (json_build_object keeps the key
 * order and the types); this file only adds progress and turns rows into json-c objects. */
#include "db/run_status.h"
#include "db/pg.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ISO(col) "cworker_iso8601(" col ")"

static const char run_status_sql[] =
    "SELECT json_build_object("
    "'id', id, 'type', type, 'label', label, 'notes', notes, "
    "'created_at', " ISO(
        "created_at") ", 'status', status, 'task_id', task_id, "
                      "'retry_count', retry_count, 'error_message', error_message, "
                      "'error_traceback', error_traceback, 'last_heartbeat', " ISO(
                          "last_heartbeat") ", "
                                            "'started_at', " ISO(
                                                "started_at") ", 'completed_at', " ISO("completed_"
                                                                                       "at") ", "
                                                                                             "'metr"
                                                                                             "ics',"
                                                                                             " metr"
                                                                                             "ics):"
                                                                                             ":text"
                                                                                             ", "
                                                                                             "CASE "
                                                                                             "WHEN "
                                                                                             "statu"
                                                                                             "s = "
                                                                                             "'PARS"
                                                                                             "ING' "
                                                                                             "THEN "
                                                                                             "progr"
                                                                                             "ess::"
                                                                                             "text "
                                                                                             "END "
                                                                                             "FROM "
                                                                                             "cwork"
                                                                                             "er_"
                                                                                             "run_"
                                                                                             "statu"
                                                                                             "s "
                                                                                             "WHERE"
                                                                                             " id "
                                                                                             "= "
                                                                                             "$1::"
                                                                                             "int";

static const char metrics_sql[] =
    "SELECT json_build_object("
    "'status_counts', status_counts, "
    "'retry_stats', json_build_object('avg_retries', avg_retries, 'max_retries', max_retries), "
    "'avg_duration_seconds', avg_duration_seconds, "
    "'recent_failures', recent_failures)::text "
    "FROM cworker_worker_metrics";

bool run_status_parse_id(const char *text, long *run_id)
{
    if (!text || !*text || strlen(text) > 10)
        return false;
    for (const char *p = text; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    errno = 0;
    long v = strtol(text, NULL, 10);
    if (errno || v < 1 || v > INT_MAX)
        return false;
    *run_id = v;
    return true;
}

/* 42P01/42883: the views or their helper are missing, the usual cause of which is a
 * database that was never migrated. Say so rather than leave the operator guessing. */
static void hint_unmigrated(const PGresult *res, struct cw_error *err)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (!state || (strcmp(state, "42P01") != 0 && strcmp(state, "42883") != 0))
        return;
    size_t n = strlen(err->message);
    snprintf(err->message + n, sizeof err->message - n, " (run `cworker migrate`)");
}

/* Runs sql with the optional parameter; returns the result (caller clears) or NULL. */
static PGresult *query(PGconn *conn, const char *what, const char *sql, const char *param,
                       struct cw_error *err)
{
    const char *values[] = {param};
    if (!conn)
        return pg_exec(conn, what, sql, 0, NULL, err);
    PGresult *res =
        PQexecParams(conn, sql, param ? 1 : 0, NULL, param ? values : NULL, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQnfields(res) >= 1)
        return res;
    pg_fail(err, conn, res, what, sql);
    hint_unmigrated(res, err);
    PQclear(res);
    return NULL;
}

/* The JSON text of column col of row 0, parsed; NULL for SQL NULL. */
static json_object *json_column(const PGresult *res, int col, const char *what,
                                struct cw_error *err, bool *bad)
{
    *bad = false;
    if (PQgetisnull(res, 0, col))
        return NULL;
    json_object *o = json_tokener_parse(PQgetvalue(res, 0, col));
    if (!o) {
        /* PostgreSQL's json type only holds valid JSON, so this is a broken invariant. */
        CW_FAIL(err, CW_ERR_INTERNAL, "unparsable JSON from PostgreSQL while %s", what);
        *bad = true;
    }
    return o;
}

int run_status_get(PGconn *conn, long run_id, json_object **out, struct cw_error *err)
{
    const char *what = "reading the run's status";
    char id[24];
    snprintf(id, sizeof id, "%ld", run_id);
    *out = NULL;
    PGresult *res = query(conn, what, run_status_sql, id, err);
    if (!res)
        return -1;
    int rc = 0;
    bool bad = false;
    if (PQntuples(res) == 1) {
        *out = json_column(res, 0, what, err, &bad);
        json_object *progress = bad ? NULL : json_column(res, 1, what, err, &bad);
        if (progress)
            json_object_object_add(*out, "progress", progress);
        rc = bad ? -1 : 0;
    }
    if (rc != 0) {
        json_object_put(*out);
        *out = NULL;
    }
    PQclear(res);
    return rc;
}

int run_status_metrics(PGconn *conn, json_object **out, struct cw_error *err)
{
    const char *what = "reading the worker metrics";
    *out = NULL;
    PGresult *res = query(conn, what, metrics_sql, NULL, err);
    if (!res)
        return -1;
    bool bad = false;
    if (PQntuples(res) == 1)
        *out = json_column(res, 0, what, err, &bad);
    PQclear(res);
    if (!*out && !bad)
        CW_FAIL(err, CW_ERR_INTERNAL, "the worker metrics view returned no row");
    return *out ? 0 : -1;
}
