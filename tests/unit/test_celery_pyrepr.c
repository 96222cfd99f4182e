/* Unit tests for celery_pyrepr: Python's text forms (saferepr, exception repr, float repr)
 * compared with what Celery 5.2.6's saferepr and Python 3.11's repr() printed for the same
 * values on this machine. */
#include "celery/pyrepr.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* [JSON value, maxlen, celery.utils.saferepr.saferepr(json.loads(value), maxlen)] as
 * printed by Celery 5.2.6. */
static const struct {
    const char *json;
    long maxlen;
    const char *repr;
} saferepr_cases[] = {
    {"{\"run_id\": 7, \"status\": \"completed\", \"f\": 1.5, \"s\": \"it's\", \"n\": null, "
     "\"b\": true}",
     1024, "{'run_id': 7, 'status': 'completed', 'f': 1.5, 's': 'it\\'s', 'n': None, 'b': True}"},
    {"[42]", -1, "[42]"},
    {"{}", -1, "{}"},
    {"[]", -1, "[]"},
    {"\"a\\\\b\\nc\"", -1, "'a\\b\nc'"},
    {"{\"a\": {\"b\": {\"c\": {\"d\": 1}}}}", -1, "{'a': {'b': {'c': {...}}}}"},
    {"[[[[1]]], [[2]]]", -1, "[[[[...]]], [[2]]]"},
    {"[1e16, 1e-05, 100.0, 0.1, -0.0, 123456789.125, 1795559591.5212848]", -1,
     "[1e+16, 1e-05, 100.0, 0.1, -0.0, 123456789.125, 1795559591.5212848]"},
    {"{\"long\": \"word word word word word word word word word word word word \"}", 40,
     "{'long': 'word word word word word word...', ..."},
    {"[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21]", 50,
     "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, , ...]"},
    {"{\"a\": [1, 2, {\"b\": \"xyz\"}], \"c\": \"d\"}", 12, "{'a': [1, 2, , ...}]}"},
    {"\"caf\\u00e9 \\u00fcber\"", 6, "'caf\xc3\xa9...'"},
    {"{\"x\": \"abcdefghij\"}", 8, "{'x': 'ab...', ..."},
    {"\"hello world\"", 0, ", ..."},
    {"[1,2,3]", 0, ", ...]"},
    {"{\"k\": [true, false, null]}", 5, "{'k': , ...]}"},
    {"9223372036854775807", -1, "9223372036854775807"},
    {"[-3, 2.5e-300]", -1, "[-3, 2.5e-300]"},
    {"\"\"", -1, "''"},
    {"[[{\"a\": [1]}]]", -1, "[[{'a': [...]}]]"},
    {"\"a\\u00e9\\u20ac\\ud83d\\ude00\"", -1, "'a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80'"},
    {"{\"typed_projections\": {\"inputs\": 3, \"props\": 0}, \"parse_errors\": null}", -1,
     "{'typed_projections': {'inputs': 3, 'props': 0}, 'parse_errors': None}"},
};

static void test_saferepr_is_celerys(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof saferepr_cases / sizeof saferepr_cases[0]; i++) {
        json_object *v = json_tokener_parse(saferepr_cases[i].json);
        char *r = celery_pyrepr_saferepr(v, saferepr_cases[i].maxlen);
        if (strcmp(r, saferepr_cases[i].repr) != 0)
            fail_msg("case %zu: %s\n  got      %s\n  expected %s", i, saferepr_cases[i].json, r,
                     saferepr_cases[i].repr);
        free(r);
        json_object_put(v);
    }
    char *none = celery_pyrepr_saferepr(NULL, -1);
    assert_string_equal(none, "None");
    free(none);
}

/* [type, message, repr(type(message))] from Python 3.11. */
static void test_exception_repr_is_pythons(void **state)
{
    static const char *const cases[][3] = {
        {"ValueError", "No files found for run 8", "ValueError('No files found for run 8')"},
        {"OSError", "it's", "OSError(\"it's\")"},
        {"KeyError", "nosuchcmd", "KeyError('nosuchcmd')"},
        {"RuntimeError", "say \"hi\"", "RuntimeError('say \"hi\"')"},
        {"RuntimeError", "both ' and \"", "RuntimeError('both \\' and \"')"},
        {"RuntimeError", "tab\there\nnl\\ \x01 \x7f caf\xc3\xa9 \xc2\xa0 \xe2\x80\xa8",
         "RuntimeError('tab\\there\\nnl\\\\ \\x01 \\x7f caf\xc3\xa9 \\xa0 \\u2028')"},
        {"RuntimeError", NULL, "RuntimeError()"},
        {"E", "bad \xff byte", "E('bad \\xff byte')"}, /* not UTF-8: shown, output stays UTF-8 */
        {"Exception", "", "Exception('')"},
        {NULL, "x", "Exception('x')"},
        {"", "x", "Exception('x')"},
        {"ValueError", "\xe2\x80\x8b\xef\xbb\xbf\xf0\x9f\x98\x80",
         "ValueError('\\u200b\\ufeff\xf0\x9f\x98\x80')"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *r = celery_pyrepr_exception(cases[i][0], cases[i][1]);
        assert_string_equal(r, cases[i][2]);
        free(r);
    }
}

static void test_double_is_python_float_repr(void **state)
{
    static const struct {
        double v;
        const char *repr;
    } cases[] = {{2.0, "2.0"},
                 {0.1, "0.1"},
                 {100.0, "100.0"},
                 {1e16, "1e+16"},
                 {1e15, "1000000000000000.0"},
                 {1e-05, "1e-05"},
                 {0.0001, "0.0001"},
                 {-0.0, "-0.0"},
                 {1.5e-07, "1.5e-07"},
                 {1795559591.5212848, "1795559591.5212848"},
                 {0.83, "0.83"},
                 {1e100, "1e+100"},
                 {5e-324, "5e-324"},
                 {1.7976931348623157e308, "1.7976931348623157e+308"},
                 {123.456, "123.456"},
                 {-1e-7, "-1e-07"}};
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_object *d = celery_pyrepr_double(cases[i].v);
        assert_string_equal(json_object_to_json_string(d), cases[i].repr);
        assert_true(json_object_get_double(d) == cases[i].v);
        json_object_put(d);
    }
}

/* Values JSON cannot carry still print as Python prints them, and buf is always ended. */
static void test_float_text(void **state)
{
    char buf[64];
    (void)state;
    celery_pyrepr_float(NAN, buf, sizeof buf);
    assert_string_equal(buf, "nan");
    celery_pyrepr_float(INFINITY, buf, sizeof buf);
    assert_string_equal(buf, "inf");
    celery_pyrepr_float(-INFINITY, buf, sizeof buf);
    assert_string_equal(buf, "-inf");
    celery_pyrepr_float(3.0, buf, sizeof buf);
    assert_string_equal(buf, "3.0");
    celery_pyrepr_float(1795559591.5212848, buf, 6);
    assert_string_equal(buf, "17955");
    celery_pyrepr_float(100.0, buf, 4);
    assert_string_equal(buf, "100");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_saferepr_is_celerys),
        cmocka_unit_test(test_exception_repr_is_pythons),
        cmocka_unit_test(test_double_is_python_float_repr),
        cmocka_unit_test(test_float_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
