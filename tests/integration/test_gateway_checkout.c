/* test_gateway_rpc_checkout.c -- the checkout and refund sagas with every real service: a checkout
 * paid with tier discount + promo code + coupon + points + wallet + an external remainder, every
 * figure checked by hand; the tier upgrade it causes; purchase rewards for three referral
 * levels; a refund of half then the rest; every failure path of Begin leaving no reservation
 * behind; cancel and expiry; idempotent retries. */
#include "gateway_it.h"

#include <ctype.h>

TestSuite(gateway_checkout, .init = it_setup, .fini = it_teardown, .timeout = 300);

Test(gateway_checkout, full_checkout_then_refund_half_and_the_rest) {
    stack_start();
    shop_t s;
    open_shop(&s, "co");
    const char *b = new_buyer(&s, 5000, 3000);
    Loyalty__V1__PromoCoupon *coupon = issue_coupon(s.m, b, s.five_off->id);
    Loyalty__V1__GatewayCart *cart = shirt_cart();
    cart->codes[cart->n_codes++] = "SAVE10";
    cart->coupon_ids[cart->n_coupon_ids++] = coupon->id;
    const char *key = harness_key();
    Loyalty__V1__GatewayCheckout *co = NULL;
    assert_ok(begin_checkout(s.m, key, "order-1", b, cart, pay(2000, 3000), &co));
    cr_assert_eq(co->state, S_RESERVED);
    const Loyalty__V1__GatewayCheckoutBreakdown *k = co->breakdown;
    /* Subtotal 2 x 50.00 + 20.00 = 120.00. Bronze 5%: 5.00 + 1.00 = 6.00 -> A 95.00, B 19.00.
     * SAVE10 10.00 pro rata over 114.00: A 8.3333 -> 8.33, B 1.6666 -> 1.66, the last cent to
     * the larger remainder (B): A 8.33, B 1.67 -> A 86.67, B 17.33. Coupon 5.00 over 104.00:
     * A 4.1668 -> 4.16, B 0.8331 -> 0.83, last cent to A: A 4.17, B 0.83 -> A 82.50, B 16.50.
     * Merchandise 99.00 + shipping 5.00 = 104.00. */
    cr_assert_eq(k->subtotal_cents, 12000);
    cr_assert_eq(k->tier_discount_cents, 600);
    cr_assert_eq(k->promotion_discount_cents, 1000);
    cr_assert_eq(k->coupon_discount_cents, 500);
    cr_assert_eq(k->shipping_cents, 500);
    cr_assert_eq(k->shipping_discount_cents, 0);
    cr_assert_eq(k->total_cents, 10400);
    cr_assert_eq(quote_line(co, "A")->final_amount_cents, 8250);
    cr_assert_eq(quote_line(co, "B")->final_amount_cents, 1650);
    cr_assert_str_eq(k->tier->name, "Bronze");
    /* 2000 points (cap: 50% of 104.00 = 52.00) = 20.00; wallet 30.00; 54.00 left to pay. */
    cr_assert_eq(k->points_used, 2000);
    cr_assert_eq(k->points_cash_cents, 2000);
    cr_assert_eq(k->wallet_cents, 3000);
    cr_assert_eq(k->amount_due_cents, 5400);
    cr_assert_eq(k->earn_base_cents, 8400);
    cr_assert_neq(co->points_hold_id[0], '\0');
    cr_assert_neq(co->wallet_hold_id[0], '\0');
    Loyalty__V1__PointsBalance *pb = points_balance(s.m, b);
    cr_assert_eq(pb->available, 3000);
    cr_assert_eq(pb->held, 2000);
    cr_assert_eq(wallet_balance(s.m, b)->held_cents, 3000);

    /* A retry of Begin answers the same checkout. */
    Loyalty__V1__GatewayCheckout *again = NULL;
    assert_ok(begin_checkout(s.m, key, "order-1", b, cart, pay(2000, 3000), &again));
    cr_assert_str_eq(again->checkout_id, co->checkout_id);
    /* Another key for the same order is refused while the checkout lives. */
    assert_status(begin_checkout(s.m, NULL, "order-1", b, shirt_cart(), NULL, NULL),
                  STATUS_ALREADY_EXISTS, "ORDER_ALREADY_CHECKED_OUT");
    /* 54.00 is due: Complete needs the payment. */
    assert_status(complete_checkout(s.m, co->checkout_id, NULL, NULL), STATUS_FAILED_PRECONDITION,
                  "PAYMENT_REF_REQUIRED");

    Loyalty__V1__GatewayCheckout *done = NULL;
    assert_ok(complete_checkout(s.m, co->checkout_id, "psp-123", &done));
    cr_assert_eq(done->state, S_COMPLETED, "state %d reason %s", done->state, done->reason);
    const Loyalty__V1__GatewayCheckoutResult *res = done->result;
    cr_assert_eq(res->wallet_captured_cents, 3000);
    cr_assert_eq(res->points_spent, 2000);
    /* Earned on 84.00 paid (wallet + external): 84 points at Bronze 1x; growth 84. */
    cr_assert_eq(res->points_earned, 84);
    cr_assert_eq(res->growth_earned, 84);
    /* Growth 84 >= Gold's 80: upgraded. */
    cr_assert_str_eq(res->old_tier->name, "Bronze");
    cr_assert_str_eq(res->new_tier->name, "Gold");
    cr_assert_eq(res->tier_change_reason,
                 LOYALTY__V1__MEMBER_TIER_CHANGE_REASON__MEMBER_TIER_CHANGE_REASON_UPGRADE);
    cr_assert_eq(res->n_referral_rewards, 3);
    /* 10%, 5%, 2% of 84.00 as points: 840, 420, 168. */
    cr_assert_eq(points_balance(s.m, s.r1)->available, 840);
    cr_assert_eq(points_balance(s.m, s.r2)->available, 420);
    cr_assert_eq(points_balance(s.m, s.r3)->available, 168);
    pb = points_balance(s.m, b);
    cr_assert_eq(pb->available, 5000 - 2000 + 84);
    cr_assert_eq(pb->held, 0);
    Loyalty__V1__WalletBalance *wb = wallet_balance(s.m, b);
    cr_assert_eq(wb->available_cents, 0);
    cr_assert_eq(wb->held_cents, 0);
    cr_assert_eq(coupon_status(s.m, coupon->id), COUPON_USED);
    cr_assert_str_eq(member_tier(s.m, b)->tier->name, "Gold");
    /* Completing again answers the same; with another payment it is refused. */
    assert_ok(complete_checkout(s.m, co->checkout_id, "psp-123", &again));
    cr_assert_eq(again->state, S_COMPLETED);
    assert_status(complete_checkout(s.m, co->checkout_id, "psp-999", NULL), STATUS_ALREADY_EXISTS,
                  "PAYMENT_REF_MISMATCH");
    Loyalty__V1__GatewayCheckout *got = get_checkout(s.m, co->checkout_id);
    cr_assert_eq(got->refundable_cents, 10400);
    cr_assert(find_step((const Loyalty__V1__GatewayStep *const *)got->steps, got->n_steps,
                        "member_record_order") != NULL);
    for (size_t i = 0; i < got->n_steps; i++) {
        cr_assert_eq(got->steps[i]->state, LOYALTY__V1__GATEWAY_STEP_STATE__GATEWAY_STEP_STATE_DONE,
                     "step %s", got->steps[i]->name);
    }

    /* Refund half (52.00): 10.00 points cash, 15.00 wallet, 27.00 external; 50% share. */
    Loyalty__V1__GatewayRefund *r = NULL;
    const char *rkey = harness_key();
    assert_ok(refund_amount(s.m, rkey, "order-1", 5200, &r));
    cr_assert_eq(r->state, S_COMPLETED, "refund state %d reason %s", r->state, r->reason);
    cr_assert_eq(r->points_cash_cents, 1000);
    cr_assert_eq(r->wallet_cents, 1500);
    cr_assert_eq(r->external_cents, 2700);
    cr_assert_eq(r->share_bps, 5000);
    cr_assert_eq(r->points_restored, 1000);
    cr_assert_eq(r->points_clawed_back, 42);
    cr_assert_eq(r->growth_removed, 42);
    cr_assert_eq(r->spend_returned_cents, 4200);
    cr_assert_eq(r->referral_points_clawed_back, 420 + 210 + 84);
    cr_assert_str_eq(r->new_tier->name, "Bronze", "growth 42 no longer holds Gold");
    cr_assert_eq(r->order_refundable_cents, 5200);
    cr_assert_eq(points_balance(s.m, b)->available, 3084 + 1000 - 42);
    cr_assert_eq(wallet_balance(s.m, b)->available_cents, 1500);
    cr_assert_eq(points_balance(s.m, s.r1)->available, 420);
    cr_assert_eq(points_balance(s.m, s.r2)->available, 210);
    cr_assert_eq(points_balance(s.m, s.r3)->available, 84);
    Loyalty__V1__GatewayRefund *r_again = NULL;
    assert_ok(refund_amount(s.m, rkey, "order-1", 5200, &r_again));
    cr_assert_str_eq(r_again->refund_id, r->refund_id, "a retry refunds once");
    cr_assert_eq(wallet_balance(s.m, b)->available_cents, 1500);

    /* The rest, by lines: every line fully returned takes the rest of the order. */
    Loyalty__V1__GatewayRefundLine la = LOYALTY__V1__GATEWAY_REFUND_LINE__INIT;
    la.line_id = "A";
    la.quantity = 2;
    Loyalty__V1__GatewayRefundLine lb = LOYALTY__V1__GATEWAY_REFUND_LINE__INIT;
    lb.line_id = "B";
    lb.quantity = 1;
    Loyalty__V1__GatewayRefundLine *lines[] = {&la, &lb};
    Loyalty__V1__GatewayRefundLines rl = LOYALTY__V1__GATEWAY_REFUND_LINES__INIT;
    rl.lines = lines;
    rl.n_lines = 2;
    Loyalty__V1__GatewayRefundOrderRequest rr = LOYALTY__V1__GATEWAY_REFUND_ORDER_REQUEST__INIT;
    rr.merchant_id = (char *)s.m;
    rr.idempotency_key = (char *)harness_key();
    rr.order_id = "order-1";
    rr.what_case = LOYALTY__V1__GATEWAY_REFUND_ORDER_REQUEST__WHAT_LINES;
    rr.lines = &rl;
    Loyalty__V1__GatewayRefundOrderResponse *rresp = NULL;
    assert_ok(gw("RefundOrder", &rr, &rresp));
    r = rresp->refund;
    cr_assert_eq(r->state, S_COMPLETED);
    cr_assert_eq(r->amount_cents, 5200);
    cr_assert_eq(r->points_cash_cents, 1000);
    cr_assert_eq(r->wallet_cents, 1500);
    cr_assert_eq(r->external_cents, 2700);
    cr_assert_eq(r->share_bps_total, 10000);
    cr_assert(r->full_refund);
    cr_assert_eq(points_balance(s.m, b)->available, 5000, "every point is back");
    cr_assert_eq(wallet_balance(s.m, b)->available_cents, 3000, "every cent is back");
    cr_assert_eq(points_balance(s.m, s.r1)->available, 0);
    cr_assert_eq(points_balance(s.m, s.r2)->available, 0);
    cr_assert_eq(points_balance(s.m, s.r3)->available, 0);
    cr_assert_eq(coupon_status(s.m, coupon->id), COUPON_AVAILABLE, "the coupon came back");
    assert_status(refund_amount(s.m, NULL, "order-1", 1, NULL), STATUS_FAILED_PRECONDITION,
                  "REFUND_EXCEEDS_ORDER");
    got = get_checkout(s.m, co->checkout_id);
    cr_assert_eq(got->refunded_cents, 10400);
    cr_assert_eq(got->refundable_cents, 0);
    assert_ledgers_clean(s.m);
}

Test(gateway_checkout, member_svc_learns_the_points_balance_from_checkout_and_refund) {
    /* Goal: the points_balance tag rule follows the buyer's balance as the checkout's earn and
     * the refund's reversal leave it (the gateway passes it with RecordOrder/RecordReturn). */
    stack_start();
    shop_t s;
    open_shop(&s, "pbal");
    set_balance_tag_rule(s.m, "points_rich", 4000);
    const char *b = new_buyer(&s, 5000, 3000);
    Loyalty__V1__GatewayCheckout *co = NULL;
    assert_ok(begin_checkout(s.m, harness_key(), "pbal-1", b, shirt_cart(), pay(2000, 3000), &co));
    Loyalty__V1__GatewayCheckout *done = NULL;
    assert_ok(complete_checkout(s.m, co->checkout_id, "psp-1", &done));
    cr_assert_eq(done->state, S_COMPLETED, "state %d reason %s", done->state, done->reason);
    int64_t after_order = points_balance(s.m, b)->available;
    Loyalty__V1__MemberStats *st = member_stats(s.m, b);
    cr_assert_eq(st->points_balance, after_order, "member-svc has %lld, points-svc %lld",
                 (long long)st->points_balance, (long long)after_order);
    cr_assert_lt(after_order, 4000);
    cr_assert_eq(st->n_automatic_tags, 0);
    /* Half back: the points paid come back, the balance crosses 4000. */
    Loyalty__V1__GatewayRefund *r = NULL;
    assert_ok(refund_amount(s.m, harness_key(), "pbal-1", done->breakdown->total_cents / 2, &r));
    cr_assert_eq(r->state, S_COMPLETED, "refund state %d reason %s", r->state, r->reason);
    int64_t after_refund = points_balance(s.m, b)->available;
    cr_assert_geq(after_refund, 4000);
    st = member_stats(s.m, b);
    cr_assert_eq(st->points_balance, after_refund);
    cr_assert_eq(st->n_automatic_tags, 1);
    cr_assert_str_eq(st->automatic_tags[0], "points_rich");
}

/* After a refused Begin: nothing held, the coupon free, the checkout CANCELLED with reason. */
static void assert_nothing_held(shop_t *s, const char *b, int64_t points, int64_t wallet) {
    Loyalty__V1__PointsBalance *pb = points_balance(s->m, b);
    cr_assert_eq(pb->available, points);
    cr_assert_eq(pb->held, 0);
    Loyalty__V1__WalletBalance *wb = wallet_balance(s->m, b);
    cr_assert_eq(wb->available_cents, wallet);
    cr_assert_eq(wb->held_cents, 0);
}

static void assert_cancelled(shop_t *s, const char *order, const char *reason) {
    Loyalty__V1__GatewayGetCheckoutRequest r = LOYALTY__V1__GATEWAY_GET_CHECKOUT_REQUEST__INIT;
    r.merchant_id = (char *)s->m;
    r.target_case = LOYALTY__V1__GATEWAY_GET_CHECKOUT_REQUEST__TARGET_ORDER_ID;
    r.order_id = (char *)order;
    Loyalty__V1__GatewayGetCheckoutResponse *resp = NULL;
    assert_ok(gw("GetCheckout", &r, &resp));
    cr_assert_eq(resp->checkout->state, S_CANCELLED);
    cr_assert_str_eq(resp->checkout->reason, reason);
    for (size_t i = 0; i < resp->checkout->n_steps; i++) {
        const Loyalty__V1__GatewayStep *st = resp->checkout->steps[i];
        cr_assert_neq(st->state, LOYALTY__V1__GATEWAY_STEP_STATE__GATEWAY_STEP_STATE_STARTED,
                      "step %s left started", st->name);
    }
}

Test(gateway_checkout, every_refusal_of_begin_leaves_nothing_reserved) {
    stack_start();
    shop_t s;
    open_shop(&s, "cof");
    create_code_promotion(s.m, "ONCE", 300, 1);
    const char *b = new_buyer(&s, 5000, 3000);
    Loyalty__V1__PromoCoupon *coupon = issue_coupon(s.m, b, s.five_off->id);

    /* Insufficient points: 5001 asked (within the 52.00 cap), 5000 owned. */
    Loyalty__V1__GatewayCart *cart = shirt_cart();
    cart->codes[cart->n_codes++] = "ONCE";
    cart->coupon_ids[cart->n_coupon_ids++] = coupon->id;
    const char *key = harness_key();
    assert_status(begin_checkout(s.m, key, "o-points", b, cart, pay(5001, 0), NULL),
                  STATUS_FAILED_PRECONDITION, "INSUFFICIENT_POINTS");
    assert_nothing_held(&s, b, 5000, 3000);
    cr_assert_eq(coupon_status(s.m, coupon->id), COUPON_AVAILABLE);
    assert_cancelled(&s, "o-points", "INSUFFICIENT_POINTS");
    assert_status(begin_checkout(s.m, key, "o-points", b, cart, pay(5001, 0), NULL),
                  STATUS_FAILED_PRECONDITION, "INSUFFICIENT_POINTS");

    /* Insufficient funds: the points hold and the reservation are undone. */
    assert_status(begin_checkout(s.m, NULL, "o-wallet", b, cart, pay(1000, 3001), NULL),
                  STATUS_FAILED_PRECONDITION, "INSUFFICIENT_FUNDS");
    assert_nothing_held(&s, b, 5000, 3000);
    cr_assert_eq(coupon_status(s.m, coupon->id), COUPON_AVAILABLE);
    assert_cancelled(&s, "o-wallet", "INSUFFICIENT_FUNDS");

    /* The code's single use was given back: another member can still take it... */
    const char *other = new_buyer(&s, 0, 0);
    Loyalty__V1__GatewayCart *cart2 = shirt_cart();
    cart2->codes[cart2->n_codes++] = "ONCE";
    Loyalty__V1__GatewayCheckout *co = NULL;
    assert_ok(begin_checkout(s.m, NULL, "o-other", other, cart2, NULL, &co));
    /* ...and then it is used up. */
    assert_status(begin_checkout(s.m, NULL, "o-code", b, cart, pay(1000, 1000), NULL),
                  STATUS_FAILED_PRECONDITION, "CODE_USED_UP");
    assert_nothing_held(&s, b, 5000, 3000);
    cr_assert_eq(coupon_status(s.m, coupon->id), COUPON_AVAILABLE);

    /* Coupon expired: a coupon valid for 2 more seconds, used 3 seconds later. */
    Loyalty__V1__PromoCouponTemplate t = LOYALTY__V1__PROMO_COUPON_TEMPLATE__INIT;
    t.name = "Flash";
    t.kind = LOYALTY__V1__PROMO_COUPON_KIND__PROMO_COUPON_KIND_AMOUNT_OFF;
    t.amount_off_cents = 100;
    t.valid_from_at = time(NULL) - 60;
    t.valid_until_at = time(NULL) + 2;
    Loyalty__V1__PromoCreateCouponTemplateRequest tr =
        LOYALTY__V1__PROMO_CREATE_COUPON_TEMPLATE_REQUEST__INIT;
    tr.merchant_id = (char *)s.m;
    tr.idempotency_key = (char *)harness_key();
    tr.coupon_template = &t;
    Loyalty__V1__PromoCreateCouponTemplateResponse *tresp = NULL;
    assert_ok(call(SVC_PROMO, "CreateCouponTemplate", &tr, &tresp));
    Loyalty__V1__PromoCoupon *flash = issue_coupon(s.m, b, tresp->coupon_template->id);
    sleep_ms(3200);
    Loyalty__V1__GatewayCart *cart3 = shirt_cart();
    cart3->coupon_ids[cart3->n_coupon_ids++] = flash->id;
    assert_status(begin_checkout(s.m, NULL, "o-expired", b, cart3, pay(1000, 1000), NULL),
                  STATUS_FAILED_PRECONDITION, "COUPON_EXPIRED");
    assert_nothing_held(&s, b, 5000, 3000);
    assert_ledgers_clean(s.m);
}

Test(gateway_checkout, coupon_by_the_code_the_customer_types) {
    /* Goal: the cart names the member's coupon by its code (as typed, any case) and the
     * checkout applies and holds it like one given by id; another member's code or an unknown
     * one refuses Begin with COUPON_NOT_FOUND and holds nothing; more than 5 coupons in all is
     * INVALID_ARGUMENT. */
    stack_start();
    shop_t s;
    open_shop(&s, "cc");
    const char *b = new_buyer(&s, 0, 0);
    const char *other = new_buyer(&s, 0, 0);
    Loyalty__V1__PromoCoupon *coupon = issue_coupon(s.m, b, s.five_off->id);
    Loyalty__V1__PromoCoupon *theirs = issue_coupon(s.m, other, s.five_off->id);
    cr_assert_eq(strlen(coupon->code), 10, "the coupon has a code: \"%s\"", coupon->code);
    char *typed = arena_strdup(&arena, coupon->code);
    for (char *p = typed; *p; p++) {
        *p = (char)tolower((unsigned char)*p);
    }

    Loyalty__V1__GatewayCart *foreign = shirt_cart();
    foreign->coupon_codes[foreign->n_coupon_codes++] = theirs->code;
    assert_status(begin_checkout(s.m, NULL, "o-foreign", b, foreign, NULL, NULL),
                  STATUS_FAILED_PRECONDITION, "COUPON_NOT_FOUND");
    cr_assert_eq(coupon_status(s.m, theirs->id), COUPON_AVAILABLE);
    Loyalty__V1__GatewayCart *unknown = shirt_cart();
    unknown->coupon_codes[unknown->n_coupon_codes++] = "NOSUCHCODE";
    assert_status(begin_checkout(s.m, NULL, "o-unknown", b, unknown, NULL, NULL),
                  STATUS_FAILED_PRECONDITION, "COUPON_NOT_FOUND");
    Loyalty__V1__GatewayCart *many = shirt_cart();
    for (int i = 0; i < 3; i++) {
        many->coupon_ids[many->n_coupon_ids++] = coupon->id;
        many->coupon_codes[many->n_coupon_codes++] = typed;
    }
    assert_status(begin_checkout(s.m, NULL, "o-many", b, many, NULL, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_CART_COUPON_CODES");

    Loyalty__V1__GatewayCart *cart = shirt_cart();
    cart->coupon_codes[cart->n_coupon_codes++] = typed;
    Loyalty__V1__GatewayCheckout *co = NULL;
    assert_ok(begin_checkout(s.m, NULL, "o-code", b, cart, NULL, &co));
    cr_assert_eq(co->breakdown->coupon_discount_cents, 500);
    cr_assert_eq(coupon_status(s.m, coupon->id),
                 LOYALTY__V1__PROMO_COUPON_STATUS__PROMO_COUPON_STATUS_RESERVED);
    assert_ok(complete_checkout(s.m, co->checkout_id, "psp-code", &co));
    cr_assert_eq(co->state, S_COMPLETED);
    cr_assert_eq(coupon_status(s.m, coupon->id), COUPON_USED);
}

Test(gateway_checkout, cancel_and_expiry_release_everything) {
    gw_extra_env[0] = "CHECKOUT_TTL_S=2";
    stack_start();
    shop_t s;
    open_shop(&s, "cox");
    const char *b = new_buyer(&s, 5000, 3000);
    Loyalty__V1__PromoCoupon *coupon = issue_coupon(s.m, b, s.five_off->id);
    Loyalty__V1__GatewayCart *cart = shirt_cart();
    cart->coupon_ids[cart->n_coupon_ids++] = coupon->id;
    Loyalty__V1__GatewayCheckout *co = NULL;
    assert_ok(begin_checkout(s.m, NULL, "o-cancel", b, cart, pay(1000, 1000), &co));
    Loyalty__V1__GatewayCancelCheckoutRequest c =
        LOYALTY__V1__GATEWAY_CANCEL_CHECKOUT_REQUEST__INIT;
    c.merchant_id = (char *)s.m;
    c.checkout_id = co->checkout_id;
    Loyalty__V1__GatewayCancelCheckoutResponse *cresp = NULL;
    assert_ok(gw("CancelCheckout", &c, &cresp));
    cr_assert_eq(cresp->checkout->state, S_CANCELLED);
    cr_assert_str_eq(cresp->checkout->reason, "CHECKOUT_CANCELLED");
    assert_nothing_held(&s, b, 5000, 3000);
    cr_assert_eq(coupon_status(s.m, coupon->id), COUPON_AVAILABLE);
    assert_ok(gw("CancelCheckout", &c, &cresp)); /* again: the same answer */
    assert_status(complete_checkout(s.m, co->checkout_id, "p", NULL), STATUS_FAILED_PRECONDITION,
                  "CHECKOUT_NOT_RESERVED");

    /* The order can be checked out again; this time nobody completes it within 2 s. */
    assert_ok(begin_checkout(s.m, NULL, "o-cancel", b, cart, pay(1000, 1000), &co));
    Loyalty__V1__GatewaySaga *saga = NULL;
    for (int i = 0; i < 50; i++) {
        sleep_ms(200);
        saga = wait_saga_final(s.m, co->checkout_id, 0);
        if (saga->state == S_CANCELLED) {
            break;
        }
    }
    cr_assert_eq(saga->state, S_CANCELLED, "expired by the recovery job");
    cr_assert_str_eq(saga->reason, "EXPIRED");
    assert_nothing_held(&s, b, 5000, 3000);
    cr_assert_eq(coupon_status(s.m, coupon->id), COUPON_AVAILABLE);
    assert_status(complete_checkout(s.m, co->checkout_id, "p", NULL), STATUS_FAILED_PRECONDITION,
                  "CHECKOUT_NOT_RESERVED");
    assert_ledgers_clean(s.m);
}

Test(gateway_checkout, one_call_checkout_with_membership_and_top_up_products) {
    /* Goal: Checkout() paid at a POS: a yearly membership (Gold plan) and a 50.00 wallet top-up
     * card are applied on completion; buying stored value earns nothing. */
    stack_start();
    shop_t s;
    open_shop(&s, "cop");
    const char *b = new_buyer(&s, 0, 0);
    Loyalty__V1__MemberPlan plan = LOYALTY__V1__MEMBER_PLAN__INIT;
    plan.name = "Gold yearly";
    plan.tier_id = s.gold->id;
    plan.period = LOYALTY__V1__MEMBER_PLAN_PERIOD__MEMBER_PLAN_PERIOD_YEARLY;
    plan.price_cents = 9900;
    plan.active = true;
    Loyalty__V1__MemberCreatePlanRequest pr = LOYALTY__V1__MEMBER_CREATE_PLAN_REQUEST__INIT;
    pr.merchant_id = (char *)s.m;
    pr.idempotency_key = (char *)harness_key();
    pr.plan = &plan;
    Loyalty__V1__MemberCreatePlanResponse *presp = NULL;
    assert_ok(call(SVC_MEMBER, "CreateMembershipPlan", &pr, &presp));
    Loyalty__V1__GatewayCart *cart = new_cart();
    add_line(cart, "shirt", "shirt", 1, 5000);
    Loyalty__V1__GatewayCartLine *ml = add_line(cart, "gold", "gold-yearly", 1, 9900);
    ml->kind = LOYALTY__V1__GATEWAY_LINE_KIND__GATEWAY_LINE_KIND_MEMBERSHIP;
    ml->membership_plan_id = presp->plan->id;
    Loyalty__V1__GatewayCartLine *tl = add_line(cart, "card", "gift-card-50", 1, 5000);
    tl->kind = LOYALTY__V1__GATEWAY_LINE_KIND__GATEWAY_LINE_KIND_WALLET_TOPUP;
    Loyalty__V1__GatewayCheckoutRequest r = LOYALTY__V1__GATEWAY_CHECKOUT_REQUEST__INIT;
    r.merchant_id = (char *)s.m;
    r.idempotency_key = (char *)harness_key();
    r.order_id = "pos-1";
    r.member_id = (char *)b;
    r.cart = cart;
    r.payment_ref = "pos-receipt-1";
    Loyalty__V1__GatewayCheckoutResponse *resp = NULL;
    assert_ok(gw("Checkout", &r, &resp));
    Loyalty__V1__GatewayCheckout *co = resp->checkout;
    cr_assert_eq(co->state, S_COMPLETED, "state %d %s", co->state, co->reason);
    /* Bronze 5% on every line: 47.50 + 94.05 + 47.50 = 189.05 paid at the POS. */
    cr_assert_eq(co->breakdown->total_cents, 4750 + 9405 + 4750);
    cr_assert_eq(co->breakdown->amount_due_cents, 18905);
    /* Earn base: 189.05 minus the top-up card's 47.50 = 141.55 -> 141 points. */
    cr_assert_eq(co->breakdown->earn_base_cents, 18905 - 4750);
    cr_assert_eq(co->result->points_earned, 141);
    cr_assert_eq(co->result->n_products, 2);
    cr_assert_eq(wallet_balance(s.m, b)->available_cents, 5000, "the card's face value");
    Loyalty__V1__MemberTierStatus *ts = member_tier(s.m, b);
    cr_assert_str_eq(ts->tier->name, "Gold");
    cr_assert_eq(ts->card_kind, LOYALTY__V1__MEMBER_CARD_KIND__MEMBER_CARD_KIND_PAID);
    /* Only the goods are refundable: 47.50 of 189.05. */
    Loyalty__V1__GatewayCheckout *got = get_checkout(s.m, co->checkout_id);
    cr_assert_eq(got->refundable_cents, 4750);
    assert_status(refund_amount(s.m, NULL, "pos-1", 4751, NULL), STATUS_FAILED_PRECONDITION,
                  "REFUND_EXCEEDS_ORDER");
    /* Checkout() of an order with money due and no payment is refused and undone. */
    r.idempotency_key = (char *)harness_key();
    r.order_id = "pos-2";
    r.payment_ref = "";
    assert_status(gw("Checkout", &r, NULL), STATUS_FAILED_PRECONDITION, "PAYMENT_REF_REQUIRED");
    assert_ledgers_clean(s.m);
}

/* SQL run on the test's database with the merchant as $1, in a session of its own (whose
 * search_path does not name the gateway's schema); the caller clears the result. */
static PGresult *sql_run(const char *stmt, const char *merchant) {
    PGconn *c = PQconnectdb(test_dsn());
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    const char *params[1] = {merchant};
    PGresult *r = PQexecParams(c, stmt, 1, NULL, params, NULL, NULL, 0);
    PQfinish(c);
    return r;
}

/* One value of SQL run on the test's database with the merchant as $1 ("" when no row). */
static char *sql_value(const char *stmt, const char *merchant) {
    static char out[256];
    PGresult *r = sql_run(stmt, merchant);
    cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
              "%s: %s", stmt, PQresultErrorMessage(r));
    snprintf(out, sizeof out, "%s",
             PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return out;
}

/* The SQLSTATE of SQL run as sql_value does ("" when it succeeds). */
static char *sql_state(const char *stmt, const char *merchant) {
    static char out[8];
    PGresult *r = sql_run(stmt, merchant);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    snprintf(out, sizeof out, "%s", state ? state : "");
    PQclear(r);
    return out;
}

static status_t refund_line(const char *m, const char *line_id, int64_t quantity) {
    Loyalty__V1__GatewayRefundLine l = LOYALTY__V1__GATEWAY_REFUND_LINE__INIT;
    l.line_id = (char *)line_id;
    l.quantity = quantity;
    Loyalty__V1__GatewayRefundLine *lines[] = {&l};
    Loyalty__V1__GatewayRefundLines rl = LOYALTY__V1__GATEWAY_REFUND_LINES__INIT;
    rl.lines = lines;
    rl.n_lines = 1;
    Loyalty__V1__GatewayRefundOrderRequest rr = LOYALTY__V1__GATEWAY_REFUND_ORDER_REQUEST__INIT;
    rr.merchant_id = (char *)m;
    rr.idempotency_key = (char *)harness_key();
    rr.order_id = "order-1";
    rr.what_case = LOYALTY__V1__GATEWAY_REFUND_ORDER_REQUEST__WHAT_LINES;
    rr.lines = &rl;
    Loyalty__V1__GatewayRefundOrderResponse *resp = NULL;
    return gw("RefundOrder", &rr, &resp);
}

Test(gateway_checkout, order_lines_in_the_order_row_and_in_rows_of_old_orders) {
    /* Goal: a checkout's order keeps its lines in its own row, and a refund by lines counts them
     * there; an order written before that (its lines order_lines rows, migration 058) refunds
     * by lines exactly the same, counted in its rows; a line is never refunded beyond its
     * quantity either way. */
    stack_start();
    for (int old = 0; old < 2; old++) {
        shop_t s;
        open_shop(&s, old ? "olo" : "oln");
        const char *b = new_buyer(&s, 5000, 3000);
        Loyalty__V1__GatewayCheckout *co = NULL;
        assert_ok(begin_checkout(s.m, NULL, "order-1", b, shirt_cart(), pay(0, 0), &co));
        assert_ok(complete_checkout(s.m, co->checkout_id, "psp-1", NULL));
        cr_assert_str_eq(sql_value("SELECT count(*) FROM gateway.order_lines "
                                   "WHERE merchant_id = $1",
                                   s.m),
                         "0", "no order_lines row is written");
        if (old) {
            sql_value("WITH moved AS (INSERT INTO gateway.order_lines (merchant_id, order_id, "
                      " line_id, idx, kind, quantity, final_amount_cents) "
                      "SELECT o.merchant_id, o.order_id, l.line_id, l.ord, l.kind, l.quantity, "
                      " l.final_amount_cents FROM gateway.orders o CROSS JOIN LATERAL "
                      " unnest(o.lines) WITH ORDINALITY AS l(line_id, kind, quantity, "
                      "  final_amount_cents, refunded_quantity, refunded_cents, ord) "
                      "WHERE o.merchant_id = $1 RETURNING order_id) "
                      "UPDATE gateway.orders SET lines = NULL WHERE merchant_id = $1 "
                      " AND order_id IN (SELECT order_id FROM moved)",
                      s.m);
        }
        assert_ok(refund_line(s.m, "A", 1));
        const char *counted =
            old ? sql_value("SELECT refunded_quantity FROM gateway.order_lines "
                            "WHERE merchant_id = $1 AND line_id = 'A'",
                            s.m)
                : sql_value("SELECT l.refunded_quantity FROM gateway.orders o, unnest(o.lines) l "
                            "WHERE o.merchant_id = $1 AND l.line_id = 'A'",
                            s.m);
        cr_assert_str_eq(counted, "1", "old %d: the line's refund is counted", old);
        assert_status(refund_line(s.m, "A", 2), STATUS_FAILED_PRECONDITION, "REFUND_EXCEEDS_LINE");
        assert_ok(refund_line(s.m, "A", 1));
        assert_ok(refund_line(s.m, "B", 1));
        if (!old) { /* the database refuses a line refunded beyond its quantity, or below 0 */
            const char *lines_set =
                "UPDATE gateway.orders SET lines = ARRAY(SELECT ROW(l.line_id, l.kind, l.quantity, "
                " l.final_amount_cents, %s, l.refunded_cents)::gateway.order_line "
                " FROM unnest(lines) l) WHERE merchant_id = $1";
            char sql[512];
            snprintf(sql, sizeof sql, lines_set, "l.quantity + 1");
            cr_assert_str_eq(sql_state(sql, s.m), "23514", "beyond the quantity: check_violation");
            snprintf(sql, sizeof sql, lines_set, "-1");
            cr_assert_str_eq(sql_state(sql, s.m), "23514", "below 0: check_violation");
            snprintf(sql, sizeof sql, lines_set, "l.quantity");
            cr_assert_str_eq(sql_state(sql, s.m), "", "within it: accepted");
        }
        cr_assert_eq(get_checkout(s.m, co->checkout_id)->refundable_cents, 0, "old %d", old);
        cr_assert_eq(points_balance(s.m, b)->available, 5000, "old %d", old);
        assert_ledgers_clean(s.m);
    }
}
