/* Worker configuration: environment first (the Python application's names), flags override.
 * Built once in main and handed down; no module reads the environment itself. */
#ifndef CWORKER_CONFIG_H
#define CWORKER_CONFIG_H

#include "base/error.h"

#include <stdbool.h>

#define CONFIG_MAX_QUEUES  16
#define CONFIG_MAX_RETRIES 16

struct cw_config {
    char *broker_url;   /* CELERY_BROKER_URL */
    char *database_url; /* DATABASE_URL */
    char *storage_backend;
    char *storage_path;
    char *queues[CONFIG_MAX_QUEUES];
    int nqueues;
    int concurrency;
    int prefetch_multiplier;
    double retry_delays[CONFIG_MAX_RETRIES]; /* seconds */
    int nretry_delays;
    int max_retries;
    double soft_time_limit;
    double time_limit;
    double heartbeat_interval;
    int broker_heartbeat; /* AMQP heartbeat, seconds (Celery's broker_heartbeat); 0 = off */
    double visibility_timeout;
    double shutdown_grace;           /* seconds running tasks get to finish after SIGTERM */
    double retry_jitter;             /* percent, spreads retry delays */
    int debug_entry_delay_ms;        /* tests only: extra time per .conf entry */
    int debug_after_commit_delay_ms; /* tests only: pause after a run's COMMIT, before reporting */
    int executor_memory_limit_mb; /* EXECUTOR_MEMORY_LIMIT: address space per executor; 0 = off */
    char *http_listen;            /* "HOST:PORT" or ":PORT" for the HTTP listener; NULL = off */
    bool task_events;             /* send task-* events (worker-* events are always sent) */
    int log_level;                /* enum log_level */
    bool log_json;
    char *migrations_dir;
    char *nodename;
};

/* Fills cfg from the environment, then from argv flags (argv[0] is the subcommand).
 * A bad value fails with a message naming the variable or flag. cfg owns its strings. */
CW_MUST_CHECK int config_load(struct cw_config *cfg, int argc, char **argv, struct cw_error *err);
void config_free(struct cw_config *cfg);
/* Prints the flags `run` accepts. */
void config_print_usage(const char *command);

#endif
