/* `cworker status <run_id>` and `cworker metrics`: the application's monitoring endpoints
 * (GET /v1/worker/runs/{id}/status, GET /v1/worker/metrics) from the command line, for
 * operators without the web application or the worker's HTTP listener. */
#include "ops/cmd_common.h"
#include "ops/commands.h"
#include "db/db.h"
#include "db/pg.h"
#include "db/run_status.h"

#include <stdio.h>
#include <stdlib.h>

static const struct option no_options[] = {{NULL, 0, NULL, 0}};

static const struct cmd_spec status_spec = {
    "status",
    "usage: cworker status RUN_ID [--database URL]\n\n"
    "Prints the run as GET /v1/worker/runs/{id}/status returns it (one JSON line), with\n"
    "the worker's progress while it is PARSING. Exit 1 when there is no such run.\n"
    "DATABASE_URL (or --database) says where.\n",
    no_options,
};

static const struct cmd_spec metrics_spec = {
    "metrics",
    "usage: cworker metrics [--database URL]\n\n"
    "Prints what GET /v1/worker/metrics returns (one JSON line): runs per status, retry\n"
    "statistics, the mean duration of COMPLETE runs and the 10 latest failures.\n",
    no_options,
};

/* Parses the options (none of its own) and loads the configuration; the positional
 * arguments are left in *rest. Returns 0 to go on, or -1 with the exit code to end with
 * (0 after --help, 2 for a usage or configuration error). */
static int parse_args(struct cmd_parser *p, struct cw_config *cfg, int *nrest, char ***rest,
                      int *exit_code)
{
    const char *arg;
    int c = cmd_parser_next(p, &arg);
    *exit_code = c == CMD_OPT_HELP ? CMD_EXIT_OK : CMD_EXIT_USAGE;
    if (c != CMD_OPT_END)
        return -1;
    *nrest = cmd_parser_rest(p, rest);
    if (cmd_parser_config(p, cfg) != 0)
        return -1;
    if (!cfg->database_url) {
        cmd_error(p->spec, "DATABASE_URL (or --database) must be set");
        config_free(cfg);
        return -1;
    }
    return 0;
}

/* How each command gets its object; *out NULL means no such run. */
typedef int (*fetch_fn)(PGconn *conn, long run_id, json_object **out, struct cw_error *err);

static int fetch_status(PGconn *conn, long run_id, json_object **out, struct cw_error *err)
{
    return run_status_get(conn, run_id, out, err);
}

static int fetch_metrics(PGconn *conn, long run_id, json_object **out, struct cw_error *err)
{
    (void)run_id;
    return run_status_metrics(conn, out, err);
}

/* Runs fn on a fresh connection and prints its object as one JSON line. */
static int fetch_and_print(const struct cmd_spec *spec, const struct cw_config *cfg, fetch_fn fn,
                           long run_id)
{
    struct db db = {0};
    struct cw_error err;
    json_object *out = NULL;
    int rc = CMD_EXIT_FAILED;
    if (db_connect_as(&db, cfg->database_url, PG_ROLE_CLI, &err) != 0 ||
        fn(db.conn, run_id, &out, &err) != 0) {
        cmd_report(spec, cfg, &err);
        goto done;
    }
    if (!out) {
        cmd_error(spec, "run %ld not found", run_id);
        goto done;
    }
    cmd_print_json(out);
    rc = CMD_EXIT_OK;
done:
    json_object_put(out);
    db_close(&db);
    return rc;
}

/* Shared by both commands: parse, check the positional arguments, fetch, print. */
static int run_command(const struct cmd_spec *spec, int argc, char **argv, bool wants_id)
{
    struct cmd_parser p;
    struct cw_config cfg;
    char **rest;
    int nrest = 0;
    long run_id = 0;
    cmd_parser_init(&p, spec, argc, argv);
    int rc;
    if (parse_args(&p, &cfg, &nrest, &rest, &rc) != 0) {
        cmd_parser_free(&p);
        return rc;
    }
    if (nrest != (wants_id ? 1 : 0) || (wants_id && !run_status_parse_id(rest[0], &run_id))) {
        cmd_error(spec,
                  wants_id ? "expected one run id (a positive integer)" : "takes no arguments");
        rc = CMD_EXIT_USAGE;
    } else {
        rc = fetch_and_print(spec, &cfg, wants_id ? fetch_status : fetch_metrics, run_id);
    }
    config_free(&cfg);
    cmd_parser_free(&p);
    return rc;
}

int cmd_status(int argc, char **argv)
{
    return run_command(&status_spec, argc, argv, true);
}

int cmd_metrics(int argc, char **argv)
{
    return run_command(&metrics_spec, argc, argv, false);
}
