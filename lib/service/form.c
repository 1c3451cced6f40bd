#include "form.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cleanup.h"
#include "jsonstr.h"

#define PAYLOAD_FIELD "payload"
#define ZIP_FIELD     "python_lib.zip"
/* Room for one multipart part's headers: real clients send a few hundred
 * bytes; anything larger is malformed here. */
#define PP_BUFFER      16384
#define OTHER_NAME_MAX 256
#define KEY_MAX        64 /* longer urlencoded names are kept cut: none of them matters */
/* Django's DATA_UPLOAD_MAX_NUMBER_FILES: what the reference takes. */
#define MAX_FILES 100

enum body_kind {
    BODY_MULTIPART,   /* MHD's post processor parses it */
    BODY_URLENCODED,  /* parsed here, see feed_urlencoded() */
    BODY_NOT_FORM,    /* another media type: fine only when empty (Django ignores it then) */
    BODY_NO_BOUNDARY, /* multipart without a usable boundary */
};

enum part { PART_SKIP, PART_PAYLOAD, PART_ZIP };

/* Where an urlencoded body is: within a name or a value, and how far into a
 * %XX escape. */
struct urlencoded {
    bool in_value;
    bool pair_started;
    char key[KEY_MAX];
    size_t key_len;
    unsigned pct; /* bytes of a %XX escape seen so far (0, 1 or 2) */
    char pct_raw[2];
};

struct cj_form {
    struct MHD_PostProcessor *pp; /* multipart; NULL once the body is only counted */
    enum body_kind kind;
    struct urlencoded url;
    bool parsing;     /* false once the body is refused: the rest is only counted */
    char *media_type; /* BODY_NOT_FORM: the Content-Type, for the message */
    struct cj_form_limits limits;
    size_t body_bytes;
    unsigned n_fields;
    unsigned n_files;
    enum part part;
    struct cj_buf payload;
    bool have_payload;
    struct cj_buf zip;
    bool have_zip;
    char *other_file;
    bool too_large;
    bool refused; /* a refusal is waiting for the end of the body */
    struct cj_form_refusal refusal;
};

static int refuse(struct cj_form_refusal *r, unsigned status, const char *reason, const char *fmt,
                  ...) __attribute__((format(printf, 4, 5)));

static int refuse(struct cj_form_refusal *r, unsigned status, const char *reason, const char *fmt,
                  ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err.msg, sizeof r->err.msg, fmt, ap);
    va_end(ap);
    r->err.errnum = 0;
    r->status = status;
    r->reason = reason;
    return -1;
}

static int refuse_too_large(struct cj_form *f, struct cj_form_refusal *r)
{
    return refuse(r, 413, "too_large", "Request body too large (limit %zu bytes)",
                  f->limits.max_body_bytes);
}

static int refuse_memory(struct cj_form_refusal *r)
{
    return refuse(r, 500, "failed.memory", "Out of memory");
}

/* Remembers the first problem and stops parsing; the body is still counted. */
static enum MHD_Result defer(struct cj_form *f, unsigned status, const char *reason,
                             const char *message)
{
    if (!f->refused) {
        f->refused = true;
        refuse(&f->refusal, status, reason, "%s", message);
    }
    return MHD_NO;
}

static bool is_name(const char *key, size_t key_len, const char *name)
{
    return key_len == strlen(name) && memcmp(key, name, key_len) == 0;
}

/* Sets the part the next chunks belong to; -1 when out of memory. Names are
 * compared with their length: a decoded urlencoded name may hold a NUL. */
static int start_part(struct cj_form *f, const char *key, size_t key_len, const char *filename)
{
    f->part = PART_SKIP;
    if (!key)
        return 0;
    if (!filename) {
        if (is_name(key, key_len, PAYLOAD_FIELD)) {
            /* Django's QueryDict: the last value of a repeated field wins. */
            cj_buf_free(&f->payload);
            f->have_payload = true;
            f->part = PART_PAYLOAD;
        }
        return 0;
    }
    if (filename[0] == '\0')
        return 0;
    if (is_name(key, key_len, ZIP_FIELD)) {
        cj_buf_free(&f->zip);
        f->have_zip = true;
        f->part = PART_ZIP;
        return 0;
    }
    if (!f->other_file && !(f->other_file = strndup(key, OTHER_NAME_MAX)))
        return -1;
    return 0;
}

static enum MHD_Result field_start(struct cj_form *f, const char *key, size_t key_len,
                                   const char *filename)
{
    bool is_file = filename != NULL;
    unsigned limit = is_file ? MAX_FILES : f->limits.max_fields;
    if (++*(is_file ? &f->n_files : &f->n_fields) > limit) {
        char message[64];
        snprintf(message, sizeof message, "Too many %s (limit %u)",
                 is_file ? "uploaded files" : "form fields", limit);
        return defer(f, 400, is_file ? "invalid.too_many_files" : "invalid.too_many_fields",
                     message);
    }
    if (start_part(f, key, key_len, filename) < 0)
        return defer(f, 500, "failed.memory", "Out of memory");
    return MHD_YES;
}

static enum MHD_Result field_data(struct cj_form *f, const char *data, size_t size)
{
    struct cj_buf *into = f->part == PART_PAYLOAD ? &f->payload
                          : f->part == PART_ZIP   ? &f->zip
                                                  : NULL;
    if (into && size > 0 && cj_buf_append(into, data, size) < 0)
        return defer(f, 500, "failed.memory", "Out of memory");
    return MHD_YES;
}

static enum MHD_Result on_field(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *filename, const char *content_type,
                                const char *transfer_encoding, const char *data, uint64_t off,
                                size_t size)
{
    (void)kind, (void)content_type, (void)transfer_encoding;
    struct cj_form *f = cls;
    if (off == 0 && field_start(f, key, key ? strlen(key) : 0, filename) != MHD_YES)
        return MHD_NO;
    return field_data(f, data, size);
}

/* application/x-www-form-urlencoded exactly as Python's parse_qsl (which
 * Django uses) reads it: pairs split on '&' (empty ones skipped), name and
 * value split on the first '=' (a pair without one has an empty value), then
 * '+' becomes a space and %XX a byte, where a '%' without two hex digits
 * stays as it is. MHD's own parser differs at the edges (an empty name
 * aborts the body, a trailing name without '=' is lost), hence this. */
static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decoded bytes go to the name, or to the field the name selected. */
static enum MHD_Result url_emit(struct cj_form *f, const char *data, size_t len)
{
    struct urlencoded *u = &f->url;
    if (u->in_value)
        return field_data(f, data, len);
    size_t room = KEY_MAX - u->key_len;
    /* A cut name is longer than any name the API uses, so it cannot match. */
    memcpy(u->key + u->key_len, data, len < room ? len : room);
    u->key_len += len < room ? len : room;
    return MHD_YES;
}

/* An escape that did not complete is literal text. */
static enum MHD_Result url_flush_pct(struct cj_form *f)
{
    struct urlencoded *u = &f->url;
    char raw[3] = {'%', u->pct_raw[0], u->pct_raw[1]};
    size_t n = u->pct;
    u->pct = 0;
    return n ? url_emit(f, raw, n) : MHD_YES;
}

static enum MHD_Result url_end_name(struct cj_form *f)
{
    struct urlencoded *u = &f->url;
    if (url_flush_pct(f) != MHD_YES)
        return MHD_NO;
    u->in_value = true;
    return field_start(f, u->key, u->key_len, NULL);
}

static enum MHD_Result url_end_pair(struct cj_form *f)
{
    struct urlencoded *u = &f->url;
    if (u->pair_started && !u->in_value && url_end_name(f) != MHD_YES)
        return MHD_NO;
    if (url_flush_pct(f) != MHD_YES)
        return MHD_NO;
    *u = (struct urlencoded){0};
    f->part = PART_SKIP;
    return MHD_YES;
}

static enum MHD_Result feed_urlencoded(struct cj_form *f, const char *data, size_t len)
{
    struct urlencoded *u = &f->url;
    size_t i = 0;
    while (i < len) {
        char c = data[i];
        if (u->pct > 0 && c != '&' && !(c == '=' && !u->in_value)) {
            if (hex_value(c) < 0) {
                if (url_flush_pct(f) != MHD_YES)
                    return MHD_NO;
                continue; /* c itself is read afresh */
            }
            u->pct_raw[u->pct - 1] = c;
            if (++u->pct == 3) {
                char byte = (char)(hex_value(u->pct_raw[0]) << 4 | hex_value(u->pct_raw[1]));
                u->pct = 0;
                if (url_emit(f, &byte, 1) != MHD_YES)
                    return MHD_NO;
            }
            i++;
            continue;
        }
        enum MHD_Result rc = MHD_YES;
        size_t run = i;
        while (run < len && data[run] != '&' && data[run] != '%' && data[run] != '+' &&
               !(data[run] == '=' && !u->in_value))
            run++;
        if (run > i) {
            u->pair_started = true;
            rc = url_emit(f, data + i, run - i);
            i = run;
        } else if (c == '&') {
            rc = url_end_pair(f);
            i++;
        } else {
            u->pair_started = true;
            if (c == '=')
                rc = url_end_name(f);
            else if (c == '+')
                rc = url_emit(f, " ", 1);
            else
                u->pct = 1;
            i++;
        }
        if (rc != MHD_YES)
            return MHD_NO;
    }
    return MHD_YES;
}

static bool has_prefix_caseless(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

int cj_form_begin(struct MHD_Connection *connection, const struct cj_form_limits *limits,
                  struct cj_form **form, struct cj_form_refusal *refusal)
{
    cleanup_free struct cj_form *f = calloc(1, sizeof *f);
    if (!f)
        return refuse_memory(refusal);
    f->limits = *limits;
    cj_buf_init(&f->payload, limits->max_body_bytes);
    cj_buf_init(&f->zip, limits->max_body_bytes);

    const char *length =
        MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length) {
        errno = 0;
        char *end;
        unsigned long long declared = strtoull(length, &end, 10);
        /* A malformed length never gets here: MHD answers 400 itself. */
        if (end != length && (errno == ERANGE || declared > limits->max_body_bytes))
            return refuse_too_large(f, refusal);
    }

    const char *type =
        MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    f->parsing = true;
    if (type && has_prefix_caseless(type, MHD_HTTP_POST_ENCODING_FORM_URLENCODED)) {
        f->kind = BODY_URLENCODED;
    } else if (type && has_prefix_caseless(type, MHD_HTTP_POST_ENCODING_MULTIPART_FORMDATA)) {
        f->kind = BODY_MULTIPART;
        /* NULL here means no usable boundary (or no memory, which the
         * answer for a body it cannot read covers as well). */
        f->pp = MHD_create_post_processor(connection, PP_BUFFER, on_field, f);
        if (!f->pp)
            f->kind = BODY_NO_BOUNDARY;
    } else {
        f->kind = BODY_NOT_FORM;
        f->media_type = strndup(type ? type : "", OTHER_NAME_MAX);
        if (!f->media_type)
            return refuse_memory(refusal);
    }
    *form = cj_steal_ptr(f);
    return 0;
}

static void stop_parsing(struct cj_form *f)
{
    f->parsing = false;
    if (f->pp) {
        /* Its verdict no longer matters: this body is refused whatever it holds. */
        (void)MHD_destroy_post_processor(f->pp);
        f->pp = NULL;
    }
}

void cj_form_abandon(struct cj_form *f)
{
    stop_parsing(f);
    cj_buf_free(&f->payload);
    cj_buf_free(&f->zip);
}

void cj_form_feed(struct cj_form *f, const char *data, size_t len)
{
    if (f->too_large)
        return;
    if (len > f->limits.max_body_bytes - f->body_bytes) {
        /* MHD can answer only before or after the body, so the rest is
         * dropped unread (the connection deadline bounds how long that may
         * take), and what was kept goes now. */
        f->too_large = true;
        cj_form_abandon(f);
        return;
    }
    f->body_bytes += len;
    if (!f->parsing || len == 0)
        return;
    enum MHD_Result rc = f->kind == BODY_URLENCODED ? feed_urlencoded(f, data, len)
                         : f->pp                    ? MHD_post_process(f->pp, data, len)
                                                    : MHD_YES;
    if (rc != MHD_YES) {
        defer(f, 400, "invalid.body", "Malformed form body");
        stop_parsing(f);
    }
}

int cj_form_finish(struct cj_form *f, struct cj_form_refusal *refusal)
{
    if (f->parsing && f->kind == BODY_URLENCODED)
        (void)url_end_pair(f); /* a refusal it makes is recorded in f */
    if (f->pp) {
        /* Whether the multipart body ended where it should. */
        enum MHD_Result complete = MHD_destroy_post_processor(f->pp);
        f->pp = NULL;
        if (complete != MHD_YES && f->body_bytes > 0)
            defer(f, 400, "invalid.body", "Malformed form body");
    }
    if (f->too_large)
        return refuse_too_large(f, refusal);
    if (f->refused) {
        *refusal = f->refusal;
        return -1;
    }
    if (f->body_bytes > 0 && f->kind == BODY_NO_BOUNDARY)
        return refuse(refusal, 400, "invalid.body",
                      "Malformed form body: multipart/form-data without a boundary");
    if (f->body_bytes > 0 && f->kind == BODY_NOT_FORM)
        return refuse(refusal, 415, "invalid.media_type",
                      "Unsupported media type \"%s\" in request.", f->media_type);
    if (f->have_payload &&
        !cj_utf8_valid(f->payload.data ? f->payload.data : "", f->payload.len, NULL)) {
        struct cj_buf clean;
        cj_buf_init(&clean, 0);
        if (cj_utf8_replace(&clean, f->payload.data, f->payload.len) < 0) {
            cj_buf_free(&clean);
            return refuse_memory(refusal);
        }
        cj_buf_free(&f->payload);
        f->payload = clean;
    }
    return 0;
}

const char *cj_form_payload(const struct cj_form *f, size_t *len)
{
    if (!f->have_payload)
        return NULL;
    *len = f->payload.len;
    return f->payload.data ? f->payload.data : "";
}

void cj_form_drop_payload(struct cj_form *f)
{
    cj_buf_free(&f->payload);
}

bool cj_form_zip(const struct cj_form *f, const char **data, size_t *len)
{
    if (!f->have_zip)
        return false;
    *data = f->zip.data ? f->zip.data : "";
    *len = f->zip.len;
    return true;
}

const char *cj_form_other_file(const struct cj_form *f)
{
    return f->other_file;
}

size_t cj_form_body_bytes(const struct cj_form *f)
{
    return f->body_bytes;
}

void cj_form_free(struct cj_form *f)
{
    if (!f)
        return;
    stop_parsing(f);
    cj_buf_free(&f->payload);
    cj_buf_free(&f->zip);
    free(f->other_file);
    free(f->media_type);
    free(f);
}

/* Length of the well-formed prefix of the sequence at s (Unicode table 3-7):
 * 0 for a byte that cannot start one, otherwise how many bytes belong to it,
 * with *complete telling whether they form a whole character. */
static size_t utf8_subpart(const unsigned char *s, size_t len, bool *complete)
{
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf; /* range of the second byte */
    if (c < 0x80) {
        *complete = true;
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        need = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    } else {
        *complete = false;
        return 0;
    }
    size_t have = 1;
    while (have < need && have < len) {
        unsigned char b = s[have];
        bool ok = have == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xbf);
        if (!ok)
            break;
        have++;
    }
    *complete = have == need;
    return have;
}

int cj_utf8_replace(struct cj_buf *out, const char *text, size_t len)
{
    static const char replacement[] = "\xef\xbf\xbd";
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0, run = 0;
    while (i < len) {
        bool complete;
        size_t n = utf8_subpart(s + i, len - i, &complete);
        if (complete) {
            i += n;
            continue;
        }
        if (cj_buf_append(out, text + run, i - run) < 0 ||
            cj_buf_append(out, replacement, sizeof replacement - 1) < 0)
            return -1;
        i += n ? n : 1;
        run = i;
    }
    return cj_buf_append(out, text + run, len - run);
}
