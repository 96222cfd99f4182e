/* libpq access for the executor: the application's ingestion_runs/files rows, the worker's
 * cworker_tasks record, per-run advisory locks, and the one-transaction COPY of results.
 * Errors are classified by db/pg_error.h (err->unavailable: the connection is gone).
 * Messages never contain the connection string or the password.
 *
 * Final states are final: every write of a run's outcome (db_run_complete,
 * db_run_record_error) is conditional, in the same SQL statement, on the run still being
 * PARSING under the writing task's id. When it is not (another delivery finished it, an
 * executor was killed after its COMMIT, the application started a new parse), the write
 * is a no-op and *written is false. Run ids are compared as bigint: one beyond the
 * integer column's range is not found, never an SQL error. */
#ifndef CWORKER_DB_H
#define CWORKER_DB_H

#include "base/error.h"
#include "ingest/projections.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db {
    PGconn *conn;      /* NULL when not connected */
    unsigned prepared; /* the named statements (db_internal.h) prepared on conn */
};

/* A run as the worker needs it. status is upper-cased (lower-case values are tolerated). */
struct db_run {
    long id;
    char status[51];
    int retry_count;
    char task_id[256]; /* "" when none */
};

/* One upload of a run (the application's `files` row). Owned by the array that holds it
 * (db_claim.files, db/run_claim.h). */
struct db_file {
    long id;
    char *path;
    char *sha256;
    long long size_bytes;
    char *stored_object_key;
};

/* What the worker recorded for a task id in cworker_tasks (read by the claim). */
struct db_task_record {
    int attempts;          /* executions started at this retry number, this one included */
    char final_status[51]; /* "" while the task has not finished */
    char *result_json;     /* owned; NULL when none */
};

/* The newest of migrations/ that this binary's statements need. An executor's connection
 * (db_connect) to a database without it in cworker_schema_migrations is refused as an
 * outage (CW_ERR_TRANSIENT, unavailable): runs wait, requeued with no retry consumed, until
 * `cworker migrate` has run, instead of failing on a missing column. */
#define DB_SCHEMA_LATEST "008_cworker_require.sql"

/* Connects as application_name "cworker/<role>" (db/pg.h); db_connect as "executor", and
 * checks the schema (DB_SCHEMA_LATEST). */
CW_MUST_CHECK int db_connect_as(struct db *db, const char *url, const char *role,
                                struct cw_error *err);
CW_MUST_CHECK int db_connect(struct db *db, const char *url, struct cw_error *err);
void db_close(struct db *db);
/* True when the connection is usable; resets a broken one once. */
bool db_ensure_connected(struct db *db);

/* Session-level advisory lock on the run: held while one execution runs it, released
 * by db_run_unlock or when the connection ends (so a dead owner never blocks a run).
 * A parse_run execution takes it in its claim (db/run_claim.h); these are for the
 * sweeper and the record of a forced failure. */
CW_MUST_CHECK int db_run_try_lock(struct db *db, long run_id, bool *locked, struct cw_error *err);
void db_run_unlock(struct db *db, long run_id);
/* Waits up to timeout_s for the run lock (another delivery of the run is executing);
 * locked=false when it is still held then. */
CW_MUST_CHECK int db_run_lock_wait(struct db *db, long run_id, double timeout_s, bool *locked,
                                   struct cw_error *err);
/* found=false when there is no such run. */
CW_MUST_CHECK int db_run_load(struct db *db, long run_id, struct db_run *run, bool *found,
                              struct cw_error *err);
void db_task_record_free(struct db_task_record *rec);
/* last_heartbeat = now(); with progress_json (may be NULL) stored for the task. */
CW_MUST_CHECK int db_run_heartbeat(struct db *db, long run_id, const char *task_id,
                                   const char *progress_json, struct cw_error *err);
void db_files_free(struct db_file *files, size_t n);

/* Called between COPY chunks of a long write (db/run_writer.h), so the caller can keep the
 * run's heartbeat going (on another connection: this one is inside the transaction). */
struct db_tick {
    int (*fn)(void *ctx, struct cw_error *err);
    void *ctx;
};

/* Step 6, the result transaction, is db/run_writer.h: rows stream into it as the run is
 * parsed. */

/* A failure to record for a run. */
struct db_run_error {
    bool final;              /* FAILED; false: a pending retry (status stays PARSING) */
    int retry_count;         /* the run's retry_count from now on */
    double retry_in;         /* seconds until the retry is due (final=false) */
    const char *retry_queue; /* the delay queue it waits in (final=false), or NULL: unknown */
    const char *message, *traceback, *metrics_json;
    double stale_for; /* > 0: only while the run's heartbeat is at least this old (sweeper) */
};
/* Records e for the run and in the task's cworker_tasks record, in one statement.
 * *written=false (and nothing changed) when the run is no longer PARSING for task_id. */
CW_MUST_CHECK int db_run_record_error(struct db *db, long run_id, const char *task_id,
                                      const struct db_run_error *e, bool *written,
                                      struct cw_error *err);

/* A PARSING run a worker started whose heartbeat is older than the visibility timeout and
 * that is not waiting for a scheduled retry: its owner may be gone. */
struct db_stuck_run {
    long run_id;
    char task_id[256];
    int retry_count;
    double silent_for; /* seconds since the last heartbeat */
};
CW_MUST_CHECK int db_stuck_runs(struct db *db, double visibility_timeout,
                                struct db_stuck_run **runs, size_t *n, struct cw_error *err);
/* Claims a stuck run for a retry: bumps retry_count and the heartbeat, records the message.
 * claimed=false when another sweeper (or the owner) got there first. */
CW_MUST_CHECK int db_stuck_run_claim(struct db *db, const struct db_stuck_run *run,
                                     double visibility_timeout, const char *message, bool *claimed,
                                     struct cw_error *err);

#endif
