/* The metrics JSON of a failed run (ingestion_runs.metrics, cworker_tasks.metrics), the
 * one shape whoever records the failure writes: the task itself or the stuck-run sweeper.
 *   {"duration_seconds": d, "retry_count": n, "error_type": "<retry_policy's type>"} */
#ifndef CWORKER_RUN_METRICS_H
#define CWORKER_RUN_METRICS_H

#include <json-c/json.h>

/* A new object the caller owns; error_type NULL means "transient". */
json_object *run_failure_metrics(double duration_seconds, int retry_count, const char *error_type);

#endif
