/* Fuzz target: each input is the text of a `payload` form field.
 *
 * cj_payload_parse must never crash, leak or read past the input (it gets an
 * exact-size copy, no terminator), and what it hands out must hold up: on
 * success the code and labels are UTF-8 (the engine and the logs rely on it),
 * the globals are one JSON object and every python_path entry is
 * python_lib.zip; on refusal the message is non-empty UTF-8 (it goes into a
 * JSON response) with a known reason.
 *
 * Built with clang and -fsanitize=fuzzer when CODEJAIL_FUZZ is on; otherwise
 * with CJ_FUZZ_REPLAY as a program that runs the corpus (files or
 * directories given as arguments) once, for ctest. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "jsonstr.h"
#include "payload.h"
#include "pyjson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what, const uint8_t *data, size_t size)
{
    if (ok)
        return;
    fprintf(stderr, "fuzz_payload: %s for input: %.*s\n", what, (int)(size > 400 ? 400 : size),
            (const char *)data);
    abort();
}

static bool utf8(const char *s, size_t len)
{
    return cj_utf8_valid(s, len, NULL);
}

static bool known_reason(const char *reason)
{
    static const char *const reasons[] = {"invalid.json", "invalid.schema", "invalid.python_path",
                                          "invalid.unsafely", "invalid.code"};
    for (size_t i = 0; i < sizeof reasons / sizeof *reasons; i++)
        if (strcmp(reason, reasons[i]) == 0)
            return true;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly `size` bytes, so that any read past the end is caught. */
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    memcpy(text, data, size);

    struct cj_payload p;
    const char *reason = NULL;
    cj_error err = {0};
    if (cj_payload_parse(text, size, &p, &reason, &err) < 0) {
        if (err.errnum == ENOMEM) {
            check(strcmp(reason, "internal") == 0, "out of memory with a client reason", data,
                  size);
        } else {
            check(err.errnum == 0 && known_reason(reason), "unknown reason", data, size);
            check(err.msg[0] && utf8(err.msg, strlen(err.msg)), "message not UTF-8", data, size);
        }
        check(!p.code && !p.globals_json && !p.python_path, "output left on refusal", data, size);
        free(text);
        return 0;
    }

    check(p.code[p.code_len] == '\0' && utf8(p.code, p.code_len), "code not UTF-8", data, size);
    struct cj_json_span g;
    cj_error inner;
    check(p.globals_json[p.globals_len] == '\0' &&
              cj_pyjson_validate(p.globals_json, p.globals_len, CJ_PAYLOAD_MAX_DEPTH, &g, &inner) ==
                  0 &&
              g.type == CJ_JSON_OBJECT && g.start == 0 && g.end == p.globals_len,
          "globals not one object", data, size);
    for (size_t i = 0; i < p.n_python_path; i++)
        check(strcmp(p.python_path[i], CJ_PYTHON_LIB_ZIP) == 0, "python_path entry", data, size);
    check(!p.slug || utf8(p.slug, strlen(p.slug)), "slug not UTF-8", data, size);
    check(!p.limit_overrides_context ||
              utf8(p.limit_overrides_context, strlen(p.limit_overrides_context)),
          "limit_overrides_context not UTF-8", data, size);
    cj_payload_free(&p);
    free(text);
    return 0;
}

#ifdef CJ_FUZZ_REPLAY
#include "fuzz_replay.h"

int main(int argc, char **argv)
{
    return cj_fuzz_replay("fuzz_payload", argc, argv);
}
#endif
