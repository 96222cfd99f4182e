/* The topology options a configuration asks for. */
#include "mq/topology_config.h"

struct mq_topology mq_topology_of(const struct cw_config *cfg, bool worker)
{
    struct mq_topology t = {
        .retry_delays = worker ? cfg->retry_delays : NULL,
        .nretry = worker ? cfg->nretry_delays : 0,
        .quorum = cfg->queue_quorum,
        .topic = cfg->exchange_topic,
        .native_delay = worker && cfg->native_delay,
    };
    return t;
}
