/* gateway_rpc_refund.c -- RefundOrder (gateway.proto REFUND): the refund is planned against the
 * order's running totals in the transaction that creates its saga (so concurrent refunds can
 * never give back more than the order), then driven forward: wallet refund, points reversal,
 * referral reversal and claw-backs, spend and growth given back to member-svc, promo usage
 * released on a full refund. */
#include "gateway_rpc.h"

#include "gateway_calls.h"
#include "gateway_store.h"
#include "jsonw.h"
#include "loyalty/v1/member.pb-c.h"
#include "loyalty/v1/points.pb-c.h"
#include "loyalty/v1/promo.pb-c.h"
#include "loyalty/v1/referral.pb-c.h"
#include "loyalty/v1/wallet.pb-c.h"
#include "outbox.h"
#include "pb.h"
#include "validate.h"

#include <string.h>

/* ---- planning ---- */

/* The amount a refund by lines gives back, with the lines' new refunded quantities in
 * `changes` (quantity and cents of this refund). */
static status_t plan_lines(arena_t *a, const gw_order_row_t *o,
                           const Loyalty__V1__GatewayRefundLines *req, int64_t *amount,
                           gw_order_line_row_t **changes, size_t *n_changes) {
    if (req->n_lines == 0 || req->n_lines > GW_LINES_MAX) {
        return status_invalid_field("lines.lines", "1..%d lines", GW_LINES_MAX);
    }
    *changes = arena_alloc(a, (req->n_lines + 1) * sizeof **changes);
    *n_changes = 0;
    *amount = 0;
    for (size_t i = 0; i < req->n_lines; i++) {
        const Loyalty__V1__GatewayRefundLine *rl = req->lines[i];
        status_t st = gw_check_id("lines.lines.line_id", rl->line_id, GW_LINE_ID_MAX);
        if (!status_is_ok(&st)) {
            return st;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(req->lines[j]->line_id, rl->line_id) == 0) {
                return status_invalid_field("lines.lines.line_id", "line %s appears twice",
                                            rl->line_id);
            }
        }
        const gw_order_line_row_t *l = NULL;
        for (size_t k = 0; k < o->n_lines; k++) {
            if (strcmp(o->lines[k].line_id, rl->line_id) == 0) {
                l = &o->lines[k];
            }
        }
        if (l == NULL) {
            return status_make(STATUS_NOT_FOUND, REASON_LINE_NOT_FOUND, "order has no line %s",
                               rl->line_id);
        }
        if (l->kind == LOYALTY__V1__GATEWAY_LINE_KIND__GATEWAY_LINE_KIND_MEMBERSHIP ||
            l->kind == LOYALTY__V1__GATEWAY_LINE_KIND__GATEWAY_LINE_KIND_WALLET_TOPUP) {
            return status_make(STATUS_FAILED_PRECONDITION, REASON_LINE_NOT_REFUNDABLE,
                               "line %s is a membership or wallet top-up", rl->line_id);
        }
        if (rl->quantity < 1 || rl->quantity > l->quantity - l->refunded_quantity) {
            return status_make(STATUS_FAILED_PRECONDITION, REASON_REFUND_EXCEEDS_LINE,
                               "line %s has %lld units left to refund", rl->line_id,
                               (long long)(l->quantity - l->refunded_quantity));
        }
        int64_t cents = gw_line_refund_cents(l->final_amount_cents, l->quantity,
                                             l->refunded_quantity, rl->quantity);
        (*changes)[(*n_changes)++] = (gw_order_line_row_t){
            .line_id = l->line_id, .refunded_quantity = rl->quantity, .refunded_cents = cents};
        *amount += cents;
    }
    /* When every refundable line is now fully refunded, the rest of the refundable amount
     * (shipping, rounding) goes back with this refund. */
    bool all = true;
    for (size_t k = 0; k < o->n_lines && all; k++) {
        const gw_order_line_row_t *l = &o->lines[k];
        if (l->kind == LOYALTY__V1__GATEWAY_LINE_KIND__GATEWAY_LINE_KIND_MEMBERSHIP ||
            l->kind == LOYALTY__V1__GATEWAY_LINE_KIND__GATEWAY_LINE_KIND_WALLET_TOPUP) {
            continue;
        }
        int64_t q = l->refunded_quantity;
        for (size_t c = 0; c < *n_changes; c++) {
            if (strcmp((*changes)[c].line_id, l->line_id) == 0) {
                q += (*changes)[c].refunded_quantity;
            }
        }
        all = q == l->quantity;
    }
    if (all) {
        *amount = o->f.refundable_cents - o->f.refunded_cents;
    }
    return status_ok();
}

typedef struct refund_tx {
    gw_saga_t *x;
    const Loyalty__V1__GatewayRefundOrderRequest *req;
} refund_tx_t;

static Loyalty__V1__GatewayRefundLine **copy_lines(arena_t *a, const gw_order_line_row_t *c,
                                                   size_t n) {
    Loyalty__V1__GatewayRefundLine **out = arena_alloc(a, (n + 1) * sizeof *out);
    for (size_t i = 0; i < n; i++) {
        Loyalty__V1__GatewayRefundLine *l =
            pb_new(a, &loyalty__v1__gateway_refund_line__descriptor);
        l->line_id = c[i].line_id;
        l->quantity = c[i].refunded_quantity;
        out[i] = l;
    }
    return out;
}

/* In one transaction: lock the order, plan the refund, add it to the order, insert the saga. */
static status_t refund_plan_tx(db_t *db, void *arg) {
    refund_tx_t *t = arg;
    gw_saga_t *x = t->x;
    const Loyalty__V1__GatewayRefundOrderRequest *req = t->req;
    x->persisted = false;
    gw_order_row_t o;
    status_t st = gw_store_get_order(db, x->a, x->merchant_id, req->order_id, true, &o);
    if (!status_is_ok(&st)) {
        return st;
    }
    int64_t amount = 0;
    gw_order_line_row_t *changes = NULL;
    size_t n_changes = 0;
    if (req->what_case == LOYALTY__V1__GATEWAY_REFUND_ORDER_REQUEST__WHAT_LINES) {
        st = plan_lines(x->a, &o, req->lines, &amount, &changes, &n_changes);
    } else {
        amount = req->amount_cents;
    }
    gw_refund_split_t split;
    if (status_is_ok(&st)) {
        st = gw_refund_split(&o.f, amount, &split);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    Loyalty__V1__GatewayRefundPlan *plan =
        pb_new(x->a, &loyalty__v1__gateway_refund_plan__descriptor);
    Loyalty__V1__GatewayRefund *r = pb_new(x->a, &loyalty__v1__gateway_refund__descriptor);
    plan->refund = r;
    plan->order_total_cents = o.f.total_cents;
    plan->spend_cents = o.f.spend_cents;
    plan->checkout_id = o.checkout_id;
    r->refund_id = x->id;
    r->merchant_id = x->merchant_id;
    r->order_id = o.order_id;
    r->checkout_id = o.checkout_id;
    r->member_id = o.member_id;
    r->amount_cents = amount;
    r->points_cash_cents = split.points_cash_cents;
    r->wallet_cents = split.wallet_cents;
    r->external_cents = split.external_cents;
    r->share_bps = split.share_bps;
    r->share_bps_total = split.share_bps_total;
    r->spend_returned_cents = split.spend_cents;
    r->full_refund = o.f.refunded_cents + amount == o.f.total_cents;
    r->order_refunded_cents = o.f.refunded_cents + amount;
    r->order_refundable_cents = o.f.refundable_cents - r->order_refunded_cents;
    r->lines = copy_lines(x->a, changes, n_changes);
    r->n_lines = n_changes;
    x->context->refund = plan;
    x->member_id = o.member_id;
    st = gw_store_add_refund(db, x->merchant_id, req->order_id, amount, &split, changes, n_changes);
    if (status_is_ok(&st)) {
        st = gw_flush(x); /* the insert, in this transaction */
    }
    return st;
}

/* ---- the flow ---- */

static Loyalty__V1__GatewayRefund *refund_ctx(gw_saga_t *x) {
    return x->context->refund ? x->context->refund->refund : NULL;
}

/* A tolerated refusal that means "nothing to reverse". */
static bool nothing_to_reverse(const gw_call_t *c) {
    return strcmp(c->status.reason, "ORDER_NOT_FOUND") == 0 ||
           strcmp(c->status.reason, "EVENT_NOT_FOUND") == 0;
}

/* The calls of the refund's first group that the flow reads back (NULL when not made). */
typedef struct reverse_calls {
    gw_call_t *points, *referral;
} reverse_calls_t;

static void refund_group1(gw_saga_t *x, const Loyalty__V1__GatewayRefundOrderRequest *req,
                          const Loyalty__V1__GatewayRefund *r, gw_group_t *g, reverse_calls_t *c) {
    *c = (reverse_calls_t){0};
    if (r->wallet_cents > 0) {
        gw_call_wallet_refund(x, gw_group_add(g), r->order_id, r->wallet_cents);
    }
    if (r->share_bps > 0) {
        c->points = gw_call_points_reverse(x, gw_group_add(g), &gw_step_points_reverse, NULL,
                                           r->order_id, r->share_bps, req->reason);
        c->points->tolerate_refusal = true;
        c->referral = gw_call_referral_reverse(x, gw_group_add(g), r->order_id, r->share_bps);
        c->referral->tolerate_refusal = true;
    }
    if (r->full_refund) {
        gw_call_promo_release_usage(x, gw_group_add(g), r->checkout_id);
    }
}

/* Claw-backs of referral rewards: PointsService.ReverseOrder on the reward's reference with
 * the share that makes its cumulative claw-back equal referral-svc's. */
static void clawback_calls(gw_saga_t *x, const Loyalty__V1__ReferralReverseRewardsResponse *rv,
                           gw_group_t *g) {
    for (size_t i = 0; rv != NULL && i < rv->n_reversals && gw_group_room(g) > 0; i++) {
        const Loyalty__V1__ReferralReversal *v = rv->reversals[i];
        if (v->clawback_points <= 0) {
            continue;
        }
        const Loyalty__V1__ReferralReward *rw = NULL;
        for (size_t k = 0; k < rv->n_rewards; k++) {
            if (strcmp(rv->rewards[k]->id, v->reward_id) == 0) {
                rw = rv->rewards[k];
            }
        }
        if (rw == NULL) {
            continue;
        }
        bool exact_after = true, exact_before = true;
        int64_t after =
            gw_clawback_share_bps(rw->granted_points, rw->clawed_back_points, &exact_after);
        int64_t before = gw_clawback_share_bps(
            rw->granted_points, rw->clawed_back_points - v->clawback_points, &exact_before);
        if (after - before <= 0) {
            continue;
        }
        gw_call_points_reverse(x, gw_group_add(g), &gw_step_referral_clawback, v->id,
                               arena_printf(x->a, "rr:%s", v->reward_id), after - before,
                               "referral reward reversed");
    }
}

static status_t refund_complete(gw_saga_t *x) {
    const Loyalty__V1__GatewayRefundOrderRequest *req = (void *)gw_saga_request(x);
    Loyalty__V1__GatewayRefund *r = refund_ctx(x);
    if (r == NULL) {
        return status_make(STATUS_DATA_LOSS, REASON_CORRUPT_SAGA, "refund saga without a plan");
    }
    gw_group_t g1 = {.n = 0};
    reverse_calls_t c1;
    refund_group1(x, req, r, &g1, &c1);
    status_t st = gw_group_run(x, &g1);
    if (!status_is_ok(&st)) {
        return st;
    }
    for (int i = 0; i < g1.n; i++) {
        if (!status_is_ok(&g1.calls[i].status) && !nothing_to_reverse(&g1.calls[i])) {
            x->failed_step = true;
            return g1.calls[i].status;
        }
    }
    const Loyalty__V1__PointsReverseOrderResponse *pr = (const void *)gw_answer(c1.points);
    const Loyalty__V1__ReferralReverseRewardsResponse *rv = (const void *)gw_answer(c1.referral);
    if (pr != NULL) {
        r->points_restored = pr->points_restored;
        r->points_clawed_back = pr->points_clawed_back + pr->pending_cancelled;
        r->growth_removed = -pr->growth_delta;
    }
    gw_group_t g2 = {.n = 0};
    gw_call_t *record_return = NULL;
    if (r->spend_returned_cents > 0 || r->growth_removed > 0) {
        record_return =
            gw_call_member_record_return(x, gw_group_add(&g2), r->order_id, r->spend_returned_cents,
                                         r->growth_removed, pr != NULL ? pr->balance : NULL);
    }
    clawback_calls(x, rv, &g2);
    st = gw_group_run(x, &g2);
    if (!status_is_ok(&st)) {
        return st;
    }
    r->referral_points_clawed_back = 0;
    for (int i = 0; i < g2.n; i++) {
        const gw_call_t *c = &g2.calls[i];
        if (c == record_return) {
            r->new_tier = ((const Loyalty__V1__MemberRecordReturnResponse *)gw_answer(c))->new_tier;
        } else {
            const Loyalty__V1__PointsReverseOrderResponse *cb = (const void *)gw_answer(c);
            r->referral_points_clawed_back += cb->points_clawed_back + cb->pending_cancelled;
        }
    }
    return status_ok();
}

static status_t refund_on_final(gw_saga_t *x, db_t *db) {
    (void)db;
    const Loyalty__V1__GatewayRefund *r = refund_ctx(x);
    char json[512];
    jsonw_t w;
    jsonw_begin(&w, json, sizeof json);
    jsonw_str(&w, "refund_id", x->id);
    jsonw_str(&w, "order_id", r->order_id);
    jsonw_str(&w, "member_id", r->member_id);
    jsonw_int(&w, "amount_cents", r->amount_cents);
    jsonw_int(&w, "external_cents", r->external_cents);
    jsonw_bool(&w, "full_refund", r->full_refund);
    jsonw_end(&w);
    return outbox_emit(x->ctx, x->merchant_id, OUTBOX_EVENTS_STREAM, "order.refunded", r->order_id,
                       json, NULL);
}

const gw_flows_t gw_refund_flows = {
    .begin = NULL,
    .complete = refund_complete,
    .compensate = NULL,
    .after_begin = GW_COMPLETING,
    .recover_forward = true,
    .request_desc = &loyalty__v1__gateway_refund_order_request__descriptor,
    .on_final = refund_on_final,
};

/* ---- the RPC ---- */

static Loyalty__V1__GatewayRefund *refund_view(gw_saga_t *x) {
    Loyalty__V1__GatewayRefund *r = refund_ctx(x);
    if (r == NULL) {
        r = pb_new(x->a, &loyalty__v1__gateway_refund__descriptor);
    }
    r->refund_id = x->id;
    r->state = (Loyalty__V1__GatewaySagaState)x->state;
    r->reason = x->reason;
    r->created_at = x->created_at;
    r->steps = gw_steps_view(x, &r->n_steps);
    return r;
}

static status_t check_refund(const Loyalty__V1__GatewayRefundOrderRequest *req) {
    status_t st = gw_check_key(req->idempotency_key);
    if (status_is_ok(&st)) {
        st = gw_check_id("order_id", req->order_id, GW_ORDER_ID_MAX);
    }
    if (status_is_ok(&st)) {
        st = validate_text("reason", req->reason, 0, GW_REASON_TEXT_MAX);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    if (req->what_case == LOYALTY__V1__GATEWAY_REFUND_ORDER_REQUEST__WHAT_AMOUNT_CENTS) {
        if (req->amount_cents < 1 || req->amount_cents > GW_AMOUNT_MAX) {
            return status_invalid_field("amount_cents", "1..%lld", (long long)GW_AMOUNT_MAX);
        }
        return status_ok();
    }
    if (req->what_case != LOYALTY__V1__GATEWAY_REFUND_ORDER_REQUEST__WHAT_LINES ||
        req->lines == NULL) {
        return status_invalid_field("what", "lines or amount_cents is required");
    }
    return status_ok();
}

/* NOT_FOUND for an order without a completed checkout: say why when a checkout exists. */
static status_t order_not_completed(rpc_ctx_t *ctx, const char *order_id, status_t st) {
    if (st.code != STATUS_NOT_FOUND || strcmp(st.reason, "ORDER_NOT_FOUND") != 0) {
        return st;
    }
    char *checkout_id = NULL;
    status_t found =
        gw_store_checkout_of_order(ctx->db, ctx->arena, ctx->merchant_id, order_id, &checkout_id);
    if (status_is_ok(&found)) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_ORDER_NOT_COMPLETED,
                           "order %s has no completed checkout (checkout %s)", order_id,
                           checkout_id);
    }
    return st;
}

status_t gw_rpc_refund_order(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                             ProtobufCMessage *resp_msg) {
    Loyalty__V1__GatewayRefundOrderRequest *req = (void *)req_msg;
    Loyalty__V1__GatewayRefundOrderResponse *resp = (void *)resp_msg;
    status_t st = check_refund(req);
    if (!status_is_ok(&st)) {
        return st;
    }
    gw_saga_t *x = arena_alloc(ctx->arena, sizeof *x);
    gw_saga_init(x, ctx, gw_svc(ctx), ctx->merchant_id, GW_KIND_REFUND, req->idempotency_key,
                 req->order_id, "", "RefundOrder", &req->base);
    gw_saga_set_state(x, GW_COMPLETING);
    /* A retry with the same key must not plan a second refund: look the key up first (the
     * insert in the planning transaction settles a race between two first attempts). */
    char *id = NULL;
    bool same = false;
    st = gw_store_find_by_key(ctx->db, ctx->arena, ctx->merchant_id, req->idempotency_key,
                              x->hash_input, x->hash_len, &id, &same);
    if (st.code == STATUS_NOT_FOUND) {
        refund_tx_t t = {.x = x, .req = req};
        st = db_tx(ctx->db, refund_plan_tx, &t);
        if (status_is_ok(&st)) {
            st = gw_drive(x);
        } else if (st.code == STATUS_ALREADY_EXISTS && strcmp(st.reason, "SAGA_EXISTS") == 0) {
            st = gw_resume_by_key(x); /* the other attempt's saga */
        } else {
            st = order_not_completed(ctx, req->order_id, st);
        }
    } else if (status_is_ok(&st)) {
        st = gw_resume_by_key(x); /* resumes the existing saga if unfinished */
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    if (x->state == GW_CANCELLED) {
        return gw_saga_error(x);
    }
    resp->refund = refund_view(x);
    return status_ok();
}
