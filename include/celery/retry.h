/* The message Celery's Task.retry() publishes for a decoded task. Pure. */
#ifndef CWORKER_CELERY_RETRY_H
#define CWORKER_CELERY_RETRY_H

#include "celery/encode.h"
#include "celery/message.h"
#include "base/error.h"

/* What Celery's Task.retry() publishes (always protocol 2, JSON): the same id, task and
 * body (wire_body when present, else [args, kwargs, embed or the empty embed]),
 * retries + 1, eta = now + countdown (ISO, +00:00), parent_id = the task's own id when
 * it was NULL, root_id = own id when NULL, other known headers kept (lang, group,
 * group_index, shadow, argsrepr, kwargsrepr, origin, expires, timelimit,
 * ignore_result). Properties: content_type application/json, content_encoding utf-8,
 * delivery_mode 2, priority 0, correlation_id = id, reply_to kept.
 * *out is initialised here; release it with celery_outgoing_free, also after failure. */
CW_MUST_CHECK int celery_message_encode_retry(const struct celery_task *t, double now,
                                              double countdown, struct celery_outgoing *out,
                                              struct cw_error *err);

#endif
