/* Unit tests for parse_run_args: which run a message's arguments name, Python's TypeError
 * wording for a wrong call, and why a message names no run at all. */
#include "tasks/parse_run_args.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

struct verdict {
    int rc;
    long run_id;
    bool bad_call;
    struct cw_error err;
};

/* parse_run_args on a task whose args and kwargs are the given JSON texts (NULL: absent). */
static struct verdict judge(const char *args, const char *kwargs)
{
    struct celery_task t;
    struct verdict v;
    memset(&t, 0, sizeof t);
    memset(&v, 0, sizeof v);
    t.args = args ? json_tokener_parse(args) : NULL;
    t.kwargs = kwargs ? json_tokener_parse(kwargs) : NULL;
    if (args)
        assert_non_null(t.args);
    cw_error_clear(&v.err);
    v.run_id = -99;
    v.rc = parse_run_args(&t, &v.run_id, &v.bad_call, &v.err);
    json_object_put(t.args);
    json_object_put(t.kwargs);
    return v;
}

static void assert_runs(const char *args, const char *kwargs, long run_id)
{
    struct verdict v = judge(args, kwargs);
    if (v.rc != 0)
        fail_msg("%s %s: rejected: %s", args, kwargs, v.err.message);
    assert_int_equal(v.run_id, run_id);
    assert_false(v.bad_call);
    assert_int_equal(v.err.cls, CW_ERR_NONE);
}

static void assert_fails_run(const char *args, const char *kwargs, long run_id, const char *message)
{
    struct verdict v = judge(args, kwargs);
    assert_int_equal(v.rc, 0);
    assert_int_equal(v.run_id, run_id);
    assert_true(v.bad_call);
    assert_int_equal(v.err.cls, CW_ERR_PERMANENT);
    assert_string_equal(v.err.message, message);
}

static void assert_rejected(const char *args, const char *kwargs, const char *message)
{
    struct verdict v = judge(args, kwargs);
    assert_int_equal(v.rc, -1);
    assert_int_equal(v.run_id, 0);
    assert_false(v.bad_call);
    assert_int_equal(v.err.cls, CW_ERR_PERMANENT);
    assert_string_equal(v.err.message, message);
}

static void test_valid_ids(void **state)
{
    (void)state;
    assert_runs("[42]", "{}", 42);
    assert_runs("[]", "{\"run_id\": 42}", 42);
    assert_runs("[1]", "{}", 1);
    assert_runs("[2147483647]", "{}", 2147483647L);
    assert_runs("[\"42\"]", "{}", 42);     /* an integral string */
    assert_runs("[\"42.000\"]", "{}", 42); /* a kombu Decimal */
    assert_runs("[42.0]", "{}", 42);       /* a Python float that is whole */
    assert_runs("[42]", NULL, 42);         /* no kwargs at all */
    assert_runs(NULL, "{\"run_id\": \"7\"}", 7);
}

static void test_ids_that_name_no_run(void **state)
{
    (void)state;
    assert_rejected("[-1]", "{}", "Run -1 not found (run ids are 1 to 2147483647)");
    assert_rejected("[0]", "{}", "Run 0 not found (run ids are 1 to 2147483647)");
    assert_rejected("[2147483648]", "{}", "Run 2147483648 not found (run ids are 1 to 2147483647)");
    assert_rejected("[9223372036854775807]", "{}",
                    "Run 9223372036854775807 not found (run ids are 1 to 2147483647)");
    assert_rejected("[9223372036854775808]", "{}",
                    "Run 9223372036854775808 not found (run ids are 1 to 2147483647)");
    assert_rejected("[\"99999999999999999999\"]", "{}",
                    "Run '99999999999999999999' not found (run ids are 1 to 2147483647)");
    assert_rejected("[1e300]", "{}", "Run 1e+300 not found (run ids are 1 to 2147483647)");
    assert_rejected("[-5.0]", "{}", "Run -5 not found (run ids are 1 to 2147483647)");
}

static void test_values_that_are_not_integers(void **state)
{
    (void)state;
    assert_rejected("[42.5]", "{}", "run_id must be an integer, got float 42.5");
    assert_rejected("[\"abc\"]", "{}", "run_id must be an integer, got str 'abc'");
    assert_rejected("[\"\"]", "{}", "run_id must be an integer, got str ''");
    assert_rejected("[\" 42\"]", "{}", "run_id must be an integer, got str ' 42'");
    assert_rejected("[null]", "{}", "run_id must be an integer, got None");
    assert_rejected("[true]", "{}", "run_id must be an integer, got bool True");
    assert_rejected("[[42]]", "{}", "run_id must be an integer, got list [42]");
    assert_rejected("[{\"id\": 42}]", "{}", "run_id must be an integer, got dict {'id': 42}");
    assert_rejected("[]", "{\"run_id\": null}", "run_id must be an integer, got None");
}

static void test_missing(void **state)
{
    (void)state;
    const char *missing = "parse_run() missing 1 required positional argument: 'run_id'";
    assert_rejected("[]", "{}", missing);
    assert_rejected(NULL, NULL, missing);
    assert_rejected("[]", NULL, missing);
    /* Python names the unexpected keyword before the missing argument. */
    assert_rejected("[]", "{\"x\": 1}", "parse_run() got an unexpected keyword argument 'x'");
}

static void test_wrong_calls_of_a_named_run(void **state)
{
    (void)state;
    assert_fails_run("[42, 43]", "{}", 42,
                     "parse_run() takes 1 positional argument but 2 were given");
    assert_fails_run("[42, null, \"x\"]", "{}", 42,
                     "parse_run() takes 1 positional argument but 3 were given");
    assert_fails_run("[42]", "{\"x\": 1}", 42,
                     "parse_run() got an unexpected keyword argument 'x'");
    assert_fails_run("[]", "{\"run_id\": 42, \"force\": true}", 42,
                     "parse_run() got an unexpected keyword argument 'force'");
    /* run_id twice with the same value still names one run. */
    assert_fails_run("[42]", "{\"run_id\": 42}", 42,
                     "parse_run() got multiple values for argument 'run_id'");
    assert_fails_run("[42]", "{\"run_id\": \"42\"}", 42,
                     "parse_run() got multiple values for argument 'run_id'");
    /* keywords are judged in their order, before the positional count (as CPython does) */
    assert_fails_run("[42, 43]", "{\"b\": 1, \"a\": 2}", 42,
                     "parse_run() got an unexpected keyword argument 'b'");
}

static void test_wrong_calls_that_name_no_run(void **state)
{
    (void)state;
    assert_rejected("[42]", "{\"run_id\": 43}",
                    "parse_run() got multiple values for argument 'run_id'");
    assert_rejected("[\"abc\", 2]", "{}",
                    "parse_run() takes 1 positional argument but 2 were given");
    assert_rejected("[-1]", "{\"x\": 1}", "parse_run() got an unexpected keyword argument 'x'");
}

/* Megabytes of hostile text are quoted by their first characters only. */
static void test_quotes_are_short(void **state)
{
    (void)state;
    size_t n = 1 << 20;
    char *args = malloc(n + 8);
    char *kwargs = malloc(n + 16);
    assert_non_null(args);
    assert_non_null(kwargs);
    memcpy(args, "[\"", 2);
    memset(args + 2, 'a', n);
    strcpy(args + 2 + n, "\"]");
    struct verdict v = judge(args, "{}");
    assert_int_equal(v.rc, -1);
    assert_true(strncmp(v.err.message, "run_id must be an integer, got str 'aaaa", 40) == 0);
    assert_true(strlen(v.err.message) < 120);
    strcpy(kwargs, "{\"");
    memset(kwargs + 2, 'k', n);
    strcpy(kwargs + 2 + n, "\": 1}");
    v = judge("[42]", kwargs);
    assert_int_equal(v.rc, 0);
    assert_true(v.bad_call);
    assert_true(strlen(v.err.message) < 120);
    free(args);
    free(kwargs);
}

static void test_task_id_length(void **state)
{
    (void)state;
    struct cw_error err;
    char id[600];
    cw_error_clear(&err);
    assert_int_equal(parse_run_check_task_id("a3c9d0e2-5b7f-4c1a-8e6d-2f4b9a7c1e30", &err), 0);
    assert_int_equal(parse_run_check_task_id("", &err), 0);
    memset(id, 'i', 255);
    id[255] = '\0';
    assert_int_equal(parse_run_check_task_id(id, &err), 0);
    /* 255 characters of two bytes each still fit: varchar(255) counts characters */
    for (int i = 0; i < 255; i++)
        memcpy(id + 2 * i, "\xc3\xa9", 2);
    id[510] = '\0';
    assert_int_equal(parse_run_check_task_id(id, &err), 0);
    memset(id, 'i', 256);
    id[256] = '\0';
    assert_int_equal(parse_run_check_task_id(id, &err), -1);
    assert_int_equal(err.cls, CW_ERR_PERMANENT);
    assert_string_equal(err.message, "task id is 256 characters long; a run records at most 255 "
                                     "(ingestion_runs.task_id)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_ids),
        cmocka_unit_test(test_ids_that_name_no_run),
        cmocka_unit_test(test_values_that_are_not_integers),
        cmocka_unit_test(test_missing),
        cmocka_unit_test(test_wrong_calls_of_a_named_run),
        cmocka_unit_test(test_wrong_calls_that_name_no_run),
        cmocka_unit_test(test_quotes_are_short),
        cmocka_unit_test(test_task_id_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
