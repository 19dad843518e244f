/* promo_rpc.c -- PromoService handlers for promotions, promo codes and settings, and the
 * handler table of the whole service (coupons are in promo_rpc_coupons.c, checkout in
 * promo_rpc_checkout.c). */
#include "promo_rpc.h"

#include "audit.h"
#include "cursor.h"
#include "fieldmask.h"
#include "ids.h"
#include "jsonw.h"
#include "pb.h"
#include "promo_cache.h"
#include "promo_handlers.h"
#include "promo_rules.h"
#include "promo_store.h"
#include "validate.h"

#include <string.h>

#define STATUS_ACTIVE LOYALTY__V1__PROMO_STATUS__PROMO_STATUS_ACTIVE
#define STATUS_PAUSED LOYALTY__V1__PROMO_STATUS__PROMO_STATUS_PAUSED
#define CODE_UNIQUE LOYALTY__V1__PROMO_CODE_KIND__PROMO_CODE_KIND_UNIQUE

status_t promo_page_start(const Loyalty__V1__PageRequest *page, arena_t *a, int *limit,
                          char **after) {
    int32_t size = 0;
    status_t st =
        cursor_page_size("page.page_size", page ? page->page_size : 0, PAGE_SIZE_MAX, &size);
    char *key = NULL;
    *after = "";
    if (status_is_ok(&st)) {
        st = cursor_decode(a, "page.cursor", page ? page->cursor : "", &key, after);
    }
    *limit = size;
    return st;
}

Loyalty__V1__PageInfo *promo_page_next(arena_t *a, bool more, const char *last) {
    Loyalty__V1__PageInfo *info = pb_new(a, &loyalty__v1__page_info__descriptor);
    info->next_cursor = more ? cursor_encode(a, "", last) : "";
    return info;
}

/* Drops the cached active set and the cache entries of the codes involved. */
static void invalidate_promotion(rpc_ctx_t *ctx, const char *old_code, const char *new_code) {
    promo_cache_active_invalidate(ctx);
    if (old_code && old_code[0]) {
        promo_cache_code_invalidate(ctx, arena_strdup(ctx->arena, old_code));
    }
    if (new_code && new_code[0]) {
        promo_cache_code_invalidate(ctx, arena_strdup(ctx->arena, new_code));
    }
}

static status_t rpc_create_promotion(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                     ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PromoCreatePromotionRequest *req = (const void *)req_msg;
    Loyalty__V1__PromoCreatePromotionResponse *resp = (void *)resp_msg;
    Loyalty__V1__Promotion *p = pb_new(ctx->arena, &loyalty__v1__promotion__descriptor);
    status_t st = promo_rules_check_promotion(ctx->arena, req->promotion, p);
    if (!status_is_ok(&st)) {
        return st;
    }
    char id[ID_MAX];
    id_generate("prm", id);
    p->id = arena_strdup(ctx->arena, id);
    p->merchant_id = (char *)ctx->merchant_id;
    p->status = STATUS_ACTIVE;
    p->created_at = p->updated_at = ctx->now_s;
    p->version = 1;
    st = promo_store_promotion_insert(ctx->db, ctx->merchant_id, p);
    if (status_is_ok(&st)) {
        invalidate_promotion(ctx, NULL, p->code);
        resp->promotion = p;
    }
    return st;
}

static status_t rpc_get_promotion(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                  ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PromoGetPromotionRequest *req = (const void *)req_msg;
    Loyalty__V1__PromoGetPromotionResponse *resp = (void *)resp_msg;
    status_t st = validate_token("promotion_id", req->promotion_id, ID_MAX);
    if (!status_is_ok(&st)) {
        return st;
    }
    return promo_store_promotion_get(ctx->db, ctx->arena, ctx->merchant_id, req->promotion_id,
                                     false, &resp->promotion);
}

/* Every field but identity, status (Pause/Resume), the times and the version; the type
 * follows the rule. */
static const char *const promotion_updatable[] = {"name",
                                                  "description",
                                                  "trigger",
                                                  "priority",
                                                  "exclusive",
                                                  "start_at",
                                                  "end_at",
                                                  "conditions",
                                                  "percent_off",
                                                  "amount_off",
                                                  "spend_threshold",
                                                  "free_shipping",
                                                  "free_gift",
                                                  "tier_price",
                                                  "buy_x_get_y",
                                                  "code_kind",
                                                  "code",
                                                  "limits",
                                                  NULL};

static status_t rpc_update_promotion(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                     ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PromoUpdatePromotionRequest *req = (const void *)req_msg;
    Loyalty__V1__PromoUpdatePromotionResponse *resp = (void *)resp_msg;
    fieldmask_t mask;
    status_t st = fieldmask_parse(req->update_mask, &loyalty__v1__promotion__descriptor,
                                  promotion_updatable, &mask);
    if (status_is_ok(&st) && req->promotion == NULL) {
        st = status_invalid_field("promotion", "required");
    }
    if (status_is_ok(&st)) {
        st = validate_token("promotion.id", req->promotion->id, ID_MAX);
    }
    Loyalty__V1__Promotion *cur = NULL;
    if (status_is_ok(&st)) {
        st = promo_store_promotion_get(ctx->db, ctx->arena, ctx->merchant_id, req->promotion->id,
                                       true, &cur);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    /* The definition as it is, with the named fields changed, checked whole. */
    Loyalty__V1__Promotion *merged = pb_new(ctx->arena, &loyalty__v1__promotion__descriptor);
    *merged = *cur;
    fieldmask_apply(&mask, &merged->base, &req->promotion->base);
    Loyalty__V1__Promotion *p = pb_new(ctx->arena, &loyalty__v1__promotion__descriptor);
    st = promo_rules_check_promotion(ctx->arena, merged, p);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (req->_expected_version_case ==
            LOYALTY__V1__PROMO_UPDATE_PROMOTION_REQUEST___EXPECTED_VERSION_EXPECTED_VERSION &&
        req->expected_version != cur->version) {
        return status_make(STATUS_ABORTED, REASON_VERSION_MISMATCH,
                           "promotion changed since version %lld (now %lld); re-read and retry",
                           (long long)req->expected_version, (long long)cur->version);
    }
    if (cur->code_kind == CODE_UNIQUE &&
        (p->trigger != cur->trigger || p->code_kind != cur->code_kind)) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_UNIQUE_CODES_EXIST,
                           "a promotion with unique codes keeps its trigger and code kind");
    }
    p->id = cur->id;
    p->merchant_id = (char *)ctx->merchant_id;
    p->status = cur->status;
    p->created_at = cur->created_at;
    p->updated_at = ctx->now_s;
    p->version = cur->version + 1;
    st = promo_store_promotion_update(ctx->db, ctx->merchant_id, p, cur->code);
    if (status_is_ok(&st)) {
        invalidate_promotion(ctx, cur->code, p->code);
        resp->promotion = p;
    }
    return st;
}

static status_t set_status(rpc_ctx_t *ctx, const char *id, Loyalty__V1__PromoStatus status,
                           Loyalty__V1__Promotion **out) {
    status_t st = validate_token("promotion_id", id, ID_MAX);
    if (status_is_ok(&st)) {
        st = promo_store_promotion_get(ctx->db, ctx->arena, ctx->merchant_id, id, true, out);
    }
    if (!status_is_ok(&st) || (*out)->status == status) {
        return st; /* pausing a paused promotion answers it again */
    }
    st = promo_store_promotion_set_status(ctx->db, ctx->merchant_id, id, status, ctx->now_s);
    if (status_is_ok(&st)) {
        promo_cache_active_invalidate(ctx);
        (*out)->status = status;
        (*out)->updated_at = ctx->now_s;
        (*out)->version += 1;
    }
    return st;
}

static status_t rpc_pause_promotion(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                    ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PromoPausePromotionRequest *req = (const void *)req_msg;
    Loyalty__V1__PromoPausePromotionResponse *resp = (void *)resp_msg;
    return set_status(ctx, req->promotion_id, STATUS_PAUSED, &resp->promotion);
}

static status_t rpc_resume_promotion(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                     ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PromoResumePromotionRequest *req = (const void *)req_msg;
    Loyalty__V1__PromoResumePromotionResponse *resp = (void *)resp_msg;
    return set_status(ctx, req->promotion_id, STATUS_ACTIVE, &resp->promotion);
}

static status_t rpc_list_promotions(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                    ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PromoListPromotionsRequest *req = (const void *)req_msg;
    Loyalty__V1__PromoListPromotionsResponse *resp = (void *)resp_msg;
    if (req->status < 0 || req->status > STATUS_PAUSED) {
        return status_invalid_field("status", "unknown status");
    }
    if (req->trigger < 0 || req->trigger > LOYALTY__V1__PROMO_TRIGGER__PROMO_TRIGGER_CODE) {
        return status_invalid_field("trigger", "unknown trigger");
    }
    int limit = 0;
    char *after = NULL;
    status_t st = promo_page_start(req->page, ctx->arena, &limit, &after);
    bool more = false;
    if (status_is_ok(&st)) {
        st = promo_store_promotions_list(ctx->db, ctx->arena, ctx->merchant_id, req->status,
                                         req->trigger, after, limit, &resp->promotions,
                                         &resp->n_promotions, &more);
    }
    if (status_is_ok(&st)) {
        resp->page_info =
            promo_page_next(ctx->arena, more,
                            resp->n_promotions ? resp->promotions[resp->n_promotions - 1]->id : "");
    }
    return st;
}

static status_t rpc_generate_codes(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                   ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PromoGeneratePromoCodesRequest *req = (const void *)req_msg;
    Loyalty__V1__PromoGeneratePromoCodesResponse *resp = (void *)resp_msg;
    char prefix[PROMO_CODE_PREFIX_MAX + 1];
    status_t st = validate_token("promotion_id", req->promotion_id, ID_MAX);
    if (status_is_ok(&st) && (req->count < 1 || req->count > PROMO_CODE_BATCH_MAX)) {
        st = status_invalid_field("count", "must be between 1 and %d", PROMO_CODE_BATCH_MAX);
    }
    if (status_is_ok(&st)) {
        st = promo_rules_normalize_prefix(req->prefix, prefix);
    }
    Loyalty__V1__Promotion *p = NULL;
    if (status_is_ok(&st)) {
        st = promo_store_promotion_get(ctx->db, ctx->arena, ctx->merchant_id, req->promotion_id,
                                       true, &p);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    if (p->trigger != LOYALTY__V1__PROMO_TRIGGER__PROMO_TRIGGER_CODE) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_NOT_CODE_PROMOTION,
                           "codes are only for promotions with trigger CODE");
    }
    if (p->code_kind != CODE_UNIQUE) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_NOT_UNIQUE_CODES,
                           "the promotion uses one shared code");
    }
    char batch[ID_MAX];
    id_generate("cb", batch);
    st = promo_store_codes_generate(ctx->db, ctx->arena, ctx->merchant_id, p->id, batch, prefix,
                                    req->count, ctx->now_s);
    if (status_is_ok(&st)) {
        /* The codes table has no audit trigger (a batch is up to PROMO_CODE_BATCH_MAX rows):
         * the batch is recorded as one row, without the codes themselves. */
        char after[256];
        jsonw_t w;
        jsonw_begin(&w, after, sizeof after);
        jsonw_str(&w, "batch_id", batch);
        jsonw_str(&w, "promotion_id", p->id);
        jsonw_str(&w, "prefix", prefix);
        jsonw_int(&w, "count", req->count);
        jsonw_end(&w);
        st = audit_record(ctx->db, ctx->merchant_id, "codes", "INSERT", NULL, after);
    }
    if (status_is_ok(&st)) {
        resp->batch_id = arena_strdup(ctx->arena, batch);
        resp->count = req->count;
    }
    return st;
}

static status_t rpc_list_codes(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                               ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PromoListPromoCodesRequest *req = (const void *)req_msg;
    Loyalty__V1__PromoListPromoCodesResponse *resp = (void *)resp_msg;
    status_t st = validate_token("promotion_id", req->promotion_id, ID_MAX);
    if (status_is_ok(&st) && req->batch_id[0]) {
        st = validate_token("batch_id", req->batch_id, ID_MAX);
    }
    if (status_is_ok(&st) &&
        (req->status < 0 || req->status > LOYALTY__V1__PROMO_CODE_STATUS__PROMO_CODE_STATUS_USED)) {
        st = status_invalid_field("status", "unknown status");
    }
    int limit = 0;
    char *after = NULL;
    if (status_is_ok(&st)) {
        st = promo_page_start(req->page, ctx->arena, &limit, &after);
    }
    bool more = false;
    if (status_is_ok(&st)) {
        st = promo_store_codes_list(ctx->db, ctx->arena, ctx->merchant_id, req->promotion_id,
                                    req->batch_id, req->status, after, limit, ctx->now_s,
                                    &resp->codes, &resp->n_codes, &more);
    }
    if (status_is_ok(&st)) {
        resp->page_info = promo_page_next(
            ctx->arena, more, resp->n_codes ? resp->codes[resp->n_codes - 1]->code : "");
    }
    return st;
}

static status_t rpc_get_settings(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                 ProtobufCMessage *resp_msg) {
    Loyalty__V1__PromoGetSettingsResponse *resp = (void *)resp_msg;
    promo_periods_t periods;
    return promo_store_settings_get(ctx->db, ctx->arena, ctx->merchant_id, ctx->now_s,
                                    &resp->settings, &periods);
}

static status_t rpc_update_settings(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                    ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PromoUpdateSettingsRequest *req = (const void *)req_msg;
    Loyalty__V1__PromoUpdateSettingsResponse *resp = (void *)resp_msg;
    fieldmask_t mask;
    status_t st =
        fieldmask_parse(req->update_mask, &loyalty__v1__promo_settings__descriptor, NULL, &mask);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (req->settings == NULL) {
        return status_invalid_field("settings", "required");
    }
    /* The settings as they are, under the lock every update takes, with the named fields
     * changed. */
    Loyalty__V1__PromoSettings *s = NULL;
    promo_periods_t periods;
    st = db_lock_named(ctx->db, "promo.settings", ctx->merchant_id);
    if (status_is_ok(&st)) {
        st = promo_store_settings_get(ctx->db, ctx->arena, ctx->merchant_id, ctx->now_s, &s,
                                      &periods);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    fieldmask_apply(&mask, &s->base, &req->settings->base);
    st = validate_text("settings.time_zone", s->time_zone, 1, PROMO_TIME_ZONE_MAX);
    if (status_is_ok(&st)) {
        st = promo_store_settings_put(ctx->db, ctx->merchant_id, s, ctx->now_s);
    }
    if (status_is_ok(&st)) {
        resp->settings = s;
    }
    return st;
}

static const rpc_method_t promo_methods[] = {
    {"CreatePromotion", rpc_create_promotion, RPC_MUTATE},
    {"GetPromotion", rpc_get_promotion, RPC_READ},
    {"UpdatePromotion", rpc_update_promotion, RPC_MUTATE},
    {"PausePromotion", rpc_pause_promotion, RPC_MUTATE},
    {"ResumePromotion", rpc_resume_promotion, RPC_MUTATE},
    {"ListPromotions", rpc_list_promotions, RPC_READ},
    {"GeneratePromoCodes", rpc_generate_codes, RPC_MUTATE},
    {"ListPromoCodes", rpc_list_codes, RPC_READ},
    {"CreateCouponTemplate", promo_rpc_create_coupon_template, RPC_MUTATE},
    {"GetCouponTemplate", promo_rpc_get_coupon_template, RPC_READ},
    {"ListCouponTemplates", promo_rpc_list_coupon_templates, RPC_READ},
    {"SetCouponTemplateActive", promo_rpc_set_coupon_template_active, RPC_MUTATE},
    {"IssueCoupon", promo_rpc_issue_coupon, RPC_MUTATE},
    {"GetCoupon", promo_rpc_get_coupon, RPC_READ},
    {"ListCoupons", promo_rpc_list_coupons, RPC_READ},
    {"Quote", promo_rpc_quote, RPC_READ},
    {"Reserve", promo_rpc_reserve, RPC_MUTATE},
    {"Confirm", promo_rpc_confirm, RPC_MUTATE},
    {"Release", promo_rpc_release, RPC_MUTATE},
    {"ReleaseUsage", promo_rpc_release_usage, RPC_MUTATE},
    {"GetReservation", promo_rpc_get_reservation, RPC_READ},
    {"GetPromoSettings", rpc_get_settings, RPC_READ},
    {"UpdatePromoSettings", rpc_update_settings, RPC_MUTATE},
    {NULL, NULL, RPC_READ},
};

static const rpc_method_merger_t promo_mergers[] = {
    {"Reserve", promo_merge_reserve},
    {"Release", promo_merge_release},
    {"ReleaseUsage", promo_merge_release_usage},
    {NULL, NULL},
};

const rpc_service_t promo_service = {&loyalty__v1__promo_service__descriptor, promo_methods,
                                     promo_mergers};
