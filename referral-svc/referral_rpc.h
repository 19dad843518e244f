/* referral_rpc.h -- the ReferralService handler table. */
#ifndef REFERRAL_RPC_H
#define REFERRAL_RPC_H

#include "rpc.h"

extern const rpc_service_t referral_service;

#endif
