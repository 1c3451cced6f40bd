/* AppArmor confinement where the host has it enabled (libapparmor).
 *
 * The sandboxed process changes to the profile in apparmor/codejail-sandbox
 * (which an operator loads on the host). The sandbox has no /proc of its own,
 * so the change is written through a descriptor of the host's /proc that the
 * caller opened before the root was pivoted; the caller closes it afterwards. */
#ifndef CODEJAIL_APPARMOR_H
#define CODEJAIL_APPARMOR_H

#include <stdbool.h>

#include "error.h"

#define CJ_APPARMOR_PROFILE "codejail-sandbox"

/* Whether the kernel has AppArmor enabled (aa_is_enabled). */
bool cj_apparmor_enabled(void);

/* Moves the calling thread into `profile` for good (change_profile), through
 * proc_fd (an O_PATH or directory fd of a procfs that shows this thread), and
 * reads the label back to confirm it. */
int cj_apparmor_enter(int proc_fd, const char *profile, cj_error *err);

/* Whether this process may enter `profile`: a child tries it for real.
 * Fails with errnum ENOENT when the profile is not loaded. */
int cj_apparmor_probe(int proc_fd, const char *profile, cj_error *err);

#endif
