/* Supervisor: every change of a delivery's state, settling with the broker, connection
 * loss and freeing settled deliveries (the table itself is supervisor/delivery.c). */
#include "base/clock.h"
#include "base/log.h"
#include "base/xalloc.h"
#include "supervisor/internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

void sup_log_task(const struct delivery *d)
{
    long run_id = 0;
    struct cw_error ignored;
    if (!d || !d->task.id) {
        log_set_task(NULL, 0);
        return;
    }
    if (!d->task.args || celery_task_int_arg(&d->task, 0, "run_id", &run_id, &ignored) != 0)
        run_id = 0;
    log_set_task(d->task.id, run_id);
}

const char *sup_queue_name(const struct supervisor *s, const struct delivery *d)
{
    return s->cfg->queues[d->queue];
}

struct delivery *sup_delivery_new(struct supervisor *s, uint64_t tag, int queue)
{
    struct delivery *d = cw_xcalloc(1, sizeof *d);
    d->state = DLV_RECEIVED;
    d->tag = tag;
    d->generation = s->generation;
    d->queue = queue;
    d->received_at = clock_monotonic();
    struct delivery **p = &s->deliveries;
    while (*p)
        p = &(*p)->next;
    *p = d;
    return d;
}

bool sup_move(struct supervisor *s, struct delivery *d, enum delivery_state to)
{
    (void)s;
    struct cw_error err;
    if (delivery_move(d, to, &err) != 0) {
        log_error("%s", err.message);
        return false;
    }
    return true;
}

void sup_settle(struct supervisor *s, struct delivery *d, enum delivery_state to)
{
    sup_log_task(d);
    if (d->generation != s->generation || !mq_conn_is_open(&s->consumer)) {
        /* Cannot happen: a lost connection orphans its deliveries at once. */
        log_error("task %s: settling a delivery of a closed connection refused",
                  d->task.id ? d->task.id : "(undecoded message)");
        return;
    }
    if (!sup_move(s, d, to))
        return;
    struct cw_error err;
    int rc = to == DLV_REQUEUED ? mq_conn_reject(&s->consumer, d->tag, true, &err)
                                : mq_conn_ack(&s->consumer, d->tag, &err);
    if (rc != 0)
        sup_consumer_lost(s, &err);
}

static bool held_by_executor(const struct supervisor *s, const struct delivery *d)
{
    for (int i = 0; i < s->nexec; i++)
        if (s->execs[i].current == d)
            return true;
    return false;
}

void sup_consumer_lost(struct supervisor *s, const struct cw_error *err)
{
    log_error("broker connection lost: %s", err->message);
    mq_conn_abandon(&s->consumer);
    sup_forget_publishes(s); /* the publisher may live on; its work was for these */
    int orphaned = 0;
    for (struct delivery *d = s->deliveries; d; d = d->next)
        if (!delivery_state_is_final(d->state) && sup_move(s, d, DLV_ORPHANED))
            orphaned++;
    if (orphaned)
        log_warn("%d delivery(ies) of the lost connection given up: the broker redelivers them",
                 orphaned);
    s->reconnect_at = clock_monotonic(); /* the first attempt at once, backoff after */
}

void sup_collect(struct supervisor *s)
{
    for (struct delivery **p = &s->deliveries; *p;) {
        struct delivery *d = *p;
        if (delivery_state_is_final(d->state) && !held_by_executor(s, d)) {
            *p = d->next;
            celery_task_free(&d->task);
            mq_message_copy_free(&d->original);
            free(d->forced_error);
            free(d);
        } else {
            p = &d->next;
        }
    }
}

bool sup_orphan_running(const struct supervisor *s, const char *task_id)
{
    for (int i = 0; i < s->nexec; i++) {
        const struct delivery *d = s->execs[i].current;
        if (d && d->state == DLV_ORPHANED && d->task.id && task_id &&
            strcmp(d->task.id, task_id) == 0)
            return true;
    }
    return false;
}

int sup_count_in(const struct supervisor *s, enum delivery_state state)
{
    int n = 0;
    for (const struct delivery *d = s->deliveries; d; d = d->next)
        n += d->state == state;
    return n;
}
