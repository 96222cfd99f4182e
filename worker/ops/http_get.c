/* One HTTP/1.0 GET with a deadline over a plain socket: `cworker health` probes the
 * worker's own listener on loopback, so libcurl (not linked) would be all cost. */
#include "ops/http_get.h"
#include "base/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RESPONSE_MAX (1024 * 1024)

/* Milliseconds left until deadline, at least 0. */
static int ms_left(double deadline)
{
    double left = deadline - clock_monotonic();
    return left > 0 ? (int)(left * 1000) + 1 : 0;
}

/* Waits until fd is ready for events; 0, or -1 with err on timeout or poll failure. */
static int wait_fd(int fd, short events, double deadline, const char *what, struct cw_error *err)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        int rc = poll(&p, 1, ms_left(deadline));
        if (rc > 0)
            return 0;
        if (rc == 0) {
            CW_FAIL(err, CW_ERR_TIMEOUT, "timed out %s", what);
            return -1;
        }
        if (errno != EINTR) {
            CW_FAIL(err, CW_ERR_INTERNAL, "poll() while %s: %s", what, strerror(errno));
            return -1;
        }
    }
}

/* A non-blocking socket connected to address a, or -1 with err. */
static int connect_one(const struct addrinfo *a, const char *where, double deadline,
                       struct cw_error *err)
{
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
        CW_FAIL(err, CW_ERR_INTERNAL, "socket(): %s", strerror(errno));
        return -1;
    }
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
        return fd;
    if (errno != EINPROGRESS) {
        CW_FAIL(err, CW_ERR_TRANSIENT, "cannot connect to %s: %s", where, strerror(errno));
        close(fd);
        return -1;
    }
    int soerr = 0;
    socklen_t slen = sizeof soerr;
    if (wait_fd(fd, POLLOUT, deadline, "connecting", err) != 0) {
        close(fd);
        return -1;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) != 0 || soerr != 0) {
        CW_FAIL(err, CW_ERR_TRANSIENT, "cannot connect to %s: %s", where,
                strerror(soerr ? soerr : errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* A socket connected to the first of host:port's addresses that answers, or -1 with err. */
static int connect_to(const char *host, const char *port, double deadline, struct cw_error *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) {
        CW_FAIL(err, CW_ERR_PERMANENT, "%s:%s: %s", host, port, gai_strerror(rc));
        return -1;
    }
    char where[300];
    snprintf(where, sizeof where, "%s:%s", host, port);
    int fd = -1;
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next)
        fd = connect_one(a, where, deadline, err);
    freeaddrinfo(ai);
    return fd;
}

static int send_all(int fd, const char *data, size_t len, double deadline, struct cw_error *err)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            CW_FAIL(err, CW_ERR_TRANSIENT, "sending the request: %s", strerror(errno));
            return -1;
        } else if (wait_fd(fd, POLLOUT, deadline, "sending the request", err) != 0) {
            return -1;
        }
    }
    return 0;
}

/* Reads until the server closes the connection (HTTP/1.0 without keep-alive). */
static int read_all(int fd, struct strbuf *out, double deadline, struct cw_error *err)
{
    char buf[4096];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0)
            return 0;
        if (n > 0) {
            if (out->len + (size_t)n > RESPONSE_MAX) {
                CW_FAIL(err, CW_ERR_PERMANENT, "response larger than %d bytes", RESPONSE_MAX);
                return -1;
            }
            strbuf_append(out, buf, (size_t)n);
        } else if (errno != EAGAIN && errno != EINTR) {
            CW_FAIL(err, CW_ERR_TRANSIENT, "reading the response: %s", strerror(errno));
            return -1;
        } else if (wait_fd(fd, POLLIN, deadline, "waiting for the response", err) != 0) {
            return -1;
        }
    }
}

int http_get(const char *host, const char *port, const char *path, double timeout_s,
             struct strbuf *response, struct cw_error *err)
{
    double deadline = clock_monotonic() + timeout_s;
    int fd = connect_to(host, port, deadline, err);
    if (fd < 0)
        return -1;
    char request[512];
    int len = snprintf(request, sizeof request,
                       "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: cworker-health\r\n"
                       "Connection: close\r\n\r\n",
                       path, host);
    int rc = -1;
    if (len < 0 || (size_t)len >= sizeof request)
        CW_FAIL(err, CW_ERR_PERMANENT, "request line too long for %s", path);
    else if (send_all(fd, request, (size_t)len, deadline, err) == 0)
        rc = read_all(fd, response, deadline, err);
    close(fd);
    if (rc != 0)
        CW_WRAP(err, "GET http://%s:%s%s", host, port, path);
    return rc;
}
