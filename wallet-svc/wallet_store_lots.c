/* wallet_store_lots.c -- wallet lots in PostgreSQL: reading them in spending order (spendable,
 * lapsed, one lot, the member's list), the reads that open a hold, and spend references and
 * their parts. */
#include "wallet_store_internal.h"

#include "pgarray.h"

#include <assert.h>

/* ---- lots ---- */

// clang-format off
#define LOT_COLUMNS                                                                                \
    "id, member_id, code, origin, coalesce(top_up_id, ''), credited_cents, debited_cents, "        \
    "held_cents, expired_cents, " SQL_EPOCH_S_OR_0("expires_at") ", " SQL_EPOCH_S("created_at")
// clang-format on

static const db_col_t LOT_COL_TABLE[] = {
    DB_COL(DB_COL_TEXT, wallet_lot_t, id),
    DB_COL(DB_COL_TEXT, wallet_lot_t, member_id),
    DB_COL(DB_COL_INT, wallet_lot_t, code),
    DB_COL(DB_COL_INT, wallet_lot_t, origin),
    DB_COL(DB_COL_TEXT, wallet_lot_t, top_up_id),
    DB_COL(DB_COL_INT, wallet_lot_t, credited_cents),
    DB_COL(DB_COL_INT, wallet_lot_t, debited_cents),
    DB_COL(DB_COL_INT, wallet_lot_t, held_cents),
    DB_COL(DB_COL_INT, wallet_lot_t, expired_cents),
    DB_COL(DB_COL_INT, wallet_lot_t, expires_at),
    DB_COL(DB_COL_INT, wallet_lot_t, created_at),
};

/* The lot of row `row`: the transaction's copy when it has one (it is the current state),
 * else a new registered copy. */
status_t wallet_store_lot_from_row_at(wallet_tx_t *tx, const PGresult *r, int row, int c,
                                      wallet_lot_t **out) {
    *out = wallet_tx_find_lot(tx, db_get_str(r, row, c));
    if (*out != NULL) {
        return status_ok();
    }
    wallet_lot_t *l = arena_alloc(tx->arena, sizeof *l);
    db_cols_t cols = DB_COLS(LOT_COL_TABLE);
    cols.first = c;
    status_t st = db_cols_read(tx->arena, &cols, r, row, l);
    if (!status_is_ok(&st)) {
        return st;
    }
    l->loaded[0] = l->credited_cents;
    l->loaded[1] = l->debited_cents;
    l->loaded[2] = l->held_cents;
    l->loaded[3] = l->expired_cents;
    wallet_tx_add_lot(tx, l);
    *out = l;
    return status_ok();
}

static status_t lots_from_result(wallet_tx_t *tx, const PGresult *r, wallet_lot_t ***out, int *n);

static status_t lots_query(db_t *db, wallet_tx_t *tx, const char *sql, const db_params_t *p,
                           wallet_lot_t ***out, int *n) {
    PGresult *r = NULL;
    status_t st = db_exec(db, sql, p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    st = lots_from_result(tx, r, out, n);
    PQclear(r);
    return st;
}

/* The running total in spending order stops at the first lot that completes the amount ($4);
 * the ORDER BY repeats the rule of wallet_lot_order_cmp. */
#define SPENDABLE_SQL                                                                              \
    "SELECT " LOT_COLUMNS " FROM ("                                                                \
    " SELECT *, sum(credited_cents - debited_cents - held_cents) OVER ("                           \
    "   ORDER BY expires_at NULLS LAST, code, id ROWS UNBOUNDED PRECEDING) AS running "            \
    " FROM lots WHERE merchant_id = $1 AND member_id = $2 "                                        \
    "  AND has_available "                                                                         \
    "  AND (expires_at IS NULL OR expires_at > to_timestamp($3))) s "                              \
    "WHERE running - (credited_cents - debited_cents - held_cents) < $4 "                          \
    "ORDER BY expires_at NULLS LAST, code, id LIMIT $5"

static void spendable_params(db_params_t *p, const wallet_tx_t *tx, const char *merchant_id,
                             const wallet_member_t *m, int64_t amount_cents) {
    db_params_key(p, merchant_id, m->member_id);
    db_param_int(p, tx->now);
    db_param_int(p, amount_cents);
    db_param_int(p, WALLET_LOTS_PER_OP_MAX);
}

static status_t lots_from_result(wallet_tx_t *tx, const PGresult *r, wallet_lot_t ***out, int *n) {
    *n = PQntuples(r);
    *out = arena_alloc(tx->arena, (size_t)(*n + 1) * sizeof **out);
    for (int i = 0; i < *n; i++) {
        status_t st = wallet_store_lot_from_row_at(tx, r, i, 0, &(*out)[i]);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    return status_ok();
}

status_t wallet_store_lots_spendable(db_t *db, wallet_tx_t *tx, const char *merchant_id,
                                     wallet_member_t *m, int64_t amount_cents, wallet_lot_t ***out,
                                     int *n) {
    db_params_t p;
    spendable_params(&p, tx, merchant_id, m, amount_cents);
    return lots_query(db, tx, SPENDABLE_SQL, &p, out, n);
}

status_t wallet_store_hold_reads(db_t *db, wallet_tx_t *tx, const char *merchant_id,
                                 wallet_member_t *m, const char *reference, int64_t amount_cents,
                                 char **owner, wallet_lot_t ***lots, int *n) {
    db_params_t pa, pc, pl;
    db_params_key(&pa, merchant_id, m->member_id);
    db_params_key(&pc, merchant_id, reference);
    db_param_text(&pc, m->member_id);
    spendable_params(&pl, tx, merchant_id, m, amount_cents);
    /* In this order on the server: the lots are read under the wallet's lock. */
    db_exec_item_t q[3] = {
        {.sql = MEMBER_ACCOUNTS_SQL " FOR UPDATE", .params = &pa},
        {.sql = SPEND_CLAIM_SQL, .params = &pc},
        {.sql = SPENDABLE_SQL, .params = &pl},
    };
    status_t st = db_exec_all(db, q, 3);
    if (!status_is_ok(&st)) {
        return st;
    }
    wallet_store_member_from_rows(m, q[0].out);
    *owner = PQntuples(q[1].out) == 1 ? db_dup_str(tx->arena, q[1].out, 0, 0) : NULL;
    st = lots_from_result(tx, q[2].out, lots, n);
    for (int i = 0; i < 3; i++) {
        PQclear(q[i].out);
    }
    return status_ok();
}

status_t wallet_store_lots_lapsed(db_t *db, wallet_tx_t *tx, const char *merchant_id,
                                  wallet_member_t *m, int64_t now, wallet_lot_t ***out, int *n) {
    db_params_t p;
    db_params_key(&p, merchant_id, m->member_id);
    db_param_int(&p, now);
    db_param_int(&p, WALLET_LOTS_PER_OP_MAX);
    return lots_query(db, tx,
                      "SELECT " LOT_COLUMNS " FROM lots WHERE merchant_id = $1 AND member_id = $2 "
                      " AND has_available AND expires_at <= to_timestamp($3) "
                      "ORDER BY expires_at, code, id LIMIT $4",
                      &p, out, n);
}

status_t wallet_store_lot(db_t *db, wallet_tx_t *tx, const char *merchant_id, const char *id,
                          wallet_lot_t **out) {
    *out = wallet_tx_find_lot(tx, id);
    if (*out != NULL) {
        return status_ok();
    }
    db_params_t p;
    db_params_key(&p, merchant_id, id);
    wallet_lot_t **lots = NULL;
    int n = 0;
    status_t st =
        lots_query(db, tx, "SELECT " LOT_COLUMNS " FROM lots WHERE merchant_id = $1 AND id = $2",
                   &p, &lots, &n);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (n != 1) {
        return status_make(STATUS_INTERNAL, REASON_LEDGER_INVARIANT, "lot %.40s is missing", id);
    }
    *out = lots[0];
    return status_ok();
}

/* The sort key of a lot in spending order as text: never-expiring lots sort last, so their
 * expiry is written as 9999999999. */
// clang-format off
#define LOT_ORDER_KEY                                                                              \
    "lpad(coalesce(" SQL_EPOCH_S("expires_at") ", 9999999999)::text, 11, '0') "                    \
    "|| '.' || code || '.' || id"
// clang-format on

/* A lot as the API shows it: LOT_COLUMNS, then its order key, which *ctx (a char **) keeps, so
 * that the page's last is the next page's cursor. */
static const db_col_t LOT_VIEW_COL_TABLE[] = {
    DB_FIELD(DB_COL_TEXT, "id"),
    DB_FIELD(DB_COL_TEXT, "member_id"),
    DB_FIELD(DB_COL_INT, "kind"),
    DB_FIELD(DB_COL_INT, "origin"),
    DB_FIELD(DB_COL_TEXT, "top_up_id"),
    DB_FIELD(DB_COL_INT, "credited_cents"),
    DB_FIELD(DB_COL_INT, "debited_cents"),
    DB_FIELD(DB_COL_INT, "held_cents"),
    DB_COL_SKIPPED, /* expired_cents: the view shows what is available instead */
    DB_FIELD(DB_COL_INT, "expires_at"),
    DB_FIELD(DB_COL_INT, "created_at"),
};
static const db_cols_t LOT_VIEW_COLS =
    DB_COLS_MESSAGE(LOT_VIEW_COL_TABLE, &loyalty__v1__wallet_lot__descriptor);

static status_t lot_view_row(void *ctx, arena_t *a, const PGresult *r, int row, void *item) {
    status_t st = db_cols_read(a, &LOT_VIEW_COLS, r, row, item);
    if (!status_is_ok(&st)) {
        return st;
    }
    Loyalty__V1__WalletLot *l = *(Loyalty__V1__WalletLot **)item;
    l->available_cents = l->credited_cents - l->debited_cents - l->held_cents;
    *(char **)ctx = db_dup_str(a, r, row, 11);
    return status_ok();
}

status_t wallet_store_lot_list(db_t *db, arena_t *a, const char *merchant_id, const char *member_id,
                               bool include_closed, const char *after_key, int32_t limit,
                               Loyalty__V1__WalletLot ***out, size_t *n, char **last_key) {
    db_params_t p;
    db_params_key(&p, merchant_id, member_id);
    db_param_bool(&p, include_closed);
    db_param_text(&p, after_key);
    db_param_int(&p, limit);
    *last_key = NULL;
    db_rows_t rows = {.item_size = sizeof **out};
    status_t st = db_rows(db, a,
                          "SELECT " LOT_COLUMNS ", " LOT_ORDER_KEY " AS k FROM lots "
                          "WHERE merchant_id = $1 AND member_id = $2 "
                          " AND ($3 OR debited_cents < credited_cents) "
                          " AND ($4 = '' OR " LOT_ORDER_KEY " > $4) "
                          "ORDER BY k LIMIT $5",
                          &p, lot_view_row, last_key, &rows);
    *out = rows.items;
    *n = rows.n;
    return st;
}

/* ---- spends ---- */

status_t wallet_store_spend_claim(db_t *db, arena_t *a, const char *merchant_id,
                                  const char *reference, const char *member_id, char **owner) {
    db_params_t p;
    db_params_key(&p, merchant_id, reference);
    db_param_text(&p, member_id);
    PGresult *r = NULL;
    status_t st = db_exec(db, SPEND_CLAIM_SQL, &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (PQntuples(r) == 1) {
        *owner = db_dup_str(a, r, 0, 0);
        PQclear(r);
        return status_ok();
    }
    PQclear(r);
    int64_t captured = 0;
    int64_t refunded = 0;
    return wallet_store_spend_get(db, a, merchant_id, reference, owner, &captured, &refunded);
}

status_t wallet_store_spend_get(db_t *db, arena_t *a, const char *merchant_id,
                                const char *reference, char **member_id, int64_t *captured,
                                int64_t *refunded) {
    db_params_t p;
    db_params_key(&p, merchant_id, reference);
    PGresult *r = NULL;
    status_t st =
        db_exec_row(db,
                    "SELECT member_id, captured_cents, refunded_cents FROM spends "
                    "WHERE merchant_id = $1 AND reference = $2",
                    &p, &r, STATUS_NOT_FOUND, REASON_REFERENCE_NOT_FOUND, "reference not found");
    if (!status_is_ok(&st)) {
        return st;
    }
    *member_id = db_dup_str(a, r, 0, 0);
    *captured = db_get_int(r, 0, 1);
    *refunded = db_get_int(r, 0, 2);
    PQclear(r);
    return status_ok();
}

status_t wallet_store_spend_add(db_t *db, const char *merchant_id, const char *reference,
                                const wallet_spend_part_t *parts, const int64_t *captured,
                                const int64_t *refunded, int n) {
    arena_t a;
    arena_init(&a);
    char **lot_ids = strs(&a, n);
    int64_t *codes = ints(&a, n);
    int64_t total_captured = 0;
    int64_t total_refunded = 0;
    for (int i = 0; i < n; i++) {
        lot_ids[i] = parts[i].lot->id;
        codes[i] = parts[i].code;
        total_captured += captured[i];
        total_refunded += refunded[i];
    }
    db_params_t p;
    db_params_key(&p, merchant_id, reference);
    DB_PARAM_TEXTS(&p, pgarray_encode(&a, lot_ids, (size_t)n), pgarray_encode_int64(&a, codes, n),
                   pgarray_encode_int64(&a, captured, n), pgarray_encode_int64(&a, refunded, n));
    db_param_int(&p, total_captured);
    db_param_int(&p, total_refunded);
    /* A capture adds rows (or to them); a refund only ever adds to rows its captures made. Two
     * statements, because an INSERT checks its row's constraints before it finds the conflict,
     * and a refund-only row would break refunded <= captured. */
    static const char capture_sql[] =
        "WITH l AS ("
        " INSERT INTO spend_lots (merchant_id, reference, lot_id, code, captured_cents) "
        " SELECT $1, $2, d.lot_id, d.code, d.captured "
        " FROM unnest($3::text[], $4::smallint[], $5::bigint[], $6::bigint[]) "
        "  AS d(lot_id, code, captured, refunded) WHERE d.captured > 0 "
        " ON CONFLICT (merchant_id, reference, lot_id) DO UPDATE SET "
        "  captured_cents = spend_lots.captured_cents + EXCLUDED.captured_cents "
        " RETURNING 1) "
        "UPDATE spends SET captured_cents = captured_cents + $7, "
        " refunded_cents = refunded_cents + $8 WHERE merchant_id = $1 AND reference = $2";
    static const char refund_sql[] =
        "WITH l AS ("
        " UPDATE spend_lots SET refunded_cents = spend_lots.refunded_cents + d.refunded "
        " FROM unnest($3::text[], $4::smallint[], $5::bigint[], $6::bigint[]) "
        "  AS d(lot_id, code, captured, refunded) "
        " WHERE spend_lots.merchant_id = $1 AND spend_lots.reference = $2 "
        "  AND spend_lots.lot_id = ANY ($3::text[]) AND spend_lots.lot_id = d.lot_id "
        "  AND d.refunded > 0 "
        " RETURNING 1) "
        "UPDATE spends SET captured_cents = captured_cents + $7, "
        " refunded_cents = refunded_cents + $8 WHERE merchant_id = $1 AND reference = $2";
    assert(total_captured == 0 || total_refunded == 0);
    status_t st = db_exec(db, total_refunded > 0 ? refund_sql : capture_sql, &p, NULL);
    arena_free(&a);
    return st;
}

status_t wallet_store_spend_parts(db_t *db, wallet_tx_t *tx, const char *merchant_id,
                                  const char *reference, wallet_spend_part_t **out, int *n) {
    db_params_t p;
    db_params_key(&p, merchant_id, reference);
    db_param_int(&p, WALLET_LOTS_PER_OP_MAX);
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "SELECT lot_id, code, captured_cents, refunded_cents FROM spend_lots "
                          "WHERE merchant_id = $1 AND reference = $2 ORDER BY lot_id LIMIT $3",
                          &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    int rows = PQntuples(r);
    *out = arena_alloc(tx->arena, (size_t)(rows + 1) * sizeof **out);
    *n = 0;
    for (int i = 0; i < rows && status_is_ok(&st); i++) {
        wallet_spend_part_t *sp = &(*out)[i];
        sp->code = (int)db_get_int(r, i, 1);
        sp->captured = db_get_int(r, i, 2);
        sp->refunded = db_get_int(r, i, 3);
        st = wallet_store_lot(db, tx, merchant_id, db_get_str(r, i, 0), &sp->lot);
        *n = i + 1;
    }
    PQclear(r);
    return st;
}
