/* A gzip decompressor in front of libarchive. libarchive's own gzip filter never checks a
 * member's CRC-32 or length, and its tar reader stops at the end-of-archive blocks, before
 * the trailer: a damaged .tar.gz would pass. This one inflates with zlib, which verifies
 * both, and can be drained to the end of the input after the walk. */
#ifndef CWORKER_GZIP_SOURCE_H
#define CWORKER_GZIP_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <zlib.h>

#define GZIP_SOURCE_CHUNK (64 * 1024)

/* Where a reader-fed gzip_source gets its compressed bytes: up to len bytes into buf,
 * their count, 0 at the end, -1 with a reason in why (why_len bytes). */
typedef ssize_t (*gzip_source_reader)(void *ctx, void *buf, size_t len, char *why, size_t why_len);

/* All fields are private; init, read..., free. */
struct gzip_source {
    int fd;                    /* the upload, or -1 when reading mem or through reader */
    gzip_source_reader reader; /* NULL unless init_reader */
    void *reader_ctx;
    const unsigned char *mem; /* caller-owned */
    size_t mem_len, mem_pos;
    unsigned char *in, *out; /* GZIP_SOURCE_CHUNK bytes each, owned */
    z_stream zs;
    bool member_done; /* the current member ended (trailer verified by zlib) */
    bool at_end;      /* no more data */
    char error[200];  /* why read returned -1 */
};

/* True when p[0..n) starts like a gzip member (magic and deflate method). */
bool gzip_source_detect(const void *p, size_t n);

/* Reads from fd (from its current offset) or from buf[0..len). */
void gzip_source_init_fd(struct gzip_source *g, int fd);
void gzip_source_init_memory(struct gzip_source *g, const void *buf, size_t len);
/* Reads through reader (an upload_source, hashed as it streams). */
void gzip_source_init_reader(struct gzip_source *g, gzip_source_reader reader, void *ctx);

/* The next decompressed bytes: their count with *out pointing at them (valid until the
 * next call), 0 once the last member is done, or -1 with g->error set: damaged data
 * ("incorrect data check" for a bad CRC), a truncated member, an unreadable fd. Members
 * are concatenated, as gzip does; bytes after the last member that do not start another
 * one are ignored, as gzip does. */
ssize_t gzip_source_read(struct gzip_source *g, const void **out);

void gzip_source_free(struct gzip_source *g);

#endif
