/* Unit tests for dashboard_admin: when the HTTP listener may run an admin action. */
#include "ops/dashboard_admin.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

/* A same-origin JSON request to a loopback listener with admin actions on. */
static struct admin_request allowed(void)
{
    return (struct admin_request){.admin_env = "1",
                                  .loopback = true,
                                  .origin = "http://127.0.0.1:8080",
                                  .host = "127.0.0.1:8080",
                                  .content_type = "application/json"};
}

static void test_loopback_with_admin_is_allowed(void **state)
{
    (void)state;
    struct admin_request r = allowed();
    assert_null(dashboard_admin_refusal(&r));
    r.origin = NULL; /* curl sends none */
    r.content_type = "application/json; charset=utf-8";
    assert_null(dashboard_admin_refusal(&r));
}

static void test_admin_off_is_refused(void **state)
{
    (void)state;
    struct admin_request r = allowed();
    const char *const offs[] = {NULL, "", "0", "true", "1 "};
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        r.admin_env = offs[i];
        assert_non_null(strstr(dashboard_admin_refusal(&r), "CWORKER_HTTP_ADMIN=1"));
    }
}

static void test_network_listener_needs_the_token(void **state)
{
    (void)state;
    struct admin_request r = allowed();
    r.loopback = false;
    assert_non_null(strstr(dashboard_admin_refusal(&r), "CWORKER_HTTP_TOKEN"));
    r.token_env = "";
    assert_non_null(strstr(dashboard_admin_refusal(&r), "CWORKER_HTTP_TOKEN"));
    r.token_env = "s3cret";
    assert_non_null(strstr(dashboard_admin_refusal(&r), "token"));
    r.authorization = "Bearer s3cre";
    assert_non_null(dashboard_admin_refusal(&r));
    r.authorization = "Bearer s3cretX";
    assert_non_null(dashboard_admin_refusal(&r));
    r.authorization = "Basic s3cret";
    assert_non_null(dashboard_admin_refusal(&r));
    r.authorization = "Bearer s3cret";
    assert_null(dashboard_admin_refusal(&r));
}

static void test_cross_site_requests_are_refused(void **state)
{
    (void)state;
    struct admin_request r = allowed();
    r.origin = "http://evil.example";
    assert_non_null(strstr(dashboard_admin_refusal(&r), "cross-origin"));
    r.origin = "null";
    assert_non_null(dashboard_admin_refusal(&r));
    r = allowed();
    const char *const forms[] = {NULL, "text/plain", "application/x-www-form-urlencoded",
                                 "application/jsonp"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        r.content_type = forms[i];
        assert_non_null(strstr(dashboard_admin_refusal(&r), "Content-Type"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loopback_with_admin_is_allowed),
        cmocka_unit_test(test_admin_off_is_refused),
        cmocka_unit_test(test_network_listener_needs_the_token),
        cmocka_unit_test(test_cross_site_requests_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
