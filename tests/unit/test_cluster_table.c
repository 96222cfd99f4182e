/* Unit tests for cluster_table: the workers seen on the broker from their worker-* events. */
#include "ops/cluster_table.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

/* A worker-* event as Celery 5.2 sends it (plus cworker's concurrency when > 0). */
static json_object *event(const char *type, const char *hostname, int active, int concurrency)
{
    char text[512];
    snprintf(text, sizeof text,
             "{\"hostname\": \"%s\", \"utcoffset\": 0, \"pid\": 6780, \"clock\": 3, "
             "\"freq\": 2.0, \"active\": %d, \"processed\": 4, \"loadavg\": [0.5, 0.25, 0.1], "
             "\"sw_ident\": \"py-celery\", \"sw_ver\": \"5.2.6\", \"sw_sys\": \"Linux\", "
             "\"timestamp\": 1795559591.5, \"type\": \"%s\"%s}",
             hostname, active, type, concurrency > 0 ? ", \"concurrency\": 8" : "");
    (void)concurrency;
    json_object *o = json_tokener_parse(text);
    assert_non_null(o);
    return o;
}

static int apply(struct cluster_table *t, json_object *e, double now)
{
    int rc = cluster_table_event(t, e, now);
    json_object_put(e);
    return rc;
}

static const char *field(json_object *workers, size_t i, const char *key)
{
    return json_object_get_string(
        json_object_object_get(json_object_array_get_idx(workers, i), key));
}

static void test_heartbeats_make_workers_online_sorted(void **state)
{
    (void)state;
    struct cluster_table t = {0};
    assert_int_equal(apply(&t, event("worker-heartbeat", "w2@h", 1, 8), 100), 1);
    assert_int_equal(apply(&t, event("worker-online", "celery@py", 0, 0), 100.5), 1);
    assert_int_equal(apply(&t, event("worker-heartbeat", "w2@h", 2, 8), 101), 1);
    json_object *w = cluster_table_json(&t, 101.5);
    assert_int_equal(json_object_array_length(w), 2);
    assert_string_equal(field(w, 0, "hostname"), "celery@py");
    assert_string_equal(field(w, 1, "hostname"), "w2@h");
    assert_string_equal(field(w, 1, "state"), "online");
    json_object *w2 = json_object_array_get_idx(w, 1);
    assert_int_equal(json_object_get_int(json_object_object_get(w2, "active")), 2);
    assert_int_equal(json_object_get_int(json_object_object_get(w2, "concurrency")), 8);
    assert_int_equal(json_object_get_int(json_object_object_get(w2, "processed")), 4);
    assert_true(json_object_get_double(json_object_object_get(w2, "seconds_since_event")) == 0.5);
    /* a Python worker says nothing of its concurrency: null, not 0 */
    json_object *py = json_object_array_get_idx(w, 0);
    assert_true(json_object_object_get_ex(py, "concurrency", NULL));
    assert_null(json_object_object_get(py, "concurrency"));
    assert_string_equal(field(w, 0, "sw_ident"), "py-celery");
    json_object_put(w);
    cluster_table_free(&t);
}

/* Like celery.events.state: alive while the last event is at most 2 x freq old. */
static void test_silence_past_twice_freq_is_lost(void **state)
{
    (void)state;
    struct cluster_table t = {0};
    apply(&t, event("worker-heartbeat", "a@h", 0, 0), 10);
    json_object *w = cluster_table_json(&t, 14.0);
    assert_string_equal(field(w, 0, "state"), "online");
    json_object_put(w);
    w = cluster_table_json(&t, 14.1);
    assert_string_equal(field(w, 0, "state"), "lost");
    json_object_put(w);
    /* a heartbeat brings it back */
    apply(&t, event("worker-heartbeat", "a@h", 0, 0), 20);
    w = cluster_table_json(&t, 20);
    assert_string_equal(field(w, 0, "state"), "online");
    json_object_put(w);
    cluster_table_free(&t);
}

static void test_worker_offline_is_offline_at_once(void **state)
{
    (void)state;
    struct cluster_table t = {0};
    apply(&t, event("worker-heartbeat", "a@h", 3, 4), 10);
    apply(&t, event("worker-offline", "a@h", 3, 4), 11);
    json_object *w = cluster_table_json(&t, 11);
    assert_string_equal(field(w, 0, "state"), "offline");
    assert_int_equal(
        json_object_get_int(json_object_object_get(json_object_array_get_idx(w, 0), "active")), 0);
    json_object_put(w);
    cluster_table_free(&t);
}

static void test_other_messages_are_ignored(void **state)
{
    (void)state;
    struct cluster_table t = {0};
    assert_int_equal(apply(&t, event("task-started", "a@h", 0, 0), 1), 0);
    assert_int_equal(apply(&t, json_tokener_parse("{\"type\": \"worker-heartbeat\"}"), 1), 0);
    assert_int_equal(apply(&t, json_tokener_parse("{\"type\": 3, \"hostname\": \"x\"}"), 1), 0);
    assert_int_equal(apply(&t, json_tokener_parse("[1, 2]"), 1), 0);
    /* odd field types are skipped, not trusted */
    assert_int_equal(apply(&t,
                           json_tokener_parse("{\"type\": \"worker-heartbeat\", "
                                              "\"hostname\": \"b@h\", \"active\": \"x\", "
                                              "\"freq\": -1, \"loadavg\": 7}"),
                           1),
                     1);
    json_object *w = cluster_table_json(&t, 1);
    assert_int_equal(json_object_array_length(w), 1);
    json_object *b = json_object_array_get_idx(w, 0);
    assert_int_equal(json_object_get_int(json_object_object_get(b, "active")), 0);
    assert_true(json_object_get_double(json_object_object_get(b, "freq")) == 2.0);
    json_object_put(w);
    cluster_table_free(&t);
}

/* Bounded: the longest-silent worker makes room, the long-forgotten ones go. */
static void test_table_is_bounded(void **state)
{
    (void)state;
    struct cluster_table t = {0};
    char name[32];
    for (int i = 0; i < CLUSTER_TABLE_MAX + 5; i++) {
        snprintf(name, sizeof name, "w%04d@h", i);
        apply(&t, event("worker-heartbeat", name, 0, 0), 100 + i);
    }
    assert_int_equal(t.n, CLUSTER_TABLE_MAX);
    json_object *w = cluster_table_json(&t, 100 + CLUSTER_TABLE_MAX + 5);
    assert_string_equal(field(w, 0, "hostname"), "w0005@h"); /* 0..4 made room */
    json_object_put(w);
    w = cluster_table_json(&t, 100 + CLUSTER_TABLE_MAX + 5 + CLUSTER_TABLE_FORGET_S);
    assert_true(json_object_array_length(w) < CLUSTER_TABLE_MAX);
    json_object_put(w);
    cluster_table_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heartbeats_make_workers_online_sorted),
        cmocka_unit_test(test_silence_past_twice_freq_is_lost),
        cmocka_unit_test(test_worker_offline_is_offline_at_once),
        cmocka_unit_test(test_other_messages_are_ignored),
        cmocka_unit_test(test_table_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
