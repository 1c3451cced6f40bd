/* The start-up safety check: real code through the real sandbox.
 *
 * It proves that basic execution works (x = x + 1 with x = 16 gives 17) and
 * that listing /, running a subprocess and creating an AF_INET socket are
 * all denied; where an egress probe address is configured, that the service
 * process itself cannot connect there. Each layer's state comes from the
 * engine; a required layer that is not active fails the check. Until the
 * check passes, nothing else may be executed. */
#ifndef CODEJAIL_SELFCHECK_H
#define CODEJAIL_SELFCHECK_H

#include <stdbool.h>

#include "buf.h"
#include "engine.h"
#include "envcheck.h"

#define CJ_SELFCHECK_MAX 12

struct cj_check {
    const char *name;
    bool passed;
    char detail[256];
};

struct cj_selfcheck {
    struct cj_layer_report layers;
    bool layer_ok[CJ_LAYER_COUNT];
    struct cj_check checks[CJ_SELFCHECK_MAX];
    size_t n_checks;
    bool env_checked; /* cj_selfcheck_modules ran */
    struct cj_env_report env;
    bool ok;
};

/* required: layers that must be active; CJ_ALL_LAYERS means every layer the
 * host offers. egress_probe: "host:port" or NULL. */
void cj_selfcheck_run(struct cj_engine *engine, cj_layer_set required, const char *egress_probe,
                      struct cj_selfcheck *report);

/* Adds the environment check (envcheck.h) to a report made by
 * cj_selfcheck_run: a required module that does not import fails it. */
void cj_selfcheck_modules(struct cj_engine *engine, const char *required,
                          struct cj_selfcheck *report);

int cj_selfcheck_to_json(const struct cj_selfcheck *report, struct cj_buf *out);
int cj_selfcheck_to_text(const struct cj_selfcheck *report, struct cj_buf *out);

#endif
