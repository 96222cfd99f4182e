/* Prometheus text format 0.0.4 of the supervisor's snapshot. */
#include "ops/prometheus.h"
#include "base/utf8.h"
#include "base/xalloc.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The per-task counters: the snapshot's field in tasks.<name>, and the family. */
static const struct task_counter {
    const char *field;
    const char *name;
    const char *help;
} task_counters[] = {
    {"received", "cworker_tasks_received_total", "Task messages received from the broker."},
    {"succeeded", "cworker_tasks_succeeded_total", "Task executions that succeeded."},
    {"failed", "cworker_tasks_failed_total", "Task executions that failed for good."},
    {"retried", "cworker_tasks_retried_total", "Task executions that scheduled a retry."},
    {"skipped", "cworker_tasks_skipped_total",
     "Task executions skipped (already finished, or another delivery runs it)."},
    {"requeued", "cworker_tasks_requeued_total",
     "Task deliveries handed back to the broker unfinished (outage, shutdown, crash)."},
};

#define DURATION_FAMILY "cworker_task_duration_seconds"

static void header(struct strbuf *out, const char *name, const char *type, const char *help)
{
    /* HELP text is fixed here and has no backslash or newline to escape. */
    strbuf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static json_object *field(json_object *o, const char *key)
{
    json_object *v = NULL;
    return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* A count from the snapshot; anything that is not a number counts as 0. */
static int64_t field_count(json_object *o, const char *key)
{
    json_object *v = field(o, key);
    if (!v || !(json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
        return 0;
    return json_object_get_int64(v);
}

static bool field_bool(json_object *o, const char *key)
{
    json_object *v = field(o, key);
    return v && json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of obj in name order. The caller owns the array; the strings stay obj's. */
static const char **sorted_keys(json_object *obj, size_t *n)
{
    *n = 0;
    if (!obj || !json_object_is_type(obj, json_type_object))
        return NULL;
    const char **keys = cw_xcalloc((size_t)json_object_object_length(obj) + 1, sizeof *keys);
    json_object_object_foreach(obj, key, val)
    {
        (void)val;
        keys[(*n)++] = key;
    }
    qsort(keys, *n, sizeof *keys, compare_strings);
    return keys;
}

void prometheus_escape_label(const char *s, struct strbuf *out)
{
    /* A task name comes from a message and need not be UTF-8; the format requires it. */
    char *text = cw_xstrdup(s);
    utf8_repair(text, strlen(text));
    for (const char *p = text; *p; p++) {
        if (*p == '\\')
            strbuf_append_str(out, "\\\\");
        else if (*p == '"')
            strbuf_append_str(out, "\\\"");
        else if (*p == '\n')
            strbuf_append_str(out, "\\n");
        else
            strbuf_append_char(out, *p);
    }
    free(text);
}

void prometheus_format_double(double v, struct strbuf *out)
{
    if (isnan(v)) {
        strbuf_append_str(out, "NaN");
        return;
    }
    if (isinf(v)) {
        strbuf_append_str(out, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    /* The fewest significant digits that read back as v, then Go's strconv 'g' layout
     * (what the Prometheus libraries print): an exponent only below 1e-4 or from 1e6. */
    char buf[48];
    int digits = 1;
    for (; digits < 17; digits++) {
        snprintf(buf, sizeof buf, "%.*e", digits - 1, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    snprintf(buf, sizeof buf, "%.*e", digits - 1, v);
    int exp = atoi(strchr(buf, 'e') + 1);
    if (exp >= -4 && exp < 6) {
        int decimals = digits - 1 - exp;
        snprintf(buf, sizeof buf, "%.*f", decimals > 0 ? decimals : 0, v);
    }
    strbuf_append_str(out, buf);
}

static void sample_start(struct strbuf *out, const char *name, const char *task)
{
    strbuf_appendf(out, "%s{task=\"", name);
    prometheus_escape_label(task, out);
    strbuf_append_char(out, '"');
}

static void render_task_counters(json_object *tasks, const char **names, size_t n,
                                 struct strbuf *out)
{
    for (size_t c = 0; c < sizeof task_counters / sizeof task_counters[0]; c++) {
        const struct task_counter *tc = &task_counters[c];
        header(out, tc->name, "counter", tc->help);
        for (size_t i = 0; i < n; i++) {
            sample_start(out, tc->name, names[i]);
            strbuf_appendf(out, "} %" PRId64 "\n", field_count(field(tasks, names[i]), tc->field));
        }
    }
}

static bool is_number(json_object *v)
{
    return v && (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double));
}

/* le strictly increasing and finite, buckets cumulative and within count. */
static bool histogram_valid(json_object *h)
{
    json_object *le = field(h, "le"), *buckets = field(h, "buckets");
    if (!le || !buckets || !json_object_is_type(le, json_type_array) ||
        !json_object_is_type(buckets, json_type_array) ||
        json_object_array_length(le) != json_object_array_length(buckets) ||
        !is_number(field(h, "sum")) || !is_number(field(h, "count")))
        return false;
    double prev_le = -INFINITY;
    int64_t prev = 0, count = field_count(h, "count");
    for (size_t i = 0; i < json_object_array_length(le); i++) {
        json_object *bound = json_object_array_get_idx(le, i);
        json_object *b = json_object_array_get_idx(buckets, i);
        if (!is_number(bound) || !is_number(b))
            return false;
        double x = json_object_get_double(bound);
        int64_t v = json_object_get_int64(b);
        if (!isfinite(x) || x <= prev_le || v < prev || v > count)
            return false;
        prev_le = x;
        prev = v;
    }
    return count >= 0;
}

static void render_bucket(struct strbuf *out, const char *task, double le, int64_t count)
{
    sample_start(out, DURATION_FAMILY "_bucket", task);
    strbuf_append_str(out, ",le=\"");
    prometheus_format_double(le, out);
    strbuf_appendf(out, "\"} %" PRId64 "\n", count);
}

static void render_histogram(json_object *h, const char *task, struct strbuf *out)
{
    json_object *le = field(h, "le"), *buckets = field(h, "buckets");
    int64_t count = field_count(h, "count");
    for (size_t i = 0; i < json_object_array_length(le); i++)
        render_bucket(out, task, json_object_get_double(json_object_array_get_idx(le, i)),
                      json_object_get_int64(json_object_array_get_idx(buckets, i)));
    render_bucket(out, task, INFINITY, count);
    sample_start(out, DURATION_FAMILY "_sum", task);
    strbuf_append_str(out, "} ");
    prometheus_format_double(json_object_get_double(field(h, "sum")), out);
    strbuf_append_char(out, '\n');
    sample_start(out, DURATION_FAMILY "_count", task);
    strbuf_appendf(out, "} %" PRId64 "\n", count);
}

static void render_durations(json_object *durations, struct strbuf *out)
{
    header(out, DURATION_FAMILY, "histogram",
           "Time from dispatch to an executor until its result, per task.");
    size_t n;
    const char **names = sorted_keys(durations, &n);
    for (size_t i = 0; i < n; i++) {
        json_object *h = field(durations, names[i]);
        if (histogram_valid(h))
            render_histogram(h, names[i], out);
    }
    free(names);
}

static void gauge(struct strbuf *out, const char *name, const char *help, int64_t value)
{
    header(out, name, "gauge", help);
    strbuf_appendf(out, "%s %" PRId64 "\n", name, value);
}

static void render_worker(json_object *snap, bool database_connected, struct strbuf *out)
{
    gauge(out, "cworker_executors", "Executor processes configured.",
          field_count(snap, "executors"));
    gauge(out, "cworker_executors_busy", "Executor processes running a task.",
          field_count(snap, "busy_executors"));
    gauge(out, "cworker_tasks_pending", "Received tasks waiting for an executor or their eta.",
          field_count(snap, "pending"));
    header(out, "cworker_retries_waiting", "gauge",
           "Retry messages waiting in the delay queues (no sample while unknown).");
    json_object *waiting = field(snap, "retries_waiting");
    if (is_number(waiting) && json_object_get_int64(waiting) >= 0)
        strbuf_appendf(out, "cworker_retries_waiting %" PRId64 "\n",
                       json_object_get_int64(waiting));
    header(out, "cworker_dead_lettered_total", "counter",
           "Messages this worker sent to a dead-letter queue.");
    strbuf_appendf(out, "cworker_dead_lettered_total %" PRId64 "\n",
                   field_count(snap, "dead_lettered"));
    gauge(out, "cworker_broker_connected", "1 when the worker is connected to the broker.",
          field_bool(snap, "broker_connected"));
    gauge(out, "cworker_database_connected", "1 when the worker's database check succeeds.",
          database_connected);
    gauge(out, "cworker_circuit_breaker_open",
          "1 while an outage keeps the worker from taking tasks.",
          field_bool(snap, "breaker_open"));
}

void prometheus_render(json_object *snapshot, bool database_connected, struct strbuf *out)
{
    json_object *tasks = field(snapshot, "tasks");
    size_t n;
    const char **names = sorted_keys(tasks, &n);
    render_task_counters(tasks, names, n, out);
    free(names);
    render_durations(field(snapshot, "durations"), out);
    render_worker(snapshot, database_connected, out);
}
