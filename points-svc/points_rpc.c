/* points_rpc.c -- PointsService handlers (skeleton: every method answers UNIMPLEMENTED until
 * its increment lands). */
#include "points_rpc.h"

#include "loyalty/v1/points.pb-c.h"

static status_t rpc_not_yet(rpc_ctx_t *ctx, const ProtobufCMessage *req, ProtobufCMessage *resp) {
    return status_make(STATUS_UNIMPLEMENTED, "NOT_IMPLEMENTED", "not implemented yet");
}

static const rpc_method_t points_methods[] = {
    {"GetSettings", rpc_not_yet, RPC_READ},
    {"UpdateSettings", rpc_not_yet, RPC_MUTATE},
    {"CreateCampaign", rpc_not_yet, RPC_MUTATE},
    {"ListCampaigns", rpc_not_yet, RPC_READ},
    {"EndCampaign", rpc_not_yet, RPC_MUTATE},
    {"QuoteEarn", rpc_not_yet, RPC_READ},
    {"Earn", rpc_not_yet, RPC_MUTATE},
    {"CheckIn", rpc_not_yet, RPC_MUTATE},
    {"GetBalance", rpc_not_yet, RPC_READ},
    {"ListLots", rpc_not_yet, RPC_READ},
    {"ListHistory", rpc_not_yet, RPC_READ},
    {"ListGrowthHistory", rpc_not_yet, RPC_READ},
    {"QuoteRedeem", rpc_not_yet, RPC_READ},
    {"Hold", rpc_not_yet, RPC_MUTATE},
    {"CommitHold", rpc_not_yet, RPC_MUTATE},
    {"ReleaseHold", rpc_not_yet, RPC_MUTATE},
    {"GetHold", rpc_not_yet, RPC_READ},
    {"Adjust", rpc_not_yet, RPC_MUTATE},
    {"ReverseOrder", rpc_not_yet, RPC_MUTATE},
    {"ImportLots", rpc_not_yet, RPC_MUTATE},
    {"ExpirePoints", rpc_not_yet, RPC_MUTATE},
    {"VerifyLedger", rpc_not_yet, RPC_READ},
    {NULL, NULL, RPC_READ},
};

const rpc_service_t points_service = {&loyalty__v1__points_service__descriptor, points_methods};
