/* Task counters and the snapshot the HTTP process serves. */
#include "ops/worker_stats.h"

#include <stdio.h>
#include <string.h>

const double worker_stats_buckets[WORKER_STATS_BUCKETS] = {0.05, 0.1, 0.25, 0.5, 1,    2.5, 5,
                                                           10,   30,  60,   300, 1800, 3600};

static struct task_stats *slot(struct worker_stats *ws, const char *task)
{
    for (int i = 0; i < ws->ntasks; i++)
        if (strcmp(ws->tasks[i].name, task) == 0)
            return &ws->tasks[i];
    if (ws->ntasks == WORKER_STATS_MAX_TASKS)
        return &ws->tasks[WORKER_STATS_MAX_TASKS - 1];
    struct task_stats *t = &ws->tasks[ws->ntasks++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", task);
    return t;
}

void worker_stats_count(struct worker_stats *ws, const char *task, enum task_event ev)
{
    slot(ws, task ? task : "unknown")->events[ev]++;
}

void worker_stats_duration(struct worker_stats *ws, const char *task, double seconds)
{
    struct task_stats *t = slot(ws, task ? task : "unknown");
    for (int i = 0; i < WORKER_STATS_BUCKETS; i++)
        if (seconds <= worker_stats_buckets[i])
            t->buckets[i]++;
    t->duration_sum += seconds;
    t->duration_count++;
}

static const char *const event_names[TASK_EVENT_COUNT] = {
    [TASK_EVENT_RECEIVED] = "received", [TASK_EVENT_SUCCEEDED] = "succeeded",
    [TASK_EVENT_FAILED] = "failed",     [TASK_EVENT_RETRIED] = "retried",
    [TASK_EVENT_SKIPPED] = "skipped",   [TASK_EVENT_REQUEUED] = "requeued",
};

static json_object *histogram(const struct task_stats *t)
{
    json_object *h = json_object_new_object();
    json_object *le = json_object_new_array();
    json_object *buckets = json_object_new_array();
    for (int i = 0; i < WORKER_STATS_BUCKETS; i++) {
        json_object_array_add(le, json_object_new_double(worker_stats_buckets[i]));
        json_object_array_add(buckets, json_object_new_int64((int64_t)t->buckets[i]));
    }
    json_object_object_add(h, "le", le);
    json_object_object_add(h, "buckets", buckets);
    json_object_object_add(h, "sum", json_object_new_double(t->duration_sum));
    json_object_object_add(h, "count", json_object_new_int64((int64_t)t->duration_count));
    return h;
}

json_object *worker_stats_snapshot(const struct worker_stats *ws, const struct worker_gauges *g)
{
    json_object *s = json_object_new_object();
    json_object_object_add(s, "type", json_object_new_string("snapshot"));
    json_object_object_add(s, "time", json_object_new_double(g->now));
    json_object_object_add(s, "nodename", json_object_new_string(g->nodename));
    json_object_object_add(s, "broker_connected", json_object_new_boolean(g->broker_connected));
    json_object_object_add(s, "breaker_open", json_object_new_boolean(g->breaker_open));
    json_object_object_add(s, "executors", json_object_new_int(g->executors));
    json_object_object_add(s, "busy_executors", json_object_new_int(g->busy_executors));
    json_object_object_add(s, "pending", json_object_new_int(g->pending));
    json_object_object_add(s, "dead_lettered", json_object_new_int64((int64_t)ws->dead_lettered));
    json_object_object_add(s, "retries_waiting",
                           g->retries_waiting < 0 ? NULL
                                                  : json_object_new_int64(g->retries_waiting));
    json_object *tasks = json_object_new_object();
    json_object *durations = json_object_new_object();
    for (int i = 0; i < ws->ntasks; i++) {
        const struct task_stats *t = &ws->tasks[i];
        json_object *counts = json_object_new_object();
        for (int e = 0; e < TASK_EVENT_COUNT; e++)
            json_object_object_add(counts, event_names[e],
                                   json_object_new_int64((int64_t)t->events[e]));
        json_object_object_add(tasks, t->name, counts);
        json_object_object_add(durations, t->name, histogram(t));
    }
    json_object_object_add(s, "tasks", tasks);
    json_object_object_add(s, "durations", durations);
    return s;
}
