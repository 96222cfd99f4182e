/* Opening an AMQP connection off the supervisor's loop: connecting, the handshake and the
 * declarations are synchronous in rabbitmq-c and can each wait seconds on a broker that
 * stopped answering. A connector runs them in a thread of its own and hands the finished
 * connection over; the loop only polls it, so results, time limits and signals keep being
 * served while a broker is unreachable. One attempt at a time; the connection is never
 * touched by two threads at once (the thread owns it until mq_connector_poll returns 1). */
#ifndef CWORKER_MQ_CONNECTOR_H
#define CWORKER_MQ_CONNECTOR_H

#include "base/error.h"
#include "mq/conn.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

/* Opens *c (and declares what it needs); runs in the connector's thread, which owns arg
 * until the attempt is collected; anything else it reads must not change meanwhile (the
 * configuration). */
typedef int (*mq_open_fn)(void *arg, struct mq_conn *c, struct cw_error *err);

struct mq_connector {
    pthread_t thread;
    bool running; /* an attempt was started and not yet collected */
    atomic_bool finished;
    mq_open_fn open;
    void *arg;
    struct mq_conn conn; /* the thread's until collected */
    struct cw_error err;
    int rc;
};

/* Starts an attempt; false when one is already running or no thread could be made (err). */
bool mq_connector_start(struct mq_connector *k, mq_open_fn open, void *arg, struct cw_error *err);
/* 0 while the attempt runs; 1 when it finished: on success *out gets the open connection
 * (returns 1, *ok true), else *ok false and err says why. */
int mq_connector_poll(struct mq_connector *k, struct mq_conn *out, bool *ok, struct cw_error *err);
bool mq_connector_busy(const struct mq_connector *k);
/* At exit: waits for a running attempt and drops what it opened. */
void mq_connector_stop(struct mq_connector *k);

#endif
