#include "rootfs.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <linux/mount.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"

static const char *const closed_dirs[] = {"etc", "proc", "sys", "root",  "var", "opt",
                                          "srv", "mnt",  "run", "media", "boot"};
static const char *const device_names[] = {"null", "zero", "full", "random", "urandom"};
#define N_DEVICES (sizeof device_names / sizeof device_names[0])

static const struct {
    const char *name;
    const char *target;
} usr_links[] = {
    {"bin", "usr/bin"}, {"sbin", "usr/sbin"}, {"lib", "usr/lib"}, {"lib64", "usr/lib64"}};

/* glibc 2.36 declares these in <sys/mount.h> but older headers may not; the
 * raw syscalls are used so the code does not depend on the libc version. */
static int open_tree_clone(const char *path, unsigned extra, cj_error *err)
{
    int fd =
        (int)syscall(SYS_open_tree, AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | extra);
    if (fd < 0)
        return cj_fail_errno(err, "clone mount of %s", path);
    return fd;
}

static int attach_tree(int tree, const char *where, uint64_t attrs, cj_error *err)
{
    if (syscall(SYS_move_mount, tree, "", AT_FDCWD, where, MOVE_MOUNT_F_EMPTY_PATH) < 0)
        return cj_fail_errno(err, "attach mount at %s", where);
    struct mount_attr attr = {.attr_set = attrs};
    if (syscall(SYS_mount_setattr, AT_FDCWD, where, AT_RECURSIVE, &attr, sizeof attr) < 0)
        return cj_fail_errno(err, "set attributes of %s", where);
    return 0;
}

static int make_dir(const char *path, mode_t mode, cj_error *err)
{
    if (mkdir(path, mode) < 0)
        return cj_fail_errno(err, "mkdir %s", path);
    /* mkdir applies the umask; the modes here are exact. */
    if (chmod(path, mode) < 0)
        return cj_fail_errno(err, "chmod %s", path);
    return 0;
}

static int mount_tmpfs(const char *where, unsigned long flags, const char *options, cj_error *err)
{
    if (mount("codejail", where, "tmpfs", flags, options) < 0)
        return cj_fail_errno(err, "mount tmpfs on %s (%s)", where, options);
    return 0;
}

int cj_rootfs_enter_template(const char *env_dir, cj_error *err)
{
    char path[4096];

    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return cj_fail_errno(err, "make mounts private");

    /* Take the environment and the devices first: the new root is mounted over
     * /tmp, which may be where they live. */
    snprintf(path, sizeof path, "%s/usr", env_dir);
    struct stat st;
    if (stat(path, &st) < 0)
        return cj_fail_errno(err, "sandbox environment %s (build it with sandbox/build-env.py)",
                             path);
    cleanup_close int usr_tree = open_tree_clone(path, AT_RECURSIVE, err);
    if (usr_tree < 0)
        return -1;
    int device_trees[N_DEVICES];
    size_t n_trees = 0;
    int rc = -1;
    for (; n_trees < N_DEVICES; n_trees++) {
        snprintf(path, sizeof path, "/dev/%s", device_names[n_trees]);
        device_trees[n_trees] = open_tree_clone(path, 0, err);
        if (device_trees[n_trees] < 0)
            goto out;
    }

    if (mount_tmpfs("/tmp", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0111,size=64k,nr_inodes=64",
                    err) < 0)
        goto out;
    if (make_dir("/tmp/usr", 0755, err) < 0 ||
        attach_tree(usr_tree, "/tmp/usr", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                    err) < 0)
        goto out;
    for (size_t i = 0; i < sizeof usr_links / sizeof usr_links[0]; i++) {
        snprintf(path, sizeof path, "/tmp/%s", usr_links[i].name);
        if (symlink(usr_links[i].target, path) < 0) {
            cj_fail_errno(err, "symlink %s", path);
            goto out;
        }
    }
    for (size_t i = 0; i < sizeof closed_dirs / sizeof closed_dirs[0]; i++) {
        snprintf(path, sizeof path, "/tmp/%s", closed_dirs[i]);
        if (make_dir(path, 0, err) < 0)
            goto out;
    }
    if (make_dir("/tmp/tmp", 0111, err) < 0 || make_dir("/tmp/dev", 0111, err) < 0 ||
        make_dir("/tmp/home", 0111, err) < 0 || make_dir("/tmp" CJ_SANDBOX_HOME, 0555, err) < 0)
        goto out;
    for (size_t i = 0; i < N_DEVICES; i++) {
        snprintf(path, sizeof path, "/tmp/dev/%s", device_names[i]);
        cleanup_close int placeholder = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666);
        if (placeholder < 0) {
            cj_fail_errno(err, "create %s", path);
            goto out;
        }
        if (attach_tree(device_trees[i], path, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, err) < 0)
            goto out;
    }

    if (chdir("/tmp") < 0) {
        cj_fail_errno(err, "chdir to new root");
        goto out;
    }
    /* pivot_root(".", ".") stacks the old root under the new one, so it can
     * be detached without a directory for it in the new root. */
    if (syscall(SYS_pivot_root, ".", ".") < 0) {
        cj_fail_errno(err, "pivot_root");
        goto out;
    }
    if (umount2(".", MNT_DETACH) < 0) {
        cj_fail_errno(err, "detach old root");
        goto out;
    }
    if (chdir("/") < 0) {
        cj_fail_errno(err, "chdir /");
        goto out;
    }
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
              NULL) < 0) {
        cj_fail_errno(err, "make root read-only");
        goto out;
    }
    rc = 0;
out:
    for (size_t i = 0; i < n_trees; i++)
        close(device_trees[i]);
    return rc;
}

static int write_runner(const struct cj_run_dir *run, cj_error *err)
{
    char path[256];
    snprintf(path, sizeof path, "%s/jailed_code", run->path);
    cleanup_close int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0444);
    if (fd < 0)
        return cj_fail_errno(err, "create %s", path);
    size_t done = 0;
    while (done < run->runner_code_len) {
        ssize_t n = write(fd, run->runner_code + done, run->runner_code_len - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return cj_fail_errno(err, "write %s", path);
        }
        done += (size_t)n;
    }
    return 0;
}

int cj_rootfs_add_run_dir(const struct cj_run_dir *run, cj_error *err)
{
    char options[160];
    char tmp_path[256];

    /* Room for the runner and the uploads, no more. */
    snprintf(options, sizeof options, "mode=0111,size=%" PRIu64 ",nr_inodes=32",
             run->upload_size + (256u << 10));
    if (mount_tmpfs("/tmp", MS_NOSUID | MS_NODEV | MS_NOEXEC, options, err) < 0)
        return -1;
    if (make_dir(run->path, 0555, err) < 0 || write_runner(run, err) < 0)
        return -1;
    snprintf(tmp_path, sizeof tmp_path, "%s/" CJ_RUN_TMP, run->path);
    if (make_dir(tmp_path, 0555, err) < 0)
        return -1;
    /* An inode cap as well as a byte cap: empty files cost no bytes. */
    snprintf(options, sizeof options, "mode=0700,uid=%u,gid=%u,size=%" PRIu64 ",nr_inodes=%" PRIu64,
             (unsigned)run->owner_uid, (unsigned)run->owner_gid, run->tmp_size,
             run->tmp_size / 4096 + 64);
    return mount_tmpfs(tmp_path, MS_NOSUID | MS_NODEV | MS_NOEXEC, options, err);
}

int cj_rootfs_add_host_run_dir(const struct cj_run_dir *run, cj_error *err)
{
    char tmp_path[256];
    if (make_dir(run->path, 0555, err) < 0 || write_runner(run, err) < 0)
        return -1;
    snprintf(tmp_path, sizeof tmp_path, "%s/" CJ_RUN_TMP, run->path);
    if (make_dir(tmp_path, 0700, err) < 0)
        return -1;
    if (chown(tmp_path, run->owner_uid, run->owner_gid) < 0)
        return cj_fail_errno(err, "chown %s", tmp_path);
    return 0;
}

int cj_rootfs_put_file(const char *run_dir, const char *name, int src, uint64_t size, cj_error *err)
{
    char path[256];
    if (snprintf(path, sizeof path, "%s/%s", run_dir, name) >= (int)sizeof path)
        return cj_fail(err, ENAMETOOLONG, "file name too long");
    cleanup_close int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0444);
    if (fd < 0)
        return cj_fail_errno(err, "create %s", path);
    off_t offset = 0;
    while ((uint64_t)offset < size) {
        ssize_t n = sendfile(fd, src, &offset, size - (uint64_t)offset);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return cj_fail_errno(err, "copy into %s", path);
        }
        if (n == 0)
            return cj_fail(err, EIO, "copy into %s: source ended early", path);
    }
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return (type == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT ? -1 : 0;
}

int cj_rootfs_remove_host_run_dir(const char *path, cj_error *err)
{
    /* The sandbox is dead by now, so nothing changes the tree under us;
     * FTW_PHYS keeps symlinks it left from being followed. */
    if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0 && errno != ENOENT)
        return cj_fail_errno(err, "remove %s", path);
    return 0;
}
