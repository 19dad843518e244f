/* promo_rpc_checkout.c -- the checkout RPCs: Quote, Reserve, Confirm, Release, ReleaseUsage and
 * GetReservation, and the expiry of reservations whose TTL passed (a background job, and lazily
 * by Reserve). State machine: RESERVED -> CONFIRMED -> REFUNDED, RESERVED -> RELEASED | EXPIRED;
 * every transition runs under the reservation's row lock. */
#include "promo_handlers.h"

#include "pb.h"
#include "promo_ops.h"
#include "promo_rules.h"
#include "promo_store.h"
#include "validate.h"

#include <string.h>

#define RES(x) LOYALTY__V1__PROMO_RESERVATION_STATUS__PROMO_RESERVATION_STATUS_##x
#define CODE_STATUS(x) LOYALTY__V1__PROMO_CODE_STATUS__PROMO_CODE_STATUS_##x
#define COUPON_STATUS(x) LOYALTY__V1__PROMO_COUPON_STATUS__PROMO_COUPON_STATUS_##x

#define CHECKOUT_ID_MAX 64
#define ORDER_ID_MAX 128
#define LAZY_EXPIRE_BATCH 8
#define EXPIRE_JOB_BATCH 200

status_t promo_rpc_quote(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                         ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PromoQuoteRequest *req = (const void *)req_msg;
    Loyalty__V1__PromoQuoteResponse *resp = (void *)resp_msg;
    promo_pricing_t pc;
    status_t st = promo_ops_price(ctx, req->cart, false, NULL, &pc);
    if (status_is_ok(&st)) {
        resp->quote = pc.quote;
    }
    return st;
}

/* What a reservation's quote says it holds, so that releases skip the tables it has no rows in
 * (a reservation without its quote, e.g. a tombstone, is assumed to hold everything). */
static void holdings(const Loyalty__V1__PromoReservation *r, bool *coupons, bool *codes) {
    *coupons = *codes = r->quote == NULL;
    for (size_t i = 0; r->quote && i < r->quote->n_considered; i++) {
        const Loyalty__V1__PromoConsidered *c = r->quote->considered[i];
        if (c->applied && c->kind == LOYALTY__V1__PROMO_SOURCE_KIND__PROMO_SOURCE_KIND_COUPON) {
            *coupons = true;
        } else if (c->applied && c->code[0] != '\0') {
            *codes = true;
        }
    }
}

/* Gives back what a reservation holds (one statement after locking its counters). */
static status_t give_back(rpc_ctx_t *ctx, const Loyalty__V1__PromoReservation *r, bool usage,
                          bool coupons) {
    return promo_store_give_back(ctx->db, r->merchant_id, r->checkout_id, usage, coupons);
}

/* Expires one reservation if it is still RESERVED past its TTL and nobody else holds it
 * (SKIP LOCKED: another replica's job or a concurrent call is already on it). */
static status_t expire_one(rpc_ctx_t *ctx, const char *merchant_id, const char *checkout_id) {
    Loyalty__V1__PromoReservation *r = NULL;
    bool found = false;
    status_t st = promo_store_reservation_claim_expired(ctx->db, ctx->arena, merchant_id,
                                                        checkout_id, ctx->now_s, &r, &found);
    if (!status_is_ok(&st) || !found) {
        return st;
    }
    st = give_back(ctx, r, true, true);
    if (status_is_ok(&st)) {
        r->status = RES(EXPIRED);
        r->updated_at = ctx->now_s;
        st = promo_store_reservation_update(ctx->db, merchant_id, r);
    }
    return st;
}

static status_t validate_checkout_id(const char *checkout_id) {
    return validate_token("checkout_id", checkout_id, CHECKOUT_ID_MAX);
}

status_t promo_rpc_reserve(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                           ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PromoReserveRequest *req = (const void *)req_msg;
    Loyalty__V1__PromoReserveResponse *resp = (void *)resp_msg;
    int64_t ttl_s = 0;
    status_t st = validate_checkout_id(req->checkout_id);
    if (status_is_ok(&st)) {
        st = promo_rules_check_ttl(req->ttl_s, &ttl_s);
    }
    /* The checkout's reservation, the merchant's expired ones, and the settings and promotions
     * the pricing needs: one round trip, before anything is locked. */
    promo_reserve_reads_t *in = arena_alloc(ctx->arena, sizeof *in);
    if (status_is_ok(&st)) {
        st = promo_store_reserve_reads(ctx->db, ctx->arena, ctx->merchant_id, req->checkout_id,
                                       ctx->now_s, LAZY_EXPIRE_BATCH, in);
    }
    /* A checkout that already has a reservation, or was released before it reserved, is
     * refused whatever its cart (the insert below catches a concurrent Reserve of it). */
    if (status_is_ok(&st) && in->existing_found) {
        return status_make(STATUS_ALREADY_EXISTS, REASON_RESERVATION_EXISTS,
                           "checkout %s already has a reservation (%s)", req->checkout_id,
                           in->existing->status == RES(RELEASED) ? "released" : "taken");
    }
    /* Lazily return what this merchant's expired reservations still hold, so that their uses,
     * codes and coupons are available to this checkout. */
    for (size_t i = 0; status_is_ok(&st) && i < in->n_expired; i++) {
        st = expire_one(ctx, ctx->merchant_id, in->expired[i].checkout_id);
    }
    promo_pricing_t pc;
    if (status_is_ok(&st)) {
        st = promo_ops_price(ctx, req->cart, true, &in->preload, &pc);
    }
    if (status_is_ok(&st)) {
        st = promo_ops_check_requested(&pc);
    }
    if (!status_is_ok(&st)) {
        return st; /* the runtime rolls back: nothing is held */
    }
    promo_counter_t *deltas = NULL;
    char **codes = NULL, **coupons = NULL;
    size_t n_deltas = 0, n_codes = 0, n_coupons = 0;
    promo_ops_takes(ctx->arena, &pc, &deltas, &n_deltas, &codes, &n_codes, &coupons, &n_coupons);
    Loyalty__V1__PromoReservation *r =
        pb_new(ctx->arena, &loyalty__v1__promo_reservation__descriptor);
    r->checkout_id = req->checkout_id;
    r->merchant_id = (char *)ctx->merchant_id;
    r->member_id = pc.cart.member_id;
    r->status = RES(RESERVED);
    r->expires_at = ctx->now_s + ttl_s;
    r->quote = pc.quote;
    r->created_at = r->updated_at = ctx->now_s;
    st = promo_store_reserve(ctx->db, ctx->arena, ctx->merchant_id, r, coupons, n_coupons, codes,
                             n_codes, deltas, n_deltas);
    if (status_is_ok(&st)) {
        resp->reservation = r;
    }
    return st;
}

/* The reservation of a checkout, locked; NOT_FOUND RESERVATION_NOT_FOUND. */
static status_t reservation_locked(rpc_ctx_t *ctx, const char *checkout_id, const char *order_id,
                                   Loyalty__V1__PromoReservation **out) {
    bool found = false;
    status_t st = promo_store_reservation_get(ctx->db, ctx->arena, ctx->merchant_id, checkout_id,
                                              order_id, true, out, &found);
    if (status_is_ok(&st) && !found) {
        return status_make(STATUS_NOT_FOUND, REASON_RESERVATION_NOT_FOUND, "no reservation found");
    }
    return st;
}

status_t promo_rpc_confirm(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                           ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PromoConfirmRequest *req = (const void *)req_msg;
    Loyalty__V1__PromoConfirmResponse *resp = (void *)resp_msg;
    status_t st = validate_checkout_id(req->checkout_id);
    if (status_is_ok(&st) && req->order_id[0]) {
        st = validate_token("order_id", req->order_id, ORDER_ID_MAX);
    }
    Loyalty__V1__PromoReservation *r = NULL;
    if (status_is_ok(&st)) {
        st = reservation_locked(ctx, req->checkout_id, NULL, &r);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    switch (r->status) {
    case RES(CONFIRMED):
    case RES(REFUNDED):
        resp->reservation = r; /* confirming again answers the same */
        return status_ok();
    case RES(RELEASED):
        return status_make(STATUS_FAILED_PRECONDITION, REASON_RESERVATION_RELEASED,
                           "the reservation was released");
    default:
        break;
    }
    /* Past its TTL it is expired, even if the job has not returned what it held yet. */
    if (r->status != RES(RESERVED) || ctx->now_s >= r->expires_at) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_RESERVATION_EXPIRED,
                           "the reservation expired before it was confirmed");
    }
    bool has_coupons = false, has_codes = false;
    holdings(r, &has_coupons, &has_codes);
    if (has_coupons) {
        st = promo_store_coupons_set_by_checkout(ctx->db, ctx->merchant_id, r->checkout_id,
                                                 COUPON_STATUS(USED), ctx->now_s);
    }
    if (status_is_ok(&st) && has_codes) {
        st = promo_store_codes_set_by_checkout(ctx->db, ctx->merchant_id, r->checkout_id,
                                               CODE_STATUS(USED));
    }
    r->status = RES(CONFIRMED);
    r->order_id = req->order_id;
    r->updated_at = ctx->now_s;
    if (status_is_ok(&st)) {
        st = promo_store_reservation_update(ctx->db, ctx->merchant_id, r);
    }
    if (status_is_ok(&st)) {
        resp->reservation = r;
    }
    return st;
}

status_t promo_rpc_release(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                           ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PromoReleaseRequest *req = (const void *)req_msg;
    Loyalty__V1__PromoReleaseResponse *resp = (void *)resp_msg;
    status_t st = validate_checkout_id(req->checkout_id);
    if (!status_is_ok(&st)) {
        return st;
    }
    Loyalty__V1__PromoReservation *r = NULL;
    bool found = false, inserted = false;
    st = promo_store_reservation_get(ctx->db, ctx->arena, ctx->merchant_id, req->checkout_id, NULL,
                                     true, &r, &found);
    if (status_is_ok(&st) && !found) {
        /* A release that arrives before (or instead of) its Reserve leaves a RELEASED record,
         * so that a late Reserve for the checkout is refused. The insert waits for a Reserve
         * of the same checkout in flight; then the row is read again. */
        st = promo_store_reservation_tombstone(ctx->db, ctx->merchant_id, req->checkout_id,
                                               ctx->now_s, &inserted);
        if (status_is_ok(&st)) {
            st = reservation_locked(ctx, req->checkout_id, NULL, &r);
        }
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    if (r->status == RES(CONFIRMED) || r->status == RES(REFUNDED)) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_RESERVATION_CONFIRMED,
                           "the reservation was confirmed; use ReleaseUsage after a refund");
    }
    if (r->status == RES(RESERVED)) {
        st = give_back(ctx, r, true, true);
        r->status = ctx->now_s < r->expires_at ? RES(RELEASED) : RES(EXPIRED);
        r->updated_at = ctx->now_s;
        if (status_is_ok(&st)) {
            st = promo_store_reservation_update(ctx->db, ctx->merchant_id, r);
        }
    }
    if (status_is_ok(&st)) {
        resp->reservation = r;
    }
    return st;
}

status_t promo_rpc_release_usage(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                 ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PromoReleaseUsageRequest *req = (const void *)req_msg;
    Loyalty__V1__PromoReleaseUsageResponse *resp = (void *)resp_msg;
    const char *checkout_id = NULL, *order_id = NULL;
    status_t st;
    switch (req->order_case) {
    case LOYALTY__V1__PROMO_RELEASE_USAGE_REQUEST__ORDER_CHECKOUT_ID:
        checkout_id = req->checkout_id;
        st = validate_checkout_id(checkout_id);
        break;
    case LOYALTY__V1__PROMO_RELEASE_USAGE_REQUEST__ORDER_ORDER_ID:
        order_id = req->order_id;
        st = validate_token("order_id", order_id, ORDER_ID_MAX);
        break;
    default:
        st = status_invalid_field("order", "checkout_id or order_id is required");
        break;
    }
    Loyalty__V1__PromoReservation *r = NULL;
    if (status_is_ok(&st)) {
        st = reservation_locked(ctx, checkout_id, order_id, &r);
    }
    if (!status_is_ok(&st) || r->status == RES(REFUNDED)) {
        resp->reservation = r;
        return st;
    }
    if (r->status != RES(CONFIRMED)) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_RESERVATION_NOT_CONFIRMED,
                           "only a confirmed reservation can give its usage back");
    }
    Loyalty__V1__PromoSettings *settings = NULL;
    promo_periods_t periods;
    st = promo_store_settings_get(ctx->db, ctx->arena, ctx->merchant_id, ctx->now_s, &settings,
                                  &periods);
    if (status_is_ok(&st)) {
        st = give_back(ctx, r, settings->refund_restores_usage, settings->refund_restores_coupons);
    }
    r->status = RES(REFUNDED);
    r->usage_restored = settings && settings->refund_restores_usage;
    r->coupons_restored = settings && settings->refund_restores_coupons;
    r->updated_at = ctx->now_s;
    if (status_is_ok(&st)) {
        st = promo_store_reservation_update(ctx->db, ctx->merchant_id, r);
    }
    if (status_is_ok(&st)) {
        resp->reservation = r;
    }
    return st;
}

status_t promo_rpc_get_reservation(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                   ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PromoGetReservationRequest *req = (const void *)req_msg;
    Loyalty__V1__PromoGetReservationResponse *resp = (void *)resp_msg;
    status_t st = validate_checkout_id(req->checkout_id);
    bool found = false;
    if (status_is_ok(&st)) {
        st = promo_store_reservation_get(ctx->db, ctx->arena, ctx->merchant_id, req->checkout_id,
                                         NULL, false, &resp->reservation, &found);
    }
    if (status_is_ok(&st) && !found) {
        return status_make(STATUS_NOT_FOUND, REASON_RESERVATION_NOT_FOUND, "no reservation found");
    }
    if (status_is_ok(&st) && resp->reservation->status == RES(RESERVED) &&
        ctx->now_s >= resp->reservation->expires_at) {
        resp->reservation->status = RES(EXPIRED); /* what it is, even before the job runs */
    }
    return st;
}

typedef struct expire_arg {
    rpc_ctx_t *ctx;
    const promo_reservation_ref_t *ref;
} expire_arg_t;

static status_t expire_tx(db_t *db, void *arg) {
    const expire_arg_t *e = arg;
    (void)db;
    return expire_one(e->ctx, e->ref->merchant_id, e->ref->checkout_id);
}

status_t promo_job_expire_reservations(rpc_ctx_t *ctx) {
    promo_reservation_ref_t *refs = NULL;
    size_t n = 0;
    status_t st = promo_store_reservations_expired(ctx->db, ctx->arena, NULL, ctx->now_s,
                                                   EXPIRE_JOB_BATCH, &refs, &n);
    /* One transaction per reservation: a conflict on one does not hold back the others. */
    for (size_t i = 0; i < n && status_is_ok(&st); i++) {
        expire_arg_t arg = {ctx, &refs[i]};
        st = db_tx(ctx->db, expire_tx, &arg);
    }
    return st;
}

/* ---- merged batches ---- */

/* The calls in sequence, as rpc_merge_in_sequence runs them, once the batch holds every counter
 * they may lock (promo_store_counters_lock: keys[0..n_keys) and the usages of the reservations
 * of checkout_ids / order_ids). A call locking its own counters as it goes would take them
 * after the counters of the calls before it, which come in member order: two batches whose
 * calls share a counter in opposite orders (the members of two stores with a per-store limit)
 * would wait on each other (docs/architecture.md "Batched saga steps"). */
static status_t merge_locked(rpc_ctx_t *ctx, rpc_merge_call_t *calls, size_t n,
                             const promo_counter_t *keys, size_t n_keys, char *const *checkout_ids,
                             size_t n_checkouts, char *const *order_ids, size_t n_orders) {
    status_t st = promo_store_counters_lock(ctx->db, ctx->arena, ctx->merchant_id, keys, n_keys,
                                            checkout_ids, n_checkouts, order_ids, n_orders);
    return status_is_ok(&st) ? rpc_merge_in_sequence(calls, n) : st;
}

/* Reserve: the counters of every promotion that may apply to any of the carts, and those of the
 * expired reservations its first call gives back; two round trips (the reads that name them, the
 * locks), whatever the number of calls. */
status_t promo_merge_reserve(rpc_ctx_t *ctx, rpc_merge_call_t *calls, size_t n) {
    const Loyalty__V1__PromoCart **in = arena_alloc(ctx->arena, (n + 1) * sizeof *in);
    for (size_t i = 0; i < n; i++) {
        in[i] = ((const Loyalty__V1__PromoReserveRequest *)calls[i].req)->cart;
    }
    Loyalty__V1__PromoCart *carts = NULL;
    char **codes = NULL;
    size_t n_carts = 0, n_codes = 0;
    promo_ops_batch_carts(ctx->arena, in, n, &carts, &n_carts, &codes, &n_codes);
    promo_batch_reads_t reads;
    status_t st = promo_store_batch_reads(ctx->db, ctx->arena, ctx->merchant_id, ctx->now_s,
                                          LAZY_EXPIRE_BATCH, codes, n_codes, &reads);
    if (!status_is_ok(&st)) {
        return st;
    }
    promo_counter_t *keys = NULL;
    size_t n_keys = 0;
    promo_ops_batch_counters(ctx->arena, carts, n_carts, &reads.preload, ctx->now_s, codes,
                             reads.code_promotions, n_codes, &keys, &n_keys);
    char **expired = arena_alloc(ctx->arena, (reads.n_expired + 1) * sizeof *expired);
    for (size_t i = 0; i < reads.n_expired; i++) {
        expired[i] = reads.expired[i].checkout_id;
    }
    return merge_locked(ctx, calls, n, keys, n_keys, expired, reads.n_expired, NULL, 0);
}

/* Release: the counters of the calls' reservations, in one statement. */
status_t promo_merge_release(rpc_ctx_t *ctx, rpc_merge_call_t *calls, size_t n) {
    char **checkout_ids = arena_alloc(ctx->arena, (n + 1) * sizeof *checkout_ids);
    for (size_t i = 0; i < n; i++) {
        checkout_ids[i] = ((const Loyalty__V1__PromoReleaseRequest *)calls[i].req)->checkout_id;
    }
    return merge_locked(ctx, calls, n, NULL, 0, checkout_ids, n, NULL, 0);
}

/* ReleaseUsage: the same, its reservations named by checkout or by order. */
status_t promo_merge_release_usage(rpc_ctx_t *ctx, rpc_merge_call_t *calls, size_t n) {
    char **checkout_ids = arena_alloc(ctx->arena, (n + 1) * sizeof *checkout_ids);
    char **order_ids = arena_alloc(ctx->arena, (n + 1) * sizeof *order_ids);
    size_t n_checkouts = 0, n_orders = 0;
    for (size_t i = 0; i < n; i++) {
        const Loyalty__V1__PromoReleaseUsageRequest *r = (const void *)calls[i].req;
        if (r->order_case == LOYALTY__V1__PROMO_RELEASE_USAGE_REQUEST__ORDER_CHECKOUT_ID) {
            checkout_ids[n_checkouts++] = r->checkout_id;
        } else if (r->order_case == LOYALTY__V1__PROMO_RELEASE_USAGE_REQUEST__ORDER_ORDER_ID) {
            order_ids[n_orders++] = r->order_id;
        }
    }
    return merge_locked(ctx, calls, n, NULL, 0, checkout_ids, n_checkouts, order_ids, n_orders);
}
