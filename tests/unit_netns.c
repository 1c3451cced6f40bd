/* cj_netns_verify_isolated() in namespaces the test makes for itself: each
 * case runs in a forked child that unshares a network namespace, so the links
 * it adds and the loopback it brings up touch nothing of the host. */
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>

#include "netns.h"

/* Exit status of a child that could not make a network namespace at all. */
#define CHILD_SKIP 77

/* cmocka's assertions cannot be used in the child (a failure would unwind
 * into the child's copy of the test runner), so a child reports the first
 * failed check on stderr and exits non-zero. */
static int child_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

/* Fails the child unless the verification fails with a message that
 * contains `expected`. */
static int expect_not_isolated(const char *expected)
{
    cj_error err = {0};
    if (cj_netns_verify_isolated(&err) == 0)
        return child_fail("verify succeeded, expected an error naming '%s'", expected);
    if (!strstr(err.msg, "network namespace is not isolated: ") || !strstr(err.msg, expected))
        return child_fail("error '%s' does not name '%s'", err.msg, expected);
    return 0;
}

static int expect_isolated(const char *when)
{
    cj_error err = {0};
    if (cj_netns_verify_isolated(&err) < 0)
        return child_fail("%s: verify failed: %s", when, err.msg);
    return 0;
}

static void run_in_new_netns(int (*body)(struct nl_sock *sock))
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Without root, a user namespace of our own grants the rights over a
         * network namespace that it owns. */
        if (unshare(CLONE_NEWNET) < 0 && unshare(CLONE_NEWUSER | CLONE_NEWNET) < 0) {
            perror("unshare(CLONE_NEWNET)");
            _exit(CHILD_SKIP);
        }
        struct nl_sock *sock = nl_socket_alloc();
        if (!sock || nl_connect(sock, NETLINK_ROUTE) < 0)
            _exit(child_fail("cannot open a NETLINK_ROUTE socket"));
        int rc = body(sock);
        nl_socket_free(sock);
        _exit(rc);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == CHILD_SKIP)
        skip();
    assert_int_equal(WEXITSTATUS(status), 0);
}

static int fresh_namespace(struct nl_sock *sock)
{
    (void)sock;
    return expect_isolated("fresh namespace");
}

static void test_fresh_namespace_is_isolated(void **state)
{
    (void)state;
    run_in_new_netns(fresh_namespace);
}

static int extra_interface(struct nl_sock *sock)
{
    if (expect_isolated("before adding a veth pair"))
        return 1;
    /* veth rather than dummy: this kernel may not have the dummy driver. */
    int rc = rtnl_link_veth_add(sock, "cjtest0", "cjtest1", getpid());
    if (rc < 0)
        return child_fail("add veth pair: %s", nl_geterror(rc));
    if (expect_not_isolated("interface cjtest"))
        return 1;

    struct rtnl_link *link = rtnl_link_alloc();
    if (!link)
        return child_fail("rtnl_link_alloc failed");
    rtnl_link_set_name(link, "cjtest0");
    rc = rtnl_link_delete(sock, link);
    rtnl_link_put(link);
    if (rc < 0)
        return child_fail("delete veth pair: %s", nl_geterror(rc));
    return expect_isolated("after deleting the veth pair");
}

static void test_extra_interface_is_reported(void **state)
{
    (void)state;
    run_in_new_netns(extra_interface);
}

static int loopback_up(struct nl_sock *sock)
{
    if (expect_isolated("with lo down"))
        return 1;
    struct rtnl_link *lo = NULL;
    int rc = rtnl_link_get_kernel(sock, 0, "lo", &lo);
    if (rc < 0)
        return child_fail("get lo: %s", nl_geterror(rc));
    struct rtnl_link *change = rtnl_link_alloc();
    if (!change)
        return child_fail("rtnl_link_alloc failed");
    rtnl_link_set_flags(change, IFF_UP);
    rc = rtnl_link_change(sock, lo, change, 0);
    rtnl_link_put(change);
    rtnl_link_put(lo);
    if (rc < 0)
        return child_fail("bring lo up: %s", nl_geterror(rc));
    /* The kernel's local routes for lo, e.g. "127.0.0.0/8 table 255 dev lo". */
    return expect_not_isolated("dev lo");
}

static void test_loopback_routes_are_reported(void **state)
{
    (void)state;
    run_in_new_netns(loopback_up);
}

static void test_host_namespace_is_not_isolated(void **state)
{
    (void)state;
    struct if_nameindex *ifs = if_nameindex();
    assert_non_null(ifs);
    bool other = false;
    for (struct if_nameindex *i = ifs; i->if_index != 0; i++)
        other = other || strcmp(i->if_name, "lo") != 0;
    if_freenameindex(ifs);
    /* A CI runner without network has nothing here to find. */
    if (!other)
        skip();

    cj_error err = {0};
    assert_int_equal(cj_netns_verify_isolated(&err), -1);
    assert_non_null(strstr(err.msg, "network namespace is not isolated: interface "));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh_namespace_is_isolated),
        cmocka_unit_test(test_extra_interface_is_reported),
        cmocka_unit_test(test_loopback_routes_are_reported),
        cmocka_unit_test(test_host_namespace_is_not_isolated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
