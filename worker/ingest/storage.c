/* Local blob storage: opening uploads under STORAGE_PATH and hashing them. */
#include "ingest/storage.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "ingest/archive_path.h"
#include "base/xalloc.h"

#define STORAGE_READ_CHUNK (64 * 1024)

static int open_regular(const char *path, int *fd_out)
{
    int fd;
    do
        fd = open(path, O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    /* open(2) happily opens a directory; reading it would only fail later with EISDIR. */
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        return -1;
    }
    *fd_out = fd;
    return 0;
}

int storage_open(const char *root, const char *object_key, int *fd_out, struct cw_error *err)
{
    if (root == NULL || root[0] == '\0') {
        CW_FAIL(err, CW_ERR_INTERNAL, "storage root (STORAGE_PATH) is not set");
        return -1;
    }
    if (object_key == NULL) {
        CW_FAIL(err, CW_ERR_PERMANENT, "storage object key is missing");
        return -1;
    }
    /* The same vetting as archive entries: a key must stay inside the root. */
    size_t keylen = strlen(object_key);
    char *key = cw_xmalloc(keylen + 1);
    if (archive_path_normalize(object_key, key, keylen + 1, NULL) < 0) {
        free(key);
        CW_FAIL(err, CW_ERR_PERMANENT, "storage object key '%s' is unsafe (absolute, empty or ..)",
                object_key);
        return -1;
    }
    size_t rootlen = strlen(root);
    char *path = cw_xmalloc(rootlen + 1 + keylen + 1);
    memcpy(path, root, rootlen);
    path[rootlen] = '/';
    memcpy(path + rootlen + 1, key, strlen(key) + 1);
    free(key);

    int rc = open_regular(path, fd_out);
    if (rc < 0) {
        int saved = errno;
        CW_FAIL(err, CW_ERR_TRANSIENT, "storage object %s unreadable: %s", object_key,
                strerror(saved));
        CW_WRAP(err, "opening %s", path);
    }
    free(path);
    return rc;
}

static void to_hex(const unsigned char *md, unsigned int n, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    for (unsigned int i = 0; i < n; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 0xf];
    }
    hex[2 * n] = '\0';
}

/* Feeds the rest of the fd into ctx; -1 with errno set on a read error. */
static int digest_rest(int fd, EVP_MD_CTX *ctx, unsigned char *buf, uint64_t *size)
{
    for (;;) {
        ssize_t n = read(fd, buf, STORAGE_READ_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
            errno = EINVAL;
            return -1;
        }
        *size += (uint64_t)n;
    }
}

int storage_sha256_fd(int fd, char hex_out[65], uint64_t *size_out, struct cw_error *err)
{
    int rc = -1;
    uint64_t size = 0;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    unsigned char *buf = cw_xmalloc(STORAGE_READ_CHUNK);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        CW_FAIL(err, CW_ERR_INTERNAL, "cannot initialise SHA-256 (OpenSSL)");
        goto out;
    }
    if (digest_rest(fd, ctx, buf, &size) < 0) {
        CW_FAIL(err, CW_ERR_TRANSIENT, "reading storage object failed: %s", strerror(errno));
        goto out;
    }
    if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32) {
        CW_FAIL(err, CW_ERR_INTERNAL, "cannot finish SHA-256 (OpenSSL)");
        goto out;
    }
    if (lseek(fd, 0, SEEK_SET) < 0) {
        CW_FAIL(err, CW_ERR_TRANSIENT, "rewinding storage object failed: %s", strerror(errno));
        goto out;
    }
    to_hex(md, mdlen, hex_out);
    if (size_out)
        *size_out = size;
    rc = 0;
out:
    EVP_MD_CTX_free(ctx);
    free(buf);
    return rc;
}
