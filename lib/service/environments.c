#include "environments.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "access_log.h"
#include "cleanup.h"
#include "health.h"
#include "jsonstr.h"
#include "metrics.h"

/* The supervisor's loop goes round every second; one that has not for this
 * long is stuck. */
#define STUCK_AFTER_S 30

struct cj_environment {
    struct cj_environments *set;
    struct cj_environment_config config; /* its own copy */
    unsigned block;                      /* of outer ids */
    struct cj_engine *engine;            /* NULL: it did not start */
    struct cj_selfcheck failed;          /* why, when it did not */
    struct cj_health *health;
    /* Under the set's lock: */
    unsigned refs;        /* requests and generations holding it */
    unsigned generations; /* generations holding it (a reload's new one and the old) */
    bool retired;         /* no generation holds it any more */
    struct cj_environment *next_retired;
};

/* One configuration's environments: envs[i] serves config->environments[i]. */
struct generation {
    struct cj_config *config; /* owned when it came from a reload */
    bool owns_config;
    struct cj_environment *envs[CJ_ENVIRONMENTS_MAX];
    size_t n;
};

struct cj_environments {
    struct cj_environments_options options;
    pthread_t reaper;
    bool reaper_running;

    pthread_mutex_t lock; /* everything below, and every environment's refs */
    pthread_cond_t wake;  /* an environment retired, or the reaper must stop */
    struct generation current;
    struct cj_environment *retired; /* waiting for their last request */
    bool block_taken[CJ_DAEMON_UID_BLOCKS];
    bool stopping;
    unsigned long reloads[2]; /* refused, applied */
    double last_reload;       /* wall-clock seconds, 0: never */
    char reload_error[256];   /* the latest reload's, "" when it succeeded */
};

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- one environment ---- */

static int copy_config(const struct cj_environment_config *from, struct cj_environment_config *to)
{
    *to = *from;
    to->name = strdup(from->name);
    to->env_dir = from->env_dir ? strdup(from->env_dir) : NULL;
    to->preimport = from->preimport ? strdup(from->preimport) : NULL;
    to->required_modules = from->required_modules ? strdup(from->required_modules) : NULL;
    return !to->name || (from->env_dir && !to->env_dir) || (from->preimport && !to->preimport) ||
                   (from->required_modules && !to->required_modules)
               ? -1
               : 0;
}

static void free_config(struct cj_environment_config *c)
{
    free(c->name);
    free(c->env_dir);
    free(c->preimport);
    free(c->required_modules);
}

static int take_block(struct cj_environments *set, unsigned *block, cj_error *err)
{
    pthread_mutex_lock(&set->lock);
    unsigned b = 0;
    while (b < CJ_DAEMON_UID_BLOCKS && set->block_taken[b])
        b++;
    bool free_block = b < CJ_DAEMON_UID_BLOCKS;
    if (free_block)
        set->block_taken[b] = true;
    pthread_mutex_unlock(&set->lock);
    /* Only while more than half the blocks belong to environments that drain. */
    if (!free_block)
        return cj_fail(err, EBUSY, "no block of outer ids free for another environment yet");
    *block = b;
    return 0;
}

static void give_block(struct cj_environments *set, unsigned block)
{
    pthread_mutex_lock(&set->lock);
    set->block_taken[block] = false;
    pthread_mutex_unlock(&set->lock);
}

/* Supervision's lines of an environment other than the default name it. */
static void environment_log(void *ctx, const char *level, const char *event, const char *message)
{
    struct cj_environment *env = ctx;
    const struct cj_environments_options *o = &env->set->options;
    if (!o->log)
        return;
    if (strcmp(env->config.name, "default") == 0) {
        o->log(o->log_ctx, level, event, message);
        return;
    }
    char named[512];
    snprintf(named, sizeof named, "environment %s: %s", env->config.name, message);
    o->log(o->log_ctx, level, event, named);
}

/* The engine did not start: nothing can run, so the check fails as a whole
 * and health says why. */
static void engine_failed(struct cj_selfcheck *report, const char *why)
{
    memset(report, 0, sizeof *report);
    for (int i = 0; i < CJ_LAYER_COUNT; i++) {
        report->layers.state[i] = CJ_LAYER_FAILED;
        snprintf(report->layers.detail[i], sizeof report->layers.detail[i], "engine not started");
    }
    report->checks[0].name = "engine_start";
    snprintf(report->checks[0].detail, sizeof report->checks[0].detail, "%.250s", why);
    report->n_checks = 1;
}

void cj_environment_engine_config(const struct cj_config *config,
                                  const struct cj_environment_config *environment, unsigned block,
                                  struct cj_engine_config *engine)
{
    uint32_t base = config->uid_base ? config->uid_base : CJ_DEFAULT_UID_BASE;
    *engine = (struct cj_engine_config){
        .env_dir = environment->env_dir,
        .warm = environment->warm,
        .pool_size = environment->pool_size,
        .preimport = environment->preimport,
        .uid_base = base + block * CJ_ENGINE_UIDS,
        .tmp_size = config->tmp_size,
        .landlock_min_abi = config->landlock_min_abi,
        /* Whatever the form accepted must fit in the sandbox. */
        .upload_size = config->max_body_bytes,
        .stdout_cap = config->max_output_bytes,
        .helper_timeout_ms = config->helper_timeout_s * 1000,
    };
}

static void environment_free(struct cj_environment *env)
{
    if (!env)
        return;
    cj_health_stop(env->health);
    cj_engine_stop(env->engine);
    give_block(env->set, env->block);
    free_config(&env->config);
    free(env);
}

static int environment_start(struct cj_environments *set, const struct cj_environment_config *ec,
                             struct cj_environment **out, cj_error *err)
{
    const struct cj_config *config = set->options.config;
    struct cj_environment *env = calloc(1, sizeof *env);
    if (!env)
        return cj_fail_errno(err, "allocate environment");
    env->set = set;
    env->refs = 1;
    env->generations = 1;
    if (copy_config(ec, &env->config) < 0) {
        free_config(&env->config);
        free(env);
        return cj_fail(err, ENOMEM, "environment %s: out of memory", ec->name);
    }
    if (take_block(set, &env->block, err) < 0) {
        free_config(&env->config);
        free(env);
        return -1;
    }
    struct cj_engine_config engine_config;
    cj_environment_engine_config(config, &env->config, env->block, &engine_config);
    engine_config.disabled = set->options.disabled;
    engine_config.log = environment_log;
    engine_config.log_ctx = env;
    cj_error start_err = {0};
    if (cj_engine_start(&engine_config, &env->engine, &start_err) < 0) {
        environment_log(env, "error", "engine", start_err.msg);
        env->engine = NULL;
        engine_failed(&env->failed, start_err.msg);
    }
    struct cj_health_config health_config = {
        .name = env->config.name,
        .engine = env->engine,
        .failed = &env->failed,
        .required = config->required,
        .egress_probe = config->egress_probe,
        .required_modules = env->config.required_modules,
        .interval_s = config->selfcheck_interval_s,
        .serve_failed_check = set->options.serve_failed_check,
    };
    if (cj_health_start(&health_config, &env->health, err) < 0) {
        cj_error_prefix(err, "environment %s", env->config.name);
        environment_free(env);
        return -1;
    }
    *out = env;
    return 0;
}

const char *cj_environment_name(const struct cj_environment *env)
{
    return env->config.name;
}

bool cj_environment_allowed(struct cj_environment *env)
{
    return cj_health_execution_allowed(env->health);
}

int cj_environment_execute(struct cj_environment *env, const struct cj_exec_request *request,
                           struct cj_exec_result *result, cj_error *err)
{
    if (!env->engine)
        return cj_fail(err, ENODEV, "environment %s: its engine did not start", env->config.name);
    return cj_engine_execute(env->engine, request, result, err);
}

/* ---- holding and retiring ---- */

static void hold(struct cj_environment *env)
{
    env->refs++;
}

/* Under the set's lock. */
static void drop(struct cj_environment *env)
{
    if (--env->refs == 0 && env->retired)
        pthread_cond_signal(&env->set->wake);
}

void cj_environment_release(struct cj_environment *env)
{
    if (!env)
        return;
    struct cj_environments *set = env->set;
    pthread_mutex_lock(&set->lock);
    drop(env);
    pthread_mutex_unlock(&set->lock);
}

/* Under the set's lock: a generation lets go of env, which retires when
 * it was the last. */
static void let_go(struct cj_environment *env)
{
    if (--env->generations == 0) {
        env->retired = true;
        env->next_retired = env->set->retired;
        env->set->retired = env;
    }
    drop(env);
}

/* Stops retired environments once nobody holds them: stopping joins
 * threads and reaps helpers, which no request's thread should wait for. */
static void *reaper_main(void *arg)
{
    struct cj_environments *set = arg;
    pthread_mutex_lock(&set->lock);
    for (;;) {
        struct cj_environment **link = &set->retired;
        while (*link && (*link)->refs)
            link = &(*link)->next_retired;
        struct cj_environment *idle = *link;
        if (idle) {
            *link = idle->next_retired;
            pthread_mutex_unlock(&set->lock);
            char name[CJ_ENVIRONMENT_NAME_MAX + 1];
            snprintf(name, sizeof name, "%s", idle->config.name);
            environment_free(idle);
            /* Once its helpers and sandboxes are gone. */
            struct cj_log_line line;
            cj_log_begin(&line, "info", "environment_stopped");
            cj_log_str(&line, "environment", name);
            cj_log_end(&line);
            pthread_mutex_lock(&set->lock);
            continue;
        }
        if (set->stopping && !set->retired)
            break;
        pthread_cond_wait(&set->wake, &set->lock);
    }
    pthread_mutex_unlock(&set->lock);
    return NULL;
}

/* ---- the set ---- */

static void generation_free(struct generation *g)
{
    if (g->owns_config) {
        cj_config_free(g->config);
        free(g->config);
    }
    *g = (struct generation){0};
}

static void log_environment(const struct cj_environment *env, const char *event, double ms)
{
    struct cj_log_line line;
    cj_log_begin(&line, "info", event);
    cj_log_str(&line, "environment", env->config.name);
    cj_log_str(&line, "env_dir", env->config.env_dir ? env->config.env_dir : CODEJAIL_ENV_DIR);
    cj_log_bool(&line, "warm", env->config.warm);
    cj_log_int(&line, "pool_size", env->config.pool_size);
    cj_log_bool(&line, "ok", cj_health_execution_allowed(env->health));
    if (ms >= 0)
        cj_log_int(&line, "start_ms", (long long)ms);
    cj_log_end(&line);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Fills g for config: environments of `reuse` whose settings are the same
 * are held again; the others are started (and, with `strict`, must pass
 * their check). On failure, g holds what it took and the caller frees it. */
static int build(struct cj_environments *set, const struct generation *reuse,
                 const struct cj_config *config, bool strict, struct generation *g, cj_error *err)
{
    for (size_t i = 0; i < config->n_environments; i++) {
        const struct cj_environment_config *ec = &config->environments[i];
        /* One that did not start or does not pass its check is started
         * again: the operator may have repaired its root. */
        struct cj_environment *same = NULL;
        for (size_t j = 0; reuse && j < reuse->n && !same; j++)
            if (cj_environment_config_equal(&reuse->envs[j]->config, ec) &&
                cj_environment_allowed(reuse->envs[j]))
                same = reuse->envs[j];
        if (same) {
            pthread_mutex_lock(&set->lock);
            hold(same);
            same->generations++;
            pthread_mutex_unlock(&set->lock);
            g->envs[g->n++] = same;
            continue;
        }
        double start = now_ms();
        if (environment_start(set, ec, &g->envs[g->n], err) < 0)
            return -1;
        struct cj_environment *env = g->envs[g->n++];
        log_environment(env, "environment_started", now_ms() - start);
        if (strict && !cj_health_execution_allowed(env->health))
            return cj_fail(err, EAGAIN,
                           "environment %s did not pass its safety check (see its selfcheck "
                           "log line)",
                           ec->name);
    }
    return 0;
}

/* Lets go of what build() took for a generation that is not used. */
static void unbuild(struct cj_environments *set, struct generation *g)
{
    pthread_mutex_lock(&set->lock);
    for (size_t i = 0; i < g->n; i++)
        let_go(g->envs[i]);
    pthread_cond_signal(&set->wake);
    pthread_mutex_unlock(&set->lock);
    g->n = 0;
}

int cj_environments_start(const struct cj_environments_options *options,
                          struct cj_environments **environments, cj_error *err)
{
    struct cj_environments *set = calloc(1, sizeof *set);
    if (!set)
        return cj_fail_errno(err, "allocate environments");
    set->options = *options;
    int rc = pthread_mutex_init(&set->lock, NULL);
    if (rc == 0 && (rc = pthread_cond_init(&set->wake, NULL)) != 0)
        pthread_mutex_destroy(&set->lock);
    if (rc != 0) {
        free(set);
        errno = rc;
        return cj_fail_errno(err, "environment locks");
    }
    rc = pthread_create(&set->reaper, NULL, reaper_main, set);
    if (rc != 0) {
        pthread_cond_destroy(&set->wake);
        pthread_mutex_destroy(&set->lock);
        free(set);
        errno = rc;
        return cj_fail_errno(err, "start environment reaper");
    }
    set->reaper_running = true;
    /* The caller's configuration outlives the set. */
    set->current.config = (struct cj_config *)options->config;
    if (build(set, NULL, options->config, false, &set->current, err) < 0) {
        cj_environments_stop(set);
        return -1;
    }
    *environments = set;
    return 0;
}

void cj_environments_refused(struct cj_environments *set, const char *why)
{
    pthread_mutex_lock(&set->lock);
    set->reloads[0]++;
    set->last_reload = wall_s();
    snprintf(set->reload_error, sizeof set->reload_error, "%.255s", why[0] ? why : "refused");
    pthread_mutex_unlock(&set->lock);
}

int cj_environments_reload(struct cj_environments *set, struct cj_config *config, cj_error *err)
{
    struct generation next = {.config = config};
    /* Only this thread replaces the current generation, so reading it
     * here needs no lock. */
    if (build(set, &set->current, config, true, &next, err) < 0) {
        unbuild(set, &next);
        cj_environments_refused(set, err->msg);
        return -1;
    }
    next.owns_config = true;
    pthread_mutex_lock(&set->lock);
    struct generation old = set->current;
    set->current = next;
    set->reloads[1]++;
    set->last_reload = wall_s();
    set->reload_error[0] = '\0';
    for (size_t i = 0; i < old.n; i++)
        let_go(old.envs[i]);
    pthread_cond_signal(&set->wake);
    pthread_mutex_unlock(&set->lock);
    generation_free(&old);
    for (size_t i = 0; i < next.n; i++)
        log_environment(next.envs[i], "environment_serving", -1);
    return 0;
}

void cj_environments_stop(struct cj_environments *set)
{
    if (!set)
        return;
    pthread_mutex_lock(&set->lock);
    for (size_t i = 0; i < set->current.n; i++)
        let_go(set->current.envs[i]);
    set->current.n = 0;
    set->stopping = true;
    pthread_cond_signal(&set->wake);
    pthread_mutex_unlock(&set->lock);
    if (set->reaper_running)
        pthread_join(set->reaper, NULL);
    generation_free(&set->current);
    pthread_cond_destroy(&set->wake);
    pthread_mutex_destroy(&set->lock);
    free(set);
}

struct cj_environment *cj_environments_acquire(struct cj_environments *set, const char *context)
{
    pthread_mutex_lock(&set->lock);
    struct cj_environment *env =
        set->current.envs[cj_config_environment_for(set->current.config, context)];
    hold(env);
    pthread_mutex_unlock(&set->lock);
    return env;
}

/* Holds every environment of the current generation (for a report). */
static size_t acquire_all(struct cj_environments *set, struct cj_environment **envs)
{
    pthread_mutex_lock(&set->lock);
    size_t n = set->current.n;
    for (size_t i = 0; i < n; i++) {
        envs[i] = set->current.envs[i];
        hold(envs[i]);
    }
    pthread_mutex_unlock(&set->lock);
    return n;
}

static void release_all(struct cj_environment **envs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cj_environment_release(envs[i]);
}

bool cj_environments_any_allowed(struct cj_environments *set)
{
    struct cj_environment *envs[CJ_ENVIRONMENTS_MAX];
    size_t n = acquire_all(set, envs);
    bool any = false;
    for (size_t i = 0; i < n && !any; i++)
        any = cj_environment_allowed(envs[i]);
    release_all(envs, n);
    return any;
}

/* ---- what health and metrics say ---- */

static int append_time(struct cj_buf *out, double t)
{
    time_t whole = (time_t)t;
    struct tm tm;
    char text[32];
    if (!t || !gmtime_r(&whole, &tm) || !strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm))
        return cj_buf_append_str(out, "null");
    return cj_buf_printf(out, "\"%s\"", text);
}

static int render_reload(struct cj_environments *set, struct cj_buf *out)
{
    pthread_mutex_lock(&set->lock);
    double last = set->last_reload;
    char error[sizeof set->reload_error];
    memcpy(error, set->reload_error, sizeof error);
    pthread_mutex_unlock(&set->lock);
    int rc = cj_buf_append_str(out, "\"reload\": {\"last_run\": ");
    rc |= append_time(out, last);
    rc |= cj_buf_append_str(out, ", \"error\": ");
    rc |= error[0] ? cj_json_append_string(out, error, strlen(error))
                   : cj_buf_append_str(out, "null");
    rc |= cj_buf_append_str(out, "}");
    return rc;
}

int cj_environments_readiness(struct cj_environments *set, struct cj_buf *body, bool *ready)
{
    struct cj_environment *envs[CJ_ENVIRONMENTS_MAX];
    size_t n = acquire_all(set, envs);
    struct cj_buf members[CJ_ENVIRONMENTS_MAX];
    bool env_ready[CJ_ENVIRONMENTS_MAX];
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        cj_buf_init(&members[i], 0);
        rc |= cj_health_readiness(envs[i]->health, &members[i], &env_ready[i]);
        if (!members[i].data)
            rc = -1;
    }
    /* The default environment is always the first. It alone decides: every
     * replica has the same environments, so one that fails everywhere (a
     * trial root that does not import) would otherwise take every course
     * down, where it only refuses its own. */
    *ready = n > 0 && env_ready[0];
    if (rc == 0) {
        rc |= cj_buf_printf(body, "{\"status\": \"%s\", %s, \"environments\": {",
                            *ready ? "OK" : "UNAVAILABLE", members[0].data);
        for (size_t i = 0; i < n; i++) {
            rc |= cj_buf_append_str(body, i ? ", " : "");
            rc |= cj_json_append_string(body, envs[i]->config.name, strlen(envs[i]->config.name));
            rc |= cj_buf_printf(body, ": {\"status\": \"%s\", %s}",
                                env_ready[i] ? "OK" : "UNAVAILABLE", members[i].data);
        }
        rc |= cj_buf_append_str(body, "}, \"unavailable_environments\": [");
        for (size_t i = 0, listed = 0; i < n; i++) {
            if (env_ready[i])
                continue;
            rc |= cj_buf_append_str(body, listed++ ? ", " : "");
            rc |= cj_json_append_string(body, envs[i]->config.name, strlen(envs[i]->config.name));
        }
        rc |= cj_buf_append_str(body, "], ");
        rc |= render_reload(set, body);
        rc |= cj_buf_append_str(body, "}");
    }
    for (size_t i = 0; i < n; i++)
        cj_buf_free(&members[i]);
    release_all(envs, n);
    return rc ? -1 : 0;
}

int cj_environments_liveness(struct cj_environments *set, struct cj_buf *body, bool *alive)
{
    struct cj_environment *envs[CJ_ENVIRONMENTS_MAX];
    size_t n = acquire_all(set, envs);
    double age = 0;
    const char *stuck = NULL;
    for (size_t i = 0; i < n; i++) {
        double a = envs[i]->engine ? cj_engine_heartbeat_age(envs[i]->engine) : 0;
        if (a > age) {
            age = a;
            stuck = envs[i]->config.name;
        }
    }
    *alive = age < STUCK_AFTER_S;
    int rc = *alive
                 ? cj_buf_append_str(body, "{\"status\": \"OK\"}")
                 : cj_buf_printf(body,
                                 "{\"status\": \"STUCK\", \"detail\": \"the supervisor's loop of "
                                 "environment %s last ran %.0f s ago\"}",
                                 stuck, age);
    release_all(envs, n);
    return rc;
}

int cj_environments_render_metrics(struct cj_environments *set, struct cj_buf *out)
{
    struct cj_environment *envs[CJ_ENVIRONMENTS_MAX];
    size_t n = acquire_all(set, envs);
    struct cj_selfcheck reports[CJ_ENVIRONMENTS_MAX];
    struct cj_metrics_environment views[CJ_ENVIRONMENTS_MAX];
    struct cj_health *healths[CJ_ENVIRONMENTS_MAX];
    const char *names[CJ_ENVIRONMENTS_MAX];
    for (size_t i = 0; i < n; i++) {
        cj_health_report(envs[i]->health, &reports[i]);
        healths[i] = envs[i]->health;
        names[i] = envs[i]->config.name;
        views[i] = (struct cj_metrics_environment){
            .name = names[i],
            .selfcheck = &reports[i],
            .pool_ready = envs[i]->engine ? cj_engine_pool_ready(envs[i]->engine) : 0,
        };
    }
    int rc = cj_metrics_render_environments(views, n, out);
    rc |= cj_health_render_metrics(healths, names, n, out);
    rc |= cj_buf_append_str(out, "# HELP codejail_environment_ready 1 while the environment passes "
                                 "its safety check and every lane of it can serve.\n"
                                 "# TYPE codejail_environment_ready gauge\n");
    for (size_t i = 0; i < n; i++) {
        cleanup_buf struct cj_buf ignored;
        cj_buf_init(&ignored, 0);
        bool ready = false;
        rc |= cj_health_readiness(healths[i], &ignored, &ready);
        rc |= cj_buf_printf(out, "codejail_environment_ready{environment=\"%s\"} %d\n", names[i],
                            ready ? 1 : 0);
    }
    pthread_mutex_lock(&set->lock);
    unsigned long failed = set->reloads[0], succeeded = set->reloads[1];
    pthread_mutex_unlock(&set->lock);
    rc |= cj_buf_printf(out,
                        "# HELP codejail_config_reloads_total Configuration reloads (SIGHUP), by "
                        "result.\n# TYPE codejail_config_reloads_total counter\n"
                        "codejail_config_reloads_total{result=\"applied\"} %lu\n"
                        "codejail_config_reloads_total{result=\"refused\"} %lu\n",
                        succeeded, failed);
    release_all(envs, n);
    return rc ? -1 : 0;
}
