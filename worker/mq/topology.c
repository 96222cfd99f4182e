/* rabbitmq-c wrapper: the Celery topology, declared as kombu declares it (queues that exist
 * are left as they are), and the delay queues' names. */
#include "base/xalloc.h"
#include "mq/conn.h"
#include "mq/conn_internal.h"

#include <math.h>
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

int mq_conn_declare_topology(struct mq_conn *c, const char *queue, const double *retry_delays,
                             int nretry, bool quorum, struct cw_error *err)
{
    amqp_bytes_t q = amqp_cstring_bytes(queue);
    /* kombu: Exchange(Q, type="direct", durable=True, auto_delete=False), no arguments */
    amqp_exchange_declare(c->state, MQ_CHANNEL, q, amqp_cstring_bytes("direct"), 0, 1, 0, 0,
                          amqp_empty_table);
    if (mq_check_rpc(c, "exchange.declare", err) != 0) {
        CW_WRAP(err, "declaring exchange %s", queue);
        return -1;
    }
    if (declare_queue(c, queue, amqp_empty_table, quorum, err) != 0)
        return -1;
    amqp_queue_bind(c->state, MQ_CHANNEL, q, q, q, amqp_empty_table);
    if (mq_check_rpc(c, "queue.bind", err) != 0) {
        CW_WRAP(err, "binding queue %s", queue);
        return -1;
    }
    for (int i = 0; i < nretry; i++)
        if (declare_retry_queue(c, queue, retry_delays[i], quorum, err) != 0)
            return -1;
    char dead[300];
    snprintf(dead, sizeof dead, "%s.dead", queue);
    return declare_queue(c, dead, amqp_empty_table, quorum, err);
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
