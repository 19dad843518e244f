/* test_runtime_metrics.c -- the side HTTP port (METRICS_ADDR) seen from outside, with
 * member-svc as the vehicle: exact counter deltas on /metrics after known calls, /livez and
 * /readyz through a PostgreSQL outage (a proxy that cuts the connections, tests/support/pgproxy.h)
 * and during the shutdown drain, the Redis error counter during a Redis outage, and the port
 * being off when METRICS_ADDR is empty. */
#include "harness.h"
#include "loyalty/v1/member.pb-c.h"
#include "member_client.h"
#include "pgproxy.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static arena_t arena;

static void setup(void) {
    harness_init();
    arena_init(&arena);
}

static void teardown(void) {
    arena_free(&arena);
    harness_fini();
    pgproxy_stop();
}

TestSuite(runtime_metrics, .init = setup, .fini = teardown, .timeout = 240);

#define MEMBER_SVC "loyalty.v1.MemberService"

static char *scrape(const svc_proc_t *svc) {
    char *body = NULL;
    int code = harness_http_get(svc->metrics_port, "/metrics", &body);
    cr_assert_eq(code, 200, "GET /metrics answered %d", code);
    return body;
}

/* grpc_server_handled_total of a unary MemberService method with a code. */
static const char *handled(const char *method, const char *code) {
    static char series[8][256];
    static int slot;
    char *s = series[slot++ % 8];
    snprintf(s, 256,
             "grpc_server_handled_total{grpc_type=\"unary\",grpc_service=\"" MEMBER_SVC
             "\",grpc_method=\"%s\",grpc_code=\"%s\"}",
             method, code);
    return s;
}

static status_t get_by_phone(const char *addr, const char *merchant, const char *phone) {
    Loyalty__V1__GetMemberRequest req = LOYALTY__V1__GET_MEMBER_REQUEST__INIT;
    req.merchant_id = (char *)merchant;
    req.lookup_case = LOYALTY__V1__GET_MEMBER_REQUEST__LOOKUP_PHONE;
    req.phone = (char *)phone;
    return rpc_call(rpc_channel_get(addr), &loyalty__v1__member_service__descriptor, "GetMember",
                    &req.base, &arena, NULL, NULL);
}

static status_t get_by_id(const char *addr, const char *merchant, const char *member_id) {
    Loyalty__V1__GetMemberRequest req = LOYALTY__V1__GET_MEMBER_REQUEST__INIT;
    req.merchant_id = (char *)merchant;
    req.lookup_case = LOYALTY__V1__GET_MEMBER_REQUEST__LOOKUP_MEMBER_ID;
    req.member_id = (char *)member_id;
    return rpc_call(rpc_channel_get(addr), &loyalty__v1__member_service__descriptor, "GetMember",
                    &req.base, &arena, NULL, NULL);
}

Test(runtime_metrics, counters_move_by_exactly_the_calls_made) {
    /* Goal: after known calls the server counters move by exactly one per call under the
     * method and code each was answered with (INVALID_ARGUMENT as InvalidArgument, OK as OK),
     * the failure's reason is counted once, the latency histogram counts every call, and the
     * PostgreSQL counters see the mutation's transaction. */
    static svc_proc_t svc; /* static: harness_fini reaps it after the test's frame is gone */
    harness_start(&svc, "member-svc", NULL);
    const char *m = harness_merchant("met");
    char *before = scrape(&svc);
    status_t bad = get_by_phone(svc.addr, "", "+6591230001"); /* no merchant */
    cr_assert_eq(bad.code, STATUS_INVALID_ARGUMENT, "got %s", status_code_name(bad.code));
    const char *id = member_create_id(svc.addr, &arena, m,
                                      &(member_spec_t){.name = "Metric", .phone = "+6591230002"});
    status_t ok = get_by_id(svc.addr, m, id);
    cr_assert(status_is_ok(&ok), "%s", ok.message);
    char *after = scrape(&svc);

    struct {
        const char *series;
        double delta;
    } want[] = {
        {handled("GetMember", "InvalidArgument"), 1},
        {handled("GetMember", "OK"), 1},
        {handled("GetMember", "NotFound"), 0},
        {handled("CreateMember", "OK"), 1},
        {handled("CreateMember", "InvalidArgument"), 0},
        {"grpc_server_handling_seconds_count{grpc_type=\"unary\",grpc_service=\"" MEMBER_SVC
         "\",grpc_method=\"GetMember\"}",
         2},
        {"grpc_server_handling_seconds_bucket{grpc_type=\"unary\",grpc_service=\"" MEMBER_SVC
         "\",grpc_method=\"CreateMember\",le=\"+Inf\"}",
         1},
        {"loyalty_db_transactions_total{grpc_method=\"CreateMember\"}", 1},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        double d = harness_metric(after, want[i].series) - harness_metric(before, want[i].series);
        cr_assert_eq(d, want[i].delta, "%s moved by %g, want %g\n%s", want[i].series, d,
                     want[i].delta, after);
    }
    char reason[256];
    snprintf(reason, sizeof reason,
             "loyalty_error_reason_total{grpc_service=\"" MEMBER_SVC
             "\",grpc_method=\"GetMember\",reason=\"%s\"}",
             bad.reason);
    cr_assert_eq(harness_metric(after, reason) - harness_metric(before, reason), 1, "%s", reason);
    double trips =
        harness_metric(after, "loyalty_db_round_trips_total{grpc_method=\"CreateMember\"}") -
        harness_metric(before, "loyalty_db_round_trips_total{grpc_method=\"CreateMember\"}");
    cr_assert(trips >= 1, "CreateMember made %g round trips", trips);
    cr_assert(harness_metric(after, "loyalty_db_connections_open") >= 1);
    cr_assert_eq(harness_metric(after, "loyalty_ready"), 1);
    cr_assert_eq(harness_metric(after, "loyalty_db_up"), 1);
    cr_assert(harness_metric(after, "process_resident_memory_bytes") > 1e6);
    cr_assert(harness_metric(after, "process_open_fds") > 3);
    cr_assert(harness_metric(after, "process_start_time_seconds") > (double)time(NULL) - 3600);
    cr_assert(strstr(after, "# TYPE grpc_server_handling_seconds histogram\n") != NULL);
    free(before);
    free(after);
    cr_assert_eq(harness_stop(&svc), 0);
}

/* Polls GET path until it answers `code`; false after 30 s. */
static bool http_becomes(int port, const char *path, int code) {
    for (int i = 0; i < 600; i++) {
        if (harness_http_get(port, path, NULL) == code) {
            return true;
        }
        usleep(50 * 1000);
    }
    return false;
}

Test(runtime_metrics, readyz_follows_postgresql_and_livez_does_not) {
    /* Goal: /readyz answers 503 while PostgreSQL is unreachable and 200 again once it is
     * back; /livez answers 200 throughout; loyalty_ready and loyalty_db_up say the same. */
    int proxy = pgproxy_start(pgproxy_dsn_port(harness_pg_dsn()));
    static char dsn_env[700];
    snprintf(dsn_env, sizeof dsn_env, "LOYALTY_PG_DSN=%s", pgproxy_dsn(harness_pg_dsn(), proxy));
    const char *env[] = {dsn_env, NULL};
    static svc_proc_t svc; /* static: harness_fini reaps it after the test's frame is gone */
    harness_start(&svc, "member-svc", env);
    cr_assert_eq(harness_http_get(svc.metrics_port, "/readyz", NULL), 200);
    cr_assert_eq(harness_http_get(svc.metrics_port, "/livez", NULL), 200);
    pgproxy_arm("SELECT 1", 1); /* the readiness probe's next query cuts PostgreSQL off */
    cr_assert(http_becomes(svc.metrics_port, "/readyz", 503), "/readyz stayed 200");
    cr_assert_eq(harness_http_get(svc.metrics_port, "/livez", NULL), 200);
    char *text = scrape(&svc);
    cr_assert_eq(harness_metric(text, "loyalty_ready"), 0, "%s", text);
    cr_assert_eq(harness_metric(text, "loyalty_db_up"), 0, "%s", text);
    free(text);
    pgproxy_restore();
    cr_assert(http_becomes(svc.metrics_port, "/readyz", 200), "/readyz stayed 503");
    text = scrape(&svc);
    cr_assert_eq(harness_metric(text, "loyalty_ready"), 1, "%s", text);
    free(text);
    cr_assert_eq(harness_stop(&svc), 0);
}

Test(runtime_metrics, readyz_is_503_during_the_shutdown_drain) {
    /* Goal: after SIGTERM /readyz answers 503 during SHUTDOWN_DRAIN_MS while /livez still
     * answers 200; the process then exits 0. */
    const char *env[] = {"SHUTDOWN_DRAIN_MS=3000", NULL};
    static svc_proc_t svc; /* static: harness_fini reaps it after the test's frame is gone */
    harness_start(&svc, "member-svc", env);
    cr_assert_eq(harness_http_get(svc.metrics_port, "/readyz", NULL), 200);
    harness_signal_term(&svc);
    cr_assert(http_becomes(svc.metrics_port, "/readyz", 503), "/readyz stayed 200");
    cr_assert_eq(harness_http_get(svc.metrics_port, "/livez", NULL), 200);
    cr_assert_eq(harness_wait(&svc), 0);
}

Test(runtime_metrics, redis_outage_moves_the_error_counter) {
    /* Goal: reads served while Redis is down count Redis errors; with Redis up, a repeated
     * read counts a cache hit (near or Redis). */
    static redis_proc_t redis;
    harness_redis_start(&redis);
    static char redis_env[128];
    snprintf(redis_env, sizeof redis_env, "LOYALTY_REDIS_URL=%s", redis.url);
    const char *env[] = {redis_env, NULL};
    static svc_proc_t svc; /* static: harness_fini reaps it after the test's frame is gone */
    harness_start(&svc, "member-svc", env);
    const char *m = harness_merchant("redis");
    const char *id = member_create_id(svc.addr, &arena, m,
                                      &(member_spec_t){.name = "Metric", .phone = "+6591230003"});
    char *before = scrape(&svc);
    for (int i = 0; i < 3; i++) {
        cr_assert(status_is_ok(&(status_t){get_by_id(svc.addr, m, id).code}));
    }
    char *warm = scrape(&svc);
    double hits =
        harness_metric(warm, "loyalty_cache_requests_total{cache=\"near\",result=\"hit\"}") +
        harness_metric(warm, "loyalty_cache_requests_total{cache=\"redis\",result=\"hit\"}") -
        harness_metric(before, "loyalty_cache_requests_total{cache=\"near\",result=\"hit\"}") -
        harness_metric(before, "loyalty_cache_requests_total{cache=\"redis\",result=\"hit\"}");
    cr_assert(hits >= 1, "no cache hit in 3 reads\n%s", warm);
    cr_assert(harness_metric(warm, "loyalty_redis_calls_total") >
              harness_metric(before, "loyalty_redis_calls_total"));
    double errors_before = harness_metric(warm, "loyalty_redis_errors_total");
    harness_redis_stop(&redis);
    bool moved = false;
    for (int i = 0; i < 200 && !moved; i++) { /* reads until one finds Redis down */
        status_t st = get_by_id(svc.addr, m, id);
        cr_assert(status_is_ok(&st), "served from PostgreSQL without Redis: %s", st.message);
        char *text = scrape(&svc);
        moved = harness_metric(text, "loyalty_redis_errors_total") > errors_before;
        free(text);
        usleep(50 * 1000);
    }
    cr_assert(moved, "loyalty_redis_errors_total never moved");
    free(before);
    free(warm);
    cr_assert_eq(harness_stop(&svc), 0);
}

Test(runtime_metrics, empty_metrics_addr_serves_nothing) {
    /* Goal: METRICS_ADDR= (empty) disables the port: nothing listens where it would be. */
    const char *env[] = {"METRICS_ADDR=", NULL};
    static svc_proc_t svc; /* static: harness_fini reaps it after the test's frame is gone */
    harness_start(&svc, "member-svc", env);
    cr_assert_eq(harness_http_get(svc.metrics_port, "/livez", NULL), 0);
    cr_assert_eq(harness_stop(&svc), 0);
}

Test(runtime_metrics, gateway_reports_its_sagas) {
    /* Goal: the gateway's recovery job counts its passes and sets the saga gauges of every
     * type (0 included), so alert rules find their series from the start. */
    static svc_proc_t gw;
    harness_start(&gw, "gateway", NULL);
    char *text = NULL;
    for (int i = 0; i < 600; i++) { /* the first pass runs at start */
        free(text);
        text = scrape(&gw);
        if (harness_metric(text, "loyalty_saga_recovery_runs_total") >= 1 &&
            strstr(text, "\nloyalty_sagas_needs_attention ") != NULL) {
            break;
        }
        usleep(50 * 1000);
    }
    cr_assert(harness_metric(text, "loyalty_saga_recovery_runs_total") >= 1, "%s", text);
    cr_assert(
        strstr(text, "loyalty_sagas_in_progress{saga_type=\"checkout\",state=\"reserved\"} ") !=
            NULL,
        "%s", text);
    cr_assert(strstr(text, "loyalty_sagas_oldest_in_progress_age_seconds{saga_type=\"refund\"} ") !=
                  NULL,
              "%s", text);
    free(text);
    cr_assert_eq(harness_stop(&gw), 0);
}
