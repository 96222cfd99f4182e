/* Unit tests for the new-task encoder (celery_encode): byte for byte what Celery 5.2
 * publishes for send_task("app.worker.tasks.parse_run", args=[42]), and what the
 * worker's own decoder reads back. */
#include "celery/encode.h"
#include "celery/args.h"
#include "celery/message.h"

#include "mq/json.h"

#include <amqp_framing.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

/* The same capture as test_celery_message.c's real_positional. */
#include "fixtures/celery_capture.h"

#define TASK_ID  "a3c9d0e2-5b7f-4c1a-8e6d-2f4b9a7c1e30"
#define REPLY_TO "1f3a9c2e-0d4b-3b6e-9b8a-7f5e4d3c2b1a"

static void encode_42(const char *reply_to, struct celery_outgoing *o)
{
    json_object *args = json_tokener_parse("[42]");
    struct celery_new_task t = {
        .task = "app.worker.tasks.parse_run",
        .id = TASK_ID,
        .args = args,
        .argsrepr = "[42]",
        .kwargsrepr = "{}",
        .origin = "gen7629@host",
        .reply_to = reply_to,
    };
    struct cw_error err;

    cw_error_clear(&err);
    if (celery_message_encode_new(&t, o, &err) != 0)
        fail_msg("encode failed: %s", err.message);
    json_object_put(args);
}

static void test_new_task_is_celerys_message(void **state)
{
    static unsigned char wire[4096];
    char body[1024];
    amqp_bytes_t enc = {sizeof(wire), wire};
    struct celery_outgoing o;
    json_object *ours, *theirs;
    int n;

    (void)state;
    encode_42(REPLY_TO, &o);
    n = amqp_encode_properties(AMQP_BASIC_CLASS, &o.props, enc);
    assert_int_equal(n, sizeof(real_positional_props));
    assert_memory_equal(wire, real_positional_props, sizeof(real_positional_props));
    /* the body: the same JSON (kombu puts spaces after separators, we do not) */
    assert_true(o.body.len < sizeof(body));
    memcpy(body, o.body.bytes, o.body.len);
    body[o.body.len] = '\0';
    assert_null(strchr(body, ' '));
    ours = json_tokener_parse(body);
    theirs = json_tokener_parse(real_positional_body);
    assert_true(json_object_equal(ours, theirs));
    json_object_put(ours);
    json_object_put(theirs);
    celery_outgoing_free(&o);
}

static void test_new_task_decodes(void **state)
{
    struct celery_outgoing o;
    struct celery_task t;
    struct cw_error err;
    long run_id = 0;

    (void)state;
    encode_42(NULL, &o);
    assert_false(o.props._flags & AMQP_BASIC_REPLY_TO_FLAG);
    cw_error_clear(&err);
    assert_int_equal(celery_message_decode(&o.props, o.body.bytes, o.body.len, &t, &err), 0);
    assert_int_equal(t.protocol, 2);
    assert_string_equal(t.id, TASK_ID);
    assert_string_equal(t.root_id, TASK_ID);
    assert_null(t.parent_id);
    assert_int_equal(t.retries, 0);
    assert_false(t.has_eta);
    assert_false(t.has_expires);
    assert_false(t.has_time_limit);
    assert_string_equal(t.correlation_id, TASK_ID);
    assert_int_equal(celery_task_int_arg(&t, 0, "run_id", &run_id, &err), 0);
    assert_int_equal(run_id, 42);
    celery_task_free(&t);
    celery_outgoing_free(&o);
}

static void test_new_task_refusals(void **state)
{
    struct celery_new_task t = {.task = "x", .id = NULL};
    struct celery_outgoing o;
    struct cw_error err;

    (void)state;
    cw_error_clear(&err);
    assert_int_equal(celery_message_encode_new(&t, &o, &err), -1);
    assert_int_equal(err.cls, CW_ERR_INTERNAL);
    celery_outgoing_free(&o);
    t.id = "id-1";
    t.task = "";
    assert_int_equal(celery_message_encode_new(&t, &o, &err), -1);
    celery_outgoing_free(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_task_is_celerys_message),
        cmocka_unit_test(test_new_task_decodes),
        cmocka_unit_test(test_new_task_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
