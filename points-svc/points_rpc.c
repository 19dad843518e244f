/* points_rpc.c -- PointsService member handlers (earn, check-in, balance, lists, holds,
 * adjustments, reversal, import, expiry, verification) and the handler table. Mutations open the
 * member's ledger (row lock + settle), move points, close it (save + invalidate), and answer
 * with the new balance. */
#include "points_rpc.h"

#include "cursor.h"
#include "ids.h"
#include "pb.h"
#include "points_cache.h"
#include "points_clock.h"
#include "points_handlers.h"
#include "points_ops.h"
#include "points_rules.h"
#include "points_store.h"
#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POINTS_EXPIRE_BATCH_MAX 1000
/* Batch RPCs invalidate one cache key per member they change. */
_Static_assert(POINTS_EXPIRE_BATCH_MAX <= RPC_INVALIDATIONS_MAX, "ExpirePoints batch too large");
_Static_assert(POINTS_IMPORT_LOTS_MAX <= RPC_INVALIDATIONS_MAX, "ImportLots batch too large");

/* ---- shared steps ---- */

/* The balance after a mutation (lg closed); without the expiring figures when the caller
 * asked (omit_expiring: one query fewer). */
static status_t ledger_balance(points_ledger_t *lg, bool omit_expiring,
                               Loyalty__V1__PointsBalance **out) {
    int64_t valid_until = 0;
    return points_balance_build(lg->db, lg->a, lg->merchant, lg->member, &lg->acct, lg->now,
                                !omit_expiring, out, &valid_until);
}

typedef struct settle_call {
    rpc_ctx_t *ctx;
    const char *member;
    points_account_t acct;
} settle_call_t;

static status_t settle_tx(db_t *db, void *arg) {
    settle_call_t *s = arg;
    points_ledger_t lg;
    status_t st = points_ops_open(&lg, s->ctx, db, s->ctx->arena, s->ctx->merchant_id, s->member,
                                  s->ctx->now_s, false);
    if (!status_is_ok(&st) || !lg.found) {
        return st;
    }
    st = points_ops_close(&lg);
    s->acct = lg.acct;
    return st;
}

/* Reads paths settle lazily: when something fell due for the member (hold TTL, end of a
 * pending window, a lot expiry), settle it in a short transaction first. *acct and *found
 * receive the account as of now. */
static status_t settle_if_due(rpc_ctx_t *ctx, const char *member, points_account_t *acct,
                              bool *found) {
    status_t st =
        points_store_account_get(ctx->db, ctx->merchant_id, member, false, false, acct, found);
    if (!status_is_ok(&st) || !*found || !acct->has_due || acct->next_due_at > ctx->now_s) {
        return st;
    }
    settle_call_t s = {.ctx = ctx, .member = member};
    st = db_tx(ctx->db, settle_tx, &s);
    if (status_is_ok(&st)) {
        *acct = s.acct;
    }
    return st;
}

/* The balance for reads: cache, else PostgreSQL (settling lazily), then cached. */
static status_t read_balance(rpc_ctx_t *ctx, const char *member, Loyalty__V1__PointsBalance **out) {
    if (points_cache_get_balance(ctx, member, out)) {
        return status_ok();
    }
    points_account_t acct;
    bool found = false;
    status_t st = settle_if_due(ctx, member, &acct, &found);
    if (!status_is_ok(&st)) {
        return st;
    }
    int64_t valid_until = 0;
    st = points_balance_build(ctx->db, ctx->arena, ctx->merchant_id, member, &acct, ctx->now_s,
                              true, out, &valid_until);
    if (status_is_ok(&st)) {
        points_cache_put_balance(ctx, *out, valid_until);
    }
    return st;
}

/* Expiry of points that become available on `available_day`: an explicit last day (which may
 * not precede it) or the policy. */
static status_t lot_expiry(const Loyalty__V1__PointsSettings *s, const char *field,
                           const char *expiry_date, int64_t available_day, bool *has,
                           int64_t *day) {
    if (expiry_date[0] == '\0') {
        *has = points_rules_expiry_day(s, available_day, day);
        return status_ok();
    }
    status_t st = points_rules_parse_day(field, expiry_date, day);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (*day < available_day) {
        return status_invalid_field(field, "before the day the points become available");
    }
    *has = true;
    return status_ok();
}

/* ---- earning ---- */

static bool earn_source_ok(int source) {
    switch (source) {
    case LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_ORDER:
    case LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_EVENT:
    case LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_REFERRAL:
    case LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_PROMOTION:
    case LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_OTHER:
        return true;
    default:
        return false;
    }
}

/* Validates an Earn request and resolves its source; the amount is checked by the caller. */
static status_t check_earn(const Loyalty__V1__PointsEarnRequest *req, int *source) {
    status_t st = points_check_member("member_id", req->member_id);
    if (!status_is_ok(&st)) {
        return st;
    }
    int src = req->source;
    switch (req->amount_case) {
    case LOYALTY__V1__POINTS_EARN_REQUEST__AMOUNT_ORDER:
        src = src ? src : LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_ORDER;
        if (src != LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_ORDER) {
            return status_invalid_field("source", "an order earns with source ORDER");
        }
        break;
    case LOYALTY__V1__POINTS_EARN_REQUEST__AMOUNT_EVENT:
        src = src ? src : LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_EVENT;
        st = points_check_event("event", req->event, false);
        break;
    case LOYALTY__V1__POINTS_EARN_REQUEST__AMOUNT_POINTS:
        src = src ? src : LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_OTHER;
        if (req->points < 1 || req->points > POINTS_MAX) {
            return status_invalid_field("points", "must be between 1 and %lld",
                                        (long long)POINTS_MAX);
        }
        break;
    default:
        return status_invalid_field("amount", "one of points, order or event is required");
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    if (!earn_source_ok(src)) {
        return status_invalid_field("source", "ORDER, EVENT, REFERRAL, PROMOTION or OTHER");
    }
    if (req->growth < 0 || req->growth > POINTS_MAX ||
        (req->growth != 0 && req->amount_case != LOYALTY__V1__POINTS_EARN_REQUEST__AMOUNT_POINTS)) {
        return status_invalid_field("growth", "0..10^12, and only with points");
    }
    st = points_check_reference("reference", req->reference,
                                src == LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_ORDER);
    if (status_is_ok(&st) &&
        req->_pending_days_case == LOYALTY__V1__POINTS_EARN_REQUEST___PENDING_DAYS_PENDING_DAYS &&
        (req->pending_days < 0 || req->pending_days > POINTS_PENDING_DAYS_MAX)) {
        st = status_invalid_field("pending_days", "must be between 0 and %d",
                                  POINTS_PENDING_DAYS_MAX);
    }
    if (status_is_ok(&st)) {
        st = validate_text("note", req->note, 0, POINTS_REASON_MAX);
    }
    *source = src;
    return st;
}

/* Fills the breakdown of an Earn request. */
static status_t earn_breakdown(rpc_ctx_t *ctx, const Loyalty__V1__PointsSettings *s,
                               const Loyalty__V1__PointsEarnRequest *req,
                               Loyalty__V1__PointsEarnBreakdown *b) {
    switch (req->amount_case) {
    case LOYALTY__V1__POINTS_EARN_REQUEST__AMOUNT_ORDER:
        return points_compute_order_earn(ctx, s, "order", req->order, b);
    case LOYALTY__V1__POINTS_EARN_REQUEST__AMOUNT_EVENT:
        points_rules_earn_event(s, req->event, b);
        return status_ok();
    default:
        b->points = req->points;
        b->growth = req->growth;
        b->campaign_id = "";
        return status_ok();
    }
}

/* Credits `points` (if any) as a lot starting now, pending for pending_days. With claim, the
 * lot claims (source, reference) for an earn that added claim_growth. */
/* The credit of `points` at `now` on the merchant's settings: when they become available, when
 * they expire. */
static status_t credit_make(db_t *db, const Loyalty__V1__PointsSettings *s, int64_t now, int kind,
                            int source, const char *reference, int64_t points, int32_t pending_days,
                            const char *expiry_date, bool lifetime, const char *reason,
                            const char *operator_name, bool claim, int64_t claim_growth,
                            points_credit_t *c) {
    points_local_clock_t clock;
    status_t st = points_clock_get(db, s->time_zone, now, pending_days, &clock);
    if (!status_is_ok(&st)) {
        return st;
    }
    *c = (points_credit_t){.kind = kind,
                           .source = source,
                           .reference = reference,
                           .points = points,
                           .pending = pending_days > 0,
                           .earned_at = now,
                           .available_at = pending_days > 0 ? clock.later_at_s : now,
                           .time_zone = s->time_zone,
                           .lifetime = lifetime,
                           .reason = reason,
                           .operator_name = operator_name,
                           .claim = claim,
                           .claim_growth = claim_growth};
    return lot_expiry(s, "expiry_date", expiry_date, clock.later_day, &c->has_expiry,
                      &c->expiry_day);
}

static status_t credit_now(points_ledger_t *lg, const Loyalty__V1__PointsSettings *s, int kind,
                           int source, const char *reference, int64_t points, int32_t pending_days,
                           const char *expiry_date, bool lifetime, const char *reason,
                           const char *operator_name, bool claim, int64_t claim_growth,
                           Loyalty__V1__PointsLot **lot, Loyalty__V1__PointsEntry **entry) {
    *lot = NULL;
    if (points <= 0) {
        return status_ok();
    }
    points_credit_t c;
    status_t st =
        credit_make(lg->db, s, lg->now, kind, source, reference, points, pending_days, expiry_date,
                    lifetime, reason, operator_name, claim, claim_growth, &c);
    if (!status_is_ok(&st)) {
        return st;
    }
    return points_ops_credit(lg, &c, lot, entry);
}

/* An earn checked and priced before any lock: what Earn and EarnBatch apply. */
typedef struct earn_plan {
    const Loyalty__V1__PointsEarnRequest *req;
    int source;
    Loyalty__V1__PointsEarnBreakdown *b; /* b->pending_days resolved */
    Loyalty__V1__PointsLot *made;        /* its lot, made with its batch's (earn_batch_lots) */
} earn_plan_t;

static status_t earn_prepare(rpc_ctx_t *ctx, const Loyalty__V1__PointsSettings *s,
                             const Loyalty__V1__PointsEarnRequest *req, earn_plan_t *p) {
    p->req = req;
    p->made = NULL;
    status_t st = check_earn(req, &p->source);
    if (!status_is_ok(&st)) {
        return st;
    }
    p->b = pb_new(ctx->arena, &loyalty__v1__points_earn_breakdown__descriptor);
    st = earn_breakdown(ctx, s, req, p->b);
    if (!status_is_ok(&st)) {
        return st;
    }
    bool is_order = p->source == LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_ORDER;
    p->b->pending_days =
        req->_pending_days_case == LOYALTY__V1__POINTS_EARN_REQUEST___PENDING_DAYS_PENDING_DAYS
            ? req->pending_days
            : (is_order ? s->pending_days : 0);
    return status_ok();
}

/* A lot on the settings' schedule becomes available and expires after now; an explicit expiry
 * date might already have passed (then the account's save must wait for its settle). */
static bool earn_keeps_save_deferred(const earn_plan_t *p) {
    return p->req->expiry_date[0] == '\0';
}

/* The credit a prepared earn with points makes (credit_make of its request). */
static status_t earn_credit(db_t *db, const Loyalty__V1__PointsSettings *s, int64_t now,
                            const earn_plan_t *p, points_credit_t *c) {
    const Loyalty__V1__PointsEarnRequest *req = p->req;
    return credit_make(db, s, now, LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_EARN,
                       p->source, req->reference, p->b->points, p->b->pending_days,
                       req->expiry_date, true, req->note, "", req->reference[0] != '\0',
                       p->b->growth, c);
}

/* Applies a prepared earn in its member's open ledger: the lot, which claims the reference
 * (what an order earned is read from it: no order row), and growth. An earn that makes no lot
 * claims the reference in earn_refs. Fills resp except its balance. */
static status_t earn_apply(points_ledger_t *lg, const Loyalty__V1__PointsSettings *s,
                           const earn_plan_t *p, Loyalty__V1__PointsEarnResponse *resp) {
    const Loyalty__V1__PointsEarnRequest *req = p->req;
    const Loyalty__V1__PointsEarnBreakdown *b = p->b;
    bool claim = req->reference[0] != '\0';
    resp->lot = NULL;
    points_credit_t c;
    status_t st = b->points > 0 ? earn_credit(lg->db, s, lg->now, p, &c) : status_ok();
    if (status_is_ok(&st) && b->points > 0) {
        c.made = p->made;
        st = points_ops_credit(lg, &c, &resp->lot, NULL);
    }
    if (status_is_ok(&st) && claim && resp->lot == NULL) {
        st = points_store_claim_earn(lg->db, lg->merchant, p->source, req->reference,
                                     req->member_id, b->growth, lg->now);
    }
    if (status_is_ok(&st)) {
        st = points_ops_growth(lg, LOYALTY__V1__POINTS_GROWTH_KIND__POINTS_GROWTH_KIND_EARN,
                               b->growth, p->source, req->reference, req->note);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    resp->points = b->points;
    resp->growth_delta = b->growth;
    resp->breakdown = (Loyalty__V1__PointsEarnBreakdown *)b;
    return status_ok();
}

static status_t rpc_earn(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                         ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PointsEarnRequest *req = (const void *)req_msg;
    Loyalty__V1__PointsEarnResponse *resp = (void *)resp_msg;
    Loyalty__V1__PointsSettings *s = NULL;
    status_t st = points_load_settings(ctx, &s);
    earn_plan_t p;
    if (status_is_ok(&st)) {
        st = earn_prepare(ctx, s, req, &p);
    }
    points_ledger_t lg;
    if (status_is_ok(&st)) {
        st = points_ops_open(&lg, ctx, ctx->db, ctx->arena, ctx->merchant_id, req->member_id,
                             ctx->now_s, true);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    lg.save_deferred = earn_keeps_save_deferred(&p);
    st = earn_apply(&lg, s, &p, resp);
    if (status_is_ok(&st)) {
        st = points_ops_close(&lg);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    return ledger_balance(&lg, req->omit_expiring, &resp->balance);
}

static status_t rpc_check_in(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                             ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PointsCheckInRequest *req = (const void *)req_msg;
    Loyalty__V1__PointsCheckInResponse *resp = (void *)resp_msg;
    status_t st = points_check_member("member_id", req->member_id);
    if (!status_is_ok(&st)) {
        return st;
    }
    int64_t asked = 0;
    if (req->date[0] != '\0') {
        st = points_rules_parse_day("date", req->date, &asked);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    Loyalty__V1__PointsSettings *s = NULL;
    st = points_load_settings(ctx, &s);
    if (!status_is_ok(&st)) {
        return st;
    }
    points_local_clock_t clock;
    st = points_clock_get(ctx->db, s->time_zone, ctx->now_s, 0, &clock);
    if (!status_is_ok(&st)) {
        return st;
    }
    char today[11];
    points_rules_format_day(clock.day, today);
    if (req->date[0] != '\0' && asked != clock.day) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_CHECK_IN_DATE_NOT_TODAY,
                           "today is %s in the merchant's time zone", today);
    }
    Loyalty__V1__PointsEarnBreakdown b = LOYALTY__V1__POINTS_EARN_BREAKDOWN__INIT;
    points_rules_earn_event(s, LOYALTY__V1__POINTS_EVENT_KIND__POINTS_EVENT_KIND_CHECK_IN, &b);
    points_ledger_t lg;
    st = points_ops_open(&lg, ctx, ctx->db, ctx->arena, ctx->merchant_id, req->member_id,
                         ctx->now_s, true);
    if (status_is_ok(&st)) {
        st = points_store_insert_check_in(ctx->db, ctx->merchant_id, req->member_id, clock.day,
                                          b.points, ctx->now_s);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    const char *reference = arena_printf(ctx->arena, "check-in:%s", today);
    lg.acct.check_in_streak = points_rules_streak(lg.acct.has_check_in, lg.acct.last_check_in_day,
                                                  lg.acct.check_in_streak, clock.day);
    lg.acct.has_check_in = true;
    lg.acct.last_check_in_day = clock.day;
    st = credit_now(&lg, s, LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_EARN,
                    LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_CHECK_IN, reference, b.points, 0, "",
                    true, "", "", false, 0, &resp->lot, NULL);
    if (status_is_ok(&st)) {
        st = points_ops_growth(&lg, LOYALTY__V1__POINTS_GROWTH_KIND__POINTS_GROWTH_KIND_EARN,
                               b.growth, LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_CHECK_IN,
                               reference, "");
    }
    if (status_is_ok(&st)) {
        st = points_ops_close(&lg);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    resp->date = arena_strdup(ctx->arena, today);
    resp->points = b.points;
    resp->growth_delta = b.growth;
    resp->streak_days = lg.acct.check_in_streak;
    return ledger_balance(&lg, false, &resp->balance);
}

/* ---- balance and lists ---- */

static status_t rpc_get_balance(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PointsGetBalanceRequest *req = (const void *)req_msg;
    Loyalty__V1__PointsGetBalanceResponse *resp = (void *)resp_msg;
    status_t st = points_check_member("member_id", req->member_id);
    if (!status_is_ok(&st)) {
        return st;
    }
    return read_balance(ctx, req->member_id, &resp->balance);
}

static status_t rpc_list_lots(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                              ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PointsListLotsRequest *req = (const void *)req_msg;
    Loyalty__V1__PointsListLotsResponse *resp = (void *)resp_msg;
    status_t st = points_check_member("member_id", req->member_id);
    int32_t size = 0;
    char *key = NULL, *after = NULL;
    if (status_is_ok(&st)) {
        st = points_page(ctx, req->page, &size, &key, &after);
    }
    points_account_t acct;
    bool found = false;
    if (status_is_ok(&st)) {
        st = settle_if_due(ctx, req->member_id, &acct, &found);
    }
    if (status_is_ok(&st)) {
        st = points_store_list_lots(ctx->db, ctx->arena, ctx->merchant_id, req->member_id, key,
                                    after, size + 1, req->include_closed, &resp->lots,
                                    &resp->n_lots);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    resp->page_info = pb_new(ctx->arena, &loyalty__v1__page_info__descriptor);
    if (resp->n_lots > (size_t)size) {
        /* The key of the last row returned, not of the extra one. */
        Loyalty__V1__PointsLot *l = resp->lots[size - 1];
        resp->n_lots = (size_t)size;
        long long k1 = l->expires_at ? l->expires_at : 9000000000000000LL;
        resp->page_info->next_cursor = cursor_encode(
            ctx->arena, arena_printf(ctx->arena, "%lld:%lld", k1, (long long)l->earned_at), l->id);
    }
    return status_ok();
}

static status_t history_kinds(const Loyalty__V1__PointsListHistoryRequest *req, int *kinds) {
    if (req->n_kinds > POINTS_HISTORY_KINDS_MAX) {
        return status_invalid_field("kinds", "at most %d kinds", POINTS_HISTORY_KINDS_MAX);
    }
    for (size_t i = 0; i < req->n_kinds; i++) {
        int k = req->kinds[i];
        if (k < 1 || k > LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_DEBT_REPAY) {
            return status_invalid_field("kinds", "unknown entry kind %d", k);
        }
        kinds[i] = k;
    }
    return status_ok();
}

/* A seq cursor: the key is the decimal seq of the last entry returned. */
static status_t seq_cursor(const char *key, int64_t *seq) {
    *seq = 0;
    if (key[0] == '\0') {
        return status_ok();
    }
    char *end = NULL;
    long long v = strtoll(key, &end, 10);
    if (end == key || *end != '\0' || v <= 0) {
        return status_invalid_field("page.cursor", "malformed cursor");
    }
    *seq = v;
    return status_ok();
}

/* Lists fetch one row more than the page: when it came, the page is cut and the cursor points
 * after its last row. */
static Loyalty__V1__PageInfo *seq_page(rpc_ctx_t *ctx, size_t *n, int32_t size,
                                       const int64_t *seqs) {
    Loyalty__V1__PageInfo *info = pb_new(ctx->arena, &loyalty__v1__page_info__descriptor);
    if (*n > (size_t)size) {
        *n = (size_t)size;
        info->next_cursor = cursor_encode(
            ctx->arena, arena_printf(ctx->arena, "%lld", (long long)seqs[size - 1]), "");
    }
    return info;
}

static status_t rpc_list_history(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                 ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PointsListHistoryRequest *req = (const void *)req_msg;
    Loyalty__V1__PointsListHistoryResponse *resp = (void *)resp_msg;
    int kinds[POINTS_HISTORY_KINDS_MAX];
    status_t st = points_check_member("member_id", req->member_id);
    if (status_is_ok(&st)) {
        st = history_kinds(req, kinds);
    }
    int32_t size = 0;
    char *key = NULL, *after = NULL;
    int64_t before = 0;
    if (status_is_ok(&st)) {
        st = points_page(ctx, req->page, &size, &key, &after);
    }
    if (status_is_ok(&st)) {
        st = seq_cursor(key, &before);
    }
    points_account_t acct;
    bool found = false;
    if (status_is_ok(&st)) {
        st = settle_if_due(ctx, req->member_id, &acct, &found);
    }
    int64_t *seqs = NULL;
    if (status_is_ok(&st)) {
        st = points_store_list_entries(ctx->db, ctx->arena, ctx->merchant_id, req->member_id,
                                       before, size + 1, kinds, req->n_kinds, &resp->entries,
                                       &resp->n_entries, &seqs);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    resp->page_info = seq_page(ctx, &resp->n_entries, size, seqs);
    return status_ok();
}

static status_t rpc_list_growth_history(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                        ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PointsListGrowthHistoryRequest *req = (const void *)req_msg;
    Loyalty__V1__PointsListGrowthHistoryResponse *resp = (void *)resp_msg;
    status_t st = points_check_member("member_id", req->member_id);
    int32_t size = 0;
    char *key = NULL, *after = NULL;
    int64_t before = 0;
    if (status_is_ok(&st)) {
        st = points_page(ctx, req->page, &size, &key, &after);
    }
    if (status_is_ok(&st)) {
        st = seq_cursor(key, &before);
    }
    int64_t *seqs = NULL;
    if (status_is_ok(&st)) {
        st = points_store_list_growth(ctx->db, ctx->arena, ctx->merchant_id, req->member_id, before,
                                      size + 1, &resp->entries, &resp->n_entries, &seqs);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    resp->page_info = seq_page(ctx, &resp->n_entries, size, seqs);
    return status_ok();
}

/* ---- redemption ---- */

static status_t rpc_quote_redeem(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                 ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PointsQuoteRedeemRequest *req = (const void *)req_msg;
    Loyalty__V1__PointsQuoteRedeemResponse *resp = (void *)resp_msg;
    status_t st = points_check_member("member_id", req->member_id);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (req->order_total_cents < 0 || req->order_total_cents > POINTS_CENTS_MAX) {
        return status_invalid_field("order_total_cents", "must be between 0 and 10^13");
    }
    if (req->points < 0 || req->points > POINTS_MAX) {
        return status_invalid_field("points", "must be between 0 and 10^12");
    }
    Loyalty__V1__PointsSettings *s = NULL;
    st = points_load_settings(ctx, &s);
    Loyalty__V1__PointsBalance *b = NULL;
    if (status_is_ok(&st)) {
        st = read_balance(ctx, req->member_id, &b);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    points_redeem_quote_t q;
    points_rules_quote_redeem(s, b->available, req->order_total_cents, &q);
    resp->points = q.points;
    resp->cash_value_cents = q.cash_value_cents;
    resp->available = b->available;
    resp->max_cash_cents = q.max_cash_cents;
    resp->redeem_points = s->redeem_points;
    resp->redeem_value_cents = s->redeem_value_cents;
    resp->min_points = s->redeem_min_points;
    resp->reason = (char *)q.reason;
    if (req->points > 0 || req->use_max_points) {
        points_redemption_choice_t c = points_rules_choose_redemption(
            s, b->available, req->order_total_cents, req->points, req->use_max_points);
        resp->chosen_points = c.points;
        resp->chosen_cash_cents = points_rules_cash_value(s, c.points);
        resp->note = (char *)c.note;
    }
    return status_ok();
}

static status_t rpc_hold(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                         ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PointsHoldRequest *req = (const void *)req_msg;
    Loyalty__V1__PointsHoldResponse *resp = (void *)resp_msg;
    bool for_order = req->_order_total_cents_case ==
                     LOYALTY__V1__POINTS_HOLD_REQUEST___ORDER_TOTAL_CENTS_ORDER_TOTAL_CENTS;
    status_t st = points_check_member("member_id", req->member_id);
    if (status_is_ok(&st) && (req->choose_points || req->use_max_points) && !for_order) {
        st = status_invalid_field("order_total_cents", "required to choose the points");
    }
    if (status_is_ok(&st) && req->use_max_points && !req->choose_points) {
        st = status_invalid_field("use_max_points", "only with choose_points");
    }
    if (status_is_ok(&st) && req->use_max_points && req->points != 0) {
        st = status_invalid_field("points", "0 with use_max_points");
    }
    if (status_is_ok(&st) && !req->use_max_points &&
        (req->points < 1 || req->points > POINTS_MAX)) {
        st = status_invalid_field("points", "must be between 1 and 10^12");
    }
    if (status_is_ok(&st)) {
        st = points_check_reference("reference", req->reference, true);
    }
    int64_t ttl = 0;
    if (status_is_ok(&st)) {
        st = points_rules_hold_ttl(req->ttl_s, &ttl);
    }
    if (status_is_ok(&st) && for_order &&
        (req->order_total_cents < 0 || req->order_total_cents > POINTS_CENTS_MAX)) {
        st = status_invalid_field("order_total_cents", "must be between 0 and 10^13");
    }
    Loyalty__V1__PointsSettings *s = NULL;
    if (status_is_ok(&st)) {
        st = points_load_settings(ctx, &s);
    }
    if (status_is_ok(&st) && for_order && !req->choose_points) {
        st = points_rules_check_redemption(s, req->points, req->order_total_cents);
    }
    points_ledger_t lg;
    if (status_is_ok(&st)) {
        st = points_ops_open(&lg, ctx, ctx->db, ctx->arena, ctx->merchant_id, req->member_id,
                             ctx->now_s, false);
    }
    int64_t points = req->points;
    if (status_is_ok(&st) && req->choose_points) {
        /* Chosen under the lock, from the balance the hold will take them from. */
        points_redemption_choice_t c = points_rules_choose_redemption(
            s, points_ops_available(&lg), req->order_total_cents, req->points, req->use_max_points);
        resp->note = (char *)c.note;
        points = c.points;
        if (points > 0) {
            st = points_rules_check_redemption(s, points, req->order_total_cents);
        }
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    lg.save_deferred = true; /* a new hold falls due at its TTL, after now */
    /* No points.balance for the hold itself: the checkout's path stays free of events of its
     * own, and the gateway passes the balance after the earn (RecordOrder) or the commit
     * (RecordPointsBalance); a release or an expiry announces the points coming back. */
    lg.balance_quiet = true;
    if (points > 0) {
        char id[ID_MAX];
        id_generate("hld", id);
        st = points_ops_hold(&lg, id, req->reference, points, points_rules_cash_value(s, points),
                             ctx->now_s + ttl, &resp->hold);
    }
    if (status_is_ok(&st) && lg.found) { /* no account: nothing held, nothing to save */
        st = points_ops_close(&lg);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    return ledger_balance(&lg, req->omit_expiring, &resp->balance);
}

/* Finds a hold by id or reference (the request's `target` oneof). */
static status_t hold_target(rpc_ctx_t *ctx, int target_case, int by_id_case, const char *hold_id,
                            const char *reference, Loyalty__V1__PointsHold **out) {
    if (target_case == 0) {
        return status_invalid_field("target", "one of hold_id or reference is required");
    }
    bool by_id = target_case == by_id_case;
    status_t st = by_id ? validate_token("hold_id", hold_id, ID_MAX)
                        : points_check_reference("reference", reference, true);
    if (!status_is_ok(&st)) {
        return st;
    }
    return points_store_get_hold(ctx->db, ctx->arena, ctx->merchant_id, by_id ? hold_id : NULL,
                                 by_id ? NULL : reference, out);
}

/* Opens the ledger of a hold's member (settling it: the hold may expire here) and re-reads
 * the hold under the lock. */
static status_t open_for_hold(rpc_ctx_t *ctx, points_ledger_t *lg, Loyalty__V1__PointsHold **h) {
    status_t st = points_ops_open(lg, ctx, ctx->db, ctx->arena, ctx->merchant_id, (*h)->member_id,
                                  ctx->now_s, true);
    if (!status_is_ok(&st)) {
        return st;
    }
    return points_store_get_hold(ctx->db, ctx->arena, ctx->merchant_id, (*h)->id, NULL, h);
}

/* Closes the ledger and answers with the hold as read under the lock, moved to `status` when
 * this call finished it (status 0: left as it was): no read back. */
static status_t hold_finish(points_ledger_t *lg, Loyalty__V1__PointsHold *h, int status,
                            bool omit_expiring, Loyalty__V1__PointsHold **hold,
                            Loyalty__V1__PointsBalance **balance) {
    status_t st = points_ops_close(lg);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (status != 0) {
        h->status = (Loyalty__V1__PointsHoldStatus)status;
        h->finished_at = lg->now;
    }
    *hold = h;
    return ledger_balance(lg, omit_expiring, balance);
}

/* Commits an ACTIVE hold in its member's open ledger (a COMMITTED one is answered as it is);
 * *finished receives the status this call moved it to (0: unchanged). */
static status_t hold_commit(points_ledger_t *lg, const Loyalty__V1__PointsHold *h, int *finished) {
    *finished = 0;
    switch (h->status) {
    case LOYALTY__V1__POINTS_HOLD_STATUS__POINTS_HOLD_STATUS_ACTIVE:
        *finished = LOYALTY__V1__POINTS_HOLD_STATUS__POINTS_HOLD_STATUS_COMMITTED;
        return points_ops_commit(lg, h);
    case LOYALTY__V1__POINTS_HOLD_STATUS__POINTS_HOLD_STATUS_COMMITTED:
        return status_ok(); /* committing twice answers the committed hold */
    case LOYALTY__V1__POINTS_HOLD_STATUS__POINTS_HOLD_STATUS_EXPIRED:
        return status_make(STATUS_FAILED_PRECONDITION, REASON_HOLD_EXPIRED,
                           "the hold expired (its TTL passed) and its points were released");
    default:
        return status_make(STATUS_FAILED_PRECONDITION, REASON_HOLD_RELEASED,
                           "the hold was released; hold the points again");
    }
}

static status_t rpc_commit_hold(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PointsCommitHoldRequest *req = (const void *)req_msg;
    Loyalty__V1__PointsCommitHoldResponse *resp = (void *)resp_msg;
    Loyalty__V1__PointsHold *h = NULL;
    status_t st =
        hold_target(ctx, req->target_case, LOYALTY__V1__POINTS_COMMIT_HOLD_REQUEST__TARGET_HOLD_ID,
                    req->hold_id, req->reference, &h);
    points_ledger_t lg;
    if (status_is_ok(&st)) {
        st = open_for_hold(ctx, &lg, &h);
    }
    int finished = 0;
    if (status_is_ok(&st)) {
        lg.save_deferred = true; /* spends held points: nothing new falls due */
        st = hold_commit(&lg, h, &finished);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    return hold_finish(&lg, h, finished, req->omit_expiring, &resp->hold, &resp->balance);
}

/* ---- EarnBatch ---- */

#define POINTS_EARN_BATCH_MAX 40
_Static_assert(POINTS_EARN_BATCH_MAX + 1 <= RPC_INVALIDATIONS_MAX, "EarnBatch batch too large");

/* An item's invalid field refuses the batch; the message says which item. */
static status_t batch_item_status(size_t i, status_t st) {
    status_t out = st;
    char prefix[32];
    int n = snprintf(prefix, sizeof prefix, "earns[%zu]: ", i);
    size_t keep = sizeof out.message - (size_t)n - 1;
    snprintf(out.message, sizeof out.message, "%s%.*s", prefix, (int)keep, st.message);
    return out;
}

static status_t check_batch_item(const Loyalty__V1__PointsEarnBatchRequest *req, size_t i,
                                 const char *merchant) {
    const Loyalty__V1__PointsEarnRequest *e = req->earns[i];
    if (e->merchant_id[0] && strcmp(e->merchant_id, merchant) != 0) {
        return status_invalid_field("merchant_id", "an earn of the batch names another merchant");
    }
    if (e->idempotency_key[0]) {
        return status_invalid_field("idempotency_key",
                                    "must be empty: the batch's key covers its earns");
    }
    return status_ok();
}

static int cmp_member(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The distinct members of the batch (earns and the hold's), sorted: the order their accounts
 * are locked in, so that two batches sharing members cannot deadlock. */
static size_t batch_members(rpc_ctx_t *ctx, const earn_plan_t *plans, size_t n,
                            const Loyalty__V1__PointsHold *h, const char ***out) {
    const char **m = arena_alloc(ctx->arena, (n + 1) * sizeof *m);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        m[k++] = plans[i].req->member_id;
    }
    if (h != NULL) {
        m[k++] = h->member_id;
    }
    qsort(m, k, sizeof *m, cmp_member);
    size_t u = 0;
    for (size_t i = 0; i < k; i++) {
        if (u == 0 || strcmp(m[u - 1], m[i]) != 0) {
            m[u++] = m[i];
        }
    }
    *out = m;
    return u;
}

/* One member's part of the batch under its account's lock: the hold's commit when it is the
 * member's, then its earns in request order. */
static status_t batch_member(rpc_ctx_t *ctx, const Loyalty__V1__PointsSettings *s,
                             const Loyalty__V1__PointsEarnBatchRequest *req,
                             const earn_plan_t *plans, const char *member,
                             const points_batch_locks_t *locks, Loyalty__V1__PointsHold **h,
                             Loyalty__V1__PointsEarnBatchResponse *resp) {
    points_ledger_t lg;
    const points_account_t *locked = NULL;
    for (size_t i = 0; i < locks->n && locked == NULL; i++) {
        if (strcmp(locks->members[i], member) == 0) {
            locked = &locks->accounts[i];
        }
    }
    /* A member's first points: the account is created (and locked) now. */
    status_t st = locked != NULL
                      ? points_ops_open_locked(&lg, ctx, ctx->db, ctx->arena, ctx->merchant_id,
                                               member, ctx->now_s, locked)
                      : points_ops_open(&lg, ctx, ctx->db, ctx->arena, ctx->merchant_id, member,
                                        ctx->now_s, true);
    bool deferred = true; /* see earn_keeps_save_deferred */
    int finished = 0;
    bool has_hold = status_is_ok(&st) && *h != NULL && strcmp((*h)->member_id, member) == 0;
    if (has_hold && (locked == NULL || (locked->has_due && locked->next_due_at <= ctx->now_s))) {
        /* Opening settled what fell due, which may have expired the hold: read it again. */
        st = points_store_get_hold(ctx->db, ctx->arena, ctx->merchant_id, (*h)->id, NULL, h);
    }
    if (has_hold && status_is_ok(&st)) {
        /* read under its account's lock (points_store_lock_batch): it may have expired or been
         * finished before */
        st = hold_commit(&lg, *h, &finished);
    }
    for (size_t i = 0; status_is_ok(&st) && i < req->n_earns; i++) {
        if (strcmp(plans[i].req->member_id, member) != 0) {
            continue;
        }
        deferred = deferred && earn_keeps_save_deferred(&plans[i]);
        /* Refusals of deferred writes surface at a later statement: not attributable to an
         * item, so they are passed on as they are. */
        st = earn_apply(&lg, s, &plans[i], resp->earns[i]);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    lg.save_deferred = deferred;
    Loyalty__V1__PointsBalance *balance = NULL;
    if (has_hold) {
        Loyalty__V1__PointsBalance *unused = NULL;
        st = hold_finish(&lg, *h, finished, true, &resp->hold, &unused);
    } else {
        st = points_ops_close(&lg);
    }
    for (size_t i = 0; status_is_ok(&st) && i < req->n_earns; i++) {
        if (strcmp(plans[i].req->member_id, member) != 0) {
            continue;
        }
        if (balance == NULL) {
            st = ledger_balance(&lg, req->omit_expiring, &balance);
        }
        resp->earns[i]->balance = balance;
    }
    return st;
}

/* One EarnBatch call, checked and priced before any lock, and its hold once read under its
 * member's lock. */
typedef struct earn_batch_call {
    rpc_ctx_t *ctx;
    const Loyalty__V1__PointsEarnBatchRequest *req;
    Loyalty__V1__PointsEarnBatchResponse *resp;
    earn_plan_t *plans;
    Loyalty__V1__PointsHold *hold; /* the one to commit; NULL until read, or without one */
} earn_batch_call_t;

/* Checks a call and prices its earns; *s is the merchant's settings, loaded when still NULL. */
static status_t earn_batch_prepare(rpc_ctx_t *ctx, const Loyalty__V1__PointsEarnBatchRequest *req,
                                   Loyalty__V1__PointsEarnBatchResponse *resp,
                                   Loyalty__V1__PointsSettings **s, earn_batch_call_t *c) {
    *c = (earn_batch_call_t){.ctx = ctx, .req = req, .resp = resp};
    if (req->n_earns > POINTS_EARN_BATCH_MAX) {
        return status_invalid_field("earns", "at most %d earns", POINTS_EARN_BATCH_MAX);
    }
    if (req->n_earns == 0 && req->commit_hold_id[0] == '\0') {
        return status_invalid_field("earns", "an earn or a commit_hold_id is required");
    }
    status_t st = req->commit_hold_id[0]
                      ? validate_token("commit_hold_id", req->commit_hold_id, ID_MAX)
                      : status_ok();
    for (size_t i = 0; status_is_ok(&st) && i < req->n_earns; i++) {
        st = check_batch_item(req, i, ctx->merchant_id);
        if (!status_is_ok(&st)) {
            st = batch_item_status(i, st);
        }
    }
    if (status_is_ok(&st) && *s == NULL) {
        st = points_load_settings(ctx, s);
    }
    c->plans = arena_alloc(ctx->arena, (req->n_earns + 1) * sizeof *c->plans);
    resp->earns = arena_alloc(ctx->arena, (req->n_earns + 1) * sizeof *resp->earns);
    resp->n_earns = req->n_earns;
    for (size_t i = 0; status_is_ok(&st) && i < req->n_earns; i++) {
        resp->earns[i] = pb_new(ctx->arena, &loyalty__v1__points_earn_response__descriptor);
        st = earn_prepare(ctx, *s, req->earns[i], &c->plans[i]);
        if (!status_is_ok(&st)) {
            st = batch_item_status(i, st);
        }
    }
    return st;
}

/* Every account the calls move locked, and their holds read under the locks: one round trip.
 * Calls with `skip[i]` set are left out (skip may be NULL). */
static status_t earn_batch_lock(rpc_ctx_t *ctx, earn_batch_call_t *calls, size_t n,
                                const bool *skip, points_batch_locks_t *locks) {
    size_t n_earners = 0, n_holds = 0;
    for (size_t i = 0; i < n; i++) {
        n_earners += skip && skip[i] ? 0 : calls[i].req->n_earns;
    }
    const char **earners = arena_alloc(ctx->arena, (n_earners + 1) * sizeof *earners);
    const char **hold_ids = arena_alloc(ctx->arena, (n + 1) * sizeof *hold_ids);
    n_earners = 0;
    for (size_t i = 0; i < n; i++) {
        if (skip && skip[i]) {
            continue;
        }
        for (size_t k = 0; k < calls[i].req->n_earns; k++) {
            earners[n_earners++] = calls[i].plans[k].req->member_id;
        }
        if (calls[i].req->commit_hold_id[0]) {
            hold_ids[n_holds++] = calls[i].req->commit_hold_id;
        }
    }
    status_t st = points_store_lock_batch(ctx->db, ctx->arena, ctx->merchant_id, earners, n_earners,
                                          hold_ids, n_holds, locks);
    for (size_t i = 0; status_is_ok(&st) && i < n; i++) {
        for (size_t k = 0; k < locks->n_holds && calls[i].req->commit_hold_id[0]; k++) {
            if (strcmp(locks->holds[k]->id, calls[i].req->commit_hold_id) == 0) {
                calls[i].hold = locks->holds[k];
            }
        }
    }
    return st;
}

/* Makes the lots of the calls' earns in one statement, before the members' ledgers open, where
 * each earn would insert its own: for the earns with points whose lot expires on the settings'
 * schedule (after now: nothing can settle it before its credit counts it) and whose member's
 * account is locked and has nothing due (opening it settles nothing that could meet the lot).
 * The others make their lots as they go. Calls with `skip[i]` set are left out (skip may be
 * NULL). Worth it from two lots on. */
static status_t earn_batch_lots(rpc_ctx_t *ctx, const Loyalty__V1__PointsSettings *s,
                                earn_batch_call_t *calls, size_t n, const bool *skip,
                                const points_batch_locks_t *locks) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += skip && skip[i] ? 0 : calls[i].req->n_earns;
    }
    points_new_lot_t *lots = arena_alloc(ctx->arena, (total + 1) * sizeof *lots);
    earn_plan_t **plans = arena_alloc(ctx->arena, (total + 1) * sizeof *plans);
    size_t k = 0;
    status_t st = status_ok();
    for (size_t i = 0; i < n && status_is_ok(&st); i++) {
        for (size_t e = 0; !(skip && skip[i]) && e < calls[i].req->n_earns; e++) {
            earn_plan_t *p = &calls[i].plans[e];
            const points_account_t *acct = NULL;
            for (size_t m = 0; m < locks->n && acct == NULL; m++) {
                acct =
                    strcmp(locks->members[m], p->req->member_id) == 0 ? &locks->accounts[m] : NULL;
            }
            if (p->b->points <= 0 || !earn_keeps_save_deferred(p) || acct == NULL ||
                (acct->has_due && acct->next_due_at <= ctx->now_s)) {
                continue;
            }
            points_credit_t c;
            st = earn_credit(ctx->db, s, ctx->now_s, p, &c);
            if (!status_is_ok(&st)) {
                break;
            }
            char *id = arena_alloc(ctx->arena, ID_MAX);
            id_generate("lot", id);
            points_ops_new_lot(&c, p->req->member_id, id, &lots[k]);
            plans[k++] = p;
        }
    }
    if (!status_is_ok(&st) || k < 2) {
        return st;
    }
    Loyalty__V1__PointsLot **made = arena_alloc(ctx->arena, k * sizeof *made);
    st = points_store_insert_lots(ctx->db, ctx->arena, ctx->merchant_id, lots, k, made);
    for (size_t i = 0; status_is_ok(&st) && i < k; i++) {
        plans[i]->made = made[i];
    }
    return st;
}

/* Applies a call whose accounts are locked: member by member, in member-id order. */
static status_t earn_batch_apply(const Loyalty__V1__PointsSettings *s, earn_batch_call_t *c,
                                 const points_batch_locks_t *locks) {
    const char **members = NULL;
    size_t n_members = batch_members(c->ctx, c->plans, c->req->n_earns, c->hold, &members);
    status_t st = status_ok();
    for (size_t k = 0; status_is_ok(&st) && k < n_members; k++) {
        st = batch_member(c->ctx, s, c->req, c->plans, members[k], locks, &c->hold, c->resp);
    }
    return st;
}

static status_t rpc_earn_batch(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                               ProtobufCMessage *resp_msg) {
    Loyalty__V1__PointsSettings *s = NULL;
    earn_batch_call_t c;
    status_t st = earn_batch_prepare(ctx, (const void *)req_msg, (void *)resp_msg, &s, &c);
    points_batch_locks_t locks;
    if (status_is_ok(&st)) {
        st = earn_batch_lock(ctx, &c, 1, NULL, &locks);
    }
    if (status_is_ok(&st) && c.req->commit_hold_id[0] && c.hold == NULL) {
        st = status_make(STATUS_NOT_FOUND, REASON_HOLD_NOT_FOUND, "hold not found");
    }
    if (status_is_ok(&st)) {
        st = earn_batch_lots(ctx, s, &c, 1, NULL, &locks);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    return earn_batch_apply(s, &c, &locks);
}

/* A member of a merged call, for finding members that two calls share. */
typedef struct merge_member {
    const char *member_id;
    size_t call;
} merge_member_t;

static int cmp_merge_member(const void *a, const void *b) {
    const merge_member_t *x = a, *y = b;
    int c = strcmp(x->member_id, y->member_id);
    return c != 0 ? c : (x->call > y->call) - (x->call < y->call);
}

/* Leaves out every call that shares a member with an earlier call kept in: the calls kept
 * move disjoint sets of accounts, so applying them together is applying them in any order. */
static void merge_keep_disjoint(arena_t *a, earn_batch_call_t *calls, size_t n, bool *alone) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += calls[i].req->n_earns + 1;
    }
    merge_member_t *m = arena_alloc(a, (total + 1) * sizeof *m);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (alone[i]) {
            continue;
        }
        for (size_t e = 0; e < calls[i].req->n_earns; e++) {
            m[k++] = (merge_member_t){calls[i].plans[e].req->member_id, i};
        }
        if (calls[i].hold != NULL) {
            m[k++] = (merge_member_t){calls[i].hold->member_id, i};
        }
    }
    qsort(m, k, sizeof *m, cmp_merge_member);
    for (size_t from = 0; from < k;) {
        size_t to = from + 1;
        while (to < k && strcmp(m[to].member_id, m[from].member_id) == 0) {
            to++;
        }
        size_t keeper = n; /* the first call of this member still kept in */
        for (size_t x = from; x < to; x++) {
            if (alone[m[x].call] || m[x].call == keeper) {
                continue;
            }
            if (keeper == n) {
                keeper = m[x].call;
            } else {
                alone[m[x].call] = true;
            }
        }
        from = to;
    }
}

/* EarnBatch's merger (rpc_merger_t): one lock statement for all the calls of a batch, then each
 * call's movements as it would make them alone. A call that is refused before the locks, whose
 * hold is gone, or that shares a member with an earlier call runs by itself afterwards. */
static status_t merge_earn_batch(rpc_ctx_t *ctx, rpc_merge_call_t *calls, size_t n) {
    Loyalty__V1__PointsSettings *s = NULL;
    earn_batch_call_t *eb = arena_alloc(ctx->arena, n * sizeof *eb);
    bool *alone = arena_alloc(ctx->arena, n * sizeof *alone);
    for (size_t i = 0; i < n; i++) {
        status_t st = earn_batch_prepare(calls[i].ctx, (const void *)calls[i].req,
                                         (void *)calls[i].resp, &s, &eb[i]);
        alone[i] = !status_is_ok(&st);
    }
    points_batch_locks_t locks;
    status_t st = earn_batch_lock(ctx, eb, n, alone, &locks);
    for (size_t i = 0; status_is_ok(&st) && i < n; i++) {
        alone[i] = alone[i] || (eb[i].req->commit_hold_id[0] && eb[i].hold == NULL);
    }
    if (status_is_ok(&st)) {
        merge_keep_disjoint(ctx->arena, eb, n, alone);
        st = earn_batch_lots(ctx, s, eb, n, alone, &locks);
    }
    for (size_t i = 0; status_is_ok(&st) && i < n; i++) {
        calls[i].alone = alone[i];
        if (!alone[i]) {
            st = earn_batch_apply(s, &eb[i], &locks);
        }
    }
    return st;
}

static status_t rpc_release_hold(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                 ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PointsReleaseHoldRequest *req = (const void *)req_msg;
    Loyalty__V1__PointsReleaseHoldResponse *resp = (void *)resp_msg;
    Loyalty__V1__PointsHold *h = NULL;
    status_t st =
        hold_target(ctx, req->target_case, LOYALTY__V1__POINTS_RELEASE_HOLD_REQUEST__TARGET_HOLD_ID,
                    req->hold_id, req->reference, &h);
    points_ledger_t lg;
    if (status_is_ok(&st)) {
        st = open_for_hold(ctx, &lg, &h);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    if (h->status == LOYALTY__V1__POINTS_HOLD_STATUS__POINTS_HOLD_STATUS_COMMITTED) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_HOLD_COMMITTED,
                           "the hold was committed; reverse the order to give points back");
    }
    int finished = 0;
    if (h->status == LOYALTY__V1__POINTS_HOLD_STATUS__POINTS_HOLD_STATUS_ACTIVE) {
        st = points_ops_release(&lg, h, false);
        if (!status_is_ok(&st)) {
            return st;
        }
        finished = LOYALTY__V1__POINTS_HOLD_STATUS__POINTS_HOLD_STATUS_RELEASED;
    }
    return hold_finish(&lg, h, finished, req->omit_expiring, &resp->hold, &resp->balance);
}

static status_t rpc_get_hold(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                             ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PointsGetHoldRequest *req = (const void *)req_msg;
    Loyalty__V1__PointsGetHoldResponse *resp = (void *)resp_msg;
    status_t st =
        hold_target(ctx, req->target_case, LOYALTY__V1__POINTS_GET_HOLD_REQUEST__TARGET_HOLD_ID,
                    req->hold_id, req->reference, &resp->hold);
    if (!status_is_ok(&st) ||
        resp->hold->status != LOYALTY__V1__POINTS_HOLD_STATUS__POINTS_HOLD_STATUS_ACTIVE ||
        resp->hold->expires_at > ctx->now_s) {
        return st;
    }
    /* Its TTL passed: release it now rather than show a stale ACTIVE hold. */
    points_account_t acct;
    bool found = false;
    st = settle_if_due(ctx, resp->hold->member_id, &acct, &found);
    if (!status_is_ok(&st)) {
        return st;
    }
    return points_store_get_hold(ctx->db, ctx->arena, ctx->merchant_id, resp->hold->id, NULL,
                                 &resp->hold);
}

/* ---- corrections ---- */

static status_t check_adjust(const Loyalty__V1__PointsAdjustRequest *req) {
    status_t st = points_check_member("member_id", req->member_id);
    if (status_is_ok(&st) && (req->points < -POINTS_MAX || req->points > POINTS_MAX)) {
        st = status_invalid_field("points", "must be between -10^12 and 10^12");
    }
    if (status_is_ok(&st) && (req->growth < -POINTS_MAX || req->growth > POINTS_MAX)) {
        st = status_invalid_field("growth", "must be between -10^12 and 10^12");
    }
    if (status_is_ok(&st) && req->points == 0 && req->growth == 0) {
        st = status_invalid_field("points", "points and growth may not both be 0");
    }
    if (status_is_ok(&st)) {
        st = validate_text("reason", req->reason, 1, POINTS_REASON_MAX);
    }
    if (status_is_ok(&st)) {
        st = validate_text("operator", req->operator_, 1, POINTS_OPERATOR_MAX);
    }
    if (status_is_ok(&st) && req->expiry_date[0] != '\0' && req->points <= 0) {
        st = status_invalid_field("expiry_date", "only for positive adjustments");
    }
    return st;
}

static status_t rpc_adjust(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                           ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PointsAdjustRequest *req = (const void *)req_msg;
    Loyalty__V1__PointsAdjustResponse *resp = (void *)resp_msg;
    status_t st = check_adjust(req);
    Loyalty__V1__PointsSettings *s = NULL;
    if (status_is_ok(&st)) {
        st = points_load_settings(ctx, &s);
    }
    points_ledger_t lg;
    if (status_is_ok(&st)) {
        st = points_ops_open(&lg, ctx, ctx->db, ctx->arena, ctx->merchant_id, req->member_id,
                             ctx->now_s, true);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    if (lg.acct.growth + req->growth < 0) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_INSUFFICIENT_GROWTH,
                           "growth would fall below 0 (it is %lld)", (long long)lg.acct.growth);
    }
    const int kind = LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_ADJUST;
    const int source = LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_ADJUSTMENT;
    if (req->points > 0) {
        Loyalty__V1__PointsLot *lot = NULL;
        st = credit_now(&lg, s, kind, source, "", req->points, 0, req->expiry_date, false,
                        req->reason, req->operator_, false, 0, &lot, &resp->entry);
    } else if (req->points < 0) {
        points_debit_t d = {.kind = kind,
                            .source = source,
                            .reference = "",
                            .points = -req->points,
                            .first_lot = "",
                            .reason = req->reason,
                            .operator_name = req->operator_};
        int64_t debt = 0;
        st = points_ops_debit(&lg, &d, &debt, &resp->entry);
    }
    if (status_is_ok(&st)) {
        st = points_ops_growth(&lg, LOYALTY__V1__POINTS_GROWTH_KIND__POINTS_GROWTH_KIND_ADJUST,
                               req->growth, source, "", req->reason);
    }
    if (status_is_ok(&st)) {
        st = points_ops_close(&lg);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    resp->growth_delta = req->growth;
    return ledger_balance(&lg, false, &resp->balance);
}

/* Claws back `claw` earned points of the order: a pending lot is cancelled, an active one is
 * taken from first and then the soonest-expiring lots, the rest becomes debt. */
static status_t claw_back(points_ledger_t *lg, const points_order_t *o, const char *reference,
                          int64_t claw, const char *reason,
                          Loyalty__V1__PointsReverseOrderResponse *resp) {
    if (claw <= 0) {
        return status_ok();
    }
    if (o->earn_lot_id[0]) {
        Loyalty__V1__PointsLot *lot = NULL;
        status_t st = points_store_get_lot(lg->db, lg->a, lg->merchant, o->earn_lot_id, &lot);
        if (!status_is_ok(&st)) {
            return st;
        }
        if (lot && lot->status == LOYALTY__V1__POINTS_LOT_STATUS__POINTS_LOT_STATUS_PENDING) {
            int64_t x = claw < lot->remaining ? claw : lot->remaining;
            st = points_ops_cancel_pending(lg, lot->id, x, reference, reason);
            if (!status_is_ok(&st)) {
                return st;
            }
            resp->pending_cancelled = x;
            claw -= x;
        }
    }
    if (claw <= 0) {
        return status_ok();
    }
    points_debit_t d = {.kind = LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_REVERSE_EARN,
                        .source = LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_ORDER,
                        .reference = reference,
                        .points = claw,
                        .first_lot = o->earn_lot_id,
                        .allow_debt = true,
                        .lifetime = true,
                        .reason = reason};
    resp->points_clawed_back = claw;
    return points_ops_debit(lg, &d, &resp->debt_added, NULL);
}

static status_t rpc_reverse_order(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                  ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PointsReverseOrderRequest *req = (const void *)req_msg;
    Loyalty__V1__PointsReverseOrderResponse *resp = (void *)resp_msg;
    status_t st = points_check_reference("reference", req->reference, true);
    if (status_is_ok(&st) && (req->share_bps < 1 || req->share_bps > 10000)) {
        st = status_invalid_field("share_bps", "must be between 1 and 10000");
    }
    if (status_is_ok(&st)) {
        st = validate_text("reason", req->reason, 0, POINTS_REASON_MAX);
    }
    points_order_t o;
    if (status_is_ok(&st)) { /* unlocked, to learn the member: the account is locked first */
        st = points_store_order_get(ctx->db, ctx->arena, ctx->merchant_id, req->reference, &o);
    }
    points_ledger_t lg;
    if (status_is_ok(&st)) {
        st = points_ops_open(&lg, ctx, ctx->db, ctx->arena, ctx->merchant_id, o.member_id,
                             ctx->now_s, true);
    }
    if (status_is_ok(&st)) {
        /* again under the member's lock, which every writer of the reference holds */
        st = points_store_order_get(ctx->db, ctx->arena, ctx->merchant_id, req->reference, &o);
    }
    int64_t after = 0;
    if (status_is_ok(&st)) {
        st = points_rules_reversal_bps(o.reversed_bps, req->share_bps, &after);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    int64_t claw = points_rules_reversal_amount(o.earned_points, after, o.clawed_points);
    int64_t growth = points_rules_reversal_amount(o.earned_growth, after, o.clawed_growth);
    int64_t restore = points_rules_reversal_amount(o.redeemed_points, after, o.restored_points);
    /* Restore first, so that a claw-back can take the restored points rather than make debt. */
    int64_t restored = 0;
    st = points_ops_restore(&lg, req->reference, restore, req->reason, &restored);
    if (status_is_ok(&st)) {
        st = claw_back(&lg, &o, req->reference, claw, req->reason, resp);
    }
    if (status_is_ok(&st)) {
        st = points_ops_growth(&lg, LOYALTY__V1__POINTS_GROWTH_KIND__POINTS_GROWTH_KIND_REVERSE,
                               -growth, LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_ORDER,
                               req->reference, req->reason);
    }
    if (status_is_ok(&st)) {
        o.reversed_bps = after;
        o.clawed_points += claw;
        o.clawed_growth += growth;
        o.restored_points += restored;
        st = points_store_order_reversed(ctx->db, ctx->merchant_id, req->reference, &o);
    }
    if (status_is_ok(&st)) {
        st = points_ops_close(&lg);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    resp->reference = req->reference;
    resp->member_id = (char *)o.member_id;
    resp->share_bps = req->share_bps;
    resp->reversed_bps_total = after;
    resp->points_restored = restored;
    resp->growth_delta = -growth;
    return ledger_balance(&lg, req->omit_expiring, &resp->balance);
}

/* ---- import ---- */

static status_t check_import_lot(const Loyalty__V1__PointsImportLot *l, int64_t today, size_t i) {
    status_t st = points_check_member("lots.member_id", l->member_id);
    if (status_is_ok(&st) && (l->points < 1 || l->points > POINTS_MAX)) {
        st = status_invalid_field("lots.points", "item %zu: must be between 1 and 10^12", i);
    }
    if (status_is_ok(&st) && (l->growth < 0 || l->growth > POINTS_MAX)) {
        st = status_invalid_field("lots.growth", "item %zu: must be between 0 and 10^12", i);
    }
    if (status_is_ok(&st)) {
        st = points_check_reference("lots.external_reference", l->external_reference, false);
    }
    int64_t day = today;
    if (status_is_ok(&st) && l->earned_date[0]) {
        st = points_rules_parse_day("lots.earned_date", l->earned_date, &day);
        if (status_is_ok(&st) && day > today) {
            st = status_invalid_field("lots.earned_date", "item %zu: in the future", i);
        }
    }
    if (status_is_ok(&st) && l->expiry_date[0]) {
        st = points_rules_parse_day("lots.expiry_date", l->expiry_date, &day);
        if (status_is_ok(&st) && day < today) {
            st = status_invalid_field("lots.expiry_date", "item %zu: already expired", i);
        }
    }
    if (!status_is_ok(&st) && strstr(st.message, "item ") == NULL) {
        /* Say which item: keep the reason, prefix the message. */
        return status_make_relayed(st.code, st.reason, "item %zu: %.200s", i, st.message);
    }
    return st;
}

static status_t import_one(rpc_ctx_t *ctx, const Loyalty__V1__PointsSettings *s,
                           const char *batch_id, const Loyalty__V1__PointsImportLot *l,
                           int64_t today) {
    int64_t earned_day = today, earned_at = ctx->now_s;
    status_t st = status_ok();
    if (l->earned_date[0]) {
        st = points_rules_parse_day("lots.earned_date", l->earned_date, &earned_day);
        if (status_is_ok(&st) && earned_day < today) {
            st = points_store_day_start(ctx->db, s->time_zone, earned_day, &earned_at);
        }
    }
    points_credit_t c = {.kind = LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_IMPORT,
                         .source = LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_IMPORT,
                         .reference = l->external_reference,
                         .points = l->points,
                         .earned_at = earned_at,
                         .available_at = earned_at,
                         .time_zone = s->time_zone,
                         .lifetime = true,
                         .reason = batch_id};
    if (status_is_ok(&st)) {
        st = lot_expiry(s, "lots.expiry_date", l->expiry_date, earned_day, &c.has_expiry,
                        &c.expiry_day);
    }
    if (status_is_ok(&st) && c.has_expiry && c.expiry_day < today) {
        /* By policy from an old earned date: it would already be expired. Keep it for today. */
        c.expiry_day = today;
    }
    points_ledger_t lg;
    if (status_is_ok(&st)) {
        st = points_ops_open(&lg, ctx, ctx->db, ctx->arena, ctx->merchant_id, l->member_id,
                             ctx->now_s, true);
    }
    if (status_is_ok(&st)) {
        st = points_ops_credit(&lg, &c, NULL, NULL);
    }
    if (status_is_ok(&st)) {
        st = points_ops_growth(&lg, LOYALTY__V1__POINTS_GROWTH_KIND__POINTS_GROWTH_KIND_IMPORT,
                               l->growth, LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_IMPORT,
                               l->external_reference, batch_id);
    }
    if (status_is_ok(&st)) {
        st = points_ops_close(&lg);
    }
    return st;
}

static status_t rpc_import_lots(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PointsImportLotsRequest *req = (const void *)req_msg;
    Loyalty__V1__PointsImportLotsResponse *resp = (void *)resp_msg;
    status_t st = points_check_reference("batch_id", req->batch_id, true);
    if (status_is_ok(&st) && (req->n_lots < 1 || req->n_lots > POINTS_IMPORT_LOTS_MAX)) {
        st = status_invalid_field("lots", "1 to %d lots per call", POINTS_IMPORT_LOTS_MAX);
    }
    Loyalty__V1__PointsSettings *s = NULL;
    if (status_is_ok(&st)) {
        st = points_load_settings(ctx, &s);
    }
    points_local_clock_t clock;
    if (status_is_ok(&st)) {
        st = points_clock_get(ctx->db, s->time_zone, ctx->now_s, 0, &clock);
    }
    for (size_t i = 0; i < req->n_lots && status_is_ok(&st); i++) {
        st = check_import_lot(req->lots[i], clock.day, i);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    /* The batch's identity is its id and lots, whatever idempotency key carried it. */
    Loyalty__V1__PointsImportLotsRequest content = LOYALTY__V1__POINTS_IMPORT_LOTS_REQUEST__INIT;
    content.batch_id = req->batch_id;
    content.lots = req->lots;
    content.n_lots = req->n_lots;
    size_t len = 0;
    unsigned char *bytes = pb_pack_arena(ctx->arena, &content.base, &len);
    bool found = false, same = false;
    resp->batch_id = req->batch_id;
    st = points_store_get_batch(ctx->db, ctx->merchant_id, req->batch_id, bytes, len, &found, &same,
                                resp);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (found) {
        if (!same) {
            return status_make(STATUS_ALREADY_EXISTS, REASON_BATCH_REUSED,
                               "this batch id was imported with other lots");
        }
        resp->replayed = true;
        return status_ok();
    }
    for (size_t i = 0; i < req->n_lots && status_is_ok(&st); i++) {
        st = import_one(ctx, s, req->batch_id, req->lots[i], clock.day);
        resp->lots_imported++;
        resp->points_imported += req->lots[i]->points;
        resp->growth_imported += req->lots[i]->growth;
    }
    if (status_is_ok(&st)) {
        st = points_store_insert_batch(ctx->db, ctx->merchant_id, req->batch_id, bytes, len, resp,
                                       ctx->now_s);
    }
    return st;
}

/* ---- expiry and verification ---- */

static status_t rpc_expire_points(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                  ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PointsExpirePointsRequest *req = (const void *)req_msg;
    Loyalty__V1__PointsExpirePointsResponse *resp = (void *)resp_msg;
    int64_t as_of = ctx->now_s;
    if (req->_as_of_at_case == LOYALTY__V1__POINTS_EXPIRE_POINTS_REQUEST___AS_OF_AT_AS_OF_AT) {
        if (req->as_of_at < 0 || req->as_of_at > ctx->now_s) {
            return status_invalid_field("as_of_at", "must not be in the future");
        }
        as_of = req->as_of_at;
    }
    char **merchants = NULL, **members = NULL;
    int n = 0;
    status_t st = points_store_due_accounts(ctx->db, ctx->arena, ctx->merchant_id, as_of,
                                            POINTS_EXPIRE_BATCH_MAX, &merchants, &members, &n);
    for (int i = 0; i < n && status_is_ok(&st); i++) {
        points_ledger_t lg;
        st = points_ops_open(&lg, ctx, ctx->db, ctx->arena, ctx->merchant_id, members[i], as_of,
                             false);
        if (status_is_ok(&st) && lg.found) {
            st = points_ops_close(&lg);
            resp->members_settled++;
            resp->lots_expired += lg.stats.lots_expired;
            resp->points_expired += lg.stats.points_expired;
            resp->holds_expired += lg.stats.holds_expired;
            resp->lots_matured += lg.stats.lots_matured;
        }
    }
    resp->more = n == POINTS_EXPIRE_BATCH_MAX;
    return st;
}

static status_t rpc_verify_ledger(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                  ProtobufCMessage *resp_msg) {
    const Loyalty__V1__PointsVerifyLedgerRequest *req = (const void *)req_msg;
    Loyalty__V1__PointsVerifyLedgerResponse *resp = (void *)resp_msg;
    if (req->member_id[0]) {
        status_t st = points_check_member("member_id", req->member_id);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    return points_store_verify(ctx->db, ctx->arena, ctx->merchant_id, req->member_id, 100, resp);
}

static const rpc_method_t points_methods[] = {
    {"GetSettings", points_rpc_get_settings, RPC_READ},
    {"UpdateSettings", points_rpc_update_settings, RPC_MUTATE},
    {"CreateCampaign", points_rpc_create_campaign, RPC_MUTATE},
    {"ListCampaigns", points_rpc_list_campaigns, RPC_READ},
    {"EndCampaign", points_rpc_end_campaign, RPC_MUTATE},
    {"QuoteEarn", points_rpc_quote_earn, RPC_READ},
    {"Earn", rpc_earn, RPC_MUTATE},
    {"EarnBatch", rpc_earn_batch, RPC_MUTATE},
    {"CheckIn", rpc_check_in, RPC_MUTATE},
    {"GetBalance", rpc_get_balance, RPC_READ},
    {"ListLots", rpc_list_lots, RPC_READ},
    {"ListHistory", rpc_list_history, RPC_READ},
    {"ListGrowthHistory", rpc_list_growth_history, RPC_READ},
    {"QuoteRedeem", rpc_quote_redeem, RPC_READ},
    {"Hold", rpc_hold, RPC_MUTATE},
    {"CommitHold", rpc_commit_hold, RPC_MUTATE},
    {"ReleaseHold", rpc_release_hold, RPC_MUTATE},
    {"GetHold", rpc_get_hold, RPC_READ},
    {"Adjust", rpc_adjust, RPC_MUTATE},
    {"ReverseOrder", rpc_reverse_order, RPC_MUTATE},
    {"ImportLots", rpc_import_lots, RPC_MUTATE},
    {"ExpirePoints", rpc_expire_points, RPC_MUTATE},
    {"VerifyLedger", rpc_verify_ledger, RPC_READ},
    {"ListExpiringPoints", points_rpc_list_expiring, RPC_READ},
    {NULL, NULL, RPC_READ},
};

/* Batches of these run merged (docs/architecture.md "Batched saga steps"). */
static const rpc_method_merger_t points_mergers[] = {
    {"EarnBatch", merge_earn_batch},
    {NULL, NULL},
};

const rpc_service_t points_service = {&loyalty__v1__points_service__descriptor, points_methods,
                                      points_mergers};
