/* member_cache.h -- the Redis read-through cache of members by id. Keys carry the merchant in
 * a hash tag, {m:<merchant>}:member:<id>, so a Redis Cluster keeps a merchant on one slot. */
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

#endif
