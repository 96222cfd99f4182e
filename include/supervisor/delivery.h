/* The life of one delivery: a message the broker gave the supervisor, from its arrival to
 * the moment it is settled with the broker (or given up with its connection).
 *
 *   RECEIVED --> HELD --> PENDING --> DISPATCHED --> RUNNING --> ACKED | CONFIRMING
 *                           ^  ^          |             |
 *                           |  +----------+             +--> PENDING (forced outcome)
 *                           |  executor unreachable
 *
 *   from        may go to (besides ORPHANED, which every live state may go to)
 *   RECEIVED    HELD, PENDING, CONFIRMING, DEAD_LETTERED, REVOKED, REQUEUED
 *   HELD        PENDING, CONFIRMING, REVOKED, REQUEUED
 *   PENDING     DISPATCHED, CONFIRMING, DEAD_LETTERED, REVOKED, REQUEUED
 *   DISPATCHED  RUNNING, PENDING, CONFIRMING, DEAD_LETTERED, REQUEUED
 *   RUNNING     ACKED, CONFIRMING, RETRIED, REQUEUED, DEAD_LETTERED, PENDING
 *   CONFIRMING  ACKED, RETRIED, DEAD_LETTERED, REQUEUED
 *   ACKED, REQUEUED, RETRIED, DEAD_LETTERED, REVOKED, ORPHANED: nowhere (settled)
 *
 * - RECEIVED: decoded (or not) but not yet queued; it leaves at once.
 * - HELD: waiting for a future eta; PENDING: runnable, waiting for an idle executor.
 * - DISPATCHED: handed to an executor; RUNNING: the executor said it started.
 * - CONFIRMING: its retry, its dead letter, or (held for a long eta) a copy of itself is
 *   published; the broker's confirm settles it (RETRIED, DEAD_LETTERED, ACKED), a nack
 *   requeues it. The loop never waits for a confirm. A held delivery is re-published
 *   before RabbitMQ's consumer_timeout would close the channel over it.
 * - ACKED, RETRIED (retry published, then acked), REQUEUED (rejected with requeue),
 *   DEAD_LETTERED (copied to <queue>.dead, then acked), REVOKED (acked, not run):
 *   settled with the broker on the delivery's own connection.
 * - ORPHANED: its connection was lost; the broker redelivers the message, so nothing is
 *   ever acked, published or dispatched for it again. An orphan still RUNNING in an
 *   executor is kept until that executor reports, so no second execution of the same
 *   task id starts here meanwhile.
 *
 * The table is pure (no I/O) so it can be tested move by move; the supervisor makes
 * every change of a delivery through delivery_move. */
#ifndef CWORKER_SUPERVISOR_DELIVERY_H
#define CWORKER_SUPERVISOR_DELIVERY_H

#include "base/error.h"
#include "celery/message.h"
#include "mq/message_copy.h"

#include <stdbool.h>
#include <stdint.h>

enum delivery_state {
    DLV_RECEIVED,
    DLV_HELD,
    DLV_PENDING,
    DLV_DISPATCHED,
    DLV_RUNNING,
    DLV_CONFIRMING,
    DLV_ACKED,
    DLV_REQUEUED,
    DLV_RETRIED,
    DLV_DEAD_LETTERED,
    DLV_REVOKED,
    DLV_ORPHANED,
    DLV_NSTATES
};

/* A forced outcome the next executor records instead of running the task. */
enum delivery_forced {
    DLV_FORCED_NONE,
    DLV_FORCED_TIMEOUT, /* killed for its hard time limit */
    DLV_FORCED_REVOKED, /* terminated by a remote-control revoke */
};

struct delivery {
    struct delivery *next; /* the supervisor's list of live deliveries, arrival order */
    enum delivery_state state;
    uint64_t tag;          /* broker delivery tag: valid on its own connection only */
    unsigned generation;   /* the consumer connection it came on */
    int queue;             /* index into cfg->queues */
    uint64_t seq;          /* our id for it on the executor channel, per dispatch */
    double not_before;     /* monotonic: a producer eta in the future */
    int dispatch_failures; /* hand-overs to an executor that failed */
    enum delivery_forced forced;
    char *forced_error;              /* the message recorded for a forced outcome; owned */
    double dispatched_at;            /* monotonic, for the duration histogram */
    double received_at;              /* monotonic: how long it has been unacked */
    struct celery_task task;         /* decoded; zero when decoding failed */
    struct mq_message_copy original; /* as received: what dead-lettering publishes */
};

const char *delivery_state_name(enum delivery_state s);
/* True for the settled ends (and ORPHANED): nothing more happens to the delivery. */
bool delivery_state_is_final(enum delivery_state s);
/* True when the table allows from -> to. */
bool delivery_move_allowed(enum delivery_state from, enum delivery_state to);
/* Moves d to `to`, or refuses an impossible move (d unchanged) with CW_ERR_INTERNAL
 * "delivery of task X: refused move RUNNING -> HELD". */
CW_MUST_CHECK int delivery_move(struct delivery *d, enum delivery_state to, struct cw_error *err);

#endif
