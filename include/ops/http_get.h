/* A minimal HTTP/1.0 GET client for loopback probes (`cworker health`): one request, the
 * whole response read until the server closes, everything bounded by one deadline. Not a
 * general client: no TLS, no redirects, no chunked decoding (the worker's listener sends
 * Content-Length bodies). */
#ifndef CWORKER_HTTP_GET_H
#define CWORKER_HTTP_GET_H

#include "base/error.h"
#include "base/strbuf.h"

/* GET path from host:port within timeout_s seconds; appends the raw response (status
 * line, headers, body) to *response. Fails (CW_ERR_TRANSIENT, or CW_ERR_TIMEOUT) when the
 * connection is refused, the deadline passes or the response exceeds 1 MiB. */
CW_MUST_CHECK int http_get(const char *host, const char *port, const char *path, double timeout_s,
                           struct strbuf *response, struct cw_error *err);

#endif
