/* Rows in PostgreSQL's COPY text format (tab-separated, backslash escapes, \N = NULL). */
#include "ingest/copy_text.h"

#include <string.h>

void copy_text_escape_n(struct strbuf *out, const char *value, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        char esc;
        switch (value[i]) {
        case '\\':
            esc = '\\';
            break;
        case '\t':
            esc = 't';
            break;
        case '\n':
            esc = 'n';
            break;
        case '\r':
            esc = 'r';
            break;
        default:
            continue;
        }
        strbuf_append(out, value + start, i - start);
        strbuf_append_char(out, '\\');
        strbuf_append_char(out, esc);
        start = i + 1;
    }
    strbuf_append(out, value + start, len - start);
}

void copy_text_escape(struct strbuf *out, const char *value_or_null)
{
    if (!value_or_null)
        strbuf_append(out, "\\N", 2);
    else
        copy_text_escape_n(out, value_or_null, strlen(value_or_null));
}

void copy_text_field(struct strbuf *row, const char *value_or_null)
{
    if (row->len > 0 && row->data[row->len - 1] != '\n')
        strbuf_append_char(row, '\t');
    copy_text_escape(row, value_or_null);
}

void copy_text_end_row(struct strbuf *row)
{
    strbuf_append_char(row, '\n');
}

void copy_row_begin(struct copy_row *r, struct strbuf *out)
{
    r->out = out;
    r->nfields = 0;
}

static void separate(struct copy_row *r)
{
    if (r->nfields++ > 0)
        strbuf_append_char(r->out, '\t');
}

void copy_row_text(struct copy_row *r, const char *value_or_null)
{
    separate(r);
    copy_text_escape(r->out, value_or_null);
}

void copy_row_text_n(struct copy_row *r, const char *value, size_t len)
{
    separate(r);
    copy_text_escape_n(r->out, value, len);
}

void copy_row_long(struct copy_row *r, long v)
{
    separate(r);
    strbuf_appendf(r->out, "%ld", v);
}

void copy_row_null(struct copy_row *r)
{
    copy_row_text(r, NULL);
}

void copy_row_end(struct copy_row *r)
{
    strbuf_append_char(r->out, '\n');
    r->nfields = 0;
}
