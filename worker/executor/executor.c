/* Executor process: receive a task, run it, report the outcome. */
#include "executor/executor.h"
#include "executor/channel.h"
#include "executor/protocol.h"
#include "base/clock.h"
#include "db/db.h"
#include "base/log.h"
#include "executor/sweeper.h"
#include "tasks/task.h"
#include "base/xalloc.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

/* Shutdown is the supervisor's decision: it closes the channel (graceful) or kills us
 * (fast). A terminal's Ctrl-C reaches the whole process group, so ignore it here. */
static void executor_signals(pid_t parent)
{
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGCHLD, SIG_DFL);
    signal(SIGHUP, SIG_IGN);
    /* If the supervisor dies, so do we: its deliveries go back to the queue unacked. It may
     * have died before the request took effect: then our parent is no longer it. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
        log_warn("prctl(PR_SET_PDEATHSIG) failed: %s; an orphaned executor ends at EOF",
                 strerror(errno));
    if (getppid() != parent)
        _exit(0);
}

#if defined(__SANITIZE_ADDRESS__)
#define CW_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CW_ASAN 1
#endif
#endif

/* Set aside for the task to fail cleanly when the ceiling is reached (base/xalloc.h). */
#define MEMORY_RESERVE_BYTES (16u << 20)

/* EXECUTOR_MEMORY_LIMIT: a ceiling on this executor's address space, so a run that needs
 * too much fails ("the run needed more than N MB") instead of inviting the OOM killer
 * onto the host. Not under AddressSanitizer: its shadow memory reserves terabytes of
 * address space up front, and any limit would fail the first allocation. */
static void apply_memory_limit(const struct cw_config *cfg)
{
    if (cfg->executor_memory_limit_mb <= 0)
        return;
#ifdef CW_ASAN
    log_debug("EXECUTOR_MEMORY_LIMIT is not applied in an AddressSanitizer build");
#else
    rlim_t bytes = (rlim_t)cfg->executor_memory_limit_mb << 20;
    struct rlimit lim = {bytes, bytes};
    if (setrlimit(RLIMIT_AS, &lim) != 0) {
        log_warn("cannot apply EXECUTOR_MEMORY_LIMIT=%d: %s", cfg->executor_memory_limit_mb,
                 strerror(errno));
        return;
    }
    cw_xalloc_reserve(MEMORY_RESERVE_BYTES);
#endif
}

/* The executor's two connections: the task's, and one for heartbeats during its
 * transaction (opened on first use). */
struct executor_dbs {
    struct db task;
    struct db heartbeat;
};

static void run_task(struct executor_dbs *dbs, const struct cw_config *cfg,
                     const struct proto_task *pt, const struct cw_error *forced,
                     struct task_report *report)
{
    const struct celery_task *t = &pt->task;
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
    struct task_context ctx = {
        .db = db, .heartbeat_db = &dbs->heartbeat, .cfg = cfg, .queue = pt->queue};
    ctx.started = clock_monotonic();
    double soft = t->has_soft_time_limit ? t->soft_time_limit : cfg->soft_time_limit;
    ctx.soft_deadline = ctx.started + soft;
    ctx.forced = forced;
    def->run(&ctx, t, report);
}

static int send_or_log(int fd, json_object *msg)
{
    struct cw_error err;
    int rc = channel_send(fd, msg, &err);
    if (rc != 0)
        log_warn("cannot report to the supervisor (it is gone or stopping): %s", err.message);
    json_object_put(msg);
    return rc;
}

static void log_outcome(const struct celery_task *t, const struct task_report *report,
                        double started)
{
    log_set_task(t->id, report->run_id);
    if (report->err.cls != CW_ERR_NONE)
        log_info("task %s %s in %.3f s: %s", t->task, task_outcome_name(report->outcome),
                 clock_monotonic() - started, report->err.message);
    else
        log_info("task %s %s in %.3f s", t->task, task_outcome_name(report->outcome),
                 clock_monotonic() - started);
}

/* A task message that cannot be read is refused, and the supervisor dead-letters it: it
 * would fail the same way in every executor. */
static void handle_task(int fd, struct executor_dbs *dbs, const struct cw_config *cfg,
                        json_object *msg)
{
    struct proto_task pt;
    struct cw_error err;
    if (proto_task_decode(msg, &pt, &err) != 0) {
        log_error("refusing an unreadable task message: %s", err.message);
        send_or_log(fd, proto_refused(pt.seq, err.message));
        proto_task_free(&pt);
        return;
    }
    const struct celery_task *t = &pt.task;
    log_set_task(t->id, 0);
    if (send_or_log(fd, proto_started(pt.seq)) != 0) {
        proto_task_free(&pt);
        return;
    }
    struct task_report report = {0};
    cw_error_clear(&report.err);
    struct cw_error forced;
    if (pt.forced_cls != CW_ERR_NONE)
        CW_FAIL(&forced, pt.forced_cls, "%s", pt.forced_message);
    double started = clock_monotonic();
    run_task(dbs, cfg, &pt, pt.forced_cls != CW_ERR_NONE ? &forced : NULL, &report);
    if (cw_xalloc_reserve_used()) /* the task hit the ceiling and has failed: re-arm */
        cw_xalloc_reserve(MEMORY_RESERVE_BYTES);
    log_outcome(t, &report, started);
    send_or_log(fd, proto_result_encode(pt.seq, &report));
    task_report_free(&report);
    proto_task_free(&pt);
    log_set_task(NULL, 0);
    /* What the task freed goes back to the system, not kept by malloc for the life of the
     * executor: an idle executor holds no more than a fresh one. After the result is sent,
     * so its few milliseconds are off the task's path. */
    malloc_trim(0);
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
    json_object *reply = proto_bare(PROTO_SWEEP_RESULT);
    json_object_object_add(reply, "requeue", requeue);
    send_or_log(fd, reply);
}

void executor_main(int fd, const struct cw_config *cfg, int index, pid_t parent)
{
    executor_signals(parent);
    char name[32];
    snprintf(name, sizeof name, "executor-%d", index);
    log_configure((enum log_level)cfg->log_level, cfg->log_json, name);
    apply_memory_limit(cfg);
    struct executor_dbs dbs = {{0}, {0}};
    struct cw_error err;
    /* Connect now so the first task does not pay for it; a failure is retried per task. */
    if (db_connect(&dbs.task, cfg->database_url, &err) != 0)
        log_warn("%s", err.message);
    int rc = send_or_log(fd, proto_bare(PROTO_READY));
    while (rc == 0) {
        json_object *msg = NULL;
        int got = channel_recv(fd, &msg, &err);
        if (got == 0)
            break; /* EOF: the supervisor is gone or shutting down */
        if (got < 0 && err.cls == CW_ERR_TRANSIENT)
            break; /* the channel itself failed: the supervisor is gone */
        if (got < 0) {
            log_error("bad frame from the supervisor: %s", err.message);
            continue;
        }
        enum proto_type type = proto_type_of(msg);
        if (type == PROTO_TASK)
            handle_task(fd, &dbs, cfg, msg);
        else if (type == PROTO_SWEEP)
            handle_sweep(fd, &dbs, cfg);
        else
            log_error("unknown message from the supervisor ignored");
        json_object_put(msg);
    }
    db_close(&dbs.task);
    db_close(&dbs.heartbeat);
    close(fd);
    _exit(0);
}
