/* test_audit_api.c -- listing the audit trail through the API (README "Audit trail"): every
 * service serves its own trail (AuditService.ListAuditLog), and Gateway.ListAuditLog merges the
 * six newest first, with who, which merchant, service, RPC, idempotency key, request id and the
 * rows each call changed; pages cover the listing exactly once; only admin (and service)
 * credentials of the merchant may list it. */
#include "config.h"
#include "credentials.h"
#include "gateway_it.h"
#include "loyalty/v1/audit.pb-c.h"

#define SERVICE_TOKEN "audit-api-svc-token-5e21"
#define ADMIN_A_TOKEN "audit-api-admin-a-token-90fd"
#define ADMIN_B_TOKEN "audit-api-admin-b-token-13c7"
#define SHOP_A_TOKEN "audit-api-shop-a-token-7a44"

static char cred_path[128];
static char cred_env[192];

static const char *client_env(const char *name, void *arg) {
    (void)arg;
    return strcmp(name, "LOYALTY_AUTH_TOKEN") == 0 ? SERVICE_TOKEN : NULL;
}

static void audit_api_setup(void) {
    it_setup();
    /* The helpers of gateway_it.h call with the default token: the service credential. */
    config_t cfg;
    status_t st = config_load(&cfg, "test", 1, client_env, NULL);
    cr_assert(status_is_ok(&st), "%s", st.message);
    rpc_client_init(&cfg);
}

static void audit_api_teardown(void) {
    it_teardown();
    gw_extra_env[0] = NULL;
    if (cred_path[0]) {
        unlink(cred_path);
    }
}

TestSuite(audit_api, .init = audit_api_setup, .fini = audit_api_teardown, .timeout = 600);

static void write_credential(FILE *f, const char *id, const char *role, const char *merchant,
                             const char *token) {
    uint8_t d[CRED_DIGEST_BYTES];
    cred_digest(token, strlen(token), d);
    fprintf(f, "%s %s %s ", id, role, merchant);
    for (int i = 0; i < CRED_DIGEST_BYTES; i++) {
        fprintf(f, "%02x", d[i]);
    }
    fprintf(f, "\n");
}

/* The six services with a credential file: admins of A and of B, a storefront of A. */
static void start_with_credentials(const char *a, const char *b) {
    snprintf(cred_path, sizeof cred_path, "/tmp/loyalty-audit-api-creds-%d", (int)getpid());
    FILE *f = fopen(cred_path, "w");
    cr_assert_not_null(f);
    write_credential(f, "admin-a", "admin", a, ADMIN_A_TOKEN);
    write_credential(f, "admin-b", "admin", b, ADMIN_B_TOKEN);
    write_credential(f, "shop-a", "storefront", a, SHOP_A_TOKEN);
    cr_assert_eq(fclose(f), 0);
    snprintf(cred_env, sizeof cred_env, "LOYALTY_CREDENTIALS_FILE=%s", cred_path);
    stack_start_with((const char *[]){"LOYALTY_AUTH_TOKEN=" SERVICE_TOKEN, cred_env, NULL});
}

static status_t call_as(int svc, const char *token, const char *method, const void *req, void *resp,
                        const char *request_id) {
    rpc_call_opts_t opts = {.timeout_ms = 20000, .auth_token = token, .request_id = request_id};
    return rpc_call(rpc_channel_get(procs[svc].addr), svc_desc[svc], method,
                    (const ProtobufCMessage *)req, &arena, (ProtobufCMessage **)resp, &opts);
}

static status_t list_gateway(const char *token, const char *m, int64_t since_at, int32_t size,
                             const char *cursor, Loyalty__V1__GatewayListAuditLogResponse **out) {
    Loyalty__V1__PageRequest page = LOYALTY__V1__PAGE_REQUEST__INIT;
    page.page_size = size;
    page.cursor = (char *)cursor;
    Loyalty__V1__GatewayListAuditLogRequest r = LOYALTY__V1__GATEWAY_LIST_AUDIT_LOG_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.since_at = since_at;
    r.page = &page;
    return call_as(SVC_GATEWAY, token, "ListAuditLog", &r, out, NULL);
}

static status_t list_service(int svc, const char *token, const char *m,
                             Loyalty__V1__AuditListAuditLogResponse **out) {
    Loyalty__V1__AuditListAuditLogRequest r = LOYALTY__V1__AUDIT_LIST_AUDIT_LOG_REQUEST__INIT;
    r.merchant_id = (char *)m;
    rpc_call_opts_t opts = {.timeout_ms = 20000, .auth_token = token};
    return rpc_call(rpc_channel_get(procs[svc].addr), &loyalty__v1__audit_service__descriptor,
                    "ListAuditLog", &r.base, &arena, (ProtobufCMessage **)out, &opts);
}

/* The entry of `rpc` (the method's name) in a listing, which must hold exactly one. */
static const Loyalty__V1__AuditEntry *entry_of(Loyalty__V1__AuditEntry *const *entries, size_t n,
                                               const char *rpc) {
    const Loyalty__V1__AuditEntry *found = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *slash = strrchr(entries[i]->rpc, '/');
        if (strcmp(slash ? slash + 1 : entries[i]->rpc, rpc) == 0) {
            cr_assert_null(found, "%s listed twice", rpc);
            found = entries[i];
        }
    }
    cr_assert_not_null(found, "%s not listed", rpc);
    return found;
}

/* Checks the fields of one entry, and that its changes hold `table` with `op` and an after
 * image containing `after_has`. */
static void expect_entry(const Loyalty__V1__AuditEntry *e, const char *service, const char *m,
                         const char *credential, const char *rpc, const char *key,
                         const char *request_id, const char *table, const char *op,
                         const char *after_has) {
    cr_assert_str_eq(e->service, service, "%s", e->rpc);
    cr_assert_str_eq(e->merchant_id, m);
    cr_assert_str_eq(e->credential_id, credential, "%s", e->rpc);
    cr_assert_str_eq(e->rpc, rpc);
    cr_assert_str_eq(e->idempotency_key, key, "%s", e->rpc);
    if (request_id) {
        cr_assert_str_eq(e->request_id, request_id, "%s", e->rpc);
    }
    cr_assert_gt(e->recorded_at, 0);
    cr_assert_eq(e->recorded_at, e->recorded_at_us / 1000000);
    bool found = false;
    for (size_t i = 0; i < e->n_changes && !found; i++) {
        const Loyalty__V1__AuditChange *c = e->changes[i];
        found = strcmp(c->table, table) == 0 && strcmp(c->op, op) == 0 &&
                strstr(c->after_json, after_has) != NULL;
    }
    cr_assert(found, "%s: no %s of %s with %s among its %zu changes", e->rpc, op, table, after_has,
              e->n_changes);
}

Test(audit_api, the_gateway_lists_every_services_changes_newest_first_in_pages) {
    const char *a = harness_merchant("auditapi");
    const char *b = harness_merchant("auditapib");
    start_with_credentials(a, b);

    /* One configuration change in each service, by A's admin or by the service credential. */
    Loyalty__V1__MemberTier tier = LOYALTY__V1__MEMBER_TIER__INIT;
    tier.name = "Listed";
    tier.rank = 1;
    tier.upgrade_threshold = 100;
    tier.period_months = 12;
    tier.earn_multiplier_bps = 10000;
    Loyalty__V1__MemberCreateTierRequest ct = LOYALTY__V1__MEMBER_CREATE_TIER_REQUEST__INIT;
    ct.merchant_id = (char *)a;
    ct.idempotency_key = "api-tier-1";
    ct.tier = &tier;
    assert_ok(call_as(SVC_MEMBER, ADMIN_A_TOKEN, "CreateTier", &ct, NULL, "req-api-tier"));

    Loyalty__V1__WalletCreateTopUpPlanRequest cp =
        LOYALTY__V1__WALLET_CREATE_TOP_UP_PLAN_REQUEST__INIT;
    cp.merchant_id = (char *)a;
    cp.idempotency_key = "api-plan-1";
    cp.name = "Listed plan";
    cp.pay_cents = 10000;
    cp.bonus_cents = 500;
    assert_ok(call_as(SVC_WALLET, ADMIN_A_TOKEN, "CreateTopUpPlan", &cp, NULL, "req-api-plan"));

    set_points_rules(a, 0, 0, 0);
    create_code_promotion(a, "LISTED10", 1000, 0);
    int64_t reg[1] = {0};
    int32_t bps[1] = {1000};
    set_referral_program(a, 1, reg, bps, 0, 0);

    Loyalty__V1__GatewaySettings gs = LOYALTY__V1__GATEWAY_SETTINGS__INIT;
    Loyalty__V1__GatewayUpdateSettingsRequest us =
        LOYALTY__V1__GATEWAY_UPDATE_SETTINGS_REQUEST__INIT;
    us.merchant_id = (char *)a;
    us.idempotency_key = "api-settings-1";
    us.settings = &gs;
    us.update_mask = HARNESS_MASK("welcome_coupon_template_ids");
    assert_ok(call_as(SVC_GATEWAY, ADMIN_A_TOKEN, "UpdateGatewaySettings", &us, NULL,
                      "req-api-settings"));
    /* B's own change, which A's listing must not show. */
    us.merchant_id = (char *)b;
    assert_ok(call_as(SVC_GATEWAY, ADMIN_B_TOKEN, "UpdateGatewaySettings", &us, NULL,
                      "req-api-settings-b"));

    /* The whole trail of A in one page. */
    Loyalty__V1__GatewayListAuditLogResponse *all = NULL;
    assert_ok(list_gateway(ADMIN_A_TOKEN, a, 0, 100, "", &all));
    cr_assert_eq(all->n_entries, 6, "one call in each of the six services, got %zu",
                 all->n_entries);
    cr_assert_str_eq(all->page_info->next_cursor, "");
    for (size_t i = 1; i < all->n_entries; i++) {
        cr_assert_geq(all->entries[i - 1]->recorded_at_us, all->entries[i]->recorded_at_us,
                      "not newest first at %zu", i);
    }
    /* The gateway's settings were changed last, the tier first. */
    cr_assert(strstr(all->entries[0]->rpc, "/UpdateGatewaySettings") != NULL, "%s",
              all->entries[0]->rpc);
    cr_assert(strstr(all->entries[5]->rpc, "/CreateTier") != NULL, "%s", all->entries[5]->rpc);

    expect_entry(entry_of(all->entries, all->n_entries, "CreateTier"), "member-svc", a, "admin-a",
                 "/loyalty.v1.MemberService/CreateTier", "api-tier-1", "req-api-tier", "tiers",
                 "INSERT", "\"name\": \"Listed\"");
    expect_entry(entry_of(all->entries, all->n_entries, "CreateTopUpPlan"), "wallet-svc", a,
                 "admin-a", "/loyalty.v1.WalletService/CreateTopUpPlan", "api-plan-1",
                 "req-api-plan", "plans", "INSERT", "\"name\": \"Listed plan\"");
    const Loyalty__V1__AuditEntry *gw_entry =
        entry_of(all->entries, all->n_entries, "UpdateGatewaySettings");
    expect_entry(gw_entry, "gateway", a, "admin-a", "/loyalty.v1.Gateway/UpdateGatewaySettings",
                 "api-settings-1", "req-api-settings", "settings", "INSERT",
                 "\"welcome_coupon_template_ids\": []");
    cr_assert_str_eq(gw_entry->changes[0]->before_json, "");
    const Loyalty__V1__AuditEntry *points =
        entry_of(all->entries, all->n_entries, "UpdateSettings");
    expect_entry(points, "points-svc", a, "service", "/loyalty.v1.PointsService/UpdateSettings",
                 points->idempotency_key, NULL, "settings", "INSERT", "\"earn_unit_cents\": 100");
    cr_assert_neq(points->idempotency_key[0], '\0');
    const Loyalty__V1__AuditEntry *promo =
        entry_of(all->entries, all->n_entries, "CreatePromotion");
    expect_entry(promo, "promo-svc", a, "service", "/loyalty.v1.PromoService/CreatePromotion",
                 promo->idempotency_key, NULL, "promotions", "INSERT", "\"LISTED10\"");
    const Loyalty__V1__AuditEntry *referral =
        entry_of(all->entries, all->n_entries, "SetReferralProgram");
    expect_entry(referral, "referral-svc", a, "service",
                 "/loyalty.v1.ReferralService/SetReferralProgram", referral->idempotency_key, NULL,
                 "program_levels", "INSERT", "\"purchase_bps\": 1000");

    /* Each service lists its own part the same way. */
    Loyalty__V1__AuditListAuditLogResponse *own = NULL;
    assert_ok(list_service(SVC_MEMBER, ADMIN_A_TOKEN, a, &own));
    cr_assert_eq(own->n_entries, 1);
    cr_assert_str_eq(own->entries[0]->service, "member-svc");
    cr_assert_eq(own->entries[0]->n_changes, 2, "the tier and the merchant's first settings");

    /* Pages of two, then of one: the same entries in the same order, each once. */
    for (int32_t size = 1; size <= 2; size++) {
        const char *cursor = "";
        size_t seen = 0;
        for (int page = 0; page < 10; page++) {
            Loyalty__V1__GatewayListAuditLogResponse *p = NULL;
            assert_ok(list_gateway(ADMIN_A_TOKEN, a, 0, size, cursor, &p));
            cr_assert_leq(p->n_entries, (size_t)size);
            for (size_t i = 0; i < p->n_entries; i++) {
                cr_assert_lt(seen, all->n_entries, "more entries than in one page");
                cr_assert_str_eq(p->entries[i]->service, all->entries[seen]->service);
                cr_assert_eq(p->entries[i]->id, all->entries[seen]->id, "entry %zu", seen);
                seen++;
            }
            cursor = p->page_info->next_cursor;
            if (cursor[0] == '\0') {
                break;
            }
        }
        cr_assert_eq(seen, all->n_entries, "pages of %d listed %zu of %zu", size, seen,
                     all->n_entries);
        cr_assert_str_eq(cursor, "", "pages of %d did not end", size);
    }

    /* since_at: nothing recorded after a minute from now; everything since a minute ago. */
    Loyalty__V1__GatewayListAuditLogResponse *later = NULL;
    assert_ok(list_gateway(ADMIN_A_TOKEN, a, (int64_t)time(NULL) + 60, 100, "", &later));
    cr_assert_eq(later->n_entries, 0);
    assert_ok(list_gateway(ADMIN_A_TOKEN, a, all->entries[5]->recorded_at, 100, "", &later));
    cr_assert_eq(later->n_entries, 6);

    /* B's admin sees B's one entry. */
    Loyalty__V1__GatewayListAuditLogResponse *of_b = NULL;
    assert_ok(list_gateway(ADMIN_B_TOKEN, b, 0, 100, "", &of_b));
    cr_assert_eq(of_b->n_entries, 1);
    cr_assert_str_eq(of_b->entries[0]->credential_id, "admin-b");
    cr_assert_str_eq(of_b->entries[0]->request_id, "req-api-settings-b");

    /* A malformed cursor is the caller's error. */
    assert_status(list_gateway(ADMIN_A_TOKEN, a, 0, 2, "not-a-cursor", &later),
                  STATUS_INVALID_ARGUMENT, "INVALID_PAGE_CURSOR");
}

Test(audit_api, only_admins_of_the_merchant_may_list_it) {
    const char *a = harness_merchant("auditacl");
    const char *b = harness_merchant("auditaclb");
    start_with_credentials(a, b);
    set_points_rules(a, 0, 0, 0);

    Loyalty__V1__GatewayListAuditLogResponse *r = NULL;
    assert_status(list_gateway(SHOP_A_TOKEN, a, 0, 10, "", &r), STATUS_PERMISSION_DENIED,
                  "ROLE_NOT_ALLOWED");
    assert_status(list_gateway(ADMIN_B_TOKEN, a, 0, 10, "", &r), STATUS_PERMISSION_DENIED,
                  "MERCHANT_NOT_ALLOWED");
    assert_status(list_gateway("no-such-token", a, 0, 10, "", &r), STATUS_UNAUTHENTICATED,
                  "UNAUTHENTICATED");
    /* A participant reached directly answers the same. */
    Loyalty__V1__AuditListAuditLogResponse *own = NULL;
    assert_status(list_service(SVC_POINTS, SHOP_A_TOKEN, a, &own), STATUS_PERMISSION_DENIED,
                  "ROLE_NOT_ALLOWED");
    assert_status(list_service(SVC_POINTS, ADMIN_B_TOKEN, a, &own), STATUS_PERMISSION_DENIED,
                  "MERCHANT_NOT_ALLOWED");
    /* The merchant's admin and the service credential may. */
    assert_ok(list_gateway(ADMIN_A_TOKEN, a, 0, 10, "", &r));
    cr_assert_eq(r->n_entries, 1);
    assert_ok(list_service(SVC_POINTS, SERVICE_TOKEN, a, &own));
    cr_assert_eq(own->n_entries, 1);
}
