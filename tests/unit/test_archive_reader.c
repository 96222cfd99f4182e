/* Tests for the streaming archive reader: formats, content detection, hostile input, limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>

#include "ingest/archive_reader.h"
#include "base/strbuf.h"
#include "base/xalloc.h"

#define PALOALTO_DIR TESTDATA_DIR "/splunk_ta_paloalto/default"
#define TOP          "Splunk_TA_paloalto"

static const char *const paloalto_files[] = {
    "addon_builder.conf", "alert_actions.conf",
    "app.conf",           "collections.conf",
    "commands.conf",      "eventtypes.conf",
    "inputs.conf",        "macros.conf",
    "props.conf",         "restmap.conf",
    "savedsearches.conf", "splunk_ta_paloalto_settings.conf",
    "tags.conf",          "transforms.conf",
    "web.conf",           "workflow_actions.conf",
};
#define N_PALOALTO (sizeof paloalto_files / sizeof paloalto_files[0])

/* ---- building archives in memory with libarchive's write API ---- */

struct spec {
    const char *path;
    const void *data; /* NULL with len > 0: len zero bytes */
    size_t len;
    unsigned type; /* 0 = AE_IFREG */
    const char *link;
};

static la_ssize_t sb_write(struct archive *a, void *ctx, const void *buf, size_t len)
{
    (void)a;
    strbuf_append(ctx, buf, len);
    return (la_ssize_t)len;
}

static void write_data(struct archive *w, const struct spec *s)
{
    static const char zeros[65536];
    size_t left = s->len;
    const char *p = s->data;
    while (left > 0) {
        size_t n = left < sizeof zeros ? left : sizeof zeros;
        assert_int_equal(archive_write_data(w, p ? p : zeros, n), (la_ssize_t)n);
        if (p)
            p += n;
        left -= n;
    }
}

/* Builds an archive (format/filter are libarchive codes) into out (caller frees). */
static void build(int format, int filter, const struct spec *specs, size_t n, struct strbuf *out)
{
    struct archive *w = archive_write_new();
    assert_int_equal(archive_write_set_format(w, format), ARCHIVE_OK);
    assert_int_equal(archive_write_add_filter(w, filter), ARCHIVE_OK);
    archive_write_set_bytes_in_last_block(w, 1);
    strbuf_init(out);
    assert_int_equal(archive_write_open(w, out, NULL, sb_write, NULL), ARCHIVE_OK);
    struct archive_entry *e = archive_entry_new();
    for (size_t i = 0; i < n; i++) {
        archive_entry_clear(e);
        archive_entry_set_pathname(e, specs[i].path);
        unsigned type = specs[i].type ? specs[i].type : AE_IFREG;
        archive_entry_set_filetype(e, type);
        archive_entry_set_perm(e, 0644);
        if (type == AE_IFLNK)
            archive_entry_set_symlink(e, specs[i].link);
        else if (specs[i].link) {
            archive_entry_set_hardlink(e, specs[i].link);
        }
        if (type == AE_IFREG && !specs[i].link)
            archive_entry_set_size(e, (la_int64_t)specs[i].len);
        else
            archive_entry_set_size(e, 0);
        assert_int_equal(archive_write_header(w, e), ARCHIVE_OK);
        if (type == AE_IFREG && !specs[i].link)
            write_data(w, &specs[i]);
    }
    archive_entry_free(e);
    assert_int_equal(archive_write_close(w), ARCHIVE_OK);
    archive_write_free(w);
}

static void read_file(const char *path, struct strbuf *out)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char buf[4096];
    size_t n;
    strbuf_init(out);
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        strbuf_append(out, buf, n);
    fclose(f);
}

/* ---- a visitor that records everything ---- */

#define MAX_SEEN 64

struct seen {
    char *path;
    struct strbuf data;
    int ended;
};

struct recorder {
    struct seen entries[MAX_SEEN];
    int n;
    char *warn_paths[MAX_SEEN];
    char *warn_reasons[MAX_SEEN];
    int nwarn;
    const char *only_suffix; /* want only names ending so; NULL = everything */
    int fail_data_at;        /* entry index whose data callback fails; -1 = never */
    int fail_end_at;
};

static bool rec_want(void *ctx, const char *path)
{
    struct recorder *r = ctx;
    if (r->only_suffix) {
        size_t lp = strlen(path), ls = strlen(r->only_suffix);
        if (lp < ls || strcmp(path + lp - ls, r->only_suffix) != 0)
            return false;
    }
    if (r->n >= MAX_SEEN)
        return false; /* big archives: only the first entries are recorded */
    r->entries[r->n].path = cw_xstrdup(path);
    strbuf_init(&r->entries[r->n].data);
    r->entries[r->n].ended = 0;
    r->n++;
    return true;
}

static int rec_data(void *ctx, const void *chunk, size_t len, struct cw_error *err)
{
    struct recorder *r = ctx;
    assert_true(r->n > 0);
    assert_true(len > 0 && len <= 64 * 1024);
    if (r->fail_data_at == r->n - 1) {
        CW_FAIL(err, CW_ERR_TRANSIENT, "visitor refused data");
        return -1;
    }
    strbuf_append(&r->entries[r->n - 1].data, chunk, len);
    return 0;
}

static int rec_end(void *ctx, struct cw_error *err)
{
    struct recorder *r = ctx;
    r->entries[r->n - 1].ended++;
    if (r->fail_end_at == r->n - 1) {
        CW_FAIL(err, CW_ERR_PERMANENT, "visitor refused end");
        return -1;
    }
    return 0;
}

static void rec_warn(void *ctx, const char *path, const char *reason)
{
    struct recorder *r = ctx;
    assert_true(r->nwarn < MAX_SEEN);
    r->warn_paths[r->nwarn] = cw_xstrdup(path);
    r->warn_reasons[r->nwarn] = cw_xstrdup(reason);
    r->nwarn++;
}

static void rec_init(struct recorder *r, struct archive_visitor *v)
{
    memset(r, 0, sizeof *r);
    r->fail_data_at = -1;
    r->fail_end_at = -1;
    *v = (struct archive_visitor){r, rec_want, rec_data, rec_end, rec_warn};
}

static void rec_free(struct recorder *r)
{
    for (int i = 0; i < r->n; i++) {
        free(r->entries[i].path);
        strbuf_free(&r->entries[i].data);
    }
    for (int i = 0; i < r->nwarn; i++) {
        free(r->warn_paths[i]);
        free(r->warn_reasons[i]);
    }
}

static const struct seen *rec_find(const struct recorder *r, const char *path)
{
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->entries[i].path, path) == 0)
            return &r->entries[i];
    return NULL;
}

static bool rec_warned(const struct recorder *r, const char *path, const char *reason_prefix)
{
    for (int i = 0; i < r->nwarn; i++)
        if (strcmp(r->warn_paths[i], path) == 0 &&
            strncmp(r->warn_reasons[i], reason_prefix, strlen(reason_prefix)) == 0)
            return true;
    return false;
}

static void assert_prefix(const char *s, const char *prefix)
{
    if (strncmp(s, prefix, strlen(prefix)) != 0)
        fail_msg("\"%s\" does not start with \"%s\"", s, prefix);
}

/* ---- the paloalto add-on in every supported format ---- */

/* Specs for TOP/ + TOP/default/ + every conf file, with the file contents in bufs. */
static size_t paloalto_specs(struct spec *specs, struct strbuf *bufs, char paths[][128],
                             uint64_t *total)
{
    size_t n = 0;
    *total = 0;
    specs[n++] = (struct spec){.path = TOP "/", .type = AE_IFDIR};
    specs[n++] = (struct spec){.path = TOP "/default/", .type = AE_IFDIR};
    for (size_t i = 0; i < N_PALOALTO; i++) {
        char src[512];
        snprintf(src, sizeof src, "%s/%s", PALOALTO_DIR, paloalto_files[i]);
        read_file(src, &bufs[i]);
        snprintf(paths[i], 128, TOP "/default/%s", paloalto_files[i]);
        specs[n++] = (struct spec){.path = paths[i], .data = bufs[i].data, .len = bufs[i].len};
        *total += bufs[i].len;
    }
    return n;
}

static void check_paloalto(int format, int filter, enum archive_kind want_kind, bool via_fd)
{
    struct spec specs[N_PALOALTO + 2];
    struct strbuf bufs[N_PALOALTO];
    char paths[N_PALOALTO][128];
    uint64_t total;
    size_t n = paloalto_specs(specs, bufs, paths, &total);
    struct strbuf ar;
    build(format, filter, specs, n, &ar);

    struct recorder r;
    struct archive_visitor v;
    rec_init(&r, &v);
    struct archive_stats st;
    struct cw_error err;
    const struct archive_limits lim = ARCHIVE_LIMITS_DEFAULT;
    int rc;
    if (via_fd) {
        char tmpl[] = "/tmp/cw_archive_XXXXXX";
        int fd = mkstemp(tmpl);
        assert_true(fd >= 0);
        unlink(tmpl);
        assert_int_equal(write(fd, ar.data, ar.len), (ssize_t)ar.len);
        assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
        rc = archive_reader_walk_fd(fd, "runs/1/upload.bin", &lim, &v, &st, &err);
        close(fd);
    } else {
        rc = archive_reader_walk_memory(ar.data, ar.len, "x.conf", &lim, &v, &st, &err);
    }
    if (rc != 0)
        fail_msg("walk failed: %s", err.message);
    assert_int_equal(st.kind, want_kind);
    assert_int_equal(st.entries, n);
    assert_int_equal(st.entries_skipped, 0);
    assert_int_equal(st.bytes_uncompressed, total);
    assert_int_equal(r.n, N_PALOALTO);
    assert_int_equal(r.nwarn, 0);
    for (size_t i = 0; i < N_PALOALTO; i++) {
        const struct seen *s = rec_find(&r, paths[i]);
        assert_non_null(s);
        assert_int_equal(s->ended, 1);
        assert_int_equal(s->data.len, bufs[i].len);
        assert_memory_equal(strbuf_cstr(&s->data), bufs[i].data, bufs[i].len);
        strbuf_free(&bufs[i]);
    }
    rec_free(&r);
    strbuf_free(&ar);
}

static void test_paloalto_tar(void **state)
{
    (void)state;
    check_paloalto(ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_NONE, ARCHIVE_KIND_TAR, false);
    check_paloalto(ARCHIVE_FORMAT_TAR_GNUTAR, ARCHIVE_FILTER_NONE, ARCHIVE_KIND_TAR, true);
}

static void test_paloalto_tar_gz(void **state)
{
    (void)state;
    check_paloalto(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_GZIP, ARCHIVE_KIND_TAR_GZIP, false);
    check_paloalto(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_GZIP, ARCHIVE_KIND_TAR_GZIP, true);
}

static void test_paloalto_tar_bz2(void **state)
{
    (void)state;
    check_paloalto(ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_BZIP2, ARCHIVE_KIND_TAR_BZIP2,
                   false);
}

static void test_paloalto_tar_xz(void **state)
{
    (void)state;
    check_paloalto(ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_XZ, ARCHIVE_KIND_TAR_XZ, true);
}

static void test_paloalto_zip(void **state)
{
    (void)state;
    check_paloalto(ARCHIVE_FORMAT_ZIP, ARCHIVE_FILTER_NONE, ARCHIVE_KIND_ZIP, false);
    check_paloalto(ARCHIVE_FORMAT_ZIP, ARCHIVE_FILTER_NONE, ARCHIVE_KIND_ZIP, true);
}

static void test_kind_names(void **state)
{
    (void)state;
    assert_string_equal(archive_kind_name(ARCHIVE_KIND_TAR), "tar");
    assert_string_equal(archive_kind_name(ARCHIVE_KIND_TAR_GZIP), "tar.gz");
    assert_string_equal(archive_kind_name(ARCHIVE_KIND_TAR_BZIP2), "tar.bz2");
    assert_string_equal(archive_kind_name(ARCHIVE_KIND_TAR_XZ), "tar.xz");
    assert_string_equal(archive_kind_name(ARCHIVE_KIND_ZIP), "zip");
    assert_string_equal(archive_kind_name(ARCHIVE_KIND_SINGLE_CONF), "conf");
}

/* Unwanted entries are not delivered but still counted. */
static void test_want_filter(void **state)
{
    (void)state;
    static const char conf[] = "[a]\nk = v\n";
    struct spec specs[] = {
        {.path = "app/default/inputs.conf", .data = conf, .len = sizeof conf - 1},
        {.path = "app/README.txt", .data = NULL, .len = 200000},
        {.path = "app/default/props.conf", .data = conf, .len = sizeof conf - 1},
    };
    struct strbuf ar;
    build(ARCHIVE_FORMAT_ZIP, ARCHIVE_FILTER_NONE, specs, 3, &ar);
    struct recorder r;
    struct archive_visitor v;
    rec_init(&r, &v);
    r.only_suffix = ".conf";
    struct archive_stats st;
    struct cw_error err;
    assert_int_equal(archive_reader_walk_memory(ar.data, ar.len, NULL, NULL, &v, &st, &err), 0);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.entries[0].path, "app/default/inputs.conf");
    assert_string_equal(r.entries[1].path, "app/default/props.conf");
    assert_string_equal(strbuf_cstr(&r.entries[1].data), conf);
    assert_int_equal(st.entries, 3);
    assert_int_equal(st.bytes_uncompressed, 200000 + 2 * (sizeof conf - 1));
    rec_free(&r);
    strbuf_free(&ar);
}

/* ---- bare .conf uploads: content decides, never the name ---- */

static void walk_text(const char *text, const char *upload_name, const char *want_path)
{
    struct recorder r;
    struct archive_visitor v;
    rec_init(&r, &v);
    struct archive_stats st;
    struct cw_error err;
    int rc = archive_reader_walk_memory(text, strlen(text), upload_name, NULL, &v, &st, &err);
    if (rc != 0)
        fail_msg("walk failed: %s", err.message);
    assert_int_equal(st.kind, ARCHIVE_KIND_SINGLE_CONF);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.bytes_uncompressed, strlen(text));
    assert_int_equal(r.n, 1);
    assert_string_equal(r.entries[0].path, want_path);
    assert_string_equal(strbuf_cstr(&r.entries[0].data), text);
    assert_int_equal(r.entries[0].ended, 1);
    rec_free(&r);
}

static void test_bare_conf(void **state)
{
    (void)state;
    struct strbuf inputs;
    read_file(PALOALTO_DIR "/inputs.conf", &inputs);
    walk_text(inputs.data, "inputs.conf", "inputs.conf");
    walk_text(inputs.data, "runs/42/inputs.conf", "inputs.conf");
    /* The name says tar.gz; the content is text: it is read as a .conf file. */
    walk_text(inputs.data, "etc.tar.gz", "etc.tar.gz.conf");
    walk_text(inputs.data, NULL, "upload.conf");
    walk_text(inputs.data, "dir/..", "upload.conf");
    /* Latin-1 text is still text: the parser reports the encoding, not the reader. */
    walk_text("[caf\xe9]\r\nk = v\r\n", "x.conf", "x.conf");
    strbuf_free(&inputs);
}

static void test_tar_gz_named_conf(void **state)
{
    (void)state;
    static const char conf[] = "[x]\n";
    struct spec specs[] = {{.path = "a/default/inputs.conf", .data = conf, .len = 4}};
    struct strbuf ar;
    build(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_GZIP, specs, 1, &ar);
    struct recorder r;
    struct archive_visitor v;
    rec_init(&r, &v);
    struct archive_stats st;
    struct cw_error err;
    assert_int_equal(
        archive_reader_walk_memory(ar.data, ar.len, "inputs.conf", NULL, &v, &st, &err), 0);
    assert_int_equal(st.kind, ARCHIVE_KIND_TAR_GZIP);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.entries[0].path, "a/default/inputs.conf");
    rec_free(&r);
    strbuf_free(&ar);
}

/* ---- hostile input ---- */

/* Walks buf and expects a failure of class cls whose message starts with prefix. */
static void expect_fail(const void *buf, size_t len, const struct archive_limits *lim,
                        enum cw_error_class cls, const char *prefix)
{
    struct recorder r;
    struct archive_visitor v;
    rec_init(&r, &v);
    struct archive_stats st;
    struct cw_error err;
    cw_error_clear(&err);
    assert_int_equal(archive_reader_walk_memory(buf, len, "upload", lim, &v, &st, &err), -1);
    assert_int_equal(err.cls, cls);
    assert_prefix(err.message, prefix);
    if (getenv("CW_TEST_VERBOSE"))
        fprintf(stderr, "  -> %s\n", err.message);
    rec_free(&r);
}

static void test_empty_file(void **state)
{
    (void)state;
    expect_fail("", 0, NULL, CW_ERR_PERMANENT, "Invalid archive format: empty file");
    char tmpl[] = "/tmp/cw_empty_XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    unlink(tmpl);
    struct cw_error err;
    struct archive_stats st;
    assert_int_equal(archive_reader_walk_fd(fd, "e.tgz", NULL, NULL, &st, &err), -1);
    assert_int_equal(err.cls, CW_ERR_PERMANENT);
    assert_string_equal(err.message, "Invalid archive format: empty file");
    close(fd);
}

static void test_garbage(void **state)
{
    (void)state;
    unsigned char junk[100000];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof junk; i++) {
        x = x * 1103515245u + 12345u;
        junk[i] = (unsigned char)(x >> 16);
    }
    expect_fail(junk, sizeof junk, NULL, CW_ERR_PERMANENT,
                "Invalid archive format: not a tar, zip or text .conf file");
    /* Text first, binary later: still refused. */
    struct strbuf mixed;
    strbuf_init(&mixed);
    for (int i = 0; i < 20000; i++)
        strbuf_append_str(&mixed, "[s]\nk=v\n");
    strbuf_append(&mixed, "\0\1\2", 3);
    expect_fail(mixed.data, mixed.len, NULL, CW_ERR_PERMANENT,
                "Invalid archive format: not a tar, zip or text .conf file");
    strbuf_free(&mixed);
}

static void test_truncated_tar_gz(void **state)
{
    (void)state;
    struct spec specs[N_PALOALTO + 2];
    struct strbuf bufs[N_PALOALTO];
    char paths[N_PALOALTO][128];
    uint64_t total;
    size_t n = paloalto_specs(specs, bufs, paths, &total);
    struct strbuf ar;
    build(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_GZIP, specs, n, &ar);
    expect_fail(ar.data, ar.len / 2, NULL, CW_ERR_PERMANENT, "Invalid archive format: ");
    expect_fail(ar.data, ar.len - 10, NULL, CW_ERR_PERMANENT, "Invalid archive format: ");
    expect_fail(ar.data, 40, NULL, CW_ERR_PERMANENT, "Invalid archive format: ");
    /* Truncated plain tar and zip too. */
    strbuf_free(&ar);
    build(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE, specs, n, &ar);
    expect_fail(ar.data, ar.len / 2 + 100, NULL, CW_ERR_PERMANENT, "Invalid archive format: ");
    strbuf_free(&ar);
    build(ARCHIVE_FORMAT_ZIP, ARCHIVE_FILTER_NONE, specs, n, &ar);
    expect_fail(ar.data, ar.len / 2, NULL, CW_ERR_PERMANENT, "Invalid archive format: ");
    strbuf_free(&ar);
    for (size_t i = 0; i < N_PALOALTO; i++)
        strbuf_free(&bufs[i]);
}

/* A compressed single file that is not a tar (gzip, bzip2, xz of text or garbage). */
static void test_compressed_non_tar(void **state)
{
    (void)state;
    static const char text[] = "[stanza]\nkey = value\n";
    struct spec specs[] = {{.path = "data", .data = text, .len = sizeof text - 1}};
    const struct {
        int filter;
        const char *msg;
    } cases[] = {
        {ARCHIVE_FILTER_GZIP, "Invalid archive format: gzip-compressed data is not a tar archive"},
        {ARCHIVE_FILTER_BZIP2,
         "Invalid archive format: bzip2-compressed data is not a tar archive"},
        {ARCHIVE_FILTER_XZ, "Invalid archive format: xz-compressed data is not a tar archive"},
    };
    for (size_t i = 0; i < 3; i++) {
        struct strbuf ar;
        build(ARCHIVE_FORMAT_RAW, cases[i].filter, specs, 1, &ar);
        expect_fail(ar.data, ar.len, NULL, CW_ERR_PERMANENT, cases[i].msg);
        strbuf_free(&ar);
    }
}

static void test_nested_and_compressed_zip(void **state)
{
    (void)state;
    static const char conf[] = "[x]\n";
    struct spec specs[] = {{.path = "a/inputs.conf", .data = conf, .len = 4}};
    struct strbuf tgz, ar;
    build(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_GZIP, specs, 1, &tgz);
    struct spec outer[] = {{.path = "data", .data = tgz.data, .len = tgz.len}};
    build(ARCHIVE_FORMAT_RAW, ARCHIVE_FILTER_GZIP, outer, 1, &ar);
    expect_fail(ar.data, ar.len, NULL, CW_ERR_PERMANENT,
                "Invalid archive format: nested compression");
    strbuf_free(&ar);
    strbuf_free(&tgz);

    struct strbuf zip;
    build(ARCHIVE_FORMAT_ZIP, ARCHIVE_FILTER_NONE, specs, 1, &zip);
    struct spec zouter[] = {{.path = "data", .data = zip.data, .len = zip.len}};
    build(ARCHIVE_FORMAT_RAW, ARCHIVE_FILTER_GZIP, zouter, 1, &ar);
    expect_fail(ar.data, ar.len, NULL, CW_ERR_PERMANENT, "Invalid archive format: ");
    strbuf_free(&ar);
    strbuf_free(&zip);
}

/* Finds the little-endian 32-bit value at off. */
static void put32(char *p, uint32_t v)
{
    p[0] = (char)(v & 0xff);
    p[1] = (char)((v >> 8) & 0xff);
    p[2] = (char)((v >> 16) & 0xff);
    p[3] = (char)((v >> 24) & 0xff);
}

/* A zip whose entry inflates to 8 MiB of zeros: refused by its declared size before
 * anything is inflated, and when its headers claim 100 bytes, by the bytes produced. */
static void test_zip_bomb(void **state)
{
    (void)state;
    struct spec specs[] = {{.path = "bomb/inputs.conf", .data = NULL, .len = 8u << 20}};
    struct strbuf ar;
    build(ARCHIVE_FORMAT_ZIP, ARCHIVE_FILTER_NONE, specs, 1, &ar);
    assert_true(ar.len < 100000); /* it really compresses */
    const struct archive_limits lim = {1u << 20, 1u << 30, 100, 20};
    expect_fail(
        ar.data, ar.len, &lim, CW_ERR_PERMANENT,
        "Archive limit exceeded: entry bomb/inputs.conf is 8388608 bytes, more than 1048576");

    /* Lie in every size field: local header (offset 22), central directory (offset 24),
     * data descriptor if any. */
    int patched = 0;
    for (size_t i = 0; i + 46 < ar.len; i++) {
        if (memcmp(ar.data + i, "PK\3\4", 4) == 0) {
            put32(ar.data + i + 22, 100);
            patched++;
        } else if (memcmp(ar.data + i, "PK\1\2", 4) == 0) {
            put32(ar.data + i + 24, 100);
            patched++;
        } else if (memcmp(ar.data + i, "PK\7\x08", 4) == 0) {
            put32(ar.data + i + 12, 100);
        }
    }
    assert_int_equal(patched, 2);
    expect_fail(ar.data, ar.len, &lim, CW_ERR_PERMANENT,
                "Archive limit exceeded: entry bomb/inputs.conf inflates beyond 1048576 bytes");
    /* The total limit trips just as well when the entry limit is generous. */
    const struct archive_limits total = {1u << 30, 2u << 20, 100, 20};
    expect_fail(ar.data, ar.len, &total, CW_ERR_PERMANENT,
                "Archive limit exceeded: archive inflates beyond 2097152 bytes in total");
    strbuf_free(&ar);
}

/* A tar.gz bomb: unwanted entries still count. */
static void test_tar_gz_bomb_unwanted(void **state)
{
    (void)state;
    struct spec specs[] = {{.path = "big.bin", .data = NULL, .len = 4u << 20},
                           {.path = "a/inputs.conf", .data = "[x]\n", .len = 4}};
    struct strbuf ar;
    build(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_GZIP, specs, 2, &ar);
    const struct archive_limits lim = {1u << 20, 1u << 30, 100, 20};
    struct recorder r;
    struct archive_visitor v;
    rec_init(&r, &v);
    r.only_suffix = ".conf";
    struct archive_stats st;
    struct cw_error err;
    assert_int_equal(archive_reader_walk_memory(ar.data, ar.len, "u", &lim, &v, &st, &err), -1);
    assert_string_equal(
        err.message, "Archive limit exceeded: entry big.bin is 4194304 bytes, more than 1048576");
    assert_int_equal(r.n, 0);
    rec_free(&r);
    strbuf_free(&ar);
}

static void test_too_many_entries(void **state)
{
    (void)state;
    enum { N = 10001 };
    struct spec *specs = cw_xcalloc(N, sizeof *specs);
    char(*names)[32] = cw_xcalloc(N, sizeof *names);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "d/f%05d.conf", i);
        specs[i] = (struct spec){.path = names[i], .data = "x", .len = 1};
    }
    struct strbuf ar;
    build(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_GZIP, specs, N, &ar);
    expect_fail(ar.data, ar.len, NULL, CW_ERR_PERMANENT,
                "Archive limit exceeded: more than 10000 entries");
    /* Exactly at the limit is fine. */
    strbuf_free(&ar);
    build(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_GZIP, specs, N - 1, &ar);
    struct archive_stats st;
    struct cw_error err;
    assert_int_equal(archive_reader_walk_memory(ar.data, ar.len, "u", NULL, NULL, &st, &err), 0);
    assert_int_equal(st.entries, N - 1);
    assert_int_equal(st.bytes_uncompressed, N - 1);
    strbuf_free(&ar);
    free(names);
    free(specs);
}

static void test_deep_path(void **state)
{
    (void)state;
    char deep[256] = "", ok[256] = "";
    for (int i = 0; i < 21; i++)
        strcat(deep, "d/");
    strcat(deep, "x.conf"); /* 22 components */
    for (int i = 0; i < 19; i++)
        strcat(ok, "d/");
    strcat(ok, "x.conf"); /* 20 components */
    struct spec specs[] = {{.path = ok, .data = "[a]\n", .len = 4}};
    struct strbuf ar;
    build(ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_NONE, specs, 1, &ar);
    struct archive_stats st;
    struct cw_error err;
    assert_int_equal(archive_reader_walk_memory(ar.data, ar.len, "u", NULL, NULL, &st, &err), 0);
    strbuf_free(&ar);
    specs[0].path = deep;
    build(ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_NONE, specs, 1, &ar);
    expect_fail(ar.data, ar.len, NULL, CW_ERR_PERMANENT,
                "Archive limit exceeded: entry path deeper than 20 components: d/d/");
    strbuf_free(&ar);
}

/* ---- unsafe entries are skipped with a warning; the rest is delivered ---- */

static void check_unsafe(int format, bool with_specials)
{
    static const char conf[] = "[ok]\na = b\n";
    struct spec specs[] = {
        {.path = "app/default/inputs.conf", .data = conf, .len = sizeof conf - 1},
        {.path = "../escape.conf", .data = conf, .len = sizeof conf - 1},
        {.path = "/etc/abs.conf", .data = conf, .len = sizeof conf - 1},
        {.path = "app/a/../../up.conf", .data = conf, .len = sizeof conf - 1},
        {.path = "app/default/link.conf", .type = AE_IFLNK, .link = "/etc/passwd"},
        {.path = "app/default/hard.conf", .link = "app/default/inputs.conf"},
        {.path = "app/fifo", .type = AE_IFIFO},
        {.path = "app/dev", .type = AE_IFCHR},
        {.path = "./app//local/./props.conf", .data = conf, .len = sizeof conf - 1},
    };
    size_t n = with_specials ? 9 : 5; /* zip: no fifo/device/hard link entries */
    struct spec zip_specs[5];
    const struct spec *use = specs;
    if (!with_specials) {
        memcpy(zip_specs, specs, 4 * sizeof *specs);
        zip_specs[4] = specs[8];
        use = zip_specs;
    }
    struct strbuf ar;
    build(format, ARCHIVE_FILTER_NONE, use, n, &ar);
    struct recorder r;
    struct archive_visitor v;
    rec_init(&r, &v);
    struct archive_stats st;
    struct cw_error err;
    int rc = archive_reader_walk_memory(ar.data, ar.len, "u", NULL, &v, &st, &err);
    if (rc != 0)
        fail_msg("walk failed: %s", err.message);
    assert_int_equal(r.n, 2);
    assert_non_null(rec_find(&r, "app/default/inputs.conf"));
    const struct seen *p = rec_find(&r, "app/local/props.conf");
    assert_non_null(p);
    assert_string_equal(strbuf_cstr(&p->data), conf);
    assert_true(rec_warned(&r, "../escape.conf", "unsafe path"));
    assert_true(rec_warned(&r, "app/a/../../up.conf", "unsafe path"));
    /* libarchive itself strips a leading "/" on write in some formats; either way no
     * absolute path reaches the visitor. */
    assert_null(rec_find(&r, "/etc/abs.conf"));
    if (with_specials) {
        assert_true(rec_warned(&r, "/etc/abs.conf", "unsafe path"));
        assert_true(rec_warned(&r, "app/default/link.conf", "symbolic link"));
        assert_true(rec_warned(&r, "app/default/hard.conf", "hard link"));
        assert_true(rec_warned(&r, "app/fifo", "fifo"));
        assert_true(rec_warned(&r, "app/dev", "device"));
        assert_int_equal(st.entries_skipped, 7);
        assert_int_equal(r.nwarn, 7);
    }
    assert_int_equal(st.entries, n);
    rec_free(&r);
    strbuf_free(&ar);
}

static void test_unsafe_entries(void **state)
{
    (void)state;
    check_unsafe(ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, true);
    check_unsafe(ARCHIVE_FORMAT_ZIP, false);
}

static void test_zip_symlink_skipped(void **state)
{
    (void)state;
    struct spec specs[] = {
        {.path = "a/link.conf", .type = AE_IFLNK, .link = "../../etc/shadow"},
        {.path = "a/real.conf", .data = "[r]\n", .len = 4},
    };
    struct strbuf ar;
    build(ARCHIVE_FORMAT_ZIP, ARCHIVE_FILTER_NONE, specs, 2, &ar);
    struct recorder r;
    struct archive_visitor v;
    rec_init(&r, &v);
    struct archive_stats st;
    struct cw_error err;
    assert_int_equal(archive_reader_walk_memory(ar.data, ar.len, "u", NULL, &v, &st, &err), 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.entries[0].path, "a/real.conf");
    assert_true(rec_warned(&r, "a/link.conf", "symbolic link"));
    assert_int_equal(st.entries_skipped, 1);
    rec_free(&r);
    strbuf_free(&ar);
}

/* ---- visitor contract ---- */

static void test_empty_entry_gets_end(void **state)
{
    (void)state;
    struct spec specs[] = {{.path = "a/empty.conf", .len = 0},
                           {.path = "a/x.conf", .data = "y", .len = 1}};
    struct strbuf ar;
    build(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_XZ, specs, 2, &ar);
    struct recorder r;
    struct archive_visitor v;
    rec_init(&r, &v);
    struct archive_stats st;
    struct cw_error err;
    assert_int_equal(archive_reader_walk_memory(ar.data, ar.len, "u", NULL, &v, &st, &err), 0);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.entries[0].path, "a/empty.conf");
    assert_int_equal(r.entries[0].data.len, 0);
    assert_int_equal(r.entries[0].ended, 1);
    assert_int_equal(r.entries[1].ended, 1);
    rec_free(&r);
    strbuf_free(&ar);
}

static bool has_frame(const struct cw_error *err, const char *needle)
{
    for (int i = 0; i < err->nframes; i++)
        if (strstr(err->frames[i].detail, needle))
            return true;
    return false;
}

static void test_callback_errors(void **state)
{
    (void)state;
    struct spec specs[] = {{.path = "a/one.conf", .data = "1", .len = 1},
                           {.path = "a/two.conf", .data = "2", .len = 1},
                           {.path = "a/three.conf", .data = "3", .len = 1}};
    struct strbuf ar;
    build(ARCHIVE_FORMAT_ZIP, ARCHIVE_FILTER_NONE, specs, 3, &ar);
    struct recorder r;
    struct archive_visitor v;
    rec_init(&r, &v);
    r.fail_data_at = 1;
    struct archive_stats st;
    struct cw_error err;
    assert_int_equal(archive_reader_walk_memory(ar.data, ar.len, "u", NULL, &v, &st, &err), -1);
    assert_int_equal(err.cls, CW_ERR_TRANSIENT);
    assert_string_equal(err.message, "visitor refused data");
    assert_true(has_frame(&err, "a/two.conf"));
    assert_int_equal(r.n, 2); /* the third entry was never offered */
    rec_free(&r);

    rec_init(&r, &v);
    r.fail_end_at = 0;
    assert_int_equal(archive_reader_walk_memory(ar.data, ar.len, "u", NULL, &v, &st, &err), -1);
    assert_int_equal(err.cls, CW_ERR_PERMANENT);
    assert_string_equal(err.message, "visitor refused end");
    assert_true(has_frame(&err, "a/one.conf"));
    assert_int_equal(r.n, 1);
    rec_free(&r);
    strbuf_free(&ar);
}

static void test_small_limits(void **state)
{
    (void)state;
    struct spec specs[] = {{.path = "a/1.conf", .data = NULL, .len = 600},
                           {.path = "a/2.conf", .data = NULL, .len = 600},
                           {.path = "a/3.conf", .data = NULL, .len = 600}};
    struct strbuf ar;
    build(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_BZIP2, specs, 3, &ar);
    const struct archive_limits entries = {1000, 10000, 2, 20};
    expect_fail(ar.data, ar.len, &entries, CW_ERR_PERMANENT,
                "Archive limit exceeded: more than 2 entries");
    const struct archive_limits total = {1000, 1500, 10, 20};
    expect_fail(ar.data, ar.len, &total, CW_ERR_PERMANENT,
                "Archive limit exceeded: archive inflates beyond 1500 bytes in total");
    const struct archive_limits entry = {599, 10000, 10, 20};
    expect_fail(ar.data, ar.len, &entry, CW_ERR_PERMANENT,
                "Archive limit exceeded: entry a/1.conf is 600 bytes, more than 599");
    const struct archive_limits depth = {1000, 10000, 10, 1};
    expect_fail(ar.data, ar.len, &depth, CW_ERR_PERMANENT,
                "Archive limit exceeded: entry path deeper than 1 components");
    const struct archive_limits exact = {600, 1800, 3, 2};
    struct archive_stats st;
    struct cw_error err;
    assert_int_equal(archive_reader_walk_memory(ar.data, ar.len, "u", &exact, NULL, &st, &err), 0);
    assert_int_equal(st.kind, ARCHIVE_KIND_TAR_BZIP2);
    assert_int_equal(st.bytes_uncompressed, 1800);
    strbuf_free(&ar);
}

static void test_empty_archives(void **state)
{
    (void)state;
    struct strbuf ar;
    struct archive_stats st;
    struct cw_error err;
    build(ARCHIVE_FORMAT_ZIP, ARCHIVE_FILTER_NONE, NULL, 0, &ar);
    assert_int_equal(archive_reader_walk_memory(ar.data, ar.len, "u", NULL, NULL, &st, &err), 0);
    assert_int_equal(st.kind, ARCHIVE_KIND_ZIP);
    assert_int_equal(st.entries, 0);
    strbuf_free(&ar);
    build(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_GZIP, NULL, 0, &ar);
    assert_int_equal(archive_reader_walk_memory(ar.data, ar.len, "u", NULL, NULL, &st, &err), 0);
    assert_int_equal(st.kind, ARCHIVE_KIND_TAR_GZIP);
    assert_int_equal(st.entries, 0);
    strbuf_free(&ar);
}

/* A bare .conf read from a file descriptor, as parse_run does after hashing it. */
static void test_bare_conf_fd(void **state)
{
    (void)state;
    int fd = open(PALOALTO_DIR "/transforms.conf", O_RDONLY);
    assert_true(fd >= 0);
    struct strbuf want;
    read_file(PALOALTO_DIR "/transforms.conf", &want);
    struct recorder r;
    struct archive_visitor v;
    rec_init(&r, &v);
    struct archive_stats st;
    struct cw_error err;
    assert_int_equal(archive_reader_walk_fd(fd, "runs/7/transforms.conf", NULL, &v, &st, &err), 0);
    assert_int_equal(st.kind, ARCHIVE_KIND_SINGLE_CONF);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.entries[0].path, "transforms.conf");
    assert_int_equal(r.entries[0].data.len, want.len);
    assert_memory_equal(r.entries[0].data.data, want.data, want.len);
    close(fd);
    strbuf_free(&want);
    rec_free(&r);
}

/* A damaged header after a good one is corruption, not something to resynchronise past. */
static void test_damaged_tar_header(void **state)
{
    (void)state;
    struct spec specs[] = {{.path = "a/one.conf", .data = "[1]\n", .len = 4},
                           {.path = "a/two.conf", .data = "[2]\n", .len = 4},
                           {.path = "a/three.conf", .data = "[3]\n", .len = 4}};
    struct strbuf ar;
    build(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE, specs, 3, &ar);
    /* header, one data block, then the second header: break its checksum field */
    assert_string_equal(ar.data + 1024, "a/two.conf");
    ar.data[1024 + 148] ^= 0x01;
    expect_fail(ar.data, ar.len, NULL, CW_ERR_PERMANENT,
                "Invalid archive format: Damaged tar archive");
    /* The first header: libarchive no longer sees a tar at all; we still say what it is. */
    ar.data[1024 + 148] ^= 0x01;
    ar.data[148] ^= 0x01;
    expect_fail(ar.data, ar.len, NULL, CW_ERR_PERMANENT,
                "Invalid archive format: damaged tar: the first header fails its checksum");
    strbuf_free(&ar);
}

/* liblzma's "No progress is possible" means nothing to whoever uploaded the file. */
static void test_truncated_xz(void **state)
{
    (void)state;
    struct spec specs[] = {{.path = "a/one.conf", .data = NULL, .len = 100000}};
    struct strbuf ar;
    build(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_XZ, specs, 1, &ar);
    expect_fail(ar.data, ar.len / 2, NULL, CW_ERR_PERMANENT,
                "Invalid archive format: xz data is truncated or corrupt");
    strbuf_free(&ar);
}

/* ---- damage libarchive alone would not see ---- */

static void build_small_tgz(struct strbuf *ar)
{
    struct spec specs[] = {{.path = "app/default/inputs.conf", .data = "[a]\nk = v\n", .len = 11}};
    build(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_GZIP, specs, 1, ar);
}

static void walk_ok(const void *buf, size_t len, struct archive_stats *st)
{
    struct cw_error err;
    if (archive_reader_walk_memory(buf, len, "u", NULL, NULL, st, &err) != 0)
        fail_msg("walk failed: %s", err.message);
}

/* libarchive never checks a gzip member's CRC-32 or length, and its tar reader stops at
 * the end-of-archive blocks, before the trailer: both are ours to check. */
static void test_gzip_trailer_is_verified(void **state)
{
    (void)state;
    struct strbuf ar;
    struct archive_stats st;
    build_small_tgz(&ar);
    walk_ok(ar.data, ar.len, &st);
    assert_int_equal(st.kind, ARCHIVE_KIND_TAR_GZIP);
    assert_int_equal(st.entries, 1);

    ar.data[ar.len - 8] ^= 0x55; /* CRC-32 */
    expect_fail(ar.data, ar.len, NULL, CW_ERR_PERMANENT,
                "Invalid archive format: gzip data is corrupt: incorrect data check");
    ar.data[ar.len - 8] ^= 0x55;
    ar.data[ar.len - 1] ^= 0x01; /* ISIZE */
    expect_fail(ar.data, ar.len, NULL, CW_ERR_PERMANENT,
                "Invalid archive format: gzip data is corrupt: incorrect length check");
    ar.data[ar.len - 1] ^= 0x01;
    for (size_t cut = 1; cut <= 8; cut++)
        expect_fail(ar.data, ar.len - cut, NULL, CW_ERR_PERMANENT,
                    "Invalid archive format: gzip data is truncated");
    strbuf_free(&ar);
}

/* gzip's own rules: members concatenate; bytes after the last one are ignored. */
static void test_gzip_members_and_trailing_bytes(void **state)
{
    (void)state;
    struct strbuf ar, two = STRBUF_INIT;
    struct archive_stats st;
    build_small_tgz(&ar);
    /* The tar stream split over two members reads as one. */
    strbuf_append(&two, ar.data, ar.len);
    strbuf_append(
        &two, "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00",
        20);
    walk_ok(two.data, two.len, &st); /* plus an empty member */
    assert_int_equal(st.entries, 1);
    strbuf_append(&two, "\0\0\0\0 trailing", 13);
    walk_ok(two.data, two.len, &st);
    assert_int_equal(st.entries, 1);
    /* ... but what starts like a member must be one. */
    strbuf_reset(&two);
    strbuf_append(&two, ar.data, ar.len);
    strbuf_append(&two, "\x1f\x8b\x08garbage", 10);
    expect_fail(two.data, two.len, NULL, CW_ERR_PERMANENT, "Invalid archive format: gzip data is ");
    strbuf_free(&two);
    strbuf_free(&ar);
}

/* A zip is read by its central directory; without a whole one it is damaged, even when
 * its local headers could still be walked. */
static void test_zip_without_central_directory(void **state)
{
    (void)state;
    struct spec specs[] = {{.path = "a/inputs.conf", .data = "[a]\n", .len = 4},
                           {.path = "a/props.conf", .data = "[b]\n", .len = 4}};
    struct strbuf ar;
    struct archive_stats st;
    build(ARCHIVE_FORMAT_ZIP, ARCHIVE_FILTER_NONE, specs, 2, &ar);
    walk_ok(ar.data, ar.len, &st);
    assert_int_equal(st.entries, 2);
    const char *damaged = "Invalid archive format: damaged zip: its central directory";
    expect_fail(ar.data, ar.len - 1, NULL, CW_ERR_PERMANENT, damaged);
    expect_fail(ar.data, ar.len - 22, NULL, CW_ERR_PERMANENT, damaged);
    expect_fail(ar.data, ar.len / 2, NULL, CW_ERR_PERMANENT, damaged);
    /* An end record alone is an empty zip, unless it claims entries. */
    static const char empty[22] = "PK\5\6";
    walk_ok(empty, sizeof empty, &st);
    assert_int_equal(st.kind, ARCHIVE_KIND_ZIP);
    assert_int_equal(st.entries, 0);
    char lying[22] = "PK\5\6";
    lying[8] = lying[10] = 3;
    expect_fail(lying, sizeof lying, NULL, CW_ERR_PERMANENT,
                "Invalid archive format: damaged zip: its end record claims entries");
    strbuf_free(&ar);
}

/* Names reach the visitor as UTF-8; warnings show the stored bytes escaped. */
static void test_non_utf8_names(void **state)
{
    (void)state;
    struct spec specs[] = {{.path = "app/default/caf\xe9.conf", .data = "[a]\n", .len = 4},
                           {.path = "../\xff.conf", .data = "[b]\n", .len = 4}};
    struct strbuf ar;
    build(ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE, specs, 2, &ar);
    struct recorder r;
    struct archive_visitor v;
    rec_init(&r, &v);
    struct archive_stats st;
    struct cw_error err;
    assert_int_equal(archive_reader_walk_memory(ar.data, ar.len, "u", NULL, &v, &st, &err), 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.entries[0].path, "app/default/caf?.conf");
    assert_int_equal(st.entries_skipped, 1);
    assert_int_equal(r.nwarn, 2);
    assert_string_equal(r.warn_paths[0], "app/default/caf\\xe9.conf");
    assert_string_equal(r.warn_paths[1], "../\\xff.conf");
    rec_free(&r);
    strbuf_free(&ar);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paloalto_tar),
        cmocka_unit_test(test_paloalto_tar_gz),
        cmocka_unit_test(test_paloalto_tar_bz2),
        cmocka_unit_test(test_paloalto_tar_xz),
        cmocka_unit_test(test_paloalto_zip),
        cmocka_unit_test(test_kind_names),
        cmocka_unit_test(test_want_filter),
        cmocka_unit_test(test_bare_conf),
        cmocka_unit_test(test_tar_gz_named_conf),
        cmocka_unit_test(test_empty_file),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_truncated_tar_gz),
        cmocka_unit_test(test_compressed_non_tar),
        cmocka_unit_test(test_nested_and_compressed_zip),
        cmocka_unit_test(test_zip_bomb),
        cmocka_unit_test(test_tar_gz_bomb_unwanted),
        cmocka_unit_test(test_too_many_entries),
        cmocka_unit_test(test_deep_path),
        cmocka_unit_test(test_unsafe_entries),
        cmocka_unit_test(test_zip_symlink_skipped),
        cmocka_unit_test(test_empty_entry_gets_end),
        cmocka_unit_test(test_callback_errors),
        cmocka_unit_test(test_small_limits),
        cmocka_unit_test(test_empty_archives),
        cmocka_unit_test(test_bare_conf_fd),
        cmocka_unit_test(test_damaged_tar_header),
        cmocka_unit_test(test_truncated_xz),
        cmocka_unit_test(test_gzip_trailer_is_verified),
        cmocka_unit_test(test_gzip_members_and_trailing_bytes),
        cmocka_unit_test(test_zip_without_central_directory),
        cmocka_unit_test(test_non_utf8_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
