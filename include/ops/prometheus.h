/* Prometheus text exposition (format 0.0.4) of the supervisor's snapshot (http_server.h).
 * Pure: no I/O, so the exact text is unit-tested.
 *
 * Families, each with # HELP and # TYPE, in this order:
 *   cworker_tasks_{received,succeeded,failed,retried,skipped,requeued}_total{task}  counter
 *   cworker_task_duration_seconds{task} histogram (_bucket{le}, _sum, _count)
 *   cworker_executors, cworker_executors_busy, cworker_tasks_pending,
 *   cworker_retries_waiting (no sample while unknown)                          gauge
 *   cworker_dead_lettered_total                                                 counter
 *   cworker_broker_connected, cworker_database_connected,
 *   cworker_circuit_breaker_open                                                gauge (0/1)
 * Tasks come in name order, so the text is stable from scrape to scrape. */
#ifndef CWORKER_PROMETHEUS_H
#define CWORKER_PROMETHEUS_H

#include "base/strbuf.h"

#include <json-c/json.h>
#include <stdbool.h>

#define PROMETHEUS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Appends the exposition to out. snapshot may be NULL (none received yet): the task
 * families are then empty and the gauges 0. database_connected is the listener's own
 * check; the snapshot cannot know it. A task's histogram whose buckets are not cumulative
 * (or do not match its le list) is left out rather than exposed inconsistent. */
void prometheus_render(json_object *snapshot, bool database_connected, struct strbuf *out);

/* Appends s as a label value: backslash, double quote and newline escaped. */
void prometheus_escape_label(const char *s, struct strbuf *out);

/* Appends v as Prometheus writes floats: shortest text that reads back the same,
 * +Inf, -Inf, NaN. */
void prometheus_format_double(double v, struct strbuf *out);

#endif
