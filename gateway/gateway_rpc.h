/* gateway_rpc.h -- the Gateway service table, its handlers (one file per area) and what they
 * share: starting or resuming a saga by idempotency key, and input checks. */
#ifndef GATEWAY_RPC_H
#define GATEWAY_RPC_H

#include "gateway_saga.h"
#include "rpc.h"

extern const rpc_service_t gateway_service;
/* The methods a storefront credential may call (rpc_server_options.storefront_methods). */
extern const char *const gateway_storefront_methods[];

/** The gateway's state from a call context. */
static inline gw_svc_t *gw_svc(rpc_ctx_t *ctx) {
    return ctx->service_state;
}

/** Runs a new saga (gw_saga_init'ed), or, when its idempotency key was used before: with the
 *  same request, loads that saga into x and resumes it when it is unfinished and no live
 *  executor holds it (ABORTED SAGA_IN_PROGRESS when one does); with another request,
 *  ALREADY_EXISTS IDEMPOTENCY_KEY_REUSED. OK means x holds the saga's current state (which may
 *  be a failure: see gw_saga_error). */
status_t gw_start(gw_saga_t *x);

/** The second half of gw_start: x's idempotency key is taken; load that saga into x (same
 *  request) and resume it, or fail IDEMPOTENCY_KEY_REUSED. */
status_t gw_resume_by_key(gw_saga_t *x);

/** A required id-like field: 1..max of [A-Za-z0-9_.:-]. */
status_t gw_check_id(const char *field, const char *value, size_t max);
/** An optional idempotency key: "" or a valid one. */
status_t gw_check_optional_key(const char *value);
/** A required idempotency key. */
status_t gw_check_key(const char *value);
/** A payment reference: 1..128 printable ASCII characters (or "" when optional). */
status_t gw_check_payment_ref(const char *field, const char *value, bool required);

/** The member's tier as a logged read (step "member_tier"; answered from the log when the saga
 *  resumes): NOT_FOUND MEMBER_NOT_FOUND for a member the merchant does not have, so that no saga
 *  acts for nobody. *out may be NULL. */
/** The member's tier status for a quote (no saga): from the gateway's near copy when it has one
 *  (docs/architecture.md "The gateway's copy of member tiers"), else from member-svc, and kept
 *  for Begin. */
status_t gw_quote_member_tier(rpc_ctx_t *ctx, const char *member_id,
                              const Loyalty__V1__MemberTierStatus **out);
status_t gw_read_member_tier(gw_saga_t *x, const char *member_id,
                             Loyalty__V1__MemberTierStatus **out);

/** Lists the rewards of a ComputeRewards answer as grants (*out) and prepares the calls that
 *  grant those granted now as points to their beneficiaries (reference "rr:<reward id>"): one
 *  EarnBatch call (step "referral_grants") when the saga's points are batched, else one Earn
 *  call each (steps "referral_grant:<reward id>"), added to g while it has more than `keep_free`
 *  calls free; *held_until gets the latest end of a hold among held ones (may be NULL). */
void gw_referral_grants(gw_saga_t *x, const Loyalty__V1__ReferralComputeRewardsResponse *cr,
                        Loyalty__V1__GatewayReferralGrant ***out, size_t *n_out, gw_group_t *g,
                        int keep_free, int64_t *held_until);

/* Handlers (gateway_rpc_checkout.c). */
rpc_handler_t gw_rpc_quote_checkout;
rpc_handler_t gw_rpc_begin_checkout;
rpc_handler_t gw_rpc_complete_checkout;
rpc_handler_t gw_rpc_cancel_checkout;
rpc_handler_t gw_rpc_checkout;
rpc_handler_t gw_rpc_get_checkout;
/* gateway_rpc_refund.c */
rpc_handler_t gw_rpc_refund_order;
/* gateway_rpc_member.c */
rpc_handler_t gw_rpc_register_member;
rpc_handler_t gw_rpc_get_member_overview;
rpc_handler_t gw_rpc_top_up_wallet;
rpc_handler_t gw_rpc_redeem_reward;
rpc_handler_t gw_rpc_check_in;
/* gateway_rpc.c */
rpc_handler_t gw_rpc_get_saga;
rpc_handler_t gw_rpc_list_sagas;
rpc_handler_t gw_rpc_retry_saga;
rpc_handler_t gw_rpc_get_settings;
rpc_handler_t gw_rpc_update_settings;
/* gateway_rpc_audit.c: the audit trail of the six services, merged. */
rpc_handler_t gw_rpc_list_audit_log;
/* gateway_rpc_admin.c */
rpc_handler_t gw_rpc_check_health;
rpc_handler_t gw_rpc_verify_ledgers;
rpc_handler_t gw_rpc_get_member_detail;

/* gateway_rpc_relay.c: the participants' configuration RPCs, relayed for admin tools. */
rpc_handler_t gw_rpc_relay;

/** The recovery job (rpc_job_t). */
status_t gw_job_recover(rpc_ctx_t *ctx);

/** The retention job (gateway_retention.c). */
status_t gw_job_purge_steps(rpc_ctx_t *ctx);

#endif
