/* Supervisor <-> executor channel: a SOCK_SEQPACKET socketpair carrying one JSON object
 * per packet (boundaries kept by the kernel, so no framing code).
 *
 * Messages (field "type"):
 *   supervisor -> executor
 *     {"type":"task", "task_id", "task", "args", "kwargs", "retries", "delivery", "eta"?,
 *      "soft_time_limit"}
 *   executor -> supervisor
 *     {"type":"ready"}                       after start-up, once
 *     {"type":"result", "delivery", "task_id", "run_id", "outcome", "result"?, "error"?}
 *        outcome: "succeeded" | "failed" | "retry" | "skipped"
 *        error:   {"class", "message", "traceback"}
 * A closed channel (EOF) tells an executor that its supervisor is gone. */
#ifndef CWORKER_CHANNEL_H
#define CWORKER_CHANNEL_H

#include "base/error.h"

#include <json-c/json.h>

#define CHANNEL_MAX_MESSAGE (256 * 1024)

/* Creates the pair: fds[0] for the supervisor, fds[1] for the executor. Both close-on-exec. */
CW_MUST_CHECK int channel_pair(int fds[2], struct cw_error *err);
CW_MUST_CHECK int channel_send(int fd, json_object *msg, struct cw_error *err);
/* Blocks for one message. Returns 1 with *out (caller owns), 0 on EOF, -1 on error. */
CW_MUST_CHECK int channel_recv(int fd, json_object **out, struct cw_error *err);

#endif
