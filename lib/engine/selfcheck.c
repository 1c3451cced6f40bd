#include "selfcheck.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "cleanup.h"
#include "jsonstr.h"

/* Each probe leaves its verdict in `r`: 'denied' is what a safe sandbox
 * gives; anything else names what happened instead. */
static const struct probe {
    const char *name;
    const char *preimport_name; /* the same probe in the pre-import lane */
    const char *code;
    const char *expect;
} probes[] = {
    {"basic_execution", "preimport_basic_execution", "x = x + 1", NULL},
    {"list_root_denied", "preimport_list_root_denied",
     "import os\n"
     "try:\n    os.listdir('/')\n    r = 'allowed'\n"
     "except PermissionError:\n    r = 'denied'\n"
     "except Exception as e:\n    r = repr(e)\n",
     "denied"},
    {"subprocess_denied", "preimport_subprocess_denied",
     "import subprocess\n"
     "try:\n    subprocess.run(['/usr/bin/true'])\n    r = 'allowed'\n"
     "except (PermissionError, BlockingIOError):\n    r = 'denied'\n"
     "except Exception as e:\n    r = repr(e)\n",
     "denied"},
    {"inet_socket_denied", "preimport_inet_socket_denied",
     "import socket\n"
     "try:\n    socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n    r = 'allowed'\n"
     "except PermissionError:\n    r = 'denied'\n"
     "except Exception as e:\n    r = repr(e)\n",
     "denied"},
};

static void run_probe(struct cj_engine *engine, const struct probe *p, unsigned lane,
                      struct cj_check *check)
{
    static const char globals[] = "{\"x\": 16}";
    struct cj_exec_request request = {
        .code = p->code,
        .code_len = strlen(p->code),
        .globals_json = globals,
        .globals_len = sizeof globals - 1,
        .limits = cj_limits_default,
        .force_lane = lane + 1,
    };
    struct cj_exec_result result;
    cj_error err = {0};
    check->name = lane ? p->preimport_name : p->name;
    check->passed = false;
    if (cj_engine_execute(engine, &request, &result, &err) < 0) {
        snprintf(check->detail, sizeof check->detail, "%.250s", err.msg);
        return;
    }
    json_error_t json_err;
    json_t *out =
        result.status == 0 ? json_loadb(result.out.data, result.out.len, 0, &json_err) : NULL;
    if (!out) {
        snprintf(check->detail, sizeof check->detail, "status %d, stderr: %.180s", result.status,
                 result.err.data ? result.err.data : "");
    } else if (!p->expect) {
        json_int_t x = json_integer_value(json_object_get(out, "x"));
        check->passed = x == 17;
        snprintf(check->detail, sizeof check->detail, "x = %lld", (long long)x);
    } else {
        const char *r = json_string_value(json_object_get(out, "r"));
        check->passed = r && strcmp(r, p->expect) == 0;
        snprintf(check->detail, sizeof check->detail, "%s", r ? r : "no verdict");
    }
    json_decref(out);
    cj_exec_result_free(&result);
}

/* The service's own network must not reach the probe address: a connection
 * that succeeds means the deployment's egress lockdown is missing. */
static void run_egress_probe(const char *target, struct cj_check *check)
{
    check->name = "service_egress_denied";
    check->passed = false;
    char host[256];
    const char *colon = strrchr(target, ':');
    if (!colon || (size_t)(colon - target) >= sizeof host) {
        snprintf(check->detail, sizeof check->detail, "egress probe '%s' is not host:port", target);
        return;
    }
    memcpy(host, target, (size_t)(colon - target));
    host[colon - target] = '\0';
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *addrs = NULL;
    int gai = getaddrinfo(host, colon + 1, &hints, &addrs);
    if (gai != 0) {
        check->passed = true;
        snprintf(check->detail, sizeof check->detail, "cannot resolve %.100s: %.100s", host,
                 gai_strerror(gai));
        return;
    }
    check->passed = true;
    snprintf(check->detail, sizeof check->detail, "connect to %s failed", target);
    for (struct addrinfo *a = addrs; a; a = a->ai_next) {
        cleanup_close int fd =
            socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS)
            continue;
        struct pollfd pfd = {fd, POLLOUT, 0};
        int soerr = 1;
        socklen_t len = sizeof soerr;
        if (poll(&pfd, 1, 3000) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 &&
            soerr == 0) {
            check->passed = false;
            snprintf(check->detail, sizeof check->detail, "the service can connect to %s", target);
            break;
        }
    }
    freeaddrinfo(addrs);
}

void cj_selfcheck_run(struct cj_engine *engine, cj_layer_set required, const char *egress_probe,
                      struct cj_selfcheck *report)
{
    memset(report, 0, sizeof *report);
    cj_engine_layers(engine, &report->layers);
    report->ok = true;
    for (int i = 0; i < CJ_LAYER_COUNT; i++) {
        enum cj_layer_state state = report->layers.state[i];
        bool needed = (required & CJ_LAYER_BIT(i)) != 0;
        /* "Every layer the host offers": unavailable ones are not offered. */
        report->layer_ok[i] = state == CJ_LAYER_ACTIVE ||
                              (state == CJ_LAYER_UNAVAILABLE && required == CJ_ALL_LAYERS) ||
                              !needed;
        report->ok &= report->layer_ok[i];
    }
    /* Every lane (plain and pre-import interpreters) must pass every probe. */
    for (unsigned lane = 0; lane < cj_engine_lanes(engine); lane++) {
        for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
            struct cj_check *check = &report->checks[report->n_checks++];
            run_probe(engine, &probes[i], lane, check);
            report->ok &= check->passed;
        }
    }
    if (egress_probe && *egress_probe) {
        struct cj_check *check = &report->checks[report->n_checks++];
        run_egress_probe(egress_probe, check);
        report->ok &= check->passed;
    }
}

void cj_selfcheck_modules(struct cj_engine *engine, const char *required,
                          struct cj_selfcheck *report)
{
    cj_envcheck_run(engine, required, &report->env);
    report->env_checked = true;
    report->ok &= report->env.ok;
}

int cj_selfcheck_to_json(const struct cj_selfcheck *r, struct cj_buf *out)
{
    int rc = cj_buf_printf(out, "{\"ok\": %s, \"layers\": {", r->ok ? "true" : "false");
    for (int i = 0; i < CJ_LAYER_COUNT; i++) {
        rc |= cj_buf_printf(
            out, "%s\"%s\": {\"state\": \"%s\", \"ok\": %s, \"detail\": ", i ? ", " : "",
            cj_layer_name((enum cj_layer)i), cj_layer_state_name(r->layers.state[i]),
            r->layer_ok[i] ? "true" : "false");
        rc |= cj_json_append_string(out, r->layers.detail[i], strlen(r->layers.detail[i]));
        rc |= cj_buf_append_str(out, "}");
    }
    rc |= cj_buf_append_str(out, "}, \"checks\": {");
    for (size_t i = 0; i < r->n_checks; i++) {
        const struct cj_check *c = &r->checks[i];
        rc |= cj_buf_printf(out, "%s\"%s\": {\"passed\": %s, \"detail\": ", i ? ", " : "", c->name,
                            c->passed ? "true" : "false");
        rc |= cj_json_append_string(out, c->detail, strnlen(c->detail, sizeof c->detail));
        rc |= cj_buf_append_str(out, "}");
    }
    rc |= cj_buf_append_str(out, "}");
    if (r->env_checked) {
        rc |= cj_buf_append_str(out, ", ");
        rc |= cj_envcheck_to_json(&r->env, out);
    }
    rc |= cj_buf_append_str(out, "}");
    return rc ? -1 : 0;
}

int cj_selfcheck_to_text(const struct cj_selfcheck *r, struct cj_buf *out)
{
    int rc = cj_buf_printf(out, "%-22s %-12s %s\n", "LAYER", "STATE", "DETAIL");
    for (int i = 0; i < CJ_LAYER_COUNT; i++)
        rc |= cj_buf_printf(out, "%-22s %-12s %s%s\n", cj_layer_name((enum cj_layer)i),
                            cj_layer_state_name(r->layers.state[i]), r->layers.detail[i],
                            r->layer_ok[i] ? "" : "  <- required");
    rc |= cj_buf_printf(out, "\n%-22s %-12s %s\n", "CHECK", "RESULT", "DETAIL");
    for (size_t i = 0; i < r->n_checks; i++)
        rc |= cj_buf_printf(out, "%-22s %-12s %s\n", r->checks[i].name,
                            r->checks[i].passed ? "pass" : "FAIL", r->checks[i].detail);
    if (r->env_checked)
        rc |= cj_envcheck_to_text(&r->env, out);
    rc |= cj_buf_printf(out, "\n%s\n", r->ok ? "safe to execute" : "NOT SAFE: execution refused");
    return rc ? -1 : 0;
}
