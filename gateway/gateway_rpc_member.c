/* gateway_rpc_member.c -- the member-facing sagas and reads: registration (member, referral,
 * welcome rewards), the member overview (parallel reads), wallet top-up, points-mall
 * redemption, daily check-in, and the release of held referral rewards. */
#include "gateway_rpc.h"

#include "gateway_calls.h"
#include "gateway_store.h"
#include "jsonw.h"
#include "log.h"
#include "loyalty/v1/member.pb-c.h"
#include "loyalty/v1/points.pb-c.h"
#include "loyalty/v1/promo.pb-c.h"
#include "loyalty/v1/referral.pb-c.h"
#include "loyalty/v1/wallet.pb-c.h"
#include "near_cache.h"
#include "outbox.h"
#include "pb.h"
#include "validate.h"

#include <stdio.h>
#include <string.h>

#define RELEASE_BATCH_MAX 40 /* rewards per REFERRAL_RELEASE saga (each is a step) */

/* ---- the points balance member-svc keeps for its tag rules ---- */

/* Tells member-svc the member's points balance after the saga's points change (step
 * "member_points_balance"), for its points_balance tag rules, as checkout does with
 * RecordOrder. Past the saga's point of no return: retried until member-svc answers. */
static status_t record_points_balance(gw_saga_t *x, const char *member_id,
                                      const Loyalty__V1__PointsBalance *balance) {
    if (balance == NULL) {
        return status_ok();
    }
    gw_call_t c;
    return gw_step(x, gw_call_member_points_balance(x, &c, NULL, member_id, balance->available,
                                                    balance->version));
}

/* The balances a saga's points calls answered, by member, the last answer of each member last
 * (each one is that member's balance after the call). */
#define BALANCES_MAX GW_GROUP_CALLS_MAX
typedef struct balances {
    const char *member_id[BALANCES_MAX];
    int64_t available[BALANCES_MAX];
    int64_t version[BALANCES_MAX];
    int n;
} balances_t;

static void balances_note(balances_t *b, const Loyalty__V1__PointsBalance *balance) {
    if (balance == NULL || balance->member_id == NULL || balance->member_id[0] == '\0') {
        return;
    }
    for (int i = 0; i < b->n; i++) {
        if (strcmp(b->member_id[i], balance->member_id) == 0) {
            b->available[i] = balance->available;
            b->version[i] = balance->version;
            return;
        }
    }
    if (b->n < BALANCES_MAX) {
        b->member_id[b->n] = balance->member_id;
        b->version[b->n] = balance->version;
        b->available[b->n++] = balance->available;
    }
}

/* The balances of a group's Earn and EarnBatch answers (referral grants). */
static void balances_of_grants(balances_t *b, const gw_group_t *g) {
    for (int i = 0; i < g->n; i++) {
        const ProtobufCMessage *m = gw_answer(&g->calls[i]);
        if (m == NULL) {
            continue;
        }
        if (m->descriptor == &loyalty__v1__points_earn_batch_response__descriptor) {
            const Loyalty__V1__PointsEarnBatchResponse *r = (const void *)m;
            for (size_t j = 0; j < r->n_earns; j++) {
                balances_note(b, r->earns[j]->balance);
            }
        } else if (m->descriptor == &loyalty__v1__points_earn_response__descriptor) {
            balances_note(b, ((const Loyalty__V1__PointsEarnResponse *)m)->balance);
        }
    }
}

/* One step per member ("member_points_balance:<member id>"), in parallel: member-svc learns each
 * balance for its points_balance tag rules. */
static status_t record_balances(gw_saga_t *x, const balances_t *b) {
    gw_group_t g = {.n = 0, .max = GW_GROUP_CALLS_MAX};
    for (int i = 0; i < b->n && gw_group_room(&g) > 0; i++) {
        gw_call_member_points_balance(x, gw_group_add(&g), b->member_id[i], b->member_id[i],
                                      b->available[i], b->version[i]);
    }
    return g.n > 0 ? gw_group_run(x, &g) : status_ok();
}

/* ---- registration ---- */

static Loyalty__V1__GatewayRegistration *reg_ctx(gw_saga_t *x) {
    if (x->context->registration == NULL) {
        x->context->registration = pb_new(x->a, &loyalty__v1__gateway_registration__descriptor);
    }
    return x->context->registration;
}

static status_t registration_begin(gw_saga_t *x) {
    const Loyalty__V1__GatewayRegisterMemberRequest *req = (void *)gw_saga_request(x);
    gw_call_t c;
    if (req->referral_code[0]) {
        status_t st = gw_read(x, gw_call_referral_resolve(x, &c, req->referral_code));
        if (strcmp(st.reason, "CODE_NOT_FOUND") == 0) {
            return status_make(STATUS_NOT_FOUND, REASON_REFERRAL_CODE_NOT_FOUND,
                               "no member has the referral code %s", req->referral_code);
        }
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    status_t st = gw_step(x, gw_call_create_member(x, &c, req->profile, req->external_id));
    if (status_is_ok(&st)) {
        reg_ctx(x)->member = ((const Loyalty__V1__CreateMemberResponse *)gw_answer(&c))->member;
    }
    return st;
}

static void add_note(gw_saga_t *x, Loyalty__V1__GatewayRegistration *r, const char *a1,
                     const char *a2) {
    char **notes = arena_alloc(x->a, (r->n_welcome_notes + 2) * sizeof *notes);
    for (size_t i = 0; i < r->n_welcome_notes; i++) {
        notes[i] = r->welcome_notes[i];
    }
    notes[r->n_welcome_notes++] = arena_printf(x->a, "%s: %s", a1, a2);
    r->welcome_notes = notes;
}

/* The calls of the registration's first group, as its builder added them (NULL when not
 * made); the welcome coupons' calls are tagged with their template (index + 1). */
typedef struct reg_calls {
    gw_call_t *attach, *points;
} reg_calls_t;

/* Attach, registration points and welcome coupons (parallel). */
static void registration_group1(gw_saga_t *x, const Loyalty__V1__GatewayRegisterMemberRequest *req,
                                const char *member_id, gw_group_t *g, reg_calls_t *c) {
    *c = (reg_calls_t){0};
    if (req->referral_code[0]) {
        c->attach = gw_call_referral_attach(x, gw_group_add(g), member_id, req->referral_code);
        c->attach->tolerate_refusal = true;
    }
    c->points = gw_call_points_earn(x, gw_group_add(g), &gw_step_registration_points, NULL,
                                    gw_points_registration_earn(x, member_id));
    c->points->tolerate_refusal = true;
    for (size_t i = 0; i < x->context->n_welcome_template_ids && gw_group_room(g) > 0; i++) {
        const char *tid = x->context->welcome_template_ids[i];
        gw_call_t *coupon = gw_call_promo_issue_coupon(
            x, gw_group_add(g), &gw_step_welcome_coupon, tid, member_id, tid,
            LOYALTY__V1__PROMO_COUPON_SOURCE__PROMO_COUPON_SOURCE_WELCOME);
        coupon->tolerate_refusal = true;
        coupon->tag = (int32_t)i + 1;
    }
}

static void registration_fill1(gw_saga_t *x, Loyalty__V1__GatewayRegistration *r,
                               const gw_group_t *g, const reg_calls_t *c) {
    r->welcome_coupons = arena_alloc(x->a, (size_t)(g->n + 1) * sizeof *r->welcome_coupons);
    r->n_welcome_coupons = 0;
    r->welcome_notes = NULL;
    r->n_welcome_notes = 0;
    if (c->attach != NULL) {
        const Loyalty__V1__ReferralAttachResponse *a = (const void *)gw_answer(c->attach);
        if (a != NULL) {
            r->referrer_member_id = a->referrer_member_id;
            r->referral_note = "";
        } else {
            r->referral_note = arena_strdup(x->a, c->attach->status.reason);
        }
    }
    const Loyalty__V1__PointsEarnResponse *earned = (const void *)gw_answer(c->points);
    if (earned != NULL) {
        r->registration_points = earned->points;
    } else {
        add_note(x, r, c->points->name, c->points->status.reason);
    }
    for (int i = 0; i < g->n; i++) {
        const gw_call_t *coupon = &g->calls[i];
        if (coupon->tag <= 0) {
            continue; /* not a welcome coupon */
        }
        const Loyalty__V1__PromoIssueCouponResponse *issued = (const void *)gw_answer(coupon);
        if (issued != NULL) {
            r->welcome_coupons[r->n_welcome_coupons++] = issued->coupon;
        } else {
            add_note(x, r, x->context->welcome_template_ids[coupon->tag - 1],
                     coupon->status.reason);
        }
    }
}

/* A tolerated refusal in group 1 is only fine when it is a refusal (logged FAILED): transient
 * errors leave the step to be retried. */
static status_t group_outcome(const gw_group_t *g, status_t st) {
    if (!status_is_ok(&st)) {
        return st;
    }
    for (int i = 0; i < g->n; i++) {
        if (!status_is_ok(&g->calls[i].status) &&
            gw_classify(&g->calls[i].status) != GW_ERR_PERMANENT) {
            return g->calls[i].status;
        }
    }
    return status_ok();
}

/* The member's own referral code and share links for the answer: a read logged like the
 * others (a resumed saga answers from the log). After the attach, which may create the member's
 * referral row, never beside it. A refusal leaves them empty; a transient error leaves the saga
 * to be completed later, like the steps before it. */
static status_t registration_read_code(gw_saga_t *x, Loyalty__V1__GatewayRegistration *r,
                                       const char *member_id) {
    gw_call_t c;
    status_t st = gw_read(x, gw_call_referral_code(x, &c, member_id));
    if (status_is_ok(&st)) {
        const Loyalty__V1__ReferralGetCodeResponse *code = (const void *)gw_answer(&c);
        r->referral_code = code->code;
        r->referral_links = code->links;
        return st;
    }
    if (gw_classify(&st) == GW_ERR_PERMANENT) {
        log_msg(LOG_WARN, "registration %s: no referral code for the answer: %s", x->id,
                st.message);
        return status_ok();
    }
    return st;
}

static status_t registration_complete(gw_saga_t *x) {
    const Loyalty__V1__GatewayRegisterMemberRequest *req = (void *)gw_saga_request(x);
    Loyalty__V1__GatewayRegistration *r = reg_ctx(x);
    Loyalty__V1__CreateMemberResponse *cm = (void *)gw_logged_answer(x, &gw_step_create_member);
    if (cm == NULL || cm->member == NULL) {
        return status_make(STATUS_DATA_LOSS, REASON_CORRUPT_SAGA, "registration without a member");
    }
    r->member = cm->member;
    const char *member_id = cm->member->id;
    gw_group_t g1 = {.n = 0};
    reg_calls_t c1;
    registration_group1(x, req, member_id, &g1, &c1);
    status_t st = group_outcome(&g1, gw_group_run(x, &g1));
    registration_fill1(x, r, &g1, &c1);
    if (!status_is_ok(&st)) {
        return st;
    }
    st = registration_read_code(x, r, member_id);
    if (!status_is_ok(&st)) {
        return st;
    }
    balances_t balances = {.n = 0};
    const Loyalty__V1__PointsEarnResponse *earned = (const void *)gw_answer(c1.points);
    if (earned != NULL && earned->points > 0) {
        balances_note(&balances, earned->balance);
    }
    if (r->referrer_member_id == NULL || r->referrer_member_id[0] == '\0') {
        return record_balances(x, &balances);
    }
    gw_call_t c;
    st = gw_step(
        x, gw_call_referral_compute(x, &c, LOYALTY__V1__REFERRAL_EVENT__REFERRAL_EVENT_REGISTRATION,
                                    member_id, 0, x->id));
    if (!status_is_ok(&st)) {
        return st;
    }
    gw_group_t grants = {.n = 0};
    gw_referral_grants(x, (const void *)gw_answer(&c), &r->referral_rewards, &r->n_referral_rewards,
                       &grants, 0, NULL);
    st = gw_group_run(x, &grants);
    if (status_is_ok(&st)) {
        balances_of_grants(&balances, &grants);
        st = record_balances(x, &balances);
    }
    return st;
}

static status_t registration_on_final(gw_saga_t *x, db_t *db) {
    (void)db;
    const Loyalty__V1__GatewayRegistration *r = reg_ctx(x);
    if (r->member == NULL) {
        return status_ok();
    }
    char json[512];
    jsonw_t w;
    jsonw_begin(&w, json, sizeof json);
    jsonw_str(&w, "member_id", r->member->id);
    jsonw_str(&w, "referrer_member_id", r->referrer_member_id);
    jsonw_int(&w, "registration_points", r->registration_points);
    jsonw_int(&w, "welcome_coupons", (int64_t)r->n_welcome_coupons);
    jsonw_end(&w);
    return outbox_emit(x->ctx, x->merchant_id, OUTBOX_EVENTS_STREAM, "member.registered",
                       r->member->id, json, NULL);
}

const gw_flows_t gw_registration_flows = {
    .begin = registration_begin,
    .complete = registration_complete,
    .compensate = NULL,
    .after_begin = GW_COMPLETING,
    .recover_forward = true,
    .request_desc = &loyalty__v1__gateway_register_member_request__descriptor,
    .on_final = registration_on_final,
};

status_t gw_rpc_register_member(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                ProtobufCMessage *resp_msg) {
    Loyalty__V1__GatewayRegisterMemberRequest *req = (void *)req_msg;
    Loyalty__V1__GatewayRegisterMemberResponse *resp = (void *)resp_msg;
    status_t st = gw_check_key(req->idempotency_key);
    if (status_is_ok(&st) && req->profile == NULL) {
        st = status_invalid_field("profile", "required");
    }
    if (status_is_ok(&st) && req->external_id[0]) {
        st = gw_check_id("external_id", req->external_id, 128);
    }
    if (status_is_ok(&st)) {
        st = validate_text("referral_code", req->referral_code, 0, GW_REFERRAL_CODE_MAX);
    }
    Loyalty__V1__GatewaySettings *settings = NULL;
    if (status_is_ok(&st)) {
        st = gw_store_get_settings(ctx->db, ctx->arena, ctx->merchant_id, &settings);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    gw_saga_t *x = arena_alloc(ctx->arena, sizeof *x);
    gw_saga_init(x, ctx, gw_svc(ctx), ctx->merchant_id, GW_KIND_REGISTRATION, req->idempotency_key,
                 "", "", "RegisterMember", &req->base);
    x->context->welcome_template_ids = settings->welcome_coupon_template_ids;
    x->context->n_welcome_template_ids = settings->n_welcome_coupon_template_ids;
    st = gw_start(x);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (x->state == GW_CANCELLED) {
        return gw_saga_error(x);
    }
    if (x->state == GW_BEGINNING) {
        return x->error.code != STATUS_OK ? x->error
                                          : status_make(STATUS_ABORTED, REASON_SAGA_IN_PROGRESS,
                                                        "registration in progress");
    }
    Loyalty__V1__GatewayRegistration *r = reg_ctx(x);
    r->saga_id = x->id;
    r->state = (Loyalty__V1__GatewaySagaState)x->state;
    r->steps = gw_steps_view(x, &r->n_steps);
    resp->registration = r;
    return status_ok();
}

/* ---- member overview ---- */

enum { OV_MEMBER, OV_TIER, OV_POINTS, OV_WALLET, OV_COUPONS, OV_CODE, OV_DOWNLINE, OV_N };

status_t gw_rpc_get_member_overview(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                    ProtobufCMessage *resp_msg) {
    const Loyalty__V1__GatewayGetMemberOverviewRequest *req = (const void *)req_msg;
    Loyalty__V1__GatewayGetMemberOverviewResponse *resp = (void *)resp_msg;
    status_t st = gw_check_id("member_id", req->member_id, ID_MAX);
    if (!status_is_ok(&st)) {
        return st;
    }
    gw_svc_t *svc = gw_svc(ctx);
    char *m = ctx->merchant_id[0] ? (char *)ctx->merchant_id : "";
    char *id = req->member_id;
    Loyalty__V1__GetMemberRequest gm = LOYALTY__V1__GET_MEMBER_REQUEST__INIT;
    gm.merchant_id = m;
    gm.lookup_case = LOYALTY__V1__GET_MEMBER_REQUEST__LOOKUP_MEMBER_ID;
    gm.member_id = id;
    Loyalty__V1__MemberGetTierRequest gt = LOYALTY__V1__MEMBER_GET_TIER_REQUEST__INIT;
    gt.merchant_id = m;
    gt.member_id = id;
    Loyalty__V1__PointsGetBalanceRequest pb = LOYALTY__V1__POINTS_GET_BALANCE_REQUEST__INIT;
    pb.merchant_id = m;
    pb.member_id = id;
    Loyalty__V1__WalletGetBalanceRequest wb = LOYALTY__V1__WALLET_GET_BALANCE_REQUEST__INIT;
    wb.merchant_id = m;
    wb.member_id = id;
    Loyalty__V1__PageRequest page = LOYALTY__V1__PAGE_REQUEST__INIT;
    page.page_size = 50;
    Loyalty__V1__PromoListCouponsRequest lc = LOYALTY__V1__PROMO_LIST_COUPONS_REQUEST__INIT;
    lc.merchant_id = m;
    lc.member_id = id;
    lc.status = LOYALTY__V1__PROMO_COUPON_STATUS__PROMO_COUPON_STATUS_AVAILABLE;
    lc.page = &page;
    Loyalty__V1__ReferralGetCodeRequest rc = LOYALTY__V1__REFERRAL_GET_CODE_REQUEST__INIT;
    rc.merchant_id = m;
    rc.member_id = id;
    Loyalty__V1__PageRequest one = LOYALTY__V1__PAGE_REQUEST__INIT;
    one.page_size = 1;
    Loyalty__V1__ReferralListDownlineRequest ld = LOYALTY__V1__REFERRAL_LIST_DOWNLINE_REQUEST__INIT;
    ld.merchant_id = m;
    ld.member_id = id;
    ld.level = 1;
    ld.page = &one;
    rpc_call_spec_t c[OV_N] = {
        [OV_MEMBER] = {svc->member, &loyalty__v1__member_service__descriptor, "GetMember",
                       &gm.base},
        [OV_TIER] = {svc->member, &loyalty__v1__member_service__descriptor, "GetMemberTier",
                     &gt.base},
        [OV_POINTS] = {svc->points, &loyalty__v1__points_service__descriptor, "GetBalance",
                       &pb.base},
        [OV_WALLET] = {svc->wallet, &loyalty__v1__wallet_service__descriptor, "GetBalance",
                       &wb.base},
        [OV_COUPONS] = {svc->promo, &loyalty__v1__promo_service__descriptor, "ListCoupons",
                        &lc.base},
        [OV_CODE] = {svc->referral, &loyalty__v1__referral_service__descriptor, "GetReferralCode",
                     &rc.base},
        [OV_DOWNLINE] = {svc->referral, &loyalty__v1__referral_service__descriptor, "ListDownline",
                         &ld.base},
    };
    rpc_call_many(c, OV_N, ctx->arena, NULL);
    if (!status_is_ok(&c[OV_MEMBER].status)) {
        return c[OV_MEMBER].status;
    }
    resp->member = ((Loyalty__V1__GetMemberResponse *)c[OV_MEMBER].response)->member;
    static const char *const section[OV_N] = {"member",  "tier",     "points",  "wallet",
                                              "coupons", "referral", "referral"};
    resp->unavailable = arena_alloc(ctx->arena, OV_N * sizeof *resp->unavailable);
    for (int i = OV_TIER; i < OV_N; i++) {
        if (status_is_ok(&c[i].status)) {
            continue;
        }
        log_msg(LOG_WARN, "overview of %s: %s unavailable: %s", id, section[i],
                c[i].status.message);
        if (resp->n_unavailable == 0 ||
            strcmp(resp->unavailable[resp->n_unavailable - 1], section[i]) != 0) {
            resp->unavailable[resp->n_unavailable++] = (char *)section[i];
        }
    }
    if (status_is_ok(&c[OV_TIER].status)) {
        resp->tier = ((Loyalty__V1__MemberGetTierResponse *)c[OV_TIER].response)->status;
    }
    if (status_is_ok(&c[OV_POINTS].status)) {
        resp->points = ((Loyalty__V1__PointsGetBalanceResponse *)c[OV_POINTS].response)->balance;
    }
    if (status_is_ok(&c[OV_WALLET].status)) {
        resp->wallet = ((Loyalty__V1__WalletGetBalanceResponse *)c[OV_WALLET].response)->balance;
    }
    if (status_is_ok(&c[OV_COUPONS].status)) {
        Loyalty__V1__PromoListCouponsResponse *r = (void *)c[OV_COUPONS].response;
        resp->coupons = r->coupons;
        resp->n_coupons = r->n_coupons;
        resp->coupons_more = r->page_info && r->page_info->next_cursor[0];
    }
    if (status_is_ok(&c[OV_CODE].status)) {
        Loyalty__V1__ReferralGetCodeResponse *r = (void *)c[OV_CODE].response;
        resp->referral_code = r->code;
        resp->referral_links = r->links;
    }
    if (status_is_ok(&c[OV_DOWNLINE].status)) {
        Loyalty__V1__ReferralListDownlineResponse *r = (void *)c[OV_DOWNLINE].response;
        resp->downline = r->level_counts;
        resp->n_downline = r->n_level_counts;
    }
    return status_ok();
}

/* ---- the member a saga is for ---- */

/* member-svc's own key for the status: its invalidations (an order, a card, a change of the
 * tiers or of the settings) drop our copy too (gateway/main.c follows them). */
static const char *tier_copy_key(arena_t *a, const char *merchant_id, const char *member_id) {
    return arena_printf(a, "{m:%s}:member:tier:%s", merchant_id, member_id);
}

status_t gw_quote_member_tier(rpc_ctx_t *ctx, const char *member_id,
                              const Loyalty__V1__MemberTierStatus **out) {
    const char *key = tier_copy_key(ctx->arena, ctx->merchant_id, member_id);
    unsigned char *packed = NULL;
    size_t len = 0;
    ProtobufCMessage *resp = NULL;
    if (near_cache_get(key, ctx->arena, &packed, &len)) {
        resp = pb_unpack_arena(ctx->arena, &loyalty__v1__member_get_tier_response__descriptor,
                               packed, len);
    }
    if (resp == NULL) {
        uint64_t epoch = near_cache_epoch(); /* before the read: see near_cache_put */
        Loyalty__V1__MemberGetTierRequest tr = LOYALTY__V1__MEMBER_GET_TIER_REQUEST__INIT;
        tr.merchant_id = (char *)ctx->merchant_id;
        tr.member_id = (char *)member_id;
        status_t st = rpc_call(gw_svc(ctx)->member, &loyalty__v1__member_service__descriptor,
                               "GetMemberTier", &tr.base, ctx->arena, &resp, NULL);
        if (!status_is_ok(&st)) {
            return st;
        }
        packed = pb_pack_arena(ctx->arena, resp, &len);
        near_cache_put(key, packed, len, epoch, 0);
    }
    *out = ((const Loyalty__V1__MemberGetTierResponse *)resp)->status;
    return status_ok();
}

status_t gw_read_member_tier(gw_saga_t *x, const char *member_id,
                             Loyalty__V1__MemberTierStatus **out) {
    gw_call_t c;
    status_t st = gw_read_near(x, gw_call_member_tier(x, &c, member_id),
                               tier_copy_key(x->a, x->merchant_id, member_id));
    if (status_is_ok(&st) && out != NULL) {
        *out = ((const Loyalty__V1__MemberGetTierResponse *)gw_answer(&c))->status;
    }
    return st;
}

/* ---- top-up ---- */

static status_t top_up_begin(gw_saga_t *x) {
    const Loyalty__V1__GatewayTopUpWalletRequest *req = (void *)gw_saga_request(x);
    status_t st = gw_read_member_tier(x, req->member_id, NULL); /* NOT_FOUND: nobody's wallet */
    if (!status_is_ok(&st)) {
        return st;
    }
    gw_call_t c;
    st = gw_step(x, gw_call_wallet_top_up(x, &c, &gw_step_wallet_top_up, NULL, req->member_id,
                                          req->paid_cents, req->plan_id, req->payment_ref));
    if (status_is_ok(&st)) {
        const Loyalty__V1__WalletTopUpResponse *r = (const void *)gw_answer(&c);
        Loyalty__V1__GatewayTopUpWalletResponse *v =
            pb_new(x->a, &loyalty__v1__gateway_top_up_wallet_response__descriptor);
        v->top_up = r->top_up;
        v->balance = r->balance;
        x->context->top_up = v;
    }
    return st;
}

const gw_flows_t gw_top_up_flows = {
    .begin = top_up_begin,
    .after_begin = GW_COMPLETED,
    .recover_forward = true, /* the storefront collected the money: credit it */
    .request_desc = &loyalty__v1__gateway_top_up_wallet_request__descriptor,
};

/* Runs a short saga and turns its end state into the RPC's outcome. */
static status_t run_short(gw_saga_t *x) {
    status_t st = gw_start(x);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (x->state == GW_CANCELLED || x->state == GW_NEEDS_ATTENTION) {
        return gw_saga_error(x);
    }
    if (x->state == GW_BEGINNING || x->state == GW_CANCELLING) {
        return x->error.code != STATUS_OK
                   ? x->error
                   : status_make(STATUS_ABORTED, REASON_SAGA_IN_PROGRESS, "in progress; retry");
    }
    return status_ok();
}

status_t gw_rpc_top_up_wallet(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                              ProtobufCMessage *resp_msg) {
    Loyalty__V1__GatewayTopUpWalletRequest *req = (void *)req_msg;
    Loyalty__V1__GatewayTopUpWalletResponse *resp = (void *)resp_msg;
    status_t st = gw_check_key(req->idempotency_key);
    if (status_is_ok(&st)) {
        st = gw_check_id("member_id", req->member_id, ID_MAX);
    }
    if (status_is_ok(&st) && req->plan_id[0]) {
        st = gw_check_id("plan_id", req->plan_id, ID_MAX);
    }
    if (status_is_ok(&st) && (req->paid_cents < 1 || req->paid_cents > GW_AMOUNT_MAX)) {
        st = status_invalid_field("paid_cents", "1..%lld", (long long)GW_AMOUNT_MAX);
    }
    if (status_is_ok(&st)) {
        st = gw_check_payment_ref("payment_ref", req->payment_ref, true);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    gw_saga_t *x = arena_alloc(ctx->arena, sizeof *x);
    gw_saga_init(x, ctx, gw_svc(ctx), ctx->merchant_id, GW_KIND_TOP_UP, req->idempotency_key, "",
                 req->member_id, "TopUpWallet", &req->base);
    st = run_short(x);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (x->context->top_up != NULL) {
        *resp = *x->context->top_up;
    }
    resp->saga_id = x->id;
    return status_ok();
}

/* ---- check-in ---- */

static status_t check_in_begin(gw_saga_t *x) {
    const Loyalty__V1__GatewayCheckInRequest *req = (void *)gw_saga_request(x);
    status_t st = gw_read_member_tier(x, req->member_id, NULL);
    if (!status_is_ok(&st)) {
        return st;
    }
    gw_call_t c;
    st = gw_step(x, gw_call_points_check_in(x, &c, req->member_id));
    if (status_is_ok(&st)) {
        const Loyalty__V1__PointsCheckInResponse *p = (const void *)gw_answer(&c);
        Loyalty__V1__GatewayCheckInResponse *v =
            pb_new(x->a, &loyalty__v1__gateway_check_in_response__descriptor);
        v->date = p->date;
        v->points = p->points;
        v->streak_days = p->streak_days;
        v->balance = p->balance;
        x->context->check_in = v;
    }
    return st;
}

/* After the check-in (answered to the caller at once): member-svc learns the new balance. */
static status_t check_in_complete(gw_saga_t *x) {
    const Loyalty__V1__GatewayCheckInRequest *req = (void *)gw_saga_request(x);
    const Loyalty__V1__GatewayCheckInResponse *v = x->context->check_in;
    return record_points_balance(x, req->member_id, v ? v->balance : NULL);
}

const gw_flows_t gw_check_in_flows = {
    .begin = check_in_begin,
    .complete = check_in_complete,
    .after_begin = GW_COMPLETING,
    .recover_forward = true,
    .request_desc = &loyalty__v1__gateway_check_in_request__descriptor,
};

status_t gw_rpc_check_in(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                         ProtobufCMessage *resp_msg) {
    Loyalty__V1__GatewayCheckInRequest *req = (void *)req_msg;
    Loyalty__V1__GatewayCheckInResponse *resp = (void *)resp_msg;
    status_t st = gw_check_key(req->idempotency_key);
    if (status_is_ok(&st)) {
        st = gw_check_id("member_id", req->member_id, ID_MAX);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    gw_saga_t *x = arena_alloc(ctx->arena, sizeof *x);
    gw_saga_init(x, ctx, gw_svc(ctx), ctx->merchant_id, GW_KIND_CHECK_IN, req->idempotency_key, "",
                 req->member_id, "CheckIn", &req->base);
    st = run_short(x);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (x->context->check_in != NULL) {
        *resp = *x->context->check_in;
    }
    resp->saga_id = x->id;
    return status_ok();
}

/* ---- points mall ---- */

static Loyalty__V1__GatewayRedemption *redemption_ctx(gw_saga_t *x) {
    if (x->context->redemption == NULL) {
        x->context->redemption = pb_new(x->a, &loyalty__v1__gateway_redemption__descriptor);
    }
    return x->context->redemption;
}

static status_t redeem_begin(gw_saga_t *x) {
    const Loyalty__V1__GatewayRedeemRewardRequest *req = (void *)gw_saga_request(x);
    Loyalty__V1__GatewayRedemption *d = redemption_ctx(x);
    status_t st = gw_read_member_tier(x, req->member_id, NULL);
    if (!status_is_ok(&st)) {
        return st;
    }
    gw_call_t c;
    st = gw_step(x, gw_call_points_hold_reward(x, &c, req->member_id, req->reward->points));
    if (!status_is_ok(&st)) {
        return st;
    }
    d->points_hold_id = ((const Loyalty__V1__PointsHoldResponse *)gw_answer(&c))->hold->id;
    if (req->reward->item_case != LOYALTY__V1__GATEWAY_REWARD__ITEM_COUPON_TEMPLATE_ID) {
        return status_ok();
    }
    st = gw_step(x, gw_call_promo_issue_coupon(
                        x, &c, &gw_step_promo_issue_coupon, NULL, req->member_id,
                        req->reward->coupon_template_id,
                        LOYALTY__V1__PROMO_COUPON_SOURCE__PROMO_COUPON_SOURCE_POINTS_MALL));
    if (status_is_ok(&st)) {
        d->coupon = ((const Loyalty__V1__PromoIssueCouponResponse *)gw_answer(&c))->coupon;
    }
    return st;
}

static status_t redeem_complete(gw_saga_t *x) {
    Loyalty__V1__GatewayRedemption *d = redemption_ctx(x);
    gw_call_t c;
    /* the balance after it is the redemption's answer: with the expiring points */
    status_t st = gw_step(x, gw_call_points_commit(x, &c, d->points_hold_id, false));
    if (status_is_ok(&st)) {
        const Loyalty__V1__PointsCommitHoldResponse *p = (const void *)gw_answer(&c);
        d->points_spent = p->hold ? p->hold->points : 0;
        d->balance = p->balance;
    }
    if (status_is_ok(&st)) {
        const Loyalty__V1__GatewayRedeemRewardRequest *req = (void *)gw_saga_request(x);
        st = record_points_balance(x, req->member_id, d->balance);
    }
    return st;
}

static status_t redeem_compensate(gw_saga_t *x) {
    Loyalty__V1__GatewayRedemption *d = redemption_ctx(x);
    gw_step_t *s = gw_logged_step(x, &gw_step_points_hold);
    if (s == NULL || s->state != GW_DONE || d->points_hold_id == NULL ||
        d->points_hold_id[0] == '\0') {
        return status_ok();
    }
    gw_call_t c;
    return gw_step(x, gw_call_points_release(x, &c, d->points_hold_id, NULL, false));
}

const gw_flows_t gw_redeem_flows = {
    .begin = redeem_begin,
    .complete = redeem_complete,
    .compensate = redeem_compensate,
    .after_begin = GW_COMPLETING,
    /* Once the coupon is issued the points must be spent: an interrupted redemption goes on. */
    .recover_forward = true,
    .request_desc = &loyalty__v1__gateway_redeem_reward_request__descriptor,
};

static status_t check_reward(const Loyalty__V1__GatewayReward *r) {
    if (r == NULL) {
        return status_invalid_field("reward", "required");
    }
    status_t st = validate_text("reward.reward_id", r->reward_id, 0, 64);
    if (status_is_ok(&st)) {
        st = validate_text("reward.name", r->name, 0, 100);
    }
    if (status_is_ok(&st) && (r->points < 1 || r->points > GW_AMOUNT_MAX)) {
        st = status_invalid_field("reward.points", "1..%lld", (long long)GW_AMOUNT_MAX);
    }
    if (status_is_ok(&st) && (r->cash_cents < 0 || r->cash_cents > GW_AMOUNT_MAX)) {
        st = status_invalid_field("reward.cash_cents", "0..%lld", (long long)GW_AMOUNT_MAX);
    }
    if (status_is_ok(&st)) {
        st = gw_check_payment_ref("reward.payment_ref", r->payment_ref, r->cash_cents > 0);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    switch (r->item_case) {
    case LOYALTY__V1__GATEWAY_REWARD__ITEM_COUPON_TEMPLATE_ID:
        return gw_check_id("reward.coupon_template_id", r->coupon_template_id, ID_MAX);
    case LOYALTY__V1__GATEWAY_REWARD__ITEM_GIFT_SKU:
        return gw_check_id("reward.gift_sku", r->gift_sku, GW_SKU_MAX);
    default:
        return status_invalid_field("reward.item", "coupon_template_id or gift_sku is required");
    }
}

status_t gw_rpc_redeem_reward(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                              ProtobufCMessage *resp_msg) {
    Loyalty__V1__GatewayRedeemRewardRequest *req = (void *)req_msg;
    Loyalty__V1__GatewayRedeemRewardResponse *resp = (void *)resp_msg;
    status_t st = gw_check_key(req->idempotency_key);
    if (status_is_ok(&st)) {
        st = gw_check_id("member_id", req->member_id, ID_MAX);
    }
    if (status_is_ok(&st)) {
        st = check_reward(req->reward);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    gw_saga_t *x = arena_alloc(ctx->arena, sizeof *x);
    gw_saga_init(x, ctx, gw_svc(ctx), ctx->merchant_id, GW_KIND_REDEEM, req->idempotency_key, "",
                 req->member_id, "RedeemReward", &req->base);
    x->context->hold_ttl_s = gw_svc(ctx)->hold_ttl_s;
    st = run_short(x);
    if (!status_is_ok(&st)) {
        return st;
    }
    Loyalty__V1__GatewayRedemption *d = redemption_ctx(x);
    const Loyalty__V1__GatewayRedeemRewardRequest *stored = (void *)gw_saga_request(x);
    d->saga_id = x->id;
    d->state = (Loyalty__V1__GatewaySagaState)x->state;
    d->reason = x->reason;
    d->member_id = stored->member_id;
    d->reward = stored->reward;
    resp->redemption = d;
    return status_ok();
}

/* ---- held referral rewards (REFERRAL_RELEASE, created by the recovery job) ---- */

static status_t release_complete(gw_saga_t *x) {
    gw_call_t c;
    status_t st = gw_step(x, gw_call_referral_release(x, &c, RELEASE_BATCH_MAX));
    if (!status_is_ok(&st)) {
        return st;
    }
    const Loyalty__V1__ReferralReleaseHeldRewardsResponse *rel = (const void *)gw_answer(&c);
    Loyalty__V1__ReferralComputeRewardsResponse as =
        LOYALTY__V1__REFERRAL_COMPUTE_REWARDS_RESPONSE__INIT;
    as.rewards = rel->rewards;
    as.n_rewards = rel->n_rewards;
    for (size_t i = 0; i < as.n_rewards; i++) {
        as.rewards[i]->grant_now = true; /* released now: grant them */
    }
    _Static_assert(RELEASE_BATCH_MAX <= GW_GROUP_CALLS_MAX, "a grant call per released reward");
    gw_group_t grants = {.n = 0, .max = RELEASE_BATCH_MAX};
    gw_referral_grants(x, &as, &x->context->released, &x->context->n_released, &grants, 0, NULL);
    st = gw_group_run(x, &grants);
    /* The beneficiaries' balances for member-svc's tag rules: one step each, only when the grants
     * were one batch (a saga of one call per grant could pass GW_STEPS_MAX with them). */
    if (status_is_ok(&st) && x->context->points_batched) {
        balances_t balances = {.n = 0};
        balances_of_grants(&balances, &grants);
        st = record_balances(x, &balances);
    }
    return st;
}

static status_t release_on_final(gw_saga_t *x, db_t *db) {
    Loyalty__V1__ReferralReleaseHeldRewardsResponse *rel =
        (void *)gw_logged_answer(x, &gw_step_referral_release);
    if (rel != NULL && rel->more) {
        return gw_store_referral_due(db, x->merchant_id, x->ctx->now_s);
    }
    return status_ok();
}

const gw_flows_t gw_referral_release_flows = {
    .complete = release_complete,
    .after_begin = GW_COMPLETING,
    .recover_forward = true,
    .request_desc = &loyalty__v1__gateway_get_settings_request__descriptor,
    .on_final = release_on_final,
};
