/* Unit tests for the pure part of `cworker health` (health_probe.h): where it connects for
 * a listener address, and how it reads the listener's answer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "ops/health_probe.h"

#include <string.h>

static void assert_target(const char *listen, const char *host, const char *port)
{
    struct health_target t;
    struct cw_error err;
    assert_int_equal(health_probe_target(listen, &t, &err), 0);
    assert_string_equal(t.host, host);
    assert_string_equal(t.port, port);
}

static void test_wildcards_become_loopback(void **state)
{
    (void)state;
    assert_target(":9808", "127.0.0.1", "9808");
    assert_target("0.0.0.0:8080", "127.0.0.1", "8080");
    assert_target("[::]:8080", "::1", "8080");
}

static void test_explicit_hosts_kept(void **state)
{
    (void)state;
    assert_target("127.0.0.1:9808", "127.0.0.1", "9808");
    assert_target("[::1]:9808", "::1", "9808");
    assert_target("worker-1:80", "worker-1", "80");
}

static void test_bad_addresses_refused(void **state)
{
    (void)state;
    const char *bad[] = {"9808", "localhost:", ":", ":80x", "", NULL};
    for (int i = 0; bad[i]; i++) {
        struct health_target t;
        struct cw_error err;
        assert_int_equal(health_probe_target(bad[i], &t, &err), -1);
        assert_non_null(strstr(err.message, "HOST:PORT"));
    }
    struct health_target t;
    struct cw_error err;
    assert_int_equal(health_probe_target(NULL, &t, &err), -1);
}

static int status_of(const char *text)
{
    return health_response_status(text, strlen(text));
}

static void test_status_line(void **state)
{
    (void)state;
    assert_int_equal(status_of("HTTP/1.1 200 OK\r\n\r\n{}"), 200);
    assert_int_equal(status_of("HTTP/1.0 503 Service Unavailable\r\n"), 503);
    assert_int_equal(status_of("HTTP/1.1 200"), 200);
    assert_int_equal(status_of("HTTP/1.1 2000 OK\r\n"), -1);
    assert_int_equal(status_of("HTTP/2 200 OK\r\n"), -1);
    assert_int_equal(status_of("SSH-2.0-OpenSSH_9.2\r\n"), -1);
    assert_int_equal(status_of("HTTP/1.1 20"), -1);
    assert_int_equal(status_of(""), -1);
}

static void test_body(void **state)
{
    (void)state;
    const char *r = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\n{}";
    size_t len;
    const char *body = health_response_body(r, strlen(r), &len);
    assert_int_equal(len, 2);
    assert_memory_equal(body, "{}", 2);
    const char *headers_only = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    health_response_body(headers_only, strlen(headers_only), &len);
    assert_int_equal(len, 0);
    const char *cut = "HTTP/1.1 200 OK\r\nContent-Le";
    health_response_body(cut, strlen(cut), &len);
    assert_int_equal(len, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wildcards_become_loopback),
        cmocka_unit_test(test_explicit_hosts_kept),
        cmocka_unit_test(test_bad_addresses_refused),
        cmocka_unit_test(test_status_line),
        cmocka_unit_test(test_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
