/* An executor: a forked child that runs one task at a time with its own PostgreSQL
 * connection, receiving tasks from and reporting results to the supervisor over a
 * channel (channel.h). A crash here costs one attempt, never the worker. */
#ifndef CWORKER_EXECUTOR_H
#define CWORKER_EXECUTOR_H

#include "base/config.h"

/* Runs in the child after fork(); never returns (leaves with _exit). */
__attribute__((noreturn)) void executor_main(int channel_fd, const struct cw_config *cfg,
                                             int index);

#endif
