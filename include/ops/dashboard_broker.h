/* The broker side of the operator's dashboard, read on short-lived connections of the HTTP
 * listener's own (the listener has no broker connection otherwise):
 *   {"queues": [{"queue": Q,
 *                "delay_queues": [{"name": "Q.retry.60s", "delay_seconds": 60,
 *                                  "messages": n}, ...],
 *                "dead": {"name": "Q.dead", "messages": n,
 *                         "shown": [dlq_message_describe objects, head first, <= limit]}},
 *               ...]}
 * for every configured queue. The dead letters are read with dlq_list (ops/dlq_ops.h), so
 * they stay where they are. */
#ifndef CWORKER_DASHBOARD_BROKER_H
#define CWORKER_DASHBOARD_BROKER_H

#include "base/config.h"
#include "base/error.h"

#include <json-c/json.h>

/* *out (caller owns) is the object above. */
CW_MUST_CHECK int dashboard_broker_get(const struct cw_config *cfg, long limit, json_object **out,
                                       struct cw_error *err);

#endif
