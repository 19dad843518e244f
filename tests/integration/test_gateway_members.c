/* test_gateway_members.c -- the gateway's member sagas with every real service: registration
 * with a referrer two levels up (points, referral rewards, welcome coupons), an unknown code,
 * a taken phone, idempotent retries; wallet top-up with a plan bonus; daily check-in; the
 * points mall (coupon, gift, out of stock, not enough points); the member overview. Every
 * figure is checked against the rules set up here. */
#include "gateway_it.h"

TestSuite(gateway_members, .init = it_setup, .fini = it_teardown, .timeout = 240);

Test(gateway_members, registration_with_two_level_referral_and_welcome_pack) {
    /* Goal: A refers B, B refers C. C's registration: C gets 50 registration points and 30
     * welcome points, B (level 1) 200, A (level 2) 100; C receives the welcome coupon; a paused
     * template is skipped and reported. */
    stack_start();
    const char *m = harness_merchant("reg");
    set_points_rules(m, 50, 0, 0);
    int64_t reg_points[2] = {200, 100};
    int32_t bps[2] = {0, 0};
    set_referral_program(m, 2, reg_points, bps, 30, 0);
    Loyalty__V1__PromoCouponTemplate *welcome = create_template(m, "Welcome 5 off", 500, 0, 0);
    Loyalty__V1__PromoCouponTemplate *paused = create_template(m, "Paused", 100, 0, 0);
    Loyalty__V1__PromoSetCouponTemplateActiveRequest pa =
        LOYALTY__V1__PROMO_SET_COUPON_TEMPLATE_ACTIVE_REQUEST__INIT;
    pa.merchant_id = (char *)m;
    pa.idempotency_key = (char *)harness_key();
    pa.template_id = paused->id;
    pa.active = false;
    assert_ok(call(SVC_PROMO, "SetCouponTemplateActive", &pa, NULL));
    char *tids[2] = {welcome->id, paused->id};
    Loyalty__V1__GatewaySettings s = LOYALTY__V1__GATEWAY_SETTINGS__INIT;
    s.welcome_coupon_template_ids = tids;
    s.n_welcome_coupon_template_ids = 2;
    Loyalty__V1__GatewayUpdateSettingsRequest us =
        LOYALTY__V1__GATEWAY_UPDATE_SETTINGS_REQUEST__INIT;
    us.merchant_id = (char *)m;
    us.idempotency_key = (char *)harness_key();
    us.settings = &s;
    us.update_mask = HARNESS_MASK("welcome_coupon_template_ids");
    assert_ok(gw("UpdateGatewaySettings", &us, NULL));

    Loyalty__V1__GatewayRegistration *a = NULL, *b = NULL, *c = NULL;
    assert_ok(register_member(m, NULL, "Ana", "+6591000001", NULL, &a));
    cr_assert_eq(a->state, LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_COMPLETED);
    cr_assert_eq(a->registration_points, 50);
    cr_assert_str_eq(a->referrer_member_id, "");
    cr_assert_eq(a->n_welcome_coupons, 1);
    cr_assert_str_eq(a->welcome_coupons[0]->template_id, welcome->id);
    cr_assert_eq(a->n_welcome_notes, 1);
    cr_assert(strstr(a->welcome_notes[0], paused->id) != NULL, "the paused template is named");
    /* The answer carries the member's own code and share links: the code referral-svc keeps. */
    const char *code_a = a->referral_code;
    cr_assert_eq(strlen(code_a), 8, "a code in the answer: \"%s\"", code_a);
    cr_assert_str_eq(code_a, referral_code(m, a->member->id));
    cr_assert_not_null(a->referral_links);
    char url[128];
    snprintf(url, sizeof url, "https://shop.example/join?ref=%s", code_a);
    cr_assert_str_eq(a->referral_links->url, url);
    cr_assert(strstr(a->referral_links->facebook_url, "https://www.facebook.com/sharer") != NULL);
    assert_ok(register_member(m, NULL, "Bo", "+6591000002", code_a, &b));
    cr_assert_str_eq(b->referrer_member_id, a->member->id);
    const char *code_b = referral_code(m, b->member->id);
    const char *key_c = harness_key();
    assert_ok(register_member(m, key_c, "Cy", "+6591000003", code_b, &c));
    cr_assert_str_eq(c->referrer_member_id, b->member->id);
    cr_assert_eq(c->n_referral_rewards, 3, "welcome + 2 levels");
    /* Each got 50 for registering; B's registration gave A 200 (level 1) and B 30 (welcome);
     * C's gave B 200 (level 1), A 100 (level 2) and C 30. */
    cr_assert_eq(points_balance(m, a->member->id)->available, 50 + 200 + 100);
    cr_assert_eq(points_balance(m, b->member->id)->available, 50 + 30 + 200);
    cr_assert_eq(points_balance(m, c->member->id)->available, 50 + 30);
    size_t n = 0;
    member_coupons(m, c->member->id,
                   LOYALTY__V1__PROMO_COUPON_STATUS__PROMO_COUPON_STATUS_AVAILABLE, &n);
    cr_assert_eq(n, 1);

    /* A retry with the same key answers the same registration and grants nothing again. */
    Loyalty__V1__GatewayRegistration *again = NULL;
    assert_ok(register_member(m, key_c, "Cy", "+6591000003", code_b, &again));
    cr_assert_str_eq(again->member->id, c->member->id);
    cr_assert_str_eq(again->saga_id, c->saga_id);
    cr_assert_str_eq(again->referral_code, c->referral_code, "the replay answers the same code");
    cr_assert_str_eq(again->referral_code, referral_code(m, c->member->id));
    cr_assert_not_null(again->referral_links);
    cr_assert_str_eq(again->referral_links->url, c->referral_links->url);
    cr_assert_eq(points_balance(m, b->member->id)->available, 50 + 30 + 200);
    /* The same key with another request is refused. */
    assert_status(register_member(m, key_c, "Cy", "+6591000099", code_b, NULL),
                  STATUS_ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED");
    assert_ledgers_clean(m);
}

Test(gateway_members, registration_refusals_create_nothing) {
    /* Goal: an unknown referral code refuses before anything is created (the phone stays free);
     * a taken phone ends the saga CANCELLED with PHONE_TAKEN and no points anywhere. */
    stack_start();
    const char *m = harness_merchant("regr");
    set_points_rules(m, 50, 0, 0);
    int64_t reg_points[1] = {200};
    int32_t bps[1] = {0};
    set_referral_program(m, 1, reg_points, bps, 0, 0);
    assert_status(register_member(m, NULL, "Di", "+6591000011", "NOSUCH23", NULL), STATUS_NOT_FOUND,
                  "REFERRAL_CODE_NOT_FOUND");
    Loyalty__V1__GatewayListSagasRequest ls = LOYALTY__V1__GATEWAY_LIST_SAGAS_REQUEST__INIT;
    ls.merchant_id = (char *)m;
    Loyalty__V1__GatewayListSagasResponse *sagas = NULL;
    assert_ok(gw("ListSagas", &ls, &sagas));
    cr_assert_eq(sagas->n_sagas, 0, "nothing was logged");
    Loyalty__V1__GatewayRegistration *d = NULL;
    assert_ok(register_member(m, NULL, "Di", "+6591000011", NULL, &d));
    cr_assert_eq(d->registration_points, 50, "the phone was still free");
    const char *key = harness_key();
    assert_status(register_member(m, key, "Ed", "+6591000011", NULL, NULL), STATUS_ALREADY_EXISTS,
                  "PHONE_TAKEN");
    assert_status(register_member(m, key, "Ed", "+6591000011", NULL, NULL), STATUS_ALREADY_EXISTS,
                  "PHONE_TAKEN");
    assert_ok(gw("ListSagas", &ls, &sagas));
    cr_assert_eq(sagas->n_sagas, 2);
    cr_assert_eq(sagas->sagas[0]->state,
                 LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_CANCELLED);
    cr_assert_str_eq(sagas->sagas[0]->reason, "PHONE_TAKEN");
    assert_ledgers_clean(m);
}

static status_t top_up(const char *m, const char *key, const char *member, const char *plan,
                       int64_t paid, const char *ref,
                       Loyalty__V1__GatewayTopUpWalletResponse **out) {
    Loyalty__V1__GatewayTopUpWalletRequest r = LOYALTY__V1__GATEWAY_TOP_UP_WALLET_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.idempotency_key = (char *)key;
    r.member_id = (char *)member;
    r.plan_id = (char *)(plan ? plan : "");
    r.paid_cents = paid;
    r.payment_ref = (char *)ref;
    return gw("TopUpWallet", &r, out);
}

Test(gateway_members, wallet_top_up_with_plan_bonus) {
    /* Goal: pay 100.00 under "pay 100, get 110" -> 110.00 available; the same key replays; the
     * same payment_ref under another key is refused (credited once). */
    stack_start();
    const char *m = harness_merchant("top");
    const char *member = create_member(m, "Fay");
    Loyalty__V1__WalletCreateTopUpPlanRequest pr =
        LOYALTY__V1__WALLET_CREATE_TOP_UP_PLAN_REQUEST__INIT;
    pr.merchant_id = (char *)m;
    pr.idempotency_key = (char *)harness_key();
    pr.name = "Pay 100 get 110";
    pr.pay_cents = 10000;
    pr.bonus_cents = 1000;
    Loyalty__V1__WalletCreateTopUpPlanResponse *plan = NULL;
    assert_ok(call(SVC_WALLET, "CreateTopUpPlan", &pr, &plan));
    const char *key = harness_key();
    Loyalty__V1__GatewayTopUpWalletResponse *t = NULL;
    assert_ok(top_up(m, key, member, plan->plan->id, 10000, "pay-001", &t));
    cr_assert_eq(t->top_up->paid_cents, 10000);
    cr_assert_eq(t->top_up->bonus_cents, 1000);
    cr_assert_eq(t->balance->available_cents, 11000);
    Loyalty__V1__GatewayTopUpWalletResponse *t2 = NULL;
    assert_ok(top_up(m, key, member, plan->plan->id, 10000, "pay-001", &t2));
    cr_assert_str_eq(t2->saga_id, t->saga_id);
    cr_assert_str_eq(t2->top_up->id, t->top_up->id);
    assert_status(top_up(m, key, member, plan->plan->id, 9000, "pay-001", NULL),
                  STATUS_ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED");
    assert_status(top_up(m, harness_key(), member, plan->plan->id, 10000, "pay-001", NULL),
                  STATUS_ALREADY_EXISTS, "PAYMENT_REF_TAKEN");
    assert_status(top_up(m, harness_key(), member, plan->plan->id, 5000, "pay-002", NULL),
                  STATUS_FAILED_PRECONDITION, "PLAN_AMOUNT_MISMATCH");
    cr_assert_eq(wallet_balance(m, member)->available_cents, 11000);
    assert_ledgers_clean(m);
}

static status_t check_in(const char *m, const char *member,
                         Loyalty__V1__GatewayCheckInResponse **out) {
    Loyalty__V1__GatewayCheckInRequest r = LOYALTY__V1__GATEWAY_CHECK_IN_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.idempotency_key = (char *)harness_key();
    r.member_id = (char *)member;
    return gw("CheckIn", &r, out);
}

Test(gateway_members, daily_check_in) {
    /* Goal: 10 points for today's check-in, once a day. */
    stack_start();
    const char *m = harness_merchant("cin");
    set_points_rules(m, 0, 10, 0);
    const char *member = create_member(m, "Gus");
    Loyalty__V1__GatewayCheckInResponse *r = NULL;
    assert_ok(check_in(m, member, &r));
    cr_assert_eq(r->points, 10);
    cr_assert_eq(r->streak_days, 1);
    cr_assert_eq(r->balance->available, 10);
    cr_assert_eq(strlen(r->date), 10);
    assert_status(check_in(m, member, NULL), STATUS_ALREADY_EXISTS, "ALREADY_CHECKED_IN");
    cr_assert_eq(points_balance(m, member)->available, 10);
    assert_ledgers_clean(m);
}

static status_t redeem(const char *m, const char *member, int64_t points, const char *template_id,
                       const char *gift, Loyalty__V1__GatewayRedemption **out) {
    Loyalty__V1__GatewayReward *w = arena_alloc(&arena, sizeof *w);
    loyalty__v1__gateway_reward__init(w);
    w->reward_id = "mall-1";
    w->name = "Mall item";
    w->points = points;
    if (template_id) {
        w->item_case = LOYALTY__V1__GATEWAY_REWARD__ITEM_COUPON_TEMPLATE_ID;
        w->coupon_template_id = (char *)template_id;
    } else {
        w->item_case = LOYALTY__V1__GATEWAY_REWARD__ITEM_GIFT_SKU;
        w->gift_sku = (char *)gift;
    }
    Loyalty__V1__GatewayRedeemRewardRequest r = LOYALTY__V1__GATEWAY_REDEEM_REWARD_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.idempotency_key = (char *)harness_key();
    r.member_id = (char *)member;
    r.reward = w;
    Loyalty__V1__GatewayRedeemRewardResponse *resp = NULL;
    status_t st = gw("RedeemReward", &r, &resp);
    if (out) {
        *out = status_is_ok(&st) ? resp->redemption : NULL;
    }
    return st;
}

Test(gateway_members, points_mall) {
    /* Goal: 500 points for the last coupon of a template; the next member's attempt is refused
     * (out of stock) and gets every point back; a gift for 300; not enough points holds
     * nothing. */
    stack_start();
    const char *m = harness_merchant("mall");
    set_points_rules(m, 0, 0, 0);
    const char *h = create_member(m, "Hal");
    const char *i = create_member(m, "Ivy");
    give_points(m, h, 1000);
    give_points(m, i, 600);
    Loyalty__V1__PromoCouponTemplate *t = create_template(m, "Mall 10 off", 1000, 0, 1);
    Loyalty__V1__GatewayRedemption *d = NULL;
    assert_ok(redeem(m, h, 500, t->id, NULL, &d));
    cr_assert_eq(d->state, LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_COMPLETED);
    cr_assert_eq(d->points_spent, 500);
    cr_assert_not_null(d->coupon);
    cr_assert_eq(d->coupon->source,
                 LOYALTY__V1__PROMO_COUPON_SOURCE__PROMO_COUPON_SOURCE_POINTS_MALL);
    cr_assert_eq(points_balance(m, h)->available, 500);
    assert_status(redeem(m, i, 500, t->id, NULL, NULL), STATUS_FAILED_PRECONDITION,
                  "TEMPLATE_OUT_OF_STOCK");
    Loyalty__V1__PointsBalance *bi = points_balance(m, i);
    cr_assert_eq(bi->available, 600, "the hold was released");
    cr_assert_eq(bi->held, 0);
    assert_ok(redeem(m, i, 300, NULL, "gift-mug", &d));
    cr_assert_eq(d->points_spent, 300);
    cr_assert_str_eq(d->reward->gift_sku, "gift-mug");
    assert_status(redeem(m, i, 301, NULL, "gift-mug", NULL), STATUS_FAILED_PRECONDITION,
                  "INSUFFICIENT_POINTS");
    bi = points_balance(m, i);
    cr_assert_eq(bi->available, 300);
    cr_assert_eq(bi->held, 0);
    assert_ledgers_clean(m);
}

Test(gateway_members, referral_refused_after_the_member_exists) {
    /* Goal: a code that resolves but cannot be attached once the member exists (the programme
     * was switched off) leaves the member registered without a referrer, and says why. */
    stack_start();
    const char *m = harness_merchant("regd");
    set_points_rules(m, 50, 0, 0);
    int64_t reg_points[1] = {200};
    int32_t bps[1] = {0};
    set_referral_program(m, 1, reg_points, bps, 0, 0);
    Loyalty__V1__GatewayRegistration *a = NULL, *b = NULL;
    assert_ok(register_member(m, NULL, "Ann", "+6591000021", NULL, &a));
    const char *code = referral_code(m, a->member->id);
    Loyalty__V1__ReferralProgram off = LOYALTY__V1__REFERRAL_PROGRAM__INIT;
    off.enabled = false;
    off.levels = 1;
    Loyalty__V1__ReferralLevelRule rule = LOYALTY__V1__REFERRAL_LEVEL_RULE__INIT;
    rule.level = 1;
    Loyalty__V1__ReferralLevelRule *rules[] = {&rule};
    off.level_rules = rules;
    off.n_level_rules = 1;
    Loyalty__V1__ReferralSetProgramRequest sp = LOYALTY__V1__REFERRAL_SET_PROGRAM_REQUEST__INIT;
    sp.merchant_id = (char *)m;
    sp.idempotency_key = (char *)harness_key();
    sp.program = &off;
    assert_ok(call(SVC_REFERRAL, "SetReferralProgram", &sp, NULL));
    assert_ok(register_member(m, NULL, "Ben", "+6591000022", code, &b));
    cr_assert_eq(b->state, LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_COMPLETED);
    cr_assert_str_eq(b->referrer_member_id, "");
    cr_assert_str_eq(b->referral_note, "PROGRAM_DISABLED");
    cr_assert_eq(b->registration_points, 50);
    cr_assert_eq(points_balance(m, a->member->id)->available, 50, "no referral reward");
}

Test(gateway_members, unknown_member_is_refused_by_every_member_rpc) {
    /* Goal: every gateway RPC that names a member refuses one the merchant does not have --
     * NOT_FOUND MEMBER_NOT_FOUND -- and writes nothing: no wallet, no check-in, no hold, no
     * saga; a member of another merchant is unknown here too. */
    stack_start();
    const char *m = harness_merchant("nope");
    set_points_rules(m, 0, 10, 0);
    const char *other = harness_merchant("nope-other");
    const char *theirs = create_member(other, "Somebody else");
    const char *ghosts[] = {"mbr_NOPE", theirs};
    for (size_t g = 0; g < 2; g++) {
        const char *ghost = ghosts[g];
        assert_status(top_up(m, harness_key(), ghost, NULL, 100, "pay-ghost", NULL),
                      STATUS_NOT_FOUND, "MEMBER_NOT_FOUND");
        assert_status(check_in(m, ghost, NULL), STATUS_NOT_FOUND, "MEMBER_NOT_FOUND");
        assert_status(redeem(m, ghost, 100, NULL, "gift-mug", NULL), STATUS_NOT_FOUND,
                      "MEMBER_NOT_FOUND");
        assert_status(begin_checkout(m, NULL, "o-ghost", ghost, shirt_cart(), NULL, NULL),
                      STATUS_NOT_FOUND, "MEMBER_NOT_FOUND");
        Loyalty__V1__GatewayQuoteCheckoutRequest q =
            LOYALTY__V1__GATEWAY_QUOTE_CHECKOUT_REQUEST__INIT;
        q.merchant_id = (char *)m;
        q.member_id = (char *)ghost;
        q.cart = shirt_cart();
        assert_status(gw("QuoteCheckout", &q, NULL), STATUS_NOT_FOUND, "MEMBER_NOT_FOUND");
        Loyalty__V1__GatewayGetMemberOverviewRequest o =
            LOYALTY__V1__GATEWAY_GET_MEMBER_OVERVIEW_REQUEST__INIT;
        o.merchant_id = (char *)m;
        o.member_id = (char *)ghost;
        assert_status(gw("GetMemberOverview", &o, NULL), STATUS_NOT_FOUND, "MEMBER_NOT_FOUND");
        /* Nothing was credited to nobody. */
        cr_assert_eq(wallet_balance(m, ghost)->available_cents, 0);
        cr_assert_eq(points_balance(m, ghost)->available, 0);
    }
    Loyalty__V1__GatewayListSagasRequest ls = LOYALTY__V1__GATEWAY_LIST_SAGAS_REQUEST__INIT;
    ls.merchant_id = (char *)m;
    Loyalty__V1__GatewayListSagasResponse *sagas = NULL;
    assert_ok(gw("ListSagas", &ls, &sagas));
    cr_assert_eq(sagas->n_sagas, 0, "no saga acts for nobody");
    assert_ledgers_clean(m);
}
