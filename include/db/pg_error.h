/* What a PostgreSQL error means to cworker, decided from its SQLSTATE alone: pure
 * functions (no I/O, no connection), shared by every module that talks to PostgreSQL so
 * that a deadlock is never transient in one place and permanent in another.
 *
 * Classification (pg_error_class):
 *   transient  class 08 connection exception (08000, 08003, 08006, 08001, 08004, ...)
 *              class 40 transaction rollback (40001 serialization, 40P01 deadlock, 40003)
 *              class 53 insufficient resources (53100 disk full, 53200 out of memory,
 *                       53300 too many connections, 53400)
 *              57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now,
 *              57P05 idle session timeout (the server ended the session; a new one works)
 *              no SQLSTATE while the connection is broken (libpq lost the server)
 *   permanent  everything else, e.g. 23505 unique violation, 42P01 undefined table,
 *              22003 numeric value out of range, XX000 internal error, and libpq's own
 *              errors on a healthy connection (no SQLSTATE): they fail the same way again.
 * Exceptions, decided here and nowhere else:
 *   08P01 protocol violation  permanent: our malformed message, it would fail again.
 *   40002 integrity constraint violation at commit  permanent, like any constraint.
 *   57P04 database dropped    permanent: no retry brings the database back.
 *   57014 query canceled      transient: statement_timeout or an operator's cancel; a later
 *                             attempt may run on a quieter server, and retries are bounded.
 *   55P03 lock not available  transient: lock_timeout; the holder lets go eventually.
 *   58000 system error, 58030 I/O error  transient: the server's disk or OS, not the task.
 *
 * pg_error_lost_connection says whether the error means the database went away (an
 * outage: nothing could be recorded, redeliver without consuming a retry); it is a
 * separate question from the class (57P04 is permanent and also a lost connection). */
#ifndef CWORKER_PG_ERROR_H
#define CWORKER_PG_ERROR_H

#include "base/error.h"

#include <stdbool.h>
#include <stddef.h>

/* sqlstate may be NULL or "" (libpq's own error); connection_ok is PQstatus == OK. */
enum cw_error_class pg_error_class(const char *sqlstate, bool connection_ok);
bool pg_error_lost_connection(const char *sqlstate, bool connection_ok);

/* True when libpq's connection failure text says the server's TLS certificate cannot be
 * verified with the configuration given (sslmode verify-ca/verify-full): "certificate
 * verify failed", "server certificate for ... does not match host name", "root
 * certificate file ... does not exist" or cannot be read. The next attempt fails the
 * same way, but pg_connect keeps such a failure transient: only the worker's start, when
 * it has never reached the database, treats it as a configuration error (exit 2). */
bool pg_error_tls_unverifiable(const char *libpq_message);

/* Replaces every occurrence of secret in text (NUL-terminated, edited in place) with
 * "***". A NULL or empty secret changes nothing. */
void pg_redact(char *text, const char *secret);

/* Turns libpq's message multi-line text ("...failed\n\tIs the server running...") into one
 * line: newlines and tabs become spaces, trailing white space is dropped. */
void pg_one_line(char *text);

/* libpq's complaint about a malformed connection string echoes the offending token
 * (`invalid percent-encoded token: "s3cret%zz"`), which may be the password. Writes to out
 * a description without any token taken from url, naming the part of the URL it sits in:
 * `invalid percent-encoded token: "***" (in the password)`. */
void pg_describe_conninfo_error(const char *url, const char *libpq_message, char *out, size_t len);

#endif
