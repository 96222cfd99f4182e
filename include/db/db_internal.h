/* Shared by the files of worker/db that implement db/db.h: statements on struct db. */
#ifndef CWORKER_DB_INTERNAL_H
#define CWORKER_DB_INTERNAL_H

#include "db/db.h"
#include "db/pg.h"

/* A parameterised statement; the result (caller clears) or NULL with err. */
static inline PGresult *exec_params(struct db *db, const char *what, const char *sql, int n,
                                    const char *const *values, struct cw_error *err)
{
    return pg_exec(db->conn, what, sql, n, values, err);
}

/* A statement whose result is not needed; 0 or -1 with err. */
static inline int exec_simple(struct db *db, const char *what, const char *sql, int n,
                              const char *const *values, struct cw_error *err)
{
    PGresult *res = exec_params(db, what, sql, n, values, err);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

/* The executor's hot statements, prepared once per connection (db_prepare_once): parsed
 * and analysed once, and planned generically after the first few executions. They were
 * a tenth of PostgreSQL's CPU per small run when sent as text each time. Session-level
 * advisory locks already require a session of one's own (no transaction pooler). */
enum db_statement {
    DB_STMT_CLAIM = 1u << 0,    /* db/run_claim.c */
    DB_STMT_COMPLETE = 1u << 1, /* db/run_writer.c */
};

/* Prepares sql as `name` on db's connection unless done since it was (re)opened. */
static inline int db_prepare_once(struct db *db, enum db_statement stmt, const char *name,
                                  const char *sql, int n, struct cw_error *err)
{
    if (db->prepared & (unsigned)stmt)
        return 0;
    if (!db->conn) {
        CW_FAIL(err, CW_ERR_TRANSIENT, "database error while preparing %s: not connected", name);
        err->unavailable = true;
        return -1;
    }
    PGresult *res = PQprepare(db->conn, name, sql, n, NULL);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = pg_fail(err, db->conn, res, "preparing a statement", sql);
    else
        db->prepared |= (unsigned)stmt;
    PQclear(res);
    return rc;
}

/* A run id as a statement parameter (always compared as bigint: a run id beyond the
 * integer column's range is simply not found, never an SQL error). */
static inline void format_run_id(char *buf, size_t len, long v)
{
    snprintf(buf, len, "%ld", v);
}

#endif
