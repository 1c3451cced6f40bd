#include "zygote.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apparmor.h"
#include "cgroup.h"
#include "cleanup.h"
#include "fdpass.h"
#include "landlock.h"
#include "python_host.h"
#include "rootfs.h"
#include "sandbox.h"
#include "seccomp.h"
#include "userns.h"

/* The environment of the sandboxed code, and of the helper itself, since the
 * interpreter in warm mode takes os.environ from it. */
static const char *const sandbox_environment[][2] = {
    {"PATH", "/usr/local/bin:/usr/bin:/bin"},
    /* What sudo gives the reference's sandbox user; libraries look for a home
     * (nltk will not import without one) and a user name. */
    {"HOME", CJ_SANDBOX_HOME},
    {"USER", CJ_SANDBOX_USER},
    {"LOGNAME", CJ_SANDBOX_USER},
    {"TMPDIR", "tmp"},
    {"MPLCONFIGDIR", "tmp"},
    {"MPLBACKEND", "Agg"},
    /* Debian's matplotlib looks for its rc file in /etc, which the sandbox hides. */
    {"MATPLOTLIBRC", "/usr/share/matplotlib/mpl-data/matplotlibrc"},
    {"OPENBLAS_NUM_THREADS", "1"},
    {"OMP_NUM_THREADS", "1"},
};

/* Cgroup limits are a per-deployment backstop behind the per-request
 * rlimits, which are applied late and may differ per request. */
#define CGROUP_MEMORY_BYTES (1024ull << 20)
#define CGROUP_PIDS_MAX     256

#define MAX_SANDBOXES 1024

struct sandbox_record {
    pid_t pid;     /* the helper's child: the sandbox's init, or its launcher; 0: slot free */
    pid_t session; /* the init's, which is also its pid */
    unsigned long serial;
    char run_dir[CJ_RUN_DIR_MAX];
};

/* A process forked from the helper ahead of time that stands in the cgroup
 * v1 groups of the next sandbox, clones it there on order, and stays as its
 * parent until it is gone. A process joins a v1 group only by moving there,
 * and a move waits for an RCU grace period (10-30 ms here): the launcher
 * makes its move before the request comes, and never has to make another,
 * so the helper never joins a sandbox's group nor waits to leave one. */
struct launcher {
    pid_t pid; /* 0: none ready */
    int sock;
    unsigned long serial; /* of its groups */
};

/* What a launcher is to make: the uid slot and run directory. */
struct launch_order {
    uint32_t slot;
    char run_dir[CJ_RUN_DIR_MAX];
};

struct helper {
    int sock;
    int proc_fd;
    struct cj_helper_config config;
    struct cj_helper_hello hello;
    cj_layer_set active;
    bool rootful;
    bool templated; /* in a mount namespace whose root is the sandbox template */
    bool warm;
    struct cj_seccomp_program seccomp;
    struct cj_cgroup_root cgroups;
    struct sandbox_record records[MAX_SANDBOXES];
    unsigned long next_serial;
    /* Sandboxes are born in their groups: cgroup2 by CLONE_INTO_CGROUP;
     * where a limit is in a cgroup v1 hierarchy, through a launcher. */
    bool via_launcher;
    struct launcher launcher;
};

static void set_layer(struct helper *h, enum cj_layer layer, enum cj_layer_state state,
                      const char *detail)
{
    h->hello.state[layer] = (uint8_t)state;
    snprintf(h->hello.detail[layer], sizeof h->hello.detail[layer], "%s", detail);
    if (state == CJ_LAYER_ACTIVE)
        h->active |= CJ_LAYER_BIT(layer);
    else
        h->active &= ~CJ_LAYER_BIT(layer);
}

static const char *sandbox_value(const char *name)
{
    for (size_t i = 0; i < sizeof sandbox_environment / sizeof sandbox_environment[0]; i++) {
        if (strcmp(sandbox_environment[i][0], name) == 0)
            return sandbox_environment[i][1];
    }
    abort(); /* only called with names from the table */
}

static int set_environment(cj_error *err)
{
    if (clearenv() != 0)
        return cj_fail(err, 0, "clear environment");
    for (size_t i = 0; i < sizeof sandbox_environment / sizeof sandbox_environment[0]; i++) {
        if (setenv(sandbox_environment[i][0], sandbox_environment[i][1], 1) < 0)
            return cj_fail_errno(err, "setenv %s", sandbox_environment[i][0]);
    }
    return 0;
}

static int count_threads(int proc_fd, cj_error *err)
{
    int fd = openat(proc_fd, "self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return cj_fail_errno(err, "open /proc/self/task");
    cleanup_dir DIR *dir = fdopendir(fd);
    if (!dir) {
        close(fd);
        return cj_fail_errno(err, "read /proc/self/task");
    }
    int n = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)))
        n += entry->d_name[0] != '.';
    return n;
}

static void probe_apparmor(struct helper *h)
{
    if (!cj_apparmor_enabled()) {
        set_layer(h, CJ_LAYER_APPARMOR, CJ_LAYER_UNAVAILABLE, "kernel has no AppArmor enabled");
        return;
    }
    if (h->config.disabled_layers & CJ_LAYER_BIT(CJ_LAYER_APPARMOR))
        return;
    cj_error err = {0};
    if (cj_apparmor_probe(h->proc_fd, CJ_APPARMOR_PROFILE, &err) == 0) {
        set_layer(h, CJ_LAYER_APPARMOR, CJ_LAYER_ACTIVE, "profile " CJ_APPARMOR_PROFILE);
        return;
    }
    if (err.errnum == ENOENT)
        set_layer(h, CJ_LAYER_APPARMOR, CJ_LAYER_FAILED,
                  "profile " CJ_APPARMOR_PROFILE " is not loaded (apparmor/README.md)");
    else {
        char detail[sizeof h->hello.detail[0]];
        snprintf(detail, sizeof detail, "%.*s", (int)sizeof detail - 1, err.msg);
        set_layer(h, CJ_LAYER_APPARMOR, CJ_LAYER_FAILED, detail);
    }
    /* The host has AppArmor: sandboxes still try the profile, so that each
     * execution fails rather than run without it. */
    h->active |= CJ_LAYER_BIT(CJ_LAYER_APPARMOR);
}

/* Decides which layers every sandbox gets: all that this host offers, less
 * those switched off for testing. */
static int probe_layers(struct helper *h, cj_error *err)
{
    cj_layer_set disabled = h->config.disabled_layers;
#ifndef CODEJAIL_TESTING
    if (disabled)
        return cj_fail(err, EPERM, "layers can be switched off in testing builds only");
#endif
    for (int layer = 0; layer < CJ_LAYER_COUNT; layer++)
        set_layer(h, (enum cj_layer)layer, CJ_LAYER_ACTIVE, "");

    if (cj_seccomp_compile(&h->seccomp, err) < 0)
        return cj_error_prefix(err, "seccomp");
    if (cj_landlock_abi() <= 0)
        set_layer(h, CJ_LAYER_LANDLOCK, CJ_LAYER_UNAVAILABLE, "kernel has no Landlock");
    else {
        char detail[sizeof h->hello.detail[0]];
        int abi = cj_landlock_abi();
        cj_landlock_describe(abi, detail, sizeof detail);
        if ((unsigned)abi >= h->config.landlock_min_abi)
            set_layer(h, CJ_LAYER_LANDLOCK, CJ_LAYER_ACTIVE, detail);
        else {
            char failed[sizeof h->hello.detail[0]];
            snprintf(failed, sizeof failed, "below the required ABI %u; %.60s",
                     h->config.landlock_min_abi, detail);
            set_layer(h, CJ_LAYER_LANDLOCK, CJ_LAYER_FAILED, failed);
            /* What the kernel offers still applies to every sandbox. */
            h->active |= CJ_LAYER_BIT(CJ_LAYER_LANDLOCK);
        }
    }
    probe_apparmor(h);

    h->cgroups = CJ_CGROUP_ROOT_NONE;
    if (disabled & CJ_LAYER_BIT(CJ_LAYER_CGROUPS))
        ;
    else if (!h->rootful)
        set_layer(h, CJ_LAYER_CGROUPS, CJ_LAYER_UNAVAILABLE, "not root");
    else if (cj_cgroup_root_open(&h->cgroups, err) < 0)
        return cj_error_prefix(err, "cgroups");
    else if (!cj_cgroup_root_limits(&h->cgroups)) {
        /* A kill switch alone limits nothing, and the PID namespace already
         * kills everything: the layer is not claimed, nor its groups kept. */
        cj_cgroup_root_close(&h->cgroups);
        set_layer(h, CJ_LAYER_CGROUPS, CJ_LAYER_UNAVAILABLE,
                  "no writable cgroup with both memory and pids controllers");
    } else {
        char detail[64];
        snprintf(detail, sizeof detail, "memory (%s), pids (%s)",
                 h->cgroups.memory_v2 ? "cgroup2" : "cgroup v1",
                 h->cgroups.pids_v2 ? "cgroup2" : "cgroup v1");
        set_layer(h, CJ_LAYER_CGROUPS, CJ_LAYER_ACTIVE, detail);
    }

    set_layer(h, CJ_LAYER_USERNS, CJ_LAYER_ACTIVE, h->rootful ? "two ids per sandbox" : "one id");
    for (int layer = 0; layer < CJ_LAYER_COUNT; layer++) {
        if (disabled & CJ_LAYER_BIT(layer))
            set_layer(h, (enum cj_layer)layer, CJ_LAYER_DISABLED, "switched off for testing");
    }
    if ((disabled & CJ_LAYER_BIT(CJ_LAYER_USERNS)) && !h->rootful)
        return cj_fail(err, EPERM, "the user namespace can only be switched off when root");
    return 0;
}

/* Each sandbox's mount namespace starts as a copy of the helper's, so the
 * root's template is built once, here, rather than by every sandbox. */
static int enter_template(struct helper *h, cj_error *err)
{
    if (h->rootful) {
        if (unshare(CLONE_NEWNS) < 0)
            return cj_fail_errno(err, "unshare mount namespace");
    } else if (cj_userns_enter_own(h->proc_fd, err) < 0)
        return -1;
    return cj_rootfs_enter_template(h->config.env_dir, err);
}

static int warm_up(struct helper *h, cj_error *err)
{
    char modules[sizeof h->config.preimport + 8];
    snprintf(modules, sizeof modules, "json,%s", h->config.preimport);
    /* Some modules want a writable cache while they are imported (matplotlib
     * builds its font list, half a second, which each sandbox would
     * otherwise pay). They get a scratch tmpfs at /tmp for the import only:
     * it is gone before the first sandbox is made, and each sandbox mounts
     * its own /tmp anyway. */
    bool scratch = h->config.preimport[0] != '\0';
    if (scratch) {
        if (mount("codejail-warmup", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  "mode=0700,size=64m") < 0)
            return cj_fail_errno(err, "mount warm-up scratch on /tmp");
        if (setenv("MPLCONFIGDIR", "/tmp", 1) < 0)
            return cj_fail_errno(err, "setenv MPLCONFIGDIR");
    }
    if (cj_python_init(modules, err) < 0 || cj_python_compile_runner(err) < 0)
        return -1;
    if (scratch) {
        if (cj_python_setenv("MPLCONFIGDIR", sandbox_value("MPLCONFIGDIR"), err) < 0)
            return -1;
        if (umount2("/tmp", MNT_DETACH) < 0)
            return cj_fail_errno(err, "unmount warm-up scratch");
    }
    int threads = count_threads(h->proc_fd, err);
    if (threads < 0)
        return -1;
    /* Forking a process with other threads would copy locks they hold. */
    if (threads != 1)
        return cj_fail(err, 0, "interpreter started %d threads while importing '%s'", threads - 1,
                       h->config.preimport);
    return 0;
}

static void cgroup_name(unsigned long serial, char *out, size_t size)
{
    snprintf(out, size, "sandbox-%lu", serial);
}

static void random_run_dir(char *out, size_t size)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789_";
    unsigned char bytes[8];
    if (getrandom(bytes, sizeof bytes, 0) != (ssize_t)sizeof bytes) {
        /* getrandom on 8 bytes does not fail once the pool is ready; never
         * fall back to a guessable name. */
        abort();
    }
    char name[9];
    for (int i = 0; i < 8; i++)
        name[i] = alphabet[bytes[i] % (sizeof alphabet - 1)];
    name[8] = '\0';
    snprintf(out, size, "/tmp/codejail-%s", name);
}

static int write_maps(const struct helper *h, pid_t pid, size_t slot, cj_error *err)
{
    char uid_map[96], gid_map[96];
    if (h->rootful) {
        unsigned base = h->config.uid_base;
        snprintf(uid_map, sizeof uid_map, "%u %u 1\n%u %u 1\n", CJ_SANDBOX_ROOT_ID, base,
                 CJ_SANDBOX_RUNNER_ID, base + 1 + (unsigned)slot);
    } else {
        /* Only the helper's own id is there to map: itself in cold mode,
         * 0 of its own namespace once it has entered the template. */
        snprintf(uid_map, sizeof uid_map, "0 %u 1\n", h->templated ? 0u : (unsigned)geteuid());
    }
    if (h->rootful)
        memcpy(gid_map, uid_map, sizeof gid_map);
    else
        snprintf(gid_map, sizeof gid_map, "0 %u 1\n", h->templated ? 0u : (unsigned)getegid());
    return cj_userns_write_maps(h->proc_fd, pid, uid_map, gid_map, err);
}

struct spawn_fds {
    int ctl[2], in[2], out[2], err[2], sync[2];
};

static void close_pair(int *pair)
{
    for (int i = 0; i < 2; i++) {
        if (pair[i] >= 0)
            close(pair[i]);
        pair[i] = -1;
    }
}

static void close_spawn_fds(struct spawn_fds *f)
{
    close_pair(f->ctl);
    close_pair(f->in);
    close_pair(f->out);
    close_pair(f->err);
    close_pair(f->sync);
}

static int make_spawn_fds(struct spawn_fds *f, cj_error *err)
{
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, f->ctl) < 0)
        return cj_fail_errno(err, "socketpair");
    if (pipe2(f->in, O_CLOEXEC) < 0 || pipe2(f->out, O_CLOEXEC) < 0 ||
        pipe2(f->err, O_CLOEXEC) < 0 || pipe2(f->sync, O_CLOEXEC) < 0)
        return cj_fail_errno(err, "pipe");
    return 0;
}

/* The descriptors the engine gets for each sandbox, in this order. */
enum { ENGINE_CTL, ENGINE_STDIN, ENGINE_STDOUT, ENGINE_STDERR, ENGINE_PIDFD, ENGINE_FDS };

static void close_engine_fds(int fds[ENGINE_FDS])
{
    for (int i = 0; i < ENGINE_FDS; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = -1;
    }
}

/* A sandbox is a copy of the helper's memory, which code may read: it must
 * take nothing of the other sandboxes along (their run directories, host
 * pids, how many there were). */
static void forget_other_sandboxes(struct helper *h)
{
    /* Only records ever used (a freed one keeps its run directory): the
     * rest of the array stays shared with the helper, not copied. */
    for (size_t i = 0; i < MAX_SANDBOXES; i++) {
        if (h->records[i].pid || h->records[i].run_dir[0])
            explicit_bzero(&h->records[i], sizeof h->records[i]);
    }
    explicit_bzero(&h->launcher, sizeof h->launcher);
    h->next_serial = 0;
}

/* Clones a sandbox's init born in the groups named `cgroup` (cgroup2 by
 * CLONE_INTO_CGROUP; the caller stands in any v1 ones), writes its id maps
 * and lets it set itself up. Returns its pid and fills engine_fds; a
 * process that could not be let go is killed and reaped here. */
static pid_t clone_sandbox(struct helper *h, const struct launch_order *order, const char *cgroup,
                           int engine_fds[ENGINE_FDS], cj_error *err)
{
    cleanup_close int self = (int)syscall(SYS_pidfd_open, getpid(), 0);
    if (self < 0)
        return cj_fail_errno(err, "pidfd_open self");
    struct spawn_fds f;
    memset(&f, -1, sizeof f);
    if (make_spawn_fds(&f, err) < 0) {
        close_spawn_fds(&f);
        return -1;
    }
    struct cj_sandbox_spec spec = {
        .config = &h->config,
        .seccomp = &h->seccomp,
        .active = h->active,
        .warm = h->warm,
        .rootful = h->rootful,
        .runner_outer_id = h->config.uid_base + 1 + (uid_t)order->slot,
        .ctl = f.ctl[1],
        .stdin_r = f.in[0],
        .stdout_w = f.out[1],
        .stderr_w = f.err[1],
        .sync_r = f.sync[0],
        .proc_fd = h->proc_fd,
        .parent = self,
    };
    memcpy(spec.run_dir, order->run_dir, sizeof spec.run_dir);

    uint64_t flags = CLONE_PIDFD | CLONE_NEWIPC | CLONE_NEWUTS;
    if (h->active & CJ_LAYER_BIT(CJ_LAYER_USERNS))
        flags |= CLONE_NEWUSER;
    if (h->active & CJ_LAYER_BIT(CJ_LAYER_MOUNTNS))
        flags |= CLONE_NEWNS;
    if (h->active & CJ_LAYER_BIT(CJ_LAYER_PIDNS))
        flags |= CLONE_NEWPID;
    if (h->active & CJ_LAYER_BIT(CJ_LAYER_NETNS))
        flags |= CLONE_NEWNET;
    int pidfd = -1;
    struct clone_args args = {
        .flags = flags,
        .pidfd = (uint64_t)(uintptr_t)&pidfd,
        .exit_signal = SIGCHLD,
    };
    cleanup_close int unified = -1;
    if ((h->active & CJ_LAYER_BIT(CJ_LAYER_CGROUPS)) && h->cgroups.unified_fd >= 0) {
        unified = cj_cgroup_open_unified(&h->cgroups, cgroup, err);
        if (unified < 0) {
            close_spawn_fds(&f);
            return -1;
        }
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)unified;
    }
    if (h->warm)
        cj_python_before_fork();
    pid_t pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0) {
        forget_other_sandboxes(h);
        cj_cgroup_root_drop_locks(&h->cgroups);
        cj_sandbox_init_main(&spec);
    }
    if (h->warm)
        cj_python_after_fork_parent();
    if (pid < 0) {
        cj_fail_errno(err, "clone sandbox");
        close_spawn_fds(&f);
        return -1;
    }

    /* The byte lets the init set itself up, once its ids are mapped. */
    int rc = 0;
    if (h->active & CJ_LAYER_BIT(CJ_LAYER_USERNS) && write_maps(h, pid, order->slot, err) < 0)
        rc = -1;
    else if (write(f.sync[1], "g", 1) != 1)
        rc = cj_fail_errno(err, "release sandbox");
    if (rc < 0) {
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        close(pidfd);
        close_spawn_fds(&f);
        return -1;
    }
    engine_fds[ENGINE_CTL] = f.ctl[0];
    engine_fds[ENGINE_STDIN] = f.in[1];
    engine_fds[ENGINE_STDOUT] = f.out[0];
    engine_fds[ENGINE_STDERR] = f.err[0];
    engine_fds[ENGINE_PIDFD] = pidfd;
    f.ctl[0] = f.in[1] = f.out[0] = f.err[0] = -1;
    close_spawn_fds(&f);
    return pid;
}

/* Runs in the launcher: joins the groups, waits for its order, makes the
 * sandbox and hands its descriptors to the helper. Then it stays until the
 * sandbox's init is gone, since the init dies with its parent
 * (PR_SET_PDEATHSIG), as the launcher dies with the helper. */
static _Noreturn void launcher_main(struct helper *h, int sock, pid_t helper, const char *cgroup)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != helper)
        _exit(1);
    close(h->sock);
    cj_cgroup_root_drop_locks(&h->cgroups);
    cj_error err = {0};
    int joined = cj_cgroup_attach(&h->cgroups, cgroup, getpid(), true, &err);
    struct launch_order order;
    if (cj_recv_msg(sock, &order, sizeof order, NULL, NULL) != (ssize_t)sizeof order)
        _exit(1); /* the helper let it go */
    order.run_dir[sizeof order.run_dir - 1] = '\0';

    struct cj_spawn_reply reply = {0};
    int fds[ENGINE_FDS] = {-1, -1, -1, -1, -1};
    pid_t init = joined < 0 ? -1 : clone_sandbox(h, &order, cgroup, fds, &err);
    if (init < 0) {
        snprintf(reply.error, sizeof reply.error, "%s", err.msg);
        cj_send_msg(sock, &reply, sizeof reply, NULL, 0);
        _exit(1);
    }
    reply.ok = 1;
    reply.pid = init;
    if (cj_send_msg(sock, &reply, sizeof reply, fds, ENGINE_FDS) < 0)
        kill(init, SIGKILL);
    close_engine_fds(fds);
    close(sock);
    /* The sandbox is born in its groups; out of the request's way (a move
     * waits for an RCU grace period), the launcher leaves them. One that
     * cannot takes its sandbox down rather than share its limits. */
    if (cj_cgroup_leave(&h->cgroups, getpid(), true, &err) < 0) {
        fprintf(stderr, "codejail-sandbox: launcher: %s\n", err.msg);
        kill(init, SIGKILL);
    }
    while (waitpid(init, NULL, 0) < 0 && errno == EINTR)
        ;
    _exit(0);
}

/* Forks the launcher for the next sandbox and makes its groups; it moves
 * there on its own, while the helper goes on. */
static int start_launcher(struct helper *h, cj_error *err)
{
    unsigned long serial = ++h->next_serial;
    char cgroup[32];
    cgroup_name(serial, cgroup, sizeof cgroup);
    if (cj_cgroup_create(&h->cgroups, cgroup, CGROUP_MEMORY_BYTES, CGROUP_PIDS_MAX, err) < 0)
        return -1;
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) {
        cj_fail_errno(err, "socketpair");
        cj_cgroup_destroy(&h->cgroups, cgroup, &(cj_error){0});
        return -1;
    }
    /* A plain copy of the helper, which is single-threaded and holds no
     * lock here; it forks the sandbox the way the helper would. */
    pid_t helper = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        close(pair[0]);
        launcher_main(h, pair[1], helper, cgroup);
    }
    close(pair[1]);
    if (pid < 0) {
        cj_fail_errno(err, "fork launcher");
        close(pair[0]);
        cj_cgroup_destroy(&h->cgroups, cgroup, &(cj_error){0});
        return -1;
    }
    h->launcher = (struct launcher){pid, pair[0], serial};
    return 0;
}

/* Hands the order to a launcher; returns the pid of the sandbox's init and
 * fills engine_fds. */
static pid_t order_launch(int sock, const struct launch_order *order, int engine_fds[ENGINE_FDS],
                          cj_error *err)
{
    if (cj_send_msg(sock, order, sizeof *order, NULL, 0) != (ssize_t)sizeof *order)
        return cj_fail_errno(err, "order launcher");
    struct cj_spawn_reply reply;
    int got[ENGINE_FDS] = {-1, -1, -1, -1, -1};
    size_t nfds = ENGINE_FDS;
    /* On failure it has closed whatever arrived. */
    ssize_t n = cj_recv_msg(sock, &reply, sizeof reply, got, &nfds);
    if (n < 0)
        return cj_fail_errno(err, "read launcher's answer");
    if (n != (ssize_t)sizeof reply) {
        close_engine_fds(got);
        return cj_fail(err, EPROTO, "launcher stopped answering");
    }
    reply.error[sizeof reply.error - 1] = '\0';
    if (!reply.ok || nfds != ENGINE_FDS) {
        close_engine_fds(got);
        if (!reply.ok)
            return cj_fail(err, 0, "launcher: %s", reply.error);
        return cj_fail(err, EPROTO, "launcher sent %zu descriptors", nfds);
    }
    memcpy(engine_fds, got, sizeof got);
    return reply.pid;
}

static int spawn(struct helper *h, struct cj_spawn_reply *reply, int engine_fds[ENGINE_FDS],
                 cj_error *err)
{
    size_t slot = 0;
    while (slot < h->config.uid_count - 1 && slot < MAX_SANDBOXES && h->records[slot].pid)
        slot++;
    if (slot == h->config.uid_count - 1 || slot == MAX_SANDBOXES)
        return cj_fail(err, EAGAIN, "too many sandboxes at once");
    struct sandbox_record *record = &h->records[slot];
    struct launch_order order = {.slot = (uint32_t)slot};
    random_run_dir(order.run_dir, sizeof order.run_dir);
    memcpy(record->run_dir, order.run_dir, sizeof record->run_dir);

    pid_t init;
    if (h->via_launcher) {
        if (!h->launcher.pid && start_launcher(h, err) < 0)
            return -1;
        /* Used up whatever happens: reaping it cleans up its groups. */
        struct launcher launcher = h->launcher;
        h->launcher.pid = 0;
        record->pid = launcher.pid;
        record->session = 0;
        record->serial = launcher.serial;
        init = order_launch(launcher.sock, &order, engine_fds, err);
        close(launcher.sock);
        if (init < 0) {
            kill(launcher.pid, SIGKILL);
            return -1;
        }
    } else {
        bool cgroups = h->active & CJ_LAYER_BIT(CJ_LAYER_CGROUPS);
        unsigned long serial = ++h->next_serial;
        char cgroup[32];
        cgroup_name(serial, cgroup, sizeof cgroup);
        if (cgroups &&
            cj_cgroup_create(&h->cgroups, cgroup, CGROUP_MEMORY_BYTES, CGROUP_PIDS_MAX, err) < 0)
            return -1;
        init = clone_sandbox(h, &order, cgroup, engine_fds, err);
        if (init < 0) {
            if (cgroups)
                cj_cgroup_destroy(&h->cgroups, cgroup, &(cj_error){0});
            return -1;
        }
        record->pid = init;
        record->serial = serial;
    }
    record->session = init;
    reply->ok = 1;
    reply->pid = init;
    memcpy(reply->run_dir, order.run_dir, sizeof reply->run_dir);
    return 0;
}

static void handle_spawn(struct helper *h)
{
    struct cj_spawn_reply reply = {0};
    int fds[ENGINE_FDS] = {-1, -1, -1, -1, -1};
    cj_error err = {0};
    if (spawn(h, &reply, fds, &err) < 0) {
        snprintf(reply.error, sizeof reply.error, "%s", err.msg);
        cj_send_msg(h->sock, &reply, sizeof reply, NULL, 0);
    } else
        cj_send_msg(h->sock, &reply, sizeof reply, fds, ENGINE_FDS);
    close_engine_fds(fds);
    /* The launcher forked next would carry this sandbox's run directory
     * into the one it makes. */
    explicit_bzero(&reply, sizeof reply);
    /* The next launcher makes its move while this sandbox runs; should it
     * fail here, the next request tries again. */
    if (h->via_launcher && !h->launcher.pid && start_launcher(h, &err) < 0)
        fprintf(stderr, "codejail-sandbox: %s\n", err.msg);
}

static int helper_init(struct helper *h, cj_error *err)
{
    ssize_t n = cj_recv_msg(h->sock, &h->config, sizeof h->config, NULL, NULL);
    if (n < 0)
        return cj_fail_errno(err, "read configuration");
    if ((size_t)n != sizeof h->config || h->config.version != CJ_PROTOCOL_VERSION)
        return cj_fail(err, EPROTO, "configuration message does not match this helper");
    h->config.env_dir[sizeof h->config.env_dir - 1] = '\0';
    h->config.preimport[sizeof h->config.preimport - 1] = '\0';
    if (h->config.uid_count < 2 || h->config.uid_count - 1 > MAX_SANDBOXES)
        h->config.uid_count = MAX_SANDBOXES + 1;

    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        return cj_fail_errno(err, "set parent-death signal");
    /* A sandbox's init outlives its launcher only to die of it: reaped here. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
        return cj_fail_errno(err, "become subreaper");
    if (set_environment(err) < 0)
        return -1;
    h->rootful = geteuid() == 0;
    /* Supplementary groups would follow the sandbox into its namespace. */
    if (h->rootful && setgroups(0, NULL) < 0)
        return cj_fail_errno(err, "clear supplementary groups");
    h->proc_fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (h->proc_fd < 0)
        return cj_fail_errno(err, "open /proc");
    if (probe_layers(h, err) < 0)
        return -1;
    h->hello.rootful = h->rootful;

    /* Without a mount namespace there is no template root to share. */
    h->templated = h->active & CJ_LAYER_BIT(CJ_LAYER_MOUNTNS);
    if (h->templated && enter_template(h, err) < 0)
        return cj_error_prefix(err, "sandbox root");
    h->warm = h->config.warm && h->templated;
    if (h->warm && warm_up(h, err) < 0)
        return cj_error_prefix(err, "warm start");
    h->via_launcher =
        (h->active & CJ_LAYER_BIT(CJ_LAYER_CGROUPS)) && cj_cgroup_root_v1(&h->cgroups);
    /* After the warm-up, which each launcher then shares. */
    if (h->via_launcher && start_launcher(h, err) < 0)
        return cj_error_prefix(err, "cgroups");
    return 0;
}

static void clean_up_after(struct helper *h, struct sandbox_record *r)
{
    cj_error err = {0};
    if (h->active & CJ_LAYER_BIT(CJ_LAYER_CGROUPS)) {
        char cgroup[32];
        cgroup_name(r->serial, cgroup, sizeof cgroup);
        if (cj_cgroup_kill(&h->cgroups, cgroup, &err) < 0 ||
            cj_cgroup_destroy(&h->cgroups, cgroup, &err) < 0)
            fprintf(stderr, "codejail-sandbox: %s\n", err.msg);
    }
    if (!(h->active & CJ_LAYER_BIT(CJ_LAYER_PIDNS)) && r->session > 0)
        kill(-r->session, SIGKILL); /* the sandbox's session, in case init died first */
    if (!(h->active & CJ_LAYER_BIT(CJ_LAYER_MOUNTNS)) &&
        cj_rootfs_remove_host_run_dir(r->run_dir, &err) < 0)
        fprintf(stderr, "codejail-sandbox: %s\n", err.msg);
    r->pid = 0;
}

/* The ready launcher is gone before its order (killed). */
static void drop_launcher(struct helper *h)
{
    char cgroup[32];
    cgroup_name(h->launcher.serial, cgroup, sizeof cgroup);
    cj_error err = {0};
    if (cj_cgroup_kill(&h->cgroups, cgroup, &err) < 0 ||
        cj_cgroup_destroy(&h->cgroups, cgroup, &err) < 0)
        fprintf(stderr, "codejail-sandbox: %s\n", err.msg);
    close(h->launcher.sock);
    h->launcher.pid = 0;
}

static void reap(struct helper *h)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            return;
        if (pid == h->launcher.pid) {
            drop_launcher(h);
            continue;
        }
        for (size_t i = 0; i < MAX_SANDBOXES; i++) {
            if (h->records[i].pid == pid) {
                clean_up_after(h, &h->records[i]);
                break;
            }
        }
    }
}

static void shut_down(struct helper *h)
{
    if (h->launcher.pid) {
        kill(h->launcher.pid, SIGKILL);
        while (waitpid(h->launcher.pid, NULL, 0) < 0 && errno == EINTR)
            ;
        drop_launcher(h);
    }
    for (size_t i = 0; i < MAX_SANDBOXES; i++) {
        if (h->records[i].pid)
            kill(h->records[i].pid, SIGKILL);
    }
    for (size_t i = 0; i < MAX_SANDBOXES; i++) {
        if (!h->records[i].pid)
            continue;
        int status;
        while (waitpid(h->records[i].pid, &status, 0) < 0 && errno == EINTR)
            ;
        clean_up_after(h, &h->records[i]);
    }
    /* Inits whose launchers were killed: they died with them. */
    while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
        ;
    cj_cgroup_root_close(&h->cgroups);
}

static int serve(struct helper *h, cj_error *err)
{
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &chld, NULL) < 0)
        return cj_fail_errno(err, "block SIGCHLD");
    cleanup_close int sigfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sigfd < 0)
        return cj_fail_errno(err, "signalfd");

    for (;;) {
        struct pollfd pfd[2] = {{h->sock, POLLIN, 0}, {sigfd, POLLIN, 0}};
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return cj_fail_errno(err, "poll");
        }
        if (pfd[1].revents) {
            struct signalfd_siginfo info;
            while (read(sigfd, &info, sizeof info) > 0)
                ;
            reap(h);
        }
        if (!pfd[0].revents)
            continue;
        struct cj_spawn_request request;
        ssize_t n = cj_recv_msg(h->sock, &request, sizeof request, NULL, NULL);
        if (n == 0 || (n < 0 && errno != EINTR))
            return 0; /* the engine is gone */
        if (n == (ssize_t)sizeof request && request.type == CJ_SPAWN)
            handle_spawn(h);
    }
}

int cj_zygote_main(int fd)
{
    static struct helper h;
    cj_error err = {0};
    h.sock = fd;
    h.cgroups = CJ_CGROUP_ROOT_NONE;
    if (helper_init(&h, &err) < 0) {
        h.hello.ok = 0;
        snprintf(h.hello.error, sizeof h.hello.error, "%s", err.msg);
        cj_send_msg(fd, &h.hello, sizeof h.hello, NULL, 0);
        cj_cgroup_root_close(&h.cgroups);
        return 1;
    }
    h.hello.ok = 1;
    if (cj_send_msg(fd, &h.hello, sizeof h.hello, NULL, 0) < 0)
        return 1;
    int rc = serve(&h, &err) < 0 ? 1 : 0;
    if (rc)
        fprintf(stderr, "codejail-sandbox: %s\n", err.msg);
    shut_down(&h);
    cj_seccomp_program_free(&h.seccomp);
    return rc;
}
