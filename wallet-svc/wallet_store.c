/* wallet_store.c -- SQL of the `wallet` schema (see wallet_store.h): merchant settings and
 * time-zone arithmetic, top-up plans, member wallets (accounts, locks, balances, due dates),
 * top-ups and the background scans. Lots and spends are in wallet_store_lots.c, holds in
 * wallet_store_holds.c, the ledger flush in wallet_store_flush.c, statements, reports and
 * VerifyLedger in wallet_store_report.c. */
#include "wallet_store_internal.h"

#include <string.h>

/* ---- settings ---- */

status_t wallet_store_settings_get(db_t *db, arena_t *a, const char *merchant_id, int64_t now,
                                   wallet_settings_t *out) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_int(&p, now);
    PGresult *r = NULL;
    // clang-format off
    status_t st = db_exec(db,
                          "SELECT deposit_expiry_months, time_zone, refund_grace_days, "
                          " " SQL_EPOCH_S("updated_at") ", "
                          "(to_timestamp($2) AT TIME ZONE time_zone)::date - "
                          SQL_DAY_ZERO " "
                          "FROM settings WHERE merchant_id = $1",
                          &p, &r);
    // clang-format on
    if (!status_is_ok(&st)) {
        return st;
    }
    if (PQntuples(r) == 0) {
        *out = (wallet_settings_t){
            .deposit_expiry_months = 0,
            .time_zone = arena_strdup(a, "UTC"),
            .refund_grace_days = 30,
            .updated_at = 0,
            .local_day = now >= 0 ? now / 86400 : (now - 86399) / 86400,
        };
    } else {
        static const db_col_t cols[] = {
            DB_COL(DB_COL_INT, wallet_settings_t, deposit_expiry_months),
            DB_COL(DB_COL_TEXT, wallet_settings_t, time_zone),
            DB_COL(DB_COL_INT, wallet_settings_t, refund_grace_days),
            DB_COL(DB_COL_INT, wallet_settings_t, updated_at),
            DB_COL(DB_COL_INT, wallet_settings_t, local_day),
        };
        static const db_cols_t settings = DB_COLS(cols);
        st = db_cols_read(a, &settings, r, 0, out);
    }
    PQclear(r);
    return st;
}

status_t wallet_store_settings_put(db_t *db, const char *merchant_id, const wallet_settings_t *s) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_int(&p, s->deposit_expiry_months);
    db_param_text(&p, s->time_zone);
    db_param_int(&p, s->refund_grace_days);
    return db_exec(db,
                   "INSERT INTO settings (merchant_id, deposit_expiry_months, time_zone, "
                   " refund_grace_days, updated_at) VALUES ($1, $2, $3, $4, now()) "
                   "ON CONFLICT (merchant_id) DO UPDATE SET "
                   " deposit_expiry_months = EXCLUDED.deposit_expiry_months, "
                   " time_zone = EXCLUDED.time_zone, "
                   " refund_grace_days = EXCLUDED.refund_grace_days, updated_at = now()",
                   &p, NULL);
}

status_t wallet_store_check_time_zone(db_t *db, const char *time_zone) {
    bool known = false;
    status_t st = db_time_zone_known(db, time_zone, &known);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (!known) {
        return status_invalid_field("time_zone", "unknown IANA time zone '%.64s'", time_zone);
    }
    return status_ok();
}

status_t wallet_store_local_midnight(db_t *db, const char *time_zone, int64_t day, int64_t *at) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, time_zone);
    db_param_int(&p, day);
    PGresult *r = NULL;
    // clang-format off
    status_t st = db_exec(db,
                          "SELECT " SQL_EPOCH_S("(" SQL_DATE_OF_DAY("$2") "::timestamp "
                                                " AT TIME ZONE $1)"),
                          &p, &r);
    // clang-format on
    if (!status_is_ok(&st)) {
        return st;
    }
    *at = db_get_int(r, 0, 0);
    PQclear(r);
    return status_ok();
}

status_t wallet_store_date_start(db_t *db, const char *time_zone, const char *date, int64_t *at) {
    db_params_t p;
    db_params_key(&p, time_zone, date);
    PGresult *r = NULL;
    // clang-format off
    status_t st = db_exec(
        db, "SELECT " SQL_EPOCH_S("($2::date::timestamp AT TIME ZONE $1)"), &p, &r);
    // clang-format on
    if (!status_is_ok(&st)) {
        return st;
    }
    *at = db_get_int(r, 0, 0);
    PQclear(r);
    return status_ok();
}

/* ---- plans ---- */

// clang-format off
#define PLAN_COLUMNS                                                                               \
    "id, name, pay_cents, bonus_cents, expiry_months, " SQL_EPOCH_S("active_from") ", "            \
    SQL_EPOCH_S_OR_0("active_until") ", enabled, " SQL_EPOCH_S("created_at") ", "                 \
    SQL_EPOCH_S("updated_at")
// clang-format on

/* expiry_months is set only when not NULL (absent: the merchant's default). */
static const db_col_t PLAN_COL_TABLE[] = {
    DB_FIELD(DB_COL_TEXT, "id"),
    DB_FIELD(DB_COL_TEXT, "name"),
    DB_FIELD(DB_COL_INT, "pay_cents"),
    DB_FIELD(DB_COL_INT, "bonus_cents"),
    DB_FIELD(DB_COL_INT, "expiry_months"),
    DB_FIELD(DB_COL_INT, "active_from_at"),
    DB_FIELD(DB_COL_INT, "active_until_at"),
    DB_FIELD(DB_COL_BOOL, "enabled"),
    DB_FIELD(DB_COL_INT, "created_at"),
    DB_FIELD(DB_COL_INT, "updated_at"),
};
static const db_cols_t PLAN_COLS =
    DB_COLS_MESSAGE(PLAN_COL_TABLE, &loyalty__v1__wallet_top_up_plan__descriptor);

static bool plan_has_expiry(const Loyalty__V1__WalletTopUpPlan *pl) {
    return pl->_expiry_months_case == LOYALTY__V1__WALLET_TOP_UP_PLAN___EXPIRY_MONTHS_EXPIRY_MONTHS;
}

/* One plan row (a get, an INSERT or UPDATE ... RETURNING); PLAN_NOT_FOUND without one. */
static status_t plan_one(db_t *db, arena_t *a, const char *merchant_id, const char *sql,
                         const db_params_t *p, Loyalty__V1__WalletTopUpPlan **out) {
    status_t st = db_row_get_cols(db, a, sql, p, &PLAN_COLS, out, STATUS_NOT_FOUND,
                                  REASON_PLAN_NOT_FOUND, "plan not found");
    if (status_is_ok(&st)) {
        (*out)->merchant_id = arena_strdup(a, merchant_id);
    }
    return st;
}

status_t wallet_store_plan_insert(db_t *db, arena_t *a, const char *merchant_id,
                                  const Loyalty__V1__WalletTopUpPlan *pl,
                                  Loyalty__V1__WalletTopUpPlan **out) {
    db_params_t p;
    db_params_key(&p, merchant_id, pl->id);
    db_param_text(&p, pl->name);
    db_param_int(&p, pl->pay_cents);
    db_param_int(&p, pl->bonus_cents);
    if (plan_has_expiry(pl)) {
        db_param_int(&p, pl->expiry_months);
    } else {
        db_param_null(&p);
    }
    db_param_int(&p, pl->active_from_at);
    db_param_int(&p, pl->active_until_at);
    return plan_one(
        db, a, merchant_id,
        "INSERT INTO plans (merchant_id, id, name, pay_cents, bonus_cents, expiry_months, "
        " active_from, active_until, enabled) "
        "VALUES ($1, $2, $3, $4, $5, $6::int, to_timestamp($7), "
        " CASE WHEN $8::bigint = 0 THEN NULL ELSE to_timestamp($8) END, true) "
        "RETURNING " PLAN_COLUMNS,
        &p, out);
}

status_t wallet_store_plan_get(db_t *db, arena_t *a, const char *merchant_id, const char *id,
                               bool for_update, Loyalty__V1__WalletTopUpPlan **out) {
    db_params_t p;
    db_params_key(&p, merchant_id, id);
    return plan_one(db, a, merchant_id,
                    for_update ? "SELECT " PLAN_COLUMNS
                                 " FROM plans WHERE merchant_id = $1 AND id = $2 FOR UPDATE"
                               : "SELECT " PLAN_COLUMNS
                                 " FROM plans WHERE merchant_id = $1 AND id = $2",
                    &p, out);
}

status_t wallet_store_plan_update(db_t *db, arena_t *a, const char *merchant_id,
                                  const Loyalty__V1__WalletTopUpPlan *pl,
                                  Loyalty__V1__WalletTopUpPlan **out) {
    db_params_t p;
    db_params_key(&p, merchant_id, pl->id);
    db_param_text(&p, pl->name);
    db_param_bool(&p, pl->enabled);
    db_param_int(&p, pl->active_from_at);
    db_param_int(&p, pl->active_until_at);
    return plan_one(db, a, merchant_id,
                    "UPDATE plans SET name = $3, enabled = $4, active_from = to_timestamp($5), "
                    " active_until = CASE WHEN $6::bigint = 0 THEN NULL "
                    "  ELSE to_timestamp($6) END, updated_at = now() "
                    "WHERE merchant_id = $1 AND id = $2 RETURNING " PLAN_COLUMNS,
                    &p, out);
}

/* A plan of the merchant *ctx (a const char *) into its slot. */
static status_t plan_row(void *ctx, arena_t *a, const PGresult *r, int row, void *item) {
    status_t st = db_cols_read(a, &PLAN_COLS, r, row, item);
    if (status_is_ok(&st)) {
        (*(Loyalty__V1__WalletTopUpPlan **)item)->merchant_id = arena_strdup(a, ctx);
    }
    return st;
}

status_t wallet_store_plan_list(db_t *db, arena_t *a, const char *merchant_id, const char *after_id,
                                int32_t limit, bool active_only, int64_t now,
                                Loyalty__V1__WalletTopUpPlan ***out, size_t *n) {
    db_params_t p;
    db_params_key(&p, merchant_id, after_id);
    db_param_int(&p, limit);
    db_param_bool(&p, active_only);
    db_param_int(&p, now);
    db_rows_t rows = {.item_size = sizeof **out};
    status_t st = db_rows(db, a,
                          "SELECT " PLAN_COLUMNS " FROM plans WHERE merchant_id = $1 "
                          " AND ($2 = '' OR id < $2) "
                          " AND (NOT $4 OR (enabled AND active_from <= to_timestamp($5) "
                          "      AND (active_until IS NULL OR active_until > to_timestamp($5)))) "
                          "ORDER BY id DESC LIMIT $3",
                          &p, plan_row, (void *)merchant_id, &rows);
    *out = rows.items;
    *n = rows.n;
    return st;
}

/* ---- wallets ---- */

status_t wallet_store_member_ensure(db_t *db, const char *merchant_id, const char *member_id) {
    db_params_t p;
    db_params_key(&p, merchant_id, member_id);
    db_param_int(&p, WALLET_DUE_NEVER); /* a new wallet has nothing to settle */
    return db_exec(db,
                   "INSERT INTO accounts (merchant_id, member_id, code, shard, next_due_at) "
                   "VALUES ($1, $2, 1, 0, $3), ($1, $2, 2, 0, $3) ON CONFLICT DO NOTHING",
                   &p, NULL);
}

/* Rows of MEMBER_COLUMNS (code, four balances, next_due_at) into m. */
void wallet_store_member_from_rows(wallet_member_t *m, const PGresult *r) {
    memset(m->acc, 0, sizeof m->acc);
    m->exists = PQntuples(r) > 0;
    m->next_due_at = WALLET_DUE_NEVER;
    for (int i = 0; i < PQntuples(r); i++) {
        int code = (int)db_get_int(r, i, 0);
        wallet_account_t *acc = wallet_member_account(m, code);
        acc->debits_pending = db_get_int(r, i, 1);
        acc->debits_posted = db_get_int(r, i, 2);
        acc->credits_pending = db_get_int(r, i, 3);
        acc->credits_posted = db_get_int(r, i, 4);
        if (code == WALLET_ACC_PRINCIPAL) {
            m->next_due_at = db_get_int(r, i, 5);
        }
    }
    memcpy(m->loaded, m->acc, sizeof m->acc);
    m->next_due_loaded = m->next_due_at;
}

status_t wallet_store_member_lock(db_t *db, const char *merchant_id, wallet_member_t *m,
                                  bool skip_locked, bool *locked) {
    db_params_t p;
    db_params_key(&p, merchant_id, m->member_id);
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          skip_locked ? MEMBER_ACCOUNTS_SQL " FOR UPDATE SKIP LOCKED"
                                      : MEMBER_ACCOUNTS_SQL " FOR UPDATE",
                          &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    /* Both rows are created together, so with SKIP LOCKED getting fewer than two means
     * another transaction holds the wallet. */
    *locked = !skip_locked || PQntuples(r) == 2;
    wallet_store_member_from_rows(m, r);
    PQclear(r);
    return status_ok();
}

status_t wallet_store_member_read(db_t *db, const char *merchant_id, wallet_member_t *m) {
    db_params_t p;
    db_params_key(&p, merchant_id, m->member_id);
    PGresult *r = NULL;
    status_t st = db_exec(db, MEMBER_ACCOUNTS_SQL, &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    wallet_store_member_from_rows(m, r);
    PQclear(r);
    return status_ok();
}

/* The hot read, one round trip: the member's accounts (no row without a wallet), each carrying
 * the same expiring figures ($3: until). */
// clang-format off
static const char BALANCE_SNAPSHOT_SQL[] =
    "SELECT " MEMBER_COLUMNS ", l.soon, l.next FROM accounts a, ("
    " SELECT coalesce(sum(credited_cents - debited_cents - held_cents) FILTER "
    "   (WHERE expires_at < to_timestamp($3)), 0)::bigint AS soon, "
    "  " SQL_EPOCH_S_OR_0("min(expires_at)") " AS next "
    " FROM lots WHERE merchant_id = $1 AND member_id = $2 "
    "  AND has_available AND expires_at IS NOT NULL) l "
    "WHERE a.merchant_id = $1 AND a.member_id = $2 AND a.code IN (1, 2) AND a.shard = 0 "
    "ORDER BY a.code";
// clang-format on

status_t wallet_store_balance_snapshot(db_t *db, const char *merchant_id, wallet_member_t *m,
                                       int64_t now, int64_t until, int64_t *soon_cents,
                                       int64_t *next_at, bool *due) {
    db_params_t p;
    db_params_key(&p, merchant_id, m->member_id);
    db_param_int(&p, until);
    PGresult *r = NULL;
    status_t st = db_exec(db, BALANCE_SNAPSHOT_SQL, &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    wallet_store_member_from_rows(m, r);
    int rows = PQntuples(r);
    *soon_cents = rows ? db_get_int(r, 0, 6) : 0;
    *next_at = rows ? db_get_int(r, 0, 7) : 0;
    *due = m->exists && m->next_due_at <= now;
    PQclear(r);
    return status_ok();
}

status_t wallet_store_next_due(db_t *db, const char *merchant_id, const char *member_id,
                               int64_t *at) {
    db_params_t p;
    db_params_key(&p, merchant_id, member_id);
    db_param_int(&p, WALLET_DUE_NEVER);
    PGresult *r = NULL;
    // clang-format off
    status_t st =
        db_exec(db,
                "SELECT coalesce(LEAST("
                " (SELECT " SQL_EPOCH_S("min(expires_at)") " FROM holds WHERE merchant_id = $1 "
                "   AND member_id = $2 AND state = 1), "
                " (SELECT " SQL_EPOCH_S("min(expires_at)") " FROM lots WHERE merchant_id = $1 "
                "   AND member_id = $2 AND "
                "has_available)), $3)",
                &p, &r);
    // clang-format on
    if (!status_is_ok(&st)) {
        return st;
    }
    *at = db_get_int(r, 0, 0);
    PQclear(r);
    return status_ok();
}

status_t wallet_store_expiring(db_t *db, const char *merchant_id, const char *member_id,
                               int64_t until, int64_t *cents, int64_t *next_at) {
    db_params_t p;
    db_params_key(&p, merchant_id, member_id);
    db_param_int(&p, until);
    PGresult *r = NULL;
    // clang-format off
    status_t st = db_exec(
        db,
        "SELECT coalesce(sum(credited_cents - debited_cents - held_cents) FILTER "
        "  (WHERE expires_at < to_timestamp($3)), 0)::bigint, "
        " " SQL_EPOCH_S_OR_0("min(expires_at)") " "
        "FROM lots WHERE merchant_id = $1 AND member_id = $2 "
        " AND has_available AND expires_at IS NOT NULL",
        &p, &r);
    // clang-format on
    if (!status_is_ok(&st)) {
        return st;
    }
    *cents = db_get_int(r, 0, 0);
    *next_at = db_get_int(r, 0, 1);
    PQclear(r);
    return status_ok();
}

/* ---- top-ups ---- */

// clang-format off
#define TOP_UP_COLUMNS                                                                             \
    "id, member_id, payment_ref, coalesce(plan_id, ''), paid_cents, bonus_cents, "                 \
    "principal_lot_id, coalesce(bonus_lot_id, ''), " SQL_EPOCH_S_OR_0("expires_at") ", "   \
    "refunded_cents, bonus_forfeited_cents, transfer_id, " SQL_EPOCH_S("created_at")
// clang-format on
static const db_col_t TOP_UP_COL_TABLE[] = {
    DB_COL(DB_COL_TEXT, wallet_top_up_row_t, id),
    DB_COL(DB_COL_TEXT, wallet_top_up_row_t, member_id),
    DB_COL(DB_COL_TEXT, wallet_top_up_row_t, payment_ref),
    DB_COL(DB_COL_TEXT, wallet_top_up_row_t, plan_id),
    DB_COL(DB_COL_INT, wallet_top_up_row_t, paid),
    DB_COL(DB_COL_INT, wallet_top_up_row_t, bonus),
    DB_COL(DB_COL_TEXT, wallet_top_up_row_t, principal_lot_id),
    DB_COL(DB_COL_TEXT, wallet_top_up_row_t, bonus_lot_id),
    DB_COL(DB_COL_INT, wallet_top_up_row_t, expires_at),
    DB_COL(DB_COL_INT, wallet_top_up_row_t, refunded),
    DB_COL(DB_COL_INT, wallet_top_up_row_t, forfeited),
    DB_COL(DB_COL_TEXT, wallet_top_up_row_t, transfer_id),
    DB_COL(DB_COL_INT, wallet_top_up_row_t, created_at),
};
static const db_cols_t TOP_UP_COLS = DB_COLS(TOP_UP_COL_TABLE);

status_t wallet_store_top_up_insert(db_t *db, const char *merchant_id,
                                    const wallet_top_up_row_t *t) {
    db_params_t p;
    db_params_key(&p, merchant_id, t->id);
    DB_PARAM_TEXTS(&p, t->member_id, t->payment_ref, t->plan_id);
    db_param_int(&p, t->paid);
    db_param_int(&p, t->bonus);
    db_param_text(&p, t->principal_lot_id);
    db_param_text(&p, t->bonus_lot_id);
    db_param_int(&p, t->expires_at);
    db_param_text(&p, t->transfer_id);
    db_param_int(&p, t->created_at);
    status_t st = db_exec(
        db,
        "INSERT INTO top_ups (merchant_id, id, member_id, payment_ref, plan_id, paid_cents, "
        " bonus_cents, principal_lot_id, bonus_lot_id, expires_at, transfer_id, created_at) "
        "VALUES ($1, $2, $3, $4, NULLIF($5, ''), $6, $7, $8, NULLIF($9, ''), "
        " CASE WHEN $10::bigint = 0 THEN NULL ELSE to_timestamp($10) END, $11, "
        " to_timestamp($12))",
        &p, NULL);
    if (st.code == STATUS_ALREADY_EXISTS &&
        strcmp(db_last_constraint(db), "top_ups_payment_ref_key") == 0) {
        return status_make(STATUS_ALREADY_EXISTS, REASON_PAYMENT_REF_TAKEN,
                           "payment_ref was already credited by another top-up");
    }
    return st;
}

status_t wallet_store_top_up_get(db_t *db, arena_t *a, const char *merchant_id,
                                 const char *payment_ref, wallet_top_up_row_t *out) {
    db_params_t p;
    db_params_key(&p, merchant_id, payment_ref);
    *out = (wallet_top_up_row_t){0};
    return db_row_get_cols(db, a,
                           "SELECT " TOP_UP_COLUMNS " FROM top_ups "
                           "WHERE merchant_id = $1 AND payment_ref = $2",
                           &p, &TOP_UP_COLS, out, STATUS_NOT_FOUND, REASON_TOP_UP_NOT_FOUND,
                           "top-up not found");
}

status_t wallet_store_top_up_update(db_t *db, const char *merchant_id,
                                    const wallet_top_up_row_t *t) {
    db_params_t p;
    db_params_key(&p, merchant_id, t->id);
    db_param_int(&p, t->refunded);
    db_param_int(&p, t->forfeited);
    return db_exec(db,
                   "UPDATE top_ups SET refunded_cents = $3, bonus_forfeited_cents = $4 "
                   "WHERE merchant_id = $1 AND id = $2",
                   &p, NULL);
}

/* ---- background work ---- */

static status_t due_row(void *ctx, arena_t *a, const PGresult *r, int row, void *item) {
    wallet_due_t *d = item;
    d->merchant_id = db_dup_str(a, r, row, 0);
    d->member_id = db_dup_str(a, r, row, 1);
    return status_ok();
}

status_t wallet_store_due_wallets(db_t *db, arena_t *a, int64_t now, int limit, wallet_due_t **out,
                                  int *n) {
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, now);
    db_param_int(&p, limit);
    db_rows_t rows = {.item_size = sizeof **out};
    status_t st = db_rows(
        db, a,
        "SELECT merchant_id, member_id FROM ("
        " (SELECT merchant_id, member_id FROM holds "
        "   WHERE state = 1 AND expires_at <= to_timestamp($1) ORDER BY expires_at LIMIT $2) "
        " UNION "
        " (SELECT merchant_id, member_id FROM lots "
        "   WHERE expires_at <= to_timestamp($1) AND has_available "
        "   ORDER BY expires_at LIMIT $2)) due LIMIT $2",
        &p, due_row, NULL, &rows);
    *out = rows.items;
    *n = (int)rows.n;
    return st;
}

static status_t member_id_row(void *ctx, arena_t *a, const PGresult *r, int row, void *item) {
    *(char **)item = db_dup_str(a, r, row, 0);
    return status_ok();
}

status_t wallet_store_lapsed_members(db_t *db, arena_t *a, const char *merchant_id, int64_t now,
                                     int limit, char ***out, int *n) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_int(&p, now);
    db_param_int(&p, limit);
    db_rows_t rows = {.item_size = sizeof **out};
    status_t st = db_rows(db, a,
                          "SELECT DISTINCT member_id FROM lots WHERE merchant_id = $1 "
                          " AND expires_at <= to_timestamp($2) "
                          " AND has_available "
                          "ORDER BY member_id LIMIT $3",
                          &p, member_id_row, NULL, &rows);
    *out = rows.items;
    *n = (int)rows.n;
    return st;
}
