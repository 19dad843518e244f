/* member_rpc_points.c -- RecordPointsBalance: the points balance points-svc answered after a
 * change outside orders and returns (check-in, points mall), kept for the points_balance tag
 * rules (docs/domain.md#automatic-tags), which member_ops_save recomputes in this transaction. */
#include "member_handlers.h"
#include "member_view.h"

#include "ids.h"
#include "validate.h"

/* PointsBalance.available's range as this service takes it (debt makes it negative). */
#define MEMBER_POINTS_BALANCE_MAX 1000000000000LL

status_t member_rpc_record_points_balance(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                          ProtobufCMessage *resp_msg) {
    const Loyalty__V1__MemberRecordPointsBalanceRequest *req = (const void *)req_msg;
    Loyalty__V1__MemberRecordPointsBalanceResponse *resp = (void *)resp_msg;
    status_t st = validate_token("member_id", req->member_id, ID_MAX);
    if (status_is_ok(&st) && (req->points_balance < -MEMBER_POINTS_BALANCE_MAX ||
                              req->points_balance > MEMBER_POINTS_BALANCE_MAX)) {
        st = status_invalid_field("points_balance", "must be -10^12..10^12");
    }
    member_scope_t s;
    if (status_is_ok(&st)) {
        st = member_scope_load(ctx, ctx->db, ctx->arena, ctx->merchant_id, ctx->now_s, 0, &s, NULL);
    }
    member_row_t row;
    if (status_is_ok(&st)) { /* the member's lock serializes its changes */
        st = member_row_get(ctx->db, ctx->arena, ctx->merchant_id, req->member_id, true, &row);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    member_row_t old = row;
    if (req->points_balance_version < 0) {
        return status_invalid_field("points_balance_version", "must not be negative");
    }
    (void)member_row_learn_points(&row, req->points_balance, req->points_balance_version);
    member_change_t ch = {.events = NULL, .event_count = 0};
    st = member_ops_save(ctx->db, ctx->arena, &s, &old, &row, &ch);
    if (status_is_ok(&st)) {
        st = member_scope_finish(ctx->db, &s);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    member_rpc_invalidate_touched(ctx, &s);
    resp->stats = member_view_stats(ctx->arena, &s.settings, &row);
    return status_ok();
}
