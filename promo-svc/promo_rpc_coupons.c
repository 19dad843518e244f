/* promo_rpc_coupons.c -- PromoService handlers for coupon templates and issued coupons. */
#include "ids.h"
#include "jsonw.h"
#include "loyalty/v1/promo.pb-c.h"
#include "outbox.h"
#include "pb.h"
#include "promo_handlers.h"
#include "promo_rules.h"
#include "promo_store.h"
#include "validate.h"

#define SOURCE_MAX LOYALTY__V1__PROMO_COUPON_SOURCE__PROMO_COUPON_SOURCE_REFERRAL

status_t promo_rpc_create_coupon_template(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                          ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PromoCreateCouponTemplateRequest *req = (const void *)req_msg;
    Loyalty__V1__PromoCreateCouponTemplateResponse *resp = (void *)resp_msg;
    Loyalty__V1__PromoCouponTemplate *t =
        pb_new(ctx->arena, &loyalty__v1__promo_coupon_template__descriptor);
    status_t st = promo_rules_check_template(req->coupon_template, t);
    if (!status_is_ok(&st)) {
        return st;
    }
    char id[ID_MAX];
    id_generate("ctpl", id);
    t->id = arena_strdup(ctx->arena, id);
    t->merchant_id = (char *)ctx->merchant_id;
    t->issued_count = 0;
    t->active = true;
    t->created_at = ctx->now_s;
    st = promo_store_template_insert(ctx->db, ctx->merchant_id, t);
    if (status_is_ok(&st)) {
        resp->coupon_template = t;
    }
    return st;
}

status_t promo_rpc_get_coupon_template(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                       ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PromoGetCouponTemplateRequest *req = (const void *)req_msg;
    Loyalty__V1__PromoGetCouponTemplateResponse *resp = (void *)resp_msg;
    status_t st = validate_token("template_id", req->template_id, ID_MAX);
    if (!status_is_ok(&st)) {
        return st;
    }
    return promo_store_template_get(ctx->db, ctx->arena, ctx->merchant_id, req->template_id,
                                    &resp->coupon_template);
}

status_t promo_rpc_list_coupon_templates(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                         ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PromoListCouponTemplatesRequest *req = (const void *)req_msg;
    Loyalty__V1__PromoListCouponTemplatesResponse *resp = (void *)resp_msg;
    int limit = 0;
    char *after = NULL;
    bool more = false;
    status_t st = promo_page_start(req->page, ctx->arena, &limit, &after);
    if (status_is_ok(&st)) {
        st = promo_store_templates_list(ctx->db, ctx->arena, ctx->merchant_id, after, limit,
                                        &resp->templates, &resp->n_templates, &more);
    }
    if (status_is_ok(&st)) {
        resp->page_info = promo_page_next(
            ctx->arena, more, resp->n_templates ? resp->templates[resp->n_templates - 1]->id : "");
    }
    return st;
}

status_t promo_rpc_set_coupon_template_active(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                              ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PromoSetCouponTemplateActiveRequest *req = (const void *)req_msg;
    Loyalty__V1__PromoSetCouponTemplateActiveResponse *resp = (void *)resp_msg;
    status_t st = validate_token("template_id", req->template_id, ID_MAX);
    if (!status_is_ok(&st)) {
        return st;
    }
    return promo_store_template_set_active(ctx->db, ctx->arena, ctx->merchant_id, req->template_id,
                                           req->active, &resp->coupon_template);
}

/* A new coupon of template t for a member, with the template's terms copied. */
static Loyalty__V1__PromoCoupon *coupon_new(rpc_ctx_t *ctx,
                                            const Loyalty__V1__PromoCouponTemplate *t,
                                            const Loyalty__V1__PromoIssueCouponRequest *req) {
    Loyalty__V1__PromoCoupon *c = pb_new(ctx->arena, &loyalty__v1__promo_coupon__descriptor);
    char id[ID_MAX];
    id_generate("cpn", id);
    c->id = arena_strdup(ctx->arena, id);
    c->merchant_id = (char *)ctx->merchant_id;
    c->member_id = req->member_id;
    c->template_id = t->id;
    c->name = t->name;
    c->kind = t->kind;
    c->amount_off_cents = t->amount_off_cents;
    c->percent_off_bps = t->percent_off_bps;
    c->max_discount_cents = t->max_discount_cents;
    c->min_spend_cents = t->min_spend_cents;
    c->source = req->source;
    c->status = LOYALTY__V1__PROMO_COUPON_STATUS__PROMO_COUPON_STATUS_AVAILABLE;
    c->issued_at = ctx->now_s;
    promo_rules_coupon_window(t, ctx->now_s, &c->valid_from_at, &c->valid_until_at);
    return c;
}

/* coupon.issued for integrations, in the transaction that issues the coupon. */
static status_t promo_emit_coupon_issued(rpc_ctx_t *ctx, const Loyalty__V1__PromoCoupon *c) {
    const ProtobufCEnumValue *source = protobuf_c_enum_descriptor_get_value(
        &loyalty__v1__promo_coupon_source__descriptor, c->source);
    char payload[1024];
    jsonw_t w;
    jsonw_begin(&w, payload, sizeof payload);
    jsonw_str(&w, "member_id", c->member_id);
    jsonw_str(&w, "coupon_id", c->id);
    jsonw_str(&w, "template_id", c->template_id);
    jsonw_str(&w, "source", source ? source->name : "");
    jsonw_int(&w, "valid_from_at", c->valid_from_at);
    jsonw_int(&w, "valid_until_at", c->valid_until_at);
    jsonw_end(&w);
    return outbox_emit(ctx, ctx->merchant_id, OUTBOX_EVENTS_STREAM, "coupon.issued", c->member_id,
                       payload, NULL);
}

status_t promo_rpc_issue_coupon(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PromoIssueCouponRequest *req = (const void *)req_msg;
    Loyalty__V1__PromoIssueCouponResponse *resp = (void *)resp_msg;
    status_t st = validate_token("member_id", req->member_id, PROMO_TOKEN_MAX);
    if (status_is_ok(&st)) {
        st = validate_token("template_id", req->template_id, ID_MAX);
    }
    if (status_is_ok(&st) && (req->source < 1 || req->source > SOURCE_MAX)) {
        st = status_invalid_field("source", "must be one of WELCOME, BIRTHDAY, WIN_BACK, "
                                            "POINTS_MALL, MANUAL, REFERRAL");
    }
    Loyalty__V1__PromoCouponTemplate *t = NULL;
    if (status_is_ok(&st)) {
        st = promo_store_template_get(ctx->db, ctx->arena, ctx->merchant_id, req->template_id, &t);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    if (!t->active) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_TEMPLATE_PAUSED,
                           "the coupon template is paused");
    }
    Loyalty__V1__PromoCoupon *c = coupon_new(ctx, t, req);
    if (ctx->now_s >= c->valid_until_at) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_TEMPLATE_EXPIRED,
                           "coupons of this template are no longer valid");
    }
    st = promo_store_template_take(ctx->db, ctx->merchant_id, t, req->member_id);
    if (status_is_ok(&st)) {
        st = promo_store_coupon_insert(ctx->db, ctx->arena, ctx->merchant_id, c);
    }
    if (status_is_ok(&st)) {
        resp->coupon = c;
        st = promo_emit_coupon_issued(ctx, c);
    }
    return st;
}

status_t promo_rpc_get_coupon(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                              ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PromoGetCouponRequest *req = (const void *)req_msg;
    Loyalty__V1__PromoGetCouponResponse *resp = (void *)resp_msg;
    status_t st = validate_token("coupon_id", req->coupon_id, PROMO_TOKEN_MAX);
    if (status_is_ok(&st)) {
        st = promo_store_coupon_get(ctx->db, ctx->arena, ctx->merchant_id, req->coupon_id,
                                    ctx->now_s, &resp->coupon);
    }
    return st;
}

status_t promo_rpc_list_coupons(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PromoListCouponsRequest *req = (const void *)req_msg;
    Loyalty__V1__PromoListCouponsResponse *resp = (void *)resp_msg;
    status_t st = validate_token("member_id", req->member_id, PROMO_TOKEN_MAX);
    if (status_is_ok(&st) &&
        (req->status < 0 ||
         req->status > LOYALTY__V1__PROMO_COUPON_STATUS__PROMO_COUPON_STATUS_EXPIRED)) {
        st = status_invalid_field("status", "unknown status");
    }
    int limit = 0;
    char *after = NULL;
    bool more = false;
    if (status_is_ok(&st)) {
        st = promo_page_start(req->page, ctx->arena, &limit, &after);
    }
    if (status_is_ok(&st)) {
        st = promo_store_coupons_list(ctx->db, ctx->arena, ctx->merchant_id, req->member_id,
                                      req->status, ctx->now_s, after, limit, &resp->coupons,
                                      &resp->n_coupons, &more);
    }
    if (status_is_ok(&st)) {
        resp->page_info = promo_page_next(
            ctx->arena, more, resp->n_coupons ? resp->coupons[resp->n_coupons - 1]->id : "");
    }
    return st;
}
