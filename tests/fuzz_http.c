/* Fuzz target: each input is raw bytes a client sends to the daemon.
 *
 * The real libmicrohttpd daemon and http_api run in-process without a
 * listening socket (external MHD_run loop); every input goes in through one
 * end of a socketpair handed over with MHD_add_connection, and whatever comes
 * back is checked: every answer with a Content-Type must be the API's JSON
 * (an object, in Python's dialect) or the metrics text, and answers without
 * one may only be libmicrohttpd's own protocol errors. Nothing really runs:
 * a fake executor (http_api's execution seam) returns canned results that
 * take each of the result paths. A request that never ends in an answer or
 * a closed connection is reported as a hang.
 *
 * Built with clang and -fsanitize=fuzzer when CODEJAIL_FUZZ is on; otherwise
 * with CJ_FUZZ_REPLAY as a program that runs the corpus (files or
 * directories given as arguments) once, for ctest; FUZZ_HTTP_SHOW=1 in the
 * environment prints each answer. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access_log.h"
#include "cleanup.h"
#include "config.h"
#include "http_api.h"
#include "pyjson.h"
#include "result.h"
#include "selfcheck.h"

#define MAX_RESPONSE (4u << 20)
#define MAX_ROUNDS   20000 /* MHD_run calls for one input before it counts as a hang */
#define IDLE_ROUNDS  4     /* rounds without progress that end an input */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct cj_http *http;
static struct cj_config config;
static struct cj_limit_override override;
static struct cj_selfcheck selfcheck;
static bool show; /* replay with FUZZ_HTTP_SHOW set: print what came back */

static void die(const char *what)
{
    fprintf(stderr, "fuzz_http: %s\n", what);
    abort();
}

/* The canned results: the code's length picks success (the globals echoed,
 * NaN and all), an exception, corrupted stdout, or an engine failure. */
static int fake_execute(void *ctx, const struct cj_exec_request *request,
                        struct cj_exec_result *result, cj_error *err)
{
    (void)ctx;
    memset(result, 0, sizeof *result);
    if (request->code_len % 4 == 3)
        return cj_fail(err, EIO, "fake engine failure");
    cj_buf_init(&result->out, CJ_STDOUT_CAP_DEFAULT);
    cj_buf_init(&result->err, CJ_STDERR_CAP_DEFAULT);
    int rc = 0;
    switch (request->code_len % 4) {
    case 0:
        rc = cj_buf_append(&result->out, request->globals_json, request->globals_len);
        break;
    case 1:
        result->status = 1;
        rc = cj_buf_append(&result->err, request->code, request->code_len);
        for (size_t i = 0; i < request->n_files && rc == 0; i++)
            rc = cj_buf_append(&result->err, request->files[i].data, request->files[i].len);
        break;
    default:
        rc = cj_buf_append(&result->out, request->code, request->code_len);
        break;
    }
    if (rc < 0) {
        cj_exec_result_free(result);
        return cj_fail(err, ENOMEM, "fake result");
    }
    result->setup_ms = 1;
    result->run_ms = 1;
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (devnull < 0)
        die("open /dev/null");
    cj_log_set_fd(devnull);

    override = (struct cj_limit_override){.name = "course", .limits = cj_limits_default};
    config = (struct cj_config){
        .profile = CJ_PROFILE_DEVELOPMENT,
        .enabled = true,
        .limits = cj_limits_default,
        .overrides = &override,
        .n_overrides = 1,
        .max_concurrency = 1,
        .queue_size = 2,
        .max_body_bytes = 2048, /* within reach of libFuzzer's default input size */
        .max_fields = 8,
        .connection_timeout_s = 30,
        .log_code = true, /* the logging of code and globals is covered too */
    };
    selfcheck.ok = true;
    struct cj_http_options options = {
        .config = &config,
        .selfcheck = &selfcheck,
        .execute = fake_execute,
        .external_loop = true,
    };
    cj_error err = {0};
    if (cj_http_start(&options, &http, &err) < 0)
        die(err.msg);
    return 0;
}

static void check_body(const char *type, unsigned status, const char *body, size_t len)
{
    if (!type) {
        /* libmicrohttpd's own answers to broken HTTP carry no type. */
        if (status != 400 && status != 413 && status != 414 && status != 431 && status != 500 &&
            status != 501 && status != 505)
            die("untyped answer with an unexpected status");
        return;
    }
    if (strcmp(type, CJ_METRICS_CONTENT_TYPE) == 0) {
        if (status != 200)
            die("metrics type on a failure");
        return;
    }
    if (strcmp(type, "application/json") != 0)
        die("answer of another content type");
    struct cj_json_span span;
    cj_error err = {0};
    if (cj_pyjson_validate(body, len, CJ_RESULT_MAX_DEPTH + 8, &span, &err) < 0 ||
        span.type != CJ_JSON_OBJECT)
        die("answer is not a JSON object");
}

/* Walks the answers in out; bodies of answers to HEAD are absent, so an
 * input that sends HEAD is checked up to its first answer's headers. */
static void check_answers(const char *out, size_t len, bool has_head)
{
    size_t pos = 0;
    while (pos < len) {
        const char *start = out + pos;
        const char *end = memmem(start, len - pos, "\r\n\r\n", 4);
        if (!end)
            return; /* cut off by a closed connection */
        unsigned status = 0;
        if (sscanf(start, "HTTP/1.%*1[01] %3u", &status) != 1)
            die("answer without a status line");
        const char *type = NULL;
        char type_buf[128];
        size_t content_length = 0;
        for (const char *line = memchr(start, '\n', (size_t)(end - start)); line && line < end;
             line = memchr(line + 1, '\n', (size_t)(end - line))) {
            const char *h = line + 1;
            if (strncasecmp(h, "Content-Type: ", 14) == 0) {
                const char *eol = memchr(h, '\r', (size_t)(end + 2 - h));
                if (!eol)
                    die("header line without an end");
                snprintf(type_buf, sizeof type_buf, "%.*s", (int)(eol - h - 14), h + 14);
                type = type_buf;
            } else if (strncasecmp(h, "Content-Length: ", 16) == 0) {
                content_length = strtoul(h + 16, NULL, 10);
            }
        }
        pos = (size_t)(end + 4 - out);
        if (status == 100)
            continue;
        if (has_head)
            return;
        if (content_length > len - pos)
            return;
        check_body(type, status, out + pos, content_length);
        pos += content_length;
    }
}

static unsigned connections(void)
{
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(cj_http_daemon(http), MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return info ? info->num_connections : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct MHD_Daemon *daemon = cj_http_daemon(http);
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair) < 0)
        die("socketpair");
    cleanup_close int client = pair[1];
    struct sockaddr_in peer = {
        .sin_family = AF_INET, .sin_port = htons(40000), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    /* MHD owns the server end from here on, whatever the result. */
    if (MHD_add_connection(daemon, pair[0], (struct sockaddr *)&peer, sizeof peer) != MHD_YES)
        die("MHD_add_connection");

    cleanup_free char *out = malloc(MAX_RESPONSE + 1);
    if (!out)
        die("malloc");
    size_t out_len = 0, written = 0;
    int idle = 0, last_queued = -1;
    for (int round = 0;; round++) {
        if (round == MAX_ROUNDS)
            die("hang: no answer and no close");
        bool progress = false;
        if (written < size) {
            ssize_t n = write(client, data + written, size - written);
            if (n > 0) {
                written += (size_t)n;
                progress = true;
            }
        }
        if (MHD_run(daemon) != MHD_YES)
            die("MHD_run");
        ssize_t n = -1;
        while (out_len < MAX_RESPONSE &&
               (n = read(client, out + out_len, MAX_RESPONSE - out_len)) > 0) {
            out_len += (size_t)n;
            progress = true;
        }
        if (n == 0)
            break; /* the daemon closed the connection */
        int queued = 0;
        if (ioctl(client, SIOCOUTQ, &queued) == 0 && queued != last_queued) {
            last_queued = queued;
            progress = true;
        }
        if (cj_http_busy(http) > 0) {
            progress = true; /* a worker still has it */
            usleep(50);
        }
        idle = progress ? 0 : idle + 1;
        if (idle == IDLE_ROUNDS)
            break; /* waiting for bytes the input does not have */
    }
    out[out_len] = '\0';
    if (show)
        fprintf(stderr, "---- %zu bytes in, %zu bytes back:\n%s\n", size, out_len, out);
    check_answers(out, out_len, memmem(data, size, "HEAD", 4) != NULL);

    /* Hang up and let MHD clean the connection away before the next input. */
    close(cj_steal_fd(&client));
    for (int round = 0; connections() > 0; round++) {
        if (round == MAX_ROUNDS)
            die("connection never went away");
        if (MHD_run(daemon) != MHD_YES)
            die("MHD_run");
        if (cj_http_busy(http) > 0)
            usleep(50);
    }
    return 0;
}

#ifdef CJ_FUZZ_REPLAY
#include "fuzz_replay.h"

int main(int argc, char **argv)
{
    LLVMFuzzerInitialize(&argc, &argv);
    show = getenv("FUZZ_HTTP_SHOW") != NULL;
    int rc = cj_fuzz_replay("fuzz_http", argc, argv);
    cj_http_stop(http, 0);
    return rc;
}
#endif
