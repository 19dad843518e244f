/* promo_rpc.h -- the PromoService handler table. */
#ifndef PROMO_RPC_H
#define PROMO_RPC_H

#include "rpc.h"

extern const rpc_service_t promo_service;

#endif
