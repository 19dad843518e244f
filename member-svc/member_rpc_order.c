/* member_rpc_order.c -- orders and returns (statistics and the tier engine), the tier
 * maintenance RPC and the timer that runs it for every merchant. */
#include "member_cache.h"
#include "member_handlers.h"
#include "member_view.h"

#include "ids.h"
#include "log.h"
#include "validate.h"

#include <string.h>
#include <time.h>

static int64_t add_sat(int64_t a, int64_t b) {
    return b > INT64_MAX - a ? INT64_MAX : a + b;
}

static int64_t sub_floor0(int64_t a, int64_t b) {
    return b >= a ? 0 : a - b;
}

/* The first day of the month of a day number. */
static int64_t month_of(int64_t day) {
    int y, m, d;
    date_civil_from_days(day, &y, &m, &d);
    return date_days_from_civil(y, m, 1);
}

static status_t check_amount(const char *field, int64_t v) {
    if (v < 0 || v > MEMBER_AMOUNT_MAX) {
        return status_invalid_field(field, "must be 0..10^12");
    }
    return status_ok();
}

static status_t order_check(const rpc_ctx_t *ctx, const Loyalty__V1__MemberRecordOrderRequest *r,
                            int64_t *at) {
    status_t st = validate_token("member_id", r->member_id, ID_MAX);
    if (status_is_ok(&st)) {
        st = validate_token("order_id", r->order_id, MEMBER_ORDER_ID_MAX);
    }
    if (status_is_ok(&st)) {
        st = check_amount("spend_cents", r->spend_cents);
    }
    if (status_is_ok(&st)) {
        st = check_amount("growth_delta", r->growth_delta);
    }
    *at = r->at == 0 ? ctx->now_s : r->at;
    if (status_is_ok(&st) && (*at < MEMBER_AT_MIN || *at > ctx->now_s + MEMBER_CLOCK_SKEW_S)) {
        st = status_invalid_field("at", "must be after 2000-01-01 and not in the future");
    }
    return st;
}

static int64_t basis_value(const member_scope_t *s, int64_t spend_cents, int64_t growth) {
    return s->settings.basis == MEMBER_BASIS(SPEND) ? spend_cents : growth;
}

/* The answer to an order recorded before (same member and figures). */
static status_t order_replay(rpc_ctx_t *ctx, const member_scope_t *s, const member_row_t *row,
                             const member_order_t *o,
                             const Loyalty__V1__MemberRecordOrderRequest *req,
                             Loyalty__V1__MemberRecordOrderResponse *resp) {
    if (strcmp(o->member_id, req->member_id) != 0 || o->spend_cents != req->spend_cents ||
        o->growth_delta != req->growth_delta) {
        return status_make(STATUS_ALREADY_EXISTS, REASON_ORDER_ALREADY_RECORDED,
                           "order already recorded with other figures");
    }
    resp->old_tier = member_view_ref(ctx->arena, &s->tiers, o->old_tier_id);
    resp->new_tier = member_view_ref(ctx->arena, &s->tiers, o->new_tier_id);
    resp->reason = o->reason;
    resp->already_recorded = true;
    resp->status = member_view_status(ctx->arena, &s->tiers, s->settings.basis, row);
    resp->stats = member_view_stats(ctx->arena, &s->settings, row);
    return status_ok();
}

/* Statistics of a new order (not fully returned). */
static status_t order_stats(rpc_ctx_t *ctx, member_row_t *row, const member_order_t *o) {
    row->order_count++;
    row->total_spend_cents = add_sat(row->total_spend_cents, o->spend_cents);
    row->total_growth = add_sat(row->total_growth, o->growth_delta);
    if (row->first_order_at == 0 || o->ordered_at < row->first_order_at) {
        row->first_order_at = o->ordered_at;
    }
    if (o->ordered_at > row->last_order_at) {
        row->last_order_at = o->ordered_at;
    }
    int months = 0;
    status_t st = member_month_add(ctx->db, ctx->merchant_id, row->id, o->local_month, 1, &months);
    row->months_with_purchases += months;
    return st;
}

status_t member_rpc_record_order(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                 ProtobufCMessage *resp_msg) {
    const Loyalty__V1__MemberRecordOrderRequest *req = (const void *)req_msg;
    Loyalty__V1__MemberRecordOrderResponse *resp = (void *)resp_msg;
    int64_t at = 0;
    status_t st = order_check(ctx, req, &at);
    /* Settings, tiers, the member (its lock serializes its orders) and a replay check: one
     * round trip. */
    member_order_reads_t *in = arena_alloc(ctx->arena, sizeof *in);
    if (status_is_ok(&st)) {
        st = member_order_reads(ctx->db, ctx->arena, ctx->merchant_id, req->member_id,
                                req->order_id, ctx->now_s, at, in);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    member_scope_t s;
    member_scope_init(ctx, ctx->arena, ctx->merchant_id, ctx->now_s, &s);
    s.settings = in->settings;
    s.tiers = in->tiers;
    s.today = in->today;
    int64_t at_day = in->at_day;
    member_row_t row = in->row;
    if (in->order_found) {
        return order_replay(ctx, &s, &row, &in->order, req, resp);
    }
    member_row_t old = row;
    if (req->_points_balance_case ==
        LOYALTY__V1__MEMBER_RECORD_ORDER_REQUEST___POINTS_BALANCE_POINTS_BALANCE) {
        /* for the points_balance tag rules */
        (void)member_row_learn_points(&row, req->points_balance, req->points_balance_version);
    }
    member_tier_state_t t = member_row_tier(&s, &row);
    member_tier_event_t ev;
    bool changed = member_tier_on_order(&s.tiers.ladder, &t,
                                        basis_value(&s, req->spend_cents, req->growth_delta),
                                        req->spend_cents, s.today, &ev);
    member_row_set_tier(&s, &row, &t);
    member_order_t o = {
        .order_id = req->order_id,
        .member_id = req->member_id,
        .spend_cents = req->spend_cents,
        .growth_delta = req->growth_delta,
        .period_seq = t.period_seq,
        .ordered_at = at,
        .local_month = month_of(at_day),
        .old_tier_id = old.effective_tier_id,
        .reason = changed ? ev.reason : MEMBER_REASON(UNSPECIFIED),
    };
    st = order_stats(ctx, &row, &o);
    member_change_t ch = {.events = &ev, .event_count = changed ? 1 : 0, .order_id = req->order_id};
    if (status_is_ok(&st)) {
        st = member_ops_save(ctx->db, ctx->arena, &s, &old, &row, &ch);
    }
    if (status_is_ok(&st)) {
        o.new_tier_id = row.effective_tier_id;
        st = member_order_insert(ctx->db, ctx->merchant_id, &o);
    }
    if (status_is_ok(&st)) {
        st = member_scope_finish(ctx->db, &s);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    member_rpc_invalidate_touched(ctx, &s);
    resp->old_tier = member_view_ref(ctx->arena, &s.tiers, o.old_tier_id);
    resp->new_tier = member_view_ref(ctx->arena, &s.tiers, o.new_tier_id);
    resp->reason = o.reason;
    resp->status = member_view_status(ctx->arena, &s.tiers, s.settings.basis, &row);
    resp->stats = member_view_stats(ctx->arena, &s.settings, &row);
    return status_ok();
}

/* Statistics after a return; a fully returned order stops counting as an order. */
static status_t return_stats(rpc_ctx_t *ctx, member_row_t *row, const member_order_t *o,
                             int64_t spend, int64_t growth, bool now_fully) {
    row->total_spend_cents = sub_floor0(row->total_spend_cents, spend);
    row->total_growth = sub_floor0(row->total_growth, growth);
    if (!now_fully) {
        return status_ok();
    }
    row->order_count = sub_floor0(row->order_count, 1);
    int months = 0;
    status_t st = member_month_add(ctx->db, ctx->merchant_id, row->id, o->local_month, -1, &months);
    if (status_is_ok(&st)) {
        row->months_with_purchases += months;
        if (row->months_with_purchases < 0) {
            row->months_with_purchases = 0;
        }
        st = member_order_first_last(ctx->db, ctx->merchant_id, row->id, &row->first_order_at,
                                     &row->last_order_at);
    }
    return st;
}

static status_t return_check(const Loyalty__V1__MemberRecordReturnRequest *req) {
    status_t st = validate_token("order_id", req->order_id, MEMBER_ORDER_ID_MAX);
    if (status_is_ok(&st)) {
        st = check_amount("spend_cents", req->spend_cents);
    }
    if (status_is_ok(&st)) {
        st = check_amount("growth_delta", req->growth_delta);
    }
    if (status_is_ok(&st) && req->spend_cents == 0 && req->growth_delta == 0) {
        st = status_invalid_field("spend_cents", "a return takes back spend or growth");
    }
    return st;
}

/* Locks the returned order's member, then the order, and applies the return to the order. */
static status_t return_lock(rpc_ctx_t *ctx, const Loyalty__V1__MemberRecordReturnRequest *req,
                            member_row_t *row, member_order_t *o, bool *now_fully) {
    member_order_t first;
    status_t st =
        member_order_get(ctx->db, ctx->arena, ctx->merchant_id, req->order_id, false, &first);
    if (status_is_ok(&st)) { /* member first, as RecordOrder does: no lock-order cycle */
        st = member_row_get(ctx->db, ctx->arena, ctx->merchant_id, first.member_id, true, row);
    }
    if (status_is_ok(&st)) {
        st = member_order_get(ctx->db, ctx->arena, ctx->merchant_id, req->order_id, true, o);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    if (req->spend_cents > o->spend_cents - o->returned_spend_cents ||
        req->growth_delta > o->growth_delta - o->returned_growth) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_RETURN_EXCEEDS_ORDER,
                           "the order holds %lld cents and %lld growth; cannot return more",
                           (long long)(o->spend_cents - o->returned_spend_cents),
                           (long long)(o->growth_delta - o->returned_growth));
    }
    bool was_fully = o->fully_returned;
    o->returned_spend_cents += req->spend_cents;
    o->returned_growth += req->growth_delta;
    o->fully_returned =
        o->returned_spend_cents == o->spend_cents && o->returned_growth == o->growth_delta;
    *now_fully = o->fully_returned && !was_fully;
    return member_order_set_returned(ctx->db, ctx->merchant_id, o);
}

status_t member_rpc_record_return(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                  ProtobufCMessage *resp_msg) {
    const Loyalty__V1__MemberRecordReturnRequest *req = (const void *)req_msg;
    Loyalty__V1__MemberRecordReturnResponse *resp = (void *)resp_msg;
    status_t st = return_check(req);
    member_scope_t s;
    if (status_is_ok(&st)) {
        st = member_scope_load(ctx, ctx->db, ctx->arena, ctx->merchant_id, ctx->now_s, 0, &s, NULL);
    }
    member_row_t row;
    member_order_t o;
    bool now_fully = false;
    if (status_is_ok(&st)) {
        st = return_lock(ctx, req, &row, &o, &now_fully);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    member_row_t old = row;
    if (req->_points_balance_case ==
        LOYALTY__V1__MEMBER_RECORD_RETURN_REQUEST___POINTS_BALANCE_POINTS_BALANCE) {
        (void)member_row_learn_points(&row, req->points_balance, req->points_balance_version);
    }
    st = return_stats(ctx, &row, &o, req->spend_cents, req->growth_delta, now_fully);
    member_tier_state_t t = member_row_tier(&s, &row);
    int64_t express_spend = 0;
    if (status_is_ok(&st) && t.express_level > 0) {
        st =
            member_order_max_spend(ctx->db, ctx->merchant_id, row.id, t.period_seq, &express_spend);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    member_tier_event_t ev;
    bool changed = member_tier_on_return(&s.tiers.ladder, &t,
                                         basis_value(&s, req->spend_cents, req->growth_delta),
                                         express_spend, s.today, &ev);
    member_row_set_tier(&s, &row, &t);
    member_change_t ch = {.events = &ev, .event_count = changed ? 1 : 0, .order_id = req->order_id};
    st = member_ops_save(ctx->db, ctx->arena, &s, &old, &row, &ch);
    if (status_is_ok(&st)) {
        st = member_scope_finish(ctx->db, &s);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    member_rpc_invalidate_touched(ctx, &s);
    resp->member_id = row.id;
    resp->old_tier = member_view_ref(ctx->arena, &s.tiers, old.effective_tier_id);
    resp->new_tier = member_view_ref(ctx->arena, &s.tiers, row.effective_tier_id);
    resp->reason = changed ? ev.reason : MEMBER_REASON(UNSPECIFIED);
    resp->remaining_spend_cents = o.spend_cents - o.returned_spend_cents;
    resp->remaining_growth = o.growth_delta - o.returned_growth;
    resp->status = member_view_status(ctx->arena, &s.tiers, s.settings.basis, &row);
    resp->stats = member_view_stats(ctx->arena, &s.settings, &row);
    return status_ok();
}

/* ---- maintenance ---- */

status_t member_rpc_run_maintenance(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                    ProtobufCMessage *resp_msg) {
    const Loyalty__V1__MemberRunTierMaintenanceRequest *req = (const void *)req_msg;
    Loyalty__V1__MemberRunTierMaintenanceResponse *resp = (void *)resp_msg;
    int64_t as_of = req->as_of_at == 0 ? ctx->now_s : req->as_of_at;
    int32_t limit = req->limit == 0 ? MEMBER_MAINTENANCE_LIMIT_DEFAULT : req->limit;
    if (as_of < MEMBER_AT_MIN) {
        return status_invalid_field("as_of_at", "must be after 2000-01-01");
    }
    if (limit < 1 || limit > MEMBER_MAINTENANCE_LIMIT_MAX) {
        return status_invalid_field("limit", "must be 1..%d", MEMBER_MAINTENANCE_LIMIT_MAX);
    }
    member_scope_t s;
    status_t st = member_scope_load(ctx, ctx->db, ctx->arena, ctx->merchant_id, as_of, 0, &s, NULL);
    member_row_t *rows = NULL;
    char **merchants = NULL;
    int n = 0;
    if (status_is_ok(&st)) { /* one more than the limit tells whether more are due */
        st = member_due_lock(ctx->db, ctx->arena, ctx->merchant_id, as_of, limit + 1, &rows,
                             &merchants, &n);
    }
    member_maintenance_counts_t counts = {0};
    for (int i = 0; i < n && i < limit && status_is_ok(&st); i++) {
        st = member_maintain_row(ctx->db, ctx->arena, &s, &rows[i], &counts);
    }
    if (status_is_ok(&st)) {
        st = member_scope_finish(ctx->db, &s);
    }
    if (status_is_ok(&st)) {
        st = member_rfm_refresh(ctx->db, ctx->merchant_id);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    member_rpc_invalidate_touched(ctx, &s);
    resp->processed = counts.processed;
    resp->renewed = counts.renewed;
    resp->downgraded = counts.downgraded;
    resp->cards_expired = counts.cards_expired;
    resp->segments_changed = counts.segments_changed;
    resp->has_more = n > limit;
    return status_ok();
}

/* ---- the timer ---- */

#define JOB_BATCH 200
#define JOB_BATCHES_MAX 50
#define JOB_SCOPES_MAX JOB_BATCH
#define JOB_RESEGMENT_BATCH 1000
#define JOB_RFM_MERCHANTS_MAX 10
#define JOB_RFM_EVERY_S 3600

/* One transaction of the timer: the due members of any merchants. */
typedef struct job_batch {
    rpc_ctx_t *ctx;
    arena_t *arena;
    int64_t now;
    int processed;
    /* One scope per merchant met in the batch. */
    member_scope_t *scopes;
    int scope_count;
} job_batch_t;

static status_t job_scope(db_t *db, job_batch_t *b, const char *merchant_id, member_scope_t **out) {
    for (int i = 0; i < b->scope_count; i++) {
        if (strcmp(b->scopes[i].merchant_id, merchant_id) == 0) {
            *out = &b->scopes[i];
            return status_ok();
        }
    }
    member_scope_t *s = &b->scopes[b->scope_count++];
    *out = s;
    return member_scope_load(b->ctx, db, b->arena, merchant_id, b->now, 0, s, NULL);
}

static status_t job_batch_tx(db_t *db, void *arg) {
    job_batch_t *b = arg;
    b->processed = 0;
    b->scope_count = 0; /* a retried attempt starts again */
    member_row_t *rows = NULL;
    char **merchants = NULL;
    int n = 0;
    status_t st = member_due_lock(db, b->arena, NULL, b->now, JOB_BATCH, &rows, &merchants, &n);
    member_maintenance_counts_t counts = {0};
    for (int i = 0; i < n && status_is_ok(&st); i++) {
        member_scope_t *s = NULL;
        st = job_scope(db, b, merchants[i], &s);
        if (status_is_ok(&st)) {
            st = member_maintain_row(db, b->arena, s, &rows[i], &counts);
        }
    }
    for (int i = 0; i < b->scope_count && status_is_ok(&st); i++) {
        st = member_scope_finish(db, &b->scopes[i]);
    }
    b->processed = n;
    return st;
}

/* Drops the cached tier status of the members a committed batch changed. */
static void job_invalidate(rpc_ctx_t *ctx, arena_t *a, const member_scope_t *scopes, int n) {
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < scopes[i].touched_count; k++) {
            cache_del(ctx->cache,
                      member_cache_tier_status_key(a, scopes[i].merchant_id, scopes[i].touched[k]));
        }
    }
}

static status_t job_due_members(rpc_ctx_t *ctx, int *total) {
    status_t st = status_ok();
    *total = 0;
    for (int batch = 0; batch < JOB_BATCHES_MAX && status_is_ok(&st); batch++) {
        arena_t a; /* per batch: the job's own arena would grow for the whole run */
        arena_init(&a);
        job_batch_t b = {.ctx = ctx, .arena = &a, .now = (int64_t)time(NULL)};
        b.scopes = arena_alloc(&a, JOB_SCOPES_MAX * sizeof *b.scopes);
        st = db_tx(ctx->db, job_batch_tx, &b);
        if (status_is_ok(&st)) {
            job_invalidate(ctx, &a, b.scopes, b.scope_count);
            *total += b.processed;
        }
        int processed = b.processed;
        arena_free(&a);
        if (processed < JOB_BATCH) {
            break;
        }
    }
    return st;
}

/* A re-evaluation of segments after a threshold change: the next members of one merchant. */
typedef struct job_reseg {
    rpc_ctx_t *ctx;
    arena_t *arena;
    int64_t now;
    member_scope_t scope;
    bool found;
} job_reseg_t;

static status_t job_reseg_tx(db_t *db, void *arg) {
    job_reseg_t *j = arg;
    j->found = false;
    char *merchant = NULL, *after = NULL;
    status_t st = member_reseg_claim(db, j->arena, &merchant, &after);
    if (!status_is_ok(&st) || merchant == NULL) {
        return st;
    }
    j->found = true;
    st = member_scope_load(j->ctx, db, j->arena, merchant, j->now, 0, &j->scope, NULL);
    member_row_t *rows = NULL;
    int n = 0;
    if (status_is_ok(&st)) {
        st = member_reseg_rows(db, j->arena, merchant, after, JOB_RESEGMENT_BATCH, &rows, &n);
    }
    for (int i = 0; i < n && status_is_ok(&st); i++) {
        member_row_t old = rows[i];
        member_change_t ch = {0};
        st = member_ops_save(db, j->arena, &j->scope, &old, &rows[i], &ch);
    }
    if (status_is_ok(&st)) {
        st = member_scope_finish(db, &j->scope);
    }
    if (status_is_ok(&st)) {
        st = member_reseg_advance(db, merchant, n == JOB_RESEGMENT_BATCH ? rows[n - 1].id : NULL);
    }
    return st;
}

static status_t job_resegment(rpc_ctx_t *ctx) {
    status_t st = status_ok();
    for (int batch = 0; batch < JOB_BATCHES_MAX && status_is_ok(&st); batch++) {
        arena_t a;
        arena_init(&a);
        job_reseg_t j = {.ctx = ctx, .arena = &a, .now = (int64_t)time(NULL)};
        st = db_tx(ctx->db, job_reseg_tx, &j);
        if (status_is_ok(&st) && j.found) {
            job_invalidate(ctx, &a, &j.scope, 1);
        }
        bool found = j.found;
        arena_free(&a);
        if (!found) {
            break;
        }
    }
    return st;
}

static status_t job_rfm_tx(db_t *db, void *arg) {
    bool *found = arg;
    arena_t a;
    arena_init(&a);
    char *merchant = NULL;
    status_t st = member_rfm_claim(db, &a, JOB_RFM_EVERY_S, &merchant);
    *found = status_is_ok(&st) && merchant != NULL;
    if (*found) {
        st = member_rfm_refresh(db, merchant);
    }
    arena_free(&a);
    return st;
}

status_t member_job_maintenance(rpc_ctx_t *ctx) {
    int processed = 0;
    status_t st = job_due_members(ctx, &processed);
    if (processed > 0) {
        log_msg(LOG_INFO, "tier maintenance: %d members", processed);
    }
    if (status_is_ok(&st)) {
        st = job_resegment(ctx);
    }
    bool found = true;
    for (int i = 0; i < JOB_RFM_MERCHANTS_MAX && found && status_is_ok(&st); i++) {
        st = db_tx(ctx->db, job_rfm_tx, &found);
    }
    return st;
}
