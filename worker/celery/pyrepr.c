/* Python's text forms of JSON values, as Celery sends them in events and replies:
 * repr(float), celery.utils.saferepr.saferepr, and repr() of an exception. */
#include "celery/pyrepr.h"

#include "base/strbuf.h"
#include "base/utf8.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Celery's saferepr shows at most this many nested containers (its maxlevels). */
#define SAFEREPR_MAXLEVELS 3

/* ---- Python's repr(float) ---- */

/* Shortest digits that read back as v, laid out as Python does: positional for exponents
 * -4..15 (always with a fraction), else 1e+16. */
void celery_pyrepr_float(double v, char *buf, size_t len)
{
    char sci[40];
    int prec, exp;

    if (!isfinite(v)) {
        snprintf(buf, len, "%s", isnan(v) ? "nan" : v < 0 ? "-inf" : "inf");
        return;
    }
    for (prec = 1; prec < 17; prec++) {
        snprintf(sci, sizeof sci, "%.*e", prec - 1, v);
        if (strtod(sci, NULL) == v)
            break;
    }
    snprintf(sci, sizeof sci, "%.*e", prec - 1, v);
    exp = atoi(strchr(sci, 'e') + 1);
    if (exp < -4 || exp >= 16) {
        snprintf(buf, len, "%s", sci);
        return;
    }
    snprintf(buf, len, "%.*f", prec - 1 - exp > 0 ? prec - 1 - exp : 0, v);
    if (strchr(buf, '.') == NULL)
        strncat(buf, ".0", len - strlen(buf) - 1);
}

json_object *celery_pyrepr_double(double v)
{
    char buf[64];
    celery_pyrepr_float(v, buf, sizeof buf);
    return json_object_new_double_s(v, buf);
}

/* ---- Celery's saferepr (celery/utils/saferepr.py) over JSON values ----
 *
 * saferepr streams tokens and, with a maxlen, checks the remaining budget before each
 * token: once it is spent it writes ", ..." and only the closing brackets of the
 * containers still open. Lengths count characters, not bytes. */

struct srepr {
    struct strbuf out;
    bool limited;
    long budget; /* characters left when limited */
    bool stopped;
    int level;
};

static void srepr_put(struct srepr *r, const char *s, size_t len)
{
    strbuf_append(&r->out, s, len);
    if (r->limited)
        r->budget -= (long)utf8_char_count(s, len);
}

/* The check Celery makes before each token; false once the budget is spent. */
static bool srepr_may_emit(struct srepr *r)
{
    if (r->stopped)
        return false;
    if (r->limited && r->budget <= 0) {
        strbuf_append_str(&r->out, ", ...");
        r->stopped = true;
        return false;
    }
    return true;
}

static void srepr_literal(struct srepr *r, const char *s)
{
    if (srepr_may_emit(r))
        srepr_put(r, s, strlen(s));
}

/* Closing brackets of containers still open when the budget ran out are written anyway
 * (Celery's dangling parens), but a bracket whose own check found the budget spent is
 * lost with that check, as in Celery: "{'x': 'ab...', ...". */
static void srepr_close(struct srepr *r, const char *s)
{
    if (r->stopped)
        strbuf_append_str(&r->out, s);
    else if (srepr_may_emit(r))
        srepr_put(r, s, strlen(s));
}

/* celery.utils.text.truncate: at maxlen characters, back to the last space, plus "...". */
static void srepr_truncated(struct srepr *r, const char *s, size_t len, struct strbuf *to)
{
    if (r->limited && r->budget > 0 && utf8_char_count(s, len) >= (size_t)r->budget) {
        size_t cut = utf8_prefix_chars(s, len, (size_t)r->budget);
        const char *space = memrchr(s, ' ', cut);
        strbuf_append(to, s, space ? (size_t)(space - s) : cut);
        strbuf_append_str(to, "...");
        return;
    }
    strbuf_append(to, s, len);
}

/* A string token: quoted with ', only ' escaped (_format_chars). */
static void srepr_string(struct srepr *r, const char *s, size_t len)
{
    struct strbuf cut = STRBUF_INIT, q = STRBUF_INIT;
    if (!srepr_may_emit(r))
        return;
    srepr_truncated(r, s, len, &cut);
    strbuf_append_char(&q, '\'');
    for (size_t i = 0; i < cut.len; i++) {
        if (cut.data[i] == '\'')
            strbuf_append_char(&q, '\\');
        strbuf_append_char(&q, cut.data[i]);
    }
    strbuf_append_char(&q, '\'');
    srepr_put(r, q.data, q.len);
    strbuf_free(&cut);
    strbuf_free(&q);
}

/* Numbers, booleans, None and "{...}": str() of the value, truncated like text. */
static void srepr_text(struct srepr *r, const char *s)
{
    struct strbuf t = STRBUF_INIT;
    if (!srepr_may_emit(r))
        return;
    srepr_truncated(r, s, strlen(s), &t);
    srepr_put(r, strbuf_cstr(&t), t.len);
    strbuf_free(&t);
}

static void srepr_value(struct srepr *r, json_object *v);

static void srepr_container(struct srepr *r, json_object *v, bool is_object)
{
    if (r->level >= SAFEREPR_MAXLEVELS) {
        srepr_text(r, is_object ? "{...}" : "[...]");
        return;
    }
    srepr_literal(r, is_object ? "{" : "[");
    r->level++;
    if (is_object) {
        bool first = true;
        json_object_object_foreach(v, key, val)
        {
            if (!first)
                srepr_literal(r, ", ");
            first = false;
            srepr_string(r, key, strlen(key));
            srepr_literal(r, ": ");
            srepr_value(r, val);
        }
    } else {
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            if (i > 0)
                srepr_literal(r, ", ");
            srepr_value(r, json_object_array_get_idx(v, i));
        }
    }
    r->level--;
    srepr_close(r, is_object ? "}" : "]");
}

static void srepr_value(struct srepr *r, json_object *v)
{
    char num[64];
    switch (json_object_get_type(v)) {
    case json_type_null:
        srepr_text(r, "None");
        break;
    case json_type_boolean:
        srepr_text(r, json_object_get_boolean(v) ? "True" : "False");
        break;
    case json_type_int:
        snprintf(num, sizeof num, "%lld", (long long)json_object_get_int64(v));
        srepr_text(r, num);
        break;
    case json_type_double:
        celery_pyrepr_float(json_object_get_double(v), num, sizeof num);
        srepr_text(r, num);
        break;
    case json_type_string:
        srepr_string(r, json_object_get_string(v), (size_t)json_object_get_string_len(v));
        break;
    case json_type_object:
        srepr_container(r, v, true);
        break;
    case json_type_array:
        srepr_container(r, v, false);
        break;
    }
}

char *celery_pyrepr_saferepr(json_object *value, long maxlen)
{
    struct srepr r = {STRBUF_INIT, maxlen >= 0, maxlen, false, 0};
    srepr_value(&r, value);
    return strbuf_steal(&r.out);
}

/* ---- Python's repr(str), for exception reprs ---- */

/* Decodes one UTF-8 sequence at s (len > 0); returns its length, or 0 when malformed. */
static size_t utf8_decode(const unsigned char *s, size_t len, unsigned *cp)
{
    size_t n = s[0] < 0x80             ? 1
               : (s[0] & 0xE0) == 0xC0 ? 2
               : (s[0] & 0xF0) == 0xE0 ? 3
               : (s[0] & 0xF8) == 0xF0 ? 4
                                       : 0;
    if (n == 0 || n > len || !utf8_valid((const char *)s, n))
        return 0;
    *cp = n == 1 ? s[0] : s[0] & (0x7F >> n);
    for (size_t i = 1; i < n; i++)
        *cp = (*cp << 6) | (s[i] & 0x3F);
    return n;
}

/* Characters str.isprintable() rejects that a message may plausibly hold: controls,
 * C1 controls, no-break space, soft hyphen and the common invisible format characters. */
static bool py_unprintable(unsigned cp)
{
    return cp < 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0xAD ||
           (cp >= 0x200B && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202E) ||
           (cp >= 0x2060 && cp <= 0x2064) || cp == 0xFEFF;
}

static void py_escape(struct strbuf *sb, unsigned cp)
{
    if (cp == '\n')
        strbuf_append_str(sb, "\\n");
    else if (cp == '\r')
        strbuf_append_str(sb, "\\r");
    else if (cp == '\t')
        strbuf_append_str(sb, "\\t");
    else if (cp <= 0xFF)
        strbuf_appendf(sb, "\\x%02x", cp);
    else
        strbuf_appendf(sb, "\\u%04x", cp);
}

static void py_str_repr(struct strbuf *sb, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s);
    char quote = strchr(s, '\'') && !strchr(s, '"') ? '"' : '\'';

    strbuf_append_char(sb, quote);
    while (len > 0) {
        unsigned cp;
        size_t n = utf8_decode(p, len, &cp);
        if (n == 0) { /* not UTF-8: show the byte, keep the output valid UTF-8 */
            strbuf_appendf(sb, "\\x%02x", *p);
            n = 1;
        } else if (cp == '\\' || cp == (unsigned)quote) {
            strbuf_append_char(sb, '\\');
            strbuf_append_char(sb, (char)cp);
        } else if (py_unprintable(cp)) {
            py_escape(sb, cp);
        } else {
            strbuf_append(sb, p, n);
        }
        p += n;
        len -= n;
    }
    strbuf_append_char(sb, quote);
}

char *celery_pyrepr_exception(const char *exc_type, const char *message)
{
    struct strbuf sb = STRBUF_INIT;
    strbuf_append_str(&sb, exc_type && exc_type[0] ? exc_type : "Exception");
    strbuf_append_char(&sb, '(');
    if (message != NULL)
        py_str_repr(&sb, message);
    strbuf_append_char(&sb, ')');
    return strbuf_steal(&sb);
}
