/* Unit tests for db/pg_error.h (SQLSTATE classification, scrubbing libpq's messages) and
 * the parse-only parts of db/pg.h (no server needed). */
#include "db/pg.h"
#include "db/pg_error.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define T CW_ERR_TRANSIENT
#define P CW_ERR_PERMANENT

struct case_ {
    const char *state;
    enum cw_error_class cls;
};

static void check_all(const struct case_ *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        enum cw_error_class got = pg_error_class(cases[i].state, true);
        if (got != cases[i].cls)
            fail_msg("SQLSTATE %s: got %s, want %s", cases[i].state, cw_error_class_name(got),
                     cw_error_class_name(cases[i].cls));
    }
}

static void test_connection_exceptions_are_transient(void **state)
{
    (void)state;
    static const struct case_ c[] = {{"08000", T}, {"08003", T}, {"08006", T}, {"08001", T},
                                     {"08004", T}, {"08007", T}, {"08P01", P}};
    check_all(c, sizeof c / sizeof c[0]);
}

static void test_transaction_rollbacks_are_transient(void **state)
{
    (void)state;
    static const struct case_ c[] = {
        {"40000", T}, {"40001", T}, {"40P01", T}, {"40003", T}, {"40002", P}};
    check_all(c, sizeof c / sizeof c[0]);
}

static void test_insufficient_resources_are_transient(void **state)
{
    (void)state;
    static const struct case_ c[] = {
        {"53000", T}, {"53100", T}, {"53200", T}, {"53300", T}, {"53400", T}};
    check_all(c, sizeof c / sizeof c[0]);
}

static void test_operator_intervention(void **state)
{
    (void)state;
    static const struct case_ c[] = {{"57P01", T}, {"57P02", T}, {"57P03", T}, {"57P05", T},
                                     {"57P04", P}, {"57014", T}, {"57000", P}};
    check_all(c, sizeof c / sizeof c[0]);
}

static void test_everything_else_is_permanent(void **state)
{
    (void)state;
    static const struct case_ c[] = {
        {"23505", P}, {"23503", P}, {"42P01", P}, {"42883", P}, {"42601", P}, {"22003", P},
        {"22P02", P}, {"XX000", P}, {"XX001", P}, {"25P02", P}, {"55006", P}, {"55P03", T},
        {"58000", T}, {"58030", T}, {"58P01", P}, {"0A000", P}, {"28P01", P}};
    check_all(c, sizeof c / sizeof c[0]);
}

static void test_no_sqlstate_depends_on_the_connection(void **state)
{
    (void)state;
    assert_int_equal(pg_error_class(NULL, false), T);
    assert_int_equal(pg_error_class("", false), T);
    assert_int_equal(pg_error_class(NULL, true), P);
    assert_int_equal(pg_error_class("", true), P);
    /* A SQLSTATE decides even when the connection went with it. */
    assert_int_equal(pg_error_class("57P01", false), T);
    assert_int_equal(pg_error_class("42P01", false), P);
}

static void test_lost_connection(void **state)
{
    (void)state;
    assert_true(pg_error_lost_connection(NULL, false));
    assert_true(pg_error_lost_connection("42P01", false));
    assert_false(pg_error_lost_connection(NULL, true));
    assert_true(pg_error_lost_connection("08006", true));
    assert_false(pg_error_lost_connection("08P01", true));
    assert_true(pg_error_lost_connection("57P01", true));
    assert_true(pg_error_lost_connection("57P04", true));
    assert_false(pg_error_lost_connection("57014", true));
    assert_false(pg_error_lost_connection("40P01", true));
    assert_false(pg_error_lost_connection("23505", true));
}

static void test_redact(void **state)
{
    (void)state;
    char s[128] = "password s3cret failed; s3cret again";
    pg_redact(s, "s3cret");
    assert_string_equal(s, "password *** failed; *** again");
    char shorter[32] = "a pw b pw";
    pg_redact(shorter, "pw");
    assert_string_equal(shorter, "a ** b **");
    char same[32] = "untouched";
    pg_redact(same, NULL);
    pg_redact(same, "");
    assert_string_equal(same, "untouched");
}

static void test_one_line(void **state)
{
    (void)state;
    char s[128] = "connection failed\n\tIs the server running?\n";
    pg_one_line(s);
    assert_string_equal(s, "connection failed  Is the server running?");
}

static void describe(const char *url, const char *msg, const char *want)
{
    char out[256];
    pg_describe_conninfo_error(url, msg, out, sizeof out);
    assert_string_equal(out, want);
}

static void test_describe_names_the_part_not_the_value(void **state)
{
    (void)state;
    describe("postgresql://app:s3cret%zz@db:5432/app",
             "invalid percent-encoded token: \"s3cret%zz\"\n",
             "invalid percent-encoded token: \"***\" (in the password)");
    describe("postgresql://us%zz:pw@db/app", "invalid percent-encoded token: \"us%zz\"\n",
             "invalid percent-encoded token: \"***\" (in the user name)");
    describe("postgresql://app:pw@db:54x2/app", "invalid port number: \"54x2\"\n",
             "invalid port number: \"***\" (in the host or port)");
    describe("postgresql://app:pw@db/ap%zzp", "invalid percent-encoded token: \"ap%zzp\"\n",
             "invalid percent-encoded token: \"***\" (in the database name)");
    describe("postgresql://app:pw@db/app?bogus=1", "invalid URI query parameter: \"bogus\"\n",
             "invalid URI query parameter: \"***\" (in the query parameters)");
    describe("host=db password=s3cret x", "missing \"=\" after \"x\" in connection info string\n",
             "missing \"=\" after \"x\" in connection info string");
    describe("host=db password=s3cret oops", "missing \"=\" after \"oops\" in connection info\n",
             "missing \"=\" after \"***\" in connection info (in the connection string)");
    describe("postgresql://u:pw@h/d", NULL, "unparsable");
}

static void test_describe_never_echoes_the_raw_password(void **state)
{
    (void)state;
    char out[256];
    /* Even when libpq names the password without quotes. */
    pg_describe_conninfo_error("postgresql://app:s3cret%zz@db/app", "bad token s3cret%zz here", out,
                               sizeof out);
    assert_null(strstr(out, "s3cret"));
}

static void test_url_valid(void **state)
{
    (void)state;
    char why[256];
    assert_true(pg_url_valid("postgresql://app:pw@127.0.0.1:5442/app", why, sizeof why));
    assert_true(pg_url_valid("postgresql+psycopg2://app:pw@127.0.0.1/app", why, sizeof why));
    assert_true(pg_url_valid("host=127.0.0.1 dbname=app", why, sizeof why));
    assert_false(pg_url_valid("postgresql://app:s3cret%zz@127.0.0.1/app", why, sizeof why));
    assert_null(strstr(why, "s3cret"));
    assert_non_null(strstr(why, "password"));
}

static void test_libpq_url(void **state)
{
    (void)state;
    char *u = pg_libpq_url("postgresql+psycopg2://a:b@h/d");
    assert_string_equal(u, "postgresql://a:b@h/d");
    free(u);
    u = pg_libpq_url("postgres+asyncpg://h/d");
    assert_string_equal(u, "postgres://h/d");
    free(u);
    u = pg_libpq_url("host=h password=a+b://");
    assert_string_equal(u, "host=h password=a+b://");
    free(u);
}

/* libpq's texts (PostgreSQL 14/15 fe-secure-openssl.c) for a server that cannot be verified,
 * as pg_connect reports them (one line); other connection failures are not. */
static void test_tls_unverifiable(void **state)
{
    (void)state;
    assert_true(pg_error_tls_unverifiable(
        "cannot connect to PostgreSQL: connection to server at \"localhost\" (127.0.0.1), port "
        "5461 failed: SSL error: certificate verify failed"));
    assert_true(pg_error_tls_unverifiable(
        "connection to server at \"127.0.0.1\", port 5461 failed: server certificate for "
        "\"localhost\" does not match host name \"127.0.0.1\""));
    assert_true(pg_error_tls_unverifiable(
        "server certificate for \"db\" (and 2 other names) does not match host name \"x\""));
    assert_true(pg_error_tls_unverifiable(
        "connection to server at \"localhost\" (::1), port 5461 failed: root certificate file "
        "\"/nope/ca.pem\" does not exist Either provide the file or change sslmode to disable "
        "server certificate verification."));
    assert_true(pg_error_tls_unverifiable(
        "could not read root certificate file \"/etc/ca.pem\": permission denied"));
    assert_false(pg_error_tls_unverifiable(
        "connection to server at \"localhost\" (127.0.0.1), port 5461 failed: Connection "
        "refused Is the server running on that host and accepting TCP/IP connections?"));
    assert_false(
        pg_error_tls_unverifiable("FATAL:  password authentication failed for user \"cworker\""));
    assert_false(pg_error_tls_unverifiable("server does not support SSL, but SSL was required"));
    assert_false(pg_error_tls_unverifiable(""));
    assert_false(pg_error_tls_unverifiable(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connection_exceptions_are_transient),
        cmocka_unit_test(test_transaction_rollbacks_are_transient),
        cmocka_unit_test(test_insufficient_resources_are_transient),
        cmocka_unit_test(test_operator_intervention),
        cmocka_unit_test(test_everything_else_is_permanent),
        cmocka_unit_test(test_no_sqlstate_depends_on_the_connection),
        cmocka_unit_test(test_lost_connection),
        cmocka_unit_test(test_redact),
        cmocka_unit_test(test_one_line),
        cmocka_unit_test(test_describe_names_the_part_not_the_value),
        cmocka_unit_test(test_describe_never_echoes_the_raw_password),
        cmocka_unit_test(test_url_valid),
        cmocka_unit_test(test_libpq_url),
        cmocka_unit_test(test_tls_unverifiable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
