/* The workers seen on the broker (cluster_table.h). */
#include "ops/cluster_table.h"
#include "base/utf8.h"
#include "base/xalloc.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_FREQ  2.0    /* Celery's worker_heartbeat default */
#define EXPIRE_WINDOW 2.0    /* celery.events.state HEARTBEAT_EXPIRE_WINDOW = 200 % of freq */
#define FREQ_MAX      3600.0 /* s: a longer "heartbeat" would keep a silent worker online */
#define COUNT_MAX     9.0e18 /* below LLONG_MAX, exactly representable as a double */

/* A string field that is well-formed UTF-8 without NUL (so it prints as JSON text and
 * strlen sees all of it), else NULL: anyone on the broker writes these bytes, and json-c
 * passes a string's bytes through unchecked. */
static const char *string_of(json_object *o, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    const char *s = json_object_get_string(v);
    size_t len = (size_t)json_object_get_string_len(v);
    return strlen(s) == len && utf8_valid(s, len) ? s : NULL;
}

/* A number field in [lo, hi]: NaN, Infinity (json-c reads 1e999 and NaN too, and would
 * write them back bare, which no JSON reader accepts) and values that do not fit the
 * field's C type are as if absent. */
static bool number_in(json_object *o, const char *key, double lo, double hi, double *out)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) ||
        !(json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
        return false;
    double d = json_object_get_double(v);
    if (!isfinite(d) || d < lo || d > hi)
        return false;
    *out = d;
    return true;
}

/* Copies text into dst[size], cut at a character boundary. */
static void copy_text(char *dst, size_t size, const char *text)
{
    size_t n = utf8_cut_bytes(text, strlen(text), size - 1);
    memcpy(dst, text, n);
    dst[n] = '\0';
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

static bool is_online(const struct cluster_worker *w, double now)
{
    return !w->offline && now - w->seen_at <= EXPIRE_WINDOW * w->freq;
}

/* Drops the forgotten workers and, when the table is still full, the longest-silent
 * one that is offline or lost. A worker still online is never pushed out: a flood of
 * made-up host names must not hide the real workers. False: no room. */
static bool make_room(struct cluster_table *t, double now)
{
    for (size_t i = t->n; i-- > 0;)
        if (now - t->workers[i].seen_at > CLUSTER_TABLE_FORGET_S)
            remove_at(t, i);
    if (t->n < CLUSTER_TABLE_MAX)
        return true;
    size_t oldest = t->n;
    for (size_t i = 0; i < t->n; i++)
        if (!is_online(&t->workers[i], now) &&
            (oldest == t->n || t->workers[i].seen_at < t->workers[oldest].seen_at))
            oldest = i;
    if (oldest == t->n)
        return false;
    remove_at(t, oldest);
    return true;
}

/* The entry of hostname, new when needed; NULL when the table is full of online
 * workers. */
static struct cluster_worker *entry(struct cluster_table *t, const char *hostname, double now)
{
    bool found;
    size_t i = find(t, hostname, &found);
    if (found)
        return &t->workers[i];
    if (!make_room(t, now))
        return NULL;
    i = find(t, hostname, &found);
    if (!t->workers)
        t->workers = cw_xcalloc(CLUSTER_TABLE_MAX, sizeof *t->workers);
    memmove(&t->workers[i + 1], &t->workers[i], (t->n - i) * sizeof *t->workers);
    t->n++;
    struct cluster_worker *w = &t->workers[i];
    memset(w, 0, sizeof *w);
    copy_text(w->hostname, sizeof w->hostname, hostname);
    w->freq = DEFAULT_FREQ;
    w->concurrency = -1;
    return w;
}

static void copy_load(struct cluster_worker *w, json_object *e)
{
    double v;
    if (number_in(e, "freq", 0, FREQ_MAX, &v) && v > 0)
        w->freq = v;
    if (number_in(e, "active", 0, INT_MAX, &v))
        w->active = (int)v;
    if (number_in(e, "processed", 0, COUNT_MAX, &v))
        w->processed = (long long)v;
    if (number_in(e, "concurrency", 1, INT_MAX, &v))
        w->concurrency = (int)v;
    if (number_in(e, "pid", 1, INT_MAX, &v))
        w->pid = (long)v;
    if (number_in(e, "timestamp", 0, COUNT_MAX, &v))
        w->timestamp = v;
    const char *s;
    if ((s = string_of(e, "sw_ident")))
        copy_text(w->sw_ident, sizeof w->sw_ident, s);
    if ((s = string_of(e, "sw_ver")))
        copy_text(w->sw_ver, sizeof w->sw_ver, s);
    json_object *avg;
    if (json_object_object_get_ex(e, "loadavg", &avg) && json_object_is_type(avg, json_type_array))
        for (size_t i = 0; i < 3 && i < json_object_array_length(avg); i++) {
            json_object *x = json_object_array_get_idx(avg, i);
            double d = json_object_get_double(x);
            bool number =
                json_object_is_type(x, json_type_int) || json_object_is_type(x, json_type_double);
            w->loadavg[i] = number && isfinite(d) ? d : 0;
        }
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
    if (!w) {
        t->dropped++;
        return 0;
    }
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
    return is_online(w, now) ? "online" : "lost";
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
    t->dropped = 0;
}
