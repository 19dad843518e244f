/* test_member_segments.c -- unit tests of lifecycle segments (every segment, each boundary at,
 * one second before and after), the next instant a segment changes with time, threshold
 * validation, and RFM scores. */
#include "member_segments.h"

#include <criterion/criterion.h>

#define DAY 86400
static const int64_t T0 = 1750000000; /* registration */

static member_activity_t member(int64_t orders, int64_t last_order_at, int32_t months) {
    return (member_activity_t){.registered_at = T0,
                               .order_count = orders,
                               .last_order_at = last_order_at,
                               .months_with_purchases = months};
}

static Loyalty__V1__MemberSegment seg(const member_activity_t *a, int64_t now, int64_t *next) {
    member_lifecycle_t r = member_lifecycle_default();
    return member_segment_compute(&r, a, now, next);
}

Test(member_segments, new_until_exactly_new_days_after_registration) {
    int64_t next;
    member_activity_t a = member(0, 0, 0);
    cr_assert_eq(seg(&a, T0, &next), MEMBER_SEGMENT(NEW));
    cr_assert_eq(next, T0 + 30 * DAY);
    cr_assert_eq(seg(&a, T0 + 30 * DAY - 1, &next), MEMBER_SEGMENT(NEW));
    cr_assert_eq(seg(&a, T0 + 30 * DAY, &next), MEMBER_SEGMENT(NO_PURCHASE));
    cr_assert_eq(next, 0, "never buying is not changed by time");
    /* Buying while new: still NEW, but the next change is the earliest boundary. */
    a = member(1, T0 + DAY, 1);
    cr_assert_eq(seg(&a, T0 + 2 * DAY, &next), MEMBER_SEGMENT(NEW));
    cr_assert_eq(next, T0 + 30 * DAY);
}

Test(member_segments, new_days_zero_means_nobody_is_new) {
    member_lifecycle_t r = member_lifecycle_default();
    r.new_days = 0;
    member_activity_t a = member(0, 0, 0);
    int64_t next;
    cr_assert_eq(member_segment_compute(&r, &a, T0, &next), MEMBER_SEGMENT(NO_PURCHASE));
}

Test(member_segments, active_needs_recent_orders_in_enough_months) {
    int64_t now = T0 + 400 * DAY;
    int64_t last = now - 10 * DAY;
    int64_t next;
    member_activity_t a = member(5, last, 3);
    cr_assert_eq(seg(&a, now, &next), MEMBER_SEGMENT(ACTIVE));
    cr_assert_eq(next, last + 90 * DAY);
    a.months_with_purchases = 2; /* one month short */
    cr_assert_eq(seg(&a, now, &next), MEMBER_SEGMENT(OCCASIONAL));
    a.months_with_purchases = 3;
    cr_assert_eq(seg(&a, last + 90 * DAY - 1, &next), MEMBER_SEGMENT(ACTIVE));
    cr_assert_eq(seg(&a, last + 90 * DAY, &next), MEMBER_SEGMENT(AT_RISK), "5 orders > 4");
    cr_assert_eq(next, 0);
}

Test(member_segments, sleeping_for_two_to_max_orders_at_risk_above) {
    int64_t last = T0 + 100 * DAY;
    int64_t now = last + 90 * DAY;
    int64_t next;
    member_activity_t a = member(2, last, 2);
    cr_assert_eq(seg(&a, now - 1, &next), MEMBER_SEGMENT(OCCASIONAL));
    cr_assert_eq(next, now);
    cr_assert_eq(seg(&a, now, &next), MEMBER_SEGMENT(SLEEPING));
    a.order_count = 4;
    cr_assert_eq(seg(&a, now, &next), MEMBER_SEGMENT(SLEEPING));
    a.order_count = 5;
    cr_assert_eq(seg(&a, now, &next), MEMBER_SEGMENT(AT_RISK));
}

Test(member_segments, one_order_is_lost_after_lost_after_days) {
    member_lifecycle_t r = member_lifecycle_default();
    r.lost_after_days = 180; /* different from the sleeping window */
    int64_t last = T0 + 40 * DAY;
    int64_t next;
    member_activity_t a = member(1, last, 1);
    cr_assert_eq(member_segment_compute(&r, &a, last + 100 * DAY, &next),
                 MEMBER_SEGMENT(OCCASIONAL), "one order is never SLEEPING");
    cr_assert_eq(next, last + 180 * DAY);
    cr_assert_eq(member_segment_compute(&r, &a, last + 180 * DAY - 1, &next),
                 MEMBER_SEGMENT(OCCASIONAL));
    cr_assert_eq(member_segment_compute(&r, &a, last + 180 * DAY, &next), MEMBER_SEGMENT(LOST));
    cr_assert_eq(next, 0);
}

Test(member_segments, one_order_can_be_active_when_one_month_suffices) {
    member_lifecycle_t r = member_lifecycle_default();
    r.active_months_min = 1;
    int64_t last = T0 + 40 * DAY;
    int64_t next;
    member_activity_t a = member(1, last, 1);
    cr_assert_eq(member_segment_compute(&r, &a, last + DAY, &next), MEMBER_SEGMENT(ACTIVE));
    cr_assert_eq(next, last + 90 * DAY);
}

Test(member_segments, no_orders_left_after_returns_is_no_purchase) {
    int64_t next;
    member_activity_t a = member(0, T0 + 50 * DAY, 1); /* stale last order, no orders */
    cr_assert_eq(seg(&a, T0 + 60 * DAY, &next), MEMBER_SEGMENT(NO_PURCHASE));
}

Test(member_segments, thresholds_are_validated_at_their_limits) {
    Loyalty__V1__MemberLifecycleRules in = LOYALTY__V1__MEMBER_LIFECYCLE_RULES__INIT;
    in.new_days = 0;
    in.active_months_min = 1;
    in.sleeping_after_days = 1;
    in.lost_after_days = 3650;
    in.sleeping_orders_max = 2;
    member_lifecycle_t out;
    cr_assert_eq(member_lifecycle_check("settings.lifecycle", &in, &out).code, STATUS_OK);
    cr_assert_eq(out.lost_after_days, 3650);
    in.lost_after_days = 3651;
    cr_assert_str_eq(member_lifecycle_check("settings.lifecycle", &in, &out).reason,
                     "INVALID_SETTINGS_LIFECYCLE_LOST_AFTER_DAYS");
    in.lost_after_days = 90;
    in.sleeping_orders_max = 1;
    cr_assert_str_eq(member_lifecycle_check("settings.lifecycle", &in, &out).reason,
                     "INVALID_SETTINGS_LIFECYCLE_SLEEPING_ORDERS_MAX");
    in.sleeping_orders_max = 4;
    in.active_months_min = 0;
    cr_assert_str_eq(member_lifecycle_check("settings.lifecycle", &in, &out).reason,
                     "INVALID_SETTINGS_LIFECYCLE_ACTIVE_MONTHS_MIN");
    in.active_months_min = 3;
    in.new_days = -1;
    cr_assert_str_eq(member_lifecycle_check("settings.lifecycle", &in, &out).reason,
                     "INVALID_SETTINGS_LIFECYCLE_NEW_DAYS");
    in.new_days = 30;
    in.sleeping_after_days = 0;
    cr_assert_str_eq(member_lifecycle_check("settings.lifecycle", &in, &out).reason,
                     "INVALID_SETTINGS_LIFECYCLE_SLEEPING_AFTER_DAYS");
    cr_assert_str_eq(member_lifecycle_check("settings.lifecycle", NULL, &out).reason,
                     "INVALID_SETTINGS_LIFECYCLE");
}

Test(member_segments, rfm_scores_count_the_boundaries_exceeded) {
    const int64_t b[4] = {10, 20, 30, 40};
    cr_assert_eq(member_rfm_score(5, b, true), 1);
    cr_assert_eq(member_rfm_score(10, b, true), 1, "equal to a boundary does not exceed it");
    cr_assert_eq(member_rfm_score(11, b, true), 2);
    cr_assert_eq(member_rfm_score(30, b, true), 3);
    cr_assert_eq(member_rfm_score(31, b, true), 4);
    cr_assert_eq(member_rfm_score(41, b, true), 5);
    cr_assert_eq(member_rfm_score(41, b, false), 0);
    /* Ties in the data: most members with one order. */
    const int64_t f[4] = {1, 1, 1, 2};
    cr_assert_eq(member_rfm_score(1, f, true), 1);
    cr_assert_eq(member_rfm_score(2, f, true), 4);
    cr_assert_eq(member_rfm_score(3, f, true), 5);
}
