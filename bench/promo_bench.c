/* promo_bench.c -- promo-svc under load: Quote (cached promotions), and Reserve + Release of a
 * checkout with an automatic promotion, a shared code limited per member and per day, and a
 * coupon; once with every checkout on its own counters and once with every checkout on one
 * TOTAL counter (the hot row a promotion with a global limit is). The anchor, in the same run,
 * is a plain libpq transaction doing the rows a Reserve writes (one counter upsert and lock and
 * update, one usage row, one reservation row) from the same number of client threads.
 *
 * Usage: LOYALTY_PG_DSN=... LOYALTY_REDIS_URL=... promo_bench [threads] [seconds]
 * It starts build/promo-svc/promo-svc (or $PROMO_SVC_BIN) on a free port, or uses
 * $PROMO_SVC_ADDR when set. See bench/README.md, section "promo-svc". */
#include "arena.h"
#include "bench_util.h"
#include "loyalty/v1/promo.pb-c.h"
#include "rpc_client.h"

#include <grpc/grpc.h>
#include <libpq-fe.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define THREADS_MAX 64
#define SAMPLES_MAX 400000

static const char *g_addr;
static char g_merchant[64];
static char g_coupon_template[64];

static status_t call(const char *method, const ProtobufCMessage *req, arena_t *a,
                     ProtobufCMessage **resp) {
    ProtobufCMessage *unused = NULL;
    rpc_call_opts_t opts = {.timeout_ms = 30000};
    return rpc_call(rpc_channel_get(g_addr), &loyalty__v1__promo_service__descriptor, method, req,
                    a, resp ? resp : &unused, &opts);
}

/* ---- setup ---- */

static void create(arena_t *a, Loyalty__V1__Promotion *p) {
    Loyalty__V1__PromoCreatePromotionRequest req =
        LOYALTY__V1__PROMO_CREATE_PROMOTION_REQUEST__INIT;
    req.merchant_id = g_merchant;
    static int created;
    char key[64];
    snprintf(key, sizeof key, "bench-promotion-%d", created++);
    req.idempotency_key = key;
    req.promotion = p;
    bench_must(call("CreatePromotion", &req.base, a, NULL), "CreatePromotion");
}

/* Ten automatic promotions that do not apply (other tiers), one 5% that does, and the code
 * SAVE3 (300 off, once per member per day); with `hot`, the 5% has a TOTAL budget too. */
static void setup(arena_t *a, bool hot) {
    Loyalty__V1__PromoConditions other = LOYALTY__V1__PROMO_CONDITIONS__INIT;
    char *tiers[] = {"platinum"};
    other.tier_ids = tiers;
    other.n_tier_ids = 1;
    Loyalty__V1__PromoAmountOff off = LOYALTY__V1__PROMO_AMOUNT_OFF__INIT;
    off.amount_off_cents = 100;
    for (int i = 0; i < 10; i++) {
        Loyalty__V1__Promotion p = LOYALTY__V1__PROMOTION__INIT;
        p.name = "not for this tier";
        p.priority = i;
        p.trigger = LOYALTY__V1__PROMO_TRIGGER__PROMO_TRIGGER_AUTOMATIC;
        p.conditions = &other;
        p.rule_case = LOYALTY__V1__PROMOTION__RULE_AMOUNT_OFF;
        p.amount_off = &off;
        create(a, &p);
    }
    Loyalty__V1__PromoPercentOff pct = LOYALTY__V1__PROMO_PERCENT_OFF__INIT;
    pct.percent_off_bps = 500;
    Loyalty__V1__PromoLimit budget = LOYALTY__V1__PROMO_LIMIT__INIT;
    budget.scope = LOYALTY__V1__PROMO_LIMIT_SCOPE__PROMO_LIMIT_SCOPE_TOTAL;
    budget.max_discount_cents = 1000000000000LL;
    Loyalty__V1__PromoLimit *budgets[] = {&budget};
    Loyalty__V1__Promotion p = LOYALTY__V1__PROMOTION__INIT;
    p.name = "five percent";
    p.priority = 20;
    p.trigger = LOYALTY__V1__PROMO_TRIGGER__PROMO_TRIGGER_AUTOMATIC;
    p.rule_case = LOYALTY__V1__PROMOTION__RULE_PERCENT_OFF;
    p.percent_off = &pct;
    p.limits = hot ? budgets : NULL;
    p.n_limits = hot ? 1 : 0;
    create(a, &p);
    Loyalty__V1__PromoLimit daily = LOYALTY__V1__PROMO_LIMIT__INIT;
    daily.scope = LOYALTY__V1__PROMO_LIMIT_SCOPE__PROMO_LIMIT_SCOPE_MEMBER;
    daily.period = LOYALTY__V1__PROMO_LIMIT_PERIOD__PROMO_LIMIT_PERIOD_DAY;
    daily.max_uses = 1;
    Loyalty__V1__PromoLimit *limits[] = {&daily};
    Loyalty__V1__PromoAmountOff three = LOYALTY__V1__PROMO_AMOUNT_OFF__INIT;
    three.amount_off_cents = 300;
    Loyalty__V1__Promotion code = LOYALTY__V1__PROMOTION__INIT;
    code.name = "save3";
    code.trigger = LOYALTY__V1__PROMO_TRIGGER__PROMO_TRIGGER_CODE;
    code.code_kind = LOYALTY__V1__PROMO_CODE_KIND__PROMO_CODE_KIND_SHARED;
    code.code = "SAVE3";
    code.rule_case = LOYALTY__V1__PROMOTION__RULE_AMOUNT_OFF;
    code.amount_off = &three;
    code.limits = limits;
    code.n_limits = 1;
    create(a, &code);
    Loyalty__V1__PromoCouponTemplate t = LOYALTY__V1__PROMO_COUPON_TEMPLATE__INIT;
    t.name = "bench coupon";
    t.kind = LOYALTY__V1__PROMO_COUPON_KIND__PROMO_COUPON_KIND_AMOUNT_OFF;
    t.amount_off_cents = 200;
    t.valid_days = 30;
    Loyalty__V1__PromoCreateCouponTemplateRequest treq =
        LOYALTY__V1__PROMO_CREATE_COUPON_TEMPLATE_REQUEST__INIT;
    treq.merchant_id = g_merchant;
    treq.idempotency_key = hot ? "bench-template-hot" : "bench-template";
    treq.coupon_template = &t;
    ProtobufCMessage *resp = NULL;
    bench_must(call("CreateCouponTemplate", &treq.base, a, &resp), "CreateCouponTemplate");
    snprintf(g_coupon_template, sizeof g_coupon_template, "%s",
             ((Loyalty__V1__PromoCreateCouponTemplateResponse *)resp)->coupon_template->id);
}

/* ---- load ---- */

typedef enum phase { PHASE_QUOTE, PHASE_RESERVE, PHASE_ANCHOR } phase_t;

typedef struct worker {
    int index;
    phase_t phase;
    int64_t deadline_us;
    int64_t *samples;
    int n, errors;
    char *coupon; /* PHASE_RESERVE: this worker's member's coupon */
} worker_t;

static Loyalty__V1__PromoCart *cart_for(arena_t *a, const char *member, bool code) {
    Loyalty__V1__PromoCart *c = arena_alloc(a, sizeof *c);
    loyalty__v1__promo_cart__init(c);
    c->member_id = (char *)member;
    c->tier_id = "gold";
    c->tier_rank = 2;
    c->tier_discount_bps = 300;
    c->shipping_cents = 500;
    c->lines = arena_alloc(a, 3 * sizeof *c->lines);
    for (int i = 0; i < 3; i++) {
        Loyalty__V1__PromoCartLine *l = arena_alloc(a, sizeof *l);
        loyalty__v1__promo_cart_line__init(l);
        l->line_id = arena_printf(a, "l%d", i);
        l->sku = arena_printf(a, "SKU-%d", i);
        l->category = "general";
        l->quantity = 1 + i;
        l->unit_price_cents = 1999 + 1000 * i;
        c->lines[c->n_lines++] = l;
    }
    if (code) {
        c->codes = arena_alloc(a, sizeof *c->codes);
        c->codes[c->n_codes++] = "save3";
    }
    return c;
}

static char *issue_coupon(arena_t *a, const char *member) {
    Loyalty__V1__PromoIssueCouponRequest req = LOYALTY__V1__PROMO_ISSUE_COUPON_REQUEST__INIT;
    req.merchant_id = g_merchant;
    req.idempotency_key = arena_printf(a, "issue-%s", member);
    req.member_id = (char *)member;
    req.template_id = g_coupon_template;
    req.source = LOYALTY__V1__PROMO_COUPON_SOURCE__PROMO_COUPON_SOURCE_POINTS_MALL;
    ProtobufCMessage *resp = NULL;
    bench_must(call("IssueCoupon", &req.base, a, &resp), "IssueCoupon");
    return ((Loyalty__V1__PromoIssueCouponResponse *)resp)->coupon->id;
}

/* One checkout: Reserve (code + coupon), then Release, as a saga that is cancelled. Each worker
 * is one member with one coupon: the release gives the code's use (once per member per day)
 * and the coupon back, so the next checkout can take them again. */
static bool reserve_release(worker_t *w, int seq) {
    arena_t a;
    arena_init(&a);
    char member[48], checkout[64];
    snprintf(member, sizeof member, "m%02d", w->index);
    snprintf(checkout, sizeof checkout, "co-%02d-%06d", w->index, seq);
    Loyalty__V1__PromoCart *cart = cart_for(&a, member, true);
    cart->coupon_ids = &w->coupon;
    cart->n_coupon_ids = 1;
    int64_t t0 = bench_now_us();
    Loyalty__V1__PromoReserveRequest r = LOYALTY__V1__PROMO_RESERVE_REQUEST__INIT;
    r.merchant_id = g_merchant;
    r.idempotency_key = checkout;
    r.checkout_id = checkout;
    r.cart = cart;
    ProtobufCMessage *resp = NULL;
    status_t st = call("Reserve", &r.base, &a, &resp);
    bool ok = status_is_ok(&st) &&
              ((Loyalty__V1__PromoReserveResponse *)resp)->reservation->quote->n_considered == 13;
    Loyalty__V1__PromoReleaseRequest rel = LOYALTY__V1__PROMO_RELEASE_REQUEST__INIT;
    rel.merchant_id = g_merchant;
    rel.idempotency_key = arena_printf(&a, "%s-release", checkout);
    rel.checkout_id = checkout;
    st = call("Release", &rel.base, &a, NULL);
    ok = ok && status_is_ok(&st);
    if (w->n < SAMPLES_MAX) {
        w->samples[w->n++] = bench_now_us() - t0;
    }
    arena_free(&a);
    return ok;
}

static bool quote_once(worker_t *w, int seq) {
    arena_t a;
    arena_init(&a);
    char member[48];
    snprintf(member, sizeof member, "q%02d-%06d", w->index, seq % 1000);
    Loyalty__V1__PromoQuoteRequest q = LOYALTY__V1__PROMO_QUOTE_REQUEST__INIT;
    q.merchant_id = g_merchant;
    q.cart = cart_for(&a, member, true);
    ProtobufCMessage *resp = NULL;
    int64_t t0 = bench_now_us();
    status_t st = call("Quote", &q.base, &a, &resp);
    if (w->n < SAMPLES_MAX) {
        w->samples[w->n++] = bench_now_us() - t0;
    }
    bool ok =
        status_is_ok(&st) && ((Loyalty__V1__PromoQuoteResponse *)resp)->quote->n_considered == 12;
    arena_free(&a);
    return ok;
}

/* The anchor: the rows of one Reserve and one Release as plain SQL in two transactions. */
static bool anchor_once(PGconn *pg, worker_t *w, int seq, bool hot) {
    char member[48], checkout[64];
    snprintf(member, sizeof member, "M:a%02d-%06d", w->index, seq);
    snprintf(checkout, sizeof checkout, "anchor-%02d-%06d", w->index, seq);
    const char *p[] = {g_merchant, hot ? "T" : member, checkout};
    int64_t t0 = bench_now_us();
    PGresult *r = PQexecParams(
        pg,
        "WITH up AS (INSERT INTO promo.usage_counters (merchant_id, promotion_id, scope_key, "
        " period_key, uses, discount_cents) VALUES ($1, 'anchor', $2, 'L', 1, 300) "
        " ON CONFLICT (merchant_id, promotion_id, scope_key, period_key) DO UPDATE SET "
        " uses = usage_counters.uses + 1, discount_cents = usage_counters.discount_cents + 300 "
        " RETURNING 1), "
        "u AS (INSERT INTO promo.reservation_usages (merchant_id, checkout_id, promotion_id, "
        " scope_key, period_key, uses, discount_cents) VALUES ($1, $3, 'anchor', $2, 'L', 1, "
        " 300)) "
        "INSERT INTO promo.reservations (merchant_id, checkout_id, status, expires_at, "
        " created_at, updated_at) SELECT $1, $3, 1, e + 900, e, e FROM up, "
        " (SELECT extract(epoch FROM now())::bigint AS e) t",
        3, NULL, p, NULL, NULL, 0);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    r = PQexecParams(pg,
                     "WITH d AS (UPDATE promo.usage_counters SET uses = uses - 1, "
                     " discount_cents = discount_cents - 300 WHERE merchant_id = $1 AND "
                     " promotion_id = 'anchor' AND scope_key = $2 AND period_key = 'L') "
                     "UPDATE promo.reservations SET status = 3 WHERE merchant_id = $1 AND "
                     " checkout_id = $3",
                     3, NULL, p, NULL, NULL, 0);
    ok = ok && PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (w->n < SAMPLES_MAX) {
        w->samples[w->n++] = bench_now_us() - t0;
    }
    return ok;
}

static bool g_hot;
static pid_t g_svc_pid; /* 0: a service at $PROMO_SVC_ADDR, not started here */

/* CPU time (user + system) the service has used so far, in milliseconds; -1 when unknown. */
static double svc_cpu_ms(void) {
    if (g_svc_pid <= 0) {
        return -1;
    }
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)g_svc_pid);
    FILE *f = fopen(path, "r");
    if (f == NULL || fgets(buf, sizeof buf, f) == NULL) {
        if (f) {
            fclose(f);
        }
        return -1;
    }
    fclose(f);
    const char *p = strrchr(buf, ')'); /* fields after the command name */
    unsigned long long utime = 0, stime = 0;
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                            &stime) != 2) {
        return -1;
    }
    return (double)(utime + stime) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

static void *worker_main(void *arg) {
    worker_t *w = arg;
    PGconn *pg = NULL;
    if (w->phase == PHASE_ANCHOR) {
        pg = bench_pg_connect();
    }
    for (int seq = 0; bench_now_us() < w->deadline_us; seq++) {
        bool ok = w->phase == PHASE_QUOTE     ? quote_once(w, seq)
                  : w->phase == PHASE_RESERVE ? reserve_release(w, seq)
                                              : anchor_once(pg, w, seq, g_hot);
        w->errors += ok ? 0 : 1;
    }
    if (pg) {
        PQfinish(pg);
    }
    rpc_client_thread_cleanup();
    return NULL;
}

/* Runs `threads` workers of a phase for `seconds` and prints the rate and latencies. */
static double run(const char *what, phase_t phase, int threads, int seconds) {
    static worker_t w[THREADS_MAX];
    pthread_t t[THREADS_MAX];
    arena_t coupons;
    arena_init(&coupons);
    for (int i = 0; i < threads; i++) {
        w[i] = (worker_t){.index = i, .phase = phase};
        if (phase == PHASE_RESERVE) {
            w[i].coupon = issue_coupon(&coupons, arena_printf(&coupons, "m%02d", i));
        }
    }
    double cpu0 = svc_cpu_ms();
    int64_t start = bench_now_us();
    for (int i = 0; i < threads; i++) {
        w[i].deadline_us = start + seconds * 1000000LL;
        w[i].samples = malloc(SAMPLES_MAX * sizeof *w[i].samples);
        pthread_create(&t[i], NULL, worker_main, &w[i]);
    }
    int64_t *all = malloc((size_t)threads * SAMPLES_MAX * sizeof *all);
    int n = 0, errors = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        memcpy(all + n, w[i].samples, (size_t)w[i].n * sizeof *all);
        n += w[i].n;
        errors += w[i].errors;
        free(w[i].samples);
    }
    double secs = (double)(bench_now_us() - start) / 1e6;
    double rate = n / secs;
    arena_free(&coupons);
    double cpu = svc_cpu_ms() - cpu0;
    printf("%-52s %6.0f /s  p50 %6.2f ms  p99 %6.2f ms  svc cpu %5.2f ms/op  errors %d\n", what,
           rate, bench_percentile_ms(all, n, 0.5), bench_percentile_ms(all, n, 0.99),
           phase != PHASE_ANCHOR && n > 0 && cpu0 >= 0 ? cpu / n : 0.0, errors);
    free(all);
    return rate;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int threads = argc > 1 ? atoi(argv[1]) : 8;
    int seconds = argc > 2 ? atoi(argv[2]) : 5;
    if (threads < 1 || threads > THREADS_MAX || seconds < 1 || !getenv("LOYALTY_PG_DSN")) {
        bench_fail("usage: LOYALTY_PG_DSN=... promo_bench [threads 1..64] [seconds]");
    }
    grpc_init();
    rpc_client_init(NULL);
    g_addr = bench_service_addr("promo-svc", NULL, &g_svc_pid);
    printf("promo_bench: %d client threads, %d s per phase\n", threads, seconds);
    for (int hot = 0; hot < 2; hot++) {
        g_hot = hot;
        snprintf(g_merchant, sizeof g_merchant, "bench-promo-%ld-%d", (long)time(NULL), hot);
        arena_t a;
        arena_init(&a);
        setup(&a, hot);
        arena_free(&a);
        printf("-- %s\n", hot ? "every checkout on one TOTAL counter (global budget)"
                              : "every checkout on its own counters (per-member limit)");
        if (!hot) {
            run("Quote (12 promotions, code, cached)", PHASE_QUOTE, threads, seconds);
        }
        double reserve =
            run("Reserve + Release (code, coupon, 12 promotions)", PHASE_RESERVE, threads, seconds);
        double anchor = run("anchor: the same rows as plain SQL (2 transactions)", PHASE_ANCHOR,
                            threads, seconds);
        printf("   Reserve + Release / anchor = %.2f\n", reserve / anchor);
    }
    rpc_client_shutdown();
    grpc_shutdown();
    bench_stop_services();
    return 0;
}
