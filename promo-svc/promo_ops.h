/* promo_ops.h -- the promo operations: gathers everything a cart's price depends on (settings and
 * calendar, active promotions, the cart's codes and coupons, the limit counters) and runs the quote
 * engine. Quote reads through the caches without locks; Reserve reads PostgreSQL only and locks
 * the unique codes, coupons and counters it may take, so that the price it computes stays true
 * until its transaction commits. */
#ifndef PROMO_OPS_H
#define PROMO_OPS_H

#include "promo_quote.h"
#include "promo_store.h"
#include "rpc.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct promo_pricing {
    Loyalty__V1__PromoCart cart; /* validated, codes upper-cased */
    int64_t at;
    Loyalty__V1__PromoSettings *settings;
    promo_periods_t periods;
    promo_candidate_t *cands;
    Loyalty__V1__PromoCodeKind *code_kinds; /* per candidate: the kind of its code, or 0 */
    size_t n_cands;
    promo_coupon_input_t *coupons; /* in cart order */
    size_t n_coupons;
    promo_counter_t *counters; /* sorted unique keys of every candidate's limits */
    size_t n_counters;
    size_t **limit_counter; /* [candidate][limit] -> index in counters, or SIZE_MAX */
    Loyalty__V1__PromoQuoteResult *quote;
} promo_pricing_t;

/** Validates `cart` and prices it. for_reserve: at the server's current time, from PostgreSQL,
 *  with locks (must run inside the call's transaction). `pre`: the settings and promotions read
 *  already (promo_store_reserve_reads), or NULL to read them here. */
status_t promo_ops_price(rpc_ctx_t *ctx, const Loyalty__V1__PromoCart *cart, bool for_reserve,
                         const promo_preload_t *pre, promo_pricing_t *out);

/** The first code or coupon of the cart that the quote did not apply, as a FAILED_PRECONDITION
 *  whose reason is the PromoReason name; OK when every one applied. */
status_t promo_ops_check_requested(const promo_pricing_t *pc);

/** The counter deltas of the applied promotions (one use and their discount per distinct
 *  counter) into *out (arena), and the unique codes and coupons to hold. */
void promo_ops_takes(arena_t *a, const promo_pricing_t *pc, promo_counter_t **out, size_t *n,
                     char ***codes, size_t *n_codes, char ***coupons, size_t *n_coupons);

/** The carts of a merged batch of Reserve calls, validated as promo_ops_price validates them
 *  (a cart that is not valid is left out: its call is refused before it locks anything), into
 *  *carts, and their codes, upper-cased, into *codes (all in `a`). */
void promo_ops_batch_carts(arena_t *a, const Loyalty__V1__PromoCart *const *in, size_t n,
                           Loyalty__V1__PromoCart **carts, size_t *n_carts, char ***codes,
                           size_t *n_codes);

/** The counters the Reserve calls of `carts` may lock at `at`, sorted and unique: for each
 *  cart, those of every promotion of pre->active that may apply to it, automatic or brought in
 *  by one of its codes (code_promotions[i]: the promotion of codes[i], or NULL). Every counter a
 *  call's pricing locks is among them (promo_rules_reserve_counters). */
void promo_ops_batch_counters(arena_t *a, const Loyalty__V1__PromoCart *carts, size_t n_carts,
                              const promo_preload_t *pre, int64_t at, char *const *codes,
                              char *const *code_promotions, size_t n_codes, promo_counter_t **out,
                              size_t *n);

#endif
