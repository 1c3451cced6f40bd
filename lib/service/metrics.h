/* The daemon's metrics, served by GET /metrics in Prometheus' text
 * exposition format (version 0.0.4).
 *
 *   codejail_requests_total{outcome}            counter, every request by outcome
 *   codejail_code_exec_duration_seconds         histogram, code-exec requests end to end
 *   codejail_executions_in_flight               gauge
 *   codejail_queue_depth                        gauge, admitted requests waiting for a slot
 *   codejail_execution_slots, codejail_queue_capacity   gauges, the configured bounds
 *   codejail_sandbox_setup_seconds              histogram, spawn until every layer was up
 * and per sandbox environment (cj_metrics_render_environments), each series
 * labelled environment="name":
 *   codejail_pool_ready                         gauge, pre-started sandboxes waiting
 *   codejail_selfcheck_ok                       gauge, 1 when the latest check passed
 *   codejail_selfcheck_check_passed{check}      gauge per check
 *   codejail_module_importable{module,required} gauge per module of the environment check
 *   codejail_layer_state{layer,state}           gauge, 1 for the state each layer is in
 *   codejail_layer_ok{layer}                    gauge, 1 when the layer satisfies the config
 *
 * All functions are thread-safe. */
#ifndef CODEJAIL_METRICS_H
#define CODEJAIL_METRICS_H

#include <stdbool.h>

#include "buf.h"
#include "error.h"
#include "selfcheck.h"

#define CJ_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct cj_metrics;

int cj_metrics_new(struct cj_metrics **metrics, cj_error *err);
void cj_metrics_free(struct cj_metrics *metrics);

/* One finished request; code-exec requests also feed the latency histogram.
 * Outcomes are a small fixed vocabulary of the daemon's own. */
void cj_metrics_request(struct cj_metrics *metrics, const char *outcome, bool code_exec,
                        double seconds);
void cj_metrics_sandbox_setup(struct cj_metrics *metrics, double seconds);
void cj_metrics_load(struct cj_metrics *metrics, unsigned in_flight, unsigned queued);
void cj_metrics_capacity(struct cj_metrics *metrics, unsigned slots, unsigned queue_capacity);

int cj_metrics_render(struct cj_metrics *metrics, struct cj_buf *out);

struct cj_metrics_environment {
    const char *name;
    const struct cj_selfcheck *selfcheck;
    unsigned pool_ready;
};

int cj_metrics_render_environments(const struct cj_metrics_environment *environments, size_t n,
                                   struct cj_buf *out);

#endif
