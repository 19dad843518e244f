/* points_bench.c -- points-svc: balance reads and holds for a member with a short history against
 * one with a long one (docs/architecture.md#performance-targets "balances are O(1) reads": the
 * flatness anchor is the short history, measured in the same run), and throughput of GetBalance,
 * Hold+CommitHold on distinct members and Hold on one contended member, against Health/Check of the
 * same server (the RPC floor). The service runs without Redis, so every balance read goes to
 * PostgreSQL.
 *
 * Usage: LOYALTY_PG_DSN=... points_bench [long_history_lots] [seconds] [threads]
 * It starts build/points-svc/points-svc (or $POINTS_SVC_BIN) on a free port, or uses
 * $POINTS_SVC_ADDR when set. Histories are seeded with SQL into the `points` schema in the same
 * shape the service writes (lots, EARN entries with their lot shares, the account), so that
 * VerifyLedger stays clean; the measured calls go over gRPC. See bench/README.md. */
#include "arena.h"
#include "bench_util.h"
#include "grpc/health/v1/health.pb-c.h"
#include "loyalty/v1/points.pb-c.h"
#include "rpc_client.h"

#include <grpc/grpc.h>
#include <libpq-fe.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SAMPLES_MAX 2000
#define THREADS_MAX 64
#define LAT_MAX 400000

static const char *g_addr;
static char g_merchant[64];

static status_t call(const char *method, const void *req, arena_t *a, void *resp) {
    ProtobufCMessage *unused = NULL;
    return rpc_call(rpc_channel_get(g_addr), &loyalty__v1__points_service__descriptor, method,
                    (const ProtobufCMessage *)req, a, resp ? (ProtobufCMessage **)resp : &unused,
                    NULL);
}

/* Without Redis (every read from PostgreSQL) and with the timer off. */
static const char *const g_service_env[] = {"LOYALTY_REDIS_URL=", "JOB_INTERVAL_S=0", NULL};

/* A member with `lots` one-point lots earned over the past, 30 of them expiring within 30 days
 * and the rest later, one EARN entry per lot (naming it), and the account totals. */
static void seed_member(PGconn *pg, const char *member, int lots) {
    char n[24];
    snprintf(n, sizeof n, "%d", lots);
    const char *p[] = {g_merchant, member, n};
    bench_sql(pg,
              "INSERT INTO points.lots (merchant_id, id, member_id, source, reference, points, "
              " remaining, status, earned_at, available_at, expiry_date, expires_at) "
              "SELECT $1, 'lot_' || $2 || '_' || g, $2, 5, '', 1, 1, 2, now() - interval '1 day', "
              " now() - interval '1 day', d, (d + 1)::timestamp AT TIME ZONE 'UTC' "
              "FROM generate_series(1, $3::int) g, "
              " LATERAL (SELECT (now() AT TIME ZONE 'UTC')::date + CASE WHEN g <= 30 THEN 10 + g "
              "  ELSE 40 + g % 1000 END AS d) x",
              3, p);
    bench_sql(pg,
              "INSERT INTO points.entries (merchant_id, id, member_id, kind, available_delta, "
              " available_after, source, created_at, lot_id, lot_points) "
              "SELECT $1, 'pen_' || $2 || '_' || g, $2, 1, 1, g, 5, now() - interval '1 day', "
              " 'lot_' || $2 || '_' || g, 1 "
              "FROM generate_series(1, $3::int) g ORDER BY g",
              3, p);
    bench_sql(pg,
              "INSERT INTO points.accounts (merchant_id, member_id, lots_points, lifetime_earned, "
              " next_due_at) VALUES ($1, $2, $3::bigint, $3::bigint, (SELECT min(expires_at) FROM "
              " points.lots WHERE merchant_id = $1 AND member_id = $2))",
              3, p);
}

static void balance_once(arena_t *a, const char *member) {
    Loyalty__V1__PointsGetBalanceRequest req = LOYALTY__V1__POINTS_GET_BALANCE_REQUEST__INIT;
    req.merchant_id = g_merchant;
    req.member_id = (char *)member;
    bench_must(call("GetBalance", &req, a, NULL), "GetBalance");
}

static void hold_release_once(arena_t *a, const char *member, int i) {
    char key[64], ref[64];
    snprintf(key, sizeof key, "h-%s-%d", member, i);
    snprintf(ref, sizeof ref, "c-%s-%d", member, i);
    Loyalty__V1__PointsHoldRequest req = LOYALTY__V1__POINTS_HOLD_REQUEST__INIT;
    req.merchant_id = g_merchant;
    req.idempotency_key = key;
    req.member_id = (char *)member;
    req.points = 3;
    req.reference = ref;
    Loyalty__V1__PointsHoldResponse *r = NULL;
    bench_must(call("Hold", &req, a, &r), "Hold");
    Loyalty__V1__PointsReleaseHoldRequest rel = LOYALTY__V1__POINTS_RELEASE_HOLD_REQUEST__INIT;
    snprintf(key, sizeof key, "r-%s-%d", member, i);
    rel.merchant_id = g_merchant;
    rel.idempotency_key = key;
    rel.target_case = LOYALTY__V1__POINTS_RELEASE_HOLD_REQUEST__TARGET_HOLD_ID;
    rel.hold_id = r->hold->id;
    bench_must(call("ReleaseHold", &rel, a, NULL), "ReleaseHold");
}

/* Sequential latency of a call for one member: p50 and p99 in ms. */
static void latency(const char *label, const char *member, int samples, bool hold) {
    static int64_t lat[SAMPLES_MAX];
    arena_t a;
    arena_init(&a);
    for (int i = 0; i < samples; i++) {
        int64_t t0 = bench_now_us();
        if (hold) {
            hold_release_once(&a, member, i);
        } else {
            balance_once(&a, member);
        }
        lat[i] = bench_now_us() - t0;
        arena_free(&a);
        arena_init(&a);
    }
    arena_free(&a);
    printf("  %-44s p50 %6.2f ms  p99 %6.2f ms\n", label, bench_percentile_ms(lat, samples, 0.5),
           bench_percentile_ms(lat, samples, 0.99));
}

typedef enum { LOAD_HEALTH, LOAD_BALANCE, LOAD_HOLD_COMMIT, LOAD_HOT_HOLD } load_t;

typedef struct worker {
    load_t kind;
    int index;
    int64_t until_us;
    int64_t calls;
    int64_t refused;
    int64_t *lat;
    int n_lat;
} worker_t;

static void *worker_main(void *p) {
    worker_t *w = p;
    arena_t a;
    arena_init(&a);
    char member[32], key[96], ref[96];
    snprintf(member, sizeof member, "load-%d", w->index);
    for (int64_t i = 0; bench_now_us() < w->until_us; i++) {
        int64_t t0 = bench_now_us();
        status_t st = status_ok();
        if (w->kind == LOAD_HEALTH) {
            Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
            ProtobufCMessage *resp = NULL;
            st = rpc_call(rpc_channel_get(g_addr), &grpc__health__v1__health__descriptor, "Check",
                          &req.base, &a, &resp, NULL);
        } else if (w->kind == LOAD_BALANCE) {
            Loyalty__V1__PointsGetBalanceRequest req =
                LOYALTY__V1__POINTS_GET_BALANCE_REQUEST__INIT;
            req.merchant_id = g_merchant;
            req.member_id = member;
            st = call("GetBalance", &req, &a, NULL);
        } else {
            const char *who = w->kind == LOAD_HOT_HOLD ? "hot" : member;
            snprintf(key, sizeof key, "%d-%d-%lld-h", (int)w->kind, w->index, (long long)i);
            snprintf(ref, sizeof ref, "%d-%d-%lld", (int)w->kind, w->index, (long long)i);
            Loyalty__V1__PointsHoldRequest req = LOYALTY__V1__POINTS_HOLD_REQUEST__INIT;
            req.merchant_id = g_merchant;
            req.idempotency_key = key;
            req.member_id = (char *)who;
            req.points = 1;
            req.reference = ref;
            Loyalty__V1__PointsHoldResponse *r = NULL;
            st = call("Hold", &req, &a, &r);
            if (status_is_ok(&st)) {
                Loyalty__V1__PointsCommitHoldRequest c =
                    LOYALTY__V1__POINTS_COMMIT_HOLD_REQUEST__INIT;
                snprintf(key, sizeof key, "%d-%d-%lld-c", (int)w->kind, w->index, (long long)i);
                c.merchant_id = g_merchant;
                c.idempotency_key = key;
                c.target_case = LOYALTY__V1__POINTS_COMMIT_HOLD_REQUEST__TARGET_HOLD_ID;
                c.hold_id = r->hold->id;
                st = call("CommitHold", &c, &a, NULL);
            }
        }
        if (!status_is_ok(&st)) {
            w->refused++;
        }
        if (w->n_lat < LAT_MAX / THREADS_MAX) {
            w->lat[w->n_lat++] = bench_now_us() - t0;
        }
        w->calls++;
        arena_free(&a);
        arena_init(&a);
    }
    arena_free(&a);
    rpc_client_thread_cleanup();
    return NULL;
}

static double load(const char *label, load_t kind, int threads, int seconds, double anchor) {
    static int64_t lat[LAT_MAX];
    pthread_t t[THREADS_MAX];
    worker_t w[THREADS_MAX];
    int64_t start = bench_now_us(), until = start + (int64_t)seconds * 1000000;
    for (int i = 0; i < threads; i++) {
        w[i] = (worker_t){
            .kind = kind, .index = i, .until_us = until, .lat = lat + i * (LAT_MAX / THREADS_MAX)};
        pthread_create(&t[i], NULL, worker_main, &w[i]);
    }
    int64_t calls = 0, refused = 0;
    int n = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        calls += w[i].calls;
        refused += w[i].refused;
        memmove(lat + n, w[i].lat, (size_t)w[i].n_lat * sizeof *lat);
        n += w[i].n_lat;
    }
    double rate = (double)calls / ((double)(bench_now_us() - start) / 1e6);
    printf("  %-36s %9.0f /s  p50 %6.2f ms  p99 %6.2f ms", label, rate,
           bench_percentile_ms(lat, n, 0.5), bench_percentile_ms(lat, n, 0.99));
    if (anchor > 0) {
        printf("  (%.2fx Health)", rate / anchor);
    }
    if (refused) {
        printf("  [%lld failed]", (long long)refused);
    }
    printf("\n");
    return rate;
}

int main(int argc, char **argv) {
    int long_lots = argc > 1 ? atoi(argv[1]) : 20000;
    int seconds = argc > 2 ? atoi(argv[2]) : 8;
    int threads = argc > 3 ? atoi(argv[3]) : 16;
    if (long_lots < 100 || seconds < 1 || threads < 1 || threads > THREADS_MAX) {
        bench_fail("usage: points_bench [long_history_lots >= 100] [seconds] [threads <= 64]");
    }
    PGconn *pg = bench_pg_connect();
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    grpc_init();
    rpc_client_init(NULL);
    g_addr = bench_service_addr("points-svc", g_service_env, NULL);
    snprintf(g_merchant, sizeof g_merchant, "bench-%d-%ld", (int)getpid(), (long)time(NULL));
    int64_t t0 = bench_now_us();
    seed_member(pg, "short", 100);
    seed_member(pg, "long", long_lots);
    bench_sql(pg, "ANALYZE points.lots", 0, NULL);
    printf("points_bench: merchant %s, seeded 100 and %d lots in %.1f s\n", g_merchant, long_lots,
           (double)(bench_now_us() - t0) / 1e6);

    arena_t a;
    arena_init(&a);
    /* Points for the load phases: one member per thread, and the contended one. */
    for (int i = 0; i <= threads; i++) {
        char member[32], key[48];
        snprintf(member, sizeof member, i < threads ? "load-%d" : "hot", i);
        snprintf(key, sizeof key, "seed-%d", i);
        Loyalty__V1__PointsEarnRequest req = LOYALTY__V1__POINTS_EARN_REQUEST__INIT;
        req.merchant_id = g_merchant;
        req.idempotency_key = key;
        req.member_id = member;
        req.amount_case = LOYALTY__V1__POINTS_EARN_REQUEST__AMOUNT_POINTS;
        req.points = 1000000;
        bench_must(call("Earn", &req, &a, NULL), "Earn");
    }
    arena_free(&a);

    printf("balance and hold latency, one client, history length as the variable:\n");
    latency("GetBalance, 100 lots (anchor)", "short", SAMPLES_MAX, false);
    latency("GetBalance, long history", "long", SAMPLES_MAX, false);
    latency("Hold+ReleaseHold, 100 lots (anchor)", "short", SAMPLES_MAX / 4, true);
    latency("Hold+ReleaseHold, long history", "long", SAMPLES_MAX / 4, true);

    printf("throughput, %d client threads, %d s each:\n", threads, seconds);
    double health = load("Health/Check (anchor)", LOAD_HEALTH, threads, seconds, 0);
    load("GetBalance (PostgreSQL)", LOAD_BALANCE, threads, seconds, health);
    load("Hold+CommitHold, own member each", LOAD_HOLD_COMMIT, threads, seconds, health);
    load("Hold+CommitHold, one hot member", LOAD_HOT_HOLD, threads, seconds, health);

    Loyalty__V1__PointsVerifyLedgerRequest v = LOYALTY__V1__POINTS_VERIFY_LEDGER_REQUEST__INIT;
    v.merchant_id = g_merchant;
    Loyalty__V1__PointsVerifyLedgerResponse *vr = NULL;
    arena_init(&a);
    t0 = bench_now_us();
    bench_must(call("VerifyLedger", &v, &a, &vr), "VerifyLedger");
    bool clean = vr->ok;
    printf("VerifyLedger: %s, %lld members, %lld lots, %.2f s\n", clean ? "clean" : "DIFFERENCES",
           (long long)vr->members_checked, (long long)vr->lots_checked,
           (double)(bench_now_us() - t0) / 1e6);
    arena_free(&a);
    PQfinish(pg);
    rpc_client_shutdown();
    bench_stop_services();
    grpc_shutdown();
    return clean ? 0 : 1;
}
