/* promo_cache.h -- Redis read-through caches of promo-svc: a merchant's active promotions and
 * shared promo code lookups. Keys carry the merchant in a hash tag: {m:<merchant>}:promo:active
 * and {m:<merchant>}:promo:code:<CODE>. Entries are deleted after the transaction of every
 * change (rpc_ctx_invalidate); Redis is never the source of truth, and Reserve never reads it. */
#ifndef PROMO_CACHE_H
#define PROMO_CACHE_H

#include "loyalty/v1/promo.pb-c.h"
#include "rpc.h"

#include <stdbool.h>
#include <stddef.h>

/** True on a hit: the active promotions as last stored (decoded into ctx->arena). */
bool promo_cache_active_get(rpc_ctx_t *ctx, Loyalty__V1__Promotion ***out, size_t *n);
void promo_cache_active_put(rpc_ctx_t *ctx, Loyalty__V1__Promotion **promotions, size_t n);
void promo_cache_active_invalidate(rpc_ctx_t *ctx);

/** True on a hit: the promotion of a shared code (unique codes are never cached: their status
 *  changes with every checkout). */
bool promo_cache_code_get(rpc_ctx_t *ctx, const char *code, char **promotion_id);
void promo_cache_code_put(rpc_ctx_t *ctx, const char *code, const char *promotion_id);
void promo_cache_code_invalidate(rpc_ctx_t *ctx, const char *code);

#endif
