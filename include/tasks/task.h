/* What a task is to the executor: a name, a function, and the report it fills.
 * Tasks run in an executor process with their own database connection. */
#ifndef CWORKER_TASK_H
#define CWORKER_TASK_H

#include "celery/message.h"
#include "base/config.h"
#include "db/db.h"
#include "base/error.h"

#include <json-c/json.h>

enum task_outcome {
    TASK_SUCCEEDED, /* result set; the run's final state is committed */
    TASK_FAILED,    /* final failure committed (or nothing to record, e.g. no such run) */
    TASK_RETRY,     /* transient: the supervisor publishes the retry after retry_delay */
    TASK_SKIPPED,   /* nothing done (duplicate delivery, run owned by another execution) */
    TASK_REQUEUE,   /* infrastructure outage: nothing recorded, redeliver later */
    TASK_REJECTED,  /* the message can never run (it names no run): nothing recorded, the
                       supervisor dead-letters it with err.message as the reason */
};
#define TASK_OUTCOME_LAST TASK_REJECTED

struct task_context {
    struct db *db;           /* the task's connection (holds the run lock and the transaction) */
    struct db *heartbeat_db; /* a second connection: heartbeats while db is inside a transaction */
    const struct cw_config *cfg;
    double started;                /* monotonic seconds */
    double soft_deadline;          /* monotonic seconds when the soft time limit hits */
    const struct cw_error *forced; /* non-NULL: do not run, record this failure (hard time limit) */
    const char *queue;             /* the queue the task came from; "" when unknown */
};

struct task_report {
    enum task_outcome outcome;
    long run_id;         /* 0 when unknown */
    json_object *result; /* owned by the report: the task's return value */
    struct cw_error err; /* why, for FAILED / RETRY / REQUEUE / REJECTED */
    double retry_delay;  /* seconds, for RETRY */
};

typedef void (*task_fn)(struct task_context *ctx, const struct celery_task *msg,
                        struct task_report *report);

struct task_def {
    const char *name;
    task_fn run;
};

/* NULL when the worker does not know the task. */
const struct task_def *task_registry_find(const char *name);
/* The known tasks, NULL-terminated. */
const struct task_def *const *task_registry_all(void);

const char *task_outcome_name(enum task_outcome o);
void task_report_free(struct task_report *r);

/* The tasks. */
void parse_run_task(struct task_context *ctx, const struct celery_task *msg,
                    struct task_report *report);

#endif
