/* The HTTP listener's answers (http_respond.h). */
#include "ops/http_respond.h"

#include <string.h>

enum MHD_Result http_respond_allow(struct MHD_Connection *c, unsigned status, const char *type,
                                   const char *body, size_t len, const char *allow)
{
    /* MUST_COPY: the body's owner frees it as soon as we return. */
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    /* The dashboard's replay button must not be clickable from a page framing it. */
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

enum MHD_Result http_respond(struct MHD_Connection *c, unsigned status, const char *type,
                             const char *body, size_t len)
{
    return http_respond_allow(c, status, type, body, len, "GET, HEAD");
}

/* Responds with obj as JSON and releases it. */
enum MHD_Result http_respond_json(struct MHD_Connection *c, unsigned status, json_object *obj)
{
    size_t len;
    const char *text = json_object_to_json_string_length(
        obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    enum MHD_Result ret = http_respond(c, status, JSON_CONTENT_TYPE, text, len);
    json_object_put(obj);
    return ret;
}

enum MHD_Result http_respond_detail(struct MHD_Connection *c, unsigned status, const char *detail)
{
    /* {"detail": ...} as the application's FastAPI errors are shaped. */
    json_object *o = json_object_new_object();
    json_object_object_add(o, "detail", json_object_new_string(detail));
    return http_respond_json(c, status, o);
}
