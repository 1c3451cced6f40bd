#include "lane.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "fdpass.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

struct cj_lane {
    char name[16];
    char path[PATH_MAX];
    struct cj_helper_config helper;
    unsigned exchange_timeout_ms, start_timeout_ms;
    cj_lane_log_fn log;
    void *log_ctx;

    pthread_mutex_t exchange; /* one request and answer at a time; sock */
    int sock;                 /* -1: no helper to ask */

    pthread_mutex_t lock; /* everything below */
    pthread_cond_t changed;
    pid_t pid;
    int pidfd;
    bool running;
    unsigned long generation; /* of the helper: one more at each start */
    bool killed_hung;         /* the coming reap is of a helper killed for missing a deadline */
    unsigned failures_in_row;
    struct cj_helper_hello hello;
    struct cj_lane_status status;
};

static const char *const fault_names[CJ_FAULT_COUNT] = {
    [CJ_FAULT_HELPER_EXITED] = "helper_exited",
    [CJ_FAULT_HELPER_HUNG] = "helper_hung",
    [CJ_FAULT_HELPER_START] = "helper_start",
    [CJ_FAULT_SPAWN] = "spawn",
    [CJ_FAULT_SETUP] = "setup",
};

const char *cj_fault_name(enum cj_fault fault)
{
    return fault_names[fault];
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void log_line(struct cj_lane *l, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void log_line(struct cj_lane *l, const char *level, const char *fmt, ...)
{
    if (!l->log)
        return;
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    l->log(l->log_ctx, level, "lane", message);
}

/* Under l->lock: recomputes whether the lane can serve, noting when that
 * changed. */
static void refresh(struct cj_lane *l)
{
    bool up = l->running && l->failures_in_row < CJ_LANE_FAILURES_DOWN;
    if (up != l->status.up) {
        l->status.up = up;
        l->status.since = wall_s();
        log_line(l, up ? "info" : "error", "lane %s %s: %s", l->name, up ? "up" : "down",
                 up ? "serving" : l->status.why);
    }
    pthread_cond_broadcast(&l->changed);
}

/* Under l->lock. */
static void count(struct cj_lane *l, enum cj_fault fault, const char *why)
{
    l->status.failures[fault]++;
    snprintf(l->status.why, sizeof l->status.why, "%s: %.230s", fault_names[fault], why);
}

static int spawn_helper(struct cj_lane *l, int *sock, pid_t *pid, cj_error *err)
{
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
        return cj_fail_errno(err, "socketpair");
    posix_spawn_file_actions_t actions;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc == 0) {
        rc = posix_spawn_file_actions_adddup2(&actions, pair[1], 3);
        /* Descriptors the caller leaked without close-on-exec stay out. */
        rc = rc ? rc : posix_spawn_file_actions_addclosefrom_np(&actions, 4);
        char *const argv[] = {l->path, NULL};
        char *const envp[] = {NULL};
        rc = rc ? rc : posix_spawn(pid, l->path, &actions, NULL, argv, envp);
        posix_spawn_file_actions_destroy(&actions);
    }
    close(pair[1]);
    if (rc != 0) {
        close(pair[0]);
        errno = rc;
        return cj_fail_errno(err, "start %s", l->path);
    }
    *sock = pair[0];
    return 0;
}

/* Waits at most timeout_ms for fd to be readable. */
static int wait_readable(int fd, unsigned timeout_ms, cj_error *err)
{
    struct pollfd pfd = {fd, POLLIN, 0};
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long spent = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        int left = spent >= (long)timeout_ms ? 0 : (int)((long)timeout_ms - spent);
        int ready = poll(&pfd, 1, left);
        if (ready > 0)
            return 0;
        if (ready == 0)
            return cj_fail(err, ETIMEDOUT, "no answer within %u ms", timeout_ms);
        if (errno != EINTR)
            return cj_fail_errno(err, "poll helper");
    }
}

static void reap_pid(pid_t pid)
{
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

/* Starts a helper and waits for its hello; on success the lane holds it. */
static int start_helper(struct cj_lane *l, cj_error *err)
{
    cleanup_close int sock = -1;
    pid_t pid = 0;
    if (spawn_helper(l, &sock, &pid, err) < 0)
        return -1;
    cleanup_close int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    struct cj_helper_hello hello;
    ssize_t n = -1;
    if (pidfd < 0)
        cj_fail_errno(err, "pidfd_open helper");
    else if (cj_send_msg(sock, &l->helper, sizeof l->helper, NULL, 0) != (ssize_t)sizeof l->helper)
        cj_fail_errno(err, "configure helper");
    else if (wait_readable(sock, l->start_timeout_ms, err) == 0) {
        n = cj_recv_msg(sock, &hello, sizeof hello, NULL, NULL);
        if (n != (ssize_t)sizeof hello)
            cj_fail(err, EPROTO, "sandbox helper %s did not start", l->path);
    }
    if (n == (ssize_t)sizeof hello) {
        hello.error[sizeof hello.error - 1] = '\0';
        if (!hello.ok) {
            cj_fail(err, 0, "sandbox helper: %s", hello.error);
            n = -1;
        }
    }
    if (n != (ssize_t)sizeof hello) {
        kill(pid, SIGKILL);
        reap_pid(pid);
        return -1;
    }
    /* Both locks: a spawn sees the new socket and its generation together. */
    pthread_mutex_lock(&l->exchange);
    l->sock = cj_steal_fd(&sock);
    pthread_mutex_lock(&l->lock);
    l->pid = pid;
    l->pidfd = cj_steal_fd(&pidfd);
    l->hello = hello;
    l->generation++;
    l->running = true;
    l->killed_hung = false;
    l->failures_in_row = 0;
    refresh(l);
    pthread_mutex_unlock(&l->lock);
    pthread_mutex_unlock(&l->exchange);
    return 0;
}

static int init_sync(struct cj_lane *l, cj_error *err)
{
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc != 0) {
        errno = rc;
        return cj_fail_errno(err, "condition variable attributes");
    }
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int made = 0;
    if (rc == 0 && (rc = pthread_mutex_init(&l->exchange, NULL)) == 0) {
        made++;
        if ((rc = pthread_mutex_init(&l->lock, NULL)) == 0) {
            made++;
            rc = pthread_cond_init(&l->changed, &attr);
        }
    }
    pthread_condattr_destroy(&attr);
    if (rc == 0)
        return 0;
    if (made > 1)
        pthread_mutex_destroy(&l->lock);
    if (made > 0)
        pthread_mutex_destroy(&l->exchange);
    errno = rc;
    return cj_fail_errno(err, "initialize lane locks");
}

int cj_lane_start(const struct cj_lane_config *config, struct cj_lane **lane, cj_error *err)
{
    struct cj_lane *l = calloc(1, sizeof *l);
    if (!l)
        return cj_fail_errno(err, "allocate lane");
    snprintf(l->name, sizeof l->name, "%s", config->name);
    if (snprintf(l->path, sizeof l->path, "%s", config->helper_path) >= (int)sizeof l->path) {
        free(l);
        return cj_fail(err, ENAMETOOLONG, "helper path too long");
    }
    l->helper = *config->helper;
    l->exchange_timeout_ms = config->exchange_timeout_ms;
    l->start_timeout_ms = config->start_timeout_ms;
    l->log = config->log;
    l->log_ctx = config->log_ctx;
    l->sock = l->pidfd = -1;
    if (init_sync(l, err) < 0) {
        free(l);
        return -1;
    }
    if (start_helper(l, err) < 0) {
        cj_lane_stop(l);
        return -1;
    }
    *lane = l;
    return 0;
}

void cj_lane_shut_down(struct cj_lane *l)
{
    pthread_mutex_lock(&l->exchange);
    if (l->sock >= 0)
        close(l->sock); /* the helper kills its sandboxes and exits */
    l->sock = -1;
    pthread_mutex_unlock(&l->exchange);
    pthread_mutex_lock(&l->lock);
    if (l->pid > 0)
        reap_pid(l->pid);
    if (l->pidfd >= 0)
        close(l->pidfd);
    l->pid = 0;
    l->pidfd = -1;
    l->running = false;
    pthread_mutex_unlock(&l->lock);
}

void cj_lane_stop(struct cj_lane *l)
{
    if (!l)
        return;
    cj_lane_shut_down(l);
    pthread_cond_destroy(&l->changed);
    pthread_mutex_destroy(&l->lock);
    pthread_mutex_destroy(&l->exchange);
    free(l);
}

const char *cj_lane_name(const struct cj_lane *l)
{
    return l->name;
}

void cj_lane_hello(struct cj_lane *l, struct cj_helper_hello *hello)
{
    pthread_mutex_lock(&l->lock);
    *hello = l->hello;
    pthread_mutex_unlock(&l->lock);
}

void cj_lane_status(struct cj_lane *l, struct cj_lane_status *status)
{
    pthread_mutex_lock(&l->lock);
    *status = l->status;
    pthread_mutex_unlock(&l->lock);
}

/* Under l->exchange: the helper missed a deadline, or broke the protocol,
 * or is dying. It is killed so that the supervisor reaps and replaces it,
 * and nobody asks it anything more meanwhile. */
static void abandon(struct cj_lane *l, bool hung, const char *why)
{
    close(l->sock);
    l->sock = -1;
    pthread_mutex_lock(&l->lock);
    if (l->pidfd >= 0 && syscall(SYS_pidfd_send_signal, l->pidfd, SIGKILL, NULL, 0) < 0 &&
        errno != ESRCH)
        log_line(l, "error", "lane %s: kill helper: %s", l->name, strerror(errno));
    l->running = false;
    if (hung) {
        l->killed_hung = true;
        count(l, CJ_FAULT_HELPER_HUNG, why);
    }
    refresh(l);
    pthread_mutex_unlock(&l->lock);
}

static void close_fds(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        close(fds[i]);
}

int cj_lane_spawn(struct cj_lane *l, struct cj_ready_sandbox *s, cj_error *err)
{
    struct cj_spawn_request request = {.type = CJ_SPAWN};
    struct cj_spawn_reply reply;
    int fds[5];
    size_t nfds = 5;
    ssize_t n = -1;

    pthread_mutex_lock(&l->exchange);
    if (l->sock < 0) {
        pthread_mutex_unlock(&l->exchange);
        pthread_mutex_lock(&l->lock);
        cj_fail(err, ENOTCONN, "lane %s has no helper (%s)", l->name, l->status.why);
        pthread_mutex_unlock(&l->lock);
        return -1;
    }
    /* The helper that holds sock (start_helper sets both under exchange). */
    pthread_mutex_lock(&l->lock);
    unsigned long generation = l->generation;
    pthread_mutex_unlock(&l->lock);
    bool lost_fds = false;
    if (cj_send_msg(l->sock, &request, sizeof request, NULL, 0) != (ssize_t)sizeof request)
        cj_fail_errno(err, "ask sandbox helper");
    else if (wait_readable(l->sock, l->exchange_timeout_ms, err) == 0 &&
             (n = cj_recv_msg(l->sock, &reply, sizeof reply, fds, &nfds)) !=
                 (ssize_t)sizeof reply) {
        /* The answer came, but this process could not take its descriptors
         * (out of them): the helper is fine, and the sandbox it made dies
         * once the helper's copies are closed. */
        lost_fds = n < 0 && errno == EBADMSG;
        if (lost_fds)
            cj_fail(err, EMFILE,
                    "the sandbox's descriptors were lost (is the service out of descriptors?)");
        else
            cj_fail(err, EPROTO, "sandbox helper stopped answering");
        n = -1;
    }
    if (n < 0 && !lost_fds)
        abandon(l, err->errnum == ETIMEDOUT, err->msg);
    pthread_mutex_unlock(&l->exchange);
    if (lost_fds)
        cj_lane_note(l, generation, CJ_FAULT_SPAWN, err->msg);
    if (n < 0)
        return -1;

    reply.error[sizeof reply.error - 1] = '\0';
    if (!reply.ok || nfds != 5) {
        close_fds(fds, nfds);
        if (reply.ok)
            cj_fail(err, EPROTO, "sandbox helper sent %zu descriptors", nfds);
        else
            cj_fail(err, 0, "make sandbox: %s", reply.error);
        cj_lane_note(l, generation, CJ_FAULT_SPAWN, err->msg);
        return -1;
    }
    s->ctl = fds[0], s->in = fds[1], s->out = fds[2], s->err = fds[3], s->pidfd = fds[4];
    s->generation = generation;
    return 0;
}

void cj_lane_note(struct cj_lane *l, unsigned long generation, enum cj_fault fault, const char *why)
{
    pthread_mutex_lock(&l->lock);
    if (generation != l->generation || !l->running) {
        l->status.failures[fault]++;
        pthread_mutex_unlock(&l->lock);
        return;
    }
    count(l, fault, why);
    l->failures_in_row++;
    log_line(l, "warning", "lane %s: sandbox start failed (%s, %u in a row): %s", l->name,
             fault_names[fault], l->failures_in_row, why);
    refresh(l);
    pthread_mutex_unlock(&l->lock);
}

void cj_lane_note_ready(struct cj_lane *l)
{
    pthread_mutex_lock(&l->lock);
    if (l->failures_in_row) {
        l->failures_in_row = 0;
        refresh(l);
    }
    pthread_mutex_unlock(&l->lock);
}

bool cj_lane_wait_running(struct cj_lane *l, unsigned timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&l->lock);
    while (!l->running && pthread_cond_timedwait(&l->changed, &l->lock, &until) != ETIMEDOUT)
        ;
    bool running = l->running;
    pthread_mutex_unlock(&l->lock);
    return running;
}

int cj_lane_pidfd(struct cj_lane *l)
{
    pthread_mutex_lock(&l->lock);
    int fd = l->pidfd;
    pthread_mutex_unlock(&l->lock);
    return fd;
}

static void describe_exit(const siginfo_t *info, char *out, size_t size)
{
    if (info->si_code == CLD_EXITED)
        snprintf(out, size, "helper exited with status %d", info->si_status);
    else
        snprintf(out, size, "helper killed by signal %d (%s)", info->si_status,
                 strsignal(info->si_status));
}

void cj_lane_reap(struct cj_lane *l)
{
    int pidfd = cj_lane_pidfd(l);
    siginfo_t info = {0};
    int rc;
    while ((rc = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, WEXITED)) < 0 && errno == EINTR)
        ;
    char why[128];
    if (rc < 0)
        snprintf(why, sizeof why, "helper gone, not reaped: waitid: %s", strerror(errno));
    else
        describe_exit(&info, why, sizeof why);

    pthread_mutex_lock(&l->exchange);
    if (l->sock >= 0)
        close(l->sock);
    l->sock = -1;
    pthread_mutex_unlock(&l->exchange);

    pthread_mutex_lock(&l->lock);
    close(l->pidfd);
    l->pidfd = -1;
    l->pid = 0;
    l->running = false;
    if (!l->killed_hung)
        count(l, CJ_FAULT_HELPER_EXITED, why);
    log_line(l, "error", "lane %s: %s", l->name, why);
    refresh(l);
    pthread_mutex_unlock(&l->lock);
}

int cj_lane_restart(struct cj_lane *l, cj_error *err)
{
    if (start_helper(l, err) < 0) {
        pthread_mutex_lock(&l->lock);
        count(l, CJ_FAULT_HELPER_START, err->msg);
        log_line(l, "error", "lane %s: new helper did not start: %s", l->name, err->msg);
        refresh(l);
        pthread_mutex_unlock(&l->lock);
        return -1;
    }
    pthread_mutex_lock(&l->lock);
    l->status.restarts++;
    log_line(l, "info", "lane %s: helper replaced (restart %lu)", l->name, l->status.restarts);
    pthread_mutex_unlock(&l->lock);
    return 0;
}
