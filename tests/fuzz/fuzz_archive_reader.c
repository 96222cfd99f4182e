/* libFuzzer target: archive_reader_walk_memory (tar, tar.gz/bz2/xz, zip, bare .conf).
 *
 * Input: name:u8 (picks the upload name, which only names a bare .conf), then the upload.
 * The visitor wants every entry and feeds its data to the .conf parser, as parse_run does.
 * Limits are small so that bombs are stopped quickly; the limits themselves are checked:
 * the walk never hands out more than they allow. */
#include "ingest/archive_reader.h"
#include "ingest/conf_parser.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_ENTRY (256u << 10)
#define FUZZ_MAX_TOTAL (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct visit {
    struct conf_parser parser;
    bool in_entry;
    uint64_t entry_bytes, total_bytes;
};

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_archive_reader: %s\n", what);
    abort();
}

static bool want_entry(void *ctx, const char *path)
{
    struct visit *v = ctx;
    if (v->in_entry || path == NULL || path[0] == '\0' || path[0] == '/')
        fail("want_entry: nested entry or unsafe path");
    conf_parser_init(&v->parser, 0);
    v->in_entry = true;
    v->entry_bytes = 0;
    return true;
}

static int entry_data(void *ctx, const void *chunk, size_t len, struct cw_error *err)
{
    struct visit *v = ctx;
    if (!v->in_entry || len == 0 || len > 64 * 1024)
        fail("entry_data outside an entry or with a bad chunk");
    v->entry_bytes += len;
    v->total_bytes += len;
    if (v->entry_bytes > FUZZ_MAX_ENTRY || v->total_bytes > FUZZ_MAX_TOTAL)
        fail("data beyond the limits was delivered");
    if (conf_parser_feed(&v->parser, chunk, len, err) != 0)
        cw_error_clear(err); /* a bad .conf is the parser's verdict, not the walk's */
    return 0;
}

static int entry_end(void *ctx, struct cw_error *err)
{
    struct visit *v = ctx;
    struct conf_file f = {0};
    (void)err;
    if (!v->in_entry)
        fail("entry_end outside an entry");
    if (conf_parser_finish(&v->parser, &f, err) == 0)
        conf_file_free(&f);
    cw_error_clear(err);
    conf_parser_free(&v->parser);
    v->in_entry = false;
    return 0;
}

static void warning(void *ctx, const char *path, const char *reason)
{
    (void)ctx;
    if (path == NULL || reason == NULL)
        fail("warning without a path or reason");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {NULL, "upload.conf", "dir/app.tgz", "../x.conf", "\x01"};
    const struct archive_limits limits = {FUZZ_MAX_ENTRY, FUZZ_MAX_TOTAL, 200, 8};
    struct visit v = {0};
    const struct archive_visitor visitor = {&v, want_entry, entry_data, entry_end, warning};
    struct archive_stats stats;
    struct cw_error err = {0};

    if (size < 1)
        return 0;
    const char *name = names[data[0] % (sizeof names / sizeof names[0])];
    int rc = archive_reader_walk_memory(data + 1, size - 1, name, &limits, &visitor, &stats, &err);
    if (v.in_entry) /* the walk stopped inside an entry (a limit or a corrupt archive) */
        conf_parser_free(&v.parser);
    if (rc == 0 &&
        (stats.entries > limits.max_entries || stats.bytes_uncompressed > limits.max_total_bytes))
        fail("a walk that passed the limits succeeded");
    return 0;
}
