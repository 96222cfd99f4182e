/* Tests for reading uploads as hashed streams (ingest/upload_source.h) and walking archives
 * from them (archive_reader_walk_source): the digest covers the whole upload in one pass,
 * zip works with and without a file, and a store's read error keeps its class. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/config.h"
#include "base/strbuf.h"
#include "ingest/archive_reader.h"
#include "ingest/storage.h"
#include "ingest/upload_source.h"

#define PALOALTO TESTDATA_DIR "/splunk_ta_paloalto"

static char root[64];
static struct cw_config cfg;

static int setup(void **state)
{
    (void)state;
    strcpy(root, "/tmp/cw_upload_XXXXXX");
    assert_non_null(mkdtemp(root));
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && tar czf '%s/ta.tar.gz' splunk_ta_paloalto && tar cf '%s/ta.tar' "
             "splunk_ta_paloalto && zip -qr '%s/ta.zip' splunk_ta_paloalto && "
             "printf 'garbage after' >> '%s/ta.tar.gz'",
             TESTDATA_DIR, root, root, root, root);
    assert_int_equal(system(cmd), 0);
    cfg.storage_backend = "local";
    cfg.storage_path = root;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* The digest of the whole file, the second-pass way. */
static void file_digest(const char *key, char hex[65])
{
    int fd;
    struct cw_error err;
    assert_int_equal(storage_open(root, key, &fd, &err), 0);
    uint64_t size;
    assert_int_equal(storage_sha256_fd(fd, hex, &size, &err), 0);
    close(fd);
}

struct counter {
    int conf_entries;
    size_t bytes;
};

static bool want(void *ctx, const char *path)
{
    struct counter *c = ctx;
    size_t n = strlen(path);
    bool conf = n > 5 && strcmp(path + n - 5, ".conf") == 0;
    c->conf_entries += conf;
    return conf;
}

static int data(void *ctx, const void *chunk, size_t len, struct cw_error *err)
{
    (void)chunk;
    (void)err;
    ((struct counter *)ctx)->bytes += len;
    return 0;
}

static void walk_and_check(const char *key, const char *kind)
{
    struct upload_source src;
    struct cw_error err;
    assert_int_equal(upload_source_open(&cfg, key, -1, &src, &err), 0);
    struct counter c = {0};
    struct archive_visitor v = {&c, want, data, NULL, NULL};
    struct archive_stats stats;
    int rc = archive_reader_walk_source(&src, key, NULL, &v, &stats, &err);
    if (rc != 0)
        fail_msg("%s: %s", key, err.message);
    assert_string_equal(archive_kind_name(stats.kind), kind);
    assert_true(c.conf_entries >= 16);
    assert_true(c.bytes > 10000);
    assert_int_equal(upload_source_drain(&src, &err), 0);
    char streamed[65], whole[65];
    upload_source_hex_digest(&src, streamed);
    file_digest(key, whole);
    assert_string_equal(streamed, whole);
    upload_source_close(&src);
}

static void test_tar_gz_hashed_in_one_pass(void **state)
{
    (void)state;
    walk_and_check("ta.tar.gz", "tar.gz"); /* with bytes after the gzip member */
}

static void test_tar_hashed_in_one_pass(void **state)
{
    (void)state;
    walk_and_check("ta.tar", "tar");
}

static void test_zip_by_positional_reads(void **state)
{
    (void)state;
    walk_and_check("ta.zip", "zip");
}

/* A backend without a file: bytes from memory, optionally failing after some. */
struct mem_upload {
    struct strbuf data;
    size_t pos, fail_at;
};

static ssize_t mem_read(void *impl, void *buf, size_t len, struct cw_error *err)
{
    struct mem_upload *m = impl;
    if (m->pos >= m->fail_at) {
        CW_FAIL(err, CW_ERR_TRANSIENT, "connection reset while reading the object");
        return -1;
    }
    size_t n = m->data.len - m->pos;
    n = n < len ? n : len;
    n = n < 1000 ? n : 1000; /* short reads, as a network gives them */
    memcpy(buf, m->data.data + m->pos, n);
    m->pos += n;
    return (ssize_t)n;
}

static void mem_close(void *impl)
{
    struct mem_upload *m = impl;
    strbuf_free(&m->data);
    free(m);
}

static const struct upload_source_ops mem_ops = {.read = mem_read, .close = mem_close};

/* fail_at: SIZE_MAX never fails, anything else fails half way through the upload. */
static void open_mem(const char *key, size_t fail_at, struct upload_source *src)
{
    struct mem_upload *m = calloc(1, sizeof *m);
    assert_non_null(m);
    strbuf_init(&m->data);
    char path[256];
    snprintf(path, sizeof path, "%s/%s", root, key);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        strbuf_append(&m->data, buf, n);
    fclose(f);
    m->fail_at = fail_at == SIZE_MAX ? SIZE_MAX : m->data.len / 2;
    upload_source_init(src, &mem_ops, m, key, (int64_t)m->data.len);
}

static void test_zip_without_a_file_is_read_into_memory(void **state)
{
    (void)state;
    struct upload_source src;
    struct cw_error err;
    open_mem("ta.zip", SIZE_MAX, &src);
    assert_int_equal(upload_source_fd(&src), -1);
    struct counter c = {0};
    struct archive_visitor v = {&c, want, data, NULL, NULL};
    assert_int_equal(archive_reader_walk_source(&src, "ta.zip", NULL, &v, NULL, &err), 0);
    assert_true(c.conf_entries >= 16);
    assert_int_equal(upload_source_drain(&src, &err), 0);
    char streamed[65], whole[65];
    upload_source_hex_digest(&src, streamed);
    file_digest("ta.zip", whole);
    assert_string_equal(streamed, whole);
    upload_source_close(&src);
}

static void test_store_error_keeps_its_class(void **state)
{
    (void)state;
    const char *keys[] = {"ta.tar.gz", "ta.tar"};
    for (size_t i = 0; i < 2; i++) {
        struct upload_source src;
        struct cw_error err;
        open_mem(keys[i], 1, &src); /* fails half way */
        struct counter c = {0};
        struct archive_visitor v = {&c, want, data, NULL, NULL};
        assert_int_equal(archive_reader_walk_source(&src, keys[i], NULL, &v, NULL, &err), -1);
        assert_int_equal(err.cls, CW_ERR_TRANSIENT);
        assert_non_null(strstr(err.message, "connection reset"));
        upload_source_close(&src);
    }
}

static void test_empty_upload(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/empty.tgz", root);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fclose(f);
    struct upload_source src;
    struct cw_error err;
    assert_int_equal(upload_source_open(&cfg, "empty.tgz", 0, &src, &err), 0);
    assert_int_equal(archive_reader_walk_source(&src, "empty.tgz", NULL, NULL, NULL, &err), -1);
    assert_string_equal(err.message, "Invalid archive format: empty file");
    char hex[65];
    upload_source_hex_digest(&src, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    upload_source_close(&src);
}

static void test_backends(void **state)
{
    (void)state;
    struct upload_source src;
    struct cw_error err;
    struct cw_config other = cfg;
    other.storage_backend = "ftp"; /* s3 is tested against a real store (test_s3_storage.py) */
    assert_int_equal(upload_source_open(&other, "ta.tar", -1, &src, &err), -1);
    assert_int_equal(err.cls, CW_ERR_PERMANENT);
    assert_string_equal(err.message, "STORAGE_BACKEND=ftp is not a storage backend (local or s3)");
    assert_int_equal(upload_source_open(&cfg, "missing.tar", -1, &src, &err), -1);
    assert_int_equal(err.cls, CW_ERR_TRANSIENT);
    assert_int_equal(upload_source_open(&cfg, "../etc/passwd", -1, &src, &err), -1);
    assert_int_equal(err.cls, CW_ERR_PERMANENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tar_gz_hashed_in_one_pass),
        cmocka_unit_test(test_tar_hashed_in_one_pass),
        cmocka_unit_test(test_zip_by_positional_reads),
        cmocka_unit_test(test_zip_without_a_file_is_read_into_memory),
        cmocka_unit_test(test_store_error_keeps_its_class),
        cmocka_unit_test(test_empty_upload),
        cmocka_unit_test(test_backends),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
