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
 * message naming the file, the key and the problem.
 *
 * Sandbox environments: the top-level keys env_dir, warm, pool_size,
 * preimport and required_modules describe the "default" environment;
 * "environments" names more ({"next": {"env_dir": "/opt/codejail/envs/next"}}),
 * each inheriting the top-level values of the keys it does not set, and
 * "context_environments" sends contexts to them by exact name or by a
 * prefix ending in '*' ({"course-v1:MITx+*": "next"}). Everything else is
 * served by "default". */
#ifndef CODEJAIL_CONFIG_H
#define CODEJAIL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "error.h"
#include "exec_limits.h"
#include "layers.h"

enum cj_profile { CJ_PROFILE_PRODUCTION, CJ_PROFILE_DEVELOPMENT };

struct cj_limit_override {
    char *name;
    struct cj_limits limits; /* already merged over the defaults */
};

/* A sandbox environment: a read-only Python root and how it is served. */
struct cj_environment_config {
    char *name;             /* "default", or a key of "environments" */
    char *env_dir;          /* NULL: the build's (default only) */
    bool warm;              /* fork sandboxes from one started interpreter */
    unsigned pool_size;     /* pre-started sandboxes per lane (0: none) */
    char *preimport;        /* modules imported once in warm mode, comma-separated */
    char *required_modules; /* must import in the sandbox, comma-separated ("": none) */
};

/* "context_environments": a context, or a prefix of contexts, and where it goes. */
struct cj_context_route {
    char *pattern; /* without the '*' of a prefix */
    bool prefix;
    size_t environment; /* index in cj_config.environments */
};

#define CJ_ENVIRONMENT_NAME_MAX 32
#define CJ_ENVIRONMENTS_MAX     16
/* Blocks of CJ_ENGINE_UIDS outer ids from uid_base: the daemon's (twice its
 * environments: while a reload's new ones start, the old ones drain), then
 * one for `codejail check`. */
#define CJ_DAEMON_UID_BLOCKS (2 * CJ_ENVIRONMENTS_MAX)
#define CJ_CHECK_UID_BLOCK   CJ_DAEMON_UID_BLOCKS
#define CJ_UID_BLOCKS        (CJ_DAEMON_UID_BLOCKS + 1)

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
    /* [0] is "default"; routes: exact ones first, then prefixes, longest
     * first. */
    struct cj_environment_config *environments;
    size_t n_environments;
    struct cj_context_route *routes;
    size_t n_routes;
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

/* The environment for a limit_overrides_context: an exact route, else the
 * longest prefix that matches, else "default" (index 0). */
size_t cj_config_environment_for(const struct cj_config *config, const char *context);

/* Whether two environments would be served alike (same name and settings). */
bool cj_environment_config_equal(const struct cj_environment_config *a,
                                 const struct cj_environment_config *b);

#endif
