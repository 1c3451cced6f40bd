/* One datagram plus descriptors over a Unix socket (SCM_RIGHTS). */
#ifndef CODEJAIL_FDPASS_H
#define CODEJAIL_FDPASS_H

#include <stddef.h>
#include <sys/types.h>

#define CJ_FDPASS_MAX 8

/* Sends len bytes and nfds descriptors as one message; retries on EINTR. */
ssize_t cj_send_msg(int sock, const void *buf, size_t len, const int *fds, size_t nfds);

/* Receives one message into buf; stores up to *nfds received descriptors
 * (close-on-exec) in fds and sets *nfds to their number. A message that was
 * cut short, or carried more descriptors than asked for, fails with EBADMSG
 * (and whatever descriptors did arrive are closed). Returns the byte count,
 * 0 at end of stream. */
ssize_t cj_recv_msg(int sock, void *buf, size_t len, int *fds, size_t *nfds);

#endif
