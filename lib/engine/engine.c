#include "engine.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "fdpass.h"
#include "jsonstr.h"
#include "lane.h"
#include "pool.h"
#include "protocol.h"
#include "supervisor.h"

#define DEFAULT_TMP_SIZE    (16ull << 20)
#define DEFAULT_UPLOAD_SIZE (16ull << 20)
/* A sandbox that takes longer than this to come up is broken, not slow. */
#define SETUP_TIMEOUT_MS 30000
/* After SIGKILL, the sandbox's descriptors close as the kernel tears it down. */
#define KILL_GRACE_MS 5000
/* A helper answers a sandbox request in milliseconds; one that takes this
 * long is stopped or deadlocked, and is replaced. */
#define HELPER_TIMEOUT_MS 10000
/* A new helper may import large modules before it says hello. */
#define START_TIMEOUT_MS 60000

enum { LANE_PLAIN, LANE_PREIMPORT, MAX_LANES };
_Static_assert(MAX_LANES *CJ_LANE_UIDS == CJ_ENGINE_UIDS, "each lane has ids of its own");

static const char *const lane_names[MAX_LANES] = {"plain", "preimport"};

struct cj_engine {
    struct cj_lane *lanes[MAX_LANES];
    struct cj_pool *pools[MAX_LANES]; /* NULL: every sandbox made on demand */
    unsigned n_lanes;
    struct cj_supervisor *supervisor;
    unsigned restart_wait_ms; /* how long a request waits for a helper being replaced */
    cj_restart_fn on_restart;
    void *on_restart_ctx;
    /* Top-level names of the pre-imported modules: code that mentions one
     * goes to the pre-import lane. */
    char triggers[512];
    size_t stdout_cap, stderr_cap;
};

static int make_ready_sandbox(void *ctx, struct cj_ready_sandbox *s, cj_error *err);

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int helper_path(const struct cj_engine_config *config, char *out, size_t size, cj_error *err)
{
    if (config->helper_path) {
        snprintf(out, size, "%s", config->helper_path);
        return 0;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0)
        return cj_fail_errno(err, "readlink /proc/self/exe");
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = '\0';
    if ((size_t)snprintf(out, size, "%s/codejail-sandbox", self) >= size)
        return cj_fail(err, ENAMETOOLONG, "helper path too long");
    return 0;
}

/* A new helper's pool starts refilling at once, and whoever asked is told. */
static void lane_restarted(void *ctx, unsigned lane)
{
    struct cj_engine *e = ctx;
    if (e->pools[lane])
        cj_pool_wake(e->pools[lane]);
    if (e->on_restart)
        e->on_restart(e->on_restart_ctx, lane);
}

/* "numpy,scipy.linalg" -> " numpy scipy " (top-level names, space-delimited). */
static int preimport_triggers(const char *preimport, char *out, size_t size, cj_error *err)
{
    size_t len = 0;
    out[len++] = ' ';
    for (const char *p = preimport; *p;) {
        size_t name = strcspn(p, ".,");
        if (name && len + name + 2 > size)
            return cj_fail(err, ENAMETOOLONG, "pre-import list too long");
        memcpy(out + len, p, name);
        len += name;
        if (name)
            out[len++] = ' ';
        p += strcspn(p, ",");
        p += *p == ',';
    }
    out[len] = '\0';
    return 0;
}

int cj_engine_start(const struct cj_engine_config *config, struct cj_engine **engine, cj_error *err)
{
    char path[PATH_MAX];
    if (helper_path(config, path, sizeof path, err) < 0)
        return -1;

    uint32_t uid_base = config->uid_base ? config->uid_base : CJ_DEFAULT_UID_BASE;
    /* (uid_t)-1 is never an id, and a base that wrapped would map host ids. */
    if ((uint64_t)uid_base + CJ_ENGINE_UIDS > UINT32_MAX - 1)
        return cj_fail(err, ERANGE, "uid_base %u leaves no room for %u outer ids", uid_base,
                       CJ_ENGINE_UIDS);
    struct cj_helper_config hc = {
        .version = CJ_PROTOCOL_VERSION,
        .warm = config->warm,
        .disabled_layers = config->disabled,
        .uid_count = CJ_LANE_UIDS,
        .tmp_size = config->tmp_size ? config->tmp_size : DEFAULT_TMP_SIZE,
        .upload_size = config->upload_size ? config->upload_size : DEFAULT_UPLOAD_SIZE,
        .landlock_min_abi = config->landlock_min_abi,
    };
    const char *env_dir = config->env_dir ? config->env_dir : CODEJAIL_ENV_DIR;
    if (snprintf(hc.env_dir, sizeof hc.env_dir, "%s", env_dir) >= (int)sizeof hc.env_dir)
        return cj_fail(err, ENAMETOOLONG, "environment path too long");
    const char *preimport = config->preimport ? config->preimport : "";

    struct cj_engine *e = calloc(1, sizeof *e);
    if (!e)
        return cj_fail_errno(err, "allocate engine");
    e->stdout_cap = config->stdout_cap ? config->stdout_cap : CJ_STDOUT_CAP_DEFAULT;
    e->stderr_cap = config->stderr_cap ? config->stderr_cap : CJ_STDERR_CAP_DEFAULT;
    unsigned timeout_ms = config->helper_timeout_ms ? config->helper_timeout_ms : HELPER_TIMEOUT_MS;
    /* Long enough for a replacement to start, bounded by the exchange that
     * found it gone. */
    e->restart_wait_ms = timeout_ms;
    if (preimport_triggers(preimport, e->triggers, sizeof e->triggers, err) < 0) {
        free(e);
        return -1;
    }
    /* Forking from an interpreter with large modules loaded costs more (page
     * tables to copy and tear down), so code that does not mention them is
     * served from a plain interpreter; both lanes behave the same. */
    e->n_lanes = config->warm && e->triggers[1] ? 2 : 1;
    for (unsigned i = 0; i < e->n_lanes; i++) {
        if (snprintf(hc.preimport, sizeof hc.preimport, "%s",
                     i == LANE_PREIMPORT ? preimport : "") >= (int)sizeof hc.preimport) {
            cj_fail(err, ENAMETOOLONG, "pre-import list too long");
            e->n_lanes = i;
            cj_engine_stop(e);
            return -1;
        }
        /* Sandboxes of both lanes run at once: each lane's outer ids are
         * its own, so that no two sandboxes ever share one (and NPROC). */
        hc.uid_base = uid_base + i * CJ_LANE_UIDS;
        struct cj_lane_config lc = {
            .name = lane_names[i],
            .helper_path = path,
            .helper = &hc,
            .exchange_timeout_ms = timeout_ms,
            .start_timeout_ms = START_TIMEOUT_MS,
            .log = config->log,
            .log_ctx = config->log_ctx,
        };
        if (cj_lane_start(&lc, &e->lanes[i], err) < 0 ||
            (config->pool_size && cj_pool_start(config->pool_size, make_ready_sandbox, e->lanes[i],
                                                &e->pools[i], err) < 0)) {
            e->n_lanes = i + 1;
            cj_engine_stop(e);
            return -1;
        }
    }
    if (cj_supervisor_start(e->lanes, e->n_lanes, &e->supervisor, err) < 0) {
        cj_engine_stop(e);
        return -1;
    }
    cj_supervisor_on_restart(e->supervisor, lane_restarted, e);
    *engine = e;
    return 0;
}

void cj_engine_stop(struct cj_engine *e)
{
    if (!e)
        return;
    /* The pools first: they ask the helpers for sandboxes. Then the
     * supervisor, which shuts the lanes' helpers down. */
    for (unsigned i = 0; i < e->n_lanes; i++)
        cj_pool_stop(e->pools[i]);
    cj_supervisor_stop(e->supervisor);
    for (unsigned i = 0; i < e->n_lanes; i++)
        cj_lane_stop(e->lanes[i]);
    free(e);
}

unsigned cj_engine_lanes(const struct cj_engine *e)
{
    return e->n_lanes;
}

const char *cj_engine_lane_name(const struct cj_engine *e, unsigned lane)
{
    return cj_lane_name(e->lanes[lane]);
}

void cj_engine_lane_status(struct cj_engine *e, unsigned lane, struct cj_lane_status *status)
{
    cj_lane_status(e->lanes[lane], status);
}

void cj_engine_on_restart(struct cj_engine *e, cj_restart_fn fn, void *ctx)
{
    e->on_restart = fn;
    e->on_restart_ctx = ctx;
    /* Registered again: the supervisor's lock orders the two stores above
     * before its next read of them. */
    cj_supervisor_on_restart(e->supervisor, lane_restarted, e);
}

double cj_engine_heartbeat_age(struct cj_engine *e)
{
    return cj_supervisor_heartbeat_age(e->supervisor);
}

void cj_engine_layers(struct cj_engine *e, struct cj_layer_report *report)
{
    /* Every lane's helper probes the same host with the same settings; a
     * layer counts as active only if it is in all of them. */
    struct cj_helper_hello hello[MAX_LANES];
    for (unsigned l = 0; l < e->n_lanes; l++)
        cj_lane_hello(e->lanes[l], &hello[l]);
    for (int i = 0; i < CJ_LAYER_COUNT; i++) {
        report->state[i] = (enum cj_layer_state)hello[0].state[i];
        for (unsigned l = 1; l < e->n_lanes; l++) {
            if (hello[l].state[i] != hello[0].state[i])
                report->state[i] = CJ_LAYER_FAILED;
        }
        memcpy(report->detail[i], hello[0].detail[i], sizeof report->detail[i]);
        report->detail[i][sizeof report->detail[i] - 1] = '\0';
    }
    report->rootful = hello[0].rootful;
}

void cj_exec_result_free(struct cj_exec_result *result)
{
    cj_buf_free(&result->out);
    cj_buf_free(&result->err);
}

/* Waits for one ctl message of the expected type (or FAILED). */
static int expect_ctl(struct cj_ready_sandbox *s, enum cj_ctl_type type, int timeout_ms,
                      cj_error *err)
{
    struct pollfd pfd = {s->ctl, POLLIN, 0};
    int ready;
    do
        ready = poll(&pfd, 1, timeout_ms);
    while (ready < 0 && errno == EINTR);
    if (ready < 0)
        return cj_fail_errno(err, "poll sandbox");
    if (ready == 0)
        return cj_fail(err, ETIMEDOUT, "sandbox did not answer within %d ms", timeout_ms);
    struct cj_ctl_msg msg;
    ssize_t n = cj_recv_msg(s->ctl, &msg, sizeof msg, NULL, NULL);
    if (n == 0)
        return cj_fail(err, EPROTO, "sandbox died during set-up");
    if (n != (ssize_t)sizeof msg)
        return cj_fail(err, EPROTO, "malformed message from sandbox");
    if (msg.type == CJ_CTL_FAILED) {
        msg.error[sizeof msg.error - 1] = '\0';
        return cj_fail(err, 0, "sandbox set-up failed: %s", msg.error);
    }
    if (msg.type != type)
        return cj_fail(err, EPROTO, "unexpected message %u from sandbox", msg.type);
    return 0;
}

/* Makes a sandbox and waits until every layer is up (the pool's fill). */
static int make_ready_sandbox(void *ctx, struct cj_ready_sandbox *s, cj_error *err)
{
    struct cj_lane *lane = ctx;
    double start = now_ms();
    if (cj_lane_spawn(lane, s, err) < 0)
        return -1;
    if (expect_ctl(s, CJ_CTL_READY, SETUP_TIMEOUT_MS, err) < 0) {
        syscall(SYS_pidfd_send_signal, s->pidfd, SIGKILL, NULL, 0);
        cj_ready_sandbox_close(s);
        cj_lane_note(lane, s->generation, CJ_FAULT_SETUP, err->msg);
        return -1;
    }
    cj_lane_note_ready(lane);
    s->setup_ms = now_ms() - start;
    return 0;
}

static int build_stdin(const struct cj_exec_request *r, struct cj_buf *in, cj_error *err)
{
    size_t bad;
    if (!cj_utf8_valid(r->code, r->code_len, &bad))
        return cj_fail(err, EINVAL, "code is not valid UTF-8 (byte %zu)", bad);
    int rc = cj_buf_append_str(in, "[");
    rc |= cj_json_append_string(in, r->code, r->code_len);
    rc |= cj_buf_append_str(in, ",");
    rc |= cj_buf_append(in, r->globals_json, r->globals_len);
    rc |= cj_buf_append_str(in, ",[");
    for (size_t i = 0; i < r->n_python_path; i++) {
        const char *entry = r->python_path[i];
        if (!cj_utf8_valid(entry, strlen(entry), &bad))
            return cj_fail(err, EINVAL, "python_path entry is not valid UTF-8");
        rc |= cj_buf_append_str(in, i ? "," : "");
        rc |= cj_json_append_string(in, entry, strlen(entry));
    }
    rc |= cj_buf_append_str(in, "]]");
    if (rc)
        return cj_fail_errno(err, "build stdin");
    return 0;
}

/* A pooled sandbox can die while it waits (killed by an operator or the OOM
 * killer): such a one is dropped, not handed a request. */
static bool take_live(struct cj_pool *pool, struct cj_ready_sandbox *s)
{
    while (cj_pool_take(pool, s)) {
        struct pollfd exited = {s->pidfd, POLLIN, 0};
        if (poll(&exited, 1, 0) == 0)
            return true;
        cj_ready_sandbox_close(s);
    }
    return false;
}

static int send_dispatch(struct cj_ready_sandbox *s, const struct cj_exec_request *r, cj_error *err)
{
    struct cj_ctl_msg msg = {.type = CJ_CTL_DISPATCH, .limits = r->limits};
    int fds[CJ_MAX_FILES] = {0};
    size_t nfds = 0;
    int rc = -1;

    if (r->n_files > CJ_MAX_FILES)
        return cj_fail(err, EINVAL, "at most %d files", CJ_MAX_FILES);
    for (; nfds < r->n_files; nfds++) {
        const struct cj_file *f = &r->files[nfds];
        if (snprintf(msg.file_names[nfds], CJ_FILE_NAME_MAX, "%s", f->name) >= CJ_FILE_NAME_MAX) {
            cj_fail(err, ENAMETOOLONG, "file name too long");
            goto out;
        }
        fds[nfds] = memfd_create("codejail-upload", MFD_CLOEXEC);
        if (fds[nfds] < 0) {
            cj_fail_errno(err, "memfd_create");
            goto out;
        }
        size_t done = 0;
        while (done < f->len) {
            ssize_t n = write(fds[nfds], (const char *)f->data + done, f->len - done);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                cj_fail_errno(err, "write upload");
                nfds++;
                goto out;
            }
            done += (size_t)n;
        }
    }
    msg.nfiles = (uint32_t)nfds;
    if (cj_send_msg(s->ctl, &msg, sizeof msg, fds, nfds) != (ssize_t)sizeof msg) {
        cj_fail_errno(err, "dispatch to sandbox");
        goto out;
    }
    rc = 0;
out:
    for (size_t i = 0; i < nfds; i++)
        close(fds[i]);
    return rc;
}

static int set_nonblocking(int fd, cj_error *err)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return cj_fail_errno(err, "set non-blocking");
    return 0;
}

static void kill_sandbox(struct cj_ready_sandbox *s)
{
    syscall(SYS_pidfd_send_signal, s->pidfd, SIGKILL, NULL, 0);
}

enum drain_result { DRAIN_AGAIN, DRAIN_EOF, DRAIN_OVER_CAP };

/* Reads what fd has into buf. Past the cap, data is read and dropped (the
 * buffer keeps its first `cap` bytes), so a flood cannot block the sandbox. */
static int drain(int fd, struct cj_buf *buf, enum drain_result *result, cj_error *err)
{
    char chunk[65536];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n == 0) {
            *result = DRAIN_EOF;
            return 0;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            *result = buf->truncated ? DRAIN_OVER_CAP : DRAIN_AGAIN;
            return 0;
        }
        if (n < 0)
            return cj_fail_errno(err, "read sandbox output");
        if (cj_buf_append(buf, chunk, (size_t)n) < 0)
            return cj_fail_errno(err, "store sandbox output");
    }
}

/* Feeds stdin, collects stdout and stderr and the runner's status, and
 * kills the sandbox at the wall-clock deadline. A descriptor that is done
 * is taken out of the poll set (poll reports a hang-up even when no event
 * is asked for). */
static int run_io(struct cj_ready_sandbox *s, const struct cj_buf *in,
                  const struct cj_limits *limits, struct cj_exec_result *res, cj_error *err)
{
    if (set_nonblocking(s->in, err) < 0 || set_nonblocking(s->out, err) < 0 ||
        set_nonblocking(s->err, err) < 0)
        return -1;
    enum { OUT, ERR, CTL, PIDFD, IN };
    struct pollfd pfd[5] = {
        [OUT] = {s->out, POLLIN, 0},     [ERR] = {s->err, POLLIN, 0}, [CTL] = {s->ctl, POLLIN, 0},
        [PIDFD] = {s->pidfd, POLLIN, 0}, [IN] = {s->in, POLLOUT, 0},
    };
    size_t written = 0;
    bool exited = false, init_gone = false, killed = false;
    int wait_status = 0;
    double start = now_ms();
    double deadline = limits->realtime ? start + (double)limits->realtime * 1e3 : 0;
    double give_up = 0;

    while (pfd[OUT].fd >= 0 || pfd[ERR].fd >= 0 || !(exited || init_gone)) {
        double now = now_ms();
        double until = killed ? give_up : deadline;
        int timeout = until ? (until > now ? (int)(until - now) + 1 : 0) : -1;
        int ready = poll(pfd, 5, timeout);
        if (ready < 0 && errno != EINTR)
            return cj_fail_errno(err, "poll sandbox");
        now = now_ms();
        if (killed && now >= give_up)
            return cj_fail(err, ETIMEDOUT, "sandbox did not go away after SIGKILL");
        if (!killed && deadline && now >= deadline) {
            kill_sandbox(s);
            res->timed_out = killed = true;
            give_up = now + KILL_GRACE_MS;
        }
        if (ready <= 0)
            continue;
        if (pfd[IN].revents) {
            ssize_t n = write(s->in, in->data + written, in->len - written);
            if (n > 0)
                written += (size_t)n;
            /* Done, or the code stopped reading (EPIPE): either way it is
             * given end of file. */
            if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == in->len) {
                close(s->in);
                s->in = pfd[IN].fd = -1;
            }
        }
        for (int i = OUT; i <= ERR; i++) {
            if (!pfd[i].revents)
                continue;
            enum drain_result r;
            if (drain(pfd[i].fd, i == OUT ? &res->out : &res->err, &r, err) < 0)
                return -1;
            if (r == DRAIN_EOF)
                pfd[i].fd = -1;
            else if (r == DRAIN_OVER_CAP && i == OUT && !killed) {
                /* Output past the cap cannot be valid globals: stop the code
                 * rather than wait for it. */
                kill_sandbox(s);
                killed = true;
                give_up = now + KILL_GRACE_MS;
            }
        }
        if (pfd[CTL].revents) {
            struct cj_ctl_msg msg;
            ssize_t n = cj_recv_msg(s->ctl, &msg, sizeof msg, NULL, NULL);
            if (n == (ssize_t)sizeof msg && msg.type == CJ_CTL_FAILED) {
                msg.error[sizeof msg.error - 1] = '\0';
                return cj_fail(err, 0, "sandbox dispatch failed: %s", msg.error);
            }
            if (n == (ssize_t)sizeof msg && msg.type == CJ_CTL_EXITED) {
                exited = true;
                wait_status = msg.wait_status;
            }
            if (n <= 0 || exited)
                pfd[CTL].fd = -1;
        }
        if (pfd[PIDFD].revents) {
            init_gone = true;
            pfd[PIDFD].fd = -1;
        }
    }
    res->run_ms = now_ms() - start;
    /* An init that died without a word was killed (by its helper's death,
     * an operator, the OOM killer): the code gets what a kill gives. */
    if (!exited)
        res->status = -SIGKILL;
    else if (res->timed_out)
        res->status = -SIGKILL;
    else if (WIFEXITED(wait_status))
        res->status = WEXITSTATUS(wait_status);
    else if (WIFSIGNALED(wait_status))
        res->status = -WTERMSIG(wait_status);
    else
        return cj_fail(err, EPROTO, "sandbox reported wait status %#x", wait_status);
    return 0;
}

static bool is_identifier_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Whether code mentions `name` as a whole word (an import, or anything
 * else: a false positive only costs a little speed). */
static bool mentions(const char *code, size_t len, const char *name, size_t name_len)
{
    for (const char *p = code; (p = memmem(p, len - (size_t)(p - code), name, name_len));
         p += name_len) {
        bool starts = p == code || !is_identifier_char(p[-1]);
        const char *end = p + name_len;
        bool ends = end == code + len || !is_identifier_char(*end);
        if (starts && ends)
            return true;
    }
    return false;
}

static unsigned pick_lane(const struct cj_engine *e, const struct cj_exec_request *r)
{
    if (r->force_lane && r->force_lane <= e->n_lanes)
        return r->force_lane - 1;
    if (e->n_lanes == 1)
        return LANE_PLAIN;
    /* Uploaded helper modules may import anything. */
    if (r->n_files)
        return LANE_PREIMPORT;
    for (const char *t = e->triggers + 1; *t;) {
        size_t n = strcspn(t, " ");
        if (mentions(r->code, r->code_len, t, n))
            return LANE_PREIMPORT;
        t += n + 1;
    }
    return LANE_PLAIN;
}

int cj_engine_execute(struct cj_engine *e, const struct cj_exec_request *request,
                      struct cj_exec_result *res, cj_error *err)
{
    cleanup_buf struct cj_buf in;
    cj_buf_init(&in, 0);
    memset(res, 0, sizeof *res);
    cj_buf_init(&res->out, e->stdout_cap);
    cj_buf_init(&res->err, e->stderr_cap);
    if (build_stdin(request, &in, err) < 0)
        return -1;

    unsigned lane = pick_lane(e, request);
    struct cj_ready_sandbox s = CJ_READY_SANDBOX_NONE;
    int rc = -1;
    /* A sandbox lost before the code was handed over (its helper died or
     * hung, it died setting up) is replaced once, after waiting for a
     * helper being replaced; the code has not run, so nobody can tell. */
    for (int attempt = 0; attempt < 2; attempt++) {
        if (attempt && !cj_lane_wait_running(e->lanes[lane], e->restart_wait_ms))
            break;
        if ((e->pools[lane] && take_live(e->pools[lane], &s)) ||
            make_ready_sandbox(e->lanes[lane], &s, err) == 0) {
            if (send_dispatch(&s, request, err) == 0) {
                res->setup_ms = s.setup_ms;
                rc = run_io(&s, &in, &request->limits, res, err);
                break;
            }
            kill_sandbox(&s);
            cj_ready_sandbox_close(&s);
        }
    }
    if (rc < 0 && s.pidfd >= 0)
        kill_sandbox(&s);
    cj_ready_sandbox_close(&s);
    if (rc < 0)
        cj_exec_result_free(res);
    return rc;
}

unsigned cj_engine_pool_ready(struct cj_engine *e)
{
    unsigned ready = 0;
    for (unsigned i = 0; i < e->n_lanes; i++)
        ready += e->pools[i] ? cj_pool_ready(e->pools[i]) : 0;
    return ready;
}
