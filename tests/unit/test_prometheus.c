/* Unit tests for the Prometheus exposition of the supervisor's snapshot (prometheus.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "ops/prometheus.h"
#include "ops/worker_stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_object *parse(const char *text)
{
    json_object *o = json_tokener_parse(text);
    assert_non_null(o);
    return o;
}

static char *render(json_object *snap, bool db)
{
    struct strbuf out = STRBUF_INIT;
    prometheus_render(snap, db, &out);
    return strbuf_steal(&out);
}

static const char small_snapshot[] =
    "{\"type\":\"snapshot\",\"time\":1700000000,\"nodename\":\"cworker@h\","
    "\"broker_connected\":true,\"breaker_open\":false,\"executors\":4,\"busy_executors\":2,"
    "\"pending\":1,\"dead_lettered\":7,\"retries_waiting\":3,"
    "\"tasks\":{\"z.task\":{\"received\":2,\"succeeded\":1,\"failed\":0,\"retried\":1,"
    "\"skipped\":0,\"requeued\":0},"
    "\"app.worker.tasks.parse_run\":{\"received\":10,\"succeeded\":8,\"failed\":1,"
    "\"retried\":1,\"skipped\":2,\"requeued\":3}},"
    "\"durations\":{\"app.worker.tasks.parse_run\":{\"le\":[0.05,1,3600],"
    "\"buckets\":[1,6,9],\"sum\":12.5,\"count\":10}}}";

static const char small_expected[] =
    "# HELP cworker_tasks_received_total Task messages received from the broker.\n"
    "# TYPE cworker_tasks_received_total counter\n"
    "cworker_tasks_received_total{task=\"app.worker.tasks.parse_run\"} 10\n"
    "cworker_tasks_received_total{task=\"z.task\"} 2\n"
    "# HELP cworker_tasks_succeeded_total Task executions that succeeded.\n"
    "# TYPE cworker_tasks_succeeded_total counter\n"
    "cworker_tasks_succeeded_total{task=\"app.worker.tasks.parse_run\"} 8\n"
    "cworker_tasks_succeeded_total{task=\"z.task\"} 1\n"
    "# HELP cworker_tasks_failed_total Task executions that failed for good.\n"
    "# TYPE cworker_tasks_failed_total counter\n"
    "cworker_tasks_failed_total{task=\"app.worker.tasks.parse_run\"} 1\n"
    "cworker_tasks_failed_total{task=\"z.task\"} 0\n"
    "# HELP cworker_tasks_retried_total Task executions that scheduled a retry.\n"
    "# TYPE cworker_tasks_retried_total counter\n"
    "cworker_tasks_retried_total{task=\"app.worker.tasks.parse_run\"} 1\n"
    "cworker_tasks_retried_total{task=\"z.task\"} 1\n"
    "# HELP cworker_tasks_skipped_total Task executions skipped (already finished, or another "
    "delivery runs it).\n"
    "# TYPE cworker_tasks_skipped_total counter\n"
    "cworker_tasks_skipped_total{task=\"app.worker.tasks.parse_run\"} 2\n"
    "cworker_tasks_skipped_total{task=\"z.task\"} 0\n"
    "# HELP cworker_tasks_requeued_total Task deliveries handed back to the broker unfinished "
    "(outage, shutdown, crash).\n"
    "# TYPE cworker_tasks_requeued_total counter\n"
    "cworker_tasks_requeued_total{task=\"app.worker.tasks.parse_run\"} 3\n"
    "cworker_tasks_requeued_total{task=\"z.task\"} 0\n"
    "# HELP cworker_task_duration_seconds Time from dispatch to an executor until its result, "
    "per task.\n"
    "# TYPE cworker_task_duration_seconds histogram\n"
    "cworker_task_duration_seconds_bucket{task=\"app.worker.tasks.parse_run\",le=\"0.05\"} 1\n"
    "cworker_task_duration_seconds_bucket{task=\"app.worker.tasks.parse_run\",le=\"1\"} 6\n"
    "cworker_task_duration_seconds_bucket{task=\"app.worker.tasks.parse_run\",le=\"3600\"} 9\n"
    "cworker_task_duration_seconds_bucket{task=\"app.worker.tasks.parse_run\",le=\"+Inf\"} 10\n"
    "cworker_task_duration_seconds_sum{task=\"app.worker.tasks.parse_run\"} 12.5\n"
    "cworker_task_duration_seconds_count{task=\"app.worker.tasks.parse_run\"} 10\n"
    "# HELP cworker_executors Executor processes configured.\n"
    "# TYPE cworker_executors gauge\n"
    "cworker_executors 4\n"
    "# HELP cworker_executors_busy Executor processes running a task.\n"
    "# TYPE cworker_executors_busy gauge\n"
    "cworker_executors_busy 2\n"
    "# HELP cworker_tasks_pending Received tasks waiting for an executor or their eta.\n"
    "# TYPE cworker_tasks_pending gauge\n"
    "cworker_tasks_pending 1\n"
    "# HELP cworker_retries_waiting Retry messages waiting in the delay queues (no sample while "
    "unknown).\n"
    "# TYPE cworker_retries_waiting gauge\n"
    "cworker_retries_waiting 3\n"
    "# HELP cworker_dead_lettered_total Messages this worker sent to a dead-letter queue.\n"
    "# TYPE cworker_dead_lettered_total counter\n"
    "cworker_dead_lettered_total 7\n"
    "# HELP cworker_broker_connected 1 when the worker is connected to the broker.\n"
    "# TYPE cworker_broker_connected gauge\n"
    "cworker_broker_connected 1\n"
    "# HELP cworker_database_connected 1 when the worker's database check succeeds.\n"
    "# TYPE cworker_database_connected gauge\n"
    "cworker_database_connected 1\n"
    "# HELP cworker_circuit_breaker_open 1 while an outage keeps the worker from taking tasks.\n"
    "# TYPE cworker_circuit_breaker_open gauge\n"
    "cworker_circuit_breaker_open 0\n";

static void test_exact_text(void **state)
{
    (void)state;
    json_object *snap = parse(small_snapshot);
    char *text = render(snap, true);
    assert_string_equal(text, small_expected);
    free(text);
    json_object_put(snap);
}

/* True when the text has a line that is exactly `line`. */
static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
    return false;
}

static void test_no_snapshot(void **state)
{
    (void)state;
    char *text = render(NULL, false);
    /* Every family is still announced; task families have no samples. */
    assert_non_null(strstr(text, "# TYPE cworker_tasks_received_total counter\n"
                                 "# HELP cworker_tasks_succeeded_total"));
    assert_non_null(strstr(text, "# TYPE cworker_task_duration_seconds histogram\n"
                                 "# HELP cworker_executors "));
    assert_true(has_line(text, "cworker_executors 0"));
    assert_true(has_line(text, "cworker_broker_connected 0"));
    assert_true(has_line(text, "cworker_database_connected 0"));
    assert_true(has_line(text, "cworker_dead_lettered_total 0"));
    assert_null(strstr(text, "cworker_retries_waiting 0"));
    assert_null(strstr(text, "{task="));
    free(text);
}

static void test_retries_waiting_unknown(void **state)
{
    (void)state;
    json_object *snap = parse("{\"type\":\"snapshot\",\"retries_waiting\":null,"
                              "\"breaker_open\":true,\"broker_connected\":false}");
    char *text = render(snap, true);
    assert_true(has_line(text, "# TYPE cworker_retries_waiting gauge"));
    assert_null(strstr(text, "\ncworker_retries_waiting "));
    assert_true(has_line(text, "cworker_circuit_breaker_open 1"));
    assert_true(has_line(text, "cworker_broker_connected 0"));
    assert_true(has_line(text, "cworker_database_connected 1"));
    free(text);
    json_object_put(snap);
}

static char *escaped(const char *s)
{
    struct strbuf out = STRBUF_INIT;
    prometheus_escape_label(s, &out);
    return strbuf_steal(&out);
}

static void test_label_escaping(void **state)
{
    (void)state;
    struct {
        const char *in, *want;
    } cases[] = {
        {"plain.task", "plain.task"},
        {"a\"b", "a\\\"b"},
        {"back\\slash", "back\\\\slash"},
        {"new\nline", "new\\nline"},
        {"\\\"\n", "\\\\\\\"\\n"},
        {"tab\tand \xc3\xa9", "tab\tand \xc3\xa9"}, /* tabs and UTF-8 pass */
        {"bad\xff\xfe", "bad??"},                   /* invalid UTF-8 repaired */
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = escaped(cases[i].in);
        assert_string_equal(got, cases[i].want);
        free(got);
    }
}

static void test_label_escaping_in_samples(void **state)
{
    (void)state;
    json_object *snap = json_object_new_object();
    json_object *tasks = json_object_new_object();
    json_object *counts = json_object_new_object();
    json_object_object_add(counts, "received", json_object_new_int(1));
    json_object_object_add(tasks, "evil\"} 1\ncworker_fake 1\n", counts);
    json_object_object_add(snap, "tasks", tasks);
    char *text = render(snap, false);
    /* The name stays inside its label: no injected sample line. */
    assert_true(has_line(text, "cworker_tasks_received_total{task=\"evil\\\"} 1\\ncworker_fake "
                               "1\\n\"} 1"));
    assert_false(has_line(text, "cworker_fake 1"));
    free(text);
    json_object_put(snap);
}

static char *formatted(double v)
{
    struct strbuf out = STRBUF_INIT;
    prometheus_format_double(v, &out);
    return strbuf_steal(&out);
}

static void test_format_double(void **state)
{
    (void)state;
    struct {
        double v;
        const char *want;
    } cases[] = {
        {0, "0"},
        {0.05, "0.05"},
        {0.1, "0.1"},
        {0.25, "0.25"},
        {1, "1"},
        {2.5, "2.5"},
        {10, "10"},
        {300, "300"},
        {1800, "1800"},
        {3600, "3600"},
        {12.5, "12.5"},
        {-3, "-3"},
        {0.0001, "0.0001"},
        {0.00001, "1e-05"},
        {999999, "999999"},
        {1e6, "1e+06"},
        {0.1 + 0.2, "0.30000000000000004"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
        {NAN, "NaN"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = formatted(cases[i].v);
        assert_string_equal(got, cases[i].want);
        free(got);
    }
}

/* Parses the histogram samples of task t from text: the bucket counts in order, and the
 * +Inf bucket and _count. */
static size_t bucket_counts(const char *text, const char *t, long long *counts, size_t max,
                            long long *inf, long long *count)
{
    char prefix[256];
    size_t n = 0;
    *inf = *count = -1;
    snprintf(prefix, sizeof prefix, "cworker_task_duration_seconds_bucket{task=\"%s\",le=\"", t);
    for (const char *p = strstr(text, prefix); p; p = strstr(p + 1, prefix)) {
        const char *le = p + strlen(prefix);
        long long v = strtoll(strstr(le, "} ") + 2, NULL, 10);
        if (strncmp(le, "+Inf\"", 5) == 0)
            *inf = v;
        else if (n < max)
            counts[n++] = v;
    }
    snprintf(prefix, sizeof prefix, "cworker_task_duration_seconds_count{task=\"%s\"} ", t);
    const char *c = strstr(text, prefix);
    if (c)
        *count = strtoll(c + strlen(prefix), NULL, 10);
    return n;
}

static void test_histogram_consistency(void **state)
{
    (void)state;
    json_object *snap =
        parse("{\"durations\":{"
              "\"good\":{\"le\":[0.05,0.1,0.25,0.5,1,2.5,5,10,30,60,300,1800,3600],"
              "\"buckets\":[0,0,1,1,2,2,2,3,3,3,4,4,4],\"sum\":400.5,\"count\":5},"
              "\"not_cumulative\":{\"le\":[1,2],\"buckets\":[3,1],\"sum\":1,\"count\":3},"
              "\"over_count\":{\"le\":[1,2],\"buckets\":[1,4],\"sum\":1,\"count\":3},"
              "\"short\":{\"le\":[1,2,3],\"buckets\":[1,2],\"sum\":1,\"count\":3},"
              "\"le_unsorted\":{\"le\":[2,1],\"buckets\":[1,2],\"sum\":1,\"count\":3},"
              "\"no_sum\":{\"le\":[1],\"buckets\":[1],\"count\":1},"
              "\"empty\":{\"le\":[],\"buckets\":[],\"sum\":0,\"count\":0}}}");
    char *text = render(snap, true);
    long long counts[32], inf, count;
    size_t n = bucket_counts(text, "good", counts, 32, &inf, &count);
    assert_int_equal(n, 13);
    for (size_t i = 1; i < n; i++)
        assert_true(counts[i] >= counts[i - 1]);
    assert_true(counts[n - 1] <= inf);
    assert_int_equal(inf, 5);
    assert_int_equal(count, 5);
    assert_true(has_line(text, "cworker_task_duration_seconds_sum{task=\"good\"} 400.5"));
    /* Inconsistent histograms are left out entirely rather than exposed. */
    const char *bad[] = {"not_cumulative", "over_count", "short", "le_unsorted", "no_sum"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char needle[64];
        snprintf(needle, sizeof needle, "{task=\"%s\"", bad[i]);
        assert_null(strstr(text, needle));
    }
    /* No finite buckets yet: only +Inf, _sum and _count. */
    n = bucket_counts(text, "empty", counts, 32, &inf, &count);
    assert_int_equal(n, 0);
    assert_int_equal(inf, 0);
    assert_int_equal(count, 0);
    free(text);
    json_object_put(snap);
}

/* Every line is a comment or `name{labels} value` with a parsable value. */
static void test_every_sample_parses(void **state)
{
    (void)state;
    json_object *snap = parse(small_snapshot);
    char *text = render(snap, false);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#')
            continue;
        char *space = strrchr(line, ' ');
        assert_non_null(space);
        char *end;
        strtod(space + 1, &end);
        assert_true(*end == '\0');
        assert_true(strncmp(line, "cworker_", 8) == 0);
    }
    free(text);
    json_object_put(snap);
}

/* The supervisor's own snapshot, through the channel's JSON text, renders consistently. */
static void test_worker_stats_snapshot(void **state)
{
    (void)state;
    static struct worker_stats ws; /* large; zeroed */
    const char *task = "app.worker.tasks.parse_run";
    for (int i = 0; i < 4; i++)
        worker_stats_count(&ws, task, TASK_EVENT_RECEIVED);
    worker_stats_count(&ws, task, TASK_EVENT_SUCCEEDED);
    worker_stats_count(&ws, task, TASK_EVENT_SUCCEEDED);
    worker_stats_count(&ws, task, TASK_EVENT_FAILED);
    worker_stats_count(&ws, task, TASK_EVENT_RETRIED);
    worker_stats_duration(&ws, task, 0.02);
    worker_stats_duration(&ws, task, 0.7);
    worker_stats_duration(&ws, task, 42);
    worker_stats_duration(&ws, task, 5000);
    ws.dead_lettered = 2;
    struct worker_gauges g = {"cworker@h", 1700000000.5, true, false, 3, 1, 0, -1};
    json_object *snap = worker_stats_snapshot(&ws, &g);
    json_object *wire = parse(json_object_to_json_string_ext(snap, JSON_C_TO_STRING_PLAIN));
    char *text = render(wire, true);
    assert_true(
        has_line(text, "cworker_tasks_received_total{task=\"app.worker.tasks.parse_run\"} 4"));
    assert_true(
        has_line(text, "cworker_tasks_succeeded_total{task=\"app.worker.tasks.parse_run\"} 2"));
    assert_true(
        has_line(text, "cworker_tasks_failed_total{task=\"app.worker.tasks.parse_run\"} 1"));
    assert_true(
        has_line(text, "cworker_tasks_retried_total{task=\"app.worker.tasks.parse_run\"} 1"));
    long long counts[32], inf, count;
    size_t n = bucket_counts(text, task, counts, 32, &inf, &count);
    assert_int_equal(n, WORKER_STATS_BUCKETS);
    assert_int_equal(counts[0], 1);  /* le 0.05 */
    assert_int_equal(counts[4], 2);  /* le 1 */
    assert_int_equal(counts[9], 3);  /* le 60 */
    assert_int_equal(counts[12], 3); /* le 3600 */
    assert_int_equal(inf, 4);
    assert_int_equal(count, 4);
    assert_true(has_line(text,
                         "cworker_task_duration_seconds_sum{task=\"app.worker.tasks.parse_run\"} "
                         "5042.72"));
    assert_true(has_line(text,
                         "cworker_task_duration_seconds_bucket{task=\"app.worker.tasks.parse_run\""
                         ",le=\"10\"} 2"));
    assert_true(has_line(text, "cworker_executors 3"));
    assert_true(has_line(text, "cworker_dead_lettered_total 2"));
    assert_null(strstr(text, "\ncworker_retries_waiting "));
    free(text);
    json_object_put(wire);
    json_object_put(snap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_text),
        cmocka_unit_test(test_no_snapshot),
        cmocka_unit_test(test_retries_waiting_unknown),
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_label_escaping_in_samples),
        cmocka_unit_test(test_format_double),
        cmocka_unit_test(test_histogram_consistency),
        cmocka_unit_test(test_every_sample_parses),
        cmocka_unit_test(test_worker_stats_snapshot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
