/* test_promo_rules.c -- unit tests of promo-svc's pure rules: promotion, template and cart
 * validation (valid, invalid, max and max+1), code normalisation, TTLs, coupon windows and
 * statuses, limit counter keys and limit states. */
#include "promo_rules.h"

#include <criterion/criterion.h>

#include <string.h>

#define R(x) PROMO_REASON(x)
#define RULE(x) LOYALTY__V1__PROMOTION__RULE_##x

static arena_t a;
static void setup(void) {
    arena_init(&a);
}
static void teardown(void) {
    arena_free(&a);
}
TestSuite(promo_rules, .init = setup, .fini = teardown);

#define assert_invalid(expr, want_reason)                                                          \
    do {                                                                                           \
        status_t st_ = (expr);                                                                     \
        cr_assert_eq(st_.code, STATUS_INVALID_ARGUMENT, "got %d (%s)", st_.code, st_.message);     \
        cr_assert_str_eq(st_.reason, want_reason);                                                 \
    } while (0)

#define assert_ok(expr)                                                                            \
    do {                                                                                           \
        status_t st_ = (expr);                                                                     \
        cr_assert_eq(st_.code, STATUS_OK, "%s: %s", st_.reason, st_.message);                      \
    } while (0)

static Loyalty__V1__PromoPercentOff pct = LOYALTY__V1__PROMO_PERCENT_OFF__INIT;

static Loyalty__V1__Promotion base_promotion(void) {
    Loyalty__V1__Promotion p = LOYALTY__V1__PROMOTION__INIT;
    p.name = "Spring sale";
    p.trigger = LOYALTY__V1__PROMO_TRIGGER__PROMO_TRIGGER_AUTOMATIC;
    p.rule_case = RULE(PERCENT_OFF);
    pct.percent_off_bps = 1000;
    pct.max_discount_cents = 0;
    p.percent_off = &pct;
    return p;
}

Test(promo_rules, codes_are_upper_cased_and_bounded) {
    char out[PROMO_CODE_MAX + 1];
    assert_ok(promo_rules_normalize_code("code", "spring-25_x", out));
    cr_assert_str_eq(out, "SPRING-25_X");
    assert_ok(promo_rules_normalize_code("code", "abc", out));
    assert_invalid(promo_rules_normalize_code("code", "ab", out), "INVALID_CODE");
    char longest[PROMO_CODE_MAX + 2];
    memset(longest, 'A', sizeof longest);
    longest[PROMO_CODE_MAX] = '\0';
    assert_ok(promo_rules_normalize_code("code", longest, out));
    longest[PROMO_CODE_MAX] = 'A';
    longest[PROMO_CODE_MAX + 1] = '\0';
    assert_invalid(promo_rules_normalize_code("code", longest, out), "INVALID_CODE");
    assert_invalid(promo_rules_normalize_code("code", "with space", out), "INVALID_CODE");
    assert_ok(promo_rules_normalize_prefix("vip", out));
    cr_assert_str_eq(out, "VIP");
    assert_ok(promo_rules_normalize_prefix("", out));
    assert_ok(promo_rules_normalize_prefix("ABCDEFGH", out));
    assert_invalid(promo_rules_normalize_prefix("ABCDEFGHI", out), "INVALID_PREFIX");
    assert_invalid(promo_rules_normalize_prefix("A-B", out), "INVALID_PREFIX");
}

Test(promo_rules, promotion_basics) {
    /* Goal: a minimal promotion is accepted and its type follows the rule; name, trigger,
     * priority and window are checked at their bounds. */
    Loyalty__V1__Promotion p = base_promotion(), out;
    assert_ok(promo_rules_check_promotion(&a, &p, &out));
    cr_assert_eq(out.type, LOYALTY__V1__PROMO_TYPE__PROMO_TYPE_PERCENT_OFF);
    assert_invalid(promo_rules_check_promotion(&a, NULL, &out), "INVALID_PROMOTION");
    p.name = "";
    assert_invalid(promo_rules_check_promotion(&a, &p, &out), "INVALID_PROMOTION_NAME");
    p = base_promotion();
    p.trigger = LOYALTY__V1__PROMO_TRIGGER__PROMO_TRIGGER_UNSPECIFIED;
    assert_invalid(promo_rules_check_promotion(&a, &p, &out), "INVALID_PROMOTION_TRIGGER");
    p = base_promotion();
    p.priority = 1000;
    assert_ok(promo_rules_check_promotion(&a, &p, &out));
    p.priority = 1001;
    assert_invalid(promo_rules_check_promotion(&a, &p, &out), "INVALID_PROMOTION_PRIORITY");
    p.priority = -1001;
    assert_invalid(promo_rules_check_promotion(&a, &p, &out), "INVALID_PROMOTION_PRIORITY");
    p = base_promotion();
    p.start_at = 100;
    p.end_at = 100;
    assert_invalid(promo_rules_check_promotion(&a, &p, &out), "INVALID_PROMOTION_END_AT");
    p.end_at = 101;
    assert_ok(promo_rules_check_promotion(&a, &p, &out));
    p.rule_case = RULE(_NOT_SET);
    assert_invalid(promo_rules_check_promotion(&a, &p, &out), "INVALID_PROMOTION_RULE");
}

Test(promo_rules, promotion_code_trigger) {
    /* Goal: automatic promotions have no code; SHARED needs a valid code (upper-cased);
     * UNIQUE must not carry one. */
    Loyalty__V1__Promotion p = base_promotion(), out;
    p.code = "SPRING";
    assert_invalid(promo_rules_check_promotion(&a, &p, &out), "INVALID_PROMOTION_CODE");
    p.trigger = LOYALTY__V1__PROMO_TRIGGER__PROMO_TRIGGER_CODE;
    assert_invalid(promo_rules_check_promotion(&a, &p, &out), "INVALID_PROMOTION_CODE_KIND");
    p.code_kind = LOYALTY__V1__PROMO_CODE_KIND__PROMO_CODE_KIND_SHARED;
    p.code = "spring25";
    assert_ok(promo_rules_check_promotion(&a, &p, &out));
    cr_assert_str_eq(out.code, "SPRING25");
    p.code = "x";
    assert_invalid(promo_rules_check_promotion(&a, &p, &out), "INVALID_PROMOTION_CODE");
    p.code_kind = LOYALTY__V1__PROMO_CODE_KIND__PROMO_CODE_KIND_UNIQUE;
    assert_invalid(promo_rules_check_promotion(&a, &p, &out), "INVALID_PROMOTION_CODE");
    p.code = "";
    assert_ok(promo_rules_check_promotion(&a, &p, &out));
}

Test(promo_rules, every_rule_is_bounded) {
    /* Goal: each rule's parameters at and beyond their bounds. */
    Loyalty__V1__Promotion p = base_promotion(), out;
    pct.percent_off_bps = 10000;
    assert_ok(promo_rules_check_promotion(&a, &p, &out));
    pct.percent_off_bps = 10001;
    assert_invalid(promo_rules_check_promotion(&a, &p, &out),
                   "INVALID_PROMOTION_PERCENT_OFF_PERCENT_OFF_BPS");
    pct.percent_off_bps = 0;
    assert_invalid(promo_rules_check_promotion(&a, &p, &out),
                   "INVALID_PROMOTION_PERCENT_OFF_PERCENT_OFF_BPS");

    Loyalty__V1__PromoAmountOff amt = LOYALTY__V1__PROMO_AMOUNT_OFF__INIT;
    p.rule_case = RULE(AMOUNT_OFF);
    p.amount_off = &amt;
    assert_invalid(promo_rules_check_promotion(&a, &p, &out),
                   "INVALID_PROMOTION_AMOUNT_OFF_AMOUNT_OFF_CENTS");
    amt.amount_off_cents = PROMO_AMOUNT_MAX;
    assert_ok(promo_rules_check_promotion(&a, &p, &out));
    amt.amount_off_cents = PROMO_AMOUNT_MAX + 1;
    assert_invalid(promo_rules_check_promotion(&a, &p, &out),
                   "INVALID_PROMOTION_AMOUNT_OFF_AMOUNT_OFF_CENTS");

    Loyalty__V1__PromoSpendStep s1 = LOYALTY__V1__PROMO_SPEND_STEP__INIT;
    Loyalty__V1__PromoSpendStep s2 = LOYALTY__V1__PROMO_SPEND_STEP__INIT;
    Loyalty__V1__PromoSpendStep *steps[] = {&s1, &s2};
    Loyalty__V1__PromoSpendThreshold st = LOYALTY__V1__PROMO_SPEND_THRESHOLD__INIT;
    st.steps = steps;
    p.rule_case = RULE(SPEND_THRESHOLD);
    p.spend_threshold = &st;
    assert_invalid(promo_rules_check_promotion(&a, &p, &out),
                   "INVALID_PROMOTION_SPEND_THRESHOLD_STEPS");
    st.n_steps = 2;
    s1 = (Loyalty__V1__PromoSpendStep)LOYALTY__V1__PROMO_SPEND_STEP__INIT;
    s1.threshold_cents = 20000;
    s1.discount_cents = 2000;
    s2 = s1;
    s2.threshold_cents = 50000;
    s2.discount_cents = 6000;
    assert_ok(promo_rules_check_promotion(&a, &p, &out));
    s2.threshold_cents = 20000; /* not increasing */
    assert_invalid(promo_rules_check_promotion(&a, &p, &out),
                   "INVALID_PROMOTION_SPEND_THRESHOLD_STEPS");
    s2.threshold_cents = 50000;
    s2.discount_cents = 1999; /* decreasing discount */
    assert_invalid(promo_rules_check_promotion(&a, &p, &out),
                   "INVALID_PROMOTION_SPEND_THRESHOLD_STEPS");

    Loyalty__V1__PromoBuyXGetY bx = LOYALTY__V1__PROMO_BUY_XGET_Y__INIT;
    p.rule_case = RULE(BUY_X_GET_Y);
    p.buy_x_get_y = &bx;
    bx.buy_quantity = 2;
    bx.get_quantity = 1;
    bx.get_discount_bps = 10000;
    assert_ok(promo_rules_check_promotion(&a, &p, &out));
    cr_assert_eq(out.type, LOYALTY__V1__PROMO_TYPE__PROMO_TYPE_BUY_X_GET_Y);
    bx.get_quantity = 0;
    assert_invalid(promo_rules_check_promotion(&a, &p, &out),
                   "INVALID_PROMOTION_BUY_X_GET_Y_GET_QUANTITY");
    bx.get_quantity = 101;
    assert_invalid(promo_rules_check_promotion(&a, &p, &out),
                   "INVALID_PROMOTION_BUY_X_GET_Y_GET_QUANTITY");

    Loyalty__V1__PromoGift g = LOYALTY__V1__PROMO_GIFT__INIT;
    g.sku = "TOTE";
    g.quantity = 100;
    Loyalty__V1__PromoGift *gifts[] = {&g};
    Loyalty__V1__PromoFreeGift fg = LOYALTY__V1__PROMO_FREE_GIFT__INIT;
    fg.gifts = gifts;
    fg.n_gifts = 1;
    p.rule_case = RULE(FREE_GIFT);
    p.free_gift = &fg;
    assert_ok(promo_rules_check_promotion(&a, &p, &out));
    g.quantity = 101;
    assert_invalid(promo_rules_check_promotion(&a, &p, &out),
                   "INVALID_PROMOTION_FREE_GIFT_GIFTS_QUANTITY");

    Loyalty__V1__PromoTierPriceEntry e1 = LOYALTY__V1__PROMO_TIER_PRICE_ENTRY__INIT;
    e1.sku = "A";
    e1.tier_id = "gold";
    e1.unit_price_cents = 900;
    Loyalty__V1__PromoTierPriceEntry e2 = e1;
    Loyalty__V1__PromoTierPriceEntry *entries[] = {&e1, &e2};
    Loyalty__V1__PromoTierPrice tp = LOYALTY__V1__PROMO_TIER_PRICE__INIT;
    tp.prices = entries;
    tp.n_prices = 2;
    p.rule_case = RULE(TIER_PRICE);
    p.tier_price = &tp;
    assert_invalid(promo_rules_check_promotion(&a, &p, &out),
                   "INVALID_PROMOTION_TIER_PRICE_PRICES");
    e2.tier_id = "silver";
    assert_ok(promo_rules_check_promotion(&a, &p, &out));
}

Test(promo_rules, conditions_and_limits) {
    /* Goal: condition lists hold at most 100 tokens; limits need a scope and a positive
     * maximum, at most 8 of them, and an unspecified period becomes LIFETIME. */
    Loyalty__V1__Promotion p = base_promotion(), out;
    Loyalty__V1__PromoConditions c = LOYALTY__V1__PROMO_CONDITIONS__INIT;
    char *skus[101];
    for (int i = 0; i < 101; i++) {
        skus[i] = "SKU";
    }
    c.include_skus = skus;
    c.n_include_skus = 100;
    p.conditions = &c;
    assert_ok(promo_rules_check_promotion(&a, &p, &out));
    c.n_include_skus = 101;
    assert_invalid(promo_rules_check_promotion(&a, &p, &out),
                   "INVALID_PROMOTION_CONDITIONS_INCLUDE_SKUS");
    c.n_include_skus = 1;
    char *bad[] = {"has space"};
    c.segments = bad;
    c.n_segments = 1;
    assert_invalid(promo_rules_check_promotion(&a, &p, &out),
                   "INVALID_PROMOTION_CONDITIONS_SEGMENTS");
    c.n_segments = 0;

    Loyalty__V1__PromoLimit l = LOYALTY__V1__PROMO_LIMIT__INIT;
    Loyalty__V1__PromoLimit *limits[9] = {&l, &l, &l, &l, &l, &l, &l, &l, &l};
    p.limits = limits;
    p.n_limits = 1;
    assert_invalid(promo_rules_check_promotion(&a, &p, &out), "INVALID_PROMOTION_LIMITS");
    l.scope = LOYALTY__V1__PROMO_LIMIT_SCOPE__PROMO_LIMIT_SCOPE_MEMBER;
    assert_invalid(promo_rules_check_promotion(&a, &p, &out), "INVALID_PROMOTION_LIMITS");
    l.max_uses = 1;
    assert_ok(promo_rules_check_promotion(&a, &p, &out));
    cr_assert_eq(out.limits[0]->period,
                 LOYALTY__V1__PROMO_LIMIT_PERIOD__PROMO_LIMIT_PERIOD_LIFETIME);
    cr_assert_eq(l.period, 0, "the input is not changed");
    l.max_uses = -1;
    l.max_discount_cents = 10;
    assert_invalid(promo_rules_check_promotion(&a, &p, &out), "INVALID_PROMOTION_LIMITS");
    l.max_uses = 0;
    p.n_limits = 8;
    assert_ok(promo_rules_check_promotion(&a, &p, &out));
    p.n_limits = 9;
    assert_invalid(promo_rules_check_promotion(&a, &p, &out), "INVALID_PROMOTION_LIMITS");
}

Test(promo_rules, coupon_templates) {
    /* Goal: each kind's terms are checked and the others zeroed; validity is valid_days or a
     * fixed window, not both. */
    Loyalty__V1__PromoCouponTemplate t = LOYALTY__V1__PROMO_COUPON_TEMPLATE__INIT, out;
    t.name = "Welcome 5 off";
    t.kind = LOYALTY__V1__PROMO_COUPON_KIND__PROMO_COUPON_KIND_AMOUNT_OFF;
    t.amount_off_cents = 500;
    t.percent_off_bps = 99;
    t.valid_days = 30;
    assert_ok(promo_rules_check_template(&t, &out));
    cr_assert_eq(out.percent_off_bps, 0);
    t.amount_off_cents = 0;
    assert_invalid(promo_rules_check_template(&t, &out),
                   "INVALID_COUPON_TEMPLATE_AMOUNT_OFF_CENTS");
    t.kind = LOYALTY__V1__PROMO_COUPON_KIND__PROMO_COUPON_KIND_PERCENT_OFF;
    t.percent_off_bps = 10001;
    assert_invalid(promo_rules_check_template(&t, &out), "INVALID_COUPON_TEMPLATE_PERCENT_OFF_BPS");
    t.percent_off_bps = 1500;
    t.max_discount_cents = 1000;
    assert_ok(promo_rules_check_template(&t, &out));
    t.valid_days = 3650;
    assert_ok(promo_rules_check_template(&t, &out));
    t.valid_days = 3651;
    assert_invalid(promo_rules_check_template(&t, &out), "INVALID_COUPON_TEMPLATE_VALID_DAYS");
    t.valid_days = 10;
    t.valid_until_at = 2000000000;
    assert_invalid(promo_rules_check_template(&t, &out), "INVALID_COUPON_TEMPLATE_VALID_DAYS");
    t.valid_days = 0;
    t.valid_from_at = 2000000000;
    assert_invalid(promo_rules_check_template(&t, &out), "INVALID_COUPON_TEMPLATE_VALID_UNTIL_AT");
    t.valid_until_at = 2000000001;
    assert_ok(promo_rules_check_template(&t, &out));
    t.kind = LOYALTY__V1__PROMO_COUPON_KIND__PROMO_COUPON_KIND_UNSPECIFIED;
    assert_invalid(promo_rules_check_template(&t, &out), "INVALID_COUPON_TEMPLATE_KIND");
    t.kind = LOYALTY__V1__PROMO_COUPON_KIND__PROMO_COUPON_KIND_FREE_SHIPPING;
    t.per_member_max = 1001;
    assert_invalid(promo_rules_check_template(&t, &out), "INVALID_COUPON_TEMPLATE_PER_MEMBER_MAX");
}

static Loyalty__V1__PromoCart *cart_with_lines(size_t n) {
    Loyalty__V1__PromoCart *c = arena_alloc(&a, sizeof *c);
    loyalty__v1__promo_cart__init(c);
    c->lines = arena_alloc(&a, n * sizeof *c->lines);
    for (size_t i = 0; i < n; i++) {
        Loyalty__V1__PromoCartLine *l = arena_alloc(&a, sizeof *l);
        loyalty__v1__promo_cart_line__init(l);
        l->line_id = arena_printf(&a, "l%zu", i);
        l->sku = "SKU";
        l->quantity = 1;
        l->unit_price_cents = 100;
        c->lines[i] = l;
    }
    c->n_lines = n;
    return c;
}

Test(promo_rules, carts) {
    /* Goal: 1..200 lines with unique ids, bounded quantities and prices; codes upper-cased,
     * at most 5 codes and 5 coupons; bps within 0..10000. */
    Loyalty__V1__PromoCart out;
    assert_invalid(promo_rules_check_cart(&a, NULL, &out), "INVALID_CART");
    assert_invalid(promo_rules_check_cart(&a, cart_with_lines(0), &out), "INVALID_CART_LINES");
    assert_ok(promo_rules_check_cart(&a, cart_with_lines(PROMO_CART_LINES_MAX), &out));
    assert_invalid(promo_rules_check_cart(&a, cart_with_lines(PROMO_CART_LINES_MAX + 1), &out),
                   "INVALID_CART_LINES");
    Loyalty__V1__PromoCart *c = cart_with_lines(2);
    c->lines[1]->line_id = "l0";
    assert_invalid(promo_rules_check_cart(&a, c, &out), "INVALID_CART_LINES_LINE_ID");
    c = cart_with_lines(1);
    c->lines[0]->quantity = PROMO_QUANTITY_MAX;
    c->lines[0]->unit_price_cents = PROMO_AMOUNT_MAX;
    assert_ok(promo_rules_check_cart(&a, c, &out));
    c->lines[0]->quantity = PROMO_QUANTITY_MAX + 1;
    assert_invalid(promo_rules_check_cart(&a, c, &out), "INVALID_CART_LINES_QUANTITY");
    c->lines[0]->quantity = 0;
    assert_invalid(promo_rules_check_cart(&a, c, &out), "INVALID_CART_LINES_QUANTITY");
    c->lines[0]->quantity = 1;
    c->lines[0]->unit_price_cents = -1;
    assert_invalid(promo_rules_check_cart(&a, c, &out), "INVALID_CART_LINES_UNIT_PRICE_CENTS");
    c->lines[0]->unit_price_cents = 1;
    c->tier_discount_bps = 10001;
    assert_invalid(promo_rules_check_cart(&a, c, &out), "INVALID_CART_TIER_DISCOUNT_BPS");
    c->tier_discount_bps = 10000;
    c->shipping_cents = -1;
    assert_invalid(promo_rules_check_cart(&a, c, &out), "INVALID_CART_SHIPPING_CENTS");
    c->shipping_cents = 0;
    char *codes[] = {"spring", "b2", "c3c", "d4d", "e5e", "f6f"};
    c->codes = codes;
    c->n_codes = 1;
    assert_ok(promo_rules_check_cart(&a, c, &out));
    cr_assert_str_eq(out.codes[0], "SPRING");
    cr_assert_str_eq(c->codes[0], "spring", "the input is not changed");
    c->n_codes = 2;
    assert_invalid(promo_rules_check_cart(&a, c, &out), "INVALID_CART_CODES");
    codes[1] = "b2b";
    c->n_codes = 5;
    assert_ok(promo_rules_check_cart(&a, c, &out));
    c->n_codes = 6;
    assert_invalid(promo_rules_check_cart(&a, c, &out), "INVALID_CART_CODES");
    c->n_codes = 0;
    char *coupons[] = {"cpn_1", "cpn_2", "cpn_3", "cpn_4", "cpn_5", "cpn_6"};
    c->coupon_ids = coupons;
    c->n_coupon_ids = 5;
    assert_ok(promo_rules_check_cart(&a, c, &out));
    c->n_coupon_ids = 6;
    assert_invalid(promo_rules_check_cart(&a, c, &out), "INVALID_CART_COUPON_IDS");
    c->n_coupon_ids = 0;
    c->member_id = "bad id";
    assert_invalid(promo_rules_check_cart(&a, c, &out), "INVALID_CART_MEMBER_ID");
}

Test(promo_rules, ttl) {
    int64_t ttl = 0;
    assert_ok(promo_rules_check_ttl(0, &ttl));
    cr_assert_eq(ttl, PROMO_TTL_DEFAULT_S);
    assert_ok(promo_rules_check_ttl(1, &ttl));
    cr_assert_eq(ttl, 1);
    assert_ok(promo_rules_check_ttl(PROMO_TTL_MAX_S, &ttl));
    assert_invalid(promo_rules_check_ttl(PROMO_TTL_MAX_S + 1, &ttl), "INVALID_TTL_S");
    assert_invalid(promo_rules_check_ttl(-1, &ttl), "INVALID_TTL_S");
}

Test(promo_rules, coupon_window_and_status) {
    /* Goal: valid_days counts whole 86400 s days from issue; fixed windows are copied;
     * AVAILABLE turns EXPIRED exactly at valid_until_at. */
    Loyalty__V1__PromoCouponTemplate t = LOYALTY__V1__PROMO_COUPON_TEMPLATE__INIT;
    int64_t from = 0, until = 0;
    t.valid_days = 7;
    promo_rules_coupon_window(&t, 1000, &from, &until);
    cr_assert_eq(from, 1000);
    cr_assert_eq(until, 1000 + 7 * 86400);
    t.valid_days = 0;
    t.valid_from_at = 5;
    t.valid_until_at = 50;
    promo_rules_coupon_window(&t, 1000, &from, &until);
    cr_assert_eq(from, 5);
    cr_assert_eq(until, 50);
    const Loyalty__V1__PromoCouponStatus AV =
        LOYALTY__V1__PROMO_COUPON_STATUS__PROMO_COUPON_STATUS_AVAILABLE;
    const Loyalty__V1__PromoCouponStatus EX =
        LOYALTY__V1__PROMO_COUPON_STATUS__PROMO_COUPON_STATUS_EXPIRED;
    const Loyalty__V1__PromoCouponStatus US =
        LOYALTY__V1__PROMO_COUPON_STATUS__PROMO_COUPON_STATUS_USED;
    const Loyalty__V1__PromoCouponStatus RS =
        LOYALTY__V1__PROMO_COUPON_STATUS__PROMO_COUPON_STATUS_RESERVED;
    cr_assert_eq(promo_rules_coupon_status(AV, false, 100, 99), AV);
    cr_assert_eq(promo_rules_coupon_status(AV, false, 100, 100), EX);
    cr_assert_eq(promo_rules_coupon_status(US, false, 100, 101), US);
    /* RESERVED only while its reservation holds it; then AVAILABLE (or EXPIRED) at once. */
    cr_assert_eq(promo_rules_coupon_status(RS, true, 100, 99), RS);
    cr_assert_eq(promo_rules_coupon_status(RS, true, 100, 100), RS);
    cr_assert_eq(promo_rules_coupon_status(RS, false, 100, 99), AV);
    cr_assert_eq(promo_rules_coupon_status(RS, false, 100, 100), EX);
}

Test(promo_rules, limit_keys_and_states) {
    /* Goal: scopes map to their keys (or a reason when the cart lacks the member or store);
     * periods pick the right key; states report the first blocking limit and the smallest
     * budget left, with uses at / below the maximum. */
    Loyalty__V1__PromoLimit member = LOYALTY__V1__PROMO_LIMIT__INIT;
    member.scope = LOYALTY__V1__PROMO_LIMIT_SCOPE__PROMO_LIMIT_SCOPE_MEMBER;
    member.period = LOYALTY__V1__PROMO_LIMIT_PERIOD__PROMO_LIMIT_PERIOD_DAY;
    member.max_uses = 1;
    Loyalty__V1__PromoLimit total = LOYALTY__V1__PROMO_LIMIT__INIT;
    total.scope = LOYALTY__V1__PROMO_LIMIT_SCOPE__PROMO_LIMIT_SCOPE_TOTAL;
    total.period = LOYALTY__V1__PROMO_LIMIT_PERIOD__PROMO_LIMIT_PERIOD_LIFETIME;
    total.max_uses = 100;
    total.max_discount_cents = 5000;
    Loyalty__V1__PromoLimit store = LOYALTY__V1__PROMO_LIMIT__INIT;
    store.scope = LOYALTY__V1__PROMO_LIMIT_SCOPE__PROMO_LIMIT_SCOPE_STORE;
    store.period = LOYALTY__V1__PROMO_LIMIT_PERIOD__PROMO_LIMIT_PERIOD_MONTH;
    store.max_discount_cents = 3000;
    Loyalty__V1__PromoLimit *limits[] = {&member, &total, &store};
    Loyalty__V1__Promotion p = base_promotion();
    p.limits = limits;
    p.n_limits = 3;
    Loyalty__V1__PromoCart cart = LOYALTY__V1__PROMO_CART__INIT;
    cart.member_id = "mbr_1";
    promo_periods_t periods = {"D2025-11-24", "W2025-W48", "M2025-11"};
    char *scope = NULL;
    const char *period = NULL;
    cr_assert_eq(promo_rules_limit_key(&a, &p, 0, &cart, &periods, &scope, &period),
                 R(UNSPECIFIED));
    cr_assert_str_eq(scope, "M:mbr_1");
    cr_assert_str_eq(period, "D2025-11-24");
    cr_assert_eq(promo_rules_limit_key(&a, &p, 1, &cart, &periods, &scope, &period),
                 R(UNSPECIFIED));
    cr_assert_str_eq(scope, "T");
    cr_assert_str_eq(period, "L");
    cr_assert_eq(promo_rules_limit_key(&a, &p, 2, &cart, &periods, &scope, &period),
                 R(STORE_REQUIRED));
    cart.store_id = "s1";
    cr_assert_eq(promo_rules_limit_key(&a, &p, 2, &cart, &periods, &scope, &period),
                 R(UNSPECIFIED));
    cr_assert_str_eq(scope, "S:s1");
    cr_assert_str_eq(period, "M2025-11");
    cart.member_id = "";
    cr_assert_eq(promo_rules_limit_key(&a, &p, 0, &cart, &periods, &scope, &period),
                 R(MEMBER_REQUIRED));

    promo_reason_t ok[3] = {R(UNSPECIFIED), R(UNSPECIFIED), R(UNSPECIFIED)};
    int64_t uses[3] = {0, 99, 0}, disc[3] = {0, 4000, 2500};
    promo_limit_state_t s = promo_rules_limit_state(&p, ok, uses, disc);
    cr_assert_eq(s.blocked, R(UNSPECIFIED));
    cr_assert_eq(s.budget_left_cents, 500, "min(5000-4000, 3000-2500)");
    uses[1] = 100;
    cr_assert_eq(promo_rules_limit_state(&p, ok, uses, disc).blocked, R(LIMIT_REACHED));
    p.trigger = LOYALTY__V1__PROMO_TRIGGER__PROMO_TRIGGER_CODE;
    cr_assert_eq(promo_rules_limit_state(&p, ok, uses, disc).blocked, R(CODE_USED_UP));
    uses[0] = 1; /* the member limit comes first and is not a code's total */
    cr_assert_eq(promo_rules_limit_state(&p, ok, uses, disc).blocked, R(LIMIT_REACHED));
    uses[0] = 0;
    uses[1] = 0;
    disc[2] = 3000;
    cr_assert_eq(promo_rules_limit_state(&p, ok, uses, disc).blocked, R(BUDGET_EXHAUSTED));
    disc[2] = 2999;
    s = promo_rules_limit_state(&p, ok, uses, disc);
    cr_assert_eq(s.budget_left_cents, 1);
    promo_reason_t no_member[3] = {R(MEMBER_REQUIRED), R(UNSPECIFIED), R(UNSPECIFIED)};
    cr_assert_eq(promo_rules_limit_state(&p, no_member, uses, disc).blocked, R(MEMBER_REQUIRED));
    p.n_limits = 0;
    s = promo_rules_limit_state(&p, ok, uses, disc);
    cr_assert_eq(s.blocked, R(UNSPECIFIED));
    cr_assert_eq(s.budget_left_cents, INT64_MAX);
}

Test(promo_rules, counters_sort_in_byte_order_without_repeats) {
    /* Goal: counter keys sort by (promotion, scope, period) in byte order, the COLLATE "C" order
     * of the lock statements ("S:10" before "S:2", upper case before lower), and a key given
     * twice is kept once; nothing to sort is nothing. */
    promo_counter_t c[] = {
        {"p2", "T", "L", 0, 0},
        {"p1", "S:2", "L", 0, 0},
        {"p1", "S:10", "L", 0, 0},
        {"p1", "M:b", "L", 0, 0},
        {"p1", "S:2", "L", 0, 0},
        {"p1", "M:B", "L", 0, 0},
        {"p1", "S:2", "D2025-11-24", 0, 0},
    };
    size_t n = promo_rules_counters_sort_unique(c, sizeof c / sizeof c[0]);
    const char *want[][3] = {{"p1", "M:B", "L"},           {"p1", "M:b", "L"}, {"p1", "S:10", "L"},
                             {"p1", "S:2", "D2025-11-24"}, {"p1", "S:2", "L"}, {"p2", "T", "L"}};
    cr_assert_eq(n, 6);
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_eq(c[i].promotion_id, want[i][0], "%zu", i);
        cr_assert_str_eq(c[i].scope_key, want[i][1], "%zu", i);
        cr_assert_str_eq(c[i].period_key, want[i][2], "%zu", i);
    }
    cr_assert_eq(promo_rules_counters_sort_unique(c, 0), 0);
    cr_assert_lt(promo_rules_counter_cmp(&c[0], &c[1]), 0);
    cr_assert_eq(promo_rules_counter_cmp(&c[2], &c[2]), 0);
}

Test(promo_rules, reserve_counters_of_a_cart) {
    /* Goal: the counters a Reserve may lock for a promotion are those of its limits whose key
     * the cart has (a store limit without a store names none), and none when the promotion
     * cannot apply to the cart (paused, not for its store) or has no limits. */
    Loyalty__V1__PromoLimit member = LOYALTY__V1__PROMO_LIMIT__INIT;
    member.scope = LOYALTY__V1__PROMO_LIMIT_SCOPE__PROMO_LIMIT_SCOPE_MEMBER;
    member.max_uses = 1;
    Loyalty__V1__PromoLimit store = LOYALTY__V1__PROMO_LIMIT__INIT;
    store.scope = LOYALTY__V1__PROMO_LIMIT_SCOPE__PROMO_LIMIT_SCOPE_STORE;
    store.period = LOYALTY__V1__PROMO_LIMIT_PERIOD__PROMO_LIMIT_PERIOD_DAY;
    store.max_uses = 10;
    Loyalty__V1__PromoLimit *limits[] = {&member, &store};
    Loyalty__V1__Promotion p = base_promotion();
    p.id = "prm_1";
    p.status = LOYALTY__V1__PROMO_STATUS__PROMO_STATUS_ACTIVE;
    p.limits = limits;
    p.n_limits = 2;
    Loyalty__V1__PromoCart cart = LOYALTY__V1__PROMO_CART__INIT;
    cart.member_id = "mbr_1";
    cart.store_id = "s1";
    promo_periods_t periods = {"D2025-11-24", "W2025-W48", "M2025-11"};
    promo_counter_t out[2];
    cr_assert_eq(promo_rules_reserve_counters(&a, &p, &cart, &periods, 1000, out), 2);
    cr_assert_str_eq(out[0].promotion_id, "prm_1");
    cr_assert_str_eq(out[0].scope_key, "M:mbr_1");
    cr_assert_str_eq(out[0].period_key, "L");
    cr_assert_str_eq(out[1].scope_key, "S:s1");
    cr_assert_str_eq(out[1].period_key, "D2025-11-24");
    cr_assert_eq(out[1].uses, 0);
    cart.store_id = "";
    cr_assert_eq(promo_rules_reserve_counters(&a, &p, &cart, &periods, 1000, out), 1);
    cr_assert_str_eq(out[0].scope_key, "M:mbr_1");
    Loyalty__V1__PromoConditions cond = LOYALTY__V1__PROMO_CONDITIONS__INIT;
    char *stores[] = {"s2"};
    cond.store_ids = stores;
    cond.n_store_ids = 1;
    p.conditions = &cond;
    cart.store_id = "s1";
    cr_assert_eq(promo_rules_reserve_counters(&a, &p, &cart, &periods, 1000, out), 0);
    p.conditions = NULL;
    p.status = LOYALTY__V1__PROMO_STATUS__PROMO_STATUS_PAUSED;
    cr_assert_eq(promo_rules_reserve_counters(&a, &p, &cart, &periods, 1000, out), 0);
    p.status = LOYALTY__V1__PROMO_STATUS__PROMO_STATUS_ACTIVE;
    p.n_limits = 0;
    cr_assert_eq(promo_rules_reserve_counters(&a, &p, &cart, &periods, 1000, out), 0);
}
