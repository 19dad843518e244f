/* referral_rpc.c -- ReferralService handlers: validation, rules, store, response. */
#include "referral_rpc.h"

#include "loyalty/v1/referral.pb-c.h"
#include "referral_rules.h"
#include "referral_store.h"

static status_t rpc_unimplemented(rpc_ctx_t *ctx, const ProtobufCMessage *req,
                                  ProtobufCMessage *resp) {
    return status_make(STATUS_UNIMPLEMENTED, "NOT_YET", "not implemented yet");
}

static const rpc_method_t referral_methods[] = {
    {"SetReferralProgram", rpc_unimplemented, RPC_MUTATE},
    {"GetReferralProgram", rpc_unimplemented, RPC_READ},
    {"GetReferralCode", rpc_unimplemented, RPC_TX},
    {"ResolveReferralCode", rpc_unimplemented, RPC_READ},
    {"AttachReferral", rpc_unimplemented, RPC_MUTATE},
    {"GetUpline", rpc_unimplemented, RPC_READ},
    {"ListDownline", rpc_unimplemented, RPC_READ},
    {"ComputeRewards", rpc_unimplemented, RPC_MUTATE},
    {"ReverseRewards", rpc_unimplemented, RPC_MUTATE},
    {"ReleaseHeldRewards", rpc_unimplemented, RPC_MUTATE},
    {"ListRewards", rpc_unimplemented, RPC_READ},
    {NULL, NULL, RPC_READ},
};

const rpc_service_t referral_service = {&loyalty__v1__referral_service__descriptor,
                                        referral_methods};
