/* money.h -- integer arithmetic for money (minor units) and points: basis-point shares with a
 * stated rounding, and checked sums. No floating point anywhere (docs/domain.md#money-points-and-rounding). Products are taken
 * in 128 bits, so no intermediate overflows; results that do not fit in int64 are reported. */
#ifndef LOYALTY_MONEY_H
#define LOYALTY_MONEY_H

#include <stdbool.h>
#include <stdint.h>

#define BPS_ONE 10000 /* 100% */

typedef enum money_rounding {
    ROUND_FLOOR,     /* toward minus infinity: never give away more than earned */
    ROUND_CEIL,      /* toward plus infinity */
    ROUND_HALF_UP,   /* .5 away from zero: the customer-facing "nearest cent" */
    ROUND_HALF_EVEN, /* banker's rounding */
} money_rounding_t;

/** amount * numerator / denominator rounded as asked; false when denominator is 0 or the
 *  result does not fit in int64. */
bool money_mul_div(int64_t amount, int64_t numerator, int64_t denominator, money_rounding_t r,
                   int64_t *out);

/** The bps share of amount (bps / 10000), rounded as asked; false on overflow. */
bool money_share_bps(int64_t amount, int64_t bps, money_rounding_t r, int64_t *out);

/** a + b; false on overflow. */
bool money_add(int64_t a, int64_t b, int64_t *out);

/** Splits `total` over n weights in proportion, floor each, and gives the remaining units one
 *  by one to the largest remainders (earliest index first on ties), so the parts always sum to
 *  `total` exactly. weights must be >= 0 with a positive sum; n <= 1024. False otherwise. */
bool money_allocate(int64_t total, const int64_t *weights, int n, int64_t *parts);

#endif
