/* promo_rpc.c -- PromoService handlers: decode-level validation, rules, store, response. */
#include "promo_rpc.h"

#include "loyalty/v1/promo.pb-c.h"

static status_t rpc_unimplemented(rpc_ctx_t *ctx, const ProtobufCMessage *req,
                                  ProtobufCMessage *resp) {
    return status_make(STATUS_UNIMPLEMENTED, "NOT_IMPLEMENTED", "not implemented yet");
}

static const rpc_method_t promo_methods[] = {
    {"CreatePromotion", rpc_unimplemented, RPC_MUTATE},
    {"GetPromotion", rpc_unimplemented, RPC_READ},
    {"UpdatePromotion", rpc_unimplemented, RPC_MUTATE},
    {"PausePromotion", rpc_unimplemented, RPC_MUTATE},
    {"ResumePromotion", rpc_unimplemented, RPC_MUTATE},
    {"ListPromotions", rpc_unimplemented, RPC_READ},
    {"GeneratePromoCodes", rpc_unimplemented, RPC_MUTATE},
    {"ListPromoCodes", rpc_unimplemented, RPC_READ},
    {"CreateCouponTemplate", rpc_unimplemented, RPC_MUTATE},
    {"GetCouponTemplate", rpc_unimplemented, RPC_READ},
    {"ListCouponTemplates", rpc_unimplemented, RPC_READ},
    {"SetCouponTemplateActive", rpc_unimplemented, RPC_MUTATE},
    {"IssueCoupon", rpc_unimplemented, RPC_MUTATE},
    {"GetCoupon", rpc_unimplemented, RPC_READ},
    {"ListCoupons", rpc_unimplemented, RPC_READ},
    {"Quote", rpc_unimplemented, RPC_READ},
    {"Reserve", rpc_unimplemented, RPC_MUTATE},
    {"Confirm", rpc_unimplemented, RPC_MUTATE},
    {"Release", rpc_unimplemented, RPC_MUTATE},
    {"ReleaseUsage", rpc_unimplemented, RPC_MUTATE},
    {"GetReservation", rpc_unimplemented, RPC_READ},
    {"GetPromoSettings", rpc_unimplemented, RPC_READ},
    {"UpdatePromoSettings", rpc_unimplemented, RPC_MUTATE},
    {NULL, NULL, RPC_READ},
};

const rpc_service_t promo_service = {&loyalty__v1__promo_service__descriptor, promo_methods};
