/* The supervisor: one thread that watches every lane's helper through its
 * pidfd (no polling), reaps a helper that died, and starts a new one with
 * capped exponential back-off. The back-off grows while new helpers fail to
 * start or die soon after starting, and starts over once one has lived a
 * while, so a helper that dies at once cannot make it spin.
 *
 * After every replacement it calls on_restart (set with
 * cj_supervisor_on_restart), from its own thread.
 *
 * A helper dies with the thread that started it (its parent-death signal
 * is the thread's), so the helpers this thread started are shut down by it
 * too, when it is stopped: cj_supervisor_stop() shuts every lane down. */
#ifndef CODEJAIL_SUPERVISOR_H
#define CODEJAIL_SUPERVISOR_H

#include "error.h"
#include "lane.h"

#define CJ_SUPERVISOR_MAX_LANES 4

typedef void (*cj_restart_fn)(void *ctx, unsigned lane);

struct cj_supervisor;

int cj_supervisor_start(struct cj_lane *const *lanes, unsigned n_lanes,
                        struct cj_supervisor **supervisor, cj_error *err);
void cj_supervisor_on_restart(struct cj_supervisor *supervisor, cj_restart_fn fn, void *ctx);
/* Seconds since its loop last went round; it goes round at least every
 * second, so a larger figure means it is stuck. */
double cj_supervisor_heartbeat_age(struct cj_supervisor *supervisor);
void cj_supervisor_stop(struct cj_supervisor *supervisor);

#endif
