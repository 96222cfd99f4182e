/* Unit tests for retry_policy: the decision and message for each error class (DESIGN 1.8),
 * the delay per retry number, max retries, jitter bounds and out-of-range inputs. */
#include "tasks/retry_policy.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static const double delays[] = {60, 180, 600};

static struct retry_decision transient(int retries, int max_retries)
{
    return retry_policy_decide(CW_ERR_TRANSIENT, retries, max_retries, delays, 3, 0, 0.5);
}

static void assert_final(struct retry_decision d, int retries, const char *error_type)
{
    assert_false(d.retry);
    assert_true(d.delay == 0);
    assert_int_equal(d.next_retries, retries);
    assert_string_equal(d.error_type, error_type);
}

static void test_transient_delay_per_retry(void **state)
{
    (void)state;
    struct retry_decision d = transient(0, 3);
    assert_true(d.retry);
    assert_true(d.delay == 60);
    assert_int_equal(d.next_retries, 1);
    assert_null(d.error_type);
    d = transient(1, 3);
    assert_true(d.retry);
    assert_true(d.delay == 180);
    assert_int_equal(d.next_retries, 2);
    d = transient(2, 3);
    assert_true(d.retry);
    assert_true(d.delay == 600);
    assert_int_equal(d.next_retries, 3);
}

static void test_last_delay_repeats(void **state)
{
    (void)state;
    struct retry_decision d = transient(3, 10);
    assert_true(d.retry);
    assert_true(d.delay == 600);
    assert_int_equal(d.next_retries, 4);
    d = transient(9, 10);
    assert_true(d.delay == 600);
    assert_int_equal(d.next_retries, 10);
}

static void test_max_retries_exhausts(void **state)
{
    (void)state;
    assert_final(transient(3, 3), 3, "transient_exhausted");
    assert_final(transient(7, 3), 7, "transient_exhausted");
    /* MAX_RETRIES=0: the first transient failure is final */
    assert_final(transient(0, 0), 0, "transient_exhausted");
}

static void test_no_delays_means_no_retry(void **state)
{
    (void)state;
    assert_final(retry_policy_decide(CW_ERR_TRANSIENT, 0, 3, NULL, 0, 0, 0.5), 0,
                 "transient_exhausted");
}

static void test_other_classes_never_retry(void **state)
{
    (void)state;
    assert_final(retry_policy_decide(CW_ERR_PERMANENT, 1, 3, delays, 3, 0, 0.5), 1, "permanent");
    assert_final(retry_policy_decide(CW_ERR_TIMEOUT, 0, 3, delays, 3, 0, 0.5), 0, "timeout");
    assert_final(retry_policy_decide(CW_ERR_INTERNAL, 2, 3, delays, 3, 0, 0.5), 2, "internal");
    assert_final(retry_policy_decide(CW_ERR_NONE, 0, 3, delays, 3, 0, 0.5), 0, "internal");
    assert_final(retry_policy_decide((enum cw_error_class)42, 0, 3, delays, 3, 0, 0.5), 0,
                 "internal");
}

static double jittered(double percent, double random01)
{
    return retry_policy_decide(CW_ERR_TRANSIENT, 1, 3, delays, 3, percent, random01).delay;
}

static void test_jitter_bounds(void **state)
{
    (void)state;
    /* 10 % of 180 s: random01 0 is the low end, 0.5 the middle, towards 1 the high end */
    assert_float_equal(jittered(10, 0.0), 162.0, 1e-9);
    assert_float_equal(jittered(10, 0.5), 180.0, 1e-9);
    assert_float_equal(jittered(10, 0.75), 189.0, 1e-9);
    assert_float_equal(jittered(10, 0.999999), 197.99996, 1e-6);
    assert_float_equal(jittered(100, 0.0), 0.0, 1e-9);
    assert_float_equal(jittered(0, 0.0), 180.0, 1e-9);
}

static void test_out_of_range_inputs(void **state)
{
    (void)state;
    /* a negative retries count (a corrupt message) is treated as the first attempt */
    struct retry_decision d = transient(-5, 3);
    assert_true(d.retry);
    assert_true(d.delay == 60);
    assert_int_equal(d.next_retries, 1);
    /* random01 outside [0,1) and jitter outside 0..100 are clamped: never a negative delay
     * nor more than twice the configured one */
    assert_float_equal(jittered(10, -3.0), 162.0, 1e-9);
    assert_float_equal(jittered(10, 7.0), 198.0, 1e-9);
    assert_float_equal(jittered(250, 0.0), 0.0, 1e-9);
    assert_float_equal(jittered(250, 1.0), 360.0, 1e-9);
    assert_float_equal(jittered(-20, 0.0), 180.0, 1e-9);
    /* a negative MAX_RETRIES is as good as 0 */
    assert_final(transient(0, -1), 0, "transient_exhausted");
}

static void check_message(enum cw_error_class cls, int retries, const char *expected)
{
    char out[128];
    struct retry_decision d = retry_policy_decide(cls, retries, 3, delays, 3, 0, 0.5);
    retry_policy_message(cls, &d, 3, "storage unreadable", out, sizeof out);
    assert_string_equal(out, expected);
}

static void test_messages(void **state)
{
    (void)state;
    check_message(CW_ERR_TRANSIENT, 0, "Transient error (retry 1): storage unreadable");
    check_message(CW_ERR_TRANSIENT, 2, "Transient error (retry 3): storage unreadable");
    check_message(CW_ERR_TRANSIENT, 3, "Failed after 3 retries: storage unreadable");
    check_message(CW_ERR_TIMEOUT, 0, "Task exceeded time limit");
    check_message(CW_ERR_PERMANENT, 0, "Permanent error: storage unreadable");
    check_message(CW_ERR_INTERNAL, 0, "Unexpected error: storage unreadable");
    check_message(CW_ERR_NONE, 0, "Unexpected error: storage unreadable");
}

static void test_message_truncates(void **state)
{
    (void)state;
    char out[16];
    struct retry_decision d = transient(3, 3);
    retry_policy_message(CW_ERR_TRANSIENT, &d, 3, "storage unreadable", out, sizeof out);
    assert_string_equal(out, "Failed after 3 ");
}

/* The delay queue of each retry: the i-th in the i-th, the last for every later one. */
static void test_slot_per_retry(void **state)
{
    (void)state;
    assert_int_equal(retry_policy_slot(1, 3), 0);
    assert_int_equal(retry_policy_slot(2, 3), 1);
    assert_int_equal(retry_policy_slot(3, 3), 2);
    assert_int_equal(retry_policy_slot(7, 3), 2);
    assert_int_equal(retry_policy_slot(0, 3), 0); /* a corrupt count: the first */
    assert_int_equal(retry_policy_slot(2, 0), 0); /* no list: never an index below 0 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transient_delay_per_retry),
        cmocka_unit_test(test_last_delay_repeats),
        cmocka_unit_test(test_max_retries_exhausts),
        cmocka_unit_test(test_no_delays_means_no_retry),
        cmocka_unit_test(test_other_classes_never_retry),
        cmocka_unit_test(test_jitter_bounds),
        cmocka_unit_test(test_out_of_range_inputs),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_message_truncates),
        cmocka_unit_test(test_slot_per_retry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
