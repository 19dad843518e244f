/* status.c -- construction and naming of status_t values. */
#include "status.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

status_t status_ok(void) {
    status_t s;
    memset(&s, 0, sizeof s);
    s.code = STATUS_OK;
    return s;
}

static void status_copy_reason(status_t *s, const char *reason) {
    if (reason == NULL) {
        s->reason[0] = '\0';
        return;
    }
    snprintf(s->reason, sizeof s->reason, "%s", reason);
}

static status_t status_vmake(status_code_t code, const char *reason, const char *fmt, va_list ap) {
    status_t s = status_ok();
    s.code = code;
    status_copy_reason(&s, reason);
    vsnprintf(s.message, sizeof s.message, fmt, ap);
    return s;
}

status_t status_make(status_code_t code, reason_id_t reason, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    status_t s = status_vmake(code, reason_name(reason), fmt, ap);
    va_end(ap);
    return s;
}

status_t status_make_relayed(status_code_t code, const char *reason, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    status_t s = status_vmake(code, reason, fmt, ap);
    va_end(ap);
    return s;
}

status_t status_invalid_field(const char *field, const char *fmt, ...) {
    status_t s = status_ok();
    s.code = STATUS_INVALID_ARGUMENT;
    int n = snprintf(s.reason, sizeof s.reason, "INVALID_%s", field);
    (void)n;
    for (char *p = s.reason; *p; p++) {
        *p = (*p == '.' || *p == '[' || *p == ']') ? '_' : (char)toupper((unsigned char)*p);
    }
    int used = snprintf(s.message, sizeof s.message, "%s: ", field);
    if (used > 0 && (size_t)used < sizeof s.message) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s.message + used, sizeof s.message - (size_t)used, fmt, ap);
        va_end(ap);
    }
    return s;
}

const char *status_code_name(int code) {
    switch (code) {
#define STATUS_NAME(name, num)                                                                     \
    case num:                                                                                      \
        return #name;
        STATUS_CODES(STATUS_NAME)
#undef STATUS_NAME
    default:
        return "UNKNOWN";
    }
}

/* Every number from 0 to STATUS_CODE_MAX is a code (gRPC's are contiguous). */
_Static_assert(STATUS_UNAUTHENTICATED == STATUS_CODE_MAX, "STATUS_CODE_MAX is the last code");

status_code_t status_code_from_int(int code) {
    if (code < 0 || code > STATUS_CODE_MAX) {
        return STATUS_UNKNOWN;
    }
    return (status_code_t)code;
}

bool status_is_transient(const status_t *s) {
    return s->code == STATUS_UNAVAILABLE || s->code == STATUS_DEADLINE_EXCEEDED;
}
