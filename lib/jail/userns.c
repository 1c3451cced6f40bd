#include "userns.h"

#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"

static int write_proc_file(int proc_fd, const char *path, const char *text, cj_error *err)
{
    cleanup_close int fd = openat(proc_fd, path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return cj_fail_errno(err, "open /proc/%s", path);
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    if (n < 0)
        return cj_fail_errno(err, "write '%s' to /proc/%s", text, path);
    if ((size_t)n != len)
        return cj_fail(err, 0, "short write to /proc/%s", path);
    return 0;
}

int cj_userns_write_maps(int proc_fd, pid_t pid, const char *uid_map, const char *gid_map,
                         cj_error *err)
{
    char path[64];
    snprintf(path, sizeof path, "%d/setgroups", (int)pid);
    if (write_proc_file(proc_fd, path, "deny", err) < 0)
        return -1;
    snprintf(path, sizeof path, "%d/gid_map", (int)pid);
    if (write_proc_file(proc_fd, path, gid_map, err) < 0)
        return -1;
    snprintf(path, sizeof path, "%d/uid_map", (int)pid);
    return write_proc_file(proc_fd, path, uid_map, err);
}

int cj_userns_enter_own(int proc_fd, cj_error *err)
{
    uid_t uid = geteuid();
    gid_t gid = getegid();
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
        return cj_fail_errno(err, "unshare user and mount namespaces");
    char uid_map[32], gid_map[32];
    snprintf(uid_map, sizeof uid_map, "0 %u 1", (unsigned)uid);
    snprintf(gid_map, sizeof gid_map, "0 %u 1", (unsigned)gid);
    return cj_userns_write_maps(proc_fd, getpid(), uid_map, gid_map, err);
}
