/* gateway_calls.c -- every step the sagas log, declared once, and the participants' request
 * builders: each participant's contract is used from here alone. The step names are those of
 * the stored log rows (never renamed: recovery reads old rows). */
#include "gateway_calls.h"

#include "pb.h"

#include <assert.h>
#include <string.h>

/* ---- the steps ---- */

#define STEP(var, nm, who, meth, dir, und)                                                         \
    const gw_step_def_t var = {                                                                    \
        .name = nm, .participant = who, .method = meth, .direction = dir, .undo = und}

STEP(gw_step_member_tier, "member_tier", GW_MEMBER, "GetMemberTier", GW_READ, NULL);
STEP(gw_step_membership_plans, "membership_plans", GW_MEMBER, "ListMembershipPlans", GW_READ, NULL);
STEP(gw_step_top_up_plan, "top_up_plan", GW_WALLET, "GetTopUpPlan", GW_READ, NULL);
STEP(gw_step_points_quote, "points_quote", GW_POINTS, "QuoteRedeem", GW_READ, NULL);
STEP(gw_step_wallet_balance, "wallet_balance", GW_WALLET, "GetBalance", GW_READ, NULL);
STEP(gw_step_referral_resolve, "referral_resolve", GW_REFERRAL, "ResolveReferralCode", GW_READ,
     NULL);
STEP(gw_step_referral_code, "referral_code", GW_REFERRAL, "GetReferralCode", GW_READ, NULL);

STEP(gw_step_promo_reserve_undo, "promo_reserve:undo", GW_PROMO, "Release", GW_COMPENSATE, NULL);
STEP(gw_step_promo_reserve, "promo_reserve", GW_PROMO, "Reserve", GW_FORWARD,
     &gw_step_promo_reserve_undo);
STEP(gw_step_points_hold_undo, "points_hold:undo", GW_POINTS, "ReleaseHold", GW_COMPENSATE, NULL);
STEP(gw_step_points_hold, "points_hold", GW_POINTS, "Hold", GW_FORWARD, &gw_step_points_hold_undo);
STEP(gw_step_wallet_hold_undo, "wallet_hold:undo", GW_WALLET, "VoidHold", GW_COMPENSATE, NULL);
STEP(gw_step_wallet_hold, "wallet_hold", GW_WALLET, "Hold", GW_FORWARD, &gw_step_wallet_hold_undo);
STEP(gw_step_wallet_capture, "wallet_capture", GW_WALLET, "CaptureHold", GW_FORWARD, NULL);
STEP(gw_step_promo_confirm, "promo_confirm", GW_PROMO, "Confirm", GW_FORWARD, NULL);
STEP(gw_step_points_settle, "points_settle", GW_POINTS, "EarnBatch", GW_FORWARD, NULL);
STEP(gw_step_points_commit, "points_commit", GW_POINTS, "CommitHold", GW_FORWARD, NULL);
STEP(gw_step_points_earn, "points_earn", GW_POINTS, "Earn", GW_FORWARD, NULL);
STEP(gw_step_referral_compute, "referral_compute", GW_REFERRAL, "ComputeRewards", GW_FORWARD, NULL);
STEP(gw_step_referral_grant, "referral_grant", GW_POINTS, "Earn", GW_FORWARD, NULL);
STEP(gw_step_referral_grants, "referral_grants", GW_POINTS, "EarnBatch", GW_FORWARD, NULL);
STEP(gw_step_membership, "membership", GW_MEMBER, "PurchaseMembership", GW_FORWARD, NULL);
STEP(gw_step_top_up, "top_up", GW_WALLET, "TopUp", GW_FORWARD, NULL);
STEP(gw_step_member_record_order, "member_record_order", GW_MEMBER, "RecordOrder", GW_FORWARD,
     NULL);

STEP(gw_step_wallet_refund, "wallet_refund", GW_WALLET, "Refund", GW_FORWARD, NULL);
STEP(gw_step_points_reverse, "points_reverse", GW_POINTS, "ReverseOrder", GW_FORWARD, NULL);
STEP(gw_step_referral_reverse, "referral_reverse", GW_REFERRAL, "ReverseRewards", GW_FORWARD, NULL);
STEP(gw_step_promo_release_usage, "promo_release_usage", GW_PROMO, "ReleaseUsage", GW_FORWARD,
     NULL);
STEP(gw_step_referral_clawback, "referral_clawback", GW_POINTS, "ReverseOrder", GW_FORWARD, NULL);
STEP(gw_step_member_record_return, "member_record_return", GW_MEMBER, "RecordReturn", GW_FORWARD,
     NULL);

STEP(gw_step_create_member, "create_member", GW_MEMBER, "CreateMember", GW_FORWARD, NULL);
STEP(gw_step_referral_attach, "referral_attach", GW_REFERRAL, "AttachReferral", GW_FORWARD, NULL);
STEP(gw_step_registration_points, "registration_points", GW_POINTS, "Earn", GW_FORWARD, NULL);
STEP(gw_step_welcome_coupon, "welcome_coupon", GW_PROMO, "IssueCoupon", GW_FORWARD, NULL);
STEP(gw_step_wallet_top_up, "wallet_top_up", GW_WALLET, "TopUp", GW_FORWARD, NULL);
STEP(gw_step_points_check_in, "points_check_in", GW_POINTS, "CheckIn", GW_FORWARD, NULL);
STEP(gw_step_promo_issue_coupon, "promo_issue_coupon", GW_PROMO, "IssueCoupon", GW_FORWARD, NULL);
STEP(gw_step_referral_release, "referral_release", GW_REFERRAL, "ReleaseHeldRewards", GW_FORWARD,
     NULL);
STEP(gw_step_member_points_balance, "member_points_balance", GW_MEMBER, "RecordPointsBalance",
     GW_FORWARD, NULL);

#undef STEP

/* ---- steps by their declaration ---- */

static rpc_channel_t *channel_of(const gw_svc_t *svc, gw_participant_t p) {
    switch (p) {
    case GW_MEMBER:
        return svc->member;
    case GW_POINTS:
        return svc->points;
    case GW_WALLET:
        return svc->wallet;
    case GW_REFERRAL:
        return svc->referral;
    case GW_PROMO:
        return svc->promo;
    }
    assert(!"unknown participant");
    return NULL;
}

static const ProtobufCServiceDescriptor *service_of(gw_participant_t p) {
    switch (p) {
    case GW_MEMBER:
        return &loyalty__v1__member_service__descriptor;
    case GW_POINTS:
        return &loyalty__v1__points_service__descriptor;
    case GW_WALLET:
        return &loyalty__v1__wallet_service__descriptor;
    case GW_REFERRAL:
        return &loyalty__v1__referral_service__descriptor;
    case GW_PROMO:
        return &loyalty__v1__promo_service__descriptor;
    }
    assert(!"unknown participant");
    return NULL;
}

static const ProtobufCMethodDescriptor *method_of(const gw_step_def_t *def) {
    const ProtobufCMethodDescriptor *md =
        protobuf_c_service_descriptor_get_method_by_name(service_of(def->participant), def->method);
    assert(md != NULL); /* a declaration names a method of its participant */
    return md;
}

/* The key goes in the request's own field: every mutating participant request has one. */
static void set_step_key(ProtobufCMessage *request, char *key) {
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(request->descriptor, "idempotency_key");
    assert(f != NULL && f->type == PROTOBUF_C_TYPE_STRING && f->label == PROTOBUF_C_LABEL_NONE);
    *(char **)(void *)((char *)request + f->offset) = key;
}

gw_call_t *gw_call_step(gw_saga_t *x, gw_call_t *c, const gw_step_def_t *def, const char *instance,
                        ProtobufCMessage *request) {
    assert(c != NULL && def != NULL && request != NULL);
    assert(request->descriptor == method_of(def)->input);
    const char *name = instance ? arena_printf(x->a, "%s:%s", def->name, instance) : def->name;
    gw_call_init(c, channel_of(x->svc, def->participant), service_of(def->participant), def->method,
                 request, "%s", name);
    c->def = def;
    if (def->direction != GW_READ) {
        c->direction = def->direction;
        set_step_key(request, gw_step_key(x, name));
    }
    return c;
}

gw_step_t *gw_logged_step(gw_saga_t *x, const gw_step_def_t *def) {
    return gw_find_step(x, def->name);
}

ProtobufCMessage *gw_logged_answer(gw_saga_t *x, const gw_step_def_t *def) {
    return gw_step_response(x, def->name, method_of(def)->output);
}

/* ---- member-svc ---- */

gw_call_t *gw_call_member_tier(gw_saga_t *x, gw_call_t *c, const char *member_id) {
    Loyalty__V1__MemberGetTierRequest *r =
        pb_new(x->a, &loyalty__v1__member_get_tier_request__descriptor);
    r->merchant_id = x->merchant_id;
    r->member_id = (char *)member_id;
    return gw_call_step(x, c, &gw_step_member_tier, NULL, &r->base);
}

gw_call_t *gw_call_membership_plans(gw_saga_t *x, gw_call_t *c) {
    Loyalty__V1__MemberListPlansRequest *r =
        pb_new(x->a, &loyalty__v1__member_list_plans_request__descriptor);
    r->merchant_id = x->merchant_id;
    r->include_inactive = true;
    return gw_call_step(x, c, &gw_step_membership_plans, NULL, &r->base);
}

gw_call_t *gw_call_membership(gw_saga_t *x, gw_call_t *c, size_t line, const char *member_id,
                              const char *order_id, const char *plan_id, int32_t quantity) {
    Loyalty__V1__MemberPurchaseRequest *r =
        pb_new(x->a, &loyalty__v1__member_purchase_request__descriptor);
    r->merchant_id = x->merchant_id;
    r->member_id = (char *)member_id;
    r->plan_id = (char *)plan_id;
    r->quantity = quantity;
    r->order_id = arena_printf(x->a, "%s:m%zu", order_id, line);
    return gw_call_step(x, c, &gw_step_membership, arena_printf(x->a, "%zu", line), &r->base);
}

gw_call_t *gw_call_member_record_order(gw_saga_t *x, gw_call_t *c, const char *member_id,
                                       const char *order_id, int64_t spend_cents,
                                       int64_t growth_delta,
                                       const Loyalty__V1__PointsBalance *balance) {
    Loyalty__V1__MemberRecordOrderRequest *r =
        pb_new(x->a, &loyalty__v1__member_record_order_request__descriptor);
    r->merchant_id = x->merchant_id;
    r->member_id = (char *)member_id;
    r->order_id = (char *)order_id;
    r->spend_cents = spend_cents;
    r->growth_delta = growth_delta;
    r->at = x->created_at;
    if (balance != NULL) { /* member-svc's points_balance tag rules (no call of its own) */
        r->_points_balance_case =
            LOYALTY__V1__MEMBER_RECORD_ORDER_REQUEST___POINTS_BALANCE_POINTS_BALANCE;
        r->points_balance = balance->available;
        r->points_balance_version = balance->version;
    }
    return gw_call_step(x, c, &gw_step_member_record_order, NULL, &r->base);
}

gw_call_t *gw_call_member_record_return(gw_saga_t *x, gw_call_t *c, const char *order_id,
                                        int64_t spend_cents, int64_t growth_delta,
                                        const Loyalty__V1__PointsBalance *balance) {
    Loyalty__V1__MemberRecordReturnRequest *r =
        pb_new(x->a, &loyalty__v1__member_record_return_request__descriptor);
    r->merchant_id = x->merchant_id;
    r->order_id = (char *)order_id;
    r->spend_cents = spend_cents;
    r->growth_delta = growth_delta;
    if (balance != NULL) { /* for member-svc's points_balance tag rules */
        r->_points_balance_case =
            LOYALTY__V1__MEMBER_RECORD_RETURN_REQUEST___POINTS_BALANCE_POINTS_BALANCE;
        r->points_balance = balance->available;
        r->points_balance_version = balance->version;
    }
    return gw_call_step(x, c, &gw_step_member_record_return, NULL, &r->base);
}

gw_call_t *gw_call_member_points_balance(gw_saga_t *x, gw_call_t *c, const char *instance,
                                         const char *member_id, int64_t points_balance,
                                         int64_t points_balance_version) {
    Loyalty__V1__MemberRecordPointsBalanceRequest *r =
        pb_new(x->a, &loyalty__v1__member_record_points_balance_request__descriptor);
    r->merchant_id = x->merchant_id;
    r->member_id = (char *)member_id;
    r->points_balance = points_balance;
    r->points_balance_version = points_balance_version;
    return gw_call_step(x, c, &gw_step_member_points_balance, instance, &r->base);
}

gw_call_t *gw_call_create_member(gw_saga_t *x, gw_call_t *c, Loyalty__V1__MemberProfile *profile,
                                 const char *external_id) {
    Loyalty__V1__CreateMemberRequest *m =
        pb_new(x->a, &loyalty__v1__create_member_request__descriptor);
    m->merchant_id = x->merchant_id;
    m->profile = profile;
    m->external_id = (char *)external_id;
    return gw_call_step(x, c, &gw_step_create_member, NULL, &m->base);
}

/* ---- points-svc ---- */

Loyalty__V1__PointsQuoteRedeemRequest *
gw_points_quote_request(arena_t *a, const char *merchant_id, const char *member_id,
                        int64_t order_total_cents, int64_t points, bool use_max_points) {
    Loyalty__V1__PointsQuoteRedeemRequest *q =
        pb_new(a, &loyalty__v1__points_quote_redeem_request__descriptor);
    q->merchant_id = (char *)merchant_id;
    q->member_id = (char *)member_id;
    q->order_total_cents = order_total_cents;
    q->points = points;
    q->use_max_points = use_max_points;
    return q;
}

gw_call_t *gw_call_points_quote(gw_saga_t *x, gw_call_t *c, const char *member_id,
                                int64_t order_total_cents, int64_t points, bool use_max_points) {
    Loyalty__V1__PointsQuoteRedeemRequest *q = gw_points_quote_request(
        x->a, x->merchant_id, member_id, order_total_cents, points, use_max_points);
    return gw_call_step(x, c, &gw_step_points_quote, NULL, &q->base);
}

Loyalty__V1__PointsHoldRequest *gw_call_points_hold_order(gw_saga_t *x, gw_call_t *c,
                                                          const char *member_id,
                                                          const char *order_id,
                                                          int64_t order_total_cents) {
    Loyalty__V1__PointsHoldRequest *h = pb_new(x->a, &loyalty__v1__points_hold_request__descriptor);
    h->omit_expiring = x->context->points_omit_expiring;
    h->merchant_id = x->merchant_id;
    h->member_id = (char *)member_id;
    h->reference = (char *)order_id;
    h->ttl_s = x->context->hold_ttl_s;
    h->_order_total_cents_case =
        LOYALTY__V1__POINTS_HOLD_REQUEST___ORDER_TOTAL_CENTS_ORDER_TOTAL_CENTS;
    h->order_total_cents = order_total_cents;
    gw_call_step(x, c, &gw_step_points_hold, NULL, &h->base);
    c->undone_by_reference = true; /* see checkout_compensate */
    return h;
}

gw_call_t *gw_call_points_hold_reward(gw_saga_t *x, gw_call_t *c, const char *member_id,
                                      int64_t points) {
    Loyalty__V1__PointsHoldRequest *h = pb_new(x->a, &loyalty__v1__points_hold_request__descriptor);
    h->merchant_id = x->merchant_id;
    h->member_id = (char *)member_id;
    h->points = points;
    h->reference = x->id;
    h->ttl_s = x->context->hold_ttl_s;
    return gw_call_step(x, c, &gw_step_points_hold, NULL, &h->base);
}

gw_call_t *gw_call_points_commit(gw_saga_t *x, gw_call_t *c, const char *hold_id,
                                 bool omit_expiring) {
    Loyalty__V1__PointsCommitHoldRequest *r =
        pb_new(x->a, &loyalty__v1__points_commit_hold_request__descriptor);
    r->omit_expiring = omit_expiring;
    r->merchant_id = x->merchant_id;
    r->target_case = LOYALTY__V1__POINTS_COMMIT_HOLD_REQUEST__TARGET_HOLD_ID;
    r->hold_id = (char *)hold_id;
    return gw_call_step(x, c, &gw_step_points_commit, NULL, &r->base);
}

gw_call_t *gw_call_points_release(gw_saga_t *x, gw_call_t *c, const char *hold_id,
                                  const char *reference, bool omit_expiring) {
    Loyalty__V1__PointsReleaseHoldRequest *r =
        pb_new(x->a, &loyalty__v1__points_release_hold_request__descriptor);
    r->omit_expiring = omit_expiring;
    r->merchant_id = x->merchant_id;
    if (hold_id == NULL) {
        r->target_case = LOYALTY__V1__POINTS_RELEASE_HOLD_REQUEST__TARGET_REFERENCE;
        r->reference = (char *)reference;
    } else {
        r->target_case = LOYALTY__V1__POINTS_RELEASE_HOLD_REQUEST__TARGET_HOLD_ID;
        r->hold_id = (char *)hold_id;
    }
    return gw_call_step(x, c, &gw_step_points_hold_undo, NULL, &r->base);
}

Loyalty__V1__PointsEarnRequest *gw_points_order_earn(gw_saga_t *x, const char *member_id,
                                                     const char *order_id, int64_t paid_cents,
                                                     const Loyalty__V1__MemberTierStatus *tier) {
    Loyalty__V1__PointsOrderAmounts *amounts =
        pb_new(x->a, &loyalty__v1__points_order_amounts__descriptor);
    amounts->paid_cents = paid_cents;
    if (tier != NULL) {
        amounts->tier_id = tier->tier ? tier->tier->id : "";
        amounts->tier_multiplier_bps = tier->earn_multiplier_bps;
    }
    amounts->ordered_at = x->created_at;
    Loyalty__V1__PointsEarnRequest *e = pb_new(x->a, &loyalty__v1__points_earn_request__descriptor);
    e->omit_expiring = x->context->points_omit_expiring;
    e->member_id = (char *)member_id;
    e->source = LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_ORDER;
    e->reference = (char *)order_id;
    e->amount_case = LOYALTY__V1__POINTS_EARN_REQUEST__AMOUNT_ORDER;
    e->order = amounts;
    return e;
}

Loyalty__V1__PointsEarnRequest *gw_points_grant_earn(gw_saga_t *x,
                                                     const Loyalty__V1__ReferralReward *rw) {
    Loyalty__V1__PointsEarnRequest *e = pb_new(x->a, &loyalty__v1__points_earn_request__descriptor);
    e->omit_expiring = x->context->points_omit_expiring;
    e->member_id = rw->beneficiary_member_id;
    /* Source ORDER, not REFERRAL: PointsService.ReverseOrder only claws back references earned
     * as orders, and a returned purchase must be able to take the reward back (with debt when it
     * was spent). The reference "rr:<reward id>" tells the lot apart; no pending period. */
    e->source = LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_ORDER;
    e->reference = arena_printf(x->a, "rr:%s", rw->id);
    e->_pending_days_case = LOYALTY__V1__POINTS_EARN_REQUEST___PENDING_DAYS_PENDING_DAYS;
    e->pending_days = 0;
    e->amount_case = LOYALTY__V1__POINTS_EARN_REQUEST__AMOUNT_POINTS;
    e->points = rw->granted_points > 0 ? rw->granted_points : rw->points;
    e->note = "referral reward";
    return e;
}

Loyalty__V1__PointsEarnRequest *gw_points_registration_earn(gw_saga_t *x, const char *member_id) {
    Loyalty__V1__PointsEarnRequest *e = pb_new(x->a, &loyalty__v1__points_earn_request__descriptor);
    e->omit_expiring = x->context->points_omit_expiring;
    e->member_id = (char *)member_id;
    e->source = LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_EVENT;
    e->reference = arena_printf(x->a, "reg:%s", member_id);
    e->amount_case = LOYALTY__V1__POINTS_EARN_REQUEST__AMOUNT_EVENT;
    e->event = LOYALTY__V1__POINTS_EVENT_KIND__POINTS_EVENT_KIND_REGISTRATION;
    return e;
}

gw_call_t *gw_call_points_earn(gw_saga_t *x, gw_call_t *c, const gw_step_def_t *def,
                               const char *instance, Loyalty__V1__PointsEarnRequest *e) {
    e->merchant_id = x->merchant_id;
    return gw_call_step(x, c, def, instance, &e->base);
}

Loyalty__V1__PointsEarnBatchRequest *gw_points_earn_batch(gw_saga_t *x, size_t max_earns) {
    Loyalty__V1__PointsEarnBatchRequest *r =
        pb_new(x->a, &loyalty__v1__points_earn_batch_request__descriptor);
    r->merchant_id = x->merchant_id;
    r->omit_expiring = x->context->points_omit_expiring;
    r->earns = arena_alloc(x->a, (max_earns + 1) * sizeof *r->earns);
    return r;
}

gw_call_t *gw_call_points_earn_batch(gw_saga_t *x, gw_call_t *c, const gw_step_def_t *def,
                                     Loyalty__V1__PointsEarnBatchRequest *r) {
    return gw_call_step(x, c, def, NULL, &r->base);
}

gw_call_t *gw_call_points_check_in(gw_saga_t *x, gw_call_t *c, const char *member_id) {
    Loyalty__V1__PointsCheckInRequest *r =
        pb_new(x->a, &loyalty__v1__points_check_in_request__descriptor);
    r->merchant_id = x->merchant_id;
    r->member_id = (char *)member_id;
    return gw_call_step(x, c, &gw_step_points_check_in, NULL, &r->base);
}

gw_call_t *gw_call_points_reverse(gw_saga_t *x, gw_call_t *c, const gw_step_def_t *def,
                                  const char *instance, const char *reference, int64_t share_bps,
                                  const char *reason) {
    Loyalty__V1__PointsReverseOrderRequest *p =
        pb_new(x->a, &loyalty__v1__points_reverse_order_request__descriptor);
    p->omit_expiring = x->context->points_omit_expiring;
    p->merchant_id = x->merchant_id;
    p->reference = (char *)reference;
    p->share_bps = share_bps;
    p->reason = (char *)reason;
    return gw_call_step(x, c, def, instance, &p->base);
}

/* ---- wallet-svc ---- */

Loyalty__V1__WalletGetBalanceRequest *gw_wallet_balance_request(arena_t *a, const char *merchant_id,
                                                                const char *member_id) {
    Loyalty__V1__WalletGetBalanceRequest *g =
        pb_new(a, &loyalty__v1__wallet_get_balance_request__descriptor);
    g->merchant_id = (char *)merchant_id;
    g->member_id = (char *)member_id;
    return g;
}

gw_call_t *gw_call_wallet_balance(gw_saga_t *x, gw_call_t *c, const char *member_id) {
    Loyalty__V1__WalletGetBalanceRequest *g =
        gw_wallet_balance_request(x->a, x->merchant_id, member_id);
    return gw_call_step(x, c, &gw_step_wallet_balance, NULL, &g->base);
}

gw_call_t *gw_call_wallet_top_up_plan(gw_saga_t *x, gw_call_t *c, size_t line,
                                      const char *plan_id) {
    Loyalty__V1__WalletGetTopUpPlanRequest *r =
        pb_new(x->a, &loyalty__v1__wallet_get_top_up_plan_request__descriptor);
    r->merchant_id = x->merchant_id;
    r->plan_id = (char *)plan_id;
    return gw_call_step(x, c, &gw_step_top_up_plan, arena_printf(x->a, "%zu", line), &r->base);
}

gw_call_t *gw_call_wallet_hold(gw_saga_t *x, gw_call_t *c, const char *member_id,
                               const char *order_id, int64_t amount_cents) {
    Loyalty__V1__WalletHoldRequest *h = pb_new(x->a, &loyalty__v1__wallet_hold_request__descriptor);
    h->merchant_id = x->merchant_id;
    h->member_id = (char *)member_id;
    h->amount_cents = amount_cents;
    h->reference = (char *)order_id;
    h->ttl_s = (int32_t)x->context->hold_ttl_s;
    h->omit_expiring = x->context->wallet_omit_expiring;
    gw_call_step(x, c, &gw_step_wallet_hold, NULL, &h->base);
    c->undone_by_reference = true; /* see checkout_compensate */
    return c;
}

gw_call_t *gw_call_wallet_void(gw_saga_t *x, gw_call_t *c, const char *hold_id,
                               const char *member_id, const char *reference) {
    Loyalty__V1__WalletVoidHoldRequest *r =
        pb_new(x->a, &loyalty__v1__wallet_void_hold_request__descriptor);
    r->merchant_id = x->merchant_id;
    if (hold_id != NULL) {
        r->hold_id = (char *)hold_id;
    } else {
        r->member_id = (char *)member_id;
        r->reference = (char *)reference;
    }
    return gw_call_step(x, c, &gw_step_wallet_hold_undo, NULL, &r->base);
}

gw_call_t *gw_call_wallet_capture(gw_saga_t *x, gw_call_t *c, const char *hold_id,
                                  int64_t amount_cents) {
    Loyalty__V1__WalletCaptureHoldRequest *r =
        pb_new(x->a, &loyalty__v1__wallet_capture_hold_request__descriptor);
    r->merchant_id = x->merchant_id;
    r->hold_id = (char *)hold_id;
    r->amount_cents = amount_cents;
    r->omit_expiring = x->context->wallet_omit_expiring;
    return gw_call_step(x, c, &gw_step_wallet_capture, NULL, &r->base);
}

gw_call_t *gw_call_wallet_top_up(gw_saga_t *x, gw_call_t *c, const gw_step_def_t *def,
                                 const char *instance, const char *member_id, int64_t paid_cents,
                                 const char *plan_id, const char *payment_ref) {
    Loyalty__V1__WalletTopUpRequest *t =
        pb_new(x->a, &loyalty__v1__wallet_top_up_request__descriptor);
    t->merchant_id = x->merchant_id;
    t->member_id = (char *)member_id;
    t->paid_cents = paid_cents;
    t->plan_id = (char *)plan_id;
    t->payment_ref = (char *)payment_ref;
    return gw_call_step(x, c, def, instance, &t->base);
}

gw_call_t *gw_call_wallet_refund(gw_saga_t *x, gw_call_t *c, const char *reference,
                                 int64_t amount_cents) {
    Loyalty__V1__WalletRefundRequest *w =
        pb_new(x->a, &loyalty__v1__wallet_refund_request__descriptor);
    w->merchant_id = x->merchant_id;
    w->reference = (char *)reference;
    w->amount_cents = amount_cents;
    return gw_call_step(x, c, &gw_step_wallet_refund, NULL, &w->base);
}

/* ---- promo-svc ---- */

static const char *segment_name(int segment) {
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&loyalty__v1__member_segment__descriptor, segment);
    static const char prefix[] = "MEMBER_SEGMENT_";
    if (v == NULL || segment == 0) {
        return "";
    }
    return strncmp(v->name, prefix, sizeof prefix - 1) == 0 ? v->name + sizeof prefix - 1 : v->name;
}

Loyalty__V1__PromoCart *gw_promo_cart(arena_t *a, const char *member_id,
                                      const Loyalty__V1__GatewayCart *cart,
                                      const Loyalty__V1__MemberTierStatus *tier) {
    Loyalty__V1__PromoCart *pc = pb_new(a, &loyalty__v1__promo_cart__descriptor);
    pc->member_id = (char *)member_id;
    if (tier != NULL) {
        if (tier->tier != NULL) {
            pc->tier_id = tier->tier->id;
            pc->tier_rank = tier->tier->rank;
        }
        pc->tier_discount_bps = tier->discount_bps;
        pc->segment = (char *)segment_name(tier->segment);
    }
    pc->store_id = cart->store_id;
    pc->shipping_cents = cart->shipping_cents;
    pc->codes = cart->codes;
    pc->n_codes = cart->n_codes;
    pc->coupon_ids = cart->coupon_ids;
    pc->n_coupon_ids = cart->n_coupon_ids;
    pc->coupon_codes = cart->coupon_codes;
    pc->n_coupon_codes = cart->n_coupon_codes;
    pc->lines = arena_alloc(a, (cart->n_lines + 1) * sizeof *pc->lines);
    pc->n_lines = cart->n_lines;
    for (size_t i = 0; i < cart->n_lines; i++) {
        const Loyalty__V1__GatewayCartLine *g = cart->lines[i];
        Loyalty__V1__PromoCartLine *l = pb_new(a, &loyalty__v1__promo_cart_line__descriptor);
        l->line_id = g->line_id;
        l->sku = g->sku;
        l->category = g->category;
        l->quantity = g->quantity;
        l->unit_price_cents = g->unit_price_cents;
        pc->lines[i] = l;
    }
    return pc;
}

gw_call_t *gw_call_promo_reserve(gw_saga_t *x, gw_call_t *c, Loyalty__V1__PromoCart *cart) {
    Loyalty__V1__PromoReserveRequest *r =
        pb_new(x->a, &loyalty__v1__promo_reserve_request__descriptor);
    r->merchant_id = x->merchant_id;
    r->checkout_id = x->id;
    r->cart = cart;
    r->ttl_s = x->context->hold_ttl_s;
    return gw_call_step(x, c, &gw_step_promo_reserve, NULL, &r->base);
}

gw_call_t *gw_call_promo_release(gw_saga_t *x, gw_call_t *c) {
    Loyalty__V1__PromoReleaseRequest *r =
        pb_new(x->a, &loyalty__v1__promo_release_request__descriptor);
    r->merchant_id = x->merchant_id;
    r->checkout_id = x->id;
    return gw_call_step(x, c, &gw_step_promo_reserve_undo, NULL, &r->base);
}

gw_call_t *gw_call_promo_confirm(gw_saga_t *x, gw_call_t *c, const char *order_id) {
    Loyalty__V1__PromoConfirmRequest *pc =
        pb_new(x->a, &loyalty__v1__promo_confirm_request__descriptor);
    pc->merchant_id = x->merchant_id;
    pc->checkout_id = x->id;
    pc->order_id = (char *)order_id;
    return gw_call_step(x, c, &gw_step_promo_confirm, NULL, &pc->base);
}

gw_call_t *gw_call_promo_issue_coupon(gw_saga_t *x, gw_call_t *c, const gw_step_def_t *def,
                                      const char *instance, const char *member_id,
                                      const char *template_id,
                                      Loyalty__V1__PromoCouponSource source) {
    Loyalty__V1__PromoIssueCouponRequest *ic =
        pb_new(x->a, &loyalty__v1__promo_issue_coupon_request__descriptor);
    ic->merchant_id = x->merchant_id;
    ic->member_id = (char *)member_id;
    ic->template_id = (char *)template_id;
    ic->source = source;
    return gw_call_step(x, c, def, instance, &ic->base);
}

gw_call_t *gw_call_promo_release_usage(gw_saga_t *x, gw_call_t *c, const char *checkout_id) {
    Loyalty__V1__PromoReleaseUsageRequest *u =
        pb_new(x->a, &loyalty__v1__promo_release_usage_request__descriptor);
    u->merchant_id = x->merchant_id;
    u->order_case = LOYALTY__V1__PROMO_RELEASE_USAGE_REQUEST__ORDER_CHECKOUT_ID;
    u->checkout_id = (char *)checkout_id;
    return gw_call_step(x, c, &gw_step_promo_release_usage, NULL, &u->base);
}

/* ---- referral-svc ---- */

gw_call_t *gw_call_referral_resolve(gw_saga_t *x, gw_call_t *c, const char *code) {
    Loyalty__V1__ReferralResolveCodeRequest *r =
        pb_new(x->a, &loyalty__v1__referral_resolve_code_request__descriptor);
    r->merchant_id = x->merchant_id;
    r->code = (char *)code;
    return gw_call_step(x, c, &gw_step_referral_resolve, NULL, &r->base);
}

gw_call_t *gw_call_referral_code(gw_saga_t *x, gw_call_t *c, const char *member_id) {
    Loyalty__V1__ReferralGetCodeRequest *q =
        pb_new(x->a, &loyalty__v1__referral_get_code_request__descriptor);
    q->merchant_id = x->merchant_id;
    q->member_id = (char *)member_id;
    return gw_call_step(x, c, &gw_step_referral_code, NULL, &q->base);
}

gw_call_t *gw_call_referral_attach(gw_saga_t *x, gw_call_t *c, const char *member_id,
                                   const char *code) {
    Loyalty__V1__ReferralAttachRequest *a =
        pb_new(x->a, &loyalty__v1__referral_attach_request__descriptor);
    a->merchant_id = x->merchant_id;
    a->referee_member_id = (char *)member_id;
    a->code = (char *)code;
    return gw_call_step(x, c, &gw_step_referral_attach, NULL, &a->base);
}

gw_call_t *gw_call_referral_compute(gw_saga_t *x, gw_call_t *c, Loyalty__V1__ReferralEvent event,
                                    const char *member_id, int64_t paid_cents,
                                    const char *reference) {
    Loyalty__V1__ReferralComputeRewardsRequest *rc =
        pb_new(x->a, &loyalty__v1__referral_compute_rewards_request__descriptor);
    rc->merchant_id = x->merchant_id;
    rc->event = event;
    rc->member_id = (char *)member_id;
    rc->paid_cents = paid_cents;
    rc->reference = (char *)reference;
    return gw_call_step(x, c, &gw_step_referral_compute, NULL, &rc->base);
}

gw_call_t *gw_call_referral_reverse(gw_saga_t *x, gw_call_t *c, const char *reference,
                                    int64_t share_bps) {
    Loyalty__V1__ReferralReverseRewardsRequest *rr =
        pb_new(x->a, &loyalty__v1__referral_reverse_rewards_request__descriptor);
    rr->merchant_id = x->merchant_id;
    rr->event = LOYALTY__V1__REFERRAL_EVENT__REFERRAL_EVENT_PURCHASE;
    rr->reference = (char *)reference;
    rr->share_bps = (int32_t)share_bps;
    return gw_call_step(x, c, &gw_step_referral_reverse, NULL, &rr->base);
}

gw_call_t *gw_call_referral_release(gw_saga_t *x, gw_call_t *c, int32_t limit) {
    Loyalty__V1__ReferralReleaseHeldRewardsRequest *r =
        pb_new(x->a, &loyalty__v1__referral_release_held_rewards_request__descriptor);
    r->merchant_id = x->merchant_id;
    r->limit = limit;
    return gw_call_step(x, c, &gw_step_referral_release, NULL, &r->base);
}
