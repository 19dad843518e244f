/* member_cache.h -- the Redis read-through caches of member-svc: members by id
 * ({m:<merchant>}:member:<id>), the member's own part of its tier status
 * ({m:<merchant>}:member:tier:<id>) and the merchant's tiers ({m:<merchant>}:member:tiers).
 * Keys carry the merchant in a hash tag so that a Redis Cluster keeps a merchant on one slot.
 * Every entry is deleted in the code path that changes its rows (after commit). */
#ifndef MEMBER_CACHE_H
#define MEMBER_CACHE_H

#include "loyalty/v1/member.pb-c.h"
#include "rpc.h"

#include <stdbool.h>

/** True on a hit; *out is decoded into ctx->arena. */
bool member_cache_get(rpc_ctx_t *ctx, const char *member_id, Loyalty__V1__Member **out);
void member_cache_put(rpc_ctx_t *ctx, const Loyalty__V1__Member *m);
/** Schedules the entry's deletion for when the call's transaction has ended. */
void member_cache_invalidate(rpc_ctx_t *ctx, const char *member_id);

/** The merchant's tiers and basis (ListTiers' answer). */
bool member_cache_get_tiers(rpc_ctx_t *ctx, Loyalty__V1__MemberListTiersResponse **out);
void member_cache_put_tiers(rpc_ctx_t *ctx, const Loyalty__V1__MemberListTiersResponse *t);
void member_cache_invalidate_tiers(rpc_ctx_t *ctx);

/** The member's own part of its tier status (member_view_status_raw). `ttl_s` 0 = default. */
bool member_cache_get_tier_status(rpc_ctx_t *ctx, const char *member_id,
                                  Loyalty__V1__MemberTierStatus **out);
void member_cache_put_tier_status(rpc_ctx_t *ctx, const Loyalty__V1__MemberTierStatus *st,
                                  int64_t ttl_s);
/** The key of a member's tier status, for callers outside a call's transaction (jobs). */
const char *member_cache_tier_status_key(arena_t *a, const char *merchant_id,
                                         const char *member_id);

#endif
