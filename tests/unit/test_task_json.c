/* Unit tests for celery/task_json.h: a decoded task to JSON and back loses nothing, and
 * objects that were not made by celery_task_to_json are refused field by field. */
#include "celery/task_json.h"

#include "celery/message.h"

#include <amqp_framing.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixtures/celery_capture.h"

static void assert_same_string(const char *name, const char *a, const char *b)
{
    if (!a || !b) {
        if (a != b)
            fail_msg("field %s: %s vs %s", name, a ? a : "NULL", b ? b : "NULL");
        return;
    }
    if (strcmp(a, b) != 0)
        fail_msg("field %s: \"%s\" vs \"%s\"", name, a, b);
}

static void assert_same_json(const char *name, json_object *a, json_object *b)
{
    if (!a || !b) {
        if (a != b)
            fail_msg("field %s: one side is NULL", name);
        return;
    }
    if (!json_object_equal(a, b))
        fail_msg("field %s: %s vs %s", name, json_object_to_json_string(a),
                 json_object_to_json_string(b));
}

/* Every field of struct celery_task (celery/message.h), one by one. */
static void assert_same_task(const struct celery_task *a, const struct celery_task *b)
{
    assert_int_equal(a->protocol, b->protocol);
    assert_int_equal(a->retries, b->retries);
    assert_same_string("id", a->id, b->id);
    assert_same_string("task", a->task, b->task);
    assert_same_string("root_id", a->root_id, b->root_id);
    assert_same_string("parent_id", a->parent_id, b->parent_id);
    assert_same_string("group", a->group, b->group);
    assert_same_string("origin", a->origin, b->origin);
    assert_same_string("argsrepr", a->argsrepr, b->argsrepr);
    assert_same_string("kwargsrepr", a->kwargsrepr, b->kwargsrepr);
    assert_same_string("shadow", a->shadow, b->shadow);
    assert_same_string("reply_to", a->reply_to, b->reply_to);
    assert_same_string("correlation_id", a->correlation_id, b->correlation_id);
    assert_same_string("content_type", a->content_type, b->content_type);
    assert_int_equal(a->has_eta, b->has_eta);
    assert_true(a->eta == b->eta);
    assert_int_equal(a->has_expires, b->has_expires);
    assert_true(a->expires == b->expires);
    assert_int_equal(a->has_time_limit, b->has_time_limit);
    assert_true(a->time_limit == b->time_limit);
    assert_int_equal(a->has_soft_time_limit, b->has_soft_time_limit);
    assert_true(a->soft_time_limit == b->soft_time_limit);
    assert_int_equal(a->has_group_index, b->has_group_index);
    assert_int_equal(a->group_index, b->group_index);
    assert_same_json("args", a->args, b->args);
    assert_same_json("kwargs", a->kwargs, b->kwargs);
    assert_same_json("embed", a->embed, b->embed);
    assert_same_json("wire_body", a->wire_body, b->wire_body);
    assert_int_equal(a->ignore_result, b->ignore_result);
}

/* to_json, through text as the channel carries it, and back. */
static void round_trip(const struct celery_task *t)
{
    json_object *o = celery_task_to_json(t);
    char *text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    json_object *parsed = json_tokener_parse(text);
    free(text);
    assert_non_null(parsed);
    struct celery_task back;
    struct cw_error err;
    if (celery_task_from_json(parsed, &back, &err) != 0)
        fail_msg("from_json: %s", err.message);
    json_object_put(parsed);
    assert_same_task(t, &back);
    celery_task_free(&back);
}

static void test_captured_message_round_trip(void **state)
{
    (void)state;
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    void *decoded = NULL;
    amqp_bytes_t raw = {sizeof real_positional_props, (void *)real_positional_props};
    assert_int_equal(amqp_decode_properties(AMQP_BASIC_CLASS, &pool, raw, &decoded), 0);
    struct celery_task t;
    struct cw_error err;
    if (celery_message_decode(decoded, real_positional_body, strlen(real_positional_body), &t,
                              &err) != 0)
        fail_msg("decode: %s", err.message);
    /* The decoder filled what the capture holds; the round trip must keep all of it. */
    assert_string_equal(t.id, "a3c9d0e2-5b7f-4c1a-8e6d-2f4b9a7c1e30");
    assert_non_null(t.wire_body);
    assert_non_null(t.reply_to);
    round_trip(&t);
    celery_task_free(&t);
    empty_amqp_pool(&pool);
}

static json_object *parse(const char *text)
{
    json_object *o = json_tokener_parse(text);
    assert_non_null(o);
    return o;
}

/* Every optional field set, with values that are awkward for JSON. */
static void full_task(struct celery_task *t)
{
    memset(t, 0, sizeof *t);
    t->protocol = 2;
    t->id = strdup("0b6e2f41-9c3d-4e8a-b7f5-1d2c3e4f5a6b");
    t->task = strdup("app.worker.tasks.parse_run");
    t->retries = INT_MAX - 1;
    t->root_id = strdup("r-1");
    t->parent_id = strdup("p-1");
    t->group = strdup("g-1");
    t->origin = strdup("gen7629@host");
    t->argsrepr = strdup("()");
    t->kwargsrepr = strdup("{'run_id': 42, 'q': \"\\\"\"}");
    t->shadow = strdup("parse \xc3\xa9 42");
    t->has_eta = true;
    t->eta = 1795554000.123456;
    t->has_expires = true;
    t->expires = 1795573800.0;
    t->has_time_limit = true;
    t->time_limit = 3600;
    t->has_soft_time_limit = true;
    t->soft_time_limit = 3300.5;
    t->has_group_index = true;
    t->group_index = LONG_MAX;
    t->args = parse("[]");
    t->kwargs = parse("{\"run_id\": 42, \"nested\": {\"a\": [1, 2.5, null, true]}}");
    t->embed = parse("{\"callbacks\": null, \"errbacks\": null, \"chain\": null, \"chord\": null}");
    t->wire_body = parse("[[], {\"run_id\": 42, \"when\": {\"__type__\": \"datetime\", "
                         "\"__value__\": \"2026-11-24T21:00:00\"}}, {}]");
    t->reply_to = strdup("1f3a9c2e-0d4b-3b6e-9b8a-7f5e4d3c2b1a");
    t->correlation_id = strdup("0b6e2f41-9c3d-4e8a-b7f5-1d2c3e4f5a6b");
    t->ignore_result = true;
    t->content_type = strdup("application/json");
}

static void test_every_field_round_trips(void **state)
{
    (void)state;
    struct celery_task t;
    full_task(&t);
    round_trip(&t);
    /* and the other values of each flag and bound */
    t.protocol = 1;
    t.retries = 0;
    t.ignore_result = false;
    t.group_index = LONG_MIN;
    t.eta = -0.5;
    round_trip(&t);
    celery_task_free(&t);
}

static void test_absent_optionals_stay_absent(void **state)
{
    (void)state;
    struct celery_task t;
    memset(&t, 0, sizeof t);
    t.protocol = 2;
    t.id = strdup("tid-1");
    t.task = strdup("app.worker.tasks.parse_run");
    t.args = parse("[42]");
    t.kwargs = parse("{}");
    round_trip(&t);
    celery_task_free(&t);
}

static void test_to_json_does_not_change_the_task(void **state)
{
    (void)state;
    struct celery_task t;
    full_task(&t);
    json_object *o = celery_task_to_json(&t);
    json_object_put(o); /* t's own json values must survive the object's release */
    assert_int_equal(json_object_get_int(json_object_object_get(t.kwargs, "run_id")), 42);
    assert_string_equal(t.id, "0b6e2f41-9c3d-4e8a-b7f5-1d2c3e4f5a6b");
    celery_task_free(&t);
}

/* from_json on a valid task with one field replaced by `value` (JSON text) or removed. */
static void assert_refused(const char *field, const char *value, const char *why)
{
    struct celery_task t;
    full_task(&t);
    json_object *o = celery_task_to_json(&t);
    celery_task_free(&t);
    if (value) /* "null" parses to NULL, which json-c stores as a JSON null */
        json_object_object_add(o, field, json_tokener_parse(value));
    else
        json_object_object_del(o, field);
    struct celery_task back;
    struct cw_error err;
    memset(&err, 0, sizeof err);
    int rc = celery_task_from_json(o, &back, &err);
    json_object_put(o);
    celery_task_free(&back);
    if (rc != -1)
        fail_msg("%s = %s was accepted", field, value ? value : "(absent)");
    assert_int_equal(err.cls, CW_ERR_INTERNAL);
    if (!strstr(err.message, why))
        fail_msg("%s = %s: error \"%s\" does not say \"%s\"", field, value ? value : "(absent)",
                 err.message, why);
}

static void test_not_an_object(void **state)
{
    (void)state;
    static const char *const texts[] = {"[]", "42", "\"task\"", "null"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        json_object *o = json_tokener_parse(texts[i]);
        struct celery_task back;
        struct cw_error err;
        assert_int_equal(celery_task_from_json(o, &back, &err), -1);
        assert_int_equal(err.cls, CW_ERR_INTERNAL);
        assert_non_null(strstr(err.message, "not a JSON object"));
        celery_task_free(&back);
        json_object_put(o);
    }
}

static void test_missing_fields(void **state)
{
    (void)state;
    assert_refused("id", NULL, "no id or name");
    assert_refused("task", NULL, "no id or name");
    assert_refused("protocol", NULL, "no protocol");
    assert_refused("args", NULL, "args is not an array");
    assert_refused("kwargs", NULL, "kwargs not an object");
}

static void test_wrong_types(void **state)
{
    (void)state;
    assert_refused("protocol", "3", "protocol");
    assert_refused("protocol", "0", "protocol");
    assert_refused("protocol", "\"2\"", "protocol");
    assert_refused("protocol", "2.0", "protocol");
    assert_refused("retries", "-1", "retries");
    assert_refused("retries", "2147483647", "retries"); /* INT_MAX: retries + 1 overflows */
    assert_refused("retries", "\"0\"", "retries");
    assert_refused("group_index", "\"3\"", "group_index");
    assert_refused("args", "{}", "args is not an array");
    assert_refused("args", "null", "args is not an array");
    assert_refused("kwargs", "[]", "kwargs not an object");
    assert_refused("id", "42", "id is not a string");
    assert_refused("reply_to", "[]", "reply_to is not a string");
    assert_refused("content_type", "null", "content_type is not a string");
    assert_refused("eta", "\"2026-11-24\"", "eta is not a number");
    assert_refused("time_limit", "true", "time_limit is not a number");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_captured_message_round_trip),
        cmocka_unit_test(test_every_field_round_trips),
        cmocka_unit_test(test_absent_optionals_stay_absent),
        cmocka_unit_test(test_to_json_does_not_change_the_task),
        cmocka_unit_test(test_not_an_object),
        cmocka_unit_test(test_missing_fields),
        cmocka_unit_test(test_wrong_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
