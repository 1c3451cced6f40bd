#include "metrics.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Outcomes come from the daemon's code, never from clients, so a small
 * table is enough; anything past it is counted as "other" rather than
 * letting label cardinality grow. */
#define MAX_OUTCOMES 48
#define OUTCOME_MAX  48

static const double latency_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                        1,     2.5,  5,     10,   30,  60};
static const double setup_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                      0.1,   0.25,   0.5,   1,    2.5,   5};

#define N_LATENCY (sizeof latency_bounds / sizeof latency_bounds[0])
#define N_SETUP   (sizeof setup_bounds / sizeof setup_bounds[0])
_Static_assert(N_LATENCY < 16 && N_SETUP < 16, "struct histogram holds 16 buckets");

struct histogram {
    const double *bounds;
    size_t n;
    unsigned long long counts[16]; /* per bucket, not cumulative; [n] is +Inf */
    unsigned long long total;
    double sum;
};

struct cj_metrics {
    pthread_mutex_t lock;
    struct {
        char name[OUTCOME_MAX];
        unsigned long long count;
    } outcomes[MAX_OUTCOMES];
    size_t n_outcomes;
    struct histogram latency, setup;
    unsigned in_flight, queued, slots, queue_capacity;
};

int cj_metrics_new(struct cj_metrics **metrics, cj_error *err)
{
    struct cj_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return cj_fail_errno(err, "allocate metrics");
    int rc = pthread_mutex_init(&m->lock, NULL);
    if (rc != 0) {
        free(m);
        errno = rc;
        return cj_fail_errno(err, "metrics lock");
    }
    m->latency = (struct histogram){.bounds = latency_bounds, .n = N_LATENCY};
    m->setup = (struct histogram){.bounds = setup_bounds, .n = N_SETUP};
    *metrics = m;
    return 0;
}

void cj_metrics_free(struct cj_metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static void observe(struct histogram *h, double value)
{
    size_t i = 0;
    while (i < h->n && value > h->bounds[i])
        i++;
    h->counts[i]++;
    h->total++;
    h->sum += value;
}

static void count_outcome(struct cj_metrics *m, const char *outcome)
{
    if (strlen(outcome) >= OUTCOME_MAX)
        outcome = "other";
    for (size_t i = 0; i < m->n_outcomes; i++) {
        if (strcmp(m->outcomes[i].name, outcome) == 0) {
            m->outcomes[i].count++;
            return;
        }
    }
    if (m->n_outcomes == MAX_OUTCOMES) {
        if (strcmp(outcome, "other") != 0)
            count_outcome(m, "other");
        return;
    }
    strcpy(m->outcomes[m->n_outcomes].name, outcome);
    m->outcomes[m->n_outcomes++].count = 1;
}

void cj_metrics_request(struct cj_metrics *m, const char *outcome, bool code_exec, double seconds)
{
    pthread_mutex_lock(&m->lock);
    count_outcome(m, outcome);
    if (code_exec)
        observe(&m->latency, seconds);
    pthread_mutex_unlock(&m->lock);
}

void cj_metrics_sandbox_setup(struct cj_metrics *m, double seconds)
{
    pthread_mutex_lock(&m->lock);
    observe(&m->setup, seconds);
    pthread_mutex_unlock(&m->lock);
}

void cj_metrics_load(struct cj_metrics *m, unsigned in_flight, unsigned queued)
{
    pthread_mutex_lock(&m->lock);
    m->in_flight = in_flight;
    m->queued = queued;
    pthread_mutex_unlock(&m->lock);
}

void cj_metrics_capacity(struct cj_metrics *m, unsigned slots, unsigned queue_capacity)
{
    pthread_mutex_lock(&m->lock);
    m->slots = slots;
    m->queue_capacity = queue_capacity;
    pthread_mutex_unlock(&m->lock);
}

/* Label values: the exposition format escapes backslash, quote and newline. */
static int label(struct cj_buf *out, const char *value)
{
    int rc = 0;
    for (const char *p = value; *p; p++) {
        if (*p == '\\' || *p == '"')
            rc |= cj_buf_printf(out, "\\%c", *p);
        else if (*p == '\n')
            rc |= cj_buf_append_str(out, "\\n");
        else
            rc |= cj_buf_append(out, p, 1);
    }
    return rc;
}

static int header(struct cj_buf *out, const char *name, const char *type, const char *help)
{
    return cj_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int gauge(struct cj_buf *out, const char *name, const char *help, unsigned long long value)
{
    /* One statement per write: the operands of | are evaluated in no set order. */
    int rc = header(out, name, "gauge", help);
    rc |= cj_buf_printf(out, "%s %llu\n", name, value);
    return rc;
}

static int render_histogram(struct cj_buf *out, const char *name, const char *help,
                            const struct histogram *h)
{
    int rc = header(out, name, "histogram", help);
    unsigned long long cumulative = 0;
    for (size_t i = 0; i < h->n; i++) {
        cumulative += h->counts[i];
        rc |= cj_buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i], cumulative);
    }
    rc |= cj_buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name, h->total);
    rc |= cj_buf_printf(out, "%s_sum %.6f\n%s_count %llu\n", name, h->sum, name, h->total);
    return rc;
}

/* `name{environment="env"` and, when more labels follow, a comma. */
static int series(struct cj_buf *out, const char *name, const char *env, bool more)
{
    int rc = cj_buf_printf(out, "%s{environment=\"", name);
    rc |= label(out, env);
    rc |= cj_buf_append_str(out, more ? "\"," : "\"}");
    return rc;
}

/* name{environment="env",key="value"} */
static int series_with(struct cj_buf *out, const char *name, const char *env, const char *key,
                       const char *value)
{
    int rc = series(out, name, env, true);
    rc |= cj_buf_printf(out, "%s=\"", key);
    rc |= label(out, value);
    rc |= cj_buf_append_str(out, "\"");
    return rc;
}

int cj_metrics_render_environments(const struct cj_metrics_environment *envs, size_t n,
                                   struct cj_buf *out)
{
    static const enum cj_layer_state states[] = {CJ_LAYER_ACTIVE, CJ_LAYER_UNAVAILABLE,
                                                 CJ_LAYER_FAILED, CJ_LAYER_DISABLED};
    int rc =
        header(out, "codejail_pool_ready", "gauge", "Pre-started sandboxes waiting for a request.");
    for (size_t e = 0; e < n; e++) {
        rc |= series(out, "codejail_pool_ready", envs[e].name, false);
        rc |= cj_buf_printf(out, " %u\n", envs[e].pool_ready);
    }
    rc |= header(out, "codejail_selfcheck_ok", "gauge", "1 when the latest safety check passed.");
    for (size_t e = 0; e < n; e++) {
        rc |= series(out, "codejail_selfcheck_ok", envs[e].name, false);
        rc |= cj_buf_printf(out, " %d\n", envs[e].selfcheck->ok ? 1 : 0);
    }
    rc |= header(out, "codejail_selfcheck_check_passed", "gauge",
                 "1 when the start-up check passed, per check.");
    for (size_t e = 0; e < n; e++) {
        const struct cj_selfcheck *r = envs[e].selfcheck;
        for (size_t i = 0; i < r->n_checks; i++) {
            rc |= series_with(out, "codejail_selfcheck_check_passed", envs[e].name, "check",
                              r->checks[i].name);
            rc |= cj_buf_printf(out, "} %d\n", r->checks[i].passed ? 1 : 0);
        }
    }
    rc |= header(out, "codejail_module_importable", "gauge",
                 "1 when the module imports in the sandbox (Open edX set and required).");
    for (size_t e = 0; e < n; e++) {
        const struct cj_selfcheck *r = envs[e].selfcheck;
        for (size_t i = 0; r->env_checked && i < r->env.n_modules; i++) {
            rc |= series_with(out, "codejail_module_importable", envs[e].name, "module",
                              r->env.modules[i].name);
            rc |= cj_buf_printf(out, ",required=\"%s\"} %d\n",
                                r->env.modules[i].required ? "true" : "false",
                                r->env.modules[i].imports ? 1 : 0);
        }
    }
    rc |= header(out, "codejail_layer_state", "gauge",
                 "1 for the state each sandbox layer is in on this host.");
    for (size_t e = 0; e < n; e++)
        for (int l = 0; l < CJ_LAYER_COUNT; l++)
            for (size_t s = 0; s < sizeof states / sizeof states[0]; s++) {
                rc |= series_with(out, "codejail_layer_state", envs[e].name, "layer",
                                  cj_layer_name((enum cj_layer)l));
                rc |= cj_buf_printf(out, ",state=\"%s\"} %d\n", cj_layer_state_name(states[s]),
                                    envs[e].selfcheck->layers.state[l] == states[s] ? 1 : 0);
            }
    rc |= header(out, "codejail_layer_ok", "gauge",
                 "1 when the layer's state satisfies the configuration.");
    for (size_t e = 0; e < n; e++)
        for (int l = 0; l < CJ_LAYER_COUNT; l++) {
            rc |= series_with(out, "codejail_layer_ok", envs[e].name, "layer",
                              cj_layer_name((enum cj_layer)l));
            rc |= cj_buf_printf(out, "} %d\n", envs[e].selfcheck->layer_ok[l] ? 1 : 0);
        }
    return rc ? -1 : 0;
}

int cj_metrics_render(struct cj_metrics *m, struct cj_buf *out)
{
    pthread_mutex_lock(&m->lock);
    int rc = header(out, "codejail_requests_total", "counter", "Requests answered, by outcome.");
    for (size_t i = 0; i < m->n_outcomes; i++) {
        rc |= cj_buf_append_str(out, "codejail_requests_total{outcome=\"");
        rc |= label(out, m->outcomes[i].name);
        rc |= cj_buf_printf(out, "\"} %llu\n", m->outcomes[i].count);
    }
    rc |= render_histogram(out, "codejail_code_exec_duration_seconds",
                           "Code-exec requests, from their headers to the response sent.",
                           &m->latency);
    rc |= gauge(out, "codejail_executions_in_flight", "Executions running now.", m->in_flight);
    rc |= gauge(out, "codejail_queue_depth", "Admitted requests waiting for an execution slot.",
                m->queued);
    rc |= gauge(out, "codejail_execution_slots", "Executions allowed at once.", m->slots);
    rc |= gauge(out, "codejail_queue_capacity", "Requests allowed to wait for a slot.",
                m->queue_capacity);
    rc |= render_histogram(out, "codejail_sandbox_setup_seconds",
                           "Sandbox start: spawn until every layer was up.", &m->setup);
    pthread_mutex_unlock(&m->lock);
    return rc ? -1 : 0;
}
