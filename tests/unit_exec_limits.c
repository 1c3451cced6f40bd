/* Limit parsing and application (CODE_JAIL["limits"] names and meanings). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "exec_limits.h"

static void test_parse_each_name(void **state)
{
    (void)state;
    struct cj_limits l = cj_limits_default;
    cj_error err = {0};
    assert_int_equal(cj_limits_set(&l, "CPU=5", &err), 0);
    assert_int_equal(cj_limits_set(&l, "REALTIME=10", &err), 0);
    assert_int_equal(cj_limits_set(&l, "VMEM=1073741824", &err), 0);
    assert_int_equal(cj_limits_set(&l, "FSIZE=0", &err), 0);
    assert_int_equal(cj_limits_set(&l, "NPROC=0", &err), 0);
    assert_int_equal(l.cpu, 5);
    assert_int_equal(l.realtime, 10);
    assert_int_equal(l.vmem, 1073741824);
    assert_int_equal(l.fsize, 0);
    assert_int_equal(l.nproc, 0);
}

static void test_parse_refuses_bad_input(void **state)
{
    (void)state;
    static const char *const bad[] = {"CPU",
                                      "=5",
                                      "CPU=",
                                      "CPU=-1",
                                      "CPU=1.5",
                                      "CPU=1x",
                                      "cpu=1",
                                      "PROXY=1",
                                      "CPU= 1",
                                      "NPROC=99999999999999999999",
                                      "VMEM=4611686018427387904"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct cj_limits l = cj_limits_default;
        cj_error err = {0};
        assert_int_equal(cj_limits_set(&l, bad[i], &err), -1);
        assert_true(err.msg[0] != '\0');
        assert_memory_equal(&l, &cj_limits_default, sizeof l);
    }
}

static void test_defaults_deny_the_api_rows(void **state)
{
    (void)state;
    /* API.md: allocating 1 GiB fails, a 1 GiB file fails, 1000 forks fail,
     * CPU and wall clock are bounded. */
    assert_true(cj_limits_default.vmem > 0 && cj_limits_default.vmem < (1ull << 30));
    assert_true(cj_limits_default.fsize < (1ull << 30));
    assert_true(cj_limits_default.nproc > 0 && cj_limits_default.nproc < 1000);
    assert_true(cj_limits_default.cpu > 0 && cj_limits_default.realtime > 0);
}

/* Applies limits to a child and reads them back from inside it. */
static void test_apply_to_another_process(void **state)
{
    (void)state;
    int ready[2], report[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(report), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        char go;
        if (read(ready[0], &go, 1) != 1)
            _exit(2);
        struct rlimit cpu, as, fsize, nproc;
        getrlimit(RLIMIT_CPU, &cpu);
        getrlimit(RLIMIT_AS, &as);
        getrlimit(RLIMIT_FSIZE, &fsize);
        getrlimit(RLIMIT_NPROC, &nproc);
        uint64_t values[] = {cpu.rlim_cur, cpu.rlim_max, as.rlim_cur, fsize.rlim_cur,
                             nproc.rlim_cur};
        _exit(write(report[1], values, sizeof values) == (ssize_t)sizeof values ? 0 : 3);
    }
    struct cj_limits l = {.cpu = 2, .realtime = 3, .vmem = 1u << 30, .fsize = 0, .nproc = 20};
    cj_error err = {0};
    /* 1.5 s already spent: the whole second is added back. */
    assert_int_equal(cj_limits_apply(&l, child, 1500000000u, 1, &err), 0);
    assert_int_equal(write(ready[1], "g", 1), 1);
    uint64_t values[5];
    assert_int_equal(read(report[0], values, sizeof values), sizeof values);
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_int_equal(values[0], 3); /* CPU soft: 2 + 1 whole second spent */
    assert_int_equal(values[1], 4); /* hard = soft + 1 */
    assert_int_equal(values[2], 1u << 30);
    assert_int_equal(values[3], 0);  /* FSIZE 0: nothing can be written */
    assert_int_equal(values[4], 21); /* NPROC plus the extra process */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_each_name),
        cmocka_unit_test(test_parse_refuses_bad_input),
        cmocka_unit_test(test_defaults_deny_the_api_rows),
        cmocka_unit_test(test_apply_to_another_process),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
