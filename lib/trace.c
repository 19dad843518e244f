/* trace.c -- W3C traceparent/tracestate parsing, formatting and new ids. */
#include "trace.h"

#include "ids.h"

#include <stdio.h>
#include <string.h>

static const char hex_digits[] = "0123456789abcdef";

static int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1; /* uppercase is invalid in traceparent */
}

/* `n` lowercase hex digits copied into out (NUL-terminated); false on any other character. */
static bool hex_field(const char *s, size_t n, char *out, bool *all_zero) {
    *all_zero = true;
    for (size_t i = 0; i < n; i++) {
        if (hex_value(s[i]) < 0) {
            return false;
        }
        *all_zero = *all_zero && s[i] == '0';
        out[i] = s[i];
    }
    out[n] = '\0';
    return true;
}

bool trace_parse_traceparent(const char *v, size_t len, char trace_id[TRACE_ID_HEX + 1],
                             char parent_id[TRACE_SPAN_ID_HEX + 1], uint8_t *flags) {
    if (v == NULL || len < TRACEPARENT_LEN) {
        return false;
    }
    char version[3];
    bool zero;
    if (!hex_field(v, 2, version, &zero) || strcmp(version, "ff") == 0) {
        return false;
    }
    if (strcmp(version, "00") == 0 ? len != TRACEPARENT_LEN
                                   : len > TRACEPARENT_LEN && v[TRACEPARENT_LEN] != '-') {
        return false;
    }
    if (v[2] != '-' || v[3 + TRACE_ID_HEX] != '-' ||
        v[3 + TRACE_ID_HEX + 1 + TRACE_SPAN_ID_HEX] != '-') {
        return false;
    }
    char tid[TRACE_ID_HEX + 1], pid[TRACE_SPAN_ID_HEX + 1], fl[3];
    if (!hex_field(v + 3, TRACE_ID_HEX, tid, &zero) || zero) {
        return false;
    }
    if (!hex_field(v + 3 + TRACE_ID_HEX + 1, TRACE_SPAN_ID_HEX, pid, &zero) || zero) {
        return false;
    }
    if (!hex_field(v + TRACEPARENT_LEN - 2, 2, fl, &zero)) {
        return false;
    }
    memcpy(trace_id, tid, sizeof tid);
    memcpy(parent_id, pid, sizeof pid);
    *flags = (uint8_t)(hex_value(fl[0]) * 16 + hex_value(fl[1]));
    return true;
}

void trace_format_traceparent(const char *trace_id, const char *span_id, uint8_t flags,
                              char out[TRACEPARENT_LEN + 1]) {
    snprintf(out, TRACEPARENT_LEN + 1, "00-%.32s-%.16s-%c%c", trace_id, span_id,
             hex_digits[flags >> 4], hex_digits[flags & 0xf]);
}

bool trace_tracestate_valid(const char *v, size_t len) {
    if (v == NULL || len == 0 || len > TRACESTATE_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (v[i] < 0x20 || v[i] > 0x7e) {
            return false;
        }
    }
    return true;
}

static void random_hex(size_t n, char *out) {
    do {
        id_random_token(hex_digits, n, out);
    } while (strspn(out, "0") == n); /* all zeros is the spec's invalid id */
}

void trace_new_span_id(char out[TRACE_SPAN_ID_HEX + 1]) {
    random_hex(TRACE_SPAN_ID_HEX, out);
}

void trace_new_trace_id(char out[TRACE_ID_HEX + 1]) {
    random_hex(TRACE_ID_HEX, out);
}

void trace_begin(trace_ctx_t *t, const char *traceparent, size_t traceparent_len,
                 const char *tracestate, size_t tracestate_len) {
    t->tracestate[0] = '\0';
    if (trace_parse_traceparent(traceparent, traceparent_len, t->trace_id, t->parent_span_id,
                                &t->flags)) {
        /* Only the sampled flag is defined for version 00; the others are not passed on. */
        t->flags &= TRACE_FLAG_SAMPLED;
        if (trace_tracestate_valid(tracestate, tracestate_len)) {
            memcpy(t->tracestate, tracestate, tracestate_len);
            t->tracestate[tracestate_len] = '\0';
        }
    } else {
        trace_new_trace_id(t->trace_id);
        t->parent_span_id[0] = '\0';
        t->flags = 0;
    }
    trace_new_span_id(t->span_id);
}

void trace_child_traceparent(const trace_ctx_t *t, char out[TRACEPARENT_LEN + 1],
                             char *child_span_id) {
    char span[TRACE_SPAN_ID_HEX + 1];
    trace_new_span_id(span);
    trace_format_traceparent(t->trace_id, span, t->flags, out);
    if (child_span_id) {
        memcpy(child_span_id, span, sizeof span);
    }
}
