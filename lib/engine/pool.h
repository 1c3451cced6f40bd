/* A warm pool of pre-started, single-use sandboxes.
 *
 * A background thread keeps up to `size` sandboxes that have reported READY:
 * namespaces made, root in place, every layer applied and the interpreter
 * waiting on stdin. cj_pool_take() hands one out, never twice; the thread
 * then makes a replacement. Limits and files are not part of a pooled
 * sandbox: they arrive with the request (DISPATCH), so one pool serves every
 * limit set. cj_pool_stop() closes what is left, which makes each waiting
 * sandbox exit. */
#ifndef CODEJAIL_POOL_H
#define CODEJAIL_POOL_H

#include <stdbool.h>

#include "error.h"

struct cj_ready_sandbox {
    int ctl, in, out, err, pidfd;
    double setup_ms;          /* spawn until READY */
    unsigned long generation; /* of the helper that made it (lane.h) */
};

#define CJ_READY_SANDBOX_NONE                                                                      \
    {                                                                                              \
        -1, -1, -1, -1, -1, 0, 0                                                                   \
    }

void cj_ready_sandbox_close(struct cj_ready_sandbox *s);

/* Makes one sandbox and waits until it is READY. */
typedef int (*cj_pool_fill_fn)(void *ctx, struct cj_ready_sandbox *out, cj_error *err);

struct cj_pool;

int cj_pool_start(unsigned size, cj_pool_fill_fn fill, void *ctx, struct cj_pool **pool,
                  cj_error *err);
/* Takes a ready sandbox if there is one (does not wait). */
bool cj_pool_take(struct cj_pool *pool, struct cj_ready_sandbox *out);
/* Retries a failed fill now rather than after its back-off (a new helper). */
void cj_pool_wake(struct cj_pool *pool);
/* Number of sandboxes ready right now. */
unsigned cj_pool_ready(struct cj_pool *pool);
void cj_pool_stop(struct cj_pool *pool);

#endif
