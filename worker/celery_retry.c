/* Encoding the protocol 2 message Celery's Task.retry() publishes for a decoded task.
 *
 * The message must be one a Python Celery worker on the same queue runs correctly, so
 * headers follow Celery's as_task_v2 and carry the wire types py-amqp reads back as the
 * same Python values (amqp_json_to_table). */
#include "celery_message.h"

#include "amqp_json.h"

#include <limits.h>
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

/* The headers as_task_v2 writes, with the retry's changes: retries + 1, the new eta, and
 * parent/root defaulting to the task itself (Celery takes them from the current task). */
static int retry_headers(const struct celery_task *t, double eta, json_object **out,
                         struct cw_error *err)
{
    json_object *h = json_object_new_object();
    json_object *eta_j = NULL, *expires_j = NULL, *limits = json_object_new_array_ext(2);

    if (iso_or_null(true, eta, "eta", &eta_j, err) != 0 ||
        iso_or_null(t->has_expires, t->expires, "expires", &expires_j, err) != 0) {
        json_object_put(limits);
        json_object_put(eta_j);
        json_object_put(h);
        return -1;
    }
    json_object_array_add(limits, seconds_or_null(t->has_time_limit, t->time_limit));
    json_object_array_add(limits, seconds_or_null(t->has_soft_time_limit, t->soft_time_limit));
    json_object_object_add(h, "lang", json_object_new_string("py"));
    json_object_object_add(h, "task", json_object_new_string(t->task));
    json_object_object_add(h, "id", json_object_new_string(t->id));
    json_object_object_add(h, "shadow", string_or_null(t->shadow));
    json_object_object_add(h, "eta", eta_j);
    json_object_object_add(h, "expires", expires_j);
    json_object_object_add(h, "group", string_or_null(t->group));
    json_object_object_add(h, "group_index",
                           t->has_group_index ? json_object_new_int64(t->group_index) : NULL);
    json_object_object_add(h, "retries", json_object_new_int(t->retries + 1));
    json_object_object_add(h, "timelimit", limits);
    json_object_object_add(h, "root_id", json_object_new_string(t->root_id ? t->root_id : t->id));
    json_object_object_add(h, "parent_id",
                           json_object_new_string(t->parent_id ? t->parent_id : t->id));
    json_object_object_add(h, "argsrepr", string_or_null(t->argsrepr));
    json_object_object_add(h, "kwargsrepr", string_or_null(t->kwargsrepr));
    json_object_object_add(h, "origin", string_or_null(t->origin));
    json_object_object_add(h, "ignore_result", json_object_new_boolean(t->ignore_result));
    *out = h;
    return 0;
}

/* The wire body as received (kombu markers intact), else rebuilt from the decoded parts. */
static json_object *retry_body(const struct celery_task *t)
{
    json_object *body, *embed;

    if (t->wire_body != NULL)
        return json_object_get(t->wire_body);
    body = json_object_new_array_ext(3);
    json_object_array_add(body, t->args ? json_object_get(t->args) : json_object_new_array());
    json_object_array_add(body, t->kwargs ? json_object_get(t->kwargs) : json_object_new_object());
    if (t->embed != NULL) {
        embed = json_object_get(t->embed);
    } else {
        embed = json_object_new_object();
        json_object_object_add(embed, "callbacks", NULL);
        json_object_object_add(embed, "errbacks", NULL);
        json_object_object_add(embed, "chain", NULL);
        json_object_object_add(embed, "chord", NULL);
    }
    json_object_array_add(body, embed);
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

static void retry_properties(const struct celery_task *t, struct celery_outgoing *out)
{
    amqp_basic_properties_t *p = &out->props;

    p->_flags |= AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG |
                 AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_PRIORITY_FLAG |
                 AMQP_BASIC_CORRELATION_ID_FLAG;
    p->content_type = pool_str(&out->pool, "application/json");
    p->content_encoding = pool_str(&out->pool, "utf-8");
    p->delivery_mode = 2; /* persistent, as Celery publishes tasks */
    p->priority = 0;
    p->correlation_id = pool_str(&out->pool, t->id);
    if (t->reply_to != NULL) {
        p->_flags |= AMQP_BASIC_REPLY_TO_FLAG;
        p->reply_to = pool_str(&out->pool, t->reply_to);
    }
}

static int check_task(const struct celery_task *t, double eta, struct cw_error *err)
{
    if (t->id == NULL || t->id[0] == '\0' || t->task == NULL || t->task[0] == '\0') {
        CW_FAIL(err, CW_ERR_INTERNAL, "task has no id or name");
        return -1;
    }
    if (t->retries < 0 || t->retries >= INT_MAX) {
        CW_FAIL(err, CW_ERR_INTERNAL, "retries %d cannot be incremented", t->retries);
        return -1;
    }
    if (!isfinite(eta)) {
        CW_FAIL(err, CW_ERR_INTERNAL, "eta is not finite");
        return -1;
    }
    return 0;
}

int celery_message_encode_retry(const struct celery_task *t, double now, double countdown,
                                struct celery_outgoing *out, struct cw_error *err)
{
    json_object *headers = NULL, *body = NULL;
    const char *text;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    init_amqp_pool(&out->pool, 4096);
    if (check_task(t, now + countdown, err) != 0 ||
        retry_headers(t, now + countdown, &headers, err) != 0)
        goto out;
    if (amqp_json_to_table(headers, &out->pool, &out->props.headers, err) != 0)
        goto out;
    out->props._flags |= AMQP_BASIC_HEADERS_FLAG;
    retry_properties(t, out);
    body = retry_body(t);
    text = json_object_to_json_string_ext(body,
                                          JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    out->body = pool_copy(&out->pool, text, strlen(text));
    rc = 0;
out:
    json_object_put(body);
    json_object_put(headers);
    if (rc != 0)
        CW_WRAP(err, "encoding the retry of task %s", t->id ? t->id : "?");
    return rc;
}

void celery_outgoing_free(struct celery_outgoing *out)
{
    empty_amqp_pool(&out->pool);
    memset(out, 0, sizeof(*out));
}
