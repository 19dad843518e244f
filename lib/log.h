/* log.h -- structured logs: one JSON object per line on stdout, with the service, the RPC, the
 * request id and the trace (trace_id, span_id, parent_span_id) of the call the thread is serving
 * (docs/architecture.md#logs-and-request-ids). Thread-safe; each line is one write(2), so lines
 * from different threads never interleave. */
#ifndef LOYALTY_LOG_H
#define LOYALTY_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 } log_level_t;

/** Sets the service name put on every line and the lowest level written. Call once at start,
 *  before threads. */
void log_init(const char *service, log_level_t min_level);

/** Parses "debug" | "info" | "warn" | "error"; false for anything else. */
bool log_level_parse(const char *text, log_level_t *out);

bool log_enabled(log_level_t level);

/** Binds a request id and RPC name to the calling thread; both are borrowed and must outlive
 *  the binding. Pass NULLs to clear. */
void log_bind_request(const char *request_id, const char *rpc);
/** Binds the W3C trace ids of the call being served (trace.h) to the calling thread, borrowed
 *  like the request id; parent_span_id may be "" (the trace began here). NULLs clear. */
void log_bind_trace(const char *trace_id, const char *span_id, const char *parent_span_id);

/** The request id bound to this thread, or NULL. */
const char *log_request_id(void);

/** A line {"ts","level","service","rpc","request_id","trace_id","span_id","parent_span_id",
 *  "msg"} (the ids of what is bound). Never pass secrets. */
void log_msg(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** A field of a line, beside the message: for ids an operator searches by. */
typedef struct log_field {
    const char *key;
    const char *value;
} log_field_t;

/** log_msg with `n` more fields (between the bound ids and "msg"). */
void log_msg_fields(log_level_t level, const log_field_t *fields, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/** The access line of one finished RPC, with the trace bound to the thread. */
void log_rpc(const char *rpc, const char *request_id, const char *merchant_id,
             const char *credential_id, int status_code, const char *reason, const char *message,
             int64_t latency_us);

#endif
