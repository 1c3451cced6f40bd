/* The API's answer for an execution that happened.
 *
 * Success (exit 0, stdout a JSON object): {"globals_dict": <stdout>}, the
 * runner's JSON carried over as text so NaN and Infinity survive.
 * Otherwise: {"globals_dict": <input globals>, "emsg": "..."} where emsg is
 * "Couldn't execute jailed code: stdout: b'..', stderr: b'..' with status
 * code: N" (Python's bytes repr; each stream cut to CJ_EMSG_STREAM_MAX bytes)
 * or, for exit 0 with unusable stdout, "Sandboxed code produced corrupted
 * stdout." */
#ifndef CODEJAIL_RESULT_H
#define CODEJAIL_RESULT_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "engine.h"

#define CJ_EMSG_STREAM_MAX  (64u << 10)
#define CJ_RESULT_MAX_DEPTH 2000

/* Appends the response object to out; *succeeded tells which shape it is. */
int cj_result_render(const struct cj_exec_result *result, const char *globals_in,
                     size_t globals_in_len, struct cj_buf *out, bool *succeeded, cj_error *err);

/* The reference's answer when it could not start the execution at all (a
 * python_path file that was not uploaded): the input globals and this emsg. */
#define CJ_EMSG_NOT_RUN "Couldn't execute sandboxed code: See logs."
int cj_result_render_not_run(const char *globals_in, size_t globals_in_len, struct cj_buf *out,
                             cj_error *err);

/* Appends the emsg text alone (unquoted) for a failed execution. */
int cj_result_emsg(const struct cj_exec_result *result, struct cj_buf *out);

#endif
