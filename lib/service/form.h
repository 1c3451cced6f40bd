/* The code-exec request body: a form, read the way the Python service's
 * Django/DRF stack reads it.
 *
 * multipart/form-data and application/x-www-form-urlencoded are parsed by
 * libmicrohttpd's MHD_PostProcessor as the body streams in. Only what the
 * API uses is kept: the last `payload` field (decoded as UTF-8 with each
 * ill-formed sequence replaced by U+FFFD, as Django does), the last file
 * uploaded under the field name `python_lib.zip`, and the name of the first
 * file uploaded under any other name. A multipart part with an empty file
 * name is skipped, as Django skips it.
 *
 * Limits: max_body_bytes for the whole body (checked against Content-Length
 * before anything is read, so that a declared oversized body is refused at
 * once, before a 100 Continue), max_fields for fields, and 100 files (as
 * Django counts them: apart).
 * Every other problem, a chunked body growing too long included, is
 * reported when the body has ended: libmicrohttpd can answer only before or
 * after a body, and refusals that take precedence (service disabled) must
 * still be given. */
#ifndef CODEJAIL_FORM_H
#define CODEJAIL_FORM_H

#include <stdbool.h>
#include <stddef.h>

#include <microhttpd.h>

#include "buf.h"
#include "error.h"

struct cj_form_limits {
    size_t max_body_bytes;
    unsigned max_fields;
};

/* Why a body was refused: the status and {"error": err.msg} for the client,
 * reason for the log ("invalid.body", "too_large", ...). */
struct cj_form_refusal {
    unsigned status;
    const char *reason;
    cj_error err;
};

struct cj_form;

/* Starts reading the body of connection's request; -1 with a refusal when
 * the declared length is too large already, or on allocation failure (500). */
int cj_form_begin(struct MHD_Connection *connection, const struct cj_form_limits *limits,
                  struct cj_form **form, struct cj_form_refusal *refusal);

/* The next piece of the body. */
void cj_form_feed(struct cj_form *form, const char *data, size_t len);

/* Stops parsing and releases what was kept, for a body that will be
 * refused whatever it holds. */
void cj_form_abandon(struct cj_form *form);

/* The body has ended; -1 when it cannot be used (malformed, too many fields,
 * not a form). */
int cj_form_finish(struct cj_form *form, struct cj_form_refusal *refusal);

/* After a successful finish: the payload field (NULL when there was none). */
const char *cj_form_payload(const struct cj_form *form, size_t *len);
/* Releases the payload text once it has been parsed. */
void cj_form_drop_payload(struct cj_form *form);
/* The python_lib.zip upload (false when there was none). */
bool cj_form_zip(const struct cj_form *form, const char **data, size_t *len);
/* The first file uploaded under a name other than python_lib.zip, or NULL. */
const char *cj_form_other_file(const struct cj_form *form);
size_t cj_form_body_bytes(const struct cj_form *form);

void cj_form_free(struct cj_form *form);

/* Appends text with each maximal ill-formed UTF-8 subpart replaced by
 * U+FFFD: the result of Python's bytes.decode("utf-8", "replace"). */
int cj_utf8_replace(struct cj_buf *out, const char *text, size_t len);

#endif
