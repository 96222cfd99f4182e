/* Supervisor: decoding deliveries, dead-lettering, the pending list, dispatch to executors. */
#include "supervisor/internal.h"
#include "executor/channel.h"
#include "base/clock.h"
#include "mq/dead_letter.h"
#include "executor/executor.h"
#include "ops/http_server.h"
#include "base/log.h"
#include "tasks/task.h"
#include "base/xalloc.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

void sup_delivery_free(struct delivery *d)
{
    if (!d)
        return;
    celery_task_free(&d->task);
    free(d->forced_error);
    free(d);
}

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

bool sup_delivery_is_current(const struct supervisor *s, const struct delivery *d)
{
    return d->generation == s->generation && mq_conn_is_open(&s->consumer);
}

static void dead_letter(struct supervisor *s, const amqp_envelope_t *env, int queue,
                        const char *reason)
{
    char routing_key[300];
    snprintf(routing_key, sizeof routing_key, "%s.dead", s->cfg->queues[queue]);
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    amqp_basic_properties_t props;
    dead_letter_properties(&env->message.properties, reason, s->cfg->queues[queue], clock_wall(),
                           &pool, &props);
    struct cw_error err;
    struct delivery tmp = {.tag = env->delivery_tag, .generation = s->generation};
    if (sup_publish_confirmed(s, routing_key, &props, env->message.body, &err) == 0) {
        log_warn("message %" PRIu64 " dead-lettered to %s: %s", (uint64_t)env->delivery_tag,
                 routing_key, reason);
        s->stats.dead_lettered++;
        sup_settle(s, &tmp, true, false);
    } else {
        log_error("cannot dead-letter a message (%s); it is requeued: %s", reason, err.message);
        sup_settle(s, &tmp, false, true);
    }
    empty_amqp_pool(&pool);
}

static int queue_of(const struct supervisor *s, amqp_bytes_t tag)
{
    for (int q = 0; q < s->cfg->nqueues; q++) {
        char mine[64];
        sup_consumer_tag(q, mine, sizeof mine);
        if (tag.len == strlen(mine) && memcmp(tag.bytes, mine, tag.len) == 0)
            return q;
    }
    return 0;
}

static void enqueue(struct supervisor *s, struct delivery *d)
{
    d->next = NULL;
    *s->pending_tail = d;
    s->pending_tail = &d->next;
}

/* A task id revoked by remote control: not run, acked, reported as revoked. */
static void drop_revoked(struct supervisor *s, struct delivery *d, bool expired)
{
    log_warn("task %s %s revoked%s", d->task.task, d->task.id, expired ? ": expired" : "");
    sup_event_task_revoked(s, &d->task, false, expired);
    sup_rpc_revoked(s, &d->task, expired ? "expired" : "revoked");
    sup_settle(s, d, true, false);
    sup_delivery_free(d);
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

static void on_delivery(struct supervisor *s, amqp_envelope_t *env)
{
    if (sup_control_owns(s, env->consumer_tag)) {
        sup_control_handle(s, env);
        return;
    }
    int queue = queue_of(s, env->consumer_tag);
    struct delivery *d = cw_xcalloc(1, sizeof *d);
    d->tag = env->delivery_tag;
    d->generation = s->generation;
    d->queue = queue;
    struct cw_error err;
    if (s->draining) { /* arrived while cancelling: give it back */
        sup_settle(s, d, false, true);
        free(d);
        return;
    }
    if (celery_message_decode(&env->message.properties, env->message.body.bytes,
                              env->message.body.len, &d->task, &err) != 0) {
        sup_delivery_free(d); /* the decoder may have filled part of the task */
        dead_letter(s, env, queue, err.message);
        return;
    }
    if (!task_registry_find(d->task.task)) {
        char reason[512];
        snprintf(reason, sizeof reason, "unknown task %s", d->task.task);
        sup_event_task_not_registered(s, &d->task);
        sup_rpc_not_registered(s, &d->task);
        dead_letter(s, env, queue, reason);
        sup_delivery_free(d);
        return;
    }
    sup_log_task(d);
    double wall = clock_wall();
    if (sup_is_revoked(s, d->task.id) || (d->task.has_expires && d->task.expires <= wall)) {
        drop_revoked(s, d, !sup_is_revoked(s, d->task.id));
        return;
    }
    d->not_before =
        d->task.has_eta && d->task.eta > wall ? clock_monotonic() + (d->task.eta - wall) : 0;
    log_info("task %s %s received (retries %d)", d->task.task, d->task.id, d->task.retries);
    worker_stats_count(&s->stats, d->task.task, TASK_EVENT_RECEIVED);
    sup_event_task_received(s, d);
    warn_canvas(d);
    enqueue(s, d);
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

static json_object *task_message(const struct delivery *d)
{
    json_object *m = json_object_new_object();
    json_object_object_add(m, "type", json_object_new_string("task"));
    json_object_object_add(m, "delivery", json_object_new_int64((int64_t)d->seq));
    json_object_object_add(m, "task_id", json_object_new_string(d->task.id));
    json_object_object_add(m, "task", json_object_new_string(d->task.task));
    json_object_object_add(m, "retries", json_object_new_int(d->task.retries));
    json_object_object_add(m, "args", json_object_get(d->task.args));
    json_object_object_add(m, "kwargs", json_object_get(d->task.kwargs));
    if (d->task.has_soft_time_limit)
        json_object_object_add(m, "soft_time_limit",
                               json_object_new_double(d->task.soft_time_limit));
    if (d->forced_error) {
        json_object *f = json_object_new_object();
        json_object_object_add(
            f, "class", json_object_new_string(d->forced_permanent ? "permanent" : "timeout"));
        json_object_object_add(f, "message", json_object_new_string(d->forced_error));
        json_object_object_add(m, "forced_error", f);
    }
    return m;
}

/* Takes the first pending delivery that may run now; stale ones are dropped. */
static struct delivery *take_runnable(struct supervisor *s, double now)
{
    for (struct delivery **p = &s->pending; *p;) {
        struct delivery *d = *p;
        if (d->generation != s->generation) { /* the broker redelivers it */
            *p = d->next;
            sup_delivery_free(d);
            continue;
        }
        if (d->not_before <= now) {
            *p = d->next;
            if (!*p)
                s->pending_tail = p;
            return d;
        }
        p = &d->next;
    }
    s->pending_tail = &s->pending;
    for (struct delivery *d = s->pending; d; d = d->next)
        s->pending_tail = &d->next;
    return NULL;
}

void sup_dispatch(struct supervisor *s, double now)
{
    if (now < s->paused_until || s->draining)
        return;
    for (int i = 0; i < s->nexec; i++) {
        struct executor *e = &s->execs[i];
        if (e->state != EXEC_IDLE)
            continue;
        struct delivery *d = take_runnable(s, now);
        if (!d)
            return;
        if (!d->forced_error && sup_is_revoked(s, d->task.id)) { /* revoked while waiting */
            sup_log_task(d);
            drop_revoked(s, d, false);
            i--;
            continue;
        }
        d->seq = ++s->next_seq;
        json_object *m = task_message(d);
        struct cw_error err;
        int rc = channel_send(e->fd, m, &err);
        json_object_put(m);
        if (rc != 0) { /* the executor is dying: put the task back, the reaper cleans up */
            log_warn("executor %d unreachable: %s", (int)e->pid, err.message);
            d->next = s->pending;
            s->pending = d;
            if (!d->next)
                s->pending_tail = &d->next;
            kill(e->pid, SIGKILL);
            e->state = EXEC_STARTING;
            continue;
        }
        double hard = d->task.has_time_limit ? d->task.time_limit : s->cfg->time_limit;
        e->state = EXEC_BUSY;
        e->current = d;
        d->dispatched_at = now;
        e->hard_deadline = now + hard;
        if (!d->forced_error)
            sup_event_task_started(s, d);
    }
}
