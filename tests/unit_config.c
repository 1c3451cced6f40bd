#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "envcheck.h"

static const char *const env_names[] = {"CODEJAIL_PROFILE", "CODEJAIL_LISTEN", "CODEJAIL_PORT",
                                        "PORT", "CODEJAIL_ENABLED"};

static char dir[] = "/tmp/unit-config-XXXXXX";
static char path[64];

static int setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof env_names / sizeof *env_names; i++)
        unsetenv(env_names[i]);
    return 0;
}

static void write_file(const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* Loads `text` as the file; NULL: no file. */
static int load_text(const char *text, enum cj_profile profile, struct cj_config *c, cj_error *err)
{
    if (text)
        write_file(text);
    return cj_config_load(c, profile, text ? path : NULL, err);
}

static void assert_limits(const struct cj_limits *l, uint64_t cpu, uint64_t realtime, uint64_t vmem,
                          uint64_t fsize, uint64_t nproc)
{
    assert_int_equal(l->cpu, cpu);
    assert_int_equal(l->realtime, realtime);
    assert_int_equal(l->vmem, vmem);
    assert_int_equal(l->fsize, fsize);
    assert_int_equal(l->nproc, nproc);
}

static void assert_common_defaults(const struct cj_config *c)
{
    assert_int_equal(c->port, 8080);
    assert_int_equal(c->required, CJ_ALL_LAYERS);
    assert_null(c->egress_probe);
    assert_memory_equal(&c->limits, &cj_limits_default, sizeof c->limits);
    assert_int_equal(c->n_overrides, 0);
    assert_int_equal(c->max_concurrency, 0);
    assert_int_equal(c->queue_size, 64);
    assert_int_equal(c->max_body_bytes, 32u << 20);
    assert_int_equal(c->max_fields, 1000);
    assert_int_equal(c->max_output_bytes, 64u << 20);
    assert_int_equal(c->connection_timeout_s, 30);
    assert_true(c->environments[0].warm);
    assert_int_equal(c->environments[0].pool_size, 2);
    assert_non_null(strstr(c->environments[0].preimport, "random2,six.moves,calc"));
    assert_null(c->environments[0].env_dir);
    assert_int_equal(c->uid_base, 0);
    assert_int_equal(c->tmp_size, 0);
    assert_false(c->log_code);
}

static void test_defaults_production(void **state)
{
    (void)state;
    struct cj_config c;
    cj_error err;
    assert_int_equal(load_text(NULL, CJ_PROFILE_PRODUCTION, &c, &err), 0);
    assert_int_equal(c.profile, CJ_PROFILE_PRODUCTION);
    assert_string_equal(c.listen, "0.0.0.0");
    assert_false(c.enabled);
    assert_string_equal(c.environments[0].required_modules, CJ_OPENEDX_MODULES);
    assert_common_defaults(&c);
    cj_config_free(&c);
}

static void test_defaults_development(void **state)
{
    (void)state;
    struct cj_config c;
    cj_error err;
    assert_int_equal(load_text(NULL, CJ_PROFILE_DEVELOPMENT, &c, &err), 0);
    assert_int_equal(c.profile, CJ_PROFILE_DEVELOPMENT);
    assert_string_equal(c.listen, "127.0.0.1");
    assert_true(c.enabled);
    assert_string_equal(c.environments[0].required_modules, "");
    assert_common_defaults(&c);
    cj_config_free(&c);

    /* An empty file changes nothing. */
    assert_int_equal(load_text("{}", CJ_PROFILE_DEVELOPMENT, &c, &err), 0);
    assert_string_equal(c.listen, "127.0.0.1");
    assert_common_defaults(&c);
    cj_config_free(&c);
}

static void test_example_file(void **state)
{
    (void)state;
    const char *src = getenv("CODEJAIL_SOURCE_DIR");
    char example[4096];
    snprintf(example, sizeof example, "%s/deploy/codejail.example.json", src ? src : ".");
    struct cj_config c;
    cj_error err;
    if (cj_config_load(&c, CJ_PROFILE_DEVELOPMENT, example, &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(c.profile, CJ_PROFILE_PRODUCTION);
    assert_string_equal(c.listen, "0.0.0.0");
    assert_int_equal(c.port, 8080);
    assert_true(c.enabled);
    assert_int_equal(c.required, CJ_ALL_LAYERS);
    assert_string_equal(c.egress_probe, "10.0.0.1:5432");
    assert_limits(&c.limits, 1, 3, 536870912, 1048576, 15);
    assert_int_equal(c.n_overrides, 1);
    assert_string_equal(c.overrides[0].name, "course-v1:edX+DemoX+Demo_Course");
    assert_limits(&c.overrides[0].limits, 5, 10, 536870912, 1048576, 15);
    assert_int_equal(c.max_concurrency, 0);
    assert_int_equal(c.queue_size, 64);
    assert_int_equal(c.max_body_bytes, 33554432);
    assert_int_equal(c.max_fields, 1000);
    assert_int_equal(c.connection_timeout_s, 30);
    assert_int_equal(c.environments[0].pool_size, 4);
    assert_true(c.environments[0].warm);
    assert_string_equal(c.environments[0].preimport,
                        "numpy,random2,six.moves,calc,chem.chemcalc,chem.chemtools,"
                        "chem.miller,symmath,eia,verifiers.draganddrop");
    assert_string_equal(c.environments[0].required_modules, CJ_OPENEDX_MODULES);
    assert_int_equal(c.max_output_bytes, 64u << 20);
    assert_null(c.environments[0].env_dir);
    assert_int_equal(c.uid_base, 0);
    assert_int_equal(c.tmp_size, 0);
    assert_false(c.log_code);
    cj_config_free(&c);
}

static void test_every_key(void **state)
{
    (void)state;
    static const char text[] =
        "{\"_comment\": \"ignored\", \"profile\": \"development\", \"listen\": \"::1\", "
        "\"port\": 9000, \"enabled\": false, \"required_layers\": [\"seccomp\", \"netns\", "
        "\"seccomp\"], \"egress_probe\": \"[fd00::1]:443\", \"limits\": {\"CPU\": 2, "
        "\"REALTIME\": 0, \"_note\": 1, \"PROXY\": 0}, \"max_concurrency\": 3, \"queue_size\": 0, "
        "\"max_body_bytes\": 1000, \"max_fields\": 2, \"connection_timeout\": 5, "
        "\"pool_size\": 8, \"warm\": false, \"preimport\": \"numpy,scipy.linalg,_x1\", "
        "\"env_dir\": \"/opt/env\", \"uid_base\": 100000, \"tmp_size\": 4194304, "
        "\"log_code\": true, \"selfcheck_interval\": 0, \"helper_timeout\": 3600}";
    struct cj_config c;
    cj_error err;
    if (load_text(text, CJ_PROFILE_PRODUCTION, &c, &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(c.profile, CJ_PROFILE_DEVELOPMENT);
    assert_string_equal(c.listen, "::1");
    assert_int_equal(c.port, 9000);
    assert_false(c.enabled);
    assert_int_equal(c.required, CJ_LAYER_BIT(CJ_LAYER_SECCOMP) | CJ_LAYER_BIT(CJ_LAYER_NETNS));
    assert_string_equal(c.egress_probe, "[fd00::1]:443");
    assert_limits(&c.limits, 2, 0, cj_limits_default.vmem, cj_limits_default.fsize,
                  cj_limits_default.nproc);
    assert_int_equal(c.max_concurrency, 3);
    assert_int_equal(c.queue_size, 0);
    assert_int_equal(c.max_body_bytes, 1000);
    assert_int_equal(c.max_fields, 2);
    assert_int_equal(c.connection_timeout_s, 5);
    assert_int_equal(c.environments[0].pool_size, 8);
    assert_false(c.environments[0].warm);
    assert_string_equal(c.environments[0].preimport, "numpy,scipy.linalg,_x1");
    assert_string_equal(c.environments[0].env_dir, "/opt/env");
    assert_int_equal(c.uid_base, 100000);
    assert_int_equal(c.tmp_size, 4194304);
    assert_true(c.log_code);
    assert_int_equal(c.selfcheck_interval_s, 0);
    assert_int_equal(c.helper_timeout_s, 3600);
    cj_config_free(&c);

    /* null and "" mean "none" where a key allows it. */
    assert_int_equal(load_text("{\"egress_probe\": null, \"preimport\": \"\", \"env_dir\": null, "
                               "\"required_layers\": []}",
                               CJ_PROFILE_PRODUCTION, &c, &err),
                     0);
    assert_null(c.egress_probe);
    assert_null(c.environments[0].preimport);
    assert_null(c.environments[0].env_dir);
    assert_int_equal(c.required, 0);
    cj_config_free(&c);
}

struct bad_file {
    const char *text;
    const char *msg; /* after "<file>: " */
};

static const struct bad_file bad_files[] = {
    {"{\"port\": }", "line 1 column 10: unexpected token near '}'"},
    {"{\"port\": 1, \"port\": 2}", "line 1 column 18: duplicate object key near '\"port\"'"},
    {"[1]", "expected a JSON object at the top level"},
    {"{\"prot\": 1}",
     "prot: unknown key (known: profile, listen, port, enabled, required_layers, egress_probe, "
     "limits, limit_overrides, max_concurrency, queue_size, max_body_bytes, max_fields, "
     "connection_timeout, pool_size, warm, preimport, required_modules, env_dir, environments, "
     "context_environments, uid_base, tmp_size, max_output_bytes, log_code, selfcheck_interval, "
     "helper_timeout, landlock_min_abi; keys starting with '_' are ignored)"},
    {"{\"helper_timeout\": 0}", "helper_timeout: expected an integer from 1 to 3600, got 0"},
    {"{\"selfcheck_interval\": 86401}",
     "selfcheck_interval: expected an integer from 0 to 86400, got 86401"},
    {"{\"profile\": \"prod\"}",
     "profile: expected \"development\" or \"production\", got \"prod\""},
    {"{\"profile\": null}", "profile: expected \"development\" or \"production\", got null"},
    {"{\"listen\": \"localhost\"}", "listen: expected an IPv4 or IPv6 address, got \"localhost\""},
    {"{\"listen\": 5}", "listen: expected an IPv4 or IPv6 address, got 5"},
    {"{\"port\": 0}", "port: expected an integer from 1 to 65535, got 0"},
    {"{\"port\": 65536}", "port: expected an integer from 1 to 65535, got 65536"},
    {"{\"port\": \"80\"}", "port: expected an integer from 1 to 65535, got \"80\""},
    {"{\"enabled\": 1}", "enabled: expected true or false, got 1"},
    {"{\"enabled\": \"yes\"}", "enabled: expected true or false, got \"yes\""},
    {"{\"required_layers\": \"none\"}",
     "required_layers: expected \"all\" or a list of layer names, got \"none\""},
    {"{\"required_layers\": [\"seccomp\", \"selinux\"]}",
     "required_layers[1]: unknown layer 'selinux' (one of userns, mountns, pidns, netns, "
     "seccomp, landlock, apparmor, rlimits, cgroups)"},
    {"{\"required_layers\": [1]}", "required_layers[0]: expected a layer name, got 1"},
    {"{\"egress_probe\": \"10.0.0.1\"}",
     "egress_probe: expected \"host:port\" or null, got \"10.0.0.1\""},
    {"{\"egress_probe\": \"::1:80\"}",
     "egress_probe: expected \"host:port\" or null, got \"::1:80\""},
    {"{\"egress_probe\": \"db:0\"}", "egress_probe: expected \"host:port\" or null, got \"db:0\""},
    {"{\"limits\": {\"CPU\": \"1\"}}", "limits.CPU: expected a non-negative integer, got \"1\""},
    {"{\"limits\": {\"CPU\": -1}}", "limits.CPU: expected a non-negative integer, got -1"},
    {"{\"limits\": {\"VMEM\": 1.5}}", "limits.VMEM: expected a non-negative integer, got 1.5"},
    {"{\"limits\": {\"MEMORY\": \"x\"}}",
     "limits: unknown limit 'MEMORY' (one of CPU, REALTIME, VMEM, FSIZE, NPROC)"},
    {"{\"limits\": {\"cpu\": 1}}",
     "limits: unknown limit 'cpu' (one of CPU, REALTIME, VMEM, FSIZE, NPROC)"},
    {"{\"limits\": {\"CPU\": 4611686018427387904}}",
     "limits.CPU: limit CPU=4611686018427387904 is too large"},
    {"{\"limits\": {\"PROXY\": 1}}",
     "limits.PROXY: only 0 is supported: there is no proxy process"},
    {"{\"limits\": [1]}",
     "limits: expected an object of limits (CPU, REALTIME, VMEM, FSIZE, NPROC), got [1]"},
    {"{\"limit_overrides\": []}",
     "limit_overrides: expected an object of named limit sets, got []"},
    {"{\"limit_overrides\": {\"a\": 5}}",
     "limit_overrides[\"a\"]: expected an object of limits (CPU, REALTIME, VMEM, FSIZE, NPROC), "
     "got 5"},
    {"{\"limit_overrides\": {\"course\": {\"NPROC\": true}}}",
     "limit_overrides[\"course\"].NPROC: expected a non-negative integer, got true"},
    {"{\"max_concurrency\": -2}",
     "max_concurrency: expected an integer from 0 to 4294967295, got -2"},
    {"{\"queue_size\": 4294967296}",
     "queue_size: expected an integer from 0 to 4294967295, got 4294967296"},
    {"{\"max_body_bytes\": 0}", "max_body_bytes: expected an integer of at least 1, got 0"},
    {"{\"max_fields\": 0}", "max_fields: expected an integer from 1 to 4294967295, got 0"},
    {"{\"required_modules\": \"calc;x\"}",
     "required_modules: expected module names separated by commas or null, got \"calc;x\""},
    {"{\"connection_timeout\": 0}",
     "connection_timeout: expected an integer from 1 to 4294967295, got 0"},
    {"{\"pool_size\": null}", "pool_size: expected an integer from 0 to 4294967295, got null"},
    {"{\"warm\": \"true\"}", "warm: expected true or false, got \"true\""},
    {"{\"preimport\": \"numpy, sympy\"}",
     "preimport: expected module names separated by commas (\"numpy,sympy\") or null, got "
     "\"numpy, sympy\""},
    {"{\"preimport\": \"os;os.system('id')\"}",
     "preimport: expected module names separated by commas (\"numpy,sympy\") or null, got "
     "\"os;os.system('id')\""},
    {"{\"preimport\": \"numpy,\"}",
     "preimport: expected module names separated by commas (\"numpy,sympy\") or null, got "
     "\"numpy,\""},
    {"{\"env_dir\": \"relative/env\"}",
     "env_dir: expected an absolute path or null, got \"relative/env\""},
    {"{\"uid_base\": 4294899645}", "uid_base: expected an integer from 0 to 4294899644, got "
                                   "4294899645"},
    {"{\"tmp_size\": -1}", "tmp_size: expected a non-negative integer, got -1"},
    {"{\"log_code\": true}",
     "log_code: not allowed with profile \"production\" (it logs submitted code and globals)"},
    {"{\"environments\": []}", "environments: expected an object of named environments, got []"},
    {"{\"environments\": {\"default\": {}}}",
     "environments[\"default\"]: the default environment is set by the top-level keys (env_dir, "
     "warm, pool_size, preimport, required_modules)"},
    {"{\"environments\": {\"Next\": {\"env_dir\": \"/e\"}}}",
     "environments[\"Next\"]: a name is 1 to 32 characters of a-z, 0-9, '_' and '-', starting "
     "with a letter or digit"},
    {"{\"environments\": {\"next\": {}}}", "environments[\"next\"]: env_dir is required"},
    {"{\"environments\": {\"next\": 1}}", "environments[\"next\"]: expected an object, got 1"},
    {"{\"environments\": {\"next\": {\"env_dir\": \"/e\", \"limits\": {}}}}",
     "environments[\"next\"].limits: unknown key (known: env_dir, warm, pool_size, preimport, "
     "required_modules)"},
    {"{\"environments\": {\"next\": {\"env_dir\": \"e\"}}}",
     "environments[\"next\"].env_dir: expected an absolute path or null, got \"e\""},
    {"{\"context_environments\": {\"course-v1:A+B+C\": \"next\"}}",
     "context_environments[\"course-v1:A+B+C\"]: no environment \"next\" (configured: see "
     "\"environments\")"},
    {"{\"context_environments\": {\"course-v1:*+B\": \"default\"}}",
     "context_environments[\"course-v1:*+B\"]: expected a context, or a prefix (not empty) "
     "followed by one '*' at the end"},
    {"{\"context_environments\": {\"*\": \"default\"}}",
     "context_environments[\"*\"]: expected a context, or a prefix (not empty) followed by "
     "one '*' at the end"},
    {"{\"context_environments\": {\"x\": 1}}",
     "context_environments[\"x\"]: expected an environment name, got 1"},
};

/* Environments inherit the top-level keys they do not set, and contexts go
 * to them exactly, by the longest prefix, or to the default. */
static void test_environments(void **state)
{
    (void)state;
    static const char text[] =
        "{\"pool_size\": 3, \"preimport\": \"numpy\", \"required_modules\": \"six\", "
        "\"environments\": {\"next\": {\"env_dir\": \"/opt/next\", \"warm\": false, "
        "\"_note\": \"a comment\"}, "
        "\"old\": {\"env_dir\": \"/opt/old\", \"pool_size\": 0, \"preimport\": null}}, "
        "\"context_environments\": {\"course-v1:MITx+*\": \"next\", "
        "\"course-v1:MITx+6.00x+*\": \"old\", \"course-v1:MITx+6.00x+2026\": \"default\", "
        "\"course-v1:HarvardX+CS50+2026\": \"old\"}}";
    struct cj_config c;
    cj_error err;
    if (load_text(text, CJ_PROFILE_PRODUCTION, &c, &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(c.n_environments, 3);
    const struct cj_environment_config *d = &c.environments[0], *next = NULL, *old = NULL;
    for (size_t i = 1; i < c.n_environments; i++) {
        if (strcmp(c.environments[i].name, "next") == 0)
            next = &c.environments[i];
        else if (strcmp(c.environments[i].name, "old") == 0)
            old = &c.environments[i];
    }
    assert_non_null(next);
    assert_non_null(old);
    assert_string_equal(d->name, "default");
    assert_null(d->env_dir);
    assert_string_equal(next->env_dir, "/opt/next");
    assert_false(next->warm);
    assert_int_equal(next->pool_size, 3);
    assert_string_equal(next->preimport, "numpy");
    assert_string_equal(next->required_modules, "six");
    assert_true(old->warm);
    assert_int_equal(old->pool_size, 0);
    assert_null(old->preimport);

    static const struct {
        const char *context, *environment;
    } routes[] = {
        {NULL, "default"},
        {"", "default"},
        {"course-v1:MITx+18.01x+2026", "next"},
        {"course-v1:MITx+", "next"},
        {"course-v1:MITx", "default"},
        {"course-v1:MITx+6.00x+2025", "old"},
        {"course-v1:MITx+6.00x+2026", "default"},
        {"course-v1:HarvardX+CS50+2026", "old"},
        {"course-v1:HarvardX+CS50+2026x", "default"},
    };
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
        size_t env = cj_config_environment_for(&c, routes[i].context);
        if (strcmp(c.environments[env].name, routes[i].environment) != 0)
            fail_msg("%s went to %s, not %s", routes[i].context ? routes[i].context : "(null)",
                     c.environments[env].name, routes[i].environment);
    }
    assert_true(cj_environment_config_equal(next, next));
    assert_false(cj_environment_config_equal(next, old));
    cj_config_free(&c);
}

static void test_landlock_min_abi(void **state)
{
    (void)state;
    struct cj_config c;
    cj_error err;
    assert_int_equal(load_text("{}", CJ_PROFILE_PRODUCTION, &c, &err), 0);
    assert_int_equal(c.landlock_min_abi, 0);
    cj_config_free(&c);
    assert_int_equal(load_text("{\"landlock_min_abi\": 4}", CJ_PROFILE_PRODUCTION, &c, &err), 0);
    assert_int_equal(c.landlock_min_abi, 4);
    cj_config_free(&c);
    assert_int_equal(load_text("{\"landlock_min_abi\": 256}", CJ_PROFILE_PRODUCTION, &c, &err), -1);
    assert_non_null(
        strstr(err.msg, "landlock_min_abi: expected an integer from 0 to 255, got 256"));
}

static void test_bad_files(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_files / sizeof *bad_files; i++) {
        struct cj_config c = {.port = 1};
        cj_error err;
        if (load_text(bad_files[i].text, CJ_PROFILE_PRODUCTION, &c, &err) != -1)
            fail_msg("accepted %s", bad_files[i].text);
        char want[sizeof err.msg];
        snprintf(want, sizeof want, "%s: %s", path, bad_files[i].msg);
        assert_string_equal(err.msg, want);
        assert_int_equal(c.port, 1); /* untouched on failure */
    }
}

static void test_missing_file(void **state)
{
    (void)state;
    struct cj_config c;
    cj_error err;
    assert_int_equal(cj_config_load(&c, CJ_PROFILE_PRODUCTION, "/nonexistent/codejail.json", &err),
                     -1);
    assert_string_equal(err.msg, "/nonexistent/codejail.json: No such file or directory");
}

static void test_env(void **state)
{
    (void)state;
    struct cj_config c;
    cj_error err;
    setenv("CODEJAIL_LISTEN", "10.1.2.3", 1);
    setenv("PORT", "9001", 1);
    setenv("CODEJAIL_ENABLED", "YES", 1);
    assert_int_equal(load_text("{\"listen\": \"127.0.0.1\", \"port\": 7000, \"enabled\": false}",
                               CJ_PROFILE_PRODUCTION, &c, &err),
                     0);
    assert_string_equal(c.listen, "10.1.2.3");
    assert_int_equal(c.port, 9001);
    assert_true(c.enabled);
    cj_config_free(&c);

    /* CODEJAIL_PORT wins over PORT, whatever PORT holds. */
    setenv("PORT", "not a port", 1);
    setenv("CODEJAIL_PORT", "9002", 1);
    static const char *const off[] = {"0", "false", "No", "FALSE"};
    for (size_t i = 0; i < sizeof off / sizeof *off; i++) {
        setenv("CODEJAIL_ENABLED", off[i], 1);
        assert_int_equal(load_text(NULL, CJ_PROFILE_DEVELOPMENT, &c, &err), 0);
        assert_int_equal(c.port, 9002);
        assert_false(c.enabled);
        cj_config_free(&c);
    }
    static const char *const on[] = {"1", "true", "True", "yes"};
    for (size_t i = 0; i < sizeof on / sizeof *on; i++) {
        setenv("CODEJAIL_ENABLED", on[i], 1);
        assert_int_equal(load_text(NULL, CJ_PROFILE_PRODUCTION, &c, &err), 0);
        assert_true(c.enabled);
        cj_config_free(&c);
    }
}

struct bad_env {
    const char *name;
    const char *value;
    const char *msg;
};

static const struct bad_env bad_envs[] = {
    {"CODEJAIL_ENABLED", "on",
     "environment CODEJAIL_ENABLED: expected 1, true, yes, 0, false or no, got \"on\""},
    {"CODEJAIL_ENABLED", "",
     "environment CODEJAIL_ENABLED: expected 1, true, yes, 0, false or no, "
     "got \"\""},
    {"CODEJAIL_PORT", "80x",
     "environment CODEJAIL_PORT: expected a port number from 1 to 65535, got \"80x\""},
    {"CODEJAIL_PORT", "0",
     "environment CODEJAIL_PORT: expected a port number from 1 to 65535, "
     "got \"0\""},
    {"PORT", "-80", "environment PORT: expected a port number from 1 to 65535, got \"-80\""},
    {"PORT", "99999999999999999999",
     "environment PORT: expected a port number from 1 to 65535, got \"99999999999999999999\""},
    {"CODEJAIL_LISTEN", "example.com",
     "environment CODEJAIL_LISTEN: expected an IPv4 or IPv6 address, got \"example.com\""},
    {"CODEJAIL_PROFILE", "prod",
     "environment CODEJAIL_PROFILE: expected development or production, got \"prod\""},
};

static void test_bad_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_envs / sizeof *bad_envs; i++) {
        setup(NULL);
        setenv(bad_envs[i].name, bad_envs[i].value, 1);
        struct cj_config c;
        cj_error err;
        assert_int_equal(load_text("{}", CJ_PROFILE_PRODUCTION, &c, &err), -1);
        assert_string_equal(err.msg, bad_envs[i].msg);
    }
}

/* The profile is chosen first: argument < file's "profile" < CODEJAIL_PROFILE.
 * Its defaults then yield to every key the file sets, and the environment's
 * other variables to nothing. */
static void test_profile_precedence(void **state)
{
    (void)state;
    struct cj_config c;
    cj_error err;
    assert_int_equal(load_text("{\"profile\": \"development\"}", CJ_PROFILE_PRODUCTION, &c, &err),
                     0);
    assert_int_equal(c.profile, CJ_PROFILE_DEVELOPMENT);
    assert_string_equal(c.listen, "127.0.0.1");
    cj_config_free(&c);

    setenv("CODEJAIL_PROFILE", "production", 1);
    assert_int_equal(load_text("{\"profile\": \"development\", \"warm\": true}",
                               CJ_PROFILE_DEVELOPMENT, &c, &err),
                     0);
    assert_int_equal(c.profile, CJ_PROFILE_PRODUCTION);
    assert_string_equal(c.listen, "0.0.0.0");
    assert_false(c.enabled);
    assert_true(c.environments[0].warm); /* the file's key beats the profile's default */
    cj_config_free(&c);

    /* log_code is refused by the profile in force, wherever it came from. */
    assert_int_equal(load_text("{\"profile\": \"development\", \"log_code\": true}",
                               CJ_PROFILE_DEVELOPMENT, &c, &err),
                     -1);

    setenv("CODEJAIL_PROFILE", "development", 1);
    setenv("CODEJAIL_ENABLED", "false", 1);
    assert_int_equal(load_text(NULL, CJ_PROFILE_PRODUCTION, &c, &err), 0);
    assert_int_equal(c.profile, CJ_PROFILE_DEVELOPMENT);
    assert_string_equal(c.listen, "127.0.0.1");
    assert_false(c.enabled);
    cj_config_free(&c);
}

/* Override sets merge over the configured limits, whatever the key order. */
static void test_overrides(void **state)
{
    (void)state;
    static const char text[] =
        "{\"limit_overrides\": {\"zeta\": {\"CPU\": 9}, \"course-v1:A+B+C\": {\"REALTIME\": 10, "
        "\"VMEM\": 0}, \"\": {\"NPROC\": 1}, \"alpha\": {}}, \"limits\": {\"CPU\": 2, \"FSIZE\": "
        "0}}";
    struct cj_config c;
    cj_error err;
    if (load_text(text, CJ_PROFILE_PRODUCTION, &c, &err) < 0)
        fail_msg("%s", err.msg);
    uint64_t vmem = cj_limits_default.vmem, nproc = cj_limits_default.nproc;
    assert_limits(&c.limits, 2, 3, vmem, 0, nproc);
    assert_int_equal(c.n_overrides, 4);
    assert_limits(cj_config_limits_for(&c, "course-v1:A+B+C"), 2, 10, 0, 0, nproc);
    assert_limits(cj_config_limits_for(&c, "zeta"), 9, 3, vmem, 0, nproc);
    assert_limits(cj_config_limits_for(&c, "alpha"), 2, 3, vmem, 0, nproc);
    assert_limits(cj_config_limits_for(&c, ""), 2, 3, vmem, 0, 1);
    assert_ptr_equal(cj_config_limits_for(&c, NULL), &c.limits);
    assert_ptr_equal(cj_config_limits_for(&c, "course-v1:A+B+"), &c.limits);
    assert_ptr_equal(cj_config_limits_for(&c, "course-v1:a+b+c"), &c.limits);
    assert_ptr_equal(cj_config_limits_for(&c, "Zeta"), &c.limits);
    cj_config_free(&c);

    assert_int_equal(load_text(NULL, CJ_PROFILE_PRODUCTION, &c, &err), 0);
    assert_ptr_equal(cj_config_limits_for(&c, "zeta"), &c.limits);
    cj_config_free(&c);
}

/* An existing CODE_JAIL["limits"] carries over, PROXY included. */
static void test_codejail_limits_carry_over(void **state)
{
    (void)state;
    static const char text[] = "{\"limits\": {\"CPU\": 1, \"REALTIME\": 3, \"VMEM\": 0, "
                               "\"FSIZE\": 0, \"NPROC\": 15, \"PROXY\": null}}";
    struct cj_config c;
    cj_error err;
    assert_int_equal(load_text(text, CJ_PROFILE_PRODUCTION, &c, &err), 0);
    assert_limits(&c.limits, 1, 3, 0, 0, 15);
    cj_config_free(&c);
}

static void test_free_twice(void **state)
{
    (void)state;
    struct cj_config c;
    cj_error err;
    assert_int_equal(load_text(NULL, CJ_PROFILE_PRODUCTION, &c, &err), 0);
    cj_config_free(&c);
    cj_config_free(&c);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof path, "%s/codejail.json", dir);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults_production, setup),
        cmocka_unit_test_setup(test_defaults_development, setup),
        cmocka_unit_test_setup(test_example_file, setup),
        cmocka_unit_test_setup(test_every_key, setup),
        cmocka_unit_test_setup(test_landlock_min_abi, setup),
        cmocka_unit_test_setup(test_bad_files, setup),
        cmocka_unit_test_setup(test_missing_file, setup),
        cmocka_unit_test_setup(test_env, setup),
        cmocka_unit_test_setup(test_bad_env, setup),
        cmocka_unit_test_setup(test_profile_precedence, setup),
        cmocka_unit_test_setup(test_overrides, setup),
        cmocka_unit_test_setup(test_codejail_limits_carry_over, setup),
        cmocka_unit_test_setup(test_free_twice, setup),
        cmocka_unit_test_setup(test_environments, setup),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    unlink(path);
    rmdir(dir);
    return failed;
}
