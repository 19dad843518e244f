/* gateway_it.h -- helpers of the gateway's integration tests: the six real services started
 * together (the gateway pointed at the other five), one call per RPC with the usual arguments,
 * merchant set-up (points rules, wallet plans, promotions, coupons, referral programme, tiers),
 * balances, and the participants' ledger checks. Static functions: each test file includes it
 * once. */
#ifndef GATEWAY_IT_H
#define GATEWAY_IT_H

#include "harness.h"
#include "loyalty/v1/gateway.pb-c.h"
#include "loyalty/v1/member.pb-c.h"
#include "loyalty/v1/points.pb-c.h"
#include "loyalty/v1/promo.pb-c.h"
#include "loyalty/v1/referral.pb-c.h"
#include "loyalty/v1/wallet.pb-c.h"
#include "member_client.h"
#include "pb.h"

#include <criterion/criterion.h>
#include <libpq-fe.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { SVC_MEMBER, SVC_POINTS, SVC_WALLET, SVC_REFERRAL, SVC_PROMO, SVC_GATEWAY, SVC_N };

static const char *const svc_names[SVC_N] = {"member-svc",   "points-svc", "wallet-svc",
                                             "referral-svc", "promo-svc",  "gateway"};

static svc_proc_t procs[SVC_N];
static arena_t arena;
static char addr_env[5][96];
/* Extra gateway environment for one test (e.g. GATEWAY_FAILPOINT), NULL-terminated. */
static const char *gw_extra_env[8];

/* Every test runs its six services on a database of its own: the gateway's recovery job takes
 * over any unfinished saga in its database, so a gateway of a test running alongside (with
 * another failpoint, say) must not see this test's sagas. */
static char pg_env[640];
static const char *participant_env[2];

static inline const char *const *svc_env(void) {
    if (pg_env[0] == '\0') {
        snprintf(pg_env, sizeof pg_env, "LOYALTY_PG_DSN=%s", harness_private_database());
        participant_env[0] = pg_env;
        participant_env[1] = NULL;
    }
    return participant_env;
}

/* The DSN of the test's database (for SQL that moves time in a participant's tables). */
static inline const char *test_dsn(void) {
    svc_env();
    return pg_env + strlen("LOYALTY_PG_DSN=");
}

/* The gateway's environment: short timeouts so that crash and outage tests run quickly. */
static inline void gw_env(const char **env) {
    static const char *const vars[5] = {"MEMBER_SVC_ADDR", "POINTS_SVC_ADDR", "WALLET_SVC_ADDR",
                                        "REFERRAL_SVC_ADDR", "PROMO_SVC_ADDR"};
    int n = 0;
    env[n++] = svc_env()[0];
    for (int i = 0; i < 5; i++) {
        snprintf(addr_env[i], sizeof addr_env[i], "%s=%s", vars[i], procs[i].addr);
        env[n++] = addr_env[i];
    }
    env[n++] = "RPC_CLIENT_TIMEOUT_MS=2000";
    env[n++] = "GATEWAY_LEASE_S=4";
    env[n++] = "GATEWAY_RECOVERY_INTERVAL_S=1";
    env[n++] = "GATEWAY_BEGIN_GRACE_S=2";
    for (int i = 0; gw_extra_env[i] && n < HARNESS_ENV_MAX; i++) {
        env[n++] = gw_extra_env[i];
    }
    env[n] = NULL;
}

static inline void stack_start(void) {
    for (int i = 0; i < SVC_GATEWAY; i++) {
        harness_start(&procs[i], svc_names[i], svc_env());
    }
    static const char *env[HARNESS_ENV_MAX + 1];
    gw_env(env);
    harness_start(&procs[SVC_GATEWAY], "gateway", env);
}

/* The six services with `extra` ("KEY=VALUE", NULL-terminated, at most 6) added to every one's
 * environment, e.g. a shared token and a credential file. */
static inline void stack_start_with(const char *const *extra) {
    enum { EXTRA_MAX = 6 };
    static const char *env[EXTRA_MAX + 2];
    int n = 0;
    env[n++] = svc_env()[0];
    for (int i = 0; extra[i] != NULL; i++) {
        cr_assert(i < EXTRA_MAX, "at most %d extra variables", EXTRA_MAX);
        env[n++] = extra[i];
        gw_extra_env[i] = extra[i];
        gw_extra_env[i + 1] = NULL;
    }
    env[n] = NULL;
    for (int i = 0; i < SVC_GATEWAY; i++) {
        harness_start(&procs[i], svc_names[i], env);
    }
    static const char *gw[HARNESS_ENV_MAX + 1];
    gw_env(gw);
    harness_start(&procs[SVC_GATEWAY], "gateway", gw);
}

static inline void it_setup(void) {
    harness_init();
    arena_init(&arena);
    memset(procs, 0, sizeof procs);
    pg_env[0] = '\0';
}

static inline void it_teardown(void) {
    for (int i = SVC_N - 1; i >= 0; i--) {
        if (procs[i].pid > 0) {
            cr_expect_eq(harness_stop(&procs[i]), 0, "%s did not exit cleanly; see %s",
                         svc_names[i], procs[i].log_path);
        }
    }
    arena_free(&arena);
    harness_fini();
}

static inline void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ---- calls ---- */

static const ProtobufCServiceDescriptor *const svc_desc[SVC_N] = {
    &loyalty__v1__member_service__descriptor, &loyalty__v1__points_service__descriptor,
    &loyalty__v1__wallet_service__descriptor, &loyalty__v1__referral_service__descriptor,
    &loyalty__v1__promo_service__descriptor,  &loyalty__v1__gateway__descriptor};

static inline status_t call_in(arena_t *a, int svc, const char *method, const void *req,
                               void *resp_out) {
    rpc_call_opts_t opts = {.timeout_ms = 20000};
    return rpc_call(rpc_channel_get(procs[svc].addr), svc_desc[svc], method,
                    (const ProtobufCMessage *)req, a, (ProtobufCMessage **)resp_out, &opts);
}

static inline status_t call(int svc, const char *method, const void *req, void *resp_out) {
    return call_in(&arena, svc, method, req, resp_out);
}

#define gw(method, req, resp) call(SVC_GATEWAY, method, req, resp)

/* ---- merchant set-up ---- */

/* Points: 1 point per 1.00 paid, 100 points = 1.00 (min 100 points, at most 50% of an order),
 * 1 growth per point, no expiry, no pending period, no event points unless asked. */
static inline void set_points_rules(const char *m, int64_t registration_points,
                                    int64_t check_in_points, int64_t order_bonus) {
    Loyalty__V1__PointsSettings s = LOYALTY__V1__POINTS_SETTINGS__INIT;
    s.time_zone = "UTC";
    s.earn_unit_cents = 100;
    s.earn_points_per_unit = 1;
    s.expiry_policy = LOYALTY__V1__POINTS_EXPIRY_POLICY__POINTS_EXPIRY_POLICY_NEVER;
    s.redeem_points = 100;
    s.redeem_value_cents = 100;
    s.redeem_min_points = 100;
    s.redeem_max_order_share_bps = 5000;
    s.growth_per_point_bps = 10000;
    Loyalty__V1__PointsEventRule rules[3];
    Loyalty__V1__PointsEventRule *rp[3];
    size_t n = 0;
    int64_t pts[3] = {registration_points, check_in_points, order_bonus};
    int kinds[3] = {LOYALTY__V1__POINTS_EVENT_KIND__POINTS_EVENT_KIND_REGISTRATION,
                    LOYALTY__V1__POINTS_EVENT_KIND__POINTS_EVENT_KIND_CHECK_IN,
                    LOYALTY__V1__POINTS_EVENT_KIND__POINTS_EVENT_KIND_ORDER};
    for (int i = 0; i < 3; i++) {
        if (pts[i] > 0) {
            loyalty__v1__points_event_rule__init(&rules[n]);
            rules[n].kind = kinds[i];
            rules[n].points = pts[i];
            rp[n] = &rules[n];
            n++;
        }
    }
    s.event_rules = rp;
    s.n_event_rules = n;
    Loyalty__V1__PointsUpdateSettingsRequest r = LOYALTY__V1__POINTS_UPDATE_SETTINGS_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.idempotency_key = (char *)harness_key();
    r.settings = &s;
    r.update_mask =
        HARNESS_MASK("time_zone", "earn_unit_cents", "earn_points_per_unit", "event_rules",
                     "expiry_policy", "expiry_days", "expiry_months", "pending_days",
                     "redeem_points", "redeem_value_cents", "redeem_min_points",
                     "redeem_max_order_share_bps", "growth_per_point_bps", "growth_per_unit");
    assert_ok(call(SVC_POINTS, "UpdateSettings", &r, NULL));
}

/* A member of m named `name` (member_client.h's request), created through the suite's call. */
static inline const char *create_member(const char *m, const char *name) {
    Loyalty__V1__CreateMemberResponse *resp = NULL;
    assert_ok(call(SVC_MEMBER, "CreateMember",
                   member_create_request(&arena, m, &(member_spec_t){.name = name}), &resp));
    return resp->member->id;
}

/* member-svc's statistics of a member (its automatic tags and points balance among them). */
static inline Loyalty__V1__MemberStats *member_stats(const char *m, const char *member) {
    Loyalty__V1__MemberGetStatsRequest r = LOYALTY__V1__MEMBER_GET_STATS_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.member_id = (char *)member;
    Loyalty__V1__MemberGetStatsResponse *resp = NULL;
    assert_ok(call(SVC_MEMBER, "GetMemberStats", &r, &resp));
    return resp->stats;
}

/* The merchant's one tag rule: `tag` for a points balance of `threshold` or more. */
static inline void set_balance_tag_rule(const char *m, const char *tag, int64_t threshold) {
    Loyalty__V1__MemberTagRule rule = LOYALTY__V1__MEMBER_TAG_RULE__INIT;
    rule.tag = (char *)tag;
    rule.metric = LOYALTY__V1__MEMBER_TAG_METRIC__MEMBER_TAG_METRIC_POINTS_BALANCE;
    rule.op = LOYALTY__V1__MEMBER_TAG_OPERATOR__MEMBER_TAG_OPERATOR_GTE;
    rule.threshold = threshold;
    Loyalty__V1__MemberTagRule *rules[] = {&rule};
    Loyalty__V1__MemberSetTagRulesRequest tr = LOYALTY__V1__MEMBER_SET_TAG_RULES_REQUEST__INIT;
    tr.merchant_id = (char *)m;
    tr.idempotency_key = (char *)harness_key();
    tr.rules = rules;
    tr.n_rules = 1;
    assert_ok(call(SVC_MEMBER, "SetTagRules", &tr, NULL));
}

/* Gives a member points directly (an adjustment). */
static inline void give_points(const char *m, const char *member, int64_t points) {
    Loyalty__V1__PointsAdjustRequest r = LOYALTY__V1__POINTS_ADJUST_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.idempotency_key = (char *)harness_key();
    r.member_id = (char *)member;
    r.points = points;
    r.reason = "test opening balance";
    r.operator_ = "test";
    assert_ok(call(SVC_POINTS, "Adjust", &r, NULL));
}

/* Gives a member wallet money directly (a top-up without plan). */
static inline void give_wallet(const char *m, const char *member, int64_t cents) {
    Loyalty__V1__WalletTopUpRequest r = LOYALTY__V1__WALLET_TOP_UP_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.idempotency_key = (char *)harness_key();
    r.member_id = (char *)member;
    r.paid_cents = cents;
    r.payment_ref = (char *)harness_key();
    assert_ok(call(SVC_WALLET, "TopUp", &r, NULL));
}

static inline Loyalty__V1__PointsBalance *points_balance(const char *m, const char *member) {
    Loyalty__V1__PointsGetBalanceRequest r = LOYALTY__V1__POINTS_GET_BALANCE_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.member_id = (char *)member;
    Loyalty__V1__PointsGetBalanceResponse *resp = NULL;
    assert_ok(call(SVC_POINTS, "GetBalance", &r, &resp));
    return resp->balance;
}

static inline Loyalty__V1__WalletBalance *wallet_balance(const char *m, const char *member) {
    Loyalty__V1__WalletGetBalanceRequest r = LOYALTY__V1__WALLET_GET_BALANCE_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.member_id = (char *)member;
    Loyalty__V1__WalletGetBalanceResponse *resp = NULL;
    assert_ok(call(SVC_WALLET, "GetBalance", &r, &resp));
    return resp->balance;
}

/* Both ledgers of the merchant verify clean. */
static inline void assert_ledgers_clean(const char *m) {
    Loyalty__V1__PointsVerifyLedgerRequest p = LOYALTY__V1__POINTS_VERIFY_LEDGER_REQUEST__INIT;
    p.merchant_id = (char *)m;
    Loyalty__V1__PointsVerifyLedgerResponse *pr = NULL;
    assert_ok(call(SVC_POINTS, "VerifyLedger", &p, &pr));
    cr_assert(pr->ok, "points ledger: %zu differences, first %s", pr->n_differences,
              pr->n_differences ? pr->differences[0]->check : "");
    Loyalty__V1__WalletVerifyLedgerRequest w = LOYALTY__V1__WALLET_VERIFY_LEDGER_REQUEST__INIT;
    w.merchant_id = (char *)m;
    Loyalty__V1__WalletVerifyLedgerResponse *wr = NULL;
    assert_ok(call(SVC_WALLET, "VerifyLedger", &w, &wr));
    cr_assert(wr->ok, "wallet ledger: %zu differences, first %s", wr->n_differences,
              wr->n_differences ? wr->differences[0]->check : "");
}

static inline Loyalty__V1__PromoCouponTemplate *create_template(const char *m, const char *name,
                                                                int64_t amount_off,
                                                                int64_t min_spend,
                                                                int64_t total_max) {
    Loyalty__V1__PromoCouponTemplate *t = arena_alloc(&arena, sizeof *t);
    loyalty__v1__promo_coupon_template__init(t);
    t->name = (char *)name;
    t->kind = LOYALTY__V1__PROMO_COUPON_KIND__PROMO_COUPON_KIND_AMOUNT_OFF;
    t->amount_off_cents = amount_off;
    t->min_spend_cents = min_spend;
    t->valid_days = 30;
    t->total_max = total_max;
    Loyalty__V1__PromoCreateCouponTemplateRequest r =
        LOYALTY__V1__PROMO_CREATE_COUPON_TEMPLATE_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.idempotency_key = (char *)harness_key();
    r.coupon_template = t;
    Loyalty__V1__PromoCreateCouponTemplateResponse *resp = NULL;
    assert_ok(call(SVC_PROMO, "CreateCouponTemplate", &r, &resp));
    return resp->coupon_template;
}

static inline Loyalty__V1__PromoCoupon *issue_coupon(const char *m, const char *member,
                                                     const char *template_id) {
    Loyalty__V1__PromoIssueCouponRequest r = LOYALTY__V1__PROMO_ISSUE_COUPON_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.idempotency_key = (char *)harness_key();
    r.member_id = (char *)member;
    r.template_id = (char *)template_id;
    r.source = LOYALTY__V1__PROMO_COUPON_SOURCE__PROMO_COUPON_SOURCE_MANUAL;
    Loyalty__V1__PromoIssueCouponResponse *resp = NULL;
    assert_ok(call(SVC_PROMO, "IssueCoupon", &r, &resp));
    return resp->coupon;
}

static inline Loyalty__V1__PromoCoupon **member_coupons(const char *m, const char *member,
                                                        int status, size_t *n) {
    Loyalty__V1__PromoListCouponsRequest r = LOYALTY__V1__PROMO_LIST_COUPONS_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.member_id = (char *)member;
    r.status = status;
    Loyalty__V1__PromoListCouponsResponse *resp = NULL;
    assert_ok(call(SVC_PROMO, "ListCoupons", &r, &resp));
    *n = resp->n_coupons;
    return resp->coupons;
}

/* A referral programme: `levels` levels with these registration points and purchase bps. */
static inline void set_referral_program(const char *m, int levels,
                                        const int64_t *registration_points,
                                        const int32_t *purchase_bps, int64_t welcome_points,
                                        int32_t hold_days) {
    Loyalty__V1__ReferralLevelRule rules[3];
    Loyalty__V1__ReferralLevelRule *rp[3];
    for (int i = 0; i < levels; i++) {
        loyalty__v1__referral_level_rule__init(&rules[i]);
        rules[i].level = i + 1;
        rules[i].enabled = true;
        rules[i].registration_points = registration_points[i];
        if (purchase_bps[i] > 0) {
            rules[i].purchase_reward_kind =
                LOYALTY__V1__REFERRAL_PURCHASE_REWARD_KIND__REFERRAL_PURCHASE_REWARD_KIND_BPS;
            rules[i].purchase_bps = purchase_bps[i];
        }
        rp[i] = &rules[i];
    }
    Loyalty__V1__ReferralProgram p = LOYALTY__V1__REFERRAL_PROGRAM__INIT;
    p.enabled = true;
    p.levels = levels;
    p.level_rules = rp;
    p.n_level_rules = (size_t)levels;
    p.welcome_points = welcome_points;
    p.purchase_hold_days = hold_days;
    p.share_url_template = "https://shop.example/join?ref={code}";
    Loyalty__V1__ReferralSetProgramRequest r = LOYALTY__V1__REFERRAL_SET_PROGRAM_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.idempotency_key = (char *)harness_key();
    r.program = &p;
    assert_ok(call(SVC_REFERRAL, "SetReferralProgram", &r, NULL));
}

static inline const char *referral_code(const char *m, const char *member) {
    Loyalty__V1__ReferralGetCodeRequest r = LOYALTY__V1__REFERRAL_GET_CODE_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.member_id = (char *)member;
    Loyalty__V1__ReferralGetCodeResponse *resp = NULL;
    assert_ok(call(SVC_REFERRAL, "GetReferralCode", &r, &resp));
    return resp->code;
}

/* RegisterMember through the gateway. */
static inline status_t register_member(const char *m, const char *key, const char *name,
                                       const char *phone, const char *code,
                                       Loyalty__V1__GatewayRegistration **out) {
    Loyalty__V1__MemberProfile *p = arena_alloc(&arena, sizeof *p);
    loyalty__v1__member_profile__init(p);
    p->name = (char *)name;
    p->phone = (char *)(phone ? phone : "");
    Loyalty__V1__GatewayRegisterMemberRequest r =
        LOYALTY__V1__GATEWAY_REGISTER_MEMBER_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.idempotency_key = (char *)(key ? key : harness_key());
    r.profile = p;
    r.referral_code = (char *)(code ? code : "");
    Loyalty__V1__GatewayRegisterMemberResponse *resp = NULL;
    status_t st = gw("RegisterMember", &r, &resp);
    if (out) {
        *out = status_is_ok(&st) ? resp->registration : NULL;
    }
    return st;
}

/* Polls GetSaga until the saga reaches a final state (COMPLETED, CANCELLED, NEEDS_ATTENTION) or
 * the timeout passes; returns it. */
static inline Loyalty__V1__GatewaySaga *wait_saga_final(const char *m, const char *saga_id,
                                                        int timeout_s) {
    Loyalty__V1__GatewayGetSagaRequest r = LOYALTY__V1__GATEWAY_GET_SAGA_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.saga_id = (char *)saga_id;
    time_t until = time(NULL) + timeout_s;
    for (;;) {
        Loyalty__V1__GatewayGetSagaResponse *resp = NULL;
        status_t st = gw("GetSaga", &r, &resp);
        if (status_is_ok(&st)) {
            int s = resp->saga->state;
            if (s == LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_COMPLETED ||
                s == LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_CANCELLED ||
                s == LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_NEEDS_ATTENTION ||
                time(NULL) >= until) {
                return resp->saga;
            }
        } else if (time(NULL) >= until) {
            cr_assert_fail("GetSaga %s: %s", saga_id, st.message);
        }
        sleep_ms(200);
    }
}

static inline const Loyalty__V1__GatewayStep *
find_step(const Loyalty__V1__GatewayStep *const *steps, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++) {
        if (strcmp(steps[i]->name, name) == 0) {
            return steps[i];
        }
    }
    return NULL;
}

/* A shared-code promotion: amount_off cents off, at most total_uses orders (0 = no limit). */
static inline Loyalty__V1__Promotion *
create_code_promotion(const char *m, const char *code, int64_t amount_off, int64_t total_uses) {
    Loyalty__V1__Promotion *p = arena_alloc(&arena, sizeof *p);
    loyalty__v1__promotion__init(p);
    p->name = (char *)code;
    p->trigger = LOYALTY__V1__PROMO_TRIGGER__PROMO_TRIGGER_CODE;
    p->code_kind = LOYALTY__V1__PROMO_CODE_KIND__PROMO_CODE_KIND_SHARED;
    p->code = (char *)code;
    p->rule_case = LOYALTY__V1__PROMOTION__RULE_AMOUNT_OFF;
    p->amount_off = arena_alloc(&arena, sizeof *p->amount_off);
    loyalty__v1__promo_amount_off__init(p->amount_off);
    p->amount_off->amount_off_cents = amount_off;
    if (total_uses > 0) {
        Loyalty__V1__PromoLimit *l = arena_alloc(&arena, sizeof *l);
        loyalty__v1__promo_limit__init(l);
        l->scope = LOYALTY__V1__PROMO_LIMIT_SCOPE__PROMO_LIMIT_SCOPE_TOTAL;
        l->period = LOYALTY__V1__PROMO_LIMIT_PERIOD__PROMO_LIMIT_PERIOD_LIFETIME;
        l->max_uses = total_uses;
        p->limits = arena_alloc(&arena, sizeof *p->limits);
        p->limits[0] = l;
        p->n_limits = 1;
    }
    Loyalty__V1__PromoCreatePromotionRequest r = LOYALTY__V1__PROMO_CREATE_PROMOTION_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.idempotency_key = (char *)harness_key();
    r.promotion = p;
    Loyalty__V1__PromoCreatePromotionResponse *resp = NULL;
    assert_ok(call(SVC_PROMO, "CreatePromotion", &r, &resp));
    return resp->promotion;
}

static inline Loyalty__V1__MemberTier *create_tier(const char *m, const char *name, int rank,
                                                   int64_t threshold, int32_t discount_bps,
                                                   int32_t multiplier_bps) {
    Loyalty__V1__MemberTier t = LOYALTY__V1__MEMBER_TIER__INIT;
    t.name = (char *)name;
    t.rank = rank;
    t.upgrade_threshold = threshold;
    t.retain_threshold = 0;
    t.period_months = 12;
    t.discount_bps = discount_bps;
    t.earn_multiplier_bps = multiplier_bps;
    Loyalty__V1__MemberCreateTierRequest r = LOYALTY__V1__MEMBER_CREATE_TIER_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.idempotency_key = (char *)harness_key();
    r.tier = &t;
    Loyalty__V1__MemberCreateTierResponse *resp = NULL;
    assert_ok(call(SVC_MEMBER, "CreateTier", &r, &resp));
    return resp->tier;
}

static inline Loyalty__V1__MemberTierStatus *member_tier(const char *m, const char *member) {
    Loyalty__V1__MemberGetTierRequest r = LOYALTY__V1__MEMBER_GET_TIER_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.member_id = (char *)member;
    Loyalty__V1__MemberGetTierResponse *resp = NULL;
    assert_ok(call(SVC_MEMBER, "GetMemberTier", &r, &resp));
    return resp->status;
}

/* Attaches referee below the owner of code, directly at referral-svc. */
static inline void attach(const char *m, const char *referee, const char *code) {
    Loyalty__V1__ReferralAttachRequest r = LOYALTY__V1__REFERRAL_ATTACH_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.idempotency_key = (char *)harness_key();
    r.referee_member_id = (char *)referee;
    r.code = (char *)code;
    assert_ok(call(SVC_REFERRAL, "AttachReferral", &r, NULL));
}

/* ---- carts and checkouts ---- */

static inline Loyalty__V1__GatewayCart *new_cart(void) {
    Loyalty__V1__GatewayCart *c = arena_alloc(&arena, sizeof *c);
    loyalty__v1__gateway_cart__init(c);
    c->lines = arena_alloc(&arena, 16 * sizeof *c->lines);
    c->codes = arena_alloc(&arena, 8 * sizeof *c->codes);
    c->coupon_ids = arena_alloc(&arena, 8 * sizeof *c->coupon_ids);
    c->coupon_codes = arena_alloc(&arena, 8 * sizeof *c->coupon_codes);
    return c;
}

static inline Loyalty__V1__GatewayCartLine *add_line(Loyalty__V1__GatewayCart *c, const char *id,
                                                     const char *sku, int64_t qty,
                                                     int64_t unit_price) {
    Loyalty__V1__GatewayCartLine *l = arena_alloc(&arena, sizeof *l);
    loyalty__v1__gateway_cart_line__init(l);
    l->line_id = (char *)id;
    l->sku = (char *)sku;
    l->category = "general";
    l->quantity = qty;
    l->unit_price_cents = unit_price;
    c->lines[c->n_lines++] = l;
    return l;
}

static inline Loyalty__V1__GatewayPaymentChoice *pay(int64_t points, int64_t wallet) {
    Loyalty__V1__GatewayPaymentChoice *p = arena_alloc(&arena, sizeof *p);
    loyalty__v1__gateway_payment_choice__init(p);
    p->redeem_points = points;
    p->wallet_cents = wallet;
    return p;
}

static inline status_t begin_checkout(const char *m, const char *key, const char *order,
                                      const char *member, Loyalty__V1__GatewayCart *cart,
                                      Loyalty__V1__GatewayPaymentChoice *payment,
                                      Loyalty__V1__GatewayCheckout **out) {
    Loyalty__V1__GatewayBeginCheckoutRequest r = LOYALTY__V1__GATEWAY_BEGIN_CHECKOUT_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.idempotency_key = (char *)(key ? key : harness_key());
    r.order_id = (char *)order;
    r.member_id = (char *)member;
    r.cart = cart;
    r.payment = payment;
    Loyalty__V1__GatewayBeginCheckoutResponse *resp = NULL;
    status_t st = gw("BeginCheckout", &r, &resp);
    if (out) {
        *out = status_is_ok(&st) ? resp->checkout : NULL;
    }
    return st;
}

static inline status_t complete_checkout(const char *m, const char *checkout_id,
                                         const char *payment_ref,
                                         Loyalty__V1__GatewayCheckout **out) {
    Loyalty__V1__GatewayCompleteCheckoutRequest r =
        LOYALTY__V1__GATEWAY_COMPLETE_CHECKOUT_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.checkout_id = (char *)checkout_id;
    r.payment_ref = (char *)(payment_ref ? payment_ref : "");
    Loyalty__V1__GatewayCompleteCheckoutResponse *resp = NULL;
    status_t st = gw("CompleteCheckout", &r, &resp);
    if (out) {
        *out = status_is_ok(&st) ? resp->checkout : NULL;
    }
    return st;
}

static inline Loyalty__V1__GatewayCheckout *get_checkout(const char *m, const char *checkout_id) {
    Loyalty__V1__GatewayGetCheckoutRequest r = LOYALTY__V1__GATEWAY_GET_CHECKOUT_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.target_case = LOYALTY__V1__GATEWAY_GET_CHECKOUT_REQUEST__TARGET_CHECKOUT_ID;
    r.checkout_id = (char *)checkout_id;
    Loyalty__V1__GatewayGetCheckoutResponse *resp = NULL;
    assert_ok(gw("GetCheckout", &r, &resp));
    return resp->checkout;
}

static inline status_t refund_amount(const char *m, const char *key, const char *order,
                                     int64_t amount, Loyalty__V1__GatewayRefund **out) {
    Loyalty__V1__GatewayRefundOrderRequest r = LOYALTY__V1__GATEWAY_REFUND_ORDER_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.idempotency_key = (char *)(key ? key : harness_key());
    r.order_id = (char *)order;
    r.what_case = LOYALTY__V1__GATEWAY_REFUND_ORDER_REQUEST__WHAT_AMOUNT_CENTS;
    r.amount_cents = amount;
    Loyalty__V1__GatewayRefundOrderResponse *resp = NULL;
    status_t st = gw("RefundOrder", &r, &resp);
    if (out) {
        *out = status_is_ok(&st) ? resp->refund : NULL;
    }
    return st;
}

/* ---- the shop most checkout tests use ---- */

typedef struct shop {
    const char *m;
    Loyalty__V1__MemberTier *bronze, *gold;
    Loyalty__V1__PromoCouponTemplate *five_off;
    const char *r1, *r2, *r3; /* the buyer's upline, level 1..3 */
} shop_t;

/* Points: 1 point per 1.00, 100 points = 1.00, min 100, at most 50% of an order, 1 growth per
 * point. Tiers on growth: Bronze from 0 (5% off, 1x), Gold from 80 (10% off, 2x). Promotion
 * SAVE10: 10.00 off with the code. Coupon template: 5.00 off. Referral: 10%, 5%, 2% of the paid
 * amount as points to levels 1, 2, 3, granted at once. */
static inline void open_shop(shop_t *s, const char *prefix) {
    s->m = harness_merchant(prefix);
    set_points_rules(s->m, 0, 0, 0);
    s->bronze = create_tier(s->m, "Bronze", 1, 0, 500, 10000);
    s->gold = create_tier(s->m, "Gold", 2, 80, 1000, 20000);
    create_code_promotion(s->m, "SAVE10", 1000, 0);
    s->five_off = create_template(s->m, "5 off", 500, 0, 0);
    int64_t reg[3] = {0, 0, 0};
    int32_t bps[3] = {1000, 500, 200};
    set_referral_program(s->m, 3, reg, bps, 0, 0);
    s->r3 = create_member(s->m, "Root");
    s->r2 = create_member(s->m, "Level two");
    attach(s->m, s->r2, referral_code(s->m, s->r3));
    s->r1 = create_member(s->m, "Level one");
    attach(s->m, s->r1, referral_code(s->m, s->r2));
}

static inline const char *new_buyer(shop_t *s, int64_t points, int64_t wallet) {
    const char *b = create_member(s->m, "Buyer");
    attach(s->m, b, referral_code(s->m, s->r1));
    if (points > 0) {
        give_points(s->m, b, points);
    }
    if (wallet > 0) {
        give_wallet(s->m, b, wallet);
    }
    return b;
}

/* A yearly membership plan of 99.00 for the tier (ops and loyaltyctl tests deactivate it
 * between Begin and Complete to make a checkout need attention). */
static inline Loyalty__V1__MemberPlan *create_plan(const char *m, const char *tier_id,
                                                   bool active) {
    Loyalty__V1__MemberPlan plan = LOYALTY__V1__MEMBER_PLAN__INIT;
    plan.name = "Gold yearly";
    plan.tier_id = (char *)tier_id;
    plan.period = LOYALTY__V1__MEMBER_PLAN_PERIOD__MEMBER_PLAN_PERIOD_YEARLY;
    plan.price_cents = 9900;
    plan.active = active;
    Loyalty__V1__MemberCreatePlanRequest r = LOYALTY__V1__MEMBER_CREATE_PLAN_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.idempotency_key = (char *)harness_key();
    r.plan = &plan;
    Loyalty__V1__MemberCreatePlanResponse *resp = NULL;
    assert_ok(call(SVC_MEMBER, "CreateMembershipPlan", &r, &resp));
    return resp->plan;
}

static inline void set_plan_active(const char *m, Loyalty__V1__MemberPlan *plan, bool active) {
    plan->active = active;
    Loyalty__V1__MemberUpdatePlanRequest r = LOYALTY__V1__MEMBER_UPDATE_PLAN_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.idempotency_key = (char *)harness_key();
    r.plan_id = plan->id;
    r.plan = plan;
    r.update_mask = HARNESS_MASK("active");
    assert_ok(call(SVC_MEMBER, "UpdateMembershipPlan", &r, NULL));
}

/* The Begin of a load test's checkout, in `a` (thread-safe): one tea at 40.00 paid with `points`
 * points and wallet_cents from the wallet, the rest outside; the order id is its key. */
static inline Loyalty__V1__GatewayBeginCheckoutRequest *
tea_checkout(arena_t *a, const char *m, const char *member, const char *order, int64_t points,
             int64_t wallet_cents) {
    Loyalty__V1__GatewayCartLine *l = pb_new(a, &loyalty__v1__gateway_cart_line__descriptor);
    l->line_id = "1";
    l->sku = "tea";
    l->quantity = 1;
    l->unit_price_cents = 4000;
    Loyalty__V1__GatewayCart *cart = pb_new(a, &loyalty__v1__gateway_cart__descriptor);
    cart->lines = arena_alloc(a, sizeof *cart->lines);
    cart->lines[0] = l;
    cart->n_lines = 1;
    Loyalty__V1__GatewayPaymentChoice *p =
        pb_new(a, &loyalty__v1__gateway_payment_choice__descriptor);
    p->redeem_points = points;
    p->wallet_cents = wallet_cents;
    Loyalty__V1__GatewayBeginCheckoutRequest *b =
        pb_new(a, &loyalty__v1__gateway_begin_checkout_request__descriptor);
    b->merchant_id = (char *)m;
    b->idempotency_key = arena_strdup(a, order);
    b->order_id = b->idempotency_key;
    b->member_id = (char *)member;
    b->cart = cart;
    b->payment = p;
    return b;
}

/* 2 x shirt at 50.00 and 1 x socks at 20.00, 5.00 shipping. */
static inline Loyalty__V1__GatewayCart *shirt_cart(void) {
    Loyalty__V1__GatewayCart *c = new_cart();
    add_line(c, "A", "shirt", 2, 5000);
    add_line(c, "B", "socks", 1, 2000);
    c->shipping_cents = 500;
    return c;
}

static inline const Loyalty__V1__PromoQuoteLine *quote_line(const Loyalty__V1__GatewayCheckout *co,
                                                            const char *id) {
    for (size_t i = 0; i < co->breakdown->quote->n_lines; i++) {
        if (strcmp(co->breakdown->quote->lines[i]->line_id, id) == 0) {
            return co->breakdown->quote->lines[i];
        }
    }
    cr_assert_fail("no line %s", id);
    return NULL;
}

static inline int coupon_status(const char *m, const char *coupon_id) {
    Loyalty__V1__PromoGetCouponRequest r = LOYALTY__V1__PROMO_GET_COUPON_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.coupon_id = (char *)coupon_id;
    Loyalty__V1__PromoGetCouponResponse *resp = NULL;
    assert_ok(call(SVC_PROMO, "GetCoupon", &r, &resp));
    return resp->coupon->status;
}

#define COUPON_AVAILABLE LOYALTY__V1__PROMO_COUPON_STATUS__PROMO_COUPON_STATUS_AVAILABLE
#define COUPON_USED LOYALTY__V1__PROMO_COUPON_STATUS__PROMO_COUPON_STATUS_USED
#define S_RESERVED LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_RESERVED
#define S_COMPLETED LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_COMPLETED
#define S_CANCELLED LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_CANCELLED

#endif
