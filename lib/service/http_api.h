/* The HTTP front end: the code-exec API of API.md on libmicrohttpd.
 *
 *   POST /api/v0/code-exec     form → payload → limits → execution → result
 *   GET  /health, /health/     readiness: each environment's safety check and lanes (200 or 503)
 *   GET  /health/live          liveness: the daemon's loops go round (200 or 503)
 *   GET  /metrics              Prometheus text (see metrics.h)
 *
 * Executions block for up to their wall-clock limit, so they never run on
 * the thread that serves HTTP: see the comment at cj_http_start() in
 * http_api.c for the threading model, the bounded queue and the time-outs. */
#ifndef CODEJAIL_HTTP_API_H
#define CODEJAIL_HTTP_API_H

#include <stdbool.h>

#include <microhttpd.h>

#include "config.h"
#include "engine.h"
#include "environments.h"
#include "error.h"
#include "metrics.h"
#include "selfcheck.h"

/* Runs one execution; the contract of cj_engine_execute(). */
typedef int (*cj_http_execute_fn)(void *ctx, const struct cj_exec_request *request,
                                  struct cj_exec_result *result, cj_error *err);

struct cj_http_options {
    const struct cj_config *config; /* listen, port, limits, concurrency, caps, log_code */
    /* The daemon's sandbox environments: each request runs in the one its
     * context maps to, and they answer readiness, liveness and the
     * environments' metrics. */
    struct cj_environments *environments;
    /* Without environments: a fixed check's verdict, and what runs the code.
     * The fuzzer plugs a fake in here so that no code really runs. */
    const struct cj_selfcheck *selfcheck;
    cj_http_execute_fn execute;
    void *execute_ctx;
    /* No listening socket and no internal thread: the caller hands over
     * connections (MHD_add_connection) and drives MHD_run() itself. */
    bool external_loop;
};

struct cj_http;

int cj_http_start(const struct cj_http_options *options, struct cj_http **http, cj_error *err);

/* The port actually bound (useful with port 0). */
unsigned cj_http_port(const struct cj_http *http);

/* The MHD daemon, for an external loop. */
struct MHD_Daemon *cj_http_daemon(struct cj_http *http);

/* Requests admitted for execution and not yet answered (queued or running). */
unsigned cj_http_busy(struct cj_http *http);

/* Graceful stop: no new connections, requests that arrive on open ones are
 * refused, admitted executions finish and are answered; then everything is
 * released. Waits at most grace_s for clients still sending or reading. */
void cj_http_stop(struct cj_http *http, unsigned grace_s);

#endif
