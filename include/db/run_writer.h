/* The one result transaction of a run, written while the archive is still being read:
 * BEGIN, the run's earlier rows removed (when it has any), stanza rows streamed into one COPY as
 * files are parsed, typed rows COPYed in bounded batches, then the run COMPLETE and COMMIT. Memory
 * stays bounded by one batch: nothing of the run is held until the end. Anything but
 * db_run_writer_commit (an error, a checksum mismatch, a time limit) ends in
 * db_run_writer_abort: ROLLBACK, so a failed run has no rows.
 *
 * While the writer is open, the connection is inside the transaction (often inside a
 * COPY): heartbeats must go through another connection (see db_tick in db/db.h). */
#ifndef CWORKER_DB_RUN_WRITER_H
#define CWORKER_DB_RUN_WRITER_H

#include "base/error.h"
#include "base/strbuf.h"
#include "db/db.h"
#include "ingest/projections.h"

#include <stdbool.h>

struct db_run_writer {
    struct db *db;
    char run_id[24];
    const char *task_id;        /* the caller's, outlives the writer */
    const struct db_tick *tick; /* may be NULL */
    bool open;                  /* the transaction is open */
    bool queued;                /* BEGIN sent in a pipeline, its result not read yet */
    bool unlock_at_commit;      /* the run lock is released in the COMMIT's round trip */
    bool unlocked;              /* ... and was */
    const char *copying;        /* the COPY target in progress, or NULL */
    unsigned long statements;   /* sent on this connection, for measuring */
};

/* The result transaction's BEGIN, queued in the pipeline the caller has open on db (the
 * claim of the run, db/run_claim.h, sends it in the claim's round trip); its result is
 * read by db_run_writer_begun once the statements queued before it were read. From the
 * queueing on, db_run_writer_abort rolls back. */
CW_MUST_CHECK int db_run_writer_queue_begin(struct db_run_writer *w, struct db *db, long run_id,
                                            const char *task_id, const struct db_tick *tick,
                                            struct cw_error *err);
CW_MUST_CHECK int db_run_writer_begun(struct db_run_writer *w, struct cw_error *err);
/* Removes the run's earlier rows (a re-parse of a finished run) inside the transaction,
 * only while the run is still PARSING for task_id; *ours=false when it no longer is
 * (nothing removed). Only needed when earlier rows may exist (db_claim.earlier_rows). */
CW_MUST_CHECK int db_run_writer_clean(struct db_run_writer *w, bool *ours, struct cw_error *err);
/* Appends stanza rows (COPY text, whole rows) to the run's stanza COPY, starting it when
 * none is in progress. rows is left as it was (the caller resets it). */
CW_MUST_CHECK int db_run_writer_stanzas(struct db_run_writer *w, const struct strbuf *rows,
                                        struct cw_error *err);
/* COPYs one typed table's rows (ending the stanza COPY in progress first). */
CW_MUST_CHECK int db_run_writer_typed(struct db_run_writer *w, enum proj_table t,
                                      const struct strbuf *rows, struct cw_error *err);
/* Ends the COPY in progress, then in one round trip (pipeline mode) marks the run COMPLETE
 * (only while still ours), COMMITs and, with unlock_at_commit, releases the run lock
 * (unlocked says whether it was). *written=false: rolled back, the run was no longer ours.
 * The writer is closed either way. */
CW_MUST_CHECK int db_run_writer_commit(struct db_run_writer *w, const char *metrics_json,
                                       const char *result_json, bool *written,
                                       struct cw_error *err);
/* A savepoint around the rows of one file too large to hold until it is known to parse
 * (tasks/parse_run.c): each ends the COPY in progress first. rollback_to removes what was
 * written since db_run_writer_savepoint and releases the savepoint, release keeps it. */
CW_MUST_CHECK int db_run_writer_savepoint(struct db_run_writer *w, struct cw_error *err);
CW_MUST_CHECK int db_run_writer_release(struct db_run_writer *w, struct cw_error *err);
CW_MUST_CHECK int db_run_writer_rollback_to(struct db_run_writer *w, struct cw_error *err);
/* Aborts the COPY in progress and rolls back (best effort; a lost connection rolls back
 * by itself). Safe on a closed writer. */
void db_run_writer_abort(struct db_run_writer *w);

#endif
