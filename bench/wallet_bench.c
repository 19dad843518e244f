/* wallet_bench.c -- throughput and latency of wallet-svc's hot paths against a running
 * server, with Health/Check of the same server as the in-run anchor (same client, same
 * threads, no database). Phases, each for `seconds` with `threads` blocking clients:
 *   health    Health/Check
 *   balance   GetBalance over 1,000 wallets
 *   checkout  Hold + CaptureHold of one order (the wallet's part of a checkout), spread over
 *             1,000 wallets; figures are per pair
 *   hot       Hold + VoidHold on one single wallet by every thread (row-lock contention)
 * then VerifyLedger of the whole merchant. Run by bench/wallet_bench.sh, which also measures
 * the PostgreSQL anchor (pgbench tpcb-like). Usage: wallet_bench <host:port> [seconds]
 * [threads] [phases], phases a subset of "hbcx" (health, balance, checkout, hot; default all). */
#include "arena.h"
#include "bench_util.h"
#include "grpc/health/v1/health.pb-c.h"
#include "loyalty/v1/wallet.pb-c.h"
#include "rpc_client.h"

#include <grpc/grpc.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WALLETS 1000
#define THREADS_MAX 64
#define SAMPLES_MAX 400000

typedef enum phase { PHASE_HEALTH, PHASE_BALANCE, PHASE_CHECKOUT, PHASE_HOT } phase_t;

static const char *g_addr;
static char g_merchant[64];
static atomic_bool g_stop;

typedef struct worker {
    pthread_t thread;
    int index;
    phase_t phase;
    int64_t ok;
    int64_t failed;
    int64_t *lat_us;
    int64_t n_lat;
    char last_error[STATUS_REASON_MAX + STATUS_MESSAGE_MAX + 2];
} worker_t;

static status_t call(arena_t *a, const char *method, const ProtobufCMessage *req, void **resp) {
    ProtobufCMessage *out = NULL;
    status_t st = rpc_call(rpc_channel_get(g_addr), &loyalty__v1__wallet_service__descriptor,
                           method, req, a, &out, NULL);
    if (resp) {
        *resp = out;
    }
    return st;
}

static void key(char *buf, size_t cap, int thread, int64_t n, const char *what) {
    static atomic_int run;
    static _Thread_local int my_run = -1;
    if (my_run < 0) {
        my_run = atomic_fetch_add(&run, 1); /* worker threads are new in every phase */
    }
    snprintf(buf, cap, "b-%s-%d-%d-%" PRId64 "-%ld", what, thread, my_run, n, (long)getpid());
}

/* One operation of the worker's phase; true when it succeeded. */
static bool one_op(worker_t *w, arena_t *a, int64_t n, unsigned *seed) {
    char member[32];
    char k[96];
    int wallet = w->phase == PHASE_HOT ? 0 : (int)(rand_r(seed) % WALLETS);
    snprintf(member, sizeof member, "w%d", wallet);
    status_t st;
    if (w->phase == PHASE_HEALTH) {
        Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
        req.service = "";
        ProtobufCMessage *out = NULL;
        st = rpc_call(rpc_channel_get(g_addr), &grpc__health__v1__health__descriptor, "Check",
                      &req.base, a, &out, NULL);
    } else if (w->phase == PHASE_BALANCE) {
        Loyalty__V1__WalletGetBalanceRequest req = LOYALTY__V1__WALLET_GET_BALANCE_REQUEST__INIT;
        req.merchant_id = g_merchant;
        req.member_id = member;
        st = call(a, "GetBalance", &req.base, NULL);
    } else {
        char ref[96];
        key(ref, sizeof ref, w->index, n, w->phase == PHASE_HOT ? "hot" : "order");
        key(k, sizeof k, w->index, n, "hold");
        Loyalty__V1__WalletHoldRequest hold = LOYALTY__V1__WALLET_HOLD_REQUEST__INIT;
        hold.merchant_id = g_merchant;
        hold.idempotency_key = k;
        hold.member_id = member;
        hold.amount_cents = 100;
        hold.reference = ref;
        Loyalty__V1__WalletHoldResponse *h = NULL;
        st = call(a, "Hold", &hold.base, (void **)&h);
        if (status_is_ok(&st)) {
            key(k, sizeof k, w->index, n, "settle");
            if (w->phase == PHASE_CHECKOUT) {
                Loyalty__V1__WalletCaptureHoldRequest c =
                    LOYALTY__V1__WALLET_CAPTURE_HOLD_REQUEST__INIT;
                c.merchant_id = g_merchant;
                c.idempotency_key = k;
                c.hold_id = h->hold->id;
                c.amount_cents = 100;
                st = call(a, "CaptureHold", &c.base, NULL);
            } else {
                Loyalty__V1__WalletVoidHoldRequest v = LOYALTY__V1__WALLET_VOID_HOLD_REQUEST__INIT;
                v.merchant_id = g_merchant;
                v.idempotency_key = k;
                v.hold_id = h->hold->id;
                st = call(a, "VoidHold", &v.base, NULL);
            }
        }
    }
    if (!status_is_ok(&st)) {
        snprintf(w->last_error, sizeof w->last_error, "%s %s", st.reason, st.message);
    }
    return status_is_ok(&st);
}

static void *worker_main(void *arg) {
    worker_t *w = arg;
    unsigned seed = (unsigned)(w->index * 7919 + 1);
    for (int64_t n = 0; !atomic_load(&g_stop); n++) {
        arena_t a;
        arena_init(&a);
        int64_t t0 = bench_now_us();
        bool ok = one_op(w, &a, n, &seed);
        int64_t dt = bench_now_us() - t0;
        arena_free(&a);
        if (ok) {
            w->ok++;
            if (w->n_lat < SAMPLES_MAX) {
                w->lat_us[w->n_lat++] = dt;
            }
        } else {
            w->failed++;
        }
    }
    return NULL;
}

/* Runs one phase and prints "name ops/s p50 p99"; returns ops/s. */
static double run_phase(const char *name, phase_t phase, int threads, int seconds) {
    worker_t *ws = calloc((size_t)threads, sizeof *ws);
    atomic_store(&g_stop, false);
    for (int i = 0; i < threads; i++) {
        ws[i].index = i;
        ws[i].phase = phase;
        ws[i].lat_us = malloc(SAMPLES_MAX * sizeof(int64_t));
        pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]);
    }
    int64_t t0 = bench_now_us();
    sleep((unsigned)seconds);
    atomic_store(&g_stop, true);
    int64_t ok = 0, failed = 0, n_lat = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(ws[i].thread, NULL);
        ok += ws[i].ok;
        failed += ws[i].failed;
        n_lat += ws[i].n_lat;
    }
    double elapsed = (double)(bench_now_us() - t0) / 1e6;
    int64_t *all = malloc((size_t)(n_lat ? n_lat : 1) * sizeof *all);
    int64_t k = 0;
    for (int i = 0; i < threads; i++) {
        memcpy(all + k, ws[i].lat_us, (size_t)ws[i].n_lat * sizeof *all);
        k += ws[i].n_lat;
    }
    double rate = (double)ok / elapsed;
    printf("%-9s %10.0f ops/s  p50 %7.2f ms  p99 %7.2f ms  (%" PRId64 " ok, %" PRId64 " failed)\n",
           name, rate, bench_percentile_ms(all, (int)n_lat, 0.5),
           bench_percentile_ms(all, (int)n_lat, 0.99), ok, failed);
    for (int i = 0; i < threads; i++) {
        if (ws[i].failed) {
            printf("          last error: %s\n", ws[i].last_error);
            break;
        }
    }
    fflush(stdout);
    for (int i = 0; i < threads; i++) {
        free(ws[i].lat_us);
    }
    free(all);
    free(ws);
    return rate;
}

/* Tops up every wallet with plenty of money. */
static bool setup_wallets(void) {
    for (int i = 0; i < WALLETS; i++) {
        arena_t a;
        arena_init(&a);
        char member[32], k[96];
        snprintf(member, sizeof member, "w%d", i);
        key(k, sizeof k, 0, i, "topup");
        Loyalty__V1__WalletTopUpRequest req = LOYALTY__V1__WALLET_TOP_UP_REQUEST__INIT;
        req.merchant_id = g_merchant;
        req.idempotency_key = k;
        req.member_id = member;
        req.paid_cents = 1000000000;
        req.plan_id = "";
        req.payment_ref = k;
        status_t st = call(&a, "TopUp", &req.base, NULL);
        arena_free(&a);
        if (!status_is_ok(&st)) {
            fprintf(stderr, "top-up failed: %s %s\n", st.reason, st.message);
            return false;
        }
    }
    return true;
}

static bool verify(void) {
    arena_t a;
    arena_init(&a);
    Loyalty__V1__WalletVerifyLedgerRequest req = LOYALTY__V1__WALLET_VERIFY_LEDGER_REQUEST__INIT;
    req.merchant_id = g_merchant;
    Loyalty__V1__WalletVerifyLedgerResponse *v = NULL;
    int64_t t0 = bench_now_us();
    /* Linear in the merchant's history, and the bench has just written a lot of it. */
    rpc_call_opts_t opts = {.timeout_ms = 300000};
    ProtobufCMessage *out = NULL;
    status_t st = rpc_call(rpc_channel_get(g_addr), &loyalty__v1__wallet_service__descriptor,
                           "VerifyLedger", &req.base, &a, &out, &opts);
    v = (Loyalty__V1__WalletVerifyLedgerResponse *)out;
    bool ok = status_is_ok(&st) && v->ok;
    if (status_is_ok(&st)) {
        printf("verify    %s: %" PRId64 " transfers, %" PRId64 " accounts, %" PRId64
               " lots, %" PRId64 " holds checked in %.2f s\n",
               v->ok ? "clean" : "DIFFERENCES", v->transfers_checked, v->accounts_checked,
               v->lots_checked, v->holds_checked, (double)(bench_now_us() - t0) / 1e6);
    } else {
        printf("verify    failed: %s %s\n", st.reason, st.message);
    }
    arena_free(&a);
    return ok;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s <host:port> [seconds] [threads]\n", argv[0]);
        return 2;
    }
    g_addr = argv[1];
    int seconds = argc > 2 ? atoi(argv[2]) : 8;
    int threads = argc > 3 ? atoi(argv[3]) : 16;
    if (seconds <= 0 || threads <= 0 || threads > THREADS_MAX) {
        fprintf(stderr, "seconds > 0, 1 <= threads <= %d\n", THREADS_MAX);
        return 2;
    }
    snprintf(g_merchant, sizeof g_merchant, "bench-%ld-%ld", (long)time(NULL), (long)getpid());
    grpc_init();
    rpc_client_init(NULL);
    int rc = 0;
    if (!setup_wallets()) {
        rc = 1;
    } else {
        printf("wallet-svc at %s, %d threads, %d s per phase, merchant %s\n", g_addr, threads,
               seconds, g_merchant);
        const char *phases = argc > 4 ? argv[4] : "hbcx";
        double health = 0, balance = 0, checkout = 0;
        if (strchr(phases, 'h')) {
            health = run_phase("health", PHASE_HEALTH, threads, seconds);
        }
        if (strchr(phases, 'b')) {
            balance = run_phase("balance", PHASE_BALANCE, threads, seconds);
        }
        if (strchr(phases, 'c')) {
            checkout = run_phase("checkout", PHASE_CHECKOUT, threads, seconds);
        }
        if (strchr(phases, 'x')) {
            run_phase("hot", PHASE_HOT, threads, seconds);
        }
        if (health > 0) {
            printf("ratios    balance %.2fx health, checkout pairs %.3fx health\n",
                   balance / health, checkout / health);
        }
        rc = verify() ? 0 : 1;
    }
    rpc_client_shutdown();
    grpc_shutdown();
    return rc;
}
