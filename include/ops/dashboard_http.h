/* The dashboard's routes that need neither the snapshot nor the listener's database
 * connection (http_server.h lists them all): the page, the queues, and the admin replay. */
#ifndef CWORKER_DASHBOARD_HTTP_H
#define CWORKER_DASHBOARD_HTTP_H

#include "base/config.h"

#include <json-c/json.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>

/* The last answer of GET /v1/worker/queues, served again for QUEUES_CACHE_SECONDS
 * (dashboard_http.c): every open dashboard asks every 3 s, and each reading costs the
 * broker a connection and a basic.get of every dead letter shown. A replay drops it.
 * The listener's threads share it under lock, held while the broker is read: requests
 * for the queues wait for the one reading, the other routes do not. */
struct dashboard_queues_cache {
    pthread_mutex_t lock; /* guards everything below */
    json_object *body;    /* owned; NULL: nothing cached */
    unsigned status;
    double at; /* monotonic time of the reading */
};
void dashboard_queues_cache_init(struct dashboard_queues_cache *cache);
/* Frees the body and the lock. */
void dashboard_queues_cache_destroy(struct dashboard_queues_cache *cache);

/* GET / and GET /runs/<id>. */
enum MHD_Result dashboard_serve_page(struct MHD_Connection *c);
/* GET /v1/worker/queues. */
enum MHD_Result dashboard_serve_queues(const struct cw_config *cfg,
                                       struct dashboard_queues_cache *cache,
                                       struct MHD_Connection *c);
/* /v1/worker/dlq/replay, called with each of libmicrohttpd's calls for the request (the
 * body arrives in pieces); loopback: the listener is bound to a loopback address only. */
enum MHD_Result dashboard_handle_replay(const struct cw_config *cfg,
                                        struct dashboard_queues_cache *cache, bool loopback,
                                        struct MHD_Connection *c, const char *method,
                                        const char *data, size_t *size, void **con_cls);
/* MHD_OPTION_NOTIFY_COMPLETED: frees what dashboard_handle_replay kept in *con_cls. */
void dashboard_request_done(void *cls, struct MHD_Connection *c, void **con_cls,
                            enum MHD_RequestTerminationCode code);

#endif
