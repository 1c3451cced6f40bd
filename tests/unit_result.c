/* The API answer for an execution: success shape, emsg shape and text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "result.h"

static void make_result(struct cj_exec_result *r, int status, const char *out, const char *err)
{
    memset(r, 0, sizeof *r);
    cj_buf_init(&r->out, 0);
    cj_buf_init(&r->err, 0);
    r->status = status;
    assert_int_equal(cj_buf_append_str(&r->out, out), 0);
    assert_int_equal(cj_buf_append_str(&r->err, err), 0);
}

static void render(const struct cj_exec_result *r, const char *globals_in, const char *expected,
                   bool expect_success)
{
    struct cj_buf out;
    cj_buf_init(&out, 0);
    bool succeeded;
    cj_error err = {0};
    assert_int_equal(cj_result_render(r, globals_in, strlen(globals_in), &out, &succeeded, &err),
                     0);
    assert_string_equal(out.data, expected);
    assert_int_equal(succeeded, expect_success);
    cj_buf_free(&out);
}

static void test_success_carries_stdout_verbatim(void **state)
{
    (void)state;
    struct cj_exec_result r;
    make_result(&r, 0, "{\"out\": NaN, \"x\": [1, -Infinity]}", "");
    render(&r, "{\"in\": NaN}", "{\"globals_dict\": {\"out\": NaN, \"x\": [1, -Infinity]}}", true);
    cj_exec_result_free(&r);
}

static void test_failure_keeps_input_globals_and_reprs_streams(void **state)
{
    (void)state;
    struct cj_exec_result r;
    make_result(&r, 1, "", "Traceback\n  File \"<string>\"\nValueError: it's\n");
    /* Python's repr of bytes: with both quote kinds inside, single quotes
     * and \' (repr(b'...it\'s "x"...')), then escaped into the JSON string. */
    render(&r, "{\"a\": 1}",
           "{\"globals_dict\": {\"a\": 1}, \"emsg\": \"Couldn't execute jailed code: stdout: b'', "
           "stderr: b'Traceback\\\\n  File \\\"<string>\\\"\\\\nValueError: it\\\\'s\\\\n' "
           "with status code: 1\"}",
           false);
    cj_exec_result_free(&r);
}

static void test_signal_status_is_negative(void **state)
{
    (void)state;
    struct cj_exec_result r;
    make_result(&r, -9, "", "");
    struct cj_buf emsg;
    cj_buf_init(&emsg, 0);
    assert_int_equal(cj_result_emsg(&r, &emsg), 0);
    assert_string_equal(
        emsg.data, "Couldn't execute jailed code: stdout: b'', stderr: b'' with status code: -9");
    cj_buf_free(&emsg);
    cj_exec_result_free(&r);
}

static void test_corrupted_stdout(void **state)
{
    (void)state;
    static const char *const corrupt[] = {"garbage{}", "", "[1, 2]", "{\"a\": 1", "{} {}"};
    for (size_t i = 0; i < sizeof corrupt / sizeof corrupt[0]; i++) {
        struct cj_exec_result r;
        make_result(&r, 0, corrupt[i], "");
        render(&r, "{}",
               "{\"globals_dict\": {}, \"emsg\": \"Sandboxed code produced corrupted stdout.\"}",
               false);
        cj_exec_result_free(&r);
    }
}

static void test_emsg_streams_are_cut(void **state)
{
    (void)state;
    struct cj_exec_result r;
    make_result(&r, 2, "", "");
    for (unsigned i = 0; i < 3 * CJ_EMSG_STREAM_MAX / 2; i++)
        assert_int_equal(cj_buf_append(&r.err, "e", 1) | cj_buf_append_str(&r.err, "x"), 0);
    struct cj_buf emsg;
    cj_buf_init(&emsg, 0);
    assert_int_equal(cj_result_emsg(&r, &emsg), 0);
    assert_true(emsg.len < CJ_EMSG_STREAM_MAX + 200);
    cj_buf_free(&emsg);
    cj_exec_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_success_carries_stdout_verbatim),
        cmocka_unit_test(test_failure_keeps_input_globals_and_reprs_streams),
        cmocka_unit_test(test_signal_status_is_negative),
        cmocka_unit_test(test_corrupted_stdout),
        cmocka_unit_test(test_emsg_streams_are_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
