#include "jsonstr.h"

#include <stdint.h>
#include <stdio.h>

bool cj_utf8_valid(const char *text, size_t len, size_t *bad_offset)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t need;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            need = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            need = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            need = 3, cp = c & 0x07, min = 0x10000;
        } else
            goto bad;
        if (len - i <= need)
            goto bad;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                goto bad;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            goto bad;
        i += need + 1;
    }
    return true;
bad:
    if (bad_offset)
        *bad_offset = i;
    return false;
}

int cj_json_append_string(struct cj_buf *out, const char *text, size_t len)
{
    if (cj_buf_append(out, "\"", 1) < 0)
        return -1;
    size_t run = 0; /* start of the pending stretch that needs no escape */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        if (cj_buf_append(out, text + run, i - run) < 0)
            return -1;
        char escape[8];
        switch (c) {
        case '"':
            snprintf(escape, sizeof escape, "\\\"");
            break;
        case '\\':
            snprintf(escape, sizeof escape, "\\\\");
            break;
        case '\n':
            snprintf(escape, sizeof escape, "\\n");
            break;
        case '\t':
            snprintf(escape, sizeof escape, "\\t");
            break;
        case '\r':
            snprintf(escape, sizeof escape, "\\r");
            break;
        default:
            snprintf(escape, sizeof escape, "\\u%04x", c);
        }
        if (cj_buf_append_str(out, escape) < 0)
            return -1;
        run = i + 1;
    }
    if (cj_buf_append(out, text + run, len - run) < 0)
        return -1;
    return cj_buf_append(out, "\"", 1);
}
