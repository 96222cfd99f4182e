/* libFuzzer target: the AMQP field <-> JSON converters (mq/json.h).
 *
 * Input: mode:u8, then
 *   mode even: one AMQP value (layout in fuzz_input.h). It is read as JSON; when that
 *              succeeds the JSON is written back to AMQP and read again, and both JSON
 *              texts must be equal (what we publish from JSON reads back the same);
 *   mode odd:  JSON text, written to AMQP (mq_json_to_field, and mq_json_to_table for an
 *              object) and read back (mq_json_from_field). */
#include "mq/json.h"
#include "fuzz_input.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *text_of(json_object *j)
{
    const char *s = j ? json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN) : "null";
    char *copy = strdup(s);
    if (copy == NULL)
        abort();
    return copy;
}

/* JSON -> AMQP -> JSON; returns the second JSON (caller owns) or NULL on failure. */
static int round_trip(json_object *j, amqp_pool_t *pool, json_object **back)
{
    amqp_field_value_t v;
    struct cw_error err = {0};

    *back = NULL;
    if (mq_json_to_field(j, pool, &v, &err) != 0)
        return -1;
    return mq_json_from_field(&v, back, &err);
}

static void fuzz_from_amqp(struct fuzz_cursor *c, amqp_pool_t *pool)
{
    amqp_field_value_t v;
    json_object *j = NULL, *back = NULL;
    struct cw_error err = {0};

    fuzz_field(c, pool, 0, &v);
    if (mq_json_from_field(&v, &j, &err) != 0)
        return;
    if (round_trip(j, pool, &back) != 0) {
        fprintf(stderr, "fuzz_mq_json: JSON read from AMQP cannot be written back\n");
        abort();
    }
    char *a = text_of(j), *b = text_of(back);
    if (strcmp(a, b) != 0) {
        fprintf(stderr, "fuzz_mq_json: round trip changed\n  %s\n  %s\n", a, b);
        abort();
    }
    free(a);
    free(b);
    json_object_put(back);
    json_object_put(j);
}

static void fuzz_from_json(struct fuzz_cursor *c, amqp_pool_t *pool)
{
    json_tokener *tok = json_tokener_new_ex(64);
    json_object *j, *back = NULL;
    amqp_table_t table;
    struct cw_error err = {0};

    if (tok == NULL)
        abort();
    j = json_tokener_parse_ex(tok, (const char *)c->p, (int)c->left);
    json_tokener_free(tok);
    if (round_trip(j, pool, &back) == 0)
        json_object_put(back);
    if (json_object_is_type(j, json_type_object) && mq_json_to_table(j, pool, &table, &err) == 0) {
        amqp_field_value_t v = {.kind = AMQP_FIELD_KIND_TABLE, .value.table = table};
        if (mq_json_from_field(&v, &back, &err) == 0)
            json_object_put(back);
    }
    json_object_put(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_cursor c = {data, size};
    amqp_pool_t pool;

    if (size > (1u << 20))
        return 0;
    init_amqp_pool(&pool, 4096);
    if (fuzz_u8(&c) & 1)
        fuzz_from_json(&c, &pool);
    else
        fuzz_from_amqp(&c, &pool);
    empty_amqp_pool(&pool);
    return 0;
}
