/* A growable byte buffer with a hard cap.
 *
 * Appends beyond `cap` bytes are cut at the cap and remembered in `truncated`;
 * they are not errors, so a flood of output is bounded without special cases
 * at each call site. Allocation failure is an error (returns -1). The data is
 * always NUL-terminated for convenience; `len` excludes the terminator. */
#ifndef CODEJAIL_BUF_H
#define CODEJAIL_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct cj_buf {
    char *data;
    size_t len;
    size_t alloc;
    size_t cap; /* 0 means SIZE_MAX */
    bool truncated;
};

void cj_buf_init(struct cj_buf *b, size_t cap);
void cj_buf_free(struct cj_buf *b);
int cj_buf_append(struct cj_buf *b, const void *data, size_t len);
int cj_buf_append_str(struct cj_buf *b, const char *s);
int cj_buf_printf(struct cj_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the data over to the caller (who frees it) and resets the buffer. */
char *cj_buf_steal(struct cj_buf *b, size_t *len);

#define cleanup_buf __attribute__((cleanup(cj_buf_free)))

#endif
