/* Shows that the seccomp allow-list suffices for the interpreter: loads the
 * filter, then starts an isolated embedded Python 3 and runs the snippet given
 * as argv[1]. Exits 0 only when the filter loaded and the snippet ran without
 * an exception; a syscall the policy forgot shows up as an ENOSYS error or a
 * crash in the snippet's output.
 *
 * Usage: seccomp_python_probe 'python source' */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdio.h>
#include <sys/prctl.h>

#include "seccomp.h"

static int start_python(void)
{
    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    PyStatus status = PyConfig_SetString(&config, &config.home, L"/usr");
    if (!PyStatus_Exception(status))
        status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) {
        fprintf(stderr, "seccomp_python_probe: %s: %s\n", status.func ? status.func : "Python",
                status.err_msg ? status.err_msg : "initialisation failed");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s 'python source'\n", argv[0]);
        return 2;
    }

    struct cj_seccomp_program prog = {0};
    cj_error err = {0};
    if (cj_seccomp_compile(&prog, &err) < 0) {
        fprintf(stderr, "seccomp_python_probe: %s\n", err.msg);
        return 1;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        perror("seccomp_python_probe: PR_SET_NO_NEW_PRIVS");
        return 1;
    }
    int rc = cj_seccomp_load(&prog, &err);
    cj_seccomp_program_free(&prog);
    if (rc < 0) {
        fprintf(stderr, "seccomp_python_probe: %s\n", err.msg);
        return 1;
    }

    if (start_python() < 0)
        return 1;
    int failed = PyRun_SimpleString(argv[1]) != 0;
    if (Py_FinalizeEx() < 0)
        failed = 1;
    return failed;
}
