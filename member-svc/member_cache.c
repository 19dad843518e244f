/* member_cache.c -- cached members, tier statuses and tiers, stored as packed messages. */
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

static const char *tiers_key(rpc_ctx_t *ctx) {
    return arena_printf(ctx->arena, "{m:%s}:member:tiers", ctx->merchant_id);
}

bool member_cache_get_tiers(rpc_ctx_t *ctx, Loyalty__V1__MemberListTiersResponse **out) {
    unsigned char *bytes = NULL;
    size_t len = 0;
    if (!cache_get(ctx->cache, ctx->arena, tiers_key(ctx), &bytes, &len)) {
        return false;
    }
    *out = (Loyalty__V1__MemberListTiersResponse *)pb_unpack_arena(
        ctx->arena, &loyalty__v1__member_list_tiers_response__descriptor, bytes, len);
    return *out != NULL;
}

void member_cache_put_tiers(rpc_ctx_t *ctx, const Loyalty__V1__MemberListTiersResponse *t) {
    size_t len = 0;
    unsigned char *bytes = pb_pack_arena(ctx->arena, &t->base, &len);
    cache_set(ctx->cache, tiers_key(ctx), bytes, len, 0);
}

void member_cache_invalidate_tiers(rpc_ctx_t *ctx) {
    rpc_ctx_invalidate(ctx, tiers_key(ctx));
    /* Every member's tier status as others keep it composed with the tiers (the gateway's near
     * copy, lib/near_cache.h): the statuses stored here are the raw rows, composed on read. */
    rpc_ctx_invalidate(ctx, member_cache_tier_status_key(ctx->arena, ctx->merchant_id, "*"));
}

const char *member_cache_tier_status_key(arena_t *a, const char *merchant_id,
                                         const char *member_id) {
    return arena_printf(a, "{m:%s}:member:tier:%s", merchant_id, member_id);
}

bool member_cache_get_tier_status(rpc_ctx_t *ctx, const char *member_id,
                                  Loyalty__V1__MemberTierStatus **out) {
    unsigned char *bytes = NULL;
    size_t len = 0;
    const char *key = member_cache_tier_status_key(ctx->arena, ctx->merchant_id, member_id);
    if (!cache_get(ctx->cache, ctx->arena, key, &bytes, &len)) {
        return false;
    }
    *out = (Loyalty__V1__MemberTierStatus *)pb_unpack_arena(
        ctx->arena, &loyalty__v1__member_tier_status__descriptor, bytes, len);
    return *out != NULL;
}

void member_cache_put_tier_status(rpc_ctx_t *ctx, const Loyalty__V1__MemberTierStatus *st,
                                  int64_t ttl_s) {
    size_t len = 0;
    unsigned char *bytes = pb_pack_arena(ctx->arena, &st->base, &len);
    cache_set(ctx->cache, member_cache_tier_status_key(ctx->arena, ctx->merchant_id, st->member_id),
              bytes, len, ttl_s);
}
