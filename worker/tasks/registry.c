/* The tasks this worker runs, by Celery name. */
#include "tasks/task.h"

#include <string.h>

static const struct task_def parse_run = {"app.worker.tasks.parse_run", parse_run_task};
static const struct task_def *const registry[] = {&parse_run, NULL};

const struct task_def *task_registry_find(const char *name)
{
    for (const struct task_def *const *t = registry; *t; t++)
        if (name && strcmp((*t)->name, name) == 0)
            return *t;
    return NULL;
}

const struct task_def *const *task_registry_all(void)
{
    return registry;
}

const char *task_outcome_name(enum task_outcome o)
{
    static const char *const names[] = {"succeeded", "failed",  "retry",
                                        "skipped",   "requeue", "rejected"};
    return (unsigned)o < sizeof names / sizeof names[0] ? names[o] : "unknown";
}

void task_report_free(struct task_report *r)
{
    json_object_put(r->result);
    r->result = NULL;
}
