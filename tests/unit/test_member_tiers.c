/* test_member_tiers.c -- unit tests of the tier engine (member_tiers.h): ladder checks, upgrades
 * (exactly at a threshold, one below, several levels at once, express), period ends (renewal vs
 * downgrade, at and one below the retain threshold, carry-over arithmetic, catch-up), returns
 * that cross a threshold back, month arithmetic, cards and the effective tier. */
#include "member_tiers.h"
#include "validate.h"

#include <criterion/criterion.h>

#include <string.h>

/* Silver 1000/800, Gold 5000/4000 (express 3000), Platinum 20000/15000 (express 10000), all
 * with 12-month periods. Levels: 1 Silver, 2 Gold, 3 Platinum. */
static member_ladder_t ladder(void) {
    member_ladder_t l = {.n = 3};
    l.tiers[0] = (member_tier_rule_t){.rank = 1,
                                      .upgrade_threshold = 1000,
                                      .retain_threshold = 800,
                                      .period_months = 12,
                                      .ref = 0};
    l.tiers[1] = (member_tier_rule_t){.rank = 2,
                                      .upgrade_threshold = 5000,
                                      .retain_threshold = 4000,
                                      .period_months = 12,
                                      .express_spend_cents = 3000,
                                      .ref = 1};
    l.tiers[2] = (member_tier_rule_t){.rank = 3,
                                      .upgrade_threshold = 20000,
                                      .retain_threshold = 15000,
                                      .period_months = 12,
                                      .express_spend_cents = 10000,
                                      .ref = 2};
    return l;
}

static int64_t day(int y, int m, int d) {
    return date_days_from_civil(y, m, d);
}

static member_tier_state_t fresh(int64_t today) {
    return (member_tier_state_t){.period_start = today, .period_end = MEMBER_DAY_NONE};
}

/* ---- ladder ---- */

static Loyalty__V1__MemberTier valid_tier(void) {
    Loyalty__V1__MemberTier t = LOYALTY__V1__MEMBER_TIER__INIT;
    t.name = "Gold";
    t.rank = 2;
    t.upgrade_threshold = 5000;
    t.retain_threshold = 4000;
    t.period_months = 12;
    t.earn_multiplier_bps = 15000;
    t.discount_bps = 500;
    return t;
}

Test(member_tiers, tier_fields_are_range_checked_at_the_boundaries) {
    /* Goal: every field's limits, at the limit (accepted) and one beyond (refused by name). */
    Loyalty__V1__MemberTier t = valid_tier();
    cr_assert_eq(member_tier_check_fields("tier", &t).code, STATUS_OK);
#define CHECK(stmt_ok, stmt_bad, want)                                                             \
    do {                                                                                           \
        t = valid_tier();                                                                          \
        stmt_ok;                                                                                   \
        cr_assert_eq(member_tier_check_fields("tier", &t).code, STATUS_OK, #stmt_ok);              \
        t = valid_tier();                                                                          \
        stmt_bad;                                                                                  \
        cr_assert_str_eq(member_tier_check_fields("tier", &t).reason, want, #stmt_bad);            \
    } while (0)
    CHECK(t.rank = 10, t.rank = 11, "INVALID_TIER_RANK");
    CHECK(t.rank = 1, t.rank = 0, "INVALID_TIER_RANK");
    CHECK((t.upgrade_threshold = MEMBER_THRESHOLD_MAX),
          (t.upgrade_threshold = MEMBER_THRESHOLD_MAX + 1), "INVALID_TIER_UPGRADE_THRESHOLD");
    CHECK((t.upgrade_threshold = 0, t.retain_threshold = 0), t.upgrade_threshold = -1,
          "INVALID_TIER_UPGRADE_THRESHOLD");
    CHECK(t.retain_threshold = 5000, t.retain_threshold = 5001, "INVALID_TIER_RETAIN_THRESHOLD");
    CHECK(t.retain_threshold = 0, t.retain_threshold = -1, "INVALID_TIER_RETAIN_THRESHOLD");
    CHECK(t.period_months = 120, t.period_months = 121, "INVALID_TIER_PERIOD_MONTHS");
    CHECK(t.period_months = 0, t.period_months = -1, "INVALID_TIER_PERIOD_MONTHS");
    CHECK(t.express_spend_cents = MEMBER_THRESHOLD_MAX,
          t.express_spend_cents = MEMBER_THRESHOLD_MAX + 1, "INVALID_TIER_EXPRESS_SPEND_CENTS");
    CHECK(t.discount_bps = 10000, t.discount_bps = 10001, "INVALID_TIER_DISCOUNT_BPS");
    CHECK(t.discount_bps = 0, t.discount_bps = -1, "INVALID_TIER_DISCOUNT_BPS");
    CHECK(t.earn_multiplier_bps = 10000, t.earn_multiplier_bps = 9999,
          "INVALID_TIER_EARN_MULTIPLIER_BPS");
    CHECK(t.earn_multiplier_bps = 100000, t.earn_multiplier_bps = 100001,
          "INVALID_TIER_EARN_MULTIPLIER_BPS");
    CHECK(t.birthday_bonus_points = MEMBER_BIRTHDAY_POINTS_MAX,
          t.birthday_bonus_points = MEMBER_BIRTHDAY_POINTS_MAX + 1,
          "INVALID_TIER_BIRTHDAY_BONUS_POINTS");
    CHECK(t.name = "12345678901234567890123456789012345678901234567890",
          t.name = "123456789012345678901234567890123456789012345678901", "INVALID_TIER_NAME");
    CHECK(t.name = "G", t.name = "", "INVALID_TIER_NAME");
#undef CHECK
}

Test(member_tiers, a_consistent_ladder_passes_and_sorting_keeps_refs) {
    member_ladder_t l = ladder();
    member_tier_rule_t tmp = l.tiers[0];
    l.tiers[0] = l.tiers[2];
    l.tiers[2] = tmp;
    member_ladder_sort(&l);
    cr_assert_eq(l.tiers[0].rank, 1);
    cr_assert_eq(l.tiers[0].ref, 0);
    cr_assert_eq(l.tiers[2].ref, 2);
    cr_assert_eq(member_ladder_check(&l).code, STATUS_OK);
    member_ladder_t empty = {.n = 0};
    cr_assert_eq(member_ladder_check(&empty).code, STATUS_OK);
}

Test(member_tiers, inconsistent_ladders_are_refused) {
    /* Goal: each consistency rule refuses with INVALID_LADDER; equal is not increasing. */
    member_ladder_t l = ladder();
    l.tiers[1].upgrade_threshold = 1000; /* equal to Silver's */
    cr_assert_str_eq(member_ladder_check(&l).reason, "INVALID_LADDER");
    l = ladder();
    l.tiers[1].upgrade_threshold = 1001; /* one above: fine */
    l.tiers[1].retain_threshold = 800;
    cr_assert_eq(member_ladder_check(&l).code, STATUS_OK);
    l.tiers[1].retain_threshold = 799; /* retain below the lower tier's */
    cr_assert_str_eq(member_ladder_check(&l).reason, "INVALID_LADDER");
    l = ladder();
    l.tiers[1].rank = 1; /* duplicate rank */
    cr_assert_str_eq(member_ladder_check(&l).reason, "INVALID_LADDER");
    l = ladder();
    l.tiers[2].express_spend_cents = 3000; /* express not increasing */
    cr_assert_str_eq(member_ladder_check(&l).reason, "INVALID_LADDER");
    l.tiers[2].express_spend_cents = 3001;
    cr_assert_eq(member_ladder_check(&l).code, STATUS_OK);
    l.tiers[0].express_spend_cents = 3001; /* a lower tier's express above a higher one's */
    cr_assert_str_eq(member_ladder_check(&l).reason, "INVALID_LADDER");
    l = ladder();
    l.tiers[0].retain_threshold = 1001; /* retain above upgrade */
    cr_assert_str_eq(member_ladder_check(&l).reason, "INVALID_LADDER");
    l = ladder();
    l.n = MEMBER_TIERS_MAX + 1;
    cr_assert_str_eq(member_ladder_check(&l).reason, "INVALID_LADDER");
}

Test(member_tiers, ten_levels_are_allowed) {
    member_ladder_t l = {.n = MEMBER_TIERS_MAX};
    for (int i = 0; i < MEMBER_TIERS_MAX; i++) {
        l.tiers[i] = (member_tier_rule_t){.rank = i + 1,
                                          .upgrade_threshold = i * 100,
                                          .retain_threshold = i * 50,
                                          .period_months = 12};
    }
    cr_assert_eq(member_ladder_check(&l).code, STATUS_OK);
    cr_assert_eq(member_ladder_level_for_value(&l, 0), 1);
    cr_assert_eq(member_ladder_level_for_value(&l, 899), 9);
    cr_assert_eq(member_ladder_level_for_value(&l, 900), 10);
}

Test(member_tiers, level_for_value_and_express_at_the_boundaries) {
    member_ladder_t l = ladder();
    cr_assert_eq(member_ladder_level_for_value(&l, 0), 0);
    cr_assert_eq(member_ladder_level_for_value(&l, 999), 0);
    cr_assert_eq(member_ladder_level_for_value(&l, 1000), 1);
    cr_assert_eq(member_ladder_level_for_value(&l, 4999), 1);
    cr_assert_eq(member_ladder_level_for_value(&l, 5000), 2);
    cr_assert_eq(member_ladder_level_for_value(&l, 20000), 3);
    cr_assert_eq(member_ladder_level_for_value(&l, INT64_MAX), 3);
    cr_assert_eq(member_ladder_level_for_express(&l, 0), 0);
    cr_assert_eq(member_ladder_level_for_express(&l, 2999), 0);
    cr_assert_eq(member_ladder_level_for_express(&l, 3000), 2);
    cr_assert_eq(member_ladder_level_for_express(&l, 9999), 2);
    cr_assert_eq(member_ladder_level_for_express(&l, 10000), 3);
}

/* ---- month arithmetic ---- */

Test(member_tiers, months_end_on_the_same_day_or_the_first_of_the_next_month) {
    cr_assert_eq(member_day_add_months(day(2025, 3, 15), 12), day(2026, 3, 15));
    cr_assert_eq(member_day_add_months(day(2025, 1, 31), 1), day(2025, 3, 1));
    cr_assert_eq(member_day_add_months(day(2025, 1, 28), 1), day(2025, 2, 28));
    cr_assert_eq(member_day_add_months(day(2025, 1, 29), 1), day(2025, 3, 1));
    cr_assert_eq(member_day_add_months(day(2024, 1, 29), 1), day(2024, 2, 29)); /* leap */
    cr_assert_eq(member_day_add_months(day(2024, 2, 29), 12), day(2025, 3, 1));
    cr_assert_eq(member_day_add_months(day(2025, 12, 31), 1), day(2026, 1, 31));
    cr_assert_eq(member_day_add_months(day(2025, 11, 30), 3), day(2026, 2, 28) + 1);
    cr_assert_eq(member_day_add_months(day(2025, 5, 1), 120), day(2035, 5, 1));
    cr_assert_eq(member_day_add_months(day(2025, 5, 1), 0), MEMBER_DAY_NONE);
}

/* ---- joining and orders ---- */

Test(member_tiers, joining_without_a_free_tier_gives_no_tier) {
    member_ladder_t l = ladder();
    member_tier_state_t s;
    member_tier_event_t ev;
    cr_assert_not(member_tier_join(&l, day(2025, 1, 10), &s, &ev));
    cr_assert_eq(s.level, 0);
    cr_assert_eq(s.period_start, day(2025, 1, 10));
    cr_assert_eq(s.period_end, MEMBER_DAY_NONE);
}

Test(member_tiers, joining_reaches_a_tier_with_threshold_zero) {
    member_ladder_t l = ladder();
    l.tiers[0].upgrade_threshold = 0;
    l.tiers[0].retain_threshold = 0;
    l.tiers[0].period_months = 0; /* never ends */
    member_tier_state_t s;
    member_tier_event_t ev;
    cr_assert(member_tier_join(&l, day(2025, 1, 10), &s, &ev));
    cr_assert_eq(s.level, 1);
    cr_assert_eq(ev.reason, MEMBER_REASON(UPGRADE));
    cr_assert_eq(s.period_end, MEMBER_DAY_NONE);
    cr_assert_eq(s.base_level, 0);
}

Test(member_tiers, one_below_the_threshold_stays_and_exactly_at_it_upgrades) {
    member_ladder_t l = ladder();
    int64_t t0 = day(2025, 3, 15);
    member_tier_state_t s = fresh(day(2025, 1, 1));
    member_tier_event_t ev;
    cr_assert_not(member_tier_on_order(&l, &s, 999, 999, t0, &ev));
    cr_assert_eq(s.level, 0);
    cr_assert_eq(s.value, 999);
    cr_assert_eq(s.period_end, MEMBER_DAY_NONE);
    cr_assert(member_tier_on_order(&l, &s, 1, 1, t0, &ev));
    cr_assert_eq(s.level, 1);
    cr_assert_eq(s.value, 1000, "an upgrade does not consume the value");
    cr_assert_eq(ev.from_level, 0);
    cr_assert_eq(ev.to_level, 1);
    cr_assert_eq(ev.reason, MEMBER_REASON(UPGRADE));
    cr_assert_eq(ev.value_before, 999);
    cr_assert_eq(ev.value_after, 1000);
    cr_assert_eq(s.period_end, day(2026, 3, 15), "from no tier: a full period from today");
    cr_assert_eq(s.period_start, day(2025, 1, 1), "value counts from the period start");
}

Test(member_tiers, several_levels_at_once) {
    member_ladder_t l = ladder();
    member_tier_state_t s = fresh(day(2025, 1, 1));
    member_tier_event_t ev;
    cr_assert(member_tier_on_order(&l, &s, 20000, 100, day(2025, 2, 1), &ev));
    cr_assert_eq(ev.from_level, 0);
    cr_assert_eq(ev.to_level, 3);
    cr_assert_eq(ev.reason, MEMBER_REASON(UPGRADE));
    cr_assert_eq(s.level, 3);
}

Test(member_tiers, express_upgrade_jumps_to_the_highest_express_tier) {
    member_ladder_t l = ladder();
    member_tier_state_t s = fresh(day(2025, 1, 1));
    member_tier_event_t ev;
    /* One below the express amount: only the value counts (300 growth: no tier). */
    cr_assert_not(member_tier_on_order(&l, &s, 300, 2999, day(2025, 2, 1), &ev));
    cr_assert_eq(s.express_level, 0);
    /* Exactly the express amount of Gold with little value: straight to Gold. */
    cr_assert(member_tier_on_order(&l, &s, 300, 3000, day(2025, 2, 2), &ev));
    cr_assert_eq(ev.reason, MEMBER_REASON(EXPRESS));
    cr_assert_eq(ev.to_level, 2);
    cr_assert_eq(s.express_level, 2);
    cr_assert_eq(s.value, 600);
    cr_assert_eq(s.period_end, day(2026, 2, 2));
    /* Platinum's express amount from Gold. */
    cr_assert(member_tier_on_order(&l, &s, 0, 10000, day(2025, 3, 1), &ev));
    cr_assert_eq(ev.reason, MEMBER_REASON(EXPRESS));
    cr_assert_eq(ev.from_level, 2);
    cr_assert_eq(ev.to_level, 3);
    cr_assert_eq(s.period_end, day(2026, 3, 1), "the later end wins");
}

Test(member_tiers, express_and_value_reaching_the_same_tier_is_an_upgrade) {
    member_ladder_t l = ladder();
    member_tier_state_t s = fresh(day(2025, 1, 1));
    member_tier_event_t ev;
    cr_assert(member_tier_on_order(&l, &s, 5000, 3000, day(2025, 2, 1), &ev));
    cr_assert_eq(ev.reason, MEMBER_REASON(UPGRADE));
    cr_assert_eq(ev.to_level, 2);
    /* Value reaches Platinum while the spend only qualifies for Gold's express: UPGRADE. */
    s = fresh(day(2025, 1, 1));
    cr_assert(member_tier_on_order(&l, &s, 20000, 3000, day(2025, 2, 1), &ev));
    cr_assert_eq(ev.reason, MEMBER_REASON(UPGRADE));
    cr_assert_eq(ev.to_level, 3);
}

Test(member_tiers, an_order_below_the_current_tier_changes_nothing_but_the_value) {
    member_ladder_t l = ladder();
    member_tier_state_t s = fresh(day(2025, 1, 1));
    member_tier_event_t ev;
    member_tier_on_order(&l, &s, 0, 3000, day(2025, 2, 1), &ev); /* express Gold */
    int64_t end = s.period_end;
    cr_assert_not(member_tier_on_order(&l, &s, 1200, 1200, day(2025, 6, 1), &ev));
    cr_assert_eq(s.level, 2);
    cr_assert_eq(s.value, 1200);
    cr_assert_eq(s.period_end, end, "no upgrade: the period end stays");
}

Test(member_tiers, upgrade_keeps_a_later_period_end) {
    /* A 24-month Silver reached in January, Gold (12 months) reached in March: the Silver end
     * (later) is kept. */
    member_ladder_t l = ladder();
    l.tiers[0].period_months = 24;
    member_tier_state_t s = fresh(day(2025, 1, 1));
    member_tier_event_t ev;
    member_tier_on_order(&l, &s, 1000, 0, day(2025, 1, 10), &ev);
    cr_assert_eq(s.period_end, day(2027, 1, 10));
    member_tier_on_order(&l, &s, 4000, 0, day(2025, 3, 1), &ev);
    cr_assert_eq(s.level, 2);
    cr_assert_eq(s.period_end, day(2027, 1, 10));
}

Test(member_tiers, upgrading_from_or_to_a_tier_without_end) {
    member_ladder_t l = ladder();
    l.tiers[0].upgrade_threshold = 0;
    l.tiers[0].retain_threshold = 0;
    l.tiers[0].period_months = 0;
    member_tier_state_t s;
    member_tier_event_t ev;
    member_tier_join(&l, day(2025, 1, 1), &s, &ev);
    cr_assert_eq(s.period_end, MEMBER_DAY_NONE);
    /* From a tier without end to Gold: Gold's own period, not "no end". */
    member_tier_on_order(&l, &s, 5000, 0, day(2025, 4, 1), &ev);
    cr_assert_eq(s.period_end, day(2026, 4, 1));
    /* To a tier without end: no end. */
    l.tiers[2].period_months = 0;
    member_tier_on_order(&l, &s, 15000, 0, day(2025, 5, 1), &ev);
    cr_assert_eq(s.level, 3);
    cr_assert_eq(s.period_end, MEMBER_DAY_NONE);
}

Test(member_tiers, value_saturates_instead_of_overflowing) {
    member_ladder_t l = ladder();
    member_tier_state_t s = fresh(day(2025, 1, 1));
    member_tier_event_t ev;
    s.value = INT64_MAX / 2 - 1;
    member_tier_on_order(&l, &s, 1000000000000LL, 0, day(2025, 1, 2), &ev);
    cr_assert_eq(s.value, INT64_MAX / 2);
}

/* ---- period ends ---- */

/* A member who reached Gold on 2025-03-15 (period end 2026-03-15) with `value`. */
static member_tier_state_t gold_with(int64_t value) {
    member_ladder_t l = ladder();
    member_tier_state_t s = fresh(day(2025, 1, 1));
    member_tier_event_t ev;
    member_tier_on_order(&l, &s, 5000, 0, day(2025, 3, 15), &ev);
    s.value = value;
    return s;
}

Test(member_tiers, nothing_happens_before_the_period_end) {
    member_ladder_t l = ladder();
    member_tier_state_t s = gold_with(0);
    member_tier_event_t ev[4];
    cr_assert_not(member_tier_period_due(&s, day(2026, 3, 14)));
    cr_assert_eq(member_tier_on_period_end(&l, &s, day(2026, 3, 14), ev, 4), 0);
    cr_assert_eq(s.level, 2);
    cr_assert(member_tier_period_due(&s, day(2026, 3, 15)));
}

Test(member_tiers, renewal_exactly_at_the_retain_threshold_carries_nothing) {
    member_ladder_t l = ladder();
    member_tier_state_t s = gold_with(4000);
    int32_t seq = s.period_seq;
    member_tier_event_t ev[4];
    cr_assert_eq(member_tier_on_period_end(&l, &s, day(2026, 3, 15), ev, 4), 1);
    cr_assert_eq(ev[0].reason, MEMBER_REASON(RENEWAL));
    cr_assert_eq(ev[0].from_level, 2);
    cr_assert_eq(ev[0].to_level, 2);
    cr_assert_eq(ev[0].value_before, 4000);
    cr_assert_eq(ev[0].value_after, 0); /* carry = 4000 - 4000 */
    cr_assert_eq(ev[0].day, day(2026, 3, 15));
    cr_assert_eq(s.level, 2);
    cr_assert_eq(s.base_level, 2);
    cr_assert_eq(s.value, 0);
    cr_assert_eq(s.period_seq, seq + 1);
    cr_assert_eq(s.period_start, day(2026, 3, 15));
    cr_assert_eq(s.period_end, day(2027, 3, 15));
}

Test(member_tiers, renewal_above_the_threshold_carries_the_excess) {
    member_ladder_t l = ladder();
    member_tier_state_t s = gold_with(5500);
    member_tier_event_t ev[4];
    cr_assert_eq(member_tier_on_period_end(&l, &s, day(2026, 3, 20), ev, 4), 1);
    cr_assert_eq(ev[0].reason, MEMBER_REASON(RENEWAL));
    cr_assert_eq(s.value, 1500); /* 5500 - 4000 */
    cr_assert_eq(s.period_start, day(2026, 3, 15), "periods stay contiguous when run late");
}

Test(member_tiers, one_below_the_retain_threshold_downgrades_one_level_with_carry) {
    member_ladder_t l = ladder();
    member_tier_state_t s = gold_with(3999);
    member_tier_event_t ev[4];
    cr_assert_eq(member_tier_on_period_end(&l, &s, day(2026, 3, 15), ev, 4), 1);
    cr_assert_eq(ev[0].reason, MEMBER_REASON(DOWNGRADE));
    cr_assert_eq(ev[0].from_level, 2);
    cr_assert_eq(ev[0].to_level, 1);
    cr_assert_eq(s.level, 1);
    cr_assert_eq(s.base_level, 1);
    cr_assert_eq(s.value, 3199); /* 3999 - Silver's retain 800 */
    cr_assert_eq(s.period_end, day(2027, 3, 15));
}

Test(member_tiers, downgrade_below_the_lower_retain_threshold_carries_zero) {
    member_ladder_t l = ladder();
    member_tier_state_t s = gold_with(799);
    member_tier_event_t ev[4];
    cr_assert_eq(member_tier_on_period_end(&l, &s, day(2026, 3, 15), ev, 4), 1);
    cr_assert_eq(s.level, 1, "only one level down, even below Silver's retain threshold");
    cr_assert_eq(s.value, 0);
    s = gold_with(800);
    member_tier_on_period_end(&l, &s, day(2026, 3, 15), ev, 4);
    cr_assert_eq(s.value, 0); /* exactly Silver's retain: 800 - 800 */
    s = gold_with(801);
    member_tier_on_period_end(&l, &s, day(2026, 3, 15), ev, 4);
    cr_assert_eq(s.value, 1);
}

Test(member_tiers, downgrade_from_the_lowest_tier_keeps_the_value) {
    member_ladder_t l = ladder();
    member_tier_state_t s = fresh(day(2025, 1, 1));
    member_tier_event_t ev[4];
    member_tier_on_order(&l, &s, 1000, 0, day(2025, 1, 1), ev);
    s.value = 700;
    cr_assert_eq(member_tier_on_period_end(&l, &s, day(2026, 1, 1), ev, 4), 1);
    cr_assert_eq(ev[0].reason, MEMBER_REASON(DOWNGRADE));
    cr_assert_eq(s.level, 0);
    cr_assert_eq(s.value, 700, "no tier consumes nothing");
    cr_assert_eq(s.period_end, MEMBER_DAY_NONE);
    cr_assert_not(member_tier_period_due(&s, day(2030, 1, 1)));
}

Test(member_tiers, a_late_run_catches_up_every_missed_period_in_order) {
    /* Gold with value 9000 at 2026-03-15, run on 2028-04-01: renewal (carry 5000), renewal
     * (carry 1000), then downgrade at 2028-03-15 (1000 < 4000) to Silver with 1000 - 800. */
    member_ladder_t l = ladder();
    member_tier_state_t s = gold_with(9000);
    member_tier_event_t ev[8];
    int n = member_tier_on_period_end(&l, &s, day(2028, 4, 1), ev, 8);
    cr_assert_eq(n, 3);
    cr_assert_eq(ev[0].reason, MEMBER_REASON(RENEWAL));
    cr_assert_eq(ev[0].value_after, 5000);
    cr_assert_eq(ev[1].reason, MEMBER_REASON(RENEWAL));
    cr_assert_eq(ev[1].value_after, 1000);
    cr_assert_eq(ev[1].day, day(2027, 3, 15));
    cr_assert_eq(ev[2].reason, MEMBER_REASON(DOWNGRADE));
    cr_assert_eq(ev[2].day, day(2028, 3, 15));
    cr_assert_eq(s.value, 200);
    cr_assert_eq(s.level, 1);
    cr_assert_eq(s.period_end, day(2029, 3, 15));
}

Test(member_tiers, catch_up_is_bounded_and_resumes) {
    member_ladder_t l = ladder();
    l.tiers[0].period_months = 1;
    l.tiers[0].retain_threshold = 0; /* Silver renews forever, monthly */
    member_tier_state_t s = fresh(day(2025, 1, 1));
    member_tier_event_t ev[2];
    member_tier_on_order(&l, &s, 1000, 0, day(2025, 1, 1), ev);
    cr_assert_eq(member_tier_on_period_end(&l, &s, day(2025, 12, 1), ev, 2), 2);
    cr_assert_eq(s.period_end, day(2025, 4, 1));
    cr_assert(member_tier_period_due(&s, day(2025, 12, 1)), "the rest is still due");
}

Test(member_tiers, a_carry_that_reaches_a_higher_tier_after_a_ladder_change_upgrades) {
    member_ladder_t l = ladder();
    member_tier_state_t s = gold_with(19000); /* under the old Platinum threshold */
    l.tiers[2].upgrade_threshold = 10000;     /* the merchant lowered Platinum */
    member_tier_event_t ev[4];
    int n = member_tier_on_period_end(&l, &s, day(2026, 3, 15), ev, 4);
    cr_assert_eq(n, 2);
    cr_assert_eq(ev[0].reason, MEMBER_REASON(RENEWAL));
    cr_assert_eq(ev[1].reason, MEMBER_REASON(UPGRADE));
    cr_assert_eq(s.level, 3); /* carry 15000 >= 10000 */
    cr_assert_eq(s.base_level, 2);
}

Test(member_tiers, express_does_not_survive_the_period_end) {
    member_ladder_t l = ladder();
    member_tier_state_t s = fresh(day(2025, 1, 1));
    member_tier_event_t ev[4];
    member_tier_on_order(&l, &s, 3000, 3000, day(2025, 3, 15), ev); /* express Gold, value 3000 */
    cr_assert_eq(s.level, 2);
    cr_assert_eq(member_tier_on_period_end(&l, &s, day(2026, 3, 15), ev, 4), 1);
    cr_assert_eq(ev[0].reason, MEMBER_REASON(DOWNGRADE), "3000 < Gold's retain 4000");
    cr_assert_eq(s.express_level, 0);
    cr_assert_eq(s.value, 2200);
}

/* ---- returns ---- */

Test(member_tiers, a_return_that_keeps_the_threshold_changes_no_tier) {
    member_ladder_t l = ladder();
    member_tier_state_t s = fresh(day(2025, 1, 1));
    member_tier_event_t ev;
    member_tier_on_order(&l, &s, 1500, 1500, day(2025, 2, 1), &ev);
    cr_assert_not(member_tier_on_return(&l, &s, 500, 1000, day(2025, 2, 3), &ev));
    cr_assert_eq(s.level, 1);
    cr_assert_eq(s.value, 1000, "exactly at the threshold still holds Silver");
}

Test(member_tiers, a_return_that_crosses_the_threshold_back_goes_back_down) {
    member_ladder_t l = ladder();
    member_tier_state_t s = fresh(day(2025, 1, 1));
    member_tier_event_t ev;
    member_tier_on_order(&l, &s, 1500, 1500, day(2025, 2, 1), &ev);
    cr_assert(member_tier_on_return(&l, &s, 501, 999, day(2025, 2, 3), &ev));
    cr_assert_eq(ev.reason, MEMBER_REASON(RETURN));
    cr_assert_eq(ev.from_level, 1);
    cr_assert_eq(ev.to_level, 0);
    cr_assert_eq(s.value, 999);
    cr_assert_eq(s.period_end, MEMBER_DAY_NONE, "no tier, no period");
}

Test(member_tiers, a_return_never_goes_below_the_tier_held_at_the_period_start) {
    member_ladder_t l = ladder();
    member_tier_state_t s = gold_with(4000);
    member_tier_event_t ev[4];
    member_tier_on_period_end(&l, &s, day(2026, 3, 15), ev, 4);  /* renewed Gold, value 0 */
    member_tier_on_order(&l, &s, 20000, 0, day(2026, 4, 1), ev); /* Platinum */
    cr_assert_eq(s.level, 3);
    cr_assert(member_tier_on_return(&l, &s, 20000, 0, day(2026, 4, 2), ev));
    cr_assert_eq(s.level, 2, "back to the renewed Gold, not lower");
    cr_assert_eq(s.value, 0);
    cr_assert_eq(s.period_end, day(2027, 4, 1), "the period end is kept");
}

Test(member_tiers, a_return_never_takes_the_value_below_zero) {
    member_ladder_t l = ladder();
    member_tier_state_t s = gold_with(100); /* e.g. an order of an earlier period */
    member_tier_event_t ev;
    s.base_level = 2;
    cr_assert_not(member_tier_on_return(&l, &s, 5000, 0, day(2025, 6, 1), &ev));
    cr_assert_eq(s.value, 0);
    cr_assert_eq(s.level, 2);
}

Test(member_tiers, returning_the_express_order_undoes_the_express_upgrade) {
    member_ladder_t l = ladder();
    member_tier_state_t s = fresh(day(2025, 1, 1));
    member_tier_event_t ev;
    member_tier_on_order(&l, &s, 1200, 3500, day(2025, 2, 1), &ev); /* express Gold */
    cr_assert_eq(s.level, 2);
    /* Partial return leaving 3000 of spend on the order: still an express order. */
    cr_assert_not(member_tier_on_return(&l, &s, 0, 3000, day(2025, 2, 2), &ev));
    cr_assert_eq(s.level, 2);
    /* One cent more: the order no longer qualifies; the value 1200 still holds Silver. */
    cr_assert(member_tier_on_return(&l, &s, 0, 2999, day(2025, 2, 3), &ev));
    cr_assert_eq(ev.to_level, 1);
    cr_assert_eq(s.express_level, 0);
    cr_assert_eq(s.level, 1);
}

Test(member_tiers, a_return_never_raises_the_tier) {
    member_ladder_t l = ladder();
    member_tier_state_t s = fresh(day(2025, 1, 1));
    member_tier_event_t ev;
    member_tier_on_order(&l, &s, 1000, 0, day(2025, 2, 1), &ev);
    l.tiers[1].upgrade_threshold = 900; /* a ladder change that would put 1000 in Gold */
    cr_assert_not(member_tier_on_return(&l, &s, 0, 0, day(2025, 2, 2), &ev));
    cr_assert_eq(s.level, 1);
}

Test(member_tiers, reverting_to_a_tier_without_end_clears_the_period_end) {
    member_ladder_t l = ladder();
    l.tiers[0].upgrade_threshold = 0;
    l.tiers[0].retain_threshold = 0;
    l.tiers[0].period_months = 0;
    member_tier_state_t s;
    member_tier_event_t ev;
    member_tier_join(&l, day(2025, 1, 1), &s, &ev);
    member_tier_on_order(&l, &s, 5000, 0, day(2025, 2, 1), &ev);
    cr_assert_neq(s.period_end, MEMBER_DAY_NONE);
    cr_assert(member_tier_on_return(&l, &s, 1, 0, day(2025, 2, 2), &ev));
    cr_assert_eq(s.level, 1);
    cr_assert_eq(s.period_end, MEMBER_DAY_NONE);
}

Test(member_tiers, the_state_invariant_holds_through_a_random_walk) {
    /* Goal: level == max(base, level_for_value(value), express) after any sequence of orders,
     * returns and period ends, and the value never goes negative. */
    member_ladder_t l = ladder();
    member_tier_state_t s = fresh(day(2025, 1, 1));
    member_tier_event_t ev[MEMBER_CATCHUP_PERIODS_MAX * 2];
    uint64_t x = 88172645463325252ull;
    int64_t today = day(2025, 1, 1);
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t amount = (int64_t)(x % 6000);
        today += (int64_t)(x >> 40) % 9;
        switch ((x >> 20) % 3) {
        case 0:
            member_tier_on_order(&l, &s, amount, amount * 2, today, ev);
            break;
        case 1:
            member_tier_on_return(&l, &s, amount, 0, today, ev);
            break;
        default:
            member_tier_on_period_end(&l, &s, today, ev, MEMBER_CATCHUP_PERIODS_MAX);
            break;
        }
        int want = member_ladder_level_for_value(&l, s.value);
        want = want > s.base_level ? want : s.base_level;
        want = want > s.express_level ? want : s.express_level;
        cr_assert_eq(s.level, want, "step %d", i);
        cr_assert_geq(s.value, 0);
        if (s.level == 0) {
            cr_assert_eq(s.period_end, MEMBER_DAY_NONE, "no tier has no period end");
        }
    }
}

/* ---- cards and the effective tier ---- */

Test(member_tiers, card_validity_is_inclusive_on_both_ends) {
    member_card_t c = {.kind = MEMBER_CARD(INTERNAL),
                       .level = 2,
                       .valid_from = day(2025, 1, 1),
                       .valid_to = day(2025, 1, 31)};
    cr_assert_not(member_card_valid(&c, day(2024, 12, 31)));
    cr_assert(member_card_valid(&c, day(2025, 1, 1)));
    cr_assert(member_card_valid(&c, day(2025, 1, 31)));
    cr_assert_not(member_card_valid(&c, day(2025, 2, 1)));
    cr_assert_not(member_card_expired(&c, day(2025, 1, 31)));
    cr_assert(member_card_expired(&c, day(2025, 2, 1)));
    c.valid_to = MEMBER_DAY_NONE;
    cr_assert(member_card_valid(&c, day(2099, 1, 1)));
    cr_assert_not(member_card_expired(&c, day(2099, 1, 1)));
    member_card_t none = {0};
    cr_assert_not(member_card_valid(&none, day(2025, 1, 1)));
    cr_assert_not(member_card_expired(&none, day(2025, 1, 1)));
}

Test(member_tiers, buying_a_plan_starts_or_extends_a_paid_card) {
    member_card_t none = {0};
    member_card_t c = member_card_purchase(&none, false, 2, 1, day(2025, 1, 31));
    cr_assert_eq(c.kind, MEMBER_CARD(PAID));
    cr_assert_eq(c.valid_from, day(2025, 1, 31));
    cr_assert_eq(c.valid_to, day(2025, 2, 28), "a month from Jan 31 covers February");
    /* The same plan again while valid: extended from the day after valid_to. */
    member_card_t ext = member_card_purchase(&c, true, 2, 12, day(2025, 2, 10));
    cr_assert_eq(ext.valid_from, day(2025, 1, 31));
    cr_assert_eq(ext.valid_to, day(2026, 2, 28));
    /* Another plan, or the same plan after expiry: a new card from today. */
    member_card_t other = member_card_purchase(&c, false, 3, 12, day(2025, 2, 10));
    cr_assert_eq(other.valid_from, day(2025, 2, 10));
    cr_assert_eq(other.valid_to, day(2026, 2, 9));
    cr_assert_eq(other.level, 3);
    member_card_t late = member_card_purchase(&c, true, 2, 1, day(2025, 3, 1));
    cr_assert_eq(late.valid_from, day(2025, 3, 1));
    cr_assert_eq(late.valid_to, day(2025, 3, 31));
    /* An INTERNAL card is replaced, never extended. */
    member_card_t internal = {.kind = MEMBER_CARD(INTERNAL),
                              .level = 2,
                              .valid_from = day(2025, 1, 1),
                              .valid_to = MEMBER_DAY_NONE};
    member_card_t paid = member_card_purchase(&internal, true, 2, 1, day(2025, 5, 5));
    cr_assert_eq(paid.valid_from, day(2025, 5, 5));
    cr_assert_eq(paid.valid_to, day(2025, 6, 4));
}

Test(member_tiers, the_member_gets_the_higher_of_earned_and_card) {
    member_card_t none = {0};
    member_effective_t e = member_tier_effective(0, &none, day(2025, 1, 1));
    cr_assert_eq(e.level, 0);
    cr_assert_eq(e.kind, MEMBER_CARD(FREE));
    e = member_tier_effective(1, &none, day(2025, 1, 1));
    cr_assert_eq(e.level, 1);
    cr_assert_eq(e.kind, MEMBER_CARD(TIER));
    member_card_t c = {.kind = MEMBER_CARD(PAID),
                       .level = 2,
                       .valid_from = day(2025, 1, 1),
                       .valid_to = day(2025, 12, 31)};
    e = member_tier_effective(1, &c, day(2025, 6, 1));
    cr_assert_eq(e.level, 2);
    cr_assert_eq(e.kind, MEMBER_CARD(PAID));
    e = member_tier_effective(2, &c, day(2025, 6, 1));
    cr_assert_eq(e.kind, MEMBER_CARD(PAID), "the card wins a tie");
    e = member_tier_effective(3, &c, day(2025, 6, 1));
    cr_assert_eq(e.level, 3);
    cr_assert_eq(e.kind, MEMBER_CARD(TIER), "a higher earned tier wins");
    e = member_tier_effective(1, &c, day(2026, 1, 1));
    cr_assert_eq(e.level, 1, "falls back when the card has expired");
    cr_assert_eq(e.kind, MEMBER_CARD(TIER));
    c.level = 0; /* a card whose tier is unknown gives nothing */
    e = member_tier_effective(0, &c, day(2025, 6, 1));
    cr_assert_eq(e.kind, MEMBER_CARD(FREE));
}
