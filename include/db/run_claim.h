/* Steps 1-2 of parse_run in one round trip (libpq pipeline mode): wait for the run's
 * advisory lock, then, in one statement whose snapshot is taken once the lock is held,
 * load the run, count this execution in cworker_tasks (or, for a COMPLETE run, record its
 * final state under this task id), mark the run PARSING for the task and load its files;
 * and after that statement's commit, the BEGIN of the result transaction. The claim
 * statement is prepared once per connection (db_internal.h).
 *
 * Per-run exclusion: the claim statement runs only when the lock was granted (a lock
 * timeout aborts the pipeline up to its sync, the claim with it). The lock is
 * session-level: it is held until db_run_unlock (or db_run_writer_commit with
 * unlock_at_commit), or until the connection ends. */
#ifndef CWORKER_DB_RUN_CLAIM_H
#define CWORKER_DB_RUN_CLAIM_H

#include "base/error.h"
#include "db/db.h"
#include "db/run_writer.h"

#include <stdbool.h>
#include <stddef.h>

struct db_claim_request {
    long run_id;
    const char *task_id;
    int retries;
    /* More executions than this at one retry number: the task is crash-looping and the
     * run is not marked PARSING (the caller fails it). */
    int max_attempts;
    /* A COMPLETE run: record its final state under task_id (a duplicate delivery). */
    bool adopt_complete;
    double lock_wait_s;
    /* Non-NULL: the result transaction is begun in the same round trip, and left open
     * only when the run was marked (else rolled back before returning). */
    struct db_run_writer *writer;
    const struct db_tick *tick; /* the writer's */
};

struct db_claim {
    bool locked;                /* the run lock is held */
    bool found;                 /* the run exists */
    char status[51];            /* its status before the claim, upper-cased */
    struct db_task_record task; /* attempts 0: not counted (the run was COMPLETE) */
    bool marked;                /* PARSING for this task now, committed */
    bool earlier_rows;          /* marked, and the run has stanza rows of an earlier parse */
    struct db_file *files;      /* when marked; owned */
    size_t nfiles;
};

/* 0 with *c filled, or -1 with err: c->locked=false then means the lock could not be
 * waited for (nothing else was done); locked=true, that the claim statement failed.
 * Not granted within lock_wait_s: 0 with locked=false. */
CW_MUST_CHECK int db_run_claim(struct db *db, const struct db_claim_request *req,
                               struct db_claim *c, struct cw_error *err);
void db_claim_free(struct db_claim *c);

#endif
