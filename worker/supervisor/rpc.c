/* Supervisor: task results for the rpc:// result backend, so a producer's
 * AsyncResult.get() returns cworker's result or raises its failure. Sent when the message
 * has reply_to and does not ask to ignore its result; best effort, like events (the
 * producer's reply queue may be gone). */
#include "supervisor/internal.h"
#include "celery/rpc.h"
#include "base/clock.h"
#include "base/log.h"

#include <stdio.h>
#include <string.h>

static void send_result(struct supervisor *s, int rc, struct celery_rpc_msg *m,
                        const struct cw_error *err)
{
    struct cw_error perr;
    if (rc != 0)
        log_debug("result not built: %s", err->message);
    else if (sup_publish_to(s, CELERY_RPC_EXCHANGE, m->routing_key, &m->out.props, m->out.body,
                            &perr) != 0)
        log_warn("result not sent to %s: %s", m->routing_key, perr.message);
    celery_rpc_msg_free(m);
}

/* The executor's error as the error chain the rpc module maps to a Python exception. */
static void error_from_result(json_object *msg, struct cw_error *e)
{
    json_object *err, *v;
    cw_error_clear(e);
    e->cls = CW_ERR_INTERNAL;
    if (!json_object_object_get_ex(msg, "error", &err))
        return;
    if (json_object_object_get_ex(err, "class", &v)) {
        const char *cls = json_object_get_string(v);
        e->cls = strcmp(cls, "permanent") == 0   ? CW_ERR_PERMANENT
                 : strcmp(cls, "transient") == 0 ? CW_ERR_TRANSIENT
                 : strcmp(cls, "timeout") == 0   ? CW_ERR_TIMEOUT
                                                 : CW_ERR_INTERNAL;
    }
    if (json_object_object_get_ex(err, "message", &v))
        snprintf(e->message, sizeof e->message, "%s", json_object_get_string(v));
}

static const char *traceback_of(json_object *msg)
{
    json_object *err, *v;
    if (json_object_object_get_ex(msg, "error", &err) &&
        json_object_object_get_ex(err, "traceback", &v))
        return json_object_get_string(v);
    return NULL;
}

void sup_rpc_finished(struct supervisor *s, const struct delivery *d, const char *outcome,
                      json_object *msg)
{
    if (!celery_rpc_wanted(&d->task))
        return;
    struct celery_rpc_msg m;
    memset(&m, 0, sizeof m);
    struct cw_error err, cause;
    struct celery_exception exc;
    double now = clock_wall();
    int rc;
    if (strcmp(outcome, "succeeded") == 0) {
        json_object *result = NULL;
        json_object_object_get_ex(msg, "result", &result);
        rc = celery_rpc_success(&d->task, result, now, &m, &err);
    } else if (strcmp(outcome, "failed") == 0 || strcmp(outcome, "retry") == 0) {
        error_from_result(msg, &cause);
        celery_rpc_exception_from_error(&cause, &exc);
        rc = strcmp(outcome, "failed") == 0
                 ? celery_rpc_failure(&d->task, &exc, traceback_of(msg), now, &m, &err)
                 : celery_rpc_retry(&d->task, &exc, traceback_of(msg), now, &m, &err);
    } else {
        return; /* skipped / requeued: another delivery reports the outcome */
    }
    send_result(s, rc, &m, &err);
}

void sup_rpc_not_registered(struct supervisor *s, const struct celery_task *t)
{
    if (!t->id || !celery_rpc_wanted(t))
        return;
    struct celery_rpc_msg m;
    memset(&m, 0, sizeof m);
    struct cw_error err;
    send_result(s, celery_rpc_not_registered(t, clock_wall(), &m, &err), &m, &err);
}

void sup_rpc_revoked(struct supervisor *s, const struct celery_task *t, const char *reason)
{
    if (!t->id || !celery_rpc_wanted(t))
        return;
    struct celery_rpc_msg m;
    memset(&m, 0, sizeof m);
    struct cw_error err;
    send_result(s, celery_rpc_revoked(t, reason, clock_wall(), &m, &err), &m, &err);
}
