/* checkout_bench.c -- the gateway's checkout under load: N concurrent storefront clients, each
 * doing full checkouts (BeginCheckout + CompleteCheckout) that use points, wallet money and an
 * automatic promotion, and whose purchases reward three referral levels, for a fixed time.
 * Prints checkouts/s, p50/p95/p99 latency of a whole checkout, errors by reason, and each
 * service's peak resident memory (VmHWM from /proc/<pid>/status). With a rate, clients pace
 * themselves to that many checkouts per second in total (latency at a given load).
 *
 * Set-up (a fresh merchant each run): points 1 per 1.00, 100 points = 1.00 (at most 50% of an
 * order), 1 growth per point; one tier (5% member discount); an automatic 10%-off promotion;
 * a three-level referral programme (1%, 0.5%, 0.2% of the paid amount as points); `members`
 * buyers in referral chains of 50 (each buyer's three ancestors are other buyers), each with
 * 10,000,000 points and 1,000,000.00 in the wallet. A checkout: 2 x 12.50 + 1 x 30.00, 2.00
 * shipping; 100 points; 10.00 from the wallet; the rest "paid" externally.
 *
 * Usage (bench/checkout_bench.sh runs it, with the PostgreSQL monolith anchor in the same run):
 *   checkout_bench <gateway> <member> <points> <wallet> <referral> <promo> <seconds> <clients>
 *                  [rate] [pids: name=pid,name=pid,...] [members] */
#include "arena.h"
#include "bench_util.h"
#include "loyalty/v1/gateway.pb-c.h"
#include "loyalty/v1/member.pb-c.h"
#include "loyalty/v1/points.pb-c.h"
#include "loyalty/v1/promo.pb-c.h"
#include "loyalty/v1/referral.pb-c.h"
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

#define CLIENTS_MAX 256
#define MEMBERS_MAX 10000
#define CHAIN 50
#define SAMPLES_MAX 1000000
#define REASONS_MAX 16

enum { GW, MEMBER, POINTS, WALLET, REFERRAL, PROMO, N_SVC };
static const char *g_addr[N_SVC];
static char g_merchant[64];
static char *g_members[MEMBERS_MAX];
static int g_n_members = 1000;
static atomic_bool g_stop;
static double g_rate; /* checkouts/s in total; 0 = as fast as possible */
static int g_clients;

static const ProtobufCServiceDescriptor *const g_desc[N_SVC] = {
    &loyalty__v1__gateway__descriptor,          &loyalty__v1__member_service__descriptor,
    &loyalty__v1__points_service__descriptor,   &loyalty__v1__wallet_service__descriptor,
    &loyalty__v1__referral_service__descriptor, &loyalty__v1__promo_service__descriptor};

static status_t call(arena_t *a, int svc, const char *method, const void *req, void *resp) {
    rpc_call_opts_t opts = {.timeout_ms = 30000};
    return rpc_call(rpc_channel_get(g_addr[svc]), g_desc[svc], method,
                    (const ProtobufCMessage *)req, a, (ProtobufCMessage **)resp, &opts);
}

static char *key(arena_t *a, const char *what, long n) {
    return arena_printf(a, "bench-%s-%ld-%ld-%ld", what, (long)getpid(), (long)time(NULL), n);
}

/* ---- merchant set-up (any refusal ends the program: bench_must) ---- */

static void setup_rules(arena_t *a) {
    Loyalty__V1__PointsSettings s = LOYALTY__V1__POINTS_SETTINGS__INIT;
    s.time_zone = "UTC";
    s.earn_unit_cents = 100;
    s.earn_points_per_unit = 1;
    s.expiry_policy = LOYALTY__V1__POINTS_EXPIRY_POLICY__POINTS_EXPIRY_POLICY_NEVER;
    s.redeem_points = 100;
    s.redeem_value_cents = 100;
    s.redeem_min_points = 100;
    s.redeem_max_order_share_bps = 5000;
    s.growth_per_point_bps = 10000;
    Loyalty__V1__PointsUpdateSettingsRequest ps = LOYALTY__V1__POINTS_UPDATE_SETTINGS_REQUEST__INIT;
    ps.merchant_id = g_merchant;
    ps.idempotency_key = key(a, "points", 0);
    ps.settings = &s;
    char *points_fields[] = {"time_zone",
                             "earn_unit_cents",
                             "earn_points_per_unit",
                             "expiry_policy",
                             "redeem_points",
                             "redeem_value_cents",
                             "redeem_min_points",
                             "redeem_max_order_share_bps",
                             "growth_per_point_bps"};
    Google__Protobuf__FieldMask points_mask = GOOGLE__PROTOBUF__FIELD_MASK__INIT;
    points_mask.paths = points_fields;
    points_mask.n_paths = sizeof points_fields / sizeof points_fields[0];
    ps.update_mask = &points_mask;
    Loyalty__V1__MemberTier t = LOYALTY__V1__MEMBER_TIER__INIT;
    t.name = "Member";
    t.rank = 1;
    t.discount_bps = 500;
    t.earn_multiplier_bps = 10000;
    Loyalty__V1__MemberCreateTierRequest tr = LOYALTY__V1__MEMBER_CREATE_TIER_REQUEST__INIT;
    tr.merchant_id = g_merchant;
    tr.idempotency_key = key(a, "tier", 0);
    tr.tier = &t;
    Loyalty__V1__PromoPercentOff off = LOYALTY__V1__PROMO_PERCENT_OFF__INIT;
    off.percent_off_bps = 1000;
    Loyalty__V1__Promotion p = LOYALTY__V1__PROMOTION__INIT;
    p.name = "Ten percent";
    p.trigger = LOYALTY__V1__PROMO_TRIGGER__PROMO_TRIGGER_AUTOMATIC;
    p.rule_case = LOYALTY__V1__PROMOTION__RULE_PERCENT_OFF;
    p.percent_off = &off;
    Loyalty__V1__PromoCreatePromotionRequest pr = LOYALTY__V1__PROMO_CREATE_PROMOTION_REQUEST__INIT;
    pr.merchant_id = g_merchant;
    pr.idempotency_key = key(a, "promo", 0);
    pr.promotion = &p;
    Loyalty__V1__ReferralLevelRule rules[3];
    Loyalty__V1__ReferralLevelRule *rp[3];
    int32_t bps[3] = {100, 50, 20};
    for (int i = 0; i < 3; i++) {
        loyalty__v1__referral_level_rule__init(&rules[i]);
        rules[i].level = i + 1;
        rules[i].enabled = true;
        rules[i].purchase_reward_kind =
            LOYALTY__V1__REFERRAL_PURCHASE_REWARD_KIND__REFERRAL_PURCHASE_REWARD_KIND_BPS;
        rules[i].purchase_bps = bps[i];
        rp[i] = &rules[i];
    }
    Loyalty__V1__ReferralProgram prog = LOYALTY__V1__REFERRAL_PROGRAM__INIT;
    prog.enabled = true;
    prog.levels = 3;
    prog.level_rules = rp;
    prog.n_level_rules = 3;
    Loyalty__V1__ReferralSetProgramRequest rr = LOYALTY__V1__REFERRAL_SET_PROGRAM_REQUEST__INIT;
    rr.merchant_id = g_merchant;
    rr.idempotency_key = key(a, "referral", 0);
    rr.program = &prog;
    bench_must(call(a, POINTS, "UpdateSettings", &ps, NULL), "points settings");
    bench_must(call(a, MEMBER, "CreateTier", &tr, NULL), "tier");
    bench_must(call(a, PROMO, "CreatePromotion", &pr, NULL), "promotion");
    bench_must(call(a, REFERRAL, "SetReferralProgram", &rr, NULL), "referral programme");
}

/* One buyer: member, referrer (the previous member of its chain), points and wallet money. */
static void setup_member(arena_t *a, int i, const char *referrer) {
    Loyalty__V1__MemberProfile prof = LOYALTY__V1__MEMBER_PROFILE__INIT;
    prof.name = "Bench buyer";
    Loyalty__V1__CreateMemberRequest cm = LOYALTY__V1__CREATE_MEMBER_REQUEST__INIT;
    cm.merchant_id = g_merchant;
    cm.idempotency_key = key(a, "member", i);
    cm.profile = &prof;
    Loyalty__V1__CreateMemberResponse *cr = NULL;
    bench_must(call(a, MEMBER, "CreateMember", &cm, &cr), "member");
    g_members[i] = strdup(cr->member->id);
    if (referrer != NULL) {
        Loyalty__V1__ReferralGetCodeRequest gc = LOYALTY__V1__REFERRAL_GET_CODE_REQUEST__INIT;
        gc.merchant_id = g_merchant;
        gc.member_id = (char *)referrer;
        Loyalty__V1__ReferralGetCodeResponse *code = NULL;
        bench_must(call(a, REFERRAL, "GetReferralCode", &gc, &code), "referral code");
        Loyalty__V1__ReferralAttachRequest at = LOYALTY__V1__REFERRAL_ATTACH_REQUEST__INIT;
        at.merchant_id = g_merchant;
        at.idempotency_key = key(a, "attach", i);
        at.referee_member_id = g_members[i];
        at.code = code->code;
        bench_must(call(a, REFERRAL, "AttachReferral", &at, NULL), "attach");
    }
    Loyalty__V1__PointsAdjustRequest ad = LOYALTY__V1__POINTS_ADJUST_REQUEST__INIT;
    ad.merchant_id = g_merchant;
    ad.idempotency_key = key(a, "adjust", i);
    ad.member_id = g_members[i];
    ad.points = 10000000;
    ad.reason = "bench opening balance";
    ad.operator_ = "bench";
    Loyalty__V1__WalletTopUpRequest tu = LOYALTY__V1__WALLET_TOP_UP_REQUEST__INIT;
    tu.merchant_id = g_merchant;
    tu.idempotency_key = key(a, "topup", i);
    tu.member_id = g_members[i];
    tu.paid_cents = 100000000;
    tu.payment_ref = key(a, "topup-ref", i);
    bench_must(call(a, POINTS, "Adjust", &ad, NULL), "points");
    bench_must(call(a, WALLET, "TopUp", &tu, NULL), "wallet");
}

/* Chains are set up in parallel, each chain in order (a referrer must exist first). */
static atomic_int g_next_chain;

static void *setup_main(void *arg) {
    (void)arg;
    int chains = (g_n_members + CHAIN - 1) / CHAIN;
    for (int c; (c = atomic_fetch_add(&g_next_chain, 1)) < chains;) {
        for (int i = c * CHAIN; i < (c + 1) * CHAIN && i < g_n_members; i++) {
            arena_t a;
            arena_init(&a);
            setup_member(&a, i, i % CHAIN == 0 ? NULL : g_members[i - 1]);
            arena_free(&a);
        }
    }
    return NULL;
}

/* ---- the load ---- */

typedef struct client {
    pthread_t thread;
    int index;
    int64_t ok, failed;
    int64_t *lat_us;
    int64_t n_lat;
    char reasons[REASONS_MAX][STATUS_REASON_MAX];
    int64_t reason_counts[REASONS_MAX];
} client_t;

static void count_reason(client_t *c, const status_t *st) {
    const char *r = st->reason[0] ? st->reason : status_code_name(st->code);
    for (int i = 0; i < REASONS_MAX; i++) {
        if (c->reasons[i][0] == '\0') {
            snprintf(c->reasons[i], sizeof c->reasons[i], "%s", r);
        }
        if (strcmp(c->reasons[i], r) == 0) {
            c->reason_counts[i]++;
            return;
        }
    }
}

static bool one_checkout(client_t *c, arena_t *a, int64_t n, unsigned *seed) {
    /* A buyer with three ancestors: chain position >= 3. */
    int i = 0;
    do {
        i = (int)(rand_r(seed) % (unsigned)g_n_members);
    } while (i % CHAIN < 3);
    Loyalty__V1__GatewayCartLine l1 = LOYALTY__V1__GATEWAY_CART_LINE__INIT;
    l1.line_id = "1";
    l1.sku = "coffee-beans";
    l1.category = "coffee";
    l1.quantity = 2;
    l1.unit_price_cents = 1250;
    Loyalty__V1__GatewayCartLine l2 = LOYALTY__V1__GATEWAY_CART_LINE__INIT;
    l2.line_id = "2";
    l2.sku = "grinder";
    l2.category = "tools";
    l2.quantity = 1;
    l2.unit_price_cents = 3000;
    Loyalty__V1__GatewayCartLine *lines[] = {&l1, &l2};
    Loyalty__V1__GatewayCart cart = LOYALTY__V1__GATEWAY_CART__INIT;
    cart.lines = lines;
    cart.n_lines = 2;
    cart.shipping_cents = 200;
    Loyalty__V1__GatewayPaymentChoice pay = LOYALTY__V1__GATEWAY_PAYMENT_CHOICE__INIT;
    pay.redeem_points = 100;
    pay.wallet_cents = 1000;
    char *order =
        arena_printf(a, "b%d-%ld-%" PRId64 "-%ld", c->index, (long)getpid(), n, (long)time(NULL));
    Loyalty__V1__GatewayBeginCheckoutRequest b = LOYALTY__V1__GATEWAY_BEGIN_CHECKOUT_REQUEST__INIT;
    b.merchant_id = g_merchant;
    b.idempotency_key = order;
    b.order_id = order;
    b.member_id = g_members[i];
    b.cart = &cart;
    b.payment = &pay;
    Loyalty__V1__GatewayBeginCheckoutResponse *br = NULL;
    status_t st = call(a, GW, "BeginCheckout", &b, &br);
    if (!status_is_ok(&st)) {
        count_reason(c, &st);
        return false;
    }
    Loyalty__V1__GatewayCompleteCheckoutRequest cc =
        LOYALTY__V1__GATEWAY_COMPLETE_CHECKOUT_REQUEST__INIT;
    cc.merchant_id = g_merchant;
    cc.checkout_id = br->checkout->checkout_id;
    cc.payment_ref = order;
    Loyalty__V1__GatewayCompleteCheckoutResponse *cr = NULL;
    st = call(a, GW, "CompleteCheckout", &cc, &cr);
    if (!status_is_ok(&st)) {
        count_reason(c, &st);
        return false;
    }
    if (cr->checkout->state != LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_COMPLETED) {
        status_t not_done = status_make_relayed(STATUS_OK, "NOT_COMPLETED_IN_REQUEST", "state %d",
                                                (int)cr->checkout->state);
        count_reason(c, &not_done);
        return false;
    }
    return true;
}

static void *client_main(void *arg) {
    client_t *c = arg;
    unsigned seed = (unsigned)(c->index * 7919 + 17);
    /* Paced clients start spread over one interval and keep their own schedule. */
    int64_t interval = g_rate > 0 ? (int64_t)(1e6 * g_clients / g_rate) : 0;
    int64_t next = bench_now_us() + (interval ? interval * c->index / g_clients : 0);
    for (int64_t n = 0; !atomic_load(&g_stop); n++) {
        if (interval) {
            int64_t wait = next - bench_now_us();
            if (wait > 0) {
                usleep((useconds_t)wait);
            }
            next += interval;
        }
        arena_t a;
        arena_init(&a);
        int64_t t0 = bench_now_us();
        bool ok = one_checkout(c, &a, n, &seed);
        int64_t dt = bench_now_us() - t0;
        arena_free(&a);
        if (ok) {
            c->ok++;
            if (c->n_lat < SAMPLES_MAX / CLIENTS_MAX) {
                c->lat_us[c->n_lat++] = dt;
            }
        } else {
            c->failed++;
        }
    }
    return NULL;
}

static void print_rss(const char *pids) {
    if (pids == NULL || pids[0] == '\0') {
        return;
    }
    char *copy = strdup(pids), *save = NULL;
    printf("peak RSS (VmHWM):");
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (eq == NULL) {
            continue;
        }
        *eq = '\0';
        char path[64], line[128];
        snprintf(path, sizeof path, "/proc/%s/status", eq + 1);
        FILE *f = fopen(path, "r");
        long hwm = -1, rss = -1;
        while (f && fgets(line, sizeof line, f)) {
            sscanf(line, "VmHWM: %ld kB", &hwm);
            sscanf(line, "VmRSS: %ld kB", &rss);
        }
        if (f) {
            fclose(f);
        }
        printf("  %s %.1f MiB (now %.1f)", tok, (double)hwm / 1024.0, (double)rss / 1024.0);
    }
    printf("\n");
    free(copy);
}

static int run(int seconds) {
    client_t *cs = calloc((size_t)g_clients, sizeof *cs);
    for (int i = 0; i < g_clients; i++) {
        cs[i].index = i;
        cs[i].lat_us = malloc(sizeof(int64_t) * (SAMPLES_MAX / CLIENTS_MAX));
        pthread_create(&cs[i].thread, NULL, client_main, &cs[i]);
    }
    int64_t t0 = bench_now_us();
    sleep((unsigned)seconds);
    atomic_store(&g_stop, true);
    int64_t ok = 0, failed = 0, n = 0;
    for (int i = 0; i < g_clients; i++) {
        pthread_join(cs[i].thread, NULL);
        ok += cs[i].ok;
        failed += cs[i].failed;
        n += cs[i].n_lat;
    }
    double elapsed = (double)(bench_now_us() - t0) / 1e6;
    int64_t *all = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    int64_t k = 0;
    for (int i = 0; i < g_clients; i++) {
        memcpy(all + k, cs[i].lat_us, sizeof(int64_t) * (size_t)cs[i].n_lat);
        k += cs[i].n_lat;
    }
    printf("checkouts %" PRId64 " in %.1f s: %.1f checkouts/s, %d clients%s; failed %" PRId64 "\n",
           ok, elapsed, (double)ok / elapsed, g_clients, g_rate > 0 ? " (paced)" : "", failed);
    printf("latency of begin+complete: p50 %.2f ms  p95 %.2f ms  p99 %.2f ms  max %.2f ms\n",
           bench_percentile_ms(all, (int)n, 0.50), bench_percentile_ms(all, (int)n, 0.95),
           bench_percentile_ms(all, (int)n, 0.99), bench_percentile_ms(all, (int)n, 1.0));
    for (int i = 0; i < g_clients; i++) {
        for (int r = 0; r < REASONS_MAX && cs[i].reasons[r][0]; r++) {
            printf("  failure %s: %" PRId64 " (client %d)\n", cs[i].reasons[r],
                   cs[i].reason_counts[r], i);
        }
        free(cs[i].lat_us);
    }
    free(all);
    free(cs);
    return failed == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc < 9) {
        fprintf(stderr,
                "usage: %s <gateway> <member> <points> <wallet> <referral> <promo> <seconds> "
                "<clients> [rate] [pids] [members]\n",
                argv[0]);
        return 2;
    }
    for (int i = 0; i < N_SVC; i++) {
        g_addr[i] = argv[1 + i];
    }
    int seconds = atoi(argv[7]);
    g_clients = atoi(argv[8]);
    g_rate = argc > 9 ? atof(argv[9]) : 0;
    const char *pids = argc > 10 ? argv[10] : "";
    g_n_members = argc > 11 ? atoi(argv[11]) : 1000;
    if (seconds <= 0 || g_clients <= 0 || g_clients > CLIENTS_MAX || g_n_members < CHAIN ||
        g_n_members > MEMBERS_MAX) {
        fprintf(stderr, "seconds > 0, 1 <= clients <= %d, %d <= members <= %d\n", CLIENTS_MAX,
                CHAIN, MEMBERS_MAX);
        return 2;
    }
    snprintf(g_merchant, sizeof g_merchant, "bench-%ld-%ld", (long)time(NULL), (long)getpid());
    grpc_init();
    rpc_client_init(NULL);
    arena_t a;
    arena_init(&a);
    setup_rules(&a);
    arena_free(&a);
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        pthread_create(&th[i], NULL, setup_main, NULL);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
    }
    /* Warm-up: load that is not measured (CHECKOUT_BENCH_WARMUP_S seconds, 1 by default). */
    const char *warm_env = getenv("CHECKOUT_BENCH_WARMUP_S");
    int warm_s = warm_env && warm_env[0] ? atoi(warm_env) : 1;
    atomic_store(&g_stop, false);
    double rate = g_rate;
    int clients = g_clients;
    g_rate = 0;
    g_clients = clients < 4 ? clients : 4;
    client_t warm[4];
    memset(warm, 0, sizeof warm);
    for (int i = 0; i < g_clients; i++) {
        warm[i].index = 100 + i;
        warm[i].lat_us = malloc(sizeof(int64_t) * (SAMPLES_MAX / CLIENTS_MAX));
        pthread_create(&warm[i].thread, NULL, client_main, &warm[i]);
    }
    sleep(warm_s > 0 ? (unsigned)warm_s : 1);
    atomic_store(&g_stop, true);
    for (int i = 0; i < g_clients; i++) {
        pthread_join(warm[i].thread, NULL);
        free(warm[i].lat_us);
    }
    atomic_store(&g_stop, false);
    g_rate = rate;
    g_clients = clients;
    /* A hook for profiling the measured part only (e.g. resetting pg_stat_statements). */
    const char *hook = getenv("CHECKOUT_BENCH_AFTER_SETUP");
    if (hook != NULL && hook[0] && system(hook) != 0) {
        fprintf(stderr, "CHECKOUT_BENCH_AFTER_SETUP failed\n");
    }
    int rc = run(seconds);
    print_rss(pids);
    for (int i = 0; i < g_n_members; i++) {
        free(g_members[i]);
    }
    rpc_client_shutdown();
    grpc_shutdown();
    return rc;
}
