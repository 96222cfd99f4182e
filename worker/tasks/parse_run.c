/* app.worker.tasks.parse_run(run_id): an uploaded Splunk archive becomes stanzas and typed
 * rows in PostgreSQL (CONTRACT 1.5). The rows stream into the run's one write transaction
 * while the uploads are read (db/run_writer.h): the parser hands over each stanza as it
 * completes, so memory is bounded by one stanza and one batch of rows, not by a file or
 * the run, and a failure at any point (a checksum that does not match included) rolls
 * back, leaving no partial rows. */
#include "ingest/archive_reader.h"
#include "base/clock.h"
#include "ingest/conf_parser.h"
#include "base/log.h"
#include "ingest/projections.h"
#include "tasks/parse_run_args.h"
#include "tasks/retry_policy.h"
#include "ingest/upload_source.h"
#include "mq/native_delay.h"
#include "tasks/task.h"
#include "base/xalloc.h"
#include "db/pg.h"
#include "db/run_claim.h"
#include "db/run_metrics.h"
#include "db/run_writer.h"
#include "mq/conn.h"

#include <stdint.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_DETAILS     100 /* parse errors / warnings described in metrics, the rest counted */
#define RUN_LOCK_WAIT_S 30
/* The contract's limit on a run (rows stream, so memory no longer sets it). A build for
 * measuring larger runs may raise it (-DMAX_RUN_STANZAS=...). */
#ifndef MAX_RUN_STANZAS
#define MAX_RUN_STANZAS 1000000
#endif
/* Serverclasses are aggregated over the whole run before their rows are made, the one
 * thing held for the run: what they may hold is bounded (serverclass stanzas plus their
 * settings, and their text). Real deployment servers have thousands. */
#define MAX_RUN_SERVERCLASS_ITEMS 100000
#define MAX_RUN_SERVERCLASS_BYTES (16u << 20)
/* Rows are sent in batches of about this many bytes of COPY text: stanza rows into the
 * run's open stanza COPY, typed rows (all six tables together) as one COPY per table. These,
 * with the parser's per-stanza limits, bound the executor's memory whatever the archive's
 * size (libpq holds at most one batch more while the server reads it). */
#define STANZA_BATCH_BYTES (1u << 20)
#define TYPED_BATCH_BYTES  (2u << 20)

/* Everything one execution of parse_run accumulates; owned by parse_run_task. */
struct parse_state {
    struct task_context *ctx;
    long run_id;
    long file_id;
    struct run_rows rows; /* counts of the whole run; buffers hold only unsent rows */
    struct db_run_writer writer;
    struct db_tick tick; /* the writer's: copy_tick */
    bool writing;        /* the result transaction is open: heartbeats on the other connection */
    struct conf_parser parser;
    bool in_entry;
    bool entry_failed;
    bool entry_savepoint; /* rows of the entry were sent, after a savepoint */
    bool sink_failed;     /* the error came from sending rows, not from the file */
    char *entry_path;
    int files_parsed;
    int parse_errors;
    int warnings;
    json_object *error_details; /* [{"path","error"}] */
    json_object *warning_details;
    double last_heartbeat;
    uint64_t bytes_parsed;
    const char *task_id;
    size_t files_total; /* uploads of the run */
    size_t files_done;
};

static void add_detail(json_object *list, const char *path, const char *key, const char *text)
{
    if (json_object_array_length(list) >= MAX_DETAILS)
        return;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "path", json_object_new_string(path));
    json_object_object_add(o, key, json_object_new_string(text));
    json_object_array_add(list, o);
}

/* Heartbeat and soft time limit, checked between chunks so one long file is covered, and
 * between COPY chunks (then on the heartbeat connection: the task's is in a transaction). */
/* EXECUTOR_MEMORY_LIMIT reached: an allocation ate into the reserve (base/xalloc.h). */
static int check_memory(const struct parse_state *st, struct cw_error *err)
{
    if (!cw_xalloc_reserve_used())
        return 0;
    CW_FAIL(err, CW_ERR_PERMANENT, "the run needed more than %d MB (EXECUTOR_MEMORY_LIMIT)",
            st->ctx->cfg->executor_memory_limit_mb);
    return -1;
}

static int check_clock_on(struct parse_state *st, struct db *db, struct cw_error *err)
{
    if (check_memory(st, err) != 0)
        return -1;
    double now = clock_monotonic();
    if (st->ctx->soft_deadline > 0 && now >= st->ctx->soft_deadline) {
        CW_FAIL(err, CW_ERR_TIMEOUT, "soft time limit of %.0f s exceeded",
                st->ctx->soft_deadline - st->ctx->started);
        return -1;
    }
    if (now - st->last_heartbeat >= st->ctx->cfg->heartbeat_interval) {
        char progress[256];
        snprintf(progress, sizeof progress,
                 "{\"files_total\": %zu, \"files_done\": %zu, \"conf_files_parsed\": %d, "
                 "\"stanzas_so_far\": %zu, \"bytes_parsed\": %llu}",
                 st->files_total, st->files_done, st->files_parsed, st->rows.nstanzas,
                 (unsigned long long)st->bytes_parsed);
        if (db_run_heartbeat(db, st->run_id, st->task_id, progress, err) != 0)
            return -1;
        st->last_heartbeat = now;
    }
    return 0;
}

static int copy_tick(void *ctx, struct cw_error *err)
{
    struct parse_state *st = ctx;
    struct db *db = st->ctx->heartbeat_db;
    /* The heartbeat connection outlives runs: after a database restart it is broken, and a
     * broken one is given up here (and opened again) rather than failing every later run. */
    if (db && db->conn && !db_ensure_connected(db))
        db_close(db);
    if (db && !db->conn &&
        db_connect_as(db, st->ctx->cfg->database_url, PG_ROLE_HEARTBEAT, err) != 0)
        return -1;
    return check_clock_on(st, db && db->conn ? db : st->ctx->db, err);
}

/* Inside the result transaction, a heartbeat on the task's connection would be invisible
 * until COMMIT (and impossible during a COPY): it goes on the heartbeat connection. */
static int check_clock(struct parse_state *st, struct cw_error *err)
{
    if (st->writing)
        return copy_tick(st, err);
    return check_clock_on(st, st->ctx->db, err);
}

/* Tests only (CWORKER_DEBUG_ENTRY_DELAY_MS): a slow entry, still heartbeating and
 * honouring the soft time limit, so a run can be interrupted mid-way. */
static int debug_delay(struct parse_state *st, struct cw_error *err)
{
    double until = clock_monotonic() + st->ctx->cfg->debug_entry_delay_ms / 1000.0;
    while (clock_monotonic() < until) {
        if (check_clock(st, err) != 0)
            return -1;
        usleep(20000);
    }
    return 0;
}

static size_t typed_bytes(const struct run_rows *rows)
{
    size_t n = 0;
    for (int t = 0; t < PROJ_COUNT; t++)
        n += rows->typed[t].len;
    return n;
}

/* Sends b[from, to) (whole rows) to the stanza COPY or to table t's. */
static int send_slice(struct parse_state *st, int t, const struct strbuf *b, size_t from, size_t to,
                      struct cw_error *err)
{
    struct strbuf part = {b->data + from, to - from, 0}; /* a view: the writer only reads */
    if (to <= from)
        return 0;
    if (t < 0)
        return db_run_writer_stanzas(&st->writer, &part, err);
    return db_run_writer_typed(&st->writer, (enum proj_table)t, &part, err);
}

static int send_stanzas(struct parse_state *st, struct cw_error *err)
{
    if (send_slice(st, -1, &st->rows.stanzas, 0, st->rows.stanzas.len, err) != 0)
        return -1;
    run_rows_stanzas_sent(&st->rows);
    return 0;
}

static int send_typed(struct parse_state *st, struct cw_error *err)
{
    for (int t = 0; t < PROJ_COUNT; t++)
        if (send_slice(st, t, &st->rows.typed[t], 0, st->rows.typed[t].len, err) != 0)
            return -1;
    run_rows_typed_sent(&st->rows);
    return 0;
}

/* A file's rows are held until the file is known to parse (a file that fails leaves no
 * rows), unless they outgrow a batch: then the rows of the complete files before it go
 * out, a savepoint is taken, and the file's rows stream after it (entry_failed rolls back
 * to it). Small files, the usual case, cost no statement. */
static int start_entry_savepoint(struct parse_state *st, struct cw_error *err)
{
    struct run_rows *r = &st->rows;
    if (send_slice(st, -1, &r->stanzas, 0, r->mark_stanzas, err) != 0)
        return -1;
    for (int t = 0; t < PROJ_COUNT; t++)
        if (send_slice(st, t, &r->typed[t], 0, r->mark_typed[t], err) != 0)
            return -1;
    run_rows_sent_before_marks(r);
    if (db_run_writer_savepoint(&st->writer, err) != 0)
        return -1;
    st->entry_savepoint = true;
    return 0;
}

/* Sends the buffers that hold a batch (all of them when `all`). */
static int send_rows(struct parse_state *st, bool all, struct cw_error *err)
{
    bool stanzas = st->rows.stanzas.len >= STANZA_BATCH_BYTES;
    bool typed = typed_bytes(&st->rows) >= TYPED_BATCH_BYTES;
    if (!all && !stanzas && !typed)
        return 0;
    if (check_memory(st, err) != 0)
        return -1;
    if (st->in_entry && !st->entry_savepoint && start_entry_savepoint(st, err) != 0)
        return -1;
    /* Typed COPYs end the stanza COPY, and the server works through everything sent so
     * far before they return; the stanza rows parsed meanwhile are then sent at once, so the
     * server has work while the next batch is parsed. */
    if ((all || typed) && send_typed(st, err) != 0)
        return -1;
    if ((all || stanzas || typed) && send_stanzas(st, err) != 0)
        return -1;
    return check_clock(st, err);
}

/* The parser's sink: each complete stanza becomes rows at once and is released. */
static int stanza_ready(void *ctx, const struct conf_stanza *stanza, struct cw_error *err)
{
    struct parse_state *st = ctx;
    if (st->rows.nstanzas >= MAX_RUN_STANZAS) {
        st->sink_failed = true;
        CW_FAIL(err, CW_ERR_PERMANENT, "Archive limit exceeded: more than %d stanzas in the run",
                MAX_RUN_STANZAS);
        return -1;
    }
    run_rows_add_stanza(&st->rows, stanza);
    if (st->rows.serverclass_items > MAX_RUN_SERVERCLASS_ITEMS ||
        st->rows.serverclass_bytes > MAX_RUN_SERVERCLASS_BYTES) {
        st->sink_failed = true;
        CW_FAIL(err, CW_ERR_PERMANENT,
                "Archive limit exceeded: serverclass stanzas and settings over %d or %u MiB "
                "in the run",
                MAX_RUN_SERVERCLASS_ITEMS, MAX_RUN_SERVERCLASS_BYTES >> 20);
        return -1;
    }
    if (send_rows(st, false, err) != 0) {
        st->sink_failed = true;
        return -1;
    }
    return 0;
}

static bool is_conf_entry(const char *path)
{
    size_t len = strlen(path);
    return len > 5 && strcmp(path + len - 5, ".conf") == 0;
}

static bool want_entry(void *ctx, const char *path)
{
    struct parse_state *st = ctx;
    if (!is_conf_entry(path))
        return false;
    conf_parser_init(&st->parser, CONF_PARSER_DEFAULT_MAX_LINE);
    conf_parser_set_sink(&st->parser, stanza_ready, st);
    st->in_entry = true;
    st->entry_failed = false;
    st->entry_savepoint = false;
    free(st->entry_path);
    st->entry_path = cw_xstrdup(path);
    run_rows_begin_file(&st->rows, st->file_id, path);
    return true;
}

/* A file that does not parse is a partial failure: described, counted, and skipped, its
 * rows taken back. A sink's error (perr) fails the run instead. */
static int entry_parse_failed(struct parse_state *st, const struct cw_error *perr,
                              struct cw_error *err)
{
    conf_parser_free(&st->parser);
    st->entry_failed = true;
    if (st->sink_failed) {
        *err = *perr;
        return -1;
    }
    st->parse_errors++;
    add_detail(st->error_details, st->entry_path, "error", perr->message);
    log_warn("parse error in %s: %s", st->entry_path, perr->message);
    int rc = 0;
    if (st->entry_savepoint)
        rc = db_run_writer_rollback_to(&st->writer, err);
    st->entry_savepoint = false;
    run_rows_abort_file(&st->rows);
    return rc;
}

static int entry_data(void *ctx, const void *chunk, size_t len, struct cw_error *err)
{
    struct parse_state *st = ctx;
    if (check_clock(st, err) != 0)
        return -1;
    if (st->entry_failed)
        return 0;
    st->bytes_parsed += len;
    struct cw_error perr;
    if (conf_parser_feed(&st->parser, chunk, len, &perr) != 0)
        return entry_parse_failed(st, &perr, err);
    return 0;
}

static int entry_end(void *ctx, struct cw_error *err)
{
    struct parse_state *st = ctx;
    if (st->ctx->cfg->debug_entry_delay_ms > 0 && debug_delay(st, err) != 0)
        return -1;
    if (st->entry_failed) {
        st->in_entry = false;
        return 0;
    }
    struct conf_file file = {0};
    struct cw_error perr;
    int rc = conf_parser_finish(&st->parser, &file, &perr);
    if (rc != 0) {
        rc = entry_parse_failed(st, &perr, err);
        st->in_entry = false;
        return rc;
    }
    conf_parser_free(&st->parser);
    st->in_entry = false;
    run_rows_end_file(&st->rows);
    st->warnings += (int)file.warnings;
    st->files_parsed++;
    conf_file_free(&file);
    if (st->entry_savepoint) {
        st->entry_savepoint = false;
        if (db_run_writer_release(&st->writer, err) != 0)
            return -1;
    }
    if (check_memory(st, err) != 0)
        return -1;
    /* The file's stanza rows are final now: they go into the open stanza COPY (no
     * statement), so the server works on them while the next file is read. */
    return send_stanzas(st, err);
}

static void entry_warning(void *ctx, const char *path, const char *reason)
{
    struct parse_state *st = ctx;
    st->warnings++;
    add_detail(st->warning_details, path, "warning", reason);
}

/* After the walk: the rest of the upload read, so the digest covers all of it. */
static int verify_checksum(const struct db_file *f, struct upload_source *src, struct cw_error *err)
{
    char hex[65];
    if (upload_source_drain(src, err) != 0)
        return -1;
    upload_source_hex_digest(src, hex);
    if (strcasecmp(hex, f->sha256) != 0) {
        CW_FAIL(err, CW_ERR_PERMANENT, "Checksum mismatch for %s: expected %s, got %s", f->path,
                f->sha256, hex);
        return -1;
    }
    return 0;
}

static int parse_file(struct parse_state *st, const struct db_file *f, json_object *kinds,
                      struct cw_error *err)
{
    struct upload_source src;
    if (upload_source_open(st->ctx->cfg, f->stored_object_key, f->size_bytes, &src, err) != 0) {
        CW_WRAP(err, "reading file %ld (%s)", f->id, f->path);
        return -1;
    }
    st->file_id = f->id;
    struct archive_limits limits = ARCHIVE_LIMITS_DEFAULT;
    struct archive_visitor visitor = {st, want_entry, entry_data, entry_end, entry_warning};
    struct archive_stats stats = {0};
    /* The rows of a file whose checksum turns out wrong are already sent: the mismatch
     * fails the run, and the transaction is rolled back, never committed. */
    int rc = archive_reader_walk_source(&src, f->path, &limits, &visitor, &stats, err);
    if (rc == 0)
        rc = verify_checksum(f, &src, err);
    upload_source_close(&src);
    if (st->in_entry) {
        conf_parser_free(&st->parser); /* the walk stopped inside an entry */
        run_rows_abort_file(&st->rows);
        st->in_entry = false;
        st->entry_savepoint = false; /* the run fails: everything is rolled back */
    }
    if (rc != 0) {
        CW_WRAP(err, "parsing file %ld (%s)", f->id, f->path);
        return -1;
    }
    json_object_array_add(kinds, json_object_new_string(archive_kind_name(stats.kind)));
    return 0;
}

static json_object *typed_counts(const struct run_rows *rows)
{
    json_object *o = json_object_new_object();
    for (int t = 0; t < PROJ_COUNT; t++)
        json_object_object_add(o, proj_table_name((enum proj_table)t),
                               json_object_new_int64((int64_t)rows->ntyped[t]));
    return o;
}

static json_object *build_metrics(const struct parse_state *st, const struct celery_task *msg,
                                  double duration, json_object *kinds)
{
    json_object *m = json_object_new_object();
    json_object_object_add(m, "files_parsed", json_object_new_int(st->files_parsed));
    json_object_object_add(m, "stanzas_created", json_object_new_int64((int64_t)st->rows.nstanzas));
    json_object_object_add(m, "typed_projections", typed_counts(&st->rows));
    json_object_object_add(m, "duration_seconds", json_object_new_double(duration));
    json_object_object_add(m, "parse_errors", json_object_new_int(st->parse_errors));
    json_object_object_add(m, "retry_count", json_object_new_int(msg->retries));
    json_object_object_add(m, "parse_error_details", json_object_get(st->error_details));
    json_object_object_add(
        m, "warnings",
        json_object_new_int(st->warnings + (int)(st->rows.truncations + st->rows.repairs)));
    json_object_object_add(m, "truncated_values",
                           json_object_new_int64((int64_t)st->rows.truncations));
    json_object_object_add(m, "warning_details", json_object_get(st->warning_details));
    json_object_object_add(m, "bytes_parsed", json_object_new_int64((int64_t)st->bytes_parsed));
    json_object_object_add(m, "archive_kinds", json_object_get(kinds));
    return m;
}

static json_object *build_result(const struct parse_state *st, double duration)
{
    json_object *r = json_object_new_object();
    json_object_object_add(r, "run_id", json_object_new_int64(st->run_id));
    json_object_object_add(r, "status", json_object_new_string("completed"));
    json_object_object_add(r, "files_parsed", json_object_new_int(st->files_parsed));
    json_object_object_add(r, "stanzas_created", json_object_new_int64((int64_t)st->rows.nstanzas));
    json_object_object_add(r, "typed_projections", typed_counts(&st->rows));
    json_object_object_add(r, "duration_seconds", json_object_new_double(duration));
    json_object_object_add(r, "parse_errors",
                           st->parse_errors ? json_object_get(st->error_details) : NULL);
    return r;
}

static const char *to_json(json_object *o)
{
    return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
}

/* Steps 5-6 once every file is parsed: the last rows, COMPLETE, COMMIT. */
static int finish_run(struct parse_state *st, const struct celery_task *msg, json_object *kinds,
                      json_object **result, bool *written, struct cw_error *err)
{
    run_rows_finish(&st->rows);
    if (send_rows(st, true, err) != 0)
        return -1;
    double duration = clock_monotonic() - st->ctx->started;
    json_object *metrics = build_metrics(st, msg, duration, kinds);
    *result = build_result(st, duration);
    st->writing = false;
    int rc = db_run_writer_commit(&st->writer, to_json(metrics), to_json(*result), written, err);
    json_object_put(metrics);
    return rc;
}

/* Steps 3-6: the files the claim loaded, parsed into the result transaction the claim
 * began (the rows stream into it). *written=false: the run was no longer ours. */
static int parse_and_store(struct parse_state *st, const struct celery_task *msg,
                           const struct db_claim *claim, json_object **result, bool *written,
                           struct cw_error *err)
{
    if (claim->nfiles == 0) {
        db_run_writer_abort(&st->writer);
        CW_FAIL(err, CW_ERR_PERMANENT, "No files found for run %ld", st->run_id);
        return -1;
    }
    bool ours = true;
    if (claim->earlier_rows && db_run_writer_clean(&st->writer, &ours, err) != 0) {
        db_run_writer_abort(&st->writer);
        return -1;
    }
    if (!ours) {
        db_run_writer_abort(&st->writer);
        return 0; /* *written false: no longer ours */
    }
    st->writing = true;
    json_object *kinds = json_object_new_array();
    st->files_total = claim->nfiles;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < claim->nfiles; i++) {
        rc = parse_file(st, &claim->files[i], kinds, err);
        st->files_done++;
    }
    if (rc == 0)
        rc = finish_run(st, msg, kinds, result, written, err);
    st->writing = false;
    db_run_writer_abort(&st->writer); /* no-op after a COMMIT */
    json_object_put(kinds);
    return rc;
}

/* The database connection itself is gone: an outage, not this task's fault. Nothing can
 * be recorded; the delivery is requeued and no retry is consumed. */
static bool database_outage(struct task_context *ctx)
{
    return !db_ensure_connected(ctx->db);
}

/* The run is no longer PARSING for this task: its outcome was written by another
 * execution (or a new parse started), and this one's is dropped rather than overwrite it. */
static void skip_not_ours(struct task_context *ctx, struct task_report *report, const char *what)
{
    struct db_run run = {0};
    bool found = false;
    struct cw_error ignored;
    if (db_run_load(ctx->db, report->run_id, &run, &found, &ignored) != 0 || !found)
        snprintf(run.status, sizeof run.status, "%s", found ? "in an unknown state" : "gone");
    log_warn("run %ld is %s under task %s, no longer PARSING for this task: its %s is not "
             "recorded",
             report->run_id, run.status, run.task_id[0] ? run.task_id : "(none)", what);
    report->outcome = TASK_SKIPPED;
}

/* Tests only (CWORKER_DEBUG_AFTER_COMMIT_DELAY_MS): a pause after the result's COMMIT and
 * before the outcome is reported, so a test can kill the executor in between. */
static void debug_after_commit(const struct cw_config *cfg)
{
    double until = clock_monotonic() + cfg->debug_after_commit_delay_ms / 1000.0;
    while (clock_monotonic() < until)
        usleep(20000);
}

/* Where a retry of this task waits (the delay queue the supervisor publishes it to, named
 * after the queue the task came from; "" when that is unknown) and after how long it runs:
 * its eta, but never before the delay queue's TTL sends it back (a negative jitter makes
 * the eta earlier than that). */
static double retry_wait(const struct task_context *ctx, const struct retry_decision *d,
                         char *queue, size_t len)
{
    const struct cw_config *cfg = ctx->cfg;
    queue[0] = '\0';
    if (d->retry && cfg->retry_native) { /* the supervisor's delay_route: whole seconds, up */
        long seconds = native_delay_seconds(d->delay);
        if (seconds > 0)
            snprintf(queue, len, "%s", NATIVE_DELAY_LADDER_NAME);
        return (double)seconds;
    }
    if (!d->retry || cfg->nretry_delays <= 0)
        return d->delay;
    double ttl = cfg->retry_delays[retry_policy_slot(d->next_retries, cfg->nretry_delays)];
    if (ctx->queue && *ctx->queue)
        mq_conn_retry_queue_name(ctx->queue, ttl, queue, len);
    return d->delay > ttl ? d->delay : ttl;
}

static void record_failure(struct task_context *ctx, const struct celery_task *msg,
                           struct task_report *report)
{
    const struct cw_config *cfg = ctx->cfg;
    if (report->err.unavailable || (report->err.cls == CW_ERR_TRANSIENT && database_outage(ctx))) {
        report->outcome = TASK_REQUEUE;
        return;
    }
    struct retry_decision d =
        retry_policy_decide(report->err.cls, msg->retries, cfg->max_retries, cfg->retry_delays,
                            cfg->nretry_delays, cfg->retry_jitter, drand48());
    char message[CW_ERROR_DETAIL_MAX + 64];
    retry_policy_message(report->err.cls, &d, cfg->max_retries, report->err.message, message,
                         sizeof message);
    struct strbuf tb = STRBUF_INIT;
    cw_error_format_traceback(&report->err, &tb);
    int retry_count = d.retry ? d.next_retries : msg->retries;
    char retry_queue[300];
    double retry_in = retry_wait(ctx, &d, retry_queue, sizeof retry_queue);
    json_object *metrics =
        run_failure_metrics(clock_monotonic() - ctx->started, retry_count, d.error_type);
    struct db_run_error e = {.final = !d.retry,
                             .retry_count = retry_count,
                             .retry_in = retry_in,
                             .retry_queue = retry_queue[0] ? retry_queue : NULL,
                             .message = message,
                             .traceback = strbuf_cstr(&tb),
                             .metrics_json = to_json(metrics)};
    struct cw_error werr;
    bool written = false;
    int rc = db_run_record_error(ctx->db, report->run_id, msg->id, &e, &written, &werr);
    json_object_put(metrics);
    strbuf_free(&tb);
    if (rc != 0) {
        /* A transient write error is an outage: redeliver later. A permanent one would fail
         * the same way every time, so the delivery is settled rather than looped. */
        log_error("could not record the failure of run %ld: %s", report->run_id, werr.message);
        report->outcome = werr.cls == CW_ERR_TRANSIENT ? TASK_REQUEUE : TASK_FAILED;
        return;
    }
    if (!written) {
        skip_not_ours(ctx, report, "failure");
        return;
    }
    log_warn("%s", message);
    report->outcome = d.retry ? TASK_RETRY : TASK_FAILED;
    report->retry_delay = d.delay;
}

/* Deliveries of one message (a quorum queue's x-delivery-count) after which the run is
 * failed rather than left to the queue's delivery-limit (RabbitMQ 4 defaults to 20), which
 * would drop or dead-letter the message with the run still PARSING. Requeues for an outage
 * count there too, so the bound is well above the executor-crash bound. */
#define QUORUM_DELIVERY_BOUND 18

/* A message that keeps killing its executor: started more than max(3, MAX_RETRIES + 1)
 * times at one retry number by our own count (attempts, this one included), or delivered
 * QUORUM_DELIVERY_BOUND times by the broker's. The claim marks the run only up to this
 * many attempts (0 once the broker's bound is reached). */
static int max_attempts(const struct cw_config *cfg, long delivery_count)
{
    if (delivery_count + 1 >= QUORUM_DELIVERY_BOUND)
        return 0;
    return cfg->max_retries + 1 > 3 ? cfg->max_retries + 1 : 3;
}

static json_object *already_completed(long run_id)
{
    json_object *r = json_object_new_object();
    json_object_object_add(r, "run_id", json_object_new_int64(run_id));
    json_object_object_add(r, "status", json_object_new_string("already_completed"));
    json_object_object_add(r, "duration_seconds", json_object_new_int(0));
    return r;
}

/* What the claim found, when this delivery does not go on: 0 with the report settled,
 * -1 to record report->err as the run's failure. */
static int claim_declined(const struct celery_task *msg, const struct cw_error *bad_call,
                          const struct db_claim *claim, int max, struct task_report *report)
{
    if (!claim->found) {
        /* No row to record it in, now or on a redelivery: the message is dead-lettered. */
        if (bad_call)
            CW_FAIL(&report->err, CW_ERR_PERMANENT, "Run %ld not found; and %s", report->run_id,
                    bad_call->message);
        else
            CW_FAIL(&report->err, CW_ERR_PERMANENT, "Run %ld not found", report->run_id);
        report->outcome = TASK_REJECTED;
        return 0;
    }
    if (strcmp(claim->status, "COMPLETE") == 0) {
        /* A finished run is never overwritten; a wrong call is reported, not recorded. The
         * claim recorded the run's final state under this task id (a duplicate delivery). */
        if (bad_call) {
            report->err = *bad_call;
            report->outcome = TASK_FAILED;
        } else {
            report->result = already_completed(report->run_id);
            report->outcome = TASK_SUCCEEDED;
        }
        return 0;
    }
    if (claim->task.final_status[0]) {
        /* A redelivery of a task that already finished (the ack was lost): keep its outcome. */
        report->outcome = TASK_SKIPPED;
        report->result =
            claim->task.result_json ? json_tokener_parse(claim->task.result_json) : NULL;
        return 0;
    }
    if (claim->task.attempts > max) {
        CW_FAIL(&report->err, CW_ERR_PERMANENT,
                "the task was started %d times without finishing (its executor died each time)",
                claim->task.attempts - 1 > (int)msg->delivery_count ? claim->task.attempts - 1
                                                                    : (int)msg->delivery_count);
        return -1;
    }
    /* Not marked otherwise: the row went away under the claim. */
    CW_FAIL(&report->err, CW_ERR_PERMANENT, "Run %ld not found", report->run_id);
    report->outcome = TASK_REJECTED;
    return 0;
}

/* Steps 1-2 in one round trip (db/run_claim.h): the run lock, then whether this delivery
 * runs, and the claim. Returns 1 to go on (without bad_call, the result transaction is
 * then open), 0 with the report settled, -1 to record report->err as the run's failure.
 * bad_call (non-NULL: the message's arguments are wrong, parse_run_args): the run is
 * claimed only to be failed with it. */
static int claim_run(struct task_context *ctx, const struct celery_task *msg,
                     const struct cw_error *bad_call, struct parse_state *st,
                     struct db_claim *claim, struct task_report *report)
{
    int max = max_attempts(ctx->cfg, msg->delivery_count);
    /* Another delivery of the same run (a retry, a duplicate click) may be executing: the
     * claim waits for it, so this one then sees its outcome. If it is still running after
     * the wait, the application's commit for this delivery is long past and the other
     * run's final write will overwrite it; this delivery is dropped. */
    struct db_claim_request req = {.run_id = report->run_id,
                                   .task_id = msg->id,
                                   .retries = msg->retries,
                                   .max_attempts = max,
                                   .adopt_complete = !bad_call,
                                   .lock_wait_s = RUN_LOCK_WAIT_S,
                                   .writer = bad_call ? NULL : &st->writer,
                                   .tick = &st->tick};
    if (db_run_claim(ctx->db, &req, claim, &report->err) != 0) {
        if (claim->locked)
            return -1; /* the claim statement failed: recorded like any failure */
        /* Only an outage is worth a redelivery; anything else would fail the same way in a
         * loop. */
        report->outcome = report->err.cls == CW_ERR_TRANSIENT ? TASK_REQUEUE : TASK_FAILED;
        return 0;
    }
    if (!claim->locked) {
        log_info("run %ld is still being executed by another delivery after %d s; this one is "
                 "dropped",
                 report->run_id, RUN_LOCK_WAIT_S);
        report->outcome = TASK_SKIPPED;
        return 0;
    }
    st->writer.unlock_at_commit = true;
    return claim->marked ? 1 : claim_declined(msg, bad_call, claim, max, report);
}

static void run_task(struct task_context *ctx, const struct celery_task *msg,
                     const struct cw_error *bad_call, struct task_report *report)
{
    struct parse_state st = {.ctx = ctx, .run_id = report->run_id, .task_id = msg->id};
    st.tick = (struct db_tick){copy_tick, &st};
    st.last_heartbeat = clock_monotonic();
    st.error_details = json_object_new_array();
    st.warning_details = json_object_new_array();
    run_rows_init(&st.rows, report->run_id);
    struct db_claim claim;
    int claimed = claim_run(ctx, msg, bad_call, &st, &claim, report);
    if (claimed == 1 && bad_call) {
        report->err = *bad_call;
        claimed = -1; /* recorded as the run's permanent failure */
    }
    bool written = false;
    if (claimed == 1 &&
        parse_and_store(&st, msg, &claim, &report->result, &written, &report->err) == 0) {
        if (written && ctx->cfg->debug_after_commit_delay_ms > 0)
            debug_after_commit(ctx->cfg);
        if (written)
            report->outcome = TASK_SUCCEEDED;
        else
            skip_not_ours(ctx, report, "result");
    } else if (claimed != 0) {
        CW_WRAP(&report->err, "parse_run(%ld), task %s, retries %d", report->run_id, msg->id,
                msg->retries);
        record_failure(ctx, msg, report);
    }
    /* After a COMMIT the lock went in the same round trip. */
    if (claim.locked && !st.writer.unlocked)
        db_run_unlock(ctx->db, report->run_id);
    db_claim_free(&claim);
    run_rows_free(&st.rows);
    free(st.entry_path);
    json_object_put(st.error_details);
    json_object_put(st.warning_details);
}

/* The supervisor killed an earlier attempt (ctx->forced): record why, under the run lock. */
static void record_forced(struct task_context *ctx, const struct celery_task *msg,
                          struct task_report *report)
{
    bool locked = false;
    if (db_run_lock_wait(ctx->db, report->run_id, RUN_LOCK_WAIT_S, &locked, &report->err) != 0) {
        report->outcome = report->err.cls == CW_ERR_TRANSIENT ? TASK_REQUEUE : TASK_FAILED;
        return;
    }
    if (!locked) {
        log_info("run %ld is still being executed by another delivery after %d s; this one is "
                 "dropped",
                 report->run_id, RUN_LOCK_WAIT_S);
        report->outcome = TASK_SKIPPED;
        return;
    }
    report->err = *ctx->forced;
    CW_WRAP(&report->err, "parse_run(%ld), task %s, retries %d", report->run_id, msg->id,
            msg->retries);
    record_failure(ctx, msg, report);
    db_run_unlock(ctx->db, report->run_id);
}

void parse_run_task(struct task_context *ctx, const struct celery_task *msg,
                    struct task_report *report)
{
    bool wrong_call = false;
    struct cw_error bad_call;
    cw_error_clear(&bad_call);
    if (parse_run_check_task_id(msg->id, &bad_call) != 0 ||
        parse_run_args(msg, &report->run_id, &wrong_call, &bad_call) != 0) {
        report->err = bad_call; /* names no run, or cannot be recorded in one */
        report->outcome = TASK_REJECTED;
        return;
    }
    log_set_task(msg->id, report->run_id);
    if (ctx->forced)
        record_forced(ctx, msg, report);
    else
        run_task(ctx, msg, wrong_call ? &bad_call : NULL, report);
}
