/* JSON messages over a SOCK_SEQPACKET socketpair. */
#include "executor/channel.h"
#include "base/xalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int channel_pair(int fds[2], struct cw_error *err)
{
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) {
        CW_FAIL(err, CW_ERR_TRANSIENT, "socketpair() failed: %s", strerror(errno));
        return -1;
    }
    return 0;
}

int channel_send(int fd, json_object *msg, struct cw_error *err)
{
    size_t len;
    const char *text = json_object_to_json_string_length(msg, JSON_C_TO_STRING_PLAIN, &len);
    if (len > CHANNEL_MAX_MESSAGE) {
        CW_FAIL(err, CW_ERR_INTERNAL, "channel message of %zu bytes exceeds %d", len,
                CHANNEL_MAX_MESSAGE);
        return -1;
    }
    for (;;) {
        ssize_t n = send(fd, text, len, MSG_NOSIGNAL);
        if (n == (ssize_t)len)
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        CW_FAIL(err, CW_ERR_TRANSIENT, "channel send failed: %s",
                n < 0 ? strerror(errno) : "short write");
        return -1;
    }
}

int channel_recv(int fd, json_object **out, struct cw_error *err)
{
    char *buf = cw_xmalloc(CHANNEL_MAX_MESSAGE + 1);
    ssize_t n;
    do {
        n = recv(fd, buf, CHANNEL_MAX_MESSAGE, 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        free(buf);
        if (n == 0)
            return 0;
        CW_FAIL(err, CW_ERR_TRANSIENT, "channel recv failed: %s", strerror(errno));
        return -1;
    }
    buf[n] = '\0';
    *out = json_tokener_parse(buf);
    free(buf);
    if (!*out || !json_object_is_type(*out, json_type_object)) {
        json_object_put(*out);
        *out = NULL;
        CW_FAIL(err, CW_ERR_INTERNAL, "channel message is not a JSON object");
        return -1;
    }
    return 1;
}
