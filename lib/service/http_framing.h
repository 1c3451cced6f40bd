/* Request framing that RFC 9112 (section 6.3) says to refuse, and
 * libmicrohttpd 0.9.75 accepts: a body length given two ways
 * (Content-Length with Transfer-Encoding, which MHD reads as chunked, so a
 * request smuggled after it is answered too), two Content-Length headers
 * (MHD uses the first), a transfer coding other than chunked (MHD waits for
 * the connection's timeout). The service answers these 400 and closes. */
#ifndef CODEJAIL_HTTP_FRAMING_H
#define CODEJAIL_HTTP_FRAMING_H

#include <microhttpd.h>

/* What is wrong with the request's framing, or NULL when nothing is. */
const char *cj_http_framing_problem(struct MHD_Connection *connection);

#endif
