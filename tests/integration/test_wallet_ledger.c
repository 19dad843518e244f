/* test_wallet_ledger.c -- wallet-svc over real gRPC against real PostgreSQL: top-ups with
 * bonus, holds with partial capture, void and TTL expiry, refunds, top-up refunds with the
 * pro-rata bonus forfeit, deposit expiry, spending order, reports and VerifyLedger (including
 * that it notices a tampered balance). Every figure is checked. */
#include "wallet_client.h"

#include <libpq-fe.h>

#include <time.h>
#include <unistd.h>

static svc_proc_t svc;
static arena_t arena;
static wallet_client_t wc;

static void setup(void) {
    harness_init();
    arena_init(&arena);
}

static void teardown(void) {
    if (svc.pid > 0) {
        cr_expect_eq(harness_stop(&svc), 0, "wallet-svc did not exit cleanly; see %s",
                     svc.log_path);
    }
    arena_free(&arena);
    harness_fini();
}

TestSuite(wallet_ledger, .init = setup, .fini = teardown, .timeout = 180);

static void start(const char *prefix, const char *const *env) {
    harness_start(&svc, "wallet-svc", env);
    wc = (wallet_client_t){.addr = svc.addr, .merchant = harness_merchant(prefix), .arena = &arena};
}

/* Runs one SQL statement against the wallet schema (for tests that move time or tamper). */
static void sql(const char *statement, const char *param) {
    PGconn *pg = PQconnectdb(harness_pg_dsn());
    cr_assert_eq(PQstatus(pg), CONNECTION_OK);
    const char *params[] = {param};
    PGresult *r = PQexecParams(pg, statement, param ? 1 : 0, NULL, params, NULL, NULL, 0);
    cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK, "%s",
              PQerrorMessage(pg));
    PQclear(r);
    PQfinish(pg);
}

/* The text of the one value `query` ($1 = param) answers, in the test's arena. */
static const char *sql_value(const char *query, const char *param) {
    PGconn *pg = PQconnectdb(harness_pg_dsn());
    cr_assert_eq(PQstatus(pg), CONNECTION_OK);
    const char *params[] = {param};
    PGresult *r = PQexecParams(pg, query, 1, NULL, params, NULL, NULL, 0);
    cr_assert(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "%s", PQerrorMessage(pg));
    const char *v = arena_strdup(&arena, PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(pg);
    return v;
}

static Loyalty__V1__WalletTopUpResponse *top_up(const char *member, int64_t paid,
                                                const char *plan_id) {
    Loyalty__V1__WalletTopUpResponse *r = NULL;
    char ref[64];
    snprintf(ref, sizeof ref, "pay-%s", harness_key());
    assert_status(wc_top_up(&wc, harness_key(), member, paid, plan_id, ref, &r), STATUS_OK, "");
    return r;
}

static Loyalty__V1__WalletHoldResponse *hold(const char *member, int64_t amount,
                                             const char *reference) {
    Loyalty__V1__WalletHoldResponse *r = NULL;
    assert_status(wc_hold(&wc, harness_key(), member, amount, reference, 0, &r), STATUS_OK, "");
    return r;
}

static Loyalty__V1__WalletCaptureHoldResponse *capture(const char *hold_id, int64_t amount) {
    Loyalty__V1__WalletCaptureHoldResponse *r = NULL;
    assert_status(wc_capture(&wc, harness_key(), hold_id, amount, &r), STATUS_OK, "");
    return r;
}

Test(wallet_ledger, top_up_with_bonus) {
    /* Goal: "pay 1,000, get 1,100": the principal and the bonus land in two lots with the
     * plan's expiry; the balance, statement, report and ledger all agree; a payment is never
     * credited twice; plan rules are enforced. */
    start("topup", NULL);
    Loyalty__V1__WalletTopUpPlan *plan = NULL;
    assert_status(wc_create_plan(&wc, "Pay 1000 get 1100", 1000, 100, 12, &plan), STATUS_OK, "");
    cr_assert(strncmp(plan->id, "plan_", 5) == 0);
    cr_assert(plan->enabled);

    Loyalty__V1__WalletTopUpResponse *r = NULL;
    assert_status(wc_top_up(&wc, harness_key(), "m1", 1000, plan->id, "psp-1", &r), STATUS_OK, "");
    cr_assert_eq(r->top_up->paid_cents, 1000);
    cr_assert_eq(r->top_up->bonus_cents, 100);
    cr_assert_str_eq(r->top_up->plan_id, plan->id);
    cr_assert_neq(r->top_up->bonus_lot_id[0], '\0');
    cr_assert_eq(r->top_up->refundable_cents, 1000);
    /* 12 months, to the end of the local day: between 365 and 367 days from now. */
    int64_t now = (int64_t)time(NULL);
    cr_assert(r->top_up->expires_at > now + 365 * 86400 &&
                  r->top_up->expires_at <= now + 367 * 86400,
              "expires_at %lld", (long long)r->top_up->expires_at);
    assert_balance(r->balance, 1000, 100, 0);
    cr_assert_eq(r->balance->expiring_soon_cents, 0);
    cr_assert_eq(r->balance->next_expiry_at, r->top_up->expires_at);
    assert_balance(wc_balance(&wc, "m1"), 1000, 100, 0);

    Loyalty__V1__WalletListLotsResponse *lots = wc_lots(&wc, "m1", false);
    cr_assert_eq(lots->n_lots, 2);
    cr_assert_eq(lots->lots[0]->kind, LOYALTY__V1__WALLET_MONEY_KIND__WALLET_MONEY_KIND_PRINCIPAL);
    cr_assert_eq(lots->lots[0]->available_cents, 1000);
    cr_assert_eq(lots->lots[1]->kind, LOYALTY__V1__WALLET_MONEY_KIND__WALLET_MONEY_KIND_BONUS);
    cr_assert_eq(lots->lots[1]->available_cents, 100);
    cr_assert_eq(lots->lots[1]->expires_at, r->top_up->expires_at);

    Loyalty__V1__WalletListStatementResponse *stmt = wc_statement(&wc, "m1", 0, "");
    cr_assert_eq(stmt->n_entries, 1);
    cr_assert_eq(stmt->entries[0]->kind,
                 LOYALTY__V1__WALLET_TRANSFER_KIND__WALLET_TRANSFER_KIND_TOP_UP);
    cr_assert_eq(stmt->entries[0]->principal_delta_cents, 1000);
    cr_assert_eq(stmt->entries[0]->bonus_delta_cents, 100);
    cr_assert_eq(stmt->entries[0]->balance_after_cents, 1100);
    cr_assert_str_eq(stmt->entries[0]->payment_ref, "psp-1");

    /* The same payment under another key is refused; the balance is unchanged. */
    assert_status(wc_top_up(&wc, harness_key(), "m1", 1000, plan->id, "psp-1", NULL),
                  STATUS_ALREADY_EXISTS, "PAYMENT_REF_TAKEN");
    assert_status(wc_top_up(&wc, harness_key(), "m1", 999, plan->id, "psp-2", NULL),
                  STATUS_FAILED_PRECONDITION, "PLAN_AMOUNT_MISMATCH");
    assert_status(wc_top_up(&wc, harness_key(), "m1", 1000, "plan_nope", "psp-2", NULL),
                  STATUS_NOT_FOUND, "PLAN_NOT_FOUND");
    Loyalty__V1__WalletUpdateTopUpPlanRequest up =
        LOYALTY__V1__WALLET_UPDATE_TOP_UP_PLAN_REQUEST__INIT;
    up.merchant_id = (char *)wc.merchant;
    up.idempotency_key = (char *)harness_key();
    up.plan_id = plan->id;
    Loyalty__V1__WalletTopUpPlan off = LOYALTY__V1__WALLET_TOP_UP_PLAN__INIT;
    off.enabled = false;
    up.plan = &off;
    up.update_mask = HARNESS_MASK("enabled");
    assert_status(wc_call(&wc, "UpdateTopUpPlan", &up.base, NULL), STATUS_OK, "");
    assert_status(wc_top_up(&wc, harness_key(), "m1", 1000, plan->id, "psp-2", NULL),
                  STATUS_FAILED_PRECONDITION, "PLAN_NOT_ACTIVE");
    assert_balance(wc_balance(&wc, "m1"), 1000, 100, 0);

    /* Without a plan: no bonus, the merchant's default (never expires). */
    Loyalty__V1__WalletTopUpResponse *plain = top_up("m1", 250, NULL);
    cr_assert_eq(plain->top_up->bonus_cents, 0);
    cr_assert_str_eq(plain->top_up->bonus_lot_id, "");
    cr_assert_eq(plain->top_up->expires_at, 0);
    assert_balance(plain->balance, 1250, 100, 0);

    Loyalty__V1__WalletReport *rep = wc_report(&wc, "", "");
    cr_assert_eq(rep->liability_principal_cents, 1250);
    cr_assert_eq(rep->liability_bonus_cents, 100);
    cr_assert_eq(rep->topped_up_cents, 1250);
    cr_assert_eq(rep->bonus_granted_cents, 100);
    cr_assert_eq(rep->redeemed_principal_cents, 0);
    wc_assert_ledger_clean(&wc);
}

Test(wallet_ledger, hold_partial_capture_refund) {
    /* Goal: hold 600 of 1100 -> capture 450 (the other 150 released) -> refunds up to, and
     * never past, what was captured; figures checked after every step. */
    start("hold", NULL);
    Loyalty__V1__WalletTopUpPlan *plan = NULL;
    assert_status(wc_create_plan(&wc, "P", 1000, 100, -1, &plan), STATUS_OK, "");
    top_up("m1", 1000, plan->id);

    Loyalty__V1__WalletHoldResponse *h = hold("m1", 600, "order-1");
    cr_assert_eq(h->hold->state, LOYALTY__V1__WALLET_HOLD_STATE__WALLET_HOLD_STATE_PENDING);
    cr_assert_eq(h->hold->amount_cents, 600);
    cr_assert(h->hold->expires_at >= (int64_t)time(NULL) + 890, "default TTL is 900 s");
    cr_assert_eq(h->hold->n_allocations, 1, "all from the principal (principal before bonus)");
    cr_assert_eq(h->hold->allocations[0]->amount_cents, 600);
    assert_balance(h->balance, 400, 100, 600);

    Loyalty__V1__WalletCaptureHoldResponse *c = capture(h->hold->id, 450);
    cr_assert_eq(c->hold->state, LOYALTY__V1__WALLET_HOLD_STATE__WALLET_HOLD_STATE_CAPTURED);
    cr_assert_eq(c->hold->captured_cents, 450);
    cr_assert_eq(c->captured_principal_cents, 450);
    cr_assert_eq(c->captured_bonus_cents, 0);
    cr_assert_eq(c->released_cents, 150);
    assert_balance(c->balance, 550, 100, 0);

    /* A second capture, with another key, is refused and changes nothing. */
    assert_status(wc_capture(&wc, harness_key(), h->hold->id, 1, NULL), STATUS_FAILED_PRECONDITION,
                  "HOLD_ALREADY_CAPTURED");

    Loyalty__V1__WalletRefundResponse *rf = NULL;
    assert_status(wc_refund(&wc, harness_key(), "order-1", 200, &rf), STATUS_OK, "");
    cr_assert_eq(rf->principal_cents, 200);
    cr_assert_eq(rf->captured_cents, 450);
    cr_assert_eq(rf->refunded_cents, 200);
    cr_assert_str_eq(rf->member_id, "m1");
    assert_balance(rf->balance, 750, 100, 0);
    assert_status(wc_refund(&wc, harness_key(), "order-1", 251, NULL), STATUS_FAILED_PRECONDITION,
                  "REFUND_EXCEEDS_CAPTURED");
    assert_status(wc_refund(&wc, harness_key(), "order-1", 250, &rf), STATUS_OK, "");
    cr_assert_eq(rf->refunded_cents, 450);
    assert_status(wc_refund(&wc, harness_key(), "order-1", 1, NULL), STATUS_FAILED_PRECONDITION,
                  "REFUND_EXCEEDS_CAPTURED");
    assert_status(wc_refund(&wc, harness_key(), "order-404", 1, NULL), STATUS_NOT_FOUND,
                  "REFERENCE_NOT_FOUND");
    assert_balance(wc_balance(&wc, "m1"), 1000, 100, 0);

    /* A hold bigger than the available balance is refused. */
    assert_status(wc_hold(&wc, harness_key(), "m1", 1101, "order-2", 0, NULL),
                  STATUS_FAILED_PRECONDITION, "INSUFFICIENT_FUNDS");
    /* Capture above the held amount is refused; exactly the held amount is fine and spends
     * principal before bonus. */
    h = hold("m1", 1100, "order-2");
    assert_balance(h->balance, 0, 0, 1100);
    assert_status(wc_capture(&wc, harness_key(), h->hold->id, 1101, NULL),
                  STATUS_FAILED_PRECONDITION, "CAPTURE_EXCEEDS_HOLD");
    c = capture(h->hold->id, 1100);
    cr_assert_eq(c->captured_principal_cents, 1000);
    cr_assert_eq(c->captured_bonus_cents, 100);
    cr_assert_eq(c->released_cents, 0);
    assert_balance(c->balance, 0, 0, 0);
    /* The refund of a mixed capture goes back pro rata: 550 of 1000+100 -> 500 + 50. */
    assert_status(wc_refund(&wc, harness_key(), "order-2", 550, &rf), STATUS_OK, "");
    cr_assert_eq(rf->principal_cents, 500);
    cr_assert_eq(rf->bonus_cents, 50);
    assert_balance(rf->balance, 500, 50, 0);

    Loyalty__V1__WalletReport *rep = wc_report(&wc, "", "");
    cr_assert_eq(rep->redeemed_principal_cents, 500);
    cr_assert_eq(rep->redeemed_bonus_cents, 50);
    cr_assert_eq(rep->liability_principal_cents, 500);
    cr_assert_eq(rep->liability_bonus_cents, 50);
    wc_assert_ledger_clean(&wc);
}

Test(wallet_ledger, hold_void_and_states) {
    /* Goal: void releases everything; voiding twice is fine; capture after void fails
     * HOLD_VOIDED; void after capture fails HOLD_ALREADY_CAPTURED; a reference belongs to one
     * member. */
    start("void", NULL);
    top_up("m1", 500, NULL);
    Loyalty__V1__WalletHoldResponse *h = hold("m1", 300, "order-1");
    assert_balance(h->balance, 200, 0, 300);
    Loyalty__V1__WalletVoidHoldResponse *v = NULL;
    assert_status(wc_void(&wc, harness_key(), h->hold->id, &v), STATUS_OK, "");
    cr_assert_eq(v->released_cents, 300);
    cr_assert_eq(v->hold->state, LOYALTY__V1__WALLET_HOLD_STATE__WALLET_HOLD_STATE_VOIDED);
    assert_balance(v->balance, 500, 0, 0);
    assert_status(wc_void(&wc, harness_key(), h->hold->id, &v), STATUS_OK, "");
    cr_assert_eq(v->released_cents, 0);
    assert_balance(v->balance, 500, 0, 0);
    assert_status(wc_capture(&wc, harness_key(), h->hold->id, 100, NULL),
                  STATUS_FAILED_PRECONDITION, "HOLD_VOIDED");

    h = hold("m1", 100, "order-2");
    capture(h->hold->id, 100);
    assert_status(wc_void(&wc, harness_key(), h->hold->id, NULL), STATUS_FAILED_PRECONDITION,
                  "HOLD_ALREADY_CAPTURED");
    assert_status(wc_void(&wc, harness_key(), "hld_unknown", NULL), STATUS_NOT_FOUND,
                  "HOLD_NOT_FOUND");

    top_up("m2", 500, NULL);
    assert_status(wc_hold(&wc, harness_key(), "m2", 10, "order-2", 0, NULL),
                  STATUS_FAILED_PRECONDITION, "REFERENCE_MEMBER_MISMATCH");
    assert_balance(wc_balance(&wc, "m1"), 400, 0, 0);
    assert_balance(wc_balance(&wc, "m2"), 500, 0, 0);

    Loyalty__V1__WalletListStatementResponse *stmt = wc_statement(&wc, "m1", 2, "");
    cr_assert_eq(stmt->n_entries, 2);
    cr_assert_eq(stmt->entries[0]->kind,
                 LOYALTY__V1__WALLET_TRANSFER_KIND__WALLET_TRANSFER_KIND_CAPTURE);
    cr_assert_eq(stmt->entries[0]->principal_delta_cents, -100);
    cr_assert_eq(stmt->entries[0]->held_delta_cents, -100);
    cr_assert_eq(stmt->entries[1]->kind,
                 LOYALTY__V1__WALLET_TRANSFER_KIND__WALLET_TRANSFER_KIND_HOLD);
    cr_assert_eq(stmt->entries[1]->held_delta_cents, 100);
    cr_assert_neq(stmt->page_info->next_cursor[0], '\0');
    Loyalty__V1__WalletListStatementResponse *rest =
        wc_statement(&wc, "m1", 10, stmt->page_info->next_cursor);
    cr_assert_eq(rest->n_entries, 3, "void, hold, top-up");
    cr_assert_eq(rest->entries[0]->kind,
                 LOYALTY__V1__WALLET_TRANSFER_KIND__WALLET_TRANSFER_KIND_VOID);
    cr_assert_eq(rest->entries[2]->kind,
                 LOYALTY__V1__WALLET_TRANSFER_KIND__WALLET_TRANSFER_KIND_TOP_UP);
    cr_assert_str_eq(rest->page_info->next_cursor, "");
    wc_assert_ledger_clean(&wc);
}

Test(wallet_ledger, void_by_member_and_reference) {
    /* Goal: a caller that never learned a hold's id (a checkout interrupted by a crash) voids
     * it by member and reference: the pending hold of that reference is voided, a replay of the
     * key answers the same, a captured or voided hold is not found again, nor is one of another
     * member, and half a target is refused. */
    start("voidref", NULL);
    top_up("m1", 500, NULL);
    top_up("m2", 500, NULL);
    Loyalty__V1__WalletHoldResponse *h = hold("m1", 300, "order-1");
    hold("m2", 50, "order-9");
    const char *key = harness_key();
    Loyalty__V1__WalletVoidHoldResponse *v = NULL;
    assert_status(wc_void_by_reference(&wc, key, "m1", "order-1", &v), STATUS_OK, "");
    cr_assert_str_eq(v->hold->id, h->hold->id);
    cr_assert_eq(v->released_cents, 300);
    cr_assert_eq(v->hold->state, LOYALTY__V1__WALLET_HOLD_STATE__WALLET_HOLD_STATE_VOIDED);
    assert_balance(v->balance, 500, 0, 0);
    assert_status(wc_void_by_reference(&wc, key, "m1", "order-1", &v), STATUS_OK, "");
    cr_assert_str_eq(v->hold->id, h->hold->id, "the replay answers as the first call");
    assert_status(wc_void_by_reference(&wc, harness_key(), "m1", "order-1", NULL), STATUS_NOT_FOUND,
                  "HOLD_NOT_FOUND");
    assert_status(wc_void_by_reference(&wc, harness_key(), "m1", "order-9", NULL), STATUS_NOT_FOUND,
                  "HOLD_NOT_FOUND");
    h = hold("m1", 100, "order-2");
    capture(h->hold->id, 100);
    assert_status(wc_void_by_reference(&wc, harness_key(), "m1", "order-2", NULL), STATUS_NOT_FOUND,
                  "HOLD_NOT_FOUND");
    assert_status(wc_void_by_reference(&wc, harness_key(), "m1", "", NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_REFERENCE");
    assert_balance(wc_balance(&wc, "m1"), 400, 0, 0);
    assert_balance(wc_balance(&wc, "m2"), 450, 0, 50);
    wc_assert_ledger_clean(&wc);
}

Test(wallet_ledger, hold_and_capture_can_omit_the_expiring_figures) {
    /* Goal: with omit_expiring, Hold and CaptureHold answer the same balance without the
     * expiring figures (zero), and without it they carry them. */
    start("omit", NULL);
    wc_set_expiry(&wc, 1, "UTC");
    Loyalty__V1__WalletTopUpResponse *t = top_up("m1", 1000, NULL);
    cr_assert_gt(t->top_up->expires_at, 0);
    Loyalty__V1__WalletHoldResponse *full = hold("m1", 100, "order-1");
    cr_assert_eq(full->balance->next_expiry_at, t->top_up->expires_at);
    Loyalty__V1__WalletHoldRequest h = LOYALTY__V1__WALLET_HOLD_REQUEST__INIT;
    h.merchant_id = (char *)wc.merchant;
    h.idempotency_key = (char *)harness_key();
    h.member_id = "m1";
    h.amount_cents = 200;
    h.reference = "order-2";
    h.omit_expiring = true;
    Loyalty__V1__WalletHoldResponse *hr = NULL;
    assert_status(wc_call(&wc, "Hold", &h.base, (void **)&hr), STATUS_OK, "");
    assert_balance(hr->balance, 700, 0, 300);
    cr_assert_eq(hr->balance->next_expiry_at, 0);
    cr_assert_eq(hr->balance->expiring_soon_cents, 0);
    Loyalty__V1__WalletCaptureHoldRequest c = LOYALTY__V1__WALLET_CAPTURE_HOLD_REQUEST__INIT;
    c.merchant_id = (char *)wc.merchant;
    c.idempotency_key = (char *)harness_key();
    c.hold_id = hr->hold->id;
    c.amount_cents = 200;
    c.omit_expiring = true;
    Loyalty__V1__WalletCaptureHoldResponse *cr = NULL;
    assert_status(wc_call(&wc, "CaptureHold", &c.base, (void **)&cr), STATUS_OK, "");
    assert_balance(cr->balance, 700, 0, 100);
    cr_assert_eq(cr->balance->next_expiry_at, 0);
    Loyalty__V1__WalletCaptureHoldResponse *cf = capture(full->hold->id, 100);
    assert_balance(cf->balance, 700, 0, 0);
    cr_assert_eq(cf->balance->next_expiry_at, t->top_up->expires_at);
    wc_assert_ledger_clean(&wc);
}

/* The version (xmin) of m1's account row of `code`. */
static const char *account_version(int code) {
    return sql_value(code == 1 ? "SELECT xmin::text FROM wallet.accounts WHERE merchant_id = $1 "
                                 " AND member_id = 'm1' AND code = 1"
                               : "SELECT xmin::text FROM wallet.accounts WHERE merchant_id = $1 "
                                 " AND member_id = 'm1' AND code = 2",
                     wc.merchant);
}

Test(wallet_ledger, hold_and_capture_leave_an_unchanged_bonus_account_alone) {
    /* Goal: a hold and its capture from principal money write the principal account row
     * (balances and the wallet's next_due_at, which the hold's TTL moves) and never the bonus
     * row, whose balances they do not change; the wallet still knows when its hold falls due
     * (VerifyLedger's NEXT_DUE) and the ledger stays clean. */
    start("bonusalone", NULL);
    top_up("m1", 1000, NULL);
    const char *principal = account_version(1), *bonus = account_version(2);
    Loyalty__V1__WalletHoldResponse *h = hold("m1", 300, "order-1");
    cr_assert_str_neq(account_version(1), principal, "the hold did not write the principal");
    cr_assert_str_eq(account_version(2), bonus, "the hold wrote the unchanged bonus account");
    wc_assert_ledger_clean(&wc);
    principal = account_version(1);
    Loyalty__V1__WalletCaptureHoldResponse *c = capture(h->hold->id, 300);
    assert_balance(c->balance, 700, 0, 0);
    cr_assert_str_neq(account_version(1), principal, "the capture did not write the principal");
    cr_assert_str_eq(account_version(2), bonus, "the capture wrote the unchanged bonus account");
    wc_assert_ledger_clean(&wc);
}

Test(wallet_ledger, lot_updates_can_stay_on_their_page) {
    /* Goal: no index of lots names a balance column (in its key or its predicate), so that a
     * hold, capture or release that leaves a lot with money available is a HOT update (no new
     * index entries); the spendable and lapsing lots are those with has_available, which is
     * exactly "debited + held < credited" however the lot moves. */
    start("lothot", NULL);
    cr_assert_str_eq(sql_value("SELECT count(*)::text FROM pg_indexes WHERE schemaname = 'wallet' "
                               " AND tablename = 'lots' AND indexdef ~ $1",
                               "(debited|held|credited|expired)_cents"),
                     "0", "an index of lots names a balance column");
    cr_assert_str_eq(sql_value("SELECT count(*)::text FROM pg_indexes WHERE schemaname = 'wallet' "
                               " AND tablename = 'lots' AND indexdef ~ $1",
                               "WHERE .*has_available"),
                     "3", "the spendable and lapsing indexes are not over has_available");
    top_up("m1", 1000, NULL);
    Loyalty__V1__WalletHoldResponse *h = hold("m1", 1000, "order-1");
    const char *lots_sql = "SELECT string_agg(has_available::text || '=' || "
                           " (debited_cents + held_cents < credited_cents)::text, ',') "
                           "FROM wallet.lots WHERE merchant_id = $1";
    cr_assert_str_eq(sql_value(lots_sql, wc.merchant), "false=false", "a held lot");
    assert_status(wc_void(&wc, harness_key(), h->hold->id, NULL), STATUS_OK, "");
    cr_assert_str_eq(sql_value(lots_sql, wc.merchant), "true=true", "a released lot");
    capture(hold("m1", 400, "order-2")->hold->id, 400);
    cr_assert_str_eq(sql_value(lots_sql, wc.merchant), "true=true", "a lot partly spent");
    assert_balance(wc_balance(&wc, "m1"), 600, 0, 0);
    wc_assert_ledger_clean(&wc);
}

Test(wallet_ledger, hold_ttl_expiry_is_lazy) {
    /* Goal: a hold past its TTL reads EXPIRED, cannot be captured (HOLD_EXPIRED), and its
     * money is available again at the next read, without waiting for the job. */
    const char *env[] = {"JOB_INTERVAL_S=0", NULL};
    start("ttl", env);
    top_up("m1", 500, NULL);
    Loyalty__V1__WalletHoldResponse *h = NULL;
    assert_status(wc_hold(&wc, harness_key(), "m1", 200, "order-1", 1, &h), STATUS_OK, "");
    assert_balance(h->balance, 300, 0, 200);
    sleep(2);
    Loyalty__V1__WalletHold *got = NULL;
    assert_status(wc_get_hold(&wc, h->hold->id, &got), STATUS_OK, "");
    cr_assert_eq(got->state, LOYALTY__V1__WALLET_HOLD_STATE__WALLET_HOLD_STATE_EXPIRED);
    assert_status(wc_capture(&wc, harness_key(), h->hold->id, 200, NULL),
                  STATUS_FAILED_PRECONDITION, "HOLD_EXPIRED");
    assert_balance(wc_balance(&wc, "m1"), 500, 0, 0);
    Loyalty__V1__WalletListStatementResponse *stmt = wc_statement(&wc, "m1", 1, "");
    cr_assert_eq(stmt->entries[0]->kind,
                 LOYALTY__V1__WALLET_TRANSFER_KIND__WALLET_TRANSFER_KIND_HOLD_EXPIRY);
    cr_assert_eq(stmt->entries[0]->held_delta_cents, -200);
    /* Voiding an expired hold is fine and changes nothing. */
    Loyalty__V1__WalletVoidHoldResponse *v = NULL;
    assert_status(wc_void(&wc, harness_key(), h->hold->id, &v), STATUS_OK, "");
    cr_assert_eq(v->released_cents, 0);
    cr_assert_eq(v->hold->state, LOYALTY__V1__WALLET_HOLD_STATE__WALLET_HOLD_STATE_EXPIRED);
    wc_assert_ledger_clean(&wc);
}

Test(wallet_ledger, a_hold_may_take_money_that_an_expired_hold_gives_back) {
    /* Goal: Hold reads the wallet's lots together with its lock, before settling what fell due;
     * when settling releases an expired hold, the new hold takes what it released (the lots are
     * read again), not the lots as they were before. */
    const char *env[] = {"JOB_INTERVAL_S=0", NULL};
    start("ttlre", env);
    /* Two deposits of 100.00: the first hold takes one of them whole, so the lots read before
     * settling offer the other alone. */
    top_up("m1", 100, NULL);
    top_up("m1", 100, NULL);
    Loyalty__V1__WalletHoldResponse *h = NULL;
    assert_status(wc_hold(&wc, harness_key(), "m1", 100, "order-1", 1, &h), STATUS_OK, "");
    assert_balance(h->balance, 100, 0, 100);
    /* Its TTL passes (the wallet falls due then): moved in the rows rather than waited for. */
    sql("UPDATE wallet.holds SET expires_at = now() - interval '1 minute' WHERE id = $1",
        h->hold->id);
    sql("UPDATE wallet.accounts SET next_due_at = extract(epoch FROM now())::bigint - 1 "
        "WHERE merchant_id = $1",
        wc.merchant);
    Loyalty__V1__WalletHoldResponse *again = hold("m1", 150, "order-2");
    assert_balance(again->balance, 50, 0, 150);
    Loyalty__V1__WalletHold *got = NULL;
    assert_status(wc_get_hold(&wc, h->hold->id, &got), STATUS_OK, "");
    cr_assert_eq(got->state, LOYALTY__V1__WALLET_HOLD_STATE__WALLET_HOLD_STATE_EXPIRED);
    wc_assert_ledger_clean(&wc);
}

Test(wallet_ledger, capturing_a_hold_whose_ttl_passed_finds_it_expired) {
    /* Goal: CaptureHold locks the wallet and reads the hold in one round trip, before settling
     * what fell due; when settling expires that very hold, the capture sees it EXPIRED. */
    const char *env[] = {"JOB_INTERVAL_S=0", NULL};
    start("ttlcap", env);
    top_up("m1", 500, NULL);
    Loyalty__V1__WalletHoldResponse *h = hold("m1", 200, "order-1");
    sql("UPDATE wallet.holds SET expires_at = now() - interval '1 minute' WHERE id = $1",
        h->hold->id);
    sql("UPDATE wallet.accounts SET next_due_at = extract(epoch FROM now())::bigint - 1 "
        "WHERE merchant_id = $1",
        wc.merchant);
    assert_status(wc_capture(&wc, harness_key(), h->hold->id, 200, NULL),
                  STATUS_FAILED_PRECONDITION, "HOLD_EXPIRED");
    assert_balance(wc_balance(&wc, "m1"), 500, 0, 0);
    wc_assert_ledger_clean(&wc);
}

Test(wallet_ledger, hold_ttl_expiry_by_the_job) {
    /* Goal: the background job releases holds past their TTL by itself: the statement (a read
     * that settles nothing) shows the HOLD_EXPIRY transfer without any other call. */
    const char *env[] = {"JOB_INTERVAL_S=1", NULL};
    start("job", env);
    top_up("m1", 500, NULL);
    Loyalty__V1__WalletHoldResponse *h = NULL;
    assert_status(wc_hold(&wc, harness_key(), "m1", 120, "order-1", 1, &h), STATUS_OK, "");
    bool expired = false;
    for (int i = 0; i < 100 && !expired; i++) {
        usleep(100 * 1000);
        Loyalty__V1__WalletListStatementResponse *stmt = wc_statement(&wc, "m1", 1, "");
        expired = stmt->entries[0]->kind ==
                  LOYALTY__V1__WALLET_TRANSFER_KIND__WALLET_TRANSFER_KIND_HOLD_EXPIRY;
    }
    cr_assert(expired, "the job did not release the hold within 10 s");
    assert_balance(wc_balance(&wc, "m1"), 500, 0, 0);
    wc_assert_ledger_clean(&wc);
}

Test(wallet_ledger, spending_order_soonest_expiry_then_principal) {
    /* Goal: holds take the soonest-expiring money first, principal before bonus on the same
     * expiry, never-expiring money last; a partial capture keeps that order. */
    start("order", NULL);
    Loyalty__V1__WalletTopUpPlan *short_plan = NULL;
    Loyalty__V1__WalletTopUpPlan *long_plan = NULL;
    assert_status(wc_create_plan(&wc, "1 month", 1000, 100, 1, &short_plan), STATUS_OK, "");
    assert_status(wc_create_plan(&wc, "6 months", 2000, 300, 6, &long_plan), STATUS_OK, "");
    Loyalty__V1__WalletTopUpResponse *forever = top_up("m1", 500, NULL);
    Loyalty__V1__WalletTopUpResponse *late = top_up("m1", 2000, long_plan->id);
    Loyalty__V1__WalletTopUpResponse *soon = top_up("m1", 1000, short_plan->id);
    assert_balance(soon->balance, 3500, 400, 0);
    cr_assert(soon->top_up->expires_at < late->top_up->expires_at);
    cr_assert_eq(soon->balance->next_expiry_at, soon->top_up->expires_at);
    cr_assert_eq(soon->balance->expiring_soon_cents, 0, "1 month is more than 30 days away");

    Loyalty__V1__WalletHoldResponse *h = hold("m1", 3450, "order-1");
    cr_assert_eq(h->hold->n_allocations, 5);
    const char *want_lots[] = {soon->top_up->principal_lot_id, soon->top_up->bonus_lot_id,
                               late->top_up->principal_lot_id, late->top_up->bonus_lot_id,
                               forever->top_up->principal_lot_id};
    const int64_t want_amounts[] = {1000, 100, 2000, 300, 50};
    for (int i = 0; i < 5; i++) {
        cr_assert_str_eq(h->hold->allocations[i]->lot_id, want_lots[i], "allocation %d", i);
        cr_assert_eq(h->hold->allocations[i]->amount_cents, want_amounts[i], "allocation %d", i);
    }
    assert_balance(h->balance, 450, 0, 3450);
    /* Capturing 1050 takes the first reserved lots: 1000 principal then 50 bonus. */
    Loyalty__V1__WalletCaptureHoldResponse *c = capture(h->hold->id, 1050);
    cr_assert_eq(c->captured_principal_cents, 1000);
    cr_assert_eq(c->captured_bonus_cents, 50);
    cr_assert_eq(c->n_allocations, 2);
    cr_assert_str_eq(c->allocations[1]->lot_id, soon->top_up->bonus_lot_id);
    assert_balance(c->balance, 2500, 350, 0);
    wc_assert_ledger_clean(&wc);
}

Test(wallet_ledger, deposit_expiry_keeps_newer_deposit) {
    /* Goal: an old deposit lapses into breakage while a newer one remains; held money lapses
     * only when its hold is released; the report shows the breakage, also for the period. */
    start("expiry", NULL);
    wc_set_expiry(&wc, 1, "Asia/Singapore");
    Loyalty__V1__WalletTopUpPlan *plan = NULL;
    assert_status(wc_create_plan(&wc, "Year", 2000, 200, 12, &plan), STATUS_OK, "");
    Loyalty__V1__WalletTopUpResponse *old = top_up("m1", 1000, NULL);
    Loyalty__V1__WalletTopUpResponse *newer = top_up("m1", 2000, plan->id);
    top_up("m2", 300, NULL);
    int64_t now = (int64_t)time(NULL);
    cr_assert(old->top_up->expires_at > now + 27 * 86400 &&
              old->top_up->expires_at <= now + 32 * 86400);
    /* It lapses at a local midnight in Singapore (UTC+8): 16:00 UTC. */
    cr_assert_eq(old->top_up->expires_at % 86400, 16 * 3600);
    Loyalty__V1__WalletBalance *b = wc_balance(&wc, "m1");
    cr_assert_eq(b->next_expiry_at, old->top_up->expires_at);
    cr_assert_eq(b->expiring_soon_cents,
                 1000 * (old->top_up->expires_at < b->expiring_soon_until_at));

    /* m1 holds 400 of the old deposit before it lapses. */
    Loyalty__V1__WalletHoldResponse *h = hold("m1", 400, "order-1");
    cr_assert_str_eq(h->hold->allocations[0]->lot_id, old->top_up->principal_lot_id);

    Loyalty__V1__WalletExpireDepositsResponse *ex = NULL;
    assert_status(wc_expire(&wc, now + 40 * 86400, &ex), STATUS_OK, "");
    cr_assert_eq(ex->members_processed, 2);
    cr_assert_eq(ex->lots_expired, 2);
    cr_assert_eq(ex->principal_expired_cents, 600 + 300);
    cr_assert_eq(ex->bonus_expired_cents, 0);
    cr_assert_not(ex->more);
    assert_status(wc_expire(&wc, now + 40 * 86400, &ex), STATUS_OK, "");
    cr_assert_eq(ex->lots_expired, 0, "a second run finds nothing");

    assert_balance(wc_balance(&wc, "m1"), 2000, 200, 400);
    assert_balance(wc_balance(&wc, "m2"), 0, 0, 0);
    Loyalty__V1__WalletListLotsResponse *lots = wc_lots(&wc, "m1", true);
    cr_assert_eq(lots->n_lots, 3);
    cr_assert_str_eq(lots->lots[0]->id, old->top_up->principal_lot_id);
    cr_assert_eq(lots->lots[0]->available_cents, 0);
    cr_assert_eq(lots->lots[0]->held_cents, 400);
    cr_assert_eq(lots->lots[0]->debited_cents, 600);
    cr_assert_str_eq(lots->lots[1]->id, newer->top_up->principal_lot_id);
    cr_assert_eq(lots->lots[1]->available_cents, 2000);

    Loyalty__V1__WalletReport *rep = wc_report(&wc, "", "");
    cr_assert_eq(rep->breakage_principal_cents, 900);
    cr_assert_eq(rep->liability_principal_cents, 2400);
    cr_assert_eq(rep->liability_bonus_cents, 200);
    cr_assert_eq(rep->held_principal_cents, 400);
    /* Breakage is recognised now (the job ran with a later "now", but writes today). */
    char today[16], tomorrow[16];
    time_t t = time(NULL) + 8 * 3600;
    strftime(today, sizeof today, "%Y-%m-%d", gmtime(&t));
    t += 86400;
    strftime(tomorrow, sizeof tomorrow, "%Y-%m-%d", gmtime(&t));
    rep = wc_report(&wc, today, tomorrow);
    cr_assert_eq(rep->period_breakage_principal_cents, 900);
    rep = wc_report(&wc, "2020-01-01", "2020-02-01");
    cr_assert_eq(rep->period_breakage_principal_cents, 0);
    wc_assert_ledger_clean(&wc);
}

Test(wallet_ledger, lapsed_money_expires_lazily_and_refunds_get_grace) {
    /* Goal: money whose expiry has passed is never spent, even before the job runs; a refund
     * whose original lot has lapsed lands in a new REFUND lot lapsing refund_grace_days later. */
    start("lazy", NULL);
    wc_set_expiry(&wc, 1, NULL);
    Loyalty__V1__WalletTopUpResponse *t = top_up("m1", 1000, NULL);
    capture(hold("m1", 300, "order-1")->hold->id, 300);
    /* Move the deposit's expiry into the past (time travel; no balance changes), and tell the
     * wallet, as the clock passing its next_due_at would. */
    sql("UPDATE wallet.lots SET expires_at = now() - interval '1 hour' WHERE id = $1",
        t->top_up->principal_lot_id);
    sql("UPDATE wallet.top_ups SET expires_at = now() - interval '1 hour' WHERE id = $1",
        t->top_up->id);
    sql("UPDATE wallet.accounts SET next_due_at = extract(epoch FROM now())::bigint - 3600 "
        "WHERE merchant_id = $1 AND member_id = 'm1'",
        wc.merchant);
    assert_status(wc_hold(&wc, harness_key(), "m1", 1, "order-2", 0, NULL),
                  STATUS_FAILED_PRECONDITION, "INSUFFICIENT_FUNDS");
    assert_balance(wc_balance(&wc, "m1"), 0, 0, 0);
    cr_assert_eq(wc_get_top_up(&wc, t->top_up->payment_ref)->refundable_cents, 0);

    Loyalty__V1__WalletRefundResponse *rf = NULL;
    assert_status(wc_refund(&wc, harness_key(), "order-1", 100, &rf), STATUS_OK, "");
    cr_assert_eq(rf->n_allocations, 1);
    cr_assert_str_neq(rf->allocations[0]->lot_id, t->top_up->principal_lot_id);
    int64_t now = (int64_t)time(NULL);
    cr_assert(rf->allocations[0]->expires_at >= now + 30 * 86400 - 5 &&
              rf->allocations[0]->expires_at <= now + 30 * 86400 + 5);
    assert_balance(rf->balance, 100, 0, 0);
    cr_assert_eq(rf->balance->expiring_soon_cents, 0);
    Loyalty__V1__WalletListLotsResponse *lots = wc_lots(&wc, "m1", false);
    cr_assert_eq(lots->n_lots, 1);
    cr_assert_eq(lots->lots[0]->origin, LOYALTY__V1__WALLET_LOT_ORIGIN__WALLET_LOT_ORIGIN_REFUND);
    Loyalty__V1__WalletReport *rep = wc_report(&wc, "", "");
    cr_assert_eq(rep->breakage_principal_cents, 700);
    wc_assert_ledger_clean(&wc);
}

Test(wallet_ledger, refund_top_up_forfeits_bonus_pro_rata) {
    /* Goal: RefundTopUp gives back unspent principal and forfeits ceil(B*R/P) of bonus
     * cumulatively; it refuses spent principal and refunds whose forfeit the remaining bonus
     * cannot cover (at, and one above, the boundary). */
    start("rtu", NULL);
    Loyalty__V1__WalletTopUpPlan *plan = NULL;
    assert_status(wc_create_plan(&wc, "P", 1000, 100, -1, &plan), STATUS_OK, "");
    Loyalty__V1__WalletTopUpResponse *t = NULL;
    assert_status(wc_top_up(&wc, harness_key(), "m1", 1000, plan->id, "psp-9", &t), STATUS_OK, "");
    capture(hold("m1", 300, "order-1")->hold->id, 300);
    cr_assert_eq(wc_get_top_up(&wc, "psp-9")->refundable_cents, 700);

    assert_status(wc_refund_top_up(&wc, harness_key(), "psp-9", 701, NULL),
                  STATUS_FAILED_PRECONDITION, "TOP_UP_FUNDS_SPENT");
    Loyalty__V1__WalletRefundTopUpResponse *r = NULL;
    assert_status(wc_refund_top_up(&wc, harness_key(), "psp-9", 505, &r), STATUS_OK, "");
    cr_assert_eq(r->refunded_cents, 505);
    cr_assert_eq(r->bonus_forfeited_cents, 51, "ceil(100 * 505 / 1000)");
    cr_assert_eq(r->top_up->refunded_cents, 505);
    cr_assert_eq(r->top_up->refundable_cents, 195);
    assert_balance(r->balance, 195, 49, 0);
    assert_status(wc_refund_top_up(&wc, harness_key(), "psp-9", 195, &r), STATUS_OK, "");
    cr_assert_eq(r->bonus_forfeited_cents, 19, "ceil(70) - ceil(50.5)");
    cr_assert_eq(r->top_up->bonus_forfeited_cents, 70);
    assert_balance(r->balance, 0, 30, 0);
    assert_status(wc_refund_top_up(&wc, harness_key(), "psp-9", 1, NULL),
                  STATUS_FAILED_PRECONDITION, "TOP_UP_FUNDS_SPENT");
    /* The 300 captured and the 30 bonus left: 30 is the bonus earned by 300 of spend. */
    assert_status(wc_refund_top_up(&wc, harness_key(), "psp-404", 1, NULL), STATUS_NOT_FOUND,
                  "TOP_UP_NOT_FOUND");

    /* Spent bonus blocks the forfeit: spend all 1100 of a second top-up, refund 100 of the
     * purchase (pro rata: 91 principal, 9 bonus), then try to refund the principal. */
    assert_status(wc_top_up(&wc, harness_key(), "m2", 1000, plan->id, "psp-10", NULL), STATUS_OK,
                  "");
    capture(hold("m2", 1100, "order-2")->hold->id, 1100);
    Loyalty__V1__WalletRefundResponse *rf = NULL;
    assert_status(wc_refund(&wc, harness_key(), "order-2", 100, &rf), STATUS_OK, "");
    cr_assert_eq(rf->principal_cents, 91);
    cr_assert_eq(rf->bonus_cents, 9);
    cr_assert_eq(wc_get_top_up(&wc, "psp-10")->refundable_cents, 90);
    assert_status(wc_refund_top_up(&wc, harness_key(), "psp-10", 91, NULL),
                  STATUS_FAILED_PRECONDITION, "TOP_UP_BONUS_SPENT");
    assert_status(wc_refund_top_up(&wc, harness_key(), "psp-10", 90, &r), STATUS_OK, "");
    cr_assert_eq(r->bonus_forfeited_cents, 9);
    assert_balance(r->balance, 1, 0, 0);
    assert_status(wc_refund_top_up(&wc, harness_key(), "psp-10", 911, NULL),
                  STATUS_FAILED_PRECONDITION, "REFUND_EXCEEDS_TOP_UP");

    Loyalty__V1__WalletReport *rep = wc_report(&wc, "", "");
    cr_assert_eq(rep->top_up_refunded_cents, 700 + 90);
    cr_assert_eq(rep->bonus_forfeited_cents, 70 + 9);
    cr_assert_eq(rep->liability_principal_cents, 1);
    cr_assert_eq(rep->liability_bonus_cents, 30);
    wc_assert_ledger_clean(&wc);
}

Test(wallet_ledger, verify_ledger_reports_tampering) {
    /* Goal: VerifyLedger is not a rubber stamp: a balance changed behind the ledger's back, an
     * unbalanced posting and a lot changed directly are each reported. */
    start("tamper", NULL);
    top_up("m1", 1000, NULL);
    capture(hold("m1", 100, "order-1")->hold->id, 60);
    wc_assert_ledger_clean(&wc);
    sql("UPDATE wallet.accounts SET credits_posted = credits_posted + 5 "
        "WHERE merchant_id = $1 AND member_id = 'm1' AND code = 1",
        wc.merchant);
    Loyalty__V1__WalletVerifyLedgerResponse *v = wc_verify(&wc);
    cr_assert_not(v->ok);
    bool account = false, member_lots = false, control = false;
    for (size_t i = 0; i < v->n_differences; i++) {
        const Loyalty__V1__WalletLedgerDifference *d = v->differences[i];
        if (strcmp(d->check, "ACCOUNT_BALANCE") == 0 && strcmp(d->subject, "m1/1") == 0) {
            account = d->expected_cents == 1000 && d->actual_cents == 1005;
        }
        member_lots |= strcmp(d->check, "MEMBER_LOTS") == 0;
        control |= strcmp(d->check, "CONTROL_TOTAL") == 0;
    }
    cr_assert(account && member_lots && control);
    sql("UPDATE wallet.accounts SET credits_posted = credits_posted - 5 "
        "WHERE merchant_id = $1 AND member_id = 'm1' AND code = 1",
        wc.merchant);
    wc_assert_ledger_clean(&wc);
    sql("UPDATE wallet.postings SET credit_cents = credit_cents + 1 WHERE merchant_id = $1 "
        "AND code = 12 AND NOT pending",
        wc.merchant);
    v = wc_verify(&wc);
    cr_assert_not(v->ok);
    cr_assert_str_eq(v->differences[0]->check, "TRANSFER_UNBALANCED");
    sql("UPDATE wallet.postings SET credit_cents = credit_cents - 1 WHERE merchant_id = $1 "
        "AND code = 12 AND NOT pending",
        wc.merchant);
    wc_assert_ledger_clean(&wc);

    /* A wallet that would not know its hold's TTL has passed. */
    hold("m1", 10, "order-2");
    sql("UPDATE wallet.accounts SET next_due_at = 9223372036854775807 "
        "WHERE merchant_id = $1 AND member_id = 'm1'",
        wc.merchant);
    v = wc_verify(&wc);
    cr_assert_not(v->ok);
    cr_assert_str_eq(v->differences[0]->check, "NEXT_DUE");
    cr_assert_str_eq(v->differences[0]->subject, "m1");
}
