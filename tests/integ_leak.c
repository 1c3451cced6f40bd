/* Leak test: 200 executions through the engine (successes, exceptions,
 * wall-clock kills, fork bombs, crashes), cold and warm; afterwards nothing
 * of them is left: no process, mount, directory, cgroup or descriptor. And
 * when the helper is killed, its sandboxes die with it. Nothing of one
 * sandbox is in another's memory. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
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

/* Run directories on the host (made only without a mount namespace):
 * /tmp/codejail-XXXXXXXX, not the other tests' /tmp/codejail-*.XXXXXX. */
static int count_run_dirs(void)
{
    DIR *d = opendir("/tmp");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strncmp(e->d_name, "codejail-", 9) == 0 && strlen(e->d_name) == 17 &&
             !strchr(e->d_name, '.');
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

/* The last number of a field of /proc/PID/status (NSpid: the pid in the
 * process's own PID namespace). */
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
            const char *last = strrchr(line, '\t');
            value = strtol(last ? last + 1 : line + len + 1, NULL, 10);
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

/* The helpers this test started: their cgroup parents are named after them
 * (codejail.<pid>[.n]). Other instances on the machine come and go, and a
 * start removes the stale parents of dead ones, so only ours are counted. */
static long helpers_seen[64];
static size_t n_helpers_seen;

static void note_helpers(void)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)getpid(), (int)getpid());
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    long pid;
    while (fscanf(f, "%ld", &pid) == 1 && n_helpers_seen < 64)
        helpers_seen[n_helpers_seen++] = pid;
    fclose(f);
}

static int count_our_cgroups(void)
{
    static const char *const roots[] = {"/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids",
                                        "/sys/fs/cgroup/unified", "/sys/fs/cgroup"};
    int n = 0;
    for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
        DIR *d = opendir(roots[i]);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            long pid =
                strncmp(e->d_name, "codejail.", 9) == 0 ? strtol(e->d_name + 9, NULL, 10) : 0;
            for (size_t h = 0; pid && h < n_helpers_seen; h++)
                n += helpers_seen[h] == pid;
        }
        if (d)
            closedir(d);
    }
    return n;
}

static void helper_path(char *out, size_t size)
{
    const char *bin = getenv("CODEJAIL_BINARY_DIR");
    assert_non_null(bin);
    snprintf(out, size, "%s/codejail-sandbox", bin);
}

static void run_many(bool warm)
{
    char helper[4096];
    helper_path(helper, sizeof helper);
    struct cj_engine_config config = {.helper_path = helper, .warm = warm};
    struct cj_engine *engine;
    cj_error err = {0};
    assert_int_equal(cj_engine_start(&config, &engine, &err), 0);
    note_helpers();

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
    int run_dirs = count_run_dirs();

    run_many(false);
    run_many(true);

    /* cj_engine_stop() returns after the helper has killed, reaped and
     * cleaned up every sandbox, so the state is final here. */
    assert_int_equal(count_sandbox_processes(), 0);
    assert_int_equal(count_dir("/proc/self/fd", ""), fds);
    assert_int_equal(count_lines("/proc/self/mountinfo"), mounts);
    assert_int_equal(count_run_dirs(), run_dirs);
    assert_int_equal(count_our_cgroups(), 0);
}

/* Between two looks at state that changes asynchronously (processes
 * dying): not a sleep standing in for a condition. */
static void poll_pause(void)
{
    struct timespec pause = {0, 10 * 1000 * 1000};
    nanosleep(&pause, NULL);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Waits (bounded) until this test's sandbox processes number `want` or
 * fewer, reaping what comes back to it. */
static int wait_for_sandbox_processes(int want, double seconds)
{
    double deadline = now_s() + seconds;
    int n;
    while ((n = count_sandbox_processes()) > want && now_s() < deadline) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        poll_pause();
    }
    return n;
}

/* The children of this process that run the helper. */
static int kill_helpers(void)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)getpid(), (int)getpid());
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int killed = 0;
    long pid;
    while (fscanf(f, "%ld", &pid) == 1)
        killed += kill((pid_t)pid, SIGKILL) == 0;
    fclose(f);
    return killed;
}

/* An engine whose pool of `size` holds that many ready sandboxes. */
static struct cj_engine *start_with_pooled_sandboxes(bool warm, unsigned size)
{
    char helper[4096];
    helper_path(helper, sizeof helper);
    struct cj_engine_config config = {.helper_path = helper, .warm = warm, .pool_size = size};
    struct cj_engine *engine;
    cj_error err = {0};
    assert_int_equal(cj_engine_start(&config, &engine, &err), 0);
    double deadline = now_s() + 60;
    while (cj_engine_pool_ready(engine) < size && now_s() < deadline)
        poll_pause();
    assert_int_equal(cj_engine_pool_ready(engine), size);
    return engine;
}

/* A pooled sandbox waits with its init, runner and (cgroup v1) launcher;
 * killing the helper must take them all, or they would run on unwatched. */
static void test_sandboxes_die_with_their_helper(void **state)
{
    (void)state;
    /* Orphans come back here rather than to the machine's init. */
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
    struct cj_engine *engine = start_with_pooled_sandboxes(true, 1);
    /* the helper, and the sandbox's init and runner at least */
    assert_true(count_sandbox_processes() >= 3);

    assert_true(kill_helpers() >= 1);
    assert_int_equal(wait_for_sandbox_processes(0, 10), 0);
    cj_engine_stop(engine);
}

/* Kills every process below this test's children (the helpers): each
 * sandbox, its launcher, and a launcher waiting for the next. */
static int kill_below_helpers(void)
{
    DIR *d = opendir("/proc");
    assert_non_null(d);
    int killed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long pid = strtol(e->d_name, NULL, 10);
        if (pid > 0 && pid != (long)getpid() && status_field(pid, "PPid") != (long)getpid() &&
            descends_from_us(pid))
            killed += kill((pid_t)pid, SIGKILL) == 0;
    }
    closedir(d);
    return killed;
}

/* A pooled sandbox that died while it waited is not handed a request. */
static void test_dead_pooled_sandbox_is_passed_over(void **state)
{
    (void)state;
    struct cj_engine *engine = start_with_pooled_sandboxes(true, 1);
    assert_true(kill_below_helpers() >= 2);
    /* until only the helper is left */
    assert_int_equal(wait_for_sandbox_processes(1, 10), 1);

    const char *code = "x = x + 1";
    struct cj_exec_request request = {
        .code = code,
        .code_len = strlen(code),
        .globals_json = "{\"x\": 16}",
        .globals_len = 9,
        .limits = cj_limits_default,
    };
    struct cj_exec_result result;
    cj_error err = {0};
    if (cj_engine_execute(engine, &request, &result, &err) < 0)
        fail_msg("execution failed: %s", err.msg);
    assert_int_equal(result.status, 0);
    cj_exec_result_free(&result);
    cj_engine_stop(engine);
}

#define MAX_RUNNERS  8
#define RUN_DIR_LEN  22 /* "/tmp/codejail-" and eight characters */
#define RUN_DIR_HEAD "/tmp/codejail-"

struct runner {
    long pid;
    char run_dir[RUN_DIR_LEN + 1];
};

/* The runners of this test's sandboxes: pid 2 of their PID namespace, with
 * their run directory as working directory. */
static int find_runners(struct runner *out)
{
    DIR *d = opendir("/proc");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < MAX_RUNNERS) {
        long pid = strtol(e->d_name, NULL, 10);
        if (pid <= 0 || pid == (long)getpid() || !descends_from_us(pid) ||
            status_field(pid, "NSpid") != 2)
            continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/%ld/cwd", pid);
        ssize_t len = readlink(path, out[n].run_dir, sizeof out[n].run_dir);
        if (len != RUN_DIR_LEN || strncmp(out[n].run_dir, RUN_DIR_HEAD, strlen(RUN_DIR_HEAD)))
            continue;
        out[n].run_dir[len] = '\0';
        out[n++].pid = pid;
    }
    closedir(d);
    return n;
}

/* The first of the other runners' run directories found in buf[0..len),
 * or NULL. */
static const char *other_run_dir(const char *buf, size_t len, const struct runner *runners, int n,
                                 const struct runner *self)
{
    for (int i = 0; i < n; i++) {
        if (&runners[i] == self)
            continue;
        const char *p = memmem(buf, len, runners[i].run_dir, RUN_DIR_LEN);
        if (p)
            return p;
    }
    return NULL;
}

/* Reads every readable mapping of runner r (as root, through /proc/PID/mem)
 * and fails on the run directory of any other. */
static void expect_no_other_run_dir(const struct runner *runners, int n, const struct runner *r)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/maps", r->pid);
    FILE *maps = fopen(path, "r");
    assert_non_null(maps);
    snprintf(path, sizeof path, "/proc/%ld/mem", r->pid);
    int mem = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(mem >= 0);
    enum { CHUNK = 1 << 20 };
    char *buf = malloc(CHUNK + RUN_DIR_LEN);
    assert_non_null(buf);
    size_t scanned = 0;
    const char *other = NULL;
    unsigned long other_at = 0;
    char line[512];
    while (!other && fgets(line, sizeof line, maps)) {
        unsigned long start, end;
        char perms[5];
        if (sscanf(line, "%lx-%lx %4s", &start, &end, perms) != 3 || perms[0] != 'r')
            continue;
        /* Overlapping by a name's length, so one cut in two is seen. */
        for (unsigned long at = start; !other && at < end; at += CHUNK) {
            size_t want = end - at < CHUNK + RUN_DIR_LEN ? end - at : CHUNK + RUN_DIR_LEN;
            ssize_t got = pread(mem, buf, want, (off_t)at);
            if (got <= 0)
                break; /* [vvar] and the like cannot be read */
            scanned += (size_t)got;
            other = other_run_dir(buf, (size_t)got, runners, n, r);
            if (other)
                other_at = at + (unsigned long)(other - buf);
        }
    }
    free(buf);
    close(mem);
    fclose(maps);
    if (other)
        fail_msg("the runner of %s holds another's run directory at %#lx", r->run_dir, other_at);
    assert_true(scanned > 0);
}

/* A sandbox is made while others wait in the pool: in warm mode it is a
 * fork of the helper, and nothing of the helper's bookkeeping of the
 * others (their run directories, pids) may come with it. */
static void scan_pooled_runners(bool warm)
{
    struct cj_engine *engine = start_with_pooled_sandboxes(warm, 3);
    /* A pooled sandbox's runner is there before it reports ready. */
    struct runner runners[MAX_RUNNERS];
    int n = find_runners(runners);
    assert_int_equal(n, 3);
    for (int i = 0; i < n; i++)
        expect_no_other_run_dir(runners, n, &runners[i]);
    cj_engine_stop(engine);
}

static void test_no_sandbox_holds_another_run_dir(void **state)
{
    (void)state;
    scan_pooled_runners(true);
    scan_pooled_runners(false);
}

/* Whether process pid is in a group named sandbox-N in any hierarchy. */
static bool in_a_sandbox_group(long pid)
{
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%ld/cgroup", pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, "/sandbox-") != NULL;
    fclose(f);
    return found;
}

/* On cgroup v1 a launcher clones each sandbox from inside its groups and
 * stays as its parent; it must leave them once the sandbox is born, or it
 * would be an OOM-kill candidate of the sandbox's memory group and count
 * among its pids. */
static void test_launcher_leaves_its_sandboxs_groups(void **state)
{
    (void)state;
    struct cj_engine *engine = start_with_pooled_sandboxes(true, 1);
    struct runner runner;
    assert_int_equal(find_runners(&runner), 1);
    long init = status_field(runner.pid, "PPid");
    long parent = status_field(init, "PPid");
    /* Without cgroups, or on cgroup2, the helper (this test's child) clones
     * the init itself. */
    if (!in_a_sandbox_group(init) || status_field(parent, "PPid") == (long)getpid()) {
        cj_engine_stop(engine);
        skip();
    }
    long launcher = parent;
    /* It leaves after handing the sandbox over. */
    double deadline = now_s() + 10;
    while (in_a_sandbox_group(launcher) && now_s() < deadline)
        poll_pause();
    bool stayed = in_a_sandbox_group(launcher);
    cj_engine_stop(engine);
    assert_false(stayed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nothing_left_after_200_executions),
        cmocka_unit_test(test_sandboxes_die_with_their_helper),
        cmocka_unit_test(test_no_sandbox_holds_another_run_dir),
        cmocka_unit_test(test_launcher_leaves_its_sandboxs_groups),
        cmocka_unit_test(test_dead_pooled_sandbox_is_passed_over),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
