/* member_segments.h -- lifecycle segments and RFM scores as pure functions of a member's
 * purchase statistics, the merchant's thresholds and the time. No I/O; unit-tested in
 * tests/unit/test_member_segments.c. Days here are spans of 86400 seconds. */
#ifndef MEMBER_SEGMENTS_H
#define MEMBER_SEGMENTS_H

#include "loyalty/v1/member.pb-c.h"
#include "member_tiers.h"
#include "status.h"

#include <stdbool.h>
#include <stdint.h>

#define MEMBER_NEW_DAYS_MAX 3650
#define MEMBER_INACTIVE_DAYS_MAX 3650
#define MEMBER_ACTIVE_MONTHS_MAX 120
#define MEMBER_SLEEPING_ORDERS_MAX 1000000
#define MEMBER_RFM_BOUNDS 4 /* quintiles: the 20th, 40th, 60th and 80th percentiles */

/** The merchant's lifecycle thresholds (MemberLifecycleRules). */
typedef struct member_lifecycle {
    int32_t new_days;
    int32_t active_months_min;
    int32_t sleeping_after_days;
    int32_t lost_after_days;
    int32_t sleeping_orders_max;
} member_lifecycle_t;

/** The defaults: 30, 3, 90, 90, 4. */
member_lifecycle_t member_lifecycle_default(void);

/** Validates the ranges documented in MemberLifecycleRules (naming "<prefix>.<field>"). */
status_t member_lifecycle_check(const char *prefix, const Loyalty__V1__MemberLifecycleRules *in,
                                member_lifecycle_t *out);

/** What the segment depends on. */
typedef struct member_activity {
    int64_t registered_at;
    int64_t order_count;   /* orders not fully returned */
    int64_t last_order_at; /* 0 = none */
    int32_t months_with_purchases;
} member_activity_t;

/** The segment at `now` (see member.proto), and in *next_change_at the first instant after
 *  `now` at which it may change with time alone (0 = never; only an order or a return can
 *  change it then). Precedence: NEW, then NO_PURCHASE, ACTIVE, then by order count and
 *  inactivity: one order -> LOST once lost_after_days have passed since it, else OCCASIONAL;
 *  two or more -> SLEEPING (up to sleeping_orders_max orders) or AT_RISK (more) once
 *  sleeping_after_days have passed, else OCCASIONAL. The boundaries belong to the later
 *  state: registered exactly new_days ago is no longer NEW. */
Loyalty__V1__MemberSegment member_segment_compute(const member_lifecycle_t *r,
                                                  const member_activity_t *a, int64_t now,
                                                  int64_t *next_change_at);

/** An RFM score: 0 when `have` is false (no orders, or no boundaries yet), else 1 + the number
 *  of the ascending boundaries that `value` exceeds (strictly), so 1..5. */
int32_t member_rfm_score(int64_t value, const int64_t bounds[MEMBER_RFM_BOUNDS], bool have);

#endif
