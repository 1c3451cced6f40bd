/* Sandbox environments side by side: each a read-only Python root of its
 * own (its own packages, one day its own interpreter) with its own helpers,
 * pools and safety check, chosen per request by the course the LMS names
 * in limit_overrides_context (see config.h for "environments" and
 * "context_environments").
 *
 * The set is replaced whole by cj_environments_reload(): environments whose
 * settings did not change carry over with their warm helpers; new and
 * changed ones are started and checked first, and a reload whose new
 * environments do not pass their check changes nothing. A request holds
 * the environment it was given until it is answered; an environment that a
 * reload dropped stops once the last request holding it is done (a thread
 * of the set's own stops it, never the HTTP thread).
 *
 * Every environment gets CJ_ENGINE_UIDS outer ids of its own (from the
 * configuration's uid_base), so sandboxes of different environments, and of
 * an environment and its replacement while the old one drains, never share
 * an id. All functions are thread-safe except start, reload and stop,
 * which belong to one thread (the daemon's main thread). */
#ifndef CODEJAIL_ENVIRONMENTS_H
#define CODEJAIL_ENVIRONMENTS_H

#include <stdbool.h>

#include "buf.h"
#include "config.h"
#include "engine.h"
#include "error.h"

/* What every environment's engine and check share: the daemon's settings
 * at start (a reload applies "environments" and "context_environments"
 * only; the other keys need a restart). */
struct cj_environments_options {
    const struct cj_config *config;
    cj_layer_set disabled;   /* testing builds only */
    bool serve_failed_check; /* testing builds with layers switched off */
    cj_lane_log_fn log;      /* supervision's log lines */
    void *log_ctx;
};

struct cj_environment;
struct cj_environments;

/* How an environment's engine runs, from the daemon's settings and the
 * environment's; `block` chooses its outer ids (block 0: those of uid_base,
 * as before there were several). For the daemon and `codejail check`. */
void cj_environment_engine_config(const struct cj_config *config,
                                  const struct cj_environment_config *environment, unsigned block,
                                  struct cj_engine_config *engine);

/* Starts every environment of the configuration. One that cannot start or
 * whose check fails is kept, refusing its requests, and health says why;
 * only a failure of the set itself (memory, threads) is an error. */
int cj_environments_start(const struct cj_environments_options *options,
                          struct cj_environments **environments, cj_error *err);
/* Replaces the set with the environments and routes of `config` (loaded,
 * malloc'ed), which it takes. Fails, changing nothing and taking nothing,
 * when a new or changed environment does not start or does not pass its
 * safety check. */
int cj_environments_reload(struct cj_environments *environments, struct cj_config *config,
                           cj_error *err);
/* A reload that did not get as far as cj_environments_reload (the file did
 * not load): health and metrics count it. */
void cj_environments_refused(struct cj_environments *environments, const char *why);
/* Stops every environment; no request may hold one any more. */
void cj_environments_stop(struct cj_environments *environments);

/* The environment for a limit_overrides_context (NULL: "default"), held
 * until cj_environment_release(). */
struct cj_environment *cj_environments_acquire(struct cj_environments *environments,
                                               const char *context);
void cj_environment_release(struct cj_environment *environment);

const char *cj_environment_name(const struct cj_environment *environment);
/* Whether its safety check passes, so that code may run in it. */
bool cj_environment_allowed(struct cj_environment *environment);
/* Whether any environment may run code. */
bool cj_environments_any_allowed(struct cj_environments *environments);
/* The contract of cj_engine_execute(). */
int cj_environment_execute(struct cj_environment *environment,
                           const struct cj_exec_request *request, struct cj_exec_result *result,
                           cj_error *err);

/* Readiness: 200 while the default environment passes its check and every
 * lane of it can serve. Another environment that cannot serve refuses only
 * its own courses and is named in "unavailable_environments" (and
 * codejail_environment_ready) rather than taking every course out of
 * service. The body is the default environment's report at the top level
 * (as before there were several), "environments" with each environment's,
 * and "reload" with the latest reload's outcome. */
int cj_environments_readiness(struct cj_environments *environments, struct cj_buf *body,
                              bool *ready);
/* Liveness: 200 while every environment's supervisor goes round. */
int cj_environments_liveness(struct cj_environments *environments, struct cj_buf *body,
                             bool *alive);
/* The per-environment families of /metrics (metrics.h, health.h), each
 * series labelled environment="name", and:
 *   codejail_environment_ready{environment}            gauge
 *   codejail_config_reloads_total{result}              counter */
int cj_environments_render_metrics(struct cj_environments *environments, struct cj_buf *out);

#endif
