/* libFuzzer target: the .conf parser (ingest/conf_parser.h).
 *
 * Input: limit:u8, split:u8, then the file. limit 0 means the default line limit,
 * otherwise a tiny one (1..255 bytes) so the over-long-line path is reached. The file is
 * parsed in one piece and again fed in chunks whose sizes come from `split`: the header
 * promises that chunk boundaries never change the result, so any difference aborts. The
 * chunked parse streams its stanzas to a sink, which must see exactly the stanzas the
 * one-shot parse collects. Every string produced must be NUL-free valid UTF-8. */
#include "ingest/conf_parser.h"
#include "base/strbuf.h"
#include "base/utf8.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_conf_parser: %s\n", what);
    abort();
}

static void check_text(const char *s)
{
    if (s == NULL || !utf8_valid(s, strlen(s)))
        fail("a parsed string is not valid UTF-8");
}

static void check_file(const struct conf_file *f)
{
    for (size_t i = 0; i < f->nstanzas; i++) {
        const struct conf_stanza *st = &f->stanzas[i];
        check_text(st->name);
        if (st->order_in_file != (int)i)
            fail("stanzas out of order");
        for (size_t k = 0; k < st->nsettings; k++) {
            check_text(st->settings[k].key);
            check_text(st->settings[k].value);
            if (st->settings[k].key[0] == '\0')
                fail("empty key");
            if (conf_stanza_get(st, st->settings[k].key) != st->settings[k].value)
                fail("conf_stanza_get does not find a key");
        }
    }
}

/* One stanza as text; key and value lengths make the dump unambiguous. */
static void dump_stanza(struct strbuf *sb, const struct conf_stanza *st)
{
    strbuf_appendf(sb, "[%zu:%s] #%d %zu\n", strlen(st->name), st->name, st->order_in_file,
                   st->nsettings);
    for (size_t k = 0; k < st->nsettings; k++)
        strbuf_appendf(sb, "%zu:%s=%zu:%s\n", strlen(st->settings[k].key), st->settings[k].key,
                       strlen(st->settings[k].value), st->settings[k].value);
}

static int sink(void *ctx, const struct conf_stanza *st, struct cw_error *err)
{
    (void)err;
    dump_stanza(ctx, st);
    return 0;
}

static bool same_stanzas(const struct conf_file *a, const struct strbuf *streamed)
{
    struct strbuf sb = STRBUF_INIT;
    for (size_t i = 0; i < a->nstanzas; i++)
        dump_stanza(&sb, &a->stanzas[i]);
    bool same = strcmp(strbuf_cstr(&sb), strbuf_cstr(streamed)) == 0;
    strbuf_free(&sb);
    return same;
}

/* Feeds the file in chunks of 1..16 bytes (sizes from a tiny LCG seeded by `split`). */
static int parse_chunked(const uint8_t *p, size_t n, size_t max_line, uint8_t split,
                         struct conf_file *out, struct strbuf *streamed, struct cw_error *err)
{
    struct conf_parser parser;
    uint32_t state = split;
    int rc = 0;

    conf_parser_init(&parser, max_line);
    conf_parser_set_sink(&parser, sink, streamed);
    while (n > 0 && rc == 0) {
        state = state * 1103515245u + 12345u;
        size_t len = 1 + (state >> 16) % 16;
        if (len > n)
            len = n;
        rc = conf_parser_feed(&parser, p, len, err);
        p += len;
        n -= len;
    }
    if (rc == 0)
        rc = conf_parser_finish(&parser, out, err);
    conf_parser_free(&parser);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct conf_file whole = {0}, chunked = {0};
    struct cw_error e1 = {0}, e2 = {0};

    if (size < 2)
        return 0;
    size_t max_line = data[0] ? data[0] : CONF_PARSER_DEFAULT_MAX_LINE;
    int rc1 = conf_parse_buffer(data + 2, size - 2, max_line, &whole, &e1);
    struct strbuf streamed = STRBUF_INIT;
    int rc2 = parse_chunked(data + 2, size - 2, max_line, data[1], &chunked, &streamed, &e2);
    if (rc1 != rc2)
        fail("chunked parse and one-shot parse disagree on success");
    if (rc1 != 0 && strcmp(e1.message, e2.message) != 0)
        fail("chunked parse and one-shot parse report different errors");
    if (rc1 == 0) {
        check_file(&whole);
        if (chunked.nstanzas != 0 || chunked.warnings != whole.warnings)
            fail("the streamed parse kept stanzas or counts other warnings");
        if (!same_stanzas(&whole, &streamed))
            fail("chunked streamed parse and one-shot parse produce different stanzas");
        conf_file_free(&whole);
        conf_file_free(&chunked);
    }
    strbuf_free(&streamed);
    return 0;
}
