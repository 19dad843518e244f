/* test_promo_rpc_checkout.c -- promo-svc's checkout support over real gRPC against real
 * PostgreSQL and Redis: the explained quote, Reserve / Confirm / Release / ReleaseUsage, limits
 * and budgets under 200 parallel clients, unique codes, coupons used once, expiry by TTL (job
 * and lazily), idempotency and merchant isolation. */
#include "promo_client.h"

#include <ctype.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

static svc_proc_t svc;
static arena_t arena;

static void setup(void) {
    harness_init();
    arena_init(&arena);
}

static void teardown(void) {
    if (svc.pid > 0) {
        cr_expect_eq(harness_stop(&svc), 0, "promo-svc did not exit cleanly; see %s", svc.log_path);
    }
    arena_free(&arena);
    harness_fini();
}

TestSuite(promo_checkout, .init = setup, .fini = teardown, .timeout = 300);

#define R(x) LOYALTY__V1__PROMO_REASON__PROMO_REASON_##x
#define RES(x) LOYALTY__V1__PROMO_RESERVATION_STATUS__PROMO_RESERVATION_STATUS_##x
#define COUPON_STATUS(x) LOYALTY__V1__PROMO_COUPON_STATUS__PROMO_COUPON_STATUS_##x
#define CODE_STATUS(x) LOYALTY__V1__PROMO_CODE_STATUS__PROMO_CODE_STATUS_##x

static Loyalty__V1__PromoCart *simple_cart(const char *member, int64_t amount) {
    Loyalty__V1__PromoCart *c = pt_cart(&arena, member);
    pt_line(&arena, c, "SKU-1", 1, amount);
    return c;
}

static int64_t counter_uses(const char *merchant, const char *promotion_id) {
    return pt_sql_int("SELECT coalesce(sum(uses), 0) FROM promo.usage_counters "
                      "WHERE merchant_id = $1 AND promotion_id = $2 AND scope_key = 'T'",
                      merchant, promotion_id);
}

Test(promo_checkout, quote_explains_every_promotion_and_coupon) {
    /* Goal: the quote over gRPC carries the figures of the pricing order
     * (docs/domain.md#pricing-order) and a reason for everything considered: member discount 10% on
     * 20000 = 2000; 10% promotion on 18000 = 1800; code SAVE5 500 off; coupon 300 off; a paused
     * code and an unknown code explained. */
    harness_start(&svc, "promo-svc", NULL);
    const char *m = harness_merchant("qexp");
    Loyalty__V1__Promotion *auto10 = NULL, *save5 = NULL, *paused = NULL;
    Loyalty__V1__Promotion *p = pt_promotion(&arena, "Ten percent", 10);
    pt_percent_off(&arena, p, 1000);
    assert_status(pt_create(svc.addr, m, &arena, p, &auto10), STATUS_OK, "");
    p = pt_promotion(&arena, "Save 5", 5);
    pt_amount_off(&arena, p, 500);
    pt_shared_code(p, "save5");
    assert_status(pt_create(svc.addr, m, &arena, p, &save5), STATUS_OK, "");
    cr_assert_str_eq(save5->code, "SAVE5");
    p = pt_promotion(&arena, "Old", 0);
    pt_amount_off(&arena, p, 100);
    pt_shared_code(p, "OLDCODE");
    assert_status(pt_create(svc.addr, m, &arena, p, &paused), STATUS_OK, "");
    Loyalty__V1__PromoPausePromotionRequest pause =
        LOYALTY__V1__PROMO_PAUSE_PROMOTION_REQUEST__INIT;
    pause.merchant_id = (char *)m;
    pause.idempotency_key = (char *)harness_key();
    pause.promotion_id = paused->id;
    assert_status(promo_call(svc.addr, "PausePromotion", &pause.base, &arena, NULL), STATUS_OK, "");
    Loyalty__V1__PromoCouponTemplate *t = NULL;
    assert_status(pt_template(svc.addr, m, &arena, pt_amount_template(&arena, 300, 0), &t),
                  STATUS_OK, "");
    Loyalty__V1__PromoCoupon *coupon = NULL;
    assert_status(pt_issue(svc.addr, m, &arena, "mbr_1", t->id, SOURCE_WELCOME, NULL, &coupon),
                  STATUS_OK, "");

    Loyalty__V1__PromoCart *cart = pt_cart(&arena, "mbr_1");
    cart->tier_discount_bps = 1000;
    cart->shipping_cents = 500;
    pt_line(&arena, cart, "A", 2, 5000);
    pt_line(&arena, cart, "B", 1, 10000);
    cart->codes[cart->n_codes++] = "save5";
    cart->codes[cart->n_codes++] = "oldcode";
    cart->codes[cart->n_codes++] = "NOSUCH";
    cart->coupon_ids[cart->n_coupon_ids++] = coupon->id;
    for (int pass = 0; pass < 2; pass++) { /* cold, then from the caches */
        Loyalty__V1__PromoQuoteResult *q = NULL;
        assert_status(pt_quote(svc.addr, m, &arena, cart, &q), STATUS_OK, "");
        cr_assert_eq(q->subtotal_cents, 20000);
        cr_assert_eq(q->tier_discount_cents, 2000);
        cr_assert_eq(pt_considered(q, auto10->id)->discount_cents, 1800);
        cr_assert_eq(pt_considered(q, save5->id)->discount_cents, 500);
        cr_assert_eq(pt_considered(q, save5->id)->reason, R(APPLIED));
        cr_assert_eq(pt_considered(q, paused->id)->reason, R(PAUSED));
        cr_assert_eq(pt_considered(q, "NOSUCH")->reason, R(CODE_UNKNOWN));
        cr_assert_eq(pt_considered(q, coupon->id)->discount_cents, 300);
        cr_assert_eq(q->merchandise_cents, 20000 - 2000 - 1800 - 500 - 300);
        cr_assert_eq(q->total_cents, 15400 + 500);
        cr_assert_eq(q->n_considered, 5);
    }
    /* Reserve refuses the cart as it is (a code it cannot apply), holding nothing. */
    assert_status(pt_reserve(svc.addr, m, &arena, "co-1", NULL, cart, 0, NULL),
                  STATUS_FAILED_PRECONDITION, "PAUSED");
    cart->n_codes = 1;
    Loyalty__V1__PromoReservation *r = NULL;
    assert_status(pt_reserve(svc.addr, m, &arena, "co-1", NULL, cart, 0, &r), STATUS_OK, "");
    cr_assert_eq(r->status, RES(RESERVED));
    cr_assert_eq(r->quote->total_cents, 15900);
    cr_assert(r->expires_at >= r->created_at + 900 && r->expires_at <= r->created_at + 901);
}

Test(promo_checkout, reserve_confirm_release_and_idempotency) {
    /* Goal: Reserve holds a use, the same key replays without taking another, Confirm is
     * idempotent and final, Release returns the use; a second reservation of one checkout is
     * refused; Release before Reserve blocks a late Reserve. */
    harness_start(&svc, "promo-svc", NULL);
    const char *m = harness_merchant("rcr");
    Loyalty__V1__Promotion *p = pt_promotion(&arena, "Code 100", 0), *promo = NULL;
    pt_amount_off(&arena, p, 100);
    pt_shared_code(p, "HUNDRED");
    pt_limit(&arena, p, SCOPE_TOTAL, PERIOD_LIFETIME, 2, 0);
    assert_status(pt_create(svc.addr, m, &arena, p, &promo), STATUS_OK, "");
    Loyalty__V1__PromoCart *cart = simple_cart("mbr_a", 1000);
    cart->codes[cart->n_codes++] = "hundred";

    Loyalty__V1__PromoReservation *r1 = NULL, *again = NULL;
    assert_status(pt_reserve(svc.addr, m, &arena, "co-a", "key-a", cart, 0, &r1), STATUS_OK, "");
    assert_status(pt_reserve(svc.addr, m, &arena, "co-a", "key-a", cart, 0, &again), STATUS_OK, "");
    cr_assert_eq(again->created_at, r1->created_at);
    cr_assert_eq(counter_uses(m, promo->id), 1, "a replay takes nothing more");
    assert_status(pt_reserve(svc.addr, m, &arena, "co-a", NULL, cart, 0, NULL),
                  STATUS_ALREADY_EXISTS, "RESERVATION_EXISTS");

    Loyalty__V1__PromoReservation *c = NULL;
    assert_status(pt_confirm(svc.addr, m, &arena, "co-a", "order-1", &c), STATUS_OK, "");
    cr_assert_eq(c->status, RES(CONFIRMED));
    cr_assert_str_eq(c->order_id, "order-1");
    assert_status(pt_confirm(svc.addr, m, &arena, "co-a", "order-1", &c), STATUS_OK, "");
    assert_status(pt_release(svc.addr, m, &arena, "co-a", NULL), STATUS_FAILED_PRECONDITION,
                  "RESERVATION_CONFIRMED");
    cr_assert_eq(counter_uses(m, promo->id), 1);

    assert_status(pt_reserve(svc.addr, m, &arena, "co-b", NULL, cart, 0, NULL), STATUS_OK, "");
    cr_assert_eq(counter_uses(m, promo->id), 2);
    assert_status(pt_reserve(svc.addr, m, &arena, "co-c", NULL, cart, 0, NULL),
                  STATUS_FAILED_PRECONDITION, "CODE_USED_UP");
    Loyalty__V1__PromoReservation *rel = NULL;
    assert_status(pt_release(svc.addr, m, &arena, "co-b", &rel), STATUS_OK, "");
    cr_assert_eq(rel->status, RES(RELEASED));
    assert_status(pt_release(svc.addr, m, &arena, "co-b", &rel), STATUS_OK, "");
    cr_assert_eq(rel->status, RES(RELEASED));
    cr_assert_eq(counter_uses(m, promo->id), 1, "release returned the use");
    assert_status(pt_confirm(svc.addr, m, &arena, "co-b", NULL, NULL), STATUS_FAILED_PRECONDITION,
                  "RESERVATION_RELEASED");
    assert_status(pt_reserve(svc.addr, m, &arena, "co-c", NULL, cart, 0, NULL), STATUS_OK, "");

    /* A compensation that overtook its Reserve. */
    assert_status(pt_release(svc.addr, m, &arena, "co-late", &rel), STATUS_OK, "");
    cr_assert_eq(rel->status, RES(RELEASED));
    assert_status(pt_reserve(svc.addr, m, &arena, "co-late", NULL, cart, 0, NULL),
                  STATUS_ALREADY_EXISTS, "RESERVATION_EXISTS");
    assert_status(pt_confirm(svc.addr, m, &arena, "co-none", NULL, NULL), STATUS_NOT_FOUND,
                  "RESERVATION_NOT_FOUND");
}

/* ---- 200 parallel Reserve calls ---- */

#define PARALLEL_CALLS 200
#define PARALLEL_MEMBERS 150

typedef struct reserve_arg {
    const char *addr, *merchant, *code;
    int index;
    pthread_barrier_t *start;
    status_t st;
    int64_t discount;
} reserve_arg_t;

static void *reserve_main(void *p) {
    reserve_arg_t *r = p;
    arena_t a;
    arena_init(&a);
    char member[32], checkout[32];
    snprintf(member, sizeof member, "mbr_%03d", r->index % PARALLEL_MEMBERS);
    snprintf(checkout, sizeof checkout, "par-%03d", r->index);
    Loyalty__V1__PromoCart *cart = pt_cart(&a, member);
    pt_line(&a, cart, "SKU-1", 1, 5000);
    if (r->code) {
        cart->codes[cart->n_codes++] = (char *)r->code;
    }
    Loyalty__V1__PromoReservation *res = NULL;
    pthread_barrier_wait(r->start);
    r->st = pt_reserve(r->addr, r->merchant, &a, checkout, checkout, cart, 0, &res);
    r->discount = status_is_ok(&r->st) ? res->quote->promotion_discount_cents : -1;
    arena_free(&a);
    rpc_client_thread_cleanup();
    return NULL;
}

static void run_parallel(const char *merchant, const char *code, reserve_arg_t *args) {
    pthread_t threads[PARALLEL_CALLS];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, PARALLEL_CALLS);
    for (int i = 0; i < PARALLEL_CALLS; i++) {
        args[i] = (reserve_arg_t){
            .addr = svc.addr, .merchant = merchant, .code = code, .index = i, .start = &start};
        cr_assert_eq(pthread_create(&threads[i], NULL, reserve_main, &args[i]), 0);
    }
    for (int i = 0; i < PARALLEL_CALLS; i++) {
        pthread_join(threads[i], NULL);
    }
    pthread_barrier_destroy(&start);
}

Test(promo_checkout, code_limits_hold_under_200_parallel_reserves) {
    /* Goal: a code limited to 1 use per member and 100 in total, hit by 200 parallel Reserve
     * calls from 150 members: exactly 100 succeed, no member gets 2, every refusal is
     * FAILED_PRECONDITION with the limit's reason, and the counters say 100. */
    harness_start(&svc, "promo-svc", NULL);
    const char *m = harness_merchant("par");
    Loyalty__V1__Promotion *p = pt_promotion(&arena, "Hot code", 0), *promo = NULL;
    pt_amount_off(&arena, p, 700);
    pt_shared_code(p, "HOT100");
    pt_limit(&arena, p, SCOPE_MEMBER, PERIOD_LIFETIME, 1, 0);
    pt_limit(&arena, p, SCOPE_TOTAL, PERIOD_LIFETIME, 100, 0);
    assert_status(pt_create(svc.addr, m, &arena, p, &promo), STATUS_OK, "");
    static reserve_arg_t args[PARALLEL_CALLS];
    run_parallel(m, "hot100", args);
    int ok = 0, per_member[PARALLEL_MEMBERS] = {0};
    for (int i = 0; i < PARALLEL_CALLS; i++) {
        if (status_is_ok(&args[i].st)) {
            ok++;
            per_member[i % PARALLEL_MEMBERS]++;
            cr_assert_eq(args[i].discount, 700);
            continue;
        }
        cr_assert_eq(args[i].st.code, STATUS_FAILED_PRECONDITION, "call %d: %s (%s)", i,
                     status_code_name(args[i].st.code), args[i].st.message);
        cr_assert(strcmp(args[i].st.reason, "CODE_USED_UP") == 0 ||
                      strcmp(args[i].st.reason, "LIMIT_REACHED") == 0,
                  "call %d: %s", i, args[i].st.reason);
    }
    cr_assert_eq(ok, 100);
    for (int k = 0; k < PARALLEL_MEMBERS; k++) {
        cr_assert_leq(per_member[k], 1, "member %d got %d", k, per_member[k]);
    }
    cr_assert_eq(counter_uses(m, promo->id), 100);
    cr_assert_eq(
        pt_sql_int("SELECT count(*) FROM promo.reservations WHERE merchant_id = $1", m, NULL), 100,
        "failed reserves hold nothing");
    cr_assert_eq(pt_sql_int("SELECT count(*) FROM promo.usage_counters WHERE merchant_id = $1 "
                            "AND scope_key LIKE 'M:%' AND uses > 0",
                            m, NULL),
                 100);
}

Test(promo_checkout, budgets_hold_under_200_parallel_reserves) {
    /* Goal: a code with a 10,000 cent budget giving 100 per order lets exactly 100 of 200
     * parallel checkouts through (the rest BUDGET_EXHAUSTED); an automatic promotion with a
     * 5,000 budget is applied to exactly 50 and silently skipped for the others. */
    harness_start(&svc, "promo-svc", NULL);
    const char *m = harness_merchant("bud");
    Loyalty__V1__Promotion *p = pt_promotion(&arena, "Budget code", 0), *code_promo = NULL;
    pt_amount_off(&arena, p, 100);
    pt_shared_code(p, "BUDGET");
    pt_limit(&arena, p, SCOPE_TOTAL, PERIOD_LIFETIME, 0, 10000);
    assert_status(pt_create(svc.addr, m, &arena, p, &code_promo), STATUS_OK, "");
    Loyalty__V1__Promotion *a = pt_promotion(&arena, "Budget auto", 0), *auto_promo = NULL;
    pt_amount_off(&arena, a, 100);
    pt_limit(&arena, a, SCOPE_TOTAL, PERIOD_DAY, 0, 5000);
    assert_status(pt_create(svc.addr, m, &arena, a, &auto_promo), STATUS_OK, "");
    static reserve_arg_t args[PARALLEL_CALLS];
    run_parallel(m, "BUDGET", args);
    int ok = 0, with_auto = 0;
    for (int i = 0; i < PARALLEL_CALLS; i++) {
        if (status_is_ok(&args[i].st)) {
            ok++;
            cr_assert(args[i].discount == 100 || args[i].discount == 200);
            with_auto += args[i].discount == 200;
        } else {
            assert_status(args[i].st, STATUS_FAILED_PRECONDITION, "BUDGET_EXHAUSTED");
        }
    }
    cr_assert_eq(ok, 100);
    cr_assert_eq(with_auto, 50);
    cr_assert_eq(pt_sql_int("SELECT discount_cents FROM promo.usage_counters "
                            "WHERE merchant_id = $1 AND promotion_id = $2",
                            m, code_promo->id),
                 10000);
    cr_assert_eq(pt_sql_int("SELECT discount_cents FROM promo.usage_counters "
                            "WHERE merchant_id = $1 AND promotion_id = $2",
                            m, auto_promo->id),
                 5000);
    /* Releasing one gives its budget back: exactly one more checkout gets through. */
    int first_ok = 0;
    while (!status_is_ok(&args[first_ok].st)) {
        first_ok++;
    }
    char checkout[32];
    snprintf(checkout, sizeof checkout, "par-%03d", first_ok);
    assert_status(pt_release(svc.addr, m, &arena, checkout, NULL), STATUS_OK, "");
    Loyalty__V1__PromoCart *cart = simple_cart("mbr_x", 5000);
    cart->codes[cart->n_codes++] = "BUDGET";
    assert_status(pt_reserve(svc.addr, m, &arena, "after-1", NULL, cart, 0, NULL), STATUS_OK, "");
    assert_status(pt_reserve(svc.addr, m, &arena, "after-2", NULL, cart, 0, NULL),
                  STATUS_FAILED_PRECONDITION, "BUDGET_EXHAUSTED");
}

/* ---- coupons ---- */

Test(promo_checkout, coupon_is_used_once_and_refunds_follow_the_settings) {
    /* Goal: a coupon held by one checkout cannot be reserved by another; once confirmed it is
     * USED; ReleaseUsage gives it back per the merchant's rule (default yes), and with the rule
     * off it stays USED; releasing before confirm makes it AVAILABLE again. */
    harness_start(&svc, "promo-svc", NULL);
    const char *m = harness_merchant("cpn");
    Loyalty__V1__PromoCouponTemplate *t = NULL;
    assert_status(pt_template(svc.addr, m, &arena, pt_amount_template(&arena, 500, 1000), &t),
                  STATUS_OK, "");
    Loyalty__V1__PromoCoupon *c = NULL;
    assert_status(pt_issue(svc.addr, m, &arena, "mbr_c", t->id, SOURCE_WELCOME, NULL, &c),
                  STATUS_OK, "");
    Loyalty__V1__PromoCart *cart = simple_cart("mbr_c", 2000);
    cart->coupon_ids[cart->n_coupon_ids++] = c->id;
    Loyalty__V1__PromoReservation *r = NULL;
    assert_status(pt_reserve(svc.addr, m, &arena, "c-1", NULL, cart, 0, &r), STATUS_OK, "");
    cr_assert_eq(r->quote->coupon_discount_cents, 500);
    assert_status(pt_reserve(svc.addr, m, &arena, "c-2", NULL, cart, 0, NULL),
                  STATUS_FAILED_PRECONDITION, "COUPON_ALREADY_USED");
    assert_status(pt_release(svc.addr, m, &arena, "c-1", NULL), STATUS_OK, "");
    assert_status(pt_reserve(svc.addr, m, &arena, "c-2", NULL, cart, 0, NULL), STATUS_OK, "");
    assert_status(pt_confirm(svc.addr, m, &arena, "c-2", "ord-c2", NULL), STATUS_OK, "");
    assert_status(pt_reserve(svc.addr, m, &arena, "c-3", NULL, cart, 0, NULL),
                  STATUS_FAILED_PRECONDITION, "COUPON_ALREADY_USED");
    Loyalty__V1__PromoGetCouponRequest g = LOYALTY__V1__PROMO_GET_COUPON_REQUEST__INIT;
    g.merchant_id = (char *)m;
    g.coupon_id = c->id;
    ProtobufCMessage *resp = NULL;
    assert_status(promo_call(svc.addr, "GetCoupon", &g.base, &arena, &resp), STATUS_OK, "");
    Loyalty__V1__PromoCoupon *got = ((Loyalty__V1__PromoGetCouponResponse *)resp)->coupon;
    cr_assert_eq(got->status, LOYALTY__V1__PROMO_COUPON_STATUS__PROMO_COUPON_STATUS_USED);
    cr_assert_str_eq(got->checkout_id, "c-2");
    cr_assert(got->used_at > 0);

    /* Full refund, found by order id: the coupon comes back (default rule). */
    Loyalty__V1__PromoReleaseUsageRequest ru = LOYALTY__V1__PROMO_RELEASE_USAGE_REQUEST__INIT;
    ru.merchant_id = (char *)m;
    ru.idempotency_key = (char *)harness_key();
    ru.order_case = LOYALTY__V1__PROMO_RELEASE_USAGE_REQUEST__ORDER_ORDER_ID;
    ru.order_id = "ord-c2";
    assert_status(promo_call(svc.addr, "ReleaseUsage", &ru.base, &arena, &resp), STATUS_OK, "");
    Loyalty__V1__PromoReservation *refunded =
        ((Loyalty__V1__PromoReleaseUsageResponse *)resp)->reservation;
    cr_assert_eq(refunded->status, RES(REFUNDED));
    cr_assert(refunded->coupons_restored);
    ru.idempotency_key = (char *)harness_key(); /* again: the same answer, nothing more */
    assert_status(promo_call(svc.addr, "ReleaseUsage", &ru.base, &arena, &resp), STATUS_OK, "");
    assert_status(pt_reserve(svc.addr, m, &arena, "c-3", NULL, cart, 0, NULL), STATUS_OK, "");
    assert_status(pt_confirm(svc.addr, m, &arena, "c-3", NULL, NULL), STATUS_OK, "");

    /* The merchant's rule off: the refund keeps the coupon used. */
    Loyalty__V1__PromoSettings s = LOYALTY__V1__PROMO_SETTINGS__INIT;
    s.time_zone = "Asia/Singapore";
    s.refund_restores_usage = true;
    s.refund_restores_coupons = false;
    Loyalty__V1__PromoUpdateSettingsRequest us = LOYALTY__V1__PROMO_UPDATE_SETTINGS_REQUEST__INIT;
    us.merchant_id = (char *)m;
    us.idempotency_key = (char *)harness_key();
    us.settings = &s;
    us.update_mask = HARNESS_MASK("time_zone", "refund_restores_usage", "refund_restores_coupons");
    assert_status(promo_call(svc.addr, "UpdatePromoSettings", &us.base, &arena, NULL), STATUS_OK,
                  "");
    ru.idempotency_key = (char *)harness_key();
    ru.order_case = LOYALTY__V1__PROMO_RELEASE_USAGE_REQUEST__ORDER_CHECKOUT_ID;
    ru.checkout_id = "c-3";
    assert_status(promo_call(svc.addr, "ReleaseUsage", &ru.base, &arena, &resp), STATUS_OK, "");
    cr_assert(!((Loyalty__V1__PromoReleaseUsageResponse *)resp)->reservation->coupons_restored);
    assert_status(pt_reserve(svc.addr, m, &arena, "c-4", NULL, cart, 0, NULL),
                  STATUS_FAILED_PRECONDITION, "COUPON_ALREADY_USED");
    /* ReleaseUsage needs a confirmed reservation. */
    ru.idempotency_key = (char *)harness_key();
    ru.checkout_id = "c-1";
    assert_status(promo_call(svc.addr, "ReleaseUsage", &ru.base, &arena, NULL),
                  STATUS_FAILED_PRECONDITION, "RESERVATION_NOT_CONFIRMED");
}

/* The code in lower case, as a customer might type it (arena memory). */
static char *lower_code(const char *code) {
    char *s = arena_strdup(&arena, code);
    for (char *p = s; *p; p++) {
        *p = (char)tolower((unsigned char)*p);
    }
    return s;
}

Test(promo_checkout, coupons_by_the_code_the_customer_types) {
    /* Goal: every issued coupon has a code of its own; a cart can name the member's coupon by
     * that code (any case) and it is priced and reserved like one given by id; an unknown code,
     * another member's code and a guest cart's code are COUPON_NOT_FOUND without revealing the
     * other member's coupon, and Reserve refuses them; the same coupon by id and by code is a
     * DUPLICATE; malformed codes and more than 5 coupons in all are INVALID_ARGUMENT. */
    harness_start(&svc, "promo-svc", NULL);
    const char *m = harness_merchant("ccode");
    Loyalty__V1__PromoCouponTemplate *t = NULL;
    assert_status(pt_template(svc.addr, m, &arena, pt_amount_template(&arena, 500, 1000), &t),
                  STATUS_OK, "");
    Loyalty__V1__PromoCoupon *mine = NULL, *theirs = NULL;
    assert_status(pt_issue(svc.addr, m, &arena, "mbr_k", t->id, SOURCE_WELCOME, NULL, &mine),
                  STATUS_OK, "");
    assert_status(pt_issue(svc.addr, m, &arena, "mbr_l", t->id, SOURCE_WELCOME, NULL, &theirs),
                  STATUS_OK, "");
    cr_assert_eq(strlen(mine->code), 10, "a code of its own: \"%s\"", mine->code);
    cr_assert_str_neq(mine->code, theirs->code);
    Loyalty__V1__PromoGetCouponRequest g = LOYALTY__V1__PROMO_GET_COUPON_REQUEST__INIT;
    g.merchant_id = (char *)m;
    g.coupon_id = mine->id;
    ProtobufCMessage *resp = NULL;
    assert_status(promo_call(svc.addr, "GetCoupon", &g.base, &arena, &resp), STATUS_OK, "");
    cr_assert_str_eq(((Loyalty__V1__PromoGetCouponResponse *)resp)->coupon->code, mine->code);

    Loyalty__V1__PromoCart *cart = simple_cart("mbr_k", 2000);
    cart->coupon_codes[cart->n_coupon_codes++] = lower_code(mine->code);
    cart->coupon_codes[cart->n_coupon_codes++] = "nosuchcode";
    cart->coupon_codes[cart->n_coupon_codes++] = theirs->code;
    Loyalty__V1__PromoQuoteResult *q = NULL;
    assert_status(pt_quote(svc.addr, m, &arena, cart, &q), STATUS_OK, "");
    const Loyalty__V1__PromoConsidered *c = pt_considered(q, mine->code);
    cr_assert_not_null(c);
    cr_assert_eq(c->reason, R(APPLIED));
    cr_assert_str_eq(c->coupon_id, mine->id, "the code found the member's coupon");
    cr_assert_eq(q->coupon_discount_cents, 500);
    c = pt_considered(q, "NOSUCHCODE");
    cr_assert_not_null(c, "an unknown code is explained, by the code as typed (upper case)");
    cr_assert_eq(c->reason, R(COUPON_NOT_FOUND));
    cr_assert_str_eq(c->coupon_id, "");
    c = pt_considered(q, theirs->code);
    cr_assert_not_null(c);
    cr_assert_eq(c->reason, R(COUPON_NOT_FOUND), "another member's code is not this cart's");
    cr_assert_str_eq(c->coupon_id, "", "and the other member's coupon is not shown");
    cr_assert_str_eq(c->name, "");

    /* The same coupon by id and by code: the second is a duplicate. */
    Loyalty__V1__PromoCart *twice = simple_cart("mbr_k", 2000);
    twice->coupon_ids[twice->n_coupon_ids++] = mine->id;
    twice->coupon_codes[twice->n_coupon_codes++] = mine->code;
    assert_status(pt_quote(svc.addr, m, &arena, twice, &q), STATUS_OK, "");
    cr_assert_eq(q->n_considered, 2);
    cr_assert_eq(q->considered[0]->reason, R(APPLIED));
    cr_assert_eq(q->considered[1]->reason, R(DUPLICATE));
    cr_assert_eq(q->coupon_discount_cents, 500);

    /* A guest cart finds no coupon by code. */
    Loyalty__V1__PromoCart *guest = simple_cart("", 2000);
    guest->coupon_codes[guest->n_coupon_codes++] = mine->code;
    assert_status(pt_quote(svc.addr, m, &arena, guest, &q), STATUS_OK, "");
    cr_assert_eq(pt_considered(q, mine->code)->reason, R(COUPON_NOT_FOUND));

    /* Reserve refuses a code that is not the member's and takes one that is. */
    Loyalty__V1__PromoCart *foreign = simple_cart("mbr_k", 2000);
    foreign->coupon_codes[foreign->n_coupon_codes++] = theirs->code;
    assert_status(pt_reserve(svc.addr, m, &arena, "k-1", NULL, foreign, 0, NULL),
                  STATUS_FAILED_PRECONDITION, "COUPON_NOT_FOUND");
    Loyalty__V1__PromoCart *ok = simple_cart("mbr_k", 2000);
    ok->coupon_codes[ok->n_coupon_codes++] = lower_code(mine->code);
    Loyalty__V1__PromoReservation *r = NULL;
    assert_status(pt_reserve(svc.addr, m, &arena, "k-2", NULL, ok, 0, &r), STATUS_OK, "");
    cr_assert_eq(r->quote->coupon_discount_cents, 500);
    assert_status(promo_call(svc.addr, "GetCoupon", &g.base, &arena, &resp), STATUS_OK, "");
    Loyalty__V1__PromoCoupon *got = ((Loyalty__V1__PromoGetCouponResponse *)resp)->coupon;
    cr_assert_eq(got->status, LOYALTY__V1__PROMO_COUPON_STATUS__PROMO_COUPON_STATUS_RESERVED);
    cr_assert_str_eq(got->checkout_id, "k-2");
    g.coupon_id = theirs->id;
    assert_status(promo_call(svc.addr, "GetCoupon", &g.base, &arena, &resp), STATUS_OK, "");
    cr_assert_eq(((Loyalty__V1__PromoGetCouponResponse *)resp)->coupon->status,
                 LOYALTY__V1__PROMO_COUPON_STATUS__PROMO_COUPON_STATUS_AVAILABLE);

    /* Validation. */
    Loyalty__V1__PromoCart *bad = simple_cart("mbr_k", 2000);
    bad->coupon_codes[bad->n_coupon_codes++] = "no spaces";
    assert_status(pt_quote(svc.addr, m, &arena, bad, &q), STATUS_INVALID_ARGUMENT,
                  "INVALID_CART_COUPON_CODES");
    Loyalty__V1__PromoCart *many = simple_cart("mbr_k", 2000);
    for (int i = 0; i < 3; i++) {
        many->coupon_ids[many->n_coupon_ids++] = mine->id;
        many->coupon_codes[many->n_coupon_codes++] = mine->code;
    }
    assert_status(pt_quote(svc.addr, m, &arena, many, &q), STATUS_INVALID_ARGUMENT,
                  "INVALID_CART_COUPON_CODES");
}

Test(promo_checkout, expired_and_foreign_coupons_are_refused) {
    /* Goal: a coupon past its validity is COUPON_EXPIRED in the quote and refused by Reserve;
     * a coupon of another member is COUPON_NOT_FOUND; below minimum spend is refused. */
    harness_start(&svc, "promo-svc", NULL);
    const char *m = harness_merchant("cexp");
    int64_t now = (int64_t)time(NULL);
    Loyalty__V1__PromoCouponTemplate *tpl = pt_amount_template(&arena, 200, 0), *t = NULL;
    tpl->valid_days = 0;
    tpl->valid_from_at = now - 60;
    tpl->valid_until_at = now + 5; /* room for a loaded machine */
    assert_status(pt_template(svc.addr, m, &arena, tpl, &t), STATUS_OK, "");
    Loyalty__V1__PromoCoupon *c = NULL;
    assert_status(pt_issue(svc.addr, m, &arena, "mbr_e", t->id, SOURCE_WELCOME, NULL, &c),
                  STATUS_OK, "");
    cr_assert_eq(c->valid_until_at, now + 5);
    Loyalty__V1__PromoCart *cart = simple_cart("mbr_e", 1000);
    cart->coupon_ids[cart->n_coupon_ids++] = c->id;
    Loyalty__V1__PromoQuoteResult *q = NULL;
    cart->at = now + 5;
    assert_status(pt_quote(svc.addr, m, &arena, cart, &q), STATUS_OK, "");
    cr_assert_eq(pt_considered(q, c->id)->reason, R(COUPON_EXPIRED), "expiry is exclusive");
    cart->at = 0;
    sleep(6);
    assert_status(pt_reserve(svc.addr, m, &arena, "e-1", NULL, cart, 0, NULL),
                  STATUS_FAILED_PRECONDITION, "COUPON_EXPIRED");
    assert_status(pt_issue(svc.addr, m, &arena, "mbr_e", t->id, SOURCE_WELCOME, NULL, NULL),
                  STATUS_FAILED_PRECONDITION, "TEMPLATE_EXPIRED");
    Loyalty__V1__PromoListCouponsRequest lc = LOYALTY__V1__PROMO_LIST_COUPONS_REQUEST__INIT;
    lc.merchant_id = (char *)m;
    lc.member_id = "mbr_e";
    lc.status = LOYALTY__V1__PROMO_COUPON_STATUS__PROMO_COUPON_STATUS_EXPIRED;
    ProtobufCMessage *resp = NULL;
    assert_status(promo_call(svc.addr, "ListCoupons", &lc.base, &arena, &resp), STATUS_OK, "");
    cr_assert_eq(((Loyalty__V1__PromoListCouponsResponse *)resp)->n_coupons, 1);

    Loyalty__V1__PromoCouponTemplate *t2 = NULL;
    assert_status(pt_template(svc.addr, m, &arena, pt_amount_template(&arena, 200, 5000), &t2),
                  STATUS_OK, "");
    Loyalty__V1__PromoCoupon *other = NULL;
    assert_status(pt_issue(svc.addr, m, &arena, "mbr_other", t2->id, SOURCE_WELCOME, NULL, &other),
                  STATUS_OK, "");
    cart->coupon_ids[0] = other->id;
    assert_status(pt_reserve(svc.addr, m, &arena, "e-2", NULL, cart, 0, NULL),
                  STATUS_FAILED_PRECONDITION, "COUPON_NOT_FOUND");
    Loyalty__V1__PromoCoupon *mine = NULL;
    assert_status(pt_issue(svc.addr, m, &arena, "mbr_e", t2->id, SOURCE_WELCOME, NULL, &mine),
                  STATUS_OK, "");
    cart->coupon_ids[0] = mine->id;
    assert_status(pt_reserve(svc.addr, m, &arena, "e-3", NULL, cart, 0, NULL),
                  STATUS_FAILED_PRECONDITION, "BELOW_MIN_SPEND");
    cart->lines[0]->unit_price_cents = 5000;
    assert_status(pt_reserve(svc.addr, m, &arena, "e-4", NULL, cart, 0, NULL), STATUS_OK, "");
}

/* ---- unique codes ---- */

Test(promo_checkout, unique_codes_are_single_use) {
    /* Goal: generated codes are unguessable, listed for export with paging; one is held by a
     * reservation, used by Confirm, refused afterwards; a released one is usable again. */
    harness_start(&svc, "promo-svc", NULL);
    const char *m = harness_merchant("uniq");
    Loyalty__V1__Promotion *p = pt_promotion(&arena, "Mailing", 0), *promo = NULL;
    pt_amount_off(&arena, p, 250);
    pt_unique_codes(p);
    assert_status(pt_create(svc.addr, m, &arena, p, &promo), STATUS_OK, "");
    Loyalty__V1__PromoGeneratePromoCodesRequest gen =
        LOYALTY__V1__PROMO_GENERATE_PROMO_CODES_REQUEST__INIT;
    gen.merchant_id = (char *)m;
    gen.idempotency_key = (char *)harness_key();
    gen.promotion_id = promo->id;
    gen.count = 5;
    gen.prefix = "vip";
    ProtobufCMessage *resp = NULL;
    assert_status(promo_call(svc.addr, "GeneratePromoCodes", &gen.base, &arena, &resp), STATUS_OK,
                  "");
    const char *batch = ((Loyalty__V1__PromoGeneratePromoCodesResponse *)resp)->batch_id;
    gen.idempotency_key = (char *)harness_key();
    gen.count = 10001;
    assert_status(promo_call(svc.addr, "GeneratePromoCodes", &gen.base, &arena, NULL),
                  STATUS_INVALID_ARGUMENT, "INVALID_COUNT");

    char *codes[5];
    size_t n = 0;
    Loyalty__V1__PageRequest page = LOYALTY__V1__PAGE_REQUEST__INIT;
    page.page_size = 2;
    Loyalty__V1__PromoListPromoCodesRequest list =
        LOYALTY__V1__PROMO_LIST_PROMO_CODES_REQUEST__INIT;
    list.merchant_id = (char *)m;
    list.promotion_id = promo->id;
    list.batch_id = (char *)batch;
    list.page = &page;
    for (int pages = 0; pages < 5; pages++) {
        assert_status(promo_call(svc.addr, "ListPromoCodes", &list.base, &arena, &resp), STATUS_OK,
                      "");
        Loyalty__V1__PromoListPromoCodesResponse *lr = (void *)resp;
        for (size_t i = 0; i < lr->n_codes; i++) {
            cr_assert_eq(strlen(lr->codes[i]->code), 3 + 12);
            cr_assert(strncmp(lr->codes[i]->code, "VIP", 3) == 0);
            codes[n++] = lr->codes[i]->code;
        }
        if (lr->page_info->next_cursor[0] == '\0') {
            break;
        }
        page.cursor = lr->page_info->next_cursor;
    }
    cr_assert_eq(n, 5);
    for (size_t i = 1; i < n; i++) {
        cr_assert(strcmp(codes[i - 1], codes[i]) < 0, "distinct, in code order");
    }

    Loyalty__V1__PromoCart *cart = simple_cart("mbr_u", 1000);
    cart->codes[cart->n_codes++] = codes[0];
    assert_status(pt_reserve(svc.addr, m, &arena, "u-1", NULL, cart, 0, NULL), STATUS_OK, "");
    assert_status(pt_reserve(svc.addr, m, &arena, "u-2", NULL, cart, 0, NULL),
                  STATUS_FAILED_PRECONDITION, "CODE_USED_UP");
    assert_status(pt_release(svc.addr, m, &arena, "u-1", NULL), STATUS_OK, "");
    assert_status(pt_reserve(svc.addr, m, &arena, "u-2", NULL, cart, 0, NULL), STATUS_OK, "");
    assert_status(pt_confirm(svc.addr, m, &arena, "u-2", NULL, NULL), STATUS_OK, "");
    Loyalty__V1__PromoQuoteResult *q = NULL;
    assert_status(pt_quote(svc.addr, m, &arena, cart, &q), STATUS_OK, "");
    cr_assert_eq(q->considered[0]->reason, R(CODE_USED_UP));
    list.status = LOYALTY__V1__PROMO_CODE_STATUS__PROMO_CODE_STATUS_USED;
    list.page = NULL;
    assert_status(promo_call(svc.addr, "ListPromoCodes", &list.base, &arena, &resp), STATUS_OK, "");
    Loyalty__V1__PromoListPromoCodesResponse *used = (void *)resp;
    cr_assert_eq(used->n_codes, 1);
    cr_assert_str_eq(used->codes[0]->code, codes[0]);
    cr_assert_str_eq(used->codes[0]->checkout_id, "u-2");
    /* Two unique codes of one promotion in one cart: the second is a duplicate. */
    cart->codes[cart->n_codes++] = codes[1];
    cart->codes[0] = codes[2];
    assert_status(pt_quote(svc.addr, m, &arena, cart, &q), STATUS_OK, "");
    cr_assert_eq(pt_considered(q, codes[2])->reason, R(APPLIED));
    cr_assert_eq(pt_considered(q, codes[1])->reason, R(DUPLICATE));
}

/* ---- expiry ---- */

Test(promo_checkout, reservations_expire_by_the_job) {
    /* Goal: with the job every second, a reservation with a 3 s TTL is EXPIRED shortly after
     * and its use, code and coupon are back; Confirm then fails RESERVATION_EXPIRED. */
    const char *env[] = {"JOB_INTERVAL_S=1", NULL};
    harness_start(&svc, "promo-svc", env);
    const char *m = harness_merchant("ttl");
    Loyalty__V1__Promotion *p = pt_promotion(&arena, "Once", 0), *promo = NULL;
    pt_amount_off(&arena, p, 100);
    pt_shared_code(p, "ONCE");
    pt_limit(&arena, p, SCOPE_TOTAL, PERIOD_LIFETIME, 1, 0);
    assert_status(pt_create(svc.addr, m, &arena, p, &promo), STATUS_OK, "");
    Loyalty__V1__PromoCouponTemplate *t = NULL;
    assert_status(pt_template(svc.addr, m, &arena, pt_amount_template(&arena, 100, 0), &t),
                  STATUS_OK, "");
    Loyalty__V1__PromoCoupon *c = NULL;
    assert_status(pt_issue(svc.addr, m, &arena, "mbr_t", t->id, SOURCE_WELCOME, NULL, &c),
                  STATUS_OK, "");
    Loyalty__V1__PromoCart *cart = simple_cart("mbr_t", 1000);
    cart->codes[cart->n_codes++] = "ONCE";
    cart->coupon_ids[cart->n_coupon_ids++] = c->id;
    time_t reserved_at = time(NULL);
    assert_status(pt_reserve(svc.addr, m, &arena, "t-1", NULL, cart, 3, NULL), STATUS_OK, "");
    int64_t uses = counter_uses(m, promo->id);
    if (time(NULL) - reserved_at < 2) { /* read well before the TTL, unless the machine is busy */
        cr_assert_eq(uses, 1);
    }
    int64_t stored = 0;
    for (int i = 0; i < 150 && stored != 4; i++) { /* up to 15 s */
        usleep(100 * 1000);
        stored = pt_sql_int("SELECT status FROM promo.reservations WHERE merchant_id = $1 "
                            "AND checkout_id = 't-1'",
                            m, NULL);
    }
    cr_assert_eq(stored, 4, "the job expired it");
    cr_assert_eq(counter_uses(m, promo->id), 0);
    cr_assert_eq(
        pt_sql_int("SELECT status FROM promo.coupons WHERE merchant_id = $1 AND id = $2", m, c->id),
        1);
    assert_status(pt_confirm(svc.addr, m, &arena, "t-1", NULL, NULL), STATUS_FAILED_PRECONDITION,
                  "RESERVATION_EXPIRED");
    Loyalty__V1__PromoReservation *r = NULL;
    assert_status(pt_release(svc.addr, m, &arena, "t-1", &r), STATUS_OK, "");
    cr_assert_eq(r->status, RES(EXPIRED));
    assert_status(pt_reserve(svc.addr, m, &arena, "t-2", NULL, cart, 0, NULL), STATUS_OK, "");
}

Test(promo_checkout, reservations_expire_lazily_without_the_job) {
    /* Goal: with the job off, a reservation past its TTL reads EXPIRED, cannot be confirmed,
     * and the next Reserve of the merchant returns what it held first. */
    const char *env[] = {"JOB_INTERVAL_S=0", NULL};
    harness_start(&svc, "promo-svc", env);
    const char *m = harness_merchant("lazy");
    Loyalty__V1__Promotion *p = pt_promotion(&arena, "Once", 0), *promo = NULL;
    pt_amount_off(&arena, p, 100);
    pt_shared_code(p, "LAZY1");
    pt_limit(&arena, p, SCOPE_TOTAL, PERIOD_LIFETIME, 1, 0);
    assert_status(pt_create(svc.addr, m, &arena, p, &promo), STATUS_OK, "");
    Loyalty__V1__PromoCart *cart = simple_cart("mbr_l", 1000);
    cart->codes[cart->n_codes++] = "LAZY1";
    /* A TTL of 10 s: the refusal below comes well before it even on a busy machine; then wait
     * until the reservation reads EXPIRED, as a client would. */
    assert_status(pt_reserve(svc.addr, m, &arena, "l-1", NULL, cart, 10, NULL), STATUS_OK, "");
    assert_status(pt_reserve(svc.addr, m, &arena, "l-2", NULL, cart, 0, NULL),
                  STATUS_FAILED_PRECONDITION, "CODE_USED_UP");
    Loyalty__V1__PromoReservation *r = NULL;
    assert_status(pt_get_reservation(svc.addr, m, &arena, "l-1", &r), STATUS_OK, "");
    for (int i = 0; i < 300 && r->status != RES(EXPIRED); i++) { /* up to 30 s */
        usleep(100 * 1000);
        assert_status(pt_get_reservation(svc.addr, m, &arena, "l-1", &r), STATUS_OK, "");
    }
    cr_assert_eq(r->status, RES(EXPIRED));
    assert_status(pt_confirm(svc.addr, m, &arena, "l-1", NULL, NULL), STATUS_FAILED_PRECONDITION,
                  "RESERVATION_EXPIRED");
    assert_status(pt_reserve(svc.addr, m, &arena, "l-2", NULL, cart, 0, NULL), STATUS_OK, "");
    cr_assert_eq(counter_uses(m, promo->id), 1);
    cr_assert_eq(pt_sql_int("SELECT status FROM promo.reservations WHERE merchant_id = $1 "
                            "AND checkout_id = 'l-1'",
                            m, NULL),
                 4);
}

static Loyalty__V1__PromoCouponStatus coupon_status_of(const char *m, const char *coupon_id) {
    Loyalty__V1__PromoGetCouponRequest req = LOYALTY__V1__PROMO_GET_COUPON_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.coupon_id = (char *)coupon_id;
    ProtobufCMessage *resp = NULL;
    assert_status(promo_call(svc.addr, "GetCoupon", &req.base, &arena, &resp), STATUS_OK, "");
    return ((Loyalty__V1__PromoGetCouponResponse *)resp)->coupon->status;
}

/* How many of the member's coupons ListCoupons answers under a status filter. */
static size_t coupons_listed(const char *m, const char *member_id,
                             Loyalty__V1__PromoCouponStatus status) {
    Loyalty__V1__PromoListCouponsRequest req = LOYALTY__V1__PROMO_LIST_COUPONS_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.member_id = (char *)member_id;
    req.status = status;
    ProtobufCMessage *resp = NULL;
    assert_status(promo_call(svc.addr, "ListCoupons", &req.base, &arena, &resp), STATUS_OK, "");
    return ((Loyalty__V1__PromoListCouponsResponse *)resp)->n_coupons;
}

/* The first code of a promotion that ListPromoCodes answers under a status filter, or NULL. */
static const char *codes_listed(const char *m, const char *promotion_id,
                                Loyalty__V1__PromoCodeStatus status) {
    Loyalty__V1__PromoListPromoCodesRequest req = LOYALTY__V1__PROMO_LIST_PROMO_CODES_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.promotion_id = (char *)promotion_id;
    req.status = status;
    ProtobufCMessage *resp = NULL;
    assert_status(promo_call(svc.addr, "ListPromoCodes", &req.base, &arena, &resp), STATUS_OK, "");
    Loyalty__V1__PromoListPromoCodesResponse *lr = (void *)resp;
    return lr->n_codes > 0 ? lr->codes[0]->code : NULL;
}

Test(promo_checkout, coupon_and_code_reads_show_the_effective_status_after_a_reservation_expires) {
    /* Goal: once its reservation has expired, a coupon reads AVAILABLE everywhere -- GetCoupon,
     * ListCoupons(AVAILABLE) and not ListCoupons(RESERVED) -- as GetReservation reads EXPIRED,
     * without waiting for the job (off here); so does a single-use code in ListPromoCodes. */
    const char *env[] = {"JOB_INTERVAL_S=0", NULL};
    harness_start(&svc, "promo-svc", env);
    const char *m = harness_merchant("cpx");
    Loyalty__V1__PromoCouponTemplate *t = NULL;
    assert_status(pt_template(svc.addr, m, &arena, pt_amount_template(&arena, 500, 1000), &t),
                  STATUS_OK, "");
    Loyalty__V1__PromoCoupon *c = NULL;
    assert_status(pt_issue(svc.addr, m, &arena, "mbr_x", t->id, SOURCE_WELCOME, NULL, &c),
                  STATUS_OK, "");
    /* And a single-use code of a promotion, held by the same reservation. */
    Loyalty__V1__Promotion *p = pt_promotion(&arena, "Mailing", 0), *promo = NULL;
    pt_amount_off(&arena, p, 100);
    pt_unique_codes(p);
    assert_status(pt_create(svc.addr, m, &arena, p, &promo), STATUS_OK, "");
    Loyalty__V1__PromoGeneratePromoCodesRequest gen =
        LOYALTY__V1__PROMO_GENERATE_PROMO_CODES_REQUEST__INIT;
    gen.merchant_id = (char *)m;
    gen.idempotency_key = (char *)harness_key();
    gen.promotion_id = promo->id;
    gen.count = 1;
    gen.prefix = "x";
    assert_status(promo_call(svc.addr, "GeneratePromoCodes", &gen.base, &arena, NULL), STATUS_OK,
                  "");
    const char *code = codes_listed(m, promo->id, 0);
    Loyalty__V1__PromoCart *cart = simple_cart("mbr_x", 2000);
    cart->coupon_ids[cart->n_coupon_ids++] = c->id;
    cart->codes[cart->n_codes++] = (char *)code;
    assert_status(pt_reserve(svc.addr, m, &arena, "x-1", NULL, cart, 1, NULL), STATUS_OK, "");
    /* While held (unless a very slow machine let the second pass already). */
    Loyalty__V1__PromoReservation *r = NULL;
    assert_status(pt_get_reservation(svc.addr, m, &arena, "x-1", &r), STATUS_OK, "");
    if (r->status == RES(RESERVED)) {
        cr_assert_eq(coupon_status_of(m, c->id), COUPON_STATUS(RESERVED));
    }
    /* Wait for the reservation to read EXPIRED, as a client would see it. */
    for (int i = 0; i < 300 && r->status != RES(EXPIRED); i++) {
        usleep(100 * 1000);
        assert_status(pt_get_reservation(svc.addr, m, &arena, "x-1", &r), STATUS_OK, "");
    }
    cr_assert_eq(r->status, RES(EXPIRED));
    cr_assert_eq(coupon_status_of(m, c->id), COUPON_STATUS(AVAILABLE));
    cr_assert_eq(coupons_listed(m, "mbr_x", COUPON_STATUS(AVAILABLE)), 1);
    cr_assert_eq(coupons_listed(m, "mbr_x", COUPON_STATUS(RESERVED)), 0);
    cr_assert_eq(coupons_listed(m, "mbr_x", COUPON_STATUS(UNSPECIFIED)), 1);
    cr_assert_str_eq(codes_listed(m, promo->id, CODE_STATUS(AVAILABLE)), code);
    cr_assert_null(codes_listed(m, promo->id, CODE_STATUS(RESERVED)));
    /* Still stored RESERVED: the reads, not the job, made it available. */
    cr_assert_eq(
        pt_sql_int("SELECT status FROM promo.coupons WHERE merchant_id = $1 AND id = $2", m, c->id),
        2);
    /* And another checkout may take it. */
    assert_status(pt_reserve(svc.addr, m, &arena, "x-2", NULL, cart, 0, NULL), STATUS_OK, "");
    cr_assert_eq(coupon_status_of(m, c->id), COUPON_STATUS(RESERVED));
}

/* ---- isolation ---- */

Test(promo_checkout, merchants_are_isolated) {
    /* Goal: another merchant sees none of this merchant's promotions, codes, coupons or
     * reservations, and cannot change them. */
    harness_start(&svc, "promo-svc", NULL);
    const char *m1 = harness_merchant("iso1");
    const char *m2 = harness_merchant("iso2");
    Loyalty__V1__Promotion *p = pt_promotion(&arena, "Mine", 0), *auto1 = NULL;
    pt_amount_off(&arena, p, 100);
    assert_status(pt_create(svc.addr, m1, &arena, p, &auto1), STATUS_OK, "");
    p = pt_promotion(&arena, "My code", 0);
    pt_amount_off(&arena, p, 100);
    pt_shared_code(p, "MINE");
    assert_status(pt_create(svc.addr, m1, &arena, p, NULL), STATUS_OK, "");
    Loyalty__V1__PromoCouponTemplate *t = NULL;
    assert_status(pt_template(svc.addr, m1, &arena, pt_amount_template(&arena, 100, 0), &t),
                  STATUS_OK, "");
    Loyalty__V1__PromoCoupon *c = NULL;
    assert_status(pt_issue(svc.addr, m1, &arena, "mbr_i", t->id, SOURCE_WELCOME, NULL, &c),
                  STATUS_OK, "");
    Loyalty__V1__PromoCart *cart = simple_cart("mbr_i", 1000);
    cart->codes[cart->n_codes++] = "MINE";
    cart->coupon_ids[cart->n_coupon_ids++] = c->id;
    assert_status(pt_reserve(svc.addr, m1, &arena, "i-1", NULL, cart, 0, NULL), STATUS_OK, "");

    Loyalty__V1__PromoQuoteResult *q = NULL;
    assert_status(pt_quote(svc.addr, m2, &arena, cart, &q), STATUS_OK, "");
    cr_assert_eq(q->merchandise_cents, 1000);
    cr_assert_null(pt_considered(q, auto1->id));
    cr_assert_eq(pt_considered(q, "MINE")->reason, R(CODE_UNKNOWN));
    cr_assert_eq(pt_considered(q, c->id)->reason, R(COUPON_NOT_FOUND));
    Loyalty__V1__PromoGetPromotionRequest gp = LOYALTY__V1__PROMO_GET_PROMOTION_REQUEST__INIT;
    gp.merchant_id = (char *)m2;
    gp.promotion_id = auto1->id;
    assert_status(promo_call(svc.addr, "GetPromotion", &gp.base, &arena, NULL), STATUS_NOT_FOUND,
                  "PROMOTION_NOT_FOUND");
    assert_status(pt_get_reservation(svc.addr, m2, &arena, "i-1", NULL), STATUS_NOT_FOUND,
                  "RESERVATION_NOT_FOUND");
    assert_status(pt_confirm(svc.addr, m2, &arena, "i-1", NULL, NULL), STATUS_NOT_FOUND,
                  "RESERVATION_NOT_FOUND");
    assert_status(pt_release(svc.addr, m2, &arena, "i-1", NULL), STATUS_OK, "");
    /* m2's release recorded its own checkout; m1's reservation is untouched. */
    Loyalty__V1__PromoReservation *r = NULL;
    assert_status(pt_get_reservation(svc.addr, m1, &arena, "i-1", &r), STATUS_OK, "");
    cr_assert_eq(r->status, RES(RESERVED));
    assert_status(pt_confirm(svc.addr, m1, &arena, "i-1", NULL, NULL), STATUS_OK, "");
}
