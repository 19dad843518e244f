/* wallet_ops.c -- wallet operations as ledger transactions (see wallet_ops.h). */
#include "wallet_ops.h"

#include "ids.h"
#include "log.h"
#include "wallet_rules.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define JOB_BATCH 200

wallet_env_t wallet_env_from(const rpc_ctx_t *ctx) {
    return (wallet_env_t){
        .db = ctx->db, .arena = ctx->arena, .merchant_id = ctx->merchant_id, .now = ctx->now_s};
}

static Loyalty__V1__WalletMoneyKind money_kind(int code) {
    return code == WALLET_ACC_PRINCIPAL
               ? LOYALTY__V1__WALLET_MONEY_KIND__WALLET_MONEY_KIND_PRINCIPAL
               : LOYALTY__V1__WALLET_MONEY_KIND__WALLET_MONEY_KIND_BONUS;
}

static Loyalty__V1__WalletAllocation *allocation(arena_t *a, const wallet_lot_t *lot,
                                                 int64_t amount_cents) {
    Loyalty__V1__WalletAllocation *al = arena_alloc(a, sizeof *al);
    loyalty__v1__wallet_allocation__init(al);
    al->lot_id = lot->id;
    al->kind = money_kind(lot->code);
    al->amount_cents = amount_cents;
    al->expires_at = lot->expires_at;
    return al;
}

static bool lot_lapsed(const wallet_lot_t *lot, int64_t now) {
    return lot->expires_at != 0 && lot->expires_at <= now;
}

/* ---- settling: holds past their TTL, lapsed deposits ---- */

/* Releases every reserved part of a pending hold into a transfer of `kind` (VOID or
 * HOLD_EXPIRY) and gives the hold its final state. */
static status_t release_hold(const wallet_env_t *e, wallet_tx_t *tx, wallet_member_t *m,
                             wallet_hold_row_t *h, const wallet_hold_part_t *parts, int n, int kind,
                             int final_state) {
    assert(h->state == WALLET_HOLD_PENDING);
    wallet_xfer_t *x = wallet_xfer_begin(tx, kind, m);
    x->hold_id = h->id;
    x->reference = h->reference;
    for (int i = 0; i < n; i++) {
        wallet_release_pending(tx, m, parts[i].lot->code, parts[i].lot,
                               wallet_redeemed_code(parts[i].lot->code), parts[i].amount_cents);
    }
    wallet_xfer_end(tx, -h->amount_cents);
    h->state = final_state;
    h->updated_at = e->now;
    return wallet_store_hold_update(e->db, e->merchant_id, h);
}

static status_t settle_holds(const wallet_env_t *e, wallet_tx_t *tx, wallet_member_t *m) {
    wallet_hold_row_t *holds = NULL;
    int n = 0;
    status_t st =
        wallet_store_holds_due(e->db, tx->arena, e->merchant_id, m->member_id, e->now, &holds, &n);
    for (int i = 0; i < n && status_is_ok(&st); i++) {
        wallet_hold_row_t h;
        wallet_hold_part_t *parts = NULL;
        int n_parts = 0;
        st = wallet_store_hold_load(e->db, tx, e->merchant_id, holds[i].id, &h, &parts, &n_parts);
        if (status_is_ok(&st)) {
            st = release_hold(e, tx, m, &h, parts, n_parts, WALLET_XFER_HOLD_EXPIRY,
                              WALLET_HOLD_EXPIRED);
        }
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    /* Released money may sit in lapsed lots: write it before looking for them. */
    return wallet_store_flush(e->db, e->merchant_id, tx);
}

/* Moves what is left in lapsed lots to breakage, as one transfer; *cents gets the amounts by
 * kind ([0] principal, [1] bonus) when not NULL. */
static status_t expire_lots(const wallet_env_t *e, wallet_tx_t *tx, wallet_member_t *m, int64_t now,
                            int *lots_expired, int64_t cents[2]) {
    wallet_lot_t **lots = NULL;
    int n = 0;
    status_t st = wallet_store_lots_lapsed(e->db, tx, e->merchant_id, m, now, &lots, &n);
    if (!status_is_ok(&st) || n == 0) {
        return st;
    }
    wallet_xfer_begin(tx, WALLET_XFER_DEPOSIT_EXPIRY, m);
    int64_t by_kind[2] = {0, 0};
    for (int i = 0; i < n; i++) {
        int64_t avail = wallet_lot_available(lots[i]);
        if (avail <= 0) {
            continue;
        }
        wallet_post_member(tx, m, lots[i]->code, lots[i], true, false, avail);
        by_kind[lots[i]->code == WALLET_ACC_PRINCIPAL ? 0 : 1] += avail;
        if (lots_expired) {
            (*lots_expired)++;
        }
    }
    for (int k = 0; k < 2; k++) {
        int code = k == 0 ? WALLET_ACC_PRINCIPAL : WALLET_ACC_BONUS;
        if (by_kind[k] > 0) {
            wallet_post_merchant(tx, m, wallet_breakage_code(code), false, false, by_kind[k]);
        }
        if (cents) {
            cents[k] += by_kind[k];
        }
    }
    wallet_xfer_end(tx, 0);
    return status_ok();
}

/* Settles a locked wallet when its next_due_at has passed (or always, with force): releases
 * holds past their TTL, expires lapsed lots, then computes next_due_at afresh. */
static status_t settle(const wallet_env_t *e, wallet_tx_t *tx, wallet_member_t *m, bool force) {
    if (!m->exists || (!force && m->next_due_at > e->now)) {
        return status_ok();
    }
    status_t st = settle_holds(e, tx, m);
    if (status_is_ok(&st)) {
        st = expire_lots(e, tx, m, e->now, NULL, NULL);
    }
    if (status_is_ok(&st)) {
        st = wallet_store_flush(e->db, e->merchant_id, tx);
    }
    if (status_is_ok(&st)) {
        st = wallet_store_next_due(e->db, e->merchant_id, m->member_id, &m->next_due_at);
    }
    return st;
}

/* Locks a member's wallet for this transaction and settles it. */
static status_t open_wallet(const wallet_env_t *e, wallet_tx_t *tx, const char *member_id,
                            bool create, wallet_member_t **out) {
    status_t st = status_ok();
    if (create) {
        st = wallet_store_member_ensure(e->db, e->merchant_id, member_id);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    wallet_member_t *m = wallet_tx_member(tx, member_id);
    bool locked = false;
    st = wallet_store_member_lock(e->db, e->merchant_id, m, false, &locked);
    if (status_is_ok(&st)) {
        st = settle(e, tx, m, false);
    }
    *out = m;
    return st;
}

/* The balance as responses show it, from the member's accounts and the expiring figures. */
static Loyalty__V1__WalletBalance *balance_message(const wallet_env_t *e, const wallet_member_t *m,
                                                   int64_t soon_cents, int64_t next_at) {
    Loyalty__V1__WalletBalance *b = arena_alloc(e->arena, sizeof *b);
    loyalty__v1__wallet_balance__init(b);
    b->member_id = arena_strdup(e->arena, m->member_id);
    b->principal_available_cents = wallet_account_available(&m->acc[0]);
    b->bonus_available_cents = wallet_account_available(&m->acc[1]);
    b->available_cents = b->principal_available_cents + b->bonus_available_cents;
    b->held_cents = wallet_member_held(m);
    b->expiring_soon_until_at = e->now + WALLET_EXPIRING_SOON_S;
    b->expiring_soon_cents = soon_cents;
    b->next_expiry_at = next_at;
    b->as_of_at = e->now;
    return b;
}

/* Writes the transaction (wallet_store_finish) and builds m's balance for the response
 * (balance may be NULL when the response has none; without the expiring figures, zero, when
 * the caller said it does not show them: a query fewer). */
static status_t finish_balance(const wallet_env_t *e, wallet_tx_t *tx, const wallet_member_t *m,
                               Loyalty__V1__WalletBalance **balance, bool omit_expiring) {
    wallet_expiring_t ex = {.member_id = m->member_id, .until = e->now + WALLET_EXPIRING_SOON_S};
    bool expiring = balance != NULL && !omit_expiring;
    status_t st = wallet_store_finish(e->db, e->merchant_id, tx, expiring ? &ex : NULL);
    if (status_is_ok(&st) && balance) {
        *balance = balance_message(e, m, expiring ? ex.cents : 0, expiring ? ex.next_at : 0);
    }
    return st;
}

static status_t finish(const wallet_env_t *e, wallet_tx_t *tx, const wallet_member_t *m,
                       Loyalty__V1__WalletBalance **balance) {
    return finish_balance(e, tx, m, balance, false);
}

typedef struct settle_call {
    const wallet_env_t *env;
    const char *member_id;
    Loyalty__V1__WalletBalance **balance;
} settle_call_t;

static status_t settle_in_tx(db_t *db, void *arg) {
    settle_call_t *c = arg;
    (void)db;
    wallet_tx_t tx;
    wallet_tx_init(&tx, c->env->arena, c->env->now);
    wallet_member_t *m = NULL;
    status_t st = open_wallet(c->env, &tx, c->member_id, false, &m);
    if (status_is_ok(&st)) {
        st = finish(c->env, &tx, m, c->balance);
    }
    return st;
}

status_t wallet_op_get_balance(const wallet_env_t *e, const char *member_id,
                               Loyalty__V1__WalletBalance **out) {
    wallet_tx_t tx; /* for the member record only */
    wallet_tx_init(&tx, e->arena, e->now);
    wallet_member_t *m = wallet_tx_member(&tx, member_id);
    int64_t soon = 0;
    int64_t next = 0;
    bool due = false;
    status_t st = wallet_store_balance_snapshot(
        e->db, e->merchant_id, m, e->now, e->now + WALLET_EXPIRING_SOON_S, &soon, &next, &due);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (due) {
        /* Rare: a hold passed its TTL or a deposit lapsed since the wallet was last touched.
         * Settle it in a transaction of its own, then answer as every write does. */
        settle_call_t c = {.env = e, .member_id = member_id, .balance = out};
        return db_tx(e->db, settle_in_tx, &c);
    }
    *out = balance_message(e, m, soon, next);
    return status_ok();
}

static status_t check_balance_limit(const wallet_member_t *m, int64_t credit) {
    if (wallet_member_balance(m) > WALLET_BALANCE_MAX - credit) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_BALANCE_LIMIT_EXCEEDED,
                           "the wallet would hold more than %lld cents",
                           (long long)WALLET_BALANCE_MAX);
    }
    return status_ok();
}

/* ---- top-ups ---- */

static Loyalty__V1__WalletTopUp *top_up_message(arena_t *a, const wallet_top_up_row_t *t,
                                                int64_t refundable) {
    Loyalty__V1__WalletTopUp *m = arena_alloc(a, sizeof *m);
    loyalty__v1__wallet_top_up__init(m);
    m->id = t->id;
    m->member_id = t->member_id;
    m->payment_ref = t->payment_ref;
    m->plan_id = t->plan_id;
    m->paid_cents = t->paid;
    m->bonus_cents = t->bonus;
    m->principal_lot_id = t->principal_lot_id;
    m->bonus_lot_id = t->bonus_lot_id;
    m->expires_at = t->expires_at;
    m->refunded_cents = t->refunded;
    m->bonus_forfeited_cents = t->forfeited;
    m->refundable_cents = refundable;
    m->transfer_id = t->transfer_id;
    m->created_at = t->created_at;
    return m;
}

/* What RefundTopUp would accept now, from the top-up's lots as the transaction sees them. */
static status_t top_up_refundable(const wallet_env_t *e, wallet_tx_t *tx,
                                  const wallet_top_up_row_t *t, wallet_lot_t **principal,
                                  wallet_lot_t **bonus, int64_t *refundable) {
    *bonus = NULL;
    status_t st = wallet_store_lot(e->db, tx, e->merchant_id, t->principal_lot_id, principal);
    if (status_is_ok(&st) && t->bonus_lot_id[0]) {
        st = wallet_store_lot(e->db, tx, e->merchant_id, t->bonus_lot_id, bonus);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    /* Lapsed money is gone even before the expiry job has moved it. */
    int64_t p_avail = lot_lapsed(*principal, e->now) ? 0 : wallet_lot_available(*principal);
    int64_t b_avail = 0;
    if (*bonus != NULL && !lot_lapsed(*bonus, e->now)) {
        b_avail = wallet_lot_available(*bonus);
    }
    *refundable = wallet_top_up_refundable(t->paid, t->bonus, t->refunded, p_avail, b_avail);
    return status_ok();
}

/* The instant a deposit made now lapses: 0 when it never does. */
static status_t deposit_expiry(const wallet_env_t *e, const wallet_settings_t *s, int months,
                               int64_t *expires_at) {
    *expires_at = 0;
    if (months == 0) {
        return status_ok();
    }
    int64_t last_day = wallet_expiry_last_day(s->local_day, months);
    return wallet_store_local_midnight(e->db, s->time_zone, last_day + 1, expires_at);
}

/* The bonus and validity a top-up gets from its plan (or the merchant's default). */
static status_t top_up_terms(const wallet_env_t *e, const Loyalty__V1__WalletTopUpRequest *req,
                             const wallet_settings_t *s, int64_t *bonus, int *months) {
    *bonus = 0;
    *months = s->deposit_expiry_months;
    if (req->plan_id[0] == '\0') {
        return status_ok();
    }
    Loyalty__V1__WalletTopUpPlan *plan = NULL;
    status_t st =
        wallet_store_plan_get(e->db, e->arena, e->merchant_id, req->plan_id, false, &plan);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (!wallet_plan_active(plan->enabled, plan->active_from_at, plan->active_until_at, e->now)) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_PLAN_NOT_ACTIVE,
                           "top-up plan is disabled or outside its active window");
    }
    if (plan->pay_cents != req->paid_cents) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_PLAN_AMOUNT_MISMATCH,
                           "the plan takes exactly %lld cents, not %lld",
                           (long long)plan->pay_cents, (long long)req->paid_cents);
    }
    *bonus = plan->bonus_cents;
    if (plan->_expiry_months_case ==
        LOYALTY__V1__WALLET_TOP_UP_PLAN___EXPIRY_MONTHS_EXPIRY_MONTHS) {
        *months = plan->expiry_months;
    }
    return status_ok();
}

status_t wallet_op_top_up(const wallet_env_t *e, const Loyalty__V1__WalletTopUpRequest *req,
                          Loyalty__V1__WalletTopUpResponse *resp) {
    wallet_settings_t s;
    status_t st = wallet_store_settings_get(e->db, e->arena, e->merchant_id, e->now, &s);
    int64_t bonus = 0;
    int months = 0;
    int64_t expires_at = 0;
    if (status_is_ok(&st)) {
        st = top_up_terms(e, req, &s, &bonus, &months);
    }
    if (status_is_ok(&st)) {
        st = deposit_expiry(e, &s, months, &expires_at);
    }
    wallet_tx_t tx;
    wallet_tx_init(&tx, e->arena, e->now);
    wallet_member_t *m = NULL;
    if (status_is_ok(&st)) {
        st = open_wallet(e, &tx, req->member_id, true, &m);
    }
    if (status_is_ok(&st)) {
        st = check_balance_limit(m, req->paid_cents + bonus);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    char id[ID_MAX];
    id_generate("top", id);
    wallet_top_up_row_t *t = arena_alloc(e->arena, sizeof *t);
    t->id = arena_strdup(e->arena, id);
    wallet_lot_t *p_lot =
        wallet_tx_new_lot(&tx, m, WALLET_ACC_PRINCIPAL, WALLET_ORIGIN_TOP_UP, t->id, expires_at);
    wallet_lot_t *b_lot = NULL;
    wallet_xfer_t *x = wallet_xfer_begin(&tx, WALLET_XFER_TOP_UP, m);
    x->top_up_id = t->id;
    x->payment_ref = req->payment_ref;
    wallet_post_merchant(&tx, m, WALLET_ACC_TOP_UP_FUNDING, true, false, req->paid_cents);
    wallet_post_member(&tx, m, WALLET_ACC_PRINCIPAL, p_lot, false, false, req->paid_cents);
    if (bonus > 0) {
        b_lot =
            wallet_tx_new_lot(&tx, m, WALLET_ACC_BONUS, WALLET_ORIGIN_TOP_UP, t->id, expires_at);
        wallet_post_merchant(&tx, m, WALLET_ACC_BONUS_EXPENSE, true, false, bonus);
        wallet_post_member(&tx, m, WALLET_ACC_BONUS, b_lot, false, false, bonus);
    }
    wallet_xfer_end(&tx, 0);
    *t = (wallet_top_up_row_t){
        .id = t->id,
        .member_id = (char *)m->member_id,
        .payment_ref = req->payment_ref,
        .plan_id = req->plan_id,
        .paid = req->paid_cents,
        .bonus = bonus,
        .principal_lot_id = p_lot->id,
        .bonus_lot_id = b_lot ? b_lot->id : "",
        .expires_at = expires_at,
        .transfer_id = x->id,
        .created_at = e->now,
    };
    st = wallet_store_top_up_insert(e->db, e->merchant_id, t);
    if (status_is_ok(&st)) {
        st = finish(e, &tx, m, &resp->balance);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    int64_t refundable = wallet_top_up_refundable(t->paid, t->bonus, 0, wallet_lot_available(p_lot),
                                                  b_lot ? wallet_lot_available(b_lot) : 0);
    resp->top_up = top_up_message(e->arena, t, lot_lapsed(p_lot, e->now) ? 0 : refundable);
    return status_ok();
}

status_t wallet_op_get_top_up(const wallet_env_t *e, const char *payment_ref,
                              Loyalty__V1__WalletTopUp **out) {
    wallet_top_up_row_t t;
    status_t st = wallet_store_top_up_get(e->db, e->arena, e->merchant_id, payment_ref, &t);
    if (!status_is_ok(&st)) {
        return st;
    }
    wallet_tx_t tx; /* only as the lots' cache: nothing is written */
    wallet_tx_init(&tx, e->arena, e->now);
    wallet_lot_t *p_lot = NULL;
    wallet_lot_t *b_lot = NULL;
    int64_t refundable = 0;
    st = top_up_refundable(e, &tx, &t, &p_lot, &b_lot, &refundable);
    if (!status_is_ok(&st)) {
        return st;
    }
    *out = top_up_message(e->arena, &t, refundable);
    return status_ok();
}

/* Refusals of RefundTopUp, checked against the top-up's lots. */
static status_t check_top_up_refund(const wallet_env_t *e, const wallet_top_up_row_t *t,
                                    const wallet_lot_t *p_lot, const wallet_lot_t *b_lot,
                                    int64_t amount_cents, int64_t *forfeit) {
    if (amount_cents > t->paid - t->refunded) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_REFUND_EXCEEDS_TOP_UP,
                           "only %lld of the %lld cents paid are left to refund",
                           (long long)(t->paid - t->refunded), (long long)t->paid);
    }
    int64_t p_avail = lot_lapsed(p_lot, e->now) ? 0 : wallet_lot_available(p_lot);
    if (amount_cents > p_avail) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_TOP_UP_FUNDS_SPENT,
                           "only %lld cents of this top-up are unspent, not held and not "
                           "expired",
                           (long long)p_avail);
    }
    if (!wallet_forfeit_cents(t->paid, t->bonus, t->refunded, amount_cents, forfeit)) {
        return status_make(STATUS_INTERNAL, REASON_LEDGER_INVARIANT, "inconsistent top-up figures");
    }
    int64_t b_avail = 0;
    if (b_lot != NULL && !lot_lapsed(b_lot, e->now)) {
        b_avail = wallet_lot_available(b_lot);
    }
    if (*forfeit > b_avail) {
        return status_make(
            STATUS_FAILED_PRECONDITION, REASON_TOP_UP_BONUS_SPENT,
            "refunding %lld cents forfeits %lld cents of bonus but only %lld are "
            "left; at most %lld cents can be refunded",
            (long long)amount_cents, (long long)*forfeit, (long long)b_avail,
            (long long)wallet_top_up_refundable(t->paid, t->bonus, t->refunded, p_avail, b_avail));
    }
    return status_ok();
}

status_t wallet_op_refund_top_up(const wallet_env_t *e,
                                 const Loyalty__V1__WalletRefundTopUpRequest *req,
                                 Loyalty__V1__WalletRefundTopUpResponse *resp) {
    wallet_top_up_row_t *t = arena_alloc(e->arena, sizeof *t);
    status_t st = wallet_store_top_up_get(e->db, e->arena, e->merchant_id, req->payment_ref, t);
    wallet_tx_t tx;
    wallet_tx_init(&tx, e->arena, e->now);
    wallet_member_t *m = NULL;
    if (status_is_ok(&st)) {
        st = open_wallet(e, &tx, t->member_id, false, &m);
    }
    if (status_is_ok(&st)) { /* again, now that the wallet is locked */
        st = wallet_store_top_up_get(e->db, e->arena, e->merchant_id, req->payment_ref, t);
    }
    wallet_lot_t *p_lot = NULL;
    wallet_lot_t *b_lot = NULL;
    int64_t refundable = 0;
    int64_t forfeit = 0;
    if (status_is_ok(&st)) {
        st = top_up_refundable(e, &tx, t, &p_lot, &b_lot, &refundable);
    }
    if (status_is_ok(&st)) {
        st = check_top_up_refund(e, t, p_lot, b_lot, req->amount_cents, &forfeit);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    wallet_xfer_t *x = wallet_xfer_begin(&tx, WALLET_XFER_TOP_UP_REFUND, m);
    x->top_up_id = t->id;
    x->payment_ref = t->payment_ref;
    wallet_post_member(&tx, m, WALLET_ACC_PRINCIPAL, p_lot, true, false, req->amount_cents);
    wallet_post_merchant(&tx, m, WALLET_ACC_TOP_UP_FUNDING, false, false, req->amount_cents);
    if (forfeit > 0) {
        wallet_post_member(&tx, m, WALLET_ACC_BONUS, b_lot, true, false, forfeit);
        wallet_post_merchant(&tx, m, WALLET_ACC_BONUS_EXPENSE, false, false, forfeit);
    }
    wallet_xfer_end(&tx, 0);
    t->refunded += req->amount_cents;
    t->forfeited += forfeit;
    st = wallet_store_top_up_update(e->db, e->merchant_id, t);
    if (status_is_ok(&st)) {
        st = finish(e, &tx, m, &resp->balance);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    st = top_up_refundable(e, &tx, t, &p_lot, &b_lot, &refundable);
    if (!status_is_ok(&st)) {
        return st;
    }
    resp->top_up = top_up_message(e->arena, t, refundable);
    resp->transfer_id = arena_strdup(e->arena, x->id);
    resp->refunded_cents = req->amount_cents;
    resp->bonus_forfeited_cents = forfeit;
    return status_ok();
}

/* ---- holds ---- */

static Loyalty__V1__WalletHold *hold_message(arena_t *a, const wallet_hold_row_t *h, int64_t now) {
    Loyalty__V1__WalletHold *m = arena_alloc(a, sizeof *m);
    loyalty__v1__wallet_hold__init(m);
    m->id = h->id;
    m->member_id = h->member_id;
    m->reference = h->reference;
    m->amount_cents = h->amount_cents;
    m->captured_cents = h->captured;
    m->state =
        (Loyalty__V1__WalletHoldState)wallet_hold_effective_state(h->state, h->expires_at, now);
    m->expires_at = h->expires_at;
    m->created_at = h->created_at;
    m->updated_at = h->updated_at;
    return m;
}

static status_t insufficient(const wallet_member_t *m, int64_t amount_cents) {
    return status_make(STATUS_FAILED_PRECONDITION, REASON_INSUFFICIENT_FUNDS,
                       "the wallet has %lld cents available, %lld asked",
                       (long long)wallet_member_available(m), (long long)amount_cents);
}

/* Reserves `amount` from the member's lots in spending order: pending debits of the member,
 * pending credits of REDEEMED_* (one line per kind). */
static status_t reserve(const wallet_env_t *e, wallet_tx_t *tx, wallet_member_t *m,
                        int64_t amount_cents, wallet_lot_t **lots, int n,
                        Loyalty__V1__WalletHold *hold) {
    int64_t *avail = arena_alloc(tx->arena, (size_t)(n + 1) * sizeof *avail);
    int64_t *parts = arena_alloc(tx->arena, (size_t)(n + 1) * sizeof *parts);
    for (int i = 0; i < n; i++) {
        avail[i] = wallet_lot_available(lots[i]);
    }
    if (!wallet_take_in_order(avail, n, amount_cents, parts)) {
        /* The accounts said enough, so either the per-operation lot limit cut the list short,
         * or part of the balance has lapsed and the wallet did not know yet (VerifyLedger
         * reports that as NEXT_DUE): lapsed money is never spent. */
        if (n == WALLET_LOTS_PER_OP_MAX) {
            return status_make(STATUS_RESOURCE_EXHAUSTED, REASON_HOLD_TOO_FRAGMENTED,
                               "the amount spans more than %d deposits", WALLET_LOTS_PER_OP_MAX);
        }
        return insufficient(m, amount_cents);
    }
    int64_t by_kind[2] = {0, 0};
    hold->allocations = arena_alloc(tx->arena, (size_t)(n + 1) * sizeof *hold->allocations);
    for (int i = 0; i < n; i++) {
        if (parts[i] == 0) {
            continue;
        }
        wallet_post_member(tx, m, lots[i]->code, lots[i], true, true, parts[i]);
        by_kind[lots[i]->code == WALLET_ACC_PRINCIPAL ? 0 : 1] += parts[i];
        hold->allocations[hold->n_allocations++] = allocation(tx->arena, lots[i], parts[i]);
    }
    for (int k = 0; k < 2; k++) {
        if (by_kind[k] > 0) {
            int code = k == 0 ? WALLET_ACC_PRINCIPAL : WALLET_ACC_BONUS;
            wallet_post_merchant(tx, m, wallet_redeemed_code(code), false, true, by_kind[k]);
        }
    }
    return status_ok();
}

status_t wallet_op_hold(const wallet_env_t *e, const Loyalty__V1__WalletHoldRequest *req,
                        int64_t ttl_s, Loyalty__V1__WalletHoldResponse *resp) {
    wallet_tx_t tx;
    wallet_tx_init(&tx, e->arena, e->now);
    /* The lock, the reference's claim and the lots to take: one round trip. A refusal below
     * rolls the claim back with the rest. */
    wallet_member_t *m = wallet_tx_member(&tx, req->member_id);
    char *owner = NULL;
    wallet_lot_t **lots = NULL;
    int n = 0;
    status_t st = wallet_store_hold_reads(e->db, &tx, e->merchant_id, m, req->reference,
                                          req->amount_cents, &owner, &lots, &n);
    bool due = m->exists && m->next_due_at <= e->now;
    if (status_is_ok(&st)) {
        st = settle(e, &tx, m, false);
    }
    if (status_is_ok(&st) && due) { /* settling moved the lots read with the lock */
        st = wallet_store_lots_spendable(e->db, &tx, e->merchant_id, m, req->amount_cents, &lots,
                                         &n);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    if (wallet_member_available(m) < req->amount_cents) {
        return insufficient(m, req->amount_cents);
    }
    if (owner == NULL) { /* the reference was claimed before: by whom */
        int64_t captured = 0, refunded = 0;
        st = wallet_store_spend_get(e->db, e->arena, e->merchant_id, req->reference, &owner,
                                    &captured, &refunded);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    if (strcmp(owner, m->member_id) != 0) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_REFERENCE_MEMBER_MISMATCH,
                           "reference already used for another member's wallet");
    }
    char id[ID_MAX];
    id_generate("hld", id);
    wallet_hold_row_t h = {
        .id = arena_strdup(e->arena, id),
        .member_id = (char *)m->member_id,
        .reference = req->reference,
        .amount_cents = req->amount_cents,
        .state = WALLET_HOLD_PENDING,
        .expires_at = e->now + ttl_s,
        .created_at = e->now,
        .updated_at = e->now,
    };
    resp->hold = hold_message(e->arena, &h, e->now);
    wallet_xfer_t *x = wallet_xfer_begin(&tx, WALLET_XFER_HOLD, m);
    x->hold_id = h.id;
    x->reference = h.reference;
    st = reserve(e, &tx, m, req->amount_cents, lots, n, resp->hold);
    if (!status_is_ok(&st)) {
        return st;
    }
    wallet_xfer_end(&tx, req->amount_cents);
    wallet_member_due(m, h.expires_at);
    h.transfer_id = x->id;
    st = wallet_store_hold_insert(e->db, e->merchant_id, &h);
    if (status_is_ok(&st)) {
        st = finish_balance(e, &tx, m, &resp->balance, req->omit_expiring);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    return status_ok();
}

/* The hold as the API shows it, its allocations taken from its reserved parts. */
static Loyalty__V1__WalletHold *hold_with_parts(arena_t *a, const wallet_hold_row_t *h,
                                                const wallet_hold_part_t *parts, int n,
                                                int64_t now) {
    Loyalty__V1__WalletHold *m = hold_message(a, h, now);
    m->allocations = arena_alloc(a, (size_t)(n + 1) * sizeof *m->allocations);
    for (int i = 0; i < n; i++) {
        m->allocations[m->n_allocations++] = allocation(a, parts[i].lot, parts[i].amount_cents);
    }
    return m;
}

status_t wallet_op_get_hold(const wallet_env_t *e, const char *hold_id,
                            Loyalty__V1__WalletHold **out) {
    wallet_tx_t tx; /* only as the lots' cache: nothing is written */
    wallet_tx_init(&tx, e->arena, e->now);
    wallet_hold_row_t h;
    wallet_hold_part_t *parts = NULL;
    int n = 0;
    status_t st = wallet_store_hold_load(e->db, &tx, e->merchant_id, hold_id, &h, &parts, &n);
    if (status_is_ok(&st)) {
        *out = hold_with_parts(e->arena, &h, parts, n, e->now);
    }
    return st;
}

/* Locks the wallet a hold belongs to, settles it, then loads the hold with its parts. */
static status_t open_hold(const wallet_env_t *e, wallet_tx_t *tx, const char *hold_id,
                          wallet_hold_row_t *h, wallet_hold_part_t **parts, int *n,
                          wallet_member_t **m) {
    status_t st = wallet_store_hold_open(e->db, tx, e->merchant_id, hold_id, m, h, parts, n);
    bool due = status_is_ok(&st) && (*m)->exists && (*m)->next_due_at <= e->now;
    if (status_is_ok(&st)) {
        st = settle(e, tx, *m, false);
    }
    if (status_is_ok(&st) && due) { /* settling may have expired the hold read with the lock */
        st = wallet_store_hold_load(e->db, tx, e->merchant_id, hold_id, h, parts, n);
    }
    return st;
}

/* Posts `amount` of a pending hold, taking it from the reserved lots in the order they were
 * reserved (spending order), and releases the whole reservation. */
static status_t post_capture(const wallet_env_t *e, wallet_tx_t *tx, wallet_member_t *m,
                             const wallet_hold_row_t *h, const wallet_hold_part_t *parts, int n,
                             int64_t amount_cents, Loyalty__V1__WalletCaptureHoldResponse *resp) {
    int64_t *reserved = arena_alloc(tx->arena, (size_t)(n + 1) * sizeof *reserved);
    int64_t *taken = arena_alloc(tx->arena, (size_t)(n + 1) * sizeof *taken);
    for (int i = 0; i < n; i++) {
        reserved[i] = parts[i].amount_cents;
    }
    if (!wallet_take_in_order(reserved, n, amount_cents, taken)) {
        return status_make(STATUS_INTERNAL, REASON_LEDGER_INVARIANT, "hold parts below its amount");
    }
    wallet_xfer_t *x = wallet_xfer_begin(tx, WALLET_XFER_CAPTURE, m);
    x->hold_id = h->id;
    x->reference = h->reference;
    wallet_spend_part_t *spend = arena_alloc(tx->arena, (size_t)(n + 1) * sizeof *spend);
    int64_t *zero = arena_alloc(tx->arena, (size_t)(n + 1) * sizeof *zero);
    int64_t *captured = arena_alloc(tx->arena, (size_t)(n + 1) * sizeof *captured);
    int n_spend = 0;
    int64_t by_kind[2] = {0, 0};
    resp->allocations = arena_alloc(tx->arena, (size_t)(n + 1) * sizeof *resp->allocations);
    for (int i = 0; i < n; i++) {
        wallet_lot_t *lot = parts[i].lot;
        wallet_release_pending(tx, m, lot->code, lot, wallet_redeemed_code(lot->code),
                               parts[i].amount_cents);
        if (taken[i] == 0) {
            continue;
        }
        wallet_post_member(tx, m, lot->code, lot, true, false, taken[i]);
        by_kind[lot->code == WALLET_ACC_PRINCIPAL ? 0 : 1] += taken[i];
        spend[n_spend] = (wallet_spend_part_t){.lot = lot, .code = lot->code};
        captured[n_spend++] = taken[i];
        resp->allocations[resp->n_allocations++] = allocation(tx->arena, lot, taken[i]);
    }
    for (int k = 0; k < 2; k++) {
        if (by_kind[k] > 0) {
            int code = k == 0 ? WALLET_ACC_PRINCIPAL : WALLET_ACC_BONUS;
            wallet_post_merchant(tx, m, wallet_redeemed_code(code), false, false, by_kind[k]);
        }
    }
    wallet_xfer_end(tx, -h->amount_cents);
    resp->transfer_id = arena_strdup(e->arena, x->id);
    resp->captured_principal_cents = by_kind[0];
    resp->captured_bonus_cents = by_kind[1];
    resp->released_cents = h->amount_cents - amount_cents;
    return wallet_store_spend_add(e->db, e->merchant_id, h->reference, spend, captured, zero,
                                  n_spend);
}

status_t wallet_op_capture(const wallet_env_t *e, const Loyalty__V1__WalletCaptureHoldRequest *req,
                           Loyalty__V1__WalletCaptureHoldResponse *resp) {
    wallet_tx_t tx;
    wallet_tx_init(&tx, e->arena, e->now);
    wallet_hold_row_t h;
    wallet_hold_part_t *parts = NULL;
    int n = 0;
    wallet_member_t *m = NULL;
    status_t st = open_hold(e, &tx, req->hold_id, &h, &parts, &n, &m);
    if (status_is_ok(&st)) {
        st = wallet_check_capture(h.state, h.expires_at, e->now, h.amount_cents, req->amount_cents);
    }
    if (status_is_ok(&st)) {
        st = post_capture(e, &tx, m, &h, parts, n, req->amount_cents, resp);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    h.state = WALLET_HOLD_CAPTURED;
    h.captured = req->amount_cents;
    h.updated_at = e->now;
    st = wallet_store_hold_update(e->db, e->merchant_id, &h);
    if (status_is_ok(&st)) {
        st = finish_balance(e, &tx, m, &resp->balance, req->omit_expiring);
    }
    if (status_is_ok(&st)) {
        resp->hold = hold_with_parts(e->arena, &h, parts, n, e->now);
    }
    return st;
}

status_t wallet_op_void(const wallet_env_t *e, const Loyalty__V1__WalletVoidHoldRequest *req,
                        Loyalty__V1__WalletVoidHoldResponse *resp) {
    wallet_tx_t tx;
    wallet_tx_init(&tx, e->arena, e->now);
    wallet_hold_row_t h;
    wallet_hold_part_t *parts = NULL;
    int n = 0;
    wallet_member_t *m = NULL;
    status_t st = open_hold(e, &tx, req->hold_id, &h, &parts, &n, &m);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (h.state == WALLET_HOLD_CAPTURED) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_HOLD_ALREADY_CAPTURED,
                           "the hold was captured; refund it instead");
    }
    if (h.state == WALLET_HOLD_PENDING) {
        /* settle() released it already if its TTL had passed. */
        st = release_hold(e, &tx, m, &h, parts, n, WALLET_XFER_VOID, WALLET_HOLD_VOIDED);
        resp->released_cents = h.amount_cents;
    }
    if (status_is_ok(&st)) {
        st = finish(e, &tx, m, &resp->balance);
    }
    if (status_is_ok(&st)) {
        resp->hold = hold_with_parts(e->arena, &h, parts, n, e->now);
    }
    return st;
}

/* ---- refunds ---- */

/* The lot a refunded part goes back to: its own lot while it has not lapsed, else one new lot
 * per kind lapsing refund_grace_days from now. */
static wallet_lot_t *refund_target(const wallet_env_t *e, wallet_tx_t *tx, wallet_member_t *m,
                                   wallet_lot_t *original, int64_t grace_s,
                                   wallet_lot_t *fresh[2]) {
    if (!lot_lapsed(original, e->now)) {
        return original;
    }
    int k = original->code == WALLET_ACC_PRINCIPAL ? 0 : 1;
    if (fresh[k] == NULL) {
        fresh[k] =
            wallet_tx_new_lot(tx, m, original->code, WALLET_ORIGIN_REFUND, NULL, e->now + grace_s);
    }
    return fresh[k];
}

static status_t post_refund(const wallet_env_t *e, wallet_tx_t *tx, wallet_member_t *m,
                            const char *reference, int64_t amount_cents, int64_t grace_s,
                            Loyalty__V1__WalletRefundResponse *resp) {
    wallet_spend_part_t *parts = NULL;
    int n = 0;
    status_t st = wallet_store_spend_parts(e->db, tx, e->merchant_id, reference, &parts, &n);
    if (!status_is_ok(&st)) {
        return st;
    }
    int64_t *remaining = arena_alloc(tx->arena, (size_t)(n + 1) * sizeof *remaining);
    int64_t *share = arena_alloc(tx->arena, (size_t)(n + 1) * sizeof *share);
    int64_t *zero = arena_alloc(tx->arena, (size_t)(n + 1) * sizeof *zero);
    for (int i = 0; i < n; i++) {
        remaining[i] = parts[i].captured - parts[i].refunded;
    }
    if (!wallet_split_pro_rata(remaining, n, amount_cents, share)) {
        return status_make(STATUS_INTERNAL, REASON_LEDGER_INVARIANT,
                           "captures of the reference do not cover the refund");
    }
    wallet_xfer_t *x = wallet_xfer_begin(tx, WALLET_XFER_REFUND, m);
    x->reference = arena_strdup(tx->arena, reference);
    wallet_lot_t *fresh[2] = {NULL, NULL};
    int64_t by_kind[2] = {0, 0};
    resp->allocations = arena_alloc(tx->arena, (size_t)(n + 1) * sizeof *resp->allocations);
    for (int i = 0; i < n; i++) {
        if (share[i] == 0) {
            continue;
        }
        wallet_lot_t *target = refund_target(e, tx, m, parts[i].lot, grace_s, fresh);
        wallet_post_member(tx, m, target->code, target, false, false, share[i]);
        by_kind[target->code == WALLET_ACC_PRINCIPAL ? 0 : 1] += share[i];
        resp->allocations[resp->n_allocations++] = allocation(tx->arena, target, share[i]);
    }
    for (int k = 0; k < 2; k++) {
        if (by_kind[k] > 0) {
            int code = k == 0 ? WALLET_ACC_PRINCIPAL : WALLET_ACC_BONUS;
            wallet_post_merchant(tx, m, wallet_redeemed_code(code), true, false, by_kind[k]);
        }
    }
    wallet_xfer_end(tx, 0);
    resp->transfer_id = arena_strdup(e->arena, x->id);
    resp->principal_cents = by_kind[0];
    resp->bonus_cents = by_kind[1];
    return wallet_store_spend_add(e->db, e->merchant_id, reference, parts, zero, share, n);
}

status_t wallet_op_refund(const wallet_env_t *e, const Loyalty__V1__WalletRefundRequest *req,
                          Loyalty__V1__WalletRefundResponse *resp) {
    char *member_id = NULL;
    int64_t captured = 0;
    int64_t refunded = 0;
    status_t st = wallet_store_spend_get(e->db, e->arena, e->merchant_id, req->reference,
                                         &member_id, &captured, &refunded);
    wallet_settings_t s;
    if (status_is_ok(&st)) {
        st = wallet_store_settings_get(e->db, e->arena, e->merchant_id, e->now, &s);
    }
    wallet_tx_t tx;
    wallet_tx_init(&tx, e->arena, e->now);
    wallet_member_t *m = NULL;
    if (status_is_ok(&st)) {
        st = open_wallet(e, &tx, member_id, false, &m);
    }
    if (status_is_ok(&st)) { /* again, under the wallet's lock */
        st = wallet_store_spend_get(e->db, e->arena, e->merchant_id, req->reference, &member_id,
                                    &captured, &refunded);
    }
    if (status_is_ok(&st) && req->amount_cents > captured - refunded) {
        st =
            status_make(STATUS_FAILED_PRECONDITION, REASON_REFUND_EXCEEDS_CAPTURED,
                        "%lld cents were captured for the reference and %lld refunded; "
                        "at most %lld more can be refunded",
                        (long long)captured, (long long)refunded, (long long)(captured - refunded));
    }
    if (status_is_ok(&st)) {
        st = check_balance_limit(m, req->amount_cents);
    }
    if (status_is_ok(&st)) {
        st = post_refund(e, &tx, m, req->reference, req->amount_cents,
                         (int64_t)s.refund_grace_days * 86400, resp);
    }
    if (status_is_ok(&st)) {
        st = finish(e, &tx, m, &resp->balance);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    resp->member_id = (char *)m->member_id;
    resp->captured_cents = captured;
    resp->refunded_cents = refunded + req->amount_cents;
    return status_ok();
}

/* ---- expiry ---- */

status_t wallet_op_expire_deposits(const wallet_env_t *e, int64_t now,
                                   Loyalty__V1__WalletExpireDepositsResponse *resp) {
    char **members = NULL;
    int n = 0;
    status_t st = wallet_store_lapsed_members(e->db, e->arena, e->merchant_id, now,
                                              WALLET_EXPIRE_MEMBERS_MAX + 1, &members, &n);
    if (!status_is_ok(&st)) {
        return st;
    }
    resp->more = n > WALLET_EXPIRE_MEMBERS_MAX;
    if (resp->more) {
        n = WALLET_EXPIRE_MEMBERS_MAX;
    }
    wallet_tx_t tx;
    wallet_tx_init(&tx, e->arena, e->now);
    int lots = 0;
    int64_t cents[2] = {0, 0};
    /* Wallets are locked in member order, the merchant accounts once at the end: the same
     * order as every other transaction, so no lock cycles. */
    for (int i = 0; i < n && status_is_ok(&st); i++) {
        wallet_member_t *m = wallet_tx_member(&tx, members[i]);
        bool locked = false;
        st = wallet_store_member_lock(e->db, e->merchant_id, m, false, &locked);
        if (status_is_ok(&st) && m->exists) {
            st = expire_lots(e, &tx, m, now, &lots, cents);
        }
    }
    if (status_is_ok(&st)) {
        st = wallet_store_finish(e->db, e->merchant_id, &tx, NULL);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    resp->members_processed = n;
    resp->lots_expired = lots;
    resp->principal_expired_cents = cents[0];
    resp->bonus_expired_cents = cents[1];
    return status_ok();
}

typedef struct settle_job {
    wallet_env_t env;
    const char *member_id;
    bool settled;
} settle_job_t;

static status_t settle_one(db_t *db, void *arg) {
    settle_job_t *j = arg;
    j->settled = false;
    wallet_tx_t tx;
    wallet_tx_init(&tx, j->env.arena, j->env.now);
    wallet_member_t *m = wallet_tx_member(&tx, j->member_id);
    bool locked = false;
    status_t st = wallet_store_member_lock(db, j->env.merchant_id, m, true, &locked);
    if (!status_is_ok(&st) || !locked || !m->exists) {
        return st; /* busy wallets settle themselves when their holder is done */
    }
    st = settle(&j->env, &tx, m, true);
    if (status_is_ok(&st)) {
        st = wallet_store_finish(db, j->env.merchant_id, &tx, NULL);
    }
    j->settled = status_is_ok(&st) && tx.n_xfers > 0;
    return st;
}

status_t wallet_job_settle(rpc_ctx_t *ctx) {
    int64_t now = ctx->now_s;
    wallet_due_t *due = NULL;
    int n = 0;
    status_t st = wallet_store_due_wallets(ctx->db, ctx->arena, now, JOB_BATCH, &due, &n);
    if (!status_is_ok(&st)) {
        return st;
    }
    int settled = 0;
    for (int i = 0; i < n; i++) {
        arena_t a;
        arena_init(&a);
        settle_job_t j = {
            .env = {.db = ctx->db, .arena = &a, .merchant_id = due[i].merchant_id, .now = now},
            .member_id = due[i].member_id,
        };
        status_t one = db_tx(ctx->db, settle_one, &j);
        arena_free(&a);
        if (!status_is_ok(&one)) {
            log_msg(LOG_WARN, "settling a wallet of merchant %s failed: %s", due[i].merchant_id,
                    one.message);
            st = one;
        }
        settled += j.settled ? 1 : 0;
    }
    if (settled > 0) {
        log_msg(LOG_INFO, "settled %d wallets (expired holds, lapsed deposits)", settled);
    }
    return st;
}
