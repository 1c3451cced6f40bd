#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "payload.h"

/* A literal and its length, so inputs may hold NUL bytes. */
#define S(lit) lit, sizeof(lit) - 1

struct refusal {
    const char *text;
    size_t len;
    const char *msg;
    const char *reason;
};

/* Every message below was generated once with the Python service's own checks
 * (codejail-service's views.py: json.loads, Draft202012Validator with its
 * payload schema, best_match, then python_path and unsafely) on Python 3.11.7
 * with jsonschema 4.26.0; "invalid.code" wraps str() of the UnicodeEncodeError
 * that exec() raises for such code. */
static const struct refusal refusals[] = {
    /* not JSON (json.JSONDecodeError) */
    {S(""), "Unable to parse payload JSON: Expecting value: line 1 column 1 (char 0)",
     "invalid.json"},
    {S("   "), "Unable to parse payload JSON: Expecting value: line 1 column 4 (char 3)",
     "invalid.json"},
    {S("{"),
     "Unable to parse payload JSON: Expecting property name enclosed in double quotes: line 1 "
     "column 2 (char 1)",
     "invalid.json"},
    {S("{\"code\": }"), "Unable to parse payload JSON: Expecting value: line 1 column 10 (char 9)",
     "invalid.json"},
    {S("{\"code\": \"x\", \"globals_dict\": {},}"),
     "Unable to parse payload JSON: Expecting property name enclosed in double quotes: line 1 "
     "column 34 (char 33)",
     "invalid.json"},
    {S("{\"code\": \"x\" \"globals_dict\": {}}"),
     "Unable to parse payload JSON: Expecting ',' delimiter: line 1 column 14 (char 13)",
     "invalid.json"},
    {S("{'code': 'x'}"),
     "Unable to parse payload JSON: Expecting property name enclosed in double quotes: line 1 "
     "column 2 (char 1)",
     "invalid.json"},
    {S("{\"code\": \"x\\y\", \"globals_dict\": {}}"),
     "Unable to parse payload JSON: Invalid \\escape: line 1 column 12 (char 11)", "invalid.json"},
    {S("{\"code\": \"a\012b\", \"globals_dict\": {}}"),
     "Unable to parse payload JSON: Invalid control character at: line 1 column 12 (char 11)",
     "invalid.json"},
    {S("{\"code\": \"x\", \"globals_dict\": {}} {}"),
     "Unable to parse payload JSON: Extra data: line 1 column 35 (char 34)", "invalid.json"},
    {S("{\"code\": \"\\ud800\\u12\", \"globals_dict\": {}}"),
     "Unable to parse payload JSON: Invalid \\uXXXX escape: line 1 column 18 (char 17)",
     "invalid.json"},
    {S("{\"code\": nan, \"globals_dict\": {}}"),
     "Unable to parse payload JSON: Expecting value: line 1 column 10 (char 9)", "invalid.json"},
    {S("{\"code\": \"x\", \"globals_dict\": {\"a\": -NaN}}"),
     "Unable to parse payload JSON: Expecting value: line 1 column 37 (char 36)", "invalid.json"},
    {S("\357\273\277{\"code\": \"x\", \"globals_dict\": {}}"),
     "Unable to parse payload JSON: Unexpected UTF-8 BOM (decode using utf-8-sig): line 1 column 1 "
     "(char 0)",
     "invalid.json"},
    {S("{\"code\": \"\303\251\303\251\", \"globals_dict\": {}, }"),
     "Unable to parse payload JSON: Expecting property name enclosed in double quotes: line 1 "
     "column 36 (char 35)",
     "invalid.json"},
    {S("{\"code\": \"x\", \"globals_dict\": {}}\012\012]"),
     "Unable to parse payload JSON: Extra data: line 3 column 1 (char 35)", "invalid.json"},
    /* the top level is not an object */
    {S("5"), "Payload JSON did not match schema at path $: 5 is not of type 'object'",
     "invalid.schema"},
    {S("\"code\""), "Payload JSON did not match schema at path $: 'code' is not of type 'object'",
     "invalid.schema"},
    {S("[1, 2]"), "Payload JSON did not match schema at path $: [1, 2] is not of type 'object'",
     "invalid.schema"},
    {S("null"), "Payload JSON did not match schema at path $: None is not of type 'object'",
     "invalid.schema"},
    {S("true"), "Payload JSON did not match schema at path $: True is not of type 'object'",
     "invalid.schema"},
    {S("NaN"), "Payload JSON did not match schema at path $: nan is not of type 'object'",
     "invalid.schema"},
    {S("-Infinity"), "Payload JSON did not match schema at path $: -inf is not of type 'object'",
     "invalid.schema"},
    {S("1.5"), "Payload JSON did not match schema at path $: 1.5 is not of type 'object'",
     "invalid.schema"},
    {S("1e400"), "Payload JSON did not match schema at path $: inf is not of type 'object'",
     "invalid.schema"},
    {S("-0"), "Payload JSON did not match schema at path $: 0 is not of type 'object'",
     "invalid.schema"},
    {S("-0.0"), "Payload JSON did not match schema at path $: -0.0 is not of type 'object'",
     "invalid.schema"},
    {S("12345678901234567890123"),
     "Payload JSON did not match schema at path $: 12345678901234567890123 is not of type 'object'",
     "invalid.schema"},
    {S("1E-7"), "Payload JSON did not match schema at path $: 1e-07 is not of type 'object'",
     "invalid.schema"},
    {S("1e16"), "Payload JSON did not match schema at path $: 1e+16 is not of type 'object'",
     "invalid.schema"},
    {S("[{\"code\": \"x\", \"globals_dict\": {}}]"),
     "Payload JSON did not match schema at path $: [{'code': 'x', 'globals_dict': {}}] is not of "
     "type 'object'",
     "invalid.schema"},
    /* a required key is missing */
    {S("{}"), "Payload JSON did not match schema at path $: 'code' is a required property",
     "invalid.schema"},
    {S("{\"globals_dict\": {}}"),
     "Payload JSON did not match schema at path $: 'code' is a required property",
     "invalid.schema"},
    {S("{\"code\": \"x\"}"),
     "Payload JSON did not match schema at path $: 'globals_dict' is a required property",
     "invalid.schema"},
    {S("{\"code\": 5}"),
     "Payload JSON did not match schema at path $: 'globals_dict' is a required property",
     "invalid.schema"},
    {S("{\"slug\": 5, \"python_path\": [1], \"globals_dict\": 5}"),
     "Payload JSON did not match schema at path $: 'code' is a required property",
     "invalid.schema"},
    {S("{\"co\\u0064e\": \"x\", \"globals_dict \": {}}"),
     "Payload JSON did not match schema at path $: 'globals_dict' is a required property",
     "invalid.schema"},
    {S("{\"code\": \"x\", \"Globals_dict\": {}}"),
     "Payload JSON did not match schema at path $: 'globals_dict' is a required property",
     "invalid.schema"},
    /* one property of the wrong type */
    {S("{\"code\": 5, \"globals_dict\": {}}"),
     "Payload JSON did not match schema at path $.code: 5 is not of type 'string'",
     "invalid.schema"},
    {S("{\"code\": NaN, \"globals_dict\": {}}"),
     "Payload JSON did not match schema at path $.code: nan is not of type 'string'",
     "invalid.schema"},
    {S("{\"code\": Infinity, \"globals_dict\": {}}"),
     "Payload JSON did not match schema at path $.code: inf is not of type 'string'",
     "invalid.schema"},
    {S("{\"code\": null, \"globals_dict\": {}}"),
     "Payload JSON did not match schema at path $.code: None is not of type 'string'",
     "invalid.schema"},
    {S("{\"code\": true, \"globals_dict\": {}}"),
     "Payload JSON did not match schema at path $.code: True is not of type 'string'",
     "invalid.schema"},
    {S("{\"code\": [\"x = 1\"], \"globals_dict\": {}}"),
     "Payload JSON did not match schema at path $.code: ['x = 1'] is not of type 'string'",
     "invalid.schema"},
    {S("{\"code\": {\"a\": 1, \"b\": [2.5, null, false, \"q'\"], \"a\": 2}, \"globals_dict\": {}}"),
     "Payload JSON did not match schema at path $.code: {'a': 2, 'b': [2.5, None, False, \"q'\"]} "
     "is not of type 'string'",
     "invalid.schema"},
    {S("{\"code\": {\"\\ud800\": \"\\u0000\\u00e9\\u200b\", \"\\\"\": \"'\"}, \"globals_dict\": "
       "{}}"),
     "Payload JSON did not match schema at path $.code: {'\\ud800': '\\x00\303\251\\u200b', '\"': "
     "\"'\"} is not of type 'string'",
     "invalid.schema"},
    {S("{\"code\": \"x\", \"globals_dict\": []}"),
     "Payload JSON did not match schema at path $.globals_dict: [] is not of type 'object'",
     "invalid.schema"},
    {S("{\"code\": \"x\", \"globals_dict\": \"{}\"}"),
     "Payload JSON did not match schema at path $.globals_dict: '{}' is not of type 'object'",
     "invalid.schema"},
    {S("{\"code\": \"x\", \"globals_dict\": null}"),
     "Payload JSON did not match schema at path $.globals_dict: None is not of type 'object'",
     "invalid.schema"},
    {S("{\"code\": \"x\", \"globals_dict\": NaN}"),
     "Payload JSON did not match schema at path $.globals_dict: nan is not of type 'object'",
     "invalid.schema"},
    {S("{\"code\": \"x\", \"globals_dict\": {}, \"python_path\": 5}"),
     "Payload JSON did not match schema at path $.python_path: 5 is not valid under any of the "
     "given schemas",
     "invalid.schema"},
    {S("{\"code\": \"x\", \"globals_dict\": {}, \"python_path\": \"python_lib.zip\"}"),
     "Payload JSON did not match schema at path $.python_path: 'python_lib.zip' is not valid under "
     "any of the given schemas",
     "invalid.schema"},
    {S("{\"code\": \"x\", \"globals_dict\": {}, \"python_path\": {}}"),
     "Payload JSON did not match schema at path $.python_path: {} is not valid under any of the "
     "given schemas",
     "invalid.schema"},
    {S("{\"code\": \"x\", \"globals_dict\": {}, \"python_path\": [5]}"),
     "Payload JSON did not match schema at path $.python_path[0]: 5 is not of type 'string'",
     "invalid.schema"},
    {S("{\"code\": \"x\", \"globals_dict\": {}, \"python_path\": [\"a\", 6, null]}"),
     "Payload JSON did not match schema at path $.python_path[1]: 6 is not of type 'string'",
     "invalid.schema"},
    {S("{\"code\": \"x\", \"globals_dict\": {}, \"python_path\": [\"python_lib.zip\", "
       "[\"python_lib.zip\"]]}"),
     "Payload JSON did not match schema at path $.python_path[1]: ['python_lib.zip'] is not of "
     "type 'string'",
     "invalid.schema"},
    {S("{\"code\": \"x\", \"globals_dict\": {}, \"limit_overrides_context\": 5}"),
     "Payload JSON did not match schema at path $.limit_overrides_context: 5 is not valid under "
     "any of the given schemas",
     "invalid.schema"},
    {S("{\"code\": \"x\", \"globals_dict\": {}, \"limit_overrides_context\": [\"course\"]}"),
     "Payload JSON did not match schema at path $.limit_overrides_context: ['course'] is not valid "
     "under any of the given schemas",
     "invalid.schema"},
    {S("{\"code\": \"x\", \"globals_dict\": {}, \"slug\": 5}"),
     "Payload JSON did not match schema at path $.slug: 5 is not valid under any of the given "
     "schemas",
     "invalid.schema"},
    {S("{\"code\": \"x\", \"globals_dict\": {}, \"slug\": false}"),
     "Payload JSON did not match schema at path $.slug: False is not valid under any of the given "
     "schemas",
     "invalid.schema"},
    {S("{\"code\": \"x\", \"globals_dict\": {}, \"slug\": {}}"),
     "Payload JSON did not match schema at path $.slug: {} is not valid under any of the given "
     "schemas",
     "invalid.schema"},
    {S("{\"code\": \"x\", \"globals_dict\": {}, \"unsafely\": 1}"),
     "Payload JSON did not match schema at path $.unsafely: 1 is not of type 'boolean'",
     "invalid.schema"},
    {S("{\"code\": \"x\", \"globals_dict\": {}, \"unsafely\": 0}"),
     "Payload JSON did not match schema at path $.unsafely: 0 is not of type 'boolean'",
     "invalid.schema"},
    {S("{\"code\": \"x\", \"globals_dict\": {}, \"unsafely\": \"yes\"}"),
     "Payload JSON did not match schema at path $.unsafely: 'yes' is not of type 'boolean'",
     "invalid.schema"},
    {S("{\"code\": \"x\", \"globals_dict\": {}, \"unsafely\": \"true\"}"),
     "Payload JSON did not match schema at path $.unsafely: 'true' is not of type 'boolean'",
     "invalid.schema"},
    {S("{\"code\": \"x\", \"globals_dict\": {}, \"unsafely\": null}"),
     "Payload JSON did not match schema at path $.unsafely: None is not of type 'boolean'",
     "invalid.schema"},
    /* several errors: best_match takes the one whose property name sorts last */
    {S("{\"code\": 5, \"globals_dict\": 5}"),
     "Payload JSON did not match schema at path $.globals_dict: 5 is not of type 'object'",
     "invalid.schema"},
    {S("{\"code\": 5, \"globals_dict\": {}, \"slug\": 5}"),
     "Payload JSON did not match schema at path $.slug: 5 is not valid under any of the given "
     "schemas",
     "invalid.schema"},
    {S("{\"code\": 5, \"globals_dict\": 5, \"limit_overrides_context\": 5}"),
     "Payload JSON did not match schema at path $.limit_overrides_context: 5 is not valid under "
     "any of the given schemas",
     "invalid.schema"},
    {S("{\"code\": 5, \"globals_dict\": 5, \"limit_overrides_context\": 5, \"python_path\": [1]}"),
     "Payload JSON did not match schema at path $.python_path[0]: 1 is not of type 'string'",
     "invalid.schema"},
    {S("{\"code\": 5, \"globals_dict\": 5, \"python_path\": 5, \"slug\": 5}"),
     "Payload JSON did not match schema at path $.slug: 5 is not valid under any of the given "
     "schemas",
     "invalid.schema"},
    {S("{\"code\": 5, \"globals_dict\": 5, \"slug\": 5, \"unsafely\": 5}"),
     "Payload JSON did not match schema at path $.unsafely: 5 is not of type 'boolean'",
     "invalid.schema"},
    {S("{\"unsafely\": 5, \"slug\": 5, \"python_path\": 5, \"limit_overrides_context\": 5, "
       "\"globals_dict\": 5, \"code\": 5}"),
     "Payload JSON did not match schema at path $.unsafely: 5 is not of type 'boolean'",
     "invalid.schema"},
    {S("{\"code\": \"x\", \"globals_dict\": {}, \"python_path\": [1], \"unsafely\": true}"),
     "Payload JSON did not match schema at path $.python_path[0]: 1 is not of type 'string'",
     "invalid.schema"},
    /* the last of duplicate keys counts */
    {S("{\"code\": \"x\", \"code\": 5, \"globals_dict\": {}}"),
     "Payload JSON did not match schema at path $.code: 5 is not of type 'string'",
     "invalid.schema"},
    {S("{\"code\": \"x\", \"globals_dict\": {}, \"globals_dict\": []}"),
     "Payload JSON did not match schema at path $.globals_dict: [] is not of type 'object'",
     "invalid.schema"},
    /* python_path entries other than python_lib.zip */
    {S("{\"code\": \"x\", \"globals_dict\": {}, \"python_path\": [\"\"]}"),
     "Only allowed entry in 'python_path' is 'python_lib.zip'", "invalid.python_path"},
    {S("{\"code\": \"x\", \"globals_dict\": {}, \"python_path\": [\"python_lib.zip\", \"/etc\"]}"),
     "Only allowed entry in 'python_path' is 'python_lib.zip'", "invalid.python_path"},
    {S("{\"code\": \"x\", \"globals_dict\": {}, \"python_path\": [\"python_lib.zip\\u0000\"]}"),
     "Only allowed entry in 'python_path' is 'python_lib.zip'", "invalid.python_path"},
    {S("{\"code\": \"x\", \"globals_dict\": {}, \"python_path\": [\"./python_lib.zip\"]}"),
     "Only allowed entry in 'python_path' is 'python_lib.zip'", "invalid.python_path"},
    {S("{\"code\": \"x\", \"globals_dict\": {}, \"python_path\": [\"PYTHON_LIB.ZIP\"]}"),
     "Only allowed entry in 'python_path' is 'python_lib.zip'", "invalid.python_path"},
    {S("{\"code\": \"x\", \"globals_dict\": {}, \"python_path\": [\"python_lib.zip\"], "
       "\"unsafely\": true, \"slug\": null}"),
     "Refusing codejail execution with unsafely=true", "invalid.unsafely"},
    {S("{\"code\": \"x\", \"globals_dict\": {}, \"python_path\": [\"x\"], \"unsafely\": true}"),
     "Only allowed entry in 'python_path' is 'python_lib.zip'", "invalid.python_path"},
    /* unsafely */
    {S("{\"code\": \"x\", \"globals_dict\": {}, \"unsafely\": true}"),
     "Refusing codejail execution with unsafely=true", "invalid.unsafely"},
    {S("{\"code\": \"x\", \"globals_dict\": {}, \"unsafely\": false, \"unsafely\": true}"),
     "Refusing codejail execution with unsafely=true", "invalid.unsafely"},
    /* code Python cannot compile: lone surrogates */
    {S("{\"code\": \"x = '\\ud800'\", \"globals_dict\": {}}"),
     "Refusing code that Python cannot run: 'utf-8' codec can't encode character '\\ud800' in "
     "position 5: surrogates not allowed",
     "invalid.code"},
    {S("{\"code\": \"\\u00e9\\udc00\\ud800!\", \"globals_dict\": {}}"),
     "Refusing code that Python cannot run: 'utf-8' codec can't encode characters in position 1-2: "
     "surrogates not allowed",
     "invalid.code"},
};

static void expect_refusal(const char *text, size_t len, const char *msg, const char *reason)
{
    struct cj_payload p;
    const char *why = NULL;
    cj_error err = {0};
    if (cj_payload_parse(text, len, &p, &why, &err) != -1)
        fail_msg("accepted: %.*s", (int)(len > 200 ? 200 : len), text);
    assert_string_equal(err.msg, msg);
    assert_string_equal(why, reason);
    assert_int_equal(err.errnum, 0);
    assert_null(p.code);
    assert_null(p.globals_json);
    assert_null(p.python_path);
}

static void test_refusals(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof refusals / sizeof *refusals; i++)
        expect_refusal(refusals[i].text, refusals[i].len, refusals[i].msg, refusals[i].reason);
}

/* The Python service never sees these bytes (Django decodes form fields,
 * replacing what is not UTF-8); here they are refused. */
static void test_not_utf8(void **state)
{
    (void)state;
    expect_refusal(S("{\"code\": \"x\377\", \"globals_dict\": {}}"),
                   "Unable to parse payload JSON: Invalid UTF-8 at byte 11", "invalid.json");
    expect_refusal(S("{\"code\": \"\355\240\200\", \"globals_dict\": {}}"),
                   "Unable to parse payload JSON: Invalid UTF-8 at byte 10", "invalid.json");
}

/* A payload nested n levels deep: the object, globals_dict, then arrays. */
static char *nested(size_t depth)
{
    struct cj_buf b;
    cj_buf_init(&b, 0);
    cj_buf_append_str(&b, "{\"code\": \"x\", \"globals_dict\": {\"a\": ");
    for (size_t i = 2; i < depth; i++)
        cj_buf_append_str(&b, "[");
    for (size_t i = 2; i < depth; i++)
        cj_buf_append_str(&b, "]");
    cj_buf_append_str(&b, "}}");
    return cj_buf_steal(&b, NULL);
}

static void test_depth(void **state)
{
    (void)state;
    char *ok = nested(CJ_PAYLOAD_MAX_DEPTH);
    struct cj_payload p;
    const char *why;
    cj_error err;
    assert_int_equal(cj_payload_parse(ok, strlen(ok), &p, &why, &err), 0);
    cj_payload_free(&p);
    free(ok);

    /* Python would accept this and fail near 1000 levels with a
     * RecursionError (a 500); the limit here is lower and a clean 400. */
    char *deep = nested(CJ_PAYLOAD_MAX_DEPTH + 1);
    expect_refusal(deep, strlen(deep),
                   "Unable to parse payload JSON: Nesting deeper than 200 levels: line 1 "
                   "column 235 (char 234)",
                   "invalid.json");
    free(deep);
}

/* json.loads makes a Python int of every integer literal, and CPython refuses
 * more than 4300 digits with a ValueError (the service answers 500). */
static void test_int_digits(void **state)
{
    (void)state;
    static const char *const forms[] = {"1%s", "-1%s", "1%s.5", "1%se1"};
    for (size_t f = 0; f < sizeof forms / sizeof *forms; f++) {
        for (size_t digits = 4299; digits <= 4301; digits++) {
            char *zeros = calloc(1, digits);
            memset(zeros, '0', digits - 1);
            struct cj_buf b;
            cj_buf_init(&b, 0);
            cj_buf_append_str(&b, "{\"code\": \"x\", \"globals_dict\": {\"n\": [");
            cj_buf_printf(&b, forms[f], zeros);
            /* Digits in a string are no number. */
            cj_buf_printf(&b, "], \"s\": \"1%s\"}}", zeros);
            struct cj_payload p;
            const char *why;
            cj_error err;
            int rc = cj_payload_parse(b.data, b.len, &p, &why, &err);
            if (digits <= 4300 || f >= 2) {
                assert_int_equal(rc, 0);
                cj_payload_free(&p);
            } else {
                assert_int_equal(rc, -1);
                assert_string_equal(why, "invalid.json");
                assert_string_equal(err.msg,
                                    "Unable to parse payload JSON: Exceeds the limit (4300 "
                                    "digits) for integer string conversion: value has 4301 "
                                    "digits; use sys.set_int_max_str_digits() to increase "
                                    "the limit");
            }
            cj_buf_free(&b);
            free(zeros);
        }
    }
}

/* jsonschema quotes the whole value; the message here has a fixed size, so
 * the quote is cut at a character boundary and marked, keeping the end. */
static void test_long_values_are_cut(void **state)
{
    (void)state;
    struct cj_buf b;
    cj_buf_init(&b, 0);
    cj_buf_append_str(&b, "{\"code\": [");
    for (int i = 0; i < 200; i++)
        cj_buf_printf(&b, "%s%d", i ? ", " : "", i);
    cj_buf_append_str(&b, "], \"globals_dict\": {}}");
    struct cj_buf want;
    cj_buf_init(&want, 0);
    cj_buf_append_str(&want, "Payload JSON did not match schema at path $.code: [");
    for (int i = 0; i <= 108; i++)
        cj_buf_printf(&want, "%s%d", i ? ", " : "", i);
    cj_buf_append_str(&want, "... is not of type 'string'");
    expect_refusal(b.data, b.len, want.data, "invalid.schema");
    assert_int_equal(want.len, sizeof(((cj_error *)0)->msg) - 1);
    cj_buf_free(&b);
    cj_buf_free(&want);

    cj_buf_append_str(&b, "{\"code\": \"x\", \"globals_dict\": {}, \"slug\": [\"");
    for (int i = 0; i < 210; i++)
        cj_buf_append_str(&b, "\303\251");
    cj_buf_append_str(&b, "\"]}");
    cj_buf_append_str(&want, "Payload JSON did not match schema at path $.slug: ['");
    for (int i = 0; i < 206; i++)
        cj_buf_append_str(&want, "\303\251");
    cj_buf_append_str(&want, "... is not valid under any of the given schemas");
    expect_refusal(b.data, b.len, want.data, "invalid.schema");
    cj_buf_free(&b);
    cj_buf_free(&want);
}

/* Nesting that would make quoting cost depth x size stops early. */
static void test_hostile_nesting_is_cut(void **state)
{
    (void)state;
    struct cj_buf b;
    cj_buf_init(&b, 0);
    cj_buf_append_str(&b, "{\"globals_dict\": {}, \"code\": ");
    for (int i = 0; i < 190; i++)
        cj_buf_append_str(&b, "[");
    for (int i = 0; i < 1000000; i++)
        cj_buf_append_str(&b, "0,");
    cj_buf_append_str(&b, "0");
    for (int i = 0; i < 190; i++)
        cj_buf_append_str(&b, "]");
    cj_buf_append_str(&b, "}");
    struct cj_payload p;
    const char *why;
    cj_error err;
    assert_int_equal(cj_payload_parse(b.data, b.len, &p, &why, &err), -1);
    assert_string_equal(why, "invalid.schema");
    static const char want[] = "Payload JSON did not match schema at path $.code: [[";
    assert_memory_equal(err.msg, want, sizeof want - 1);
    static const char end[] = "... is not of type 'string'";
    size_t n = strlen(err.msg);
    assert_string_equal(err.msg + n - (sizeof end - 1), end);
    cj_buf_free(&b);
}

static void test_minimal(void **state)
{
    (void)state;
    static const char text[] = "{\"code\": \"x = 1\", \"globals_dict\": {}}";
    struct cj_payload p;
    const char *why;
    cj_error err;
    assert_int_equal(cj_payload_parse(text, sizeof text - 1, &p, &why, &err), 0);
    assert_string_equal(p.code, "x = 1");
    assert_int_equal(p.code_len, 5);
    assert_string_equal(p.globals_json, "{}");
    assert_int_equal(p.globals_len, 2);
    assert_int_equal(p.n_python_path, 0);
    assert_null(p.python_path);
    assert_null(p.limit_overrides_context);
    assert_null(p.slug);
    cj_payload_free(&p);
}

/* What edx-platform sends, with every optional key. */
static void test_full(void **state)
{
    (void)state;
    static const char text[] =
        "{\"code\": \"import m\\nx = \\\"\\u00e9\\ud83d\\ude00\\\"\\t\\u0000\", "
        "\"globals_dict\": {\"a\": [1, 2.5, null], \"b\": {\"c\": \"d\"}}, "
        "\"python_path\": [\"python_lib.zip\", \"python\\u005flib.zip\"], "
        "\"limit_overrides_context\": \"course-v1:edX+DemoX+Demo_Course\", "
        "\"slug\": \"problem-1\", \"unsafely\": false}";
    struct cj_payload p;
    const char *why;
    cj_error err;
    assert_int_equal(cj_payload_parse(text, sizeof text - 1, &p, &why, &err), 0);
    static const char code[] = "import m\nx = \"\303\251\360\237\230\200\"\t";
    assert_int_equal(p.code_len, sizeof code); /* with the escaped NUL */
    assert_memory_equal(p.code, code, sizeof code);
    assert_int_equal(p.code[p.code_len], '\0');
    assert_string_equal(p.globals_json, "{\"a\": [1, 2.5, null], \"b\": {\"c\": \"d\"}}");
    assert_int_equal(p.n_python_path, 2);
    assert_string_equal(p.python_path[0], "python_lib.zip");
    assert_string_equal(p.python_path[1], "python_lib.zip");
    assert_string_equal(p.limit_overrides_context, "course-v1:edX+DemoX+Demo_Course");
    assert_string_equal(p.slug, "problem-1");
    cj_payload_free(&p);
}

static void test_nulls_and_duplicates(void **state)
{
    (void)state;
    static const char text[] = "{\"code\": 5, \"python_path\": null, \"slug\": null, "
                               "\"limit_overrides_context\": null, \"c\\u006fde\": \"y\", "
                               "\"globals_dict\": [], \"globals_dict\" : { \"k\" : 1 } }";
    struct cj_payload p;
    const char *why;
    cj_error err;
    assert_int_equal(cj_payload_parse(text, sizeof text - 1, &p, &why, &err), 0);
    assert_string_equal(p.code, "y");
    assert_string_equal(p.globals_json, "{ \"k\" : 1 }");
    assert_int_equal(p.n_python_path, 0);
    assert_null(p.limit_overrides_context);
    assert_null(p.slug);
    cj_payload_free(&p);
}

/* Python's dialect: the globals are kept as text, NaN and all. */
static void test_nan_globals_verbatim(void **state)
{
    (void)state;
    static const char text[] = "{\"code\":\"x=1\",\"globals_dict\":{\"a\":NaN}}";
    struct cj_payload p;
    const char *why;
    cj_error err;
    assert_int_equal(cj_payload_parse(text, sizeof text - 1, &p, &why, &err), 0);
    assert_string_equal(p.globals_json, "{\"a\":NaN}");
    cj_payload_free(&p);

    static const char more[] = "{\"globals_dict\": {\"i\": [Infinity, -Infinity, 1e400], "
                               "\"\\ud800\": \"\\udc00\"}, \"code\": \"\"}";
    assert_int_equal(cj_payload_parse(more, sizeof more - 1, &p, &why, &err), 0);
    assert_string_equal(p.globals_json,
                        "{\"i\": [Infinity, -Infinity, 1e400], \"\\ud800\": \"\\udc00\"}");
    assert_int_equal(p.code_len, 0);
    cj_payload_free(&p);
}

/* Labels are C strings: NUL and lone surrogates become U+FFFD, so that
 * "a\u0000b" cannot select the limits configured for "a". */
static void test_labels(void **state)
{
    (void)state;
    static const char text[] = "{\"code\": \"\", \"globals_dict\": {}, "
                               "\"limit_overrides_context\": \"a\\u0000b\", "
                               "\"slug\": \"\\ud800s\\udfff\\ud83d\\ude00\"}";
    struct cj_payload p;
    const char *why;
    cj_error err;
    assert_int_equal(cj_payload_parse(text, sizeof text - 1, &p, &why, &err), 0);
    assert_string_equal(p.limit_overrides_context, "a\357\277\275b");
    assert_string_equal(p.slug, "\357\277\275s\357\277\275\360\237\230\200");
    cj_payload_free(&p);
}

static void test_big_globals(void **state)
{
    (void)state;
    struct cj_buf b;
    cj_buf_init(&b, 0);
    cj_buf_append_str(&b, "{\"code\": \"out = len(g)\", \"globals_dict\": {\"g\": [");
    size_t start = b.len - strlen("{\"g\": [");
    for (int i = 0; b.len < (10u << 20); i++)
        cj_buf_printf(&b, "%s{\"k%d\": [%d, 1.5, \"s\\u00e9\", NaN]}", i ? ", " : "", i, i);
    cj_buf_append_str(&b, "]}, \"python_path\": [\"python_lib.zip\"]}");
    size_t end = b.len - strlen(", \"python_path\": [\"python_lib.zip\"]}");
    struct cj_payload p;
    const char *why;
    cj_error err;
    assert_int_equal(cj_payload_parse(b.data, b.len, &p, &why, &err), 0);
    assert_int_equal(p.globals_len, end - start);
    assert_memory_equal(p.globals_json, b.data + start, end - start);
    assert_int_equal(p.globals_json[p.globals_len], '\0');
    assert_int_equal(p.n_python_path, 1);
    cj_payload_free(&p);
    cj_buf_free(&b);
}

static void test_file_name(void **state)
{
    (void)state;
    cj_error err;
    assert_int_equal(cj_payload_check_file_name("python_lib.zip", &err), 0);
    static const char *const bad[] = {
        "",     "python_lib.zip ", "../python_lib.zip", "/tmp/python_lib.zip", "PYTHON_LIB.ZIP",
        "x.zip"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(cj_payload_check_file_name(bad[i], &err), -1);
        assert_string_equal(err.msg, "Only allowed name for uploaded file is 'python_lib.zip'");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_not_utf8),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_int_digits),
        cmocka_unit_test(test_long_values_are_cut),
        cmocka_unit_test(test_hostile_nesting_is_cut),
        cmocka_unit_test(test_minimal),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_nulls_and_duplicates),
        cmocka_unit_test(test_nan_globals_verbatim),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_big_globals),
        cmocka_unit_test(test_file_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
