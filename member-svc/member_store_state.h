/* member_store_state.h -- SQL for what member-svc keeps besides profiles: per-merchant settings,
 * tiers and plans, a member's tier/card/statistics/segment row, orders and months with
 * purchases, card purchases, tier history, the counters behind CountMembers, RFM boundaries and
 * the selection of members due for maintenance. Every function takes the merchant and touches
 * only its rows; results live in the arena. Days are day numbers on the merchant's calendar. */
#ifndef MEMBER_STORE_STATE_H
#define MEMBER_STORE_STATE_H

#include "arena.h"
#include "db.h"
#include "loyalty/v1/member.pb-c.h"
#include "member_segments.h"
#include "member_tags.h"
#include "member_tiers.h"
#include "sql_time.h"
#include "status.h"

#include <stdbool.h>
#include <stdint.h>

#define MEMBER_TIME_ZONE_MAX 64

typedef struct member_settings {
    char time_zone[MEMBER_TIME_ZONE_MAX + 1];
    Loyalty__V1__MemberTierBasis basis;
    member_lifecycle_t lifecycle;
    bool have_rfm;
    int64_t rfm_recency[MEMBER_RFM_BOUNDS];
    int64_t rfm_frequency[MEMBER_RFM_BOUNDS];
    int64_t rfm_monetary[MEMBER_RFM_BOUNDS];
    int64_t rfm_computed_at;
    int64_t updated_at;
    member_tag_rules_t tag_rules; /* automatic tags (member_tags.h) */
} member_settings_t;

/** The merchant's settings (defaults when it has no row yet), and the merchant-calendar day
 *  numbers of the instants `now_s` and `at_s` (either may be 0: then its day is not wanted). */
status_t member_settings_load(db_t *db, const char *merchant_id, int64_t now_s, int64_t at_s,
                              member_settings_t *out, int64_t *now_day, int64_t *at_day);

/** Creates the merchant's settings row with the defaults if it has none. */
status_t member_settings_ensure(db_t *db, const char *merchant_id);

/** Creates the settings row if needed and locks it: serializes changes of the merchant's
 *  settings and tiers. */
status_t member_settings_lock(db_t *db, const char *merchant_id);

/** Writes every setting (creating the row); with `resegment` a re-evaluation of every
 *  member's segment is started for the background job. */
status_t member_settings_save(db_t *db, const char *merchant_id, const member_settings_t *s,
                              bool resegment);

/** Replaces the merchant's tag rules (settings row locked by the caller); when they differ from
 *  the stored ones *changed is set and the re-evaluation walk (which re-tags every member) is
 *  started. *pending: a walk is under way after this. */
status_t member_tag_rules_save(db_t *db, arena_t *a, const char *merchant_id,
                               const member_tag_rules_t *rules, bool *changed, bool *pending);
/** Whether the merchant's re-evaluation walk (segments and automatic tags) is under way. */
status_t member_reeval_pending(db_t *db, const char *merchant_id, bool *pending);

/** True when `tz` is an IANA zone name PostgreSQL knows. */
status_t member_time_zone_known(db_t *db, const char *tz, bool *known);

/** The RFM boundaries as of now over the merchant's buying members. */
status_t member_rfm_refresh(db_t *db, const char *merchant_id);

/** A tier with everything the API shows. */
typedef struct member_tier_def {
    char *id;
    char *name;
    int32_t rank;
    int64_t upgrade_threshold;
    int64_t retain_threshold;
    int32_t period_months;
    int64_t express_spend_cents;
    int32_t discount_bps;
    int32_t earn_multiplier_bps;
    int64_t birthday_bonus_points;
    int64_t created_at;
    int64_t updated_at;
} member_tier_def_t;

/** The merchant's tiers by rank: defs[level - 1] and ladder.tiers[level - 1] describe the
 *  same tier. */
typedef struct member_tierset {
    int n;
    member_tier_def_t defs[MEMBER_TIERS_MAX];
    member_ladder_t ladder;
} member_tierset_t;

/** Loads the tiers (locked against concurrent tier changes when for_update). */
status_t member_tiers_load(db_t *db, arena_t *a, const char *merchant_id, bool for_update,
                           member_tierset_t *out);

/** Builds the ladder of a tierset from its defs (sorted by rank) . */
void member_tierset_index(member_tierset_t *ts);

/** The level of a tier id: 0 for "" or an unknown id. */
int member_tierset_level(const member_tierset_t *ts, const char *tier_id);
/** The id of a level: "" for 0. */
const char *member_tierset_id(const member_tierset_t *ts, int level);

status_t member_tier_insert(db_t *db, const char *merchant_id, const member_tier_def_t *t);
/** NOT_FOUND TIER_NOT_FOUND when absent. */
status_t member_tier_update(db_t *db, const char *merchant_id, const member_tier_def_t *t);

/** Plans. */
status_t member_plan_insert(db_t *db, arena_t *a, const char *merchant_id,
                            const Loyalty__V1__MemberPlan *p, Loyalty__V1__MemberPlan **out);
status_t member_plan_update(db_t *db, arena_t *a, const char *merchant_id,
                            const Loyalty__V1__MemberPlan *p, Loyalty__V1__MemberPlan **out);
status_t member_plan_get(db_t *db, arena_t *a, const char *merchant_id, const char *plan_id,
                         Loyalty__V1__MemberPlan **out);
status_t member_plan_list(db_t *db, arena_t *a, const char *merchant_id, bool include_inactive,
                          Loyalty__V1__MemberPlan ***out, size_t *n);

/** A member's row of tier state, card, statistics and segment (tier ids "" = none). */
typedef struct member_row {
    char *id;
    int64_t created_at;
    char *tier_id;
    char *base_tier_id;
    char *express_tier_id;
    int64_t period_value;
    int32_t period_seq;
    int64_t period_start;
    int64_t period_end; /* exclusive; MEMBER_DAY_NONE */
    Loyalty__V1__MemberCardKind card_kind;
    char *card_tier_id;
    char *card_plan_id;
    int64_t card_valid_from;
    int64_t card_valid_to; /* inclusive; MEMBER_DAY_NONE */
    char *card_reason;
    char *effective_tier_id;
    Loyalty__V1__MemberCardKind effective_kind;
    int64_t order_count;
    int64_t total_spend_cents;
    int64_t total_growth;
    int64_t first_order_at; /* 0 = none */
    int64_t last_order_at;
    int32_t months_with_purchases;
    Loyalty__V1__MemberSegment segment;
    int64_t segment_since;
    int64_t tier_due_at;    /* 0 = none */
    int64_t segment_due_at; /* 0 = none */
    char **auto_tags;       /* sorted (member_tags_compute) */
    size_t n_auto_tags;
    int64_t points_balance; /* as last learnt (member_row_learn_points) */
    int64_t points_version; /* PointsBalance.version of points_balance; 0 = unversioned */
} member_row_t;

/** A points event's balance, stored in one statement when the merchant has no points_balance
 *  tag rule (so no tag can change): the member's balance and version, if `version` is newer
 *  than the row's. *ruled: the merchant has such a rule, and nothing was written (the caller
 *  then re-tags the member under its lock). An unknown member is no error. */
status_t member_row_learn_points_unruled(db_t *db, arena_t *a, const char *merchant_id,
                                         const char *member_id, int64_t balance, int64_t version,
                                         bool *ruled);
/** The same for n balances at once, in one statement (several of one member: the newest is
 *  taken); nothing is written when *ruled. */
status_t member_rows_learn_points_unruled(db_t *db, arena_t *a, const char *merchant_id,
                                          char *const *member_ids, const int64_t *balances,
                                          const int64_t *versions, size_t n, bool *ruled);

/** Takes a points balance for the points_balance tag rules when it is newer than the row's:
 *  its version (PointsBalance.version, points events) is higher, or it has none (0: a caller
 *  that vouches for its order). A duplicate or an older balance changes nothing, so that points
 *  events and the gateway's Record* calls may arrive in any order. True when taken. */
bool member_row_learn_points(member_row_t *row, int64_t balance, int64_t version);

/** Claims (FOR UPDATE SKIP LOCKED) one merchant whose segments are being re-evaluated;
 *  *merchant_id NULL when none. *after_id: the last member done ("" = none yet). */
status_t member_reseg_claim(db_t *db, arena_t *a, char **merchant_id, char **after_id);
/** The merchant's next members by id after `after_id`, locked. */
status_t member_reseg_rows(db_t *db, arena_t *a, const char *merchant_id, const char *after_id,
                           int limit, member_row_t **rows, int *n);
/** Records progress: the last member done, or NULL when the walk is complete. */
status_t member_reseg_advance(db_t *db, const char *merchant_id, const char *last_id);

/** Claims (FOR UPDATE SKIP LOCKED) one merchant whose RFM boundaries are older than every_s
 *  seconds (or missing); *merchant_id NULL when none. */
status_t member_rfm_claim(db_t *db, arena_t *a, int64_t every_s, char **merchant_id);

/* The columns of a member_row_t, in the order member_row_from_result reads them; instants in
 * whole seconds rounded down (SQL_EPOCH_S_FLOOR). */
// clang-format off
#define MEMBER_ROW_COLUMNS                                                                         \
    "id, " SQL_EPOCH_S_FLOOR("created_at") ", coalesce(tier_id, ''), "                             \
    "coalesce(base_tier_id, ''), coalesce(express_tier_id, ''), period_value, period_seq, "        \
    "period_start - " SQL_DAY_ZERO ", period_end - " SQL_DAY_ZERO ", card_kind, "                  \
    "coalesce(card_tier_id, ''), coalesce(card_plan_id, ''), "                                     \
    "card_valid_from - " SQL_DAY_ZERO ", card_valid_to - " SQL_DAY_ZERO ", "                       \
    "card_reason, coalesce(effective_tier_id, ''), effective_kind, order_count, "                  \
    "total_spend_cents, total_growth, coalesce(" SQL_EPOCH_S_FLOOR("first_order_at") ", 0), "      \
    "coalesce(" SQL_EPOCH_S_FLOOR("last_order_at") ", 0), months_with_purchases, segment, "        \
    SQL_EPOCH_S_FLOOR("segment_since") ", "                                                        \
    "coalesce(" SQL_EPOCH_S_FLOOR("tier_due_at") ", 0), "                                          \
    "coalesce(" SQL_EPOCH_S_FLOOR("segment_due_at") ", 0), merchant_id, auto_tags, "               \
    "points_balance, points_version"
// clang-format on
#define MEMBER_ROW_COLUMN_COUNT 31

/** The column table of MEMBER_ROW_COLUMNS (member_store_state.c). */
extern const db_cols_t MEMBER_ROW_COLS;

/** Reads a member row from row `i` of a result, its columns starting at `c0`. */
status_t member_row_from_result(arena_t *a, const PGresult *r, int i, int c0, member_row_t *out);

/** Reads a member's row, locked until the end of the transaction when for_update. NOT_FOUND
 *  MEMBER_NOT_FOUND when absent. */
status_t member_row_get(db_t *db, arena_t *a, const char *merchant_id, const char *member_id,
                        bool for_update, member_row_t *out);

/** Writes the row's tier, card, statistics, segment and automatic tag columns. `tz` turns the day
 * of the next tier/card due date into an instant (midnight on the merchant's calendar).
 * `tier_due_day` MEMBER_DAY_NONE = none. Deferred (db_exec_deferred): sent with the transaction's
 * next statement or its COMMIT. */
status_t member_row_save(db_t *db, arena_t *a, const char *merchant_id, const char *tz,
                         const member_row_t *r, int64_t tier_due_day);

/** Up to `limit` members whose maintenance is due at `as_of`, locked (SKIP LOCKED: members
 *  another transaction holds are left to it). With merchant_id NULL: across merchants, oldest
 *  due first; merchant ids come back in merchants[i]. */
status_t member_due_lock(db_t *db, arena_t *a, const char *merchant_id, int64_t as_of, int limit,
                         member_row_t **rows, char ***merchants, int *n);

/** An order as recorded. */
typedef struct member_order {
    char *order_id;
    char *member_id;
    int64_t spend_cents;
    int64_t growth_delta;
    int64_t returned_spend_cents;
    int64_t returned_growth;
    bool fully_returned;
    int32_t period_seq;
    int64_t ordered_at;
    int64_t local_month; /* day number of the month's first day */
    char *old_tier_id;
    char *new_tier_id;
    Loyalty__V1__MemberTierChangeReason reason;
} member_order_t;

/** RecordOrder's reads in one round trip: the merchant's settings with the calendar days of now_s
 *  (today) and at_s, its tiers, the member's row locked FOR UPDATE (NOT_FOUND MEMBER_NOT_FOUND)
 *  and the order when it was recorded before (order_found). */
typedef struct member_order_reads {
    member_settings_t settings;
    int64_t today, at_day;
    member_tierset_t tiers;
    member_row_t row;
    member_order_t order;
    bool order_found;
} member_order_reads_t;
status_t member_order_reads(db_t *db, arena_t *a, const char *merchant_id, const char *member_id,
                            const char *order_id, int64_t now_s, int64_t at_s,
                            member_order_reads_t *out);
/** NOT_FOUND ORDER_NOT_FOUND when absent. */
status_t member_order_get(db_t *db, arena_t *a, const char *merchant_id, const char *order_id,
                          bool for_update, member_order_t *out);
/** Deferred (db_exec_deferred): ALREADY_EXISTS ORDER_ALREADY_RECORDED, from the transaction's
 *  next statement or its COMMIT, when the order id is taken. */
status_t member_order_insert(db_t *db, const char *merchant_id, const member_order_t *o);
status_t member_order_set_returned(db_t *db, const char *merchant_id, const member_order_t *o);
/** The largest spend still held (spend - returned) by an order of the member's period `seq`. */
status_t member_order_max_spend(db_t *db, const char *merchant_id, const char *member_id,
                                int32_t seq, int64_t *out);
/** First and last order time over the member's orders not fully returned (0 = none). */
status_t member_order_first_last(db_t *db, const char *merchant_id, const char *member_id,
                                 int64_t *first_at, int64_t *last_at);

/** Adds `delta` (+1 / -1) to the member's orders in a month; *months_delta gets +1 when the
 *  month gained its first order, -1 when it lost its last one, else 0. */
status_t member_month_add(db_t *db, const char *merchant_id, const char *member_id,
                          int64_t month_day, int delta, int *months_delta);

/** A PAID card bought. */
typedef struct member_purchase {
    char *order_id;
    char *member_id;
    char *plan_id;
    int32_t quantity;
    int64_t valid_from;
    int64_t valid_to;
} member_purchase_t;

/** NOT_FOUND when the order has no purchase. */
status_t member_purchase_get(db_t *db, arena_t *a, const char *merchant_id, const char *order_id,
                             member_purchase_t *out);
status_t member_purchase_insert(db_t *db, const char *merchant_id, const member_purchase_t *p);

/** One row of tier history. */
typedef struct member_history {
    const char *member_id;
    const char *from_tier_id;
    const char *to_tier_id;
    const char *earned_tier_id;
    Loyalty__V1__MemberTierChangeReason reason;
    Loyalty__V1__MemberCardKind card_kind;
    const char *note;
    const char *order_id;
    int64_t period_value;
} member_history_t;

/** Deferred (db_exec_deferred). */
status_t member_history_insert(db_t *db, const char *merchant_id, const member_history_t *h);

#define MEMBER_SEQ_MAX 24
/** Newest first, after the cursor position `after_seq` ("" = from the newest; otherwise a
 *  number that came back in last_seq); up to `limit` rows. */
/** The merchant's tier changes made in [from_at, to_at), oldest first, after the keyset
 *  (after_at_us, after_id) ("" = from the start), at most `limit`; last_at_us receives the
 *  keyset's time of the last one returned. */
status_t member_history_window(db_t *db, arena_t *a, const char *merchant_id, int64_t from_at,
                               int64_t to_at, const char *after_at_us, const char *after_id,
                               int32_t limit, Loyalty__V1__MemberTierChange ***out, size_t *n,
                               char last_at_us[MEMBER_SEQ_MAX]);

status_t member_history_list(db_t *db, arena_t *a, const char *merchant_id, const char *member_id,
                             const char *after_seq, int32_t limit,
                             Loyalty__V1__MemberTierChange ***out, size_t *n,
                             char last_seq[MEMBER_SEQ_MAX]);

/** Counter deltas collected during a transaction and applied at its end, in key order (so
 *  that concurrent transactions take the counter rows in the same order and never deadlock). */
#define MEMBER_COUNT_DELTAS_MAX 4096
typedef struct member_count_delta {
    int dim;
    const char *key;
    int shard;
    int64_t n;
} member_count_delta_t;

typedef struct member_counts {
    int n;
    member_count_delta_t d[MEMBER_COUNT_DELTAS_MAX];
} member_counts_t;

enum { MEMBER_DIM_TOTAL = 0, MEMBER_DIM_SEGMENT = 1, MEMBER_DIM_TIER = 2, MEMBER_DIM_KIND = 3 };

/** The counter shard of a member (stable hash of its id). */
int member_count_shard(const char *member_id);
/** Adds a delta (merged with an equal key). `key` is borrowed: arena or static memory. */
void member_counts_add(member_counts_t *c, int dim, const char *key, int shard, int64_t n);
/** Applies and clears the deltas. */
status_t member_counts_flush(db_t *db, const char *merchant_id, member_counts_t *c);

/** The counters of a merchant summed over shards: rows of (dim, key, n). */
typedef struct member_count_row {
    int dim;
    char *key;
    int64_t n;
} member_count_row_t;
status_t member_counts_read(db_t *db, arena_t *a, const char *merchant_id,
                            member_count_row_t **rows, int *n);

#endif
