/* The supervisor <-> executor messages (see executor/protocol.h). */
#include "executor/protocol.h"
#include "base/xalloc.h"
#include "celery/task_json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const type_names[] = {
    [PROTO_UNKNOWN] = "",        [PROTO_TASK] = "task",
    [PROTO_SWEEP] = "sweep",     [PROTO_READY] = "ready",
    [PROTO_STARTED] = "started", [PROTO_REFUSED] = "refused",
    [PROTO_RESULT] = "result",   [PROTO_SWEEP_RESULT] = "sweep_result",
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Index of name in names, or -1. */
static int lookup(const char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; name && i < n; i++)
        if (names[i] && strcmp(names[i], name) == 0)
            return (int)i;
    return -1;
}

static const char *string_field(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

enum proto_type proto_type_of(json_object *msg)
{
    int t = lookup(type_names, COUNT(type_names), string_field(msg, "type"));
    return t < 0 ? PROTO_UNKNOWN : (enum proto_type)t;
}

const char *proto_error_class_name(enum cw_error_class cls)
{
    return (unsigned)cls <= CW_ERR_INTERNAL ? cw_error_class_name(cls) : "internal";
}

/* The class cw_error_class_name names name (its inverse), or -1. */
static int class_of(const char *name)
{
    for (int c = CW_ERR_NONE; name && c <= CW_ERR_INTERNAL; c++)
        if (strcmp(cw_error_class_name((enum cw_error_class)c), name) == 0)
            return c;
    return -1;
}

static json_object *typed(enum proto_type type)
{
    json_object *m = json_object_new_object();
    json_object_object_add(m, "type", json_object_new_string(type_names[type]));
    return m;
}

json_object *proto_bare(enum proto_type type)
{
    return typed(type);
}

static void add_seq(json_object *m, uint64_t seq)
{
    json_object_object_add(m, "seq", json_object_new_uint64(seq));
}

uint64_t proto_seq(json_object *msg)
{
    json_object *v;
    if (!json_object_object_get_ex(msg, "seq", &v) || !json_object_is_type(v, json_type_int))
        return 0;
    return json_object_get_uint64(v);
}

json_object *proto_task_encode(uint64_t seq, const struct celery_task *t, double hard_limit,
                               enum cw_error_class forced_cls, const char *forced_message,
                               const char *queue)
{
    json_object *m = typed(PROTO_TASK);
    add_seq(m, seq);
    json_object_object_add(m, "task", celery_task_to_json(t));
    json_object_object_add(m, "hard_limit", json_object_new_double(hard_limit));
    if (queue)
        json_object_object_add(m, "queue", json_object_new_string(queue));
    if (forced_cls != CW_ERR_NONE) {
        json_object *f = json_object_new_object();
        json_object_object_add(f, "class",
                               json_object_new_string(proto_error_class_name(forced_cls)));
        json_object_object_add(f, "message",
                               json_object_new_string(forced_message ? forced_message : ""));
        json_object_object_add(m, "forced", f);
    }
    return m;
}

static int decode_forced(json_object *msg, struct proto_task *out, struct cw_error *err)
{
    json_object *f;
    if (!json_object_object_get_ex(msg, "forced", &f))
        return 0;
    int cls = class_of(string_field(f, "class"));
    if (cls <= CW_ERR_NONE) {
        CW_FAIL(err, CW_ERR_INTERNAL, "task message has a forced outcome of no known class");
        return -1;
    }
    out->forced_cls = (enum cw_error_class)cls;
    const char *text = string_field(f, "message");
    snprintf(out->forced_message, sizeof out->forced_message, "%s", text ? text : "");
    return 0;
}

int proto_task_decode(json_object *msg, struct proto_task *out, struct cw_error *err)
{
    memset(out, 0, sizeof *out);
    out->seq = proto_seq(msg);
    json_object *task, *v;
    if (out->seq == 0 || !json_object_object_get_ex(msg, "task", &task)) {
        CW_FAIL(err, CW_ERR_INTERNAL, "task message without seq or task");
        return -1;
    }
    if (celery_task_from_json(task, &out->task, err) != 0) {
        CW_WRAP(err, "reading task message %" PRIu64, out->seq);
        return -1;
    }
    if (json_object_object_get_ex(msg, "hard_limit", &v))
        out->hard_limit = json_object_get_double(v);
    const char *queue = string_field(msg, "queue");
    snprintf(out->queue, sizeof out->queue, "%s", queue ? queue : "");
    return decode_forced(msg, out, err);
}

void proto_task_free(struct proto_task *t)
{
    celery_task_free(&t->task);
}

json_object *proto_started(uint64_t seq)
{
    json_object *m = typed(PROTO_STARTED);
    add_seq(m, seq);
    return m;
}

json_object *proto_refused(uint64_t seq, const char *reason)
{
    json_object *m = typed(PROTO_REFUSED);
    add_seq(m, seq);
    json_object_object_add(m, "reason", json_object_new_string(reason));
    return m;
}

const char *proto_refused_reason(json_object *msg)
{
    const char *r = string_field(msg, "reason");
    return r ? r : "";
}

static json_object *error_json(const struct cw_error *err)
{
    json_object *e = json_object_new_object();
    struct strbuf tb = STRBUF_INIT;
    cw_error_format_traceback(err, &tb);
    json_object_object_add(e, "class", json_object_new_string(proto_error_class_name(err->cls)));
    json_object_object_add(e, "message", json_object_new_string(err->message));
    json_object_object_add(e, "traceback", json_object_new_string(strbuf_cstr(&tb)));
    strbuf_free(&tb);
    return e;
}

json_object *proto_result_encode(uint64_t seq, const struct task_report *r)
{
    json_object *m = typed(PROTO_RESULT);
    add_seq(m, seq);
    json_object_object_add(m, "run_id", json_object_new_int64(r->run_id));
    json_object_object_add(m, "outcome", json_object_new_string(task_outcome_name(r->outcome)));
    json_object_object_add(m, "retry_delay", json_object_new_double(r->retry_delay));
    if (r->result)
        json_object_object_add(m, "result", json_object_get(r->result));
    if (r->err.cls != CW_ERR_NONE)
        json_object_object_add(m, "error", error_json(&r->err));
    return m;
}

static void decode_error(json_object *msg, struct proto_result *out)
{
    json_object *e;
    if (!json_object_object_get_ex(msg, "error", &e))
        return;
    int cls = class_of(string_field(e, "class"));
    out->error_cls = cls <= CW_ERR_NONE ? CW_ERR_INTERNAL : (enum cw_error_class)cls;
    const char *text = string_field(e, "message");
    const char *tb = string_field(e, "traceback");
    free(out->error_message);
    out->error_message = cw_xstrdup(text ? text : "");
    out->error_traceback = tb ? cw_xstrdup(tb) : NULL;
}

/* The task_outcome named name (task_outcome_name's inverse), or -1. */
static int outcome_of(const char *name)
{
    for (int o = TASK_SUCCEEDED; name && o <= TASK_OUTCOME_LAST; o++)
        if (strcmp(task_outcome_name((enum task_outcome)o), name) == 0)
            return o;
    return -1;
}

int proto_result_decode(json_object *msg, struct proto_result *out, struct cw_error *err)
{
    memset(out, 0, sizeof *out);
    out->error_message = cw_xstrdup("");
    out->seq = proto_seq(msg);
    int outcome = outcome_of(string_field(msg, "outcome"));
    if (out->seq == 0 || outcome < 0) {
        CW_FAIL(err, CW_ERR_INTERNAL, "result message without seq or a known outcome");
        return -1;
    }
    out->outcome = (enum task_outcome)outcome;
    json_object *v;
    if (json_object_object_get_ex(msg, "run_id", &v))
        out->run_id = (long)json_object_get_int64(v);
    if (json_object_object_get_ex(msg, "retry_delay", &v))
        out->retry_delay = json_object_get_double(v);
    if (json_object_object_get_ex(msg, "result", &v) && v)
        out->result = json_object_get(v);
    decode_error(msg, out);
    return 0;
}

void proto_result_free(struct proto_result *r)
{
    json_object_put(r->result);
    free(r->error_message);
    free(r->error_traceback);
    memset(r, 0, sizeof *r);
}
