/* member_segments.c -- lifecycle segments and RFM scores. */
#include "member_segments.h"

#include <stdio.h>

#define DAY_S 86400

member_lifecycle_t member_lifecycle_default(void) {
    return (member_lifecycle_t){
        .new_days = 30,
        .active_months_min = 3,
        .sleeping_after_days = 90,
        .lost_after_days = 90,
        .sleeping_orders_max = 4,
    };
}

static status_t range(const char *prefix, const char *name, int32_t v, int32_t lo, int32_t hi) {
    if (v >= lo && v <= hi) {
        return status_ok();
    }
    char field[96];
    snprintf(field, sizeof field, "%s.%s", prefix, name);
    return status_invalid_field(field, "must be %d..%d", (int)lo, (int)hi);
}

status_t member_lifecycle_check(const char *prefix, const Loyalty__V1__MemberLifecycleRules *in,
                                member_lifecycle_t *out) {
    if (in == NULL) {
        return status_invalid_field(prefix, "required");
    }
    const struct {
        const char *name;
        int32_t v, lo, hi;
    } checks[] = {
        {"new_days", in->new_days, 0, MEMBER_NEW_DAYS_MAX},
        {"active_months_min", in->active_months_min, 1, MEMBER_ACTIVE_MONTHS_MAX},
        {"sleeping_after_days", in->sleeping_after_days, 1, MEMBER_INACTIVE_DAYS_MAX},
        {"lost_after_days", in->lost_after_days, 1, MEMBER_INACTIVE_DAYS_MAX},
        {"sleeping_orders_max", in->sleeping_orders_max, 2, MEMBER_SLEEPING_ORDERS_MAX},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        status_t st = range(prefix, checks[i].name, checks[i].v, checks[i].lo, checks[i].hi);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    *out = (member_lifecycle_t){
        .new_days = in->new_days,
        .active_months_min = in->active_months_min,
        .sleeping_after_days = in->sleeping_after_days,
        .lost_after_days = in->lost_after_days,
        .sleeping_orders_max = in->sleeping_orders_max,
    };
    return status_ok();
}

/* Keeps the earliest boundary that is still ahead of now. */
static void consider(int64_t *next, int64_t boundary, int64_t now) {
    if (boundary > now && (*next == 0 || boundary < *next)) {
        *next = boundary;
    }
}

Loyalty__V1__MemberSegment member_segment_compute(const member_lifecycle_t *r,
                                                  const member_activity_t *a, int64_t now,
                                                  int64_t *next_change_at) {
    int64_t next = 0;
    int64_t new_until = a->registered_at + (int64_t)r->new_days * DAY_S;
    int64_t sleep_at = a->last_order_at + (int64_t)r->sleeping_after_days * DAY_S;
    int64_t lost_at = a->last_order_at + (int64_t)r->lost_after_days * DAY_S;
    consider(&next, new_until, now);
    if (a->order_count > 0) {
        consider(&next, sleep_at, now);
        if (a->order_count == 1) {
            consider(&next, lost_at, now);
        }
    }
    *next_change_at = next;
    if (now < new_until) {
        return MEMBER_SEGMENT(NEW);
    }
    if (a->order_count <= 0 || a->last_order_at <= 0) {
        return MEMBER_SEGMENT(NO_PURCHASE);
    }
    bool recent = now < sleep_at;
    if (recent && a->months_with_purchases >= r->active_months_min) {
        return MEMBER_SEGMENT(ACTIVE);
    }
    if (a->order_count == 1) {
        return now >= lost_at ? MEMBER_SEGMENT(LOST) : MEMBER_SEGMENT(OCCASIONAL);
    }
    if (recent) {
        return MEMBER_SEGMENT(OCCASIONAL);
    }
    return a->order_count <= r->sleeping_orders_max ? MEMBER_SEGMENT(SLEEPING)
                                                    : MEMBER_SEGMENT(AT_RISK);
}

int32_t member_rfm_score(int64_t value, const int64_t bounds[MEMBER_RFM_BOUNDS], bool have) {
    if (!have) {
        return 0;
    }
    int32_t score = 1;
    for (int i = 0; i < MEMBER_RFM_BOUNDS; i++) {
        if (value > bounds[i]) {
            score++;
        }
    }
    return score;
}
