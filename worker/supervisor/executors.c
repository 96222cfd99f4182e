/* Supervisor: the executor process table (spawn, reap, respawn, hard time limits) and
 * reading what executors say. */
#include "base/clock.h"
#include "base/log.h"
#include "base/xalloc.h"
#include "executor/channel.h"
#include "executor/executor.h"
#include "supervisor/internal.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Closes [from, to], with close_range where the kernel has it. */
static void close_fds(unsigned from, unsigned to)
{
    if (from > to || close_range(from, to, 0) == 0)
        return;
    long max = sysconf(_SC_OPEN_MAX);
    for (long fd = from; fd <= (long)to && fd < (max > 0 ? max : 65536); fd++)
        close((int)fd);
}

void sup_close_inherited(int keep)
{
    close_fds(3, (unsigned)keep - 1);
    close_fds((unsigned)keep + 1, ~0u);
}

static void spawn_executor(struct supervisor *s, int i)
{
    struct executor *e = &s->execs[i];
    int fds[2];
    struct cw_error err;
    if (channel_pair(fds, &err) != 0) {
        log_error("cannot spawn executor %d: %s", i, err.message);
        e->respawn_at = clock_monotonic() + 1;
        return;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        log_error("fork() failed while spawning executor %d: %s", i, strerror(errno));
        close(fds[0]);
        close(fds[1]);
        e->respawn_at = clock_monotonic() + 1;
        return;
    }
    if (pid == 0) {
        /* Child: the parent's broker sockets and other channels are not ours to use. */
        sup_close_inherited(fds[1]);
        executor_main(fds[1], s->cfg, i, parent);
    }
    close(fds[1]);
    e->pid = pid;
    e->fd = fds[0];
    e->state = EXEC_STARTING;
    e->current = NULL;
    e->spawned_at = clock_monotonic();
}

bool sup_may_fork(const struct supervisor *s)
{
    /* A child forked while a connector thread is inside malloc, OpenSSL or rabbitmq-c would
     * inherit their locks held, and hang on its first use of them. */
    return !mq_connector_busy(&s->consumer_connector) &&
           !mq_connector_busy(&s->publisher_connector);
}

void sup_respawn_executors(struct supervisor *s, double now)
{
    if (s->draining || !sup_may_fork(s))
        return;
    for (int i = 0; i < s->nexec; i++)
        if (s->execs[i].state == EXEC_EMPTY && now >= s->execs[i].respawn_at)
            spawn_executor(s, i);
}

/* Killed for a forced outcome: the next executor records it instead of running the task
 * again. An orphan's forced outcome goes to the redelivery of the same task, if one waits. */
static void force_outcome(struct supervisor *s, struct delivery *d, enum delivery_forced forced,
                          const char *text)
{
    struct delivery *target = d;
    if (d->state == DLV_ORPHANED) {
        target = NULL;
        for (struct delivery *o = s->deliveries; o && !target; o = o->next)
            if ((o->state == DLV_PENDING || o->state == DLV_HELD) && o->task.id &&
                strcmp(o->task.id, d->task.id) == 0)
                target = o;
        if (!target)
            return; /* the redelivery has not arrived: it runs the task again */
    } else if (!sup_move(s, d, DLV_PENDING)) {
        return;
    }
    target->forced = forced;
    free(target->forced_error);
    target->forced_error = cw_xstrdup(text);
}

static void executor_crashed(struct supervisor *s, struct executor *e, struct delivery *d,
                             int status)
{
    sup_log_task(d);
    if (WIFSIGNALED(status))
        log_error("executor %d died of signal %d (%s) running task %s; it is requeued", (int)e->pid,
                  WTERMSIG(status), strsignal(WTERMSIG(status)), d->task.id);
    else
        log_error("executor %d exited (%d) running task %s; it is requeued", (int)e->pid,
                  WEXITSTATUS(status), d->task.id);
    if (d->state != DLV_ORPHANED)
        sup_settle(s, d, DLV_REQUEUED);
}

static void executor_gone(struct supervisor *s, struct executor *e, int status, double now)
{
    struct delivery *d = e->current;
    e->current = NULL;
    if (d && e->killed_for_revoke) {
        if (d->state != DLV_ORPHANED) {
            sup_event_task_revoked(s, &d->task, true, false);
            sup_rpc_revoked(s, &d->task, "terminated");
        }
        force_outcome(s, d, DLV_FORCED_REVOKED,
                      "Task revoked and terminated by a remote control request");
    } else if (d && e->killed_for_limit > 0) {
        char text[128];
        snprintf(text, sizeof text, "hard time limit of %g s exceeded", e->killed_for_limit);
        force_outcome(s, d, DLV_FORCED_TIMEOUT, text);
    } else if (d) {
        executor_crashed(s, e, d, status);
    } else if (!s->draining) {
        log_warn("executor %d ended (status %d)", (int)e->pid, status);
    }
    close(e->fd);
    e->fd = -1;
    e->state = EXEC_EMPTY;
    e->killed_for_limit = 0;
    e->killed_for_revoke = false;
    e->quick_deaths = now - e->spawned_at < 5 ? e->quick_deaths + 1 : 0;
    e->respawn_at = now + fmin(0.5 * (1 << (e->quick_deaths > 6 ? 6 : e->quick_deaths)), 30);
}

void sup_reap_children(struct supervisor *s, double now)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (sup_reap_http(s, pid, status, now))
            continue;
        for (int i = 0; i < s->nexec; i++)
            if (s->execs[i].state != EXEC_EMPTY && s->execs[i].pid == pid)
                executor_gone(s, &s->execs[i], status, now);
    }
}

void sup_enforce_hard_limits(struct supervisor *s, double now)
{
    for (int i = 0; i < s->nexec; i++) {
        struct executor *e = &s->execs[i];
        if (e->state == EXEC_BUSY && now > e->hard_deadline) {
            double limit =
                e->current->task.has_time_limit ? e->current->task.time_limit : s->cfg->time_limit;
            sup_log_task(e->current);
            log_error("task %s exceeded its hard time limit (%g s); killing executor %d",
                      e->current->task.id, limit, (int)e->pid);
            kill(e->pid, SIGKILL);
            e->killed_for_limit = limit;
            e->hard_deadline = INFINITY; /* reaped in the next round */
        }
    }
}

static void on_result_message(struct supervisor *s, struct executor *e, json_object *msg)
{
    struct proto_result r;
    struct cw_error err;
    if (proto_result_decode(msg, &r, &err) != 0)
        log_error("executor %d sent an unreadable result: %s", (int)e->pid, err.message);
    else
        sup_on_result(s, e, &r);
    proto_result_free(&r);
}

void sup_read_executor(struct supervisor *s, struct executor *e)
{
    json_object *msg = NULL;
    struct cw_error err;
    int got = channel_recv(e->fd, &msg, &err);
    if (got == 0)
        return; /* EOF: the reaper handles the exit */
    if (got < 0) {
        log_error("bad frame from executor %d: %s", (int)e->pid, err.message);
        return;
    }
    enum proto_type type = proto_type_of(msg);
    if (type == PROTO_READY && e->state == EXEC_STARTING) {
        e->state = EXEC_IDLE;
        e->quick_deaths = 0;
    } else if (type == PROTO_STARTED && e->state == EXEC_BUSY) {
        sup_on_started(s, e, proto_seq(msg));
    } else if (type == PROTO_REFUSED && e->state == EXEC_BUSY) {
        sup_on_refused(s, e, proto_seq(msg), proto_refused_reason(msg));
    } else if (type == PROTO_RESULT && e->state == EXEC_BUSY) {
        on_result_message(s, e, msg);
    } else if (type == PROTO_SWEEP_RESULT && e->state == EXEC_SWEEPING) {
        sup_on_sweep_result(s, e, msg);
    } else {
        log_error("executor %d sent an unexpected message in state %d", (int)e->pid, (int)e->state);
    }
    json_object_put(msg);
}

bool sup_sweeping(const struct supervisor *s)
{
    for (int i = 0; i < s->nexec; i++)
        if (s->execs[i].state == EXEC_SWEEPING)
            return true;
    return false;
}

int sup_busy_executors(const struct supervisor *s)
{
    int n = 0;
    for (int i = 0; i < s->nexec; i++)
        n += s->execs[i].state == EXEC_BUSY;
    return n;
}

void sup_stop_executors(struct supervisor *s)
{
    for (int i = 0; i < s->nexec; i++) {
        struct executor *e = &s->execs[i];
        if (e->state == EXEC_EMPTY)
            continue;
        if (e->state == EXEC_BUSY)
            kill(e->pid, SIGKILL); /* its delivery stays unacked: redelivered */
        close(e->fd);              /* EOF tells an idle executor to exit */
        waitpid(e->pid, NULL, 0);
        e->current = NULL; /* unacked: the list is freed by the loop's end */
        e->state = EXEC_EMPTY;
    }
}
