/* Tests for local blob storage: key rules, transient failures, SHA-256. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "ingest/storage.h"

#define PROPS TESTDATA_DIR "/splunk_ta_paloalto/default/props.conf"

static char root[64];

static void write_file(const char *rel, const char *content)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    strcpy(root, "/tmp/cw_storage_XXXXXX");
    assert_non_null(mkdtemp(root));
    char path[256];
    snprintf(path, sizeof path, "%s/runs", root);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/runs/42", root);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/runs/42/dir.tgz", root);
    assert_int_equal(mkdir(path, 0755), 0);
    write_file("runs/42/etc.tar.gz", "abc");
    write_file("runs/42/empty.conf", "");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static void test_open_ok(void **state)
{
    (void)state;
    struct cw_error err;
    int fd = -1;
    assert_int_equal(storage_open(root, "runs/42/etc.tar.gz", &fd, &err), 0);
    char buf[8] = {0};
    assert_int_equal(read(fd, buf, sizeof buf), 3);
    assert_string_equal(buf, "abc");
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    close(fd);
    /* Harmless spellings are normalised like archive entries. */
    assert_int_equal(storage_open(root, "./runs//42/etc.tar.gz", &fd, &err), 0);
    close(fd);
}

static void expect_open_fail(const char *key, enum cw_error_class cls, const char *msg)
{
    struct cw_error err;
    int fd = -7;
    cw_error_clear(&err);
    assert_int_equal(storage_open(root, key, &fd, &err), -1);
    assert_int_equal(fd, -7);
    assert_int_equal(err.cls, cls);
    assert_string_equal(err.message, msg);
}

static void test_open_unsafe_keys_are_permanent(void **state)
{
    (void)state;
    expect_open_fail("/etc/passwd", CW_ERR_PERMANENT,
                     "storage object key '/etc/passwd' is unsafe (absolute, empty or ..)");
    expect_open_fail("../etc/passwd", CW_ERR_PERMANENT,
                     "storage object key '../etc/passwd' is unsafe (absolute, empty or ..)");
    expect_open_fail("runs/../../x", CW_ERR_PERMANENT,
                     "storage object key 'runs/../../x' is unsafe (absolute, empty or ..)");
    expect_open_fail("", CW_ERR_PERMANENT,
                     "storage object key '' is unsafe (absolute, empty or ..)");
}

static void test_open_missing_is_transient(void **state)
{
    (void)state;
    expect_open_fail("runs/42/missing.tgz", CW_ERR_TRANSIENT,
                     "storage object runs/42/missing.tgz unreadable: No such file or directory");
    /* a directory where the blob should be (root can read anything, so no chmod 000) */
    expect_open_fail("runs/42/dir.tgz", CW_ERR_TRANSIENT,
                     "storage object runs/42/dir.tgz unreadable: Is a directory");
    /* a file where a directory should be */
    expect_open_fail("runs/42/etc.tar.gz/x", CW_ERR_TRANSIENT,
                     "storage object runs/42/etc.tar.gz/x unreadable: Not a directory");

    /* a storage root that is not mounted yet */
    struct cw_error err;
    int fd;
    assert_int_equal(storage_open("/nonexistent/cw_root", "runs/1/a.tgz", &fd, &err), -1);
    assert_int_equal(err.cls, CW_ERR_TRANSIENT);
    assert_string_equal(err.message,
                        "storage object runs/1/a.tgz unreadable: No such file or directory");
    /* the full path is in the traceback, not in the message */
    assert_int_equal(err.nframes, 2);
    assert_non_null(strstr(err.frames[1].detail, "/nonexistent/cw_root/runs/1/a.tgz"));
}

static void test_sha256_known_vectors(void **state)
{
    (void)state;
    struct cw_error err;
    int fd;
    char hex[65];
    uint64_t size = 99;
    assert_int_equal(storage_open(root, "runs/42/etc.tar.gz", &fd, &err), 0);
    assert_int_equal(storage_sha256_fd(fd, hex, &size, &err), 0);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(size, 3);
    assert_int_equal(lseek(fd, 0, SEEK_CUR), 0); /* rewound for the archive reader */
    /* from the current offset: sha256("bc") */
    assert_int_equal(lseek(fd, 1, SEEK_SET), 1);
    assert_int_equal(storage_sha256_fd(fd, hex, &size, &err), 0);
    assert_int_equal(size, 2);
    assert_string_equal(hex, "1e0bbd6c686ba050b8eb03ffeedc64fdc9d80947fce821abbe5d6dc8d252c5ac");
    close(fd);

    assert_int_equal(storage_open(root, "runs/42/empty.conf", &fd, &err), 0);
    assert_int_equal(storage_sha256_fd(fd, hex, &size, &err), 0);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_int_equal(size, 0);
    close(fd);
}

/* Compares with coreutils' sha256sum over a real configuration file. */
static void test_sha256_matches_sha256sum(void **state)
{
    (void)state;
    FILE *p = popen("sha256sum '" PROPS "'", "r");
    assert_non_null(p);
    char want[65] = {0};
    assert_int_equal(fscanf(p, "%64s", want), 1);
    assert_int_equal(pclose(p), 0);
    struct stat st;
    assert_int_equal(stat(PROPS, &st), 0);

    int fd = open(PROPS, O_RDONLY);
    assert_true(fd >= 0);
    char hex[65];
    uint64_t size;
    struct cw_error err;
    assert_int_equal(storage_sha256_fd(fd, hex, &size, &err), 0);
    assert_string_equal(hex, want);
    assert_int_equal(size, (uint64_t)st.st_size);
    /* and again after the rewind: the same answer */
    assert_int_equal(storage_sha256_fd(fd, hex, NULL, &err), 0);
    assert_string_equal(hex, want);
    close(fd);
}

static void test_sha256_read_error_is_transient(void **state)
{
    (void)state;
    char hex[65];
    uint64_t size;
    struct cw_error err;
    int fd = open(root, O_RDONLY | O_DIRECTORY);
    assert_true(fd >= 0);
    assert_int_equal(storage_sha256_fd(fd, hex, &size, &err), -1);
    assert_int_equal(err.cls, CW_ERR_TRANSIENT);
    assert_string_equal(err.message, "reading storage object failed: Is a directory");
    close(fd);
    assert_int_equal(storage_sha256_fd(-1, hex, &size, &err), -1);
    assert_int_equal(err.cls, CW_ERR_TRANSIENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_ok),
        cmocka_unit_test(test_open_unsafe_keys_are_permanent),
        cmocka_unit_test(test_open_missing_is_transient),
        cmocka_unit_test(test_sha256_known_vectors),
        cmocka_unit_test(test_sha256_matches_sha256sum),
        cmocka_unit_test(test_sha256_read_error_is_transient),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
