/* An upload as a stream of bytes, wherever it is stored: a file under STORAGE_PATH
 * (STORAGE_BACKEND=local) or an object in S3/MinIO (STORAGE_BACKEND=s3). The archive reader
 * pulls from it; every byte that passes is hashed (SHA-256) and counted, so the upload's
 * checksum is known when the walk ends, without a second pass, and nothing is written to
 * disk. A backend is a read function and a close function behind struct upload_source_ops.
 *
 * Errors: a read that fails for the store's reasons (I/O error, connection cut, timeout,
 * throttling) is CW_ERR_TRANSIENT with a message naming the object (never credentials);
 * what the backend knows can never succeed is CW_ERR_PERMANENT. */
#ifndef CWORKER_UPLOAD_SOURCE_H
#define CWORKER_UPLOAD_SOURCE_H

#include "base/config.h"
#include "base/error.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct upload_source_ops {
    /* Up to len bytes into buf: the count, 0 at the end of the object, -1 with err. */
    ssize_t (*read)(void *impl, void *buf, size_t len, struct cw_error *err);
    /* Releases impl (also after a failed read). */
    void (*close)(void *impl);
};

struct upload_source {
    const struct upload_source_ops *ops;
    void *impl;
    char name[256];        /* the object key, for messages */
    void *sha256;          /* the running digest (OpenSSL EVP_MD_CTX), owned */
    uint64_t bytes;        /* read so far */
    int64_t expected_size; /* the files row's size_bytes, -1 when unknown */
};

/* Opens the upload stored at object_key with the configured backend. */
CW_MUST_CHECK int upload_source_open(const struct cw_config *cfg, const char *object_key,
                                     int64_t expected_size, struct upload_source *out,
                                     struct cw_error *err);
/* Wraps a backend the caller made (tests, other stores): takes impl. */
void upload_source_init(struct upload_source *src, const struct upload_source_ops *ops, void *impl,
                        const char *name, int64_t expected_size);
/* Reads through the backend, hashing and counting what comes. */
ssize_t upload_source_read(struct upload_source *src, void *buf, size_t len, struct cw_error *err);
/* The SHA-256 of everything read so far, as 64 lowercase hex characters and a NUL. */
void upload_source_hex_digest(const struct upload_source *src, char hex_out[65]);
void upload_source_close(struct upload_source *src);

/* Reads (and hashes) whatever the walk left unread, to the end of the object: the
 * digest then covers the whole upload. */
CW_MUST_CHECK int upload_source_drain(struct upload_source *src, struct cw_error *err);
/* The local file's descriptor, for positional reads that leave the stream (and its
 * digest) alone, e.g. a zip's central directory; -1 for a backend without one. */
int upload_source_fd(const struct upload_source *src);

#endif
