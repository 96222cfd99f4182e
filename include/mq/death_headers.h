/* The headers RabbitMQ's dead-lettering adds (x-death, x-first-death-*, x-last-death-*),
 * removed from every message cworker publishes again: RabbitMQ before 4.0.1 trusts an
 * x-death it finds on a published message, and drops as a cycle a message dead-lettered
 * from a queue already listed there, so a message that travelled the native-delay ladder
 * (or a delay queue) and is sent through it again would vanish. Pure (memory only). */
#ifndef CWORKER_MQ_DEATH_HEADERS_H
#define CWORKER_MQ_DEATH_HEADERS_H

#include <amqp.h>
#include <stdbool.h>

/* True for x-death, x-first-death-* and x-last-death-*. */
bool mq_is_death_header(amqp_bytes_t key);

/* *out = props without the death headers; everything else is kept (memory in pool or
 * props). The headers flag is cleared when no header is left. */
void mq_strip_death_headers(const amqp_basic_properties_t *props, amqp_pool_t *pool,
                            amqp_basic_properties_t *out);

#endif
