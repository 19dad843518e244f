/* wallet_store_holds.c -- wallet holds in PostgreSQL: finding a pending hold, writing and
 * updating hold rows, the holds due to lapse, and loading a hold with its reserved lot parts
 * (with or without locking its wallet). */
#include "wallet_store_internal.h"

/* A hold's member never changes, so finding the wallet through it and locking the wallet is
 * one statement. */
#define LOCK_BY_HOLD_SQL                                                                           \
    "SELECT " MEMBER_COLUMNS ", a.member_id FROM accounts a "                                      \
    "WHERE a.merchant_id = $1 AND a.member_id = (SELECT member_id "                                \
    "  FROM holds WHERE merchant_id = $1 AND id = $2) "                                            \
    " AND a.code IN (1, 2) AND a.shard = 0 ORDER BY a.code FOR UPDATE"

status_t wallet_store_pending_hold_id(db_t *db, arena_t *a, const char *merchant_id,
                                      const char *member_id, const char *reference, char **id) {
    db_params_t p;
    db_params_key(&p, merchant_id, member_id);
    db_param_text(&p, reference);
    PGresult *r = NULL;
    /* holds_pending_member finds the member's pending holds; few, so the reference is a filter. */
    status_t st = db_exec_row(db,
                              "SELECT id FROM holds WHERE merchant_id = $1 AND member_id = $2 "
                              " AND state = 1 AND reference = $3 "
                              "ORDER BY created_at DESC, id DESC LIMIT 1",
                              &p, &r, STATUS_NOT_FOUND, REASON_HOLD_NOT_FOUND,
                              "the member has no pending hold with this reference");
    if (!status_is_ok(&st)) {
        return st;
    }
    *id = arena_strdup(a, db_get_str(r, 0, 0));
    PQclear(r);
    return status_ok();
}

/* ---- holds ---- */

// clang-format off
#define HOLD_COLUMNS                                                                               \
    "id, member_id, reference, amount_cents, captured_cents, state, "                              \
    SQL_EPOCH_S("expires_at") ", "                                                                 \
    "transfer_id, " SQL_EPOCH_S("created_at") ", " SQL_EPOCH_S("updated_at")
// clang-format on

static const db_col_t HOLD_COL_TABLE[] = {
    DB_COL(DB_COL_TEXT, wallet_hold_row_t, id),
    DB_COL(DB_COL_TEXT, wallet_hold_row_t, member_id),
    DB_COL(DB_COL_TEXT, wallet_hold_row_t, reference),
    DB_COL(DB_COL_INT, wallet_hold_row_t, amount_cents),
    DB_COL(DB_COL_INT, wallet_hold_row_t, captured),
    DB_COL(DB_COL_INT, wallet_hold_row_t, state),
    DB_COL(DB_COL_INT, wallet_hold_row_t, expires_at),
    DB_COL(DB_COL_TEXT, wallet_hold_row_t, transfer_id),
    DB_COL(DB_COL_INT, wallet_hold_row_t, created_at),
    DB_COL(DB_COL_INT, wallet_hold_row_t, updated_at),
};
static const db_cols_t HOLD_COLS = DB_COLS(HOLD_COL_TABLE);

status_t wallet_store_hold_insert(db_t *db, const char *merchant_id, const wallet_hold_row_t *h) {
    db_params_t p;
    db_params_key(&p, merchant_id, h->id);
    db_param_text(&p, h->member_id);
    db_param_text(&p, h->reference);
    db_param_int(&p, h->amount_cents);
    db_param_int(&p, h->state);
    db_param_int(&p, h->expires_at);
    db_param_text(&p, h->transfer_id);
    db_param_int(&p, h->created_at);
    /* Deferred: the hold row travels with the ledger's flush. */
    return db_exec_deferred(db,
                            "INSERT INTO holds (merchant_id, id, member_id, reference, "
                            " amount_cents, state, expires_at, transfer_id, created_at, "
                            " updated_at) VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7), $8, "
                            " to_timestamp($9), to_timestamp($9))",
                            &p, NULL);
}

status_t wallet_store_hold_update(db_t *db, const char *merchant_id, const wallet_hold_row_t *h) {
    db_params_t p;
    db_params_key(&p, merchant_id, h->id);
    db_param_int(&p, h->state);
    db_param_int(&p, h->captured);
    db_param_int(&p, h->updated_at);
    db_expect_t the_hold = {.rows = -1,
                            .refusal = status_make(STATUS_INTERNAL, REASON_LEDGER_INVARIANT,
                                                   "the hold row to update is missing")};
    return db_exec_deferred(db,
                            "WITH u AS (UPDATE holds SET state = $3, captured_cents = $4, "
                            " updated_at = to_timestamp($5) WHERE merchant_id = $1 AND id = $2 "
                            " RETURNING 1) "
                            "SELECT refuse('LEDGER_INVARIANT') WHERE NOT EXISTS (SELECT FROM u)",
                            &p, &the_hold);
}

status_t wallet_store_holds_due(db_t *db, arena_t *a, const char *merchant_id,
                                const char *member_id, int64_t now, wallet_hold_row_t **out,
                                int *n) {
    db_params_t p;
    db_params_key(&p, merchant_id, member_id);
    db_param_int(&p, now);
    db_param_int(&p, WALLET_LOTS_PER_OP_MAX);
    db_rows_t rows = {.item_size = sizeof **out};
    status_t st = db_rows_cols(db, a,
                               "SELECT " HOLD_COLUMNS " FROM holds WHERE merchant_id = $1 "
                               " AND member_id = $2 AND state = 1 "
                               " AND expires_at <= to_timestamp($3) "
                               "ORDER BY expires_at, id LIMIT $4",
                               &p, &HOLD_COLS, &rows);
    *out = rows.items;
    *n = (int)rows.n;
    return st;
}

// clang-format off
#define LOT_COLUMNS_L                                                                              \
    "l.id, l.member_id, l.code, l.origin, coalesce(l.top_up_id, ''), l.credited_cents, "           \
    "l.debited_cents, l.held_cents, l.expired_cents, " SQL_EPOCH_S_OR_0("l.expires_at") ", "       \
    SQL_EPOCH_S("l.created_at")
// clang-format on

/* The hold, and per reserved part (the pending debits of its HOLD transfer, written in spending
 * order) the amount and the lot: one statement. */
// clang-format off
#define HOLD_LOAD_SQL                                                                              \
    "SELECT h.id, h.member_id, h.reference, h.amount_cents, h.captured_cents, "                    \
    "h.state, " SQL_EPOCH_S("h.expires_at") ", h.transfer_id, " SQL_EPOCH_S("h.created_at") ", "   \
    SQL_EPOCH_S("h.updated_at") ", p.debit_cents, " LOT_COLUMNS_L " "                              \
    "FROM holds h JOIN postings p ON p.merchant_id = h.merchant_id "                               \
    " AND p.transfer_id = h.transfer_id AND p.pending AND "                                        \
    "p.debit_cents > 0 "                                                                           \
    "JOIN lots l ON l.merchant_id = p.merchant_id AND l.id = p.lot_id "                            \
    "WHERE h.merchant_id = $1 AND h.id = $2 ORDER BY p.line"
// clang-format on

static status_t hold_from_result(wallet_tx_t *tx, const PGresult *r, wallet_hold_row_t *h,
                                 wallet_hold_part_t **parts, int *n) {
    int rows = PQntuples(r);
    if (rows == 0) {
        return status_make(STATUS_NOT_FOUND, REASON_HOLD_NOT_FOUND, "hold not found");
    }
    status_t st = db_cols_read(tx->arena, &HOLD_COLS, r, 0, h);
    *parts = arena_alloc(tx->arena, (size_t)rows * sizeof **parts);
    for (int i = 0; i < rows && status_is_ok(&st); i++) {
        (*parts)[i].amount_cents = db_get_int(r, i, 10);
        st = wallet_store_lot_from_row_at(tx, r, i, 11, &(*parts)[i].lot);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    *n = rows;
    return status_ok();
}

status_t wallet_store_hold_load(db_t *db, wallet_tx_t *tx, const char *merchant_id,
                                const char *hold_id, wallet_hold_row_t *h,
                                wallet_hold_part_t **parts, int *n) {
    db_params_t p;
    db_params_key(&p, merchant_id, hold_id);
    PGresult *r = NULL;
    status_t st = db_exec(db, HOLD_LOAD_SQL, &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    st = hold_from_result(tx, r, h, parts, n);
    PQclear(r);
    return st;
}

status_t wallet_store_hold_open(db_t *db, wallet_tx_t *tx, const char *merchant_id,
                                const char *hold_id, wallet_member_t **m, wallet_hold_row_t *h,
                                wallet_hold_part_t **parts, int *n) {
    db_params_t p;
    db_params_key(&p, merchant_id, hold_id);
    /* The hold is read once its wallet is locked: in this order on the server. */
    db_exec_item_t q[2] = {{.sql = LOCK_BY_HOLD_SQL, .params = &p},
                           {.sql = HOLD_LOAD_SQL, .params = &p}};
    status_t st = db_exec_all(db, q, 2);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (PQntuples(q[0].out) == 0) {
        st = status_make(STATUS_NOT_FOUND, REASON_HOLD_NOT_FOUND, "hold not found");
    } else {
        *m = wallet_tx_member(tx, db_get_str(q[0].out, 0, 6));
        wallet_store_member_from_rows(*m, q[0].out);
        st = hold_from_result(tx, q[1].out, h, parts, n);
    }
    PQclear(q[0].out);
    PQclear(q[1].out);
    return st;
}
