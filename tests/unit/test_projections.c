/* Unit tests for the stanzas/typed-projection COPY rows (CONTRACT 1.4, 1.7) and COPY text. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "ingest/conf_parser.h"
#include "ingest/copy_text.h"
#include "ingest/projections.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PALO TESTDATA_DIR "/splunk_ta_paloalto/default/"

static struct conf_file parse(const char *text)
{
    struct conf_file f;
    struct cw_error err;
    if (conf_parse_buffer(text, strlen(text), 0, &f, &err) != 0)
        fail_msg("parse: %s", err.message);
    return f;
}

/* Rows for one file in a run of its own, finished. */
static void rows_for(struct run_rows *rr, long run_id, long file_id, const char *path,
                     const char *text)
{
    struct conf_file f = parse(text);
    run_rows_init(rr, run_id);
    run_rows_add_file(rr, file_id, path, &f);
    run_rows_finish(rr);
    conf_file_free(&f);
}

static void assert_prefix(const char *s, const char *prefix)
{
    if (strncmp(s, prefix, strlen(prefix)) != 0)
        fail_msg("expected prefix:\n%s\ngot:\n%.*s", prefix, (int)strlen(prefix), s);
}

static size_t count_lines(const struct strbuf *sb)
{
    size_t n = 0;
    for (size_t i = 0; i < sb->len; i++)
        n += sb->data[i] == '\n';
    return n;
}

/* ---- COPY text ---------------------------------------------------------------------- */

static void test_copy_text(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    copy_text_field(&sb, "a\\b\tc\nd\re");
    copy_text_field(&sb, NULL);
    copy_text_field(&sb, "");
    copy_text_end_row(&sb);
    copy_text_field(&sb, "x");
    copy_text_field(&sb, "\\N");
    copy_text_end_row(&sb);
    assert_string_equal(strbuf_cstr(&sb), "a\\\\b\\tc\\nd\\re\t\\N\t\n"
                                          "x\t\\\\N\n");
    strbuf_free(&sb);

    /* The row builder handles an empty first field. */
    struct copy_row row;
    copy_row_begin(&row, &sb);
    copy_row_text(&row, "");
    copy_row_long(&row, -5);
    copy_row_end(&row);
    copy_row_text(&row, "");
    copy_row_null(&row);
    copy_row_text_n(&row, "abc", 2);
    copy_row_end(&row);
    assert_string_equal(strbuf_cstr(&sb), "\t-5\n\t\\N\tab\n");
    strbuf_free(&sb);
}

static void test_names_and_targets(void **state)
{
    (void)state;
    assert_string_equal(proj_table_name(PROJ_INPUTS), "inputs");
    assert_string_equal(proj_table_name(PROJ_PROPS), "props");
    assert_string_equal(proj_table_name(PROJ_TRANSFORMS), "transforms");
    assert_string_equal(proj_table_name(PROJ_INDEXES), "indexes");
    assert_string_equal(proj_table_name(PROJ_OUTPUTS), "outputs");
    assert_string_equal(proj_table_name(PROJ_SERVERCLASSES), "serverclasses");
    assert_string_equal(STANZAS_COPY_TARGET, "stanzas (run_id, file_id, conf_type, name, app, "
                                             "scope, layer, order_in_file, source_path, raw_kv)");
    assert_string_equal(proj_copy_target(PROJ_INPUTS),
                        "inputs (run_id, source_path, stanza_type, \"index\", sourcetype, "
                        "disabled, kv, app, scope, layer)");
    assert_string_equal(proj_copy_target(PROJ_PROPS),
                        "props (run_id, target, transforms_list, sedcmds, kv)");
    assert_string_equal(proj_copy_target(PROJ_TRANSFORMS),
                        "transforms (run_id, name, dest_key, regex, format, writes_meta_index, "
                        "writes_meta_sourcetype, kv)");
    assert_string_equal(proj_copy_target(PROJ_INDEXES), "indexes (run_id, name, kv)");
    assert_string_equal(proj_copy_target(PROJ_OUTPUTS),
                        "outputs (run_id, group_name, servers, kv)");
    assert_string_equal(proj_copy_target(PROJ_SERVERCLASSES),
                        "serverclasses (run_id, name, whitelist, blacklist, app_assignments, kv)");
}

/* ---- stanzas ------------------------------------------------------------------------ */

static void test_stanza_rows(void **state)
{
    (void)state;
    struct run_rows rr;
    rows_for(&rr, 42, 7, "etc/apps/search/local/app.conf",
             "top = 1\n"
             "[ui]\n"
             "label = Search \"&\" Report\n"
             "path = C:\\dir\\x\n"
             "multi = a\\\n"
             "\tb\n"
             "[empty]\n");
    assert_int_equal(rr.nstanzas, 3);
    assert_string_equal(
        strbuf_cstr(&rr.stanzas),
        "42\t7\tother\tdefault\tsearch\tlocal\tapp\t0\tetc/apps/search/local/app.conf\t"
        "{\"top\":\"1\"}\n"
        "42\t7\tother\tui\tsearch\tlocal\tapp\t1\tetc/apps/search/local/app.conf\t"
        "{\"label\":\"Search \\\\\"&\\\\\" Report\",\"path\":\"C:\\\\\\\\dir\\\\\\\\x\","
        "\"multi\":\"a\\\\n\\\\tb\"}\n"
        "42\t7\tother\tempty\tsearch\tlocal\tapp\t2\tetc/apps/search/local/app.conf\t{}\n");
    assert_int_equal(run_rows_typed_total(&rr), 0); /* "other" has no typed table */
    assert_int_equal(rr.truncations, 0);
    run_rows_free(&rr);

    /* No file id, no provenance: NULLs. */
    rows_for(&rr, 3, 0, "inputs.conf", "[x]\n");
    assert_string_equal(strbuf_cstr(&rr.stanzas),
                        "3\t\\N\tinputs\tx\t\\N\t\\N\t\\N\t0\tinputs.conf\t{}\n");
    run_rows_free(&rr);
}

/* ---- inputs ------------------------------------------------------------------------- */

static void test_inputs(void **state)
{
    (void)state;
    struct run_rows rr;
    rows_for(&rr, 42, 7, "etc/system/local/inputs.conf",
             "[Monitor:///var/log/messages]\n"
             "index = main\n"
             "sourcetype = syslog\n"
             "disabled = TRUE\n"
             "followTail = 0\n"
             "crcSalt = <SOURCE>\n"
             "[script://./bin/x.sh]\n"
             "interval = 60\n"
             "disabled = maybe\n"
             "[default]\n"
             "[tcp://:9997]\n"
             "disabled = 0\n");
    assert_int_equal(rr.ntyped[PROJ_INPUTS], 4);
    assert_string_equal(strbuf_cstr(&rr.typed[PROJ_INPUTS]),
                        "42\tetc/system/local/inputs.conf\tmonitor\tmain\tsyslog\tt\t"
                        "{\"followTail\":\"0\",\"crcSalt\":\"<SOURCE>\"}\t\\N\tlocal\tsystem\n"
                        "42\tetc/system/local/inputs.conf\tscript\t\\N\t\\N\t\\N\t"
                        "{\"interval\":\"60\"}\t\\N\tlocal\tsystem\n"
                        "42\tetc/system/local/inputs.conf\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\tlocal\t"
                        "system\n"
                        "42\tetc/system/local/inputs.conf\ttcp\t\\N\t\\N\tf\t\\N\t\\N\tlocal\t"
                        "system\n");
    for (int t = 0; t < PROJ_COUNT; t++)
        if (t != PROJ_INPUTS)
            assert_int_equal(rr.typed[t].len, 0);
    run_rows_free(&rr);
}

static void test_inputs_disabled_values(void **state)
{
    (void)state;
    static const struct {
        const char *value, *copy;
    } cases[] = {
        {"true", "t"},  {"1", "t"},   {"yes", "t"},  {"YES", "t"}, {"True", "t"},
        {"false", "f"}, {"0", "f"},   {"no", "f"},   {"No", "f"},  {"FALSE", "f"},
        {"", "\\N"},    {"2", "\\N"}, {"on", "\\N"}, {"y", "\\N"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[64], expect[128];
        snprintf(text, sizeof text, "[x]\ndisabled = %s\n", cases[i].value);
        snprintf(expect, sizeof expect,
                 "1\tApp/default/inputs.conf\t\\N\t\\N\t\\N\t%s\t\\N\tApp\t"
                 "default\tapp\n",
                 cases[i].copy);
        struct run_rows rr;
        rows_for(&rr, 1, 1, "App/default/inputs.conf", text);
        assert_string_equal(strbuf_cstr(&rr.typed[PROJ_INPUTS]), expect);
        run_rows_free(&rr);
    }
}

/* ---- props -------------------------------------------------------------------------- */

static void test_props(void **state)
{
    (void)state;
    struct run_rows rr;
    rows_for(&rr, 5, 2, "props.conf",
             "[source::/var/log/[a-z]*.log]\n"
             "TRANSFORMS-a = t1, t2 ,,t3\n"
             "SHOULD_LINEMERGE = false\n"
             "transforms-B = t4\n"
             "SEDCMD-x = s/a\"b/c/g\n"
             "sedcmd-y = s/\\\\/x/g\n"
             "REPORT-z = r1\n"
             "TRANSFORMS-empty = , ,\n"
             "TRANSFORMS = not a class\n"
             "[plain]\n"
             "KEY = v\n"
             "[bare]\n");
    assert_int_equal(rr.ntyped[PROJ_PROPS], 3);
    assert_string_equal(strbuf_cstr(&rr.typed[PROJ_PROPS]),
                        /* element s/a"b/c/g -> "s/a\"b/c/g" -> COPY doubles the backslash;
                         * element s/\\/x/g -> "s/\\\\/x/g" -> doubled again for COPY. */
                        "5\tsource::/var/log/[a-z]*.log\t{\"t1\",\"t2\",\"t3\",\"t4\"}\t"
                        "{\"s/a\\\\\"b/c/g\",\"s/\\\\\\\\\\\\\\\\/x/g\"}\t"
                        "{\"SHOULD_LINEMERGE\":\"false\",\"REPORT-z\":\"r1\","
                        "\"TRANSFORMS\":\"not a class\"}\n"
                        "5\tplain\t\\N\t\\N\t{\"KEY\":\"v\"}\n"
                        "5\tbare\t\\N\t\\N\t\\N\n");
    run_rows_free(&rr);
}

static void test_props_array_quoting(void **state)
{
    (void)state;
    struct run_rows rr;
    rows_for(&rr, 1, 1, "props.conf", "[p]\nTRANSFORMS-q = {a}, NULL, b \"x\"\n");
    /* Every element quoted, so braces and NULL are data: {"{a}","NULL","b \"x\""} */
    assert_string_equal(strbuf_cstr(&rr.typed[PROJ_PROPS]),
                        "1\tp\t{\"{a}\",\"NULL\",\"b \\\\\"x\\\\\"\"}\t\\N\t\\N\n");
    run_rows_free(&rr);
}

/* ---- transforms --------------------------------------------------------------------- */

static void test_transforms(void **state)
{
    (void)state;
    struct run_rows rr;
    rows_for(&rr, 9, 1, "transforms.conf",
             "[route_index]\n"
             "REGEX = ^(\\d+)\\s\n"
             "DEST_KEY = _metadata:index\n"
             "FORMAT = security\n"
             "MV_ADD = true\n"
             "[set_st]\n"
             "DEST_KEY = MetaData:Sourcetype\n"
             "[set_st2]\n"
             "DEST_KEY = _MetaData:Sourcetype\n"
             "[raw]\n"
             "DEST_KEY = _raw\n"
             "[lookup]\n"
             "filename = a.csv\n");
    assert_int_equal(rr.ntyped[PROJ_TRANSFORMS], 5);
    assert_string_equal(strbuf_cstr(&rr.typed[PROJ_TRANSFORMS]),
                        "9\troute_index\t_metadata:index\t^(\\\\d+)\\\\s\tsecurity\tt\tf\t"
                        "{\"MV_ADD\":\"true\"}\n"
                        "9\tset_st\tMetaData:Sourcetype\t\\N\t\\N\tf\tt\t\\N\n"
                        "9\tset_st2\t_MetaData:Sourcetype\t\\N\t\\N\tf\tt\t\\N\n"
                        "9\traw\t_raw\t\\N\t\\N\tf\tf\t\\N\n"
                        "9\tlookup\t\\N\t\\N\t\\N\t\\N\t\\N\t{\"filename\":\"a.csv\"}\n");
    run_rows_free(&rr);
}

/* ---- indexes and outputs ------------------------------------------------------------ */

static void test_indexes_outputs(void **state)
{
    (void)state;
    struct run_rows rr;
    rows_for(&rr, 2, 1, "etc/master-apps/_cluster/local/indexes.conf",
             "[firewall]\n"
             "homePath = $SPLUNK_DB/firewall/db\n"
             "repFactor = auto\n"
             "[volume:hot]\n");
    assert_string_equal(strbuf_cstr(&rr.typed[PROJ_INDEXES]),
                        "2\tfirewall\t{\"homePath\":\"$SPLUNK_DB/firewall/db\","
                        "\"repFactor\":\"auto\"}\n"
                        "2\tvolume:hot\t\\N\n");
    run_rows_free(&rr);

    rows_for(&rr, 2, 1, "etc/deployment-apps/fwd/local/outputs.conf",
             "[tcpout]\n"
             "defaultGroup = idx\n"
             "[tcpout:idx]\n"
             "server = 10.0.0.1:9997, 10.0.0.2:9997\n"
             "useACK = true\n"
             "[httpout]\n"
             "uri = https://hec:8088\n"
             "target_group = idx\n");
    assert_int_equal(rr.ntyped[PROJ_OUTPUTS], 3);
    assert_string_equal(strbuf_cstr(&rr.typed[PROJ_OUTPUTS]),
                        "2\ttcpout\t\\N\t{\"defaultGroup\":\"idx\"}\n"
                        "2\ttcpout:idx\t{\"server\":\"10.0.0.1:9997, 10.0.0.2:9997\"}\t"
                        "{\"useACK\":\"true\"}\n"
                        "2\thttpout\t{\"uri\":\"https://hec:8088\",\"target_group\":\"idx\"}\t"
                        "\\N\n");
    run_rows_free(&rr);
}

/* ---- serverclasses ------------------------------------------------------------------ */

static void test_serverclasses(void **state)
{
    (void)state;
    struct conf_file a = parse("[global]\n"
                               "repositoryLocation = $SPLUNK_HOME/etc/deployment-apps\n"
                               "[serverClass:linux]\n"
                               "whitelist.0 = *.example.com\n"
                               "whitelist.1 = web-*\n"
                               "blacklist.0 = bad-host\n"
                               "machineTypesFilter = linux-x86_64\n"
                               "whitelist.from_pathname = etc/hosts.csv\n"
                               "[serverClass:linux:app:Splunk_TA_nix]\n"
                               "restartSplunkd = true\n"
                               "[serverClass:windows:app:Splunk_TA_windows]\n"
                               "[serverClass:linux:app:outputs]\n"
                               "stateOnClient = enabled\n");
    struct conf_file b = parse("[serverClass:linux]\n"
                               "whitelist.1 = app-*\n"
                               "whitelist.2 = db-*\n"
                               "[serverClass:linux:app:Splunk_TA_nix]\n"
                               "stateOnClient = noop\n"
                               "[serverClass:empty]\n");
    struct run_rows rr;
    run_rows_init(&rr, 11);
    run_rows_add_file(&rr, 1, "etc/system/local/serverclass.conf", &a);
    run_rows_add_file(&rr, 2, "etc/apps/ds/local/serverclass.conf", &b);
    /* Aggregated over the run: nothing until finish. */
    assert_int_equal(rr.typed[PROJ_SERVERCLASSES].len, 0);
    assert_int_equal(rr.nstanzas, 8);
    run_rows_finish(&rr);
    run_rows_finish(&rr); /* idempotent */
    assert_int_equal(rr.ntyped[PROJ_SERVERCLASSES], 3);
    assert_string_equal(
        strbuf_cstr(&rr.typed[PROJ_SERVERCLASSES]),
        "11\tlinux\t{\"0\":\"*.example.com\",\"1\":\"app-*\",\"2\":\"db-*\"}\t"
        "{\"0\":\"bad-host\"}\t"
        "{\"Splunk_TA_nix\":{\"restartSplunkd\":\"true\",\"stateOnClient\":\"noop\"},"
        "\"outputs\":{\"stateOnClient\":\"enabled\"}}\t"
        "{\"machineTypesFilter\":\"linux-x86_64\",\"whitelist.from_pathname\":\"etc/hosts.csv\"}\n"
        "11\twindows\t\\N\t\\N\t{\"Splunk_TA_windows\":{}}\t\\N\n"
        "11\tempty\t\\N\t\\N\t\\N\t\\N\n");
    assert_int_equal(run_rows_typed_total(&rr), 3);
    run_rows_free(&rr);
    run_rows_free(&rr); /* safe twice */
    conf_file_free(&a);
    conf_file_free(&b);
}

/* 20,000 classes, each named twice: found by name, not by a scan, in first-mention order. */
static void test_many_serverclasses(void **state)
{
    (void)state;
    struct strbuf text = STRBUF_INIT;
    for (int i = 0; i < 20000; i++)
        strbuf_appendf(&text, "[serverClass:c%d]\nwhitelist.0 = h%d\n", i, i);
    for (int i = 0; i < 20000; i++)
        strbuf_appendf(&text, "[serverClass:c%d:app:a]\nk = %d\n", i, i);
    struct run_rows rr;
    rows_for(&rr, 3, 1, "etc/system/local/serverclass.conf", strbuf_cstr(&text));
    assert_int_equal(rr.ntyped[PROJ_SERVERCLASSES], 20000);
    assert_prefix(strbuf_cstr(&rr.typed[PROJ_SERVERCLASSES]),
                  "3\tc0\t{\"0\":\"h0\"}\t\\N\t{\"a\":{\"k\":\"0\"}}\t\\N\n"
                  "3\tc1\t{\"0\":\"h1\"}\t");
    assert_int_equal(rr.serverclass_items, 80000);
    run_rows_free(&rr);
    strbuf_free(&text);
}

/* A file that fails mid-way leaves nothing: not its rows, nor its counts, nor its
 * serverclasses; the rows of complete files before it stay. */
static void test_abort_file(void **state)
{
    (void)state;
    struct conf_file good = parse("[st_a]\nTRANSFORMS-x = t1\nk = v\n");
    struct conf_file bad = parse("[st_b]\nk = \xc3\xa9\n[st_c]\n");
    struct conf_file sc = parse("[serverClass:gone]\nwhitelist.0 = x\n");
    struct conf_file sc_ok = parse("[serverClass:kept]\n");
    struct run_rows rr;
    run_rows_init(&rr, 5);
    run_rows_add_file(&rr, 1, "etc/apps/a/default/props.conf", &good);
    char *stanzas = strdup(strbuf_cstr(&rr.stanzas));
    char *props = strdup(strbuf_cstr(&rr.typed[PROJ_PROPS]));

    run_rows_begin_file(&rr, 1,
                        "etc/apps/b/default/pr\xff"
                        "ops.conf"); /* repaired */
    assert_int_equal(rr.mark_stanzas, strlen(stanzas));
    assert_int_equal(rr.mark_typed[PROJ_PROPS], strlen(props));
    for (size_t i = 0; i < bad.nstanzas; i++)
        run_rows_add_stanza(&rr, &bad.stanzas[i]);
    assert_int_equal(rr.nstanzas, 3);
    run_rows_abort_file(&rr);
    assert_int_equal(rr.nstanzas, 1);
    assert_int_equal(rr.ntyped[PROJ_PROPS], 1);
    assert_int_equal(rr.repairs, 0);
    assert_string_equal(strbuf_cstr(&rr.stanzas), stanzas);
    assert_string_equal(strbuf_cstr(&rr.typed[PROJ_PROPS]), props);

    run_rows_begin_file(&rr, 2, "etc/system/local/serverclass.conf");
    run_rows_add_stanza(&rr, &sc.stanzas[0]);
    assert_int_equal(rr.serverclass_items, 2); /* the stanza and its setting */
    assert_int_equal(rr.serverclass_bytes, strlen("serverClass:gone") + strlen("whitelist.0x"));
    run_rows_abort_file(&rr);
    assert_int_equal(rr.serverclass_items, 0);
    assert_int_equal(rr.serverclass_bytes, 0);
    run_rows_add_file(&rr, 2, "etc/system/local/serverclass.conf", &sc_ok);
    run_rows_finish(&rr);
    assert_int_equal(rr.ntyped[PROJ_SERVERCLASSES], 1);
    assert_string_equal(strbuf_cstr(&rr.typed[PROJ_SERVERCLASSES]),
                        "5\tkept\t\\N\t\\N\t\\N\t\\N\n");
    assert_int_equal(rr.nstanzas, 2);
    assert_int_equal(rr.serverclass_items, 1);
    run_rows_free(&rr);
    free(stanzas);
    free(props);
    conf_file_free(&good);
    conf_file_free(&bad);
    conf_file_free(&sc);
    conf_file_free(&sc_ok);
}

/* The rows before the marks leave the buffers; the current file's stay, and aborting
 * the file then empties them. */
static void test_sent_before_marks(void **state)
{
    (void)state;
    struct conf_file a = parse("[one]\nk = 1\n");
    struct conf_file b = parse("[two]\nk = 2\n");
    struct run_rows rr;
    run_rows_init(&rr, 6);
    run_rows_add_file(&rr, 1, "etc/apps/a/default/indexes.conf", &a);
    run_rows_begin_file(&rr, 1, "etc/apps/a/default/indexes.conf");
    run_rows_add_stanza(&rr, &b.stanzas[0]);
    size_t before = run_rows_buffered(&rr);
    run_rows_sent_before_marks(&rr);
    assert_true(run_rows_buffered(&rr) < before);
    assert_prefix(strbuf_cstr(&rr.typed[PROJ_INDEXES]), "6\ttwo\t");
    assert_int_equal(count_lines(&rr.typed[PROJ_INDEXES]), 1);
    assert_int_equal(count_lines(&rr.stanzas), 1);
    assert_int_equal(rr.mark_stanzas, 0);
    run_rows_abort_file(&rr);
    assert_int_equal(run_rows_buffered(&rr), 0);
    assert_int_equal(rr.nstanzas, 1);
    run_rows_add_file(&rr, 1, "etc/apps/a/default/indexes.conf", &b);
    run_rows_stanzas_sent(&rr);
    run_rows_typed_sent(&rr);
    assert_int_equal(run_rows_buffered(&rr), 0);
    assert_int_equal(rr.nstanzas, 2);
    run_rows_free(&rr);
    conf_file_free(&a);
    conf_file_free(&b);
}

/* ---- widths ------------------------------------------------------------------------- */

static char *repeat(const char *unit, size_t n)
{
    size_t ul = strlen(unit);
    char *s = malloc(ul * n + 1);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * ul, unit, ul);
    s[ul * n] = '\0';
    return s;
}

static void test_truncation(void **state)
{
    (void)state;
    /* A 600-character name of two-byte characters: stanzas.name keeps 512 characters
     * (1024 bytes) and props.target too; both cuts are counted. */
    char *longname = repeat("\xC3\xA9", 600);
    char *text = malloc(2000);
    snprintf(text, 2000, "[%s]\nx = 1\n", longname);
    struct run_rows rr;
    rows_for(&rr, 1, 1, "props.conf", text);
    assert_int_equal(rr.truncations, 2);
    char *cut = repeat("\xC3\xA9", 512);
    char expect[3000];
    snprintf(expect, sizeof expect,
             "1\t1\tprops\t%s\t\\N\t\\N\t\\N\t0\tprops.conf\t{\"x\":\"1\"}\n", cut);
    assert_string_equal(strbuf_cstr(&rr.stanzas), expect);
    snprintf(expect, sizeof expect, "1\t%s\t\\N\t\\N\t{\"x\":\"1\"}\n", cut);
    assert_string_equal(strbuf_cstr(&rr.typed[PROJ_PROPS]), expect);
    run_rows_free(&rr);
    free(cut);

    /* Exactly at the width: nothing cut (characters, not bytes, are counted). */
    cut = repeat("\xE2\x82\xAC", 512);
    snprintf(text, 2000, "[%s]\n", cut);
    rows_for(&rr, 1, 1, "other.conf", text);
    assert_int_equal(rr.truncations, 0);
    assert_non_null(strstr(strbuf_cstr(&rr.stanzas), cut));
    run_rows_free(&rr);
    free(cut);

    /* varchar(255) array elements and inputs columns; text columns are never cut. */
    char *el = repeat("ab", 200); /* 400 characters */
    snprintf(text, 2000, "[monitor://x]\nindex = %s\nsourcetype = ok\n", el);
    rows_for(&rr, 1, 1, "inputs.conf", text);
    assert_int_equal(rr.truncations, 1);
    char *el255 = repeat("ab", 128);
    el255[255] = '\0';
    snprintf(expect, sizeof expect, "1\tinputs.conf\tmonitor\t%s\tok\t\\N\t\\N\t\\N\t\\N\t\\N\n",
             el255);
    assert_string_equal(strbuf_cstr(&rr.typed[PROJ_INPUTS]), expect);
    run_rows_free(&rr);

    snprintf(text, 2000, "[p]\nTRANSFORMS-a = short, %s\nSEDCMD-b = %s\n", el, el);
    rows_for(&rr, 1, 1, "props.conf", text);
    assert_int_equal(rr.truncations, 2);
    snprintf(expect, sizeof expect, "1\tp\t{\"short\",\"%s\"}\t{\"%s\"}\t\\N\n", el255, el255);
    assert_string_equal(strbuf_cstr(&rr.typed[PROJ_PROPS]), expect);
    run_rows_free(&rr);

    snprintf(text, 2000, "[t]\nREGEX = %s\n", el);
    rows_for(&rr, 1, 1, "transforms.conf", text);
    assert_int_equal(rr.truncations, 0);
    assert_non_null(strstr(strbuf_cstr(&rr.typed[PROJ_TRANSFORMS]), el));
    run_rows_free(&rr);

    free(el255);
    free(el);
    free(text);
    free(longname);
}

static void test_long_app_and_bad_path(void **state)
{
    (void)state;
    char *app = repeat("a", 300);
    char path[512];
    snprintf(path, sizeof path, "etc/apps/%s/local/inputs.conf", app);
    struct run_rows rr;
    rows_for(&rr, 1, 1, path, "[x]\n");
    assert_int_equal(rr.truncations, 2); /* app in stanzas and in inputs */
    app[255] = '\0';
    char expect[1024];
    snprintf(expect, sizeof expect, "1\t%s\t\\N\t\\N\t\\N\t\\N\t\\N\t%s\tlocal\tapp\n", path, app);
    assert_string_equal(strbuf_cstr(&rr.typed[PROJ_INPUTS]), expect);
    run_rows_free(&rr);
    free(app);

    /* A Latin-1 entry name from an archive is repaired, not passed on to COPY. */
    rows_for(&rr, 1, 1, "Caf\xE9/default/props.conf", "[x]\n");
    assert_int_equal(rr.repairs, 1);
    assert_string_equal(strbuf_cstr(&rr.stanzas),
                        "1\t1\tprops\tx\tCaf?\tdefault\tapp\t0\tCaf?/default/props.conf\t{}\n");
    run_rows_free(&rr);
}

/* ---- the real Palo Alto add-on ------------------------------------------------------ */

static struct conf_file parse_path(const char *path)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    struct conf_parser p;
    struct conf_file f;
    struct cw_error err;
    char buf[333]; /* an odd chunk size on purpose */
    size_t n;
    conf_parser_init(&p, 0);
    while ((n = fread(buf, 1, sizeof buf, fp)) > 0)
        assert_int_equal(conf_parser_feed(&p, buf, n, &err), 0);
    fclose(fp);
    assert_int_equal(conf_parser_finish(&p, &f, &err), 0);
    conf_parser_free(&p);
    return f;
}

static void test_paloalto_run(void **state)
{
    (void)state;
    static const char *const files[] = {"props.conf", "transforms.conf", "inputs.conf",
                                        "eventtypes.conf"};
    struct run_rows rr;
    run_rows_init(&rr, 77);
    for (size_t i = 0; i < 4; i++) {
        char fs[512], in_archive[512];
        snprintf(fs, sizeof fs, "%s%s", PALO, files[i]);
        snprintf(in_archive, sizeof in_archive, "Splunk_TA_paloalto/default/%s", files[i]);
        struct conf_file f = parse_path(fs);
        run_rows_add_file(&rr, 5, in_archive, &f);
        conf_file_free(&f);
    }
    run_rows_finish(&rr);
    /* 25 + 60 + 3 + 26 stanzas (counted with grep -cE '^\s*\[' in each file). */
    assert_int_equal(rr.nstanzas, 114);
    assert_int_equal(count_lines(&rr.stanzas), 114);
    assert_int_equal(rr.ntyped[PROJ_PROPS], 25);
    assert_int_equal(rr.ntyped[PROJ_TRANSFORMS], 60);
    assert_int_equal(rr.ntyped[PROJ_INPUTS], 3);
    assert_int_equal(rr.ntyped[PROJ_INDEXES], 0);
    assert_int_equal(rr.ntyped[PROJ_SERVERCLASSES], 0);
    assert_int_equal(count_lines(&rr.typed[PROJ_TRANSFORMS]), 60);
    assert_int_equal(rr.truncations, 0);

    const char *props = strbuf_cstr(&rr.typed[PROJ_PROPS]);
    const char *nl = strchr(props, '\n');
    assert_non_null(nl);
    assert_memory_equal(props,
                        "77\tpan_log\t{\"pan_threat\",\"pan_traffic\",\"pan_system\","
                        "\"pan_config\",\"pan_hipmatch\",\"pan_correlation\",\"pan_userid\","
                        "\"pan_traps4\",\"pan_threat_traps\",\"pan_analytics_traps\","
                        "\"pan_system_traps\",\"pan_config_traps\"}\t\\N\t"
                        "{\"pulldown_type\":\"false\",\"SHOULD_LINEMERGE\":\"false\","
                        "\"TIME_PREFIX\":\"^(?:[^,]*,){5}\",\"MAX_TIMESTAMP_LOOKAHEAD\":\"100\"}\n",
                        (size_t)(nl - props + 1));
    assert_prefix(strbuf_cstr(&rr.typed[PROJ_TRANSFORMS]),
                  "77\tpan_threat\tMetaData:Sourcetype\t^[^,]+,[^,]+,[^,]+,THREAT,\t"
                  "sourcetype::pan:threat\tf\tt\t\\N\n");
    const char *in = strbuf_cstr(&rr.typed[PROJ_INPUTS]);
    assert_string_equal(in,
                        "77\tSplunk_TA_paloalto/default/inputs.conf\t\\N\tdefault\tAutoFocus\t"
                        "\\N\t{\"start_by_shell\":\"false\",\"interval\":\"3200\"}\t"
                        "Splunk_TA_paloalto\tdefault\tapp\n"
                        "77\tSplunk_TA_paloalto/default/inputs.conf\t\\N\t\\N\tpan:aperture\t"
                        "\\N\t\\N\tSplunk_TA_paloalto\tdefault\tapp\n"
                        "77\tSplunk_TA_paloalto/default/inputs.conf\t\\N\tdefault\t"
                        "pan:minemeld\t\\N\t{\"start_by_shell\":\"false\",\"interval\":\"30\"}\t"
                        "Splunk_TA_paloalto\tdefault\tapp\n");
    assert_prefix(strbuf_cstr(&rr.stanzas),
                  "77\t5\tprops\tpan_log\tSplunk_TA_paloalto\tdefault\tapp\t0\t"
                  "Splunk_TA_paloalto/default/props.conf\t{\"pulldown_type\":\"false\",");
    run_rows_free(&rr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy_text),
        cmocka_unit_test(test_names_and_targets),
        cmocka_unit_test(test_stanza_rows),
        cmocka_unit_test(test_inputs),
        cmocka_unit_test(test_inputs_disabled_values),
        cmocka_unit_test(test_props),
        cmocka_unit_test(test_props_array_quoting),
        cmocka_unit_test(test_transforms),
        cmocka_unit_test(test_indexes_outputs),
        cmocka_unit_test(test_serverclasses),
        cmocka_unit_test(test_many_serverclasses),
        cmocka_unit_test(test_abort_file),
        cmocka_unit_test(test_sent_before_marks),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_long_app_and_bad_path),
        cmocka_unit_test(test_paloalto_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
