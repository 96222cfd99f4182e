/* Supervisor: the consumer and publisher AMQP connections (opened by connector threads, so
 * the loop never waits for a broker), publishing, queue counts, connection.blocked, QoS. */
#include "base/clock.h"
#include "base/log.h"
#include "mq/topology_config.h"
#include "supervisor/internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void sup_consumer_tag(int queue, unsigned epoch, char *out, size_t len)
{
    snprintf(out, len, "cworker-%d-%d-%u", (int)getpid(), queue, epoch);
}

int sup_queue_of_tag(const struct supervisor *s, amqp_bytes_t tag)
{
    for (int q = 0; q < s->cfg->nqueues; q++) {
        char prefix[64];
        int n = snprintf(prefix, sizeof prefix, "cworker-%d-%d-", (int)getpid(), q);
        if (tag.len > (size_t)n && memcmp(tag.bytes, prefix, (size_t)n) == 0)
            return q;
    }
    return 0;
}

static int base_prefetch(const struct cw_config *cfg)
{
    int prefetch = cfg->concurrency * cfg->prefetch_multiplier;
    return prefetch > 60000 ? 60000 : prefetch;
}

/* Opens c to the next broker of the failover list (in the connector's thread, which owns
 * o until the attempt is collected). */
static int open_next(struct sup_open *o, struct mq_conn *c, struct cw_error *err)
{
    const struct cw_config *cfg = o->cfg;
    struct mq_tls tls = {cfg->broker_ssl_ca, cfg->broker_ssl_cert, cfg->broker_ssl_key};
    return mq_conn_open_any(c, cfg->broker_url, cfg->broker_heartbeat, &tls, &o->next, err);
}

/* In the connector's thread: reads only the configuration. */
static int open_consumer(void *arg, struct mq_conn *c, struct cw_error *err)
{
    struct sup_open *o = arg;
    const struct cw_config *cfg = o->cfg;
    if (open_next(o, c, err) != 0)
        return -1;
    if (cfg->native_delay && mq_conn_declare_native_delay(c, cfg->native_delay_quorum, err) != 0)
        return -1;
    struct mq_topology topology = mq_topology_of(cfg, true);
    for (int q = 0; q < cfg->nqueues; q++)
        if (mq_conn_declare_topology(c, cfg->queues[q], &topology, err) != 0)
            return -1;
    bool global = !(cfg->queue_quorum || o->per_consumer_qos);
    if (mq_conn_set_prefetch(c, (uint16_t)base_prefetch(cfg), global, err) != 0)
        return -1;
    for (int q = 0; q < cfg->nqueues; q++) {
        char tag[64];
        sup_consumer_tag(q, 0, tag, sizeof tag);
        if (mq_conn_consume(c, cfg->queues[q], tag, false, err) != 0) {
            /* An existing quorum queue under CELERY_QUEUE_TYPE=classic: it refuses a channel-
             * wide window. Adapt: the next attempt uses per-consumer QoS. */
            if (global && strcasestr(err->message, "global") != NULL) {
                o->per_consumer_qos = true;
                CW_WRAP(err, "queue %s refuses global QoS (a quorum queue): using per-consumer QoS",
                        cfg->queues[q]);
            }
            return -1;
        }
    }
    if (sup_control_declare(cfg, c, err) != 0) {
        CW_WRAP(err, "declaring remote control and events");
        return -1;
    }
    return 0;
}

/* Heartbeats too: the loop pumps it every round (sup_tend_publisher), so a half-open
 * publisher connection is noticed before a publish depends on it. */
static int open_publisher(void *arg, struct mq_conn *c, struct cw_error *err)
{
    if (open_next(arg, c, err) != 0 || mq_conn_enable_confirms(c, err) != 0)
        return -1;
    return 0;
}

static void consumer_ready(struct supervisor *s, struct mq_conn *c)
{
    s->consumer = *c;
    s->consume_epoch = 0;
    s->generation++;
    s->prefetch = base_prefetch(s->cfg);
    s->reconnect_delay = 1;
    log_info("connected to the broker at %s, consuming %d queue(s) with concurrency %d",
             s->consumer.where, s->cfg->nqueues, s->cfg->concurrency);
}

void sup_ensure_consumer(struct supervisor *s, double now)
{
    struct mq_conn c;
    bool ok;
    struct cw_error err;
    if (mq_connector_poll(&s->consumer_connector, &c, &ok, &err)) {
        if (ok && !s->draining) {
            consumer_ready(s, &c);
        } else if (ok) {
            mq_conn_close(&c); /* shutting down meanwhile */
        } else if (err.cls == CW_ERR_PERMANENT && s->generation == 0) {
            log_error("cannot start: %s", err.message); /* never connected: configuration */
            s->fatal = true;
        } else {
            log_warn("cannot reach the broker (next try in %.0f s): %s", s->reconnect_delay,
                     err.message);
            s->reconnect_at = now + s->reconnect_delay;
            s->reconnect_delay = fmin(s->reconnect_delay * 2, MAX_RECONNECT_DELAY);
        }
    }
    if (mq_conn_is_open(&s->consumer) || s->draining || now < s->reconnect_at ||
        mq_connector_busy(&s->consumer_connector))
        return;
    s->consumer_open.cfg = s->cfg;
    if (!mq_connector_start(&s->consumer_connector, open_consumer, &s->consumer_open, &err)) {
        log_error("%s", err.message);
        s->reconnect_at = now + s->reconnect_delay;
    }
}

/* The publisher failed: drop it; what it had not confirmed goes out on the next one. */
static void publisher_failed(struct supervisor *s)
{
    mq_conn_abandon(&s->publisher);
    sup_unsend_publishes(s);
    s->counts_outstanding = 0;
    s->retries_waiting = -1;
    s->publisher_retry_at = clock_monotonic() + 1;
}

static void publisher_ready(struct supervisor *s, struct mq_conn *c)
{
    s->publisher = *c;
    s->publisher.on_confirm = sup_on_confirm;
    s->publisher.on_count = sup_on_count;
    s->publisher.confirm_ctx = s;
    s->publisher_delay = 1;
    sup_flush_publishes(s);
}

void sup_ensure_publisher(struct supervisor *s, double now)
{
    struct mq_conn c;
    bool ok;
    struct cw_error err;
    if (mq_connector_poll(&s->publisher_connector, &c, &ok, &err)) {
        if (ok) {
            publisher_ready(s, &c);
        } else {
            log_warn("cannot open the publisher connection (next try in %.0f s): %s",
                     s->publisher_delay, err.message);
            s->publisher_retry_at = now + s->publisher_delay;
            s->publisher_delay = fmin(s->publisher_delay * 2, MAX_RECONNECT_DELAY);
        }
    }
    if (mq_conn_is_open(&s->publisher) || now < s->publisher_retry_at ||
        mq_connector_busy(&s->publisher_connector))
        return;
    s->publisher_open.cfg = s->cfg;
    if (!mq_connector_start(&s->publisher_connector, open_publisher, &s->publisher_open, &err)) {
        log_error("%s", err.message);
        s->publisher_retry_at = now + 1;
    }
}

bool sup_broker_blocked(const struct supervisor *s)
{
    return (mq_conn_is_open(&s->publisher) && s->publisher.blocked) ||
           (mq_conn_is_open(&s->consumer) && s->consumer.blocked);
}

/* Reads what arrived on the publisher between publishes: confirms, queue counts,
 * heartbeats (ours go out from here), connection.blocked/unblocked, a close. Says when a
 * resource alarm starts and ends. */
void sup_tend_publisher(struct supervisor *s)
{
    struct cw_error err;
    if (mq_conn_is_open(&s->publisher) && mq_conn_pump(&s->publisher, &err) != 0) {
        log_warn("publisher connection lost: %s", err.message);
        publisher_failed(s);
    } else if (mq_conn_is_open(&s->publisher) && sup_confirm_overdue(s, clock_monotonic())) {
        log_warn("the broker confirms nothing on %s: the publisher connection is treated as dead",
                 s->publisher.where);
        publisher_failed(s);
    }
    bool blocked = sup_broker_blocked(s);
    if (blocked && !s->blocked_logged)
        log_warn("the broker blocks publishing (%s): no new tasks start until it unblocks",
                 s->publisher.blocked ? s->publisher.blocked_reason : s->consumer.blocked_reason);
    else if (!blocked && s->blocked_logged)
        log_info("the broker unblocked publishing: tasks start again");
    s->blocked_logged = blocked;
}

int sup_publish_raw(struct supervisor *s, const char *exchange, const char *routing_key,
                    const amqp_basic_properties_t *props, amqp_bytes_t body, uint64_t *seq,
                    struct cw_error *err)
{
    uint64_t ignored;
    if (!mq_conn_is_open(&s->publisher)) {
        CW_FAIL(err, CW_ERR_TRANSIENT, "no publisher connection to the broker");
        return -1;
    }
    int rc = mq_conn_publish_nowait(&s->publisher, exchange, routing_key, props, body,
                                    seq ? seq : &ignored, err);
    if (rc > 0)
        return -1; /* a peer that stopped reading: later, or its heartbeat gives it up */
    if (rc < 0) {
        publisher_failed(s);
        return -1;
    }
    return 0;
}

int sup_publish_to(struct supervisor *s, const char *exchange, const char *routing_key,
                   const amqp_basic_properties_t *props, amqp_bytes_t body, struct cw_error *err)
{
    return sup_publish_raw(s, exchange, routing_key, props, body, NULL, err);
}

void sup_on_count(void *ctx, uint32_t messages)
{
    struct supervisor *s = ctx;
    if (s->counts_outstanding == 0)
        return;
    s->count_sum += messages;
    if (--s->counts_outstanding == 0)
        s->retries_waiting = s->count_sum;
}

/* Messages waiting in the delay queues, counted now and then for /metrics: the requests go
 * out at once and the answers are summed as they come (sup_on_count). */
void sup_count_waiting_retries(struct supervisor *s, double now)
{
    if (now < s->next_queue_count || !mq_conn_is_open(&s->publisher) || s->counts_outstanding)
        return;
    s->next_queue_count = now + 5;
    s->count_sum = 0;
    struct cw_error err;
    for (int q = 0; q < s->cfg->nqueues; q++) {
        for (int i = 0; i < s->cfg->nretry_delays; i++) {
            char name[300];
            mq_conn_retry_queue_name(s->cfg->queues[q], s->cfg->retry_delays[i], name, sizeof name);
            if (mq_conn_request_count(&s->publisher, name, &err) != 0) {
                log_warn("publisher connection lost: %s", err.message);
                publisher_failed(s);
                return;
            }
            s->counts_outstanding++;
        }
    }
}

/* Messages held for a future eta keep their prefetch slot; like Celery, widen QoS by one
 * for each so countdown tasks never stop the worker from taking runnable ones. */
void sup_adjust_prefetch(struct supervisor *s, double now)
{
    if (!mq_conn_is_open(&s->consumer) || s->draining)
        return;
    (void)now;
    int held = sup_count_in(s, DLV_HELD);
    int want = base_prefetch(s->cfg) + held;
    if (want > 65535)
        want = 65535;
    if (want == s->prefetch)
        return;
    struct cw_error err;
    bool global = !(s->cfg->queue_quorum || s->consumer_open.per_consumer_qos);
    int rc;
    if (global) {
        rc = mq_conn_set_prefetch_nowait(&s->consumer, (uint16_t)want, true, &err);
    } else if (want > s->prefetch) {
        /* A per-consumer window (quorum queues) holds for consumers started after it, and
         * cancelling one with deliveries in flight trips RabbitMQ 3.10: widen by adding a
         * consumer with the extra window. Narrowing waits for the next connection. */
        rc = mq_conn_set_prefetch_nowait(&s->consumer, (uint16_t)(want - s->prefetch), false, &err);
        s->consume_epoch++;
        for (int q = 0; rc == 0 && q < s->cfg->nqueues; q++) {
            char tag[64];
            sup_consumer_tag(q, s->consume_epoch, tag, sizeof tag);
            rc = mq_conn_consume_nowait(&s->consumer, s->cfg->queues[q], tag, &err);
        }
    } else {
        return;
    }
    if (rc != 0) {
        sup_consumer_lost(s, &err);
        return;
    }
    s->prefetch = want;
}
