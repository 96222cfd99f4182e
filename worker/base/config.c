/* Configuration from environment variables and command-line flags. */
#include "base/config.h"
#include "mq/conn.h"
#include "base/log.h"
#include "base/xalloc.h"
#include "db/pg.h"

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

/* One setting, whether it came from the environment (name = variable) or a flag. */
enum setting {
    SET_BROKER,
    SET_DATABASE,
    SET_STORAGE_BACKEND,
    SET_STORAGE_PATH,
    SET_QUEUES,
    SET_CONCURRENCY,
    SET_PREFETCH,
    SET_RETRY_DELAYS,
    SET_MAX_RETRIES,
    SET_SOFT_TIME_LIMIT,
    SET_TIME_LIMIT,
    SET_HEARTBEAT,
    SET_BROKER_HEARTBEAT,
    SET_VISIBILITY,
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
    SET_COUNT
};

/* Designated initializers keep each variable next to its setting. */
static const char *const env_names[SET_COUNT] = {
    [SET_BROKER] = "CELERY_BROKER_URL",
    [SET_DATABASE] = "DATABASE_URL",
    [SET_STORAGE_BACKEND] = "STORAGE_BACKEND",
    [SET_STORAGE_PATH] = "STORAGE_PATH",
    [SET_QUEUES] = "CELERY_QUEUES",
    [SET_CONCURRENCY] = "CONCURRENCY",
    [SET_PREFETCH] = "PREFETCH_MULTIPLIER",
    [SET_RETRY_DELAYS] = "RETRY_DELAYS",
    [SET_MAX_RETRIES] = "MAX_RETRIES",
    [SET_SOFT_TIME_LIMIT] = "SOFT_TIME_LIMIT",
    [SET_TIME_LIMIT] = "TIME_LIMIT",
    [SET_HEARTBEAT] = "HEARTBEAT_INTERVAL",
    [SET_BROKER_HEARTBEAT] = "BROKER_HEARTBEAT",
    [SET_VISIBILITY] = "VISIBILITY_TIMEOUT",
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
        if (strcmp(value, "local") != 0) {
            CW_FAIL(err, CW_ERR_PERMANENT, "%s: only 'local' is supported, got '%s'", name, value);
            return -1;
        }
        set_string(&cfg->storage_backend, value);
        return 0;
    case SET_STORAGE_PATH:
        set_string(&cfg->storage_path, value);
        return 0;
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
    case SET_VISIBILITY:
        return parse_seconds(name, value, &cfg->visibility_timeout, err);
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
    cfg->broker_heartbeat = 30;
    cfg->visibility_timeout = 300;
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
    {"storage-path", required_argument, NULL, SET_STORAGE_PATH},
    {"queues", required_argument, NULL, SET_QUEUES},
    {"concurrency", required_argument, NULL, SET_CONCURRENCY},
    {"prefetch-multiplier", required_argument, NULL, SET_PREFETCH},
    {"retry-delays", required_argument, NULL, SET_RETRY_DELAYS},
    {"max-retries", required_argument, NULL, SET_MAX_RETRIES},
    {"soft-time-limit", required_argument, NULL, SET_SOFT_TIME_LIMIT},
    {"time-limit", required_argument, NULL, SET_TIME_LIMIT},
    {"heartbeat-interval", required_argument, NULL, SET_HEARTBEAT},
    {"broker-heartbeat", required_argument, NULL, SET_BROKER_HEARTBEAT},
    {"visibility-timeout", required_argument, NULL, SET_VISIBILITY},
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

void config_print_usage(const char *command)
{
    printf("usage: cworker %s [options]\n\noptions (environment variable in brackets):\n", command);
    for (const struct option *o = long_options; o->name; o++)
        printf("  --%-22s [%s]\n", o->name, env_names[o->val]);
}

/* *soft_given is set when a flag names the soft limit, also abbreviated ("--soft"). */
static int load_flags(struct cw_config *cfg, int argc, char **argv, bool *soft_given,
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
        *soft_given |= c == SET_SOFT_TIME_LIMIT;
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

int config_load(struct cw_config *cfg, int argc, char **argv, struct cw_error *err)
{
    set_defaults(cfg);
    for (int s = 0; s < SET_COUNT; s++) {
        const char *value = getenv(env_names[s]);
        if (value && *value && apply_setting(cfg, (enum setting)s, env_names[s], value, err) != 0)
            return -1;
    }
    /* The soft limit only has a default; a hard limit set below it pulls it down. */
    bool soft_given = getenv("SOFT_TIME_LIMIT") && *getenv("SOFT_TIME_LIMIT");
    if (load_flags(cfg, argc, argv, &soft_given, err) != 0)
        return -1;
    if (!soft_given && cfg->soft_time_limit > cfg->time_limit)
        cfg->soft_time_limit = cfg->time_limit;
    if (cfg->soft_time_limit > cfg->time_limit) {
        CW_FAIL(err, CW_ERR_PERMANENT, "SOFT_TIME_LIMIT (%g) exceeds TIME_LIMIT (%g)",
                cfg->soft_time_limit, cfg->time_limit);
        return -1;
    }
    return 0;
}

void config_free(struct cw_config *cfg)
{
    free(cfg->broker_url);
    free(cfg->database_url);
    free(cfg->storage_backend);
    free(cfg->storage_path);
    for (int i = 0; i < cfg->nqueues; i++)
        free(cfg->queues[i]);
    free(cfg->migrations_dir);
    free(cfg->nodename);
    free(cfg->http_listen);
    memset(cfg, 0, sizeof *cfg);
}
