#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int cj_fail(cj_error *err, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->errnum = errnum;
    return -1;
}

int cj_fail_errno(cj_error *err, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof err->msg)
        snprintf(err->msg + n, sizeof err->msg - (size_t)n, ": %s", strerror(saved));
    err->errnum = saved;
    errno = saved;
    return -1;
}

int cj_error_prefix(cj_error *err, const char *fmt, ...)
{
    char context[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(context, sizeof context, fmt, ap);
    va_end(ap);
    size_t clen = n < 0 ? 0 : strnlen(context, sizeof context);
    /* Shift the old message right to make room for "<context>: ". */
    size_t shift = clen + 2;
    size_t keep = strnlen(err->msg, sizeof err->msg - 1);
    if (keep > sizeof err->msg - 1 - shift)
        keep = sizeof err->msg - 1 - shift;
    memmove(err->msg + shift, err->msg, keep);
    memcpy(err->msg, context, clen);
    memcpy(err->msg + clen, ": ", 2);
    err->msg[shift + keep] = '\0';
    return -1;
}
