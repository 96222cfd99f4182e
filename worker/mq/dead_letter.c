/* Properties of a dead-lettered message, and the same properties restored for a replay. */
#include "mq/dead_letter.h"
#include "celery/message.h"
#include "mq/death_headers.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static void set_text(amqp_table_entry_t *e, const char *key, const char *value, amqp_pool_t *pool)
{
    e->key = amqp_cstring_bytes(key);
    e->value.kind = AMQP_FIELD_KIND_UTF8;
    size_t len = strlen(value);
    void *copy = amqp_pool_alloc(pool, len ? len : 1);
    memcpy(copy, value, len);
    e->value.value.bytes.len = len;
    e->value.value.bytes.bytes = copy;
}

static bool is_dead_letter_header(amqp_bytes_t key)
{
    size_t n = strlen(DEAD_LETTER_PREFIX);
    return key.len >= n && memcmp(key.bytes, DEAD_LETTER_PREFIX, n) == 0;
}

void dead_letter_properties(const amqp_basic_properties_t *orig, const char *reason,
                            const char *queue, double now, amqp_pool_t *pool,
                            amqp_basic_properties_t *out)
{
    *out = *orig;
    int nold = (orig->_flags & AMQP_BASIC_HEADERS_FLAG) ? orig->headers.num_entries : 0;
    amqp_table_entry_t *entries =
        amqp_pool_alloc(pool, sizeof(amqp_table_entry_t) * (size_t)(nold + 3));
    int n = 0;
    for (int i = 0; i < nold; i++) {
        amqp_bytes_t k = orig->headers.entries[i].key;
        /* an earlier dead-lettering's reason is replaced, not duplicated */
        if ((k.len > strlen(DEAD_LETTER_PREFIX) && is_dead_letter_header(k)) ||
            mq_is_death_header(k))
            continue;
        entries[n++] = orig->headers.entries[i];
    }
    char when[64];
    celery_format_iso8601(now, when, sizeof when);
    set_text(&entries[n++], DEAD_LETTER_REASON, reason, pool);
    set_text(&entries[n++], DEAD_LETTER_ORIGINAL_QUEUE, queue, pool);
    set_text(&entries[n++], DEAD_LETTER_AT, when, pool);
    out->headers.num_entries = n;
    out->headers.entries = entries;
    out->_flags |= AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    out->delivery_mode = 2;
    /* A per-message TTL would make the dead letter itself expire. */
    out->_flags &= ~AMQP_BASIC_EXPIRATION_FLAG;
}

void dead_letter_restore_properties(const amqp_basic_properties_t *props, amqp_pool_t *pool,
                                    amqp_basic_properties_t *out)
{
    int nold = (props->_flags & AMQP_BASIC_HEADERS_FLAG) ? props->headers.num_entries : 0;
    amqp_table_entry_t *entries;
    int n = 0;

    *out = *props;
    if (nold == 0)
        return;
    entries = amqp_pool_alloc(pool, sizeof(*entries) * (size_t)nold);
    if (entries == NULL)
        abort(); /* out of memory: same policy as cw_xmalloc */
    for (int i = 0; i < nold; i++)
        if (!is_dead_letter_header(props->headers.entries[i].key) &&
            !mq_is_death_header(props->headers.entries[i].key))
            entries[n++] = props->headers.entries[i];
    out->headers.num_entries = n;
    out->headers.entries = entries;
    if (n == 0)
        out->_flags &= ~AMQP_BASIC_HEADERS_FLAG;
}
