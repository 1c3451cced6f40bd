/* Messages between the engine (in the daemon or the CLI), the sandbox helper
 * (codejail-sandbox) and each sandbox's init process.
 *
 * All three come from one build, so messages are plain structs sent as single
 * SOCK_SEQPACKET datagrams; descriptors travel alongside with SCM_RIGHTS. The
 * receiver checks a datagram's size and type before trusting anything in it. */
#ifndef CODEJAIL_PROTOCOL_H
#define CODEJAIL_PROTOCOL_H

#include <limits.h>
#include <stdint.h>

#include "layers.h"
#include "exec_limits.h"

#define CJ_PROTOCOL_VERSION 1
#define CJ_MAX_FILES        4
#define CJ_FILE_NAME_MAX    64
#define CJ_RUN_DIR_MAX      64
#define CJ_MSG_ERROR_MAX    512

/* helper start-up: engine -> helper, once */
struct cj_helper_config {
    uint32_t version;
    uint32_t warm;            /* interpreter started once, sandboxes forked from it */
    uint32_t disabled_layers; /* cj_layer_set; testing builds only */
    uint32_t uid_base;        /* first of the outer ids used for sandboxes when root */
    uint32_t uid_count;
    uint64_t tmp_size;    /* cap of each run directory's tmp/ */
    uint64_t upload_size; /* cap of the uploaded files together */
    char env_dir[PATH_MAX];
    char preimport[512]; /* comma-separated modules imported once in warm mode */
    /* Landlock below this ABI is reported failed (0: any ABI will do). */
    uint32_t landlock_min_abi;
};

/* helper -> engine, once, after set-up */
struct cj_helper_hello {
    int32_t ok;
    uint32_t rootful;
    uint8_t state[CJ_LAYER_COUNT]; /* enum cj_layer_state */
    char detail[CJ_LAYER_COUNT][96];
    char error[CJ_MSG_ERROR_MAX];
};

/* engine -> helper: make one sandbox */
struct cj_spawn_request {
    uint32_t type; /* CJ_SPAWN */
};
#define CJ_SPAWN 0x5350574eu

/* helper -> engine; with ok, five fds follow: ctl, stdin (write end), stdout
 * and stderr (read ends), pidfd of the sandbox's init */
struct cj_spawn_reply {
    int32_t ok;
    int32_t pid;
    char run_dir[CJ_RUN_DIR_MAX]; /* "/tmp/codejail-xxxxxxxx" as the sandbox sees it */
    char error[CJ_MSG_ERROR_MAX];
};

enum cj_ctl_type {
    CJ_CTL_READY = 1, /* init -> engine: every layer is up, the runner waits on stdin */
    CJ_CTL_FAILED,    /* init -> engine: set-up or dispatch failed, error says why; the
                         code did not run */
    CJ_CTL_DISPATCH,  /* engine -> init: limits and files (one memfd per file); the
                         engine writes stdin at once, which the runner reads only
                         after init has applied the limits */
    CJ_CTL_EXITED,    /* init -> engine: the runner's wait status */
};

struct cj_ctl_msg {
    uint32_t type;
    int32_t wait_status;
    struct cj_limits limits;
    uint32_t nfiles;
    char file_names[CJ_MAX_FILES][CJ_FILE_NAME_MAX];
    char error[CJ_MSG_ERROR_MAX];
};

#endif
