/* Python's repr() for the values that appear in messages clients match on.
 *
 * emsg carries the sandbox's raw stdout and stderr exactly as Python prints
 * bytes objects (b'...' with \xNN escapes), and schema errors quote JSON
 * values the way Python quotes the objects json.loads made of them. */
#ifndef CODEJAIL_PYREPR_H
#define CODEJAIL_PYREPR_H

#include <stddef.h>

#include <jansson.h>

#include "buf.h"

/* Appends repr(bytes(data)): b'..' or b".." by Python's quote choice. */
int cj_repr_bytes(struct cj_buf *out, const void *data, size_t len);

/* Appends repr(str) of UTF-8 text: '..' or "..", with Python's escapes for
 * control and non-printable characters. */
int cj_repr_str(struct cj_buf *out, const char *utf8, size_t len);

/* Appends repr() of the Python object json.loads would build from value:
 * None/True/False, ints, floats as Python prints them, '..' strings,
 * [..] lists and {..: ..} dicts. */
int cj_repr_json(struct cj_buf *out, const json_t *value);

#endif
