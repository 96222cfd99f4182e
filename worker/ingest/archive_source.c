/* The archive reader over an upload_source: one front-to-back pass that is also the pass
 * that hashes the upload. */
#include "ingest/archive_reader.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>

#include "base/strbuf.h"
#include "base/xalloc.h"
#include "ingest/archive_walk.h"
#include "ingest/upload_source.h"

#define FEED_CHUNK (64 * 1024)

/* The upload as libarchive (or gzip_source) pulls it: the sniffed head first, then the
 * rest of the stream. A failed read keeps the source's error, whose class libarchive's
 * message would lose. */
struct feed {
    struct upload_source *src;
    unsigned char *head, *buf; /* FEED_CHUNK bytes each, owned */
    size_t head_len, head_pos;
    bool failed;
    struct cw_error err;
};

static ssize_t feed_next(struct feed *f, const void **out)
{
    if (f->head_pos < f->head_len) {
        *out = f->head + f->head_pos;
        size_t n = f->head_len - f->head_pos;
        f->head_pos = f->head_len;
        return (ssize_t)n;
    }
    ssize_t n = upload_source_read(f->src, f->buf, FEED_CHUNK, &f->err);
    if (n < 0)
        f->failed = true;
    *out = f->buf;
    return n;
}

static la_ssize_t feed_read_cb(struct archive *a, void *ctx, const void **buf)
{
    struct feed *f = ctx;
    ssize_t n = feed_next(f, buf);
    if (n < 0)
        archive_set_error(a, EIO, "%s", f->err.message);
    return (la_ssize_t)n;
}

/* gzip_source's reader: copies, since it inflates from its own buffer. */
static ssize_t feed_gzip_reader(void *ctx, void *buf, size_t len, char *why, size_t why_len)
{
    struct feed *f = ctx;
    if (f->head_pos < f->head_len) {
        size_t n = f->head_len - f->head_pos;
        n = n < len ? n : len;
        memcpy(buf, f->head + f->head_pos, n);
        f->head_pos += n;
        return (ssize_t)n;
    }
    ssize_t n = upload_source_read(f->src, buf, len, &f->err);
    if (n < 0) {
        f->failed = true;
        snprintf(why, why_len, "%s", f->err.message);
    }
    return n;
}

static la_ssize_t gzip_cb(struct archive *a, void *ctx, const void **buf)
{
    struct gzip_source *g = ctx;
    ssize_t n = gzip_source_read(g, buf);
    if (n < 0)
        archive_set_error(a, EINVAL, "%s", g->error);
    return (la_ssize_t)n;
}

/* Positional reads of the local file for the zip reader, which seeks. */
struct pread_feed {
    int fd;
    off_t off, size;
    unsigned char *buf;
};

static la_ssize_t pread_cb(struct archive *a, void *ctx, const void **buf)
{
    struct pread_feed *p = ctx;
    ssize_t n;
    do
        n = pread(p->fd, p->buf, FEED_CHUNK, p->off);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        archive_set_error(a, errno, "cannot read the upload: %s", strerror(errno));
        return -1;
    }
    p->off += n;
    *buf = p->buf;
    return (la_ssize_t)n;
}

static la_int64_t pseek_cb(struct archive *a, void *ctx, la_int64_t offset, int whence)
{
    (void)a;
    struct pread_feed *p = ctx;
    off_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? p->off : p->size;
    if (base + offset < 0)
        return ARCHIVE_FATAL;
    p->off = base + offset;
    return p->off;
}

static int walk_zip_fd(int fd, const struct upload_magic *m, const char *upload_name,
                       const struct archive_limits *limits, const struct archive_visitor *v,
                       struct archive_stats *stats, struct cw_error *err)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        CW_FAIL(err, CW_ERR_TRANSIENT, "cannot stat upload: %s", strerror(errno));
        return -1;
    }
    struct archive *a = archive_new_reader();
    if (a == NULL) {
        CW_FAIL(err, CW_ERR_INTERNAL, "archive_read_new failed");
        return -1;
    }
    struct pread_feed p = {.fd = fd, .size = st.st_size, .buf = cw_xmalloc(FEED_CHUNK)};
    archive_read_set_read_callback(a, pread_cb);
    archive_read_set_seek_callback(a, pseek_cb);
    archive_read_set_callback_data(a, &p);
    int open_rc = archive_read_open1(a);
    int rc = archive_walk(a, open_rc, NULL, m, upload_name, limits, v, stats, err);
    free(p.buf);
    return rc;
}

/* A backend without a file: the zip (compressed, so usually small) is read into memory. */
static int walk_zip_memory(struct feed *f, const char *upload_name,
                           const struct archive_limits *limits, const struct archive_visitor *v,
                           struct archive_stats *stats, struct cw_error *err)
{
    struct strbuf all = STRBUF_INIT;
    const void *chunk;
    ssize_t n;
    int rc = 0;
    while (rc == 0 && (n = feed_next(f, &chunk)) != 0) {
        if (n < 0) {
            *err = f->err;
            rc = -1;
        } else if (all.len + (size_t)n > ARCHIVE_ZIP_MEMORY_MAX) {
            CW_FAIL(err, CW_ERR_PERMANENT,
                    "Archive limit exceeded: a zip from this store is read into memory, and this "
                    "one is larger than %llu bytes",
                    (unsigned long long)ARCHIVE_ZIP_MEMORY_MAX);
            rc = -1;
        } else {
            strbuf_append(&all, chunk, (size_t)n);
        }
    }
    if (rc == 0)
        rc = archive_reader_walk_memory(all.data, all.len, upload_name, limits, v, stats, err);
    strbuf_free(&all);
    return rc;
}

/* Reads until the head holds MAGIC_BYTES (or the upload ends). */
static int read_head(struct feed *f, struct cw_error *err)
{
    while (f->head_len < MAGIC_BYTES) {
        ssize_t n =
            upload_source_read(f->src, f->head + f->head_len, FEED_CHUNK - f->head_len, err);
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        f->head_len += (size_t)n;
    }
    return 0;
}

static int walk_stream(struct feed *f, const struct upload_magic *m, const char *upload_name,
                       const struct archive_limits *limits, const struct archive_visitor *v,
                       struct archive_stats *stats, struct cw_error *err)
{
    struct archive *a = archive_new_reader();
    if (a == NULL) {
        CW_FAIL(err, CW_ERR_INTERNAL, "archive_read_new failed");
        return -1;
    }
    struct gzip_source gz;
    int open_rc;
    if (m->gzip) {
        gzip_source_init_reader(&gz, feed_gzip_reader, f);
        open_rc = archive_read_open(a, &gz, NULL, gzip_cb, NULL);
    } else {
        open_rc = archive_read_open(a, f, NULL, feed_read_cb, NULL);
    }
    int rc = archive_walk(a, open_rc, m->gzip ? &gz : NULL, m, upload_name, limits, v, stats, err);
    if (m->gzip)
        gzip_source_free(&gz);
    return rc;
}

int archive_reader_walk_source(struct upload_source *src, const char *upload_name,
                               const struct archive_limits *limits, const struct archive_visitor *v,
                               struct archive_stats *stats, struct cw_error *err)
{
    struct feed f = {.src = src, .head = cw_xmalloc(FEED_CHUNK), .buf = cw_xmalloc(FEED_CHUNK)};
    int rc = read_head(&f, err);
    if (rc == 0 && f.head_len == 0)
        rc = archive_fail_empty(stats, err);
    else if (rc == 0) {
        struct upload_magic m = archive_sniff(f.head, f.head_len);
        int fd = upload_source_fd(src);
        if (m.empty_zip)
            rc = archive_walk_empty_zip(&m, stats, err);
        else if (m.zip && fd >= 0)
            rc = walk_zip_fd(fd, &m, upload_name, limits, v, stats, err);
        else if (m.zip)
            rc = walk_zip_memory(&f, upload_name, limits, v, stats, err);
        else
            rc = walk_stream(&f, &m, upload_name, limits, v, stats, err);
        if (rc != 0 && f.failed)
            *err = f.err; /* the store failed, not the archive */
    }
    free(f.head);
    free(f.buf);
    return rc;
}
