/* The S3 settings of struct cw_config (STORAGE_BACKEND=s3): their parsing and the check
 * that a worker told to use S3 has what it needs, refused at start with a message naming
 * the missing variable rather than failing every run later. Pure: no I/O. */
#ifndef CWORKER_CONFIG_S3_H
#define CWORKER_CONFIG_S3_H

#include "base/config.h"
#include "base/error.h"

/* S3_ENDPOINT_URL: http:// or https://, a host, no query; a trailing '/' is dropped. */
CW_MUST_CHECK int config_s3_set_endpoint(struct cw_s3_config *s3, const char *name,
                                         const char *value, struct cw_error *err);
/* S3_ADDRESSING_STYLE: "path" or "virtual" ("auto", boto3's default, means unset). */
CW_MUST_CHECK int config_s3_set_addressing_style(struct cw_s3_config *s3, const char *name,
                                                 const char *value, struct cw_error *err);
/* Bucket and both credentials present; a bucket name S3 could hold. */
CW_MUST_CHECK int config_s3_check(const struct cw_s3_config *s3, struct cw_error *err);
/* true when requests go to https://ENDPOINT/BUCKET/KEY rather than BUCKET.ENDPOINT/KEY. */
bool config_s3_path_style(const struct cw_s3_config *s3);
void config_s3_free(struct cw_s3_config *s3);

#endif
