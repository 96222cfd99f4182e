/* Parsing an AMQP message body as exactly one JSON value. Pure: no I/O, no logging. */
#ifndef CWORKER_CELERY_JSON_BODY_H
#define CWORKER_CELERY_JSON_BODY_H

#include "base/error.h"

#include <json-c/json.h>
#include <stddef.h>

/* Parses body (len bytes, not NUL-terminated) as one JSON value nested at most max_depth
 * deep, with UTF-8 validated so every string handed on is valid text; whitespace around it
 * is allowed. *out gets the new value. Errors (CW_ERR_PERMANENT): "body is empty",
 * "body of N bytes is too large", "body is not valid JSON: truncated",
 * "body is not valid JSON: <json-c's reason>" or "...: trailing data after the value". */
CW_MUST_CHECK int celery_json_body_parse(const void *body, size_t len, int max_depth,
                                         json_object **out, struct cw_error *err);

#endif
