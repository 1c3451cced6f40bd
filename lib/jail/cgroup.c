#include "cgroup.h"

#include "cleanup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A sandbox that forks as fast as it can still leaves a group within a few
 * milliseconds of SIGKILL; these bounds are only there so that a stuck kernel
 * or a process we cannot kill turns into an error instead of a hang. */
#define KILL_TIMEOUT_MS  2000
#define RMDIR_TIMEOUT_MS 1000

/* "<name>/<file>" with the longest file name used here. */
#define GROUP_PATH_MAX (NAME_MAX + sizeof "/memory.memsw.limit_in_bytes")

/* memory_fd and pids_fd hold the same descriptor number as each other or as
 * unified_fd when they live in the same hierarchy, so that a group is created
 * once per hierarchy. The order is the attach order: unified first, so that
 * any process of a sandbox in one of its groups is also in the first one,
 * which is the one cj_cgroup_kill() empties. (A launcher stands in the cgroup
 * v1 groups only, and is gone before they are emptied.) */
static int distinct_fds(const struct cj_cgroup_root *root, int fds[3])
{
    const int candidates[3] = {root->unified_fd, root->memory_fd, root->pids_fd};
    int n = 0;
    for (int i = 0; i < 3; i++) {
        bool seen = candidates[i] < 0;
        for (int j = 0; j < n && !seen; j++)
            seen = fds[j] == candidates[i];
        if (!seen)
            fds[n++] = candidates[i];
    }
    return n;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Error messages name files by path, but only the fds are kept (the caller may
 * pivot its root away from /sys/fs/cgroup), so the path is asked of /proc when
 * a message needs it, and the fd number stands in when /proc is not there. */
static const char *dir_name(int dirfd, char *buf, size_t size)
{
    char link[32];
    snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
    ssize_t n = readlink(link, buf, size - 1);
    if (n < 0)
        snprintf(buf, size, "<cgroup fd %d>", dirfd);
    else
        buf[n] = '\0';
    return buf;
}

static int fail_at(cj_error *err, int errnum, const char *op, int dirfd, const char *rel)
{
    char dir[sizeof err->msg];
    dir_name(dirfd, dir, sizeof dir);
    return cj_fail(err, errnum, "%s %s/%s: %s", op, dir, rel, strerror(errnum));
}

static int check_name(const char *name, cj_error *err)
{
    size_t len = strlen(name);
    if (len == 0 || len > NAME_MAX || strchr(name, '/') || strcmp(name, ".") == 0 ||
        strcmp(name, "..") == 0)
        return cj_fail(err, EINVAL, "invalid cgroup name '%s'", name);
    return 0;
}

static void group_path(char *out, const char *name, const char *file)
{
    snprintf(out, GROUP_PATH_MAX, "%s/%s", name, file);
}

/* With missing_ok, a file the kernel does not offer (no swap accounting, no
 * swap controller) is not an error; returns 1 when it was missing. */
static int write_at(int dirfd, const char *rel, const char *value, bool missing_ok, cj_error *err)
{
    cleanup_close int fd = openat(dirfd, rel, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        if (missing_ok && errno == ENOENT)
            return 1;
        return fail_at(err, errno, "open", dirfd, rel);
    }
    size_t len = strlen(value);
    ssize_t n = write(fd, value, len);
    if (n < 0)
        return fail_at(err, errno, "write", dirfd, rel);
    if ((size_t)n != len)
        return fail_at(err, EIO, "short write to", dirfd, rel);
    return 0;
}

static int read_at(int dirfd, const char *rel, char *buf, size_t size, cj_error *err)
{
    cleanup_close int fd = openat(dirfd, rel, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail_at(err, errno, "open", dirfd, rel);
    ssize_t n = read(fd, buf, size - 1);
    if (n < 0)
        return fail_at(err, errno, "read", dirfd, rel);
    buf[n] = '\0';
    return 0;
}

/* True when `word` is an element of the `sep`-separated list. */
static bool list_has(const char *list, const char *word, const char *sep)
{
    size_t len = strlen(word);
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, sep);
        if (n == len && strncmp(p, word, len) == 0)
            return true;
        p += n;
        p += strspn(p, sep);
    }
    return false;
}

/* Undoes mountinfo's octal escapes (\040 for a space, ...) in place. */
static void unescape(char *s)
{
    char *out = s;
    for (char *in = s; *in; in++) {
        if (in[0] == '\\' && in[1] >= '0' && in[1] <= '3' && in[2] >= '0' && in[2] <= '7' &&
            in[3] >= '0' && in[3] <= '7') {
            *out++ = (char)((in[1] - '0') * 64 + (in[2] - '0') * 8 + (in[3] - '0'));
            in += 3;
        } else {
            *out++ = *in;
        }
    }
    *out = '\0';
}

/* The caller's path in the hierarchy whose /proc/self/cgroup controller list
 * contains `controller` ("" selects the cgroup2 line, "0::/path"). Returns 1
 * when found, 0 when the hierarchy is not listed. */
static int own_cgroup_path(const char *controller, char *out, size_t size, cj_error *err)
{
    cleanup_file FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return cj_fail_errno(err, "open /proc/self/cgroup");
    cleanup_free char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] == '\n')
            line[len - 1] = '\0';
        char *controllers = strchr(line, ':');
        char *path = controllers ? strchr(controllers + 1, ':') : NULL;
        if (!path)
            continue;
        *controllers++ = '\0';
        *path++ = '\0';
        bool match = controller[0] ? list_has(controllers, controller, ",")
                                   : strcmp(line, "0") == 0 && controllers[0] == '\0';
        if (!match)
            continue;
        if (snprintf(out, size, "%s", path) >= (int)size)
            return cj_fail(err, ENAMETOOLONG, "/proc/self/cgroup: path too long: %s", path);
        return 1;
    }
    if (ferror(f))
        return cj_fail_errno(err, "read /proc/self/cgroup");
    return 0;
}

/* Joins a mount point and the caller's cgroup path as the mount shows it: a
 * mount whose root is not the hierarchy's root (a container's bind mount of
 * its own group) shows only the paths beneath that root. Returns 0 when the
 * caller's group is not reachable through this mount. */
static int own_dir_in_mount(const char *mountpoint, const char *mount_root, const char *own,
                            char *out, size_t size)
{
    /* Outside the cgroup namespace's root the kernel shows "/../...". */
    if (strncmp(own, "/..", 3) == 0 && (own[3] == '/' || own[3] == '\0'))
        return 0;
    size_t root_len = strcmp(mount_root, "/") == 0 ? 0 : strlen(mount_root);
    if (strncmp(own, mount_root, root_len) != 0 || (own[root_len] != '/' && own[root_len] != '\0'))
        return 0;
    const char *rel = own + root_len;
    if (strcmp(rel, "/") == 0)
        rel = "";
    return snprintf(out, size, "%s%s", mountpoint, rel) < (int)size;
}

static int empty_parent(int parent_fd, const char *path, cj_error *err);
static void sweep_stale_parents(const char *dir, int own_fd);

/* Whether the directory at `path` is the one open as fd. */
static bool still_named(const char *path, int fd)
{
    struct stat named, open;
    return stat(path, &named) == 0 && fstat(fd, &open) == 0 && named.st_dev == open.st_dev &&
           named.st_ino == open.st_ino;
}

/* Makes, opens and locks <dir>/codejail.<pid>. Leaves *out at -1 when the
 * caller may not write the hierarchy (rootless, read-only mount): that is
 * not an error.
 *
 * The parent stays locked (flock) for as long as a process of this instance
 * has it open (the helper, its launchers): a parent whose lock can be taken
 * belongs to an instance that is gone, whatever PID namespace it ran in, and
 * its groups are removed here. A name whose lock is held belongs to a live
 * instance with the same pid in another PID namespace; a suffix makes ours
 * differ. */
static int open_parent(const char *dir, int *out, int *lock, cj_error *err)
{
    for (int attempt = 0; attempt < 8; attempt++) {
        char path[PATH_MAX];
        int len =
            attempt ? snprintf(path, sizeof path, "%s/codejail.%d.%d", dir, (int)getpid(), attempt)
                    : snprintf(path, sizeof path, "%s/codejail.%d", dir, (int)getpid());
        if (len >= (int)sizeof path)
            return cj_fail(err, ENAMETOOLONG, "cgroup path too long: %s", dir);
        bool reused = false;
        if (mkdir(path, 0755) < 0) {
            if (errno == EACCES || errno == EPERM || errno == EROFS)
                return 0;
            if (errno != EEXIST)
                return cj_fail_errno(err, "mkdir %s", path);
            reused = true;
        }
        cleanup_close int fd = open(path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        if (fd < 0 && errno != ENOENT)
            return cj_fail_errno(err, "open %s", path);
        if (fd < 0)
            continue; /* swept away by another instance's start: made again */
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
            if (errno != EWOULDBLOCK)
                return cj_fail_errno(err, "lock %s", path);
            continue;
        }
        /* Another instance's start may have swept it between mkdir and flock. */
        if (!still_named(path, fd))
            continue;
        if (reused && empty_parent(fd, path, err) < 0)
            return -1;
        sweep_stale_parents(dir, fd);
        /* The locked descriptor stays with the helper alone; the one its
         * launchers inherit and use is another. */
        *out = open(path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        if (*out < 0)
            return cj_fail_errno(err, "open %s", path);
        *lock = cj_steal_fd(&fd);
        return 0;
    }
    return cj_fail(err, EBUSY, "no free cgroup parent name in %s", dir);
}

/* The cgroup2 parent hands a controller to its children only once it is
 * listed in its cgroup.controllers (enabled by the level above) and then
 * enabled in its own cgroup.subtree_control, which a partial delegation may
 * refuse. Returns 1 when enabled. */
static int enable_v2_controller(int parent_fd, const char *controllers, const char *name,
                                cj_error *err)
{
    if (!list_has(controllers, name, " \n"))
        return 0;
    char value[16];
    snprintf(value, sizeof value, "+%s", name);
    cj_error local;
    if (write_at(parent_fd, "cgroup.subtree_control", value, false, &local) == 0)
        return 1;
    if (local.errnum == EACCES || local.errnum == EPERM || local.errnum == EROFS)
        return 0;
    *err = local;
    return -1;
}

static int use_v2_controllers(struct cj_cgroup_root *root, cj_error *err)
{
    char controllers[512];
    if (read_at(root->unified_fd, "cgroup.controllers", controllers, sizeof controllers, err) < 0)
        return -1;
    if (root->memory_fd < 0) {
        int r = enable_v2_controller(root->unified_fd, controllers, "memory", err);
        if (r < 0)
            return -1;
        if (r > 0) {
            root->memory_fd = root->unified_fd;
            root->memory_v2 = true;
        }
    }
    if (root->pids_fd < 0) {
        int r = enable_v2_controller(root->unified_fd, controllers, "pids", err);
        if (r < 0)
            return -1;
        if (r > 0) {
            root->pids_fd = root->unified_fd;
            root->pids_v2 = true;
        }
    }
    return 0;
}

/* Handles one line of /proc/self/mountinfo:
 * "36 25 0:32 / /sys/fs/cgroup/memory rw,relatime shared:4 - cgroup cgroup rw,memory". */
static int use_mount(struct cj_cgroup_root *root, char *line, cj_error *err)
{
    char *fields[6] = {NULL};
    char *save = NULL;
    char *tok = strtok_r(line, " \n", &save);
    for (int i = 0; i < 6 && tok; i++, tok = strtok_r(NULL, " \n", &save))
        fields[i] = tok;
    while (tok && strcmp(tok, "-") != 0)
        tok = strtok_r(NULL, " \n", &save);
    char *fstype = tok ? strtok_r(NULL, " \n", &save) : NULL;
    char *source = fstype ? strtok_r(NULL, " \n", &save) : NULL;
    char *options = source ? strtok_r(NULL, " \n", &save) : NULL;
    if (!options)
        return 0;

    bool v2 = strcmp(fstype, "cgroup2") == 0;
    bool memory = false, pids = false;
    if (v2) {
        if (root->unified_fd >= 0)
            return 0;
    } else if (strcmp(fstype, "cgroup") == 0) {
        memory = root->memory_fd < 0 && list_has(options, "memory", ",");
        pids = root->pids_fd < 0 && list_has(options, "pids", ",");
        if (!memory && !pids)
            return 0;
    } else {
        return 0;
    }

    char *mount_root = fields[3];
    char *mountpoint = fields[4];
    unescape(mount_root);
    unescape(mountpoint);
    char own[PATH_MAX];
    int found = own_cgroup_path(v2 ? "" : memory ? "memory" : "pids", own, sizeof own, err);
    if (found <= 0)
        return found;
    char dir[PATH_MAX];
    if (!own_dir_in_mount(mountpoint, mount_root, own, dir, sizeof dir))
        return 0;
    int fd = -1, lock = -1;
    if (open_parent(dir, &fd, &lock, err) < 0)
        return -1;
    if (fd < 0)
        return 0;
    for (int i = 0; i < 3; i++) {
        if (root->lock_fd[i] < 0) {
            root->lock_fd[i] = lock;
            break;
        }
    }
    if (v2)
        root->unified_fd = fd;
    if (memory)
        root->memory_fd = fd;
    if (pids)
        root->pids_fd = fd;
    return 0;
}

int cj_cgroup_root_open(struct cj_cgroup_root *root, cj_error *err)
{
    *root = CJ_CGROUP_ROOT_NONE;
    cleanup_file FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return cj_fail_errno(err, "open /proc/self/mountinfo");
    cleanup_free char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        if (use_mount(root, line, err) < 0)
            goto fail;
    }
    if (ferror(f)) {
        cj_fail_errno(err, "read /proc/self/mountinfo");
        goto fail;
    }
    /* A controller bound to a v1 hierarchy never shows up in cgroup2, so v1
     * mounts are all seen before cgroup2 is asked for what is still missing. */
    if (root->unified_fd >= 0 && (root->memory_fd < 0 || root->pids_fd < 0) &&
        use_v2_controllers(root, err) < 0)
        goto fail;
    return 0;

fail:
    cj_cgroup_root_close(root);
    return -1;
}

bool cj_cgroup_root_usable(const struct cj_cgroup_root *root)
{
    return root->memory_fd >= 0 || root->pids_fd >= 0 || root->unified_fd >= 0;
}

bool cj_cgroup_root_limits(const struct cj_cgroup_root *root)
{
    return root->memory_fd >= 0 && root->pids_fd >= 0;
}

bool cj_cgroup_root_v1(const struct cj_cgroup_root *root)
{
    return (root->memory_fd >= 0 && !root->memory_v2) || (root->pids_fd >= 0 && !root->pids_v2);
}

/* The parent's own name is not kept (root_close may run in a process other
 * than the one that opened it, after a pivot_root), so it is found in the
 * directory above by inode. */
static void remove_parent(int fd)
{
    struct stat self;
    if (fstat(fd, &self) < 0)
        return;
    int up = openat(fd, "..", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (up < 0)
        return;
    cleanup_dir DIR *dir = fdopendir(up);
    if (!dir) {
        close(up);
        return;
    }
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        struct stat st;
        if (strncmp(entry->d_name, "codejail.", strlen("codejail.")) != 0 ||
            fstatat(up, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (st.st_dev == self.st_dev && st.st_ino == self.st_ino) {
            unlinkat(up, entry->d_name, AT_REMOVEDIR);
            return;
        }
    }
}

void cj_cgroup_root_close(struct cj_cgroup_root *root)
{
    int fds[3];
    int n = distinct_fds(root, fds);
    for (int i = 0; i < n; i++) {
        remove_parent(fds[i]);
        close(fds[i]);
    }
    cj_cgroup_root_drop_locks(root);
    *root = CJ_CGROUP_ROOT_NONE;
}

void cj_cgroup_root_drop_locks(struct cj_cgroup_root *root)
{
    for (int i = 0; i < 3; i++) {
        if (root->lock_fd[i] >= 0)
            close(root->lock_fd[i]);
        root->lock_fd[i] = -1;
    }
}

static void remove_groups(const int *fds, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        unlinkat(fds[i], name, AT_REMOVEDIR);
}

static int set_limits(const struct cj_cgroup_root *root, const char *name, uint64_t memory_bytes,
                      uint64_t pids_max, cj_error *err)
{
    char path[GROUP_PATH_MAX];
    char value[32];
    if (memory_bytes && root->memory_fd >= 0) {
        snprintf(value, sizeof value, "%" PRIu64, memory_bytes);
        /* Without the swap limit, a host with swap would let the sandbox page
         * out past its memory limit instead of being OOM-killed. */
        group_path(path, name, root->memory_v2 ? "memory.max" : "memory.limit_in_bytes");
        if (write_at(root->memory_fd, path, value, false, err) < 0)
            return -1;
        if (root->memory_v2) {
            group_path(path, name, "memory.swap.max");
            if (write_at(root->memory_fd, path, "0", true, err) < 0)
                return -1;
        } else {
            /* memsw counts memory plus swap, and may not be below the memory limit. */
            group_path(path, name, "memory.memsw.limit_in_bytes");
            if (write_at(root->memory_fd, path, value, true, err) < 0)
                return -1;
        }
    }
    if (pids_max && root->pids_fd >= 0) {
        snprintf(value, sizeof value, "%" PRIu64, pids_max);
        group_path(path, name, "pids.max");
        if (write_at(root->pids_fd, path, value, false, err) < 0)
            return -1;
    }
    return 0;
}

int cj_cgroup_create(const struct cj_cgroup_root *root, const char *name, uint64_t memory_bytes,
                     uint64_t pids_max, cj_error *err)
{
    if (check_name(name, err) < 0)
        return -1;
    int fds[3];
    int n = distinct_fds(root, fds);
    for (int i = 0; i < n; i++) {
        if (mkdirat(fds[i], name, 0755) < 0) {
            fail_at(err, errno, "mkdir", fds[i], name);
            remove_groups(fds, i, name);
            return -1;
        }
    }
    if (set_limits(root, name, memory_bytes, pids_max, err) < 0) {
        remove_groups(fds, n, name);
        return -1;
    }
    return 0;
}

int cj_cgroup_open_unified(const struct cj_cgroup_root *root, const char *name, cj_error *err)
{
    if (check_name(name, err) < 0)
        return -1;
    int fd = openat(root->unified_fd, name, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail_at(err, errno, "open", root->unified_fd, name);
    return fd;
}

/* Writes pid to the cgroup.procs at rel below each parent, but the cgroup2
 * one when in_unified. */
static int move_pid(const struct cj_cgroup_root *root, const char *rel, pid_t pid, bool in_unified,
                    cj_error *err)
{
    char value[16];
    snprintf(value, sizeof value, "%d", (int)pid);
    int fds[3];
    int n = distinct_fds(root, fds);
    for (int i = 0; i < n; i++) {
        if (in_unified && fds[i] == root->unified_fd)
            continue;
        if (write_at(fds[i], rel, value, false, err) < 0)
            return -1;
    }
    return 0;
}

int cj_cgroup_attach(const struct cj_cgroup_root *root, const char *name, pid_t pid,
                     bool in_unified, cj_error *err)
{
    if (check_name(name, err) < 0)
        return -1;
    char path[GROUP_PATH_MAX];
    group_path(path, name, "cgroup.procs");
    return move_pid(root, path, pid, in_unified, err);
}

int cj_cgroup_leave(const struct cj_cgroup_root *root, pid_t pid, bool in_unified, cj_error *err)
{
    return move_pid(root, "cgroup.procs", pid, in_unified, err);
}

static int kill_pid(long pid, int dirfd, const char *procs, cj_error *err)
{
    /* Pids outside our PID namespace are listed as 0, and kill(0) would
     * signal our own process group. */
    if (pid <= 0 || (pid_t)pid != pid)
        return 0;
    if (kill((pid_t)pid, SIGKILL) < 0 && errno != ESRCH) {
        char what[64];
        snprintf(what, sizeof what, "kill %ld listed in", pid);
        return fail_at(err, errno, what, dirfd, procs);
    }
    return 1;
}

/* Sends SIGKILL to each pid listed in `procs`; returns how many were
 * signalled. */
static int kill_listed(int dirfd, const char *procs, cj_error *err)
{
    cleanup_close int fd = openat(dirfd, procs, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail_at(err, errno, "open", dirfd, procs);
    char buf[4096];
    long pid = 0;
    bool in_number = false;
    int listed = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return fail_at(err, errno, "read", dirfd, procs);
        }
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] >= '0' && buf[i] <= '9') {
                if (pid <= UINT32_MAX)
                    pid = pid * 10 + (buf[i] - '0');
                in_number = true;
            } else if (in_number) {
                int signalled = kill_pid(pid, dirfd, procs, err);
                if (signalled < 0)
                    return -1;
                listed += signalled;
                pid = 0;
                in_number = false;
            }
        }
    }
    if (in_number) {
        int signalled = kill_pid(pid, dirfd, procs, err);
        if (signalled < 0)
            return -1;
        listed += signalled;
    }
    return listed;
}

/* Without cgroup.kill (cgroup v1 only, or a kernel before 5.14), processes
 * are killed one by one; one may fork between the read and the kill, so the
 * list is read again until it stays empty. */
static int kill_by_list(int dirfd, const char *name, int64_t deadline, cj_error *err)
{
    char procs[GROUP_PATH_MAX];
    group_path(procs, name, "cgroup.procs");
    for (;;) {
        int listed = kill_listed(dirfd, procs, err);
        if (listed <= 0)
            return listed;
        if (now_ms() >= deadline) {
            char dir[sizeof err->msg];
            return cj_fail(err, EBUSY, "cgroup %s/%s still has processes %d ms after SIGKILL",
                           dir_name(dirfd, dir, sizeof dir), name, KILL_TIMEOUT_MS);
        }
        sleep_ms(1);
    }
}

static int wait_unpopulated(int dirfd, const char *name, int64_t deadline, cj_error *err)
{
    char events[GROUP_PATH_MAX];
    group_path(events, name, "cgroup.events");
    cleanup_close int fd = openat(dirfd, events, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail_at(err, errno, "open", dirfd, events);
    for (;;) {
        char buf[256];
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        if (n < 0)
            return fail_at(err, errno, "read", dirfd, events);
        buf[n] = '\0';
        const char *populated = strstr(buf, "populated ");
        if (!populated)
            return fail_at(err, EINVAL, "no 'populated' line in", dirfd, events);
        if (populated[strlen("populated ")] == '0')
            return 0;
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            char dir[sizeof err->msg];
            return cj_fail(err, EBUSY, "cgroup %s/%s still populated %d ms after cgroup.kill",
                           dir_name(dirfd, dir, sizeof dir), name, KILL_TIMEOUT_MS);
        }
        /* The kernel flags a change of cgroup.events with POLLPRI. */
        struct pollfd pfd = {.fd = fd, .events = POLLPRI};
        if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
            return fail_at(err, errno, "poll", dirfd, events);
    }
}

int cj_cgroup_kill(const struct cj_cgroup_root *root, const char *name, cj_error *err)
{
    if (check_name(name, err) < 0)
        return -1;
    int fds[3];
    if (distinct_fds(root, fds) == 0)
        return 0;
    int64_t deadline = now_ms() + KILL_TIMEOUT_MS;
    if (fds[0] == root->unified_fd) {
        char path[GROUP_PATH_MAX];
        group_path(path, name, "cgroup.kill");
        int missing = write_at(fds[0], path, "1", true, err);
        if (missing < 0)
            return -1;
        if (!missing)
            return wait_unpopulated(fds[0], name, deadline, err);
    }
    return kill_by_list(fds[0], name, deadline, err);
}

int cj_cgroup_destroy(const struct cj_cgroup_root *root, const char *name, cj_error *err)
{
    if (check_name(name, err) < 0)
        return -1;
    int fds[3];
    int n = distinct_fds(root, fds);
    int64_t deadline = now_ms() + RMDIR_TIMEOUT_MS;
    int rc = 0;
    for (int i = 0; i < n; i++) {
        /* A v1 memory group can stay busy for a moment after its last task
         * has exited. */
        while (unlinkat(fds[i], name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
            if (errno != EBUSY || now_ms() >= deadline) {
                if (rc == 0)
                    rc = fail_at(err, errno, "rmdir", fds[i], name);
                break;
            }
            sleep_ms(1);
        }
    }
    return rc;
}

/* ---- what instances that are gone left behind ---- */

/* Kills whatever is left in each group below a parent that no live instance
 * holds, and removes the groups. */
static int empty_parent(int parent_fd, const char *path, cj_error *err)
{
    int fd = openat(parent_fd, ".", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cj_fail_errno(err, "open %s", path);
    cleanup_dir DIR *dir = fdopendir(fd);
    if (!dir) {
        close(fd);
        return cj_fail_errno(err, "opendir %s", path);
    }
    struct dirent *entry;
    while ((errno = 0, entry = readdir(dir)) != NULL) {
        if (entry->d_type != DT_DIR || strcmp(entry->d_name, ".") == 0 ||
            strcmp(entry->d_name, "..") == 0)
            continue;
        if (kill_by_list(parent_fd, entry->d_name, now_ms() + KILL_TIMEOUT_MS, err) < 0)
            return cj_error_prefix(err, "stale cgroup");
        if (unlinkat(parent_fd, entry->d_name, AT_REMOVEDIR) < 0)
            return cj_fail_errno(err, "rmdir %s/%s", path, entry->d_name);
    }
    if (errno != 0)
        return cj_fail_errno(err, "readdir %s", path);
    return 0;
}

/* Instances from before parents were locked hold no lock: one whose helper
 * (named in the parent's name) still runs in this PID namespace, and is not
 * a zombie, is alive. */
static bool unlocked_owner_runs(const char *name)
{
    char *end;
    long pid = strtol(name + strlen("codejail."), &end, 10);
    if (pid <= 0 || (*end && *end != '.'))
        return false;
    char path[64], stat[128] = "";
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, stat, sizeof stat - 1);
    if (n <= 0)
        return false;
    /* "<pid> (<comm, cut to 15 characters>) <state> ..." */
    static const char helper[] = " (codejail-sandbo) ";
    const char *comm = strchr(stat, ' ');
    return comm && strncmp(comm, helper, strlen(helper)) == 0 && comm[strlen(helper)] != 'Z';
}

/* Removes the codejail.* parents beside ours whose lock nobody holds. What
 * cannot be removed is reported and left: it must not stop this start. */
static void sweep_stale_parents(const char *path, int own_fd)
{
    int fd = openat(own_fd, "..", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "codejail: stale cgroups in %s: %s\n", path, strerror(errno));
        return;
    }
    cleanup_dir DIR *dir = fdopendir(fd);
    if (!dir) {
        fprintf(stderr, "codejail: stale cgroups in %s: %s\n", path, strerror(errno));
        close(fd);
        return;
    }
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_type != DT_DIR || strncmp(entry->d_name, "codejail.", 9) != 0)
            continue;
        cleanup_close int stale = openat(fd, entry->d_name, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        /* Held (ours too: flock is per open file): a live instance's. */
        if (stale < 0 || flock(stale, LOCK_EX | LOCK_NB) < 0 || unlocked_owner_runs(entry->d_name))
            continue;
        char name[PATH_MAX + NAME_MAX + 2];
        snprintf(name, sizeof name, "%s/%s", path, entry->d_name);
        cj_error err = {0};
        if (empty_parent(stale, name, &err) < 0)
            fprintf(stderr, "codejail: %s\n", err.msg);
        else if (unlinkat(fd, entry->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT)
            fprintf(stderr, "codejail: rmdir stale cgroup %s: %s\n", name, strerror(errno));
        else
            fprintf(stderr, "codejail: removed stale cgroup %s\n", name);
    }
}
