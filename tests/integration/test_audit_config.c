/* test_audit_config.c -- what the audit trail records for each configuration RPC that is not an
 * Update* RPC (README "Audit trail"): exactly the rows it changed and, for each, exactly the
 * fields before and after (the clock's own fields, created_at and updated_at, left out). Tiers,
 * membership plans and a tier assignment (member-svc), a points campaign started and ended and
 * a manual adjustment (points-svc), a top-up plan (wallet-svc), the referral programme
 * (referral-svc), promotions created, paused and resumed, a coupon template created and
 * switched off, a batch of unique codes (promo-svc), and a campaign (gateway). RetrySaga's
 * record is checked by test_gateway_ops (needs_attention_then_retry_saga). */
#include "gateway_it.h"
#include "loyalty/v1/campaign.pb-c.h"

TestSuite(audit_config, .init = it_setup, .fini = it_teardown, .timeout = 600);

/* One SQL value as text ("" for no row or NULL), with $1 = m and $2 = arg. */
static const char *sql_text(const char *sql, const char *m, const char *arg) {
    PGconn *pg = PQconnectdb(test_dsn());
    cr_assert_eq(PQstatus(pg), CONNECTION_OK, "%s", PQerrorMessage(pg));
    const char *params[2] = {m, arg};
    PGresult *r = PQexecParams(pg, sql, 2, NULL, params, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
    const char *v = "";
    if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)) {
        v = arena_strdup(&arena, PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    PQfinish(pg);
    return v;
}

/* The rows the call of `method` with idempotency key `key` changed in `schema`, one
 * "table op before -> after" per line in the order they changed ("-" for no image), without
 * the fields `clock` names (a text[] literal: created_at, updated_at and the like, which the
 * tests check on their own where they matter). */
static const char *changes(const char *schema, const char *m, const char *method, const char *key,
                           const char *clock) {
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT string_agg(table_name || ' ' || op || ' ' || coalesce((before - "
             "'%s'::text[])::text, '-') || ' -> ' || coalesce((after - "
             "'%s'::text[])::text, '-'), E'\\n' ORDER BY id)"
             " FROM %s.audit_log WHERE merchant_id = $1 AND op <> 'CALL'"
             " AND idempotency_key = $2 AND rpc LIKE '%%/%s'",
             clock, clock, schema, method);
    return sql_text(sql, m, key);
}

#define CLOCK_FIELDS "{created_at,updated_at}"

/* Checks that the call has its CALL row, and that it changed exactly `want`. */
static void expect_changes_but(const char *schema, const char *m, const char *method,
                               const char *key, const char *clock, const char *want) {
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM %s.audit_log WHERE merchant_id = $1 AND op = 'CALL'"
             " AND idempotency_key = $2",
             schema);
    cr_expect_str_eq(sql_text(sql, m, key), "1", "%s: one CALL row", method);
    const char *got = changes(schema, m, method, key, clock);
    cr_expect_str_eq(got, want, "%s changed\n%s\nwant\n%s", method, got, want);
}

static void expect_changes(const char *schema, const char *m, const char *method, const char *key,
                           const char *want) {
    expect_changes_but(schema, m, method, key, CLOCK_FIELDS, want);
}

/* A condition on the call's audit rows (alias a) is true. */
static void expect_true(const char *schema, const char *m, const char *key, const char *cond) {
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT bool_and(%s) FROM %s.audit_log a WHERE a.merchant_id = $1 AND"
             " a.idempotency_key = $2 AND a.op <> 'CALL'",
             cond, schema);
    cr_expect_str_eq(sql_text(sql, m, key), "t", "%s: not %s", key, cond);
}

/* A message packed as PostgreSQL prints a bytea inside JSON ("\\x0a16..."). */
static const char *packed_hex(const ProtobufCMessage *msg) {
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = arena_alloc(&arena, n + 1);
    protobuf_c_message_pack(msg, buf);
    char *hex = arena_alloc(&arena, 2 * n + 4);
    strcpy(hex, "\\\\x");
    for (size_t i = 0; i < n; i++) {
        snprintf(hex + 3 + 2 * i, 3, "%02x", buf[i]);
    }
    return hex;
}

static const char *key_of(const char *name) {
    return arena_printf(&arena, "%s-%s", name, harness_key());
}

Test(audit_config, participants_record_exactly_what_each_call_changed) {
    const char *m = harness_merchant("auditcfg");
    stack_start();
    set_points_rules(m, 0, 0, 0);

    /* ---- member-svc ---- */
    Loyalty__V1__MemberTier t = LOYALTY__V1__MEMBER_TIER__INIT;
    t.name = "Silver";
    t.rank = 1;
    t.upgrade_threshold = 1000;
    t.retain_threshold = 500;
    t.period_months = 12;
    t.discount_bps = 250;
    t.earn_multiplier_bps = 12000;
    t.birthday_bonus_points = 50;
    Loyalty__V1__MemberCreateTierRequest ct = LOYALTY__V1__MEMBER_CREATE_TIER_REQUEST__INIT;
    ct.merchant_id = (char *)m;
    ct.idempotency_key = (char *)key_of("tier");
    ct.tier = &t;
    Loyalty__V1__MemberCreateTierResponse *tier = NULL;
    assert_ok(call(SVC_MEMBER, "CreateTier", &ct, &tier));
    const char *settings_row = sql_text(
        "SELECT (after - '{created_at,updated_at}'::text[])::text FROM member.audit_log WHERE"
        " merchant_id = $1 AND table_name = 'settings' AND idempotency_key = $2",
        m, ct.idempotency_key);
    cr_assert_neq(settings_row[0], '\0', "the first tier creates the merchant's settings");
    expect_changes(
        "member", m, "CreateTier", ct.idempotency_key,
        arena_printf(&arena,
                     "settings INSERT - -> %s\n"
                     "tiers INSERT - -> {\"id\": \"%s\", \"name\": \"Silver\", \"rank\": 1, "
                     "\"merchant_id\": \"%s\", \"discount_bps\": 250, \"period_months\": 12, "
                     "\"retain_threshold\": 500, \"upgrade_threshold\": 1000, "
                     "\"earn_multiplier_bps\": 12000, \"express_spend_cents\": 0, "
                     "\"birthday_bonus_points\": 50}",
                     settings_row, tier->tier->id, m));

    Loyalty__V1__MemberPlan plan = LOYALTY__V1__MEMBER_PLAN__INIT;
    plan.name = "Silver yearly";
    plan.tier_id = tier->tier->id;
    plan.period = LOYALTY__V1__MEMBER_PLAN_PERIOD__MEMBER_PLAN_PERIOD_YEARLY;
    plan.price_cents = 4900;
    plan.active = true;
    Loyalty__V1__MemberCreatePlanRequest cpl = LOYALTY__V1__MEMBER_CREATE_PLAN_REQUEST__INIT;
    cpl.merchant_id = (char *)m;
    cpl.idempotency_key = (char *)key_of("plan");
    cpl.plan = &plan;
    Loyalty__V1__MemberCreatePlanResponse *pl = NULL;
    assert_ok(call(SVC_MEMBER, "CreateMembershipPlan", &cpl, &pl));
    expect_changes("member", m, "CreateMembershipPlan", cpl.idempotency_key,
                   arena_printf(&arena,
                                "plans INSERT - -> {\"id\": \"%s\", \"name\": \"Silver yearly\", "
                                "\"active\": true, \"period\": 2, \"tier_id\": \"%s\", "
                                "\"merchant_id\": \"%s\", \"price_cents\": 4900}",
                                pl->plan->id, tier->tier->id, m));

    const char *member = create_member(m, "Assigned");
    Loyalty__V1__MemberAssignTierRequest at = LOYALTY__V1__MEMBER_ASSIGN_TIER_REQUEST__INIT;
    at.merchant_id = (char *)m;
    at.idempotency_key = (char *)key_of("assign");
    at.member_id = (char *)member;
    at.tier_id = tier->tier->id;
    at.reason = "VIP by hand";
    assert_ok(call(SVC_MEMBER, "AssignTier", &at, NULL));
    /* The card is valid from today on the merchant's calendar: as the member's row says. */
    expect_changes_but(
        "member", m, "AssignTier", at.idempotency_key, "{created_at,updated_at,card_valid_from}",
        arena_printf(&arena,
                     "members UPDATE {\"card_kind\": 0, \"card_reason\": \"\", "
                     "\"card_tier_id\": null, \"effective_kind\": 1, \"effective_tier_id\": null} "
                     "-> {\"card_kind\": 4, \"card_reason\": \"VIP by hand\", \"card_tier_id\": "
                     "\"%s\", \"effective_kind\": 4, \"effective_tier_id\": \"%s\"}",
                     tier->tier->id, tier->tier->id));
    expect_true("member", m, at.idempotency_key,
                arena_printf(&arena,
                             "a.before -> 'card_valid_from' = 'null' AND a.after -> "
                             "'card_valid_from' = (SELECT to_jsonb(card_valid_from) FROM "
                             "member.members WHERE merchant_id = a.merchant_id AND id = '%s')",
                             member));

    /* ---- points-svc ---- */
    Loyalty__V1__PointsCampaign pc = LOYALTY__V1__POINTS_CAMPAIGN__INIT;
    pc.name = "Double week";
    pc.multiplier_bps = 20000;
    pc.start_date = "2030-01-01";
    pc.end_date = "2030-01-07";
    Loyalty__V1__PointsCreateCampaignRequest cc = LOYALTY__V1__POINTS_CREATE_CAMPAIGN_REQUEST__INIT;
    cc.merchant_id = (char *)m;
    cc.idempotency_key = (char *)key_of("campaign");
    cc.campaign = &pc;
    Loyalty__V1__PointsCreateCampaignResponse *camp = NULL;
    assert_ok(call(SVC_POINTS, "CreateCampaign", &cc, &camp));
    expect_changes("points", m, "CreateCampaign", cc.idempotency_key,
                   arena_printf(&arena,
                                "campaigns INSERT - -> {\"id\": \"%s\", \"name\": \"Double week\", "
                                "\"active\": true, \"end_date\": \"2030-01-07\", \"tier_ids\": [], "
                                "\"start_date\": \"2030-01-01\", \"merchant_id\": \"%s\", "
                                "\"multiplier_bps\": 20000}",
                                camp->campaign->id, m));
    Loyalty__V1__PointsEndCampaignRequest ec = LOYALTY__V1__POINTS_END_CAMPAIGN_REQUEST__INIT;
    ec.merchant_id = (char *)m;
    ec.idempotency_key = (char *)key_of("endcampaign");
    ec.campaign_id = camp->campaign->id;
    assert_ok(call(SVC_POINTS, "EndCampaign", &ec, NULL));
    expect_changes("points", m, "EndCampaign", ec.idempotency_key,
                   "campaigns UPDATE {\"active\": true} -> {\"active\": false}");
    Loyalty__V1__PointsAdjustRequest adj = LOYALTY__V1__POINTS_ADJUST_REQUEST__INIT;
    adj.merchant_id = (char *)m;
    adj.idempotency_key = (char *)key_of("adjust");
    adj.member_id = (char *)member;
    adj.points = 250;
    adj.reason = "goodwill";
    adj.operator_ = "ops-anna";
    Loyalty__V1__PointsAdjustResponse *adjusted = NULL;
    assert_ok(call(SVC_POINTS, "Adjust", &adj, &adjusted));
    expect_changes(
        "points", m, "Adjust", adj.idempotency_key,
        arena_printf(&arena,
                     "entries INSERT - -> {\"id\": \"%s\", \"seq\": 1, \"kind\": 8, \"lot_id\": "
                     "\"%s\", \"reason\": \"goodwill\", \"source\": 6, \"hold_id\": \"\", "
                     "\"operator\": \"ops-anna\", \"member_id\": \"%s\", \"reference\": \"\", "
                     "\"held_delta\": 0, \"lot_points\": 250, \"merchant_id\": \"%s\", "
                     "\"pending_delta\": 0, \"available_after\": 250, \"available_delta\": 250}",
                     adjusted->entry->id, adjusted->entry->lots[0]->lot_id, member, m));

    /* ---- wallet-svc ---- */
    Loyalty__V1__WalletCreateTopUpPlanRequest tp =
        LOYALTY__V1__WALLET_CREATE_TOP_UP_PLAN_REQUEST__INIT;
    tp.merchant_id = (char *)m;
    tp.idempotency_key = (char *)key_of("topup");
    tp.name = "Pay 100 get 110";
    tp.pay_cents = 10000;
    tp.bonus_cents = 1000;
    Loyalty__V1__WalletCreateTopUpPlanResponse *wp = NULL;
    assert_ok(call(SVC_WALLET, "CreateTopUpPlan", &tp, &wp));
    /* Active from the moment it was created, as the plan says. */
    expect_changes_but(
        "wallet", m, "CreateTopUpPlan", tp.idempotency_key, "{created_at,updated_at,active_from}",
        arena_printf(&arena,
                     "plans INSERT - -> {\"id\": \"%s\", \"name\": \"Pay 100 get 110\", "
                     "\"enabled\": true, \"pay_cents\": 10000, \"bonus_cents\": 1000, "
                     "\"merchant_id\": \"%s\", \"active_until\": null, \"expiry_months\": null}",
                     wp->plan->id, m));
    expect_true("wallet", m, tp.idempotency_key,
                arena_printf(&arena,
                             "(a.after ->> 'active_from')::timestamptz = to_timestamp(%lld)",
                             (long long)wp->plan->active_from_at));

    /* ---- referral-svc: the programme, then a second version of it ---- */
    int64_t reg[2] = {100, 0};
    int32_t bps[2] = {500, 200};
    set_referral_program(m, 1, reg, bps, 20, 0);
    set_referral_program(m, 2, reg, bps, 30, 7);
    const char *set_keys = sql_text("SELECT string_agg(idempotency_key, ' ' ORDER BY id) FROM"
                                    " referral.audit_log WHERE merchant_id = $1 AND op = 'CALL'"
                                    " AND $2 = $2",
                                    m, "");
    char first_key[128], second_key[128];
    cr_assert_eq(sscanf(set_keys, "%127s %127s", first_key, second_key), 2, "%s", set_keys);
    const char *level1 = arena_printf(
        &arena,
        "{\"level\": 1, \"enabled\": true, \"merchant_id\": \"%s\", \"purchase_bps\": 500, "
        "\"purchase_first_n\": 0, \"purchase_cap_points\": 0, \"registration_points\": 100, "
        "\"purchase_reward_kind\": 2, \"purchase_within_days\": 0, \"purchase_fixed_points\": 0}",
        m);
    expect_changes("referral", m, "SetReferralProgram", first_key,
                   arena_printf(&arena,
                                "programs INSERT - -> {\"levels\": 1, \"enabled\": true, "
                                "\"version\": 1, \"merchant_id\": \"%s\", \"welcome_points\": 20, "
                                "\"purchase_hold_days\": 0, \"share_url_template\": "
                                "\"https://shop.example/join?ref={code}\", "
                                "\"share_message_template\": \"\"}\n"
                                "program_levels INSERT - -> %s",
                                m, level1));
    /* The second version: the programme's changed fields, its levels replaced. */
    expect_changes(
        "referral", m, "SetReferralProgram", second_key,
        arena_printf(
            &arena,
            "programs UPDATE {\"levels\": 1, \"version\": 1, \"welcome_points\": 20, "
            "\"purchase_hold_days\": 0} -> {\"levels\": 2, \"version\": 2, "
            "\"welcome_points\": 30, \"purchase_hold_days\": 7}\n"
            "program_levels DELETE %s -> -\n"
            "program_levels INSERT - -> %s\n"
            "program_levels INSERT - -> {\"level\": 2, \"enabled\": true, \"merchant_id\": "
            "\"%s\", \"purchase_bps\": 200, \"purchase_first_n\": 0, "
            "\"purchase_cap_points\": 0, \"registration_points\": 0, "
            "\"purchase_reward_kind\": 2, \"purchase_within_days\": 0, "
            "\"purchase_fixed_points\": 0}",
            level1, level1, m));
}

Test(audit_config, promotions_codes_and_coupon_templates_record_what_changed) {
    const char *m = harness_merchant("auditpromo");
    stack_start();

    Loyalty__V1__Promotion *p = create_code_promotion(m, "AUDIT5", 500, 10);
    const char *create_key = sql_text("SELECT idempotency_key FROM promo.audit_log WHERE"
                                      " merchant_id = $1 AND op = 'CALL' AND $2 = $2",
                                      m, "");
    /* The definition is the promotion as the service answered it, packed. */
    expect_changes("promo", m, "CreatePromotion", create_key,
                   arena_printf(&arena,
                                "promotions INSERT - -> {\"id\": \"%s\", \"code\": \"AUDIT5\", "
                                "\"end_at\": 0, \"status\": 1, \"trigger\": 2, \"version\": 1, "
                                "\"priority\": 0, \"start_at\": 0, \"code_kind\": 1, "
                                "\"definition\": \"%s\", \"merchant_id\": \"%s\", "
                                "\"unique_code_count\": 0}",
                                p->id, packed_hex(&p->base), m));

    Loyalty__V1__PromoPausePromotionRequest pause =
        LOYALTY__V1__PROMO_PAUSE_PROMOTION_REQUEST__INIT;
    pause.merchant_id = (char *)m;
    pause.idempotency_key = (char *)key_of("pause");
    pause.promotion_id = p->id;
    assert_ok(call(SVC_PROMO, "PausePromotion", &pause, NULL));
    expect_changes("promo", m, "PausePromotion", pause.idempotency_key,
                   "promotions UPDATE {\"status\": 1, \"version\": 1} -> {\"status\": 2, "
                   "\"version\": 2}");
    Loyalty__V1__PromoResumePromotionRequest resume =
        LOYALTY__V1__PROMO_RESUME_PROMOTION_REQUEST__INIT;
    resume.merchant_id = (char *)m;
    resume.idempotency_key = (char *)key_of("resume");
    resume.promotion_id = p->id;
    assert_ok(call(SVC_PROMO, "ResumePromotion", &resume, NULL));
    expect_changes("promo", m, "ResumePromotion", resume.idempotency_key,
                   "promotions UPDATE {\"status\": 2, \"version\": 2} -> {\"status\": 1, "
                   "\"version\": 3}");

    /* A promotion with unique codes, and a batch of them. */
    Loyalty__V1__Promotion u = LOYALTY__V1__PROMOTION__INIT;
    u.name = "Unique 3 off";
    u.trigger = LOYALTY__V1__PROMO_TRIGGER__PROMO_TRIGGER_CODE;
    u.code_kind = LOYALTY__V1__PROMO_CODE_KIND__PROMO_CODE_KIND_UNIQUE;
    u.rule_case = LOYALTY__V1__PROMOTION__RULE_AMOUNT_OFF;
    Loyalty__V1__PromoAmountOff off = LOYALTY__V1__PROMO_AMOUNT_OFF__INIT;
    off.amount_off_cents = 300;
    u.amount_off = &off;
    Loyalty__V1__PromoCreatePromotionRequest cu = LOYALTY__V1__PROMO_CREATE_PROMOTION_REQUEST__INIT;
    cu.merchant_id = (char *)m;
    cu.idempotency_key = (char *)key_of("unique");
    cu.promotion = &u;
    Loyalty__V1__PromoCreatePromotionResponse *up = NULL;
    assert_ok(call(SVC_PROMO, "CreatePromotion", &cu, &up));
    Loyalty__V1__PromoGeneratePromoCodesRequest gen =
        LOYALTY__V1__PROMO_GENERATE_PROMO_CODES_REQUEST__INIT;
    gen.merchant_id = (char *)m;
    gen.idempotency_key = (char *)key_of("codes");
    gen.promotion_id = up->promotion->id;
    gen.count = 25;
    gen.prefix = "xmas";
    Loyalty__V1__PromoGeneratePromoCodesResponse *batch = NULL;
    assert_ok(call(SVC_PROMO, "GeneratePromoCodes", &gen, &batch));
    expect_changes("promo", m, "GeneratePromoCodes", gen.idempotency_key,
                   arena_printf(&arena,
                                "promotions UPDATE {\"unique_code_count\": 0} -> "
                                "{\"unique_code_count\": 25}\n"
                                "codes INSERT - -> {\"count\": 25, \"prefix\": \"XMAS\", "
                                "\"batch_id\": \"%s\", \"promotion_id\": \"%s\"}",
                                batch->batch_id, up->promotion->id));

    Loyalty__V1__PromoCouponTemplate tpl = LOYALTY__V1__PROMO_COUPON_TEMPLATE__INIT;
    tpl.name = "Welcome 5 off";
    tpl.kind = LOYALTY__V1__PROMO_COUPON_KIND__PROMO_COUPON_KIND_AMOUNT_OFF;
    tpl.amount_off_cents = 500;
    tpl.min_spend_cents = 2000;
    tpl.valid_days = 30;
    Loyalty__V1__PromoCreateCouponTemplateRequest ctp =
        LOYALTY__V1__PROMO_CREATE_COUPON_TEMPLATE_REQUEST__INIT;
    ctp.merchant_id = (char *)m;
    ctp.idempotency_key = (char *)key_of("template");
    ctp.coupon_template = &tpl;
    Loyalty__V1__PromoCreateCouponTemplateResponse *ct = NULL;
    assert_ok(call(SVC_PROMO, "CreateCouponTemplate", &ctp, &ct));
    expect_changes(
        "promo", m, "CreateCouponTemplate", ctp.idempotency_key,
        arena_printf(&arena,
                     "coupon_templates INSERT - -> {\"id\": \"%s\", \"kind\": 1, "
                     "\"name\": \"Welcome 5 off\", \"active\": true, \"total_max\": 0, "
                     "\"valid_days\": 30, \"merchant_id\": \"%s\", \"issued_count\": 0, "
                     "\"valid_from_at\": 0, \"per_member_max\": 0, \"valid_until_at\": 0, "
                     "\"min_spend_cents\": 2000, \"percent_off_bps\": 0, "
                     "\"amount_off_cents\": 500, \"max_discount_cents\": 0}",
                     ct->coupon_template->id, m));
    Loyalty__V1__PromoSetCouponTemplateActiveRequest act =
        LOYALTY__V1__PROMO_SET_COUPON_TEMPLATE_ACTIVE_REQUEST__INIT;
    act.merchant_id = (char *)m;
    act.idempotency_key = (char *)key_of("inactive");
    act.template_id = ct->coupon_template->id;
    act.active = false;
    assert_ok(call(SVC_PROMO, "SetCouponTemplateActive", &act, NULL));
    expect_changes("promo", m, "SetCouponTemplateActive", act.idempotency_key,
                   "coupon_templates UPDATE {\"active\": true} -> {\"active\": false}");
}

Test(audit_config, a_campaign_set_twice_records_its_row_then_what_changed) {
    const char *m = harness_merchant("auditcamp");
    stack_start();
    Loyalty__V1__CampaignReward reward = LOYALTY__V1__CAMPAIGN_REWARD__INIT;
    reward.points = 200;
    Loyalty__V1__Campaign c = LOYALTY__V1__CAMPAIGN__INIT;
    c.merchant_id = (char *)m;
    c.kind = LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_BIRTHDAY;
    c.enabled = false;
    c.channel = LOYALTY__V1__CAMPAIGN_CHANNEL__CAMPAIGN_CHANNEL_SMS;
    c.birthday_timing = LOYALTY__V1__CAMPAIGN_BIRTHDAY_TIMING__CAMPAIGN_BIRTHDAY_TIMING_ON_DAY;
    c.message_template = "Happy birthday {{name}}: {{points}} points";
    c.reward = &reward;
    Loyalty__V1__CampaignSetRequest set = LOYALTY__V1__CAMPAIGN_SET_REQUEST__INIT;
    set.merchant_id = (char *)m;
    set.idempotency_key = (char *)key_of("setcampaign");
    set.campaign = &c;
    rpc_call_opts_t opts = {.timeout_ms = 20000};
    assert_ok(rpc_call(rpc_channel_get(procs[SVC_GATEWAY].addr),
                       &loyalty__v1__campaign_service__descriptor, "SetCampaign", &set.base, &arena,
                       NULL, &opts));
    /* The configuration is kept as the campaign sent, packed; next_run_at is the scheduler's
     * (as soon as possible: the moment of the call), checked below. */
    const char *config1 = packed_hex(&c.base);
    expect_changes_but("gateway", m, "SetCampaign", set.idempotency_key,
                       "{created_at,updated_at,next_run_at}",
                       arena_printf(&arena,
                                    "campaigns INSERT - -> {\"kind\": 1, \"config\": \"%s\", "
                                    "\"enabled\": false, \"last_run_at\": null, "
                                    "\"merchant_id\": \"%s\"}",
                                    config1, m));
    const char *first_key = set.idempotency_key;
    c.enabled = true;
    reward.points = 300;
    set.idempotency_key = (char *)key_of("setcampaign2");
    assert_ok(rpc_call(rpc_channel_get(procs[SVC_GATEWAY].addr),
                       &loyalty__v1__campaign_service__descriptor, "SetCampaign", &set.base, &arena,
                       NULL, &opts));
    expect_changes_but("gateway", m, "SetCampaign", set.idempotency_key,
                       "{created_at,updated_at,next_run_at}",
                       arena_printf(&arena,
                                    "campaigns UPDATE {\"config\": \"%s\", \"enabled\": false} -> "
                                    "{\"config\": \"%s\", \"enabled\": true}",
                                    config1, packed_hex(&c.base)));
    /* next_run_at: set by the first call, and moved by the second from where the first left it. */
    const char *first_next =
        sql_text("SELECT after ->> 'next_run_at' FROM gateway.audit_log WHERE"
                 " merchant_id = $1 AND idempotency_key = $2 AND op = 'INSERT'",
                 m, first_key);
    cr_assert_neq(first_next[0], '\0');
    expect_true("gateway", m, set.idempotency_key,
                arena_printf(&arena,
                             "a.before ->> 'next_run_at' = '%s' AND (a.after ->> "
                             "'next_run_at')::timestamptz >= '%s'::timestamptz",
                             first_next, first_next));
}
