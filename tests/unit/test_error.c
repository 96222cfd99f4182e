/* Unit tests for the cw_error chain: CW_FAIL/CW_WRAP frames, the Python-style traceback
 * (most recent call last) for each error class, and the class names. */
#include "base/error.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Three levels as the worker builds them: each records its own __LINE__. */
static int line_open, line_read, line_run;

static void open_archive(struct cw_error *err, enum cw_error_class cls)
{
    line_open = __LINE__ + 1;
    CW_FAIL(err, cls, "opening %s: %s", "runs/7.tar.gz", "No such file or directory");
}

static void read_archive(struct cw_error *err, enum cw_error_class cls)
{
    open_archive(err, cls);
    line_read = __LINE__ + 1;
    CW_WRAP(err, "reading the archive of run %d", 7);
}

static void run_task(struct cw_error *err, enum cw_error_class cls)
{
    read_archive(err, cls);
    line_run = __LINE__ + 1;
    CW_WRAP(err, "running parse_run(%d)", 7);
}

static char *traceback_of(const struct cw_error *err)
{
    struct strbuf sb = STRBUF_INIT;
    cw_error_format_traceback(err, &sb);
    return strbuf_steal(&sb);
}

static void check_traceback(enum cw_error_class cls, const char *exception)
{
    struct cw_error err;
    char expected[2048];
    run_task(&err, cls);
    assert_int_equal(err.cls, cls);
    assert_int_equal(err.nframes, 3);
    assert_string_equal(err.message, "opening runs/7.tar.gz: No such file or directory");
    snprintf(expected, sizeof expected,
             "Traceback (most recent call last):\n"
             "  File \"%s\", line %d, in run_task\n"
             "    running parse_run(7)\n"
             "  File \"%s\", line %d, in read_archive\n"
             "    reading the archive of run 7\n"
             "  File \"%s\", line %d, in open_archive\n"
             "    opening runs/7.tar.gz: No such file or directory\n"
             "%s: opening runs/7.tar.gz: No such file or directory\n",
             __FILE__, line_run, __FILE__, line_read, __FILE__, line_open, exception);
    char *tb = traceback_of(&err);
    assert_string_equal(tb, expected);
    free(tb);
}

static void test_traceback_per_class(void **state)
{
    (void)state;
    check_traceback(CW_ERR_PERMANENT, "PermanentError");
    check_traceback(CW_ERR_TRANSIENT, "TransientError");
    check_traceback(CW_ERR_TIMEOUT, "TimeLimitExceeded");
    check_traceback(CW_ERR_INTERNAL, "InternalError");
    check_traceback(CW_ERR_NONE, "InternalError");
}

static void test_traceback_of_one_frame(void **state)
{
    (void)state;
    struct cw_error err;
    char expected[512];
    int line = __LINE__ + 1;
    CW_FAIL(&err, CW_ERR_PERMANENT, "No files found for run %d", 8);
    snprintf(expected, sizeof expected,
             "Traceback (most recent call last):\n"
             "  File \"%s\", line %d, in test_traceback_of_one_frame\n"
             "    No files found for run 8\n"
             "PermanentError: No files found for run 8\n",
             __FILE__, line);
    char *tb = traceback_of(&err);
    assert_string_equal(tb, expected);
    free(tb);
}

static void test_traceback_appends(void **state)
{
    (void)state;
    struct cw_error err;
    struct strbuf sb = STRBUF_INIT;
    CW_FAIL(&err, CW_ERR_TRANSIENT, "x");
    strbuf_append_str(&sb, "before\n");
    cw_error_format_traceback(&err, &sb);
    assert_memory_equal(strbuf_cstr(&sb), "before\nTraceback (most recent call last):\n", 42);
    strbuf_free(&sb);
}

static void test_set_resets_the_chain(void **state)
{
    (void)state;
    struct cw_error err;
    run_task(&err, CW_ERR_TRANSIENT);
    err.unavailable = true;
    CW_FAIL(&err, CW_ERR_PERMANENT, "second failure");
    assert_int_equal(err.cls, CW_ERR_PERMANENT);
    assert_false(err.unavailable);
    assert_int_equal(err.nframes, 1);
    assert_string_equal(err.message, "second failure");
    assert_string_equal(err.frames[0].func, "test_set_resets_the_chain");
    cw_error_clear(&err);
    assert_int_equal(err.cls, CW_ERR_NONE);
    assert_int_equal(err.nframes, 0);
    assert_string_equal(err.message, "");
}

static void test_wrap_keeps_class_and_message(void **state)
{
    (void)state;
    struct cw_error err;
    CW_FAIL(&err, CW_ERR_TIMEOUT, "Task exceeded time limit");
    CW_WRAP(&err, "outer %s", "context");
    assert_int_equal(err.cls, CW_ERR_TIMEOUT);
    assert_string_equal(err.message, "Task exceeded time limit");
    assert_string_equal(err.frames[1].detail, "outer context");
    assert_string_equal(err.frames[1].func, "test_wrap_keeps_class_and_message");
    assert_string_equal(err.frames[1].file, __FILE__);
}

static void test_full_chain_keeps_the_origin(void **state)
{
    (void)state;
    struct cw_error err;
    CW_FAIL(&err, CW_ERR_INTERNAL, "origin");
    for (int i = 1; i < CW_ERROR_MAX_FRAMES + 5; i++)
        CW_WRAP(&err, "level %d", i);
    assert_int_equal(err.nframes, CW_ERROR_MAX_FRAMES);
    assert_string_equal(err.frames[0].detail, "origin");
    assert_string_equal(err.frames[CW_ERROR_MAX_FRAMES - 1].detail, "level 15");
}

static void test_long_detail_is_truncated(void **state)
{
    (void)state;
    struct cw_error err;
    char big[1000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CW_FAIL(&err, CW_ERR_PERMANENT, "%s", big);
    assert_int_equal(strlen(err.message), CW_ERROR_DETAIL_MAX - 1);
    assert_int_equal(strlen(err.frames[0].detail), CW_ERROR_DETAIL_MAX - 1);
}

static void test_class_names(void **state)
{
    (void)state;
    assert_string_equal(cw_error_class_name(CW_ERR_NONE), "none");
    assert_string_equal(cw_error_class_name(CW_ERR_PERMANENT), "permanent");
    assert_string_equal(cw_error_class_name(CW_ERR_TRANSIENT), "transient");
    assert_string_equal(cw_error_class_name(CW_ERR_TIMEOUT), "timeout");
    assert_string_equal(cw_error_class_name(CW_ERR_INTERNAL), "internal");
    assert_string_equal(cw_error_class_name((enum cw_error_class)99), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traceback_per_class),
        cmocka_unit_test(test_traceback_of_one_frame),
        cmocka_unit_test(test_traceback_appends),
        cmocka_unit_test(test_set_resets_the_chain),
        cmocka_unit_test(test_wrap_keeps_class_and_message),
        cmocka_unit_test(test_full_chain_keeps_the_origin),
        cmocka_unit_test(test_long_detail_is_truncated),
        cmocka_unit_test(test_class_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
