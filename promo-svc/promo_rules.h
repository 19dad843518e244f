/* promo_rules.h -- pure rules of promo-svc: validation and normalisation of promotions, coupon
 * templates and carts, coupon validity and status, and the limit counters a promotion uses for
 * a cart. No I/O; unit-tested in tests/unit/test_promo_rules.c. */
#ifndef PROMO_RULES_H
#define PROMO_RULES_H

#include "arena.h"
#include "loyalty/v1/promo.pb-c.h"
#include "promo_quote.h"
#include "status.h"

#include <stdint.h>

#define PROMO_NAME_MAX 100
#define PROMO_DESCRIPTION_MAX 1000
#define PROMO_PRIORITY_MAX 1000
#define PROMO_TOKEN_MAX 64 /* ids, skus, categories, tiers, stores, segments */
#define PROMO_CONDITION_LIST_MAX 100
#define PROMO_TIER_RANK_MAX 100
#define PROMO_AMOUNT_MAX 10000000000LL /* any money field of a definition or cart */
#define PROMO_STEPS_MAX 10
#define PROMO_GIFTS_MAX 10
#define PROMO_GIFT_QUANTITY_MAX 100
#define PROMO_TIER_PRICES_MAX 500
#define PROMO_BXGY_QUANTITY_MAX 100
#define PROMO_BXGY_APPLICATIONS_MAX 1000000
#define PROMO_LIMITS_MAX 8
#define PROMO_LIMIT_VALUE_MAX 1000000000000LL
#define PROMO_CODE_MIN 3
#define PROMO_CODE_MAX 32
#define PROMO_CODE_PREFIX_MAX 8
#define PROMO_CODE_RANDOM_LEN 12
#define PROMO_CODE_ALPHABET "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
#define PROMO_CODE_BATCH_MAX 10000
#define PROMO_UNIQUE_CODES_MAX 1000000
#define PROMO_ACTIVE_MAX 200 /* active promotions per merchant */
#define PROMO_CART_LINES_MAX 200
#define PROMO_CART_CODES_MAX 5
#define PROMO_CART_COUPONS_MAX 5 /* coupon_ids and coupon_codes together */
#define PROMO_COUPON_CODE_LEN 10 /* from PROMO_CODE_ALPHABET: 50 bits */
#define PROMO_COUPON_CODE_ATTEMPTS 5
#define PROMO_QUANTITY_MAX 100000
#define PROMO_COUPON_VALID_DAYS_MAX 3650
#define PROMO_COUPON_PER_MEMBER_MAX 1000
#define PROMO_COUPON_TOTAL_MAX 1000000000LL
#define PROMO_TTL_DEFAULT_S 900
#define PROMO_TTL_MAX_S 86400
#define PROMO_TIME_ZONE_MAX 64

/** Upper-cases a promo code into out[PROMO_CODE_MAX + 1]; INVALID_ARGUMENT naming `field`
 *  unless it is 3..32 of [A-Za-z0-9_-]. */
status_t promo_rules_normalize_code(const char *field, const char *code, char *out);

/** Upper-cases a unique-code prefix (0..8 of [A-Za-z0-9]) into out[PROMO_CODE_PREFIX_MAX + 1]. */
status_t promo_rules_normalize_prefix(const char *prefix, char *out);

/** Validates a promotion definition from CreatePromotion/UpdatePromotion (fields named
 *  "promotion.<field>") and fills *out with its normalised copy (strings in `a`): the type
 *  follows the rule, the shared code is upper-cased, an unspecified limit period is LIFETIME.
 *  Identity, status and timestamps are left for the caller. */
status_t promo_rules_check_promotion(arena_t *a, const Loyalty__V1__Promotion *in,
                                     Loyalty__V1__Promotion *out);

/** Validates a coupon template (fields named "coupon_template.<field>") and zeroes the terms
 *  that do not belong to its kind in *out. */
status_t promo_rules_check_template(const Loyalty__V1__PromoCouponTemplate *in,
                                    Loyalty__V1__PromoCouponTemplate *out);

/** Validates a cart (fields named "cart.<field>") and fills *out with a copy whose codes are
 *  upper-cased (strings in `a`). */
status_t promo_rules_check_cart(arena_t *a, const Loyalty__V1__PromoCart *in,
                                Loyalty__V1__PromoCart *out);

/** A reservation TTL: 0 -> PROMO_TTL_DEFAULT_S; 1..PROMO_TTL_MAX_S; otherwise INVALID. */
status_t promo_rules_check_ttl(int64_t ttl_s, int64_t *out);

/** The validity window of a coupon of template `t` issued at `issued_at`. */
void promo_rules_coupon_window(const Loyalty__V1__PromoCouponTemplate *t, int64_t issued_at,
                               int64_t *valid_from_at, int64_t *valid_until_at);

/** The status a member sees: USED as stored; RESERVED while its reservation still holds it
 *  (reservation_live), else AVAILABLE again, before the expiry job writes that back; AVAILABLE
 *  turns EXPIRED at valid_until_at. */
Loyalty__V1__PromoCouponStatus promo_rules_coupon_status(Loyalty__V1__PromoCouponStatus stored,
                                                         bool reservation_live,
                                                         int64_t valid_until_at, int64_t now);

/** The calendar periods of an instant in the merchant's time zone, as counter period keys:
 *  day "D2025-11-23", week "W2025-W48" (ISO), month "M2025-11". */
typedef struct promo_periods {
    const char *day, *week, *month;
} promo_periods_t;

/** The counter limit i of promotion p uses for this cart: *scope_key ('T', 'M:<member>' or
 *  'S:<store>', in `a`) and *period_key ('L' or one of `periods`). Returns UNSPECIFIED, or
 *  MEMBER_REQUIRED / STORE_REQUIRED when the cart lacks what the scope needs. */
promo_reason_t promo_rules_limit_key(arena_t *a, const Loyalty__V1__Promotion *p, size_t i,
                                     const Loyalty__V1__PromoCart *cart,
                                     const promo_periods_t *periods, char **scope_key,
                                     const char **period_key);

/** Folds the counters of every limit of p (uses[i], discount_cents[i]; key_reasons[i] from
 *  promo_rules_limit_key) into what the quote may still use: blocked (LIMIT_REACHED,
 *  CODE_USED_UP for a code promotion's TOTAL use limit, BUDGET_EXHAUSTED, MEMBER_REQUIRED,
 *  STORE_REQUIRED; the first limit in order that blocks) or the smallest remaining budget. */
promo_limit_state_t promo_rules_limit_state(const Loyalty__V1__Promotion *p,
                                            const promo_reason_t *key_reasons, const int64_t *uses,
                                            const int64_t *discount_cents);

/** One usage counter: its key (promotion, scope 'T' / 'M:<member>' / 'S:<store>', period) and,
 *  as read or as a delta, its uses and discount. Strings are borrowed. */
typedef struct promo_counter {
    const char *promotion_id;
    const char *scope_key;
    const char *period_key;
    int64_t uses, discount_cents;
} promo_counter_t;

/** The order of counter keys: (promotion, scope, period) in byte order, the COLLATE "C" order in
 *  which every transaction locks counter rows, so that no two wait on each other. */
int promo_rules_counter_cmp(const promo_counter_t *a, const promo_counter_t *b);

/** Sorts c[0..n) in promo_rules_counter_cmp order and drops repeated keys (keeping the first
 *  of each); returns how many are left. */
size_t promo_rules_counters_sort_unique(promo_counter_t *c, size_t n);

/** The counters a Reserve of `cart` (validated) at `at` may lock for promotion `p` when p is a
 *  candidate of the cart (automatic, or named by one of its codes): those of its limits whose
 *  key the cart has, if p passes promo_quote_static_check; none otherwise. Writes at most
 *  p->n_limits keys (strings in `a`, uses 0) to `out` and returns how many. */
size_t promo_rules_reserve_counters(arena_t *a, const Loyalty__V1__Promotion *p,
                                    const Loyalty__V1__PromoCart *cart,
                                    const promo_periods_t *periods, int64_t at,
                                    promo_counter_t *out);

#endif
