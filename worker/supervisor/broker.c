/* Supervisor: the consumer and publisher AMQP connections, confirmed publishing, QoS. */
#include "base/clock.h"
#include "base/log.h"
#include "supervisor/internal.h"

#include <math.h>
#include <stdio.h>
#include <unistd.h>

void sup_consumer_tag(int queue, char *out, size_t len)
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
    if (mq_conn_open(&s->consumer, cfg->broker_url, cfg->broker_heartbeat, err) != 0)
        return -1;
    for (int q = 0; q < cfg->nqueues; q++)
        if (mq_conn_declare_topology(&s->consumer, cfg->queues[q], cfg->retry_delays,
                                     cfg->nretry_delays, err) != 0)
            return -1;
    s->prefetch = base_prefetch(cfg);
    if (mq_conn_set_prefetch(&s->consumer, (uint16_t)s->prefetch, err) != 0)
        return -1;
    for (int q = 0; q < cfg->nqueues; q++) {
        char tag[64];
        sup_consumer_tag(q, tag, sizeof tag);
        if (mq_conn_consume(&s->consumer, cfg->queues[q], tag, false, err) != 0)
            return -1;
    }
    if (sup_control_declare(s, err) != 0) {
        CW_WRAP(err, "declaring remote control and events");
        return -1;
    }
    return 0;
}

void sup_ensure_consumer(struct supervisor *s, double now)
{
    if (mq_conn_is_open(&s->consumer) || s->draining || now < s->reconnect_at)
        return;
    struct cw_error err;
    if (open_consumer(s, &err) != 0) {
        mq_conn_abandon(&s->consumer);
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

/* The publisher failed: drop it, and do not try again for a while, so a broker that
 * stopped answering costs the loop one bounded attempt now and then, not one per publish. */
static void publisher_failed(struct supervisor *s, const char *why)
{
    mq_conn_abandon(&s->publisher);
    sup_fail_publishes(s, why);
    s->publisher_retry_at = clock_monotonic() + fmin(s->reconnect_delay, MAX_RECONNECT_DELAY);
}

static int ensure_publisher(struct supervisor *s, struct cw_error *err)
{
    if (mq_conn_is_open(&s->publisher))
        return 0;
    if (clock_monotonic() < s->publisher_retry_at) {
        CW_FAIL(err, CW_ERR_TRANSIENT, "the publisher connection is down (retrying shortly)");
        return -1;
    }
    /* Heartbeats too: the loop pumps it every round (sup_tend_publisher), so a half-open
     * publisher connection is noticed before a publish depends on it. */
    if (mq_conn_open(&s->publisher, s->cfg->broker_url, s->cfg->broker_heartbeat, err) != 0 ||
        mq_conn_enable_confirms(&s->publisher, err) != 0) {
        publisher_failed(s, err->message);
        return -1;
    }
    s->publisher.on_confirm = sup_on_confirm;
    s->publisher.confirm_ctx = s;
    return 0;
}

bool sup_broker_blocked(const struct supervisor *s)
{
    return (mq_conn_is_open(&s->publisher) && s->publisher.blocked) ||
           (mq_conn_is_open(&s->consumer) && s->consumer.blocked);
}

/* Reads what arrived on the publisher between publishes: heartbeats (ours go out from here),
 * connection.blocked/unblocked, a close. Says when a resource alarm starts and ends. */
void sup_tend_publisher(struct supervisor *s)
{
    struct cw_error err;
    if (mq_conn_is_open(&s->publisher) && mq_conn_pump(&s->publisher, &err) != 0) {
        log_warn("publisher connection lost: %s", err.message);
        publisher_failed(s, err.message);
    } else if (sup_confirm_overdue(s, clock_monotonic())) {
        log_warn("the broker confirms nothing on %s: the publisher connection is treated as dead",
                 s->publisher.where);
        publisher_failed(s, "no confirm in time");
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
    if (ensure_publisher(s, err) != 0)
        return -1;
    if (mq_conn_publish_nowait(&s->publisher, exchange, routing_key, props, body,
                               seq ? seq : &ignored, err) != 0) {
        publisher_failed(s, err->message);
        return -1;
    }
    return 0;
}

int sup_publish_to(struct supervisor *s, const char *exchange, const char *routing_key,
                   const amqp_basic_properties_t *props, amqp_bytes_t body, struct cw_error *err)
{
    return sup_publish_raw(s, exchange, routing_key, props, body, NULL, err);
}

/* Messages waiting in the delay queues, counted now and then for /metrics. */
void sup_count_waiting_retries(struct supervisor *s, double now)
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
            mq_conn_retry_queue_name(s->cfg->queues[q], s->cfg->retry_delays[i], name, sizeof name);
            if (ensure_publisher(s, &err) != 0) {
                s->retries_waiting = -1;
                return;
            }
            if (mq_conn_queue_count(&s->publisher, name, &n, &err) != 0) {
                publisher_failed(s, err.message);
                s->retries_waiting = -1;
                return;
            }
            total += n;
        }
    }
    s->retries_waiting = total;
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
    if (mq_conn_set_prefetch(&s->consumer, (uint16_t)want, &err) != 0) {
        sup_consumer_lost(s, &err);
        return;
    }
    s->prefetch = want;
}
