#include "exec_limits.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

const struct cj_limits cj_limits_default = {
    .cpu = 1,
    .realtime = 3,
    .vmem = 512ull << 20,
    .fsize = 1ull << 20,
    .nproc = 15,
};

struct limit_field {
    const char *name;
    size_t offset;
};

static const struct limit_field fields[] = {
    {"CPU", offsetof(struct cj_limits, cpu)},
    {"REALTIME", offsetof(struct cj_limits, realtime)},
    {"VMEM", offsetof(struct cj_limits, vmem)},
    {"FSIZE", offsetof(struct cj_limits, fsize)},
    {"NPROC", offsetof(struct cj_limits, nproc)},
};

/* RLIM_INFINITY is all ones; anything at or above 2^62 is as good as no
 * limit and keeps the arithmetic below (soft + 1, seconds to ns) safe. */
#define LIMIT_MAX (UINT64_C(1) << 62)

int cj_limits_set_named(struct cj_limits *limits, const char *name, uint64_t value, cj_error *err)
{
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (strcmp(fields[i].name, name) == 0) {
            if (value >= LIMIT_MAX)
                return cj_fail(err, ERANGE, "limit %s=%" PRIu64 " is too large", name, value);
            *(uint64_t *)((char *)limits + fields[i].offset) = value;
            return 0;
        }
    }
    return cj_fail(err, EINVAL, "unknown limit '%s' (one of CPU, REALTIME, VMEM, FSIZE, NPROC)",
                   name);
}

int cj_limits_set(struct cj_limits *limits, const char *assignment, cj_error *err)
{
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment)
        return cj_fail(err, EINVAL, "limit '%s' is not NAME=VALUE", assignment);
    char name[16];
    size_t name_len = (size_t)(eq - assignment);
    if (name_len >= sizeof name)
        return cj_fail(err, EINVAL, "unknown limit in '%s'", assignment);
    memcpy(name, assignment, name_len);
    name[name_len] = '\0';

    const char *digits = eq + 1;
    if (*digits < '0' || *digits > '9')
        return cj_fail(err, EINVAL, "limit %s: '%s' is not a non-negative integer", name, digits);
    char *end;
    errno = 0;
    unsigned long long value = strtoull(digits, &end, 10);
    if (errno || *end)
        return cj_fail(err, EINVAL, "limit %s: '%s' is not a non-negative integer", name, digits);
    return cj_limits_set_named(limits, name, value, err);
}

static int set_one(pid_t pid, int resource, const char *name, rlim_t soft, rlim_t hard,
                   cj_error *err)
{
    struct rlimit rl = {.rlim_cur = soft, .rlim_max = hard};
    if (prlimit(pid, resource, &rl, NULL) < 0)
        return cj_fail_errno(err, "prlimit %s", name);
    return 0;
}

int cj_limits_apply(const struct cj_limits *limits, pid_t pid, uint64_t cpu_used_ns,
                    uint64_t extra_nproc, cj_error *err)
{
    if (limits->cpu) {
        /* Whole seconds already spent warming up are added back, so the
         * request gets its CPU seconds; the fraction below a second counts. */
        rlim_t soft = limits->cpu + cpu_used_ns / 1000000000u;
        if (set_one(pid, RLIMIT_CPU, "CPU", soft, soft + 1, err) < 0)
            return -1;
    }
    if (limits->vmem && set_one(pid, RLIMIT_AS, "VMEM", limits->vmem, limits->vmem, err) < 0)
        return -1;
    /* FSIZE has no "no limit" value: 0 means nothing can be written. */
    if (set_one(pid, RLIMIT_FSIZE, "FSIZE", limits->fsize, limits->fsize, err) < 0)
        return -1;
    if (limits->nproc) {
        rlim_t n = limits->nproc + extra_nproc;
        if (set_one(pid, RLIMIT_NPROC, "NPROC", n, n, err) < 0)
            return -1;
    }
    return 0;
}
