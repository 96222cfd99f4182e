/* The workers seen on the broker, from the worker-* Celery events they publish (any
 * worker: cworker or Python Celery), kept the way Flower and celery.events.state keep
 * them: a worker is online from its first event until a worker-offline event, or until
 * no event came for 2 x its heartbeat freq (HEARTBEAT_EXPIRE_WINDOW 200 %). Pure: the
 * caller passes the time, no I/O, no locking.
 *
 * Liveness is measured on the receiving side's monotonic clock (when the event arrived),
 * not on the event's own timestamp, so a sender's clock skew cannot mark it offline.
 *
 * Anyone on the broker can publish events, so nothing in one is trusted: a host name or
 * version that is not UTF-8 (or holds a NUL) is ignored, numbers that are not finite or
 * do not fit are as if absent (the JSON written stays strict JSON), and a full table
 * (CLUSTER_TABLE_MAX) makes room only by dropping an offline or lost worker, never one
 * still online: a flood of made-up host names cannot push the real workers out. */
#ifndef CWORKER_CLUSTER_TABLE_H
#define CWORKER_CLUSTER_TABLE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#define CLUSTER_TABLE_MAX      256   /* workers kept; an offline or lost one makes room */
#define CLUSTER_TABLE_FORGET_S 900.0 /* a worker silent this long is dropped */

struct cluster_worker {
    char hostname[256];
    double seen_at; /* the caller's clock when its last event arrived */
    double freq;    /* heartbeat interval it announced (s); 2.0 when it said none */
    bool offline;   /* its last event was worker-offline */
    int active;     /* tasks executing ("active") */
    long long processed;
    int concurrency; /* -1: not sent (Python Celery workers) */
    long pid;
    char sw_ident[32], sw_ver[32];
    double loadavg[3];
    double timestamp; /* the event's own timestamp (epoch s), 0 when absent */
};

struct cluster_table {
    struct cluster_worker *workers; /* owned, sorted by hostname */
    size_t n;
    /* Events of new workers not kept: the table was full of online workers. */
    unsigned long long dropped;
};

/* Applies one event body (a JSON object) that arrived at `now`. Returns 1 when it was a
 * worker-online/heartbeat/offline event with a hostname, 0 when ignored (counted in
 * `dropped` when only the full table kept it out). */
int cluster_table_event(struct cluster_table *t, json_object *event, double now);
/* [{"hostname", "state": "online"|"offline"|"lost", "concurrency": n|null, "active",
 *   "processed", "freq", "seconds_since_event", "pid", "sw_ident", "sw_ver", "loadavg",
 *   "timestamp"}] sorted by hostname (caller owns). "lost": no event for 2 x freq. */
json_object *cluster_table_json(const struct cluster_table *t, double now);
void cluster_table_free(struct cluster_table *t);

#endif
