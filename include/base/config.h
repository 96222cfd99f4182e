/* Worker configuration: environment first (the Python application's names), flags override.
 * Built once in main and handed down; no module reads the environment itself. */
#ifndef CWORKER_CONFIG_H
#define CWORKER_CONFIG_H

#include "base/error.h"

#include <stdbool.h>

#define CONFIG_MAX_QUEUES  16
#define CONFIG_MAX_RETRIES 16

/* STORAGE_BACKEND=s3: where the uploads are and how to reach them (boto3's names).
 * The secrets are taken from the environment only (never a flag: ps would show them) and
 * never written to a log, an error, a status or a metric. */
struct cw_s3_config {
    char *bucket;            /* S3_BUCKET */
    char *endpoint_url;      /* S3_ENDPOINT_URL (MinIO, s3rver); NULL = AWS */
    char *region;            /* AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1 */
    char *addressing_style;  /* S3_ADDRESSING_STYLE "path" | "virtual"; NULL = path with an
                              * endpoint, virtual on AWS */
    char *access_key_id;     /* AWS_ACCESS_KEY_ID */
    char *secret_access_key; /* AWS_SECRET_ACCESS_KEY */
    char *session_token;     /* AWS_SESSION_TOKEN, optional */
    char *ca_bundle;         /* AWS_CA_BUNDLE: PEM file of trusted CAs; NULL = the system's */
    int connect_timeout;     /* S3_CONNECT_TIMEOUT, seconds */
    int read_timeout;        /* S3_READ_TIMEOUT: seconds without a byte before a download
                              * counts as stalled */
};

struct cw_config {
    char *broker_url;      /* CELERY_BROKER_URL */
    char *database_url;    /* DATABASE_URL */
    char *storage_backend; /* STORAGE_BACKEND: "local" or "s3" */
    char *storage_path;    /* STORAGE_PATH, the local backend's root */
    struct cw_s3_config s3;
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
    int broker_heartbeat;  /* AMQP heartbeat, seconds (Celery's broker_heartbeat); 0 = off */
    char *broker_ssl_ca;   /* amqps: CA file (kombu broker_use_ssl ca_certs); NULL = system */
    char *broker_ssl_cert; /* amqps: client certificate and key; NULL = none */
    char *broker_ssl_key;
    bool queue_quorum;        /* CELERY_QUEUE_TYPE=quorum: new queues are quorum queues */
    bool exchange_topic;      /* CELERY_EXCHANGE_TYPE=topic (Celery's task_default_exchange_type):
                               * each queue's exchange is a topic exchange, not direct */
    bool retry_native;        /* RETRY_TRANSPORT=native: retries travel the native-delay ladder */
    bool native_delay_quorum; /* NATIVE_DELAYED_DELIVERY_QUEUE_TYPE (quorum): the ladder's queues */
    bool native_delay;        /* derived: the ladder is declared and the queues bound to it
                               * (topic exchange, and quorum queues or native retries) */
    double consumer_timeout;  /* the broker's consumer_timeout (s); 0 = it has none */
    double visibility_timeout;
    double orphan_timeout;           /* a PARSING run never started this long is re-published */
    double shutdown_grace;           /* seconds running tasks get to finish after SIGTERM */
    double retry_jitter;             /* percent, spreads retry delays */
    int debug_entry_delay_ms;        /* tests only: extra time per .conf entry */
    int debug_after_commit_delay_ms; /* tests only: pause after a run's COMMIT, before reporting */
    int executor_memory_limit_mb; /* EXECUTOR_MEMORY_LIMIT: address space per executor; 0 = off */
    int max_run_stanzas;          /* MAX_RUN_STANZAS: more in one run fails it (1,000,000) */
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
