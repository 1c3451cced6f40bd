/* The sandbox's file system.
 *
 * Seen from inside, the root is a small read-only tmpfs:
 *   /usr                 the sandbox Python environment, read-only (nosuid, nodev)
 *   /bin /sbin /lib /lib64  symlinks into /usr, as on Debian
 *   /dev/{null,zero,full,random,urandom}  the host's devices, bound one by one
 *   /tmp                 a per-run tmpfs owned by the sandbox's root
 *   /tmp/codejail-XXXXXXXX   the run directory: jailed_code, uploaded files
 *   /tmp/codejail-XXXXXXXX/tmp   writable by the code, size-capped, noexec
 *   /home/sandbox        the code's home: empty, read-only (libraries such as
 *                        nltk want one); /home itself is mode 0111
 *   /etc /proc /sys /root /var ...   empty, mode 000
 * The root, /tmp, /dev and /home are mode 0111 (enter, never list), and every
 * closed directory is mode 000, so looking at anything outside the allowed
 * set fails with EACCES rather than ENOENT, as the API promises. Nothing is
 * executable: /usr/bin is an empty mode-000 directory in the environment, and
 * every writable place is noexec.
 *
 * The run's /tmp is not made read-only: a read-only mount answers EROFS
 * before any permission check, and the API promises EACCES. Writes there are
 * refused by ownership and mode (when root, the sandbox's root owns it and
 * the code runs as another id) and by Landlock.
 *
 * The root is built in two steps, so that a long-lived helper can build the
 * shared part once (cj_rootfs_enter_template) and each sandbox only adds its
 * run directory (cj_rootfs_add_run_dir) in a mount namespace of its own. The
 * caller must hold CAP_SYS_ADMIN over its mount namespace. */
#ifndef CODEJAIL_ROOTFS_H
#define CODEJAIL_ROOTFS_H

#include <stdint.h>
#include <sys/types.h>

#include "error.h"

#define CJ_RUN_TMP      "tmp" /* the writable directory, relative to the run dir */
#define CJ_SANDBOX_HOME "/home/sandbox"

struct cj_run_dir {
    const char *path;        /* "/tmp/codejail-XXXXXXXX" */
    const char *runner_code; /* contents of jailed_code */
    size_t runner_code_len;
    uid_t owner_uid; /* ids of the code, which own tmp/ */
    gid_t owner_gid;
    uint64_t tmp_size;    /* cap of tmp/ in bytes */
    uint64_t upload_size; /* room for uploaded files */
};

/* Builds the template root over /tmp (which must exist) in the caller's mount
 * namespace, made private first, and pivots into it. env_dir holds usr/. */
int cj_rootfs_enter_template(const char *env_dir, cj_error *err);

/* Mounts a fresh /tmp holding the run directory and its tmp/. */
int cj_rootfs_add_run_dir(const struct cj_run_dir *run, cj_error *err);

/* Without a mount namespace (testing only): makes the run directory in the
 * host's /tmp instead. */
int cj_rootfs_add_host_run_dir(const struct cj_run_dir *run, cj_error *err);

/* Writes one read-only file into the run directory from the descriptor src
 * (copied from its start, size bytes). */
int cj_rootfs_put_file(const char *run_dir, const char *name, int src, uint64_t size,
                       cj_error *err);

/* Removes a host run directory made by cj_rootfs_add_host_run_dir, without
 * following symlinks. */
int cj_rootfs_remove_host_run_dir(const char *path, cj_error *err);

#endif
