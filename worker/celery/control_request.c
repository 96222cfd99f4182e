/* Remote control requests as kombu's Mailbox publishes them: decoding the pidbox message
 * and deciding whether it is addressed to this node (kombu/pidbox.py). */
#include "celery/control_request.h"

#include "celery/json_body.h"
#include "mq/json.h"
#include "base/xalloc.h"

#include <fnmatch.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#define REQUEST_MAX_DEPTH 32

/* ---- decoding ---- */

static int parse_object(const void *body, size_t len, json_object **out, struct cw_error *err)
{
    if (celery_json_body_parse(body, len, REQUEST_MAX_DEPTH, out, err) != 0)
        return -1;
    if (!json_object_is_type(*out, json_type_object)) {
        json_object_put(*out);
        *out = NULL;
        CW_FAIL(err, CW_ERR_PERMANENT, "body is not a JSON object");
        return -1;
    }
    return 0;
}

static int check_content_type(const amqp_basic_properties_t *props, struct cw_error *err)
{
    static const char json[] = "application/json";
    if (props == NULL || !(props->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG))
        return 0;
    if (props->content_type.len == sizeof json - 1 &&
        memcmp(props->content_type.bytes, json, sizeof json - 1) == 0)
        return 0;
    CW_FAIL(err, CW_ERR_PERMANENT, "unsupported content type %.*s",
            (int)(props->content_type.len > 64 ? 64 : props->content_type.len),
            (const char *)props->content_type.bytes);
    return -1;
}

/* A string member, or NULL for absent/null; anything else fails. */
static int member_string(json_object *obj, const char *key, char **out, struct cw_error *err)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(obj, key, &v) || v == NULL)
        return 0;
    if (!json_object_is_type(v, json_type_string)) {
        CW_FAIL(err, CW_ERR_PERMANENT, "%s is not a string", key);
        return -1;
    }
    *out = cw_xstrdup(json_object_get_string(v));
    return 0;
}

static int decode_destination(json_object *body, struct celery_control_request *r,
                              struct cw_error *err)
{
    json_object *d = NULL;
    if (!json_object_object_get_ex(body, "destination", &d) || d == NULL)
        return 0;
    if (json_object_is_type(d, json_type_string)) { /* not what kombu sends: one node */
        r->destination = json_object_new_array();
        json_object_array_add(r->destination, json_object_get(d));
        return 0;
    }
    if (!json_object_is_type(d, json_type_array)) {
        CW_FAIL(err, CW_ERR_PERMANENT, "destination is not a list");
        return -1;
    }
    r->destination = json_object_get(d);
    return 0;
}

static int decode_reply_to(json_object *body, struct celery_control_request *r,
                           struct cw_error *err)
{
    json_object *rt = NULL;
    if (!json_object_object_get_ex(body, "reply_to", &rt) || rt == NULL)
        return 0;
    if (json_object_is_type(rt, json_type_object)) {
        if (member_string(rt, "exchange", &r->reply_exchange, err) != 0 ||
            member_string(rt, "routing_key", &r->reply_routing_key, err) != 0)
            return -1;
        if (r->reply_exchange != NULL && r->reply_routing_key != NULL)
            return 0;
    }
    CW_FAIL(err, CW_ERR_PERMANENT, "reply_to is not {exchange, routing_key}");
    return -1;
}

static void decode_headers(const amqp_basic_properties_t *props, struct celery_control_request *r)
{
    if (props == NULL || !(props->_flags & AMQP_BASIC_HEADERS_FLAG))
        return;
    const amqp_field_value_t *v = mq_json_table_get(&props->headers, "clock");
    json_object *j = NULL;
    struct cw_error ignored;
    if (v != NULL && mq_json_from_field(v, &j, &ignored) == 0 &&
        json_object_is_type(j, json_type_int) && json_object_get_int64(j) > 0)
        r->clock = (uint64_t)json_object_get_int64(j);
    json_object_put(j);
    j = NULL;
    v = mq_json_table_get(&props->headers, "expires");
    if (v != NULL && mq_json_from_field(v, &j, &ignored) == 0 &&
        (json_object_is_type(j, json_type_int) || json_object_is_type(j, json_type_double)))
        r->expires = json_object_get_double(j);
    json_object_put(j);
}

static int decode_fields(json_object *body, struct celery_control_request *r, struct cw_error *err)
{
    json_object *a = NULL;
    if (member_string(body, "method", &r->method, err) != 0)
        return -1;
    if (r->method == NULL || r->method[0] == '\0') {
        CW_FAIL(err, CW_ERR_PERMANENT, "no method");
        return -1;
    }
    if (json_object_object_get_ex(body, "arguments", &a) && a != NULL &&
        !json_object_is_type(a, json_type_object)) {
        CW_FAIL(err, CW_ERR_PERMANENT, "arguments is not an object");
        return -1;
    }
    r->arguments = a != NULL ? json_object_get(a) : json_object_new_object();
    if (member_string(body, "pattern", &r->pattern, err) != 0 ||
        member_string(body, "matcher", &r->matcher, err) != 0 ||
        member_string(body, "ticket", &r->ticket, err) != 0 ||
        decode_destination(body, r, err) != 0 || decode_reply_to(body, r, err) != 0)
        return -1;
    return 0;
}

int celery_control_decode(const amqp_basic_properties_t *props, const void *body, size_t body_len,
                          struct celery_control_request *out, struct cw_error *err)
{
    json_object *root = NULL;
    memset(out, 0, sizeof *out);
    if (check_content_type(props, err) != 0 || parse_object(body, body_len, &root, err) != 0 ||
        decode_fields(root, out, err) != 0) {
        json_object_put(root);
        CW_WRAP(err, "decoding a remote control request");
        return -1;
    }
    json_object_put(root);
    decode_headers(props, out);
    return 0;
}

void celery_control_request_free(struct celery_control_request *r)
{
    free(r->method);
    json_object_put(r->arguments);
    json_object_put(r->destination);
    free(r->pattern);
    free(r->matcher);
    free(r->ticket);
    free(r->reply_exchange);
    free(r->reply_routing_key);
    memset(r, 0, sizeof *r);
}

/* ---- node selection ---- */

/* kombu's "pcre" matcher is re.match(pattern, name): anchored at the start only. */
static bool regex_matches(const char *pattern, const char *name)
{
    regex_t re;
    regmatch_t m;
    if (regcomp(&re, pattern, REG_EXTENDED) != 0)
        return false;
    bool ok = regexec(&re, name, 1, &m, 0) == 0 && m.rm_so == 0;
    regfree(&re);
    return ok;
}

bool celery_control_is_for(const struct celery_control_request *r, const char *nodename)
{
    size_t n = r->destination ? json_object_array_length(r->destination) : 0;
    if (n > 0) {
        for (size_t i = 0; i < n; i++) {
            json_object *d = json_object_array_get_idx(r->destination, i);
            if (json_object_is_type(d, json_type_string) &&
                strcmp(json_object_get_string(d), nodename) == 0)
                return true;
        }
        return false;
    }
    if (r->pattern && r->pattern[0] && r->matcher && r->matcher[0]) {
        /* Python's fnmatch has no escapes and lets '*' match '/' and leading dots. */
        if (strcmp(r->matcher, "glob") == 0)
            return fnmatch(r->pattern, nodename, FNM_NOESCAPE) == 0;
        if (strcmp(r->matcher, "pcre") == 0)
            return regex_matches(r->pattern, nodename);
        return false; /* kombu raises MatcherNotInstalled: nobody answers */
    }
    return true;
}
