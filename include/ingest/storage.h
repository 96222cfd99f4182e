/* Reading uploaded blobs from the application's STORAGE_BACKEND=local store: each upload
 * lives under STORAGE_PATH at files.stored_object_key. */
#ifndef CWORKER_STORAGE_H
#define CWORKER_STORAGE_H

#include <stdint.h>

#include "base/error.h"

/* Opens root/object_key read-only (O_CLOEXEC); *fd_out is the caller's to close.
 * A key that is absolute, empty, holds control bytes or contains ".." components:
 * CW_ERR_PERMANENT (the row itself is wrong). A missing or unreadable blob (ENOENT,
 * EACCES, EIO, a directory where the file should be, ...): CW_ERR_TRANSIENT, because
 * storage may be catching up; message like
 * "storage object runs/42/etc.tar.gz unreadable: No such file or directory".
 * The root path is kept out of the message (it goes in a traceback frame). */
CW_MUST_CHECK int storage_open(const char *root, const char *object_key, int *fd_out,
                               struct cw_error *err);

/* SHA-256 (OpenSSL EVP) of everything from the fd's current offset to EOF, as 64
 * lowercase hex chars plus NUL, and the number of bytes hashed; then seeks the fd back
 * to offset 0 so the archive reader can start. Read/seek errors: CW_ERR_TRANSIENT. */
CW_MUST_CHECK int storage_sha256_fd(int fd, char hex_out[65], uint64_t *size_out,
                                    struct cw_error *err);

#endif
