/* Unit tests for the delivery state table (supervisor/delivery.h): every (from, to) pair
 * against a table written out here from the header's diagram and comments. */
#include "supervisor/delivery.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define N DLV_NSTATES

/* The table in supervisor/delivery.h, written out again by hand: a change to either that
 * the other does not share fails here. */
#define Y 1
static const int expected[N][N] = {
    /*                  RCV HLD PND DSP RUN CNF ACK RQU RTR DLT RVK ORP */
    [DLV_RECEIVED] = {0, Y, Y, 0, 0, Y, 0, Y, 0, Y, Y, Y},
    [DLV_HELD] = {0, 0, Y, 0, 0, Y, 0, Y, 0, 0, Y, Y},
    [DLV_PENDING] = {0, 0, 0, Y, 0, Y, 0, Y, 0, Y, Y, Y},
    [DLV_DISPATCHED] = {0, 0, Y, 0, Y, Y, 0, Y, 0, Y, 0, Y},
    [DLV_RUNNING] = {0, 0, Y, 0, 0, Y, Y, Y, Y, Y, 0, Y},
    [DLV_CONFIRMING] = {0, 0, 0, 0, 0, 0, Y, Y, Y, Y, 0, Y},
    [DLV_ACKED] = {0},
    [DLV_REQUEUED] = {0},
    [DLV_RETRIED] = {0},
    [DLV_DEAD_LETTERED] = {0},
    [DLV_REVOKED] = {0},
    [DLV_ORPHANED] = {0},
};

static const enum delivery_state finals[] = {DLV_ACKED,         DLV_REQUEUED, DLV_RETRIED,
                                             DLV_DEAD_LETTERED, DLV_REVOKED,  DLV_ORPHANED};
static const enum delivery_state lives[] = {DLV_RECEIVED,   DLV_HELD,    DLV_PENDING,
                                            DLV_DISPATCHED, DLV_RUNNING, DLV_CONFIRMING};

static void test_every_pair_matches_the_documented_table(void **state)
{
    (void)state;
    int mismatches = 0;
    for (int from = 0; from < N; from++)
        for (int to = 0; to < N; to++) {
            bool got = delivery_move_allowed((enum delivery_state)from, (enum delivery_state)to);
            if (got != (expected[from][to] != 0)) {
                fprintf(stderr, "%s -> %s: allowed %d, expected %d\n",
                        delivery_state_name((enum delivery_state)from),
                        delivery_state_name((enum delivery_state)to), got, expected[from][to]);
                mismatches++;
            }
        }
    assert_int_equal(mismatches, 0);
}

static void test_final_states_go_nowhere(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof finals / sizeof finals[0]; i++) {
        assert_true(delivery_state_is_final(finals[i]));
        for (int to = 0; to < N; to++)
            assert_false(delivery_move_allowed(finals[i], (enum delivery_state)to));
    }
}

static void test_every_live_state_can_be_orphaned(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof lives / sizeof lives[0]; i++) {
        assert_false(delivery_state_is_final(lives[i]));
        assert_true(delivery_move_allowed(lives[i], DLV_ORPHANED));
        struct delivery d = {.state = lives[i]};
        struct cw_error err;
        assert_int_equal(delivery_move(&d, DLV_ORPHANED, &err), 0);
        assert_int_equal(d.state, DLV_ORPHANED);
    }
}

static void test_no_state_moves_to_itself_or_back_to_received(void **state)
{
    (void)state;
    for (int s = 0; s < N; s++) {
        assert_false(delivery_move_allowed((enum delivery_state)s, (enum delivery_state)s));
        assert_false(delivery_move_allowed((enum delivery_state)s, DLV_RECEIVED));
    }
}

static void test_out_of_range_values_are_refused(void **state)
{
    (void)state;
    const int bad[] = {-1, N, N + 1, 31, 32, 1000};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum delivery_state b = (enum delivery_state)bad[i];
        assert_false(delivery_state_is_final(b));
        assert_string_equal(delivery_state_name(b), "INVALID");
        for (int s = 0; s < N; s++) {
            assert_false(delivery_move_allowed(b, (enum delivery_state)s));
            assert_false(delivery_move_allowed((enum delivery_state)s, b));
        }
        struct delivery d = {.state = DLV_RUNNING};
        struct cw_error err;
        assert_int_equal(delivery_move(&d, b, &err), -1);
        assert_int_equal(d.state, DLV_RUNNING);
        assert_int_equal(err.cls, CW_ERR_INTERNAL);
        assert_non_null(strstr(err.message, "RUNNING -> INVALID"));
    }
}

/* Every refused pair leaves the delivery as it was and says which move, for which task. */
static void test_refused_moves_leave_the_state_and_name_it(void **state)
{
    (void)state;
    char id[] = "tid-42";
    int refused = 0;
    for (int from = 0; from < N; from++)
        for (int to = 0; to < N; to++) {
            if (expected[from][to])
                continue;
            struct delivery d = {.state = (enum delivery_state)from};
            d.task.id = id;
            struct cw_error err;
            memset(&err, 0, sizeof err);
            assert_int_equal(delivery_move(&d, (enum delivery_state)to, &err), -1);
            assert_int_equal(d.state, from);
            assert_int_equal(err.cls, CW_ERR_INTERNAL);
            char want[128];
            snprintf(want, sizeof want, "delivery of task tid-42: refused move %s -> %s",
                     delivery_state_name((enum delivery_state)from),
                     delivery_state_name((enum delivery_state)to));
            assert_string_equal(err.message, want);
            refused++;
        }
    assert_true(refused > N * N / 2);
}

static void test_allowed_moves_change_the_state(void **state)
{
    (void)state;
    for (int from = 0; from < N; from++)
        for (int to = 0; to < N; to++) {
            if (!expected[from][to])
                continue;
            struct delivery d = {.state = (enum delivery_state)from};
            struct cw_error err;
            assert_int_equal(delivery_move(&d, (enum delivery_state)to, &err), 0);
            assert_int_equal(d.state, to);
        }
}

static void test_an_undecoded_delivery_is_named_so(void **state)
{
    (void)state;
    struct delivery d = {.state = DLV_ACKED};
    struct cw_error err;
    assert_int_equal(delivery_move(&d, DLV_PENDING, &err), -1);
    assert_string_equal(err.message, "delivery of task (undecoded): refused move ACKED -> PENDING");
}

/* The whole happy path and the forced-outcome loop, move by move. */
static void test_a_life_with_a_forced_outcome(void **state)
{
    (void)state;
    static const enum delivery_state path[] = {
        DLV_HELD,       DLV_PENDING, DLV_DISPATCHED, DLV_RUNNING, DLV_PENDING,
        DLV_DISPATCHED, DLV_PENDING, DLV_DISPATCHED, DLV_RUNNING, DLV_ACKED};
    struct delivery d = {.state = DLV_RECEIVED};
    struct cw_error err;
    for (size_t i = 0; i < sizeof path / sizeof path[0]; i++)
        assert_int_equal(delivery_move(&d, path[i], &err), 0);
    assert_int_equal(d.state, DLV_ACKED);
    assert_int_equal(delivery_move(&d, DLV_ORPHANED, &err), -1);
    assert_int_equal(d.state, DLV_ACKED);
}

static void test_state_names(void **state)
{
    (void)state;
    static const char *const want[N] = {
        [DLV_RECEIVED] = "RECEIVED", [DLV_HELD] = "HELD",
        [DLV_PENDING] = "PENDING",   [DLV_DISPATCHED] = "DISPATCHED",
        [DLV_RUNNING] = "RUNNING",   [DLV_CONFIRMING] = "CONFIRMING",
        [DLV_ACKED] = "ACKED",       [DLV_REQUEUED] = "REQUEUED",
        [DLV_RETRIED] = "RETRIED",   [DLV_DEAD_LETTERED] = "DEAD_LETTERED",
        [DLV_REVOKED] = "REVOKED",   [DLV_ORPHANED] = "ORPHANED",
    };
    for (int s = 0; s < N; s++)
        assert_string_equal(delivery_state_name((enum delivery_state)s), want[s]);
    assert_string_equal(delivery_state_name(DLV_NSTATES), "INVALID");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_pair_matches_the_documented_table),
        cmocka_unit_test(test_final_states_go_nowhere),
        cmocka_unit_test(test_every_live_state_can_be_orphaned),
        cmocka_unit_test(test_no_state_moves_to_itself_or_back_to_received),
        cmocka_unit_test(test_out_of_range_values_are_refused),
        cmocka_unit_test(test_refused_moves_leave_the_state_and_name_it),
        cmocka_unit_test(test_allowed_moves_change_the_state),
        cmocka_unit_test(test_an_undecoded_delivery_is_named_so),
        cmocka_unit_test(test_a_life_with_a_forced_outcome),
        cmocka_unit_test(test_state_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
