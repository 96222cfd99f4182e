/* A message body parsed as exactly one JSON value, for task messages and remote control
 * requests alike. */
#include "celery/json_body.h"

#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>

static bool only_whitespace(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
            return false;
    return true;
}

int celery_json_body_parse(const void *body, size_t len, int max_depth, json_object **out,
                           struct cw_error *err)
{
    json_tokener *tok;
    json_object *root;
    enum json_tokener_error jerr;
    size_t end;

    if (len == 0 || only_whitespace(body, len)) {
        CW_FAIL(err, CW_ERR_PERMANENT, "body is empty");
        return -1;
    }
    if (len > INT_MAX) {
        CW_FAIL(err, CW_ERR_PERMANENT, "body of %zu bytes is too large", len);
        return -1;
    }
    tok = json_tokener_new_ex(max_depth);
    if (tok == NULL)
        abort(); /* out of memory: same policy as cw_xmalloc */
    json_tokener_set_flags(tok, JSON_TOKENER_VALIDATE_UTF8);
    root = json_tokener_parse_ex(tok, body, (int)len);
    jerr = json_tokener_get_error(tok);
    end = json_tokener_get_parse_end(tok);
    if (jerr == json_tokener_continue) {
        /* A top-level number or literal ("42", "null") could still go on: json-c only
         * finishes it at a terminating NUL, so hand it one to end the input. */
        root = json_tokener_parse_ex(tok, "", 1);
        jerr = json_tokener_get_error(tok);
        end = len;
        if (jerr != json_tokener_success)
            jerr = json_tokener_continue; /* all input was used: it was cut short */
    }
    json_tokener_free(tok);
    if (jerr == json_tokener_continue) {
        CW_FAIL(err, CW_ERR_PERMANENT, "body is not valid JSON: truncated");
        return -1;
    }
    if (jerr != json_tokener_success || !only_whitespace((const char *)body + end, len - end)) {
        json_object_put(root);
        CW_FAIL(err, CW_ERR_PERMANENT, "body is not valid JSON: %s",
                jerr != json_tokener_success ? json_tokener_error_desc(jerr)
                                             : "trailing data after the value");
        return -1;
    }
    *out = root;
    return 0;
}
