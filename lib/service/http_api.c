#include "http_api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "access_log.h"
#include "cleanup.h"
#include "form.h"
#include "http_framing.h"
#include "jsonstr.h"
#include "payload.h"
#include "result.h"

#define PATH_CODE_EXEC    "/api/v0/code-exec"
#define CODE_EXEC_METHODS "POST, OPTIONS"
#define CONTENT_TYPE_JSON "application/json"
/* MHD's buffer per connection: request line, headers, and each body chunk. */
#define CONNECTION_MEMORY (64u << 10)
/* Connections beyond those executing or queued: health probes, metrics
 * scrapes, uploads still arriving, refusals being sent. */
#define CONNECTION_HEADROOM 256u
/* Connections no single client address may take: however many one client
 * opens (a slow-request flood), health probes and other clients still get
 * in. */
#define CONNECTION_RESERVE 32u
/* Request bodies held in memory at once, all connections together, in units
 * of max_body_bytes per execution slot: uploads beyond it are answered 503
 * like a full queue, so that many large uploads cannot exhaust memory. */
#define BODY_BUDGET_PER_SLOT 4u
/* An overloaded service frees a slot within an execution's time; asking
 * the client to wait longer than a second would only add latency. */
#define RETRY_AFTER_S "1"

enum route { ROUTE_CODE_EXEC, ROUTE_HEALTH, ROUTE_LIVE, ROUTE_METRICS, ROUTE_NOT_FOUND };

/* Where a request is: about to be answered without a body, reading its
 * body, waiting for or in an execution (connection suspended), or answered. */
enum stage { STAGE_DEFERRED, STAGE_BODY, STAGE_QUEUED, STAGE_ANSWERED };

/* One connection as the receive deadline sees it. */
struct conn_track {
    int fd;
    double since_ms;
    bool receiving; /* between requests or reading one: the deadline runs */
    bool cut;
    struct conn_track *prev, *next;
};

struct request {
    struct MHD_Connection *connection;
    double start_ms;
    enum route route;
    enum stage stage;
    char method[16];
    char *path;
    char remote[INET6_ADDRSTRLEN];
    struct cj_form *form;
    struct cj_payload payload;
    bool have_payload;
    struct cj_environment *environment; /* held from admission to completion */
    /* The answer (set by the handler, or by a worker for the handler to send). */
    unsigned status;
    const char *outcome;
    char *body;
    size_t body_len;
    size_t response_bytes;
    /* What the execution did, for the log. */
    bool executed;
    int exit_status;
    bool timed_out;
    double setup_ms, run_ms;
    size_t stdout_bytes, stderr_bytes;
    char *detail;
    size_t charged;       /* body bytes counted against the memory budget */
    bool over_budget;     /* the budget ran out for this body */
    struct request *next; /* in the queue */
};

struct cj_http {
    const struct cj_config *config;
    cj_http_execute_fn execute;
    void *execute_ctx;
    bool external_loop;
    struct cj_environments *environments; /* NULL: the fixed check below, and execute */
    const struct cj_selfcheck *selfcheck;
    bool selfcheck_ok;
    char *health_body;
    size_t health_len;
    struct cj_metrics *metrics;
    struct MHD_Daemon *daemon;
    unsigned port;
    /* Only the thread that runs MHD touches these: bodies arrive and
     * requests end there. */
    size_t body_budget, body_bytes;

    pthread_mutex_t lock;    /* everything below */
    pthread_cond_t work_cv;  /* a request was queued, or the workers must stop */
    pthread_cond_t idle_cv;  /* busy or active went down */
    pthread_cond_t sweep_cv; /* the sweeper must stop */
    struct request *head, *tail;
    unsigned slots, queue_capacity;
    unsigned queued, running;
    unsigned active; /* requests between their first handler call and completion */
    bool draining, stopping;
    pthread_t *workers;
    unsigned n_workers;
    pthread_t sweeper;
    bool sweeper_running;

    pthread_mutex_t track_lock; /* the connection list */
    struct conn_track *tracks;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- responses ---- */

/* Client-visible text as a JSON string; messages can carry client bytes
 * (a media type, a cut schema message), which must not break the JSON. */
static int append_text(struct cj_buf *out, const char *text)
{
    size_t len = strlen(text);
    if (cj_utf8_valid(text, len, NULL))
        return cj_json_append_string(out, text, len);
    cleanup_buf struct cj_buf clean;
    cj_buf_init(&clean, 0);
    if (cj_utf8_replace(&clean, text, len) < 0)
        return -1;
    return cj_json_append_string(out, clean.data, clean.len);
}

/* Extra headers: name, value, ..., NULL. */
static enum MHD_Result send_body(struct request *r, unsigned status, const char *outcome,
                                 const char *content_type, char *body, size_t len,
                                 enum MHD_ResponseMemoryMode mode, const char *const *headers)
{
    r->status = status;
    r->outcome = outcome;
    r->stage = STAGE_ANSWERED;
    r->response_bytes = len;
    struct MHD_Response *response = MHD_create_response_from_buffer(len, body, mode);
    if (!response) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(body);
        return MHD_NO;
    }
    enum MHD_Result rc =
        MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    for (size_t i = 0; headers && headers[i] && rc == MHD_YES; i += 2)
        rc = MHD_add_response_header(response, headers[i], headers[i + 1]);
    if (rc == MHD_YES)
        rc = MHD_queue_response(r->connection, status, response);
    MHD_destroy_response(response);
    return rc;
}

/* Refusals that the reference's web framework (Django REST framework) makes
 * itself carry its key, "detail"; the service's own carry "error". */
static bool framework_refusal(unsigned status)
{
    return status == MHD_HTTP_METHOD_NOT_ALLOWED || status == MHD_HTTP_UNSUPPORTED_MEDIA_TYPE;
}

static int error_json(struct cj_buf *out, unsigned status, const char *message)
{
    return cj_buf_append_str(out, framework_refusal(status) ? "{\"detail\": " : "{\"error\": ") |
                   append_text(out, message) | cj_buf_append_str(out, "}")
               ? -1
               : 0;
}

/* Sends what out holds, which the response takes over. */
static enum MHD_Result send_buf(struct request *r, unsigned status, const char *outcome,
                                const char *content_type, struct cj_buf *out,
                                const char *const *headers)
{
    size_t len;
    char *body = cj_buf_steal(out, &len);
    if (!body)
        return MHD_NO;
    return send_body(r, status, outcome, content_type, body, len, MHD_RESPMEM_MUST_FREE, headers);
}

static enum MHD_Result send_error(struct request *r, unsigned status, const char *outcome,
                                  const char *message, const char *const *headers)
{
    cleanup_buf struct cj_buf out;
    cj_buf_init(&out, 0);
    if (error_json(&out, status, message) < 0)
        return MHD_NO;
    return send_buf(r, status, outcome, CONTENT_TYPE_JSON, &out, headers);
}

static const char *const close_header[] = {MHD_HTTP_HEADER_CONNECTION, "close", NULL};

static enum MHD_Result send_shutting_down(struct request *r)
{
    return send_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting_down",
                      "Codejail service is shutting down", close_header);
}

static enum MHD_Result send_overloaded(struct request *r)
{
    static const char *const retry[] = {MHD_HTTP_HEADER_RETRY_AFTER, RETRY_AFTER_S, NULL};
    return send_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "overloaded",
                      "Codejail service is overloaded; retry later", retry);
}

/* ---- connection deadline ----
 *
 * MHD's connection time-out counts idleness only: a client that sends a
 * byte every few seconds keeps a connection (and its buffer) forever. So
 * each connection also has a deadline: a request must arrive whole, headers
 * and body, within connection_timeout_s of the previous one ending (or of
 * the connection opening). A sweeper thread shuts overdue sockets down;
 * MHD then sees the end of the stream and closes the connection itself.
 * The fd is only touched under track_lock, and MHD tells us (CLOSED) before
 * it closes an fd, so the sweeper never shuts down a reused descriptor. */

static void on_connection(void *cls, struct MHD_Connection *connection, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct cj_http *h = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct conn_track *t = info ? calloc(1, sizeof *t) : NULL;
        *socket_context = t;
        if (!t)
            return; /* untracked: the idle time-out still applies */
        t->fd = info->connect_fd;
        t->since_ms = now_ms();
        t->receiving = true;
        pthread_mutex_lock(&h->track_lock);
        t->next = h->tracks;
        if (h->tracks)
            h->tracks->prev = t;
        h->tracks = t;
        pthread_mutex_unlock(&h->track_lock);
        return;
    }
    struct conn_track *t = *socket_context;
    if (!t)
        return;
    pthread_mutex_lock(&h->track_lock);
    if (t->prev)
        t->prev->next = t->next;
    else
        h->tracks = t->next;
    if (t->next)
        t->next->prev = t->prev;
    pthread_mutex_unlock(&h->track_lock);
    free(t);
    *socket_context = NULL;
}

/* The track is looked up each time rather than kept with the request: it
 * goes away with the connection, whatever order MHD reports the two in. */
static void track_receiving(struct cj_http *h, struct MHD_Connection *connection, bool receiving)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct conn_track *t = info ? info->socket_context : NULL;
    if (!t)
        return;
    pthread_mutex_lock(&h->track_lock);
    t->receiving = receiving;
    t->since_ms = now_ms();
    pthread_mutex_unlock(&h->track_lock);
}

static void sweep(struct cj_http *h)
{
    double limit = (double)h->config->connection_timeout_s * 1e3;
    double now = now_ms();
    unsigned cut = 0;
    pthread_mutex_lock(&h->track_lock);
    for (struct conn_track *t = h->tracks; t; t = t->next) {
        if (t->receiving && !t->cut && now - t->since_ms > limit) {
            /* Failure means the socket is already going away. */
            (void)shutdown(t->fd, SHUT_RDWR);
            t->cut = true;
            cut++;
        }
    }
    pthread_mutex_unlock(&h->track_lock);
    if (cut == 0)
        return;
    struct cj_log_line line;
    cj_log_begin(&line, "warning", "connection_timeout");
    cj_log_int(&line, "connections", cut);
    cj_log_int(&line, "timeout_s", h->config->connection_timeout_s);
    cj_log_end(&line);
    for (unsigned i = 0; i < cut; i++)
        cj_metrics_request(h->metrics, "timeout", false, limit / 1e3);
}

static void *sweeper_main(void *arg)
{
    struct cj_http *h = arg;
    pthread_mutex_lock(&h->lock);
    while (!h->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&h->sweep_cv, &h->lock, &until);
        if (h->stopping)
            break;
        pthread_mutex_unlock(&h->lock);
        sweep(h);
        pthread_mutex_lock(&h->lock);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

/* ---- executions ---- */

static void set_answer(struct request *r, unsigned status, const char *outcome, struct cj_buf *out)
{
    r->body = cj_buf_steal(out, &r->body_len);
    r->status = r->body ? status : MHD_HTTP_INTERNAL_SERVER_ERROR;
    r->outcome = r->body ? outcome : "failed.memory";
}

static void set_error_answer(struct request *r, unsigned status, const char *outcome,
                             const char *message)
{
    cleanup_buf struct cj_buf out;
    cj_buf_init(&out, 0);
    /* Without an answer, the resumed handler sends a short one itself. */
    if (error_json(&out, status, message) == 0)
        set_answer(r, status, outcome, &out);
}

/* Runs on a worker thread; the connection stays suspended until it returns. */
static void execute(struct cj_http *h, struct request *r)
{
    const struct cj_limits *limits =
        cj_config_limits_for(h->config, r->payload.limit_overrides_context);
    const char *zip_data;
    size_t zip_len;
    size_t n_files = cj_form_zip(r->form, &zip_data, &zip_len) ? 1 : 0;
    struct cj_file zip = {
        .name = CJ_PYTHON_LIB_ZIP, .data = n_files ? zip_data : NULL, .len = n_files ? zip_len : 0};
    struct cj_exec_request request = {
        .code = r->payload.code,
        .code_len = r->payload.code_len,
        .globals_json = r->payload.globals_json,
        .globals_len = r->payload.globals_len,
        .python_path = (const char *const *)r->payload.python_path,
        .n_python_path = r->payload.n_python_path,
        .files = &zip,
        .n_files = n_files,
        .limits = *limits,
    };
    struct cj_exec_result result;
    cj_error err = {0};
    int rc = r->environment ? cj_environment_execute(r->environment, &request, &result, &err)
                            : h->execute(h->execute_ctx, &request, &result, &err);
    if (rc < 0) {
        r->detail = strdup(err.msg);
        set_error_answer(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "failed.execution",
                         "Codejail execution failed");
        return;
    }
    r->executed = true;
    r->exit_status = result.status;
    r->timed_out = result.timed_out;
    r->setup_ms = result.setup_ms;
    r->run_ms = result.run_ms;
    r->stdout_bytes = result.out.len;
    r->stderr_bytes = result.err.len;
    cj_metrics_sandbox_setup(h->metrics, result.setup_ms / 1e3);

    cleanup_buf struct cj_buf out;
    cj_buf_init(&out, 0);
    bool succeeded;
    rc = cj_result_render(&result, r->payload.globals_json, r->payload.globals_len, &out,
                          &succeeded, &err);
    cj_exec_result_free(&result);
    if (rc < 0) {
        r->detail = strdup(err.msg);
        set_error_answer(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "failed.memory",
                         "Codejail execution failed");
        return;
    }
    set_answer(r, MHD_HTTP_OK, succeeded ? "executed.success" : "executed.error", &out);
}

static void publish_load(struct cj_http *h)
{
    cj_metrics_load(h->metrics, h->running, h->queued);
}

static void *worker_main(void *arg)
{
    struct cj_http *h = arg;
    pthread_mutex_lock(&h->lock);
    for (;;) {
        while (!h->head && !h->stopping)
            pthread_cond_wait(&h->work_cv, &h->lock);
        if (!h->head)
            break;
        struct request *r = h->head;
        h->head = r->next;
        if (!h->head)
            h->tail = NULL;
        h->queued--;
        h->running++;
        publish_load(h);
        pthread_mutex_unlock(&h->lock);

        execute(h, r);
        /* r belongs to MHD again from here on: once resumed, the handler
         * sends the answer and the completion callback frees r. */
        MHD_resume_connection(r->connection);

        pthread_mutex_lock(&h->lock);
        h->running--;
        publish_load(h);
        pthread_cond_broadcast(&h->idle_cv);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

/* Suspends the connection and queues the request, or refuses it when every
 * slot and queue place is taken. Suspension comes first: a worker may pick
 * the request up and resume it before this handler has returned. */
static enum MHD_Result admit(struct cj_http *h, struct request *r)
{
    pthread_mutex_lock(&h->lock);
    if (h->draining) {
        pthread_mutex_unlock(&h->lock);
        return send_shutting_down(r);
    }
    if (h->running + h->queued >= h->slots + h->queue_capacity) {
        pthread_mutex_unlock(&h->lock);
        return send_overloaded(r);
    }
    r->stage = STAGE_QUEUED;
    MHD_suspend_connection(r->connection);
    if (h->tail)
        h->tail->next = r;
    else
        h->head = r;
    h->tail = r;
    h->queued++;
    publish_load(h);
    pthread_cond_signal(&h->work_cv);
    pthread_mutex_unlock(&h->lock);
    return MHD_YES;
}

/* ---- the code-exec request, in the Python service's order ---- */

static bool payload_refusal_after_files(const char *reason)
{
    /* cj_payload_parse checks unsafely (and then the code's encoding) after
     * python_path; the service checks file names between the two. */
    return strcmp(reason, "invalid.unsafely") == 0 || strcmp(reason, "invalid.code") == 0;
}

/* Whether an uploaded file's name is refused; err gets the message. */
static bool file_refused(const char *name, cj_error *err)
{
    return name && cj_payload_check_file_name(name, err) < 0;
}

/* python_path names python_lib.zip but none was uploaded: the reference
 * fails to copy it into the sandbox and answers as for an execution that
 * failed, without running anything. */
static bool upload_missing(const struct request *r)
{
    const char *data;
    size_t len;
    return r->payload.n_python_path > 0 && !cj_form_zip(r->form, &data, &len);
}

static enum MHD_Result send_not_run(struct request *r)
{
    cleanup_buf struct cj_buf out;
    cj_buf_init(&out, 0);
    cj_error err = {0};
    if (cj_result_render_not_run(r->payload.globals_json, r->payload.globals_len, &out, &err) < 0)
        return send_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "failed.memory", "Internal error",
                          NULL);
    r->detail = strdup("python_path names " CJ_PYTHON_LIB_ZIP " but no such file was uploaded");
    return send_buf(r, MHD_HTTP_OK, "not_run.missing_upload", CONTENT_TYPE_JSON, &out, NULL);
}

static enum MHD_Result send_unsafe(struct request *r)
{
    return send_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "disabled.safety_checks_failed",
                      "Codejail service is not correctly configured", NULL);
}

static enum MHD_Result body_done(struct cj_http *h, struct request *r)
{
    pthread_mutex_lock(&h->lock);
    bool draining = h->draining;
    pthread_mutex_unlock(&h->lock);
    if (draining)
        return send_shutting_down(r);
    if (!h->config->enabled)
        return send_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "disabled.feature_switch",
                          "Codejail service not enabled", NULL);
    /* Before the form, as the reference checks: when no environment may
     * run code, nothing in the request matters. */
    if (h->environments ? !cj_environments_any_allowed(h->environments) : !h->selfcheck_ok)
        return send_unsafe(r);
    struct cj_form_refusal refusal;
    int finished = cj_form_finish(r->form, &refusal);
    /* Too long beats too many at once: retrying would not help it. */
    if (finished < 0 && refusal.status == MHD_HTTP_CONTENT_TOO_LARGE)
        return send_error(r, refusal.status, refusal.reason, refusal.err.msg, NULL);
    if (r->over_budget)
        return send_overloaded(r);
    if (finished < 0)
        return send_error(r, refusal.status, refusal.reason, refusal.err.msg, NULL);
    size_t len;
    const char *text = cj_form_payload(r->form, &len);
    if (!text)
        return send_error(r, MHD_HTTP_BAD_REQUEST, "invalid.payload.missing",
                          "Missing 'payload' parameter in POST body", NULL);

    const char *other_file = cj_form_other_file(r->form);
    const char *reason = NULL;
    cj_error err = {0};
    if (cj_payload_parse(text, len, &r->payload, &reason, &err) < 0) {
        if (!reason || strcmp(reason, "internal") == 0) {
            r->detail = strdup(err.msg);
            return send_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "failed.memory", "Internal error",
                              NULL);
        }
        cj_error file_err = {0};
        if (payload_refusal_after_files(reason) && file_refused(other_file, &file_err))
            return send_error(r, MHD_HTTP_BAD_REQUEST, "invalid.files", file_err.msg, NULL);
        return send_error(r, MHD_HTTP_BAD_REQUEST, reason, err.msg, NULL);
    }
    r->have_payload = true;
    cj_form_drop_payload(r->form);
    if (file_refused(other_file, &err))
        return send_error(r, MHD_HTTP_BAD_REQUEST, "invalid.files", err.msg, NULL);
    if (h->environments) {
        r->environment =
            cj_environments_acquire(h->environments, r->payload.limit_overrides_context);
        if (!cj_environment_allowed(r->environment))
            return send_unsafe(r);
    }
    if (upload_missing(r))
        return send_not_run(r);
    return admit(h, r);
}

/* ---- routing ---- */

static enum route route_of(const char *url)
{
    if (strcmp(url, PATH_CODE_EXEC) == 0)
        return ROUTE_CODE_EXEC;
    if (strcmp(url, "/health") == 0 || strcmp(url, "/health/") == 0)
        return ROUTE_HEALTH;
    if (strcmp(url, "/metrics") == 0)
        return ROUTE_METRICS;
    if (strcmp(url, "/health/live") == 0 || strcmp(url, "/health/live/") == 0)
        return ROUTE_LIVE;
    return ROUTE_NOT_FOUND;
}

static enum MHD_Result send_not_allowed(struct request *r, const char *method, const char *allow)
{
    const char *const headers[] = {MHD_HTTP_HEADER_ALLOW, allow, NULL};
    char message[128];
    snprintf(message, sizeof message, "Method \"%.64s\" not allowed.", method);
    return send_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", message, headers);
}

/* The framework's answer to OPTIONS (its SimpleMetadata): the view's name,
 * a description, and the media types it renders and parses. */
static enum MHD_Result send_options(struct request *r)
{
    static char metadata[] =
        "{\"name\": \"Code Exec\", \"description\": \"Runs untrusted Python code in a "
        "sandbox for a remote caller (the LMS or CMS).\", \"renders\": [\"application/json\"], "
        "\"parses\": [\"application/x-www-form-urlencoded\", \"multipart/form-data\"]}";
    static const char *const allow[] = {MHD_HTTP_HEADER_ALLOW, CODE_EXEC_METHODS, NULL};
    return send_body(r, MHD_HTTP_OK, "options", CONTENT_TYPE_JSON, metadata, sizeof metadata - 1,
                     MHD_RESPMEM_PERSISTENT, allow);
}

static enum MHD_Result send_metrics(struct cj_http *h, struct request *r)
{
    cleanup_buf struct cj_buf out;
    cj_buf_init(&out, 0);
    struct cj_metrics_environment fixed = {.name = "default", .selfcheck = h->selfcheck};
    if (cj_metrics_render(h->metrics, &out) < 0 ||
        (h->environments ? cj_environments_render_metrics(h->environments, &out)
                         : cj_metrics_render_environments(&fixed, 1, &out)) < 0)
        return send_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "failed.memory", "Internal error",
                          NULL);
    return send_buf(r, MHD_HTTP_OK, "metrics", CJ_METRICS_CONTENT_TYPE, &out, NULL);
}

static bool is_read(const char *method)
{
    return strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
}

static struct request *request_new(struct MHD_Connection *connection, const char *url,
                                   const char *method)
{
    struct request *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->path = strdup(url);
    if (!r->path) {
        free(r);
        return NULL;
    }
    r->connection = connection;
    r->start_ms = now_ms();
    r->route = route_of(url);
    snprintf(r->method, sizeof r->method, "%s", method);
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = info ? info->client_addr : NULL;
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, r->remote,
                  sizeof r->remote);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, r->remote,
                  sizeof r->remote);
    return r;
}

static void request_free(struct request *r)
{
    cj_environment_release(r->environment);
    cj_form_free(r->form);
    cj_payload_free(&r->payload);
    free(r->body);
    free(r->detail);
    free(r->path);
    free(r);
}

/* Counts n more body bytes against the budget, or marks the request as
 * over it and drops what its form kept. Runs on MHD's thread only. */
static void charge(struct cj_http *h, struct request *r, size_t n)
{
    if (r->over_budget)
        return;
    if (n > h->body_budget - h->body_bytes) {
        r->over_budget = true;
        cj_form_abandon(r->form);
        return;
    }
    h->body_bytes += n;
    r->charged += n;
}

/* Readiness or liveness, as the daemon's health sees them now. */
static enum MHD_Result send_health(struct cj_http *h, struct request *r)
{
    cleanup_buf struct cj_buf out;
    cj_buf_init(&out, 0);
    bool ok;
    int rc = r->route == ROUTE_LIVE ? cj_environments_liveness(h->environments, &out, &ok)
                                    : cj_environments_readiness(h->environments, &out, &ok);
    if (rc < 0)
        return send_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "failed.memory", "Internal error",
                          NULL);
    const char *outcome = r->route == ROUTE_LIVE ? (ok ? "live.ok" : "live.stuck")
                                                 : (ok ? "health.ok" : "health.unavailable");
    return send_buf(r, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, outcome, CONTENT_TYPE_JSON,
                    &out, NULL);
}

/* Health, metrics, 404 and 405: answers that need no request body. */
static enum MHD_Result answer_simple(struct cj_http *h, struct request *r)
{
    switch (r->route) {
    case ROUTE_HEALTH:
    case ROUTE_LIVE:
        if (!is_read(r->method))
            return send_not_allowed(r, r->method, "GET, HEAD");
        if (h->environments)
            return send_health(h, r);
        return send_body(r, h->selfcheck_ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                         h->selfcheck_ok ? "health.ok" : "health.unavailable", CONTENT_TYPE_JSON,
                         h->health_body, h->health_len, MHD_RESPMEM_PERSISTENT, NULL);
    case ROUTE_METRICS:
        if (!is_read(r->method))
            return send_not_allowed(r, r->method, "GET, HEAD");
        return send_metrics(h, r);
    case ROUTE_CODE_EXEC:
        if (strcmp(r->method, MHD_HTTP_METHOD_OPTIONS) == 0)
            return send_options(r);
        return send_not_allowed(r, r->method, CODE_EXEC_METHODS);
    case ROUTE_NOT_FOUND:
        break;
    }
    return send_error(r, MHD_HTTP_NOT_FOUND, "not_found", "Not found", NULL);
}

static bool has_body(struct MHD_Connection *connection)
{
    const char *length =
        MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return (length && strcmp(length, "0") != 0) ||
           MHD_lookup_connection_value(connection, MHD_HEADER_KIND,
                                       MHD_HTTP_HEADER_TRANSFER_ENCODING);
}

static enum MHD_Result first_call(struct cj_http *h, struct request *r, const char *method)
{
    const char *framing = cj_http_framing_problem(r->connection);
    if (framing)
        return send_error(r, MHD_HTTP_BAD_REQUEST, "invalid.framing", framing, close_header);
    if (r->route != ROUTE_CODE_EXEC || strcmp(method, MHD_HTTP_METHOD_POST) != 0) {
        /* Answered on the next call, when MHD knows the request is complete:
         * an answer queued now would cost the connection its keep-alive. A
         * request with an unwanted body is answered at once instead, and
         * MHD closes the connection rather than read that body. */
        if (has_body(r->connection))
            return answer_simple(h, r);
        r->stage = STAGE_DEFERRED;
        return MHD_YES;
    }
    struct cj_form_limits limits = {
        .max_body_bytes = h->config->max_body_bytes,
        .max_fields = h->config->max_fields,
    };
    struct cj_form_refusal refusal;
    if (cj_form_begin(r->connection, &limits, &r->form, &refusal) < 0)
        return send_error(r, refusal.status, refusal.reason, refusal.err.msg, NULL);
    /* The body is charged as its bytes arrive, not by the length it
     * declares: a few connections that declare large bodies and send
     * nothing would otherwise hold the whole budget. */
    r->stage = STAGE_BODY;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *connection, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct cj_http *h = cls;
    struct request *r = *con_cls;
    if (!r) {
        r = request_new(connection, url, method);
        if (!r)
            return MHD_NO;
        *con_cls = r;
        pthread_mutex_lock(&h->lock);
        h->active++;
        pthread_mutex_unlock(&h->lock);
        enum MHD_Result rc = first_call(h, r, method);
        if (r->stage == STAGE_ANSWERED)
            track_receiving(h, r->connection, false);
        return rc;
    }
    switch (r->stage) {
    case STAGE_ANSWERED:
        /* Body bytes after an early answer are not wanted. */
        *upload_data_size = 0;
        return MHD_YES;
    case STAGE_DEFERRED:
        *upload_data_size = 0;
        track_receiving(h, r->connection, false);
        return answer_simple(h, r);
    case STAGE_BODY:
        if (*upload_data_size > 0) {
            size_t n = *upload_data_size;
            *upload_data_size = 0;
            charge(h, r, n);
            /* Over the budget, the form only counts (for a 413). */
            cj_form_feed(r->form, upload_data, n);
            return MHD_YES;
        }
        track_receiving(h, r->connection, false);
        return body_done(h, r);
    case STAGE_QUEUED:
        break;
    }
    /* Resumed after the execution: the worker left the answer. */
    pthread_mutex_lock(&h->lock);
    bool draining = h->draining;
    pthread_mutex_unlock(&h->lock);
    char *body = r->body;
    r->body = NULL;
    if (!body)
        return send_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "failed.memory", "Internal error",
                          NULL);
    return send_body(r, r->status, r->outcome, CONTENT_TYPE_JSON, body, r->body_len,
                     MHD_RESPMEM_MUST_FREE, draining ? close_header : NULL);
}

static void on_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    (void)connection;
    struct cj_http *h = cls;
    struct request *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    double duration_ms = now_ms() - r->start_ms;
    bool answered = r->stage == STAGE_ANSWERED;
    const char *outcome = answered ? r->outcome : "aborted";
    cj_metrics_request(h->metrics, outcome, r->route == ROUTE_CODE_EXEC, duration_ms / 1e3);

    bool with_code = h->config->log_code && r->have_payload;
    const char *zip_data;
    size_t zip_len = 0;
    if (r->form && !cj_form_zip(r->form, &zip_data, &zip_len))
        zip_len = 0;
    struct cj_access_entry entry = {
        .method = r->method,
        .path = r->path,
        .remote = r->remote[0] ? r->remote : NULL,
        .status = answered ? r->status : 0,
        .outcome = outcome,
        .duration_ms = duration_ms,
        .slug = r->payload.slug,
        .limit_overrides_context = r->payload.limit_overrides_context,
        .environment = r->environment ? cj_environment_name(r->environment) : NULL,
        .executed = r->executed,
        .exit_status = r->exit_status,
        .timed_out = r->timed_out,
        .setup_ms = r->setup_ms,
        .run_ms = r->run_ms,
        .code_bytes = r->payload.code_len,
        .globals_bytes = r->payload.globals_len,
        .upload_bytes = zip_len,
        .stdout_bytes = r->stdout_bytes,
        .stderr_bytes = r->stderr_bytes,
        .response_bytes = r->response_bytes,
        .detail = r->detail                                     ? r->detail
                  : code == MHD_REQUEST_TERMINATED_COMPLETED_OK ? NULL
                                                                : "connection ended early",
        .code = with_code ? r->payload.code : NULL,
        .code_len = r->payload.code_len,
        .globals = with_code ? r->payload.globals_json : NULL,
        .globals_len = r->payload.globals_len,
    };
    cj_access_log(&entry);
    track_receiving(h, r->connection, true);
    h->body_bytes -= r->charged;
    request_free(r);

    pthread_mutex_lock(&h->lock);
    h->active--;
    pthread_cond_broadcast(&h->idle_cv);
    pthread_mutex_unlock(&h->lock);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char message[512];
    vsnprintf(message, sizeof message, fmt, ap);
    size_t len = strlen(message);
    while (len > 0 && (message[len - 1] == '\n' || message[len - 1] == ' '))
        message[--len] = '\0';
    cj_log_message("warning", "http_server", message);
}

/* ---- start and stop ---- */

static int build_health(struct cj_http *h, const struct cj_selfcheck *selfcheck, cj_error *err)
{
    cleanup_buf struct cj_buf detail;
    cj_buf_init(&detail, 0);
    cleanup_buf struct cj_buf out;
    cj_buf_init(&out, 0);
    /* The API's {"status": ...} first, then the check's own members
     * ("ok", "layers", "checks"), spliced in after its opening brace. */
    if (cj_selfcheck_to_json(selfcheck, &detail) < 0 || detail.len < 2 || detail.data[0] != '{' ||
        cj_buf_printf(&out, "{\"status\": \"%s\", %s", selfcheck->ok ? "OK" : "UNAVAILABLE",
                      detail.data + 1) < 0)
        return cj_fail(err, ENOMEM, "render health detail");
    h->health_body = cj_buf_steal(&out, &h->health_len);
    if (!h->health_body)
        return cj_fail(err, ENOMEM, "render health detail");
    return 0;
}

static int listen_address(const struct cj_config *config, struct sockaddr_storage *addr,
                          socklen_t *len, cj_error *err)
{
    struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM};
    struct addrinfo *found = NULL;
    char port[16];
    snprintf(port, sizeof port, "%u", config->port);
    int rc = getaddrinfo(config->listen, port, &hints, &found);
    if (rc != 0)
        return cj_fail(err, EINVAL, "listen address %s: %s", config->listen, gai_strerror(rc));
    memcpy(addr, found->ai_addr, found->ai_addrlen);
    *len = found->ai_addrlen;
    freeaddrinfo(found);
    return 0;
}

static unsigned online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

static int init_sync(struct cj_http *h, cj_error *err)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0 || pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0)
        return cj_fail(err, EINVAL, "condition variable attributes");
    pthread_mutex_t *mutexes[] = {&h->lock, &h->track_lock};
    pthread_cond_t *conds[] = {&h->work_cv, &h->idle_cv, &h->sweep_cv};
    size_t n_mutexes = 0, n_conds = 0;
    int rc = 0;
    while (rc == 0 && n_mutexes < 2 && (rc = pthread_mutex_init(mutexes[n_mutexes], NULL)) == 0)
        n_mutexes++;
    while (rc == 0 && n_conds < 3 && (rc = pthread_cond_init(conds[n_conds], &attr)) == 0)
        n_conds++;
    pthread_condattr_destroy(&attr);
    if (rc == 0)
        return 0;
    /* release() destroys all five; a partial set is undone here. */
    while (n_conds > 0)
        pthread_cond_destroy(conds[--n_conds]);
    while (n_mutexes > 0)
        pthread_mutex_destroy(mutexes[--n_mutexes]);
    errno = rc;
    return cj_fail_errno(err, "initialize locks");
}

static void stop_threads(struct cj_http *h)
{
    pthread_mutex_lock(&h->lock);
    h->stopping = true;
    pthread_cond_broadcast(&h->work_cv);
    pthread_cond_broadcast(&h->sweep_cv);
    pthread_mutex_unlock(&h->lock);
    for (unsigned i = 0; i < h->n_workers; i++)
        pthread_join(h->workers[i], NULL);
    h->n_workers = 0;
    if (h->sweeper_running)
        pthread_join(h->sweeper, NULL);
    h->sweeper_running = false;
}

static void release(struct cj_http *h)
{
    stop_threads(h);
    if (h->daemon)
        MHD_stop_daemon(h->daemon);
    free(h->workers);
    free(h->health_body);
    cj_metrics_free(h->metrics);
    pthread_cond_destroy(&h->work_cv);
    pthread_cond_destroy(&h->idle_cv);
    pthread_cond_destroy(&h->sweep_cv);
    pthread_mutex_destroy(&h->lock);
    pthread_mutex_destroy(&h->track_lock);
    free(h);
}

static int start_threads(struct cj_http *h, cj_error *err)
{
    h->workers = calloc(h->slots, sizeof *h->workers);
    if (!h->workers)
        return cj_fail_errno(err, "allocate workers");
    for (; h->n_workers < h->slots; h->n_workers++) {
        int rc = pthread_create(&h->workers[h->n_workers], NULL, worker_main, h);
        if (rc != 0) {
            errno = rc;
            return cj_fail_errno(err, "start worker thread");
        }
    }
    if (!h->external_loop) {
        int rc = pthread_create(&h->sweeper, NULL, sweeper_main, h);
        if (rc != 0) {
            errno = rc;
            return cj_fail_errno(err, "start sweeper thread");
        }
        h->sweeper_running = true;
    }
    return 0;
}

/* Threading model. MHD runs one internal thread with epoll
 * (MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL) that does all network
 * I/O, parses forms and payloads, and answers /health, /metrics and every
 * refusal itself. An execution never runs there: an admitted request's
 * connection is suspended (MHD_suspend_connection) and queued for a fixed
 * pool of max_concurrency worker threads (0: one per core), each running one
 * execution at a time and resuming the connection with the answer. So a
 * full execution load cannot starve health checks or metrics scrapes, and
 * the queue is explicit: at most queue_size requests wait beyond the running
 * ones; the next gets 503 with Retry-After. Thread-per-connection was the
 * alternative, but there every waiting request holds a thread and the queue
 * bound would be implicit in a connection limit.
 *
 * Slow clients: MHD's idle time-out (connection_timeout_s) plus the receive
 * deadline above; a connection limit of slots + queue + CONNECTION_HEADROOM;
 * and a 64 KiB buffer per connection, which bounds the request headers.
 * Memory: a body is at most max_body_bytes (413 beyond), and the bodies of
 * all connections together at most BODY_BUDGET_PER_SLOT of those per slot
 * (503 beyond). */
int cj_http_start(const struct cj_http_options *options, struct cj_http **http, cj_error *err)
{
    const struct cj_config *config = options->config;
    struct cj_http *h = calloc(1, sizeof *h);
    if (!h)
        return cj_fail_errno(err, "allocate HTTP server");
    if (init_sync(h, err) < 0) {
        free(h);
        return -1;
    }
    h->config = config;
    h->execute = options->execute;
    h->execute_ctx = options->execute_ctx;
    h->external_loop = options->external_loop;
    h->environments = options->environments;
    h->selfcheck = options->selfcheck;
    h->selfcheck_ok = !h->environments && options->selfcheck->ok && options->execute;
    h->slots = config->max_concurrency ? config->max_concurrency : online_cpus();
    h->queue_capacity = config->queue_size;
    h->port = config->port;
    h->body_budget = config->max_body_bytes * BODY_BUDGET_PER_SLOT * h->slots;
    if (h->body_budget / BODY_BUDGET_PER_SLOT / h->slots != config->max_body_bytes)
        h->body_budget = SIZE_MAX;

    if (cj_metrics_new(&h->metrics, err) < 0 ||
        (!h->environments && build_health(h, options->selfcheck, err) < 0) ||
        start_threads(h, err) < 0) {
        release(h);
        return -1;
    }
    cj_metrics_capacity(h->metrics, h->slots, h->queue_capacity);

    unsigned connection_limit = h->slots + h->queue_capacity + CONNECTION_HEADROOM;
    unsigned flags = MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    struct sockaddr_storage addr = {0};
    socklen_t addr_len = 0;
    if (h->external_loop) {
        flags |= MHD_USE_NO_LISTEN_SOCKET;
    } else {
        if (listen_address(config, &addr, &addr_len, err) < 0) {
            release(h);
            return -1;
        }
        flags |= MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
        if (addr.ss_family == AF_INET6)
            flags |= MHD_USE_IPv6;
    }
    /* Options as an array: the listening address is only there with a socket. */
    struct MHD_OptionItem options_list[] = {
        {MHD_OPTION_CONNECTION_LIMIT, connection_limit, NULL},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, connection_limit - CONNECTION_RESERVE, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, config->connection_timeout_s, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, CONNECTION_MEMORY, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, h},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, h},
        {h->external_loop ? MHD_OPTION_END : MHD_OPTION_SOCK_ADDR, 0, &addr},
        {MHD_OPTION_END, 0, NULL},
    };
    /* The logger first: MHD logs to stderr by itself until it is set. */
    h->daemon = MHD_start_daemon(flags, (uint16_t)config->port, NULL, NULL, on_request, h,
                                 MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h, MHD_OPTION_ARRAY,
                                 options_list, MHD_OPTION_END);
    if (!h->daemon) {
        cj_fail(err, EADDRNOTAVAIL, "cannot serve HTTP on %s port %u (address in use?)",
                config->listen ? config->listen : "-", config->port);
        release(h);
        return -1;
    }
    if (!h->external_loop) {
        const union MHD_DaemonInfo *info =
            MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
        if (info)
            h->port = info->port;
    }
    *http = h;
    return 0;
}

unsigned cj_http_port(const struct cj_http *h)
{
    return h->port;
}

struct MHD_Daemon *cj_http_daemon(struct cj_http *h)
{
    return h->daemon;
}

unsigned cj_http_busy(struct cj_http *h)
{
    pthread_mutex_lock(&h->lock);
    unsigned busy = h->queued + h->running;
    pthread_mutex_unlock(&h->lock);
    return busy;
}

void cj_http_stop(struct cj_http *h, unsigned grace_s)
{
    pthread_mutex_lock(&h->lock);
    h->draining = true;
    pthread_mutex_unlock(&h->lock);
    if (!h->external_loop) {
        MHD_socket listener = MHD_quiesce_daemon(h->daemon);
        /* Closed now, new connections are refused at once instead of
         * waiting in the backlog until the process exits. */
        if (listener != MHD_INVALID_SOCKET)
            close(listener);
    }
    pthread_mutex_lock(&h->lock);
    while (h->queued + h->running > 0)
        pthread_cond_wait(&h->idle_cv, &h->lock);
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += grace_s;
    while (!h->external_loop && h->active > 0 &&
           pthread_cond_timedwait(&h->idle_cv, &h->lock, &until) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&h->lock);
    release(h);
}
