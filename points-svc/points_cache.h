/* points_cache.h -- the Redis read-through caches of the merchant's settings and of member
 * balances. Balances are keyed
 * {m:<merchant>}:points:balance:<member>. An entry carries the instant until which it is true
 * (the member's next due instant: a hold TTL, the end of a pending window, a lot expiry, or the
 * next change of the 30-day expiring window), so a cached balance is never served past the
 * moment it would have changed by itself; writes invalidate it after their transaction. */
#ifndef POINTS_CACHE_H
#define POINTS_CACHE_H

#include "loyalty/v1/points.pb-c.h"
#include "rpc.h"

#include <stdbool.h>

/** The cache key of a member's balance, in `a`. */
char *points_cache_balance_key(arena_t *a, const char *merchant, const char *member);

/** True on a hit still valid at ctx->now_s; *out is decoded into ctx->arena. */
bool points_cache_get_balance(rpc_ctx_t *ctx, const char *member, Loyalty__V1__PointsBalance **out);

/** Stores a balance valid until valid_until (0 = only the TTL bounds it). */
void points_cache_put_balance(rpc_ctx_t *ctx, const Loyalty__V1__PointsBalance *b,
                              int64_t valid_until);

/** Schedules the deletion of the member's entry once the call's transaction has ended. */
void points_cache_invalidate(rpc_ctx_t *ctx, const char *merchant, const char *member);

/** The merchant's settings ({m:<merchant>}:points:settings), read by every ledger operation:
 *  true on a hit, *out decoded into ctx->arena. */
bool points_cache_get_settings(rpc_ctx_t *ctx, Loyalty__V1__PointsSettings **out);
/** Stores the settings read after a miss (under that miss's fill lease). */
void points_cache_put_settings(rpc_ctx_t *ctx, const Loyalty__V1__PointsSettings *s);
/** Schedules the deletion of the merchant's settings entry once the transaction has ended. */
void points_cache_invalidate_settings(rpc_ctx_t *ctx);

#endif
