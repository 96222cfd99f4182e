/* The broker side of the dead-letter queue (dlq_ops.h): list and replay. Moved out of
 * cmd_dlq.c so that the HTTP listener runs the same code. */
#include "ops/dlq_ops.h"
#include "base/xalloc.h"
#include "mq/conn.h"
#include "mq/dead_letter.h"
#include "mq/topology_config.h"
#include "ops/cmd_common.h"
#include "ops/dlq_message.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DECLARED 16

/* Every unacked message up to `last` goes back to the queue, in its old place. */
static int give_back(struct mq_conn *c, uint64_t last, struct cw_error *err)
{
    if (mq_conn_nack(c, last, true, true, err) != 0) {
        CW_WRAP(err, "giving back the messages held (the broker requeues them anyway)");
        return -1;
    }
    return 0;
}

/* Opens the connection and checks that <queue>.dead exists; *ready = its message count. */
static int open_dead_queue(struct mq_conn *c, const struct cw_config *cfg, const char *dead,
                           uint32_t *ready, struct cw_error *err)
{
    if (mq_conn_open(c, cfg->broker_url, 0, err) != 0)
        return -1;
    if (mq_conn_queue_count(c, dead, ready, err) != 0) {
        mq_conn_close(c);
        return -1;
    }
    return 0;
}

static int dead_name(char *dead, size_t size, const char *queue, struct cw_error *err)
{
    if (!queue || !*queue || strlen(queue) + strlen(".dead") > DLQ_QUEUE_NAME_MAX) {
        CW_FAIL(err, CW_ERR_PERMANENT, "a queue name of 1 to %zu characters is needed",
                DLQ_QUEUE_NAME_MAX - strlen(".dead"));
        return -1;
    }
    snprintf(dead, size, "%s.dead", queue);
    return 0;
}

/* ---- list ---- */

static int list_messages(struct mq_conn *c, const char *dead, long limit, dlq_each_fn each,
                         void *ctx, long *shown, struct cw_error *err)
{
    uint64_t tag = 0, last = 0;
    amqp_message_t m;
    int got = 0;

    for (*shown = 0; *shown < limit; (*shown)++) {
        got = mq_conn_get(c, dead, &tag, &m, err);
        if (got <= 0)
            break;
        last = tag;
        json_object *desc =
            dlq_message_describe(&m.properties, m.body, *shown + 1, CMD_PARSE_RUN_TASK);
        each(ctx, desc);
        json_object_put(desc);
        amqp_destroy_message(&m);
    }
    if (got < 0)
        return -1; /* the channel is gone: the broker requeues what we held */
    return last != 0 ? give_back(c, last, err) : 0;
}

int dlq_list(const struct cw_config *cfg, const char *queue, long limit, dlq_each_fn each,
             void *ctx, uint32_t *ready, long *shown, struct cw_error *err)
{
    char dead[DLQ_QUEUE_NAME_MAX + 1];
    struct mq_conn conn;
    *ready = 0;
    *shown = 0;
    if (dead_name(dead, sizeof dead, queue, err) != 0 ||
        open_dead_queue(&conn, cfg, dead, ready, err) != 0)
        return -1;
    int rc = list_messages(&conn, dead, limit, each, ctx, shown, err);
    mq_conn_close(&conn); /* waits for close-ok: the nack is processed by then */
    return rc;
}

/* ---- replay ---- */

struct replay {
    const char *queue;
    struct mq_topology topology; /* what a missing target queue is declared as */
    const struct dlq_selection *sel;
    dlq_each_fn replayed_fn;
    dlq_problem_fn problem_fn;
    void *ctx;
    char dead[DLQ_QUEUE_NAME_MAX + 1];
    struct mq_conn get;           /* reads <queue>.dead */
    struct mq_conn pub;           /* confirm mode: a confirm wait there sees only confirms */
    char *declared[MAX_DECLARED]; /* target queues declared on pub; owned */
    int ndeclared;
    long replayed;
    int failures;
};

static bool selected(struct replay *r, const char *task_id)
{
    bool any = r->sel->all;

    for (int i = 0; task_id != NULL && i < r->sel->nids; i++)
        if (strcmp(r->sel->ids[i], task_id) == 0)
            any = r->sel->found[i] = true;
    return any;
}

/* Declares the target queue as kombu/Celery does before publishing (exchange, queue,
 * binding), so a replay never goes to a queue that does not exist, where the default
 * exchange would drop it and still confirm it. */
static int ensure_declared(struct replay *r, const char *queue, struct cw_error *err)
{
    for (int i = 0; i < r->ndeclared; i++)
        if (strcmp(r->declared[i], queue) == 0)
            return 0;
    if (mq_conn_declare_topology(&r->pub, queue, &r->topology, err) != 0)
        return -1;
    if (r->ndeclared < MAX_DECLARED)
        r->declared[r->ndeclared++] = cw_xstrdup(queue);
    return 0;
}

/* Publishes the message to its queue with confirms, then acks it in the DLQ. */
static int replay_one(struct replay *r, uint64_t tag, const amqp_message_t *m, json_object *desc,
                      struct cw_error *err)
{
    json_object *oq = json_object_object_get(desc, "original_queue");
    const char *target = oq != NULL ? json_object_get_string(oq) : r->queue;
    amqp_basic_properties_t props;
    amqp_pool_t pool;
    int rc = -1;

    if (target[0] == '\0' || strlen(target) > DLQ_QUEUE_NAME_MAX) {
        CW_FAIL(err, CW_ERR_PERMANENT, "message %s has an unusable original queue name",
                json_object_get_string(json_object_object_get(desc, "position")));
        return -1;
    }
    init_amqp_pool(&pool, 1024);
    dead_letter_restore_properties(&m->properties, &pool, &props);
    if (ensure_declared(r, target, err) == 0 &&
        mq_conn_publish(&r->pub, "", target, &props, m->body, err) == 0) {
        if (mq_conn_ack(&r->get, tag, err) == 0) {
            json_object_object_add(desc, "from", json_object_new_string(r->dead));
            json_object_object_add(desc, "to", json_object_new_string(target));
            r->replayed_fn(r->ctx, desc);
            r->replayed++;
            rc = 0;
        } else {
            CW_WRAP(err, "replayed to %s, but still in %s: it will be there twice", target,
                    r->dead);
        }
    }
    empty_amqp_pool(&pool);
    return rc;
}

/* Goes once through the messages that were in the DLQ at the start (a replayed message
 * that is dead-lettered again comes back at the tail: it is not seen twice). Stops at
 * the first broker error, since both connections are then suspect. */
static int replay_all(struct replay *r, uint32_t ready, struct cw_error *err)
{
    uint64_t tag = 0, last_held = 0;
    amqp_message_t m;
    json_object *desc;
    int got = 1, rc = 0;

    for (uint32_t pos = 1; pos <= ready && rc == 0; pos++) {
        got = mq_conn_get(&r->get, r->dead, &tag, &m, err);
        if (got <= 0)
            break;
        desc = dlq_message_describe(&m.properties, m.body, (long)pos, CMD_PARSE_RUN_TASK);
        if (!selected(r, json_object_get_string(json_object_object_get(desc, "task_id")))) {
            last_held = tag;
        } else if (replay_one(r, tag, &m, desc, err) != 0) {
            /* Not acked, so it stays in the DLQ. Only this message's own trouble lets the
             * others go on; a broker error stops the replay. */
            if (err->cls != CW_ERR_PERMANENT)
                rc = -1;
            else {
                r->problem_fn(r->ctx, err);
                r->failures++;
                last_held = tag;
            }
        }
        json_object_put(desc);
        amqp_destroy_message(&m);
    }
    if (got < 0)
        return -1;
    if (rc == 0 && last_held != 0)
        return give_back(&r->get, last_held, err);
    return rc;
}

static int replay_open(struct replay *r, const struct cw_config *cfg, uint32_t *ready,
                       struct cw_error *err)
{
    if (open_dead_queue(&r->get, cfg, r->dead, ready, err) != 0)
        return -1;
    if (mq_conn_open(&r->pub, cfg->broker_url, 0, err) != 0 ||
        mq_conn_enable_confirms(&r->pub, err) != 0) {
        mq_conn_close(&r->get);
        mq_conn_close(&r->pub);
        return -1;
    }
    return 0;
}

static void replay_close(struct replay *r)
{
    mq_conn_close(&r->pub);
    mq_conn_close(&r->get); /* requeues whatever was neither acked nor given back */
    for (int i = 0; i < r->ndeclared; i++)
        free(r->declared[i]);
    r->ndeclared = 0;
}

int dlq_replay(const struct cw_config *cfg, const char *queue, bool quorum,
               const struct dlq_selection *sel, dlq_each_fn replayed, dlq_problem_fn problem,
               void *ctx, long *nreplayed, int *failures, struct cw_error *err)
{
    struct replay r = {.queue = queue,
                       .topology = mq_topology_of(cfg, false),
                       .sel = sel,
                       .replayed_fn = replayed,
                       .problem_fn = problem,
                       .ctx = ctx};
    r.topology.quorum = quorum;
    uint32_t ready = 0;
    *nreplayed = 0;
    *failures = 0;
    if (dead_name(r.dead, sizeof r.dead, queue, err) != 0 || replay_open(&r, cfg, &ready, err) != 0)
        return -1;
    int rc = replay_all(&r, ready, err);
    replay_close(&r);
    *nreplayed = r.replayed;
    *failures = r.failures;
    return rc;
}
