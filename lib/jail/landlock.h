/* Landlock: a path-based disk (and, from ABI 4, TCP) rule set that needs no
 * host configuration.
 *
 * Reads and directory listing are allowed beneath `read_paths` (the sandbox
 * environment and the run directory); everything but execute beneath
 * `write_paths` (the run directory's tmp/); read and write of the files in
 * `device_paths` (/dev/null and friends). Execute is granted nowhere. TCP bind
 * and connect are denied (ABI >= 4), and abstract Unix sockets and signals
 * that would leave the sandbox are scoped (ABI >= 6). The Debian 12 headers
 * stop at ABI 2; newer constants are defined here. */
#ifndef CODEJAIL_LANDLOCK_H
#define CODEJAIL_LANDLOCK_H

#include <stddef.h>

#include "error.h"

struct cj_landlock_paths {
    const char *const *read_paths;   /* NULL-terminated */
    const char *const *write_paths;  /* NULL-terminated */
    const char *const *device_paths; /* NULL-terminated */
};

/* The ABI version the running kernel offers, or 0 when it has no Landlock. */
int cj_landlock_abi(void);

/* Names the rule sets `abi` puts in force, for the layer's detail. */
void cj_landlock_describe(int abi, char *out, size_t size);

/* Restricts the calling process; no_new_privs must already be set. Fails if
 * the kernel has no Landlock or any rule cannot be added. */
int cj_landlock_apply(const struct cj_landlock_paths *paths, cj_error *err);

#endif
