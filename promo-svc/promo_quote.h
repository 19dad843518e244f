/* promo_quote.h -- the quote engine: prices a cart through the pricing order
 * (docs/domain.md#pricing-order) (tier step, promotions by priority with stacking and exclusivity,
 * coupons, shipping) and explains every promotion and coupon it considered. The pricing and
 * rounding rules it implements are written at the top of proto/loyalty/v1/promo.proto. Pure
 * functions, no I/O; the caller (Quote and Reserve) gathers the promotions, codes, coupons and
 * limit counters. Unit-tested in tests/unit/test_promo_quote.c. */
#ifndef PROMO_QUOTE_H
#define PROMO_QUOTE_H

#include "arena.h"
#include "loyalty/v1/promo.pb-c.h"
#include "status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef Loyalty__V1__PromoReason promo_reason_t;
#define PROMO_REASON(x) LOYALTY__V1__PROMO_REASON__PROMO_REASON_##x

/** What the limit counters allow one promotion for this cart (see promo_rules_limit_state). */
typedef struct promo_limit_state {
    promo_reason_t blocked;    /* UNSPECIFIED: usable; else why not (LIMIT_REACHED, ...) */
    int64_t budget_left_cents; /* INT64_MAX when no budget limit applies */
} promo_limit_state_t;

/** One promotion the quote looks at: every active automatic promotion, and the promotion of
 *  each code in the cart. */
typedef struct promo_candidate {
    const Loyalty__V1__Promotion *promotion; /* NULL only for an unknown code */
    const char *code;                        /* normalised cart code; NULL when automatic */
    /* Set when the code itself cannot be used (CODE_UNKNOWN, CODE_USED_UP, DUPLICATE): the
     * candidate is listed with this reason and never applied. */
    promo_reason_t code_reason;
    promo_limit_state_t limit;
} promo_candidate_t;

/** One coupon id from the cart and what the store found for it. */
typedef struct promo_coupon_input {
    const char *coupon_id;                  /* as in the cart; by code: the coupon's, or "" */
    const char *code;                       /* by code: as normalised; NULL or "" by id */
    const Loyalty__V1__PromoCoupon *coupon; /* NULL when unknown or not the cart member's */
    bool held_elsewhere;                    /* RESERVED by another live checkout */
} promo_coupon_input_t;

typedef struct promo_quote_input {
    const Loyalty__V1__PromoCart *cart; /* validated by promo_rules_check_cart */
    int64_t at;                         /* the pricing instant (unix seconds) */
    const promo_candidate_t *candidates;
    size_t n_candidates;
    const promo_coupon_input_t *coupons; /* in cart order */
    size_t n_coupons;
} promo_quote_input_t;

/** Prices the cart and explains it; *out lives in `a`. Every candidate and coupon appears once
 *  in (*out)->considered: promotions by priority (highest first, then oldest), unknown codes,
 *  then coupons in cart order. Fails INTERNAL only when an amount overflows, which validated
 *  carts cannot reach. */
status_t promo_quote(arena_t *a, const promo_quote_input_t *in,
                     Loyalty__V1__PromoQuoteResult **out);

/** The reason a promotion cannot apply to this cart at `at` whatever its amounts and limits
 *  (status, time window, tier, segment, store), or APPLIED when it may. Reserve uses it to
 *  choose which limit counters to lock. */
promo_reason_t promo_quote_static_check(const Loyalty__V1__Promotion *p,
                                        const Loyalty__V1__PromoCart *cart, int64_t at);

/** True when the line is eligible for the conditions' product and category lists. */
bool promo_quote_line_eligible(const Loyalty__V1__PromoConditions *c,
                               const Loyalty__V1__PromoCartLine *line);

/** "PROMO_REASON_CODE_USED_UP" -> "CODE_USED_UP": the reason name Reserve reports. */
const char *promo_reason_name(promo_reason_t r);

#endif
