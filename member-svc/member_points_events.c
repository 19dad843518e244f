/* member_points_events.c -- member-svc's consumer of points-svc's balance events
 * (points.earned, points.balance, docs/domain.md#automatic-tags): every change of a member's
 * points, wherever it was made (an admin adjustment, an expiry, pending points maturing, a
 * referral reward earned in someone else's checkout), reaches the points_balance tag rules
 * without a call on the checkout's path. Events carry the balance and the account's version;
 * member_row_learn_points keeps only a newer one, so duplicates and stale events change
 * nothing, and a read's events may be applied as a set (member_on_points_events) in any order. */
#include "member_handlers.h"

#include "log.h"

#include <string.h>

status_t member_on_points_event(rpc_ctx_t *ctx, const consume_event_t *ev) {
    int64_t available = 0, version = 0;
    if (!consume_payload_int(ev->payload, "available", &available) ||
        !consume_payload_int(ev->payload, "version", &version) || version <= 0) {
        return status_ok(); /* an event that carries no balance (points.expired, old entries) */
    }
    /* Most merchants have no points_balance rule: the balance is only kept, in one statement. */
    bool ruled = false;
    status_t st = member_row_learn_points_unruled(ctx->db, ctx->arena, ctx->merchant_id,
                                                  ev->subject_id, available, version, &ruled);
    if (!status_is_ok(&st) || !ruled) {
        return st;
    }
    member_row_t row;
    st = member_row_get(ctx->db, ctx->arena, ctx->merchant_id, ev->subject_id, true, &row);
    if (strcmp(st.reason, "MEMBER_NOT_FOUND") == 0) {
        /* points of an id member-svc does not know (points-svc takes any member id) */
        log_msg(LOG_DEBUG, "points event %s: member %s unknown here", ev->event_id, ev->subject_id);
        return status_ok();
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    member_row_t old = row;
    if (!member_row_learn_points(&row, available, version)) {
        return status_ok(); /* a duplicate, or older than what the row has */
    }
    member_scope_t s;
    st = member_scope_load(ctx, ctx->db, ctx->arena, ctx->merchant_id, ctx->now_s, 0, &s, NULL);
    member_change_t ch = {.events = NULL, .event_count = 0};
    if (status_is_ok(&st)) {
        st = member_ops_save(ctx->db, ctx->arena, &s, &old, &row, &ch);
    }
    if (status_is_ok(&st)) {
        st = member_scope_finish(ctx->db, &s);
    }
    if (status_is_ok(&st)) {
        member_rpc_invalidate_touched(ctx, &s);
    }
    return st;
}

status_t member_on_points_events(rpc_ctx_t *ctx, const consume_event_t *evs, int n, bool *taken) {
    char **ids = arena_alloc(ctx->arena, (size_t)n * sizeof *ids);
    int64_t *balances = arena_alloc(ctx->arena, (size_t)n * sizeof *balances);
    int64_t *versions = arena_alloc(ctx->arena, (size_t)n * sizeof *versions);
    bool *with_balance = arena_alloc(ctx->arena, (size_t)n * sizeof *with_balance);
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        int64_t available = 0, version = 0;
        with_balance[i] = consume_payload_int(evs[i].payload, "available", &available) &&
                          consume_payload_int(evs[i].payload, "version", &version) && version > 0;
        if (with_balance[i]) {
            ids[k] = (char *)evs[i].subject_id;
            balances[k] = available;
            versions[k] = version;
            k++;
        }
    }
    bool ruled = false;
    if (k > 0) {
        status_t st = member_rows_learn_points_unruled(ctx->db, ctx->arena, ctx->merchant_id, ids,
                                                       balances, versions, k, &ruled);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    /* An event without a balance changes nothing; under a rule, each member is re-tagged under
     * its lock, one by one (member_on_points_event). */
    for (int i = 0; i < n; i++) {
        taken[i] = !with_balance[i] || !ruled;
    }
    return status_ok();
}
