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
    if (mq_conn_open(&s->consumer, cfg->broker_url, AMQP_HEARTBEAT_S, err) != 0)
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

static int ensure_publisher(struct supervisor *s, struct cw_error *err)
{
    if (mq_conn_is_open(&s->publisher))
        return 0;
    /* No heartbeats: this connection is only used in short synchronous bursts. */
    if (mq_conn_open(&s->publisher, s->cfg->broker_url, 0, err) != 0 ||
        mq_conn_enable_confirms(&s->publisher, err) != 0) {
        mq_conn_abandon(&s->publisher);
        return -1;
    }
    return 0;
}

int sup_publish_confirmed(struct supervisor *s, const char *routing_key,
                          const amqp_basic_properties_t *props, amqp_bytes_t body,
                          struct cw_error *err)
{
    return sup_publish_to(s, "", routing_key, props, body, err);
}

int sup_publish_to(struct supervisor *s, const char *exchange, const char *routing_key,
                   const amqp_basic_properties_t *props, amqp_bytes_t body, struct cw_error *err)
{
    if (ensure_publisher(s, err) != 0)
        return -1;
    if (mq_conn_publish(&s->publisher, exchange, routing_key, props, body, err) != 0) {
        mq_conn_abandon(&s->publisher);
        return -1;
    }
    return 0;
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
            if (ensure_publisher(s, &err) != 0 ||
                mq_conn_queue_count(&s->publisher, name, &n, &err) != 0) {
                mq_conn_abandon(&s->publisher);
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
