#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* After a failed fill (a broken helper, a host out of resources), wait
 * before trying again rather than spin: twice as long after each failure in
 * a row, up to the cap. (Why it failed is logged and counted by the fill.) */
#define REFILL_BACKOFF_MIN_MS 100
#define REFILL_BACKOFF_MAX_MS 5000

struct cj_pool {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    cj_pool_fill_fn fill;
    void *ctx;
    unsigned size;
    unsigned count;
    unsigned backoff_ms;
    bool stopping;
    struct cj_ready_sandbox slots[];
};

void cj_ready_sandbox_close(struct cj_ready_sandbox *s)
{
    int *fds[] = {&s->ctl, &s->in, &s->out, &s->err, &s->pidfd};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
        if (*fds[i] >= 0)
            close(*fds[i]);
        *fds[i] = -1;
    }
}

/* Under p->lock; cj_pool_wake() cuts it short. */
static void backoff(struct cj_pool *p)
{
    unsigned ms = p->backoff_ms;
    p->backoff_ms = ms >= REFILL_BACKOFF_MAX_MS / 2 ? REFILL_BACKOFF_MAX_MS : ms * 2;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += (long)ms * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    while (!p->stopping && p->backoff_ms &&
           pthread_cond_timedwait(&p->wake, &p->lock, &until) != ETIMEDOUT)
        ;
    if (!p->backoff_ms)
        p->backoff_ms = REFILL_BACKOFF_MIN_MS;
}

static void *refill(void *arg)
{
    struct cj_pool *p = arg;
    pthread_mutex_lock(&p->lock);
    while (!p->stopping) {
        if (p->count == p->size) {
            pthread_cond_wait(&p->wake, &p->lock);
            continue;
        }
        pthread_mutex_unlock(&p->lock);
        struct cj_ready_sandbox s = CJ_READY_SANDBOX_NONE;
        cj_error err = {0};
        int rc = p->fill(p->ctx, &s, &err);
        pthread_mutex_lock(&p->lock);
        if (rc < 0) {
            backoff(p);
            continue;
        }
        if (p->stopping) {
            cj_ready_sandbox_close(&s);
            break;
        }
        p->backoff_ms = REFILL_BACKOFF_MIN_MS;
        p->slots[p->count++] = s;
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int cj_pool_start(unsigned size, cj_pool_fill_fn fill, void *ctx, struct cj_pool **pool,
                  cj_error *err)
{
    struct cj_pool *p = calloc(1, sizeof *p + size * sizeof p->slots[0]);
    if (!p)
        return cj_fail_errno(err, "allocate pool");
    p->fill = fill;
    p->ctx = ctx;
    p->size = size;
    p->backoff_ms = REFILL_BACKOFF_MIN_MS;
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc == 0) {
        rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        rc = rc ? rc : pthread_cond_init(&p->wake, &attr);
        pthread_condattr_destroy(&attr);
    }
    if (rc != 0) {
        free(p);
        errno = rc;
        return cj_fail_errno(err, "pool condition variable");
    }
    rc = pthread_mutex_init(&p->lock, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&p->wake);
        free(p);
        errno = rc;
        return cj_fail_errno(err, "pool lock");
    }
    rc = pthread_create(&p->thread, NULL, refill, p);
    if (rc != 0) {
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->lock);
        free(p);
        errno = rc;
        return cj_fail_errno(err, "start pool thread");
    }
    *pool = p;
    return 0;
}

bool cj_pool_take(struct cj_pool *p, struct cj_ready_sandbox *out)
{
    pthread_mutex_lock(&p->lock);
    bool taken = p->count > 0;
    if (taken) {
        /* Oldest first: the newest may still be settling. */
        *out = p->slots[0];
        memmove(&p->slots[0], &p->slots[1], --p->count * sizeof p->slots[0]);
        pthread_cond_signal(&p->wake);
    }
    pthread_mutex_unlock(&p->lock);
    return taken;
}

void cj_pool_wake(struct cj_pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->backoff_ms = 0;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
}

unsigned cj_pool_ready(struct cj_pool *p)
{
    pthread_mutex_lock(&p->lock);
    unsigned n = p->count;
    pthread_mutex_unlock(&p->lock);
    return n;
}

void cj_pool_stop(struct cj_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);
    for (unsigned i = 0; i < p->count; i++)
        cj_ready_sandbox_close(&p->slots[i]);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
