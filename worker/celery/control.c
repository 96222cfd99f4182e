/* Celery remote control: the pidbox topology and dispatching a request to Celery's Panel
 * commands. Requests are decoded and addressed in control_request.c; the inspect views
 * themselves are built in inspect.c. */
#include "celery/control.h"

#include "mq/json.h"
#include "celery/encode.h"
#include "celery/inspect.h"
#include "celery/pyrepr.h"
#include "base/strbuf.h"
#include "base/xalloc.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One command being handled: what handlers read and where they put their effects. */
struct ctl {
    const struct celery_control_request *req;
    const struct celery_control_state *st;
    struct celery_control_outcome *out;
    bool no_reply; /* shutdown: Celery's SystemExit skips the reply */
};

/* A command that reads the request or has an effect. */
typedef json_object *(*handler_fn)(struct ctl *c);
/* A command answered from the state alone (most inspect commands). */
typedef json_object *(*view_fn)(const struct celery_control_state *st);

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

/* ---- inspect commands (the rest are celery_inspect_* views) ---- */

static json_object *pong(const struct celery_control_state *st)
{
    (void)st;
    return ok("pong");
}

static json_object *clock_value(const struct celery_control_state *st)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "clock", json_object_new_int64((int64_t)st->clock->value));
    return o;
}

static json_object *reserved_tasks(const struct celery_control_state *st)
{
    return celery_inspect_tasks(st, st->reserved, st->nreserved, false);
}

static json_object *report(const struct celery_control_state *st)
{
    char text[512];
    celery_inspect_report(st, text, sizeof text);
    return ok(text);
}

static json_object *h_active(struct ctl *c)
{
    return celery_inspect_tasks(c->st, c->st->active, c->st->nactive, arg_bool(c, "safe"));
}

static json_object *h_query_task(struct ctl *c)
{
    json_object *ids = arg_ids(c, "ids");
    json_object *o = celery_inspect_query_task(c->st, ids);
    json_object_put(ids);
    return o;
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

/* `revoke` (terminate=True kills the running task) and `terminate` (always kills). */
static json_object *h_revoke(struct ctl *c)
{
    bool terminate = strcmp(c->req->method, "terminate") == 0 || arg_bool(c, "terminate");
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

/* Celery's Panel commands by name (with their dump_* aliases): exactly one of handle and
 * view is set. */
static const struct command {
    const char *name;
    handler_fn handle;
    view_fn view;
} commands[] = {
    {"ping", NULL, pong},
    {"stats", NULL, celery_inspect_stats},
    {"active", h_active, NULL},
    {"dump_active", h_active, NULL},
    {"reserved", NULL, reserved_tasks},
    {"dump_reserved", NULL, reserved_tasks},
    {"scheduled", NULL, celery_inspect_scheduled},
    {"dump_schedule", NULL, celery_inspect_scheduled},
    {"registered", NULL, celery_inspect_registered},
    {"dump_tasks", NULL, celery_inspect_registered},
    {"active_queues", NULL, celery_inspect_active_queues},
    {"revoked", NULL, celery_inspect_revoked},
    {"dump_revoked", NULL, celery_inspect_revoked},
    {"query_task", h_query_task, NULL},
    {"clock", NULL, clock_value},
    {"conf", NULL, celery_inspect_conf},
    {"dump_conf", NULL, celery_inspect_conf},
    {"report", NULL, report},
    {"hello", h_hello, NULL},
    {"revoke", h_revoke, NULL},
    {"terminate", h_revoke, NULL},
    {"enable_events", h_enable_events, NULL},
    {"disable_events", h_disable_events, NULL},
    {"heartbeat", h_heartbeat, NULL},
    {"shutdown", h_shutdown, NULL},
};

/* Celery Panel commands that make no sense for cworker (or are not implemented). */
static const char *const unsupported[] = {
    "rate_limit", "time_limit",   "election",        "pool_grow", "pool_shrink", "pool_restart",
    "autoscale",  "add_consumer", "cancel_consumer", "objgraph",  "memsample",   "memdump",
};

static json_object *dispatch(struct ctl *c)
{
    const char *m = c->req->method;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, m) == 0)
            return commands[i].handle ? commands[i].handle(c) : commands[i].view(c->st);
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
    int rc = celery_outgoing_fill_json(&o->reply, headers, body, 1, err);
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
