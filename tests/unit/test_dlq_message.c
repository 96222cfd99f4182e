/* Unit tests for dlq_message: describing what dead_letter_properties produced, and
 * undoing it for a replay. */
#include "ops/dlq_message.h"

#include "mq/json.h"
#include "mq/dead_letter.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#define PARSE_RUN "app.worker.tasks.parse_run"
#define NOW       1795554000.0 /* 2026-11-24T21:00:00Z */

static amqp_table_entry_t entry(const char *key, const char *value)
{
    amqp_table_entry_t e;

    e.key = amqp_cstring_bytes(key);
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = amqp_cstring_bytes(value);
    return e;
}

static amqp_basic_properties_t props(const char *content_type, amqp_table_entry_t *h, int n)
{
    amqp_basic_properties_t p;

    memset(&p, 0, sizeof(p));
    p._flags = AMQP_BASIC_CORRELATION_ID_FLAG | AMQP_BASIC_EXPIRATION_FLAG;
    p.correlation_id = amqp_cstring_bytes("tid-1");
    p.expiration = amqp_cstring_bytes("60000");
    if (content_type != NULL) {
        p._flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
        p.content_type = amqp_cstring_bytes(content_type);
    }
    if (n > 0) {
        p._flags |= AMQP_BASIC_HEADERS_FLAG;
        p.headers.num_entries = n;
        p.headers.entries = h;
    }
    return p;
}

static const char *get(json_object *o, const char *key)
{
    json_object *v;

    assert_true(json_object_object_get_ex(o, key, &v));
    return v ? json_object_get_string(v) : NULL;
}

static void test_describe_and_restore_a_parse_run(void **state)
{
    amqp_table_entry_t h[] = {entry("lang", "py"), entry("task", PARSE_RUN), entry("id", "tid-1"),
                              entry("x-trace", "t")};
    amqp_basic_properties_t orig = props("application/json", h, 4), dl, back;
    amqp_bytes_t body = amqp_cstring_bytes("[[42], {}, null]");
    amqp_pool_t pool;
    json_object *d;

    (void)state;
    init_amqp_pool(&pool, 1024);
    dead_letter_properties(&orig, "unknown task x", "celery", NOW, &pool, &dl);
    d = dlq_message_describe(&dl, body, 3, PARSE_RUN);
    assert_string_equal(
        json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
        "{\"position\":3,\"task_id\":\"tid-1\",\"task\":\"" PARSE_RUN "\","
        "\"reason\":\"unknown task x\",\"original_queue\":\"celery\","
        "\"dead_lettered_at\":\"2026-11-24T21:00:00.000000+00:00\","
        "\"content_type\":\"application/json\",\"body_bytes\":16,"
        "\"run_id\":42}");
    json_object_put(d);
    /* another task name: no run id */
    d = dlq_message_describe(&dl, body, 1, "other.task");
    assert_null(get(d, "run_id"));
    json_object_put(d);

    dead_letter_restore_properties(&dl, &pool, &back);
    assert_true(back._flags & AMQP_BASIC_HEADERS_FLAG);
    assert_int_equal(back.headers.num_entries, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(back.headers.entries[i].key.len, h[i].key.len);
        assert_memory_equal(back.headers.entries[i].key.bytes, h[i].key.bytes, h[i].key.len);
        /* The kind and the string it carries (comparing the whole union would read the
         * padding the entries never set). */
        assert_int_equal(back.headers.entries[i].value.kind, h[i].value.kind);
        assert_int_equal(back.headers.entries[i].value.value.bytes.len, h[i].value.value.bytes.len);
        assert_memory_equal(back.headers.entries[i].value.value.bytes.bytes,
                            h[i].value.value.bytes.bytes, h[i].value.value.bytes.len);
    }
    assert_memory_equal(back.correlation_id.bytes, "tid-1", 5);
    empty_amqp_pool(&pool);
}

static void test_pickle_is_never_decoded(void **state)
{
    amqp_table_entry_t h[] = {entry("task", PARSE_RUN), entry("id", "tid-p"),
                              entry("x-cworker-reason", "unsupported content type")};
    amqp_basic_properties_t p = props("application/x-python-serialize", h, 3);
    /* a pickle that would "decode" as JSON if anyone looked at it */
    amqp_bytes_t body = amqp_cstring_bytes("{\"id\": \"from-body\", \"task\": \"t\"}");
    json_object *d;

    (void)state;
    d = dlq_message_describe(&p, body, 1, PARSE_RUN);
    assert_string_equal(get(d, "task_id"), "tid-p");
    assert_string_equal(get(d, "content_type"), "application/x-python-serialize");
    assert_null(get(d, "run_id"));
    assert_null(get(d, "original_queue"));
    json_object_put(d);
}

static void test_protocol1_ids_from_the_body(void **state)
{
    amqp_table_entry_t h[] = {entry("x-cworker-reason", "bad retries")};
    amqp_basic_properties_t p = props(NULL, h, 1), back;
    amqp_bytes_t body =
        amqp_cstring_bytes("{\"task\": \"" PARSE_RUN "\", \"id\": \"v1\", \"retries\": \"x\"}");
    amqp_pool_t pool;
    json_object *d;

    (void)state;
    d = dlq_message_describe(&p, body, 1, PARSE_RUN);
    assert_string_equal(get(d, "task_id"), "v1");
    assert_string_equal(get(d, "task"), PARSE_RUN);
    assert_null(get(d, "content_type"));
    assert_null(get(d, "run_id"));
    json_object_put(d);
    /* only dead-letter headers: the restored message has no headers at all */
    init_amqp_pool(&pool, 256);
    dead_letter_restore_properties(&p, &pool, &back);
    assert_false(back._flags & AMQP_BASIC_HEADERS_FLAG);
    assert_int_equal(back.headers.num_entries, 0);
    empty_amqp_pool(&pool);
}

static void test_hostile_bytes_stay_json(void **state)
{
    amqp_table_entry_t h[] = {entry("id", "x"), entry("x-cworker-reason", "r")};
    amqp_basic_properties_t p = props("application/json", h, 2);
    amqp_bytes_t bad = {5, "a\xff\0b\xc3"};
    amqp_bytes_t body = amqp_cstring_bytes("[[1], {}, {}");
    json_object *d, *back;

    (void)state;
    h[1].value.value.bytes = bad; /* not UTF-8, with a NUL */
    d = dlq_message_describe(&p, body, 1, PARSE_RUN);
    assert_string_equal(get(d, "reason"), "a??b?");
    assert_string_equal(get(d, "task_id"), "x"); /* from the header: the body is broken */
    back = json_tokener_parse(json_object_to_json_string(d));
    assert_non_null(back);
    json_object_put(back);
    json_object_put(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_describe_and_restore_a_parse_run),
        cmocka_unit_test(test_pickle_is_never_decoded),
        cmocka_unit_test(test_protocol1_ids_from_the_body),
        cmocka_unit_test(test_hostile_bytes_stay_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
