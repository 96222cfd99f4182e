/* struct celery_task <-> JSON, losslessly (see celery/task_json.h). */
#include "celery/task_json.h"
#include "base/xalloc.h"

#include <limits.h>
#include <string.h>

/* The optional strings, by name, so both directions walk one table. */
struct string_field {
    const char *name;
    size_t offset;
};
#define STRING_FIELD(f)                                                                            \
    {                                                                                              \
#f, offsetof(struct celery_task, f)                                                        \
    }
static const struct string_field strings[] = {
    STRING_FIELD(id),        STRING_FIELD(task),           STRING_FIELD(root_id),
    STRING_FIELD(parent_id), STRING_FIELD(group),          STRING_FIELD(origin),
    STRING_FIELD(argsrepr),  STRING_FIELD(kwargsrepr),     STRING_FIELD(shadow),
    STRING_FIELD(reply_to),  STRING_FIELD(correlation_id), STRING_FIELD(content_type),
};

/* The optional numbers: present flag and value. */
struct number_field {
    const char *name;
    size_t has_offset, value_offset;
};
#define NUMBER_FIELD(f)                                                                            \
    {                                                                                              \
#f, offsetof(struct celery_task, has_##f), offsetof(struct celery_task, f)                 \
    }
static const struct number_field numbers[] = {
    NUMBER_FIELD(eta),
    NUMBER_FIELD(expires),
    NUMBER_FIELD(time_limit),
    NUMBER_FIELD(soft_time_limit),
};

/* The owned JSON values. */
struct json_field {
    const char *name;
    size_t offset;
};
#define JSON_FIELD(f)                                                                              \
    {                                                                                              \
#f, offsetof(struct celery_task, f)                                                        \
    }
static const struct json_field values[] = {
    JSON_FIELD(args),
    JSON_FIELD(kwargs),
    JSON_FIELD(embed),
    JSON_FIELD(wire_body),
};

#define FIELD(t, offset, type)  ((type *)((char *)(t) + (offset)))
#define CFIELD(t, offset, type) ((type const *)((const char *)(t) + (offset)))
#define COUNT(a)                (sizeof(a) / sizeof((a)[0]))

json_object *celery_task_to_json(const struct celery_task *t)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "protocol", json_object_new_int(t->protocol));
    json_object_object_add(o, "retries", json_object_new_int(t->retries));
    json_object_object_add(o, "ignore_result", json_object_new_boolean(t->ignore_result));
    if (t->delivery_count)
        json_object_object_add(o, "delivery_count", json_object_new_int64(t->delivery_count));
    if (t->has_group_index)
        json_object_object_add(o, "group_index", json_object_new_int64(t->group_index));
    for (size_t i = 0; i < COUNT(strings); i++) {
        const char *v = *CFIELD(t, strings[i].offset, char *);
        if (v)
            json_object_object_add(o, strings[i].name, json_object_new_string(v));
    }
    for (size_t i = 0; i < COUNT(numbers); i++)
        if (*CFIELD(t, numbers[i].has_offset, bool))
            json_object_object_add(
                o, numbers[i].name,
                json_object_new_double(*CFIELD(t, numbers[i].value_offset, double)));
    for (size_t i = 0; i < COUNT(values); i++) {
        json_object *v = *CFIELD(t, values[i].offset, json_object *);
        if (v)
            json_object_object_add(o, values[i].name, json_object_get(v));
    }
    return o;
}

static int get_int(json_object *o, const char *key, long min, long max, long *out,
                   struct cw_error *err)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v))
        return 0;
    int64_t n = json_object_get_int64(v);
    if (!json_object_is_type(v, json_type_int) || n < min || n > max) {
        CW_FAIL(err, CW_ERR_INTERNAL, "task field %s is not an integer in %ld..%ld", key, min, max);
        return -1;
    }
    *out = (long)n;
    return 1;
}

static int read_scalars(json_object *o, struct celery_task *t, struct cw_error *err)
{
    long n = 0;
    if (get_int(o, "protocol", 1, 2, &n, err) <= 0)
        return err->cls ? -1 : (CW_FAIL(err, CW_ERR_INTERNAL, "task has no protocol"), -1);
    t->protocol = (int)n;
    if (get_int(o, "retries", 0, INT_MAX - 1, &n, err) < 0)
        return -1;
    t->retries = (int)n;
    int got = get_int(o, "group_index", LONG_MIN, LONG_MAX, &t->group_index, err);
    if (got < 0)
        return -1;
    t->has_group_index = got > 0;
    if (get_int(o, "delivery_count", 0, INT_MAX, &t->delivery_count, err) < 0)
        return -1;
    json_object *v;
    t->ignore_result =
        json_object_object_get_ex(o, "ignore_result", &v) && json_object_get_boolean(v);
    for (size_t i = 0; i < COUNT(numbers); i++) {
        if (!json_object_object_get_ex(o, numbers[i].name, &v))
            continue;
        if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int)) {
            CW_FAIL(err, CW_ERR_INTERNAL, "task field %s is not a number", numbers[i].name);
            return -1;
        }
        *FIELD(t, numbers[i].has_offset, bool) = true;
        *FIELD(t, numbers[i].value_offset, double) = json_object_get_double(v);
    }
    return 0;
}

static int read_strings(json_object *o, struct celery_task *t, struct cw_error *err)
{
    for (size_t i = 0; i < COUNT(strings); i++) {
        json_object *v;
        if (!json_object_object_get_ex(o, strings[i].name, &v))
            continue;
        if (!json_object_is_type(v, json_type_string)) {
            CW_FAIL(err, CW_ERR_INTERNAL, "task field %s is not a string", strings[i].name);
            return -1;
        }
        *FIELD(t, strings[i].offset, char *) = cw_xstrdup(json_object_get_string(v));
    }
    if (!t->id || !t->task) {
        CW_FAIL(err, CW_ERR_INTERNAL, "task has no id or name");
        return -1;
    }
    return 0;
}

int celery_task_from_json(json_object *o, struct celery_task *out, struct cw_error *err)
{
    memset(out, 0, sizeof *out);
    if (!json_object_is_type(o, json_type_object)) {
        CW_FAIL(err, CW_ERR_INTERNAL, "task is not a JSON object");
        return -1;
    }
    cw_error_clear(err);
    if (read_scalars(o, out, err) != 0 || read_strings(o, out, err) != 0)
        return -1;
    for (size_t i = 0; i < COUNT(values); i++) {
        json_object *v;
        if (json_object_object_get_ex(o, values[i].name, &v) && v)
            *FIELD(out, values[i].offset, json_object *) = json_object_get(v);
    }
    if (!json_object_is_type(out->args, json_type_array) ||
        !json_object_is_type(out->kwargs, json_type_object)) {
        CW_FAIL(err, CW_ERR_INTERNAL, "task args is not an array or kwargs not an object");
        return -1;
    }
    return 0;
}
