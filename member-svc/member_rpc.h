/* member_rpc.h -- the MemberService handler table. */
#ifndef MEMBER_RPC_H
#define MEMBER_RPC_H

#include "rpc.h"

extern const rpc_service_t member_service;

#endif
