/* The admin-action policy of the HTTP listener (dashboard_admin.h). */
#include "ops/dashboard_admin.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

#define BEARER "Bearer "

/* Compares in time independent of where the strings differ (the token is a secret). */
static bool same_secret(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = la != lb;
    for (size_t i = 0; i < la && i < lb; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

static bool token_ok(const struct admin_request *r)
{
    if (!r->token_env || !*r->token_env || !r->authorization)
        return false;
    if (strncmp(r->authorization, BEARER, strlen(BEARER)) != 0)
        return false;
    return same_secret(r->authorization + strlen(BEARER), r->token_env);
}

/* Origin "scheme://host[:port]" must name the Host header. */
static bool same_origin(const char *origin, const char *host)
{
    const char *sep = strstr(origin, "://");
    return host && sep && strcasecmp(sep + 3, host) == 0;
}

static bool is_json(const char *content_type)
{
    const char *type = "application/json";
    return content_type && strncasecmp(content_type, type, strlen(type)) == 0 &&
           (content_type[strlen(type)] == '\0' || content_type[strlen(type)] == ';');
}

const char *dashboard_admin_refusal(const struct admin_request *r)
{
    if (!r->admin_env || strcmp(r->admin_env, "1") != 0)
        return "admin actions are disabled (set CWORKER_HTTP_ADMIN=1)";
    if (!r->loopback && (!r->token_env || !*r->token_env))
        return "admin actions on a non-loopback listener need CWORKER_HTTP_TOKEN";
    if ((!r->loopback || r->authorization) && !token_ok(r))
        return "missing or wrong bearer token";
    if (r->origin && !same_origin(r->origin, r->host))
        return "cross-origin request refused";
    if (!is_json(r->content_type))
        return "Content-Type must be application/json";
    return NULL;
}
