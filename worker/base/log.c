/* Line-per-event logger. Not async-signal-safe: never call from a signal handler. Safe
 * from several threads: each line is one stdio call (stdio locks the stream), and the task
 * context is per thread. */
#include "base/log.h"
#include "base/strbuf.h"

#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_LEVEL_INFO;
static int json_format;
static char process_name[32] = "cworker";
/* Per thread: the supervisor loop sets the task a line is about, and the broker
 * connector threads, which log at the same time, must neither print nor tear it. */
static _Thread_local char task_id[64];
static _Thread_local long run_id;

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};

void log_configure(enum log_level level, int json, const char *name)
{
    min_level = level;
    json_format = json;
    if (name)
        snprintf(process_name, sizeof process_name, "%s", name);
}

void log_set_task(const char *id, long run)
{
    snprintf(task_id, sizeof task_id, "%s", id ? id : "");
    run_id = run;
}

int log_level_parse(const char *s, enum log_level *out)
{
    for (int i = 0; i <= LOG_LEVEL_ERROR; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    if (strcasecmp(s, "warn") == 0) {
        *out = LOG_LEVEL_WARNING;
        return 0;
    }
    return -1;
}

static void format_time(char *buf, size_t len)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03ldZ", (long)(tv.tv_usec / 1000));
}

static void write_json_line(enum log_level level, const char *when, const char *msg)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ts", json_object_new_string(when));
    json_object_object_add(o, "level", json_object_new_string(level_names[level]));
    json_object_object_add(o, "process", json_object_new_string(process_name));
    json_object_object_add(o, "pid", json_object_new_int((int)getpid()));
    if (task_id[0])
        json_object_object_add(o, "task_id", json_object_new_string(task_id));
    if (run_id)
        json_object_object_add(o, "run_id", json_object_new_int64(run_id));
    json_object_object_add(o, "msg", json_object_new_string(msg));
    fprintf(stderr, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level < min_level)
        return;
    struct strbuf msg = STRBUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    strbuf_vappendf(&msg, fmt, ap);
    va_end(ap);
    /* One event, one line: newlines inside a message would split it. */
    for (size_t i = 0; i < msg.len; i++)
        if (msg.data[i] == '\n' || msg.data[i] == '\r')
            msg.data[i] = ' ';
    char when[40];
    format_time(when, sizeof when);
    if (json_format) {
        write_json_line(level, when, strbuf_cstr(&msg));
    } else if (task_id[0]) {
        fprintf(stderr, "%s %-7s %s[%d] task=%s run=%ld %s\n", when, level_names[level],
                process_name, (int)getpid(), task_id, run_id, strbuf_cstr(&msg));
    } else {
        fprintf(stderr, "%s %-7s %s[%d] %s\n", when, level_names[level], process_name,
                (int)getpid(), strbuf_cstr(&msg));
    }
    strbuf_free(&msg);
}
