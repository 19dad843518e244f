/* wallet_store.c -- SQL of the `wallet` schema (see wallet_store.h). */
#include "wallet_store.h"

#include "log.h"
#include "pgarray.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EPOCH(col) "extract(epoch FROM " col ")::bigint"

/* ---- helpers ---- */

static int64_t *ints(arena_t *a, int n) {
    return arena_alloc(a, (size_t)(n ? n : 1) * sizeof(int64_t));
}

static char **strs(arena_t *a, int n) {
    return arena_alloc(a, (size_t)(n ? n : 1) * sizeof(char *));
}

/* ---- settings ---- */

status_t wallet_store_settings_get(db_t *db, arena_t *a, const char *merchant_id, int64_t now,
                                   wallet_settings_t *out) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_int(&p, now);
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "SELECT deposit_expiry_months, time_zone, refund_grace_days, " EPOCH(
                              "updated_at") ", "
                                            "(to_timestamp($2) AT TIME ZONE time_zone)::date - "
                                            "date '1970-01-01' "
                                            "FROM settings WHERE merchant_id = $1",
                          &p, &r);
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
        *out = (wallet_settings_t){
            .deposit_expiry_months = (int32_t)db_get_int(r, 0, 0),
            .time_zone = db_dup_str(a, r, 0, 1),
            .refund_grace_days = (int32_t)db_get_int(r, 0, 2),
            .updated_at = db_get_int(r, 0, 3),
            .local_day = db_get_int(r, 0, 4),
        };
    }
    PQclear(r);
    return status_ok();
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
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, time_zone);
    PGresult *r = NULL;
    /* pg_timezone_names rather than AT TIME ZONE: an unknown zone would abort the whole
     * transaction, and numeric offsets like '+08' would be accepted with POSIX sign rules. */
    status_t st = db_exec(db, "SELECT 1 FROM pg_timezone_names WHERE name = $1", &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    bool known = PQntuples(r) == 1;
    PQclear(r);
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
    status_t st = db_exec(db,
                          "SELECT extract(epoch FROM ((date '1970-01-01' + $2::int)::timestamp "
                          " AT TIME ZONE $1))::bigint",
                          &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    *at = db_get_int(r, 0, 0);
    PQclear(r);
    return status_ok();
}

status_t wallet_store_date_start(db_t *db, const char *time_zone, const char *date, int64_t *at) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, time_zone);
    db_param_text(&p, date);
    PGresult *r = NULL;
    status_t st = db_exec(
        db, "SELECT extract(epoch FROM ($2::date::timestamp AT TIME ZONE $1))::bigint", &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    *at = db_get_int(r, 0, 0);
    PQclear(r);
    return status_ok();
}

/* ---- plans ---- */

#define PLAN_COLUMNS                                                                               \
    "id, name, pay_cents, bonus_cents, expiry_months, " EPOCH(                                     \
        "active_from") ", "                                                                        \
                       "coalesce(" EPOCH("active_until") ", 0), enabled, " EPOCH(                  \
                           "created_at") ", " EPOCH("updated_at")

static Loyalty__V1__WalletTopUpPlan *plan_from_row(arena_t *a, const char *merchant_id,
                                                   const PGresult *r, int row) {
    Loyalty__V1__WalletTopUpPlan *pl = arena_alloc(a, sizeof *pl);
    loyalty__v1__wallet_top_up_plan__init(pl);
    pl->id = db_dup_str(a, r, row, 0);
    pl->merchant_id = arena_strdup(a, merchant_id);
    pl->name = db_dup_str(a, r, row, 1);
    pl->pay_cents = db_get_int(r, row, 2);
    pl->bonus_cents = db_get_int(r, row, 3);
    if (!db_is_null(r, row, 4)) {
        pl->_expiry_months_case = LOYALTY__V1__WALLET_TOP_UP_PLAN___EXPIRY_MONTHS_EXPIRY_MONTHS;
        pl->expiry_months = (int32_t)db_get_int(r, row, 4);
    }
    pl->active_from_at = db_get_int(r, row, 5);
    pl->active_until_at = db_get_int(r, row, 6);
    pl->enabled = db_get_bool(r, row, 7);
    pl->created_at = db_get_int(r, row, 8);
    pl->updated_at = db_get_int(r, row, 9);
    return pl;
}

static bool plan_has_expiry(const Loyalty__V1__WalletTopUpPlan *pl) {
    return pl->_expiry_months_case == LOYALTY__V1__WALLET_TOP_UP_PLAN___EXPIRY_MONTHS_EXPIRY_MONTHS;
}

status_t wallet_store_plan_insert(db_t *db, arena_t *a, const char *merchant_id,
                                  const Loyalty__V1__WalletTopUpPlan *pl,
                                  Loyalty__V1__WalletTopUpPlan **out) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, pl->id);
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
    PGresult *r = NULL;
    status_t st = db_exec_row(
        db,
        "INSERT INTO plans (merchant_id, id, name, pay_cents, bonus_cents, expiry_months, "
        " active_from, active_until, enabled) "
        "VALUES ($1, $2, $3, $4, $5, $6::int, to_timestamp($7), "
        " CASE WHEN $8::bigint = 0 THEN NULL ELSE to_timestamp($8) END, true) "
        "RETURNING " PLAN_COLUMNS,
        &p, &r, STATUS_NOT_FOUND, "PLAN_NOT_FOUND", "plan not found");
    if (!status_is_ok(&st)) {
        return st;
    }
    *out = plan_from_row(a, merchant_id, r, 0);
    PQclear(r);
    return status_ok();
}

status_t wallet_store_plan_get(db_t *db, arena_t *a, const char *merchant_id, const char *id,
                               bool for_update, Loyalty__V1__WalletTopUpPlan **out) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, id);
    PGresult *r = NULL;
    status_t st = db_exec_row(
        db,
        for_update ? "SELECT " PLAN_COLUMNS
                     " FROM plans WHERE merchant_id = $1 AND id = $2 FOR UPDATE"
                   : "SELECT " PLAN_COLUMNS " FROM plans WHERE merchant_id = $1 AND id = $2",
        &p, &r, STATUS_NOT_FOUND, "PLAN_NOT_FOUND", "plan not found");
    if (!status_is_ok(&st)) {
        return st;
    }
    *out = plan_from_row(a, merchant_id, r, 0);
    PQclear(r);
    return status_ok();
}

status_t wallet_store_plan_update(db_t *db, arena_t *a, const char *merchant_id,
                                  const Loyalty__V1__WalletTopUpPlan *pl,
                                  Loyalty__V1__WalletTopUpPlan **out) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, pl->id);
    db_param_text(&p, pl->name);
    db_param_bool(&p, pl->enabled);
    db_param_int(&p, pl->active_from_at);
    db_param_int(&p, pl->active_until_at);
    PGresult *r = NULL;
    status_t st =
        db_exec_row(db,
                    "UPDATE plans SET name = $3, enabled = $4, active_from = to_timestamp($5), "
                    " active_until = CASE WHEN $6::bigint = 0 THEN NULL "
                    "  ELSE to_timestamp($6) END, updated_at = now() "
                    "WHERE merchant_id = $1 AND id = $2 RETURNING " PLAN_COLUMNS,
                    &p, &r, STATUS_NOT_FOUND, "PLAN_NOT_FOUND", "plan not found");
    if (!status_is_ok(&st)) {
        return st;
    }
    *out = plan_from_row(a, merchant_id, r, 0);
    PQclear(r);
    return status_ok();
}

status_t wallet_store_plan_list(db_t *db, arena_t *a, const char *merchant_id, const char *after_id,
                                int32_t limit, bool active_only, int64_t now,
                                Loyalty__V1__WalletTopUpPlan ***out, size_t *n) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, after_id);
    db_param_int(&p, limit);
    db_param_bool(&p, active_only);
    db_param_int(&p, now);
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "SELECT " PLAN_COLUMNS " FROM plans WHERE merchant_id = $1 "
                          " AND ($2 = '' OR id < $2) "
                          " AND (NOT $4 OR (enabled AND active_from <= to_timestamp($5) "
                          "      AND (active_until IS NULL OR active_until > to_timestamp($5)))) "
                          "ORDER BY id DESC LIMIT $3",
                          &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    *n = (size_t)PQntuples(r);
    *out = arena_alloc(a, (*n + 1) * sizeof **out);
    for (size_t i = 0; i < *n; i++) {
        (*out)[i] = plan_from_row(a, merchant_id, r, (int)i);
    }
    PQclear(r);
    return status_ok();
}

/* ---- wallets ---- */

status_t wallet_store_member_ensure(db_t *db, const char *merchant_id, const char *member_id) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, member_id);
    db_param_int(&p, WALLET_DUE_NEVER); /* a new wallet has nothing to settle */
    return db_exec(db,
                   "INSERT INTO accounts (merchant_id, member_id, code, shard, next_due_at) "
                   "VALUES ($1, $2, 1, 0, $3), ($1, $2, 2, 0, $3) ON CONFLICT DO NOTHING",
                   &p, NULL);
}

/* Rows of MEMBER_COLUMNS (code, four balances, next_due_at) into m. */
static void member_from_rows(wallet_member_t *m, const PGresult *r) {
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

#define MEMBER_COLUMNS                                                                             \
    "a.code, a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted, "             \
    "a.next_due_at"

#define MEMBER_ACCOUNTS_SQL                                                                        \
    "SELECT " MEMBER_COLUMNS " FROM accounts a "                                                   \
    "WHERE a.merchant_id = $1 AND a.member_id = $2 AND a.code IN (1, 2) AND a.shard = 0 "          \
    "ORDER BY a.code"

/* Claims a spend reference for a member: its owner back when new, no row when taken. */
#define SPEND_CLAIM_SQL                                                                            \
    "INSERT INTO spends (merchant_id, reference, member_id) VALUES ($1, $2, $3) "                  \
    "ON CONFLICT DO NOTHING RETURNING member_id"

status_t wallet_store_member_lock(db_t *db, const char *merchant_id, wallet_member_t *m,
                                  bool skip_locked, bool *locked) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, m->member_id);
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
    member_from_rows(m, r);
    PQclear(r);
    return status_ok();
}

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
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, member_id);
    db_param_text(&p, reference);
    PGresult *r = NULL;
    /* holds_pending_member finds the member's pending holds; few, so the reference is a filter. */
    status_t st = db_exec_row(db,
                              "SELECT id FROM holds WHERE merchant_id = $1 AND member_id = $2 "
                              " AND state = 1 AND reference = $3 "
                              "ORDER BY created_at DESC, id DESC LIMIT 1",
                              &p, &r, STATUS_NOT_FOUND, "HOLD_NOT_FOUND",
                              "the member has no pending hold with this reference");
    if (!status_is_ok(&st)) {
        return st;
    }
    *id = arena_strdup(a, db_get_str(r, 0, 0));
    PQclear(r);
    return status_ok();
}

status_t wallet_store_member_read(db_t *db, const char *merchant_id, wallet_member_t *m) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, m->member_id);
    PGresult *r = NULL;
    status_t st = db_exec(db, MEMBER_ACCOUNTS_SQL, &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    member_from_rows(m, r);
    PQclear(r);
    return status_ok();
}

status_t wallet_store_balance_snapshot(db_t *db, const char *merchant_id, wallet_member_t *m,
                                       int64_t now, int64_t until, int64_t *soon_cents,
                                       int64_t *next_at, bool *due) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, m->member_id);
    db_param_int(&p, until);
    PGresult *r = NULL;
    /* The hot read: one round trip. Rows are the member's accounts (none without a wallet),
     * each carrying the same expiring figures. */
    status_t st =
        db_exec(db,
                "SELECT " MEMBER_COLUMNS ", l.soon, l.next FROM accounts a, ("
                " SELECT coalesce(sum(credited_cents - debited_cents - held_cents) FILTER "
                "   (WHERE expires_at < to_timestamp($3)), 0)::bigint AS soon, "
                "  coalesce(" EPOCH(
                    "min(expires_at)") ", 0) AS next "
                                       " FROM lots WHERE merchant_id = $1 AND member_id = $2 "
                                       "  AND debited_cents + held_cents < credited_cents AND "
                                       "expires_at IS NOT NULL) l "
                                       "WHERE a.merchant_id = $1 AND a.member_id = $2 AND a.code "
                                       "IN (1, 2) AND a.shard = 0 "
                                       "ORDER BY a.code",
                &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    member_from_rows(m, r);
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
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, member_id);
    db_param_int(&p, WALLET_DUE_NEVER);
    PGresult *r = NULL;
    status_t st = db_exec(
        db,
        "SELECT coalesce(LEAST("
        " (SELECT " EPOCH(
            "min(expires_at)") " FROM holds WHERE merchant_id = $1 "
                               "   AND member_id = $2 AND state = 1), "
                               " (SELECT " EPOCH(
                                   "min(expires_at)") " FROM lots WHERE merchant_id = $1 "
                                                      "   AND member_id = $2 AND debited_cents + "
                                                      "held_cents < credited_cents)), $3)",
        &p, &r);
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
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, member_id);
    db_param_int(&p, until);
    PGresult *r = NULL;
    status_t st = db_exec(
        db,
        "SELECT coalesce(sum(credited_cents - debited_cents - held_cents) FILTER "
        "  (WHERE expires_at < to_timestamp($3)), 0)::bigint, "
        " coalesce(" EPOCH("min(expires_at)") ", 0) "
                                              "FROM lots WHERE merchant_id = $1 AND member_id = $2 "
                                              " AND debited_cents + held_cents < credited_cents "
                                              "AND expires_at IS NOT NULL",
        &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    *cents = db_get_int(r, 0, 0);
    *next_at = db_get_int(r, 0, 1);
    PQclear(r);
    return status_ok();
}

/* ---- lots ---- */

#define LOT_COLUMNS                                                                                \
    "id, member_id, code, origin, coalesce(top_up_id, ''), credited_cents, debited_cents, "        \
    "held_cents, expired_cents, coalesce(" EPOCH("expires_at") ", 0), " EPOCH("created_at")

/* The lot of row `row`: the transaction's copy when it has one (it is the current state),
 * else a new registered copy. */
static wallet_lot_t *lot_from_row_at(wallet_tx_t *tx, const PGresult *r, int row, int c) {
    wallet_lot_t *known = wallet_tx_find_lot(tx, db_get_str(r, row, c));
    if (known != NULL) {
        return known;
    }
    arena_t *a = tx->arena;
    wallet_lot_t *l = arena_alloc(a, sizeof *l);
    l->id = db_dup_str(a, r, row, c);
    l->member_id = db_dup_str(a, r, row, c + 1);
    l->code = (int)db_get_int(r, row, c + 2);
    l->origin = (int)db_get_int(r, row, c + 3);
    l->top_up_id = db_dup_str(a, r, row, c + 4);
    l->credited = l->loaded[0] = db_get_int(r, row, c + 5);
    l->debited = l->loaded[1] = db_get_int(r, row, c + 6);
    l->held = l->loaded[2] = db_get_int(r, row, c + 7);
    l->expired = l->loaded[3] = db_get_int(r, row, c + 8);
    l->expires_at = db_get_int(r, row, c + 9);
    l->created_at = db_get_int(r, row, c + 10);
    wallet_tx_add_lot(tx, l);
    return l;
}

static wallet_lot_t *lot_from_row(wallet_tx_t *tx, const PGresult *r, int row) {
    return lot_from_row_at(tx, r, row, 0);
}

static void lots_from_result(wallet_tx_t *tx, const PGresult *r, wallet_lot_t ***out, int *n);

static status_t lots_query(db_t *db, wallet_tx_t *tx, const char *sql, const db_params_t *p,
                           wallet_lot_t ***out, int *n) {
    PGresult *r = NULL;
    status_t st = db_exec(db, sql, p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    lots_from_result(tx, r, out, n);
    PQclear(r);
    return status_ok();
}

/* The running total in spending order stops at the first lot that completes the amount ($4);
 * the ORDER BY repeats the rule of wallet_lot_order_cmp. */
#define SPENDABLE_SQL                                                                              \
    "SELECT " LOT_COLUMNS " FROM ("                                                                \
    " SELECT *, sum(credited_cents - debited_cents - held_cents) OVER ("                           \
    "   ORDER BY expires_at NULLS LAST, code, id ROWS UNBOUNDED PRECEDING) AS running "            \
    " FROM lots WHERE merchant_id = $1 AND member_id = $2 "                                        \
    "  AND debited_cents + held_cents < credited_cents "                                           \
    "  AND (expires_at IS NULL OR expires_at > to_timestamp($3))) s "                              \
    "WHERE running - (credited_cents - debited_cents - held_cents) < $4 "                          \
    "ORDER BY expires_at NULLS LAST, code, id LIMIT $5"

static void spendable_params(db_params_t *p, const wallet_tx_t *tx, const char *merchant_id,
                             const wallet_member_t *m, int64_t amount) {
    db_params_init(p);
    db_param_text(p, merchant_id);
    db_param_text(p, m->member_id);
    db_param_int(p, tx->now);
    db_param_int(p, amount);
    db_param_int(p, WALLET_LOTS_PER_OP_MAX);
}

static void lots_from_result(wallet_tx_t *tx, const PGresult *r, wallet_lot_t ***out, int *n) {
    *n = PQntuples(r);
    *out = arena_alloc(tx->arena, (size_t)(*n + 1) * sizeof **out);
    for (int i = 0; i < *n; i++) {
        (*out)[i] = lot_from_row(tx, r, i);
    }
}

status_t wallet_store_lots_spendable(db_t *db, wallet_tx_t *tx, const char *merchant_id,
                                     wallet_member_t *m, int64_t amount, wallet_lot_t ***out,
                                     int *n) {
    db_params_t p;
    spendable_params(&p, tx, merchant_id, m, amount);
    return lots_query(db, tx, SPENDABLE_SQL, &p, out, n);
}

status_t wallet_store_hold_reads(db_t *db, wallet_tx_t *tx, const char *merchant_id,
                                 wallet_member_t *m, const char *reference, int64_t amount,
                                 char **owner, wallet_lot_t ***lots, int *n) {
    db_params_t pa, pc, pl;
    db_params_init(&pa);
    db_param_text(&pa, merchant_id);
    db_param_text(&pa, m->member_id);
    db_params_init(&pc);
    db_param_text(&pc, merchant_id);
    db_param_text(&pc, reference);
    db_param_text(&pc, m->member_id);
    spendable_params(&pl, tx, merchant_id, m, amount);
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
    member_from_rows(m, q[0].out);
    *owner = PQntuples(q[1].out) == 1 ? db_dup_str(tx->arena, q[1].out, 0, 0) : NULL;
    lots_from_result(tx, q[2].out, lots, n);
    for (int i = 0; i < 3; i++) {
        PQclear(q[i].out);
    }
    return status_ok();
}

status_t wallet_store_lots_lapsed(db_t *db, wallet_tx_t *tx, const char *merchant_id,
                                  wallet_member_t *m, int64_t now, wallet_lot_t ***out, int *n) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, m->member_id);
    db_param_int(&p, now);
    db_param_int(&p, WALLET_LOTS_PER_OP_MAX);
    return lots_query(db, tx,
                      "SELECT " LOT_COLUMNS " FROM lots WHERE merchant_id = $1 AND member_id = $2 "
                      " AND debited_cents + held_cents < credited_cents "
                      " AND expires_at <= to_timestamp($3) "
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
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, id);
    wallet_lot_t **lots = NULL;
    int n = 0;
    status_t st =
        lots_query(db, tx, "SELECT " LOT_COLUMNS " FROM lots WHERE merchant_id = $1 AND id = $2",
                   &p, &lots, &n);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (n != 1) {
        return status_make(STATUS_INTERNAL, "LEDGER_INVARIANT", "lot %.40s is missing", id);
    }
    *out = lots[0];
    return status_ok();
}

/* The sort key of a lot in spending order as text: never-expiring lots sort last, so their
 * expiry is written as 9999999999. */
#define LOT_ORDER_KEY                                                                              \
    "lpad(coalesce(" EPOCH("expires_at") ", 9999999999)::text, 11, '0') || '.' || code || '.' || " \
                                         "id"

status_t wallet_store_lot_list(db_t *db, arena_t *a, const char *merchant_id, const char *member_id,
                               bool include_closed, const char *after_key, int32_t limit,
                               Loyalty__V1__WalletLot ***out, size_t *n, char **last_key) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, member_id);
    db_param_bool(&p, include_closed);
    db_param_text(&p, after_key);
    db_param_int(&p, limit);
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "SELECT " LOT_COLUMNS ", " LOT_ORDER_KEY " AS k FROM lots "
                          "WHERE merchant_id = $1 AND member_id = $2 "
                          " AND ($3 OR debited_cents < credited_cents) "
                          " AND ($4 = '' OR " LOT_ORDER_KEY " > $4) "
                          "ORDER BY k LIMIT $5",
                          &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    *n = (size_t)PQntuples(r);
    *out = arena_alloc(a, (*n + 1) * sizeof **out);
    *last_key = NULL;
    for (size_t i = 0; i < *n; i++) {
        int row = (int)i;
        Loyalty__V1__WalletLot *l = arena_alloc(a, sizeof *l);
        loyalty__v1__wallet_lot__init(l);
        l->id = db_dup_str(a, r, row, 0);
        l->member_id = db_dup_str(a, r, row, 1);
        l->kind = (Loyalty__V1__WalletMoneyKind)db_get_int(r, row, 2);
        l->origin = (Loyalty__V1__WalletLotOrigin)db_get_int(r, row, 3);
        l->top_up_id = db_dup_str(a, r, row, 4);
        l->credited_cents = db_get_int(r, row, 5);
        l->debited_cents = db_get_int(r, row, 6);
        l->held_cents = db_get_int(r, row, 7);
        l->available_cents = l->credited_cents - l->debited_cents - l->held_cents;
        l->expires_at = db_get_int(r, row, 9);
        l->created_at = db_get_int(r, row, 10);
        (*out)[i] = l;
        *last_key = db_dup_str(a, r, row, 11);
    }
    PQclear(r);
    return status_ok();
}

/* ---- holds ---- */

#define HOLD_COLUMNS                                                                               \
    "id, member_id, reference, amount_cents, captured_cents, state, " EPOCH(                       \
        "expires_at") ", transfer_id, " EPOCH("created_at") ", " EPOCH("updated_at")

static void hold_from_row(arena_t *a, const PGresult *r, int row, wallet_hold_row_t *h) {
    h->id = db_dup_str(a, r, row, 0);
    h->member_id = db_dup_str(a, r, row, 1);
    h->reference = db_dup_str(a, r, row, 2);
    h->amount = db_get_int(r, row, 3);
    h->captured = db_get_int(r, row, 4);
    h->state = (int)db_get_int(r, row, 5);
    h->expires_at = db_get_int(r, row, 6);
    h->transfer_id = db_dup_str(a, r, row, 7);
    h->created_at = db_get_int(r, row, 8);
    h->updated_at = db_get_int(r, row, 9);
}

status_t wallet_store_hold_insert(db_t *db, const char *merchant_id, const wallet_hold_row_t *h) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, h->id);
    db_param_text(&p, h->member_id);
    db_param_text(&p, h->reference);
    db_param_int(&p, h->amount);
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
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, h->id);
    db_param_int(&p, h->state);
    db_param_int(&p, h->captured);
    db_param_int(&p, h->updated_at);
    db_expect_t the_hold = {.rows = -1,
                            .refusal = status_make(STATUS_INTERNAL, "LEDGER_INVARIANT",
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
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, member_id);
    db_param_int(&p, now);
    db_param_int(&p, WALLET_LOTS_PER_OP_MAX);
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "SELECT " HOLD_COLUMNS " FROM holds WHERE merchant_id = $1 "
                          " AND member_id = $2 AND state = 1 AND expires_at <= to_timestamp($3) "
                          "ORDER BY expires_at, id LIMIT $4",
                          &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    *n = PQntuples(r);
    *out = arena_alloc(a, (size_t)(*n + 1) * sizeof **out);
    for (int i = 0; i < *n; i++) {
        hold_from_row(a, r, i, &(*out)[i]);
    }
    PQclear(r);
    return status_ok();
}

#define LOT_COLUMNS_L                                                                              \
    "l.id, l.member_id, l.code, l.origin, coalesce(l.top_up_id, ''), l.credited_cents, "           \
    "l.debited_cents, l.held_cents, l.expired_cents, coalesce(" EPOCH(                             \
        "l.expires_at") ", 0), " EPOCH("l.created_at")

/* The hold, and per reserved part (the pending debits of its HOLD transfer, written in spending
 * order) the amount and the lot: one statement. */
#define HOLD_LOAD_SQL                                                                              \
    "SELECT h.id, h.member_id, h.reference, h.amount_cents, h.captured_cents, "                    \
    "h.state, " EPOCH("h.expires_at") ", h.transfer_id, " EPOCH("h.created_at") ", " EPOCH(        \
        "h.updated_at") ", p.debit_cents, " LOT_COLUMNS_L " "                                      \
                        "FROM holds h JOIN postings p ON p.merchant_id = h.merchant_id "           \
                        " AND p.transfer_id = h.transfer_id AND p.pending AND "                    \
                        "p.debit_cents > 0 "                                                       \
                        "JOIN lots l ON l.merchant_id = p.merchant_id AND l.id = p.lot_id "        \
                        "WHERE h.merchant_id = $1 AND h.id = $2 ORDER BY p.line"

static status_t hold_from_result(wallet_tx_t *tx, const PGresult *r, wallet_hold_row_t *h,
                                 wallet_hold_part_t **parts, int *n) {
    int rows = PQntuples(r);
    if (rows == 0) {
        return status_make(STATUS_NOT_FOUND, "HOLD_NOT_FOUND", "hold not found");
    }
    hold_from_row(tx->arena, r, 0, h);
    *parts = arena_alloc(tx->arena, (size_t)rows * sizeof **parts);
    for (int i = 0; i < rows; i++) {
        (*parts)[i].amount = db_get_int(r, i, 10);
        (*parts)[i].lot = lot_from_row_at(tx, r, i, 11);
    }
    *n = rows;
    return status_ok();
}

status_t wallet_store_hold_load(db_t *db, wallet_tx_t *tx, const char *merchant_id,
                                const char *hold_id, wallet_hold_row_t *h,
                                wallet_hold_part_t **parts, int *n) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, hold_id);
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
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, hold_id);
    /* The hold is read once its wallet is locked: in this order on the server. */
    db_exec_item_t q[2] = {{.sql = LOCK_BY_HOLD_SQL, .params = &p},
                           {.sql = HOLD_LOAD_SQL, .params = &p}};
    status_t st = db_exec_all(db, q, 2);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (PQntuples(q[0].out) == 0) {
        st = status_make(STATUS_NOT_FOUND, "HOLD_NOT_FOUND", "hold not found");
    } else {
        *m = wallet_tx_member(tx, db_get_str(q[0].out, 0, 6));
        member_from_rows(*m, q[0].out);
        st = hold_from_result(tx, q[1].out, h, parts, n);
    }
    PQclear(q[0].out);
    PQclear(q[1].out);
    return st;
}

/* ---- spends ---- */

status_t wallet_store_spend_claim(db_t *db, arena_t *a, const char *merchant_id,
                                  const char *reference, const char *member_id, char **owner) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, reference);
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
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, reference);
    PGresult *r = NULL;
    status_t st =
        db_exec_row(db,
                    "SELECT member_id, captured_cents, refunded_cents FROM spends "
                    "WHERE merchant_id = $1 AND reference = $2",
                    &p, &r, STATUS_NOT_FOUND, "REFERENCE_NOT_FOUND", "reference not found");
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
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, reference);
    db_param_text(&p, pgarray_encode(&a, lot_ids, (size_t)n));
    db_param_text(&p, pgarray_encode_int64(&a, codes, n));
    db_param_text(&p, pgarray_encode_int64(&a, captured, n));
    db_param_text(&p, pgarray_encode_int64(&a, refunded, n));
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
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, reference);
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

/* ---- top-ups ---- */

#define TOP_UP_COLUMNS                                                                             \
    "id, member_id, payment_ref, coalesce(plan_id, ''), paid_cents, bonus_cents, "                 \
    "principal_lot_id, coalesce(bonus_lot_id, ''), coalesce(" EPOCH(                               \
        "expires_at") ", 0), "                                                                     \
                      "refunded_cents, bonus_forfeited_cents, transfer_id, " EPOCH("created_at")

status_t wallet_store_top_up_insert(db_t *db, const char *merchant_id,
                                    const wallet_top_up_row_t *t) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, t->id);
    db_param_text(&p, t->member_id);
    db_param_text(&p, t->payment_ref);
    db_param_text(&p, t->plan_id);
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
        return status_make(STATUS_ALREADY_EXISTS, "PAYMENT_REF_TAKEN",
                           "payment_ref was already credited by another top-up");
    }
    return st;
}

status_t wallet_store_top_up_get(db_t *db, arena_t *a, const char *merchant_id,
                                 const char *payment_ref, wallet_top_up_row_t *out) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, payment_ref);
    PGresult *r = NULL;
    status_t st = db_exec_row(db,
                              "SELECT " TOP_UP_COLUMNS " FROM top_ups "
                              "WHERE merchant_id = $1 AND payment_ref = $2",
                              &p, &r, STATUS_NOT_FOUND, "TOP_UP_NOT_FOUND", "top-up not found");
    if (!status_is_ok(&st)) {
        return st;
    }
    *out = (wallet_top_up_row_t){
        .id = db_dup_str(a, r, 0, 0),
        .member_id = db_dup_str(a, r, 0, 1),
        .payment_ref = db_dup_str(a, r, 0, 2),
        .plan_id = db_dup_str(a, r, 0, 3),
        .paid = db_get_int(r, 0, 4),
        .bonus = db_get_int(r, 0, 5),
        .principal_lot_id = db_dup_str(a, r, 0, 6),
        .bonus_lot_id = db_dup_str(a, r, 0, 7),
        .expires_at = db_get_int(r, 0, 8),
        .refunded = db_get_int(r, 0, 9),
        .forfeited = db_get_int(r, 0, 10),
        .transfer_id = db_dup_str(a, r, 0, 11),
        .created_at = db_get_int(r, 0, 12),
    };
    PQclear(r);
    return status_ok();
}

status_t wallet_store_top_up_update(db_t *db, const char *merchant_id,
                                    const wallet_top_up_row_t *t) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, t->id);
    db_param_int(&p, t->refunded);
    db_param_int(&p, t->forfeited);
    return db_exec(db,
                   "UPDATE top_ups SET refunded_cents = $3, bonus_forfeited_cents = $4 "
                   "WHERE merchant_id = $1 AND id = $2",
                   &p, NULL);
}

/* ---- writing the ledger ---- */

/* Transfers written since the last flush, as array parameters $2..$13. */
static void flush_transfer_params(arena_t *a, const wallet_tx_t *tx, db_params_t *p) {
    int n = tx->n_xfers - tx->flushed_xfers;
    char **id = strs(a, n), **member = strs(a, n), **hold = strs(a, n), **top_up = strs(a, n);
    char **ref = strs(a, n), **pay = strs(a, n);
    int64_t *kind = ints(a, n), *amount = ints(a, n), *held = ints(a, n), *bal = ints(a, n);
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
        amount[i] = x->amount;
        held[i] = x->held_delta;
        bal[i] = x->balance_after;
        held_after[i] = x->held_after;
        at[i] = x->created_at;
    }
    db_param_text(p, pgarray_encode(a, id, (size_t)n));
    db_param_text(p, pgarray_encode(a, member, (size_t)n));
    db_param_text(p, pgarray_encode_int64(a, kind, n));
    db_param_text(p, pgarray_encode(a, hold, (size_t)n));
    db_param_text(p, pgarray_encode(a, top_up, (size_t)n));
    db_param_text(p, pgarray_encode(a, ref, (size_t)n));
    db_param_text(p, pgarray_encode(a, pay, (size_t)n));
    db_param_text(p, pgarray_encode_int64(a, amount, n));
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
        debit[i] = l->debit;
        credit[i] = l->credit;
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
    return l->credited != l->loaded[0] || l->debited != l->loaded[1] || l->held != l->loaded[2] ||
           l->expired != l->loaded[3];
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
            nc[nn] = l->credited;
            nd[nn] = l->debited;
            nh[nn] = l->held;
            ne[nn] = l->expired;
            nexp[nn] = l->expires_at;
            nat[nn] = l->created_at;
            nn++;
        } else if (lot_changed(l)) {
            cid[nch] = l->id;
            dc[nch] = l->credited - l->loaded[0];
            dd[nch] = l->debited - l->loaded[1];
            dh[nch] = l->held - l->loaded[2];
            de[nch] = l->expired - l->loaded[3];
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

/* Member account changes as $39..$45; *n gets the count. Both rows of a wallet carry its
 * next_due_at (the principal row's is the one read). */
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
            if (memcmp(now, was, sizeof *now) == 0 && m->next_due_at == m->next_due_loaded) {
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
        l->loaded[0] = l->credited;
        l->loaded[1] = l->debited;
        l->loaded[2] = l->held;
        l->loaded[3] = l->expired;
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
        return status_make(STATUS_INTERNAL, "LEDGER_INVARIANT", "ledger invariant violated (%.60s)",
                           db_last_constraint(db));
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
                st = status_make(STATUS_INTERNAL, "LEDGER_INVARIANT",
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
#define EXPIRING_SUBQUERIES                                                                        \
    "(SELECT coalesce(sum(credited_cents - debited_cents - held_cents) FILTER "                    \
    "  (WHERE expires_at < to_timestamp($9)), 0)::bigint FROM lots WHERE merchant_id = $1 "        \
    "  AND member_id = $8 AND debited_cents + held_cents < credited_cents "                        \
    "  AND expires_at IS NOT NULL), "                                                              \
    "(SELECT coalesce(" EPOCH(                                                                     \
        "min(expires_at)") ", 0) FROM lots WHERE merchant_id = $1 "                                \
                           "  AND member_id = $8 AND debited_cents + held_cents < credited_cents " \
                           "  AND expires_at IS NOT NULL)"

/* The merchant accounts' side of a transaction's postings (migrations/001_ledger.sql). */
#define MERCHANT_DELTAS_SQL                                                                        \
    "SELECT apply_merchant_deltas($1, $2::smallint[], $3::smallint[], $4::bigint[], "              \
    " $5::bigint[], $6::bigint[], $7::bigint[])"

status_t wallet_store_finish(db_t *db, const char *merchant_id, wallet_tx_t *tx,
                             wallet_expiring_t *expiring) {
    status_t st = wallet_store_flush(db, merchant_id, tx);
    if (!status_is_ok(&st)) {
        return st;
    }
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
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, pgarray_encode_int64(&a, code, n));
    db_param_text(&p, pgarray_encode_int64(&a, shard, n));
    db_param_text(&p, pgarray_encode_int64(&a, dp, n));
    db_param_text(&p, pgarray_encode_int64(&a, dpo, n));
    db_param_text(&p, pgarray_encode_int64(&a, cp, n));
    db_param_text(&p, pgarray_encode_int64(&a, cpo, n));
    PGresult *r = NULL;
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

/* ---- reads ---- */

status_t wallet_store_statement(db_t *db, arena_t *a, const char *merchant_id,
                                const char *member_id, const char *before_id, int32_t limit,
                                Loyalty__V1__WalletStatementEntry ***out, size_t *n) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, member_id);
    db_param_text(&p, before_id);
    db_param_int(&p, limit);
    PGresult *r = NULL;
    status_t st = db_exec(
        db,
        "SELECT t.id, t.kind, " EPOCH(
            "t.created_at") ", "
                            " coalesce((SELECT sum(credit_cents - debit_cents) FROM postings p "
                            "  WHERE p.merchant_id = t.merchant_id AND p.transfer_id = t.id AND "
                            "p.code = 1 "
                            "  AND NOT p.pending), 0)::bigint, "
                            " coalesce((SELECT sum(credit_cents - debit_cents) FROM postings p "
                            "  WHERE p.merchant_id = t.merchant_id AND p.transfer_id = t.id AND "
                            "p.code = 2 "
                            "  AND NOT p.pending), 0)::bigint, "
                            " t.held_delta_cents, t.balance_after_cents, t.held_after_cents, "
                            " coalesce(t.reference, ''), coalesce(t.payment_ref, ''), "
                            "coalesce(t.hold_id, '') "
                            "FROM transfers t WHERE t.merchant_id = $1 AND t.member_id = $2 "
                            " AND ($3 = '' OR t.id < $3) ORDER BY t.id DESC LIMIT $4",
        &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    *n = (size_t)PQntuples(r);
    *out = arena_alloc(a, (*n + 1) * sizeof **out);
    for (size_t i = 0; i < *n; i++) {
        int row = (int)i;
        Loyalty__V1__WalletStatementEntry *e = arena_alloc(a, sizeof *e);
        loyalty__v1__wallet_statement_entry__init(e);
        e->transfer_id = db_dup_str(a, r, row, 0);
        e->kind = (Loyalty__V1__WalletTransferKind)db_get_int(r, row, 1);
        e->created_at = db_get_int(r, row, 2);
        e->principal_delta_cents = db_get_int(r, row, 3);
        e->bonus_delta_cents = db_get_int(r, row, 4);
        e->held_delta_cents = db_get_int(r, row, 5);
        e->balance_after_cents = db_get_int(r, row, 6);
        e->held_after_cents = db_get_int(r, row, 7);
        e->reference = db_dup_str(a, r, row, 8);
        e->payment_ref = db_dup_str(a, r, row, 9);
        e->hold_id = db_dup_str(a, r, row, 10);
        (*out)[i] = e;
    }
    PQclear(r);
    return status_ok();
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
     "  (SELECT " EPOCH(
         "min(h.expires_at)") " FROM holds h WHERE h.merchant_id = $1 "
                              "    AND h.member_id = a.member_id AND h.state = 1), "
                              "  (SELECT " EPOCH(
                                  "min(l.expires_at)") " FROM lots l WHERE l.merchant_id = $1 "
                                                       "    AND l.member_id = a.member_id "
                                                       "    AND l.debited_cents + l.held_cents < "
                                                       "l.credited_cents)) AS truth "
                                                       " FROM accounts a WHERE a.merchant_id = $1 "
                                                       "AND a.member_id <> '' AND a.code = 1) "
                                                       "SELECT member_id, truth, next_due_at, "
                                                       "'next_due_at after the first TTL or "
                                                       "expiry' "
                                                       "FROM due WHERE truth IS NOT NULL AND "
                                                       "next_due_at > truth"},
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

/* ---- background work ---- */

status_t wallet_store_due_wallets(db_t *db, arena_t *a, int64_t now, int limit, wallet_due_t **out,
                                  int *n) {
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, now);
    db_param_int(&p, limit);
    PGresult *r = NULL;
    status_t st = db_exec(
        db,
        "SELECT merchant_id, member_id FROM ("
        " (SELECT merchant_id, member_id FROM holds "
        "   WHERE state = 1 AND expires_at <= to_timestamp($1) ORDER BY expires_at LIMIT $2) "
        " UNION "
        " (SELECT merchant_id, member_id FROM lots "
        "   WHERE expires_at <= to_timestamp($1) AND debited_cents + held_cents < credited_cents "
        "   ORDER BY expires_at LIMIT $2)) due LIMIT $2",
        &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    *n = PQntuples(r);
    *out = arena_alloc(a, (size_t)(*n + 1) * sizeof **out);
    for (int i = 0; i < *n; i++) {
        (*out)[i].merchant_id = db_dup_str(a, r, i, 0);
        (*out)[i].member_id = db_dup_str(a, r, i, 1);
    }
    PQclear(r);
    return status_ok();
}

status_t wallet_store_lapsed_members(db_t *db, arena_t *a, const char *merchant_id, int64_t now,
                                     int limit, char ***out, int *n) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_int(&p, now);
    db_param_int(&p, limit);
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "SELECT DISTINCT member_id FROM lots WHERE merchant_id = $1 "
                          " AND expires_at <= to_timestamp($2) "
                          " AND debited_cents + held_cents < credited_cents "
                          "ORDER BY member_id LIMIT $3",
                          &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    *n = PQntuples(r);
    *out = arena_alloc(a, (size_t)(*n + 1) * sizeof **out);
    for (int i = 0; i < *n; i++) {
        (*out)[i] = db_dup_str(a, r, i, 0);
    }
    PQclear(r);
    return status_ok();
}
