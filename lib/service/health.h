/* What one sandbox environment says about itself: its readiness, and the
 * safety check that decides whether anything may be executed in it
 * (environments.h puts the environments' answers together).
 *
 * The safety check (selfcheck.h) runs at start, again after every helper
 * replacement, and every interval_s seconds (sooner while it fails); its
 * latest result decides whether execution is allowed. The environment is
 * ready only while that result passes and every lane can serve; the report
 * says which lane cannot, since when and why. */
#ifndef CODEJAIL_HEALTH_H
#define CODEJAIL_HEALTH_H

#include <stdbool.h>

#include "buf.h"
#include "engine.h"
#include "error.h"
#include "selfcheck.h"

struct cj_health_config {
    const char *name;         /* the environment's, for the log */
    struct cj_engine *engine; /* NULL: it did not start, and `failed` says why */
    const struct cj_selfcheck *failed;
    cj_layer_set required;
    const char *egress_probe;
    const char *required_modules; /* see cj_selfcheck_modules */
    unsigned interval_s;          /* 0: no periodic re-run */
    /* Testing builds with layers switched off: serve although the check
     * fails, to show the deny tests failing. */
    bool serve_failed_check;
};

struct cj_health;

/* Runs the first check (when there is an engine) before it returns. */
int cj_health_start(const struct cj_health_config *config, struct cj_health **health,
                    cj_error *err);
void cj_health_stop(struct cj_health *health);

bool cj_health_execution_allowed(struct cj_health *health);
/* Whether the environment is ready, and the JSON members that say so
 * ("ok", "layers", "checks", "modules", "lanes", "pool_ready", "selfcheck"), appended
 * without braces. */
int cj_health_readiness(struct cj_health *health, struct cj_buf *members, bool *ready);
/* The latest check. */
void cj_health_report(struct cj_health *health, struct cj_selfcheck *report);
/* Supervision's metrics of n environments, each series labelled with its
 * environment's name:
 *   codejail_lane_up{environment,lane}                                 gauge
 *   codejail_helper_restarts_total{environment,lane}                   counter
 *   codejail_sandbox_start_failures_total{environment,lane,cause}      counter
 *   codejail_selfcheck_runs_total{environment}                         counter
 *   codejail_selfcheck_last_run_timestamp_seconds{environment}         gauge */
int cj_health_render_metrics(struct cj_health *const *healths, const char *const *names, size_t n,
                             struct cj_buf *out);

#endif
