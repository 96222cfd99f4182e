/* The one result transaction of a run, written while the archive is still being read:
 * BEGIN, the run's earlier rows removed, stanza rows streamed into one COPY as files are
 * parsed, typed rows COPYed in bounded batches, then the run COMPLETE and COMMIT. Memory
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
    const char *copying;        /* the COPY target in progress, or NULL */
    unsigned long statements;   /* sent on this connection, for measuring */
};

/* BEGIN, and in the same round trip (libpq pipeline mode) the check that the run is still
 * PARSING for task_id with the removal of its earlier rows. *ours=false: the run is no
 * longer this task's; the writer is then closed and nothing was changed. */
CW_MUST_CHECK int db_run_writer_begin(struct db_run_writer *w, struct db *db, long run_id,
                                      const char *task_id, const struct db_tick *tick, bool *ours,
                                      struct cw_error *err);
/* Appends stanza rows (COPY text, whole rows) to the run's stanza COPY, starting it when
 * none is in progress. rows is left as it was (the caller resets it). */
CW_MUST_CHECK int db_run_writer_stanzas(struct db_run_writer *w, const struct strbuf *rows,
                                        struct cw_error *err);
/* COPYs one typed table's rows (ending the stanza COPY in progress first). */
CW_MUST_CHECK int db_run_writer_typed(struct db_run_writer *w, enum proj_table t,
                                      const struct strbuf *rows, struct cw_error *err);
/* Ends the COPY in progress, marks the run COMPLETE (only while still ours) and COMMITs.
 * *written=false: rolled back, the run was no longer ours. The writer is closed either way. */
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
