/* The sandbox's protection layers, by name, and the state each is in.
 *
 * Every layer can be required or optional (configuration); a required layer
 * that cannot be set up stops the execution (fail closed). In builds made with
 * CODEJAIL_TESTING, a set of layers can be switched off to show that each deny
 * rule still holds without any single one of them. */
#ifndef CODEJAIL_LAYERS_H
#define CODEJAIL_LAYERS_H

#include <stdbool.h>

#include "error.h"

enum cj_layer {
    CJ_LAYER_USERNS,
    CJ_LAYER_MOUNTNS,
    CJ_LAYER_PIDNS,
    CJ_LAYER_NETNS,
    CJ_LAYER_SECCOMP,
    CJ_LAYER_LANDLOCK,
    CJ_LAYER_APPARMOR,
    CJ_LAYER_RLIMITS,
    CJ_LAYER_CGROUPS,
    CJ_LAYER_COUNT
};

enum cj_layer_state {
    CJ_LAYER_ACTIVE,      /* set up and enforced */
    CJ_LAYER_UNAVAILABLE, /* this host does not offer it (no AppArmor, no cgroup access) */
    CJ_LAYER_FAILED,      /* the host offers it but setting it up failed */
    CJ_LAYER_DISABLED,    /* switched off on purpose (testing builds only) */
};

typedef unsigned cj_layer_set; /* bit (1u << enum cj_layer) per layer */

#define CJ_LAYER_BIT(l) (1u << (l))
#define CJ_ALL_LAYERS   ((1u << CJ_LAYER_COUNT) - 1)

const char *cj_layer_name(enum cj_layer layer);
const char *cj_layer_state_name(enum cj_layer_state state);

/* Parses one layer name ("seccomp"); returns -1 with a message for unknown names. */
int cj_layer_parse(const char *name, enum cj_layer *layer, cj_error *err);

#endif
