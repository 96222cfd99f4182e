/* An executor: a forked child that runs one task at a time with its own PostgreSQL
 * connection, receiving tasks from and reporting results to the supervisor over a
 * channel. A crash here costs one attempt, never the worker. */
#ifndef CWORKER_EXECUTOR_H
#define CWORKER_EXECUTOR_H

#include "base/config.h"

#include <sys/types.h>

/* Runs in the child after fork(); never returns (leaves with _exit). parent is the
 * supervisor's pid, to notice a supervisor that died while the child was starting. The
 * protocol is executor/protocol.h over executor/channel.h. */
__attribute__((noreturn)) void executor_main(int channel_fd, const struct cw_config *cfg, int index,
                                             pid_t parent);

#endif
