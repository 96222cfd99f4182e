/* The pure part of `cworker health`: where to connect, and reading the answer. */
#include "ops/health_probe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A listener bound to every interface is reached on the loopback of its family. */
static const char *probe_host(const char *host)
{
    if (!*host || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "*") == 0)
        return "127.0.0.1";
    if (strcmp(host, "::") == 0)
        return "::1";
    return host;
}

int health_probe_target(const char *listen, struct health_target *out, struct cw_error *err)
{
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    if (!colon || !colon[1]) {
        CW_FAIL(err, CW_ERR_PERMANENT, "expected HOST:PORT or :PORT, got '%s'",
                listen ? listen : "");
        return -1;
    }
    size_t hlen = (size_t)(colon - listen);
    if (hlen >= sizeof out->host || strlen(colon + 1) >= sizeof out->port ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1)) {
        CW_FAIL(err, CW_ERR_PERMANENT, "expected HOST:PORT or :PORT, got '%s'", listen);
        return -1;
    }
    char host[sizeof out->host];
    memcpy(host, listen, hlen);
    host[hlen] = '\0';
    char *h = host;
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        host[hlen - 1] = '\0';
        h = host + 1;
    }
    snprintf(out->host, sizeof out->host, "%s", probe_host(h));
    snprintf(out->port, sizeof out->port, "%s", colon + 1);
    return 0;
}

int health_response_status(const char *response, size_t len)
{
    /* "HTTP/1.x NNN": the version, one space, three digits, then a space or the line end. */
    static const char prefix[] = "HTTP/1.";
    size_t plen = sizeof prefix - 1;
    if (len < plen + 5 || memcmp(response, prefix, plen) != 0 || response[plen + 1] != ' ')
        return -1;
    const char *code = response + plen + 2;
    int status = 0;
    for (int i = 0; i < 3; i++) {
        if (code[i] < '0' || code[i] > '9')
            return -1;
        status = status * 10 + (code[i] - '0');
    }
    size_t after = (size_t)(code + 3 - response);
    if (after < len && code[3] != ' ' && code[3] != '\r' && code[3] != '\n')
        return -1;
    return status;
}

const char *health_response_body(const char *response, size_t len, size_t *body_len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        size_t skip = 0;
        if (i + 3 < len && memcmp(response + i, "\r\n\r\n", 4) == 0)
            skip = 4;
        else if (memcmp(response + i, "\n\n", 2) == 0)
            skip = 2;
        if (skip) {
            *body_len = len - i - skip;
            return response + i + skip;
        }
    }
    *body_len = 0;
    return response + len;
}
