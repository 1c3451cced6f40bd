/* A lane: one sandbox helper (codejail-sandbox) and what is known of its
 * health.
 *
 * Every exchange with the helper has a deadline: a helper that does not
 * answer in time (stopped, deadlocked) is killed, so that it is replaced
 * rather than waited for. The lane is "up" while its helper runs and fewer
 * than CJ_LANE_FAILURES_DOWN sandbox starts in a row have failed; otherwise
 * it says since when and why not. cj_lane_reap() and cj_lane_restart() are
 * the supervisor's (supervisor.h); everything else is thread-safe. */
#ifndef CODEJAIL_LANE_H
#define CODEJAIL_LANE_H

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"
#include "pool.h"
#include "protocol.h"

/* Sandbox starts failing in a row that make a lane unable to serve. */
#define CJ_LANE_FAILURES_DOWN 3

/* Why a sandbox could not be started, or a helper was replaced. */
enum cj_fault {
    CJ_FAULT_HELPER_EXITED, /* the helper died (killed, crashed) */
    CJ_FAULT_HELPER_HUNG,   /* it missed an exchange's deadline and was killed */
    CJ_FAULT_HELPER_START,  /* a new helper did not start */
    CJ_FAULT_SPAWN,         /* the helper could not make a sandbox */
    CJ_FAULT_SETUP,         /* a sandbox died or failed before it was ready */
    CJ_FAULT_COUNT,
};

const char *cj_fault_name(enum cj_fault fault);

struct cj_lane_status {
    bool up;
    double since;  /* wall-clock seconds: when it last went up or down */
    char why[256]; /* while down: the cause; while up: the last fault, if any */
    unsigned long restarts;
    unsigned long failures[CJ_FAULT_COUNT];
};

/* Where a lane's log lines go (NULL: nowhere). */
typedef void (*cj_lane_log_fn)(void *ctx, const char *level, const char *event,
                               const char *message);

struct cj_lane_config {
    const char *name; /* "plain", "preimport" */
    const char *helper_path;
    const struct cj_helper_config *helper;
    unsigned exchange_timeout_ms; /* a sandbox request's answer */
    unsigned start_timeout_ms;    /* the helper's hello (it may import modules first) */
    cj_lane_log_fn log;
    void *log_ctx;
};

struct cj_lane;

/* Starts the helper; fails when it does not come up. */
int cj_lane_start(const struct cj_lane_config *config, struct cj_lane **lane, cj_error *err);
/* Closes the helper's socket (it kills its sandboxes and exits) and reaps
 * it; then the lane has no helper. */
void cj_lane_shut_down(struct cj_lane *lane);
/* Shuts the lane down and frees it. */
void cj_lane_stop(struct cj_lane *lane);

const char *cj_lane_name(const struct cj_lane *lane);
void cj_lane_hello(struct cj_lane *lane, struct cj_helper_hello *hello);
void cj_lane_status(struct cj_lane *lane, struct cj_lane_status *status);

/* Has the helper make a sandbox: the five descriptors, not yet READY. */
int cj_lane_spawn(struct cj_lane *lane, struct cj_ready_sandbox *s, cj_error *err);
/* A sandbox start that failed after the helper's answer, or succeeded.
 * generation is the sandbox's: a failure of one made by a helper that has
 * since been replaced is counted, but says nothing of the new one. */
void cj_lane_note(struct cj_lane *lane, unsigned long generation, enum cj_fault fault,
                  const char *why);
void cj_lane_note_ready(struct cj_lane *lane);
/* Waits (bounded) until the lane's helper runs; false if it did not. */
bool cj_lane_wait_running(struct cj_lane *lane, unsigned timeout_ms);

/* For the supervisor: a pidfd of the helper that is readable once it has
 * exited (-1 while there is none), ... */
int cj_lane_pidfd(struct cj_lane *lane);
/* ... reaping it and marking the lane down, ... */
void cj_lane_reap(struct cj_lane *lane);
/* ... and starting a new one. */
int cj_lane_restart(struct cj_lane *lane, cj_error *err);

#endif
