#include "pyrepr.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Python quotes with ' unless the text holds ' and no ". Empty data may come
 * as NULL (an output buffer nothing was written to). */
static char pick_quote(const char *s, size_t len)
{
    return len && memchr(s, '\'', len) && !memchr(s, '"', len) ? '"' : '\'';
}

/* Appends s[from, to); copying runs of literal bytes at once matters when the
 * data is megabytes of stderr. */
static int append_run(struct cj_buf *out, const char *s, size_t from, size_t to)
{
    return from == to ? 0 : cj_buf_append(out, s + from, to - from);
}

/* The escape Python writes for an ASCII character, or NULL if it stands for
 * itself. esc needs 5 bytes. */
static const char *ascii_escape(unsigned char c, char quote, char esc[5])
{
    switch (c) {
    case '\t':
        return "\\t";
    case '\n':
        return "\\n";
    case '\r':
        return "\\r";
    case '\\':
        return "\\\\";
    default:
        if (c == (unsigned char)quote) {
            snprintf(esc, 5, "\\%c", c);
            return esc;
        }
        if (c < 0x20 || c >= 0x7f) {
            snprintf(esc, 5, "\\x%02x", c);
            return esc;
        }
        return NULL;
    }
}

int cj_repr_bytes(struct cj_buf *out, const void *data, size_t len)
{
    const char *s = data;
    char quote = pick_quote(s, len);
    char open[] = {'b', quote};
    if (cj_buf_append(out, open, sizeof open) < 0)
        return -1;
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        char esc[5];
        const char *e = ascii_escape((unsigned char)s[i], quote, esc);
        if (!e)
            continue;
        if (append_run(out, s, run, i) < 0 || cj_buf_append_str(out, e) < 0)
            return -1;
        run = i + 1;
    }
    if (append_run(out, s, run, len) < 0)
        return -1;
    return cj_buf_append(out, &quote, 1);
}

/* Code points that str.isprintable() rejects. Python's rule is "not in
 * categories Cc, Cf, Cs, Co, Cn, Zl, Zp, Zs other than space"; every range of
 * those categories but Cn (unassigned) is here as of Unicode 14 (Python 3.11).
 * Unassigned code points change with each Unicode version and would need
 * hundreds of ranges, so of Cn only the stable parts are listed: the
 * noncharacters U+FDD0..FDEF, the unassigned parts of the tag block and planes
 * 4-13, which have never held a character. Elsewhere an unassigned code point
 * prints as itself where Python would escape it. The last two code points of
 * each plane, noncharacters too, are checked in is_printable(). */
static const uint32_t nonprintable[][2] = {
    {0x0000, 0x001f},   {0x007f, 0x00a0},   {0x00ad, 0x00ad},    {0x0600, 0x0605},
    {0x061c, 0x061c},   {0x06dd, 0x06dd},   {0x070f, 0x070f},    {0x0890, 0x0891},
    {0x08e2, 0x08e2},   {0x1680, 0x1680},   {0x180e, 0x180e},    {0x2000, 0x200f},
    {0x2028, 0x202f},   {0x205f, 0x2064},   {0x2066, 0x206f},    {0x3000, 0x3000},
    {0xd800, 0xf8ff},   {0xfdd0, 0xfdef},   {0xfeff, 0xfeff},    {0xfff9, 0xfffb},
    {0x110bd, 0x110bd}, {0x110cd, 0x110cd}, {0x13430, 0x13438},  {0x1bca0, 0x1bca3},
    {0x1d173, 0x1d17a}, {0x40000, 0xe00ff}, {0xe01f0, 0x10ffff},
};

static bool is_printable(uint32_t cp)
{
    if ((cp & 0xfffe) == 0xfffe)
        return false;
    size_t lo = 0, hi = sizeof nonprintable / sizeof *nonprintable;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < nonprintable[mid][0])
            hi = mid;
        else if (cp > nonprintable[mid][1])
            lo = mid + 1;
        else
            return false;
    }
    return true;
}

/* Length of the UTF-8 sequence at s, with its code point in *cp, or 0 if the
 * bytes are not one. Encoded surrogates are accepted: that is how pyjson.c
 * carries a key's lone \uD800 escape, and Python shows them as '\ud800'. */
static size_t decode_utf8(const unsigned char *s, size_t len, uint32_t *cp)
{
    size_t more;
    uint32_t min;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        more = 1;
        min = 0x80;
        *cp = s[0] & 0x1fu;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        more = 2;
        min = 0x800;
        *cp = s[0] & 0x0fu;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        more = 3;
        min = 0x10000;
        *cp = s[0] & 0x07u;
    } else {
        return 0;
    }
    if (len <= more)
        return 0;
    for (size_t k = 1; k <= more; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        *cp = *cp << 6 | (s[k] & 0x3fu);
    }
    return *cp >= min && *cp <= 0x10ffff ? more + 1 : 0;
}

int cj_repr_str(struct cj_buf *out, const char *utf8, size_t len)
{
    const unsigned char *s = (const unsigned char *)utf8;
    char quote = pick_quote(utf8, len);
    if (cj_buf_append(out, &quote, 1) < 0)
        return -1;
    size_t run = 0;
    for (size_t i = 0; i < len;) {
        char esc[11];
        const char *e;
        size_t n = 1;
        uint32_t cp;
        if (s[i] < 0x80) {
            e = ascii_escape(s[i], quote, esc);
        } else if ((n = decode_utf8(s + i, len - i, &cp)) == 0) {
            /* Not UTF-8 after all: show the byte rather than fail. */
            n = 1;
            snprintf(esc, sizeof esc, "\\x%02x", s[i]);
            e = esc;
        } else if (is_printable(cp)) {
            e = NULL;
        } else {
            if (cp < 0x100)
                snprintf(esc, sizeof esc, "\\x%02" PRIx32, cp);
            else if (cp < 0x10000)
                snprintf(esc, sizeof esc, "\\u%04" PRIx32, cp);
            else
                snprintf(esc, sizeof esc, "\\U%08" PRIx32, cp);
            e = esc;
        }
        if (e) {
            if (append_run(out, utf8, run, i) < 0 || cj_buf_append_str(out, e) < 0)
                return -1;
            run = i + n;
        }
        i += n;
    }
    if (append_run(out, utf8, run, len) < 0)
        return -1;
    return cj_buf_append(out, &quote, 1);
}

/* Python's repr() digits for ax >= 0: the fewest significant digits that read
 * back as ax, nearest to ax among those; value = d.ddd x 10^exp10. */
static int float_digits(double ax, char digits[24], int *exp10)
{
    /* %.*e rounds correctly, so at each precision the only candidates are its
     * result and, where it misses, the next decimal up: just above a power of
     * two the gap below x is half the gap above, and the nearest decimal can
     * miss on the narrow side while the next one up lands on the wide side.
     * Seventeen digits always read back, which ends the loop. */
    for (int prec = 0;; prec++) {
        char buf[40];
        snprintf(buf, sizeof buf, "%.*e", prec, ax);
        const char *e = strchr(buf, 'e');
        int exp = atoi(e + 1);
        uint64_t m = 0;
        for (const char *p = buf; p < e; p++)
            if (*p != '.')
                m = m * 10 + (uint64_t)(*p - '0');
        if (strtod(buf, NULL) != ax) {
            snprintf(buf, sizeof buf, "%" PRIu64 "e%d", m + 1, exp - prec);
            if (strtod(buf, NULL) != ax)
                continue;
            m++;
        }
        int n = snprintf(digits, 24, "%" PRIu64, m);
        /* m + 1 may carry into a new digit (9.99 -> 10.00). */
        *exp10 = exp - prec + n - 1;
        while (n > 1 && digits[n - 1] == '0')
            n--;
        return n;
    }
}

/* repr(float): positional when the decimal exponent is in [-4, 16), with ".0"
 * on integral values; otherwise d.ddde+XX. */
static int repr_float(struct cj_buf *out, double x)
{
    if (isnan(x))
        return cj_buf_append_str(out, "nan");
    if (isinf(x))
        return cj_buf_append_str(out, x < 0 ? "-inf" : "inf");
    const char *sign = signbit(x) ? "-" : "";
    char d[24];
    int exp10;
    int n = float_digits(fabs(x), d, &exp10);
    if (exp10 < -4 || exp10 >= 16)
        return cj_buf_printf(out, "%s%c%s%.*se%c%02d", sign, d[0], n > 1 ? "." : "", n - 1, d + 1,
                             exp10 < 0 ? '-' : '+', abs(exp10));
    /* Positional form pads with at most 3 zeros after the point or 15 before it. */
    static const char zeros[] = "000000000000000";
    if (exp10 < 0)
        return cj_buf_printf(out, "%s0.%.*s%.*s", sign, -exp10 - 1, zeros, n, d);
    int whole = exp10 + 1; /* digits before the point */
    if (n <= whole)
        return cj_buf_printf(out, "%s%.*s%.*s.0", sign, n, d, whole - n, zeros);
    return cj_buf_printf(out, "%s%.*s.%.*s", sign, whole, d, n - whole, d + whole);
}

int cj_repr_json(struct cj_buf *out, const json_t *value)
{
    switch (json_typeof(value)) {
    case JSON_NULL:
        return cj_buf_append_str(out, "None");
    case JSON_TRUE:
        return cj_buf_append_str(out, "True");
    case JSON_FALSE:
        return cj_buf_append_str(out, "False");
    case JSON_INTEGER:
        return cj_buf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(value));
    case JSON_REAL:
        return repr_float(out, json_real_value(value));
    case JSON_STRING:
        return cj_repr_str(out, json_string_value(value), json_string_length(value));
    case JSON_ARRAY: {
        /* Recursion depth is bounded by jansson's parser limit (2048 levels). */
        if (cj_buf_append(out, "[", 1) < 0)
            return -1;
        for (size_t i = 0; i < json_array_size(value); i++)
            if ((i && cj_buf_append(out, ", ", 2) < 0) ||
                cj_repr_json(out, json_array_get(value, i)) < 0)
                return -1;
        return cj_buf_append(out, "]", 1);
    }
    case JSON_OBJECT: {
        if (cj_buf_append(out, "{", 1) < 0)
            return -1;
        const char *key;
        size_t keylen;
        json_t *member;
        bool first = true;
        /* jansson's iteration cast drops const; nothing here modifies the object. */
        json_t *object = (json_t *)value;
        json_object_keylen_foreach(object, key, keylen, member)
        {
            if ((!first && cj_buf_append(out, ", ", 2) < 0) || cj_repr_str(out, key, keylen) < 0 ||
                cj_buf_append(out, ": ", 2) < 0 || cj_repr_json(out, member) < 0)
                return -1;
            first = false;
        }
        return cj_buf_append(out, "}", 1);
    }
    }
    errno = EINVAL;
    return -1;
}
