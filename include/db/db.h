/* libpq access for the executor: the application's ingestion_runs/files rows, the worker's
 * cworker_tasks record, per-run advisory locks, and the one-transaction COPY of results.
 * Errors: connection trouble, deadlocks and resource exhaustion are CW_ERR_TRANSIENT;
 * other SQL errors CW_ERR_PERMANENT. Messages never contain the connection string. */
#ifndef CWORKER_DB_H
#define CWORKER_DB_H

#include "base/error.h"
#include "ingest/projections.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

struct db {
    PGconn *conn; /* NULL when not connected */
};

/* A run as the worker needs it. status is upper-cased (lower-case values are tolerated). */
struct db_run {
    long id;
    char status[51];
    int retry_count;
};

/* One upload of a run (the application's `files` row). Owned by the array from db_files_load. */
struct db_file {
    long id;
    char *path;
    char *sha256;
    long long size_bytes;
    char *stored_object_key;
};

/* What the worker recorded for a task id in cworker_tasks. */
struct db_task_record {
    int attempts;          /* executions started at this retry number, this one included */
    char final_status[51]; /* "" while the task has not finished */
    char *result_json;     /* owned; NULL when none */
};

CW_MUST_CHECK int db_connect(struct db *db, const char *url, struct cw_error *err);
void db_close(struct db *db);
/* True when the connection is usable; resets a broken one once. */
bool db_ensure_connected(struct db *db);

/* Session-level advisory lock on the run: held while one execution runs it, released
 * by db_run_unlock or when the connection ends (so a dead owner never blocks a run). */
CW_MUST_CHECK int db_run_try_lock(struct db *db, long run_id, bool *locked, struct cw_error *err);
void db_run_unlock(struct db *db, long run_id);
/* Waits up to timeout_s for the run lock (another delivery of the run is executing);
 * locked=false when it is still held then. */
CW_MUST_CHECK int db_run_lock_wait(struct db *db, long run_id, double timeout_s, bool *locked,
                                   struct cw_error *err);
/* Records the run's final state (COMPLETE/FAILED) under task_id too, when task_id has no
 * record yet: a duplicate delivery (the user clicked twice) whose run another task
 * finished. The application's late PARSING commit for it is then undone by the trigger. */
CW_MUST_CHECK int db_task_adopt_final_state(struct db *db, long run_id, const char *task_id,
                                            struct cw_error *err);

/* found=false when there is no such run. */
CW_MUST_CHECK int db_run_load(struct db *db, long run_id, struct db_run *run, bool *found,
                              struct cw_error *err);
/* Counts this execution in cworker_tasks and returns the task's record. */
CW_MUST_CHECK int db_task_begin(struct db *db, long run_id, const char *task_id, int retries,
                                struct db_task_record *rec, struct cw_error *err);
void db_task_record_free(struct db_task_record *rec);
/* Steps 1-2 of parse_run: task_id, retry_count, PARSING, started_at, heartbeat; committed. */
CW_MUST_CHECK int db_run_mark_parsing(struct db *db, long run_id, const char *task_id, int retries,
                                      struct cw_error *err);
/* last_heartbeat = now(); with progress_json (may be NULL) stored for the task. */
CW_MUST_CHECK int db_run_heartbeat(struct db *db, long run_id, const char *task_id,
                                   const char *progress_json, struct cw_error *err);
CW_MUST_CHECK int db_files_load(struct db *db, long run_id, struct db_file **files, size_t *n,
                                struct cw_error *err);
void db_files_free(struct db_file *files, size_t n);

/* Called between COPY chunks of a long write, so the caller can keep the run's heartbeat
 * going (on another connection: this one is inside the transaction). */
struct db_tick {
    int (*fn)(void *ctx, struct cw_error *err);
    void *ctx;
};

/* Step 6, one transaction: earlier rows of the run removed, stanzas and typed rows
 * COPYed, the run COMPLETE with metrics, the task's outcome recorded. tick may be NULL. */
CW_MUST_CHECK int db_run_complete(struct db *db, long run_id, const char *task_id,
                                  const struct run_rows *rows, const char *metrics_json,
                                  const char *result_json, const struct db_tick *tick,
                                  struct cw_error *err);
/* Records a final failure (status FAILED) or, with final=false, a pending retry due in
 * retry_in seconds (status stays PARSING) with the message, traceback and metrics. */
CW_MUST_CHECK int db_run_record_error(struct db *db, long run_id, const char *task_id, bool final,
                                      int retry_count, double retry_in, const char *message,
                                      const char *traceback, const char *metrics_json,
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
