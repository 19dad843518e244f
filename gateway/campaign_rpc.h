/* campaign_rpc.h -- the CampaignService table served by the gateway, and the scheduler job. */
#ifndef CAMPAIGN_RPC_H
#define CAMPAIGN_RPC_H

#include "rpc.h"

extern const rpc_service_t campaign_service;

/** The scheduler (rpc_job_t): runs every enabled campaign whose next run is due, then moves
 *  its next run CAMPAIGN_INTERVAL_S ahead. Replica-safe. */
status_t campaign_job_schedule(rpc_ctx_t *ctx);

#endif
