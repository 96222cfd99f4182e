/* `cworker health`: the container health check. Exit 0 only when the worker's HTTP
 * listener answers GET /healthz with 200, which it does only while the supervisor keeps
 * sending it snapshots (the supervisor loop is alive), the snapshot says the broker
 * connection is open, and the listener's own SELECT 1 on the database succeeds. */
#include "ops/cmd_common.h"
#include "ops/commands.h"
#include "ops/health_probe.h"
#include "ops/http_get.h"

#include <stdio.h>
#include <stdlib.h>

#define DEFAULT_TIMEOUT 3.0 /* s: below the image's HEALTHCHECK --timeout */

static const struct option health_options[] = {
    {"http", required_argument, NULL, 'a'},
    {"timeout", required_argument, NULL, 't'},
    {NULL, 0, NULL, 0},
};

static const struct cmd_spec health_spec = {
    "health",
    "usage: cworker health [--http HOST:PORT] [--timeout SECONDS]\n\n"
    "Asks the running worker's HTTP listener (CWORKER_HTTP, or --http) for GET /healthz\n"
    "and prints its answer (one JSON line). Exit 0 when the worker is healthy: its\n"
    "supervisor is alive and connected to the broker, and the database answers. Exit 1\n"
    "when it is not or does not answer within the timeout (default 3 s), 2 for a usage\n"
    "error or when no listener is configured. A listener on all interfaces (:PORT) is\n"
    "probed on 127.0.0.1. This is the image's HEALTHCHECK.\n",
    health_options,
};

struct health_args {
    const char *listen; /* --http; NULL = the configuration's CWORKER_HTTP */
    double timeout;
};

/* Parses the options into *a: CMD_OPT_END to go on, or CMD_OPT_HELP / CMD_OPT_USAGE (the
 * message is printed) to end the command with. */
static int parse_options(struct cmd_parser *p, struct health_args *a)
{
    const char *arg;
    int c;
    while ((c = cmd_parser_next(p, &arg)) >= 0) {
        if (c == 'a') {
            a->listen = arg;
        } else if (c == 't') {
            char *end;
            a->timeout = strtod(arg, &end);
            if (*end || !(a->timeout > 0 && a->timeout <= 60)) {
                cmd_error(p->spec, "--timeout must be a number of seconds in (0, 60]");
                return CMD_OPT_USAGE;
            }
        }
    }
    return c;
}

/* Probes target and prints the listener's answer; the exit code. */
static int probe(const struct health_target *t, double timeout)
{
    struct strbuf response = STRBUF_INIT;
    struct cw_error err;
    int rc = CMD_EXIT_FAILED;
    if (http_get(t->host, t->port, HEALTH_PATH, timeout, &response, &err) != 0) {
        cmd_error(&health_spec, "%s", err.message);
        goto done;
    }
    const char *text = response.data ? response.data : "";
    int status = health_response_status(text, response.len);
    size_t body_len;
    const char *body = health_response_body(text, response.len, &body_len);
    if (body_len > 0)
        printf("%.*s\n", (int)body_len, body);
    if (status == 200)
        rc = CMD_EXIT_OK;
    else if (status < 0)
        cmd_error(&health_spec, "%s:%s did not answer with HTTP", t->host, t->port);
    else
        cmd_error(&health_spec, "unhealthy: GET %s answered %d", HEALTH_PATH, status);
done:
    strbuf_free(&response);
    return rc;
}

int cmd_health(int argc, char **argv)
{
    struct cmd_parser p;
    struct cw_config cfg;
    struct health_args a = {NULL, DEFAULT_TIMEOUT};
    char **rest;
    cmd_parser_init(&p, &health_spec, argc, argv);
    int c = parse_options(&p, &a);
    int rc = c == CMD_OPT_HELP ? CMD_EXIT_OK : CMD_EXIT_USAGE;
    if (c != CMD_OPT_END) {
        cmd_parser_free(&p);
        return rc;
    }
    if (cmd_parser_rest(&p, &rest) > 0) {
        cmd_error(&health_spec, "takes no arguments");
    } else if (cmd_parser_config(&p, &cfg) == 0) {
        const char *listen = a.listen ? a.listen : cfg.http_listen;
        struct health_target t;
        struct cw_error err;
        if (!listen)
            cmd_error(&health_spec, "no HTTP listener: set CWORKER_HTTP (as the worker) or --http");
        else if (health_probe_target(listen, &t, &err) != 0)
            cmd_error(&health_spec, "--http / CWORKER_HTTP: %s", err.message);
        else
            rc = probe(&t, a.timeout);
        config_free(&cfg);
    }
    cmd_parser_free(&p);
    return rc;
}
