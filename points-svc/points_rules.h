/* points_rules.h -- pure rules of points: earning, expiry dates, redemption, reversal shares
 * and FIFO allocation. No I/O; unit-tested in tests/unit/test_points_rules.c. */
#ifndef POINTS_RULES_H
#define POINTS_RULES_H

#include <stdint.h>

#define POINTS_MAX INT64_C(1000000000000) /* 10^12: any single amount of points */

#endif
