/* Error values that carry a chain of contexts up the stack.
 *
 * A failing call fills a `struct cw_error` with CW_FAIL (class, message, and the
 * innermost frame); each caller that passes it on adds its own context with
 * CW_WRAP. The chain becomes the run's `error_traceback` (most recent call last,
 * like Python's). Libraries never log: they fill the error and return -1; the
 * caller decides. Never put secrets (connection strings, passwords) in details. */
#ifndef CWORKER_ERROR_H
#define CWORKER_ERROR_H

#include "base/strbuf.h"

#include <stdbool.h>

#define CW_MUST_CHECK __attribute__((warn_unused_result))

enum cw_error_class {
    CW_ERR_NONE = 0,
    CW_ERR_PERMANENT, /* the task's input can never succeed: fail the run, no retry */
    CW_ERR_TRANSIENT, /* may succeed later: retry with backoff */
    CW_ERR_TIMEOUT,   /* a time limit was exceeded */
    CW_ERR_INTERNAL,  /* a bug or an unexpected library state */
};

#define CW_ERROR_MAX_FRAMES 16
#define CW_ERROR_DETAIL_MAX 384

struct cw_error_frame {
    const char *func; /* static strings from __func__ / __FILE__ */
    const char *file;
    int line;
    char detail[CW_ERROR_DETAIL_MAX];
};

struct cw_error {
    enum cw_error_class cls;
    /* The failure was the infrastructure going away (the database connection dropped),
     * not the task's own trouble: redeliver later, consume no retry. Set by the layer
     * that saw it; cleared by cw_error_set. */
    bool unavailable;
    char message[CW_ERROR_DETAIL_MAX]; /* the origin's message, shown in error_message */
    int nframes;                       /* frames[0] is the origin (innermost) */
    struct cw_error_frame frames[CW_ERROR_MAX_FRAMES];
};

void cw_error_clear(struct cw_error *err);

/* Starts a new chain: sets class and message, records the origin frame. */
void cw_error_set(struct cw_error *err, enum cw_error_class cls, const char *func, const char *file,
                  int line, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Adds the caller's context to an existing chain (the class is kept). */
void cw_error_wrap(struct cw_error *err, const char *func, const char *file, int line,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Appends the chain as a Python-style traceback, most recent call last. */
void cw_error_format_traceback(const struct cw_error *err, struct strbuf *out);

const char *cw_error_class_name(enum cw_error_class cls);

#define CW_FAIL(err, cls, ...) cw_error_set((err), (cls), __func__, __FILE__, __LINE__, __VA_ARGS__)
#define CW_WRAP(err, ...)      cw_error_wrap((err), __func__, __FILE__, __LINE__, __VA_ARGS__)

#endif
