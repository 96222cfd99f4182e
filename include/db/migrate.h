/* `cworker migrate`: applies migrations/NNN_*.sql to PostgreSQL, once each, in order. */
#ifndef CWORKER_MIGRATE_H
#define CWORKER_MIGRATE_H

#include "base/error.h"

/* Applies every `*.sql` file of `migrations_dir` in file-name (strcmp) order that is not
 * yet recorded in the table `cworker_schema_migrations` (filename, checksum = SHA-256
 * hex of the file, applied_at), which it creates when missing.
 *
 * Each file runs in its own transaction together with its record, so a failing file
 * leaves nothing behind and the files before it stay applied. Files therefore must not
 * contain transaction control or statements that refuse a transaction block
 * (CREATE INDEX CONCURRENTLY, VACUUM). A recorded file whose checksum changed is
 * logged as a warning and not re-run.
 *
 * Safe when several workers start at once: the whole run holds a session advisory lock
 * (MIGRATE_LOCK_KEY) taken before the applied list is read, so the others wait and
 * then find everything applied.
 *
 * `database_url` is a libpq URI or conninfo string; a SQLAlchemy-style scheme
 * (`postgresql+psycopg2://`) is accepted too. Returns 0, or -1 with `err` filled:
 * CW_ERR_TRANSIENT when the server cannot be reached or the connection drops,
 * CW_ERR_PERMANENT for a missing URL or directory, an unreadable file, or an SQL error
 * (the message names the file and carries libpq's text; never the connection string). */
CW_MUST_CHECK int migrate_run(const char *database_url, const char *migrations_dir,
                              struct cw_error *err);

/* The advisory lock key: the bytes of "cworker" as a bigint, far from any run id that
 * the per-run locks (pg_try_advisory_lock(run_id)) use. */
#define MIGRATE_LOCK_KEY 0x63776f726b6572LL

#endif
