/* Writes the binary seed corpora (the fuzz_input.h layout) into <dir>/celery_message/ and
 * <dir>/mq_json/: the real Celery 5.2.6 capture from the unit-test fixtures (its AMQP
 * properties decoded with rabbitmq-c, then re-encoded in our layout) and a few protocol 1
 * and kombu-marker variants. A host tool: built without sanitizers, run by `make fuzz`. */
#include "fuzz_input.h"

#include <amqp_framing.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../unit/fixtures/celery_capture.h"

static void put_u8(FILE *f, unsigned v)
{
    fputc((int)(v & 0xff), f);
}

static void put_le(FILE *f, uint64_t v, int width)
{
    for (int i = 0; i < width; i++)
        put_u8(f, (unsigned)(v >> (8 * i)));
}

static void put_short(FILE *f, amqp_bytes_t b)
{
    size_t n = b.len > 255 ? 255 : b.len;
    put_u8(f, (unsigned)n);
    fwrite(b.bytes, 1, n, f);
}

static void put_field(FILE *f, const amqp_field_value_t *v);

static void put_table(FILE *f, const amqp_table_t *t)
{
    put_u8(f, (unsigned)t->num_entries);
    for (int i = 0; i < t->num_entries; i++) {
        put_short(f, t->entries[i].key);
        put_field(f, &t->entries[i].value);
    }
}

static void put_field(FILE *f, const amqp_field_value_t *v)
{
    put_u8(f, (unsigned)fuzz_kind_index(v->kind));
    switch (v->kind) {
    case AMQP_FIELD_KIND_VOID:
        break;
    case AMQP_FIELD_KIND_BOOLEAN:
    case AMQP_FIELD_KIND_I8:
    case AMQP_FIELD_KIND_U8:
        put_u8(f, v->value.u8);
        break;
    case AMQP_FIELD_KIND_I16:
    case AMQP_FIELD_KIND_U16:
        put_le(f, v->value.u16, 2);
        break;
    case AMQP_FIELD_KIND_I32:
    case AMQP_FIELD_KIND_U32:
    case AMQP_FIELD_KIND_F32:
        put_le(f, v->value.u32, 4);
        break;
    case AMQP_FIELD_KIND_DECIMAL:
        put_u8(f, v->value.decimal.decimals);
        put_le(f, v->value.decimal.value, 4);
        break;
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
        put_short(f, v->value.bytes);
        break;
    case AMQP_FIELD_KIND_TABLE:
        put_table(f, &v->value.table);
        break;
    case AMQP_FIELD_KIND_ARRAY:
        put_u8(f, (unsigned)v->value.array.num_entries);
        for (int i = 0; i < v->value.array.num_entries; i++)
            put_field(f, &v->value.array.entries[i]);
        break;
    default: /* I64, U64, F64, TIMESTAMP */
        put_le(f, v->value.u64, 8);
        break;
    }
}

static FILE *open_seed(const char *dir, const char *target, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/%s/%s", dir, target, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    return f;
}

/* A celery_message seed: properties in the fuzz_celery_message layout, then the body. */
static void message_seed(const char *dir, const char *name, const amqp_basic_properties_t *p,
                         const char *body)
{
    FILE *f = open_seed(dir, "celery_message", name);
    unsigned flags = 0;
    if (p->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG)
        flags |= 0x01;
    if (p->_flags & AMQP_BASIC_CONTENT_ENCODING_FLAG)
        flags |= 0x02;
    if (p->_flags & AMQP_BASIC_HEADERS_FLAG)
        flags |= 0x04;
    if (p->_flags & AMQP_BASIC_REPLY_TO_FLAG)
        flags |= 0x08;
    if (p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG)
        flags |= 0x10;
    put_u8(f, flags);
    if (flags & 0x01)
        put_short(f, p->content_type);
    if (flags & 0x02)
        put_short(f, p->content_encoding);
    if (flags & 0x04)
        put_table(f, &p->headers);
    if (flags & 0x08)
        put_short(f, p->reply_to);
    if (flags & 0x10)
        put_short(f, p->correlation_id);
    fputs(body, f);
    fclose(f);
}

static void json_seed(const char *dir, const char *name, const amqp_table_t *t)
{
    FILE *f = open_seed(dir, "mq_json", name);
    amqp_field_value_t v = {.kind = AMQP_FIELD_KIND_TABLE, .value.table = *t};
    put_u8(f, 0); /* mode: AMQP value */
    put_field(f, &v);
    fclose(f);
}

static void json_text_seed(const char *dir, const char *name, const char *text)
{
    FILE *f = open_seed(dir, "mq_json", name);
    put_u8(f, 1); /* mode: JSON text */
    fputs(text, f);
    fclose(f);
}

static const char V1_BODY[] =
    "{\"task\": \"app.worker.tasks.parse_run\", \"id\": \"6f1c1e1a-1d7e-4b39-9b3c-0c1f2e3d4c5b\","
    " \"args\": [42], \"kwargs\": {}, \"retries\": 1, \"eta\": \"2026-11-24T21:00:00+00:00\","
    " \"expires\": null, \"utc\": true, \"callbacks\": null, \"errbacks\": null,"
    " \"timelimit\": [3600, null], \"taskset\": \"g-1\", \"chord\": null}";
static const char KOMBU_BODY[] =
    "[[{\"__type__\": \"decimal\", \"__value__\": \"42\"}], {\"when\": {\"__type__\": "
    "\"datetime\", \"__value__\": \"2026-11-24T21:00:00\"}, \"u\": {\"__type__\": \"uuid\", "
    "\"__value__\": {\"hex\": \"a3c9d0e25b7f4c1a8e6d2f4b9a7c1e30\", \"version\": 4}}}, "
    "{\"callbacks\": null, \"errbacks\": null, \"chain\": null, \"chord\": null}]";

int main(int argc, char **argv)
{
    amqp_pool_t pool;
    amqp_basic_properties_t *real = NULL;
    amqp_bytes_t enc = {sizeof real_positional_props, (void *)real_positional_props};

    if (argc != 2) {
        fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
        return 2;
    }
    init_amqp_pool(&pool, 4096);
    if (amqp_decode_properties(AMQP_BASIC_CLASS, &pool, enc, (void **)&real) != 0) {
        fprintf(stderr, "seed_gen: the captured properties do not decode\n");
        return 1;
    }
    message_seed(argv[1], "v2_real_positional", real, real_positional_body);
    message_seed(argv[1], "v2_kombu_markers", real, KOMBU_BODY);
    json_seed(argv[1], "headers_real_positional", &real->headers);

    amqp_basic_properties_t v1 = {.content_type = amqp_cstring_bytes("application/json"),
                                  .content_encoding = amqp_cstring_bytes("utf-8"),
                                  .reply_to = amqp_cstring_bytes("reply.q"),
                                  .correlation_id = amqp_cstring_bytes("c-1")};
    v1._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG |
                AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG;
    message_seed(argv[1], "v1_body", &v1, V1_BODY);
    /* hybrid: v2 headers, v1 object body */
    real->_flags |= AMQP_BASIC_HEADERS_FLAG;
    message_seed(argv[1], "hybrid", real, V1_BODY);

    json_text_seed(argv[1], "text_real_body", real_positional_body);
    json_text_seed(argv[1], "text_v1_body", V1_BODY);
    json_text_seed(argv[1], "text_numbers",
                   "{\"a\": [1, -2147483649, 4294967296, 1.5e300, "
                   "true, null, \"x\\u00e9\"], \"b\": {\"c\": {}}}");
    empty_amqp_pool(&pool);
    return 0;
}
