/* A scanner that follows CPython's json decoder (Modules/_json.c) step by step,
 * so that every refusal names the same place with the same words. It works in
 * bytes and converts to Python's code point positions only when it fails. */
#include "pyjson.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"

static int fail_at(cj_error *err, const char *text, size_t pos, const char *what)
{
    size_t chars = 0, line = 1, line_start = 0;
    for (size_t i = 0; i < pos; i++) {
        if (((unsigned char)text[i] & 0xc0) == 0x80)
            continue;
        chars++;
        if (text[i] == '\n') {
            line++;
            line_start = chars;
        }
    }
    return cj_fail(err, 0, "%s: line %zu column %zu (char %zu)", what, line, chars - line_start + 1,
                   chars);
}

/* Offset of the first byte that does not start a well-formed UTF-8 sequence
 * (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF), or len. */
static size_t utf8_valid_prefix(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t more;
        unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
        if (c >= 0xc2 && c <= 0xdf) {
            more = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            more = 2;
            if (c == 0xe0)
                lo = 0xa0;
            else if (c == 0xed)
                hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            more = 3;
            if (c == 0xf0)
                lo = 0x90;
            else if (c == 0xf4)
                hi = 0x8f;
        } else {
            return i;
        }
        if (len - i <= more || s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t k = 2; k <= more; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return i;
        i += more + 1;
    }
    return len;
}

static size_t skip_ws(const char *s, size_t len, size_t pos)
{
    while (pos < len && (s[pos] == ' ' || s[pos] == '\t' || s[pos] == '\n' || s[pos] == '\r'))
        pos++;
    return pos;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool has_word(const char *s, size_t len, size_t pos, const char *word)
{
    size_t n = strlen(word);
    return pos <= len && len - pos >= n && memcmp(s + pos, word, n) == 0;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads the four hex digits at s[pos, pos + 4) into *cp. */
static bool hex4(const char *s, size_t len, size_t pos, unsigned *cp)
{
    if (pos > len || len - pos < 4)
        return false;
    *cp = 0;
    for (size_t i = pos; i < pos + 4; i++) {
        int d = hex_digit(s[i]);
        if (d < 0)
            return false;
        *cp = *cp << 4 | (unsigned)d;
    }
    return true;
}

/* End of the number at pos, or pos if there is none. Like Python, a '.', 'e'
 * or 'e+' that no digit follows is left out of the number rather than refused;
 * whatever comes next then reports it. */
static size_t number_end(const char *s, size_t len, size_t pos)
{
    size_t i = pos;
    if (i < len && s[i] == '-')
        i++;
    if (i < len && s[i] == '0') {
        i++;
    } else if (i < len && s[i] >= '1' && s[i] <= '9') {
        while (i < len && is_digit(s[i]))
            i++;
    } else {
        return pos;
    }
    if (i + 1 < len && s[i] == '.' && is_digit(s[i + 1])) {
        i += 2;
        while (i < len && is_digit(s[i]))
            i++;
    }
    if (i + 1 < len && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        if (s[j] == '+' || s[j] == '-')
            j++;
        if (j < len && is_digit(s[j])) {
            while (j < len && is_digit(s[j]))
                j++;
            i = j;
        }
    }
    return i;
}

/* Checks the string whose opening quote is at start; *end gets the offset past
 * its closing quote. */
static int scan_string(const char *s, size_t len, size_t start, size_t *end, cj_error *err)
{
    size_t i = start + 1;
    for (;;) {
        if (i >= len)
            return fail_at(err, s, start, "Unterminated string starting at");
        unsigned char c = (unsigned char)s[i];
        if (c == '"') {
            *end = i + 1;
            return 0;
        }
        if (c < 0x20)
            return fail_at(err, s, i, "Invalid control character at");
        if (c != '\\') {
            i++;
            continue;
        }
        if (i + 1 >= len)
            return fail_at(err, s, start, "Unterminated string starting at");
        switch (s[i + 1]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            i += 2;
            break;
        case 'u': {
            /* Python wants a character after the digits before it reads
             * them, and blames the 'u' either way. */
            unsigned cp;
            if (!hex4(s, len, i + 2, &cp) || i + 6 >= len)
                return fail_at(err, s, i + 1, "Invalid \\uXXXX escape");
            i += 6;
            break;
        }
        default:
            return fail_at(err, s, i, "Invalid \\escape");
        }
    }
}

/* Checks the scalar at *pos and moves past it. */
static int scan_scalar(const char *s, size_t len, size_t *pos, cj_error *err)
{
    size_t p = *pos;
    static const char *const words[] = {"null", "true", "false", "NaN", "Infinity", "-Infinity"};
    if (p < len && s[p] == '"')
        return scan_string(s, len, p, pos, err);
    for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
        if (has_word(s, len, p, words[i])) {
            *pos = p + strlen(words[i]);
            return 0;
        }
    }
    size_t end = number_end(s, len, p);
    if (end == p)
        return fail_at(err, s, p, "Expecting value");
    *pos = end;
    return 0;
}

/* Checks `"key" :` at *pos and moves to the member's value. */
static int scan_key(const char *s, size_t len, size_t *pos, cj_error *err)
{
    if (*pos >= len || s[*pos] != '"')
        return fail_at(err, s, *pos, "Expecting property name enclosed in double quotes");
    size_t p;
    if (scan_string(s, len, *pos, &p, err) < 0)
        return -1;
    p = skip_ws(s, len, p);
    if (p >= len || s[p] != ':')
        return fail_at(err, s, p, "Expecting ':' delimiter");
    *pos = skip_ws(s, len, p + 1);
    return 0;
}

static enum cj_json_type type_at(const char *s, size_t len, size_t pos)
{
    switch (s[pos]) {
    case '{':
        return CJ_JSON_OBJECT;
    case '[':
        return CJ_JSON_ARRAY;
    case '"':
        return CJ_JSON_STRING;
    case 't':
        return CJ_JSON_TRUE;
    case 'f':
        return CJ_JSON_FALSE;
    case 'n':
        return CJ_JSON_NULL;
    case 'N':
    case 'I':
        return CJ_JSON_NONFINITE;
    default:
        return pos + 1 < len && s[pos + 1] == 'I' ? CJ_JSON_NONFINITE : CJ_JSON_NUMBER;
    }
}

/* Iterative so that hostile nesting costs heap bounded by max_depth, never C stack. */
int cj_pyjson_validate(const char *text, size_t len, unsigned max_depth, struct cj_json_span *value,
                       cj_error *err)
{
    size_t bad = utf8_valid_prefix((const unsigned char *)text, len);
    if (bad < len)
        return cj_fail(err, 0, "Invalid UTF-8 at byte %zu", bad);
    /* json.loads() refuses a str that starts with a BOM. */
    if (has_word(text, len, 0, "\xef\xbb\xbf"))
        return fail_at(err, text, 0, "Unexpected UTF-8 BOM (decode using utf-8-sig)");

    cleanup_free char *open = NULL; /* the opening bracket of each enclosing container */
    size_t depth = 0, alloc = 0;
    size_t start = skip_ws(text, len, 0);
    size_t pos = start;
    do {
        if (pos < len && (text[pos] == '{' || text[pos] == '[')) {
            if (depth >= max_depth) {
                char what[64];
                snprintf(what, sizeof what, "Nesting deeper than %u levels", max_depth);
                return fail_at(err, text, pos, what);
            }
            if (depth == alloc) {
                alloc = alloc ? alloc * 2 : 64;
                char *grown = realloc(open, alloc);
                if (!grown)
                    return cj_fail(err, ENOMEM, "JSON nesting: out of memory");
                open = grown;
            }
            char close = text[pos] == '{' ? '}' : ']';
            open[depth++] = text[pos];
            pos = skip_ws(text, len, pos + 1);
            if (pos < len && text[pos] == close) {
                pos++;
                depth--;
            } else {
                if (close == '}' && scan_key(text, len, &pos, err) < 0)
                    return -1;
                continue;
            }
        } else if (scan_scalar(text, len, &pos, err) < 0) {
            return -1;
        }

        /* A value ended at pos: close the containers it completes and move
         * to the next value, if any. */
        while (depth > 0) {
            char close = open[depth - 1] == '{' ? '}' : ']';
            pos = skip_ws(text, len, pos);
            if (pos < len && text[pos] == close) {
                pos++;
                depth--;
                continue;
            }
            if (pos >= len || text[pos] != ',')
                return fail_at(err, text, pos, "Expecting ',' delimiter");
            pos = skip_ws(text, len, pos + 1);
            if (close == '}' && scan_key(text, len, &pos, err) < 0)
                return -1;
            break;
        }
    } while (depth > 0);

    size_t end = pos;
    pos = skip_ws(text, len, pos);
    if (pos != len)
        return fail_at(err, text, pos, "Extra data");
    *value = (struct cj_json_span){.start = start, .end = end, .type = type_at(text, len, start)};
    return 0;
}

/* The functions below walk text that cj_pyjson_validate accepted, so they
 * trust its shape; they still never read outside [0, end). */

/* Offset of the closing quote of the string opened at `quote`. */
static size_t string_close(const char *s, size_t end, size_t quote)
{
    size_t i = quote + 1;
    while (i < end && s[i] != '"')
        i += s[i] == '\\' ? 2 : 1;
    return i < end ? i : end;
}

static size_t value_end(const char *s, size_t end, size_t pos)
{
    size_t word = 0;
    switch (s[pos]) {
    case '"':
        word = string_close(s, end, pos) + 1 - pos;
        break;
    case '{':
    case '[': {
        size_t depth = 0;
        for (size_t i = pos; i < end; i++) {
            if (s[i] == '"') {
                i = string_close(s, end, i);
            } else if (s[i] == '{' || s[i] == '[') {
                depth++;
            } else if ((s[i] == '}' || s[i] == ']') && --depth == 0) {
                return i + 1;
            }
        }
        return end;
    }
    case 'n':
    case 't':
        word = 4;
        break;
    case 'f':
        word = 5;
        break;
    case 'N':
        word = 3;
        break;
    case 'I':
        word = 8;
        break;
    default:
        if (pos + 1 < end && s[pos] == '-' && s[pos + 1] == 'I')
            word = 9;
        else
            return number_end(s, end, pos);
    }
    return end - pos < word ? end : pos + word;
}

static size_t put_utf8(char *out, unsigned cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Unescapes the body of a string (between its quotes) into out, which has room
 * for n + 1 bytes: no escape is shorter than what it stands for.
 *
 * Python joins a \uD8xx\uDCxx pair into one character and keeps any other
 * surrogate escape as a lone surrogate. A lone surrogate has no UTF-8 form, so
 * it becomes its generalized 3-byte encoding (WTF-8, ED A0 80 for U+D800): the
 * key stays distinct from every valid UTF-8 key (it can never match "code"),
 * strict UTF-8 consumers such as jansson refuse it instead of mangling it, and
 * cj_repr_str() prints it back as Python would ('\ud800'). */
size_t cj_pyjson_unescape(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] != '\\' || i + 1 >= n) {
            out[o++] = s[i++];
            continue;
        }
        char c = s[i + 1];
        i += 2;
        unsigned cp, low;
        switch (c) {
        case 'b':
            out[o++] = '\b';
            break;
        case 'f':
            out[o++] = '\f';
            break;
        case 'n':
            out[o++] = '\n';
            break;
        case 'r':
            out[o++] = '\r';
            break;
        case 't':
            out[o++] = '\t';
            break;
        case 'u':
            if (!hex4(s, n, i, &cp)) {
                out[o++] = c;
                break;
            }
            i += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && i + 1 < n && s[i] == '\\' && s[i + 1] == 'u' &&
                hex4(s, n, i + 2, &low) && low >= 0xdc00 && low < 0xe000) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
                i += 6;
            }
            o += put_utf8(out + o, cp);
            break;
        default:
            out[o++] = c;
        }
    }
    out[o] = '\0';
    return o;
}

static int each_item(const char *text, size_t len, struct cj_json_span span, bool object,
                     cj_json_member_fn fn, void *ctx, cj_error *err)
{
    if (span.start >= span.end || span.end > len || text[span.start] != (object ? '{' : '[') ||
        text[span.end - 1] != (object ? '}' : ']'))
        return cj_fail(err, EINVAL, "bytes %zu..%zu do not hold a JSON %s", span.start, span.end,
                       object ? "object" : "array");
    size_t end = span.end - 1; /* the closing bracket */
    cleanup_free char *key = NULL;
    if (object) {
        /* Room for the longest key the object can hold, allocated once. */
        key = malloc(span.end - span.start);
        if (!key)
            return cj_fail(err, ENOMEM, "JSON object keys: out of memory");
    }
    size_t pos = skip_ws(text, end, span.start + 1);
    for (size_t index = 0; pos < end; index++) {
        size_t keylen = index;
        if (object) {
            size_t close = string_close(text, end, pos);
            keylen = cj_pyjson_unescape(text + pos + 1, close - pos - 1, key);
            pos = skip_ws(text, end, close + 1); /* at ':' */
            pos = skip_ws(text, end, pos + 1);
        }
        if (pos >= end)
            break;
        struct cj_json_span item = {
            .start = pos, .end = value_end(text, end, pos), .type = type_at(text, end, pos)};
        int ret = fn(ctx, key, keylen, item, err);
        if (ret)
            return ret;
        pos = skip_ws(text, end, item.end); /* at ',' or the closing bracket */
        pos = skip_ws(text, end, pos + 1);
    }
    return 0;
}

int cj_pyjson_object_members(const char *text, size_t len, struct cj_json_span object,
                             cj_json_member_fn fn, void *ctx, cj_error *err)
{
    return each_item(text, len, object, true, fn, ctx, err);
}

int cj_pyjson_array_elements(const char *text, size_t len, struct cj_json_span array,
                             cj_json_member_fn fn, void *ctx, cj_error *err)
{
    return each_item(text, len, array, false, fn, ctx, err);
}
