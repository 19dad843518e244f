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

/** The OK status. */
status_t status_ok(void);

/** A status with a code, a reason (may be NULL) and a printf-style message. Over-long text is
 *  truncated, never overflowed. */
status_t status_make(status_code_t code, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** status_make, for the debug check below: when `reason_is_literal`, a reason that is not
 *  NULL must be in the catalogue (lib/reasons.def), or the process aborts naming it. */
status_t status_make_checked(bool reason_is_literal, status_code_t code, const char *reason,
                             const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Debug builds of lib/ and the services (LOYALTY_REASON_CHECK, set in CMakeLists.txt) check
 * every status_make(code, "REASON", ...) whose reason is a literal against the catalogue the
 * moment it runs; a reason passed on from elsewhere (a participant's, a stored one) is not. The
 * source scan (tools/reasons.py) is the check that covers every call. */
#ifdef LOYALTY_REASON_CHECK
#define status_make(code, reason, ...)                                                             \
    status_make_checked(__builtin_constant_p(reason), (code), (reason), __VA_ARGS__)
#endif

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
