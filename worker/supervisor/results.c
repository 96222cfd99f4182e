/* Supervisor: acting on executor results (ack, retry, requeue) and on stuck-run sweeps. */
#include "base/clock.h"
#include "base/log.h"
#include "base/xalloc.h"
#include "celery/encode.h"
#include "executor/channel.h"
#include "supervisor/internal.h"
#include "tasks/retry_policy.h"
#include "tasks/task.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

static void publish_retry(struct supervisor *s, struct delivery *d, int next_retries, double delay)
{
    /* The slot the executor recorded for the dashboard (retry_policy_slot) is the one used. */
    char exchange[64], routing_key[300];
    sup_delay_route(s, sup_queue_name(s, d), delay,
                    retry_policy_slot(next_retries, s->cfg->nretry_delays), exchange,
                    sizeof exchange, routing_key, sizeof routing_key);
    struct celery_outgoing out;
    struct cw_error err;
    if (celery_message_encode_retry(&d->task, clock_wall(), delay, &out, &err) != 0) {
        log_error("cannot encode the retry of task %s; the delivery is requeued: %s", d->task.id,
                  err.message);
        sup_settle(s, d, DLV_REQUEUED);
    } else {
        sup_publish_settling(s, d, DLV_RETRIED, exchange, routing_key, &out.props, out.body);
        log_info("task %s retry %d published to %s%s%s (runs in %.0f s)", d->task.id, next_retries,
                 exchange, exchange[0] ? " with routing key " : "", routing_key, delay);
    }
    celery_outgoing_free(&out);
}

static void trip_breaker(struct supervisor *s, const char *why)
{
    double now = clock_monotonic();
    if (now < s->paused_until)
        return; /* already open: the other executors' requeues report the same outage */
    s->paused_until = now + s->breaker_delay;
    log_warn("pausing task intake for %.0f s: %s", s->breaker_delay, why);
    s->breaker_delay = fmin(s->breaker_delay * 2, MAX_BREAKER_DELAY);
}

static void count_outcome(struct supervisor *s, const struct delivery *d, enum task_outcome outcome)
{
    static const enum task_event events[] = {
        [TASK_SUCCEEDED] = TASK_EVENT_SUCCEEDED, [TASK_FAILED] = TASK_EVENT_FAILED,
        [TASK_RETRY] = TASK_EVENT_RETRIED,       [TASK_SKIPPED] = TASK_EVENT_SKIPPED,
        [TASK_REQUEUE] = TASK_EVENT_REQUEUED,    [TASK_REJECTED] = TASK_EVENT_FAILED,
    };
    worker_stats_count(&s->stats, d->task.task, events[outcome]);
    worker_stats_duration(&s->stats, d->task.task, clock_monotonic() - d->dispatched_at);
}

/* What the result means for the delivery. An orphaned one (its connection was lost) is
 * settled already: the broker redelivers the message, and that delivery reports. */
void sup_on_result(struct supervisor *s, struct executor *e, const struct proto_result *r)
{
    struct delivery *d = e->current;
    if (!d || d->seq != r->seq) {
        log_error("executor %d sent a result for dispatch %" PRIu64 " it was not running",
                  (int)e->pid, r->seq);
        return;
    }
    e->current = NULL;
    e->state = EXEC_IDLE;
    sup_log_task(d);
    s->processed++;
    count_outcome(s, d, r->outcome);
    if (d->state == DLV_ORPHANED) {
        log_info("task %s %s after its connection was lost: nothing is acked or published for "
                 "it; its redelivery reports",
                 d->task.id, task_outcome_name(r->outcome));
        return;
    }
    if (d->forced != DLV_FORCED_REVOKED) { /* a terminated revoke was reported as revoked */
        sup_event_task_finished(s, d, r, clock_monotonic() - d->dispatched_at);
        sup_rpc_finished(s, d, r);
    }
    switch (r->outcome) {
    case TASK_RETRY:
        publish_retry(s, d, d->task.retries + 1, r->retry_delay);
        break;
    case TASK_REQUEUE:
        sup_settle(s, d, DLV_REQUEUED);
        trip_breaker(s, r->error_message);
        break;
    case TASK_REJECTED: /* e.g. it names no run: a redelivery would fail the same way */
        s->breaker_delay = 1;
        sup_dead_letter(s, d, r->error_message);
        break;
    default:
        s->breaker_delay = 1;
        sup_settle(s, d, DLV_ACKED);
    }
}

/* Every few seconds an idle executor looks for stuck runs (the sweep needs the database,
 * which the supervisor never touches). */
void sup_schedule_sweep(struct supervisor *s, double now)
{
    if (now < s->next_sweep || s->draining || now < s->paused_until)
        return;
    for (int i = 0; i < s->nexec; i++) {
        struct executor *e = &s->execs[i];
        if (e->state != EXEC_IDLE)
            continue;
        json_object *m = proto_bare(PROTO_SWEEP);
        struct cw_error err;
        if (channel_send(e->fd, m, &err) == 0)
            e->state = EXEC_SWEEPING;
        json_object_put(m);
        break;
    }
    s->next_sweep = now + fmax(1.0, fmin(s->cfg->visibility_timeout / 2, 30.0));
}

/* An orphan (its message never reached a worker) is published again as the application
 * published it: parse_run(run_id) as a new task under the run's task id, so a late
 * original delivery is a duplicate of the same task (it finds the run final and skips). */
static void publish_orphan(struct supervisor *s, long run_id, const char *task_id)
{
    char argsrepr[32];
    snprintf(argsrepr, sizeof argsrepr, "[%ld]", run_id);
    json_object *args = json_object_new_array();
    json_object_array_add(args, json_object_new_int64(run_id));
    struct celery_new_task t = {
        .task = task_registry_all()[0]->name,
        .id = task_id,
        .args = args,
        .argsrepr = argsrepr,
        .kwargsrepr = "{}",
        .origin = s->cfg->nodename,
    };
    struct celery_outgoing out;
    struct cw_error err;
    const char *queue = s->cfg->queues[0];
    if (celery_message_encode_new(&t, &out, &err) != 0 ||
        sup_publish_to(s, "", queue, &out.props, out.body, &err) != 0)
        log_error("cannot re-publish orphaned run %ld (tried again after ORPHAN_TIMEOUT): %s",
                  run_id, err.message);
    else
        log_info("run %ld: its message never reached a worker; parse_run re-published as task %s",
                 run_id, task_id);
    celery_outgoing_free(&out);
    json_object_put(args);
}

/* Re-enqueues a recovered run as Celery's retry would: same task id, retries as given. */
static void publish_recovered(struct supervisor *s, json_object *entry)
{
    json_object *v;
    struct celery_task t;
    memset(&t, 0, sizeof t);
    long run_id =
        json_object_object_get_ex(entry, "run_id", &v) ? (long)json_object_get_int64(v) : 0;
    int retries = json_object_object_get_ex(entry, "retries", &v) ? json_object_get_int(v) : 1;
    const char *task_id =
        json_object_object_get_ex(entry, "task_id", &v) ? json_object_get_string(v) : "";
    if (json_object_object_get_ex(entry, "orphan", &v) && json_object_get_boolean(v)) {
        publish_orphan(s, run_id, task_id);
        return;
    }
    t.protocol = 2;
    t.id = cw_xstrdup(task_id);
    t.task = cw_xstrdup(task_registry_all()[0]->name);
    t.retries = retries - 1; /* the encoder adds one */
    t.args = json_object_new_array();
    json_object_array_add(t.args, json_object_new_int64(run_id));
    t.kwargs = json_object_new_object();
    struct celery_outgoing out;
    struct cw_error err;
    const char *queue = s->cfg->queues[0];
    if (celery_message_encode_retry(&t, clock_wall(), 0, &out, &err) != 0 ||
        sup_publish_to(s, "", queue, &out.props, out.body, &err) != 0)
        log_error("cannot re-enqueue stuck run %ld (the next sweep tries again): %s", run_id,
                  err.message);
    else
        log_info("stuck run %ld re-enqueued on %s as retry %d", run_id, queue, retries);
    celery_outgoing_free(&out);
    celery_task_free(&t);
}

void sup_on_sweep_result(struct supervisor *s, struct executor *e, json_object *msg)
{
    e->state = EXEC_IDLE;
    json_object *list;
    if (!json_object_object_get_ex(msg, "requeue", &list) ||
        !json_object_is_type(list, json_type_array))
        return;
    for (size_t i = 0; i < json_object_array_length(list); i++)
        publish_recovered(s, json_object_array_get_idx(list, i));
}
