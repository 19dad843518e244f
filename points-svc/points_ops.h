/* points_ops.h -- the points operations, as database work inside the caller's transaction (the
 * store does the SQL): every movement of a member's points, under the lock of the member's account
 * row: credits (new lots), FIFO debits, holds and their commit/release, restores of redeemed
 * points, pending cancellations, growth, debt repayment and settling what fell due (expired
 * holds, matured pending lots, expired lots). Each movement updates the in-memory totals and
 * appends one history entry with its deltas and lot shares, so that the totals always equal the
 * sums of the history (VerifyLedger). A ledger lives inside one transaction: open, move, close.
 * Not thread-safe; the account row lock serializes all writers of one member. */
#ifndef POINTS_OPS_H
#define POINTS_OPS_H

#include "points_store.h"
#include "rpc.h"

typedef struct points_settle_stats {
    int64_t lots_expired;
    int64_t points_expired;
    int64_t holds_expired;
    int64_t lots_matured;
} points_settle_stats_t;

typedef struct points_credit {
    int kind;   /* PointsEntryKind: EARN, IMPORT or ADJUST */
    int source; /* PointsSource */
    const char *reference;
    int64_t points;
    bool pending; /* PENDING until available_at */
    int64_t earned_at, available_at;
    bool has_expiry;
    int64_t expiry_day;
    const char *time_zone;
    bool lifetime; /* counts in lifetime_earned */
    const char *reason, *operator_name;
    bool claim;           /* an earn's lot: it claims (source, reference) */
    int64_t claim_growth; /* with claim: the growth the earn added */
    /* The credit's lot when it was inserted already (points_store_insert_lots, for the earns of
     * a batch at once), else NULL: points_ops_credit inserts it. */
    const Loyalty__V1__PointsLot *made;
} points_credit_t;

/** The lot row a credit makes for `member`, named `id`. */
void points_ops_new_lot(const points_credit_t *c, const char *member, const char *id,
                        points_new_lot_t *out);

typedef struct points_ledger {
    rpc_ctx_t *ctx; /* for cache invalidation; NULL in batch settles (see points_jobs.c) */
    db_t *db;
    arena_t *a;
    const char *merchant;
    const char *member;
    int64_t now;
    points_account_t acct;
    bool found; /* the member has an account row (always true after opening with create) */
    points_settle_stats_t stats;
    /* Set by a handler whose movements cannot make anything fall due by `now` (a new hold, a
     * commit, an earn whose lot expires on the settings' schedule): closing then sends the
     * account's save with the transaction's next statement instead of waiting for its new
     * next_due_at. Points put back into lots (which may have expired) turn it off. */
    bool save_deferred;
    bool lots_refilled;
    /* Balance events (points.earned, points.balance: docs/domain.md#automatic-tags), sent at
     * close with the balance and the account version the close saved. available_opened is the
     * balance before the ledger's first movement; balance_quiet is set by a handler whose own
     * change is reported to member-svc otherwise (a checkout's hold: the gateway passes the
     * balance after the earn), so that the checkout's hot path writes no event of its own;
     * settled_moved says settling (expiry, maturing, an expired hold) moved the balance, which
     * is announced even then. */
    int64_t available_opened;
    bool balance_quiet;
    bool settled_moved;
    bool earned_waiting; /* an EARN credit whose points.earned close sends */
    points_credit_t earned;
    const Loyalty__V1__PointsLot *earned_lot;
} points_ledger_t;

/** Locks the member's account (creating it when `create`) and settles whatever fell due by
 *  `now`. Without create and without an account, lg->found is false and only reads are valid. */
status_t points_ops_open(points_ledger_t *lg, rpc_ctx_t *ctx, db_t *db, arena_t *a,
                         const char *merchant, const char *member, int64_t now, bool create);

/** points_ops_open of an account the caller has just locked and read (`acct`). */
status_t points_ops_open_locked(points_ledger_t *lg, rpc_ctx_t *ctx, db_t *db, arena_t *a,
                                const char *merchant, const char *member, int64_t now,
                                const points_account_t *acct);

/** Repays debt from spendable lots, saves the totals with the next due instant, settles again
 *  if a movement made something due at once (a restore into an expired lot), schedules the
 *  cache invalidation and records the balance events (see available_opened). Call once after
 *  the movements. */
status_t points_ops_close(points_ledger_t *lg);

/** Available = spendable lot points minus debt. */
int64_t points_ops_available(const points_ledger_t *lg);

/** A new lot and its entry. */
status_t points_ops_credit(points_ledger_t *lg, const points_credit_t *c,
                           Loyalty__V1__PointsLot **lot, Loyalty__V1__PointsEntry **entry);

typedef struct points_debit {
    int kind; /* ADJUST or REVERSE_EARN */
    int source;
    const char *reference;
    int64_t points;
    const char *first_lot; /* taken from this lot first ("" = none), then FIFO */
    bool allow_debt;       /* what the lots cannot cover becomes debt (else INSUFFICIENT) */
    bool lifetime;         /* reduces lifetime_earned */
    const char *reason, *operator_name;
} points_debit_t;

/** Takes points out of lots (FIFO by expiry); *debt_added receives the uncovered part. */
status_t points_ops_debit(points_ledger_t *lg, const points_debit_t *d, int64_t *debt_added,
                          Loyalty__V1__PointsEntry **entry);

/** Reserves points from the soonest-expiring lots into a new ACTIVE hold; FAILED_PRECONDITION
 *  INSUFFICIENT_POINTS when available is short. *out receives the hold. */
status_t points_ops_hold(points_ledger_t *lg, const char *hold_id, const char *reference,
                         int64_t points, int64_t cash_value_cents, int64_t expires_at,
                         Loyalty__V1__PointsHold **out);

/** ACTIVE -> RELEASED (or EXPIRED when `expired`): the points go back into their lots. */
status_t points_ops_release(points_ledger_t *lg, const Loyalty__V1__PointsHold *h, bool expired);

/** ACTIVE -> COMMITTED: the held points are spent (and counted as redeemed on the reference). */
status_t points_ops_commit(points_ledger_t *lg, const Loyalty__V1__PointsHold *h);

/** Gives back up to `points` redeemed by the committed holds of `reference` into the lots they
 *  came from (latest-expiring first); *restored receives what was given back. */
status_t points_ops_restore(points_ledger_t *lg, const char *reference, int64_t points,
                            const char *reason, int64_t *restored);

/** Cancels `points` of a PENDING lot (a return inside the window). */
status_t points_ops_cancel_pending(points_ledger_t *lg, const char *lot_id, int64_t points,
                                   const char *reference, const char *reason);

/** Adds a (signed) growth delta with its history entry. */
status_t points_ops_growth(points_ledger_t *lg, int kind, int64_t delta, int source,
                           const char *reference, const char *reason);

/** Expires, matures and releases whatever fell due by lg->now (called by open and close). */
status_t points_ops_settle(points_ledger_t *lg);

/** The balance of an account as of `now` (an unlocked read is fine); *valid_until receives
 *  until when it stays true without any write (the next due instant, or when the 30-day
 *  expiring window next changes; 0 = no such instant). Without `with_expiring` the expiring
 *  figures stay zero and *valid_until ignores the window (no query). */
status_t points_balance_build(db_t *db, arena_t *a, const char *merchant, const char *member,
                              const points_account_t *acct, int64_t now, bool with_expiring,
                              Loyalty__V1__PointsBalance **out, int64_t *valid_until);

#endif
