/* promo_client.h -- the test client kit's promo-svc part (no suite state: each call takes the
 * address and the arena): promotions, carts and coupons built in an arena, and one-line
 * wrappers of the PromoService RPCs. */
#ifndef PROMO_CLIENT_H
#define PROMO_CLIENT_H

#include "harness.h"
#include "loyalty/v1/promo.pb-c.h"

#include <criterion/criterion.h>
#include <libpq-fe.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROMO_RPC_TIMEOUT_MS 60000

static inline status_t promo_call(const char *addr, const char *method, const ProtobufCMessage *req,
                                  arena_t *a, ProtobufCMessage **resp) {
    rpc_call_opts_t opts = {.timeout_ms = PROMO_RPC_TIMEOUT_MS};
    ProtobufCMessage *ignored = NULL;
    return rpc_call(rpc_channel_get(addr), &loyalty__v1__promo_service__descriptor, method, req, a,
                    resp ? resp : &ignored, &opts);
}

/* ---- promotions ---- */

static inline Loyalty__V1__Promotion *pt_promotion(arena_t *a, const char *name, int priority) {
    Loyalty__V1__Promotion *p = arena_alloc(a, sizeof *p);
    loyalty__v1__promotion__init(p);
    p->name = (char *)name;
    p->trigger = LOYALTY__V1__PROMO_TRIGGER__PROMO_TRIGGER_AUTOMATIC;
    p->priority = priority;
    return p;
}

static inline void pt_amount_off(arena_t *a, Loyalty__V1__Promotion *p, int64_t cents) {
    p->rule_case = LOYALTY__V1__PROMOTION__RULE_AMOUNT_OFF;
    p->amount_off = arena_alloc(a, sizeof *p->amount_off);
    loyalty__v1__promo_amount_off__init(p->amount_off);
    p->amount_off->amount_off_cents = cents;
}

static inline void pt_percent_off(arena_t *a, Loyalty__V1__Promotion *p, int64_t bps) {
    p->rule_case = LOYALTY__V1__PROMOTION__RULE_PERCENT_OFF;
    p->percent_off = arena_alloc(a, sizeof *p->percent_off);
    loyalty__v1__promo_percent_off__init(p->percent_off);
    p->percent_off->percent_off_bps = bps;
}

static inline void pt_shared_code(Loyalty__V1__Promotion *p, const char *code) {
    p->trigger = LOYALTY__V1__PROMO_TRIGGER__PROMO_TRIGGER_CODE;
    p->code_kind = LOYALTY__V1__PROMO_CODE_KIND__PROMO_CODE_KIND_SHARED;
    p->code = (char *)code;
}

static inline void pt_unique_codes(Loyalty__V1__Promotion *p) {
    p->trigger = LOYALTY__V1__PROMO_TRIGGER__PROMO_TRIGGER_CODE;
    p->code_kind = LOYALTY__V1__PROMO_CODE_KIND__PROMO_CODE_KIND_UNIQUE;
}

static inline void pt_limit(arena_t *a, Loyalty__V1__Promotion *p,
                            Loyalty__V1__PromoLimitScope scope,
                            Loyalty__V1__PromoLimitPeriod period, int64_t max_uses,
                            int64_t max_discount) {
    Loyalty__V1__PromoLimit **limits = arena_alloc(a, (p->n_limits + 1) * sizeof *limits);
    for (size_t i = 0; i < p->n_limits; i++) {
        limits[i] = p->limits[i];
    }
    Loyalty__V1__PromoLimit *l = arena_alloc(a, sizeof *l);
    loyalty__v1__promo_limit__init(l);
    l->scope = scope;
    l->period = period;
    l->max_uses = max_uses;
    l->max_discount_cents = max_discount;
    limits[p->n_limits++] = l;
    p->limits = limits;
}

#define SCOPE_MEMBER LOYALTY__V1__PROMO_LIMIT_SCOPE__PROMO_LIMIT_SCOPE_MEMBER
#define SCOPE_STORE LOYALTY__V1__PROMO_LIMIT_SCOPE__PROMO_LIMIT_SCOPE_STORE
#define SCOPE_TOTAL LOYALTY__V1__PROMO_LIMIT_SCOPE__PROMO_LIMIT_SCOPE_TOTAL
#define PERIOD_LIFETIME LOYALTY__V1__PROMO_LIMIT_PERIOD__PROMO_LIMIT_PERIOD_LIFETIME
#define PERIOD_DAY LOYALTY__V1__PROMO_LIMIT_PERIOD__PROMO_LIMIT_PERIOD_DAY

static inline status_t pt_create(const char *addr, const char *merchant, arena_t *a,
                                 Loyalty__V1__Promotion *p, Loyalty__V1__Promotion **out) {
    Loyalty__V1__PromoCreatePromotionRequest req =
        LOYALTY__V1__PROMO_CREATE_PROMOTION_REQUEST__INIT;
    req.merchant_id = (char *)merchant;
    req.idempotency_key = (char *)harness_key();
    req.promotion = p;
    ProtobufCMessage *resp = NULL;
    status_t st = promo_call(addr, "CreatePromotion", &req.base, a, &resp);
    if (out) {
        *out = status_is_ok(&st) ? ((Loyalty__V1__PromoCreatePromotionResponse *)resp)->promotion
                                 : NULL;
    }
    return st;
}

/* ---- carts ---- */

static inline Loyalty__V1__PromoCart *pt_cart(arena_t *a, const char *member_id) {
    Loyalty__V1__PromoCart *c = arena_alloc(a, sizeof *c);
    loyalty__v1__promo_cart__init(c);
    c->member_id = (char *)member_id;
    c->lines = arena_alloc(a, 16 * sizeof *c->lines);
    c->codes = arena_alloc(a, 8 * sizeof *c->codes);
    c->coupon_ids = arena_alloc(a, 8 * sizeof *c->coupon_ids);
    c->coupon_codes = arena_alloc(a, 8 * sizeof *c->coupon_codes);
    return c;
}

static inline void pt_line(arena_t *a, Loyalty__V1__PromoCart *c, const char *sku, int64_t qty,
                           int64_t unit_price) {
    Loyalty__V1__PromoCartLine *l = arena_alloc(a, sizeof *l);
    loyalty__v1__promo_cart_line__init(l);
    l->line_id = arena_printf(a, "line-%zu", c->n_lines + 1);
    l->sku = (char *)sku;
    l->category = "general";
    l->quantity = qty;
    l->unit_price_cents = unit_price;
    c->lines[c->n_lines++] = l;
}

static inline status_t pt_quote(const char *addr, const char *merchant, arena_t *a,
                                Loyalty__V1__PromoCart *cart, Loyalty__V1__PromoQuoteResult **out) {
    Loyalty__V1__PromoQuoteRequest req = LOYALTY__V1__PROMO_QUOTE_REQUEST__INIT;
    req.merchant_id = (char *)merchant;
    req.cart = cart;
    ProtobufCMessage *resp = NULL;
    status_t st = promo_call(addr, "Quote", &req.base, a, &resp);
    if (out) {
        *out = status_is_ok(&st) ? ((Loyalty__V1__PromoQuoteResponse *)resp)->quote : NULL;
    }
    return st;
}

static inline status_t pt_reserve(const char *addr, const char *merchant, arena_t *a,
                                  const char *checkout_id, const char *key,
                                  Loyalty__V1__PromoCart *cart, int64_t ttl_s,
                                  Loyalty__V1__PromoReservation **out) {
    Loyalty__V1__PromoReserveRequest req = LOYALTY__V1__PROMO_RESERVE_REQUEST__INIT;
    req.merchant_id = (char *)merchant;
    req.idempotency_key = (char *)(key ? key : harness_key());
    req.checkout_id = (char *)checkout_id;
    req.cart = cart;
    req.ttl_s = ttl_s;
    ProtobufCMessage *resp = NULL;
    status_t st = promo_call(addr, "Reserve", &req.base, a, &resp);
    if (out) {
        *out = status_is_ok(&st) ? ((Loyalty__V1__PromoReserveResponse *)resp)->reservation : NULL;
    }
    return st;
}

/* Confirm, Release and GetReservation share a shape: merchant, key, checkout. */
static inline status_t pt_confirm(const char *addr, const char *merchant, arena_t *a,
                                  const char *checkout_id, const char *order_id,
                                  Loyalty__V1__PromoReservation **out) {
    Loyalty__V1__PromoConfirmRequest req = LOYALTY__V1__PROMO_CONFIRM_REQUEST__INIT;
    req.merchant_id = (char *)merchant;
    req.idempotency_key = (char *)harness_key();
    req.checkout_id = (char *)checkout_id;
    req.order_id = (char *)(order_id ? order_id : "");
    ProtobufCMessage *resp = NULL;
    status_t st = promo_call(addr, "Confirm", &req.base, a, &resp);
    if (out) {
        *out = status_is_ok(&st) ? ((Loyalty__V1__PromoConfirmResponse *)resp)->reservation : NULL;
    }
    return st;
}

static inline status_t pt_release(const char *addr, const char *merchant, arena_t *a,
                                  const char *checkout_id, Loyalty__V1__PromoReservation **out) {
    Loyalty__V1__PromoReleaseRequest req = LOYALTY__V1__PROMO_RELEASE_REQUEST__INIT;
    req.merchant_id = (char *)merchant;
    req.idempotency_key = (char *)harness_key();
    req.checkout_id = (char *)checkout_id;
    ProtobufCMessage *resp = NULL;
    status_t st = promo_call(addr, "Release", &req.base, a, &resp);
    if (out) {
        *out = status_is_ok(&st) ? ((Loyalty__V1__PromoReleaseResponse *)resp)->reservation : NULL;
    }
    return st;
}

static inline status_t pt_get_reservation(const char *addr, const char *merchant, arena_t *a,
                                          const char *checkout_id,
                                          Loyalty__V1__PromoReservation **out) {
    Loyalty__V1__PromoGetReservationRequest req = LOYALTY__V1__PROMO_GET_RESERVATION_REQUEST__INIT;
    req.merchant_id = (char *)merchant;
    req.checkout_id = (char *)checkout_id;
    ProtobufCMessage *resp = NULL;
    status_t st = promo_call(addr, "GetReservation", &req.base, a, &resp);
    if (out) {
        *out = status_is_ok(&st) ? ((Loyalty__V1__PromoGetReservationResponse *)resp)->reservation
                                 : NULL;
    }
    return st;
}

/* ---- coupons ---- */

static inline status_t pt_template(const char *addr, const char *merchant, arena_t *a,
                                   Loyalty__V1__PromoCouponTemplate *t,
                                   Loyalty__V1__PromoCouponTemplate **out) {
    Loyalty__V1__PromoCreateCouponTemplateRequest req =
        LOYALTY__V1__PROMO_CREATE_COUPON_TEMPLATE_REQUEST__INIT;
    req.merchant_id = (char *)merchant;
    req.idempotency_key = (char *)harness_key();
    req.coupon_template = t;
    ProtobufCMessage *resp = NULL;
    status_t st = promo_call(addr, "CreateCouponTemplate", &req.base, a, &resp);
    if (out) {
        *out = status_is_ok(&st)
                   ? ((Loyalty__V1__PromoCreateCouponTemplateResponse *)resp)->coupon_template
                   : NULL;
    }
    return st;
}

/* An amount-off template valid for 30 days. */
static inline Loyalty__V1__PromoCouponTemplate *pt_amount_template(arena_t *a, int64_t cents,
                                                                   int64_t min_spend) {
    Loyalty__V1__PromoCouponTemplate *t = arena_alloc(a, sizeof *t);
    loyalty__v1__promo_coupon_template__init(t);
    t->name = "Welcome voucher";
    t->kind = LOYALTY__V1__PROMO_COUPON_KIND__PROMO_COUPON_KIND_AMOUNT_OFF;
    t->amount_off_cents = cents;
    t->min_spend_cents = min_spend;
    t->valid_days = 30;
    return t;
}

static inline status_t pt_issue(const char *addr, const char *merchant, arena_t *a,
                                const char *member_id, const char *template_id,
                                Loyalty__V1__PromoCouponSource source, const char *key,
                                Loyalty__V1__PromoCoupon **out) {
    Loyalty__V1__PromoIssueCouponRequest req = LOYALTY__V1__PROMO_ISSUE_COUPON_REQUEST__INIT;
    req.merchant_id = (char *)merchant;
    req.idempotency_key = (char *)(key ? key : harness_key());
    req.member_id = (char *)member_id;
    req.template_id = (char *)template_id;
    req.source = source;
    ProtobufCMessage *resp = NULL;
    status_t st = promo_call(addr, "IssueCoupon", &req.base, a, &resp);
    if (out) {
        *out = status_is_ok(&st) ? ((Loyalty__V1__PromoIssueCouponResponse *)resp)->coupon : NULL;
    }
    return st;
}

#define SOURCE_WELCOME LOYALTY__V1__PROMO_COUPON_SOURCE__PROMO_COUPON_SOURCE_WELCOME
#define SOURCE_POINTS_MALL LOYALTY__V1__PROMO_COUPON_SOURCE__PROMO_COUPON_SOURCE_POINTS_MALL

static inline const Loyalty__V1__PromoConsidered *
pt_considered(const Loyalty__V1__PromoQuoteResult *q, const char *id) {
    for (size_t i = 0; i < q->n_considered; i++) {
        const Loyalty__V1__PromoConsidered *c = q->considered[i];
        if (strcmp(c->promotion_id, id) == 0 || strcmp(c->coupon_id, id) == 0 ||
            strcmp(c->code, id) == 0) {
            return c;
        }
    }
    return NULL;
}

/* One integer from a query against the test database (schema-qualified). */
static inline int64_t pt_sql_int(const char *sql, const char *p1, const char *p2) {
    PGconn *pg = PQconnectdb(harness_pg_dsn());
    cr_assert_eq(PQstatus(pg), CONNECTION_OK);
    const char *params[] = {p1, p2};
    PGresult *r = PQexecParams(pg, sql, p2 ? 2 : 1, NULL, params, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(pg));
    int64_t v = PQntuples(r) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
    PQclear(r);
    PQfinish(pg);
    return v;
}

#endif
