/* How every part of cworker talks to PostgreSQL through libpq: one way to connect and one
 * way to turn a libpq error into a struct cw_error (classified by db/pg_error.h).
 *
 * Connections: connect_timeout (PG_CONNECT_TIMEOUT_S), TCP keepalives (a server that
 * vanished is noticed within about a minute instead of the kernel's two hours) and
 * application_name "cworker/<role>" (so pg_stat_activity says who is who); settings in the
 * URL itself win over these. Server notices go to the debug log, never raw to stderr.
 *
 * Messages never contain the connection string or the password: libpq's complaints about
 * a malformed URL are described without its tokens, and the password is scrubbed from
 * every libpq message. */
#ifndef CWORKER_PG_H
#define CWORKER_PG_H

#include "base/error.h"
#include "db/pg_error.h"
#include "db/pg_url.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#define PG_CONNECT_TIMEOUT_S  "10"
#define PG_KEEPALIVES_IDLE_S  "30"
#define PG_KEEPALIVES_INTVL_S "10"
#define PG_KEEPALIVES_COUNT   "3"

/* Roles for application_name. */
#define PG_ROLE_EXECUTOR  "executor"
#define PG_ROLE_HEARTBEAT "heartbeat"
#define PG_ROLE_MIGRATE   "migrate"
#define PG_ROLE_HTTP      "http"
#define PG_ROLE_CLI       "cli"
#define PG_ROLE_STARTUP   "startup"

/* Connects as "cworker/<role>". NULL with err: CW_ERR_PERMANENT for a malformed URL,
 * otherwise CW_ERR_TRANSIENT with err->unavailable set ("cannot connect to PostgreSQL: ..."). */
PGconn *pg_connect(const char *url, const char *role, struct cw_error *err);
/* The same with another connect_timeout (seconds, as text) than PG_CONNECT_TIMEOUT_S. */
PGconn *pg_connect_timeout(const char *url, const char *role, const char *timeout_s,
                           struct cw_error *err);

/* Fills err from a failed command: "database error while <what>: <primary message>
 * [at line N] [(detail)] (SQLSTATE xxxxx)", classified by pg_error_class, with
 * err->unavailable from pg_error_lost_connection. res may be NULL (libpq's own message);
 * sql, when given, turns the error position into a line number. Returns -1. */
int pg_fail(struct cw_error *err, PGconn *conn, const PGresult *res, const char *what,
            const char *sql);

/* PQexecParams in text format (with n == 0 and values NULL, PQexec: several statements
 * allowed); the result (caller clears) when it returned rows or a
 * command status, else NULL with err filled by pg_fail. conn NULL: not connected. */
PGresult *pg_exec(PGconn *conn, const char *what, const char *sql, int n, const char *const *values,
                  struct cw_error *err);

#endif
