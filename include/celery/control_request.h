/* A remote control request (`celery inspect ...`, `celery control ...`, app.control) as
 * kombu's Mailbox publishes it to a node's pidbox queue: JSON body {"method", "arguments",
 * "destination", "pattern", "matcher"} plus "ticket" and "reply_to" {"exchange",
 * "routing_key"} when the client waits for replies; headers {"clock": int, "expires":
 * epoch float or 0}. Pure module: no I/O, no logging. */
#ifndef CWORKER_CELERY_CONTROL_REQUEST_H
#define CWORKER_CELERY_CONTROL_REQUEST_H

#include "base/error.h"

#include <amqp.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A decoded request. Strings and JSON are owned; NULL when absent or null. */
struct celery_control_request {
    char *method;
    json_object *arguments;   /* object, never NULL after a successful decode */
    json_object *destination; /* array of node names, or NULL (= every node) */
    char *pattern, *matcher;  /* node selection when no destination ("glob"/"pcre") */
    char *ticket;             /* the client's reply ticket */
    char *reply_exchange;     /* reply_to.exchange; NULL: a cast, nobody waits for a reply */
    char *reply_routing_key;  /* reply_to.routing_key */
    uint64_t clock;           /* header "clock" (0 when absent) */
    double expires;           /* header "expires", epoch seconds; 0 when absent */
};

/* Decodes a request delivered on the node's pidbox queue into *out (release it with
 * celery_control_request_free, also after a failure). props may be NULL. Only JSON is
 * accepted (kombu's Mailbox accepts only json). Errors are CW_ERR_PERMANENT, e.g.
 * "unsupported content type ...", "body is not a JSON object", "no method". */
CW_MUST_CHECK int celery_control_decode(const amqp_basic_properties_t *props, const void *body,
                                        size_t body_len, struct celery_control_request *out,
                                        struct cw_error *err);
void celery_control_request_free(struct celery_control_request *r);

/* kombu Node.handle_message: a non-empty destination must name nodename; otherwise a
 * pattern with a matcher ("glob": fnmatch, "pcre": regex matched at the start) must match
 * it; otherwise the request is for every node. */
bool celery_control_is_for(const struct celery_control_request *r, const char *nodename);

#endif
