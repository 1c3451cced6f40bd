#include "buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One byte below SIZE_MAX so that content plus terminator always fits in a size_t. */
static size_t limit(const struct cj_buf *b)
{
    return b->cap && b->cap < SIZE_MAX ? b->cap : SIZE_MAX - 1;
}

void cj_buf_init(struct cj_buf *b, size_t cap)
{
    *b = (struct cj_buf){.cap = cap};
}

void cj_buf_free(struct cj_buf *b)
{
    free(b->data);
    cj_buf_init(b, b->cap);
}

/* Makes room for `want` more bytes plus the terminator; want never exceeds the cap. */
static int reserve(struct cj_buf *b, size_t want)
{
    size_t need = b->len + want + 1;
    if (b->data && need <= b->alloc)
        return 0;
    size_t alloc = b->alloc ? b->alloc : 64;
    while (alloc < need)
        alloc = alloc > SIZE_MAX / 2 ? need : alloc * 2;
    /* Doubling must not allocate far past the cap the content can never exceed. */
    if (alloc > limit(b) + 1)
        alloc = limit(b) + 1;
    char *data = realloc(b->data, alloc);
    if (!data)
        return -1;
    b->data = data;
    b->alloc = alloc;
    return 0;
}

int cj_buf_append(struct cj_buf *b, const void *data, size_t len)
{
    size_t room = limit(b) - b->len;
    if (len > room) {
        len = room;
        b->truncated = true;
    }
    if (reserve(b, len) < 0)
        return -1;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int cj_buf_append_str(struct cj_buf *b, const char *s)
{
    return cj_buf_append(b, s, strlen(s));
}

int cj_buf_printf(struct cj_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n < sizeof small)
        return cj_buf_append(b, small, (size_t)n);

    /* Too long for the stack buffer: format straight into the buffer, cut at the cap. */
    size_t room = limit(b) - b->len;
    size_t len = (size_t)n;
    if (len > room) {
        len = room;
        b->truncated = true;
    }
    if (reserve(b, len) < 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, len + 1, fmt, ap);
    va_end(ap);
    b->len += len;
    return 0;
}

char *cj_buf_steal(struct cj_buf *b, size_t *len)
{
    /* An empty buffer still hands over a string, so NULL always means out of memory. */
    if (!b->data) {
        if (reserve(b, 0) < 0)
            return NULL;
        b->data[0] = '\0';
    }
    char *data = b->data;
    if (len)
        *len = b->len;
    cj_buf_init(b, b->cap);
    return data;
}
