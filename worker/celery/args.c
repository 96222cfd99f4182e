/* Reading a decoded task's arguments: an integer by position or keyword (run_id). */
#include "celery/args.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* "-?[0-9]+" optionally followed by ".0*" (how a kombu Decimal such as 42.000 reads). */
static enum celery_integral parse_integral(const char *s, size_t len, long *out)
{
    size_t i = (s[0] == '-') ? 1 : 0;
    size_t digits_end;
    char *end;
    long v;

    if (strlen(s) != len || !isdigit((unsigned char)s[i]))
        return CELERY_NOT_INTEGRAL;
    while (isdigit((unsigned char)s[i]))
        i++;
    digits_end = i;
    if (s[i] == '.')
        for (i++; s[i] == '0'; i++)
            ;
    if (s[i] != '\0')
        return CELERY_NOT_INTEGRAL;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno == ERANGE)
        return CELERY_INTEGRAL_TOO_BIG;
    if ((size_t)(end - s) != digits_end)
        return CELERY_NOT_INTEGRAL;
    *out = v;
    return CELERY_INTEGRAL;
}

/* 2^63 as a double: the first value beyond long. */
#define LONG_LIMIT_DOUBLE 9223372036854775808.0

static enum celery_integral double_integral(double d, long *out)
{
    if (!isfinite(d) || d != floor(d))
        return CELERY_NOT_INTEGRAL;
    if (d >= LONG_LIMIT_DOUBLE || d < -LONG_LIMIT_DOUBLE)
        return CELERY_INTEGRAL_TOO_BIG;
    *out = (long)d;
    return CELERY_INTEGRAL;
}

enum celery_integral celery_json_integral(json_object *v, long *out)
{
    const char *text;

    switch (json_object_get_type(v)) {
    case json_type_int:
        /* Via text: json-c clamps get_int64 on overflow, the text never lies. */
        text = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
        return parse_integral(text, strlen(text), out);
    case json_type_string:
        return parse_integral(json_object_get_string(v), (size_t)json_object_get_string_len(v),
                              out);
    case json_type_double:
        return double_integral(json_object_get_double(v), out);
    default:
        return CELERY_NOT_INTEGRAL;
    }
}

static int int_value(json_object *v, const char *name, long *out, struct cw_error *err)
{
    if (json_object_is_type(v, json_type_int)) {
        if (celery_json_integral(v, out) == CELERY_INTEGRAL)
            return 0;
        CW_FAIL(err, CW_ERR_PERMANENT, "bad arguments: %s is out of range", name);
        return -1;
    }
    if (json_object_is_type(v, json_type_string)) {
        if (celery_json_integral(v, out) == CELERY_INTEGRAL)
            return 0;
        CW_FAIL(err, CW_ERR_PERMANENT,
                "bad arguments: %s must be an integer, got a non-integral string", name);
        return -1;
    }
    CW_FAIL(err, CW_ERR_PERMANENT, "bad arguments: %s must be an integer, got %s", name,
            json_type_to_name(json_object_get_type(v)));
    return -1;
}

int celery_task_int_arg(const struct celery_task *t, size_t position, const char *keyword,
                        long *out, struct cw_error *err)
{
    const char *name = keyword != NULL ? keyword : "argument";
    json_object *pos = NULL, *kw = NULL;
    bool has_pos = t->args != NULL && position < json_object_array_length(t->args);
    bool has_kw =
        keyword != NULL && t->kwargs != NULL && json_object_object_get_ex(t->kwargs, keyword, &kw);

    if (has_pos)
        pos = json_object_array_get_idx(t->args, position);
    if (has_pos && has_kw) {
        /* What Python raises too: "got multiple values for argument". */
        CW_FAIL(err, CW_ERR_PERMANENT, "bad arguments: %s given by position and by keyword", name);
        return -1;
    }
    if (!has_pos && !has_kw) {
        CW_FAIL(err, CW_ERR_PERMANENT, "bad arguments: missing %s (position %zu)", name, position);
        return -1;
    }
    return int_value(has_pos ? pos : kw, name, out, err);
}
