/* The engine: runs one piece of Python in a fresh sandbox and returns what
 * happened. Used by the daemon and the CLI; thread-safe.
 *
 * cj_engine_start() starts the sandbox helper (codejail-sandbox) and learns
 * the state of each layer on this host. cj_engine_execute() has the helper
 * make a sandbox, waits until every layer is up (a sandbox that cannot set a
 * layer up reports why and runs nothing), hands it the files and limits,
 * feeds it [code, globals, python_path] on stdin, and collects stdout and
 * stderr (each capped) and the exit status, killing the whole sandbox with
 * SIGKILL when the wall-clock limit passes. A sandbox lost before the code
 * was handed to it is replaced once; code whose sandbox was killed under it
 * gets status -9, as on the wall-clock limit. */
#ifndef CODEJAIL_ENGINE_H
#define CODEJAIL_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"
#include "layers.h"
#include "exec_limits.h"
#include "lane.h"
#include "supervisor.h"

/* Outer ids of one lane when root: the inits' id and one per concurrent
 * sandbox; an engine uses CJ_ENGINE_UIDS ids from its uid_base. */
#define CJ_DEFAULT_UID_BASE 2000000000u
#define CJ_LANE_UIDS        1025u
#define CJ_ENGINE_UIDS      (2u * CJ_LANE_UIDS)

#define CJ_STDOUT_CAP_DEFAULT (8u << 20)  /* the globals the code leaves behind */
#define CJ_STDERR_CAP_DEFAULT (64u << 10) /* a traceback, or the start of a flood */

struct cj_engine_config {
    const char *helper_path;    /* NULL: codejail-sandbox beside the running program */
    const char *env_dir;        /* NULL: the build's CODEJAIL_ENV_DIR */
    bool warm;                  /* fork sandboxes from a started interpreter */
    unsigned pool_size;         /* sandboxes kept ready ahead of requests (0: none) */
    const char *preimport;      /* warm mode: modules imported once (comma-separated), in a
                                   second interpreter that serves code mentioning them
                                   or uploading files */
    uint32_t uid_base;          /* first of CJ_ENGINE_UIDS outer ids for sandboxes when
                                   root (0: default) */
    uint64_t tmp_size;          /* cap of tmp/ (0: default) */
    uint64_t upload_size;       /* cap of uploaded files together (0: default) */
    size_t stdout_cap;          /* 0: default */
    size_t stderr_cap;          /* 0: default */
    cj_layer_set disabled;      /* testing builds only */
    unsigned helper_timeout_ms; /* a helper's answer to a sandbox request (0: default) */
    cj_lane_log_fn log;         /* supervision's log lines (NULL: none) */
    void *log_ctx;
    /* Landlock below this ABI is reported failed (0: any ABI will do). */
    unsigned landlock_min_abi;
};

struct cj_layer_report {
    enum cj_layer_state state[CJ_LAYER_COUNT];
    char detail[CJ_LAYER_COUNT][96];
    bool rootful;
};

struct cj_file {
    const char *name;
    const void *data;
    size_t len;
};

struct cj_exec_request {
    const char *code; /* UTF-8 */
    size_t code_len;
    const char *globals_json; /* a JSON object in Python's dialect (NaN allowed) */
    size_t globals_len;
    const char *const *python_path;
    size_t n_python_path;
    const struct cj_file *files;
    size_t n_files;
    struct cj_limits limits;
    unsigned force_lane; /* 0: chosen by the code; n: lane n - 1 (self-check) */
};

struct cj_exec_result {
    int status;        /* exit code, or minus the signal number */
    bool timed_out;    /* killed on the wall-clock limit */
    struct cj_buf out; /* raw stdout, capped */
    struct cj_buf err; /* raw stderr, capped */
    double setup_ms;   /* spawn until every layer was up */
    double run_ms;     /* dispatch until exit */
};

struct cj_engine;

int cj_engine_start(const struct cj_engine_config *config, struct cj_engine **engine,
                    cj_error *err);
void cj_engine_stop(struct cj_engine *engine);
void cj_engine_layers(struct cj_engine *engine, struct cj_layer_report *report);
/* Lanes: 2 in warm mode with pre-imported modules (plain, pre-import), else 1. */
unsigned cj_engine_lanes(const struct cj_engine *engine);
/* Each lane's helper is watched and replaced when it dies or hangs (see
 * lane.h and supervisor.h): its name and health. */
const char *cj_engine_lane_name(const struct cj_engine *engine, unsigned lane);
void cj_engine_lane_status(struct cj_engine *engine, unsigned lane, struct cj_lane_status *status);
/* Called from the supervisor's thread after a helper was replaced. */
void cj_engine_on_restart(struct cj_engine *engine, cj_restart_fn fn, void *ctx);
/* Seconds since the supervisor's loop last went round (see supervisor.h). */
double cj_engine_heartbeat_age(struct cj_engine *engine);
/* Sandboxes ready in the pools right now (0 without a pool). */
unsigned cj_engine_pool_ready(struct cj_engine *engine);

/* Fills result (which the caller frees with cj_exec_result_free) when the
 * code ran, whatever its outcome; returns -1 when it could not be run. */
int cj_engine_execute(struct cj_engine *engine, const struct cj_exec_request *request,
                      struct cj_exec_result *result, cj_error *err);
void cj_exec_result_free(struct cj_exec_result *result);

#endif
