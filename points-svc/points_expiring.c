/* points_expiring.c -- ListExpiringPoints: members with spendable points expiring in a window,
 * read from the lots index by expiry and grouped by member (one page per call). */
#include "points_handlers.h"

#include "cursor.h"
#include "pb.h"

#include <string.h>

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
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, ctx->merchant_id);
    db_param_int(&p, from);
    db_param_int(&p, req->to_at);
    db_param_text(&p, after);
    db_param_int(&p, (int64_t)size + 1);
    PGresult *r = NULL;
    st = db_exec(ctx->db,
                 "SELECT member_id, sum(remaining), to_char(min(expiry_date), 'YYYY-MM-DD'), "
                 " extract(epoch FROM min(expires_at))::bigint "
                 "FROM lots WHERE merchant_id = $1 AND status = 2 AND remaining > 0 "
                 " AND expires_at >= to_timestamp($2) AND expires_at < to_timestamp($3) "
                 " AND member_id > $4 "
                 "GROUP BY member_id ORDER BY member_id LIMIT $5",
                 &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    int rows = PQntuples(r);
    int shown = rows > size ? size : rows;
    resp->balances = arena_alloc(ctx->arena, (size_t)(shown ? shown : 1) * sizeof(void *));
    for (int i = 0; i < shown; i++) {
        Loyalty__V1__PointsExpiringBalance *b =
            pb_new(ctx->arena, &loyalty__v1__points_expiring_balance__descriptor);
        b->member_id = arena_strdup(ctx->arena, db_get_str(r, i, 0));
        b->points = db_get_int(r, i, 1);
        b->expiry_date = arena_strdup(ctx->arena, db_get_str(r, i, 2));
        b->expires_at = db_get_int(r, i, 3);
        resp->balances[resp->n_balances++] = b;
    }
    resp->page_info = pb_new(ctx->arena, &loyalty__v1__page_info__descriptor);
    if (rows > size && shown > 0) {
        resp->page_info->next_cursor =
            cursor_encode(ctx->arena, "", resp->balances[shown - 1]->member_id);
    }
    PQclear(r);
    return st;
}
