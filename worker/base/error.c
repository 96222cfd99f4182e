/* The context chain behind error_message and error_traceback. */
#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void cw_error_clear(struct cw_error *err)
{
    err->cls = CW_ERR_NONE;
    err->unavailable = false;
    err->message[0] = '\0';
    err->nframes = 0;
}

static void push_frame(struct cw_error *err, const char *func, const char *file, int line,
                       const char *fmt, va_list ap)
{
    /* When the chain is full the outermost frames are dropped: the origin matters most. */
    if (err->nframes >= CW_ERROR_MAX_FRAMES)
        return;
    struct cw_error_frame *f = &err->frames[err->nframes++];
    f->func = func;
    f->file = file;
    f->line = line;
    vsnprintf(f->detail, sizeof f->detail, fmt, ap);
}

void cw_error_set(struct cw_error *err, enum cw_error_class cls, const char *func, const char *file,
                  int line, const char *fmt, ...)
{
    va_list ap;
    cw_error_clear(err);
    err->cls = cls;
    va_start(ap, fmt);
    push_frame(err, func, file, line, fmt, ap);
    va_end(ap);
    memcpy(err->message, err->frames[0].detail, sizeof err->message);
}

void cw_error_wrap(struct cw_error *err, const char *func, const char *file, int line,
                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    push_frame(err, func, file, line, fmt, ap);
    va_end(ap);
}

const char *cw_error_class_name(enum cw_error_class cls)
{
    switch (cls) {
    case CW_ERR_NONE:
        return "none";
    case CW_ERR_PERMANENT:
        return "permanent";
    case CW_ERR_TRANSIENT:
        return "transient";
    case CW_ERR_TIMEOUT:
        return "timeout";
    case CW_ERR_INTERNAL:
        return "internal";
    }
    return "unknown";
}

static const char *exception_name(enum cw_error_class cls)
{
    switch (cls) {
    case CW_ERR_PERMANENT:
        return "PermanentError";
    case CW_ERR_TRANSIENT:
        return "TransientError";
    case CW_ERR_TIMEOUT:
        return "TimeLimitExceeded";
    default:
        return "InternalError";
    }
}

void cw_error_format_traceback(const struct cw_error *err, struct strbuf *out)
{
    strbuf_append_str(out, "Traceback (most recent call last):\n");
    for (int i = err->nframes - 1; i >= 0; i--) {
        const struct cw_error_frame *f = &err->frames[i];
        strbuf_appendf(out, "  File \"%s\", line %d, in %s\n    %s\n", f->file, f->line, f->func,
                       f->detail);
    }
    strbuf_appendf(out, "%s: %s\n", exception_name(err->cls), err->message);
}
