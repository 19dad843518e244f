/* status.h -- the one error type of the suite: a gRPC status code, a machine-readable reason
 * (sent as trailing metadata `loyalty-error-reason`) and a human message. */
#ifndef LOYALTY_STATUS_H
#define LOYALTY_STATUS_H

#include <stdbool.h>

/* X-macro: name and gRPC code, in gRPC's numbering, so the two can never drift apart. */
#define STATUS_CODES(X)                                                                            \
    X(OK, 0)                                                                                       \
    X(CANCELLED, 1)                                                                                \
    X(UNKNOWN, 2)                                                                                  \
    X(INVALID_ARGUMENT, 3)                                                                         \
    X(DEADLINE_EXCEEDED, 4)                                                                        \
    X(NOT_FOUND, 5)                                                                                \
    X(ALREADY_EXISTS, 6)                                                                           \
    X(PERMISSION_DENIED, 7)                                                                        \
    X(RESOURCE_EXHAUSTED, 8)                                                                       \
    X(FAILED_PRECONDITION, 9)                                                                      \
    X(ABORTED, 10)                                                                                 \
    X(OUT_OF_RANGE, 11)                                                                            \
    X(UNIMPLEMENTED, 12)                                                                           \
    X(INTERNAL, 13)                                                                                \
    X(UNAVAILABLE, 14)                                                                             \
    X(DATA_LOSS, 15)                                                                               \
    X(UNAUTHENTICATED, 16)

typedef enum status_code {
#define STATUS_ENUM(name, num) STATUS_##name = num,
    STATUS_CODES(STATUS_ENUM)
#undef STATUS_ENUM
} status_code_t;

#define STATUS_CODE_MAX 16
#define STATUS_REASON_MAX 64
#define STATUS_MESSAGE_MAX 240

/** Returned by value from every fallible function. `reason` is an UPPER_SNAKE token such as
 *  "INSUFFICIENT_POINTS" (empty when there is none); `message` is a short lowercase sentence
 *  for people, never containing secrets. */
typedef struct status {
    status_code_t code;
    char reason[STATUS_REASON_MAX];
    char message[STATUS_MESSAGE_MAX];
} status_t;

/* The reason catalogue as a type: one id per reason of lib/reasons.def (X-macro), so a reason
 * named in the code is checked by the compiler. REASON_NONE is no reason. Name, code and meaning
 * of each: reasons.h. */
typedef enum reason_id {
    REASON_NONE = 0,
#define REASON(name, code, meaning) REASON_##name,
#define REASON_FAMILY(prefix, code, meaning)
#include "reasons.def"
#undef REASON_FAMILY
#undef REASON
    REASON_COUNT
} reason_id_t;

/** The token reason `id` is sent as ("INSUFFICIENT_POINTS" for REASON_INSUFFICIENT_POINTS);
 *  "" for REASON_NONE. */
const char *reason_name(reason_id_t id);

/** The OK status. */
status_t status_ok(void);

/** A status with a code, a catalogued reason (REASON_NONE for none) and a printf-style
 *  message. Over-long text is truncated, never overflowed. */
status_t status_make(status_code_t code, reason_id_t reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** status_make for a reason passed on as a string from elsewhere: a called service's reason
 *  the caller relays, a stored one, a statement's refuse('REASON'). NULL or "" is no reason.
 *  A reason of one's own is named with status_make, where a misspelling does not compile
 *  (tools/reasons.py lists every argument this is given). */
status_t status_make_relayed(status_code_t code, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** INVALID_ARGUMENT for one named request field: message "<field>: <what>", reason
 *  "INVALID_<FIELD>" (field upper-cased, dots to underscores). */
status_t status_invalid_field(const char *field, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static inline bool status_is_ok(const status_t *s) {
    return s->code == STATUS_OK;
}

/** "NOT_FOUND" for STATUS_NOT_FOUND; "UNKNOWN" for a number outside gRPC's range. */
const char *status_code_name(int code);

/** The code for a gRPC code number; numbers outside 0..16 map to STATUS_UNKNOWN, as gRPC says. */
status_code_t status_code_from_int(int code);

/** True when a caller may simply retry the same call (UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED
 *  and RESOURCE_EXHAUSTED are not all equal: only the first two are transport-level). */
bool status_is_transient(const status_t *s);

#endif
