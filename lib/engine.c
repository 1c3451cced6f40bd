#include "engine.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "fdpass.h"
#include "jsonstr.h"
#include "pool.h"
#include "protocol.h"

#define DEFAULT_UID_BASE    2000000000u
#define DEFAULT_UID_COUNT   1025u
#define DEFAULT_TMP_SIZE    (16ull << 20)
#define DEFAULT_UPLOAD_SIZE (16ull << 20)
/* A sandbox that takes longer than this to come up is broken, not slow. */
#define SETUP_TIMEOUT_MS 30000
/* After SIGKILL, the sandbox's descriptors close as the kernel tears it down. */
#define KILL_GRACE_MS 5000

struct cj_engine {
    int sock;
    pid_t helper;
    pthread_mutex_t lock;
    struct cj_helper_hello hello;
    size_t stdout_cap, stderr_cap;
    struct cj_pool *pool; /* NULL: every sandbox made on demand */
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

static int start_helper(struct cj_engine *e, const char *path, cj_error *err)
{
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
        return cj_fail_errno(err, "socketpair");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pair[1], 3);
    /* Descriptors the caller leaked without close-on-exec stay out. */
    posix_spawn_file_actions_addclosefrom_np(&actions, 4);
    char *const argv[] = {(char *)path, NULL};
    char *const envp[] = {NULL};
    int rc = posix_spawn(&e->helper, path, &actions, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    close(pair[1]);
    if (rc != 0) {
        close(pair[0]);
        errno = rc;
        return cj_fail_errno(err, "start %s", path);
    }
    e->sock = pair[0];
    return 0;
}

int cj_engine_start(const struct cj_engine_config *config, struct cj_engine **engine, cj_error *err)
{
    char path[PATH_MAX];
    if (helper_path(config, path, sizeof path, err) < 0)
        return -1;

    struct cj_helper_config hc = {
        .version = CJ_PROTOCOL_VERSION,
        .warm = config->warm,
        .disabled_layers = config->disabled,
        .uid_base = config->uid_base ? config->uid_base : DEFAULT_UID_BASE,
        .uid_count = DEFAULT_UID_COUNT,
        .tmp_size = config->tmp_size ? config->tmp_size : DEFAULT_TMP_SIZE,
        .upload_size = config->upload_size ? config->upload_size : DEFAULT_UPLOAD_SIZE,
    };
    const char *env_dir = config->env_dir ? config->env_dir : CODEJAIL_ENV_DIR;
    if (snprintf(hc.env_dir, sizeof hc.env_dir, "%s", env_dir) >= (int)sizeof hc.env_dir)
        return cj_fail(err, ENAMETOOLONG, "environment path too long");
    const char *preimport = config->preimport ? config->preimport : "";
    if (snprintf(hc.preimport, sizeof hc.preimport, "%s", preimport) >= (int)sizeof hc.preimport)
        return cj_fail(err, ENAMETOOLONG, "pre-import list too long");

    struct cj_engine *e = calloc(1, sizeof *e);
    if (!e)
        return cj_fail_errno(err, "allocate engine");
    e->sock = -1;
    e->stdout_cap = config->stdout_cap ? config->stdout_cap : CJ_STDOUT_CAP_DEFAULT;
    e->stderr_cap = config->stderr_cap ? config->stderr_cap : CJ_STDERR_CAP_DEFAULT;
    pthread_mutex_init(&e->lock, NULL);
    if (start_helper(e, path, err) < 0) {
        free(e);
        return -1;
    }
    ssize_t n = -1;
    if (cj_send_msg(e->sock, &hc, sizeof hc, NULL, 0) == (ssize_t)sizeof hc)
        n = cj_recv_msg(e->sock, &e->hello, sizeof e->hello, NULL, NULL);
    if (n != (ssize_t)sizeof e->hello) {
        cj_fail(err, EPROTO, "sandbox helper %s did not start", path);
        cj_engine_stop(e);
        return -1;
    }
    e->hello.error[sizeof e->hello.error - 1] = '\0';
    if (!e->hello.ok) {
        cj_fail(err, 0, "sandbox helper: %s", e->hello.error);
        cj_engine_stop(e);
        return -1;
    }
    if (config->pool_size &&
        cj_pool_start(config->pool_size, make_ready_sandbox, e, &e->pool, err) < 0) {
        cj_engine_stop(e);
        return -1;
    }
    *engine = e;
    return 0;
}

void cj_engine_stop(struct cj_engine *e)
{
    if (!e)
        return;
    cj_pool_stop(e->pool);
    if (e->sock >= 0)
        close(e->sock); /* the helper kills its sandboxes and exits */
    if (e->helper > 0) {
        int status;
        while (waitpid(e->helper, &status, 0) < 0 && errno == EINTR)
            ;
    }
    pthread_mutex_destroy(&e->lock);
    free(e);
}

void cj_engine_layers(const struct cj_engine *e, struct cj_layer_report *report)
{
    for (int i = 0; i < CJ_LAYER_COUNT; i++) {
        report->state[i] = (enum cj_layer_state)e->hello.state[i];
        memcpy(report->detail[i], e->hello.detail[i], sizeof report->detail[i]);
        report->detail[i][sizeof report->detail[i] - 1] = '\0';
    }
    report->rootful = e->hello.rootful;
}

void cj_exec_result_free(struct cj_exec_result *result)
{
    cj_buf_free(&result->out);
    cj_buf_free(&result->err);
}

static int spawn_sandbox(struct cj_engine *e, struct cj_ready_sandbox *s, cj_error *err)
{
    struct cj_spawn_request request = {.type = CJ_SPAWN};
    struct cj_spawn_reply reply;
    int fds[5];
    size_t nfds = 5;
    ssize_t n;

    pthread_mutex_lock(&e->lock);
    if (cj_send_msg(e->sock, &request, sizeof request, NULL, 0) != (ssize_t)sizeof request)
        n = -1;
    else
        n = cj_recv_msg(e->sock, &reply, sizeof reply, fds, &nfds);
    pthread_mutex_unlock(&e->lock);

    if (n != (ssize_t)sizeof reply)
        return cj_fail(err, EPROTO, "sandbox helper stopped answering");
    reply.error[sizeof reply.error - 1] = '\0';
    if (!reply.ok)
        return cj_fail(err, 0, "make sandbox: %s", reply.error);
    if (nfds != 5) {
        for (size_t i = 0; i < nfds; i++)
            close(fds[i]);
        return cj_fail(err, EPROTO, "sandbox helper sent %zu descriptors", nfds);
    }
    s->ctl = fds[0], s->in = fds[1], s->out = fds[2], s->err = fds[3], s->pidfd = fds[4];
    return 0;
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
    struct cj_engine *e = ctx;
    double start = now_ms();
    if (spawn_sandbox(e, s, err) < 0)
        return -1;
    if (expect_ctl(s, CJ_CTL_READY, SETUP_TIMEOUT_MS, err) < 0) {
        syscall(SYS_pidfd_send_signal, s->pidfd, SIGKILL, NULL, 0);
        cj_ready_sandbox_close(s);
        return -1;
    }
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

/* Drains fd into buf; returns 1 at end of file, 0 when it would block, and
 * 2 when the cap was passed. */
static int drain(int fd, struct cj_buf *buf, cj_error *err)
{
    char chunk[65536];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n == 0)
            return 1;
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return errno == EAGAIN ? 0 : drain(fd, buf, err);
            return cj_fail_errno(err, "read sandbox output");
        }
        if (cj_buf_append(buf, chunk, (size_t)n) < 0)
            return cj_fail_errno(err, "store sandbox output");
        if (buf->truncated)
            return 2;
    }
}

static int run_io(struct cj_ready_sandbox *s, const struct cj_buf *in,
                  const struct cj_limits *limits, struct cj_exec_result *res, cj_error *err)
{
    if (set_nonblocking(s->in, err) < 0 || set_nonblocking(s->out, err) < 0 ||
        set_nonblocking(s->err, err) < 0)
        return -1;
    size_t written = 0;
    bool out_open = true, err_open = true, exited = false, init_gone = false;
    int wait_status = 0;
    double start = now_ms();
    double deadline = limits->realtime ? start + (double)limits->realtime * 1e3 : 0;
    double give_up = 0;

    while (out_open || err_open || !(exited || init_gone)) {
        struct pollfd pfd[5] = {
            {s->out, out_open ? POLLIN : 0, 0},   {s->err, err_open ? POLLIN : 0, 0},
            {s->ctl, exited ? 0 : POLLIN, 0},     {s->pidfd, init_gone ? 0 : POLLIN, 0},
            {s->in, s->in >= 0 ? POLLOUT : 0, 0},
        };
        double now = now_ms();
        double until = give_up ? give_up : deadline;
        int timeout = until ? (until > now ? (int)(until - now) + 1 : 0) : -1;
        int ready = poll(pfd, 5, timeout);
        if (ready < 0 && errno != EINTR)
            return cj_fail_errno(err, "poll sandbox");
        now = now_ms();
        if (give_up && now >= give_up)
            return cj_fail(err, ETIMEDOUT, "sandbox did not go away after SIGKILL");
        if (!give_up && deadline && now >= deadline) {
            kill_sandbox(s);
            res->timed_out = true;
            give_up = now + KILL_GRACE_MS;
        }
        if (ready <= 0)
            continue;
        if (pfd[4].revents & (POLLOUT | POLLERR | POLLHUP)) {
            ssize_t n = write(s->in, in->data + written, in->len - written);
            if (n > 0)
                written += (size_t)n;
            if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == in->len) {
                /* Done, or the code stopped reading (EPIPE): it gets EOF. */
                close(s->in);
                s->in = -1;
            }
        }
        for (int i = 0; i < 2; i++) {
            if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            int r = drain(pfd[i].fd, i == 0 ? &res->out : &res->err, err);
            if (r < 0)
                return -1;
            if (r == 2 && i == 0 && !give_up) {
                /* Output past the cap cannot be valid globals; stop the code
                 * rather than wait for it. */
                kill_sandbox(s);
                give_up = now + KILL_GRACE_MS;
            }
            if (r == 1 || r == 2) {
                bool *open_flag = i == 0 ? &out_open : &err_open;
                if (r == 1 || i == 0)
                    *open_flag = false;
            }
        }
        if (pfd[2].revents & (POLLIN | POLLHUP)) {
            struct cj_ctl_msg msg;
            ssize_t n = cj_recv_msg(s->ctl, &msg, sizeof msg, NULL, NULL);
            if (n == (ssize_t)sizeof msg && msg.type == CJ_CTL_EXITED) {
                exited = true;
                wait_status = msg.wait_status;
            } else if (n <= 0) {
                init_gone = true; /* closed without a status: killed */
            }
        }
        if (pfd[3].revents & POLLIN)
            init_gone = true;
    }
    res->run_ms = now_ms() - start;
    if (res->timed_out || !exited) {
        if (!res->timed_out && !give_up)
            return cj_fail(err, EPROTO, "sandbox init died without reporting a status");
        res->status = -SIGKILL;
    } else if (WIFEXITED(wait_status))
        res->status = WEXITSTATUS(wait_status);
    else if (WIFSIGNALED(wait_status))
        res->status = -WTERMSIG(wait_status);
    else
        return cj_fail(err, EPROTO, "sandbox reported wait status %#x", wait_status);
    return 0;
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

    struct cj_ready_sandbox s = CJ_READY_SANDBOX_NONE;
    int rc = -1;
    if (!(e->pool && cj_pool_take(e->pool, &s)) && make_ready_sandbox(e, &s, err) < 0)
        goto out;
    res->setup_ms = s.setup_ms;
    if (send_dispatch(&s, request, err) < 0 ||
        expect_ctl(&s, CJ_CTL_STARTED, SETUP_TIMEOUT_MS, err) < 0)
        goto out;
    rc = run_io(&s, &in, &request->limits, res, err);
out:
    if (rc < 0 && s.pidfd >= 0)
        kill_sandbox(&s);
    cj_ready_sandbox_close(&s);
    if (rc < 0)
        cj_exec_result_free(res);
    return rc;
}

unsigned cj_engine_pool_ready(struct cj_engine *e)
{
    return e->pool ? cj_pool_ready(e->pool) : 0;
}
