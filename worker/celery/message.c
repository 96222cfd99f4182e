/* Decoding Celery task messages (protocol 1 and 2, JSON) into struct celery_task.
 *
 * Both protocols end up as JSON "sources" read by the same field readers: the protocol 2
 * headers (an AMQP table converted by amqp_json) and/or the protocol 1 body object. For a
 * hybrid message (v2 headers, v1 object body) headers win and the body fills the gaps,
 * as Celery's hybrid_to_proto2 does. */
#include "celery/message.h"

#include "celery/time.h"
#include "mq/json.h"
#include "celery/json_body.h"
#include "celery/kombu_json.h"
#include "base/xalloc.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Deep enough for chains of signatures in `embed`; bounds recursion on hostile input. */
#define BODY_MAX_DEPTH 64

/* Where a field is looked up: `primary` first, then `fallback`. Either may be NULL. */
struct sources {
    json_object *primary;
    json_object *fallback;
};

/* Protocol 2 headers we read or keep on retry; anything else is ignored, so an odd
 * header a tool added can never make a good message undecodable. */
static const char *const known_headers[] = {
    "lang",     "task",        "id",      "shadow",        "eta",     "expires",
    "group",    "group_index", "retries", "timelimit",     "root_id", "parent_id",
    "argsrepr", "kwargsrepr",  "origin",  "ignore_result", NULL,
};

/* Rewrites the error's one-line message as "<prefix>: <message>" so the dead-letter
 * reason names the field, and records the context frame. */
static void prefix_message(struct cw_error *err, const char *prefix)
{
    char old[sizeof(err->message)];

    snprintf(old, sizeof(old), "%s", err->message);
    snprintf(err->message, sizeof(err->message), "%.63s: %.300s", prefix, old);
    CW_WRAP(err, "%s", prefix);
}

/* Copies untrusted bytes for an error message: at most 80, non-printables as '?'. */
static void printable(const void *data, size_t len, char *out, size_t outlen)
{
    const unsigned char *p = data;
    size_t n = len < 80 ? len : 80;
    size_t i;

    for (i = 0; i < n && i + 1 < outlen; i++)
        out[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
    out[i] = '\0';
}

/* A copy of AMQP bytes as a C string; fails when they contain NUL (the copy would
 * silently be shorter than what was sent). */
static int bytes_to_cstr(amqp_bytes_t b, const char *what, char **out, struct cw_error *err)
{
    if (b.len > 0 && memchr(b.bytes, '\0', b.len) != NULL) {
        CW_FAIL(err, CW_ERR_PERMANENT, "%s contains a NUL byte", what);
        return -1;
    }
    *out = cw_xstrndup(b.len ? b.bytes : "", b.len);
    return 0;
}

/* "application/json", any case, optionally with parameters ("; charset=utf-8"). */
static bool is_json_content_type(const char *ct)
{
    size_t n = strlen("application/json");

    if (strncasecmp(ct, "application/json", n) != 0)
        return false;
    return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

static int check_content_type(const amqp_basic_properties_t *props, struct celery_task *out,
                              struct cw_error *err)
{
    char shown[96];

    if (props == NULL || !(props->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG))
        return 0; /* no content type: tried as JSON */
    out->content_type = cw_xstrndup(props->content_type.len ? props->content_type.bytes : "",
                                    props->content_type.len);
    if (strlen(out->content_type) == props->content_type.len &&
        is_json_content_type(out->content_type))
        return 0;
    printable(props->content_type.bytes, props->content_type.len, shown, sizeof(shown));
    CW_FAIL(err, CW_ERR_PERMANENT, "unsupported content type %s", shown);
    return -1;
}

/* kombu sends JSON as utf-8; another encoding would need transcoding we do not do. */
static int check_content_encoding(const amqp_basic_properties_t *props, struct cw_error *err)
{
    char enc[96];

    if (props == NULL || !(props->_flags & AMQP_BASIC_CONTENT_ENCODING_FLAG))
        return 0;
    printable(props->content_encoding.bytes, props->content_encoding.len, enc, sizeof(enc));
    if (props->content_encoding.len == strlen(enc) &&
        (strcasecmp(enc, "utf-8") == 0 || strcasecmp(enc, "utf8") == 0))
        return 0;
    CW_FAIL(err, CW_ERR_PERMANENT, "unsupported content encoding %s", enc);
    return -1;
}

static const amqp_table_t *headers_of(const amqp_basic_properties_t *props)
{
    if (props == NULL || !(props->_flags & AMQP_BASIC_HEADERS_FLAG))
        return NULL;
    return &props->headers;
}

/* kombu's compression= sets a `compression` header and compresses the body. */
static int check_compression(const amqp_table_t *headers, struct cw_error *err)
{
    const amqp_field_value_t *v = mq_json_table_get(headers, "compression");
    char shown[96] = "?";

    if (v == NULL || v->kind == AMQP_FIELD_KIND_VOID)
        return 0;
    if (v->kind == AMQP_FIELD_KIND_UTF8 || v->kind == AMQP_FIELD_KIND_BYTES)
        printable(v->value.bytes.bytes, v->value.bytes.len, shown, sizeof(shown));
    CW_FAIL(err, CW_ERR_PERMANENT, "unsupported compression %s", shown);
    return -1;
}

static int decode_properties(const amqp_basic_properties_t *props, struct celery_task *out,
                             struct cw_error *err)
{
    if (check_content_type(props, out, err) != 0 || check_content_encoding(props, err) != 0 ||
        check_compression(headers_of(props), err) != 0)
        return -1;
    if (props == NULL)
        return 0;
    if ((props->_flags & AMQP_BASIC_REPLY_TO_FLAG) &&
        bytes_to_cstr(props->reply_to, "property reply_to", &out->reply_to, err) != 0)
        return -1;
    if ((props->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) &&
        bytes_to_cstr(props->correlation_id, "property correlation_id", &out->correlation_id,
                      err) != 0)
        return -1;
    return 0;
}

/* The known headers as one JSON object (a present None is a JSON null member). */
static int collect_headers(const amqp_table_t *headers, json_object **out, struct cw_error *err)
{
    json_object *obj = json_object_new_object();
    char prefix[64];

    for (size_t i = 0; known_headers[i] != NULL; i++) {
        const amqp_field_value_t *v = mq_json_table_get(headers, known_headers[i]);
        json_object *j = NULL;
        if (v == NULL)
            continue;
        if (mq_json_from_field(v, &j, err) != 0) {
            snprintf(prefix, sizeof(prefix), "header %s", known_headers[i]);
            prefix_message(err, prefix);
            json_object_put(obj);
            return -1;
        }
        json_object_object_add(obj, known_headers[i], j);
    }
    *out = obj;
    return 0;
}

/* Looks key up in the sources. Returns true when present (*v may then be NULL = None). */
static bool source_get(const struct sources *src, const char *key, json_object **v)
{
    if (src->primary != NULL && json_object_object_get_ex(src->primary, key, v))
        return true;
    if (src->fallback != NULL && json_object_object_get_ex(src->fallback, key, v))
        return true;
    *v = NULL;
    return false;
}

/* An optional string field: absent or None leaves *out NULL. */
static int get_string(const struct sources *src, const char *key, char **out, struct cw_error *err)
{
    json_object *v;

    if (!source_get(src, key, &v) || v == NULL)
        return 0;
    if (!json_object_is_type(v, json_type_string)) {
        CW_FAIL(err, CW_ERR_PERMANENT, "%s is not a string", key);
        return -1;
    }
    if (strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v)) {
        CW_FAIL(err, CW_ERR_PERMANENT, "%s contains a NUL character", key);
        return -1;
    }
    *out = cw_xstrdup(json_object_get_string(v));
    return 0;
}

static int get_required_string(const struct sources *src, const char *key, const char *what,
                               char **out, struct cw_error *err)
{
    if (get_string(src, key, out, err) != 0)
        return -1;
    if (*out == NULL || (*out)[0] == '\0') {
        CW_FAIL(err, CW_ERR_PERMANENT, "missing %s", what);
        return -1;
    }
    return 0;
}

/* retries: absent or None is 0; capped so that retries + 1 stays an int. */
static int get_retries(const struct sources *src, int *out, struct cw_error *err)
{
    json_object *v;
    int64_t n;

    if (!source_get(src, "retries", &v) || v == NULL) {
        *out = 0;
        return 0;
    }
    n = json_object_get_int64(v);
    if (!json_object_is_type(v, json_type_int) || n < 0 || n > INT_MAX - 1) {
        CW_FAIL(err, CW_ERR_PERMANENT, "retries is not an integer in 0..%d", INT_MAX - 1);
        return -1;
    }
    *out = (int)n;
    return 0;
}

static int get_group_index(const struct sources *src, struct celery_task *out, struct cw_error *err)
{
    json_object *v;

    if (!source_get(src, "group_index", &v) || v == NULL)
        return 0;
    if (!json_object_is_type(v, json_type_int)) {
        CW_FAIL(err, CW_ERR_PERMANENT, "group_index is not an integer");
        return -1;
    }
    out->has_group_index = true;
    out->group_index = (long)json_object_get_int64(v);
    return 0;
}

/* eta / expires: an ISO-8601 string or None. */
static int get_time(const struct sources *src, const char *key, bool *has, double *out,
                    struct cw_error *err)
{
    json_object *v;

    if (!source_get(src, key, &v) || v == NULL)
        return 0;
    if (!json_object_is_type(v, json_type_string) ||
        strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v) ||
        celery_parse_iso8601(json_object_get_string(v), out) != 0) {
        char shown[96];
        printable(json_object_get_string(v), strlen(json_object_get_string(v)), shown,
                  sizeof(shown));
        CW_FAIL(err, CW_ERR_PERMANENT, "%s is not an ISO-8601 time: %s", key, shown);
        return -1;
    }
    *has = true;
    return 0;
}

/* One timelimit element: None, or a finite non-negative number of seconds. */
static int limit_value(json_object *v, bool *has, double *out)
{
    double d;

    if (v == NULL)
        return 0;
    if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
        return -1;
    d = json_object_get_double(v);
    if (!isfinite(d) || d < 0)
        return -1;
    *has = true;
    *out = d;
    return 0;
}

/* timelimit is [hard, soft] in both protocols; absent or None means no limits. */
static int get_timelimit(const struct sources *src, struct celery_task *out, struct cw_error *err)
{
    json_object *v;

    if (!source_get(src, "timelimit", &v) || v == NULL)
        return 0;
    if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) != 2 ||
        limit_value(json_object_array_get_idx(v, 0), &out->has_time_limit, &out->time_limit) != 0 ||
        limit_value(json_object_array_get_idx(v, 1), &out->has_soft_time_limit,
                    &out->soft_time_limit) != 0) {
        CW_FAIL(err, CW_ERR_PERMANENT, "timelimit is not [hard, soft] seconds or None");
        return -1;
    }
    return 0;
}

static int get_bool(const struct sources *src, const char *key, bool *out, struct cw_error *err)
{
    json_object *v;

    if (!source_get(src, key, &v) || v == NULL)
        return 0;
    if (!json_object_is_type(v, json_type_boolean)) {
        CW_FAIL(err, CW_ERR_PERMANENT, "%s is not a boolean", key);
        return -1;
    }
    *out = json_object_get_boolean(v);
    return 0;
}

static int decode_fields(const struct sources *src, struct celery_task *out, struct cw_error *err)
{
    if (get_required_string(src, "id", "task id", &out->id, err) != 0 ||
        get_required_string(src, "task", "task name", &out->task, err) != 0 ||
        get_retries(src, &out->retries, err) != 0 ||
        get_string(src, "root_id", &out->root_id, err) != 0 ||
        get_string(src, "parent_id", &out->parent_id, err) != 0 ||
        get_string(src, "group", &out->group, err) != 0 ||
        get_string(src, "origin", &out->origin, err) != 0 ||
        get_string(src, "argsrepr", &out->argsrepr, err) != 0 ||
        get_string(src, "kwargsrepr", &out->kwargsrepr, err) != 0 ||
        get_string(src, "shadow", &out->shadow, err) != 0 ||
        get_time(src, "eta", &out->has_eta, &out->eta, err) != 0 ||
        get_time(src, "expires", &out->has_expires, &out->expires, err) != 0 ||
        get_timelimit(src, out, err) != 0 || get_group_index(src, out, err) != 0 ||
        get_bool(src, "ignore_result", &out->ignore_result, err) != 0)
        return -1;
    /* Protocol 1 calls the group "taskset". */
    if (out->group == NULL && get_string(src, "taskset", &out->group, err) != 0)
        return -1;
    return 0;
}

/* Sets t->args/kwargs/embed from the wire body [args, kwargs, embed], unwrapping kombu
 * markers in copies so that wire_body keeps them for the retry. */
static int take_wire_body(struct celery_task *t, struct cw_error *err)
{
    json_object *parts[3];
    json_object **dst[3] = {&t->args, &t->kwargs, &t->embed};

    for (size_t i = 0; i < 3; i++) {
        parts[i] = json_object_array_get_idx(t->wire_body, i);
        if (parts[i] == NULL)
            continue;
        if (json_object_deep_copy(parts[i], dst[i], NULL) != 0)
            abort(); /* only fails on allocation */
        if (kombu_json_unwrap(dst[i], err) != 0)
            return -1;
    }
    if (!json_object_is_type(t->args, json_type_array)) {
        CW_FAIL(err, CW_ERR_PERMANENT, "args is not a list");
        return -1;
    }
    if (!json_object_is_type(t->kwargs, json_type_object)) {
        CW_FAIL(err, CW_ERR_PERMANENT, "kwargs is not an object");
        return -1;
    }
    if (t->embed != NULL && !json_object_is_type(t->embed, json_type_object)) {
        CW_FAIL(err, CW_ERR_PERMANENT, "embed is not an object");
        return -1;
    }
    return 0;
}

/* A new reference to obj[key], or NULL (None) when absent. */
static json_object *member(json_object *obj, const char *key)
{
    json_object *v;

    return json_object_object_get_ex(obj, key, &v) ? json_object_get(v) : NULL;
}

/* A protocol 1 (or hybrid) object body rebuilt as the protocol 2 body, as Celery's
 * proto1_to_proto2 does: args default [], kwargs {}, embed from callbacks/errbacks/chord. */
static json_object *v1_wire_body(json_object *body)
{
    json_object *wire = json_object_new_array_ext(3);
    json_object *embed = json_object_new_object();

    json_object *args = member(body, "args"), *kwargs = member(body, "kwargs");

    json_object_object_add(embed, "callbacks", member(body, "callbacks"));
    json_object_object_add(embed, "errbacks", member(body, "errbacks"));
    json_object_object_add(embed, "chain", NULL);
    json_object_object_add(embed, "chord", member(body, "chord"));
    /* Absent means empty; a present null stays null and fails the type check. */
    if (!json_object_object_get_ex(body, "args", NULL))
        args = json_object_new_array();
    if (!json_object_object_get_ex(body, "kwargs", NULL))
        kwargs = json_object_new_object();
    json_object_array_add(wire, args);
    json_object_array_add(wire, kwargs);
    json_object_array_add(wire, embed);
    return wire;
}

/* Chooses the protocol from the task header and the body's shape. Takes over `body`
 * (into t->wire_body or freed). */
static int decode_shape(json_object *headers, json_object *body, struct celery_task *t,
                        struct sources *src, struct cw_error *err)
{
    bool v2 = json_object_object_get_ex(headers, "task", NULL);

    src->primary = v2 ? headers : body;
    src->fallback = NULL;
    t->protocol = v2 ? 2 : 1;
    if (json_object_is_type(body, json_type_object)) {
        if (v2)
            src->fallback = body;
        t->wire_body = v1_wire_body(body);
        return 0;
    }
    if (v2 && json_object_is_type(body, json_type_array) && json_object_array_length(body) == 3) {
        t->wire_body = json_object_get(body);
        return 0;
    }
    CW_FAIL(err, CW_ERR_PERMANENT, "%s",
            v2 ? "protocol 2 body is not [args, kwargs, embed]"
               : "message has no task header and its body is not a protocol 1 object");
    return -1;
}

/* Quorum queues count redeliveries in x-delivery-count (a long); anything else: none. */
static long delivery_count_of(const amqp_basic_properties_t *props)
{
    const amqp_field_value_t *v = mq_json_table_get(headers_of(props), "x-delivery-count");
    if (!v)
        return 0;
    switch (v->kind) {
    case AMQP_FIELD_KIND_I8:
        return v->value.i8 > 0 ? v->value.i8 : 0;
    case AMQP_FIELD_KIND_I16:
        return v->value.i16 > 0 ? v->value.i16 : 0;
    case AMQP_FIELD_KIND_I32:
        return v->value.i32 > 0 ? v->value.i32 : 0;
    case AMQP_FIELD_KIND_I64:
        return v->value.i64 > 0 && v->value.i64 < INT_MAX ? (long)v->value.i64 : 0;
    default:
        return 0;
    }
}

int celery_message_decode(const amqp_basic_properties_t *props, const void *body, size_t body_len,
                          struct celery_task *out, struct cw_error *err)
{
    json_object *headers = NULL, *root = NULL;
    struct sources src;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    /* The content type is checked before the body is looked at: never parse pickle. */
    if (decode_properties(props, out, err) != 0 ||
        collect_headers(headers_of(props), &headers, err) != 0 ||
        celery_json_body_parse(body, body_len, BODY_MAX_DEPTH, &root, err) != 0)
        goto out;
    if (decode_shape(headers, root, out, &src, err) != 0 || decode_fields(&src, out, err) != 0 ||
        take_wire_body(out, err) != 0)
        goto out;
    out->delivery_count = props ? delivery_count_of(props) : 0;
    rc = 0;
out:
    json_object_put(root);
    json_object_put(headers);
    if (rc != 0)
        CW_WRAP(err, "decoding a task message");
    return rc;
}

void celery_task_free(struct celery_task *t)
{
    char **strings[] = {&t->id,     &t->task,     &t->root_id,        &t->parent_id,
                        &t->group,  &t->origin,   &t->argsrepr,       &t->kwargsrepr,
                        &t->shadow, &t->reply_to, &t->correlation_id, &t->content_type};

    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
        free(*strings[i]);
    json_object_put(t->args);
    json_object_put(t->kwargs);
    json_object_put(t->embed);
    json_object_put(t->wire_body);
    memset(t, 0, sizeof(*t));
}
