#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "python_host.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "protocol.h"

static int status_failed(PyStatus status, const char *what, cj_error *err)
{
    return cj_fail(err, 0, "%s: %s%s%s", what, status.func ? status.func : "",
                   status.func ? ": " : "", status.err_msg ? status.err_msg : "failed");
}

static int import_modules(const char *list, cj_error *err)
{
    char name[128];
    const char *p = list;
    while (*p) {
        size_t len = strcspn(p, ",");
        if (len >= sizeof name)
            return cj_fail(err, 0, "module name too long in '%s'", list);
        memcpy(name, p, len);
        name[len] = '\0';
        p += len + (p[len] == ',');
        if (!len)
            continue;
        PyObject *module = PyImport_ImportModule(name);
        if (!module) {
            PyErr_Print();
            return cj_fail(err, 0, "import %s failed (traceback on stderr)", name);
        }
        Py_DECREF(module);
    }
    return 0;
}

int cj_python_init(const char *preimport, cj_error *err)
{
    PyPreConfig preconfig;
    PyPreConfig_InitIsolatedConfig(&preconfig);
    preconfig.utf8_mode = 1;
    PyStatus status = Py_PreInitialize(&preconfig);
    if (PyStatus_Exception(status))
        return status_failed(status, "pre-initialize Python", err);

    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    /* As `python3 -E -B jailed_code` would: SIGPIPE and SIGXFSZ ignored (a
     * file too large then raises OSError), SIGINT raises
     * KeyboardInterrupt, site adds dist-packages and the builtins. The
     * script's directory is added by cj_python_run. */
    config.install_signal_handlers = 1;
    config.site_import = 1;
    config.write_bytecode = 0;
    config.parse_argv = 0;
    config.safe_path = 1;
    status = PyConfig_SetString(&config, &config.home, L"/usr");
    if (!PyStatus_Exception(status))
        status = PyConfig_SetString(&config, &config.program_name, L"/usr/bin/python3.11");
    if (!PyStatus_Exception(status))
        status = PyConfig_SetString(&config, &config.executable, L"/usr/bin/python3.11");
    if (!PyStatus_Exception(status))
        status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status))
        return status_failed(status, "initialize Python", err);
    return import_modules(preimport, err);
}

void cj_python_before_fork(void)
{
    PyOS_BeforeFork();
}

void cj_python_after_fork_parent(void)
{
    PyOS_AfterFork_Parent();
}

static void flush_stream(const char *name)
{
    PyObject *stream = PySys_GetObject(name); /* borrowed */
    if (!stream || stream == Py_None)
        return;
    PyObject *result = PyObject_CallMethod(stream, "flush", NULL);
    if (!result)
        PyErr_Clear();
    Py_XDECREF(result);
}

static int set_argv_and_path(const char *run_dir)
{
    PyObject *argv = Py_BuildValue("[s]", "jailed_code");
    if (!argv || PySys_SetObject("argv", argv) < 0) {
        Py_XDECREF(argv);
        return -1;
    }
    Py_DECREF(argv);
    PyObject *path = PySys_GetObject("path"); /* borrowed */
    PyObject *dir = PyUnicode_FromString(run_dir);
    int rc = path && dir ? PyList_Insert(path, 0, dir) : -1;
    Py_XDECREF(dir);
    return rc;
}

_Noreturn void cj_python_run(const char *run_dir, int warm)
{
    cj_error err = {0};
    if (warm)
        PyOS_AfterFork_Child();
    else if (cj_python_init("", &err) < 0) {
        fprintf(stderr, "codejail: %s\n", err.msg);
        _exit(1);
    }
    if (set_argv_and_path(run_dir) < 0) {
        PyErr_Print();
        _exit(1);
    }

    char path[CJ_RUN_DIR_MAX + 16];
    snprintf(path, sizeof path, "%s/jailed_code", run_dir);
    FILE *script = fopen(path, "rb");
    if (!script) {
        perror(path);
        _exit(1);
    }
    int rc = PyRun_SimpleFileExFlags(script, path, 1, NULL);
    flush_stream("stdout");
    flush_stream("stderr");
    /* Skipping finalization: the process is single-use and everything it
     * wrote has been flushed. */
    _exit(rc == 0 ? 0 : 1);
}
