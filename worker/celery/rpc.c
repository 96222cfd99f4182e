/* Task state messages of Celery's rpc:// result backend (RPCBackend.store_result). */
#include "celery/rpc.h"

#include "celery/encode.h"
#include "celery/events.h"
#include "celery/pyrepr.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void celery_rpc_exception_from_error(const struct cw_error *e, struct celery_exception *out)
{
    out->message = e->message;
    out->module = "cworker.errors";
    switch (e->cls) {
    case CW_ERR_PERMANENT:
        out->type = "PermanentError";
        break;
    case CW_ERR_TRANSIENT:
        out->type = "TransientError";
        break;
    case CW_ERR_TIMEOUT:
        out->type = "TimeLimitExceeded";
        out->module = "celery.exceptions";
        break;
    default:
        out->type = "InternalError";
        break;
    }
}

void celery_rpc_msg_free(struct celery_rpc_msg *m)
{
    celery_outgoing_free(&m->out);
    m->routing_key = NULL;
}

bool celery_rpc_wanted(const struct celery_task *t)
{
    return t != NULL && t->reply_to != NULL && t->reply_to[0] != '\0' && !t->ignore_result;
}

/* BaseBackend.prepare_exception for the JSON serializer. */
static json_object *exception_json(const struct celery_exception *exc)
{
    json_object *e = json_object_new_object(), *args = json_object_new_array();
    if (exc->message != NULL)
        json_object_array_add(args, json_object_new_string(exc->message));
    json_object_object_add(e, "exc_type",
                           json_object_new_string(exc->type ? exc->type : "Exception"));
    json_object_object_add(e, "exc_message", args);
    json_object_object_add(e, "exc_module", celery_json_string_or_null(exc->module));
    return e;
}

/* datetime.utcnow().isoformat(): naive UTC, microseconds only when not zero. */
static json_object *date_done(double now)
{
    char buf[64];
    time_t secs = (time_t)floor(now);
    long usec = lround((now - (double)secs) * 1e6);
    struct tm tm;
    if (usec >= 1000000) {
        secs++;
        usec -= 1000000;
    }
    if (gmtime_r(&secs, &tm) == NULL || strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        return NULL;
    if (usec > 0)
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), ".%06ld", usec);
    return json_object_new_string(buf);
}

/* Celery records the retry's own AsyncResult as a child of the retried request. */
static json_object *children(const struct celery_task *t, const char *status)
{
    json_object *list = json_object_new_array();
    if (strcmp(status, "RETRY") == 0) {
        json_object *id_parent = json_object_new_array_ext(2),
                    *tuple = json_object_new_array_ext(2);
        json_object_array_add(id_parent, json_object_new_string(t->id));
        json_object_array_add(id_parent, NULL);
        json_object_array_add(tuple, id_parent);
        json_object_array_add(tuple, NULL);
        json_object_array_add(list, tuple);
    }
    return list;
}

static bool is_ready(const char *status)
{
    return strcmp(status, "SUCCESS") == 0 || strcmp(status, "FAILURE") == 0 ||
           strcmp(status, "REVOKED") == 0;
}

static int check_task(const struct celery_task *t, struct cw_error *err)
{
    if (t == NULL || t->id == NULL || t->id[0] == '\0' || t->reply_to == NULL ||
        t->reply_to[0] == '\0') {
        CW_FAIL(err, CW_ERR_INTERNAL, "a result needs a task id and a reply_to");
        return -1;
    }
    return 0;
}

/* RPCBackend.store_result; takes result. */
static int encode(const struct celery_task *t, const char *status, json_object *result,
                  const char *traceback, double now, struct celery_rpc_msg *out,
                  struct cw_error *err)
{
    memset(out, 0, sizeof *out);
    celery_outgoing_init(&out->out);
    if (check_task(t, err) != 0) {
        json_object_put(result);
        return -1;
    }
    json_object *body = json_object_new_object(), *headers = json_object_new_object();
    json_object_object_add(body, "task_id", json_object_new_string(t->id));
    json_object_object_add(body, "status", json_object_new_string(status));
    json_object_object_add(body, "result", result);
    json_object_object_add(body, "traceback", celery_json_string_or_null(traceback));
    json_object_object_add(body, "children", children(t, status));
    json_object_object_add(body, "date_done", is_ready(status) ? date_done(now) : NULL);
    int rc = celery_outgoing_fill_json(&out->out, headers, body, 1, err);
    json_object_put(headers);
    json_object_put(body);
    if (rc != 0) {
        CW_WRAP(err, "encoding the %s result of task %s", status, t->id);
        return -1;
    }
    const char *correlation = t->correlation_id ? t->correlation_id : t->id;
    out->out.props._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
    out->out.props.correlation_id = celery_outgoing_str(&out->out, correlation);
    out->routing_key = t->reply_to;
    return 0;
}

int celery_rpc_started(const struct celery_task *t, const char *hostname, long pid, double now,
                       struct celery_rpc_msg *out, struct cw_error *err)
{
    json_object *r = json_object_new_object();
    json_object_object_add(r, "pid", json_object_new_int64(pid));
    json_object_object_add(r, "hostname", celery_json_string_or_null(hostname));
    return encode(t, "STARTED", r, NULL, now, out, err);
}

int celery_rpc_success(const struct celery_task *t, json_object *result, double now,
                       struct celery_rpc_msg *out, struct cw_error *err)
{
    return encode(t, "SUCCESS", json_object_get(result), NULL, now, out, err);
}

int celery_rpc_retry(const struct celery_task *t, const struct celery_exception *exc,
                     const char *traceback, double now, struct celery_rpc_msg *out,
                     struct cw_error *err)
{
    return encode(t, "RETRY", exc ? exception_json(exc) : NULL, traceback, now, out, err);
}

int celery_rpc_failure(const struct celery_task *t, const struct celery_exception *exc,
                       const char *traceback, double now, struct celery_rpc_msg *out,
                       struct cw_error *err)
{
    return encode(t, "FAILURE", exc ? exception_json(exc) : NULL, traceback, now, out, err);
}

int celery_rpc_revoked(const struct celery_task *t, const char *reason, double now,
                       struct celery_rpc_msg *out, struct cw_error *err)
{
    struct celery_exception exc = {"TaskRevokedError", "celery.exceptions", reason};
    return encode(t, "REVOKED", exception_json(&exc), NULL, now, out, err);
}

int celery_rpc_not_registered(const struct celery_task *t, double now, struct celery_rpc_msg *out,
                              struct cw_error *err)
{
    struct celery_exception exc = {"NotRegistered", "celery.exceptions", t ? t->task : NULL};
    return encode(t, "FAILURE", exception_json(&exc), NULL, now, out, err);
}
