/* Python's text forms of values, as a Celery worker puts them into events and remote
 * control replies: repr(float), Celery's saferepr of a JSON value, and repr() of an
 * exception. Pure module: no I/O, no logging. */
#ifndef CWORKER_CELERY_PYREPR_H
#define CWORKER_CELERY_PYREPR_H

#include <json-c/json.h>
#include <stddef.h>

/* Python's repr(float) into buf (always terminated): the shortest digits that read back as
 * v, "100.0", "1e-05", "1e+16", "-0.0", "nan", "inf". */
void celery_pyrepr_float(double v, char *buf, size_t len);

/* A JSON double that serialises as celery_pyrepr_float prints it, instead of json-c's 17
 * significant digits. Caller owns it. */
json_object *celery_pyrepr_double(double v);

/* Celery's saferepr(value, maxlen) of a JSON value, in Python literal syntax: strings in
 * single quotes with only ' escaped, True/False/None, containers nested deeper than 3
 * shown as {...}/[...]; maxlen < 0 means no limit, else the text is cut as Celery cuts it
 * (", ..." plus the closing brackets). Returns a new string the caller frees. */
char *celery_pyrepr_saferepr(json_object *value, long maxlen);

/* Python's repr() of an exception with one string argument: "PermanentError('No files')".
 * message NULL gives "Type()"; exc_type NULL or "" gives "Exception". The string is quoted
 * and escaped as Python's str repr does (double quotes when it contains ' but no "; bytes
 * that are not UTF-8 as \xNN). Returns a new string the caller frees. */
char *celery_pyrepr_exception(const char *exc_type, const char *message);

#endif
