/* test_domain_events.c -- domain events on `loyalty:events` from the participants themselves,
 * through each service's transactional outbox: one entry per change (none for a replayed
 * request), with a unique event_id, the service and the subject; published after Redis comes
 * back when it was down. Real services, a private database and a private Redis. */
#include "harness.h"
#include "loyalty/v1/member.pb-c.h"
#include "loyalty/v1/points.pb-c.h"
#include "loyalty/v1/promo.pb-c.h"
#include "loyalty/v1/referral.pb-c.h"
#include "loyalty/v1/wallet.pb-c.h"
#include "member_client.h"
#include "points_client.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static redis_proc_t redis;
static svc_proc_t member, points, wallet, referral, promo;
static arena_t arena;

static void setup(void) {
    harness_init();
    arena_init(&arena);
    harness_redis_start(&redis);
    static char redis_env[96], pg_env[512];
    snprintf(redis_env, sizeof redis_env, "LOYALTY_REDIS_URL=%s", redis.url);
    snprintf(pg_env, sizeof pg_env, "LOYALTY_PG_DSN=%s", harness_private_database());
    const char *env[] = {redis_env, pg_env, NULL};
    harness_start(&member, "member-svc", env);
    harness_start(&points, "points-svc", env);
    harness_start(&wallet, "wallet-svc", env);
    harness_start(&referral, "referral-svc", env);
    harness_start(&promo, "promo-svc", env);
}

static void teardown(void) {
    svc_proc_t *all[] = {&member, &points, &wallet, &referral, &promo};
    for (int i = 0; i < 5; i++) {
        if (all[i]->pid > 0) {
            cr_expect_eq(harness_stop(all[i]), 0, "%s did not exit cleanly; see %s", all[i]->name,
                         all[i]->log_path);
        }
    }
    harness_redis_stop(&redis);
    arena_free(&arena);
    harness_fini();
}

TestSuite(domain_events, .init = setup, .fini = teardown, .timeout = 120);

#define OK(expr)                                                                                   \
    do {                                                                                           \
        status_t st_ = (expr);                                                                     \
        cr_assert(status_is_ok(&st_), "%s: %s %s %s", #expr, status_code_name(st_.code),           \
                  st_.reason, st_.message);                                                        \
    } while (0)

typedef struct event {
    char event_id[48];
    char service[32];
    char subject_id[64];
    char payload[1024];
} event_t;

/* Events of merchant m and `type`, waiting up to 10 s for `want` of them. */
static int events(const char *m, const char *type, int want, event_t *out, int max) {
    int n = 0;
    for (int attempt = 0; attempt < 200; attempt++) {
        redisContext *c = redisConnect("127.0.0.1", redis.port);
        cr_assert(c && !c->err);
        redisReply *r = redisCommand(c, "XRANGE loyalty:events - +");
        n = 0;
        for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
            redisReply *f = r->element[i]->element[1];
            event_t e;
            memset(&e, 0, sizeof e);
            bool merchant = false, kind = false;
            for (size_t k = 0; k + 1 < f->elements; k += 2) {
                const char *key = f->element[k]->str, *v = f->element[k + 1]->str;
                merchant |= strcmp(key, "merchant_id") == 0 && strcmp(v, m) == 0;
                kind |= strcmp(key, "type") == 0 && strcmp(v, type) == 0;
                if (strcmp(key, "event_id") == 0) {
                    snprintf(e.event_id, sizeof e.event_id, "%s", v);
                } else if (strcmp(key, "service") == 0) {
                    snprintf(e.service, sizeof e.service, "%s", v);
                } else if (strcmp(key, "subject_id") == 0) {
                    snprintf(e.subject_id, sizeof e.subject_id, "%s", v);
                } else if (strcmp(key, "payload") == 0) {
                    snprintf(e.payload, sizeof e.payload, "%s", v);
                }
            }
            if (merchant && kind && n < max) {
                out[n++] = e;
            }
        }
        freeReplyObject(r);
        redisFree(c);
        if (n >= want) {
            break;
        }
        usleep(50 * 1000);
    }
    return n;
}

/* Exactly `want` events after a pause long enough for a duplicate to show up. */
static int settled_events(const char *m, const char *type, int want, event_t *out, int max) {
    events(m, type, want, out, max);
    usleep(400 * 1000);
    return events(m, type, want, out, max);
}

static status_t top_up(const char *m, const char *key, const char *member_id, int64_t cents,
                       const char *payment_ref) {
    Loyalty__V1__WalletTopUpRequest req = LOYALTY__V1__WALLET_TOP_UP_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)key;
    req.member_id = (char *)member_id;
    req.paid_cents = cents;
    req.payment_ref = (char *)payment_ref;
    return rpc_call(rpc_channel_get(wallet.addr), &loyalty__v1__wallet_service__descriptor, "TopUp",
                    &req.base, &arena, NULL, NULL);
}

Test(domain_events, wallet_top_up_publishes_once_even_when_retried) {
    /* Goal: a top-up publishes one wallet.topped_up with its figures; the retried request
     * (same key) publishes nothing more. */
    const char *m = harness_merchant("evw");
    const char *key = harness_key();
    OK(top_up(m, key, "mbr_a", 2500, "psp-1"));
    OK(top_up(m, key, "mbr_a", 2500, "psp-1"));
    event_t e[4];
    cr_assert_eq(settled_events(m, "wallet.topped_up", 1, e, 4), 1);
    cr_assert_str_eq(e[0].service, "wallet-svc");
    cr_assert_str_eq(e[0].subject_id, "mbr_a");
    cr_assert(strstr(e[0].payload, "\"paid_cents\":2500") != NULL, "%s", e[0].payload);
    cr_assert(strstr(e[0].payload, "\"payment_ref\":\"psp-1\"") != NULL, "%s", e[0].payload);
    cr_assert(strncmp(e[0].event_id, "evt_", 4) == 0);
}

Test(domain_events, points_earned_and_referral_attached) {
    /* Goal: points.earned per credit and referral.attached per attachment, each with a distinct
     * event id. */
    const char *m = harness_merchant("evp");
    for (int i = 0; i < 2; i++) {
        OK(points_call_at(points.addr, &arena, "Earn",
                          points_promotion_earn(&arena, m, "mbr_p", 10 * (i + 1)), NULL));
    }
    event_t e[4];
    cr_assert_eq(settled_events(m, "points.earned", 2, e, 4), 2);
    cr_assert(strcmp(e[0].event_id, e[1].event_id) != 0);
    cr_assert(strstr(e[1].payload, "\"points\":20") != NULL, "%s", e[1].payload);
    cr_assert_str_eq(e[0].service, "points-svc");

    Loyalty__V1__ReferralLevelRule rule = LOYALTY__V1__REFERRAL_LEVEL_RULE__INIT;
    rule.level = 1;
    rule.enabled = true;
    rule.registration_points = 100;
    Loyalty__V1__ReferralLevelRule *rules[] = {&rule};
    Loyalty__V1__ReferralProgram prog = LOYALTY__V1__REFERRAL_PROGRAM__INIT;
    prog.enabled = true;
    prog.levels = 1;
    prog.level_rules = rules;
    prog.n_level_rules = 1;
    Loyalty__V1__ReferralSetProgramRequest set = LOYALTY__V1__REFERRAL_SET_PROGRAM_REQUEST__INIT;
    set.merchant_id = (char *)m;
    set.idempotency_key = (char *)harness_key();
    set.program = &prog;
    OK(rpc_call(rpc_channel_get(referral.addr), &loyalty__v1__referral_service__descriptor,
                "SetReferralProgram", &set.base, &arena, NULL, NULL));
    Loyalty__V1__ReferralGetCodeRequest code = LOYALTY__V1__REFERRAL_GET_CODE_REQUEST__INIT;
    code.merchant_id = (char *)m;
    code.member_id = "mbr_referrer";
    ProtobufCMessage *resp = NULL;
    OK(rpc_call(rpc_channel_get(referral.addr), &loyalty__v1__referral_service__descriptor,
                "GetReferralCode", &code.base, &arena, &resp, NULL));
    Loyalty__V1__ReferralAttachRequest at = LOYALTY__V1__REFERRAL_ATTACH_REQUEST__INIT;
    at.merchant_id = (char *)m;
    at.idempotency_key = (char *)harness_key();
    at.referee_member_id = "mbr_referee";
    at.code = ((Loyalty__V1__ReferralGetCodeResponse *)resp)->code;
    OK(rpc_call(rpc_channel_get(referral.addr), &loyalty__v1__referral_service__descriptor,
                "AttachReferral", &at.base, &arena, NULL, NULL));
    cr_assert_eq(settled_events(m, "referral.attached", 1, e, 4), 1);
    cr_assert_str_eq(e[0].subject_id, "mbr_referee");
    cr_assert(strstr(e[0].payload, "\"referrer_member_id\":\"mbr_referrer\"") != NULL, "%s",
              e[0].payload);
}

Test(domain_events, published_after_a_redis_outage) {
    /* Goal: events of changes made while Redis is down are published once it is back. */
    const char *m = harness_merchant("evr");
    harness_redis_stop(&redis);
    OK(top_up(m, harness_key(), "mbr_r", 100, "psp-r1"));
    OK(top_up(m, harness_key(), "mbr_r", 200, "psp-r2"));
    harness_redis_restart(&redis);
    event_t e[4];
    cr_assert_eq(settled_events(m, "wallet.topped_up", 2, e, 4), 2);
}

Test(domain_events, coupon_issued) {
    /* Goal: issuing a coupon publishes one coupon.issued with its template and source. */
    const char *m = harness_merchant("evc");
    Loyalty__V1__PromoCouponTemplate t = LOYALTY__V1__PROMO_COUPON_TEMPLATE__INIT;
    t.name = "Welcome 5 off";
    t.kind = LOYALTY__V1__PROMO_COUPON_KIND__PROMO_COUPON_KIND_AMOUNT_OFF;
    t.amount_off_cents = 500;
    t.valid_days = 30;
    Loyalty__V1__PromoCreateCouponTemplateRequest ct =
        LOYALTY__V1__PROMO_CREATE_COUPON_TEMPLATE_REQUEST__INIT;
    ct.merchant_id = (char *)m;
    ct.idempotency_key = (char *)harness_key();
    ct.coupon_template = &t;
    ProtobufCMessage *resp = NULL;
    OK(rpc_call(rpc_channel_get(promo.addr), &loyalty__v1__promo_service__descriptor,
                "CreateCouponTemplate", &ct.base, &arena, &resp, NULL));
    const char *tid = ((Loyalty__V1__PromoCreateCouponTemplateResponse *)resp)->coupon_template->id;
    Loyalty__V1__PromoIssueCouponRequest ic = LOYALTY__V1__PROMO_ISSUE_COUPON_REQUEST__INIT;
    ic.merchant_id = (char *)m;
    ic.idempotency_key = (char *)harness_key();
    ic.member_id = "mbr_c";
    ic.template_id = (char *)tid;
    ic.source = LOYALTY__V1__PROMO_COUPON_SOURCE__PROMO_COUPON_SOURCE_WELCOME;
    OK(rpc_call(rpc_channel_get(promo.addr), &loyalty__v1__promo_service__descriptor, "IssueCoupon",
                &ic.base, &arena, NULL, NULL));
    event_t e[4];
    cr_assert_eq(settled_events(m, "coupon.issued", 1, e, 4), 1);
    cr_assert_str_eq(e[0].subject_id, "mbr_c");
    cr_assert(strstr(e[0].payload, "\"source\":\"PROMO_COUPON_SOURCE_WELCOME\"") != NULL, "%s",
              e[0].payload);
}

Test(domain_events, member_updated_and_tier_changed) {
    /* Goal: a profile update publishes member.updated, and a tier change tier.changed. */
    const char *m = harness_merchant("evm");
    Loyalty__V1__MemberTier t = LOYALTY__V1__MEMBER_TIER__INIT;
    t.name = "Gold";
    t.rank = 1;
    t.upgrade_threshold = 100;
    t.retain_threshold = 100;
    t.earn_multiplier_bps = 10000;
    (void)member_create_tier_id(member.addr, &arena, m, &t);
    char *id = (char *)member_create_id(member.addr, &arena, m, &(member_spec_t){.name = "Mia"});
    char *mask[] = {"name"};
    Loyalty__V1__MemberProfile p = LOYALTY__V1__MEMBER_PROFILE__INIT;
    p.name = "Mia Wong";
    Loyalty__V1__UpdateMemberRequest um = LOYALTY__V1__UPDATE_MEMBER_REQUEST__INIT;
    um.merchant_id = (char *)m;
    um.idempotency_key = (char *)harness_key();
    um.member_id = id;
    um.profile = &p;
    um.update_mask = HARNESS_MASK_OF(mask, 1);
    OK(rpc_call(rpc_channel_get(member.addr), &loyalty__v1__member_service__descriptor,
                "UpdateMember", &um.base, &arena, NULL, NULL));
    Loyalty__V1__MemberRecordOrderRequest o = LOYALTY__V1__MEMBER_RECORD_ORDER_REQUEST__INIT;
    o.merchant_id = (char *)m;
    o.idempotency_key = (char *)harness_key();
    o.member_id = id;
    o.order_id = "order-ev-1";
    o.spend_cents = 20000;
    o.growth_delta = 200;
    OK(rpc_call(rpc_channel_get(member.addr), &loyalty__v1__member_service__descriptor,
                "RecordOrder", &o.base, &arena, NULL, NULL));
    event_t e[4];
    cr_assert_eq(settled_events(m, "member.updated", 1, e, 4), 1);
    cr_assert_str_eq(e[0].subject_id, id);
    cr_assert_str_eq(e[0].service, "member-svc");
    cr_assert_geq(events(m, "tier.changed", 1, e, 4), 1);
    cr_assert_str_eq(e[0].subject_id, id);
}
