/* Supervisor loop: consume, decode, dispatch to executors, act on their results. */
#include "supervisor.h"
#include "amqp_conn.h"
#include "celery_message.h"
#include "channel.h"
#include "clock.h"
#include "dead_letter.h"
#include "executor.h"
#include "http_server.h"
#include "log.h"
#include "task.h"
#include "worker_stats.h"
#include "xalloc.h"

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

#define POLL_INTERVAL_MS     200
#define MAX_RECONNECT_DELAY  30.0
#define MAX_BREAKER_DELAY    30.0
#define AMQP_HEARTBEAT_S     30
#define DELIVERIES_PER_ROUND 64

static volatile sig_atomic_t stop_signals;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_signals++;
}

/* A message the broker gave us; owned by the supervisor until acked or rejected. */
struct delivery {
    struct delivery *next;
    uint64_t tag;
    unsigned generation;  /* consumer connection it came on: tags are per connection */
    int queue;            /* index into cfg->queues */
    uint64_t seq;         /* our id for it on the executor channel */
    double not_before;    /* monotonic: a producer eta in the future */
    char *forced_error;   /* set after a hard-limit kill: the next attempt records this */
    double dispatched_at; /* monotonic, for the duration histogram */
    struct celery_task task;
};

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
};

struct supervisor {
    const struct cw_config *cfg;
    struct amqp_conn consumer;
    struct amqp_conn publisher;
    unsigned generation;
    double reconnect_at;
    double reconnect_delay;
    struct executor *execs;
    int nexec;
    struct delivery *pending;
    struct delivery **pending_tail;
    uint64_t next_seq;
    double paused_until; /* circuit breaker: no dispatch before this */
    double breaker_delay;
    bool draining;
    double drain_deadline;
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
};

static bool reap_http(struct supervisor *s, pid_t pid, int status, double now);

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static void delivery_free(struct delivery *d)
{
    if (!d)
        return;
    celery_task_free(&d->task);
    free(d->forced_error);
    free(d);
}

static const char *queue_name(const struct supervisor *s, const struct delivery *d)
{
    return s->cfg->queues[d->queue];
}

static bool delivery_is_current(const struct supervisor *s, const struct delivery *d)
{
    return d->generation == s->generation && amqp_conn_is_open(&s->consumer);
}

/* ---- broker connections ---- */

static void consumer_lost(struct supervisor *s, const struct cw_error *err)
{
    log_error("broker connection lost: %s", err->message);
    amqp_conn_close(&s->consumer);
    amqp_conn_close(&s->publisher);
    s->reconnect_at = clock_monotonic() + s->reconnect_delay;
}

static void consumer_tag(int queue, char *out, size_t len)
{
    snprintf(out, len, "cworker-%d-%d", (int)getpid(), queue);
}

static int base_prefetch(const struct cw_config *cfg)
{
    int prefetch = cfg->concurrency * cfg->prefetch_multiplier;
    return prefetch > 60000 ? 60000 : prefetch;
}

static int open_consumer(struct supervisor *s, struct cw_error *err)
{
    const struct cw_config *cfg = s->cfg;
    if (amqp_conn_open(&s->consumer, cfg->broker_url, AMQP_HEARTBEAT_S, err) != 0)
        return -1;
    for (int q = 0; q < cfg->nqueues; q++)
        if (amqp_conn_declare_topology(&s->consumer, cfg->queues[q], cfg->retry_delays,
                                       cfg->nretry_delays, err) != 0)
            return -1;
    s->prefetch = base_prefetch(cfg);
    if (amqp_conn_set_prefetch(&s->consumer, (uint16_t)s->prefetch, err) != 0)
        return -1;
    for (int q = 0; q < cfg->nqueues; q++) {
        char tag[64];
        consumer_tag(q, tag, sizeof tag);
        if (amqp_conn_consume(&s->consumer, cfg->queues[q], tag, err) != 0)
            return -1;
    }
    return 0;
}

static void ensure_consumer(struct supervisor *s, double now)
{
    if (amqp_conn_is_open(&s->consumer) || s->draining || now < s->reconnect_at)
        return;
    struct cw_error err;
    if (open_consumer(s, &err) != 0) {
        amqp_conn_close(&s->consumer);
        log_warn("cannot reach the broker (next try in %.0f s): %s", s->reconnect_delay,
                 err.message);
        s->reconnect_at = now + s->reconnect_delay;
        s->reconnect_delay = fmin(s->reconnect_delay * 2, MAX_RECONNECT_DELAY);
        return;
    }
    s->generation++;
    s->reconnect_delay = 1;
    log_info("connected to the broker at %s, consuming %d queue(s) with concurrency %d",
             s->consumer.where, s->cfg->nqueues, s->cfg->concurrency);
}

static int ensure_publisher(struct supervisor *s, struct cw_error *err)
{
    if (amqp_conn_is_open(&s->publisher))
        return 0;
    /* No heartbeats: this connection is only used in short synchronous bursts. */
    if (amqp_conn_open(&s->publisher, s->cfg->broker_url, 0, err) != 0 ||
        amqp_conn_enable_confirms(&s->publisher, err) != 0) {
        amqp_conn_close(&s->publisher);
        return -1;
    }
    return 0;
}

static int publish_confirmed(struct supervisor *s, const char *routing_key,
                             const amqp_basic_properties_t *props, amqp_bytes_t body,
                             struct cw_error *err)
{
    if (ensure_publisher(s, err) != 0)
        return -1;
    if (amqp_conn_publish(&s->publisher, "", routing_key, props, body, err) != 0) {
        amqp_conn_close(&s->publisher);
        return -1;
    }
    return 0;
}

/* ---- acknowledgements ---- */

static void settle(struct supervisor *s, struct delivery *d, bool ack, bool requeue)
{
    if (!delivery_is_current(s, d)) {
        log_info("task %s: its delivery belongs to a closed connection; the broker redelivers it",
                 d->task.id);
        return;
    }
    struct cw_error err;
    int rc = ack ? amqp_conn_ack(&s->consumer, d->tag, &err)
                 : amqp_conn_reject(&s->consumer, d->tag, requeue, &err);
    if (rc != 0)
        consumer_lost(s, &err);
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
    tmp.task.id = "(undecoded)";
    if (publish_confirmed(s, routing_key, &props, env->message.body, &err) == 0) {
        log_warn("message %" PRIu64 " dead-lettered to %s: %s", (uint64_t)env->delivery_tag,
                 routing_key, reason);
        s->stats.dead_lettered++;
        settle(s, &tmp, true, false);
    } else {
        log_error("cannot dead-letter a message (%s); it is requeued: %s", reason, err.message);
        settle(s, &tmp, false, true);
    }
    tmp.task.id = NULL;
    empty_amqp_pool(&pool);
}

/* ---- deliveries ---- */

static int queue_of(const struct supervisor *s, amqp_bytes_t tag)
{
    for (int q = 0; q < s->cfg->nqueues; q++) {
        char mine[64];
        consumer_tag(q, mine, sizeof mine);
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

static void on_delivery(struct supervisor *s, amqp_envelope_t *env)
{
    int queue = queue_of(s, env->consumer_tag);
    struct delivery *d = cw_xcalloc(1, sizeof *d);
    d->tag = env->delivery_tag;
    d->generation = s->generation;
    d->queue = queue;
    struct cw_error err;
    if (s->draining) { /* arrived while cancelling: give it back */
        settle(s, d, false, true);
        free(d);
        return;
    }
    if (celery_message_decode(&env->message.properties, env->message.body.bytes,
                              env->message.body.len, &d->task, &err) != 0) {
        delivery_free(d); /* the decoder may have filled part of the task */
        dead_letter(s, env, queue, err.message);
        return;
    }
    if (!task_registry_find(d->task.task)) {
        char reason[512];
        snprintf(reason, sizeof reason, "unknown task %s", d->task.task);
        dead_letter(s, env, queue, reason);
        delivery_free(d);
        return;
    }
    double wall = clock_wall();
    if (d->task.has_expires && d->task.expires <= wall) {
        log_warn("task %s %s revoked: expired", d->task.task, d->task.id);
        settle(s, d, true, false);
        delivery_free(d);
        return;
    }
    d->not_before =
        d->task.has_eta && d->task.eta > wall ? clock_monotonic() + (d->task.eta - wall) : 0;
    log_info("task %s %s received (retries %d)", d->task.task, d->task.id, d->task.retries);
    worker_stats_count(&s->stats, d->task.task, TASK_EVENT_RECEIVED);
    enqueue(s, d);
}

static void read_deliveries(struct supervisor *s)
{
    for (int i = 0; i < DELIVERIES_PER_ROUND && amqp_conn_is_open(&s->consumer); i++) {
        amqp_envelope_t env;
        struct cw_error err;
        int got = amqp_conn_next_delivery(&s->consumer, 0, &env, &err);
        if (got < 0) {
            consumer_lost(s, &err);
            return;
        }
        if (got == 0)
            return;
        on_delivery(s, &env);
        amqp_destroy_envelope(&env);
    }
}

/* ---- executors ---- */

static void spawn_executor(struct supervisor *s, int i)
{
    struct executor *e = &s->execs[i];
    int fds[2];
    struct cw_error err;
    if (channel_pair(fds, &err) != 0) {
        log_error("cannot spawn executor %d: %s", i, err.message);
        e->respawn_at = clock_monotonic() + 1;
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        log_error("fork() failed while spawning executor %d: %s", i, strerror(errno));
        close(fds[0]);
        close(fds[1]);
        e->respawn_at = clock_monotonic() + 1;
        return;
    }
    if (pid == 0) {
        /* Child: the parent's broker sockets and other channels are not ours to use. */
        close(fds[0]);
        if (s->http_fd >= 0)
            close(s->http_fd);
        for (int j = 0; j < s->nexec; j++)
            if (s->execs[j].state != EXEC_EMPTY && s->execs[j].fd >= 0)
                close(s->execs[j].fd);
        executor_main(fds[1], s->cfg, i);
    }
    close(fds[1]);
    e->pid = pid;
    e->fd = fds[0];
    e->state = EXEC_STARTING;
    e->current = NULL;
    e->spawned_at = clock_monotonic();
}

static void respawn_executors(struct supervisor *s, double now)
{
    if (s->draining)
        return;
    for (int i = 0; i < s->nexec; i++)
        if (s->execs[i].state == EXEC_EMPTY && now >= s->execs[i].respawn_at)
            spawn_executor(s, i);
}

static void executor_gone(struct supervisor *s, struct executor *e, int status, double now)
{
    if (e->current && e->killed_for_limit > 0) {
        /* Killed for its hard time limit: the run is failed by the next executor, not rerun. */
        struct delivery *d = e->current;
        char text[128];
        snprintf(text, sizeof text, "hard time limit of %g s exceeded", e->killed_for_limit);
        d->forced_error = cw_xstrdup(text);
        d->next = s->pending;
        s->pending = d;
        if (!d->next)
            s->pending_tail = &d->next;
        e->current = NULL;
    } else if (e->current) {
        struct delivery *d = e->current;
        if (WIFSIGNALED(status))
            log_error("executor %d died of signal %d (%s) running task %s; it is requeued",
                      (int)e->pid, WTERMSIG(status), strsignal(WTERMSIG(status)), d->task.id);
        else
            log_error("executor %d exited (%d) running task %s; it is requeued", (int)e->pid,
                      WEXITSTATUS(status), d->task.id);
        settle(s, d, false, true);
        delivery_free(d);
        e->current = NULL;
    } else if (!s->draining) {
        log_warn("executor %d ended (status %d)", (int)e->pid, status);
    }
    close(e->fd);
    e->fd = -1;
    e->state = EXEC_EMPTY;
    e->killed_for_limit = 0;
    e->quick_deaths = now - e->spawned_at < 5 ? e->quick_deaths + 1 : 0;
    e->respawn_at = now + fmin(0.5 * (1 << (e->quick_deaths > 6 ? 6 : e->quick_deaths)), 30);
}

static void reap_children(struct supervisor *s, double now)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (reap_http(s, pid, status, now))
            continue;
        for (int i = 0; i < s->nexec; i++)
            if (s->execs[i].state != EXEC_EMPTY && s->execs[i].pid == pid)
                executor_gone(s, &s->execs[i], status, now);
    }
}

static void enforce_hard_limits(struct supervisor *s, double now)
{
    for (int i = 0; i < s->nexec; i++) {
        struct executor *e = &s->execs[i];
        if (e->state == EXEC_BUSY && now > e->hard_deadline) {
            double limit =
                e->current->task.has_time_limit ? e->current->task.time_limit : s->cfg->time_limit;
            log_error("task %s exceeded its hard time limit (%g s); killing executor %d",
                      e->current->task.id, limit, (int)e->pid);
            kill(e->pid, SIGKILL);
            e->killed_for_limit = limit;
            e->hard_deadline = INFINITY; /* reaped in the next round */
        }
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
            delivery_free(d);
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

static void dispatch(struct supervisor *s, double now)
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
    }
}

/* ---- results ---- */

static void publish_retry(struct supervisor *s, struct delivery *d, int next_retries, double delay)
{
    const struct cw_config *cfg = s->cfg;
    int slot = next_retries - 1 < cfg->nretry_delays ? next_retries - 1 : cfg->nretry_delays - 1;
    char routing_key[300];
    amqp_conn_retry_queue_name(queue_name(s, d), cfg->retry_delays[slot < 0 ? 0 : slot],
                               routing_key, sizeof routing_key);
    struct celery_outgoing out;
    struct cw_error err;
    if (celery_message_encode_retry(&d->task, clock_wall(), delay, &out, &err) != 0 ||
        publish_confirmed(s, routing_key, &out.props, out.body, &err) != 0) {
        log_error("cannot publish the retry of task %s; the delivery is requeued: %s", d->task.id,
                  err.message);
        settle(s, d, false, true);
    } else {
        log_info("task %s retry %d published to %s (runs in %.0f s)", d->task.id, next_retries,
                 routing_key, delay);
        settle(s, d, true, false);
    }
    celery_outgoing_free(&out);
}

static void trip_breaker(struct supervisor *s, const char *why)
{
    s->paused_until = clock_monotonic() + s->breaker_delay;
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

static void on_result(struct supervisor *s, struct executor *e, json_object *msg)
{
    struct delivery *d = e->current;
    e->current = NULL;
    e->state = EXEC_IDLE;
    if (!d)
        return;
    json_object *v;
    const char *outcome =
        json_object_object_get_ex(msg, "outcome", &v) ? json_object_get_string(v) : "";
    s->processed++;
    count_outcome(s, d, outcome);
    if (strcmp(outcome, "retry") == 0 && !delivery_is_current(s, d)) {
        /* The broker redelivers the original; publishing too would start a second chain. */
        log_info("task %s: retry not published, its delivery is already back in the queue",
                 d->task.id);
    } else if (strcmp(outcome, "retry") == 0) {
        double delay =
            json_object_object_get_ex(msg, "retry_delay", &v) ? json_object_get_double(v) : 0;
        publish_retry(s, d, d->task.retries + 1, delay);
    } else if (strcmp(outcome, "requeue") == 0) {
        settle(s, d, false, true);
        trip_breaker(s, result_error_message(msg));
    } else {
        s->breaker_delay = 1;
        settle(s, d, true, false);
    }
    delivery_free(d);
}

/* Every few seconds an idle executor looks for stuck runs (the sweep needs the database,
 * which the supervisor never touches). */
static void schedule_sweep(struct supervisor *s, double now)
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
        publish_confirmed(s, queue, &out.props, out.body, &err) != 0)
        log_error("cannot re-enqueue stuck run %ld (the next sweep tries again): %s", run_id,
                  err.message);
    else
        log_info("stuck run %ld re-enqueued on %s as retry %d", run_id, queue, retries);
    celery_outgoing_free(&out);
    celery_task_free(&d.task);
}

static void on_sweep_result(struct supervisor *s, struct executor *e, json_object *msg)
{
    e->state = EXEC_IDLE;
    json_object *list;
    if (!json_object_object_get_ex(msg, "requeue", &list) ||
        !json_object_is_type(list, json_type_array))
        return;
    for (size_t i = 0; i < json_object_array_length(list); i++)
        publish_recovered(s, json_object_array_get_idx(list, i));
}

static void read_executor(struct supervisor *s, struct executor *e)
{
    json_object *msg = NULL;
    struct cw_error err;
    int got = channel_recv(e->fd, &msg, &err);
    if (got <= 0)
        return; /* EOF: the reaper handles the exit */
    json_object *v;
    const char *type = json_object_object_get_ex(msg, "type", &v) ? json_object_get_string(v) : "";
    if (strcmp(type, "ready") == 0 && e->state == EXEC_STARTING) {
        e->state = EXEC_IDLE;
        e->quick_deaths = 0;
    } else if (strcmp(type, "result") == 0 && e->state == EXEC_BUSY) {
        on_result(s, e, msg);
    } else if (strcmp(type, "sweep_result") == 0 && e->state == EXEC_SWEEPING) {
        on_sweep_result(s, e, msg);
    }
    json_object_put(msg);
}

/* ---- the HTTP listener process ---- */

static void spawn_http(struct supervisor *s)
{
    int fds[2];
    struct cw_error err;
    if (channel_pair(fds, &err) != 0) {
        log_error("cannot start the HTTP listener: %s", err.message);
        s->http_respawn_at = clock_monotonic() + 5;
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        log_error("fork() failed while starting the HTTP listener: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        s->http_respawn_at = clock_monotonic() + 5;
        return;
    }
    if (pid == 0) {
        close(fds[0]);
        for (int j = 0; j < s->nexec; j++)
            if (s->execs[j].state != EXEC_EMPTY && s->execs[j].fd >= 0)
                close(s->execs[j].fd);
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the supervisor */
        signal(SIGINT, SIG_IGN);
        signal(SIGTERM, SIG_IGN);
        http_server_main(fds[1], s->cfg);
    }
    close(fds[1]);
    s->http_pid = pid;
    s->http_fd = fds[0];
}

static bool reap_http(struct supervisor *s, pid_t pid, int status, double now)
{
    if (pid != s->http_pid)
        return false;
    if (!s->draining)
        log_warn("the HTTP listener ended (status %d); restarting it", status);
    close(s->http_fd);
    s->http_fd = -1;
    s->http_pid = 0;
    s->http_respawn_at = now + 2;
    return true;
}

static void ensure_http(struct supervisor *s, double now)
{
    if (s->cfg->http_listen && !s->http_pid && !s->draining && now >= s->http_respawn_at)
        spawn_http(s);
}

/* Messages waiting in the delay queues, counted now and then for /metrics. */
static void count_waiting_retries(struct supervisor *s, double now)
{
    if (now < s->next_queue_count)
        return;
    s->next_queue_count = now + 5;
    long total = 0;
    struct cw_error err;
    for (int q = 0; q < s->cfg->nqueues; q++) {
        for (int i = 0; i < s->cfg->nretry_delays; i++) {
            char name[300];
            uint32_t n = 0;
            amqp_conn_retry_queue_name(s->cfg->queues[q], s->cfg->retry_delays[i], name,
                                       sizeof name);
            if (ensure_publisher(s, &err) != 0 ||
                amqp_conn_queue_count(&s->publisher, name, &n, &err) != 0) {
                amqp_conn_close(&s->publisher);
                s->retries_waiting = -1;
                return;
            }
            total += n;
        }
    }
    s->retries_waiting = total;
}

static int busy_executors(const struct supervisor *s);

static void send_snapshot(struct supervisor *s, double now)
{
    if (!s->http_pid || now < s->next_snapshot)
        return;
    s->next_snapshot = now + 1;
    count_waiting_retries(s, now);
    int pending = 0;
    for (struct delivery *d = s->pending; d; d = d->next)
        pending++;
    struct worker_gauges g = {s->cfg->nodename,
                              clock_wall(),
                              amqp_conn_is_open(&s->consumer),
                              now < s->paused_until,
                              s->nexec,
                              busy_executors(s),
                              pending,
                              s->retries_waiting};
    json_object *snap = worker_stats_snapshot(&s->stats, &g);
    struct cw_error err;
    if (channel_send(s->http_fd, snap, &err) != 0)
        log_warn("cannot update the HTTP listener: %s", err.message);
    json_object_put(snap);
}

static void stop_http(struct supervisor *s)
{
    if (!s->http_pid)
        return;
    close(s->http_fd); /* EOF: the listener stops */
    s->http_fd = -1;
    waitpid(s->http_pid, NULL, 0);
    s->http_pid = 0;
}

/* Messages held for a future eta keep their prefetch slot; like Celery, widen QoS by one
 * for each so countdown tasks never stop the worker from taking runnable ones. */
static void adjust_prefetch(struct supervisor *s, double now)
{
    if (!amqp_conn_is_open(&s->consumer) || s->draining)
        return;
    int held = 0;
    for (struct delivery *d = s->pending; d; d = d->next)
        held += d->not_before > now;
    int want = base_prefetch(s->cfg) + held;
    if (want > 65535)
        want = 65535;
    if (want == s->prefetch)
        return;
    struct cw_error err;
    if (amqp_conn_set_prefetch(&s->consumer, (uint16_t)want, &err) != 0) {
        consumer_lost(s, &err);
        return;
    }
    s->prefetch = want;
}

/* ---- the loop ---- */

static void poll_once(struct supervisor *s)
{
    struct pollfd fds[1 + 256];
    int n = 0;
    int consumer_fd = amqp_conn_fd(&s->consumer);
    if (consumer_fd >= 0) {
        fds[n].fd = consumer_fd;
        fds[n++].events = POLLIN;
    }
    for (int i = 0; i < s->nexec; i++) {
        fds[n].fd = s->execs[i].state == EXEC_EMPTY ? -1 : s->execs[i].fd;
        fds[n++].events = POLLIN;
    }
    int timeout = amqp_conn_has_buffered(&s->consumer) ? 0 : POLL_INTERVAL_MS;
    if (poll(fds, (nfds_t)n, timeout) < 0 && errno != EINTR)
        log_error("poll() failed: %s", strerror(errno));
    int base = consumer_fd >= 0 ? 1 : 0;
    for (int i = 0; i < s->nexec; i++)
        if (fds[base + i].fd >= 0 && (fds[base + i].revents & (POLLIN | POLLHUP)))
            read_executor(s, &s->execs[i]);
    /* Called every round, readable or not: rabbitmq-c sends heartbeats from here. */
    read_deliveries(s);
}

static int busy_executors(const struct supervisor *s)
{
    int n = 0;
    for (int i = 0; i < s->nexec; i++)
        n += s->execs[i].state == EXEC_BUSY;
    return n;
}

static void begin_drain(struct supervisor *s)
{
    s->draining = true;
    s->drain_deadline = clock_monotonic() + s->cfg->shutdown_grace;
    log_info("shutting down: no new tasks; %d running get up to %.0f s to finish",
             busy_executors(s), s->cfg->shutdown_grace);
    for (int q = 0; q < s->cfg->nqueues && amqp_conn_is_open(&s->consumer); q++) {
        char tag[64];
        struct cw_error err;
        consumer_tag(q, tag, sizeof tag);
        if (amqp_conn_cancel(&s->consumer, tag, &err) != 0)
            consumer_lost(s, &err);
    }
    while (s->pending) { /* received but never started: back to the queue */
        struct delivery *d = s->pending;
        s->pending = d->next;
        settle(s, d, false, true);
        delivery_free(d);
    }
    s->pending_tail = &s->pending;
}

static bool should_stop(struct supervisor *s, double now)
{
    if (stop_signals > 0 && !s->draining)
        begin_drain(s);
    if (!s->draining)
        return false;
    if (stop_signals > 1) {
        log_warn("second signal: stopping now; unfinished tasks return to the queue");
        return true;
    }
    if (now > s->drain_deadline) {
        log_warn("grace period over: stopping now; unfinished tasks return to the queue");
        return true;
    }
    return busy_executors(s) == 0;
}

static void stop_executors(struct supervisor *s)
{
    for (int i = 0; i < s->nexec; i++) {
        struct executor *e = &s->execs[i];
        if (e->state == EXEC_EMPTY)
            continue;
        if (e->state == EXEC_BUSY)
            kill(e->pid, SIGKILL); /* its delivery stays unacked: redelivered */
        close(e->fd);              /* EOF tells an idle executor to exit */
        waitpid(e->pid, NULL, 0);
        delivery_free(e->current);
        e->current = NULL;
        e->state = EXEC_EMPTY;
    }
}

int supervisor_run(const struct cw_config *cfg)
{
    install_signals();
    struct supervisor s;
    memset(&s, 0, sizeof s);
    s.cfg = cfg;
    s.pending_tail = &s.pending;
    s.reconnect_delay = 1;
    s.breaker_delay = 1;
    s.http_fd = -1;
    s.retries_waiting = -1;
    s.nexec = cfg->concurrency;
    s.execs = cw_xcalloc((size_t)s.nexec, sizeof *s.execs);
    for (int i = 0; i < s.nexec; i++)
        s.execs[i].fd = -1;
    log_info("cworker %s starting: %d executor(s)", cfg->nodename, s.nexec);
    for (;;) {
        double now = clock_monotonic();
        if (should_stop(&s, now))
            break;
        reap_children(&s, now);
        ensure_http(&s, now);
        respawn_executors(&s, now);
        ensure_consumer(&s, now);
        dispatch(&s, now);
        adjust_prefetch(&s, now);
        schedule_sweep(&s, now);
        enforce_hard_limits(&s, now);
        send_snapshot(&s, now);
        poll_once(&s);
    }
    stop_executors(&s);
    stop_http(&s);
    while (s.pending) {
        struct delivery *d = s.pending;
        s.pending = d->next;
        delivery_free(d);
    }
    amqp_conn_close(&s.consumer);
    amqp_conn_close(&s.publisher);
    free(s.execs);
    log_info("stopped after %" PRIu64 " task(s)", s.processed);
    return 0;
}
