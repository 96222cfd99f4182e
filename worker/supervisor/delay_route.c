/* Supervisor: where a message that must wait is published (a retry, a held eta handed
 * back): a delay queue, or Celery 5.5's native-delay ladder. */
#include "mq/native_delay.h"
#include "supervisor/internal.h"

#include <stdio.h>

void sup_delay_route(const struct supervisor *s, const char *queue, double delay, int slot,
                     char *exchange, size_t exchange_len, char *routing_key, size_t key_len)
{
    const struct cw_config *cfg = s->cfg;
    if (cfg->retry_native) {
        long seconds = native_delay_seconds(delay);
        if (seconds > 0 && native_delay_routing_key(seconds, queue, routing_key, key_len)) {
            snprintf(exchange, exchange_len, "%s", NATIVE_DELAY_ENTRY_EXCHANGE);
            return;
        }
        snprintf(exchange, exchange_len, "%s", ""); /* nothing to wait for: straight to queue */
        snprintf(routing_key, key_len, "%s", queue);
        return;
    }
    int last = cfg->nretry_delays - 1;
    int i = slot > last ? last : slot;
    if (i < 0)
        i = 0; /* as before: the first delay for a corrupt slot (or no delays at all) */
    snprintf(exchange, exchange_len, "%s", "");
    mq_conn_retry_queue_name(queue, cfg->retry_delays[i], routing_key, key_len);
}
