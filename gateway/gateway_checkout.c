/* gateway_checkout.c -- the checkout saga (gateway.proto CHECKOUT): cart validation, the Begin,
 * Complete and compensation flows, the orders row written on completion, and the checkout RPCs.
 */
#include "gateway_rpc.h"

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

static const char *segment_name(int segment) {
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&loyalty__v1__member_segment__descriptor, segment);
    static const char prefix[] = "MEMBER_SEGMENT_";
    if (v == NULL || segment == 0) {
        return "";
    }
    return strncmp(v->name, prefix, sizeof prefix - 1) == 0 ? v->name + sizeof prefix - 1 : v->name;
}

static Loyalty__V1__PromoCart *promo_cart(arena_t *a, const char *member_id,
                                          const Loyalty__V1__GatewayCart *cart,
                                          const Loyalty__V1__MemberTierStatus *tier) {
    Loyalty__V1__PromoCart *pc = pb_new(a, &loyalty__v1__promo_cart__descriptor);
    pc->member_id = (char *)member_id;
    if (tier != NULL) {
        if (tier->tier != NULL) {
            pc->tier_id = tier->tier->id;
            pc->tier_rank = tier->tier->rank;
        }
        pc->tier_discount_bps = tier->discount_bps;
        pc->segment = (char *)segment_name(tier->segment);
    }
    pc->store_id = cart->store_id;
    pc->shipping_cents = cart->shipping_cents;
    pc->codes = cart->codes;
    pc->n_codes = cart->n_codes;
    pc->coupon_ids = cart->coupon_ids;
    pc->n_coupon_ids = cart->n_coupon_ids;
    pc->coupon_codes = cart->coupon_codes;
    pc->n_coupon_codes = cart->n_coupon_codes;
    pc->lines = arena_alloc(a, (cart->n_lines + 1) * sizeof *pc->lines);
    pc->n_lines = cart->n_lines;
    for (size_t i = 0; i < cart->n_lines; i++) {
        const Loyalty__V1__GatewayCartLine *g = cart->lines[i];
        Loyalty__V1__PromoCartLine *l = pb_new(a, &loyalty__v1__promo_cart_line__descriptor);
        l->line_id = g->line_id;
        l->sku = g->sku;
        l->category = g->category;
        l->quantity = g->quantity;
        l->unit_price_cents = g->unit_price_cents;
        pc->lines[i] = l;
    }
    return pc;
}

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
        Loyalty__V1__PromoReserveResponse *r = (void *)gw_step_response(
            x, "promo_reserve", &loyalty__v1__promo_reserve_response__descriptor);
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

/* The points hold for the order (the caller sets what to hold): a cash redemption on an order
 * of total_cents, undone by the order id after a crash. */
static Loyalty__V1__PointsHoldRequest *
points_hold_call(gw_saga_t *x, const Loyalty__V1__GatewayCheckoutRequest *req, int64_t total_cents,
                 gw_call_t *c) {
    Loyalty__V1__PointsHoldRequest *h = pb_new(x->a, &loyalty__v1__points_hold_request__descriptor);
    h->omit_expiring = x->context->points_omit_expiring;
    h->merchant_id = x->merchant_id;
    h->idempotency_key = gw_step_key(x, "points_hold");
    h->member_id = req->member_id;
    h->reference = req->order_id;
    h->ttl_s = x->context->hold_ttl_s;
    h->_order_total_cents_case =
        LOYALTY__V1__POINTS_HOLD_REQUEST___ORDER_TOTAL_CENTS_ORDER_TOTAL_CENTS;
    h->order_total_cents = total_cents;
    gw_call_init(c, x->svc->points, &loyalty__v1__points_service__descriptor, "Hold", &h->base,
                 "points_hold");
    c->undone_by_reference = true; /* see checkout_compensate */
    return h;
}

/* The wallet hold of `amount_cents` for the order: undone by the order id after a crash. */
static void wallet_hold_call(gw_saga_t *x, const Loyalty__V1__GatewayCheckoutRequest *req,
                             int64_t amount_cents, gw_call_t *c) {
    Loyalty__V1__WalletHoldRequest *h = pb_new(x->a, &loyalty__v1__wallet_hold_request__descriptor);
    h->merchant_id = x->merchant_id;
    h->idempotency_key = gw_step_key(x, "wallet_hold");
    h->member_id = req->member_id;
    h->amount_cents = amount_cents;
    h->reference = req->order_id;
    h->ttl_s = (int32_t)x->context->hold_ttl_s;
    h->omit_expiring = x->context->wallet_omit_expiring;
    gw_call_init(c, x->svc->wallet, &loyalty__v1__wallet_service__descriptor, "Hold", &h->base,
                 "wallet_hold");
    c->undone_by_reference = true; /* see checkout_compensate */
}

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
        Loyalty__V1__WalletGetBalanceRequest *g =
            pb_new(x->a, &loyalty__v1__wallet_get_balance_request__descriptor);
        g->merchant_id = x->merchant_id;
        g->member_id = req->member_id;
        gw_call_t read;
        gw_call_init(&read, x->svc->wallet, &loyalty__v1__wallet_service__descriptor, "GetBalance",
                     &g->base, "wallet_balance");
        status_t st = gw_read(x, &read);
        if (!status_is_ok(&st)) {
            return st;
        }
        const Loyalty__V1__WalletBalance *bal =
            ((Loyalty__V1__WalletGetBalanceResponse *)read.response)->balance;
        available = bal ? bal->available_cents : 0;
    }
    *wallet = gw_choose_wallet(pay->wallet_cents, pay->use_max_wallet, available, due);
    if (*wallet == 0) {
        return status_ok();
    }
    gw_call_t hold;
    wallet_hold_call(x, req, *wallet, &hold);
    status_t st = gw_step(x, &hold);
    if (!status_is_ok(&st)) {
        return st;
    }
    const Loyalty__V1__WalletHold *h = ((Loyalty__V1__WalletHoldResponse *)hold.response)->hold;
    co->wallet_hold_id = h->id;
    if (h->amount_cents != *wallet) {
        x->failed_step = true; /* a refusal: compensate */
        return status_make(STATUS_INTERNAL, "WALLET_HOLD_INCONSISTENT",
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
        Loyalty__V1__PointsHoldRequest *h = points_hold_call(x, req, b->total_cents, &c);
        h->choose_points = true;
        h->use_max_points = pay->use_max_points;
        h->points = pay->use_max_points ? 0 : pay->redeem_points;
        status_t st = gw_step(x, &c);
        if (!status_is_ok(&st)) {
            return st;
        }
        const Loyalty__V1__PointsHoldResponse *r = (void *)c.response;
        b->points_note = r->note;
        if (r->hold != NULL) {
            co->points_hold_id = r->hold->id;
            points = r->hold->points;
            cash = r->hold->cash_value_cents;
        }
        if (cash > b->total_cents) {
            x->failed_step = true;
            return status_make(STATUS_INTERNAL, "POINTS_HOLD_INCONSISTENT",
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

/* Points and wallet (sagas begun before points_hold_chooses): the reads they depend on in
 * parallel, then both holds in parallel. The points' choice and cash value come with the quote
 * (points-svc's, as its Hold computes them), so the wallet amount does not wait for the points
 * hold; a hold whose cash value differs (the rate changed in between) refuses the checkout
 * (REDEMPTION_RATE_CHANGED). */
static status_t begin_payment(gw_saga_t *x, const Loyalty__V1__GatewayCheckoutRequest *req,
                              Loyalty__V1__GatewayCheckout *co) {
    const Loyalty__V1__GatewayPaymentChoice *pay = payment_of(req);
    Loyalty__V1__GatewayCheckoutBreakdown *b = co->breakdown;
    bool want_points = (pay->redeem_points > 0 || pay->use_max_points) && b->total_cents > 0;
    bool want_wallet = pay->wallet_cents > 0 || pay->use_max_wallet;
    gw_call_t reads[2];
    int nr = 0, iq = -1, iw = -1;
    if (want_points) {
        Loyalty__V1__PointsQuoteRedeemRequest *q =
            pb_new(x->a, &loyalty__v1__points_quote_redeem_request__descriptor);
        q->merchant_id = x->merchant_id;
        q->member_id = req->member_id;
        q->order_total_cents = b->total_cents;
        q->points = pay->use_max_points ? 0 : pay->redeem_points;
        q->use_max_points = pay->use_max_points;
        gw_call_init(&reads[iq = nr++], x->svc->points, &loyalty__v1__points_service__descriptor,
                     "QuoteRedeem", &q->base, "points_quote");
    }
    if (want_wallet && pay->use_max_wallet) {
        Loyalty__V1__WalletGetBalanceRequest *g =
            pb_new(x->a, &loyalty__v1__wallet_get_balance_request__descriptor);
        g->merchant_id = x->merchant_id;
        g->member_id = req->member_id;
        gw_call_init(&reads[iw = nr++], x->svc->wallet, &loyalty__v1__wallet_service__descriptor,
                     "GetBalance", &g->base, "wallet_balance");
    }
    status_t st = gw_reads(x, reads, nr);
    if (!status_is_ok(&st)) {
        return st;
    }
    int64_t points = 0, cash = 0;
    if (iq >= 0) {
        const Loyalty__V1__PointsQuoteRedeemResponse *qr = (void *)reads[iq].response;
        b->points_note = qr->note;
        points = qr->chosen_points;
        cash = qr->chosen_cash_cents;
        if (cash > b->total_cents) {
            cash = b->total_cents; /* cannot happen under the cap; never pay more than due */
        }
    }
    int64_t available = 0;
    if (iw >= 0) {
        const Loyalty__V1__WalletBalance *bal =
            ((Loyalty__V1__WalletGetBalanceResponse *)reads[iw].response)->balance;
        available = bal ? bal->available_cents : 0;
    }
    int64_t due = b->total_cents - cash;
    int64_t wallet =
        want_wallet ? gw_choose_wallet(pay->wallet_cents, pay->use_max_wallet, available, due) : 0;
    gw_call_t holds[2];
    int n = 0, ip = -1, iwh = -1;
    if (points > 0) {
        Loyalty__V1__PointsHoldRequest *h =
            points_hold_call(x, req, b->total_cents, &holds[ip = n++]);
        h->points = points;
    }
    if (wallet > 0) {
        wallet_hold_call(x, req, wallet, &holds[iwh = n++]);
    }
    st = gw_steps(x, holds, n);
    /* Record every hold taken, also when the other was refused: compensation releases them. */
    status_t mismatch = status_ok();
    if (ip >= 0 && status_is_ok(&holds[ip].status)) {
        const Loyalty__V1__PointsHold *hold =
            ((Loyalty__V1__PointsHoldResponse *)holds[ip].response)->hold;
        co->points_hold_id = hold->id;
        if (hold->points != points || hold->cash_value_cents != cash) {
            mismatch = status_make(STATUS_FAILED_PRECONDITION, "REDEMPTION_RATE_CHANGED",
                                   "points-svc valued %lld points at %lld, not %lld: retry",
                                   (long long)hold->points, (long long)hold->cash_value_cents,
                                   (long long)cash);
        }
    }
    if (iwh >= 0 && status_is_ok(&holds[iwh].status)) {
        const Loyalty__V1__WalletHold *hold =
            ((Loyalty__V1__WalletHoldResponse *)holds[iwh].response)->hold;
        co->wallet_hold_id = hold->id;
        if (hold->amount_cents != wallet) {
            mismatch = status_make(STATUS_INTERNAL, "WALLET_HOLD_INCONSISTENT",
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
    fill_payment(b, req->cart, points, cash, wallet);
    return status_ok();
}

/* MEMBERSHIP and WALLET_TOPUP lines are applied after the payment: refuse the checkout now,
 * before anything is reserved, when their plan could not be applied (unknown, inactive, or a
 * top-up plan whose price is not the line's). A plan changed between Begin and Complete still
 * stops the Complete (NEEDS_ATTENTION; RetrySaga once it is fixed). */
static status_t check_products(gw_saga_t *x, const Loyalty__V1__GatewayCheckoutRequest *req) {
    gw_call_t reads[1 + GW_PRODUCT_LINES_MAX];
    size_t line_of[1 + GW_PRODUCT_LINES_MAX]; /* the cart line a top-up plan read is for */
    int n = 0, im = -1;
    for (size_t i = 0; i < req->cart->n_lines; i++) {
        const Loyalty__V1__GatewayCartLine *l = req->cart->lines[i];
        if ((int)l->kind == MEMBERSHIP && im < 0) {
            Loyalty__V1__MemberListPlansRequest *r =
                pb_new(x->a, &loyalty__v1__member_list_plans_request__descriptor);
            r->merchant_id = x->merchant_id;
            r->include_inactive = true;
            gw_call_init(&reads[im = n++], x->svc->member, &loyalty__v1__member_service__descriptor,
                         "ListMembershipPlans", &r->base, "membership_plans");
        } else if ((int)l->kind == TOPUP && l->top_up_plan_id[0] && n < 1 + GW_PRODUCT_LINES_MAX) {
            Loyalty__V1__WalletGetTopUpPlanRequest *r =
                pb_new(x->a, &loyalty__v1__wallet_get_top_up_plan_request__descriptor);
            r->merchant_id = x->merchant_id;
            r->plan_id = l->top_up_plan_id;
            line_of[n] = i;
            gw_call_init(&reads[n++], x->svc->wallet, &loyalty__v1__wallet_service__descriptor,
                         "GetTopUpPlan", &r->base, "top_up_plan:%zu", i);
        }
    }
    status_t st = gw_reads(x, reads, n);
    if (!status_is_ok(&st)) {
        return st;
    }
    for (size_t i = 0; im >= 0 && i < req->cart->n_lines; i++) {
        const Loyalty__V1__GatewayCartLine *l = req->cart->lines[i];
        if ((int)l->kind != MEMBERSHIP) {
            continue;
        }
        const Loyalty__V1__MemberListPlansResponse *plans = (void *)reads[im].response;
        const Loyalty__V1__MemberPlan *plan = NULL;
        for (size_t k = 0; k < plans->n_plans; k++) {
            if (strcmp(plans->plans[k]->id, l->membership_plan_id) == 0) {
                plan = plans->plans[k];
            }
        }
        if (plan == NULL) {
            return status_make(STATUS_NOT_FOUND, "PLAN_NOT_FOUND", "line %s: no membership plan %s",
                               l->line_id, l->membership_plan_id);
        }
        if (!plan->active) {
            return status_make(STATUS_FAILED_PRECONDITION, "PLAN_INACTIVE",
                               "line %s: membership plan %s is inactive", l->line_id, plan->id);
        }
    }
    for (int k = 0; k < n; k++) {
        if (k == im) {
            continue;
        }
        const Loyalty__V1__GatewayCartLine *l = req->cart->lines[line_of[k]];
        const Loyalty__V1__WalletTopUpPlan *plan =
            ((Loyalty__V1__WalletGetTopUpPlanResponse *)reads[k].response)->plan;
        int64_t now = x->ctx->now_s;
        if (plan == NULL || !plan->enabled || now < plan->active_from_at ||
            (plan->active_until_at != 0 && now >= plan->active_until_at)) {
            return status_make(STATUS_FAILED_PRECONDITION, "PLAN_NOT_ACTIVE",
                               "line %s: top-up plan %s is not active", l->line_id,
                               l->top_up_plan_id);
        }
        if (plan->pay_cents != l->unit_price_cents) {
            return status_make(STATUS_FAILED_PRECONDITION, "PLAN_AMOUNT_MISMATCH",
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
    Loyalty__V1__PromoReserveRequest *r =
        pb_new(x->a, &loyalty__v1__promo_reserve_request__descriptor);
    r->merchant_id = x->merchant_id;
    r->idempotency_key = gw_step_key(x, "promo_reserve");
    r->checkout_id = x->id;
    r->cart = promo_cart(x->a, req->member_id, req->cart, tier);
    r->ttl_s = x->context->hold_ttl_s;
    gw_call_t c;
    gw_call_init(&c, x->svc->promo, &loyalty__v1__promo_service__descriptor, "Reserve", &r->base,
                 "promo_reserve");
    st = gw_step(x, &c);
    if (!status_is_ok(&st)) {
        return st;
    }
    const Loyalty__V1__PromoReservation *res =
        ((Loyalty__V1__PromoReserveResponse *)c.response)->reservation;
    if (res == NULL || res->quote == NULL) {
        return status_make(STATUS_INTERNAL, "PROMO_RESERVE_INCONSISTENT",
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
            return status_make(STATUS_FAILED_PRECONDITION, "PAYMENT_REF_REQUIRED",
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
    Loyalty__V1__MemberGetTierResponse *r = (void *)gw_step_response(
        x, "member_tier", &loyalty__v1__member_get_tier_response__descriptor);
    return r ? r->status : NULL;
}

static Loyalty__V1__PointsEarnBatchRequest *earn_batch(gw_saga_t *x, const char *step,
                                                       size_t max_earns);

/* The calls of Complete's first group, as its builder added them (NULL when not made). */
typedef struct settle_calls {
    gw_call_t *capture, *confirm, *settle, *commit, *earn, *compute;
} settle_calls_t;

/* The first parallel group: capture, commit and earn (one points call when points_batched),
 * confirm, compute referral rewards. */
static void complete_group1(gw_saga_t *x, const Loyalty__V1__GatewayCheckoutRequest *req,
                            Loyalty__V1__GatewayCheckout *co, gw_group_t *g, settle_calls_t *c) {
    const Loyalty__V1__GatewayCheckoutBreakdown *b = co->breakdown;
    const Loyalty__V1__MemberTierStatus *tier = logged_tier(x);
    gw_svc_t *svc = x->svc;
    *c = (settle_calls_t){0};
    if (co->wallet_hold_id[0]) {
        Loyalty__V1__WalletCaptureHoldRequest *r =
            pb_new(x->a, &loyalty__v1__wallet_capture_hold_request__descriptor);
        r->merchant_id = x->merchant_id;
        r->idempotency_key = gw_step_key(x, "wallet_capture");
        r->hold_id = co->wallet_hold_id;
        r->amount_cents = b->wallet_cents;
        r->omit_expiring = x->context->wallet_omit_expiring;
        c->capture = gw_group_add(g);
        gw_call_init(c->capture, svc->wallet, &loyalty__v1__wallet_service__descriptor,
                     "CaptureHold", &r->base, "wallet_capture");
    }
    Loyalty__V1__PromoConfirmRequest *pc =
        pb_new(x->a, &loyalty__v1__promo_confirm_request__descriptor);
    pc->merchant_id = x->merchant_id;
    pc->idempotency_key = gw_step_key(x, "promo_confirm");
    pc->checkout_id = x->id;
    pc->order_id = req->order_id;
    c->confirm = gw_group_add(g);
    gw_call_init(c->confirm, svc->promo, &loyalty__v1__promo_service__descriptor, "Confirm",
                 &pc->base, "promo_confirm");
    Loyalty__V1__PointsOrderAmounts *amounts =
        pb_new(x->a, &loyalty__v1__points_order_amounts__descriptor);
    amounts->paid_cents = b->earn_base_cents;
    if (tier != NULL) {
        amounts->tier_id = tier->tier ? tier->tier->id : "";
        amounts->tier_multiplier_bps = tier->earn_multiplier_bps;
    }
    amounts->ordered_at = x->created_at;
    Loyalty__V1__PointsEarnRequest *e = pb_new(x->a, &loyalty__v1__points_earn_request__descriptor);
    e->omit_expiring = x->context->points_omit_expiring;
    e->member_id = req->member_id;
    e->source = LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_ORDER;
    e->reference = req->order_id;
    e->amount_case = LOYALTY__V1__POINTS_EARN_REQUEST__AMOUNT_ORDER;
    e->order = amounts;
    if (x->context->points_batched) {
        /* the hold's commit and the buyer's earn: one points call, one transaction */
        Loyalty__V1__PointsEarnBatchRequest *r = earn_batch(x, "points_settle", 1);
        r->commit_hold_id = co->points_hold_id;
        r->earns[r->n_earns++] = e;
        c->settle = gw_group_add(g);
        gw_call_init(c->settle, svc->points, &loyalty__v1__points_service__descriptor, "EarnBatch",
                     &r->base, "points_settle");
    } else {
        if (co->points_hold_id[0]) {
            Loyalty__V1__PointsCommitHoldRequest *r =
                pb_new(x->a, &loyalty__v1__points_commit_hold_request__descriptor);
            r->omit_expiring = x->context->points_omit_expiring;
            r->merchant_id = x->merchant_id;
            r->idempotency_key = gw_step_key(x, "points_commit");
            r->target_case = LOYALTY__V1__POINTS_COMMIT_HOLD_REQUEST__TARGET_HOLD_ID;
            r->hold_id = co->points_hold_id;
            c->commit = gw_group_add(g);
            gw_call_init(c->commit, svc->points, &loyalty__v1__points_service__descriptor,
                         "CommitHold", &r->base, "points_commit");
        }
        e->merchant_id = x->merchant_id;
        e->idempotency_key = gw_step_key(x, "points_earn");
        c->earn = gw_group_add(g);
        gw_call_init(c->earn, svc->points, &loyalty__v1__points_service__descriptor, "Earn",
                     &e->base, "points_earn");
    }
    Loyalty__V1__ReferralComputeRewardsRequest *rc =
        pb_new(x->a, &loyalty__v1__referral_compute_rewards_request__descriptor);
    rc->merchant_id = x->merchant_id;
    rc->idempotency_key = gw_step_key(x, "referral_compute");
    rc->event = LOYALTY__V1__REFERRAL_EVENT__REFERRAL_EVENT_PURCHASE;
    rc->member_id = req->member_id;
    rc->paid_cents = b->earn_base_cents;
    rc->reference = req->order_id;
    c->compute = gw_group_add(g);
    gw_call_init(c->compute, svc->referral, &loyalty__v1__referral_service__descriptor,
                 "ComputeRewards", &rc->base, "referral_compute");
}

/* The earn that grants a referral reward to its beneficiary (reference "rr:<reward id>"). */
static Loyalty__V1__PointsEarnRequest *grant_earn(gw_saga_t *x,
                                                  const Loyalty__V1__ReferralReward *rw) {
    Loyalty__V1__PointsEarnRequest *e = pb_new(x->a, &loyalty__v1__points_earn_request__descriptor);
    e->omit_expiring = x->context->points_omit_expiring;
    e->member_id = rw->beneficiary_member_id;
    /* Source ORDER, not REFERRAL: PointsService.ReverseOrder only claws back references earned
     * as orders, and a returned purchase must be able to take the reward back (with debt when it
     * was spent). The reference "rr:<reward id>" tells the lot apart; no pending period. */
    e->source = LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_ORDER;
    e->reference = arena_printf(x->a, "rr:%s", rw->id);
    e->_pending_days_case = LOYALTY__V1__POINTS_EARN_REQUEST___PENDING_DAYS_PENDING_DAYS;
    e->pending_days = 0;
    e->amount_case = LOYALTY__V1__POINTS_EARN_REQUEST__AMOUNT_POINTS;
    e->points = rw->granted_points > 0 ? rw->granted_points : rw->points;
    e->note = "referral reward";
    return e;
}

/* One call per grant: sagas begun before points_batched. */
static void grant_call(gw_saga_t *x, gw_call_t *c, const Loyalty__V1__ReferralReward *rw) {
    char *name = arena_printf(x->a, "referral_grant:%s", rw->id);
    Loyalty__V1__PointsEarnRequest *e = grant_earn(x, rw);
    e->merchant_id = x->merchant_id;
    e->idempotency_key = gw_step_key(x, name);
    gw_call_init(c, x->svc->points, &loyalty__v1__points_service__descriptor, "Earn", &e->base,
                 "%s", name);
}

/* A points EarnBatch step: the batch's key from the step's name, the items without keys. */
static Loyalty__V1__PointsEarnBatchRequest *earn_batch(gw_saga_t *x, const char *step,
                                                       size_t max_earns) {
    Loyalty__V1__PointsEarnBatchRequest *r =
        pb_new(x->a, &loyalty__v1__points_earn_batch_request__descriptor);
    r->merchant_id = x->merchant_id;
    r->idempotency_key = gw_step_key(x, step);
    r->omit_expiring = x->context->points_omit_expiring;
    r->earns = arena_alloc(x->a, (max_earns + 1) * sizeof *r->earns);
    return r;
}

void gw_referral_grants(gw_saga_t *x, const Loyalty__V1__ReferralComputeRewardsResponse *cr,
                        Loyalty__V1__GatewayReferralGrant ***out, size_t *n_out, gw_group_t *g,
                        int keep_free, int64_t *held_until) {
    Loyalty__V1__PointsEarnBatchRequest *batch =
        x->context->points_batched ? earn_batch(x, "referral_grants", cr->n_rewards) : NULL;
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
            batch->earns[batch->n_earns++] = grant_earn(x, rw);
        } else if (gw_group_room(g) > keep_free) {
            grant_call(x, gw_group_add(g), rw);
        }
    }
    if (batch != NULL && batch->n_earns > 0 && gw_group_room(g) > keep_free) {
        gw_call_init(gw_group_add(g), x->svc->points, &loyalty__v1__points_service__descriptor,
                     "EarnBatch", &batch->base, "referral_grants");
    }
}

/* The calls that apply the cart's MEMBERSHIP and WALLET_TOPUP lines, each tagged with its line
 * (tag = index + 1). */
static void product_calls(gw_saga_t *x, const Loyalty__V1__GatewayCheckoutRequest *req,
                          gw_group_t *g) {
    for (size_t i = 0; i < req->cart->n_lines && gw_group_room(g) > 0; i++) {
        const Loyalty__V1__GatewayCartLine *l = req->cart->lines[i];
        if ((int)l->kind == MEMBERSHIP) {
            char *name = arena_printf(x->a, "membership:%zu", i);
            Loyalty__V1__MemberPurchaseRequest *r =
                pb_new(x->a, &loyalty__v1__member_purchase_request__descriptor);
            r->merchant_id = x->merchant_id;
            r->idempotency_key = gw_step_key(x, name);
            r->member_id = req->member_id;
            r->plan_id = l->membership_plan_id;
            r->quantity = (int32_t)l->quantity;
            r->order_id = arena_printf(x->a, "%s:m%zu", req->order_id, i);
            gw_call_t *c = gw_group_add(g);
            gw_call_init(c, x->svc->member, &loyalty__v1__member_service__descriptor,
                         "PurchaseMembership", &r->base, "%s", name);
            c->tag = (int32_t)i + 1;
        } else if ((int)l->kind == TOPUP) {
            char *name = arena_printf(x->a, "top_up:%zu", i);
            Loyalty__V1__WalletTopUpRequest *r =
                pb_new(x->a, &loyalty__v1__wallet_top_up_request__descriptor);
            r->merchant_id = x->merchant_id;
            r->idempotency_key = gw_step_key(x, name);
            r->member_id = req->member_id;
            r->paid_cents = l->unit_price_cents;
            r->plan_id = l->top_up_plan_id;
            r->payment_ref = arena_printf(x->a, "%s:t%zu", req->order_id, i);
            gw_call_t *c = gw_group_add(g);
            gw_call_init(c, x->svc->wallet, &loyalty__v1__wallet_service__descriptor, "TopUp",
                         &r->base, "%s", name);
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
    Loyalty__V1__MemberRecordOrderRequest *ro =
        pb_new(x->a, &loyalty__v1__member_record_order_request__descriptor);
    ro->merchant_id = x->merchant_id;
    ro->idempotency_key = gw_step_key(x, "member_record_order");
    ro->member_id = req->member_id;
    ro->order_id = req->order_id;
    ro->spend_cents = co->breakdown->earn_base_cents;
    ro->growth_delta = earn->growth_delta;
    ro->at = x->created_at;
    if (earn->balance != NULL) { /* member-svc's points_balance tag rules (no call of its own) */
        ro->_points_balance_case =
            LOYALTY__V1__MEMBER_RECORD_ORDER_REQUEST___POINTS_BALANCE_POINTS_BALANCE;
        ro->points_balance = earn->balance->available;
        ro->points_balance_version = earn->balance->version;
    }
    gw_call_t *record_order = gw_group_add(&g2);
    gw_call_init(record_order, x->svc->member, &loyalty__v1__member_service__descriptor,
                 "RecordOrder", &ro->base, "member_record_order");
    int64_t held_until = 0;
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

static status_t undo(gw_saga_t *x, const char *step, rpc_channel_t *ch,
                     const ProtobufCServiceDescriptor *svc, const char *method,
                     ProtobufCMessage *req) {
    gw_step_t *s = gw_find_step(x, step);
    if (s == NULL || s->state != GW_DONE) {
        return status_ok(); /* never applied */
    }
    gw_call_t c;
    gw_call_init(&c, ch, svc, method, req, "%s:undo", step);
    c.direction = GW_COMPENSATE;
    return gw_step(x, &c);
}

/* Whether a Begin hold (step `step`) may have been taken although the saga knows no id for it.
 * The holds are not written ahead (undone_by_reference): a Begin interrupted between asking
 * for them and its next write leaves no record, so a saga not created by this request cannot
 * tell "never asked" from "asked". One with a STARTED record was asked without an answer. */
static bool hold_maybe_taken(gw_saga_t *x, const char *step, bool wanted) {
    const gw_step_t *s = gw_find_step(x, step);
    if (s != NULL) {
        return s->state == GW_STARTED;
    }
    return wanted && !x->created_here;
}

/* Undoes a hold the saga has no id for, by the order id it was taken with. An order has at most
 * one checkout that is not CANCELLED (sagas_checkout_order), and this one is not yet, so a hold
 * found by the reference is this checkout's; none found means none was taken. */
static status_t undo_by_reference(gw_saga_t *x, const char *step, rpc_channel_t *ch,
                                  const ProtobufCServiceDescriptor *svc, const char *method,
                                  ProtobufCMessage *req) {
    gw_call_t c;
    gw_call_init(&c, ch, svc, method, req, "%s:undo", step);
    c.direction = GW_COMPENSATE;
    c.tolerate_refusal = true; /* HOLD_NOT_FOUND: never taken */
    status_t st = gw_step(x, &c);
    if (!status_is_ok(&st) || status_is_ok(&c.status) || c.status.code == STATUS_NOT_FOUND) {
        return st;
    }
    return c.status; /* any other refusal is not "never taken": an operator looks */
}

static status_t checkout_compensate(gw_saga_t *x) {
    const Loyalty__V1__GatewayCheckoutRequest *req = (void *)gw_saga_request(x);
    const Loyalty__V1__GatewayPaymentChoice *pay = payment_of(req);
    Loyalty__V1__GatewayCheckout *co = checkout_ctx(x);
    if (co->wallet_hold_id[0]) {
        Loyalty__V1__WalletVoidHoldRequest *r =
            pb_new(x->a, &loyalty__v1__wallet_void_hold_request__descriptor);
        r->merchant_id = x->merchant_id;
        r->idempotency_key = gw_step_key(x, "wallet_hold:undo");
        r->hold_id = co->wallet_hold_id;
        status_t st = undo(x, "wallet_hold", x->svc->wallet,
                           &loyalty__v1__wallet_service__descriptor, "VoidHold", &r->base);
        if (!status_is_ok(&st)) {
            return st;
        }
    } else if (hold_maybe_taken(x, "wallet_hold", pay->wallet_cents > 0 || pay->use_max_wallet)) {
        Loyalty__V1__WalletVoidHoldRequest *r =
            pb_new(x->a, &loyalty__v1__wallet_void_hold_request__descriptor);
        r->merchant_id = x->merchant_id;
        r->idempotency_key = gw_step_key(x, "wallet_hold:undo");
        r->member_id = req->member_id;
        r->reference = req->order_id;
        status_t st =
            undo_by_reference(x, "wallet_hold", x->svc->wallet,
                              &loyalty__v1__wallet_service__descriptor, "VoidHold", &r->base);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    bool by_reference =
        !co->points_hold_id[0] &&
        hold_maybe_taken(x, "points_hold", pay->redeem_points > 0 || pay->use_max_points);
    if (co->points_hold_id[0] || by_reference) {
        Loyalty__V1__PointsReleaseHoldRequest *r =
            pb_new(x->a, &loyalty__v1__points_release_hold_request__descriptor);
        r->omit_expiring = x->context->points_omit_expiring;
        r->merchant_id = x->merchant_id;
        r->idempotency_key = gw_step_key(x, "points_hold:undo");
        if (by_reference) {
            r->target_case = LOYALTY__V1__POINTS_RELEASE_HOLD_REQUEST__TARGET_REFERENCE;
            r->reference = req->order_id;
        } else {
            r->target_case = LOYALTY__V1__POINTS_RELEASE_HOLD_REQUEST__TARGET_HOLD_ID;
            r->hold_id = co->points_hold_id;
        }
        status_t st = by_reference
                          ? undo_by_reference(x, "points_hold", x->svc->points,
                                              &loyalty__v1__points_service__descriptor,
                                              "ReleaseHold", &r->base)
                          : undo(x, "points_hold", x->svc->points,
                                 &loyalty__v1__points_service__descriptor, "ReleaseHold", &r->base);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    Loyalty__V1__PromoReleaseRequest *r =
        pb_new(x->a, &loyalty__v1__promo_release_request__descriptor);
    r->merchant_id = x->merchant_id;
    r->idempotency_key = gw_step_key(x, "promo_reserve:undo");
    r->checkout_id = x->id;
    return undo(x, "promo_reserve", x->svc->promo, &loyalty__v1__promo_service__descriptor,
                "Release", &r->base);
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
        Loyalty__V1__ReferralComputeRewardsResponse *cr = (void *)gw_step_response(
            x, "referral_compute", &loyalty__v1__referral_compute_rewards_response__descriptor);
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
static const char *const checkout_final_responses[] = {"promo_reserve", NULL};

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
                   : status_make(STATUS_ABORTED, "SAGA_IN_PROGRESS", "checkout in progress");
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
        st = status_make(STATUS_NOT_FOUND, "SAGA_NOT_FOUND", "not a checkout");
    }
    if (st.code == STATUS_NOT_FOUND) {
        return status_make(STATUS_NOT_FOUND, "CHECKOUT_NOT_FOUND", "checkout %s not found",
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
        status_t why = status_make(STATUS_FAILED_PRECONDITION, "EXPIRED",
                                   "the checkout was not completed in time");
        gw_set_failure(x, GW_CANCELLING, &why);
        status_t st = gw_drive(x);
        if (!status_is_ok(&st)) {
            return st;
        }
        return status_make(STATUS_FAILED_PRECONDITION, "CHECKOUT_EXPIRED",
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
            return status_make(STATUS_ALREADY_EXISTS, "PAYMENT_REF_MISMATCH",
                               "the checkout was completed with another payment_ref");
        }
        /* Accepted before: drive it on if nobody is, else answer what we know. */
        return x->state == GW_COMPLETING && x->leased ? gw_drive(x) : status_ok();
    }
    if (x->state != GW_RESERVED) {
        const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
            &loyalty__v1__gateway_saga_state__descriptor, x->state);
        return status_make(STATUS_FAILED_PRECONDITION, "CHECKOUT_NOT_RESERVED",
                           "the checkout is %s%s%s, not reserved",
                           v ? v->name + strlen("GATEWAY_SAGA_STATE_") : "?",
                           x->reason[0] ? ": " : "", x->reason);
    }
    if (co->breakdown->amount_due_cents > 0 && req->payment_ref[0] == '\0') {
        return status_make(STATUS_FAILED_PRECONDITION, "PAYMENT_REF_REQUIRED",
                           "%lld is due: completing needs the payment_ref of its payment",
                           (long long)co->breakdown->amount_due_cents);
    }
    if (!x->leased) {
        return status_make(STATUS_ABORTED, "SAGA_IN_PROGRESS",
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
        return status_make(STATUS_FAILED_PRECONDITION, "CHECKOUT_ALREADY_COMPLETED",
                           "the checkout's completion was accepted: refund the order instead");
    }
    if (x->state == GW_CANCELLED || x->state == GW_NEEDS_ATTENTION) {
        return status_ok();
    }
    if (!x->leased) {
        return status_make(STATUS_ABORTED, "SAGA_IN_PROGRESS",
                           "the checkout is being changed by another request; retry");
    }
    if (x->state == GW_RESERVED || x->state == GW_BEGINNING) {
        status_t why = status_make(STATUS_FAILED_PRECONDITION, "CHECKOUT_CANCELLED",
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

/* QuoteCheckout: the Begin pricing with reads only (no saga). */
static status_t quote_payment(rpc_ctx_t *ctx, const Loyalty__V1__GatewayQuoteCheckoutRequest *req,
                              Loyalty__V1__GatewayCheckoutBreakdown *b) {
    gw_svc_t *svc = gw_svc(ctx);
    const Loyalty__V1__GatewayPaymentChoice none = LOYALTY__V1__GATEWAY_PAYMENT_CHOICE__INIT;
    const Loyalty__V1__GatewayPaymentChoice *pay = req->payment ? req->payment : &none;
    Loyalty__V1__PointsQuoteRedeemRequest qr = LOYALTY__V1__POINTS_QUOTE_REDEEM_REQUEST__INIT;
    qr.merchant_id = (char *)ctx->merchant_id;
    qr.member_id = req->member_id;
    qr.order_total_cents = b->total_cents;
    qr.points = pay->use_max_points ? 0 : pay->redeem_points;
    qr.use_max_points = pay->use_max_points;
    Loyalty__V1__WalletGetBalanceRequest wb = LOYALTY__V1__WALLET_GET_BALANCE_REQUEST__INIT;
    wb.merchant_id = (char *)ctx->merchant_id;
    wb.member_id = req->member_id;
    rpc_call_spec_t calls[2] = {
        {.channel = svc->points,
         .service = &loyalty__v1__points_service__descriptor,
         .method = "QuoteRedeem",
         .request = &qr.base},
        {.channel = svc->wallet,
         .service = &loyalty__v1__wallet_service__descriptor,
         .method = "GetBalance",
         .request = &wb.base},
    };
    rpc_call_many(calls, 2, ctx->arena, NULL);
    for (int i = 0; i < 2; i++) {
        if (!status_is_ok(&calls[i].status)) {
            return calls[i].status;
        }
    }
    const Loyalty__V1__PointsQuoteRedeemResponse *q = (void *)calls[0].response;
    const Loyalty__V1__WalletBalance *bal =
        ((Loyalty__V1__WalletGetBalanceResponse *)calls[1].response)->balance;
    b->points_available = q->available;
    b->wallet_available_cents = bal ? bal->available_cents : 0;
    int64_t points = 0, cash = 0;
    if ((pay->redeem_points > 0 || pay->use_max_points) && b->total_cents > 0) {
        /* points-svc chose them and valued them, as its Hold will */
        points = q->chosen_points;
        cash = q->chosen_cash_cents;
        b->points_note = q->note;
    }
    int64_t wallet = gw_choose_wallet(pay->wallet_cents, pay->use_max_wallet,
                                      b->wallet_available_cents, b->total_cents - cash);
    fill_payment(b, req->cart, points, cash, wallet);
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
    pq.cart = promo_cart(ctx->arena, req->member_id, req->cart, tier);
    st = rpc_call(svc->promo, &loyalty__v1__promo_service__descriptor, "Quote", &pq.base,
                  ctx->arena, &out, NULL);
    if (!status_is_ok(&st)) {
        return st;
    }
    Loyalty__V1__GatewayCheckoutBreakdown *b =
        pb_new(ctx->arena, &loyalty__v1__gateway_checkout_breakdown__descriptor);
    Loyalty__V1__PromoQuoteResult *q = ((Loyalty__V1__PromoQuoteResponse *)out)->quote;
    if (q == NULL) {
        return status_make(STATUS_INTERNAL, "PROMO_QUOTE_INCONSISTENT", "promo-svc sent no quote");
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
