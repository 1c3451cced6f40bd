/* Structured logs: one JSON object per line, on stderr by default.
 *
 * Every line starts with "time" (RFC 3339, UTC, milliseconds), "level" and
 * "event"; callers add fields one at a time. A line is written with one
 * locked write so lines from concurrent threads never interleave. Strings
 * that are not valid UTF-8 are logged with U+FFFD in place of the bad bytes,
 * and long ones are cut, so a client cannot break or flood the log. */
#ifndef CODEJAIL_ACCESS_LOG_H
#define CODEJAIL_ACCESS_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

#define CJ_LOG_STR_MAX  1024u       /* bytes kept of an ordinary string field */
#define CJ_LOG_TEXT_MAX (64u << 10) /* bytes kept of code or globals (log_code) */

struct cj_log_line {
    struct cj_buf buf;
    bool failed; /* out of memory while building: a short fallback line is written */
};

/* Where lines go (default 2). */
void cj_log_set_fd(int fd);

void cj_log_begin(struct cj_log_line *line, const char *level, const char *event);
/* value NULL is logged as null. */
void cj_log_str(struct cj_log_line *line, const char *key, const char *value);
void cj_log_strn(struct cj_log_line *line, const char *key, const char *value, size_t len,
                 size_t max);
void cj_log_int(struct cj_log_line *line, const char *key, long long value);
void cj_log_ms(struct cj_log_line *line, const char *key, double ms);
void cj_log_bool(struct cj_log_line *line, const char *key, bool value);
/* json: an already rendered JSON value. */
void cj_log_json(struct cj_log_line *line, const char *key, const char *json);
/* Writes the line and releases it. */
void cj_log_end(struct cj_log_line *line);

/* A one-field event: {"time", "level", "event", "message"}. */
void cj_log_message(const char *level, const char *event, const char *message);

/* One code-exec (or other) request, as the access log records it. Code and
 * globals are logged only when the operator set log_code. */
struct cj_access_entry {
    const char *method;
    const char *path;
    const char *remote;
    unsigned status;
    const char *outcome;
    double duration_ms;
    const char *slug;                    /* NULL: none */
    const char *limit_overrides_context; /* NULL: none */
    const char *environment;             /* the sandbox environment chosen, or NULL */
    bool executed;
    int exit_status;
    bool timed_out;
    double setup_ms;
    double run_ms;
    size_t code_bytes;
    size_t globals_bytes;
    size_t upload_bytes;
    size_t stdout_bytes;
    size_t stderr_bytes;
    size_t response_bytes;
    const char *detail; /* operator-facing detail (never client data), or NULL */
    const char *code;   /* non-NULL only with log_code */
    size_t code_len;
    const char *globals;
    size_t globals_len;
};

void cj_access_log(const struct cj_access_entry *entry);

#endif
