/* The daemon's configuration: one JSON file, plus environment overrides for
 * the common keys.
 *
 * Limits use the names and meanings of the codejail library's CODE_JAIL
 * setting ("limits": {"CPU": 1, "REALTIME": 3, "VMEM": 536870912, "FSIZE":
 * 1048576, "NPROC": 15}) and its named override sets ("limit_overrides":
 * {"course-v1:Org+Course+Run": {"REALTIME": 10}}), each merged over the
 * defaults, so an operator can carry an existing configuration over.
 *
 * Two profiles set the defaults: "development" (execution on, 127.0.0.1,
 * layers the host lacks are tolerated) and "production" (execution off until
 * "enabled": true, every layer the host offers is required, optional
 * "egress_probe" checked at start). A bad file stops the daemon with a
 * message naming the file, the key and the problem. */
#ifndef CODEJAIL_CONFIG_H
#define CODEJAIL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "exec_limits.h"
#include "layers.h"

enum cj_profile { CJ_PROFILE_PRODUCTION, CJ_PROFILE_DEVELOPMENT };

struct cj_limit_override {
    char *name;
    struct cj_limits limits; /* already merged over the defaults */
};

struct cj_config {
    enum cj_profile profile;
    char *listen;            /* address, default 127.0.0.1 (development) or 0.0.0.0 */
    unsigned port;           /* default 8080 */
    bool enabled;            /* CODEJAIL_ENABLED */
    cj_layer_set required;   /* CJ_ALL_LAYERS: every layer the host offers */
    char *egress_probe;      /* "host:port" or NULL */
    struct cj_limits limits; /* defaults */
    struct cj_limit_override *overrides;
    size_t n_overrides;
    unsigned max_concurrency; /* executions at once; 0 means the number of cores */
    unsigned queue_size;      /* waiting requests beyond that; then 503 */
    size_t max_body_bytes;    /* whole request body; 413 beyond */
    unsigned max_fields;      /* form fields (files are counted apart) */
    size_t max_output_bytes;  /* the globals an execution leaves behind */
    unsigned connection_timeout_s;
    unsigned pool_size;            /* pre-started sandboxes (0: none) */
    bool warm;                     /* fork sandboxes from one started interpreter */
    char *preimport;               /* modules imported once in warm mode, comma-separated */
    char *required_modules;        /* must import in the sandbox, comma-separated ("": none) */
    char *env_dir;                 /* NULL: build default */
    uint32_t uid_base;             /* 0: engine default */
    uint64_t tmp_size;             /* 0: engine default */
    bool log_code;                 /* debug: log code and globals (never in production) */
    unsigned selfcheck_interval_s; /* safety check re-run period (0: only at start and
                                      after a helper was replaced) */
    unsigned helper_timeout_s;     /* a helper slower than this to answer is replaced */
    /* Landlock below this ABI is reported failed (0: any ABI will do). */
    unsigned landlock_min_abi;
};

/* Defaults for the profile, then the file (NULL: none), then the
 * environment (CODEJAIL_LISTEN, CODEJAIL_PORT or PORT, CODEJAIL_PROFILE,
 * CODEJAIL_ENABLED). */
int cj_config_load(struct cj_config *config, enum cj_profile profile, const char *path,
                   cj_error *err);
void cj_config_free(struct cj_config *config);

/* The limits for a limit_overrides_context (NULL or unknown: the defaults). */
const struct cj_limits *cj_config_limits_for(const struct cj_config *config, const char *context);

#endif
