/* Properties of a dead-lettered message. */
#include "dead_letter.h"
#include "celery_message.h"

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
        if (k.len > 10 && memcmp(k.bytes, "x-cworker-", 10) == 0)
            continue;
        entries[n++] = orig->headers.entries[i];
    }
    char when[64];
    celery_format_iso8601(now, when, sizeof when);
    set_text(&entries[n++], "x-cworker-reason", reason, pool);
    set_text(&entries[n++], "x-cworker-original-queue", queue, pool);
    set_text(&entries[n++], "x-cworker-dead-lettered-at", when, pool);
    out->headers.num_entries = n;
    out->headers.entries = entries;
    out->_flags |= AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    out->delivery_mode = 2;
    /* A per-message TTL would make the dead letter itself expire. */
    out->_flags &= ~AMQP_BASIC_EXPIRATION_FLAG;
}
