#include "health.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "access_log.h"
#include "jsonstr.h"

/* A failed check is tried again this soon (a lane may come back), rather
 * than after the whole interval. */
#define RECHECK_FAILED_S 10
#define MAX_LANES        CJ_SUPERVISOR_MAX_LANES

struct cj_health {
    struct cj_health_config config;
    pthread_t thread;
    bool thread_running;

    pthread_mutex_t lock; /* everything below */
    pthread_cond_t wake;
    bool kicked, stopping;
    struct cj_selfcheck report; /* the latest */
    double last_run;            /* wall-clock seconds, 0: never */
    unsigned long runs;
};

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int append_time(struct cj_buf *out, double t)
{
    time_t whole = (time_t)t;
    struct tm tm;
    char text[32];
    if (!gmtime_r(&whole, &tm) || !strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm))
        return cj_buf_append_str(out, "null");
    return cj_buf_printf(out, "\"%s\"", text);
}

static void log_selfcheck(const struct cj_health *h, const struct cj_selfcheck *report,
                          const char *why)
{
    struct cj_buf detail;
    cj_buf_init(&detail, 0);
    struct cj_log_line line;
    cj_log_begin(&line, report->ok ? "info" : "error", "selfcheck");
    cj_log_bool(&line, "ok", report->ok);
    cj_log_str(&line, "environment", h->config.name);
    cj_log_str(&line, "trigger", why);
    if (cj_selfcheck_to_json(report, &detail) == 0)
        cj_log_json(&line, "detail", detail.data);
    cj_log_end(&line);
    cj_buf_free(&detail);
}

static void check_once(struct cj_health *h, struct cj_selfcheck *report, const char *why)
{
    cj_selfcheck_run(h->config.engine, h->config.required, h->config.egress_probe, report);
    cj_selfcheck_modules(h->config.engine, h->config.required_modules, report);
    log_selfcheck(h, report, why);
}

static void run_check(struct cj_health *h, const char *why)
{
    pthread_mutex_lock(&h->lock);
    bool passing = h->report.ok && h->runs > 0;
    pthread_mutex_unlock(&h->lock);
    struct cj_selfcheck report;
    check_once(h, &report, why);
    /* A probe whose helper was killed under it fails without saying
     * anything of the layers (a soak saw one such failure refuse every
     * request for 4 s). A passing check is only overturned by two failing
     * runs in a row, the second started at once. */
    if (!report.ok && passing)
        check_once(h, &report, "confirm_failure");
    if (!report.ok && h->config.serve_failed_check) {
        cj_log_message("error", "selfcheck",
                       "layers switched off for testing: serving although the safety check "
                       "failed; never do this outside a test");
        report.ok = true;
    }
    pthread_mutex_lock(&h->lock);
    h->report = report;
    h->last_run = wall_s();
    h->runs++;
    pthread_mutex_unlock(&h->lock);
}

static void kick(void *ctx, unsigned lane)
{
    (void)lane;
    struct cj_health *h = ctx;
    pthread_mutex_lock(&h->lock);
    h->kicked = true;
    pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->lock);
}

static void *recheck(void *arg)
{
    struct cj_health *h = arg;
    pthread_mutex_lock(&h->lock);
    while (!h->stopping) {
        unsigned wait_s = h->report.ok ? h->config.interval_s : RECHECK_FAILED_S;
        if (h->config.interval_s && wait_s > h->config.interval_s)
            wait_s = h->config.interval_s;
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += wait_s;
        int rc = 0;
        while (!h->kicked && !h->stopping && rc != ETIMEDOUT)
            rc = wait_s ? pthread_cond_timedwait(&h->wake, &h->lock, &until)
                        : pthread_cond_wait(&h->wake, &h->lock);
        if (h->stopping)
            break;
        const char *why = h->kicked ? "helper_replaced" : h->report.ok ? "periodic" : "retry";
        h->kicked = false;
        pthread_mutex_unlock(&h->lock);
        run_check(h, why);
        pthread_mutex_lock(&h->lock);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

int cj_health_start(const struct cj_health_config *config, struct cj_health **health, cj_error *err)
{
    struct cj_health *h = calloc(1, sizeof *h);
    if (!h)
        return cj_fail_errno(err, "allocate health");
    h->config = *config;
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc == 0) {
        rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        rc = rc ? rc : pthread_cond_init(&h->wake, &attr);
        pthread_condattr_destroy(&attr);
    }
    if (rc == 0 && (rc = pthread_mutex_init(&h->lock, NULL)) != 0)
        pthread_cond_destroy(&h->wake);
    if (rc != 0) {
        free(h);
        errno = rc;
        return cj_fail_errno(err, "health locks");
    }
    if (!config->engine) {
        h->report = *config->failed;
        log_selfcheck(h, &h->report, "start");
        *health = h;
        return 0;
    }
    run_check(h, "start");
    rc = pthread_create(&h->thread, NULL, recheck, h);
    if (rc != 0) {
        cj_health_stop(h);
        errno = rc;
        return cj_fail_errno(err, "start self-check thread");
    }
    h->thread_running = true;
    cj_engine_on_restart(config->engine, kick, h);
    *health = h;
    return 0;
}

void cj_health_stop(struct cj_health *h)
{
    if (!h)
        return;
    if (h->config.engine)
        cj_engine_on_restart(h->config.engine, NULL, NULL);
    pthread_mutex_lock(&h->lock);
    h->stopping = true;
    pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->lock);
    if (h->thread_running)
        pthread_join(h->thread, NULL);
    pthread_cond_destroy(&h->wake);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

bool cj_health_execution_allowed(struct cj_health *h)
{
    pthread_mutex_lock(&h->lock);
    bool ok = h->report.ok && h->config.engine;
    pthread_mutex_unlock(&h->lock);
    return ok;
}

static unsigned lanes(const struct cj_health *h)
{
    unsigned n = h->config.engine ? cj_engine_lanes(h->config.engine) : 0;
    return n < MAX_LANES ? n : MAX_LANES;
}

int cj_health_readiness(struct cj_health *h, struct cj_buf *members, bool *ready)
{
    struct cj_lane_status status[MAX_LANES];
    unsigned n = lanes(h);
    bool lanes_up = true;
    for (unsigned i = 0; i < n; i++) {
        cj_engine_lane_status(h->config.engine, i, &status[i]);
        lanes_up &= status[i].up;
    }
    pthread_mutex_lock(&h->lock);
    struct cj_selfcheck report = h->report;
    double last_run = h->last_run;
    unsigned long runs = h->runs;
    pthread_mutex_unlock(&h->lock);
    *ready = report.ok && h->config.engine && lanes_up;

    cleanup_buf struct cj_buf detail;
    cj_buf_init(&detail, 0);
    /* The check's own members ("ok", "layers", "checks"), without its braces. */
    if (cj_selfcheck_to_json(&report, &detail) < 0 || detail.len < 2 || detail.data[0] != '{')
        return -1;
    detail.data[detail.len - 1] = '\0';
    int rc = cj_buf_printf(members, "%s, \"lanes\": {", detail.data + 1);
    for (unsigned i = 0; i < n; i++) {
        rc |= cj_buf_printf(members, "%s\"%s\": {\"state\": \"%s\", \"since\": ", i ? ", " : "",
                            cj_engine_lane_name(h->config.engine, i), status[i].up ? "up" : "down");
        rc |= append_time(members, status[i].since);
        rc |= cj_buf_append_str(members, status[i].up ? ", \"last_fault\": " : ", \"why\": ");
        rc |= cj_json_append_string(members, status[i].why,
                                    strnlen(status[i].why, sizeof status[i].why));
        rc |= cj_buf_printf(members, ", \"restarts\": %lu}", status[i].restarts);
    }
    rc |= cj_buf_printf(members, "}, \"pool_ready\": %u",
                        h->config.engine ? cj_engine_pool_ready(h->config.engine) : 0);
    rc |= cj_buf_printf(members, ", \"selfcheck\": {\"runs\": %lu, \"last_run\": ", runs);
    rc |= last_run ? append_time(members, last_run) : cj_buf_append_str(members, "null");
    rc |= cj_buf_append_str(members, "}");
    return rc ? -1 : 0;
}

void cj_health_report(struct cj_health *h, struct cj_selfcheck *report)
{
    pthread_mutex_lock(&h->lock);
    *report = h->report;
    pthread_mutex_unlock(&h->lock);
}

static int family(struct cj_buf *out, const char *name, const char *type, const char *help)
{
    return cj_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int cj_health_render_metrics(struct cj_health *const *healths, const char *const *names, size_t n,
                             struct cj_buf *out)
{
    struct lanes_of {
        unsigned n;
        struct cj_lane_status status[MAX_LANES];
        unsigned long runs;
        double last_run;
    } *of = calloc(n ? n : 1, sizeof *of);
    if (!of)
        return -1;
    for (size_t e = 0; e < n; e++) {
        struct cj_health *h = healths[e];
        of[e].n = lanes(h);
        for (unsigned i = 0; i < of[e].n; i++)
            cj_engine_lane_status(h->config.engine, i, &of[e].status[i]);
        pthread_mutex_lock(&h->lock);
        of[e].runs = h->runs;
        of[e].last_run = h->last_run;
        pthread_mutex_unlock(&h->lock);
    }
    int rc = family(out, "codejail_lane_up", "gauge", "1 while the lane can start sandboxes.");
    for (size_t e = 0; e < n; e++)
        for (unsigned i = 0; i < of[e].n; i++)
            rc |= cj_buf_printf(out, "codejail_lane_up{environment=\"%s\",lane=\"%s\"} %d\n",
                                names[e], cj_engine_lane_name(healths[e]->config.engine, i),
                                of[e].status[i].up ? 1 : 0);
    rc |= family(out, "codejail_helper_restarts_total", "counter",
                 "Sandbox helpers started again after one died or hung.");
    for (size_t e = 0; e < n; e++)
        for (unsigned i = 0; i < of[e].n; i++)
            rc |= cj_buf_printf(
                out, "codejail_helper_restarts_total{environment=\"%s\",lane=\"%s\"} %lu\n",
                names[e], cj_engine_lane_name(healths[e]->config.engine, i),
                of[e].status[i].restarts);
    rc |= family(out, "codejail_sandbox_start_failures_total", "counter",
                 "Sandbox starts that failed, and helpers lost, by cause.");
    for (size_t e = 0; e < n; e++)
        for (unsigned i = 0; i < of[e].n; i++)
            for (int f = 0; f < CJ_FAULT_COUNT; f++)
                rc |= cj_buf_printf(out,
                                    "codejail_sandbox_start_failures_total{environment=\"%s\","
                                    "lane=\"%s\",cause=\"%s\"} %lu\n",
                                    names[e], cj_engine_lane_name(healths[e]->config.engine, i),
                                    cj_fault_name((enum cj_fault)f), of[e].status[i].failures[f]);
    rc |= family(out, "codejail_selfcheck_runs_total", "counter", "Safety checks run.");
    for (size_t e = 0; e < n; e++)
        rc |= cj_buf_printf(out, "codejail_selfcheck_runs_total{environment=\"%s\"} %lu\n",
                            names[e], of[e].runs);
    rc |= family(out, "codejail_selfcheck_last_run_timestamp_seconds", "gauge",
                 "When the latest safety check ran (codejail_selfcheck_ok is its result).");
    for (size_t e = 0; e < n; e++)
        rc |= cj_buf_printf(out,
                            "codejail_selfcheck_last_run_timestamp_seconds{environment=\"%s\"} "
                            "%.3f\n",
                            names[e], of[e].last_run);
    free(of);
    return rc ? -1 : 0;
}
