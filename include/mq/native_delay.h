/* Celery 5.5's native delayed delivery (kombu's transport/native_delayed_delivery.py): the
 * names, binding keys and routing keys of the celery_delayed_27 ... celery_delayed_0 ladder
 * that ends in the celery_delayed_delivery exchange. Pure: strings only, no I/O.
 *
 * A delayed message is published to celery_delayed_27 with the routing key
 * "<b27>.<b26>. ... .<b0>.<routing key>", the delay in whole seconds as 28 binary digits.
 * At level L a 1 in digit L sends it into queue celery_delayed_L (TTL 2^L s), whose dead
 * letters go to exchange L-1; a 0 sends it straight on to exchange L-1 by an
 * exchange-to-exchange binding. Level 0 ends in celery_delayed_delivery, where each work
 * queue's exchange is bound with "#.<its routing key>". */
#ifndef CWORKER_MQ_NATIVE_DELAY_H
#define CWORKER_MQ_NATIVE_DELAY_H

#include <stdbool.h>
#include <stddef.h>

#define NATIVE_DELAY_LEVELS    28
#define NATIVE_DELAY_MAX_LEVEL (NATIVE_DELAY_LEVELS - 1)
/* The longest delay the ladder holds: 2^28 - 1 s (about 8.5 years). */
#define NATIVE_DELAY_MAX_SECONDS       ((1L << NATIVE_DELAY_LEVELS) - 1)
#define NATIVE_DELAY_DELIVERY_EXCHANGE "celery_delayed_delivery"
/* Where a delayed message is published (Celery 5.5 always starts at the top). */
#define NATIVE_DELAY_ENTRY_EXCHANGE "celery_delayed_27"
/* The whole ladder as one place a retry waits in (cworker_tasks.retry_queue, the
 * dashboard's queue table): its levels are shared by every queue. */
#define NATIVE_DELAY_LADDER_NAME "celery_delayed_27..0"

/* "celery_delayed_<level>" (the exchange and the queue of that level). */
void native_delay_level_name(int level, char *out, size_t len);

/* The key binding queue celery_delayed_<level> to its exchange: digit `level` is 1
 * ("1.#" at level 27, "*.1.#" at 26, ...). */
void native_delay_queue_key(int level, char *out, size_t len);

/* The key binding the next stop (exchange level-1, or celery_delayed_delivery after
 * level 0) to exchange celery_delayed_<level>: digit `level` is 0. */
void native_delay_pass_key(int level, char *out, size_t len);

/* The key binding a work queue (and its exchange, to celery_delayed_delivery) for routing
 * key rk: "#.<rk>", or rk itself when it starts with '#' (as kombu's worker binds). */
void native_delay_work_key(const char *rk, char *out, size_t len);

/* An AMQP routing key is at most 255 bytes: the 28 digits and their dots take 56, so a
 * queue whose routing key is longer cannot be reached through the ladder. */
#define NATIVE_DELAY_MAX_KEY       255
#define NATIVE_DELAY_MAX_QUEUE_KEY (NATIVE_DELAY_MAX_KEY - 2 * NATIVE_DELAY_LEVELS)

/* kombu's calculate_routing_key: the 28 binary digits of seconds, dot separated, then
 * ".<rk>". False (out untouched) when seconds is outside 1..NATIVE_DELAY_MAX_SECONDS, rk is
 * empty or longer than NATIVE_DELAY_MAX_QUEUE_KEY, or the key does not fit in len. */
bool native_delay_routing_key(long seconds, const char *rk, char *out, size_t len);

/* The whole seconds a delay of `delay` s travels through the ladder: rounded up, so that
 * the message never arrives before its eta, and capped at NATIVE_DELAY_MAX_SECONDS;
 * 0 for a delay under a millisecond (nothing to wait for: publish it to its queue). */
long native_delay_seconds(double delay);

#endif
