#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "pyjson.h"

/* A literal and its length, so inputs may hold NUL bytes. */
#define S(lit) lit, sizeof(lit) - 1

struct bad_case {
    const char *text;
    size_t len;
    const char *msg;
};

/* Expected messages generated once with /usr/bin/python3 (3.11.2):
 * str(json.JSONDecodeError) of json.loads(text.decode()). */
static const struct bad_case python_errors[] = {
    {S(""), "Expecting value: line 1 column 1 (char 0)"},
    {S(" "), "Expecting value: line 1 column 2 (char 1)"},
    {S("\012\012"), "Expecting value: line 3 column 1 (char 2)"},
    {S("x"), "Expecting value: line 1 column 1 (char 0)"},
    {S("nul"), "Expecting value: line 1 column 1 (char 0)"},
    {S("True"), "Expecting value: line 1 column 1 (char 0)"},
    {S("-"), "Expecting value: line 1 column 1 (char 0)"},
    {S("-Inf"), "Expecting value: line 1 column 1 (char 0)"},
    {S("+1"), "Expecting value: line 1 column 1 (char 0)"},
    {S(".5"), "Expecting value: line 1 column 1 (char 0)"},
    {S("NaNx"), "Extra data: line 1 column 4 (char 3)"},
    {S("01"), "Extra data: line 1 column 2 (char 1)"},
    {S("1."), "Extra data: line 1 column 2 (char 1)"},
    {S("1e"), "Extra data: line 1 column 2 (char 1)"},
    {S("1e+"), "Extra data: line 1 column 2 (char 1)"},
    {S("1.e5"), "Extra data: line 1 column 2 (char 1)"},
    {S("--1"), "Expecting value: line 1 column 1 (char 0)"},
    {S("["), "Expecting value: line 1 column 2 (char 1)"},
    {S("[1"), "Expecting ',' delimiter: line 1 column 3 (char 2)"},
    {S("[1,"), "Expecting value: line 1 column 4 (char 3)"},
    {S("[1,]"), "Expecting value: line 1 column 4 (char 3)"},
    {S("[,]"), "Expecting value: line 1 column 2 (char 1)"},
    {S("[1 2]"), "Expecting ',' delimiter: line 1 column 4 (char 3)"},
    {S("[1.]"), "Expecting ',' delimiter: line 1 column 3 (char 2)"},
    {S("[-]"), "Expecting value: line 1 column 2 (char 1)"},
    {S("]"), "Expecting value: line 1 column 1 (char 0)"},
    {S("{"), "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"},
    {S("{}}"), "Extra data: line 1 column 3 (char 2)"},
    {S("{\"a\""), "Expecting ':' delimiter: line 1 column 5 (char 4)"},
    {S("{\"a\" 1}"), "Expecting ':' delimiter: line 1 column 6 (char 5)"},
    {S("{\"a\":"), "Expecting value: line 1 column 6 (char 5)"},
    {S("{\"a\":1"), "Expecting ',' delimiter: line 1 column 7 (char 6)"},
    {S("{\"a\":1,"), "Expecting property name enclosed in double quotes: line 1 column 8 (char 7)"},
    {S("{\"a\":1,}"),
     "Expecting property name enclosed in double quotes: line 1 column 8 (char 7)"},
    {S("{1:2}"), "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"},
    {S("{'a':1}"), "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"},
    {S("{\"a\":1 \"b\":2}"), "Expecting ',' delimiter: line 1 column 8 (char 7)"},
    {S("\"abc"), "Unterminated string starting at: line 1 column 1 (char 0)"},
    {S("\"\\"), "Unterminated string starting at: line 1 column 1 (char 0)"},
    {S("\"\\\""), "Unterminated string starting at: line 1 column 1 (char 0)"},
    {S("\"a\001\""), "Invalid control character at: line 1 column 3 (char 2)"},
    {S("\"\011\""), "Invalid control character at: line 1 column 2 (char 1)"},
    {S("\"\000\""), "Invalid control character at: line 1 column 2 (char 1)"},
    {S("\"\\x\""), "Invalid \\escape: line 1 column 2 (char 1)"},
    {S("\"\\U0041\""), "Invalid \\escape: line 1 column 2 (char 1)"},
    {S("\"\\\001\""), "Invalid \\escape: line 1 column 2 (char 1)"},
    {S("\"\\u12"), "Invalid \\uXXXX escape: line 1 column 3 (char 2)"},
    {S("\"\\u1234"), "Invalid \\uXXXX escape: line 1 column 3 (char 2)"},
    {S("\"\\u00\""), "Invalid \\uXXXX escape: line 1 column 3 (char 2)"},
    {S("\"\\uGGGG\""), "Invalid \\uXXXX escape: line 1 column 3 (char 2)"},
    {S("\"\\u123G\""), "Invalid \\uXXXX escape: line 1 column 3 (char 2)"},
    {S("\"\\u 123\""), "Invalid \\uXXXX escape: line 1 column 3 (char 2)"},
    {S("\"\\uD800\\u"), "Invalid \\uXXXX escape: line 1 column 9 (char 8)"},
    {S("\"\\uD800\\uDC0\""), "Invalid \\uXXXX escape: line 1 column 9 (char 8)"},
    {S("\"\\uD800\\uZZZZ\""), "Invalid \\uXXXX escape: line 1 column 9 (char 8)"},
    {S("\"\\uD800\\uDC00"), "Invalid \\uXXXX escape: line 1 column 9 (char 8)"},
    {S("\357\273\277{}"),
     "Unexpected UTF-8 BOM (decode using utf-8-sig): line 1 column 1 (char 0)"},
    {S("[1]\012]"), "Extra data: line 2 column 1 (char 4)"},
    {S("{} {}"), "Extra data: line 1 column 4 (char 3)"},
    {S("null x"), "Extra data: line 1 column 6 (char 5)"},
    {S("1 2"), "Extra data: line 1 column 3 (char 2)"},
    {S("[\012\303\251"), "Expecting value: line 2 column 1 (char 2)"},
    {S("{\"\303\251\342\202\254\360\237\230\200\": [1,\012  2,\012  x]}"),
     "Expecting value: line 3 column 3 (char 19)"},
    {S("\"\303\251\012\""), "Invalid control character at: line 1 column 3 (char 2)"},
    {S("\303\251"), "Expecting value: line 1 column 1 (char 0)"},
    {S("[\015\012\342\202\254, 1, \360\237\230\200]"), "Expecting value: line 2 column 1 (char 3)"},
    {S("{\"a\": {\"b\": [1, 2, {\"c\": }]}}"), "Expecting value: line 1 column 26 (char 25)"},
    {S("{\"a\": [}"), "Expecting value: line 1 column 8 (char 7)"},
    {S("[{]"), "Expecting property name enclosed in double quotes: line 1 column 3 (char 2)"},
    {S("[1, 2"), "Expecting ',' delimiter: line 1 column 6 (char 5)"},
    {S("nulltrue"), "Extra data: line 1 column 5 (char 4)"},
    {S("Infinit"), "Expecting value: line 1 column 1 (char 0)"},
    {S("-NaN"), "Expecting value: line 1 column 1 (char 0)"},
    {S("[NaN, Infinity, -Infinity, nan]"), "Expecting value: line 1 column 28 (char 27)"},
};

/* Python never sees these: the bytes are not a str. */
static const struct bad_case utf8_errors[] = {
    {S("\"\300\200\""), "Invalid UTF-8 at byte 1"},         /* overlong NUL */
    {S("\"\301\277\""), "Invalid UTF-8 at byte 1"},         /* overlong DEL */
    {S("\340\200\200"), "Invalid UTF-8 at byte 0"},         /* overlong 3-byte */
    {S("\360\200\200\200"), "Invalid UTF-8 at byte 0"},     /* overlong 4-byte */
    {S("[\"\355\240\200\"]"), "Invalid UTF-8 at byte 2"},   /* U+D800 */
    {S("[\"\355\277\277\"]"), "Invalid UTF-8 at byte 2"},   /* U+DFFF */
    {S("\364\220\200\200"), "Invalid UTF-8 at byte 0"},     /* U+110000 */
    {S("\370\210\200\200\200"), "Invalid UTF-8 at byte 0"}, /* 5-byte form */
    {S("\"\342\202\""), "Invalid UTF-8 at byte 1"},         /* truncated, then a quote */
    {S("\"\342\202"), "Invalid UTF-8 at byte 1"},           /* truncated at the end */
    {S("\"\360\237\230"), "Invalid UTF-8 at byte 1"},
    {S("\200"), "Invalid UTF-8 at byte 0"}, /* lone continuation byte */
    {S("\377"), "Invalid UTF-8 at byte 0"},
    {S("\376"), "Invalid UTF-8 at byte 0"},
    /* Checked before the syntax: the whole text must be a str first. */
    {S("{\"a\": x} \301\201"), "Invalid UTF-8 at byte 9"},
};

static void test_python_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof python_errors / sizeof *python_errors; i++) {
        const struct bad_case *c = &python_errors[i];
        struct cj_json_span span;
        cj_error err = {0};
        assert_int_equal(cj_pyjson_validate(c->text, c->len, 64, &span, &err), -1);
        assert_string_equal(err.msg, c->msg);
    }
}

static void test_utf8_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof utf8_errors / sizeof *utf8_errors; i++) {
        const struct bad_case *c = &utf8_errors[i];
        struct cj_json_span span;
        cj_error err = {0};
        assert_int_equal(cj_pyjson_validate(c->text, c->len, 64, &span, &err), -1);
        assert_string_equal(err.msg, c->msg);
    }
}

struct good_case {
    const char *text;
    size_t len;
    size_t start, end;
    enum cj_json_type type;
};

/* Each is accepted by json.loads(); start and end trim Python's whitespace. */
static const struct good_case valid[] = {
    {S("0"), 0, 1, CJ_JSON_NUMBER},
    {S("-0"), 0, 2, CJ_JSON_NUMBER},
    {S("-0.0e-0"), 0, 7, CJ_JSON_NUMBER},
    {S("1e5"), 0, 3, CJ_JSON_NUMBER},
    {S("1E+5"), 0, 4, CJ_JSON_NUMBER},
    {S("-12.5e-3"), 0, 8, CJ_JSON_NUMBER},
    {S("123456789012345678901234567890"), 0, 30, CJ_JSON_NUMBER},
    {S("1e400"), 0, 5, CJ_JSON_NUMBER}, /* Python reads inf; the text is a plain number */
    {S("NaN"), 0, 3, CJ_JSON_NONFINITE},
    {S("Infinity"), 0, 8, CJ_JSON_NONFINITE},
    {S("-Infinity"), 0, 9, CJ_JSON_NONFINITE},
    {S("true"), 0, 4, CJ_JSON_TRUE},
    {S("false"), 0, 5, CJ_JSON_FALSE},
    {S("null"), 0, 4, CJ_JSON_NULL},
    {S("\"\""), 0, 2, CJ_JSON_STRING},
    {S("\"\\u0000\""), 0, 8, CJ_JSON_STRING},
    {S("\"\\ud800\""), 0, 8, CJ_JSON_STRING},
    {S("\"\\uDFFF\\uD800\""), 0, 14, CJ_JSON_STRING},
    {S("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\""), 0, 18, CJ_JSON_STRING},
    {S("\"\177\303\251\342\202\254\360\237\230\200\""), 0, 12, CJ_JSON_STRING},
    {S("\"\302\200\355\237\277\356\200\200\360\220\200\200\364\217\277\277\""), 0, 18,
     CJ_JSON_STRING}, /* U+0080, U+D7FF, U+E000, U+10000, U+10FFFF */
    {S("[]"), 0, 2, CJ_JSON_ARRAY},
    {S("{}"), 0, 2, CJ_JSON_OBJECT},
    {S(" \011\012\015[ ]\015\012"), 4, 7, CJ_JSON_ARRAY},
    {S("[1,[2,[3]]]"), 0, 11, CJ_JSON_ARRAY},
    {S("{\"a\":{\"b\":{}}, \"a\": 2}"), 0, 22, CJ_JSON_OBJECT},
    {S("\012{\"k\": [NaN, -Infinity]}  "), 1, 24, CJ_JSON_OBJECT},
};

static void test_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof valid / sizeof *valid; i++) {
        const struct good_case *c = &valid[i];
        struct cj_json_span span;
        cj_error err = {0};
        assert_int_equal(cj_pyjson_validate(c->text, c->len, 64, &span, &err), 0);
        assert_int_equal(span.start, c->start);
        assert_int_equal(span.end, c->end);
        assert_int_equal(span.type, c->type);
    }
}

/* n opening brackets, then n closing ones when closed. */
static char *nested(size_t n, bool closed, size_t *len)
{
    *len = closed ? 2 * n : n;
    char *s = malloc(*len);
    assert_non_null(s);
    memset(s, '[', n);
    if (closed)
        memset(s + n, ']', n);
    return s;
}

static void test_depth(void **state)
{
    (void)state;
    struct cj_json_span span;
    cj_error err = {0};
    size_t len;
    char *s = nested(10000, true, &len);
    assert_int_equal(cj_pyjson_validate(s, len, 10000, &span, &err), 0);
    assert_int_equal(span.end, len);
    assert_int_equal(cj_pyjson_validate(s, len, 9999, &span, &err), -1);
    assert_string_equal(err.msg,
                        "Nesting deeper than 9999 levels: line 1 column 10000 (char 9999)");
    free(s);

    /* A million open brackets with no limit: heap, not C stack. */
    s = nested(1000000, false, &len);
    assert_int_equal(cj_pyjson_validate(s, len, (unsigned)-1, &span, &err), -1);
    assert_string_equal(err.msg, "Expecting value: line 1 column 1000001 (char 1000000)");
    free(s);

    assert_int_equal(cj_pyjson_validate(S("[]"), 0, &span, &err), -1);
    assert_string_equal(err.msg, "Nesting deeper than 0 levels: line 1 column 1 (char 0)");
    assert_int_equal(cj_pyjson_validate(S("{\"a\": [1]}"), 1, &span, &err), -1);
    assert_string_equal(err.msg, "Nesting deeper than 1 levels: line 1 column 7 (char 6)");
    assert_int_equal(cj_pyjson_validate(S("{\"a\": [1]}"), 2, &span, &err), 0);
}

struct item {
    char key[16];
    size_t keylen;
    char value[32];
    enum cj_json_type type;
    struct cj_json_span span;
};

struct expect {
    const char *key;
    size_t keylen;
    const char *value;
    enum cj_json_type type;
};

struct collect {
    const char *text;
    struct item items[16];
    size_t n;
    size_t stop_at; /* return 7 from this call; 0 never */
};

static int collect(void *ctx, const char *key, size_t keylen, struct cj_json_span value,
                   cj_error *err)
{
    (void)err;
    struct collect *c = ctx;
    assert_true(c->n < 16);
    struct item *it = &c->items[c->n++];
    if (key) {
        assert_true(keylen < sizeof it->key);
        assert_int_equal(key[keylen], '\0');
        memcpy(it->key, key, keylen);
    }
    it->keylen = keylen;
    assert_true(value.end - value.start < sizeof it->value);
    memcpy(it->value, c->text + value.start, value.end - value.start);
    it->type = value.type;
    it->span = value;
    return c->n == c->stop_at ? 7 : 0;
}

static void test_object_members(void **state)
{
    (void)state;
    static const char text[] =
        "{\"a\": 1, \"b\\u0000c\": [1, {\"x\": 2}], \"\\ud83d\\ude00\": \"s\", \"\\ud800\": null, "
        "\"a\": NaN, \"\\n\\\"\\\\\\/\\b\\f\\r\\t\" :{}, \"\\u00e9\\u20ac\": -Infinity, "
        "\"\\udc00\\ud800x\":true }";
    /* Keys as Python sees them, encoded with surrogatepass (lone surrogates
     * become their 3-byte form). */
    static const struct expect want[] = {
        {"a", 1, "1", CJ_JSON_NUMBER},
        {"b\0c", 3, "[1, {\"x\": 2}]", CJ_JSON_ARRAY},
        {"\360\237\230\200", 4, "\"s\"", CJ_JSON_STRING},
        {"\355\240\200", 3, "null", CJ_JSON_NULL},
        {"a", 1, "NaN", CJ_JSON_NONFINITE}, /* duplicates are reported; Python keeps the last */
        {"\n\"\\/\b\f\r\t", 8, "{}", CJ_JSON_OBJECT},
        {"\303\251\342\202\254", 5, "-Infinity", CJ_JSON_NONFINITE},
        {"\355\260\200\355\240\200x", 7, "true", CJ_JSON_TRUE},
    };
    struct cj_json_span span;
    cj_error err = {0};
    assert_int_equal(cj_pyjson_validate(text, sizeof text - 1, 8, &span, &err), 0);
    struct collect c = {.text = text};
    assert_int_equal(cj_pyjson_object_members(text, sizeof text - 1, span, collect, &c, &err), 0);
    assert_int_equal(c.n, sizeof want / sizeof *want);
    for (size_t i = 0; i < c.n; i++) {
        assert_int_equal(c.items[i].keylen, want[i].keylen);
        assert_memory_equal(c.items[i].key, want[i].key, want[i].keylen);
        assert_string_equal(c.items[i].value, want[i].value);
        assert_int_equal(c.items[i].type, want[i].type);
    }

    /* A non-zero return stops the walk and is passed on. */
    struct collect stop = {.text = text, .stop_at = 2};
    assert_int_equal(cj_pyjson_object_members(text, sizeof text - 1, span, collect, &stop, &err),
                     7);
    assert_int_equal(stop.n, 2);
}

static void test_array_elements(void **state)
{
    (void)state;
    static const char text[] = " [ 1 ,\"two\\\"]\" ,\n[3, [\"]\"]] , {\"4\": [4]},null,-0.5e+3 ] ";
    static const struct expect want[] = {
        {"", 0, "1", CJ_JSON_NUMBER},           {"", 1, "\"two\\\"]\"", CJ_JSON_STRING},
        {"", 2, "[3, [\"]\"]]", CJ_JSON_ARRAY}, {"", 3, "{\"4\": [4]}", CJ_JSON_OBJECT},
        {"", 4, "null", CJ_JSON_NULL},          {"", 5, "-0.5e+3", CJ_JSON_NUMBER},
    };
    struct cj_json_span span;
    cj_error err = {0};
    assert_int_equal(cj_pyjson_validate(text, sizeof text - 1, 8, &span, &err), 0);
    struct collect c = {.text = text};
    assert_int_equal(cj_pyjson_array_elements(text, sizeof text - 1, span, collect, &c, &err), 0);
    assert_int_equal(c.n, sizeof want / sizeof *want);
    for (size_t i = 0; i < c.n; i++) {
        assert_int_equal(c.items[i].keylen, i);
        assert_string_equal(c.items[i].value, want[i].value);
        assert_int_equal(c.items[i].type, want[i].type);
    }
}

static void test_nested_and_empty(void **state)
{
    (void)state;
    static const char text[] = "{\"o\": {\"k\": {}}, \"e\": [ ], \"f\": { }}";
    struct cj_json_span span;
    cj_error err = {0};
    assert_int_equal(cj_pyjson_validate(text, sizeof text - 1, 8, &span, &err), 0);
    struct collect top = {.text = text};
    assert_int_equal(cj_pyjson_object_members(text, sizeof text - 1, span, collect, &top, &err), 0);
    assert_int_equal(top.n, 3);

    /* Walk into a member's value through the span the walk handed out. */
    assert_string_equal(top.items[0].value, "{\"k\": {}}");
    struct collect c = {.text = text};
    assert_int_equal(
        cj_pyjson_object_members(text, sizeof text - 1, top.items[0].span, collect, &c, &err), 0);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.items[0].key, "k");
    assert_string_equal(c.items[0].value, "{}");

    struct cj_json_span empty_array = top.items[1].span;
    struct cj_json_span empty_object = top.items[2].span;
    assert_string_equal(top.items[1].value, "[ ]");
    assert_string_equal(top.items[2].value, "{ }");
    c.n = 0;
    assert_int_equal(
        cj_pyjson_array_elements(text, sizeof text - 1, empty_array, collect, &c, &err), 0);
    assert_int_equal(
        cj_pyjson_object_members(text, sizeof text - 1, empty_object, collect, &c, &err), 0);
    assert_int_equal(c.n, 0);

    /* A span of the wrong kind is refused, not walked. */
    assert_int_equal(
        cj_pyjson_object_members(text, sizeof text - 1, empty_array, collect, &c, &err), -1);
    assert_string_equal(err.msg, "bytes 22..25 do not hold a JSON object");
}

static int count(void *ctx, const char *key, size_t keylen, struct cj_json_span value,
                 cj_error *err)
{
    (void)key, (void)keylen, (void)err;
    assert_int_equal(value.type, CJ_JSON_STRING);
    ++*(size_t *)ctx;
    return 0;
}

static void test_large_linear(void **state)
{
    (void)state;
    /* 4.5 MB of small elements: quadratic behaviour would not finish. */
    size_t n = 500000, len = 0;
    char *s = malloc(9 * n + 2);
    assert_non_null(s);
    s[len++] = '[';
    for (size_t i = 0; i < n; i++) {
        memcpy(s + len, i ? ",\"\\u00e9\"" : " \"\\u00e9\"", 9);
        len += 9;
    }
    s[len++] = ']';
    struct cj_json_span span;
    cj_error err = {0};
    assert_int_equal(cj_pyjson_validate(s, len, 2, &span, &err), 0);
    size_t seen = 0;
    assert_int_equal(cj_pyjson_array_elements(s, len, span, count, &seen, &err), 0);
    assert_int_equal(seen, n);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_python_errors),
        cmocka_unit_test(test_utf8_errors),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_object_members),
        cmocka_unit_test(test_array_elements),
        cmocka_unit_test(test_nested_and_empty),
        cmocka_unit_test(test_large_linear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
