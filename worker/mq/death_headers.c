/* Removing RabbitMQ's dead-lettering headers before a message is published again. */
#include "mq/death_headers.h"

#include <stdlib.h>
#include <string.h>

static bool has_prefix(amqp_bytes_t key, const char *prefix)
{
    size_t n = strlen(prefix);
    return key.len >= n && memcmp(key.bytes, prefix, n) == 0;
}

bool mq_is_death_header(amqp_bytes_t key)
{
    return (key.len == strlen("x-death") && has_prefix(key, "x-death")) ||
           has_prefix(key, "x-first-death-") || has_prefix(key, "x-last-death-");
}

void mq_strip_death_headers(const amqp_basic_properties_t *props, amqp_pool_t *pool,
                            amqp_basic_properties_t *out)
{
    int nold = (props->_flags & AMQP_BASIC_HEADERS_FLAG) ? props->headers.num_entries : 0;
    *out = *props;
    if (nold == 0)
        return;
    amqp_table_entry_t *entries = amqp_pool_alloc(pool, sizeof(*entries) * (size_t)nold);
    if (entries == NULL)
        abort(); /* out of memory: same policy as cw_xmalloc */
    int n = 0;
    for (int i = 0; i < nold; i++)
        if (!mq_is_death_header(props->headers.entries[i].key))
            entries[n++] = props->headers.entries[i];
    out->headers.num_entries = n;
    out->headers.entries = entries;
    if (n == 0)
        out->_flags &= ~AMQP_BASIC_HEADERS_FLAG;
}
