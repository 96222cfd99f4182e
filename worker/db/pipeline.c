/* libpq pipeline mode helpers (db/pipeline.h). */
#include "db/pipeline.h"
#include "db/pg.h"

#include <stdio.h>

static int libpq_refused(PGconn *conn, const char *what, struct cw_error *err)
{
    return pg_fail(err, conn, NULL, what, NULL);
}

int pipeline_enter(PGconn *conn, const char *what, struct cw_error *err)
{
    if (!conn) {
        CW_FAIL(err, CW_ERR_TRANSIENT, "database error while %s: not connected", what);
        err->unavailable = true;
        return -1;
    }
    return PQenterPipelineMode(conn) == 1 ? 0 : libpq_refused(conn, what, err);
}

int pipeline_send(PGconn *conn, const char *what, const char *sql, int n, const char *const *values,
                  struct cw_error *err)
{
    if (PQsendQueryParams(conn, sql, n, NULL, values, NULL, NULL, 0) == 1)
        return 0;
    return libpq_refused(conn, what, err);
}

int pipeline_send_prepared(PGconn *conn, const char *what, const char *name, int n,
                           const char *const *values, struct cw_error *err)
{
    if (PQsendQueryPrepared(conn, name, n, values, NULL, NULL, 0) == 1)
        return 0;
    return libpq_refused(conn, what, err);
}

int pipeline_sync(PGconn *conn, const char *what, struct cw_error *err)
{
    return PQpipelineSync(conn) == 1 ? 0 : libpq_refused(conn, what, err);
}

PGresult *pipeline_next(PGconn *conn)
{
    PGresult *res = PQgetResult(conn);
    if (!res || PQresultStatus(res) == PGRES_PIPELINE_SYNC)
        return res; /* a sync point is not followed by a NULL */
    PGresult *more;
    while ((more = PQgetResult(conn)) != NULL) /* one NULL ends a statement's results */
        PQclear(more);
    return res;
}

PGresult *pipeline_ok(PGconn *conn, const char *what, struct cw_error *err)
{
    PGresult *res = pipeline_next(conn);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    if (st == PGRES_PIPELINE_ABORTED) {
        CW_FAIL(err, CW_ERR_TRANSIENT, "database error while %s: skipped after an earlier error",
                what);
    } else {
        pg_fail(err, conn, res, what, NULL);
    }
    PQclear(res);
    return NULL;
}

void pipeline_to_sync(PGconn *conn)
{
    for (;;) {
        PGresult *res = PQgetResult(conn);
        if (!res) {
            if (PQstatus(conn) != CONNECTION_OK)
                return;
            continue; /* the NULL after a statement's results */
        }
        ExecStatusType st = PQresultStatus(res);
        PQclear(res);
        if (st == PGRES_PIPELINE_SYNC)
            return;
    }
}

int pipeline_leave(PGconn *conn, int rc, struct cw_error *err)
{
    if (PQexitPipelineMode(conn) == 1 || rc != 0)
        return rc;
    return pg_fail(err, conn, NULL, "leaving pipeline mode", NULL);
}
