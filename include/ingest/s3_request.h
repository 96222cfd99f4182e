/* The pure half of the S3 backend: the URL of an object and what an S3 answer means.
 * No I/O, no libcurl: unit-tested in tests/unit/test_s3_request.c.
 *
 * Classification (README "Uploads in S3 or MinIO" has the table and the reasons):
 * the store being down, slow or throttling, and an object not there yet, are
 * CW_ERR_TRANSIENT; a bucket, region or credential the store does not know is
 * CW_ERR_PERMANENT with a message naming the variable to fix. Messages name the object
 * and the bucket, never a credential (not even the access key id), and never echo the
 * store's own <Message> (a SignatureDoesNotMatch body carries the string to sign). */
#ifndef CWORKER_S3_REQUEST_H
#define CWORKER_S3_REQUEST_H

#include "base/config.h"
#include "base/error.h"

#include <stddef.h>

#define S3_ERROR_CODE_MAX 64

/* A key S3 can name in a URL: 1..1024 bytes, no control bytes, no "." or ".." segment
 * (an HTTP client would fold them into another path). Else CW_ERR_PERMANENT. */
CW_MUST_CHECK int s3_key_check(const char *key, struct cw_error *err);

/* The object's URL, malloc'd: ENDPOINT/BUCKET/KEY (path style) or
 * SCHEME://BUCKET.HOST/KEY (virtual), the key percent-encoded once as SigV4 signs it
 * (unreserved bytes and '/' kept). Without S3_ENDPOINT_URL: AWS's s3.REGION host. */
char *s3_object_url(const struct cw_s3_config *s3, const char *key);

/* The <Code> of an S3 XML error body (at most len bytes, need not be NUL-terminated),
 * reduced to [A-Za-z0-9.]; "" when there is none. */
void s3_error_code(const char *body, size_t len, char code[S3_ERROR_CODE_MAX]);

/* Fills err for an answer with HTTP status (not 2xx) and S3 error code ("" if none). */
void s3_classify_http(long status, const char *code, const struct cw_s3_config *s3, const char *key,
                      struct cw_error *err);

#endif
