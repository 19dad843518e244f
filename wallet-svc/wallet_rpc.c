/* wallet_rpc.c -- WalletService handlers. Skeleton: every method answers UNIMPLEMENTED until
 * it lands. */
#include "wallet_rpc.h"

#include "loyalty/v1/wallet.pb-c.h"

static const rpc_method_t wallet_methods[] = {
    {NULL, NULL, RPC_READ},
};

const rpc_service_t wallet_service = {&loyalty__v1__wallet_service__descriptor, wallet_methods};
