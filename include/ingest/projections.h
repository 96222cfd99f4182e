/* Turns the parsed .conf files of one run into COPY text for the stanzas table and the
 * six typed projection tables (CONTRACT 1.4, 1.7). Pure: no I/O. */
#ifndef CWORKER_PROJECTIONS_H
#define CWORKER_PROJECTIONS_H

#include "ingest/conf_parser.h"
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

/* The rows of one run, in COPY text format (one strbuf per table). The counts cover the
 * whole run; a caller that streams the rows (tasks/parse_run.c) sends and resets the
 * buffers as they fill (whole rows only), so they hold only what is not sent yet. The
 * serverclass aggregation is the one state kept for the whole run (one entry per
 * serverclass name), emitted by run_rows_finish. */
struct run_rows {
    long run_id;
    struct strbuf stanzas;
    size_t nstanzas;
    struct strbuf typed[PROJ_COUNT];
    size_t ntyped[PROJ_COUNT];
    size_t truncations; /* values cut to a column's width: parse warnings */
    size_t repairs;     /* source paths whose invalid UTF-8 bytes were replaced by "?" */

    /* private: serverclass aggregation state, emitted by run_rows_finish */
    struct proj_serverclass *classes;
    size_t nclasses, classes_cap;
    bool finished;
};

void run_rows_init(struct run_rows *rr, long run_id);

/* Appends the rows of one parsed file. file_id: the files.id the archive came from
 * (<= 0 writes NULL); source_path: the normalised path inside the archive, which also
 * gives conf_type and provenance. The conf_file's strings must be valid UTF-8 without
 * NUL (conf_parser guarantees both); the caller keeps ownership of f. */
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
