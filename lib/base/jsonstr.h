/* Writing JSON text: strings escaped for embedding in a document. */
#ifndef CODEJAIL_JSONSTR_H
#define CODEJAIL_JSONSTR_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* Whether text[0, len) is well-formed UTF-8 (no overlongs, surrogates or
 * code points above U+10FFFF); *bad_offset gets the first bad byte. */
bool cj_utf8_valid(const char *text, size_t len, size_t *bad_offset);

/* Appends text (valid UTF-8) as a JSON string literal with quotes. */
int cj_json_append_string(struct cj_buf *out, const char *text, size_t len);

#endif
