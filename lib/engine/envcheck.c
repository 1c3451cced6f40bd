#include "envcheck.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "jsonstr.h"

/* Imports every name in `names`; r maps each to 'ok' or the error. */
static const char probe_code[] = "import importlib\n"
                                 "r = {}\n"
                                 "for name in names:\n"
                                 "    try:\n"
                                 "        importlib.import_module(name)\n"
                                 "        r[name] = 'ok'\n"
                                 "    except BaseException as e:\n"
                                 "        r[name] = f'{type(e).__name__}: {e}'\n";

/* Cold imports of sympy, nltk and matplotlib together take seconds of CPU;
 * the check is ours, not a course's, so it is not held to a course's limits.
 * The bounds only stop a hang: under emulation (make vm-test, no KVM) the
 * same imports took more than the 120 s first given here. */
static const struct cj_limits probe_limits = {
    .cpu = 600,
    .realtime = 1200,
    .vmem = 2ull << 30,
    .fsize = 1ull << 20,
    .nproc = 15,
};

static struct cj_module_state *find(struct cj_env_report *r, const char *name, size_t len)
{
    for (size_t i = 0; i < r->n_modules; i++) {
        if (strlen(r->modules[i].name) == len && strncmp(r->modules[i].name, name, len) == 0)
            return &r->modules[i];
    }
    return NULL;
}

/* Adds each name of the comma-separated list once; false when one does not fit. */
static bool add_list(struct cj_env_report *r, const char *list, bool required)
{
    for (const char *p = list ? list : ""; *p;) {
        size_t len = strcspn(p, ",");
        if (len) {
            struct cj_module_state *m = find(r, p, len);
            if (!m) {
                if (r->n_modules == CJ_ENVCHECK_MAX || len >= CJ_MODULE_NAME_MAX)
                    return false;
                m = &r->modules[r->n_modules++];
                memcpy(m->name, p, len);
            }
            m->required |= required;
        }
        p += len + (p[len] == ',');
    }
    return true;
}

static int names_json(const struct cj_env_report *r, struct cj_buf *out)
{
    int rc = cj_buf_append_str(out, "{\"names\": [");
    for (size_t i = 0; i < r->n_modules; i++) {
        rc |= cj_buf_append_str(out, i ? ", " : "");
        rc |= cj_json_append_string(out, r->modules[i].name, strlen(r->modules[i].name));
    }
    rc |= cj_buf_append_str(out, "]}");
    return rc ? -1 : 0;
}

/* Marks each module from the probe's verdicts. */
static void read_verdicts(struct cj_env_report *r, const struct cj_exec_result *result)
{
    json_error_t json_err;
    json_t *out =
        result->status == 0 ? json_loadb(result->out.data, result->out.len, 0, &json_err) : NULL;
    json_t *verdicts = json_object_get(out, "r");
    if (!json_is_object(verdicts)) {
        snprintf(r->error, sizeof r->error, "the probe did not run: status %d, stderr: %.160s",
                 result->status, result->err.data ? result->err.data : "");
        r->ok = false;
    }
    for (size_t i = 0; verdicts && i < r->n_modules; i++) {
        struct cj_module_state *m = &r->modules[i];
        const char *verdict = json_string_value(json_object_get(verdicts, m->name));
        m->imports = verdict && strcmp(verdict, "ok") == 0;
        if (!m->imports)
            snprintf(m->detail, sizeof m->detail, "%s", verdict ? verdict : "no verdict");
        if (m->required && !m->imports)
            r->ok = false;
    }
    json_decref(out);
}

void cj_envcheck_run(struct cj_engine *engine, const char *required, struct cj_env_report *report)
{
    memset(report, 0, sizeof *report);
    report->ok = add_list(report, CJ_OPENEDX_MODULES, false) && add_list(report, required, true);
    if (!report->ok) {
        snprintf(report->error, sizeof report->error, "more than %d modules, or a name too long",
                 CJ_ENVCHECK_MAX);
        return;
    }
    cleanup_buf struct cj_buf globals;
    cj_buf_init(&globals, 0);
    if (names_json(report, &globals) < 0) {
        snprintf(report->error, sizeof report->error, "out of memory");
        report->ok = false;
        return;
    }
    struct cj_exec_request request = {
        .code = probe_code,
        .code_len = sizeof probe_code - 1,
        .globals_json = globals.data,
        .globals_len = globals.len,
        .limits = probe_limits,
    };
    struct cj_exec_result result;
    cj_error err = {0};
    if (cj_engine_execute(engine, &request, &result, &err) < 0) {
        snprintf(report->error, sizeof report->error, "%.250s", err.msg);
        report->ok = false;
        return;
    }
    read_verdicts(report, &result);
    cj_exec_result_free(&result);
}

int cj_envcheck_to_json(const struct cj_env_report *r, struct cj_buf *out)
{
    int rc = cj_buf_printf(out, "\"modules_ok\": %s, \"modules\": {", r->ok ? "true" : "false");
    for (size_t i = 0; i < r->n_modules; i++) {
        const struct cj_module_state *m = &r->modules[i];
        rc |= cj_buf_printf(out, "%s\"%s\": {\"imports\": %s, \"required\": %s", i ? ", " : "",
                            m->name, m->imports ? "true" : "false", m->required ? "true" : "false");
        if (!m->imports) {
            rc |= cj_buf_append_str(out, ", \"detail\": ");
            rc |= cj_json_append_string(out, m->detail, strnlen(m->detail, sizeof m->detail));
        }
        rc |= cj_buf_append_str(out, "}");
    }
    rc |= cj_buf_append_str(out, "}");
    if (r->error[0]) {
        rc |= cj_buf_append_str(out, ", \"modules_error\": ");
        rc |= cj_json_append_string(out, r->error, strnlen(r->error, sizeof r->error));
    }
    return rc ? -1 : 0;
}

int cj_envcheck_to_text(const struct cj_env_report *r, struct cj_buf *out)
{
    int rc = cj_buf_printf(out, "\n%-22s %-12s %s\n", "MODULE", "IMPORTS", "DETAIL");
    for (size_t i = 0; i < r->n_modules; i++) {
        const struct cj_module_state *m = &r->modules[i];
        rc |= cj_buf_printf(out, "%-22s %-12s %s%s\n", m->name, m->imports ? "yes" : "NO",
                            m->imports ? "" : m->detail,
                            m->required && !m->imports ? "  <- required" : "");
    }
    if (r->error[0])
        rc |= cj_buf_printf(out, "module check failed: %s\n", r->error);
    return rc ? -1 : 0;
}
