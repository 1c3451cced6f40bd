/* Resource limits with the names and meanings of the codejail library's
 * CODE_JAIL["limits"]: CPU and REALTIME in seconds, VMEM and FSIZE in bytes,
 * NPROC a count. 0 means "no limit", except FSIZE where 0 means nothing can
 * be written. */
#ifndef CODEJAIL_EXEC_LIMITS_H
#define CODEJAIL_EXEC_LIMITS_H

#include <stdint.h>
#include <sys/types.h>

#include "error.h"

struct cj_limits {
    uint64_t cpu;      /* seconds of CPU; SIGXCPU at the soft limit, hard = soft + 1 */
    uint64_t realtime; /* seconds of wall clock; then SIGKILL for the whole sandbox */
    uint64_t vmem;     /* bytes of address space (RLIMIT_AS) */
    uint64_t fsize;    /* largest file in bytes (RLIMIT_FSIZE) */
    uint64_t nproc;    /* processes and threads (RLIMIT_NPROC) */
};

/* The codejail library's defaults, with a memory cap so that a 1 GiB
 * allocation fails out of the box. */
extern const struct cj_limits cj_limits_default;

/* Sets one limit from "NAME=VALUE" (NAME one of CPU, REALTIME, VMEM, FSIZE,
 * NPROC; VALUE a non-negative decimal integer). */
int cj_limits_set(struct cj_limits *limits, const char *assignment, cj_error *err);

/* Sets one limit by name; value must fit the limit's range. */
int cj_limits_set_named(struct cj_limits *limits, const char *name, uint64_t value, cj_error *err);

/* Applies the rlimits to process pid (prlimit). cpu_used_ns is the CPU time
 * the process has already spent, which does not count against the request. */
int cj_limits_apply(const struct cj_limits *limits, pid_t pid, uint64_t cpu_used_ns,
                    uint64_t extra_nproc, cj_error *err);

#endif
