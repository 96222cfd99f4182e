/* The Celery message codec: decodes task messages (protocol 1 and 2, JSON serializer).
 * Pure module: no I/O, no logging.
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
    long delivery_count; /* x-delivery-count (quorum queues): earlier deliveries; 0 = none */
    char *content_type;  /* as received; NULL when absent */
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

/* Users outside worker/celery reach these through this header; new code includes the one
 * it uses. At the end, so that each sees struct celery_task complete. */
#include "celery/args.h"
#include "celery/retry.h"
#include "celery/time.h"

#endif
