/* The worker's HTTP listener (--http / CWORKER_HTTP): health, Prometheus metrics and the
 * application's run-status endpoints, served from a child process of the supervisor so
 * nothing slow ever runs on the AMQP thread.
 *
 *   GET /healthz                     200 {"status":"ok", ...} or 503 with what is wrong
 *   GET /metrics                     Prometheus text format 0.0.4 (prometheus.h)
 *   GET /v1/worker/runs/{id}/status  run_status_get (404 for an unknown run)
 *   GET /v1/worker/metrics           run_status_metrics
 *   GET / and /runs/{id}             the operator's dashboard page (dashboard_page.h)
 *   GET /v1/worker/dashboard         {"database": dashboard_data.h or null, "database_error",
 *                                     "worker": the snapshot's gauges + concurrency, or null}
 *   GET /v1/worker/queues            dashboard_broker.h (503 when the broker cannot be read)
 *   POST /v1/worker/dlq/replay       {"task_id", "queue"?}: dlq_replay of that task, only as
 *                                    dashboard_admin.h allows (403 otherwise); 200, 404 (not
 *                                    in the queue), 409 (could not be replayed), 503
 *
 * Channel from the supervisor (channel.h, one JSON object per packet), about every second:
 *   {"type":"snapshot", "time": <epoch s>, "nodename", "broker_connected": bool,
 *    "breaker_open": bool, "executors": n, "busy_executors": n, "pending": n,
 *    "dead_lettered": n, "retries_waiting": n | null,
 *    "tasks": {"<task>": {"received","succeeded","failed","retried","skipped","requeued"}},
 *    "durations": {"<task>": {"le": [..], "buckets": [cumulative, same length],
 *                             "sum": s, "count": n}}}
 * EOF on the channel (the supervisor closed it or died) stops the listener. */
#ifndef CWORKER_HTTP_SERVER_H
#define CWORKER_HTTP_SERVER_H

#include "base/config.h"

/* Runs in the forked child: serves cfg->http_listen ("HOST:PORT", or ":PORT" for all IPv4
 * interfaces) with libmicrohttpd's own polling thread while this thread reads snapshots
 * from channel_fd. Opens its own PostgreSQL connection. Leaves with _exit(): 0 on EOF,
 * 1 when the listener cannot start. */
__attribute__((noreturn)) void http_server_main(int channel_fd, const struct cw_config *cfg);

#endif
