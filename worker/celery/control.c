/* Celery remote control: decoding pidbox requests, node selection, and dispatching them to
 * Celery's Panel commands; the inspect views themselves are built in celery_inspect.c. */
#include "celery/control.h"

#include "mq/json.h"
#include "celery/encode.h"
#include "celery/inspect.h"
#include "celery/pyrepr.h"
#include "base/strbuf.h"
#include "base/xalloc.h"

#include <ctype.h>
#include <fnmatch.h>
#include <limits.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQUEST_MAX_DEPTH 32

/* One command being handled: what handlers read and where they put their effects. */
struct ctl {
    const struct celery_control_request *req;
    const struct celery_control_state *st;
    struct celery_control_outcome *out;
    bool no_reply; /* shutdown: Celery's SystemExit skips the reply */
};

typedef json_object *(*handler_fn)(struct ctl *c);

/* ---- topology ---- */

void celery_control_queue_name(const char *nodename, char *out, size_t len)
{
    snprintf(out, len, "%s.celery.pidbox", nodename);
}

int celery_control_queue_arguments(amqp_pool_t *pool, amqp_table_t *out, struct cw_error *err)
{
    json_object *args = json_object_new_object();
    json_object_object_add(args, "x-expires", json_object_new_int(CELERY_CONTROL_QUEUE_EXPIRES_MS));
    json_object_object_add(args, "x-message-ttl",
                           json_object_new_int(CELERY_CONTROL_QUEUE_MESSAGE_TTL_MS));
    int rc = mq_json_to_table(args, pool, out, err);
    json_object_put(args);
    return rc;
}

/* ---- decoding ---- */

static int parse_object(const void *body, size_t len, json_object **out, struct cw_error *err)
{
    json_tokener *tok = json_tokener_new_ex(REQUEST_MAX_DEPTH);
    if (tok == NULL)
        abort(); /* out of memory: same policy as cw_xmalloc */
    json_tokener_set_flags(tok, JSON_TOKENER_VALIDATE_UTF8);
    json_object *root = len <= INT_MAX ? json_tokener_parse_ex(tok, body, (int)len) : NULL;
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    while (root != NULL && end < len && isspace((unsigned char)((const char *)body)[end]))
        end++;
    if (root == NULL || jerr != json_tokener_success || end != len ||
        !json_object_is_type(root, json_type_object)) {
        json_object_put(root);
        CW_FAIL(err, CW_ERR_PERMANENT, "body is not a JSON object%s%s",
                jerr != json_tokener_success ? ": " : "",
                jerr != json_tokener_success ? json_tokener_error_desc(jerr) : "");
        return -1;
    }
    *out = root;
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

/* ---- pieces of replies ---- */

static json_object *ok(const char *text)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_string(text));
    return o;
}

static json_object *nok(const char *text)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "error", json_object_new_string(text));
    return o;
}

static bool arg_bool(const struct ctl *c, const char *key)
{
    json_object *v = NULL;
    json_object_object_get_ex(c->req->arguments, key, &v);
    if (json_object_is_type(v, json_type_string)) /* the CLI passes "true"/"1" */
        return strcasecmp(json_object_get_string(v), "true") == 0 ||
               strcmp(json_object_get_string(v), "1") == 0;
    return v != NULL && json_object_get_boolean(v);
}

/* An argument that may be one id or a list of ids (Celery's maybe_list), as a new array. */
static json_object *arg_ids(const struct ctl *c, const char *key)
{
    json_object *v = NULL, *ids = json_object_new_array();
    json_object_object_get_ex(c->req->arguments, key, &v);
    if (json_object_is_type(v, json_type_string)) {
        json_object_array_add(ids, json_object_get(v));
    } else if (json_object_is_type(v, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            json_object *e = json_object_array_get_idx(v, i);
            if (json_object_is_type(e, json_type_string))
                json_object_array_add(ids, json_object_get(e));
        }
    }
    return ids;
}

/* ---- inspect commands ---- */

static json_object *h_ping(struct ctl *c)
{
    (void)c;
    return ok("pong");
}

static json_object *h_clock(struct ctl *c)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "clock", json_object_new_int64((int64_t)c->st->clock->value));
    return o;
}

static json_object *h_active(struct ctl *c)
{
    return celery_inspect_tasks(c->st, c->st->active, c->st->nactive, arg_bool(c, "safe"));
}

static json_object *h_reserved(struct ctl *c)
{
    return celery_inspect_tasks(c->st, c->st->reserved, c->st->nreserved, false);
}

static json_object *h_scheduled(struct ctl *c)
{
    return celery_inspect_scheduled(c->st);
}

static json_object *h_query_task(struct ctl *c)
{
    json_object *ids = arg_ids(c, "ids");
    json_object *o = celery_inspect_query_task(c->st, ids);
    json_object_put(ids);
    return o;
}

static json_object *h_revoked(struct ctl *c)
{
    return celery_inspect_revoked(c->st);
}

static json_object *h_registered(struct ctl *c)
{
    return celery_inspect_registered(c->st);
}

static json_object *h_active_queues(struct ctl *c)
{
    return celery_inspect_active_queues(c->st);
}

static json_object *h_stats(struct ctl *c)
{
    return celery_inspect_stats(c->st);
}

static json_object *h_conf(struct ctl *c)
{
    return celery_inspect_conf(c->st);
}

static json_object *h_report(struct ctl *c)
{
    char text[512];
    celery_inspect_report(c->st, text, sizeof text);
    return ok(text);
}

/* ---- control commands ---- */

static void set_revoke(struct ctl *c, json_object *ids)
{
    struct celery_control_outcome *o = c->out;
    size_t n = json_object_array_length(ids);
    o->action = CELERY_CONTROL_REVOKE;
    o->revoke_ids = cw_xcalloc(n ? n : 1, sizeof *o->revoke_ids);
    for (size_t i = 0; i < n; i++) {
        const char *id = json_object_get_string(json_object_array_get_idx(ids, i));
        bool dup = false;
        for (size_t j = 0; j < o->nrevoke_ids && !dup; j++)
            dup = strcmp(o->revoke_ids[j], id) == 0;
        if (!dup)
            o->revoke_ids[o->nrevoke_ids++] = cw_xstrdup(id);
    }
}

/* celery.platforms.signals.signum: an int, or a name with or without "SIG"; NULL: TERM. */
static int signal_number(json_object *v)
{
    if (v == NULL)
        return SIGTERM;
    if (json_object_is_type(v, json_type_int)) {
        int64_t n = json_object_get_int64(v);
        return n > 0 && n < NSIG ? (int)n : -1;
    }
    if (!json_object_is_type(v, json_type_string))
        return -1;
    const char *name = json_object_get_string(v);
    if (strncasecmp(name, "SIG", 3) == 0)
        name += 3;
    for (int s = 1; s < NSIG; s++) {
        const char *abbrev = sigabbrev_np(s);
        if (abbrev != NULL && strcasecmp(abbrev, name) == 0)
            return s;
    }
    return -1;
}

/* "a, b" of the ids in the outcome, or only those this worker holds (for terminate). */
static void join_ids(const struct ctl *c, bool known_only, struct strbuf *sb)
{
    const char *state;
    for (size_t i = 0; i < c->out->nrevoke_ids; i++) {
        if (known_only && celery_inspect_find_task(c->st, c->out->revoke_ids[i], &state) == NULL)
            continue;
        strbuf_appendf(sb, "%s%s", sb->len ? ", " : "", c->out->revoke_ids[i]);
    }
}

static json_object *revoke_tasks(struct ctl *c, bool terminate)
{
    json_object *sig = NULL, *ids = arg_ids(c, "task_id"), *reply;
    struct strbuf sb = STRBUF_INIT, text = STRBUF_INIT;
    int signum = SIGTERM;
    if (terminate) {
        json_object_object_get_ex(c->req->arguments, "signal", &sig);
        signum = signal_number(sig);
    }
    if (signum < 0) {
        json_object_put(ids);
        return nok("ValueError('unknown signal')");
    }
    set_revoke(c, ids);
    json_object_put(ids);
    c->out->terminate = terminate;
    c->out->signum = terminate ? signum : 0;
    join_ids(c, terminate, &sb);
    if (terminate && sb.len == 0)
        strbuf_append_str(&text, "terminate: tasks unknown");
    else if (terminate)
        strbuf_appendf(&text, "terminate: %s", sb.data);
    else
        strbuf_appendf(&text, "tasks %s flagged as revoked", strbuf_cstr(&sb));
    reply = ok(strbuf_cstr(&text));
    strbuf_free(&sb);
    strbuf_free(&text);
    return reply;
}

static json_object *h_revoke(struct ctl *c)
{
    return revoke_tasks(c, arg_bool(c, "terminate"));
}

static json_object *h_terminate(struct ctl *c)
{
    return revoke_tasks(c, true);
}

static json_object *h_enable_events(struct ctl *c)
{
    if (c->st->task_events)
        return ok("task events already enabled");
    c->out->action = CELERY_CONTROL_ENABLE_EVENTS;
    return ok("task events enabled");
}

static json_object *h_disable_events(struct ctl *c)
{
    if (!c->st->task_events)
        return ok("task events already disabled");
    c->out->action = CELERY_CONTROL_DISABLE_EVENTS;
    return ok("task events disabled");
}

static json_object *h_heartbeat(struct ctl *c)
{
    c->out->action = CELERY_CONTROL_HEARTBEAT;
    return NULL; /* Celery's handler returns None */
}

static json_object *h_shutdown(struct ctl *c)
{
    c->out->action = CELERY_CONTROL_SHUTDOWN;
    c->no_reply = true;
    return NULL;
}

/* Mingle's sync request from another node (a Python worker starting next to us): merge
 * its revoked ids, answer with ours as LimitedSet data {id: [timestamp, id]}. */
static json_object *h_hello(struct ctl *c)
{
    json_object *from = NULL, *theirs = NULL, *ids = json_object_new_array(), *o, *ours;
    json_object_object_get_ex(c->req->arguments, "from_node", &from);
    if (json_object_is_type(from, json_type_string) &&
        strcmp(json_object_get_string(from), c->st->nodename) == 0) {
        json_object_put(ids);
        return NULL;
    }
    json_object_object_get_ex(c->req->arguments, "revoked", &theirs);
    if (json_object_is_type(theirs, json_type_object)) {
        json_object_object_foreach(theirs, id, v)
        {
            (void)v;
            json_object_array_add(ids, json_object_new_string(id));
        }
    }
    if (json_object_array_length(ids) > 0)
        set_revoke(c, ids);
    json_object_put(ids);
    ours = json_object_new_object();
    for (size_t i = 0; i < c->st->nrevoked; i++) {
        json_object *entry = json_object_new_array_ext(2);
        json_object_array_add(entry, celery_pyrepr_double(c->st->revoked[i].timestamp));
        json_object_array_add(entry, json_object_new_string(c->st->revoked[i].id));
        json_object_object_add(ours, c->st->revoked[i].id, entry);
    }
    o = json_object_new_object();
    json_object_object_add(o, "revoked", ours);
    json_object_object_add(o, "clock",
                           json_object_new_int64((int64_t)celery_clock_forward(c->st->clock)));
    return o;
}

/* ---- dispatch ---- */

static const struct {
    const char *name;
    handler_fn fn;
} handlers[] = {
    {"ping", h_ping},
    {"stats", h_stats},
    {"active", h_active},
    {"dump_active", h_active},
    {"reserved", h_reserved},
    {"dump_reserved", h_reserved},
    {"scheduled", h_scheduled},
    {"dump_schedule", h_scheduled},
    {"registered", h_registered},
    {"dump_tasks", h_registered},
    {"active_queues", h_active_queues},
    {"revoked", h_revoked},
    {"dump_revoked", h_revoked},
    {"query_task", h_query_task},
    {"clock", h_clock},
    {"conf", h_conf},
    {"dump_conf", h_conf},
    {"report", h_report},
    {"hello", h_hello},
    {"revoke", h_revoke},
    {"terminate", h_terminate},
    {"enable_events", h_enable_events},
    {"disable_events", h_disable_events},
    {"heartbeat", h_heartbeat},
    {"shutdown", h_shutdown},
};

/* Celery Panel commands that make no sense for cworker (or are not implemented). */
static const char *const unsupported[] = {
    "rate_limit", "time_limit",   "election",        "pool_grow", "pool_shrink", "pool_restart",
    "autoscale",  "add_consumer", "cancel_consumer", "objgraph",  "memsample",   "memdump",
};

static json_object *dispatch(struct ctl *c)
{
    const char *m = c->req->method;
    for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++)
        if (strcmp(handlers[i].name, m) == 0)
            return handlers[i].fn(c);
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
        if (strcmp(unsupported[i], m) == 0) {
            char text[160];
            snprintf(text, sizeof text, "cworker does not support the %s command", m);
            return nok(text);
        }
    /* kombu's Node.dispatch replies {'error': repr(exc)} for the handler's KeyError. */
    char *text = celery_pyrepr_exception("KeyError", m);
    json_object *r = nok(text);
    free(text);
    return r;
}

/* The reply message of kombu Mailbox._publish_reply; takes value. */
static int build_reply(struct ctl *c, json_object *value, struct cw_error *err)
{
    struct celery_control_outcome *o = c->out;
    json_object *body = json_object_new_object(), *headers = json_object_new_object();
    json_object_object_add(body, c->st->nodename, value);
    json_object_object_add(headers, "ticket",
                           c->req->ticket ? json_object_new_string(c->req->ticket) : NULL);
    json_object_object_add(headers, "clock",
                           json_object_new_int64((int64_t)celery_clock_forward(c->st->clock)));
    int rc = celery_events_fill_json(&o->reply, headers, body, 1, err);
    json_object_put(headers);
    json_object_put(body);
    if (rc != 0) {
        CW_WRAP(err, "encoding the reply to %s", c->req->method);
        return -1;
    }
    o->has_reply = true;
    o->reply_exchange = c->req->reply_exchange;
    o->reply_routing_key = c->req->reply_routing_key;
    return 0;
}

int celery_control_handle(const struct celery_control_request *req,
                          const struct celery_control_state *st, struct celery_control_outcome *out,
                          struct cw_error *err)
{
    struct ctl c = {req, st, out, false};
    memset(out, 0, sizeof *out);
    celery_outgoing_init(&out->reply);
    if (req->method == NULL || st->nodename == NULL || st->clock == NULL) {
        CW_FAIL(err, CW_ERR_INTERNAL, "remote control request or state incomplete");
        return -1;
    }
    if (!celery_control_is_for(req, st->nodename))
        return 0;
    /* celery.worker.pidbox.on_message forwards the clock, then kombu adjusts it to the
     * sender's (adjust with 0 when the header is missing). */
    celery_clock_forward(st->clock);
    celery_clock_adjust(st->clock, req->clock);
    json_object *value = dispatch(&c);
    if (req->reply_exchange == NULL || c.no_reply) {
        json_object_put(value);
        return 0;
    }
    return build_reply(&c, value, err);
}

void celery_control_outcome_free(struct celery_control_outcome *out)
{
    for (size_t i = 0; i < out->nrevoke_ids; i++)
        free(out->revoke_ids[i]);
    free(out->revoke_ids);
    celery_outgoing_free(&out->reply);
    memset(out, 0, sizeof *out);
}
