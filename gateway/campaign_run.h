/* campaign_run.h -- running one campaign of one merchant (RunCampaign and the scheduler). */
#ifndef CAMPAIGN_RUN_H
#define CAMPAIGN_RUN_H

#include "campaign_rules.h"
#include "rpc.h"

#include <stdbool.h>
#include <stdint.h>

/** Runs campaign `c` (c->merchant_id) as of unix instant `at`, filling `res` (allocated by the
 *  caller in ctx->arena). A dry run counts what it would do and writes nothing. Members are
 *  processed one by one; an error from a dependency stops the run and is returned, with the
 *  counts of what was done so far in `res` (the next run continues where it stopped, since
 *  done deliveries are skipped). */
status_t campaign_run(rpc_ctx_t *ctx, const Loyalty__V1__Campaign *c, int64_t at, bool dry_run,
                      Loyalty__V1__CampaignRunResult *res);

/** Registers the campaign metrics (loyalty_campaign_runs_total, ..._deliveries_total,
 *  ..._skips_total{reason}) so that they are exposed at 0 before the first run. */
void campaign_metrics_register(void);

#endif
