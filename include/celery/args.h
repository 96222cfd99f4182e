/* Reading a decoded task's arguments (run_id by position or by keyword). Pure. */
#ifndef CWORKER_CELERY_ARGS_H
#define CWORKER_CELERY_ARGS_H

#include "celery/message.h"
#include "base/error.h"

#include <stddef.h>

/* An integer argument by position, else by keyword (run_id may be [42] or
 * {"run_id": 42}). Accepts JSON ints, integral strings ("42", also "42.000" as a
 * kombu Decimal arrives) within the range of long. Anything else, or neither present:
 * CW_ERR_PERMANENT "bad arguments: ...". keyword may be NULL (positional only). */
CW_MUST_CHECK int celery_task_int_arg(const struct celery_task *t, size_t position,
                                      const char *keyword, long *out, struct cw_error *err);

#endif
