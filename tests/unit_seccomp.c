/* The seccomp policy, checked by running syscalls under it: each probe runs in
 * a forked child that sets no_new_privs, loads the filter, makes one call and
 * exits with the call's errno (0 when it succeeded). Every probe is chosen so
 * that without the filter the child exits differently (these tests run as
 * root, where the denied calls would succeed or fail with another errno). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/futex.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "seccomp.h"

/* The child could not set itself up; no errno is this large. */
#define SETUP_FAILED 255
/* The probe itself went wrong in a way no errno describes. */
#define PROBE_BROKEN 254

static struct cj_seccomp_program program;

static int compile_once(void **state)
{
    (void)state;
    cj_error err = {0};
    if (cj_seccomp_compile(&program, &err) < 0) {
        fprintf(stderr, "cj_seccomp_compile: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int free_program(void **state)
{
    (void)state;
    cj_seccomp_program_free(&program);
    return 0;
}

/* The errno of a call that returns -1 on failure, or 0 when it succeeded. */
static int result(long rc)
{
    return rc < 0 ? errno : 0;
}

/* Runs probe in a child, under the filter when `filtered`; returns the
 * child's wait status. The child dies of the signals it gets: cmocka's
 * handlers, inherited, would otherwise carry on the test run in it. */
static int run_probe(int (*probe)(void), bool filtered)
{
    static const int fatal[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGSYS, SIGABRT};
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++) {
            if (signal(fatal[i], SIG_DFL) == SIG_ERR)
                _exit(SETUP_FAILED);
        }
        cj_error err = {0};
        if (filtered &&
            (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || cj_seccomp_load(&program, &err) < 0))
            _exit(SETUP_FAILED);
        _exit(probe());
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static int run_filtered(int (*probe)(void))
{
    return run_probe(probe, true);
}

#define expect_errno(probe, want) check_errno(probe, #probe, want)
#define expect_killed(probe)      check_killed(probe, #probe)

static void check_errno(int (*probe)(void), const char *name, int want)
{
    int status = run_filtered(probe);
    if (WIFSIGNALED(status))
        fail_msg("%s: killed by signal %d", name, WTERMSIG(status));
    int got = WEXITSTATUS(status);
    if (got != want)
        fail_msg("%s: got %d (%s), want %d (%s)", name, got, strerror(got), want, strerror(want));
}

static void check_killed(int (*probe)(void), const char *name)
{
    int status = run_filtered(probe);
    if (!WIFSIGNALED(status))
        fail_msg("%s: exited with %d instead of being killed", name, WEXITSTATUS(status));
    if (WTERMSIG(status) != SIGSYS)
        fail_msg("%s: killed by signal %d, want SIGSYS", name, WTERMSIG(status));
}

static void test_compile(void **state)
{
    (void)state;
    assert_non_null(program.filter);
    assert_true(program.len > 0);
    assert_true(program.len <= BPF_MAXINSNS);
}

static void test_load_failure_is_reported(void **state)
{
    (void)state;
    struct cj_seccomp_program empty = {0};
    cj_error err = {0};
    assert_int_equal(cj_seccomp_load(&empty, &err), -1);
    assert_int_equal(err.errnum, EINVAL);
    assert_non_null(strstr(err.msg, "seccomp"));
}

/* ---- Sockets ---- */

static int probe_inet_stream(void)
{
    return result(socket(AF_INET, SOCK_STREAM, 0));
}

static int probe_inet6_stream(void)
{
    return result(socket(AF_INET6, SOCK_STREAM, 0));
}

static int probe_inet6_dgram(void)
{
    return result(socket(AF_INET6, SOCK_DGRAM, 0));
}

static int probe_netlink(void)
{
    return result(socket(AF_NETLINK, SOCK_RAW, 0));
}

static int probe_packet(void)
{
    return result(socket(AF_PACKET, SOCK_RAW, 0));
}

/* The kernel reads the family as an int; the filter compares all 64 bits, so
 * junk above them is refused rather than read as AF_UNIX. */
static int probe_unix_high_bits(void)
{
    return result(syscall(SYS_socket, (1UL << 32) | AF_UNIX, SOCK_STREAM, 0));
}

static int probe_unix(void)
{
    return result(socket(AF_UNIX, SOCK_STREAM, 0));
}

static int probe_unix_socketpair(void)
{
    int sv[2];
    return result(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
}

/* Unfiltered, socketpair(AF_INET) fails with EOPNOTSUPP. */
static int probe_inet_socketpair(void)
{
    int sv[2];
    return result(socketpair(AF_INET, SOCK_STREAM, 0, sv));
}

static void test_sockets_other_than_unix_eacces(void **state)
{
    (void)state;
    expect_errno(probe_inet_stream, EACCES);
    expect_errno(probe_inet6_stream, EACCES);
    expect_errno(probe_inet6_dgram, EACCES);
    expect_errno(probe_netlink, EACCES);
    expect_errno(probe_packet, EACCES);
    expect_errno(probe_unix_high_bits, EACCES);
    expect_errno(probe_inet_socketpair, EACCES);
}

static void test_unix_sockets_allowed(void **state)
{
    (void)state;
    expect_errno(probe_unix, 0);
    expect_errno(probe_unix_socketpair, 0);
}

/* ---- Programs ---- */

static int probe_execve(void)
{
    char *argv[] = {"true", NULL};
    char *envp[] = {NULL};
    return result(execve("/bin/true", argv, envp));
}

static int probe_execveat(void)
{
    char *argv[] = {"true", NULL};
    char *envp[] = {NULL};
    return result(syscall(SYS_execveat, AT_FDCWD, "/bin/true", argv, envp, 0));
}

static void test_exec_eacces(void **state)
{
    (void)state;
    expect_errno(probe_execve, EACCES);
    expect_errno(probe_execveat, EACCES);
}

/* ---- Processes, threads and namespaces ---- */

static int probe_unshare_user(void)
{
    return result(unshare(CLONE_NEWUSER));
}

static int probe_setns(void)
{
    return result(setns(-1, 0)); /* EBADF unfiltered */
}

static const unsigned long namespace_flags[] = {
    CLONE_NEWNS,   CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
    CLONE_NEWUSER, CLONE_NEWPID,    CLONE_NEWNET,
};

/* Returns the errno of the first clone() that did not fail with EPERM, 0 when
 * one succeeded, EPERM when all were refused. */
static int probe_clone_namespaces(void)
{
    for (size_t i = 0; i < sizeof namespace_flags / sizeof namespace_flags[0]; i++) {
        long pid = syscall(SYS_clone, namespace_flags[i] | SIGCHLD, NULL, NULL, NULL, 0);
        if (pid == 0)
            _exit(0);
        if (pid > 0) {
            waitpid((pid_t)pid, NULL, 0);
            return 0;
        }
        if (errno != EPERM)
            return errno;
    }
    return EPERM;
}

static int probe_clone3(void)
{
    struct clone_args args = {.exit_signal = SIGCHLD};
    long pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0)
        _exit(0);
    if (pid > 0)
        waitpid((pid_t)pid, NULL, 0);
    return result(pid);
}

static int probe_fork(void)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(42);
    if (pid < 0)
        return errno;
    int status;
    if (waitpid(pid, &status, 0) != pid)
        return errno;
    return WIFEXITED(status) && WEXITSTATUS(status) == 42 ? 0 : PROBE_BROKEN;
}

static int thread_ran;

static void *thread_main(void *arg)
{
    thread_ran = 1;
    return arg;
}

/* glibc tries clone3 first and falls back to clone on ENOSYS. */
static int probe_thread(void)
{
    pthread_t t;
    int rc = pthread_create(&t, NULL, thread_main, NULL);
    if (rc != 0)
        return rc;
    pthread_join(t, NULL);
    return thread_ran ? 0 : PROBE_BROKEN;
}

static void test_namespaces_eperm(void **state)
{
    (void)state;
    expect_errno(probe_unshare_user, EPERM);
    expect_errno(probe_setns, EPERM);
    expect_errno(probe_clone_namespaces, EPERM);
}

static void test_clone3_enosys(void **state)
{
    (void)state;
    expect_errno(probe_clone3, ENOSYS);
}

static void test_fork_and_threads_allowed(void **state)
{
    (void)state;
    expect_errno(probe_fork, 0);
    expect_errno(probe_thread, 0);
}

static int probe_setsid(void)
{
    return result(setsid());
}

static int probe_setpgid(void)
{
    return result(setpgid(0, 0));
}

static void test_process_group_fixed(void **state)
{
    (void)state;
    expect_errno(probe_setsid, EPERM);
    expect_errno(probe_setpgid, EPERM);
}

/* ---- Kernel attack surface ---- */

/* A target that does not exist: should the filter fail to stop it, the call
 * fails with ENOENT instead of mounting anything on the host. */
static int probe_mount(void)
{
    return result(mount("none", "/nonexistent-codejail-test", "tmpfs", 0, NULL));
}

static int probe_umount(void)
{
    return result(umount2("/nonexistent-codejail-test", 0));
}

static int probe_ptrace(void)
{
    return result(ptrace(PTRACE_TRACEME, 0, NULL, NULL));
}

static int probe_bpf(void)
{
    union bpf_attr attr = {0};
    return result(syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr)); /* EINVAL unfiltered */
}

static int probe_io_uring(void)
{
    return result(syscall(SYS_io_uring_setup, 1, NULL)); /* EFAULT unfiltered */
}

static int probe_userfaultfd(void)
{
    return result(syscall(SYS_userfaultfd, 0));
}

static int probe_setuid(void)
{
    return result(setuid(0));
}

static int probe_chown(void)
{
    return result(chown("/nonexistent-codejail-test", 0, 0));
}

static void test_kernel_surface_eperm(void **state)
{
    (void)state;
    expect_errno(probe_mount, EPERM);
    expect_errno(probe_umount, EPERM);
    expect_errno(probe_ptrace, EPERM);
    expect_errno(probe_bpf, EPERM);
    expect_errno(probe_io_uring, EPERM);
    expect_errno(probe_userfaultfd, EPERM);
    expect_errno(probe_setuid, EPERM);
    expect_errno(probe_chown, EPERM);
}

/* ---- Resource limits ---- */

static int probe_getrlimit(void)
{
    struct rlimit r;
    return result(getrlimit(RLIMIT_NPROC, &r));
}

static int probe_prlimit_query(void)
{
    struct rlimit r;
    return result(prlimit(0, RLIMIT_NPROC, NULL, &r));
}

static int probe_prlimit_raise(void)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NPROC, &r) < 0)
        return PROBE_BROKEN;
    r.rlim_cur = r.rlim_max;
    return result(prlimit(0, RLIMIT_NPROC, &r, NULL));
}

/* glibc's setrlimit() is prlimit64 underneath; this is the old syscall. */
static int probe_setrlimit_syscall(void)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NPROC, &r) < 0)
        return PROBE_BROKEN;
    return result(syscall(SYS_setrlimit, RLIMIT_NPROC, &r));
}

static void test_rlimits_readable_not_settable(void **state)
{
    (void)state;
    expect_errno(probe_getrlimit, 0);
    expect_errno(probe_prlimit_query, 0);
    expect_errno(probe_prlimit_raise, EPERM);
    expect_errno(probe_setrlimit_syscall, EPERM);
}

/* ---- Argument filters: ioctl and personality ---- */

/* A pipe is not a terminal: unfiltered, these ioctls fail with ENOTTY. */
static int pipe_ioctl(unsigned long request)
{
    int p[2];
    if (pipe(p) < 0)
        return PROBE_BROKEN;
    char c = 'x';
    return result(syscall(SYS_ioctl, p[0], request, &c));
}

static int probe_tiocsti(void)
{
    return pipe_ioctl(TIOCSTI);
}

/* The kernel truncates the request to 32 bits, so this is TIOCSTI too. */
static int probe_tiocsti_high_bits(void)
{
    return pipe_ioctl((1UL << 32) | TIOCSTI);
}

static int probe_tioclinux(void)
{
    return pipe_ioctl(TIOCLINUX);
}

static int probe_fionread(void)
{
    return pipe_ioctl(FIONREAD);
}

static void test_ioctl(void **state)
{
    (void)state;
    expect_errno(probe_tiocsti, EPERM);
    expect_errno(probe_tiocsti_high_bits, EPERM);
    expect_errno(probe_tioclinux, EPERM);
    expect_errno(probe_fionread, 0);
}

static int probe_personality_query(void)
{
    return result(personality(0xffffffff));
}

static int probe_personality_set(void)
{
    return result(personality(PER_LINUX | ADDR_NO_RANDOMIZE));
}

static void test_personality(void **state)
{
    (void)state;
    expect_errno(probe_personality_query, 0);
    expect_errno(probe_personality_set, EPERM);
}

/* ---- What sandboxes share: locks, futexes, the page cache; what the host
 * tells ---- */

/* A file any process may open, as /usr's files are to every sandbox. */
static int shared_file(void)
{
    return open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
}

static int probe_flock(void)
{
    int fd = shared_file();
    return fd < 0 ? PROBE_BROKEN : result(flock(fd, LOCK_SH | LOCK_NB));
}

static int fcntl_lock(unsigned long cmd)
{
    int fd = shared_file();
    if (fd < 0)
        return PROBE_BROKEN;
    struct flock lock = {.l_type = F_RDLCK, .l_whence = SEEK_SET};
    return result(syscall(SYS_fcntl, fd, cmd, &lock));
}

static int probe_posix_lock(void)
{
    return fcntl_lock(F_SETLK);
}

static int probe_posix_lock_query(void)
{
    return fcntl_lock(F_GETLK);
}

static int probe_ofd_lock(void)
{
    return fcntl_lock(F_OFD_SETLK);
}

/* The kernel truncates the command to 32 bits: this is F_SETLK too. */
static int probe_posix_lock_high_bits(void)
{
    return fcntl_lock((1UL << 32) | F_SETLK);
}

/* Unfiltered, a directory notification on a directory one may read works. */
static int probe_dnotify(void)
{
    int fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return fd < 0 ? PROBE_BROKEN : result(fcntl(fd, F_NOTIFY, DN_ACCESS));
}

static int probe_fcntl_getfd(void)
{
    return result(fcntl(0, F_GETFD));
}

static void test_file_locks_refused(void **state)
{
    (void)state;
    expect_errno(probe_flock, ENOLCK);
    expect_errno(probe_posix_lock, ENOLCK);
    expect_errno(probe_posix_lock_query, ENOLCK);
    expect_errno(probe_ofd_lock, ENOLCK);
    expect_errno(probe_posix_lock_high_bits, ENOLCK);
    expect_errno(probe_dnotify, EINVAL);
    expect_errno(probe_fcntl_getfd, 0);
}

/* A wake on a word nobody waits on: unfiltered it wakes 0 and succeeds. */
static int futex_wake(int op)
{
    static uint32_t word;
    return result(syscall(SYS_futex, &word, op, 1, NULL, NULL, 0));
}

static int probe_futex_shared(void)
{
    return futex_wake(FUTEX_WAKE);
}

static int probe_futex_private(void)
{
    return futex_wake(FUTEX_WAKE_PRIVATE);
}

/* Unfiltered, EINVAL (no waiters given); futex_waitv keeps its flags in
 * memory, so it is not offered at all. */
static int probe_futex_waitv(void)
{
    return result(syscall(SYS_futex_waitv, NULL, 0, 0, NULL, CLOCK_MONOTONIC));
}

static void test_futex_private_only(void **state)
{
    (void)state;
    expect_errno(probe_futex_shared, EINVAL);
    expect_errno(probe_futex_private, 0);
    expect_errno(probe_futex_waitv, ENOSYS);
}

/* Unfiltered, advice on a pipe fails with ESPIPE; under the filter advice
 * is a no-op that succeeds without reaching the kernel. */
static int probe_fadvise(void)
{
    int p[2];
    if (pipe(p) < 0)
        return PROBE_BROKEN;
    return result(syscall(SYS_fadvise64, p[0], 0, 0, POSIX_FADV_DONTNEED));
}

static int preadv2_flags(int flags)
{
    int fd = shared_file();
    if (fd < 0)
        return PROBE_BROKEN;
    char c;
    struct iovec iov = {&c, 1};
    return result(preadv2(fd, &iov, 1, 0, flags));
}

static int probe_preadv2_nowait(void)
{
    return preadv2_flags(RWF_NOWAIT);
}

static int probe_preadv2_plain(void)
{
    return preadv2_flags(0);
}

static int probe_pwritev2_nowait(void)
{
    char c = 'x';
    struct iovec iov = {&c, 1};
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    return fd < 0 ? PROBE_BROKEN : result(pwritev2(fd, &iov, 1, -1, RWF_NOWAIT));
}

static void test_page_cache_untouched(void **state)
{
    (void)state;
    expect_errno(probe_fadvise, 0);
    expect_errno(probe_preadv2_nowait, EOPNOTSUPP);
    expect_errno(probe_pwritev2_nowait, EOPNOTSUPP);
    expect_errno(probe_preadv2_plain, 0);
}

static int probe_sysinfo(void)
{
    struct sysinfo info;
    return result(syscall(SYS_sysinfo, &info));
}

static void test_sysinfo_refused(void **state)
{
    (void)state;
    expect_errno(probe_sysinfo, ENOSYS);
}

static int prctl_call(unsigned long option, unsigned long arg2)
{
    return result(syscall(SYS_prctl, option, arg2, 0, 0, 0));
}

static int probe_set_dumpable(void)
{
    return prctl_call(PR_SET_DUMPABLE, 1);
}

/* The kernel truncates the option to an int: this is PR_SET_DUMPABLE too. */
static int probe_set_dumpable_high_bits(void)
{
    return prctl_call((1UL << 32) | PR_SET_DUMPABLE, 1);
}

static int probe_set_ptracer(void)
{
    return prctl_call(PR_SET_PTRACER, 0);
}

static int probe_set_mm(void)
{
    return prctl_call(PR_SET_MM, PR_SET_MM_BRK);
}

static int probe_get_dumpable(void)
{
    return prctl_call(PR_GET_DUMPABLE, 0);
}

static int probe_set_name(void)
{
    return prctl_call(PR_SET_NAME, (unsigned long)"probe");
}

static void test_prctl_allow_list(void **state)
{
    (void)state;
    expect_errno(probe_set_dumpable, EPERM);
    expect_errno(probe_set_dumpable_high_bits, EPERM);
    expect_errno(probe_set_ptracer, EINVAL);
    expect_errno(probe_set_mm, EINVAL);
    expect_errno(probe_get_dumpable, 0);
    expect_errno(probe_set_name, 0);
}

/* ---- Everything else: other ABIs and unlisted syscalls ---- */

/* x32 numbers carry bit 30 and reach the kernel with the x86_64 audit arch. */
static int probe_x32(void)
{
    long rc = syscall(0x40000000 | SYS_getpid);
    return rc == getpid() ? 0 : result(rc);
}

/* i386 getpid (20) through int 0x80. */
static int probe_i386(void)
{
    long rc = 20;
    __asm__ volatile("int $0x80" : "+a"(rc) : : "memory");
    return rc == getpid() ? 0 : (int)-rc;
}

/* Seccomp sees an x32 call (an x86_64 call with bit 30) whether or not the
 * kernel was built with the x32 ABI. */
static void test_x32_abi_killed(void **state)
{
    (void)state;
    expect_killed(probe_x32);
}

/* A kernel without IA32 emulation (CONFIG_IA32_EMULATION off, or
 * ia32_emulation=0) faults int 0x80 before any filter sees it: there is no
 * i386 ABI to refuse, which the unfiltered probe shows. */
static void test_i386_abi_killed(void **state)
{
    (void)state;
    int bare = run_probe(probe_i386, false);
    if (WIFSIGNALED(bare) && WTERMSIG(bare) == SIGSEGV) {
        print_message("this kernel offers no i386 ABI (int 0x80 faults): nothing to refuse\n");
        skip();
    }
    if (!WIFEXITED(bare) || WEXITSTATUS(bare) != 0)
        fail_msg("probe_i386 unfiltered: status %#x, want getpid to work", (unsigned)bare);
    expect_killed(probe_i386);
}

static int probe_mlock(void)
{
    static char page[4096] __attribute__((aligned(4096)));
    /* The raw syscall: AddressSanitizer turns mlock() into a no-op. */
    return result(syscall(SYS_mlock, page, sizeof page));
}

/* fchmodat2 (Linux 6.6) is newer than this libseccomp and than the policy: it
 * must be refused by default, not slip through. ENOENT unfiltered. */
static int probe_fchmodat2(void)
{
    return result(syscall(452, AT_FDCWD, "/nonexistent-codejail-test", 0644, 0));
}

static void test_unlisted_enosys(void **state)
{
    (void)state;
    expect_errno(probe_mlock, ENOSYS);
    expect_errno(probe_fchmodat2, ENOSYS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compile),
        cmocka_unit_test(test_load_failure_is_reported),
        cmocka_unit_test(test_sockets_other_than_unix_eacces),
        cmocka_unit_test(test_unix_sockets_allowed),
        cmocka_unit_test(test_exec_eacces),
        cmocka_unit_test(test_namespaces_eperm),
        cmocka_unit_test(test_clone3_enosys),
        cmocka_unit_test(test_fork_and_threads_allowed),
        cmocka_unit_test(test_process_group_fixed),
        cmocka_unit_test(test_kernel_surface_eperm),
        cmocka_unit_test(test_rlimits_readable_not_settable),
        cmocka_unit_test(test_ioctl),
        cmocka_unit_test(test_personality),
        cmocka_unit_test(test_file_locks_refused),
        cmocka_unit_test(test_futex_private_only),
        cmocka_unit_test(test_page_cache_untouched),
        cmocka_unit_test(test_sysinfo_refused),
        cmocka_unit_test(test_prctl_allow_list),
        cmocka_unit_test(test_x32_abi_killed),
        cmocka_unit_test(test_i386_abi_killed),
        cmocka_unit_test(test_unlisted_enosys),
    };
    return cmocka_run_group_tests(tests, compile_once, free_program);
}
