/* test_audit_services.c -- the audit trail across the six services (README "Audit trail"): a
 * merchant set up the way the checkout tests do it (points rules, a tier, a promotion, a coupon
 * template, a referral programme, a manual points adjustment, top-up plans, gateway settings)
 * leaves exactly its configuration calls and the rows they changed in each service's audit_log,
 * with the credential that made them; business calls (a member, a top-up) leave nothing. */
#include "credentials_it.h"

#define SERVICE_TOKEN "audit-svc-token-77aa"
#define ADMIN_TOKEN "audit-shop-admin-token-1c0d"

static void audit_setup(void) {
    it_cred_setup(SERVICE_TOKEN);
}

TestSuite(audit_services, .init = audit_setup, .fini = it_cred_teardown, .timeout = 600);

static void start_with_credentials(const char *m) {
    it_cred_start_with_admin("audit-svc", m, ADMIN_TOKEN);
}

/* One SQL value (the first column of the first row) as text, "" for none or NULL. */
static const char *sql_value(const char *sql, const char *m) {
    PGconn *pg = PQconnectdb(test_dsn());
    cr_assert_eq(PQstatus(pg), CONNECTION_OK, "%s", PQerrorMessage(pg));
    const char *params[1] = {m};
    PGresult *r = PQexecParams(pg, sql, 1, NULL, params, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
    const char *v = "";
    if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)) {
        char *copy = arena_alloc(&arena, strlen(PQgetvalue(r, 0, 0)) + 1);
        strcpy(copy, PQgetvalue(r, 0, 0));
        v = copy;
    }
    PQclear(r);
    PQfinish(pg);
    return v;
}

/* The schema's audit rows of merchant `m`, one "op table credential rpc-method" per line. */
static const char *trail(const char *schema, const char *m) {
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT string_agg(op || ' ' || coalesce(table_name, '-') || ' ' || credential_id"
             " || ' ' || regexp_replace(rpc, '^.*/', ''), E'\\n' ORDER BY id)"
             " FROM %s.audit_log WHERE merchant_id = $1",
             schema);
    return sql_value(sql, m);
}

Test(audit_services, every_service_records_its_configuration_calls) {
    const char *m = harness_merchant("auditsvc");
    start_with_credentials(m);

    set_points_rules(m, 0, 0, 0);
    create_tier(m, "Bronze", 1, 0, 500, 10000);
    create_code_promotion(m, "SAVE10", 1000, 0);
    Loyalty__V1__PromoCouponTemplate *tpl = create_template(m, "5 off", 500, 0, 0);
    int64_t reg[1] = {0};
    int32_t bps[1] = {1000};
    set_referral_program(m, 1, reg, bps, 0, 0);
    const char *buyer = create_member(m, "Buyer"); /* business, not configuration */
    give_points(m, buyer, 300);                    /* a manual adjustment */
    give_wallet(m, buyer, 2000);                   /* a top-up: business */

    Loyalty__V1__WalletCreateTopUpPlanRequest cp =
        LOYALTY__V1__WALLET_CREATE_TOP_UP_PLAN_REQUEST__INIT;
    cp.merchant_id = (char *)m;
    cp.idempotency_key = (char *)harness_key();
    cp.name = "Plan A";
    cp.pay_cents = 10000;
    cp.bonus_cents = 500;
    Loyalty__V1__WalletCreateTopUpPlanResponse *plan = NULL;
    assert_ok(call(SVC_WALLET, "CreateTopUpPlan", &cp, &plan));
    Loyalty__V1__WalletUpdateTopUpPlanRequest up =
        LOYALTY__V1__WALLET_UPDATE_TOP_UP_PLAN_REQUEST__INIT;
    up.merchant_id = (char *)m;
    up.idempotency_key = (char *)harness_key();
    up.plan_id = plan->plan->id;
    Loyalty__V1__WalletTopUpPlan renamed = LOYALTY__V1__WALLET_TOP_UP_PLAN__INIT;
    renamed.name = "Plan B";
    up.plan = &renamed;
    up.update_mask = HARNESS_MASK("name");
    assert_ok(call(SVC_WALLET, "UpdateTopUpPlan", &up, NULL));

    /* Gateway settings by the merchant's admin credential, twice. */
    rpc_call_opts_t admin = {.timeout_ms = 20000, .auth_token = ADMIN_TOKEN};
    char *ids[1] = {tpl->id};
    Loyalty__V1__GatewaySettings gs = LOYALTY__V1__GATEWAY_SETTINGS__INIT;
    gs.welcome_coupon_template_ids = ids;
    gs.n_welcome_coupon_template_ids = 1;
    Loyalty__V1__GatewayUpdateSettingsRequest us =
        LOYALTY__V1__GATEWAY_UPDATE_SETTINGS_REQUEST__INIT;
    us.merchant_id = (char *)m;
    us.idempotency_key = (char *)harness_key();
    us.settings = &gs;
    us.update_mask = HARNESS_MASK("welcome_coupon_template_ids");
    assert_ok(rpc_call(rpc_channel_get(procs[SVC_GATEWAY].addr), &loyalty__v1__gateway__descriptor,
                       "UpdateGatewaySettings", &us.base, &arena, NULL, &admin));
    gs.n_welcome_coupon_template_ids = 0;
    us.idempotency_key = (char *)harness_key();
    assert_ok(rpc_call(rpc_channel_get(procs[SVC_GATEWAY].addr), &loyalty__v1__gateway__descriptor,
                       "UpdateGatewaySettings", &us.base, &arena, NULL, &admin));

    cr_assert_str_eq(trail("points", m), "CALL - service UpdateSettings\n"
                                         "INSERT settings service UpdateSettings\n"
                                         "CALL - service Adjust\n"
                                         "INSERT entries service Adjust");
    cr_assert_str_eq(trail("member", m), "CALL - service CreateTier\n"
                                         "INSERT settings service CreateTier\n"
                                         "INSERT tiers service CreateTier");
    cr_assert_str_eq(trail("wallet", m), "CALL - service CreateTopUpPlan\n"
                                         "INSERT plans service CreateTopUpPlan\n"
                                         "CALL - service UpdateTopUpPlan\n"
                                         "UPDATE plans service UpdateTopUpPlan");
    cr_assert_str_eq(trail("referral", m), "CALL - service SetReferralProgram\n"
                                           "INSERT programs service SetReferralProgram\n"
                                           "INSERT program_levels service SetReferralProgram");
    cr_assert_str_eq(trail("gateway", m), "CALL - shop-admin UpdateGatewaySettings\n"
                                          "INSERT settings shop-admin UpdateGatewaySettings\n"
                                          "CALL - shop-admin UpdateGatewaySettings\n"
                                          "UPDATE settings shop-admin UpdateGatewaySettings");
    const char *promo = trail("promo", m);
    cr_assert(strstr(promo, "CALL - service CreatePromotion\nINSERT promotions service "
                            "CreatePromotion") != NULL,
              "%s", promo);
    cr_assert(strstr(promo, "CALL - service CreateCouponTemplate\nINSERT coupon_templates service "
                            "CreateCouponTemplate") != NULL,
              "%s", promo);

    /* What changed, exactly (timestamps aside). */
    cr_assert_str_eq(sql_value("SELECT after ->> 'name' FROM member.audit_log WHERE merchant_id ="
                               " $1 AND table_name = 'tiers'",
                               m),
                     "Bronze");
    char want[512];
    snprintf(want, sizeof want, "300 %s", buyer);
    cr_assert_str_eq(sql_value("SELECT (after ->> 'available_delta') || ' ' || (after ->> "
                               "'member_id') FROM points.audit_log WHERE merchant_id = $1 AND"
                               " table_name = 'entries'",
                               m),
                     want);
    cr_assert_str_eq(sql_value("SELECT (before - 'updated_at')::text || ' -> ' || (after - "
                               "'updated_at')::text FROM wallet.audit_log WHERE merchant_id = $1"
                               " AND op = 'UPDATE'",
                               m),
                     "{\"name\": \"Plan A\"} -> {\"name\": \"Plan B\"}");
    snprintf(want, sizeof want,
             "{\"welcome_coupon_template_ids\": [\"%s\"]} -> {\"welcome_coupon_template_ids\": []}",
             tpl->id);
    cr_assert_str_eq(sql_value("SELECT (before - 'updated_at')::text || ' -> ' || (after - "
                               "'updated_at')::text FROM gateway.audit_log WHERE merchant_id = $1"
                               " AND op = 'UPDATE'",
                               m),
                     want);
}
