/* log.c -- JSON-lines logger. */
#include "log.h"

#include "jsonw.h"
#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Room for the worst case, so a line is never cut: a 1023-byte message escaped to 6 bytes a
 * byte (\u00XX) is 6138, the other fields (time, level, service, rpc, request and trace ids) < 800.
 */
#define LOG_LINE_MAX 8192

static const char *g_service = "loyalty";
static log_level_t g_min_level = LOG_INFO;
static __thread const char *t_request_id;
static __thread const char *t_rpc;
static __thread const char *t_trace_id;
static __thread const char *t_span_id;
static __thread const char *t_parent_span_id;

static const char *const level_names[] = {"debug", "info", "warn", "error"};
_Static_assert(sizeof level_names / sizeof *level_names == LOG_ERROR + 1, "a name per level");

void log_init(const char *service, log_level_t min_level) {
    g_service = service;
    g_min_level = min_level;
}

bool log_level_parse(const char *text, log_level_t *out) {
    for (int i = 0; i <= LOG_ERROR; i++) {
        if (strcasecmp(text, level_names[i]) == 0) {
            *out = (log_level_t)i;
            return true;
        }
    }
    return false;
}

bool log_enabled(log_level_t level) {
    return level >= g_min_level;
}

void log_bind_request(const char *request_id, const char *rpc) {
    t_request_id = request_id;
    t_rpc = rpc;
}

void log_bind_trace(const char *trace_id, const char *span_id, const char *parent_span_id) {
    t_trace_id = trace_id;
    t_span_id = span_id;
    t_parent_span_id = parent_span_id;
}

/* The bound trace's fields, so that a collector can join every line of a call to its span. */
static void log_trace_fields(jsonw_t *w) {
    if (t_trace_id == NULL) {
        return;
    }
    jsonw_str(w, "trace_id", t_trace_id);
    jsonw_str(w, "span_id", t_span_id);
    if (t_parent_span_id && t_parent_span_id[0]) {
        jsonw_str(w, "parent_span_id", t_parent_span_id);
    }
}

const char *log_request_id(void) {
    return t_request_id;
}

static void log_begin(jsonw_t *w, char *buf, log_level_t level) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[96];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    jsonw_begin(w, buf, LOG_LINE_MAX - 1);
    jsonw_str(w, "ts", when);
    jsonw_str(w, "level", level_names[level]);
    jsonw_str(w, "service", g_service);
}

static void log_flush(jsonw_t *w) {
    size_t n = jsonw_end(w);
    if (n == 0) { /* overflowed despite the bound above: say so rather than write a cut line */
        static const char fallback[] = "{\"level\":\"error\",\"msg\":\"log line too long\"}";
        n = sizeof fallback - 1;
        memcpy(w->buf, fallback, n);
    }
    w->buf[n++] = '\n';
    /* One write per line: atomic for pipes up to PIPE_BUF and in practice for files. */
    ssize_t written = write(STDOUT_FILENO, w->buf, n);
    (void)written; /* nowhere to report a failed log write */
}

static void log_vmsg(log_level_t level, const log_field_t *fields, size_t n, const char *fmt,
                     va_list ap) {
    char buf[LOG_LINE_MAX];
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    jsonw_t w;
    log_begin(&w, buf, level);
    if (t_rpc) {
        jsonw_str(&w, "rpc", t_rpc);
    }
    if (t_request_id) {
        jsonw_str(&w, "request_id", t_request_id);
    }
    log_trace_fields(&w);
    for (size_t i = 0; i < n; i++) {
        jsonw_str(&w, fields[i].key, fields[i].value ? fields[i].value : "");
    }
    jsonw_str(&w, "msg", msg);
    log_flush(&w);
}

void log_msg(log_level_t level, const char *fmt, ...) {
    if (!log_enabled(level)) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, NULL, 0, fmt, ap);
    va_end(ap);
}

void log_msg_fields(log_level_t level, const log_field_t *fields, size_t n, const char *fmt, ...) {
    if (!log_enabled(level)) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, fields, n, fmt, ap);
    va_end(ap);
}

void log_rpc(const char *rpc, const char *request_id, const char *merchant_id,
             const char *credential_id, int status_code, const char *reason, const char *message,
             int64_t latency_us) {
    log_level_t level = LOG_INFO;
    if (status_code == STATUS_INTERNAL || status_code == STATUS_UNKNOWN ||
        status_code == STATUS_DATA_LOSS) {
        level = LOG_ERROR;
    } else if (status_code == STATUS_UNAVAILABLE) {
        level = LOG_WARN;
    }
    if (!log_enabled(level)) {
        return;
    }
    char buf[LOG_LINE_MAX];
    jsonw_t w;
    log_begin(&w, buf, level);
    jsonw_str(&w, "rpc", rpc);
    jsonw_str(&w, "request_id", request_id);
    log_trace_fields(&w);
    if (merchant_id && merchant_id[0]) {
        jsonw_str(&w, "merchant_id", merchant_id);
    }
    if (credential_id && credential_id[0]) {
        jsonw_str(&w, "credential", credential_id); /* the id, never the token */
    }
    jsonw_str(&w, "status", status_code_name(status_code));
    if (reason && reason[0]) {
        jsonw_str(&w, "reason", reason);
    }
    if (message && message[0]) {
        jsonw_str(&w, "error", message);
    }
    jsonw_int(&w, "latency_us", latency_us);
    log_flush(&w);
}
