/* points_cache.c -- cached PointsBalance messages (8 bytes of valid-until, little endian unix
 * seconds, followed by the packed message) and cached PointsSettings (the packed message). */
#include "points_cache.h"

#include "pb.h"

#include <string.h>

char *points_cache_balance_key(arena_t *a, const char *merchant, const char *member) {
    return arena_printf(a, "{m:%s}:points:balance:%s", merchant, member);
}

bool points_cache_get_balance(rpc_ctx_t *ctx, const char *member,
                              Loyalty__V1__PointsBalance **out) {
    unsigned char *bytes = NULL;
    size_t len = 0;
    if (!cache_get(ctx->cache, ctx->arena,
                   points_cache_balance_key(ctx->arena, ctx->merchant_id, member), &bytes, &len) ||
        len < 8) {
        return false;
    }
    uint64_t until = 0;
    for (int i = 7; i >= 0; i--) {
        until = until << 8 | bytes[i];
    }
    if ((int64_t)until <= ctx->now_s) {
        return false; /* something fell due since: the next read settles and refills */
    }
    *out = (Loyalty__V1__PointsBalance *)pb_unpack_arena(
        ctx->arena, &loyalty__v1__points_balance__descriptor, bytes + 8, len - 8);
    return *out != NULL && strcmp((*out)->member_id, member) == 0;
}

void points_cache_put_balance(rpc_ctx_t *ctx, const Loyalty__V1__PointsBalance *b,
                              int64_t valid_until) {
    int64_t ttl = ctx->config->cache_ttl_s;
    int64_t cap = ctx->now_s + ttl;
    if (valid_until == 0 || valid_until > cap) {
        valid_until = cap;
    }
    if (valid_until <= ctx->now_s) {
        return;
    }
    size_t len = 0;
    unsigned char *packed = pb_pack_arena(ctx->arena, &b->base, &len);
    unsigned char *bytes = arena_alloc(ctx->arena, len + 8);
    uint64_t until = (uint64_t)valid_until;
    for (int i = 0; i < 8; i++) {
        bytes[i] = (unsigned char)(until >> (8 * i));
    }
    memcpy(bytes + 8, packed, len);
    cache_set(ctx->cache, points_cache_balance_key(ctx->arena, ctx->merchant_id, b->member_id),
              bytes, len + 8, valid_until - ctx->now_s);
}

void points_cache_invalidate(rpc_ctx_t *ctx, const char *merchant, const char *member) {
    rpc_ctx_invalidate(ctx, points_cache_balance_key(ctx->arena, merchant, member));
}

static char *settings_key(arena_t *a, const char *merchant) {
    return arena_printf(a, "{m:%s}:points:settings", merchant);
}

bool points_cache_get_settings(rpc_ctx_t *ctx, Loyalty__V1__PointsSettings **out) {
    unsigned char *bytes = NULL;
    size_t len = 0;
    if (!cache_get(ctx->cache, ctx->arena, settings_key(ctx->arena, ctx->merchant_id), &bytes,
                   &len)) {
        return false;
    }
    *out = (Loyalty__V1__PointsSettings *)pb_unpack_arena(
        ctx->arena, &loyalty__v1__points_settings__descriptor, bytes, len);
    return *out != NULL;
}

void points_cache_put_settings(rpc_ctx_t *ctx, const Loyalty__V1__PointsSettings *s) {
    size_t len = 0;
    unsigned char *packed = pb_pack_arena(ctx->arena, &s->base, &len);
    cache_set(ctx->cache, settings_key(ctx->arena, ctx->merchant_id), packed, len, 0);
}

void points_cache_invalidate_settings(rpc_ctx_t *ctx) {
    rpc_ctx_invalidate(ctx, settings_key(ctx->arena, ctx->merchant_id));
}
