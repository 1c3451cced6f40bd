/* The run directory: jailed_code and tmp/ with exact modes and owners,
 * uploaded files written read-only and never over another file, and removal
 * that does not follow links the code left. (The mounted variant runs in
 * every integration test; this is the host-directory variant.) */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "rootfs.h"

static const char runner[] = "print('runner')\n";

static int make_run_dir(void **state)
{
    static char path[64];
    char base[] = "/tmp/cj-unit-rootfs-XXXXXX";
    if (!mkdtemp(base))
        return -1;
    snprintf(path, sizeof path, "%s/codejail-abc", base);
    *state = path;
    return 0;
}

static int remove_base(void **state)
{
    char *path = *state;
    cj_error err = {0};
    cj_rootfs_remove_host_run_dir(path, &err);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    rmdir(path);
    return 0;
}

static struct cj_run_dir spec(const char *path)
{
    return (struct cj_run_dir){
        .path = path,
        .runner_code = runner,
        .runner_code_len = sizeof runner - 1,
        .owner_uid = getuid(),
        .owner_gid = getgid(),
        .tmp_size = 1 << 20,
    };
}

static void assert_mode(const char *path, mode_t mode)
{
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, mode);
}

static void test_layout_and_modes(void **state)
{
    const char *path = *state;
    struct cj_run_dir run = spec(path);
    cj_error err = {0};
    assert_int_equal(cj_rootfs_add_host_run_dir(&run, &err), 0);
    char file[256];
    assert_mode(path, 0555);
    snprintf(file, sizeof file, "%s/jailed_code", path);
    assert_mode(file, 0444);
    FILE *f = fopen(file, "r");
    assert_non_null(f);
    char back[64] = {0};
    assert_int_equal(fread(back, 1, sizeof back - 1, f), sizeof runner - 1);
    fclose(f);
    assert_string_equal(back, runner);
    snprintf(file, sizeof file, "%s/" CJ_RUN_TMP, path);
    assert_mode(file, 0700);
    /* A second run directory of the same name is refused, not reused. */
    assert_int_equal(cj_rootfs_add_host_run_dir(&run, &err), -1);
    assert_int_equal(err.errnum, EEXIST);
}

static void test_put_file(void **state)
{
    const char *path = *state;
    struct cj_run_dir run = spec(path);
    cj_error err = {0};
    assert_int_equal(cj_rootfs_add_host_run_dir(&run, &err), 0);
    int src = memfd_create("upload", MFD_CLOEXEC);
    assert_true(src >= 0);
    assert_int_equal(write(src, "PK\3\4zip", 7), 7);
    assert_int_equal(cj_rootfs_put_file(path, "python_lib.zip", src, 7, &err), 0);
    char file[256];
    snprintf(file, sizeof file, "%s/python_lib.zip", path);
    assert_mode(file, 0444);
    struct stat st;
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(st.st_size, 7);
    /* Never over an existing file: not jailed_code, not a second upload. */
    assert_int_equal(cj_rootfs_put_file(path, "jailed_code", src, 7, &err), -1);
    assert_int_equal(err.errnum, EEXIST);
    assert_int_equal(cj_rootfs_put_file(path, "python_lib.zip", src, 7, &err), -1);
    /* A source shorter than announced is an error, not a short file. */
    assert_int_equal(cj_rootfs_put_file(path, "other.zip", src, 70, &err), -1);
    close(src);
}

static void test_remove_does_not_follow_links(void **state)
{
    const char *path = *state;
    struct cj_run_dir run = spec(path);
    cj_error err = {0};
    assert_int_equal(cj_rootfs_add_host_run_dir(&run, &err), 0);
    char outside[] = "/tmp/cj-unit-outside-XXXXXX";
    int fd = mkstemp(outside);
    assert_true(fd >= 0);
    close(fd);
    char link[256], dir[256];
    snprintf(link, sizeof link, "%s/" CJ_RUN_TMP "/link", path);
    snprintf(dir, sizeof dir, "%s/" CJ_RUN_TMP "/d", path);
    assert_int_equal(symlink(outside, link), 0);
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(cj_rootfs_remove_host_run_dir(path, &err), 0);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(access(outside, F_OK), 0);
    unlink(outside);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_layout_and_modes, make_run_dir, remove_base),
        cmocka_unit_test_setup_teardown(test_put_file, make_run_dir, remove_base),
        cmocka_unit_test_setup_teardown(test_remove_does_not_follow_links, make_run_dir,
                                        remove_base),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
