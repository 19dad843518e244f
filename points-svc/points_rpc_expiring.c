/* points_rpc_expiring.c -- ListExpiringPoints: members with spendable points expiring in a
 * window, grouped by member (points_store_list_expiring), one page per call. */
#include "points_handlers.h"
#include "points_store.h"

#include "cursor.h"
#include "pb.h"

#define EXPIRING_WINDOW_MAX_S (366LL * 86400)

status_t points_rpc_list_expiring(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                  ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PointsListExpiringRequest *req = (const void *)req_msg;
    Loyalty__V1__PointsListExpiringResponse *resp = (void *)resp_msg;
    int64_t from = req->from_at ? req->from_at : ctx->now_s;
    if (req->from_at < 0) {
        return status_invalid_field("from_at", "must be a unix time or 0 for now");
    }
    if (req->to_at <= from || req->to_at - from > EXPIRING_WINDOW_MAX_S) {
        return status_invalid_field("to_at", "must be after from_at and at most 366 days on");
    }
    int32_t size = 0;
    char *key = NULL, *after = NULL;
    status_t st = points_page(ctx, req->page, &size, &key, &after);
    if (!status_is_ok(&st)) {
        return st;
    }
    Loyalty__V1__PointsExpiringBalance **balances = NULL;
    size_t n = 0;
    bool more = false;
    st = points_store_list_expiring(ctx->db, ctx->arena, ctx->merchant_id, from, req->to_at, after,
                                    size, &balances, &n, &more);
    if (!status_is_ok(&st)) {
        return st;
    }
    resp->balances = balances;
    resp->n_balances = n;
    resp->page_info = pb_new(ctx->arena, &loyalty__v1__page_info__descriptor);
    if (more && n > 0) {
        resp->page_info->next_cursor = cursor_encode(ctx->arena, "", balances[n - 1]->member_id);
    }
    return st;
}
