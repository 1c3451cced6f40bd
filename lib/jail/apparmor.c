#include "apparmor.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/apparmor.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"

/* The AppArmor-specific attribute file (kernels with LSM stacking) and the
 * shared one older kernels offer; libapparmor tries them in this order. */
static const char *const ATTR_PATHS[] = {
    "thread-self/attr/apparmor/current",
    "thread-self/attr/current",
};

/* Whether the first line of label is exactly "<profile> (enforce)", what the
 * kernel reports for a task confined in enforce mode. Complain mode only
 * logs, so it does not count as confined. */
static bool label_is(const char *label, const char *profile)
{
    static const char mode[] = " (enforce)";
    size_t n = strlen(profile);
    return strcspn(label, "\n") == n + sizeof mode - 1 && strncmp(label, profile, n) == 0 &&
           strncmp(label + n, mode, sizeof mode - 1) == 0;
}

bool cj_apparmor_enabled(void)
{
    if (aa_is_enabled() == 1)
        return true;
    /* aa_is_enabled() also wants securityfs, which containers rarely mount;
     * the profile change goes through /proc, so the module's own switch is
     * what counts. */
    char param = 'N';
    int fd = open("/sys/module/apparmor/parameters/enabled", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool on = read(fd, &param, 1) == 1 && param == 'Y';
    close(fd);
    return on;
}

/* This does by hand what aa_change_profile() does, because that function
 * cannot work here: it opens "/proc/<tid>/attr/..." by absolute path, and the
 * sandbox's root has no /proc (the host's is reachable only through proc_fd);
 * <tid> would be the id in the sandbox's PID namespace, not in the host
 * procfs's; and it allocates (asprintf) between fork and the interpreter. */
int cj_apparmor_enter(int proc_fd, const char *profile, cj_error *err)
{
    char cmd[256];
    int len = snprintf(cmd, sizeof cmd, "changeprofile %s", profile);
    if (len < 0 || (size_t)len >= sizeof cmd)
        return cj_fail(err, ENAMETOOLONG, "apparmor: profile name too long: %s", profile);

    /* The read descriptor is opened before the change: once confined, opening
     * a procfs file would need a /proc rule in the profile, but a file opened
     * while unconfined stays usable (AppArmor does not revalidate it). */
    const char *path = NULL;
    cleanup_close int rfd = -1;
    for (size_t i = 0; i < sizeof ATTR_PATHS / sizeof ATTR_PATHS[0] && rfd < 0; i++) {
        path = ATTR_PATHS[i];
        rfd = openat(proc_fd, path, O_RDONLY | O_CLOEXEC);
        if (rfd < 0 && errno != ENOENT)
            break;
    }
    if (rfd < 0)
        return cj_fail_errno(err, "apparmor: open %s for reading", path);

    cleanup_close int wfd = openat(proc_fd, path, O_WRONLY | O_CLOEXEC);
    if (wfd < 0)
        return cj_fail_errno(err, "apparmor: open %s for writing", path);
    ssize_t written = write(wfd, cmd, (size_t)len);
    if (written < 0)
        return cj_fail_errno(err, "apparmor: write '%s' to %s", cmd, path);
    if (written != len)
        return cj_fail(err, EPROTO, "apparmor: short write of '%s' to %s", cmd, path);

    char label[256];
    ssize_t n = read(rfd, label, sizeof label - 1);
    if (n < 0)
        return cj_fail_errno(err, "apparmor: read back %s", path);
    label[n] = '\0';
    if (!label_is(label, profile)) {
        label[strcspn(label, "\n")] = '\0';
        return cj_fail(err, 0, "apparmor: label after change is '%s', not '%s (enforce)'", label,
                       profile);
    }
    return 0;
}

/* The profile is entered by a throw-away child: a loaded profile is not
 * enough (the caller's own confinement may forbid the change), and once
 * entered it cannot be left. The child's message comes back through a pipe,
 * its errno as its exit status. */
int cj_apparmor_probe(int proc_fd, const char *profile, cj_error *err)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return cj_fail_errno(err, "apparmor: probe pipe");
    cleanup_close int rd = fds[0];
    cleanup_close int wr = fds[1];
    pid_t child = fork();
    if (child < 0)
        return cj_fail_errno(err, "apparmor: fork probe");
    if (child == 0) {
        cj_error child_err = {0};
        if (cj_apparmor_enter(proc_fd, profile, &child_err) == 0)
            _exit(0);
        size_t len = strlen(child_err.msg);
        _exit(write(wr, child_err.msg, len) == (ssize_t)len && child_err.errnum > 0 &&
                      child_err.errnum < 256
                  ? child_err.errnum
                  : 255);
    }
    close(cj_steal_fd(&wr));
    char msg[sizeof err->msg];
    ssize_t n;
    do
        n = read(rd, msg, sizeof msg - 1);
    while (n < 0 && errno == EINTR);
    int status;
    pid_t waited;
    do
        waited = waitpid(child, &status, 0);
    while (waited < 0 && errno == EINTR);
    if (waited < 0)
        return cj_fail_errno(err, "apparmor: wait for probe");
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    msg[n > 0 ? n : 0] = '\0';
    int errnum = WIFEXITED(status) && WEXITSTATUS(status) != 255 ? WEXITSTATUS(status) : 0;
    return cj_fail(err, errnum, "%s", n > 0 ? msg : "apparmor: probe died");
}
