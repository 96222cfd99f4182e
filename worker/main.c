/* cworker: a Celery-compatible worker for parse_run jobs. Subcommands: run, migrate, and the
 * operator commands of commands.h. */
#include "ops/commands.h"
#include "base/config.h"
#include "base/log.h"
#include "db/migrate.h"
#include "db/pg.h"
#include "db/pg_error.h"
#include "supervisor/supervisor.h"

#include <stdio.h>
#include <string.h>

#define CWORKER_VERSION "0.1.0"

/* Exit codes: 0 ok, 1 failed, 2 usage or configuration error (do not restart as is),
 * 75 (EX_TEMPFAIL) transient failure such as an unreachable database. */
enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_TEMPFAIL = 75 };

static void print_usage(void)
{
    printf("usage: cworker <command> [options]\n\n"
           "commands:\n"
           "  run       consume parse_run tasks from RabbitMQ and run them\n"
           "  migrate   apply migrations/*.sql to DATABASE_URL\n"
           "  dlq       list or replay the dead-letter queue (dlq list, dlq replay)\n"
           "  runs      list ingestion runs, or parse one again (runs list, runs retry)\n"
           "  status    print a run's status as GET /v1/worker/runs/{id}/status returns it\n"
           "  metrics   print the worker metrics as GET /v1/worker/metrics returns them\n"
           "  health    exit 0 when the running worker is healthy (its GET /healthz)\n"
           "  version   print the version\n\n"
           "`cworker <command> --help` lists a command's options.\n");
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    return false;
}

static int command_migrate(const struct cw_config *cfg)
{
    struct cw_error err;
    if (migrate_run(cfg->database_url, cfg->migrations_dir, &err) != 0) {
        struct strbuf tb = STRBUF_INIT;
        cw_error_format_traceback(&err, &tb);
        log_error("migrate failed: %s", err.message);
        fprintf(stderr, "%s", strbuf_cstr(&tb));
        strbuf_free(&tb);
        return err.cls == CW_ERR_TRANSIENT ? EXIT_TEMPFAIL : EXIT_FAILED;
    }
    return EXIT_OK;
}

/* One connection before anything starts: a server certificate that does not verify will
 * not verify on the next try either, a configuration error like the broker's (exit 2).
 * Any other failure (the server down, a blackholed host after the timeout) is left to
 * the executors, which wait for the database as they always do. */
static bool database_tls_verifies(const struct cw_config *cfg)
{
    struct cw_error err;
    PGconn *conn = pg_connect_timeout(cfg->database_url, PG_ROLE_STARTUP, "5", &err);
    if (conn) {
        PQfinish(conn);
        return true;
    }
    if (!pg_error_tls_unverifiable(err.message))
        return true;
    log_error("cannot start: PostgreSQL's TLS certificate does not verify: %s (check sslmode, "
              "sslrootcert and the host name in DATABASE_URL)",
              err.message);
    return false;
}

static int command_run(const struct cw_config *cfg)
{
    if (!cfg->broker_url || !cfg->database_url) {
        log_error("CELERY_BROKER_URL and DATABASE_URL must be set");
        return EXIT_USAGE;
    }
    if (!database_tls_verifies(cfg))
        return EXIT_USAGE;
    return supervisor_run(cfg);
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        print_usage();
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    const char *command = argv[1];
    if (strcmp(command, "version") == 0 || strcmp(command, "--version") == 0) {
        printf("cworker %s\n", CWORKER_VERSION);
        return EXIT_OK;
    }
    /* The operator commands parse their own actions, options and --help. */
    if (strcmp(command, "dlq") == 0)
        return cmd_dlq(argc - 1, argv + 1);
    if (strcmp(command, "runs") == 0)
        return cmd_runs(argc - 1, argv + 1);
    if (strcmp(command, "status") == 0)
        return cmd_status(argc - 1, argv + 1);
    if (strcmp(command, "metrics") == 0)
        return cmd_metrics(argc - 1, argv + 1);
    if (strcmp(command, "health") == 0)
        return cmd_health(argc - 1, argv + 1);
    if (strcmp(command, "run") != 0 && strcmp(command, "migrate") != 0) {
        fprintf(stderr, "cworker: unknown command '%s' (see cworker --help)\n", command);
        return EXIT_USAGE;
    }
    if (wants_help(argc - 1, argv + 1)) {
        config_print_usage(command);
        return EXIT_OK;
    }
    struct cw_config cfg;
    struct cw_error err;
    if (config_load(&cfg, argc - 1, argv + 1, &err) != 0) {
        fprintf(stderr, "cworker: %s\n", err.message);
        config_free(&cfg);
        return EXIT_USAGE;
    }
    log_configure((enum log_level)cfg.log_level, cfg.log_json, "cworker");
    int rc = strcmp(command, "run") == 0 ? command_run(&cfg) : command_migrate(&cfg);
    config_free(&cfg);
    return rc;
}
