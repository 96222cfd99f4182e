/* Reading and replaying the dead-letter queue <queue>.dead on a short-lived connection of
 * their own: what `cworker dlq list|replay` (cmd_dlq.c) and the HTTP listener's dashboard
 * (POST /v1/worker/dlq/replay) both run, so they cannot differ.
 *
 * Both read with basic.get WITHOUT auto-ack, so every message fetched stays the broker's
 * until we say otherwise: replay acks a message only after the broker confirmed its copy
 * in the original queue, and every other message is given back with basic.nack(requeue).
 * RabbitMQ puts requeued messages back at their old position, so the queue's order is
 * kept; and a caller killed halfway loses nothing, because the broker requeues a closed
 * connection's unacked messages. (A kill between a replay's confirm and its ack leaves the
 * message in both queues: a duplicate, never a loss.) */
#ifndef CWORKER_DLQ_OPS_H
#define CWORKER_DLQ_OPS_H

#include "base/config.h"
#include "base/error.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#define DLQ_QUEUE_NAME_MAX 255 /* an AMQP short string */

/* Called with each message's dlq_message_describe object (borrowed: get a reference to
 * keep it). */
typedef void (*dlq_each_fn)(void *ctx, json_object *desc);
/* Called for a message that could not be replayed for its own reason (it stays). */
typedef void (*dlq_problem_fn)(void *ctx, const struct cw_error *err);

/* The first `limit` messages of <queue>.dead, head first, to each(); nothing is consumed.
 * *ready = the queue's message count, *shown = how many were passed. */
CW_MUST_CHECK int dlq_list(const struct cw_config *cfg, const char *queue, long limit,
                           dlq_each_fn each, void *ctx, uint32_t *ready, long *shown,
                           struct cw_error *err);

/* Which messages a replay takes: all, or those of the task ids (found[i] is set for each
 * id seen; found has nids entries). */
struct dlq_selection {
    bool all;
    const char *const *ids;
    int nids;
    bool *found;
};

/* Moves the selected messages of <queue>.dead back to the queue they came from (header
 * x-cworker-original-queue, else queue) with the x-cworker-* headers removed, declaring it
 * first (as a quorum queue when quorum). replayed() gets each replayed message's
 * description with "from"/"to" added; problem() each message that stays for its own
 * reason (*failures counts them). -1 on a broker error (the replay stopped there). */
CW_MUST_CHECK int dlq_replay(const struct cw_config *cfg, const char *queue, bool quorum,
                             const struct dlq_selection *sel, dlq_each_fn replayed,
                             dlq_problem_fn problem, void *ctx, long *nreplayed, int *failures,
                             struct cw_error *err);

#endif
