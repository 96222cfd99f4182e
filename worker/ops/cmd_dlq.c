/* `cworker dlq list|replay`: inspect and replay the dead-letter queue <queue>.dead.
 *
 * Both read the queue with basic.get WITHOUT auto-ack, so every message fetched stays
 * the broker's until we say otherwise: replay acks a message only after the broker
 * confirmed its copy in the original queue, and every other message is given back with
 * basic.nack(requeue). RabbitMQ puts requeued messages back at their old position, so
 * the queue's order is kept; and a command killed halfway loses nothing, because the
 * broker requeues a closed connection's unacked messages. (A kill between a replay's
 * confirm and its ack leaves the message in both queues: a duplicate, never a loss.) */
#include "mq/conn.h"
#include "ops/cmd_common.h"
#include "ops/commands.h"
#include "mq/dead_letter.h"
#include "ops/dlq_message.h"
#include "base/xalloc.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_DEFAULT_LIMIT 100
#define LIST_MAX_LIMIT     1000000
#define REPLAY_MAX_IDS     1024
#define MAX_DECLARED       16
#define QUEUE_NAME_MAX     255 /* an AMQP short string */

#define COMMON_USAGE                                                                               \
    "  --broker URL          the broker [CELERY_BROKER_URL]\n"                                     \
    "  --queues, -Q LIST     the worker's queues; the first is the default of --queue\n"           \
    "                        [CELERY_QUEUES, default celery]\n"                                    \
    "  --log-level LEVEL     debug also prints each error's context [LOG_LEVEL]\n"                 \
    "  --help, -h            this text\n"

static const char dlq_usage[] =
    "usage: cworker dlq list [--queue Q] [--limit N]\n"
    "       cworker dlq replay [--queue Q] (--all | --task-id ID [--task-id ID ...])\n\n"
    "Inspect and replay Q.dead, where the worker puts the messages of queue Q that can\n"
    "never run (non-JSON serializers, undecodable bodies, unknown tasks).\n"
    "`cworker dlq <action> --help` describes an action.\n";

static const struct option list_options[] = {
    {"queue", required_argument, NULL, 'q'},
    {"limit", required_argument, NULL, 'n'},
    {NULL, 0, NULL, 0},
};

static const struct cmd_spec list_spec = {
    "dlq list",
    "usage: cworker dlq list [--queue Q] [--limit N]\n\n"
    "Prints the first N messages of Q.dead, head first, one JSON object per line:\n"
    "position, task_id, task, reason, original_queue, dead_lettered_at, content_type,\n"
    "body_bytes, run_id. Nothing is consumed: every message stays where it was.\n\n"
    "options:\n"
    "  --queue Q             read Q.dead (default: the first of --queues)\n"
    "  --limit N             at most N messages (default 100)\n" COMMON_USAGE,
    list_options,
};

static const struct option replay_options[] = {
    {"queue", required_argument, NULL, 'q'},
    {"all", no_argument, NULL, 'a'},
    {"task-id", required_argument, NULL, 't'},
    {NULL, 0, NULL, 0},
};

static const struct cmd_spec replay_spec = {
    "dlq replay",
    "usage: cworker dlq replay [--queue Q] (--all | --task-id ID [--task-id ID ...])\n\n"
    "Moves the selected messages of Q.dead back to the queue they came from (header\n"
    "x-cworker-original-queue, else Q) with the x-cworker-* headers removed and everything\n"
    "else kept. Each is acked in Q.dead only after the broker confirmed the copy; the\n"
    "others stay in Q.dead, in their order. Prints one JSON object per replayed message.\n"
    "Exit 0, or 1 when a message could not be replayed or a task id was not found.\n\n"
    "options:\n"
    "  --queue Q             replay from Q.dead (default: the first of --queues)\n"
    "  --all                 every message present when the command starts\n"
    "  --task-id ID          the messages of task ID (repeatable)\n" COMMON_USAGE,
    replay_options,
};

/* ---- the broker side ---- */

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

/* ---- shared option handling ---- */

struct dlq_opts {
    const char *queue; /* NULL: the first configured queue */
    bool quorum;       /* declare missing target queues as quorum queues */
    long limit;
    bool all;
    const char *ids[REPLAY_MAX_IDS];
    int nids;
};

static int take_option(const struct cmd_spec *spec, struct dlq_opts *o, int c, const char *arg)
{
    switch (c) {
    case 'q':
        if (arg[0] == '\0' || strlen(arg) > QUEUE_NAME_MAX - strlen(".dead")) {
            cmd_error(spec, "--queue must name a queue of 1 to %zu characters",
                      QUEUE_NAME_MAX - strlen(".dead"));
            return -1;
        }
        o->queue = arg;
        return 0;
    case 'n':
        return cmd_parse_long(spec, "--limit", arg, 1, LIST_MAX_LIMIT, &o->limit);
    case 'a':
        o->all = true;
        return 0;
    case 't':
        if (o->nids == REPLAY_MAX_IDS) {
            cmd_error(spec, "at most %d --task-id options", REPLAY_MAX_IDS);
            return -1;
        }
        o->ids[o->nids++] = arg;
        return 0;
    default:
        return -1;
    }
}

/* Parses the options and loads the configuration. Returns -1 to go on, else the exit code. */
static int parse(struct cmd_parser *p, struct dlq_opts *o, struct cw_config *cfg)
{
    const char *arg;
    char **rest;
    int c;

    while ((c = cmd_parser_next(p, &arg)) >= 0)
        if (take_option(p->spec, o, c, arg) != 0)
            return CMD_EXIT_USAGE;
    if (c == CMD_OPT_HELP)
        return CMD_EXIT_OK;
    if (c == CMD_OPT_USAGE)
        return CMD_EXIT_USAGE;
    if (cmd_parser_rest(p, &rest) > 0) {
        cmd_error(p->spec, "unexpected argument '%s'", rest[0]);
        return CMD_EXIT_USAGE;
    }
    if (p->spec == &replay_spec && o->all == (o->nids > 0)) {
        cmd_error(p->spec, "give either --all or --task-id (see cworker dlq replay --help)");
        return CMD_EXIT_USAGE;
    }
    if (cmd_parser_config(p, cfg) != 0)
        return CMD_EXIT_USAGE;
    if (cfg->broker_url == NULL) {
        cmd_error(p->spec, "CELERY_BROKER_URL (or --broker) must be set");
        config_free(cfg);
        return CMD_EXIT_USAGE;
    }
    if (o->queue == NULL)
        o->queue = cfg->queues[0];
    o->quorum = cfg->queue_quorum;
    return -1;
}

/* ---- dlq list ---- */

static int list_messages(struct mq_conn *c, const char *dead, long limit, long *shown,
                         struct cw_error *err)
{
    uint64_t tag = 0, last = 0;
    amqp_message_t m;
    json_object *desc;
    int got = 0;

    for (*shown = 0; *shown < limit; (*shown)++) {
        got = mq_conn_get(c, dead, &tag, &m, err);
        if (got <= 0)
            break;
        last = tag;
        desc = dlq_message_describe(&m.properties, m.body, *shown + 1, CMD_PARSE_RUN_TASK);
        cmd_print_json(desc);
        json_object_put(desc);
        amqp_destroy_message(&m);
    }
    if (got < 0)
        return -1; /* the channel is gone: the broker requeues what we held */
    return last != 0 ? give_back(c, last, err) : 0;
}

static int dlq_list(int argc, char **argv)
{
    struct dlq_opts o = {.limit = LIST_DEFAULT_LIMIT};
    struct cmd_parser p;
    struct cw_config cfg;
    struct mq_conn conn;
    struct cw_error err;
    char dead[QUEUE_NAME_MAX + 1];
    uint32_t ready = 0;
    long shown = 0;
    int rc;

    cmd_parser_init(&p, &list_spec, argc, argv);
    rc = parse(&p, &o, &cfg);
    cmd_parser_free(&p);
    if (rc >= 0)
        return rc;
    snprintf(dead, sizeof dead, "%s.dead", o.queue);
    rc = CMD_EXIT_FAILED;
    if (open_dead_queue(&conn, &cfg, dead, &ready, &err) == 0) {
        if (list_messages(&conn, dead, o.limit, &shown, &err) == 0)
            rc = CMD_EXIT_OK;
        mq_conn_close(&conn); /* waits for close-ok: the nack is processed by then */
    }
    fflush(stdout);
    if (rc != CMD_EXIT_OK)
        cmd_report(&list_spec, &cfg, &err);
    else
        cmd_error(&list_spec, "%ld of %" PRIu32 " message(s) in %s shown", shown, ready, dead);
    config_free(&cfg);
    return rc;
}

/* ---- dlq replay ---- */

struct replay {
    const struct dlq_opts *opts;
    bool found[REPLAY_MAX_IDS];
    char dead[QUEUE_NAME_MAX + 1];
    struct mq_conn get;           /* reads <queue>.dead */
    struct mq_conn pub;           /* confirm mode: a confirm wait there sees only confirms */
    char *declared[MAX_DECLARED]; /* target queues declared on pub; owned */
    int ndeclared;
    long replayed;
    int failures;
};

static bool selected(struct replay *r, const char *task_id)
{
    bool any = r->opts->all;

    for (int i = 0; task_id != NULL && i < r->opts->nids; i++)
        if (strcmp(r->opts->ids[i], task_id) == 0)
            any = r->found[i] = true;
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
    if (mq_conn_declare_topology(&r->pub, queue, NULL, 0, r->opts->quorum, err) != 0)
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
    const char *target = oq != NULL ? json_object_get_string(oq) : r->opts->queue;
    amqp_basic_properties_t props;
    amqp_pool_t pool;
    int rc = -1;

    if (target[0] == '\0' || strlen(target) > QUEUE_NAME_MAX) {
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
            cmd_print_json(desc);
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
                cmd_report(&replay_spec, NULL, err);
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

/* Task ids asked for that were not in the DLQ are failures too. */
static void report_missing(struct replay *r)
{
    for (int i = 0; i < r->opts->nids; i++) {
        if (r->found[i])
            continue;
        cmd_error(&replay_spec, "task %s is not in %s", r->opts->ids[i], r->dead);
        r->failures++;
    }
}

static int dlq_replay(int argc, char **argv)
{
    struct dlq_opts o = {.limit = 0};
    struct replay r = {.opts = &o};
    struct cmd_parser p;
    struct cw_config cfg;
    struct cw_error err;
    uint32_t ready = 0;
    int rc;

    cmd_parser_init(&p, &replay_spec, argc, argv);
    rc = parse(&p, &o, &cfg);
    cmd_parser_free(&p);
    if (rc >= 0)
        return rc;
    snprintf(r.dead, sizeof r.dead, "%s.dead", o.queue);
    if (replay_open(&r, &cfg, &ready, &err) != 0) {
        cmd_report(&replay_spec, &cfg, &err);
        config_free(&cfg);
        return CMD_EXIT_FAILED;
    }
    if (replay_all(&r, ready, &err) != 0) {
        cmd_report(&replay_spec, &cfg, &err);
        r.failures++;
    } else {
        report_missing(&r);
    }
    replay_close(&r);
    fflush(stdout);
    cmd_error(&replay_spec, "%ld message(s) replayed from %s", r.replayed, r.dead);
    config_free(&cfg);
    return r.failures ? CMD_EXIT_FAILED : CMD_EXIT_OK;
}

int cmd_dlq(int argc, char **argv)
{
    static const struct cmd_action actions[] = {
        {"list", dlq_list}, {"replay", dlq_replay}, {NULL, NULL}};
    return cmd_dispatch("dlq", dlq_usage, actions, argc, argv);
}
