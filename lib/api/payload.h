/* The code-exec request as the Python codejail-service validates it.
 *
 * cj_payload_parse() takes the `payload` form field and checks it exactly as
 * the Python service does, in the same order, failing with the same
 * client-facing message (a 400 for the caller to send as {"error": msg}):
 *   "Unable to parse payload JSON: <Python json.JSONDecodeError text>"
 *   "Payload JSON did not match schema at path <json path>: <jsonschema message>"
 *     e.g. "... at path $: 'code' is a required property",
 *          "... at path $.code: 5 is not of type 'string'"
 *   "Only allowed entry in 'python_path' is 'python_lib.zip'"
 *   "Refusing codejail execution with unsafely=true"
 * and a short reason for the operator's log ("invalid.json", "invalid.schema",
 * "invalid.python_path", "invalid.unsafely").
 *
 * globals_dict is kept as the exact text of the object (it may hold NaN and
 * Infinity), never re-encoded. Uploaded file names are checked by the caller
 * with cj_payload_check_file_name(). */
#ifndef CODEJAIL_PAYLOAD_H
#define CODEJAIL_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

#define CJ_PAYLOAD_MAX_DEPTH 200 /* nesting of the payload JSON, globals included */
#define CJ_PYTHON_LIB_ZIP    "python_lib.zip"

struct cj_payload {
    char *code; /* UTF-8, NUL-terminated; code_len excludes the NUL */
    size_t code_len;
    char *globals_json; /* the globals_dict object's text, NUL-terminated */
    size_t globals_len;
    char **python_path; /* entries (all "python_lib.zip") */
    size_t n_python_path;
    char *limit_overrides_context; /* NULL when absent or null */
    char *slug;                    /* NULL when absent or null */
};

int cj_payload_parse(const char *text, size_t len, struct cj_payload *out, const char **reason,
                     cj_error *err);
void cj_payload_free(struct cj_payload *payload);

/* 0 for "python_lib.zip"; otherwise -1 with "Only allowed name for uploaded
 * file is 'python_lib.zip'". */
int cj_payload_check_file_name(const char *name, cj_error *err);

#endif
