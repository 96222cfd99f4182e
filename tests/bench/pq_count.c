/* Measuring tool for tests/bench (not linked into cworker): an LD_PRELOAD shim that
 * appends one line per statement sent and per round trip waited for, from every libpq
 * caller in the process, to $PQCOUNT_LOG:
 *   <pid> S <statement, first 60 bytes, newlines as spaces>
 *   <pid> R
 * A statement sent in pipeline mode (PQsendQueryParams/PQsendQueryPrepared) is counted
 * when sent; its round trip when the pipeline is synced, once for syncs sent one after the
 * other before any result is read (they travel together). The end of a COPY FROM STDIN
 * (PQputCopyEnd, whose result is then waited for) is a round trip of its own. Build: cc -shared
 * -fPIC -o pq_count.so pq_count.c -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void note(const char *kind, const char *sql)
{
    const char *path = getenv("PQCOUNT_LOG");
    if (!path)
        return;
    FILE *f = fopen(path, "a");
    if (!f)
        return;
    char text[61] = "";
    if (sql) {
        snprintf(text, sizeof text, "%s", sql);
        for (char *p = text; *p; p++)
            if (*p == '\n' || *p == '\r' || *p == '\t')
                *p = ' ';
    }
    fprintf(f, "%d %s %s\n", (int)getpid(), kind, text);
    fclose(f);
}

#define REAL(name, type) ((type)dlsym(RTLD_NEXT, name))

/* libpq's PQexecParams calls PQsendQueryParams through its exported symbol, i.e. this
 * shim: counted once, by the outermost call. */
static __thread int inside;

PGresult *PQexec(PGconn *conn, const char *sql)
{
    note("S", sql);
    note("R", NULL);
    return REAL("PQexec", PGresult * (*)(PGconn *, const char *))(conn, sql);
}

PGresult *PQexecParams(PGconn *conn, const char *sql, int n, const Oid *types,
                       const char *const *values, const int *lengths, const int *formats,
                       int result_format)
{
    note("S", sql);
    note("R", NULL);
    inside++;
    PGresult *res =
        REAL("PQexecParams", PGresult * (*)(PGconn *, const char *, int, const Oid *,
                                            const char *const *, const int *, const int *, int))(
            conn, sql, n, types, values, lengths, formats, result_format);
    inside--;
    return res;
}

int PQsendQueryParams(PGconn *conn, const char *sql, int n, const Oid *types,
                      const char *const *values, const int *lengths, const int *formats,
                      int result_format)
{
    if (!inside) {
        note("S", sql);
        if (PQpipelineStatus(conn) == PQ_PIPELINE_OFF)
            note("R", NULL);
    }
    return REAL("PQsendQueryParams", int (*)(PGconn *, const char *, int, const Oid *,
                                             const char *const *, const int *, const int *, int))(
        conn, sql, n, types, values, lengths, formats, result_format);
}

PGresult *PQexecPrepared(PGconn *conn, const char *name, int n, const char *const *values,
                         const int *lengths, const int *formats, int result_format)
{
    note("S", name);
    note("R", NULL);
    inside++;
    PGresult *res =
        REAL("PQexecPrepared", PGresult * (*)(PGconn *, const char *, int, const char *const *,
                                              const int *, const int *, int))(
            conn, name, n, values, lengths, formats, result_format);
    inside--;
    return res;
}

int PQsendQueryPrepared(PGconn *conn, const char *name, int n, const char *const *values,
                        const int *lengths, const int *formats, int result_format)
{
    if (!inside) {
        note("S", name);
        if (PQpipelineStatus(conn) == PQ_PIPELINE_OFF)
            note("R", NULL);
    }
    return REAL("PQsendQueryPrepared",
                int (*)(PGconn *, const char *, int, const char *const *, const int *, const int *,
                        int))(conn, name, n, values, lengths, formats, result_format);
}

/* Once per connection and statement (worker/db/db_internal.h): counted, so the figures per
 * run include its share. */
PGresult *PQprepare(PGconn *conn, const char *name, const char *sql, int n, const Oid *types)
{
    note("S", sql);
    note("R", NULL);
    inside++;
    PGresult *res = REAL("PQprepare", PGresult * (*)(PGconn *, const char *, const char *, int,
                                                     const Oid *))(conn, name, sql, n, types);
    inside--;
    return res;
}

int PQputCopyEnd(PGconn *conn, const char *errormsg)
{
    note("R", NULL);
    return REAL("PQputCopyEnd", int (*)(PGconn *, const char *))(conn, errormsg);
}

/* A sync was sent and no result read since: a further sync rides the same round trip. */
static __thread int awaiting;

PGresult *PQgetResult(PGconn *conn)
{
    awaiting = 0;
    return REAL("PQgetResult", PGresult * (*)(PGconn *))(conn);
}

int PQpipelineSync(PGconn *conn)
{
    if (!awaiting)
        note("R", NULL);
    awaiting = 1;
    return REAL("PQpipelineSync", int (*)(PGconn *))(conn);
}
