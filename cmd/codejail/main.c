/* codejail: run one piece of Python in the sandbox, or check the sandbox.
 *
 *   codejail check [--json] [--warm] [--preimport MODULES] [--require-modules MODULES]
 *   codejail check [--json] --config FILE [--environment NAME]
 *   codejail run [--globals JSON | --globals-file PATH] [--file NAME=PATH] [--python-path ENTRY]
 *                [--limit NAME=VALUE] [--warm] [--preimport MODULES]
 *                [--without LAYER] FILE|-
 *
 * `run` prints the answer the HTTP API would give ({"globals_dict": ...} or
 * with "emsg"), exits 0 when the code was executed (whatever it did) and 1
 * when it could not be. `check` exits 0 only when execution is safe and every
 * module of --require-modules ("openedx": the Open edX set) imports; with
 * --config, the check of each sandbox environment of the daemon's file (or
 * of the one named), as the daemon would run it. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "config.h"
#include "engine.h"
#include "environments.h"
#include "pyjson.h"
#include "result.h"
#include "selfcheck.h"

#define MAX_CODE  (16u << 20)
#define MAX_FILE  (16u << 20)
#define MAX_PATHS 16

static int usage(void)
{
    fputs("usage: codejail check [--json] [--warm] [--preimport MODULES]\n"
          "                      [--require-modules MODULES|openedx]\n"
          "       codejail check [--json] --config FILE [--environment NAME]\n"
          "       codejail run [--globals JSON | --globals-file PATH] [--file NAME=PATH]\n"
          "                    [--python-path ENTRY]\n"
          "                    [--limit NAME=VALUE] [--warm] [--preimport MODULES]\n"
#ifdef CODEJAIL_TESTING
          "                    [--without LAYER]\n"
#endif
          "                    FILE|-\n",
          stderr);
    return 2;
}

static int read_all(const char *path, size_t max, struct cj_buf *out, cj_error *err)
{
    cleanup_file FILE *f = strcmp(path, "-") == 0 ? NULL : fopen(path, "rb");
    FILE *in = strcmp(path, "-") == 0 ? stdin : f;
    if (!in)
        return cj_fail_errno(err, "open %s", path);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, in)) > 0) {
        if (out->len + n > max)
            return cj_fail(err, EFBIG, "%s is larger than %zu bytes", path, max);
        if (cj_buf_append(out, chunk, n) < 0)
            return cj_fail_errno(err, "read %s", path);
    }
    if (ferror(in))
        return cj_fail_errno(err, "read %s", path);
    return 0;
}

struct options {
    struct cj_engine_config engine;
    const char *globals;
    struct cj_buf globals_file;
    struct cj_file files[4];
    struct cj_buf file_data[4];
    size_t n_files;
    const char *python_path[MAX_PATHS];
    size_t n_python_path;
    struct cj_limits limits;
    const char *required_modules;
    const char *config_path;
    const char *environment;
    int json;
};

static int parse(int argc, char **argv, struct options *o, cj_error *err)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},
        {"warm", no_argument, NULL, 'w'},
        {"globals", required_argument, NULL, 'g'},
        {"globals-file", required_argument, NULL, 'G'},
        {"file", required_argument, NULL, 'f'},
        {"python-path", required_argument, NULL, 'p'},
        {"limit", required_argument, NULL, 'l'},
        {"preimport", required_argument, NULL, 'i'},
        {"without", required_argument, NULL, 'x'},
        {"require-modules", required_argument, NULL, 'm'},
        {"config", required_argument, NULL, 'c'},
        {"environment", required_argument, NULL, 'e'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'j':
            o->json = 1;
            break;
        case 'w':
            o->engine.warm = true;
            break;
        case 'g':
            o->globals = optarg;
            break;
        case 'G':
            /* The last one counts, as with --globals. */
            cj_buf_free(&o->globals_file);
            cj_buf_init(&o->globals_file, 0);
            if (read_all(optarg, MAX_CODE, &o->globals_file, err) < 0)
                return -1;
            o->globals = o->globals_file.data ? o->globals_file.data : "";
            break;
        case 'i':
            o->engine.preimport = optarg;
            break;
        case 'm':
            o->required_modules = strcmp(optarg, "openedx") == 0 ? CJ_OPENEDX_MODULES : optarg;
            break;
        case 'c':
            o->config_path = optarg;
            break;
        case 'e':
            o->environment = optarg;
            break;
        case 'f': {
            char *eq = strchr(optarg, '=');
            if (!eq || o->n_files == 4)
                return cj_fail(err, EINVAL, "--file takes NAME=PATH (at most 4)");
            *eq = '\0';
            struct cj_buf *data = &o->file_data[o->n_files];
            cj_buf_init(data, 0);
            if (read_all(eq + 1, MAX_FILE, data, err) < 0) {
                cj_buf_free(data); /* not counted in n_files, so not freed by main */
                return -1;
            }
            o->files[o->n_files++] = (struct cj_file){optarg, data->data, data->len};
            break;
        }
        case 'p':
            if (o->n_python_path == MAX_PATHS)
                return cj_fail(err, EINVAL, "too many --python-path entries");
            o->python_path[o->n_python_path++] = optarg;
            break;
        case 'l':
            if (cj_limits_set(&o->limits, optarg, err) < 0)
                return -1;
            break;
        case 'x': {
#ifdef CODEJAIL_TESTING
            enum cj_layer layer;
            if (cj_layer_parse(optarg, &layer, err) < 0)
                return -1;
            o->engine.disabled |= CJ_LAYER_BIT(layer);
            break;
#else
            return cj_fail(err, EINVAL, "--without exists in testing builds only");
#endif
        }
        default:
            return cj_fail(err, EINVAL, "bad option");
        }
    }
    return 0;
}

static int run(struct options *o, const char *path)
{
    cj_error err = {0};
    cleanup_buf struct cj_buf code;
    cj_buf_init(&code, 0);
    if (read_all(path, MAX_CODE, &code, &err) < 0) {
        fprintf(stderr, "codejail: %s\n", err.msg);
        return 1;
    }
    const char *globals = o->globals ? o->globals : "{}";
    struct cj_json_span span;
    if (cj_pyjson_validate(globals, strlen(globals), CJ_RESULT_MAX_DEPTH, &span, &err) < 0 ||
        span.type != CJ_JSON_OBJECT) {
        fprintf(stderr, "codejail: --globals must be a JSON object%s%s\n", err.msg[0] ? ": " : "",
                err.msg);
        return 2;
    }
    struct cj_engine *engine;
    if (cj_engine_start(&o->engine, &engine, &err) < 0) {
        fprintf(stderr, "codejail: %s\n", err.msg);
        return 1;
    }
    struct cj_exec_request request = {
        .code = code.data ? code.data : "",
        .code_len = code.len,
        .globals_json = globals,
        .globals_len = strlen(globals),
        .python_path = o->python_path,
        .n_python_path = o->n_python_path,
        .files = o->files,
        .n_files = o->n_files,
        .limits = o->limits,
    };
    struct cj_exec_result result;
    int rc = cj_engine_execute(engine, &request, &result, &err);
    cj_engine_stop(engine);
    if (rc < 0) {
        fprintf(stderr, "codejail: %s\n", err.msg);
        return 1;
    }
    cleanup_buf struct cj_buf out;
    cj_buf_init(&out, 0);
    bool succeeded;
    rc = cj_result_render(&result, globals, strlen(globals), &out, &succeeded, &err);
    cj_exec_result_free(&result);
    if (rc < 0) {
        fprintf(stderr, "codejail: %s\n", err.msg);
        return 1;
    }
    printf("%s\n", out.data);
    return 0;
}

/* Prints one check; `name` (may be NULL) heads it. */
static int print_check(const struct options *o, const char *name, const struct cj_selfcheck *report)
{
    cleanup_buf struct cj_buf out;
    cj_buf_init(&out, 0);
    if ((o->json ? cj_selfcheck_to_json(report, &out) : cj_selfcheck_to_text(report, &out)) < 0) {
        fprintf(stderr, "codejail: out of memory\n");
        return -1;
    }
    if (name)
        printf(o->json ? "{\"environment\": \"%s\", \"check\": " : "environment %s\n", name);
    fputs(out.data, stdout);
    fputs(o->json && name ? "}\n" : o->json ? "\n" : "", stdout);
    return 0;
}

static int check_engine(const struct options *o, const struct cj_engine_config *engine_config,
                        cj_layer_set required, const char *egress_probe,
                        const char *required_modules, const char *name)
{
    cj_error err = {0};
    struct cj_engine *engine;
    if (cj_engine_start(engine_config, &engine, &err) < 0) {
        fprintf(stderr, "codejail: %s%s%s\n", name ? name : "", name ? ": " : "", err.msg);
        return 1;
    }
    struct cj_selfcheck report;
    cj_selfcheck_run(engine, required, egress_probe, &report);
    cj_selfcheck_modules(engine, required_modules, &report);
    cj_engine_stop(engine);
    if (print_check(o, name, &report) < 0)
        return 1;
    return report.ok ? 0 : 1;
}

/* Each environment of the daemon's file, one after the other, as the
 * daemon checks it: with outer ids of a block no daemon uses, so that a
 * check beside a running daemon shares no id (and no NPROC) with it. */
static int check_config(const struct options *o)
{
    cj_error err = {0};
    struct cj_config config;
    if (cj_config_load(&config, CJ_PROFILE_PRODUCTION, o->config_path, &err) < 0) {
        fprintf(stderr, "codejail: %s\n", err.msg);
        return 2;
    }
    int rc = 0;
    bool found = false;
    for (size_t i = 0; i < config.n_environments; i++) {
        const struct cj_environment_config *e = &config.environments[i];
        if (o->environment && strcmp(o->environment, e->name) != 0)
            continue;
        found = true;
        struct cj_engine_config engine_config;
        cj_environment_engine_config(&config, e, CJ_CHECK_UID_BLOCK, &engine_config);
        engine_config.disabled = o->engine.disabled;
        rc |= check_engine(o, &engine_config, config.required, config.egress_probe,
                           e->required_modules, e->name);
    }
    if (!found) {
        fprintf(stderr, "codejail: %s: no environment \"%s\"\n", o->config_path, o->environment);
        rc = 2;
    }
    cj_config_free(&config);
    return rc;
}

static int check(struct options *o)
{
    if (o->config_path)
        return check_config(o);
    return check_engine(o, &o->engine, CJ_ALL_LAYERS, NULL, o->required_modules, NULL);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    static struct options o;
    o.limits = cj_limits_default;
    cj_buf_init(&o.globals_file, 0);
    const char *command = argv[1];
    cj_error err = {0};
    int rc;
    if (parse(argc - 1, argv + 1, &o, &err) < 0) {
        fprintf(stderr, "codejail: %s\n", err.msg);
        rc = 2;
    } else if (strcmp(command, "check") == 0 && optind + 1 == argc)
        rc = check(&o);
    else if (strcmp(command, "run") == 0 && optind + 2 == argc)
        rc = run(&o, argv[optind + 1]);
    else
        rc = usage();
    for (size_t i = 0; i < o.n_files; i++)
        cj_buf_free(&o.file_data[i]);
    cj_buf_free(&o.globals_file);
    return rc;
}
