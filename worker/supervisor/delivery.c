/* The delivery state table (see supervisor/delivery.h for the diagram). Pure: no I/O. */
#include "supervisor/delivery.h"

#define BIT(s) (1u << (s))

/* Where each state may go. The settled ends go nowhere. */
static const unsigned allowed[DLV_NSTATES] = {
    [DLV_RECEIVED] = BIT(DLV_HELD) | BIT(DLV_PENDING) | BIT(DLV_CONFIRMING) |
                     BIT(DLV_DEAD_LETTERED) | BIT(DLV_REVOKED) | BIT(DLV_REQUEUED) |
                     BIT(DLV_ORPHANED),
    /* CONFIRMING: a copy re-published before the broker's consumer timeout ends its wait. */
    [DLV_HELD] = BIT(DLV_PENDING) | BIT(DLV_CONFIRMING) | BIT(DLV_REVOKED) | BIT(DLV_REQUEUED) |
                 BIT(DLV_ORPHANED),
    [DLV_PENDING] = BIT(DLV_DISPATCHED) | BIT(DLV_CONFIRMING) | BIT(DLV_REVOKED) |
                    BIT(DLV_REQUEUED) | BIT(DLV_DEAD_LETTERED) | BIT(DLV_ORPHANED),
    /* Back to PENDING when the hand-over failed; REQUEUED when the executor died before it
     * started; DEAD_LETTERED when the executor refused the message as unreadable. */
    [DLV_DISPATCHED] = BIT(DLV_RUNNING) | BIT(DLV_PENDING) | BIT(DLV_CONFIRMING) |
                       BIT(DLV_REQUEUED) | BIT(DLV_DEAD_LETTERED) | BIT(DLV_ORPHANED),
    /* Back to PENDING only with a forced outcome (hard time limit, revoke-terminate). */
    [DLV_RUNNING] = BIT(DLV_ACKED) | BIT(DLV_CONFIRMING) | BIT(DLV_RETRIED) | BIT(DLV_REQUEUED) |
                    BIT(DLV_DEAD_LETTERED) | BIT(DLV_PENDING) | BIT(DLV_ORPHANED),
    /* Waiting for the broker's confirm of its retry, dead letter or re-published copy. */
    [DLV_CONFIRMING] = BIT(DLV_ACKED) | BIT(DLV_RETRIED) | BIT(DLV_DEAD_LETTERED) |
                       BIT(DLV_REQUEUED) | BIT(DLV_ORPHANED),
};

static const char *const names[DLV_NSTATES] = {
    [DLV_RECEIVED] = "RECEIVED", [DLV_HELD] = "HELD",
    [DLV_PENDING] = "PENDING",   [DLV_DISPATCHED] = "DISPATCHED",
    [DLV_RUNNING] = "RUNNING",   [DLV_CONFIRMING] = "CONFIRMING",
    [DLV_ACKED] = "ACKED",       [DLV_REQUEUED] = "REQUEUED",
    [DLV_RETRIED] = "RETRIED",   [DLV_DEAD_LETTERED] = "DEAD_LETTERED",
    [DLV_REVOKED] = "REVOKED",   [DLV_ORPHANED] = "ORPHANED",
};

const char *delivery_state_name(enum delivery_state s)
{
    return (unsigned)s < DLV_NSTATES ? names[s] : "INVALID";
}

bool delivery_state_is_final(enum delivery_state s)
{
    return (unsigned)s < DLV_NSTATES && allowed[s] == 0;
}

bool delivery_move_allowed(enum delivery_state from, enum delivery_state to)
{
    return (unsigned)from < DLV_NSTATES && (unsigned)to < DLV_NSTATES &&
           (allowed[from] & BIT(to)) != 0;
}

int delivery_move(struct delivery *d, enum delivery_state to, struct cw_error *err)
{
    if (!delivery_move_allowed(d->state, to)) {
        CW_FAIL(err, CW_ERR_INTERNAL, "delivery of task %s: refused move %s -> %s",
                d->task.id ? d->task.id : "(undecoded)", delivery_state_name(d->state),
                delivery_state_name(to));
        return -1;
    }
    d->state = to;
    return 0;
}
