#include "timens.h"

#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"

int cj_timens_enter_fresh(int proc_fd, cj_error *err)
{
    if (unshare(CLONE_NEWTIME) < 0)
        return cj_fail_errno(err, "unshare time namespace");
    struct timespec monotonic, boottime;
    if (clock_gettime(CLOCK_MONOTONIC, &monotonic) < 0 ||
        clock_gettime(CLOCK_BOOTTIME, &boottime) < 0)
        return cj_fail_errno(err, "read clocks");
    /* Whole seconds only: the kernel refuses an offset that would make a
     * clock negative, and the seconds read here are already past. */
    char offsets[96];
    int len = snprintf(offsets, sizeof offsets, "monotonic %lld 0\nboottime %lld 0\n",
                       -(long long)monotonic.tv_sec, -(long long)boottime.tv_sec);
    if (len < 0 || (size_t)len >= sizeof offsets)
        return cj_fail(err, 0, "time namespace offsets do not fit");
    cleanup_close int fd = openat(proc_fd, "self/timens_offsets", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return cj_fail_errno(err, "open /proc/self/timens_offsets");
    if (write(fd, offsets, (size_t)len) != len)
        return cj_fail_errno(err, "write time namespace offsets");
    return 0;
}
