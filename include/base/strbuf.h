/* Growable byte buffer, always NUL-terminated. The struct owns `data`. */
#ifndef CWORKER_STRBUF_H
#define CWORKER_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

struct strbuf {
    char *data; /* NUL-terminated; NULL until the first append */
    size_t len;
    size_t cap;
};

#define STRBUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void strbuf_init(struct strbuf *sb);
void strbuf_append(struct strbuf *sb, const void *data, size_t len);
void strbuf_append_str(struct strbuf *sb, const char *s);
void strbuf_append_char(struct strbuf *sb, char c);
void strbuf_appendf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strbuf_vappendf(struct strbuf *sb, const char *fmt, va_list ap);
/* Empties the buffer but keeps its memory for reuse. */
void strbuf_reset(struct strbuf *sb);
/* Returns the contents ("" when empty) as a string the caller now owns. */
char *strbuf_steal(struct strbuf *sb);
/* Contents as a C string; "" when nothing was appended. */
const char *strbuf_cstr(const struct strbuf *sb);
void strbuf_free(struct strbuf *sb);

#endif
