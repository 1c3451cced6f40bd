/* Corpus replay for the fuzz targets in builds without libFuzzer (gcc):
 * cj_fuzz_replay() feeds every file named on the command line, or found in a
 * directory named there, to LLVMFuzzerTestOneInput once. It fails when a file
 * cannot be read or nothing was replayed. */
#ifndef CODEJAIL_FUZZ_REPLAY_H
#define CODEJAIL_FUZZ_REPLAY_H

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "cleanup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int cj_fuzz_replay_file(const char *name, const char *path)
{
    cleanup_file FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: %s: %s\n", name, path, strerror(errno));
        return -1;
    }
    cleanup_buf struct cj_buf data;
    cj_buf_init(&data, 0);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (cj_buf_append(&data, chunk, n) < 0)
            return -1;
    }
    if (ferror(f))
        return -1;
    LLVMFuzzerTestOneInput((const uint8_t *)(data.data ? data.data : ""), data.len);
    return 0;
}

static int cj_fuzz_replay(const char *name, int argc, char **argv)
{
    unsigned inputs = 0, failed = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) < 0 || !S_ISDIR(st.st_mode)) {
            failed += cj_fuzz_replay_file(name, argv[i]) < 0;
            inputs++;
            continue;
        }
        cleanup_dir DIR *dir = opendir(argv[i]);
        if (!dir) {
            fprintf(stderr, "%s: %s: %s\n", name, argv[i], strerror(errno));
            failed++;
            continue;
        }
        for (struct dirent *e; (e = readdir(dir));) {
            if (e->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
            failed += cj_fuzz_replay_file(name, path) < 0;
            inputs++;
        }
    }
    printf("%s: %u inputs replayed, %u unreadable\n", name, inputs, failed);
    return failed || inputs == 0 ? 1 : 0;
}

#endif
