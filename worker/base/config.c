/* Configuration from environment variables and command-line flags. */
#include "base/config.h"
#include "mq/native_delay.h"
#include "base/config_s3.h"
#include "mq/conn.h"
#include "base/log.h"
#include "base/xalloc.h"
#include "db/pg_url.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static void set_string(char **slot, const char *value)
{
    free(*slot);
    *slot = value ? cw_xstrdup(value) : NULL;
}

static int parse_int(const char *name, const char *value, int min, int max, int *out,
                     struct cw_error *err)
{
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end || v < min || v > max) {
        CW_FAIL(err, CW_ERR_PERMANENT, "%s: expected an integer from %d to %d, got '%s'", name, min,
                max, value);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int parse_seconds(const char *name, const char *value, double *out, struct cw_error *err)
{
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || *end || !isfinite(v) || v <= 0 || v > 86400.0 * 365) {
        CW_FAIL(err, CW_ERR_PERMANENT, "%s: expected a positive number of seconds, got '%s'", name,
                value);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_queues(struct cw_config *cfg, const char *name, const char *value,
                        struct cw_error *err)
{
    for (int i = 0; i < cfg->nqueues; i++)
        free(cfg->queues[i]);
    cfg->nqueues = 0;
    char *copy = cw_xstrdup(value);
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        size_t len = strlen(tok);
        while (len && tok[len - 1] == ' ')
            tok[--len] = '\0';
        if (!len)
            continue;
        if (cfg->nqueues == CONFIG_MAX_QUEUES || len > 200) {
            free(copy);
            CW_FAIL(err, CW_ERR_PERMANENT, "%s: at most %d queues of at most 200 characters", name,
                    CONFIG_MAX_QUEUES);
            return -1;
        }
        cfg->queues[cfg->nqueues++] = cw_xstrdup(tok);
    }
    free(copy);
    if (cfg->nqueues == 0) {
        CW_FAIL(err, CW_ERR_PERMANENT, "%s: no queue named", name);
        return -1;
    }
    return 0;
}

static int parse_delays(struct cw_config *cfg, const char *name, const char *value,
                        struct cw_error *err)
{
    char *copy = cw_xstrdup(value);
    char *save = NULL;
    int n = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == CONFIG_MAX_RETRIES || parse_seconds(name, tok, &cfg->retry_delays[n], err) != 0) {
            if (n == CONFIG_MAX_RETRIES)
                CW_FAIL(err, CW_ERR_PERMANENT, "%s: at most %d delays", name, CONFIG_MAX_RETRIES);
            free(copy);
            return -1;
        }
        n++;
    }
    free(copy);
    if (n == 0) {
        CW_FAIL(err, CW_ERR_PERMANENT, "%s: no delay given", name);
        return -1;
    }
    cfg->nretry_delays = n;
    return 0;
}

/* One of two words: *second is whether it was the second. */
static int parse_choice(const char *name, const char *value, const char *first, const char *second,
                        bool *is_second, struct cw_error *err)
{
    if (strcmp(value, first) != 0 && strcmp(value, second) != 0) {
        CW_FAIL(err, CW_ERR_PERMANENT, "%s: expected '%s' or '%s', got '%s'", name, first, second,
                value);
        return -1;
    }
    *is_second = strcmp(value, second) == 0;
    return 0;
}

static int parse_log_format(struct cw_config *cfg, const char *name, const char *value,
                            struct cw_error *err)
{
    if (strcmp(value, "json") == 0) {
        cfg->log_json = true;
    } else if (strcmp(value, "text") == 0 || strcmp(value, "human") == 0) {
        cfg->log_json = false;
    } else {
        CW_FAIL(err, CW_ERR_PERMANENT, "%s: expected 'text' or 'json', got '%s'", name, value);
        return -1;
    }
    return 0;
}

static int parse_log_level(struct cw_config *cfg, const char *name, const char *value,
                           struct cw_error *err)
{
    enum log_level level;
    if (log_level_parse(value, &level) != 0) {
        CW_FAIL(err, CW_ERR_PERMANENT, "%s: expected debug, info, warning or error, got '%s'", name,
                value);
        return -1;
    }
    cfg->log_level = (int)level;
    return 0;
}

/* SQLAlchemy URLs name a driver ("postgresql+psycopg2://"); libpq wants "postgresql://".
 * A malformed URL is refused here, described without any of its text (libpq's own
 * message would echo the offending token, which may be the password). */
static int set_database_url(struct cw_config *cfg, const char *name, const char *value,
                            struct cw_error *err)
{
    char why[CW_ERROR_DETAIL_MAX - 64];
    if (!pg_url_valid(value, why, sizeof why)) {
        CW_FAIL(err, CW_ERR_PERMANENT, "%s: not a valid PostgreSQL URL (%s)", name, why);
        return -1;
    }
    free(cfg->database_url);
    cfg->database_url = pg_libpq_url(value);
    return 0;
}

/* A file the worker must be able to read (a CA, a certificate): checked at start so a
 * wrong path is a startup error naming the variable, not a connection failure later. */
static int set_readable_file(char **slot, const char *name, const char *value, struct cw_error *err)
{
    if (!*value) {
        free(*slot);
        *slot = NULL;
        return 0;
    }
    if (access(value, R_OK) != 0) {
        CW_FAIL(err, CW_ERR_PERMANENT, "%s: cannot read %s: %s", name, value, strerror(errno));
        return -1;
    }
    free(*slot);
    *slot = cw_xstrdup(value);
    return 0;
}

/* One setting, whether it came from the environment (name = variable) or a flag. */
enum setting {
    SET_BROKER,
    SET_DATABASE,
    SET_STORAGE_BACKEND,
    SET_STORAGE_PATH,
    SET_S3_BUCKET,
    SET_S3_ENDPOINT_URL,
    SET_AWS_DEFAULT_REGION, /* before AWS_REGION, which wins when both are set (boto3) */
    SET_AWS_REGION,
    SET_S3_ADDRESSING_STYLE,
    SET_AWS_ACCESS_KEY_ID,
    SET_AWS_SECRET_ACCESS_KEY,
    SET_AWS_SESSION_TOKEN,
    SET_AWS_CA_BUNDLE,
    SET_S3_CONNECT_TIMEOUT,
    SET_S3_READ_TIMEOUT,
    SET_QUEUES,
    SET_CONCURRENCY,
    SET_PREFETCH,
    SET_RETRY_DELAYS,
    SET_MAX_RETRIES,
    SET_SOFT_TIME_LIMIT,
    SET_TIME_LIMIT,
    SET_HEARTBEAT,
    SET_BROKER_HEARTBEAT,
    SET_BROKER_SSL_CA,
    SET_QUEUE_TYPE,
    SET_EXCHANGE_TYPE,
    SET_RETRY_TRANSPORT,
    SET_NATIVE_QUEUE_TYPE,
    SET_CONSUMER_TIMEOUT,
    SET_BROKER_SSL_CERT,
    SET_BROKER_SSL_KEY,
    SET_VISIBILITY,
    SET_ORPHAN_TIMEOUT,
    SET_SHUTDOWN_GRACE,
    SET_RETRY_JITTER,
    SET_HTTP,
    SET_TASK_EVENTS,
    SET_DEBUG_ENTRY_DELAY,
    SET_DEBUG_AFTER_COMMIT_DELAY,
    SET_LOG_LEVEL,
    SET_LOG_FORMAT,
    SET_MIGRATIONS_DIR,
    SET_NODENAME,
    SET_EXECUTOR_MEMORY_LIMIT,
    SET_MAX_RUN_STANZAS,
    SET_COUNT
};

/* Designated initializers keep each variable next to its setting. */
static const char *const env_names[SET_COUNT] = {
    [SET_BROKER] = "CELERY_BROKER_URL",
    [SET_DATABASE] = "DATABASE_URL",
    [SET_STORAGE_BACKEND] = "STORAGE_BACKEND",
    [SET_STORAGE_PATH] = "STORAGE_PATH",
    [SET_S3_BUCKET] = "S3_BUCKET",
    [SET_S3_ENDPOINT_URL] = "S3_ENDPOINT_URL",
    [SET_AWS_DEFAULT_REGION] = "AWS_DEFAULT_REGION",
    [SET_AWS_REGION] = "AWS_REGION",
    [SET_S3_ADDRESSING_STYLE] = "S3_ADDRESSING_STYLE",
    [SET_AWS_ACCESS_KEY_ID] = "AWS_ACCESS_KEY_ID",
    [SET_AWS_SECRET_ACCESS_KEY] = "AWS_SECRET_ACCESS_KEY",
    [SET_AWS_SESSION_TOKEN] = "AWS_SESSION_TOKEN",
    [SET_AWS_CA_BUNDLE] = "AWS_CA_BUNDLE",
    [SET_S3_CONNECT_TIMEOUT] = "S3_CONNECT_TIMEOUT",
    [SET_S3_READ_TIMEOUT] = "S3_READ_TIMEOUT",
    [SET_QUEUES] = "CELERY_QUEUES",
    [SET_CONCURRENCY] = "CONCURRENCY",
    [SET_PREFETCH] = "PREFETCH_MULTIPLIER",
    [SET_RETRY_DELAYS] = "RETRY_DELAYS",
    [SET_MAX_RETRIES] = "MAX_RETRIES",
    [SET_SOFT_TIME_LIMIT] = "SOFT_TIME_LIMIT",
    [SET_TIME_LIMIT] = "TIME_LIMIT",
    [SET_HEARTBEAT] = "HEARTBEAT_INTERVAL",
    [SET_BROKER_HEARTBEAT] = "BROKER_HEARTBEAT",
    [SET_BROKER_SSL_CA] = "BROKER_USE_SSL_CA_CERTS",
    [SET_QUEUE_TYPE] = "CELERY_QUEUE_TYPE",
    [SET_EXCHANGE_TYPE] = "CELERY_EXCHANGE_TYPE",
    [SET_RETRY_TRANSPORT] = "RETRY_TRANSPORT",
    [SET_NATIVE_QUEUE_TYPE] = "NATIVE_DELAYED_DELIVERY_QUEUE_TYPE",
    [SET_CONSUMER_TIMEOUT] = "CONSUMER_TIMEOUT",
    [SET_BROKER_SSL_CERT] = "BROKER_USE_SSL_CERTFILE",
    [SET_BROKER_SSL_KEY] = "BROKER_USE_SSL_KEYFILE",
    [SET_VISIBILITY] = "VISIBILITY_TIMEOUT",
    [SET_ORPHAN_TIMEOUT] = "ORPHAN_TIMEOUT",
    [SET_SHUTDOWN_GRACE] = "SHUTDOWN_GRACE",
    [SET_RETRY_JITTER] = "RETRY_JITTER",
    [SET_HTTP] = "CWORKER_HTTP",
    [SET_TASK_EVENTS] = "CELERY_SEND_EVENTS",
    [SET_DEBUG_ENTRY_DELAY] = "CWORKER_DEBUG_ENTRY_DELAY_MS",
    [SET_DEBUG_AFTER_COMMIT_DELAY] = "CWORKER_DEBUG_AFTER_COMMIT_DELAY_MS",
    [SET_LOG_LEVEL] = "LOG_LEVEL",
    [SET_LOG_FORMAT] = "LOG_FORMAT",
    [SET_MIGRATIONS_DIR] = "CWORKER_MIGRATIONS_DIR",
    [SET_NODENAME] = "CWORKER_NODENAME",
    [SET_EXECUTOR_MEMORY_LIMIT] = "EXECUTOR_MEMORY_LIMIT",
    [SET_MAX_RUN_STANZAS] = "MAX_RUN_STANZAS",
};

static int apply_setting(struct cw_config *cfg, enum setting s, const char *name, const char *value,
                         struct cw_error *err)
{
    switch (s) {
    case SET_BROKER:
        if (!mq_conn_url_valid(value)) {
            CW_FAIL(err, CW_ERR_PERMANENT, "%s: not a valid amqp:// or amqps:// URL", name);
            return -1;
        }
        set_string(&cfg->broker_url, value);
        return 0;
    case SET_DATABASE:
        return set_database_url(cfg, name, value, err);
    case SET_STORAGE_BACKEND:
        if (strcmp(value, "local") != 0 && strcmp(value, "s3") != 0) {
            CW_FAIL(err, CW_ERR_PERMANENT, "%s: expected 'local' or 's3', got '%s'", name, value);
            return -1;
        }
        set_string(&cfg->storage_backend, value);
        return 0;
    case SET_STORAGE_PATH:
        set_string(&cfg->storage_path, value);
        return 0;
    case SET_S3_BUCKET:
        set_string(&cfg->s3.bucket, value);
        return 0;
    case SET_S3_ENDPOINT_URL:
        return config_s3_set_endpoint(&cfg->s3, name, value, err);
    case SET_AWS_DEFAULT_REGION:
    case SET_AWS_REGION:
        set_string(&cfg->s3.region, value);
        return 0;
    case SET_S3_ADDRESSING_STYLE:
        return config_s3_set_addressing_style(&cfg->s3, name, value, err);
    case SET_AWS_ACCESS_KEY_ID:
        set_string(&cfg->s3.access_key_id, value);
        return 0;
    case SET_AWS_SECRET_ACCESS_KEY:
        set_string(&cfg->s3.secret_access_key, value);
        return 0;
    case SET_AWS_SESSION_TOKEN:
        set_string(&cfg->s3.session_token, value);
        return 0;
    case SET_AWS_CA_BUNDLE:
        set_string(&cfg->s3.ca_bundle, value);
        return 0;
    case SET_S3_CONNECT_TIMEOUT:
        return parse_int(name, value, 1, 3600, &cfg->s3.connect_timeout, err);
    case SET_S3_READ_TIMEOUT:
        return parse_int(name, value, 1, 3600, &cfg->s3.read_timeout, err);
    case SET_QUEUES:
        return parse_queues(cfg, name, value, err);
    case SET_CONCURRENCY:
        return parse_int(name, value, 1, 256, &cfg->concurrency, err);
    case SET_PREFETCH:
        return parse_int(name, value, 1, 1000, &cfg->prefetch_multiplier, err);
    case SET_RETRY_DELAYS:
        return parse_delays(cfg, name, value, err);
    case SET_MAX_RETRIES:
        return parse_int(name, value, 0, CONFIG_MAX_RETRIES, &cfg->max_retries, err);
    case SET_SOFT_TIME_LIMIT:
        return parse_seconds(name, value, &cfg->soft_time_limit, err);
    case SET_TIME_LIMIT:
        return parse_seconds(name, value, &cfg->time_limit, err);
    case SET_HEARTBEAT:
        return parse_seconds(name, value, &cfg->heartbeat_interval, err);
    case SET_BROKER_HEARTBEAT:
        return parse_int(name, value, 0, 3600, &cfg->broker_heartbeat, err);
    case SET_BROKER_SSL_CA:
        return set_readable_file(&cfg->broker_ssl_ca, name, value, err);
    case SET_CONSUMER_TIMEOUT:
        return parse_seconds(name, value, &cfg->consumer_timeout, err);
    case SET_QUEUE_TYPE:
        return parse_choice(name, value, "classic", "quorum", &cfg->queue_quorum, err);
    case SET_EXCHANGE_TYPE:
        return parse_choice(name, value, "direct", "topic", &cfg->exchange_topic, err);
    case SET_RETRY_TRANSPORT:
        return parse_choice(name, value, "delay-queues", "native", &cfg->retry_native, err);
    case SET_NATIVE_QUEUE_TYPE: {
        bool classic;
        if (parse_choice(name, value, "quorum", "classic", &classic, err) != 0)
            return -1;
        cfg->native_delay_quorum = !classic;
        return 0;
    }
    case SET_BROKER_SSL_CERT:
        return set_readable_file(&cfg->broker_ssl_cert, name, value, err);
    case SET_BROKER_SSL_KEY:
        return set_readable_file(&cfg->broker_ssl_key, name, value, err);
    case SET_VISIBILITY:
        return parse_seconds(name, value, &cfg->visibility_timeout, err);
    case SET_ORPHAN_TIMEOUT:
        return parse_seconds(name, value, &cfg->orphan_timeout, err);
    case SET_SHUTDOWN_GRACE:
        return parse_seconds(name, value, &cfg->shutdown_grace, err);
    case SET_RETRY_JITTER: {
        int percent;
        if (parse_int(name, value, 0, 100, &percent, err) != 0)
            return -1;
        cfg->retry_jitter = percent;
        return 0;
    }
    case SET_HTTP:
        if (!strchr(value, ':')) {
            CW_FAIL(err, CW_ERR_PERMANENT, "%s: expected HOST:PORT or :PORT, got '%s'", name,
                    value);
            return -1;
        }
        set_string(&cfg->http_listen, value);
        return 0;
    case SET_TASK_EVENTS:
        cfg->task_events = !value || strcmp(value, "1") == 0 || strcasecmp(value, "true") == 0 ||
                           strcasecmp(value, "yes") == 0 || strcasecmp(value, "on") == 0;
        return 0;
    case SET_DEBUG_ENTRY_DELAY:
        return parse_int(name, value, 0, 3600000, &cfg->debug_entry_delay_ms, err);
    case SET_DEBUG_AFTER_COMMIT_DELAY:
        return parse_int(name, value, 0, 3600000, &cfg->debug_after_commit_delay_ms, err);
    case SET_EXECUTOR_MEMORY_LIMIT:
        return parse_int(name, value, 0, 1 << 20, &cfg->executor_memory_limit_mb, err);
    case SET_MAX_RUN_STANZAS:
        return parse_int(name, value, 1, 1000000000, &cfg->max_run_stanzas, err);
    case SET_LOG_LEVEL:
        return parse_log_level(cfg, name, value, err);
    case SET_LOG_FORMAT:
        return parse_log_format(cfg, name, value, err);
    case SET_MIGRATIONS_DIR:
        set_string(&cfg->migrations_dir, value);
        return 0;
    case SET_NODENAME:
        set_string(&cfg->nodename, value);
        return 0;
    case SET_COUNT:
        break;
    }
    return 0;
}

static void set_defaults(struct cw_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->storage_backend = cw_xstrdup("local");
    cfg->storage_path = cw_xstrdup("/data/storage");
    cfg->s3.region = cw_xstrdup("us-east-1");
    cfg->s3.connect_timeout = 10;
    cfg->s3.read_timeout = 30;
    cfg->queues[0] = cw_xstrdup("celery");
    cfg->nqueues = 1;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->concurrency = cpus > 0 ? (int)(cpus > 256 ? 256 : cpus) : 1;
    cfg->prefetch_multiplier = 1;
    cfg->retry_delays[0] = 60;
    cfg->retry_delays[1] = 180;
    cfg->retry_delays[2] = 600;
    cfg->nretry_delays = 3;
    cfg->max_retries = 3;
    cfg->soft_time_limit = 3300;
    cfg->time_limit = 3600;
    cfg->heartbeat_interval = 30;
    cfg->executor_memory_limit_mb = 512;
    cfg->max_run_stanzas = 1000000; /* the contract's limit; memory does not depend on it */
    cfg->broker_heartbeat = 30;
    cfg->consumer_timeout = 1800;    /* RabbitMQ's default consumer_timeout */
    cfg->native_delay_quorum = true; /* Celery's broker_native_delayed_delivery_queue_type */
    cfg->visibility_timeout = 300;
    cfg->orphan_timeout = 3600;
    cfg->shutdown_grace = 60;
    cfg->log_level = LOG_LEVEL_INFO;
    cfg->migrations_dir = cw_xstrdup("migrations");
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    char node[300];
    snprintf(node, sizeof node, "cworker@%s", host);
    cfg->nodename = cw_xstrdup(node);
}

static const struct option long_options[] = {
    {"broker", required_argument, NULL, SET_BROKER},
    {"database", required_argument, NULL, SET_DATABASE},
    {"storage-backend", required_argument, NULL, SET_STORAGE_BACKEND},
    {"storage-path", required_argument, NULL, SET_STORAGE_PATH},
    {"s3-bucket", required_argument, NULL, SET_S3_BUCKET},
    {"s3-endpoint-url", required_argument, NULL, SET_S3_ENDPOINT_URL},
    {"s3-addressing-style", required_argument, NULL, SET_S3_ADDRESSING_STYLE},
    {"aws-region", required_argument, NULL, SET_AWS_REGION},
    {"queues", required_argument, NULL, SET_QUEUES},
    {"concurrency", required_argument, NULL, SET_CONCURRENCY},
    {"prefetch-multiplier", required_argument, NULL, SET_PREFETCH},
    {"retry-delays", required_argument, NULL, SET_RETRY_DELAYS},
    {"max-retries", required_argument, NULL, SET_MAX_RETRIES},
    {"soft-time-limit", required_argument, NULL, SET_SOFT_TIME_LIMIT},
    {"time-limit", required_argument, NULL, SET_TIME_LIMIT},
    {"heartbeat-interval", required_argument, NULL, SET_HEARTBEAT},
    {"broker-heartbeat", required_argument, NULL, SET_BROKER_HEARTBEAT},
    {"broker-ssl-ca-certs", required_argument, NULL, SET_BROKER_SSL_CA},
    {"queue-type", required_argument, NULL, SET_QUEUE_TYPE},
    {"exchange-type", required_argument, NULL, SET_EXCHANGE_TYPE},
    {"retry-transport", required_argument, NULL, SET_RETRY_TRANSPORT},
    {"consumer-timeout", required_argument, NULL, SET_CONSUMER_TIMEOUT},
    {"broker-ssl-certfile", required_argument, NULL, SET_BROKER_SSL_CERT},
    {"broker-ssl-keyfile", required_argument, NULL, SET_BROKER_SSL_KEY},
    {"visibility-timeout", required_argument, NULL, SET_VISIBILITY},
    {"orphan-timeout", required_argument, NULL, SET_ORPHAN_TIMEOUT},
    {"shutdown-grace", required_argument, NULL, SET_SHUTDOWN_GRACE},
    {"retry-jitter", required_argument, NULL, SET_RETRY_JITTER},
    {"http", required_argument, NULL, SET_HTTP},
    {"events", no_argument, NULL, SET_TASK_EVENTS},
    {"log-level", required_argument, NULL, SET_LOG_LEVEL},
    {"log-format", required_argument, NULL, SET_LOG_FORMAT},
    {"migrations-dir", required_argument, NULL, SET_MIGRATIONS_DIR},
    {"hostname", required_argument, NULL, SET_NODENAME},
    {NULL, 0, NULL, 0},
};

static bool has_flag(enum setting s)
{
    for (const struct option *o = long_options; o->name; o++)
        if (o->val == (int)s)
            return true;
    return false;
}

void config_print_usage(const char *command)
{
    printf("usage: cworker %s [options]\n\noptions (environment variable in brackets):\n", command);
    for (const struct option *o = long_options; o->name; o++)
        printf("  --%-22s [%s]\n", o->name, env_names[o->val]);
    /* Secrets have no flag on purpose (ps shows a command line to every user). */
    printf("\nenvironment only:\n");
    for (int s = 0; s < SET_COUNT; s++)
        if (!has_flag((enum setting)s) && strncmp(env_names[s], "CWORKER_DEBUG", 13) != 0)
            printf("  %s\n", env_names[s]);
}

/* given[s] is set for each setting a flag names, also abbreviated ("--soft"). */
static int load_flags(struct cw_config *cfg, int argc, char **argv, bool *given,
                      struct cw_error *err)
{
    optind = 1;
    opterr = 0;
    for (;;) {
        int idx = 0;
        int c = getopt_long(argc, argv, "Q:c:n:E", long_options, &idx);
        if (c == -1)
            break;
        const char *flag = c == 'Q'   ? "-Q"
                           : c == 'c' ? "-c"
                           : c == 'n' ? "-n"
                           : c == 'E' ? "-E"
                                      : NULL;
        if (c == 'Q')
            c = SET_QUEUES;
        else if (c == 'c')
            c = SET_CONCURRENCY;
        else if (c == 'n')
            c = SET_NODENAME;
        else if (c == 'E')
            c = SET_TASK_EVENTS;
        if (c == '?' || c == ':' || c < 0 || c >= SET_COUNT) {
            CW_FAIL(err, CW_ERR_PERMANENT, "unknown option or missing value: %s", argv[optind - 1]);
            return -1;
        }
        given[c] = true;
        char name[64];
        snprintf(name, sizeof name, "%s%s", flag ? "" : "--", flag ? flag : long_options[idx].name);
        if (apply_setting(cfg, (enum setting)c, name, optarg, err) != 0)
            return -1;
    }
    if (optind < argc) {
        CW_FAIL(err, CW_ERR_PERMANENT, "unexpected argument: %s", argv[optind]);
        return -1;
    }
    return 0;
}

/* A message may wait in a backlog for up to VISIBILITY_TIMEOUT without being stuck, so an
 * orphan (never started) must wait at least as long before it is published again: a
 * smaller explicit ORPHAN_TIMEOUT is refused, the default follows a larger
 * VISIBILITY_TIMEOUT. */
static int check_orphan_timeout(struct cw_config *cfg, bool given, struct cw_error *err)
{
    if (cfg->orphan_timeout >= cfg->visibility_timeout)
        return 0;
    if (!given) {
        cfg->orphan_timeout = cfg->visibility_timeout;
        return 0;
    }
    CW_FAIL(err, CW_ERR_PERMANENT,
            "ORPHAN_TIMEOUT (%g) is below VISIBILITY_TIMEOUT (%g): a message still waiting "
            "in a backlog would be published twice",
            cfg->orphan_timeout, cfg->visibility_timeout);
    return -1;
}

/* Celery 5.5 sets up native delayed delivery whenever it detects quorum queues, and only a
 * topic (or fanout) exchange can be bound to it; cworker also when its retries use it.
 * Retries through the ladder need a queue bound to it. */
static int check_native_delay(struct cw_config *cfg, struct cw_error *err)
{
    if (cfg->retry_native && !cfg->exchange_topic) {
        CW_FAIL(err, CW_ERR_PERMANENT,
                "RETRY_TRANSPORT=native needs CELERY_EXCHANGE_TYPE=topic: native delayed "
                "delivery cannot reach a queue bound to a direct exchange");
        return -1;
    }
    cfg->native_delay = cfg->exchange_topic && (cfg->queue_quorum || cfg->retry_native);
    for (int q = 0; cfg->native_delay && q < cfg->nqueues; q++)
        if (strlen(cfg->queues[q]) > NATIVE_DELAY_MAX_QUEUE_KEY) {
            CW_FAIL(err, CW_ERR_PERMANENT,
                    "CELERY_QUEUES: queue name %.40s... is longer than %d bytes: a native "
                    "delayed-delivery routing key would exceed AMQP's 255",
                    cfg->queues[q], NATIVE_DELAY_MAX_QUEUE_KEY);
            return -1;
        }
    return 0;
}

int config_load(struct cw_config *cfg, int argc, char **argv, struct cw_error *err)
{
    set_defaults(cfg);
    bool given[SET_COUNT] = {false};
    for (int s = 0; s < SET_COUNT; s++) {
        const char *value = getenv(env_names[s]);
        if (value && *value && apply_setting(cfg, (enum setting)s, env_names[s], value, err) != 0)
            return -1;
        given[s] = value && *value;
    }
    if (load_flags(cfg, argc, argv, given, err) != 0)
        return -1;
    if (check_orphan_timeout(cfg, given[SET_ORPHAN_TIMEOUT], err) != 0 ||
        check_native_delay(cfg, err) != 0)
        return -1;
    /* The soft limit only has a default; a hard limit set below it pulls it down. */
    bool soft_given = given[SET_SOFT_TIME_LIMIT];
    if (!soft_given && cfg->soft_time_limit > cfg->time_limit)
        cfg->soft_time_limit = cfg->time_limit;
    if (cfg->soft_time_limit > cfg->time_limit) {
        CW_FAIL(err, CW_ERR_PERMANENT, "SOFT_TIME_LIMIT (%g) exceeds TIME_LIMIT (%g)",
                cfg->soft_time_limit, cfg->time_limit);
        return -1;
    }
    if (strcmp(cfg->storage_backend, "s3") == 0)
        return config_s3_check(&cfg->s3, err);
    return 0;
}

void config_free(struct cw_config *cfg)
{
    free(cfg->broker_url);
    free(cfg->database_url);
    free(cfg->storage_backend);
    free(cfg->storage_path);
    config_s3_free(&cfg->s3);
    for (int i = 0; i < cfg->nqueues; i++)
        free(cfg->queues[i]);
    free(cfg->migrations_dir);
    free(cfg->nodename);
    free(cfg->http_listen);
    free(cfg->broker_ssl_ca);
    free(cfg->broker_ssl_cert);
    free(cfg->broker_ssl_key);
    memset(cfg, 0, sizeof *cfg);
}
