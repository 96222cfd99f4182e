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

json_object *celery_json_string_or_null(const char *s)
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
    json_object_object_add(h, "shadow", celery_json_string_or_null(f->shadow));
    json_object_object_add(h, "eta", eta);
    json_object_object_add(h, "expires", expires);
    json_object_object_add(h, "group", celery_json_string_or_null(f->group));
    json_object_object_add(h, "group_index",
                           f->has_group_index ? json_object_new_int64(f->group_index) : NULL);
    json_object_object_add(h, "retries", json_object_new_int(f->retries));
    json_object_object_add(h, "timelimit", limits);
    json_object_object_add(h, "root_id", celery_json_string_or_null(f->root_id));
    json_object_object_add(h, "parent_id", celery_json_string_or_null(f->parent_id));
    json_object_object_add(h, "argsrepr", celery_json_string_or_null(f->argsrepr));
    json_object_object_add(h, "kwargsrepr", celery_json_string_or_null(f->kwargsrepr));
    json_object_object_add(h, "origin", celery_json_string_or_null(f->origin));
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

void celery_outgoing_init(struct celery_outgoing *out)
{
    memset(out, 0, sizeof(*out));
    init_amqp_pool(&out->pool, 4096);
}

amqp_bytes_t celery_outgoing_str(struct celery_outgoing *out, const char *s)
{
    amqp_bytes_t b;
    b.len = strlen(s);
    b.bytes = amqp_pool_alloc(&out->pool, b.len ? b.len : 1);
    if (b.bytes == NULL)
        abort(); /* out of memory: same policy as cw_xmalloc */
    memcpy(b.bytes, s, b.len);
    return b;
}

int celery_outgoing_fill_json(struct celery_outgoing *out, json_object *headers, json_object *body,
                              uint8_t delivery_mode, struct cw_error *err)
{
    amqp_basic_properties_t *p = &out->props;
    if (headers != NULL) {
        if (mq_json_to_table(headers, &out->pool, &p->headers, err) != 0)
            return -1;
        p->_flags |= AMQP_BASIC_HEADERS_FLAG;
    }
    p->_flags |= AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG |
                 AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_PRIORITY_FLAG;
    p->content_type = celery_outgoing_str(out, "application/json");
    p->content_encoding = celery_outgoing_str(out, "utf-8");
    p->delivery_mode = delivery_mode;
    p->priority = 0;
    /* kombu's json.dumps leaves UTF-8 and '/' alone; so do we (a Python worker reads both). */
    out->body = celery_outgoing_str(
        out, json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN |
                                                      JSON_C_TO_STRING_NOSLASHESCAPE));
    return 0;
}

int celery_outgoing_fill(struct celery_outgoing *out, json_object *headers, json_object *body,
                         const char *correlation_id, const char *reply_to, struct cw_error *err)
{
    amqp_basic_properties_t *p = &out->props;
    /* delivery_mode 2: persistent, as Celery publishes tasks */
    if (celery_outgoing_fill_json(out, headers, body, 2, err) != 0)
        return -1;
    p->_flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
    p->correlation_id = celery_outgoing_str(out, correlation_id);
    if (reply_to != NULL) {
        p->_flags |= AMQP_BASIC_REPLY_TO_FLAG;
        p->reply_to = celery_outgoing_str(out, reply_to);
    }
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
