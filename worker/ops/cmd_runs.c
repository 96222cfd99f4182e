/* `cworker runs list|retry`: the application's ingestion runs as an operator sees them,
 * and parse_run re-published for one run exactly as the application does it
 * (CONTRACT 1.5: publish with confirms first, then commit PARSING with the task id). */
#include "mq/conn.h"
#include "mq/topology_config.h"
#include "celery/encode.h"
#include "ops/cmd_common.h"
#include "ops/commands.h"
#include "db/db.h"
#include "db/pg.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <uuid/uuid.h>

#define LIST_DEFAULT_LIMIT 100
#define LIST_MAX_LIMIT     1000000
#define QUEUE_NAME_MAX     200 /* config.c's limit for a worker queue */

#define COMMON_USAGE                                                                               \
    "  --database URL        the application's database [DATABASE_URL]\n"                          \
    "  --log-level LEVEL     debug also prints each error's context [LOG_LEVEL]\n"                 \
    "  --help, -h            this text\n"

static const char runs_usage[] = "usage: cworker runs list [--status S] [--limit N]\n"
                                 "       cworker runs retry RUN_ID [--queue Q] [--force]\n\n"
                                 "List the application's ingestion runs, or parse one again.\n"
                                 "`cworker runs <action> --help` describes an action.\n";

/* The status names the application's SQLAlchemy Enum stores (CONTRACT 1.4). */
static const char *const statuses[] = {"PENDING",    "STORED", "PARSING",
                                       "NORMALIZED", "FAILED", "COMPLETE"};

static const struct option list_options[] = {
    {"status", required_argument, NULL, 's'},
    {"limit", required_argument, NULL, 'n'},
    {NULL, 0, NULL, 0},
};

static const struct cmd_spec list_spec = {
    "runs list",
    "usage: cworker runs list [--status S] [--limit N]\n\n"
    "Prints runs newest first, one JSON object per line: id, type, status, retry_count,\n"
    "error_message, task_id, created_at, started_at, completed_at (ISO-8601, UTC).\n\n"
    "options:\n"
    "  --status S            only runs in status S (PENDING, STORED, PARSING, NORMALIZED,\n"
    "                        FAILED, COMPLETE; any case)\n"
    "  --limit N             at most N runs (default 100)\n" COMMON_USAGE,
    list_options,
};

static const struct option retry_options[] = {
    {"queue", required_argument, NULL, 'q'},
    {"force", no_argument, NULL, 'f'},
    {NULL, 0, NULL, 0},
};

static const struct cmd_spec retry_spec = {
    "runs retry",
    "usage: cworker runs retry RUN_ID [--queue Q] [--force]\n\n"
    "Publishes app.worker.tasks.parse_run(RUN_ID) as the application does: a new task\n"
    "id, published with publisher confirms, and only then the run committed as PARSING\n"
    "with that task id (errors cleared). Only runs in STORED, PENDING or FAILED are\n"
    "retried unless --force is given; a COMPLETE run never is (the worker would not parse\n"
    "it again). Prints {run_id, task_id, queue, previous_status}.\n\n"
    "options:\n"
    "  --queue Q             publish to queue Q (default: the first of --queues)\n"
    "  --force               also retry a run in PARSING or NORMALIZED\n"
    "  --broker URL          the broker [CELERY_BROKER_URL]\n"
    "  --queues, -Q LIST     the worker's queues [CELERY_QUEUES, default celery]\n" COMMON_USAGE,
    retry_options,
};

/* ---- database ---- */

/* A parameterised statement; the result (caller clears) or NULL with err filled. */
static PGresult *query(struct db *db, const char *what, const char *sql, int n,
                       const char *const *values, struct cw_error *err)
{
    return pg_exec(db->conn, what, sql, n, values, err);
}

static int db_open(struct db *db, const struct cw_config *cfg, struct cw_error *err)
{
    PGresult *res;

    if (db_connect_as(db, cfg->database_url, PG_ROLE_CLI, err) != 0)
        return -1;
    /* timestamps in the JSON as UTC, whatever the server's or role's TimeZone */
    res = query(db, "SET TimeZone", "SET TIME ZONE 'UTC'", 0, NULL, err);
    if (res == NULL) {
        db_close(db);
        return -1;
    }
    PQclear(res);
    return 0;
}

/* ---- shared option handling ---- */

struct runs_opts {
    const char *status; /* list: upper-case name, NULL for all */
    long limit;
    const char *queue; /* retry: NULL = the first configured queue */
    bool force;
    long run_id;
};

static const char *status_name(const char *s)
{
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        if (strcasecmp(statuses[i], s) == 0)
            return statuses[i];
    return NULL;
}

static int take_option(const struct cmd_spec *spec, void *opts, int c, const char *arg)
{
    struct runs_opts *o = opts;
    switch (c) {
    case 's':
        o->status = status_name(arg);
        if (o->status == NULL)
            cmd_error(spec,
                      "--status must be one of PENDING, STORED, PARSING, NORMALIZED, "
                      "FAILED, COMPLETE, got '%s'",
                      arg);
        return o->status != NULL ? 0 : -1;
    case 'n':
        return cmd_parse_long(spec, "--limit", arg, 1, LIST_MAX_LIMIT, &o->limit);
    case 'q':
        if (arg[0] == '\0' || strlen(arg) > QUEUE_NAME_MAX) {
            cmd_error(spec, "--queue must name a queue of 1 to %d characters", QUEUE_NAME_MAX);
            return -1;
        }
        o->queue = arg;
        return 0;
    case 'f':
        o->force = true;
        return 0;
    default:
        return -1;
    }
}

/* The positional arguments: none for list, the run id for retry. */
static int take_rest(struct cmd_parser *p, struct runs_opts *o)
{
    char **rest;
    int n = cmd_parser_rest(p, &rest);
    bool wants_id = p->spec == &retry_spec;

    if (wants_id && n == 0) {
        cmd_error(p->spec, "missing RUN_ID (see cworker runs retry --help)");
        return -1;
    }
    if (n > (wants_id ? 1 : 0)) {
        cmd_error(p->spec, "unexpected argument '%s'", rest[wants_id ? 1 : 0]);
        return -1;
    }
    return wants_id ? cmd_parse_long(p->spec, "RUN_ID", rest[0], 1, INT32_MAX, &o->run_id) : 0;
}

/* Parses the arguments and loads the configuration. Returns -1 to go on, else the exit
 * code. */
static int parse(struct cmd_parser *p, struct runs_opts *o, struct cw_config *cfg)
{
    int rc = cmd_parser_options(p, take_option, o);
    if (rc >= 0)
        return rc;
    if (take_rest(p, o) != 0 || cmd_parser_config(p, cfg) != 0)
        return CMD_EXIT_USAGE;
    const char *needed =
        p->spec == &retry_spec ? "DATABASE_URL and CELERY_BROKER_URL" : "DATABASE_URL";
    if (cmd_require(p, cfg, cfg->database_url, needed) != 0 ||
        (p->spec == &retry_spec && cmd_require(p, cfg, cfg->broker_url, needed) != 0))
        return CMD_EXIT_USAGE;
    if (o->queue == NULL)
        o->queue = cfg->queues[0];
    return -1;
}

/* ---- runs list ---- */

static int list_runs(struct db *db, const struct runs_opts *o, struct cw_error *err)
{
    /* PostgreSQL writes the JSON (compact, keys in column order): its timestamps are
     * ISO-8601 and its escaping is right. */
    static const char sql[] =
        "SELECT row_to_json(r)::text FROM ("
        " SELECT id, type, status, retry_count, error_message, task_id, created_at, started_at,"
        "  completed_at FROM ingestion_runs"
        " WHERE $1::text IS NULL OR upper(status) = $1::text"
        " ORDER BY created_at DESC, id DESC LIMIT $2::bigint) r"
        " ORDER BY r.created_at DESC, r.id DESC";
    char limit[24];
    const char *values[2] = {o->status, limit};
    PGresult *res;

    snprintf(limit, sizeof limit, "%ld", o->limit);
    res = query(db, "listing runs", sql, 2, values, err);
    if (res == NULL)
        return -1;
    for (int i = 0; i < PQntuples(res); i++)
        puts(PQgetvalue(res, i, 0));
    PQclear(res);
    return 0;
}

static int runs_list(int argc, char **argv)
{
    struct runs_opts o = {.limit = LIST_DEFAULT_LIMIT};
    struct cmd_parser p;
    struct cw_config cfg;
    struct cw_error err;
    struct db db;
    int rc;

    cmd_parser_init(&p, &list_spec, argc, argv);
    rc = parse(&p, &o, &cfg);
    cmd_parser_free(&p);
    if (rc >= 0)
        return rc;
    rc = CMD_EXIT_FAILED;
    if (db_open(&db, &cfg, &err) == 0) {
        if (list_runs(&db, &o, &err) == 0)
            rc = CMD_EXIT_OK;
        db_close(&db);
    }
    fflush(stdout);
    if (rc != CMD_EXIT_OK)
        cmd_report(&list_spec, &cfg, &err);
    config_free(&cfg);
    return rc;
}

/* ---- runs retry ---- */

/* The run's status, upper-cased; *found = false when there is no such run. */
static int load_status(struct db *db, long run_id, char *status, size_t len, bool *found,
                       struct cw_error *err)
{
    char id[24];
    const char *values[1] = {id};
    PGresult *res;

    snprintf(id, sizeof id, "%ld", run_id);
    res = query(db, "loading the run", "SELECT upper(status) FROM ingestion_runs WHERE id = $1", 1,
                values, err);
    if (res == NULL)
        return -1;
    *found = PQntuples(res) == 1;
    if (*found)
        snprintf(status, len, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

/* What the application commits after parse_run.delay() returned (CONTRACT 1.5). */
static int mark_parsing(struct db *db, long run_id, const char *task_id, struct cw_error *err)
{
    char id[24];
    const char *values[2] = {id, task_id};
    PGresult *res;

    snprintf(id, sizeof id, "%ld", run_id);
    res = query(db, "marking the run PARSING",
                "UPDATE ingestion_runs SET status = 'PARSING', task_id = $2, started_at = now(),"
                " last_heartbeat = now(), error_message = NULL, error_traceback = NULL"
                " WHERE id = $1",
                2, values, err);
    if (res == NULL)
        return -1;
    PQclear(res);
    return 0;
}

/* Refuses what the application would not enqueue; returns 0 to go on. */
static int check_status(const struct runs_opts *o, const char *status)
{
    bool enqueueable = strcmp(status, "STORED") == 0 || strcmp(status, "PENDING") == 0 ||
                       strcmp(status, "FAILED") == 0;

    if (strcmp(status, "COMPLETE") == 0) {
        /* parse_run answers already_completed for a COMPLETE run without touching it, so
         * the PARSING we would commit would never be replaced: refused even with --force. */
        cmd_error(&retry_spec,
                  "run %ld is COMPLETE; the worker never parses a complete run "
                  "again, so it is not re-published (not even with --force)",
                  o->run_id);
        return -1;
    }
    if (enqueueable)
        return 0;
    if (!o->force) {
        cmd_error(&retry_spec,
                  "run %ld is %s; only STORED, PENDING or FAILED runs are retried "
                  "(--force to publish anyway)",
                  o->run_id, status);
        return -1;
    }
    cmd_error(&retry_spec, "run %ld is %s: publishing anyway (--force)", o->run_id, status);
    return 0;
}

/* parse_run(run_id) as Celery's send_task writes it, under a new task id. */
static int encode_parse_run(long run_id, const char *task_id, struct celery_outgoing *out,
                            struct cw_error *err)
{
    char host[256] = "localhost", origin[300], argsrepr[32];
    json_object *args = json_object_new_array();
    int rc;

    gethostname(host, sizeof host - 1);
    snprintf(origin, sizeof origin, "gen%ld@%s", (long)getpid(), host); /* anon_nodename() */
    snprintf(argsrepr, sizeof argsrepr, "[%ld]", run_id);
    json_object_array_add(args, json_object_new_int64(run_id));
    struct celery_new_task t = {
        .task = CMD_PARSE_RUN_TASK,
        .id = task_id,
        .args = args,
        .argsrepr = argsrepr,
        .kwargsrepr = "{}",
        .origin = origin,
    };
    rc = celery_message_encode_new(&t, out, err);
    json_object_put(args);
    return rc;
}

/* Declares the queue as kombu does before publishing (so the task is kept even when no
 * worker ever declared it), publishes, and returns once the broker confirmed it. */
static int publish_confirmed(const struct cw_config *cfg, const char *queue,
                             const struct celery_outgoing *msg, struct cw_error *err)
{
    struct mq_conn c;
    struct mq_topology topology = mq_topology_of(cfg, false);
    int rc = -1;

    if (mq_conn_open(&c, cfg->broker_url, 0, err) != 0)
        return -1;
    if (mq_conn_enable_confirms(&c, err) == 0 &&
        mq_conn_declare_topology(&c, queue, &topology, err) == 0 &&
        mq_conn_publish(&c, "", queue, &msg->props, msg->body, err) == 0)
        rc = 0;
    mq_conn_close(&c);
    return rc;
}

static int retry_run(struct db *db, const struct cw_config *cfg, const struct runs_opts *o,
                     struct cw_error *err)
{
    char status[64], task_id[37];
    struct celery_outgoing msg;
    json_object *out;
    bool found = false;
    uuid_t uu;

    if (load_status(db, o->run_id, status, sizeof status, &found, err) != 0)
        return -1;
    if (!found) {
        CW_FAIL(err, CW_ERR_PERMANENT, "run %ld does not exist", o->run_id);
        return -1;
    }
    if (check_status(o, status) != 0)
        return 1;
    uuid_generate_random(uu);
    uuid_unparse_lower(uu, task_id);
    if (encode_parse_run(o->run_id, task_id, &msg, err) != 0 ||
        publish_confirmed(cfg, o->queue, &msg, err) != 0) {
        celery_outgoing_free(&msg);
        return -1;
    }
    celery_outgoing_free(&msg);
    if (mark_parsing(db, o->run_id, task_id, err) != 0) {
        CW_WRAP(err, "task %s was published", task_id);
        return -1;
    }
    out = json_object_new_object();
    json_object_object_add(out, "run_id", json_object_new_int64(o->run_id));
    json_object_object_add(out, "task_id", json_object_new_string(task_id));
    json_object_object_add(out, "queue", json_object_new_string(o->queue));
    json_object_object_add(out, "previous_status", json_object_new_string(status));
    cmd_print_json(out);
    json_object_put(out);
    return 0;
}

static int runs_retry(int argc, char **argv)
{
    struct runs_opts o = {.limit = 0};
    struct cmd_parser p;
    struct cw_config cfg;
    struct cw_error err;
    struct db db;
    int rc;

    cmd_parser_init(&p, &retry_spec, argc, argv);
    rc = parse(&p, &o, &cfg);
    cmd_parser_free(&p);
    if (rc >= 0)
        return rc;
    rc = -1;
    if (db_open(&db, &cfg, &err) == 0) {
        rc = retry_run(&db, &cfg, &o, &err);
        db_close(&db);
    }
    fflush(stdout);
    if (rc < 0)
        cmd_report(&retry_spec, &cfg, &err);
    config_free(&cfg);
    return rc == 0 ? CMD_EXIT_OK : CMD_EXIT_FAILED;
}

int cmd_runs(int argc, char **argv)
{
    static const struct cmd_action actions[] = {
        {"list", runs_list}, {"retry", runs_retry}, {NULL, NULL}};
    return cmd_dispatch("runs", runs_usage, actions, argc, argv);
}
