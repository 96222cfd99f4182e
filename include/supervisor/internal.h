/* Internal to the supervisor (worker/supervisor.c and the files of worker/supervisor/): the
 * delivery lifecycle, the executor table and the supervisor's state. Split by concern:
 *   lifecycle.c   every change of a delivery's state (supervisor/delivery.h), settling
 *                 with the broker, connection loss, freeing settled deliveries
 *   broker.c      AMQP connections, confirmed publishing, QoS
 *   deliveries.c  decoding, dead-lettering, holding for eta, dispatch to executors
 *   executors.c   the process table: spawn, reap, respawn, hard time limits
 *   results.c     what an executor's result means: ack, retry, requeue, stuck-run sweep
 *   http_child.c  the HTTP listener process and its snapshots
 * Exported names carry the sup_ prefix; everything else stays static in its file. */
#ifndef CWORKER_SUPERVISOR_INTERNAL_H
#define CWORKER_SUPERVISOR_INTERNAL_H

#include "executor/protocol.h"
#include "mq/conn.h"
#include "mq/connector.h"
#include "supervisor/delivery.h"
#include "supervisor/watchdog.h"
#include "celery/events.h"
#include "celery/message.h"
#include "base/config.h"
#include "ops/worker_stats.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define POLL_INTERVAL_MS     200
#define MAX_RECONNECT_DELAY  30.0
#define MAX_BREAKER_DELAY    30.0
#define DELIVERIES_PER_ROUND 64

enum exec_state { EXEC_EMPTY, EXEC_STARTING, EXEC_IDLE, EXEC_BUSY, EXEC_SWEEPING };

struct executor {
    pid_t pid;
    int fd;
    enum exec_state state;
    struct delivery *current;
    double hard_deadline;
    double spawned_at;
    double respawn_at;
    int quick_deaths;        /* consecutive deaths soon after spawning: respawn backoff */
    double killed_for_limit; /* the hard limit (s) it was killed for; 0 if not */
    bool killed_for_revoke;  /* terminated by a remote-control revoke */
};

/* A publish whose confirm settles a delivery (confirms.c). */
struct sup_publish {
    struct delivery *d;         /* in CONFIRMING */
    enum delivery_state on_ack; /* RETRIED, DEAD_LETTERED, or ACKED (a re-published copy) */
    char *exchange;             /* "" (the default exchange) or a ladder level; owned */
    char *routing_key;          /* owned */
    struct mq_message_copy msg; /* what is published, kept until confirmed */
    bool sent;                  /* on the current publisher connection */
    uint64_t seq;               /* its confirm tag there */
    double sent_at;             /* monotonic */
};

/* What a connector thread needs to open a connection: it moves through the failover list. */
struct sup_open {
    const struct cw_config *cfg;
    unsigned next;         /* the broker URL to try first */
    bool per_consumer_qos; /* a queue refused global QoS: it is a quorum queue */
};

/* A task id revoked by remote control: its deliveries are not run. */
struct revoked_task {
    char *id;
    double at; /* wall clock */
};
#define REVOKED_MAX 10000

struct supervisor {
    const struct cw_config *cfg;
    struct mq_conn consumer;
    struct mq_conn publisher;
    unsigned generation;
    double reconnect_at;
    double reconnect_delay;
    double publisher_retry_at; /* no new publisher connection before this (monotonic) */
    double publisher_delay;    /* backoff between failed publisher connection attempts */
    struct mq_connector consumer_connector, publisher_connector;
    struct sup_open consumer_open, publisher_open;
    bool fatal; /* a configuration error found at start: stop with EXIT_USAGE */
    struct watchdog watchdog;
    unsigned consume_epoch; /* re-consumes on this connection (per-consumer QoS widening) */
    int counts_outstanding; /* delay-queue counts asked for and not answered yet */
    long count_sum;
    bool blocked_logged; /* a connection.blocked was reported and not yet cleared */
    struct executor *execs;
    int nexec;
    struct delivery *deliveries;   /* every delivery not yet collected, in arrival order */
    struct sup_publish *publishes; /* waiting for their confirm, oldest first */
    size_t npublishes, cap_publishes;
    uint64_t next_seq;
    double paused_until; /* circuit breaker: no dispatch before this */
    double breaker_delay;
    bool draining;
    double drain_deadline;
    double next_drain_report;
    double next_sweep;
    uint64_t processed;
    struct worker_stats stats;
    pid_t http_pid; /* the HTTP listener process, 0 when none runs */
    int http_fd;
    double http_respawn_at;
    double next_snapshot;
    double next_queue_count;
    long retries_waiting;
    int prefetch; /* the QoS in force: the base plus one per message held for its eta */
    /* The Celery ecosystem: events, remote control, rpc results. */
    struct celery_clock clock;
    struct celery_worker_identity ident;
    bool task_events;           /* task-* events on (--events, or the enable_events command) */
    unsigned online_generation; /* the connection worker-online was last sent on */
    double next_worker_heartbeat;
    double started_wall;
    struct revoked_task *revoked;
    size_t nrevoked;
    bool shutdown_requested;                 /* by the shutdown control command */
    struct amqp_connection_info broker_info; /* for `inspect stats`; strings in broker_url */
    char *broker_url;                        /* owned; NULL when the URL did not parse */
};

/* lifecycle.c */
/* Log lines that follow carry this delivery's task id and run id (cleared every round). */
void sup_log_task(const struct delivery *d);
const char *sup_queue_name(const struct supervisor *s, const struct delivery *d);
/* A new delivery (RECEIVED) at the end of the list. */
struct delivery *sup_delivery_new(struct supervisor *s, uint64_t tag, int queue);
/* Moves d (delivery_move); an impossible move is logged as an error and refused. */
bool sup_move(struct supervisor *s, struct delivery *d, enum delivery_state to);
/* Settles d with the broker: ACKED, RETRIED, DEAD_LETTERED and REVOKED ack it, REQUEUED
 * rejects it with requeue. A failed ack or reject is a lost connection. */
void sup_settle(struct supervisor *s, struct delivery *d, enum delivery_state to);
/* The consumer connection is gone: every delivery that came on it is ORPHANED at once
 * (the broker redelivers them), and reconnecting starts now. */
void sup_consumer_lost(struct supervisor *s, const struct cw_error *err);
/* Frees settled deliveries no executor holds any more. Called once a round from the loop
 * only, so a delivery a caller holds stays valid through whatever that caller calls. */
void sup_collect(struct supervisor *s);
/* True while an orphaned execution of task_id still runs in one of our executors. */
bool sup_orphan_running(const struct supervisor *s, const char *task_id);
int sup_count_in(const struct supervisor *s, enum delivery_state state);

/* Our consumer tag for queue index `queue`; epoch counts re-consumes on one connection. */
void sup_consumer_tag(int queue, unsigned epoch, char *out, size_t len);
/* The queue index a delivery's consumer tag names (any epoch). */
int sup_queue_of_tag(const struct supervisor *s, amqp_bytes_t tag);
void sup_ensure_consumer(struct supervisor *s, double now);
/* True while the broker has blocked our connections (a resource alarm). */
bool sup_broker_blocked(const struct supervisor *s);
void sup_tend_publisher(struct supervisor *s);
/* Opens the publisher connection when it is down (in a connector thread). */
void sup_ensure_publisher(struct supervisor *s, double now);
void sup_on_count(void *ctx, uint32_t messages);
/* Sends one message on the publisher connection without waiting; *seq (may be NULL) gets
 * its confirm tag. */
int sup_publish_raw(struct supervisor *s, const char *exchange, const char *routing_key,
                    const amqp_basic_properties_t *props, amqp_bytes_t body, uint64_t *seq,
                    struct cw_error *err);

/* delay_route.c */
/* Where a message for queue that must wait `delay` seconds is published: with
 * RETRY_TRANSPORT=native into the native-delay ladder (celery_delayed_27, the delay's
 * binary digits then the queue), else to the queue's delay queue for retry slot `slot`
 * (Q.retry.<N>s) on the default exchange. A delay under a second goes to the queue
 * itself either way when native. */
void sup_delay_route(const struct supervisor *s, const char *queue, double delay, int slot,
                     char *exchange, size_t exchange_len, char *routing_key, size_t key_len);

/* confirms.c */
/* Publishes d's retry or dead letter to routing_key on exchange (a copy is kept): d goes
 * to CONFIRMING and the broker's confirm settles it as on_ack; a nack requeues it. Sent
 * now if a publisher connection is up, else when one is. */
void sup_publish_settling(struct supervisor *s, struct delivery *d, enum delivery_state on_ack,
                          const char *exchange, const char *routing_key,
                          const amqp_basic_properties_t *props, amqp_bytes_t body);
/* Sends what waits for a publisher connection. */
void sup_flush_publishes(struct supervisor *s);
void sup_on_confirm(void *ctx, uint64_t tag, bool multiple, bool ack);
/* The publisher connection is gone: what it had not confirmed is sent again on the next. */
void sup_unsend_publishes(struct supervisor *s);
/* The consumer connection is gone: the waiting deliveries are orphaned, forget them. */
void sup_forget_publishes(struct supervisor *s);
void sup_free_publishes(struct supervisor *s);
bool sup_confirm_overdue(const struct supervisor *s, double now);
/* deliveries.c */
void sup_read_deliveries(struct supervisor *s);
/* Publishes d's original message to <queue>.dead with the reason; the broker's confirm
 * acks d (confirms.c). */
void sup_dead_letter(struct supervisor *s, struct delivery *d, const char *reason);
/* Hands back deliveries held for an eta for half the broker's consumer timeout. */
void sup_repark_held(struct supervisor *s, double now);
void sup_on_started(struct supervisor *s, struct executor *e, uint64_t seq);
void sup_on_refused(struct supervisor *s, struct executor *e, uint64_t seq, const char *reason);
/* executors.c */
/* In a freshly forked child: closes every descriptor but stdin/out/err and keep (its
 * channel): the supervisor's broker sockets, other channels, a connector thread's socket.
 * The parent keeps its own copies open. */
void sup_close_inherited(int keep);
/* No connector thread runs: a fork now cannot inherit a lock held by one. */
bool sup_may_fork(const struct supervisor *s);
void sup_respawn_executors(struct supervisor *s, double now);
void sup_reap_children(struct supervisor *s, double now);
void sup_enforce_hard_limits(struct supervisor *s, double now);
void sup_dispatch(struct supervisor *s, double now);
void sup_on_result(struct supervisor *s, struct executor *e, const struct proto_result *r);
void sup_schedule_sweep(struct supervisor *s, double now);
void sup_on_sweep_result(struct supervisor *s, struct executor *e, json_object *msg);
void sup_read_executor(struct supervisor *s, struct executor *e);
bool sup_reap_http(struct supervisor *s, pid_t pid, int status, double now);
void sup_ensure_http(struct supervisor *s, double now);
void sup_count_waiting_retries(struct supervisor *s, double now);
void sup_send_snapshot(struct supervisor *s, double now);
void sup_stop_http(struct supervisor *s);
void sup_adjust_prefetch(struct supervisor *s, double now);
int sup_busy_executors(const struct supervisor *s);
bool sup_sweeping(const struct supervisor *s);
void sup_stop_executors(struct supervisor *s);
/* A publish nobody waits for: events, rpc results, control replies, recovered runs. */
int sup_publish_to(struct supervisor *s, const char *exchange, const char *routing_key,
                   const amqp_basic_properties_t *props, amqp_bytes_t body, struct cw_error *err);

/* events.c: Celery events on the celeryev exchange (best effort, as in Celery). */
void sup_events_init(struct supervisor *s);
void sup_events_tick(struct supervisor *s, double now);
void sup_event_worker_offline(struct supervisor *s);
void sup_event_task_received(struct supervisor *s, const struct delivery *d);
void sup_event_task_started(struct supervisor *s, const struct delivery *d);
void sup_event_task_finished(struct supervisor *s, const struct delivery *d,
                             const struct proto_result *r, double runtime);
void sup_event_task_not_registered(struct supervisor *s, const struct celery_task *t);
void sup_event_task_revoked(struct supervisor *s, const struct celery_task *t, bool terminated,
                            bool expired);

/* rpc.c: results for AsyncResult.get() (rpc:// backend). */
void sup_rpc_finished(struct supervisor *s, const struct delivery *d, const struct proto_result *r);
void sup_rpc_not_registered(struct supervisor *s, const struct celery_task *t);
void sup_rpc_revoked(struct supervisor *s, const struct celery_task *t, const char *reason);

/* control.c: remote control (celery inspect / celery control). */
/* Declares the remote-control and events topology on c (in the consumer's connector
 * thread: reads only cfg). */
CW_MUST_CHECK int sup_control_declare(const struct cw_config *cfg, struct mq_conn *c,
                                      struct cw_error *err);
bool sup_control_owns(const struct supervisor *s, amqp_bytes_t consumer_tag);
void sup_control_handle(struct supervisor *s, const amqp_envelope_t *env);
bool sup_is_revoked(const struct supervisor *s, const char *task_id);
void sup_control_free(struct supervisor *s);

#endif
