/* What the daemon says about itself: readiness, liveness, and the safety
 * check that decides whether anything may be executed.
 *
 * The safety check (selfcheck.h) runs at start, again after every helper
 * replacement, and every interval_s seconds (sooner while it fails); its
 * latest result decides whether execution is allowed. Readiness (GET
 * /health/) is 200 only while that result passes and every lane can serve;
 * its body says which lane cannot, since when and why. Liveness (GET
 * /health/live) is 200 while the daemon's own loops go round, so that an
 * orchestrator restarts a wedged daemon but not one that is healing. */
#ifndef CODEJAIL_HEALTH_H
#define CODEJAIL_HEALTH_H

#include <stdbool.h>

#include "buf.h"
#include "engine.h"
#include "error.h"
#include "metrics.h"
#include "selfcheck.h"

struct cj_health_config {
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
/* The JSON bodies of the two answers and whether each is a 200. */
int cj_health_readiness(struct cj_health *health, struct cj_buf *body, bool *ready);
int cj_health_liveness(struct cj_health *health, struct cj_buf *body, bool *alive);
/* Hands the latest check to metrics, and renders the supervision's own:
 *   codejail_lane_up{lane}                                 gauge
 *   codejail_helper_restarts_total{lane}                   counter
 *   codejail_sandbox_start_failures_total{lane,cause}      counter
 *   codejail_selfcheck_runs_total                          counter
 *   codejail_selfcheck_last_run_timestamp_seconds          gauge */
void cj_health_publish(struct cj_health *health, struct cj_metrics *metrics);
int cj_health_render_metrics(struct cj_health *health, struct cj_buf *out);

#endif
