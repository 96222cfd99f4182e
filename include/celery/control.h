/* Celery remote control (`celery inspect ...`, `celery control ...`, app.control) as
 * kombu's Mailbox/Node (kombu/pidbox.py) and Celery's Panel (celery/worker/control.py)
 * implement it: decode a request, decide whether it is for this node, answer it from
 * the state the caller passes in, and tell the caller what to do. Pure module: no I/O,
 * no logging; actions with side effects are returned, never performed.
 *
 * Topology (Celery's app.control.mailbox = Mailbox('celery', type='fanout'), with
 * control_queue_ttl 300 s and control_queue_expires 10 s):
 *   exchange "celery.pidbox"        fanout, not durable, not auto-delete, no arguments;
 *                                   clients publish requests here (routing key "").
 *   queue    "<nodename>.celery.pidbox"   not durable, not exclusive, auto-delete,
 *                                   arguments {"x-expires": 10000, "x-message-ttl": 300000}
 *                                   (both 32-bit signed ints, 'I', as py-amqp sends them);
 *                                   bound to "celery.pidbox" with routing key "".
 *                                   kombu consumes it with no_ack=True: requests are never
 *                                   redelivered, so ack (or auto-ack) each one at once.
 *   exchange "reply.celery.pidbox"  direct, not durable, not auto-delete, no arguments;
 *                                   replies go to the exchange and routing key named in the
 *                                   request's reply_to (this one, routing key = client oid).
 *                                   kombu declares it before each reply: declare it too, or
 *                                   a reply to a vanished client closes the channel (404).
 *
 * Request message: see celery/control_request.h.
 * Reply message: body {"<nodename>": <result>}; headers {"ticket": <ticket>, "clock": int};
 * content_type application/json, content_encoding utf-8, delivery_mode 1, priority 0.
 *
 * Replies match a Celery 5.2.6 worker's (captured on this machine): {"ok": "pong"},
 * lists for active/reserved/scheduled/registered/revoked/active_queues, stats and conf
 * objects, {"ok": "..."} for control commands, {"error": "KeyError('<method>')"} for an
 * unknown method, {"error": "..."} for Celery commands cworker does not implement
 * (rate_limit, time_limit, pool_*, autoscale, add/cancel_consumer, election, mem*,
 * objgraph). `shutdown` gets NO reply, exactly like Celery's (its WorkerShutdown skips the
 * reply, so `celery control shutdown` reports "No nodes replied" and exits 69). */
#ifndef CWORKER_CELERY_CONTROL_H
#define CWORKER_CELERY_CONTROL_H

#include "celery/control_request.h"
#include "celery/events.h"
#include "celery/encode.h"
#include "celery/message.h"
#include "base/error.h"

#include <amqp.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>

#define CELERY_CONTROL_EXCHANGE                   "celery.pidbox"
#define CELERY_CONTROL_EXCHANGE_TYPE              "fanout"
#define CELERY_CONTROL_EXCHANGE_DURABLE           false
#define CELERY_CONTROL_EXCHANGE_AUTO_DELETE       false
#define CELERY_CONTROL_REPLY_EXCHANGE             "reply.celery.pidbox"
#define CELERY_CONTROL_REPLY_EXCHANGE_TYPE        "direct"
#define CELERY_CONTROL_REPLY_EXCHANGE_DURABLE     false
#define CELERY_CONTROL_REPLY_EXCHANGE_AUTO_DELETE false
#define CELERY_CONTROL_QUEUE_DURABLE              false
#define CELERY_CONTROL_QUEUE_EXCLUSIVE            false
#define CELERY_CONTROL_QUEUE_AUTO_DELETE          true
#define CELERY_CONTROL_QUEUE_EXPIRES_MS           10000  /* x-expires */
#define CELERY_CONTROL_QUEUE_MESSAGE_TTL_MS       300000 /* x-message-ttl */
#define CELERY_CONTROL_BINDING_KEY                ""

/* "<nodename>.celery.pidbox" into out (truncated to len, always terminated). */
void celery_control_queue_name(const char *nodename, char *out, size_t len);

/* The queue's arguments table, its memory in pool (what kombu sends, see above). */
CW_MUST_CHECK int celery_control_queue_arguments(amqp_pool_t *pool, amqp_table_t *out,
                                                 struct cw_error *err);

/* One task as Celery's Request.info() shows it. */
struct celery_control_task {
    const struct celery_task *task; /* never NULL: id, name, args, kwargs, argsrepr, eta */
    const char *exchange;           /* delivery_info.exchange ("" for the default exchange) */
    const char *routing_key;        /* delivery_info.routing_key (the queue) */
    int priority;                   /* delivery_info.priority */
    bool redelivered;               /* delivery_info.redelivered */
    double time_start;              /* epoch seconds it started running; 0: not started */
    long worker_pid;                /* the executor's pid; 0: not running */
    bool acknowledged;              /* false until acked (cworker acks late) */
};

struct celery_control_revoked {
    const char *id;
    double timestamp; /* epoch seconds when it was revoked (what `hello` shares) */
};

struct celery_control_count {
    const char *name; /* task name */
    uint64_t count;   /* tasks of that name executed since start */
};

/* What the replies report. Everything is borrowed for the duration of the call. */
struct celery_control_state {
    const char *nodename;
    long pid;                   /* the supervisor's pid */
    double uptime;              /* seconds since the worker started */
    struct celery_clock *clock; /* advanced as the pidbox does: on receipt and per reply */
    const char *sw_ver;         /* the worker's version, for `report` */
    bool task_events;           /* task-* events are being sent now */
    const struct celery_control_task *active; /* executing */
    size_t nactive;
    const struct celery_control_task *reserved; /* received, waiting for an executor */
    size_t nreserved;
    const struct celery_control_task *scheduled; /* held until a future eta */
    size_t nscheduled;
    const char *const *registered; /* task names the worker runs */
    size_t nregistered;
    const char *const *queues; /* consumed queues (declared as kombu declares Q) */
    size_t nqueues;
    const struct celery_control_revoked *revoked; /* ids revoked and not yet expired */
    size_t nrevoked;
    const struct celery_control_count *totals; /* stats "total" */
    size_t ntotals;
    int concurrency;
    const long *executor_pids; /* stats pool.processes */
    size_t nexecutor_pids;
    int prefetch_count;      /* the QoS in force */
    int prefetch_multiplier; /* for `conf` */
    double soft_time_limit, time_limit;
    const struct amqp_connection_info *broker; /* parsed broker URL; NULL: left out */
    int broker_heartbeat;                      /* seconds */
    const struct rusage *rusage;               /* the supervisor's; NULL: "N/A" */
};

/* Side effects the caller performs after publishing the reply. */
enum celery_control_action {
    CELERY_CONTROL_NONE = 0,
    CELERY_CONTROL_ENABLE_EVENTS,  /* start sending task-* events */
    CELERY_CONTROL_DISABLE_EVENTS, /* stop sending task-* events (worker-* events go on) */
    CELERY_CONTROL_REVOKE,         /* add revoke_ids to the revoked set; with terminate,
                                      also kill the executors running them with signum */
    CELERY_CONTROL_SHUTDOWN,       /* graceful shutdown (as SIGTERM), then exit 0 */
    CELERY_CONTROL_HEARTBEAT,      /* send a worker-heartbeat event now */
};

struct celery_control_outcome {
    enum celery_control_action action;
    char **revoke_ids; /* CELERY_CONTROL_REVOKE: owned, deduplicated, in request order */
    size_t nrevoke_ids;
    bool terminate;
    int signum;                 /* with terminate: the signal (default SIGTERM) */
    bool has_reply;             /* publish `reply` to reply_exchange / reply_routing_key */
    const char *reply_exchange; /* borrowed from the request */
    const char *reply_routing_key;
    struct celery_outgoing reply;
};

/* Handles one request: nothing at all when it is not for st->nodename (no reply, no
 * action); else the command's reply (when the request has reply_to and the command
 * replies) and its action. Advances st->clock as kombu's pidbox does. *out is
 * initialised here; release it with celery_control_outcome_free, also after a failure. Bad
 * arguments are replies ({"error": ...}), not failures; failures are CW_ERR_INTERNAL (a reply that
 * cannot be encoded). */
CW_MUST_CHECK int celery_control_handle(const struct celery_control_request *req,
                                        const struct celery_control_state *st,
                                        struct celery_control_outcome *out, struct cw_error *err);
void celery_control_outcome_free(struct celery_control_outcome *out);

#endif
