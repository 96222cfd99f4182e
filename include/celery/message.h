/* The Celery message codec: decodes task messages (protocol 1 and 2, JSON serializer) and
 * encodes the message Celery's Task.retry() publishes. Pure module: no I/O, no logging.
 *
 * Every decode failure is CW_ERR_PERMANENT with a one-line reason fit for a dead-letter
 * header: a message that cannot be decoded now never will be. */
#ifndef CWORKER_CELERY_MESSAGE_H
#define CWORKER_CELERY_MESSAGE_H

#include "base/error.h"

#include <amqp.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

struct celery_task {
    int protocol; /* 1 or 2 (2 also for v2 headers with a v1-style object body) */
    char *id;     /* task id */
    char *task;   /* task name */
    int retries;  /* 0 .. INT_MAX - 1, so retries + 1 cannot overflow */
    char *root_id, *parent_id, *group, *origin, *argsrepr, *kwargsrepr,
        *shadow; /* NULL when absent or None */
    bool has_eta;
    double eta; /* epoch seconds, UTC */
    bool has_expires;
    double expires;
    bool has_time_limit;
    double time_limit; /* hard, seconds */
    bool has_soft_time_limit;
    double soft_time_limit;
    bool has_group_index; /* Celery 5.2 sends group_index; kept on retry */
    long group_index;
    json_object *args;   /* array, owned, never NULL after a successful decode */
    json_object *kwargs; /* object, owned, never NULL */
    json_object *embed;  /* object (callbacks, errbacks, chain, chord) or NULL */
    /* The body as it arrived, in protocol 2 shape [args, kwargs, embed] with kombu's
     * __type__ markers still in place (args/kwargs above have them unwrapped). The retry
     * encoder republishes this so a Python worker receives its datetimes and Decimals
     * back. Owned; NULL when the task was not decoded (the encoder then uses args/kwargs/
     * embed). */
    json_object *wire_body;
    char *reply_to, *correlation_id; /* from properties; NULL when absent */
    bool ignore_result;
    char *content_type; /* as received; NULL when absent */
};

/* Decodes one delivery into *out (which the caller then releases with celery_task_free,
 * also after a failure: *out is always left freeable). props may be NULL; body need not
 * be NUL-terminated. Only application/json is parsed (a missing content type is tried as
 * JSON); pickle, yaml, msgpack and anything else fail WITHOUT looking at the body.
 * Errors (CW_ERR_PERMANENT), e.g. "unsupported content type application/x-python-serialize",
 * "body is not valid JSON: ...", "protocol 2 body is not [args, kwargs, embed]",
 * "missing task id", "retries is not an integer in 0..2147483646",
 * "header origin: string is not valid UTF-8". */
CW_MUST_CHECK int celery_message_decode(const amqp_basic_properties_t *props, const void *body,
                                        size_t body_len, struct celery_task *out,
                                        struct cw_error *err);

/* Frees what t owns and zeroes it. Safe on a zeroed or partly decoded task. */
void celery_task_free(struct celery_task *t);

/* An integer argument by position, else by keyword (run_id may be [42] or
 * {"run_id": 42}). Accepts JSON ints, integral strings ("42", also "42.000" as a
 * kombu Decimal arrives) within the range of long. Anything else, or neither present:
 * CW_ERR_PERMANENT "bad arguments: ...". keyword may be NULL (positional only). */
CW_MUST_CHECK int celery_task_int_arg(const struct celery_task *t, size_t position,
                                      const char *keyword, long *out, struct cw_error *err);

/* ISO-8601 date-time to epoch seconds: "YYYY-MM-DD[T ]HH:MM[:SS[.frac]]" followed by
 * 'Z', +HH:MM, +HHMM, +HH, or nothing (= UTC, as Celery with utc=True means it).
 * A bare date "YYYY-MM-DD" is midnight UTC. Returns 0, or -1 on anything malformed
 * (out of range fields, trailing text). */
CW_MUST_CHECK int celery_parse_iso8601(const char *s, double *epoch_out);

/* Formats epoch seconds (UTC) as "2026-11-24T21:00:00.123456+00:00" (microseconds always
 * present). buf gets "" when the time cannot be represented; it is always terminated. */
void celery_format_iso8601(double epoch, char *buf, size_t len);

/* An outgoing message: properties and body whose memory lives in `pool`. */
struct celery_outgoing {
    amqp_basic_properties_t props;
    amqp_bytes_t body;
    amqp_pool_t pool;
};

/* What Celery's Task.retry() publishes (always protocol 2, JSON): the same id, task and
 * body (wire_body when present, else [args, kwargs, embed or the empty embed]),
 * retries + 1, eta = now + countdown (ISO, +00:00), parent_id = the task's own id when
 * it was NULL, root_id = own id when NULL, other known headers kept (lang, group,
 * group_index, shadow, argsrepr, kwargsrepr, origin, expires, timelimit,
 * ignore_result). Properties: content_type application/json, content_encoding utf-8,
 * delivery_mode 2, priority 0, correlation_id = id, reply_to kept.
 * *out is initialised here; release it with celery_outgoing_free, also after failure. */
CW_MUST_CHECK int celery_message_encode_retry(const struct celery_task *t, double now,
                                              double countdown, struct celery_outgoing *out,
                                              struct cw_error *err);
void celery_outgoing_free(struct celery_outgoing *out);

#endif
