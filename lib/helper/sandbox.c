#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "apparmor.h"
#include "cleanup.h"
#include "fdpass.h"
#include "landlock.h"
#include "netns.h"
#include "privs.h"
#include "python_host.h"
#include "rootfs.h"
#include "timens.h"

/* Descriptor numbers inside the sandbox. */
enum { FD_CTL = 3, FD_PROC = 4, FD_SYNC = 5, FD_REPORT = 6, FD_GO = 7, FD_PARENT = 8 };

#define IS_ACTIVE(spec, layer) (((spec)->active & CJ_LAYER_BIT(layer)) != 0)

static _Noreturn void init_fail(cj_error *err)
{
    struct cj_ctl_msg msg = {.type = CJ_CTL_FAILED};
    snprintf(msg.error, sizeof msg.error, "%s", err->msg);
    cj_send_msg(FD_CTL, &msg, sizeof msg, NULL, 0);
    _exit(127);
}

/* Places the helper's descriptors at fixed numbers and closes the rest. */
static int arrange_fds(const struct cj_sandbox_spec *spec, cj_error *err)
{
    const int from[] = {spec->stdin_r, spec->stdout_w, spec->stderr_w, spec->ctl,
                        spec->proc_fd, spec->sync_r,   spec->parent};
    const int to[] = {0, 1, 2, FD_CTL, FD_PROC, FD_SYNC, FD_PARENT};
    enum { N = sizeof to / sizeof to[0] };
    int high[N];
    /* Copy above every target first so no move overwrites a source. */
    for (int i = 0; i < N; i++) {
        high[i] = fcntl(from[i], F_DUPFD_CLOEXEC, 16);
        if (high[i] < 0)
            return cj_fail_errno(err, "duplicate fd %d", from[i]);
    }
    for (int i = 0; i < N; i++) {
        if (dup3(high[i], to[i], O_CLOEXEC) < 0)
            return cj_fail_errno(err, "move fd to %d", to[i]);
    }
    return cj_close_fds_except(to, N, err);
}

static void runner_report(const char *text)
{
    size_t len = strlen(text);
    ssize_t n = write(FD_REPORT, text, len);
    (void)n; /* the init process treats a short or missing report as failure */
}

static _Noreturn void runner_fail(cj_error *err)
{
    char text[sizeof err->msg + 8];
    snprintf(text, sizeof text, "ERR %s", err->msg);
    runner_report(text);
    _exit(127);
}

/* Limits that are the same for every request, so that nothing the service
 * itself is allowed (its descriptor count, locked memory, queued signals)
 * carries over to the code. */
static int set_fixed_limits(cj_error *err)
{
    static const struct {
        int resource;
        const char *name;
        rlim_t value;
    } fixed[] = {
        {RLIMIT_CORE, "CORE", 0},
        {RLIMIT_NOFILE, "NOFILE", 256},
        {RLIMIT_MEMLOCK, "MEMLOCK", 0},
        {RLIMIT_MSGQUEUE, "MSGQUEUE", 0},
        {RLIMIT_SIGPENDING, "SIGPENDING", 256},
        {RLIMIT_LOCKS, "LOCKS", 64},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        struct rlimit rl = {fixed[i].value, fixed[i].value};
        if (setrlimit(fixed[i].resource, &rl) < 0)
            return cj_fail_errno(err, "set RLIMIT_%s", fixed[i].name);
    }
    return 0;
}

/* Nested namespaces would reopen the kernel surface that creating them
 * exposes (netfilter, mounts of new file systems). seccomp refuses unshare
 * and clone flags; as a second line, the namespace counts of the sandbox's
 * own user namespace are set to zero, which makes any creation fail with
 * ENOSPC. These sysctls belong to the user namespace, so its root may write
 * them. */
static int forbid_nested_namespaces(int proc_fd, cj_error *err)
{
    static const char *const kinds[] = {"user", "mnt", "pid",    "net",
                                        "ipc",  "uts", "cgroup", "time"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        char path[64];
        snprintf(path, sizeof path, "sys/user/max_%s_namespaces", kinds[i]);
        cleanup_close int fd = openat(proc_fd, path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
            return cj_fail_errno(err, "open /proc/%s", path);
        if (write(fd, "0", 1) != 1)
            return cj_fail_errno(err, "write 0 to /proc/%s", path);
    }
    return 0;
}

static void runner_main(const struct cj_sandbox_spec *spec)
{
    cj_error err = {0};
    const int keep[] = {0, 1, 2, FD_PROC, FD_REPORT, FD_GO};
    if (cj_close_fds_except(keep, 6, &err) < 0)
        runner_fail(&err);
    /* As a fresh process would have it (the helper blocks SIGCHLD). */
    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) < 0) {
        cj_fail_errno(&err, "clear signal mask");
        runner_fail(&err);
    }

    if (set_fixed_limits(&err) < 0)
        runner_fail(&err);
    if (chdir(spec->run_dir) < 0) {
        cj_fail_errno(&err, "chdir %s", spec->run_dir);
        runner_fail(&err);
    }

    uid_t id;
    bool userns = IS_ACTIVE(spec, CJ_LAYER_USERNS);
    if (!userns)
        id = spec->runner_outer_id;
    else
        id = spec->rootful ? CJ_SANDBOX_RUNNER_ID : CJ_SANDBOX_ROOT_ID;
    if (cj_privs_drop(id, id, !userns, &err) < 0)
        runner_fail(&err);

    if (IS_ACTIVE(spec, CJ_LAYER_APPARMOR) &&
        cj_apparmor_enter(FD_PROC, CJ_APPARMOR_PROFILE, &err) < 0)
        runner_fail(&err);
    if (close(FD_PROC) < 0) {
        cj_fail_errno(&err, "close /proc descriptor");
        runner_fail(&err);
    }

    if (IS_ACTIVE(spec, CJ_LAYER_LANDLOCK)) {
        char tmp_path[CJ_RUN_DIR_MAX + 8];
        snprintf(tmp_path, sizeof tmp_path, "%s/" CJ_RUN_TMP, spec->run_dir);
        /* The home is in the root the mount namespace builds; without that
         * layer (testing builds only) there is none to allow. */
        const char *home = IS_ACTIVE(spec, CJ_LAYER_MOUNTNS) ? CJ_SANDBOX_HOME : NULL;
        const char *const read_paths[] = {"/usr", spec->run_dir, home, NULL};
        const char *const write_paths[] = {tmp_path, NULL};
        const char *const device_paths[] = {"/dev/null",   "/dev/zero",    "/dev/full",
                                            "/dev/random", "/dev/urandom", NULL};
        struct cj_landlock_paths paths = {read_paths, write_paths, device_paths};
        if (cj_landlock_apply(&paths, &err) < 0)
            runner_fail(&err);
    }
    if (IS_ACTIVE(spec, CJ_LAYER_SECCOMP) && cj_seccomp_load(spec->seccomp, &err) < 0)
        runner_fail(&err);

    runner_report("OK");
    close(FD_REPORT);
    cj_python_run(spec->run_dir, spec->warm, FD_GO);
}

static int wait_for_runner_report(pid_t runner, cj_error *err)
{
    char text[600];
    ssize_t n;
    do
        n = read(FD_REPORT, text, sizeof text - 1);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return cj_fail_errno(err, "read runner report");
    text[n] = '\0';
    if (n == 2 && memcmp(text, "OK", 2) == 0)
        return 0;
    if (n > 4 && memcmp(text, "ERR ", 4) == 0)
        return cj_fail(err, 0, "%s", text + 4);
    int status = 0;
    waitpid(runner, &status, 0);
    return cj_fail(err, 0, "runner died during set-up (wait status %#x)", status);
}

static bool valid_file_name(const char *name)
{
    return name[0] && !strchr(name, '/') && strcmp(name, ".") && strcmp(name, "..") &&
           strcmp(name, "jailed_code") && strcmp(name, CJ_RUN_TMP);
}

static int apply_limits(const struct cj_sandbox_spec *spec, pid_t runner,
                        const struct cj_limits *limits, cj_error *err)
{
    clockid_t clock;
    struct timespec used;
    if (clock_getcpuclockid(runner, &clock) != 0 || clock_gettime(clock, &used) < 0)
        return cj_fail(err, 0, "read the runner's CPU time");
    uint64_t used_ns = (uint64_t)used.tv_sec * 1000000000u + (uint64_t)used.tv_nsec;
    if (IS_ACTIVE(spec, CJ_LAYER_USERNS)) {
        /* With a single id mapped, this process counts against the runner's
         * process limit. */
        uint64_t extra = spec->rootful ? 0 : 1;
        return cj_limits_apply(limits, runner, used_ns, extra, err);
    }
    /* Without a user namespace this process may lack CAP_SYS_RESOURCE
     * (container runtimes often drop it); a process with the runner's own
     * ids may always lower its limits. */
    pid_t setter = fork();
    if (setter < 0)
        return cj_fail_errno(err, "fork to apply limits");
    if (setter == 0) {
        cj_error ignored;
        uid_t id = spec->runner_outer_id;
        if (setresgid(id, id, id) < 0 || setresuid(id, id, id) < 0 ||
            cj_limits_apply(limits, runner, used_ns, 0, &ignored) < 0)
            _exit(1);
        _exit(0);
    }
    int status;
    while (waitpid(setter, &status, 0) < 0) {
        if (errno != EINTR)
            return cj_fail_errno(err, "wait for limit setter");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return cj_fail(err, EPERM, "could not apply limits as the runner's user");
    return 0;
}

/* Receives DISPATCH, puts the files in place and applies the limits. */
static int dispatch(const struct cj_sandbox_spec *spec, pid_t runner, cj_error *err)
{
    struct cj_ctl_msg msg;
    int fds[CJ_MAX_FILES];
    size_t nfds = CJ_MAX_FILES;
    ssize_t n = cj_recv_msg(FD_CTL, &msg, sizeof msg, fds, &nfds);
    if (n <= 0)
        return cj_fail(err, 0, "no dispatch: engine went away");
    int rc = -1;
    if ((size_t)n != sizeof msg || msg.type != CJ_CTL_DISPATCH || msg.nfiles != nfds) {
        cj_fail(err, EBADMSG, "malformed dispatch message");
        goto out;
    }
    for (size_t i = 0; i < nfds; i++) {
        msg.file_names[i][CJ_FILE_NAME_MAX - 1] = '\0';
        struct stat st;
        if (!valid_file_name(msg.file_names[i])) {
            cj_fail(err, EINVAL, "refused file name '%s'", msg.file_names[i]);
            goto out;
        }
        if (fstat(fds[i], &st) < 0) {
            cj_fail_errno(err, "stat uploaded file");
            goto out;
        }
        if (cj_rootfs_put_file(spec->run_dir, msg.file_names[i], fds[i], (uint64_t)st.st_size,
                               err) < 0)
            goto out;
    }
    if (IS_ACTIVE(spec, CJ_LAYER_RLIMITS) && apply_limits(spec, runner, &msg.limits, err) < 0)
        goto out;
    rc = 0;
out:
    for (size_t i = 0; i < nfds; i++)
        close(fds[i]);
    return rc;
}

/* A parent's death is signalled only to children that asked while it
 * lived, hence the look at its pidfd once asked. */
static int die_with_parent(cj_error *err)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        return cj_fail_errno(err, "set parent-death signal");
    struct pollfd parent = {FD_PARENT, POLLIN, 0};
    int exited = poll(&parent, 1, 0);
    if (exited < 0)
        return cj_fail_errno(err, "poll parent");
    if (exited > 0)
        return cj_fail(err, ESRCH, "parent died during set-up");
    if (close(FD_PARENT) < 0)
        return cj_fail_errno(err, "close parent descriptor");
    return 0;
}

static int setup_namespaces_and_root(const struct cj_sandbox_spec *spec, cj_error *err)
{
    /* Before the id change, which leaves the offsets file to root; the
     * runner, forked later, is the first process in it. */
    if (cj_timens_enter_fresh(FD_PROC, err) < 0)
        return -1;
    if (IS_ACTIVE(spec, CJ_LAYER_USERNS)) {
        /* Created by the helper's credentials; take the namespace's root
         * ids so that files made here belong to the sandbox, not the host. */
        if (setresgid(CJ_SANDBOX_ROOT_ID, CJ_SANDBOX_ROOT_ID, CJ_SANDBOX_ROOT_ID) < 0 ||
            setresuid(CJ_SANDBOX_ROOT_ID, CJ_SANDBOX_ROOT_ID, CJ_SANDBOX_ROOT_ID) < 0)
            return cj_fail_errno(err, "become root of the user namespace");
    }
    /* Only now: an id change clears the parent-death signal and resets
     * dumpable. */
    if (die_with_parent(err) < 0)
        return -1;
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        return cj_fail_errno(err, "clear dumpable");
    if (sethostname("codejail", 8) < 0)
        return cj_fail_errno(err, "set hostname");
    if (IS_ACTIVE(spec, CJ_LAYER_NETNS) && cj_netns_verify_isolated(err) < 0)
        return -1;

    uid_t owner;
    if (!IS_ACTIVE(spec, CJ_LAYER_USERNS))
        owner = spec->runner_outer_id;
    else
        owner = spec->rootful ? CJ_SANDBOX_RUNNER_ID : CJ_SANDBOX_ROOT_ID;
    struct cj_run_dir run = {
        .path = spec->run_dir,
        .runner_code = cj_jailed_code,
        .runner_code_len = cj_jailed_code_len,
        .owner_uid = owner,
        .owner_gid = owner,
        .tmp_size = spec->config->tmp_size,
        .upload_size = spec->config->upload_size,
    };
    if (!IS_ACTIVE(spec, CJ_LAYER_MOUNTNS)) {
        if (cj_rootfs_add_host_run_dir(&run, err) < 0)
            return -1;
    } else if (cj_rootfs_add_run_dir(&run, err) < 0)
        return -1;
    return 0;
}

_Noreturn void cj_sandbox_init_main(const struct cj_sandbox_spec *spec)
{
    cj_error err = {0};
    if (arrange_fds(spec, &err) < 0)
        _exit(127); /* no ctl yet to report on */

    /* The parent writes one byte once the id maps are in place. */
    char go;
    if (read(FD_SYNC, &go, 1) != 1)
        _exit(127);
    close(FD_SYNC);
    umask(022);
    if (setup_namespaces_and_root(spec, &err) < 0)
        init_fail(&err);

    /* This process's groups become the root of its cgroup namespace. */
    if (unshare(CLONE_NEWCGROUP) < 0) {
        cj_fail_errno(&err, "unshare cgroup namespace");
        init_fail(&err);
    }
    /* Only now: building the root clones mounts, which counts as making mount
     * namespaces, and the cgroup namespace was the last one to make. */
    if (IS_ACTIVE(spec, CJ_LAYER_USERNS) && forbid_nested_namespaces(FD_PROC, &err) < 0)
        init_fail(&err);

    /* A session of its own: without a PID namespace, the group is how every
     * process of this sandbox is found and killed. */
    if (setsid() < 0) {
        cj_fail_errno(&err, "setsid");
        init_fail(&err);
    }
    if (!IS_ACTIVE(spec, CJ_LAYER_PIDNS) && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
        cj_fail_errno(&err, "become subreaper");
        init_fail(&err);
    }

    /* report: the runner tells when every layer is up; go: this process
     * tells the runner it may read its input, once the limits are on. */
    int report[2], release[2];
    if (pipe2(report, O_CLOEXEC) < 0 || pipe2(release, O_CLOEXEC) < 0) {
        cj_fail_errno(&err, "pipe");
        init_fail(&err);
    }
    pid_t runner = fork();
    if (runner < 0) {
        cj_fail_errno(&err, "fork runner");
        init_fail(&err);
    }
    if (runner == 0) {
        if (cj_move_fd(report[1], FD_REPORT, &err) < 0 || cj_move_fd(release[0], FD_GO, &err) < 0)
            _exit(127);
        runner_main(spec);
    }
    close(report[1]);
    close(release[0]);
    if (cj_move_fd(report[0], FD_REPORT, &err) < 0 || cj_move_fd(release[1], FD_GO, &err) < 0)
        init_fail(&err);
    /* Only the runner keeps the standard streams, so they reach end of file
     * when its processes are gone. */
    const int keep[] = {FD_CTL, FD_REPORT, FD_GO};
    if (cj_close_fds_except(keep, 3, &err) < 0)
        init_fail(&err);

    if (wait_for_runner_report(runner, &err) < 0) {
        kill(runner, SIGKILL);
        init_fail(&err);
    }
    close(FD_REPORT);

    struct cj_ctl_msg msg = {.type = CJ_CTL_READY};
    if (cj_send_msg(FD_CTL, &msg, sizeof msg, NULL, 0) < 0)
        _exit(127);
    if (dispatch(spec, runner, &err) < 0) {
        kill(runner, SIGKILL);
        init_fail(&err);
    }
    if (write(FD_GO, "g", 1) != 1) {
        cj_fail_errno(&err, "release runner");
        kill(runner, SIGKILL);
        init_fail(&err);
    }
    close(FD_GO);

    int status = 0;
    for (;;) {
        pid_t pid = waitpid(-1, &status, 0);
        if (pid == runner)
            break;
        if (pid < 0 && errno != EINTR) {
            status = W_EXITCODE(127, 0);
            break;
        }
    }
    msg.type = CJ_CTL_EXITED;
    msg.wait_status = status;
    cj_send_msg(FD_CTL, &msg, sizeof msg, NULL, 0);
    if (!IS_ACTIVE(spec, CJ_LAYER_PIDNS))
        kill(0, SIGKILL); /* the whole process group, this process included */
    _exit(0);
}
