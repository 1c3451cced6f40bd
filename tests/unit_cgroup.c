/* Per-sandbox cgroups on the real hierarchies of the machine running the
 * tests: skipped without root or without a hierarchy the test may write. Every
 * group lives under codejail.<pid of this test>, which the teardown removes
 * even after a failed assertion. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <mntent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cgroup.h"

#define MiB (1024 * 1024)

/* Exit statuses of a child that failed before doing what it was forked for. */
#define CHILD_ATTACH_FAILED 100
#define CHILD_FORK_FAILED   101

static struct cj_cgroup_root root;

/* Process groups of the children the tests fork, so that the teardown can
 * kill them without relying on the code under test. */
static pid_t families[8];
static int family_count;

static pid_t fork_family(void)
{
    assert_true(family_count < (int)(sizeof families / sizeof families[0]));
    pid_t pid = fork();
    assert_true(pid >= 0);
    /* Both sides set the group, so that it exists whichever runs first. */
    if (pid == 0) {
        setpgid(0, 0);
        return 0;
    }
    setpgid(pid, pid);
    families[family_count++] = pid;
    return pid;
}

static int distinct_fds(const struct cj_cgroup_root *r, int fds[3])
{
    const int all[3] = {r->unified_fd, r->memory_fd, r->pids_fd};
    int n = 0;
    for (int i = 0; i < 3; i++) {
        bool seen = all[i] < 0;
        for (int j = 0; j < n; j++)
            seen = seen || fds[j] == all[i];
        if (!seen)
            fds[n++] = all[i];
    }
    return n;
}

static void fd_path(int fd, char *out, size_t size)
{
    char link[32];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, out, size - 1);
    assert_true(n > 0);
    out[n] = '\0';
}

static void open_root_or_skip(void)
{
    if (geteuid() != 0)
        skip();
    cj_error err = {0};
    if (cj_cgroup_root_open(&root, &err) < 0)
        fail_msg("cj_cgroup_root_open: %s", err.msg);
    if (!cj_cgroup_root_usable(&root))
        skip();
}

static int setup(void **state)
{
    (void)state;
    root = CJ_CGROUP_ROOT_NONE;
    return 0;
}

/* Runs after failed assertions too, so that a failing test leaves nothing in
 * the host's hierarchies: its processes are killed by process group, then
 * each hierarchy is emptied on its own, because a test may have used only
 * some of them. */
static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < family_count; i++)
        kill(-families[i], SIGKILL);
    family_count = 0;
    while (waitpid(-1, NULL, 0) > 0)
        ;
    static const char *const names[] = {"t1", "stale"};
    int fds[3];
    int n = distinct_fds(&root, fds);
    for (int i = 0; i < n; i++) {
        struct cj_cgroup_root one = {.memory_fd = fds[i], .pids_fd = -1, .unified_fd = -1};
        for (size_t j = 0; j < sizeof names / sizeof names[0]; j++) {
            cj_error err;
            cj_cgroup_kill(&one, names[j], &err);
            cj_cgroup_destroy(&one, names[j], &err);
        }
    }
    cj_cgroup_root_close(&root);
    return 0;
}

/* Number of pids listed in <name>/cgroup.procs under dirfd. */
static int count_procs(int dirfd, const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/cgroup.procs", name);
    int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    char buf[8192];
    ssize_t n = read(fd, buf, sizeof buf);
    assert_true(n >= 0);
    close(fd);
    int lines = 0;
    for (ssize_t i = 0; i < n; i++)
        lines += buf[i] == '\n';
    return lines;
}

static bool group_exists(int dirfd, const char *name)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, 0) == 0)
        return true;
    assert_int_equal(errno, ENOENT);
    return false;
}

static void create(const struct cj_cgroup_root *r, const char *name, uint64_t memory_bytes,
                   uint64_t pids_max)
{
    cj_error err = {0};
    if (cj_cgroup_create(r, name, memory_bytes, pids_max, &err) < 0)
        fail_msg("cj_cgroup_create(%s): %s", name, err.msg);
}

static void attach_self_or_exit(const struct cj_cgroup_root *r, const char *name)
{
    cj_error err;
    if (cj_cgroup_attach(r, name, getpid(), false, &err) < 0) {
        fprintf(stderr, "cj_cgroup_attach: %s\n", err.msg);
        _exit(CHILD_ATTACH_FAILED);
    }
}

static void kill_group(const struct cj_cgroup_root *r, const char *name)
{
    cj_error err = {0};
    if (cj_cgroup_kill(r, name, &err) < 0)
        fail_msg("cj_cgroup_kill(%s): %s", name, err.msg);
}

/* Waits (bounded) for every child and grandchild (the test is their
 * subreaper); returns how many there were, failing unless each was
 * SIGKILLed. */
static int reap_killed(void)
{
    int reaped = 0;
    for (int tries = 0;; tries++) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid < 0)
            break;
        if (pid == 0) {
            assert_true(tries < 5000);
            nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
            continue;
        }
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
            fail_msg("process %d ended with status %#x, not by SIGKILL", (int)pid, status);
        reaped++;
    }
    assert_int_equal(errno, ECHILD);
    return reaped;
}

static void test_root_open_makes_and_close_removes_parents(void **state)
{
    (void)state;
    open_root_or_skip();
    if (root.memory_v2)
        assert_int_equal(root.memory_fd, root.unified_fd);
    if (root.pids_v2)
        assert_int_equal(root.pids_fd, root.unified_fd);

    int fds[3];
    int n = distinct_fds(&root, fds);
    char paths[3][4096];
    char expected[32];
    snprintf(expected, sizeof expected, "/codejail.%d", (int)getpid());
    for (int i = 0; i < n; i++) {
        fd_path(fds[i], paths[i], sizeof paths[i]);
        const char *base = strrchr(paths[i], '/');
        assert_string_equal(base, expected);
    }
    cj_cgroup_root_close(&root);
    assert_int_equal(root.memory_fd, -1);
    assert_int_equal(root.pids_fd, -1);
    assert_int_equal(root.unified_fd, -1);
    for (int i = 0; i < n; i++) {
        struct stat st;
        assert_int_equal(stat(paths[i], &st), -1);
        assert_int_equal(errno, ENOENT);
    }
}

/* Whether the caller's group in the hierarchy mounted with `fstype` (and
 * `controller` for v1) is writable, found by a simpler route than the
 * library's: it assumes the mount shows the whole hierarchy, so a true answer
 * says where the library must find a group, and a false one says nothing. */
static bool own_group_writable(const char *fstype, const char *controller)
{
    char mountpoint[4096] = "";
    FILE *mounts = setmntent("/proc/self/mounts", "r");
    assert_non_null(mounts);
    for (struct mntent *m; (m = getmntent(mounts)) != NULL && !mountpoint[0];) {
        if (strcmp(m->mnt_type, fstype) == 0 && (!controller || hasmntopt(m, controller)))
            snprintf(mountpoint, sizeof mountpoint, "%s", m->mnt_dir);
    }
    endmntent(mounts);
    if (!mountpoint[0])
        return false;

    FILE *cgroups = fopen("/proc/self/cgroup", "r");
    assert_non_null(cgroups);
    char line[4096];
    char own[4096] = "";
    while (!own[0] && fgets(line, sizeof line, cgroups)) {
        line[strcspn(line, "\n")] = '\0';
        char *controllers = strchr(line, ':') + 1;
        char *path = strchr(controllers, ':');
        *path++ = '\0';
        bool match = controller ? strstr(controllers, controller) != NULL : !controllers[0];
        if (match)
            snprintf(own, sizeof own, "%s", path);
    }
    fclose(cgroups);
    if (!own[0])
        return false;
    char dir[8192];
    snprintf(dir, sizeof dir, "%s%s", mountpoint, own);
    return access(dir, W_OK) == 0;
}

static void test_root_open_uses_each_writable_hierarchy(void **state)
{
    (void)state;
    open_root_or_skip();
    if (own_group_writable("cgroup2", NULL))
        assert_true(root.unified_fd >= 0);
    if (own_group_writable("cgroup", "memory")) {
        assert_true(root.memory_fd >= 0);
        assert_false(root.memory_v2);
    }
    if (own_group_writable("cgroup", "pids")) {
        assert_true(root.pids_fd >= 0);
        assert_false(root.pids_v2);
    }
}

/* Forks a child into group `name` that tries to fork 10 sleepers; returns how
 * many of those forks failed with EAGAIN. The sleepers stay in the group. */
static int forks_refused(const char *name)
{
    pid_t pid = fork_family();
    if (pid == 0) {
        attach_self_or_exit(&root, name);
        int refused = 0;
        for (int i = 0; i < 10; i++) {
            pid_t sleeper = fork();
            if (sleeper == 0) {
                pause();
                _exit(0);
            }
            if (sleeper < 0 && errno != EAGAIN)
                _exit(CHILD_FORK_FAILED);
            refused += sleeper < 0;
        }
        _exit(refused);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_true(WEXITSTATUS(status) <= 10);
    return WEXITSTATUS(status);
}

static void test_pids_limit(void **state)
{
    (void)state;
    open_root_or_skip();
    if (root.pids_fd < 0)
        skip();
    create(&root, "t1", 64 * MiB, 5);
    /* The forking child is one of the five. */
    assert_int_equal(forks_refused("t1"), 6);
    assert_int_equal(count_procs(root.pids_fd, "t1"), 4);
    kill_group(&root, "t1");
    assert_int_equal(reap_killed(), 4);
}

static void test_no_pids_limit_when_zero(void **state)
{
    (void)state;
    open_root_or_skip();
    if (root.pids_fd < 0)
        skip();
    create(&root, "t1", 0, 0);
    assert_int_equal(forks_refused("t1"), 0);
    kill_group(&root, "t1");
    assert_int_equal(reap_killed(), 10);
}

/* Forks a child into group `name` that touches 200 MiB; returns its status. */
static int touch_200_mib(const char *name)
{
    pid_t pid = fork_family();
    if (pid == 0) {
        attach_self_or_exit(&root, name);
        size_t size = 200 * MiB;
        char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            _exit(CHILD_FORK_FAILED);
        for (size_t off = 0; off < size; off += 4096)
            p[off] = 1;
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void test_memory_limit(void **state)
{
    (void)state;
    open_root_or_skip();
    if (root.memory_fd < 0)
        skip();
    create(&root, "t1", 64 * MiB, 0);
    int status = touch_200_mib("t1");
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
}

static void test_no_memory_limit_when_zero(void **state)
{
    (void)state;
    open_root_or_skip();
    if (root.memory_fd < 0)
        skip();
    create(&root, "t1", 0, 0);
    int status = touch_200_mib("t1");
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* A child in group `name` with three sleepers and a process that forks
 * sleepers as fast as it can, as a sandbox might while it is being killed.
 * Returns once at least 10 processes are in the group. */
static void start_busy_group(const struct cj_cgroup_root *r, const char *name)
{
    pid_t pid = fork_family();
    if (pid == 0) {
        attach_self_or_exit(r, name);
        for (int i = 0; i < 4; i++) {
            pid_t p = fork();
            if (p < 0)
                _exit(CHILD_FORK_FAILED);
            if (p > 0)
                continue;
            while (i == 3 && fork() != 0)
                ;
            pause();
            _exit(0);
        }
        pause();
        _exit(0);
    }
    int fds[3];
    distinct_fds(r, fds);
    for (int tries = 0; count_procs(fds[0], name) < 10; tries++) {
        assert_true(tries < 2000);
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    }
}

static void kill_busy_group(const struct cj_cgroup_root *r)
{
    create(r, "t1", 0, 64);
    start_busy_group(r, "t1");
    kill_group(r, "t1");
    int fds[3];
    int n = distinct_fds(r, fds);
    for (int i = 0; i < n; i++)
        assert_int_equal(count_procs(fds[i], "t1"), 0);
    assert_true(reap_killed() >= 10);
}

static void test_kill(void **state)
{
    (void)state;
    open_root_or_skip();
    kill_busy_group(&root);
}

/* The same with the cgroup v1 hierarchies only, where processes are killed
 * one by one from cgroup.procs instead of through cgroup.kill. */
static void test_kill_without_cgroup2(void **state)
{
    (void)state;
    open_root_or_skip();
    struct cj_cgroup_root v1 = root;
    v1.unified_fd = -1;
    if (v1.memory_v2)
        v1.memory_fd = -1;
    if (v1.pids_v2)
        v1.pids_fd = -1;
    if (!cj_cgroup_root_usable(&v1))
        skip();
    kill_busy_group(&v1);
}

static void read_own_cgroups(char *out, size_t size)
{
    int fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        _exit(CHILD_ATTACH_FAILED);
    ssize_t n = read(fd, out, size - 1);
    close(fd);
    if (n < 0)
        _exit(CHILD_ATTACH_FAILED);
    out[n] = '\0';
}

/* The launcher's way to have a sandbox born in its cgroup v1 groups: join
 * them, then fork; the child is there without a move of its own. */
static void test_join_group_then_child_is_born_there(void **state)
{
    (void)state;
    open_root_or_skip();
    create(&root, "t1", 0, 0);
    pid_t pid = fork_family();
    if (pid == 0) {
        char home[4096], away[4096], born[4096];
        read_own_cgroups(home, sizeof home);
        attach_self_or_exit(&root, "t1");
        read_own_cgroups(away, sizeof away);
        int report[2];
        if (pipe(report) < 0)
            _exit(CHILD_FORK_FAILED);
        pid_t child = fork();
        if (child < 0)
            _exit(CHILD_FORK_FAILED);
        if (child == 0) {
            read_own_cgroups(born, sizeof born);
            _exit(write(report[1], born, strlen(born) + 1) > 0 ? 0 : 1);
        }
        ssize_t n = read(report[0], born, sizeof born);
        int status;
        if (n <= 0 || waitpid(child, &status, 0) != child)
            _exit(CHILD_FORK_FAILED);
        /* 1: moved; 2: the child was born in the group. */
        _exit((strcmp(home, away) != 0) | (strcmp(born, away) == 0) << 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 3);
    cj_error err = {0};
    assert_int_equal(cj_cgroup_destroy(&root, "t1", &err), 0);
}

static void test_destroy_removes_groups(void **state)
{
    (void)state;
    open_root_or_skip();
    create(&root, "t1", 64 * MiB, 5);
    int fds[3];
    int n = distinct_fds(&root, fds);
    for (int i = 0; i < n; i++)
        assert_true(group_exists(fds[i], "t1"));
    cj_error err = {0};
    assert_int_equal(cj_cgroup_destroy(&root, "t1", &err), 0);
    for (int i = 0; i < n; i++)
        assert_false(group_exists(fds[i], "t1"));
    /* Destroying what is gone is not an error (clean-up paths repeat it). */
    assert_int_equal(cj_cgroup_destroy(&root, "t1", &err), 0);
}

static void test_errors_name_the_file(void **state)
{
    (void)state;
    open_root_or_skip();
    create(&root, "t1", 0, 0);
    cj_error err = {0};
    /* Far above any pid_max, so no such process. */
    assert_int_equal(cj_cgroup_attach(&root, "t1", 2000000000, false, &err), -1);
    assert_int_equal(err.errnum, ESRCH);
    assert_non_null(strstr(err.msg, "write /"));
    assert_non_null(strstr(err.msg, "/t1/cgroup.procs: "));
    assert_int_equal(cj_cgroup_create(&root, "t1", 0, 0, &err), -1);
    assert_int_equal(err.errnum, EEXIST);
    assert_non_null(strstr(err.msg, "mkdir /"));
    assert_int_equal(cj_cgroup_create(&root, "..", 0, 0, &err), -1);
    assert_int_equal(err.errnum, EINVAL);
    assert_int_equal(cj_cgroup_create(&root, "a/b", 0, 0, &err), -1);
    assert_int_equal(err.errnum, EINVAL);
}

/* A run that crashed left its parent with an empty group in it; a new run
 * with the same pid reuses the parent and removes the group. */
static void test_stale_parent_is_reused(void **state)
{
    (void)state;
    open_root_or_skip();
    create(&root, "stale", 0, 0);
    int fds[3];
    int n = distinct_fds(&root, fds);
    /* A crashed run: every descriptor closed, the locks with them. */
    for (int i = 0; i < n; i++)
        close(fds[i]);
    cj_cgroup_root_drop_locks(&root);
    root = CJ_CGROUP_ROOT_NONE;

    cj_error err = {0};
    if (cj_cgroup_root_open(&root, &err) < 0)
        fail_msg("cj_cgroup_root_open: %s", err.msg);
    assert_int_equal(distinct_fds(&root, fds), n);
    for (int i = 0; i < n; i++)
        assert_false(group_exists(fds[i], "stale"));
}

static char leftover[4096];

static int find_leftover(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    char name[32];
    snprintf(name, sizeof name, "codejail.%d", (int)getpid());
    if (type == FTW_D && strcmp(path + ftw->base, name) == 0) {
        snprintf(leftover, sizeof leftover, "%s", path);
        return 1;
    }
    return 0;
}

/* Runs last: every earlier test's parents must be gone from every hierarchy. */
static void test_nothing_left_behind(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    leftover[0] = '\0';
    int rc = nftw("/sys/fs/cgroup", find_leftover, 16, FTW_PHYS);
    if (rc != 0)
        fail_msg("left behind: %s", leftover[0] ? leftover : "(nftw failed)");
}

int main(void)
{
    /* Sleepers orphaned by a killed parent come back to the test, which
     * checks how each of them ended. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
        perror("prctl(PR_SET_CHILD_SUBREAPER)");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_root_open_makes_and_close_removes_parents, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_root_open_uses_each_writable_hierarchy, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pids_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_pids_limit_when_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_memory_limit_when_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_without_cgroup2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_join_group_then_child_is_born_there, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_removes_groups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_name_the_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_parent_is_reused, setup, teardown),
        cmocka_unit_test(test_nothing_left_behind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
