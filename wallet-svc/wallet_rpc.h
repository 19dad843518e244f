/* wallet_rpc.h -- the WalletService handler table. */
#ifndef WALLET_RPC_H
#define WALLET_RPC_H

#include "rpc.h"

extern const rpc_service_t wallet_service;

#endif
