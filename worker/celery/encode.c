/* Outgoing Celery protocol 2 messages: shared headers/body/properties, and new tasks.
 *
 * A message must be one a Python Celery worker runs exactly as if Celery had sent it, so
 * headers follow Celery's as_task_v2 (celery/app/amqp.py) and carry the wire types
 * py-amqp reads back as the same Python values (mq_json_to_table). */
#include "celery/encode.h"

#include "celery/time.h"
#include "mq/json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static json_object *string_or_null(const char *s)
{
    return s != NULL ? json_object_new_string(s) : NULL;
}

/* Time limits keep Python's int when they are whole seconds (Celery compares them). */
static json_object *seconds_or_null(bool has, double v)
{
    if (!has)
        return NULL;
    if (v == floor(v) && fabs(v) < 9e15)
        return json_object_new_int64((int64_t)v);
    return json_object_new_double(v);
}

static int iso_or_null(bool has, double epoch, const char *what, json_object **out,
                       struct cw_error *err)
{
    char buf[64];

    *out = NULL;
    if (!has)
        return 0;
    celery_format_iso8601(epoch, buf, sizeof(buf));
    if (buf[0] == '\0') {
        CW_FAIL(err, CW_ERR_INTERNAL, "%s %g is not a representable time", what, epoch);
        return -1;
    }
    *out = json_object_new_string(buf);
    return 0;
}

int celery_encode_headers(const struct celery_v2_headers *f, json_object **out,
                          struct cw_error *err)
{
    json_object *h, *eta = NULL, *expires = NULL, *limits;

    *out = NULL;
    if (f->id == NULL || f->id[0] == '\0' || f->task == NULL || f->task[0] == '\0') {
        CW_FAIL(err, CW_ERR_INTERNAL, "task has no id or name");
        return -1;
    }
    if (iso_or_null(f->has_eta, f->eta, "eta", &eta, err) != 0 ||
        iso_or_null(f->has_expires, f->expires, "expires", &expires, err) != 0) {
        json_object_put(eta);
        return -1;
    }
    limits = json_object_new_array_ext(2);
    json_object_array_add(limits, seconds_or_null(f->has_time_limit, f->time_limit));
    json_object_array_add(limits, seconds_or_null(f->has_soft_time_limit, f->soft_time_limit));
    h = json_object_new_object();
    json_object_object_add(h, "lang", json_object_new_string("py"));
    json_object_object_add(h, "task", json_object_new_string(f->task));
    json_object_object_add(h, "id", json_object_new_string(f->id));
    json_object_object_add(h, "shadow", string_or_null(f->shadow));
    json_object_object_add(h, "eta", eta);
    json_object_object_add(h, "expires", expires);
    json_object_object_add(h, "group", string_or_null(f->group));
    json_object_object_add(h, "group_index",
                           f->has_group_index ? json_object_new_int64(f->group_index) : NULL);
    json_object_object_add(h, "retries", json_object_new_int(f->retries));
    json_object_object_add(h, "timelimit", limits);
    json_object_object_add(h, "root_id", string_or_null(f->root_id));
    json_object_object_add(h, "parent_id", string_or_null(f->parent_id));
    json_object_object_add(h, "argsrepr", string_or_null(f->argsrepr));
    json_object_object_add(h, "kwargsrepr", string_or_null(f->kwargsrepr));
    json_object_object_add(h, "origin", string_or_null(f->origin));
    json_object_object_add(h, "ignore_result", json_object_new_boolean(f->ignore_result));
    *out = h;
    return 0;
}

json_object *celery_encode_body(json_object *args, json_object *kwargs, json_object *embed)
{
    json_object *body = json_object_new_array_ext(3), *e;

    json_object_array_add(body, args ? json_object_get(args) : json_object_new_array());
    json_object_array_add(body, kwargs ? json_object_get(kwargs) : json_object_new_object());
    if (embed != NULL) {
        e = json_object_get(embed);
    } else {
        e = json_object_new_object();
        json_object_object_add(e, "callbacks", NULL);
        json_object_object_add(e, "errbacks", NULL);
        json_object_object_add(e, "chain", NULL);
        json_object_object_add(e, "chord", NULL);
    }
    json_object_array_add(body, e);
    return body;
}

static amqp_bytes_t pool_copy(amqp_pool_t *pool, const char *s, size_t len)
{
    amqp_bytes_t b;

    b.bytes = amqp_pool_alloc(pool, len ? len : 1);
    if (b.bytes == NULL)
        abort(); /* out of memory: same policy as cw_xmalloc */
    if (len)
        memcpy(b.bytes, s, len);
    b.len = len;
    return b;
}

static amqp_bytes_t pool_str(amqp_pool_t *pool, const char *s)
{
    return pool_copy(pool, s, strlen(s));
}

static void set_properties(struct celery_outgoing *out, const char *correlation_id,
                           const char *reply_to)
{
    amqp_basic_properties_t *p = &out->props;

    p->_flags |= AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG |
                 AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_PRIORITY_FLAG |
                 AMQP_BASIC_CORRELATION_ID_FLAG;
    p->content_type = pool_str(&out->pool, "application/json");
    p->content_encoding = pool_str(&out->pool, "utf-8");
    p->delivery_mode = 2; /* persistent, as Celery publishes tasks */
    p->priority = 0;
    p->correlation_id = pool_str(&out->pool, correlation_id);
    if (reply_to != NULL) {
        p->_flags |= AMQP_BASIC_REPLY_TO_FLAG;
        p->reply_to = pool_str(&out->pool, reply_to);
    }
}

void celery_outgoing_init(struct celery_outgoing *out)
{
    memset(out, 0, sizeof(*out));
    init_amqp_pool(&out->pool, 4096);
}

int celery_outgoing_fill(struct celery_outgoing *out, json_object *headers, json_object *body,
                         const char *correlation_id, const char *reply_to, struct cw_error *err)
{
    const char *text;

    if (mq_json_to_table(headers, &out->pool, &out->props.headers, err) != 0)
        return -1;
    out->props._flags |= AMQP_BASIC_HEADERS_FLAG;
    set_properties(out, correlation_id, reply_to);
    /* kombu's json.dumps leaves UTF-8 and '/' alone; so do we (a Python worker reads both). */
    text = json_object_to_json_string_ext(body,
                                          JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    out->body = pool_copy(&out->pool, text, strlen(text));
    return 0;
}

void celery_outgoing_free(struct celery_outgoing *out)
{
    empty_amqp_pool(&out->pool);
    memset(out, 0, sizeof(*out));
}

int celery_encode_message(const struct celery_v2_headers *h, json_object *body,
                          const char *reply_to, struct celery_outgoing *out, struct cw_error *err)
{
    json_object *headers = NULL;
    int rc = celery_encode_headers(h, &headers, err) == 0 &&
                     celery_outgoing_fill(out, headers, body, h->id, reply_to, err) == 0
                 ? 0
                 : -1;
    json_object_put(headers);
    json_object_put(body);
    return rc;
}

int celery_message_encode_new(const struct celery_new_task *t, struct celery_outgoing *out,
                              struct cw_error *err)
{
    /* send_task with no options: a root task (root_id = id, no parent), no eta/expires. */
    struct celery_v2_headers h = {
        .task = t->task,
        .id = t->id,
        .root_id = t->id,
        .argsrepr = t->argsrepr,
        .kwargsrepr = t->kwargsrepr,
        .origin = t->origin,
    };
    celery_outgoing_init(out);
    if (celery_encode_message(&h, celery_encode_body(t->args, t->kwargs, NULL), t->reply_to, out,
                              err) != 0) {
        CW_WRAP(err, "encoding new task %s", t->task ? t->task : "?");
        return -1;
    }
    return 0;
}
