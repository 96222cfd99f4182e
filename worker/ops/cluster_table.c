/* The workers seen on the broker (cluster_table.h). */
#include "ops/cluster_table.h"
#include "base/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_FREQ  2.0 /* Celery's worker_heartbeat default */
#define EXPIRE_WINDOW 2.0 /* celery.events.state HEARTBEAT_EXPIRE_WINDOW = 200 % of freq */

static const char *string_of(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

static bool number_of(json_object *o, const char *key, double *out)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) ||
        !(json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
        return false;
    *out = json_object_get_double(v);
    return true;
}

/* The index of hostname, or where it would go (*found false). */
static size_t find(const struct cluster_table *t, const char *hostname, bool *found)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->workers[mid].hostname, hostname);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static void remove_at(struct cluster_table *t, size_t i)
{
    memmove(&t->workers[i], &t->workers[i + 1], (t->n - i - 1) * sizeof *t->workers);
    t->n--;
}

/* Drops the forgotten workers, and the longest-silent one when the table is full. */
static void make_room(struct cluster_table *t, double now)
{
    for (size_t i = t->n; i-- > 0;)
        if (now - t->workers[i].seen_at > CLUSTER_TABLE_FORGET_S)
            remove_at(t, i);
    if (t->n < CLUSTER_TABLE_MAX)
        return;
    size_t oldest = 0;
    for (size_t i = 1; i < t->n; i++)
        if (t->workers[i].seen_at < t->workers[oldest].seen_at)
            oldest = i;
    remove_at(t, oldest);
}

static struct cluster_worker *entry(struct cluster_table *t, const char *hostname, double now)
{
    bool found;
    size_t i = find(t, hostname, &found);
    if (found)
        return &t->workers[i];
    make_room(t, now);
    i = find(t, hostname, &found);
    if (!t->workers)
        t->workers = cw_xcalloc(CLUSTER_TABLE_MAX, sizeof *t->workers);
    memmove(&t->workers[i + 1], &t->workers[i], (t->n - i) * sizeof *t->workers);
    t->n++;
    struct cluster_worker *w = &t->workers[i];
    memset(w, 0, sizeof *w);
    snprintf(w->hostname, sizeof w->hostname, "%s", hostname);
    w->freq = DEFAULT_FREQ;
    w->concurrency = -1;
    return w;
}

static void copy_load(struct cluster_worker *w, json_object *e)
{
    double v;
    if (number_of(e, "freq", &v) && v > 0)
        w->freq = v;
    if (number_of(e, "active", &v))
        w->active = (int)v;
    if (number_of(e, "processed", &v))
        w->processed = (long long)v;
    if (number_of(e, "concurrency", &v) && v > 0)
        w->concurrency = (int)v;
    if (number_of(e, "pid", &v))
        w->pid = (long)v;
    if (number_of(e, "timestamp", &v))
        w->timestamp = v;
    const char *s;
    if ((s = string_of(e, "sw_ident")))
        snprintf(w->sw_ident, sizeof w->sw_ident, "%s", s);
    if ((s = string_of(e, "sw_ver")))
        snprintf(w->sw_ver, sizeof w->sw_ver, "%s", s);
    json_object *avg;
    if (json_object_object_get_ex(e, "loadavg", &avg) && json_object_is_type(avg, json_type_array))
        for (size_t i = 0; i < 3 && i < json_object_array_length(avg); i++)
            w->loadavg[i] = json_object_get_double(json_object_array_get_idx(avg, i));
}

int cluster_table_event(struct cluster_table *t, json_object *event, double now)
{
    const char *type = string_of(event, "type"), *hostname = string_of(event, "hostname");
    if (!type || !hostname || !*hostname || strlen(hostname) >= sizeof t->workers->hostname)
        return 0;
    bool offline = strcmp(type, "worker-offline") == 0;
    if (!offline && strcmp(type, "worker-online") != 0 && strcmp(type, "worker-heartbeat") != 0)
        return 0;
    struct cluster_worker *w = entry(t, hostname, now);
    w->seen_at = now;
    w->offline = offline;
    copy_load(w, event);
    if (offline)
        w->active = 0; /* it finished or gave back everything before saying so */
    return 1;
}

static const char *state_of(const struct cluster_worker *w, double now)
{
    if (w->offline)
        return "offline";
    return now - w->seen_at > EXPIRE_WINDOW * w->freq ? "lost" : "online";
}

static json_object *worker_json(const struct cluster_worker *w, double now)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "hostname", json_object_new_string(w->hostname));
    json_object_object_add(o, "state", json_object_new_string(state_of(w, now)));
    json_object_object_add(o, "concurrency",
                           w->concurrency > 0 ? json_object_new_int(w->concurrency) : NULL);
    json_object_object_add(o, "active", json_object_new_int(w->active));
    json_object_object_add(o, "processed", json_object_new_int64(w->processed));
    json_object_object_add(o, "freq", json_object_new_double(w->freq));
    json_object_object_add(o, "seconds_since_event", json_object_new_double(now - w->seen_at));
    json_object_object_add(o, "pid", w->pid ? json_object_new_int64(w->pid) : NULL);
    json_object_object_add(o, "sw_ident",
                           w->sw_ident[0] ? json_object_new_string(w->sw_ident) : NULL);
    json_object_object_add(o, "sw_ver", w->sw_ver[0] ? json_object_new_string(w->sw_ver) : NULL);
    json_object *avg = json_object_new_array_ext(3);
    for (int i = 0; i < 3; i++)
        json_object_array_add(avg, json_object_new_double(w->loadavg[i]));
    json_object_object_add(o, "loadavg", avg);
    json_object_object_add(o, "timestamp",
                           w->timestamp > 0 ? json_object_new_double(w->timestamp) : NULL);
    return o;
}

json_object *cluster_table_json(const struct cluster_table *t, double now)
{
    json_object *out = json_object_new_array_ext((int)t->n);
    for (size_t i = 0; i < t->n; i++)
        if (now - t->workers[i].seen_at <= CLUSTER_TABLE_FORGET_S)
            json_object_array_add(out, worker_json(&t->workers[i], now));
    return out;
}

void cluster_table_free(struct cluster_table *t)
{
    free(t->workers);
    t->workers = NULL;
    t->n = 0;
}
