#include "http_framing.h"

#include <stdbool.h>
#include <stddef.h>
#include <strings.h>

struct framing {
    unsigned lengths, codings;
    bool chunked_only;
};

static enum MHD_Result count(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    struct framing *f = cls;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
        f->lengths++;
    else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        f->codings++;
        f->chunked_only = f->chunked_only && value && strcasecmp(value, "chunked") == 0;
    }
    return MHD_YES;
}

const char *cj_http_framing_problem(struct MHD_Connection *connection)
{
    struct framing f = {0, 0, true};
    MHD_get_connection_values(connection, MHD_HEADER_KIND, count, &f);
    if (f.lengths > 0 && f.codings > 0)
        return "Request has both Content-Length and Transfer-Encoding";
    if (f.lengths > 1)
        return "Request has more than one Content-Length";
    if (f.codings > 1 || !f.chunked_only)
        return "Transfer-Encoding other than chunked";
    return NULL;
}
