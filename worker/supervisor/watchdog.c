/* The supervisor loop's watchdog (see supervisor/watchdog.h). */
#include "supervisor/watchdog.h"
#include "base/clock.h"
#include "base/log.h"

#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

static void *watch(void *arg)
{
    struct watchdog *w = arg;
    struct timespec pause = {0, 250 * 1000 * 1000};
    atomic_store(&w->started, true);
    while (!atomic_load(&w->stop)) {
        nanosleep(&pause, NULL);
        double stalled = clock_monotonic() - atomic_load(&w->beat);
        if (stalled < w->stall_s)
            continue;
        /* write(2), not stdio: a fork of the loop thread must never find a stdio lock held. */
        char line[200];
        int n = snprintf(line, sizeof line,
                         "WARNING the supervisor loop has not come round for %d s (a broker socket "
                         "that takes no data?): shutting the broker connections down\n",
                         (int)stalled);
        if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0)
            n = 0;
        for (int i = 0; i < 2; i++) {
            int fd = atomic_load(&w->fds[i]);
            if (fd >= 0)
                shutdown(fd, SHUT_RDWR);
        }
        atomic_store(&w->beat, clock_monotonic()); /* once per stall */
    }
    return NULL;
}

bool watchdog_start(struct watchdog *w, double stall_s)
{
    memset(w, 0, sizeof *w);
    atomic_store(&w->beat, clock_monotonic());
    atomic_store(&w->fds[0], -1);
    atomic_store(&w->fds[1], -1);
    w->stall_s = stall_s;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* signals stay with the loop */
    int rc = pthread_create(&w->thread, NULL, watch, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        log_warn("no watchdog for the supervisor loop: %s", strerror(rc));
        return false;
    }
    w->running = true;
    /* Wait until the thread runs its own code: while a thread is being set up (the C
     * library, and AddressSanitizer, allocate for it) a fork of the loop could copy a held
     * allocator lock into the child. The loop forks executors right after this. */
    struct timespec tick = {0, 1000 * 1000};
    while (!atomic_load(&w->started))
        nanosleep(&tick, NULL);
    return true;
}

void watchdog_beat(struct watchdog *w, int consumer_fd, int publisher_fd)
{
    atomic_store(&w->fds[0], consumer_fd);
    atomic_store(&w->fds[1], publisher_fd);
    atomic_store(&w->beat, clock_monotonic());
}

void watchdog_stop(struct watchdog *w)
{
    if (!w->running)
        return;
    atomic_store(&w->stop, true);
    pthread_join(w->thread, NULL);
    w->running = false;
}
