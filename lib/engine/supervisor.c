#include "supervisor.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 30000
/* A helper that lived this long was not dying at once: the back-off starts
 * over. (At a minute, a soak that killed a helper every minute or so kept
 * its lane down for up to 26 s: each kill doubled the back-off.) */
#define STABLE_MS 10000
/* The loop goes round at least this often, for the liveness answer. */
#define HEARTBEAT_MS 1000

struct watched {
    struct cj_lane *lane;
    double started_ms; /* when its helper came up */
    double retry_ms;   /* without a helper: when to start one */
    unsigned backoff_ms;
};

struct cj_supervisor {
    pthread_t thread;
    int stop_fd;
    struct watched lanes[CJ_SUPERVISOR_MAX_LANES];
    unsigned n_lanes;

    pthread_mutex_t lock; /* below */
    cj_restart_fn on_restart;
    void *on_restart_ctx;
    double heartbeat_ms;
    bool stopping;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static unsigned grow(unsigned backoff_ms)
{
    return backoff_ms >= BACKOFF_MAX_MS / 2 ? BACKOFF_MAX_MS : backoff_ms * 2;
}

static void helper_died(struct watched *w, double now)
{
    cj_lane_reap(w->lane);
    w->backoff_ms = now - w->started_ms >= STABLE_MS ? BACKOFF_MIN_MS : grow(w->backoff_ms);
    w->retry_ms = now + w->backoff_ms;
}

static void try_restart(struct cj_supervisor *s, unsigned i)
{
    struct watched *w = &s->lanes[i];
    cj_error err = {0};
    if (cj_lane_restart(w->lane, &err) < 0) {
        w->backoff_ms = grow(w->backoff_ms);
        w->retry_ms = now_ms() + w->backoff_ms;
        return;
    }
    w->started_ms = now_ms();
    pthread_mutex_lock(&s->lock);
    cj_restart_fn fn = s->on_restart;
    void *ctx = s->on_restart_ctx;
    pthread_mutex_unlock(&s->lock);
    if (fn)
        fn(ctx, i);
}

static void *supervise(void *arg)
{
    struct cj_supervisor *s = arg;
    for (;;) {
        struct pollfd pfd[CJ_SUPERVISOR_MAX_LANES + 1] = {{s->stop_fd, POLLIN, 0}};
        unsigned lane_of[CJ_SUPERVISOR_MAX_LANES + 1];
        nfds_t n = 1;
        double now = now_ms();
        double wake = now + HEARTBEAT_MS;
        for (unsigned i = 0; i < s->n_lanes; i++) {
            int fd = cj_lane_pidfd(s->lanes[i].lane);
            if (fd >= 0) {
                lane_of[n] = i;
                pfd[n++] = (struct pollfd){fd, POLLIN, 0};
            } else if (s->lanes[i].retry_ms < wake)
                wake = s->lanes[i].retry_ms;
        }
        int timeout = wake > now ? (int)(wake - now) + 1 : 0;
        int ready = poll(pfd, n, timeout);
        now = now_ms();
        pthread_mutex_lock(&s->lock);
        s->heartbeat_ms = now;
        bool stopping = s->stopping;
        pthread_mutex_unlock(&s->lock);
        if (stopping || (ready < 0 && errno != EINTR))
            break; /* poll cannot fail on valid descriptors; liveness then says so */
        for (nfds_t k = 1; ready > 0 && k < n; k++) {
            if (pfd[k].revents)
                helper_died(&s->lanes[lane_of[k]], now);
        }
        for (unsigned i = 0; i < s->n_lanes; i++) {
            if (cj_lane_pidfd(s->lanes[i].lane) < 0 && now_ms() >= s->lanes[i].retry_ms)
                try_restart(s, i);
        }
    }
    for (unsigned i = 0; i < s->n_lanes; i++)
        cj_lane_shut_down(s->lanes[i].lane);
    return NULL;
}

int cj_supervisor_start(struct cj_lane *const *lanes, unsigned n_lanes,
                        struct cj_supervisor **supervisor, cj_error *err)
{
    if (n_lanes > CJ_SUPERVISOR_MAX_LANES)
        return cj_fail(err, EINVAL, "at most %d lanes", CJ_SUPERVISOR_MAX_LANES);
    struct cj_supervisor *s = calloc(1, sizeof *s);
    if (!s)
        return cj_fail_errno(err, "allocate supervisor");
    s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->stop_fd < 0) {
        free(s);
        return cj_fail_errno(err, "eventfd");
    }
    int rc = pthread_mutex_init(&s->lock, NULL);
    if (rc != 0) {
        close(s->stop_fd);
        free(s);
        errno = rc;
        return cj_fail_errno(err, "supervisor lock");
    }
    double now = now_ms();
    s->heartbeat_ms = now;
    s->n_lanes = n_lanes;
    for (unsigned i = 0; i < n_lanes; i++)
        s->lanes[i] = (struct watched){lanes[i], now, now, BACKOFF_MIN_MS};
    rc = pthread_create(&s->thread, NULL, supervise, s);
    if (rc != 0) {
        pthread_mutex_destroy(&s->lock);
        close(s->stop_fd);
        free(s);
        errno = rc;
        return cj_fail_errno(err, "start supervisor thread");
    }
    *supervisor = s;
    return 0;
}

void cj_supervisor_on_restart(struct cj_supervisor *s, cj_restart_fn fn, void *ctx)
{
    pthread_mutex_lock(&s->lock);
    s->on_restart = fn;
    s->on_restart_ctx = ctx;
    pthread_mutex_unlock(&s->lock);
}

double cj_supervisor_heartbeat_age(struct cj_supervisor *s)
{
    pthread_mutex_lock(&s->lock);
    double age = (now_ms() - s->heartbeat_ms) / 1e3;
    pthread_mutex_unlock(&s->lock);
    return age;
}

void cj_supervisor_stop(struct cj_supervisor *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_mutex_unlock(&s->lock);
    /* Wakes it now; should the write fail, the next heartbeat sees the flag. */
    uint64_t one = 1;
    ssize_t ignored = write(s->stop_fd, &one, sizeof one);
    (void)ignored;
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->lock);
    close(s->stop_fd);
    free(s);
}
