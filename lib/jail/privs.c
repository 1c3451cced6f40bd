#include "privs.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static int set_capabilities_empty(cj_error *err)
{
    struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {0};
    if (syscall(SYS_capset, &header, data) < 0)
        return cj_fail_errno(err, "capset to no capabilities");

    if (syscall(SYS_capget, &header, data) < 0)
        return cj_fail_errno(err, "capget");
    for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++) {
        if (data[i].effective || data[i].permitted || data[i].inheritable)
            return cj_fail(err, EPERM, "capabilities still present after capset");
    }
    return 0;
}

static int drop_bounding_set(cj_error *err)
{
    /* Without /proc the last capability number is unknown: the kernel
     * answers EINVAL past it. */
    for (int cap = 0; cap < 64; cap++) {
        int present = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        if (present < 0) {
            if (errno == EINVAL && cap > 0)
                return 0;
            return cj_fail_errno(err, "read bounding capability %d", cap);
        }
        if (present && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
            return cj_fail_errno(err, "drop bounding capability %d", cap);
    }
    return 0;
}

int cj_privs_drop(uid_t uid, gid_t gid, bool set_groups, cj_error *err)
{
    /* Root (uid 0 inside the namespace when there is only one id to map)
     * must not get capabilities back by any route: lock that in first,
     * while CAP_SETPCAP is still held. */
    unsigned long securebits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED |
                               SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
                               SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    if (prctl(PR_SET_SECUREBITS, securebits, 0, 0, 0) < 0)
        return cj_fail_errno(err, "set securebits");
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
        return cj_fail_errno(err, "clear ambient capabilities");
    if (drop_bounding_set(err) < 0)
        return -1;

    if (set_groups && setgroups(0, NULL) < 0)
        return cj_fail_errno(err, "clear supplementary groups");
    if (setresgid(gid, gid, gid) < 0)
        return cj_fail_errno(err, "setresgid %u", (unsigned)gid);
    if (setresuid(uid, uid, uid) < 0)
        return cj_fail_errno(err, "setresuid %u", (unsigned)uid);

    uid_t ruid, euid, suid;
    gid_t rgid, egid, sgid;
    if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0)
        return cj_fail_errno(err, "read back ids");
    if (ruid != uid || euid != uid || suid != uid || rgid != gid || egid != gid || sgid != gid)
        return cj_fail(err, EPERM, "ids did not change to %u:%u", (unsigned)uid, (unsigned)gid);

    if (set_capabilities_empty(err) < 0)
        return -1;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return cj_fail_errno(err, "set no_new_privs");
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        return cj_fail_errno(err, "clear dumpable");
    return 0;
}

static int cmp_int(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

int cj_close_fds_except(const int *keep, size_t n, cj_error *err)
{
    int sorted[16];
    if (n > sizeof sorted / sizeof sorted[0])
        return cj_fail(err, EINVAL, "too many descriptors to keep");
    for (size_t i = 0; i < n; i++)
        sorted[i] = keep[i];
    qsort(sorted, n, sizeof sorted[0], cmp_int);

    unsigned from = 0;
    for (size_t i = 0; i <= n; i++) {
        unsigned to = i < n ? (unsigned)sorted[i] : ~0u;
        if (to > from && syscall(SYS_close_range, from, to - 1, 0) < 0)
            return cj_fail_errno(err, "close descriptors %u..%u", from, to - 1);
        if (i < n)
            from = (unsigned)sorted[i] + 1;
    }
    return 0;
}

int cj_move_fd(int from, int to, cj_error *err)
{
    if (from == to) {
        int flags = fcntl(from, F_GETFD);
        if (flags < 0 || fcntl(from, F_SETFD, flags & ~FD_CLOEXEC) < 0)
            return cj_fail_errno(err, "clear close-on-exec of fd %d", from);
        return 0;
    }
    if (dup3(from, to, 0) < 0)
        return cj_fail_errno(err, "dup fd %d to %d", from, to);
    close(from);
    return 0;
}
