/* The environment check: which modules import in the real sandbox.
 *
 * Every request the LMS sends starts with a prolog that imports random2 and
 * six and defines lazy modules for calc, eia, chem and verifiers; a sandbox
 * environment without them fails every course. The check imports each module
 * of the Open edX set, and any the configuration names, in one execution
 * through the engine (a real sandbox, generous limits of its own), and
 * reports each module. A module that the configuration requires and that
 * does not import fails the check. */
#ifndef CODEJAIL_ENVCHECK_H
#define CODEJAIL_ENVCHECK_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "engine.h"

/* What the LMS's prolog and lazy modules load, and the rest of Open edX's
 * sandbox requirements (codejail-service requirements/sandbox/base.in). */
#define CJ_OPENEDX_MODULES                                                                         \
    "random2,six,numpy,scipy,sympy,networkx,matplotlib,lxml.html.clean,nltk,cryptography,"         \
    "markupsafe,pyparsing,calc,symmath,chem.chemcalc,chem.chemtools,chem.miller,eia,"              \
    "loncapa,verifiers.draganddrop"

#define CJ_ENVCHECK_MAX    48
#define CJ_MODULE_NAME_MAX 64

struct cj_module_state {
    char name[CJ_MODULE_NAME_MAX];
    bool imports;
    bool required;
    char detail[128]; /* the import's error, when it failed */
};

struct cj_env_report {
    struct cj_module_state modules[CJ_ENVCHECK_MAX];
    size_t n_modules;
    bool ok;         /* every required module imports */
    char error[256]; /* the check itself could not run */
};

/* Checks CJ_OPENEDX_MODULES and `required` (comma-separated module names, may
 * be NULL or empty), of which those in `required` must import. */
void cj_envcheck_run(struct cj_engine *engine, const char *required, struct cj_env_report *report);

/* "modules": {...} members for the self-check's JSON, and a table for text. */
int cj_envcheck_to_json(const struct cj_env_report *report, struct cj_buf *out);
int cj_envcheck_to_text(const struct cj_env_report *report, struct cj_buf *out);

#endif
