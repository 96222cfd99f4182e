/* Celery event messages, as Celery 5.2's EventDispatcher publishes them, so that
 * `celery events`, Flower and app.events.Receiver see cworker like a Python worker.
 * Pure module: builds messages, never publishes, no logging.
 *
 * The wire format (captured from a Celery 5.2.6 worker on RabbitMQ):
 *   exchange     "celeryev": topic, durable, not auto-delete, no arguments
 *                (kombu Exchange('celeryev', type='topic') defaults). Declare it before the
 *                first publish: publishing to a missing exchange closes the channel.
 *   routing key  the event type with '-' replaced by '.': "worker.heartbeat",
 *                "task.succeeded", ... (Python workers buffer task events and send them as
 *                a JSON list under "task.multi"; receivers accept both, we send one by one).
 *   properties   content_type application/json, content_encoding utf-8, delivery_mode 1
 *                (transient), priority 0, headers {"hostname": <node name>}.
 *   body         {"hostname", "utcoffset", "pid", "clock", <fields>, "timestamp", "type"}.
 *
 * Python workers always send the worker-* events (heartbeats every 2 s, which is what makes
 * `celery events`/Flower show them online) and send task-* events only with -E or after
 * the `enable_events` remote control command. */
#ifndef CWORKER_CELERY_EVENTS_H
#define CWORKER_CELERY_EVENTS_H

#include "celery/message.h"
#include "celery/encode.h"
#include "celery/pyrepr.h"
#include "base/error.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define CELERY_EVENTS_EXCHANGE             "celeryev"
#define CELERY_EVENTS_EXCHANGE_TYPE        "topic"
#define CELERY_EVENTS_EXCHANGE_DURABLE     true
#define CELERY_EVENTS_EXCHANGE_AUTO_DELETE false
/* Seconds between worker-heartbeat events (Celery's default; receivers consider a worker
 * offline when no heartbeat came for 2 * freq). */
#define CELERY_EVENTS_HEARTBEAT_FREQ 2.0
/* What Celery's EventReceiver declares to listen (celery/events/receiver.py): a queue
 * "celeryev.<unique>", not durable, auto-delete, with event_queue_ttl (5 s: an event
 * nobody read in time is stale) and event_queue_expires (60 s) as x-message-ttl and
 * x-expires, bound to the events exchange; "worker.#" gets the worker-* events only. */
#define CELERY_EVENTS_RECEIVER_PREFIX         "celeryev."
#define CELERY_EVENTS_RECEIVER_MESSAGE_TTL_MS 5000
#define CELERY_EVENTS_RECEIVER_EXPIRES_MS     60000
#define CELERY_EVENTS_WORKER_BINDING          "worker.#"
/* Celery's Task.resultrepr_maxsize: task-succeeded carries at most this much of the result. */
#define CELERY_EVENTS_RESULT_REPR_MAX 1024

/* The worker's Lamport clock (kombu LamportClock), shared by events and remote control. */
struct celery_clock {
    uint64_t value;
};
/* Advances the clock for an event we send; returns the new value. */
uint64_t celery_clock_forward(struct celery_clock *c);
/* Merges a clock value received from another node: value = max(value, other) + 1. */
void celery_clock_adjust(struct celery_clock *c, uint64_t other);

/* Who sends the events. Strings are borrowed for the duration of each call. */
struct celery_worker_identity {
    const char *hostname; /* the node name, e.g. "cworker@host" */
    long pid;             /* the supervisor's pid */
    const char *sw_ident; /* "cworker" (Python: "py-celery") */
    const char *sw_ver;   /* the worker's version */
    const char *sw_sys;   /* "Linux" (Python: platform.system()) */
    int utcoffset;        /* hours, as celery_events_utcoffset computes it */
    struct celery_clock *clock;
};

/* Celery's utcoffset(): hours WEST of UTC (time.timezone // 3600, floor division), so
 * UTC is 0 and UTC+05:30 is -6. Uses the local time zone (localtime_r). */
int celery_events_utcoffset(time_t now);

/* An event ready to publish: to exchange CELERY_EVENTS_EXCHANGE with routing_key. */
struct celery_event_msg {
    char routing_key[64];
    struct celery_outgoing out; /* props, body; memory in out.pool */
};
/* Releases what m holds; safe on a zeroed or failed message. */
void celery_event_msg_free(struct celery_event_msg *m);

enum celery_worker_event {
    CELERY_WORKER_ONLINE,    /* "worker-online": once, when consuming starts */
    CELERY_WORKER_HEARTBEAT, /* "worker-heartbeat": every CELERY_EVENTS_HEARTBEAT_FREQ s */
    CELERY_WORKER_OFFLINE,   /* "worker-offline": at shutdown */
};

/* What the worker-* events report (Celery's Heart._send). */
struct celery_worker_load {
    double freq;        /* CELERY_EVENTS_HEARTBEAT_FREQ */
    int active;         /* tasks executing now */
    uint64_t processed; /* tasks finished since start, all outcomes */
    double loadavg[3];  /* getloadavg(); rounded up to 2 decimals here, as Celery does */
    int concurrency;    /* > 0: sent as "concurrency", cworker's own field (the executors; a
                           Celery heartbeat has none, and receivers ignore fields they do
                           not know), so the dashboard can show it; 0: left out */
};

/* The messages below are initialised here (*out); release them with celery_event_msg_free,
 * also after a failure. `now` is the wall clock (epoch seconds) for "timestamp".
 * Every call advances w->clock. Failures are CW_ERR_INTERNAL (bad arguments). */
CW_MUST_CHECK int celery_events_worker(const struct celery_worker_identity *w,
                                       enum celery_worker_event type,
                                       const struct celery_worker_load *load, double now,
                                       struct celery_event_msg *out, struct cw_error *err);

/* The arguments of the receiver queue above (x-message-ttl, x-expires), in pool. */
CW_MUST_CHECK int celery_events_receiver_arguments(amqp_pool_t *pool, amqp_table_t *out,
                                                   struct cw_error *err);

/* "task-received" {uuid, name, args, kwargs, root_id, parent_id, retries, eta, expires}:
 * args/kwargs are the message's argsrepr/kwargsrepr (a repr of the arguments when the
 * producer sent none, as with protocol 1); eta/expires ISO-8601 or null. */
CW_MUST_CHECK int celery_events_task_received(const struct celery_worker_identity *w,
                                              const struct celery_task *t, double now,
                                              struct celery_event_msg *out, struct cw_error *err);
/* "task-started" {uuid}: an executor began running the task. */
CW_MUST_CHECK int celery_events_task_started(const struct celery_worker_identity *w,
                                             const char *uuid, double now,
                                             struct celery_event_msg *out, struct cw_error *err);
/* "task-succeeded" {uuid, result, runtime}: result is the task's return value (borrowed),
 * sent as Celery's saferepr of it (Python literal syntax, at most
 * CELERY_EVENTS_RESULT_REPR_MAX characters); runtime in seconds. */
CW_MUST_CHECK int celery_events_task_succeeded(const struct celery_worker_identity *w,
                                               const char *uuid, json_object *result,
                                               double runtime, double now,
                                               struct celery_event_msg *out, struct cw_error *err);
/* "task-failed" {uuid, exception, traceback}: exception as celery_pyrepr_exception
 * makes it; traceback NULL leaves the field out (Celery's unknown-task event has none). */
CW_MUST_CHECK int celery_events_task_failed(const struct celery_worker_identity *w,
                                            const char *uuid, const char *exception,
                                            const char *traceback, double now,
                                            struct celery_event_msg *out, struct cw_error *err);
/* "task-retried" {uuid, exception, traceback}: the task will run again (retry published). */
CW_MUST_CHECK int celery_events_task_retried(const struct celery_worker_identity *w,
                                             const char *uuid, const char *exception,
                                             const char *traceback, double now,
                                             struct celery_event_msg *out, struct cw_error *err);
/* "task-rejected" {uuid, requeue}: the delivery was rejected (requeued or dead-lettered). */
CW_MUST_CHECK int celery_events_task_rejected(const struct celery_worker_identity *w,
                                              const char *uuid, bool requeue, double now,
                                              struct celery_event_msg *out, struct cw_error *err);
/* "task-revoked" {uuid, terminated, signum, expired}: not run (revoked or expired) or
 * killed (terminated, signum > 0; signum 0 is sent as null). */
CW_MUST_CHECK int celery_events_task_revoked(const struct celery_worker_identity *w,
                                             const char *uuid, bool terminated, int signum,
                                             bool expired, double now, struct celery_event_msg *out,
                                             struct cw_error *err);

#endif
