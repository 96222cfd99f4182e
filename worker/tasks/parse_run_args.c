/* parse_run(run_id)'s arguments: which run a message names, and whether the call is one
 * Python would accept. */
#include "tasks/parse_run_args.h"

#include "base/utf8.h"
#include "celery/args.h"
#include "celery/pyrepr.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ingestion_runs.task_id varchar(255), in characters. */
#define TASK_ID_MAX_CHARS 255

/* Values and keyword names quoted in messages are cut: a producer may send megabytes. */
#define QUOTE_MAX 60

/* Python's name of a JSON value's type, as a TypeError would say it. */
static const char *python_type(json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_boolean:
        return "bool";
    case json_type_double:
        return "float";
    case json_type_int:
        return "int";
    case json_type_string:
        return "str";
    case json_type_array:
        return "list";
    case json_type_object:
        return "dict";
    default:
        return "NoneType";
    }
}

static void fail_not_integer(json_object *v, struct cw_error *err)
{
    if (v == NULL) { /* JSON null */
        CW_FAIL(err, CW_ERR_PERMANENT, "run_id must be an integer, got None");
        return;
    }
    char *repr = celery_pyrepr_saferepr(v, QUOTE_MAX);
    CW_FAIL(err, CW_ERR_PERMANENT, "run_id must be an integer, got %s %s", python_type(v), repr);
    free(repr);
}

static void fail_no_such_run(const char *id_text, struct cw_error *err)
{
    CW_FAIL(err, CW_ERR_PERMANENT, "Run %s not found (run ids are 1 to %d)", id_text, INT32_MAX);
}

/* The run id v names, or -1 with why it names none. */
static int run_id_value(json_object *v, long *run_id, struct cw_error *err)
{
    long n = 0;
    char text[24];
    char *repr;

    switch (celery_json_integral(v, &n)) {
    case CELERY_INTEGRAL:
        if (n >= 1 && n <= INT32_MAX) {
            *run_id = n;
            return 0;
        }
        snprintf(text, sizeof text, "%ld", n);
        fail_no_such_run(text, err);
        return -1;
    case CELERY_INTEGRAL_TOO_BIG:
        if (json_object_is_type(v, json_type_int)) { /* json-c's text: saferepr would clamp */
            fail_no_such_run(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), err);
            return -1;
        }
        repr = celery_pyrepr_saferepr(v, QUOTE_MAX);
        fail_no_such_run(repr, err);
        free(repr);
        return -1;
    default:
        fail_not_integer(v, err);
        return -1;
    }
}

static void fail_call(struct cw_error *err, const char *what, const char *key)
{
    json_object *name = json_object_new_string(key);
    char *repr = celery_pyrepr_saferepr(name, QUOTE_MAX);
    CW_FAIL(err, CW_ERR_PERMANENT, "parse_run() %s %s", what, repr);
    free(repr);
    json_object_put(name);
}

/* Python's TypeError for parse_run(*args, **kwargs), checked in CPython's order: keywords
 * first (unexpected, or run_id given twice), then the number of positional arguments.
 * Returns true when the call is wrong. A missing run_id is not checked here. */
static bool call_error(size_t npos, json_object *kwargs, struct cw_error *err)
{
    if (kwargs != NULL) {
        json_object_object_foreach(kwargs, key, value)
        {
            (void)value;
            if (strcmp(key, "run_id") != 0) {
                fail_call(err, "got an unexpected keyword argument", key);
                return true;
            }
            if (npos > 0) {
                fail_call(err, "got multiple values for argument", key);
                return true;
            }
        }
    }
    if (npos > 1) {
        CW_FAIL(err, CW_ERR_PERMANENT, "parse_run() takes 1 positional argument but %zu were given",
                npos);
        return true;
    }
    return false;
}

/* run_id by position and by keyword still names one run when both say the same. */
static bool same_run(json_object *a, json_object *b)
{
    long x = 0, y = 0;
    return celery_json_integral(a, &x) == CELERY_INTEGRAL &&
           celery_json_integral(b, &y) == CELERY_INTEGRAL && x == y;
}

int parse_run_args(const struct celery_task *t, long *run_id, bool *bad_call, struct cw_error *err)
{
    json_object *args = json_object_is_type(t->args, json_type_array) ? t->args : NULL;
    json_object *kwargs = json_object_is_type(t->kwargs, json_type_object) ? t->kwargs : NULL;
    size_t npos = args ? json_object_array_length(args) : 0;
    json_object *by_keyword = NULL;
    bool has_keyword = kwargs && json_object_object_get_ex(kwargs, "run_id", &by_keyword);
    struct cw_error call;

    *run_id = 0;
    *bad_call = false;
    cw_error_clear(&call);
    if (npos == 0 && !has_keyword) {
        if (!call_error(npos, kwargs, err))
            CW_FAIL(err, CW_ERR_PERMANENT,
                    "parse_run() missing 1 required positional argument: 'run_id'");
        return -1;
    }
    bool wrong = call_error(npos, kwargs, &call);
    json_object *value = npos > 0 ? json_object_array_get_idx(args, 0) : by_keyword;
    if (npos > 0 && has_keyword && !same_run(value, by_keyword)) {
        *err = call; /* two different runs: neither is failed for the other's message */
        return -1;
    }
    if (run_id_value(value, run_id, err) != 0) {
        if (wrong)
            *err = call; /* Python raises at the call, before the value is looked at */
        return -1;
    }
    if (wrong) {
        *err = call;
        *bad_call = true;
    }
    return 0;
}

int parse_run_check_task_id(const char *task_id, struct cw_error *err)
{
    size_t chars = utf8_char_count(task_id, strlen(task_id));
    if (chars <= TASK_ID_MAX_CHARS)
        return 0;
    CW_FAIL(err, CW_ERR_PERMANENT,
            "task id is %zu characters long; a run records at most %d (ingestion_runs.task_id)",
            chars, TASK_ID_MAX_CHARS);
    return -1;
}
