/* codejaild: the code-exec HTTP service (API.md).
 *
 *   codejaild [--config FILE] [--profile development|production] [--listen ADDR] [--port N]
 *
 * Settings are the profile's defaults, then FILE, then the environment, then
 * these flags. The profile is the flag's, else CODEJAIL_PROFILE's or the
 * file's (see config.h), else production (execution off until enabled). Start-up: load the
 * configuration, start each sandbox environment and run its safety check (execution is refused
 * while it fails; it runs again periodically and after a sandbox helper was replaced, see
 * health.h), serve. SIGHUP: load the configuration again and apply its environments and
 * context_environments (environments.h); a configuration that does not load, or whose new
 * environments do not pass their check, changes nothing (a SIGTERM that comes during a reload is
 * acted on when the reload's environments have started). SIGTERM or SIGINT: stop accepting,
 * finish and answer what was admitted, exit 0. Every log line is JSON on stderr. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "access_log.h"
#include "config.h"
#include "environments.h"
#include "http_api.h"

/* After the last execution is answered, how long clients still sending a
 * body or reading an answer may take before the connections are closed. */
#define STOP_GRACE_S 5

struct options {
    const char *config_path;
    const char *profile;
    const char *listen;
    const char *port;
    cj_layer_set without;
};

static int usage(void)
{
    fputs("usage: codejaild [--config FILE] [--profile development|production]\n"
          "                 [--listen ADDR] [--port N]\n"
#ifdef CODEJAIL_TESTING
          "                 [--without LAYER]...   (testing build: switch a layer off)\n"
#endif
          ,
          stderr);
    return 2;
}

static int parse_args(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"profile", required_argument, NULL, 'P'},
        {"listen", required_argument, NULL, 'l'},
        {"port", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {"without", required_argument, NULL, 'x'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->config_path = optarg;
            break;
        case 'P':
            o->profile = optarg;
            break;
        case 'l':
            o->listen = optarg;
            break;
        case 'p':
            o->port = optarg;
            break;
#ifdef CODEJAIL_TESTING
        case 'x': {
            enum cj_layer layer;
            cj_error err = {0};
            if (cj_layer_parse(optarg, &layer, &err) < 0) {
                cj_log_message("error", "config", err.msg);
                return -1;
            }
            o->without |= CJ_LAYER_BIT(layer);
            break;
        }
#endif
        default:
            return -1;
        }
    }
    return optind == argc ? 0 : -1;
}

static int parse_profile(const char *name, enum cj_profile *profile, cj_error *err)
{
    if (strcmp(name, "development") == 0)
        *profile = CJ_PROFILE_DEVELOPMENT;
    else if (strcmp(name, "production") == 0)
        *profile = CJ_PROFILE_PRODUCTION;
    else
        return cj_fail(err, EINVAL, "profile '%s': expected development or production", name);
    return 0;
}

/* Flags override the file and the environment. */
static int apply_flags(const struct options *o, struct cj_config *config, cj_error *err)
{
    if (o->listen) {
        char *listen = strdup(o->listen);
        if (!listen)
            return cj_fail_errno(err, "--listen");
        free(config->listen);
        config->listen = listen;
    }
    if (o->port) {
        char *end;
        errno = 0;
        unsigned long port = strtoul(o->port, &end, 10);
        if (errno || end == o->port || *end || port > 65535)
            return cj_fail(err, EINVAL, "--port '%s': expected 0 to 65535", o->port);
        config->port = (unsigned)port;
    }
    return 0;
}

static void log_error(const char *event, const char *message)
{
    cj_log_message("error", event, message);
}

static void log_supervision(void *ctx, const char *level, const char *event, const char *message)
{
    (void)ctx;
    cj_log_message(level, event, message);
}

static void log_start(const struct cj_config *config, unsigned port)
{
    struct cj_log_line line;
    cj_log_begin(&line, "info", "start");
    cj_log_str(&line, "version", CODEJAIL_VERSION);
    cj_log_str(&line, "profile",
               config->profile == CJ_PROFILE_DEVELOPMENT ? "development" : "production");
    cj_log_str(&line, "listen", config->listen);
    cj_log_int(&line, "port", port);
    cj_log_bool(&line, "enabled", config->enabled);
    cj_log_int(&line, "max_concurrency", config->max_concurrency);
    cj_log_int(&line, "queue_size", config->queue_size);
    cj_log_int(&line, "max_body_bytes", (long long)config->max_body_bytes);
    cj_log_int(&line, "connection_timeout_s", config->connection_timeout_s);
    cj_log_int(&line, "environments", (long long)config->n_environments);
    cj_log_int(&line, "selfcheck_interval_s", config->selfcheck_interval_s);
    cj_log_int(&line, "helper_timeout_s", config->helper_timeout_s);
    cj_log_end(&line);
}

/* SIGTERM, SIGINT and SIGHUP are handled rather than blocked: the engine
 * starts threads of its own (the sandbox pool) before any mask could cover
 * them, and a blocked mask would be inherited by the sandbox helper.
 * Handlers are per process and reset by exec, so whichever thread takes the
 * signal, it only writes the signal's number to this pipe, and the helper
 * is untouched. */
static int signal_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    int saved = errno;
    char c = (char)sig;
    /* Nothing to do on failure: the pipe is full of earlier signals. */
    ssize_t ignored = write(signal_pipe[1], &c, 1);
    (void)ignored;
    errno = saved;
}

/* SIGPIPE (a sandbox closing its stdin, a client vanishing) must not kill
 * the service; a handler that does nothing turns it into EPIPE like
 * SIG_IGN would, without being inherited by the helper as SIG_IGN is. */
static void on_sigpipe(int sig)
{
    (void)sig;
}

static int setup_signals(cj_error *err)
{
    if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        return cj_fail_errno(err, "signal pipe");
    struct sigaction action = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
    struct sigaction pipe_action = {.sa_handler = on_sigpipe, .sa_flags = SA_RESTART};
    sigemptyset(&action.sa_mask);
    sigemptyset(&pipe_action.sa_mask);
    if (sigaction(SIGTERM, &action, NULL) < 0 || sigaction(SIGINT, &action, NULL) < 0 ||
        sigaction(SIGHUP, &action, NULL) < 0 || sigaction(SIGPIPE, &pipe_action, NULL) < 0)
        return cj_fail_errno(err, "install signal handlers");
    return 0;
}

static int wait_signal(void)
{
    struct pollfd pfd = {signal_pipe[0], POLLIN, 0};
    char sig = 0;
    for (;;) {
        if (read(signal_pipe[0], &sig, 1) == 1)
            return sig;
        if (errno != EAGAIN && errno != EINTR)
            return SIGTERM; /* cannot wait any more: stop as if told to */
        if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
            return SIGTERM;
    }
}

/* The settings in force now: the profile's defaults, the file, the
 * environment, the flags. */
static int load_config(const struct options *o, struct cj_config *config, cj_error *err)
{
    enum cj_profile profile = CJ_PROFILE_PRODUCTION;
    if (o->profile && parse_profile(o->profile, &profile, err) < 0)
        return -1;
    if (cj_config_load(config, profile, o->config_path, err) < 0)
        return -1;
    if (apply_flags(o, config, err) < 0) {
        cj_config_free(config);
        return -1;
    }
    return 0;
}

/* SIGHUP: the file again, for its environments and their routes. */
static void reload(const struct options *o, struct cj_environments *environments)
{
    cj_error err = {0};
    struct cj_config *config = calloc(1, sizeof *config);
    if (!config) {
        log_error("reload", "out of memory; the configuration in force stays");
        return;
    }
    bool loaded = load_config(o, config, &err) == 0;
    if (!loaded)
        cj_environments_refused(environments, err.msg);
    /* A configuration that did not load is already freed (and zeroed). */
    if (!loaded || cj_environments_reload(environments, config, &err) < 0) {
        char message[sizeof err.msg + 64];
        snprintf(message, sizeof message, "%s; the configuration in force stays", err.msg);
        log_error("reload", message);
        cj_config_free(config);
        free(config);
        return;
    }
    cj_log_message("info", "reload",
                   "environments and context_environments applied; other keys take effect at "
                   "the next start");
}

static int serve(const struct options *o, struct cj_config *config)
{
    cj_error err = {0};
    struct cj_environments_options environments_options = {
        .config = config,
        .disabled = o->without,
#ifdef CODEJAIL_TESTING
        /* Layers switched off on purpose (testing builds only) make the
         * safety check fail, as they should; serving anyway is how one sees
         * the API tests' deny rows fail without their protections. */
        .serve_failed_check = o->without != 0,
#endif
        .log = log_supervision,
    };
    struct cj_environments *environments;
    if (cj_environments_start(&environments_options, &environments, &err) < 0) {
        log_error("environments", err.msg);
        return 1;
    }
    struct cj_http_options options = {
        .config = config,
        .environments = environments,
    };
    struct cj_http *http;
    if (cj_http_start(&options, &http, &err) < 0) {
        log_error("http", err.msg);
        cj_environments_stop(environments);
        return 1;
    }
    log_start(config, cj_http_port(http));

    int sig;
    while ((sig = wait_signal()) == SIGHUP)
        reload(o, environments);
    struct cj_log_line line;
    cj_log_begin(&line, "info", "shutdown");
    cj_log_str(&line, "signal", sig == SIGINT ? "SIGINT" : "SIGTERM");
    cj_log_int(&line, "busy", cj_http_busy(http));
    cj_log_end(&line);

    cj_http_stop(http, STOP_GRACE_S);
    cj_environments_stop(environments);
    cj_log_message("info", "stopped", "all admitted requests answered");
    return 0;
}

/* An execution's output is buffered whole (up to max_output_bytes). glibc raises its
 * mmap threshold to the size of the largest block freed, after which such
 * buffers come from the heaps and stay there: the soak saw the daemon's RSS
 * grow from 5 to 21 MiB and never come back. A fixed threshold keeps large
 * buffers in mappings of their own, returned when freed. */
#define MMAP_THRESHOLD (256 << 10)

int main(int argc, char **argv)
{
    /* Memory kept, not safety: an allocator without the option (a sanitizer
     * build's) serves all the same. */
    if (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1)
        log_error("memory", "cannot fix the allocator's mmap threshold; large buffers freed "
                            "may stay in the heap");
    struct options o = {0};
    if (parse_args(argc, argv, &o) < 0)
        return usage();
    /* cj_config_load lets CODEJAIL_PROFILE override the profile it is
     * given; the flag must win over the environment. */
    if (o.profile && unsetenv("CODEJAIL_PROFILE") < 0) {
        log_error("config", "cannot clear CODEJAIL_PROFILE");
        return 2;
    }
    cj_error err = {0};
    /* First: a signal during start-up (a SIGHUP too, whose default would
     * kill) is kept and acted on as soon as the service is up. */
    if (setup_signals(&err) < 0) {
        log_error("signals", err.msg);
        return 1;
    }
    struct cj_config config;
    if (load_config(&o, &config, &err) < 0) {
        log_error("config", err.msg);
        return 2;
    }
    int rc = serve(&o, &config);
    cj_config_free(&config);
    return rc;
}
