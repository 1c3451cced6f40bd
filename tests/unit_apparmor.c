/* AppArmor: this kernel has none, so the profile change itself cannot be
 * exercised. What can be: the enabled check, failure (not a crash) against
 * the real /proc, and, against a fake procfs directory, the exact command
 * written, the fallback attribute file and the read-back check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apparmor.h"
#include "cleanup.h"

static char root[PATH_MAX];

static int setup_root(void **state)
{
    (void)state;
    strcpy(root, "/tmp/cj-apparmor-XXXXXX");
    return mkdtemp(root) ? 0 : -1;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

static int teardown_root(void **state)
{
    (void)state;
    return nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

enum attr_file { REGULAR, FIFO };

/* Makes <root>/<name>/thread-self/attr/[apparmor/]current and returns a
 * descriptor of <root>/<name>, to stand in for /proc. */
static int fake_proc(const char *name, bool apparmor_dir, enum attr_file kind, char *current)
{
    char dir[PATH_MAX];
    int n = snprintf(dir, sizeof dir, "%s/%s", root, name);
    assert_true(n > 0 && n < (int)sizeof dir - 64);
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_int_equal(snprintf(current, PATH_MAX, "%s/thread-self", dir), n + 12);
    assert_int_equal(mkdir(current, 0755), 0);
    strcat(current, "/attr");
    assert_int_equal(mkdir(current, 0755), 0);
    if (apparmor_dir) {
        strcat(current, "/apparmor");
        assert_int_equal(mkdir(current, 0755), 0);
    }
    strcat(current, "/current");
    if (kind == FIFO) {
        assert_int_equal(mkfifo(current, 0600), 0);
    } else {
        cleanup_close int fd = open(current, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
    }
    int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

static void assert_file_is(const char *path, const char *expected)
{
    char buf[256];
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    assert_true(n >= 0);
    buf[n] = '\0';
    assert_string_equal(buf, expected);
}

static void test_enabled_matches_sysfs(void **state)
{
    (void)state;
    char param = '-'; /* stays '-' when the module is absent */
    cleanup_close int fd = open("/sys/module/apparmor/parameters/enabled", O_RDONLY | O_CLOEXEC);
    if (fd >= 0)
        assert_int_equal(read(fd, &param, 1), 1);
    else
        assert_int_equal(errno, ENOENT);
    /* The module's switch decides, with or without securityfs (containers
     * rarely mount it). */
    bool expected = param == 'Y';
    print_message("module parameter %c, AppArmor %s\n", param, expected ? "enabled" : "disabled");
    assert_int_equal(cj_apparmor_enabled(), expected);
}

static void test_enter_fails_without_apparmor(void **state)
{
    (void)state;
    /* Where AppArmor is on, a profile that is never loaded keeps this test
     * from confining the test process. */
    const char *profile =
        cj_apparmor_enabled() ? "codejail-unit-test-never-loaded" : CJ_APPARMOR_PROFILE;
    cleanup_close int proc_fd = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_true(proc_fd >= 0);
    cj_error err = {0};
    assert_int_equal(cj_apparmor_enter(proc_fd, profile, &err), -1);
    print_message("%s\n", err.msg);
    assert_int_not_equal(err.errnum, 0);
    assert_non_null(strstr(err.msg, "apparmor: "));

    /* The probe's child fails the same way, and its message and errno come
     * back (ENOENT: the profile is not loaded). */
    cj_error probe_err = {0};
    assert_int_equal(cj_apparmor_probe(proc_fd, profile, &probe_err), -1);
    assert_string_equal(probe_err.msg, err.msg);
    assert_int_equal(probe_err.errnum, err.errnum);
    if (cj_apparmor_enabled())
        assert_int_equal(probe_err.errnum, ENOENT);
}

/* Against a fake procfs whose attribute file reads back the enforce label,
 * the child succeeds and the probe does too; the label is read back in the
 * child, so the caller stays unconfined. */
static void test_probe_succeeds_when_the_child_enters(void **state)
{
    (void)state;
    char current[PATH_MAX];
    cleanup_close int proc_fd = fake_proc("probe", true, FIFO, current);
    cleanup_close int fifo = open(current, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    assert_true(fifo >= 0);
    static const char label[] = "codejail-sandbox (enforce)\n";
    assert_int_equal(write(fifo, label, sizeof label - 1), (ssize_t)(sizeof label - 1));
    cj_error err = {0};
    assert_int_equal(cj_apparmor_probe(proc_fd, CJ_APPARMOR_PROFILE, &err), 0);
}

/* A regular file reads back what was written, which is not a label: the
 * command must be exactly libapparmor's, and the mismatch an error. */
static void test_writes_changeprofile_and_checks_label(void **state)
{
    (void)state;
    char current[PATH_MAX];
    cleanup_close int proc_fd = fake_proc("regular", true, REGULAR, current);
    cj_error err = {0};
    assert_int_equal(cj_apparmor_enter(proc_fd, CJ_APPARMOR_PROFILE, &err), -1);
    assert_file_is(current, "changeprofile codejail-sandbox");
    print_message("%s\n", err.msg);
    assert_non_null(strstr(err.msg, "'changeprofile codejail-sandbox'"));
}

static void test_falls_back_to_attr_current(void **state)
{
    (void)state;
    char current[PATH_MAX];
    cleanup_close int proc_fd = fake_proc("fallback", false, REGULAR, current);
    cj_error err = {0};
    assert_int_equal(cj_apparmor_enter(proc_fd, CJ_APPARMOR_PROFILE, &err), -1);
    assert_file_is(current, "changeprofile codejail-sandbox");
}

/* With a FIFO as the attribute file, the test supplies the label the kernel
 * would report: it is queued before the call, so the read-back sees it
 * first (followed by the command, which the check must ignore as it would
 * ignore anything after the label's line). */
static void test_label_check(void **state)
{
    (void)state;
    static const struct {
        const char *label;
        int result;
    } cases[] = {
        {"codejail-sandbox (enforce)\n", 0},
        {"codejail-sandbox (complain)\n", -1},
        {"codejail-sandbox (unknown)\n", -1},
        {"codejail-sandbox (enforce) x\n", -1},
        {"codejail-sandbix (enforce)\n", -1},
        {"codejail-sandbox-other (enforce)\n", -1},
        {"unconfined\n", -1},
        {"", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[32], current[PATH_MAX];
        snprintf(name, sizeof name, "fifo%zu", i);
        cleanup_close int proc_fd = fake_proc(name, true, FIFO, current);
        /* Holding both ends keeps the function's opens from blocking. */
        cleanup_close int fifo = open(current, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        assert_true(fifo >= 0);
        size_t len = strlen(cases[i].label);
        assert_int_equal(write(fifo, cases[i].label, len), (ssize_t)len);
        cj_error err = {0};
        int rc = cj_apparmor_enter(proc_fd, CJ_APPARMOR_PROFILE, &err);
        if (rc < 0)
            print_message("%s\n", err.msg);
        assert_int_equal(rc, cases[i].result);
    }
}

static void test_rejects_overlong_profile(void **state)
{
    (void)state;
    char profile[300];
    memset(profile, 'a', sizeof profile - 1);
    profile[sizeof profile - 1] = '\0';
    char current[PATH_MAX];
    cleanup_close int proc_fd = fake_proc("long", true, REGULAR, current);
    cj_error err = {0};
    assert_int_equal(cj_apparmor_enter(proc_fd, profile, &err), -1);
    assert_int_equal(err.errnum, ENAMETOOLONG);
    assert_file_is(current, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enabled_matches_sysfs),
        cmocka_unit_test(test_enter_fails_without_apparmor),
        cmocka_unit_test(test_probe_succeeds_when_the_child_enters),
        cmocka_unit_test(test_writes_changeprofile_and_checks_label),
        cmocka_unit_test(test_falls_back_to_attr_current),
        cmocka_unit_test(test_label_check),
        cmocka_unit_test(test_rejects_overlong_profile),
    };
    return cmocka_run_group_tests(tests, setup_root, teardown_root);
}
