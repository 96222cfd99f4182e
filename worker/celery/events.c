/* Celery event messages (EventDispatcher.publish in celery/events/dispatcher.py): the
 * event body, kombu's properties and the routing key. The Python text forms the events
 * carry (saferepr, exception and float reprs) are celery/pyrepr.c's. */
#include "celery/events.h"

#include "celery/time.h"
#include "celery/pyrepr.h"
#include "mq/json.h"
#include "celery/encode.h"
#include "base/xalloc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int finish(const struct celery_worker_identity *w, const char *type, json_object *body,
                  double now, struct celery_event_msg *out, struct cw_error *err);

/* ---- the Lamport clock ---- */

uint64_t celery_clock_forward(struct celery_clock *c)
{
    return ++c->value;
}

void celery_clock_adjust(struct celery_clock *c, uint64_t other)
{
    c->value = (other > c->value ? other : c->value) + 1;
}

int celery_events_utcoffset(time_t now)
{
    struct tm tm;
    if (localtime_r(&now, &tm) == NULL)
        return 0;
    /* Python's time.timezone counts seconds west of UTC and Celery floor-divides it. */
    return (int)floor((double)-tm.tm_gmtoff / 3600.0);
}

/* ---- the message ---- */

void celery_event_msg_free(struct celery_event_msg *m)
{
    celery_outgoing_free(&m->out);
    m->routing_key[0] = '\0';
}

/* The fields Event() and EventDispatcher.publish put first, in Celery's order. */
static json_object *event_head(const struct celery_worker_identity *w)
{
    json_object *e = json_object_new_object();
    json_object_object_add(e, "hostname", json_object_new_string(w->hostname));
    json_object_object_add(e, "utcoffset", json_object_new_int(w->utcoffset));
    json_object_object_add(e, "pid", json_object_new_int64(w->pid));
    json_object_object_add(e, "clock",
                           json_object_new_int64((int64_t)celery_clock_forward(w->clock)));
    return e;
}

static int check_identity(const struct celery_worker_identity *w, struct cw_error *err)
{
    if (w == NULL || w->hostname == NULL || w->hostname[0] == '\0' || w->clock == NULL) {
        CW_FAIL(err, CW_ERR_INTERNAL, "event sender has no node name or clock");
        return -1;
    }
    return 0;
}

/* Adds timestamp and type last (as Event() does), fills the message; takes body. */
static int finish(const struct celery_worker_identity *w, const char *type, json_object *body,
                  double now, struct celery_event_msg *out, struct cw_error *err)
{
    json_object *headers = json_object_new_object();
    int rc;

    json_object_object_add(body, "timestamp", celery_pyrepr_double(now));
    json_object_object_add(body, "type", json_object_new_string(type));
    /* EventDispatcher.publish: routing_key=type.replace('-', '.') */
    snprintf(out->routing_key, sizeof out->routing_key, "%s", type);
    for (char *c = out->routing_key; *c; c++)
        if (*c == '-')
            *c = '.';
    json_object_object_add(headers, "hostname", json_object_new_string(w->hostname));
    rc = celery_outgoing_fill_json(&out->out, headers, body, 1, err);
    json_object_put(headers);
    json_object_put(body);
    if (rc != 0)
        CW_WRAP(err, "encoding the %s event", type);
    return rc;
}

static void msg_init(struct celery_event_msg *out)
{
    memset(out, 0, sizeof *out);
    celery_outgoing_init(&out->out);
}

static const char *const worker_event_types[] = {
    [CELERY_WORKER_ONLINE] = "worker-online",
    [CELERY_WORKER_HEARTBEAT] = "worker-heartbeat",
    [CELERY_WORKER_OFFLINE] = "worker-offline",
};

int celery_events_worker(const struct celery_worker_identity *w, enum celery_worker_event type,
                         const struct celery_worker_load *load, double now,
                         struct celery_event_msg *out, struct cw_error *err)
{
    msg_init(out);
    if (check_identity(w, err) != 0)
        return -1;
    if ((unsigned)type > CELERY_WORKER_OFFLINE || load == NULL) {
        CW_FAIL(err, CW_ERR_INTERNAL, "bad worker event %d", (int)type);
        return -1;
    }
    json_object *e = event_head(w);
    json_object *avg = json_object_new_array_ext(3);
    for (int i = 0; i < 3; i++) /* celery.utils.sysinfo.load_average rounds up */
        json_object_array_add(avg, celery_pyrepr_double(ceil(load->loadavg[i] * 1e2) / 1e2));
    json_object_object_add(e, "freq", celery_pyrepr_double(load->freq));
    json_object_object_add(e, "active", json_object_new_int(load->active));
    json_object_object_add(e, "processed", json_object_new_int64((int64_t)load->processed));
    json_object_object_add(e, "loadavg", avg);
    if (load->concurrency > 0)
        json_object_object_add(e, "concurrency", json_object_new_int(load->concurrency));
    json_object_object_add(e, "sw_ident", celery_json_string_or_null(w->sw_ident));
    json_object_object_add(e, "sw_ver", celery_json_string_or_null(w->sw_ver));
    json_object_object_add(e, "sw_sys", celery_json_string_or_null(w->sw_sys));
    return finish(w, worker_event_types[type], e, now, out, err);
}

int celery_events_receiver_arguments(amqp_pool_t *pool, amqp_table_t *out, struct cw_error *err)
{
    json_object *args = json_object_new_object();
    json_object_object_add(args, "x-message-ttl",
                           json_object_new_int(CELERY_EVENTS_RECEIVER_MESSAGE_TTL_MS));
    json_object_object_add(args, "x-expires",
                           json_object_new_int(CELERY_EVENTS_RECEIVER_EXPIRES_MS));
    int rc = mq_json_to_table(args, pool, out, err);
    json_object_put(args);
    return rc;
}

/* ---- task events (celery/worker/strategy.py and request.py) ---- */

static json_object *iso_or_null(bool has, double epoch)
{
    char buf[64];
    if (!has)
        return NULL;
    celery_format_iso8601(epoch, buf, sizeof buf);
    return buf[0] ? json_object_new_string(buf) : NULL;
}

/* The producer's argsrepr/kwargsrepr; protocol 1 messages have none: repr the values. */
static json_object *repr_field(const char *given, json_object *value)
{
    if (given != NULL)
        return json_object_new_string(given);
    char *r = celery_pyrepr_saferepr(value, -1);
    json_object *s = json_object_new_string(r);
    free(r);
    return s;
}

/* Starts a task event: the common head plus uuid. */
static int task_head(const struct celery_worker_identity *w, const char *uuid,
                     struct celery_event_msg *out, json_object **e, struct cw_error *err)
{
    msg_init(out);
    *e = NULL;
    if (check_identity(w, err) != 0)
        return -1;
    if (uuid == NULL || uuid[0] == '\0') {
        CW_FAIL(err, CW_ERR_INTERNAL, "task event without a task id");
        return -1;
    }
    *e = event_head(w);
    json_object_object_add(*e, "uuid", json_object_new_string(uuid));
    return 0;
}

int celery_events_task_received(const struct celery_worker_identity *w, const struct celery_task *t,
                                double now, struct celery_event_msg *out, struct cw_error *err)
{
    json_object *e;
    if (task_head(w, t ? t->id : NULL, out, &e, err) != 0)
        return -1;
    json_object_object_add(e, "name", celery_json_string_or_null(t->task));
    json_object_object_add(e, "args", repr_field(t->argsrepr, t->args));
    json_object_object_add(e, "kwargs", repr_field(t->kwargsrepr, t->kwargs));
    json_object_object_add(e, "root_id", celery_json_string_or_null(t->root_id));
    json_object_object_add(e, "parent_id", celery_json_string_or_null(t->parent_id));
    json_object_object_add(e, "retries", json_object_new_int(t->retries));
    json_object_object_add(e, "eta", iso_or_null(t->has_eta, t->eta));
    json_object_object_add(e, "expires", iso_or_null(t->has_expires, t->expires));
    return finish(w, "task-received", e, now, out, err);
}

int celery_events_task_started(const struct celery_worker_identity *w, const char *uuid, double now,
                               struct celery_event_msg *out, struct cw_error *err)
{
    json_object *e;
    if (task_head(w, uuid, out, &e, err) != 0)
        return -1;
    return finish(w, "task-started", e, now, out, err);
}

int celery_events_task_succeeded(const struct celery_worker_identity *w, const char *uuid,
                                 json_object *result, double runtime, double now,
                                 struct celery_event_msg *out, struct cw_error *err)
{
    json_object *e;
    if (task_head(w, uuid, out, &e, err) != 0)
        return -1;
    /* Celery sends saferepr(retval, resultrepr_maxsize), never the value itself. */
    char *r = celery_pyrepr_saferepr(result, CELERY_EVENTS_RESULT_REPR_MAX);
    json_object_object_add(e, "result", json_object_new_string(r));
    free(r);
    json_object_object_add(e, "runtime", celery_pyrepr_double(runtime));
    return finish(w, "task-succeeded", e, now, out, err);
}

static int exception_event(const struct celery_worker_identity *w, const char *type,
                           const char *uuid, const char *exception, const char *traceback,
                           double now, struct celery_event_msg *out, struct cw_error *err)
{
    json_object *e;
    if (task_head(w, uuid, out, &e, err) != 0)
        return -1;
    json_object_object_add(e, "exception", celery_json_string_or_null(exception));
    if (traceback != NULL)
        json_object_object_add(e, "traceback", json_object_new_string(traceback));
    return finish(w, type, e, now, out, err);
}

int celery_events_task_failed(const struct celery_worker_identity *w, const char *uuid,
                              const char *exception, const char *traceback, double now,
                              struct celery_event_msg *out, struct cw_error *err)
{
    return exception_event(w, "task-failed", uuid, exception, traceback, now, out, err);
}

int celery_events_task_retried(const struct celery_worker_identity *w, const char *uuid,
                               const char *exception, const char *traceback, double now,
                               struct celery_event_msg *out, struct cw_error *err)
{
    return exception_event(w, "task-retried", uuid, exception, traceback, now, out, err);
}

int celery_events_task_rejected(const struct celery_worker_identity *w, const char *uuid,
                                bool requeue, double now, struct celery_event_msg *out,
                                struct cw_error *err)
{
    json_object *e;
    if (task_head(w, uuid, out, &e, err) != 0)
        return -1;
    json_object_object_add(e, "requeue", json_object_new_boolean(requeue));
    return finish(w, "task-rejected", e, now, out, err);
}

int celery_events_task_revoked(const struct celery_worker_identity *w, const char *uuid,
                               bool terminated, int signum, bool expired, double now,
                               struct celery_event_msg *out, struct cw_error *err)
{
    json_object *e;
    if (task_head(w, uuid, out, &e, err) != 0)
        return -1;
    json_object_object_add(e, "terminated", json_object_new_boolean(terminated));
    json_object_object_add(e, "signum", signum > 0 ? json_object_new_int(signum) : NULL);
    json_object_object_add(e, "expired", json_object_new_boolean(expired));
    return finish(w, "task-revoked", e, now, out, err);
}
