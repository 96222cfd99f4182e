/* Supervisor: taking deliveries in (decoding, dead-lettering, holding for eta) and handing
 * runnable ones to idle executors. Every state change goes through lifecycle.c. */
#include "base/clock.h"
#include "base/log.h"
#include "executor/channel.h"
#include "mq/dead_letter.h"
#include "mq/death_headers.h"
#include "supervisor/internal.h"
#include "tasks/task.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

/* Hand-overs to executors a delivery may fail before it is dead-lettered: it is not the
 * executors' fault any more. */
#define MAX_DISPATCH_FAILURES 3

void sup_dead_letter(struct supervisor *s, struct delivery *d, const char *reason)
{
    char routing_key[300];
    snprintf(routing_key, sizeof routing_key, "%s.dead", sup_queue_name(s, d));
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    amqp_basic_properties_t props;
    dead_letter_properties(&d->original.props, reason, sup_queue_name(s, d), clock_wall(), &pool,
                           &props);
    sup_publish_settling(s, d, DLV_DEAD_LETTERED, "", routing_key, &props, d->original.body);
    log_warn("message %" PRIu64 " dead-lettered to %s: %s", d->tag, routing_key, reason);
    s->stats.dead_lettered++;
    empty_amqp_pool(&pool);
}

/* A task id revoked by remote control: not run, acked, reported as revoked. */
static void drop_revoked(struct supervisor *s, struct delivery *d, bool expired)
{
    log_warn("task %s %s revoked%s", d->task.task, d->task.id, expired ? ": expired" : "");
    sup_event_task_revoked(s, &d->task, false, expired);
    sup_rpc_revoked(s, &d->task, expired ? "expired" : "revoked");
    sup_settle(s, d, DLV_REVOKED);
}

/* Canvas (link, link_error, chain, chord) is not supported: the task runs, nothing is
 * called after it. Say so instead of dropping the request silently. */
static void warn_canvas(const struct delivery *d)
{
    static const char *const keys[] = {"callbacks", "errbacks", "chain", "chord"};
    json_object *v;
    for (size_t i = 0; d->task.embed && i < sizeof keys / sizeof keys[0]; i++)
        if (json_object_object_get_ex(d->task.embed, keys[i], &v) && v &&
            !(json_object_is_type(v, json_type_array) && json_object_array_length(v) == 0))
            log_warn("task %s asks for %s, which cworker does not support: ignored", d->task.id,
                     keys[i]);
}

/* Decoded and known: not run when revoked or expired, else held for its eta or pending. */
static void admit(struct supervisor *s, struct delivery *d)
{
    sup_log_task(d);
    double wall = clock_wall();
    bool revoked = sup_is_revoked(s, d->task.id);
    if (revoked || (d->task.has_expires && d->task.expires <= wall)) {
        drop_revoked(s, d, !revoked);
        return;
    }
    bool later = d->task.has_eta && d->task.eta > wall;
    d->not_before = later ? clock_monotonic() + (d->task.eta - wall) : 0;
    log_info("task %s %s received (retries %d)", d->task.task, d->task.id, d->task.retries);
    worker_stats_count(&s->stats, d->task.task, TASK_EVENT_RECEIVED);
    sup_event_task_received(s, d);
    warn_canvas(d);
    sup_move(s, d, later ? DLV_HELD : DLV_PENDING);
}

static void on_delivery(struct supervisor *s, amqp_envelope_t *env)
{
    if (sup_control_owns(s, env->consumer_tag)) {
        sup_control_handle(s, env);
        return;
    }
    log_set_task(NULL, 0); /* until this one is decoded, lines are not about an earlier task */
    struct delivery *d =
        sup_delivery_new(s, env->delivery_tag, sup_queue_of_tag(s, env->consumer_tag));
    mq_message_copy_init(&d->original, &env->message.properties, env->message.body);
    if (s->draining) { /* arrived while cancelling: give it back */
        sup_settle(s, d, DLV_REQUEUED);
        return;
    }
    struct cw_error err;
    if (celery_message_decode(&env->message.properties, env->message.body.bytes,
                              env->message.body.len, &d->task, &err) != 0) {
        celery_task_free(&d->task); /* the decoder may have filled part of it */
        sup_dead_letter(s, d, err.message);
        return;
    }
    if (!task_registry_find(d->task.task)) {
        char reason[512];
        snprintf(reason, sizeof reason, "unknown task %s", d->task.task);
        sup_event_task_not_registered(s, &d->task);
        sup_rpc_not_registered(s, &d->task);
        sup_dead_letter(s, d, reason);
        return;
    }
    admit(s, d);
}

void sup_read_deliveries(struct supervisor *s)
{
    for (int i = 0; i < DELIVERIES_PER_ROUND && mq_conn_is_open(&s->consumer); i++) {
        amqp_envelope_t env;
        struct cw_error err;
        int got = mq_conn_next_delivery(&s->consumer, 0, &env, &err);
        if (got < 0) {
            sup_consumer_lost(s, &err);
            return;
        }
        if (got == 0)
            return;
        on_delivery(s, &env);
        amqp_destroy_envelope(&env);
    }
}

/* A held delivery handed back: a copy without RabbitMQ's death headers (a copy that went
 * through the ladder before and goes through it again would be dropped as a cycle), to
 * its queue, or with RETRY_TRANSPORT=native into the ladder for what is left of its wait. */
static void repark(struct supervisor *s, struct delivery *d, double now)
{
    char exchange[64], routing_key[300];
    const char *queue = sup_queue_name(s, d);
    if (s->cfg->retry_native)
        sup_delay_route(s, queue, d->not_before - now, 0, exchange, sizeof exchange, routing_key,
                        sizeof routing_key);
    else {
        exchange[0] = '\0';
        snprintf(routing_key, sizeof routing_key, "%s", queue);
    }
    amqp_pool_t pool;
    init_amqp_pool(&pool, 1024);
    amqp_basic_properties_t props;
    mq_strip_death_headers(&d->original.props, &pool, &props);
    sup_log_task(d);
    log_info("task %s held for %.0f s of its eta: handed back to %s%s%s before the broker's "
             "consumer timeout",
             d->task.id, now - d->received_at, exchange, exchange[0] ? " with routing key " : "",
             routing_key);
    sup_publish_settling(s, d, DLV_ACKED, exchange, routing_key, &props, d->original.body);
    empty_amqp_pool(&pool);
}

/* RabbitMQ closes a channel that holds a delivery unacked longer than its consumer_timeout
 * (30 min by default), which would give up every delivery on it. A delivery held that long
 * for its eta is handed back instead: a copy is published and the original acked once the
 * copy is confirmed; whoever receives the copy holds it again. */
void sup_repark_held(struct supervisor *s, double now)
{
    double limit = s->cfg->consumer_timeout * 0.5;
    if (limit <= 0 || !mq_conn_is_open(&s->publisher))
        return;
    for (struct delivery *d = s->deliveries; d; d = d->next)
        if (d->state == DLV_HELD && now - d->received_at >= limit && d->not_before - now >= 5)
            repark(s, d, now);
}

/* The first delivery that may run now, in arrival order (so one sent back for a forced
 * outcome goes first). Held ones whose eta came are released on the way. A task whose
 * orphaned execution still runs here waits: the same run never executes twice at once. */
static struct delivery *take_runnable(struct supervisor *s, double now)
{
    for (struct delivery *d = s->deliveries; d; d = d->next) {
        if (d->state == DLV_HELD && d->not_before <= now)
            sup_move(s, d, DLV_PENDING);
        if (d->state == DLV_PENDING && !sup_orphan_running(s, d->task.id))
            return d;
    }
    return NULL;
}

static enum cw_error_class forced_class(const struct delivery *d)
{
    switch (d->forced) {
    case DLV_FORCED_TIMEOUT:
        return CW_ERR_TIMEOUT;
    case DLV_FORCED_REVOKED:
        return CW_ERR_PERMANENT;
    default:
        return CW_ERR_NONE;
    }
}

static double hard_limit_of(const struct supervisor *s, const struct delivery *d)
{
    return d->task.has_time_limit ? d->task.time_limit : s->cfg->time_limit;
}

/* The hand-over failed. The message itself (too large for the channel) is dead-lettered at
 * once; an executor that cannot be reached is replaced, and the delivery waits for the
 * next one, up to MAX_DISPATCH_FAILURES times. */
static void dispatch_failed(struct supervisor *s, struct executor *e, struct delivery *d,
                            const struct cw_error *err)
{
    char reason[CW_ERROR_DETAIL_MAX + 64];
    snprintf(reason, sizeof reason, "cannot be handed to an executor: %s", err->message);
    if (err->cls == CW_ERR_PERMANENT || ++d->dispatch_failures >= MAX_DISPATCH_FAILURES) {
        sup_dead_letter(s, d, reason);
        return;
    }
    log_warn("executor %d unreachable (%s); task %s waits for another", (int)e->pid, err->message,
             d->task.id);
    kill(e->pid, SIGKILL); /* the reaper respawns it */
    e->state = EXEC_STARTING;
}

static void dispatch_to(struct supervisor *s, struct executor *e, struct delivery *d, double now)
{
    sup_log_task(d);
    d->seq = ++s->next_seq;
    double hard = hard_limit_of(s, d);
    json_object *m = proto_task_encode(d->seq, &d->task, hard, forced_class(d), d->forced_error,
                                       sup_queue_name(s, d));
    struct cw_error err;
    int rc = channel_send(e->fd, m, &err);
    json_object_put(m);
    if (rc != 0) {
        dispatch_failed(s, e, d, &err);
        return;
    }
    sup_move(s, d, DLV_DISPATCHED);
    e->state = EXEC_BUSY;
    e->current = d;
    d->dispatched_at = now;
    e->hard_deadline = now + hard;
}

void sup_dispatch(struct supervisor *s, double now)
{
    if (now < s->paused_until || s->draining || !mq_conn_is_open(&s->consumer) ||
        sup_broker_blocked(s))
        return;
    for (int i = 0; i < s->nexec; i++) {
        struct executor *e = &s->execs[i];
        struct delivery *d;
        while (e->state == EXEC_IDLE && (d = take_runnable(s, now)) != NULL) {
            if (d->forced == DLV_FORCED_NONE && sup_is_revoked(s, d->task.id)) {
                sup_log_task(d); /* revoked while it waited */
                drop_revoked(s, d, false);
                continue;
            }
            dispatch_to(s, e, d, now);
        }
    }
}

/* The executor read the task and begins it. */
void sup_on_started(struct supervisor *s, struct executor *e, uint64_t seq)
{
    struct delivery *d = e->current;
    if (!d || d->seq != seq || d->state != DLV_DISPATCHED)
        return; /* orphaned meanwhile, or a stale message */
    sup_move(s, d, DLV_RUNNING);
    if (d->forced == DLV_FORCED_NONE)
        sup_event_task_started(s, d);
}

/* The executor could not read the task message: it would fail the same way anywhere. */
void sup_on_refused(struct supervisor *s, struct executor *e, uint64_t seq, const char *reason)
{
    struct delivery *d = e->current;
    if (!d || d->seq != seq)
        return;
    e->current = NULL;
    e->state = EXEC_IDLE;
    if (d->state != DLV_DISPATCHED)
        return; /* orphaned: the broker redelivers it */
    char text[CW_ERROR_DETAIL_MAX + 64];
    snprintf(text, sizeof text, "refused by the executor: %s", reason);
    sup_dead_letter(s, d, text);
}
