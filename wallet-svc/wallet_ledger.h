/* wallet_ledger.h -- the in-memory side of one ledger transaction: the wallets (member account
 * pairs) and lots it has loaded and locked, and the transfers it writes. Posting a line
 * updates the balances in memory at once, so the operations above always see the state they
 * are producing; wallet_store_flush then writes what changed and wallet_store_finish applies
 * the merchant-account totals once, in (code, shard) order (see migrations/001_ledger.sql).
 * Pure: no I/O, unit-tested. Everything lives in the caller's arena. */
#ifndef WALLET_LEDGER_H
#define WALLET_LEDGER_H

#include "arena.h"
#include "ids.h"
#include "wallet_rules.h"

#include <stdbool.h>
#include <stdint.h>

/** Balances in TigerBeetle's four columns. */
typedef struct wallet_account {
    int64_t debits_pending;
    int64_t debits_posted;
    int64_t credits_pending;
    int64_t credits_posted;
} wallet_account_t;

/** Money a member account can spend now: credits_posted - debits_posted - debits_pending. */
int64_t wallet_account_available(const wallet_account_t *a);

/** One member's wallet, locked by the transaction. acc[0] principal, acc[1] bonus. */
typedef struct wallet_member {
    const char *member_id;
    int shard;
    bool exists; /* the account rows exist (a wallet with no history has none) */
    wallet_account_t acc[2];
    wallet_account_t loaded[2]; /* as read, for the deltas to write */
    /* When the wallet next has something to settle (migrations/002_next_due.sql): lowered by
     * every posting that makes money available in a lot with an expiry, and by new holds. */
    int64_t next_due_at;
    int64_t next_due_loaded;
} wallet_member_t;

#define WALLET_DUE_NEVER INT64_MAX

/** Lowers the member's next_due_at to `at` (0 = no deadline: ignored). */
void wallet_member_due(wallet_member_t *m, int64_t at);

/** The account of a member by code (WALLET_ACC_PRINCIPAL / _BONUS). */
wallet_account_t *wallet_member_account(wallet_member_t *m, int code);

/** Posted principal + bonus: what the member owns, held money included. */
int64_t wallet_member_balance(const wallet_member_t *m);
int64_t wallet_member_held(const wallet_member_t *m);
int64_t wallet_member_available(const wallet_member_t *m);

/** One deposit. available = credited - debited - held. */
typedef struct wallet_lot {
    char *id;
    const char *member_id;
    int code;
    int origin;
    char *top_up_id; /* "" when none */
    int64_t credited_cents;
    int64_t debited_cents;
    int64_t held_cents;
    int64_t expired_cents;
    int64_t expires_at; /* 0 = never */
    int64_t created_at;
    int64_t loaded[4]; /* credited, debited, held, expired as last written */
    bool is_new;       /* not yet inserted */
} wallet_lot_t;

int64_t wallet_lot_available(const wallet_lot_t *l);
wallet_lot_key_t wallet_lot_key(const wallet_lot_t *l);

/** One transfer being written. */
typedef struct wallet_xfer {
    char id[ID_MAX];
    int kind;
    wallet_member_t *member;
    const char *hold_id; /* "" when none; likewise below */
    const char *top_up_id;
    const char *reference;
    const char *payment_ref;
    int64_t amount_cents;     /* sum of its debits, posted and pending */
    int64_t held_delta_cents; /* change of the member's held amount */
    int64_t balance_after_cents;
    int64_t held_after_cents;
    int64_t created_at;
    int first_line;
    int n_lines;
} wallet_xfer_t;

/** One posting line. member_id is "" for merchant accounts. */
typedef struct wallet_line {
    int xfer;
    const char *member_id;
    int code;
    int shard;
    const char *lot_id; /* NULL when none */
    bool pending;
    int64_t debit_cents;
    int64_t credit_cents;
} wallet_line_t;

/** Change of one merchant account row, applied at the end of the transaction. */
typedef struct wallet_merchant_delta {
    int code;
    int shard;
    wallet_account_t delta;
} wallet_merchant_delta_t;

#define WALLET_MERCHANT_CODES 6 /* codes 10..15 */

/** Everything one database transaction of the wallet writes. */
typedef struct wallet_tx {
    arena_t *arena;
    int64_t now;
    wallet_xfer_t *xfers;
    int n_xfers, cap_xfers, flushed_xfers;
    wallet_line_t *lines;
    int n_lines, cap_lines, flushed_lines;
    wallet_lot_t **lots; /* every lot the transaction loaded or created */
    int n_lots, cap_lots;
    wallet_member_t **members; /* wallets locked by this transaction */
    int n_members, cap_members;
    wallet_account_t merchant[WALLET_MERCHANT_CODES][WALLET_SHARDS];
    bool merchant_touched[WALLET_MERCHANT_CODES][WALLET_SHARDS];
    int open_xfer; /* index of the transfer being built, -1 when none */
} wallet_tx_t;

void wallet_tx_init(wallet_tx_t *tx, arena_t *a, int64_t now);

/** A new member wallet record (not yet loaded) owned by tx. */
wallet_member_t *wallet_tx_member(wallet_tx_t *tx, const char *member_id);

/** Registers a lot just loaded (loaded[] must hold its stored figures) or created (is_new), so
 *  that its changes are written at the next flush. */
void wallet_tx_add_lot(wallet_tx_t *tx, wallet_lot_t *lot);

/** The lot with this id if the transaction has it, else NULL. */
wallet_lot_t *wallet_tx_find_lot(const wallet_tx_t *tx, const char *id);

/** A new lot of member m, registered; credited etc. start at 0 (post to credit it). */
wallet_lot_t *wallet_tx_new_lot(wallet_tx_t *tx, wallet_member_t *m, int code, int origin,
                                const char *top_up_id, int64_t expires_at);

/** Starts a transfer of `kind` on `member`; returns it for the caller to fill in the optional
 *  references. Only one transfer is open at a time. */
wallet_xfer_t *wallet_xfer_begin(wallet_tx_t *tx, int kind, wallet_member_t *member);

/** Debits (or credits) a member account, through a lot when `lot` is not NULL. Pending debits
 *  reserve money (the hold side of a two-phase transfer). */
void wallet_post_member(wallet_tx_t *tx, wallet_member_t *m, int code, wallet_lot_t *lot,
                        bool debit, bool pending, int64_t amount_cents);

/** Debits or credits a merchant account in the member's shard. */
void wallet_post_merchant(wallet_tx_t *tx, wallet_member_t *m, int code, bool debit, bool pending,
                          int64_t amount_cents);

/** Releases `amount` of a pending debit on a member account and lot, and of its pending credit
 *  on the merchant account `merchant_code` (post or void of a two-phase transfer). */
void wallet_release_pending(wallet_tx_t *tx, wallet_member_t *m, int code, wallet_lot_t *lot,
                            int merchant_code, int64_t amount_cents);

/** Closes the open transfer: asserts that its debits equal its credits (posted and pending
 *  separately) and records the member's balance after it. `held_delta` is the change of the
 *  held amount (positive for holds, negative for releases). */
void wallet_xfer_end(wallet_tx_t *tx, int64_t held_delta);

/** True when every transfer of tx balances (debits == credits, posted and pending apart). */
bool wallet_tx_balanced(const wallet_tx_t *tx);

/** The merchant-account changes in (code, shard) order: fills out[] (capacity
 *  WALLET_MERCHANT_CODES * WALLET_SHARDS) and returns the count. */
int wallet_tx_merchant_deltas(const wallet_tx_t *tx, wallet_merchant_delta_t *out);

/** Adds the merchant-account changes of `from` to those of `to` (the totals of several
 *  transactions written as one: a merged batch, wallet_store_merchant_sum_begin). */
void wallet_tx_add_merchant(wallet_tx_t *to, const wallet_tx_t *from);

#endif
