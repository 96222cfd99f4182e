/* libpq connections and error reports for every part of cworker (see db/pg.h). */
#include "db/pg.h"

#include "base/log.h"
#include "base/strbuf.h"
#include "base/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void notice_to_debug(void *arg, const char *message)
{
    (void)arg;
    log_debug("PostgreSQL: %.*s", (int)strcspn(message, "\n"), message);
}

/* libpq's message about conn, in one line and without the password it used. */
static void conn_message(PGconn *conn, char *out, size_t len)
{
    snprintf(out, len, "%s", conn ? PQerrorMessage(conn) : "out of memory");
    pg_one_line(out);
    if (conn)
        pg_redact(out, PQpass(conn));
}

PGconn *pg_connect(const char *url, const char *role, struct cw_error *err)
{
    return pg_connect_timeout(url, role, PG_CONNECT_TIMEOUT_S, err);
}

PGconn *pg_connect_timeout(const char *url, const char *role, const char *timeout_s,
                           struct cw_error *err)
{
    char why[CW_ERROR_DETAIL_MAX];
    if (!url || !*url) {
        CW_FAIL(err, CW_ERR_PERMANENT, "cannot connect to PostgreSQL: no database URL given");
        return NULL;
    }
    if (!pg_url_valid(url, why, sizeof why)) {
        CW_FAIL(err, CW_ERR_PERMANENT, "cannot connect to PostgreSQL: malformed database URL: %s",
                why);
        return NULL;
    }
    char *libpq_url = pg_libpq_url(url);
    char app[64];
    snprintf(app, sizeof app, "cworker/%s", role);
    /* expand_dbname: dbname (the URL) comes last, so its own settings win over ours. */
    const char *keys[] = {
        "connect_timeout",  "keepalives",       "keepalives_idle", "keepalives_interval",
        "keepalives_count", "application_name", "dbname",          NULL};
    const char *values[] = {
        timeout_s, "1", PG_KEEPALIVES_IDLE_S, PG_KEEPALIVES_INTVL_S, PG_KEEPALIVES_COUNT, app,
        libpq_url, NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 1);
    free(libpq_url);
    if (conn && PQstatus(conn) == CONNECTION_OK) {
        PQsetNoticeProcessor(conn, notice_to_debug, NULL);
        return conn;
    }
    conn_message(conn, why, sizeof why);
    PQfinish(conn);
    CW_FAIL(err, CW_ERR_TRANSIENT, "cannot connect to PostgreSQL: %s", why);
    err->unavailable = true;
    return NULL;
}

/* The line of sql holding the server's 1-based character position (0 if unknown). */
static int error_line(const char *sql, const char *position)
{
    long chars = position ? strtol(position, NULL, 10) : 0;
    int line = 1;
    if (!sql || chars <= 0)
        return 0;
    /* The position counts characters, so skip UTF-8 continuation bytes. */
    for (const char *p = sql; *p && chars > 1; p++) {
        if (((unsigned char)*p & 0xC0) != 0x80)
            chars--;
        if (*p == '\n')
            line++;
    }
    return line;
}

int pg_fail(struct cw_error *err, PGconn *conn, const PGresult *res, const char *what,
            const char *sql)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
    int line = res ? error_line(sql, PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION)) : 0;
    bool ok = conn && PQstatus(conn) == CONNECTION_OK;
    char text[CW_ERROR_DETAIL_MAX], where[32] = "";
    if (primary)
        snprintf(text, sizeof text, "%s", primary);
    else if (res && *PQresultErrorMessage(res))
        snprintf(text, sizeof text, "%s", PQresultErrorMessage(res));
    else
        conn_message(conn, text, sizeof text);
    pg_one_line(text);
    if (conn)
        pg_redact(text, PQpass(conn));
    if (line > 0)
        snprintf(where, sizeof where, " at line %d", line);
    CW_FAIL(err, pg_error_class(state, ok), "database error while %s: %s%s%s%s%s (SQLSTATE %s)",
            what, text, where, detail ? " (" : "", detail ? detail : "", detail ? ")" : "",
            state && *state ? state : "none");
    err->unavailable = pg_error_lost_connection(state, ok);
    return -1;
}

PGresult *pg_exec(PGconn *conn, const char *what, const char *sql, int n, const char *const *values,
                  struct cw_error *err)
{
    if (!conn) {
        CW_FAIL(err, CW_ERR_TRANSIENT, "database error while %s: not connected", what);
        err->unavailable = true;
        return NULL;
    }
    PGresult *res = n == 0 && !values ? PQexec(conn, sql)
                                      : PQexecParams(conn, sql, n, NULL, values, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY)
        return res;
    pg_fail(err, conn, res, what, sql);
    PQclear(res);
    return NULL;
}
