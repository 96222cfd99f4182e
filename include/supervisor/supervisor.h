/* The supervisor: owns the AMQP connections and all broker I/O, a table of executor
 * processes, and the lifecycle of every delivery (received -> dispatched -> result ->
 * acked, retried or dead-lettered). Nothing slow runs here, so AMQP heartbeats are
 * always served. */
#ifndef CWORKER_SUPERVISOR_H
#define CWORKER_SUPERVISOR_H

#include "base/config.h"

/* Runs until SIGTERM/SIGINT; returns the process exit status. */
int supervisor_run(const struct cw_config *cfg);

#endif
