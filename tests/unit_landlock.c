/* Landlock rule set: each probe runs in a forked child that has applied the
 * rule set, and reports 0 or the errno it saw as its exit status. Each denial
 * is checked against an unrestricted child first, so that it is known to come
 * from Landlock and not from the test tree or the host. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "landlock.h"

#define SETUP_FAILED 255 /* exit status of a child that could not apply the rule set */

static char root[PATH_MAX];
static char read_dir[PATH_MAX];
static char read_file[PATH_MAX];
static char read_exe[PATH_MAX];
static char read_new[PATH_MAX];
static char read_fifo[PATH_MAX];
static char read_sock[PATH_MAX];
static char write_dir[PATH_MAX];
static char write_exe[PATH_MAX];
static char write_file[PATH_MAX];
static char write_renamed[PATH_MAX];
static char write_sub[PATH_MAX];
static char write_fifo[PATH_MAX];
static char write_sock[PATH_MAX];

/* /usr, as in the sandbox, so that the dynamic loader is readable and only
 * the missing execute right can stop an exec. */
static const char *read_paths[] = {NULL, "/usr", NULL};
static const char *write_paths[2];
static const char *const device_paths[] = {"/dev/null", NULL};
static const struct cj_landlock_paths paths = {read_paths, write_paths, device_paths};

static struct sockaddr_in closed_port;   /* a loopback TCP port nobody listens on */
static struct sockaddr_un abstract_addr; /* an abstract socket the test process listens on */
static socklen_t abstract_len;

/* Every path a probe uses is made here, in the test process, because a
 * failing cmocka assertion inside a forked child would not end the child. */
static void path_in(char *out, const char *dir, const char *name)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < sizeof((struct sockaddr_un *)0)->sun_path);
}

static void copy_file(const char *from, const char *to, mode_t mode)
{
    cleanup_close int in = open(from, O_RDONLY | O_CLOEXEC);
    assert_true(in >= 0);
    cleanup_close int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    assert_true(out >= 0);
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        assert_int_equal(write(out, buf, (size_t)n), n);
    assert_int_equal(n, 0);
}

static int setup_tree(void **state)
{
    (void)state;
    strcpy(root, "/tmp/cj-landlock-XXXXXX");
    assert_non_null(mkdtemp(root));
    path_in(read_dir, root, "read");
    path_in(write_dir, root, "write");
    path_in(read_file, read_dir, "data");
    path_in(read_exe, read_dir, "true");
    path_in(read_new, read_dir, "new");
    path_in(read_fifo, read_dir, "fifo");
    path_in(read_sock, read_dir, "sock");
    path_in(write_exe, write_dir, "true");
    path_in(write_file, write_dir, "file");
    path_in(write_renamed, write_dir, "renamed");
    path_in(write_sub, write_dir, "sub");
    path_in(write_fifo, write_dir, "fifo");
    path_in(write_sock, write_dir, "sock");
    assert_int_equal(mkdir(read_dir, 0755), 0);
    assert_int_equal(mkdir(write_dir, 0755), 0);
    cleanup_close int fd = open(read_file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "data\n", 5), 5);
    copy_file("/bin/true", read_exe, 0755);
    copy_file("/bin/true", write_exe, 0755);
    read_paths[0] = read_dir;
    write_paths[0] = write_dir;
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

static int teardown_tree(void **state)
{
    (void)state;
    return nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Runs probe in a child, under the rule set when sandboxed, and returns what
 * it returned (0 or an errno). */
static int run(int (*probe)(void), bool sandboxed)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        cj_error err;
        if (sandboxed) {
            if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
                perror("PR_SET_NO_NEW_PRIVS");
                _exit(SETUP_FAILED);
            }
            if (cj_landlock_apply(&paths, &err) < 0) {
                fprintf(stderr, "%s\n", err.msg);
                _exit(SETUP_FAILED);
            }
        }
        _exit(probe());
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_not_equal(WEXITSTATUS(status), SETUP_FAILED);
    return WEXITSTATUS(status);
}

static void require_abi(int abi)
{
    if (cj_landlock_abi() < abi) {
        print_message("kernel Landlock ABI %d < %d\n", cj_landlock_abi(), abi);
        skip();
    }
}

/* Probes. */

static int open_path(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno;
    close(fd);
    return 0;
}

static int read_allowed_file(void)
{
    char buf[64];
    cleanup_close int fd = open(read_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    return read(fd, buf, sizeof buf) < 0 ? errno : 0;
}

static int read_etc_hosts(void)
{
    return open_path("/etc/hosts", O_RDONLY);
}

static int list_dir(const char *path)
{
    cleanup_dir DIR *d = opendir(path);
    if (!d)
        return errno;
    errno = 0;
    while (readdir(d))
        ;
    return errno;
}

static int list_root(void)
{
    return list_dir("/");
}

static int list_read_dir(void)
{
    return list_dir(read_dir);
}

static int write_read_file(void)
{
    return open_path(read_file, O_WRONLY);
}

static int create_in_read_dir(void)
{
    int rc = open_path(read_new, O_WRONLY | O_CREAT | O_EXCL);
    return rc ? rc : (unlink(read_new) < 0 ? errno : 0);
}

static int write_dir_round_trip(void)
{
    char buf[5];
    cleanup_close int fd = open(write_file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno;
    if (write(fd, "hello", 5) != 5 || pread(fd, buf, 5, 0) != 5 || ftruncate(fd, 0) < 0)
        return errno;
    if (rename(write_file, write_renamed) < 0 || unlink(write_renamed) < 0)
        return errno;
    if (mkdir(write_sub, 0700) < 0 || rmdir(write_sub) < 0)
        return errno;
    return 0;
}

static int write_dev_null(void)
{
    return open_path("/dev/null", O_WRONLY | O_TRUNC);
}

static int read_dev_zero(void)
{
    return open_path("/dev/zero", O_RDONLY);
}

static int exec_path(const char *path)
{
    char *const argv[] = {(char *)path, NULL};
    char *const envp[] = {NULL};
    execve(path, argv, envp);
    return errno;
}

static int exec_bin_true(void)
{
    return exec_path("/bin/true");
}

static int exec_in_read_dir(void)
{
    return exec_path(read_exe);
}

static int exec_in_write_dir(void)
{
    return exec_path(write_exe);
}

static int make_fifo(const char *path)
{
    if (mkfifo(path, 0600) < 0)
        return errno;
    return unlink(path) < 0 ? errno : 0;
}

static int fifo_in_write_dir(void)
{
    return make_fifo(write_fifo);
}

static int fifo_in_read_dir(void)
{
    return make_fifo(read_fifo);
}

static int bind_unix(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strcpy(addr.sun_path, path);
    cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
        return errno;
    return unlink(addr.sun_path) < 0 ? errno : 0;
}

static int bind_unix_in_write_dir(void)
{
    return bind_unix(write_sock);
}

static int bind_unix_in_read_dir(void)
{
    return bind_unix(read_sock);
}

static int tcp_connect_closed_port(void)
{
    cleanup_close int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    return connect(fd, (struct sockaddr *)&closed_port, sizeof closed_port) < 0 ? errno : 0;
}

static int tcp_bind_loopback(void)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cleanup_close int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    return bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 ? errno : 0;
}

static int signal_parent(void)
{
    return kill(getppid(), 0) < 0 ? errno : 0;
}

static int connect_abstract(void)
{
    cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    return connect(fd, (struct sockaddr *)&abstract_addr, abstract_len) < 0 ? errno : 0;
}

/* Tests. */

static void test_abi(void **state)
{
    (void)state;
    assert_true(cj_landlock_abi() >= 0);
    print_message("Landlock ABI %d\n", cj_landlock_abi());
}

/* The detail names exactly the rule sets the ABI has, and never claims TCP
 * or scoping rules an older kernel lacks. */
static void test_describe(void **state)
{
    (void)state;
    static const struct {
        int abi;
        const char *text;
    } cases[] = {
        {1, "ABI 1: filesystem only; no TCP rules (ABI 4), no scoping (ABI 6)"},
        {2, "ABI 2: filesystem only; no TCP rules (ABI 4), no scoping (ABI 6)"},
        {3, "ABI 3: filesystem only; no TCP rules (ABI 4), no scoping (ABI 6)"},
        {4, "ABI 4: filesystem, TCP bind and connect; no scoping (ABI 6)"},
        {5, "ABI 5: filesystem, TCP bind and connect; no scoping (ABI 6)"},
        {6, "ABI 6: filesystem, TCP bind and connect, scoping"},
        {7, "ABI 7: filesystem, TCP bind and connect, scoping"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char detail[96];
        cj_landlock_describe(cases[i].abi, detail, sizeof detail);
        assert_string_equal(detail, cases[i].text);
    }
}

static void test_read_path_is_readable(void **state)
{
    (void)state;
    require_abi(1);
    assert_int_equal(run(read_allowed_file, true), 0);
    assert_int_equal(run(list_read_dir, true), 0);
}

static void test_outside_is_unreadable(void **state)
{
    (void)state;
    require_abi(1);
    assert_int_equal(run(read_etc_hosts, false), 0);
    assert_int_equal(run(read_etc_hosts, true), EACCES);
    assert_int_equal(run(list_root, false), 0);
    assert_int_equal(run(list_root, true), EACCES);
}

static void test_read_path_is_not_writable(void **state)
{
    (void)state;
    require_abi(1);
    assert_int_equal(run(create_in_read_dir, false), 0);
    assert_int_equal(run(create_in_read_dir, true), EACCES);
    assert_int_equal(run(write_read_file, false), 0);
    assert_int_equal(run(write_read_file, true), EACCES);
}

static void test_write_path_is_writable(void **state)
{
    (void)state;
    require_abi(1);
    assert_int_equal(run(write_dir_round_trip, true), 0);
}

static void test_device_paths(void **state)
{
    (void)state;
    require_abi(1);
    assert_int_equal(run(write_dev_null, true), 0);
    assert_int_equal(run(read_dev_zero, false), 0);
    assert_int_equal(run(read_dev_zero, true), EACCES);
}

static void test_exec_denied_everywhere(void **state)
{
    (void)state;
    require_abi(1);
    int (*const probes[])(void) = {exec_bin_true, exec_in_read_dir, exec_in_write_dir};
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        assert_int_equal(run(probes[i], false), 0);
        assert_int_equal(run(probes[i], true), EACCES);
    }
}

static void test_fifo(void **state)
{
    (void)state;
    require_abi(1);
    assert_int_equal(run(fifo_in_write_dir, true), 0);
    assert_int_equal(run(fifo_in_read_dir, false), 0);
    assert_int_equal(run(fifo_in_read_dir, true), EACCES);
}

static void test_unix_socket_bind(void **state)
{
    (void)state;
    require_abi(1);
    assert_int_equal(run(bind_unix_in_write_dir, true), 0);
    assert_int_equal(run(bind_unix_in_read_dir, false), 0);
    assert_int_equal(run(bind_unix_in_read_dir, true), EACCES);
}

static void test_tcp_denied(void **state)
{
    (void)state;
    require_abi(4);
    cleanup_close int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    closed_port =
        (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof closed_port;
    assert_int_equal(bind(fd, (struct sockaddr *)&closed_port, len), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&closed_port, &len), 0);
    assert_int_equal(close(cj_steal_fd(&fd)), 0);

    assert_int_equal(run(tcp_connect_closed_port, false), ECONNREFUSED);
    assert_int_equal(run(tcp_connect_closed_port, true), EACCES);
    assert_int_equal(run(tcp_bind_loopback, false), 0);
    assert_int_equal(run(tcp_bind_loopback, true), EACCES);
}

static void test_scoped(void **state)
{
    (void)state;
    require_abi(6);
    assert_int_equal(run(signal_parent, false), 0);
    assert_int_equal(run(signal_parent, true), EPERM);

    abstract_addr = (struct sockaddr_un){.sun_family = AF_UNIX};
    int n = snprintf(abstract_addr.sun_path + 1, sizeof abstract_addr.sun_path - 1,
                     "cj-landlock-test-%d", (int)getpid());
    abstract_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
    cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&abstract_addr, abstract_len), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(run(connect_abstract, false), 0);
    assert_int_equal(run(connect_abstract, true), EPERM);
}

/* A path that cannot be opened fails the whole rule set, naming the path,
 * whichever list it is in. */
static void test_missing_path_fails(void **state)
{
    (void)state;
    require_abi(1);
    static const char missing[] = "/nonexistent/cj-landlock-missing";
    const char *const with_missing[] = {read_dir, missing, NULL};
    const struct cj_landlock_paths cases[] = {
        {with_missing, write_paths, device_paths},
        {read_paths, with_missing, device_paths},
        {read_paths, write_paths, with_missing},
    };
    cj_error *err =
        mmap(NULL, sizeof *err, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(err != MAP_FAILED);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(err, 0, sizeof *err);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                _exit(SETUP_FAILED);
            _exit(cj_landlock_apply(&cases[i], err) == -1 ? 0 : 1);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_non_null(strstr(err->msg, missing));
        assert_int_equal(err->errnum, ENOENT);
    }
    assert_int_equal(munmap(err, sizeof *err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_abi),
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_read_path_is_readable),
        cmocka_unit_test(test_outside_is_unreadable),
        cmocka_unit_test(test_read_path_is_not_writable),
        cmocka_unit_test(test_write_path_is_writable),
        cmocka_unit_test(test_device_paths),
        cmocka_unit_test(test_exec_denied_everywhere),
        cmocka_unit_test(test_fifo),
        cmocka_unit_test(test_unix_socket_bind),
        cmocka_unit_test(test_tcp_denied),
        cmocka_unit_test(test_scoped),
        cmocka_unit_test(test_missing_path_fails),
    };
    return cmocka_run_group_tests(tests, setup_tree, teardown_tree);
}
