/* Supervisor: acting on executor results (ack, retry, requeue) and on stuck-run sweeps. */
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

static void publish_retry(struct supervisor *s, struct delivery *d, int next_retries, double delay)
{
    const struct cw_config *cfg = s->cfg;
    int slot = next_retries - 1 < cfg->nretry_delays ? next_retries - 1 : cfg->nretry_delays - 1;
    char routing_key[300];
    mq_conn_retry_queue_name(sup_queue_name(s, d), cfg->retry_delays[slot < 0 ? 0 : slot],
                             routing_key, sizeof routing_key);
    struct celery_outgoing out;
    struct cw_error err;
    if (celery_message_encode_retry(&d->task, clock_wall(), delay, &out, &err) != 0 ||
        sup_publish_confirmed(s, routing_key, &out.props, out.body, &err) != 0) {
        log_error("cannot publish the retry of task %s; the delivery is requeued: %s", d->task.id,
                  err.message);
        sup_settle(s, d, false, true);
    } else {
        log_info("task %s retry %d published to %s (runs in %.0f s)", d->task.id, next_retries,
                 routing_key, delay);
        sup_settle(s, d, true, false);
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

static const char *result_error_message(json_object *msg)
{
    json_object *e, *m;
    if (json_object_object_get_ex(msg, "error", &e) && json_object_object_get_ex(e, "message", &m))
        return json_object_get_string(m);
    return "";
}

static void count_outcome(struct supervisor *s, const struct delivery *d, const char *outcome)
{
    static const struct {
        const char *name;
        enum task_event ev;
    } map[] = {{"succeeded", TASK_EVENT_SUCCEEDED},
               {"failed", TASK_EVENT_FAILED},
               {"retry", TASK_EVENT_RETRIED},
               {"skipped", TASK_EVENT_SKIPPED},
               {"requeue", TASK_EVENT_REQUEUED}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(outcome, map[i].name) == 0)
            worker_stats_count(&s->stats, d->task.task, map[i].ev);
    worker_stats_duration(&s->stats, d->task.task, clock_monotonic() - d->dispatched_at);
}

void sup_on_result(struct supervisor *s, struct executor *e, json_object *msg)
{
    struct delivery *d = e->current;
    e->current = NULL;
    e->state = EXEC_IDLE;
    if (!d)
        return;
    sup_log_task(d);
    json_object *v;
    const char *outcome =
        json_object_object_get_ex(msg, "outcome", &v) ? json_object_get_string(v) : "";
    s->processed++;
    count_outcome(s, d, outcome);
    if (!d->forced_permanent) { /* a terminated revoke was already reported as revoked */
        sup_event_task_finished(s, d, outcome, msg, clock_monotonic() - d->dispatched_at);
        sup_rpc_finished(s, d, outcome, msg);
    }
    if (strcmp(outcome, "retry") == 0 && !sup_delivery_is_current(s, d)) {
        /* The broker redelivers the original; publishing too would start a second chain. */
        log_info("task %s: retry not published, its delivery is already back in the queue",
                 d->task.id);
    } else if (strcmp(outcome, "retry") == 0) {
        double delay =
            json_object_object_get_ex(msg, "retry_delay", &v) ? json_object_get_double(v) : 0;
        publish_retry(s, d, d->task.retries + 1, delay);
    } else if (strcmp(outcome, "requeue") == 0) {
        sup_settle(s, d, false, true);
        trip_breaker(s, result_error_message(msg));
    } else {
        s->breaker_delay = 1;
        sup_settle(s, d, true, false);
    }
    sup_delivery_free(d);
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
        json_object *m = json_object_new_object();
        json_object_object_add(m, "type", json_object_new_string("sweep"));
        struct cw_error err;
        if (channel_send(e->fd, m, &err) == 0)
            e->state = EXEC_SWEEPING;
        json_object_put(m);
        break;
    }
    s->next_sweep = now + fmax(1.0, fmin(s->cfg->visibility_timeout / 2, 30.0));
}

/* Re-enqueues a recovered run as Celery's retry would: same task id, retries as given. */
static void publish_recovered(struct supervisor *s, json_object *entry)
{
    json_object *v;
    struct delivery d;
    memset(&d, 0, sizeof d);
    long run_id =
        json_object_object_get_ex(entry, "run_id", &v) ? (long)json_object_get_int64(v) : 0;
    int retries = json_object_object_get_ex(entry, "retries", &v) ? json_object_get_int(v) : 1;
    const char *task_id =
        json_object_object_get_ex(entry, "task_id", &v) ? json_object_get_string(v) : "";
    d.task.protocol = 2;
    d.task.id = cw_xstrdup(task_id);
    d.task.task = cw_xstrdup(task_registry_all()[0]->name);
    d.task.retries = retries - 1; /* the encoder adds one */
    d.task.args = json_object_new_array();
    json_object_array_add(d.task.args, json_object_new_int64(run_id));
    d.task.kwargs = json_object_new_object();
    struct celery_outgoing out;
    struct cw_error err;
    const char *queue = s->cfg->queues[0];
    if (celery_message_encode_retry(&d.task, clock_wall(), 0, &out, &err) != 0 ||
        sup_publish_confirmed(s, queue, &out.props, out.body, &err) != 0)
        log_error("cannot re-enqueue stuck run %ld (the next sweep tries again): %s", run_id,
                  err.message);
    else
        log_info("stuck run %ld re-enqueued on %s as retry %d", run_id, queue, retries);
    celery_outgoing_free(&out);
    celery_task_free(&d.task);
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
