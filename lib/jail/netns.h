/* Network namespace checks (libnl-route).
 *
 * A fresh network namespace holds only a loopback device. The sandbox's
 * set-up calls cj_netns_verify_isolated() inside its new namespace and refuses
 * to run code if anything else is there (a namespace that was not really new,
 * or a device moved in), so the network layer fails closed. */
#ifndef CODEJAIL_NETNS_H
#define CODEJAIL_NETNS_H

#include "error.h"

/* Succeeds when the calling process's network namespace has no link but "lo"
 * and no route. */
int cj_netns_verify_isolated(cj_error *err);

#endif
