/* What the operator's dashboard (GET /) shows from the database, as one JSON object:
 *   status_counts   {"<STATUS>": n} over all runs (upper-cased, as cworker_worker_metrics)
 *   total_runs      n
 *   per_minute      60 objects, oldest first, one per minute of the last hour:
 *                   {"minute": ISO-8601, "completed": n, "failed": n, "retried": n}
 *                   counted by completed_at; "retried" = runs that finished that minute
 *                   after at least one retry (retry_count > 0)
 *   recent_failures up to 10 FAILED runs, latest completed_at first:
 *                   [{"run_id", "label", "error_message", "retry_count", "completed_at",
 *                     "error_traceback"}]
 *   delay_queues    retries waiting, per delay queue, whichever worker scheduled them
 *                   (cworker_tasks.retry_queue, migration 007), by name:
 *                   [{"name": "Q.retry.60s", "scheduled": n, "next_due_at": ISO-8601,
 *                     "next_due_in_seconds": s (negative: overdue, e.g. held by a busy
 *                     worker)}]
 * PostgreSQL builds the JSON (json_build_object), so every string is JSON-escaped there;
 * the page still treats every value as text. */
#ifndef CWORKER_DASHBOARD_DATA_H
#define CWORKER_DASHBOARD_DATA_H

#include "base/error.h"

#include <json-c/json.h>
#include <libpq-fe.h>

/* *out (caller owns) is the object above. */
CW_MUST_CHECK int dashboard_data_get(PGconn *conn, json_object **out, struct cw_error *err);

#endif
