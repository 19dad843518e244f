/* promo_quote.h -- the quote engine: prices a cart through DESIGN §3's order (tier step,
 * promotions by priority with stacking and exclusivity, coupons, shipping) and explains every
 * promotion and coupon it considered. Pure functions, no I/O; unit-tested in tests/unit. */
#ifndef PROMO_QUOTE_H
#define PROMO_QUOTE_H

#include "arena.h"
#include "loyalty/v1/promo.pb-c.h"
#include "status.h"

#endif
