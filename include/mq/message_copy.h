/* A received message kept whole (body and properties, headers included) after rabbitmq-c
 * has released the envelope: so a delivery can be dead-lettered exactly as it arrived at
 * any point of its life, not only while its envelope exists. Pure (memory only). */
#ifndef CWORKER_MQ_MESSAGE_COPY_H
#define CWORKER_MQ_MESSAGE_COPY_H

#include <amqp.h>

struct mq_message_copy {
    amqp_basic_properties_t props; /* everything it points to lives in pool */
    amqp_bytes_t body;             /* in pool */
    amqp_pool_t pool;
};

/* Deep-copies props and body into *out (initialised here). */
void mq_message_copy_init(struct mq_message_copy *out, const amqp_basic_properties_t *props,
                          amqp_bytes_t body);
void mq_message_copy_free(struct mq_message_copy *m);

#endif
