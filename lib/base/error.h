/* Errors returned up the stack.
 *
 * A function that can fail takes a `cj_error *err` as its last argument and
 * returns -1 after filling it; on success it returns 0 (or a count) and leaves
 * it alone. The message names what failed ("mount tmpfs on /tmp: Operation not
 * permitted"); callers add context with cj_error_prefix(). The buffer is fixed
 * so that code running between clone() and the interpreter never allocates. */
#ifndef CODEJAIL_ERROR_H
#define CODEJAIL_ERROR_H

#include <stddef.h>

typedef struct cj_error {
    int errnum; /* errno of the failing call, or 0 when none applies */
    char msg[512];
} cj_error;

/* Fills err with the formatted message; returns -1. */
int cj_fail(cj_error *err, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Like cj_fail, with errno and ": strerror(errno)" appended; returns -1. */
int cj_fail_errno(cj_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "<context>: " to the message already in err; returns -1. */
int cj_error_prefix(cj_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
