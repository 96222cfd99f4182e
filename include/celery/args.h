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

enum celery_integral {
    CELERY_INTEGRAL,         /* *out holds the value */
    CELERY_INTEGRAL_TOO_BIG, /* a whole number beyond the range of long */
    CELERY_NOT_INTEGRAL,     /* another type, a fraction, or text that is not a number */
};

/* What a JSON value says as a whole number: a JSON int, an integral string ("42", or
 * "42.000" as a kombu Decimal arrives) or an integral double (42.0, as Python's json
 * writes a float). Booleans, null and containers are not integral. */
enum celery_integral celery_json_integral(json_object *v, long *out);

#endif
