/* rabbitmq-c wrapper: the Celery topology, declared as kombu declares it (queues that exist
 * are left as they are), Celery 5.5's native delayed-delivery ladder, and the delay
 * queues' names. */
#include "base/xalloc.h"
#include "mq/conn.h"
#include "mq/conn_internal.h"
#include "mq/native_delay.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

void mq_conn_retry_queue_name(const char *queue, double delay, char *out, size_t len)
{
    if (delay == floor(delay))
        snprintf(out, len, "%s.retry.%.0fs", queue, delay);
    else
        snprintf(out, len, "%s.retry.%gs", queue, delay);
}

/* After the broker closed our channel (a 404 on a passive declare): acknowledge it and
 * open the channel again. */
static int reopen_channel(struct mq_conn *c, struct cw_error *err)
{
    amqp_channel_close_ok_t ok = {0};
    if (amqp_send_method(c->state, MQ_CHANNEL, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) !=
        AMQP_STATUS_OK) {
        CW_FAIL(err, CW_ERR_TRANSIENT, "channel.close-ok on %s failed", c->where);
        return -1;
    }
    amqp_channel_open(c->state, MQ_CHANNEL);
    if (mq_check_rpc(c, "channel.open", err) != 0)
        return -1;
    /* A new channel starts without confirm mode: a publisher would wait for confirms that
     * never come. Its publish numbering starts again too. */
    return c->confirms ? mq_conn_enable_confirms(c, err) : 0;
}

/* 1 when the queue exists (whatever its type and arguments), 0 when it does not. */
static int queue_exists(struct mq_conn *c, const char *name, struct cw_error *err)
{
    amqp_queue_declare(c->state, MQ_CHANNEL, amqp_cstring_bytes(name), 1, 0, 0, 0,
                       amqp_empty_table);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c->state);
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return 1;
    if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CHANNEL_CLOSE_METHOD &&
        ((const amqp_channel_close_t *)r.reply.decoded)->reply_code == AMQP_NOT_FOUND)
        return reopen_channel(c, err) == 0 ? 0 : -1;
    mq_fail_reply(err, c, r, "queue.declare (passive)");
    return -1;
}

/* Declares name unless it exists: an existing queue keeps its type and arguments (a
 * re-declaration with others would fail with PRECONDITION_FAILED). A new one gets args,
 * plus x-queue-type quorum when quorum. */
static int declare_queue(struct mq_conn *c, const char *name, amqp_table_t args, bool quorum,
                         struct cw_error *err)
{
    int exists = queue_exists(c, name, err);
    if (exists != 0) {
        if (exists < 0)
            CW_WRAP(err, "looking for queue %s", name);
        return exists > 0 ? 0 : -1;
    }
    amqp_table_entry_t entries[8];
    int n = 0;
    for (int i = 0; i < args.num_entries && n < 7; i++)
        entries[n++] = args.entries[i];
    if (quorum) {
        entries[n].key = amqp_cstring_bytes("x-queue-type");
        entries[n].value.kind = AMQP_FIELD_KIND_UTF8;
        entries[n++].value.value.bytes = amqp_cstring_bytes("quorum");
    }
    amqp_table_t all = {n, entries};
    amqp_queue_declare(c->state, MQ_CHANNEL, amqp_cstring_bytes(name), 0, 1, 0, 0, all);
    if (mq_check_rpc(c, "queue.declare", err) != 0) {
        CW_WRAP(err, "declaring queue %s", name);
        return -1;
    }
    return 0;
}

static int declare_retry_queue(struct mq_conn *c, const char *queue, double delay, bool quorum,
                               struct cw_error *err)
{
    char name[300];
    mq_conn_retry_queue_name(queue, delay, name, sizeof name);
    amqp_table_entry_t entries[3];
    entries[0].key = amqp_cstring_bytes("x-message-ttl");
    entries[0].value.kind = AMQP_FIELD_KIND_I64;
    entries[0].value.value.i64 = (int64_t)llround(delay * 1000.0);
    entries[1].key = amqp_cstring_bytes("x-dead-letter-exchange");
    entries[1].value.kind = AMQP_FIELD_KIND_UTF8;
    entries[1].value.value.bytes = amqp_cstring_bytes("");
    entries[2].key = amqp_cstring_bytes("x-dead-letter-routing-key");
    entries[2].value.kind = AMQP_FIELD_KIND_UTF8;
    entries[2].value.value.bytes = amqp_cstring_bytes(queue);
    amqp_table_t args = {3, entries};
    return declare_queue(c, name, args, quorum, err);
}

static int declare_exchange(struct mq_conn *c, const char *name, const char *type,
                            struct cw_error *err)
{
    /* kombu's Exchange(name, type): durable, not auto-delete, no arguments */
    amqp_exchange_declare(c->state, MQ_CHANNEL, amqp_cstring_bytes(name), amqp_cstring_bytes(type),
                          0, 1, 0, 0, amqp_empty_table);
    if (mq_check_rpc(c, "exchange.declare", err) != 0) {
        CW_WRAP(err, "declaring exchange %s", name);
        return -1;
    }
    return 0;
}

static int bind_queue(struct mq_conn *c, const char *queue, const char *exchange, const char *key,
                      struct cw_error *err)
{
    amqp_queue_bind(c->state, MQ_CHANNEL, amqp_cstring_bytes(queue), amqp_cstring_bytes(exchange),
                    amqp_cstring_bytes(key), amqp_empty_table);
    if (mq_check_rpc(c, "queue.bind", err) != 0) {
        CW_WRAP(err, "binding queue %s to %s with %s", queue, exchange, key);
        return -1;
    }
    return 0;
}

/* kombu's Exchange(destination).bind_to(source, routing_key). */
static int bind_exchange(struct mq_conn *c, const char *destination, const char *source,
                         const char *key, struct cw_error *err)
{
    amqp_exchange_bind(c->state, MQ_CHANNEL, amqp_cstring_bytes(destination),
                       amqp_cstring_bytes(source), amqp_cstring_bytes(key), amqp_empty_table);
    if (mq_check_rpc(c, "exchange.bind", err) != 0) {
        CW_WRAP(err, "binding exchange %s to %s with %s", destination, source, key);
        return -1;
    }
    return 0;
}

/* What Celery 5.5's worker binds for a queue whose exchange is a topic exchange. */
static int bind_native_delay(struct mq_conn *c, const char *queue, struct cw_error *err)
{
    char key[300];
    native_delay_work_key(queue, key, sizeof key);
    if (bind_exchange(c, queue, NATIVE_DELAY_DELIVERY_EXCHANGE, key, err) != 0)
        return -1;
    return bind_queue(c, queue, queue, key, err);
}

int mq_conn_declare_topology(struct mq_conn *c, const char *queue, const struct mq_topology *t,
                             struct cw_error *err)
{
    if (declare_exchange(c, queue, t->topic ? "topic" : "direct", err) != 0 ||
        declare_queue(c, queue, amqp_empty_table, t->quorum, err) != 0 ||
        bind_queue(c, queue, queue, queue, err) != 0)
        return -1;
    if (t->native_delay && bind_native_delay(c, queue, err) != 0)
        return -1;
    for (int i = 0; i < t->nretry; i++)
        if (declare_retry_queue(c, queue, t->retry_delays[i], t->quorum, err) != 0)
            return -1;
    char dead[300];
    snprintf(dead, sizeof dead, "%s.dead", queue);
    return declare_queue(c, dead, amqp_empty_table, t->quorum, err);
}

static void set_text(amqp_table_entry_t *e, const char *key, const char *value)
{
    e->key = amqp_cstring_bytes(key);
    e->value.kind = AMQP_FIELD_KIND_UTF8;
    e->value.value.bytes = amqp_cstring_bytes(value);
}

/* Level L's queue, with kombu's arguments (x-queue-type is always given, classic too). */
static int declare_level_queue(struct mq_conn *c, int level, bool quorum, struct cw_error *err)
{
    char name[64], next[64];
    native_delay_level_name(level, name, sizeof name);
    if (level > 0)
        native_delay_level_name(level - 1, next, sizeof next);
    else
        snprintf(next, sizeof next, "%s", NATIVE_DELAY_DELIVERY_EXCHANGE);
    amqp_table_entry_t entries[5];
    set_text(&entries[0], "x-queue-type", quorum ? "quorum" : "classic");
    set_text(&entries[1], "x-overflow", "reject-publish");
    entries[2].key = amqp_cstring_bytes("x-message-ttl");
    entries[2].value.kind = AMQP_FIELD_KIND_I64;
    entries[2].value.value.i64 = (INT64_C(1) << level) * 1000;
    set_text(&entries[3], "x-dead-letter-exchange", next);
    set_text(&entries[4], "x-dead-letter-strategy", "at-least-once");
    amqp_table_t args = {quorum ? 5 : 4, entries};
    char key[128];
    native_delay_queue_key(level, key, sizeof key);
    if (declare_exchange(c, name, "topic", err) != 0 ||
        declare_queue(c, name, args, false, err) != 0 || bind_queue(c, name, name, key, err) != 0)
        return -1;
    return 0;
}

int mq_conn_declare_native_delay(struct mq_conn *c, bool quorum, struct cw_error *err)
{
    for (int level = NATIVE_DELAY_MAX_LEVEL; level >= 0; level--)
        if (declare_level_queue(c, level, quorum, err) != 0)
            return -1;
    char key[128], from[64], to[64];
    for (int level = NATIVE_DELAY_MAX_LEVEL; level > 0; level--) {
        native_delay_level_name(level, from, sizeof from);
        native_delay_level_name(level - 1, to, sizeof to);
        native_delay_pass_key(level, key, sizeof key);
        if (bind_exchange(c, to, from, key, err) != 0)
            return -1;
    }
    native_delay_level_name(0, from, sizeof from);
    native_delay_pass_key(0, key, sizeof key);
    if (declare_exchange(c, NATIVE_DELAY_DELIVERY_EXCHANGE, "topic", err) != 0 ||
        bind_exchange(c, NATIVE_DELAY_DELIVERY_EXCHANGE, from, key, err) != 0) {
        CW_WRAP(err, "declaring the native delayed-delivery ladder");
        return -1;
    }
    return 0;
}

int mq_conn_declare_exchange(struct mq_conn *c, const char *name, const char *type, bool durable,
                             bool auto_delete, struct cw_error *err)
{
    amqp_exchange_declare(c->state, MQ_CHANNEL, amqp_cstring_bytes(name), amqp_cstring_bytes(type),
                          0, durable, auto_delete, 0, amqp_empty_table);
    if (mq_check_rpc(c, "exchange.declare", err) != 0) {
        CW_WRAP(err, "declaring exchange %s", name);
        return -1;
    }
    return 0;
}

int mq_conn_declare_queue(struct mq_conn *c, const char *name,
                          const struct mq_conn_queue_opts *opts, struct cw_error *err)
{
    amqp_queue_declare(c->state, MQ_CHANNEL, amqp_cstring_bytes(name), 0, opts->durable,
                       opts->exclusive, opts->auto_delete, opts->arguments);
    if (mq_check_rpc(c, "queue.declare", err) != 0) {
        CW_WRAP(err, "declaring queue %s", name);
        return -1;
    }
    return 0;
}

int mq_conn_bind(struct mq_conn *c, const char *queue, const char *exchange,
                 const char *routing_key, struct cw_error *err)
{
    amqp_queue_bind(c->state, MQ_CHANNEL, amqp_cstring_bytes(queue), amqp_cstring_bytes(exchange),
                    amqp_cstring_bytes(routing_key), amqp_empty_table);
    if (mq_check_rpc(c, "queue.bind", err) != 0) {
        CW_WRAP(err, "binding %s to %s", queue, exchange);
        return -1;
    }
    return 0;
}
