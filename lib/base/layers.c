#include "layers.h"

#include <string.h>

static const char *const layer_names[CJ_LAYER_COUNT] = {
    [CJ_LAYER_USERNS] = "userns",     [CJ_LAYER_MOUNTNS] = "mountns",
    [CJ_LAYER_PIDNS] = "pidns",       [CJ_LAYER_NETNS] = "netns",
    [CJ_LAYER_SECCOMP] = "seccomp",   [CJ_LAYER_LANDLOCK] = "landlock",
    [CJ_LAYER_APPARMOR] = "apparmor", [CJ_LAYER_RLIMITS] = "rlimits",
    [CJ_LAYER_CGROUPS] = "cgroups",
};

const char *cj_layer_name(enum cj_layer layer)
{
    return layer < CJ_LAYER_COUNT ? layer_names[layer] : "?";
}

const char *cj_layer_state_name(enum cj_layer_state state)
{
    switch (state) {
    case CJ_LAYER_ACTIVE:
        return "active";
    case CJ_LAYER_UNAVAILABLE:
        return "unavailable";
    case CJ_LAYER_FAILED:
        return "failed";
    case CJ_LAYER_DISABLED:
        return "disabled";
    }
    return "?";
}

int cj_layer_parse(const char *name, enum cj_layer *layer, cj_error *err)
{
    for (int i = 0; i < CJ_LAYER_COUNT; i++) {
        if (strcmp(name, layer_names[i]) == 0) {
            *layer = (enum cj_layer)i;
            return 0;
        }
    }
    return cj_fail(err, 0,
                   "unknown layer '%s' (one of userns, mountns, pidns, netns, seccomp, landlock, "
                   "apparmor, rlimits, cgroups)",
                   name);
}
