/* Dead-lettering a message that can never run: the original body and properties, plus
 * headers recording why, from which queue and when; and undoing that for a replay.
 * Pure (memory from an amqp pool). */
#ifndef CWORKER_DEAD_LETTER_H
#define CWORKER_DEAD_LETTER_H

#include <amqp.h>

/* Every header dead-lettering adds starts with this; a replay removes them all. */
#define DEAD_LETTER_PREFIX         "x-cworker-"
#define DEAD_LETTER_REASON         DEAD_LETTER_PREFIX "reason"
#define DEAD_LETTER_ORIGINAL_QUEUE DEAD_LETTER_PREFIX "original-queue"
#define DEAD_LETTER_AT             DEAD_LETTER_PREFIX "dead-lettered-at"

/* out gets the original properties with the original headers (less RabbitMQ's death
 * headers, mq/death_headers.h) followed by
 * x-cworker-reason, x-cworker-original-queue and x-cworker-dead-lettered-at (ISO-8601).
 * Everything out points to lives in pool or in orig. */
void dead_letter_properties(const amqp_basic_properties_t *orig, const char *reason,
                            const char *queue, double now, amqp_pool_t *pool,
                            amqp_basic_properties_t *out);

/* *out = props without the x-cworker-* headers dead-lettering added (nor RabbitMQ's death
 * headers); all other
 * properties and headers are kept as they are (memory in pool or props). The headers
 * flag is cleared when no header is left. */
void dead_letter_restore_properties(const amqp_basic_properties_t *props, amqp_pool_t *pool,
                                    amqp_basic_properties_t *out);

#endif
