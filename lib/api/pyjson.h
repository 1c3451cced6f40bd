/* The JSON dialect of Python's json module: RFC 8259 plus the bare number
 * tokens NaN, Infinity and -Infinity, which clients send inside globals and
 * expect back. jansson rejects those tokens, so values that may hold them
 * (globals) are checked here and carried as text, never re-encoded; jansson
 * parses only spans known to be free of them.
 *
 * Text must be valid UTF-8 (no surrogate code points, no overlongs); nesting
 * deeper than max_depth is refused. Error messages follow Python's
 * json.JSONDecodeError wording ("Expecting value: line 1 column 1 (char 0)"),
 * where "char" counts code points as Python does. */
#ifndef CODEJAIL_PYJSON_H
#define CODEJAIL_PYJSON_H

#include <stddef.h>

#include "error.h"

enum cj_json_type {
    CJ_JSON_OBJECT,
    CJ_JSON_ARRAY,
    CJ_JSON_STRING,
    CJ_JSON_NUMBER,    /* a finite RFC 8259 number */
    CJ_JSON_NONFINITE, /* NaN, Infinity or -Infinity */
    CJ_JSON_TRUE,
    CJ_JSON_FALSE,
    CJ_JSON_NULL,
};

struct cj_json_span {
    size_t start; /* byte offset of the value's first byte */
    size_t end;   /* byte offset just past its last byte */
    enum cj_json_type type;
};

/* Checks that text[0, len) holds exactly one value with optional whitespace
 * around it; fills *value with its span. */
int cj_pyjson_validate(const char *text, size_t len, unsigned max_depth, struct cj_json_span *value,
                       cj_error *err);

/* Calls fn once per member of the object at `object` (a span from
 * cj_pyjson_validate over the same text), in document order, with the key
 * unescaped to UTF-8 (NUL-terminated; keylen excludes the NUL; keys may hold
 * NUL bytes) and the span of its value. Stops and returns fn's result if it is
 * non-zero. */
typedef int (*cj_json_member_fn)(void *ctx, const char *key, size_t keylen,
                                 struct cj_json_span value, cj_error *err);
int cj_pyjson_object_members(const char *text, size_t len, struct cj_json_span object,
                             cj_json_member_fn fn, void *ctx, cj_error *err);

/* Unescapes the body s[0, n) (between the quotes) of a string that
 * cj_pyjson_validate accepted into out, which needs n + 1 bytes; returns the
 * length (out is NUL-terminated). A \uD8xx\uDCxx pair becomes one character;
 * a lone surrogate escape becomes its generalized 3-byte UTF-8 form (ED A0 80
 * for U+D800), which strict UTF-8 consumers refuse rather than mangle. */
size_t cj_pyjson_unescape(const char *s, size_t n, char *out);

/* Calls fn once per element of the array at `array` (key NULL, keylen = index). */
int cj_pyjson_array_elements(const char *text, size_t len, struct cj_json_span array,
                             cj_json_member_fn fn, void *ctx, cj_error *err);

#endif
