#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "pyrepr.h"

/* A literal and its length, so inputs may hold NUL bytes. */
#define S(lit) lit, sizeof(lit) - 1

/* Every expectation below was generated once with /usr/bin/python3 (3.11.2). */

/* repr(bytes([i])) */
static const char *const single_bytes[256] = {
    "b'\\x00'", "b'\\x01'", "b'\\x02'", "b'\\x03'", "b'\\x04'", "b'\\x05'", "b'\\x06'", "b'\\x07'",
    "b'\\x08'", "b'\\t'",   "b'\\n'",   "b'\\x0b'", "b'\\x0c'", "b'\\r'",   "b'\\x0e'", "b'\\x0f'",
    "b'\\x10'", "b'\\x11'", "b'\\x12'", "b'\\x13'", "b'\\x14'", "b'\\x15'", "b'\\x16'", "b'\\x17'",
    "b'\\x18'", "b'\\x19'", "b'\\x1a'", "b'\\x1b'", "b'\\x1c'", "b'\\x1d'", "b'\\x1e'", "b'\\x1f'",
    "b' '",     "b'!'",     "b'\"'",    "b'#'",     "b'$'",     "b'%'",     "b'&'",     "b\"'\"",
    "b'('",     "b')'",     "b'*'",     "b'+'",     "b','",     "b'-'",     "b'.'",     "b'/'",
    "b'0'",     "b'1'",     "b'2'",     "b'3'",     "b'4'",     "b'5'",     "b'6'",     "b'7'",
    "b'8'",     "b'9'",     "b':'",     "b';'",     "b'<'",     "b'='",     "b'>'",     "b'?'",
    "b'@'",     "b'A'",     "b'B'",     "b'C'",     "b'D'",     "b'E'",     "b'F'",     "b'G'",
    "b'H'",     "b'I'",     "b'J'",     "b'K'",     "b'L'",     "b'M'",     "b'N'",     "b'O'",
    "b'P'",     "b'Q'",     "b'R'",     "b'S'",     "b'T'",     "b'U'",     "b'V'",     "b'W'",
    "b'X'",     "b'Y'",     "b'Z'",     "b'['",     "b'\\\\'",  "b']'",     "b'^'",     "b'_'",
    "b'`'",     "b'a'",     "b'b'",     "b'c'",     "b'd'",     "b'e'",     "b'f'",     "b'g'",
    "b'h'",     "b'i'",     "b'j'",     "b'k'",     "b'l'",     "b'm'",     "b'n'",     "b'o'",
    "b'p'",     "b'q'",     "b'r'",     "b's'",     "b't'",     "b'u'",     "b'v'",     "b'w'",
    "b'x'",     "b'y'",     "b'z'",     "b'{'",     "b'|'",     "b'}'",     "b'~'",     "b'\\x7f'",
    "b'\\x80'", "b'\\x81'", "b'\\x82'", "b'\\x83'", "b'\\x84'", "b'\\x85'", "b'\\x86'", "b'\\x87'",
    "b'\\x88'", "b'\\x89'", "b'\\x8a'", "b'\\x8b'", "b'\\x8c'", "b'\\x8d'", "b'\\x8e'", "b'\\x8f'",
    "b'\\x90'", "b'\\x91'", "b'\\x92'", "b'\\x93'", "b'\\x94'", "b'\\x95'", "b'\\x96'", "b'\\x97'",
    "b'\\x98'", "b'\\x99'", "b'\\x9a'", "b'\\x9b'", "b'\\x9c'", "b'\\x9d'", "b'\\x9e'", "b'\\x9f'",
    "b'\\xa0'", "b'\\xa1'", "b'\\xa2'", "b'\\xa3'", "b'\\xa4'", "b'\\xa5'", "b'\\xa6'", "b'\\xa7'",
    "b'\\xa8'", "b'\\xa9'", "b'\\xaa'", "b'\\xab'", "b'\\xac'", "b'\\xad'", "b'\\xae'", "b'\\xaf'",
    "b'\\xb0'", "b'\\xb1'", "b'\\xb2'", "b'\\xb3'", "b'\\xb4'", "b'\\xb5'", "b'\\xb6'", "b'\\xb7'",
    "b'\\xb8'", "b'\\xb9'", "b'\\xba'", "b'\\xbb'", "b'\\xbc'", "b'\\xbd'", "b'\\xbe'", "b'\\xbf'",
    "b'\\xc0'", "b'\\xc1'", "b'\\xc2'", "b'\\xc3'", "b'\\xc4'", "b'\\xc5'", "b'\\xc6'", "b'\\xc7'",
    "b'\\xc8'", "b'\\xc9'", "b'\\xca'", "b'\\xcb'", "b'\\xcc'", "b'\\xcd'", "b'\\xce'", "b'\\xcf'",
    "b'\\xd0'", "b'\\xd1'", "b'\\xd2'", "b'\\xd3'", "b'\\xd4'", "b'\\xd5'", "b'\\xd6'", "b'\\xd7'",
    "b'\\xd8'", "b'\\xd9'", "b'\\xda'", "b'\\xdb'", "b'\\xdc'", "b'\\xdd'", "b'\\xde'", "b'\\xdf'",
    "b'\\xe0'", "b'\\xe1'", "b'\\xe2'", "b'\\xe3'", "b'\\xe4'", "b'\\xe5'", "b'\\xe6'", "b'\\xe7'",
    "b'\\xe8'", "b'\\xe9'", "b'\\xea'", "b'\\xeb'", "b'\\xec'", "b'\\xed'", "b'\\xee'", "b'\\xef'",
    "b'\\xf0'", "b'\\xf1'", "b'\\xf2'", "b'\\xf3'", "b'\\xf4'", "b'\\xf5'", "b'\\xf6'", "b'\\xf7'",
    "b'\\xf8'", "b'\\xf9'", "b'\\xfa'", "b'\\xfb'", "b'\\xfc'", "b'\\xfd'", "b'\\xfe'", "b'\\xff'",
};

struct text_case {
    const char *in;
    size_t len;
    const char *repr;
};

/* repr(b) */
static const struct text_case bytes_cases[] = {
    {S(""), "b''"},
    {S("'"), "b\"'\""},
    {S("\""), "b'\"'"},
    {S("'\""), "b'\\'\"'"},
    {S("a'b"), "b\"a'b\""},
    {S("a\"b"), "b'a\"b'"},
    {S("\\"), "b'\\\\'"},
    {S("\\'"), "b\"\\\\'\""},
    {S("\000\177\200\377"), "b'\\x00\\x7f\\x80\\xff'"},
    {S("\011\012\015\013\014"), "b'\\t\\n\\r\\x0b\\x0c'"},
    {S("Traceback (most recent call last):\012  File \"<string>\", line 1\012NameError: name 'x' "
       "is not defined\012"),
     "b'Traceback (most recent call last):\\n  File \"<string>\", line 1\\nNameError: name \\'x\\' "
     "is not defined\\n'"},
    {S("h\303\251llo"), "b'h\\xc3\\xa9llo'"},
};

/* repr(s) for s = in.decode("utf-8", "surrogatepass"): lone surrogates arrive
 * in their 3-byte form, as pyjson.c unescapes them. */
static const struct text_case str_cases[] = {
    {S(""), "''"},
    {S("'"), "\"'\""},
    {S("\""), "'\"'"},
    {S("'\""), "'\\'\"'"},
    {S("it's"), "\"it's\""},
    {S("say \"hi\""), "'say \"hi\"'"},
    {S("\\"), "'\\\\'"},
    {S("a\011b\012c\015d"), "'a\\tb\\nc\\rd'"},
    {S("\000\001\037\177"), "'\\x00\\x01\\x1f\\x7f'"},
    {S("\302\200\302\237\302\240\302\241\302\255\303\277"),
     "'\\x80\\x9f\\xa0\302\241\\xad\303\277'"},
    {S("h\303\251llo w\303\266rld"), "'h\303\251llo w\303\266rld'"},
    {S("\314\201\314\200"), "'\314\201\314\200'"},
    {S("\342\200\250\342\200\251"), "'\\u2028\\u2029'"},
    {S("\342\200\213\342\200\217\342\201\240\342\201\244\357\273\277"),
     "'\\u200b\\u200f\\u2060\\u2064\\ufeff'"},
    {S("\343\200\200\341\232\200\342\200\200\342\200\257\342\201\237"),
     "'\\u3000\\u1680\\u2000\\u202f\\u205f'"},
    {S("\356\200\200\357\243\277"), "'\\ue000\\uf8ff'"},
    {S("\357\267\220\357\277\276\357\277\277"), "'\\ufdd0\\ufffe\\uffff'"},
    {S("\360\237\230\200\360\220\200\200"), "'\360\237\230\200\360\220\200\200'"},
    {S("\363\260\200\200\364\217\277\275\364\217\277\277\360\237\277\276"),
     "'\\U000f0000\\U0010fffd\\U0010ffff\\U0001fffe'"},
    {S("\363\240\200\201\363\240\200\240\363\240\204\200"),
     "'\\U000e0001\\U000e0020\363\240\204\200'"},
    {S("\355\240\200"), "'\\ud800'"},
    {S("\355\260\200x\355\277\277"), "'\\udc00x\\udfff'"},
    {S("\344\270\255\346\226\207"), "'\344\270\255\346\226\207'"},
    {S("\330\200\330\234\333\235\334\217"), "'\\u0600\\u061c\\u06dd\\u070f'"},
    {S("\360\223\220\260\360\235\205\263"), "'\\U00013430\\U0001d173'"},
    {S("\302\240"), "'\\xa0'"},
    {S("\361\217\277\277\361\200\200\200"), "'\\U0004ffff\\U00040000'"},
};

/* Bytes that are not UTF-8 have no Python str; each shows as \xNN. */
static const struct text_case str_invalid[] = {
    {S("\377"), "'\\xff'"},
    {S("a\303"), "'a\\xc3'"},
    {S("\300\200"), "'\\xc0\\x80'"},
    {S("\340\200\200"), "'\\xe0\\x80\\x80'"},
    {S("\364\220\200\200"), "'\\xf4\\x90\\x80\\x80'"},
    {S("\355\240"), "'\\xed\\xa0'"},
    {S("\200\303\251"), "'\\x80\303\251'"},
};

struct float_case {
    double value;
    const char *repr;
};

/* repr(float) */
static const struct float_case float_cases[] = {
    {0.0, "0.0"},
    {-0.0, "-0.0"},
    {1.0, "1.0"},
    {-1.0, "-1.0"},
    {2.0, "2.0"},
    {100.0, "100.0"},
    {0.1, "0.1"},
    {0.30000000000000004, "0.30000000000000004"},
    {0.3333333333333333, "0.3333333333333333"},
    {-0.6666666666666666, "-0.6666666666666666"},
    {1e+16, "1e+16"},
    {1000000000000000.0, "1000000000000000.0"},
    {9999999999999998.0, "9999999999999998.0"},
    {123456789012345.6, "123456789012345.6"},
    {0.0001, "0.0001"},
    {1e-05, "1e-05"},
    {0.00012345, "0.00012345"},
    {1.2345e-05, "1.2345e-05"},
    {123456789.123, "123456789.123"},
    {5e-324, "5e-324"},
    {2.2250738585072014e-308, "2.2250738585072014e-308"},
    {1.7976931348623157e+308, "1.7976931348623157e+308"},
    {1e+22, "1e+22"},
    {1e+23, "1e+23"},
    {1.5e+300, "1.5e+300"},
    {-2.5e-10, "-2.5e-10"},
    {9007199254740992.0, "9007199254740992.0"},
    {9.223372036854776e+18, "9.223372036854776e+18"},
    {1.8446744073709552e+19, "1.8446744073709552e+19"},
    {1234.5678, "1234.5678"},
    {1e+100, "1e+100"},
    {9.5, "9.5"},
    {0.5, "0.5"},
    {7.120236347223045e-307, "7.120236347223045e-307"},
    {5.696189077778436e-306, "5.696189077778436e-306"},
};

struct json_case {
    const char *json;
    const char *repr;
};

/* repr(json.loads(json)) */
static const struct json_case json_cases[] = {
    {"null", "None"},
    {"true", "True"},
    {"false", "False"},
    {"0", "0"},
    {"-0", "0"},
    {"-9223372036854775808", "-9223372036854775808"},
    {"9223372036854775807", "9223372036854775807"},
    {"1.0", "1.0"},
    {"1e5", "100000.0"},
    {"-0.0", "-0.0"},
    {"1E-7", "1e-07"},
    {"\"a\\u0000b\\u00e9\\ud83d\\ude00\"", "'a\\x00b\303\251\360\237\230\200'"},
    {"\"it's\"", "\"it's\""},
    {"[]", "[]"},
    {"{}", "{}"},
    {"[1, [2, {\"a\": null}], [], {}]", "[1, [2, {'a': None}], [], {}]"},
    {"{\"b\": 1, \"a\": 2, \"b\": 3}", "{'b': 3, 'a': 2}"},
    {"{\"'\": \"\\\"\", \"k\": [1.5, \"x\", true, false, null]}",
     "{\"'\": '\"', 'k': [1.5, 'x', True, False, None]}"},
    {"{\"\\u00e9\": {\"\\n\": [0.1, -1e-7, 1e16]}}", "{'\303\251': {'\\n': [0.1, -1e-07, 1e+16]}}"},
};

static void check_text(int (*fn)(struct cj_buf *, const char *, size_t), const struct text_case *c)
{
    struct cj_buf out;
    cj_buf_init(&out, 0);
    assert_int_equal(fn(&out, c->in, c->len), 0);
    assert_string_equal(out.data, c->repr);
    cj_buf_free(&out);
}

static int repr_bytes(struct cj_buf *out, const char *data, size_t len)
{
    return cj_repr_bytes(out, data, len);
}

static void test_single_bytes(void **state)
{
    (void)state;
    for (unsigned i = 0; i < 256; i++) {
        char byte = (char)i;
        check_text(repr_bytes, &(struct text_case){&byte, 1, single_bytes[i]});
    }
}

static void test_bytes(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bytes_cases / sizeof *bytes_cases; i++)
        check_text(repr_bytes, &bytes_cases[i]);
}

static void test_str(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof str_cases / sizeof *str_cases; i++)
        check_text(cj_repr_str, &str_cases[i]);
    for (size_t i = 0; i < sizeof str_invalid / sizeof *str_invalid; i++)
        check_text(cj_repr_str, &str_invalid[i]);
}

/* The documented approximation: most unassigned code points print as
 * themselves, where Python 3.11 writes '\u0378' and '\U000323b0'. */
static void test_str_unassigned(void **state)
{
    (void)state;
    check_text(cj_repr_str, &(struct text_case){S("\315\270"), "'\315\270'"});
    check_text(cj_repr_str, &(struct text_case){S("\360\262\216\260"), "'\360\262\216\260'"});
}

static void test_floats(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof float_cases / sizeof *float_cases; i++) {
        struct cj_buf out;
        cj_buf_init(&out, 0);
        json_t *real = json_real(float_cases[i].value);
        assert_non_null(real);
        assert_int_equal(cj_repr_json(&out, real), 0);
        assert_string_equal(out.data, float_cases[i].repr);
        json_decref(real);
        cj_buf_free(&out);
    }
}

static void test_json(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof json_cases / sizeof *json_cases; i++) {
        json_error_t error;
        json_t *value = json_loads(json_cases[i].json, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
        assert_non_null(value);
        struct cj_buf out;
        cj_buf_init(&out, 0);
        assert_int_equal(cj_repr_json(&out, value), 0);
        assert_string_equal(out.data, json_cases[i].repr);
        json_decref(value);
        cj_buf_free(&out);
    }

    /* jansson's parser refuses NUL in keys, but an object can hold one:
     * repr({'k\x00ey': 1}). */
    json_t *object = json_object();
    assert_int_equal(json_object_setn_new(object, "k\0ey", 4, json_integer(1)), 0);
    struct cj_buf out;
    cj_buf_init(&out, 0);
    assert_int_equal(cj_repr_json(&out, object), 0);
    assert_string_equal(out.data, "{'k\\x00ey': 1}");
    json_decref(object);
    cj_buf_free(&out);
}

/* An output buffer nothing was written to hands over NULL. */
static void test_null_empty(void **state)
{
    (void)state;
    struct cj_buf out;
    cj_buf_init(&out, 0);
    assert_int_equal(cj_repr_bytes(&out, NULL, 0), 0);
    assert_int_equal(cj_repr_str(&out, NULL, 0), 0);
    assert_string_equal(out.data, "b''''");
    cj_buf_free(&out);
}

/* A capped buffer cuts the repr short without failing. */
static void test_capped(void **state)
{
    (void)state;
    struct cj_buf out;
    cj_buf_init(&out, 8);
    char data[100];
    memset(data, 0, sizeof data);
    assert_int_equal(cj_repr_bytes(&out, data, sizeof data), 0);
    assert_true(out.truncated);
    assert_string_equal(out.data, "b'\\x00\\x");
    cj_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_bytes), cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_str),          cmocka_unit_test(test_str_unassigned),
        cmocka_unit_test(test_floats),       cmocka_unit_test(test_json),
        cmocka_unit_test(test_null_empty),   cmocka_unit_test(test_capped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
