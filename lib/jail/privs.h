/* Dropping every privilege before untrusted code runs, and checking that it
 * is gone.
 *
 * After cj_privs_drop() the calling process has the given ids, no
 * capabilities in any set (bounding and ambient included), securebits that
 * stop root from regaining any, no_new_privs, and is not dumpable (so a
 * process with the same uid cannot ptrace it). Nothing here allocates. */
#ifndef CODEJAIL_PRIVS_H
#define CODEJAIL_PRIVS_H

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"

/* set_groups: also clear the supplementary groups (impossible, and not
 * needed, inside a user namespace whose setgroups is "deny"). */
int cj_privs_drop(uid_t uid, gid_t gid, bool set_groups, cj_error *err);

/* Closes every descriptor but those in keep[0..n). */
int cj_close_fds_except(const int *keep, size_t n, cj_error *err);

/* Moves descriptor `from` to number `to` (dup3 with close-on-exec off, then
 * closes `from`), or just clears close-on-exec when they are equal. */
int cj_move_fd(int from, int to, cj_error *err);

#endif
