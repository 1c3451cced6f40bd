/* Per-sandbox cgroups: memory and pids limits as a second line behind the
 * rlimits, and a kill switch that reaches every process of a sandbox even when
 * the PID namespace is not there to do it.
 *
 * Memory and pids come from cgroup v1 controllers or from cgroup2 where it has
 * them enabled; the kill switch is cgroup2's cgroup.kill, with a fallback that
 * SIGKILLs every pid listed in the sandbox's groups. Parents named
 * "codejail.<pid of the caller>" are made beside the caller's own cgroup in
 * each hierarchy (so a container's delegated subtree is used); a hierarchy the
 * caller cannot write is skipped, and the layer is unavailable when none is
 * usable. Each parent is locked (flock) by its helper: a parent whose lock
 * is free belongs to an instance that is gone, and the next start removes
 * it with what is left in it. All files are reached through directory fds opened at
 * cj_cgroup_root_open(), so the caller may pivot its root afterwards. */
#ifndef CODEJAIL_CGROUP_H
#define CODEJAIL_CGROUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

struct cj_cgroup_root {
    int memory_fd;  /* parent dir in a hierarchy with the memory controller, or -1 */
    int pids_fd;    /* parent dir in a hierarchy with the pids controller, or -1 */
    int unified_fd; /* parent dir in the cgroup2 hierarchy, or -1 */
    bool memory_v2; /* memory_fd is in cgroup2 (memory.max) rather than v1 */
    bool pids_v2;
    /* The parents' locks (flock, one per hierarchy): held by the helper
     * alone, so that they go when it does (see cj_cgroup_root_drop_locks). */
    int lock_fd[3];
};

#define CJ_CGROUP_ROOT_NONE                                                                        \
    (struct cj_cgroup_root)                                                                        \
    {                                                                                              \
        .memory_fd = -1, .pids_fd = -1, .unified_fd = -1, .lock_fd = {-1, -1, -1},                 \
    }

/* Finds the hierarchies in /proc/self/mountinfo and /proc/self/cgroup and
 * creates the parents. Returns 0 with every fd -1 when the host offers no
 * usable cgroup (not an error: the layer is then unavailable). */
int cj_cgroup_root_open(struct cj_cgroup_root *root, cj_error *err);
bool cj_cgroup_root_usable(const struct cj_cgroup_root *root);
/* Whether both a memory and a pids limit can be set (a kill switch alone
 * limits nothing). */
bool cj_cgroup_root_limits(const struct cj_cgroup_root *root);
/* Whether a limit is in a cgroup v1 hierarchy, where a process gets into a
 * group only by moving there (CLONE_INTO_CGROUP is cgroup2's). */
bool cj_cgroup_root_v1(const struct cj_cgroup_root *root);
/* Removes the parents (they must be empty) and closes the fds. */
void cj_cgroup_root_close(struct cj_cgroup_root *root);
/* In a process forked from the one that opened root (a launcher, a
 * sandbox's init): lets go of its copies of the locks, so that a parent is
 * seen as stale as soon as its helper is gone, whatever else still dies. */
void cj_cgroup_root_drop_locks(struct cj_cgroup_root *root);

/* Creates group `name` in each usable hierarchy, with memory limit
 * memory_bytes and pids limit pids_max (0: leave that limit unset). */
int cj_cgroup_create(const struct cj_cgroup_root *root, const char *name, uint64_t memory_bytes,
                     uint64_t pids_max, cj_error *err);
/* Opens group `name` in the cgroup2 hierarchy (root->unified_fd must be
 * valid), for clone3's CLONE_INTO_CGROUP: a process created there costs no
 * migration, which otherwise waits for an RCU grace period (milliseconds). */
int cj_cgroup_open_unified(const struct cj_cgroup_root *root, const char *name, cj_error *err);

/* Moves pid into group `name` in each hierarchy where it was created, but
 * the cgroup2 one when in_unified says it was cloned there already. A process
 * that moves itself into a group before creating another makes it born
 * there, which is how cgroup v1 gets what CLONE_INTO_CGROUP gives. */
int cj_cgroup_attach(const struct cj_cgroup_root *root, const char *name, pid_t pid,
                     bool in_unified, cj_error *err);
/* Moves pid out of its group into the parent, in the same hierarchies (a
 * cgroup v1 parent may hold processes): the launcher leaves the sandbox's
 * groups, so that it is neither killed for the sandbox's memory nor counted
 * among its pids. */
int cj_cgroup_leave(const struct cj_cgroup_root *root, pid_t pid, bool in_unified, cj_error *err);
/* Kills every process in group `name` and waits (bounded) until it is empty. */
int cj_cgroup_kill(const struct cj_cgroup_root *root, const char *name, cj_error *err);
/* Removes group `name` from each hierarchy (after cj_cgroup_kill). */
int cj_cgroup_destroy(const struct cj_cgroup_root *root, const char *name, cj_error *err);

#endif
