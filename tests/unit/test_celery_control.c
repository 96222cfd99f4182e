/* Unit tests for celery_control: real pidbox requests (what Celery 5.2.6's app.control
 * publishes, captured by patching kombu's Producer._publish, properties serialised by
 * py-amqp 5.1.1), node selection, and replies compared with a Celery 5.2.6 worker's
 * (captured on this machine with `celery inspect`/`control` against `celery worker`). */
#include "celery/control.h"

#include <amqp_framing.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define NODE "cworker@h1"

/* app.control.inspect(destination=['cworker@h1']).ping(): headers {'clock': 1, 'expires':
 * 1795560170.5178983}, delivery_mode 2. */
static const unsigned char ping_props[] = {
    0xf8, 0x00, 0x10, 0x61, 0x70, 0x70, 0x6c, 0x69, 0x63, 0x61, 0x74, 0x69, 0x6f, 0x6e, 0x2f,
    0x6a, 0x73, 0x6f, 0x6e, 0x05, 0x75, 0x74, 0x66, 0x2d, 0x38, 0x00, 0x00, 0x00, 0x1c, 0x05,
    0x63, 0x6c, 0x6f, 0x63, 0x6b, 0x49, 0x00, 0x00, 0x00, 0x01, 0x07, 0x65, 0x78, 0x70, 0x69,
    0x72, 0x65, 0x73, 0x64, 0x41, 0xda, 0xc1, 0x84, 0xba, 0xa1, 0x25, 0x3f, 0x02, 0x00,
};
static const char ping_body[] =
    "{\"method\": \"ping\", \"arguments\": {}, \"destination\": [\"cworker@h1\"], \"pattern\": "
    "null, \"matcher\": null, \"ticket\": \"5e71201d-c89a-4921-8799-70ca7c765546\", "
    "\"reply_to\": {\"exchange\": \"reply.celery.pidbox\", \"routing_key\": "
    "\"23cdb26b-8ae3-3283-8997-7a654595ff85\"}}";
/* app.control.inspect().active() (every node, safe=None) */
static const char active_body[] =
    "{\"method\": \"active\", \"arguments\": {\"safe\": null}, \"destination\": null, "
    "\"pattern\": null, \"matcher\": null, \"ticket\": \"5b709245-ceee-4c2f-a6fb-9a17f7fbf0e8\", "
    "\"reply_to\": {\"exchange\": \"reply.celery.pidbox\", \"routing_key\": "
    "\"8d27ce3c-4be5-39a4-ac47-5b8dbc414969\"}}";
/* app.control.revoke('t-1', terminate=True, signal='SIGKILL'): a cast, no reply_to */
static const char revoke_body[] =
    "{\"method\": \"revoke\", \"arguments\": {\"task_id\": \"t-1\", \"terminate\": true, "
    "\"signal\": \"SIGKILL\"}, \"destination\": null, \"pattern\": null, \"matcher\": null}";
/* app.control.broadcast('shutdown', destination=['cworker@h1'], reply=True) */
static const char shutdown_body[] =
    "{\"method\": \"shutdown\", \"arguments\": {}, \"destination\": [\"cworker@h1\"], "
    "\"pattern\": null, \"matcher\": null, \"ticket\": \"387e3c09-93b5-4032-b62d-6add0da9f598\", "
    "\"reply_to\": {\"exchange\": \"reply.celery.pidbox\", \"routing_key\": "
    "\"b6e9a5d7-8451-38ef-a13d-e042d2e14fcc\"}}";
/* app.control.broadcast('ping', pattern='cworker@*', matcher='glob', reply=True) */
static const char glob_body[] =
    "{\"method\": \"ping\", \"arguments\": {}, \"destination\": null, \"pattern\": "
    "\"cworker@*\", \"matcher\": \"glob\", \"ticket\": \"902807d5-889c-46c6-b8d8-e8676ec5b293\", "
    "\"reply_to\": {\"exchange\": \"reply.celery.pidbox\", \"routing_key\": "
    "\"a3cbbf5f-3fa2-3ef1-b93e-4873870bcbef\"}}";

/* py-amqp: the reply kombu's Mailbox._publish_reply sends for ticket
 * 5e71201d-c89a-4921-8799-70ca7c765546 at clock 7 (application/json, utf-8, priority 0,
 * delivery_mode 1, headers {'ticket': ..., 'clock': 7}). */
static const unsigned char celery_reply_props[] = {
    0xf8, 0x00, 0x10, 0x61, 0x70, 0x70, 0x6c, 0x69, 0x63, 0x61, 0x74, 0x69, 0x6f, 0x6e, 0x2f,
    0x6a, 0x73, 0x6f, 0x6e, 0x05, 0x75, 0x74, 0x66, 0x2d, 0x38, 0x00, 0x00, 0x00, 0x3b, 0x06,
    0x74, 0x69, 0x63, 0x6b, 0x65, 0x74, 0x53, 0x00, 0x00, 0x00, 0x24, 0x35, 0x65, 0x37, 0x31,
    0x32, 0x30, 0x31, 0x64, 0x2d, 0x63, 0x38, 0x39, 0x61, 0x2d, 0x34, 0x39, 0x32, 0x31, 0x2d,
    0x38, 0x37, 0x39, 0x39, 0x2d, 0x37, 0x30, 0x63, 0x61, 0x37, 0x63, 0x37, 0x36, 0x35, 0x35,
    0x34, 0x36, 0x05, 0x63, 0x6c, 0x6f, 0x63, 0x6b, 0x49, 0x00, 0x00, 0x00, 0x07, 0x01, 0x00,
};

/* ---- fixtures: a worker with one active, one reserved and one scheduled task ---- */

static struct celery_clock clock_;
static struct celery_task t_active, t_reserved, t_scheduled;
static struct celery_control_task tasks[3];
static const char *const registered[] = {"cap.sleep", "app.worker.tasks.parse_run",
                                         "celery.chord_unlock"};
static const char *const queues[] = {"cap.tasks"};
static const struct celery_control_revoked revoked[] = {{"abc-1", 1795559000.5}};
static const struct celery_control_count totals[] = {{"cap.sleep", 1}};
static const long pids[] = {12172};
static struct amqp_connection_info broker = {"guest", "s3cret", "127.0.0.1", "/", 5682, 0};
static struct rusage usage;
static struct celery_control_state st;

static void task(struct celery_task *t, const char *id, const char *args, const char *kwargs,
                 const char *argsrepr, const char *kwargsrepr)
{
    memset(t, 0, sizeof *t);
    t->id = (char *)id;
    t->task = "cap.sleep";
    t->args = json_tokener_parse(args);
    t->kwargs = json_tokener_parse(kwargs);
    t->argsrepr = (char *)argsrepr;
    t->kwargsrepr = (char *)kwargsrepr;
}

static int setup(void **state)
{
    (void)state;
    task(&t_active, "9066b07a-9a39-4b6a-8bb4-97c0c6f07d94", "[6]", "{\"y\": \"z\"}", "[6]",
         "{'y': 'z'}");
    task(&t_reserved, "02e67cee-8fa3-49cb-bd01-c030da5a703e", "[1]", "{}", "[1]", "{}");
    task(&t_scheduled, "6144582c-0e13-4012-8a54-c508b8a3f827", "[1]", "{}", "[1]", "{}");
    t_scheduled.has_eta = true;
    t_scheduled.eta = 1795559726.825603;
    tasks[0] = (struct celery_control_task){&t_active,          "",    "cap.tasks", 0, false,
                                            1795559696.8270912, 12172, false};
    tasks[1] = (struct celery_control_task){&t_reserved, "", "cap.tasks", 0, false, 0, 0, false};
    tasks[2] = (struct celery_control_task){&t_scheduled, "", "cap.tasks", 0, false, 0, 0, false};
    memset(&usage, 0, sizeof usage);
    usage.ru_utime.tv_usec = 254947;
    usage.ru_maxrss = 44184;
    clock_.value = 4;
    st = (struct celery_control_state){
        .nodename = NODE,
        .pid = 12162,
        .uptime = 8.4,
        .clock = &clock_,
        .sw_ver = "0.1.0",
        .task_events = false,
        .active = &tasks[0],
        .nactive = 1,
        .reserved = &tasks[1],
        .nreserved = 1,
        .scheduled = &tasks[2],
        .nscheduled = 1,
        .registered = registered,
        .nregistered = 3,
        .queues = queues,
        .nqueues = 1,
        .revoked = revoked,
        .nrevoked = 1,
        .totals = totals,
        .ntotals = 1,
        .concurrency = 1,
        .executor_pids = pids,
        .nexecutor_pids = 1,
        .prefetch_count = 5,
        .prefetch_multiplier = 1,
        .soft_time_limit = 3300,
        .time_limit = 3600,
        .broker = &broker,
        .broker_heartbeat = 30,
        .rusage = &usage,
    };
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    struct celery_task *all[] = {&t_active, &t_reserved, &t_scheduled};
    for (size_t i = 0; i < 3; i++) {
        json_object_put(all[i]->args);
        json_object_put(all[i]->kwargs);
    }
    return 0;
}

/* ---- helpers ---- */

struct props {
    amqp_pool_t pool;
    amqp_basic_properties_t *p;
};

static void real_props(struct props *m, const unsigned char *raw, size_t len)
{
    amqp_bytes_t enc = {len, (void *)raw};
    void *decoded = NULL;
    init_amqp_pool(&m->pool, 4096);
    assert_int_equal(amqp_decode_properties(AMQP_BASIC_CLASS, &m->pool, enc, &decoded), 0);
    m->p = decoded;
}

static void decode(const char *body, struct celery_control_request *r)
{
    struct cw_error err;
    if (celery_control_decode(NULL, body, strlen(body), r, &err) != 0)
        fail_msg("decode failed: %s", err.message);
}

/* Handles body and returns the reply's value for our node (new reference), or NULL when
 * nothing was replied; *out keeps the outcome for the caller to inspect and free. */
static json_object *handle(const char *body, struct celery_control_outcome *out)
{
    struct celery_control_request r;
    struct cw_error err;
    json_object *reply, *value = NULL;
    decode(body, &r);
    if (celery_control_handle(&r, &st, out, &err) != 0)
        fail_msg("handle failed: %s", err.message);
    if (out->has_reply) {
        char *text = strndup(out->reply.body.bytes, out->reply.body.len);
        reply = json_tokener_parse(text);
        free(text);
        assert_non_null(reply);
        assert_int_equal(json_object_object_length(reply), 1);
        assert_true(json_object_object_get_ex(reply, NODE, &value));
        json_object_get(value);
        json_object_put(reply);
    }
    celery_control_request_free(&r);
    return value;
}

static void assert_json(json_object *got, const char *expected)
{
    json_object *want = json_tokener_parse(expected);
    if (!json_object_equal(got, want))
        fail_msg("got      %s\nexpected %s", json_object_to_json_string(got), expected);
    json_object_put(want);
}

static char *request_with(const char *method, const char *arguments, bool reply)
{
    char *s = NULL;
    assert_true(asprintf(&s,
                         "{\"method\": \"%s\", \"arguments\": %s, \"destination\": null, "
                         "\"pattern\": null, \"matcher\": null%s}",
                         method, arguments,
                         reply ? ", \"ticket\": \"T\", \"reply_to\": {\"exchange\": "
                                 "\"reply.celery.pidbox\", \"routing_key\": \"oid\"}"
                               : "") > 0);
    return s;
}

/* The reply value of method(arguments), with outcome checks left to the caller. */
static json_object *call(const char *method, const char *arguments,
                         struct celery_control_outcome *out)
{
    char *body = request_with(method, arguments, true);
    json_object *v = handle(body, out);
    free(body);
    return v;
}

/* ---- topology ---- */

static void test_topology(void **state)
{
    char name[128];
    amqp_pool_t pool;
    amqp_table_t args;
    struct cw_error err;
    (void)state;
    celery_control_queue_name(NODE, name, sizeof name);
    assert_string_equal(name, "cworker@h1.celery.pidbox");
    init_amqp_pool(&pool, 1024);
    assert_int_equal(celery_control_queue_arguments(&pool, &args, &err), 0);
    assert_int_equal(args.num_entries, 2);
    assert_memory_equal(args.entries[0].key.bytes, "x-expires", 9);
    assert_int_equal(args.entries[0].value.kind, AMQP_FIELD_KIND_I32); /* py-amqp 'I' */
    assert_int_equal(args.entries[0].value.value.i32, 10000);
    assert_memory_equal(args.entries[1].key.bytes, "x-message-ttl", 13);
    assert_int_equal(args.entries[1].value.kind, AMQP_FIELD_KIND_I32);
    assert_int_equal(args.entries[1].value.value.i32, 300000);
    empty_amqp_pool(&pool);
    assert_string_equal(CELERY_CONTROL_EXCHANGE, "celery.pidbox");
    assert_string_equal(CELERY_CONTROL_REPLY_EXCHANGE, "reply.celery.pidbox");
}

/* ---- decoding ---- */

static void test_decode_real_ping(void **state)
{
    struct props m;
    struct celery_control_request r;
    struct cw_error err;
    (void)state;
    real_props(&m, ping_props, sizeof ping_props);
    assert_int_equal(celery_control_decode(m.p, ping_body, strlen(ping_body), &r, &err), 0);
    assert_string_equal(r.method, "ping");
    assert_int_equal(json_object_object_length(r.arguments), 0);
    assert_int_equal(json_object_array_length(r.destination), 1);
    assert_null(r.pattern);
    assert_null(r.matcher);
    assert_string_equal(r.ticket, "5e71201d-c89a-4921-8799-70ca7c765546");
    assert_string_equal(r.reply_exchange, "reply.celery.pidbox");
    assert_string_equal(r.reply_routing_key, "23cdb26b-8ae3-3283-8997-7a654595ff85");
    assert_int_equal(r.clock, 1);
    assert_true(r.expires > 1795560170.5 && r.expires < 1795560170.6);
    celery_control_request_free(&r);
    empty_amqp_pool(&m.pool);
}

static void test_decode_cast_and_arguments(void **state)
{
    struct celery_control_request r;
    json_object *v;
    (void)state;
    decode(revoke_body, &r);
    assert_string_equal(r.method, "revoke");
    assert_null(r.reply_exchange); /* a cast: nobody waits */
    assert_null(r.ticket);
    assert_null(r.destination);
    assert_true(json_object_object_get_ex(r.arguments, "signal", &v));
    assert_string_equal(json_object_get_string(v), "SIGKILL");
    celery_control_request_free(&r);
    decode(active_body, &r);
    assert_true(json_object_object_get_ex(r.arguments, "safe", &v));
    assert_null(v);
    celery_control_request_free(&r);
}

static void test_decode_refusals(void **state)
{
    static const char *const bad[] = {
        "",
        "[1, 2]",
        "{\"method\": 1}",
        "{\"arguments\": {}}",
        "{\"method\": \"ping\", \"arguments\": [1]}",
        "{\"method\": \"ping\", \"destination\": 5}",
        "{\"method\": \"ping\", \"reply_to\": \"oid\"}",
        "{\"method\": \"ping\", \"reply_to\": {\"exchange\": \"x\"}}",
        "{\"method\": \"ping\"} trailing",
        "{\"method\": \"ping\"",
        "{\"method\": \"p\xffng\"}",
    };
    struct celery_control_request r;
    struct cw_error err;
    struct props m;
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (celery_control_decode(NULL, bad[i], strlen(bad[i]), &r, &err) == 0)
            fail_msg("accepted %s", bad[i]);
        assert_int_equal(err.cls, CW_ERR_PERMANENT);
        celery_control_request_free(&r);
    }
    /* pickle is never decoded */
    real_props(&m, ping_props, sizeof ping_props);
    m.p->content_type = amqp_cstring_bytes("application/x-python-serialize");
    assert_int_equal(celery_control_decode(m.p, ping_body, strlen(ping_body), &r, &err), -1);
    assert_non_null(strstr(err.message, "unsupported content type"));
    celery_control_request_free(&r);
    empty_amqp_pool(&m.pool);
}

/* ---- node selection ---- */

static bool is_for(const char *body, const char *node)
{
    struct celery_control_request r;
    decode(body, &r);
    bool yes = celery_control_is_for(&r, node);
    celery_control_request_free(&r);
    return yes;
}

static void test_destination_matching(void **state)
{
    (void)state;
    assert_true(is_for(ping_body, "cworker@h1"));
    assert_false(is_for(ping_body, "cworker@h2"));
    assert_false(is_for(ping_body, "cworker@h1x"));
    assert_true(is_for(active_body, "anyone@anywhere")); /* destination null: every node */
    assert_true(is_for("{\"method\": \"ping\", \"destination\": []}", "x@y")); /* empty: all */
    assert_true(is_for("{\"method\": \"ping\", \"destination\": [\"a@b\", \"x@y\"]}", "x@y"));
    assert_true(is_for("{\"method\": \"ping\", \"destination\": \"x@y\"}", "x@y"));
    assert_true(is_for(glob_body, "cworker@h1"));
    assert_false(is_for(glob_body, "celery@h1"));
    assert_true(is_for("{\"method\": \"ping\", \"pattern\": \"w[0-9]@h.*\", \"matcher\": \"pcre\"}",
                       "w3@host"));
    assert_false(
        is_for("{\"method\": \"ping\", \"pattern\": \"h.*\", \"matcher\": \"pcre\"}", "w3@host"));
    assert_false(is_for("{\"method\": \"ping\", \"pattern\": \"*\", \"matcher\": \"nope\"}", "a"));
    /* a pattern without a matcher is ignored (kombu needs both) */
    assert_true(is_for("{\"method\": \"ping\", \"pattern\": \"zzz\"}", "a@b"));
}

/* ---- replies ---- */

static void test_ping_reply_is_celerys(void **state)
{
    static unsigned char wire[1024];
    amqp_bytes_t enc = {sizeof wire, wire};
    struct props m;
    struct celery_control_request r;
    struct celery_control_outcome out;
    struct cw_error err;
    (void)state;
    real_props(&m, ping_props, sizeof ping_props);
    assert_int_equal(celery_control_decode(m.p, ping_body, strlen(ping_body), &r, &err), 0);
    /* clock 4: +1 on receipt, adjusted to the sender's 1 (max + 1 = 6), +1 for the reply */
    assert_int_equal(celery_control_handle(&r, &st, &out, &err), 0);
    assert_true(out.has_reply);
    assert_int_equal(out.action, CELERY_CONTROL_NONE);
    assert_string_equal(out.reply_exchange, "reply.celery.pidbox");
    assert_string_equal(out.reply_routing_key, "23cdb26b-8ae3-3283-8997-7a654595ff85");
    assert_int_equal(out.reply.body.len, strlen("{\"cworker@h1\":{\"ok\":\"pong\"}}"));
    assert_memory_equal(out.reply.body.bytes, "{\"cworker@h1\":{\"ok\":\"pong\"}}",
                        out.reply.body.len);
    assert_int_equal(amqp_encode_properties(AMQP_BASIC_CLASS, &out.reply.props, enc),
                     sizeof celery_reply_props);
    assert_memory_equal(wire, celery_reply_props, sizeof celery_reply_props);
    assert_int_equal(clock_.value, 7);
    celery_control_outcome_free(&out);
    celery_control_request_free(&r);
    empty_amqp_pool(&m.pool);
}

static void test_not_for_us_does_nothing(void **state)
{
    struct celery_control_outcome out;
    (void)state;
    st.nodename = "other@h2";
    assert_null(handle(shutdown_body, &out));
    assert_false(out.has_reply);
    assert_int_equal(out.action, CELERY_CONTROL_NONE);
    celery_control_outcome_free(&out);
    assert_int_equal(clock_.value, 4);
}

static void test_unknown_and_unsupported(void **state)
{
    struct celery_control_outcome out;
    json_object *v;
    (void)state;
    v = call("nosuchcmd", "{}", &out); /* Celery: {"error": "KeyError('nosuchcmd')"} */
    assert_json(v, "{\"error\": \"KeyError('nosuchcmd')\"}");
    assert_int_equal(out.action, CELERY_CONTROL_NONE);
    json_object_put(v);
    celery_control_outcome_free(&out);
    v = call("pool_grow", "{\"n\": 1}", &out);
    assert_json(v, "{\"error\": \"cworker does not support the pool_grow command\"}");
    json_object_put(v);
    celery_control_outcome_free(&out);
}

/* Request.info() of the captured Celery worker's active task. */
static const char active_info[] =
    "{\"id\": \"9066b07a-9a39-4b6a-8bb4-97c0c6f07d94\", \"name\": \"cap.sleep\", \"args\": [6], "
    "\"kwargs\": {\"y\": \"z\"}, \"type\": \"cap.sleep\", \"hostname\": \"cworker@h1\", "
    "\"time_start\": 1795559696.8270912, \"acknowledged\": false, \"delivery_info\": "
    "{\"exchange\": \"\", \"routing_key\": \"cap.tasks\", \"priority\": 0, \"redelivered\": "
    "false}, \"worker_pid\": 12172}";
static const char reserved_info[] =
    "{\"id\": \"02e67cee-8fa3-49cb-bd01-c030da5a703e\", \"name\": \"cap.sleep\", \"args\": [1], "
    "\"kwargs\": {}, \"type\": \"cap.sleep\", \"hostname\": \"cworker@h1\", \"time_start\": null, "
    "\"acknowledged\": false, \"delivery_info\": {\"exchange\": \"\", \"routing_key\": "
    "\"cap.tasks\", \"priority\": 0, \"redelivered\": false}, \"worker_pid\": null}";

static void test_task_lists_are_celerys(void **state)
{
    struct celery_control_outcome out;
    json_object *v;
    char expected[2048];
    (void)state;
    v = handle(active_body, &out);
    snprintf(expected, sizeof expected, "[%s]", active_info);
    assert_json(v, expected);
    /* key order as Celery's too */
    assert_non_null(
        strstr(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), "[{\"id\":\"9066b07a"));
    json_object_put(v);
    celery_control_outcome_free(&out);

    v = call("active", "{\"safe\": true}", &out);
    assert_true(json_object_is_type(v, json_type_array));
    assert_string_equal(
        json_object_get_string(json_object_object_get(json_object_array_get_idx(v, 0), "kwargs")),
        "{'y': 'z'}");
    json_object_put(v);
    celery_control_outcome_free(&out);

    v = call("reserved", "{}", &out);
    snprintf(expected, sizeof expected, "[%s]", reserved_info);
    assert_json(v, expected);
    json_object_put(v);
    celery_control_outcome_free(&out);

    v = call("scheduled", "{}", &out);
    assert_json(v,
                "[{\"eta\": \"2026-11-24T22:35:26.825603+00:00\", \"priority\": 6, \"request\": "
                "{\"id\": \"6144582c-0e13-4012-8a54-c508b8a3f827\", \"name\": \"cap.sleep\", "
                "\"args\": [1], \"kwargs\": {}, \"type\": \"cap.sleep\", \"hostname\": "
                "\"cworker@h1\", \"time_start\": null, \"acknowledged\": false, \"delivery_info\": "
                "{\"exchange\": \"\", \"routing_key\": \"cap.tasks\", \"priority\": 0, "
                "\"redelivered\": false}, \"worker_pid\": null}}]");
    json_object_put(v);
    celery_control_outcome_free(&out);

    v = call("query_task",
             "{\"ids\": [\"9066b07a-9a39-4b6a-8bb4-97c0c6f07d94\", \"nope\", "
             "\"02e67cee-8fa3-49cb-bd01-c030da5a703e\"]}",
             &out);
    snprintf(expected, sizeof expected,
             "{\"9066b07a-9a39-4b6a-8bb4-97c0c6f07d94\": [\"active\", %s], "
             "\"02e67cee-8fa3-49cb-bd01-c030da5a703e\": [\"reserved\", %s]}",
             active_info, reserved_info);
    assert_json(v, expected);
    json_object_put(v);
    celery_control_outcome_free(&out);
}

static void test_registered_revoked_queues(void **state)
{
    struct celery_control_outcome out;
    json_object *v;
    (void)state;
    v = call("registered", "{}", &out); /* sorted, Celery's own celery.* left out */
    assert_json(v, "[\"app.worker.tasks.parse_run\", \"cap.sleep\"]");
    json_object_put(v);
    celery_control_outcome_free(&out);
    v = call("revoked", "{}", &out);
    assert_json(v, "[\"abc-1\"]");
    json_object_put(v);
    celery_control_outcome_free(&out);
    /* the captured Celery worker's reply for its queue cap.tasks (kombu Queue.as_dict) */
    v = call("active_queues", "{}", &out);
    assert_json(v,
                "[{\"name\": \"cap.tasks\", \"exchange\": {\"name\": \"cap.tasks\", \"type\": "
                "\"direct\", \"arguments\": null, \"durable\": true, \"passive\": false, "
                "\"auto_delete\": false, \"delivery_mode\": null, \"no_declare\": false}, "
                "\"routing_key\": \"cap.tasks\", \"queue_arguments\": null, \"binding_arguments\": "
                "null, \"consumer_arguments\": null, \"durable\": true, \"exclusive\": false, "
                "\"auto_delete\": false, \"no_ack\": false, \"alias\": null, \"bindings\": [], "
                "\"no_declare\": null, \"expires\": null, \"message_ttl\": null, \"max_length\": "
                "null, \"max_length_bytes\": null, \"max_priority\": null}]");
    json_object_put(v);
    celery_control_outcome_free(&out);
    clock_.value = 4;
    v = call("clock", "{}", &out);
    assert_json(v, "{\"clock\": 6}"); /* the value after receipt and adjustment */
    json_object_put(v);
    celery_control_outcome_free(&out);
}

static void test_stats_and_conf(void **state)
{
    struct celery_control_outcome out;
    json_object *v, *o;
    const char *text;
    (void)state;
    v = call("stats", "{}", &out);
    text = json_object_to_json_string(v);
    assert_null(strstr(text, "s3cret"));
    assert_json(json_object_object_get(v, "total"), "{\"cap.sleep\": 1}");
    assert_json(json_object_object_get(v, "pid"), "12162");
    assert_json(json_object_object_get(v, "clock"), "\"6\""); /* str(app.clock) */
    assert_json(json_object_object_get(v, "uptime"), "8");
    assert_json(json_object_object_get(v, "pool"),
                "{\"max-concurrency\": 1, \"processes\": [12172], \"max-tasks-per-child\": "
                "\"N/A\", \"put-guarded-by-semaphore\": false, \"timeouts\": [3300, 3600]}");
    assert_json(json_object_object_get(v, "broker"),
                "{\"hostname\": \"127.0.0.1\", \"userid\": \"guest\", \"virtual_host\": \"/\", "
                "\"port\": 5682, \"insist\": false, \"ssl\": false, \"transport\": \"amqp\", "
                "\"transport_options\": {}, \"login_method\": \"PLAIN\", \"uri_prefix\": null, "
                "\"heartbeat\": 30.0, \"failover_strategy\": \"round-robin\", \"alternates\": []}");
    assert_json(json_object_object_get(v, "prefetch_count"), "5");
    o = json_object_object_get(v, "rusage");
    assert_json(json_object_object_get(o, "utime"), "0.254947");
    assert_json(json_object_object_get(o, "maxrss"), "44184");
    assert_int_equal(json_object_object_length(o), 16);
    json_object_put(v);
    celery_control_outcome_free(&out);

    v = call("conf", "{\"with_defaults\": false}", &out);
    assert_json(json_object_object_get(v, "broker_url"),
                "\"amqp://guest:********@127.0.0.1:5682//\"");
    assert_json(json_object_object_get(v, "task_serializer"), "\"json\"");
    assert_json(json_object_object_get(v, "accept_content"), "[\"json\"]");
    assert_json(json_object_object_get(v, "worker_concurrency"), "1");
    assert_null(strstr(json_object_to_json_string(v), "s3cret"));
    json_object_put(v);
    celery_control_outcome_free(&out);

    st.rusage = NULL;
    st.broker = NULL;
    v = call("stats", "{}", &out);
    assert_json(json_object_object_get(v, "rusage"), "\"N/A\"");
    assert_false(json_object_object_get_ex(v, "broker", NULL));
    json_object_put(v);
    celery_control_outcome_free(&out);
}

static void test_events_switches(void **state)
{
    struct celery_control_outcome out;
    json_object *v;
    (void)state;
    v = call("enable_events", "{}", &out);
    assert_json(v, "{\"ok\": \"task events enabled\"}");
    assert_int_equal(out.action, CELERY_CONTROL_ENABLE_EVENTS);
    json_object_put(v);
    celery_control_outcome_free(&out);
    v = call("disable_events", "{}", &out);
    assert_json(v, "{\"ok\": \"task events already disabled\"}");
    assert_int_equal(out.action, CELERY_CONTROL_NONE);
    json_object_put(v);
    celery_control_outcome_free(&out);
    st.task_events = true;
    v = call("enable_events", "{}", &out);
    assert_json(v, "{\"ok\": \"task events already enabled\"}");
    assert_int_equal(out.action, CELERY_CONTROL_NONE);
    json_object_put(v);
    celery_control_outcome_free(&out);
    v = call("disable_events", "{}", &out);
    assert_json(v, "{\"ok\": \"task events disabled\"}");
    assert_int_equal(out.action, CELERY_CONTROL_DISABLE_EVENTS);
    json_object_put(v);
    celery_control_outcome_free(&out);
    v = call("heartbeat", "{}", &out); /* Celery replies None */
    assert_true(out.has_reply);
    assert_null(v);
    assert_int_equal(out.action, CELERY_CONTROL_HEARTBEAT);
    celery_control_outcome_free(&out);
}

static void test_revoke(void **state)
{
    struct celery_control_outcome out;
    json_object *v;
    (void)state;
    /* the cast app.control.revoke(id, terminate=True, signal='SIGKILL') */
    assert_null(handle(revoke_body, &out));
    assert_false(out.has_reply);
    assert_int_equal(out.action, CELERY_CONTROL_REVOKE);
    assert_int_equal(out.nrevoke_ids, 1);
    assert_string_equal(out.revoke_ids[0], "t-1");
    assert_true(out.terminate);
    assert_int_equal(out.signum, SIGKILL);
    celery_control_outcome_free(&out);
    /* `celery control revoke a b a`: task_id is a list */
    v = call("revoke", "{\"task_id\": [\"a\", \"b\", \"a\"]}", &out);
    assert_json(v, "{\"ok\": \"tasks a, b flagged as revoked\"}");
    assert_int_equal(out.nrevoke_ids, 2);
    assert_false(out.terminate);
    json_object_put(v);
    celery_control_outcome_free(&out);
    /* terminate of tasks we do not hold (Celery: "terminate: tasks unknown") */
    v = call("revoke", "{\"task_id\": [\"abc-2\"], \"terminate\": true, \"signal\": \"SIGTERM\"}",
             &out);
    assert_json(v, "{\"ok\": \"terminate: tasks unknown\"}");
    assert_int_equal(out.action, CELERY_CONTROL_REVOKE);
    assert_int_equal(out.signum, SIGTERM);
    json_object_put(v);
    celery_control_outcome_free(&out);
    /* `celery control terminate KILL <active id>` */
    v = call("terminate",
             "{\"signal\": \"KILL\", \"task_id\": [\"9066b07a-9a39-4b6a-8bb4-97c0c6f07d94\"]}",
             &out);
    assert_json(v, "{\"ok\": \"terminate: 9066b07a-9a39-4b6a-8bb4-97c0c6f07d94\"}");
    assert_true(out.terminate);
    assert_int_equal(out.signum, SIGKILL);
    json_object_put(v);
    celery_control_outcome_free(&out);
    v = call("revoke", "{\"task_id\": \"x\", \"terminate\": true, \"signal\": \"SIGNOPE\"}", &out);
    assert_json(v, "{\"error\": \"ValueError('unknown signal')\"}");
    assert_int_equal(out.action, CELERY_CONTROL_NONE);
    json_object_put(v);
    celery_control_outcome_free(&out);
}

/* Each dump_* name is its command's older alias in Celery's Panel: the same reply. */
static void test_aliases_and_report(void **state)
{
    static const char *const aliases[][2] = {
        {"dump_active", "active"},    {"dump_reserved", "reserved"}, {"dump_schedule", "scheduled"},
        {"dump_tasks", "registered"}, {"dump_revoked", "revoked"},   {"dump_conf", "conf"},
    };
    struct celery_control_outcome out;
    json_object *v, *w;
    (void)state;
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
        v = call(aliases[i][0], "{}", &out);
        celery_control_outcome_free(&out);
        w = call(aliases[i][1], "{}", &out);
        celery_control_outcome_free(&out);
        assert_non_null(v);
        if (!json_object_equal(v, w))
            fail_msg("%s: %s, %s: %s", aliases[i][0], json_object_to_json_string(v), aliases[i][1],
                     json_object_to_json_string(w));
        json_object_put(v);
        json_object_put(w);
    }
    v = call("report", "{}", &out);
    assert_json(v, "{\"ok\": \"software -> cworker:0.1.0\\nplatform -> system:Linux\\n"
                   "settings -> transport:amqp\\nnode -> cworker@h1 pid:12162\"}");
    assert_int_equal(out.action, CELERY_CONTROL_NONE);
    json_object_put(v);
    celery_control_outcome_free(&out);
}

static void test_shutdown_has_no_reply(void **state)
{
    struct celery_control_outcome out;
    (void)state;
    /* A Celery worker raises WorkerShutdown before replying; cworker does the same. */
    assert_null(handle(shutdown_body, &out));
    assert_false(out.has_reply);
    assert_int_equal(out.action, CELERY_CONTROL_SHUTDOWN);
    celery_control_outcome_free(&out);
}

static void test_hello_from_a_python_worker(void **state)
{
    struct celery_control_outcome out;
    json_object *v;
    (void)state;
    /* mingle: inspect.hello(from_node, revoked=LimitedSet._data) */
    v = call("hello",
             "{\"from_node\": \"celery@py\", \"revoked\": {\"r1\": [1795559000.0, \"r1\"]}}", &out);
    assert_json(v, "{\"revoked\": {\"abc-1\": [1795559000.5, \"abc-1\"]}, \"clock\": 7}");
    assert_int_equal(out.action, CELERY_CONTROL_REVOKE);
    assert_int_equal(out.nrevoke_ids, 1);
    assert_string_equal(out.revoke_ids[0], "r1");
    assert_false(out.terminate);
    json_object_put(v);
    celery_control_outcome_free(&out);
    v = call("hello", "{\"from_node\": \"cworker@h1\"}", &out);
    assert_true(out.has_reply);
    assert_null(v);
    assert_int_equal(out.action, CELERY_CONTROL_NONE);
    celery_control_outcome_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topology),
        cmocka_unit_test(test_decode_real_ping),
        cmocka_unit_test(test_decode_cast_and_arguments),
        cmocka_unit_test(test_decode_refusals),
        cmocka_unit_test(test_destination_matching),
        cmocka_unit_test_setup_teardown(test_ping_reply_is_celerys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_for_us_does_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_and_unsupported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_lists_are_celerys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registered_revoked_queues, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_and_conf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_switches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoke, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aliases_and_report, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_has_no_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hello_from_a_python_worker, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
