/* The dashboard's routes that need neither the snapshot nor the listener's database
 * connection (http_server.h lists them all): the page, the queues, and the admin replay. */
#ifndef CWORKER_DASHBOARD_HTTP_H
#define CWORKER_DASHBOARD_HTTP_H

#include "base/config.h"

#include <microhttpd.h>
#include <stdbool.h>

/* GET / and GET /runs/<id>. */
enum MHD_Result dashboard_serve_page(struct MHD_Connection *c);
/* GET /v1/worker/queues. */
enum MHD_Result dashboard_serve_queues(const struct cw_config *cfg, struct MHD_Connection *c);
/* /v1/worker/dlq/replay, called with each of libmicrohttpd's calls for the request (the
 * body arrives in pieces); loopback: the listener is bound to a loopback address only. */
enum MHD_Result dashboard_handle_replay(const struct cw_config *cfg, bool loopback,
                                        struct MHD_Connection *c, const char *method,
                                        const char *data, size_t *size, void **con_cls);
/* MHD_OPTION_NOTIFY_COMPLETED: frees what dashboard_handle_replay kept in *con_cls. */
void dashboard_request_done(void *cls, struct MHD_Connection *c, void **con_cls,
                            enum MHD_RequestTerminationCode code);

#endif
