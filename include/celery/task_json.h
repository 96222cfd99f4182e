/* A decoded Celery task as one JSON object and back, field for field: how the supervisor
 * hands a task to an executor without losing anything the decoder produced (eta,
 * expires, time limits, reply_to, the wire body the retry encoder republishes, ...).
 * Pure module: no I/O, no logging. */
#ifndef CWORKER_CELERY_TASK_JSON_H
#define CWORKER_CELERY_TASK_JSON_H

#include "base/error.h"
#include "celery/message.h"

#include <json-c/json.h>

/* A new object (caller owns) holding every field of t; t is not changed. */
json_object *celery_task_to_json(const struct celery_task *t);
/* Fills *out (zeroed first; release with celery_task_free, also after a failure) from an
 * object made by celery_task_to_json. Errors: CW_ERR_INTERNAL naming the bad field. */
CW_MUST_CHECK int celery_task_from_json(json_object *o, struct celery_task *out,
                                        struct cw_error *err);

#endif
