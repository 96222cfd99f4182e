/* The HTTP listener's view of every worker on the broker: a thread of the listener
 * process with a broker connection of its own, consuming the worker-* Celery events as a
 * Celery event receiver does (celery/events.h: an exclusive auto-delete queue
 * "celeryev.<unique>" with Celery's event_queue_ttl and event_queue_expires, bound to
 * the celeryev exchange with "worker.#", no acks). The events go into a cluster_table
 * (ops/cluster_table.h) under a mutex; GET /v1/worker/cluster reads it. A message over
 * 64 kB is not parsed (a worker-* event is well under 1 kB).
 *
 * It listens only while someone reads: the first cluster_watch_json subscribes (the table
 * fills with the next heartbeats, within 2 s), and 120 s without a reading unsubscribe
 * again and forget the table, so a worker nobody watches adds no event traffic (every
 * receiver gets every worker's heartbeat every 2 s).
 *
 * The connection is best effort, as Celery's receivers are: when it fails the thread
 * says so (receiver.connected false, receiver.error) and reconnects every few seconds;
 * the table it had keeps ageing, so its workers turn "lost". */
#ifndef CWORKER_CLUSTER_WATCH_H
#define CWORKER_CLUSTER_WATCH_H

#include "base/config.h"
#include "base/error.h"
#include "ops/cluster_table.h"

#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

struct cluster_watch {
    const struct cw_config *cfg;
    pthread_t thread;
    bool running;         /* the thread was started (and must be joined) */
    atomic_bool stop;     /* set by cluster_watch_stop */
    pthread_mutex_t lock; /* guards everything below */
    struct cluster_table table;
    bool connected;
    double read_at;                  /* monotonic time of the last cluster_watch_json; 0: never */
    char queue[128];                 /* the receiver queue's name */
    char error[CW_ERROR_DETAIL_MAX]; /* why the last connection failed; "" when none did */
};

/* Starts the thread (nothing without a broker URL). */
CW_MUST_CHECK int cluster_watch_start(struct cluster_watch *w, const struct cw_config *cfg,
                                      struct cw_error *err);
/* {"receiver": {"connected", "queue", "error", "dropped"}, "workers": cluster_table_json}
 * (caller owns); dropped: events of new workers the full table kept out (ops/
 * cluster_table.h). */
json_object *cluster_watch_json(struct cluster_watch *w);
/* Stops and joins the thread (within about a second, or the broker's RPC timeout while
 * connecting), frees the table. Safe when it never started. */
void cluster_watch_stop(struct cluster_watch *w);

#endif
