/* gateway_calls.h -- the participants' contracts as the sagas use them: every step a saga can
 * log, declared once (the name its log rows carry, the participant and method it calls, the
 * step that undoes it), and the builders of the participants' requests. A builder derives the
 * step's idempotency key from the step's name and returns the call the flow reads the answer
 * through; a flow reads an earlier phase's answer through the step's declaration
 * (gw_logged_answer), never by spelling its name again. */
#ifndef GATEWAY_CALLS_H
#define GATEWAY_CALLS_H

#include "gateway_saga.h"
#include "loyalty/v1/member.pb-c.h"
#include "loyalty/v1/points.pb-c.h"
#include "loyalty/v1/promo.pb-c.h"
#include "loyalty/v1/referral.pb-c.h"
#include "loyalty/v1/wallet.pb-c.h"

/** The services a saga calls. */
typedef enum gw_participant {
    GW_MEMBER,
    GW_POINTS,
    GW_WALLET,
    GW_REFERRAL,
    GW_PROMO,
} gw_participant_t;

/** One kind of step. Its name is what stored log rows carry (and failpoints and the
 *  loyalty_saga_step_seconds label name): never renamed, since recovery reads old rows. A step
 *  made once per item of a saga (a cart line, a reward) is named "<name>:<instance>". */
typedef struct gw_step_def {
    const char *name;
    gw_participant_t participant;
    const char *method;
    int direction;                  /* GW_FORWARD, GW_COMPENSATE or GW_READ */
    const struct gw_step_def *undo; /* the step that compensates it; NULL when none */
} gw_step_def_t;

/* ---- the steps (gateway_calls.c declares them) ---- */

/* reads */
extern const gw_step_def_t gw_step_member_tier, gw_step_membership_plans, gw_step_top_up_plan,
    gw_step_points_quote, gw_step_wallet_balance, gw_step_referral_resolve, gw_step_referral_code;
/* checkout: Begin, its compensations, Complete */
extern const gw_step_def_t gw_step_promo_reserve, gw_step_promo_reserve_undo, gw_step_points_hold,
    gw_step_points_hold_undo, gw_step_wallet_hold, gw_step_wallet_hold_undo, gw_step_wallet_capture,
    gw_step_promo_confirm, gw_step_points_settle, gw_step_points_commit, gw_step_points_earn,
    gw_step_referral_compute, gw_step_referral_grant, gw_step_referral_grants, gw_step_membership,
    gw_step_top_up, gw_step_member_record_order;
/* refund */
extern const gw_step_def_t gw_step_wallet_refund, gw_step_points_reverse, gw_step_referral_reverse,
    gw_step_promo_release_usage, gw_step_referral_clawback, gw_step_member_record_return;
/* registration, top-up, check-in, points mall, referral release, balances */
extern const gw_step_def_t gw_step_create_member, gw_step_referral_attach,
    gw_step_registration_points, gw_step_welcome_coupon, gw_step_wallet_top_up,
    gw_step_points_check_in, gw_step_promo_issue_coupon, gw_step_referral_release,
    gw_step_member_points_balance;

/* ---- steps by their declaration ---- */

/** Sets up c as a call of step `def` (instance NULL, or the item's "<name>:<instance>") with
 *  `request`, which must be the method's input message; a step that changes something gets its
 *  idempotency key "<saga_id>:<name>" in the request's idempotency_key field. Returns c. */
gw_call_t *gw_call_step(gw_saga_t *x, gw_call_t *c, const gw_step_def_t *def, const char *instance,
                        ProtobufCMessage *request);

/** The logged record of step `def` (no instance), or NULL when it was never started. */
gw_step_t *gw_logged_step(gw_saga_t *x, const gw_step_def_t *def);

/** The DONE answer of step `def` (no instance) from the log, decoded as its method's output;
 *  NULL when it is not DONE. For a later phase of the saga (the call object is gone). */
ProtobufCMessage *gw_logged_answer(gw_saga_t *x, const gw_step_def_t *def);

/* ---- member-svc ---- */

gw_call_t *gw_call_member_tier(gw_saga_t *x, gw_call_t *c, const char *member_id);
gw_call_t *gw_call_membership_plans(gw_saga_t *x, gw_call_t *c);
/** A MEMBERSHIP line (cart index `line`) bought: the line's own order id "<order>:m<line>". */
gw_call_t *gw_call_membership(gw_saga_t *x, gw_call_t *c, size_t line, const char *member_id,
                              const char *order_id, const char *plan_id, int32_t quantity);
/** The order's spend and growth for member-svc's tier rules; `balance` (may be NULL) feeds its
 *  points_balance tag rules. */
gw_call_t *gw_call_member_record_order(gw_saga_t *x, gw_call_t *c, const char *member_id,
                                       const char *order_id, int64_t spend_cents,
                                       int64_t growth_delta,
                                       const Loyalty__V1__PointsBalance *balance);
gw_call_t *gw_call_member_record_return(gw_saga_t *x, gw_call_t *c, const char *order_id,
                                        int64_t spend_cents, int64_t growth_delta,
                                        const Loyalty__V1__PointsBalance *balance);
/** The member's points balance for member-svc's tag rules (instance: NULL, or the member's id
 *  when the saga tells several members'). */
gw_call_t *gw_call_member_points_balance(gw_saga_t *x, gw_call_t *c, const char *instance,
                                         const char *member_id, int64_t points_balance,
                                         int64_t points_balance_version);
gw_call_t *gw_call_create_member(gw_saga_t *x, gw_call_t *c, Loyalty__V1__MemberProfile *profile,
                                 const char *external_id);

/* ---- points-svc ---- */

/** QuoteRedeem: points-svc's choice and cash value of the points on an order (a = where the
 *  request lives; also for QuoteCheckout, which has no saga). */
Loyalty__V1__PointsQuoteRedeemRequest *gw_points_quote_request(arena_t *a, const char *merchant_id,
                                                               const char *member_id,
                                                               int64_t order_total_cents,
                                                               int64_t points, bool use_max_points);
gw_call_t *gw_call_points_quote(gw_saga_t *x, gw_call_t *c, const char *member_id,
                                int64_t order_total_cents, int64_t points, bool use_max_points);
/** The points hold of a checkout: a cash redemption on an order of order_total_cents, undone by
 *  the order id after a crash (undone_by_reference). The caller sets what to hold. */
Loyalty__V1__PointsHoldRequest *gw_call_points_hold_order(gw_saga_t *x, gw_call_t *c,
                                                          const char *member_id,
                                                          const char *order_id,
                                                          int64_t order_total_cents);
/** The points hold of a points-mall redemption (reference: the saga). */
gw_call_t *gw_call_points_hold_reward(gw_saga_t *x, gw_call_t *c, const char *member_id,
                                      int64_t points);
/** omit_expiring: the answer's balance leaves out the expiring lots (no one shows it). */
gw_call_t *gw_call_points_commit(gw_saga_t *x, gw_call_t *c, const char *hold_id,
                                 bool omit_expiring);
/** Releases the hold `hold_id`, or (hold_id NULL) the hold taken with `reference`. */
gw_call_t *gw_call_points_release(gw_saga_t *x, gw_call_t *c, const char *hold_id,
                                  const char *reference, bool omit_expiring);
/** The buyer's earn of an order (no merchant or key: an item of a batch, or gw_call_points_earn).
 *  tier may be NULL. */
Loyalty__V1__PointsEarnRequest *gw_points_order_earn(gw_saga_t *x, const char *member_id,
                                                     const char *order_id, int64_t paid_cents,
                                                     const Loyalty__V1__MemberTierStatus *tier);
/** The earn that grants a referral reward to its beneficiary (reference "rr:<reward id>"). */
Loyalty__V1__PointsEarnRequest *gw_points_grant_earn(gw_saga_t *x,
                                                     const Loyalty__V1__ReferralReward *rw);
/** The registration's event earn (reference "reg:<member id>"). */
Loyalty__V1__PointsEarnRequest *gw_points_registration_earn(gw_saga_t *x, const char *member_id);
/** One Earn step of e (its merchant set here). */
gw_call_t *gw_call_points_earn(gw_saga_t *x, gw_call_t *c, const gw_step_def_t *def,
                               const char *instance, Loyalty__V1__PointsEarnRequest *e);
/** An EarnBatch request with room for max_earns items (the items carry no keys). */
Loyalty__V1__PointsEarnBatchRequest *gw_points_earn_batch(gw_saga_t *x, size_t max_earns);
gw_call_t *gw_call_points_earn_batch(gw_saga_t *x, gw_call_t *c, const gw_step_def_t *def,
                                     Loyalty__V1__PointsEarnBatchRequest *r);
gw_call_t *gw_call_points_check_in(gw_saga_t *x, gw_call_t *c, const char *member_id);
/** ReverseOrder of `reference` by share_bps (the order's, or a reward's "rr:<id>"). */
gw_call_t *gw_call_points_reverse(gw_saga_t *x, gw_call_t *c, const gw_step_def_t *def,
                                  const char *instance, const char *reference, int64_t share_bps,
                                  const char *reason);

/* ---- wallet-svc ---- */

/** GetBalance of the member's wallet (also for QuoteCheckout, which has no saga). */
Loyalty__V1__WalletGetBalanceRequest *gw_wallet_balance_request(arena_t *a, const char *merchant_id,
                                                                const char *member_id);
gw_call_t *gw_call_wallet_balance(gw_saga_t *x, gw_call_t *c, const char *member_id);
/** The top-up plan of a WALLET_TOPUP line (cart index `line`). */
gw_call_t *gw_call_wallet_top_up_plan(gw_saga_t *x, gw_call_t *c, size_t line, const char *plan_id);
/** The wallet hold of a checkout, undone by the order id after a crash. */
gw_call_t *gw_call_wallet_hold(gw_saga_t *x, gw_call_t *c, const char *member_id,
                               const char *order_id, int64_t amount_cents);
/** Voids the hold `hold_id`, or (hold_id NULL) the member's hold taken with `reference`. */
gw_call_t *gw_call_wallet_void(gw_saga_t *x, gw_call_t *c, const char *hold_id,
                               const char *member_id, const char *reference);
gw_call_t *gw_call_wallet_capture(gw_saga_t *x, gw_call_t *c, const char *hold_id,
                                  int64_t amount_cents);
/** A top-up: the saga's own (instance NULL) or a WALLET_TOPUP line's (def gw_step_top_up,
 *  instance the line). */
gw_call_t *gw_call_wallet_top_up(gw_saga_t *x, gw_call_t *c, const gw_step_def_t *def,
                                 const char *instance, const char *member_id, int64_t paid_cents,
                                 const char *plan_id, const char *payment_ref);
gw_call_t *gw_call_wallet_refund(gw_saga_t *x, gw_call_t *c, const char *reference,
                                 int64_t amount_cents);

/* ---- promo-svc ---- */

/** The checkout's cart as promo-svc prices it (tier may be NULL). */
Loyalty__V1__PromoCart *gw_promo_cart(arena_t *a, const char *member_id,
                                      const Loyalty__V1__GatewayCart *cart,
                                      const Loyalty__V1__MemberTierStatus *tier);
/** Reserves the cart's promotions and coupons under the saga's id. */
gw_call_t *gw_call_promo_reserve(gw_saga_t *x, gw_call_t *c, Loyalty__V1__PromoCart *cart);
gw_call_t *gw_call_promo_release(gw_saga_t *x, gw_call_t *c);
gw_call_t *gw_call_promo_confirm(gw_saga_t *x, gw_call_t *c, const char *order_id);
gw_call_t *gw_call_promo_issue_coupon(gw_saga_t *x, gw_call_t *c, const gw_step_def_t *def,
                                      const char *instance, const char *member_id,
                                      const char *template_id,
                                      Loyalty__V1__PromoCouponSource source);
gw_call_t *gw_call_promo_release_usage(gw_saga_t *x, gw_call_t *c, const char *checkout_id);

/* ---- referral-svc ---- */

gw_call_t *gw_call_referral_resolve(gw_saga_t *x, gw_call_t *c, const char *code);
gw_call_t *gw_call_referral_code(gw_saga_t *x, gw_call_t *c, const char *member_id);
gw_call_t *gw_call_referral_attach(gw_saga_t *x, gw_call_t *c, const char *member_id,
                                   const char *code);
/** Rewards of a purchase (paid_cents) or a registration (paid_cents 0). */
gw_call_t *gw_call_referral_compute(gw_saga_t *x, gw_call_t *c, Loyalty__V1__ReferralEvent event,
                                    const char *member_id, int64_t paid_cents,
                                    const char *reference);
gw_call_t *gw_call_referral_reverse(gw_saga_t *x, gw_call_t *c, const char *reference,
                                    int64_t share_bps);
gw_call_t *gw_call_referral_release(gw_saga_t *x, gw_call_t *c, int32_t limit);

#endif
