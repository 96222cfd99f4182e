/* The supervisor <-> executor channel: a SOCK_SEQPACKET socketpair carrying one JSON object
 * per frame. What the objects mean is executor/protocol.h; this is only the framing.
 *
 * A frame is one packet that starts with a struct channel_header:
 *   magic   "CWC1"
 *   flags   CHANNEL_FLAG_MEMFD or 0
 *   length  bytes of JSON text (at most CHANNEL_MAX_MESSAGE)
 * Up to CHANNEL_INLINE_MAX bytes of text follow the header in the same packet. Longer text
 * (a task whose arguments are megabytes) travels in a sealed memfd passed with the packet
 * (SCM_RIGHTS): the kernel refuses SOCK_SEQPACKET datagrams above ~212 kB, and a memfd
 * keeps every message one packet whatever its size, so no reassembly is needed.
 * Both ends check the sizes: a frame that lies about its length, a truncated packet or a
 * memfd of the wrong size is an error, never a partial message.
 * A closed channel (EOF) tells an executor that its supervisor is gone. */
#ifndef CWORKER_CHANNEL_H
#define CWORKER_CHANNEL_H

#include "base/error.h"

#include <json-c/json.h>
#include <stdint.h>

#define CHANNEL_MAGIC      0x31435743u /* "CWC1" little-endian */
#define CHANNEL_FLAG_MEMFD 1u
#define CHANNEL_INLINE_MAX (64 * 1024)
/* RabbitMQ's own ceiling for max_message_size is 512 MiB; a task is never larger. */
#define CHANNEL_MAX_MESSAGE (768u * 1024 * 1024)
/* Nesting the JSON may have: a Celery body may nest 64 deep, and the task wraps it. */
#define CHANNEL_MAX_DEPTH 80

struct channel_header {
    uint32_t magic;
    uint32_t flags;
    uint64_t length;
};

/* Creates the pair: fds[0] for the supervisor, fds[1] for the executor. Both close-on-exec. */
CW_MUST_CHECK int channel_pair(int fds[2], struct cw_error *err);
/* Sends msg as one frame. Errors: CW_ERR_PERMANENT when the message itself cannot be sent
 * (over CHANNEL_MAX_MESSAGE), CW_ERR_TRANSIENT when the channel or the system failed. */
CW_MUST_CHECK int channel_send(int fd, json_object *msg, struct cw_error *err);
/* Blocks for one frame. Returns 1 with *out (caller owns), 0 on EOF, -1 on error (a bad
 * frame is consumed and reported; the channel stays usable). */
CW_MUST_CHECK int channel_recv(int fd, json_object **out, struct cw_error *err);

#endif
