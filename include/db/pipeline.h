/* libpq pipeline mode for the executor's statements that do not wait on each other's
 * answers (the claim of a run, the end of its result transaction): sent together, read in
 * order, one round trip. Internal to worker/db. */
#ifndef CWORKER_DB_PIPELINE_H
#define CWORKER_DB_PIPELINE_H

#include "base/error.h"

#include <libpq-fe.h>
#include <stdbool.h>

/* Enters pipeline mode; -1 with err when libpq cannot (the connection is busy or gone). */
CW_MUST_CHECK int pipeline_enter(PGconn *conn, const char *what, struct cw_error *err);
/* Queues one parameterised statement (text results); -1 with err when libpq refuses it. */
CW_MUST_CHECK int pipeline_send(PGconn *conn, const char *what, const char *sql, int n,
                                const char *const *values, struct cw_error *err);
/* Queues an execution of the statement prepared as name (db_prepare_once). */
CW_MUST_CHECK int pipeline_send_prepared(PGconn *conn, const char *what, const char *name, int n,
                                         const char *const *values, struct cw_error *err);
/* Queues a sync point: the statements since the previous one end their implicit
 * transaction there (an explicit BEGIN keeps its own). */
CW_MUST_CHECK int pipeline_sync(PGconn *conn, const char *what, struct cw_error *err);
/* The next statement's result (the caller clears it), with the NULL that ends it read.
 * PGRES_PIPELINE_ABORTED: an earlier statement before the same sync failed, this one was
 * skipped. NULL only when the connection is gone. */
PGresult *pipeline_next(PGconn *conn);
/* The next statement's result when it succeeded (caller clears), else NULL with err
 * (skipped statements too: "skipped after an earlier error"). */
PGresult *pipeline_ok(PGconn *conn, const char *what, struct cw_error *err);
/* Reads up to and including the next sync point, dropping what comes before it. */
void pipeline_to_sync(PGconn *conn);
/* Leaves pipeline mode once every result and sync was read; returns rc, or -1 with err
 * when leaving fails while rc was 0. */
int pipeline_leave(PGconn *conn, int rc, struct cw_error *err);

#endif
