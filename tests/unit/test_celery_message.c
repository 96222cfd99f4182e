/* Unit tests for the Celery message codec (celery_message, celery_time, amqp_json, kombu_json). */
#include "celery/message.h"
#include "celery/args.h"
#include "celery/retry.h"
#include "celery/time.h"

#include "mq/json.h"
#include "celery/kombu_json.h"

#include <amqp_framing.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Real messages: Celery 5.2.6 `app.amqp.as_task_v2(...)` headers/body, body through
 * kombu's json dumps, properties serialized by py-amqp 5 (`amqp.Message(body,
 * content_type='application/json', content_encoding='utf-8', application_headers=headers,
 * delivery_mode=2, priority=0, correlation_id=id, reply_to=oid[, expiration='60000'])
 * ._serialize_properties()`), i.e. the exact bytes of the content header frame's property
 * list, decoded below with rabbitmq-c's own amqp_decode_properties. */
#include "fixtures/celery_capture.h"

/* real_keyword: {'lang': 'py', 'task': 'app.worker.tasks.parse_run', 'id':
 * '0b6e2f41-9c3d-4e8a-b7f5-1d2c3e4f5a6b', 'shadow': 'parse 42', 'eta':
 * '2026-11-24T21:00:00.123456+00:00', 'expires': '2026-11-25T02:30:00+05:30', 'group': 'g-1',
 * 'group_index': 3, 'retries': 0, 'timelimit': [3600, 3300.5], 'root_id': 'r-1', 'parent_id':
 * 'p-1', 'argsrepr': '()', 'kwargsrepr': "{'run_id': 42}", 'origin': 'gen7629@host',
 * 'ignore_result': False} */
static const unsigned char real_keyword_props[] = {
    0xff, 0x00, 0x10, 0x61, 0x70, 0x70, 0x6c, 0x69, 0x63, 0x61, 0x74, 0x69, 0x6f, 0x6e, 0x2f, 0x6a,
    0x73, 0x6f, 0x6e, 0x05, 0x75, 0x74, 0x66, 0x2d, 0x38, 0x00, 0x00, 0x01, 0x80, 0x04, 0x6c, 0x61,
    0x6e, 0x67, 0x53, 0x00, 0x00, 0x00, 0x02, 0x70, 0x79, 0x04, 0x74, 0x61, 0x73, 0x6b, 0x53, 0x00,
    0x00, 0x00, 0x1a, 0x61, 0x70, 0x70, 0x2e, 0x77, 0x6f, 0x72, 0x6b, 0x65, 0x72, 0x2e, 0x74, 0x61,
    0x73, 0x6b, 0x73, 0x2e, 0x70, 0x61, 0x72, 0x73, 0x65, 0x5f, 0x72, 0x75, 0x6e, 0x02, 0x69, 0x64,
    0x53, 0x00, 0x00, 0x00, 0x24, 0x30, 0x62, 0x36, 0x65, 0x32, 0x66, 0x34, 0x31, 0x2d, 0x39, 0x63,
    0x33, 0x64, 0x2d, 0x34, 0x65, 0x38, 0x61, 0x2d, 0x62, 0x37, 0x66, 0x35, 0x2d, 0x31, 0x64, 0x32,
    0x63, 0x33, 0x65, 0x34, 0x66, 0x35, 0x61, 0x36, 0x62, 0x06, 0x73, 0x68, 0x61, 0x64, 0x6f, 0x77,
    0x53, 0x00, 0x00, 0x00, 0x08, 0x70, 0x61, 0x72, 0x73, 0x65, 0x20, 0x34, 0x32, 0x03, 0x65, 0x74,
    0x61, 0x53, 0x00, 0x00, 0x00, 0x20, 0x32, 0x30, 0x32, 0x36, 0x2d, 0x31, 0x31, 0x2d, 0x32, 0x34,
    0x54, 0x32, 0x31, 0x3a, 0x30, 0x30, 0x3a, 0x30, 0x30, 0x2e, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36,
    0x2b, 0x30, 0x30, 0x3a, 0x30, 0x30, 0x07, 0x65, 0x78, 0x70, 0x69, 0x72, 0x65, 0x73, 0x53, 0x00,
    0x00, 0x00, 0x19, 0x32, 0x30, 0x32, 0x36, 0x2d, 0x31, 0x31, 0x2d, 0x32, 0x35, 0x54, 0x30, 0x32,
    0x3a, 0x33, 0x30, 0x3a, 0x30, 0x30, 0x2b, 0x30, 0x35, 0x3a, 0x33, 0x30, 0x05, 0x67, 0x72, 0x6f,
    0x75, 0x70, 0x53, 0x00, 0x00, 0x00, 0x03, 0x67, 0x2d, 0x31, 0x0b, 0x67, 0x72, 0x6f, 0x75, 0x70,
    0x5f, 0x69, 0x6e, 0x64, 0x65, 0x78, 0x49, 0x00, 0x00, 0x00, 0x03, 0x07, 0x72, 0x65, 0x74, 0x72,
    0x69, 0x65, 0x73, 0x49, 0x00, 0x00, 0x00, 0x00, 0x09, 0x74, 0x69, 0x6d, 0x65, 0x6c, 0x69, 0x6d,
    0x69, 0x74, 0x41, 0x00, 0x00, 0x00, 0x0e, 0x49, 0x00, 0x00, 0x0e, 0x10, 0x64, 0x40, 0xa9, 0xc9,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x72, 0x6f, 0x6f, 0x74, 0x5f, 0x69, 0x64, 0x53, 0x00, 0x00,
    0x00, 0x03, 0x72, 0x2d, 0x31, 0x09, 0x70, 0x61, 0x72, 0x65, 0x6e, 0x74, 0x5f, 0x69, 0x64, 0x53,
    0x00, 0x00, 0x00, 0x03, 0x70, 0x2d, 0x31, 0x08, 0x61, 0x72, 0x67, 0x73, 0x72, 0x65, 0x70, 0x72,
    0x53, 0x00, 0x00, 0x00, 0x02, 0x28, 0x29, 0x0a, 0x6b, 0x77, 0x61, 0x72, 0x67, 0x73, 0x72, 0x65,
    0x70, 0x72, 0x53, 0x00, 0x00, 0x00, 0x0e, 0x7b, 0x27, 0x72, 0x75, 0x6e, 0x5f, 0x69, 0x64, 0x27,
    0x3a, 0x20, 0x34, 0x32, 0x7d, 0x06, 0x6f, 0x72, 0x69, 0x67, 0x69, 0x6e, 0x53, 0x00, 0x00, 0x00,
    0x0c, 0x67, 0x65, 0x6e, 0x37, 0x36, 0x32, 0x39, 0x40, 0x68, 0x6f, 0x73, 0x74, 0x0d, 0x69, 0x67,
    0x6e, 0x6f, 0x72, 0x65, 0x5f, 0x72, 0x65, 0x73, 0x75, 0x6c, 0x74, 0x74, 0x00, 0x02, 0x00, 0x24,
    0x30, 0x62, 0x36, 0x65, 0x32, 0x66, 0x34, 0x31, 0x2d, 0x39, 0x63, 0x33, 0x64, 0x2d, 0x34, 0x65,
    0x38, 0x61, 0x2d, 0x62, 0x37, 0x66, 0x35, 0x2d, 0x31, 0x64, 0x32, 0x63, 0x33, 0x65, 0x34, 0x66,
    0x35, 0x61, 0x36, 0x62, 0x24, 0x31, 0x66, 0x33, 0x61, 0x39, 0x63, 0x32, 0x65, 0x2d, 0x30, 0x64,
    0x34, 0x62, 0x2d, 0x33, 0x62, 0x36, 0x65, 0x2d, 0x39, 0x62, 0x38, 0x61, 0x2d, 0x37, 0x66, 0x35,
    0x65, 0x34, 0x64, 0x33, 0x63, 0x32, 0x62, 0x31, 0x61, 0x05, 0x36, 0x30, 0x30, 0x30, 0x30,
};
static const char real_keyword_body[] = "[[], {\"run_id\": 42}, {\"callbacks\": null, "
                                        "\"errbacks\": null, \"chain\": null, \"chord\": null}]";

/* 2026-11-24T21:00:00Z */
#define EPOCH_2026_11_24_21 1795554000.0

/* ---- helpers ---------------------------------------------------------------------- */

struct real_msg {
    amqp_pool_t pool;
    amqp_basic_properties_t *props;
};

static void real_props(struct real_msg *m, const unsigned char *raw, size_t len)
{
    amqp_bytes_t enc = {len, (void *)raw};
    void *decoded = NULL;

    init_amqp_pool(&m->pool, 4096);
    assert_int_equal(amqp_decode_properties(AMQP_BASIC_CLASS, &m->pool, enc, &decoded), 0);
    m->props = decoded;
}

/* A small table builder over static storage: enough for every test here. */
#define MAX_ENTRIES 32
struct table {
    amqp_table_entry_t e[MAX_ENTRIES];
    int n;
};

static amqp_field_value_t *add(struct table *t, const char *key, uint8_t kind)
{
    assert_true(t->n < MAX_ENTRIES);
    t->e[t->n].key = amqp_cstring_bytes(key);
    t->e[t->n].value.kind = kind;
    return &t->e[t->n++].value;
}

static void add_str(struct table *t, const char *key, const char *val)
{
    add(t, key, AMQP_FIELD_KIND_UTF8)->value.bytes = amqp_cstring_bytes(val);
}

static void add_void(struct table *t, const char *key)
{
    add(t, key, AMQP_FIELD_KIND_VOID);
}

static amqp_table_t as_table(struct table *t)
{
    amqp_table_t r = {t->n, t->e};
    return r;
}

/* The minimal protocol 2 headers: task and id. */
static void base_headers(struct table *t)
{
    memset(t, 0, sizeof(*t));
    add_str(t, "lang", "py");
    add_str(t, "task", "app.worker.tasks.parse_run");
    add_str(t, "id", "tid-1");
}

static amqp_basic_properties_t json_props(struct table *headers)
{
    amqp_basic_properties_t p;

    memset(&p, 0, sizeof(p));
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG;
    p.content_type = amqp_cstring_bytes("application/json");
    p.content_encoding = amqp_cstring_bytes("utf-8");
    if (headers != NULL) {
        p._flags |= AMQP_BASIC_HEADERS_FLAG;
        p.headers = as_table(headers);
    }
    return p;
}

static const char *v2_body =
    "[[42], {}, {\"callbacks\": null, \"errbacks\": null, \"chain\": null, "
    "\"chord\": null}]";

/* Decodes and expects failure with exactly `reason` as the one-line message. */
static void expect_fail(const amqp_basic_properties_t *p, const char *body, size_t len,
                        const char *reason)
{
    struct celery_task t;
    struct cw_error err;

    cw_error_clear(&err);
    if (celery_message_decode(p, body, len, &t, &err) != -1)
        fail_msg("decoded, expected \"%s\"", reason);
    assert_int_equal(err.cls, CW_ERR_PERMANENT);
    assert_string_equal(err.message, reason);
    celery_task_free(&t);
}

/* expect_fail for a NUL-terminated body. */
static void expect_fail_s(const amqp_basic_properties_t *p, const char *body, const char *reason)
{
    expect_fail(p, body, strlen(body), reason);
}

static void expect_fail_prefix(const amqp_basic_properties_t *p, const char *body,
                               const char *prefix)
{
    struct celery_task t;
    struct cw_error err;

    cw_error_clear(&err);
    assert_int_equal(celery_message_decode(p, body, strlen(body), &t, &err), -1);
    assert_int_equal(err.cls, CW_ERR_PERMANENT);
    if (strncmp(err.message, prefix, strlen(prefix)) != 0)
        fail_msg("message \"%s\" does not start with \"%s\"", err.message, prefix);
    celery_task_free(&t);
}

static void decode_ok(const amqp_basic_properties_t *p, const char *body, struct celery_task *t)
{
    struct cw_error err;

    cw_error_clear(&err);
    if (celery_message_decode(p, body, strlen(body), t, &err) != 0)
        fail_msg("decode failed: %s", err.message);
}

static long int_arg_ok(const struct celery_task *t, size_t pos, const char *kw)
{
    struct cw_error err;
    long v = -1;

    cw_error_clear(&err);
    if (celery_task_int_arg(t, pos, kw, &v, &err) != 0)
        fail_msg("int_arg failed: %s", err.message);
    return v;
}

static void int_arg_fails(const struct celery_task *t, const char *reason)
{
    struct cw_error err;
    long v = -1;

    cw_error_clear(&err);
    assert_int_equal(celery_task_int_arg(t, 0, "run_id", &v, &err), -1);
    assert_int_equal(err.cls, CW_ERR_PERMANENT);
    assert_string_equal(err.message, reason);
}

/* ---- real Celery messages --------------------------------------------------------- */

static void test_real_positional(void **state)
{
    struct real_msg m;
    struct celery_task t;

    (void)state;
    real_props(&m, real_positional_props, sizeof(real_positional_props));
    decode_ok(m.props, real_positional_body, &t);
    assert_int_equal(t.protocol, 2);
    assert_string_equal(t.id, "a3c9d0e2-5b7f-4c1a-8e6d-2f4b9a7c1e30");
    assert_string_equal(t.task, "app.worker.tasks.parse_run");
    assert_int_equal(t.retries, 0);
    assert_string_equal(t.root_id, "a3c9d0e2-5b7f-4c1a-8e6d-2f4b9a7c1e30");
    assert_null(t.parent_id);
    assert_null(t.group);
    assert_null(t.shadow);
    assert_string_equal(t.origin, "gen7629@host");
    assert_string_equal(t.argsrepr, "[42]");
    assert_string_equal(t.kwargsrepr, "{}");
    assert_false(t.has_eta);
    assert_false(t.has_expires);
    assert_false(t.has_time_limit);
    assert_false(t.has_soft_time_limit);
    assert_false(t.has_group_index);
    assert_false(t.ignore_result);
    assert_string_equal(t.content_type, "application/json");
    assert_string_equal(t.correlation_id, "a3c9d0e2-5b7f-4c1a-8e6d-2f4b9a7c1e30");
    assert_string_equal(t.reply_to, "1f3a9c2e-0d4b-3b6e-9b8a-7f5e4d3c2b1a");
    assert_int_equal(json_object_array_length(t.args), 1);
    assert_int_equal(json_object_object_length(t.kwargs), 0);
    assert_non_null(t.embed);
    assert_true(json_object_object_get_ex(t.embed, "callbacks", NULL));
    assert_int_equal(int_arg_ok(&t, 0, "run_id"), 42);
    celery_task_free(&t);
    empty_amqp_pool(&m.pool);
}

static void test_real_keyword(void **state)
{
    struct real_msg m;
    struct celery_task t;

    (void)state;
    real_props(&m, real_keyword_props, sizeof(real_keyword_props));
    decode_ok(m.props, real_keyword_body, &t);
    assert_int_equal(t.protocol, 2);
    assert_string_equal(t.id, "0b6e2f41-9c3d-4e8a-b7f5-1d2c3e4f5a6b");
    assert_string_equal(t.shadow, "parse 42");
    assert_string_equal(t.group, "g-1");
    assert_true(t.has_group_index);
    assert_int_equal(t.group_index, 3);
    assert_string_equal(t.root_id, "r-1");
    assert_string_equal(t.parent_id, "p-1");
    assert_true(t.has_eta);
    assert_true(fabs(t.eta - (EPOCH_2026_11_24_21 + 0.123456)) < 1e-6);
    /* expires was 2026-11-25T02:30:00+05:30, the same instant as 21:00Z */
    assert_true(t.has_expires);
    assert_true(t.expires == EPOCH_2026_11_24_21);
    assert_true(t.has_time_limit);
    assert_true(t.time_limit == 3600.0);
    assert_true(t.has_soft_time_limit);
    assert_true(t.soft_time_limit == 3300.5);
    assert_int_equal(json_object_array_length(t.args), 0);
    assert_int_equal(int_arg_ok(&t, 0, "run_id"), 42);
    celery_task_free(&t);
    empty_amqp_pool(&m.pool);
}

/* ---- header types ----------------------------------------------------------------- */

static void test_header_kinds_to_json(void **state)
{
    struct table t, nested;
    amqp_field_value_t arr_items[3];
    amqp_field_value_t top;
    json_object *j = NULL, *v;
    struct cw_error err;
    static const uint8_t raw[] = {'h', 'i', 0xc3, 0xa9};

    (void)state;
    memset(&t, 0, sizeof(t));
    memset(&nested, 0, sizeof(nested));
    add(&t, "i8", AMQP_FIELD_KIND_I8)->value.i8 = -8;
    add(&t, "u8", AMQP_FIELD_KIND_U8)->value.u8 = 200;
    add(&t, "i16", AMQP_FIELD_KIND_I16)->value.i16 = -16000;
    add(&t, "u16", AMQP_FIELD_KIND_U16)->value.u16 = 65000;
    add(&t, "i32", AMQP_FIELD_KIND_I32)->value.i32 = -2000000000;
    add(&t, "u32", AMQP_FIELD_KIND_U32)->value.u32 = 4000000000u;
    add(&t, "i64", AMQP_FIELD_KIND_I64)->value.i64 = -9000000000000LL;
    /* py-amqp's 'L' is signed: rabbitmq-c calls it U64 */
    add(&t, "u64", AMQP_FIELD_KIND_U64)->value.u64 = (uint64_t)-5;
    add(&t, "f32", AMQP_FIELD_KIND_F32)->value.f32 = 1.5f;
    add(&t, "f64", AMQP_FIELD_KIND_F64)->value.f64 = 2.25;
    add(&t, "yes", AMQP_FIELD_KIND_BOOLEAN)->value.boolean = 1;
    add(&t, "no", AMQP_FIELD_KIND_BOOLEAN)->value.boolean = 0;
    add_void(&t, "none");
    add(&t, "bytes", AMQP_FIELD_KIND_BYTES)->value.bytes = (amqp_bytes_t){sizeof(raw), (void *)raw};
    add(&t, "ts", AMQP_FIELD_KIND_TIMESTAMP)->value.u64 = 1795554000;
    add(&t, "dec", AMQP_FIELD_KIND_DECIMAL)->value.decimal = (amqp_decimal_t){2, 12345};
    arr_items[0].kind = AMQP_FIELD_KIND_VOID;
    arr_items[1].kind = AMQP_FIELD_KIND_I32;
    arr_items[1].value.i32 = 7;
    arr_items[2].kind = AMQP_FIELD_KIND_UTF8;
    arr_items[2].value.bytes = amqp_cstring_bytes("x");
    add(&t, "arr", AMQP_FIELD_KIND_ARRAY)->value.array = (amqp_array_t){3, arr_items};
    add_str(&nested, "k", "v");
    add(&t, "tbl", AMQP_FIELD_KIND_TABLE)->value.table = as_table(&nested);
    add(&t, "i8", AMQP_FIELD_KIND_I8)->value.i8 = 99; /* duplicate: first wins */

    top.kind = AMQP_FIELD_KIND_TABLE;
    top.value.table = as_table(&t);
    cw_error_clear(&err);
    assert_int_equal(mq_json_from_field(&top, &j, &err), 0);
    assert_string_equal(
        json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN),
        "{\"i8\":-8,\"u8\":200,\"i16\":-16000,\"u16\":65000,\"i32\":-2000000000,"
        "\"u32\":4000000000,\"i64\":-9000000000000,\"u64\":-5,\"f32\":1.5,\"f64\":2.25,"
        "\"yes\":true,\"no\":false,\"none\":null,\"bytes\":\"hi\xc3\xa9\","
        "\"ts\":\"2026-11-24T21:00:00+00:00\",\"dec\":123.45,\"arr\":[null,7,\"x\"],"
        "\"tbl\":{\"k\":\"v\"}}");
    assert_true(json_object_object_get_ex(j, "i8", &v));
    assert_int_equal(json_object_get_int(v), -8);
    assert_ptr_equal(mq_json_table_get(&top.value.table, "i8"), &t.e[0].value);
    assert_null(mq_json_table_get(&top.value.table, "missing"));
    json_object_put(j);
}

static void test_header_invalid_utf8(void **state)
{
    static const uint8_t bad[] = {'a', 0xff, 'b'};
    struct table h;
    amqp_basic_properties_t p;

    (void)state;
    base_headers(&h);
    add(&h, "origin", AMQP_FIELD_KIND_BYTES)->value.bytes = (amqp_bytes_t){3, (void *)bad};
    p = json_props(&h);
    expect_fail(&p, v2_body, strlen(v2_body), "header origin: string is not valid UTF-8");
}

static void test_header_unknown_ignored(void **state)
{
    static const uint8_t bad[] = {0xff};
    struct table h;
    amqp_basic_properties_t p;
    struct celery_task t;

    (void)state;
    base_headers(&h);
    add(&h, "x-tool", AMQP_FIELD_KIND_BYTES)->value.bytes = (amqp_bytes_t){1, (void *)bad};
    add(&h, "stamped_headers", AMQP_FIELD_KIND_ARRAY)->value.array = (amqp_array_t){0, NULL};
    p = json_props(&h);
    decode_ok(&p, v2_body, &t);
    assert_string_equal(t.id, "tid-1");
    celery_task_free(&t);
}

static void test_header_nesting_limit(void **state)
{
    amqp_field_value_t levels[MQ_JSON_MAX_DEPTH + 2];
    json_object *j = NULL;
    struct cw_error err;

    (void)state;
    for (int i = 0; i < MQ_JSON_MAX_DEPTH + 2; i++) {
        levels[i].kind = AMQP_FIELD_KIND_ARRAY;
        levels[i].value.array.num_entries = (i + 1 < MQ_JSON_MAX_DEPTH + 2) ? 1 : 0;
        levels[i].value.array.entries = (i + 1 < MQ_JSON_MAX_DEPTH + 2) ? &levels[i + 1] : NULL;
    }
    cw_error_clear(&err);
    assert_int_equal(mq_json_from_field(&levels[0], &j, &err), -1);
    assert_null(j);
    assert_int_equal(err.cls, CW_ERR_PERMANENT);
    /* one level less is fine */
    assert_int_equal(mq_json_from_field(&levels[1], &j, &err), 0);
    json_object_put(j);
}

static void test_retries_header_types(void **state)
{
    struct table h;
    amqp_basic_properties_t p;
    struct celery_task t;

    (void)state;
    base_headers(&h);
    add(&h, "retries", AMQP_FIELD_KIND_I8)->value.i8 = 2;
    p = json_props(&h);
    decode_ok(&p, v2_body, &t);
    assert_int_equal(t.retries, 2);
    celery_task_free(&t);

    h.e[h.n - 1].value.kind = AMQP_FIELD_KIND_U64;
    h.e[h.n - 1].value.value.u64 = 5;
    decode_ok(&p, v2_body, &t);
    assert_int_equal(t.retries, 5);
    celery_task_free(&t);

    h.e[h.n - 1].value.kind = AMQP_FIELD_KIND_VOID;
    decode_ok(&p, v2_body, &t);
    assert_int_equal(t.retries, 0);
    celery_task_free(&t);

    h.e[h.n - 1].value.kind = AMQP_FIELD_KIND_I32;
    h.e[h.n - 1].value.value.i32 = -1;
    expect_fail(&p, v2_body, strlen(v2_body), "retries is not an integer in 0..2147483646");
    h.e[h.n - 1].value.kind = AMQP_FIELD_KIND_I64;
    h.e[h.n - 1].value.value.i64 = INT64_MAX;
    expect_fail(&p, v2_body, strlen(v2_body), "retries is not an integer in 0..2147483646");
    h.e[h.n - 1].value.kind = AMQP_FIELD_KIND_I32;
    h.e[h.n - 1].value.value.i32 = INT32_MAX;
    expect_fail(&p, v2_body, strlen(v2_body), "retries is not an integer in 0..2147483646");
    h.e[h.n - 1].value.kind = AMQP_FIELD_KIND_UTF8;
    h.e[h.n - 1].value.value.bytes = amqp_cstring_bytes("3");
    expect_fail(&p, v2_body, strlen(v2_body), "retries is not an integer in 0..2147483646");
    h.e[h.n - 1].value.kind = AMQP_FIELD_KIND_F64;
    h.e[h.n - 1].value.value.f64 = 1.0;
    expect_fail(&p, v2_body, strlen(v2_body), "retries is not an integer in 0..2147483646");
}

static void test_wrong_header_types(void **state)
{
    struct table h;
    amqp_basic_properties_t p;

    (void)state;
    base_headers(&h);
    add(&h, "root_id", AMQP_FIELD_KIND_I32)->value.i32 = 1;
    p = json_props(&h);
    expect_fail(&p, v2_body, strlen(v2_body), "root_id is not a string");

    base_headers(&h);
    add(&h, "ignore_result", AMQP_FIELD_KIND_UTF8)->value.bytes = amqp_cstring_bytes("no");
    expect_fail(&p, v2_body, strlen(v2_body), "ignore_result is not a boolean");

    base_headers(&h);
    add(&h, "eta", AMQP_FIELD_KIND_UTF8)->value.bytes = amqp_cstring_bytes("tomorrow");
    expect_fail(&p, v2_body, strlen(v2_body), "eta is not an ISO-8601 time: tomorrow");

    base_headers(&h);
    add(&h, "expires", AMQP_FIELD_KIND_I32)->value.i32 = 5;
    expect_fail(&p, v2_body, strlen(v2_body), "expires is not an ISO-8601 time: 5");

    base_headers(&h);
    add(&h, "group_index", AMQP_FIELD_KIND_UTF8)->value.bytes = amqp_cstring_bytes("1");
    expect_fail(&p, v2_body, strlen(v2_body), "group_index is not an integer");

    /* a NUL inside the id would silently shorten it */
    base_headers(&h);
    h.e[2].value.value.bytes = (amqp_bytes_t){5, "ab\0cd"};
    expect_fail(&p, v2_body, strlen(v2_body), "id contains a NUL character");

    base_headers(&h);
    h.e[2].value.kind = AMQP_FIELD_KIND_VOID;
    expect_fail(&p, v2_body, strlen(v2_body), "missing task id");

    base_headers(&h);
    h.e[2].value.value.bytes = amqp_cstring_bytes("");
    expect_fail(&p, v2_body, strlen(v2_body), "missing task id");

    base_headers(&h);
    h.e[1].value.kind = AMQP_FIELD_KIND_VOID;
    expect_fail(&p, v2_body, strlen(v2_body), "missing task name");

    base_headers(&h);
    h.e[1].value.kind = AMQP_FIELD_KIND_ARRAY;
    h.e[1].value.value.array = (amqp_array_t){0, NULL};
    expect_fail(&p, v2_body, strlen(v2_body), "task is not a string");
}

static void add_timelimit(struct table *h, amqp_field_value_t items[2])
{
    add(h, "timelimit", AMQP_FIELD_KIND_ARRAY)->value.array = (amqp_array_t){2, items};
}

static void test_timelimit_variants(void **state)
{
    struct table h;
    amqp_field_value_t items[3];
    amqp_basic_properties_t p;
    struct celery_task t;

    (void)state;
    /* [None, 20] : soft only */
    base_headers(&h);
    items[0].kind = AMQP_FIELD_KIND_VOID;
    items[2].kind = AMQP_FIELD_KIND_VOID;
    items[1].kind = AMQP_FIELD_KIND_I32;
    items[1].value.i32 = 20;
    add_timelimit(&h, items);
    p = json_props(&h);
    decode_ok(&p, v2_body, &t);
    assert_false(t.has_time_limit);
    assert_true(t.has_soft_time_limit);
    assert_true(t.soft_time_limit == 20.0);
    celery_task_free(&t);

    /* [30.5, None] : hard only, as a double */
    items[0].kind = AMQP_FIELD_KIND_F64;
    items[0].value.f64 = 30.5;
    items[1].kind = AMQP_FIELD_KIND_VOID;
    decode_ok(&p, v2_body, &t);
    assert_true(t.has_time_limit);
    assert_true(t.time_limit == 30.5);
    assert_false(t.has_soft_time_limit);
    celery_task_free(&t);

    /* None as a whole */
    h.e[h.n - 1].value.kind = AMQP_FIELD_KIND_VOID;
    decode_ok(&p, v2_body, &t);
    assert_false(t.has_time_limit);
    assert_false(t.has_soft_time_limit);
    celery_task_free(&t);

    /* wrong shapes */
    h.e[h.n - 1].value.kind = AMQP_FIELD_KIND_I32;
    expect_fail(&p, v2_body, strlen(v2_body), "timelimit is not [hard, soft] seconds or None");
    h.e[h.n - 1].value.kind = AMQP_FIELD_KIND_ARRAY;
    h.e[h.n - 1].value.value.array = (amqp_array_t){1, items};
    expect_fail(&p, v2_body, strlen(v2_body), "timelimit is not [hard, soft] seconds or None");
    h.e[h.n - 1].value.value.array = (amqp_array_t){3, items};
    expect_fail(&p, v2_body, strlen(v2_body), "timelimit is not [hard, soft] seconds or None");
    items[0].kind = AMQP_FIELD_KIND_I32;
    items[0].value.i32 = -1;
    h.e[h.n - 1].value.value.array = (amqp_array_t){2, items};
    expect_fail(&p, v2_body, strlen(v2_body), "timelimit is not [hard, soft] seconds or None");
    items[0].kind = AMQP_FIELD_KIND_UTF8;
    items[0].value.bytes = amqp_cstring_bytes("10");
    expect_fail(&p, v2_body, strlen(v2_body), "timelimit is not [hard, soft] seconds or None");
    items[0].kind = AMQP_FIELD_KIND_F64;
    items[0].value.f64 = NAN;
    expect_fail(&p, v2_body, strlen(v2_body), "timelimit is not [hard, soft] seconds or None");
}

/* ---- content types, encodings, bodies --------------------------------------------- */

static void test_rejected_content_types(void **state)
{
    static const char *const types[] = {"application/x-python-serialize",
                                        "application/x-yaml",
                                        "application/x-msgpack",
                                        "application/data",
                                        "text/plain",
                                        "application/jsonx",
                                        NULL};
    struct table h;
    amqp_basic_properties_t p;
    char reason[128];

    (void)state;
    base_headers(&h);
    p = json_props(&h);
    for (size_t i = 0; types[i] != NULL; i++) {
        p.content_type = amqp_cstring_bytes(types[i]);
        snprintf(reason, sizeof(reason), "unsupported content type %s", types[i]);
        /* a pickle body: never looked at, so no JSON error */
        expect_fail_s(&p, "\x80\x04\x95", reason);
    }
    /* control characters in the reason are neutralised */
    p.content_type = (amqp_bytes_t){4, "a\nb\0"};
    expect_fail(&p, v2_body, strlen(v2_body), "unsupported content type a?b?");
}

static void test_accepted_content_types(void **state)
{
    struct table h;
    amqp_basic_properties_t p;
    struct celery_task t;

    (void)state;
    base_headers(&h);
    p = json_props(&h);
    p.content_type = amqp_cstring_bytes("Application/JSON; charset=utf-8");
    decode_ok(&p, v2_body, &t);
    assert_string_equal(t.content_type, "Application/JSON; charset=utf-8");
    celery_task_free(&t);

    /* no content type: tried as JSON */
    p._flags &= ~(amqp_flags_t)(AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG);
    decode_ok(&p, v2_body, &t);
    assert_null(t.content_type);
    celery_task_free(&t);

    p = json_props(&h);
    p.content_encoding = amqp_cstring_bytes("binary");
    expect_fail(&p, v2_body, strlen(v2_body), "unsupported content encoding binary");

    add_str(&h, "compression", "application/x-gzip");
    p = json_props(&h);
    expect_fail(&p, v2_body, strlen(v2_body), "unsupported compression application/x-gzip");
}

static void test_malformed_bodies(void **state)
{
    struct table h;
    amqp_basic_properties_t p;
    char big[64];

    (void)state;
    base_headers(&h);
    p = json_props(&h);
    expect_fail_s(&p, "", "body is empty");
    expect_fail(&p, NULL, 0, "body is empty");
    expect_fail_s(&p, "  \n", "body is empty");
    expect_fail_prefix(&p, "not json", "body is not valid JSON: ");
    expect_fail(&p, v2_body, strlen(v2_body) - 5, "body is not valid JSON: truncated");
    expect_fail_s(&p, "[[1], {}, {}] x", "body is not valid JSON: trailing data after the value");
    expect_fail(&p, "[[1], {}, {}]\0junk", 18,
                "body is not valid JSON: trailing data after the value");
    /* a body cut inside a string, and invalid UTF-8 inside a string */
    expect_fail_s(&p, "[[\"ab", "body is not valid JSON: truncated");
    expect_fail_prefix(&p, "[[\"a\xff\"], {}, {}]", "body is not valid JSON: ");
    expect_fail_s(&p, "[[1], {}]", "protocol 2 body is not [args, kwargs, embed]");
    expect_fail_s(&p, "[[1], {}, {}, {}]", "protocol 2 body is not [args, kwargs, embed]");
    expect_fail_s(&p, "42", "protocol 2 body is not [args, kwargs, embed]");
    expect_fail_s(&p, "[[1], {}, {}] 4", "body is not valid JSON: trailing data after the value");
    expect_fail_s(&p, "\"x\"", "protocol 2 body is not [args, kwargs, embed]");
    expect_fail_s(&p, "null", "protocol 2 body is not [args, kwargs, embed]");
    expect_fail_s(&p, "[{}, {}, {}]", "args is not a list");
    expect_fail_s(&p, "[null, {}, {}]", "args is not a list");
    expect_fail_s(&p, "[[], [], {}]", "kwargs is not an object");
    expect_fail_s(&p, "[[], {}, 5]", "embed is not an object");
    /* nesting beyond the parser's depth limit */
    memset(big, '[', sizeof(big));
    expect_fail_prefix(&p,
                       "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
                       "[[[[[[[[[[[[[[[[[[[[",
                       "body is not valid JSON: ");
    expect_fail(&p, big, sizeof(big), "body is not valid JSON: truncated");
}

static void test_embed_null_accepted(void **state)
{
    struct table h;
    amqp_basic_properties_t p;
    struct celery_task t;

    (void)state;
    base_headers(&h);
    p = json_props(&h);
    decode_ok(&p, "[[7], {\"a\": [1, {\"b\": null}]}, null]", &t);
    assert_null(t.embed);
    assert_int_equal(int_arg_ok(&t, 0, NULL), 7);
    celery_task_free(&t);
}

/* ---- protocol 1 and hybrids ------------------------------------------------------- */

static const char *v1_body =
    "{\"task\": \"app.worker.tasks.parse_run\", \"id\": \"v1-id\", \"args\": [42], "
    "\"kwargs\": {\"x\": 1}, \"group\": null, \"group_index\": null, \"retries\": 2, "
    "\"eta\": \"2026-11-24T21:00:00Z\", \"expires\": null, \"utc\": true, "
    "\"callbacks\": [{\"task\": \"cb\"}], \"errbacks\": null, \"timelimit\": [30, 20], "
    "\"taskset\": \"ts-1\", \"chord\": null}";

static void test_protocol1(void **state)
{
    amqp_basic_properties_t p;
    struct celery_task t;
    json_object *cb;

    (void)state;
    p = json_props(NULL);
    decode_ok(&p, v1_body, &t);
    assert_int_equal(t.protocol, 1);
    assert_string_equal(t.id, "v1-id");
    assert_string_equal(t.task, "app.worker.tasks.parse_run");
    assert_int_equal(t.retries, 2);
    assert_true(t.has_eta);
    assert_true(t.eta == EPOCH_2026_11_24_21);
    assert_false(t.has_expires);
    assert_true(t.time_limit == 30.0);
    assert_true(t.soft_time_limit == 20.0);
    assert_string_equal(t.group, "ts-1");
    assert_int_equal(int_arg_ok(&t, 0, "run_id"), 42);
    assert_true(json_object_object_get_ex(t.embed, "callbacks", &cb));
    assert_int_equal(json_object_array_length(cb), 1);
    assert_true(json_object_object_get_ex(t.embed, "chain", NULL));
    celery_task_free(&t);

    /* the smallest protocol 1 message: args/kwargs default to [] / {} */
    decode_ok(&p, "{\"task\": \"t\", \"id\": \"i\"}", &t);
    assert_int_equal(t.protocol, 1);
    assert_int_equal(json_object_array_length(t.args), 0);
    assert_int_equal(json_object_object_length(t.kwargs), 0);
    assert_int_equal(t.retries, 0);
    celery_task_free(&t);

    expect_fail_s(&p, "{\"task\": \"t\"}", "missing task id");
    expect_fail_s(&p, "{\"id\": \"i\"}", "missing task name");
    expect_fail_s(&p, "{\"task\": \"t\", \"id\": \"i\", \"args\": {}}", "args is not a list");
    expect_fail_s(&p, "{\"task\": \"t\", \"id\": \"i\", \"kwargs\": [1]}",
                  "kwargs is not an object");
    expect_fail_s(&p, "{\"task\": \"t\", \"id\": \"i\", \"retries\": -3}",
                  "retries is not an integer in 0..2147483646");
    expect_fail_s(&p, "{\"task\": \"t\", \"id\": \"i\", \"retries\": 1e300}",
                  "retries is not an integer in 0..2147483646");
    expect_fail_s(&p, "{\"task\": 5, \"id\": \"i\"}", "task is not a string");
    expect_fail_s(&p, "[[1], {}, {}]",
                  "message has no task header and its body is not a protocol 1 object");
}

static void test_hybrid_v2_headers_v1_body(void **state)
{
    struct table h;
    amqp_basic_properties_t p;
    struct celery_task t;

    (void)state;
    base_headers(&h);
    add(&h, "retries", AMQP_FIELD_KIND_I32)->value.i32 = 1;
    p = json_props(&h);
    decode_ok(&p, v1_body, &t);
    assert_int_equal(t.protocol, 2);
    assert_string_equal(t.id, "tid-1");        /* headers win */
    assert_int_equal(t.retries, 1);            /* headers win */
    assert_true(t.eta == EPOCH_2026_11_24_21); /* body fills the gaps */
    assert_true(t.time_limit == 30.0);
    assert_int_equal(int_arg_ok(&t, 0, "run_id"), 42);
    celery_task_free(&t);

    /* id only in the body */
    h.e[2].key = amqp_cstring_bytes("not-id");
    decode_ok(&p, v1_body, &t);
    assert_string_equal(t.id, "v1-id");
    celery_task_free(&t);
}

/* ---- kombu __type__ markers ------------------------------------------------------- */

static void test_kombu_markers(void **state)
{
    struct table h;
    amqp_basic_properties_t p;
    struct celery_task t;
    json_object *v;
    const char *body =
        "[[{\"__type__\": \"decimal\", \"__value__\": \"42\"},"
        "  {\"__type__\": \"datetime\", \"__value__\": \"2026-11-24T21:00:00+00:00\"},"
        "  {\"__type__\": \"uuid\", \"__value__\": {\"hex\": \"8C1F0C5E4A1E4BD09D2A6A3F1C2B7E10\","
        "\"version\": 4}},"
        "  {\"__type__\": \"bytes\", \"__value__\": \"raw\"},"
        "  {\"__type__\": \"base64\", \"__value__\": \"/w==\"},"
        "  {\"__type__\": \"date\", \"__value__\": \"2026-11-24\"},"
        "  {\"__type__\": \"time\", \"__value__\": \"21:00:00\"},"
        "  {\"__type__\": \"uuid\", \"__value__\": \"plain-uuid-text\"},"
        "  {\"__type__\": \"x\", \"__value__\": 1, \"other\": 2}],"
        " {\"run_id\": {\"__type__\": \"decimal\", \"__value__\": \"7.000\"},"
        "  \"nested\": [{\"when\": {\"__type__\": \"date\", \"__value__\": \"2026-01-02\"}}]},"
        " {\"callbacks\": null, \"errbacks\": null, \"chain\": null, \"chord\": null}]";

    (void)state;
    base_headers(&h);
    p = json_props(&h);
    decode_ok(&p, body, &t);
    assert_string_equal(
        json_object_to_json_string_ext(t.args, JSON_C_TO_STRING_PLAIN),
        "[\"42\",\"2026-11-24T21:00:00+00:00\",\"8c1f0c5e-4a1e-4bd0-9d2a-6a3f1c2b7e10\","
        "\"raw\",\"\\/w==\",\"2026-11-24\",\"21:00:00\",\"plain-uuid-text\","
        "{\"__type__\":\"x\",\"__value__\":1,\"other\":2}]");
    assert_true(json_object_object_get_ex(t.kwargs, "nested", &v));
    assert_string_equal(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN),
                        "[{\"when\":\"2026-01-02\"}]");
    /* Decimal run_id by position and by keyword */
    assert_int_equal(int_arg_ok(&t, 0, NULL), 42);
    assert_int_equal(int_arg_ok(&t, 99, "run_id"), 7);
    /* the wire body keeps the markers for a retry */
    assert_non_null(strstr(json_object_to_json_string(t.wire_body), "__type__\": \"decimal\""));
    celery_task_free(&t);
}

static void test_kombu_bad_markers(void **state)
{
    struct table h;
    amqp_basic_properties_t p;

    (void)state;
    base_headers(&h);
    p = json_props(&h);
    expect_fail_prefix(&p, "[[{\"__type__\": \"pickle\", \"__value__\": \"x\"}], {}, {}]",
                       "unsupported kombu type \"pickle\"");
    expect_fail_prefix(&p, "[[{\"__type__\": 3, \"__value__\": \"x\"}], {}, {}]",
                       "kombu __type__ is not a string");
    expect_fail_prefix(&p, "[[{\"__type__\": \"decimal\", \"__value__\": 4}], {}, {}]",
                       "kombu decimal value is not a string");
    expect_fail_prefix(&p, "[[{\"__type__\": \"uuid\", \"__value__\": {\"hex\": \"zz\"}}], {}, {}]",
                       "kombu uuid value has no 32-digit \"hex\"");
    expect_fail_prefix(&p,
                       "[[{\"__type__\": \"uuid\", \"__value__\": {\"hex\": "
                       "\"8c1f0c5e4a1e4bd09d2a6a3f1c2b7eXX\"}}], {}, {}]",
                       "kombu uuid \"hex\" is not hexadecimal");
    /* a marker as the whole args value turns into a string, which is not a list */
    expect_fail_s(&p, "[{\"__type__\": \"bytes\", \"__value__\": \"x\"}, {}, {}]",
                  "args is not a list");
}

static void test_kombu_unwrap_top_level(void **state)
{
    json_object *j = json_tokener_parse("{\"__type__\": \"decimal\", \"__value__\": \"1.5\"}");
    struct cw_error err;

    (void)state;
    cw_error_clear(&err);
    assert_int_equal(kombu_json_unwrap(&j, &err), 0);
    assert_true(json_object_is_type(j, json_type_string));
    assert_string_equal(json_object_get_string(j), "1.5");
    json_object_put(j);
}

/* ---- int arguments ---------------------------------------------------------------- */

static void test_int_arg(void **state)
{
    struct table h;
    amqp_basic_properties_t p;
    struct celery_task t;

    (void)state;
    base_headers(&h);
    p = json_props(&h);
    decode_ok(&p, "[[\"123\", -5, 9223372036854775807], {\"k\": \"-0042\"}, null]", &t);
    assert_int_equal(int_arg_ok(&t, 0, NULL), 123);
    assert_int_equal(int_arg_ok(&t, 1, NULL), -5);
    assert_true(int_arg_ok(&t, 2, NULL) == 9223372036854775807L);
    assert_int_equal(int_arg_ok(&t, 3, "k"), -42);
    celery_task_free(&t);

    decode_ok(&p, "[[], {}, null]", &t);
    int_arg_fails(&t, "bad arguments: missing run_id (position 0)");
    celery_task_free(&t);
    decode_ok(&p, "[[1], {\"run_id\": 1}, null]", &t);
    int_arg_fails(&t, "bad arguments: run_id given by position and by keyword");
    celery_task_free(&t);
    decode_ok(&p, "[[4.5], {}, null]", &t);
    int_arg_fails(&t, "bad arguments: run_id must be an integer, got double");
    celery_task_free(&t);
    decode_ok(&p, "[[true], {}, null]", &t);
    int_arg_fails(&t, "bad arguments: run_id must be an integer, got boolean");
    celery_task_free(&t);
    decode_ok(&p, "[[null], {}, null]", &t);
    int_arg_fails(&t, "bad arguments: run_id must be an integer, got null");
    celery_task_free(&t);
    decode_ok(&p, "[[[42]], {}, null]", &t);
    int_arg_fails(&t, "bad arguments: run_id must be an integer, got array");
    celery_task_free(&t);
    decode_ok(&p, "[[18446744073709551615], {}, null]", &t);
    int_arg_fails(&t, "bad arguments: run_id is out of range");
    celery_task_free(&t);
    decode_ok(&p, "[[\"99999999999999999999\"], {}, null]", &t);
    int_arg_fails(&t, "bad arguments: run_id must be an integer, got a non-integral string");
    celery_task_free(&t);
    static const char *const bad_strings[] = {"",     "-",   "4 2", " 42", "42 ", "4.2",
                                              "0x10", "42.", "abc", "1e3", NULL};
    for (size_t i = 0; bad_strings[i] != NULL; i++) {
        char body[64];
        snprintf(body, sizeof(body), "[[\"%s\"], {}, null]", bad_strings[i]);
        decode_ok(&p, body, &t);
        if (strcmp(bad_strings[i], "42.") == 0) {
            /* "42." is a valid Decimal text (Decimal("42.")) */
            assert_int_equal(int_arg_ok(&t, 0, "run_id"), 42);
        } else {
            int_arg_fails(&t,
                          "bad arguments: run_id must be an integer, got a non-integral string");
        }
        celery_task_free(&t);
    }
    /* a string with an embedded NUL is not "42" */
    decode_ok(&p, "[[\"42\\u0000\"], {}, null]", &t);
    int_arg_fails(&t, "bad arguments: run_id must be an integer, got a non-integral string");
    celery_task_free(&t);
}

/* ---- ISO-8601 --------------------------------------------------------------------- */

static void expect_iso(const char *s, double want)
{
    double got = -12345;

    if (celery_parse_iso8601(s, &got) != 0)
        fail_msg("parse failed: %s", s);
    if (fabs(got - want) > 1e-6)
        fail_msg("%s: got %.6f want %.6f", s, got, want);
}

static void test_iso8601_parse(void **state)
{
    static const char *const bad[] = {
        "",
        "2026",
        "2026-11",
        "2026-13-01T00:00:00",
        "2026-02-29T00:00:00",
        "2026-11-31T00:00:00",
        "2026-11-24T24:00:00",
        "2026-11-24T21:60:00",
        "2026-11-24T21:00:61",
        "2026-11-24T21:00:00.",
        "2026-11-24T21:00:00+5",
        "2026-11-24T21:00:00+24:00",
        "2026-11-24T21:00:00+05:60",
        "2026-11-24T21:00:00 +00:00",
        "2026-11-24T21:00:00Zjunk",
        "2026-11-24X21:00:00",
        "2026-11-24T21",
        "26-11-24T21:00:00",
        "0000-01-01T00:00:00",
        "2026-11-24T21:00:00+00:00:00",
        NULL,
    };
    double out;

    (void)state;
    expect_iso("2026-11-24T21:00:00.123456+00:00", EPOCH_2026_11_24_21 + 0.123456);
    expect_iso("2026-11-24T21:00:00Z", EPOCH_2026_11_24_21);
    expect_iso("2026-11-24T21:00:00z", EPOCH_2026_11_24_21);
    expect_iso("2026-11-24T21:00:00", EPOCH_2026_11_24_21);
    expect_iso("2026-11-24 21:00:00", EPOCH_2026_11_24_21);
    expect_iso("2026-11-24T21:00", EPOCH_2026_11_24_21);
    expect_iso("2026-11-25T02:30:00+05:30", EPOCH_2026_11_24_21);
    expect_iso("2026-11-25T02:30:00+0530", EPOCH_2026_11_24_21);
    expect_iso("2026-11-24T16:00:00-05:00", EPOCH_2026_11_24_21);
    expect_iso("2026-11-24T23:00:00+02", EPOCH_2026_11_24_21);
    expect_iso("2026-11-24T21:00:00.5Z", EPOCH_2026_11_24_21 + 0.5);
    expect_iso("2026-11-24T21:00:00,25Z", EPOCH_2026_11_24_21 + 0.25);
    expect_iso("2026-11-24T21:00:00.123456789123Z", EPOCH_2026_11_24_21 + 0.123456789);
    expect_iso("2026-11-24", EPOCH_2026_11_24_21 - 21 * 3600);
    expect_iso("2000-02-29T12:00:00+00:00", 951825600.0);
    expect_iso("1969-12-31T23:59:59Z", -1.0);
    expect_iso("1970-01-01T00:00:00+14:00", -14 * 3600.0);
    for (size_t i = 0; bad[i] != NULL; i++)
        if (celery_parse_iso8601(bad[i], &out) == 0)
            fail_msg("accepted \"%s\"", bad[i]);
    assert_int_equal(celery_parse_iso8601(NULL, &out), -1);
}

static void test_iso8601_format(void **state)
{
    char buf[64];
    double back;

    (void)state;
    celery_format_iso8601(EPOCH_2026_11_24_21 + 0.123456, buf, sizeof(buf));
    assert_string_equal(buf, "2026-11-24T21:00:00.123456+00:00");
    celery_format_iso8601(EPOCH_2026_11_24_21, buf, sizeof(buf));
    assert_string_equal(buf, "2026-11-24T21:00:00.000000+00:00");
    /* rounding up to the next second */
    celery_format_iso8601(EPOCH_2026_11_24_21 - 0.0000001, buf, sizeof(buf));
    assert_string_equal(buf, "2026-11-24T21:00:00.000000+00:00");
    celery_format_iso8601(-0.5, buf, sizeof(buf));
    assert_string_equal(buf, "1969-12-31T23:59:59.500000+00:00");
    assert_int_equal(celery_parse_iso8601(buf, &back), 0);
    assert_true(back == -0.5);
    celery_format_iso8601(NAN, buf, sizeof(buf));
    assert_string_equal(buf, "");
    celery_format_iso8601(1e300, buf, sizeof(buf));
    assert_string_equal(buf, "");
    celery_format_iso8601(EPOCH_2026_11_24_21, buf, 11);
    assert_string_equal(buf, "2026-11-24");
}

/* Every truncation and many byte mutations of a real body: each decodes or fails with a
 * permanent error, and (under ASan/valgrind) never reads out of bounds or leaks. The
 * copies are exactly sized heap buffers without a terminating NUL. */
static void test_hostile_bodies(void **state)
{
    static const unsigned char subst[] = {0x00, '"', '[', ']', '{',  '}',  ',',  ':',
                                          '\\', 'n', '1', '-', 0xc3, 0xff, 0x80, ' '};
    const char *src = real_keyword_body;
    size_t len = strlen(src);
    struct real_msg m;
    struct celery_task t;
    struct cw_error err;
    int decoded = 0, failed = 0;

    (void)state;
    real_props(&m, real_keyword_props, sizeof(real_keyword_props));
    for (size_t cut = 0; cut <= len; cut++) {
        char *buf = malloc(cut ? cut : 1);
        memcpy(buf, src, cut);
        cw_error_clear(&err);
        if (celery_message_decode(m.props, buf, cut, &t, &err) == 0) {
            decoded++;
            assert_int_equal(cut, len); /* only the whole body is a message */
        } else {
            assert_int_equal(err.cls, CW_ERR_PERMANENT);
            assert_true(strlen(err.message) > 0);
            assert_null(strchr(err.message, '\n'));
        }
        celery_task_free(&t);
        free(buf);
    }
    assert_int_equal(decoded, 1);
    for (size_t i = 0; i < len; i++) {
        for (size_t k = 0; k < sizeof(subst); k++) {
            char *buf = malloc(len);
            long v;
            memcpy(buf, src, len);
            buf[i] = (char)subst[k];
            cw_error_clear(&err);
            if (celery_message_decode(m.props, buf, len, &t, &err) == 0) {
                assert_true(json_object_is_type(t.args, json_type_array));
                assert_true(json_object_is_type(t.kwargs, json_type_object));
                if (celery_task_int_arg(&t, 0, "run_id", &v, &err) != 0)
                    assert_int_equal(err.cls, CW_ERR_PERMANENT);
            } else {
                assert_int_equal(err.cls, CW_ERR_PERMANENT);
                failed++;
            }
            celery_task_free(&t);
            free(buf);
        }
    }
    assert_true(failed > 0);
    empty_amqp_pool(&m.pool);
}

/* Byte mutations of real wire properties: whatever rabbitmq-c still accepts must decode
 * or fail cleanly here (header kinds and lengths change under our feet). */
static void test_hostile_headers(void **state)
{
    static const unsigned char subst[] = {0x00, 'S', 'V', 'A', 'F', 'I',  'L',  'l', 'd',
                                          'f',  't', 'x', 'T', 'D', 0xff, 0x7f, 0x01};
    size_t len = sizeof(real_keyword_props);
    int accepted = 0;

    (void)state;
    for (size_t i = 0; i < len; i++) {
        for (size_t k = 0; k < sizeof(subst); k++) {
            unsigned char *raw = malloc(len);
            amqp_pool_t pool;
            void *decoded = NULL;
            struct celery_task t;
            struct cw_error err;

            memcpy(raw, real_keyword_props, len);
            raw[i] = subst[k];
            init_amqp_pool(&pool, 4096);
            if (amqp_decode_properties(AMQP_BASIC_CLASS, &pool, (amqp_bytes_t){len, raw},
                                       &decoded) == 0) {
                accepted++;
                cw_error_clear(&err);
                if (celery_message_decode(decoded, real_keyword_body, strlen(real_keyword_body), &t,
                                          &err) != 0)
                    assert_int_equal(err.cls, CW_ERR_PERMANENT);
                celery_task_free(&t);
            }
            empty_amqp_pool(&pool);
            free(raw);
        }
    }
    assert_true(accepted > 0);
}

/* ---- retry encoder ---------------------------------------------------------------- */

/* Puts the outgoing properties through rabbitmq-c's wire encoder and decoder, so the
 * test sees what a consumer would receive, then decodes the retry as a delivery. */
static void redeliver(struct celery_outgoing *o, struct celery_task *t, amqp_pool_t *pool)
{
    static unsigned char wire[65536];
    amqp_bytes_t enc = {sizeof(wire), wire};
    void *decoded = NULL;
    int n;
    struct cw_error err;

    n = amqp_encode_properties(AMQP_BASIC_CLASS, &o->props, enc);
    assert_true(n > 0);
    enc.len = (size_t)n;
    init_amqp_pool(pool, 4096);
    assert_int_equal(amqp_decode_properties(AMQP_BASIC_CLASS, pool, enc, &decoded), 0);
    cw_error_clear(&err);
    if (celery_message_decode(decoded, o->body.bytes, o->body.len, t, &err) != 0)
        fail_msg("retry did not decode: %s", err.message);
}

static void encode_ok(const struct celery_task *t, double now, double countdown,
                      struct celery_outgoing *o)
{
    struct cw_error err;

    cw_error_clear(&err);
    if (celery_message_encode_retry(t, now, countdown, o, &err) != 0)
        fail_msg("encode failed: %s", err.message);
}

static const char *json_text(json_object *j)
{
    return json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN);
}

static void test_retry_roundtrip_positional(void **state)
{
    struct real_msg m;
    struct celery_task t, r;
    struct celery_outgoing o;
    amqp_pool_t pool;
    const amqp_field_value_t *v;

    (void)state;
    real_props(&m, real_positional_props, sizeof(real_positional_props));
    decode_ok(m.props, real_positional_body, &t);
    encode_ok(&t, EPOCH_2026_11_24_21 + 0.25, 60, &o);

    /* the properties Celery sets */
    assert_memory_equal(o.props.content_type.bytes, "application/json", 16);
    assert_int_equal(o.props.content_type.len, 16);
    assert_int_equal(o.props.content_encoding.len, 5);
    assert_memory_equal(o.props.content_encoding.bytes, "utf-8", 5);
    assert_true(o.props._flags & AMQP_BASIC_DELIVERY_MODE_FLAG);
    assert_int_equal(o.props.delivery_mode, 2);
    /* integers in the kinds py-amqp reads back as Python ints */
    v = mq_json_table_get(&o.props.headers, "retries");
    assert_non_null(v);
    assert_int_equal(v->kind, AMQP_FIELD_KIND_I32);
    assert_int_equal(v->value.i32, 1);
    v = mq_json_table_get(&o.props.headers, "eta");
    assert_int_equal(v->kind, AMQP_FIELD_KIND_UTF8);
    assert_int_equal(v->value.bytes.len, strlen("2026-11-24T21:01:00.250000+00:00"));
    assert_memory_equal(v->value.bytes.bytes, "2026-11-24T21:01:00.250000+00:00",
                        v->value.bytes.len);
    v = mq_json_table_get(&o.props.headers, "group");
    assert_int_equal(v->kind, AMQP_FIELD_KIND_VOID);
    assert_int_equal(o.body.len, strlen(real_positional_body) - 9); /* no spaces */

    redeliver(&o, &r, &pool);
    assert_int_equal(r.protocol, 2);
    assert_string_equal(r.id, t.id);
    assert_string_equal(r.task, t.task);
    assert_int_equal(r.retries, 1);
    assert_true(r.has_eta);
    assert_true(fabs(r.eta - (EPOCH_2026_11_24_21 + 60.25)) < 1e-6);
    assert_string_equal(r.parent_id, t.id); /* was None: the task itself */
    assert_string_equal(r.root_id, t.root_id);
    assert_null(r.group);
    assert_null(r.shadow);
    assert_false(r.has_group_index);
    assert_false(r.has_expires);
    assert_false(r.has_time_limit);
    assert_false(r.has_soft_time_limit);
    assert_string_equal(r.origin, t.origin);
    assert_string_equal(r.argsrepr, "[42]");
    assert_string_equal(r.kwargsrepr, "{}");
    assert_false(r.ignore_result);
    assert_string_equal(r.correlation_id, t.id);
    assert_string_equal(r.reply_to, t.reply_to);
    assert_string_equal(r.content_type, "application/json");
    assert_string_equal(json_text(r.args), "[42]");
    assert_string_equal(json_text(r.kwargs), "{}");
    assert_string_equal(json_text(r.embed), json_text(t.embed));
    assert_int_equal(int_arg_ok(&r, 0, "run_id"), 42);
    celery_task_free(&r);
    empty_amqp_pool(&pool);

    /* the retry of the retry counts on */
    celery_outgoing_free(&o);
    celery_task_free(&t);
    empty_amqp_pool(&m.pool);
}

static void test_retry_roundtrip_keeps_headers(void **state)
{
    struct real_msg m;
    struct celery_task t, r, r2;
    struct celery_outgoing o, o2;
    amqp_pool_t pool, pool2;
    const amqp_field_value_t *v;

    (void)state;
    real_props(&m, real_keyword_props, sizeof(real_keyword_props));
    decode_ok(m.props, real_keyword_body, &t);
    encode_ok(&t, EPOCH_2026_11_24_21, 180, &o);
    v = mq_json_table_get(&o.props.headers, "timelimit");
    assert_int_equal(v->kind, AMQP_FIELD_KIND_ARRAY);
    assert_int_equal(v->value.array.num_entries, 2);
    assert_int_equal(v->value.array.entries[0].kind, AMQP_FIELD_KIND_I32); /* 3600 stays int */
    assert_int_equal(v->value.array.entries[0].value.i32, 3600);
    assert_int_equal(v->value.array.entries[1].kind, AMQP_FIELD_KIND_F64);

    redeliver(&o, &r, &pool);
    assert_string_equal(r.id, t.id);
    assert_int_equal(r.retries, 1);
    assert_true(r.eta == EPOCH_2026_11_24_21 + 180);
    assert_string_equal(r.parent_id, "p-1"); /* set: kept */
    assert_string_equal(r.root_id, "r-1");
    assert_string_equal(r.group, "g-1");
    assert_true(r.has_group_index);
    assert_int_equal(r.group_index, 3);
    assert_string_equal(r.shadow, "parse 42");
    assert_true(r.has_expires);
    assert_true(r.expires == t.expires);
    assert_true(r.time_limit == 3600.0);
    assert_true(r.soft_time_limit == 3300.5);
    assert_string_equal(r.kwargsrepr, "{'run_id': 42}");
    assert_string_equal(json_text(r.args), "[]");
    assert_string_equal(json_text(r.kwargs), "{\"run_id\":42}");
    assert_int_equal(int_arg_ok(&r, 0, "run_id"), 42);

    /* and again: retries 2, ids unchanged */
    encode_ok(&r, EPOCH_2026_11_24_21 + 200, 600, &o2);
    redeliver(&o2, &r2, &pool2);
    assert_int_equal(r2.retries, 2);
    assert_string_equal(r2.id, t.id);
    assert_string_equal(r2.parent_id, "p-1");
    assert_true(r2.eta == EPOCH_2026_11_24_21 + 800);

    celery_task_free(&r2);
    empty_amqp_pool(&pool2);
    celery_outgoing_free(&o2);
    celery_task_free(&r);
    empty_amqp_pool(&pool);
    celery_outgoing_free(&o);
    celery_task_free(&t);
    empty_amqp_pool(&m.pool);
}

static void test_retry_keeps_kombu_markers(void **state)
{
    struct table h;
    amqp_basic_properties_t p;
    struct celery_task t, r;
    struct celery_outgoing o;
    amqp_pool_t pool;
    const char *body = "[[{\"__type__\": \"decimal\", \"__value__\": \"42\"}], "
                       "{\"at\": {\"__type__\": \"datetime\", \"__value__\": "
                       "\"2026-11-24T21:00:00+00:00\"}, \"s\": \"a/b\\u00e9\"}, "
                       "{\"callbacks\": [{\"task\": \"cb\", \"args\": [1.5]}], "
                       "\"errbacks\": null, \"chain\": null, \"chord\": null}]";

    (void)state;
    base_headers(&h);
    p = json_props(&h);
    decode_ok(&p, body, &t);
    encode_ok(&t, EPOCH_2026_11_24_21, 60, &o);
    assert_string_equal(
        json_text(t.wire_body),
        "[[{\"__type__\":\"decimal\",\"__value__\":\"42\"}],"
        "{\"at\":{\"__type__\":\"datetime\",\"__value__\":\"2026-11-24T21:00:00+00:00\"},"
        "\"s\":\"a\\/b\xc3\xa9\"},"
        "{\"callbacks\":[{\"task\":\"cb\",\"args\":[1.5]}],\"errbacks\":null,\"chain\":null,"
        "\"chord\":null}]");
    /* on the wire: markers intact, '/' not escaped, UTF-8 raw */
    assert_int_equal(o.body.len, strlen("[[{\"__type__\":\"decimal\",\"__value__\":\"42\"}],"
                                        "{\"at\":{\"__type__\":\"datetime\",\"__value__\":"
                                        "\"2026-11-24T21:00:00+00:00\"},\"s\":\"a/b\xc3\xa9\"},"
                                        "{\"callbacks\":[{\"task\":\"cb\",\"args\":[1.5]}],"
                                        "\"errbacks\":null,\"chain\":null,\"chord\":null}]"));
    redeliver(&o, &r, &pool);
    assert_string_equal(json_text(r.args), "[\"42\"]");
    assert_string_equal(json_text(r.wire_body), json_text(t.wire_body));
    assert_string_equal(json_text(r.embed), json_text(t.embed));
    celery_task_free(&r);
    empty_amqp_pool(&pool);
    celery_outgoing_free(&o);
    celery_task_free(&t);
}

static void test_retry_of_protocol1(void **state)
{
    amqp_basic_properties_t p;
    struct celery_task t, r;
    struct celery_outgoing o;
    amqp_pool_t pool;
    json_object *cb;

    (void)state;
    p = json_props(NULL);
    decode_ok(&p, v1_body, &t);
    encode_ok(&t, EPOCH_2026_11_24_21, 60, &o);
    redeliver(&o, &r, &pool);
    assert_int_equal(r.protocol, 2);
    assert_string_equal(r.id, "v1-id");
    assert_int_equal(r.retries, 3);
    assert_string_equal(r.parent_id, "v1-id");
    assert_string_equal(r.root_id, "v1-id");
    assert_string_equal(r.group, "ts-1");
    assert_null(r.reply_to);
    assert_false(o.props._flags & AMQP_BASIC_REPLY_TO_FLAG);
    assert_true(r.time_limit == 30.0);
    assert_true(r.soft_time_limit == 20.0);
    assert_string_equal(json_text(r.args), "[42]");
    assert_string_equal(json_text(r.kwargs), "{\"x\":1}");
    assert_true(json_object_object_get_ex(r.embed, "callbacks", &cb));
    assert_int_equal(json_object_array_length(cb), 1);
    celery_task_free(&r);
    empty_amqp_pool(&pool);
    celery_outgoing_free(&o);
    celery_task_free(&t);
}

static void test_retry_hand_built_task(void **state)
{
    struct celery_task t, r;
    struct celery_outgoing o;
    amqp_pool_t pool;
    struct cw_error err;

    (void)state;
    memset(&t, 0, sizeof(t));
    t.id = "hand-1";
    t.task = "app.worker.tasks.parse_run";
    t.args = json_tokener_parse("[7]");
    t.retries = 4;
    t.has_expires = true;
    t.expires = EPOCH_2026_11_24_21 + 3600;
    encode_ok(&t, EPOCH_2026_11_24_21, 0, &o);
    redeliver(&o, &r, &pool);
    assert_int_equal(r.retries, 5);
    assert_true(r.eta == EPOCH_2026_11_24_21);
    assert_true(r.expires == EPOCH_2026_11_24_21 + 3600);
    assert_string_equal(json_text(r.args), "[7]");
    assert_string_equal(json_text(r.kwargs), "{}");
    assert_string_equal(json_text(r.embed),
                        "{\"callbacks\":null,\"errbacks\":null,\"chain\":null,\"chord\":null}");
    celery_task_free(&r);
    empty_amqp_pool(&pool);
    celery_outgoing_free(&o);

    /* refusals */
    cw_error_clear(&err);
    assert_int_equal(celery_message_encode_retry(&t, NAN, 60, &o, &err), -1);
    assert_int_equal(err.cls, CW_ERR_INTERNAL);
    celery_outgoing_free(&o);
    assert_int_equal(celery_message_encode_retry(&t, 1e300, 60, &o, &err), -1);
    celery_outgoing_free(&o);
    t.id = NULL;
    assert_int_equal(celery_message_encode_retry(&t, 0, 60, &o, &err), -1);
    celery_outgoing_free(&o);
    json_object_put(t.args);
}

static void test_json_to_amqp(void **state)
{
    json_object *j = json_tokener_parse(
        "{\"small\": -7, \"big\": -5000000000, \"huge\": 9000000000000000000, \"d\": 0.5, "
        "\"t\": true, \"n\": null, \"s\": \"x\", \"a\": [1, [2]], \"o\": {\"k\": {}}}");
    amqp_pool_t pool;
    amqp_table_t table;
    const amqp_field_value_t *v;
    struct cw_error err;
    char key[300];
    json_object *back = NULL;
    amqp_field_value_t top;

    (void)state;
    init_amqp_pool(&pool, 1024);
    cw_error_clear(&err);
    assert_int_equal(mq_json_to_table(j, &pool, &table, &err), 0);
    v = mq_json_table_get(&table, "small");
    assert_int_equal(v->kind, AMQP_FIELD_KIND_I32);
    assert_int_equal(v->value.i32, -7);
    v = mq_json_table_get(&table, "big");
    assert_int_equal(v->kind, AMQP_FIELD_KIND_U64); /* py-amqp's signed 'L' */
    assert_true((int64_t)v->value.u64 == -5000000000LL);
    v = mq_json_table_get(&table, "d");
    assert_int_equal(v->kind, AMQP_FIELD_KIND_F64);
    v = mq_json_table_get(&table, "t");
    assert_int_equal(v->kind, AMQP_FIELD_KIND_BOOLEAN);
    v = mq_json_table_get(&table, "n");
    assert_int_equal(v->kind, AMQP_FIELD_KIND_VOID);
    v = mq_json_table_get(&table, "o");
    assert_int_equal(v->kind, AMQP_FIELD_KIND_TABLE);
    /* and back: the same JSON */
    top.kind = AMQP_FIELD_KIND_TABLE;
    top.value.table = table;
    assert_int_equal(mq_json_from_field(&top, &back, &err), 0);
    assert_string_equal(json_text(back), json_text(j));
    json_object_put(back);

    /* keys longer than a shortstr */
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    json_object_object_add(j, key, NULL);
    assert_int_equal(mq_json_to_table(j, &pool, &table, &err), -1);
    assert_int_equal(err.cls, CW_ERR_PERMANENT);
    json_object_put(j);

    /* nesting limit */
    j = json_object_new_array();
    for (int i = 0; i < MQ_JSON_MAX_DEPTH + 1; i++) {
        json_object *outer = json_object_new_array();
        json_object_array_add(outer, j);
        j = outer;
    }
    assert_int_equal(mq_json_to_field(j, &pool, &top, &err), -1);
    json_object_put(j);
    empty_amqp_pool(&pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_positional),
        cmocka_unit_test(test_real_keyword),
        cmocka_unit_test(test_header_kinds_to_json),
        cmocka_unit_test(test_header_invalid_utf8),
        cmocka_unit_test(test_header_unknown_ignored),
        cmocka_unit_test(test_header_nesting_limit),
        cmocka_unit_test(test_retries_header_types),
        cmocka_unit_test(test_wrong_header_types),
        cmocka_unit_test(test_timelimit_variants),
        cmocka_unit_test(test_rejected_content_types),
        cmocka_unit_test(test_accepted_content_types),
        cmocka_unit_test(test_malformed_bodies),
        cmocka_unit_test(test_embed_null_accepted),
        cmocka_unit_test(test_protocol1),
        cmocka_unit_test(test_hybrid_v2_headers_v1_body),
        cmocka_unit_test(test_kombu_markers),
        cmocka_unit_test(test_kombu_bad_markers),
        cmocka_unit_test(test_kombu_unwrap_top_level),
        cmocka_unit_test(test_int_arg),
        cmocka_unit_test(test_iso8601_parse),
        cmocka_unit_test(test_iso8601_format),
        cmocka_unit_test(test_hostile_bodies),
        cmocka_unit_test(test_hostile_headers),
        cmocka_unit_test(test_retry_roundtrip_positional),
        cmocka_unit_test(test_retry_roundtrip_keeps_headers),
        cmocka_unit_test(test_retry_keeps_kombu_markers),
        cmocka_unit_test(test_retry_of_protocol1),
        cmocka_unit_test(test_retry_hand_built_task),
        cmocka_unit_test(test_json_to_amqp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
