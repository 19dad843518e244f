/* gateway_merchant.h -- the merchant settings record (docs/architecture.md#merchant-settings):
 * GetMerchantSettings and UpdateMerchantSettings, the job that pushes the record's time zone to
 * every service that keeps a copy and reads the copies back. The record's SQL, and the time
 * zone the gateway's own campaigns read from it, are in gateway_store_merchant.c. */
#ifndef GATEWAY_MERCHANT_H
#define GATEWAY_MERCHANT_H

#include "arena.h"
#include "db.h"
#include "rpc.h"
#include "status.h"

#include <protobuf-c/protobuf-c.h>

/** Reads MERCHANT_SETTINGS_VERIFY_S (default 300, 0 = never read the copies back); at start. */
status_t gw_merchant_configure(void);

rpc_handler_t gw_rpc_get_merchant_settings;
/** RPC_MUTATE: one transaction with the idempotency record and the audit trail. */
rpc_handler_t gw_rpc_update_merchant_settings;

/** The job (every second): pushes what is due, then verifies the merchants due. */
status_t gw_job_merchant_settings(rpc_ctx_t *ctx);

#endif
