/* Leak test: 200 executions through the engine (successes, exceptions,
 * wall-clock kills, fork bombs, crashes), cold and warm; afterwards nothing
 * of them is left: no process, mount, directory, cgroup or descriptor. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine.h"

#define RUNS_PER_MODE 100

static const char *const programs[] = {
    "x = x + 1",
    "raise ValueError('boom')",
    "import time\ntime.sleep(30)",
    "import os, time\nfor i in range(100):\n    if os.fork() == 0:\n        time.sleep(30)\n",
    "import os\nopen('tmp/f', 'w').write('x' * 1000)\nos.kill(os.getpid(), 9)",
};

static int count_dir(const char *path, const char *prefix)
{
    DIR *d = opendir(path);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.' && strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int n = 0, c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static long status_field(long pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long value = -1;
    size_t len = strlen(field);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, len) == 0 && line[len] == ':') {
            value = strtol(line + len + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return value;
}

static bool descends_from_us(long pid)
{
    for (int depth = 0; pid > 1 && depth < 64; depth++) {
        if (pid == (long)getpid())
            return true;
        pid = status_field(pid, "PPid");
    }
    return false;
}

/* Processes of this test's sandboxes: descendants of this process (other
 * sandboxes may be running on the machine). */
static int count_sandbox_processes(void)
{
    DIR *d = opendir("/proc");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        long pid = strtol(e->d_name, NULL, 10);
        n += pid != (long)getpid() && descends_from_us(pid);
    }
    closedir(d);
    return n;
}

static int count_cgroups(void)
{
    static const char *const roots[] = {"/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids",
                                        "/sys/fs/cgroup/unified", "/sys/fs/cgroup"};
    int n = 0;
    for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++)
        n += count_dir(roots[i], "codejail.");
    return n;
}

static void run_many(bool warm)
{
    char helper[4096];
    const char *bin = getenv("CODEJAIL_BINARY_DIR");
    assert_non_null(bin);
    snprintf(helper, sizeof helper, "%s/codejail-sandbox", bin);
    struct cj_engine_config config = {.helper_path = helper, .warm = warm};
    struct cj_engine *engine;
    cj_error err = {0};
    assert_int_equal(cj_engine_start(&config, &engine, &err), 0);

    for (int i = 0; i < RUNS_PER_MODE; i++) {
        const char *code = programs[i % (sizeof programs / sizeof programs[0])];
        struct cj_exec_request request = {
            .code = code,
            .code_len = strlen(code),
            .globals_json = "{\"x\": 1}",
            .globals_len = 8,
            .limits = cj_limits_default,
        };
        request.limits.realtime = 1;
        struct cj_exec_result result;
        if (cj_engine_execute(engine, &request, &result, &err) < 0)
            fail_msg("execution %d failed: %s", i, err.msg);
        cj_exec_result_free(&result);
    }
    cj_engine_stop(engine);
}

static void test_nothing_left_after_200_executions(void **state)
{
    (void)state;
    int fds = count_dir("/proc/self/fd", "");
    int mounts = count_lines("/proc/self/mountinfo");
    int run_dirs = count_dir("/tmp", "codejail-");
    int cgroups = count_cgroups();

    run_many(false);
    run_many(true);

    /* cj_engine_stop() returns after the helper has killed, reaped and
     * cleaned up every sandbox, so the state is final here. */
    assert_int_equal(count_sandbox_processes(), 0);
    assert_int_equal(count_dir("/proc/self/fd", ""), fds);
    assert_int_equal(count_lines("/proc/self/mountinfo"), mounts);
    assert_int_equal(count_dir("/tmp", "codejail-"), run_dirs);
    assert_int_equal(count_cgroups(), cgroups);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nothing_left_after_200_executions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
