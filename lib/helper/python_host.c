#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "python_host.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "protocol.h"

static int status_failed(PyStatus status, const char *what, cj_error *err)
{
    return cj_fail(err, 0, "%s: %s%s%s", what, status.func ? status.func : "",
                   status.func ? ": " : "", status.err_msg ? status.err_msg : "failed");
}

/* Whether the pending exception says that `name` itself (or a package it is
 * in) is not installed, as opposed to a module it needs being absent. */
static bool is_not_installed(const char *name)
{
    if (!PyErr_ExceptionMatches(PyExc_ModuleNotFoundError))
        return false;
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    PyObject *missing = value ? PyObject_GetAttrString(value, "name") : NULL;
    const char *text = missing && PyUnicode_Check(missing) ? PyUnicode_AsUTF8(missing) : NULL;
    size_t len = text ? strlen(text) : 0;
    bool own = len && strncmp(name, text, len) == 0 && (name[len] == '\0' || name[len] == '.');
    Py_XDECREF(missing);
    PyErr_Restore(type, value, traceback);
    return own;
}

/* A module that is not installed is skipped: an environment built without
 * an optional package (no package index) still serves everything else, and
 * the module check reports what is missing. Any other failure is an error. */
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
        if (!module && is_not_installed(name)) {
            PyErr_Clear();
            fprintf(stderr, "codejail-sandbox: pre-import: %s is not installed, skipped\n", name);
            continue;
        }
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

int cj_python_setenv(const char *name, const char *value, cj_error *err)
{
    PyObject *os = PyImport_ImportModule("os");
    PyObject *environ = os ? PyObject_GetAttrString(os, "environ") : NULL;
    PyObject *key = PyUnicode_FromString(name);
    PyObject *text = PyUnicode_FromString(value);
    int rc = environ && key && text ? PyObject_SetItem(environ, key, text) : -1;
    Py_XDECREF(text);
    Py_XDECREF(key);
    Py_XDECREF(environ);
    Py_XDECREF(os);
    if (rc < 0) {
        PyErr_Print();
        return cj_fail(err, 0, "set os.environ[%s] (traceback on stderr)", name);
    }
    return 0;
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

static PyObject *compile_runner(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return PyErr_SetFromErrnoWithFilename(PyExc_OSError, path);
    char source[65536];
    size_t n = fread(source, 1, sizeof source - 1, f);
    bool complete = feof(f) && !ferror(f);
    fclose(f);
    if (!complete) {
        PyErr_Format(PyExc_OSError, "could not read %s whole", path);
        return NULL;
    }
    source[n] = '\0';
    return Py_CompileString(source, path, Py_file_input);
}

/* The runner, compiled in the helper before any fork (warm mode). */
static PyObject *compiled_runner;

int cj_python_compile_runner(cj_error *err)
{
    compiled_runner = Py_CompileString(cj_jailed_code, "jailed_code", Py_file_input);
    if (!compiled_runner) {
        PyErr_Print();
        return cj_fail(err, 0, "compile the runner");
    }
    return 0;
}

/* code, and every code object in it, with co_filename set to filename: what
 * compiling the file there would have made. */
static PyObject *renamed(PyObject *code, PyObject *filename)
{
    PyObject *consts = PyObject_GetAttrString(code, "co_consts");
    if (!consts)
        return NULL;
    Py_ssize_t n = PyTuple_Size(consts);
    PyObject *new_consts = n >= 0 ? PyTuple_New(n) : NULL;
    for (Py_ssize_t i = 0; new_consts && i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(consts, i);
        PyObject *value = PyCode_Check(item) ? renamed(item, filename) : Py_NewRef(item);
        if (!value)
            Py_CLEAR(new_consts);
        else
            PyTuple_SET_ITEM(new_consts, i, value);
    }
    Py_DECREF(consts);
    if (!new_consts)
        return NULL;
    PyObject *replace = PyObject_GetAttrString(code, "replace");
    PyObject *no_args = PyTuple_New(0);
    PyObject *kwargs = Py_BuildValue("{sOsO}", "co_filename", filename, "co_consts", new_consts);
    PyObject *result =
        replace && no_args && kwargs ? PyObject_Call(replace, no_args, kwargs) : NULL;
    Py_XDECREF(kwargs);
    Py_XDECREF(no_args);
    Py_XDECREF(replace);
    Py_DECREF(new_consts);
    return result;
}

_Noreturn void cj_python_run(const char *run_dir, int warm, int go_fd)
{
    cj_error err = {0};
    if (warm)
        PyOS_AfterFork_Child();
    else if (cj_python_init("", &err) < 0) {
        fprintf(stderr, "codejail: %s\n", err.msg);
        _exit(1);
    }
    char path[CJ_RUN_DIR_MAX + 16];
    snprintf(path, sizeof path, "%s/jailed_code", run_dir);
    PyObject *main_module = PyImport_AddModule("__main__"); /* borrowed */
    PyObject *globals = main_module ? PyModule_GetDict(main_module) : NULL;
    PyObject *file = PyUnicode_FromString(path);
    PyObject *code = NULL;
    if (warm && compiled_runner && file)
        code = renamed(compiled_runner, file);
    else if (!warm)
        code = compile_runner(path);
    if (set_argv_and_path(run_dir) < 0 || !globals || !code || !file ||
        PyDict_SetItemString(globals, "__file__", file) < 0) {
        PyErr_Print();
        _exit(1);
    }
    Py_DECREF(file);

    /* Compiled ahead; the input may be read once the limits are on. */
    char go;
    ssize_t n;
    do
        n = read(go_fd, &go, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1)
        _exit(1);
    close(go_fd);

    PyObject *result = PyEval_EvalCode(code, globals, globals);
    int rc = 0;
    if (!result) {
        /* SystemExit ends the process here with its own status, as in
         * `python3 jailed_code`; anything else prints its traceback. */
        PyErr_Print();
        rc = 1;
    }
    Py_XDECREF(result);
    flush_stream("stdout");
    flush_stream("stderr");
    /* Skipping finalization: the process is single-use and everything it
     * wrote has been flushed. */
    _exit(rc);
}
