/* The last line of defence for the supervisor loop: rabbitmq-c waits without a deadline for
 * a socket to take data, so a broker (or a path to it) that stops reading could hold the
 * loop in a send, and with it results, time limits and signals. A watchdog thread sees the
 * loop's beat stop and shuts the broker sockets down (shutdown(2) wakes the stuck call,
 * which then fails like any lost connection: the deliveries are orphaned, the loop
 * reconnects). It never touches anything else. */
#ifndef CWORKER_SUPERVISOR_WATCHDOG_H
#define CWORKER_SUPERVISOR_WATCHDOG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

struct watchdog {
    pthread_t thread;
    bool running;
    atomic_bool stop;
    atomic_bool started; /* the thread is past its set-up */
    _Atomic double beat; /* monotonic time of the loop's last round */
    atomic_int fds[2];   /* the broker sockets, -1 when none */
    double stall_s;      /* a round longer than this is a stall */
};

/* Starts the thread; false (logged) when it cannot, and the loop runs without it. */
bool watchdog_start(struct watchdog *w, double stall_s);
/* Once a round: the loop is alive, and these are the broker sockets now. */
void watchdog_beat(struct watchdog *w, int consumer_fd, int publisher_fd);
void watchdog_stop(struct watchdog *w);

#endif
