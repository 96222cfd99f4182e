/* The dashboard's queue counts and dead letters (dashboard_broker.h). */
#include "ops/dashboard_broker.h"
#include "mq/conn.h"
#include "mq/native_delay.h"
#include "ops/dlq_ops.h"

#include <stdio.h>

static int count_delay_queues(struct mq_conn *c, const struct cw_config *cfg, const char *queue,
                              json_object *out, struct cw_error *err)
{
    for (int i = 0; i < cfg->nretry_delays; i++) {
        char name[DLQ_QUEUE_NAME_MAX + 1];
        uint32_t n = 0;
        mq_conn_retry_queue_name(queue, cfg->retry_delays[i], name, sizeof name);
        if (mq_conn_queue_count(c, name, &n, err) != 0)
            return -1;
        json_object *q = json_object_new_object();
        json_object_object_add(q, "name", json_object_new_string(name));
        json_object_object_add(q, "delay_seconds", json_object_new_double(cfg->retry_delays[i]));
        json_object_object_add(q, "messages", json_object_new_int64(n));
        json_object_array_add(out, q);
    }
    return 0;
}

/* RETRY_TRANSPORT=native: the ladder's messages, all levels together (they are shared by
 * every queue, so they are listed once, with the first queue). */
static int count_ladder(struct mq_conn *c, json_object *out, struct cw_error *err)
{
    uint64_t total = 0;
    for (int level = NATIVE_DELAY_MAX_LEVEL; level >= 0; level--) {
        char name[32];
        uint32_t n = 0;
        native_delay_level_name(level, name, sizeof name);
        if (mq_conn_queue_count(c, name, &n, err) != 0)
            return -1;
        total += n;
    }
    json_object *q = json_object_new_object();
    json_object_object_add(q, "name", json_object_new_string(NATIVE_DELAY_LADDER_NAME));
    json_object_object_add(q, "delay_seconds", NULL);
    json_object_object_add(q, "messages", json_object_new_int64((int64_t)total));
    json_object_array_add(out, q);
    return 0;
}

static void keep_each(void *ctx, json_object *desc)
{
    json_object_array_add(ctx, json_object_get(desc));
}

static int read_dead(const struct cw_config *cfg, const char *queue, long limit, json_object *out,
                     struct cw_error *err)
{
    char name[DLQ_QUEUE_NAME_MAX + 8];
    uint32_t ready = 0;
    long shown = 0;
    json_object *messages = json_object_new_array();
    snprintf(name, sizeof name, "%s.dead", queue);
    json_object_object_add(out, "name", json_object_new_string(name));
    json_object_object_add(out, "shown", messages);
    if (dlq_list(cfg, queue, limit, keep_each, messages, &ready, &shown, err) != 0)
        return -1;
    json_object_object_add(out, "messages", json_object_new_int64(ready));
    return 0;
}

static int describe_queue(struct mq_conn *c, const struct cw_config *cfg, const char *queue,
                          bool with_ladder, long limit, json_object *out, struct cw_error *err)
{
    json_object *delays = json_object_new_array();
    json_object *dead = json_object_new_object();
    json_object_object_add(out, "queue", json_object_new_string(queue));
    json_object_object_add(out, "delay_queues", delays);
    json_object_object_add(out, "dead", dead);
    if (count_delay_queues(c, cfg, queue, delays, err) != 0 ||
        (with_ladder && count_ladder(c, delays, err) != 0)) {
        CW_WRAP(err, "counting the delay queues of %s", queue);
        return -1;
    }
    if (read_dead(cfg, queue, limit, dead, err) != 0) {
        CW_WRAP(err, "reading %s.dead", queue);
        return -1;
    }
    return 0;
}

int dashboard_broker_get(const struct cw_config *cfg, long limit, json_object **out,
                         struct cw_error *err)
{
    struct mq_conn conn;
    *out = NULL;
    if (!cfg->broker_url) {
        CW_FAIL(err, CW_ERR_PERMANENT, "no broker configured");
        return -1;
    }
    if (mq_conn_open(&conn, cfg->broker_url, 0, err) != 0)
        return -1;
    json_object *queues = json_object_new_array();
    int rc = 0;
    for (int i = 0; i < cfg->nqueues && rc == 0; i++) {
        json_object *q = json_object_new_object();
        json_object_array_add(queues, q);
        rc = describe_queue(&conn, cfg, cfg->queues[i], i == 0 && cfg->retry_native, limit, q, err);
    }
    mq_conn_close(&conn);
    if (rc != 0) {
        json_object_put(queues);
        return -1;
    }
    *out = json_object_new_object();
    json_object_object_add(*out, "queues", queues);
    return 0;
}
