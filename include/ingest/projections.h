/* Turns the parsed .conf files of one run into COPY text for the stanzas table and the
 * six typed projection tables (CONTRACT 1.4, 1.7). Pure: no I/O. */
#ifndef CWORKER_PROJECTIONS_H
#define CWORKER_PROJECTIONS_H

#include "ingest/conf_parser.h"
#include "ingest/provenance.h"
#include "base/strbuf.h"

#include <stdbool.h>
#include <stddef.h>

enum proj_table {
    PROJ_INPUTS,
    PROJ_PROPS,
    PROJ_TRANSFORMS,
    PROJ_INDEXES,
    PROJ_OUTPUTS,
    PROJ_SERVERCLASSES,
    PROJ_COUNT,
};

/* "inputs", "props", "transforms", "indexes", "outputs", "serverclasses". */
const char *proj_table_name(enum proj_table t);

/* The table and column list for `COPY <target> FROM STDIN`, matching the rows made
 * here column for column, e.g. "indexes (run_id, name, kv)". */
const char *proj_copy_target(enum proj_table t);

extern const char STANZAS_COPY_TARGET[];

struct proj_serverclass; /* private: one aggregated serverclass */

/* Serverclasses by name, in the order first mentioned. Private. */
struct proj_class_set {
    struct proj_serverclass *v;
    size_t n, cap;
    struct json_object *index; /* name -> position in v */
};

/* What run_rows_abort_file restores: the counts when the file began. Private. */
struct run_rows_counts {
    size_t nstanzas, ntyped[PROJ_COUNT], truncations, repairs;
    size_t serverclass_items, serverclass_bytes;
};

/* The rows of one run, in COPY text format (one strbuf per table). The counts cover the
 * whole run; a caller that streams the rows (tasks/parse_run.c) sends the buffers as they
 * fill and then calls run_rows_sent, so they hold only what is not sent yet. The
 * serverclass aggregation is the one state kept for the whole run (one entry per
 * serverclass name), emitted by run_rows_finish.
 *
 * A file's stanzas come one at a time between run_rows_begin_file and run_rows_end_file
 * (or run_rows_abort_file, which takes back what the file added to the buffers and the
 * counts). mark_* are where the file's rows begin in each buffer: rows before the marks
 * belong to complete files (0 once run_rows_sent emptied the buffers). */
struct run_rows {
    long run_id;
    struct strbuf stanzas;
    size_t nstanzas;
    struct strbuf typed[PROJ_COUNT];
    size_t ntyped[PROJ_COUNT];
    size_t truncations; /* values cut to a column's width: parse warnings */
    size_t repairs;     /* source paths whose invalid UTF-8 bytes were replaced by "?" */
    /* What the serverclass aggregation (the one state kept for the run) was given:
     * serverclass stanzas plus their settings, and their text; repeats count again. The
     * caller bounds them to bound memory. */
    size_t serverclass_items, serverclass_bytes;
    size_t mark_stanzas, mark_typed[PROJ_COUNT];

    /* private: the file being added */
    bool in_file;
    long file_id;
    char *path; /* repaired source path */
    enum conf_type type;
    struct provenance pv;
    struct run_rows_counts at_begin;
    struct proj_class_set file_classes; /* merged into `classes` when the file ends */

    /* private: serverclass aggregation state, emitted by run_rows_finish */
    struct proj_class_set classes;
    bool finished;
};

void run_rows_init(struct run_rows *rr, long run_id);

/* Starts a file. file_id: the files.id the archive came from (<= 0 writes NULL);
 * source_path: the normalised path inside the archive, which also gives conf_type and
 * provenance. Sets the marks to the buffers' ends. */
void run_rows_begin_file(struct run_rows *rr, long file_id, const char *source_path);

/* Appends the rows of one stanza of the file begun. Its strings must be valid UTF-8
 * without NUL (conf_parser guarantees both); the caller keeps ownership of st. */
void run_rows_add_stanza(struct run_rows *rr, const struct conf_stanza *st);

/* The file is complete: its serverclasses join the run's. */
void run_rows_end_file(struct run_rows *rr);

/* The file failed: the counts are as at run_rows_begin_file and the buffers are cut back
 * to the marks (rows of the file that were already sent are the caller's to undo). */
void run_rows_abort_file(struct run_rows *rr);

/* The caller sent what the stanza buffer (or the typed buffers) hold: emptied (a buffer
 * grown far beyond a batch by one huge row is released), their marks 0. */
void run_rows_stanzas_sent(struct run_rows *rr);
void run_rows_typed_sent(struct run_rows *rr);

/* The caller sent the rows before the marks (complete files): they leave the buffers,
 * which then hold only the current file's rows; the marks are 0. */
void run_rows_sent_before_marks(struct run_rows *rr);

/* Bytes the buffers hold. */
size_t run_rows_buffered(const struct run_rows *rr);

/* begin_file, every stanza of f, end_file. */
void run_rows_add_file(struct run_rows *rr, long file_id, const char *source_path,
                       const struct conf_file *f);

/* Emits the aggregated serverclass rows; call once after the last file (later calls
 * do nothing). */
void run_rows_finish(struct run_rows *rr);

/* Releases all buffers and state; safe to call twice. */
void run_rows_free(struct run_rows *rr);

/* Total rows in the typed tables. */
size_t run_rows_typed_total(const struct run_rows *rr);

#endif
