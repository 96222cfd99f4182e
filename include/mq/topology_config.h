/* The topology options (mq/conn.h) a configuration asks for. */
#ifndef CWORKER_MQ_TOPOLOGY_CONFIG_H
#define CWORKER_MQ_TOPOLOGY_CONFIG_H

#include "base/config.h"
#include "mq/conn.h"

/* The worker's (worker: delay queues and the native-delay bindings) or a tool's, which
 * only publishes to Q and declares exchange Q, queue Q and Q.dead with the worker's types. */
struct mq_topology mq_topology_of(const struct cw_config *cfg, bool worker);

#endif
