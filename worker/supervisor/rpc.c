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
static void error_from_result(const struct proto_result *r, struct cw_error *e)
{
    cw_error_clear(e);
    e->cls = r->error_cls == CW_ERR_NONE ? CW_ERR_INTERNAL : r->error_cls;
    snprintf(e->message, sizeof e->message, "%s", r->error_message);
}

void sup_rpc_finished(struct supervisor *s, const struct delivery *d, const struct proto_result *r)
{
    if (!celery_rpc_wanted(&d->task))
        return;
    struct celery_rpc_msg m;
    memset(&m, 0, sizeof m);
    struct cw_error err, cause;
    struct celery_exception exc;
    double now = clock_wall();
    int rc;
    switch (r->outcome) {
    case TASK_SUCCEEDED:
        rc = celery_rpc_success(&d->task, r->result, now, &m, &err);
        break;
    case TASK_FAILED:
    case TASK_REJECTED: /* reported as the failure it is; the message is dead-lettered */
    case TASK_RETRY:
        error_from_result(r, &cause);
        celery_rpc_exception_from_error(&cause, &exc);
        rc = r->outcome != TASK_RETRY
                 ? celery_rpc_failure(&d->task, &exc, r->error_traceback, now, &m, &err)
                 : celery_rpc_retry(&d->task, &exc, r->error_traceback, now, &m, &err);
        break;
    default:
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
