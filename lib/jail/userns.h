/* User namespace id maps.
 *
 * Run as root, each sandbox gets a namespace where uid/gid 0 (its init,
 * which owns the sandbox's files) and 1000 (the code) map to two outer ids
 * that own nothing on the host, the second one different for every
 * concurrent sandbox. Run as an unprivileged user with no helper, only the
 * user's own id can be mapped; it becomes 0 inside and the code runs as that
 * id with every capability dropped. */
#ifndef CODEJAIL_USERNS_H
#define CODEJAIL_USERNS_H

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"

/* Writes "deny" to setgroups, then gid_map and uid_map of process pid, through
 * proc_fd (a directory fd of a procfs that shows pid). Each map is one or
 * more "inside outside count" lines. */
int cj_userns_write_maps(int proc_fd, pid_t pid, const char *uid_map, const char *gid_map,
                         cj_error *err);

/* Moves the caller into a new user and mount namespace where its own uid and
 * gid are 0 (the unprivileged case, before building the sandbox root). */
int cj_userns_enter_own(int proc_fd, cj_error *err);

#endif
