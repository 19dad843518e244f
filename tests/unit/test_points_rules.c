/* test_points_rules.c -- unit tests of the pure points rules: settings and campaign validation,
 * earn computation and every rounding path (at, one below, one above each boundary), campaign
 * choice, expiry dates, cash redemption quotes and checks, cumulative reversal shares, FIFO
 * allocation and check-in streaks. */
#include "points_rules.h"
#include "validate.h"

#include <criterion/criterion.h>

#include <string.h>

static Loyalty__V1__PointsSettings s;
static Loyalty__V1__PointsEventRule order_rule, checkin_rule;
static Loyalty__V1__PointsEventRule *rules[2];

/* A typical merchant: 1 point per 1.00, 100 points = 1.00, min 100 points, at most 50% of an
 * order, 1 growth per point. */
static void setup(void) {
    Loyalty__V1__PointsSettings init = LOYALTY__V1__POINTS_SETTINGS__INIT;
    s = init;
    points_rules_default_settings(&s);
    s.earn_unit_cents = 100;
    s.earn_points_per_unit = 1;
    s.redeem_points = 100;
    s.redeem_value_cents = 100;
    s.redeem_min_points = 100;
    s.redeem_max_order_share_bps = 5000;
    s.growth_per_point_bps = 10000;
    Loyalty__V1__PointsEventRule r = LOYALTY__V1__POINTS_EVENT_RULE__INIT;
    order_rule = r;
    checkin_rule = r;
    order_rule.kind = LOYALTY__V1__POINTS_EVENT_KIND__POINTS_EVENT_KIND_ORDER;
    order_rule.points = 0;
    checkin_rule.kind = LOYALTY__V1__POINTS_EVENT_KIND__POINTS_EVENT_KIND_CHECK_IN;
    checkin_rule.points = 5;
    rules[0] = &order_rule;
    rules[1] = &checkin_rule;
    s.event_rules = rules;
    s.n_event_rules = 2;
}
TestSuite(points_rules, .init = setup);

static int64_t day_of(const char *date) {
    int64_t d = 0;
    cr_assert_eq(points_rules_parse_day("d", date, &d).code, STATUS_OK, "%s", date);
    return d;
}

static const char *fmt_day(int64_t day) {
    static char buf[4][11];
    static int i;
    i = (i + 1) % 4;
    points_rules_format_day(day, buf[i]);
    return buf[i];
}

static Loyalty__V1__PointsEarnBreakdown earn(int64_t paid, int64_t tier_bps, int64_t camp_bps) {
    Loyalty__V1__PointsOrderAmounts o = LOYALTY__V1__POINTS_ORDER_AMOUNTS__INIT;
    o.paid_cents = paid;
    o.tier_multiplier_bps = tier_bps;
    Loyalty__V1__PointsEarnBreakdown b = LOYALTY__V1__POINTS_EARN_BREAKDOWN__INIT;
    status_t st = points_rules_earn_order(&s, &o, camp_bps, "", &b);
    cr_assert_eq(st.code, STATUS_OK, "%s", st.message);
    return b;
}

Test(points_rules, defaults_are_valid_and_switch_everything_off) {
    /* Goal: an unconfigured merchant earns nothing, cannot redeem, and the defaults validate. */
    Loyalty__V1__PointsSettings d = LOYALTY__V1__POINTS_SETTINGS__INIT;
    points_rules_default_settings(&d);
    cr_assert_eq(points_rules_check_settings(&d).code, STATUS_OK);
    cr_assert_str_eq(d.time_zone, "UTC");
    s = d;
    Loyalty__V1__PointsEarnBreakdown b = earn(123456, 0, 0);
    cr_assert_eq(b.points, 0);
    cr_assert_eq(b.growth, 0);
    points_redeem_quote_t q;
    points_rules_quote_redeem(&d, 1000, 10000, &q);
    cr_assert_eq(q.points, 0);
    cr_assert_str_eq(q.reason, "REDEMPTION_DISABLED");
    int64_t day;
    cr_assert(!points_rules_expiry_day(&d, 20000, &day), "NEVER has no expiry day");
}

Test(points_rules, settings_validation_names_each_field) {
    /* Goal: every bound of the settings is enforced at max and max+1 and names the field. */
    cr_assert_eq(points_rules_check_settings(&s).code, STATUS_OK);
    struct {
        int64_t *field;
        int64_t ok, bad;
        const char *reason;
    } cases[] = {
        {&s.earn_unit_cents, 100000000, 100000001, "INVALID_SETTINGS_EARN_UNIT_CENTS"},
        {&s.earn_unit_cents, 1, 0, "INVALID_SETTINGS_EARN_UNIT_CENTS"},
        {&s.earn_points_per_unit, 1000000, 1000001, "INVALID_SETTINGS_EARN_POINTS_PER_UNIT"},
        {&s.earn_points_per_unit, 0, -1, "INVALID_SETTINGS_EARN_POINTS_PER_UNIT"},
        {&s.redeem_max_order_share_bps, 10000, 10001,
         "INVALID_SETTINGS_REDEEM_MAX_ORDER_SHARE_BPS"},
        {&s.redeem_min_points, 1000000000000, 1000000000001, "INVALID_SETTINGS_REDEEM_MIN_POINTS"},
        {&s.growth_per_point_bps, 1000000, 1000001, "INVALID_SETTINGS_GROWTH_PER_POINT_BPS"},
        {&s.growth_per_unit, 1000000, 1000001, "INVALID_SETTINGS_GROWTH_PER_UNIT"},
        {&s.redeem_points, 100000000, 100000001, "INVALID_SETTINGS_REDEEM_POINTS"},
        {&s.redeem_value_cents, 100000000, 0, "INVALID_SETTINGS_REDEEM_VALUE_CENTS"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t keep = *cases[i].field;
        *cases[i].field = cases[i].ok;
        cr_assert_eq(points_rules_check_settings(&s).code, STATUS_OK, "case %zu ok", i);
        *cases[i].field = cases[i].bad;
        status_t st = points_rules_check_settings(&s);
        cr_assert_eq(st.code, STATUS_INVALID_ARGUMENT, "case %zu bad", i);
        cr_assert_str_eq(st.reason, cases[i].reason);
        *cases[i].field = keep;
    }
    s.redeem_points = 0;
    s.redeem_value_cents = 0; /* both 0: redemption off, valid */
    cr_assert_eq(points_rules_check_settings(&s).code, STATUS_OK);
    s.pending_days = 365;
    cr_assert_eq(points_rules_check_settings(&s).code, STATUS_OK);
    s.pending_days = 366;
    cr_assert_str_eq(points_rules_check_settings(&s).reason, "INVALID_SETTINGS_PENDING_DAYS");
    s.pending_days = 0;
    s.time_zone = "Europe/Berlin";
    cr_assert_eq(points_rules_check_settings(&s).code, STATUS_OK);
    s.time_zone = "Europe/Berlin; DROP";
    cr_assert_str_eq(points_rules_check_settings(&s).reason, "INVALID_SETTINGS_TIME_ZONE");
    s.time_zone = "";
    cr_assert_str_eq(points_rules_check_settings(&s).reason, "INVALID_SETTINGS_TIME_ZONE");
    s.time_zone = "UTC";
    s.expiry_policy = LOYALTY__V1__POINTS_EXPIRY_POLICY__POINTS_EXPIRY_POLICY_UNSPECIFIED;
    cr_assert_str_eq(points_rules_check_settings(&s).reason, "INVALID_SETTINGS_EXPIRY_POLICY");
    s.expiry_policy = LOYALTY__V1__POINTS_EXPIRY_POLICY__POINTS_EXPIRY_POLICY_DAYS_AFTER_EARN;
    s.expiry_days = 0;
    cr_assert_str_eq(points_rules_check_settings(&s).reason, "INVALID_SETTINGS_EXPIRY_DAYS");
    s.expiry_days = 3650;
    cr_assert_eq(points_rules_check_settings(&s).code, STATUS_OK);
    s.expiry_days = 3651;
    cr_assert_str_eq(points_rules_check_settings(&s).reason, "INVALID_SETTINGS_EXPIRY_DAYS");
    s.expiry_policy = LOYALTY__V1__POINTS_EXPIRY_POLICY__POINTS_EXPIRY_POLICY_END_OF_MONTH;
    s.expiry_months = 120;
    cr_assert_eq(points_rules_check_settings(&s).code, STATUS_OK);
    s.expiry_months = 121;
    cr_assert_str_eq(points_rules_check_settings(&s).reason, "INVALID_SETTINGS_EXPIRY_MONTHS");
    s.expiry_months = 0;
    checkin_rule.kind = LOYALTY__V1__POINTS_EVENT_KIND__POINTS_EVENT_KIND_ORDER;
    cr_assert_str_eq(points_rules_check_settings(&s).reason, "INVALID_SETTINGS_EVENT_RULES_KIND",
                     "a kind listed twice");
    checkin_rule.kind = 9;
    cr_assert_str_eq(points_rules_check_settings(&s).reason, "INVALID_SETTINGS_EVENT_RULES_KIND");
    checkin_rule.kind = LOYALTY__V1__POINTS_EVENT_KIND__POINTS_EVENT_KIND_CHECK_IN;
    checkin_rule.points = 1000001;
    cr_assert_str_eq(points_rules_check_settings(&s).reason, "INVALID_SETTINGS_EVENT_RULES_POINTS");
    cr_assert_str_eq(points_rules_check_settings(NULL).reason, "INVALID_SETTINGS");
}

Test(points_rules, spend_points_floor_on_whole_units_paid) {
    /* Goal: points are earned per whole currency unit paid: 1 point per 1.00 gives 12 points
     * for 12.99, 13 for 13.00, 12 for 12.00 and 11 for 11.99. */
    cr_assert_eq(earn(1299, 0, 0).points, 12);
    cr_assert_eq(earn(1300, 0, 0).points, 13);
    cr_assert_eq(earn(1200, 0, 0).points, 12);
    cr_assert_eq(earn(1199, 0, 0).points, 11);
    cr_assert_eq(earn(99, 0, 0).points, 0, "below one unit earns nothing");
    cr_assert_eq(earn(100, 0, 0).points, 1);
    cr_assert_eq(earn(0, 0, 0).points, 0);
    /* 5 points per 1.00: the floor is on the amount, not on the points (12.99 -> 60, not 64). */
    s.earn_points_per_unit = 5;
    Loyalty__V1__PointsEarnBreakdown b = earn(1299, 0, 0);
    cr_assert_eq(b.units, 12);
    cr_assert_eq(b.base_points, 60);
    cr_assert_eq(b.points, 60);
    /* A unit of 0.10. */
    s.earn_unit_cents = 10;
    s.earn_points_per_unit = 1;
    cr_assert_eq(earn(1299, 0, 0).points, 129);
}

Test(points_rules, multipliers_floor_once_on_the_product) {
    /* Goal: tier and campaign multipliers multiply the base and are floored once, on the
     * product (7 * 1.5 * 1.5 = 15.75 -> 15); every factor is shown. */
    Loyalty__V1__PointsEarnBreakdown b = earn(700, 15000, 15000);
    cr_assert_eq(b.base_points, 7);
    cr_assert_eq(b.tier_multiplier_bps, 15000);
    cr_assert_eq(b.campaign_multiplier_bps, 15000);
    cr_assert_eq(b.multiplied_points, 15); /* 15.75 */
    /* Product exactly at an integer: 4 * 1.25 * 2 = 10. */
    cr_assert_eq(earn(400, 12500, 20000).multiplied_points, 10);
    /* One below: 399 cents = 3 units: 3 * 2.5 = 7.5 -> 7. */
    cr_assert_eq(earn(399, 12500, 20000).multiplied_points, 7);
    /* Where flooring each step would differ: 5 * 1.1 * 1.1 = 6.05 -> 6, while stepwise
     * 5.5 -> 5, 5 * 1.1 = 5.5 -> 5. */
    cr_assert_eq(earn(500, 11000, 11000).multiplied_points, 6);
    /* 0 tier multiplier means none. */
    b = earn(1000, 0, 0);
    cr_assert_eq(b.tier_multiplier_bps, 10000);
    cr_assert_eq(b.campaign_multiplier_bps, 10000);
    cr_assert_eq(b.points, 10);
    /* Below 1x is possible for a tier (e.g. 0.5x): 3 * 0.5 = 1.5 -> 1. */
    cr_assert_eq(earn(300, 5000, 0).points, 1);
}

Test(points_rules, order_bonus_is_added_after_multipliers) {
    /* Goal: the ORDER event bonus is added to the multiplied spend points, never multiplied;
     * growth counts every point plus per-unit growth. */
    order_rule.points = 100;
    s.growth_per_point_bps = 5000; /* 0.5 growth per point */
    s.growth_per_unit = 2;
    Loyalty__V1__PointsEarnBreakdown b = earn(1099, 20000, 20000);
    cr_assert_eq(b.units, 10);
    cr_assert_eq(b.multiplied_points, 40);
    cr_assert_eq(b.event_points, 100);
    cr_assert_eq(b.points, 140);
    cr_assert_eq(b.growth_from_points, 70);
    cr_assert_eq(b.growth_from_spend, 20);
    cr_assert_eq(b.growth, 90);
    /* Growth per point floors: 141 points * 0.5 = 70.5 -> 70; 1 more point -> 71. */
    cr_assert_eq(earn(1100, 0, 0).growth_from_points, (11 + 100) / 2);
    b = earn(1200, 0, 0);
    cr_assert_eq(b.points, 112);
    cr_assert_eq(b.growth_from_points, 56);
    b = earn(1300, 0, 0);
    cr_assert_eq(b.points, 113);
    cr_assert_eq(b.growth_from_points, 56, "56.5 floors to 56");
}

Test(points_rules, earn_overflow_is_out_of_range) {
    /* Goal: amounts that would earn more than 10^12 points are refused, never wrapped. */
    s.earn_unit_cents = 1;
    s.earn_points_per_unit = 1000000;
    Loyalty__V1__PointsOrderAmounts o = LOYALTY__V1__POINTS_ORDER_AMOUNTS__INIT;
    o.paid_cents = 1000000; /* 10^6 units * 10^6 = 10^12: exactly the maximum */
    Loyalty__V1__PointsEarnBreakdown b = LOYALTY__V1__POINTS_EARN_BREAKDOWN__INIT;
    cr_assert_eq(points_rules_earn_order(&s, &o, 0, "", &b).code, STATUS_OK);
    cr_assert_eq(b.points, 1000000000000);
    o.paid_cents = 1000001;
    status_t st = points_rules_earn_order(&s, &o, 0, "", &b);
    cr_assert_eq(st.code, STATUS_OUT_OF_RANGE);
    cr_assert_str_eq(st.reason, "AMOUNT_OVERFLOW");
    o.paid_cents = POINTS_CENTS_MAX;
    o.tier_multiplier_bps = POINTS_MULTIPLIER_BPS_MAX;
    st = points_rules_earn_order(&s, &o, POINTS_MULTIPLIER_BPS_MAX, "", &b);
    cr_assert_eq(st.code, STATUS_OUT_OF_RANGE, "10^13 * 10^6 * 100 overflows int64 safely");
}

Test(points_rules, order_amounts_are_validated) {
    /* Goal: order fields are bounded and named. */
    Loyalty__V1__PointsOrderAmounts o = LOYALTY__V1__POINTS_ORDER_AMOUNTS__INIT;
    o.paid_cents = POINTS_CENTS_MAX;
    o.tier_multiplier_bps = POINTS_MULTIPLIER_BPS_MAX;
    cr_assert_eq(points_rules_check_order("order", &o).code, STATUS_OK);
    o.paid_cents = POINTS_CENTS_MAX + 1;
    cr_assert_str_eq(points_rules_check_order("order", &o).reason, "INVALID_ORDER_PAID_CENTS");
    o.paid_cents = -1;
    cr_assert_str_eq(points_rules_check_order("order", &o).reason, "INVALID_ORDER_PAID_CENTS");
    o.paid_cents = 0;
    o.tier_multiplier_bps = POINTS_MULTIPLIER_BPS_MAX + 1;
    cr_assert_str_eq(points_rules_check_order("order", &o).reason,
                     "INVALID_ORDER_TIER_MULTIPLIER_BPS");
    o.tier_multiplier_bps = 0;
    o.tier_id = "gold tier";
    cr_assert_str_eq(points_rules_check_order("order", &o).reason, "INVALID_ORDER_TIER_ID");
}

Test(points_rules, events_earn_fixed_points_with_growth) {
    /* Goal: events earn their fixed points (0 without a rule) and growth per point. */
    Loyalty__V1__PointsEarnBreakdown b = LOYALTY__V1__POINTS_EARN_BREAKDOWN__INIT;
    points_rules_earn_event(&s, LOYALTY__V1__POINTS_EVENT_KIND__POINTS_EVENT_KIND_CHECK_IN, &b);
    cr_assert_eq(b.points, 5);
    cr_assert_eq(b.event_points, 5);
    cr_assert_eq(b.growth, 5);
    Loyalty__V1__PointsEarnBreakdown none = LOYALTY__V1__POINTS_EARN_BREAKDOWN__INIT;
    points_rules_earn_event(&s, LOYALTY__V1__POINTS_EVENT_KIND__POINTS_EVENT_KIND_BIRTHDAY, &none);
    cr_assert_eq(none.points, 0);
    cr_assert_eq(none.growth, 0);
}

Test(points_rules, highest_campaign_wins_and_tiers_filter) {
    /* Goal: overlapping campaigns do not compound: the highest multiplier applies; windows
     * are inclusive; tier lists and inactive campaigns are honoured. */
    char *gold[] = {"gold"};
    points_campaign_window_t c[] = {
        {"double", 20000, day_of("2026-12-01"), day_of("2026-12-07"), NULL, 0, true},
        {"triple-gold", 30000, day_of("2026-12-05"), day_of("2026-12-05"), gold, 1, true},
        {"ended", 50000, day_of("2026-12-01"), day_of("2026-12-31"), NULL, 0, false},
        {"also-double", 20000, day_of("2026-12-01"), day_of("2026-12-07"), NULL, 0, true},
    };
    cr_assert_eq(points_rules_pick_campaign(c, 4, "", day_of("2026-11-30")), -1, "one before");
    cr_assert_eq(points_rules_pick_campaign(c, 4, "", day_of("2026-12-01")), 0, "first day");
    cr_assert_eq(points_rules_pick_campaign(c, 4, "", day_of("2026-12-07")), 0, "last day");
    cr_assert_eq(points_rules_pick_campaign(c, 4, "", day_of("2026-12-08")), -1, "one after");
    cr_assert_eq(points_rules_pick_campaign(c, 4, "gold", day_of("2026-12-05")), 1);
    cr_assert_eq(points_rules_pick_campaign(c, 4, "silver", day_of("2026-12-05")), 0);
    cr_assert_eq(points_rules_pick_campaign(c, 4, "", day_of("2026-12-05")), 0,
                 "no tier: tier-limited campaigns do not apply");
    cr_assert_eq(points_rules_pick_campaign(c, 0, "", day_of("2026-12-05")), -1);
}

Test(points_rules, campaigns_are_validated) {
    /* Goal: a campaign needs a name, a multiplier above 1x up to 10x, ordered dates and few
     * valid tiers. */
    Loyalty__V1__PointsCampaign c = LOYALTY__V1__POINTS_CAMPAIGN__INIT;
    c.name = "Double December";
    c.multiplier_bps = 20000;
    c.start_date = "2026-12-01";
    c.end_date = "2026-12-07";
    int64_t a = 0, b = 0;
    cr_assert_eq(points_rules_check_campaign(&c, &a, &b).code, STATUS_OK);
    cr_assert_eq(b - a, 6);
    c.multiplier_bps = 10000;
    cr_assert_str_eq(points_rules_check_campaign(&c, &a, &b).reason,
                     "INVALID_CAMPAIGN_MULTIPLIER_BPS");
    c.multiplier_bps = 100001;
    cr_assert_str_eq(points_rules_check_campaign(&c, &a, &b).reason,
                     "INVALID_CAMPAIGN_MULTIPLIER_BPS");
    c.multiplier_bps = 100000;
    c.end_date = "2026-11-30";
    cr_assert_str_eq(points_rules_check_campaign(&c, &a, &b).reason, "INVALID_CAMPAIGN_END_DATE");
    c.end_date = "2026-12-01";
    cr_assert_eq(points_rules_check_campaign(&c, &a, &b).code, STATUS_OK, "one-day window");
    c.start_date = "2026-13-01";
    cr_assert_str_eq(points_rules_check_campaign(&c, &a, &b).reason, "INVALID_CAMPAIGN_START_DATE");
    c.start_date = "2026-12-01";
    c.name = "";
    cr_assert_str_eq(points_rules_check_campaign(&c, &a, &b).reason, "INVALID_CAMPAIGN_NAME");
    c.name = "ok";
    char *tiers[11];
    for (int i = 0; i < 11; i++) {
        tiers[i] = "t";
    }
    c.tier_ids = tiers;
    c.n_tier_ids = 10;
    cr_assert_eq(points_rules_check_campaign(&c, &a, &b).code, STATUS_OK);
    c.n_tier_ids = 11;
    cr_assert_str_eq(points_rules_check_campaign(&c, &a, &b).reason, "INVALID_CAMPAIGN_TIER_IDS");
}

Test(points_rules, expiry_days_after_earn) {
    /* Goal: DAYS_AFTER_EARN keeps points through the local day N days after they became
     * available. */
    s.expiry_policy = LOYALTY__V1__POINTS_EXPIRY_POLICY__POINTS_EXPIRY_POLICY_DAYS_AFTER_EARN;
    s.expiry_days = 30;
    int64_t day = 0;
    cr_assert(points_rules_expiry_day(&s, day_of("2026-01-31"), &day));
    cr_assert_str_eq(fmt_day(day), "2026-03-02");
    s.expiry_days = 1;
    cr_assert(points_rules_expiry_day(&s, day_of("2028-02-28"), &day));
    cr_assert_str_eq(fmt_day(day), "2028-02-29", "leap day");
}

Test(points_rules, expiry_end_of_month_after_n_months) {
    /* Goal: END_OF_MONTH expires on the last day of the month N months later (0 = same month),
     * across year ends, short months and leap years. */
    s.expiry_policy = LOYALTY__V1__POINTS_EXPIRY_POLICY__POINTS_EXPIRY_POLICY_END_OF_MONTH;
    struct {
        const char *from;
        int months;
        const char *want;
    } cases[] = {
        {"2026-01-01", 0, "2026-01-31"},  {"2026-01-31", 0, "2026-01-31"},
        {"2026-01-15", 1, "2026-02-28"},  {"2027-12-31", 2, "2028-02-29"},
        {"2026-11-30", 1, "2026-12-31"},  {"2026-12-01", 1, "2027-01-31"},
        {"2026-03-10", 12, "2027-03-31"}, {"2026-03-10", 120, "2036-03-31"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s.expiry_months = cases[i].months;
        int64_t day = 0;
        cr_assert(points_rules_expiry_day(&s, day_of(cases[i].from), &day));
        cr_assert_str_eq(fmt_day(day), cases[i].want, "case %zu", i);
    }
}

Test(points_rules, expiry_end_of_year_after_n_months) {
    /* Goal: END_OF_YEAR expires on Dec 31 of the year containing the day + N months. */
    s.expiry_policy = LOYALTY__V1__POINTS_EXPIRY_POLICY__POINTS_EXPIRY_POLICY_END_OF_YEAR;
    struct {
        const char *from;
        int months;
        const char *want;
    } cases[] = {
        {"2026-01-01", 0, "2026-12-31"}, {"2026-12-31", 0, "2026-12-31"},
        {"2026-12-31", 1, "2027-12-31"}, {"2026-06-30", 6, "2026-12-31"},
        {"2026-07-01", 6, "2027-12-31"}, {"2026-03-05", 12, "2027-12-31"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s.expiry_months = cases[i].months;
        int64_t day = 0;
        cr_assert(points_rules_expiry_day(&s, day_of(cases[i].from), &day));
        cr_assert_str_eq(fmt_day(day), cases[i].want, "case %zu", i);
    }
}

Test(points_rules, cash_value_floors_points_to_cents) {
    /* Goal: value = floor(points * value_cents / points_rate): with 1000 points = 1.00
     * (10 points a cent) 19 points are worth 1 cent, 20 are worth 2, 9 are worth nothing. */
    s.redeem_points = 1000;
    s.redeem_value_cents = 100;
    cr_assert_eq(points_rules_cash_value(&s, 19), 1);
    cr_assert_eq(points_rules_cash_value(&s, 20), 2);
    cr_assert_eq(points_rules_cash_value(&s, 21), 2);
    cr_assert_eq(points_rules_cash_value(&s, 9), 0);
    cr_assert_eq(points_rules_cash_value(&s, 10), 1);
    cr_assert_eq(points_rules_cash_value(&s, 0), 0);
    cr_assert_eq(points_rules_cash_value(&s, -10), 0);
    /* 3 points = 0.10: 1 point = 3.33 cents -> 3; 2 -> 6; 3 -> 10. */
    s.redeem_points = 3;
    s.redeem_value_cents = 10;
    cr_assert_eq(points_rules_cash_value(&s, 1), 3);
    cr_assert_eq(points_rules_cash_value(&s, 2), 6);
    cr_assert_eq(points_rules_cash_value(&s, 3), 10);
    s.redeem_points = 0;
    s.redeem_value_cents = 0;
    cr_assert_eq(points_rules_cash_value(&s, 1000), 0, "off");
}

static points_redeem_quote_t quote(int64_t available, int64_t total) {
    points_redeem_quote_t q;
    points_rules_quote_redeem(&s, available, total, &q);
    return q;
}

Test(points_rules, quote_redeem_caps_by_order_share_and_balance) {
    /* Goal: the quote uses all points up to the order-share cap (floor), never more than the
     * balance, and reports why it is 0. 100 points = 1.00, min 100, at most 50%. */
    points_redeem_quote_t q = quote(10000, 10000); /* cap 50.00, balance worth 100.00 */
    cr_assert_eq(q.max_cash_cents, 5000);
    cr_assert_eq(q.points, 5000);
    cr_assert_eq(q.cash_value_cents, 5000);
    q = quote(10000, 10001); /* cap floor(5000.5) = 5000 */
    cr_assert_eq(q.max_cash_cents, 5000);
    cr_assert_eq(q.points, 5000);
    q = quote(10000, 10002);
    cr_assert_eq(q.points, 5001);
    q = quote(1234, 10000); /* the balance binds */
    cr_assert_eq(q.points, 1234);
    cr_assert_eq(q.cash_value_cents, 1234);
    cr_assert_str_eq(q.reason, "");
    q = quote(100, 10000); /* exactly the minimum */
    cr_assert_eq(q.points, 100);
    q = quote(99, 10000); /* one below the minimum */
    cr_assert_eq(q.points, 0);
    cr_assert_str_eq(q.reason, "BELOW_MINIMUM_REDEMPTION");
    q = quote(5000, 199); /* cap 99 cents < the 100-point minimum */
    cr_assert_eq(q.points, 0);
    cr_assert_str_eq(q.reason, "BELOW_MINIMUM_REDEMPTION");
    q = quote(5000, 200); /* cap 100 cents = 100 points: the minimum, reachable */
    cr_assert_eq(q.points, 100);
    q = quote(5000, 1);
    cr_assert_str_eq(q.reason, "ORDER_TOO_SMALL");
    q = quote(0, 10000);
    cr_assert_str_eq(q.reason, "NO_POINTS");
    q = quote(-50, 10000);
    cr_assert_str_eq(q.reason, "NO_POINTS", "a negative balance redeems nothing");
}

Test(points_rules, redemption_choice_caps_by_order_share_only) {
    /* Goal: a checkout's explicit request is capped by the order share only (the balance is
     * no cap: the hold refuses INSUFFICIENT_POINTS); use_max takes the quote as it is; nothing
     * is held with the quote's reason when even the cap is worth nothing. 100 points = 1.00,
     * min 100, at most 50% of the order. */
    points_redemption_choice_t c = points_rules_choose_redemption(&s, 200, 1000, 300, false);
    cr_assert_eq(c.points, 300, "the balance (200) is not a cap");
    cr_assert_str_eq(c.note, "");
    c = points_rules_choose_redemption(&s, 200, 1000, 500, false);
    cr_assert_eq(c.points, 500, "exactly at the cap (5.00 of 10.00)");
    c = points_rules_choose_redemption(&s, 200, 1000, 501, false);
    cr_assert_eq(c.points, 500, "one above the cap");
    cr_assert_str_eq(c.note, "CAPPED_BY_ORDER_SHARE");
    c = points_rules_choose_redemption(&s, 5000, 1, 100, false);
    cr_assert_eq(c.points, 0);
    cr_assert_str_eq(c.note, "ORDER_TOO_SMALL");
    c = points_rules_choose_redemption(&s, 200, 1000, 0, true);
    cr_assert_eq(c.points, 200, "use_max takes the quote");
    c = points_rules_choose_redemption(&s, 0, 1000, 0, true);
    cr_assert_eq(c.points, 0);
    cr_assert_str_eq(c.note, "NO_POINTS");
    c = points_rules_choose_redemption(&s, 200, 1000, 0, false);
    cr_assert_eq(c.points, 0, "nothing asked");
    s.redeem_points = 0;
    s.redeem_value_cents = 0;
    c = points_rules_choose_redemption(&s, 200, 1000, 100, false);
    cr_assert_eq(c.points, 100, "redemption off: the hold refuses it and says why");
}

Test(points_rules, redemption_cap_is_the_fewest_points_of_the_most_cash) {
    /* Goal: against the definition, on small rates: a request above the share is held as the
     * fewest points whose value is the largest value within the share (0 when no point is
     * worth that little). */
    s.redeem_min_points = 0;
    for (int64_t rp = 1; rp <= 7; rp++) {
        for (int64_t rv = 1; rv <= 7; rv++) {
            s.redeem_points = rp;
            s.redeem_value_cents = rv;
            for (int64_t total = 0; total <= 80; total++) {
                points_redeem_quote_t q = quote(1000000, total);
                int64_t best_v = -1, best_p = 0;
                for (int64_t p = 0; p <= 400; p++) {
                    int64_t v = points_rules_cash_value(&s, p);
                    if (v <= q.max_cash_cents && v > best_v) {
                        best_v = v;
                        best_p = p;
                    }
                }
                points_redemption_choice_t c =
                    points_rules_choose_redemption(&s, 1000000, total, 100000, false);
                cr_assert_eq(c.points, best_v > 0 ? best_p : 0, "rp %lld rv %lld total %lld",
                             (long long)rp, (long long)rv, (long long)total);
            }
        }
    }
}

Test(points_rules, quote_redeem_wastes_no_points_on_fractions) {
    /* Goal: with 10 points per cent, a balance of 1005 points quotes 1000 points (1.00), not
     * 1005 for the same 1.00; with a point worth 3.33 cents the cap is never passed. */
    s.redeem_points = 1000;
    s.redeem_value_cents = 100;
    s.redeem_min_points = 0;
    s.redeem_max_order_share_bps = 10000;
    points_redeem_quote_t q = quote(1005, 100000);
    cr_assert_eq(q.points, 1000);
    cr_assert_eq(q.cash_value_cents, 100);
    q = quote(1009, 100000);
    cr_assert_eq(q.points, 1000);
    q = quote(1010, 100000);
    cr_assert_eq(q.points, 1010);
    cr_assert_eq(q.cash_value_cents, 101);
    q = quote(9, 100000);
    cr_assert_eq(q.points, 0);
    cr_assert_str_eq(q.reason, "NO_POINTS", "not a cent's worth");
    /* The minimum may force a few wasted points when the cap allows it: min 1005, cap 1.00. */
    s.redeem_min_points = 1005;
    q = quote(5000, 100);
    cr_assert_eq(q.points, 1005);
    cr_assert_eq(q.cash_value_cents, 100);
    s.redeem_min_points = 1010; /* 1010 points are worth 1.01 > cap */
    q = quote(5000, 100);
    cr_assert_str_eq(q.reason, "BELOW_MINIMUM_REDEMPTION");
    /* 3 points = 0.10: cap 0.12 -> 3 points (0.10); 4 points would be 0.13 > cap. */
    s.redeem_points = 3;
    s.redeem_value_cents = 10;
    s.redeem_min_points = 0;
    q = quote(100, 12);
    cr_assert_eq(q.points, 3);
    cr_assert_eq(q.cash_value_cents, 10);
    q = quote(100, 13);
    cr_assert_eq(q.points, 4);
    cr_assert_eq(q.cash_value_cents, 13);
}

Test(points_rules, hold_redemption_checks) {
    /* Goal: a hold for an order obeys the rules: minimum (at / one below), order share cap
     * (at / one above), and redemption must be on. */
    cr_assert_eq(points_rules_check_redemption(&s, 100, 10000).code, STATUS_OK);
    cr_assert_str_eq(points_rules_check_redemption(&s, 99, 10000).reason,
                     "BELOW_MINIMUM_REDEMPTION");
    cr_assert_eq(points_rules_check_redemption(&s, 5000, 10000).code, STATUS_OK);
    status_t st = points_rules_check_redemption(&s, 5001, 10000);
    cr_assert_eq(st.code, STATUS_FAILED_PRECONDITION);
    cr_assert_str_eq(st.reason, "EXCEEDS_ORDER_SHARE");
    s.redeem_points = 0;
    s.redeem_value_cents = 0;
    cr_assert_str_eq(points_rules_check_redemption(&s, 100, 10000).reason, "REDEMPTION_DISABLED");
}

Test(points_rules, hold_ttl_bounds) {
    /* Goal: 0 means the default; 1 and the maximum are accepted, 0-1 and max+1 refused. */
    int64_t ttl = 0;
    cr_assert_eq(points_rules_hold_ttl(0, &ttl).code, STATUS_OK);
    cr_assert_eq(ttl, POINTS_HOLD_TTL_DEFAULT_S);
    cr_assert_eq(points_rules_hold_ttl(1, &ttl).code, STATUS_OK);
    cr_assert_eq(ttl, 1);
    cr_assert_eq(points_rules_hold_ttl(POINTS_HOLD_TTL_MAX_S, &ttl).code, STATUS_OK);
    cr_assert_str_eq(points_rules_hold_ttl(POINTS_HOLD_TTL_MAX_S + 1, &ttl).reason,
                     "INVALID_TTL_S");
    cr_assert_str_eq(points_rules_hold_ttl(-1, &ttl).reason, "INVALID_TTL_S");
}

Test(points_rules, partial_reversals_never_pass_the_whole) {
    /* Goal: cumulative shares: 33% + 33% + 34% of 100 points claws back 33 + 33 + 34; of 10
     * points 3 + 3 + 4 (floor of the cumulative target, never more than the total); more than
     * 100% in total is refused. */
    int64_t after = 0;
    cr_assert_eq(points_rules_reversal_bps(0, 3300, &after).code, STATUS_OK);
    cr_assert_eq(after, 3300);
    int64_t done = 0, a1 = points_rules_reversal_amount(10, after, done);
    cr_assert_eq(a1, 3);
    done += a1;
    cr_assert_eq(points_rules_reversal_bps(after, 3300, &after).code, STATUS_OK);
    int64_t a2 = points_rules_reversal_amount(10, after, done);
    cr_assert_eq(a2, 3); /* floor(6.6) - 3 */
    done += a2;
    cr_assert_eq(points_rules_reversal_bps(after, 3400, &after).code, STATUS_OK);
    cr_assert_eq(after, 10000);
    int64_t a3 = points_rules_reversal_amount(10, after, done);
    cr_assert_eq(a3, 4);
    cr_assert_eq(done + a3, 10, "the parts sum to the whole");
    status_t st = points_rules_reversal_bps(after, 1, &after);
    cr_assert_eq(st.code, STATUS_FAILED_PRECONDITION);
    cr_assert_str_eq(st.reason, "REVERSAL_EXCEEDS_ORDER");
    cr_assert_str_eq(points_rules_reversal_bps(0, 0, &after).reason, "INVALID_SHARE_BPS");
    cr_assert_str_eq(points_rules_reversal_bps(0, 10001, &after).reason, "INVALID_SHARE_BPS");
    cr_assert_eq(points_rules_reversal_bps(0, 10000, &after).code, STATUS_OK);
    cr_assert_eq(points_rules_reversal_bps(9999, 1, &after).code, STATUS_OK);
    cr_assert_eq(points_rules_reversal_bps(9999, 2, &after).code, STATUS_FAILED_PRECONDITION);
    /* Floors: 1 bps of 9999 points is 0.9999 -> 0; of 10000 exactly 1; of 10001 1. */
    cr_assert_eq(points_rules_reversal_amount(9999, 1, 0), 0);
    cr_assert_eq(points_rules_reversal_amount(10000, 1, 0), 1);
    cr_assert_eq(points_rules_reversal_amount(10001, 1, 0), 1);
    cr_assert_eq(points_rules_reversal_amount(0, 10000, 0), 0);
}

Test(points_rules, take_in_order_fills_soonest_first) {
    /* Goal: FIFO allocation empties lots in order and stops at the need. */
    int64_t rem[] = {30, 50, 20};
    int64_t take[3];
    cr_assert_eq(points_rules_take_in_order(rem, 3, 60, take), 60);
    cr_assert_eq(take[0], 30);
    cr_assert_eq(take[1], 30);
    cr_assert_eq(take[2], 0);
    cr_assert_eq(points_rules_take_in_order(rem, 3, 100, take), 100);
    cr_assert_eq(take[2], 20);
    cr_assert_eq(points_rules_take_in_order(rem, 3, 101, take), 100, "short by one");
    cr_assert_eq(points_rules_take_in_order(rem, 3, 30, take), 30);
    cr_assert_eq(take[1], 0, "exactly the first lot");
}

Test(points_rules, check_in_streaks) {
    /* Goal: consecutive days extend the streak; a gap or the first check-in starts at 1. */
    int64_t d = day_of("2026-03-01");
    cr_assert_eq(points_rules_streak(false, 0, 0, d), 1);
    cr_assert_eq(points_rules_streak(true, d - 1, 4, d), 5);
    cr_assert_eq(points_rules_streak(true, d - 2, 4, d), 1);
    cr_assert_eq(points_rules_streak(true, d, 4, d), 1, "same day is not a continuation");
}

Test(points_rules, days_format_and_parse_round_trip) {
    /* Goal: local dates travel as days since 1970 and back. */
    cr_assert_eq(day_of("1970-01-01"), 0);
    cr_assert_str_eq(fmt_day(day_of("2026-02-28") + 1), "2026-03-01");
    cr_assert_str_eq(fmt_day(day_of("2028-02-28") + 1), "2028-02-29");
    int64_t d;
    cr_assert_str_eq(points_rules_parse_day("expiry_date", "2026-02-30", &d).reason,
                     "INVALID_EXPIRY_DATE");
}

Test(points_rules, local_clock_from_a_cached_day) {
    /* Goal: a cached local day answers only what needs no time-zone rules: an instant inside it
     * (first second in, last second in, the next day's first second out), a 24-hour day (never
     * a daylight-saving day of 23 or 25 hours), and no days added. */
    points_local_day_t d = {.day = 20000, .start_at_s = 1728000000, .end_at_s = 1728086400};
    points_local_clock_t c;
    cr_assert(points_rules_clock_in_day(&d, d.start_at_s, 0, &c));
    cr_assert_eq(c.day, 20000);
    cr_assert_eq(c.later_at_s, d.start_at_s);
    cr_assert_eq(c.later_day, 20000);
    cr_assert(points_rules_clock_in_day(&d, d.end_at_s - 1, 0, &c));
    cr_assert_eq(c.later_at_s, d.end_at_s - 1);
    cr_assert_not(points_rules_clock_in_day(&d, d.end_at_s, 0, &c));
    cr_assert_not(points_rules_clock_in_day(&d, d.start_at_s - 1, 0, &c));
    cr_assert_not(points_rules_clock_in_day(&d, d.start_at_s + 10, 7, &c), "pending windows");
    points_local_day_t dst = {.day = 20001, .start_at_s = 1728086400, .end_at_s = 1728169200};
    cr_assert_not(points_rules_clock_in_day(&dst, dst.start_at_s + 10, 0, &c), "a 23-hour day");
    dst.end_at_s = dst.start_at_s + 90000;
    cr_assert_not(points_rules_clock_in_day(&dst, dst.start_at_s + 10, 0, &c), "a 25-hour day");
}
