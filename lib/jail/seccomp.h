/* The syscall filter of the sandboxed interpreter (libseccomp), compiled from
 * the policy in seccomp/policy.def.
 *
 * The policy is an allow-list: syscalls it does not name fail with ENOSYS,
 * dangerous ones it names (namespaces, mount, ptrace, bpf, keyrings, io_uring,
 * userfaultfd, perf, modules, kexec, open_by_handle_at, ...) fail with EPERM,
 * execve/execveat and every socket family but AF_UNIX fail with EACCES, and
 * any non-native ABI (i386, x32) kills the process.
 *
 * The program is compiled once (in the helper, before any sandbox exists) and
 * loaded into each sandboxed process just before it runs untrusted code. */
#ifndef CODEJAIL_SECCOMP_H
#define CODEJAIL_SECCOMP_H

#include <linux/filter.h>

#include "error.h"

struct cj_seccomp_program {
    struct sock_filter *filter; /* malloc'd BPF instructions */
    unsigned short len;
};

int cj_seccomp_compile(struct cj_seccomp_program *prog, cj_error *err);
void cj_seccomp_program_free(struct cj_seccomp_program *prog);

/* Installs prog on the calling process; no_new_privs must already be set.
 * Allocates nothing, so it is safe between fork and the interpreter. */
int cj_seccomp_load(const struct cj_seccomp_program *prog, cj_error *err);

#endif
