/* The embedded interpreter (libpython3.11).
 *
 * The sandbox never executes a program: the interpreter lives in the helper
 * and runs in the sandboxed process itself, so execve can be refused outright
 * by every layer. In warm mode the helper initializes it once (and imports
 * the configured modules) before forking sandboxes; in cold mode each runner
 * initializes it after every layer is in place. */
#ifndef CODEJAIL_PYTHON_HOST_H
#define CODEJAIL_PYTHON_HOST_H

#include "error.h"

/* Initializes the interpreter the way the sandbox runs it: isolated from the
 * environment, no bytecode writing, site enabled (no .pth files exist in the
 * sandbox environment), UTF-8 mode, and the usual signal set-up so that a
 * file too large raises OSError rather than killing the process. Then
 * imports each module in `preimport` (comma-separated, may be empty). */
int cj_python_init(const char *preimport, cj_error *err);

/* Sets os.environ[name] (and so the process environment) in the running
 * interpreter. */
int cj_python_setenv(const char *name, const char *value, cj_error *err);

/* Around fork() of a process holding an initialized interpreter. */
void cj_python_before_fork(void);
void cj_python_after_fork_parent(void);

/* The runner script (sandbox/jailed_code.py), embedded at build time; each
 * sandbox's run directory gets a copy named jailed_code. */
extern const char cj_jailed_code[];
extern const size_t cj_jailed_code_len;

/* Warm mode: compiles the runner once, in the helper, so that each sandbox
 * only gives it its run directory's file name (compiling it is about 1 ms
 * of CPU that every sandbox would otherwise spend). */
int cj_python_compile_runner(cj_error *err);

/* Takes the runner compiled ahead (warm mode, after fork) or compiles
 * run_dir/jailed_code (cold mode, after cj_python_init), either with
 * run_dir/jailed_code as its file name; waits for a byte on go_fd (the
 * request's limits are then in place), runs it as __main__ and exits with
 * its status: 0, 1 on an uncaught exception, or the code's own SystemExit. */
_Noreturn void cj_python_run(const char *run_dir, int warm, int go_fd);

#endif
