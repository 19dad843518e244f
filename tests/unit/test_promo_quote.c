/* test_promo_quote.c -- unit tests of the quote engine: every promotion type, conditions,
 * thresholds at / one below / one above, rounding and exact splits, stacking, exclusivity and
 * priority, limits and budgets, coupons, shipping, and invariants over random carts (no line,
 * shipping or order is ever negative; the parts always add up). */
#include "promo_quote.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#define R(x) PROMO_REASON(x)
#define RULE(x) LOYALTY__V1__PROMOTION__RULE_##x
#define SRC(x) LOYALTY__V1__PROMO_SOURCE_KIND__PROMO_SOURCE_KIND_##x

static arena_t a;
static void setup(void) {
    arena_init(&a);
}
static void teardown(void) {
    arena_free(&a);
}
TestSuite(promo_quote, .init = setup, .fini = teardown);

static const int64_t NOW = 1764000000; /* 2025-11-24 */

/* ---- builders ---- */

#define CART_LINES_CAP 256
#define CANDS_CAP 64
#define COUPONS_CAP 8

typedef struct fixture {
    Loyalty__V1__PromoCart cart;
    Loyalty__V1__PromoCartLine *lines[CART_LINES_CAP];
    promo_candidate_t cands[CANDS_CAP];
    size_t n_cands;
    promo_coupon_input_t coupons[COUPONS_CAP];
    size_t n_coupons;
} fixture_t;

static fixture_t *fx_new(void) {
    fixture_t *f = arena_alloc(&a, sizeof *f);
    loyalty__v1__promo_cart__init(&f->cart);
    f->cart.member_id = "mbr_1";
    f->cart.tier_id = "gold";
    f->cart.tier_rank = 2;
    f->cart.segment = "ACTIVE";
    f->cart.store_id = "store-1";
    f->cart.lines = f->lines;
    return f;
}

static void fx_line(fixture_t *f, const char *sku, const char *category, int64_t qty,
                    int64_t unit_price) {
    Loyalty__V1__PromoCartLine *l = arena_alloc(&a, sizeof *l);
    loyalty__v1__promo_cart_line__init(l);
    l->line_id = arena_printf(&a, "L%zu", f->cart.n_lines + 1);
    l->sku = (char *)sku;
    l->category = (char *)category;
    l->quantity = qty;
    l->unit_price_cents = unit_price;
    f->lines[f->cart.n_lines++] = l;
}

static Loyalty__V1__PromoConditions *cond(Loyalty__V1__Promotion *p) {
    if (p->conditions == NULL) {
        p->conditions = arena_alloc(&a, sizeof *p->conditions);
        loyalty__v1__promo_conditions__init(p->conditions);
    }
    return p->conditions;
}

/* A new active automatic promotion; ids sort by age, so "p1" is older than "p2". */
static Loyalty__V1__Promotion *promo(fixture_t *f, const char *id, int priority) {
    Loyalty__V1__Promotion *p = arena_alloc(&a, sizeof *p);
    loyalty__v1__promotion__init(p);
    p->id = (char *)id;
    p->name = arena_printf(&a, "promotion %s", id);
    p->status = LOYALTY__V1__PROMO_STATUS__PROMO_STATUS_ACTIVE;
    p->trigger = LOYALTY__V1__PROMO_TRIGGER__PROMO_TRIGGER_AUTOMATIC;
    p->priority = priority;
    f->cands[f->n_cands++] = (promo_candidate_t){
        .promotion = p, .limit = {.blocked = R(UNSPECIFIED), .budget_left_cents = INT64_MAX}};
    return p;
}

static promo_candidate_t *cand_of(fixture_t *f, const Loyalty__V1__Promotion *p) {
    for (size_t i = 0; i < f->n_cands; i++) {
        if (f->cands[i].promotion == p) {
            return &f->cands[i];
        }
    }
    cr_assert_fail("no candidate");
    return NULL;
}

static void percent_off(Loyalty__V1__Promotion *p, int64_t bps, int64_t cap) {
    p->rule_case = RULE(PERCENT_OFF);
    p->percent_off = arena_alloc(&a, sizeof *p->percent_off);
    loyalty__v1__promo_percent_off__init(p->percent_off);
    p->percent_off->percent_off_bps = bps;
    p->percent_off->max_discount_cents = cap;
}

static void amount_off(Loyalty__V1__Promotion *p, int64_t cents) {
    p->rule_case = RULE(AMOUNT_OFF);
    p->amount_off = arena_alloc(&a, sizeof *p->amount_off);
    loyalty__v1__promo_amount_off__init(p->amount_off);
    p->amount_off->amount_off_cents = cents;
}

static void spend_steps(Loyalty__V1__Promotion *p, size_t n, const int64_t (*steps)[2]) {
    p->rule_case = RULE(SPEND_THRESHOLD);
    p->spend_threshold = arena_alloc(&a, sizeof *p->spend_threshold);
    loyalty__v1__promo_spend_threshold__init(p->spend_threshold);
    p->spend_threshold->steps = arena_alloc(&a, n * sizeof *p->spend_threshold->steps);
    for (size_t i = 0; i < n; i++) {
        Loyalty__V1__PromoSpendStep *s = arena_alloc(&a, sizeof *s);
        loyalty__v1__promo_spend_step__init(s);
        s->threshold_cents = steps[i][0];
        s->discount_cents = steps[i][1];
        p->spend_threshold->steps[i] = s;
    }
    p->spend_threshold->n_steps = n;
}

static void free_shipping(Loyalty__V1__Promotion *p, int64_t cap) {
    p->rule_case = RULE(FREE_SHIPPING);
    p->free_shipping = arena_alloc(&a, sizeof *p->free_shipping);
    loyalty__v1__promo_free_shipping__init(p->free_shipping);
    p->free_shipping->max_discount_cents = cap;
}

static void free_gift(Loyalty__V1__Promotion *p, const char *sku, int64_t qty, int64_t value) {
    p->rule_case = RULE(FREE_GIFT);
    p->free_gift = arena_alloc(&a, sizeof *p->free_gift);
    loyalty__v1__promo_free_gift__init(p->free_gift);
    p->free_gift->gifts = arena_alloc(&a, sizeof *p->free_gift->gifts);
    Loyalty__V1__PromoGift *g = arena_alloc(&a, sizeof *g);
    loyalty__v1__promo_gift__init(g);
    g->sku = (char *)sku;
    g->quantity = qty;
    g->value_cents = value;
    p->free_gift->gifts[0] = g;
    p->free_gift->n_gifts = 1;
}

static void tier_price(Loyalty__V1__Promotion *p, const char *sku, const char *tier, int64_t unit) {
    if (p->rule_case != RULE(TIER_PRICE)) {
        p->rule_case = RULE(TIER_PRICE);
        p->tier_price = arena_alloc(&a, sizeof *p->tier_price);
        loyalty__v1__promo_tier_price__init(p->tier_price);
        p->tier_price->prices = arena_alloc(&a, 16 * sizeof *p->tier_price->prices);
    }
    Loyalty__V1__PromoTierPriceEntry *e = arena_alloc(&a, sizeof *e);
    loyalty__v1__promo_tier_price_entry__init(e);
    e->sku = (char *)sku;
    e->tier_id = (char *)tier;
    e->unit_price_cents = unit;
    p->tier_price->prices[p->tier_price->n_prices++] = e;
}

static void bxgy(Loyalty__V1__Promotion *p, int buy, int get, int64_t bps, int max_apps) {
    p->rule_case = RULE(BUY_X_GET_Y);
    p->buy_x_get_y = arena_alloc(&a, sizeof *p->buy_x_get_y);
    loyalty__v1__promo_buy_xget_y__init(p->buy_x_get_y);
    p->buy_x_get_y->buy_quantity = buy;
    p->buy_x_get_y->get_quantity = get;
    p->buy_x_get_y->get_discount_bps = bps;
    p->buy_x_get_y->max_applications = max_apps;
}

static Loyalty__V1__PromoCoupon *coupon(fixture_t *f, const char *id,
                                        Loyalty__V1__PromoCouponKind kind, int64_t value,
                                        int64_t min_spend) {
    Loyalty__V1__PromoCoupon *c = arena_alloc(&a, sizeof *c);
    loyalty__v1__promo_coupon__init(c);
    c->id = (char *)id;
    c->member_id = "mbr_1";
    c->name = arena_printf(&a, "coupon %s", id);
    c->kind = kind;
    if (kind == LOYALTY__V1__PROMO_COUPON_KIND__PROMO_COUPON_KIND_AMOUNT_OFF) {
        c->amount_off_cents = value;
    } else if (kind == LOYALTY__V1__PROMO_COUPON_KIND__PROMO_COUPON_KIND_PERCENT_OFF) {
        c->percent_off_bps = value;
    } else {
        c->max_discount_cents = value;
    }
    c->min_spend_cents = min_spend;
    c->status = LOYALTY__V1__PROMO_COUPON_STATUS__PROMO_COUPON_STATUS_AVAILABLE;
    c->valid_from_at = NOW - 86400;
    c->valid_until_at = NOW + 86400;
    f->coupons[f->n_coupons++] = (promo_coupon_input_t){.coupon_id = (char *)id, .coupon = c};
    return c;
}

#define AMOUNT_COUPON LOYALTY__V1__PROMO_COUPON_KIND__PROMO_COUPON_KIND_AMOUNT_OFF
#define PERCENT_COUPON LOYALTY__V1__PROMO_COUPON_KIND__PROMO_COUPON_KIND_PERCENT_OFF
#define SHIPPING_COUPON LOYALTY__V1__PROMO_COUPON_KIND__PROMO_COUPON_KIND_FREE_SHIPPING

static void check_invariants(const fixture_t *f, const Loyalty__V1__PromoQuoteResult *r);

static Loyalty__V1__PromoQuoteResult *quote_at(fixture_t *f, int64_t at) {
    promo_quote_input_t in = {.cart = &f->cart,
                              .at = at,
                              .candidates = f->cands,
                              .n_candidates = f->n_cands,
                              .coupons = f->coupons,
                              .n_coupons = f->n_coupons};
    Loyalty__V1__PromoQuoteResult *r = NULL;
    status_t st = promo_quote(&a, &in, &r);
    cr_assert_eq(st.code, STATUS_OK, "%s", st.message);
    check_invariants(f, r);
    return r;
}

static Loyalty__V1__PromoQuoteResult *quote(fixture_t *f) {
    return quote_at(f, NOW);
}

static const Loyalty__V1__PromoConsidered *considered(const Loyalty__V1__PromoQuoteResult *r,
                                                      const char *id) {
    for (size_t i = 0; i < r->n_considered; i++) {
        const Loyalty__V1__PromoConsidered *c = r->considered[i];
        if (strcmp(c->promotion_id, id) == 0 || strcmp(c->coupon_id, id) == 0) {
            return c;
        }
    }
    cr_assert_fail("%s was not considered", id);
    return NULL;
}

#define assert_reason(r, id, want)                                                                 \
    do {                                                                                           \
        const Loyalty__V1__PromoConsidered *c_ = considered(r, id);                                \
        cr_assert_eq(c_->reason, want, "%s: got %s, want %s", id, promo_reason_name(c_->reason),   \
                     promo_reason_name(want));                                                     \
        cr_assert_eq(c_->applied, (want) == R(APPLIED));                                           \
    } while (0)

/* Every quote, whatever its input: lines never negative, parts add up exactly, totals agree,
 * every candidate and coupon is explained once. */
static void check_invariants(const fixture_t *f, const Loyalty__V1__PromoQuoteResult *r) {
    int64_t subtotal = 0, tier = 0, promo_d = 0, coupon_d = 0, merch = 0;
    cr_assert_eq(r->n_lines, f->cart.n_lines);
    for (size_t i = 0; i < r->n_lines; i++) {
        const Loyalty__V1__PromoQuoteLine *l = r->lines[i];
        cr_assert_geq(l->final_amount_cents, 0);
        cr_assert_geq(l->tier_discount_cents, 0);
        cr_assert_geq(l->promotion_discount_cents, 0);
        cr_assert_geq(l->coupon_discount_cents, 0);
        cr_assert_eq(l->list_amount_cents, l->quantity * f->cart.lines[i]->unit_price_cents);
        cr_assert_eq(l->final_amount_cents, l->list_amount_cents - l->tier_discount_cents -
                                                l->promotion_discount_cents -
                                                l->coupon_discount_cents);
        int64_t sum = 0;
        for (size_t k = 0; k < l->n_discounts; k++) {
            cr_assert_gt(l->discounts[k]->amount_cents, 0);
            sum += l->discounts[k]->amount_cents;
        }
        cr_assert_eq(sum, l->list_amount_cents - l->final_amount_cents);
        subtotal += l->list_amount_cents;
        tier += l->tier_discount_cents;
        promo_d += l->promotion_discount_cents;
        coupon_d += l->coupon_discount_cents;
        merch += l->final_amount_cents;
    }
    cr_assert_eq(r->subtotal_cents, subtotal);
    cr_assert_eq(r->tier_discount_cents, tier);
    cr_assert_eq(r->promotion_discount_cents, promo_d);
    cr_assert_eq(r->coupon_discount_cents, coupon_d);
    cr_assert_eq(r->merchandise_cents, merch);
    cr_assert_geq(r->shipping_discount_cents, 0);
    cr_assert_leq(r->shipping_discount_cents, r->shipping_cents);
    cr_assert_eq(r->total_cents, merch + r->shipping_cents - r->shipping_discount_cents);
    cr_assert_geq(r->total_cents, 0);
    cr_assert_eq(r->n_considered, f->n_cands + f->n_coupons);
    int64_t applied_promo = 0, applied_coupon = 0, applied_ship = 0;
    for (size_t i = 0; i < r->n_considered; i++) {
        const Loyalty__V1__PromoConsidered *c = r->considered[i];
        cr_assert_eq(c->applied, c->reason == R(APPLIED));
        cr_assert_neq(c->reason, R(UNSPECIFIED));
        if (!c->applied) {
            cr_assert_eq(c->discount_cents + c->shipping_discount_cents, 0);
            continue;
        }
        applied_ship += c->shipping_discount_cents;
        if (c->kind == SRC(COUPON)) {
            applied_coupon += c->discount_cents;
        } else if (c->type != LOYALTY__V1__PROMO_TYPE__PROMO_TYPE_TIER_PRICE) {
            applied_promo += c->discount_cents;
        }
    }
    cr_assert_eq(applied_promo, promo_d);
    cr_assert_eq(applied_coupon, coupon_d);
    cr_assert_eq(applied_ship, r->shipping_discount_cents);
}

/* ---- no promotions, the tier step ---- */

Test(promo_quote, empty_cart_of_promotions_prices_list_plus_shipping) {
    /* Goal: without promotions, coupons or member discount the quote is the list price. */
    fixture_t *f = fx_new();
    fx_line(f, "A", "shoes", 2, 1999);
    fx_line(f, "B", "", 1, 501);
    f->cart.shipping_cents = 700;
    Loyalty__V1__PromoQuoteResult *r = quote(f);
    cr_assert_eq(r->subtotal_cents, 4499);
    cr_assert_eq(r->merchandise_cents, 4499);
    cr_assert_eq(r->total_cents, 5199);
    cr_assert_eq(r->n_considered, 0);
    cr_assert_eq(r->priced_at, NOW);
}

Test(promo_quote, member_discount_is_floored_per_line) {
    /* Goal: tier_discount_bps is applied per line and rounded down: 999 at 10% gives 99 (not
     * 100), 1 gives 0, 1000 gives 100 exactly. */
    fixture_t *f = fx_new();
    f->cart.tier_discount_bps = 1000;
    fx_line(f, "A", "", 3, 333); /* 999 */
    fx_line(f, "B", "", 1, 1);   /* 1 */
    fx_line(f, "C", "", 4, 250); /* 1000 */
    Loyalty__V1__PromoQuoteResult *r = quote(f);
    cr_assert_eq(r->lines[0]->tier_discount_cents, 99);
    cr_assert_eq(r->lines[1]->tier_discount_cents, 0);
    cr_assert_eq(r->lines[2]->tier_discount_cents, 100);
    cr_assert_eq(r->lines[0]->n_discounts, 1);
    cr_assert_eq(r->lines[0]->discounts[0]->kind, SRC(TIER_DISCOUNT));
    cr_assert_eq(r->lines[1]->n_discounts, 0);
    cr_assert_eq(r->tier_discount_cents, 199);
    cr_assert_eq(r->merchandise_cents, 1801);
    f->cart.tier_discount_bps = 10000; /* 100%: everything free, never negative */
    r = quote(f);
    cr_assert_eq(r->merchandise_cents, 0);
}

/* ---- PERCENT_OFF ---- */

Test(promo_quote, percent_off_floors_and_splits_exactly) {
    /* Goal: 10% of 6333 = 633.3 -> 633, split 1000/2000/3333 by largest remainder:
     * 99.95 -> 100, 199.9 -> 200, 333.2 -> 333. */
    fixture_t *f = fx_new();
    fx_line(f, "A", "", 1, 1000);
    fx_line(f, "B", "", 1, 2000);
    fx_line(f, "C", "", 1, 3333);
    percent_off(promo(f, "p1", 0), 1000, 0);
    Loyalty__V1__PromoQuoteResult *r = quote(f);
    assert_reason(r, "p1", R(APPLIED));
    cr_assert_eq(considered(r, "p1")->discount_cents, 633);
    cr_assert_eq(r->lines[0]->promotion_discount_cents, 100);
    cr_assert_eq(r->lines[1]->promotion_discount_cents, 200);
    cr_assert_eq(r->lines[2]->promotion_discount_cents, 333);
    cr_assert_eq(r->merchandise_cents, 6333 - 633);
}

Test(promo_quote, percent_off_remainder_ties_go_to_the_earlier_line) {
    /* Goal: 10% of 3 x 5 = 1.5 -> 1 cent; three equal remainders: the first line gets it. */
    fixture_t *f = fx_new();
    fx_line(f, "A", "", 1, 5);
    fx_line(f, "B", "", 1, 5);
    fx_line(f, "C", "", 1, 5);
    percent_off(promo(f, "p1", 0), 1000, 0);
    Loyalty__V1__PromoQuoteResult *r = quote(f);
    cr_assert_eq(considered(r, "p1")->discount_cents, 1);
    cr_assert_eq(r->lines[0]->promotion_discount_cents, 1);
    cr_assert_eq(r->lines[1]->promotion_discount_cents, 0);
    cr_assert_eq(r->lines[2]->promotion_discount_cents, 0);
}

Test(promo_quote, percent_off_cap_at_below_above) {
    /* Goal: the cap bounds the discount: 20% of 10000 = 2000 with caps 1999, 2000, 2001. */
    const int64_t caps[] = {1999, 2000, 2001};
    const int64_t want[] = {1999, 2000, 2000};
    for (int i = 0; i < 3; i++) {
        fixture_t *f = fx_new();
        fx_line(f, "A", "", 1, 10000);
        percent_off(promo(f, "p1", 0), 2000, caps[i]);
        cr_assert_eq(considered(quote(f), "p1")->discount_cents, want[i]);
    }
}

Test(promo_quote, percent_off_too_small_to_give_a_cent_is_no_discount) {
    /* Goal: 1% of 99 cents floors to 0: NO_DISCOUNT, not an applied promotion of 0. */
    fixture_t *f = fx_new();
    fx_line(f, "A", "", 1, 99);
    percent_off(promo(f, "p1", 0), 100, 0);
    assert_reason(quote(f), "p1", R(NO_DISCOUNT));
    f->lines[0]->unit_price_cents = 100;
    assert_reason(quote(f), "p1", R(APPLIED));
}

Test(promo_quote, min_spend_at_below_above) {
    /* Goal: min_spend 10000 qualifies at 10000 and 10001, not at 9999. */
    const int64_t prices[] = {9999, 10000, 10001};
    const promo_reason_t want[] = {R(BELOW_MIN_SPEND), R(APPLIED), R(APPLIED)};
    for (int i = 0; i < 3; i++) {
        fixture_t *f = fx_new();
        fx_line(f, "A", "", 1, prices[i]);
        Loyalty__V1__Promotion *p = promo(f, "p1", 0);
        percent_off(p, 500, 0);
        cond(p)->min_spend_cents = 10000;
        assert_reason(quote(f), "p1", want[i]);
    }
}

Test(promo_quote, min_spend_counts_the_amount_after_the_member_discount) {
    /* Goal: thresholds see the tier step: 10000 list at 10% member discount is 9000 < 9001. */
    fixture_t *f = fx_new();
    f->cart.tier_discount_bps = 1000;
    fx_line(f, "A", "", 1, 10000);
    Loyalty__V1__Promotion *p = promo(f, "p1", 0);
    amount_off(p, 100);
    cond(p)->min_spend_cents = 9001;
    assert_reason(quote(f), "p1", R(BELOW_MIN_SPEND));
    cond(p)->min_spend_cents = 9000;
    assert_reason(quote(f), "p1", R(APPLIED));
}

Test(promo_quote, shipping_never_counts_toward_a_threshold) {
    /* Goal: 9000 of goods and 1000 of shipping do not reach a 10000 threshold. */
    fixture_t *f = fx_new();
    fx_line(f, "A", "", 1, 9000);
    f->cart.shipping_cents = 1000;
    Loyalty__V1__Promotion *p = promo(f, "p1", 0);
    amount_off(p, 500);
    cond(p)->min_spend_cents = 10000;
    assert_reason(quote(f), "p1", R(BELOW_MIN_SPEND));
}

/* ---- AMOUNT_OFF ---- */

Test(promo_quote, amount_off_never_exceeds_the_eligible_amount) {
    /* Goal: 500 off a 300 cart takes 300: the merchandise is 0, never negative; shipping
     * remains to pay. */
    fixture_t *f = fx_new();
    fx_line(f, "A", "", 1, 100);
    fx_line(f, "B", "", 1, 200);
    f->cart.shipping_cents = 450;
    amount_off(promo(f, "p1", 0), 500);
    Loyalty__V1__PromoQuoteResult *r = quote(f);
    cr_assert_eq(considered(r, "p1")->discount_cents, 300);
    cr_assert_eq(r->merchandise_cents, 0);
    cr_assert_eq(r->total_cents, 450);
}

Test(promo_quote, amount_off_split_by_amounts) {
    /* Goal: 100 off 1000 + 2000 + 7000 gives 10 / 20 / 70. */
    fixture_t *f = fx_new();
    fx_line(f, "A", "", 1, 1000);
    fx_line(f, "B", "", 2, 1000);
    fx_line(f, "C", "", 7, 1000);
    amount_off(promo(f, "p1", 0), 100);
    Loyalty__V1__PromoQuoteResult *r = quote(f);
    cr_assert_eq(r->lines[0]->promotion_discount_cents, 10);
    cr_assert_eq(r->lines[1]->promotion_discount_cents, 20);
    cr_assert_eq(r->lines[2]->promotion_discount_cents, 70);
}

/* ---- SPEND_THRESHOLD ---- */

Test(promo_quote, spend_threshold_steps_at_below_above) {
    /* Goal: "spend 200 get 20, spend 500 get 60": each boundary at, one below, one above. */
    const int64_t steps[][2] = {{20000, 2000}, {50000, 6000}};
    const int64_t spend[] = {19999, 20000, 20001, 49999, 50000, 50001};
    const int64_t want[] = {0, 2000, 2000, 2000, 6000, 6000};
    for (int i = 0; i < 6; i++) {
        fixture_t *f = fx_new();
        fx_line(f, "A", "", 1, spend[i]);
        spend_steps(promo(f, "p1", 0), 2, steps);
        Loyalty__V1__PromoQuoteResult *r = quote(f);
        if (want[i] == 0) {
            assert_reason(r, "p1", R(BELOW_MIN_SPEND));
        } else {
            assert_reason(r, "p1", R(APPLIED));
            cr_assert_eq(considered(r, "p1")->discount_cents, want[i], "spend %lld",
                         (long long)spend[i]);
        }
    }
}

Test(promo_quote, spend_threshold_counts_only_eligible_lines) {
    /* Goal: excluded lines do not count toward the step and are not discounted. */
    const int64_t steps[][2] = {{20000, 2000}};
    fixture_t *f = fx_new();
    fx_line(f, "A", "shoes", 1, 15000);
    fx_line(f, "GIFTCARD", "giftcards", 1, 10000);
    Loyalty__V1__Promotion *p = promo(f, "p1", 0);
    spend_steps(p, 1, steps);
    cond(p)->exclude_categories = (char *[]){"giftcards"};
    cond(p)->n_exclude_categories = 1;
    assert_reason(quote(f), "p1", R(BELOW_MIN_SPEND));
    f->lines[0]->unit_price_cents = 20000;
    Loyalty__V1__PromoQuoteResult *r = quote(f);
    assert_reason(r, "p1", R(APPLIED));
    cr_assert_eq(r->lines[0]->promotion_discount_cents, 2000);
    cr_assert_eq(r->lines[1]->promotion_discount_cents, 0);
}

/* ---- FREE_SHIPPING ---- */

Test(promo_quote, free_shipping_with_and_without_cap) {
    /* Goal: all shipping is free, or up to the cap; no shipping is NO_DISCOUNT. */
    fixture_t *f = fx_new();
    fx_line(f, "A", "", 1, 5000);
    f->cart.shipping_cents = 800;
    Loyalty__V1__Promotion *p = promo(f, "p1", 0);
    free_shipping(p, 0);
    Loyalty__V1__PromoQuoteResult *r = quote(f);
    assert_reason(r, "p1", R(APPLIED));
    cr_assert_eq(r->shipping_discount_cents, 800);
    cr_assert_eq(considered(r, "p1")->shipping_discount_cents, 800);
    cr_assert_eq(r->total_cents, 5000);
    p->free_shipping->max_discount_cents = 500;
    r = quote(f);
    cr_assert_eq(r->shipping_discount_cents, 500);
    cr_assert_eq(r->total_cents, 5300);
    f->cart.shipping_cents = 0;
    assert_reason(quote(f), "p1", R(NO_DISCOUNT));
}

Test(promo_quote, second_free_shipping_has_nothing_left) {
    /* Goal: shipping is discounted once; a second free-shipping promotion finds nothing. */
    fixture_t *f = fx_new();
    fx_line(f, "A", "", 1, 5000);
    f->cart.shipping_cents = 800;
    free_shipping(promo(f, "p1", 5), 0);
    free_shipping(promo(f, "p2", 1), 0);
    Loyalty__V1__PromoQuoteResult *r = quote(f);
    assert_reason(r, "p1", R(APPLIED));
    assert_reason(r, "p2", R(NO_DISCOUNT));
    cr_assert_eq(r->shipping_discount_cents, 800);
}

/* ---- FREE_GIFT ---- */

Test(promo_quote, free_gift_adds_a_gift_line_when_the_threshold_is_met) {
    /* Goal: the gift line appears at the threshold and not one cent below. */
    fixture_t *f = fx_new();
    fx_line(f, "A", "", 1, 29999);
    Loyalty__V1__Promotion *p = promo(f, "p1", 0);
    free_gift(p, "TOTE-BAG", 1, 1500);
    cond(p)->min_spend_cents = 30000;
    Loyalty__V1__PromoQuoteResult *r = quote(f);
    assert_reason(r, "p1", R(BELOW_MIN_SPEND));
    cr_assert_eq(r->n_gift_lines, 0);
    f->lines[0]->unit_price_cents = 30000;
    r = quote(f);
    assert_reason(r, "p1", R(APPLIED));
    cr_assert_eq(r->n_gift_lines, 1);
    cr_assert_str_eq(r->gift_lines[0]->sku, "TOTE-BAG");
    cr_assert_eq(r->gift_lines[0]->quantity, 1);
    cr_assert_str_eq(r->gift_lines[0]->promotion_id, "p1");
    cr_assert_eq(r->merchandise_cents, 30000, "a gift costs the order nothing");
}

/* ---- TIER_PRICE ---- */

Test(promo_quote, member_price_or_member_discount_whichever_is_lower) {
    /* Goal: list 10000, member discount 10% (9000). Member price 8500 wins; 9500 loses
     * (NO_DISCOUNT); 9000 ties and the member discount is kept. */
    const int64_t prices[] = {8500, 9500, 9000};
    const int64_t want_amount[] = {8500, 9000, 9000};
    const promo_reason_t want[] = {R(APPLIED), R(NO_DISCOUNT), R(NO_DISCOUNT)};
    for (int i = 0; i < 3; i++) {
        fixture_t *f = fx_new();
        f->cart.tier_discount_bps = 1000;
        fx_line(f, "A", "", 1, 10000);
        tier_price(promo(f, "p1", 0), "A", "gold", prices[i]);
        Loyalty__V1__PromoQuoteResult *r = quote(f);
        assert_reason(r, "p1", want[i]);
        cr_assert_eq(r->merchandise_cents, want_amount[i]);
        cr_assert_eq(r->tier_discount_cents, 10000 - want_amount[i]);
        cr_assert_eq(r->promotion_discount_cents, 0, "member prices count in the tier step");
        cr_assert_eq(r->lines[0]->discounts[0]->kind,
                     want[i] == R(APPLIED) ? SRC(PROMOTION) : SRC(TIER_DISCOUNT));
    }
}

Test(promo_quote, member_price_needs_the_members_tier) {
    /* Goal: a price list without the member's tier is TIER_NOT_ELIGIBLE; a tier with no price
     * for the cart's skus is NO_ELIGIBLE_ITEMS; quantity multiplies the member price. */
    fixture_t *f = fx_new();
    fx_line(f, "A", "", 3, 1000);
    Loyalty__V1__Promotion *p = promo(f, "p1", 0);
    tier_price(p, "A", "silver", 800);
    assert_reason(quote(f), "p1", R(TIER_NOT_ELIGIBLE));
    tier_price(p, "B", "gold", 700);
    assert_reason(quote(f), "p1", R(NO_ELIGIBLE_ITEMS));
    tier_price(p, "A", "gold", 750);
    Loyalty__V1__PromoQuoteResult *r = quote(f);
    assert_reason(r, "p1", R(APPLIED));
    cr_assert_eq(considered(r, "p1")->discount_cents, 750);
    cr_assert_eq(r->merchandise_cents, 2250);
}

Test(promo_quote, lowest_member_price_wins_among_price_lists) {
    /* Goal: two price lists for the same sku: the lower price wins, the other gives nothing. */
    fixture_t *f = fx_new();
    fx_line(f, "A", "", 1, 1000);
    tier_price(promo(f, "p1", 9), "A", "gold", 900);
    tier_price(promo(f, "p2", 0), "A", "gold", 800);
    Loyalty__V1__PromoQuoteResult *r = quote(f);
    assert_reason(r, "p1", R(NO_DISCOUNT));
    assert_reason(r, "p2", R(APPLIED));
    cr_assert_eq(r->merchandise_cents, 800);
}

Test(promo_quote, member_price_over_budget_falls_back) {
    /* Goal: a price list whose discount exceeds its remaining budget is not applied and the
     * line falls back to the next best price. */
    fixture_t *f = fx_new();
    fx_line(f, "A", "", 2, 1000);
    Loyalty__V1__Promotion *p1 = promo(f, "p1", 0);
    tier_price(p1, "A", "gold", 800); /* 400 off */
    Loyalty__V1__Promotion *p2 = promo(f, "p2", 0);
    tier_price(p2, "A", "gold", 900); /* 200 off */
    cand_of(f, p1)->limit.budget_left_cents = 399;
    Loyalty__V1__PromoQuoteResult *r = quote(f);
    assert_reason(r, "p1", R(BUDGET_EXHAUSTED));
    assert_reason(r, "p2", R(APPLIED));
    cr_assert_eq(r->merchandise_cents, 1800);
    cand_of(f, p1)->limit.budget_left_cents = 400;
    r = quote(f);
    assert_reason(r, "p1", R(APPLIED));
    cr_assert_eq(r->merchandise_cents, 1600);
}

/* ---- BUY_X_GET_Y ---- */

Test(promo_quote, buy_two_get_one_free_takes_the_cheapest_unit) {
    /* Goal: 2 x 1000 and 1 x 500: one bundle of 3, the 500 unit is free. */
    fixture_t *f = fx_new();
    fx_line(f, "A", "tees", 2, 1000);
    fx_line(f, "B", "tees", 1, 500);
    bxgy(promo(f, "p1", 0), 2, 1, 10000, 0);
    Loyalty__V1__PromoQuoteResult *r = quote(f);
    assert_reason(r, "p1", R(APPLIED));
    cr_assert_eq(considered(r, "p1")->discount_cents, 500);
    cr_assert_eq(r->lines[1]->final_amount_cents, 0);
    cr_assert_eq(r->lines[0]->final_amount_cents, 2000);
}

Test(promo_quote, buy_x_get_y_complete_bundles_only) {
    /* Goal: units 2, 3, 5, 6 of one sku at 100 give 0, 1, 1, 2 free units. */
    const int64_t qty[] = {2, 3, 5, 6};
    const int64_t want[] = {0, 100, 100, 200};
    for (int i = 0; i < 4; i++) {
        fixture_t *f = fx_new();
        fx_line(f, "A", "", qty[i], 100);
        bxgy(promo(f, "p1", 0), 2, 1, 10000, 0);
        Loyalty__V1__PromoQuoteResult *r = quote(f);
        if (want[i] == 0) {
            assert_reason(r, "p1", R(NOT_ENOUGH_ITEMS));
        } else {
            cr_assert_eq(considered(r, "p1")->discount_cents, want[i], "qty %lld",
                         (long long)qty[i]);
        }
    }
}

Test(promo_quote, buy_x_get_y_half_price_cap_and_rounding) {
    /* Goal: "second at half price" floors per line (333.33 * 50% of one unit of a 1000/3
     * line: floor(1000 * 1 * 5000 / (3 * 10000)) = 166); max_applications bounds bundles. */
    fixture_t *f = fx_new();
    fx_line(f, "A", "", 3, 333); /* 999 */
    Loyalty__V1__Promotion *p = promo(f, "p1", 0);
    bxgy(p, 1, 1, 5000, 0);
    cr_assert_eq(considered(quote(f), "p1")->discount_cents, 166); /* 999*1*5000/30000=166.5 */
    f->lines[0]->quantity = 10;
    f->lines[0]->unit_price_cents = 100;
    cr_assert_eq(considered(quote(f), "p1")->discount_cents, 250); /* 5 units at half */
    p->buy_x_get_y->max_applications = 2;
    cr_assert_eq(considered(quote(f), "p1")->discount_cents, 100);
}

Test(promo_quote, buy_x_get_y_only_counts_eligible_units) {
    /* Goal: units outside the included category neither count nor become free. */
    fixture_t *f = fx_new();
    fx_line(f, "A", "tees", 2, 1000);
    fx_line(f, "CHEAP", "socks", 5, 100);
    Loyalty__V1__Promotion *p = promo(f, "p1", 0);
    bxgy(p, 2, 1, 10000, 0);
    cond(p)->include_categories = (char *[]){"tees"};
    cond(p)->n_include_categories = 1;
    assert_reason(quote(f), "p1", R(NOT_ENOUGH_ITEMS));
    f->lines[0]->quantity = 3;
    Loyalty__V1__PromoQuoteResult *r = quote(f);
    cr_assert_eq(considered(r, "p1")->discount_cents, 1000);
    cr_assert_eq(r->lines[1]->promotion_discount_cents, 0);
}

/* ---- conditions ---- */

Test(promo_quote, time_window_is_start_inclusive_end_exclusive) {
    /* Goal: at start_at - 1 NOT_STARTED, at start_at applied, at end_at - 1 applied, at end_at
     * ENDED. */
    fixture_t *f = fx_new();
    fx_line(f, "A", "", 1, 1000);
    Loyalty__V1__Promotion *p = promo(f, "p1", 0);
    amount_off(p, 100);
    p->start_at = NOW;
    p->end_at = NOW + 3600;
    assert_reason(quote_at(f, NOW - 1), "p1", R(NOT_STARTED));
    assert_reason(quote_at(f, NOW), "p1", R(APPLIED));
    assert_reason(quote_at(f, NOW + 3599), "p1", R(APPLIED));
    assert_reason(quote_at(f, NOW + 3600), "p1", R(ENDED));
    p->status = LOYALTY__V1__PROMO_STATUS__PROMO_STATUS_PAUSED;
    assert_reason(quote_at(f, NOW), "p1", R(PAUSED));
}

Test(promo_quote, tier_segment_and_store_conditions) {
    /* Goal: each audience condition refuses with its own reason; segments ignore case;
     * min_tier_rank is inclusive. */
    fixture_t *f = fx_new();
    fx_line(f, "A", "", 1, 1000);
    Loyalty__V1__Promotion *p = promo(f, "p1", 0);
    amount_off(p, 100);
    cond(p)->tier_ids = (char *[]){"silver", "platinum"};
    cond(p)->n_tier_ids = 2;
    assert_reason(quote(f), "p1", R(TIER_NOT_ELIGIBLE));
    cond(p)->tier_ids = (char *[]){"silver", "gold"};
    assert_reason(quote(f), "p1", R(APPLIED));
    cond(p)->min_tier_rank = 3;
    assert_reason(quote(f), "p1", R(TIER_NOT_ELIGIBLE));
    cond(p)->min_tier_rank = 2;
    assert_reason(quote(f), "p1", R(APPLIED));
    cond(p)->segments = (char *[]){"new"};
    cond(p)->n_segments = 1;
    assert_reason(quote(f), "p1", R(SEGMENT_NOT_ELIGIBLE));
    cond(p)->segments = (char *[]){"active"};
    assert_reason(quote(f), "p1", R(APPLIED));
    cond(p)->store_ids = (char *[]){"store-2"};
    cond(p)->n_store_ids = 1;
    assert_reason(quote(f), "p1", R(STORE_NOT_ELIGIBLE));
    f->cart.store_id = "store-2";
    assert_reason(quote(f), "p1", R(APPLIED));
}

Test(promo_quote, include_and_exclude_products) {
    /* Goal: include by sku or category, exclusions win over inclusions; nothing eligible is
     * NO_ELIGIBLE_ITEMS. */
    fixture_t *f = fx_new();
    fx_line(f, "A", "shoes", 1, 1000);
    fx_line(f, "B", "shoes", 1, 1000);
    fx_line(f, "C", "bags", 1, 1000);
    Loyalty__V1__Promotion *p = promo(f, "p1", 0);
    percent_off(p, 1000, 0);
    cond(p)->include_categories = (char *[]){"shoes"};
    cond(p)->n_include_categories = 1;
    cond(p)->include_skus = (char *[]){"C"};
    cond(p)->n_include_skus = 1;
    cond(p)->exclude_skus = (char *[]){"B"};
    cond(p)->n_exclude_skus = 1;
    Loyalty__V1__PromoQuoteResult *r = quote(f);
    cr_assert_eq(r->lines[0]->promotion_discount_cents, 100);
    cr_assert_eq(r->lines[1]->promotion_discount_cents, 0);
    cr_assert_eq(r->lines[2]->promotion_discount_cents, 100);
    cond(p)->exclude_categories = (char *[]){"shoes", "bags"};
    cond(p)->n_exclude_categories = 2;
    assert_reason(quote(f), "p1", R(NO_ELIGIBLE_ITEMS));
}

/* ---- stacking, exclusivity, priority ---- */

Test(promo_quote, stackable_promotions_apply_by_priority_on_what_is_left) {
    /* Goal: the higher priority goes first and the next one sees the reduced amount: 10% of
     * 10000 leaves 9000, below a 9500 threshold; swapping priorities applies both. */
    fixture_t *f = fx_new();
    fx_line(f, "A", "", 1, 10000);
    Loyalty__V1__Promotion *pct = promo(f, "p1", 10);
    percent_off(pct, 1000, 0);
    Loyalty__V1__Promotion *amt = promo(f, "p2", 5);
    amount_off(amt, 500);
    cond(amt)->min_spend_cents = 9500;
    Loyalty__V1__PromoQuoteResult *r = quote(f);
    assert_reason(r, "p1", R(APPLIED));
    assert_reason(r, "p2", R(BELOW_MIN_SPEND));
    cr_assert_str_eq(r->considered[0]->promotion_id, pct->id, "listed by priority");
    amt->priority = 20;
    r = quote(f);
    assert_reason(r, "p1", R(APPLIED));
    assert_reason(r, "p2", R(APPLIED));
    cr_assert_eq(considered(r, "p1")->discount_cents, 950); /* 10% of 9500 */
    cr_assert_eq(r->merchandise_cents, 8550);
    cr_assert_str_eq(r->considered[0]->promotion_id, "p2");
}

Test(promo_quote, equal_priority_goes_oldest_first) {
    /* Goal: on equal priority the older promotion (smaller id) is applied first. */
    fixture_t *f = fx_new();
    fx_line(f, "A", "", 1, 10000);
    amount_off(promo(f, "p2", 0), 1000);
    percent_off(promo(f, "p1", 0), 1000, 0);
    Loyalty__V1__PromoQuoteResult *r = quote(f);
    cr_assert_str_eq(r->considered[0]->promotion_id, "p1");
    cr_assert_eq(considered(r, "p1")->discount_cents, 1000);
    cr_assert_eq(considered(r, "p2")->discount_cents, 1000);
    cr_assert_eq(r->merchandise_cents, 8000);
}

Test(promo_quote, exclusive_wins_only_when_better_for_the_customer) {
    /* Goal: stackable 10% + 500 (1500 off 10000) against an exclusive 2000 off: the exclusive
     * wins and the stackables are NOT_STACKABLE; at 1000 off the stackables win; at exactly
     * 1500 the tie keeps the stackable set. */
    const int64_t exclusive_off[] = {2000, 1000, 1500};
    for (int i = 0; i < 3; i++) {
        fixture_t *f = fx_new();
        fx_line(f, "A", "", 1, 10000);
        percent_off(promo(f, "p1", 10), 1000, 0);
        amount_off(promo(f, "p2", 5), 500);
        Loyalty__V1__Promotion *x = promo(f, "p3", 0);
        amount_off(x, exclusive_off[i]);
        x->exclusive = true;
        Loyalty__V1__PromoQuoteResult *r = quote(f);
        bool exclusive_wins = i == 0;
        assert_reason(r, "p1", exclusive_wins ? R(NOT_STACKABLE) : R(APPLIED));
        assert_reason(r, "p2", exclusive_wins ? R(NOT_STACKABLE) : R(APPLIED));
        assert_reason(r, "p3", exclusive_wins ? R(APPLIED) : R(NOT_STACKABLE));
        cr_assert_eq(r->merchandise_cents, exclusive_wins ? 8000 : 8500);
    }
}

Test(promo_quote, exclusive_against_exclusive_and_priority_breaks_ties) {
    /* Goal: of two exclusives the larger benefit wins; on a tie the higher priority wins. */
    fixture_t *f = fx_new();
    fx_line(f, "A", "", 1, 10000);
    Loyalty__V1__Promotion *x1 = promo(f, "p1", 0);
    amount_off(x1, 700);
    x1->exclusive = true;
    Loyalty__V1__Promotion *x2 = promo(f, "p2", 1);
    amount_off(x2, 600);
    x2->exclusive = true;
    Loyalty__V1__PromoQuoteResult *r = quote(f);
    assert_reason(r, "p1", R(APPLIED));
    assert_reason(r, "p2", R(NOT_STACKABLE));
    x1->amount_off->amount_off_cents = 600;
    r = quote(f);
    assert_reason(r, "p1", R(NOT_STACKABLE));
    assert_reason(r, "p2", R(APPLIED));
}

Test(promo_quote, exclusive_counts_shipping_and_gift_value_in_its_benefit) {
    /* Goal: an exclusive free shipping worth 900 beats a 500 stackable discount; a stackable
     * gift worth 1000 beats it back. An exclusive that does not apply changes nothing. */
    fixture_t *f = fx_new();
    fx_line(f, "A", "", 1, 10000);
    f->cart.shipping_cents = 900;
    amount_off(promo(f, "p1", 0), 500);
    Loyalty__V1__Promotion *x = promo(f, "p2", 0);
    free_shipping(x, 0);
    x->exclusive = true;
    Loyalty__V1__PromoQuoteResult *r = quote(f);
    assert_reason(r, "p2", R(APPLIED));
    assert_reason(r, "p1", R(NOT_STACKABLE));
    cr_assert_eq(r->total_cents, 10000);
    free_gift(promo(f, "p3", 0), "GIFT", 2, 500);
    r = quote(f);
    assert_reason(r, "p2", R(NOT_STACKABLE));
    assert_reason(r, "p1", R(APPLIED));
    assert_reason(r, "p3", R(APPLIED));
    cr_assert_eq(r->gift_lines[0]->quantity, 2);
    Loyalty__V1__Promotion *y = promo(f, "p4", 0);
    amount_off(y, 99999);
    y->exclusive = true;
    cond(y)->min_spend_cents = 20000;
    r = quote(f);
    assert_reason(r, "p4", R(BELOW_MIN_SPEND));
    assert_reason(r, "p1", R(APPLIED));
}

Test(promo_quote, exclusive_still_combines_with_the_member_step_and_coupons) {
    /* Goal: exclusivity is among promotions: the member discount and coupons still apply. */
    fixture_t *f = fx_new();
    f->cart.tier_discount_bps = 1000;
    fx_line(f, "A", "", 1, 10000);
    Loyalty__V1__Promotion *x = promo(f, "p1", 0);
    amount_off(x, 1000);
    x->exclusive = true;
    coupon(f, "c1", AMOUNT_COUPON, 500, 0);
    Loyalty__V1__PromoQuoteResult *r = quote(f);
    assert_reason(r, "p1", R(APPLIED));
    assert_reason(r, "c1", R(APPLIED));
    cr_assert_eq(r->merchandise_cents, 10000 - 1000 - 1000 - 500);
}

/* ---- limits and budgets ---- */

Test(promo_quote, blocked_limits_explain_themselves) {
    /* Goal: what the counters say is reported and the promotion is not applied. */
    const promo_reason_t reasons[] = {R(LIMIT_REACHED), R(BUDGET_EXHAUSTED), R(CODE_USED_UP),
                                      R(MEMBER_REQUIRED), R(STORE_REQUIRED)};
    for (int i = 0; i < 5; i++) {
        fixture_t *f = fx_new();
        fx_line(f, "A", "", 1, 1000);
        Loyalty__V1__Promotion *p = promo(f, "p1", 0);
        amount_off(p, 100);
        cand_of(f, p)->limit.blocked = reasons[i];
        Loyalty__V1__PromoQuoteResult *r = quote(f);
        assert_reason(r, "p1", reasons[i]);
        cr_assert_eq(r->merchandise_cents, 1000);
    }
}

Test(promo_quote, budget_at_below_above_the_discount) {
    /* Goal: a 100 discount applies with 100 or 101 budget left, not with 99; shipping counts
     * toward the budget too. */
    const int64_t left[] = {99, 100, 101};
    for (int i = 0; i < 3; i++) {
        fixture_t *f = fx_new();
        fx_line(f, "A", "", 1, 1000);
        Loyalty__V1__Promotion *p = promo(f, "p1", 0);
        amount_off(p, 100);
        cand_of(f, p)->limit.budget_left_cents = left[i];
        assert_reason(quote(f), "p1", i == 0 ? R(BUDGET_EXHAUSTED) : R(APPLIED));
    }
    fixture_t *f = fx_new();
    fx_line(f, "A", "", 1, 1000);
    f->cart.shipping_cents = 300;
    Loyalty__V1__Promotion *p = promo(f, "p1", 0);
    free_shipping(p, 0);
    cand_of(f, p)->limit.budget_left_cents = 299;
    assert_reason(quote(f), "p1", R(BUDGET_EXHAUSTED));
}

Test(promo_quote, code_reasons_and_unknown_codes) {
    /* Goal: a code the store could not use is listed with its reason; an unknown code has no
     * promotion and is listed last. */
    fixture_t *f = fx_new();
    fx_line(f, "A", "", 1, 1000);
    Loyalty__V1__Promotion *p = promo(f, "p1", 0);
    amount_off(p, 100);
    p->trigger = LOYALTY__V1__PROMO_TRIGGER__PROMO_TRIGGER_CODE;
    cand_of(f, p)->code = "SPRING";
    cand_of(f, p)->code_reason = R(CODE_USED_UP);
    f->cands[f->n_cands++] = (promo_candidate_t){
        .code = "NOPE", .limit = {.blocked = R(UNSPECIFIED), .budget_left_cents = INT64_MAX}};
    Loyalty__V1__PromoQuoteResult *r = quote(f);
    cr_assert_eq(r->considered[0]->reason, R(CODE_USED_UP));
    cr_assert_str_eq(r->considered[0]->code, "SPRING");
    cr_assert_eq(r->considered[1]->reason, R(CODE_UNKNOWN));
    cr_assert_str_eq(r->considered[1]->code, "NOPE");
    cr_assert_str_eq(r->considered[1]->promotion_id, "");
    cand_of(f, p)->code_reason = R(UNSPECIFIED);
    r = quote(f);
    cr_assert_eq(r->considered[0]->reason, R(APPLIED));
    cr_assert_str_eq(promo_reason_name(R(CODE_USED_UP)), "CODE_USED_UP");
}

/* ---- coupons ---- */

Test(promo_quote, coupon_after_promotions_with_min_spend_at_below) {
    /* Goal: a coupon's minimum spend compares with the amount after promotions: 10000 - 1000
     * = 9000 meets 9000, not 9001. */
    fixture_t *f = fx_new();
    fx_line(f, "A", "", 1, 10000);
    amount_off(promo(f, "p1", 0), 1000);
    Loyalty__V1__PromoCoupon *c = coupon(f, "c1", AMOUNT_COUPON, 500, 9001);
    assert_reason(quote(f), "c1", R(BELOW_MIN_SPEND));
    c->min_spend_cents = 9000;
    Loyalty__V1__PromoQuoteResult *r = quote(f);
    assert_reason(r, "c1", R(APPLIED));
    cr_assert_eq(r->coupon_discount_cents, 500);
    cr_assert_eq(r->merchandise_cents, 8500);
    cr_assert_eq(r->lines[0]->discounts[1]->kind, SRC(COUPON));
    cr_assert_str_eq(r->lines[0]->discounts[1]->source_id, "c1");
}

Test(promo_quote, percent_coupon_floors_and_caps) {
    /* Goal: 15% of 3333 = 499.95 -> 499; capped at 300 when the cap is set. */
    fixture_t *f = fx_new();
    fx_line(f, "A", "", 1, 3333);
    Loyalty__V1__PromoCoupon *c = coupon(f, "c1", PERCENT_COUPON, 1500, 0);
    cr_assert_eq(considered(quote(f), "c1")->discount_cents, 499);
    c->max_discount_cents = 300;
    cr_assert_eq(considered(quote(f), "c1")->discount_cents, 300);
}

Test(promo_quote, coupon_larger_than_the_order_leaves_zero) {
    /* Goal: an amount coupon beyond what is left takes only what is left, split exactly. */
    fixture_t *f = fx_new();
    fx_line(f, "A", "", 1, 150);
    fx_line(f, "B", "", 1, 50);
    f->cart.shipping_cents = 99;
    amount_off(promo(f, "p1", 0), 100);
    coupon(f, "c1", AMOUNT_COUPON, 5000, 0);
    Loyalty__V1__PromoQuoteResult *r = quote(f);
    cr_assert_eq(considered(r, "c1")->discount_cents, 100);
    cr_assert_eq(r->merchandise_cents, 0);
    cr_assert_eq(r->total_cents, 99);
}

Test(promo_quote, one_discount_coupon_and_one_shipping_coupon) {
    /* Goal: of two discount coupons the larger applies and the other is NOT_STACKABLE (a tie
     * keeps the first); a shipping coupon applies beside them. */
    fixture_t *f = fx_new();
    fx_line(f, "A", "", 1, 10000);
    f->cart.shipping_cents = 500;
    Loyalty__V1__PromoCoupon *c1 = coupon(f, "c1", AMOUNT_COUPON, 800, 0);
    coupon(f, "c2", PERCENT_COUPON, 1000, 0); /* 1000 */
    coupon(f, "c3", SHIPPING_COUPON, 0, 0);
    Loyalty__V1__PromoQuoteResult *r = quote(f);
    assert_reason(r, "c1", R(NOT_STACKABLE));
    assert_reason(r, "c2", R(APPLIED));
    assert_reason(r, "c3", R(APPLIED));
    cr_assert_eq(considered(r, "c3")->shipping_discount_cents, 500);
    cr_assert_eq(r->total_cents, 9000);
    c1->amount_off_cents = 1000;
    r = quote(f);
    assert_reason(r, "c1", R(APPLIED));
    assert_reason(r, "c2", R(NOT_STACKABLE));
}

Test(promo_quote, shipping_coupon_after_free_shipping_promotion_has_nothing_left) {
    /* Goal: shipping already free by a promotion leaves the coupon NO_DISCOUNT (so Reserve
     * would not consume it); a capped promotion leaves the rest to the coupon. */
    fixture_t *f = fx_new();
    fx_line(f, "A", "", 1, 1000);
    f->cart.shipping_cents = 700;
    Loyalty__V1__Promotion *p = promo(f, "p1", 0);
    free_shipping(p, 0);
    coupon(f, "c1", SHIPPING_COUPON, 0, 0);
    assert_reason(quote(f), "c1", R(NO_DISCOUNT));
    p->free_shipping->max_discount_cents = 500;
    Loyalty__V1__PromoQuoteResult *r = quote(f);
    assert_reason(r, "c1", R(APPLIED));
    cr_assert_eq(considered(r, "c1")->shipping_discount_cents, 200);
    cr_assert_eq(r->total_cents, 1000);
}

Test(promo_quote, coupon_validity_window_and_state) {
    /* Goal: valid_from inclusive, valid_until exclusive; used, held by another checkout,
     * another member's, unknown and duplicate coupons each have their reason. */
    fixture_t *f = fx_new();
    fx_line(f, "A", "", 1, 1000);
    Loyalty__V1__PromoCoupon *c = coupon(f, "c1", AMOUNT_COUPON, 100, 0);
    c->valid_from_at = NOW;
    c->valid_until_at = NOW + 10;
    assert_reason(quote_at(f, NOW - 1), "c1", R(COUPON_NOT_YET_VALID));
    assert_reason(quote_at(f, NOW), "c1", R(APPLIED));
    assert_reason(quote_at(f, NOW + 9), "c1", R(APPLIED));
    assert_reason(quote_at(f, NOW + 10), "c1", R(COUPON_EXPIRED));
    c->status = LOYALTY__V1__PROMO_COUPON_STATUS__PROMO_COUPON_STATUS_USED;
    assert_reason(quote_at(f, NOW), "c1", R(COUPON_ALREADY_USED));
    c->status = LOYALTY__V1__PROMO_COUPON_STATUS__PROMO_COUPON_STATUS_RESERVED;
    f->coupons[0].held_elsewhere = true;
    assert_reason(quote_at(f, NOW), "c1", R(COUPON_ALREADY_USED));
    f->coupons[0].held_elsewhere = false; /* held by an expired reservation: usable */
    assert_reason(quote_at(f, NOW), "c1", R(APPLIED));
    c->member_id = "mbr_2";
    assert_reason(quote_at(f, NOW), "c1", R(COUPON_NOT_FOUND));
    c->member_id = "mbr_1";
    f->coupons[f->n_coupons++] = (promo_coupon_input_t){.coupon_id = "c1", .coupon = c};
    f->coupons[f->n_coupons++] = (promo_coupon_input_t){.coupon_id = "c9"};
    Loyalty__V1__PromoQuoteResult *r = quote_at(f, NOW);
    cr_assert_eq(r->considered[0]->reason, R(APPLIED));
    cr_assert_eq(r->considered[1]->reason, R(DUPLICATE));
    cr_assert_eq(r->considered[2]->reason, R(COUPON_NOT_FOUND));
    cr_assert_eq(r->coupon_discount_cents, 100);
    f->cart.member_id = ""; /* guests have no coupons */
    assert_reason(quote_at(f, NOW), "c1", R(COUPON_NOT_FOUND));
}

/* ---- the full pricing order of docs/domain.md#pricing-order ---- */

Test(promo_quote, full_pricing_order_worked_example) {
    /* Goal: one cart through every step, every figure checked by hand:
     * lines A 2 x 5000 (shoes), B 1 x 3000 (bags), shipping 800, member 5%.
     * tier: A 10000 -> 500 off = 9500; B 3000 -> 150 off = 2850 (12350).
     * p1 (prio 10) 10% on shoes: 950 -> A 8550 (11400).
     * p2 (prio 5) spend 11000 get 1000: on 11400 -> 1000 split 8550/2850:
     *   750 (exact) / 250 -> A 7800, B 2600 (10400).
     * p3 free shipping if spend >= 10000: 10400 qualifies -> shipping 0.
     * coupon c1 15% capped 1000: 15% of 10400 = 1560 -> 1000, split 7800/2600 = 750 / 250.
     * merchandise 9400, total 9400. */
    fixture_t *f = fx_new();
    f->cart.tier_discount_bps = 500;
    f->cart.shipping_cents = 800;
    fx_line(f, "A", "shoes", 2, 5000);
    fx_line(f, "B", "bags", 1, 3000);
    Loyalty__V1__Promotion *p1 = promo(f, "p1", 10);
    percent_off(p1, 1000, 0);
    cond(p1)->include_categories = (char *[]){"shoes"};
    cond(p1)->n_include_categories = 1;
    const int64_t steps[][2] = {{11000, 1000}};
    spend_steps(promo(f, "p2", 5), 1, steps);
    Loyalty__V1__Promotion *p3 = promo(f, "p3", 0);
    free_shipping(p3, 0);
    cond(p3)->min_spend_cents = 10000;
    Loyalty__V1__PromoCoupon *c = coupon(f, "c1", PERCENT_COUPON, 1500, 0);
    c->max_discount_cents = 1000;
    Loyalty__V1__PromoQuoteResult *r = quote(f);
    cr_assert_eq(r->tier_discount_cents, 650);
    cr_assert_eq(considered(r, "p1")->discount_cents, 950);
    cr_assert_eq(considered(r, "p2")->discount_cents, 1000);
    cr_assert_eq(r->lines[0]->promotion_discount_cents, 950 + 750);
    cr_assert_eq(r->lines[1]->promotion_discount_cents, 250);
    assert_reason(r, "p3", R(APPLIED));
    cr_assert_eq(r->shipping_discount_cents, 800);
    cr_assert_eq(r->lines[0]->coupon_discount_cents, 750);
    cr_assert_eq(r->lines[1]->coupon_discount_cents, 250);
    cr_assert_eq(r->merchandise_cents, 9400);
    cr_assert_eq(r->total_cents, 9400);
    cr_assert_eq(r->lines[0]->n_discounts, 4); /* member, p1, p2, c1 */
}

/* ---- invariants over random carts ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(uint64_t n) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state % n;
}

static void random_promotion(fixture_t *f, int k) {
    static const char *const ids[] = {"p00", "p01", "p02", "p03", "p04", "p05", "p06", "p07"};
    Loyalty__V1__Promotion *p = promo(f, ids[k], (int)rnd(5) - 2);
    switch (rnd(7)) {
    case 0:
        percent_off(p, 1 + (int64_t)rnd(10000), (int64_t)rnd(3) * 1000);
        break;
    case 1:
        amount_off(p, 1 + (int64_t)rnd(50000));
        break;
    case 2: {
        const int64_t steps[][2] = {{1 + (int64_t)rnd(5000), 1 + (int64_t)rnd(500)},
                                    {6000 + (int64_t)rnd(50000), 600 + (int64_t)rnd(60000)}};
        spend_steps(p, 2, steps);
        break;
    }
    case 3:
        free_shipping(p, (int64_t)rnd(2) * 300);
        break;
    case 4:
        free_gift(p, "G", 1 + (int64_t)rnd(3), (int64_t)rnd(2000));
        break;
    case 5:
        tier_price(p, "S1", "gold", (int64_t)rnd(3000));
        tier_price(p, "S2", "gold", (int64_t)rnd(3000));
        break;
    default:
        bxgy(p, 1 + (int)rnd(3), 1 + (int)rnd(2), 1 + (int64_t)rnd(10000), (int)rnd(3));
        break;
    }
    p->exclusive = rnd(4) == 0;
    if (rnd(3) == 0) {
        cond(p)->min_spend_cents = (int64_t)rnd(20000);
    }
    static char *only_c1[] = {"c1"};
    if (rnd(3) == 0) {
        cond(p)->include_categories = only_c1;
        cond(p)->n_include_categories = 1;
    }
    if (rnd(4) == 0) {
        cand_of(f, p)->limit.budget_left_cents = (int64_t)rnd(3000);
    }
}

Test(promo_quote, random_carts_keep_every_invariant) {
    /* Goal: 2000 random carts with random promotions and coupons: check_invariants holds for
     * each (no negative line, shipping or total; the parts add up; everything explained). */
    static const char *const skus[] = {"S1", "S2", "S3", "S4"};
    static const char *const cats[] = {"c1", "c2", ""};
    for (int iter = 0; iter < 2000; iter++) {
        fixture_t *f = fx_new();
        f->cart.tier_discount_bps = (int64_t)rnd(3) * 500;
        f->cart.shipping_cents = (int64_t)rnd(1500);
        size_t n = 1 + rnd(6);
        for (size_t i = 0; i < n; i++) {
            fx_line(f, skus[rnd(4)], cats[rnd(3)], 1 + (int64_t)rnd(5), (int64_t)rnd(5000));
        }
        int np = (int)rnd(6);
        for (int k = 0; k < np; k++) {
            random_promotion(f, k);
        }
        int nc = (int)rnd(3);
        for (int k = 0; k < nc; k++) {
            Loyalty__V1__PromoCouponKind kinds[] = {AMOUNT_COUPON, PERCENT_COUPON, SHIPPING_COUPON};
            coupon(f, k == 0 ? "c1" : "c2", kinds[rnd(3)], 1 + (int64_t)rnd(5000),
                   (int64_t)rnd(10000));
        }
        quote(f); /* check_invariants runs inside */
        arena_free(&a);
        arena_init(&a);
    }
}
