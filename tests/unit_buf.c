#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "buf.h"

static void test_append(void **state)
{
    (void)state;
    cleanup_buf struct cj_buf b;
    cj_buf_init(&b, 0);
    assert_int_equal(cj_buf_append(&b, "ab\0c", 4), 0);
    assert_int_equal(cj_buf_append_str(&b, "de"), 0);
    assert_int_equal(b.len, 6);
    assert_memory_equal(b.data, "ab\0cde", 7); /* with the terminator */
    assert_false(b.truncated);
}

static void test_empty_append_terminates(void **state)
{
    (void)state;
    cleanup_buf struct cj_buf b;
    cj_buf_init(&b, 0);
    assert_int_equal(cj_buf_append(&b, NULL, 0), 0);
    assert_non_null(b.data);
    assert_string_equal(b.data, "");
}

/* Many small appends: content intact, allocation growing geometrically. */
static void test_growth(void **state)
{
    (void)state;
    cleanup_buf struct cj_buf b;
    cj_buf_init(&b, 0);
    size_t reallocs = 0, alloc = 0;
    for (unsigned i = 0; i < 100000; i++) {
        char c = (char)('a' + i % 26);
        assert_int_equal(cj_buf_append(&b, &c, 1), 0);
        if (b.alloc != alloc) {
            reallocs++;
            alloc = b.alloc;
        }
    }
    assert_int_equal(b.len, 100000);
    assert_true(b.alloc > b.len);
    assert_true(reallocs < 20);
    for (unsigned i = 0; i < 100000; i++)
        assert_int_equal(b.data[i], 'a' + i % 26);
    assert_int_equal(b.data[b.len], '\0');
}

static void test_cap(void **state)
{
    (void)state;
    cleanup_buf struct cj_buf b;
    cj_buf_init(&b, 10);
    assert_int_equal(cj_buf_append_str(&b, "0123456"), 0);
    assert_false(b.truncated);
    assert_int_equal(cj_buf_append_str(&b, "789abc"), 0);
    assert_true(b.truncated);
    assert_string_equal(b.data, "0123456789");
    assert_int_equal(cj_buf_append_str(&b, "more"), 0);
    assert_int_equal(cj_buf_printf(&b, "%d", 42), 0);
    assert_string_equal(b.data, "0123456789");
    /* Doubling stops at the cap plus the terminator. */
    assert_true(b.alloc <= 11);
}

static void test_exact_cap_is_not_truncation(void **state)
{
    (void)state;
    cleanup_buf struct cj_buf b;
    cj_buf_init(&b, 4);
    assert_int_equal(cj_buf_append_str(&b, "abcd"), 0);
    assert_false(b.truncated);
    assert_int_equal(cj_buf_append(&b, "", 0), 0);
    assert_false(b.truncated);
    assert_int_equal(cj_buf_append_str(&b, "e"), 0);
    assert_true(b.truncated);
}

static void test_printf(void **state)
{
    (void)state;
    cleanup_buf struct cj_buf b;
    cj_buf_init(&b, 0);
    assert_int_equal(cj_buf_printf(&b, "%s=%d;", "x", 17), 0);
    /* Longer than any stack buffer printf might use. */
    char big[5000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(cj_buf_printf(&b, "[%s]", big), 0);
    assert_int_equal(b.len, 5 + 5001);
    assert_memory_equal(b.data, "x=17;[zz", 8);
    assert_string_equal(b.data + b.len - 3, "zz]");
    assert_false(b.truncated);
}

static void test_printf_cap(void **state)
{
    (void)state;
    cleanup_buf struct cj_buf b;
    cj_buf_init(&b, 300);
    char big[1000];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(cj_buf_printf(&b, "<%s>", big), 0);
    assert_true(b.truncated);
    assert_int_equal(b.len, 300);
    assert_int_equal(strlen(b.data), 300);
    assert_int_equal(b.data[0], '<');
    assert_int_equal(b.data[299], 'q');
}

static void test_steal(void **state)
{
    (void)state;
    cleanup_buf struct cj_buf b;
    cj_buf_init(&b, 100);
    assert_int_equal(cj_buf_append_str(&b, "hello"), 0);
    size_t len;
    char *s = cj_buf_steal(&b, &len);
    assert_string_equal(s, "hello");
    assert_int_equal(len, 5);
    free(s);
    /* Reset, cap kept, reusable. */
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 100);
    assert_int_equal(cj_buf_append_str(&b, "again"), 0);
    assert_string_equal(b.data, "again");
}

static void test_steal_empty(void **state)
{
    (void)state;
    cleanup_buf struct cj_buf b;
    cj_buf_init(&b, 0);
    size_t len = 99;
    char *s = cj_buf_steal(&b, &len);
    assert_non_null(s);
    assert_string_equal(s, "");
    assert_int_equal(len, 0);
    free(s);
    s = cj_buf_steal(&b, NULL);
    assert_string_equal(s, "");
    free(s);
}

static void test_free_resets(void **state)
{
    (void)state;
    struct cj_buf b;
    cj_buf_init(&b, 3);
    assert_int_equal(cj_buf_append_str(&b, "abcdef"), 0);
    assert_true(b.truncated);
    cj_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_false(b.truncated);
    assert_int_equal(b.cap, 3);
    cj_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append),
        cmocka_unit_test(test_empty_append_terminates),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_cap),
        cmocka_unit_test(test_exact_cap_is_not_truncation),
        cmocka_unit_test(test_printf),
        cmocka_unit_test(test_printf_cap),
        cmocka_unit_test(test_steal),
        cmocka_unit_test(test_steal_empty),
        cmocka_unit_test(test_free_resets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
