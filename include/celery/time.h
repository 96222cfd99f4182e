/* ISO-8601 times as Celery writes them (eta, expires) <-> epoch seconds (UTC). Pure. */
#ifndef CWORKER_CELERY_TIME_H
#define CWORKER_CELERY_TIME_H

#include "base/error.h"

#include <stddef.h>

/* ISO-8601 date-time to epoch seconds: "YYYY-MM-DD[T ]HH:MM[:SS[.frac]]" followed by
 * 'Z', +HH:MM, +HHMM, +HH, or nothing (= UTC, as Celery with utc=True means it).
 * A bare date "YYYY-MM-DD" is midnight UTC. Returns 0, or -1 on anything malformed
 * (out of range fields, trailing text). */
CW_MUST_CHECK int celery_parse_iso8601(const char *s, double *epoch_out);

/* Formats epoch seconds (UTC) as "2026-11-24T21:00:00.123456+00:00" (microseconds always
 * present). buf gets "" when the time cannot be represented; it is always terminated. */
void celery_format_iso8601(double epoch, char *buf, size_t len);

#endif
