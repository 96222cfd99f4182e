/* Unit tests for the pure half of the S3 backend and its settings: object URLs in both
 * addressing styles, the <Code> of an error body, the class and message of every answer
 * (never a credential in it), and config_load's S3 checks. */
#include "base/config.h"
#include "base/config_s3.h"
#include "ingest/s3_request.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const char *const variables[] = {
    "STORAGE_BACKEND",    "S3_BUCKET",           "S3_ENDPOINT_URL",    "AWS_REGION",
    "AWS_DEFAULT_REGION", "S3_ADDRESSING_STYLE", "AWS_ACCESS_KEY_ID",  "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",  "AWS_CA_BUNDLE",       "S3_CONNECT_TIMEOUT", "S3_READ_TIMEOUT",
};

static int clear_environment(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof variables / sizeof variables[0]; i++)
        unsetenv(variables[i]);
    return 0;
}

static struct cw_s3_config s3_of(const char *endpoint, const char *style)
{
    struct cw_s3_config s3 = {
        .bucket = "uploads",
        .endpoint_url = (char *)endpoint,
        .region = "eu-west-3",
        .addressing_style = (char *)style,
        .access_key_id = "AKIDSECRETID",
        .secret_access_key = "SECRETKEY",
    };
    return s3;
}

static void assert_url(const struct cw_s3_config *s3, const char *key, const char *want)
{
    char *url = s3_object_url(s3, key);
    assert_string_equal(url, want);
    free(url);
}

static void test_urls(void **state)
{
    (void)state;
    struct cw_s3_config minio = s3_of("http://127.0.0.1:9000", NULL);
    assert_url(&minio, "runs/1/ta.tar.gz", "http://127.0.0.1:9000/uploads/runs/1/ta.tar.gz");
    /* once-encoded, '/' and unreserved bytes kept: what SigV4 signs for S3 */
    assert_url(&minio, "a b+c/é~_.-", "http://127.0.0.1:9000/uploads/a%20b%2Bc/%C3%A9~_.-");
    struct cw_s3_config aws = s3_of(NULL, NULL);
    assert_url(&aws, "k", "https://uploads.s3.eu-west-3.amazonaws.com/k");
    struct cw_s3_config aws_path = s3_of(NULL, "path");
    assert_url(&aws_path, "k", "https://s3.eu-west-3.amazonaws.com/uploads/k");
    struct cw_s3_config virt = s3_of("https://minio.internal:9000", "virtual");
    assert_url(&virt, "k", "https://uploads.minio.internal:9000/k");
}

static void test_key_check(void **state)
{
    (void)state;
    struct cw_error err;
    assert_int_equal(s3_key_check("runs/1/x.tar.gz", &err), 0);
    assert_int_equal(s3_key_check("a..b/.c/d.", &err), 0);
    const char *bad[] = {"", "a/../b", "./a", "a/.", "..", "a\nb"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(s3_key_check(bad[i], &err), -1);
        assert_int_equal(err.cls, CW_ERR_PERMANENT);
    }
}

static void test_error_code(void **state)
{
    (void)state;
    char code[S3_ERROR_CODE_MAX];
    const char *body = "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>The "
                       "specified key does not exist.</Message></Error>";
    s3_error_code(body, strlen(body), code);
    assert_string_equal(code, "NoSuchKey");
    s3_error_code(body, 20, code); /* cut before <Code> */
    assert_string_equal(code, "");
    const char *odd = "<Error><Code>Slow\"Down<script></Code>";
    s3_error_code(odd, strlen(odd), code);
    assert_string_equal(code, "SlowDown");
    s3_error_code("", 0, code);
    assert_string_equal(code, "");
}

struct answer {
    long status;
    const char *code;
    enum cw_error_class cls;
    const char *message;
};

static void test_classification(void **state)
{
    (void)state;
    const struct answer answers[] = {
        {404, "NoSuchKey", CW_ERR_TRANSIENT,
         "storage object runs/1/x not found in bucket uploads "
         "(NoSuchKey)"},
        {404, "", CW_ERR_TRANSIENT,
         "storage object runs/1/x not found in bucket uploads "
         "(NoSuchKey)"},
        {404, "NoSuchBucket", CW_ERR_PERMANENT,
         "storage object runs/1/x: S3_BUCKET 'uploads' does not exist in the store "
         "(NoSuchBucket)"},
        {403, "InvalidAccessKeyId", CW_ERR_PERMANENT,
         "storage object runs/1/x: AWS_ACCESS_KEY_ID is not known to the store "
         "(InvalidAccessKeyId)"},
        {403, "SignatureDoesNotMatch", CW_ERR_PERMANENT,
         "storage object runs/1/x: the store rejected the signature: AWS_SECRET_ACCESS_KEY "
         "does not match AWS_ACCESS_KEY_ID (SignatureDoesNotMatch)"},
        {403, "AccessDenied", CW_ERR_TRANSIENT, NULL},
        {400, "AuthorizationHeaderMalformed", CW_ERR_PERMANENT, NULL},
        {301, "PermanentRedirect", CW_ERR_PERMANENT, NULL},
        {400, "ExpiredToken", CW_ERR_TRANSIENT, NULL},
        {403, "RequestTimeTooSkewed", CW_ERR_TRANSIENT, NULL},
        {503, "SlowDown", CW_ERR_TRANSIENT,
         "storage object runs/1/x: the store answered HTTP 503 (SlowDown)"},
        {500, "InternalError", CW_ERR_TRANSIENT, NULL},
        {502, "", CW_ERR_TRANSIENT,
         "storage object runs/1/x: the store answered HTTP 502 (no error code)"},
        {429, "", CW_ERR_TRANSIENT, NULL},
        {400, "InvalidRequest", CW_ERR_PERMANENT,
         "storage object runs/1/x: the store refused it with HTTP 400 (InvalidRequest)"},
    };
    struct cw_s3_config s3 = s3_of("http://127.0.0.1:9000", NULL);
    for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++) {
        struct cw_error err;
        s3_classify_http(answers[i].status, answers[i].code, &s3, "runs/1/x", &err);
        if (err.cls != answers[i].cls)
            fail_msg("%ld %s: class %s", answers[i].status, answers[i].code,
                     cw_error_class_name(err.cls));
        if (answers[i].message)
            assert_string_equal(err.message, answers[i].message);
        assert_null(strstr(err.message, "SECRETKEY"));
        assert_null(strstr(err.message, "AKIDSECRETID"));
    }
}

static int load(struct cw_config *cfg, struct cw_error *err)
{
    char *argv[] = {"run", NULL};
    return config_load(cfg, 1, argv, err);
}

static void assert_refused(const char *message)
{
    struct cw_config cfg;
    struct cw_error err;
    if (load(&cfg, &err) == 0)
        fail_msg("accepted, expected: %s", message);
    assert_int_equal(err.cls, CW_ERR_PERMANENT);
    assert_string_equal(err.message, message);
    config_free(&cfg);
}

static void test_config_s3(void **state)
{
    (void)state;
    setenv("STORAGE_BACKEND", "s3", 1);
    assert_refused("STORAGE_BACKEND=s3 needs S3_BUCKET");
    setenv("S3_BUCKET", "Up_loads", 1);
    assert_refused("S3_BUCKET: 'Up_loads' is not a valid bucket name (3-63 of a-z 0-9 . -)");
    setenv("S3_BUCKET", "uploads", 1);
    assert_refused("STORAGE_BACKEND=s3 needs AWS_ACCESS_KEY_ID");
    setenv("AWS_ACCESS_KEY_ID", "AKIDSECRETID", 1);
    assert_refused("STORAGE_BACKEND=s3 needs AWS_SECRET_ACCESS_KEY");
    setenv("AWS_SECRET_ACCESS_KEY", "SECRETKEY", 1);

    struct cw_config cfg;
    struct cw_error err;
    assert_int_equal(load(&cfg, &err), 0);
    assert_string_equal(cfg.s3.region, "us-east-1");
    assert_false(config_s3_path_style(&cfg.s3)); /* AWS: virtual-hosted */
    assert_int_equal(cfg.s3.connect_timeout, 10);
    assert_int_equal(cfg.s3.read_timeout, 30);
    config_free(&cfg);

    setenv("AWS_DEFAULT_REGION", "eu-west-1", 1);
    setenv("S3_ENDPOINT_URL", "http://127.0.0.1:9000/", 1);
    setenv("S3_READ_TIMEOUT", "5", 1);
    assert_int_equal(load(&cfg, &err), 0);
    assert_string_equal(cfg.s3.region, "eu-west-1");
    assert_string_equal(cfg.s3.endpoint_url, "http://127.0.0.1:9000");
    assert_true(config_s3_path_style(&cfg.s3)); /* an endpoint: path style */
    assert_int_equal(cfg.s3.read_timeout, 5);
    config_free(&cfg);

    setenv("AWS_REGION", "ap-south-1", 1); /* AWS_REGION wins, as in boto3 */
    setenv("S3_ADDRESSING_STYLE", "virtual", 1);
    assert_int_equal(load(&cfg, &err), 0);
    assert_string_equal(cfg.s3.region, "ap-south-1");
    assert_false(config_s3_path_style(&cfg.s3));
    config_free(&cfg);

    setenv("S3_ADDRESSING_STYLE", "sideways", 1);
    assert_refused("S3_ADDRESSING_STYLE: expected 'path' or 'virtual', got 'sideways'");
    unsetenv("S3_ADDRESSING_STYLE");
    setenv("S3_ENDPOINT_URL", "http://user:pw@127.0.0.1:9000", 1);
    assert_refused("S3_ENDPOINT_URL: must not hold credentials (use "
                   "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)");
    setenv("S3_ENDPOINT_URL", "127.0.0.1:9000", 1);
    assert_refused("S3_ENDPOINT_URL: expected http://HOST[:PORT] or https://HOST[:PORT]");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_key_check),
        cmocka_unit_test(test_error_code),
        cmocka_unit_test(test_classification),
        cmocka_unit_test_setup(test_config_s3, clear_environment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
