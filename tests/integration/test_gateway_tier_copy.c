/* test_gateway_tier_copy.c -- the gateway's near copy of a member's tier status (Begin reads it
 * without calling member-svc): answered from the copy while nothing changed, and dropped by
 * member-svc's own invalidations when an order upgrades the member or the tiers change. The
 * copies live for 10 minutes here (NEAR_CACHE_TTL_MS), so only an invalidation can make a
 * checkout see the new tier within the tests' bounds. */
#include "gateway_it.h"

TestSuite(gateway_tier_copy, .init = it_setup, .fini = it_teardown, .timeout = 300);

static const char *const long_copies[] = {"NEAR_CACHE_TTL_MS=600000", NULL};

/* The member_tier step of a checkout: how many calls it took (0: from the gateway's copy). */
static int tier_calls(const char *m, const Loyalty__V1__GatewayCheckout *co) {
    Loyalty__V1__GatewayCheckout *got = get_checkout(m, co->checkout_id);
    const Loyalty__V1__GatewayStep *s =
        find_step((const Loyalty__V1__GatewayStep *const *)got->steps, got->n_steps, "member_tier");
    cr_assert_not_null(s, "Begin logs the tier it used");
    return s->attempts;
}

static void cancel(const char *m, const Loyalty__V1__GatewayCheckout *co) {
    Loyalty__V1__GatewayCancelCheckoutRequest c =
        LOYALTY__V1__GATEWAY_CANCEL_CHECKOUT_REQUEST__INIT;
    c.merchant_id = (char *)m;
    c.checkout_id = co->checkout_id;
    Loyalty__V1__GatewayCancelCheckoutResponse *resp = NULL;
    assert_ok(gw("CancelCheckout", &c, &resp));
}

/* Begins and cancels checkouts of `member` until one saw a tier named `tier` (with discount
 * `discount_cents` when >= 0) and was answered from the copy when `from_copy`; false after 100
 * tries (the copy is filled once the gateway has subscribed to the invalidations). */
static bool begin_until(const char *m, const char *member, const char *tier, int64_t discount_cents,
                        bool from_copy) {
    static int order_n;
    for (int i = 0; i < 100; i++) {
        char order[32];
        snprintf(order, sizeof order, "tc-%d", ++order_n);
        Loyalty__V1__GatewayCheckout *co = NULL;
        assert_ok(begin_checkout(m, NULL, order, member, shirt_cart(), NULL, &co));
        const Loyalty__V1__GatewayCheckoutBreakdown *k = co->breakdown;
        bool seen = strcmp(k->tier->name, tier) == 0 &&
                    (discount_cents < 0 || k->tier_discount_cents == discount_cents) &&
                    (!from_copy || tier_calls(m, co) == 0);
        cancel(m, co);
        if (seen) {
            return true;
        }
        sleep_ms(50);
    }
    return false;
}

Test(gateway_tier_copy, an_upgrade_and_a_tier_change_reach_the_copy) {
    stack_start_with(long_copies);
    shop_t s;
    open_shop(&s, "tc");
    const char *b = new_buyer(&s, 0, 0);
    /* Bronze 5% of 120.00; later Begins are answered from the copy, without a call. */
    cr_assert(begin_until(s.m, b, "Bronze", 600, true), "the copy serves Begin");

    /* An order of 84.00 of growth upgrades the buyer to Gold (open_shop: Gold from 80). */
    Loyalty__V1__GatewayCheckout *co = NULL;
    assert_ok(begin_checkout(s.m, NULL, "tc-upgrade", b, shirt_cart(), NULL, &co));
    Loyalty__V1__GatewayCheckout *done = NULL;
    assert_ok(complete_checkout(s.m, co->checkout_id, "psp-1", &done));
    cr_assert_str_eq(done->result->new_tier->name, "Gold");
    /* Gold 10% of 120.00: member-svc's invalidation of the member's status dropped the copy. */
    cr_assert(begin_until(s.m, b, "Gold", 1200, false), "the upgrade reached the copy");
    cr_assert(begin_until(s.m, b, "Gold", 1200, true), "and the new status is copied");

    /* Gold's discount from 10% to 15%: the tiers' invalidation drops every copied status. */
    Loyalty__V1__MemberTier t = LOYALTY__V1__MEMBER_TIER__INIT;
    t.discount_bps = 1500;
    Loyalty__V1__MemberUpdateTierRequest u = LOYALTY__V1__MEMBER_UPDATE_TIER_REQUEST__INIT;
    u.merchant_id = (char *)s.m;
    u.idempotency_key = (char *)harness_key();
    u.tier_id = s.gold->id;
    u.tier = &t;
    u.update_mask = HARNESS_MASK("discount_bps");
    Loyalty__V1__MemberUpdateTierResponse *ur = NULL;
    assert_ok(call(SVC_MEMBER, "UpdateTier", &u, &ur));
    cr_assert(begin_until(s.m, b, "Gold", 1800, false), "the tier change reached the copy");
}

Test(gateway_tier_copy, a_quote_fills_the_copy_that_begin_uses) {
    /* Goal: the storefront's QuoteCheckout before BeginCheckout reads the tier once for both.
     * A fresh buyer per try, so only the quote can have filled the copy Begin finds. */
    stack_start_with(long_copies);
    shop_t s;
    open_shop(&s, "tq");
    bool from_copy = false;
    for (int i = 0; i < 100 && !from_copy; i++) {
        const char *b = new_buyer(&s, 0, 0);
        Loyalty__V1__GatewayQuoteCheckoutRequest q =
            LOYALTY__V1__GATEWAY_QUOTE_CHECKOUT_REQUEST__INIT;
        q.merchant_id = (char *)s.m;
        q.member_id = (char *)b;
        q.cart = shirt_cart();
        Loyalty__V1__GatewayQuoteCheckoutResponse *qr = NULL;
        assert_ok(gw("QuoteCheckout", &q, &qr));
        cr_assert_str_eq(qr->breakdown->tier->name, "Bronze");
        char order[32];
        snprintf(order, sizeof order, "tq-%d", i);
        Loyalty__V1__GatewayCheckout *co = NULL;
        assert_ok(begin_checkout(s.m, NULL, order, b, shirt_cart(), NULL, &co));
        cr_assert_eq(co->breakdown->tier_discount_cents, 600);
        from_copy = tier_calls(s.m, co) == 0;
        cancel(s.m, co);
        sleep_ms(50);
    }
    cr_assert(from_copy, "Begin used the tier the quote read");
}
