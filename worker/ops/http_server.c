/* The HTTP listener process: libmicrohttpd serves from its own threads while the main
 * thread keeps the supervisor's latest snapshot. Handlers read the snapshot under a
 * mutex and share one PostgreSQL connection under another. */
#include "ops/http_server.h"
#include "executor/channel.h"
#include "base/clock.h"
#include "base/log.h"
#include "ops/cluster_watch.h"
#include "ops/dashboard_data.h"
#include "ops/dashboard_http.h"
#include "ops/http_respond.h"
#include "ops/prometheus.h"
#include "db/pg.h"
#include "db/run_status.h"
#include "base/strbuf.h"

#include <libpq-fe.h>
#include <microhttpd.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SNAPSHOT_MAX_AGE   10.0 /* s: older means the supervisor stopped talking to us */
#define DB_RETRY_INTERVAL  1.0  /* s between connection attempts while the database is down */
#define DB_CONNECT_TIMEOUT "5"  /* s, unless DATABASE_URL says otherwise */
#define DB_STATEMENT_LIMIT "SET statement_timeout = '5s'"
#define RUNS_PREFIX        "/v1/worker/runs/"
#define STATUS_SUFFIX      "/status"
#define PAGE_RUNS_PREFIX   "/runs/"
#define HTTP_THREADS       4 /* libmicrohttpd's polling threads */

struct http_state {
    const struct cw_config *cfg;
    bool loopback;                        /* bound to a loopback address only (dashboard_admin.h) */
    pthread_mutex_t snapshot_lock;        /* guards snapshot and snapshot_at */
    json_object *snapshot;                /* owned; NULL until the first one arrives */
    double snapshot_at;                   /* monotonic time of its arrival */
    pthread_mutex_t db_lock;              /* guards everything below: one query at a time */
    PGconn *conn;                         /* owned; NULL while disconnected */
    double db_retry_at;                   /* monotonic: no new attempt before this */
    char db_error[256];                   /* why the last attempt or check failed */
    struct dashboard_queues_cache queues; /* its own lock */
    struct cluster_watch cluster;         /* the workers on the broker (its own lock) */
};

enum endpoint {
    EP_NONE,
    EP_HEALTHZ,
    EP_METRICS,
    EP_RUN_STATUS,
    EP_WORKER_METRICS,
    EP_PAGE,
    EP_DASHBOARD,
    EP_QUEUES,
    EP_CLUSTER,
    EP_DLQ_REPLAY
};

/* ---- the database connection ---- */

/* Connects when not connected (at most once per DB_RETRY_INTERVAL). Call with db_lock. */
static PGconn *db_get(struct http_state *st)
{
    if (st->conn && PQstatus(st->conn) == CONNECTION_OK)
        return st->conn;
    if (st->conn) {
        PQfinish(st->conn);
        st->conn = NULL;
    }
    double now = clock_monotonic();
    if (now < st->db_retry_at)
        return NULL;
    st->db_retry_at = now + DB_RETRY_INTERVAL;
    struct cw_error err;
    PGconn *conn =
        pg_connect_timeout(st->cfg->database_url, PG_ROLE_HTTP, DB_CONNECT_TIMEOUT, &err);
    if (!conn) {
        /* one line already (db/pg.h), and cut to fit */
        snprintf(st->db_error, sizeof st->db_error, "%.*s", (int)sizeof st->db_error - 1,
                 err.message);
        return NULL;
    }
    /* A stuck query must not hold every later request behind db_lock. */
    PQclear(PQexec(conn, DB_STATEMENT_LIMIT));
    st->conn = conn;
    return conn;
}

typedef int (*db_fn)(PGconn *conn, void *ctx, struct cw_error *err);

/* Runs fn under db_lock; once more on a fresh connection when the connection turned out
 * dead (PostgreSQL restarted since the last request), so one request notices recovery. */
static int with_db(struct http_state *st, db_fn fn, void *ctx, struct cw_error *err)
{
    int rc = -1;
    pthread_mutex_lock(&st->db_lock);
    for (int attempt = 0; attempt < 2; attempt++) {
        PGconn *conn = db_get(st);
        if (!conn) {
            CW_FAIL(err, CW_ERR_TRANSIENT, "%s", st->db_error);
            break;
        }
        rc = fn(conn, ctx, err);
        if (rc == 0 || PQstatus(conn) == CONNECTION_OK)
            break;
        st->db_retry_at = 0;
    }
    pthread_mutex_unlock(&st->db_lock);
    return rc;
}

static int select_one(PGconn *conn, void *ctx, struct cw_error *err)
{
    (void)ctx;
    PGresult *res = PQexec(conn, "SELECT 1");
    int rc = PQresultStatus(res) == PGRES_TUPLES_OK ? 0 : -1;
    if (rc != 0) {
        char detail[CW_ERROR_DETAIL_MAX];
        snprintf(detail, sizeof detail, "%s", PQerrorMessage(conn));
        detail[strcspn(detail, "\n")] = '\0';
        CW_FAIL(err, CW_ERR_TRANSIENT, "SELECT 1 failed: %s", detail);
    }
    PQclear(res);
    return rc;
}

/* A run's status (run_id > 0) or the worker metrics (run_id 0) into *out. */
struct run_query {
    long run_id;
    json_object *out;
};

static int query_run_json(PGconn *conn, void *ctx, struct cw_error *err)
{
    struct run_query *q = ctx;
    return q->run_id ? run_status_get(conn, q->run_id, &q->out, err)
                     : run_status_metrics(conn, &q->out, err);
}

/* ---- endpoints ---- */

/* A copy of a value of the snapshot, for an answer built from it. Not a reference:
 * json-c counts references without atomics, and the listener's threads (and the main
 * thread replacing the snapshot) would drop theirs at the same time. Call with
 * snapshot_lock. */
static json_object *snapshot_value(json_object *v)
{
    json_object *out = NULL;
    if (v && json_object_deep_copy(v, &out, NULL) != 0)
        return NULL;
    return out;
}

/* Copies the snapshot's fields /healthz reports into body; returns the snapshot's age
 * (negative when there is none) and whether it says the broker is connected. */
static double snapshot_health(struct http_state *st, json_object *body, bool *broker)
{
    static const char *const copied[] = {"nodename",  "broker_connected", "breaker_open",
                                         "executors", "busy_executors",   "pending"};
    pthread_mutex_lock(&st->snapshot_lock);
    double age = st->snapshot ? clock_monotonic() - st->snapshot_at : -1;
    json_object *v;
    *broker = st->snapshot && json_object_object_get_ex(st->snapshot, "broker_connected", &v) &&
              json_object_get_boolean(v);
    for (size_t i = 0; st->snapshot && i < sizeof copied / sizeof copied[0]; i++)
        if (json_object_object_get_ex(st->snapshot, copied[i], &v))
            json_object_object_add(body, copied[i], snapshot_value(v));
    pthread_mutex_unlock(&st->snapshot_lock);
    return age;
}

static enum MHD_Result serve_healthz(struct http_state *st, struct MHD_Connection *c)
{
    json_object *body = json_object_new_object();
    /* Added now so it comes first; json-c replaces a value in place. */
    json_object_object_add(body, "status", NULL);
    json_object *problems = json_object_new_array();
    bool broker;
    double age = snapshot_health(st, body, &broker);
    struct cw_error err;
    bool db = with_db(st, select_one, NULL, &err) == 0;
    char text[64];
    if (age < 0) {
        json_object_array_add(problems, json_object_new_string("no snapshot from the supervisor"));
    } else if (age >= SNAPSHOT_MAX_AGE) {
        snprintf(text, sizeof text, "no snapshot from the supervisor for %.0f s", age);
        json_object_array_add(problems, json_object_new_string(text));
    } else if (!broker) {
        json_object_array_add(problems, json_object_new_string("broker not connected"));
    }
    if (!db)
        json_object_array_add(problems, json_object_new_string(err.message));
    bool ok = json_object_array_length(problems) == 0;
    json_object_object_add(body, "database_connected", json_object_new_boolean(db));
    if (age >= 0)
        json_object_object_add(body, "snapshot_age_seconds", json_object_new_double(age));
    json_object_object_add(body, "problems", problems);
    json_object_object_add(body, "status", json_object_new_string(ok ? "ok" : "unavailable"));
    return http_respond_json(c, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, body);
}

static enum MHD_Result serve_metrics(struct http_state *st, struct MHD_Connection *c)
{
    struct cw_error err;
    bool db = with_db(st, select_one, NULL, &err) == 0;
    struct strbuf text = STRBUF_INIT;
    pthread_mutex_lock(&st->snapshot_lock);
    /* A stale snapshot would show a dead supervisor's last counters as live. */
    bool fresh = st->snapshot && clock_monotonic() - st->snapshot_at < SNAPSHOT_MAX_AGE;
    prometheus_render(fresh ? st->snapshot : NULL, db, &text);
    pthread_mutex_unlock(&st->snapshot_lock);
    enum MHD_Result ret =
        http_respond(c, MHD_HTTP_OK, PROMETHEUS_CONTENT_TYPE, strbuf_cstr(&text), text.len);
    strbuf_free(&text);
    return ret;
}

/* The application's monitoring routes. run_id 0 = GET /v1/worker/metrics. */
static enum MHD_Result serve_run_json(struct http_state *st, struct MHD_Connection *c, long run_id)
{
    struct run_query q = {run_id, NULL};
    struct cw_error err;
    if (with_db(st, query_run_json, &q, &err) != 0) {
        log_warn("HTTP %s: %s", run_id ? "run status" : "worker metrics", err.message);
        return http_respond_detail(c,
                                   err.cls == CW_ERR_TRANSIENT ? MHD_HTTP_SERVICE_UNAVAILABLE
                                                               : MHD_HTTP_INTERNAL_SERVER_ERROR,
                                   err.message);
    }
    if (!q.out) {
        char detail[64];
        snprintf(detail, sizeof detail, "Run with id %ld not found", run_id);
        return http_respond_detail(c, MHD_HTTP_NOT_FOUND, detail);
    }
    return http_respond_json(c, MHD_HTTP_OK, q.out);
}

/* ---- the operator's dashboard (the routes that need neither: dashboard_http.h) ---- */

/* This worker as the snapshot describes it, or NULL without a fresh snapshot. */
static json_object *snapshot_worker(struct http_state *st)
{
    static const char *const copied[] = {"nodename",      "broker_connected", "breaker_open",
                                         "executors",     "busy_executors",   "pending",
                                         "dead_lettered", "retries_waiting"};
    json_object *w = NULL, *v;
    pthread_mutex_lock(&st->snapshot_lock);
    double age = st->snapshot ? clock_monotonic() - st->snapshot_at : -1;
    if (age >= 0 && age < SNAPSHOT_MAX_AGE) {
        w = json_object_new_object();
        for (size_t i = 0; i < sizeof copied / sizeof copied[0]; i++)
            if (json_object_object_get_ex(st->snapshot, copied[i], &v))
                json_object_object_add(w, copied[i], snapshot_value(v));
        json_object_object_add(w, "concurrency", json_object_new_int(st->cfg->concurrency));
        json_object_object_add(w, "snapshot_age_seconds", json_object_new_double(age));
    }
    pthread_mutex_unlock(&st->snapshot_lock);
    return w;
}

static int query_dashboard(PGconn *conn, void *ctx, struct cw_error *err)
{
    return dashboard_data_get(conn, ctx, err);
}

/* {"database": dashboard_data.h or null, "database_error": text or null, "worker": ...}:
 * the worker part is still worth showing while the database is down. */
static enum MHD_Result serve_dashboard(struct http_state *st, struct MHD_Connection *c)
{
    json_object *data = NULL, *body = json_object_new_object();
    struct cw_error err;
    bool db = with_db(st, query_dashboard, &data, &err) == 0;
    if (!db)
        log_warn("HTTP dashboard: %s", err.message);
    json_object_object_add(body, "database", data);
    json_object_object_add(body, "database_error", db ? NULL : json_object_new_string(err.message));
    json_object_object_add(body, "worker", snapshot_worker(st));
    return http_respond_json(c, MHD_HTTP_OK, body);
}

static enum endpoint route(const char *url, long *run_id)
{
    if (strcmp(url, "/") == 0)
        return EP_PAGE;
    if (strncmp(url, PAGE_RUNS_PREFIX, strlen(PAGE_RUNS_PREFIX)) == 0)
        return run_status_parse_id(url + strlen(PAGE_RUNS_PREFIX), run_id) ? EP_PAGE : EP_NONE;
    if (strcmp(url, "/v1/worker/dashboard") == 0)
        return EP_DASHBOARD;
    if (strcmp(url, "/v1/worker/queues") == 0)
        return EP_QUEUES;
    if (strcmp(url, "/v1/worker/cluster") == 0)
        return EP_CLUSTER;
    if (strcmp(url, "/v1/worker/dlq/replay") == 0)
        return EP_DLQ_REPLAY;
    if (strcmp(url, "/healthz") == 0)
        return EP_HEALTHZ;
    if (strcmp(url, "/metrics") == 0)
        return EP_METRICS;
    if (strcmp(url, "/v1/worker/metrics") == 0)
        return EP_WORKER_METRICS;
    size_t prefix = strlen(RUNS_PREFIX), len = strlen(url), suffix = strlen(STATUS_SUFFIX);
    if (len <= prefix + suffix || strncmp(url, RUNS_PREFIX, prefix) != 0 ||
        strcmp(url + len - suffix, STATUS_SUFFIX) != 0)
        return EP_NONE;
    char id[16];
    size_t idlen = len - prefix - suffix;
    if (idlen >= sizeof id)
        return EP_NONE;
    memcpy(id, url + prefix, idlen);
    id[idlen] = '\0';
    return run_status_parse_id(id, run_id) ? EP_RUN_STATUS : EP_NONE;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct http_state *st = cls;
    long run_id = 0;
    enum endpoint ep = route(url, &run_id);
    log_debug("HTTP %s %s", method, url);
    if (ep == EP_NONE)
        return http_respond_detail(c, MHD_HTTP_NOT_FOUND, "Not Found");
    if (ep == EP_DLQ_REPLAY)
        return dashboard_handle_replay(st->cfg, &st->queues, st->loopback, c, method, upload_data,
                                       upload_data_size, con_cls);
    /* HEAD is GET without the body (libmicrohttpd drops it). Anything else is refused
     * before its body is read. */
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return http_respond_detail(c, MHD_HTTP_METHOD_NOT_ALLOWED, "Method Not Allowed");
    switch (ep) {
    case EP_HEALTHZ:
        return serve_healthz(st, c);
    case EP_METRICS:
        return serve_metrics(st, c);
    case EP_RUN_STATUS:
        return serve_run_json(st, c, run_id);
    case EP_WORKER_METRICS:
        return serve_run_json(st, c, 0);
    case EP_PAGE:
        return dashboard_serve_page(c);
    case EP_DASHBOARD:
        return serve_dashboard(st, c);
    case EP_QUEUES:
        return dashboard_serve_queues(st->cfg, &st->queues, c);
    case EP_CLUSTER:
        return http_respond_json(c, MHD_HTTP_OK, cluster_watch_json(&st->cluster));
    case EP_DLQ_REPLAY:
    case EP_NONE:
        break;
    }
    return MHD_NO;
}

/* ---- start-up and the channel ---- */

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    log_warn("HTTP: %s", buf);
}

/* Resolves "HOST:PORT", "[V6]:PORT" or ":PORT" (all IPv4 interfaces: containers publish
 * ports on 0.0.0.0) to the address to bind. The caller frees *ai with freeaddrinfo. */
static int resolve_listen(const char *listen, struct addrinfo **ai, struct cw_error *err)
{
    const char *colon = strrchr(listen, ':');
    char host[256], port[16];
    size_t hlen = colon ? (size_t)(colon - listen) : 0;
    if (!colon || hlen >= sizeof host || strlen(colon + 1) >= sizeof port || !colon[1]) {
        CW_FAIL(err, CW_ERR_PERMANENT, "--http: expected HOST:PORT or :PORT, got '%s'", listen);
        return -1;
    }
    memcpy(host, listen, hlen);
    host[hlen] = '\0';
    snprintf(port, sizeof port, "%s", colon + 1);
    char *h = host;
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        host[hlen - 1] = '\0';
        h = host + 1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    if (!*h)
        hints.ai_family = AF_INET;
    int rc = getaddrinfo(*h ? h : NULL, port, &hints, ai);
    if (rc != 0) {
        CW_FAIL(err, CW_ERR_PERMANENT, "--http %s: %s", listen, gai_strerror(rc));
        return -1;
    }
    return 0;
}

static bool is_loopback(const struct addrinfo *ai)
{
    if (ai->ai_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr);
    const struct sockaddr_in *in = (const struct sockaddr_in *)ai->ai_addr;
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
}

/* The port of a resolved address, for libmicrohttpd's messages (it binds ai_addr). */
static uint16_t listen_port(const struct addrinfo *ai)
{
    if (ai->ai_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ai->ai_addr)->sin6_port);
    return ntohs(((const struct sockaddr_in *)ai->ai_addr)->sin_port);
}

static struct MHD_Daemon *start_daemon(struct http_state *st, struct cw_error *err)
{
    struct addrinfo *ai;
    if (resolve_listen(st->cfg->http_listen, &ai, err) != 0)
        return NULL;
    st->loopback = is_loopback(ai);
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* A few polling threads, each serving one request at a time: plenty for probes and
     * scrapes, and a request that waits on a hung broker or database (the dashboard's
     * queues: up to the broker's 5 s handshake timeout) holds one thread, not /healthz
     * too. The limits keep idle or slow clients from holding them. The logger goes first,
     * or libmicrohttpd reports the options before it its own way. */
    struct MHD_Daemon *d =
        MHD_start_daemon(flags, listen_port(ai), NULL, NULL, handle, st, MHD_OPTION_EXTERNAL_LOGGER,
                         mhd_log, NULL, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_CONNECTION_LIMIT,
                         (unsigned)64, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)HTTP_THREADS,
                         MHD_OPTION_NOTIFY_COMPLETED, dashboard_request_done, NULL, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!d)
        CW_FAIL(err, CW_ERR_TRANSIENT, "cannot listen on %s (address in use or not local?)",
                st->cfg->http_listen);
    return d;
}

static void keep_snapshot(struct http_state *st, json_object *msg)
{
    json_object *type;
    if (!json_object_object_get_ex(msg, "type", &type) ||
        strcmp(json_object_get_string(type), "snapshot") != 0) {
        json_object_put(msg);
        return;
    }
    pthread_mutex_lock(&st->snapshot_lock);
    json_object *old = st->snapshot;
    st->snapshot = msg;
    st->snapshot_at = clock_monotonic();
    pthread_mutex_unlock(&st->snapshot_lock);
    json_object_put(old);
}

/* Reads snapshots until the supervisor closes the channel. Returns the exit status. */
static int read_channel(struct http_state *st, int fd)
{
    for (;;) {
        json_object *msg = NULL;
        struct cw_error err;
        int rc = channel_recv(fd, &msg, &err);
        if (rc == 1) {
            keep_snapshot(st, msg);
        } else if (rc == 0) {
            return 0;
        } else if (err.cls != CW_ERR_INTERNAL) {
            log_error("HTTP listener: %s", err.message);
            return 1;
        } else {
            log_warn("HTTP listener: %s", err.message); /* one bad message, go on */
        }
    }
}

void http_server_main(int channel_fd, const struct cw_config *cfg)
{
    signal(SIGPIPE, SIG_IGN);
    log_configure((enum log_level)cfg->log_level, cfg->log_json, "http");
    struct http_state st = {.cfg = cfg};
    pthread_mutex_init(&st.snapshot_lock, NULL);
    pthread_mutex_init(&st.db_lock, NULL);
    dashboard_queues_cache_init(&st.queues);
    struct cw_error err;
    /* Before the daemon, which serves what it gathers. Without it the page still works;
     * only its list of the workers on the broker stays empty. */
    if (cluster_watch_start(&st.cluster, cfg, &err) != 0)
        log_warn("HTTP listener: %s", err.message);
    struct MHD_Daemon *d = start_daemon(&st, &err);
    if (!d) {
        log_error("HTTP listener: %s", err.message);
        _exit(1);
    }
    log_info("HTTP listener on %s", cfg->http_listen);
    int status = read_channel(&st, channel_fd);
    /* Stop the threads before freeing what their handlers use. */
    MHD_stop_daemon(d);
    cluster_watch_stop(&st.cluster);
    dashboard_queues_cache_destroy(&st.queues);
    if (st.conn)
        PQfinish(st.conn);
    json_object_put(st.snapshot);
    close(channel_fd);
    _exit(status);
}
