/* wallet_store_flush.c -- writing a wallet transaction's changes to the ledger: transfers,
 * posting lines, new and changed lots and member accounts in one statement, then the merchant
 * accounts' deltas and the member's expiring figures when the transaction finishes. */
#include "wallet_store_internal.h"

#include "log.h"
#include "pgarray.h"

#include <assert.h>
#include <string.h>

/* ---- writing the ledger ---- */

/* Transfers written since the last flush, as array parameters $2..$13. */
static void flush_transfer_params(arena_t *a, const wallet_tx_t *tx, db_params_t *p) {
    int n = tx->n_xfers - tx->flushed_xfers;
    char **id = strs(a, n), **member = strs(a, n), **hold = strs(a, n), **top_up = strs(a, n);
    char **ref = strs(a, n), **pay = strs(a, n);
    int64_t *kind = ints(a, n), *amount_cents = ints(a, n), *held = ints(a, n), *bal = ints(a, n);
    int64_t *held_after = ints(a, n), *at = ints(a, n);
    for (int i = 0; i < n; i++) {
        const wallet_xfer_t *x = &tx->xfers[tx->flushed_xfers + i];
        id[i] = (char *)x->id;
        member[i] = (char *)x->member->member_id;
        hold[i] = (char *)x->hold_id;
        top_up[i] = (char *)x->top_up_id;
        ref[i] = (char *)x->reference;
        pay[i] = (char *)x->payment_ref;
        kind[i] = x->kind;
        amount_cents[i] = x->amount_cents;
        held[i] = x->held_delta_cents;
        bal[i] = x->balance_after_cents;
        held_after[i] = x->held_after_cents;
        at[i] = x->created_at;
    }
    db_param_text(p, pgarray_encode(a, id, (size_t)n));
    db_param_text(p, pgarray_encode(a, member, (size_t)n));
    db_param_text(p, pgarray_encode_int64(a, kind, n));
    db_param_text(p, pgarray_encode(a, hold, (size_t)n));
    db_param_text(p, pgarray_encode(a, top_up, (size_t)n));
    db_param_text(p, pgarray_encode(a, ref, (size_t)n));
    db_param_text(p, pgarray_encode(a, pay, (size_t)n));
    db_param_text(p, pgarray_encode_int64(a, amount_cents, n));
    db_param_text(p, pgarray_encode_int64(a, held, n));
    db_param_text(p, pgarray_encode_int64(a, bal, n));
    db_param_text(p, pgarray_encode_int64(a, held_after, n));
    db_param_text(p, pgarray_encode_int64(a, at, n));
}

/* Posting lines since the last flush, as $14..$22. */
static void flush_line_params(arena_t *a, const wallet_tx_t *tx, db_params_t *p) {
    int n = tx->n_lines - tx->flushed_lines;
    char **xfer = strs(a, n), **member = strs(a, n), **lot = strs(a, n);
    int64_t *line = ints(a, n), *code = ints(a, n), *shard = ints(a, n), *debit = ints(a, n);
    int64_t *credit = ints(a, n);
    bool *pending = arena_alloc(a, (size_t)(n ? n : 1) * sizeof *pending);
    for (int i = 0; i < n; i++) {
        const wallet_line_t *l = &tx->lines[tx->flushed_lines + i];
        const wallet_xfer_t *x = &tx->xfers[l->xfer];
        xfer[i] = (char *)x->id;
        line[i] = tx->flushed_lines + i - x->first_line + 1;
        member[i] = (char *)l->member_id;
        code[i] = l->code;
        shard[i] = l->shard;
        lot[i] = (char *)(l->lot_id ? l->lot_id : "");
        pending[i] = l->pending;
        debit[i] = l->debit_cents;
        credit[i] = l->credit_cents;
    }
    db_param_text(p, pgarray_encode(a, xfer, (size_t)n));
    db_param_text(p, pgarray_encode_int64(a, line, n));
    db_param_text(p, pgarray_encode(a, member, (size_t)n));
    db_param_text(p, pgarray_encode_int64(a, code, n));
    db_param_text(p, pgarray_encode_int64(a, shard, n));
    db_param_text(p, pgarray_encode(a, lot, (size_t)n));
    db_param_text(p, pgarray_encode_bool(a, pending, n));
    db_param_text(p, pgarray_encode_int64(a, debit, n));
    db_param_text(p, pgarray_encode_int64(a, credit, n));
}

static bool lot_changed(const wallet_lot_t *l) {
    return l->credited_cents != l->loaded[0] || l->debited_cents != l->loaded[1] ||
           l->held_cents != l->loaded[2] || l->expired_cents != l->loaded[3];
}

/* New lots as $23..$33 and changes of loaded lots as $34..$38; *n_new / *n_changed. */
static void flush_lot_params(arena_t *a, const wallet_tx_t *tx, db_params_t *p, int *n_new,
                             int *n_changed) {
    int n = tx->n_lots;
    char **nid = strs(a, n), **nmember = strs(a, n), **ntop = strs(a, n), **cid = strs(a, n);
    int64_t *ncode = ints(a, n), *norigin = ints(a, n), *nc = ints(a, n), *nd = ints(a, n);
    int64_t *nh = ints(a, n), *ne = ints(a, n), *nexp = ints(a, n), *nat = ints(a, n);
    int64_t *dc = ints(a, n), *dd = ints(a, n), *dh = ints(a, n), *de = ints(a, n);
    int nn = 0;
    int nch = 0;
    for (int i = 0; i < n; i++) {
        const wallet_lot_t *l = tx->lots[i];
        if (l->is_new) {
            nid[nn] = l->id;
            nmember[nn] = (char *)l->member_id;
            ntop[nn] = l->top_up_id;
            ncode[nn] = l->code;
            norigin[nn] = l->origin;
            nc[nn] = l->credited_cents;
            nd[nn] = l->debited_cents;
            nh[nn] = l->held_cents;
            ne[nn] = l->expired_cents;
            nexp[nn] = l->expires_at;
            nat[nn] = l->created_at;
            nn++;
        } else if (lot_changed(l)) {
            cid[nch] = l->id;
            dc[nch] = l->credited_cents - l->loaded[0];
            dd[nch] = l->debited_cents - l->loaded[1];
            dh[nch] = l->held_cents - l->loaded[2];
            de[nch] = l->expired_cents - l->loaded[3];
            nch++;
        }
    }
    db_param_text(p, pgarray_encode(a, nid, (size_t)nn));
    db_param_text(p, pgarray_encode(a, nmember, (size_t)nn));
    db_param_text(p, pgarray_encode_int64(a, ncode, nn));
    db_param_text(p, pgarray_encode_int64(a, norigin, nn));
    db_param_text(p, pgarray_encode(a, ntop, (size_t)nn));
    db_param_text(p, pgarray_encode_int64(a, nc, nn));
    db_param_text(p, pgarray_encode_int64(a, nd, nn));
    db_param_text(p, pgarray_encode_int64(a, nh, nn));
    db_param_text(p, pgarray_encode_int64(a, ne, nn));
    db_param_text(p, pgarray_encode_int64(a, nexp, nn));
    db_param_text(p, pgarray_encode_int64(a, nat, nn));
    db_param_text(p, pgarray_encode(a, cid, (size_t)nch));
    db_param_text(p, pgarray_encode_int64(a, dc, nch));
    db_param_text(p, pgarray_encode_int64(a, dd, nch));
    db_param_text(p, pgarray_encode_int64(a, dh, nch));
    db_param_text(p, pgarray_encode_int64(a, de, nch));
    *n_new = nn;
    *n_changed = nch;
}

/* Member account changes as $39..$45; *n gets the count. The principal row carries the
 * wallet's next_due_at (the one read, and the one VerifyLedger checks): the bonus row is
 * written only when its balances changed, never for next_due_at alone (a hold or a capture
 * that moves next_due_at would otherwise write both rows). */
static void flush_member_params(arena_t *a, const wallet_tx_t *tx, db_params_t *p, int *count) {
    int n = tx->n_members * 2;
    char **member = strs(a, n);
    int64_t *code = ints(a, n), *dp = ints(a, n), *dpo = ints(a, n), *cp = ints(a, n);
    int64_t *cpo = ints(a, n), *due = ints(a, n);
    int k = 0;
    for (int i = 0; i < tx->n_members; i++) {
        const wallet_member_t *m = tx->members[i];
        if (!m->exists) {
            continue;
        }
        for (int j = 0; j < 2; j++) {
            const wallet_account_t *now = &m->acc[j];
            const wallet_account_t *was = &m->loaded[j];
            bool balances_same = memcmp(now, was, sizeof *now) == 0;
            if (balances_same && (j == 1 || m->next_due_at == m->next_due_loaded)) {
                continue;
            }
            due[k] = m->next_due_at;
            member[k] = (char *)m->member_id;
            code[k] = j == 0 ? WALLET_ACC_PRINCIPAL : WALLET_ACC_BONUS;
            dp[k] = now->debits_pending - was->debits_pending;
            dpo[k] = now->debits_posted - was->debits_posted;
            cp[k] = now->credits_pending - was->credits_pending;
            cpo[k] = now->credits_posted - was->credits_posted;
            k++;
        }
    }
    db_param_text(p, pgarray_encode(a, member, (size_t)k));
    db_param_text(p, pgarray_encode_int64(a, code, k));
    db_param_text(p, pgarray_encode_int64(a, dp, k));
    db_param_text(p, pgarray_encode_int64(a, dpo, k));
    db_param_text(p, pgarray_encode_int64(a, cp, k));
    db_param_text(p, pgarray_encode_int64(a, cpo, k));
    db_param_text(p, pgarray_encode_int64(a, due, k));
    *count = k;
}

/* After a successful flush the in-memory state is what is stored. */
static void flush_done(wallet_tx_t *tx) {
    tx->flushed_xfers = tx->n_xfers;
    tx->flushed_lines = tx->n_lines;
    for (int i = 0; i < tx->n_lots; i++) {
        wallet_lot_t *l = tx->lots[i];
        l->is_new = false;
        l->loaded[0] = l->credited_cents;
        l->loaded[1] = l->debited_cents;
        l->loaded[2] = l->held_cents;
        l->loaded[3] = l->expired_cents;
    }
    for (int i = 0; i < tx->n_members; i++) {
        memcpy(tx->members[i]->loaded, tx->members[i]->acc, sizeof tx->members[i]->acc);
        tx->members[i]->next_due_loaded = tx->members[i]->next_due_at;
    }
}

/* One statement writes the whole flush: the data-modifying CTEs all run, and the counts they
 * return are checked against what was sent. The "= ANY (array)" conditions are there for the
 * planner: they give it an index condition on the target table, where joining to unnest()
 * alone lets it choose a hash join over every row of the merchant. */
static const char FLUSH_SQL[] =
    "WITH x AS ("
    " INSERT INTO transfers (merchant_id, id, member_id, kind, hold_id, top_up_id, reference, "
    "  payment_ref, amount_cents, held_delta_cents, balance_after_cents, held_after_cents, "
    "  created_at) "
    " SELECT $1, t.id, t.member_id, t.kind, NULLIF(t.hold_id, ''), NULLIF(t.top_up_id, ''), "
    "  NULLIF(t.reference, ''), NULLIF(t.payment_ref, ''), t.amount, t.held, t.bal, "
    "  t.held_after, to_timestamp(t.at) "
    " FROM unnest($2::text[], $3::text[], $4::smallint[], $5::text[], $6::text[], $7::text[], "
    "  $8::text[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[]) "
    "  AS t(id, member_id, kind, hold_id, top_up_id, reference, payment_ref, amount, held, bal, "
    "  held_after, at) "
    " RETURNING 1), "
    "p AS ("
    " INSERT INTO postings (merchant_id, transfer_id, line, member_id, code, shard, lot_id, "
    "  pending, debit_cents, credit_cents) "
    " SELECT $1, l.xfer, l.line, l.member_id, l.code, l.shard, NULLIF(l.lot_id, ''), l.pending, "
    "  l.debit, l.credit "
    " FROM unnest($14::text[], $15::smallint[], $16::text[], $17::smallint[], $18::smallint[], "
    "  $19::text[], $20::boolean[], $21::bigint[], $22::bigint[]) "
    "  AS l(xfer, line, member_id, code, shard, lot_id, pending, debit, credit) "
    " RETURNING 1), "
    "nl AS ("
    " INSERT INTO lots (merchant_id, id, member_id, code, origin, top_up_id, credited_cents, "
    "  debited_cents, held_cents, expired_cents, expires_at, created_at) "
    " SELECT $1, n.id, n.member_id, n.code, n.origin, NULLIF(n.top_up_id, ''), n.c, n.d, n.h, "
    "  n.e, CASE WHEN n.exp = 0 THEN NULL ELSE to_timestamp(n.exp) END, to_timestamp(n.at) "
    " FROM unnest($23::text[], $24::text[], $25::smallint[], $26::smallint[], $27::text[], "
    "  $28::bigint[], $29::bigint[], $30::bigint[], $31::bigint[], $32::bigint[], "
    "  $33::bigint[]) AS n(id, member_id, code, origin, top_up_id, c, d, h, e, exp, at) "
    " RETURNING 1), "
    "ul AS ("
    " UPDATE lots SET credited_cents = lots.credited_cents + d.dc, "
    "  debited_cents = lots.debited_cents + d.dd, held_cents = lots.held_cents + d.dh, "
    "  expired_cents = lots.expired_cents + d.de "
    " FROM unnest($34::text[], $35::bigint[], $36::bigint[], $37::bigint[], $38::bigint[]) "
    "  AS d(id, dc, dd, dh, de) "
    " WHERE lots.merchant_id = $1 AND lots.id = ANY ($34::text[]) AND lots.id = d.id "
    " RETURNING 1), "
    "ua AS ("
    " UPDATE accounts SET debits_pending = accounts.debits_pending + d.dp, "
    "  debits_posted = accounts.debits_posted + d.dpo, "
    "  credits_pending = accounts.credits_pending + d.cp, "
    "  credits_posted = accounts.credits_posted + d.cpo, next_due_at = d.due "
    " FROM unnest($39::text[], $40::smallint[], $41::bigint[], $42::bigint[], $43::bigint[], "
    "  $44::bigint[], $45::bigint[]) AS d(member_id, code, dp, dpo, cp, cpo, due) "
    " WHERE accounts.merchant_id = $1 AND accounts.member_id = ANY ($39::text[]) "
    "  AND accounts.member_id = d.member_id "
    "  AND accounts.code = d.code AND accounts.shard = 0 RETURNING 1) "
    "SELECT (SELECT count(*) FROM x), (SELECT count(*) FROM p), (SELECT count(*) FROM nl), "
    " (SELECT count(*) FROM ul), (SELECT count(*) FROM ua)";

/* A violated ledger constraint is a bug in the rules above the store, never bad input. */
static status_t ledger_error(db_t *db, status_t st) {
    if (st.code == STATUS_FAILED_PRECONDITION) {
        log_msg(LOG_ERROR, "ledger constraint %s violated: %s", db_last_constraint(db), st.message);
        return status_make(STATUS_INTERNAL, REASON_LEDGER_INVARIANT,
                           "ledger invariant violated (%.60s)", db_last_constraint(db));
    }
    return st;
}

status_t wallet_store_flush(db_t *db, const char *merchant_id, wallet_tx_t *tx) {
    assert(tx->open_xfer < 0);
    assert(wallet_tx_balanced(tx));
    arena_t a;
    arena_init(&a);
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    flush_transfer_params(&a, tx, &p);
    flush_line_params(&a, tx, &p);
    int n_new = 0;
    int n_changed = 0;
    int n_accounts = 0;
    flush_lot_params(&a, tx, &p, &n_new, &n_changed);
    flush_member_params(&a, tx, &p, &n_accounts);
    int n_xfers = tx->n_xfers - tx->flushed_xfers;
    int n_lines = tx->n_lines - tx->flushed_lines;
    status_t st = status_ok();
    if (n_xfers + n_lines + n_new + n_changed + n_accounts > 0) {
        PGresult *r = NULL;
        st = db_exec(db, FLUSH_SQL, &p, &r);
        if (status_is_ok(&st)) {
            bool counts_ok = db_get_int(r, 0, 0) == n_xfers && db_get_int(r, 0, 1) == n_lines &&
                             db_get_int(r, 0, 2) == n_new && db_get_int(r, 0, 3) == n_changed &&
                             db_get_int(r, 0, 4) == n_accounts;
            PQclear(r);
            if (!counts_ok) {
                st = status_make(STATUS_INTERNAL, REASON_LEDGER_INVARIANT,
                                 "ledger flush wrote other rows than expected");
            }
        }
    }
    arena_free(&a);
    if (!status_is_ok(&st)) {
        return ledger_error(db, st);
    }
    flush_done(tx);
    return status_ok();
}

/* The expiring figures of wallet_store_expiring as two scalar subqueries over $8 (member) and
 * $9 (until), for the statement that ends a transaction. */
// clang-format off
#define EXPIRING_SUBQUERIES                                                                        \
    "(SELECT coalesce(sum(credited_cents - debited_cents - held_cents) FILTER "                    \
    "  (WHERE expires_at < to_timestamp($9)), 0)::bigint FROM lots WHERE merchant_id = $1 "        \
    "  AND member_id = $8 AND has_available "                                                      \
    "  AND expires_at IS NOT NULL), "                                                              \
    "(SELECT " SQL_EPOCH_S_OR_0("min(expires_at)") " FROM lots WHERE merchant_id = $1 "            \
    "  AND member_id = $8 AND has_available "                                                      \
    "  AND expires_at IS NOT NULL)"
// clang-format on

/* The merchant accounts' side of a transaction's postings (migrations/001_ledger.sql). */
#define MERCHANT_DELTAS_SQL                                                                        \
    "SELECT apply_merchant_deltas($1, $2::smallint[], $3::smallint[], $4::bigint[], "              \
    " $5::bigint[], $6::bigint[], $7::bigint[])"

/* The merchant totals being summed on this thread (wallet_store_merchant_sum_begin), or NULL. */
static _Thread_local wallet_tx_t *g_merchant_sums;

void wallet_store_merchant_sum_begin(wallet_tx_t *sums) {
    assert(g_merchant_sums == NULL);
    wallet_tx_init(sums, NULL, 0);
    g_merchant_sums = sums;
}

static status_t write_merchant(db_t *db, const char *merchant_id, wallet_tx_t *tx,
                               wallet_expiring_t *expiring);

status_t wallet_store_merchant_sum_end(db_t *db, const char *merchant_id, bool write) {
    wallet_tx_t *sums = g_merchant_sums;
    assert(sums != NULL);
    g_merchant_sums = NULL;
    return write ? write_merchant(db, merchant_id, sums, NULL) : status_ok();
}

status_t wallet_store_finish(db_t *db, const char *merchant_id, wallet_tx_t *tx,
                             wallet_expiring_t *expiring) {
    status_t st = wallet_store_flush(db, merchant_id, tx);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (g_merchant_sums != NULL) {
        /* Written with the other calls' when the merged run ends, in (code, shard) order: tx
         * is left with no totals of its own (only the expiring figures, if asked, are read). */
        wallet_tx_add_merchant(g_merchant_sums, tx);
        memset(tx->merchant, 0, sizeof tx->merchant);
        memset(tx->merchant_touched, 0, sizeof tx->merchant_touched);
    }
    return write_merchant(db, merchant_id, tx, expiring);
}

/* Applies tx's merchant totals, with the expiring figures asked (if any) in the same round
 * trip, and clears them. */
static status_t write_merchant(db_t *db, const char *merchant_id, wallet_tx_t *tx,
                               wallet_expiring_t *expiring) {
    wallet_merchant_delta_t deltas[WALLET_MERCHANT_CODES * WALLET_SHARDS];
    int n = wallet_tx_merchant_deltas(tx, deltas);
    if (n == 0) {
        return expiring == NULL
                   ? status_ok()
                   : wallet_store_expiring(db, merchant_id, expiring->member_id, expiring->until,
                                           &expiring->cents, &expiring->next_at);
    }
    arena_t a;
    arena_init(&a);
    int64_t *code = ints(&a, n), *shard = ints(&a, n), *dp = ints(&a, n), *dpo = ints(&a, n);
    int64_t *cp = ints(&a, n), *cpo = ints(&a, n);
    for (int i = 0; i < n; i++) {
        code[i] = deltas[i].code;
        shard[i] = deltas[i].shard;
        dp[i] = deltas[i].delta.debits_pending;
        dpo[i] = deltas[i].delta.debits_posted;
        cp[i] = deltas[i].delta.credits_pending;
        cpo[i] = deltas[i].delta.credits_posted;
    }
    db_params_t p;
    db_params_key(&p, merchant_id, pgarray_encode_int64(&a, code, n));
    db_param_text(&p, pgarray_encode_int64(&a, shard, n));
    db_param_text(&p, pgarray_encode_int64(&a, dp, n));
    db_param_text(&p, pgarray_encode_int64(&a, dpo, n));
    db_param_text(&p, pgarray_encode_int64(&a, cp, n));
    db_param_text(&p, pgarray_encode_int64(&a, cpo, n));
    PGresult *r = NULL;
    status_t st;
    if (expiring == NULL) {
        /* Nothing to read back: inside a transaction it travels with the next statement or the
         * COMMIT (the idempotency record), a round trip fewer. */
        st = db_in_tx(db) ? db_exec_deferred(db, MERCHANT_DELTAS_SQL, &p, NULL)
                          : db_exec(db, MERCHANT_DELTAS_SQL, &p, NULL);
    } else {
        /* The response's balance needs the expiring figures: they ride on the same round
         * trip (the subqueries see this transaction's flushed writes). */
        db_param_text(&p, expiring->member_id);
        db_param_int(&p, expiring->until);
        st = db_exec(db, MERCHANT_DELTAS_SQL ", " EXPIRING_SUBQUERIES, &p, &r);
        if (status_is_ok(&st)) {
            expiring->cents = db_get_int(r, 0, 1);
            expiring->next_at = db_get_int(r, 0, 2);
            PQclear(r);
        }
    }
    arena_free(&a);
    if (status_is_ok(&st)) {
        memset(tx->merchant, 0, sizeof tx->merchant);
        memset(tx->merchant_touched, 0, sizeof tx->merchant_touched);
    }
    return ledger_error(db, st);
}
