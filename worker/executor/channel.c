/* Frames of JSON text over a SOCK_SEQPACKET socketpair, large ones in a memfd. */
#include "executor/channel.h"
#include "base/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

int channel_pair(int fds[2], struct cw_error *err)
{
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) {
        CW_FAIL(err, CW_ERR_TRANSIENT, "socketpair() failed: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* A sealed memfd holding text: the receiver can trust its size. */
static int memfd_with(const char *text, size_t len, struct cw_error *err)
{
    int mfd = memfd_create("cworker-channel", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (mfd < 0) {
        CW_FAIL(err, CW_ERR_TRANSIENT, "memfd_create() failed: %s", strerror(errno));
        return -1;
    }
    if (write_all(mfd, text, len) != 0 ||
        fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
        CW_FAIL(err, CW_ERR_TRANSIENT, "cannot fill a memfd of %zu bytes: %s", len,
                strerror(errno));
        close(mfd);
        return -1;
    }
    return mfd;
}

static int send_packet(int fd, const void *buf, size_t len, int passfd, struct cw_error *err)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (passfd >= 0) {
        memset(&control, 0, sizeof control);
        mh.msg_control = control.buf;
        mh.msg_controllen = sizeof control.buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &passfd, sizeof(int));
    }
    for (;;) {
        ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (n == (ssize_t)len)
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        CW_FAIL(err, CW_ERR_TRANSIENT, "channel send of %zu bytes failed: %s", len,
                n < 0 ? strerror(errno) : "short write");
        return -1;
    }
}

int channel_send(int fd, json_object *msg, struct cw_error *err)
{
    size_t len;
    const char *text = json_object_to_json_string_length(msg, JSON_C_TO_STRING_PLAIN, &len);
    if (len > CHANNEL_MAX_MESSAGE) {
        CW_FAIL(err, CW_ERR_PERMANENT, "message of %zu bytes exceeds the channel's %u", len,
                CHANNEL_MAX_MESSAGE);
        return -1;
    }
    struct channel_header h = {.magic = CHANNEL_MAGIC, .length = len};
    if (len <= CHANNEL_INLINE_MAX) {
        char *packet = cw_xmalloc(sizeof h + len);
        memcpy(packet, &h, sizeof h);
        memcpy(packet + sizeof h, text, len);
        int rc = send_packet(fd, packet, sizeof h + len, -1, err);
        free(packet);
        return rc;
    }
    h.flags = CHANNEL_FLAG_MEMFD;
    int mfd = memfd_with(text, len, err);
    if (mfd < 0)
        return -1;
    int rc = send_packet(fd, &h, sizeof h, mfd, err);
    close(mfd); /* the receiver holds its own descriptor now */
    return rc;
}

/* The fd passed with the packet, or -1. Closes any extra ones a confused peer sent. */
static int passed_fd(struct msghdr *mh)
{
    int found = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            if (found < 0)
                found = fd;
            else
                close(fd);
        }
    }
    return found;
}

static char *read_memfd(int mfd, uint64_t length, struct cw_error *err)
{
    struct stat st;
    if (fstat(mfd, &st) != 0 || (uint64_t)st.st_size != length) {
        CW_FAIL(err, CW_ERR_INTERNAL, "channel memfd holds %lld bytes, the frame says %llu",
                (long long)st.st_size, (unsigned long long)length);
        return NULL;
    }
    char *text = cw_xmalloc((size_t)length + 1);
    size_t done = 0;
    while (done < length) {
        ssize_t n = pread(mfd, text + done, (size_t)length - done, (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            CW_FAIL(err, CW_ERR_INTERNAL, "reading the channel memfd failed: %s",
                    n < 0 ? strerror(errno) : "unexpected end");
            free(text);
            return NULL;
        }
        done += (size_t)n;
    }
    text[length] = '\0';
    return text;
}

static json_object *parse_text(const char *text, size_t len, struct cw_error *err)
{
    json_tokener *tok = json_tokener_new_ex(CHANNEL_MAX_DEPTH);
    if (!tok)
        abort(); /* out of memory: the cw_xmalloc policy */
    json_object *o = json_tokener_parse_ex(tok, text, (int)len);
    bool whole = json_tokener_get_error(tok) == json_tokener_success &&
                 json_tokener_get_parse_end(tok) == len;
    json_tokener_free(tok);
    if (!o || !whole || !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        CW_FAIL(err, CW_ERR_INTERNAL, "channel frame of %zu bytes is not one JSON object", len);
        return NULL;
    }
    return o;
}

/* Checks the packet against its header and returns its text (owned), or NULL. */
static char *frame_text(const char *packet, size_t n, int mfd, size_t *len, struct cw_error *err)
{
    struct channel_header h;
    if (n < sizeof h) {
        CW_FAIL(err, CW_ERR_INTERNAL, "channel packet of %zu bytes has no header", n);
        return NULL;
    }
    memcpy(&h, packet, sizeof h);
    if (h.magic != CHANNEL_MAGIC || h.length > CHANNEL_MAX_MESSAGE) {
        CW_FAIL(err, CW_ERR_INTERNAL, "channel packet with a bad header (length %llu)",
                (unsigned long long)h.length);
        return NULL;
    }
    *len = (size_t)h.length;
    if (h.flags & CHANNEL_FLAG_MEMFD) {
        if (mfd < 0 || n != sizeof h) {
            CW_FAIL(err, CW_ERR_INTERNAL, "channel packet announces a memfd it does not carry");
            return NULL;
        }
        return read_memfd(mfd, h.length, err);
    }
    if (n - sizeof h != h.length) {
        CW_FAIL(err, CW_ERR_INTERNAL, "channel packet carries %zu bytes, its header says %llu",
                n - sizeof h, (unsigned long long)h.length);
        return NULL;
    }
    char *text = cw_xmalloc(*len + 1);
    memcpy(text, packet + sizeof h, *len);
    text[*len] = '\0';
    return text;
}

int channel_recv(int fd, json_object **out, struct cw_error *err)
{
    *out = NULL;
    size_t cap = sizeof(struct channel_header) + CHANNEL_INLINE_MAX;
    char *packet = cw_xmalloc(cap);
    union {
        char buf[CMSG_SPACE(4 * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = {.iov_base = packet, .iov_len = cap};
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = control.buf,
                        .msg_controllen = sizeof control.buf};
    ssize_t n;
    do {
        n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        free(packet);
        if (n == 0)
            return 0;
        CW_FAIL(err, CW_ERR_TRANSIENT, "channel recv failed: %s", strerror(errno));
        return -1;
    }
    int mfd = passed_fd(&mh);
    size_t len = 0;
    char *text = NULL;
    if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
        CW_FAIL(err, CW_ERR_INTERNAL, "channel packet larger than %zu bytes: truncated", cap);
    else
        text = frame_text(packet, (size_t)n, mfd, &len, err);
    free(packet);
    if (mfd >= 0)
        close(mfd);
    if (!text)
        return -1;
    *out = parse_text(text, len, err);
    free(text);
    return *out ? 1 : -1;
}
