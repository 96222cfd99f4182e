/* Encoding outgoing Celery protocol 2 messages (JSON serializer): the parts every
 * outgoing message shares — the headers Celery's as_task_v2 writes, the
 * [args, kwargs, embed] body, Celery's properties — and the message of a brand-new task
 * as `send_task`/`apply_async` publishes it. The retry encoder (retry.c,
 * celery_message_encode_retry) is built on the same parts.
 * Pure module: no I/O, no logging, no randomness (the caller supplies the task id). */
#ifndef CWORKER_CELERY_ENCODE_H
#define CWORKER_CELERY_ENCODE_H

#include "base/error.h"

#include <amqp.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

/* The header values as_task_v2 writes. NULL strings and has_* = false are Python None. */
struct celery_v2_headers {
    const char *task, *id; /* required */
    const char *shadow, *group, *root_id, *parent_id, *argsrepr, *kwargsrepr, *origin;
    int retries;
    bool has_eta;
    double eta; /* epoch seconds, UTC: written as ISO-8601 with +00:00 */
    bool has_expires;
    double expires;
    bool has_group_index;
    long group_index;
    bool has_time_limit; /* timelimit = [hard, soft] */
    double time_limit;
    bool has_soft_time_limit;
    double soft_time_limit;
    bool ignore_result;
};

/* Builds the headers as a JSON object (*out, caller owns) in Celery's order, with the
 * value types py-amqp reads back as the same Python values once converted to a table.
 * Fails (CW_ERR_INTERNAL) on a missing id or task name or an unrepresentable time. */
CW_MUST_CHECK int celery_encode_headers(const struct celery_v2_headers *h, json_object **out,
                                        struct cw_error *err);

/* The protocol 2 body [args, kwargs, embed]; NULL parts become [], {} and the embed
 * Celery sends when there is none ({"callbacks": null, "errbacks": null, "chain": null,
 * "chord": null}). Takes new references; the caller owns the returned array. */
json_object *celery_encode_body(json_object *args, json_object *kwargs, json_object *embed);

/* An outgoing message: properties and body whose memory lives in `pool`. */
struct celery_outgoing {
    amqp_basic_properties_t props;
    amqp_bytes_t body;
    amqp_pool_t pool;
};

/* Zeroes *out and gives it its pool: afterwards celery_outgoing_free is always safe. */
void celery_outgoing_init(struct celery_outgoing *out);
void celery_outgoing_free(struct celery_outgoing *out);

/* A copy of s in out's pool (never NUL-terminated, as AMQP strings are). */
amqp_bytes_t celery_outgoing_str(struct celery_outgoing *out, const char *s);

/* A JSON string, or JSON null (NULL) for a NULL s: Python's None. */
json_object *celery_json_string_or_null(const char *s);

/* Fills an initialised message as kombu's Producer.publish does for a JSON body: body
 * compact JSON (UTF-8 raw, '/' unescaped), content_type application/json,
 * content_encoding utf-8, priority 0, the given delivery_mode (1 transient, 2 persistent)
 * and headers (a JSON object converted to an AMQP table; NULL: no headers property).
 * Events and remote control replies are sent like this. */
CW_MUST_CHECK int celery_outgoing_fill_json(struct celery_outgoing *out, json_object *headers,
                                            json_object *body, uint8_t delivery_mode,
                                            struct cw_error *err);

/* A task message: celery_outgoing_fill_json with delivery_mode 2 (persistent), plus
 * correlation_id = the task id and reply_to when not NULL. Everything lives in out->pool. */
CW_MUST_CHECK int celery_outgoing_fill(struct celery_outgoing *out, json_object *headers,
                                       json_object *body, const char *correlation_id,
                                       const char *reply_to, struct cw_error *err);

/* The whole message: headers from h, the given body (this call takes the caller's
 * reference and releases it), correlation_id = h->id. *out must be initialised. */
CW_MUST_CHECK int celery_encode_message(const struct celery_v2_headers *h, json_object *body,
                                        const char *reply_to, struct celery_outgoing *out,
                                        struct cw_error *err);

/* A new task, as the Python application's `parse_run.delay(run_id)` publishes it. */
struct celery_new_task {
    const char *task;       /* name, e.g. "app.worker.tasks.parse_run" */
    const char *id;         /* the new task id (a UUID string) */
    json_object *args;      /* array, borrowed; NULL = [] */
    json_object *kwargs;    /* object, borrowed; NULL = {} */
    const char *argsrepr;   /* Python's repr of args, e.g. "[42]" */
    const char *kwargsrepr; /* Python's repr of kwargs, e.g. "{}" */
    const char *origin;     /* the publisher's node name, Celery's "gen<pid>@<host>" */
    const char *reply_to;   /* NULL: no reply_to property */
};

/* What Celery 5 publishes for send_task(name, args, kwargs) with no options: retries 0,
 * root_id = id, parent_id, eta, expires, group, group_index, shadow None, timelimit
 * [None, None], ignore_result False, lang "py"; body [args, kwargs, empty embed].
 * *out is initialised here; release it with celery_outgoing_free, also after failure. */
CW_MUST_CHECK int celery_message_encode_new(const struct celery_new_task *t,
                                            struct celery_outgoing *out, struct cw_error *err);

#endif
