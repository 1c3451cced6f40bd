/* The sandbox helper (codejail-sandbox): the one long-lived process that
 * makes sandboxes for an engine.
 *
 * It reads a cj_helper_config from its socket (fd 3), answers with a
 * cj_helper_hello naming the state of each layer on this host, and then
 * makes one sandbox per cj_spawn_request, answering with a cj_spawn_reply
 * and the sandbox's descriptors. It reaps the sandboxes' init processes and
 * removes what each left behind (cgroups, a host run directory). When the
 * engine closes the socket it kills what is left and exits.
 *
 * Each sandbox is born in its own cgroups. Where a limit is in a cgroup v1
 * hierarchy, a launcher forked from the helper ahead of time moves into the
 * next sandbox's groups, clones it there, and stays as its parent; the
 * helper itself never joins a sandbox's group.
 *
 * It first moves into a mount namespace whose root is the sandbox template,
 * which each sandbox's mount namespace then starts as a copy of. In warm mode
 * it also initializes the interpreter there and imports the configured
 * modules, so that each sandbox is forked from a ready interpreter; in cold
 * mode every sandbox starts its own. */
#ifndef CODEJAIL_ZYGOTE_H
#define CODEJAIL_ZYGOTE_H

/* Serves the engine on socket fd; returns the process exit status. */
int cj_zygote_main(int fd);

#endif
