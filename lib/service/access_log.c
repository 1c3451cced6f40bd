#include "access_log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "form.h"
#include "jsonstr.h"

static int log_fd = 2;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void cj_log_set_fd(int fd)
{
    log_fd = fd;
}

static void check(struct cj_log_line *line, int rc)
{
    if (rc < 0)
        line->failed = true;
}

/* A string as JSON, cut at max bytes; bad UTF-8 (including a sequence the
 * cut split) becomes U+FFFD. */
static int append_string(struct cj_buf *out, const char *value, size_t len, size_t max)
{
    bool cut = len > max;
    if (cut)
        len = max;
    if (cj_utf8_valid(value, len, NULL) && !cut)
        return cj_json_append_string(out, value, len);
    cleanup_buf struct cj_buf clean;
    cj_buf_init(&clean, 0);
    if (cj_utf8_replace(&clean, value, len) < 0 || (cut && cj_buf_append_str(&clean, "...") < 0))
        return -1;
    return cj_json_append_string(out, clean.data, clean.len);
}

static void key(struct cj_log_line *line, const char *name)
{
    check(line, cj_buf_printf(&line->buf, ", \"%s\": ", name));
}

void cj_log_begin(struct cj_log_line *line, const char *level, const char *event)
{
    cj_buf_init(&line->buf, 0);
    line->failed = false;
    struct timespec now = {0};
    struct tm tm;
    char stamp[32] = "1970-01-01T00:00:00";
    if (clock_gettime(CLOCK_REALTIME, &now) == 0 && gmtime_r(&now.tv_sec, &tm))
        strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    check(line, cj_buf_printf(&line->buf, "{\"time\": \"%s.%03ldZ\", \"level\": \"%s\"", stamp,
                              now.tv_nsec / 1000000, level));
    cj_log_str(line, "event", event);
}

void cj_log_strn(struct cj_log_line *line, const char *name, const char *value, size_t len,
                 size_t max)
{
    key(line, name);
    if (!value)
        check(line, cj_buf_append_str(&line->buf, "null"));
    else
        check(line, append_string(&line->buf, value, len, max));
}

void cj_log_str(struct cj_log_line *line, const char *name, const char *value)
{
    cj_log_strn(line, name, value, value ? strlen(value) : 0, CJ_LOG_STR_MAX);
}

void cj_log_int(struct cj_log_line *line, const char *name, long long value)
{
    key(line, name);
    check(line, cj_buf_printf(&line->buf, "%lld", value));
}

void cj_log_ms(struct cj_log_line *line, const char *name, double ms)
{
    key(line, name);
    check(line, cj_buf_printf(&line->buf, "%.3f", ms));
}

void cj_log_bool(struct cj_log_line *line, const char *name, bool value)
{
    key(line, name);
    check(line, cj_buf_append_str(&line->buf, value ? "true" : "false"));
}

void cj_log_json(struct cj_log_line *line, const char *name, const char *json)
{
    key(line, name);
    check(line, cj_buf_append_str(&line->buf, json));
}

static void write_all(const char *data, size_t len)
{
    pthread_mutex_lock(&log_lock);
    while (len > 0) {
        ssize_t n = write(log_fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* nowhere to log to: the service itself must go on */
        data += n;
        len -= (size_t)n;
    }
    pthread_mutex_unlock(&log_lock);
}

void cj_log_end(struct cj_log_line *line)
{
    check(line, cj_buf_append_str(&line->buf, "}\n"));
    if (line->failed) {
        static const char fallback[] =
            "{\"level\": \"error\", \"event\": \"log\", \"message\": \"out of memory\"}\n";
        write_all(fallback, sizeof fallback - 1);
    } else {
        write_all(line->buf.data, line->buf.len);
    }
    cj_buf_free(&line->buf);
}

void cj_log_message(const char *level, const char *event, const char *message)
{
    struct cj_log_line line;
    cj_log_begin(&line, level, event);
    cj_log_str(&line, "message", message);
    cj_log_end(&line);
}

void cj_access_log(const struct cj_access_entry *e)
{
    struct cj_log_line line;
    cj_log_begin(&line, e->status >= 500 ? "error" : "info", "request");
    cj_log_str(&line, "method", e->method);
    cj_log_str(&line, "path", e->path);
    cj_log_str(&line, "remote", e->remote);
    cj_log_int(&line, "status", e->status);
    cj_log_str(&line, "outcome", e->outcome);
    cj_log_ms(&line, "duration_ms", e->duration_ms);
    cj_log_str(&line, "slug", e->slug);
    cj_log_str(&line, "limit_overrides_context", e->limit_overrides_context);
    cj_log_str(&line, "environment", e->environment);
    cj_log_int(&line, "code_bytes", (long long)e->code_bytes);
    cj_log_int(&line, "globals_bytes", (long long)e->globals_bytes);
    cj_log_int(&line, "upload_bytes", (long long)e->upload_bytes);
    if (e->executed) {
        cj_log_int(&line, "exit_status", e->exit_status);
        cj_log_bool(&line, "timed_out", e->timed_out);
        cj_log_ms(&line, "setup_ms", e->setup_ms);
        cj_log_ms(&line, "run_ms", e->run_ms);
        cj_log_int(&line, "stdout_bytes", (long long)e->stdout_bytes);
        cj_log_int(&line, "stderr_bytes", (long long)e->stderr_bytes);
    } else {
        cj_log_json(&line, "exit_status", "null");
    }
    cj_log_int(&line, "output_bytes", (long long)e->response_bytes);
    if (e->detail)
        cj_log_str(&line, "detail", e->detail);
    if (e->code)
        cj_log_strn(&line, "code", e->code, e->code_len, CJ_LOG_TEXT_MAX);
    if (e->globals)
        cj_log_strn(&line, "globals", e->globals, e->globals_len, CJ_LOG_TEXT_MAX);
    cj_log_end(&line);
}
