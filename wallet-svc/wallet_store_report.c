/* wallet_store_report.c -- the wallet's read-only views over the ledger: a member's statement,
 * the merchant report over a period, and VerifyLedger's consistency checks. */
#include "wallet_store_internal.h"

#include <string.h>

/* ---- reads ---- */

/* A member's transfers, newest first, with what each did to the two accounts. */
// clang-format off
static const char STATEMENT_SQL[] =
    "SELECT t.id, t.kind, " SQL_EPOCH_S("t.created_at") ", "
    " coalesce((SELECT sum(credit_cents - debit_cents) FROM postings p "
    "  WHERE p.merchant_id = t.merchant_id AND p.transfer_id = t.id AND p.code = 1 "
    "  AND NOT p.pending), 0)::bigint, "
    " coalesce((SELECT sum(credit_cents - debit_cents) FROM postings p "
    "  WHERE p.merchant_id = t.merchant_id AND p.transfer_id = t.id AND p.code = 2 "
    "  AND NOT p.pending), 0)::bigint, "
    " t.held_delta_cents, t.balance_after_cents, t.held_after_cents, "
    " coalesce(t.reference, ''), coalesce(t.payment_ref, ''), coalesce(t.hold_id, '') "
    "FROM transfers t WHERE t.merchant_id = $1 AND t.member_id = $2 "
    " AND ($3 = '' OR t.id < $3) ORDER BY t.id DESC LIMIT $4";
// clang-format on

static const db_col_t STATEMENT_COL_TABLE[] = {
    DB_FIELD(DB_COL_TEXT, "transfer_id"),
    DB_FIELD(DB_COL_INT, "kind"),
    DB_FIELD(DB_COL_INT, "created_at"),
    DB_FIELD(DB_COL_INT, "principal_delta_cents"),
    DB_FIELD(DB_COL_INT, "bonus_delta_cents"),
    DB_FIELD(DB_COL_INT, "held_delta_cents"),
    DB_FIELD(DB_COL_INT, "balance_after_cents"),
    DB_FIELD(DB_COL_INT, "held_after_cents"),
    DB_FIELD(DB_COL_TEXT, "reference"),
    DB_FIELD(DB_COL_TEXT, "payment_ref"),
    DB_FIELD(DB_COL_TEXT, "hold_id"),
};
static const db_cols_t STATEMENT_COLS =
    DB_COLS_MESSAGE(STATEMENT_COL_TABLE, &loyalty__v1__wallet_statement_entry__descriptor);

status_t wallet_store_statement(db_t *db, arena_t *a, const char *merchant_id,
                                const char *member_id, const char *before_id, int32_t limit,
                                Loyalty__V1__WalletStatementEntry ***out, size_t *n) {
    db_params_t p;
    db_params_key(&p, merchant_id, member_id);
    db_param_text(&p, before_id);
    db_param_int(&p, limit);
    db_rows_t rows = {.item_size = sizeof **out};
    status_t st = db_rows_cols(db, a, STATEMENT_SQL, &p, &STATEMENT_COLS, &rows);
    *out = rows.items;
    *n = rows.n;
    return st;
}

status_t wallet_store_report(db_t *db, const char *merchant_id, int64_t from_at, int64_t to_at,
                             Loyalty__V1__WalletReport *out) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "SELECT code, sum(debits_pending)::bigint, sum(debits_posted)::bigint, "
                          " sum(credits_pending)::bigint, sum(credits_posted)::bigint "
                          "FROM accounts WHERE merchant_id = $1 AND member_id = '' "
                          "GROUP BY code",
                          &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    wallet_account_t acc[WALLET_MERCHANT_CODES];
    memset(acc, 0, sizeof acc);
    for (int i = 0; i < PQntuples(r); i++) {
        int c = (int)db_get_int(r, i, 0) - WALLET_ACC_TOP_UP_FUNDING;
        if (c >= 0 && c < WALLET_MERCHANT_CODES) {
            acc[c] = (wallet_account_t){db_get_int(r, i, 1), db_get_int(r, i, 2),
                                        db_get_int(r, i, 3), db_get_int(r, i, 4)};
        }
    }
    PQclear(r);
    const wallet_account_t *funding = &acc[0], *expense = &acc[1], *red_p = &acc[2];
    const wallet_account_t *red_b = &acc[3], *brk_p = &acc[4], *brk_b = &acc[5];
    out->topped_up_cents = funding->debits_posted;
    out->top_up_refunded_cents = funding->credits_posted;
    out->bonus_granted_cents = expense->debits_posted;
    out->bonus_forfeited_cents = expense->credits_posted;
    out->redeemed_principal_cents = red_p->credits_posted - red_p->debits_posted;
    out->redeemed_bonus_cents = red_b->credits_posted - red_b->debits_posted;
    out->breakage_principal_cents = brk_p->credits_posted - brk_p->debits_posted;
    out->breakage_bonus_cents = brk_b->credits_posted - brk_b->debits_posted;
    out->held_principal_cents = red_p->credits_pending;
    out->held_bonus_cents = red_b->credits_pending;
    /* Every posting on a member account pairs with one of these merchant accounts, so the
     * members' posted balances are their mirror image (VerifyLedger checks CONTROL_TOTAL). */
    out->liability_principal_cents = (funding->debits_posted - funding->credits_posted) -
                                     out->redeemed_principal_cents - out->breakage_principal_cents;
    out->liability_bonus_cents = (expense->debits_posted - expense->credits_posted) -
                                 out->redeemed_bonus_cents - out->breakage_bonus_cents;
    if (from_at >= to_at) {
        return status_ok();
    }
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_int(&p, from_at);
    db_param_int(&p, to_at);
    st = db_exec(db,
                 "SELECT coalesce(sum(p.credit_cents) FILTER (WHERE p.code = 14), 0)::bigint, "
                 " coalesce(sum(p.credit_cents) FILTER (WHERE p.code = 15), 0)::bigint "
                 "FROM transfers t JOIN postings p ON p.merchant_id = t.merchant_id "
                 " AND p.transfer_id = t.id "
                 "WHERE t.merchant_id = $1 AND t.kind = 8 "
                 " AND t.created_at >= to_timestamp($2) AND t.created_at < to_timestamp($3)",
                 &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    out->period_breakage_principal_cents = db_get_int(r, 0, 0);
    out->period_breakage_bonus_cents = db_get_int(r, 0, 1);
    PQclear(r);
    return status_ok();
}

/* ---- VerifyLedger ---- */

#define VERIFY_DIFFERENCES_MAX 100

// clang-format off
/* Each check is one query returning (subject, expected, actual, detail) for every violation,
 * given the merchant as $1. */
static const struct {
    const char *check;
    const char *sql;
} verify_checks[] = {
    {"TRANSFER_UNBALANCED",
     "WITH s AS ("
     " SELECT t.id, t.amount_cents, "
     "  coalesce(sum(p.debit_cents) FILTER (WHERE NOT p.pending), 0)::bigint AS dpo, "
     "  coalesce(sum(p.credit_cents) FILTER (WHERE NOT p.pending), 0)::bigint AS cpo, "
     "  coalesce(sum(p.debit_cents) FILTER (WHERE p.pending), 0)::bigint AS dp, "
     "  coalesce(sum(p.credit_cents) FILTER (WHERE p.pending), 0)::bigint AS cp, "
     "  coalesce(sum(p.debit_cents), 0)::bigint AS d "
     " FROM transfers t LEFT JOIN postings p ON p.merchant_id = t.merchant_id "
     "  AND p.transfer_id = t.id WHERE t.merchant_id = $1 GROUP BY t.id, t.amount_cents) "
     "SELECT s.id, v.want, v.got, v.what FROM s, LATERAL (VALUES "
     " (s.dpo, s.cpo, 'posted debits vs credits'), (s.dp, s.cp, 'pending debits vs credits'), "
     " (s.amount_cents, s.d, 'amount vs its debits')) AS v(want, got, what) "
     "WHERE v.want <> v.got"},
    /* Pending postings count while their hold is pending. */
    {"ACCOUNT_BALANCE",
     "WITH sums AS ("
     " SELECT p.member_id, p.code, p.shard, "
     "  sum(p.debit_cents) FILTER (WHERE p.pending AND h.state = 1) AS dp, "
     "  sum(p.debit_cents) FILTER (WHERE NOT p.pending) AS dpo, "
     "  sum(p.credit_cents) FILTER (WHERE p.pending AND h.state = 1) AS cp, "
     "  sum(p.credit_cents) FILTER (WHERE NOT p.pending) AS cpo "
     " FROM postings p JOIN transfers t ON t.merchant_id = $1 AND t.id = p.transfer_id "
     " LEFT JOIN holds h ON p.pending AND h.merchant_id = $1 AND h.id = t.hold_id "
     " WHERE p.merchant_id = $1 GROUP BY p.member_id, p.code, p.shard), "
     "cmp AS ("
     " SELECT coalesce(a.member_id, s.member_id) AS member_id, coalesce(a.code, s.code) AS code, "
     "  coalesce(a.shard, s.shard) AS shard, "
     "  ARRAY[coalesce(s.dp, 0), coalesce(s.dpo, 0), coalesce(s.cp, 0), coalesce(s.cpo, 0)] "
     "   AS want, "
     "  ARRAY[coalesce(a.debits_pending, 0), coalesce(a.debits_posted, 0), "
     "   coalesce(a.credits_pending, 0), coalesce(a.credits_posted, 0)] AS got "
     " FROM (SELECT * FROM accounts WHERE merchant_id = $1) a "
     " FULL JOIN sums s ON s.member_id = a.member_id AND s.code = a.code AND s.shard = a.shard) "
     "SELECT CASE WHEN member_id = '' THEN 'merchant/' || code || '/' || shard "
     "  ELSE member_id || '/' || code END, want[i], got[i], "
     " (ARRAY['debits_pending', 'debits_posted', 'credits_pending', 'credits_posted'])[i] "
     "FROM cmp, generate_series(1, 4) i WHERE want[i] <> got[i]"},
    {"LOT_NEGATIVE",
     "SELECT id, 0::bigint, credited_cents - debited_cents - held_cents, 'available' "
     "FROM lots WHERE merchant_id = $1 AND (credited_cents - debited_cents - held_cents < 0 "
     " OR debited_cents < 0 OR held_cents < 0)"},
    {"LOT_BALANCE",
     "WITH sums AS ("
     " SELECT p.lot_id, "
     "  coalesce(sum(p.credit_cents) FILTER (WHERE NOT p.pending), 0) AS c, "
     "  coalesce(sum(p.debit_cents) FILTER (WHERE NOT p.pending), 0) AS d, "
     "  coalesce(sum(p.debit_cents) FILTER (WHERE p.pending AND h.state = 1), 0) AS h, "
     "  coalesce(sum(p.debit_cents) FILTER (WHERE NOT p.pending AND t.kind = 8), 0) AS e "
     " FROM postings p JOIN transfers t ON t.merchant_id = $1 AND t.id = p.transfer_id "
     " LEFT JOIN holds h ON p.pending AND h.merchant_id = $1 AND h.id = t.hold_id "
     " WHERE p.merchant_id = $1 AND p.lot_id IS NOT NULL GROUP BY p.lot_id), "
     "cmp AS ("
     " SELECT l.id, ARRAY[coalesce(s.c, 0), coalesce(s.d, 0), coalesce(s.h, 0), "
     "  coalesce(s.e, 0)] AS want, "
     "  ARRAY[l.credited_cents, l.debited_cents, l.held_cents, l.expired_cents] AS got "
     " FROM lots l LEFT JOIN sums s ON s.lot_id = l.id WHERE l.merchant_id = $1) "
     "SELECT id, want[i]::bigint, got[i], "
     " (ARRAY['credited', 'debited', 'held', 'expired'])[i] "
     "FROM cmp, generate_series(1, 4) i WHERE want[i] <> got[i]"},
    {"MEMBER_LOTS",
     "WITH l AS ("
     " SELECT member_id, code, sum(credited_cents - debited_cents) AS bal, "
     "  sum(held_cents) AS held FROM lots WHERE merchant_id = $1 GROUP BY member_id, code) "
     "SELECT a.member_id || '/' || a.code, coalesce(l.bal, 0)::bigint, "
     " a.credits_posted - a.debits_posted, 'posted balance vs its lots' "
     "FROM accounts a LEFT JOIN l ON l.member_id = a.member_id AND l.code = a.code "
     "WHERE a.merchant_id = $1 AND a.member_id <> '' "
     " AND coalesce(l.bal, 0) <> a.credits_posted - a.debits_posted "
     "UNION ALL "
     "SELECT a.member_id || '/' || a.code, coalesce(l.held, 0)::bigint, a.debits_pending, "
     " 'held vs its lots' "
     "FROM accounts a LEFT JOIN l ON l.member_id = a.member_id AND l.code = a.code "
     "WHERE a.merchant_id = $1 AND a.member_id <> '' "
     " AND coalesce(l.held, 0) <> a.debits_pending"},
    {"HOLD_AMOUNT", "SELECT h.id, h.amount_cents, coalesce(sum(p.debit_cents), 0)::bigint, "
                    " 'amount vs its pending debits' "
                    "FROM holds h LEFT JOIN postings p ON p.merchant_id = h.merchant_id "
                    " AND p.transfer_id = h.transfer_id AND p.pending "
                    "WHERE h.merchant_id = $1 GROUP BY h.id, h.amount_cents "
                    "HAVING h.amount_cents <> coalesce(sum(p.debit_cents), 0)"},
    /* A wallet must learn in time that it has something to settle (002_next_due.sql). */
    {"NEXT_DUE",
     "WITH due AS ("
     " SELECT a.member_id, a.next_due_at, LEAST("
     "  (SELECT " SQL_EPOCH_S("min(h.expires_at)") " FROM holds h WHERE h.merchant_id = $1 "
     "    AND h.member_id = a.member_id AND h.state = 1), "
     "  (SELECT " SQL_EPOCH_S("min(l.expires_at)") " FROM lots l WHERE l.merchant_id = $1 "
     "    AND l.member_id = a.member_id AND l.has_available)) AS truth "
     " FROM accounts a WHERE a.merchant_id = $1 AND a.member_id <> '' AND a.code = 1) "
     "SELECT member_id, truth, next_due_at, 'next_due_at after the first TTL or expiry' "
     "FROM due WHERE truth IS NOT NULL AND next_due_at > truth"},
    /* Members' accounts mirror the merchant accounts they pair with (see the report). */
    {"CONTROL_TOTAL",
     "WITH m AS ("
     " SELECT code, sum(credits_posted - debits_posted) AS bal, sum(debits_pending) AS held "
     " FROM accounts WHERE merchant_id = $1 AND member_id <> '' GROUP BY code), "
     "c AS ("
     " SELECT 1 AS code, "
     "  coalesce(sum(debits_posted - credits_posted) FILTER (WHERE code = 10), 0) - "
     "  coalesce(sum(credits_posted - debits_posted) FILTER (WHERE code IN (12, 14)), 0) AS bal, "
     "  coalesce(sum(credits_pending) FILTER (WHERE code = 12), 0) AS held "
     " FROM accounts WHERE merchant_id = $1 AND member_id = '' "
     " UNION ALL "
     " SELECT 2, "
     "  coalesce(sum(debits_posted - credits_posted) FILTER (WHERE code = 11), 0) - "
     "  coalesce(sum(credits_posted - debits_posted) FILTER (WHERE code IN (13, 15)), 0), "
     "  coalesce(sum(credits_pending) FILTER (WHERE code = 13), 0) "
     " FROM accounts WHERE merchant_id = $1 AND member_id = '') "
     "SELECT 'members/' || c.code, c.bal::bigint, coalesce(m.bal, 0)::bigint, "
     " 'member balances vs merchant accounts' "
     "FROM c LEFT JOIN m ON m.code = c.code WHERE c.bal <> coalesce(m.bal, 0) "
     "UNION ALL "
     "SELECT 'members/' || c.code, c.held::bigint, coalesce(m.held, 0)::bigint, "
     " 'member holds vs merchant pending' "
     "FROM c LEFT JOIN m ON m.code = c.code WHERE c.held <> coalesce(m.held, 0)"},
};
// clang-format on

static status_t verify_counts(db_t *db, const char *merchant_id,
                              Loyalty__V1__WalletVerifyLedgerResponse *out) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "SELECT (SELECT count(*) FROM transfers WHERE merchant_id = $1), "
                          " (SELECT count(*) FROM accounts WHERE merchant_id = $1), "
                          " (SELECT count(*) FROM lots WHERE merchant_id = $1), "
                          " (SELECT count(*) FROM holds WHERE merchant_id = $1)",
                          &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    out->transfers_checked = db_get_int(r, 0, 0);
    out->accounts_checked = db_get_int(r, 0, 1);
    out->lots_checked = db_get_int(r, 0, 2);
    out->holds_checked = db_get_int(r, 0, 3);
    PQclear(r);
    return status_ok();
}

status_t wallet_store_verify(db_t *db, arena_t *a, const char *merchant_id,
                             Loyalty__V1__WalletVerifyLedgerResponse *out) {
    /* One snapshot for every check, so that concurrent traffic cannot look like a difference.
     * It is the first statement of the transaction the runtime opened. */
    status_t st =
        db_exec(db, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", NULL, NULL);
    if (!status_is_ok(&st)) {
        return st;
    }
    st = verify_counts(db, merchant_id, out);
    if (!status_is_ok(&st)) {
        return st;
    }
    size_t cap = VERIFY_DIFFERENCES_MAX;
    out->differences = arena_alloc(a, cap * sizeof *out->differences);
    out->n_differences = 0;
    for (size_t c = 0; c < sizeof verify_checks / sizeof verify_checks[0]; c++) {
        db_params_t p;
        db_params_init(&p);
        db_param_text(&p, merchant_id);
        PGresult *r = NULL;
        st = db_exec(db, verify_checks[c].sql, &p, &r);
        if (!status_is_ok(&st)) {
            return st;
        }
        for (int i = 0; i < PQntuples(r); i++) {
            if (out->n_differences == cap) {
                out->differences_truncated = true;
                break;
            }
            Loyalty__V1__WalletLedgerDifference *d = arena_alloc(a, sizeof *d);
            loyalty__v1__wallet_ledger_difference__init(d);
            d->check = (char *)verify_checks[c].check;
            d->subject = db_dup_str(a, r, i, 0);
            d->expected_cents = db_get_int(r, i, 1);
            d->actual_cents = db_get_int(r, i, 2);
            d->detail = db_dup_str(a, r, i, 3);
            out->differences[out->n_differences++] = d;
        }
        PQclear(r);
    }
    out->ok = out->n_differences == 0;
    return status_ok();
}
