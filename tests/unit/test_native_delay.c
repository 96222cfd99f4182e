/* Unit tests for native_delay (kombu's native delayed-delivery names and keys) and for
 * death_headers (RabbitMQ's dead-lettering headers removed before a republish). The
 * expected strings are written out as kombu computes them. */
#include "mq/death_headers.h"
#include "mq/native_delay.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static void test_routing_key_is_28_binary_digits_then_the_key(void **state)
{
    (void)state;
    char out[128];
    assert_true(native_delay_routing_key(1, "celery", out, sizeof out));
    assert_string_equal(out, "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.celery");
    assert_true(native_delay_routing_key(5, "celery", out, sizeof out));
    assert_string_equal(out, "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.1.celery");
    /* kombu: '.'.join(f'{600:028b}') + '.q' */
    assert_true(native_delay_routing_key(600, "a.b", out, sizeof out));
    assert_string_equal(out, "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.1.0.1.1.0.0.0.a.b");
    assert_true(native_delay_routing_key(NATIVE_DELAY_MAX_SECONDS, "q", out, sizeof out));
    assert_string_equal(out, "1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.q");
}

static void test_routing_key_refuses_what_kombu_refuses(void **state)
{
    (void)state;
    char out[128] = "untouched";
    assert_false(native_delay_routing_key(0, "celery", out, sizeof out));
    assert_false(native_delay_routing_key(-3, "celery", out, sizeof out));
    assert_false(native_delay_routing_key(1, "", out, sizeof out));
    /* 2^28 s needs a 29th digit, which the ladder does not have */
    assert_false(native_delay_routing_key(NATIVE_DELAY_MAX_SECONDS + 1, "q", out, sizeof out));
    assert_string_equal(out, "untouched");
    char longest[NATIVE_DELAY_MAX_QUEUE_KEY + 2], out300[300];
    memset(longest, 'q', sizeof longest - 1);
    longest[sizeof longest - 1] = '\0';
    assert_false(native_delay_routing_key(1, longest, out300, sizeof out300));
    longest[sizeof longest - 2] = '\0'; /* 199 bytes: the key is exactly 255 */
    assert_true(native_delay_routing_key(1, longest, out300, sizeof out300));
    assert_int_equal(strlen(out300), NATIVE_DELAY_MAX_KEY);
    char small[57]; /* 56 for the digits and dots, one for "q", none left for the NUL */
    assert_false(native_delay_routing_key(1, "q", small, sizeof small));
    char exact[58];
    assert_true(native_delay_routing_key(1, "q", exact, sizeof exact));
}

static void test_level_names_and_binding_keys(void **state)
{
    (void)state;
    char out[128];
    native_delay_level_name(27, out, sizeof out);
    assert_string_equal(out, "celery_delayed_27");
    native_delay_level_name(0, out, sizeof out);
    assert_string_equal(out, "celery_delayed_0");
    native_delay_queue_key(27, out, sizeof out);
    assert_string_equal(out, "1.#");
    native_delay_queue_key(26, out, sizeof out);
    assert_string_equal(out, "*.1.#");
    native_delay_queue_key(0, out, sizeof out);
    assert_string_equal(out, "*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.1.#");
    native_delay_pass_key(27, out, sizeof out);
    assert_string_equal(out, "0.#");
    native_delay_pass_key(1, out, sizeof out);
    assert_string_equal(out, "*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.0.#");
    /* the delivery exchange's binding to level 0 */
    native_delay_pass_key(0, out, sizeof out);
    assert_string_equal(out, "*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.0.#");
    native_delay_work_key("celery", out, sizeof out);
    assert_string_equal(out, "#.celery");
    native_delay_work_key("#.already", out, sizeof out);
    assert_string_equal(out, "#.already");
}

static void test_delay_seconds_round_up_and_cap(void **state)
{
    (void)state;
    assert_int_equal(native_delay_seconds(0), 0);
    assert_int_equal(native_delay_seconds(0.0004), 0);
    assert_int_equal(native_delay_seconds(-5), 0);
    assert_int_equal(native_delay_seconds(0.2), 1);
    assert_int_equal(native_delay_seconds(60), 60);
    assert_int_equal(native_delay_seconds(60.01), 61);
    assert_int_equal(native_delay_seconds(1e12), NATIVE_DELAY_MAX_SECONDS);
    assert_int_equal(native_delay_seconds(0.0 / 0.0), 0);
}

static amqp_table_entry_t text(const char *key, const char *value)
{
    amqp_table_entry_t e;
    e.key = amqp_cstring_bytes(key);
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = amqp_cstring_bytes(value);
    return e;
}

static void test_death_headers_are_removed_and_others_kept(void **state)
{
    (void)state;
    amqp_table_entry_t entries[] = {
        text("id", "t1"),
        text("x-death", "(array in real life)"),
        text("x-first-death-queue", "celery_delayed_0"),
        text("x-first-death-reason", "expired"),
        text("x-last-death-exchange", "celery_delayed_1"),
        text("x-deathly", "not a broker header"),
        text("eta", "2026-12-02T07:00:00+00:00"),
    };
    amqp_basic_properties_t props = {0};
    props._flags = AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
    props.content_type = amqp_cstring_bytes("application/json");
    props.headers.num_entries = 7;
    props.headers.entries = entries;
    amqp_pool_t pool;
    init_amqp_pool(&pool, 1024);
    amqp_basic_properties_t out;
    mq_strip_death_headers(&props, &pool, &out);
    assert_int_equal(out.headers.num_entries, 3);
    assert_memory_equal(out.headers.entries[0].key.bytes, "id", 2);
    assert_memory_equal(out.headers.entries[1].key.bytes, "x-deathly", 9);
    assert_memory_equal(out.headers.entries[2].key.bytes, "eta", 3);
    assert_true(out._flags & AMQP_BASIC_HEADERS_FLAG);
    assert_true(out._flags & AMQP_BASIC_CONTENT_TYPE_FLAG);
    assert_int_equal(props.headers.num_entries, 7); /* the original is untouched */

    amqp_table_entry_t only[] = {text("x-death", "x")};
    props.headers.num_entries = 1;
    props.headers.entries = only;
    mq_strip_death_headers(&props, &pool, &out);
    assert_int_equal(out.headers.num_entries, 0);
    assert_false(out._flags & AMQP_BASIC_HEADERS_FLAG);
    empty_amqp_pool(&pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routing_key_is_28_binary_digits_then_the_key),
        cmocka_unit_test(test_routing_key_refuses_what_kombu_refuses),
        cmocka_unit_test(test_level_names_and_binding_keys),
        cmocka_unit_test(test_delay_seconds_round_up_and_cap),
        cmocka_unit_test(test_death_headers_are_removed_and_others_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
