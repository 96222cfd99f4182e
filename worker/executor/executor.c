/* Executor process: receive a task, run it, report the outcome. */
#include "executor/executor.h"
#include "executor/channel.h"
#include "base/clock.h"
#include "db/db.h"
#include "base/log.h"
#include "executor/sweeper.h"
#include "tasks/task.h"
#include "base/xalloc.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

/* Shutdown is the supervisor's decision: it closes the channel (graceful) or kills us
 * (fast). A terminal's Ctrl-C reaches the whole process group, so ignore it here. */
static void executor_signals(void)
{
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGCHLD, SIG_DFL);
    signal(SIGHUP, SIG_IGN);
    /* If the supervisor dies, so do we: its deliveries go back to the queue unacked. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
}

static const char *json_string_field(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

/* Rebuilds the parts of the Celery message a task reads. */
static void task_from_message(json_object *msg, struct celery_task *t)
{
    memset(t, 0, sizeof *t);
    const char *id = json_string_field(msg, "task_id");
    const char *name = json_string_field(msg, "task");
    t->id = cw_xstrdup(id ? id : "");
    t->task = cw_xstrdup(name ? name : "");
    json_object *v;
    if (json_object_object_get_ex(msg, "retries", &v))
        t->retries = json_object_get_int(v);
    t->args =
        json_object_object_get_ex(msg, "args", &v) ? json_object_get(v) : json_object_new_array();
    t->kwargs = json_object_object_get_ex(msg, "kwargs", &v) ? json_object_get(v)
                                                             : json_object_new_object();
    if (json_object_object_get_ex(msg, "soft_time_limit", &v)) {
        t->has_soft_time_limit = true;
        t->soft_time_limit = json_object_get_double(v);
    }
}

static json_object *error_json(const struct cw_error *err)
{
    json_object *e = json_object_new_object();
    struct strbuf tb = STRBUF_INIT;
    cw_error_format_traceback(err, &tb);
    json_object_object_add(e, "class", json_object_new_string(cw_error_class_name(err->cls)));
    json_object_object_add(e, "message", json_object_new_string(err->message));
    json_object_object_add(e, "traceback", json_object_new_string(strbuf_cstr(&tb)));
    strbuf_free(&tb);
    return e;
}

static json_object *result_message(json_object *task_msg, const struct task_report *r)
{
    json_object *m = json_object_new_object();
    json_object *v;
    json_object_object_add(m, "type", json_object_new_string("result"));
    if (json_object_object_get_ex(task_msg, "delivery", &v))
        json_object_object_add(m, "delivery", json_object_get(v));
    if (json_object_object_get_ex(task_msg, "task_id", &v))
        json_object_object_add(m, "task_id", json_object_get(v));
    json_object_object_add(m, "run_id", json_object_new_int64(r->run_id));
    json_object_object_add(m, "outcome", json_object_new_string(task_outcome_name(r->outcome)));
    json_object_object_add(m, "retry_delay", json_object_new_double(r->retry_delay));
    if (r->result)
        json_object_object_add(m, "result", json_object_get(r->result));
    if (r->err.cls != CW_ERR_NONE)
        json_object_object_add(m, "error", error_json(&r->err));
    return m;
}

/* The executor's two connections: the task's, and one for heartbeats during its
 * transaction (opened on first use). */
struct executor_dbs {
    struct db task;
    struct db heartbeat;
};

static bool forced_error(json_object *msg, struct cw_error *err)
{
    json_object *f, *m;
    if (!json_object_object_get_ex(msg, "forced_error", &f))
        return false;
    const char *text =
        json_object_object_get_ex(f, "message", &m) ? json_object_get_string(m) : "time limit";
    bool permanent = json_object_object_get_ex(f, "class", &m) &&
                     strcmp(json_object_get_string(m), "permanent") == 0;
    CW_FAIL(err, permanent ? CW_ERR_PERMANENT : CW_ERR_TIMEOUT, "%s", text);
    return true;
}

static void run_task(struct executor_dbs *dbs, const struct cw_config *cfg,
                     const struct celery_task *t, const struct cw_error *forced,
                     struct task_report *report)
{
    struct db *db = &dbs->task;
    const struct task_def *def = task_registry_find(t->task);
    if (!def) { /* the supervisor dead-letters unknown tasks; this is a safety net */
        CW_FAIL(&report->err, CW_ERR_PERMANENT, "unknown task %s", t->task);
        report->outcome = TASK_FAILED;
        return;
    }
    if (!db->conn && db_connect(db, cfg->database_url, &report->err) != 0) {
        report->outcome = TASK_REQUEUE;
        return;
    }
    if (!db_ensure_connected(db)) {
        CW_FAIL(&report->err, CW_ERR_TRANSIENT, "the database connection is lost");
        report->outcome = TASK_REQUEUE;
        return;
    }
    struct task_context ctx = {.db = db, .heartbeat_db = &dbs->heartbeat, .cfg = cfg};
    ctx.started = clock_monotonic();
    double soft = t->has_soft_time_limit ? t->soft_time_limit : cfg->soft_time_limit;
    ctx.soft_deadline = ctx.started + soft;
    ctx.forced = forced;
    def->run(&ctx, t, report);
}

static void handle_task(int fd, struct executor_dbs *dbs, const struct cw_config *cfg,
                        json_object *msg)
{
    struct celery_task t;
    task_from_message(msg, &t);
    log_set_task(t.id, 0);
    struct task_report report = {0};
    cw_error_clear(&report.err);
    struct cw_error forced;
    bool is_forced = forced_error(msg, &forced);
    double started = clock_monotonic();
    run_task(dbs, cfg, &t, is_forced ? &forced : NULL, &report);
    log_set_task(t.id, report.run_id);
    if (report.err.cls != CW_ERR_NONE)
        log_info("task %s %s in %.3f s: %s", t.task, task_outcome_name(report.outcome),
                 clock_monotonic() - started, report.err.message);
    else
        log_info("task %s %s in %.3f s", t.task, task_outcome_name(report.outcome),
                 clock_monotonic() - started);
    json_object *reply = result_message(msg, &report);
    struct cw_error err;
    if (channel_send(fd, reply, &err) != 0)
        log_error("cannot report to the supervisor: %s", err.message);
    json_object_put(reply);
    task_report_free(&report);
    celery_task_free(&t);
    log_set_task(NULL, 0);
}

static void handle_sweep(int fd, struct executor_dbs *dbs, const struct cw_config *cfg)
{
    struct cw_error err;
    json_object *requeue = NULL;
    bool connected = dbs->task.conn ? db_ensure_connected(&dbs->task)
                                    : db_connect(&dbs->task, cfg->database_url, &err) == 0;
    if (connected)
        requeue = sweeper_run(&dbs->task, cfg, &err);
    if (!requeue)
        requeue = json_object_new_array(); /* the next sweep tries again */
    json_object *reply = json_object_new_object();
    json_object_object_add(reply, "type", json_object_new_string("sweep_result"));
    json_object_object_add(reply, "requeue", requeue);
    if (channel_send(fd, reply, &err) != 0)
        log_error("cannot report to the supervisor: %s", err.message);
    json_object_put(reply);
}

void executor_main(int fd, const struct cw_config *cfg, int index)
{
    executor_signals();
    char name[32];
    snprintf(name, sizeof name, "executor-%d", index);
    log_configure((enum log_level)cfg->log_level, cfg->log_json, name);
    struct executor_dbs dbs = {{0}, {0}};
    struct cw_error err;
    /* Connect now so the first task does not pay for it; a failure is retried per task. */
    if (db_connect(&dbs.task, cfg->database_url, &err) != 0)
        log_warn("%s", err.message);
    json_object *ready = json_object_new_object();
    json_object_object_add(ready, "type", json_object_new_string("ready"));
    int rc = channel_send(fd, ready, &err);
    json_object_put(ready);
    while (rc == 0) {
        json_object *msg = NULL;
        int got = channel_recv(fd, &msg, &err);
        if (got <= 0)
            break; /* EOF: the supervisor is gone or shutting down */
        const char *type = json_string_field(msg, "type");
        if (type && strcmp(type, "task") == 0)
            handle_task(fd, &dbs, cfg, msg);
        else if (type && strcmp(type, "sweep") == 0)
            handle_sweep(fd, &dbs, cfg);
        json_object_put(msg);
    }
    db_close(&dbs.task);
    db_close(&dbs.heartbeat);
    close(fd);
    _exit(0);
}
