/* libFuzzer target: celery_message_decode over AMQP properties and a body.
 *
 * Input: flags:u8, then for each flag that is set, in this order,
 *   0x01 content_type (len:u8 data), 0x02 content_encoding (len:u8 data),
 *   0x04 headers (a table, see fuzz_input.h), 0x08 reply_to, 0x10 correlation_id;
 * every remaining byte is the body. With no headers the protocol 1 body path is taken;
 * with a "task" header, protocol 2.
 *
 * A message that decodes is also retried (celery_message_encode_retry) and the retry is
 * decoded again: a message we publish must be one we can read back. */
#include "celery/message.h"
#include "fuzz_input.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FLAG_CONTENT_TYPE     0x01
#define FLAG_CONTENT_ENCODING 0x02
#define FLAG_HEADERS          0x04
#define FLAG_REPLY_TO         0x08
#define FLAG_CORRELATION_ID   0x10

/* A fixed clock keeps runs reproducible (2027-01-15). */
#define FUZZ_NOW 1800000000.0

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void build_props(struct fuzz_cursor *c, amqp_pool_t *pool, amqp_basic_properties_t *props)
{
    uint8_t flags = fuzz_u8(c);

    memset(props, 0, sizeof *props);
    if (flags & FLAG_CONTENT_TYPE) {
        props->_flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
        props->content_type = fuzz_short_bytes(c);
    }
    if (flags & FLAG_CONTENT_ENCODING) {
        props->_flags |= AMQP_BASIC_CONTENT_ENCODING_FLAG;
        props->content_encoding = fuzz_short_bytes(c);
    }
    if (flags & FLAG_HEADERS) {
        props->_flags |= AMQP_BASIC_HEADERS_FLAG;
        fuzz_table(c, pool, 0, &props->headers);
    }
    if (flags & FLAG_REPLY_TO) {
        props->_flags |= AMQP_BASIC_REPLY_TO_FLAG;
        props->reply_to = fuzz_short_bytes(c);
    }
    if (flags & FLAG_CORRELATION_ID) {
        props->_flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
        props->correlation_id = fuzz_short_bytes(c);
    }
}

static void fail(const char *what, const struct cw_error *err)
{
    fprintf(stderr, "fuzz_celery_message: %s: %s\n", what, err ? err->message : "");
    abort();
}

/* The retry of a decoded task must decode to the same task, one retry later. */
static void check_retry(const struct celery_task *t)
{
    struct celery_outgoing out;
    struct celery_task again;
    struct cw_error err = {0};

    if (celery_message_encode_retry(t, FUZZ_NOW, 1.5, &out, &err) != 0) {
        celery_outgoing_free(&out);
        return; /* e.g. an expires too far away to format: refused, not mangled */
    }
    if (celery_message_decode(&out.props, out.body.bytes, out.body.len, &again, &err) != 0)
        fail("our own retry does not decode", &err);
    if (strcmp(again.id, t->id) != 0 || strcmp(again.task, t->task) != 0 ||
        again.retries != t->retries + 1 || again.protocol != 2)
        fail("our own retry decodes to another task", NULL);
    celery_task_free(&again);
    celery_outgoing_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_cursor c = {data, size};
    amqp_pool_t pool;
    amqp_basic_properties_t props;
    struct celery_task t;
    struct cw_error err = {0};
    long run_id;

    init_amqp_pool(&pool, 4096);
    build_props(&c, &pool, &props);
    if (celery_message_decode(&props, c.p, c.left, &t, &err) == 0) {
        if (celery_task_int_arg(&t, 0, "run_id", &run_id, &err) != 0)
            cw_error_clear(&err);
        check_retry(&t);
    }
    celery_task_free(&t);
    empty_amqp_pool(&pool);
    return 0;
}
