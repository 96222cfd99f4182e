/* What the supervisor and its executors say to each other over executor/channel.h, written
 * down once. Every message is a JSON object with "type":
 *
 *   supervisor -> executor
 *     task    {"seq", "task": <celery/task_json.h>, "hard_limit", "queue"?, "forced"?: {"class",
 *              "message"}}   run it (or, with forced, record that failure instead); queue:
 *              the queue it came from (a retry's delay queue is named after it)
 *     sweep   {}             look for stuck runs
 *   executor -> supervisor
 *     ready   {}             started up, once
 *     started {"seq"}        the task was read and begins
 *     refused {"seq", "reason"}  the task message could not be read: it is dead-lettered
 *     result  {"seq", "run_id", "outcome", "retry_delay", "result"?, "error"?: {"class",
 *              "message", "traceback"}}
 *     sweep_result {"requeue": [{"run_id", "task_id", "retries", "orphan"?}]}
 *
 * seq is the supervisor's number for one dispatch: a result answers the dispatch with the
 * same seq, and anything else is ignored. Outcomes and error classes travel as names and
 * are turned into enums here, once; nothing beyond this module compares strings.
 * Pure module: no I/O. */
#ifndef CWORKER_EXECUTOR_PROTOCOL_H
#define CWORKER_EXECUTOR_PROTOCOL_H

#include "base/error.h"
#include "celery/message.h"
#include "tasks/task.h"

#include <json-c/json.h>
#include <stdint.h>

enum proto_type {
    PROTO_UNKNOWN,
    PROTO_TASK,
    PROTO_SWEEP,
    PROTO_READY,
    PROTO_STARTED,
    PROTO_REFUSED,
    PROTO_RESULT,
    PROTO_SWEEP_RESULT,
};

enum proto_type proto_type_of(json_object *msg);
/* {"type": name} and nothing else: sweep, ready. */
json_object *proto_bare(enum proto_type type);

/* A task as the executor receives it. */
struct proto_task {
    uint64_t seq;
    struct celery_task task;
    double hard_limit;              /* seconds, as the supervisor enforces it */
    enum cw_error_class forced_cls; /* CW_ERR_NONE: run the task */
    char forced_message[CW_ERROR_DETAIL_MAX];
    char queue[256]; /* the queue the task came from; "" when the message did not say */
};

/* queue may be NULL (left out). */
json_object *proto_task_encode(uint64_t seq, const struct celery_task *t, double hard_limit,
                               enum cw_error_class forced_cls, const char *forced_message,
                               const char *queue);
/* *out is always freeable with proto_task_free, also after a failure. seq is set whenever
 * the message had one, so a refusal can name it. */
CW_MUST_CHECK int proto_task_decode(json_object *msg, struct proto_task *out, struct cw_error *err);
void proto_task_free(struct proto_task *t);

json_object *proto_started(uint64_t seq);
json_object *proto_refused(uint64_t seq, const char *reason);
/* seq of a started/refused/result message; 0 when it has none. */
uint64_t proto_seq(json_object *msg);
/* The reason of a refused message ("" when none). */
const char *proto_refused_reason(json_object *msg);

/* A task's result as the supervisor reads it. */
struct proto_result {
    uint64_t seq;
    enum task_outcome outcome;
    long run_id;
    double retry_delay;
    json_object *result;           /* owned; NULL when none */
    enum cw_error_class error_cls; /* CW_ERR_NONE when no error */
    char *error_message;           /* owned; "" when none */
    char *error_traceback;         /* owned; NULL when none */
};

json_object *proto_result_encode(uint64_t seq, const struct task_report *r);
CW_MUST_CHECK int proto_result_decode(json_object *msg, struct proto_result *out,
                                      struct cw_error *err);
void proto_result_free(struct proto_result *r);

const char *proto_error_class_name(enum cw_error_class cls);

#endif
