/* Unit tests for celery_json_body_parse: one whole JSON value per body, or a refusal that
 * says why (the reason ends up in a dead-letter header). */
#include "celery/json_body.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

/* body parses; its compact JSON text is `expected`. */
static void assert_parses(const char *body, size_t len, const char *expected)
{
    json_object *v = NULL;
    struct cw_error err;
    if (celery_json_body_parse(body, len, 8, &v, &err) != 0)
        fail_msg("refused %s: %s", body, err.message);
    assert_string_equal(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), expected);
    json_object_put(v);
}

static void assert_refused(const char *body, size_t len, const char *message)
{
    json_object *v = NULL;
    struct cw_error err;
    assert_int_equal(celery_json_body_parse(body, len, 8, &v, &err), -1);
    assert_null(v);
    assert_int_equal(err.cls, CW_ERR_PERMANENT);
    assert_string_equal(err.message, message);
}

static void test_whole_values(void **state)
{
    (void)state;
    assert_parses("[[1], {\"a\": null}, {}]", 22, "[[1],{\"a\":null},{}]");
    assert_parses(" \r\n\t{\"k\": \"v\"}\n ", 16, "{\"k\":\"v\"}");
    /* top-level literals json-c only finishes at a NUL, which the body does not have */
    assert_parses("42", 2, "42");
    assert_parses("null ", 5, "null");
    assert_parses("\"caf\xc3\xa9\"", 7, "\"caf\xc3\xa9\"");
    /* the length is what counts, not a NUL: only the first 3 bytes here */
    assert_parses("[1]garbage", 3, "[1]");
}

static void test_refusals(void **state)
{
    (void)state;
    assert_refused("", 0, "body is empty");
    assert_refused(" \n\t ", 4, "body is empty");
    assert_refused("[1, 2", 5, "body is not valid JSON: truncated");
    assert_refused("4", 0, "body is empty");
    assert_refused("[1] [2]", 7, "body is not valid JSON: trailing data after the value");
    assert_refused("{\"a\" 1}", 7,
                   "body is not valid JSON: object property name separator ':' expected");
    assert_refused("\"bad \xff\"", 7, "body is not valid JSON: invalid utf-8 string");
    assert_refused("[[[[[[[[[1]]]]]]]]]", 19, "body is not valid JSON: nesting too deep");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_values),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
