/* referral_store.h -- SQL of the `referral` schema: the programme, members with their codes and
 * closure-style upline, downline counters, reward events, the reward ledger and its
 * reversals. Every function takes the merchant and never touches another merchant's rows.
 * Results are built in the arena; instants are unix seconds (the call's now is passed in, so
 * that rules and rows agree on the time). */
#ifndef REFERRAL_STORE_H
#define REFERRAL_STORE_H

#include "arena.h"
#include "db.h"
#include "loyalty/v1/referral.pb-c.h"
#include "referral_rules.h"
#include "status.h"

#include <stdbool.h>
#include <stdint.h>

/* ---- programme ---- */

/** The merchant's programme; a disabled one with version 0 when it was never configured. */
status_t referral_store_program_get(db_t *db, arena_t *a, const char *merchant_id,
                                    Loyalty__V1__ReferralProgram **out);

/** Replaces the programme (normalised by the rules) and increments its version. With
 *  has_expected, only when the stored version is `expected_version` (0 = none stored), else
 *  ABORTED VERSION_MISMATCH. */
status_t referral_store_program_put(db_t *db, arena_t *a, const char *merchant_id,
                                    const Loyalty__V1__ReferralProgram *p, bool has_expected,
                                    int64_t expected_version, int64_t now_s,
                                    Loyalty__V1__ReferralProgram **out);

/* ---- members and the tree ---- */

/** A member's row; absent strings are "". */
typedef struct referral_member_row {
    char *member_id;
    char *code;
    char *referrer_id;
    char *ancestor_2;
    char *ancestor_3;
    char *root_id;
    char *attach_id;
    char *registration_ref;
    int64_t attached_at;
    int64_t purchase_count;
} referral_member_row_t;

/** The tree rules' view of a row (borrows its strings). */
referral_node_t referral_store_node(const referral_member_row_t *row);

/** Reads a member; *found false when it has no row. With for_update the row stays locked
 *  until the transaction ends. */
status_t referral_store_member_get(db_t *db, arena_t *a, const char *merchant_id,
                                   const char *member_id, bool for_update,
                                   referral_member_row_t *out, bool *found);

/** Reads the member's row, creating it with a new random code when it has none (retrying on
 *  the rare code collision, at most REFERRAL_CODE_ATTEMPTS_MAX times). */
#define REFERRAL_CODE_ATTEMPTS_MAX 8
status_t referral_store_member_ensure(db_t *db, arena_t *a, const char *merchant_id,
                                      const char *member_id, int64_t now_s,
                                      referral_member_row_t *out);

/** Finds the owner of a normalised (upper-case) code; *found false when none. */
status_t referral_store_member_by_code(db_t *db, arena_t *a, const char *merchant_id,
                                       const char *code, referral_member_row_t *out, bool *found);

/** Locks two existing members' rows in member_id order (so that concurrent attaches never
 *  deadlock on them) and reads them again: out_a for id_a, out_b for id_b. */
status_t referral_store_lock_pair(db_t *db, arena_t *a, const char *merchant_id, const char *id_a,
                                  const char *id_b, referral_member_row_t *out_a,
                                  referral_member_row_t *out_b);

/** Whether anyone has the member as referrer. Exact only while the caller holds the member's
 *  row lock (every attach below it takes that lock). */
status_t referral_store_has_downline(db_t *db, const char *merchant_id, const char *member_id,
                                     bool *out);

/** Writes an accepted attach on the referee's row and counts the referee in each ancestor's
 *  downline counters (in one statement, in (member, level) order; or with the merged batch's,
 *  referral_store_stats_gather_begin). */
status_t referral_store_attach(db_t *db, arena_t *a, const char *merchant_id,
                               const char *referee_id, const referral_attach_plan_t *plan,
                               const char *attach_id, int64_t now_s);

/** The member's three downline counters (levels 1..3, zeros when absent). */
status_t referral_store_level_counts(db_t *db, arena_t *a, const char *merchant_id,
                                     const char *member_id, Loyalty__V1__ReferralLevelCount ***out);

/** One page of the member's downline at `level`, newest attachment first, after the cursor
 *  attach id (`after` "" = from the newest), at most `limit` rows, with what each brought the
 *  member. *next is the attach id to continue from, "" at the end. */
status_t referral_store_downline_page(db_t *db, arena_t *a, const char *merchant_id,
                                      const char *member_id, int level, const char *after,
                                      int32_t limit, Loyalty__V1__ReferralDownlineMember ***out,
                                      size_t *n, const char **next);

/** Counts a purchase of an attached member: purchase_count = `count` (deferred:
 *  db_exec_deferred). */
status_t referral_store_member_set_purchases(db_t *db, const char *merchant_id,
                                             const char *member_id, int64_t count);

/** Records the reference of the member's registration rewards. */
status_t referral_store_member_set_registration(db_t *db, const char *merchant_id,
                                                const char *member_id, const char *reference);

/* ---- events and rewards ---- */

typedef struct referral_event_row {
    int event;
    char *reference;
    char *member_id;
    int64_t paid_cents;
    int64_t purchase_number;
    int64_t program_version;
    int32_t reversed_share_bps;
} referral_event_row_t;

/** Reads an event; *found false when it was never recorded. */
status_t referral_store_event_get(db_t *db, arena_t *a, const char *merchant_id, int event,
                                  const char *reference, bool for_update, referral_event_row_t *out,
                                  bool *found);

/** ComputeRewards' reads in one round trip: the event if recorded (event_found), the programme,
 *  and the referee's row locked FOR UPDATE (member_found), which serialises the referee's events.
 */
typedef struct referral_event_reads {
    referral_event_row_t event;
    bool event_found;
    Loyalty__V1__ReferralProgram *program;
    referral_member_row_t member;
    bool member_found;
} referral_event_reads_t;
status_t referral_store_event_reads(db_t *db, arena_t *a, const char *merchant_id, int event,
                                    const char *reference, const char *member_id,
                                    referral_event_reads_t *out);

/** Records an event unless (event, reference) exists; *inserted says which. */
status_t referral_store_event_insert(db_t *db, const char *merchant_id,
                                     const referral_event_row_t *ev, int64_t now_s, bool *inserted);

/** Sets the cumulative reversed share of an event. */
status_t referral_store_event_set_share(db_t *db, const char *merchant_id, int event,
                                        const char *reference, int32_t share_bps);

/** Stores the rewards of an event (HELD until held_until_s, or GRANTED at once when it is 0)
 *  and adds their points to the beneficiaries' counters of levels 1..3, in one statement.
 *  *out receives the stored rewards in level order. */
status_t referral_store_rewards_insert(db_t *db, arena_t *a, const char *merchant_id,
                                       const referral_event_row_t *ev,
                                       const referral_reward_spec_t *specs, int n,
                                       int64_t held_until_s, int64_t now_s,
                                       Loyalty__V1__ReferralReward ***out, size_t *n_out);

/** Every reward of an event in level order; with for_update they stay locked. */
status_t referral_store_event_rewards(db_t *db, arena_t *a, const char *merchant_id, int event,
                                      const char *reference, bool for_update,
                                      Loyalty__V1__ReferralReward ***out, size_t *n);

/** Writes a reversal of `r` (whose money fields already hold the new state): the reward row
 *  and a reversal row with id `reversal_id`. The beneficiary's reversed counter is the
 *  caller's to write, with the call's other counters (referral_store_stats_write). */
status_t referral_store_reward_reverse(db_t *db, const char *merchant_id,
                                       const Loyalty__V1__ReferralReward *r, int64_t reversed_delta,
                                       int64_t clawback, const char *reversal_id, int64_t now_s);

/** Writes a sum of counter changes in one statement, in (member, level) order (sorting it);
 *  inside a transaction it travels with the next statement. */
status_t referral_store_stats_write(db_t *db, arena_t *a, const char *merchant_id,
                                    referral_stats_sum_t *s);

/** From now on and on this thread, the counter changes of rewards inserted
 *  (referral_store_rewards_insert) and of reversals (the caller's, through
 *  referral_store_stats_gathering) are added to `s` instead of written, until
 *  referral_store_stats_gather_end writes them all (when `write`; a merged run that failed
 *  drops them). A merged batch of ComputeRewards or ReverseRewards runs so (referral_rpc.c). */
void referral_store_stats_gather_begin(referral_stats_sum_t *s);
referral_stats_sum_t *referral_store_stats_gathering(void);
status_t referral_store_stats_gather_end(db_t *db, arena_t *a, const char *merchant_id, bool write);

/** Locks (SKIP LOCKED) up to limit + 1 held rewards whose hold ended at now_s, oldest hold
 *  first; *more says whether there was one beyond `limit` (only the first `limit` come back). */
status_t referral_store_due_rewards(db_t *db, arena_t *a, const char *merchant_id, int64_t now_s,
                                    int32_t limit, Loyalty__V1__ReferralReward ***out, size_t *n,
                                    bool *more);

/** Writes the released state of rewards (state, granted_points, granted_at = now_s) in one
 *  statement. */
status_t referral_store_rewards_released(db_t *db, arena_t *a, const char *merchant_id,
                                         Loyalty__V1__ReferralReward *const *rewards, size_t n,
                                         int64_t now_s);

/** A page of a beneficiary's rewards, newest first, after reward id `after` ("" = newest). */
status_t referral_store_rewards_page(db_t *db, arena_t *a, const char *merchant_id,
                                     const char *beneficiary_id, const char *after, int32_t limit,
                                     Loyalty__V1__ReferralReward ***out, size_t *n,
                                     const char **next);

#endif
