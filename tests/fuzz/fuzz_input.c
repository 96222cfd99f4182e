/* Fuzz bytes -> rabbitmq-c field values (layout in fuzz_input.h). */
#include "fuzz_input.h"

#include <stdlib.h>
#include <string.h>

/* Every kind rabbitmq-c 0.11 knows, plus one it does not ('?') for the unknown-kind path. */
static const uint8_t FUZZ_KINDS[] = {
    AMQP_FIELD_KIND_BOOLEAN,
    AMQP_FIELD_KIND_I8,
    AMQP_FIELD_KIND_U8,
    AMQP_FIELD_KIND_I16,
    AMQP_FIELD_KIND_U16,
    AMQP_FIELD_KIND_I32,
    AMQP_FIELD_KIND_U32,
    AMQP_FIELD_KIND_I64,
    AMQP_FIELD_KIND_U64,
    AMQP_FIELD_KIND_F32,
    AMQP_FIELD_KIND_F64,
    AMQP_FIELD_KIND_DECIMAL,
    AMQP_FIELD_KIND_UTF8,
    AMQP_FIELD_KIND_ARRAY,
    AMQP_FIELD_KIND_TIMESTAMP,
    AMQP_FIELD_KIND_TABLE,
    AMQP_FIELD_KIND_VOID,
    AMQP_FIELD_KIND_BYTES,
    '?',
};

int fuzz_kind_index(uint8_t kind)
{
    for (size_t i = 0; i < sizeof FUZZ_KINDS; i++)
        if (FUZZ_KINDS[i] == kind)
            return (int)i;
    return -1;
}

uint8_t fuzz_u8(struct fuzz_cursor *c)
{
    if (c->left == 0)
        return 0;
    c->left--;
    return *c->p++;
}

const uint8_t *fuzz_take(struct fuzz_cursor *c, size_t n, size_t *len)
{
    const uint8_t *p = c->p;
    *len = n < c->left ? n : c->left;
    c->p += *len;
    c->left -= *len;
    return p;
}

amqp_bytes_t fuzz_short_bytes(struct fuzz_cursor *c)
{
    size_t len;
    const uint8_t *p = fuzz_take(c, fuzz_u8(c), &len);
    amqp_bytes_t b = {len, (void *)p};
    return b;
}

static uint64_t fuzz_uint(struct fuzz_cursor *c, size_t width)
{
    uint64_t v = 0;
    for (size_t i = 0; i < width; i++)
        v |= (uint64_t)fuzz_u8(c) << (8 * i);
    return v;
}

static void *pool_alloc(amqp_pool_t *pool, size_t n)
{
    void *p = amqp_pool_alloc(pool, n ? n : 1);
    if (p == NULL)
        abort();
    return p;
}

static void fuzz_array(struct fuzz_cursor *c, amqp_pool_t *pool, int depth, amqp_array_t *out)
{
    int n = depth >= FUZZ_MAX_NEST ? 0 : fuzz_u8(c) % 64;
    out->num_entries = n;
    out->entries = pool_alloc(pool, (size_t)n * sizeof *out->entries);
    for (int i = 0; i < n; i++)
        fuzz_field(c, pool, depth + 1, &out->entries[i]);
}

void fuzz_table(struct fuzz_cursor *c, amqp_pool_t *pool, int depth, amqp_table_t *out)
{
    int n = depth >= FUZZ_MAX_NEST ? 0 : fuzz_u8(c) % 64;
    out->num_entries = n;
    out->entries = pool_alloc(pool, (size_t)n * sizeof *out->entries);
    for (int i = 0; i < n; i++) {
        out->entries[i].key = fuzz_short_bytes(c);
        fuzz_field(c, pool, depth + 1, &out->entries[i].value);
    }
}

static void fuzz_scalar(struct fuzz_cursor *c, amqp_field_value_t *out)
{
    switch (out->kind) {
    case AMQP_FIELD_KIND_BOOLEAN:
        out->value.boolean = fuzz_u8(c);
        break;
    case AMQP_FIELD_KIND_I8:
    case AMQP_FIELD_KIND_U8:
        out->value.u8 = fuzz_u8(c);
        break;
    case AMQP_FIELD_KIND_I16:
    case AMQP_FIELD_KIND_U16:
        out->value.u16 = (uint16_t)fuzz_uint(c, 2);
        break;
    case AMQP_FIELD_KIND_I32:
    case AMQP_FIELD_KIND_U32:
        out->value.u32 = (uint32_t)fuzz_uint(c, 4);
        break;
    case AMQP_FIELD_KIND_F32: {
        uint32_t bits = (uint32_t)fuzz_uint(c, 4);
        memcpy(&out->value.f32, &bits, sizeof bits);
        break;
    }
    case AMQP_FIELD_KIND_F64: {
        uint64_t bits = fuzz_uint(c, 8);
        memcpy(&out->value.f64, &bits, sizeof bits);
        break;
    }
    case AMQP_FIELD_KIND_DECIMAL:
        out->value.decimal.decimals = fuzz_u8(c);
        out->value.decimal.value = (uint32_t)fuzz_uint(c, 4);
        break;
    default: /* I64, U64, TIMESTAMP, and the unknown kind */
        out->value.u64 = fuzz_uint(c, 8);
        break;
    }
}

void fuzz_field(struct fuzz_cursor *c, amqp_pool_t *pool, int depth, amqp_field_value_t *out)
{
    memset(out, 0, sizeof *out);
    out->kind = FUZZ_KINDS[fuzz_u8(c) % sizeof FUZZ_KINDS];
    switch (out->kind) {
    case AMQP_FIELD_KIND_VOID:
        break;
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
        out->value.bytes = fuzz_short_bytes(c);
        break;
    case AMQP_FIELD_KIND_TABLE:
        fuzz_table(c, pool, depth, &out->value.table);
        break;
    case AMQP_FIELD_KIND_ARRAY:
        fuzz_array(c, pool, depth, &out->value.array);
        break;
    default:
        fuzz_scalar(c, out);
        break;
    }
}
