/* One AMQP connection (rabbitmq-c) with one channel: connect from a URL, declare the
 * Celery topology exactly as kombu does, consume with manual acks, publish with confirms.
 *
 * The supervisor keeps two: a consumer connection and a publisher connection.
 * rabbitmq-c 0.11 has no public way to wait for a frame on one channel while keeping
 * the others, so waiting for a publisher confirm on the consuming connection could
 * swallow a delivery; a separate connection makes the confirm wait see only confirms. */
#ifndef CWORKER_MQ_CONN_H
#define CWORKER_MQ_CONN_H

#include "base/error.h"

#include <amqp.h>
#include <stdbool.h>
#include <stdint.h>

/* A publisher confirm: every publish up to tag (multiple) or tag alone, acked or nacked. */
typedef void (*mq_confirm_fn)(void *ctx, uint64_t tag, bool multiple, bool ack);
/* The answer to an mq_conn_request_count, in the order the requests were sent. */
typedef void (*mq_count_fn)(void *ctx, uint32_t messages);

struct mq_conn {
    amqp_connection_state_t state; /* NULL when closed */
    char where[300];               /* host:port/vhost for messages: never the password */
    bool confirms;                 /* confirm mode enabled on the channel */
    uint64_t next_publish_seq;     /* delivery tag the broker will confirm next */
    bool blocked;                  /* the broker sent connection.blocked (a resource alarm) */
    char blocked_reason[128];
    mq_confirm_fn on_confirm; /* each confirm read (set after mq_conn_open); may abandon c */
    mq_count_fn on_count;     /* each queue count read */
    void *confirm_ctx;        /* for both */
};

#define MQ_CHANNEL       1
#define MQ_RPC_TIMEOUT_S 5

/* Opens url (amqp:// or amqps://). heartbeat_s 0 disables heartbeats. Errors are transient.
 * Advertises the client capabilities py-amqp does (connection.blocked,
 * consumer_cancel_notify, authentication_failure_close, publisher_confirms). Connecting,
 * the handshake and every synchronous call give up after MQ_RPC_TIMEOUT_S. */
CW_MUST_CHECK int mq_conn_open(struct mq_conn *c, const char *url, int heartbeat_s,
                               struct cw_error *err);

/* TLS for amqps:// (kombu's broker_use_ssl: ca_certs, certfile, keyfile). The server's
 * certificate and host name are always verified; ca_file NULL = the system's CAs. */
struct mq_tls {
    const char *ca_file;
    const char *cert_file; /* client certificate, NULL for none */
    const char *key_file;
};

/* urls may list several broker URLs separated by ';' (kombu's failover form). They are
 * tried in turn starting at *next (round robin); on success *next is set to the one after
 * the URL used, so that the next attempt, after this connection is lost, moves on. next
 * may be NULL (start with the first). tls may be NULL. */
CW_MUST_CHECK int mq_conn_open_any(struct mq_conn *c, const char *urls, int heartbeat_s,
                                   const struct mq_tls *tls, unsigned *next, struct cw_error *err);
/* The number of URLs in a failover list (1 for a plain URL). */
unsigned mq_conn_url_count(const char *urls);
/* The i-th URL of a failover list, newly allocated (NULL when there is none). */
char *mq_conn_url_at(const char *urls, unsigned i);
void mq_conn_close(struct mq_conn *c);
/* Drops a connection that failed, without the closing handshake (which would wait for a
 * peer that is gone or has already closed its side). */
void mq_conn_abandon(struct mq_conn *c);
/* True when url (or every URL of a failover list) parses as kombu would accept it. */
bool mq_conn_url_valid(const char *url);
/* Parses url as kombu reads it; info's strings point into *storage, which the caller frees. */
CW_MUST_CHECK int mq_conn_parse_url(const char *url, struct amqp_connection_info *info,
                                    char **storage);
bool mq_conn_is_open(const struct mq_conn *c);

/* What is declared for each queue Q. */
struct mq_topology {
    const double *retry_delays; /* Q.retry.<N>s for each; NULL/0 for none */
    int nretry;
    bool quorum;       /* new queues are quorum queues (CELERY_QUEUE_TYPE) */
    bool topic;        /* exchange Q is a topic exchange, else direct (CELERY_EXCHANGE_TYPE) */
    bool native_delay; /* Q is bound to the native-delay ladder (declared before) */
};

/* Declares, for queue Q: exchange Q (direct or topic, durable), queue Q (durable), binding
 * Q->Q key Q — what kombu declares for Celery's default queue — plus, when t->nretry, the
 * worker's Q.retry.<N>s delay queues (per-queue TTL dead-lettering back to Q), and Q.dead.
 * With t->native_delay, also what Celery 5.5's worker binds: exchange Q to
 * celery_delayed_delivery and queue Q to exchange Q, both with key "#.Q". A queue that
 * exists already is left as it is (a passive declare first), whatever its type:
 * redeclaring it with other arguments would fail. */
CW_MUST_CHECK int mq_conn_declare_topology(struct mq_conn *c, const char *queue,
                                           const struct mq_topology *t, struct cw_error *err);

/* Declares Celery 5.5's native delayed-delivery ladder exactly as kombu does
 * (mq/native_delay.h): for each level 27..0 a topic exchange and a queue of the same name
 * (x-message-ttl 2^L s, x-overflow reject-publish, dead-lettering to level L-1 or to
 * celery_delayed_delivery, at-least-once on quorum queues), their bindings, and the topic
 * exchange celery_delayed_delivery. Existing queues are left as they are. */
CW_MUST_CHECK int mq_conn_declare_native_delay(struct mq_conn *c, bool quorum,
                                               struct cw_error *err);
/* Name of the delay queue for `delay` seconds: "<queue>.retry.<N>s". */
void mq_conn_retry_queue_name(const char *queue, double delay, char *out, size_t len);

/* Generic declarations for the worker's other entities (events, remote control). */
struct mq_conn_queue_opts {
    bool durable, exclusive, auto_delete;
    amqp_table_t arguments;
};
CW_MUST_CHECK int mq_conn_declare_exchange(struct mq_conn *c, const char *name, const char *type,
                                           bool durable, bool auto_delete, struct cw_error *err);
CW_MUST_CHECK int mq_conn_declare_queue(struct mq_conn *c, const char *name,
                                        const struct mq_conn_queue_opts *opts,
                                        struct cw_error *err);
CW_MUST_CHECK int mq_conn_bind(struct mq_conn *c, const char *queue, const char *exchange,
                               const char *routing_key, struct cw_error *err);

/* The same without waiting for qos-ok (read later with the deliveries and ignored). */
CW_MUST_CHECK int mq_conn_set_prefetch_nowait(struct mq_conn *c, uint16_t prefetch, bool global,
                                              struct cw_error *err);
/* One more consumer of queue, without waiting for consume-ok: with a per-consumer QoS set
 * just before, it brings that much more window. */
CW_MUST_CHECK int mq_conn_consume_nowait(struct mq_conn *c, const char *queue,
                                         const char *consumer_tag, struct cw_error *err);
/* global: one window for the whole channel (classic queues); else per consumer, for the
 * consumers started after it (what quorum queues accept). */
CW_MUST_CHECK int mq_conn_set_prefetch(struct mq_conn *c, uint16_t prefetch, bool global,
                                       struct cw_error *err);
/* no_ack: the broker forgets each message once sent (remote control requests, which kombu
 * also consumes that way); such a consumer is not bound by the prefetch window. */
CW_MUST_CHECK int mq_conn_consume(struct mq_conn *c, const char *queue, const char *consumer_tag,
                                  bool no_ack, struct cw_error *err);
/* Stops a consumer (graceful shutdown); unacked deliveries stay ours to ack. */
CW_MUST_CHECK int mq_conn_cancel(struct mq_conn *c, const char *consumer_tag, struct cw_error *err);
CW_MUST_CHECK int mq_conn_enable_confirms(struct mq_conn *c, struct cw_error *err);

/* Waits up to timeout_ms (0: only what is already readable) for a delivery.
 * Returns 1 with *env filled (caller destroys it with amqp_destroy_envelope),
 * 0 when none arrived, -1 when the connection failed (err filled). */
CW_MUST_CHECK int mq_conn_next_delivery(struct mq_conn *c, int timeout_ms, amqp_envelope_t *env,
                                        struct cw_error *err);
/* True when rabbitmq-c holds data that poll() on the socket would not report. */
bool mq_conn_has_buffered(const struct mq_conn *c);
/* Reads whatever frames have arrived without waiting (sending our heartbeat when due):
 * notes connection.blocked/unblocked; a close from the broker, a missed heartbeat or a
 * dead socket is an error. For a connection nobody reads otherwise (the publisher). */
CW_MUST_CHECK int mq_conn_pump(struct mq_conn *c, struct cw_error *err);
int mq_conn_fd(const struct mq_conn *c);

CW_MUST_CHECK int mq_conn_ack(struct mq_conn *c, uint64_t tag, struct cw_error *err);
CW_MUST_CHECK int mq_conn_reject(struct mq_conn *c, uint64_t tag, bool requeue,
                                 struct cw_error *err);

/* Publishes and, in confirm mode, waits for the broker's basic.ack (a nack or a
 * timeout is an error): only then is the message safely the broker's. */
/* True when the socket takes data now (a publish will not wait for the peer to read). */
bool mq_conn_writable(const struct mq_conn *c);
/* Publishes without waiting for the confirm, nor for a socket that does not take data:
 * then it returns 1 at once (err says so; nothing was sent, the connection is usable); *seq gets
 * the tag the broker will confirm (through on_confirm, from mq_conn_pump), 0 without confirm mode.
 * -1: it failed. */
CW_MUST_CHECK int mq_conn_publish_nowait(struct mq_conn *c, const char *exchange,
                                         const char *routing_key,
                                         const amqp_basic_properties_t *props, amqp_bytes_t body,
                                         uint64_t *seq, struct cw_error *err);
CW_MUST_CHECK int mq_conn_publish(struct mq_conn *c, const char *exchange, const char *routing_key,
                                  const amqp_basic_properties_t *props, amqp_bytes_t body,
                                  struct cw_error *err);

/* Passive declare: message count of a queue (for status and tests). */
/* Asks for a queue's message count without waiting (a passive queue.declare); the answer
 * comes through on_count from mq_conn_pump. The queue must exist: a missing one closes
 * the channel, which mq_conn_pump reports as an error. */
CW_MUST_CHECK int mq_conn_request_count(struct mq_conn *c, const char *queue, struct cw_error *err);
CW_MUST_CHECK int mq_conn_queue_count(struct mq_conn *c, const char *queue, uint32_t *messages,
                                      struct cw_error *err);

/* basic.get from queue WITHOUT auto-ack: the message stays the broker's until acked or
 * nacked (or the connection closes, which requeues it). Returns 1 with *tag and *m (the
 * caller destroys m with amqp_destroy_message), 0 when the queue has no ready message,
 * -1 on error (err filled; the channel is then unusable). */
CW_MUST_CHECK int mq_conn_get(struct mq_conn *c, const char *queue, uint64_t *tag,
                              amqp_message_t *m, struct cw_error *err);
/* basic.nack of tag (with multiple, also of every unacked delivery before it); with
 * requeue the broker puts the messages back at their old place in the queue. */
CW_MUST_CHECK int mq_conn_nack(struct mq_conn *c, uint64_t tag, bool multiple, bool requeue,
                               struct cw_error *err);

#endif
