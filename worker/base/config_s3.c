/* S3 settings: parsing and the start-up check. */
#include "base/config_s3.h"
#include "base/xalloc.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void replace(char **slot, char *value)
{
    free(*slot);
    *slot = value;
}

int config_s3_set_endpoint(struct cw_s3_config *s3, const char *name, const char *value,
                           struct cw_error *err)
{
    const char *host = NULL;
    if (strncasecmp(value, "http://", 7) == 0)
        host = value + 7;
    else if (strncasecmp(value, "https://", 8) == 0)
        host = value + 8;
    if (!host || !*host || *host == '/' || strpbrk(value, "?# \t\r\n")) {
        CW_FAIL(err, CW_ERR_PERMANENT, "%s: expected http://HOST[:PORT] or https://HOST[:PORT]",
                name);
        return -1;
    }
    if (strchr(host, '@')) { /* user:password@ would be echoed in messages: refused, unshown */
        CW_FAIL(err, CW_ERR_PERMANENT,
                "%s: must not hold credentials (use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)",
                name);
        return -1;
    }
    char *copy = cw_xstrdup(value);
    size_t len = strlen(copy);
    while (len && copy[len - 1] == '/')
        copy[--len] = '\0';
    replace(&s3->endpoint_url, copy);
    return 0;
}

int config_s3_set_addressing_style(struct cw_s3_config *s3, const char *name, const char *value,
                                   struct cw_error *err)
{
    if (strcmp(value, "auto") == 0) {
        replace(&s3->addressing_style, NULL);
        return 0;
    }
    if (strcmp(value, "path") != 0 && strcmp(value, "virtual") != 0) {
        CW_FAIL(err, CW_ERR_PERMANENT, "%s: expected 'path' or 'virtual', got '%s'", name, value);
        return -1;
    }
    replace(&s3->addressing_style, cw_xstrdup(value));
    return 0;
}

bool config_s3_path_style(const struct cw_s3_config *s3)
{
    if (s3->addressing_style)
        return strcmp(s3->addressing_style, "path") == 0;
    return s3->endpoint_url != NULL;
}

/* S3's rule: 3 to 63 of [a-z0-9.-], starting and ending with a letter or digit. A name
 * outside it could never be found, and a '/' or '?' would change the request's path. */
static bool bucket_name_valid(const char *b)
{
    size_t len = strlen(b);
    if (len < 3 || len > 63)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = b[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && ((c != '.' && c != '-') || i == 0 || i == len - 1))
            return false;
    }
    return true;
}

int config_s3_check(const struct cw_s3_config *s3, struct cw_error *err)
{
    if (!s3->bucket) {
        CW_FAIL(err, CW_ERR_PERMANENT, "STORAGE_BACKEND=s3 needs S3_BUCKET");
        return -1;
    }
    if (!bucket_name_valid(s3->bucket)) {
        CW_FAIL(err, CW_ERR_PERMANENT,
                "S3_BUCKET: '%s' is not a valid bucket name (3-63 of a-z 0-9 . -)", s3->bucket);
        return -1;
    }
    /* The variables are named, never their values. */
    if (!s3->access_key_id || !s3->secret_access_key) {
        CW_FAIL(err, CW_ERR_PERMANENT, "STORAGE_BACKEND=s3 needs %s",
                !s3->access_key_id ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY");
        return -1;
    }
    if (strchr(s3->bucket, '.') && !config_s3_path_style(s3) && !s3->endpoint_url) {
        /* AWS's wildcard certificate does not cover a dotted name as a subdomain. */
        CW_FAIL(err, CW_ERR_PERMANENT,
                "S3_BUCKET '%s' holds a '.': set S3_ADDRESSING_STYLE=path (TLS would fail)",
                s3->bucket);
        return -1;
    }
    return 0;
}

void config_s3_free(struct cw_s3_config *s3)
{
    free(s3->bucket);
    free(s3->endpoint_url);
    free(s3->region);
    free(s3->addressing_style);
    /* Do not leave the secrets in freed memory (explicit_bzero: a memset before free may
     * be dropped by the compiler). */
    if (s3->secret_access_key)
        explicit_bzero(s3->secret_access_key, strlen(s3->secret_access_key));
    if (s3->session_token)
        explicit_bzero(s3->session_token, strlen(s3->session_token));
    free(s3->access_key_id);
    free(s3->secret_access_key);
    free(s3->session_token);
    free(s3->ca_bundle);
    memset(s3, 0, sizeof *s3);
}
