/* promo_cache.c -- cached active promotions and shared code lookups, stored packed. */
#include "promo_cache.h"

#include "pb.h"

static const char *active_key(rpc_ctx_t *ctx) {
    return arena_printf(ctx->arena, "{m:%s}:promo:active", ctx->merchant_id);
}

static const char *code_key(rpc_ctx_t *ctx, const char *code) {
    return arena_printf(ctx->arena, "{m:%s}:promo:code:%s", ctx->merchant_id, code);
}

bool promo_cache_active_get(rpc_ctx_t *ctx, Loyalty__V1__Promotion ***out, size_t *n) {
    unsigned char *bytes = NULL;
    size_t len = 0;
    if (!cache_get(ctx->cache, ctx->arena, active_key(ctx), &bytes, &len)) {
        return false;
    }
    /* The list message is the container: an undecodable entry is a miss. */
    Loyalty__V1__PromoListPromotionsResponse *set = (void *)pb_unpack_arena(
        ctx->arena, &loyalty__v1__promo_list_promotions_response__descriptor, bytes, len);
    if (set == NULL) {
        return false;
    }
    *out = set->promotions;
    *n = set->n_promotions;
    return true;
}

void promo_cache_active_put(rpc_ctx_t *ctx, Loyalty__V1__Promotion **promotions, size_t n) {
    Loyalty__V1__PromoListPromotionsResponse set =
        LOYALTY__V1__PROMO_LIST_PROMOTIONS_RESPONSE__INIT;
    set.promotions = promotions;
    set.n_promotions = n;
    size_t len = 0;
    unsigned char *bytes = pb_pack_arena(ctx->arena, &set.base, &len);
    cache_set(ctx->cache, active_key(ctx), bytes, len, 0);
}

void promo_cache_active_invalidate(rpc_ctx_t *ctx) {
    rpc_ctx_invalidate(ctx, active_key(ctx));
}

bool promo_cache_code_get(rpc_ctx_t *ctx, const char *code, char **promotion_id) {
    unsigned char *bytes = NULL;
    size_t len = 0;
    if (!cache_get(ctx->cache, ctx->arena, code_key(ctx, code), &bytes, &len)) {
        return false;
    }
    Loyalty__V1__PromoCode *c =
        (void *)pb_unpack_arena(ctx->arena, &loyalty__v1__promo_code__descriptor, bytes, len);
    if (c == NULL || c->promotion_id[0] == '\0') {
        return false;
    }
    *promotion_id = c->promotion_id;
    return true;
}

void promo_cache_code_put(rpc_ctx_t *ctx, const char *code, const char *promotion_id) {
    Loyalty__V1__PromoCode c = LOYALTY__V1__PROMO_CODE__INIT;
    c.code = (char *)code;
    c.promotion_id = (char *)promotion_id;
    size_t len = 0;
    unsigned char *bytes = pb_pack_arena(ctx->arena, &c.base, &len);
    cache_set(ctx->cache, code_key(ctx, code), bytes, len, 0);
}

void promo_cache_code_invalidate(rpc_ctx_t *ctx, const char *code) {
    rpc_ctx_invalidate(ctx, code_key(ctx, code));
}
