/* Unit tests for the executor channel framing (executor/channel.h) over a real socketpair:
 * round trips inline and through a memfd, EOF, and every kind of bad frame, each followed
 * by a good one to show the channel is still usable. */
#include "executor/channel.h"

#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

struct pair {
    int fds[2];
    int open_before;
};

static int count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static int setup(void **state)
{
    struct pair *p = calloc(1, sizeof *p);
    p->open_before = count_open_fds();
    struct cw_error err;
    if (channel_pair(p->fds, &err) != 0)
        return -1;
    *state = p;
    return 0;
}

static int teardown(void **state)
{
    struct pair *p = *state;
    if (p->fds[0] >= 0)
        close(p->fds[0]);
    if (p->fds[1] >= 0)
        close(p->fds[1]);
    int leaked = count_open_fds() - p->open_before;
    free(p);
    if (leaked != 0)
        fprintf(stderr, "%d file descriptors leaked\n", leaked);
    return leaked == 0 ? 0 : -1;
}

/* Sends msg on fds[0], receives it on fds[1] and checks it arrived exactly. */
static void round_trip(struct pair *p, json_object *msg)
{
    struct cw_error err;
    assert_int_equal(channel_send(p->fds[0], msg, &err), 0);
    json_object *got = NULL;
    assert_int_equal(channel_recv(p->fds[1], &got, &err), 1);
    assert_non_null(got);
    assert_true(json_object_equal(msg, got));
    assert_string_equal(json_object_to_json_string_ext(got, JSON_C_TO_STRING_PLAIN),
                        json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN));
    json_object_put(got);
}

static void assert_good_frame_still_arrives(struct pair *p)
{
    json_object *m = json_tokener_parse("{\"type\":\"ready\",\"n\":1}");
    round_trip(p, m);
    json_object_put(m);
}

/* An object whose plain serialization is exactly `total` bytes: {"p":"xxx..."}. */
static json_object *message_of_size(size_t total)
{
    const size_t overhead = strlen("{\"p\":\"\"}");
    assert_true(total >= overhead);
    char *pad = malloc(total - overhead + 1);
    memset(pad, 'x', total - overhead);
    pad[total - overhead] = '\0';
    json_object *m = json_object_new_object();
    json_object_object_add(m, "p", json_object_new_string(pad));
    free(pad);
    size_t len;
    json_object_to_json_string_length(m, JSON_C_TO_STRING_PLAIN, &len);
    assert_int_equal(len, total);
    return m;
}

static void test_small_message_round_trip(void **state)
{
    json_object *m = json_tokener_parse(
        "{\"type\":\"task\",\"seq\":7,\"task\":{\"id\":\"t-1\",\"args\":[42,\"\\u00e9\"]},"
        "\"hard_limit\":3600.5}");
    assert_non_null(m);
    round_trip(*state, m);
    json_object_put(m);
}

static void test_sizes_around_the_inline_limit(void **state)
{
    const size_t sizes[] = {CHANNEL_INLINE_MAX - 1, CHANNEL_INLINE_MAX, CHANNEL_INLINE_MAX + 1,
                            300 * 1024 /* above what one SEQPACKET datagram may carry */};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        json_object *m = message_of_size(sizes[i]);
        round_trip(*state, m);
        json_object_put(m);
    }
}

static void test_five_megabytes_of_nested_content(void **state)
{
    json_object *m = json_object_new_object();
    json_object_object_add(m, "type", json_object_new_string("task"));
    json_object *rows = json_object_new_array();
    size_t len = 0;
    for (int i = 0; len < 5 * 1024 * 1024; i++) {
        json_object *row = json_object_new_object();
        json_object_object_add(row, "i", json_object_new_int(i));
        json_object_object_add(row, "x", json_object_new_double(i / 7.0));
        json_object *deep = json_object_new_array();
        json_object *inner = deep;
        for (int d = 0; d < 20; d++) {
            json_object *next = json_object_new_array();
            json_object_array_add(inner, next);
            inner = next;
        }
        json_object_array_add(inner, json_object_new_string("stanza [default] key = värde"));
        json_object_object_add(row, "deep", deep);
        size_t row_len;
        json_object_to_json_string_length(row, JSON_C_TO_STRING_PLAIN, &row_len);
        len += row_len + 1;
        json_object_array_add(rows, row);
    }
    json_object_object_add(m, "rows", rows);
    json_object_to_json_string_length(m, JSON_C_TO_STRING_PLAIN, &len);
    assert_true(len >= 5 * 1024 * 1024);
    round_trip(*state, m);
    json_object_put(m);
}

static void test_eof_after_the_peer_closes(void **state)
{
    struct pair *p = *state;
    close(p->fds[0]);
    p->fds[0] = -1;
    json_object *got = (json_object *)1;
    struct cw_error err;
    assert_int_equal(channel_recv(p->fds[1], &got, &err), 0);
    assert_null(got);
}

/* ---- raw frames ------------------------------------------------------------------- */

static void send_raw(int fd, const void *buf, size_t len, int passfd)
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
    assert_int_equal(sendmsg(fd, &mh, MSG_NOSIGNAL), (ssize_t)len);
}

/* A header followed by text, declaring `length`. */
static void send_frame(int fd, uint32_t magic, uint32_t flags, uint64_t length, const char *text,
                       int passfd)
{
    struct channel_header h = {.magic = magic, .flags = flags, .length = length};
    size_t tlen = text ? strlen(text) : 0;
    char *packet = malloc(sizeof h + tlen + 1);
    memcpy(packet, &h, sizeof h);
    if (tlen)
        memcpy(packet + sizeof h, text, tlen);
    send_raw(fd, packet, sizeof h + tlen, passfd);
    free(packet);
}

static int memfd_holding(const char *text)
{
    int mfd = memfd_create("test-channel", MFD_CLOEXEC);
    assert_true(mfd >= 0);
    assert_int_equal(write(mfd, text, strlen(text)), (ssize_t)strlen(text));
    return mfd;
}

/* The next frame is refused with CW_ERR_INTERNAL and a message containing `why`, then a
 * good frame still arrives. */
static void assert_refused_then_usable(struct pair *p, const char *why)
{
    json_object *got = (json_object *)1;
    struct cw_error err;
    memset(&err, 0, sizeof err);
    assert_int_equal(channel_recv(p->fds[1], &got, &err), -1);
    assert_null(got);
    assert_int_equal(err.cls, CW_ERR_INTERNAL);
    if (!strstr(err.message, why))
        fail_msg("error \"%s\" does not say \"%s\"", err.message, why);
    assert_good_frame_still_arrives(p);
}

static void test_packet_shorter_than_the_header(void **state)
{
    struct pair *p = *state;
    send_raw(p->fds[0], "CWC1", 4, -1);
    assert_refused_then_usable(p, "has no header");
}

static void test_wrong_magic(void **state)
{
    struct pair *p = *state;
    send_frame(p->fds[0], 0x31435744u, 0, 2, "{}", -1);
    assert_refused_then_usable(p, "bad header");
}

static void test_length_above_the_maximum(void **state)
{
    struct pair *p = *state;
    send_frame(p->fds[0], CHANNEL_MAGIC, 0, (uint64_t)CHANNEL_MAX_MESSAGE + 1, "{}", -1);
    assert_refused_then_usable(p, "bad header");
}

static void test_length_disagrees_with_inline_bytes(void **state)
{
    struct pair *p = *state;
    send_frame(p->fds[0], CHANNEL_MAGIC, 0, 5, "{\"a\":1}", -1);
    assert_refused_then_usable(p, "carries 7 bytes, its header says 5");
    send_frame(p->fds[0], CHANNEL_MAGIC, 0, 9, "{\"a\":1}", -1);
    assert_refused_then_usable(p, "carries 7 bytes, its header says 9");
}

static void test_memfd_flag_without_fd(void **state)
{
    struct pair *p = *state;
    send_frame(p->fds[0], CHANNEL_MAGIC, CHANNEL_FLAG_MEMFD, 2, NULL, -1);
    assert_refused_then_usable(p, "does not carry");
}

static void test_memfd_flag_with_inline_bytes_too(void **state)
{
    struct pair *p = *state;
    int mfd = memfd_holding("{}");
    send_frame(p->fds[0], CHANNEL_MAGIC, CHANNEL_FLAG_MEMFD, 2, "{}", mfd);
    close(mfd);
    assert_refused_then_usable(p, "does not carry");
}

static void test_memfd_of_the_wrong_size(void **state)
{
    struct pair *p = *state;
    int mfd = memfd_holding("{\"a\":1}");
    send_frame(p->fds[0], CHANNEL_MAGIC, CHANNEL_FLAG_MEMFD, 6, NULL, mfd);
    assert_refused_then_usable(p, "holds 7 bytes, the frame says 6");
    send_frame(p->fds[0], CHANNEL_MAGIC, CHANNEL_FLAG_MEMFD, 8, NULL, mfd);
    assert_refused_then_usable(p, "holds 7 bytes, the frame says 8");
    /* The same memfd with the right length is a good frame. */
    send_frame(p->fds[0], CHANNEL_MAGIC, CHANNEL_FLAG_MEMFD, 7, NULL, mfd);
    close(mfd);
    json_object *got = NULL;
    struct cw_error err;
    assert_int_equal(channel_recv(p->fds[1], &got, &err), 1);
    assert_int_equal(json_object_get_int(json_object_object_get(got, "a")), 1);
    json_object_put(got);
}

static void test_fd_without_memfd_flag_is_closed(void **state)
{
    struct pair *p = *state;
    int mfd = memfd_holding("ignored");
    send_frame(p->fds[0], CHANNEL_MAGIC, 0, 2, "{}", mfd);
    close(mfd);
    json_object *got = NULL;
    struct cw_error err;
    assert_int_equal(channel_recv(p->fds[1], &got, &err), 1); /* teardown counts the fds */
    json_object_put(got);
}

static void test_packet_larger_than_inline_is_refused(void **state)
{
    struct pair *p = *state;
    size_t n = sizeof(struct channel_header) + CHANNEL_INLINE_MAX + 100;
    char *packet = calloc(1, n);
    struct channel_header h = {.magic = CHANNEL_MAGIC, .length = n - sizeof h};
    memcpy(packet, &h, sizeof h);
    send_raw(p->fds[0], packet, n, -1);
    free(packet);
    assert_refused_then_usable(p, "truncated");
}

static void test_text_that_is_not_an_object(void **state)
{
    struct pair *p = *state;
    static const char *const texts[] = {"[1,2]", "42", "\"s\"", "null", "{\"a\":", "nope", ""};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        send_frame(p->fds[0], CHANNEL_MAGIC, 0, strlen(texts[i]), texts[i], -1);
        assert_refused_then_usable(p, "is not one JSON object");
    }
}

static void test_trailing_garbage_after_the_object(void **state)
{
    struct pair *p = *state;
    static const char *const texts[] = {"{\"a\":1}x", "{\"a\":1}{}", "{}  ]"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        send_frame(p->fds[0], CHANNEL_MAGIC, 0, strlen(texts[i]), texts[i], -1);
        assert_refused_then_usable(p, "is not one JSON object");
    }
}

static void test_bad_text_in_a_memfd(void **state)
{
    struct pair *p = *state;
    int mfd = memfd_holding("{\"a\":1} trailing");
    send_frame(p->fds[0], CHANNEL_MAGIC, CHANNEL_FLAG_MEMFD, 16, NULL, mfd);
    close(mfd);
    assert_refused_then_usable(p, "is not one JSON object");
}

static void test_nesting_beyond_the_depth_limit(void **state)
{
    struct pair *p = *state;
    size_t depth = CHANNEL_MAX_DEPTH + 5;
    char *text = malloc(2 * depth + 8);
    size_t n = 0;
    text[n++] = '{';
    text[n++] = '"';
    text[n++] = 'a';
    text[n++] = '"';
    text[n++] = ':';
    for (size_t i = 0; i < depth; i++)
        text[n++] = '[';
    for (size_t i = 0; i < depth; i++)
        text[n++] = ']';
    text[n++] = '}';
    text[n] = '\0';
    send_frame(p->fds[0], CHANNEL_MAGIC, 0, n, text, -1);
    free(text);
    assert_refused_then_usable(p, "is not one JSON object");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_small_message_round_trip),
        T(test_sizes_around_the_inline_limit),
        T(test_five_megabytes_of_nested_content),
        T(test_eof_after_the_peer_closes),
        T(test_packet_shorter_than_the_header),
        T(test_wrong_magic),
        T(test_length_above_the_maximum),
        T(test_length_disagrees_with_inline_bytes),
        T(test_memfd_flag_without_fd),
        T(test_memfd_flag_with_inline_bytes_too),
        T(test_memfd_of_the_wrong_size),
        T(test_fd_without_memfd_flag_is_closed),
        T(test_packet_larger_than_inline_is_refused),
        T(test_text_that_is_not_an_object),
        T(test_trailing_garbage_after_the_object),
        T(test_bad_text_in_a_memfd),
        T(test_nesting_beyond_the_depth_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
