/* What the application's monitoring endpoints return, read from the views of migration 006
 * (so `cworker status`/`cworker metrics`, the HTTP listener and psql always agree).
 *
 * Run status (GET /v1/worker/runs/{id}/status), keys in this order:
 *   id, type, label, notes, created_at, status, task_id, retry_count, error_message,
 *   error_traceback, last_heartbeat, started_at, completed_at, metrics (JSON, not a string)
 *   and, while the run is PARSING and the worker recorded it, progress
 *   {"files_total", "files_done", "conf_files_parsed", "stanzas_so_far", "bytes_parsed"}.
 * Worker metrics (GET /v1/worker/metrics):
 *   {"status_counts": {"<STATUS>": n}, "retry_stats": {"avg_retries", "max_retries"},
 *    "avg_duration_seconds", "recent_failures": [{"run_id", "error_message",
 *    "retry_count", "completed_at"}, ...up to 10]}
 * Timestamps are ISO-8601 in UTC with microseconds ("2026-01-02T03:04:05.678901+00:00");
 * status and type are the member names the application stores (upper case). */
#ifndef CWORKER_RUN_STATUS_H
#define CWORKER_RUN_STATUS_H

#include "base/error.h"

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdbool.h>

/* Parses a run id as the application's routes accept it: decimal digits only, 1..2^31-1. */
bool run_status_parse_id(const char *text, long *run_id);

/* *out (caller owns) is the run's status, or NULL when there is no such run.
 * Errors are classified by db/pg_error.h (a missing view adds "run `cworker migrate`"). */
CW_MUST_CHECK int run_status_get(PGconn *conn, long run_id, json_object **out,
                                 struct cw_error *err);

/* *out (caller owns) is the worker metrics object. */
CW_MUST_CHECK int run_status_metrics(PGconn *conn, json_object **out, struct cw_error *err);

#endif
