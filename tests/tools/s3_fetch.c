/* s3_fetch KEY: the S3 backend alone, for tests/integration/test_s3_storage.py. Reads the
 * object KEY of S3_BUCKET through upload_source (s3_source_open, upload_source_read) with
 * the worker's own configuration (environment, as `cworker run` reads it) and writes its
 * bytes to stdout; on stderr "sha256 HEX bytes N" and "vmhwm_kb N" (the peak RSS, to show
 * memory stays bounded), or the error as "error: CLASS: MESSAGE" and its traceback.
 * Exit: 0, 75 transient (EX_TEMPFAIL), 65 permanent (EX_DATAERR), 70 other, 64 usage. */
#include "base/config.h"
#include "base/strbuf.h"
#include "ingest/s3_source.h"
#include "ingest/upload_source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long peak_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

static int report(const struct cw_error *err)
{
    struct strbuf tb = STRBUF_INIT;
    cw_error_format_traceback(err, &tb);
    fprintf(stderr, "error: %s: %s\n%s\n", cw_error_class_name(err->cls), err->message,
            strbuf_cstr(&tb));
    strbuf_free(&tb);
    return err->cls == CW_ERR_TRANSIENT ? 75 : err->cls == CW_ERR_PERMANENT ? 65 : 70;
}

static int copy_out(struct upload_source *src, struct cw_error *err)
{
    static char buf[64 * 1024];
    for (;;) {
        ssize_t n = upload_source_read(src, buf, sizeof buf, err);
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n) {
            CW_FAIL(err, CW_ERR_INTERNAL, "writing stdout failed");
            return -1;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: s3_fetch KEY\n");
        return 64;
    }
    struct cw_config cfg;
    struct cw_error err;
    cw_error_clear(&err);
    char *cargv[] = {"s3_fetch", NULL};
    int rc = 0;
    if (config_load(&cfg, 1, cargv, &err) != 0) {
        rc = report(&err);
    } else {
        struct upload_source src;
        if (s3_source_open(&cfg, argv[1], -1, &src, &err) != 0) {
            rc = report(&err);
        } else {
            if (copy_out(&src, &err) != 0) {
                rc = report(&err);
            } else {
                char hex[65];
                upload_source_hex_digest(&src, hex);
                fprintf(stderr, "sha256 %s bytes %llu\n", hex, (unsigned long long)src.bytes);
            }
            upload_source_close(&src);
        }
    }
    config_free(&cfg);
    fflush(stdout);
    fprintf(stderr, "vmhwm_kb %ld\n", peak_rss_kb());
    return rc;
}
