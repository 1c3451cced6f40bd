#include "landlock.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"

/* Rights and scopes from ABI 3 on, with the values of the kernel UAPI. */
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
#ifndef LANDLOCK_ACCESS_NET_BIND_TCP
#define LANDLOCK_ACCESS_NET_BIND_TCP (1ULL << 0)
#endif
#ifndef LANDLOCK_ACCESS_NET_CONNECT_TCP
#define LANDLOCK_ACCESS_NET_CONNECT_TCP (1ULL << 1)
#endif
#ifndef LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
#define LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#endif
#ifndef LANDLOCK_SCOPE_SIGNAL
#define LANDLOCK_SCOPE_SIGNAL (1ULL << 1)
#endif

/* struct landlock_ruleset_attr as of ABI 6; the system header has only the
 * first member. Older kernels accept the larger size as long as the members
 * they do not know are zero. */
struct cj_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

/* The only rights a rule on a non-directory may carry (the kernel rejects
 * directory rights there with EINVAL). */
#define FS_FILE_RIGHTS                                                                             \
    (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE |   \
     LANDLOCK_ACCESS_FS_TRUNCATE | LANDLOCK_ACCESS_FS_IOCTL_DEV)

#define READ_RIGHTS (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)

/* Everything but running programs, creating device nodes and device ioctls. */
#define WRITE_RIGHTS                                                                               \
    (LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |  \
     LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |                              \
     LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |    \
     LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_SYM | LANDLOCK_ACCESS_FS_REFER |       \
     LANDLOCK_ACCESS_FS_TRUNCATE)

/* TRUNCATE because /dev/null is sometimes opened with O_TRUNC. */
#define DEVICE_RIGHTS                                                                              \
    (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_TRUNCATE)

int cj_landlock_abi(void)
{
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    return abi < 0 ? 0 : (int)abi;
}

void cj_landlock_describe(int abi, char *out, size_t size)
{
    if (abi >= 6)
        snprintf(out, size, "ABI %d: filesystem, TCP bind and connect, scoping", abi);
    else if (abi >= 4)
        snprintf(out, size, "ABI %d: filesystem, TCP bind and connect; no scoping (ABI 6)", abi);
    else
        snprintf(out, size, "ABI %d: filesystem only; no TCP rules (ABI 4), no scoping (ABI 6)",
                 abi);
}

/* Every filesystem right the ABI knows, so that none is left unrestricted. */
static uint64_t handled_fs(int abi)
{
    uint64_t rights =
        LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE |
        LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_REMOVE_DIR |
        LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR |
        LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |
        LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM;
    if (abi >= 2)
        rights |= LANDLOCK_ACCESS_FS_REFER;
    if (abi >= 3)
        rights |= LANDLOCK_ACCESS_FS_TRUNCATE;
    if (abi >= 5)
        rights |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
    return rights;
}

static int add_rules(int ruleset_fd, const char *const *paths, const char *kind, uint64_t allowed,
                     uint64_t handled, cj_error *err)
{
    for (; paths && *paths; paths++) {
        cleanup_close int fd = open(*paths, O_PATH | O_CLOEXEC);
        if (fd < 0)
            return cj_fail_errno(err, "landlock: open %s path %s", kind, *paths);
        struct stat st;
        if (fstat(fd, &st) < 0)
            return cj_fail_errno(err, "landlock: stat %s path %s", kind, *paths);

        struct landlock_path_beneath_attr rule = {
            .allowed_access = allowed & handled,
            .parent_fd = fd,
        };
        if (!S_ISDIR(st.st_mode))
            rule.allowed_access &= FS_FILE_RIGHTS;
        if (syscall(SYS_landlock_add_rule, ruleset_fd, LANDLOCK_RULE_PATH_BENEATH, &rule, 0) < 0)
            return cj_fail_errno(err, "landlock: add rule for %s path %s", kind, *paths);
    }
    return 0;
}

int cj_landlock_apply(const struct cj_landlock_paths *paths, cj_error *err)
{
    int abi = cj_landlock_abi();
    if (abi == 0)
        return cj_fail_errno(err, "landlock: not offered by this kernel");

    struct cj_ruleset_attr attr = {.handled_access_fs = handled_fs(abi)};
    /* No network rules follow: every TCP bind and connect is denied. */
    if (abi >= 4)
        attr.handled_access_net = LANDLOCK_ACCESS_NET_BIND_TCP | LANDLOCK_ACCESS_NET_CONNECT_TCP;
    if (abi >= 6)
        attr.scoped = LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL;

    cleanup_close int ruleset_fd = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
    if (ruleset_fd < 0)
        return cj_fail_errno(err, "landlock: create ruleset (ABI %d)", abi);

    if (add_rules(ruleset_fd, paths->read_paths, "read", READ_RIGHTS, attr.handled_access_fs, err) <
            0 ||
        add_rules(ruleset_fd, paths->write_paths, "write", WRITE_RIGHTS, attr.handled_access_fs,
                  err) < 0 ||
        add_rules(ruleset_fd, paths->device_paths, "device", DEVICE_RIGHTS, attr.handled_access_fs,
                  err) < 0)
        return -1;

    if (syscall(SYS_landlock_restrict_self, ruleset_fd, 0) < 0)
        return cj_fail_errno(err, "landlock: restrict self");
    return 0;
}
