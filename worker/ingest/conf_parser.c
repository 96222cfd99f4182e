/* Streaming parser for Splunk .conf files (CONTRACT 1.6): bytes in, stanzas out.
 *
 * Bytes are gathered into whole physical lines before anything is interpreted, so
 * where the caller's chunks split the input can never change the result (a BOM or
 * a multi-byte character split across chunks is seen whole). */
#include "ingest/conf_parser.h"
#include "base/utf8.h"
#include "base/xalloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char BOM[] = "\xEF\xBB\xBF";

static int process_line(struct conf_parser *p, struct cw_error *err);
static void handle_line(struct conf_parser *p, const char *s, size_t n);
static void handle_continued(struct conf_parser *p, const char *s, size_t n);
static void finish_continuation(struct conf_parser *p);
static void set_setting(struct conf_parser *p, const char *key, size_t klen, const char *val,
                        size_t vlen);

void conf_parser_init(struct conf_parser *p, size_t max_line_bytes)
{
    memset(p, 0, sizeof *p);
    p->max_line = max_line_bytes ? max_line_bytes : CONF_PARSER_DEFAULT_MAX_LINE;
    p->max_settings = CONF_PARSER_DEFAULT_MAX_SETTINGS;
    p->max_stanza_bytes = CONF_PARSER_DEFAULT_MAX_STANZA_BYTES;
    strbuf_init(&p->line);
    strbuf_init(&p->value);
}

void conf_parser_set_limits(struct conf_parser *p, size_t max_settings, size_t max_stanza_bytes)
{
    p->max_settings = max_settings ? max_settings : CONF_PARSER_DEFAULT_MAX_SETTINGS;
    p->max_stanza_bytes =
        max_stanza_bytes ? max_stanza_bytes : CONF_PARSER_DEFAULT_MAX_STANZA_BYTES;
}

void conf_parser_set_sink(struct conf_parser *p, conf_stanza_fn fn, void *ctx)
{
    p->sink = fn;
    p->sink_ctx = ctx;
}

/* ---- small text helpers -------------------------------------------------------- */

/* Horizontal white space only: a kept line break of a continued value is content. */
static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r';
}

/* True when s[0..*n) continues on the next line: it ends in a backslash once trailing
 * spaces and tabs are stripped (Splunk strips them first; its own default files end
 * lines in "\\ "). *n is then cut to the text before that backslash. */
static bool ends_in_continuation(const char *s, size_t *n)
{
    size_t len = *n;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (!len || s[len - 1] != '\\')
        return false;
    *n = len - 1;
    return true;
}

static void trim(const char **s, size_t *n)
{
    while (*n && is_blank(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && is_blank((*s)[*n - 1]))
        (*n)--;
}

/* ---- the key index of the stanza being filled ------------------------------------ */

static uint64_t hash_key(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static void index_insert(struct conf_key_index *ix, const struct conf_stanza *st, size_t idx)
{
    const char *key = st->settings[idx].key;
    size_t mask = ix->cap - 1;
    size_t i = hash_key(key, strlen(key)) & mask;
    while (ix->slots[i])
        i = (i + 1) & mask;
    ix->slots[i] = idx + 1;
    ix->used++;
}

static void index_grow(struct conf_key_index *ix, const struct conf_stanza *st)
{
    free(ix->slots);
    ix->cap = ix->cap ? ix->cap * 2 : 16;
    ix->slots = cw_xcalloc(ix->cap, sizeof *ix->slots);
    ix->used = 0;
    for (size_t i = 0; i < st->nsettings; i++)
        index_insert(ix, st, i);
}

/* Forgets the previous stanza's keys; a big table is dropped rather than wiped so a
 * file of many small stanzas after one huge one stays linear. */
static void index_reset(struct conf_key_index *ix)
{
    if (ix->cap > 64) {
        free(ix->slots);
        ix->slots = NULL;
        ix->cap = 0;
    } else if (ix->cap) {
        memset(ix->slots, 0, ix->cap * sizeof *ix->slots);
    }
    ix->used = 0;
}

/* Index of key in st, or SIZE_MAX. */
static size_t index_find(const struct conf_key_index *ix, const struct conf_stanza *st,
                         const char *key, size_t klen)
{
    if (!ix->cap)
        return SIZE_MAX;
    size_t mask = ix->cap - 1;
    for (size_t i = hash_key(key, klen) & mask; ix->slots[i]; i = (i + 1) & mask) {
        const char *k = st->settings[ix->slots[i] - 1].key;
        if (strncmp(k, key, klen) == 0 && k[klen] == '\0')
            return ix->slots[i] - 1;
    }
    return SIZE_MAX;
}

/* ---- building the result ---------------------------------------------------------- */

static void stanza_free(struct conf_stanza *st)
{
    for (size_t j = 0; j < st->nsettings; j++) {
        free(st->settings[j].key);
        free(st->settings[j].value);
    }
    free(st->settings);
    free(st->name);
    memset(st, 0, sizeof *st);
}

/* The stanza being filled is complete: collected into the file, or set aside for the
 * sink, which process_line calls once the line is done (the line handlers cannot fail). */
static void end_stanza(struct conf_parser *p)
{
    if (!p->have_stanza)
        return;
    p->have_stanza = false;
    if (p->sink) {
        p->done = p->stanza;
        p->have_done = true;
    } else {
        struct conf_file *f = &p->file;
        if (f->nstanzas == f->cap) {
            f->cap = f->cap ? f->cap * 2 : 8;
            f->stanzas = cw_xrealloc(f->stanzas, f->cap * sizeof *f->stanzas);
        }
        f->stanzas[f->nstanzas++] = p->stanza;
    }
    memset(&p->stanza, 0, sizeof p->stanza);
}

/* Hands the stanza completed by the last line to the sink, then releases it. */
static int deliver_done(struct conf_parser *p, struct cw_error *err)
{
    if (!p->have_done)
        return 0;
    p->have_done = false;
    int rc = p->sink(p->sink_ctx, &p->done, err);
    stanza_free(&p->done);
    if (rc != 0)
        p->failed = true;
    return rc;
}

static void start_stanza(struct conf_parser *p, const char *name, size_t n)
{
    end_stanza(p);
    struct conf_stanza *st = &p->stanza;
    st->name = cw_xstrndup(name, n);
    st->order_in_file = (int)p->nstanzas++;
    p->have_stanza = true;
    p->stanza_bytes = n;
    index_reset(&p->keys);
}

/* The stanza's text grew by `more` bytes (after shrinking by `less`). */
static void count_bytes(struct conf_parser *p, size_t more, size_t less)
{
    p->stanza_bytes = p->stanza_bytes - less + more;
    if (p->stanza_bytes > p->max_stanza_bytes)
        p->over_limit = "bytes";
}

/* Duplicate keys keep their first position and take the last value (Splunk's
 * "last one wins" within a stanza). */
static void set_setting(struct conf_parser *p, const char *key, size_t klen, const char *val,
                        size_t vlen)
{
    if (!p->have_stanza) /* settings before any header */
        start_stanza(p, "default", 7);
    struct conf_stanza *st = &p->stanza;
    size_t at = index_find(&p->keys, st, key, klen);
    if (at != SIZE_MAX) {
        count_bytes(p, vlen, strlen(st->settings[at].value));
        free(st->settings[at].value);
        st->settings[at].value = cw_xstrndup(val, vlen);
        return;
    }
    if (st->nsettings >= p->max_settings) {
        p->over_limit = "settings";
        return;
    }
    count_bytes(p, klen + vlen, 0);
    if (st->nsettings == st->cap) {
        st->cap = st->cap ? st->cap * 2 : 8;
        st->settings = cw_xrealloc(st->settings, st->cap * sizeof *st->settings);
    }
    st->settings[st->nsettings].key = cw_xstrndup(key, klen);
    st->settings[st->nsettings].value = cw_xstrndup(val, vlen);
    st->nsettings++;
    if ((p->keys.used + 1) * 2 > p->keys.cap)
        index_grow(&p->keys, st);
    else
        index_insert(&p->keys, st, st->nsettings - 1);
}

/* ---- line interpretation ------------------------------------------------------------ */

static void handle_header(struct conf_parser *p, const char *s, size_t n)
{
    const char *close = memrchr(s, ']', n);
    if (!close) {
        p->file.warnings++;
        return;
    }
    /* From the first "[" to the last "]": "[source::/var/log/[a-z]*.log]" is legal. */
    const char *name = s + 1;
    size_t len = (size_t)(close - name);
    trim(&name, &len);
    start_stanza(p, name, len);
}

static void handle_setting(struct conf_parser *p, const char *s, size_t n)
{
    const char *eq = memchr(s, '=', n);
    if (!eq) {
        p->file.warnings++;
        return;
    }
    const char *key = s;
    size_t klen = (size_t)(eq - s);
    trim(&key, &klen);
    if (klen == 0) { /* "= value": nothing to name it by */
        p->file.warnings++;
        return;
    }
    const char *val = eq + 1;
    size_t vlen = n - (size_t)(val - s);
    if (ends_in_continuation(val, &vlen)) {
        /* Continued: keep everything up to the backslash, then the line break. */
        while (vlen && is_blank(*val)) {
            val++;
            vlen--;
        }
        p->cont_key = cw_xstrndup(key, klen);
        strbuf_reset(&p->value);
        strbuf_append(&p->value, val, vlen);
        strbuf_append_char(&p->value, '\n');
        p->in_continuation = true;
        p->logical_start = p->lineno;
        return;
    }
    trim(&val, &vlen);
    set_setting(p, key, klen, val, vlen);
}

/* s[0..n) is one physical line without its terminator (CR removed, BOM removed). */
static void handle_line(struct conf_parser *p, const char *s, size_t n)
{
    const char *t = s;
    size_t tn = n;
    trim(&t, &tn);
    if (tn == 0 || t[0] == '#')
        return;
    if (t[0] == '[')
        handle_header(p, t, tn);
    else
        handle_setting(p, s, n);
}

/* A continued physical line is value text, whatever it starts with. */
static void handle_continued(struct conf_parser *p, const char *s, size_t n)
{
    if (ends_in_continuation(s, &n)) {
        strbuf_append(&p->value, s, n);
        strbuf_append_char(&p->value, '\n');
        return;
    }
    strbuf_append(&p->value, s, n);
    finish_continuation(p);
}

static void finish_continuation(struct conf_parser *p)
{
    const char *v = strbuf_cstr(&p->value);
    size_t vlen = p->value.len;
    while (vlen && is_blank(v[vlen - 1]))
        vlen--;
    set_setting(p, p->cont_key, strlen(p->cont_key), v, vlen);
    free(p->cont_key);
    p->cont_key = NULL;
    strbuf_reset(&p->value);
    p->in_continuation = false;
    p->logical_len = 0;
}

static int fail_too_long(struct conf_parser *p, size_t lineno, struct cw_error *err)
{
    p->failed = true;
    if (p->in_continuation)
        CW_FAIL(err, CW_ERR_PERMANENT,
                "line %zu: logical line (continued from line %zu) longer than %zu bytes", lineno,
                p->logical_start, p->max_line);
    else
        CW_FAIL(err, CW_ERR_PERMANENT, "line %zu: line longer than %zu bytes", lineno, p->max_line);
    return -1;
}

static int fail_over_limit(struct conf_parser *p, struct cw_error *err)
{
    p->failed = true;
    if (strcmp(p->over_limit, "settings") == 0)
        CW_FAIL(err, CW_ERR_PERMANENT, "line %zu: more than %zu settings in one stanza", p->lineno,
                p->max_settings);
    else
        CW_FAIL(err, CW_ERR_PERMANENT, "line %zu: stanza larger than %zu bytes", p->lineno,
                p->max_stanza_bytes);
    return -1;
}

/* Interprets the complete physical line in p->line and empties it. */
static int process_line(struct conf_parser *p, struct cw_error *err)
{
    const char *s = strbuf_cstr(&p->line);
    size_t n = p->line.len;

    p->lineno++;
    if (n && s[n - 1] == '\r')
        n--;
    if (p->lineno == 1 && n >= 3 && memcmp(s, BOM, 3) == 0) {
        s += 3;
        n -= 3;
    }
    if (p->logical_len + n > p->max_line)
        return fail_too_long(p, p->lineno, err);
    if (memchr(s, '\0', n)) {
        p->failed = true;
        CW_FAIL(err, CW_ERR_PERMANENT, "line %zu: NUL byte (not a text file)", p->lineno);
        return -1;
    }
    if (!utf8_valid(s, n)) {
        p->failed = true;
        CW_FAIL(err, CW_ERR_PERMANENT, "line %zu: invalid UTF-8", p->lineno);
        return -1;
    }
    if (p->in_continuation) {
        p->logical_len += n;
        handle_continued(p, s, n);
    } else {
        handle_line(p, s, n);
        if (p->in_continuation)
            p->logical_len = n;
    }
    strbuf_reset(&p->line);
    return p->over_limit ? fail_over_limit(p, err) : deliver_done(p, err);
}

/* ---- public entry points ------------------------------------------------------------ */

int conf_parser_feed(struct conf_parser *p, const void *data, size_t len, struct cw_error *err)
{
    const char *d = data;

    if (p->failed) {
        CW_FAIL(err, CW_ERR_INTERNAL, "conf parser used after an error");
        return -1;
    }
    while (len > 0) {
        const char *nl = memchr(d, '\n', len);
        size_t take = nl ? (size_t)(nl - d) : len;
        /* Refuse before buffering, so one endless line cannot exhaust memory; the +1
         * leaves room for the CR of a CRLF, which does not count. (+3 for a BOM.) */
        size_t room = p->max_line + 1 + (p->lineno == 0 ? 3 : 0);
        if (p->logical_len + p->line.len + take > room)
            return fail_too_long(p, p->lineno + 1, err);
        strbuf_append(&p->line, d, take);
        if (!nl)
            break;
        if (process_line(p, err) < 0)
            return -1;
        d += take + 1;
        len -= take + 1;
    }
    return 0;
}

int conf_parser_finish(struct conf_parser *p, struct conf_file *out, struct cw_error *err)
{
    if (p->failed) {
        CW_FAIL(err, CW_ERR_INTERNAL, "conf parser used after an error");
        return -1;
    }
    if (p->line.len > 0 && process_line(p, err) < 0) /* last line without newline */
        return -1;
    if (p->in_continuation) /* a file ending in "\": the value ends there */
        finish_continuation(p);
    if (p->over_limit)
        return fail_over_limit(p, err);
    end_stanza(p);
    if (deliver_done(p, err) != 0)
        return -1;
    *out = p->file;
    memset(&p->file, 0, sizeof p->file);
    return 0;
}

void conf_parser_free(struct conf_parser *p)
{
    strbuf_free(&p->line);
    strbuf_free(&p->value);
    free(p->cont_key);
    p->cont_key = NULL;
    free(p->keys.slots);
    memset(&p->keys, 0, sizeof p->keys);
    stanza_free(&p->stanza);
    stanza_free(&p->done);
    p->have_stanza = p->have_done = false;
    conf_file_free(&p->file);
}

void conf_file_free(struct conf_file *f)
{
    for (size_t i = 0; i < f->nstanzas; i++)
        stanza_free(&f->stanzas[i]);
    free(f->stanzas);
    memset(f, 0, sizeof *f);
}

int conf_parse_buffer(const void *data, size_t len, size_t max_line_bytes, struct conf_file *out,
                      struct cw_error *err)
{
    struct conf_parser p;
    int rc;

    conf_parser_init(&p, max_line_bytes);
    rc = conf_parser_feed(&p, data, len, err);
    if (rc == 0)
        rc = conf_parser_finish(&p, out, err);
    conf_parser_free(&p);
    return rc;
}

const char *conf_stanza_get(const struct conf_stanza *st, const char *key)
{
    for (size_t i = 0; i < st->nsettings; i++)
        if (strcmp(st->settings[i].key, key) == 0)
            return st->settings[i].value;
    return NULL;
}
