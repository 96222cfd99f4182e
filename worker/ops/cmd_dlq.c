/* `cworker dlq list|replay`: inspect and replay the dead-letter queue <queue>.dead.
 * Option parsing and output only; the broker side (and why nothing is ever lost) is
 * ops/dlq_ops.h, which the HTTP listener's dashboard runs too. */
#include "ops/cmd_common.h"
#include "ops/commands.h"
#include "ops/dlq_ops.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_DEFAULT_LIMIT 100
#define LIST_MAX_LIMIT     1000000
#define REPLAY_MAX_IDS     1024
#define QUEUE_NAME_MAX     DLQ_QUEUE_NAME_MAX

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

/* ---- shared option handling ---- */

struct dlq_opts {
    const char *queue; /* NULL: the first configured queue */
    bool quorum;       /* declare missing target queues as quorum queues */
    long limit;
    bool all;
    const char *ids[REPLAY_MAX_IDS];
    int nids;
};

static int take_option(const struct cmd_spec *spec, void *opts, int c, const char *arg)
{
    struct dlq_opts *o = opts;
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
    int rc = cmd_parser_options(p, take_option, o);
    if (rc >= 0)
        return rc;
    if (cmd_parser_no_rest(p) != 0)
        return CMD_EXIT_USAGE;
    if (p->spec == &replay_spec && o->all == (o->nids > 0)) {
        cmd_error(p->spec, "give either --all or --task-id (see cworker dlq replay --help)");
        return CMD_EXIT_USAGE;
    }
    if (cmd_parser_config(p, cfg) != 0 ||
        cmd_require(p, cfg, cfg->broker_url, "CELERY_BROKER_URL (or --broker)") != 0)
        return CMD_EXIT_USAGE;
    if (o->queue == NULL)
        o->queue = cfg->queues[0];
    o->quorum = cfg->queue_quorum;
    return -1;
}

/* ---- dlq list ---- */

static void print_each(void *ctx, json_object *desc)
{
    (void)ctx;
    cmd_print_json(desc);
}

static int dlq_list_cmd(int argc, char **argv)
{
    struct dlq_opts o = {.limit = LIST_DEFAULT_LIMIT};
    struct cmd_parser p;
    struct cw_config cfg;
    struct cw_error err;
    uint32_t ready = 0;
    long shown = 0;
    int rc;

    cmd_parser_init(&p, &list_spec, argc, argv);
    rc = parse(&p, &o, &cfg);
    cmd_parser_free(&p);
    if (rc >= 0)
        return rc;
    rc = dlq_list(&cfg, o.queue, o.limit, print_each, NULL, &ready, &shown, &err) == 0
             ? CMD_EXIT_OK
             : CMD_EXIT_FAILED;
    fflush(stdout);
    if (rc != CMD_EXIT_OK)
        cmd_report(&list_spec, &cfg, &err);
    else
        cmd_error(&list_spec, "%ld of %" PRIu32 " message(s) in %s.dead shown", shown, ready,
                  o.queue);
    config_free(&cfg);
    return rc;
}

/* ---- dlq replay ---- */

static void report_problem(void *ctx, const struct cw_error *err)
{
    (void)ctx;
    cmd_report(&replay_spec, NULL, err);
}

/* Task ids asked for that were not in the DLQ are failures too. */
static int report_missing(const struct dlq_opts *o, const bool *found)
{
    int missing = 0;
    for (int i = 0; i < o->nids; i++) {
        if (found[i])
            continue;
        cmd_error(&replay_spec, "task %s is not in %s.dead", o->ids[i], o->queue);
        missing++;
    }
    return missing;
}

static int dlq_replay_cmd(int argc, char **argv)
{
    struct dlq_opts o = {.limit = 0};
    bool found[REPLAY_MAX_IDS] = {false};
    struct cmd_parser p;
    struct cw_config cfg;
    struct cw_error err;
    long replayed = 0;
    int failures = 0, rc;

    cmd_parser_init(&p, &replay_spec, argc, argv);
    rc = parse(&p, &o, &cfg);
    cmd_parser_free(&p);
    if (rc >= 0)
        return rc;
    struct dlq_selection sel = {o.all, o.ids, o.nids, found};
    if (dlq_replay(&cfg, o.queue, o.quorum, &sel, print_each, report_problem, NULL, &replayed,
                   &failures, &err) != 0) {
        cmd_report(&replay_spec, &cfg, &err);
        failures++;
    } else {
        failures += report_missing(&o, found);
    }
    fflush(stdout);
    cmd_error(&replay_spec, "%ld message(s) replayed from %s.dead", replayed, o.queue);
    config_free(&cfg);
    return failures ? CMD_EXIT_FAILED : CMD_EXIT_OK;
}

int cmd_dlq(int argc, char **argv)
{
    static const struct cmd_action actions[] = {
        {"list", dlq_list_cmd}, {"replay", dlq_replay_cmd}, {NULL, NULL}};
    return cmd_dispatch("dlq", dlq_usage, actions, argc, argv);
}
