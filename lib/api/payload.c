/* The `payload` field, checked as the Python service checks it:
 *
 *     params = json.loads(payload)
 *     error = jsonschema.exceptions.best_match(Draft202012Validator(schema).iter_errors(params))
 *     then the python_path entries, then unsafely
 *
 * with the service's schema, where python_path, limit_overrides_context and
 * slug are anyOf [{type ...}, {type: null}] rather than type lists, which is
 * what makes their message "... is not valid under any of the given schemas".
 *
 * The text is scanned once by pyjson and never turned into a tree: globals are
 * carried as text, and only the few members the schema names are looked at.
 * Messages quote values as Python's repr() of what json.loads made of them,
 * which is rendered from the text too. */
#include "payload.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "cleanup.h"
#include "pyjson.h"
#include "pyrepr.h"

enum prop { P_CODE, P_GLOBALS, P_PYTHON_PATH, P_CONTEXT, P_SLUG, P_UNSAFELY, P_COUNT };

static const char *const prop_names[P_COUNT] = {
    [P_CODE] = "code",
    [P_GLOBALS] = "globals_dict",
    [P_PYTHON_PATH] = "python_path",
    [P_CONTEXT] = "limit_overrides_context",
    [P_SLUG] = "slug",
    [P_UNSAFELY] = "unsafely",
};

/* CPython refuses to convert longer decimal integers (sys.int_info.default_max_str_digits). */
#define PY_INT_MAX_DIGITS 4300

#define SCHEMA_PREFIX "Payload JSON did not match schema at path "

static int refuse(const char **reason, const char *why, cj_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int refuse(const char **reason, const char *why, cj_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->errnum = 0;
    *reason = why;
    return -1;
}

static int oom(cj_error *err)
{
    return cj_fail(err, ENOMEM, "payload: out of memory");
}

/* The decoded string at span (quotes included), NUL-terminated, or NULL when
 * out of memory. */
static char *decode_string(const char *text, struct cj_json_span span, size_t *len)
{
    size_t n = span.end - span.start - 2;
    char *out = malloc(n + 1);
    if (out)
        *len = cj_pyjson_unescape(text + span.start + 1, n, out);
    return out;
}

/* Whether the lone surrogate of the generalized UTF-8 form starts at s[i]. */
static bool surrogate_at(const char *s, size_t len, size_t i)
{
    return len - i >= 3 && (unsigned char)s[i] == 0xed && ((unsigned char)s[i + 1] & 0xe0) == 0xa0;
}

static size_t code_points(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xc0) != 0x80;
    return n;
}

/* ---- repr() of a value, from its text ---- */

struct repr {
    const char *text;
    struct cj_buf *out; /* capped: once it is full, rendering stops */
    size_t work;        /* bytes the walk may still scan */
};

/* Walking a container costs its whole span (pyjson finds where each member
 * ends by scanning it), so hostile nesting would cost depth x size. Spending
 * is capped at twice the value's size plus 1 MiB; a value that exhausts that
 * overflowed the message long before, and is cut where the budget ran out. */
static bool charge(struct repr *r, struct cj_json_span v)
{
    size_t n = v.end - v.start;
    if (n > r->work) {
        r->out->truncated = true;
        return false;
    }
    r->work -= n;
    return true;
}

static int repr_value(struct repr *r, struct cj_json_span v, cj_error *err);

/* Once the text was cut, by the cap or the work budget, nothing more is
 * added: closing brackets after a cut would misrepresent the value. */
static int emit(struct repr *r, const char *s, size_t n, cj_error *err)
{
    if (!r->out->truncated && cj_buf_append(r->out, s, n) < 0)
        return oom(err);
    return 0;
}

static int repr_number(struct repr *r, struct cj_json_span v, cj_error *err)
{
    const char *s = r->text + v.start;
    size_t n = v.end - v.start;
    if (!memchr(s, '.', n) && !memchr(s, 'e', n) && !memchr(s, 'E', n)) {
        /* An int prints its digits; int("-0") is 0. */
        if (n == 2 && s[0] == '-' && s[1] == '0')
            return emit(r, "0", 1, err);
        return emit(r, s, n, err);
    }
    cleanup_free char *copy = strndup(s, n);
    if (!copy)
        return oom(err);
    /* float() overflows to inf where jansson would refuse; repr of the rest
     * is cj_repr_json's. */
    double x = strtod(copy, NULL);
    if (isinf(x))
        return emit(r, x < 0 ? "-inf" : "inf", x < 0 ? 4 : 3, err);
    json_t *real = json_real(x);
    if (!real)
        return oom(err);
    int rc = cj_repr_json(r->out, real);
    json_decref(real);
    return rc < 0 ? oom(err) : 0;
}

static int repr_element(void *ctx, const char *key, size_t index, struct cj_json_span v,
                        cj_error *err)
{
    (void)key;
    struct repr *r = ctx;
    if ((index && emit(r, ", ", 2, err) < 0) || repr_value(r, v, err) < 0)
        return -1;
    return r->out->truncated ? 1 : 0;
}

/* A dict keeps each key where it first appeared, with the value it was given
 * last. More members than this cannot show in a message: each takes at least
 * 5 bytes ("'': 0") and a separator. */
#define REPR_KEYS  (sizeof(((cj_error *)0)->msg) / 5 + 1)
#define REPR_SLOTS 256 /* open addressing, more than twice REPR_KEYS */

struct dict_entry {
    char *key;
    size_t keylen;
    struct cj_json_span value;
};

struct dict {
    struct dict_entry entry[REPR_KEYS];
    size_t n;
    unsigned char slot[REPR_SLOTS]; /* index into entry + 1; 0: free */
};

static void dict_free(struct dict **d)
{
    if (!*d)
        return;
    for (size_t i = 0; i < (*d)->n; i++)
        free((*d)->entry[i].key);
    free(*d);
}

static uint32_t hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static int dict_member(void *ctx, const char *key, size_t keylen, struct cj_json_span v,
                       cj_error *err)
{
    struct dict *d = ctx;
    for (size_t i = hash(key, keylen) % REPR_SLOTS;; i = (i + 1) % REPR_SLOTS) {
        if (d->slot[i]) {
            struct dict_entry *e = &d->entry[d->slot[i] - 1];
            if (e->keylen == keylen && memcmp(e->key, key, keylen) == 0) {
                e->value = v;
                return 0;
            }
            continue;
        }
        if (d->n == REPR_KEYS)
            return 0;
        char *copy = malloc(keylen + 1);
        if (!copy)
            return oom(err);
        memcpy(copy, key, keylen + 1);
        d->entry[d->n] = (struct dict_entry){.key = copy, .keylen = keylen, .value = v};
        d->slot[i] = (unsigned char)++d->n;
        return 0;
    }
}

static int repr_object(struct repr *r, struct cj_json_span v, cj_error *err)
{
    __attribute__((cleanup(dict_free))) struct dict *d = calloc(1, sizeof *d);
    if (!d)
        return oom(err);
    if (cj_pyjson_object_members(r->text, v.end, v, dict_member, d, err) < 0 ||
        emit(r, "{", 1, err) < 0)
        return -1;
    for (size_t i = 0; i < d->n && !r->out->truncated; i++) {
        if ((i && emit(r, ", ", 2, err) < 0))
            return -1;
        if (!r->out->truncated && cj_repr_str(r->out, d->entry[i].key, d->entry[i].keylen) < 0)
            return oom(err);
        if (emit(r, ": ", 2, err) < 0 || repr_value(r, d->entry[i].value, err) < 0)
            return -1;
    }
    return emit(r, "}", 1, err);
}

static int repr_value(struct repr *r, struct cj_json_span v, cj_error *err)
{
    if (r->out->truncated || !charge(r, v))
        return 0;
    switch (v.type) {
    case CJ_JSON_OBJECT:
        return repr_object(r, v, err);
    case CJ_JSON_ARRAY:
        if (emit(r, "[", 1, err) < 0 ||
            cj_pyjson_array_elements(r->text, v.end, v, repr_element, r, err) < 0)
            return -1;
        return emit(r, "]", 1, err);
    case CJ_JSON_STRING: {
        size_t n;
        cleanup_free char *s = decode_string(r->text, v, &n);
        if (!s || cj_repr_str(r->out, s, n) < 0)
            return oom(err);
        return 0;
    }
    case CJ_JSON_NUMBER:
        return repr_number(r, v, err);
    case CJ_JSON_NONFINITE:
        if (r->text[v.start] == 'N')
            return emit(r, "nan", 3, err);
        return r->text[v.start] == '-' ? emit(r, "-inf", 4, err) : emit(r, "inf", 3, err);
    case CJ_JSON_TRUE:
        return emit(r, "True", 4, err);
    case CJ_JSON_FALSE:
        return emit(r, "False", 5, err);
    case CJ_JSON_NULL:
        return emit(r, "None", 4, err);
    }
    return 0;
}

/* Fails with jsonschema's message "<repr(instance)><what>" at json_path
 * `path`. The message has a fixed size, so a long repr is cut, at a character
 * boundary and marked with "...", keeping what follows it. */
static int schema_error(const char *text, const char *path, struct cj_json_span instance,
                        const char *what, const char **reason, cj_error *err)
{
    size_t fixed = strlen(SCHEMA_PREFIX) + strlen(path) + 2 + strlen(what);
    size_t room = sizeof err->msg - 1 - fixed;
    cleanup_buf struct cj_buf out;
    cj_buf_init(&out, room);
    struct repr r = {
        .text = text, .out = &out, .work = 2 * (instance.end - instance.start) + (1u << 20)};
    if (repr_value(&r, instance, err) < 0)
        return -1;
    if (out.truncated) {
        /* Cut short by the work budget, the text may end before the cap. */
        size_t keep = out.len < room - 3 ? out.len : room - 3;
        while (keep && ((unsigned char)out.data[keep] & 0xc0) == 0x80)
            keep--;
        out.len = keep;
        if (cj_buf_append(&out, "...", 3) < 0)
            return oom(err);
    }
    return refuse(reason, "invalid.schema", err, SCHEMA_PREFIX "%s: %s%s", path,
                  out.data ? out.data : "", what);
}

/* ---- the payload ---- */

struct members {
    struct cj_json_span value[P_COUNT]; /* the last one given: json.loads keeps it */
    bool present[P_COUNT];
};

static int take_member(void *ctx, const char *key, size_t keylen, struct cj_json_span value,
                       cj_error *err)
{
    (void)err;
    struct members *m = ctx;
    for (int p = 0; p < P_COUNT; p++) {
        if (keylen == strlen(prop_names[p]) && memcmp(key, prop_names[p], keylen) == 0) {
            m->value[p] = value;
            m->present[p] = true;
            break;
        }
    }
    return 0;
}

struct path_scan {
    size_t count;
    size_t first_bad; /* index of the first element that is not a string */
    struct cj_json_span bad;
    bool has_bad;
};

static int scan_path_element(void *ctx, const char *key, size_t index, struct cj_json_span v,
                             cj_error *err)
{
    (void)key;
    (void)err;
    struct path_scan *s = ctx;
    s->count = index + 1;
    if (v.type != CJ_JSON_STRING && !s->has_bad) {
        s->has_bad = true;
        s->first_bad = index;
        s->bad = v;
    }
    return 0;
}

/* One property's schema error, if it has one. */
struct prop_error {
    char path[48];
    struct cj_json_span instance;
    const char *what;
};

static bool check_prop(enum prop p, struct cj_json_span v, const struct path_scan *path_scan,
                       struct prop_error *e)
{
    static const char *const any_of = " is not valid under any of the given schemas";
    snprintf(e->path, sizeof e->path, "$.%s", prop_names[p]);
    e->instance = v;
    switch (p) {
    case P_CODE:
        e->what = " is not of type 'string'";
        return v.type != CJ_JSON_STRING;
    case P_GLOBALS:
        e->what = " is not of type 'object'";
        return v.type != CJ_JSON_OBJECT;
    case P_UNSAFELY:
        e->what = " is not of type 'boolean'";
        return v.type != CJ_JSON_TRUE && v.type != CJ_JSON_FALSE;
    case P_CONTEXT:
    case P_SLUG:
        e->what = any_of;
        return v.type != CJ_JSON_STRING && v.type != CJ_JSON_NULL;
    case P_PYTHON_PATH:
        if (v.type == CJ_JSON_NULL)
            return false;
        if (v.type != CJ_JSON_ARRAY) {
            e->what = any_of;
            return true;
        }
        /* best_match descends into the anyOf when one branch erred deeper
         * than the other: the first item that is not a string. */
        if (!path_scan->has_bad)
            return false;
        snprintf(e->path, sizeof e->path, "$.python_path[%zu]", path_scan->first_bad);
        e->instance = path_scan->bad;
        e->what = " is not of type 'string'";
        return true;
    case P_COUNT:
        break;
    }
    return false;
}

static int check_schema(const char *text, struct cj_json_span top, const struct members *m,
                        const struct path_scan *path_scan, const char **reason, cj_error *err)
{
    if (top.type != CJ_JSON_OBJECT)
        return schema_error(text, "$", top, " is not of type 'object'", reason, err);
    /* best_match prefers the error nearest the top (a missing key), then, as
     * of jsonschema 4.22 (the service pins 4.25), the one with the greatest
     * path: among sibling properties, the name that sorts last. The required
     * list is checked in its own order. */
    for (int p = P_CODE; p <= P_GLOBALS; p++)
        if (!m->present[p])
            return refuse(reason, "invalid.schema", err,
                          SCHEMA_PREFIX "$: '%s' is a required property", prop_names[p]);
    struct prop_error best = {0}, e;
    const char *best_name = NULL;
    for (int p = 0; p < P_COUNT; p++) {
        if (!m->present[p] || !check_prop(p, m->value[p], path_scan, &e))
            continue;
        if (!best_name || strcmp(prop_names[p], best_name) > 0) {
            best = e;
            best_name = prop_names[p];
        }
    }
    if (best_name)
        return schema_error(text, best.path, best.instance, best.what, reason, err);
    return 0;
}

/* json.loads() builds a Python int from every number without fraction or
 * exponent, and CPython refuses that beyond PY_INT_MAX_DIGITS digits (the
 * service then fails with a ValueError). Floats have no such limit. */
static int check_int_digits(const char *text, size_t len, const char **reason, cj_error *err)
{
    for (size_t i = 0; i < len;) {
        char c = text[i];
        if (c == '"') {
            /* pyjson checked that every string is closed. */
            for (i++; text[i] != '"'; i += text[i] == '\\' ? 2 : 1)
                ;
            i++;
            continue;
        }
        if (c < '0' || c > '9') {
            i++;
            continue;
        }
        size_t start = i;
        while (i < len && text[i] >= '0' && text[i] <= '9')
            i++;
        if (i < len && (text[i] == '.' || text[i] == 'e' || text[i] == 'E')) {
            while (i < len && strchr("0123456789.eE+-", text[i]))
                i++;
        } else if (i - start > PY_INT_MAX_DIGITS) {
            return refuse(reason, "invalid.json", err,
                          "Unable to parse payload JSON: Exceeds the limit (%d digits) for "
                          "integer string conversion: value has %zu digits; use "
                          "sys.set_int_max_str_digits() to increase the limit",
                          PY_INT_MAX_DIGITS, i - start);
        }
    }
    return 0;
}

static int check_path_entry(void *ctx, const char *key, size_t index, struct cj_json_span v,
                            cj_error *err)
{
    (void)key;
    (void)index;
    (void)err;
    const char *text = ctx;
    /* No escape of a character of "python_lib.zip" is longer than 6 bytes,
     * so a longer body is another string. */
    char decoded[6 * sizeof CJ_PYTHON_LIB_ZIP];
    size_t n = v.end - v.start - 2;
    if (n >= sizeof decoded)
        return 1;
    size_t dlen = cj_pyjson_unescape(text + v.start + 1, n, decoded);
    return dlen == strlen(CJ_PYTHON_LIB_ZIP) && memcmp(decoded, CJ_PYTHON_LIB_ZIP, dlen) == 0 ? 0
                                                                                              : 1;
}

/* Code with a lone surrogate cannot run: Python fails to encode it as UTF-8
 * when it compiles it, and the engine takes UTF-8 only. Python's own error
 * names the run of surrogates by code point position. */
static int check_code(const char *code, size_t len, const char **reason, cj_error *err)
{
    size_t i = 0;
    while (i < len && !surrogate_at(code, len, i))
        i++;
    if (i == len)
        return 0;
    size_t first = code_points(code, i), run = 1;
    unsigned cp = ((unsigned)code[i + 1] & 0x3f) << 6 | ((unsigned)code[i + 2] & 0x3f);
    for (i += 3; i < len && surrogate_at(code, len, i); i += 3)
        run++;
    if (run == 1)
        return refuse(reason, "invalid.code", err,
                      "Refusing code that Python cannot run: 'utf-8' codec can't encode "
                      "character '\\u%04x' in position %zu: surrogates not allowed",
                      0xd000 | cp, first);
    return refuse(reason, "invalid.code", err,
                  "Refusing code that Python cannot run: 'utf-8' codec can't encode characters "
                  "in position %zu-%zu: surrogates not allowed",
                  first, first + run - 1);
}

/* slug and limit_overrides_context are C strings that label logs and select
 * limits by name. A NUL byte or a lone surrogate cannot be carried by them,
 * and no configured name holds either, so each becomes U+FFFD: the label
 * stays valid UTF-8 and still matches no name ("a\u0000b" must not select
 * the limits of "a"). */
static char *decode_label(const char *text, struct cj_json_span v)
{
    size_t n;
    cleanup_free char *s = decode_string(text, v, &n);
    if (!s)
        return NULL;
    size_t nuls = 0;
    for (size_t i = 0; i < n; i++)
        nuls += s[i] == '\0';
    char *label = malloc(n + 2 * nuls + 1);
    if (!label)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t bad = s[i] == '\0' ? 1 : surrogate_at(s, n, i) ? 3 : 0;
        if (bad) {
            memcpy(label + o, "\xef\xbf\xbd", 3);
            o += 3;
            i += bad;
        } else {
            label[o++] = s[i++];
        }
    }
    label[o] = '\0';
    return label;
}

static int fill(const char *text, const struct members *m, size_t n_python_path,
                struct cj_payload *out, const char **reason, cj_error *err)
{
    out->code = decode_string(text, m->value[P_CODE], &out->code_len);
    if (!out->code)
        return oom(err);
    if (check_code(out->code, out->code_len, reason, err) < 0)
        return -1;

    struct cj_json_span g = m->value[P_GLOBALS];
    out->globals_len = g.end - g.start;
    out->globals_json = strndup(text + g.start, out->globals_len);
    if (!out->globals_json)
        return oom(err);

    if (n_python_path) {
        /* Every entry is "python_lib.zip": one block holds the pointers and
         * the one string they share, so a hostile count costs one allocation. */
        size_t table = n_python_path * sizeof(char *);
        out->python_path = malloc(table + sizeof CJ_PYTHON_LIB_ZIP);
        if (!out->python_path)
            return oom(err);
        char *shared = (char *)out->python_path + table;
        memcpy(shared, CJ_PYTHON_LIB_ZIP, sizeof CJ_PYTHON_LIB_ZIP);
        for (size_t i = 0; i < n_python_path; i++)
            out->python_path[i] = shared;
        out->n_python_path = n_python_path;
    }

    char **labels[] = {[P_CONTEXT] = &out->limit_overrides_context, [P_SLUG] = &out->slug};
    for (int p = P_CONTEXT; p <= P_SLUG; p++) {
        if (!m->present[p] || m->value[p].type != CJ_JSON_STRING)
            continue;
        *labels[p] = decode_label(text, m->value[p]);
        if (!*labels[p])
            return oom(err);
    }
    return 0;
}

static int parse(const char *text, size_t len, struct cj_payload *out, const char **reason,
                 cj_error *err)
{
    struct cj_json_span top;
    if (cj_pyjson_validate(text, len, CJ_PAYLOAD_MAX_DEPTH, &top, err) < 0) {
        if (err->errnum)
            return -1;
        *reason = "invalid.json";
        return cj_error_prefix(err, "Unable to parse payload JSON");
    }
    if (check_int_digits(text, len, reason, err) < 0)
        return -1;

    struct members m = {0};
    struct path_scan path_scan = {0};
    if (top.type == CJ_JSON_OBJECT) {
        if (cj_pyjson_object_members(text, len, top, take_member, &m, err) < 0)
            return -1;
        if (m.present[P_PYTHON_PATH] && m.value[P_PYTHON_PATH].type == CJ_JSON_ARRAY &&
            cj_pyjson_array_elements(text, len, m.value[P_PYTHON_PATH], scan_path_element,
                                     &path_scan, err) < 0)
            return -1;
    }
    if (check_schema(text, top, &m, &path_scan, reason, err) < 0)
        return -1;

    if (path_scan.count) {
        int rc = cj_pyjson_array_elements(text, len, m.value[P_PYTHON_PATH], check_path_entry,
                                          (void *)text, err);
        if (rc < 0)
            return -1;
        if (rc > 0)
            return refuse(reason, "invalid.python_path", err,
                          "Only allowed entry in 'python_path' is '" CJ_PYTHON_LIB_ZIP "'");
    }
    if (m.present[P_UNSAFELY] && m.value[P_UNSAFELY].type == CJ_JSON_TRUE)
        return refuse(reason, "invalid.unsafely", err,
                      "Refusing codejail execution with unsafely=true");
    return fill(text, &m, path_scan.count, out, reason, err);
}

int cj_payload_parse(const char *text, size_t len, struct cj_payload *out, const char **reason,
                     cj_error *err)
{
    const char *ignored;
    if (!reason)
        reason = &ignored;
    /* Out of memory is the only failure that is not the client's. */
    *reason = "internal";
    *out = (struct cj_payload){0};
    if (parse(text, len, out, reason, err) < 0) {
        cj_payload_free(out);
        return -1;
    }
    return 0;
}

void cj_payload_free(struct cj_payload *payload)
{
    free(payload->code);
    free(payload->globals_json);
    free(payload->python_path);
    free(payload->limit_overrides_context);
    free(payload->slug);
    *payload = (struct cj_payload){0};
}

int cj_payload_check_file_name(const char *name, cj_error *err)
{
    if (strcmp(name, CJ_PYTHON_LIB_ZIP) == 0)
        return 0;
    return cj_fail(err, 0, "Only allowed name for uploaded file is '" CJ_PYTHON_LIB_ZIP "'");
}
