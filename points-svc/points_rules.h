/* points_rules.h -- pure rules of points: validation of settings and campaigns, earning (spend
 * points, multipliers, event bonuses, growth), expiry dates, cash redemption, cumulative
 * reversal shares, FIFO allocation and check-in streaks. No I/O; every rounding path is
 * unit-tested in tests/unit/test_points_rules.c. Days are days since 1970-01-01 (local dates
 * in the merchant's time zone, computed by the caller). */
#ifndef POINTS_RULES_H
#define POINTS_RULES_H

#include "loyalty/v1/points.pb-c.h"
#include "status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POINTS_MAX INT64_C(1000000000000)        /* 10^12: any single amount of points or growth */
#define POINTS_CENTS_MAX INT64_C(10000000000000) /* 10^13: any order amount */
#define POINTS_RATE_MAX INT64_C(100000000)       /* 10^8: unit sizes and redemption rates */
#define POINTS_PER_UNIT_MAX 1000000
#define POINTS_EVENT_POINTS_MAX 1000000
#define POINTS_EVENT_KIND_MAX 4          /* highest PointsEventKind */
#define POINTS_MULTIPLIER_BPS_MAX 100000 /* 10x */
#define POINTS_GROWTH_PER_POINT_BPS_MAX 1000000
#define POINTS_EXPIRY_DAYS_MAX 3650
#define POINTS_EXPIRY_MONTHS_MAX 120
#define POINTS_PENDING_DAYS_MAX 365
#define POINTS_TIME_ZONE_MAX 64
#define POINTS_CAMPAIGN_NAME_MAX 100
#define POINTS_CAMPAIGN_TIERS_MAX 10
#define POINTS_TIER_ID_MAX 64
#define POINTS_REFERENCE_MAX 128
#define POINTS_MEMBER_ID_MAX 64
#define POINTS_REASON_MAX 200
#define POINTS_OPERATOR_MAX 64
#define POINTS_HOLD_TTL_DEFAULT_S 900
#define POINTS_HOLD_TTL_MAX_S 604800
#define POINTS_IMPORT_LOTS_MAX 1000
#define POINTS_HISTORY_KINDS_MAX 16
#define POINTS_EXPIRING_WINDOW_DAYS 30

/** Fills `s` (an initialised message) with the defaults of a merchant that never configured
 *  anything: UTC, earning, redemption and growth off, no expiry, no pending period. Strings
 *  are static. */
void points_rules_default_settings(Loyalty__V1__PointsSettings *s);

/** Validates settings from a caller; fields are named "settings.<field>". The time zone is
 *  only checked for shape here (the store asks PostgreSQL whether it exists). */
status_t points_rules_check_settings(const Loyalty__V1__PointsSettings *s);

/** The fixed points of an event kind under the settings (0 when there is no rule). */
int64_t points_rules_event_points(const Loyalty__V1__PointsSettings *s,
                                  Loyalty__V1__PointsEventKind kind);

/** Validates a campaign from a caller (fields "campaign.<field>"); *start_day and *end_day
 *  receive its dates. */
status_t points_rules_check_campaign(const Loyalty__V1__PointsCampaign *c, int64_t *start_day,
                                     int64_t *end_day);

/** A campaign as the earn rule sees it. */
typedef struct points_campaign_window {
    const char *id;
    int64_t multiplier_bps;
    int64_t start_day, end_day; /* inclusive */
    char **tier_ids;
    size_t n_tier_ids; /* 0 = every tier */
    bool active;
} points_campaign_window_t;

/** Index of the campaign that applies to an order on local day `day` by a member of `tier_id`
 *  (active, day within its window, tier listed or no tier list): the highest multiplier wins,
 *  the earliest index on ties (campaigns never compound). -1 when none applies. */
int points_rules_pick_campaign(const points_campaign_window_t *c, size_t n, const char *tier_id,
                               int64_t day);

/** Validates order amounts (fields "<field_prefix>.paid_cents" ...). */
status_t points_rules_check_order(const char *field_prefix,
                                  const Loyalty__V1__PointsOrderAmounts *o);

/** Computes what an order earns into `out` (an initialised breakdown): spend points floored on
 *  whole units paid, times the tier and campaign multipliers (floored once, on the product),
 *  plus the ORDER event bonus; growth per point and per unit. campaign_bps 0 = none (10000).
 *  OUT_OF_RANGE AMOUNT_OVERFLOW when the result passes POINTS_MAX. */
status_t points_rules_earn_order(const Loyalty__V1__PointsSettings *s,
                                 const Loyalty__V1__PointsOrderAmounts *o, int64_t campaign_bps,
                                 const char *campaign_id, Loyalty__V1__PointsEarnBreakdown *out);

/** The earn of an event kind alone: its fixed points and the growth per point. */
void points_rules_earn_event(const Loyalty__V1__PointsSettings *s,
                             Loyalty__V1__PointsEventKind kind,
                             Loyalty__V1__PointsEarnBreakdown *out);

/** The last valid local day of points that became available on `available_day`, by the expiry
 *  policy; false when they never expire. */
bool points_rules_expiry_day(const Loyalty__V1__PointsSettings *s, int64_t available_day,
                             int64_t *expiry_day);

/** Cash value of points: floor(points * redeem_value_cents / redeem_points); 0 when
 *  redemption is off or points <= 0. */
int64_t points_rules_cash_value(const Loyalty__V1__PointsSettings *s, int64_t points);

/** The redemption quote of QuoteRedeem (see points.proto); `reason` is a static string. */
typedef struct points_redeem_quote {
    int64_t points;
    int64_t cash_value_cents;
    int64_t max_cash_cents;
    const char *reason;
} points_redeem_quote_t;

void points_rules_quote_redeem(const Loyalty__V1__PointsSettings *s, int64_t available,
                               int64_t order_total_cents, points_redeem_quote_t *q);

/** A checkout's choice of points to redeem (PointsHoldRequest.choose_points). */
typedef struct points_redemption_choice {
    int64_t points;   /* 0: hold nothing */
    const char *note; /* "", CAPPED_BY_ORDER_SHARE, or the quote's reason when nothing */
} points_redemption_choice_t;

/** `requested` points capped by the order's share only (the fewest points worth the most cash
 *  the share allows), or with use_max the quote's points for `available`; with redemption off
 *  an explicit request is left as it is, so that the hold refuses it and says why. */
points_redemption_choice_t points_rules_choose_redemption(const Loyalty__V1__PointsSettings *s,
                                                          int64_t available,
                                                          int64_t order_total_cents,
                                                          int64_t requested, bool use_max);

/** Whether `points` may be redeemed on an order of order_total_cents: FAILED_PRECONDITION
 *  REDEMPTION_DISABLED, BELOW_MINIMUM_REDEMPTION or EXCEEDS_ORDER_SHARE otherwise. */
status_t points_rules_check_redemption(const Loyalty__V1__PointsSettings *s, int64_t points,
                                       int64_t order_total_cents);

/** The hold TTL to use for a requested one: 0 -> default; outside 1..max INVALID_TTL_S. */
status_t points_rules_hold_ttl(int64_t ttl_s, int64_t *out);

/** Reversals: the cumulative reversed share after this one; FAILED_PRECONDITION
 *  REVERSAL_EXCEEDS_ORDER past 10000, INVALID_SHARE_BPS outside 1..10000. */
status_t points_rules_reversal_bps(int64_t reversed_bps_before, int64_t share_bps,
                                   int64_t *reversed_bps_after);

/** What this reversal moves of `total`: floor(total * reversed_bps_after / 10000) minus what
 *  earlier reversals moved (`done_before`), never negative. */
int64_t points_rules_reversal_amount(int64_t total, int64_t reversed_bps_after,
                                     int64_t done_before);

/** Takes `need` points from lots in the given (spending) order, each at most its remaining:
 *  take[i] receives what comes out of lot i. Returns the total taken (< need when the lots do
 *  not hold enough). */
int64_t points_rules_take_in_order(const int64_t *remaining, size_t n, int64_t need, int64_t *take);

/** Check-in streak after checking in on `today`: last + 1 when the previous check-in was the day
 *  before, else 1. has_last false when the member never checked in. */
int32_t points_rules_streak(bool has_last, int64_t last_day, int32_t streak, int64_t today);

/** Parses "YYYY-MM-DD" into days since 1970 (INVALID_<FIELD> otherwise). */
status_t points_rules_parse_day(const char *field, const char *date, int64_t *day);

/** Writes a day as "YYYY-MM-DD" into out[11]. */
void points_rules_format_day(int64_t day, char out[11]);

/** The local clock of an instant in a time zone: its local day, and the instant and local day
 *  `add_days` local days later (the end of a pending window). */
typedef struct points_local_clock {
    int64_t day;
    int64_t later_at_s;
    int64_t later_day;
} points_local_clock_t;

/** One local day of a time zone: days since 1970 and the instants of its first second and of
 *  the next day's (unix seconds). */
typedef struct points_local_day {
    int64_t day;
    int64_t start_at_s;
    int64_t end_at_s;
} points_local_day_t;

/** The local clock of at_s from a known local day, when that needs no time-zone rules: at_s
 *  falls in the day, the day is 24 hours long (no daylight-saving change in it, so a local time
 *  maps back to exactly one instant) and add_days is 0. False otherwise. */
bool points_rules_clock_in_day(const points_local_day_t *d, int64_t at_s, int64_t add_days,
                               points_local_clock_t *out);

#endif
