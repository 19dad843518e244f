/* log.h -- structured logs: one JSON object per line on stdout, with the service, the RPC and
 * the request id of the call the thread is serving (docs/architecture.md#logs-and-request-ids). Thread-safe; each line is one
 * write(2), so lines from different threads never interleave. */
#ifndef LOYALTY_LOG_H
#define LOYALTY_LOG_H

#include <stdbool.h>
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
/** The request id bound to this thread, or NULL. */
const char *log_request_id(void);

/** A line {"ts","level","service","rpc","request_id","msg"}. Never pass secrets. */
void log_msg(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** The access line of one finished RPC. */
void log_rpc(const char *rpc, const char *request_id, const char *merchant_id, int status_code,
             const char *reason, const char *message, int64_t latency_us);

#endif
