/* One sandbox: its init process and the runner it forks.
 *
 * The helper (or, where cgroup v1 is in use, a launcher it forked) clone()s
 * the init process into new user, mount, PID, network, IPC and UTS
 * namespaces (each one a layer that testing builds can switch off) and into
 * its cgroups, writes its id maps, and lets it go. From there the set-up is
 * this one sequence:
 *
 *   init:   become root of the new namespace; die with its parent (which
 *           must still be there); hostname; check the network
 *           namespace is empty; build or finish the root; new cgroup
 *           namespace; new session; fork the runner
 *   runner: close every other descriptor; drop ids, capabilities and
 *           privileges; AppArmor; Landlock; seccomp; report ready; start or
 *           resume the interpreter, which runs jailed_code and blocks on stdin
 *   init:   report READY; on DISPATCH put the uploaded files in the run
 *           directory, apply the request's rlimits (CPU time spent warming
 *           up not counted); let the runner read its input (until then it
 *           waits on a pipe of its own); wait for the runner; report its
 *           wait status (EXITED); die, taking every process of the sandbox
 *           with it
 *
 * Any failure before READY is reported as FAILED with the reason, and nothing
 * runs. The init process never runs untrusted code; the runner cannot reach
 * it (no ptrace, other uid or no capabilities, no shared descriptors). */
#ifndef CODEJAIL_SANDBOX_H
#define CODEJAIL_SANDBOX_H

#include <stdbool.h>
#include <sys/types.h>

#include "layers.h"
#include "protocol.h"
#include "seccomp.h"

/* Ids inside the sandbox's user namespace when the helper is root. */
#define CJ_SANDBOX_ROOT_ID   0
#define CJ_SANDBOX_RUNNER_ID 1000
#define CJ_SANDBOX_USER      "sandbox" /* the runner id's name, as the reference's */

struct cj_sandbox_spec {
    const struct cj_helper_config *config;
    const struct cj_seccomp_program *seccomp;
    cj_layer_set active;   /* layers to set up; each must succeed */
    bool warm;             /* interpreter already initialized in the helper */
    bool rootful;          /* two ids mapped (root and runner) rather than one */
    uid_t runner_outer_id; /* the runner's id when there is no user namespace */
    char run_dir[CJ_RUN_DIR_MAX];
    /* descriptors, in the helper's numbering; parent: a pidfd of the
     * process that clones the init */
    int ctl, stdin_r, stdout_w, stderr_w, sync_r, proc_fd, parent;
};

/* Runs in the cloned init process; never returns. */
_Noreturn void cj_sandbox_init_main(const struct cj_sandbox_spec *spec);

#endif
