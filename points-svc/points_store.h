/* points_store.h -- SQL of the `points` schema: settings, campaigns, accounts, lots, holds,
 * history, order references, check-ins and import batches. Every function takes the merchant
 * and never touches another merchant's rows; results are built in the arena. Instants are unix
 * seconds; local days are days since 1970-01-01 in the merchant's time zone. */
#ifndef POINTS_STORE_H
#define POINTS_STORE_H

#include "arena.h"
#include "db.h"
#include "loyalty/v1/points.pb-c.h"
#include "points_rules.h"
#include "status.h"

#include <stdbool.h>
#include <stdint.h>

/* ---- settings and campaigns ---- */

/** The merchant's settings, or the defaults when it never set any. */
status_t points_store_get_settings(db_t *db, arena_t *a, const char *merchant,
                                   Loyalty__V1__PointsSettings **out);

/** Replaces the settings (validated) and bumps the version; with has_expected, only when the
 *  stored version (0 = defaults) equals `expected` (else ABORTED SETTINGS_VERSION_MISMATCH). */
status_t points_store_put_settings(db_t *db, arena_t *a, const char *merchant,
                                   const Loyalty__V1__PointsSettings *s, bool has_expected,
                                   int64_t expected, Loyalty__V1__PointsSettings **out);

/** Whether PostgreSQL knows the IANA time zone name. */
status_t points_store_time_zone_exists(db_t *db, const char *tz, bool *exists);

/** The local clock of `at_s` in `tz` (points_local_clock_t); points_clock_get caches it. */
status_t points_store_local_clock(db_t *db, const char *tz, int64_t at_s, int64_t add_days,
                                  points_local_clock_t *out);

/** The local day of `at_s` in `tz` with its bounds, in one statement. */
status_t points_store_local_day(db_t *db, const char *tz, int64_t at_s, points_local_day_t *out);

/** Local midnight (in tz) at the start of `day`, as unix seconds. */
status_t points_store_day_start(db_t *db, const char *tz, int64_t day, int64_t *at_s);

status_t points_store_insert_campaign(db_t *db, arena_t *a, const char *merchant, const char *id,
                                      const Loyalty__V1__PointsCampaign *c,
                                      Loyalty__V1__PointsCampaign **out);
status_t points_store_end_campaign(db_t *db, arena_t *a, const char *merchant, const char *id,
                                   Loyalty__V1__PointsCampaign **out);
/** Newest first, after the cursor id ("" = from the start). */
status_t points_store_list_campaigns(db_t *db, arena_t *a, const char *merchant,
                                     const char *after_id, int32_t limit, bool include_inactive,
                                     Loyalty__V1__PointsCampaign ***out, size_t *n);
/** Active campaigns whose window contains `day`. */
status_t points_store_campaigns_on(db_t *db, arena_t *a, const char *merchant, int64_t day,
                                   points_campaign_window_t **out, size_t *n);

/* ---- accounts ---- */

typedef struct points_account {
    int64_t lots_points; /* ACTIVE lots' remaining: available + debt */
    int64_t held;
    int64_t pending;
    int64_t debt;
    int64_t lifetime_earned;
    int64_t growth;
    bool has_due;
    int64_t next_due_at;
    bool has_check_in;
    int64_t last_check_in_day;
    int32_t check_in_streak;
    int64_t version;
} points_account_t;

/** Reads a member's account; *found false (and zeros) when the member has none. With lock the
 *  row is locked FOR UPDATE; with create a missing row is created first (then always found). */
status_t points_store_account_get(db_t *db, const char *merchant, const char *member, bool lock,
                                  bool create, points_account_t *out, bool *found);

/** Writes the totals and recomputes next_due_at from the member's holds and lots; the account's
 *  has_due/next_due_at receive the new value, unless `deferred`: then the write goes with the
 *  transaction's next statement (db_exec_deferred) and they are left as they were. */
status_t points_store_account_save(db_t *db, const char *merchant, const char *member, int64_t now,
                                   bool deferred, points_account_t *acct);

/** Locks up to `limit` accounts due at `now` (merchant NULL = every merchant), skipping rows
 *  locked by others. */
status_t points_store_due_accounts(db_t *db, arena_t *a, const char *merchant, int64_t now,
                                   int limit, char ***merchants, char ***members, int *n);

/* ---- lots ---- */

/** A share of a lot moved by an entry or a hold. */
typedef struct points_share {
    const char *lot_id;
    int64_t points;
    const char *expiry_date; /* "" when the lot never expires */
} points_share_t;

typedef struct points_new_lot {
    const char *id;
    const char *member_id;
    int source;
    const char *reference;
    int64_t points;
    bool pending;
    int64_t earned_at;
    int64_t available_at;
    bool has_expiry;
    int64_t expiry_day;
    const char *time_zone;
    /* An earn's lot holds the earn's claim of (source, reference), with the growth it added. */
    bool claim;
    int64_t claim_growth;
} points_new_lot_t;

/** With lot->claim: ALREADY_EXISTS ALREADY_EARNED when (source, reference) was earned before
 *  (by a lot or an earn_refs claim), and, for source ORDER, FAILED_PRECONDITION
 *  REFERENCE_MEMBER_MISMATCH when another member redeemed (committed a hold) or reversed with
 *  the reference. */
status_t points_store_insert_lot(db_t *db, arena_t *a, const char *merchant,
                                 const points_new_lot_t *lot, Loyalty__V1__PointsLot **out);

/** The lots[0..n) in one statement, each as points_store_insert_lot would insert it (claims and
 *  their refusals included: the first refusal fails them all); out[i] receives lots[i]'s lot. */
status_t points_store_insert_lots(db_t *db, arena_t *a, const char *merchant,
                                  const points_new_lot_t *lots, size_t n,
                                  Loyalty__V1__PointsLot **out);

status_t points_store_get_lot(db_t *db, arena_t *a, const char *merchant, const char *lot_id,
                              Loyalty__V1__PointsLot **out);

/** The member's ACTIVE lots with points left, in spending order, up to the ones needed to
 *  cover `need`, leaving out `except_lot` ("" = none). remaining[i] is what lot i holds. */
status_t points_store_spendable_lots(db_t *db, arena_t *a, const char *merchant, const char *member,
                                     int64_t need, const char *except_lot, points_share_t **lots,
                                     int *n);

/** Adds shares[i].points (negative: takes) to each lot's remaining; EXPIRED lots that receive
 *  points become ACTIVE again (the next settle expires them with an entry); PENDING lots that
 *  reach 0 become CANCELLED. Deferred (db_exec_deferred): INTERNAL LEDGER_MISMATCH, from
 *  the next statement, unless every lot was touched. */
status_t points_store_add_to_lots(db_t *db, arena_t *a, const char *merchant,
                                  const points_share_t *shares, int n);

/** PENDING lots whose window ended by `now` become ACTIVE; returns them. */
status_t points_store_mature_lots(db_t *db, arena_t *a, const char *merchant, const char *member,
                                  int64_t now, Loyalty__V1__PointsLot ***out, int *n);

/** ACTIVE lots with points left whose expiry passed by `now` become EXPIRED with nothing left;
 *  returns the points each lost. */
status_t points_store_expire_lots(db_t *db, arena_t *a, const char *merchant, const char *member,
                                  int64_t now, points_share_t **out, int *n);

/** Lots in spending order after the cursor (key "<expires_at or 9e15>:<earned_at>", id; ""
 *  = from the start), open ones only unless include_closed. */
status_t points_store_list_lots(db_t *db, arena_t *a, const char *merchant, const char *member,
                                const char *after_key, const char *after_id, int32_t limit,
                                bool include_closed, Loyalty__V1__PointsLot ***out, size_t *n);

/** Expiring figures of the balance: points expiring by now + 30 days, the soonest expiry date
 *  and its points, and when the 30-day window will next take in another lot (0 = never). */
typedef struct points_expiring {
    int64_t within_window;
    const char *next_date;
    int64_t next_points;
    int64_t window_changes_at;
} points_expiring_t;
status_t points_store_expiring(db_t *db, arena_t *a, const char *merchant, const char *member,
                               int64_t now, points_expiring_t *out);

/** ListExpiringPoints' page: members after `after_member` (by id) with spendable points expiring
 *  in [from, to), each with its sum and soonest expiry; at most `limit` members (*more: there
 *  are others after them). */
status_t points_store_list_expiring(db_t *db, arena_t *a, const char *merchant, int64_t from,
                                    int64_t to, const char *after_member, int limit,
                                    Loyalty__V1__PointsExpiringBalance ***out, size_t *n,
                                    bool *more);

/* ---- holds ---- */

/* The writes below marked "deferred" are sent with the transaction's next statement
 * (db_exec_deferred): their refusals come back from that statement, or from the COMMIT. */

/** Deferred. ALREADY_EXISTS HOLD_EXISTS when a live hold already uses the reference. */
status_t points_store_insert_hold(db_t *db, const char *merchant, const char *id,
                                  const char *member, const char *reference, int64_t points,
                                  int64_t cash_value_cents, int64_t now, int64_t expires_at,
                                  const points_share_t *shares, int n);

/** By id, or by reference (its ACTIVE or COMMITTED hold, else its latest). NOT_FOUND
 *  HOLD_NOT_FOUND. The lots are filled in. */
status_t points_store_get_hold(db_t *db, arena_t *a, const char *merchant, const char *hold_id,
                               const char *reference, Loyalty__V1__PointsHold **out);

/** EarnBatch's locks in one round trip: the accounts of `members` and of the holds' members,
 *  locked FOR UPDATE in member-id order, and then the holds with their lots (a hold that does
 *  not exist is not among them). A member without an account is not among them. */
typedef struct points_batch_locks {
    char **members; /* sorted, with accounts[i] theirs */
    points_account_t *accounts;
    size_t n;
    Loyalty__V1__PointsHold **holds; /* those of hold_ids that exist, in no order */
    size_t n_holds;
} points_batch_locks_t;
status_t points_store_lock_batch(db_t *db, arena_t *a, const char *merchant,
                                 const char *const *members, size_t n_members,
                                 const char *const *hold_ids, size_t n_holds,
                                 points_batch_locks_t *out);

/** Deferred. INTERNAL LEDGER_MISMATCH unless the hold was ACTIVE. */
status_t points_store_finish_hold(db_t *db, const char *merchant, const char *hold_id, int status,
                                  int64_t now);

/** The member's ACTIVE holds whose TTL passed by `now`. */
status_t points_store_expired_holds(db_t *db, arena_t *a, const char *merchant, const char *member,
                                    int64_t now, char ***ids, int *n);

/** What the member's COMMITTED holds of a reference may still give back, lot by lot,
 *  latest-expiring lots first (lots without expiry first of all). hold_ids[i] is the hold of
 *  share i. */
status_t points_store_restorable(db_t *db, arena_t *a, const char *merchant, const char *member,
                                 const char *reference, points_share_t **shares,
                                 const char ***hold_ids, int *n);

/** Deferred. */
status_t points_store_mark_restored(db_t *db, const char *merchant, const char *hold_id,
                                    const char *lot_id, int64_t points);

/* ---- history ---- */

typedef struct points_new_entry {
    const char *member_id;
    int kind;
    int64_t available_delta, held_delta, pending_delta;
    int64_t available_after;
    int source;
    const char *reference;
    const char *hold_id;
    const char *reason;
    const char *operator_name;
    int64_t now;
    const points_share_t *shares;
    int n_shares;
} points_new_entry_t;

/** Appends an entry and its lot shares: written with the transaction's COMMIT, in one statement
 *  per table with the transaction's other entries (db_rowset_append). *out (may be NULL)
 *  receives it as a message. */
status_t points_store_insert_entry(db_t *db, arena_t *a, const char *merchant,
                                   const points_new_entry_t *e, Loyalty__V1__PointsEntry **out);

/** The entries and growth rows appended so far in this transaction go with its next statement:
 *  for a reader of the history inside a transaction that may have written some. */
status_t points_store_flush_history(db_t *db);

/** A row set, as points_store_insert_entry. */
status_t points_store_insert_growth(db_t *db, const char *merchant, const char *member, int kind,
                                    int64_t growth, int64_t growth_after, int source,
                                    const char *reference, const char *reason, int64_t now);

/** Newest first, before the cursor seq (0 = from the newest); kinds filter may be empty.
 *  (*seqs)[i] is the paging key of entry i. */
status_t points_store_list_entries(db_t *db, arena_t *a, const char *merchant, const char *member,
                                   int64_t before_seq, int32_t limit, const int *kinds,
                                   size_t n_kinds, Loyalty__V1__PointsEntry ***out, size_t *n,
                                   int64_t **seqs);

status_t points_store_list_growth(db_t *db, arena_t *a, const char *merchant, const char *member,
                                  int64_t before_seq, int32_t limit,
                                  Loyalty__V1__PointsGrowthEntry ***out, size_t *n, int64_t **seqs);

/* ---- earns, orders, check-ins, imports ---- */

/** Claims (source, reference) for an earn that made no lot (no points; an earn with points
 *  claims in its lot, points_store_insert_lot), with the same refusals. Not deferred (rare: it
 *  costs its own round trip). */
status_t points_store_claim_earn(db_t *db, const char *merchant, int source, const char *reference,
                                 const char *member, int64_t growth, int64_t now);

/** An order reference: what its earn claimed (earned_*; earn_lot_id "" when it made no lot),
 *  what its COMMITTED hold redeemed, and what was reversed (its `orders` row, written by the
 *  first reversal). */
typedef struct points_order {
    const char *member_id;
    int64_t earned_points, earned_growth;
    const char *earn_lot_id;
    int64_t redeemed_points;
    int64_t reversed_bps;
    int64_t clawed_points, clawed_growth, restored_points;
} points_order_t;

/** Deferred, no row written: FAILED_PRECONDITION REFERENCE_MEMBER_MISMATCH when the reference
 *  of a hold being committed belongs to another member (an order earn's claim, or a reversal). */
status_t points_store_check_redeemer(db_t *db, const char *merchant, const char *reference,
                                     const char *member);

/** The order reference; NOT_FOUND ORDER_NOT_FOUND when nothing was earned or redeemed with it.
 *  Unlocked: every writer of a reference holds its member's account lock. */
status_t points_store_order_get(db_t *db, arena_t *a, const char *merchant, const char *reference,
                                points_order_t *out);

/** Writes the reversal figures of o (creating the row of an order that only earned). */
status_t points_store_order_reversed(db_t *db, const char *merchant, const char *reference,
                                     const points_order_t *o);

/** Records a check-in; ALREADY_EXISTS ALREADY_CHECKED_IN when the member has one that day. */
status_t points_store_insert_check_in(db_t *db, const char *merchant, const char *member,
                                      int64_t day, int64_t points, int64_t now);

/** Looks an import batch up: *found, and *same when its content hash equals `request`. */
status_t points_store_get_batch(db_t *db, const char *merchant, const char *batch_id,
                                const unsigned char *request, size_t request_len, bool *found,
                                bool *same, Loyalty__V1__PointsImportLotsResponse *out);

status_t points_store_insert_batch(db_t *db, const char *merchant, const char *batch_id,
                                   const unsigned char *request, size_t request_len,
                                   const Loyalty__V1__PointsImportLotsResponse *r, int64_t now);

/* ---- verification ---- */

/** Runs every ledger check (points.proto VerifyLedger) for the merchant or one member (member
 *  "" = all), appending at most `max` differences. */
status_t points_store_verify(db_t *db, arena_t *a, const char *merchant, const char *member,
                             size_t max, Loyalty__V1__PointsVerifyLedgerResponse *out);

#endif
