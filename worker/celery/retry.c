/* Encoding the protocol 2 message Celery's Task.retry() publishes for a decoded task.
 *
 * The headers, body and properties are built by the shared encoder (celery_encode.c),
 * so a retry and a new task are the same message shape; this file holds only what a
 * retry changes: retries + 1, the new eta, parent/root defaulting to the task itself,
 * and the body republished as it arrived. */
#include "celery/retry.h"

#include "celery/encode.h"

#include <limits.h>
#include <math.h>
#include <string.h>

/* The task's headers with the retry's changes (Celery takes parent/root from the
 * current task when it retries). */
static struct celery_v2_headers retry_headers(const struct celery_task *t, double eta)
{
    struct celery_v2_headers h = {
        .task = t->task,
        .id = t->id,
        .shadow = t->shadow,
        .group = t->group,
        .root_id = t->root_id ? t->root_id : t->id,
        .parent_id = t->parent_id ? t->parent_id : t->id,
        .argsrepr = t->argsrepr,
        .kwargsrepr = t->kwargsrepr,
        .origin = t->origin,
        .retries = t->retries + 1,
        .has_eta = true,
        .eta = eta,
        .has_expires = t->has_expires,
        .expires = t->expires,
        .has_group_index = t->has_group_index,
        .group_index = t->group_index,
        .has_time_limit = t->has_time_limit,
        .time_limit = t->time_limit,
        .has_soft_time_limit = t->has_soft_time_limit,
        .soft_time_limit = t->soft_time_limit,
        .ignore_result = t->ignore_result,
    };
    return h;
}

/* The wire body as received (kombu markers intact), else rebuilt from the decoded parts. */
static json_object *retry_body(const struct celery_task *t)
{
    if (t->wire_body != NULL)
        return json_object_get(t->wire_body);
    return celery_encode_body(t->args, t->kwargs, t->embed);
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
    celery_outgoing_init(out);
    if (check_task(t, now + countdown, err) != 0) {
        CW_WRAP(err, "encoding the retry of task %s", t->id ? t->id : "?");
        return -1;
    }
    struct celery_v2_headers h = retry_headers(t, now + countdown);
    if (celery_encode_message(&h, retry_body(t), t->reply_to, out, err) != 0) {
        CW_WRAP(err, "encoding the retry of task %s", t->id ? t->id : "?");
        return -1;
    }
    return 0;
}
