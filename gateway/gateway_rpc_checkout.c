/* gateway_rpc_checkout.c -- the checkout saga (gateway.proto CHECKOUT): cart validation, the Begin,
 * Complete and compensation flows, the orders row written on completion, and the checkout RPCs.
 */
#include "gateway_rpc.h"

#include "gateway_calls.h"
#include "gateway_store.h"
#include "jsonw.h"
#include "log.h"
#include "loyalty/v1/member.pb-c.h"
#include "loyalty/v1/points.pb-c.h"
#include "loyalty/v1/promo.pb-c.h"
#include "loyalty/v1/referral.pb-c.h"
#include "loyalty/v1/wallet.pb-c.h"
#include "outbox.h"
#include "pb.h"
#include "validate.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#define GOODS LOYALTY__V1__GATEWAY_LINE_KIND__GATEWAY_LINE_KIND_GOODS
#define MEMBERSHIP LOYALTY__V1__GATEWAY_LINE_KIND__GATEWAY_LINE_KIND_MEMBERSHIP
#define TOPUP LOYALTY__V1__GATEWAY_LINE_KIND__GATEWAY_LINE_KIND_WALLET_TOPUP

/* ---- validation ---- */

static status_t check_line(const Loyalty__V1__GatewayCartLine *l, size_t i, int *memberships,
                           int *topups) {
    (void)i;
    status_t st = gw_check_id("cart.lines.line_id", l->line_id, GW_LINE_ID_MAX);
    if (status_is_ok(&st)) {
        st = gw_check_id("cart.lines.sku", l->sku, GW_SKU_MAX);
    }
    if (status_is_ok(&st) && l->category[0]) {
        st = gw_check_id("cart.lines.category", l->category, GW_SKU_MAX);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    if (l->quantity < 1 || l->quantity > GW_QUANTITY_MAX) {
        return status_invalid_field("cart.lines.quantity", "line %zu: 1..%d", i, GW_QUANTITY_MAX);
    }
    if (l->unit_price_cents < 0 || l->unit_price_cents > GW_UNIT_PRICE_MAX) {
        return status_invalid_field("cart.lines.unit_price_cents", "line %zu: 0..%lld", i,
                                    (long long)GW_UNIT_PRICE_MAX);
    }
    switch ((int)l->kind) {
    case LOYALTY__V1__GATEWAY_LINE_KIND__GATEWAY_LINE_KIND_UNSPECIFIED:
    case GOODS:
        return status_ok();
    case MEMBERSHIP:
        (*memberships)++;
        if (l->quantity > GW_MEMBERSHIP_PERIODS_MAX) {
            return status_invalid_field("cart.lines.quantity",
                                        "line %zu: a membership is 1..%d periods", i,
                                        GW_MEMBERSHIP_PERIODS_MAX);
        }
        return gw_check_id("cart.lines.membership_plan_id", l->membership_plan_id, ID_MAX);
    case TOPUP:
        (*topups)++;
        if (l->quantity != 1) {
            return status_invalid_field("cart.lines.quantity",
                                        "line %zu: a wallet top-up has quantity 1", i);
        }
        if (l->unit_price_cents < 1) {
            return status_invalid_field("cart.lines.unit_price_cents",
                                        "line %zu: a wallet top-up credits at least 1", i);
        }
        return l->top_up_plan_id[0]
                   ? gw_check_id("cart.lines.top_up_plan_id", l->top_up_plan_id, ID_MAX)
                   : status_ok();
    default:
        return status_invalid_field("cart.lines.kind", "line %zu: unknown kind", i);
    }
}

static status_t check_cart(const Loyalty__V1__GatewayCart *cart) {
    if (cart == NULL || cart->n_lines == 0) {
        return status_invalid_field("cart.lines", "at least one line is required");
    }
    if (cart->n_lines > GW_LINES_MAX) {
        return status_invalid_field("cart.lines", "at most %d lines", GW_LINES_MAX);
    }
    int memberships = 0, topups = 0;
    for (size_t i = 0; i < cart->n_lines; i++) {
        status_t st = check_line(cart->lines[i], i, &memberships, &topups);
        if (!status_is_ok(&st)) {
            return st;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(cart->lines[j]->line_id, cart->lines[i]->line_id) == 0) {
                return status_invalid_field("cart.lines.line_id", "line id %s appears twice",
                                            cart->lines[i]->line_id);
            }
        }
    }
    if (memberships > GW_PRODUCT_LINES_MAX || topups > GW_PRODUCT_LINES_MAX) {
        return status_invalid_field("cart.lines.kind", "at most %d membership and %d top-up lines",
                                    GW_PRODUCT_LINES_MAX, GW_PRODUCT_LINES_MAX);
    }
    if (cart->shipping_cents < 0 || cart->shipping_cents > GW_SHIPPING_MAX) {
        return status_invalid_field("cart.shipping_cents", "0..%lld", (long long)GW_SHIPPING_MAX);
    }
    if (cart->store_id[0]) {
        status_t st = gw_check_id("cart.store_id", cart->store_id, GW_STORE_ID_MAX);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    if (cart->n_codes > GW_CODES_MAX) {
        return status_invalid_field("cart.codes", "at most %d codes", GW_CODES_MAX);
    }
    for (size_t i = 0; i < cart->n_codes; i++) {
        status_t st = validate_text("cart.codes", cart->codes[i], 1, 64);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    if (cart->n_coupon_ids > GW_COUPONS_MAX ||
        cart->n_coupon_codes > GW_COUPONS_MAX - cart->n_coupon_ids) {
        return status_invalid_field(cart->n_coupon_codes ? "cart.coupon_codes" : "cart.coupon_ids",
                                    "at most %d coupons (ids and codes together)", GW_COUPONS_MAX);
    }
    for (size_t i = 0; i < cart->n_coupon_codes; i++) {
        status_t st = validate_text("cart.coupon_codes", cart->coupon_codes[i], 1, 64);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    for (size_t i = 0; i < cart->n_coupon_ids; i++) {
        status_t st = gw_check_id("cart.coupon_ids", cart->coupon_ids[i], ID_MAX + 16);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    return status_ok();
}

static status_t check_payment(const Loyalty__V1__GatewayPaymentChoice *p) {
    if (p == NULL) {
        return status_ok();
    }
    if (p->redeem_points < 0 || p->redeem_points > GW_AMOUNT_MAX) {
        return status_invalid_field("payment.redeem_points", "0..%lld", (long long)GW_AMOUNT_MAX);
    }
    if (p->wallet_cents < 0 || p->wallet_cents > GW_AMOUNT_MAX) {
        return status_invalid_field("payment.wallet_cents", "0..%lld", (long long)GW_AMOUNT_MAX);
    }
    return status_ok();
}

static status_t check_checkout(const Loyalty__V1__GatewayCheckoutRequest *r, bool with_ref) {
    status_t st = gw_check_key(r->idempotency_key);
    if (status_is_ok(&st)) {
        st = gw_check_id("order_id", r->order_id, GW_ORDER_ID_MAX);
    }
    if (status_is_ok(&st)) {
        st = gw_check_id("member_id", r->member_id, ID_MAX);
    }
    if (status_is_ok(&st)) {
        st = check_cart(r->cart);
    }
    if (status_is_ok(&st)) {
        st = check_payment(r->payment);
    }
    if (status_is_ok(&st) && with_ref) {
        st = gw_check_payment_ref("payment_ref", r->payment_ref, false);
    }
    return st;
}

/* ---- pricing helpers ---- */

/* Final amount of the quote's line `line_id` (0 when absent). */
static int64_t line_final(const Loyalty__V1__PromoQuoteResult *q, const char *line_id) {
    for (size_t i = 0; q != NULL && i < q->n_lines; i++) {
        if (strcmp(q->lines[i]->line_id, line_id) == 0) {
            return q->lines[i]->final_amount_cents;
        }
    }
    return 0;
}

static int64_t product_lines_cents(const Loyalty__V1__GatewayCart *cart,
                                   const Loyalty__V1__PromoQuoteResult *q, int kind) {
    int64_t sum = 0;
    for (size_t i = 0; i < cart->n_lines; i++) {
        if ((int)cart->lines[i]->kind == kind ||
            (kind < 0 &&
             ((int)cart->lines[i]->kind == MEMBERSHIP || (int)cart->lines[i]->kind == TOPUP))) {
            sum += line_final(q, cart->lines[i]->line_id);
        }
    }
    return sum;
}

static void fill_from_quote(Loyalty__V1__GatewayCheckoutBreakdown *b,
                            Loyalty__V1__PromoQuoteResult *q,
                            const Loyalty__V1__MemberTierStatus *tier) {
    b->quote = q;
    if (tier != NULL) {
        b->tier = tier->tier;
        b->tier_discount_bps = tier->discount_bps;
    }
    b->subtotal_cents = q->subtotal_cents;
    b->tier_discount_cents = q->tier_discount_cents;
    b->promotion_discount_cents = q->promotion_discount_cents;
    b->coupon_discount_cents = q->coupon_discount_cents;
    b->shipping_cents = q->shipping_cents;
    b->shipping_discount_cents = q->shipping_discount_cents;
    b->total_cents = q->total_cents;
}

/* Fills the payment part of the breakdown once points and wallet are known. */
static void fill_payment(Loyalty__V1__GatewayCheckoutBreakdown *b,
                         const Loyalty__V1__GatewayCart *cart, int64_t points, int64_t points_cash,
                         int64_t wallet) {
    b->points_used = points;
    b->points_cash_cents = points_cash;
    b->wallet_cents = wallet;
    b->amount_due_cents = b->total_cents - points_cash - wallet;
    b->earn_base_cents =
        gw_earn_base(wallet, b->amount_due_cents, product_lines_cents(cart, b->quote, TOPUP));
}

static Loyalty__V1__GatewayCheckout *checkout_ctx(gw_saga_t *x) {
    if (x->context->checkout == NULL) {
        x->context->checkout = pb_new(x->a, &loyalty__v1__gateway_checkout__descriptor);
    }
    Loyalty__V1__GatewayCheckout *co = x->context->checkout;
    if (co->breakdown == NULL) {
        co->breakdown = pb_new(x->a, &loyalty__v1__gateway_checkout_breakdown__descriptor);
    }
    if (co->breakdown->quote == NULL) {
        /* Not written with the context (gateway_store.c): the log has it. */
        Loyalty__V1__PromoReserveResponse *r = (void *)gw_logged_answer(x, &gw_step_promo_reserve);
        if (r != NULL && r->reservation != NULL) {
            co->breakdown->quote = r->reservation->quote;
        }
    }
    return co;
}

static const Loyalty__V1__GatewayPaymentChoice *
payment_of(const Loyalty__V1__GatewayCheckoutRequest *r) {
    static const Loyalty__V1__GatewayPaymentChoice none = LOYALTY__V1__GATEWAY_PAYMENT_CHOICE__INIT;
    return r->payment ? r->payment : &none;
}

/* ---- Begin ---- */

/* The wallet's part once the points' cash value is known: the balance first with use_max,
 * then the hold. */
static status_t begin_wallet(gw_saga_t *x, const Loyalty__V1__GatewayCheckoutRequest *req,
                             Loyalty__V1__GatewayCheckout *co, int64_t due, int64_t *wallet) {
    const Loyalty__V1__GatewayPaymentChoice *pay = payment_of(req);
    *wallet = 0;
    if (!(pay->wallet_cents > 0 || pay->use_max_wallet)) {
        return status_ok();
    }
    int64_t available = 0;
    if (pay->use_max_wallet) {
        gw_call_t read;
        status_t st = gw_read(x, gw_call_wallet_balance(x, &read, req->member_id));
        if (!status_is_ok(&st)) {
            return st;
        }
        const Loyalty__V1__WalletBalance *bal =
            ((const Loyalty__V1__WalletGetBalanceResponse *)gw_answer(&read))->balance;
        available = bal ? bal->available_cents : 0;
    }
    *wallet = gw_choose_wallet(pay->wallet_cents, pay->use_max_wallet, available, due);
    if (*wallet == 0) {
        return status_ok();
    }
    gw_call_t hold;
    status_t st = gw_step(x, gw_call_wallet_hold(x, &hold, req->member_id, req->order_id, *wallet));
    if (!status_is_ok(&st)) {
        return st;
    }
    const Loyalty__V1__WalletHold *h =
        ((const Loyalty__V1__WalletHoldResponse *)gw_answer(&hold))->hold;
    co->wallet_hold_id = h->id;
    if (h->amount_cents != *wallet) {
        x->failed_step = true; /* a refusal: compensate */
        return status_make(STATUS_INTERNAL, REASON_WALLET_HOLD_INCONSISTENT,
                           "wallet-svc held another amount than asked");
    }
    return status_ok();
}

/* Points, then wallet: points-svc chooses the points under its lock and values them (its rule
 * alone), and the wallet pays what they leave due. Two calls in a row, as the quote and the
 * parallel holds were, and one call fewer. */
static status_t begin_payment_held(gw_saga_t *x, const Loyalty__V1__GatewayCheckoutRequest *req,
                                   Loyalty__V1__GatewayCheckout *co) {
    const Loyalty__V1__GatewayPaymentChoice *pay = payment_of(req);
    Loyalty__V1__GatewayCheckoutBreakdown *b = co->breakdown;
    bool want_points = (pay->redeem_points > 0 || pay->use_max_points) && b->total_cents > 0;
    int64_t points = 0, cash = 0;
    if (want_points) {
        gw_call_t c;
        Loyalty__V1__PointsHoldRequest *h =
            gw_call_points_hold_order(x, &c, req->member_id, req->order_id, b->total_cents);
        h->choose_points = true;
        h->use_max_points = pay->use_max_points;
        h->points = pay->use_max_points ? 0 : pay->redeem_points;
        status_t st = gw_step(x, &c);
        if (!status_is_ok(&st)) {
            return st;
        }
        const Loyalty__V1__PointsHoldResponse *r = (const void *)gw_answer(&c);
        b->points_note = r->note;
        if (r->hold != NULL) {
            co->points_hold_id = r->hold->id;
            points = r->hold->points;
            cash = r->hold->cash_value_cents;
        }
        if (cash > b->total_cents) {
            x->failed_step = true;
            return status_make(STATUS_INTERNAL, REASON_POINTS_HOLD_INCONSISTENT,
                               "points-svc valued the points above the order's total");
        }
    }
    int64_t wallet = 0;
    status_t st = begin_wallet(x, req, co, b->total_cents - cash, &wallet);
    if (!status_is_ok(&st)) {
        return st;
    }
    fill_payment(b, req->cart, points, cash, wallet);
    return status_ok();
}

/* What the payment choice asks of an order of total_cents. */
static gw_payment_ask_t payment_ask(const Loyalty__V1__GatewayPaymentChoice *pay,
                                    int64_t total_cents) {
    return (gw_payment_ask_t){.total_cents = total_cents,
                              .redeem_points = pay->redeem_points,
                              .use_max_points = pay->use_max_points,
                              .wallet_cents = pay->wallet_cents,
                              .use_max_wallet = pay->use_max_wallet};
}

/* The reads the payment depends on, in parallel: points-svc's choice and cash value of the
 * points (its QuoteRedeem, as its Hold computes them), and the wallet's balance for use_max. */
static status_t payment_reads(gw_saga_t *x, const Loyalty__V1__GatewayCheckoutRequest *req,
                              const gw_payment_ask_t *ask, gw_payment_quote_t *quote,
                              char **points_note) {
    gw_group_t g = {.n = 0};
    gw_call_t *points = NULL, *wallet = NULL;
    if (gw_payment_wants_points(ask)) {
        points =
            gw_call_points_quote(x, gw_group_add(&g), req->member_id, ask->total_cents,
                                 ask->use_max_points ? 0 : ask->redeem_points, ask->use_max_points);
    }
    if (gw_payment_wants_wallet(ask) && ask->use_max_wallet) {
        wallet = gw_call_wallet_balance(x, gw_group_add(&g), req->member_id);
    }
    status_t st = gw_group_read(x, &g);
    if (!status_is_ok(&st)) {
        return st;
    }
    *quote = (gw_payment_quote_t){0};
    const Loyalty__V1__PointsQuoteRedeemResponse *qr = (const void *)gw_answer(points);
    if (qr != NULL) {
        *points_note = qr->note;
        quote->points = qr->chosen_points;
        quote->points_cash_cents = qr->chosen_cash_cents;
    }
    const Loyalty__V1__WalletGetBalanceResponse *wr = (const void *)gw_answer(wallet);
    if (wr != NULL && wr->balance != NULL) {
        quote->wallet_available_cents = wr->balance->available_cents;
    }
    return status_ok();
}

/* Both holds of the chosen payment in parallel. Every hold taken is recorded, also when the
 * other was refused (compensation releases it); a hold that is not what was chosen refuses the
 * checkout: REDEMPTION_RATE_CHANGED when points-svc values the points differently now. */
static status_t payment_holds(gw_saga_t *x, const Loyalty__V1__GatewayCheckoutRequest *req,
                              Loyalty__V1__GatewayCheckout *co, int64_t total_cents,
                              const gw_payment_split_t *pay) {
    gw_group_t g = {.n = 0};
    gw_call_t *points = NULL, *wallet = NULL;
    if (pay->points > 0) {
        points = gw_group_add(&g);
        Loyalty__V1__PointsHoldRequest *h =
            gw_call_points_hold_order(x, points, req->member_id, req->order_id, total_cents);
        h->points = pay->points;
    }
    if (pay->wallet_cents > 0) {
        wallet = gw_call_wallet_hold(x, gw_group_add(&g), req->member_id, req->order_id,
                                     pay->wallet_cents);
    }
    status_t st = gw_group_run(x, &g);
    status_t mismatch = status_ok();
    const Loyalty__V1__PointsHoldResponse *ph = (const void *)gw_answer(points);
    if (ph != NULL) {
        co->points_hold_id = ph->hold->id;
        if (ph->hold->points != pay->points ||
            ph->hold->cash_value_cents != pay->points_cash_cents) {
            mismatch =
                status_make(STATUS_FAILED_PRECONDITION, REASON_REDEMPTION_RATE_CHANGED,
                            "points-svc valued %lld points at %lld, not %lld: retry",
                            (long long)ph->hold->points, (long long)ph->hold->cash_value_cents,
                            (long long)pay->points_cash_cents);
        }
    }
    const Loyalty__V1__WalletHoldResponse *wh = (const void *)gw_answer(wallet);
    if (wh != NULL) {
        co->wallet_hold_id = wh->hold->id;
        if (wh->hold->amount_cents != pay->wallet_cents) {
            mismatch = status_make(STATUS_INTERNAL, REASON_WALLET_HOLD_INCONSISTENT,
                                   "wallet-svc held another amount than asked");
        }
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    if (!status_is_ok(&mismatch)) {
        x->failed_step = true; /* a refusal: compensate */
        return mismatch;
    }
    return status_ok();
}

/* Points and wallet (sagas begun before points_hold_chooses): the reads they depend on, the
 * choice (gw_choose_payment), then both holds in parallel. The points' choice and cash value
 * come with the quote, so the wallet amount does not wait for the points hold. */
static status_t begin_payment(gw_saga_t *x, const Loyalty__V1__GatewayCheckoutRequest *req,
                              Loyalty__V1__GatewayCheckout *co) {
    Loyalty__V1__GatewayCheckoutBreakdown *b = co->breakdown;
    gw_payment_ask_t ask = payment_ask(payment_of(req), b->total_cents);
    gw_payment_quote_t quote;
    status_t st = payment_reads(x, req, &ask, &quote, &b->points_note);
    if (!status_is_ok(&st)) {
        return st;
    }
    gw_payment_split_t pay = gw_choose_payment(&ask, &quote);
    st = payment_holds(x, req, co, b->total_cents, &pay);
    if (!status_is_ok(&st)) {
        return st;
    }
    fill_payment(b, req->cart, pay.points, pay.points_cash_cents, pay.wallet_cents);
    return status_ok();
}

/* MEMBERSHIP and WALLET_TOPUP lines are applied after the payment: refuse the checkout now,
 * before anything is reserved, when their plan could not be applied (unknown, inactive, or a
 * top-up plan whose price is not the line's). A plan changed between Begin and Complete still
 * stops the Complete (NEEDS_ATTENTION; RetrySaga once it is fixed). */
static status_t check_products(gw_saga_t *x, const Loyalty__V1__GatewayCheckoutRequest *req) {
    _Static_assert(1 + GW_PRODUCT_LINES_MAX <= GW_GROUP_MAX, "the product reads are one batch");
    gw_group_t g = {.n = 0, .max = 1 + GW_PRODUCT_LINES_MAX};
    gw_call_t *plans_read = NULL;
    for (size_t i = 0; i < req->cart->n_lines; i++) {
        const Loyalty__V1__GatewayCartLine *l = req->cart->lines[i];
        if ((int)l->kind == MEMBERSHIP && plans_read == NULL) {
            plans_read = gw_call_membership_plans(x, gw_group_add(&g));
        } else if ((int)l->kind == TOPUP && l->top_up_plan_id[0] && gw_group_room(&g) > 0) {
            gw_call_t *c = gw_call_wallet_top_up_plan(x, gw_group_add(&g), i, l->top_up_plan_id);
            c->tag = (int32_t)i + 1; /* the cart line the plan is for */
        }
    }
    status_t st = gw_group_read(x, &g);
    if (!status_is_ok(&st)) {
        return st;
    }
    const Loyalty__V1__MemberListPlansResponse *plans = (const void *)gw_answer(plans_read);
    for (size_t i = 0; plans != NULL && i < req->cart->n_lines; i++) {
        const Loyalty__V1__GatewayCartLine *l = req->cart->lines[i];
        if ((int)l->kind != MEMBERSHIP) {
            continue;
        }
        const Loyalty__V1__MemberPlan *plan = NULL;
        for (size_t k = 0; k < plans->n_plans; k++) {
            if (strcmp(plans->plans[k]->id, l->membership_plan_id) == 0) {
                plan = plans->plans[k];
            }
        }
        if (plan == NULL) {
            return status_make(STATUS_NOT_FOUND, REASON_PLAN_NOT_FOUND,
                               "line %s: no membership plan %s", l->line_id, l->membership_plan_id);
        }
        if (!plan->active) {
            return status_make(STATUS_FAILED_PRECONDITION, REASON_PLAN_INACTIVE,
                               "line %s: membership plan %s is inactive", l->line_id, plan->id);
        }
    }
    for (int k = 0; k < g.n; k++) {
        const gw_call_t *c = &g.calls[k];
        if (c->tag <= 0) {
            continue; /* the membership plans */
        }
        const Loyalty__V1__GatewayCartLine *l = req->cart->lines[c->tag - 1];
        const Loyalty__V1__WalletTopUpPlan *plan =
            ((const Loyalty__V1__WalletGetTopUpPlanResponse *)gw_answer(c))->plan;
        int64_t now = x->ctx->now_s;
        if (plan == NULL || !plan->enabled || now < plan->active_from_at ||
            (plan->active_until_at != 0 && now >= plan->active_until_at)) {
            return status_make(STATUS_FAILED_PRECONDITION, REASON_PLAN_NOT_ACTIVE,
                               "line %s: top-up plan %s is not active", l->line_id,
                               l->top_up_plan_id);
        }
        if (plan->pay_cents != l->unit_price_cents) {
            return status_make(STATUS_FAILED_PRECONDITION, REASON_PLAN_AMOUNT_MISMATCH,
                               "line %s: top-up plan %s is sold at %lld", l->line_id, plan->id,
                               (long long)plan->pay_cents);
        }
    }
    return status_ok();
}

static status_t checkout_begin(gw_saga_t *x) {
    const Loyalty__V1__GatewayCheckoutRequest *req = (void *)gw_saga_request(x);
    Loyalty__V1__GatewayCheckout *co = checkout_ctx(x);
    Loyalty__V1__GatewayCheckoutBreakdown *b = co->breakdown;
    co->checkout_id = x->id;
    co->order_id = req->order_id;
    co->member_id = req->member_id;
    co->promo_checkout_id = x->id;
    Loyalty__V1__MemberTierStatus *tier = NULL;
    status_t st = gw_read_member_tier(x, req->member_id, &tier);
    if (status_is_ok(&st)) {
        st = check_products(x, req);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    gw_call_t c;
    st = gw_step(
        x, gw_call_promo_reserve(x, &c, gw_promo_cart(x->a, req->member_id, req->cart, tier)));
    if (!status_is_ok(&st)) {
        return st;
    }
    const Loyalty__V1__PromoReservation *res =
        ((const Loyalty__V1__PromoReserveResponse *)gw_answer(&c))->reservation;
    if (res == NULL || res->quote == NULL) {
        return status_make(STATUS_INTERNAL, REASON_PROMO_RESERVE_INCONSISTENT,
                           "promo-svc reserved without a quote");
    }
    fill_from_quote(b, res->quote, tier);
    st = x->context->points_hold_chooses ? begin_payment_held(x, req, co)
                                         : begin_payment(x, req, co);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (x->auto_complete && !x->resolve) {
        co->payment_ref = req->payment_ref;
        if (b->amount_due_cents > 0 && req->payment_ref[0] == '\0') {
            return status_make(STATUS_FAILED_PRECONDITION, REASON_PAYMENT_REF_REQUIRED,
                               "%lld is still due: Checkout needs the payment_ref of its payment",
                               (long long)b->amount_due_cents);
        }
        co->result = pb_new(x->a, &loyalty__v1__gateway_checkout_result__descriptor);
    }
    if (!x->resolve) {
        co->reserved_until_at = x->ctx->now_s + x->svc->checkout_ttl_s;
    }
    return status_ok();
}

/* ---- Complete ---- */

static Loyalty__V1__MemberTierStatus *logged_tier(gw_saga_t *x) {
    Loyalty__V1__MemberGetTierResponse *r = (void *)gw_logged_answer(x, &gw_step_member_tier);
    return r ? r->status : NULL;
}

/* The calls of Complete's first group, as its builder added them (NULL when not made). */
typedef struct settle_calls {
    gw_call_t *capture, *confirm, *settle, *commit, *earn, *compute;
} settle_calls_t;

/* The first parallel group: capture, commit and earn (one points call when points_batched),
 * confirm, compute referral rewards. */
static void complete_group1(gw_saga_t *x, const Loyalty__V1__GatewayCheckoutRequest *req,
                            Loyalty__V1__GatewayCheckout *co, gw_group_t *g, settle_calls_t *c) {
    const Loyalty__V1__GatewayCheckoutBreakdown *b = co->breakdown;
    *c = (settle_calls_t){0};
    if (co->wallet_hold_id[0]) {
        c->capture =
            gw_call_wallet_capture(x, gw_group_add(g), co->wallet_hold_id, b->wallet_cents);
    }
    c->confirm = gw_call_promo_confirm(x, gw_group_add(g), req->order_id);
    Loyalty__V1__PointsEarnRequest *e =
        gw_points_order_earn(x, req->member_id, req->order_id, b->earn_base_cents, logged_tier(x));
    if (x->context->points_batched) {
        /* the hold's commit and the buyer's earn: one points call, one transaction */
        Loyalty__V1__PointsEarnBatchRequest *r = gw_points_earn_batch(x, 1);
        r->commit_hold_id = co->points_hold_id;
        r->earns[r->n_earns++] = e;
        c->settle = gw_call_points_earn_batch(x, gw_group_add(g), &gw_step_points_settle, r);
    } else {
        if (co->points_hold_id[0]) {
            c->commit = gw_call_points_commit(x, gw_group_add(g), co->points_hold_id,
                                              x->context->points_omit_expiring);
        }
        c->earn = gw_call_points_earn(x, gw_group_add(g), &gw_step_points_earn, NULL, e);
    }
    c->compute = gw_call_referral_compute(x, gw_group_add(g),
                                          LOYALTY__V1__REFERRAL_EVENT__REFERRAL_EVENT_PURCHASE,
                                          req->member_id, b->earn_base_cents, req->order_id);
}

void gw_referral_grants(gw_saga_t *x, const Loyalty__V1__ReferralComputeRewardsResponse *cr,
                        Loyalty__V1__GatewayReferralGrant ***out, size_t *n_out, gw_group_t *g,
                        int keep_free, int64_t *held_until) {
    Loyalty__V1__PointsEarnBatchRequest *batch =
        x->context->points_batched ? gw_points_earn_batch(x, cr->n_rewards) : NULL;
    *out = arena_alloc(x->a, (cr->n_rewards + 1) * sizeof **out);
    *n_out = 0;
    for (size_t i = 0; i < cr->n_rewards; i++) {
        const Loyalty__V1__ReferralReward *rw = cr->rewards[i];
        Loyalty__V1__GatewayReferralGrant *gr =
            pb_new(x->a, &loyalty__v1__gateway_referral_grant__descriptor);
        gr->reward_id = rw->id;
        gr->beneficiary_member_id = rw->beneficiary_member_id;
        gr->level = rw->level;
        gr->points = rw->points;
        gr->granted = rw->grant_now;
        (*out)[(*n_out)++] = gr;
        if (!rw->grant_now) {
            if (held_until && rw->held_until_at > 0 &&
                (*held_until == 0 || rw->held_until_at < *held_until)) {
                *held_until = rw->held_until_at;
            }
            continue;
        }
        if (rw->points <= 0) {
            continue;
        }
        if (batch != NULL) {
            batch->earns[batch->n_earns++] = gw_points_grant_earn(x, rw);
        } else if (gw_group_room(g) > keep_free) {
            /* one call per grant: sagas begun before points_batched */
            gw_call_points_earn(x, gw_group_add(g), &gw_step_referral_grant, rw->id,
                                gw_points_grant_earn(x, rw));
        }
    }
    if (batch != NULL && batch->n_earns > 0 && gw_group_room(g) > keep_free) {
        gw_call_points_earn_batch(x, gw_group_add(g), &gw_step_referral_grants, batch);
    }
}

/* The calls that apply the cart's MEMBERSHIP and WALLET_TOPUP lines, each tagged with its line
 * (tag = index + 1). */
static void product_calls(gw_saga_t *x, const Loyalty__V1__GatewayCheckoutRequest *req,
                          gw_group_t *g) {
    for (size_t i = 0; i < req->cart->n_lines && gw_group_room(g) > 0; i++) {
        const Loyalty__V1__GatewayCartLine *l = req->cart->lines[i];
        gw_call_t *c = NULL;
        if ((int)l->kind == MEMBERSHIP) {
            c = gw_call_membership(x, gw_group_add(g), i, req->member_id, req->order_id,
                                   l->membership_plan_id, (int32_t)l->quantity);
        } else if ((int)l->kind == TOPUP) {
            c = gw_call_wallet_top_up(x, gw_group_add(g), &gw_step_top_up,
                                      arena_printf(x->a, "%zu", i), req->member_id,
                                      l->unit_price_cents, l->top_up_plan_id,
                                      arena_printf(x->a, "%s:t%zu", req->order_id, i));
        }
        if (c != NULL) {
            c->tag = (int32_t)i + 1;
        }
    }
}

static void fill_earn(Loyalty__V1__GatewayCheckoutResult *res,
                      const Loyalty__V1__PointsEarnResponse *r) {
    res->points_earned = r->points;
    res->growth_earned = r->growth_delta;
    res->earn = r->breakdown;
}

/* The buyer's earn of Complete's first group, whichever way the points were settled. */
static const Loyalty__V1__PointsEarnResponse *settled_earn(const settle_calls_t *c) {
    const Loyalty__V1__PointsEarnBatchResponse *settle = (const void *)gw_answer(c->settle);
    if (settle != NULL) {
        return settle->n_earns == 1 ? settle->earns[0] : NULL;
    }
    return (const void *)gw_answer(c->earn);
}

static void fill_group1(Loyalty__V1__GatewayCheckoutResult *res, const settle_calls_t *c) {
    const Loyalty__V1__WalletCaptureHoldResponse *capture = (const void *)gw_answer(c->capture);
    if (capture != NULL) {
        res->wallet_captured_cents = capture->hold ? capture->hold->captured_cents : 0;
    }
    const Loyalty__V1__PointsCommitHoldResponse *commit = (const void *)gw_answer(c->commit);
    if (commit != NULL) {
        res->points_spent = commit->hold ? commit->hold->points : 0;
    }
    const Loyalty__V1__PointsEarnBatchResponse *settle = (const void *)gw_answer(c->settle);
    if (settle != NULL) {
        res->points_spent = settle->hold ? settle->hold->points : 0;
    }
    const Loyalty__V1__PointsEarnResponse *earn = settled_earn(c);
    if (earn != NULL) {
        fill_earn(res, earn);
    }
}

/* What the second group's RecordOrder and product calls answered. */
static void fill_group2(gw_saga_t *x, const Loyalty__V1__GatewayCheckoutRequest *req,
                        Loyalty__V1__GatewayCheckoutResult *res, const gw_call_t *record_order,
                        const gw_group_t *g) {
    const Loyalty__V1__MemberRecordOrderResponse *ro = (const void *)gw_answer(record_order);
    if (ro != NULL) {
        res->old_tier = ro->old_tier;
        res->new_tier = ro->new_tier;
        res->tier_change_reason = ro->reason;
    }
    res->products = arena_alloc(x->a, (size_t)(g->n + 1) * sizeof *res->products);
    res->n_products = 0;
    for (int i = 0; i < g->n; i++) {
        const gw_call_t *c = &g->calls[i];
        const ProtobufCMessage *answer = gw_answer(c);
        if (c->tag <= 0 || answer == NULL) {
            continue; /* not a product call, or not applied */
        }
        size_t line = (size_t)(c->tag - 1);
        assert(line < req->cart->n_lines);
        Loyalty__V1__GatewayProductApplied *p =
            pb_new(x->a, &loyalty__v1__gateway_product_applied__descriptor);
        p->line_id = req->cart->lines[line]->line_id;
        p->kind = req->cart->lines[line]->kind;
        if ((int)p->kind == MEMBERSHIP) {
            p->card = ((const Loyalty__V1__MemberPurchaseResponse *)answer)->card;
        } else {
            p->top_up = ((const Loyalty__V1__WalletTopUpResponse *)answer)->top_up;
        }
        res->products[res->n_products++] = p;
    }
}

static status_t checkout_complete(gw_saga_t *x) {
    const Loyalty__V1__GatewayCheckoutRequest *req = (void *)gw_saga_request(x);
    Loyalty__V1__GatewayCheckout *co = checkout_ctx(x);
    if (co->result == NULL) {
        co->result = pb_new(x->a, &loyalty__v1__gateway_checkout_result__descriptor);
    }
    Loyalty__V1__GatewayCheckoutResult *res = co->result;
    gw_group_t g1 = {.n = 0};
    settle_calls_t c1;
    complete_group1(x, req, co, &g1, &c1);
    status_t st = gw_group_run(x, &g1);
    fill_group1(res, &c1);
    if (!status_is_ok(&st)) {
        return st;
    }
    const Loyalty__V1__PointsEarnResponse *earn = settled_earn(&c1);
    const Loyalty__V1__ReferralComputeRewardsResponse *cr = (const void *)gw_answer(c1.compute);
    assert(earn != NULL && cr != NULL); /* the group succeeded: every call answered */
    gw_group_t g2 = {.n = 0};
    gw_call_t *record_order = gw_call_member_record_order(
        x, gw_group_add(&g2), req->member_id, req->order_id, co->breakdown->earn_base_cents,
        earn->growth_delta, earn->balance);
    int64_t held_until = 0;
    /* Group 2: RecordOrder, the grants while more than the product calls' room is left, then
     * a call per MEMBERSHIP / WALLET_TOPUP line. */
    _Static_assert(1 + 2 * GW_PRODUCT_LINES_MAX < GW_GROUP_MAX, "room for a grant call too");
    gw_referral_grants(x, cr, &res->referral_rewards, &res->n_referral_rewards, &g2,
                       2 * GW_PRODUCT_LINES_MAX, &held_until);
    product_calls(x, req, &g2);
    /* The saga is durably COMPLETING (group 1's write): after a crash, recovery runs both
     * groups again with the same keys, so group 2 needs no record before its calls. */
    for (int i = 0; i < g2.n; i++) {
        g2.calls[i].rerun_safe = true;
    }
    st = gw_group_run(x, &g2);
    fill_group2(x, req, res, record_order, &g2);
    if (!status_is_ok(&st)) {
        return st;
    }
    /* Rewards held through the return window are released by the recovery job (on_final). */
    (void)held_until;
    return status_ok();
}

/* ---- compensation ---- */

/* Runs the compensation c of step `def` when that step was applied (logged DONE). */
static status_t undo(gw_saga_t *x, const gw_step_def_t *def, gw_call_t *c) {
    assert(def->undo != NULL && c->def == def->undo);
    gw_step_t *s = gw_logged_step(x, def);
    if (s == NULL || s->state != GW_DONE) {
        return status_ok(); /* never applied */
    }
    return gw_step(x, c);
}

/* Whether a Begin hold (step `def`) may have been taken although the saga knows no id for it.
 * The holds are not written ahead (undone_by_reference): a Begin interrupted between asking
 * for them and its next write leaves no record, so a saga not created by this request cannot
 * tell "never asked" from "asked". One with a STARTED record was asked without an answer. */
static bool hold_maybe_taken(gw_saga_t *x, const gw_step_def_t *def, bool wanted) {
    const gw_step_t *s = gw_logged_step(x, def);
    if (s != NULL) {
        return s->state == GW_STARTED;
    }
    return wanted && !x->created_here;
}

/* Undoes a hold the saga has no id for, by the order id it was taken with (c: the compensation
 * by reference). An order has at most one checkout that is not CANCELLED
 * (sagas_checkout_order), and this one is not yet, so a hold found by the reference is this
 * checkout's; none found means none was taken. */
static status_t undo_by_reference(gw_saga_t *x, gw_call_t *c) {
    c->tolerate_refusal = true; /* HOLD_NOT_FOUND: never taken */
    status_t st = gw_step(x, c);
    if (!status_is_ok(&st) || status_is_ok(&c->status) || c->status.code == STATUS_NOT_FOUND) {
        return st;
    }
    return c->status; /* any other refusal is not "never taken": an operator looks */
}

static status_t checkout_compensate(gw_saga_t *x) {
    const Loyalty__V1__GatewayCheckoutRequest *req = (void *)gw_saga_request(x);
    const Loyalty__V1__GatewayPaymentChoice *pay = payment_of(req);
    Loyalty__V1__GatewayCheckout *co = checkout_ctx(x);
    gw_call_t c;
    status_t st = status_ok();
    if (co->wallet_hold_id[0]) {
        st = undo(x, &gw_step_wallet_hold,
                  gw_call_wallet_void(x, &c, co->wallet_hold_id, NULL, NULL));
    } else if (hold_maybe_taken(x, &gw_step_wallet_hold,
                                pay->wallet_cents > 0 || pay->use_max_wallet)) {
        st = undo_by_reference(x, gw_call_wallet_void(x, &c, NULL, req->member_id, req->order_id));
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    bool omit = x->context->points_omit_expiring;
    if (co->points_hold_id[0]) {
        st = undo(x, &gw_step_points_hold,
                  gw_call_points_release(x, &c, co->points_hold_id, NULL, omit));
    } else if (hold_maybe_taken(x, &gw_step_points_hold,
                                pay->redeem_points > 0 || pay->use_max_points)) {
        st = undo_by_reference(x, gw_call_points_release(x, &c, NULL, req->order_id, omit));
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    return undo(x, &gw_step_promo_reserve, gw_call_promo_release(x, &c));
}

/* ---- completion: the order refunds count against, the event ---- */

static status_t checkout_on_final(gw_saga_t *x, db_t *db) {
    const Loyalty__V1__GatewayCheckoutRequest *req = (void *)gw_saga_request(x);
    Loyalty__V1__GatewayCheckout *co = checkout_ctx(x);
    const Loyalty__V1__GatewayCheckoutBreakdown *b = co->breakdown;
    gw_order_row_t o = {
        .order_id = req->order_id, .checkout_id = x->id, .member_id = req->member_id};
    o.f.total_cents = b->total_cents;
    o.f.points_cash_cents = b->points_cash_cents;
    o.f.wallet_cents = b->wallet_cents;
    o.f.external_cents = b->amount_due_cents;
    o.f.spend_cents = b->earn_base_cents;
    o.f.refundable_cents = b->total_cents - product_lines_cents(req->cart, b->quote, -1);
    o.lines = arena_alloc(x->a, (req->cart->n_lines + 1) * sizeof *o.lines);
    for (size_t i = 0; i < req->cart->n_lines; i++) {
        const Loyalty__V1__GatewayCartLine *l = req->cart->lines[i];
        o.lines[i] = (gw_order_line_row_t){.line_id = l->line_id,
                                           .kind = (int)l->kind,
                                           .quantity = l->quantity,
                                           .final_amount_cents = line_final(b->quote, l->line_id)};
    }
    o.n_lines = req->cart->n_lines;
    status_t st = gw_store_insert_order(db, x->merchant_id, &o);
    if (!status_is_ok(&st)) {
        return st;
    }
    int64_t held_until = 0;
    const Loyalty__V1__GatewayCheckoutResult *res = co->result;
    for (size_t i = 0; res != NULL && i < res->n_referral_rewards; i++) {
        if (!res->referral_rewards[i]->granted) {
            held_until = x->ctx->now_s; /* the job asks referral-svc what is due */
        }
    }
    if (held_until > 0) {
        Loyalty__V1__ReferralComputeRewardsResponse *cr =
            (void *)gw_logged_answer(x, &gw_step_referral_compute);
        for (size_t i = 0; cr != NULL && i < cr->n_rewards; i++) {
            if (!cr->rewards[i]->grant_now && cr->rewards[i]->held_until_at > held_until) {
                held_until = cr->rewards[i]->held_until_at;
            }
        }
        st = gw_store_referral_due(db, x->merchant_id, held_until);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    char json[512];
    jsonw_t w;
    jsonw_begin(&w, json, sizeof json);
    jsonw_str(&w, "checkout_id", x->id);
    jsonw_str(&w, "order_id", req->order_id);
    jsonw_str(&w, "member_id", req->member_id);
    jsonw_int(&w, "total_cents", b->total_cents);
    jsonw_int(&w, "points_used", b->points_used);
    jsonw_int(&w, "wallet_cents", b->wallet_cents);
    jsonw_int(&w, "external_cents", b->amount_due_cents);
    jsonw_int(&w, "points_earned", res ? res->points_earned : 0);
    jsonw_end(&w);
    return outbox_emit(x->ctx, x->merchant_id, OUTBOX_EVENTS_STREAM, "order.completed",
                       req->order_id, json, NULL);
}

/* What a finished checkout's views read from its log: the quote of the breakdown (checkout_ctx). */
static const gw_step_def_t *const checkout_final_responses[] = {&gw_step_promo_reserve, NULL};

const gw_flows_t gw_checkout_flows = {
    .begin = checkout_begin,
    .complete = checkout_complete,
    .compensate = checkout_compensate,
    .after_begin = GW_RESERVED,
    .recover_forward = false,
    .request_desc = &loyalty__v1__gateway_checkout_request__descriptor,
    .on_final = checkout_on_final,
    .final_responses = checkout_final_responses,
};

/* ---- views ---- */

static Loyalty__V1__GatewayCheckout *checkout_view(gw_saga_t *x) {
    Loyalty__V1__GatewayCheckout *co = checkout_ctx(x);
    const Loyalty__V1__GatewayCheckoutRequest *req = (void *)gw_saga_request(x);
    co->checkout_id = x->id;
    co->merchant_id = x->merchant_id;
    co->order_id = req ? req->order_id : x->order_id;
    co->member_id = req ? req->member_id : x->member_id;
    co->promo_checkout_id = x->id;
    co->state = (Loyalty__V1__GatewaySagaState)x->state;
    co->reason = x->reason;
    co->created_at = x->created_at;
    co->updated_at = x->updated_at;
    if (co->result != NULL && x->state == GW_COMPLETED && co->result->completed_at == 0) {
        co->result->completed_at = x->updated_at;
    }
    co->steps = gw_steps_view(x, &co->n_steps);
    return co;
}

/* Adds what refunds gave back (GetCheckout). */
static void add_refunds(gw_saga_t *x, Loyalty__V1__GatewayCheckout *co) {
    if (x->state != GW_COMPLETED) {
        return;
    }
    gw_order_row_t o;
    status_t st = gw_store_get_order(x->ctx->db, x->a, x->merchant_id, co->order_id, false, &o);
    if (status_is_ok(&st) && strcmp(o.checkout_id, x->id) == 0) {
        co->refunded_cents = o.f.refunded_cents;
        co->refundable_cents = o.f.refundable_cents - o.f.refunded_cents;
    }
}

/* ---- handlers ---- */

static Loyalty__V1__GatewayCheckoutRequest *
as_checkout_request(arena_t *a, const Loyalty__V1__GatewayBeginCheckoutRequest *b) {
    Loyalty__V1__GatewayCheckoutRequest *r =
        pb_new(a, &loyalty__v1__gateway_checkout_request__descriptor);
    r->merchant_id = b->merchant_id;
    r->idempotency_key = b->idempotency_key;
    r->order_id = b->order_id;
    r->member_id = b->member_id;
    r->cart = b->cart;
    r->payment = b->payment;
    return r;
}

/* Starts (or resumes) a checkout; the answer for Begin and Checkout. */
static status_t run_checkout(rpc_ctx_t *ctx, Loyalty__V1__GatewayCheckoutRequest *req,
                             const char *method, bool auto_complete,
                             Loyalty__V1__GatewayCheckout **out) {
    status_t st = check_checkout(req, auto_complete);
    if (!status_is_ok(&st)) {
        return st;
    }
    gw_saga_t *x = arena_alloc(ctx->arena, sizeof *x);
    gw_saga_init(x, ctx, gw_svc(ctx), ctx->merchant_id, GW_KIND_CHECKOUT, req->idempotency_key,
                 req->order_id, req->member_id, method, &req->base);
    x->auto_complete = auto_complete;
    x->context->hold_ttl_s = gw_svc(ctx)->hold_ttl_s;
    st = gw_start(x);
    if (!status_is_ok(&st)) {
        return st;
    }
    switch (x->state) {
    case GW_CANCELLED:
    case GW_CANCELLING:
        return gw_saga_error(x);
    case GW_BEGINNING: /* left for a retry after transient errors */
        return x->error.code != STATUS_OK
                   ? x->error
                   : status_make(STATUS_ABORTED, REASON_SAGA_IN_PROGRESS, "checkout in progress");
    case GW_NEEDS_ATTENTION:
        if (checkout_ctx(x)->result == NULL) {
            return gw_saga_error(x);
        }
        break;
    default:
        break;
    }
    *out = checkout_view(x);
    return status_ok();
}

status_t gw_rpc_begin_checkout(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                               ProtobufCMessage *resp_msg) {
    const Loyalty__V1__GatewayBeginCheckoutRequest *req = (const void *)req_msg;
    Loyalty__V1__GatewayBeginCheckoutResponse *resp = (void *)resp_msg;
    return run_checkout(ctx, as_checkout_request(ctx->arena, req), "BeginCheckout", false,
                        &resp->checkout);
}

status_t gw_rpc_checkout(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                         ProtobufCMessage *resp_msg) {
    Loyalty__V1__GatewayCheckoutRequest *req = (void *)req_msg;
    Loyalty__V1__GatewayCheckoutResponse *resp = (void *)resp_msg;
    return run_checkout(ctx, req, "Checkout", true, &resp->checkout);
}

/* Opens a checkout; with `claim`, taking its lease when it is free (x->leased). */
static status_t open_checkout(rpc_ctx_t *ctx, const char *checkout_id, gw_saga_t *x, bool claim) {
    status_t st = gw_check_id("checkout_id", checkout_id, ID_MAX);
    if (!status_is_ok(&st)) {
        return st;
    }
    st = claim ? gw_saga_open_claimed(x, ctx, gw_svc(ctx), ctx->merchant_id, checkout_id)
               : gw_saga_open(x, ctx, gw_svc(ctx), ctx->merchant_id, checkout_id);
    if (status_is_ok(&st) && x->kind != GW_KIND_CHECKOUT) {
        (void)gw_saga_unclaim(x); /* someone else's saga: give back the lease we may have taken */
        st = status_make(STATUS_NOT_FOUND, REASON_SAGA_NOT_FOUND, "not a checkout");
    }
    if (st.code == STATUS_NOT_FOUND) {
        return status_make(STATUS_NOT_FOUND, REASON_CHECKOUT_NOT_FOUND, "checkout %s not found",
                           checkout_id);
    }
    return st;
}

/* Complete accepted: the result exists from the transition to COMPLETING on. */
static bool complete_accepted(gw_saga_t *x) {
    return x->context->checkout != NULL && x->context->checkout->result != NULL;
}

static status_t complete_reserved(gw_saga_t *x, const char *payment_ref) {
    Loyalty__V1__GatewayCheckout *co = checkout_ctx(x);
    if (x->ctx->now_s >= co->reserved_until_at) {
        status_t why = status_make(STATUS_FAILED_PRECONDITION, REASON_EXPIRED,
                                   "the checkout was not completed in time");
        gw_set_failure(x, GW_CANCELLING, &why);
        status_t st = gw_drive(x);
        if (!status_is_ok(&st)) {
            return st;
        }
        return status_make(STATUS_FAILED_PRECONDITION, REASON_CHECKOUT_EXPIRED,
                           "the checkout expired before it was completed; it is cancelled");
    }
    co->payment_ref = arena_strdup(x->a, payment_ref);
    co->result = pb_new(x->a, &loyalty__v1__gateway_checkout_result__descriptor);
    gw_saga_set_state(x, GW_COMPLETING);
    return gw_drive(x);
}

/* What Complete does with the checkout as loaded (holding its lease when x->leased). */
static status_t complete_decide(gw_saga_t *x,
                                const Loyalty__V1__GatewayCompleteCheckoutRequest *req) {
    Loyalty__V1__GatewayCheckout *co = checkout_ctx(x);
    if (complete_accepted(x)) {
        if (req->payment_ref[0] && strcmp(req->payment_ref, co->payment_ref) != 0) {
            return status_make(STATUS_ALREADY_EXISTS, REASON_PAYMENT_REF_MISMATCH,
                               "the checkout was completed with another payment_ref");
        }
        /* Accepted before: drive it on if nobody is, else answer what we know. */
        return x->state == GW_COMPLETING && x->leased ? gw_drive(x) : status_ok();
    }
    if (x->state != GW_RESERVED) {
        const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
            &loyalty__v1__gateway_saga_state__descriptor, x->state);
        return status_make(STATUS_FAILED_PRECONDITION, REASON_CHECKOUT_NOT_RESERVED,
                           "the checkout is %s%s%s, not reserved",
                           v ? v->name + strlen("GATEWAY_SAGA_STATE_") : "?",
                           x->reason[0] ? ": " : "", x->reason);
    }
    if (co->breakdown->amount_due_cents > 0 && req->payment_ref[0] == '\0') {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_PAYMENT_REF_REQUIRED,
                           "%lld is due: completing needs the payment_ref of its payment",
                           (long long)co->breakdown->amount_due_cents);
    }
    if (!x->leased) {
        return status_make(STATUS_ABORTED, REASON_SAGA_IN_PROGRESS,
                           "the checkout is being changed by another request; retry");
    }
    return complete_reserved(x, req->payment_ref);
}

/* Gives the lease back when a handler still holds it (gw_drive gives it back itself): the
 * handler stopped before changing anything, so the saga stays due when it was. */
static status_t release_if_held(gw_saga_t *x, status_t st) {
    if (x->leased) {
        status_t r = gw_saga_unclaim(x);
        if (status_is_ok(&st)) {
            st = r;
        }
    }
    return st;
}

status_t gw_rpc_complete_checkout(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                  ProtobufCMessage *resp_msg) {
    const Loyalty__V1__GatewayCompleteCheckoutRequest *req = (const void *)req_msg;
    Loyalty__V1__GatewayCompleteCheckoutResponse *resp = (void *)resp_msg;
    status_t st = gw_check_optional_key(req->idempotency_key);
    if (status_is_ok(&st)) {
        st = gw_check_payment_ref("payment_ref", req->payment_ref, false);
    }
    gw_saga_t *x = arena_alloc(ctx->arena, sizeof *x);
    if (status_is_ok(&st)) {
        st = open_checkout(ctx, req->checkout_id, x, true);
        if (status_is_ok(&st)) {
            st = release_if_held(x, complete_decide(x, req));
        }
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    resp->checkout = checkout_view(x);
    return status_ok();
}

static status_t cancel_decide(gw_saga_t *x) {
    if (complete_accepted(x)) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_CHECKOUT_ALREADY_COMPLETED,
                           "the checkout's completion was accepted: refund the order instead");
    }
    if (x->state == GW_CANCELLED || x->state == GW_NEEDS_ATTENTION) {
        return status_ok();
    }
    if (!x->leased) {
        return status_make(STATUS_ABORTED, REASON_SAGA_IN_PROGRESS,
                           "the checkout is being changed by another request; retry");
    }
    if (x->state == GW_RESERVED || x->state == GW_BEGINNING) {
        status_t why = status_make(STATUS_FAILED_PRECONDITION, REASON_CHECKOUT_CANCELLED,
                                   "the checkout was cancelled by the storefront");
        gw_set_failure(x, GW_CANCELLING, &why);
    }
    return gw_drive(x);
}

status_t gw_rpc_cancel_checkout(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                ProtobufCMessage *resp_msg) {
    const Loyalty__V1__GatewayCancelCheckoutRequest *req = (const void *)req_msg;
    Loyalty__V1__GatewayCancelCheckoutResponse *resp = (void *)resp_msg;
    status_t st = gw_check_optional_key(req->idempotency_key);
    gw_saga_t *x = arena_alloc(ctx->arena, sizeof *x);
    if (status_is_ok(&st)) {
        st = open_checkout(ctx, req->checkout_id, x, true);
        if (status_is_ok(&st)) {
            st = release_if_held(x, cancel_decide(x));
        }
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    resp->checkout = checkout_view(x);
    return status_ok();
}

status_t gw_rpc_get_checkout(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                             ProtobufCMessage *resp_msg) {
    const Loyalty__V1__GatewayGetCheckoutRequest *req = (const void *)req_msg;
    Loyalty__V1__GatewayGetCheckoutResponse *resp = (void *)resp_msg;
    const char *id = NULL;
    status_t st = status_ok();
    if (req->target_case == LOYALTY__V1__GATEWAY_GET_CHECKOUT_REQUEST__TARGET_CHECKOUT_ID) {
        id = req->checkout_id;
    } else if (req->target_case == LOYALTY__V1__GATEWAY_GET_CHECKOUT_REQUEST__TARGET_ORDER_ID) {
        st = gw_check_id("order_id", req->order_id, GW_ORDER_ID_MAX);
        char *found = NULL;
        if (status_is_ok(&st)) {
            st = gw_store_checkout_of_order(ctx->db, ctx->arena, ctx->merchant_id, req->order_id,
                                            &found);
        }
        id = found;
    } else {
        return status_invalid_field("target", "checkout_id or order_id is required");
    }
    gw_saga_t *x = arena_alloc(ctx->arena, sizeof *x);
    if (status_is_ok(&st)) {
        st = open_checkout(ctx, id, x, false);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    resp->checkout = checkout_view(x);
    add_refunds(x, resp->checkout);
    return status_ok();
}

/* QuoteCheckout: the Begin pricing with reads only (no saga): the same requests and the same
 * choice (gw_choose_payment), the wallet's balance always read for the answer. */
static status_t quote_payment(rpc_ctx_t *ctx, const Loyalty__V1__GatewayQuoteCheckoutRequest *req,
                              Loyalty__V1__GatewayCheckoutBreakdown *b) {
    gw_svc_t *svc = gw_svc(ctx);
    const Loyalty__V1__GatewayPaymentChoice none = LOYALTY__V1__GATEWAY_PAYMENT_CHOICE__INIT;
    gw_payment_ask_t ask = payment_ask(req->payment ? req->payment : &none, b->total_cents);
    Loyalty__V1__PointsQuoteRedeemRequest *qr =
        gw_points_quote_request(ctx->arena, ctx->merchant_id, req->member_id, ask.total_cents,
                                ask.use_max_points ? 0 : ask.redeem_points, ask.use_max_points);
    Loyalty__V1__WalletGetBalanceRequest *wb =
        gw_wallet_balance_request(ctx->arena, ctx->merchant_id, req->member_id);
    enum { QUOTE_POINTS, QUOTE_WALLET, QUOTE_CALLS };
    rpc_call_spec_t calls[QUOTE_CALLS] = {
        [QUOTE_POINTS] = {.channel = svc->points,
                          .service = &loyalty__v1__points_service__descriptor,
                          .method = "QuoteRedeem",
                          .request = &qr->base},
        [QUOTE_WALLET] = {.channel = svc->wallet,
                          .service = &loyalty__v1__wallet_service__descriptor,
                          .method = "GetBalance",
                          .request = &wb->base},
    };
    rpc_call_many(calls, QUOTE_CALLS, ctx->arena, NULL);
    for (int i = 0; i < QUOTE_CALLS; i++) {
        if (!status_is_ok(&calls[i].status)) {
            return calls[i].status;
        }
    }
    const Loyalty__V1__PointsQuoteRedeemResponse *q = (void *)calls[QUOTE_POINTS].response;
    const Loyalty__V1__WalletBalance *bal =
        ((Loyalty__V1__WalletGetBalanceResponse *)calls[QUOTE_WALLET].response)->balance;
    b->points_available = q->available;
    b->wallet_available_cents = bal ? bal->available_cents : 0;
    if (gw_payment_wants_points(&ask)) {
        b->points_note = q->note; /* points-svc chose them and valued them, as its Hold will */
    }
    gw_payment_quote_t quote = {.points = q->chosen_points,
                                .points_cash_cents = q->chosen_cash_cents,
                                .wallet_available_cents = b->wallet_available_cents};
    gw_payment_split_t pay = gw_choose_payment(&ask, &quote);
    fill_payment(b, req->cart, pay.points, pay.points_cash_cents, pay.wallet_cents);
    return status_ok();
}

status_t gw_rpc_quote_checkout(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                               ProtobufCMessage *resp_msg) {
    const Loyalty__V1__GatewayQuoteCheckoutRequest *req = (const void *)req_msg;
    Loyalty__V1__GatewayQuoteCheckoutResponse *resp = (void *)resp_msg;
    gw_svc_t *svc = gw_svc(ctx);
    status_t st = gw_check_id("member_id", req->member_id, ID_MAX);
    if (status_is_ok(&st)) {
        st = check_cart(req->cart);
    }
    if (status_is_ok(&st)) {
        st = check_payment(req->payment);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    const Loyalty__V1__MemberTierStatus *tier = NULL;
    st = gw_quote_member_tier(ctx, req->member_id, &tier);
    if (!status_is_ok(&st)) {
        return st;
    }
    ProtobufCMessage *out = NULL;
    Loyalty__V1__PromoQuoteRequest pq = LOYALTY__V1__PROMO_QUOTE_REQUEST__INIT;
    pq.merchant_id = (char *)ctx->merchant_id;
    pq.cart = gw_promo_cart(ctx->arena, req->member_id, req->cart, tier);
    st = rpc_call(svc->promo, &loyalty__v1__promo_service__descriptor, "Quote", &pq.base,
                  ctx->arena, &out, NULL);
    if (!status_is_ok(&st)) {
        return st;
    }
    Loyalty__V1__GatewayCheckoutBreakdown *b =
        pb_new(ctx->arena, &loyalty__v1__gateway_checkout_breakdown__descriptor);
    Loyalty__V1__PromoQuoteResult *q = ((Loyalty__V1__PromoQuoteResponse *)out)->quote;
    if (q == NULL) {
        return status_make(STATUS_INTERNAL, REASON_PROMO_QUOTE_INCONSISTENT,
                           "promo-svc sent no quote");
    }
    fill_from_quote(b, q, tier);
    st = quote_payment(ctx, req, b);
    if (!status_is_ok(&st)) {
        return st;
    }
    Loyalty__V1__PointsOrderAmounts amounts = LOYALTY__V1__POINTS_ORDER_AMOUNTS__INIT;
    amounts.paid_cents = b->earn_base_cents;
    if (tier != NULL) {
        amounts.tier_id = tier->tier ? tier->tier->id : "";
        amounts.tier_multiplier_bps = tier->earn_multiplier_bps;
    }
    Loyalty__V1__PointsQuoteEarnRequest qe = LOYALTY__V1__POINTS_QUOTE_EARN_REQUEST__INIT;
    qe.merchant_id = (char *)ctx->merchant_id;
    qe.what_case = LOYALTY__V1__POINTS_QUOTE_EARN_REQUEST__WHAT_ORDER;
    qe.order = &amounts;
    st = rpc_call(svc->points, &loyalty__v1__points_service__descriptor, "QuoteEarn", &qe.base,
                  ctx->arena, &out, NULL);
    if (!status_is_ok(&st)) {
        return st;
    }
    b->earn_estimate = ((Loyalty__V1__PointsQuoteEarnResponse *)out)->breakdown;
    resp->breakdown = b;
    return status_ok();
}
