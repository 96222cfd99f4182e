/* Unit tests for celery_rpc: result messages compared with what a Celery 5.2.6 worker with
 * result_backend="rpc://" published on this machine (captured from the client's side). */
#include "celery/rpc.h"

#include <amqp_framing.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define TID     "6fc69545-0da3-480c-b651-6910e8144151"
#define REPLY   "9352958f-8003-3054-b999-ba50e3aa4849"
#define NOW     1795559591.803544
#define NOW_ISO "2026-11-24T22:33:11.803544"

/* py-amqp 5.1.1 serialisation of the rpc backend's properties for task TID:
 * content_type application/json, content_encoding utf-8, application_headers {},
 * delivery_mode 1, priority 0, correlation_id TID. */
static const unsigned char celery_result_props[] = {
    0xfc, 0x00, 0x10, 0x61, 0x70, 0x70, 0x6c, 0x69, 0x63, 0x61, 0x74, 0x69, 0x6f, 0x6e,
    0x2f, 0x6a, 0x73, 0x6f, 0x6e, 0x05, 0x75, 0x74, 0x66, 0x2d, 0x38, 0x00, 0x00, 0x00,
    0x00, 0x01, 0x00, 0x24, 0x36, 0x66, 0x63, 0x36, 0x39, 0x35, 0x34, 0x35, 0x2d, 0x30,
    0x64, 0x61, 0x33, 0x2d, 0x34, 0x38, 0x30, 0x63, 0x2d, 0x62, 0x36, 0x35, 0x31, 0x2d,
    0x36, 0x39, 0x31, 0x30, 0x65, 0x38, 0x31, 0x34, 0x34, 0x31, 0x35, 0x31,
};

static struct celery_task task_(void)
{
    struct celery_task t = {0};
    t.id = TID;
    t.task = "cap.ok";
    t.reply_to = REPLY;
    t.correlation_id = TID;
    return t;
}

static void assert_body(const struct celery_rpc_msg *m, const char *expected)
{
    char *s = strndup(m->out.body.bytes, m->out.body.len);
    assert_string_equal(s, expected);
    free(s);
}

static void test_success_is_celerys(void **state)
{
    static unsigned char wire[512];
    amqp_bytes_t enc = {sizeof wire, wire};
    struct celery_task t = task_();
    struct celery_rpc_msg m;
    struct cw_error err;
    json_object *result =
        json_tokener_parse("{\"run_id\": 7, \"status\": \"completed\", \"f\": 1.5}");
    (void)state;
    assert_int_equal(celery_rpc_success(&t, result, NOW, &m, &err), 0);
    assert_string_equal(m.routing_key, REPLY);
    /* Celery: {"task_id": TID, "status": "SUCCESS", "result": {...}, "traceback": null,
     * "children": []} — plus date_done, see celery_rpc.h */
    assert_body(&m, "{\"task_id\":\"" TID "\",\"status\":\"SUCCESS\",\"result\":{\"run_id\":7,"
                    "\"status\":\"completed\",\"f\":1.5},\"traceback\":null,\"children\":[],"
                    "\"date_done\":\"" NOW_ISO "\"}");
    assert_int_equal(amqp_encode_properties(AMQP_BASIC_CLASS, &m.out.props, enc),
                     sizeof celery_result_props);
    assert_memory_equal(wire, celery_result_props, sizeof celery_result_props);
    celery_rpc_msg_free(&m);
    json_object_put(result);
}

static void test_started(void **state)
{
    struct celery_task t = task_();
    struct celery_rpc_msg m;
    struct cw_error err;
    (void)state;
    assert_int_equal(celery_rpc_started(&t, "cworker@h1", 6783, NOW, &m, &err), 0);
    assert_body(&m, "{\"task_id\":\"" TID "\",\"status\":\"STARTED\",\"result\":{\"pid\":6783,"
                    "\"hostname\":\"cworker@h1\"},\"traceback\":null,\"children\":[],"
                    "\"date_done\":null}");
    celery_rpc_msg_free(&m);
}

static void test_failure_and_retry(void **state)
{
    struct celery_task t = task_();
    struct celery_rpc_msg m;
    struct cw_error err;
    struct celery_exception exc = {"PermanentError", "capapp", "No files found for run 8"};
    struct celery_exception io = {"OSError", "builtins", "storage unreadable"};
    (void)state;
    assert_int_equal(celery_rpc_failure(&t, &exc, "Traceback...\n", NOW, &m, &err), 0);
    assert_body(&m, "{\"task_id\":\"" TID "\",\"status\":\"FAILURE\",\"result\":{\"exc_type\":"
                    "\"PermanentError\",\"exc_message\":[\"No files found for run 8\"],"
                    "\"exc_module\":\"capapp\"},\"traceback\":\"Traceback...\\n\","
                    "\"children\":[],\"date_done\":\"" NOW_ISO "\"}");
    celery_rpc_msg_free(&m);
    /* Celery's RETRY: the cause as result, the retry's own AsyncResult as child */
    assert_int_equal(celery_rpc_retry(&t, &io, NULL, NOW, &m, &err), 0);
    assert_body(&m, "{\"task_id\":\"" TID "\",\"status\":\"RETRY\",\"result\":{\"exc_type\":"
                    "\"OSError\",\"exc_message\":[\"storage unreadable\"],\"exc_module\":"
                    "\"builtins\"},\"traceback\":null,\"children\":[[[\"" TID "\",null],null]],"
                    "\"date_done\":null}");
    celery_rpc_msg_free(&m);
}

static void test_not_registered_is_celerys(void **state)
{
    struct celery_task t = task_();
    struct celery_rpc_msg m;
    struct cw_error err;
    (void)state;
    t.task = "cap.nosuch";
    assert_int_equal(celery_rpc_not_registered(&t, NOW, &m, &err), 0);
    /* Celery's consumer.on_unknown_task: exactly this result, no traceback */
    assert_body(&m, "{\"task_id\":\"" TID "\",\"status\":\"FAILURE\",\"result\":{\"exc_type\":"
                    "\"NotRegistered\",\"exc_message\":[\"cap.nosuch\"],\"exc_module\":"
                    "\"celery.exceptions\"},\"traceback\":null,\"children\":[],"
                    "\"date_done\":\"" NOW_ISO "\"}");
    celery_rpc_msg_free(&m);
}

static void test_revoked(void **state)
{
    struct celery_task t = task_();
    struct celery_rpc_msg m;
    struct cw_error err;
    (void)state;
    assert_int_equal(celery_rpc_revoked(&t, "expired", 1795559591.0, &m, &err), 0);
    assert_body(&m, "{\"task_id\":\"" TID "\",\"status\":\"REVOKED\",\"result\":{\"exc_type\":"
                    "\"TaskRevokedError\",\"exc_message\":[\"expired\"],\"exc_module\":"
                    "\"celery.exceptions\"},\"traceback\":null,\"children\":[],"
                    "\"date_done\":\"2026-11-24T22:33:11\"}"); /* isoformat: no .000000 */
    celery_rpc_msg_free(&m);
}

static void test_correlation_defaults_to_task_id(void **state)
{
    struct celery_task t = task_();
    struct celery_rpc_msg m;
    struct cw_error err;
    char other[] = "corr-1";
    (void)state;
    t.correlation_id = NULL;
    assert_int_equal(celery_rpc_success(&t, NULL, NOW, &m, &err), 0);
    assert_int_equal(m.out.props.correlation_id.len, strlen(TID));
    assert_memory_equal(m.out.props.correlation_id.bytes, TID, strlen(TID));
    assert_true(m.out.props._flags & AMQP_BASIC_CORRELATION_ID_FLAG);
    celery_rpc_msg_free(&m);
    t.correlation_id = other;
    assert_int_equal(celery_rpc_success(&t, NULL, NOW, &m, &err), 0);
    other[0] = 'X'; /* the message keeps its own copy */
    assert_memory_equal(m.out.props.correlation_id.bytes, "corr-1", 6);
    celery_rpc_msg_free(&m);
}

static void test_wanted_and_refusals(void **state)
{
    struct celery_task t = task_();
    struct celery_rpc_msg m;
    struct cw_error err;
    (void)state;
    assert_true(celery_rpc_wanted(&t));
    t.ignore_result = true;
    assert_false(celery_rpc_wanted(&t));
    t.ignore_result = false;
    t.reply_to = NULL;
    assert_false(celery_rpc_wanted(&t));
    assert_false(celery_rpc_wanted(NULL));
    assert_int_equal(celery_rpc_success(&t, NULL, NOW, &m, &err), -1);
    assert_int_equal(err.cls, CW_ERR_INTERNAL);
    celery_rpc_msg_free(&m);
    assert_int_equal(celery_rpc_not_registered(NULL, NOW, &m, &err), -1);
    celery_rpc_msg_free(&m);
}

static void test_exception_from_error(void **state)
{
    struct cw_error e;
    struct celery_exception x;
    (void)state;
    CW_FAIL(&e, CW_ERR_PERMANENT, "No files found for run %d", 8);
    celery_rpc_exception_from_error(&e, &x);
    assert_string_equal(x.type, "PermanentError");
    assert_string_equal(x.module, "cworker.errors");
    assert_string_equal(x.message, "No files found for run 8");
    CW_FAIL(&e, CW_ERR_TRANSIENT, "storage unreadable");
    celery_rpc_exception_from_error(&e, &x);
    assert_string_equal(x.type, "TransientError");
    CW_FAIL(&e, CW_ERR_TIMEOUT, "Task exceeded time limit");
    celery_rpc_exception_from_error(&e, &x);
    assert_string_equal(x.type, "TimeLimitExceeded");
    assert_string_equal(x.module, "celery.exceptions");
    CW_FAIL(&e, CW_ERR_INTERNAL, "bug");
    celery_rpc_exception_from_error(&e, &x);
    assert_string_equal(x.type, "InternalError");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_success_is_celerys),
        cmocka_unit_test(test_started),
        cmocka_unit_test(test_failure_and_retry),
        cmocka_unit_test(test_not_registered_is_celerys),
        cmocka_unit_test(test_revoked),
        cmocka_unit_test(test_correlation_defaults_to_task_id),
        cmocka_unit_test(test_wanted_and_refusals),
        cmocka_unit_test(test_exception_from_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
