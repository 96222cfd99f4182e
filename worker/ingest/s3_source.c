/* The S3 backend of upload_source: one signed GET, streamed through a bounded buffer.
 *
 * libcurl rather than a hand-written client: it is well kept, signs AWS Signature V4
 * itself (CURLOPT_AWS_SIGV4), does TLS with verification, proxies and timeouts. The
 * multi interface lets the reader pull: the write callback fills `buf` and pauses the
 * transfer when the next chunk does not fit; a read that finds the buffer empty resumes
 * it and drives curl_multi_perform/curl_multi_poll until bytes come or the transfer ends. */
#include "ingest/s3_source.h"
#include "base/config_s3.h"
#include "base/xalloc.h"
#include "ingest/s3_request.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define S3_BUFFER_SIZE  (256 * 1024) /* body bytes held between curl and the reader */
#define S3_ERROR_BODY   4096         /* an error answer's XML kept to read its <Code> */
#define S3_POLL_MS      100
#define S3_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct s3_download {
    CURLM *multi;
    CURL *easy;
    struct curl_slist *headers;
    char key[256]; /* for messages */
    const struct cw_s3_config *s3;
    unsigned char *buf; /* body bytes [head, len) not yet read */
    size_t cap, head, len;
    bool paused, done;
    CURLcode result;
    long status;       /* 0 until the first body byte or the end */
    uint64_t received; /* body bytes curl handed over */
    char errbody[S3_ERROR_BODY];
    size_t errlen;
    char curl_message[CURL_ERROR_SIZE];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_init(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static bool status_ok(long status)
{
    return status >= 200 && status < 300;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    struct s3_download *d = userp;
    size_t n = size * nmemb;
    if (!d->status)
        curl_easy_getinfo(d->easy, CURLINFO_RESPONSE_CODE, &d->status);
    if (!status_ok(d->status)) { /* an error answer: keep its start, drop the rest */
        size_t room = sizeof d->errbody - d->errlen;
        size_t take = n < room ? n : room;
        memcpy(d->errbody + d->errlen, data, take);
        d->errlen += take;
        return n;
    }
    if (d->cap - d->len < n && d->head > 0) { /* slide the unread bytes to the front */
        memmove(d->buf, d->buf + d->head, d->len - d->head);
        d->len -= d->head;
        d->head = 0;
    }
    if (d->cap - d->len < n) {
        if (d->len > 0) { /* full: curl keeps the chunk and offers it again on resume */
            d->paused = true;
            return CURL_WRITEFUNC_PAUSE;
        }
        d->buf = cw_xrealloc(d->buf, n); /* a chunk larger than the buffer: once at most */
        d->cap = n;
    }
    memcpy(d->buf + d->len, data, n);
    d->len += n;
    d->received += n;
    return n;
}

static struct curl_slist *request_headers(const struct cw_s3_config *s3)
{
    /* curl 7.88 does not add x-amz-content-sha256, which S3 requires; it signs the
     * headers given here. A GET has an empty body: its SHA-256 is the payload hash. */
    struct curl_slist *h = curl_slist_append(NULL, "x-amz-content-sha256: " S3_EMPTY_SHA256);
    if (s3->session_token) {
        size_t len = strlen(s3->session_token) + 32;
        char *line = cw_xmalloc(len);
        snprintf(line, len, "x-amz-security-token: %s", s3->session_token);
        h = curl_slist_append(h, line);
        explicit_bzero(line, len);
        free(line);
    }
    return h;
}

static int configure(struct s3_download *d, const struct cw_s3_config *s3, const char *key,
                     struct cw_error *err)
{
    char sigv4[160];
    snprintf(sigv4, sizeof sigv4, "aws:amz:%s:s3", s3->region);
    char *url = s3_object_url(s3, key);
    CURL *e = d->easy;
    CURLcode rc = CURLE_OK;
#define SET(opt, val)                                                                              \
    if (rc == CURLE_OK)                                                                            \
    rc = curl_easy_setopt(e, opt, val)
    SET(CURLOPT_URL, url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_AWS_SIGV4, sigv4);
    SET(CURLOPT_USERNAME, s3->access_key_id);
    SET(CURLOPT_PASSWORD, s3->secret_access_key);
    SET(CURLOPT_HTTPHEADER, d->headers);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, d);
    SET(CURLOPT_ERRORBUFFER, d->curl_message);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_FOLLOWLOCATION, 0L); /* a redirect is a region error, not a detour */
    SET(CURLOPT_CONNECTTIMEOUT, (long)s3->connect_timeout);
    SET(CURLOPT_LOW_SPEED_LIMIT, 1L); /* no byte at all for read_timeout: stalled */
    SET(CURLOPT_LOW_SPEED_TIME, (long)s3->read_timeout);
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    if (s3->ca_bundle)
        SET(CURLOPT_CAINFO, s3->ca_bundle);
#undef SET
    free(url);
    if (rc != CURLE_OK) {
        CW_FAIL(err, CW_ERR_INTERNAL, "storage object %s: libcurl refused an option: %s", key,
                curl_easy_strerror(rc));
        return -1;
    }
    return 0;
}

static void download_free(struct s3_download *d)
{
    if (d->multi && d->easy)
        curl_multi_remove_handle(d->multi, d->easy);
    if (d->easy)
        curl_easy_cleanup(d->easy);
    if (d->multi)
        curl_multi_cleanup(d->multi);
    curl_slist_free_all(d->headers);
    free(d->buf);
    free(d);
}

/* Moves the transfer on: reads what the sockets have, or waits up to S3_POLL_MS. */
static int pump(struct s3_download *d, struct cw_error *err)
{
    int running = 0;
    CURLMcode mc = curl_multi_perform(d->multi, &running);
    int queued;
    for (CURLMsg *m; (m = curl_multi_info_read(d->multi, &queued));) {
        if (m->msg == CURLMSG_DONE && m->easy_handle == d->easy) {
            d->done = true;
            d->result = m->data.result;
        }
    }
    if (mc == CURLM_OK && !d->done && d->len == d->head)
        mc = curl_multi_poll(d->multi, NULL, 0, S3_POLL_MS, NULL);
    if (mc != CURLM_OK) {
        CW_FAIL(err, CW_ERR_INTERNAL, "storage object %s: libcurl: %s", d->key,
                curl_multi_strerror(mc));
        return -1;
    }
    if (d->done && !d->status)
        curl_easy_getinfo(d->easy, CURLINFO_RESPONSE_CODE, &d->status);
    return 0;
}

static bool transport_permanent(CURLcode rc)
{
    return rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT ||
           rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_PEER_FAILED_VERIFICATION ||
           rc == CURLE_SSL_CERTPROBLEM;
}

/* The transfer failed below HTTP: no connection, TLS refused, cut or stalled. */
static void fail_transport(struct s3_download *d, struct cw_error *err)
{
    const char *why = d->curl_message[0] ? d->curl_message : curl_easy_strerror(d->result);
    if (d->result == CURLE_PEER_FAILED_VERIFICATION || d->result == CURLE_SSL_CACERT_BADFILE)
        CW_FAIL(err, CW_ERR_PERMANENT,
                "storage object %s: the store's TLS certificate is not trusted (AWS_CA_BUNDLE): "
                "%s",
                d->key, why);
    else if (transport_permanent(d->result))
        CW_FAIL(err, CW_ERR_PERMANENT, "storage object %s: S3_ENDPOINT_URL cannot be used: %s",
                d->key, why);
    else if (status_ok(d->status))
        CW_FAIL(err, CW_ERR_TRANSIENT, "storage object %s: download cut after %llu bytes: %s",
                d->key, (unsigned long long)d->received, why);
    else
        CW_FAIL(err, CW_ERR_TRANSIENT, "storage object %s: the store is unreachable: %s", d->key,
                why);
}

/* The transfer has ended: 0 when the whole object came, else -1 with err. */
static int finish(struct s3_download *d, struct cw_error *err)
{
    if (d->result != CURLE_OK) {
        fail_transport(d, err);
        return -1;
    }
    if (!status_ok(d->status)) {
        char code[S3_ERROR_CODE_MAX];
        s3_error_code(d->errbody, d->errlen, code);
        s3_classify_http(d->status, code, d->s3, d->key, err);
        return -1;
    }
    return 0;
}

static ssize_t s3_read(void *impl, void *out, size_t want, struct cw_error *err)
{
    struct s3_download *d = impl;
    for (;;) {
        if (d->len > d->head) {
            size_t n = d->len - d->head < want ? d->len - d->head : want;
            memcpy(out, d->buf + d->head, n);
            d->head += n;
            if (d->head == d->len)
                d->head = d->len = 0;
            return (ssize_t)n;
        }
        if (d->done)
            return finish(d, err) == 0 ? 0 : -1;
        if (d->paused) { /* empty now: let curl hand over what it held back */
            d->paused = false;
            CURLcode rc = curl_easy_pause(d->easy, CURLPAUSE_CONT);
            if (rc != CURLE_OK) {
                CW_FAIL(err, CW_ERR_TRANSIENT, "storage object %s: resuming the download: %s",
                        d->key, curl_easy_strerror(rc));
                return -1;
            }
            continue;
        }
        if (pump(d, err) != 0)
            return -1;
    }
}

static void s3_close(void *impl)
{
    download_free(impl);
}

static const struct upload_source_ops s3_ops = {.read = s3_read, .close = s3_close};

static struct s3_download *download_new(const struct cw_s3_config *s3, const char *key,
                                        struct cw_error *err)
{
    pthread_once(&curl_once, curl_init);
    if (curl_init_result != CURLE_OK) {
        CW_FAIL(err, CW_ERR_INTERNAL, "libcurl would not start: %s",
                curl_easy_strerror(curl_init_result));
        return NULL;
    }
    struct s3_download *d = cw_xcalloc(1, sizeof *d);
    snprintf(d->key, sizeof d->key, "%s", key);
    d->s3 = s3;
    d->cap = S3_BUFFER_SIZE;
    d->buf = cw_xmalloc(d->cap);
    d->multi = curl_multi_init();
    d->easy = curl_easy_init();
    d->headers = request_headers(s3);
    if (!d->multi || !d->easy || !d->headers) {
        CW_FAIL(err, CW_ERR_INTERNAL, "storage object %s: libcurl could not allocate", key);
        download_free(d);
        return NULL;
    }
    if (configure(d, s3, key, err) != 0 || curl_multi_add_handle(d->multi, d->easy) != CURLM_OK) {
        if (err->cls == CW_ERR_NONE)
            CW_FAIL(err, CW_ERR_INTERNAL, "storage object %s: libcurl multi handle", key);
        curl_multi_remove_handle(d->multi, d->easy);
        download_free(d);
        return NULL;
    }
    return d;
}

int s3_source_open(const struct cw_config *cfg, const char *object_key, int64_t expected_size,
                   struct upload_source *out, struct cw_error *err)
{
    if (s3_key_check(object_key, err) != 0)
        return -1;
    struct s3_download *d = download_new(&cfg->s3, object_key, err);
    if (!d)
        return -1;
    /* Until the first byte of the object, or the end of an error answer (its <Code> says
     * what went wrong): a 404 or 403 fails the open, not a read. */
    while (!d->done && !status_ok(d->status)) {
        if (pump(d, err) != 0) {
            download_free(d);
            return -1;
        }
    }
    if (d->done && finish(d, err) != 0) {
        download_free(d);
        return -1;
    }
    upload_source_init(out, &s3_ops, d, object_key, expected_size);
    return 0;
}
