/* promo_rules.h -- pure rules of promo-svc: validation and normalisation of promotions, coupon
 * templates and carts. No I/O; unit-tested in tests/unit. */
#ifndef PROMO_RULES_H
#define PROMO_RULES_H

#include "loyalty/v1/promo.pb-c.h"
#include "status.h"

#define PROMO_CODE_MAX 32

/** Upper-cases a promo code into out[PROMO_CODE_MAX + 1]; INVALID_ARGUMENT naming `field`
 *  unless it is 3..32 of [A-Za-z0-9_-]. */
status_t promo_rules_normalize_code(const char *field, const char *code, char *out);

#endif
