/* Loading order: the profile is settled first (CODEJAIL_PROFILE, else the
 * file's "profile", else the caller's), its defaults are laid down, the
 * file's other keys override them ("limit_overrides" last, merged over the
 * final "limits"), and then the environment overrides the file. So every key
 * the file sets wins over the profile that supplied the defaults, wherever
 * that profile was chosen, and the environment wins over the file. */
#include "config.h"

/* What every LMS request uses (its prolog imports random2 and six.moves and
 * names numpy), and what its lazy modules load on first use: calc, and the
 * chemistry and symbolic-math checkers, whose imports of nltk and sympy
 * alone pass the platform's 1 CPU second on a slow host. Every LMS request
 * names numpy, so all of them are served by this interpreter. A module that
 * is not installed is skipped. matplotlib.pyplot would add some 22 MiB;
 * deployments that plot a lot add it (see the README). */
#define DEFAULT_PREIMPORT                                                                          \
    "numpy,random2,six.moves,calc,chem.chemcalc,chem.chemtools,chem.miller,symmath,eia,"           \
    "verifiers.draganddrop"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "cleanup.h"
#include "envcheck.h"

struct loader {
    const char *file;
    cj_error *err;
};

static int fail(const struct loader *l, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "<file>: <key>: <problem>" */
static int fail(const struct loader *l, const char *key, const char *fmt, ...)
{
    char problem[sizeof l->err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problem, sizeof problem, fmt, ap);
    va_end(ap);
    return cj_fail(l->err, EINVAL, "%s: %s: %s", l->file, key, problem);
}

/* Quotes the value as it appears in JSON. */
static int expected(const struct loader *l, const char *key, const char *what, const json_t *value)
{
    cleanup_free char *shown = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);
    return fail(l, key, "expected %s, got %s", what, shown ? shown : "?");
}

static int get_uint(const struct loader *l, const char *key, const json_t *value, uint64_t min,
                    uint64_t max, uint64_t *out)
{
    json_int_t v = json_is_integer(value) ? json_integer_value(value) : -1;
    if (v < 0 || (uint64_t)v < min || (uint64_t)v > max) {
        char what[96];
        if (max < INT64_MAX)
            snprintf(what, sizeof what, "an integer from %" PRIu64 " to %" PRIu64, min, max);
        else if (min)
            snprintf(what, sizeof what, "an integer of at least %" PRIu64, min);
        else
            snprintf(what, sizeof what, "a non-negative integer");
        return expected(l, key, what, value);
    }
    *out = (uint64_t)v;
    return 0;
}

static int get_bounded(const struct loader *l, const char *key, const json_t *value, unsigned min,
                       unsigned max, unsigned *out)
{
    uint64_t v = 0;
    if (get_uint(l, key, value, min, max, &v) < 0)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static int get_unsigned(const struct loader *l, const char *key, const json_t *value, unsigned min,
                        unsigned *out)
{
    return get_bounded(l, key, value, min, UINT_MAX, out);
}

static int get_bool(const struct loader *l, const char *key, const json_t *value, bool *out)
{
    if (!json_is_boolean(value))
        return expected(l, key, "true or false", value);
    *out = json_is_true(value);
    return 0;
}

/* Replaces *out with a copy of the string, or NULL for null (when allowed). */
static int get_string(const struct loader *l, const char *key, const json_t *value,
                      const char *what, bool nullable, char **out)
{
    if (nullable && json_is_null(value)) {
        free(*out);
        *out = NULL;
        return 0;
    }
    if (!json_is_string(value))
        return expected(l, key, what, value);
    char *copy = strdup(json_string_value(value));
    if (!copy)
        return cj_fail(l->err, ENOMEM, "%s: %s: out of memory", l->file, key);
    free(*out);
    *out = copy;
    return 0;
}

static bool valid_address(const char *s)
{
    unsigned char addr[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s, addr) == 1 || inet_pton(AF_INET6, s, addr) == 1;
}

/* "host:port" or "[v6]:port", port 1..65535. */
static bool valid_host_port(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || !colon[1] || strlen(colon + 1) > 5 ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1))
        return false;
    long port = strtol(colon + 1, NULL, 10);
    if (port < 1 || port > 65535)
        return false;
    if (s[0] == '[')
        return colon[-1] == ']' && colon - s > 2;
    return !memchr(s, ':', (size_t)(colon - s)); /* a bare v6 address needs brackets */
}

/* Dotted module names separated by commas ("numpy,scipy.linalg"): the warm
 * interpreter imports them, so nothing else may get through. */
static bool valid_module_list(const char *s)
{
    bool expect_start = true;
    for (; *s; s++) {
        char c = *s;
        bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (expect_start) {
            if (!letter)
                return false;
            expect_start = false;
        } else if (c == '.' || c == ',') {
            expect_start = true;
        } else if (!letter && !(c >= '0' && c <= '9')) {
            return false;
        }
    }
    return !expect_start;
}

static int parse_profile(const char *s, enum cj_profile *out)
{
    if (strcmp(s, "development") == 0)
        *out = CJ_PROFILE_DEVELOPMENT;
    else if (strcmp(s, "production") == 0)
        *out = CJ_PROFILE_PRODUCTION;
    else
        return -1;
    return 0;
}

static int set_defaults(struct cj_config *c, enum cj_profile profile, cj_error *err)
{
    bool dev = profile == CJ_PROFILE_DEVELOPMENT;
    *c = (struct cj_config){
        .profile = profile,
        .listen = strdup(dev ? "127.0.0.1" : "0.0.0.0"),
        .port = 8080,
        .enabled = dev,
        .required = CJ_ALL_LAYERS,
        .limits = cj_limits_default,
        .queue_size = 64,
        .max_body_bytes = 32u << 20,
        /* Django's DATA_UPLOAD_MAX_NUMBER_FIELDS: what the reference takes. */
        .max_fields = 1000,
        /* The reference returns globals of any size; twice the largest body
         * covers globals that come back as large as they went in. */
        .max_output_bytes = 64u << 20,
        .connection_timeout_s = 30,
        .selfcheck_interval_s = 300,
        .helper_timeout_s = 10,
        .environments = calloc(1, sizeof *c->environments),
    };
    if (!c->listen || !c->environments)
        return cj_fail(err, ENOMEM, "configuration: out of memory");
    c->n_environments = 1;
    c->environments[0] = (struct cj_environment_config){
        .name = strdup("default"),
        /* Warm pools in both profiles: a cold sandbox pays the interpreter's
         * start-up, and matplotlib's font scan (about a CPU second) would
         * not fit the default CPU limit. */
        .warm = true,
        .pool_size = 2,
        .preimport = strdup(DEFAULT_PREIMPORT),
        /* Production serves courses: a sandbox without the Open edX
         * packages is unhealthy there, not silently broken. */
        .required_modules = strdup(dev ? "" : CJ_OPENEDX_MODULES),
    };
    const struct cj_environment_config *e = &c->environments[0];
    if (!e->name || !e->preimport || !e->required_modules)
        return cj_fail(err, ENOMEM, "configuration: out of memory");
    return 0;
}

/* ---- limits ---- */

/* Applies a partial set of limits ({"CPU": 2}) at `key` over *limits. The
 * codejail library's "PROXY" setting is accepted when it asks for no proxy
 * (0, false or null), so that an existing CODE_JAIL["limits"] carries over. */
static int apply_limits(const struct loader *l, const char *key, const json_t *object,
                        struct cj_limits *limits)
{
    if (!json_is_object(object))
        return expected(l, key, "an object of limits (CPU, REALTIME, VMEM, FSIZE, NPROC)", object);
    const char *name;
    const json_t *value;
    json_object_foreach((json_t *)object, name, value)
    {
        char path[512];
        snprintf(path, sizeof path, "%s.%s", key, name);
        if (name[0] == '_')
            continue;
        if (strcmp(name, "PROXY") == 0) {
            if (json_is_null(value) || json_is_false(value) ||
                (json_is_integer(value) && json_integer_value(value) == 0))
                continue;
            return fail(l, path, "only 0 is supported: there is no proxy process");
        }
        /* The name is checked before the value: an unknown name is the
         * more useful thing to hear about. */
        bool integer = json_is_integer(value) && json_integer_value(value) >= 0;
        cj_error inner;
        if (cj_limits_set_named(limits, name, integer ? (uint64_t)json_integer_value(value) : 0,
                                &inner) < 0)
            return fail(l, inner.errnum == ERANGE ? path : key, "%s", inner.msg);
        if (!integer)
            return expected(l, path, "a non-negative integer", value);
    }
    return 0;
}

static int compare_overrides(const void *a, const void *b)
{
    return strcmp(((const struct cj_limit_override *)a)->name,
                  ((const struct cj_limit_override *)b)->name);
}

static int apply_overrides(const struct loader *l, const json_t *object, struct cj_config *c)
{
    if (!json_is_object(object))
        return expected(l, "limit_overrides", "an object of named limit sets", object);
    size_t n = json_object_size(object);
    if (!n)
        return 0;
    c->overrides = calloc(n, sizeof *c->overrides);
    if (!c->overrides)
        return cj_fail(l->err, ENOMEM, "%s: limit_overrides: out of memory", l->file);
    const char *name;
    const json_t *value;
    json_object_foreach((json_t *)object, name, value)
    {
        struct cj_limit_override *o = &c->overrides[c->n_overrides];
        o->name = strdup(name);
        if (!o->name)
            return cj_fail(l->err, ENOMEM, "%s: limit_overrides: out of memory", l->file);
        c->n_overrides++;
        o->limits = c->limits;
        char path[512];
        snprintf(path, sizeof path, "limit_overrides[\"%s\"]", name);
        if (apply_limits(l, path, value, &o->limits) < 0)
            return -1;
    }
    /* Looked up once per request, by exact name. */
    qsort(c->overrides, c->n_overrides, sizeof *c->overrides, compare_overrides);
    return 0;
}

/* ---- the file ---- */

static int apply_layers(const struct loader *l, const json_t *value, cj_layer_set *out)
{
    static const char *const what = "\"all\" or a list of layer names";
    if (json_is_string(value)) {
        if (strcmp(json_string_value(value), "all") != 0)
            return expected(l, "required_layers", what, value);
        *out = CJ_ALL_LAYERS;
        return 0;
    }
    if (!json_is_array(value))
        return expected(l, "required_layers", what, value);
    cj_layer_set set = 0;
    size_t i;
    const json_t *item;
    json_array_foreach(value, i, item)
    {
        char path[64];
        snprintf(path, sizeof path, "required_layers[%zu]", i);
        if (!json_is_string(item))
            return expected(l, path, "a layer name", item);
        enum cj_layer layer;
        cj_error inner;
        if (cj_layer_parse(json_string_value(item), &layer, &inner) < 0)
            return fail(l, path, "%s", inner.msg);
        set |= CJ_LAYER_BIT(layer);
    }
    *out = set;
    return 0;
}

static const char *const known_keys =
    "profile, listen, port, enabled, required_layers, egress_probe, limits, limit_overrides, "
    "max_concurrency, queue_size, max_body_bytes, max_fields, connection_timeout, pool_size, "
    "warm, preimport, required_modules, env_dir, environments, context_environments, uid_base, "
    "tmp_size, max_output_bytes, log_code, selfcheck_interval, helper_timeout, landlock_min_abi";

/* ---- environments ---- */

static const char *const environment_keys = "env_dir, warm, pool_size, preimport, required_modules";

/* A key that describes an environment, at `path` (for messages); 1 when
 * `key` is none of them. */
static int apply_environment_key(const struct loader *l, const char *key, const char *path,
                                 const json_t *v, struct cj_environment_config *e)
{
    if (strcmp(key, "pool_size") == 0)
        return get_unsigned(l, path, v, 0, &e->pool_size);
    if (strcmp(key, "warm") == 0)
        return get_bool(l, path, v, &e->warm);
    if (strcmp(key, "preimport") == 0) {
        static const char *const what =
            "module names separated by commas (\"numpy,sympy\") or null";
        if (get_string(l, path, v, what, true, &e->preimport) < 0)
            return -1;
        if (e->preimport && !e->preimport[0]) {
            free(e->preimport);
            e->preimport = NULL;
        }
        return !e->preimport || valid_module_list(e->preimport) ? 0 : expected(l, path, what, v);
    }
    if (strcmp(key, "required_modules") == 0) {
        static const char *const what = "module names separated by commas or null";
        if (get_string(l, path, v, what, true, &e->required_modules) < 0)
            return -1;
        return !e->required_modules || !e->required_modules[0] ||
                       valid_module_list(e->required_modules)
                   ? 0
                   : expected(l, path, what, v);
    }
    if (strcmp(key, "env_dir") == 0) {
        static const char *const what = "an absolute path or null";
        if (get_string(l, path, v, what, true, &e->env_dir) < 0)
            return -1;
        return !e->env_dir || e->env_dir[0] == '/' ? 0 : expected(l, path, what, v);
    }
    return 1;
}

static void environment_free(struct cj_environment_config *e)
{
    free(e->name);
    free(e->env_dir);
    free(e->preimport);
    free(e->required_modules);
}

static int copy_string(const char *from, char **to)
{
    *to = from ? strdup(from) : NULL;
    return from && !*to ? -1 : 0;
}

/* Names appear in metrics labels, logs and paths: a short, plain word. */
static bool valid_environment_name(const char *s)
{
    size_t n = strlen(s);
    return n && n <= CJ_ENVIRONMENT_NAME_MAX &&
           strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n && s[0] != '-' && s[0] != '_';
}

static int apply_environments(const struct loader *l, const json_t *object, struct cj_config *c)
{
    if (!json_is_object(object))
        return expected(l, "environments", "an object of named environments", object);
    size_t n = json_object_size(object);
    if (n + 1 > CJ_ENVIRONMENTS_MAX)
        return fail(l, "environments", "at most %d environments besides \"default\"",
                    CJ_ENVIRONMENTS_MAX - 1);
    struct cj_environment_config *all = realloc(c->environments, (n + 1) * sizeof *all);
    if (!all)
        return cj_fail(l->err, ENOMEM, "%s: environments: out of memory", l->file);
    c->environments = all;
    const struct cj_environment_config *base = &all[0];
    const char *name;
    const json_t *value;
    json_object_foreach((json_t *)object, name, value)
    {
        char path[128];
        snprintf(path, sizeof path, "environments[\"%.64s\"]", name);
        if (strcmp(name, "default") == 0)
            return fail(l, path, "the default environment is set by the top-level keys (%s)",
                        environment_keys);
        if (!valid_environment_name(name))
            return fail(l, path,
                        "a name is 1 to %d characters of a-z, 0-9, '_' and '-', starting "
                        "with a letter or digit",
                        CJ_ENVIRONMENT_NAME_MAX);
        if (!json_is_object(value))
            return expected(l, path, "an object", value);
        struct cj_environment_config *e = &all[c->n_environments];
        *e = (struct cj_environment_config){.warm = base->warm, .pool_size = base->pool_size};
        c->n_environments++;
        if (copy_string(name, &e->name) < 0 || copy_string(base->preimport, &e->preimport) < 0 ||
            copy_string(base->required_modules, &e->required_modules) < 0)
            return cj_fail(l->err, ENOMEM, "%s: environments: out of memory", l->file);
        const char *key;
        const json_t *v;
        json_object_foreach((json_t *)value, key, v)
        {
            if (key[0] == '_')
                continue; /* a comment, as at the top level */
            char key_path[200];
            snprintf(key_path, sizeof key_path, "%s.%.32s", path, key);
            int rc = apply_environment_key(l, key, key_path, v, e);
            if (rc < 0)
                return -1;
            if (rc > 0)
                return fail(l, key_path, "unknown key (known: %s)", environment_keys);
        }
        /* The default's root is the build's; another environment is another root. */
        if (!e->env_dir)
            return fail(l, path, "env_dir is required");
    }
    return 0;
}

static int compare_routes(const void *a, const void *b)
{
    const struct cj_context_route *x = a, *y = b;
    if (x->prefix != y->prefix)
        return x->prefix ? 1 : -1;
    if (x->prefix) {
        size_t lx = strlen(x->pattern), ly = strlen(y->pattern);
        if (lx != ly)
            return lx < ly ? 1 : -1;
    }
    return strcmp(x->pattern, y->pattern);
}

static int apply_routes(const struct loader *l, const json_t *object, struct cj_config *c)
{
    if (!json_is_object(object))
        return expected(l, "context_environments",
                        "an object of contexts (or prefixes ending in '*') and environment names",
                        object);
    size_t n = json_object_size(object);
    if (!n)
        return 0;
    c->routes = calloc(n, sizeof *c->routes);
    if (!c->routes)
        return cj_fail(l->err, ENOMEM, "%s: context_environments: out of memory", l->file);
    const char *pattern;
    const json_t *value;
    json_object_foreach((json_t *)object, pattern, value)
    {
        char path[160];
        snprintf(path, sizeof path, "context_environments[\"%.128s\"]", pattern);
        size_t len = strlen(pattern);
        const char *star = strchr(pattern, '*');
        if (!len || (star && (star != pattern + len - 1 || len == 1)))
            return fail(l, path,
                        "expected a context, or a prefix (not empty) followed by one '*' at "
                        "the end");
        if (!json_is_string(value))
            return expected(l, path, "an environment name", value);
        size_t env = 0;
        while (env < c->n_environments &&
               strcmp(c->environments[env].name, json_string_value(value)) != 0)
            env++;
        if (env == c->n_environments)
            return fail(l, path, "no environment \"%.64s\" (configured: see \"environments\")",
                        json_string_value(value));
        struct cj_context_route *r = &c->routes[c->n_routes];
        r->prefix = star != NULL;
        r->pattern = strndup(pattern, r->prefix ? len - 1 : len);
        if (!r->pattern)
            return cj_fail(l->err, ENOMEM, "%s: context_environments: out of memory", l->file);
        r->environment = env;
        c->n_routes++;
    }
    qsort(c->routes, c->n_routes, sizeof *c->routes, compare_routes);
    return 0;
}

static int apply_key(const struct loader *l, const char *key, const json_t *v, struct cj_config *c)
{
    uint64_t n = 0;
    if (strcmp(key, "profile") == 0 || strcmp(key, "limit_overrides") == 0 ||
        strcmp(key, "environments") == 0 || strcmp(key, "context_environments") == 0 ||
        key[0] == '_')
        return 0; /* handled before and after the others; "_comment" and the like */
    int rc = apply_environment_key(l, key, key, v, &c->environments[0]);
    if (rc <= 0)
        return rc;
    if (strcmp(key, "listen") == 0) {
        if (get_string(l, key, v, "an IPv4 or IPv6 address", false, &c->listen) < 0)
            return -1;
        return valid_address(c->listen) ? 0 : expected(l, key, "an IPv4 or IPv6 address", v);
    }
    if (strcmp(key, "port") == 0) {
        if (get_uint(l, key, v, 1, 65535, &n) < 0)
            return -1;
        c->port = (unsigned)n;
        return 0;
    }
    if (strcmp(key, "enabled") == 0)
        return get_bool(l, key, v, &c->enabled);
    if (strcmp(key, "required_layers") == 0)
        return apply_layers(l, v, &c->required);
    if (strcmp(key, "egress_probe") == 0) {
        static const char *const what = "\"host:port\" or null";
        if (get_string(l, key, v, what, true, &c->egress_probe) < 0)
            return -1;
        return !c->egress_probe || valid_host_port(c->egress_probe) ? 0 : expected(l, key, what, v);
    }
    if (strcmp(key, "limits") == 0)
        return apply_limits(l, key, v, &c->limits);
    if (strcmp(key, "max_concurrency") == 0)
        return get_unsigned(l, key, v, 0, &c->max_concurrency);
    if (strcmp(key, "queue_size") == 0)
        return get_unsigned(l, key, v, 0, &c->queue_size);
    if (strcmp(key, "max_body_bytes") == 0) {
        if (get_uint(l, key, v, 1, SIZE_MAX, &n) < 0)
            return -1;
        c->max_body_bytes = (size_t)n;
        return 0;
    }
    if (strcmp(key, "max_fields") == 0)
        return get_unsigned(l, key, v, 1, &c->max_fields);
    if (strcmp(key, "connection_timeout") == 0)
        return get_unsigned(l, key, v, 1, &c->connection_timeout_s);
    if (strcmp(key, "selfcheck_interval") == 0)
        return get_bounded(l, key, v, 0, 86400, &c->selfcheck_interval_s);
    if (strcmp(key, "helper_timeout") == 0)
        /* bounded so that it fits in milliseconds */
        return get_bounded(l, key, v, 1, 3600, &c->helper_timeout_s);
    if (strcmp(key, "max_output_bytes") == 0) {
        if (get_uint(l, key, v, 1, SIZE_MAX, &n) < 0)
            return -1;
        c->max_output_bytes = (size_t)n;
        return 0;
    }
    if (strcmp(key, "uid_base") == 0) {
        /* Every block of outer ids ends below (uid_t)-1, which means "no
         * change" to the id calls, never an id. */
        if (get_uint(l, key, v, 0, UINT32_MAX - 1 - (uint64_t)CJ_UID_BLOCKS * CJ_ENGINE_UIDS, &n) <
            0)
            return -1;
        c->uid_base = (uint32_t)n;
        return 0;
    }
    if (strcmp(key, "tmp_size") == 0)
        return get_uint(l, key, v, 0, UINT64_MAX, &c->tmp_size);
    if (strcmp(key, "log_code") == 0)
        return get_bool(l, key, v, &c->log_code);
    if (strcmp(key, "landlock_min_abi") == 0) {
        if (get_uint(l, key, v, 0, 255, &n) < 0)
            return -1;
        c->landlock_min_abi = (unsigned)n;
        return 0;
    }
    return fail(l, key, "unknown key (known: %s; keys starting with '_' are ignored)", known_keys);
}

static int read_file(const char *path, json_t **root, cj_error *err)
{
    cleanup_file FILE *f = fopen(path, "re");
    if (!f)
        return cj_fail_errno(err, "%s", path);
    json_error_t jerr;
    *root = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
    if (!*root)
        return cj_fail(err, EINVAL, "%s: line %d column %d: %s", path, jerr.line, jerr.column,
                       jerr.text);
    if (!json_is_object(*root)) {
        json_decref(*root);
        *root = NULL;
        return cj_fail(err, EINVAL, "%s: expected a JSON object at the top level", path);
    }
    return 0;
}

/* ---- the environment ---- */

static int env_fail(cj_error *err, const char *name, const char *value, const char *what)
{
    return cj_fail(err, EINVAL, "environment %s: expected %s, got \"%s\"", name, what, value);
}

static int apply_env(struct cj_config *c, cj_error *err)
{
    const char *v = getenv("CODEJAIL_LISTEN");
    if (v) {
        if (!valid_address(v))
            return env_fail(err, "CODEJAIL_LISTEN", v, "an IPv4 or IPv6 address");
        char *copy = strdup(v);
        if (!copy)
            return cj_fail(err, ENOMEM, "configuration: out of memory");
        free(c->listen);
        c->listen = copy;
    }

    /* PORT is what container platforms set; CODEJAIL_PORT is more specific. */
    const char *name = getenv("CODEJAIL_PORT") ? "CODEJAIL_PORT" : "PORT";
    v = getenv(name);
    if (v) {
        char *end;
        errno = 0;
        long port = v[0] >= '0' && v[0] <= '9' ? strtol(v, &end, 10) : -1;
        if (port < 1 || port > 65535 || errno || *end)
            return env_fail(err, name, v, "a port number from 1 to 65535");
        c->port = (unsigned)port;
    }

    v = getenv("CODEJAIL_ENABLED");
    if (v) {
        if (!strcasecmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes"))
            c->enabled = true;
        else if (!strcasecmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no"))
            c->enabled = false;
        else
            return env_fail(err, "CODEJAIL_ENABLED", v, "1, true, yes, 0, false or no");
    }
    return 0;
}

static int load(struct cj_config *c, enum cj_profile profile, const char *path, cj_error *err)
{
    json_auto_t *root = NULL;
    if (path && read_file(path, &root, err) < 0)
        return -1;
    struct loader l = {.file = path, .err = err};

    const json_t *file_profile = root ? json_object_get(root, "profile") : NULL;
    if (file_profile && (!json_is_string(file_profile) ||
                         parse_profile(json_string_value(file_profile), &profile) < 0))
        return expected(&l, "profile", "\"development\" or \"production\"", file_profile);
    const char *env_profile = getenv("CODEJAIL_PROFILE");
    if (env_profile && parse_profile(env_profile, &profile) < 0)
        return env_fail(err, "CODEJAIL_PROFILE", env_profile, "development or production");

    if (set_defaults(c, profile, err) < 0)
        return -1;
    if (root) {
        const char *key;
        const json_t *value;
        json_object_foreach(root, key, value)
        {
            if (apply_key(&l, key, value, c) < 0)
                return -1;
        }
        const json_t *overrides = json_object_get(root, "limit_overrides");
        if (overrides && apply_overrides(&l, overrides, c) < 0)
            return -1;
        /* After the top-level keys, which the environments inherit. */
        const json_t *environments = json_object_get(root, "environments");
        if (environments && apply_environments(&l, environments, c) < 0)
            return -1;
        const json_t *routes = json_object_get(root, "context_environments");
        if (routes && apply_routes(&l, routes, c) < 0)
            return -1;
    }
    if (apply_env(c, err) < 0)
        return -1;
    /* Only the file sets log_code, so there is a file to name. */
    if (c->log_code && c->profile == CJ_PROFILE_PRODUCTION)
        return fail(&l, "log_code",
                    "not allowed with profile \"production\" (it logs submitted "
                    "code and globals)");
    return 0;
}

int cj_config_load(struct cj_config *config, enum cj_profile profile, const char *path,
                   cj_error *err)
{
    struct cj_config c = {0};
    if (load(&c, profile, path, err) < 0) {
        cj_config_free(&c);
        return -1;
    }
    *config = c;
    return 0;
}

void cj_config_free(struct cj_config *config)
{
    free(config->listen);
    free(config->egress_probe);
    for (size_t i = 0; i < config->n_overrides; i++)
        free(config->overrides[i].name);
    free(config->overrides);
    for (size_t i = 0; i < config->n_environments; i++)
        environment_free(&config->environments[i]);
    free(config->environments);
    for (size_t i = 0; i < config->n_routes; i++)
        free(config->routes[i].pattern);
    free(config->routes);
    *config = (struct cj_config){0};
}

static int compare_name(const void *key, const void *item)
{
    return strcmp(key, ((const struct cj_limit_override *)item)->name);
}

const struct cj_limits *cj_config_limits_for(const struct cj_config *config, const char *context)
{
    if (!context || !config->n_overrides)
        return &config->limits;
    const struct cj_limit_override *o = bsearch(context, config->overrides, config->n_overrides,
                                                sizeof *config->overrides, compare_name);
    return o ? &o->limits : &config->limits;
}

size_t cj_config_environment_for(const struct cj_config *config, const char *context)
{
    if (!context)
        return 0;
    /* Exact routes come first, then prefixes, longest first. */
    for (size_t i = 0; i < config->n_routes; i++) {
        const struct cj_context_route *r = &config->routes[i];
        if (r->prefix ? strncmp(context, r->pattern, strlen(r->pattern)) == 0
                      : strcmp(context, r->pattern) == 0)
            return r->environment;
    }
    return 0;
}

static bool same_string(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

bool cj_environment_config_equal(const struct cj_environment_config *a,
                                 const struct cj_environment_config *b)
{
    return same_string(a->name, b->name) && same_string(a->env_dir, b->env_dir) &&
           a->warm == b->warm && a->pool_size == b->pool_size &&
           same_string(a->preimport, b->preimport) &&
           same_string(a->required_modules, b->required_modules);
}
