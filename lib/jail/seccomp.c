#include "seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cleanup.h"

/* The policy names x86_64 syscalls, reads clone's flags from argument 0 and
 * relies on libseccomp sending x32 syscall numbers to the bad-arch action. */
#if !defined(__x86_64__)
#error "seccomp/policy.def is written for x86_64"
#endif

enum rule_kind { RULE_ALLOW, RULE_DENY, RULE_ALLOW_IF_EQ, RULE_ALLOW_IF_CLEAR, RULE_ALLOW_IF_SET };

struct rule {
    const char *name;
    int nr;
    enum rule_kind kind;
    unsigned int arg;
    uint64_t operand; /* the value for RULE_ALLOW_IF_EQ, the mask otherwise */
    int errnum;
};

static const struct rule policy[] = {
#define CJ_ALLOW(sys)                      {#sys, SCMP_SYS(sys), RULE_ALLOW, 0, 0, 0},
#define CJ_DENY(sys, e)                    {#sys, SCMP_SYS(sys), RULE_DENY, 0, 0, e},
#define CJ_ALLOW_IF_EQ(sys, arg, value, e) {#sys, SCMP_SYS(sys), RULE_ALLOW_IF_EQ, arg, value, e},
#define CJ_ALLOW_IF_CLEAR(sys, arg, mask, e)                                                       \
    {#sys, SCMP_SYS(sys), RULE_ALLOW_IF_CLEAR, arg, mask, e},
#define CJ_ALLOW_IF_SET(sys, arg, bit, e) {#sys, SCMP_SYS(sys), RULE_ALLOW_IF_SET, arg, bit, e},
#include "seccomp/policy.def"
};

struct arg_filter {
    int nr;
    unsigned int arg;
    bool allow_list; /* the values let the call through; otherwise they refuse it */
    int errnum;
    const uint32_t *values;
    size_t count;
};

#define VALUES(...)                                                                                \
    (const uint32_t[])                                                                             \
    {                                                                                              \
        __VA_ARGS__                                                                                \
    }
#define COUNT(...) (sizeof VALUES(__VA_ARGS__) / sizeof(uint32_t))

static const struct arg_filter arg_filters[] = {
#define CJ_DENY_ARG(sys, arg, value, e) {SCMP_SYS(sys), arg, false, e, VALUES(value), 1},
#define CJ_ALLOW_ARG_ONE_OF(sys, arg, e, ...)                                                      \
    {SCMP_SYS(sys), arg, true, e, VALUES(__VA_ARGS__), COUNT(__VA_ARGS__)},
#include "seccomp/policy.def"
};

static void release_ctx(scmp_filter_ctx *ctx)
{
    if (*ctx)
        seccomp_release(*ctx);
}

static int add(scmp_filter_ctx ctx, const struct rule *r, uint32_t action, unsigned int ncmp,
               const struct scmp_arg_cmp *cmp, cj_error *err)
{
    int rc = seccomp_rule_add_exact_array(ctx, action, r->nr, ncmp, cmp);
    if (rc < 0)
        return cj_fail(err, -rc, "seccomp rule for %s: %s", r->name, strerror(-rc));
    return 0;
}

static int add_rule(scmp_filter_ctx ctx, const struct rule *r, cj_error *err)
{
    switch (r->kind) {
    case RULE_ALLOW:
        return add(ctx, r, SCMP_ACT_ALLOW, 0, NULL, err);
    case RULE_DENY:
        return add(ctx, r, SCMP_ACT_ERRNO(r->errnum), 0, NULL, err);
    case RULE_ALLOW_IF_EQ: {
        struct scmp_arg_cmp eq = {.arg = r->arg, .op = SCMP_CMP_EQ, .datum_a = r->operand};
        struct scmp_arg_cmp ne = {.arg = r->arg, .op = SCMP_CMP_NE, .datum_a = r->operand};
        if (add(ctx, r, SCMP_ACT_ALLOW, 1, &eq, err) < 0)
            return -1;
        return add(ctx, r, SCMP_ACT_ERRNO(r->errnum), 1, &ne, err);
    }
    case RULE_ALLOW_IF_SET: {
        /* Two rules that between them cover every value: only one bit. */
        if (r->operand == 0 || (r->operand & (r->operand - 1)) != 0)
            return cj_fail(err, EINVAL, "seccomp rule for %s: more than one bit", r->name);
        struct scmp_arg_cmp set = {
            .arg = r->arg, .op = SCMP_CMP_MASKED_EQ, .datum_a = r->operand, .datum_b = r->operand};
        struct scmp_arg_cmp unset = {
            .arg = r->arg, .op = SCMP_CMP_MASKED_EQ, .datum_a = r->operand, .datum_b = 0};
        if (add(ctx, r, SCMP_ACT_ALLOW, 1, &set, err) < 0)
            return -1;
        return add(ctx, r, SCMP_ACT_ERRNO(r->errnum), 1, &unset, err);
    }
    case RULE_ALLOW_IF_CLEAR:
        break;
    }

    struct scmp_arg_cmp clear = {
        .arg = r->arg, .op = SCMP_CMP_MASKED_EQ, .datum_a = r->operand, .datum_b = 0};
    if (add(ctx, r, SCMP_ACT_ALLOW, 1, &clear, err) < 0)
        return -1;
    /* libseccomp has no "masked not-equal", so the refusal is one rule per bit.
     * None of them overlaps the allow rule, so their order in the generated
     * program does not matter. */
    for (unsigned int bit = 0; bit < 64; bit++) {
        uint64_t b = UINT64_C(1) << bit;
        if (!(r->operand & b))
            continue;
        struct scmp_arg_cmp set = {
            .arg = r->arg, .op = SCMP_CMP_MASKED_EQ, .datum_a = b, .datum_b = b};
        if (add(ctx, r, SCMP_ACT_ERRNO(r->errnum), 1, &set, err) < 0)
            return -1;
    }
    return 0;
}

/* libseccomp merges two rules for one syscall without a word: an
 * unconditional rule swallows conditional ones, and of two unconditional rules
 * the first wins. A policy that names a syscall twice is therefore refused
 * instead of being compiled into something nobody wrote. */
static int check_unique(cj_error *err)
{
    size_t n = sizeof policy / sizeof policy[0];
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (policy[i].nr == policy[j].nr)
                return cj_fail(err, 0, "seccomp/policy.def names %s twice", policy[i].name);
    return 0;
}

/* The argument filters run in front of the libseccomp program. libseccomp
 * cannot express "allowed except these values" (a conditional denial next to
 * an unconditional allow is dropped, and it has no masked not-equal) nor "one
 * of these values, else this errno" (one rule may not compare an argument
 * twice). Each filter compares the low 32 bits of its argument, as the kernel
 * truncates these int arguments, so TIOCSTI with junk in the high bits is
 * still TIOCSTI. A call no filter refuses falls through to the libseccomp
 * program, which starts afresh by loading the architecture. */
enum { PREFIX_HEAD = 2, FILTER_HEAD = 3 };
#define N_FILTERS (sizeof arg_filters / sizeof arg_filters[0])
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "low half of an argument is at +0");

static size_t filter_len(const struct arg_filter *f)
{
    return FILTER_HEAD + (f->allow_list ? f->count + 1 : 2 * f->count);
}

static size_t prefix_len(void)
{
    size_t len = PREFIX_HEAD;
    for (size_t i = 0; i < N_FILTERS; i++)
        len += filter_len(&arg_filters[i]);
    return len;
}

static struct sock_filter stmt(uint16_t code, uint32_t k)
{
    return (struct sock_filter)BPF_STMT(code, k);
}

static struct sock_filter jump(uint16_t code, uint32_t k, size_t jt, size_t jf)
{
    return (struct sock_filter)BPF_JUMP(code, k, (uint8_t)jt, (uint8_t)jf);
}

static struct sock_filter refuse(int errnum)
{
    return stmt(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((uint32_t)errnum & SECCOMP_RET_DATA));
}

/* Writes the prefix of len instructions (len <= 256, so every jump to its end
 * fits in 8 bits). */
static void arg_prefix(struct sock_filter *out, size_t len)
{
    size_t i = 0;
    out[i++] = stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    out[i] = jump(BPF_JMP | BPF_JEQ | BPF_K, seccomp_arch_native(), 0, len - i - 1);
    i++;
    for (size_t n = 0; n < N_FILTERS; n++) {
        const struct arg_filter *f = &arg_filters[n];
        size_t next = i + filter_len(f);
        out[i++] = stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
        out[i] = jump(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)f->nr, 0, next - i - 1);
        i++;
        out[i++] = stmt(BPF_LD | BPF_W | BPF_ABS,
                        (uint32_t)(offsetof(struct seccomp_data, args) + 8 * f->arg));
        for (size_t v = 0; v < f->count; v++) {
            if (f->allow_list) {
                out[i] = jump(BPF_JMP | BPF_JEQ | BPF_K, f->values[v], len - i - 1, 0);
                i++;
            } else {
                out[i++] = jump(BPF_JMP | BPF_JEQ | BPF_K, f->values[v], 0, 1);
                out[i++] = refuse(f->errnum);
            }
        }
        if (f->allow_list)
            out[i++] = refuse(f->errnum);
    }
}

/* Runs libseccomp over the policy and returns the resulting BPF in a memfd,
 * libseccomp 2.5 having no way to export to memory. */
static int export_libseccomp(cj_error *err)
{
    __attribute__((cleanup(release_ctx))) scmp_filter_ctx ctx =
        seccomp_init(SCMP_ACT_ERRNO(ENOSYS));
    if (!ctx)
        return cj_fail(err, 0, "seccomp_init failed");

    /* seccomp_init() includes the native architecture only, so every other
     * ABI meets this action; for x86_64 libseccomp also sends x32 syscall
     * numbers (nr | 0x40000000) to it. */
    int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    /* Several hundred rules: a binary search keeps each syscall's cost low. */
    if (rc == 0)
        rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    if (rc < 0)
        return cj_fail(err, -rc, "seccomp_attr_set: %s", strerror(-rc));

    for (size_t i = 0; i < sizeof policy / sizeof policy[0]; i++)
        if (add_rule(ctx, &policy[i], err) < 0)
            return -1;

    cleanup_close int fd = memfd_create("codejail-seccomp", MFD_CLOEXEC);
    if (fd < 0)
        return cj_fail_errno(err, "memfd_create");
    rc = seccomp_export_bpf(ctx, fd);
    if (rc < 0)
        return cj_fail(err, -rc, "seccomp_export_bpf: %s", strerror(-rc));
    return cj_steal_fd(&fd);
}

int cj_seccomp_compile(struct cj_seccomp_program *prog, cj_error *err)
{
    if (check_unique(err) < 0)
        return -1;

    cleanup_close int fd = export_libseccomp(err);
    if (fd < 0)
        return -1;

    struct stat st;
    if (fstat(fd, &st) < 0)
        return cj_fail_errno(err, "seccomp program: fstat");
    size_t body = (size_t)st.st_size / sizeof(struct sock_filter);
    if (st.st_size <= 0 || (size_t)st.st_size % sizeof(struct sock_filter) != 0)
        return cj_fail(err, 0, "seccomp program: libseccomp exported %lld bytes",
                       (long long)st.st_size);
    size_t prefix = prefix_len();
    if (prefix > 256)
        return cj_fail(err, 0, "seccomp program: %zu instructions of argument filters, at most 256",
                       prefix);
    size_t len = prefix + body;
    if (len > BPF_MAXINSNS)
        return cj_fail(err, 0, "seccomp program: %zu instructions, the kernel takes %d", len,
                       BPF_MAXINSNS);

    cleanup_free struct sock_filter *filter = calloc(len, sizeof *filter);
    if (!filter)
        return cj_fail_errno(err, "seccomp program");
    arg_prefix(filter, prefix);
    size_t want = body * sizeof *filter;
    ssize_t got = pread(fd, filter + prefix, want, 0);
    if (got < 0)
        return cj_fail_errno(err, "seccomp program: read");
    if ((size_t)got != want)
        return cj_fail(err, 0, "seccomp program: short read (%zd of %zu bytes)", got, want);

    prog->filter = cj_steal_ptr(filter);
    prog->len = (unsigned short)len;
    return 0;
}

void cj_seccomp_program_free(struct cj_seccomp_program *prog)
{
    free(prog->filter);
    prog->filter = NULL;
    prog->len = 0;
}

int cj_seccomp_load(const struct cj_seccomp_program *prog, cj_error *err)
{
    struct sock_fprog fprog = {.len = prog->len, .filter = prog->filter};
    /* TSYNC: the filter covers every thread of the process, not only this
     * one. It fails with a thread id when some thread cannot take it. */
    long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &fprog);
    if (rc < 0)
        return cj_fail_errno(err, "install seccomp filter");
    if (rc > 0)
        return cj_fail(err, 0, "install seccomp filter: thread %ld cannot be synchronised", rc);
    return 0;
}
