/* test_runtime.c -- unit tests of the runtime's pure pieces: status mapping, configuration
 * parsing, JSON log writing, text[] literals, bearer-token comparison, ids. */
#include "auth.h"
#include "cache.h"
#include "clock.h"
#include "config.h"
#include "ids.h"
#include "jsonw.h"
#include "pgarray.h"
#include "status.h"

#include <criterion/criterion.h>

#include <string.h>

Test(status, codes_map_one_to_one_to_grpc) {
    /* Goal: every code keeps gRPC's number and name; out-of-range numbers are UNKNOWN. */
    cr_assert_eq(STATUS_OK, 0);
    cr_assert_eq(STATUS_INVALID_ARGUMENT, 3);
    cr_assert_eq(STATUS_FAILED_PRECONDITION, 9);
    cr_assert_eq(STATUS_ABORTED, 10);
    cr_assert_eq(STATUS_UNAVAILABLE, 14);
    cr_assert_eq(STATUS_UNAUTHENTICATED, 16);
    cr_assert_str_eq(status_code_name(STATUS_NOT_FOUND), "NOT_FOUND");
    cr_assert_str_eq(status_code_name(STATUS_UNAUTHENTICATED), "UNAUTHENTICATED");
    cr_assert_str_eq(status_code_name(17), "UNKNOWN");
    cr_assert_str_eq(status_code_name(-1), "UNKNOWN");
    for (int c = 0; c <= STATUS_CODE_MAX; c++) {
        cr_assert_eq((int)status_code_from_int(c), c);
    }
    cr_assert_eq(status_code_from_int(99), STATUS_UNKNOWN);
}

Test(status, make_formats_and_truncates) {
    status_t s =
        status_make(STATUS_FAILED_PRECONDITION, REASON_INSUFFICIENT_POINTS, "need %d more", 5);
    cr_assert_eq(s.code, STATUS_FAILED_PRECONDITION);
    cr_assert_str_eq(s.reason, "INSUFFICIENT_POINTS");
    cr_assert_str_eq(s.message, "need 5 more");
    char long_text[1000];
    memset(long_text, 'x', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    s = status_make_relayed(STATUS_INTERNAL, long_text, "%s", long_text);
    cr_assert_eq(strlen(s.message), STATUS_MESSAGE_MAX - 1);
    cr_assert_eq(strlen(s.reason), STATUS_REASON_MAX - 1);
    s = status_make(STATUS_NOT_FOUND, REASON_NONE, "gone");
    cr_assert_str_eq(s.reason, "");
    cr_assert(status_is_ok(&(status_t){.code = STATUS_OK}));
}

Test(status, invalid_field_names_the_field) {
    status_t s = status_invalid_field("profile.address.country_code", "expected %s", "SG");
    cr_assert_eq(s.code, STATUS_INVALID_ARGUMENT);
    cr_assert_str_eq(s.reason, "INVALID_PROFILE_ADDRESS_COUNTRY_CODE");
    cr_assert_str_eq(s.message, "profile.address.country_code: expected SG");
    s = status_invalid_field("lines[3].qty", "must be positive");
    cr_assert_str_eq(s.reason, "INVALID_LINES_3__QTY");
}

Test(status, transient_is_only_unavailable_and_deadline) {
    status_t s = status_make(STATUS_UNAVAILABLE, REASON_NONE, "x");
    cr_assert(status_is_transient(&s));
    s.code = STATUS_DEADLINE_EXCEEDED;
    cr_assert(status_is_transient(&s));
    s.code = STATUS_ABORTED;
    cr_assert_not(status_is_transient(&s));
    s.code = STATUS_FAILED_PRECONDITION;
    cr_assert_not(status_is_transient(&s));
}

typedef struct fake_env {
    const char *names[8];
    const char *values[8];
} fake_env_t;

static const char *fake_lookup(const char *name, void *arg) {
    fake_env_t *e = arg;
    for (int i = 0; i < 8 && e->names[i]; i++) {
        if (strcmp(e->names[i], name) == 0) {
            return e->values[i];
        }
    }
    return NULL;
}

Test(config, defaults_follow_design) {
    /* Goal: with no environment the service listens on its default port
     * (docs/architecture.md#services) with sane limits. */
    config_t cfg;
    fake_env_t env = {{NULL}, {NULL}};
    status_t st = config_load(&cfg, "points-svc", 50052, fake_lookup, &env);
    cr_assert(status_is_ok(&st), "%s", st.message);
    cr_assert_str_eq(cfg.listen_addr, "0.0.0.0:50052");
    cr_assert_str_eq(cfg.service, "points-svc");
    cr_assert_eq(cfg.workers, 16);
    cr_assert_eq(cfg.max_message_bytes, 4194304);
    cr_assert_str_eq(cfg.auth_token, "");
    cr_assert_str_eq(cfg.member_svc_addr, "127.0.0.1:50051");
    cr_assert_str_eq(cfg.promo_svc_addr, "127.0.0.1:50055");
    cr_assert_str_eq(cfg.log_level, "info");
}

Test(config, environment_overrides) {
    config_t cfg;
    fake_env_t env = {{"LISTEN_ADDR", "RPC_WORKERS", "LOYALTY_AUTH_TOKEN", "LOG_LEVEL"},
                      {"127.0.0.1:9000", "4", "t0ken", "warn"}};
    status_t st = config_load(&cfg, "member-svc", 50051, fake_lookup, &env);
    cr_assert(status_is_ok(&st), "%s", st.message);
    cr_assert_str_eq(cfg.listen_addr, "127.0.0.1:9000");
    cr_assert_eq(cfg.workers, 4);
    cr_assert_str_eq(cfg.auth_token, "t0ken");
}

Test(config, bad_values_name_the_variable) {
    /* Goal: malformed or out-of-bounds values stop the service with the variable's name. */
    config_t cfg;
    const char *bad[][2] = {{"RPC_WORKERS", "0"},
                            {"RPC_WORKERS", "513"},
                            {"RPC_WORKERS", "8x"},
                            {"RPC_WORKERS", ""},
                            {"CACHE_TTL_S", "-5"},
                            {"LOG_LEVEL", "loud"},
                            {"RPC_MAX_MESSAGE_BYTES", "1023"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fake_env_t env = {{bad[i][0]}, {bad[i][1]}};
        status_t st = config_load(&cfg, "member-svc", 50051, fake_lookup, &env);
        cr_assert_eq(st.code, STATUS_INVALID_ARGUMENT, "%s=%s accepted", bad[i][0], bad[i][1]);
        if (strcmp(bad[i][0], "LOG_LEVEL") != 0) {
            cr_assert(strstr(st.message, bad[i][0]) != NULL, "%s", st.message);
        }
    }
    /* Boundaries: exactly the limits are accepted. */
    fake_env_t lo = {{"RPC_WORKERS", "RPC_MAX_MESSAGE_BYTES"}, {"1", "1024"}};
    cr_assert(status_is_ok(&(status_t){config_load(&cfg, "m", 1, fake_lookup, &lo).code}));
    fake_env_t hi = {{"RPC_WORKERS"}, {"512"}};
    cr_assert_eq(config_load(&cfg, "m", 1, fake_lookup, &hi).code, STATUS_OK);
    fake_env_t tls = {{"LOYALTY_TLS_CERT"}, {"/etc/cert.pem"}};
    cr_assert_eq(config_load(&cfg, "m", 1, fake_lookup, &tls).code, STATUS_INVALID_ARGUMENT,
                 "a certificate without its key is refused");
    char too_long[CONFIG_ADDR_MAX + 10];
    memset(too_long, 'a', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0';
    fake_env_t longer = {{"LISTEN_ADDR"}, {too_long}};
    cr_assert_eq(config_load(&cfg, "m", 1, fake_lookup, &longer).code, STATUS_INVALID_ARGUMENT);
}

Test(config, metrics_addr_defaults_to_listen_port_plus_1000) {
    /* Goal: METRICS_ADDR defaults to LISTEN_ADDR's port + 1000 on every interface, is off
     * (empty) when that is no port, may be set empty to disable, and must be host:port. */
    config_t cfg;
    cr_assert_eq(config_load(&cfg, "member-svc", 50051, NULL, NULL).code, STATUS_OK);
    cr_assert_str_eq(cfg.metrics_addr, "0.0.0.0:51051");
    fake_env_t listen = {{"LISTEN_ADDR"}, {"127.0.0.1:9000"}};
    cr_assert_eq(config_load(&cfg, "m", 1, fake_lookup, &listen).code, STATUS_OK);
    cr_assert_str_eq(cfg.metrics_addr, "0.0.0.0:10000");
    fake_env_t edge = {{"LISTEN_ADDR"}, {"127.0.0.1:64535"}};
    cr_assert_eq(config_load(&cfg, "m", 1, fake_lookup, &edge).code, STATUS_OK);
    cr_assert_str_eq(cfg.metrics_addr, "0.0.0.0:65535");
    fake_env_t past = {{"LISTEN_ADDR"}, {"127.0.0.1:64536"}};
    cr_assert_eq(config_load(&cfg, "m", 1, fake_lookup, &past).code, STATUS_OK);
    cr_assert_str_eq(cfg.metrics_addr, "");
    fake_env_t off = {{"METRICS_ADDR"}, {""}};
    cr_assert_eq(config_load(&cfg, "m", 1, fake_lookup, &off).code, STATUS_OK);
    cr_assert_str_eq(cfg.metrics_addr, "");
    fake_env_t set = {{"METRICS_ADDR"}, {"[::1]:9100"}};
    cr_assert_eq(config_load(&cfg, "m", 1, fake_lookup, &set).code, STATUS_OK);
    cr_assert_str_eq(cfg.metrics_addr, "[::1]:9100");
    const char *bad[] = {"9100", ":9100", "host:", "host:65536", "host:x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fake_env_t env = {{"METRICS_ADDR"}, {bad[i]}};
        status_t st = config_load(&cfg, "m", 1, fake_lookup, &env);
        cr_assert_eq(st.code, STATUS_INVALID_ARGUMENT, "%s accepted", bad[i]);
        cr_assert(strstr(st.message, "METRICS_ADDR") != NULL, "%s", st.message);
    }
}

Test(config, parse_int_is_strict) {
    int64_t v;
    cr_assert(config_parse_int("42", 0, 100, &v) && v == 42);
    cr_assert(config_parse_int("-3", -5, 5, &v) && v == -3);
    cr_assert_not(config_parse_int("42 ", 0, 100, &v));
    cr_assert_not(config_parse_int("0x10", 0, 100, &v));
    cr_assert_not(config_parse_int("101", 0, 100, &v));
    cr_assert_not(config_parse_int("99999999999999999999", 0, INT64_MAX, &v));
    cr_assert_not(config_parse_int(NULL, 0, 1, &v));
}

Test(jsonw, escapes_strings_and_bounds_output) {
    char buf[128];
    jsonw_t w;
    jsonw_begin(&w, buf, sizeof buf);
    jsonw_str(&w, "msg", "say \"hi\"\n\\ \x01");
    jsonw_int(&w, "n", -42);
    jsonw_bool(&w, "ok", true);
    jsonw_end(&w);
    cr_assert_str_eq(buf, "{\"msg\":\"say \\\"hi\\\"\\n\\\\ \\u0001\",\"n\":-42,\"ok\":true}");
}

Test(jsonw, overflow_leaves_no_cut_object) {
    /* Goal: a value that does not fit is never cut and closed as if whole (invalid JSON on the
     * events stream): the writer flags the overflow and leaves "" for outbox_emit to refuse;
     * an object that fits exactly is whole. */
    char small[16];
    jsonw_t w;
    jsonw_begin(&w, small, sizeof small);
    jsonw_str(&w, "key", "a long value that does not fit");
    size_t n = jsonw_end(&w);
    cr_assert(w.overflow);
    cr_assert_eq(n, 0);
    cr_assert_str_eq(small, "");
    char exact[sizeof "{\"k\":\"0123456\"}"]; /* the object and its NUL */
    jsonw_begin(&w, exact, sizeof exact);
    jsonw_str(&w, "k", "0123456");
    cr_assert_eq(jsonw_end(&w), sizeof exact - 1);
    cr_assert_not(w.overflow);
    cr_assert_str_eq(exact, "{\"k\":\"0123456\"}");
    jsonw_begin(&w, exact, sizeof exact);
    jsonw_str(&w, "k", "01234567"); /* one byte more */
    cr_assert_eq(jsonw_end(&w), 0);
    cr_assert(w.overflow);
}

Test(pgarray, round_trips_quotes_and_backslashes) {
    arena_t a;
    arena_init(&a);
    char *items[] = {"plain", "with \"quotes\"", "back\\slash", "", "a,b", "{braces}", "NULL"};
    char *lit = pgarray_encode(&a, items, 7);
    char **out = NULL;
    size_t n = 0;
    cr_assert(pgarray_decode(&a, lit, &out, &n));
    cr_assert_eq(n, 7);
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_eq(out[i], items[i]);
    }
    cr_assert(pgarray_decode(&a, "{}", &out, &n) && n == 0);
    cr_assert_not(pgarray_decode(&a, "a,b", &out, &n));
    cr_assert_not(pgarray_decode(&a, "{\"open}", &out, &n));
    cr_assert_str_eq(pgarray_encode(&a, NULL, 0), "{}");
    arena_free(&a);
}

Test(pgarray, integers_and_booleans) {
    arena_t a;
    arena_init(&a);
    int64_t v[] = {1, -2, 0, INT64_MAX, INT64_MIN};
    cr_assert_str_eq(pgarray_encode_int64(&a, v, 5),
                     "{1,-2,0,9223372036854775807,-9223372036854775808}");
    cr_assert_str_eq(pgarray_encode_int64(&a, v, 0), "{}");
    bool b[] = {true, false, true};
    cr_assert_str_eq(pgarray_encode_bool(&a, b, 3), "{t,f,t}");
    cr_assert_str_eq(pgarray_encode_bool(&a, b, 0), "{}");
    arena_free(&a);
}

Test(pgarray, bytes_as_hex_for_decode) {
    /* Goal: every byte value as two lowercase hex digits, in order; no bytes is "". */
    arena_t a;
    arena_init(&a);
    const unsigned char b[] = {0x00, 0x0f, 0x10, 0xab, 0xff};
    cr_assert_str_eq(pgarray_hex(&a, b, sizeof b), "000f10abff");
    cr_assert_str_eq(pgarray_hex(&a, b, 0), "");
    arena_free(&a);
}

Test(pgarray, null_elements_are_not_empty_strings) {
    /* Goal: a NULL element of a text[] is never read as "": the nullable decoder gives a NULL
     * pointer (unquoted NULL in any case, as PostgreSQL reads it), a quoted "NULL" stays text,
     * and the plain decoder, whose callers cannot hold NULL, refuses such an array. */
    arena_t a;
    arena_init(&a);
    char **out = NULL;
    size_t n = 0;
    cr_assert(pgarray_decode_nullable(&a, "{a,NULL,\"NULL\",null,\"\"}", &out, &n));
    cr_assert_eq(n, 5);
    cr_assert_str_eq(out[0], "a");
    cr_assert_null(out[1]);
    cr_assert_str_eq(out[2], "NULL");
    cr_assert_null(out[3]);
    cr_assert_str_eq(out[4], "");
    cr_assert_not(pgarray_decode(&a, "{a,b,NULL}", &out, &n), "NULL is not \"\"");
    cr_assert_eq(n, 0);
    cr_assert(pgarray_decode(&a, "{a,\"NULL\",NULLS}", &out, &n) && n == 3);
    cr_assert_str_eq(out[1], "NULL");
    cr_assert_str_eq(out[2], "NULLS");
    arena_free(&a);
}

Test(auth, bearer_token_must_match_exactly) {
    /* Goal: only the exact token passes; the scheme's letter case and the number of spaces
     * before the token do not matter (RFC 7235 §2.1), anything else about the token does. */
    const char *ok[] = {"Bearer abc123", "bearer abc123", "BEARER abc123", "BeArEr abc123",
                        "Bearer  abc123"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        cr_assert(auth_bearer_matches("abc123", ok[i], strlen(ok[i])), "%s", ok[i]);
    }
    const char *cases[] = {"Bearer abc12",
                           "Bearer abc1234",
                           "bearer ABC123",
                           "abc123",
                           "Bearer abc124",
                           "Bearerabc123",
                           "Basic abc123",
                           "Bearer ",
                           "bearer",
                           "Bearer\tabc123",
                           ""};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_not(auth_bearer_matches("abc123", cases[i], strlen(cases[i])), "%s", cases[i]);
    }
    cr_assert_not(auth_bearer_matches("abc123", NULL, 0));
    cr_assert_not(auth_bearer_matches("", "Bearer ", 7), "an empty token never matches");
    cr_assert_not(auth_bearer_matches("", "bearer  ", 8), "an empty token never matches");
}

Test(ids, are_prefixed_sortable_and_distinct) {
    char a[ID_MAX], b[ID_MAX];
    id_generate("mbr", a);
    cr_assert_eq(strlen(a), 4 + 26);
    cr_assert(strncmp(a, "mbr_", 4) == 0);
    for (int i = 0; i < 1000; i++) {
        id_generate("mbr", b);
        cr_assert(strcmp(a, b) != 0);
        cr_assert(strcmp(a, b) < 0, "ids of one thread strictly increase: %s then %s", a, b);
        memcpy(a, b, ID_MAX);
    }
    char tok[9];
    id_random_token("AB", 8, tok);
    cr_assert_eq(strlen(tok), 8);
    cr_assert_eq(strspn(tok, "AB"), 8);
}

Test(cache, parses_redis_urls) {
    /* Goal: host, port, db, the default user's password and an ACL user are all kept; the
     * scheme's letter case does not matter; malformed URLs are refused. */
    cache_url_t u;
    cr_assert(cache_url_parse("redis://127.0.0.1:6380/2", &u));
    cr_assert_str_eq(u.host, "127.0.0.1");
    cr_assert_eq(u.port, 6380);
    cr_assert_eq(u.db, 2);
    cr_assert_str_eq(u.password, "");
    cr_assert_str_eq(u.user, "");
    cr_assert(cache_url_parse("redis://:p%40ss@redis.internal", &u));
    cr_assert_str_eq(u.host, "redis.internal");
    cr_assert_eq(u.port, 6379);
    cr_assert_str_eq(u.password, "p%40ss");
    cr_assert_str_eq(u.user, "");
    cr_assert(cache_url_parse("redis://app:s3cret@cache:6390/1", &u));
    cr_assert_str_eq(u.user, "app", "the ACL user is kept");
    cr_assert_str_eq(u.password, "s3cret");
    cr_assert_str_eq(u.host, "cache");
    cr_assert_eq(u.port, 6390);
    cr_assert(cache_url_parse("REDIS://Cache", &u));
    cr_assert_str_eq(u.host, "Cache");
    cr_assert_not(cache_url_parse("redis://app:@h", &u), "a user without a password");
    cr_assert_not(cache_url_parse("http://x", &u));
    cr_assert_not(cache_url_parse("redis://h:0", &u));
    cr_assert_not(cache_url_parse("redis://h:1/16", &u));
}

Test(arena, keeps_at_most_the_retained_cap_between_uses) {
    /* Goal: after a large use, arena_reset keeps no more than ARENA_RETAINED_BYTES_MAX for the
     * next use and frees the rest; what it keeps is reused; arena_free keeps nothing. */
    arena_t a;
    arena_init(&a);
    for (int i = 0; i < 64; i++) { /* 64 standard chunks' worth */
        memset(arena_alloc(&a, ARENA_CHUNK_BYTES - 64), 0xab, ARENA_CHUNK_BYTES - 64);
    }
    unsigned char *big = arena_alloc(&a, 1 << 20); /* a 1 MB request, in a chunk of its own */
    memset(big, 0xcd, 1 << 20);
    cr_assert_eq(arena_retained_bytes(&a), 0);
    arena_reset(&a);
    cr_assert_gt(arena_retained_bytes(&a), 0, "some chunks are kept for the next message");
    cr_assert_leq(arena_retained_bytes(&a), ARENA_RETAINED_BYTES_MAX);
    size_t kept = arena_retained_bytes(&a);
    unsigned char *p = arena_alloc(&a, ARENA_INLINE_BYTES + 1); /* past the inline block */
    cr_assert_eq(p[0], 0, "zeroed");
    cr_assert_eq(arena_retained_bytes(&a), kept - ARENA_CHUNK_BYTES, "a kept chunk reused");
    arena_reset(&a);
    cr_assert_leq(arena_retained_bytes(&a), ARENA_RETAINED_BYTES_MAX);
    arena_free(&a);
    cr_assert_eq(arena_retained_bytes(&a), 0);
}

Test(clock, realtime_deadline_is_normalized_and_not_early) {
    /* Goal: the deadline is at least ms after the moment it was asked for, with the
     * nanoseconds carried into seconds (pthread_cond_timedwait refuses tv_nsec >= 10^9). */
    const int64_t cases_ms[] = {0, 1, 999, 1000, 1001, 1500, 86400000};
    for (size_t i = 0; i < sizeof cases_ms / sizeof *cases_ms; i++) {
        struct timespec before;
        clock_gettime(CLOCK_REALTIME, &before);
        struct timespec until = clock_realtime_after_ms(cases_ms[i]);
        cr_assert(until.tv_nsec >= 0 && until.tv_nsec < 1000000000L, "ms %lld",
                  (long long)cases_ms[i]);
        int64_t before_ns = (int64_t)before.tv_sec * 1000000000 + before.tv_nsec;
        int64_t until_ns = (int64_t)until.tv_sec * 1000000000 + until.tv_nsec;
        cr_assert_geq(until_ns - before_ns, cases_ms[i] * 1000000, "ms %lld",
                      (long long)cases_ms[i]);
    }
    int64_t a = clock_monotonic_ms();
    cr_assert_geq(clock_monotonic_ms(), a, "monotonic");
}
