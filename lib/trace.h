/* trace.h -- W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` and
 * `tracestate` metadata of a call. The server takes the caller's trace (or starts one) and
 * gives every call a span id of its own; the client sends every outgoing call a new child span
 * id in the same trace; log lines carry trace_id and span_id
 * (docs/architecture.md#logs-and-request-ids). Nothing is exported: a collector or tracing
 * proxy in front stitches the hops together from the headers and the logs. Pure functions
 * apart from the random ids. */
#ifndef LOYALTY_TRACE_H
#define LOYALTY_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TRACE_ID_HEX 32      /* 16 bytes as lowercase hex */
#define TRACE_SPAN_ID_HEX 16 /* 8 bytes as lowercase hex */
#define TRACEPARENT_LEN 55   /* "00-" trace "-" span "-" flags */
#define TRACESTATE_MAX 512   /* the spec's 32 list members fit; longer values are dropped */
#define TRACE_FLAG_SAMPLED 0x01

/** The trace of one served call: the trace it belongs to, its own span and the caller's. */
typedef struct trace_ctx {
    char trace_id[TRACE_ID_HEX + 1];
    char span_id[TRACE_SPAN_ID_HEX + 1];        /* this call's span */
    char parent_span_id[TRACE_SPAN_ID_HEX + 1]; /* the caller's, "" when the trace began here */
    uint8_t flags;
    char tracestate[TRACESTATE_MAX + 1]; /* as received (valid), else "" */
} trace_ctx_t;

/** Parses a traceparent value (`len` bytes, not NUL-terminated). Version 00 must be exactly 55
 *  characters; a later version (not ff) at least 55, with a '-' after the first 55, whose fields
 *  are read as version 00's. Hex must be lowercase; all-zero trace or parent ids are invalid.
 *  On success fills trace_id, parent_id (NUL-terminated) and flags. */
bool trace_parse_traceparent(const char *value, size_t len, char trace_id[TRACE_ID_HEX + 1],
                             char parent_id[TRACE_SPAN_ID_HEX + 1], uint8_t *flags);

/** Writes "00-<trace_id>-<span_id>-<flags>" and a NUL into out. */
void trace_format_traceparent(const char *trace_id, const char *span_id, uint8_t flags,
                              char out[TRACEPARENT_LEN + 1]);

/** Whether `len` bytes are a tracestate we pass on: 1..TRACESTATE_MAX printable ASCII
 *  characters (the members themselves are the vendors' business and travel unchanged). */
bool trace_tracestate_valid(const char *value, size_t len);

/** A new random span id (never all zeros). */
void trace_new_span_id(char out[TRACE_SPAN_ID_HEX + 1]);
/** A new random trace id (never all zeros). */
void trace_new_trace_id(char out[TRACE_ID_HEX + 1]);

/** The trace of a served call from its request metadata (either value may be NULL): the
 *  caller's trace when `traceparent` is valid, with tracestate kept when valid; otherwise a new
 *  trace (and no tracestate, as the spec asks). Always a new span id. */
void trace_begin(trace_ctx_t *t, const char *traceparent, size_t traceparent_len,
                 const char *tracestate, size_t tracestate_len);

/** The traceparent of an outgoing call of the call traced by `t`: same trace and flags, a new
 *  child span id (written to child_span_id when not NULL). */
void trace_child_traceparent(const trace_ctx_t *t, char out[TRACEPARENT_LEN + 1],
                             char *child_span_id);

#endif
