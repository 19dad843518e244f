/* member_ops.h -- applies the tier and segment rules to members inside a transaction: turns
 * a stored row into the engine's state (tier ids <-> levels), and finishes every change the
 * same way: the tier the member gets now, the segment and when it next changes, the due date of
 * the maintenance, tier history rows that explain each change, the counters and the list of
 * members whose cached tier must be dropped after commit. Used by orders, returns, cards,
 * maintenance, creation and import. */
#ifndef MEMBER_OPS_H
#define MEMBER_OPS_H

#include "member_store_state.h"
#include "rpc.h"

/** What one transaction knows about the merchant it changes. */
typedef struct member_scope {
    rpc_ctx_t *ctx; /* the call (or job) whose transaction records the tier.changed events */
    const char *merchant_id;
    member_settings_t settings;
    member_tierset_t tiers;
    int64_t now;   /* unix seconds: segments */
    int64_t today; /* the merchant's calendar day of `now`: tiers and cards */
    member_counts_t *counts;
    /* Members changed in this transaction (their cached tier is stale after commit). */
    const char **touched;
    int touched_count;
    int touched_cap;
} member_scope_t;

/** A scope without its settings, tiers and today, for a caller that read them itself. */
void member_scope_init(rpc_ctx_t *ctx, arena_t *a, const char *merchant_id, int64_t now,
                       member_scope_t *s);
/** Loads settings and tiers for a change at `now` (and the calendar day of `at`, when at_day is
 *  not NULL), on `db` (ctx->db, or the job's) with memory from `a`. */
status_t member_scope_load(rpc_ctx_t *ctx, db_t *db, arena_t *a, const char *merchant_id,
                           int64_t now, int64_t at, member_scope_t *s, int64_t *at_day);

/** The engine's view of a row, and back. */
member_tier_state_t member_row_tier(const member_scope_t *s, const member_row_t *r);
void member_row_set_tier(const member_scope_t *s, member_row_t *r, const member_tier_state_t *t);
member_card_t member_row_card(const member_scope_t *s, const member_row_t *r);

/** What happened to the row besides statistics. */
typedef struct member_change {
    const member_tier_event_t *events; /* changes of the earned tier, oldest first */
    int event_count;
    /* A card event (MANUAL, PAID, EXPIRED, IMPORT) after the tier events; UNSPECIFIED = none. */
    Loyalty__V1__MemberTierChangeReason card_reason;
    const char *note;     /* for the card event (MANUAL: the merchant's reason) */
    const char *order_id; /* the order behind the change, if any */
} member_change_t;

/** Finishes a change of a locked row (`old` as read, NULL for a new member): recomputes the tier
 *  the member gets and the segment as of the scope's time, writes history (and a `tier.changed`
 *  event through the outbox for every change of the tier the member gets), the row and counter
 *  deltas (flushed by member_scope_finish), and records the member as touched. */
status_t member_ops_save(db_t *db, arena_t *a, member_scope_t *s, const member_row_t *old,
                         member_row_t *row, const member_change_t *ch);

/** Applies the counter deltas collected in the scope. Call once, last, in the transaction. */
status_t member_scope_finish(db_t *db, member_scope_t *s);

/** A note explaining an engine event in words ("renewed: value 5500 >= retain 4000 ..."). */
const char *member_event_note(arena_t *a, const member_scope_t *s, const member_tier_event_t *ev);

/** Counts of what member_maintain_row did. */
typedef struct member_maintenance_counts {
    int processed, renewed, downgraded, cards_expired, segments_changed;
} member_maintenance_counts_t;

/** The maintenance of one locked row whose time has come: period ends, card expiry, segment.
 *  The scope's time is the "as of". */
status_t member_maintain_row(db_t *db, arena_t *a, member_scope_t *s, member_row_t *row,
                             member_maintenance_counts_t *counts);

#endif
