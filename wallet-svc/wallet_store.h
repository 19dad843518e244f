/* wallet_store.h -- SQL of the `wallet` schema. Every function takes the merchant and touches
 * only its rows. Loaders of member-owned rows expect the member's wallet to be locked by the
 * transaction (wallet_store_member_lock), which is what makes them safe without row locks of
 * their own. Results live in the arena given (or the wallet_tx's). */
#ifndef WALLET_STORE_H
#define WALLET_STORE_H

#include "arena.h"
#include "db.h"
#include "loyalty/v1/wallet.pb-c.h"
#include "status.h"
#include "wallet_ledger.h"

#include <stdbool.h>
#include <stdint.h>

/* ---- settings ---- */

typedef struct wallet_settings {
    int32_t deposit_expiry_months;
    char *time_zone;
    int32_t refund_grace_days;
    int64_t updated_at; /* 0 = defaults, never stored */
    int64_t local_day;  /* today in the merchant's time zone, days since 1970-01-01 */
} wallet_settings_t;

/** The merchant's settings (defaults when never set) and today's local date at `now`. */
status_t wallet_store_settings_get(db_t *db, arena_t *a, const char *merchant_id, int64_t now,
                                   wallet_settings_t *out);

/** Writes all settings (upsert). */
status_t wallet_store_settings_put(db_t *db, const char *merchant_id, const wallet_settings_t *s);

/** INVALID_ARGUMENT INVALID_TIME_ZONE unless PostgreSQL knows the zone. */
status_t wallet_store_check_time_zone(db_t *db, const char *time_zone);

/** The instant local midnight starts `day` (days since 1970-01-01) in `time_zone`. */
status_t wallet_store_local_midnight(db_t *db, const char *time_zone, int64_t day, int64_t *at);

/** The local day (days since 1970-01-01) of "YYYY-MM-DD" start, as an instant. */
status_t wallet_store_date_start(db_t *db, const char *time_zone, const char *date, int64_t *at);

/* ---- plans ---- */

status_t wallet_store_plan_insert(db_t *db, arena_t *a, const char *merchant_id,
                                  const Loyalty__V1__WalletTopUpPlan *plan,
                                  Loyalty__V1__WalletTopUpPlan **out);
/** NOT_FOUND PLAN_NOT_FOUND when absent. */
status_t wallet_store_plan_get(db_t *db, arena_t *a, const char *merchant_id, const char *id,
                               bool for_update, Loyalty__V1__WalletTopUpPlan **out);
/** Writes name, enabled and window. */
status_t wallet_store_plan_update(db_t *db, arena_t *a, const char *merchant_id,
                                  const Loyalty__V1__WalletTopUpPlan *plan,
                                  Loyalty__V1__WalletTopUpPlan **out);
/** Newest first after the cursor id (""); active_only keeps plans usable at `now`. */
status_t wallet_store_plan_list(db_t *db, arena_t *a, const char *merchant_id, const char *after_id,
                                int32_t limit, bool active_only, int64_t now,
                                Loyalty__V1__WalletTopUpPlan ***out, size_t *n);

/* ---- wallets ---- */

/** Creates the member's two account rows if missing (before the first credit). */
status_t wallet_store_member_ensure(db_t *db, const char *merchant_id, const char *member_id);

/** Locks the member's two account rows (principal first) and reads their balances into m.
 *  m->exists is false when the wallet has no rows. With skip_locked, a wallet another
 *  transaction holds is skipped: *locked false. */
status_t wallet_store_member_lock(db_t *db, const char *merchant_id, wallet_member_t *m,
                                  bool skip_locked, bool *locked);

/** The exact next_due_at of a wallet from its holds and lots (WALLET_DUE_NEVER: none). */
status_t wallet_store_next_due(db_t *db, const char *merchant_id, const char *member_id,
                               int64_t *at);

/** Reads the balances without locking. */
status_t wallet_store_member_read(db_t *db, const char *merchant_id, wallet_member_t *m);

/** A wallet's balances and expiring figures (see wallet_store_expiring), read in one statement
 *  without locks; *due when its next_due_at has passed. */
status_t wallet_store_balance_snapshot(db_t *db, const char *merchant_id, wallet_member_t *m,
                                       int64_t now, int64_t until, int64_t *soon_cents,
                                       int64_t *next_at, bool *due);

/** Sum of available money in the member's lots lapsing before `until`, and the first lapse. */
status_t wallet_store_expiring(db_t *db, const char *merchant_id, const char *member_id,
                               int64_t until, int64_t *cents, int64_t *next_at);

/* ---- lots ---- */

/** Hold's reads in one round trip: the member's wallet locked FOR UPDATE (into m), the claim of
 *  the spend `reference` (*owner: the member, or NULL when it was claimed before: ask
 *  wallet_store_spend_get whose it is), and the lots that cover `amount` in spending order, read
 *  under the lock (as wallet_store_lots_spendable; stale once settling the wallet moved them). */
status_t wallet_store_hold_reads(db_t *db, wallet_tx_t *tx, const char *merchant_id,
                                 wallet_member_t *m, const char *reference, int64_t amount_cents,
                                 char **owner, wallet_lot_t ***lots, int *n);

/** Loads, in spending order, the member's unexpired lots with money available, just enough of
 *  them to cover `amount` (at most WALLET_LOTS_PER_OP_MAX). */
status_t wallet_store_lots_spendable(db_t *db, wallet_tx_t *tx, const char *merchant_id,
                                     wallet_member_t *m, int64_t amount_cents, wallet_lot_t ***out,
                                     int *n);

/** Loads the member's lots with money available that lapsed at or before `now`. */
status_t wallet_store_lots_lapsed(db_t *db, wallet_tx_t *tx, const char *merchant_id,
                                  wallet_member_t *m, int64_t now, wallet_lot_t ***out, int *n);

/** Loads one lot (from the transaction when it has it). NOT_FOUND when absent. */
status_t wallet_store_lot(db_t *db, wallet_tx_t *tx, const char *merchant_id, const char *id,
                          wallet_lot_t **out);

/** A page of the member's lots in spending order after `after_key` ("" = start). */
status_t wallet_store_lot_list(db_t *db, arena_t *a, const char *merchant_id, const char *member_id,
                               bool include_closed, const char *after_key, int32_t limit,
                               Loyalty__V1__WalletLot ***out, size_t *n, char **last_key);

/* ---- holds ---- */

typedef struct wallet_hold_row {
    char *id;
    char *member_id;
    char *reference;
    int64_t amount_cents;
    int64_t captured;
    int state;
    int64_t expires_at;
    char *transfer_id;
    int64_t created_at;
    int64_t updated_at;
} wallet_hold_row_t;

/** One reserved part of a hold: a pending debit line of its HOLD transfer. */
typedef struct wallet_hold_part {
    wallet_lot_t *lot;
    int64_t amount_cents;
} wallet_hold_part_t;

/* Both deferred (db_exec_deferred): sent with the ledger's flush. */
status_t wallet_store_hold_insert(db_t *db, const char *merchant_id, const wallet_hold_row_t *h);
status_t wallet_store_hold_update(db_t *db, const char *merchant_id, const wallet_hold_row_t *h);
/** The member's pending holds whose TTL passed at `now` (at most WALLET_LOTS_PER_OP_MAX). */
status_t wallet_store_holds_due(db_t *db, arena_t *a, const char *merchant_id,
                                const char *member_id, int64_t now, wallet_hold_row_t **out,
                                int *n);
/** A hold and its reserved parts in spending order, their lots loaded into tx (one round
 *  trip). NOT_FOUND HOLD_NOT_FOUND when absent. */
status_t wallet_store_hold_load(db_t *db, wallet_tx_t *tx, const char *merchant_id,
                                const char *hold_id, wallet_hold_row_t *h,
                                wallet_hold_part_t **parts, int *n);
/** The wallet of a hold locked FOR UPDATE (*m) and then the hold with its parts, in one round
 *  trip (stale once settling the wallet moved them). NOT_FOUND HOLD_NOT_FOUND. */
status_t wallet_store_hold_open(db_t *db, wallet_tx_t *tx, const char *merchant_id,
                                const char *hold_id, wallet_member_t **m, wallet_hold_row_t *h,
                                wallet_hold_part_t **parts, int *n);
/** The id of the member's pending hold taken with `reference` (the latest), into a; NOT_FOUND
 *  HOLD_NOT_FOUND when there is none. */
status_t wallet_store_pending_hold_id(db_t *db, arena_t *a, const char *merchant_id,
                                      const char *member_id, const char *reference, char **id);
/* ---- spends (captures per reference) ---- */

typedef struct wallet_spend_part {
    wallet_lot_t *lot; /* the lot the capture took from */
    int code;
    int64_t captured;
    int64_t refunded;
} wallet_spend_part_t;

/** Records that `reference` belongs to member_id (first hold), or finds its member: *owner is
 *  the member the reference belongs to. */
status_t wallet_store_spend_claim(db_t *db, arena_t *a, const char *merchant_id,
                                  const char *reference, const char *member_id, char **owner);
/** The member a reference belongs to, and its totals; NOT_FOUND REFERENCE_NOT_FOUND. */
status_t wallet_store_spend_get(db_t *db, arena_t *a, const char *merchant_id,
                                const char *reference, char **member_id, int64_t *captured,
                                int64_t *refunded);
/** Adds captured (delta_captured[i] >= 0) or refunded amounts per lot and in total. */
status_t wallet_store_spend_add(db_t *db, const char *merchant_id, const char *reference,
                                const wallet_spend_part_t *parts, const int64_t *captured,
                                const int64_t *refunded, int n);
/** The reference's per-lot captures, lots loaded into tx, oldest lot first. */
status_t wallet_store_spend_parts(db_t *db, wallet_tx_t *tx, const char *merchant_id,
                                  const char *reference, wallet_spend_part_t **out, int *n);

/* ---- top-ups ---- */

typedef struct wallet_top_up_row {
    char *id;
    char *member_id;
    char *payment_ref;
    char *plan_id;
    int64_t paid;
    int64_t bonus;
    char *principal_lot_id;
    char *bonus_lot_id; /* "" without bonus */
    int64_t expires_at;
    int64_t refunded;
    int64_t forfeited;
    char *transfer_id;
    int64_t created_at;
} wallet_top_up_row_t;

/** ALREADY_EXISTS PAYMENT_REF_TAKEN when the payment was credited before. */
status_t wallet_store_top_up_insert(db_t *db, const char *merchant_id,
                                    const wallet_top_up_row_t *t);
/** NOT_FOUND TOP_UP_NOT_FOUND when absent. */
status_t wallet_store_top_up_get(db_t *db, arena_t *a, const char *merchant_id,
                                 const char *payment_ref, wallet_top_up_row_t *out);
status_t wallet_store_top_up_update(db_t *db, const char *merchant_id,
                                    const wallet_top_up_row_t *t);

/* ---- writing the ledger ---- */

/** Writes what tx produced since the last flush: transfers, postings, new and changed lots,
 *  member account balances. */
status_t wallet_store_flush(db_t *db, const char *merchant_id, wallet_tx_t *tx);

/** The expiring figures of a wallet (wallet_store_expiring) asked of wallet_store_finish. */
typedef struct wallet_expiring {
    const char *member_id;
    int64_t until;
    int64_t cents;   /* out */
    int64_t next_at; /* out */
} wallet_expiring_t;

/** Flushes, then applies the merchant-account totals in (code, shard) order. Call once, last.
 *  When `expiring` is not NULL its figures are read in the same round trip. */
status_t wallet_store_finish(db_t *db, const char *merchant_id, wallet_tx_t *tx,
                             wallet_expiring_t *expiring);

/** Sums, from now on and on this thread, the merchant-account totals of every transaction
 *  wallet_store_finish ends into `sums` instead of writing them, until
 *  wallet_store_merchant_sum_end writes the sum (when `write`; a merged run that failed drops
 *  it) in (code, shard) order. A merged batch runs its calls so (wallet_rpc_merge.c): its calls
 *  are ordered by member, and members' shards differ, so calls writing their own totals would
 *  lock the merchant rows in an order of the batch's own, and two batches could deadlock. */
void wallet_store_merchant_sum_begin(wallet_tx_t *sums);
status_t wallet_store_merchant_sum_end(db_t *db, const char *merchant_id, bool write);

/* ---- reads ---- */

/** A page of the member's statement, newest first, before transfer id `before_id` (""). */
status_t wallet_store_statement(db_t *db, arena_t *a, const char *merchant_id,
                                const char *member_id, const char *before_id, int32_t limit,
                                Loyalty__V1__WalletStatementEntry ***out, size_t *n);

/** The merchant's report (period figures when from_at < to_at). */
status_t wallet_store_report(db_t *db, const char *merchant_id, int64_t from_at, int64_t to_at,
                             Loyalty__V1__WalletReport *out);

/** Runs every check of VerifyLedger in the current transaction. */
status_t wallet_store_verify(db_t *db, arena_t *a, const char *merchant_id,
                             Loyalty__V1__WalletVerifyLedgerResponse *out);

/* ---- background work ---- */

typedef struct wallet_due {
    char *merchant_id;
    char *member_id;
} wallet_due_t;

/** Wallets (any merchant) with holds past their TTL or lots lapsed with money left at `now`;
 *  at most `limit`. */
status_t wallet_store_due_wallets(db_t *db, arena_t *a, int64_t now, int limit, wallet_due_t **out,
                                  int *n);

/** Members of one merchant with lots lapsed at `now`, in member order, after `after_member`. */
status_t wallet_store_lapsed_members(db_t *db, arena_t *a, const char *merchant_id, int64_t now,
                                     int limit, char ***out, int *n);

#endif
