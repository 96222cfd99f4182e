/* Steps 3-6 of parse_run (CONTRACT 1.5): the uploads a claim loaded become stanzas and
 * typed rows in the run's one write transaction, streamed while they are read
 * (db/run_writer.h). The parser hands over each stanza as it completes, so memory is
 * bounded by one stanza and one batch of rows, not by a file or the run; a failure at any
 * point (a checksum that does not match included) rolls back, leaving no partial rows. */
#ifndef CWORKER_RUN_INGEST_H
#define CWORKER_RUN_INGEST_H

#include "base/error.h"
#include "celery/message.h"
#include "db/run_claim.h"
#include "db/run_writer.h"
#include "ingest/conf_parser.h"
#include "ingest/projections.h"
#include "tasks/task.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

/* Everything one execution of parse_run accumulates while its uploads are read; owned by
 * parse_run_task. The claim (tasks/parse_run.c) uses writer and tick; the rest is private. */
struct run_ingest {
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

/* Ready for the claim: the writer's tick is the ingest's heartbeat and time limit check. */
void run_ingest_init(struct run_ingest *st, struct task_context *ctx, long run_id,
                     const char *task_id);
void run_ingest_free(struct run_ingest *st);

/* Parses the claim's files into the result transaction the claim began, then COMPLETE and
 * COMMIT. *written=false (returning 0): the run was no longer ours, nothing was committed.
 * On -1 the transaction is rolled back and err says why (its class decides a retry). */
CW_MUST_CHECK int run_ingest_store(struct run_ingest *st, const struct celery_task *msg,
                                   const struct db_claim *claim, json_object **result,
                                   bool *written, struct cw_error *err);

#endif
