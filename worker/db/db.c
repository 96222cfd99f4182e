/* libpq queries of the executor: runs, files, task records, locks, COPY of results. */
#include "db/db.h"
#include "base/log.h"
#include "base/xalloc.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Namespace of the per-run advisory locks (two-key form), distinct from migrate's lock. */
#define RUN_LOCK_NAMESPACE 0x63776b72 /* "cwkr" */
#define COPY_CHUNK         (1 << 20)

/* SQLSTATE classes that say "try again later": connection exception (08), transaction
 * rollback such as deadlock/serialization (40), insufficient resources (53),
 * operator intervention such as admin shutdown (57), system error (58). */
static bool sqlstate_is_transient(const char *state)
{
    if (!state)
        return true; /* no SQLSTATE: the connection itself failed */
    if (strcmp(state, "08P01") == 0)
        return false; /* protocol violation: our bug, it would fail the same way again */
    return strncmp(state, "08", 2) == 0 || strncmp(state, "40", 2) == 0 ||
           strncmp(state, "53", 2) == 0 || strncmp(state, "57", 2) == 0 ||
           strncmp(state, "58", 2) == 0;
}

static void trim_newline(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
}

static int fail_pg(struct db *db, const PGresult *res, const char *what, struct cw_error *err)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    char msg[CW_ERROR_DETAIL_MAX];
    const char *detail = res ? PQresultErrorMessage(res) : NULL;
    if (!detail || !*detail)
        detail = db->conn ? PQerrorMessage(db->conn) : "not connected";
    snprintf(msg, sizeof msg, "%s", detail);
    trim_newline(msg);
    /* The connection itself went away (server restart, admin shutdown, network): an
     * outage of the database, not the task's trouble. */
    bool lost = (!state || strncmp(state, "08", 2) == 0 || strncmp(state, "57P0", 4) == 0 ||
                 (db->conn && PQstatus(db->conn) != CONNECTION_OK)) &&
                !(state && strcmp(state, "08P01") == 0);
    bool transient = sqlstate_is_transient(state) || lost;
    CW_FAIL(err, transient ? CW_ERR_TRANSIENT : CW_ERR_PERMANENT,
            "database error during %s: %s%s%s%s", what, msg, state ? " (SQLSTATE " : "",
            state ? state : "", state ? ")" : "");
    err->unavailable = lost;
    return -1;
}

/* Runs a parameterised statement; returns the result (caller clears) or NULL with err. */
static PGresult *exec_params(struct db *db, const char *what, const char *sql, int n,
                             const char *const *values, struct cw_error *err)
{
    if (!db->conn) {
        CW_FAIL(err, CW_ERR_TRANSIENT, "database error during %s: not connected", what);
        err->unavailable = true;
        return NULL;
    }
    PGresult *res = PQexecParams(db->conn, sql, n, NULL, values, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    fail_pg(db, res, what, err);
    PQclear(res);
    return NULL;
}

static int exec_simple(struct db *db, const char *what, const char *sql, int n,
                       const char *const *values, struct cw_error *err)
{
    PGresult *res = exec_params(db, what, sql, n, values, err);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

/* Server notices (e.g. "you don't own a lock" after a reconnect) go to the log, never
 * raw to stderr. */
static void log_notice(void *arg, const char *message)
{
    (void)arg;
    log_debug("PostgreSQL: %s", message);
}

int db_connect(struct db *db, const char *url, struct cw_error *err)
{
    db->conn = PQconnectdb(url ? url : "");
    if (PQstatus(db->conn) != CONNECTION_OK) {
        char msg[CW_ERROR_DETAIL_MAX];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(db->conn));
        trim_newline(msg);
        PQfinish(db->conn);
        db->conn = NULL;
        CW_FAIL(err, CW_ERR_TRANSIENT, "cannot connect to PostgreSQL: %s", msg);
        err->unavailable = true;
        return -1;
    }
    PQsetNoticeProcessor(db->conn, log_notice, NULL);
    return 0;
}

void db_close(struct db *db)
{
    if (db->conn)
        PQfinish(db->conn);
    db->conn = NULL;
}

bool db_ensure_connected(struct db *db)
{
    if (!db->conn)
        return false;
    if (PQstatus(db->conn) == CONNECTION_OK)
        return true;
    PQreset(db->conn);
    return PQstatus(db->conn) == CONNECTION_OK;
}

static void format_long(char *buf, size_t len, long v)
{
    snprintf(buf, len, "%ld", v);
}

int db_run_try_lock(struct db *db, long run_id, bool *locked, struct cw_error *err)
{
    char ns[24], id[24];
    format_long(ns, sizeof ns, RUN_LOCK_NAMESPACE);
    format_long(id, sizeof id, run_id);
    const char *values[] = {ns, id};
    PGresult *res = exec_params(db, "locking the run",
                                "SELECT pg_try_advisory_lock($1::int, $2::int)", 2, values, err);
    if (!res)
        return -1;
    *locked = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    return 0;
}

int db_run_lock_wait(struct db *db, long run_id, double timeout_s, bool *locked,
                     struct cw_error *err)
{
    char ns[24], id[24], timeout[32];
    format_long(ns, sizeof ns, RUN_LOCK_NAMESPACE);
    format_long(id, sizeof id, run_id);
    snprintf(timeout, sizeof timeout, "%d", (int)(timeout_s * 1000));
    const char *values[] = {timeout};
    if (exec_simple(db, "setting the lock timeout", "SELECT set_config('lock_timeout', $1, false)",
                    1, values, err) != 0)
        return -1;
    const char *lock_values[] = {ns, id};
    PGresult *res = PQexecParams(db->conn, "SELECT pg_advisory_lock($1::int, $2::int)", 2, NULL,
                                 lock_values, NULL, NULL, 0);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    int rc = 0;
    *locked = PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!*locked && !(state && strcmp(state, "55P03") == 0)) /* 55P03: lock_timeout */
        rc = fail_pg(db, res, "waiting for the run lock", err);
    PQclear(res);
    struct cw_error ignored;
    (void)exec_simple(db, "resetting the lock timeout", "RESET lock_timeout", 0, NULL, &ignored);
    return rc;
}

int db_task_adopt_final_state(struct db *db, long run_id, const char *task_id, struct cw_error *err)
{
    char id[24];
    format_long(id, sizeof id, run_id);
    const char *values[] = {task_id, id};
    return exec_simple(db, "recording a duplicate task's outcome",
                       "INSERT INTO cworker_tasks (task_id, run_id, status, completed_at, "
                       "error_message, error_traceback, metrics) "
                       "SELECT $1, id, upper(status), completed_at, error_message, "
                       "error_traceback, metrics FROM ingestion_runs "
                       "WHERE id = $2::int AND upper(status) IN ('COMPLETE', 'FAILED') "
                       "ON CONFLICT (task_id) DO NOTHING",
                       2, values, err);
}

void db_run_unlock(struct db *db, long run_id)
{
    char ns[24], id[24];
    format_long(ns, sizeof ns, RUN_LOCK_NAMESPACE);
    format_long(id, sizeof id, run_id);
    const char *values[] = {ns, id};
    struct cw_error ignored;
    /* If this fails the connection is broken, and its end releases the lock anyway. */
    PGresult *res = exec_params(db, "unlocking the run",
                                "SELECT pg_advisory_unlock($1::int, $2::int)", 2, values, &ignored);
    PQclear(res);
}

int db_run_load(struct db *db, long run_id, struct db_run *run, bool *found, struct cw_error *err)
{
    char id[24];
    format_long(id, sizeof id, run_id);
    const char *values[] = {id};
    PGresult *res = exec_params(db, "loading the run",
                                "SELECT id, upper(status), retry_count FROM ingestion_runs "
                                "WHERE id = $1::int",
                                1, values, err);
    if (!res)
        return -1;
    *found = PQntuples(res) == 1;
    if (*found) {
        run->id = strtol(PQgetvalue(res, 0, 0), NULL, 10);
        snprintf(run->status, sizeof run->status, "%s", PQgetvalue(res, 0, 1));
        run->retry_count = (int)strtol(PQgetvalue(res, 0, 2), NULL, 10);
    }
    PQclear(res);
    return 0;
}

int db_task_begin(struct db *db, long run_id, const char *task_id, int retries,
                  struct db_task_record *rec, struct cw_error *err)
{
    char id[24], r[24];
    format_long(id, sizeof id, run_id);
    format_long(r, sizeof r, retries);
    const char *values[] = {task_id, id, r};
    PGresult *res =
        exec_params(db, "recording the task start",
                    "INSERT INTO cworker_tasks AS t (task_id, run_id, attempts, attempt_retries) "
                    "VALUES ($1, $2::int, 1, $3::int) "
                    "ON CONFLICT (task_id) DO UPDATE SET "
                    "  attempts = CASE WHEN t.attempt_retries = EXCLUDED.attempt_retries "
                    "                  THEN t.attempts + 1 ELSE 1 END, "
                    "  attempt_retries = EXCLUDED.attempt_retries, updated_at = now() "
                    "RETURNING attempts, coalesce(status, ''), result::text",
                    3, values, err);
    if (!res)
        return -1;
    rec->attempts = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
    snprintf(rec->final_status, sizeof rec->final_status, "%s", PQgetvalue(res, 0, 1));
    rec->result_json = PQgetisnull(res, 0, 2) ? NULL : cw_xstrdup(PQgetvalue(res, 0, 2));
    PQclear(res);
    return 0;
}

void db_task_record_free(struct db_task_record *rec)
{
    free(rec->result_json);
    rec->result_json = NULL;
}

int db_run_mark_parsing(struct db *db, long run_id, const char *task_id, int retries,
                        struct cw_error *err)
{
    char id[24], r[24];
    format_long(id, sizeof id, run_id);
    format_long(r, sizeof r, retries);
    const char *values[] = {id, task_id, r};
    return exec_simple(db, "marking the run PARSING",
                       "UPDATE ingestion_runs SET status = 'PARSING', task_id = $2, "
                       "retry_count = $3::int, started_at = coalesce(started_at, now()), "
                       "last_heartbeat = now() WHERE id = $1::int",
                       3, values, err);
}

int db_run_heartbeat(struct db *db, long run_id, const char *task_id, const char *progress_json,
                     struct cw_error *err)
{
    char id[24];
    format_long(id, sizeof id, run_id);
    const char *values[] = {id, task_id, progress_json};
    return exec_simple(db, "writing the heartbeat",
                       "WITH progress AS (UPDATE cworker_tasks SET progress = $3::json, "
                       "updated_at = now() WHERE task_id = $2 AND $3::json IS NOT NULL) "
                       "UPDATE ingestion_runs SET last_heartbeat = now() WHERE id = $1::int",
                       3, values, err);
}

int db_files_load(struct db *db, long run_id, struct db_file **files, size_t *n,
                  struct cw_error *err)
{
    char id[24];
    format_long(id, sizeof id, run_id);
    const char *values[] = {id};
    PGresult *res = exec_params(db, "loading the run's files",
                                "SELECT id, path, sha256, size_bytes, stored_object_key "
                                "FROM files WHERE run_id = $1::int ORDER BY id",
                                1, values, err);
    if (!res)
        return -1;
    *n = (size_t)PQntuples(res);
    *files = cw_xcalloc(*n ? *n : 1, sizeof **files);
    for (size_t i = 0; i < *n; i++) {
        struct db_file *f = &(*files)[i];
        f->id = strtol(PQgetvalue(res, (int)i, 0), NULL, 10);
        f->path = cw_xstrdup(PQgetvalue(res, (int)i, 1));
        f->sha256 = cw_xstrdup(PQgetvalue(res, (int)i, 2));
        f->size_bytes = strtoll(PQgetvalue(res, (int)i, 3), NULL, 10);
        f->stored_object_key = cw_xstrdup(PQgetvalue(res, (int)i, 4));
    }
    PQclear(res);
    return 0;
}

void db_files_free(struct db_file *files, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(files[i].path);
        free(files[i].sha256);
        free(files[i].stored_object_key);
    }
    free(files);
}

static int copy_rows(struct db *db, const char *target, const struct strbuf *rows,
                     const struct db_tick *tick, struct cw_error *err)
{
    if (rows->len == 0)
        return 0;
    char sql[512];
    snprintf(sql, sizeof sql, "COPY %s FROM STDIN", target);
    PGresult *res = PQexec(db->conn, sql);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        fail_pg(db, res, "starting COPY", err);
        PQclear(res);
        CW_WRAP(err, "COPY %s", target);
        return -1;
    }
    PQclear(res);
    int tick_rc = 0;
    for (size_t off = 0; off < rows->len; off += COPY_CHUNK) {
        size_t len = rows->len - off < COPY_CHUNK ? rows->len - off : COPY_CHUNK;
        if (PQputCopyData(db->conn, rows->data + off, (int)len) != 1)
            break;
        if (tick && (tick_rc = tick->fn(tick->ctx, err)) != 0)
            break;
    }
    /* An error from tick (a time limit) aborts the COPY, and with it the transaction. */
    PQputCopyEnd(db->conn, tick_rc ? "aborted by the worker" : NULL);
    res = PQgetResult(db->conn);
    int rc = tick_rc                                   ? -1
             : PQresultStatus(res) == PGRES_COMMAND_OK ? 0
                                                       : fail_pg(db, res, "COPY", err);
    PQclear(res);
    while ((res = PQgetResult(db->conn)) != NULL)
        PQclear(res);
    if (rc != 0)
        CW_WRAP(err, "COPY %s", target);
    return rc;
}

static const char *const run_tables[] = {"stanzas", "inputs",  "props",        "transforms",
                                         "indexes", "outputs", "serverclasses"};

static int delete_previous_rows(struct db *db, const char *run_id, struct cw_error *err)
{
    const char *values[] = {run_id};
    for (size_t i = 0; i < sizeof run_tables / sizeof run_tables[0]; i++) {
        char sql[128];
        snprintf(sql, sizeof sql, "DELETE FROM %s WHERE run_id = $1::int", run_tables[i]);
        if (exec_simple(db, "removing earlier rows of the run", sql, 1, values, err) != 0)
            return -1;
    }
    return 0;
}

static int write_rows(struct db *db, const char *run_id, const struct run_rows *rows,
                      const struct db_tick *tick, struct cw_error *err)
{
    if (delete_previous_rows(db, run_id, err) != 0)
        return -1;
    if (copy_rows(db, STANZAS_COPY_TARGET, &rows->stanzas, tick, err) != 0)
        return -1;
    for (int t = 0; t < PROJ_COUNT; t++)
        if (copy_rows(db, proj_copy_target((enum proj_table)t), &rows->typed[t], tick, err) != 0)
            return -1;
    return 0;
}

static int finish_transaction(struct db *db, int rc, struct cw_error *err)
{
    if (rc == 0)
        return exec_simple(db, "committing", "COMMIT", 0, NULL, err);
    struct cw_error ignored;
    if (db->conn && PQtransactionStatus(db->conn) != PQTRANS_IDLE)
        (void)exec_simple(db, "rolling back", "ROLLBACK", 0, NULL, &ignored);
    return -1;
}

int db_run_complete(struct db *db, long run_id, const char *task_id, const struct run_rows *rows,
                    const char *metrics_json, const char *result_json, const struct db_tick *tick,
                    struct cw_error *err)
{
    char id[24];
    format_long(id, sizeof id, run_id);
    if (exec_simple(db, "starting the result transaction", "BEGIN", 0, NULL, err) != 0)
        return -1;
    int rc = write_rows(db, id, rows, tick, err);
    if (rc == 0) {
        const char *values[] = {id, metrics_json};
        rc = exec_simple(db, "marking the run COMPLETE",
                         "UPDATE ingestion_runs SET status = 'COMPLETE', completed_at = now(), "
                         "last_heartbeat = now(), error_message = NULL, error_traceback = NULL, "
                         "metrics = $2::json WHERE id = $1::int",
                         2, values, err);
    }
    if (rc == 0) {
        const char *values[] = {task_id, id, metrics_json, result_json};
        rc = exec_simple(db, "recording the task outcome",
                         "INSERT INTO cworker_tasks AS t (task_id, run_id, status, metrics, "
                         "result, completed_at) VALUES ($1, $2::int, 'COMPLETE', $3::json, "
                         "$4::json, now()) ON CONFLICT (task_id) DO UPDATE SET status = "
                         "'COMPLETE', metrics = $3::json, result = $4::json, error_message = "
                         "NULL, error_traceback = NULL, completed_at = now(), updated_at = now()",
                         4, values, err);
    }
    return finish_transaction(db, rc, err);
}

int db_run_record_error(struct db *db, long run_id, const char *task_id, bool final,
                        int retry_count, double retry_in, const char *message,
                        const char *traceback, const char *metrics_json, struct cw_error *err)
{
    char id[24], r[24], due[32];
    format_long(id, sizeof id, run_id);
    format_long(r, sizeof r, retry_count);
    snprintf(due, sizeof due, "%.3f", retry_in);
    const char *status = final ? "FAILED" : "PARSING";
    if (exec_simple(db, "starting the failure transaction", "BEGIN", 0, NULL, err) != 0)
        return -1;
    const char *run_values[] = {id, status, r, message, traceback, metrics_json};
    int rc = exec_simple(db, "recording the run's error",
                         "UPDATE ingestion_runs SET status = $2::varchar, retry_count = $3::int, "
                         "error_message = $4, error_traceback = $5, metrics = $6::json, "
                         "last_heartbeat = now(), completed_at = CASE WHEN $2::varchar = 'FAILED' "
                         "THEN now() ELSE NULL END WHERE id = $1::int",
                         6, run_values, err);
    if (rc == 0) {
        /* retry_due_at: when a scheduled retry runs (NULL for a final failure); the
         * stuck-run sweeper leaves the run alone until then. */
        const char *task_values[] = {task_id,   id,           final ? "FAILED" : NULL, message,
                                     traceback, metrics_json, final ? NULL : due};
        rc = exec_simple(db, "recording the task outcome",
                         "INSERT INTO cworker_tasks AS t (task_id, run_id, status, error_message, "
                         "error_traceback, metrics, completed_at, retry_due_at) VALUES ($1, "
                         "$2::int, $3::varchar, $4, $5, $6::json, "
                         "CASE WHEN $3::varchar IS NULL THEN NULL ELSE now() END, "
                         "now() + make_interval(secs => $7::float8)) "
                         "ON CONFLICT (task_id) DO UPDATE SET status = EXCLUDED.status, "
                         "error_message = EXCLUDED.error_message, error_traceback = "
                         "EXCLUDED.error_traceback, metrics = EXCLUDED.metrics, completed_at = "
                         "EXCLUDED.completed_at, retry_due_at = EXCLUDED.retry_due_at, "
                         "updated_at = now()",
                         7, task_values, err);
    }
    return finish_transaction(db, rc, err);
}

int db_stuck_runs(struct db *db, double visibility_timeout, struct db_stuck_run **runs, size_t *n,
                  struct cw_error *err)
{
    char vt[32];
    snprintf(vt, sizeof vt, "%.3f", visibility_timeout);
    const char *values[] = {vt};
    /* Only runs a worker started (a cworker_tasks row for the run's task id): a message
     * still waiting in a backlog is not stuck. */
    PGresult *res = exec_params(
        db, "looking for stuck runs",
        "SELECT r.id, r.task_id, r.retry_count, "
        "       extract(epoch FROM now() - r.last_heartbeat)::float8 "
        "  FROM ingestion_runs r JOIN cworker_tasks t ON t.task_id = r.task_id AND t.run_id = r.id "
        " WHERE upper(r.status) = 'PARSING' AND t.status IS NULL "
        "   AND r.last_heartbeat < now() - make_interval(secs => $1::float8) "
        "   AND (t.retry_due_at IS NULL "
        "        OR t.retry_due_at < now() - make_interval(secs => $1::float8)) "
        " ORDER BY r.id LIMIT 100",
        1, values, err);
    if (!res)
        return -1;
    *n = (size_t)PQntuples(res);
    *runs = cw_xcalloc(*n ? *n : 1, sizeof **runs);
    for (size_t i = 0; i < *n; i++) {
        struct db_stuck_run *r = &(*runs)[i];
        r->run_id = strtol(PQgetvalue(res, (int)i, 0), NULL, 10);
        snprintf(r->task_id, sizeof r->task_id, "%s", PQgetvalue(res, (int)i, 1));
        r->retry_count = (int)strtol(PQgetvalue(res, (int)i, 2), NULL, 10);
        r->silent_for = strtod(PQgetvalue(res, (int)i, 3), NULL);
    }
    PQclear(res);
    return 0;
}

int db_stuck_run_claim(struct db *db, const struct db_stuck_run *run, double visibility_timeout,
                       const char *message, bool *claimed, struct cw_error *err)
{
    char id[24], vt[32];
    format_long(id, sizeof id, run->run_id);
    snprintf(vt, sizeof vt, "%.3f", visibility_timeout);
    const char *values[] = {id, vt, message, run->task_id};
    /* The heartbeat condition makes the claim race-free among sweepers: one UPDATE wins. */
    PGresult *res = exec_params(
        db, "claiming a stuck run",
        "WITH claimed AS ("
        "  UPDATE ingestion_runs SET retry_count = retry_count + 1, last_heartbeat = now(), "
        "         error_message = $3 "
        "   WHERE id = $1::int AND upper(status) = 'PARSING' AND task_id = $4 "
        "     AND last_heartbeat < now() - make_interval(secs => $2::float8) RETURNING id) "
        "UPDATE cworker_tasks SET retry_due_at = now(), updated_at = now() "
        " WHERE task_id = $4 AND EXISTS (SELECT 1 FROM claimed) RETURNING task_id",
        4, values, err);
    if (!res)
        return -1;
    *claimed = PQntuples(res) == 1;
    PQclear(res);
    return 0;
}
