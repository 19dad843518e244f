/* wallet_rpc.c -- WalletService handlers: validate the request, run the operation, fill the
 * response. Every mutation is RPC_MUTATE (one transaction with its idempotency key). */
#include "wallet_rpc.h"

#include "cursor.h"
#include "fieldmask.h"
#include "ids.h"
#include "jsonw.h"
#include "loyalty/v1/wallet.pb-c.h"
#include "outbox.h"
#include "validate.h"
#include "wallet_ops.h"
#include "wallet_rules.h"
#include "wallet_store.h"

#include <string.h>

#define RETURN_IF_ERROR(expr)                                                                      \
    do {                                                                                           \
        status_t st_ = (expr);                                                                     \
        if (!status_is_ok(&st_)) {                                                                 \
            return st_;                                                                            \
        }                                                                                          \
    } while (0)

static status_t check_reference(const char *field, const char *value) {
    return validate_token(field, value, WALLET_REFERENCE_MAX);
}

static status_t check_id(const char *field, const char *value) {
    return validate_token(field, value, ID_MAX);
}

/* ---- settings ---- */

static Loyalty__V1__WalletSettings *settings_message(arena_t *a, const char *merchant_id,
                                                     const wallet_settings_t *s) {
    Loyalty__V1__WalletSettings *m = arena_alloc(a, sizeof *m);
    loyalty__v1__wallet_settings__init(m);
    m->merchant_id = (char *)merchant_id;
    m->deposit_expiry_months = s->deposit_expiry_months;
    m->time_zone = s->time_zone;
    m->refund_grace_days = s->refund_grace_days;
    m->updated_at = s->updated_at;
    return m;
}

static status_t rpc_get_settings(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                 ProtobufCMessage *resp_msg) {
    (void)req_msg;
    Loyalty__V1__WalletGetSettingsResponse *resp = (void *)resp_msg;
    wallet_settings_t s;
    RETURN_IF_ERROR(
        wallet_store_settings_get(ctx->db, ctx->arena, ctx->merchant_id, ctx->now_s, &s));
    resp->settings = settings_message(ctx->arena, ctx->merchant_id, &s);
    return status_ok();
}

static const char *const settings_updatable[] = {"deposit_expiry_months", "time_zone",
                                                 "refund_grace_days", NULL};

static status_t rpc_update_settings(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                    ProtobufCMessage *resp_msg) {
    const Loyalty__V1__WalletUpdateSettingsRequest *req = (const void *)req_msg;
    Loyalty__V1__WalletUpdateSettingsResponse *resp = (void *)resp_msg;
    fieldmask_t mask;
    RETURN_IF_ERROR(fieldmask_parse(req->update_mask, &loyalty__v1__wallet_settings__descriptor,
                                    settings_updatable, &mask));
    if (req->settings == NULL) {
        return status_invalid_field("settings", "required");
    }
    const Loyalty__V1__WalletSettings *in = req->settings;
    wallet_settings_t s;
    RETURN_IF_ERROR(db_lock_named(ctx->db, "wallet.settings", ctx->merchant_id));
    RETURN_IF_ERROR(
        wallet_store_settings_get(ctx->db, ctx->arena, ctx->merchant_id, ctx->now_s, &s));
    if (fieldmask_has(&mask, "deposit_expiry_months")) {
        if (in->deposit_expiry_months < 0 || in->deposit_expiry_months > WALLET_EXPIRY_MONTHS_MAX) {
            return status_invalid_field("settings.deposit_expiry_months", "must be 0..%d",
                                        WALLET_EXPIRY_MONTHS_MAX);
        }
        s.deposit_expiry_months = in->deposit_expiry_months;
    }
    if (fieldmask_has(&mask, "time_zone")) {
        if (strlen(in->time_zone) == 0 || strlen(in->time_zone) > WALLET_TIME_ZONE_MAX) {
            return status_invalid_field("settings.time_zone", "1..%d characters",
                                        WALLET_TIME_ZONE_MAX);
        }
        RETURN_IF_ERROR(wallet_store_check_time_zone(ctx->db, in->time_zone));
        s.time_zone = in->time_zone;
    }
    if (fieldmask_has(&mask, "refund_grace_days")) {
        if (in->refund_grace_days < 0 || in->refund_grace_days > WALLET_GRACE_DAYS_MAX) {
            return status_invalid_field("settings.refund_grace_days", "must be 0..%d",
                                        WALLET_GRACE_DAYS_MAX);
        }
        s.refund_grace_days = in->refund_grace_days;
    }
    RETURN_IF_ERROR(wallet_store_settings_put(ctx->db, ctx->merchant_id, &s));
    RETURN_IF_ERROR(
        wallet_store_settings_get(ctx->db, ctx->arena, ctx->merchant_id, ctx->now_s, &s));
    resp->settings = settings_message(ctx->arena, ctx->merchant_id, &s);
    return status_ok();
}

/* ---- plans ---- */

static status_t rpc_create_plan(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                ProtobufCMessage *resp_msg) {
    const Loyalty__V1__WalletCreateTopUpPlanRequest *req = (const void *)req_msg;
    Loyalty__V1__WalletCreateTopUpPlanResponse *resp = (void *)resp_msg;
    bool has_expiry = req->_expiry_months_case ==
                      LOYALTY__V1__WALLET_CREATE_TOP_UP_PLAN_REQUEST___EXPIRY_MONTHS_EXPIRY_MONTHS;
    int64_t from = req->active_from_at ? req->active_from_at : ctx->now_s;
    RETURN_IF_ERROR(wallet_check_plan(req->name, req->pay_cents, req->bonus_cents, has_expiry,
                                      req->expiry_months, from, req->active_until_at));
    Loyalty__V1__WalletTopUpPlan plan = LOYALTY__V1__WALLET_TOP_UP_PLAN__INIT;
    char id[ID_MAX];
    id_generate("plan", id);
    plan.id = id;
    plan.name = req->name;
    plan.pay_cents = req->pay_cents;
    plan.bonus_cents = req->bonus_cents;
    if (has_expiry) {
        plan._expiry_months_case = LOYALTY__V1__WALLET_TOP_UP_PLAN___EXPIRY_MONTHS_EXPIRY_MONTHS;
        plan.expiry_months = req->expiry_months;
    }
    plan.active_from_at = from;
    plan.active_until_at = req->active_until_at;
    return wallet_store_plan_insert(ctx->db, ctx->arena, ctx->merchant_id, &plan, &resp->plan);
}

/* Amounts and expiry are fixed: a changed offer is another plan. */
static const char *const plan_updatable[] = {"name", "enabled", "active_from_at", "active_until_at",
                                             NULL};

static status_t rpc_update_plan(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                ProtobufCMessage *resp_msg) {
    const Loyalty__V1__WalletUpdateTopUpPlanRequest *req = (const void *)req_msg;
    Loyalty__V1__WalletUpdateTopUpPlanResponse *resp = (void *)resp_msg;
    RETURN_IF_ERROR(check_id("plan_id", req->plan_id));
    fieldmask_t mask;
    RETURN_IF_ERROR(fieldmask_parse(req->update_mask, &loyalty__v1__wallet_top_up_plan__descriptor,
                                    plan_updatable, &mask));
    if (req->plan == NULL) {
        return status_invalid_field("plan", "required");
    }
    Loyalty__V1__WalletTopUpPlan *plan = NULL;
    RETURN_IF_ERROR(
        wallet_store_plan_get(ctx->db, ctx->arena, ctx->merchant_id, req->plan_id, true, &plan));
    fieldmask_apply(&mask, &plan->base, &req->plan->base);
    RETURN_IF_ERROR(wallet_check_plan(plan->name, plan->pay_cents, plan->bonus_cents, false, 0,
                                      plan->active_from_at, plan->active_until_at));
    return wallet_store_plan_update(ctx->db, ctx->arena, ctx->merchant_id, plan, &resp->plan);
}

static status_t rpc_get_plan(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                             ProtobufCMessage *resp_msg) {
    const Loyalty__V1__WalletGetTopUpPlanRequest *req = (const void *)req_msg;
    Loyalty__V1__WalletGetTopUpPlanResponse *resp = (void *)resp_msg;
    RETURN_IF_ERROR(check_id("plan_id", req->plan_id));
    return wallet_store_plan_get(ctx->db, ctx->arena, ctx->merchant_id, req->plan_id, false,
                                 &resp->plan);
}

/* Page size and the cursor's key and id; page may be NULL. */
static status_t page_args(rpc_ctx_t *ctx, const Loyalty__V1__PageRequest *page, int32_t *size,
                          char **key, char **id) {
    RETURN_IF_ERROR(
        cursor_page_size("page.page_size", page ? page->page_size : 0, WALLET_PAGE_MAX, size));
    return cursor_decode(ctx->arena, "page.cursor", page ? page->cursor : "", key, id);
}

static Loyalty__V1__PageInfo *page_info(rpc_ctx_t *ctx, size_t n, int32_t size, const char *key,
                                        const char *id) {
    Loyalty__V1__PageInfo *info = arena_alloc(ctx->arena, sizeof *info);
    loyalty__v1__page_info__init(info);
    info->next_cursor = n == (size_t)size ? cursor_encode(ctx->arena, key, id) : "";
    return info;
}

static status_t rpc_list_plans(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                               ProtobufCMessage *resp_msg) {
    const Loyalty__V1__WalletListTopUpPlansRequest *req = (const void *)req_msg;
    Loyalty__V1__WalletListTopUpPlansResponse *resp = (void *)resp_msg;
    int32_t size = 0;
    char *key = NULL;
    char *after = NULL;
    RETURN_IF_ERROR(page_args(ctx, req->page, &size, &key, &after));
    RETURN_IF_ERROR(wallet_store_plan_list(ctx->db, ctx->arena, ctx->merchant_id, after, size,
                                           req->active_only, ctx->now_s, &resp->plans,
                                           &resp->n_plans));
    const char *last = resp->n_plans ? resp->plans[resp->n_plans - 1]->id : "";
    resp->page_info = page_info(ctx, resp->n_plans, size, "", last);
    return status_ok();
}

/* ---- top-ups ---- */

static status_t rpc_top_up(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                           ProtobufCMessage *resp_msg) {
    const Loyalty__V1__WalletTopUpRequest *req = (const void *)req_msg;
    RETURN_IF_ERROR(wallet_check_member_id(req->member_id));
    RETURN_IF_ERROR(wallet_check_amount("paid_cents", req->paid_cents));
    RETURN_IF_ERROR(check_reference("payment_ref", req->payment_ref));
    if (req->plan_id[0]) {
        RETURN_IF_ERROR(check_id("plan_id", req->plan_id));
    }
    wallet_env_t e = wallet_env_from(ctx);
    Loyalty__V1__WalletTopUpResponse *resp = (void *)resp_msg;
    RETURN_IF_ERROR(wallet_op_top_up(&e, req, resp));
    /* wallet.topped_up for integrations, in the top-up's own transaction. */
    const Loyalty__V1__WalletTopUp *t = resp->top_up;
    char payload[1024];
    jsonw_t w;
    jsonw_begin(&w, payload, sizeof payload);
    jsonw_str(&w, "member_id", t->member_id);
    jsonw_str(&w, "top_up_id", t->id);
    jsonw_str(&w, "payment_ref", t->payment_ref);
    jsonw_str(&w, "plan_id", t->plan_id);
    jsonw_int(&w, "paid_cents", t->paid_cents);
    jsonw_int(&w, "bonus_cents", t->bonus_cents);
    jsonw_int(&w, "expires_at", t->expires_at);
    jsonw_end(&w);
    return outbox_emit(ctx, ctx->merchant_id, OUTBOX_EVENTS_STREAM, "wallet.topped_up",
                       t->member_id, payload, NULL);
}

static status_t rpc_get_top_up(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                               ProtobufCMessage *resp_msg) {
    const Loyalty__V1__WalletGetTopUpRequest *req = (const void *)req_msg;
    Loyalty__V1__WalletGetTopUpResponse *resp = (void *)resp_msg;
    RETURN_IF_ERROR(check_reference("payment_ref", req->payment_ref));
    wallet_env_t e = wallet_env_from(ctx);
    return wallet_op_get_top_up(&e, req->payment_ref, &resp->top_up);
}

static status_t rpc_refund_top_up(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                  ProtobufCMessage *resp_msg) {
    const Loyalty__V1__WalletRefundTopUpRequest *req = (const void *)req_msg;
    RETURN_IF_ERROR(check_reference("payment_ref", req->payment_ref));
    RETURN_IF_ERROR(wallet_check_amount("amount_cents", req->amount_cents));
    wallet_env_t e = wallet_env_from(ctx);
    return wallet_op_refund_top_up(&e, req, (void *)resp_msg);
}

/* ---- balances, lots, statements ---- */

static status_t rpc_get_balance(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                ProtobufCMessage *resp_msg) {
    const Loyalty__V1__WalletGetBalanceRequest *req = (const void *)req_msg;
    Loyalty__V1__WalletGetBalanceResponse *resp = (void *)resp_msg;
    RETURN_IF_ERROR(wallet_check_member_id(req->member_id));
    wallet_env_t e = wallet_env_from(ctx);
    return wallet_op_get_balance(&e, req->member_id, &resp->balance);
}

static status_t rpc_list_lots(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                              ProtobufCMessage *resp_msg) {
    const Loyalty__V1__WalletListLotsRequest *req = (const void *)req_msg;
    Loyalty__V1__WalletListLotsResponse *resp = (void *)resp_msg;
    RETURN_IF_ERROR(wallet_check_member_id(req->member_id));
    int32_t size = 0;
    char *key = NULL;
    char *id = NULL;
    RETURN_IF_ERROR(page_args(ctx, req->page, &size, &key, &id));
    char *last = NULL;
    RETURN_IF_ERROR(wallet_store_lot_list(ctx->db, ctx->arena, ctx->merchant_id, req->member_id,
                                          req->include_closed, key, size, &resp->lots,
                                          &resp->n_lots, &last));
    resp->page_info = page_info(ctx, resp->n_lots, size, last ? last : "", "lot");
    return status_ok();
}

static status_t rpc_list_statement(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                   ProtobufCMessage *resp_msg) {
    const Loyalty__V1__WalletListStatementRequest *req = (const void *)req_msg;
    Loyalty__V1__WalletListStatementResponse *resp = (void *)resp_msg;
    RETURN_IF_ERROR(wallet_check_member_id(req->member_id));
    int32_t size = 0;
    char *key = NULL;
    char *before = NULL;
    RETURN_IF_ERROR(page_args(ctx, req->page, &size, &key, &before));
    RETURN_IF_ERROR(wallet_store_statement(ctx->db, ctx->arena, ctx->merchant_id, req->member_id,
                                           before, size, &resp->entries, &resp->n_entries));
    const char *last = resp->n_entries ? resp->entries[resp->n_entries - 1]->transfer_id : "";
    resp->page_info = page_info(ctx, resp->n_entries, size, "", last);
    return status_ok();
}

/* ---- holds ---- */

static status_t rpc_hold(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                         ProtobufCMessage *resp_msg) {
    const Loyalty__V1__WalletHoldRequest *req = (const void *)req_msg;
    RETURN_IF_ERROR(wallet_check_member_id(req->member_id));
    RETURN_IF_ERROR(wallet_check_amount("amount_cents", req->amount_cents));
    RETURN_IF_ERROR(check_reference("reference", req->reference));
    int64_t ttl_s = 0;
    RETURN_IF_ERROR(wallet_hold_ttl(req->ttl_s, &ttl_s));
    wallet_env_t e = wallet_env_from(ctx);
    return wallet_op_hold(&e, req, ttl_s, (void *)resp_msg);
}

static status_t rpc_get_hold(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                             ProtobufCMessage *resp_msg) {
    const Loyalty__V1__WalletGetHoldRequest *req = (const void *)req_msg;
    Loyalty__V1__WalletGetHoldResponse *resp = (void *)resp_msg;
    RETURN_IF_ERROR(check_id("hold_id", req->hold_id));
    wallet_env_t e = wallet_env_from(ctx);
    return wallet_op_get_hold(&e, req->hold_id, &resp->hold);
}

static status_t rpc_capture_hold(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                 ProtobufCMessage *resp_msg) {
    const Loyalty__V1__WalletCaptureHoldRequest *req = (const void *)req_msg;
    RETURN_IF_ERROR(check_id("hold_id", req->hold_id));
    RETURN_IF_ERROR(wallet_check_amount("amount_cents", req->amount_cents));
    wallet_env_t e = wallet_env_from(ctx);
    return wallet_op_capture(&e, req, (void *)resp_msg);
}

static status_t rpc_void_hold(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                              ProtobufCMessage *resp_msg) {
    const Loyalty__V1__WalletVoidHoldRequest *req = (const void *)req_msg;
    if (req->hold_id[0] == '\0' && (req->member_id[0] || req->reference[0])) {
        /* By member and reference: the id is looked up in the call's transaction. */
        RETURN_IF_ERROR(wallet_check_member_id(req->member_id));
        RETURN_IF_ERROR(check_reference("reference", req->reference));
        Loyalty__V1__WalletVoidHoldRequest by_id = *req;
        RETURN_IF_ERROR(wallet_store_pending_hold_id(
            ctx->db, ctx->arena, ctx->merchant_id, req->member_id, req->reference, &by_id.hold_id));
        wallet_env_t e = wallet_env_from(ctx);
        return wallet_op_void(&e, &by_id, (void *)resp_msg);
    }
    RETURN_IF_ERROR(check_id("hold_id", req->hold_id));
    wallet_env_t e = wallet_env_from(ctx);
    return wallet_op_void(&e, req, (void *)resp_msg);
}

static status_t rpc_refund(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                           ProtobufCMessage *resp_msg) {
    const Loyalty__V1__WalletRefundRequest *req = (const void *)req_msg;
    RETURN_IF_ERROR(check_reference("reference", req->reference));
    RETURN_IF_ERROR(wallet_check_amount("amount_cents", req->amount_cents));
    wallet_env_t e = wallet_env_from(ctx);
    return wallet_op_refund(&e, req, (void *)resp_msg);
}

/* ---- expiry, reports, verification ---- */

static status_t rpc_expire_deposits(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                    ProtobufCMessage *resp_msg) {
    const Loyalty__V1__WalletExpireDepositsRequest *req = (const void *)req_msg;
    int64_t now = ctx->now_s;
    if (req->_now_at_case == LOYALTY__V1__WALLET_EXPIRE_DEPOSITS_REQUEST___NOW_AT_NOW_AT) {
        if (req->now_at <= 0) {
            return status_invalid_field("now_at", "must be a positive unix time");
        }
        now = req->now_at;
    }
    wallet_env_t e = wallet_env_from(ctx);
    return wallet_op_expire_deposits(&e, now, (void *)resp_msg);
}

static status_t rpc_get_report(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                               ProtobufCMessage *resp_msg) {
    const Loyalty__V1__WalletGetReportRequest *req = (const void *)req_msg;
    Loyalty__V1__WalletGetReportResponse *resp = (void *)resp_msg;
    int64_t from_at = 0;
    int64_t to_at = 0;
    if (req->from_date[0] || req->to_date[0]) {
        int y, m, d;
        RETURN_IF_ERROR(validate_date("from_date", req->from_date, &y, &m, &d));
        RETURN_IF_ERROR(validate_date("to_date", req->to_date, &y, &m, &d));
        if (strcmp(req->from_date, req->to_date) >= 0) {
            return status_invalid_field("to_date", "must be after from_date");
        }
        wallet_settings_t s;
        RETURN_IF_ERROR(
            wallet_store_settings_get(ctx->db, ctx->arena, ctx->merchant_id, ctx->now_s, &s));
        RETURN_IF_ERROR(wallet_store_date_start(ctx->db, s.time_zone, req->from_date, &from_at));
        RETURN_IF_ERROR(wallet_store_date_start(ctx->db, s.time_zone, req->to_date, &to_at));
    }
    resp->report = arena_alloc(ctx->arena, sizeof *resp->report);
    loyalty__v1__wallet_report__init(resp->report);
    return wallet_store_report(ctx->db, ctx->merchant_id, from_at, to_at, resp->report);
}

static status_t rpc_verify_ledger(rpc_ctx_t *ctx, const ProtobufCMessage *req_msg,
                                  ProtobufCMessage *resp_msg) {
    (void)req_msg;
    return wallet_store_verify(ctx->db, ctx->arena, ctx->merchant_id, (void *)resp_msg);
}

static const rpc_method_t wallet_methods[] = {
    {"GetSettings", rpc_get_settings, RPC_READ},
    {"UpdateSettings", rpc_update_settings, RPC_MUTATE},
    {"CreateTopUpPlan", rpc_create_plan, RPC_MUTATE},
    {"UpdateTopUpPlan", rpc_update_plan, RPC_MUTATE},
    {"GetTopUpPlan", rpc_get_plan, RPC_READ},
    {"ListTopUpPlans", rpc_list_plans, RPC_READ},
    {"TopUp", rpc_top_up, RPC_MUTATE},
    {"GetTopUp", rpc_get_top_up, RPC_READ},
    {"RefundTopUp", rpc_refund_top_up, RPC_MUTATE},
    {"GetBalance", rpc_get_balance, RPC_READ},
    {"ListLots", rpc_list_lots, RPC_READ},
    {"ListStatement", rpc_list_statement, RPC_READ},
    {"Hold", rpc_hold, RPC_MUTATE},
    {"GetHold", rpc_get_hold, RPC_READ},
    {"CaptureHold", rpc_capture_hold, RPC_MUTATE},
    {"VoidHold", rpc_void_hold, RPC_MUTATE},
    {"Refund", rpc_refund, RPC_MUTATE},
    {"ExpireDeposits", rpc_expire_deposits, RPC_MUTATE},
    {"GetReport", rpc_get_report, RPC_READ},
    {"VerifyLedger", rpc_verify_ledger, RPC_TX},
    {NULL, NULL, RPC_READ},
};

/* ---- merged batches ---- */

/* A merged batch of one of the ledger's methods (docs/architecture.md "Batched saga steps"):
 * the calls' handlers in sequence, as the runtime would run them, but with the merchant-account
 * totals of them all written once, at the end, in (code, shard) order, so that batches lock
 * the merchant rows in the one order every transaction of the wallet uses. */
static status_t merge_ledger_calls(rpc_ctx_t *ctx, rpc_merge_call_t *calls, size_t n) {
    wallet_tx_t sums;
    wallet_store_merchant_sum_begin(&sums);
    status_t st = rpc_merge_in_sequence(calls, n);
    status_t written = wallet_store_merchant_sum_end(ctx->db, ctx->merchant_id, status_is_ok(&st));
    return status_is_ok(&st) ? written : st;
}

static const rpc_method_merger_t wallet_mergers[] = {
    {"Hold", merge_ledger_calls},
    {"CaptureHold", merge_ledger_calls},
    {"VoidHold", merge_ledger_calls},
    {"Refund", merge_ledger_calls},
    {"TopUp", merge_ledger_calls},
    {"RefundTopUp", merge_ledger_calls},
    {NULL, NULL},
};

const rpc_service_t wallet_service = {&loyalty__v1__wallet_service__descriptor, wallet_methods,
                                      wallet_mergers};
