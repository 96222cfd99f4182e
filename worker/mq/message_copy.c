/* Deep copies of received messages (see mq/message_copy.h). */
#include "mq/message_copy.h"

#include <stdlib.h>
#include <string.h>

static amqp_bytes_t copy_bytes(amqp_pool_t *pool, amqp_bytes_t src)
{
    amqp_bytes_t out = {0, NULL};
    if (src.len == 0)
        return out;
    amqp_pool_alloc_bytes(pool, src.len, &out);
    if (!out.bytes)
        abort(); /* out of memory: the cw_xmalloc policy */
    memcpy(out.bytes, src.bytes, src.len);
    return out;
}

void mq_message_copy_init(struct mq_message_copy *out, const amqp_basic_properties_t *props,
                          amqp_bytes_t body)
{
    init_amqp_pool(&out->pool, 4096);
    out->body = copy_bytes(&out->pool, body);
    out->props = *props;
    amqp_basic_properties_t *p = &out->props;
    const struct {
        amqp_flags_t flag;
        amqp_bytes_t *field;
    } fields[] = {
        {AMQP_BASIC_CONTENT_TYPE_FLAG, &p->content_type},
        {AMQP_BASIC_CONTENT_ENCODING_FLAG, &p->content_encoding},
        {AMQP_BASIC_CORRELATION_ID_FLAG, &p->correlation_id},
        {AMQP_BASIC_REPLY_TO_FLAG, &p->reply_to},
        {AMQP_BASIC_EXPIRATION_FLAG, &p->expiration},
        {AMQP_BASIC_MESSAGE_ID_FLAG, &p->message_id},
        {AMQP_BASIC_TYPE_FLAG, &p->type},
        {AMQP_BASIC_USER_ID_FLAG, &p->user_id},
        {AMQP_BASIC_APP_ID_FLAG, &p->app_id},
        {AMQP_BASIC_CLUSTER_ID_FLAG, &p->cluster_id},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        *fields[i].field = (p->_flags & fields[i].flag) ? copy_bytes(&out->pool, *fields[i].field)
                                                        : amqp_empty_bytes;
    if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG))
        p->headers = amqp_empty_table;
    if ((p->_flags & AMQP_BASIC_HEADERS_FLAG) &&
        amqp_table_clone(&props->headers, &p->headers, &out->pool) != AMQP_STATUS_OK)
        abort(); /* only fails for want of memory */
}

void mq_message_copy_free(struct mq_message_copy *m)
{
    empty_amqp_pool(&m->pool);
    memset(m, 0, sizeof *m);
}
