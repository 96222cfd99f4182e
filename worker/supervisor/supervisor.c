/* Supervisor loop: signals, the poll loop, graceful and fast shutdown. The parts live in
 * worker/supervisor/ (see supervisor_internal.h). */
#include "supervisor/supervisor.h"
#include "supervisor/internal.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/xalloc.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

static volatile sig_atomic_t stop_signals;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_signals++;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static void poll_once(struct supervisor *s)
{
    struct pollfd fds[1 + 256];
    int n = 0;
    int consumer_fd = mq_conn_fd(&s->consumer);
    if (consumer_fd >= 0) {
        fds[n].fd = consumer_fd;
        fds[n++].events = POLLIN;
    }
    for (int i = 0; i < s->nexec; i++) {
        fds[n].fd = s->execs[i].state == EXEC_EMPTY ? -1 : s->execs[i].fd;
        fds[n++].events = POLLIN;
    }
    int timeout = mq_conn_has_buffered(&s->consumer) ? 0 : POLL_INTERVAL_MS;
    if (poll(fds, (nfds_t)n, timeout) < 0 && errno != EINTR)
        log_error("poll() failed: %s", strerror(errno));
    int base = consumer_fd >= 0 ? 1 : 0;
    for (int i = 0; i < s->nexec; i++)
        if (fds[base + i].fd >= 0 && (fds[base + i].revents & (POLLIN | POLLHUP)))
            sup_read_executor(s, &s->execs[i]);
    /* Called every round, readable or not: rabbitmq-c sends heartbeats from here. */
    sup_read_deliveries(s);
}

static void begin_drain(struct supervisor *s)
{
    s->draining = true;
    s->drain_deadline = clock_monotonic() + s->cfg->shutdown_grace;
    log_info("shutting down: no new tasks; %d running get up to %.0f s to finish",
             sup_busy_executors(s), s->cfg->shutdown_grace);
    for (int q = 0; q < s->cfg->nqueues && mq_conn_is_open(&s->consumer); q++) {
        for (unsigned e = 0; e <= s->consume_epoch && mq_conn_is_open(&s->consumer); e++) {
            char tag[64];
            struct cw_error err;
            sup_consumer_tag(q, e, tag, sizeof tag); /* every consumer of a widened window */
            if (mq_conn_cancel(&s->consumer, tag, &err) != 0)
                sup_consumer_lost(s, &err);
        }
    }
    for (struct delivery *d = s->deliveries; d; d = d->next) /* never started: give back */
        if (d->state == DLV_HELD || d->state == DLV_PENDING)
            sup_settle(s, d, DLV_REQUEUED);
}

static bool should_stop(struct supervisor *s, double now)
{
    if (s->fatal)
        return true;
    if ((stop_signals > 0 || s->shutdown_requested) && !s->draining)
        begin_drain(s);
    if (!s->draining)
        return false;
    if (stop_signals > 1) {
        log_warn("second signal: stopping now; unfinished tasks return to the queue");
        return true;
    }
    if (now > s->drain_deadline) {
        log_warn("grace period over: stopping now; unfinished tasks return to the queue");
        return true;
    }
    /* Running tasks, sweeps (their recoveries are published) and confirms settle first. */
    bool done = sup_busy_executors(s) == 0 && !sup_sweeping(s) && s->npublishes == 0;
    if (!done && now >= s->next_drain_report) {
        log_info("stopping: waiting for %d running task(s), %s, %zu unconfirmed publish(es)%s",
                 sup_busy_executors(s), sup_sweeping(s) ? "a sweep" : "no sweep", s->npublishes,
                 mq_conn_is_open(&s->publisher) ? "" : " (no publisher connection)");
        s->next_drain_report = now + 5;
    }
    return done;
}

int supervisor_run(const struct cw_config *cfg)
{
    install_signals();
    struct supervisor s;
    memset(&s, 0, sizeof s);
    s.cfg = cfg;
    s.reconnect_delay = 1;
    s.breaker_delay = 1;
    s.publisher_delay = 1;
    s.http_fd = -1;
    s.retries_waiting = -1;
    s.nexec = cfg->concurrency;
    s.execs = cw_xcalloc((size_t)s.nexec, sizeof *s.execs);
    for (int i = 0; i < s.nexec; i++)
        s.execs[i].fd = -1;
    sup_events_init(&s);
    log_info("cworker %s starting: %d executor(s)", cfg->nodename, s.nexec);
    /* Two heartbeat intervals, as a missed heartbeat is judged, within 5 .. 60 s. */
    double stall = cfg->broker_heartbeat > 0 ? 2.0 * cfg->broker_heartbeat : 30;
    watchdog_start(&s.watchdog, stall < 5 ? 5 : stall > 60 ? 60 : stall);
    for (;;) {
        double now = clock_monotonic();
        log_set_task(NULL, 0); /* task lines set their own context */
        watchdog_beat(&s.watchdog, mq_conn_fd(&s.consumer), mq_conn_fd(&s.publisher));
        if (should_stop(&s, now))
            break;
        sup_collect(&s);
        sup_events_tick(&s, now);
        sup_reap_children(&s, now);
        sup_ensure_http(&s, now);
        sup_respawn_executors(&s, now);
        sup_ensure_consumer(&s, now);
        sup_ensure_publisher(&s, now);
        sup_tend_publisher(&s);
        sup_dispatch(&s, now);
        sup_adjust_prefetch(&s, now);
        sup_repark_held(&s, now);
        sup_schedule_sweep(&s, now);
        sup_enforce_hard_limits(&s, now);
        sup_send_snapshot(&s, now);
        poll_once(&s);
    }
    watchdog_stop(&s.watchdog);
    sup_stop_executors(&s);
    sup_stop_http(&s);
    sup_event_worker_offline(&s);
    sup_control_free(&s);
    for (struct delivery *d = s.deliveries; d; d = d->next)
        if (!delivery_state_is_final(d->state))
            sup_move(&s, d, DLV_ORPHANED); /* unsettled: the broker redelivers it */
    sup_collect(&s);
    sup_free_publishes(&s);
    mq_connector_stop(&s.consumer_connector);
    mq_connector_stop(&s.publisher_connector);
    mq_conn_close(&s.consumer);
    mq_conn_close(&s.publisher);
    free(s.execs);
    log_info("stopped after %" PRIu64 " task(s)", s.processed);
    return s.fatal ? 2 : 0;
}
