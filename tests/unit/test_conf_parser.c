/* Unit tests for the Splunk .conf parser (CONTRACT 1.6) and the UTF-8 helpers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "ingest/conf_parser.h"
#include "base/utf8.h"
#include "base/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PALO TESTDATA_DIR "/splunk_ta_paloalto/default/"

/* ---- helpers ---------------------------------------------------------------------- */

static struct conf_file parse_ok(const char *text)
{
    struct conf_file f;
    struct cw_error err;
    int rc = conf_parse_buffer(text, strlen(text), 0, &f, &err);
    if (rc != 0)
        fail_msg("unexpected parse error: %s", err.message);
    return f;
}

static void parse_fails(const char *data, size_t len, size_t max_line, const char *message)
{
    struct conf_file f;
    struct cw_error err;
    memset(&f, 0, sizeof f);
    cw_error_clear(&err);
    assert_int_equal(conf_parse_buffer(data, len, max_line, &f, &err), -1);
    assert_int_equal(err.cls, CW_ERR_PERMANENT);
    assert_string_equal(err.message, message);
    assert_int_equal(f.nstanzas, 0); /* *out untouched */
}

static void assert_setting(const struct conf_stanza *st, size_t i, const char *key,
                           const char *value)
{
    assert_true(i < st->nsettings);
    assert_string_equal(st->settings[i].key, key);
    assert_string_equal(st->settings[i].value, value);
}

/* A canonical text dump, so two parses can be compared exactly. */
static char *dump(const struct conf_file *f)
{
    struct strbuf sb = STRBUF_INIT;
    strbuf_appendf(&sb, "warnings=%zu\n", f->warnings);
    for (size_t i = 0; i < f->nstanzas; i++) {
        const struct conf_stanza *st = &f->stanzas[i];
        strbuf_appendf(&sb, "[%s] #%d\n", st->name, st->order_in_file);
        for (size_t j = 0; j < st->nsettings; j++)
            strbuf_appendf(&sb, "<%s>=<%s>\n", st->settings[j].key, st->settings[j].value);
    }
    return strbuf_steal(&sb);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    struct strbuf sb = STRBUF_INIT;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, fp)) > 0)
        strbuf_append(&sb, buf, n);
    fclose(fp);
    *len = sb.len;
    return strbuf_steal(&sb);
}

static struct conf_file parse_path(const char *path)
{
    size_t len;
    char *data = read_file(path, &len);
    struct conf_file f;
    struct cw_error err;
    if (conf_parse_buffer(data, len, 0, &f, &err) != 0)
        fail_msg("%s: %s", path, err.message);
    free(data);
    return f;
}

/* ---- UTF-8 ------------------------------------------------------------------------ */

static void test_utf8_valid(void **state)
{
    (void)state;
    assert_true(utf8_valid("", 0));
    assert_true(utf8_valid("plain ascii", 11));
    assert_true(utf8_valid("caf\xC3\xA9", 5));       /* é */
    assert_true(utf8_valid("\xE2\x82\xAC", 3));      /* € */
    assert_true(utf8_valid("\xF0\x9F\x98\x80", 4));  /* 😀 */
    assert_true(utf8_valid("\xF4\x8F\xBF\xBF", 4));  /* U+10FFFF */
    assert_true(utf8_valid("\xED\x9F\xBF", 3));      /* U+D7FF */
    assert_false(utf8_valid("\xC0\xAF", 2));         /* overlong "/" */
    assert_false(utf8_valid("\xC1\xBF", 2));         /* overlong */
    assert_false(utf8_valid("\xE0\x80\xAF", 3));     /* overlong */
    assert_false(utf8_valid("\xF0\x80\x80\xAF", 4)); /* overlong */
    assert_false(utf8_valid("\xED\xA0\x80", 3));     /* surrogate U+D800 */
    assert_false(utf8_valid("\xED\xBF\xBF", 3));     /* surrogate U+DFFF */
    assert_false(utf8_valid("\xF4\x90\x80\x80", 4)); /* U+110000 */
    assert_false(utf8_valid("\xF5\x80\x80\x80", 4));
    assert_false(utf8_valid("\xFF", 1));
    assert_false(utf8_valid("\x80", 1));         /* lone continuation */
    assert_false(utf8_valid("\xC3", 1));         /* truncated */
    assert_false(utf8_valid("\xE2\x82", 2));     /* truncated */
    assert_false(utf8_valid("\xE2\x28\xA1", 3)); /* bad continuation */
    assert_false(utf8_valid("abc\xE9", 4));      /* Latin-1 é */
}

static void test_utf8_prefix(void **state)
{
    (void)state;
    const char *s = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z"; /* a é € 😀 z */
    size_t len = strlen(s);
    assert_int_equal(utf8_prefix_chars(s, len, 0), 0);
    assert_int_equal(utf8_prefix_chars(s, len, 1), 1);
    assert_int_equal(utf8_prefix_chars(s, len, 2), 3);
    assert_int_equal(utf8_prefix_chars(s, len, 3), 6);
    assert_int_equal(utf8_prefix_chars(s, len, 4), 10);
    assert_int_equal(utf8_prefix_chars(s, len, 5), 11);
    assert_int_equal(utf8_prefix_chars(s, len, 99), 11);
    assert_int_equal(utf8_char_count(s, len), 5);
    assert_int_equal(utf8_cut_bytes(s, len, 99), 11);
    assert_int_equal(utf8_cut_bytes(s, len, 2), 1); /* not inside é */
    assert_int_equal(utf8_cut_bytes(s, len, 3), 3);
    assert_int_equal(utf8_cut_bytes(s, len, 9), 6); /* not inside 😀 */
    assert_int_equal(utf8_cut_bytes(s, len, 10), 10);
}

/* ---- parsing rules ---------------------------------------------------------------- */

static void test_basic_and_default_stanza(void **state)
{
    (void)state;
    struct conf_file f = parse_ok("# header comment\n"
                                  "top = level\n"
                                  "\n"
                                  "[monitor:///var/log]\n"
                                  "index = main\n"
                                  "  sourcetype=syslog  \n"
                                  "[second]\n");
    assert_int_equal(f.nstanzas, 3);
    assert_int_equal(f.warnings, 0);
    assert_string_equal(f.stanzas[0].name, "default");
    assert_int_equal(f.stanzas[0].order_in_file, 0);
    assert_int_equal(f.stanzas[0].nsettings, 1);
    assert_setting(&f.stanzas[0], 0, "top", "level");
    assert_string_equal(f.stanzas[1].name, "monitor:///var/log");
    assert_int_equal(f.stanzas[1].order_in_file, 1);
    assert_int_equal(f.stanzas[1].nsettings, 2);
    assert_setting(&f.stanzas[1], 0, "index", "main");
    assert_setting(&f.stanzas[1], 1, "sourcetype", "syslog");
    assert_string_equal(f.stanzas[2].name, "second");
    assert_int_equal(f.stanzas[2].nsettings, 0);
    assert_int_equal(f.stanzas[2].order_in_file, 2);
    assert_string_equal(conf_stanza_get(&f.stanzas[1], "index"), "main");
    assert_null(conf_stanza_get(&f.stanzas[1], "missing"));
    conf_file_free(&f);
}

static void test_default_only_when_needed(void **state)
{
    (void)state;
    struct conf_file f = parse_ok("# only comments\n\n[a]\nx=1\n");
    assert_int_equal(f.nstanzas, 1);
    assert_string_equal(f.stanzas[0].name, "a");
    assert_int_equal(f.stanzas[0].order_in_file, 0);
    conf_file_free(&f);

    f = parse_ok("");
    assert_int_equal(f.nstanzas, 0);
    conf_file_free(&f);

    /* An explicit [default] is an ordinary (possibly empty) stanza. */
    f = parse_ok("[default]\n");
    assert_int_equal(f.nstanzas, 1);
    assert_string_equal(f.stanzas[0].name, "default");
    assert_int_equal(f.stanzas[0].nsettings, 0);
    conf_file_free(&f);
}

static void test_crlf_and_bom(void **state)
{
    (void)state;
    struct conf_file f = parse_ok("\xEF\xBB\xBF[a]\r\nk = v\r\n\r\nk2=\r\n[b]\r\nx = y");
    assert_int_equal(f.nstanzas, 2);
    assert_string_equal(f.stanzas[0].name, "a");
    assert_setting(&f.stanzas[0], 0, "k", "v");
    assert_setting(&f.stanzas[0], 1, "k2", "");
    assert_setting(&f.stanzas[1], 0, "x", "y");
    conf_file_free(&f);

    /* A BOM before a setting: the key must not carry it. */
    f = parse_ok("\xEF\xBB\xBFkey=1\n");
    assert_setting(&f.stanzas[0], 0, "key", "1");
    conf_file_free(&f);

    /* A BOM is only special at the very start of the file. */
    f = parse_ok("[a]\n\xEF\xBB\xBFkey=1\n");
    assert_setting(&f.stanzas[0], 0, "\xEF\xBB\xBFkey", "1");
    conf_file_free(&f);
}

static void test_continuation(void **state)
{
    (void)state;
    struct conf_file f = parse_ok("[s]\n"
                                  "regex = first \\\n"
                                  "# not a comment\\\n"
                                  "[not a header]\\\r\n"
                                  "  last  \n"
                                  "after = 1\n");
    assert_int_equal(f.nstanzas, 1);
    assert_int_equal(f.stanzas[0].nsettings, 2);
    assert_setting(&f.stanzas[0], 0, "regex", "first \n# not a comment\n[not a header]\n  last");
    assert_setting(&f.stanzas[0], 1, "after", "1");
    conf_file_free(&f);

    /* A file that ends inside a continuation keeps what it has. */
    f = parse_ok("[s]\nk = a\\\nb\\");
    assert_setting(&f.stanzas[0], 0, "k", "a\nb\n");
    conf_file_free(&f);

    /* Only settings continue: a comment or header ending in "\" does not. */
    f = parse_ok("# comment \\\n[h]\\\nk = v\n");
    assert_int_equal(f.nstanzas, 1);
    assert_string_equal(f.stanzas[0].name, "h");
    assert_setting(&f.stanzas[0], 0, "k", "v");
    conf_file_free(&f);

    /* A backslash not at the end is ordinary text. */
    f = parse_ok("k = C:\\path\\ x\n");
    assert_setting(&f.stanzas[0], 0, "k", "C:\\path\\ x");
    conf_file_free(&f);
}

/* Splunk strips trailing spaces and tabs before it looks for the backslash. */
static void test_continuation_trailing_blanks(void **state)
{
    (void)state;
    struct conf_file f = parse_ok("[s]\n"
                                  "spaces = one \\   \n"
                                  "two\\\t\t\n"
                                  "three \\ \t \r\n"
                                  "four\n"
                                  "after = 1 \t\n");
    assert_int_equal(f.nstanzas, 1);
    assert_int_equal(f.stanzas[0].nsettings, 2);
    assert_setting(&f.stanzas[0], 0, "spaces", "one \ntwo\nthree \nfour");
    assert_setting(&f.stanzas[0], 1, "after", "1");
    conf_file_free(&f);

    /* Backslash then CRLF, and blanks before a CRLF. */
    f = parse_ok("k = a\\\r\nb\\  \r\nc\r\n");
    assert_setting(&f.stanzas[0], 0, "k", "a\nb\nc");
    conf_file_free(&f);

    /* A file whose last line is "\" plus blanks ends the value there. */
    f = parse_ok("k = a\\ \t");
    assert_setting(&f.stanzas[0], 0, "k", "a\n");
    conf_file_free(&f);

    /* There is no escape rule: of two backslashes at the end the last one continues
     * the line and the one before it is value text. */
    f = parse_ok("k = C:\\dir\\\\ \nnext\n");
    assert_setting(&f.stanzas[0], 0, "k", "C:\\dir\\\nnext");
    conf_file_free(&f);

    /* Other trailing white space (form feed, vertical tab) is not stripped first. */
    f = parse_ok("k = a\\\f\nb = 2\n");
    assert_setting(&f.stanzas[0], 0, "k", "a\\");
    assert_setting(&f.stanzas[0], 1, "b", "2");
    conf_file_free(&f);
}

static int parse_limited(const char *text, size_t max_settings, size_t max_bytes,
                         struct conf_file *f, struct cw_error *err)
{
    struct conf_parser p;
    conf_parser_init(&p, 0);
    conf_parser_set_limits(&p, max_settings, max_bytes);
    int rc = conf_parser_feed(&p, text, strlen(text), err);
    if (rc == 0)
        rc = conf_parser_finish(&p, f, err);
    conf_parser_free(&p);
    return rc;
}

/* One stanza is the most the parser holds when it streams: what one may hold is bounded. */
static void test_stanza_limits(void **state)
{
    (void)state;
    struct conf_file f = {0};
    struct cw_error err;

    /* Settings count per stanza; a repeated key replaces, it does not count. */
    assert_int_equal(parse_limited("[a]\nx=1\ny=2\n[b]\nz=1\nw=1\n", 2, 0, &f, &err), 0);
    assert_int_equal(f.nstanzas, 2);
    conf_file_free(&f);
    assert_int_equal(parse_limited("[a]\nx=1\nx=2\nx=3\n", 1, 0, &f, &err), 0);
    conf_file_free(&f);
    assert_int_equal(parse_limited("[a]\nx=1\ny=2\nz=3\n", 2, 0, &f, &err), -1);
    assert_int_equal(err.cls, CW_ERR_PERMANENT);
    assert_string_equal(err.message, "line 4: more than 2 settings in one stanza");
    assert_int_equal(f.nstanzas, 0);

    /* The implicit "default" stanza is a stanza too. */
    assert_int_equal(parse_limited("k = v\nj = w\n[a]\n", 1, 0, &f, &err), -1);
    assert_string_equal(err.message, "line 2: more than 1 settings in one stanza");

    /* A continued value that ends the file is still counted. */
    assert_int_equal(parse_limited("[a]\nx=1\ny=a\\\nb\\", 1, 0, &f, &err), -1);
    assert_string_equal(err.message, "line 4: more than 1 settings in one stanza");

    /* Bytes: the name, the keys and the values; a replaced value no longer counts. */
    assert_int_equal(parse_limited("[abc]\nk=1234\n[d]\nk=12345678\n", 0, 10, &f, &err), 0);
    conf_file_free(&f);
    assert_int_equal(parse_limited("[abc]\nk=123456\nk=1\nj=1234\n", 0, 10, &f, &err), 0);
    conf_file_free(&f);
    assert_int_equal(parse_limited("[abc]\nk=1234\nj=12\n", 0, 10, &f, &err), -1);
    assert_string_equal(err.message, "line 3: stanza larger than 10 bytes");

    /* The defaults are generous but finite. */
    struct conf_parser p;
    conf_parser_init(&p, 0);
    assert_int_equal(p.max_settings, CONF_PARSER_DEFAULT_MAX_SETTINGS);
    assert_int_equal(p.max_stanza_bytes, CONF_PARSER_DEFAULT_MAX_STANZA_BYTES);
    conf_parser_free(&p);
}

/* A stanza of twice the default settings limit fails at the first key over it. */
static void test_settings_bomb(void **state)
{
    (void)state;
    size_t n = 2 * CONF_PARSER_DEFAULT_MAX_SETTINGS;
    struct strbuf sb = STRBUF_INIT;
    strbuf_append_str(&sb, "[bomb]\n");
    for (size_t i = 0; i < n; i++)
        strbuf_appendf(&sb, "k%zu=v\n", i);
    char want[96];
    snprintf(want, sizeof want, "line %d: more than %d settings in one stanza",
             CONF_PARSER_DEFAULT_MAX_SETTINGS + 2, CONF_PARSER_DEFAULT_MAX_SETTINGS);
    parse_fails(sb.data, sb.len, 0, want);
    strbuf_free(&sb);
}

/* What a sink saw, in dump()'s format, so streaming can be compared with collecting. */
struct seen {
    struct strbuf text;
    size_t nstanzas;
    size_t fail_at; /* the sink fails on this stanza (1-based); 0 never */
};

static int record_stanza(void *ctx, const struct conf_stanza *st, struct cw_error *err)
{
    struct seen *s = ctx;
    if (++s->nstanzas == s->fail_at) {
        CW_FAIL(err, CW_ERR_TRANSIENT, "the sink gave up at [%s]", st->name);
        return -1;
    }
    strbuf_appendf(&s->text, "[%s] #%d\n", st->name, st->order_in_file);
    for (size_t j = 0; j < st->nsettings; j++)
        strbuf_appendf(&s->text, "<%s>=<%s>\n", st->settings[j].key, st->settings[j].value);
    return 0;
}

/* Streams data in chunks of `chunk` bytes into s; returns feed's/finish's result. */
static int stream(const char *data, size_t len, size_t chunk, struct seen *s, struct cw_error *err)
{
    struct conf_parser p;
    struct conf_file f = {0};
    conf_parser_init(&p, 0);
    conf_parser_set_sink(&p, record_stanza, s);
    int rc = 0;
    for (size_t off = 0; rc == 0 && off < len; off += chunk)
        rc = conf_parser_feed(&p, data + off, len - off < chunk ? len - off : chunk, err);
    if (rc == 0)
        rc = conf_parser_finish(&p, &f, err);
    if (rc == 0) {
        assert_int_equal(f.nstanzas, 0); /* the sink took them all */
        char head[48];
        snprintf(head, sizeof head, "warnings=%zu\n", f.warnings);
        struct strbuf all = STRBUF_INIT;
        strbuf_append_str(&all, head);
        strbuf_append(&all, s->text.data ? s->text.data : "", s->text.len);
        strbuf_free(&s->text);
        s->text = all;
    }
    conf_file_free(&f);
    conf_parser_free(&p);
    return rc;
}

/* Streaming hands out exactly the stanzas collecting gives, in order, whatever the chunks. */
static void test_sink_matches_collecting(void **state)
{
    (void)state;
    static const char *const files[] = {"inputs.conf", "props.conf", "transforms.conf",
                                        "macros.conf"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[256];
        snprintf(path, sizeof path, PALO "%s", files[i]);
        size_t len;
        char *data = read_file(path, &len);
        struct conf_file f = parse_path(path);
        char *want = dump(&f);
        for (size_t chunk = 1; chunk <= 4096; chunk *= 8) {
            struct seen s = {STRBUF_INIT, 0, 0};
            struct cw_error err;
            assert_int_equal(stream(data, len, chunk, &s, &err), 0);
            assert_int_equal(s.nstanzas, f.nstanzas);
            assert_string_equal(s.text.data, want);
            strbuf_free(&s.text);
        }
        free(want);
        conf_file_free(&f);
        free(data);
    }
}

/* A stanza is complete at the next header or at the end; a repeated header is another
 * stanza; settings before any header are "default"; an empty file has none. */
static void test_sink_boundaries(void **state)
{
    (void)state;
    struct cw_error err;
    const char *text = "k = 1\n[a]\nx = 1\n[a]\nx = 2\n[b]";
    struct seen s = {STRBUF_INIT, 0, 0};
    assert_int_equal(stream(text, strlen(text), 3, &s, &err), 0);
    assert_string_equal(s.text.data, "warnings=0\n[default] #0\n<k>=<1>\n[a] #1\n<x>=<1>\n"
                                     "[a] #2\n<x>=<2>\n[b] #3\n");
    strbuf_free(&s.text);

    s = (struct seen){STRBUF_INIT, 0, 0};
    assert_int_equal(stream("", 0, 1, &s, &err), 0);
    assert_int_equal(s.nstanzas, 0);
    strbuf_free(&s.text);

    /* 200,000 stanzas stream through one at a time: no per-file stanza limit. */
    size_t n = 200000;
    char *many = cw_xmalloc(n * 4 + 1);
    for (size_t i = 0; i < n; i++)
        memcpy(many + i * 4, "[s]\n", 4);
    s = (struct seen){STRBUF_INIT, 0, 0};
    assert_int_equal(stream(many, n * 4, 65536, &s, &err), 0);
    assert_int_equal(s.nstanzas, n);
    strbuf_free(&s.text);
    free(many);
}

/* A sink's error stops the parse and is returned as it is; a parse error comes after the
 * stanzas completed before its line were handed out. */
static void test_sink_errors(void **state)
{
    (void)state;
    struct cw_error err;
    const char *text = "[a]\n[b]\n[c]\n";
    struct seen s = {STRBUF_INIT, 0, 2};
    assert_int_equal(stream(text, strlen(text), 64, &s, &err), -1);
    assert_int_equal(err.cls, CW_ERR_TRANSIENT);
    assert_string_equal(err.message, "the sink gave up at [b]");
    strbuf_free(&s.text);

    /* ... also for the last stanza, handed out by finish. */
    s = (struct seen){STRBUF_INIT, 0, 3};
    assert_int_equal(stream(text, strlen(text), 64, &s, &err), -1);
    assert_string_equal(err.message, "the sink gave up at [c]");
    strbuf_free(&s.text);

    const char *bad = "[a]\nk = v\n[b]\nk = \xff\n";
    s = (struct seen){STRBUF_INIT, 0, 0};
    assert_int_equal(stream(bad, strlen(bad), 64, &s, &err), -1);
    assert_int_equal(err.cls, CW_ERR_PERMANENT);
    assert_string_equal(err.message, "line 4: invalid UTF-8");
    assert_int_equal(s.nstanzas, 1);
    assert_string_equal(s.text.data, "[a] #0\n<k>=<v>\n");
    strbuf_free(&s.text);
}

static void test_hash_in_values_and_comments(void **state)
{
    (void)state;
    struct conf_file f = parse_ok("[s]\n"
                                  "REGEX = ^#(\\d+)# tail\n"
                                  "   # indented comment = not a setting\n"
                                  "#k = commented\n"
                                  "color = #fff\n");
    assert_int_equal(f.stanzas[0].nsettings, 2);
    assert_setting(&f.stanzas[0], 0, "REGEX", "^#(\\d+)# tail");
    assert_setting(&f.stanzas[0], 1, "color", "#fff");
    assert_int_equal(f.warnings, 0);
    conf_file_free(&f);
}

static void test_headers(void **state)
{
    (void)state;
    struct conf_file f = parse_ok("[source::/var/log/[a-z]*.log]\n"
                                  "  [  spaced name  ]  trailing junk\n"
                                  "[]\n"
                                  "[a=b]\n"
                                  "[unclosed\n"
                                  "k = v\n");
    assert_int_equal(f.nstanzas, 4);
    assert_string_equal(f.stanzas[0].name, "source::/var/log/[a-z]*.log");
    assert_string_equal(f.stanzas[1].name, "spaced name");
    assert_string_equal(f.stanzas[2].name, "");
    assert_string_equal(f.stanzas[3].name, "a=b");
    assert_int_equal(f.warnings, 1); /* "[unclosed" */
    /* The unclosed header is ignored, so k belongs to [a=b]. */
    assert_setting(&f.stanzas[3], 0, "k", "v");
    conf_file_free(&f);
}

static void test_lines_without_equals(void **state)
{
    (void)state;
    struct conf_file f = parse_ok("[s]\njust some text\n= no key\nk = v = w\n");
    assert_int_equal(f.warnings, 2);
    assert_int_equal(f.stanzas[0].nsettings, 1);
    assert_setting(&f.stanzas[0], 0, "k", "v = w"); /* split at the first "=" */
    conf_file_free(&f);
}

static void test_duplicates_and_repeated_headers(void **state)
{
    (void)state;
    struct conf_file f = parse_ok("[a]\n"
                                  "x = 1\n"
                                  "y = 2\n"
                                  "x = 3\n"
                                  "[b]\n"
                                  "x = other\n"
                                  "[a]\n"
                                  "x = 4\n");
    assert_int_equal(f.nstanzas, 3);
    assert_int_equal(f.stanzas[0].nsettings, 2);
    assert_setting(&f.stanzas[0], 0, "x", "3"); /* first position, last value */
    assert_setting(&f.stanzas[0], 1, "y", "2");
    assert_setting(&f.stanzas[1], 0, "x", "other");
    assert_string_equal(f.stanzas[2].name, "a");
    assert_int_equal(f.stanzas[2].order_in_file, 2);
    assert_int_equal(f.stanzas[2].nsettings, 1);
    assert_setting(&f.stanzas[2], 0, "x", "4");
    conf_file_free(&f);
}

/* Enough keys to grow the key index several times; duplicates must still collapse. */
static void test_many_keys(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    strbuf_append_str(&sb, "[big]\n");
    for (int i = 0; i < 3000; i++)
        strbuf_appendf(&sb, "key%d = v%d\n", i, i);
    for (int i = 0; i < 3000; i += 7)
        strbuf_appendf(&sb, "key%d = again%d\n", i, i);
    strbuf_append_str(&sb, "[small]\nkey0 = s\n");
    struct conf_file f = parse_ok(strbuf_cstr(&sb));
    assert_int_equal(f.nstanzas, 2);
    assert_int_equal(f.stanzas[0].nsettings, 3000);
    assert_setting(&f.stanzas[0], 0, "key0", "again0");
    assert_setting(&f.stanzas[0], 1, "key1", "v1");
    assert_setting(&f.stanzas[0], 2996, "key2996", "again2996"); /* 2996 = 7 * 428 */
    assert_setting(&f.stanzas[0], 2997, "key2997", "v2997");
    assert_int_equal(f.stanzas[1].nsettings, 1);
    assert_setting(&f.stanzas[1], 0, "key0", "s");
    conf_file_free(&f);
    strbuf_free(&sb);
}

static void test_empty_values_and_no_newline(void **state)
{
    (void)state;
    struct conf_file f = parse_ok("[s]\na =\nb=\nc =   \nd = last");
    assert_int_equal(f.stanzas[0].nsettings, 4);
    assert_setting(&f.stanzas[0], 0, "a", "");
    assert_setting(&f.stanzas[0], 1, "b", "");
    assert_setting(&f.stanzas[0], 2, "c", "");
    assert_setting(&f.stanzas[0], 3, "d", "last");
    conf_file_free(&f);

    f = parse_ok("[only header, no newline]");
    assert_int_equal(f.nstanzas, 1);
    assert_string_equal(f.stanzas[0].name, "only header, no newline");
    conf_file_free(&f);
}

static void test_utf8_content(void **state)
{
    (void)state;
    struct conf_file f = parse_ok("[caf\xC3\xA9]\nk = \xE2\x82\xAC 5\n");
    assert_string_equal(f.stanzas[0].name, "caf\xC3\xA9");
    assert_setting(&f.stanzas[0], 0, "k", "\xE2\x82\xAC 5");
    conf_file_free(&f);
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    const char latin1[] = "[a]\nk = ok\nname = caf\xE9\n";
    parse_fails(latin1, strlen(latin1), 0, "line 3: invalid UTF-8");
    const char overlong[] = "[a\xC0\xAF]\n";
    parse_fails(overlong, strlen(overlong), 0, "line 1: invalid UTF-8");
    const char surrogate[] = "\n\nk = \xED\xA0\x80";
    parse_fails(surrogate, strlen(surrogate), 0, "line 3: invalid UTF-8");
    /* Even inside a comment: the file is not text we can store. */
    const char comment[] = "# \xFF\n";
    parse_fails(comment, strlen(comment), 0, "line 1: invalid UTF-8");
    const char nul[] = "[a]\nk = v\0w\n";
    parse_fails(nul, sizeof nul - 1, 0, "line 2: NUL byte (not a text file)");
}

static void test_line_limit(void **state)
{
    (void)state;
    struct conf_file f;
    struct cw_error err;
    /* Exactly 16 bytes is allowed, with LF or CRLF, and with a BOM on line 1. */
    const char ok[] = "\xEF\xBB\xBFk = 0123456789ab\r\nk2 = 0123456789a\n";
    assert_int_equal(conf_parse_buffer(ok, strlen(ok), 16, &f, &err), 0);
    assert_setting(&f.stanzas[0], 0, "k", "0123456789ab");
    conf_file_free(&f);

    const char big[] = "[a]\nk = 0123456789abc\n";
    parse_fails(big, strlen(big), 16, "line 2: line longer than 16 bytes");
    /* Same with no newline at all (caught in finish) and with CRLF. */
    parse_fails(big, strlen(big) - 1, 16, "line 2: line longer than 16 bytes");
    const char bigcr[] = "[a]\r\nk = 0123456789abc\r\n";
    parse_fails(bigcr, strlen(bigcr), 16, "line 2: line longer than 16 bytes");
    /* A logical line counts all of its continued lines: 9 + 5 + 2 = 16 bytes fit,
     * 9 + 5 + 3 do not. */
    const char cont_ok[] = "[a]\nk = 0123\\\n0123\\\n89\n";
    assert_int_equal(conf_parse_buffer(cont_ok, strlen(cont_ok), 16, &f, &err), 0);
    assert_setting(&f.stanzas[0], 0, "k", "0123\n0123\n89");
    conf_file_free(&f);
    const char cont[] = "[a]\nk = 0123\\\n0123\\\n890\n";
    parse_fails(cont, strlen(cont), 16,
                "line 4: logical line (continued from line 2) longer than 16 bytes");
}

/* A line over the limit is refused while it streams in, not after buffering it. */
static void test_line_limit_streaming(void **state)
{
    (void)state;
    struct conf_parser p;
    struct cw_error err;
    char chunk[1000];
    memset(chunk, 'x', sizeof chunk);
    conf_parser_init(&p, 4096);
    int rc = 0;
    int fed = 0;
    while (rc == 0 && fed < 100) {
        rc = conf_parser_feed(&p, chunk, sizeof chunk, &err);
        fed++;
    }
    assert_int_equal(rc, -1);
    assert_int_equal(fed, 5);
    assert_string_equal(err.message, "line 1: line longer than 4096 bytes");
    assert_true(p.line.len <= 4097 + 3);
    /* The parser refuses further use but can be freed (twice, even). */
    assert_int_equal(conf_parser_feed(&p, "a", 1, &err), -1);
    struct conf_file f;
    assert_int_equal(conf_parser_finish(&p, &f, &err), -1);
    conf_parser_free(&p);
    conf_parser_free(&p);
}

static const char CHUNK_SAMPLE[] = "\xEF\xBB\xBF"
                                   "pre = default \xC3\xA9\r\n"
                                   "[source::/var/log/[a-z]*.log]\r\n"
                                   "REGEX = ^#\\d+ \\\r\n"
                                   "# still value\\\n"
                                   "[still value]\n"
                                   "  # comment\n"
                                   "x = \xF0\x9F\x98\x80\n"
                                   "x = again\n"
                                   "[unclosed\n"
                                   "noequals\n"
                                   "[b]\n"
                                   "empty =\n"
                                   "last = no newline";

static void test_chunked_every_split(void **state)
{
    (void)state;
    size_t len = sizeof CHUNK_SAMPLE - 1;
    struct conf_file whole;
    struct cw_error err;
    assert_int_equal(conf_parse_buffer(CHUNK_SAMPLE, len, 0, &whole, &err), 0);
    char *expect = dump(&whole);
    assert_string_equal(expect, "warnings=2\n"
                                "[default] #0\n"
                                "<pre>=<default \xC3\xA9>\n"
                                "[source::/var/log/[a-z]*.log] #1\n"
                                "<REGEX>=<^#\\d+ \n# still value\n[still value]>\n"
                                "<x>=<again>\n"
                                "[b] #2\n"
                                "<empty>=<>\n"
                                "<last>=<no newline>\n");

    /* Every pair of split points: three chunks, including empty ones. */
    for (size_t i = 0; i <= len; i++) {
        for (size_t j = i; j <= len; j++) {
            struct conf_parser p;
            struct conf_file f;
            conf_parser_init(&p, 0);
            assert_int_equal(conf_parser_feed(&p, CHUNK_SAMPLE, i, &err), 0);
            assert_int_equal(conf_parser_feed(&p, CHUNK_SAMPLE + i, j - i, &err), 0);
            assert_int_equal(conf_parser_feed(&p, CHUNK_SAMPLE + j, len - j, &err), 0);
            assert_int_equal(conf_parser_finish(&p, &f, &err), 0);
            conf_parser_free(&p);
            char *got = dump(&f);
            if (strcmp(got, expect) != 0)
                fail_msg("split at %zu,%zu:\n%s", i, j, got);
            free(got);
            conf_file_free(&f);
        }
    }
    /* Byte by byte. */
    struct conf_parser p;
    struct conf_file f;
    conf_parser_init(&p, 0);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(conf_parser_feed(&p, CHUNK_SAMPLE + i, 1, &err), 0);
    assert_int_equal(conf_parser_finish(&p, &f, &err), 0);
    conf_parser_free(&p);
    char *got = dump(&f);
    assert_string_equal(got, expect);
    free(got);
    conf_file_free(&f);
    free(expect);
    conf_file_free(&whole);
}

/* An invalid byte split across chunks is still found, with the same line number. */
static void test_chunked_error(void **state)
{
    (void)state;
    const char bad[] = "[a]\nk = \xE2\x82\n";
    size_t len = strlen(bad);
    for (size_t i = 0; i <= len; i++) {
        struct conf_parser p;
        struct cw_error err;
        conf_parser_init(&p, 0);
        int rc = conf_parser_feed(&p, bad, i, &err);
        if (rc == 0)
            rc = conf_parser_feed(&p, bad + i, len - i, &err);
        assert_int_equal(rc, -1);
        assert_string_equal(err.message, "line 2: invalid UTF-8");
        conf_parser_free(&p);
    }
}

/* ---- the real Palo Alto add-on ------------------------------------------------------ */

/* Stanza counts checked independently with grep -cE '^\s*\[' (no file has settings
 * before its first header, and no continued line starts with "["). */
static void test_paloalto_counts(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        size_t stanzas;
    } cases[] = {
        {"addon_builder.conf", 1},
        {"alert_actions.conf", 2},
        {"app.conf", 5},
        {"collections.conf", 3},
        {"commands.conf", 1},
        {"eventtypes.conf", 26},
        {"inputs.conf", 3},
        {"macros.conf", 8},
        {"props.conf", 25},
        {"restmap.conf", 6},
        {"savedsearches.conf", 5},
        {"tags.conf", 15},
        {"transforms.conf", 60},
        {"web.conf", 11},
        {"workflow_actions.conf", 7},
        {"splunk_ta_paloalto_settings.conf", 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s%s", PALO, cases[i].file);
        struct conf_file f = parse_path(path);
        if (f.nstanzas != cases[i].stanzas)
            fail_msg("%s: %zu stanzas, expected %zu", cases[i].file, f.nstanzas, cases[i].stanzas);
        assert_int_equal(f.warnings, 0);
        for (size_t j = 0; j < f.nstanzas; j++)
            assert_int_equal(f.stanzas[j].order_in_file, (int)j);
        conf_file_free(&f);
    }
}

static void test_paloalto_values(void **state)
{
    (void)state;
    struct conf_file f = parse_path(PALO "inputs.conf");
    assert_string_equal(f.stanzas[0].name, "autofocus_export");
    assert_int_equal(f.stanzas[0].nsettings, 4);
    assert_setting(&f.stanzas[0], 0, "index", "default");
    assert_setting(&f.stanzas[0], 3, "interval", "3200");
    assert_string_equal(f.stanzas[1].name, "aperture");
    assert_setting(&f.stanzas[1], 0, "sourcetype", "pan:aperture");
    assert_string_equal(f.stanzas[2].name, "minemeld_feed");
    assert_int_equal(f.stanzas[2].nsettings, 4);
    conf_file_free(&f);

    f = parse_path(PALO "transforms.conf");
    assert_string_equal(f.stanzas[0].name, "pan_threat");
    assert_setting(&f.stanzas[0], 0, "DEST_KEY", "MetaData:Sourcetype");
    assert_setting(&f.stanzas[0], 1, "REGEX", "^[^,]+,[^,]+,[^,]+,THREAT,");
    assert_setting(&f.stanzas[0], 2, "FORMAT", "sourcetype::pan:threat");
    assert_string_equal(f.stanzas[7].name, "pan_traps4");
    assert_setting(&f.stanzas[7], 1, "REGEX", "^[^\\|,]+ CEF:\\s?0\\|");
    conf_file_free(&f);

    f = parse_path(PALO "alert_actions.conf");
    assert_string_equal(f.stanzas[0].name, "pantag");
    assert_string_equal(
        conf_stanza_get(&f.stanzas[0], "param._cam"),
        "{\n"
        "    \"category\" :   [\"Information Conveyance\"],\n"
        "    \"task\" :       [\"create\", \"delete\", \"allow\", \"block\"],\n"
        "    \"subject\" :    [\"network.firewall\"],\n"
        "    \"technology\" : [{\"vendor\":\"Palo Alto Networks\", \"product\":\"Firewall\"}],\n"
        "    \"drilldown_uri\" : \"../myapp/myview?form.sid=$orig_sid$&form.rid=$orig_rid$\",\n"
        "    \"supports_adhoc\" : true\n"
        "}");
    conf_file_free(&f);

    f = parse_path(PALO "macros.conf");
    const struct conf_stanza *mm = NULL;
    for (size_t i = 0; i < f.nstanzas; i++)
        if (strcmp(f.stanzas[i].name, "mm_indicators") == 0)
            mm = &f.stanzas[i];
    assert_non_null(mm);
    const char *def = conf_stanza_get(mm, "definition");
    assert_non_null(def);
    assert_true(
        strncmp(def, "inputlookup minemeldfeeds_lookup \n    | rename value.* AS * \n", 61) == 0);
    assert_non_null(strstr(def, "\n    | fieldformat autofocus_create_date=strftime("
                                "'autofocus_create_date' / 1000, \"%c\")"));
    assert_int_equal(def[strlen(def) - 1], ')');
    conf_file_free(&f);

    f = parse_path(PALO "props.conf");
    assert_string_equal(f.stanzas[0].name, "pan_log");
    assert_string_equal(conf_stanza_get(&f.stanzas[0], "TIME_PREFIX"), "^(?:[^,]*,){5}");
    conf_file_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_utf8_prefix),
        cmocka_unit_test(test_basic_and_default_stanza),
        cmocka_unit_test(test_default_only_when_needed),
        cmocka_unit_test(test_crlf_and_bom),
        cmocka_unit_test(test_continuation),
        cmocka_unit_test(test_continuation_trailing_blanks),
        cmocka_unit_test(test_stanza_limits),
        cmocka_unit_test(test_settings_bomb),
        cmocka_unit_test(test_sink_matches_collecting),
        cmocka_unit_test(test_sink_boundaries),
        cmocka_unit_test(test_sink_errors),
        cmocka_unit_test(test_hash_in_values_and_comments),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_lines_without_equals),
        cmocka_unit_test(test_duplicates_and_repeated_headers),
        cmocka_unit_test(test_many_keys),
        cmocka_unit_test(test_empty_values_and_no_newline),
        cmocka_unit_test(test_utf8_content),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_line_limit),
        cmocka_unit_test(test_line_limit_streaming),
        cmocka_unit_test(test_chunked_every_split),
        cmocka_unit_test(test_chunked_error),
        cmocka_unit_test(test_paloalto_counts),
        cmocka_unit_test(test_paloalto_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
