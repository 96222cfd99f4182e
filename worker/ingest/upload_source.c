/* An upload read as a stream, hashed (SHA-256, OpenSSL EVP) and counted as it passes.
 * STORAGE_BACKEND=local is a file under STORAGE_PATH (ingest/storage.h); s3 is another
 * backend behind the same struct upload_source_ops. */
#include "ingest/upload_source.h"
#include "ingest/s3_source.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "base/xalloc.h"
#include "ingest/storage.h"

#define DRAIN_CHUNK (64 * 1024)

struct local_upload {
    int fd;
    char key[256]; /* for messages: the object key, never STORAGE_PATH */
};

static ssize_t local_read(void *impl, void *buf, size_t len, struct cw_error *err)
{
    struct local_upload *u = impl;
    ssize_t n;
    do
        n = read(u->fd, buf, len);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        CW_FAIL(err, CW_ERR_TRANSIENT, "storage object %s unreadable: %s", u->key, strerror(errno));
    return n;
}

static void local_close(void *impl)
{
    struct local_upload *u = impl;
    if (u->fd >= 0)
        close(u->fd);
    free(u);
}

static const struct upload_source_ops local_ops = {.read = local_read, .close = local_close};

static int open_local(const struct cw_config *cfg, const char *object_key, int64_t expected_size,
                      struct upload_source *out, struct cw_error *err)
{
    int fd = -1;
    if (storage_open(cfg->storage_path, object_key, &fd, err) != 0)
        return -1;
    struct local_upload *u = cw_xcalloc(1, sizeof *u);
    u->fd = fd;
    snprintf(u->key, sizeof u->key, "%s", object_key);
    upload_source_init(out, &local_ops, u, object_key, expected_size);
    return 0;
}

int upload_source_open(const struct cw_config *cfg, const char *object_key, int64_t expected_size,
                       struct upload_source *out, struct cw_error *err)
{
    memset(out, 0, sizeof *out);
    const char *backend = cfg->storage_backend ? cfg->storage_backend : "local";
    if (strcmp(backend, "local") == 0)
        return open_local(cfg, object_key, expected_size, out, err);
    if (strcmp(backend, "s3") == 0)
        return s3_source_open(cfg, object_key, expected_size, out, err);
    CW_FAIL(err, CW_ERR_PERMANENT, "STORAGE_BACKEND=%s is not a storage backend (local or s3)",
            backend);
    return -1;
}

void upload_source_init(struct upload_source *src, const struct upload_source_ops *ops, void *impl,
                        const char *name, int64_t expected_size)
{
    memset(src, 0, sizeof *src);
    src->ops = ops;
    src->impl = impl;
    snprintf(src->name, sizeof src->name, "%s", name ? name : "(upload)");
    src->expected_size = expected_size;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        ctx = NULL;
    }
    src->sha256 = ctx; /* NULL only when OpenSSL is out of memory: reads then fail */
}

ssize_t upload_source_read(struct upload_source *src, void *buf, size_t len, struct cw_error *err)
{
    if (src->sha256 == NULL) {
        CW_FAIL(err, CW_ERR_INTERNAL, "cannot initialise SHA-256 (OpenSSL)");
        return -1;
    }
    ssize_t n = src->ops->read(src->impl, buf, len, err);
    if (n <= 0)
        return n;
    if (EVP_DigestUpdate(src->sha256, buf, (size_t)n) != 1) {
        CW_FAIL(err, CW_ERR_INTERNAL, "SHA-256 update failed (OpenSSL)");
        return -1;
    }
    src->bytes += (uint64_t)n;
    return n;
}

void upload_source_hex_digest(const struct upload_source *src, char hex_out[65])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_MD_CTX *copy = EVP_MD_CTX_new();
    /* A copy: the digest of what was read so far, and reading may go on. */
    if (!copy || !src->sha256 || EVP_MD_CTX_copy_ex(copy, src->sha256) != 1 ||
        EVP_DigestFinal_ex(copy, md, &n) != 1)
        n = 0;
    EVP_MD_CTX_free(copy);
    for (unsigned int i = 0; i < n; i++) {
        hex_out[2 * i] = digits[md[i] >> 4];
        hex_out[2 * i + 1] = digits[md[i] & 0xf];
    }
    hex_out[2 * n] = '\0'; /* "" when OpenSSL failed: it matches no checksum */
}

int upload_source_drain(struct upload_source *src, struct cw_error *err)
{
    unsigned char *buf = cw_xmalloc(DRAIN_CHUNK);
    ssize_t n;
    while ((n = upload_source_read(src, buf, DRAIN_CHUNK, err)) > 0)
        ;
    free(buf);
    return n < 0 ? -1 : 0;
}

int upload_source_fd(const struct upload_source *src)
{
    if (src->ops != &local_ops)
        return -1;
    return ((const struct local_upload *)src->impl)->fd;
}

void upload_source_close(struct upload_source *src)
{
    if (src->ops && src->ops->close)
        src->ops->close(src->impl);
    EVP_MD_CTX_free(src->sha256);
    src->ops = NULL;
    src->impl = NULL;
    src->sha256 = NULL;
}
