/* AMQP field table <-> json-c conversion (see include/amqp_json.h). */
#include "mq/json.h"

#include "base/utf8.h"
#include "base/xalloc.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int from_field(const amqp_field_value_t *v, int depth, json_object **out,
                      struct cw_error *err);
static int to_field(json_object *j, amqp_pool_t *pool, int depth, amqp_field_value_t *out,
                    struct cw_error *err);

const amqp_field_value_t *mq_json_table_get(const amqp_table_t *table, const char *key)
{
    size_t klen = strlen(key);

    if (table == NULL)
        return NULL;
    for (int i = 0; i < table->num_entries; i++) {
        const amqp_bytes_t *k = &table->entries[i].key;
        if (k->len == klen && memcmp(k->bytes, key, klen) == 0)
            return &table->entries[i].value;
    }
    return NULL;
}

static int string_from_bytes(amqp_bytes_t b, json_object **out, struct cw_error *err)
{
    if (b.len > INT32_MAX) {
        CW_FAIL(err, CW_ERR_PERMANENT, "string of %zu bytes is too long", b.len);
        return -1;
    }
    if (!utf8_valid(b.bytes, b.len)) {
        CW_FAIL(err, CW_ERR_PERMANENT, "string is not valid UTF-8");
        return -1;
    }
    *out = json_object_new_string_len(b.len ? b.bytes : "", (int)b.len);
    return 0;
}

/* py-amqp hands Python a naive UTC datetime for 'T'; its isoformat() has no offset,
 * but we say +00:00 so nobody has to guess. */
static json_object *timestamp_string(uint64_t secs)
{
    char buf[64];
    struct tm tm;
    time_t t = (time_t)secs;

    if (secs > (uint64_t)INT64_MAX || gmtime_r(&t, &tm) == NULL)
        return json_object_new_string("");
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S+00:00", &tm);
    return json_object_new_string(buf);
}

static int from_table(const amqp_table_t *t, int depth, json_object **out, struct cw_error *err)
{
    json_object *obj = json_object_new_object();

    for (int i = 0; i < t->num_entries; i++) {
        const amqp_table_entry_t *e = &t->entries[i];
        json_object *v = NULL;
        char *key = cw_xstrndup(e->key.len ? e->key.bytes : "", e->key.len);

        if (strlen(key) != e->key.len || !utf8_valid(key, e->key.len)) {
            CW_FAIL(err, CW_ERR_PERMANENT, "table key is not a valid UTF-8 string");
            free(key);
            json_object_put(obj);
            return -1;
        }
        if (from_field(&e->value, depth + 1, &v, err) != 0) {
            CW_WRAP(err, "in table entry \"%.64s\"", key);
            free(key);
            json_object_put(obj);
            return -1;
        }
        /* First entry wins, as in mq_json_table_get. */
        if (json_object_object_get_ex(obj, key, NULL))
            json_object_put(v);
        else
            json_object_object_add(obj, key, v);
        free(key);
    }
    *out = obj;
    return 0;
}

static int from_array(const amqp_array_t *a, int depth, json_object **out, struct cw_error *err)
{
    json_object *arr = json_object_new_array_ext(a->num_entries > 0 ? a->num_entries : 1);

    for (int i = 0; i < a->num_entries; i++) {
        json_object *v = NULL;
        if (from_field(&a->entries[i], depth + 1, &v, err) != 0) {
            CW_WRAP(err, "in array element %d", i);
            json_object_put(arr);
            return -1;
        }
        json_object_array_add(arr, v);
    }
    *out = arr;
    return 0;
}

static int from_field(const amqp_field_value_t *v, int depth, json_object **out,
                      struct cw_error *err)
{
    if (depth > MQ_JSON_MAX_DEPTH) {
        CW_FAIL(err, CW_ERR_PERMANENT, "nesting deeper than %d levels", MQ_JSON_MAX_DEPTH);
        return -1;
    }
    switch (v->kind) {
    case AMQP_FIELD_KIND_VOID:
        *out = NULL;
        return 0;
    case AMQP_FIELD_KIND_BOOLEAN:
        *out = json_object_new_boolean(v->value.boolean != 0);
        return 0;
    case AMQP_FIELD_KIND_I8:
        *out = json_object_new_int64(v->value.i8);
        return 0;
    case AMQP_FIELD_KIND_U8:
        *out = json_object_new_int64(v->value.u8);
        return 0;
    case AMQP_FIELD_KIND_I16:
        *out = json_object_new_int64(v->value.i16);
        return 0;
    case AMQP_FIELD_KIND_U16:
        *out = json_object_new_int64(v->value.u16);
        return 0;
    case AMQP_FIELD_KIND_I32:
        *out = json_object_new_int64(v->value.i32);
        return 0;
    case AMQP_FIELD_KIND_U32:
        *out = json_object_new_int64(v->value.u32);
        return 0;
    case AMQP_FIELD_KIND_I64:
        *out = json_object_new_int64(v->value.i64);
        return 0;
    case AMQP_FIELD_KIND_U64:
        /* py-amqp writes Python ints beyond 32 bits as 'L' = signed long long, which
         * rabbitmq-c names U64: reinterpret the bits as signed. */
        *out = json_object_new_int64((int64_t)v->value.u64);
        return 0;
    case AMQP_FIELD_KIND_F32:
        *out = json_object_new_double(v->value.f32);
        return 0;
    case AMQP_FIELD_KIND_F64:
        *out = json_object_new_double(v->value.f64);
        return 0;
    case AMQP_FIELD_KIND_DECIMAL:
        *out = json_object_new_double(v->value.decimal.value /
                                      pow(10.0, (double)v->value.decimal.decimals));
        return 0;
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
        return string_from_bytes(v->value.bytes, out, err);
    case AMQP_FIELD_KIND_TIMESTAMP:
        *out = timestamp_string(v->value.u64);
        return 0;
    case AMQP_FIELD_KIND_TABLE:
        return from_table(&v->value.table, depth, out, err);
    case AMQP_FIELD_KIND_ARRAY:
        return from_array(&v->value.array, depth, out, err);
    }
    CW_FAIL(err, CW_ERR_PERMANENT, "unknown AMQP field kind 0x%02x", (unsigned)v->kind);
    return -1;
}

int mq_json_from_field(const amqp_field_value_t *value, json_object **out, struct cw_error *err)
{
    return from_field(value, 0, out, err);
}

/* Pool memory is treated like cw_xmalloc: exhaustion aborts (see xalloc.h for why). */
static void *pool_alloc(amqp_pool_t *pool, size_t n)
{
    void *p = amqp_pool_alloc(pool, n ? n : 1);

    if (p == NULL)
        abort();
    return p;
}

static amqp_bytes_t pool_bytes(amqp_pool_t *pool, const char *s, size_t len)
{
    amqp_bytes_t b;

    b.bytes = pool_alloc(pool, len);
    if (len)
        memcpy(b.bytes, s, len);
    b.len = len;
    return b;
}

static void int_to_field(int64_t n, amqp_field_value_t *out)
{
    if (n >= INT32_MIN && n <= INT32_MAX) {
        out->kind = AMQP_FIELD_KIND_I32;
        out->value.i32 = (int32_t)n;
    } else {
        /* 'L': py-amqp unpacks it as signed '>q' (rabbitmq-c's 'l' would be unsigned). */
        out->kind = AMQP_FIELD_KIND_U64;
        out->value.u64 = (uint64_t)n;
    }
}

static int table_from_object(json_object *obj, amqp_pool_t *pool, int depth, amqp_table_t *out,
                             struct cw_error *err)
{
    int n = json_object_object_length(obj);
    int i = 0;

    out->num_entries = n;
    out->entries = n ? pool_alloc(pool, (size_t)n * sizeof(amqp_table_entry_t)) : NULL;
    json_object_object_foreach(obj, key, val)
    {
        size_t klen = strlen(key);
        if (klen > 255) {
            CW_FAIL(err, CW_ERR_PERMANENT, "table key of %zu bytes is longer than 255", klen);
            return -1;
        }
        out->entries[i].key = pool_bytes(pool, key, klen);
        if (to_field(val, pool, depth + 1, &out->entries[i].value, err) != 0) {
            CW_WRAP(err, "in table entry \"%.64s\"", key);
            return -1;
        }
        i++;
    }
    return 0;
}

static int array_from_json(json_object *arr, amqp_pool_t *pool, int depth, amqp_array_t *out,
                           struct cw_error *err)
{
    size_t n = json_object_array_length(arr);

    out->num_entries = (int)n;
    out->entries = n ? pool_alloc(pool, n * sizeof(amqp_field_value_t)) : NULL;
    for (size_t i = 0; i < n; i++) {
        if (to_field(json_object_array_get_idx(arr, i), pool, depth + 1, &out->entries[i], err) !=
            0) {
            CW_WRAP(err, "in array element %zu", i);
            return -1;
        }
    }
    return 0;
}

static int to_field(json_object *j, amqp_pool_t *pool, int depth, amqp_field_value_t *out,
                    struct cw_error *err)
{
    if (depth > MQ_JSON_MAX_DEPTH) {
        CW_FAIL(err, CW_ERR_PERMANENT, "nesting deeper than %d levels", MQ_JSON_MAX_DEPTH);
        return -1;
    }
    switch (json_object_get_type(j)) {
    case json_type_null:
        out->kind = AMQP_FIELD_KIND_VOID;
        return 0;
    case json_type_boolean:
        out->kind = AMQP_FIELD_KIND_BOOLEAN;
        out->value.boolean = json_object_get_boolean(j) ? 1 : 0;
        return 0;
    case json_type_int:
        int_to_field(json_object_get_int64(j), out);
        return 0;
    case json_type_double:
        out->kind = AMQP_FIELD_KIND_F64;
        out->value.f64 = json_object_get_double(j);
        return 0;
    case json_type_string:
        out->kind = AMQP_FIELD_KIND_UTF8;
        out->value.bytes =
            pool_bytes(pool, json_object_get_string(j), (size_t)json_object_get_string_len(j));
        return 0;
    case json_type_object:
        out->kind = AMQP_FIELD_KIND_TABLE;
        return table_from_object(j, pool, depth, &out->value.table, err);
    case json_type_array:
        out->kind = AMQP_FIELD_KIND_ARRAY;
        return array_from_json(j, pool, depth, &out->value.array, err);
    }
    CW_FAIL(err, CW_ERR_INTERNAL, "unknown JSON type %d", (int)json_object_get_type(j));
    return -1;
}

int mq_json_to_field(json_object *j, amqp_pool_t *pool, amqp_field_value_t *out,
                     struct cw_error *err)
{
    return to_field(j, pool, 0, out, err);
}

int mq_json_to_table(json_object *obj, amqp_pool_t *pool, amqp_table_t *out, struct cw_error *err)
{
    if (!json_object_is_type(obj, json_type_object)) {
        CW_FAIL(err, CW_ERR_INTERNAL, "headers are not a JSON object");
        return -1;
    }
    return table_from_object(obj, pool, 0, out, err);
}
