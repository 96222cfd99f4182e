/* Supervisor: Celery events on the celeryev exchange. worker-* events are always sent
 * (as a Celery worker does unless told not to); task-* events when enabled. Events are
 * best effort, as in Celery: a failed publish is logged and dropped, never retried. */
#include "celery/pyrepr.h"
#include "supervisor/internal.h"
#include "base/clock.h"
#include "base/log.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CWORKER_SW_VERSION "0.1.0"

void sup_events_init(struct supervisor *s)
{
    s->ident.hostname = s->cfg->nodename;
    s->ident.pid = (long)getpid();
    s->ident.sw_ident = "cworker";
    s->ident.sw_ver = CWORKER_SW_VERSION;
    s->ident.sw_sys = "Linux";
    s->ident.utcoffset = celery_events_utcoffset(time(NULL));
    s->ident.clock = &s->clock;
    s->task_events = s->cfg->task_events;
    s->started_wall = clock_wall();
    if (mq_conn_parse_url(s->cfg->broker_url, &s->broker_info, &s->broker_url) != 0) {
        free(s->broker_url);
        s->broker_url = NULL;
    }
}

static void publish_event(struct supervisor *s, struct celery_event_msg *m)
{
    struct cw_error err;
    if (sup_broker_blocked(s)) /* best effort, as in Celery: not worth a blocked socket */
        log_debug("event %s not sent: the broker blocks publishing", m->routing_key);
    else if (sup_publish_to(s, CELERY_EVENTS_EXCHANGE, m->routing_key, &m->out.props, m->out.body,
                            &err) != 0)
        log_debug("event %s not sent: %s", m->routing_key, err.message);
    celery_event_msg_free(m);
}

static void built(struct supervisor *s, int rc, struct celery_event_msg *m,
                  const struct cw_error *err)
{
    if (rc == 0) {
        publish_event(s, m);
        return;
    }
    log_debug("event not built: %s", err->message);
    celery_event_msg_free(m);
}

static void worker_event(struct supervisor *s, enum celery_worker_event type)
{
    struct celery_worker_load load = {CELERY_EVENTS_HEARTBEAT_FREQ,
                                      sup_busy_executors(s),
                                      s->processed,
                                      {0, 0, 0},
                                      s->cfg->concurrency};
    if (getloadavg(load.loadavg, 3) < 0)
        memset(load.loadavg, 0, sizeof load.loadavg);
    struct celery_event_msg m;
    memset(&m, 0, sizeof m);
    struct cw_error err;
    int rc = celery_events_worker(&s->ident, type, &load, clock_wall(), &m, &err);
    built(s, rc, &m, &err);
}

void sup_events_tick(struct supervisor *s, double now)
{
    if (!mq_conn_is_open(&s->consumer) || s->draining)
        return;
    if (s->online_generation != s->generation) {
        s->online_generation = s->generation;
        worker_event(s, CELERY_WORKER_ONLINE);
        s->next_worker_heartbeat = now + CELERY_EVENTS_HEARTBEAT_FREQ;
    }
    if (now >= s->next_worker_heartbeat) {
        worker_event(s, CELERY_WORKER_HEARTBEAT);
        s->next_worker_heartbeat = now + CELERY_EVENTS_HEARTBEAT_FREQ;
    }
}

void sup_event_worker_offline(struct supervisor *s)
{
    if (mq_conn_is_open(&s->consumer) || mq_conn_is_open(&s->publisher))
        worker_event(s, CELERY_WORKER_OFFLINE);
}

void sup_event_task_received(struct supervisor *s, const struct delivery *d)
{
    if (!s->task_events)
        return;
    struct celery_event_msg m;
    memset(&m, 0, sizeof m);
    struct cw_error err;
    built(s, celery_events_task_received(&s->ident, &d->task, clock_wall(), &m, &err), &m, &err);
}

void sup_event_task_started(struct supervisor *s, const struct delivery *d)
{
    if (!s->task_events)
        return;
    struct celery_event_msg m;
    memset(&m, 0, sizeof m);
    struct cw_error err;
    built(s, celery_events_task_started(&s->ident, d->task.id, clock_wall(), &m, &err), &m, &err);
}

/* "PermanentError('...')", as Celery shows an exception in events. */
static char *exception_text(const struct proto_result *r)
{
    const char *type = r->error_cls == CW_ERR_PERMANENT   ? "PermanentError"
                       : r->error_cls == CW_ERR_TRANSIENT ? "TransientError"
                       : r->error_cls == CW_ERR_TIMEOUT   ? "TimeLimitExceeded"
                                                          : "InternalError";
    return celery_pyrepr_exception(type, r->error_message);
}

void sup_event_task_finished(struct supervisor *s, const struct delivery *d,
                             const struct proto_result *r, double runtime)
{
    if (!s->task_events)
        return;
    struct celery_event_msg m;
    memset(&m, 0, sizeof m);
    struct cw_error err;
    double now = clock_wall();
    int rc;
    char *exc;
    switch (r->outcome) {
    case TASK_SUCCEEDED:
        rc = celery_events_task_succeeded(&s->ident, d->task.id, r->result, runtime, now, &m, &err);
        break;
    case TASK_FAILED:
    case TASK_REJECTED: /* reported as the failure it is; the message is dead-lettered */
    case TASK_RETRY:
        exc = exception_text(r);
        rc = r->outcome != TASK_RETRY
                 ? celery_events_task_failed(&s->ident, d->task.id, exc, r->error_traceback, now,
                                             &m, &err)
                 : celery_events_task_retried(&s->ident, d->task.id, exc, r->error_traceback, now,
                                              &m, &err);
        free(exc);
        break;
    default:
        return; /* skipped / requeued: the task runs (or ran) elsewhere */
    }
    built(s, rc, &m, &err);
}

/* What Celery's consumer sends for a task it does not know (on_unknown_task). */
void sup_event_task_not_registered(struct supervisor *s, const struct celery_task *t)
{
    if (!s->task_events || !t->id)
        return;
    struct celery_event_msg m;
    memset(&m, 0, sizeof m);
    struct cw_error err;
    char *exc = celery_pyrepr_exception("NotRegistered", t->task ? t->task : "");
    built(s, celery_events_task_failed(&s->ident, t->id, exc, NULL, clock_wall(), &m, &err), &m,
          &err);
    free(exc);
}

void sup_event_task_revoked(struct supervisor *s, const struct celery_task *t, bool terminated,
                            bool expired)
{
    if (!s->task_events || !t->id)
        return;
    struct celery_event_msg m;
    memset(&m, 0, sizeof m);
    struct cw_error err;
    built(s,
          celery_events_task_revoked(&s->ident, t->id, terminated, terminated ? 15 : 0, expired,
                                     clock_wall(), &m, &err),
          &m, &err);
}
