/* Rows in PostgreSQL's COPY text format (tab-separated, backslash escapes, \N = NULL). */
#ifndef CWORKER_COPY_TEXT_H
#define CWORKER_COPY_TEXT_H

#include "base/strbuf.h"

#include <stddef.h>

/* Appends value escaped for COPY text: backslash, tab, newline and carriage return
 * become \\ \t \n \r; NULL becomes \N. No separator. */
void copy_text_escape(struct strbuf *out, const char *value_or_null);
void copy_text_escape_n(struct strbuf *out, const char *value, size_t len);

/* Appends one field, preceded by a tab unless it starts a row (row empty, or its last
 * byte is the newline of the previous row: escaped fields never end in a raw
 * newline). Limitation: an empty-string first field is invisible to that test, so
 * rows whose first field may be "" must use struct copy_row. */
void copy_text_field(struct strbuf *row, const char *value_or_null);
void copy_text_end_row(struct strbuf *row);

/* A row builder that counts its fields, for rows of any shape. The strbuf is the
 * caller's; the builder owns nothing. */
struct copy_row {
    struct strbuf *out;
    size_t nfields;
};

void copy_row_begin(struct copy_row *r, struct strbuf *out);
void copy_row_text(struct copy_row *r, const char *value_or_null);
void copy_row_text_n(struct copy_row *r, const char *value, size_t len);
void copy_row_long(struct copy_row *r, long v);
void copy_row_null(struct copy_row *r);
/* Adds the newline; the builder can then begin the next row. */
void copy_row_end(struct copy_row *r);

#endif
