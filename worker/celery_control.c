/* Celery remote control: decoding pidbox requests, node selection, and the replies of
 * Celery's Panel commands built from the state the supervisor passes in. */
#include "celery_control.h"

#include "amqp_json.h"
#include "celery_encode.h"
#include "strbuf.h"
#include "xalloc.h"

#include <ctype.h>
#include <fnmatch.h>
#include <limits.h>
#include <math.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQUEST_MAX_DEPTH 32
/* Celery's timer priority for eta requests, as `inspect scheduled` shows it. */
#define SCHEDULED_PRIORITY 6

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
    int rc = amqp_json_to_table(args, pool, out, err);
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
    const amqp_field_value_t *v = amqp_json_table_get(&props->headers, "clock");
    json_object *j = NULL;
    struct cw_error ignored;
    if (v != NULL && amqp_json_from_field(v, &j, &ignored) == 0 &&
        json_object_is_type(j, json_type_int) && json_object_get_int64(j) > 0)
        r->clock = (uint64_t)json_object_get_int64(j);
    json_object_put(j);
    j = NULL;
    v = amqp_json_table_get(&props->headers, "expires");
    if (v != NULL && amqp_json_from_field(v, &j, &ignored) == 0 &&
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

static json_object *string_or_null(const char *s)
{
    return s != NULL ? json_object_new_string(s) : NULL;
}

/* Whole seconds stay ints, as Celery's configuration values are. */
static json_object *seconds(double v)
{
    if (v == floor(v) && fabs(v) < 9e15)
        return json_object_new_int64((int64_t)v);
    return celery_events_double(v);
}

static json_object *delivery_info(const struct celery_control_task *t)
{
    json_object *d = json_object_new_object();
    json_object_object_add(d, "exchange", json_object_new_string(t->exchange ? t->exchange : ""));
    json_object_object_add(d, "routing_key", string_or_null(t->routing_key));
    json_object_object_add(d, "priority", json_object_new_int(t->priority));
    json_object_object_add(d, "redelivered", json_object_new_boolean(t->redelivered));
    return d;
}

/* Request.info(safe): safe shows argsrepr/kwargsrepr instead of the values. */
static json_object *task_info(const struct ctl *c, const struct celery_control_task *t, bool safe)
{
    const struct celery_task *m = t->task;
    json_object *i = json_object_new_object();
    json_object *args, *kwargs;
    if (safe) {
        char *a = m->argsrepr ? NULL : celery_events_saferepr(m->args, -1);
        char *k = m->kwargsrepr ? NULL : celery_events_saferepr(m->kwargs, -1);
        args = json_object_new_string(m->argsrepr ? m->argsrepr : a);
        kwargs = json_object_new_string(m->kwargsrepr ? m->kwargsrepr : k);
        free(a);
        free(k);
    } else {
        args = m->args ? json_object_get(m->args) : json_object_new_array();
        kwargs = m->kwargs ? json_object_get(m->kwargs) : json_object_new_object();
    }
    json_object_object_add(i, "id", string_or_null(m->id));
    json_object_object_add(i, "name", string_or_null(m->task));
    json_object_object_add(i, "args", args);
    json_object_object_add(i, "kwargs", kwargs);
    json_object_object_add(i, "type", string_or_null(m->task));
    json_object_object_add(i, "hostname", json_object_new_string(c->st->nodename));
    json_object_object_add(i, "time_start",
                           t->time_start > 0 ? celery_events_double(t->time_start) : NULL);
    json_object_object_add(i, "acknowledged", json_object_new_boolean(t->acknowledged));
    json_object_object_add(i, "delivery_info", delivery_info(t));
    json_object_object_add(i, "worker_pid",
                           t->worker_pid > 0 ? json_object_new_int64(t->worker_pid) : NULL);
    return i;
}

static json_object *task_list(const struct ctl *c, const struct celery_control_task *tasks,
                              size_t n, bool safe)
{
    json_object *l = json_object_new_array();
    for (size_t i = 0; i < n; i++)
        json_object_array_add(l, task_info(c, &tasks[i], safe));
    return l;
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

/* The task with this id among active, reserved and scheduled, and its state name. */
static const struct celery_control_task *find_task(const struct celery_control_state *st,
                                                   const char *id, const char **state)
{
    const struct {
        const struct celery_control_task *tasks;
        size_t n;
        const char *state;
    } sets[] = {{st->active, st->nactive, "active"},
                {st->reserved, st->nreserved, "reserved"},
                {st->scheduled, st->nscheduled, "reserved"}};
    for (size_t s = 0; s < sizeof sets / sizeof sets[0]; s++)
        for (size_t i = 0; i < sets[s].n; i++)
            if (sets[s].tasks[i].task && sets[s].tasks[i].task->id &&
                strcmp(sets[s].tasks[i].task->id, id) == 0) {
                *state = sets[s].state;
                return &sets[s].tasks[i];
            }
    return NULL;
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
    return task_list(c, c->st->active, c->st->nactive, arg_bool(c, "safe"));
}

static json_object *h_reserved(struct ctl *c)
{
    return task_list(c, c->st->reserved, c->st->nreserved, false);
}

static json_object *h_scheduled(struct ctl *c)
{
    json_object *l = json_object_new_array();
    for (size_t i = 0; i < c->st->nscheduled; i++) {
        const struct celery_control_task *t = &c->st->scheduled[i];
        json_object *e = json_object_new_object();
        char eta[64] = "";
        if (t->task->has_eta)
            celery_format_iso8601(t->task->eta, eta, sizeof eta);
        json_object_object_add(e, "eta", eta[0] ? json_object_new_string(eta) : NULL);
        json_object_object_add(e, "priority", json_object_new_int(SCHEDULED_PRIORITY));
        json_object_object_add(e, "request", task_info(c, t, false));
        json_object_array_add(l, e);
    }
    return l;
}

static json_object *h_query_task(struct ctl *c)
{
    json_object *ids = arg_ids(c, "ids"), *o = json_object_new_object();
    for (size_t i = 0; i < json_object_array_length(ids); i++) {
        const char *id = json_object_get_string(json_object_array_get_idx(ids, i)), *state;
        const struct celery_control_task *t = find_task(c->st, id, &state);
        if (t == NULL)
            continue;
        json_object *pair = json_object_new_array_ext(2);
        json_object_array_add(pair, json_object_new_string(state));
        json_object_array_add(pair, task_info(c, t, false));
        json_object_object_add(o, id, pair);
    }
    json_object_put(ids);
    return o;
}

static json_object *h_revoked(struct ctl *c)
{
    json_object *l = json_object_new_array();
    for (size_t i = 0; i < c->st->nrevoked; i++)
        json_object_array_add(l, json_object_new_string(c->st->revoked[i].id));
    return l;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted names, Celery's own celery.* tasks left out (as registered() does by default). */
static json_object *h_registered(struct ctl *c)
{
    size_t n = c->st->nregistered;
    const char **names = cw_xcalloc(n ? n : 1, sizeof *names);
    json_object *l = json_object_new_array();
    memcpy(names, c->st->registered, n * sizeof *names);
    qsort(names, n, sizeof *names, compare_names);
    for (size_t i = 0; i < n; i++)
        if (strncmp(names[i], "celery.", 7) != 0)
            json_object_array_add(l, json_object_new_string(names[i]));
    free(names);
    return l;
}

/* kombu Queue(Q, Exchange(Q, 'direct'), routing_key=Q).as_dict(recurse=True). */
static json_object *queue_as_dict(const char *q)
{
    static const char *const null_keys[] = {"queue_arguments", "binding_arguments",
                                            "consumer_arguments"};
    static const char *const tail_nulls[] = {"no_declare", "expires",          "message_ttl",
                                             "max_length", "max_length_bytes", "max_priority"};
    json_object *x = json_object_new_object(), *d = json_object_new_object();
    json_object_object_add(x, "name", json_object_new_string(q));
    json_object_object_add(x, "type", json_object_new_string("direct"));
    json_object_object_add(x, "arguments", NULL);
    json_object_object_add(x, "durable", json_object_new_boolean(1));
    json_object_object_add(x, "passive", json_object_new_boolean(0));
    json_object_object_add(x, "auto_delete", json_object_new_boolean(0));
    json_object_object_add(x, "delivery_mode", NULL);
    json_object_object_add(x, "no_declare", json_object_new_boolean(0));
    json_object_object_add(d, "name", json_object_new_string(q));
    json_object_object_add(d, "exchange", x);
    json_object_object_add(d, "routing_key", json_object_new_string(q));
    for (size_t i = 0; i < sizeof null_keys / sizeof null_keys[0]; i++)
        json_object_object_add(d, null_keys[i], NULL);
    json_object_object_add(d, "durable", json_object_new_boolean(1));
    json_object_object_add(d, "exclusive", json_object_new_boolean(0));
    json_object_object_add(d, "auto_delete", json_object_new_boolean(0));
    json_object_object_add(d, "no_ack", json_object_new_boolean(0));
    json_object_object_add(d, "alias", NULL);
    json_object_object_add(d, "bindings", json_object_new_array());
    for (size_t i = 0; i < sizeof tail_nulls / sizeof tail_nulls[0]; i++)
        json_object_object_add(d, tail_nulls[i], NULL);
    return d;
}

static json_object *h_active_queues(struct ctl *c)
{
    json_object *l = json_object_new_array();
    for (size_t i = 0; i < c->st->nqueues; i++)
        json_object_array_add(l, queue_as_dict(c->st->queues[i]));
    return l;
}

static json_object *pool_info(const struct celery_control_state *st)
{
    json_object *p = json_object_new_object(), *pids = json_object_new_array(),
                *timeouts = json_object_new_array_ext(2);
    for (size_t i = 0; i < st->nexecutor_pids; i++)
        json_object_array_add(pids, json_object_new_int64(st->executor_pids[i]));
    json_object_array_add(timeouts, seconds(st->soft_time_limit));
    json_object_array_add(timeouts, seconds(st->time_limit));
    json_object_object_add(p, "max-concurrency", json_object_new_int(st->concurrency));
    json_object_object_add(p, "processes", pids);
    json_object_object_add(p, "max-tasks-per-child", json_object_new_string("N/A"));
    json_object_object_add(p, "put-guarded-by-semaphore", json_object_new_boolean(0));
    json_object_object_add(p, "timeouts", timeouts);
    return p;
}

/* Connection.info() of kombu, minus what cworker has no notion of; never the password. */
static json_object *broker_info(const struct celery_control_state *st)
{
    const struct amqp_connection_info *b = st->broker;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "hostname", string_or_null(b->host));
    json_object_object_add(o, "userid", string_or_null(b->user));
    json_object_object_add(o, "virtual_host", string_or_null(b->vhost));
    json_object_object_add(o, "port", json_object_new_int(b->port));
    json_object_object_add(o, "insist", json_object_new_boolean(0));
    json_object_object_add(o, "ssl", json_object_new_boolean(b->ssl));
    json_object_object_add(o, "transport", json_object_new_string("amqp"));
    json_object_object_add(o, "transport_options", json_object_new_object());
    json_object_object_add(o, "login_method", json_object_new_string("PLAIN"));
    json_object_object_add(o, "uri_prefix", NULL);
    json_object_object_add(o, "heartbeat", celery_events_double(st->broker_heartbeat));
    json_object_object_add(o, "failover_strategy", json_object_new_string("round-robin"));
    json_object_object_add(o, "alternates", json_object_new_array());
    return o;
}

static double timeval_seconds(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static json_object *rusage_info(const struct rusage *r)
{
    const struct {
        const char *name;
        long value;
    } fields[] = {
        {"maxrss", r->ru_maxrss}, {"ixrss", r->ru_ixrss},     {"idrss", r->ru_idrss},
        {"isrss", r->ru_isrss},   {"minflt", r->ru_minflt},   {"majflt", r->ru_majflt},
        {"nswap", r->ru_nswap},   {"inblock", r->ru_inblock}, {"oublock", r->ru_oublock},
        {"msgsnd", r->ru_msgsnd}, {"msgrcv", r->ru_msgrcv},   {"nsignals", r->ru_nsignals},
        {"nvcsw", r->ru_nvcsw},   {"nivcsw", r->ru_nivcsw}};
    json_object *o = json_object_new_object();
    json_object_object_add(o, "utime", celery_events_double(timeval_seconds(r->ru_utime)));
    json_object_object_add(o, "stime", celery_events_double(timeval_seconds(r->ru_stime)));
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        json_object_object_add(o, fields[i].name, json_object_new_int64(fields[i].value));
    return o;
}

static json_object *h_stats(struct ctl *c)
{
    const struct celery_control_state *st = c->st;
    json_object *s = json_object_new_object(), *total = json_object_new_object();
    char clock[32];
    for (size_t i = 0; i < st->ntotals; i++)
        json_object_object_add(total, st->totals[i].name,
                               json_object_new_int64((int64_t)st->totals[i].count));
    snprintf(clock, sizeof clock, "%llu", (unsigned long long)st->clock->value);
    json_object_object_add(s, "total", total);
    json_object_object_add(s, "pid", json_object_new_int64(st->pid));
    json_object_object_add(s, "clock", json_object_new_string(clock)); /* str(app.clock) */
    json_object_object_add(s, "uptime", json_object_new_int64((int64_t)llround(st->uptime)));
    json_object_object_add(s, "pool", pool_info(st));
    if (st->broker != NULL)
        json_object_object_add(s, "broker", broker_info(st));
    json_object_object_add(s, "prefetch_count", json_object_new_int(st->prefetch_count));
    json_object_object_add(s, "rusage",
                           st->rusage ? rusage_info(st->rusage) : json_object_new_string("N/A"));
    return s;
}

/* The broker URL as Celery's conf shows it: the password replaced by asterisks. */
static json_object *masked_broker_url(const struct amqp_connection_info *b)
{
    char url[1024];
    snprintf(url, sizeof url, "%s://%s:********@%s:%d/%s", b->ssl ? "amqps" : "amqp",
             b->user ? b->user : "", b->host ? b->host : "", b->port, b->vhost ? b->vhost : "");
    return json_object_new_string(url);
}

/* The settings that differ from Celery's defaults, as `inspect conf` lists them. */
static json_object *h_conf(struct ctl *c)
{
    const struct celery_control_state *st = c->st;
    json_object *o = json_object_new_object(), *accept = json_object_new_array();
    json_object_array_add(accept, json_object_new_string("json"));
    if (st->broker != NULL)
        json_object_object_add(o, "broker_url", masked_broker_url(st->broker));
    json_object_object_add(o, "task_serializer", json_object_new_string("json"));
    json_object_object_add(o, "accept_content", accept);
    json_object_object_add(o, "task_acks_late", json_object_new_boolean(1));
    json_object_object_add(o, "worker_concurrency", json_object_new_int(st->concurrency));
    json_object_object_add(o, "worker_prefetch_multiplier",
                           json_object_new_int(st->prefetch_multiplier));
    json_object_object_add(o, "task_soft_time_limit", seconds(st->soft_time_limit));
    json_object_object_add(o, "task_time_limit", seconds(st->time_limit));
    json_object_object_add(o, "worker_send_task_events", json_object_new_boolean(st->task_events));
    return o;
}

static json_object *h_report(struct ctl *c)
{
    char text[512];
    snprintf(text, sizeof text,
             "software -> cworker:%s\nplatform -> system:Linux\nsettings -> "
             "transport:amqp\nnode -> %s pid:%ld",
             c->st->sw_ver ? c->st->sw_ver : "?", c->st->nodename, c->st->pid);
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
        if (known_only && find_task(c->st, c->out->revoke_ids[i], &state) == NULL)
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
        json_object_array_add(entry, celery_events_double(c->st->revoked[i].timestamp));
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
    char *text = celery_events_exception_repr("KeyError", m);
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
    json_object_object_add(headers, "ticket", string_or_null(c->req->ticket));
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
