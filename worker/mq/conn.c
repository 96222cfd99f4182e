/* rabbitmq-c wrapper: connection, kombu-compatible topology, consume, confirmed publish. */
#include "mq/conn.h"
#include "mq/conn_internal.h"
#include "base/xalloc.h"

#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/* A confirm that takes longer means a connection that stopped working (or a broker that
 * blocks us, which the caller learns from connection.blocked): give up, do not stall. */
#define CONFIRM_TIMEOUT_MS 5000

int mq_fail_reply(struct cw_error *err, const struct mq_conn *c, amqp_rpc_reply_t r,
                  const char *what)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return 0;
    case AMQP_RESPONSE_NONE:
        CW_FAIL(err, CW_ERR_TRANSIENT, "%s on %s: no reply from the broker", what, c->where);
        break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        CW_FAIL(err, CW_ERR_TRANSIENT, "%s on %s: %s", what, c->where,
                amqp_error_string2(r.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            const amqp_channel_close_t *m = r.reply.decoded;
            CW_FAIL(err, CW_ERR_TRANSIENT, "%s on %s: channel closed by the broker: %d %.*s", what,
                    c->where, m->reply_code, (int)m->reply_text.len,
                    (const char *)m->reply_text.bytes);
        } else if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            const amqp_connection_close_t *m = r.reply.decoded;
            CW_FAIL(err, CW_ERR_TRANSIENT, "%s on %s: connection closed by the broker: %d %.*s",
                    what, c->where, m->reply_code, (int)m->reply_text.len,
                    (const char *)m->reply_text.bytes);
        } else {
            CW_FAIL(err, CW_ERR_TRANSIENT, "%s on %s: unexpected broker method 0x%08x", what,
                    c->where, r.reply.id);
        }
        break;
    }
    return -1;
}

int mq_check_rpc(struct mq_conn *c, const char *what, struct cw_error *err)
{
    return mq_fail_reply(err, c, amqp_get_rpc_reply(c->state), what);
}

int mq_fail_status(struct cw_error *err, const struct mq_conn *c, int status, const char *what)
{
    CW_FAIL(err, CW_ERR_TRANSIENT, "%s on %s: %s", what, c->where, amqp_error_string2(status));
    return -1;
}

static int setup_tls(struct mq_conn *c, amqp_socket_t *sock, const struct mq_tls *tls,
                     struct cw_error *err)
{
    amqp_ssl_socket_set_verify_peer(sock, 1);
    amqp_ssl_socket_set_verify_hostname(sock, 1);
    if (tls && tls->ca_file && amqp_ssl_socket_set_cacert(sock, tls->ca_file) != AMQP_STATUS_OK) {
        CW_FAIL(err, CW_ERR_PERMANENT, "cannot read the CA file %s for %s", tls->ca_file, c->where);
        return -1;
    }
    if (tls && tls->cert_file &&
        amqp_ssl_socket_set_key(sock, tls->cert_file,
                                tls->key_file ? tls->key_file : tls->cert_file) != AMQP_STATUS_OK) {
        CW_FAIL(err, CW_ERR_PERMANENT, "cannot read the client certificate %s for %s",
                tls->cert_file, c->where);
        return -1;
    }
    return 0;
}

static int open_socket(struct mq_conn *c, const struct amqp_connection_info *info,
                       const struct mq_tls *tls, struct cw_error *err)
{
    amqp_socket_t *sock = info->ssl ? amqp_ssl_socket_new(c->state) : amqp_tcp_socket_new(c->state);
    if (!sock) {
        CW_FAIL(err, CW_ERR_TRANSIENT, "cannot create a socket for %s", c->where);
        return -1;
    }
    if (info->ssl && setup_tls(c, sock, tls, err) != 0)
        return -1;
    struct timeval timeout = {MQ_RPC_TIMEOUT_S, 0};
    int status = amqp_socket_open_noblock(sock, info->host, info->port, &timeout);
    if (status == AMQP_STATUS_SSL_PEER_VERIFY_FAILED ||
        status == AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED) {
        /* Trying again will not make the certificate verify: a configuration error. */
        CW_FAIL(err, CW_ERR_PERMANENT,
                "the broker's TLS certificate does not verify on %s: %s (check "
                "BROKER_USE_SSL_CA_CERTS and the host name in CELERY_BROKER_URL)",
                c->where, amqp_error_string2(status));
        return -1;
    }
    if (status != AMQP_STATUS_OK)
        return mq_fail_status(err, c, status, "connect");
    return 0;
}

static amqp_table_entry_t capability(const char *name)
{
    amqp_table_entry_t e = {.key = amqp_cstring_bytes(name)};
    e.value.kind = AMQP_FIELD_KIND_BOOLEAN;
    e.value.value.boolean = 1;
    return e;
}

static int login(struct mq_conn *c, const struct amqp_connection_info *info, int heartbeat_s,
                 struct cw_error *err)
{
    amqp_table_entry_t caps[] = {
        capability("publisher_confirms"), capability("consumer_cancel_notify"),
        capability("connection.blocked"), capability("authentication_failure_close")};
    amqp_table_entry_t props[1] = {{.key = amqp_cstring_bytes("capabilities")}};
    props[0].value.kind = AMQP_FIELD_KIND_TABLE;
    props[0].value.value.table.num_entries = (int)(sizeof caps / sizeof caps[0]);
    props[0].value.value.table.entries = caps;
    amqp_table_t client_properties = {1, props};
    amqp_rpc_reply_t r = amqp_login_with_properties(c->state, info->vhost, 0, 131072, heartbeat_s,
                                                    &client_properties, AMQP_SASL_METHOD_PLAIN,
                                                    info->user, info->password);
    if (mq_fail_reply(err, c, r, "login") != 0)
        return -1;
    amqp_channel_open(c->state, MQ_CHANNEL);
    return mq_check_rpc(c, "channel.open", err);
}

static int open_one(struct mq_conn *c, const char *url, int heartbeat_s, const struct mq_tls *tls,
                    struct cw_error *err)
{
    memset(c, 0, sizeof *c);
    struct amqp_connection_info info;
    char *copy = mq_url_for_rabbitmq_c(url ? url : "");
    amqp_default_connection_info(&info);
    if (!url || amqp_parse_url(copy, &info) != AMQP_STATUS_OK) {
        free(copy);
        CW_FAIL(err, CW_ERR_PERMANENT, "CELERY_BROKER_URL is not a valid amqp:// or amqps:// URL");
        return -1;
    }
    snprintf(c->where, sizeof c->where, "%s:%d/%s", info.host, info.port, info.vhost);
    c->state = amqp_new_connection();
    /* Every synchronous call (declare, qos, consume, close) gives up after this instead of
     * waiting forever on a broker that stopped answering. */
    struct timeval rpc_timeout = {MQ_RPC_TIMEOUT_S, 0};
    amqp_set_rpc_timeout(c->state, &rpc_timeout);
    amqp_set_handshake_timeout(c->state, &rpc_timeout);
    int rc =
        open_socket(c, &info, tls, err) == 0 && login(c, &info, heartbeat_s, err) == 0 ? 0 : -1;
    free(copy);
    if (rc != 0) {
        CW_WRAP(err, "opening the AMQP connection");
        mq_conn_close(c);
    }
    c->next_publish_seq = 1;
    return rc;
}

int mq_conn_open_any(struct mq_conn *c, const char *urls, int heartbeat_s, const struct mq_tls *tls,
                     unsigned *next, struct cw_error *err)
{
    unsigned n = mq_conn_url_count(urls), first = next ? *next % n : 0;
    int rc = -1;
    for (unsigned k = 0; k < n && rc != 0; k++) {
        unsigned i = (first + k) % n;
        char *url = mq_conn_url_at(urls, i);
        rc = open_one(c, url, heartbeat_s, tls, err);
        free(url);
        if (rc == 0 && next)
            *next = (i + 1) % n;
    }
    return rc;
}

int mq_conn_open(struct mq_conn *c, const char *url, int heartbeat_s, struct cw_error *err)
{
    return mq_conn_open_any(c, url, heartbeat_s, NULL, NULL, err);
}

void mq_conn_abandon(struct mq_conn *c)
{
    if (!c->state)
        return;
    /* No closing handshake: a broker that has sent connection.close answers nothing else,
     * and a dead peer answers nothing at all. Destroying closes the socket. */
    amqp_destroy_connection(c->state);
    c->state = NULL;
    c->confirms = false;
}

void mq_conn_close(struct mq_conn *c)
{
    if (!c->state)
        return;
    /* Best effort: the peer may already be gone; rabbitmq-c times these out. */
    amqp_channel_close(c->state, MQ_CHANNEL, AMQP_REPLY_SUCCESS);
    amqp_connection_close(c->state, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c->state);
    c->state = NULL;
    c->confirms = false;
}

bool mq_conn_is_open(const struct mq_conn *c)
{
    return c->state != NULL;
}

int mq_conn_set_prefetch_nowait(struct mq_conn *c, uint16_t prefetch, bool global,
                                struct cw_error *err)
{
    amqp_basic_qos_t req = {.prefetch_size = 0, .prefetch_count = prefetch, .global = global};
    int status = amqp_send_method(c->state, MQ_CHANNEL, AMQP_BASIC_QOS_METHOD, &req);
    return status == AMQP_STATUS_OK ? 0 : mq_fail_status(err, c, status, "basic.qos");
}

int mq_conn_consume_nowait(struct mq_conn *c, const char *queue, const char *consumer_tag,
                           struct cw_error *err)
{
    amqp_basic_consume_t consume = {.queue = amqp_cstring_bytes(queue),
                                    .consumer_tag = amqp_cstring_bytes(consumer_tag),
                                    .no_ack = 0,
                                    .nowait = 1,
                                    .arguments = amqp_empty_table};
    if (amqp_send_method(c->state, MQ_CHANNEL, AMQP_BASIC_CONSUME_METHOD, &consume) !=
        AMQP_STATUS_OK) {
        CW_FAIL(err, CW_ERR_TRANSIENT, "basic.consume of %s on %s failed", queue, c->where);
        return -1;
    }
    return 0;
}

int mq_conn_set_prefetch(struct mq_conn *c, uint16_t prefetch, bool global, struct cw_error *err)
{
    /* global: one window for the channel's consumers, and a change applies at once
     * (RabbitMQ applies a per-consumer QoS only to consumers started after it). Quorum
     * queues refuse a global one. */
    amqp_basic_qos(c->state, MQ_CHANNEL, 0, prefetch, global);
    return mq_check_rpc(c, "basic.qos", err);
}

int mq_conn_consume(struct mq_conn *c, const char *queue, const char *consumer_tag, bool no_ack,
                    struct cw_error *err)
{
    amqp_basic_consume(c->state, MQ_CHANNEL, amqp_cstring_bytes(queue),
                       amqp_cstring_bytes(consumer_tag), 0, no_ack, 0, amqp_empty_table);
    if (mq_check_rpc(c, "basic.consume", err) != 0) {
        CW_WRAP(err, "consuming from %s", queue);
        return -1;
    }
    return 0;
}

int mq_conn_cancel(struct mq_conn *c, const char *consumer_tag, struct cw_error *err)
{
    amqp_basic_cancel(c->state, MQ_CHANNEL, amqp_cstring_bytes(consumer_tag));
    return mq_check_rpc(c, "basic.cancel", err);
}

int mq_conn_enable_confirms(struct mq_conn *c, struct cw_error *err)
{
    amqp_confirm_select(c->state, MQ_CHANNEL);
    if (mq_check_rpc(c, "confirm.select", err) != 0)
        return -1;
    c->confirms = true;
    c->next_publish_seq = 1;
    return 0;
}

/* connection.blocked / unblocked: true when the method was one of them. */
static bool note_blocking(struct mq_conn *c, amqp_method_t m)
{
    if (m.id == AMQP_CONNECTION_BLOCKED_METHOD) {
        const amqp_connection_blocked_t *b = m.decoded;
        c->blocked = true;
        snprintf(c->blocked_reason, sizeof c->blocked_reason, "%.*s", (int)b->reason.len,
                 (const char *)b->reason.bytes);
        return true;
    }
    if (m.id == AMQP_CONNECTION_UNBLOCKED_METHOD) {
        c->blocked = false;
        c->blocked_reason[0] = '\0';
        return true;
    }
    return false;
}

/* basic.ack / basic.nack of a publish: true when the method was one of them. */
static bool note_confirm(struct mq_conn *c, amqp_method_t m)
{
    if (m.id == AMQP_BASIC_ACK_METHOD) {
        const amqp_basic_ack_t *a = m.decoded;
        if (c->on_confirm)
            c->on_confirm(c->confirm_ctx, a->delivery_tag, a->multiple, true);
        return true;
    }
    if (m.id == AMQP_BASIC_NACK_METHOD) {
        const amqp_basic_nack_t *n = m.decoded;
        if (c->on_confirm)
            c->on_confirm(c->confirm_ctx, n->delivery_tag, n->multiple, false);
        return true;
    }
    return false;
}

/* queue.declare-ok of an mq_conn_request_count. */
static bool note_count(struct mq_conn *c, amqp_method_t m)
{
    if (m.id != AMQP_QUEUE_DECLARE_OK_METHOD)
        return false;
    const amqp_queue_declare_ok_t *ok = m.decoded;
    if (c->on_count)
        c->on_count(c->confirm_ctx, ok->message_count);
    return true;
}

/* One frame if one has arrived: 1 read (or nothing to do with it), 0 none, -1 the
 * connection failed or the broker closed it. */
static int read_frame(struct mq_conn *c, const char *what, struct cw_error *err)
{
    amqp_frame_t frame;
    struct timeval zero = {0, 0};
    int status = amqp_simple_wait_frame_noblock(c->state, &frame, &zero);
    if (status == AMQP_STATUS_TIMEOUT)
        return 0;
    if (status != AMQP_STATUS_OK)
        return mq_fail_status(err, c, status, "reading a frame");
    if (frame.frame_type != AMQP_FRAME_METHOD || note_blocking(c, frame.payload.method) ||
        note_confirm(c, frame.payload.method) || note_count(c, frame.payload.method))
        return 1;
    switch (frame.payload.method.id) {
    case AMQP_CHANNEL_CLOSE_METHOD:
    case AMQP_CONNECTION_CLOSE_METHOD: {
        amqp_rpc_reply_t r = {AMQP_RESPONSE_SERVER_EXCEPTION, frame.payload.method, 0};
        return mq_fail_reply(err, c, r, what);
    }
    case AMQP_BASIC_CANCEL_METHOD:
        CW_FAIL(err, CW_ERR_TRANSIENT, "the broker cancelled our consumer on %s (queue deleted?)",
                c->where);
        return -1;
    default:
        return 1; /* basic.ack of a confirm, basic.return, ...: nothing to do here */
    }
}

static int handle_other_frame(struct mq_conn *c, struct cw_error *err)
{
    return read_frame(c, "consuming", err) < 0 ? -1 : 0;
}

int mq_conn_next_delivery(struct mq_conn *c, int timeout_ms, amqp_envelope_t *env,
                          struct cw_error *err)
{
    struct timeval timeout = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    amqp_maybe_release_buffers(c->state);
    amqp_rpc_reply_t r = amqp_consume_message(c->state, env, &timeout, 0);
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return 1;
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
        if (r.library_error == AMQP_STATUS_TIMEOUT)
            return 0;
        if (r.library_error == AMQP_STATUS_UNEXPECTED_STATE)
            return handle_other_frame(c, err);
    }
    return mq_fail_reply(err, c, r, "consuming");
}

int mq_conn_pump(struct mq_conn *c, struct cw_error *err)
{
    /* c->state is checked each time: an on_confirm callback may have dropped c. */
    for (int i = 0; i < 64 && c->state; i++) {
        int rc = read_frame(c, "idle", err);
        if (rc <= 0)
            return rc;
    }
    return 0;
}

bool mq_conn_has_buffered(const struct mq_conn *c)
{
    return c->state && (amqp_frames_enqueued(c->state) || amqp_data_in_buffer(c->state));
}

int mq_conn_fd(const struct mq_conn *c)
{
    return c->state ? amqp_get_sockfd(c->state) : -1;
}

int mq_conn_ack(struct mq_conn *c, uint64_t tag, struct cw_error *err)
{
    int status = amqp_basic_ack(c->state, MQ_CHANNEL, tag, 0);
    return status == AMQP_STATUS_OK ? 0 : mq_fail_status(err, c, status, "basic.ack");
}

int mq_conn_reject(struct mq_conn *c, uint64_t tag, bool requeue, struct cw_error *err)
{
    int status = amqp_basic_reject(c->state, MQ_CHANNEL, tag, requeue);
    return status == AMQP_STATUS_OK ? 0 : mq_fail_status(err, c, status, "basic.reject");
}

static int wait_confirm(struct mq_conn *c, uint64_t seq, struct cw_error *err)
{
    struct timeval timeout = {CONFIRM_TIMEOUT_MS / 1000, 0};
    for (;;) {
        amqp_frame_t frame;
        int status = amqp_simple_wait_frame_noblock(c->state, &frame, &timeout);
        if (status != AMQP_STATUS_OK)
            return mq_fail_status(err, c, status, "waiting for the publish confirm");
        if (frame.frame_type != AMQP_FRAME_METHOD)
            continue;
        amqp_method_t m = frame.payload.method;
        if (note_blocking(c, m))
            continue;
        if (m.id == AMQP_BASIC_ACK_METHOD) {
            const amqp_basic_ack_t *ack = m.decoded;
            note_confirm(c, m);
            if (ack->delivery_tag >= seq) /* one publish in flight at a time */
                return 0;
        } else if (m.id == AMQP_BASIC_NACK_METHOD) {
            note_confirm(c, m);
            CW_FAIL(err, CW_ERR_TRANSIENT, "the broker refused (nack) a publish on %s", c->where);
            return -1;
        } else if (m.id == AMQP_CHANNEL_CLOSE_METHOD || m.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_rpc_reply_t r = {AMQP_RESPONSE_SERVER_EXCEPTION, m, 0};
            return mq_fail_reply(err, c, r, "publishing");
        }
    }
}

bool mq_conn_writable(const struct mq_conn *c)
{
    struct pollfd p = {.fd = mq_conn_fd(c), .events = POLLOUT};
    return p.fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & POLLOUT);
}

int mq_conn_publish_nowait(struct mq_conn *c, const char *exchange, const char *routing_key,
                           const amqp_basic_properties_t *props, amqp_bytes_t body, uint64_t *seq,
                           struct cw_error *err)
{
    /* rabbitmq-c waits without a deadline for a socket to drain: a peer that stopped
     * reading would hold the caller forever. Refuse instead; the caller tries later. */
    if (!mq_conn_writable(c)) {
        CW_FAIL(err, CW_ERR_TRANSIENT, "the connection to %s does not take data now", c->where);
        return 1;
    }
    int status = amqp_basic_publish(c->state, MQ_CHANNEL, amqp_cstring_bytes(exchange),
                                    amqp_cstring_bytes(routing_key), 0, 0, props, body);
    if (status != AMQP_STATUS_OK) {
        mq_fail_status(err, c, status, "basic.publish");
        CW_WRAP(err, "publishing to '%s' with routing key %s", exchange, routing_key);
        return -1;
    }
    *seq = c->confirms ? c->next_publish_seq++ : 0;
    return 0;
}

int mq_conn_publish(struct mq_conn *c, const char *exchange, const char *routing_key,
                    const amqp_basic_properties_t *props, amqp_bytes_t body, struct cw_error *err)
{
    int status = amqp_basic_publish(c->state, MQ_CHANNEL, amqp_cstring_bytes(exchange),
                                    amqp_cstring_bytes(routing_key), 0, 0, props, body);
    if (status != AMQP_STATUS_OK)
        return mq_fail_status(err, c, status, "basic.publish");
    if (!c->confirms)
        return 0;
    uint64_t seq = c->next_publish_seq++;
    if (wait_confirm(c, seq, err) != 0) {
        CW_WRAP(err, "publishing to '%s' with routing key %s", exchange, routing_key);
        return -1;
    }
    return 0;
}

int mq_conn_request_count(struct mq_conn *c, const char *queue, struct cw_error *err)
{
    amqp_queue_declare_t req = {
        .queue = amqp_cstring_bytes(queue), .passive = 1, .arguments = amqp_empty_table};
    int status = amqp_send_method(c->state, MQ_CHANNEL, AMQP_QUEUE_DECLARE_METHOD, &req);
    return status == AMQP_STATUS_OK ? 0 : mq_fail_status(err, c, status, "queue.declare (count)");
}

int mq_conn_queue_count(struct mq_conn *c, const char *queue, uint32_t *messages,
                        struct cw_error *err)
{
    amqp_queue_declare_ok_t *ok = amqp_queue_declare(
        c->state, MQ_CHANNEL, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
    if (!ok) {
        (void)mq_check_rpc(c, "queue.declare (passive)", err);
        CW_WRAP(err, "counting messages in %s", queue);
        return -1;
    }
    *messages = ok->message_count;
    return 0;
}

int mq_conn_get(struct mq_conn *c, const char *queue, uint64_t *tag, amqp_message_t *m,
                struct cw_error *err)
{
    char what[300];
    amqp_rpc_reply_t r;

    snprintf(what, sizeof what, "basic.get from %s", queue);
    /* the previous message's frames are done with: let rabbitmq-c reuse their memory */
    amqp_maybe_release_buffers(c->state);
    r = amqp_basic_get(c->state, MQ_CHANNEL, amqp_cstring_bytes(queue), 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        return mq_fail_reply(err, c, r, what);
    if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD)
        return 0;
    *tag = ((const amqp_basic_get_ok_t *)r.reply.decoded)->delivery_tag;
    r = amqp_read_message(c->state, MQ_CHANNEL, m, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        return mq_fail_reply(err, c, r, what);
    return 1;
}

int mq_conn_nack(struct mq_conn *c, uint64_t tag, bool multiple, bool requeue, struct cw_error *err)
{
    int status = amqp_basic_nack(c->state, MQ_CHANNEL, tag, multiple, requeue);
    return status == AMQP_STATUS_OK ? 0 : mq_fail_status(err, c, status, "basic.nack");
}
