/* points_rpc.h -- the PointsService handler table. */
#ifndef POINTS_RPC_H
#define POINTS_RPC_H

#include "rpc.h"

extern const rpc_service_t points_service;

#endif
