/* Describing a dead-lettered message for `cworker dlq list|replay`. */
#include "ops/dlq_message.h"

#include "mq/json.h"
#include "celery/message.h"
#include "mq/dead_letter.h"
#include "base/utf8.h"
#include "base/xalloc.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define V1_BODY_MAX_DEPTH 32

/* Bytes as a JSON string, bad UTF-8 bytes and NULs shown as '?' (output stays JSON). */
static json_object *text_json(const void *bytes, size_t len)
{
    char *copy = cw_xmalloc(len + 1);
    json_object *j;

    memcpy(copy, bytes, len);
    copy[len] = '\0';
    utf8_repair(copy, len);
    for (size_t i = 0; i < len; i++)
        if (copy[i] == '\0')
            copy[i] = '?';
    j = json_object_new_string_len(copy, (int)len);
    free(copy);
    return j;
}

/* A string header as JSON, or NULL when absent or of another type. */
static json_object *header_text(const amqp_basic_properties_t *p, const char *key)
{
    const amqp_field_value_t *v;

    if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG))
        return NULL;
    v = mq_json_table_get(&p->headers, key);
    if (v == NULL || (v->kind != AMQP_FIELD_KIND_UTF8 && v->kind != AMQP_FIELD_KIND_BYTES))
        return NULL;
    return text_json(v->value.bytes.bytes, v->value.bytes.len);
}

static bool is_json(const amqp_basic_properties_t *p)
{
    const char *ct = p->content_type.bytes;
    size_t n = strlen("application/json");

    if (!(p->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG) || p->content_type.len == 0)
        return true; /* as celery_message_decode: a missing content type is tried as JSON */
    return p->content_type.len >= n && strncasecmp(ct, "application/json", n) == 0;
}

/* The body of a JSON message as a JSON object, or NULL. */
static json_object *body_object(const amqp_basic_properties_t *p, amqp_bytes_t body)
{
    json_tokener *tok;
    json_object *root;

    if (!is_json(p) || body.len == 0 || body.len > (size_t)INT32_MAX)
        return NULL;
    tok = json_tokener_new_ex(V1_BODY_MAX_DEPTH);
    if (tok == NULL)
        return NULL;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    root = json_tokener_parse_ex(tok, body.bytes, (int)body.len);
    if (root == NULL && json_tokener_get_error(tok) == json_tokener_continue)
        root = json_tokener_parse_ex(tok, "", 1);
    json_tokener_free(tok);
    if (root != NULL && !json_object_is_type(root, json_type_object)) {
        json_object_put(root);
        root = NULL;
    }
    return root;
}

static json_object *member_string(json_object *obj, const char *key)
{
    json_object *v;

    if (obj == NULL || !json_object_object_get_ex(obj, key, &v) ||
        !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get(v);
}

/* Task id, name and run id from a message that decodes as a Celery task. */
static bool describe_decoded(const amqp_basic_properties_t *p, amqp_bytes_t body,
                             const char *run_task, json_object *out)
{
    struct celery_task t;
    struct cw_error err;
    long run_id;
    bool ok = celery_message_decode(p, body.bytes, body.len, &t, &err) == 0;

    if (ok) {
        json_object_object_add(out, "task_id", json_object_new_string(t.id));
        json_object_object_add(out, "task", json_object_new_string(t.task));
        if (run_task != NULL && strcmp(t.task, run_task) == 0 &&
            celery_task_int_arg(&t, 0, "run_id", &run_id, &err) == 0)
            json_object_object_add(out, "run_id", json_object_new_int64(run_id));
    }
    celery_task_free(&t);
    return ok;
}

/* What an undecodable message still says: protocol 2 headers, else a v1 object body. */
static void describe_raw(const amqp_basic_properties_t *p, amqp_bytes_t body, json_object *out)
{
    json_object *id = header_text(p, "id"), *task = header_text(p, "task"), *v1 = NULL;

    if (task == NULL) {
        v1 = body_object(p, body);
        if (id == NULL)
            id = member_string(v1, "id");
        task = member_string(v1, "task");
    }
    json_object_object_add(out, "task_id", id);
    json_object_object_add(out, "task", task);
    json_object_put(v1);
}

json_object *dlq_message_describe(const amqp_basic_properties_t *p, amqp_bytes_t body,
                                  long position, const char *run_task)
{
    static const char *const keys[] = {"position",     "task_id",        "task",
                                       "reason",       "original_queue", "dead_lettered_at",
                                       "content_type", "body_bytes",     "run_id"};
    json_object *o = json_object_new_object();

    /* Every key first, in this order, as null: values set later keep their place. */
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        json_object_object_add(o, keys[i], NULL);
    json_object_object_add(o, "position", json_object_new_int64(position));
    if (!describe_decoded(p, body, run_task, o))
        describe_raw(p, body, o);
    json_object_object_add(o, "reason", header_text(p, DEAD_LETTER_REASON));
    json_object_object_add(o, "original_queue", header_text(p, DEAD_LETTER_ORIGINAL_QUEUE));
    json_object_object_add(o, "dead_lettered_at", header_text(p, DEAD_LETTER_AT));
    if (p->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG)
        json_object_object_add(o, "content_type",
                               text_json(p->content_type.bytes, p->content_type.len));
    json_object_object_add(o, "body_bytes", json_object_new_int64((int64_t)body.len));
    return o;
}
