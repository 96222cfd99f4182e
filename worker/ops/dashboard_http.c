/* The dashboard's page, queue and replay routes (dashboard_http.h). */
#include "ops/dashboard_http.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/strbuf.h"
#include "base/xalloc.h"
#include "ops/dashboard_admin.h"
#include "ops/dashboard_broker.h"
#include "ops/dashboard_page.h"
#include "ops/dlq_ops.h"
#include "ops/http_respond.h"

#include <stdlib.h>
#include <string.h>

#define HTML_CONTENT_TYPE    "text/html; charset=utf-8"
#define DLQ_SHOWN_MAX        50   /* dead letters listed per queue on the dashboard */
#define ADMIN_BODY_MAX       4096 /* bytes of a POST body */
#define QUEUES_CACHE_SECONDS 5.0  /* a reading of the broker is served again this long */

/* A POST body being received (libmicrohttpd hands it over in pieces). */
struct upload {
    struct strbuf body;
    bool too_big;
};

enum MHD_Result dashboard_serve_page(struct MHD_Connection *c)
{
    return http_respond(c, MHD_HTTP_OK, HTML_CONTENT_TYPE, (const char *)dashboard_html,
                        dashboard_html_len);
}

/* Drops the reading; call with the lock. */
static void drop_reading(struct dashboard_queues_cache *cache)
{
    json_object_put(cache->body);
    cache->body = NULL;
}

void dashboard_queues_cache_init(struct dashboard_queues_cache *cache)
{
    memset(cache, 0, sizeof *cache);
    pthread_mutex_init(&cache->lock, NULL);
}

void dashboard_queues_cache_destroy(struct dashboard_queues_cache *cache)
{
    drop_reading(cache);
    pthread_mutex_destroy(&cache->lock);
}

/* Reads the broker into the cache (with the lock); a failure is cached too (an outage
 * must not cost a connection attempt per refresh either). */
static void read_queues(const struct cw_config *cfg, struct dashboard_queues_cache *cache)
{
    json_object *out;
    struct cw_error err;
    drop_reading(cache);
    cache->at = clock_monotonic();
    if (dashboard_broker_get(cfg, DLQ_SHOWN_MAX, &out, &err) != 0) {
        log_warn("HTTP queues: %s", err.message);
        cache->status = MHD_HTTP_SERVICE_UNAVAILABLE;
        cache->body = json_object_new_object();
        json_object_object_add(cache->body, "detail", json_object_new_string(err.message));
        return;
    }
    cache->status = MHD_HTTP_OK;
    cache->body = out;
}

enum MHD_Result dashboard_serve_queues(const struct cw_config *cfg,
                                       struct dashboard_queues_cache *cache,
                                       struct MHD_Connection *c)
{
    pthread_mutex_lock(&cache->lock);
    double now = clock_monotonic();
    if (!cache->body || now - cache->at >= QUEUES_CACHE_SECONDS || now < cache->at)
        read_queues(cfg, cache);
    /* How old the reading is (json-c replaces the value in place). Written out under the
     * lock: json-c keeps the text it writes in the object. */
    json_object_object_add(cache->body, "age_seconds",
                           json_object_new_double(clock_monotonic() - cache->at));
    enum MHD_Result ret = http_respond_json(c, cache->status, json_object_get(cache->body));
    pthread_mutex_unlock(&cache->lock);
    return ret;
}

/* NULL when this request may run an admin action, else why not. */
static const char *admin_refusal(bool loopback, struct MHD_Connection *c)
{
    struct admin_request r = {
        .admin_env = getenv("CWORKER_HTTP_ADMIN"),
        .token_env = getenv("CWORKER_HTTP_TOKEN"),
        .loopback = loopback,
        .authorization =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
        .origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin"),
        .host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST),
        .content_type =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE)};
    return dashboard_admin_refusal(&r);
}

static void keep_replayed(void *ctx, json_object *desc)
{
    json_object_array_add(json_object_object_get(ctx, "replayed"), json_object_get(desc));
}

static void keep_problem(void *ctx, const struct cw_error *err)
{
    json_object_array_add(json_object_object_get(ctx, "problems"),
                          json_object_new_string(err->message));
}

/* The queue a replay names must be one this worker serves (default: the first). */
static const char *replay_queue(const struct cw_config *cfg, json_object *req)
{
    json_object *q;
    if (!json_object_object_get_ex(req, "queue", &q) || json_object_is_type(q, json_type_null))
        return cfg->queues[0];
    for (int i = 0; json_object_is_type(q, json_type_string) && i < cfg->nqueues; i++)
        if (strcmp(cfg->queues[i], json_object_get_string(q)) == 0)
            return cfg->queues[i];
    return NULL;
}

/* {"task_id": ID, "queue": Q (optional)}: what `cworker dlq replay --queue Q --task-id ID`
 * does, through the same dlq_replay. */
static enum MHD_Result serve_replay(const struct cw_config *cfg,
                                    struct dashboard_queues_cache *cache, struct MHD_Connection *c,
                                    const char *text)
{
    json_object *req = json_tokener_parse(text), *id;
    const char *queue = req ? replay_queue(cfg, req) : NULL;
    if (!req || !json_object_object_get_ex(req, "task_id", &id) ||
        !json_object_is_type(id, json_type_string) || !queue) {
        json_object_put(req);
        return http_respond_detail(
            c, MHD_HTTP_BAD_REQUEST,
            "expected {\"task_id\": \"...\", \"queue\": one of the worker's queues}");
    }
    const char *ids[] = {json_object_get_string(id)};
    bool found[1] = {false};
    struct dlq_selection sel = {false, ids, 1, found};
    json_object *out = json_object_new_object();
    json_object_object_add(out, "replayed", json_object_new_array());
    json_object_object_add(out, "problems", json_object_new_array());
    long replayed = 0;
    int failures = 0;
    struct cw_error err;
    int rc = dlq_replay(cfg, queue, cfg->queue_quorum, &sel, keep_replayed, keep_problem, out,
                        &replayed, &failures, &err);
    pthread_mutex_lock(&cache->lock);
    drop_reading(cache); /* the next reading shows what the replay moved */
    pthread_mutex_unlock(&cache->lock);
    unsigned status = MHD_HTTP_OK;
    if (rc != 0) {
        log_warn("HTTP replay of task %s from %s.dead: %s", ids[0], queue, err.message);
        json_object_object_add(out, "detail", json_object_new_string(err.message));
        status = MHD_HTTP_SERVICE_UNAVAILABLE;
    } else if (!found[0]) {
        json_object_object_add(out, "detail", json_object_new_string("task not in the queue"));
        status = MHD_HTTP_NOT_FOUND;
    } else if (failures) {
        status = MHD_HTTP_CONFLICT;
    }
    log_info("HTTP: %ld message(s) of task %s replayed from %s.dead", replayed, ids[0], queue);
    json_object_put(req);
    return http_respond_json(c, status, out);
}

/* POST /v1/worker/dlq/replay: refused before its body is read unless allowed; the body
 * is gathered over libmicrohttpd's calls (freed by request_done). */
enum MHD_Result dashboard_handle_replay(const struct cw_config *cfg,
                                        struct dashboard_queues_cache *cache, bool loopback,
                                        struct MHD_Connection *c, const char *method,
                                        const char *data, size_t *size, void **con_cls)
{
    struct upload *up = *con_cls;
    if (!up) {
        if (strcmp(method, MHD_HTTP_METHOD_POST) != 0) {
            static const char body[] = "{\"detail\":\"Method Not Allowed\"}";
            return http_respond_allow(c, MHD_HTTP_METHOD_NOT_ALLOWED, JSON_CONTENT_TYPE, body,
                                      sizeof body - 1, "POST");
        }
        const char *why = admin_refusal(loopback, c);
        if (why) {
            log_warn("HTTP replay refused: %s", why);
            return http_respond_detail(c, MHD_HTTP_FORBIDDEN, why);
        }
        up = cw_xcalloc(1, sizeof *up);
        strbuf_init(&up->body);
        *con_cls = up;
        return MHD_YES;
    }
    if (*size) {
        if (up->body.len + *size > ADMIN_BODY_MAX)
            up->too_big = true;
        else
            strbuf_append(&up->body, data, *size);
        *size = 0;
        return MHD_YES;
    }
    if (up->too_big)
        return http_respond_detail(c, MHD_HTTP_CONTENT_TOO_LARGE, "body too large");
    return serve_replay(cfg, cache, c, strbuf_cstr(&up->body));
}

void dashboard_request_done(void *cls, struct MHD_Connection *c, void **con_cls,
                            enum MHD_RequestTerminationCode code)
{
    (void)cls, (void)c, (void)code;
    struct upload *up = *con_cls;
    if (up) {
        strbuf_free(&up->body);
        free(up);
        *con_cls = NULL;
    }
}

/* Which endpoint url names; *run_id for EP_RUN_STATUS. */