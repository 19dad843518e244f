/* test_loyaltyctl_programme.c -- `loyaltyctl programme plan|apply|export` (the real binary)
 * against the six real services, through the gateway's relay: both examples/ programmes
 * applied to fresh merchants, exported, the export applied again (no changes) and exported
 * again byte for byte the same, and applied to yet another merchant with the same result; a
 * plan against an unchanged merchant is empty; a malformed file is refused with its line and
 * column and writes nothing; a change a service refuses stops apply with what was and was not
 * applied, and a re-run with the fix applies just the rest; a promotion's `codes:` generates
 * one batch of unique codes, once. */
#include "credentials.h"
#include "gateway_it.h"

#include <errno.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>

TestSuite(programme, .init = it_setup, .fini = it_teardown, .timeout = 600);

static char ctl_out[131072];
static char ctl_err[16384];
static char dir[128];

static void slurp(const char *path, char *buf, size_t cap) {
    buf[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return;
    }
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static void work_dir(void) {
    if (dir[0] == '\0') {
        snprintf(dir, sizeof dir, "/tmp/ctl-prog-%d", (int)getpid());
        cr_assert_eq(mkdir(dir, 0700) == 0 || errno == EEXIST, true);
    }
}

static void spill(const char *name, const char *text) {
    work_dir();
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

/* Runs `env <env> loyaltyctl <args>` from the source tree (examples/), the test's gateway, no
 * token but what env gives; stdout in ctl_out, stderr in ctl_err; returns the exit code. */
static int ctl_env(const char *env, const char *args) {
    work_dir();
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "cd %s && env -u LOYALTY_TOKEN -u LOYALTY_AUTH_TOKEN LOYALTY_GATEWAY_ADDR=%s %s "
             "%s/tools/loyaltyctl %s >%s/out 2>%s/err",
             LOYALTY_TEST_SOURCE_DIR, procs[SVC_GATEWAY].addr, env, LOYALTY_TEST_BUILD_DIR, args,
             dir, dir);
    int ws = system(cmd);
    cr_assert(ws != -1 && WIFEXITED(ws), "%s did not run", cmd);
    char path[256];
    snprintf(path, sizeof path, "%s/out", dir);
    slurp(path, ctl_out, sizeof ctl_out);
    snprintf(path, sizeof path, "%s/err", dir);
    slurp(path, ctl_err, sizeof ctl_err);
    return WEXITSTATUS(ws);
}

static int ctl(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int ctl(const char *fmt, ...) {
    char args[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    return ctl_env("", args);
}

#define assert_out_has(text)                                                                       \
    cr_assert(strstr(ctl_out, (text)) != NULL, "no `%s` in:\n%s\nstderr:\n%s", (text), ctl_out,    \
              ctl_err)
#define assert_err_has(text)                                                                       \
    cr_assert(strstr(ctl_err, (text)) != NULL, "no `%s` in stderr:\n%s", (text), ctl_err)

/* The export without its first two lines (the comment and `merchant:` name the merchant). */
static const char *body(const char *export) {
    const char *p = strchr(export, '\n');
    cr_assert_not_null(p);
    p = strchr(p + 1, '\n');
    cr_assert_not_null(p);
    return p + 1;
}

/* Applies examples/<name>.yaml to a fresh merchant and checks the round trip. */
static const char *round_trip(const char *name, const char *const *expect) {
    const char *m = harness_merchant(name);
    const char *m2 = harness_merchant(name);
    int rc = ctl("programme apply -f examples/%s.yaml --merchant %s", name, m);
    cr_assert_eq(rc, 0, "apply: %d\n%s\n%s", rc, ctl_out, ctl_err);
    assert_out_has("Applied ");
    for (int i = 0; expect[i] != NULL; i++) {
        assert_out_has(expect[i]);
    }
    /* The same file again: nothing to do. */
    cr_assert_eq(ctl("programme plan -f examples/%s.yaml --merchant %s", name, m), 0, "%s",
                 ctl_err);
    assert_out_has("No changes");
    cr_assert_eq(ctl("programme apply -f examples/%s.yaml --merchant %s", name, m), 0, "%s",
                 ctl_err);
    assert_out_has("No changes");
    /* Export, apply the export, export again: the same bytes. */
    cr_assert_eq(ctl("programme export --merchant %s", m), 0, "%s", ctl_err);
    static char first[131072];
    snprintf(first, sizeof first, "%s", ctl_out);
    spill("export.yaml", first);
    cr_assert_eq(ctl("programme apply -f %s/export.yaml", dir), 0, "%s\n%s", ctl_out, ctl_err);
    assert_out_has("No changes");
    cr_assert_eq(ctl("programme export --merchant %s", m), 0, "%s", ctl_err);
    cr_assert_str_eq(ctl_out, first);
    /* The export makes another merchant the same programme. */
    rc = ctl("programme apply -f %s/export.yaml --merchant %s", dir, m2);
    cr_assert_eq(rc, 0, "%s\n%s", ctl_out, ctl_err);
    cr_assert_eq(ctl("programme export --merchant %s", m2), 0, "%s", ctl_err);
    cr_assert_str_eq(body(ctl_out), body(first));
    return m;
}

/* A member of m registers and checks out one order of `cents`; returns the member's tier name
 * after it (the programme at work: express upgrade, points). */
static const char *checkout_once(const char *m, int64_t cents, int64_t *points_pending) {
    Loyalty__V1__GatewayRegistration *reg = NULL;
    assert_ok(register_member(m, NULL, "Ana Lima", NULL, NULL, &reg));
    const char *member = reg->member->id;
    Loyalty__V1__GatewayCart *cart = new_cart();
    add_line(cart, "1", "SKU-1", 1, cents);
    Loyalty__V1__GatewayCheckout *co = NULL;
    assert_ok(begin_checkout(m, NULL, "order-prog-1", member, cart, NULL, &co));
    Loyalty__V1__GatewayCheckout *done = NULL;
    assert_ok(complete_checkout(m, co->checkout_id, "psp-prog-1", &done));
    Loyalty__V1__GatewaySaga *saga = wait_saga_final(m, co->checkout_id, 60);
    cr_assert_eq(saga->state, LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_COMPLETED,
                 "checkout state %d", saga->state);
    Loyalty__V1__GatewayGetMemberOverviewRequest r =
        LOYALTY__V1__GATEWAY_GET_MEMBER_OVERVIEW_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.member_id = (char *)member;
    Loyalty__V1__GatewayGetMemberOverviewResponse *ov = NULL;
    assert_ok(call(SVC_GATEWAY, "GetMemberOverview", &r, &ov));
    *points_pending = ov->points->pending;
    return ov->tier->tier->name;
}

Test(programme, examples_round_trip) {
    /* Goal: each example applies to a fresh merchant, a second plan and apply change nothing,
     * and export -> apply -> export is byte for byte stable and copies to another merchant. */
    stack_start();
    const char *storeberry[] = {"+ tiers[\"Diamond\"]",
                                "express_spend_cents: 150000",
                                "+ top_up_plans[\"Top up 300, get 360\"]",
                                "+ points_campaigns[\"Double points December\"]",
                                "~ settings.time_zone: \"UTC\" -> \"Asia/Singapore\"",
                                "~ settings.currency: \"\" -> \"SGD\"",
                                "~ settings.locale: \"\" -> \"en-SG\"",
                                "+ campaigns[WIN_BACK]",
                                "+ promotions[\"Berry 10\"]",
                                "code: \"BERRY10\"",
                                "+ promotions[\"Creator codes\"].codes: a batch of 200 unique "
                                "codes, prefix \"BERRY\"",
                                NULL};
    const char *m = round_trip("storeberry", storeberry);
    /* The programme works: one order of 600.00 (over Gold's express 500.00) makes a new member
     * Gold at once, and earns points (at least 1 per 1.00; how many more depends on the date's
     * double points), pending for the 7-day return window. */
    int64_t pending = 0;
    cr_assert_str_eq(checkout_once(m, 60000, &pending), "Gold");
    cr_assert_geq(pending, 600, "pending %lld", (long long)pending);
    const char *hishop[] = {"+ membership_plans[\"Black card yearly\"]",
                            "tier: \"Black card\"",
                            "~ tag_rules:",
                            "kind: CHECK_IN",
                            "~ gateway.welcome_coupon_templates: [] -> [\"Welcome 10 percent\"]",
                            "+ promotions[\"Weekend gift\"]",
                            "status: PAUSED",
                            "tier: \"Black card\"",
                            NULL};
    round_trip("hishop", hishop);
    cr_assert_eq(ctl("programme --help"), 2);
    assert_err_has("did you mean: programme plan, programme apply, programme export");
    cr_assert_eq(ctl("programme apply --help"), 0);
    assert_out_has("-f FILE");
    cr_assert_eq(ctl("programme plan"), 2);
    assert_err_has("-f FILE is required");
}

Test(programme, malformed_files) {
    /* Goal: unknown keys, wrong types, out-of-range values and unknown names are refused with
     * FILE:LINE:COLUMN and nothing is written. */
    stack_start();
    const char *m = harness_merchant("progbad");
    struct {
        const char *text, *where;
    } cases[] = {
        {"merchant: x\npoints:\n  earn_unit_cents: 100\n  earn_points: 2\n",
         "bad.yaml:4:3: unknown key \"earn_points\""},
        {"tiers:\n  - name: Gold\n    rank: high\n", "bad.yaml:3:11: rank: a whole number"},
        {"tiers:\n  - name: Gold\n    rank: 11\n", "bad.yaml:3:11: rank: 11 is out of range"},
        {"referral:\n  enabled: yes\n", "bad.yaml:2:12: enabled: true or false"},
        {"points:\n  expiry_policy: SOMETIMES\n", "bad.yaml:2:18: expiry_policy: \"SOMETIMES\""},
        {"points: [1, 2\n", "bad.yaml:2:1: "},
        {"wallet:\n  refund_grace_days: -1\n", "bad.yaml:2:22: refund_grace_days: -1 is out"},
        {"membership_plans:\n  - name: Card\n    tier: Nowhere\n",
         "bad.yaml:2:5: membership_plans: tier \"Nowhere\""},
        {"colour: blue\n", "bad.yaml:1:1: unknown section \"colour\""},
        {"settings:\n  colour: blue\n", "bad.yaml:2:3: unknown key \"colour\""},
        {"settings:\n  currency: USD\n", "bad.yaml:2:3: settings: merchant progbad"},
        {"promotions:\n  - name: P\n    codes:\n      batch_size: 0\n",
         "bad.yaml:4:19: batch_size: a whole number 1..10000"},
        {"promotions:\n  - name: P\n    codes:\n      batch_size: 5\n      prefix: AB-1\n",
         "bad.yaml:5:15: prefix: 0..8 letters and digits"},
        {"promotions:\n  - name: P\n    trigger: CODE\n    code_kind: SHARED\n    code: PP1\n"
         "    codes:\n      batch_size: 5\n",
         "bad.yaml:7:7: promotions[\"P\"].codes: only a promotion with trigger CODE"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        spill("bad.yaml", cases[i].text);
        int rc = ctl("programme apply -f %s/bad.yaml --merchant %s", dir, m);
        cr_assert_eq(rc, 2, "case %zu: exit %d\n%s\n%s", i, rc, ctl_out, ctl_err);
        assert_err_has(cases[i].where);
    }
    /* Nothing was written: the merchant still has no tiers. */
    cr_assert_eq(ctl("programme export --merchant %s", m), 0, "%s", ctl_err);
    assert_out_has("tiers: []");
    assert_out_has("membership_plans: []");
    cr_assert_null(strstr(ctl_out, "\nsettings:"), "a record never set is exported:\n%s", ctl_out);
}

static Loyalty__V1__GatewayMerchantSettings *merchant_record(const char *m) {
    Loyalty__V1__GatewayGetMerchantSettingsRequest r =
        LOYALTY__V1__GATEWAY_GET_MERCHANT_SETTINGS_REQUEST__INIT;
    r.merchant_id = (char *)m;
    Loyalty__V1__GatewayGetMerchantSettingsResponse *out = NULL;
    assert_ok(call(SVC_GATEWAY, "GetMerchantSettings", &r, &out));
    return out->settings;
}

Test(programme, settings_are_the_merchant_record) {
    /* Goal: `settings:` is read and written as the gateway's merchant settings record: a first
     * one writes its time zone even when it is the default, a later one names only the changed
     * field, export shows the record, and no service section carries a time zone of its own. */
    stack_start();
    const char *m = harness_merchant("progrec");
    spill("rec.yaml", "settings:\n  time_zone: UTC\npoints:\n  earn_unit_cents: 100\n");
    cr_assert_eq(ctl("programme plan -f %s/rec.yaml --merchant %s", dir, m), 0, "%s", ctl_err);
    assert_out_has("~ settings.time_zone: \"UTC\" -> \"UTC\"");
    cr_assert_eq(merchant_record(m)->version, 0);
    cr_assert_eq(ctl("programme apply -f %s/rec.yaml --merchant %s", dir, m), 0, "%s", ctl_err);
    cr_assert_eq(merchant_record(m)->version, 1);
    cr_assert_eq(ctl("programme plan -f %s/rec.yaml --merchant %s", dir, m), 0, "%s", ctl_err);
    assert_out_has("No changes");
    spill("rec.yaml", "settings:\n  time_zone: UTC\n  locale: en-us\n");
    cr_assert_eq(ctl("programme apply -f %s/rec.yaml --merchant %s", dir, m), 0, "%s", ctl_err);
    assert_out_has("~ settings.locale: \"\" -> \"en-US\"");
    assert_out_has("Applied 1 change ");
    cr_assert_null(strstr(ctl_out, "time_zone"), "%s", ctl_out);
    Loyalty__V1__GatewayMerchantSettings *rec = merchant_record(m);
    cr_assert_eq(rec->version, 2);
    cr_assert_str_eq(rec->time_zone, "UTC");
    cr_assert_str_eq(rec->currency, "");
    cr_assert_str_eq(rec->locale, "en-US");
    cr_assert_eq(ctl("programme plan -f %s/rec.yaml --merchant %s", dir, m), 0, "%s", ctl_err);
    assert_out_has("No changes");
    cr_assert_eq(ctl("programme export --merchant %s", m), 0, "%s", ctl_err);
    assert_out_has("\nsettings:\n  time_zone: \"UTC\"\n  currency: \"\"\n  locale: \"en-US\"\n");
    const char *tz = strstr(ctl_out, "time_zone:");
    cr_assert_null(strstr(tz + 1, "time_zone:"), "a service's own time zone is exported:\n%s",
                   ctl_out);
}

Test(programme, refused_then_rerun) {
    /* Goal: a value the service refuses (points expiring DAYS_AFTER_EARN with expiry_days 0)
     * stops apply after the tiers were created; stderr names what was and was not applied; the
     * fixed file applies just the rest. */
    stack_start();
    const char *m = harness_merchant("progpart");
    spill("part.yaml", "tiers:\n  - name: Base\n    rank: 1\n    earn_multiplier_bps: 10000\n"
                       "points:\n  expiry_policy: DAYS_AFTER_EARN\n  expiry_days: 0\n"
                       "wallet:\n  refund_grace_days: 10\n");
    int rc = ctl("programme apply -f %s/part.yaml --merchant %s", dir, m);
    cr_assert_eq(rc, 1, "exit %d\n%s\n%s", rc, ctl_out, ctl_err);
    assert_err_has("INVALID_ARGUMENT");
    assert_err_has("applied (1): tiers[\"Base\"]");
    assert_err_has("not applied (2): points wallet");
    spill("part.yaml", "tiers:\n  - name: Base\n    rank: 1\n    earn_multiplier_bps: 10000\n"
                       "points:\n  expiry_policy: DAYS_AFTER_EARN\n  expiry_days: 30\n"
                       "wallet:\n  refund_grace_days: 10\n");
    cr_assert_eq(ctl("programme plan -f %s/part.yaml --merchant %s", dir, m), 0, "%s", ctl_err);
    assert_out_has("2 changes");
    cr_assert_null(strstr(ctl_out, "tiers"), "%s", ctl_out);
    cr_assert_eq(ctl("programme apply -f %s/part.yaml --merchant %s", dir, m), 0, "%s", ctl_err);
    assert_out_has("~ points.expiry_days: 0 -> 30");
    assert_out_has("~ wallet.refund_grace_days: 30 -> 10");
    assert_out_has("Applied 2 changes");
    cr_assert_eq(ctl("programme apply -f %s/part.yaml --merchant %s", dir, m), 0, "%s", ctl_err);
    assert_out_has("No changes");
    /* A fixed field: refused before anything is written. */
    spill("part.yaml", "top_up_plans:\n  - name: P\n    pay_cents: 1000\n    bonus_cents: 0\n");
    cr_assert_eq(ctl("programme apply -f %s/part.yaml --merchant %s", dir, m), 0, "%s", ctl_err);
    spill("part.yaml", "top_up_plans:\n  - name: P\n    pay_cents: 2000\n    bonus_cents: 0\n");
    cr_assert_eq(ctl("programme apply -f %s/part.yaml --merchant %s", dir, m), 2, "%s", ctl_out);
    assert_err_has("part.yaml:2:5: top_up_plans[\"P\"].pay_cents cannot change");
}

Test(programme, relay_allows_configuration_only) {
    /* Goal: Gateway.Relay forwards an allowed configuration read and answers with the
     * participant's own message; a method off the allow-list, an unknown service, an inner
     * request for another merchant and bytes that do not decode are refused. */
    stack_start();
    const char *m = harness_merchant("progrelay");
    Loyalty__V1__PointsGetSettingsRequest get = LOYALTY__V1__POINTS_GET_SETTINGS_REQUEST__INIT;
    get.merchant_id = (char *)m;
    Loyalty__V1__GatewayRelayRequest r = LOYALTY__V1__GATEWAY_RELAY_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.service = "loyalty.v1.PointsService";
    r.method = "GetSettings";
    r.request.data = pb_pack_arena(&arena, &get.base, &r.request.len);
    Loyalty__V1__GatewayRelayResponse *out = NULL;
    assert_ok(call(SVC_GATEWAY, "Relay", &r, &out));
    Loyalty__V1__PointsGetSettingsResponse *got =
        (void *)pb_unpack_arena(&arena, &loyalty__v1__points_get_settings_response__descriptor,
                                out->response.data, out->response.len);
    cr_assert_not_null(got);
    cr_assert_str_eq(got->settings->time_zone, "UTC");

    Loyalty__V1__PointsEarnRequest earn = LOYALTY__V1__POINTS_EARN_REQUEST__INIT;
    earn.merchant_id = (char *)m;
    r.method = "Earn";
    r.request.data = pb_pack_arena(&arena, &earn.base, &r.request.len);
    assert_status(call(SVC_GATEWAY, "Relay", &r, NULL), STATUS_INVALID_ARGUMENT,
                  "RELAY_METHOD_NOT_ALLOWED");
    r.service = "loyalty.v1.Gateway";
    r.method = "GetGatewaySettings";
    assert_status(call(SVC_GATEWAY, "Relay", &r, NULL), STATUS_INVALID_ARGUMENT,
                  "RELAY_METHOD_NOT_ALLOWED");

    get.merchant_id = "someone-else";
    r.service = "loyalty.v1.PointsService";
    r.method = "GetSettings";
    r.request.data = pb_pack_arena(&arena, &get.base, &r.request.len);
    assert_status(call(SVC_GATEWAY, "Relay", &r, NULL), STATUS_INVALID_ARGUMENT,
                  "RELAY_MERCHANT_MISMATCH");
    static uint8_t junk[] = {0xff, 0xff, 0xff};
    r.request.data = junk;
    r.request.len = sizeof junk;
    assert_status(call(SVC_GATEWAY, "Relay", &r, NULL), STATUS_INVALID_ARGUMENT, "INVALID_REQUEST");
}

#define PROG_SERVICE_TOKEN "prog-svc-token-5e21"
#define PROG_ADMIN_TOKEN "prog-admin-token-93ad"
#define PROG_OTHER_ADMIN_TOKEN "prog-other-admin-token-0c4e"
#define PROG_SHOP_TOKEN "prog-shop-token-b7f0"

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

Test(programme, admin_credentials_only) {
    /* Goal: with a credential file, the merchant's admin plans, applies and exports through the
     * relay (the gateway's own credential reaches the participants); a storefront credential
     * and another merchant's admin are refused, and nothing is written. */
    const char *m = harness_merchant("progcred");
    char cred_path[128], cred_env[192];
    snprintf(cred_path, sizeof cred_path, "/tmp/loyalty-prog-creds-%d", (int)getpid());
    FILE *f = fopen(cred_path, "w");
    cr_assert_not_null(f);
    write_credential(f, "prog-admin", "admin", m, PROG_ADMIN_TOKEN);
    write_credential(f, "prog-other-admin", "admin", "progcred-other", PROG_OTHER_ADMIN_TOKEN);
    write_credential(f, "prog-shop", "storefront", m, PROG_SHOP_TOKEN);
    cr_assert_eq(fclose(f), 0);
    snprintf(cred_env, sizeof cred_env, "LOYALTY_CREDENTIALS_FILE=%s", cred_path);
    stack_start_with((const char *[]){"LOYALTY_AUTH_TOKEN=" PROG_SERVICE_TOKEN, cred_env, NULL});

    spill("cred.yaml", "settings:\n  time_zone: Europe/Lisbon\n"
                       "tiers:\n  - name: Base\n    rank: 1\n    earn_multiplier_bps: 10000\n");
    char args[256];
    snprintf(args, sizeof args, "programme apply -f %s/cred.yaml --merchant %s", dir, m);
    cr_assert_eq(ctl_env("LOYALTY_TOKEN=" PROG_SHOP_TOKEN, args), 1, "%s", ctl_out);
    assert_err_has("refused: PERMISSION_DENIED ROLE_NOT_ALLOWED");
    cr_assert_eq(ctl_env("LOYALTY_TOKEN=" PROG_OTHER_ADMIN_TOKEN, args), 1, "%s", ctl_out);
    assert_err_has("refused: PERMISSION_DENIED MERCHANT_NOT_ALLOWED");
    const char *admin = "LOYALTY_TOKEN=" PROG_ADMIN_TOKEN;
    cr_assert_eq(ctl_env(admin, args), 0, "%s", ctl_err);
    assert_out_has("+ tiers[\"Base\"]");
    assert_out_has("~ settings.time_zone: \"UTC\" -> \"Europe/Lisbon\"");
    assert_out_has("Applied 2 changes");
    snprintf(args, sizeof args, "programme plan -f %s/cred.yaml --merchant %s", dir, m);
    cr_assert_eq(ctl_env(admin, args), 0, "%s", ctl_err);
    assert_out_has("No changes");
    snprintf(args, sizeof args, "programme export --merchant %s", m);
    cr_assert_eq(ctl_env(admin, args), 0, "%s", ctl_err);
    assert_out_has("  time_zone: \"Europe/Lisbon\"");
    unlink(cred_path);
}

Test(programme, values_as_the_services_store_them) {
    /* Goal: what the services normalise (tags lower-cased, a shared code upper-cased, event
     * rules by kind without the zero ones, level rules by level) plans empty after apply. */
    stack_start();
    const char *m = harness_merchant("prognorm");
    spill("norm.yaml",
          "tag_rules:\n  - tag: Regular\n    metric: ORDERS_COUNT\n    op: GTE\n    threshold: 3\n"
          "points:\n  event_rules:\n    - kind: REGISTRATION\n      points: 10\n"
          "    - kind: BIRTHDAY\n      points: 0\n    - kind: CHECK_IN\n      points: 2\n"
          "referral:\n  enabled: true\n  levels: 2\n  level_rules:\n"
          "    - level: 2\n      enabled: true\n      registration_points: 5\n"
          "    - level: 1\n      enabled: true\n      registration_points: 10\n"
          "promotions:\n  - name: Code\n    trigger: CODE\n    code_kind: SHARED\n"
          "    code: save5\n    amount_off:\n      amount_off_cents: 500\n"
          "    limits:\n      - scope: TOTAL\n        max_uses: 10\n");
    int rc = ctl("programme apply -f %s/norm.yaml --merchant %s", dir, m);
    cr_assert_eq(rc, 0, "%s\n%s", ctl_out, ctl_err);
    cr_assert_eq(ctl("programme plan -f %s/norm.yaml --merchant %s", dir, m), 0, "%s", ctl_err);
    assert_out_has("No changes");
    cr_assert_eq(ctl("programme export --merchant %s", m), 0, "%s", ctl_err);
    assert_out_has("code: \"SAVE5\"");
    assert_out_has("tag: \"regular\"");
}

/* The promotion named `name` of m, through promo-svc itself. */
static const Loyalty__V1__Promotion *promotion_named(const char *m, const char *name) {
    Loyalty__V1__PromoListPromotionsRequest r = LOYALTY__V1__PROMO_LIST_PROMOTIONS_REQUEST__INIT;
    r.merchant_id = (char *)m;
    Loyalty__V1__PromoListPromotionsResponse *out = NULL;
    assert_ok(call(SVC_PROMO, "ListPromotions", &r, &out));
    for (size_t i = 0; i < out->n_promotions; i++) {
        if (strcmp(out->promotions[i]->name, name) == 0) {
            return out->promotions[i];
        }
    }
    cr_assert_fail("no promotion %s", name);
    return NULL;
}

/* The unique codes of a promotion (at most one page of 500), through promo-svc itself. */
static Loyalty__V1__PromoListPromoCodesResponse *codes_of(const char *m, const char *promotion) {
    Loyalty__V1__PromoListPromoCodesRequest r = LOYALTY__V1__PROMO_LIST_PROMO_CODES_REQUEST__INIT;
    Loyalty__V1__PageRequest page = LOYALTY__V1__PAGE_REQUEST__INIT;
    page.page_size = 500;
    r.merchant_id = (char *)m;
    r.promotion_id = (char *)promotion;
    r.page = &page;
    Loyalty__V1__PromoListPromoCodesResponse *out = NULL;
    assert_ok(call(SVC_PROMO, "ListPromoCodes", &r, &out));
    return out;
}

Test(programme, promo_code_batches) {
    /* Goal: a promotion's `codes:` generates one batch of unique codes with the prefix; plan
     * and apply again generate no second batch; export shows the batch (its size and prefix),
     * not the codes, and applies to another merchant as the same batch; a batch cannot change
     * once generated (refused with the line and column, nothing written). */
    stack_start();
    const char *m = harness_merchant("progcodes");
    const char *m2 = harness_merchant("progcodes");
    spill("codes.yaml", "promotions:\n  - name: Spring\n    trigger: CODE\n    code_kind: UNIQUE\n"
                        "    amount_off:\n      amount_off_cents: 500\n"
                        "    codes:\n      batch_size: 25\n      prefix: spr\n");
    int rc = ctl("programme apply -f %s/codes.yaml --merchant %s", dir, m);
    cr_assert_eq(rc, 0, "%s\n%s", ctl_out, ctl_err);
    assert_out_has("+ promotions[\"Spring\"]\n");
    assert_out_has("+ promotions[\"Spring\"].codes: a batch of 25 unique codes, prefix \"SPR\"");
    assert_out_has("2 changes for merchant");
    const Loyalty__V1__Promotion *p = promotion_named(m, "Spring");
    Loyalty__V1__PromoListPromoCodesResponse *codes = codes_of(m, p->id);
    cr_assert_eq(codes->n_codes, 25);
    for (size_t i = 0; i < codes->n_codes; i++) {
        cr_assert_eq(strncmp(codes->codes[i]->code, "SPR", 3), 0, "%s", codes->codes[i]->code);
        cr_assert_str_eq(codes->codes[i]->batch_id, codes->codes[0]->batch_id);
    }
    char first_code[64];
    snprintf(first_code, sizeof first_code, "%s", codes->codes[0]->code);
    cr_assert_eq(ctl("programme plan -f %s/codes.yaml --merchant %s", dir, m), 0, "%s", ctl_err);
    assert_out_has("No changes");
    cr_assert_eq(ctl("programme apply -f %s/codes.yaml --merchant %s", dir, m), 0, "%s", ctl_err);
    assert_out_has("No changes");
    cr_assert_eq(codes_of(m, p->id)->n_codes, 25);
    /* The export: the batch, not the codes. */
    cr_assert_eq(ctl("programme export --merchant %s", m), 0, "%s", ctl_err);
    assert_out_has("    codes:\n      batch_size: 25\n      prefix: \"SPR\"\n");
    cr_assert_null(strstr(ctl_out, first_code), "a code is exported:\n%s", ctl_out);
    static char exported[131072];
    snprintf(exported, sizeof exported, "%s", ctl_out);
    spill("codes-export.yaml", exported);
    rc = ctl("programme apply -f %s/codes-export.yaml --merchant %s", dir, m2);
    cr_assert_eq(rc, 0, "%s\n%s", ctl_out, ctl_err);
    assert_out_has("+ promotions[\"Spring\"].codes: a batch of 25");
    cr_assert_eq(codes_of(m2, promotion_named(m2, "Spring")->id)->n_codes, 25);
    cr_assert_eq(ctl("programme export --merchant %s", m2), 0, "%s", ctl_err);
    cr_assert_str_eq(body(ctl_out), body(exported));
    /* A batch once generated does not change. */
    spill("codes.yaml", "promotions:\n  - name: Spring\n    codes:\n      batch_size: 30\n"
                        "      prefix: SPR\n");
    rc = ctl("programme apply -f %s/codes.yaml --merchant %s", dir, m);
    cr_assert_eq(rc, 2, "%s\n%s", ctl_out, ctl_err);
    assert_err_has("codes.yaml:4:7: promotions[\"Spring\"].codes: the promotion has its codes (25");
    cr_assert_eq(codes_of(m, p->id)->n_codes, 25);
}
