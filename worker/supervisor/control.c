/* Supervisor: remote control (celery inspect / celery control) through kombu's pidbox:
 * the node's own queue bound to the celery.pidbox fanout exchange, replies on
 * reply.celery.pidbox. Requests are consumed without acks (as kombu does), so a full
 * prefetch window never delays them. */
#include "supervisor/internal.h"
#include "celery/control.h"
#include "base/clock.h"
#include "base/log.h"
#include "tasks/task.h"
#include "base/xalloc.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static void pidbox_tag(char *out, size_t len)
{
    snprintf(out, len, "cworker-pidbox-%d", (int)getpid());
}

int sup_control_declare(const struct cw_config *cfg, struct mq_conn *c, struct cw_error *err)
{
    if (mq_conn_declare_exchange(c, CELERY_CONTROL_EXCHANGE, CELERY_CONTROL_EXCHANGE_TYPE,
                                 CELERY_CONTROL_EXCHANGE_DURABLE,
                                 CELERY_CONTROL_EXCHANGE_AUTO_DELETE, err) != 0 ||
        mq_conn_declare_exchange(c, CELERY_CONTROL_REPLY_EXCHANGE,
                                 CELERY_CONTROL_REPLY_EXCHANGE_TYPE,
                                 CELERY_CONTROL_REPLY_EXCHANGE_DURABLE,
                                 CELERY_CONTROL_REPLY_EXCHANGE_AUTO_DELETE, err) != 0 ||
        mq_conn_declare_exchange(c, CELERY_EVENTS_EXCHANGE, CELERY_EVENTS_EXCHANGE_TYPE,
                                 CELERY_EVENTS_EXCHANGE_DURABLE, CELERY_EVENTS_EXCHANGE_AUTO_DELETE,
                                 err) != 0)
        return -1;
    char queue[400], tag[64];
    celery_control_queue_name(cfg->nodename, queue, sizeof queue);
    amqp_pool_t pool;
    init_amqp_pool(&pool, 1024);
    struct mq_conn_queue_opts opts = {CELERY_CONTROL_QUEUE_DURABLE, CELERY_CONTROL_QUEUE_EXCLUSIVE,
                                      CELERY_CONTROL_QUEUE_AUTO_DELETE, amqp_empty_table};
    int rc = celery_control_queue_arguments(&pool, &opts.arguments, err);
    if (rc == 0)
        rc = mq_conn_declare_queue(c, queue, &opts, err);
    empty_amqp_pool(&pool);
    if (rc != 0 ||
        mq_conn_bind(c, queue, CELERY_CONTROL_EXCHANGE, CELERY_CONTROL_BINDING_KEY, err) != 0)
        return -1;
    pidbox_tag(tag, sizeof tag);
    return mq_conn_consume(c, queue, tag, true, err);
}

bool sup_control_owns(const struct supervisor *s, amqp_bytes_t consumer_tag)
{
    (void)s;
    char tag[64];
    pidbox_tag(tag, sizeof tag);
    return consumer_tag.len == strlen(tag) &&
           memcmp(consumer_tag.bytes, tag, consumer_tag.len) == 0;
}

bool sup_is_revoked(const struct supervisor *s, const char *task_id)
{
    for (size_t i = 0; task_id && i < s->nrevoked; i++)
        if (strcmp(s->revoked[i].id, task_id) == 0)
            return true;
    return false;
}

static void add_revoked(struct supervisor *s, const char *id)
{
    if (sup_is_revoked(s, id))
        return;
    if (s->nrevoked == REVOKED_MAX) { /* forget the oldest, as Celery's LimitedSet does */
        free(s->revoked[0].id);
        memmove(s->revoked, s->revoked + 1, (REVOKED_MAX - 1) * sizeof *s->revoked);
        s->nrevoked--;
    }
    if (!s->revoked)
        s->revoked = cw_xcalloc(REVOKED_MAX, sizeof *s->revoked);
    s->revoked[s->nrevoked].id = cw_xstrdup(id);
    s->revoked[s->nrevoked].at = clock_wall();
    s->nrevoked++;
}

void sup_control_free(struct supervisor *s)
{
    free(s->broker_url);
    s->broker_url = NULL;
    for (size_t i = 0; i < s->nrevoked; i++)
        free(s->revoked[i].id);
    free(s->revoked);
    s->revoked = NULL;
    s->nrevoked = 0;
}

/* The lists and arrays a reply describes; owned here, freed by state_free. */
struct state_arrays {
    struct celery_control_task *active, *reserved, *scheduled;
    size_t nactive, nreserved, nscheduled;
    const char **registered;
    size_t nregistered;
    struct celery_control_revoked *revoked;
    struct celery_control_count *totals;
    long *pids;
    struct rusage usage;
};

static struct celery_control_task task_info(const struct supervisor *s, const struct delivery *d)
{
    struct celery_control_task t;
    memset(&t, 0, sizeof t);
    t.task = &d->task;
    t.exchange = "";
    t.routing_key = s->cfg->queues[d->queue];
    return t;
}

static void collect_tasks(const struct supervisor *s, struct state_arrays *a, double now)
{
    size_t npending = 0;
    for (const struct delivery *d = s->deliveries; d; d = d->next)
        npending++;
    a->active = cw_xcalloc((size_t)s->nexec, sizeof *a->active);
    a->reserved = cw_xcalloc(npending ? npending : 1, sizeof *a->reserved);
    a->scheduled = cw_xcalloc(npending ? npending : 1, sizeof *a->scheduled);
    a->pids = cw_xcalloc((size_t)s->nexec, sizeof *a->pids);
    double wall = clock_wall();
    for (int i = 0; i < s->nexec; i++) {
        const struct executor *e = &s->execs[i];
        a->pids[i] = e->state == EXEC_EMPTY ? 0 : (long)e->pid;
        if (e->state != EXEC_BUSY || !e->current || e->current->state == DLV_ORPHANED)
            continue;
        struct celery_control_task t = task_info(s, e->current);
        t.time_start = wall - (now - e->current->dispatched_at);
        t.worker_pid = (long)e->pid;
        a->active[a->nactive++] = t;
    }
    for (const struct delivery *d = s->deliveries; d; d = d->next) {
        if (d->state == DLV_HELD)
            a->scheduled[a->nscheduled++] = task_info(s, d);
        else if (d->state == DLV_PENDING)
            a->reserved[a->nreserved++] = task_info(s, d);
    }
}

static void collect_rest(const struct supervisor *s, struct state_arrays *a)
{
    const struct task_def *const *all = task_registry_all();
    while (all[a->nregistered])
        a->nregistered++;
    a->registered = cw_xcalloc(a->nregistered + 1, sizeof *a->registered);
    for (size_t i = 0; i < a->nregistered; i++)
        a->registered[i] = all[i]->name;
    a->revoked = cw_xcalloc(s->nrevoked + 1, sizeof *a->revoked);
    for (size_t i = 0; i < s->nrevoked; i++) {
        a->revoked[i].id = s->revoked[i].id;
        a->revoked[i].timestamp = s->revoked[i].at;
    }
    a->totals = cw_xcalloc((size_t)s->stats.ntasks + 1, sizeof *a->totals);
    for (int i = 0; i < s->stats.ntasks; i++) {
        const struct task_stats *t = &s->stats.tasks[i];
        a->totals[i].name = t->name;
        a->totals[i].count = t->events[TASK_EVENT_SUCCEEDED] + t->events[TASK_EVENT_FAILED] +
                             t->events[TASK_EVENT_RETRIED];
    }
    getrusage(RUSAGE_SELF, &a->usage);
}

static void state_free(struct state_arrays *a)
{
    free(a->active);
    free(a->reserved);
    free(a->scheduled);
    free(a->registered);
    free(a->revoked);
    free(a->totals);
    free(a->pids);
}

static void build_state(struct supervisor *s, struct state_arrays *a,
                        struct celery_control_state *st)
{
    double now = clock_monotonic();
    memset(a, 0, sizeof *a);
    collect_tasks(s, a, now);
    collect_rest(s, a);
    memset(st, 0, sizeof *st);
    st->nodename = s->cfg->nodename;
    st->pid = (long)getpid();
    st->uptime = clock_wall() - s->started_wall;
    st->clock = &s->clock;
    st->sw_ver = s->ident.sw_ver;
    st->task_events = s->task_events;
    st->active = a->active;
    st->nactive = a->nactive;
    st->reserved = a->reserved;
    st->nreserved = a->nreserved;
    st->scheduled = a->scheduled;
    st->nscheduled = a->nscheduled;
    st->registered = a->registered;
    st->nregistered = a->nregistered;
    st->queues = (const char *const *)s->cfg->queues;
    st->nqueues = (size_t)s->cfg->nqueues;
    st->revoked = a->revoked;
    st->nrevoked = s->nrevoked;
    st->totals = a->totals;
    st->ntotals = (size_t)s->stats.ntasks;
    st->concurrency = s->cfg->concurrency;
    st->executor_pids = a->pids;
    st->nexecutor_pids = (size_t)s->nexec;
    st->prefetch_count = s->prefetch;
    st->prefetch_multiplier = s->cfg->prefetch_multiplier;
    st->soft_time_limit = s->cfg->soft_time_limit;
    st->time_limit = s->cfg->time_limit;
    st->broker_heartbeat = s->cfg->broker_heartbeat;
    st->broker = s->broker_url ? &s->broker_info : NULL;
    st->rusage = &a->usage;
}

/* revoke with terminate: stop the executors running those tasks; the next executor
 * records the run's failure (see executor_gone). */
static void terminate_running(struct supervisor *s, const struct celery_control_outcome *out)
{
    for (int i = 0; i < s->nexec; i++) {
        struct executor *e = &s->execs[i];
        if (e->state != EXEC_BUSY || !e->current)
            continue;
        for (size_t j = 0; j < out->nrevoke_ids; j++) {
            if (strcmp(e->current->task.id, out->revoke_ids[j]) != 0)
                continue;
            log_warn("task %s revoked with terminate: killing executor %d", e->current->task.id,
                     (int)e->pid);
            kill(e->pid, SIGKILL);
            e->killed_for_revoke = true;
        }
    }
}

static void perform(struct supervisor *s, const struct celery_control_outcome *out)
{
    switch (out->action) {
    case CELERY_CONTROL_ENABLE_EVENTS:
        s->task_events = true;
        log_info("task events enabled by remote control");
        break;
    case CELERY_CONTROL_DISABLE_EVENTS:
        s->task_events = false;
        log_info("task events disabled by remote control");
        break;
    case CELERY_CONTROL_REVOKE:
        for (size_t i = 0; i < out->nrevoke_ids; i++) {
            add_revoked(s, out->revoke_ids[i]);
            log_info("task %s revoked by remote control", out->revoke_ids[i]);
        }
        if (out->terminate)
            terminate_running(s, out);
        break;
    case CELERY_CONTROL_SHUTDOWN:
        log_info("shutdown requested by remote control");
        s->shutdown_requested = true;
        break;
    case CELERY_CONTROL_HEARTBEAT:
        s->next_worker_heartbeat = 0;
        break;
    case CELERY_CONTROL_NONE:
        break;
    }
}

static void reply(struct supervisor *s, const struct celery_control_outcome *out)
{
    if (!out->has_reply)
        return;
    struct cw_error err;
    if (sup_publish_to(s, out->reply_exchange, out->reply_routing_key, &out->reply.props,
                       out->reply.body, &err) != 0)
        log_warn("remote control reply not sent: %s", err.message);
}

void sup_control_handle(struct supervisor *s, const amqp_envelope_t *env)
{
    struct celery_control_request req;
    struct cw_error err;
    if (celery_control_decode(&env->message.properties, env->message.body.bytes,
                              env->message.body.len, &req, &err) != 0) {
        log_warn("remote control request ignored: %s", err.message);
        celery_control_request_free(&req);
        return;
    }
    struct state_arrays arrays;
    struct celery_control_state st;
    build_state(s, &arrays, &st);
    struct celery_control_outcome out;
    if (celery_control_handle(&req, &st, &out, &err) == 0) {
        if (celery_control_is_for(&req, s->cfg->nodename))
            log_info("remote control: %s", req.method);
        reply(s, &out);
        perform(s, &out);
    } else {
        log_warn("remote control %s failed: %s", req.method, err.message);
    }
    celery_control_outcome_free(&out);
    state_free(&arrays);
    celery_control_request_free(&req);
}
