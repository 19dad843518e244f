/* wallet_client.h -- helpers shared by the wallet-svc integration tests: one function per RPC
 * that fills the request from plain arguments and returns the decoded response, plus checks
 * that every figure of a balance and a clean VerifyLedger hold. Header-only, so that each test
 * program stays one file for CMake; functions are static. */
#ifndef WALLET_CLIENT_H
#define WALLET_CLIENT_H

#include "harness.h"
#include "loyalty/v1/wallet.pb-c.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

typedef struct wallet_client {
    const char *addr;
    const char *merchant;
    arena_t *arena;
} wallet_client_t;

static inline status_t wc_call(const wallet_client_t *c, const char *method,
                               const ProtobufCMessage *req, void **resp) {
    ProtobufCMessage *out = NULL;
    status_t st = rpc_call(rpc_channel_get(c->addr), &loyalty__v1__wallet_service__descriptor,
                           method, req, c->arena, &out, NULL);
    if (resp) {
        *resp = status_is_ok(&st) ? out : NULL;
    }
    return st;
}

static inline status_t wc_top_up(const wallet_client_t *c, const char *key, const char *member,
                                 int64_t paid, const char *plan_id, const char *payment_ref,
                                 Loyalty__V1__WalletTopUpResponse **out) {
    Loyalty__V1__WalletTopUpRequest req = LOYALTY__V1__WALLET_TOP_UP_REQUEST__INIT;
    req.merchant_id = (char *)c->merchant;
    req.idempotency_key = (char *)key;
    req.member_id = (char *)member;
    req.paid_cents = paid;
    req.plan_id = (char *)(plan_id ? plan_id : "");
    req.payment_ref = (char *)payment_ref;
    return wc_call(c, "TopUp", &req.base, (void **)out);
}

static inline status_t wc_create_plan(const wallet_client_t *c, const char *name, int64_t pay,
                                      int64_t bonus, int expiry_months,
                                      Loyalty__V1__WalletTopUpPlan **out) {
    Loyalty__V1__WalletCreateTopUpPlanRequest req =
        LOYALTY__V1__WALLET_CREATE_TOP_UP_PLAN_REQUEST__INIT;
    req.merchant_id = (char *)c->merchant;
    req.idempotency_key = (char *)harness_key();
    req.name = (char *)name;
    req.pay_cents = pay;
    req.bonus_cents = bonus;
    if (expiry_months >= 0) {
        req._expiry_months_case =
            LOYALTY__V1__WALLET_CREATE_TOP_UP_PLAN_REQUEST___EXPIRY_MONTHS_EXPIRY_MONTHS;
        req.expiry_months = expiry_months;
    }
    Loyalty__V1__WalletCreateTopUpPlanResponse *resp = NULL;
    status_t st = wc_call(c, "CreateTopUpPlan", &req.base, (void **)&resp);
    if (out) {
        *out = resp ? resp->plan : NULL;
    }
    return st;
}

static inline status_t wc_hold(const wallet_client_t *c, const char *key, const char *member,
                               int64_t amount, const char *reference, int32_t ttl_s,
                               Loyalty__V1__WalletHoldResponse **out) {
    Loyalty__V1__WalletHoldRequest req = LOYALTY__V1__WALLET_HOLD_REQUEST__INIT;
    req.merchant_id = (char *)c->merchant;
    req.idempotency_key = (char *)key;
    req.member_id = (char *)member;
    req.amount_cents = amount;
    req.reference = (char *)reference;
    req.ttl_s = ttl_s;
    return wc_call(c, "Hold", &req.base, (void **)out);
}

static inline status_t wc_capture(const wallet_client_t *c, const char *key, const char *hold_id,
                                  int64_t amount, Loyalty__V1__WalletCaptureHoldResponse **out) {
    Loyalty__V1__WalletCaptureHoldRequest req = LOYALTY__V1__WALLET_CAPTURE_HOLD_REQUEST__INIT;
    req.merchant_id = (char *)c->merchant;
    req.idempotency_key = (char *)key;
    req.hold_id = (char *)hold_id;
    req.amount_cents = amount;
    return wc_call(c, "CaptureHold", &req.base, (void **)out);
}

static inline status_t wc_void(const wallet_client_t *c, const char *key, const char *hold_id,
                               Loyalty__V1__WalletVoidHoldResponse **out) {
    Loyalty__V1__WalletVoidHoldRequest req = LOYALTY__V1__WALLET_VOID_HOLD_REQUEST__INIT;
    req.merchant_id = (char *)c->merchant;
    req.idempotency_key = (char *)key;
    req.hold_id = (char *)hold_id;
    return wc_call(c, "VoidHold", &req.base, (void **)out);
}

/* VoidHold naming the hold by its member and reference instead of its id. */
static inline status_t wc_void_by_reference(const wallet_client_t *c, const char *key,
                                            const char *member_id, const char *reference,
                                            Loyalty__V1__WalletVoidHoldResponse **out) {
    Loyalty__V1__WalletVoidHoldRequest req = LOYALTY__V1__WALLET_VOID_HOLD_REQUEST__INIT;
    req.merchant_id = (char *)c->merchant;
    req.idempotency_key = (char *)key;
    req.member_id = (char *)member_id;
    req.reference = (char *)reference;
    return wc_call(c, "VoidHold", &req.base, (void **)out);
}

static inline status_t wc_get_hold(const wallet_client_t *c, const char *hold_id,
                                   Loyalty__V1__WalletHold **out) {
    Loyalty__V1__WalletGetHoldRequest req = LOYALTY__V1__WALLET_GET_HOLD_REQUEST__INIT;
    req.merchant_id = (char *)c->merchant;
    req.hold_id = (char *)hold_id;
    Loyalty__V1__WalletGetHoldResponse *resp = NULL;
    status_t st = wc_call(c, "GetHold", &req.base, (void **)&resp);
    if (out) {
        *out = resp ? resp->hold : NULL;
    }
    return st;
}

static inline status_t wc_refund(const wallet_client_t *c, const char *key, const char *reference,
                                 int64_t amount, Loyalty__V1__WalletRefundResponse **out) {
    Loyalty__V1__WalletRefundRequest req = LOYALTY__V1__WALLET_REFUND_REQUEST__INIT;
    req.merchant_id = (char *)c->merchant;
    req.idempotency_key = (char *)key;
    req.reference = (char *)reference;
    req.amount_cents = amount;
    return wc_call(c, "Refund", &req.base, (void **)out);
}

static inline status_t wc_refund_top_up(const wallet_client_t *c, const char *key,
                                        const char *payment_ref, int64_t amount,
                                        Loyalty__V1__WalletRefundTopUpResponse **out) {
    Loyalty__V1__WalletRefundTopUpRequest req = LOYALTY__V1__WALLET_REFUND_TOP_UP_REQUEST__INIT;
    req.merchant_id = (char *)c->merchant;
    req.idempotency_key = (char *)key;
    req.payment_ref = (char *)payment_ref;
    req.amount_cents = amount;
    return wc_call(c, "RefundTopUp", &req.base, (void **)out);
}

static inline Loyalty__V1__WalletTopUp *wc_get_top_up(const wallet_client_t *c,
                                                      const char *payment_ref) {
    Loyalty__V1__WalletGetTopUpRequest req = LOYALTY__V1__WALLET_GET_TOP_UP_REQUEST__INIT;
    req.merchant_id = (char *)c->merchant;
    req.payment_ref = (char *)payment_ref;
    Loyalty__V1__WalletGetTopUpResponse *resp = NULL;
    assert_status(wc_call(c, "GetTopUp", &req.base, (void **)&resp), STATUS_OK, "");
    return resp->top_up;
}

static inline Loyalty__V1__WalletBalance *wc_balance(const wallet_client_t *c, const char *member) {
    Loyalty__V1__WalletGetBalanceRequest req = LOYALTY__V1__WALLET_GET_BALANCE_REQUEST__INIT;
    req.merchant_id = (char *)c->merchant;
    req.member_id = (char *)member;
    Loyalty__V1__WalletGetBalanceResponse *resp = NULL;
    assert_status(wc_call(c, "GetBalance", &req.base, (void **)&resp), STATUS_OK, "");
    return resp->balance;
}

/* Asserts every figure of a balance: principal and bonus available, held. */
#define assert_balance(b, principal, bonus, held)                                                  \
    do {                                                                                           \
        const Loyalty__V1__WalletBalance *b_ = (b);                                                \
        cr_assert_eq(b_->principal_available_cents, (principal), "principal %lld, want %lld",      \
                     (long long)b_->principal_available_cents, (long long)(principal));            \
        cr_assert_eq(b_->bonus_available_cents, (bonus), "bonus %lld, want %lld",                  \
                     (long long)b_->bonus_available_cents, (long long)(bonus));                    \
        cr_assert_eq(b_->held_cents, (held), "held %lld, want %lld", (long long)b_->held_cents,    \
                     (long long)(held));                                                           \
        cr_assert_eq(b_->available_cents, (principal) + (bonus));                                  \
    } while (0)

static inline Loyalty__V1__WalletVerifyLedgerResponse *wc_verify(const wallet_client_t *c) {
    Loyalty__V1__WalletVerifyLedgerRequest req = LOYALTY__V1__WALLET_VERIFY_LEDGER_REQUEST__INIT;
    req.merchant_id = (char *)c->merchant;
    Loyalty__V1__WalletVerifyLedgerResponse *resp = NULL;
    assert_status(wc_call(c, "VerifyLedger", &req.base, (void **)&resp), STATUS_OK, "");
    return resp;
}

/* VerifyLedger finds nothing wrong; prints the differences otherwise. */
static inline void wc_assert_ledger_clean(const wallet_client_t *c) {
    Loyalty__V1__WalletVerifyLedgerResponse *v = wc_verify(c);
    for (size_t i = 0; i < v->n_differences; i++) {
        const Loyalty__V1__WalletLedgerDifference *d = v->differences[i];
        fprintf(stderr, "ledger difference: %s %s expected %lld actual %lld (%s)\n", d->check,
                d->subject, (long long)d->expected_cents, (long long)d->actual_cents, d->detail);
    }
    cr_assert(v->ok, "VerifyLedger found %zu differences", v->n_differences);
    cr_assert(v->transfers_checked > 0);
}

static inline Loyalty__V1__WalletReport *wc_report(const wallet_client_t *c, const char *from,
                                                   const char *to) {
    Loyalty__V1__WalletGetReportRequest req = LOYALTY__V1__WALLET_GET_REPORT_REQUEST__INIT;
    req.merchant_id = (char *)c->merchant;
    req.from_date = (char *)from;
    req.to_date = (char *)to;
    Loyalty__V1__WalletGetReportResponse *resp = NULL;
    assert_status(wc_call(c, "GetReport", &req.base, (void **)&resp), STATUS_OK, "");
    return resp->report;
}

static inline Loyalty__V1__WalletListStatementResponse *
wc_statement(const wallet_client_t *c, const char *member, int32_t page_size, const char *cursor) {
    Loyalty__V1__PageRequest page = LOYALTY__V1__PAGE_REQUEST__INIT;
    page.page_size = page_size;
    page.cursor = (char *)cursor;
    Loyalty__V1__WalletListStatementRequest req = LOYALTY__V1__WALLET_LIST_STATEMENT_REQUEST__INIT;
    req.merchant_id = (char *)c->merchant;
    req.member_id = (char *)member;
    req.page = &page;
    Loyalty__V1__WalletListStatementResponse *resp = NULL;
    assert_status(wc_call(c, "ListStatement", &req.base, (void **)&resp), STATUS_OK, "");
    return resp;
}

static inline Loyalty__V1__WalletListLotsResponse *
wc_lots(const wallet_client_t *c, const char *member, bool include_closed) {
    Loyalty__V1__WalletListLotsRequest req = LOYALTY__V1__WALLET_LIST_LOTS_REQUEST__INIT;
    req.merchant_id = (char *)c->merchant;
    req.member_id = (char *)member;
    req.include_closed = include_closed;
    Loyalty__V1__WalletListLotsResponse *resp = NULL;
    assert_status(wc_call(c, "ListLots", &req.base, (void **)&resp), STATUS_OK, "");
    return resp;
}

static inline status_t wc_expire(const wallet_client_t *c, int64_t now_at,
                                 Loyalty__V1__WalletExpireDepositsResponse **out) {
    Loyalty__V1__WalletExpireDepositsRequest req =
        LOYALTY__V1__WALLET_EXPIRE_DEPOSITS_REQUEST__INIT;
    req.merchant_id = (char *)c->merchant;
    req.idempotency_key = (char *)harness_key();
    if (now_at > 0) {
        req._now_at_case = LOYALTY__V1__WALLET_EXPIRE_DEPOSITS_REQUEST___NOW_AT_NOW_AT;
        req.now_at = now_at;
    }
    return wc_call(c, "ExpireDeposits", &req.base, (void **)out);
}

static inline void wc_set_expiry(const wallet_client_t *c, int months, const char *time_zone) {
    Loyalty__V1__WalletUpdateSettingsRequest req =
        LOYALTY__V1__WALLET_UPDATE_SETTINGS_REQUEST__INIT;
    req.merchant_id = (char *)c->merchant;
    req.idempotency_key = (char *)harness_key();
    Loyalty__V1__WalletSettings s = LOYALTY__V1__WALLET_SETTINGS__INIT;
    s.deposit_expiry_months = months;
    s.time_zone = (char *)time_zone;
    req.settings = &s;
    req.update_mask = time_zone ? HARNESS_MASK("deposit_expiry_months", "time_zone")
                                : HARNESS_MASK("deposit_expiry_months");
    assert_status(wc_call(c, "UpdateSettings", &req.base, NULL), STATUS_OK, "");
}

#endif
