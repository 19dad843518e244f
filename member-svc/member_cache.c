/* member_cache.c -- cached Member messages, stored packed. */
#include "member_cache.h"

#include "pb.h"

static const char *member_cache_key(rpc_ctx_t *ctx, const char *member_id) {
    return arena_printf(ctx->arena, "{m:%s}:member:%s", ctx->merchant_id, member_id);
}

bool member_cache_get(rpc_ctx_t *ctx, const char *member_id, Loyalty__V1__Member **out) {
    unsigned char *bytes = NULL;
    size_t len = 0;
    if (!cache_get(ctx->cache, ctx->arena, member_cache_key(ctx, member_id), &bytes, &len)) {
        return false;
    }
    *out = (Loyalty__V1__Member *)pb_unpack_arena(ctx->arena, &loyalty__v1__member__descriptor,
                                                   bytes, len);
    return *out != NULL; /* an undecodable entry is a miss; the next put overwrites it */
}

void member_cache_put(rpc_ctx_t *ctx, const Loyalty__V1__Member *m) {
    size_t len = 0;
    unsigned char *bytes = pb_pack_arena(ctx->arena, &m->base, &len);
    cache_set(ctx->cache, member_cache_key(ctx, m->id), bytes, len, 0);
}

void member_cache_invalidate(rpc_ctx_t *ctx, const char *member_id) {
    rpc_ctx_invalidate(ctx, member_cache_key(ctx, member_id));
}
