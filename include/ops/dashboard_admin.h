/* Who may change something through the HTTP listener (POST /v1/worker/dlq/replay). Pure
 * logic: no I/O, no logging; the caller passes what it read from the environment and the
 * request.
 *
 * Allowed only when CWORKER_HTTP_ADMIN=1, and, on a listener bound to anything but a
 * loopback address, only with "Authorization: Bearer <CWORKER_HTTP_TOKEN>" (never without
 * a token: an unauthenticated admin action on a network port is refused whatever else is
 * set). A request from a browser must also be same-origin (its Origin header, when sent,
 * names the Host it was sent to) and carry Content-Type application/json, which a
 * cross-site form cannot send without a CORS preflight that the listener never answers. */
#ifndef CWORKER_DASHBOARD_ADMIN_H
#define CWORKER_DASHBOARD_ADMIN_H

#include <stdbool.h>

struct admin_request {
    const char *admin_env;     /* getenv("CWORKER_HTTP_ADMIN") */
    const char *token_env;     /* getenv("CWORKER_HTTP_TOKEN") */
    bool loopback;             /* the listener is bound to a loopback address only */
    const char *authorization; /* the request's headers, or NULL */
    const char *origin;
    const char *host;
    const char *content_type;
};

/* NULL when allowed, else why not (a static string fit for the HTTP answer). */
const char *dashboard_admin_refusal(const struct admin_request *r);

#endif
