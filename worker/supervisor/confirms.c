/* Supervisor: publishes whose broker confirm settles a delivery (a retry, a dead letter).
 * The loop never waits for a confirm: the delivery waits in CONFIRMING, the confirm is read
 * between rounds (sup_tend_publisher pumps the publisher connection) and settles it. A nack,
 * a publisher connection that dies, or one that confirms nothing for CONFIRM_TIMEOUT_S while
 * the broker is not blocking us, requeues the waiting deliveries: nothing is lost, at worst
 * a retry message is published twice (at least once, as AMQP gives). */
#include "base/clock.h"
#include "base/log.h"
#include "base/xalloc.h"
#include "supervisor/internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define CONFIRM_TIMEOUT_S 10.0

int sup_publish_settling(struct supervisor *s, struct delivery *d, enum delivery_state on_ack,
                         const char *routing_key, const amqp_basic_properties_t *props,
                         amqp_bytes_t body, struct cw_error *err)
{
    uint64_t seq = 0;
    if (sup_publish_raw(s, "", routing_key, props, body, &seq, err) != 0)
        return -1;
    if (!sup_move(s, d, DLV_CONFIRMING))
        return 0; /* logged; the confirm finds nothing to settle */
    if (s->npublishes == s->cap_publishes) {
        s->cap_publishes = s->cap_publishes ? s->cap_publishes * 2 : 16;
        s->publishes = cw_xrealloc(s->publishes, s->cap_publishes * sizeof *s->publishes);
    }
    s->publishes[s->npublishes++] =
        (struct sup_publish){.seq = seq, .d = d, .on_ack = on_ack, .sent_at = clock_monotonic()};
    return 0;
}

static void settle_confirmed(struct supervisor *s, struct sup_publish p, bool ack)
{
    if (p.d->state != DLV_CONFIRMING)
        return;
    sup_log_task(p.d);
    if (ack) {
        sup_settle(s, p.d, p.on_ack);
        return;
    }
    log_error("the broker refused (nack) the %s of task %s; the delivery is requeued",
              p.on_ack == DLV_RETRIED ? "retry" : "dead letter", p.d->task.id);
    sup_settle(s, p.d, DLV_REQUEUED);
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
        if (p.seq == tag || (multiple && p.seq <= tag))
            done[n++] = p;
        else
            s->publishes[kept++] = p;
    }
    s->npublishes = kept;
    for (size_t i = 0; i < n; i++)
        settle_confirmed(s, done[i], ack);
    free(done);
}

void sup_fail_publishes(struct supervisor *s, const char *why)
{
    size_t n = s->npublishes;
    struct sup_publish *failed = s->publishes;
    s->publishes = NULL;
    s->npublishes = s->cap_publishes = 0;
    for (size_t i = 0; i < n; i++) {
        if (failed[i].d->state != DLV_CONFIRMING)
            continue;
        sup_log_task(failed[i].d);
        log_warn("task %s: its %s was not confirmed (%s); the delivery is requeued",
                 failed[i].d->task.id, failed[i].on_ack == DLV_RETRIED ? "retry" : "dead letter",
                 why);
        sup_settle(s, failed[i].d, DLV_REQUEUED);
    }
    free(failed);
}

void sup_forget_publishes(struct supervisor *s)
{
    s->npublishes = 0; /* their deliveries are orphaned: nothing is settled for them */
}

bool sup_confirm_overdue(const struct supervisor *s, double now)
{
    return s->npublishes > 0 && !sup_broker_blocked(s) &&
           now - s->publishes[0].sent_at > CONFIRM_TIMEOUT_S;
}
