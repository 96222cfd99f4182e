/* S3 object URLs and the meaning of S3 error answers. */
#include "ingest/s3_request.h"
#include "base/config_s3.h"
#include "base/strbuf.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

int s3_key_check(const char *key, struct cw_error *err)
{
    size_t len = key ? strlen(key) : 0;
    if (len == 0 || len > 1024) {
        CW_FAIL(err, CW_ERR_PERMANENT, "storage object key is empty or over 1024 bytes");
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c < 0x20 || c == 0x7f) {
            CW_FAIL(err, CW_ERR_PERMANENT, "storage object key holds a control byte");
            return -1;
        }
    }
    const char *seg = key;
    for (;;) {
        const char *end = strchr(seg, '/');
        size_t n = end ? (size_t)(end - seg) : strlen(seg);
        if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.')) {
            CW_FAIL(err, CW_ERR_PERMANENT, "storage object key '%s' has a '.' or '..' segment",
                    key);
            return -1;
        }
        if (!end)
            return 0;
        seg = end + 1;
    }
}

static void append_encoded_key(struct strbuf *sb, const char *key)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        unsigned char c = *p;
        bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == '~' || c == '/';
        if (keep) {
            strbuf_append_char(sb, (char)c);
        } else {
            strbuf_append_char(sb, '%');
            strbuf_append_char(sb, hex[c >> 4]);
            strbuf_append_char(sb, hex[c & 15]);
        }
    }
}

char *s3_object_url(const struct cw_s3_config *s3, const char *key)
{
    struct strbuf sb;
    strbuf_init(&sb);
    const char *scheme = "https://";
    const char *host = NULL;
    char aws_host[128];
    if (s3->endpoint_url) {
        const char *sep = strstr(s3->endpoint_url, "://");
        scheme = strncasecmp(s3->endpoint_url, "http://", 7) == 0 ? "http://" : "https://";
        host = sep + 3;
    } else {
        snprintf(aws_host, sizeof aws_host, "s3.%s.amazonaws.com", s3->region);
        host = aws_host;
    }
    strbuf_append_str(&sb, scheme);
    if (config_s3_path_style(s3)) {
        strbuf_appendf(&sb, "%s/%s/", host, s3->bucket);
    } else {
        strbuf_appendf(&sb, "%s.%s/", s3->bucket, host);
    }
    append_encoded_key(&sb, key);
    return strbuf_steal(&sb);
}

void s3_error_code(const char *body, size_t len, char code[S3_ERROR_CODE_MAX])
{
    code[0] = '\0';
    const char *open = memmem(body, len, "<Code>", 6);
    if (!open)
        return;
    const char *p = open + 6, *end = body + len;
    size_t n = 0;
    while (p < end && *p != '<' && n < S3_ERROR_CODE_MAX - 1) {
        char c = *p++;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.')
            code[n++] = c;
    }
    code[n] = '\0';
}

static bool is(const char *code, const char *want)
{
    return strcmp(code, want) == 0;
}

/* Codes whose cause is in the worker's settings: a retry by this worker reads the same
 * settings, so the run fails at once with the variable to fix. */
static bool classify_settings(long status, const char *code, const struct cw_s3_config *s3,
                              const char *key, struct cw_error *err)
{
    if (is(code, "NoSuchBucket")) {
        CW_FAIL(err, CW_ERR_PERMANENT,
                "storage object %s: S3_BUCKET '%s' does not exist in the store (NoSuchBucket)", key,
                s3->bucket);
    } else if (is(code, "InvalidAccessKeyId")) {
        CW_FAIL(err, CW_ERR_PERMANENT,
                "storage object %s: AWS_ACCESS_KEY_ID is not known to the store "
                "(InvalidAccessKeyId)",
                key);
    } else if (is(code, "SignatureDoesNotMatch")) {
        CW_FAIL(err, CW_ERR_PERMANENT,
                "storage object %s: the store rejected the signature: AWS_SECRET_ACCESS_KEY does "
                "not match AWS_ACCESS_KEY_ID (SignatureDoesNotMatch)",
                key);
    } else if (is(code, "InvalidToken") || is(code, "InvalidSecurity")) {
        CW_FAIL(err, CW_ERR_PERMANENT,
                "storage object %s: AWS_SESSION_TOKEN is not valid for the store (%s)", key, code);
    } else if (is(code, "AuthorizationHeaderMalformed") || is(code, "PermanentRedirect") ||
               is(code, "IllegalLocationConstraintException") || status == 301) {
        CW_FAIL(err, CW_ERR_PERMANENT,
                "storage object %s: bucket '%s' is not in AWS_REGION '%s' or not at this "
                "endpoint (%s, HTTP %ld)",
                key, s3->bucket, s3->region, *code ? code : "redirect", status);
    } else {
        return false;
    }
    return true;
}

void s3_classify_http(long status, const char *code, const struct cw_s3_config *s3, const char *key,
                      struct cw_error *err)
{
    if (classify_settings(status, code, s3, key, err))
        return;
    if (status == 404 && (is(code, "NoSuchKey") || !*code)) {
        /* Like a missing local blob: the application may still be uploading it. */
        CW_FAIL(err, CW_ERR_TRANSIENT, "storage object %s not found in bucket %s (NoSuchKey)", key,
                s3->bucket);
    } else if (is(code, "AccessDenied")) {
        /* S3 answers AccessDenied, not NoSuchKey, for a missing object when the identity
         * may not list the bucket: it may be an upload still landing. */
        CW_FAIL(err, CW_ERR_TRANSIENT,
                "storage object %s: access denied in bucket %s for AWS_ACCESS_KEY_ID's identity, "
                "or the object is not there yet (AccessDenied)",
                key, s3->bucket);
    } else if (is(code, "ExpiredToken") || is(code, "TokenRefreshRequired")) {
        CW_FAIL(err, CW_ERR_TRANSIENT, "storage object %s: AWS_SESSION_TOKEN has expired (%s)", key,
                code);
    } else if (is(code, "RequestTimeTooSkewed")) {
        CW_FAIL(err, CW_ERR_TRANSIENT,
                "storage object %s: this machine's clock is too far from the store's (%s)", key,
                code);
    } else if (status >= 500 || status == 429 || status == 408 || is(code, "SlowDown") ||
               is(code, "RequestTimeout")) {
        CW_FAIL(err, CW_ERR_TRANSIENT, "storage object %s: the store answered HTTP %ld (%s)", key,
                status, *code ? code : "no error code");
    } else {
        CW_FAIL(err, CW_ERR_PERMANENT, "storage object %s: the store refused it with HTTP %ld (%s)",
                key, status, *code ? code : "no error code");
    }
}
