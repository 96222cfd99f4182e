/* Tests for archive entry path normalisation and vetting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ingest/archive_path.h"

static void expect_ok(const char *raw, const char *want, int want_depth)
{
    char out[256];
    int depth = -1;
    if (archive_path_normalize(raw, out, sizeof out, &depth) != 0)
        fail_msg("\"%s\" was refused", raw);
    assert_string_equal(out, want);
    assert_int_equal(depth, want_depth);
}

static void expect_unsafe(const char *raw)
{
    char out[256] = "untouched";
    int depth = 99;
    if (archive_path_normalize(raw, out, sizeof out, &depth) != -1)
        fail_msg("\"%s\" was accepted as \"%s\"", raw, out);
    assert_string_equal(out, "untouched");
    assert_int_equal(depth, 99);
}

static void test_normalises(void **state)
{
    (void)state;
    expect_ok("etc/apps/search/local/inputs.conf", "etc/apps/search/local/inputs.conf", 5);
    expect_ok("./etc/system/default/props.conf", "etc/system/default/props.conf", 4);
    expect_ok("././a", "a", 1);
    expect_ok("a//b///c", "a/b/c", 3);
    expect_ok("a/./b/.", "a/b", 2);
    expect_ok("Splunk_TA_nix/default/", "Splunk_TA_nix/default", 2);
    expect_ok("dir/", "dir", 1);
    expect_ok("a.conf", "a.conf", 1);
    expect_ok("...", "...", 1);             /* not "..": an ordinary name */
    expect_ok("a/..b/c..", "a/..b/c..", 3); /* ditto */
    expect_ok("caf\xc3\xa9/x.conf", "caf\xc3\xa9/x.conf", 2);
    expect_ok("win\\dir\\x.conf", "win\\dir\\x.conf", 1);
}

static void test_refuses_unsafe(void **state)
{
    (void)state;
    expect_unsafe("/etc/passwd");
    expect_unsafe("//etc/passwd");
    expect_unsafe("..");
    expect_unsafe("../x.conf");
    expect_unsafe("a/../../x.conf");
    expect_unsafe("a/b/..");
    expect_unsafe("a/../b"); /* even when it would stay inside */
    expect_unsafe("");
    expect_unsafe(".");
    expect_unsafe("./");
    expect_unsafe(".//./");
    expect_unsafe("a/b\nc");
    expect_unsafe("tab\there");
    expect_unsafe("del\x7f");
    expect_unsafe("esc\x1b[31m");
    char out[8];
    assert_int_equal(archive_path_normalize(NULL, out, sizeof out, NULL), -1);
}

static void test_buffer_size(void **state)
{
    (void)state;
    char out[6];
    /* strlen+1 is enough even when nothing is removed */
    assert_int_equal(archive_path_normalize("ab/cd", out, 6, NULL), 0);
    assert_string_equal(out, "ab/cd");
    assert_int_equal(archive_path_normalize("ab/cde", out, 6, NULL), -1);
    /* depth_out may be NULL */
    assert_int_equal(archive_path_normalize("./x", out, 6, NULL), 0);
    assert_string_equal(out, "x");
}

static void expect_display(const char *raw, size_t outlen, const char *want)
{
    char out[ARCHIVE_PATH_DISPLAY_MAX];
    memset(out, 'Z', sizeof out);
    archive_path_display(raw, out, outlen);
    assert_string_equal(out, want);
    assert_true(strlen(out) < outlen);
}

/* Names shown in messages, warnings and JSON: any bytes in, printable UTF-8 out. */
static void test_display(void **state)
{
    (void)state;
    expect_display("app/default/inputs.conf", 64, "app/default/inputs.conf");
    expect_display("caf\xc3\xa9.conf", 64, "caf\xc3\xa9.conf");
    expect_display("caf\xe9.conf", 64, "caf\\xe9.conf"); /* Latin-1, not UTF-8 */
    expect_display("../\xff\xfe.conf", 64, "../\\xff\\xfe.conf");
    expect_display("a\nb\tc\x1b[31m\x7f", 64, "a\\x0ab\\x09c\\x1b[31m\\x7f");
    expect_display("\xc3", 64, "\\xc3");                   /* truncated sequence */
    expect_display("\xed\xa0\x80", 64, "\\xed\\xa0\\x80"); /* a surrogate */
    expect_display("\xc0\xaf", 64, "\\xc0\\xaf");          /* overlong "/" */
    expect_display(NULL, 64, "(no name)");
    expect_display("", 64, "");
    /* Exactly fitting: no ellipsis; one byte more: cut, with "...". */
    expect_display("0123456789abcde", 16, "0123456789abcde");
    expect_display("0123456789abcdef", 16, "0123456789ab...");
    /* Never cut inside a character or an escape. */
    expect_display("0123456789a\xc3\xa9\xc3\xa9x", 16, "0123456789a...");
    expect_display("0123456789a\xff\xff", 16, "0123456789a...");
    /* A long name fills the buffer and no more. */
    char longname[5000];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    char out[ARCHIVE_PATH_DISPLAY_MAX];
    archive_path_display(longname, out, sizeof out);
    assert_int_equal(strlen(out), ARCHIVE_PATH_DISPLAY_MAX - 1);
    assert_string_equal(out + ARCHIVE_PATH_DISPLAY_MAX - 4, "...");
}

static void expect_bare(const char *upload, const char *want, bool want_renamed)
{
    bool renamed = !want_renamed;
    char *name = archive_path_bare_conf_name(upload, &renamed);
    assert_string_equal(name, want);
    assert_int_equal(renamed, want_renamed);
    free(name);
}

static void test_bare_conf_name(void **state)
{
    (void)state;
    expect_bare("inputs.conf", "inputs.conf", false);
    expect_bare("runs/42/props.conf", "props.conf", false);
    expect_bare("etc.tar.gz", "etc.tar.gz.conf", true);
    expect_bare("conf", "conf.conf", true);
    expect_bare(".conf", ".conf.conf", true);
    expect_bare(NULL, "upload.conf", false);
    expect_bare("dir/..", "upload.conf", false);
    expect_bare("runs/1/", "upload.conf", false);
    expect_bare("bad\nname.conf", "upload.conf", false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalises),     cmocka_unit_test(test_refuses_unsafe),
        cmocka_unit_test(test_buffer_size),    cmocka_unit_test(test_display),
        cmocka_unit_test(test_bare_conf_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
