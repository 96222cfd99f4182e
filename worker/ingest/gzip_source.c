/* zlib inflate of one or more gzip members, verifying each member's CRC-32 and length. */
#include "ingest/gzip_source.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/xalloc.h"

#define GZIP_WINDOW (15 + 16) /* gzip wrapper only, trailer checked */

bool gzip_source_detect(const void *p, size_t n)
{
    const unsigned char *b = p;
    return n >= 3 && b[0] == 0x1f && b[1] == 0x8b && b[2] == 8;
}

static void init_common(struct gzip_source *g)
{
    g->in = cw_xmalloc(GZIP_SOURCE_CHUNK);
    g->out = cw_xmalloc(GZIP_SOURCE_CHUNK);
    memset(&g->zs, 0, sizeof g->zs);
    if (inflateInit2(&g->zs, GZIP_WINDOW) != Z_OK) {
        snprintf(g->error, sizeof g->error, "cannot start gzip decompression");
        g->at_end = true;
    }
}

void gzip_source_init_fd(struct gzip_source *g, int fd)
{
    memset(g, 0, sizeof *g);
    g->fd = fd;
    init_common(g);
}

void gzip_source_init_memory(struct gzip_source *g, const void *buf, size_t len)
{
    memset(g, 0, sizeof *g);
    g->fd = -1;
    g->mem = buf;
    g->mem_len = len;
    init_common(g);
}

void gzip_source_init_reader(struct gzip_source *g, gzip_source_reader reader, void *ctx)
{
    memset(g, 0, sizeof *g);
    g->fd = -1;
    g->reader = reader;
    g->reader_ctx = ctx;
    init_common(g);
}

/* Fills the input buffer when it is empty: bytes now available, 0 at EOF, -1 on error. */
static ssize_t refill(struct gzip_source *g)
{
    if (g->zs.avail_in > 0)
        return (ssize_t)g->zs.avail_in;
    ssize_t n;
    if (g->reader) {
        n = g->reader(g->reader_ctx, g->in, GZIP_SOURCE_CHUNK, g->error, sizeof g->error);
        if (n < 0)
            return -1;
    } else if (g->fd >= 0) {
        do
            n = read(g->fd, g->in, GZIP_SOURCE_CHUNK);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
            snprintf(g->error, sizeof g->error, "cannot read the upload: %s", strerror(errno));
            return -1;
        }
    } else {
        size_t left = g->mem_len - g->mem_pos;
        n = (ssize_t)(left < GZIP_SOURCE_CHUNK ? left : GZIP_SOURCE_CHUNK);
        memcpy(g->in, g->mem + g->mem_pos, (size_t)n);
        g->mem_pos += (size_t)n;
    }
    g->zs.next_in = g->in;
    g->zs.avail_in = (uInt)n;
    return n;
}

static ssize_t fail(struct gzip_source *g, const char *what)
{
    snprintf(g->error, sizeof g->error, "gzip data is %s", what);
    g->at_end = true;
    return -1;
}

/* After a member: another one follows, or the data ends (trailing bytes ignored). */
static ssize_t next_member(struct gzip_source *g)
{
    ssize_t n = refill(g);
    if (n < 0)
        return -1;
    if (n == 0 || g->zs.next_in[0] != 0x1f) {
        g->at_end = true;
        return 0;
    }
    inflateReset(&g->zs);
    g->member_done = false;
    return 1;
}

ssize_t gzip_source_read(struct gzip_source *g, const void **out)
{
    if (g->error[0])
        return -1;
    while (!g->at_end) {
        if (g->member_done) {
            ssize_t r = next_member(g);
            if (r <= 0)
                return r;
        }
        ssize_t n = refill(g);
        if (n < 0)
            return -1;
        if (n == 0)
            return fail(g, "truncated (the upload ends inside a gzip member)");
        g->zs.next_out = g->out;
        g->zs.avail_out = GZIP_SOURCE_CHUNK;
        int rc = inflate(&g->zs, Z_NO_FLUSH);
        size_t produced = GZIP_SOURCE_CHUNK - g->zs.avail_out;
        if (rc == Z_STREAM_END)
            g->member_done = true;
        else if (rc != Z_OK && rc != Z_BUF_ERROR) {
            char what[160];
            snprintf(what, sizeof what, "corrupt: %s", g->zs.msg ? g->zs.msg : "inflate failed");
            return fail(g, what);
        }
        if (produced > 0) {
            *out = g->out;
            return (ssize_t)produced;
        }
    }
    return 0;
}

void gzip_source_free(struct gzip_source *g)
{
    inflateEnd(&g->zs);
    free(g->in);
    free(g->out);
    g->in = g->out = NULL;
}
