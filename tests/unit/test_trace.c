/* test_trace.c -- W3C traceparent parsing and formatting (lib/trace.c), against the cases of
 * the Trace Context specification: lengths, lowercase hex, all-zero ids, versions. */
#include "trace.h"

#include <criterion/criterion.h>

#include <string.h>

static bool parse(const char *v, char *tid, char *pid, uint8_t *flags) {
    return trace_parse_traceparent(v, strlen(v), tid, pid, flags);
}

Test(trace, parses_a_valid_version_00_header) {
    char tid[TRACE_ID_HEX + 1], pid[TRACE_SPAN_ID_HEX + 1];
    uint8_t flags = 0xaa;
    cr_assert(parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tid, pid, &flags));
    cr_assert_str_eq(tid, "4bf92f3577b34da6a3ce929d0e0e4736");
    cr_assert_str_eq(pid, "00f067aa0ba902b7");
    cr_assert_eq(flags, 1);
    cr_assert(parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", tid, pid, &flags));
    cr_assert_eq(flags, 0);
}

Test(trace, refuses_malformed_version_00_headers) {
    char tid[TRACE_ID_HEX + 1], pid[TRACE_SPAN_ID_HEX + 1];
    uint8_t flags;
    static const char *const bad[] = {
        "",
        "00",
        /* one character short, one too many (version 00 is exactly 55) */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-010",
        /* uppercase hex */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
        "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        /* all-zero trace id or parent id */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        /* not hex, wrong separators, fields shifted */
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
        "00-4bf92f3577b34da6a3ce929d0e0e47-3600f067aa0ba902b7-01",
        " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        /* version ff is invalid */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_not(parse(bad[i], tid, pid, &flags), "accepted \"%s\"", bad[i]);
    }
}

Test(trace, reads_a_later_version_as_version_00) {
    char tid[TRACE_ID_HEX + 1], pid[TRACE_SPAN_ID_HEX + 1];
    uint8_t flags;
    cr_assert(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tid, pid, &flags));
    cr_assert(parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-says",
                    tid, pid, &flags));
    cr_assert_str_eq(tid, "4bf92f3577b34da6a3ce929d0e0e4736");
    cr_assert_str_eq(pid, "00f067aa0ba902b7");
    /* a later version still needs the '-' after the known fields */
    cr_assert_not(
        parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", tid, pid, &flags));
}

Test(trace, formats_what_it_parses) {
    char out[TRACEPARENT_LEN + 1];
    trace_format_traceparent("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 1, out);
    cr_assert_str_eq(out, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    trace_format_traceparent("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 0xfe, out);
    cr_assert_str_eq(out, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-fe");
}

Test(trace, begin_continues_a_valid_trace_with_a_new_span) {
    static const char tp[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03";
    static const char ts[] = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";
    trace_ctx_t t;
    trace_begin(&t, tp, strlen(tp), ts, strlen(ts));
    cr_assert_str_eq(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    cr_assert_str_eq(t.parent_span_id, "00f067aa0ba902b7");
    cr_assert_eq(strlen(t.span_id), TRACE_SPAN_ID_HEX);
    cr_assert_str_neq(t.span_id, "00f067aa0ba902b7");
    cr_assert_eq(t.flags, TRACE_FLAG_SAMPLED, "only the sampled flag is kept");
    cr_assert_str_eq(t.tracestate, ts, "tracestate travels unchanged");

    char child[TRACEPARENT_LEN + 1], child_span[TRACE_SPAN_ID_HEX + 1];
    trace_child_traceparent(&t, child, child_span);
    char tid[TRACE_ID_HEX + 1], pid[TRACE_SPAN_ID_HEX + 1];
    uint8_t flags;
    cr_assert(parse(child, tid, pid, &flags), "%s", child);
    cr_assert_str_eq(tid, t.trace_id);
    cr_assert_str_eq(pid, child_span);
    cr_assert_str_neq(pid, t.span_id);
    cr_assert_str_neq(pid, t.parent_span_id);
    cr_assert_eq(flags, TRACE_FLAG_SAMPLED);
}

Test(trace, begin_starts_a_new_trace_without_or_with_an_invalid_header) {
    static const char bad[] = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
    static const char ts[] = "rojo=00f067aa0ba902b7";
    trace_ctx_t a, b;
    trace_begin(&a, NULL, 0, NULL, 0);
    trace_begin(&b, bad, strlen(bad), ts, strlen(ts));
    char tid[TRACE_ID_HEX + 1], pid[TRACE_SPAN_ID_HEX + 1], tp[TRACEPARENT_LEN + 1];
    uint8_t flags;
    for (int i = 0; i < 2; i++) {
        const trace_ctx_t *t = i ? &b : &a;
        cr_assert_str_eq(t->parent_span_id, "");
        cr_assert_str_eq(t->tracestate, "", "tracestate goes with an invalid traceparent");
        trace_format_traceparent(t->trace_id, t->span_id, t->flags, tp);
        cr_assert(parse(tp, tid, pid, &flags), "new ids are valid: %s", tp);
    }
    cr_assert_str_neq(a.trace_id, b.trace_id);
}

Test(trace, tracestate_checks) {
    cr_assert(trace_tracestate_valid("a=b", 3));
    cr_assert_not(trace_tracestate_valid("", 0));
    cr_assert_not(trace_tracestate_valid("a=\nb", 4));
    char big[TRACESTATE_MAX + 2];
    memset(big, 'a', sizeof big);
    cr_assert(trace_tracestate_valid(big, TRACESTATE_MAX));
    cr_assert_not(trace_tracestate_valid(big, TRACESTATE_MAX + 1));
}
