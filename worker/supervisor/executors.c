/* Supervisor: the executor process table (spawn, reap, respawn, hard time limits). */
#include "supervisor/internal.h"
#include "executor/channel.h"
#include "base/clock.h"
#include "mq/dead_letter.h"
#include "executor/executor.h"
#include "ops/http_server.h"
#include "base/log.h"
#include "tasks/task.h"
#include "base/xalloc.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

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
        close(fds[0]);
        if (s->http_fd >= 0)
            close(s->http_fd);
        for (int j = 0; j < s->nexec; j++)
            if (s->execs[j].state != EXEC_EMPTY && s->execs[j].fd >= 0)
                close(s->execs[j].fd);
        executor_main(fds[1], s->cfg, i);
    }
    close(fds[1]);
    e->pid = pid;
    e->fd = fds[0];
    e->state = EXEC_STARTING;
    e->current = NULL;
    e->spawned_at = clock_monotonic();
}

void sup_respawn_executors(struct supervisor *s, double now)
{
    if (s->draining)
        return;
    for (int i = 0; i < s->nexec; i++)
        if (s->execs[i].state == EXEC_EMPTY && now >= s->execs[i].respawn_at)
            spawn_executor(s, i);
}

static void executor_gone(struct supervisor *s, struct executor *e, int status, double now)
{
    if (e->current && e->killed_for_revoke) {
        /* Revoked with terminate: the run is failed by the next executor, not rerun. */
        struct delivery *d = e->current;
        sup_event_task_revoked(s, &d->task, true, false);
        sup_rpc_revoked(s, &d->task, "terminated");
        d->forced_error = cw_xstrdup("Task revoked and terminated by a remote control request");
        d->forced_permanent = true;
        d->next = s->pending;
        s->pending = d;
        if (!d->next)
            s->pending_tail = &d->next;
        e->current = NULL;
    } else if (e->current && e->killed_for_limit > 0) {
        /* Killed for its hard time limit: the run is failed by the next executor, not rerun. */
        struct delivery *d = e->current;
        char text[128];
        snprintf(text, sizeof text, "hard time limit of %g s exceeded", e->killed_for_limit);
        d->forced_error = cw_xstrdup(text);
        d->next = s->pending;
        s->pending = d;
        if (!d->next)
            s->pending_tail = &d->next;
        e->current = NULL;
    } else if (e->current) {
        struct delivery *d = e->current;
        sup_log_task(d);
        if (WIFSIGNALED(status))
            log_error("executor %d died of signal %d (%s) running task %s; it is requeued",
                      (int)e->pid, WTERMSIG(status), strsignal(WTERMSIG(status)), d->task.id);
        else
            log_error("executor %d exited (%d) running task %s; it is requeued", (int)e->pid,
                      WEXITSTATUS(status), d->task.id);
        sup_settle(s, d, false, true);
        sup_delivery_free(d);
        e->current = NULL;
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

void sup_read_executor(struct supervisor *s, struct executor *e)
{
    json_object *msg = NULL;
    struct cw_error err;
    int got = channel_recv(e->fd, &msg, &err);
    if (got <= 0)
        return; /* EOF: the reaper handles the exit */
    json_object *v;
    const char *type = json_object_object_get_ex(msg, "type", &v) ? json_object_get_string(v) : "";
    if (strcmp(type, "ready") == 0 && e->state == EXEC_STARTING) {
        e->state = EXEC_IDLE;
        e->quick_deaths = 0;
    } else if (strcmp(type, "result") == 0 && e->state == EXEC_BUSY) {
        sup_on_result(s, e, msg);
    } else if (strcmp(type, "sweep_result") == 0 && e->state == EXEC_SWEEPING) {
        sup_on_sweep_result(s, e, msg);
    }
    json_object_put(msg);
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
        sup_delivery_free(e->current);
        e->current = NULL;
        e->state = EXEC_EMPTY;
    }
}
