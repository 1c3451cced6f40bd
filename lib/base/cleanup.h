/* Scope-bound resources: a variable declared with one of these attributes is
 * released when it goes out of scope, so no early return can leak it. To hand
 * a resource on, take it out with cj_steal_ptr()/cj_steal_fd(). */
#ifndef CODEJAIL_CLEANUP_H
#define CODEJAIL_CLEANUP_H

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void cj_freep(void *p)
{
    free(*(void **)p);
}

static inline void cj_closep(const int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
}

static inline void cj_closedirp(DIR **d)
{
    if (*d)
        closedir(*d);
}

static inline void cj_fclosep(FILE **f)
{
    if (*f)
        fclose(*f);
}

#define cleanup_free  __attribute__((cleanup(cj_freep)))
#define cleanup_close __attribute__((cleanup(cj_closep)))
#define cleanup_dir   __attribute__((cleanup(cj_closedirp)))
#define cleanup_file  __attribute__((cleanup(cj_fclosep)))

static inline void *cj_steal_ptr_impl(void **p)
{
    void *v = *p;
    *p = NULL;
    return v;
}
#define cj_steal_ptr(p) cj_steal_ptr_impl((void **)&(p))

static inline int cj_steal_fd(int *fd)
{
    int v = *fd;
    *fd = -1;
    return v;
}

#endif
