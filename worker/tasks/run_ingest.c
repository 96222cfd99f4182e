/* parse_run's ingest (tasks/run_ingest.h): uploads read, parsed and streamed into the
 * run's result transaction. */
#include "tasks/run_ingest.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/xalloc.h"
#include "db/pg.h"
#include "db/run_metrics.h"
#include "ingest/archive_reader.h"
#include "ingest/upload_source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_DETAILS 100 /* parse errors / warnings described in metrics, the rest counted */
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
static int check_memory(const struct run_ingest *st, struct cw_error *err)
{
    if (!cw_xalloc_reserve_used())
        return 0;
    CW_FAIL(err, CW_ERR_PERMANENT, "the run needed more than %d MB (EXECUTOR_MEMORY_LIMIT)",
            st->ctx->cfg->executor_memory_limit_mb);
    return -1;
}

static int check_clock_on(struct run_ingest *st, struct db *db, struct cw_error *err)
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
    struct run_ingest *st = ctx;
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
static int check_clock(struct run_ingest *st, struct cw_error *err)
{
    if (st->writing)
        return copy_tick(st, err);
    return check_clock_on(st, st->ctx->db, err);
}

/* Tests only (CWORKER_DEBUG_ENTRY_DELAY_MS): a slow entry, still heartbeating and
 * honouring the soft time limit, so a run can be interrupted mid-way. */
static int debug_delay(struct run_ingest *st, struct cw_error *err)
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
static int send_slice(struct run_ingest *st, int t, const struct strbuf *b, size_t from, size_t to,
                      struct cw_error *err)
{
    struct strbuf part = {b->data + from, to - from, 0}; /* a view: the writer only reads */
    if (to <= from)
        return 0;
    if (t < 0)
        return db_run_writer_stanzas(&st->writer, &part, err);
    return db_run_writer_typed(&st->writer, (enum proj_table)t, &part, err);
}

static int send_stanzas(struct run_ingest *st, struct cw_error *err)
{
    if (send_slice(st, -1, &st->rows.stanzas, 0, st->rows.stanzas.len, err) != 0)
        return -1;
    run_rows_stanzas_sent(&st->rows);
    return 0;
}

static int send_typed(struct run_ingest *st, struct cw_error *err)
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
static int start_entry_savepoint(struct run_ingest *st, struct cw_error *err)
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
static int send_rows(struct run_ingest *st, bool all, struct cw_error *err)
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
    struct run_ingest *st = ctx;
    if (st->rows.nstanzas >= (size_t)st->ctx->cfg->max_run_stanzas) {
        st->sink_failed = true;
        CW_FAIL(err, CW_ERR_PERMANENT, "Archive limit exceeded: more than %d stanzas in the run",
                st->ctx->cfg->max_run_stanzas);
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
    struct run_ingest *st = ctx;
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
static int entry_parse_failed(struct run_ingest *st, const struct cw_error *perr,
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
    struct run_ingest *st = ctx;
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
    struct run_ingest *st = ctx;
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
    struct run_ingest *st = ctx;
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

static int parse_file(struct run_ingest *st, const struct db_file *f, json_object *kinds,
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

static json_object *build_metrics(const struct run_ingest *st, const struct celery_task *msg,
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

static json_object *build_result(const struct run_ingest *st, double duration)
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
static int finish_run(struct run_ingest *st, const struct celery_task *msg, json_object *kinds,
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
int run_ingest_store(struct run_ingest *st, const struct celery_task *msg,
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

void run_ingest_init(struct run_ingest *st, struct task_context *ctx, long run_id,
                     const char *task_id)
{
    *st = (struct run_ingest){.ctx = ctx, .run_id = run_id, .task_id = task_id};
    st->tick = (struct db_tick){copy_tick, st};
    st->last_heartbeat = clock_monotonic();
    st->error_details = json_object_new_array();
    st->warning_details = json_object_new_array();
    run_rows_init(&st->rows, run_id);
}

void run_ingest_free(struct run_ingest *st)
{
    run_rows_free(&st->rows);
    free(st->entry_path);
    json_object_put(st->error_details);
    json_object_put(st->warning_details);
    st->entry_path = NULL;
    st->error_details = st->warning_details = NULL;
}
