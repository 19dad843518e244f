/* test_loyaltyctl.c -- the real loyaltyctl binary against the six real services (README
 * "loyaltyctl"): health lists six ready services; a checkout made to need attention is listed,
 * shown with its failed step and retried to completion; ledger verify of a clean merchant;
 * member show by id, phone and external id; exit 2 on usage errors, 1 with the gRPC code and
 * reason on refusals (a wrong token among them); audit lists a configuration change with its
 * credential and refuses a storefront; merchant set changes only the settings it is given
 * and merchant settings shows the record and its pushes; and every -o json output parses
 * (python's json module). */
#include "credentials.h"
#include "gateway_it.h"

#include <errno.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define S_ATTENTION LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_NEEDS_ATTENTION
#define S_COMPLETED LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_COMPLETED

TestSuite(loyaltyctl, .init = it_setup, .fini = it_teardown, .timeout = 600);

static char ctl_out[65536];
static char ctl_err[8192];

/* Reads a whole (small) file into buf; "" when missing. */
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

/* Runs `env <env> loyaltyctl <args>` (LOYALTY_GATEWAY_ADDR pointing at the test's gateway);
 * stdout in ctl_out, stderr in ctl_err; returns the exit code. */
static int ctl_env(const char *env, const char *args) {
    static char dir[128];
    if (dir[0] == '\0') {
        snprintf(dir, sizeof dir, "/tmp/ctl-it-%d", (int)getpid());
        cr_assert_eq(mkdir(dir, 0700) == 0 || errno == EEXIST, true);
    }
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "env -u LOYALTY_TOKEN -u LOYALTY_AUTH_TOKEN LOYALTY_GATEWAY_ADDR=%s %s "
             "%s/tools/loyaltyctl %s >%s/out 2>%s/err",
             procs[SVC_GATEWAY].addr, env, LOYALTY_TEST_BUILD_DIR, args, dir, dir);
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

/* Checks ctl_out with python's json module: it must parse, and `check` (a Python expression
 * over `d`, the parsed object) must be true. */
static void assert_json(const char *check) {
    char path[128];
    snprintf(path, sizeof path, "/tmp/ctl-it-%d/json", (int)getpid());
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fputs(ctl_out, f);
    fclose(f);
    char script[128];
    snprintf(script, sizeof script, "/tmp/ctl-it-%d/check.py", (int)getpid());
    f = fopen(script, "wb");
    cr_assert_not_null(f);
    fprintf(f, "import json, sys\nd = json.load(open(sys.argv[1]))\nsys.exit(0 if (%s) else 3)\n",
            check);
    fclose(f);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s", script, path);
    int ws = system(cmd);
    cr_assert(ws != -1 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0,
              "the JSON does not parse or fails `%s`:\n%s", check, ctl_out);
}

#define assert_out_has(text)                                                                       \
    cr_assert(strstr(ctl_out, (text)) != NULL, "no `%s` in:\n%s\nstderr:\n%s", (text), ctl_out,    \
              ctl_err)
#define assert_err_has(text)                                                                       \
    cr_assert(strstr(ctl_err, (text)) != NULL, "no `%s` in stderr:\n%s", (text), ctl_err)

Test(loyaltyctl, health_sagas_and_ledgers) {
    /* Goal: health lists the six services ready; a checkout stopped on a deactivated plan is
     * found by sagas list (by merchant and across merchants, by state and age), shown with the
     * refused step, retried after the plan is fixed, and completes; the merchant's ledgers are
     * clean. Every -o json parses. */
    stack_start();
    cr_assert_eq(ctl("health"), 0, "%s%s", ctl_out, ctl_err);
    const char *services[] = {"gateway",    "member-svc",   "points-svc",
                              "wallet-svc", "referral-svc", "promo-svc"};
    for (size_t i = 0; i < sizeof services / sizeof services[0]; i++) {
        char row[64];
        snprintf(row, sizeof row, "\n%-13s ", services[i]);
        assert_out_has(row);
    }
    cr_assert_null(strstr(ctl_out, " NO "), "%s", ctl_out);
    assert_out_has("PostgreSQL up");
    cr_assert_eq(ctl("health -o json"), 0);
    assert_json("d['all_ready'] and d['database_up'] and len(d['services']) == 6 and "
                "all(s['ready'] and s['status'] == 'SERVING' for s in d['services']) and "
                "[s['service'] for s in d['services']] == ['gateway', 'member-svc', "
                "'points-svc', 'wallet-svc', 'referral-svc', 'promo-svc']");

    shop_t s;
    open_shop(&s, "ctl");
    const char *b = new_buyer(&s, 0, 0);
    Loyalty__V1__MemberPlan *plan = create_plan(s.m, s.gold->id, true);
    Loyalty__V1__GatewayCart *cart = new_cart();
    Loyalty__V1__GatewayCartLine *ml = add_line(cart, "gold", "gold-yearly", 1, 9900);
    ml->kind = LOYALTY__V1__GATEWAY_LINE_KIND__GATEWAY_LINE_KIND_MEMBERSHIP;
    ml->membership_plan_id = plan->id;
    Loyalty__V1__GatewayCheckout *co = NULL;
    assert_ok(begin_checkout(s.m, NULL, "order-ctl", b, cart, NULL, &co));
    set_plan_active(s.m, plan, false);
    Loyalty__V1__GatewayCheckout *done = NULL;
    assert_ok(complete_checkout(s.m, co->checkout_id, "psp-ctl", &done));
    cr_assert_eq(done->state, S_ATTENTION, "state %d", done->state);
    const char *id = co->checkout_id;

    cr_assert_eq(ctl("sagas list --merchant %s --state NEEDS_ATTENTION", s.m), 0, "%s", ctl_err);
    assert_out_has(id);
    assert_out_has("PLAN_INACTIVE");
    /* Across merchants, by age: it was updated just now, so not older than an hour. */
    cr_assert_eq(ctl("sagas list --state needs_attention --older-than 0s -o json"), 0, "%s",
                 ctl_err);
    char check[512];
    snprintf(check, sizeof check,
             "any(x['id'] == '%s' and x['state'] == 'GATEWAY_SAGA_STATE_NEEDS_ATTENTION' and "
             "x['reason'] == 'PLAN_INACTIVE' for x in d['sagas'])",
             id);
    assert_json(check);
    cr_assert_eq(ctl("sagas list --merchant %s --older-than 1h -o json", s.m), 0);
    assert_json("d['sagas'] == []");
    cr_assert_eq(ctl("-o json sagas list --merchant %s --kind CHECKOUT --limit 1", s.m), 0);
    assert_json("len(d['sagas']) == 1");

    cr_assert_eq(ctl("saga show %s --merchant %s", id, s.m), 0, "%s", ctl_err);
    assert_out_has("NEEDS_ATTENTION PLAN_INACTIVE");
    assert_out_has("FAILED_PRECONDITION PLAN_INACTIVE");
    assert_out_has("promo_reserve");
    cr_assert_eq(ctl("saga show %s --merchant %s -o json", id, s.m), 0);
    snprintf(check, sizeof check,
             "d['saga']['id'] == '%s' and any(st['state'] == 'GATEWAY_STEP_STATE_FAILED' and "
             "st['error']['reason'] == 'PLAN_INACTIVE' for st in d['saga']['steps'])",
             id);
    assert_json(check);

    set_plan_active(s.m, plan, true);
    cr_assert_eq(ctl("saga retry %s --merchant %s", id, s.m), 0, "%s", ctl_err);
    assert_out_has("COMPLETING");
    Loyalty__V1__GatewaySaga *saga = wait_saga_final(s.m, id, 30);
    cr_assert_eq(saga->state, S_COMPLETED, "state %d (%s)", saga->state, saga->reason);
    /* A saga that does not need attention: refused, with the code and reason. */
    cr_assert_eq(ctl("saga retry %s --merchant %s", id, s.m), 1);
    assert_err_has("FAILED_PRECONDITION SAGA_NOT_RETRYABLE");
    cr_assert_eq(ctl("saga show sag_nope --merchant %s", s.m), 1);
    assert_err_has("NOT_FOUND");

    cr_assert_eq(ctl("ledger verify --merchant %s", s.m), 0, "%s%s", ctl_out, ctl_err);
    assert_out_has("points: ok");
    assert_out_has("wallet: ok");
    cr_assert_eq(ctl("ledger verify --merchant %s -o json", s.m), 0);
    assert_json("d['ok'] and d['points']['ok'] and d['wallet']['ok'] and "
                "d['points']['members_checked'] >= 1");
}

Test(loyaltyctl, member_show_by_id_phone_and_external_id) {
    /* Goal: member show finds the member by id, by phone and by external id, with balances, tier
     * history and the recent checkout; an unknown one is refused NOT_FOUND (exit 1). */
    stack_start();
    shop_t s;
    open_shop(&s, "ctlm");
    Loyalty__V1__GatewayRegistration *reg = NULL;
    assert_ok(register_member(s.m, NULL, "Kim Tan", "+6591000088", NULL, &reg));
    const char *mid = reg->member->id;
    give_points(s.m, mid, 300);
    Loyalty__V1__GatewayCheckout *co = NULL;
    assert_ok(begin_checkout(s.m, NULL, "order-kim", mid, shirt_cart(), NULL, &co));
    assert_ok(complete_checkout(s.m, co->checkout_id, "psp-kim", NULL));

    Loyalty__V1__MemberProfile p = LOYALTY__V1__MEMBER_PROFILE__INIT;
    p.name = "Lee";
    Loyalty__V1__CreateMemberRequest cm = LOYALTY__V1__CREATE_MEMBER_REQUEST__INIT;
    cm.merchant_id = (char *)s.m;
    cm.idempotency_key = (char *)harness_key();
    cm.profile = &p;
    cm.external_id = "crm-4711";
    Loyalty__V1__CreateMemberResponse *lee = NULL;
    assert_ok(call(SVC_MEMBER, "CreateMember", &cm, &lee));

    cr_assert_eq(ctl("member show --merchant %s %s", s.m, mid), 0, "%s", ctl_err);
    assert_out_has(mid);
    assert_out_has("Kim Tan");
    assert_out_has("order-kim");
    assert_out_has("TIER HISTORY");
    cr_assert_eq(ctl("member show --merchant %s %s -o json", s.m, mid), 0);
    assert_json("d['overview']['member']['profile']['name'] == 'Kim Tan' and "
                "d['overview']['points']['available'] > 0 and d['stats']['order_count'] == 1 and "
                "d['recent_orders'][0]['order_id'] == 'order-kim' and "
                "len(d['tier_history']) >= 1 and d['overview']['unavailable'] == []");

    cr_assert_eq(ctl("member show --merchant %s +6591000088", s.m), 0, "%s", ctl_err);
    assert_out_has(mid);
    cr_assert_eq(ctl("member show --merchant %s crm-4711 -o json", s.m), 0, "%s", ctl_err);
    char check[256];
    snprintf(check, sizeof check, "d['overview']['member']['id'] == '%s'", lee->member->id);
    assert_json(check);
    cr_assert_eq(ctl("member show --merchant %s crm-4711 --by external-id", s.m), 0);
    assert_out_has("Lee");

    cr_assert_eq(ctl("member show --merchant %s nobody-here", s.m), 1);
    assert_err_has("NOT_FOUND MEMBER_NOT_FOUND");
    cr_assert_eq(ctl("member show --merchant %s +6591000099", s.m), 1);
    assert_err_has("NOT_FOUND MEMBER_NOT_FOUND");
}

/* loyaltyctl pointed at a port nobody listens on. */
/* How many times `needle` occurs in ctl_out. */
static int out_count(const char *needle) {
    int n = 0;
    for (const char *p = strstr(ctl_out, needle); p != NULL; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

Test(loyaltyctl, merchant_settings_shown_and_set) {
    /* Goal: merchant settings shows a record never set; merchant set refuses a first update
     * without a time zone and a malformed currency (exit 1, with the reason; nothing written),
     * changes only the fields it is given (the rest stay), and the record's pushes reach the
     * four services (merchant settings lists them in sync; -o json parses). */
    stack_start();
    const char *m = harness_merchant("ctlmerch");
    cr_assert_eq(ctl("merchant settings --merchant %s", m), 0, "%s", ctl_err);
    assert_out_has("version     0 (never set)");
    assert_out_has("time_zone   UTC");
    cr_assert_eq(ctl("merchant set --merchant %s --currency SGD", m), 1, "%s", ctl_out);
    assert_err_has("TIME_ZONE_REQUIRED");
    cr_assert_eq(ctl("merchant set --merchant %s --time-zone Asia/Singapore --currency SGD", m), 0,
                 "%s", ctl_err);
    assert_out_has("time_zone   Asia/Singapore");
    assert_out_has("currency    SGD");
    assert_out_has("locale      -");
    assert_out_has("version     1\n");
    cr_assert_eq(ctl("merchant set --merchant %s --locale en-sg", m), 0, "%s", ctl_err);
    assert_out_has("time_zone   Asia/Singapore");
    assert_out_has("currency    SGD");
    assert_out_has("locale      en-SG");
    assert_out_has("version     2\n");
    cr_assert_eq(ctl("merchant set --merchant %s --currency sgd", m), 1, "%s", ctl_out);
    assert_err_has("INVALID_SETTINGS_CURRENCY");
    cr_assert_eq(ctl("merchant set --merchant %s --time-zone Mars/Olympus -o json", m), 1, "%s",
                 ctl_out);
    assert_err_has("INVALID_SETTINGS_TIME_ZONE");
    /* The pushes: every service confirms the record's time zone (in sync). Version 2 changed
     * only the locale, so a push made before it confirms version 1 and one made after it
     * version 2; either is in sync. Polled; the job pushes within a second or so, retrying
     * with backoff: the bound is a count of polls, generous for a busy machine. */
    for (int poll = 0;; poll++) {
        cr_assert_eq(ctl("merchant settings --merchant %s", m), 0, "%s", ctl_err);
        if (out_count(" yes ") == 4) {
            break;
        }
        cr_assert(poll < 1500, "the pushes did not all confirm after %d polls:\n%s", poll, ctl_out);
        sleep_ms(200);
    }
    assert_out_has("member-svc");
    assert_out_has("promo-svc");
    cr_assert_eq(ctl("merchant settings --merchant %s -o json", m), 0, "%s", ctl_err);
    assert_json("d['settings']['time_zone'] == 'Asia/Singapore' and "
                "d['settings']['currency'] == 'SGD' and d['settings']['version'] == 2 and "
                "len(d['pushes']) == 4 and all(p['in_sync'] for p in d['pushes'])");
    cr_assert_eq(ctl("merchant set --merchant %s --currency USD -o json", m), 0, "%s", ctl_err);
    assert_json("d['settings']['currency'] == 'USD' and d['settings']['locale'] == 'en-SG' and "
                "d['settings']['version'] == 3");
}

#define NOWHERE "LOYALTY_GATEWAY_ADDR=127.0.0.1:1"
#define usage(args) ctl_env(NOWHERE, args)

Test(loyaltyctl, usage_errors_exit_2_and_help_documents_every_command) {
    /* Goal: usage errors exit 2 before any call (the gateway address leads nowhere, so a call
     * would exit 1); --help exits 0 and names every command; each command's --help lists its
     * options. */
    cr_assert_eq(ctl_env(NOWHERE, ""), 2);
    cr_assert_eq(usage("bogus"), 2);
    assert_err_has("unknown command bogus");
    cr_assert_eq(usage("sagas"), 2);
    cr_assert_eq(usage("saga show"), 2);
    assert_err_has("usage: loyaltyctl saga show");
    cr_assert_eq(usage("saga show sag_1"), 2);
    assert_err_has("--merchant is required");
    cr_assert_eq(usage("ledger verify"), 2);
    cr_assert_eq(usage("member show --merchant m1"), 2);
    cr_assert_eq(usage("member show --merchant m1 a b"), 2);
    cr_assert_eq(usage("member show --merchant m1 x --by nickname"), 2);
    cr_assert_eq(usage("sagas list --state STUCK"), 2);
    cr_assert_eq(usage("sagas list --older-than 15y"), 2);
    cr_assert_eq(usage("sagas list --limit 0"), 2);
    cr_assert_eq(usage("sagas list --merchant"), 2);
    cr_assert_eq(usage("health --wat"), 2);
    cr_assert_eq(usage("health -o yaml"), 2);
    cr_assert_eq(usage("--timeout 0 health"), 2);
    cr_assert_eq(usage("audit"), 2);
    assert_err_has("--merchant is required");
    cr_assert_eq(usage("audit --merchant m1 --since yesterday"), 2);
    cr_assert_eq(usage("audit --merchant m1 --since 0"), 2);
    cr_assert_eq(usage("audit --merchant m1 --limit 10001"), 2);
    cr_assert_eq(usage("merchant settings"), 2);
    assert_err_has("--merchant is required");
    cr_assert_eq(usage("merchant set --merchant m1"), 2);
    assert_err_has("nothing to set");
    cr_assert_eq(usage("merchant set --merchant m1 --time-zone"), 2);
    cr_assert_eq(usage("merchant settings --merchant m1 --currency SGD"), 2);
    cr_assert_eq(ctl_env("LOYALTY_GATEWAY_ADDR=", "health"), 2);
    assert_err_has("LOYALTY_GATEWAY_ADDR");

    cr_assert_eq(usage("--help"), 0);
    const char *commands[] = {"health",     "sagas list",        "saga show",
                              "saga retry", "ledger verify",     "member show",
                              "audit",      "merchant settings", "merchant set"};
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        assert_out_has(commands[i]);
    }
    assert_out_has("LOYALTY_TOKEN");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        char args[64], line[64];
        snprintf(args, sizeof args, "%s --help", commands[i]);
        cr_assert_eq(usage(args), 0);
        snprintf(line, sizeof line, "usage: loyaltyctl %s", commands[i]);
        assert_out_has(line);
        assert_out_has("-o table|json");
    }
    cr_assert_eq(usage("sagas list --help"), 0);
    assert_out_has("--older-than");
    assert_out_has("NEEDS_ATTENTION");
    cr_assert_eq(usage("audit --help"), 0);
    assert_out_has("--since");
    assert_out_has("before -> after");
    cr_assert_eq(usage("merchant set --help"), 0);
    assert_out_has("--time-zone Z");
    assert_out_has("--currency C");
    assert_out_has("--locale L");
    assert_out_has("update_mask");
}

Test(loyaltyctl, the_services_token_and_a_refused_token) {
    /* Goal: with auth on, loyaltyctl sends LOYALTY_TOKEN, else the services' own
     * LOYALTY_AUTH_TOKEN; a wrong token is refused UNAUTHENTICATED (exit 1, code printed). */
    const char *extra[] = {"LOYALTY_AUTH_TOKEN=ctl-shared-token-3f1a", NULL};
    stack_start_with(extra);
    cr_assert_eq(ctl_env("LOYALTY_AUTH_TOKEN=ctl-shared-token-3f1a", "health"), 0, "%s", ctl_err);
    cr_assert_eq(ctl_env("LOYALTY_TOKEN=ctl-shared-token-3f1a", "health -o json"), 0, "%s",
                 ctl_err);
    assert_json("d['all_ready']");
    cr_assert_eq(ctl_env("LOYALTY_TOKEN=not-the-token", "health"), 1);
    assert_err_has("refused: UNAUTHENTICATED");
    cr_assert_eq(ctl_env("", "sagas list"), 1);
    assert_err_has("UNAUTHENTICATED");
}

#define CTL_SERVICE_TOKEN "ctl-audit-svc-token-81c2"
#define CTL_ADMIN_TOKEN "ctl-audit-admin-token-4d07"
#define CTL_OTHER_ADMIN_TOKEN "ctl-audit-other-admin-token-e6b9"
#define CTL_SHOP_TOKEN "ctl-audit-shop-token-2a5f"

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

Test(loyaltyctl, audit_lists_configuration_changes_and_refuses_a_storefront) {
    /* Goal: after a tier is created and the gateway's settings are updated by the merchant's
     * admin, `audit` lists both, newest first, with the credential id, RPC, idempotency key and
     * the changed row; --limit stops early, --since in the future lists nothing; -o json
     * parses; a storefront credential, another merchant's admin and a wrong token are refused
     * with exit 1 and the code and reason. */
    const char *m = harness_merchant("ctlaudit");
    char cred_path[128], cred_env[192];
    snprintf(cred_path, sizeof cred_path, "/tmp/loyalty-ctl-audit-creds-%d", (int)getpid());
    FILE *f = fopen(cred_path, "w");
    cr_assert_not_null(f);
    write_credential(f, "ctl-admin", "admin", m, CTL_ADMIN_TOKEN);
    write_credential(f, "ctl-other-admin", "admin", "ctlaudit-other", CTL_OTHER_ADMIN_TOKEN);
    write_credential(f, "ctl-shop", "storefront", m, CTL_SHOP_TOKEN);
    cr_assert_eq(fclose(f), 0);
    snprintf(cred_env, sizeof cred_env, "LOYALTY_CREDENTIALS_FILE=%s", cred_path);
    stack_start_with((const char *[]){"LOYALTY_AUTH_TOKEN=" CTL_SERVICE_TOKEN, cred_env, NULL});

    rpc_call_opts_t as_admin = {.timeout_ms = 20000, .auth_token = CTL_ADMIN_TOKEN};
    Loyalty__V1__MemberTier tier = LOYALTY__V1__MEMBER_TIER__INIT;
    tier.name = "Audited";
    tier.rank = 1;
    tier.upgrade_threshold = 100;
    tier.period_months = 12;
    tier.earn_multiplier_bps = 10000;
    Loyalty__V1__MemberCreateTierRequest ct = LOYALTY__V1__MEMBER_CREATE_TIER_REQUEST__INIT;
    ct.merchant_id = (char *)m;
    ct.idempotency_key = "ctl-audit-tier-1";
    ct.tier = &tier;
    assert_ok(rpc_call(rpc_channel_get(procs[SVC_MEMBER].addr), svc_desc[SVC_MEMBER], "CreateTier",
                       &ct.base, &arena, NULL, &as_admin));
    Loyalty__V1__GatewaySettings gs = LOYALTY__V1__GATEWAY_SETTINGS__INIT;
    Loyalty__V1__GatewayUpdateSettingsRequest us =
        LOYALTY__V1__GATEWAY_UPDATE_SETTINGS_REQUEST__INIT;
    us.merchant_id = (char *)m;
    us.idempotency_key = "ctl-audit-settings-1";
    us.settings = &gs;
    us.update_mask = HARNESS_MASK("welcome_coupon_template_ids");
    assert_ok(rpc_call(rpc_channel_get(procs[SVC_GATEWAY].addr), svc_desc[SVC_GATEWAY],
                       "UpdateGatewaySettings", &us.base, &arena, NULL, &as_admin));

    const char *admin = "LOYALTY_TOKEN=" CTL_ADMIN_TOKEN;
    char args[256];
    snprintf(args, sizeof args, "audit --merchant %s", m);
    cr_assert_eq(ctl_env(admin, args), 0, "%s", ctl_err);
    assert_out_has("IDEMPOTENCY KEY");
    assert_out_has("/loyalty.v1.MemberService/CreateTier");
    assert_out_has("ctl-audit-tier-1");
    assert_out_has("ctl-admin");
    assert_out_has("member-svc");
    assert_out_has("    tiers INSERT - -> {");
    assert_out_has("\"Audited\"");
    assert_out_has("ctl-audit-settings-1");
    cr_assert_lt(strstr(ctl_out, "UpdateGatewaySettings"), strstr(ctl_out, "CreateTier"),
                 "not newest first:\n%s", ctl_out);
    cr_assert_null(strstr(ctl_out, "(more than"), "%s", ctl_out);

    snprintf(args, sizeof args, "audit --merchant %s -o json --since 1h", m);
    cr_assert_eq(ctl_env(admin, args), 0, "%s", ctl_err);
    assert_json("len(d['entries']) == 2 and d['page_info']['next_cursor'] == '' and "
                "d['entries'][1]['rpc'] == '/loyalty.v1.MemberService/CreateTier' and "
                "d['entries'][1]['credential_id'] == 'ctl-admin' and "
                "d['entries'][1]['idempotency_key'] == 'ctl-audit-tier-1' and "
                "any(c['table'] == 'tiers' and c['op'] == 'INSERT' and "
                "json.loads(c['after_json'])['name'] == 'Audited' "
                "for c in d['entries'][1]['changes'])");
    /* --limit 1 follows no further than one entry and says there is more. */
    snprintf(args, sizeof args, "audit --merchant %s --limit 1", m);
    cr_assert_eq(ctl_env(admin, args), 0, "%s", ctl_err);
    assert_out_has("UpdateGatewaySettings");
    cr_assert_null(strstr(ctl_out, "CreateTier"), "%s", ctl_out);
    assert_out_has("(more than 1;");
    snprintf(args, sizeof args, "audit --merchant %s --limit 1 -o json", m);
    cr_assert_eq(ctl_env(admin, args), 0, "%s", ctl_err);
    assert_json("len(d['entries']) == 1 and d['page_info']['next_cursor'] != ''");
    /* Since an instant a day from now: nothing yet. */
    snprintf(args, sizeof args, "audit --merchant %s --since %lld -o json", m,
             (long long)time(NULL) + 86400);
    cr_assert_eq(ctl_env(admin, args), 0, "%s", ctl_err);
    assert_json("d['entries'] == []");
    /* The services' own token may list it too. */
    snprintf(args, sizeof args, "audit --merchant %s -o json", m);
    cr_assert_eq(ctl_env("LOYALTY_AUTH_TOKEN=" CTL_SERVICE_TOKEN, args), 0, "%s", ctl_err);
    assert_json("len(d['entries']) == 2");

    snprintf(args, sizeof args, "audit --merchant %s", m);
    cr_assert_eq(ctl_env("LOYALTY_TOKEN=" CTL_SHOP_TOKEN, args), 1, "%s", ctl_out);
    assert_err_has("refused: PERMISSION_DENIED ROLE_NOT_ALLOWED");
    cr_assert_eq(ctl_env("LOYALTY_TOKEN=" CTL_OTHER_ADMIN_TOKEN, args), 1, "%s", ctl_out);
    assert_err_has("refused: PERMISSION_DENIED MERCHANT_NOT_ALLOWED");
    cr_assert_eq(ctl_env("LOYALTY_TOKEN=not-the-token", args), 1, "%s", ctl_out);
    assert_err_has("refused: UNAUTHENTICATED");
    cr_assert_null(strstr(ctl_out, "ctl-audit-tier-1"), "%s", ctl_out);
    unlink(cred_path);
}
