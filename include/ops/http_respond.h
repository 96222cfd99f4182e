/* Answers of the HTTP listener (libmicrohttpd): every one no-store, nosniff and never to be
 * framed; JSON errors shaped {"detail": ...} as the application's FastAPI errors are. */
#ifndef CWORKER_HTTP_RESPOND_H
#define CWORKER_HTTP_RESPOND_H

#include <json-c/json.h>
#include <microhttpd.h>
#include <stddef.h>

#define JSON_CONTENT_TYPE "application/json"

/* body is copied. allow: the methods a 405 names. */
enum MHD_Result http_respond_allow(struct MHD_Connection *c, unsigned status, const char *type,
                                   const char *body, size_t len, const char *allow);
/* http_respond_allow for the GET/HEAD routes. */
enum MHD_Result http_respond(struct MHD_Connection *c, unsigned status, const char *type,
                             const char *body, size_t len);
/* Responds with obj as JSON and releases it. */
enum MHD_Result http_respond_json(struct MHD_Connection *c, unsigned status, json_object *obj);
enum MHD_Result http_respond_detail(struct MHD_Connection *c, unsigned status, const char *detail);

#endif
