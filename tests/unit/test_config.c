/* Unit tests for config_load: the defaults, every environment variable, flags overriding
 * the environment, and bad values refused with an error that names the variable or flag. */
#include "base/config.h"
#include "base/log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static const char *const variables[] = {
    "CELERY_BROKER_URL",
    "DATABASE_URL",
    "STORAGE_BACKEND",
    "STORAGE_PATH",
    "CELERY_QUEUES",
    "CONCURRENCY",
    "PREFETCH_MULTIPLIER",
    "RETRY_DELAYS",
    "MAX_RETRIES",
    "SOFT_TIME_LIMIT",
    "TIME_LIMIT",
    "HEARTBEAT_INTERVAL",
    "VISIBILITY_TIMEOUT",
    "SHUTDOWN_GRACE",
    "RETRY_JITTER",
    "CWORKER_HTTP",
    "CELERY_SEND_EVENTS",
    "CWORKER_DEBUG_ENTRY_DELAY_MS",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "CWORKER_MIGRATIONS_DIR",
    "CWORKER_NODENAME",
    "ORPHAN_TIMEOUT",
    "CELERY_QUEUE_TYPE",
    "CELERY_EXCHANGE_TYPE",
    "RETRY_TRANSPORT",
    "NATIVE_DELAYED_DELIVERY_QUEUE_TYPE",
};

/* Every test starts from an environment without any of the worker's variables. */
static int clear_environment(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof variables / sizeof variables[0]; i++)
        unsetenv(variables[i]);
    return 0;
}

/* config_load with "run" and the given flags (NULL-terminated); argv is copied because
 * getopt_long permutes it. */
static int load(struct cw_config *cfg, struct cw_error *err, ...)
{
    char *argv[64] = {"run"};
    int argc = 1;
    va_list ap;
    va_start(ap, err);
    for (const char *a = va_arg(ap, const char *); a && argc < 63; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    return config_load(cfg, argc, argv, err);
}

static void assert_loads(struct cw_config *cfg)
{
    struct cw_error err;
    int rc = load(cfg, &err, NULL);
    if (rc != 0)
        fail_msg("config_load failed: %s", err.message);
}

/* The variable alone set to value is refused with exactly `message`. */
static void assert_env_refused(const char *name, const char *value, const char *message)
{
    struct cw_config cfg;
    struct cw_error err;
    setenv(name, value, 1);
    if (load(&cfg, &err, NULL) == 0)
        fail_msg("%s=%s was accepted", name, value);
    assert_int_equal(err.cls, CW_ERR_PERMANENT);
    assert_string_equal(err.message, message);
    config_free(&cfg);
    unsetenv(name);
}

/* Native delayed delivery: declared when Celery 5.5 would use it (topic exchange and
 * quorum queues) or when the retries travel it; native retries need a topic exchange. */
static void test_native_delayed_delivery_settings(void **state)
{
    (void)state;
    struct cw_config cfg;
    assert_loads(&cfg);
    assert_false(cfg.exchange_topic || cfg.retry_native || cfg.native_delay);
    assert_true(cfg.native_delay_quorum);
    config_free(&cfg);

    setenv("CELERY_QUEUE_TYPE", "quorum", 1);
    assert_loads(&cfg);
    assert_false(cfg.native_delay); /* a direct exchange cannot be bound to it */
    config_free(&cfg);
    setenv("CELERY_EXCHANGE_TYPE", "topic", 1);
    setenv("NATIVE_DELAYED_DELIVERY_QUEUE_TYPE", "classic", 1);
    assert_loads(&cfg);
    assert_true(cfg.native_delay && cfg.exchange_topic && !cfg.retry_native);
    assert_false(cfg.native_delay_quorum);
    config_free(&cfg);
    unsetenv("CELERY_QUEUE_TYPE");
    unsetenv("NATIVE_DELAYED_DELIVERY_QUEUE_TYPE");
    assert_loads(&cfg);
    assert_false(cfg.native_delay); /* classic queues, delay-queue retries: nothing uses it */
    config_free(&cfg);
    setenv("RETRY_TRANSPORT", "native", 1);
    assert_loads(&cfg);
    assert_true(cfg.native_delay && cfg.retry_native);
    config_free(&cfg);

    unsetenv("CELERY_EXCHANGE_TYPE");
    assert_env_refused("RETRY_TRANSPORT", "native",
                       "RETRY_TRANSPORT=native needs CELERY_EXCHANGE_TYPE=topic: native delayed "
                       "delivery cannot reach a queue bound to a direct exchange");
    assert_env_refused("RETRY_TRANSPORT", "ladder",
                       "RETRY_TRANSPORT: expected 'delay-queues' or 'native', got 'ladder'");
    assert_env_refused("CELERY_EXCHANGE_TYPE", "fanout",
                       "CELERY_EXCHANGE_TYPE: expected 'direct' or 'topic', got 'fanout'");
}

static void test_defaults(void **state)
{
    (void)state;
    struct cw_config cfg;
    char host[256] = "localhost", node[300];
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    assert_loads(&cfg);
    assert_null(cfg.broker_url);
    assert_null(cfg.database_url);
    assert_string_equal(cfg.storage_backend, "local");
    assert_string_equal(cfg.storage_path, "/data/storage");
    assert_int_equal(cfg.nqueues, 1);
    assert_string_equal(cfg.queues[0], "celery");
    assert_int_equal(cfg.concurrency, cpus > 256 ? 256 : cpus);
    assert_int_equal(cfg.prefetch_multiplier, 1);
    assert_int_equal(cfg.nretry_delays, 3);
    assert_true(cfg.retry_delays[0] == 60 && cfg.retry_delays[1] == 180 &&
                cfg.retry_delays[2] == 600);
    assert_int_equal(cfg.max_retries, 3);
    assert_true(cfg.soft_time_limit == 3300);
    assert_true(cfg.time_limit == 3600);
    assert_true(cfg.heartbeat_interval == 30);
    assert_true(cfg.visibility_timeout == 300);
    assert_true(cfg.shutdown_grace == 60);
    assert_true(cfg.retry_jitter == 0);
    assert_int_equal(cfg.debug_entry_delay_ms, 0);
    assert_null(cfg.http_listen);
    assert_false(cfg.task_events);
    assert_int_equal(cfg.log_level, LOG_LEVEL_INFO);
    assert_false(cfg.log_json);
    assert_string_equal(cfg.migrations_dir, "migrations");
    gethostname(host, sizeof host - 1);
    snprintf(node, sizeof node, "cworker@%s", host);
    assert_string_equal(cfg.nodename, node);
    config_free(&cfg);
}

static void test_every_variable(void **state)
{
    (void)state;
    struct cw_config cfg;
    setenv("CELERY_BROKER_URL", "amqp://u:p@mq:5682//", 1);
    setenv("DATABASE_URL", "postgresql://u:p@db:5442/ingest", 1);
    setenv("STORAGE_BACKEND", "local", 1);
    setenv("STORAGE_PATH", "/srv/uploads", 1);
    setenv("CELERY_QUEUES", " ingest , bulk,,", 1);
    setenv("CONCURRENCY", "7", 1);
    setenv("PREFETCH_MULTIPLIER", "4", 1);
    setenv("RETRY_DELAYS", "1.5,2,30", 1);
    setenv("MAX_RETRIES", "5", 1);
    setenv("SOFT_TIME_LIMIT", "100", 1);
    setenv("TIME_LIMIT", "120", 1);
    setenv("HEARTBEAT_INTERVAL", "0.5", 1);
    setenv("VISIBILITY_TIMEOUT", "90", 1);
    setenv("SHUTDOWN_GRACE", "12", 1);
    setenv("RETRY_JITTER", "25", 1);
    setenv("CWORKER_HTTP", "127.0.0.1:9808", 1);
    setenv("CELERY_SEND_EVENTS", "yes", 1);
    setenv("CWORKER_DEBUG_ENTRY_DELAY_MS", "3", 1);
    setenv("LOG_LEVEL", "WARN", 1);
    setenv("LOG_FORMAT", "json", 1);
    setenv("CWORKER_MIGRATIONS_DIR", "/opt/m", 1);
    setenv("CWORKER_NODENAME", "w1@box", 1);
    assert_loads(&cfg);
    assert_string_equal(cfg.broker_url, "amqp://u:p@mq:5682//");
    assert_string_equal(cfg.database_url, "postgresql://u:p@db:5442/ingest");
    assert_string_equal(cfg.storage_backend, "local");
    assert_string_equal(cfg.storage_path, "/srv/uploads");
    assert_int_equal(cfg.nqueues, 2);
    assert_string_equal(cfg.queues[0], "ingest");
    assert_string_equal(cfg.queues[1], "bulk");
    assert_int_equal(cfg.concurrency, 7);
    assert_int_equal(cfg.prefetch_multiplier, 4);
    assert_int_equal(cfg.nretry_delays, 3);
    assert_true(cfg.retry_delays[0] == 1.5 && cfg.retry_delays[1] == 2 &&
                cfg.retry_delays[2] == 30);
    assert_int_equal(cfg.max_retries, 5);
    assert_true(cfg.soft_time_limit == 100);
    assert_true(cfg.time_limit == 120);
    assert_true(cfg.heartbeat_interval == 0.5);
    assert_true(cfg.visibility_timeout == 90);
    assert_true(cfg.shutdown_grace == 12);
    assert_true(cfg.retry_jitter == 25);
    assert_string_equal(cfg.http_listen, "127.0.0.1:9808");
    assert_true(cfg.task_events);
    assert_int_equal(cfg.debug_entry_delay_ms, 3);
    assert_int_equal(cfg.log_level, LOG_LEVEL_WARNING);
    assert_true(cfg.log_json);
    assert_string_equal(cfg.migrations_dir, "/opt/m");
    assert_string_equal(cfg.nodename, "w1@box");
    config_free(&cfg);
}

static void test_empty_variable_is_unset(void **state)
{
    (void)state;
    struct cw_config cfg;
    setenv("CONCURRENCY", "", 1);
    setenv("CELERY_BROKER_URL", "", 1);
    assert_loads(&cfg);
    assert_null(cfg.broker_url);
    assert_true(cfg.concurrency >= 1);
    config_free(&cfg);
}

static void test_send_events_values(void **state)
{
    (void)state;
    static const char *const on[] = {"1", "true", "TRUE", "yes", "On"};
    static const char *const off[] = {"0", "false", "no", "off", "2"};
    struct cw_config cfg;
    for (size_t i = 0; i < 5; i++) {
        setenv("CELERY_SEND_EVENTS", on[i], 1);
        assert_loads(&cfg);
        assert_true(cfg.task_events);
        config_free(&cfg);
        setenv("CELERY_SEND_EVENTS", off[i], 1);
        assert_loads(&cfg);
        assert_false(cfg.task_events);
        config_free(&cfg);
    }
}

static void test_flags_override_environment(void **state)
{
    (void)state;
    struct cw_config cfg;
    struct cw_error err;
    setenv("CELERY_BROKER_URL", "amqp://env-host//", 1);
    setenv("CONCURRENCY", "2", 1);
    setenv("CELERY_QUEUES", "from_env", 1);
    setenv("LOG_FORMAT", "json", 1);
    setenv("CWORKER_NODENAME", "env@box", 1);
    assert_int_equal(load(&cfg, &err, "--broker", "amqps://flag-host:5671/vh", "-c", "9", "-Q",
                          "a,b", "--log-format=text", "-n", "flag@box", "-E", "--retry-delays", "5",
                          "--max-retries", "1", "--http", ":9000", "--storage-path", "/s",
                          "--database", "postgresql:///db", "--prefetch-multiplier", "3",
                          "--heartbeat-interval", "10", "--visibility-timeout", "20",
                          "--shutdown-grace", "1", "--retry-jitter", "5", "--log-level", "debug",
                          "--migrations-dir", "/m", NULL),
                     0);
    assert_string_equal(cfg.broker_url, "amqps://flag-host:5671/vh");
    assert_int_equal(cfg.concurrency, 9);
    assert_int_equal(cfg.nqueues, 2);
    assert_string_equal(cfg.queues[0], "a");
    assert_string_equal(cfg.queues[1], "b");
    assert_false(cfg.log_json);
    assert_string_equal(cfg.nodename, "flag@box");
    assert_true(cfg.task_events);
    assert_int_equal(cfg.nretry_delays, 1);
    assert_true(cfg.retry_delays[0] == 5);
    assert_int_equal(cfg.max_retries, 1);
    assert_string_equal(cfg.http_listen, ":9000");
    assert_string_equal(cfg.storage_path, "/s");
    assert_string_equal(cfg.database_url, "postgresql:///db");
    assert_int_equal(cfg.prefetch_multiplier, 3);
    assert_true(cfg.heartbeat_interval == 10);
    assert_true(cfg.visibility_timeout == 20);
    assert_true(cfg.shutdown_grace == 1);
    assert_true(cfg.retry_jitter == 5);
    assert_int_equal(cfg.log_level, LOG_LEVEL_DEBUG);
    assert_string_equal(cfg.migrations_dir, "/m");
    config_free(&cfg);
    assert_int_equal(load(&cfg, &err, "--concurrency", "4", "--queues", "q", "--hostname", "h@x",
                          "--events", NULL),
                     0);
    assert_int_equal(cfg.concurrency, 4);
    assert_string_equal(cfg.queues[0], "q");
    assert_string_equal(cfg.nodename, "h@x");
    assert_true(cfg.task_events);
    config_free(&cfg);
}

static void test_sqlalchemy_driver_is_dropped(void **state)
{
    (void)state;
    struct cw_config cfg;
    setenv("DATABASE_URL", "postgresql+psycopg2://app:secret@db:5432/ingest?sslmode=disable", 1);
    assert_loads(&cfg);
    assert_string_equal(cfg.database_url, "postgresql://app:secret@db:5432/ingest?sslmode=disable");
    config_free(&cfg);
    setenv("DATABASE_URL", "postgres://db/x", 1);
    assert_loads(&cfg);
    assert_string_equal(cfg.database_url, "postgres://db/x");
    config_free(&cfg);
}

static void test_bad_environment_values(void **state)
{
    (void)state;
    assert_env_refused("CELERY_BROKER_URL", "redis://localhost:6379/0",
                       "CELERY_BROKER_URL: not a valid amqp:// or amqps:// URL");
    assert_env_refused("CELERY_BROKER_URL", "amqp://host:notaport//",
                       "CELERY_BROKER_URL: not a valid amqp:// or amqps:// URL");
    assert_env_refused("DATABASE_URL", "mysql+pymysql://u@h/db",
                       "DATABASE_URL: not a valid PostgreSQL URL (the scheme is not "
                       "postgresql:// or postgres://)");
    assert_env_refused("DATABASE_URL", "postgresql://h/db?nosuch=1",
                       "DATABASE_URL: not a valid PostgreSQL URL (invalid URI query parameter: "
                       "\"***\" (in the query parameters))");
    assert_env_refused("STORAGE_BACKEND", "gcs",
                       "STORAGE_BACKEND: expected 'local' or 's3', got 'gcs'");
    assert_env_refused("CONCURRENCY", "-1",
                       "CONCURRENCY: expected an integer from 1 to 256, got '-1'");
    assert_env_refused("CONCURRENCY", "0",
                       "CONCURRENCY: expected an integer from 1 to 256, got '0'");
    assert_env_refused("CONCURRENCY", "257",
                       "CONCURRENCY: expected an integer from 1 to 256, got '257'");
    assert_env_refused("CONCURRENCY", "4x",
                       "CONCURRENCY: expected an integer from 1 to 256, got '4x'");
    assert_env_refused(
        "CONCURRENCY", "99999999999999999999",
        "CONCURRENCY: expected an integer from 1 to 256, got '99999999999999999999'");
    assert_env_refused("PREFETCH_MULTIPLIER", "0",
                       "PREFETCH_MULTIPLIER: expected an integer from 1 to 1000, got '0'");
    assert_env_refused("MAX_RETRIES", "17",
                       "MAX_RETRIES: expected an integer from 0 to 16, got '17'");
    assert_env_refused("RETRY_DELAYS", "60,-1",
                       "RETRY_DELAYS: expected a positive number of seconds, got '-1'");
    assert_env_refused("RETRY_DELAYS", ",,", "RETRY_DELAYS: no delay given");
    assert_env_refused("RETRY_DELAYS", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17",
                       "RETRY_DELAYS: at most 16 delays");
    assert_env_refused("SOFT_TIME_LIMIT", "0",
                       "SOFT_TIME_LIMIT: expected a positive number of seconds, got '0'");
    assert_env_refused("TIME_LIMIT", "nan",
                       "TIME_LIMIT: expected a positive number of seconds, got 'nan'");
    assert_env_refused("HEARTBEAT_INTERVAL", "inf",
                       "HEARTBEAT_INTERVAL: expected a positive number of seconds, got 'inf'");
    assert_env_refused("VISIBILITY_TIMEOUT", "1e9",
                       "VISIBILITY_TIMEOUT: expected a positive number of seconds, got '1e9'");
    assert_env_refused("SHUTDOWN_GRACE", "soon",
                       "SHUTDOWN_GRACE: expected a positive number of seconds, got 'soon'");
    assert_env_refused("RETRY_JITTER", "101",
                       "RETRY_JITTER: expected an integer from 0 to 100, got '101'");
    assert_env_refused("CWORKER_HTTP", "9808",
                       "CWORKER_HTTP: expected HOST:PORT or :PORT, got '9808'");
    assert_env_refused(
        "CWORKER_DEBUG_ENTRY_DELAY_MS", "-3",
        "CWORKER_DEBUG_ENTRY_DELAY_MS: expected an integer from 0 to 3600000, got '-3'");
    assert_env_refused("LOG_LEVEL", "verbose",
                       "LOG_LEVEL: expected debug, info, warning or error, got 'verbose'");
    assert_env_refused("LOG_FORMAT", "xml", "LOG_FORMAT: expected 'text' or 'json', got 'xml'");
    assert_env_refused("CELERY_QUEUES", " , ", "CELERY_QUEUES: no queue named");
    assert_env_refused("CELERY_QUEUES", "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q",
                       "CELERY_QUEUES: at most 16 queues of at most 200 characters");
}

/* The flag, not the variable, is named when the flag's value is bad. */
static void test_bad_flag_values(void **state)
{
    (void)state;
    struct cw_config cfg;
    struct cw_error err;
    assert_int_equal(load(&cfg, &err, "-c", "-2", NULL), -1);
    assert_string_equal(err.message, "-c: expected an integer from 1 to 256, got '-2'");
    config_free(&cfg);
    assert_int_equal(load(&cfg, &err, "--concurrency=0", NULL), -1);
    assert_string_equal(err.message, "--concurrency: expected an integer from 1 to 256, got '0'");
    config_free(&cfg);
    assert_int_equal(load(&cfg, &err, "--broker", "http://x", NULL), -1);
    assert_string_equal(err.message, "--broker: not a valid amqp:// or amqps:// URL");
    config_free(&cfg);
    assert_int_equal(load(&cfg, &err, "--bogus", NULL), -1);
    assert_string_equal(err.message, "unknown option or missing value: --bogus");
    config_free(&cfg);
    assert_int_equal(load(&cfg, &err, "--time-limit", NULL), -1);
    assert_string_equal(err.message, "unknown option or missing value: --time-limit");
    config_free(&cfg);
    assert_int_equal(load(&cfg, &err, "extra", NULL), -1);
    assert_string_equal(err.message, "unexpected argument: extra");
    config_free(&cfg);
}

static void test_time_limits(void **state)
{
    (void)state;
    struct cw_config cfg;
    struct cw_error err;
    /* a hard limit below the default soft limit lowers the soft one */
    setenv("TIME_LIMIT", "600", 1);
    assert_loads(&cfg);
    assert_true(cfg.time_limit == 600);
    assert_true(cfg.soft_time_limit == 600);
    config_free(&cfg);
    /* ... but a soft limit given above the hard one is refused */
    setenv("SOFT_TIME_LIMIT", "700", 1);
    assert_int_equal(load(&cfg, &err, NULL), -1);
    assert_string_equal(err.message, "SOFT_TIME_LIMIT (700) exceeds TIME_LIMIT (600)");
    config_free(&cfg);
    unsetenv("SOFT_TIME_LIMIT");
    assert_int_equal(load(&cfg, &err, "--soft-time-limit", "4000", NULL), -1);
    assert_string_equal(err.message, "SOFT_TIME_LIMIT (4000) exceeds TIME_LIMIT (600)");
    config_free(&cfg);
    /* getopt_long takes an abbreviated flag: it is a given soft limit all the same */
    assert_int_equal(load(&cfg, &err, "--soft", "4000", NULL), -1);
    assert_string_equal(err.message, "SOFT_TIME_LIMIT (4000) exceeds TIME_LIMIT (600)");
    config_free(&cfg);
    /* equal limits and a flag-given hard limit are fine */
    unsetenv("TIME_LIMIT");
    assert_int_equal(load(&cfg, &err, "--time-limit", "50", "--soft-time-limit", "50", NULL), 0);
    assert_true(cfg.soft_time_limit == 50 && cfg.time_limit == 50);
    config_free(&cfg);
    assert_int_equal(load(&cfg, &err, "--time-limit", "50", NULL), 0);
    assert_true(cfg.soft_time_limit == 50 && cfg.time_limit == 50);
    config_free(&cfg);
}

static void test_orphan_timeout(void **state)
{
    (void)state;
    struct cw_config cfg;
    struct cw_error err;
    assert_loads(&cfg);
    assert_true(cfg.orphan_timeout == 3600);
    config_free(&cfg);
    /* a VISIBILITY_TIMEOUT above the default raises the default ORPHAN_TIMEOUT to it */
    setenv("VISIBILITY_TIMEOUT", "7200", 1);
    assert_loads(&cfg);
    assert_true(cfg.orphan_timeout == 7200);
    config_free(&cfg);
    /* ... but a smaller explicit ORPHAN_TIMEOUT is refused, naming both */
    setenv("ORPHAN_TIMEOUT", "3600", 1);
    assert_int_equal(load(&cfg, &err, NULL), -1);
    assert_int_equal(err.cls, CW_ERR_PERMANENT);
    assert_string_equal(err.message, "ORPHAN_TIMEOUT (3600) is below VISIBILITY_TIMEOUT (7200): a "
                                     "message still waiting in a backlog would be published twice");
    config_free(&cfg);
    unsetenv("ORPHAN_TIMEOUT");
    assert_int_equal(load(&cfg, &err, "--orphan-timeout", "10", NULL), -1);
    assert_non_null(strstr(err.message, "ORPHAN_TIMEOUT (10) is below VISIBILITY_TIMEOUT (7200)"));
    config_free(&cfg);
    /* equal is fine, and so is a larger one */
    assert_int_equal(load(&cfg, &err, "--orphan-timeout", "7200", NULL), 0);
    assert_true(cfg.orphan_timeout == 7200);
    config_free(&cfg);
    unsetenv("VISIBILITY_TIMEOUT");
    setenv("ORPHAN_TIMEOUT", "2.5", 1);
    assert_int_equal(load(&cfg, &err, "--visibility-timeout", "1", NULL), 0);
    assert_true(cfg.orphan_timeout == 2.5 && cfg.visibility_timeout == 1);
    config_free(&cfg);
    assert_env_refused("ORPHAN_TIMEOUT", "0",
                       "ORPHAN_TIMEOUT: expected a positive number of seconds, got '0'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, clear_environment),
        cmocka_unit_test_setup(test_native_delayed_delivery_settings, clear_environment),
        cmocka_unit_test_setup(test_every_variable, clear_environment),
        cmocka_unit_test_setup(test_empty_variable_is_unset, clear_environment),
        cmocka_unit_test_setup(test_send_events_values, clear_environment),
        cmocka_unit_test_setup(test_flags_override_environment, clear_environment),
        cmocka_unit_test_setup(test_sqlalchemy_driver_is_dropped, clear_environment),
        cmocka_unit_test_setup(test_bad_environment_values, clear_environment),
        cmocka_unit_test_setup(test_bad_flag_values, clear_environment),
        cmocka_unit_test_setup(test_time_limits, clear_environment),
        cmocka_unit_test_setup(test_orphan_timeout, clear_environment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
