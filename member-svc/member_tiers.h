/* member_tiers.h -- the tier engine as pure functions: the merchant's ladder and its
 * consistency, what an order, a return or a period end does to a member's earned tier, cards
 * (PAID / INTERNAL) and the tier a member gets now. No I/O; days are day numbers on the
 * merchant's calendar (days since 1970-01-01, see validate.h date_days_from_civil); the rpc layer
 * maps levels to tier ids. Unit-tested exhaustively in tests/unit/test_member_tiers.c.
 *
 * Vocabulary: a "level" is a position in the ladder sorted by rank, 1..n; level 0 is "no tier".
 * The "period value" is the basis value (growth, or spend cents) recorded in the current tier
 * period plus what was carried over into it. */
#ifndef MEMBER_TIERS_H
#define MEMBER_TIERS_H

#include "loyalty/v1/member.pb-c.h"
#include "status.h"

#include <stdbool.h>
#include <stdint.h>

/* Short names for the generated enum constants. */
#define MEMBER_REASON(x) LOYALTY__V1__MEMBER_TIER_CHANGE_REASON__MEMBER_TIER_CHANGE_REASON_##x
#define MEMBER_CARD(x) LOYALTY__V1__MEMBER_CARD_KIND__MEMBER_CARD_KIND_##x
#define MEMBER_SEGMENT(x) LOYALTY__V1__MEMBER_SEGMENT__MEMBER_SEGMENT_##x
#define MEMBER_BASIS(x) LOYALTY__V1__MEMBER_TIER_BASIS__MEMBER_TIER_BASIS_##x

#define MEMBER_TIERS_MAX 10
#define MEMBER_TIER_RANK_MAX 10
#define MEMBER_TIER_NAME_MAX 50
#define MEMBER_THRESHOLD_MAX 1000000000000000LL /* 10^15 */
#define MEMBER_PERIOD_MONTHS_MAX 120
#define MEMBER_BIRTHDAY_POINTS_MAX 1000000000LL
#define MEMBER_EARN_MULTIPLIER_MIN_BPS 10000
#define MEMBER_EARN_MULTIPLIER_MAX_BPS 100000
/* A period end more than this many periods in the past is caught up over several runs. */
#define MEMBER_CATCHUP_PERIODS_MAX 24
/* "No day": an open end (a tier without a period end, a card without valid_to). */
#define MEMBER_DAY_NONE INT64_MAX

/** The rules of one tier that the engine needs (benefits stay with the caller). */
typedef struct member_tier_rule {
    int32_t rank;
    int64_t upgrade_threshold;
    int64_t retain_threshold;
    int32_t period_months;       /* 0 = the tier never ends */
    int64_t express_spend_cents; /* 0 = no express upgrade */
    int32_t ref;                 /* the caller's index of this tier (kept through sorting) */
} member_tier_rule_t;

/** A merchant's ladder: tiers[level - 1] for levels 1..n, sorted by rank ascending. */
typedef struct member_ladder {
    int n;
    member_tier_rule_t tiers[MEMBER_TIERS_MAX];
} member_ladder_t;

/** Checks one tier's own fields (names the field as "<prefix>.<field>"): name 1..50
 *  characters, rank 1..10, thresholds 0..10^15, retain <= upgrade, period_months 0..120,
 *  discount 0..10000 bps, multiplier 10000..100000 bps, birthday points 0..10^9. */
status_t member_tier_check_fields(const char *prefix, const Loyalty__V1__MemberTier *t);

/** Sorts the ladder by rank (stable; `ref` follows its tier). */
void member_ladder_sort(member_ladder_t *l);

/** INVALID_ARGUMENT with reason INVALID_LADDER unless the sorted ladder is consistent: at most
 *  MEMBER_TIERS_MAX tiers, ranks unique, upgrade_threshold strictly increasing with rank,
 *  retain_threshold not decreasing with rank, non-zero express_spend_cents strictly increasing
 *  with rank. */
status_t member_ladder_check(const member_ladder_t *l);

/** The highest level whose upgrade_threshold <= value; 0 when none. */
int member_ladder_level_for_value(const member_ladder_t *l, int64_t value);

/** The highest level with a non-zero express_spend_cents <= spend_cents; 0 when none. */
int member_ladder_level_for_express(const member_ladder_t *l, int64_t spend_cents);

/** The exclusive end of a period of `months` calendar months starting on `day`: the same day of
 *  the month `months` later, or the first day of the month after it when that month is shorter
 *  (Jan 31 + 1 month ends on Mar 1, so the period covers all of February). months 0 gives
 *  MEMBER_DAY_NONE. */
int64_t member_day_add_months(int64_t day, int32_t months);

/** A member's earned-tier state. Invariant (while the ladder is unchanged):
 *  level == max(base_level, level_for_value(value), express_level). */
typedef struct member_tier_state {
    int level;            /* the earned tier now; 0 = none */
    int base_level;       /* the tier held when the current period started */
    int express_level;    /* the highest tier reached by express in this period */
    int64_t value;        /* period value, carry-over included; >= 0 */
    int32_t period_seq;   /* incremented at every period start */
    int64_t period_start; /* day the value started accumulating */
    int64_t period_end;   /* exclusive; MEMBER_DAY_NONE = no end (always so at level 0) */
} member_tier_state_t;

/** One change of the earned tier (or a renewal, where from == to). */
typedef struct member_tier_event {
    int from_level;
    int to_level;
    Loyalty__V1__MemberTierChangeReason reason;
    int64_t value_before;
    int64_t value_after;
    int64_t day;
} member_tier_event_t;

/** The state of a member who joins on `today` with value 0 (a tier with upgrade_threshold 0 is
 *  reached at once: *ev gets the UPGRADE and true is returned). */
bool member_tier_join(const member_ladder_t *l, int64_t today, member_tier_state_t *s,
                      member_tier_event_t *ev);

/** An order adds `value_delta` (>= 0) to the period value; `spend_cents` is its spend for
 *  express upgrades. Upgrades to max(level, level_for_value, express level) on `today`: reason
 *  EXPRESS when the express level alone decided the new tier, else UPGRADE. The new period end
 *  is the later of the current one and today + the new tier's period_months (from level 0, or
 *  from a tier that never ends: today + period_months; a new tier that never ends: no end).
 *  True (and *ev filled) when the level changed. The value saturates at INT64_MAX / 2. */
bool member_tier_on_order(const member_ladder_t *l, member_tier_state_t *s, int64_t value_delta,
                          int64_t spend_cents, int64_t today, member_tier_event_t *ev);

/** A return takes `value_delta` (>= 0) back from the period value (never below 0).
 *  `express_spend_max` is the largest spend still held (after this return) by an order of the
 *  current period; the express level is re-derived from it (never raised). The level becomes
 *  max(base_level, level_for_value(value), express level), never above the current one; when
 *  it falls the event has reason RETURN. Going back to level 0 clears the period end; going
 *  back to a tier that never ends too; otherwise the period end is kept. */
bool member_tier_on_return(const member_ladder_t *l, member_tier_state_t *s, int64_t value_delta,
                           int64_t express_spend_max, int64_t today, member_tier_event_t *ev);

/** Applies every period end on or before `today`, oldest first, at most `max` of them (one
 *  event each; a carry that reaches a higher tier adds an UPGRADE event, also counted). At a
 *  period end with level T and value V:
 *    V >= retain(T)  -> RENEWAL, kept = T
 *    else            -> DOWNGRADE, kept = T - 1 (level 0 below the lowest tier)
 *    carry = V - retain(kept) when V >= retain(kept), else 0   (retain(level 0) = 0)
 *  The next period starts on the day the old one ended, with value = carry, base = kept, no
 *  express, and ends period_months(kept) later (no end for level 0 or a tier without end).
 *  Returns the number of events written to `ev`. */
int member_tier_on_period_end(const member_ladder_t *l, member_tier_state_t *s, int64_t today,
                              member_tier_event_t *ev, int max);

/** True when the state has a period end on or before `today`. */
bool member_tier_period_due(const member_tier_state_t *s, int64_t today);

/** A PAID or INTERNAL card. */
typedef struct member_card {
    Loyalty__V1__MemberCardKind kind; /* PAID, INTERNAL, or UNSPECIFIED = no card */
    int level;                        /* the card's tier; 0 if unknown */
    int64_t valid_from;               /* inclusive */
    int64_t valid_to;                 /* inclusive; MEMBER_DAY_NONE = until removed */
} member_card_t;

/** True when the member holds the card on `today`. */
bool member_card_valid(const member_card_t *c, int64_t today);

/** True when the card ended before `today` (the maintenance then removes it). */
bool member_card_expired(const member_card_t *c, int64_t today);

/** The card after buying `months` (>= 1) of a plan on `today`: when `same_plan` and the current
 *  card is that plan's PAID card and still valid, it is extended: valid_to becomes
 *  add_months(valid_to + 1, months) - 1; otherwise a new card runs from today through
 *  add_months(today, months) - 1. */
member_card_t member_card_purchase(const member_card_t *current, bool same_plan, int level,
                                   int32_t months, int64_t today);

/** The tier a member gets on `today`: the higher of the earned level and a valid card's level
 *  (the card on a tie), and where it comes from (FREE, TIER, PAID or INTERNAL). */
typedef struct member_effective {
    int level;
    Loyalty__V1__MemberCardKind kind;
} member_effective_t;

member_effective_t member_tier_effective(int earned_level, const member_card_t *card,
                                         int64_t today);

#endif
