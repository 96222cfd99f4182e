/* STORAGE_BACKEND=s3: an upload read straight from S3 or an S3-compatible store (MinIO)
 * behind struct upload_source, streamed: one GET whose body is pulled through a bounded
 * buffer as the reader asks for it (libcurl's multi interface, the transfer paused when the
 * buffer is full), so memory stays flat whatever the object's size and nothing touches disk.
 *
 * libcurl signs the request (AWS Signature V4), speaks TLS with certificate verification
 * (AWS_CA_BUNDLE or the system's CAs), honours the usual proxy variables, and gives up on
 * a connection that does not open in S3_CONNECT_TIMEOUT or a download that moves no byte
 * for S3_READ_TIMEOUT seconds. Errors are classified as include/ingest/s3_request.h says;
 * a download cut or stalled after the answer began is CW_ERR_TRANSIENT
 * ("storage object K: download cut after N bytes: ..."). */
#ifndef CWORKER_S3_SOURCE_H
#define CWORKER_S3_SOURCE_H

#include "base/config.h"
#include "base/error.h"
#include "ingest/upload_source.h"

#include <stdint.h>

/* Starts the GET of cfg->s3.bucket/object_key and waits for the answer's status, so a
 * missing object or a refused credential fails here, before the caller reads; on success
 * *out is ready (upload_source_init) and the caller closes it with upload_source_close. */
CW_MUST_CHECK int s3_source_open(const struct cw_config *cfg, const char *object_key,
                                 int64_t expected_size, struct upload_source *out,
                                 struct cw_error *err);

#endif
