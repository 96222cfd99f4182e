/* SQLSTATE classification and the scrubbing of libpq's messages (see db/pg_error.h). */
#include "db/pg_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REDACTED "***"

static bool has_class(const char *state, const char *cls)
{
    return strncmp(state, cls, 2) == 0;
}

static bool is_state(const char *state, const char *code)
{
    return strcmp(state, code) == 0;
}

/* The server ended this session; a new connection may well work. */
static bool session_ended(const char *state)
{
    return is_state(state, "57P01") || is_state(state, "57P02") || is_state(state, "57P03") ||
           is_state(state, "57P04") || is_state(state, "57P05");
}

enum cw_error_class pg_error_class(const char *state, bool connection_ok)
{
    if (!state || !*state)
        return connection_ok ? CW_ERR_PERMANENT : CW_ERR_TRANSIENT;
    if (is_state(state, "08P01") || is_state(state, "40002") || is_state(state, "57P04"))
        return CW_ERR_PERMANENT;
    if (has_class(state, "08") || has_class(state, "40") || has_class(state, "53"))
        return CW_ERR_TRANSIENT;
    if (session_ended(state) || is_state(state, "57014") || is_state(state, "55P03") ||
        is_state(state, "58000") || is_state(state, "58030"))
        return CW_ERR_TRANSIENT;
    return CW_ERR_PERMANENT;
}

bool pg_error_lost_connection(const char *state, bool connection_ok)
{
    if (!connection_ok)
        return true;
    if (!state || !*state)
        return false;
    return (has_class(state, "08") && !is_state(state, "08P01")) || session_ended(state);
}

/* Texts libpq (fe-secure-openssl.c) writes when it cannot verify the server: OpenSSL's
 * reason, its own host name check, and its root certificate file checks. */
static const char *const tls_unverifiable[] = {
    "certificate verify failed",
    "does not match host name",
    "root certificate file",
    "could not get server's host name from server certificate",
    NULL,
};

bool pg_error_tls_unverifiable(const char *libpq_message)
{
    if (!libpq_message)
        return false;
    for (int i = 0; tls_unverifiable[i]; i++)
        if (strstr(libpq_message, tls_unverifiable[i]) != NULL)
            return true;
    return false;
}

void pg_redact(char *text, const char *secret)
{
    if (!text || !secret || !*secret)
        return;
    size_t slen = strlen(secret), rlen = strlen(REDACTED);
    char *p = text;
    while ((p = strstr(p, secret)) != NULL) {
        /* The text never grows (callers' buffers are full-size): a secret shorter than
         * REDACTED becomes as many '*'. */
        size_t n = slen < rlen ? slen : rlen;
        memset(p, '*', n);
        memmove(p + n, p + slen, strlen(p + slen) + 1);
        p += n;
    }
}

void pg_one_line(char *text)
{
    for (char *p = text; *p; p++)
        if (*p == '\n' || *p == '\t' || *p == '\r')
            *p = ' ';
    size_t n = strlen(text);
    while (n && text[n - 1] == ' ')
        text[--n] = '\0';
}

/* Where "scheme://" ends in a libpq URI; NULL for a key=value connection string. */
static const char *uri_rest(const char *url)
{
    if (strncmp(url, "postgresql://", 13) == 0)
        return url + 13;
    if (strncmp(url, "postgres://", 11) == 0)
        return url + 11;
    return NULL;
}

/* The user info ("user:password") of a URI: its start and length; false when none. */
static bool uri_userinfo(const char *url, const char **start, size_t *len)
{
    const char *rest = uri_rest(url);
    if (!rest)
        return false;
    size_t auth_len = strcspn(rest, "/?");
    const char *at = NULL;
    for (const char *p = rest; p < rest + auth_len; p++)
        if (*p == '@')
            at = p;
    if (!at)
        return false;
    *start = rest;
    *len = (size_t)(at - rest);
    return true;
}

/* The part of url that holds the byte at offset pos, for a message. */
static const char *url_part(const char *url, size_t pos)
{
    const char *rest = uri_rest(url);
    if (!rest)
        return "connection string";
    const char *user;
    size_t ulen;
    if (uri_userinfo(url, &user, &ulen) && pos >= (size_t)(user - url) &&
        pos < (size_t)(user - url) + ulen) {
        const char *colon = memchr(user, ':', ulen);
        return colon && pos > (size_t)(colon - url) ? "password" : "user name";
    }
    const char *path = rest + strcspn(rest, "/?");
    if (pos < (size_t)(path - url))
        return "host or port";
    const char *query = strchr(path, '?');
    return !query || pos < (size_t)(query - url) ? "database name" : "query parameters";
}

/* Appends at most n bytes of s to out (size len, used so far *used). */
static void append(char *out, size_t len, size_t *used, const char *s, size_t n)
{
    if (*used + 1 >= len)
        return;
    if (n > len - 1 - *used)
        n = len - 1 - *used;
    memcpy(out + *used, s, n);
    *used += n;
    out[*used] = '\0';
}

/* The raw (still percent-encoded) password of a URI, redacted from text. */
static void redact_uri_password(char *text, const char *url)
{
    const char *user;
    size_t ulen;
    if (!uri_userinfo(url, &user, &ulen))
        return;
    const char *colon = memchr(user, ':', ulen);
    if (!colon || colon + 1 >= user + ulen)
        return;
    size_t plen = (size_t)(user + ulen - colon - 1);
    char *password = malloc(plen + 1);
    if (!password)
        abort();
    memcpy(password, colon + 1, plen);
    password[plen] = '\0';
    pg_redact(text, password);
    free(password);
}

void pg_describe_conninfo_error(const char *url, const char *msg, char *out, size_t len)
{
    const char *part = NULL;
    size_t used = 0;
    if (len == 0)
        return;
    out[0] = '\0';
    if (!msg || !*msg)
        msg = "unparsable";
    for (const char *p = msg; *p;) {
        const char *open = strchr(p, '"');
        const char *close = open ? strchr(open + 1, '"') : NULL;
        if (!close) {
            append(out, len, &used, p, strlen(p));
            break;
        }
        append(out, len, &used, p, (size_t)(open - p) + 1);
        size_t tlen = (size_t)(close - open - 1);
        char *token = strndup(open + 1, tlen);
        if (!token)
            abort();
        const char *at = url && tlen >= 2 ? strstr(url, token) : NULL;
        /* A token found in the URL is the user's text and may be the password. */
        if (at && !part)
            part = url_part(url, (size_t)(at - url));
        append(out, len, &used, at ? REDACTED : token, at ? strlen(REDACTED) : tlen);
        append(out, len, &used, "\"", 1);
        free(token);
        p = close + 1;
    }
    pg_one_line(out);
    if (url)
        redact_uri_password(out, url);
    if (part) {
        used = strlen(out);
        char where[64];
        int n = snprintf(where, sizeof where, " (in the %s)", part);
        append(out, len, &used, where, (size_t)n);
    }
}
