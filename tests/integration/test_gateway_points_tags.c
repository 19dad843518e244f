/* test_gateway_points_tags.c -- points_balance tag rules follow points changes outside checkout
 * and refund, through the gateway and every real service: a check-in that lifts the balance over
 * the rule's threshold gives the tag, a points-mall redemption that takes it under removes it
 * (member-svc learns each balance with RecordPointsBalance, a step of the saga), and
 * RecordPointsBalance itself validates and is idempotent. */
#include "gateway_it.h"

TestSuite(gateway_points_tags, .init = it_setup, .fini = it_teardown, .timeout = 300);

/* "points_rich" for a balance of 5000 or more. */
static void set_points_rich_rule(const char *m) {
    Loyalty__V1__MemberTagRule rule = LOYALTY__V1__MEMBER_TAG_RULE__INIT;
    rule.tag = "points_rich";
    rule.metric = LOYALTY__V1__MEMBER_TAG_METRIC__MEMBER_TAG_METRIC_POINTS_BALANCE;
    rule.op = LOYALTY__V1__MEMBER_TAG_OPERATOR__MEMBER_TAG_OPERATOR_GTE;
    rule.threshold = 5000;
    Loyalty__V1__MemberTagRule *rules[] = {&rule};
    Loyalty__V1__MemberSetTagRulesRequest tr = LOYALTY__V1__MEMBER_SET_TAG_RULES_REQUEST__INIT;
    tr.merchant_id = (char *)m;
    tr.idempotency_key = (char *)harness_key();
    tr.rules = rules;
    tr.n_rules = 1;
    assert_ok(call(SVC_MEMBER, "SetTagRules", &tr, NULL));
}

static bool has_step(const char *m, const char *saga_id, const char *name) {
    Loyalty__V1__GatewayGetSagaRequest r = LOYALTY__V1__GATEWAY_GET_SAGA_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.saga_id = (char *)saga_id;
    Loyalty__V1__GatewayGetSagaResponse *resp = NULL;
    assert_ok(gw("GetSaga", &r, &resp));
    const Loyalty__V1__GatewayStep *s = find_step(
        (const Loyalty__V1__GatewayStep *const *)resp->saga->steps, resp->saga->n_steps, name);
    return s != NULL && s->state == LOYALTY__V1__GATEWAY_STEP_STATE__GATEWAY_STEP_STATE_DONE;
}

Test(gateway_points_tags, check_in_and_points_mall_move_the_points_balance_tags) {
    stack_start();
    const char *m = harness_merchant("ptags");
    set_points_rules(m, 0, 3000, 0); /* 3000 points per check-in */
    set_points_rich_rule(m);
    const char *b = create_member(m, "Checker");
    give_points(m, b, 2500); /* directly at points-svc: member-svc does not learn of it */
    cr_assert_eq(member_stats(m, b)->n_automatic_tags, 0);

    /* A check-in lifts the balance to 5500: the tag comes with it. */
    Loyalty__V1__GatewayCheckInRequest ci = LOYALTY__V1__GATEWAY_CHECK_IN_REQUEST__INIT;
    ci.merchant_id = (char *)m;
    ci.idempotency_key = (char *)harness_key();
    ci.member_id = (char *)b;
    Loyalty__V1__GatewayCheckInResponse *cr = NULL;
    assert_ok(gw("CheckIn", &ci, &cr));
    cr_assert_eq(cr->balance->available, 5500);
    /* The saga finishes the member step after answering only when member-svc is slow; poll. */
    time_t until = time(NULL) + 60;
    while (!has_step(m, cr->saga_id, "member_points_balance")) {
        cr_assert(time(NULL) < until, "the check-in saga did not tell member-svc");
        sleep_ms(200);
    }
    Loyalty__V1__MemberStats *st = member_stats(m, b);
    cr_assert_eq(st->points_balance, 5500);
    cr_assert_eq(st->n_automatic_tags, 1);
    cr_assert_str_eq(st->automatic_tags[0], "points_rich");
    /* The same check-in again replays; nothing changes. */
    assert_ok(gw("CheckIn", &ci, &cr));
    cr_assert_eq(member_stats(m, b)->points_balance, 5500);

    /* A points-mall gift of 1000 points takes it under 5000: the tag goes. */
    Loyalty__V1__GatewayReward w = LOYALTY__V1__GATEWAY_REWARD__INIT;
    w.reward_id = "mall-1";
    w.name = "Tote bag";
    w.points = 1000;
    w.item_case = LOYALTY__V1__GATEWAY_REWARD__ITEM_GIFT_SKU;
    w.gift_sku = "tote";
    Loyalty__V1__GatewayRedeemRewardRequest rr = LOYALTY__V1__GATEWAY_REDEEM_REWARD_REQUEST__INIT;
    rr.merchant_id = (char *)m;
    rr.idempotency_key = (char *)harness_key();
    rr.member_id = (char *)b;
    rr.reward = &w;
    Loyalty__V1__GatewayRedeemRewardResponse *rresp = NULL;
    assert_ok(gw("RedeemReward", &rr, &rresp));
    cr_assert_eq(rresp->redemption->state, S_COMPLETED, "state %d reason %s",
                 rresp->redemption->state, rresp->redemption->reason);
    cr_assert_eq(points_balance(m, b)->available, 4500);
    st = member_stats(m, b);
    cr_assert_eq(st->points_balance, 4500);
    cr_assert_eq(st->n_automatic_tags, 0);
    cr_assert(has_step(m, rresp->redemption->saga_id, "member_points_balance"));
}

Test(gateway_points_tags, registration_points_and_referral_grants_reach_the_tags) {
    stack_start();
    const char *m = harness_merchant("ptags");
    set_points_rules(m, 6000, 0, 0); /* 6000 points for registering */
    set_points_rich_rule(m);
    int64_t reg[1] = {5000};
    int32_t bps[1] = {0};
    set_referral_program(m, 1, reg, bps, 0, 0); /* the referrer gets 5000 per registration */
    const char *referrer = create_member(m, "Referrer");

    Loyalty__V1__MemberProfile p = LOYALTY__V1__MEMBER_PROFILE__INIT;
    p.name = "Newcomer";
    Loyalty__V1__GatewayRegisterMemberRequest r =
        LOYALTY__V1__GATEWAY_REGISTER_MEMBER_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.idempotency_key = (char *)harness_key();
    r.profile = &p;
    r.referral_code = (char *)referral_code(m, referrer);
    Loyalty__V1__GatewayRegisterMemberResponse *resp = NULL;
    assert_ok(gw("RegisterMember", &r, &resp));
    const Loyalty__V1__GatewayRegistration *reg_done = resp->registration;
    cr_assert_eq(reg_done->state, S_COMPLETED, "state %d", reg_done->state);
    const char *newcomer = reg_done->member->id;
    Loyalty__V1__MemberStats *st = member_stats(m, newcomer);
    cr_assert_eq(st->points_balance, 6000);
    cr_assert_eq(st->n_automatic_tags, 1);
    cr_assert_str_eq(st->automatic_tags[0], "points_rich");
    st = member_stats(m, referrer);
    cr_assert_eq(st->points_balance, points_balance(m, referrer)->available);
    cr_assert_eq(st->points_balance, 5000);
    cr_assert_eq(st->n_automatic_tags, 1);
}

Test(gateway_points_tags, record_points_balance_validates_and_replays) {
    stack_start();
    const char *m = harness_merchant("ptags");
    set_points_rich_rule(m);
    const char *b = create_member(m, "Direct");
    Loyalty__V1__MemberRecordPointsBalanceRequest r =
        LOYALTY__V1__MEMBER_RECORD_POINTS_BALANCE_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.idempotency_key = (char *)harness_key();
    r.member_id = (char *)b;
    r.points_balance = 7000;
    Loyalty__V1__MemberRecordPointsBalanceResponse *resp = NULL;
    assert_ok(call(SVC_MEMBER, "RecordPointsBalance", &r, &resp));
    cr_assert_eq(resp->stats->points_balance, 7000);
    cr_assert_eq(resp->stats->n_automatic_tags, 1);
    /* Same key, same request: the first answer. Same key, another balance: refused. */
    assert_ok(call(SVC_MEMBER, "RecordPointsBalance", &r, &resp));
    cr_assert_eq(resp->stats->points_balance, 7000);
    r.points_balance = 10;
    assert_status(call(SVC_MEMBER, "RecordPointsBalance", &r, NULL), STATUS_ALREADY_EXISTS,
                  "IDEMPOTENCY_KEY_REUSED");
    /* A debt (negative balance) is a balance too; out of range and unknown members are not. */
    r.idempotency_key = (char *)harness_key();
    r.points_balance = -300;
    assert_ok(call(SVC_MEMBER, "RecordPointsBalance", &r, &resp));
    cr_assert_eq(resp->stats->n_automatic_tags, 0);
    r.idempotency_key = (char *)harness_key();
    r.points_balance = 1000000000001LL;
    assert_status(call(SVC_MEMBER, "RecordPointsBalance", &r, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_POINTS_BALANCE");
    r.points_balance = 10;
    r.member_id = "mbr_nobody";
    assert_status(call(SVC_MEMBER, "RecordPointsBalance", &r, NULL), STATUS_NOT_FOUND,
                  "MEMBER_NOT_FOUND");
    cr_assert_eq(member_stats(m, b)->points_balance, -300);
}
