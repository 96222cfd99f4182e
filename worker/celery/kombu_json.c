/* kombu {"__type__", "__value__"} marker unwrapping (see include/kombu_json.h). */
#include "celery/kombu_json.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>

/* json-c's parser stops at depth 32; values built elsewhere get the same bound here. */
#define KOMBU_MAX_DEPTH 64

static int convert(json_object *j, int depth, bool *replaced, json_object **repl,
                   struct cw_error *err);

static bool is_marker(json_object *j)
{
    return json_object_is_type(j, json_type_object) && json_object_object_length(j) == 2 &&
           json_object_object_get_ex(j, "__type__", NULL) &&
           json_object_object_get_ex(j, "__value__", NULL);
}

static json_object *copy_string(json_object *s)
{
    return json_object_new_string_len(json_object_get_string(s), json_object_get_string_len(s));
}

/* kombu 5.3 writes {"hex": "<32 hex digits>", "version": 4}; a plain string (what an
 * application's own register_type(UUID, "uuid", str, UUID) writes) is kept as is. */
static int uuid_value(json_object *v, json_object **out, struct cw_error *err)
{
    json_object *hex = NULL;
    const char *h;
    char buf[37];
    size_t o = 0;

    if (json_object_is_type(v, json_type_string)) {
        *out = copy_string(v);
        return 0;
    }
    if (!json_object_is_type(v, json_type_object) || !json_object_object_get_ex(v, "hex", &hex) ||
        !json_object_is_type(hex, json_type_string) || json_object_get_string_len(hex) != 32) {
        CW_FAIL(err, CW_ERR_PERMANENT, "kombu uuid value has no 32-digit \"hex\"");
        return -1;
    }
    h = json_object_get_string(hex);
    for (size_t i = 0; i < 32; i++) {
        if (!isxdigit((unsigned char)h[i])) {
            CW_FAIL(err, CW_ERR_PERMANENT, "kombu uuid \"hex\" is not hexadecimal");
            return -1;
        }
        if (i == 8 || i == 12 || i == 16 || i == 20)
            buf[o++] = '-';
        buf[o++] = (char)tolower((unsigned char)h[i]);
    }
    buf[o] = '\0';
    *out = json_object_new_string(buf);
    return 0;
}

static int marker_value(json_object *marker, json_object **out, struct cw_error *err)
{
    static const char *const textual[] = {"datetime", "date",   "time", "decimal",
                                          "bytes",    "base64", NULL};
    json_object *type = NULL, *value = NULL;
    const char *t;

    json_object_object_get_ex(marker, "__type__", &type);
    json_object_object_get_ex(marker, "__value__", &value);
    if (!json_object_is_type(type, json_type_string)) {
        CW_FAIL(err, CW_ERR_PERMANENT, "kombu __type__ is not a string");
        return -1;
    }
    t = json_object_get_string(type);
    if (strcmp(t, "uuid") == 0)
        return uuid_value(value, out, err);
    for (size_t i = 0; textual[i] != NULL; i++) {
        if (strcmp(t, textual[i]) != 0)
            continue;
        if (!json_object_is_type(value, json_type_string)) {
            CW_FAIL(err, CW_ERR_PERMANENT, "kombu %s value is not a string", t);
            return -1;
        }
        *out = copy_string(value);
        return 0;
    }
    CW_FAIL(err, CW_ERR_PERMANENT, "unsupported kombu type \"%.64s\"", t);
    return -1;
}

static int convert_object(json_object *obj, int depth, struct cw_error *err)
{
    json_object_object_foreach(obj, key, val)
    {
        bool replaced = false;
        json_object *repl = NULL;
        if (convert(val, depth + 1, &replaced, &repl, err) != 0)
            return -1;
        /* Replacing an existing key's value keeps the table's shape, so it is safe
         * while iterating; json-c releases the old value. */
        if (replaced)
            json_object_object_add(obj, key, repl);
    }
    return 0;
}

static int convert_array(json_object *arr, int depth, struct cw_error *err)
{
    size_t n = json_object_array_length(arr);

    for (size_t i = 0; i < n; i++) {
        bool replaced = false;
        json_object *repl = NULL;
        if (convert(json_object_array_get_idx(arr, i), depth + 1, &replaced, &repl, err) != 0)
            return -1;
        if (replaced)
            json_object_array_put_idx(arr, i, repl);
    }
    return 0;
}

/* Converts j's children in place; when j itself is a marker, sets *replaced and hands
 * back its plain value in *repl (a new reference the caller owns). */
static int convert(json_object *j, int depth, bool *replaced, json_object **repl,
                   struct cw_error *err)
{
    if (depth > KOMBU_MAX_DEPTH) {
        CW_FAIL(err, CW_ERR_PERMANENT, "nesting deeper than %d levels", KOMBU_MAX_DEPTH);
        return -1;
    }
    if (json_object_is_type(j, json_type_array))
        return convert_array(j, depth, err);
    if (!json_object_is_type(j, json_type_object))
        return 0;
    /* Bottom-up, as kombu's object_hook: a marker's value is decoded first. */
    if (convert_object(j, depth, err) != 0)
        return -1;
    if (!is_marker(j))
        return 0;
    if (marker_value(j, repl, err) != 0)
        return -1;
    *replaced = true;
    return 0;
}

int kombu_json_unwrap(json_object **j, struct cw_error *err)
{
    bool replaced = false;
    json_object *repl = NULL;

    if (convert(*j, 0, &replaced, &repl, err) != 0)
        return -1;
    if (replaced) {
        json_object_put(*j);
        *j = repl;
    }
    return 0;
}
