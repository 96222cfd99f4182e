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

/* A run id as a statement parameter (always compared as bigint: a run id beyond the
 * integer column's range is simply not found, never an SQL error). */
static inline void format_run_id(char *buf, size_t len, long v)
{
    snprintf(buf, len, "%ld", v);
}

#endif
