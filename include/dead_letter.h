/* Dead-lettering a message that can never run: the original body and properties, plus
 * headers recording why, from which queue and when. Pure (memory from an amqp pool). */
#ifndef CWORKER_DEAD_LETTER_H
#define CWORKER_DEAD_LETTER_H

#include <amqp.h>

/* out gets the original properties with the original headers followed by
 * x-cworker-reason, x-cworker-original-queue and x-cworker-dead-lettered-at (ISO-8601).
 * Everything out points to lives in pool or in orig. */
void dead_letter_properties(const amqp_basic_properties_t *orig, const char *reason,
                            const char *queue, double now, amqp_pool_t *pool,
                            amqp_basic_properties_t *out);

#endif
