/* Counters the supervisor keeps about tasks (received, outcomes, durations) and the
 * snapshot it sends to the HTTP process. Pure: no I/O. */
#ifndef CWORKER_WORKER_STATS_H
#define CWORKER_WORKER_STATS_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#define WORKER_STATS_MAX_TASKS 8
#define WORKER_STATS_BUCKETS   13

enum task_event {
    TASK_EVENT_RECEIVED,
    TASK_EVENT_SUCCEEDED,
    TASK_EVENT_FAILED,
    TASK_EVENT_RETRIED,
    TASK_EVENT_SKIPPED,
    TASK_EVENT_REQUEUED,
    TASK_EVENT_COUNT
};

struct task_stats {
    char name[128];
    uint64_t events[TASK_EVENT_COUNT];
    uint64_t buckets[WORKER_STATS_BUCKETS]; /* cumulative: count of durations <= le[i] */
    double duration_sum;
    uint64_t duration_count;
};

struct worker_stats {
    struct task_stats tasks[WORKER_STATS_MAX_TASKS];
    int ntasks;
    uint64_t dead_lettered;
};

extern const double worker_stats_buckets[WORKER_STATS_BUCKETS];

/* Counts an event for a task (unknown names beyond the table share its last slot). */
void worker_stats_count(struct worker_stats *ws, const char *task, enum task_event ev);
void worker_stats_duration(struct worker_stats *ws, const char *task, double seconds);

/* The gauges that live outside the counters. */
struct worker_gauges {
    const char *nodename;
    double now;
    bool broker_connected;
    bool breaker_open;
    int executors;
    int busy_executors;
    int pending;
    long retries_waiting; /* -1: unknown */
};

/* The snapshot message (see http_server.h); caller owns the result. */
json_object *worker_stats_snapshot(const struct worker_stats *ws, const struct worker_gauges *g);

#endif
