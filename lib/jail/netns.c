#include "netns.h"

#include <errno.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>
#include <stdio.h>
#include <string.h>

static void nl_sock_freep(struct nl_sock **sock)
{
    if (*sock)
        nl_socket_free(*sock);
}

static void nl_cache_freep(struct nl_cache **cache)
{
    if (*cache)
        nl_cache_free(*cache);
}

#define cleanup_nl_sock  __attribute__((cleanup(nl_sock_freep)))
#define cleanup_nl_cache __attribute__((cleanup(nl_cache_freep)))

/* "127.0.0.0/8 table 255 dev lo", for the error message. */
static void describe_route(struct rtnl_route *route, struct nl_cache *links, char *out, size_t size)
{
    char dst[128] = "?";
    char dev[32] = "?";
    if (rtnl_route_get_dst(route))
        nl_addr2str(rtnl_route_get_dst(route), dst, sizeof dst);
    if (rtnl_route_get_nnexthops(route) > 0) {
        int ifindex = rtnl_route_nh_get_ifindex(rtnl_route_nexthop_n(route, 0));
        if (!rtnl_link_i2name(links, ifindex, dev, sizeof dev))
            snprintf(dev, sizeof dev, "#%d", ifindex);
    }
    snprintf(out, size, "%s table %u dev %s", dst, (unsigned)rtnl_route_get_table(route), dev);
}

/* Zero routes is stricter than "nothing but loopback" on purpose: with lo up
 * the kernel adds local routes for 127.0.0.0/8 and ::1, but the sandbox leaves
 * lo down, so any route at all means this is not the namespace it made. */
int cj_netns_verify_isolated(cj_error *err)
{
    cleanup_nl_sock struct nl_sock *sock = nl_socket_alloc();
    if (!sock)
        return cj_fail(err, ENOMEM, "allocate netlink socket: %s", strerror(ENOMEM));
    int rc = nl_connect(sock, NETLINK_ROUTE);
    if (rc < 0)
        return cj_fail(err, 0, "connect NETLINK_ROUTE socket: %s", nl_geterror(rc));

    cleanup_nl_cache struct nl_cache *links = NULL;
    rc = rtnl_link_alloc_cache(sock, AF_UNSPEC, &links);
    if (rc < 0)
        return cj_fail(err, 0, "list network interfaces: %s", nl_geterror(rc));
    for (struct nl_object *obj = nl_cache_get_first(links); obj; obj = nl_cache_get_next(obj)) {
        struct rtnl_link *link = (struct rtnl_link *)obj;
        const char *name = rtnl_link_get_name(link);
        if (rtnl_link_get_ifindex(link) != 1 || !name || strcmp(name, "lo") != 0)
            return cj_fail(err, 0, "network namespace is not isolated: interface %s (index %d)",
                           name ? name : "?", rtnl_link_get_ifindex(link));
    }

    cleanup_nl_cache struct nl_cache *routes = NULL;
    rc = rtnl_route_alloc_cache(sock, AF_UNSPEC, 0, &routes);
    if (rc < 0)
        return cj_fail(err, 0, "list routes: %s", nl_geterror(rc));
    struct nl_object *first = nl_cache_get_first(routes);
    if (first) {
        char route[256];
        describe_route((struct rtnl_route *)first, links, route, sizeof route);
        return cj_fail(err, 0, "network namespace is not isolated: route %s", route);
    }
    return 0;
}
