/* `cworker health`: the pure part of the probe. Where to connect for a listener address
 * (--http / CWORKER_HTTP), the request to send and what the answer means. The socket
 * client is http_get.h; the command is cmd_health.c. */
#ifndef CWORKER_HEALTH_PROBE_H
#define CWORKER_HEALTH_PROBE_H

#include "base/error.h"

#include <stdbool.h>
#include <stddef.h>

#define HEALTH_PATH "/healthz"

struct health_target {
    char host[256]; /* numeric or a name; never a wildcard address */
    char port[16];
};

/* The address to probe for the listener address `listen` ("HOST:PORT", "[V6]:PORT" or
 * ":PORT"): a wildcard host (empty, 0.0.0.0, ::) becomes the loopback address of its
 * family, since the probe runs on the worker's own host. */
CW_MUST_CHECK int health_probe_target(const char *listen, struct health_target *out,
                                      struct cw_error *err);

/* The HTTP status code of a response's first line ("HTTP/1.1 200 OK\r\n..."), or -1 when
 * it is not an HTTP response. */
int health_response_status(const char *response, size_t len);

/* The response's body (after the blank line ending the headers); *body_len 0 when none. */
const char *health_response_body(const char *response, size_t len, size_t *body_len);

#endif
