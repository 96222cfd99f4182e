/* Unit tests for the supervisor <-> executor messages (executor/protocol.h). */
#include "executor/protocol.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static json_object *parse(const char *text)
{
    json_object *o = json_tokener_parse(text);
    assert_non_null(o);
    return o;
}

/* The message as it crosses the channel: serialized and parsed again. */
static json_object *through_text(json_object *m)
{
    json_object *o = parse(json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN));
    json_object_put(m);
    return o;
}

static void small_task(struct celery_task *t)
{
    memset(t, 0, sizeof *t);
    t->protocol = 2;
    t->id = strdup("tid-1");
    t->task = strdup("app.worker.tasks.parse_run");
    t->retries = 3;
    t->has_eta = true;
    t->eta = 1795554000.25;
    t->reply_to = strdup("reply-q");
    t->args = parse("[42]");
    t->kwargs = parse("{\"x\": {\"y\": [1, 2]}}");
}

static void test_task_round_trip(void **state)
{
    (void)state;
    struct celery_task t;
    small_task(&t);
    json_object *m = through_text(proto_task_encode(17, &t, 3600.5, CW_ERR_NONE, NULL, "celery"));
    assert_int_equal(proto_type_of(m), PROTO_TASK);
    assert_false(json_object_object_get_ex(m, "forced", NULL));
    struct proto_task got;
    struct cw_error err;
    if (proto_task_decode(m, &got, &err) != 0)
        fail_msg("decode: %s", err.message);
    assert_int_equal(got.seq, 17);
    assert_true(got.hard_limit == 3600.5);
    assert_int_equal(got.forced_cls, CW_ERR_NONE);
    assert_string_equal(got.forced_message, "");
    assert_string_equal(got.queue, "celery");
    assert_string_equal(got.task.id, "tid-1");
    assert_string_equal(got.task.task, "app.worker.tasks.parse_run");
    assert_int_equal(got.task.retries, 3);
    assert_true(got.task.has_eta && got.task.eta == 1795554000.25);
    assert_string_equal(got.task.reply_to, "reply-q");
    assert_true(json_object_equal(got.task.args, t.args));
    assert_true(json_object_equal(got.task.kwargs, t.kwargs));
    proto_task_free(&got);
    json_object_put(m);
    celery_task_free(&t);
}

static void test_task_with_a_forced_outcome(void **state)
{
    (void)state;
    struct celery_task t;
    small_task(&t);
    const char *why = "TimeLimitExceeded(3600.0): killed by the supervisor";
    json_object *m = through_text(proto_task_encode(UINT64_MAX, &t, 60, CW_ERR_TIMEOUT, why, NULL));
    json_object *f = json_object_object_get(m, "forced");
    assert_string_equal(json_object_get_string(json_object_object_get(f, "class")), "timeout");
    struct proto_task got;
    struct cw_error err;
    assert_int_equal(proto_task_decode(m, &got, &err), 0);
    assert_true(got.seq == UINT64_MAX);
    assert_int_equal(got.forced_cls, CW_ERR_TIMEOUT);
    assert_string_equal(got.forced_message, why);
    assert_string_equal(got.task.id, "tid-1");
    proto_task_free(&got);
    json_object_put(m);

    /* a NULL message travels as "" */
    m = through_text(proto_task_encode(2, &t, 60, CW_ERR_PERMANENT, NULL, NULL));
    assert_int_equal(proto_task_decode(m, &got, &err), 0);
    assert_int_equal(got.forced_cls, CW_ERR_PERMANENT);
    assert_string_equal(got.forced_message, "");
    assert_string_equal(got.queue, ""); /* not sent: none */
    proto_task_free(&got);
    json_object_put(m);
    celery_task_free(&t);
}

/* Decodes text that must be refused with CW_ERR_INTERNAL; returns the seq it still read. */
static uint64_t task_refused(const char *text, const char *why)
{
    json_object *m = parse(text);
    struct proto_task got;
    struct cw_error err;
    memset(&err, 0, sizeof err);
    assert_int_equal(proto_task_decode(m, &got, &err), -1);
    assert_int_equal(err.cls, CW_ERR_INTERNAL);
    if (!strstr(err.message, why))
        fail_msg("\"%s\" does not say \"%s\"", err.message, why);
    uint64_t seq = got.seq;
    proto_task_free(&got); /* always freeable */
    json_object_put(m);
    return seq;
}

#define GOOD_TASK "{\"id\":\"t\",\"task\":\"n\",\"protocol\":2,\"args\":[],\"kwargs\":{}}"

static void test_task_decode_failures(void **state)
{
    (void)state;
    assert_int_equal(task_refused("{\"type\":\"task\",\"task\":" GOOD_TASK "}", "without seq"), 0);
    assert_int_equal(
        task_refused("{\"type\":\"task\",\"seq\":0,\"task\":" GOOD_TASK "}", "without seq"), 0);
    assert_int_equal(
        task_refused("{\"type\":\"task\",\"seq\":\"5\",\"task\":" GOOD_TASK "}", "without seq"), 0);
    assert_int_equal(task_refused("{\"type\":\"task\",\"seq\":5}", "without seq or task"), 5);
    /* a task that cannot be read still names its seq, so the refusal can answer it */
    assert_int_equal(
        task_refused("{\"type\":\"task\",\"seq\":6,\"task\":{\"id\":\"t\"}}", "no protocol"), 6);
    assert_int_equal(task_refused("{\"type\":\"task\",\"seq\":7,\"task\":[]}", "not a JSON object"),
                     7);
    assert_int_equal(task_refused("{\"seq\":8,\"task\":" GOOD_TASK
                                  ",\"forced\":{\"class\":\"bogus\",\"message\":\"m\"}}",
                                  "no known class"),
                     8);
    assert_int_equal(task_refused("{\"seq\":9,\"task\":" GOOD_TASK
                                  ",\"forced\":{\"class\":\"none\",\"message\":\"m\"}}",
                                  "no known class"),
                     9);
    assert_int_equal(
        task_refused("{\"seq\":10,\"task\":" GOOD_TASK ",\"forced\":{}}", "no known class"), 10);
}

static void report_with(struct task_report *r, enum task_outcome o, enum cw_error_class cls)
{
    memset(r, 0, sizeof *r);
    r->outcome = o;
    r->run_id = 4242;
    r->retry_delay = o == TASK_RETRY ? 12.5 : 0;
    if (o == TASK_SUCCEEDED)
        r->result = parse("{\"stanzas\": 7, \"files\": [\"a.conf\"]}");
    if (cls != CW_ERR_NONE) {
        CW_FAIL(&r->err, cls, "the %s failure", cw_error_class_name(cls));
        CW_WRAP(&r->err, "running run %ld", r->run_id);
    }
}

static void test_result_for_every_outcome_and_class(void **state)
{
    (void)state;
    static const enum task_outcome outcomes[] = {TASK_SUCCEEDED, TASK_FAILED,  TASK_RETRY,
                                                 TASK_SKIPPED,   TASK_REQUEUE, TASK_REJECTED};
    static const struct {
        enum cw_error_class cls;
        const char *name;
    } classes[] = {{CW_ERR_NONE, NULL},
                   {CW_ERR_PERMANENT, "permanent"},
                   {CW_ERR_TRANSIENT, "transient"},
                   {CW_ERR_TIMEOUT, "timeout"},
                   {CW_ERR_INTERNAL, "internal"}};
    uint64_t seq = 100;
    for (size_t o = 0; o < sizeof outcomes / sizeof outcomes[0]; o++)
        for (size_t c = 0; c < sizeof classes / sizeof classes[0]; c++) {
            struct task_report r;
            report_with(&r, outcomes[o], classes[c].cls);
            json_object *m = through_text(proto_result_encode(++seq, &r));
            assert_int_equal(proto_type_of(m), PROTO_RESULT);
            assert_int_equal(proto_seq(m), seq);
            assert_string_equal(json_object_get_string(json_object_object_get(m, "outcome")),
                                task_outcome_name(outcomes[o]));
            json_object *e = json_object_object_get(m, "error");
            if (classes[c].name)
                assert_string_equal(json_object_get_string(json_object_object_get(e, "class")),
                                    classes[c].name);
            else
                assert_null(e);
            struct proto_result got;
            struct cw_error err;
            if (proto_result_decode(m, &got, &err) != 0)
                fail_msg("decode: %s", err.message);
            assert_int_equal(got.seq, seq);
            assert_int_equal(got.outcome, outcomes[o]);
            assert_int_equal(got.run_id, 4242);
            assert_true(got.retry_delay == r.retry_delay);
            if (r.result)
                assert_true(json_object_equal(got.result, r.result));
            else
                assert_null(got.result);
            assert_int_equal(got.error_cls, classes[c].cls);
            if (classes[c].cls == CW_ERR_NONE) {
                assert_string_equal(got.error_message, "");
                assert_null(got.error_traceback);
            } else {
                assert_string_equal(got.error_message, r.err.message);
                assert_non_null(got.error_traceback);
                assert_non_null(strstr(got.error_traceback, "running run 4242"));
                assert_non_null(strstr(got.error_traceback, r.err.message));
            }
            proto_result_free(&got);
            assert_null(got.result); /* freed and cleared */
            json_object_put(m);
            task_report_free(&r);
        }
}

static void test_result_decode_failures(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"type\":\"result\",\"outcome\":\"succeeded\"}",           /* no seq */
        "{\"type\":\"result\",\"seq\":0,\"outcome\":\"succeeded\"}", /* seq 0 is none */
        "{\"type\":\"result\",\"seq\":3}",                           /* no outcome */
        "{\"type\":\"result\",\"seq\":3,\"outcome\":\"exploded\"}",  /* unknown outcome */
        "{\"type\":\"result\",\"seq\":3,\"outcome\":\"unknown\"}",   /* the name of no outcome */
        "{\"type\":\"result\",\"seq\":3,\"outcome\":\"SUCCEEDED\"}",
        "{\"type\":\"result\",\"seq\":3,\"outcome\":0}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_object *m = parse(bad[i]);
        struct proto_result got;
        struct cw_error err;
        memset(&err, 0, sizeof err);
        if (proto_result_decode(m, &got, &err) != -1)
            fail_msg("accepted %s", bad[i]);
        assert_int_equal(err.cls, CW_ERR_INTERNAL);
        assert_non_null(strstr(err.message, "without seq or a known outcome"));
        proto_result_free(&got);
        json_object_put(m);
    }
}

static void test_result_error_of_an_unknown_class_is_internal(void **state)
{
    (void)state;
    json_object *m = parse("{\"type\":\"result\",\"seq\":3,\"outcome\":\"failed\","
                           "\"error\":{\"class\":\"cosmic\",\"message\":\"ray\"}}");
    struct proto_result got;
    struct cw_error err;
    assert_int_equal(proto_result_decode(m, &got, &err), 0);
    assert_int_equal(got.error_cls, CW_ERR_INTERNAL);
    assert_string_equal(got.error_message, "ray");
    assert_null(got.error_traceback);
    proto_result_free(&got);
    json_object_put(m);
}

static void test_type_of_every_message(void **state)
{
    (void)state;
    struct celery_task t;
    small_task(&t);
    struct task_report r;
    report_with(&r, TASK_SUCCEEDED, CW_ERR_NONE);
    struct {
        json_object *m;
        enum proto_type want;
    } cases[] = {
        {proto_task_encode(1, &t, 1, CW_ERR_NONE, NULL, NULL), PROTO_TASK},
        {proto_bare(PROTO_SWEEP), PROTO_SWEEP},
        {proto_bare(PROTO_READY), PROTO_READY},
        {proto_started(2), PROTO_STARTED},
        {proto_refused(3, "unreadable"), PROTO_REFUSED},
        {proto_result_encode(4, &r), PROTO_RESULT},
        {parse("{\"type\":\"sweep_result\",\"requeue\":[]}"), PROTO_SWEEP_RESULT},
        {parse("{\"type\":\"bogus\"}"), PROTO_UNKNOWN},
        {parse("{\"type\":\"\"}"), PROTO_UNKNOWN},
        {parse("{\"type\":\"TASK\"}"), PROTO_UNKNOWN},
        {parse("{\"seq\":1}"), PROTO_UNKNOWN},
        {parse("{\"type\":1}"), PROTO_UNKNOWN},
        {parse("{\"type\":null}"), PROTO_UNKNOWN},
        {parse("{\"type\":[\"task\"]}"), PROTO_UNKNOWN},
        {parse("[\"type\",\"task\"]"), PROTO_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_object *m = through_text(cases[i].m);
        if (proto_type_of(m) != cases[i].want)
            fail_msg("%s: type %d, expected %d", json_object_to_json_string(m), proto_type_of(m),
                     cases[i].want);
        json_object_put(m);
    }
    assert_int_equal(proto_type_of(NULL), PROTO_UNKNOWN);
    task_report_free(&r);
    celery_task_free(&t);
}

static void test_bare_messages_hold_only_their_type(void **state)
{
    (void)state;
    json_object *m = proto_bare(PROTO_READY);
    assert_string_equal(json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN),
                        "{\"type\":\"ready\"}");
    json_object_put(m);
}

static void test_started_and_refused(void **state)
{
    (void)state;
    json_object *m = through_text(proto_started(99));
    assert_int_equal(proto_seq(m), 99);
    assert_string_equal(proto_refused_reason(m), "");
    json_object_put(m);
    m = through_text(proto_refused(100, "task field protocol is not an integer in 1..2"));
    assert_int_equal(proto_seq(m), 100);
    assert_string_equal(proto_refused_reason(m), "task field protocol is not an integer in 1..2");
    json_object_put(m);
}

static void test_seq_edge_cases(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t want;
    } cases[] = {
        {"{}", 0},
        {"{\"seq\":null}", 0},
        {"{\"seq\":\"7\"}", 0},
        {"{\"seq\":7.0}", 0},
        {"{\"seq\":true}", 0},
        {"{\"seq\":-1}", 0},
        {"{\"seq\":-9223372036854775808}", 0},
        {"{\"seq\":0}", 0},
        {"{\"seq\":1}", 1},
        {"{\"seq\":9223372036854775807}", INT64_MAX},
        {"{\"seq\":9223372036854775808}", (uint64_t)INT64_MAX + 1},
        {"{\"seq\":18446744073709551615}", UINT64_MAX},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_object *m = parse(cases[i].text);
        if (proto_seq(m) != cases[i].want)
            fail_msg("%s: seq %llu", cases[i].text, (unsigned long long)proto_seq(m));
        json_object_put(m);
    }
    for (uint64_t s = 1; s != 0; s = s < UINT64_MAX / 3 ? s * 3 : 0) {
        json_object *m = through_text(proto_started(s));
        assert_true(proto_seq(m) == s);
        json_object_put(m);
    }
    json_object *m = through_text(proto_started(UINT64_MAX));
    assert_true(proto_seq(m) == UINT64_MAX);
    json_object_put(m);
}

static void test_error_class_names(void **state)
{
    (void)state;
    assert_string_equal(proto_error_class_name(CW_ERR_NONE), "none");
    assert_string_equal(proto_error_class_name(CW_ERR_PERMANENT), "permanent");
    assert_string_equal(proto_error_class_name(CW_ERR_TRANSIENT), "transient");
    assert_string_equal(proto_error_class_name(CW_ERR_TIMEOUT), "timeout");
    assert_string_equal(proto_error_class_name(CW_ERR_INTERNAL), "internal");
    assert_string_equal(proto_error_class_name((enum cw_error_class)77), "internal");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_task_round_trip),
        cmocka_unit_test(test_task_with_a_forced_outcome),
        cmocka_unit_test(test_task_decode_failures),
        cmocka_unit_test(test_result_for_every_outcome_and_class),
        cmocka_unit_test(test_result_decode_failures),
        cmocka_unit_test(test_result_error_of_an_unknown_class_is_internal),
        cmocka_unit_test(test_type_of_every_message),
        cmocka_unit_test(test_bare_messages_hold_only_their_type),
        cmocka_unit_test(test_started_and_refused),
        cmocka_unit_test(test_seq_edge_cases),
        cmocka_unit_test(test_error_class_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
