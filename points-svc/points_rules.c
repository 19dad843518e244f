/* points_rules.c -- pure rules of points (see points_rules.h). All products go through money.h
 * (128-bit intermediates, explicit rounding). */
#include "points_rules.h"

#include "money.h"
#include "validate.h"

#include <stdio.h>
#include <string.h>

void points_rules_default_settings(Loyalty__V1__PointsSettings *s) {
    s->time_zone = "UTC";
    s->earn_unit_cents = 100;
    s->earn_points_per_unit = 0;
    s->n_event_rules = 0;
    s->event_rules = NULL;
    s->expiry_policy = LOYALTY__V1__POINTS_EXPIRY_POLICY__POINTS_EXPIRY_POLICY_NEVER;
    s->expiry_days = 0;
    s->expiry_months = 0;
    s->pending_days = 0;
    s->redeem_points = 0;
    s->redeem_value_cents = 0;
    s->redeem_min_points = 0;
    s->redeem_max_order_share_bps = 0;
    s->growth_per_point_bps = 0;
    s->growth_per_unit = 0;
    s->version = 0;
    s->updated_at = 0;
}

static status_t check_range(const char *field, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi) {
        return status_invalid_field(field, "must be between %lld and %lld", (long long)lo,
                                    (long long)hi);
    }
    return status_ok();
}

static status_t check_time_zone_shape(const char *tz) {
    size_t n = strlen(tz);
    if (n == 0 || n > POINTS_TIME_ZONE_MAX) {
        return status_invalid_field("settings.time_zone", "1 to %d characters",
                                    POINTS_TIME_ZONE_MAX);
    }
    for (size_t i = 0; i < n; i++) {
        char c = tz[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '/' || c == '+' || c == '-';
        if (!ok) {
            return status_invalid_field("settings.time_zone", "not an IANA time zone name");
        }
    }
    return status_ok();
}

static status_t check_event_rules(const Loyalty__V1__PointsSettings *s) {
    if (s->n_event_rules > POINTS_EVENT_KIND_MAX) {
        return status_invalid_field("settings.event_rules", "at most %d rules",
                                    POINTS_EVENT_KIND_MAX);
    }
    bool seen[POINTS_EVENT_KIND_MAX + 1] = {false};
    for (size_t i = 0; i < s->n_event_rules; i++) {
        const Loyalty__V1__PointsEventRule *r = s->event_rules[i];
        if ((int)r->kind < 1 || (int)r->kind > POINTS_EVENT_KIND_MAX) {
            return status_invalid_field("settings.event_rules.kind", "unknown event kind %d",
                                        (int)r->kind);
        }
        if (seen[r->kind]) {
            return status_invalid_field("settings.event_rules.kind", "kind %d listed twice",
                                        (int)r->kind);
        }
        seen[r->kind] = true;
        status_t st =
            check_range("settings.event_rules.points", r->points, 0, POINTS_EVENT_POINTS_MAX);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    return status_ok();
}

static status_t check_expiry(const Loyalty__V1__PointsSettings *s) {
    switch (s->expiry_policy) {
    case LOYALTY__V1__POINTS_EXPIRY_POLICY__POINTS_EXPIRY_POLICY_NEVER:
        return status_ok();
    case LOYALTY__V1__POINTS_EXPIRY_POLICY__POINTS_EXPIRY_POLICY_DAYS_AFTER_EARN:
        return check_range("settings.expiry_days", s->expiry_days, 1, POINTS_EXPIRY_DAYS_MAX);
    case LOYALTY__V1__POINTS_EXPIRY_POLICY__POINTS_EXPIRY_POLICY_END_OF_MONTH:
    case LOYALTY__V1__POINTS_EXPIRY_POLICY__POINTS_EXPIRY_POLICY_END_OF_YEAR:
        return check_range("settings.expiry_months", s->expiry_months, 0, POINTS_EXPIRY_MONTHS_MAX);
    default:
        return status_invalid_field("settings.expiry_policy", "must be NEVER, DAYS_AFTER_EARN, "
                                                              "END_OF_MONTH or END_OF_YEAR");
    }
}

static status_t check_redemption(const Loyalty__V1__PointsSettings *s) {
    bool off = s->redeem_points == 0 && s->redeem_value_cents == 0;
    if (!off) {
        status_t st = check_range("settings.redeem_points", s->redeem_points, 1, POINTS_RATE_MAX);
        if (!status_is_ok(&st)) {
            return st;
        }
        st = check_range("settings.redeem_value_cents", s->redeem_value_cents, 1, POINTS_RATE_MAX);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    status_t st = check_range("settings.redeem_min_points", s->redeem_min_points, 0, POINTS_MAX);
    if (!status_is_ok(&st)) {
        return st;
    }
    return check_range("settings.redeem_max_order_share_bps", s->redeem_max_order_share_bps, 0,
                       BPS_ONE);
}

status_t points_rules_check_settings(const Loyalty__V1__PointsSettings *s) {
    if (s == NULL) {
        return status_invalid_field("settings", "required");
    }
    status_t st = check_time_zone_shape(s->time_zone);
    if (status_is_ok(&st)) {
        st = check_range("settings.earn_unit_cents", s->earn_unit_cents, 1, POINTS_RATE_MAX);
    }
    if (status_is_ok(&st)) {
        st = check_range("settings.earn_points_per_unit", s->earn_points_per_unit, 0,
                         POINTS_PER_UNIT_MAX);
    }
    if (status_is_ok(&st)) {
        st = check_event_rules(s);
    }
    if (status_is_ok(&st)) {
        st = check_expiry(s);
    }
    if (status_is_ok(&st)) {
        st = check_range("settings.pending_days", s->pending_days, 0, POINTS_PENDING_DAYS_MAX);
    }
    if (status_is_ok(&st)) {
        st = check_redemption(s);
    }
    if (status_is_ok(&st)) {
        st = check_range("settings.growth_per_point_bps", s->growth_per_point_bps, 0,
                         POINTS_GROWTH_PER_POINT_BPS_MAX);
    }
    if (status_is_ok(&st)) {
        st = check_range("settings.growth_per_unit", s->growth_per_unit, 0, POINTS_PER_UNIT_MAX);
    }
    return st;
}

int64_t points_rules_event_points(const Loyalty__V1__PointsSettings *s,
                                  Loyalty__V1__PointsEventKind kind) {
    for (size_t i = 0; i < s->n_event_rules; i++) {
        if (s->event_rules[i]->kind == kind) {
            return s->event_rules[i]->points;
        }
    }
    return 0;
}

status_t points_rules_parse_day(const char *field, const char *date, int64_t *day) {
    int y, m, d;
    status_t st = validate_date(field, date, &y, &m, &d);
    if (status_is_ok(&st)) {
        *day = date_days_from_civil(y, m, d);
    }
    return st;
}

void points_rules_format_day(int64_t day, char out[11]) {
    int y, m, d;
    date_civil_from_days(day, &y, &m, &d);
    /* Years 0..9999, months 1..12 and days 1..31 always fit in 10 characters. */
    unsigned uy = (unsigned)y % 10000u, um = (unsigned)m % 100u, ud = (unsigned)d % 100u;
    out[0] = (char)('0' + uy / 1000);
    out[1] = (char)('0' + uy / 100 % 10);
    out[2] = (char)('0' + uy / 10 % 10);
    out[3] = (char)('0' + uy % 10);
    out[4] = '-';
    out[5] = (char)('0' + um / 10);
    out[6] = (char)('0' + um % 10);
    out[7] = '-';
    out[8] = (char)('0' + ud / 10);
    out[9] = (char)('0' + ud % 10);
    out[10] = '\0';
}

status_t points_rules_check_campaign(const Loyalty__V1__PointsCampaign *c, int64_t *start_day,
                                     int64_t *end_day) {
    if (c == NULL) {
        return status_invalid_field("campaign", "required");
    }
    status_t st = validate_text("campaign.name", c->name, 1, POINTS_CAMPAIGN_NAME_MAX);
    if (!status_is_ok(&st)) {
        return st;
    }
    st = check_range("campaign.multiplier_bps", c->multiplier_bps, BPS_ONE + 1,
                     POINTS_MULTIPLIER_BPS_MAX);
    if (!status_is_ok(&st)) {
        return st;
    }
    st = points_rules_parse_day("campaign.start_date", c->start_date, start_day);
    if (!status_is_ok(&st)) {
        return st;
    }
    st = points_rules_parse_day("campaign.end_date", c->end_date, end_day);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (*end_day < *start_day) {
        return status_invalid_field("campaign.end_date", "before start_date");
    }
    if (c->n_tier_ids > POINTS_CAMPAIGN_TIERS_MAX) {
        return status_invalid_field("campaign.tier_ids", "at most %d tiers",
                                    POINTS_CAMPAIGN_TIERS_MAX);
    }
    for (size_t i = 0; i < c->n_tier_ids; i++) {
        st = validate_token("campaign.tier_ids", c->tier_ids[i], POINTS_TIER_ID_MAX);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    return status_ok();
}

static bool tier_listed(const points_campaign_window_t *c, const char *tier_id) {
    if (c->n_tier_ids == 0) {
        return true;
    }
    for (size_t i = 0; i < c->n_tier_ids; i++) {
        if (tier_id[0] != '\0' && strcmp(c->tier_ids[i], tier_id) == 0) {
            return true;
        }
    }
    return false;
}

int points_rules_pick_campaign(const points_campaign_window_t *c, size_t n, const char *tier_id,
                               int64_t day) {
    int best = -1;
    for (size_t i = 0; i < n; i++) {
        if (!c[i].active || day < c[i].start_day || day > c[i].end_day ||
            !tier_listed(&c[i], tier_id)) {
            continue;
        }
        if (best < 0 || c[i].multiplier_bps > c[best].multiplier_bps) {
            best = (int)i;
        }
    }
    return best;
}

status_t points_rules_check_order(const char *field_prefix,
                                  const Loyalty__V1__PointsOrderAmounts *o) {
    char field[64];
    snprintf(field, sizeof field, "%s.paid_cents", field_prefix);
    status_t st = check_range(field, o->paid_cents, 0, POINTS_CENTS_MAX);
    if (!status_is_ok(&st)) {
        return st;
    }
    snprintf(field, sizeof field, "%s.tier_multiplier_bps", field_prefix);
    st = check_range(field, o->tier_multiplier_bps, 0, POINTS_MULTIPLIER_BPS_MAX);
    if (!status_is_ok(&st)) {
        return st;
    }
    snprintf(field, sizeof field, "%s.ordered_at", field_prefix);
    st = check_range(field, o->ordered_at, 0, INT64_C(253402300799)); /* 9999-12-31 */
    if (!status_is_ok(&st)) {
        return st;
    }
    if (o->tier_id[0] != '\0') {
        snprintf(field, sizeof field, "%s.tier_id", field_prefix);
        return validate_token(field, o->tier_id, POINTS_TIER_ID_MAX);
    }
    return status_ok();
}

static status_t overflow(void) {
    return status_make(STATUS_OUT_OF_RANGE, REASON_AMOUNT_OVERFLOW,
                       "the order would earn more than %lld points", (long long)POINTS_MAX);
}

/* Growth of earned points and units: floor(points * gpp / 10000) + units * per_unit. */
static bool growth_of(const Loyalty__V1__PointsSettings *s, int64_t points, int64_t units,
                      Loyalty__V1__PointsEarnBreakdown *out) {
    int64_t from_points = 0, from_spend = 0, total = 0;
    if (!money_share_bps(points, s->growth_per_point_bps, ROUND_FLOOR, &from_points) ||
        !money_mul_div(units, s->growth_per_unit, 1, ROUND_FLOOR, &from_spend) ||
        !money_add(from_points, from_spend, &total) || total > POINTS_MAX) {
        return false;
    }
    out->growth_from_points = from_points;
    out->growth_from_spend = from_spend;
    out->growth = total;
    return true;
}

status_t points_rules_earn_order(const Loyalty__V1__PointsSettings *s,
                                 const Loyalty__V1__PointsOrderAmounts *o, int64_t campaign_bps,
                                 const char *campaign_id, Loyalty__V1__PointsEarnBreakdown *out) {
    int64_t tier_bps = o->tier_multiplier_bps ? o->tier_multiplier_bps : BPS_ONE;
    int64_t camp_bps = campaign_bps ? campaign_bps : BPS_ONE;
    int64_t units = o->paid_cents / s->earn_unit_cents; /* floor: both are >= 0 */
    int64_t base = 0, multiplied = 0, points = 0;
    if (!money_mul_div(units, s->earn_points_per_unit, 1, ROUND_FLOOR, &base) ||
        !money_mul_div(base, tier_bps * camp_bps, (int64_t)BPS_ONE * BPS_ONE, ROUND_FLOOR,
                       &multiplied)) {
        return overflow();
    }
    int64_t bonus =
        points_rules_event_points(s, LOYALTY__V1__POINTS_EVENT_KIND__POINTS_EVENT_KIND_ORDER);
    if (!money_add(multiplied, bonus, &points) || points > POINTS_MAX) {
        return overflow();
    }
    out->paid_cents = o->paid_cents;
    out->earn_unit_cents = s->earn_unit_cents;
    out->units = units;
    out->points_per_unit = s->earn_points_per_unit;
    out->base_points = base;
    out->tier_multiplier_bps = tier_bps;
    out->campaign_multiplier_bps = camp_bps;
    out->campaign_id = (char *)(campaign_id ? campaign_id : "");
    out->multiplied_points = multiplied;
    out->event_kind = LOYALTY__V1__POINTS_EVENT_KIND__POINTS_EVENT_KIND_ORDER;
    out->event_points = bonus;
    out->points = points;
    out->pending_days = s->pending_days;
    if (!growth_of(s, points, units, out)) {
        return overflow();
    }
    return status_ok();
}

void points_rules_earn_event(const Loyalty__V1__PointsSettings *s,
                             Loyalty__V1__PointsEventKind kind,
                             Loyalty__V1__PointsEarnBreakdown *out) {
    int64_t points = points_rules_event_points(s, kind);
    out->tier_multiplier_bps = BPS_ONE;
    out->campaign_multiplier_bps = BPS_ONE;
    out->campaign_id = "";
    out->earn_unit_cents = s->earn_unit_cents;
    out->points_per_unit = s->earn_points_per_unit;
    out->event_kind = kind;
    out->event_points = points;
    out->points = points;
    /* Event points are at most 10^6 and growth per point at most 100x: no overflow. */
    bool ok = growth_of(s, points, 0, out);
    (void)ok;
}

static int64_t last_day_of_month_after(int64_t day, int32_t months, bool year_end) {
    int y, m, d;
    date_civil_from_days(day, &y, &m, &d);
    int64_t index = (int64_t)y * 12 + (m - 1) + months; /* months since year 0 */
    int ny = (int)(index / 12);
    int nm = (int)(index % 12) + 1;
    if (year_end) {
        return date_days_from_civil(ny, 12, 31);
    }
    return date_days_from_civil(ny, nm, date_days_in_month(ny, nm));
}

bool points_rules_expiry_day(const Loyalty__V1__PointsSettings *s, int64_t available_day,
                             int64_t *expiry_day) {
    switch (s->expiry_policy) {
    case LOYALTY__V1__POINTS_EXPIRY_POLICY__POINTS_EXPIRY_POLICY_DAYS_AFTER_EARN:
        *expiry_day = available_day + s->expiry_days;
        return true;
    case LOYALTY__V1__POINTS_EXPIRY_POLICY__POINTS_EXPIRY_POLICY_END_OF_MONTH:
        *expiry_day = last_day_of_month_after(available_day, s->expiry_months, false);
        return true;
    case LOYALTY__V1__POINTS_EXPIRY_POLICY__POINTS_EXPIRY_POLICY_END_OF_YEAR:
        *expiry_day = last_day_of_month_after(available_day, s->expiry_months, true);
        return true;
    default:
        return false;
    }
}

static bool redemption_on(const Loyalty__V1__PointsSettings *s) {
    return s->redeem_points > 0 && s->redeem_value_cents > 0;
}

int64_t points_rules_cash_value(const Loyalty__V1__PointsSettings *s, int64_t points) {
    int64_t cents = 0;
    if (!redemption_on(s) || points <= 0 ||
        !money_mul_div(points, s->redeem_value_cents, s->redeem_points, ROUND_FLOOR, &cents)) {
        return 0;
    }
    return cents;
}

/* The most points whose value does not exceed cap_cents: value(p) <= cap  <=>
 * p * v < (cap + 1) * r  <=>  p <= ceil((cap + 1) * r / v) - 1. INT64_MAX when it overflows
 * (then anything fits). */
static int64_t points_within_value(const Loyalty__V1__PointsSettings *s, int64_t cap_cents) {
    int64_t p = 0;
    if (!money_mul_div(cap_cents + 1, s->redeem_points, s->redeem_value_cents, ROUND_CEIL, &p)) {
        return INT64_MAX;
    }
    return p - 1;
}

/* The fewest points worth at least `cents`: ceil(cents * r / v). */
static int64_t points_for_value(const Loyalty__V1__PointsSettings *s, int64_t cents) {
    int64_t p = 0;
    if (!money_mul_div(cents, s->redeem_points, s->redeem_value_cents, ROUND_CEIL, &p)) {
        return INT64_MAX;
    }
    return p;
}

static int64_t order_cap_cents(const Loyalty__V1__PointsSettings *s, int64_t order_total_cents) {
    int64_t cap = 0;
    if (!money_share_bps(order_total_cents, s->redeem_max_order_share_bps, ROUND_FLOOR, &cap)) {
        return 0; /* unreachable within the validated ranges */
    }
    return cap;
}

void points_rules_quote_redeem(const Loyalty__V1__PointsSettings *s, int64_t available,
                               int64_t order_total_cents, points_redeem_quote_t *q) {
    memset(q, 0, sizeof *q);
    q->reason = "";
    if (!redemption_on(s)) {
        q->reason = "REDEMPTION_DISABLED";
        return;
    }
    q->max_cash_cents = order_cap_cents(s, order_total_cents);
    if (available <= 0) {
        q->reason = "NO_POINTS";
        return;
    }
    if (q->max_cash_cents == 0) {
        q->reason = "ORDER_TOO_SMALL";
        return;
    }
    int64_t most = points_within_value(s, q->max_cash_cents);
    if (most > available) {
        most = available;
    }
    int64_t value = points_rules_cash_value(s, most);
    if (value == 0) {
        q->reason = "NO_POINTS"; /* not even one cent's worth */
        return;
    }
    int64_t points = points_for_value(s, value); /* drop points that buy no extra cent */
    if (points < s->redeem_min_points) {
        if (s->redeem_min_points > most) {
            q->reason = "BELOW_MINIMUM_REDEMPTION";
            return;
        }
        points = s->redeem_min_points; /* same value, the minimum is still within reach */
    }
    q->points = points;
    q->cash_value_cents = points_rules_cash_value(s, points);
}

points_redemption_choice_t points_rules_choose_redemption(const Loyalty__V1__PointsSettings *s,
                                                          int64_t available,
                                                          int64_t order_total_cents,
                                                          int64_t requested, bool use_max) {
    points_redemption_choice_t c = {0, ""};
    points_redeem_quote_t q;
    points_rules_quote_redeem(s, available, order_total_cents, &q);
    if (use_max) {
        c.points = q.points;
        c.note = q.points == 0 ? q.reason : "";
        return c;
    }
    if (requested <= 0) {
        return c;
    }
    if (!redemption_on(s)) {
        c.points = requested;
        return c;
    }
    /* The fewest points worth the most cash within the share (0 when not even a cent). */
    int64_t cap_value = points_rules_cash_value(s, points_within_value(s, q.max_cash_cents));
    int64_t cap_points = cap_value > 0 ? points_for_value(s, cap_value) : 0;
    if (requested > cap_points) {
        c.points = cap_points;
        c.note = cap_points > 0 ? "CAPPED_BY_ORDER_SHARE"
                 : q.reason[0]  ? q.reason
                                : "ORDER_TOO_SMALL";
        return c;
    }
    c.points = requested;
    return c;
}

status_t points_rules_check_redemption(const Loyalty__V1__PointsSettings *s, int64_t points,
                                       int64_t order_total_cents) {
    if (!redemption_on(s)) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_REDEMPTION_DISABLED,
                           "redeeming points as cash is not enabled for this merchant");
    }
    if (points < s->redeem_min_points) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_BELOW_MINIMUM_REDEMPTION,
                           "at least %lld points per redemption", (long long)s->redeem_min_points);
    }
    int64_t cap = order_cap_cents(s, order_total_cents);
    if (points_rules_cash_value(s, points) > cap) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_EXCEEDS_ORDER_SHARE,
                           "points worth more than %lld cents of this order", (long long)cap);
    }
    return status_ok();
}

status_t points_rules_hold_ttl(int64_t ttl_s, int64_t *out) {
    if (ttl_s == 0) {
        *out = POINTS_HOLD_TTL_DEFAULT_S;
        return status_ok();
    }
    status_t st = check_range("ttl_s", ttl_s, 1, POINTS_HOLD_TTL_MAX_S);
    if (status_is_ok(&st)) {
        *out = ttl_s;
    }
    return st;
}

status_t points_rules_reversal_bps(int64_t reversed_bps_before, int64_t share_bps,
                                   int64_t *reversed_bps_after) {
    status_t st = check_range("share_bps", share_bps, 1, BPS_ONE);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (reversed_bps_before + share_bps > BPS_ONE) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_REVERSAL_EXCEEDS_ORDER,
                           "%lld bps of this order were already reversed; %lld more would pass "
                           "100%%",
                           (long long)reversed_bps_before, (long long)share_bps);
    }
    *reversed_bps_after = reversed_bps_before + share_bps;
    return status_ok();
}

int64_t points_rules_reversal_amount(int64_t total, int64_t reversed_bps_after,
                                     int64_t done_before) {
    int64_t target = 0;
    if (!money_share_bps(total, reversed_bps_after, ROUND_FLOOR, &target)) {
        return 0; /* unreachable: total <= 10^12 and bps <= 10000 */
    }
    return target > done_before ? target - done_before : 0;
}

int64_t points_rules_take_in_order(const int64_t *remaining, size_t n, int64_t need,
                                   int64_t *take) {
    int64_t taken = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t want = need - taken;
        int64_t t = remaining[i] < want ? remaining[i] : want;
        take[i] = t > 0 ? t : 0;
        taken += take[i];
    }
    return taken;
}

int32_t points_rules_streak(bool has_last, int64_t last_day, int32_t streak, int64_t today) {
    if (has_last && last_day == today - 1 && streak > 0) {
        return streak + 1;
    }
    return 1;
}

bool points_rules_clock_in_day(const points_local_day_t *d, int64_t at_s, int64_t add_days,
                               points_local_clock_t *out) {
    if (add_days != 0 || d->end_at_s - d->start_at_s != 86400 || at_s < d->start_at_s ||
        at_s >= d->end_at_s) {
        return false;
    }
    out->day = d->day;
    out->later_at_s = at_s;
    out->later_day = d->day;
    return true;
}
