/* Supervisor: publishes whose broker confirm settles a delivery (a retry, a dead letter).
 * The loop never waits for a confirm: the delivery waits in CONFIRMING with a copy of its
 * message, the confirm is read between rounds (sup_tend_publisher pumps the publisher
 * connection) and settles it. While no publisher connection is up the copy waits and is
 * sent when one is; a publisher connection that dies, or confirms nothing for
 * CONFIRM_TIMEOUT_S while the broker is not blocking us, has its unconfirmed messages sent
 * again on the next one (at least once, as AMQP gives: a duplicate retry message finds its
 * run final). Only a nack requeues the delivery. */
#include "base/clock.h"
#include "base/log.h"
#include "base/xalloc.h"
#include "supervisor/internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define CONFIRM_TIMEOUT_S 10.0

static const char *what_of(const struct sup_publish *p)
{
    return p->on_ack == DLV_RETRIED ? "retry"
           : p->on_ack == DLV_ACKED ? "re-published copy"
                                    : "dead letter";
}

static void publish_free(struct sup_publish *p)
{
    free(p->exchange);
    free(p->routing_key);
    mq_message_copy_free(&p->msg);
}

void sup_flush_publishes(struct supervisor *s)
{
    for (size_t i = 0; i < s->npublishes && mq_conn_is_open(&s->publisher); i++) {
        struct sup_publish *p = &s->publishes[i];
        if (p->sent)
            continue;
        struct cw_error err;
        if (sup_publish_raw(s, p->exchange, p->routing_key, &p->msg.props, p->msg.body, &p->seq,
                            &err) != 0) {
            log_warn("the %s of task %s waits for the publisher: %s", what_of(p), p->d->task.id,
                     err.message);
            return;
        }
        p->sent = true;
        p->sent_at = clock_monotonic();
    }
}

void sup_publish_settling(struct supervisor *s, struct delivery *d, enum delivery_state on_ack,
                          const char *exchange, const char *routing_key,
                          const amqp_basic_properties_t *props, amqp_bytes_t body)
{
    if (!sup_move(s, d, DLV_CONFIRMING))
        return;
    if (s->npublishes == s->cap_publishes) {
        s->cap_publishes = s->cap_publishes ? s->cap_publishes * 2 : 16;
        s->publishes = cw_xrealloc(s->publishes, s->cap_publishes * sizeof *s->publishes);
    }
    struct sup_publish *p = &s->publishes[s->npublishes++];
    memset(p, 0, sizeof *p);
    p->d = d;
    p->on_ack = on_ack;
    p->exchange = cw_xstrdup(exchange);
    p->routing_key = cw_xstrdup(routing_key);
    mq_message_copy_init(&p->msg, props, body);
    sup_flush_publishes(s);
}

static void settle_confirmed(struct supervisor *s, struct sup_publish *p, bool ack)
{
    if (p->d->state != DLV_CONFIRMING)
        return;
    sup_log_task(p->d);
    if (ack) {
        sup_settle(s, p->d, p->on_ack);
        return;
    }
    log_error("the broker refused (nack) the %s of task %s; the delivery is requeued", what_of(p),
              p->d->task.id);
    sup_settle(s, p->d, DLV_REQUEUED);
}

/* Takes the entries a confirm covers out of the table first: settling may lose the
 * consumer connection, which empties the table. */
void sup_on_confirm(void *ctx, uint64_t tag, bool multiple, bool ack)
{
    struct supervisor *s = ctx;
    size_t n = 0, kept = 0;
    struct sup_publish *done = cw_xcalloc(s->npublishes + 1, sizeof *done);
    for (size_t i = 0; i < s->npublishes; i++) {
        struct sup_publish p = s->publishes[i];
        if (p.sent && (p.seq == tag || (multiple && p.seq <= tag)))
            done[n++] = p;
        else
            s->publishes[kept++] = p;
    }
    s->npublishes = kept;
    for (size_t i = 0; i < n; i++) {
        settle_confirmed(s, &done[i], ack);
        publish_free(&done[i]);
    }
    free(done);
}

void sup_unsend_publishes(struct supervisor *s)
{
    for (size_t i = 0; i < s->npublishes; i++)
        s->publishes[i].sent = false; /* sent again on the next publisher connection */
}

void sup_forget_publishes(struct supervisor *s)
{
    for (size_t i = 0; i < s->npublishes; i++)
        publish_free(&s->publishes[i]); /* orphaned deliveries: nothing to settle */
    s->npublishes = 0;
}

void sup_free_publishes(struct supervisor *s)
{
    sup_forget_publishes(s);
    free(s->publishes);
    s->publishes = NULL;
    s->cap_publishes = 0;
}

bool sup_confirm_overdue(const struct supervisor *s, double now)
{
    if (sup_broker_blocked(s))
        return false; /* the alarm holds the confirms back: that is not a dead connection */
    for (size_t i = 0; i < s->npublishes; i++)
        if (s->publishes[i].sent && now - s->publishes[i].sent_at > CONFIRM_TIMEOUT_S)
            return true;
    return false;
}
