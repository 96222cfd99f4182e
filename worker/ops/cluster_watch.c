/* The listener's event receiver thread (cluster_watch.h). */
#include "ops/cluster_watch.h"
#include "base/clock.h"
#include "base/log.h"
#include "celery/events.h"
#include "mq/conn.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <uuid/uuid.h>

#define WAIT_MS          500 /* longest wait for an event: how soon stop is noticed */
#define RECONNECT_S      3.0 /* between connection attempts */
#define HEARTBEAT_S      10  /* AMQP heartbeat: a dead broker is noticed while idle */
#define CONSUMER_TAG     "cworker-http-events"
#define RECEIVER_ARGS_SZ 512
#define IDLE_S           120.0 /* unsubscribed this long after the last reading */
#define EVENT_MAX        65536 /* bytes: a worker-* event is well under 1 kB; more is not one */

static void set_state(struct cluster_watch *w, bool connected, const char *error)
{
    pthread_mutex_lock(&w->lock);
    w->connected = connected;
    snprintf(w->error, sizeof w->error, "%s", error ? error : "");
    pthread_mutex_unlock(&w->lock);
}

/* Declares and consumes the receiver queue on c. */
static int subscribe(struct cluster_watch *w, struct mq_conn *c, struct cw_error *err)
{
    if (mq_conn_declare_exchange(c, CELERY_EVENTS_EXCHANGE, CELERY_EVENTS_EXCHANGE_TYPE,
                                 CELERY_EVENTS_EXCHANGE_DURABLE, CELERY_EVENTS_EXCHANGE_AUTO_DELETE,
                                 err) != 0)
        return -1;
    amqp_pool_t pool;
    init_amqp_pool(&pool, RECEIVER_ARGS_SZ);
    struct mq_conn_queue_opts opts = {false, true, true, amqp_empty_table};
    int rc = celery_events_receiver_arguments(&pool, &opts.arguments, err);
    if (rc == 0)
        rc = mq_conn_declare_queue(c, w->queue, &opts, err);
    empty_amqp_pool(&pool);
    if (rc != 0 ||
        mq_conn_bind(c, w->queue, CELERY_EVENTS_EXCHANGE, CELERY_EVENTS_WORKER_BINDING, err) != 0)
        return -1;
    return mq_conn_consume(c, w->queue, CONSUMER_TAG, true, err);
}

static void take_event(struct cluster_watch *w, const amqp_envelope_t *env)
{
    const amqp_bytes_t *body = &env->message.body;
    if (body->len > EVENT_MAX) {
        log_debug("event receiver: a %zu-byte message on %.*s is too large for an event", body->len,
                  (int)env->routing_key.len, (const char *)env->routing_key.bytes);
        return;
    }
    json_tokener *tok = json_tokener_new();
    json_object *event = json_tokener_parse_ex(tok, body->bytes, (int)body->len);
    json_tokener_free(tok);
    if (!json_object_is_type(event, json_type_object)) {
        log_debug("event receiver: a message on %.*s is not a JSON object",
                  (int)env->routing_key.len, (const char *)env->routing_key.bytes);
    } else {
        pthread_mutex_lock(&w->lock);
        cluster_table_event(&w->table, event, clock_monotonic());
        pthread_mutex_unlock(&w->lock);
    }
    json_object_put(event);
}

/* Someone read the table lately (an open dashboard reads it every 3 s). */
static bool wanted(struct cluster_watch *w)
{
    pthread_mutex_lock(&w->lock);
    bool yes = w->read_at > 0 && clock_monotonic() - w->read_at < IDLE_S;
    pthread_mutex_unlock(&w->lock);
    return yes;
}

/* Consumes until the connection fails (returns -1), stop is set or nobody reads (0). */
static int receive(struct cluster_watch *w, struct mq_conn *c)
{
    while (!atomic_load(&w->stop) && wanted(w)) {
        amqp_envelope_t env;
        struct cw_error err;
        int rc = mq_conn_next_delivery(c, WAIT_MS, &env, &err);
        if (rc < 0) {
            log_warn("event receiver: %s; reconnecting in %.0f s", err.message, RECONNECT_S);
            set_state(w, false, err.message);
            return -1;
        }
        if (rc == 1) {
            take_event(w, &env);
            amqp_destroy_envelope(&env);
        }
    }
    return 0;
}

/* Nobody looks: the table would only go stale. */
static void go_idle(struct cluster_watch *w)
{
    log_info("event receiver: nobody read the workers for %.0f s, unsubscribed", IDLE_S);
    pthread_mutex_lock(&w->lock);
    w->connected = false;
    cluster_table_free(&w->table);
    pthread_mutex_unlock(&w->lock);
}

static void pause_unless_stopped(struct cluster_watch *w, double seconds)
{
    for (double until = clock_monotonic() + seconds;
         !atomic_load(&w->stop) && clock_monotonic() < until;)
        usleep(WAIT_MS * 1000);
}

static void *run(void *arg)
{
    struct cluster_watch *w = arg;
    const struct cw_config *cfg = w->cfg;
    struct mq_tls tls = {cfg->broker_ssl_ca, cfg->broker_ssl_cert, cfg->broker_ssl_key};
    unsigned next = 0;
    while (!atomic_load(&w->stop)) {
        struct mq_conn c;
        struct cw_error err;
        if (!wanted(w)) {
            pause_unless_stopped(w, WAIT_MS / 1000.0);
            continue;
        }
        if (mq_conn_open_any(&c, cfg->broker_url, HEARTBEAT_S, &tls, &next, &err) != 0) {
            set_state(w, false, err.message);
            pause_unless_stopped(w, RECONNECT_S);
            continue;
        }
        if (subscribe(w, &c, &err) != 0) {
            log_warn("event receiver: %s", err.message);
            set_state(w, false, err.message);
            mq_conn_abandon(&c);
            pause_unless_stopped(w, RECONNECT_S);
            continue;
        }
        set_state(w, true, NULL);
        log_info("event receiver: listening on %s", w->queue);
        if (receive(w, &c) != 0) {
            mq_conn_abandon(&c);
            pause_unless_stopped(w, RECONNECT_S);
            continue;
        }
        /* The broker deletes the exclusive queue with the connection. When stopping, no
         * closing handshake: a hung broker would hold the worker's exit for two RPC
         * timeouts. */
        if (atomic_load(&w->stop)) {
            mq_conn_abandon(&c);
        } else {
            mq_conn_close(&c);
            go_idle(w);
        }
    }
    return NULL;
}

int cluster_watch_start(struct cluster_watch *w, const struct cw_config *cfg, struct cw_error *err)
{
    memset(w, 0, sizeof *w);
    w->cfg = cfg;
    atomic_init(&w->stop, false);
    pthread_mutex_init(&w->lock, NULL);
    if (!cfg->broker_url) {
        snprintf(w->error, sizeof w->error, "no broker configured");
        return 0;
    }
    /* Unique, as Celery's "celeryev.<uuid4>": two listeners never share a queue. */
    uuid_t uu;
    char text[37];
    uuid_generate_random(uu);
    uuid_unparse_lower(uu, text);
    snprintf(w->queue, sizeof w->queue, CELERY_EVENTS_RECEIVER_PREFIX "%s", text);
    int rc = pthread_create(&w->thread, NULL, run, w);
    if (rc != 0) {
        CW_FAIL(err, CW_ERR_INTERNAL, "cannot start the event receiver thread: %s", strerror(rc));
        return -1;
    }
    w->running = true;
    return 0;
}

json_object *cluster_watch_json(struct cluster_watch *w)
{
    json_object *out = json_object_new_object(), *receiver = json_object_new_object();
    pthread_mutex_lock(&w->lock);
    w->read_at = clock_monotonic();
    json_object_object_add(receiver, "connected", json_object_new_boolean(w->connected));
    json_object_object_add(receiver, "queue",
                           w->queue[0] ? json_object_new_string(w->queue) : NULL);
    json_object_object_add(receiver, "error",
                           w->error[0] ? json_object_new_string(w->error) : NULL);
    json_object_object_add(receiver, "dropped", json_object_new_int64((int64_t)w->table.dropped));
    json_object_object_add(out, "workers", cluster_table_json(&w->table, clock_monotonic()));
    pthread_mutex_unlock(&w->lock);
    json_object_object_add(out, "receiver", receiver);
    return out;
}

void cluster_watch_stop(struct cluster_watch *w)
{
    if (w->running) {
        atomic_store(&w->stop, true);
        pthread_join(w->thread, NULL);
        w->running = false;
    }
    cluster_table_free(&w->table);
    pthread_mutex_destroy(&w->lock);
}
