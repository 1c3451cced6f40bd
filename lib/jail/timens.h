/* The sandbox's own clocks.
 *
 * CLOCK_BOOTTIME and CLOCK_MONOTONIC count the host's uptime, and the vDSO
 * answers them without a syscall, out of seccomp's reach. A time namespace
 * whose offsets take the current values away makes both count from the
 * sandbox's birth instead. */
#ifndef CODEJAIL_TIMENS_H
#define CODEJAIL_TIMENS_H

#include "error.h"

/* Makes a time namespace for the caller's children to come, its boot and
 * monotonic clocks starting near zero. Needs CAP_SYS_ADMIN and CAP_SYS_TIME
 * in the caller's user namespace, and must come before the caller changes
 * ids: /proc/self/timens_offsets (through proc_fd, a procfs that shows the
 * caller) belongs to root once the process is no longer dumpable. */
int cj_timens_enter_fresh(int proc_fd, cj_error *err);

#endif
