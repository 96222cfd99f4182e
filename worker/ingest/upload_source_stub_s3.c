/* STAND-IN, to be deleted at merge: the s3 branch needs upload_source_init/read/
 * hex_digest/close to test its backend before the real worker/ingest/upload_source.c
 * (another branch) lands. It does what the header says and nothing more; it has no
 * upload_source_open (the dispatch is the other branch's). */
#include "ingest/upload_source.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void upload_source_init(struct upload_source *src, const struct upload_source_ops *ops, void *impl,
                        const char *name, int64_t expected_size)
{
    memset(src, 0, sizeof *src);
    src->ops = ops;
    src->impl = impl;
    snprintf(src->name, sizeof src->name, "%s", name);
    src->expected_size = expected_size;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        abort(); /* out of memory: a stand-in does not recover */
    src->sha256 = ctx;
}

ssize_t upload_source_read(struct upload_source *src, void *buf, size_t len, struct cw_error *err)
{
    ssize_t n = src->ops->read(src->impl, buf, len, err);
    if (n > 0) {
        EVP_DigestUpdate(src->sha256, buf, (size_t)n);
        src->bytes += (uint64_t)n;
    }
    return n;
}

void upload_source_hex_digest(const struct upload_source *src, char hex_out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *copy = EVP_MD_CTX_new();
    if (!copy || EVP_MD_CTX_copy_ex(copy, src->sha256) != 1 ||
        EVP_DigestFinal_ex(copy, md, &mdlen) != 1)
        abort();
    EVP_MD_CTX_free(copy);
    for (unsigned int i = 0; i < mdlen && i < 32; i++)
        snprintf(hex_out + 2 * i, 3, "%02x", md[i]);
    hex_out[64] = '\0';
}

void upload_source_close(struct upload_source *src)
{
    if (src->ops && src->impl)
        src->ops->close(src->impl);
    EVP_MD_CTX_free(src->sha256);
    memset(src, 0, sizeof *src);
}
