/* gateway_rpc_relay.c -- Gateway.Relay: the participants' configuration RPCs forwarded for admin
 * tools (loyaltyctl programme), so that they reach every service through the gateway alone.
 * A fixed allow-list of settings-type methods; the inner request is decoded with the
 * participant's own descriptor (its .proto stays the contract), must name the outer merchant
 * (the one the runtime checked the caller's credential for), and is sent with the gateway's
 * service credential, the caller's request id and deadline (rpc_call takes both from the call
 * being served), and the caller's credential id in RPC_ON_BEHALF_OF_HEADER, so that the
 * participant's audit trail names the admin who made the change (and the gateway's credential
 * as the one it came through). The participant's answer or refusal is passed back as it is.
 * Admin only: Relay is not in gateway_storefront_methods. */
#include "gateway_rpc.h"
#include "loyalty/v1/gateway.pb-c.h"
#include "loyalty/v1/member.pb-c.h"
#include "loyalty/v1/points.pb-c.h"
#include "loyalty/v1/promo.pb-c.h"
#include "loyalty/v1/referral.pb-c.h"
#include "loyalty/v1/wallet.pb-c.h"
#include "pb.h"

#include <stddef.h>
#include <string.h>

/* One participant's relayed methods: configuration reads and writes only, never money, points
 * or members (those go through the sagas). */
typedef struct relay_target {
    const ProtobufCServiceDescriptor *service;
    size_t channel_offset; /* of the participant's channel in gw_svc_t */
    const char *const *methods;
} relay_target_t;

static const char *const relay_points[] = {"GetSettings",   "UpdateSettings", "CreateCampaign",
                                           "ListCampaigns", "EndCampaign",    NULL};
static const char *const relay_member[] = {
    "GetMemberSettings",    "UpdateMemberSettings", "SetTagRules", "ListTagRules",
    "CreateTier",           "UpdateTier",           "ListTiers",   "CreateMembershipPlan",
    "UpdateMembershipPlan", "ListMembershipPlans",  NULL};
static const char *const relay_wallet[] = {"GetSettings",
                                           "UpdateSettings",
                                           "CreateTopUpPlan",
                                           "UpdateTopUpPlan",
                                           "GetTopUpPlan",
                                           "ListTopUpPlans",
                                           NULL};
static const char *const relay_referral[] = {"GetReferralProgram", "SetReferralProgram", NULL};
static const char *const relay_promo[] = {
    "CreatePromotion",    "GetPromotion",        "UpdatePromotion",
    "PausePromotion",     "ResumePromotion",     "ListPromotions",
    "GeneratePromoCodes", "ListPromoCodes",      "CreateCouponTemplate",
    "GetCouponTemplate",  "ListCouponTemplates", "SetCouponTemplateActive",
    "GetPromoSettings",   "UpdatePromoSettings", NULL};

static const relay_target_t relay_targets[] = {
    {&loyalty__v1__points_service__descriptor, offsetof(gw_svc_t, points), relay_points},
    {&loyalty__v1__member_service__descriptor, offsetof(gw_svc_t, member), relay_member},
    {&loyalty__v1__wallet_service__descriptor, offsetof(gw_svc_t, wallet), relay_wallet},
    {&loyalty__v1__referral_service__descriptor, offsetof(gw_svc_t, referral), relay_referral},
    {&loyalty__v1__promo_service__descriptor, offsetof(gw_svc_t, promo), relay_promo},
};

/* The allowed method `method` of `service`, and its participant; NULL when not allowed. */
static const ProtobufCMethodDescriptor *relay_find(const char *service, const char *method,
                                                   const relay_target_t **target) {
    for (size_t i = 0; i < sizeof relay_targets / sizeof relay_targets[0]; i++) {
        const relay_target_t *t = &relay_targets[i];
        if (strcmp(t->service->name, service) != 0) {
            continue;
        }
        for (const char *const *m = t->methods; *m != NULL; m++) {
            if (strcmp(*m, method) == 0) {
                *target = t;
                return protobuf_c_service_descriptor_get_method_by_name(t->service, method);
            }
        }
    }
    return NULL;
}

status_t gw_rpc_relay(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg, ProtobufCMessage *resp_msg) {
    const Loyalty__V1__GatewayRelayRequest *req = (const void *)req_msg;
    Loyalty__V1__GatewayRelayResponse *resp = (void *)resp_msg;
    const relay_target_t *target = NULL;
    const ProtobufCMethodDescriptor *m = relay_find(req->service, req->method, &target);
    if (m == NULL) {
        return status_make(STATUS_INVALID_ARGUMENT, REASON_RELAY_METHOD_NOT_ALLOWED,
                           "%.100s/%.100s is not relayed (configuration methods only)",
                           req->service, req->method);
    }
    ProtobufCMessage *inner =
        pb_unpack_arena(ctx->arena, m->input, req->request.data, req->request.len);
    if (inner == NULL) {
        return status_invalid_field("request", "not a valid %s", m->input->name);
    }
    const char *inner_merchant = pb_get_string_field(inner, "merchant_id");
    if (inner_merchant == NULL || strcmp(inner_merchant, ctx->merchant_id) != 0) {
        return status_make(STATUS_INVALID_ARGUMENT, REASON_RELAY_MERCHANT_MISMATCH,
                           "request.merchant_id must be merchant_id (%s)", ctx->merchant_id);
    }
    rpc_channel_t *ch = *(rpc_channel_t **)((char *)gw_svc(ctx) + target->channel_offset);
    /* Who the gateway acts for: the caller, or whom the caller itself acted for. Nobody when
     * calls are not authenticated. */
    const char *actor = ctx->on_behalf_of != NULL && ctx->on_behalf_of[0] != '\0'
                            ? ctx->on_behalf_of
                            : ctx->credential_id;
    rpc_call_opts_t opts = {0};
    if (actor != NULL && actor[0] != '\0') {
        opts.extra_keys[0] = RPC_ON_BEHALF_OF_HEADER;
        opts.extra_values[0] = actor;
        opts.extra_count = 1;
    }
    ProtobufCMessage *out = NULL;
    status_t st = rpc_call(ch, target->service, req->method, inner, ctx->arena, &out, &opts);
    if (!status_is_ok(&st)) {
        return st;
    }
    resp->response.data = pb_pack_arena(ctx->arena, out, &resp->response.len);
    return status_ok();
}
