/* Unit tests for celery_events: event bodies, properties and routing keys as a Celery 5.2.6
 * worker publishes them (captured on this machine from `celery worker -E` on the celeryev
 * exchange). The Python text forms inside them are tested in test_celery_pyrepr.c. */
#include "celery/events.h"

#include <amqp_framing.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

/* py-amqp 5.1.1: Message(content_type='application/json', content_encoding='utf-8',
 * priority=0, delivery_mode=1, application_headers={'hostname': 'cworker@h1'})
 * ._serialize_properties() — what EventDispatcher's producer sends. */
static const unsigned char celery_event_props[] = {
    0xf8, 0x00, 0x10, 0x61, 0x70, 0x70, 0x6c, 0x69, 0x63, 0x61, 0x74, 0x69, 0x6f, 0x6e,
    0x2f, 0x6a, 0x73, 0x6f, 0x6e, 0x05, 0x75, 0x74, 0x66, 0x2d, 0x38, 0x00, 0x00, 0x00,
    0x18, 0x08, 0x68, 0x6f, 0x73, 0x74, 0x6e, 0x61, 0x6d, 0x65, 0x53, 0x00, 0x00, 0x00,
    0x0a, 0x63, 0x77, 0x6f, 0x72, 0x6b, 0x65, 0x72, 0x40, 0x68, 0x31, 0x01, 0x00,
};

#define NODE "cworker@h1"
#define TID  "caeeaf97-720e-469c-b470-66407884ddb2"
#define NOW  1795559591.5212848

static struct celery_clock clock_;
static struct celery_worker_identity ident;

static int setup(void **state)
{
    (void)state;
    clock_.value = 100;
    ident = (struct celery_worker_identity){NODE, 6780, "cworker", "0.1.0", "Linux", 0, &clock_};
    return 0;
}

static char *body_of(const struct celery_event_msg *m)
{
    char *s = malloc(m->out.body.len + 1);
    memcpy(s, m->out.body.bytes, m->out.body.len);
    s[m->out.body.len] = '\0';
    return s;
}

static void assert_body(const struct celery_event_msg *m, const char *expected)
{
    char *s = body_of(m);
    assert_string_equal(s, expected);
    free(s);
}

static json_object *parsed_body(const struct celery_event_msg *m)
{
    char *s = body_of(m);
    json_object *j = json_tokener_parse(s);
    free(s);
    assert_non_null(j);
    return j;
}

static void assert_props_are_celerys(const struct celery_event_msg *m)
{
    static unsigned char wire[1024];
    amqp_bytes_t enc = {sizeof wire, wire};
    amqp_basic_properties_t props = m->out.props;
    int n = amqp_encode_properties(AMQP_BASIC_CLASS, &props, enc);
    assert_int_equal(n, sizeof celery_event_props);
    assert_memory_equal(wire, celery_event_props, sizeof celery_event_props);
}

static void test_clock(void **state)
{
    struct celery_clock c = {0};
    (void)state;
    assert_int_equal(celery_clock_forward(&c), 1);
    celery_clock_adjust(&c, 10);
    assert_int_equal(c.value, 11);
    celery_clock_adjust(&c, 3); /* an older clock still moves ours on */
    assert_int_equal(c.value, 12);
}

static void test_utcoffset_is_celerys(void **state)
{
    const char *old = getenv("TZ");
    char *saved = old ? strdup(old) : NULL;
    (void)state;
    setenv("TZ", "UTC0", 1);
    tzset();
    assert_int_equal(celery_events_utcoffset(1795559591), 0);
    setenv("TZ", "EST5", 1); /* 5 h west */
    tzset();
    assert_int_equal(celery_events_utcoffset(1795559591), 5);
    setenv("TZ", "IST-5:30", 1); /* time.timezone -19800 // 3600 == -6 */
    tzset();
    assert_int_equal(celery_events_utcoffset(1795559591), -6);
    if (saved)
        setenv("TZ", saved, 1);
    else
        unsetenv("TZ");
    tzset();
    free(saved);
}

static void test_heartbeat_is_celerys(void **state)
{
    struct celery_worker_load load = {CELERY_EVENTS_HEARTBEAT_FREQ, 0, 4, {0.821, 0.82, 0.6}, 0};
    struct celery_event_msg m;
    struct cw_error err;
    (void)state;
    assert_int_equal(celery_events_worker(&ident, CELERY_WORKER_HEARTBEAT, &load, NOW, &m, &err),
                     0);
    assert_string_equal(m.routing_key, "worker.heartbeat");
    /* Celery: {"hostname": "capworker@h1", "utcoffset": 0, "pid": 6780, "clock": 101,
     * "freq": 2.0, "active": 0, "processed": 4, "loadavg": [0.83, 0.82, 0.61], "sw_ident":
     * "py-celery", "sw_ver": "5.2.6", "sw_sys": "Linux", "timestamp": 1795559591.5212848,
     * "type": "worker-heartbeat"} (loadavg rounded up to hundredths) */
    assert_body(&m, "{\"hostname\":\"cworker@h1\",\"utcoffset\":0,\"pid\":6780,\"clock\":101,"
                    "\"freq\":2.0,\"active\":0,\"processed\":4,\"loadavg\":[0.83,0.82,0.6],"
                    "\"sw_ident\":\"cworker\",\"sw_ver\":\"0.1.0\",\"sw_sys\":\"Linux\","
                    "\"timestamp\":1795559591.5212848,\"type\":\"worker-heartbeat\"}");
    assert_props_are_celerys(&m);
    assert_int_equal(clock_.value, 101);
    celery_event_msg_free(&m);
}

/* cworker's own field: the executors, after Celery's fields (receivers ignore it). */
static void test_heartbeat_carries_concurrency_when_set(void **state)
{
    struct celery_worker_load load = {2.0, 1, 4, {0, 0, 0}, 8};
    struct celery_event_msg m;
    struct cw_error err;
    json_object *b, *v;
    (void)state;
    assert_int_equal(celery_events_worker(&ident, CELERY_WORKER_HEARTBEAT, &load, NOW, &m, &err),
                     0);
    b = parsed_body(&m);
    assert_true(json_object_object_get_ex(b, "concurrency", &v));
    assert_int_equal(json_object_get_int(v), 8);
    assert_true(json_object_object_get_ex(b, "active", &v));
    assert_int_equal(json_object_get_int(v), 1);
    json_object_put(b);
    celery_event_msg_free(&m);
}

static void test_receiver_queue_arguments_are_celerys(void **state)
{
    amqp_pool_t pool;
    amqp_table_t t;
    struct cw_error err;
    (void)state;
    init_amqp_pool(&pool, 256);
    assert_int_equal(celery_events_receiver_arguments(&pool, &t, &err), 0);
    assert_int_equal(t.num_entries, 2);
    for (int i = 0; i < t.num_entries; i++) {
        amqp_table_entry_t *e = &t.entries[i];
        bool ttl = e->key.len == 13 && memcmp(e->key.bytes, "x-message-ttl", 13) == 0;
        bool expires = e->key.len == 9 && memcmp(e->key.bytes, "x-expires", 9) == 0;
        assert_true(ttl || expires);
        int64_t ms =
            e->value.kind == AMQP_FIELD_KIND_I64 ? e->value.value.i64 : (int64_t)e->value.value.i32;
        assert_int_equal(ms, ttl ? 5000 : 60000); /* event_queue_ttl 5.0, expires 60.0 */
    }
    empty_amqp_pool(&pool);
}

static void test_worker_online_offline(void **state)
{
    struct celery_worker_load load = {2.0, 1, 17, {0, 0, 0}, 0};
    struct celery_event_msg m;
    struct cw_error err;
    json_object *b, *v;
    (void)state;
    assert_int_equal(celery_events_worker(&ident, CELERY_WORKER_ONLINE, &load, NOW, &m, &err), 0);
    assert_string_equal(m.routing_key, "worker.online");
    b = parsed_body(&m);
    assert_true(json_object_object_get_ex(b, "type", &v));
    assert_string_equal(json_object_get_string(v), "worker-online");
    assert_true(json_object_object_get_ex(b, "processed", &v));
    assert_int_equal(json_object_get_int(v), 17);
    json_object_put(b);
    celery_event_msg_free(&m);
    assert_int_equal(celery_events_worker(&ident, CELERY_WORKER_OFFLINE, &load, NOW, &m, &err), 0);
    assert_string_equal(m.routing_key, "worker.offline");
    assert_props_are_celerys(&m);
    celery_event_msg_free(&m);
}

static void test_task_received_is_celerys(void **state)
{
    struct celery_task t = {0};
    struct celery_event_msg m;
    struct cw_error err;
    (void)state;
    t.id = TID;
    t.task = "cap.ok";
    t.argsrepr = "[7]";
    t.kwargsrepr = "{}";
    t.root_id = TID;
    assert_int_equal(celery_events_task_received(&ident, &t, 1795559591.8035443, &m, &err), 0);
    assert_string_equal(m.routing_key, "task.received");
    /* Celery: {"hostname": ..., "utcoffset": 0, "pid": ..., "clock": 117, "uuid": ...,
     * "name": "cap.ok", "args": "[7]", "kwargs": "{}", "root_id": ..., "parent_id": null,
     * "retries": 0, "eta": null, "expires": null, "timestamp": 1795559591.8035443,
     * "type": "task-received"} */
    assert_body(&m, "{\"hostname\":\"cworker@h1\",\"utcoffset\":0,\"pid\":6780,\"clock\":101,"
                    "\"uuid\":\"" TID "\",\"name\":\"cap.ok\",\"args\":\"[7]\",\"kwargs\":\"{}\","
                    "\"root_id\":\"" TID "\",\"parent_id\":null,\"retries\":0,\"eta\":null,"
                    "\"expires\":null,\"timestamp\":1795559591.8035443,"
                    "\"type\":\"task-received\"}");
    assert_props_are_celerys(&m);
    celery_event_msg_free(&m);
}

static void test_task_received_retry_and_protocol1(void **state)
{
    struct celery_task t = {0};
    struct celery_event_msg m;
    struct cw_error err;
    json_object *b, *v;
    (void)state;
    t.id = TID;
    t.task = "cap.retry";
    t.retries = 1;
    t.parent_id = TID;
    t.has_eta = true;
    t.eta = 1795559592.815201;
    t.args = json_tokener_parse("[9, \"x\"]"); /* protocol 1: no argsrepr */
    t.kwargs = json_tokener_parse("{\"run_id\": 42}");
    assert_int_equal(celery_events_task_received(&ident, &t, NOW, &m, &err), 0);
    b = parsed_body(&m);
    assert_true(json_object_object_get_ex(b, "args", &v));
    assert_string_equal(json_object_get_string(v), "[9, 'x']");
    assert_true(json_object_object_get_ex(b, "kwargs", &v));
    assert_string_equal(json_object_get_string(v), "{'run_id': 42}");
    assert_true(json_object_object_get_ex(b, "eta", &v));
    assert_string_equal(json_object_get_string(v), "2026-11-24T22:33:12.815201+00:00");
    assert_true(json_object_object_get_ex(b, "retries", &v));
    assert_int_equal(json_object_get_int(v), 1);
    json_object_put(b);
    json_object_put(t.args);
    json_object_put(t.kwargs);
    celery_event_msg_free(&m);
}

static void test_task_started_succeeded(void **state)
{
    struct celery_event_msg m;
    struct cw_error err;
    json_object *result =
        json_tokener_parse("{\"run_id\": 7, \"status\": \"completed\", \"f\": 1.5, \"s\": "
                           "\"it's\", \"n\": null, \"b\": true}");
    (void)state;
    assert_int_equal(celery_events_task_started(&ident, TID, 1795559591.806119, &m, &err), 0);
    assert_string_equal(m.routing_key, "task.started");
    assert_body(&m, "{\"hostname\":\"cworker@h1\",\"utcoffset\":0,\"pid\":6780,\"clock\":101,"
                    "\"uuid\":\"" TID "\",\"timestamp\":1795559591.806119,"
                    "\"type\":\"task-started\"}");
    celery_event_msg_free(&m);
    assert_int_equal(celery_events_task_succeeded(&ident, TID, result, 0.0009193760001835471,
                                                  1795559591.8077931, &m, &err),
                     0);
    assert_string_equal(m.routing_key, "task.succeeded");
    /* Celery's task-succeeded of the same return value, byte for byte. */
    assert_body(&m, "{\"hostname\":\"cworker@h1\",\"utcoffset\":0,\"pid\":6780,\"clock\":102,"
                    "\"uuid\":\"" TID "\",\"result\":\"{'run_id': 7, 'status': 'completed', "
                    "'f': 1.5, 's': 'it\\\\'s', 'n': None, 'b': True}\","
                    "\"runtime\":0.0009193760001835471,\"timestamp\":1795559591.8077931,"
                    "\"type\":\"task-succeeded\"}");
    celery_event_msg_free(&m);
    json_object_put(result);
}

static void test_task_failed_retried(void **state)
{
    struct celery_event_msg m;
    struct cw_error err;
    json_object *b, *v;
    char *exc = celery_pyrepr_exception("PermanentError", "No files found for run 8");
    (void)state;
    assert_string_equal(exc, "PermanentError('No files found for run 8')");
    assert_int_equal(celery_events_task_failed(&ident, TID, exc, "Traceback ...\n", NOW, &m, &err),
                     0);
    assert_string_equal(m.routing_key, "task.failed");
    b = parsed_body(&m);
    assert_true(json_object_object_get_ex(b, "exception", &v));
    assert_string_equal(json_object_get_string(v), exc);
    assert_true(json_object_object_get_ex(b, "traceback", &v));
    assert_string_equal(json_object_get_string(v), "Traceback ...\n");
    json_object_put(b);
    celery_event_msg_free(&m);
    /* Celery's unknown-task event: {"uuid", "exception": "NotRegistered('cap.nosuch')"} */
    assert_int_equal(celery_events_task_failed(&ident, TID, "NotRegistered('cap.nosuch')", NULL,
                                               1795559593.484774, &m, &err),
                     0);
    assert_body(&m, "{\"hostname\":\"cworker@h1\",\"utcoffset\":0,\"pid\":6780,\"clock\":102,"
                    "\"uuid\":\"" TID "\",\"exception\":\"NotRegistered('cap.nosuch')\","
                    "\"timestamp\":1795559593.484774,\"type\":\"task-failed\"}");
    celery_event_msg_free(&m);
    assert_int_equal(celery_events_task_retried(&ident, TID, exc, "tb", NOW, &m, &err), 0);
    assert_string_equal(m.routing_key, "task.retried");
    celery_event_msg_free(&m);
    free(exc);
}

static void test_task_rejected_revoked(void **state)
{
    struct celery_event_msg m;
    struct cw_error err;
    (void)state;
    assert_int_equal(celery_events_task_rejected(&ident, TID, true, NOW, &m, &err), 0);
    assert_string_equal(m.routing_key, "task.rejected");
    assert_body(&m, "{\"hostname\":\"cworker@h1\",\"utcoffset\":0,\"pid\":6780,\"clock\":101,"
                    "\"uuid\":\"" TID "\",\"requeue\":true,"
                    "\"timestamp\":1795559591.5212848,\"type\":\"task-rejected\"}");
    celery_event_msg_free(&m);
    assert_int_equal(celery_events_task_revoked(&ident, TID, false, 0, true, NOW, &m, &err), 0);
    assert_string_equal(m.routing_key, "task.revoked");
    assert_body(&m, "{\"hostname\":\"cworker@h1\",\"utcoffset\":0,\"pid\":6780,\"clock\":102,"
                    "\"uuid\":\"" TID "\",\"terminated\":false,\"signum\":null,\"expired\":true,"
                    "\"timestamp\":1795559591.5212848,\"type\":\"task-revoked\"}");
    celery_event_msg_free(&m);
    assert_int_equal(celery_events_task_revoked(&ident, TID, true, SIGKILL, false, NOW, &m, &err),
                     0);
    char *s = body_of(&m);
    assert_non_null(strstr(s, "\"terminated\":true,\"signum\":9,\"expired\":false"));
    free(s);
    celery_event_msg_free(&m);
}

static void test_refusals_leave_freeable_messages(void **state)
{
    struct celery_worker_identity nobody = ident;
    struct celery_worker_load load = {2.0, 0, 0, {0, 0, 0}, 0};
    struct celery_event_msg m;
    struct cw_error err;
    (void)state;
    nobody.hostname = NULL;
    assert_int_equal(celery_events_worker(&nobody, CELERY_WORKER_HEARTBEAT, &load, NOW, &m, &err),
                     -1);
    assert_int_equal(err.cls, CW_ERR_INTERNAL);
    celery_event_msg_free(&m);
    assert_int_equal(celery_events_task_started(&ident, "", NOW, &m, &err), -1);
    celery_event_msg_free(&m);
    assert_int_equal(
        celery_events_worker(&ident, (enum celery_worker_event)7, &load, NOW, &m, &err), -1);
    celery_event_msg_free(&m);
    assert_int_equal(clock_.value, 100); /* refused events do not tick the clock */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clock),
        cmocka_unit_test(test_utcoffset_is_celerys),
        cmocka_unit_test_setup(test_heartbeat_is_celerys, setup),
        cmocka_unit_test_setup(test_worker_online_offline, setup),
        cmocka_unit_test_setup(test_heartbeat_carries_concurrency_when_set, setup),
        cmocka_unit_test(test_receiver_queue_arguments_are_celerys),
        cmocka_unit_test_setup(test_task_received_is_celerys, setup),
        cmocka_unit_test_setup(test_task_received_retry_and_protocol1, setup),
        cmocka_unit_test_setup(test_task_started_succeeded, setup),
        cmocka_unit_test_setup(test_task_failed_retried, setup),
        cmocka_unit_test_setup(test_task_rejected_revoked, setup),
        cmocka_unit_test_setup(test_refusals_leave_freeable_messages, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
