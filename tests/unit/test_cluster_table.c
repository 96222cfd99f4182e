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

/* Bounded: the longest-silent lost worker makes room, the long-forgotten ones go. */
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

/* A flood of new host names never pushes out a worker that is still online; it takes the
 * place of an offline or lost one, or is dropped (and counted). */
static void test_full_table_keeps_online_workers(void **state)
{
    (void)state;
    struct cluster_table t = {0};
    char name[32];
    apply(&t, event("worker-heartbeat", "real@h", 0, 0), 100);
    apply(&t, event("worker-offline", "gone@h", 0, 0), 100);
    for (int i = 0; i < 10 * CLUSTER_TABLE_MAX; i++) {
        snprintf(name, sizeof name, "fake%05d@h", i);
        apply(&t, event("worker-heartbeat", name, 0, 0), 101);
    }
    assert_int_equal(t.n, CLUSTER_TABLE_MAX);
    /* gone@h made room for one; the rest were dropped */
    assert_int_equal(t.dropped, 10 * CLUSTER_TABLE_MAX - (CLUSTER_TABLE_MAX - 2) - 1);
    json_object *w = cluster_table_json(&t, 101);
    bool real = false, gone = false;
    for (size_t i = 0; i < json_object_array_length(w); i++) {
        real = real || strcmp(field(w, i, "hostname"), "real@h") == 0;
        gone = gone || strcmp(field(w, i, "hostname"), "gone@h") == 0;
    }
    assert_true(real);
    assert_false(gone);
    json_object_put(w);
    /* once the fakes are lost (2 x freq), newcomers take their places again */
    assert_int_equal(apply(&t, event("worker-heartbeat", "late@h", 0, 0), 106), 1);
    cluster_table_free(&t);
}

/* The JSON written must be strict JSON: json-c reads NaN, Infinity and 1e999 and would
 * write them back bare. */
static void test_numbers_that_are_not_finite_or_do_not_fit_are_absent(void **state)
{
    (void)state;
    static const char *const values[] = {
        "NaN",    "Infinity", "-Infinity", "1e999",
        "-1e999", "1e300",    "-5",        "99999999999999999999999"};
    struct cluster_table t = {0};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char text[512], host[16];
        snprintf(host, sizeof host, "n%zu@h", i);
        const char *v = values[i];
        snprintf(text, sizeof text,
                 "{\"type\": \"worker-heartbeat\", \"hostname\": \"%s\", \"freq\": %s, "
                 "\"active\": %s, \"processed\": %s, \"concurrency\": %s, \"pid\": %s, "
                 "\"loadavg\": [%s, %s, \"x\"], \"timestamp\": %s}",
                 host, v, v, v, v, v, v, v, v);
        json_object *e = json_tokener_parse(text);
        assert_non_null(e);
        assert_int_equal(apply(&t, e, 1), 1);
    }
    json_object *w = cluster_table_json(&t, 1);
    const char *text = json_object_to_json_string_ext(w, JSON_C_TO_STRING_PLAIN);
    assert_null(strstr(text, "NaN"));
    assert_null(strstr(text, "Infinity"));
    for (size_t i = 0; i < json_object_array_length(w); i++) {
        json_object *x = json_object_array_get_idx(w, i);
        assert_true(json_object_get_double(json_object_object_get(x, "freq")) == 2.0);
        assert_int_equal(json_object_get_int(json_object_object_get(x, "active")), 0);
        assert_int_equal(json_object_get_int64(json_object_object_get(x, "processed")), 0);
        assert_null(json_object_object_get(x, "concurrency"));
        assert_null(json_object_object_get(x, "pid"));
    }
    json_object_put(w);
    cluster_table_free(&t);
}

static json_object *named(const char *hostname, const char *sw_ver)
{
    json_object *e = json_object_new_object();
    json_object_object_add(e, "type", json_object_new_string("worker-heartbeat"));
    json_object_object_add(e, "hostname",
                           json_object_new_string_len(hostname, (int)strlen(hostname)));
    json_object_object_add(e, "sw_ver", json_object_new_string(sw_ver));
    return e;
}

/* Text from the broker is any bytes: what is kept must print as valid UTF-8. */
static void test_text_that_is_not_utf8_is_not_kept(void **state)
{
    (void)state;
    struct cluster_table t = {0};
    assert_int_equal(apply(&t, named("bad\xff@h", "1"), 1), 0);
    assert_int_equal(apply(&t, named("sur\xed\xa0\x80@h", "1"), 1), 0);
    json_object *nul = json_object_new_object();
    json_object_object_add(nul, "type", json_object_new_string("worker-heartbeat"));
    json_object_object_add(nul, "hostname", json_object_new_string_len("a@h\0b", 5));
    assert_int_equal(apply(&t, nul, 1), 0); /* would be taken for "a@h" */
    /* 29 bytes and two 2-byte characters: the 31 bytes of text cut before the second */
    assert_int_equal(apply(&t, named("ok@h", "vvvvvvvvvvvvvvvvvvvvvvvvvvvvv\xc3\xa9\xc3\xa9"), 1),
                     1);
    assert_int_equal(apply(&t, named("ok2@h", "\xc3("), 1), 1);
    json_object *w = cluster_table_json(&t, 1);
    assert_int_equal(json_object_array_length(w), 2);
    /* sorted: "ok2@h" < "ok@h" */
    assert_null(json_object_object_get(json_object_array_get_idx(w, 0), "sw_ver"));
    assert_string_equal(field(w, 1, "sw_ver"), "vvvvvvvvvvvvvvvvvvvvvvvvvvvvv\xc3\xa9");
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
        cmocka_unit_test(test_full_table_keeps_online_workers),
        cmocka_unit_test(test_numbers_that_are_not_finite_or_do_not_fit_are_absent),
        cmocka_unit_test(test_text_that_is_not_utf8_is_not_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
