/* The streaming result transaction of a run (db/run_writer.h). */
#include "db/run_writer.h"
#include "db/db_internal.h"
#include "db/pipeline.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COPY_CHUNK (1 << 20)

/* The condition every outcome write carries: $1 the run id, $2 the task id. */
#define STILL_OURS "id = $1::bigint AND upper(status) = 'PARSING' AND task_id = $2"

/* Earlier rows of the run (a re-parse of a finished run) go in the same transaction as the
 * new ones, so a failed re-parse leaves them. One statement for a SELECT and seven
 * DELETEs: data-modifying CTEs always run, and each removes nothing unless the run is
 * still ours. */
#define DELETE_IF_OURS(t)                                                                          \
    "d_" t " AS (DELETE FROM " t " WHERE run_id = $1::bigint AND EXISTS (SELECT 1 FROM ours)), "
static const char CLEAN_SQL[] =
    "WITH ours AS (SELECT 1 FROM ingestion_runs WHERE " STILL_OURS "), " DELETE_IF_OURS("inputs")
        DELETE_IF_OURS("props") DELETE_IF_OURS("transforms") DELETE_IF_OURS("indexes")
            DELETE_IF_OURS("outputs") DELETE_IF_OURS("serverclasses")
                DELETE_IF_OURS("stanzas") "x AS (SELECT 1) "
                                          "SELECT 1 FROM ours";

int db_run_writer_queue_begin(struct db_run_writer *w, struct db *db, long run_id,
                              const char *task_id, const struct db_tick *tick, struct cw_error *err)
{
    memset(w, 0, sizeof *w);
    w->db = db;
    w->task_id = task_id;
    w->tick = tick;
    format_run_id(w->run_id, sizeof w->run_id, run_id);
    if (pipeline_send(db->conn, "starting the result transaction", "BEGIN", 0, NULL, err) != 0)
        return -1;
    w->statements++;
    w->queued = true;
    w->open = true; /* sent: db_run_writer_abort rolls back whatever came of it */
    return 0;
}

int db_run_writer_begun(struct db_run_writer *w, struct cw_error *err)
{
    if (!w->queued)
        return 0;
    w->queued = false;
    PGresult *res = pipeline_ok(w->db->conn, "starting the result transaction", err);
    PQclear(res);
    return res ? 0 : -1;
}

int db_run_writer_clean(struct db_run_writer *w, bool *ours, struct cw_error *err)
{
    const char *values[] = {w->run_id, w->task_id};
    w->statements++;
    PGresult *res =
        exec_params(w->db, "removing earlier rows of the run", CLEAN_SQL, 2, values, err);
    if (!res)
        return -1;
    *ours = PQntuples(res) > 0;
    PQclear(res);
    return 0;
}

/* COPY data is sent without blocking: libpq keeps what the socket does not take yet, and
 * the caller parses the next file while PostgreSQL works through this one. Before more
 * rows are queued, the previous ones are waited out (wait_sent), so libpq never holds more
 * than one batch: the memory bound stays. The tick runs while waiting, so heartbeats go
 * on however slowly the server reads. */
#define WAIT_SLICE_MS 100

static int wait_sent(struct db_run_writer *w, struct cw_error *err)
{
    PGconn *conn = w->db->conn;
    int r;
    while ((r = PQflush(conn)) == 1) {
        struct pollfd p = {.fd = PQsocket(conn), .events = POLLOUT | POLLIN};
        if (poll(&p, 1, WAIT_SLICE_MS) < 0 && errno != EINTR) {
            CW_FAIL(err, CW_ERR_TRANSIENT, "waiting for PostgreSQL to read COPY data: %s",
                    strerror(errno));
            return -1;
        }
        if ((p.revents & POLLIN) && PQconsumeInput(conn) != 1)
            break; /* the connection failed: PQflush says so next */
        if (w->tick && w->tick->fn(w->tick->ctx, err) != 0)
            return -1;
    }
    if (r < 0) {
        pg_fail(err, conn, NULL, "sending COPY data", NULL);
        CW_WRAP(err, "COPY %s", w->copying);
        return -1;
    }
    return 0;
}

static int start_copy(struct db_run_writer *w, const char *target, struct cw_error *err)
{
    char sql[512];
    snprintf(sql, sizeof sql, "COPY %s FROM STDIN", target);
    PGresult *res = PQexec(w->db->conn, sql);
    w->statements++;
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        rc = pg_fail(err, w->db->conn, res, "starting COPY", NULL);
        CW_WRAP(err, "COPY %s", target);
    } else {
        w->copying = target;
        (void)PQsetnonblocking(w->db->conn, 1); /* on failure, sends simply block */
    }
    PQclear(res);
    return rc;
}

/* Ends the COPY in progress; aborted (with the transaction) when abort_reason is set. */
static int end_copy(struct db_run_writer *w, const char *abort_reason, struct cw_error *err)
{
    if (!w->copying)
        return 0;
    PGconn *conn = w->db->conn;
    int rc = abort_reason ? 0 : wait_sent(w, err);
    const char *target = w->copying;
    w->copying = NULL;
    (void)PQsetnonblocking(conn, 0); /* blocking again: PQputCopyEnd then flushes */
    if (PQputCopyEnd(conn, rc || abort_reason ? "aborted by the worker" : NULL) != 1 && rc == 0)
        rc = pg_fail(err, conn, NULL, "ending COPY", NULL);
    PGresult *res = PQgetResult(conn);
    if (rc == 0 && !abort_reason && PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = pg_fail(err, conn, res, "copying rows", NULL);
    PQclear(res);
    while ((res = PQgetResult(conn)) != NULL)
        PQclear(res);
    if (rc != 0)
        CW_WRAP(err, "COPY %s", target);
    return rc;
}

/* Queues rows once the previous ones are sent, in chunks, with the tick between them;
 * returns with them possibly still on their way. */
static int send_rows(struct db_run_writer *w, const struct strbuf *rows, struct cw_error *err)
{
    if (wait_sent(w, err) != 0)
        return -1;
    for (size_t off = 0; off < rows->len; off += COPY_CHUNK) {
        size_t len = rows->len - off < COPY_CHUNK ? rows->len - off : COPY_CHUNK;
        if (PQputCopyData(w->db->conn, rows->data + off, (int)len) != 1) {
            pg_fail(err, w->db->conn, NULL, "sending COPY data", NULL);
            CW_WRAP(err, "COPY %s", w->copying);
            return -1;
        }
        if (off + len < rows->len && w->tick && w->tick->fn(w->tick->ctx, err) != 0)
            return -1;
    }
    if (PQflush(w->db->conn) < 0) {
        pg_fail(err, w->db->conn, NULL, "sending COPY data", NULL);
        CW_WRAP(err, "COPY %s", w->copying);
        return -1;
    }
    return 0;
}

int db_run_writer_stanzas(struct db_run_writer *w, const struct strbuf *rows, struct cw_error *err)
{
    if (rows->len == 0)
        return 0;
    if (w->copying != STANZAS_COPY_TARGET &&
        (end_copy(w, NULL, err) != 0 || start_copy(w, STANZAS_COPY_TARGET, err) != 0))
        return -1;
    return send_rows(w, rows, err);
}

int db_run_writer_typed(struct db_run_writer *w, enum proj_table t, const struct strbuf *rows,
                        struct cw_error *err)
{
    if (rows->len == 0)
        return 0;
    if (end_copy(w, NULL, err) != 0 || start_copy(w, proj_copy_target(t), err) != 0)
        return -1;
    if (send_rows(w, rows, err) != 0)
        return -1;
    return end_copy(w, NULL, err);
}

/* The run COMPLETE and the task's outcome, both only when the run is still ours; when it
 * is not, cworker_require (migration 007) raises CW001, which aborts the transaction and
 * skips the COMMIT queued after it. clock_timestamp(), not now() (the transaction's
 * start): heartbeats written on the other connection during the COPY must not be later
 * than the completion. */
static const char COMPLETE_SQL[] =
    "WITH run AS (UPDATE ingestion_runs SET status = 'COMPLETE', "
    "  completed_at = clock_timestamp(), last_heartbeat = clock_timestamp(), "
    "  error_message = NULL, error_traceback = NULL, "
    "  metrics = $3::json WHERE " STILL_OURS " RETURNING id, completed_at), "
    "task AS (INSERT INTO cworker_tasks AS t (task_id, run_id, status, metrics, result, "
    "  completed_at) "
    "  SELECT $2, id, 'COMPLETE', $3::json, $4::json, completed_at FROM run "
    "  ON CONFLICT (task_id) DO UPDATE SET status = 'COMPLETE', metrics = $3::json, "
    "  result = $4::json, error_message = NULL, error_traceback = NULL, "
    "  completed_at = EXCLUDED.completed_at, updated_at = now() RETURNING task_id) "
    "SELECT cworker_require(EXISTS (SELECT 1 FROM task), "
    "  format('run %s is no longer PARSING for task %s', $1::bigint, $2::text))";

#define COMPLETE_NAME  "cworker_complete"
#define NOT_OURS_STATE "CW001"

/* Reads the COMPLETE's result: *written, or (not ours) false with no error. */
static int read_complete(struct db_run_writer *w, bool *written, struct cw_error *err)
{
    PGconn *conn = w->db->conn;
    PGresult *res = pipeline_next(conn);
    ExecStatusType st = PQresultStatus(res);
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    int rc = 0;
    if (st == PGRES_TUPLES_OK)
        *written = true;
    else if (!(state && strcmp(state, NOT_OURS_STATE) == 0))
        rc = pg_fail(err, conn, res, "marking the run COMPLETE", COMPLETE_SQL);
    PQclear(res);
    return rc;
}

/* The COMPLETE, the COMMIT and (unlock_at_commit) the release of the run lock, in one
 * round trip. */
static int complete_pipelined(struct db_run_writer *w, const char *metrics_json,
                              const char *result_json, bool *written, struct cw_error *err)
{
    PGconn *conn = w->db->conn;
    const char *values[] = {w->run_id, w->task_id, metrics_json, result_json};
    const char *lock_values[] = {w->run_id};
    const char *what = "marking the run COMPLETE";
    if (db_prepare_once(w->db, DB_STMT_COMPLETE, COMPLETE_NAME, COMPLETE_SQL, 4, err) != 0 ||
        pipeline_enter(conn, what, err) != 0)
        return -1;
    int rc = pipeline_send_prepared(conn, what, COMPLETE_NAME, 4, values, err);
    if (rc == 0)
        rc = pipeline_send(conn, "committing", "COMMIT", 0, NULL, err);
    if (rc == 0 && w->unlock_at_commit)
        rc = pipeline_send(conn, "unlocking the run", "SELECT pg_advisory_unlock($1::bigint)", 1,
                           lock_values, err);
    if (rc == 0)
        rc = pipeline_sync(conn, what, err);
    if (rc != 0) {
        (void)pipeline_leave(conn, rc, err);
        return rc; /* nothing was sent: the caller rolls back */
    }
    w->statements += w->unlock_at_commit ? 3 : 2;
    rc = read_complete(w, written, err);
    PGresult *res = pipeline_next(conn);
    if (rc == 0 && *written && PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = pg_fail(err, conn, res, "committing", "COMMIT");
        *written = false;
    }
    PQclear(res);
    if (w->unlock_at_commit) {
        res = pipeline_next(conn);
        w->unlocked = PQresultStatus(res) == PGRES_TUPLES_OK;
        PQclear(res);
    }
    pipeline_to_sync(conn);
    if (*written)
        w->open = false;
    return pipeline_leave(conn, rc, err);
}

int db_run_writer_commit(struct db_run_writer *w, const char *metrics_json, const char *result_json,
                         bool *written, struct cw_error *err)
{
    *written = false;
    int rc = end_copy(w, NULL, err);
    if (rc == 0)
        rc = complete_pipelined(w, metrics_json, result_json, written, err);
    if (rc != 0 || !*written)
        db_run_writer_abort(w);
    return rc;
}

void db_run_writer_abort(struct db_run_writer *w)
{
    struct cw_error ignored;
    if (w->copying && w->db->conn)
        (void)end_copy(w, "aborted by the worker", &ignored);
    w->copying = NULL;
    if (w->open && w->db->conn && PQtransactionStatus(w->db->conn) != PQTRANS_IDLE) {
        w->statements++;
        (void)exec_simple(w->db, "rolling back", "ROLLBACK", 0, NULL, &ignored);
    }
    w->open = false;
}

/* ---- a savepoint around one large file ------------------------------------------------ */

#define FILE_SAVEPOINT "cw_file"

/* Ends the COPY in progress (a savepoint cannot be taken inside one), then runs sql. */
static int savepoint_statement(struct db_run_writer *w, const char *what, const char *sql,
                               struct cw_error *err)
{
    if (end_copy(w, NULL, err) != 0)
        return -1;
    w->statements++;
    return exec_simple(w->db, what, sql, 0, NULL, err);
}

int db_run_writer_savepoint(struct db_run_writer *w, struct cw_error *err)
{
    return savepoint_statement(w, "starting the rows of a file", "SAVEPOINT " FILE_SAVEPOINT, err);
}

int db_run_writer_release(struct db_run_writer *w, struct cw_error *err)
{
    return savepoint_statement(w, "keeping the rows of a file", "RELEASE SAVEPOINT " FILE_SAVEPOINT,
                               err);
}

int db_run_writer_rollback_to(struct db_run_writer *w, struct cw_error *err)
{
    if (savepoint_statement(w, "removing the rows of a file",
                            "ROLLBACK TO SAVEPOINT " FILE_SAVEPOINT, err) != 0)
        return -1;
    w->statements++;
    return exec_simple(w->db, "removing the rows of a file", "RELEASE SAVEPOINT " FILE_SAVEPOINT, 0,
                       NULL, err);
}
