/* Celery's inspect views built from the worker's state: Request.info() task dicts, stats,
 * conf, kombu queue dicts and the report text, as a Celery 5.2.6 worker shows them. */
#include "celery/inspect.h"

#include "celery/time.h"
#include "base/xalloc.h"
#include "celery/pyrepr.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Celery's timer priority for eta requests, as `inspect scheduled` shows it. */
#define SCHEDULED_PRIORITY 6

/* Whole seconds stay ints, as Celery's configuration values are. */
static json_object *seconds(double v)
{
    if (v == floor(v) && fabs(v) < 9e15)
        return json_object_new_int64((int64_t)v);
    return celery_pyrepr_double(v);
}

static json_object *delivery_info(const struct celery_control_task *t)
{
    json_object *d = json_object_new_object();
    json_object_object_add(d, "exchange", json_object_new_string(t->exchange ? t->exchange : ""));
    json_object_object_add(d, "routing_key", celery_json_string_or_null(t->routing_key));
    json_object_object_add(d, "priority", json_object_new_int(t->priority));
    json_object_object_add(d, "redelivered", json_object_new_boolean(t->redelivered));
    return d;
}

/* Request.info(safe): safe shows argsrepr/kwargsrepr instead of the values. */
static json_object *task_info(const struct celery_control_state *st,
                              const struct celery_control_task *t, bool safe)
{
    const struct celery_task *m = t->task;
    json_object *i = json_object_new_object();
    json_object *args, *kwargs;
    if (safe) {
        char *a = m->argsrepr ? NULL : celery_pyrepr_saferepr(m->args, -1);
        char *k = m->kwargsrepr ? NULL : celery_pyrepr_saferepr(m->kwargs, -1);
        args = json_object_new_string(m->argsrepr ? m->argsrepr : a);
        kwargs = json_object_new_string(m->kwargsrepr ? m->kwargsrepr : k);
        free(a);
        free(k);
    } else {
        args = m->args ? json_object_get(m->args) : json_object_new_array();
        kwargs = m->kwargs ? json_object_get(m->kwargs) : json_object_new_object();
    }
    json_object_object_add(i, "id", celery_json_string_or_null(m->id));
    json_object_object_add(i, "name", celery_json_string_or_null(m->task));
    json_object_object_add(i, "args", args);
    json_object_object_add(i, "kwargs", kwargs);
    json_object_object_add(i, "type", celery_json_string_or_null(m->task));
    json_object_object_add(i, "hostname", json_object_new_string(st->nodename));
    json_object_object_add(i, "time_start",
                           t->time_start > 0 ? celery_pyrepr_double(t->time_start) : NULL);
    json_object_object_add(i, "acknowledged", json_object_new_boolean(t->acknowledged));
    json_object_object_add(i, "delivery_info", delivery_info(t));
    json_object_object_add(i, "worker_pid",
                           t->worker_pid > 0 ? json_object_new_int64(t->worker_pid) : NULL);
    return i;
}

json_object *celery_inspect_tasks(const struct celery_control_state *st,
                                  const struct celery_control_task *tasks, size_t n, bool safe)
{
    json_object *l = json_object_new_array();
    for (size_t i = 0; i < n; i++)
        json_object_array_add(l, task_info(st, &tasks[i], safe));
    return l;
}

const struct celery_control_task *celery_inspect_find_task(const struct celery_control_state *st,
                                                           const char *id, const char **state)
{
    const struct {
        const struct celery_control_task *tasks;
        size_t n;
        const char *state;
    } sets[] = {{st->active, st->nactive, "active"},
                {st->reserved, st->nreserved, "reserved"},
                {st->scheduled, st->nscheduled, "reserved"}};
    for (size_t s = 0; s < sizeof sets / sizeof sets[0]; s++)
        for (size_t i = 0; i < sets[s].n; i++)
            if (sets[s].tasks[i].task && sets[s].tasks[i].task->id &&
                strcmp(sets[s].tasks[i].task->id, id) == 0) {
                *state = sets[s].state;
                return &sets[s].tasks[i];
            }
    return NULL;
}

json_object *celery_inspect_scheduled(const struct celery_control_state *st)
{
    json_object *l = json_object_new_array();
    for (size_t i = 0; i < st->nscheduled; i++) {
        const struct celery_control_task *t = &st->scheduled[i];
        json_object *e = json_object_new_object();
        char eta[64] = "";
        if (t->task->has_eta)
            celery_format_iso8601(t->task->eta, eta, sizeof eta);
        json_object_object_add(e, "eta", eta[0] ? json_object_new_string(eta) : NULL);
        json_object_object_add(e, "priority", json_object_new_int(SCHEDULED_PRIORITY));
        json_object_object_add(e, "request", task_info(st, t, false));
        json_object_array_add(l, e);
    }
    return l;
}

json_object *celery_inspect_query_task(const struct celery_control_state *st, json_object *ids)
{
    json_object *o = json_object_new_object();
    for (size_t i = 0; i < json_object_array_length(ids); i++) {
        const char *id = json_object_get_string(json_object_array_get_idx(ids, i)), *state;
        const struct celery_control_task *t = celery_inspect_find_task(st, id, &state);
        if (t == NULL)
            continue;
        json_object *pair = json_object_new_array_ext(2);
        json_object_array_add(pair, json_object_new_string(state));
        json_object_array_add(pair, task_info(st, t, false));
        json_object_object_add(o, id, pair);
    }
    return o;
}

json_object *celery_inspect_revoked(const struct celery_control_state *st)
{
    json_object *l = json_object_new_array();
    for (size_t i = 0; i < st->nrevoked; i++)
        json_object_array_add(l, json_object_new_string(st->revoked[i].id));
    return l;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_object *celery_inspect_registered(const struct celery_control_state *st)
{
    size_t n = st->nregistered;
    const char **names = cw_xcalloc(n ? n : 1, sizeof *names);
    json_object *l = json_object_new_array();
    memcpy(names, st->registered, n * sizeof *names);
    qsort(names, n, sizeof *names, compare_names);
    for (size_t i = 0; i < n; i++)
        if (strncmp(names[i], "celery.", 7) != 0)
            json_object_array_add(l, json_object_new_string(names[i]));
    free(names);
    return l;
}

/* kombu Queue(Q, Exchange(Q, 'direct'), routing_key=Q).as_dict(recurse=True). */
static json_object *queue_as_dict(const char *q)
{
    static const char *const null_keys[] = {"queue_arguments", "binding_arguments",
                                            "consumer_arguments"};
    static const char *const tail_nulls[] = {"no_declare", "expires",          "message_ttl",
                                             "max_length", "max_length_bytes", "max_priority"};
    json_object *x = json_object_new_object(), *d = json_object_new_object();
    json_object_object_add(x, "name", json_object_new_string(q));
    json_object_object_add(x, "type", json_object_new_string("direct"));
    json_object_object_add(x, "arguments", NULL);
    json_object_object_add(x, "durable", json_object_new_boolean(1));
    json_object_object_add(x, "passive", json_object_new_boolean(0));
    json_object_object_add(x, "auto_delete", json_object_new_boolean(0));
    json_object_object_add(x, "delivery_mode", NULL);
    json_object_object_add(x, "no_declare", json_object_new_boolean(0));
    json_object_object_add(d, "name", json_object_new_string(q));
    json_object_object_add(d, "exchange", x);
    json_object_object_add(d, "routing_key", json_object_new_string(q));
    for (size_t i = 0; i < sizeof null_keys / sizeof null_keys[0]; i++)
        json_object_object_add(d, null_keys[i], NULL);
    json_object_object_add(d, "durable", json_object_new_boolean(1));
    json_object_object_add(d, "exclusive", json_object_new_boolean(0));
    json_object_object_add(d, "auto_delete", json_object_new_boolean(0));
    json_object_object_add(d, "no_ack", json_object_new_boolean(0));
    json_object_object_add(d, "alias", NULL);
    json_object_object_add(d, "bindings", json_object_new_array());
    for (size_t i = 0; i < sizeof tail_nulls / sizeof tail_nulls[0]; i++)
        json_object_object_add(d, tail_nulls[i], NULL);
    return d;
}

json_object *celery_inspect_active_queues(const struct celery_control_state *st)
{
    json_object *l = json_object_new_array();
    for (size_t i = 0; i < st->nqueues; i++)
        json_object_array_add(l, queue_as_dict(st->queues[i]));
    return l;
}

static json_object *pool_info(const struct celery_control_state *st)
{
    json_object *p = json_object_new_object(), *pids = json_object_new_array(),
                *timeouts = json_object_new_array_ext(2);
    for (size_t i = 0; i < st->nexecutor_pids; i++)
        json_object_array_add(pids, json_object_new_int64(st->executor_pids[i]));
    json_object_array_add(timeouts, seconds(st->soft_time_limit));
    json_object_array_add(timeouts, seconds(st->time_limit));
    json_object_object_add(p, "max-concurrency", json_object_new_int(st->concurrency));
    json_object_object_add(p, "processes", pids);
    json_object_object_add(p, "max-tasks-per-child", json_object_new_string("N/A"));
    json_object_object_add(p, "put-guarded-by-semaphore", json_object_new_boolean(0));
    json_object_object_add(p, "timeouts", timeouts);
    return p;
}

/* Connection.info() of kombu, minus what cworker has no notion of; never the password. */
static json_object *broker_info(const struct celery_control_state *st)
{
    const struct amqp_connection_info *b = st->broker;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "hostname", celery_json_string_or_null(b->host));
    json_object_object_add(o, "userid", celery_json_string_or_null(b->user));
    json_object_object_add(o, "virtual_host", celery_json_string_or_null(b->vhost));
    json_object_object_add(o, "port", json_object_new_int(b->port));
    json_object_object_add(o, "insist", json_object_new_boolean(0));
    json_object_object_add(o, "ssl", json_object_new_boolean(b->ssl));
    json_object_object_add(o, "transport", json_object_new_string("amqp"));
    json_object_object_add(o, "transport_options", json_object_new_object());
    json_object_object_add(o, "login_method", json_object_new_string("PLAIN"));
    json_object_object_add(o, "uri_prefix", NULL);
    json_object_object_add(o, "heartbeat", celery_pyrepr_double(st->broker_heartbeat));
    json_object_object_add(o, "failover_strategy", json_object_new_string("round-robin"));
    json_object_object_add(o, "alternates", json_object_new_array());
    return o;
}

static double timeval_seconds(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static json_object *rusage_info(const struct rusage *r)
{
    const struct {
        const char *name;
        long value;
    } fields[] = {
        {"maxrss", r->ru_maxrss}, {"ixrss", r->ru_ixrss},     {"idrss", r->ru_idrss},
        {"isrss", r->ru_isrss},   {"minflt", r->ru_minflt},   {"majflt", r->ru_majflt},
        {"nswap", r->ru_nswap},   {"inblock", r->ru_inblock}, {"oublock", r->ru_oublock},
        {"msgsnd", r->ru_msgsnd}, {"msgrcv", r->ru_msgrcv},   {"nsignals", r->ru_nsignals},
        {"nvcsw", r->ru_nvcsw},   {"nivcsw", r->ru_nivcsw}};
    json_object *o = json_object_new_object();
    json_object_object_add(o, "utime", celery_pyrepr_double(timeval_seconds(r->ru_utime)));
    json_object_object_add(o, "stime", celery_pyrepr_double(timeval_seconds(r->ru_stime)));
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        json_object_object_add(o, fields[i].name, json_object_new_int64(fields[i].value));
    return o;
}

json_object *celery_inspect_stats(const struct celery_control_state *st)
{
    json_object *s = json_object_new_object(), *total = json_object_new_object();
    char clock[32];
    for (size_t i = 0; i < st->ntotals; i++)
        json_object_object_add(total, st->totals[i].name,
                               json_object_new_int64((int64_t)st->totals[i].count));
    snprintf(clock, sizeof clock, "%llu", (unsigned long long)st->clock->value);
    json_object_object_add(s, "total", total);
    json_object_object_add(s, "pid", json_object_new_int64(st->pid));
    json_object_object_add(s, "clock", json_object_new_string(clock)); /* str(app.clock) */
    json_object_object_add(s, "uptime", json_object_new_int64((int64_t)llround(st->uptime)));
    json_object_object_add(s, "pool", pool_info(st));
    if (st->broker != NULL)
        json_object_object_add(s, "broker", broker_info(st));
    json_object_object_add(s, "prefetch_count", json_object_new_int(st->prefetch_count));
    json_object_object_add(s, "rusage",
                           st->rusage ? rusage_info(st->rusage) : json_object_new_string("N/A"));
    return s;
}

/* The broker URL as Celery's conf shows it: the password replaced by asterisks. */
static json_object *masked_broker_url(const struct amqp_connection_info *b)
{
    char url[1024];
    snprintf(url, sizeof url, "%s://%s:********@%s:%d/%s", b->ssl ? "amqps" : "amqp",
             b->user ? b->user : "", b->host ? b->host : "", b->port, b->vhost ? b->vhost : "");
    return json_object_new_string(url);
}

json_object *celery_inspect_conf(const struct celery_control_state *st)
{
    json_object *o = json_object_new_object(), *accept = json_object_new_array();
    json_object_array_add(accept, json_object_new_string("json"));
    if (st->broker != NULL)
        json_object_object_add(o, "broker_url", masked_broker_url(st->broker));
    json_object_object_add(o, "task_serializer", json_object_new_string("json"));
    json_object_object_add(o, "accept_content", accept);
    json_object_object_add(o, "task_acks_late", json_object_new_boolean(1));
    json_object_object_add(o, "worker_concurrency", json_object_new_int(st->concurrency));
    json_object_object_add(o, "worker_prefetch_multiplier",
                           json_object_new_int(st->prefetch_multiplier));
    json_object_object_add(o, "task_soft_time_limit", seconds(st->soft_time_limit));
    json_object_object_add(o, "task_time_limit", seconds(st->time_limit));
    json_object_object_add(o, "worker_send_task_events", json_object_new_boolean(st->task_events));
    return o;
}

void celery_inspect_report(const struct celery_control_state *st, char *out, size_t len)
{
    snprintf(out, len,
             "software -> cworker:%s\nplatform -> system:Linux\nsettings -> "
             "transport:amqp\nnode -> %s pid:%ld",
             st->sw_ver ? st->sw_ver : "?", st->nodename, st->pid);
}
