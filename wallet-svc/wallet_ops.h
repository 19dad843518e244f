/* wallet_ops.h -- the wallet's operations as database work: each runs inside the caller's
 * transaction, locks the member's wallet first, settles it (holds past their TTL are released,
 * lapsed deposits expire), applies the operation through the in-memory ledger (wallet_ledger.h)
 * and writes it with one flush and one merchant-account update at the end. Inputs are already
 * validated by wallet_rpc.c; outputs are built in the arena. */
#ifndef WALLET_OPS_H
#define WALLET_OPS_H

#include "db.h"
#include "loyalty/v1/wallet.pb-c.h"
#include "rpc.h"
#include "wallet_ledger.h"
#include "wallet_store.h"

/** What a wallet operation needs from its call. */
typedef struct wallet_env {
    db_t *db;
    arena_t *arena;
    const char *merchant_id;
    int64_t now;
} wallet_env_t;

wallet_env_t wallet_env_from(const rpc_ctx_t *ctx);

/** GetBalance: settles the wallet first when something is due. */
status_t wallet_op_get_balance(const wallet_env_t *e, const char *member_id,
                               Loyalty__V1__WalletBalance **out);

status_t wallet_op_top_up(const wallet_env_t *e, const Loyalty__V1__WalletTopUpRequest *req,
                          Loyalty__V1__WalletTopUpResponse *resp);

status_t wallet_op_refund_top_up(const wallet_env_t *e,
                                 const Loyalty__V1__WalletRefundTopUpRequest *req,
                                 Loyalty__V1__WalletRefundTopUpResponse *resp);

/** The top-up as the API shows it; lots are read to compute refundable_cents. */
status_t wallet_op_get_top_up(const wallet_env_t *e, const char *payment_ref,
                              Loyalty__V1__WalletTopUp **out);

status_t wallet_op_hold(const wallet_env_t *e, const Loyalty__V1__WalletHoldRequest *req,
                        int64_t ttl_s, Loyalty__V1__WalletHoldResponse *resp);

status_t wallet_op_capture(const wallet_env_t *e, const Loyalty__V1__WalletCaptureHoldRequest *req,
                           Loyalty__V1__WalletCaptureHoldResponse *resp);

status_t wallet_op_void(const wallet_env_t *e, const Loyalty__V1__WalletVoidHoldRequest *req,
                        Loyalty__V1__WalletVoidHoldResponse *resp);

/** The hold as the API shows it (a pending hold past its TTL reads EXPIRED). */
status_t wallet_op_get_hold(const wallet_env_t *e, const char *hold_id,
                            Loyalty__V1__WalletHold **out);

status_t wallet_op_refund(const wallet_env_t *e, const Loyalty__V1__WalletRefundRequest *req,
                          Loyalty__V1__WalletRefundResponse *resp);

/** ExpireDeposits of one merchant as of `now`. */
status_t wallet_op_expire_deposits(const wallet_env_t *e, int64_t now,
                                   Loyalty__V1__WalletExpireDepositsResponse *resp);

/** The background job: settles wallets (any merchant) with something due, each in its own
 *  transaction, skipping wallets another transaction holds. */
status_t wallet_job_settle(rpc_ctx_t *ctx);

#endif
