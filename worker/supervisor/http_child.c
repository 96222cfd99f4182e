/* Supervisor: the HTTP listener process and the snapshots it serves. */
#include "base/clock.h"
#include "base/log.h"
#include "executor/channel.h"
#include "ops/http_server.h"
#include "supervisor/internal.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static void spawn_http(struct supervisor *s)
{
    int fds[2];
    struct cw_error err;
    if (channel_pair(fds, &err) != 0) {
        log_error("cannot start the HTTP listener: %s", err.message);
        s->http_respawn_at = clock_monotonic() + 5;
        return;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        log_error("fork() failed while starting the HTTP listener: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        s->http_respawn_at = clock_monotonic() + 5;
        return;
    }
    if (pid == 0) {
        sup_close_inherited(fds[1]);
        /* Never outlive the supervisor, also one that died before the request took hold. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(0);
        signal(SIGINT, SIG_IGN);
        signal(SIGTERM, SIG_IGN);
        http_server_main(fds[1], s->cfg);
    }
    close(fds[1]);
    s->http_pid = pid;
    s->http_fd = fds[0];
}

bool sup_reap_http(struct supervisor *s, pid_t pid, int status, double now)
{
    if (pid != s->http_pid)
        return false;
    if (!s->draining)
        log_warn("the HTTP listener ended (status %d); restarting it", status);
    close(s->http_fd);
    s->http_fd = -1;
    s->http_pid = 0;
    s->http_respawn_at = now + 2;
    return true;
}

void sup_ensure_http(struct supervisor *s, double now)
{
    if (s->cfg->http_listen && !s->http_pid && !s->draining && now >= s->http_respawn_at &&
        sup_may_fork(s))
        spawn_http(s);
}

void sup_send_snapshot(struct supervisor *s, double now)
{
    if (!s->http_pid || now < s->next_snapshot)
        return;
    s->next_snapshot = now + 1;
    sup_count_waiting_retries(s, now);
    int pending = sup_count_in(s, DLV_PENDING) + sup_count_in(s, DLV_HELD);
    struct worker_gauges g = {s->cfg->nodename,
                              clock_wall(),
                              mq_conn_is_open(&s->consumer),
                              now < s->paused_until,
                              s->nexec,
                              sup_busy_executors(s),
                              pending,
                              s->retries_waiting};
    json_object *snap = worker_stats_snapshot(&s->stats, &g);
    struct cw_error err;
    if (channel_send(s->http_fd, snap, &err) != 0)
        log_warn("cannot update the HTTP listener: %s", err.message);
    json_object_put(snap);
}

void sup_stop_http(struct supervisor *s)
{
    if (!s->http_pid)
        return;
    close(s->http_fd); /* EOF: the listener stops */
    s->http_fd = -1;
    waitpid(s->http_pid, NULL, 0);
    s->http_pid = 0;
}
