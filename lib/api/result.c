#include "result.h"

#include <errno.h>

#include "jsonstr.h"
#include "pyjson.h"
#include "pyrepr.h"

static bool stdout_is_globals(const struct cj_exec_result *r)
{
    if (r->status != 0 || r->out.truncated)
        return false;
    struct cj_json_span span;
    cj_error ignored;
    return cj_pyjson_validate(r->out.data, r->out.len, CJ_RESULT_MAX_DEPTH, &span, &ignored) == 0 &&
           span.type == CJ_JSON_OBJECT;
}

static size_t shown(const struct cj_buf *b)
{
    return b->len < CJ_EMSG_STREAM_MAX ? b->len : CJ_EMSG_STREAM_MAX;
}

int cj_result_emsg(const struct cj_exec_result *r, struct cj_buf *out)
{
    if (r->status == 0)
        return cj_buf_append_str(out, "Sandboxed code produced corrupted stdout.");
    if (cj_buf_append_str(out, "Couldn't execute jailed code: stdout: ") < 0 ||
        cj_repr_bytes(out, r->out.data, shown(&r->out)) < 0 ||
        cj_buf_append_str(out, ", stderr: ") < 0 ||
        cj_repr_bytes(out, r->err.data, shown(&r->err)) < 0)
        return -1;
    return cj_buf_printf(out, " with status code: %d", r->status);
}

/* {"globals_dict": <input globals>, "emsg": <emsg>}; emsg is ASCII. */
static int render_failure(const char *globals_in, size_t globals_in_len, const struct cj_buf *emsg,
                          struct cj_buf *out, cj_error *err)
{
    int rc = cj_buf_append_str(out, "{\"globals_dict\": ");
    rc |= cj_buf_append(out, globals_in, globals_in_len);
    rc |= cj_buf_append_str(out, ", \"emsg\": ");
    rc |= cj_json_append_string(out, emsg->data, emsg->len);
    rc |= cj_buf_append_str(out, "}");
    return rc ? cj_fail(err, ENOMEM, "render result") : 0;
}

int cj_result_render(const struct cj_exec_result *r, const char *globals_in, size_t globals_in_len,
                     struct cj_buf *out, bool *succeeded, cj_error *err)
{
    *succeeded = stdout_is_globals(r);
    if (!*succeeded) {
        cleanup_buf struct cj_buf emsg;
        cj_buf_init(&emsg, 0);
        if (cj_result_emsg(r, &emsg) < 0)
            return cj_fail(err, ENOMEM, "render result");
        return render_failure(globals_in, globals_in_len, &emsg, out, err);
    }
    if (cj_buf_append_str(out, "{\"globals_dict\": ") < 0 ||
        cj_buf_append(out, r->out.data, r->out.len) < 0 || cj_buf_append_str(out, "}") < 0)
        return cj_fail(err, ENOMEM, "render result");
    return 0;
}

int cj_result_render_not_run(const char *globals_in, size_t globals_in_len, struct cj_buf *out,
                             cj_error *err)
{
    cleanup_buf struct cj_buf emsg;
    cj_buf_init(&emsg, 0);
    if (cj_buf_append_str(&emsg, CJ_EMSG_NOT_RUN) < 0)
        return cj_fail(err, ENOMEM, "render result");
    return render_failure(globals_in, globals_in_len, &emsg, out, err);
}
