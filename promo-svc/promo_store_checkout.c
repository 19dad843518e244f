/* promo_store_checkout.c -- checkout reservations in PostgreSQL: one row per checkout with
 * its status, TTL and the quote it was taken for. */
#include "promo_store.h"

#include "pb.h"

#include <stdio.h>

#include <string.h>

#define RESERVATION_COLUMNS                                                                        \
    "checkout_id, merchant_id, member_id, status, expires_at, coalesce(order_id, ''), quote, "     \
    "usage_restored, coupons_restored, created_at, updated_at"

static const db_col_t RESERVATION_COL_TABLE[] = {
    DB_FIELD(DB_COL_TEXT, "checkout_id"),    DB_FIELD(DB_COL_TEXT, "merchant_id"),
    DB_FIELD(DB_COL_TEXT, "member_id"),      DB_FIELD(DB_COL_INT, "status"),
    DB_FIELD(DB_COL_INT, "expires_at"),      DB_FIELD(DB_COL_TEXT, "order_id"),
    DB_FIELD(DB_COL_MESSAGE, "quote"), /* NULL: none */
    DB_FIELD(DB_COL_BOOL, "usage_restored"), DB_FIELD(DB_COL_BOOL, "coupons_restored"),
    DB_FIELD(DB_COL_INT, "created_at"),      DB_FIELD(DB_COL_INT, "updated_at"),
};
static const db_cols_t RESERVATION_COLS =
    DB_COLS_MESSAGE(RESERVATION_COL_TABLE, &loyalty__v1__promo_reservation__descriptor);

/* The counters' keys and deltas as five array parameters. */
static void delta_params(arena_t *a, db_params_t *p, const promo_counter_t *c, size_t n) {
    char **ids = arena_alloc(a, (n + 1) * sizeof *ids);
    char **scopes = arena_alloc(a, (n + 1) * sizeof *scopes);
    char **periods = arena_alloc(a, (n + 1) * sizeof *periods);
    int64_t *uses = arena_alloc(a, (n + 1) * sizeof *uses);
    int64_t *discounts = arena_alloc(a, (n + 1) * sizeof *discounts);
    for (size_t i = 0; i < n; i++) {
        ids[i] = (char *)c[i].promotion_id;
        scopes[i] = (char *)c[i].scope_key;
        periods[i] = (char *)c[i].period_key;
        uses[i] = c[i].uses;
        discounts[i] = c[i].discount_cents;
    }
    db_param_text_array(p, a, ids, n);
    db_param_text_array(p, a, scopes, n);
    db_param_text_array(p, a, periods, n);
    db_param_int_array(p, a, uses, n);
    db_param_int_array(p, a, discounts, n);
}

/* Every row a reservation writes, in one statement: $7 coupons, $8 codes, $9..$13 the counter
 * deltas. */
// clang-format off
static const char RESERVE_SQL[] =
    "WITH res AS (INSERT INTO reservations (merchant_id, checkout_id, member_id, status, "
    " expires_at, quote, created_at, updated_at) VALUES ($1, $2, $3, 1, $4, $5, $6, $6)), "
    "cp AS (UPDATE coupons SET status = 2, checkout_id = $2 "
    " WHERE merchant_id = $1 AND id = ANY($7::text[])), "
    "cd AS (UPDATE codes SET status = 2, checkout_id = $2 "
    " WHERE merchant_id = $1 AND code = ANY($8::text[]) AND kind = 2), "
    "d AS (SELECT * FROM unnest($9::text[], $10::text[], $11::text[], $12::bigint[], "
    " $13::bigint[]) AS d(p, s, t, u, m)), "
    "up AS (UPDATE usage_counters c SET uses = c.uses + d.u, "
    " discount_cents = c.discount_cents + d.m FROM d WHERE c.merchant_id = $1 "
    " AND c.promotion_id = d.p AND c.scope_key = d.s AND c.period_key = d.t) "
    "INSERT INTO reservation_usages (merchant_id, checkout_id, promotion_id, scope_key, "
    " period_key, uses, discount_cents) SELECT $1, $2, d.p, d.s, d.t, d.u, d.m FROM d";
// clang-format on

status_t promo_store_reserve(db_t *db, arena_t *a, const char *merchant_id,
                             const Loyalty__V1__PromoReservation *r, char *const *coupons,
                             size_t n_coupons, char *const *codes, size_t n_codes,
                             const promo_counter_t *deltas, size_t n_deltas) {
    size_t len = 0;
    unsigned char *quote = pb_pack_arena(a, &r->quote->base, &len);
    db_params_t p;
    db_params_key(&p, merchant_id, r->checkout_id);
    db_param_text(&p, r->member_id);
    db_param_int(&p, r->expires_at);
    db_param_bytes(&p, quote, len);
    db_param_int(&p, r->created_at);
    db_param_text_array(&p, a, coupons, n_coupons);
    db_param_text_array(&p, a, codes, n_codes);
    delta_params(a, &p, deltas, n_deltas);
    /* One round trip for every row a reservation writes. */
    status_t st = db_exec(db, RESERVE_SQL, &p, NULL);
    if (st.code == STATUS_ALREADY_EXISTS) {
        return status_make(STATUS_ALREADY_EXISTS, REASON_RESERVATION_EXISTS,
                           "checkout %s already has a reservation", r->checkout_id);
    }
    return st;
}

// clang-format off
static const char GIVE_BACK_SQL[] =
    "WITH cp AS (UPDATE coupons SET status = 1, checkout_id = NULL, used_at = 0 "
    " WHERE merchant_id = $1 AND checkout_id = $2 AND $4::bool), "
    "cd AS (UPDATE codes SET status = 1, checkout_id = NULL "
    " WHERE merchant_id = $1 AND checkout_id = $2 AND kind = 2 AND $3::bool) "
    "UPDATE usage_counters c SET uses = c.uses - u.uses, "
    " discount_cents = c.discount_cents - u.discount_cents "
    "FROM reservation_usages u WHERE $3::bool AND u.merchant_id = $1 "
    " AND u.checkout_id = $2 AND c.merchant_id = u.merchant_id "
    " AND c.promotion_id = u.promotion_id AND c.scope_key = u.scope_key "
    " AND c.period_key = u.period_key";
// clang-format on

status_t promo_store_give_back(db_t *db, const char *merchant_id, const char *checkout_id,
                               bool usage, bool coupons) {
    db_params_t p;
    db_params_key(&p, merchant_id, checkout_id);
    PGresult *r = NULL;
    status_t st = status_ok();
    if (usage) { /* the counters in key order, as Reserve locks them */
        st = db_exec(db,
                     "SELECT 1 FROM usage_counters c JOIN reservation_usages u "
                     " ON c.merchant_id = u.merchant_id AND c.promotion_id = u.promotion_id "
                     " AND c.scope_key = u.scope_key AND c.period_key = u.period_key "
                     "WHERE u.merchant_id = $1 AND u.checkout_id = $2 "
                     "ORDER BY c.promotion_id COLLATE \"C\", c.scope_key COLLATE \"C\", "
                     " c.period_key COLLATE \"C\" FOR UPDATE OF c",
                     &p, &r);
        if (status_is_ok(&st)) {
            PQclear(r);
        }
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    db_param_bool(&p, usage);
    db_param_bool(&p, coupons);
    return db_exec(db, GIVE_BACK_SQL, &p, NULL);
}

status_t promo_store_reservation_tombstone(db_t *db, const char *merchant_id,
                                           const char *checkout_id, int64_t now, bool *inserted) {
    db_params_t p;
    db_params_key(&p, merchant_id, checkout_id);
    db_param_int(&p, now);
    status_t st =
        db_row_find(db, NULL,
                    "INSERT INTO reservations (merchant_id, checkout_id, status, expires_at, "
                    " created_at, updated_at) VALUES ($1, $2, 3, $3, $3, $3) "
                    "ON CONFLICT DO NOTHING RETURNING 1",
                    &p, NULL, NULL, inserted);
    if (!status_is_ok(&st)) {
        return st;
    }
    return status_ok();
}

status_t promo_store_reservation_get(db_t *db, arena_t *a, const char *merchant_id,
                                     const char *checkout_id, const char *order_id, bool for_update,
                                     Loyalty__V1__PromoReservation **out, bool *found) {
    static const char *const sql[2][2] = {
        {"SELECT " RESERVATION_COLUMNS " FROM reservations "
         "WHERE merchant_id = $1 AND checkout_id = $2",
         "SELECT " RESERVATION_COLUMNS " FROM reservations "
         "WHERE merchant_id = $1 AND checkout_id = $2 FOR UPDATE"},
        {"SELECT " RESERVATION_COLUMNS " FROM reservations "
         "WHERE merchant_id = $1 AND order_id = $2",
         "SELECT " RESERVATION_COLUMNS " FROM reservations "
         "WHERE merchant_id = $1 AND order_id = $2 FOR UPDATE"},
    };
    bool by_order = checkout_id == NULL;
    db_params_t p;
    db_params_key(&p, merchant_id, by_order ? order_id : checkout_id);
    return db_row_find_cols(db, a, sql[by_order][for_update], &p, &RESERVATION_COLS, out, found);
}

status_t promo_store_reservation_claim_expired(db_t *db, arena_t *a, const char *merchant_id,
                                               const char *checkout_id, int64_t now,
                                               Loyalty__V1__PromoReservation **out, bool *found) {
    db_params_t p;
    db_params_key(&p, merchant_id, checkout_id);
    db_param_int(&p, now);
    return db_row_find_cols(db, a,
                            "SELECT " RESERVATION_COLUMNS " FROM reservations "
                            "WHERE merchant_id = $1 AND checkout_id = $2 AND status = 1 "
                            " AND expires_at <= $3 FOR UPDATE SKIP LOCKED",
                            &p, &RESERVATION_COLS, out, found);
}

status_t promo_store_reservation_update(db_t *db, const char *merchant_id,
                                        const Loyalty__V1__PromoReservation *v) {
    db_params_t p;
    db_params_key(&p, merchant_id, v->checkout_id);
    db_param_int(&p, v->status);
    db_param_text(&p, v->order_id[0] ? v->order_id : NULL);
    db_param_bool(&p, v->usage_restored);
    db_param_bool(&p, v->coupons_restored);
    db_param_int(&p, v->updated_at);
    db_expect_t order_free = {.rows = -1,
                              .constraint = "reservations_order_key",
                              .refusal = status_make(STATUS_ALREADY_EXISTS, REASON_ORDER_ID_TAKEN,
                                                     "another checkout already has order id %s",
                                                     v->order_id)};
    /* Deferred: travels with the transaction's next statement or its COMMIT. */
    return db_exec_deferred(db,
                            "UPDATE reservations SET status = $3, order_id = $4, "
                            " usage_restored = $5, coupons_restored = $6, updated_at = $7 "
                            "WHERE merchant_id = $1 AND checkout_id = $2",
                            &p, &order_free);
}

#define EXPIRED_OF_MERCHANT_SQL                                                                    \
    "SELECT merchant_id, checkout_id FROM reservations "                                           \
    "WHERE merchant_id = $3 AND status = 1 AND expires_at <= $1 ORDER BY expires_at LIMIT $2"

static status_t expired_row(void *ctx, arena_t *a, const PGresult *r, int row, void *item) {
    promo_reservation_ref_t *ref = item;
    ref->merchant_id = db_dup_str(a, r, row, 0);
    ref->checkout_id = db_dup_str(a, r, row, 1);
    return status_ok();
}

static void expired_from_result(arena_t *a, const PGresult *r, promo_reservation_ref_t **out,
                                size_t *n) {
    db_rows_t rows = {.item_size = sizeof **out};
    (void)db_result_rows(a, r, expired_row, NULL, &rows); /* expired_row cannot fail */
    *out = rows.items;
    *n = rows.n;
}

status_t promo_store_reservations_expired(db_t *db, arena_t *a, const char *merchant_id,
                                          int64_t now, int limit, promo_reservation_ref_t **out,
                                          size_t *n) {
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, now);
    db_param_int(&p, limit);
    PGresult *r = NULL;
    status_t st;
    if (merchant_id != NULL) {
        db_param_text(&p, merchant_id);
        st = db_exec(db, EXPIRED_OF_MERCHANT_SQL, &p, &r);
    } else {
        st = db_exec(db,
                     "SELECT merchant_id, checkout_id FROM reservations "
                     "WHERE status = 1 AND expires_at <= $1 ORDER BY expires_at LIMIT $2",
                     &p, &r);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    expired_from_result(a, r, out, n);
    PQclear(r);
    return status_ok();
}

status_t promo_store_reserve_reads(db_t *db, arena_t *a, const char *merchant_id,
                                   const char *checkout_id, int64_t now, int expired_max,
                                   promo_reserve_reads_t *out) {
    memset(out, 0, sizeof *out);
    db_params_t pr, pe, ps, pa;
    db_params_key(&pr, merchant_id, checkout_id);
    db_params_init(&pe);
    db_param_int(&pe, now);
    db_param_int(&pe, expired_max);
    db_param_text(&pe, merchant_id);
    db_exec_item_t q[4] = {
        {.sql = "SELECT " RESERVATION_COLUMNS " FROM reservations "
                "WHERE merchant_id = $1 AND checkout_id = $2",
         .params = &pr},
        {.sql = EXPIRED_OF_MERCHANT_SQL, .params = &pe},
    };
    promo_store_settings_query(&q[2], &ps, merchant_id, now);
    promo_store_active_query(&q[3], &pa, merchant_id, now);
    status_t st = db_exec_all(db, q, 4);
    if (!status_is_ok(&st)) {
        return st;
    }
    out->existing_found = PQntuples(q[0].out) == 1;
    if (out->existing_found) {
        st = db_cols_read(a, &RESERVATION_COLS, q[0].out, 0, &out->existing);
    }
    expired_from_result(a, q[1].out, &out->expired, &out->n_expired);
    promo_store_settings_parse(a, q[2].out, &out->preload.settings, &out->preload.periods);
    if (status_is_ok(&st)) {
        st = promo_store_active_parse(a, q[3].out, &out->preload.active, &out->preload.n_active);
    }
    for (int i = 0; i < 4; i++) {
        PQclear(q[i].out);
    }
    return st;
}

status_t promo_store_batch_reads(db_t *db, arena_t *a, const char *merchant_id, int64_t now,
                                 int expired_max, char *const *codes, size_t n_codes,
                                 promo_batch_reads_t *out) {
    memset(out, 0, sizeof *out);
    db_params_t pe, ps, pa, pc;
    db_params_init(&pe);
    db_param_int(&pe, now);
    db_param_int(&pe, expired_max);
    db_param_text(&pe, merchant_id);
    db_params_init(&pc);
    db_param_text(&pc, merchant_id);
    db_param_text_array(&pc, a, codes, n_codes);
    db_exec_item_t q[4] = {
        {.sql = EXPIRED_OF_MERCHANT_SQL, .params = &pe},
        {.sql = "SELECT k.o, c.promotion_id FROM unnest($2::text[]) WITH ORDINALITY AS k(code, o) "
                "JOIN codes c ON c.merchant_id = $1 AND c.code = k.code",
         .params = &pc},
    };
    promo_store_settings_query(&q[2], &ps, merchant_id, now);
    promo_store_active_query(&q[3], &pa, merchant_id, now);
    status_t st = db_exec_all(db, q, 4);
    if (!status_is_ok(&st)) {
        return st;
    }
    expired_from_result(a, q[0].out, &out->expired, &out->n_expired);
    out->code_promotions = arena_alloc(a, (n_codes + 1) * sizeof *out->code_promotions);
    for (int row = 0; row < PQntuples(q[1].out); row++) {
        int64_t o = db_get_int(q[1].out, row, 0);
        if (o >= 1 && (size_t)o <= n_codes) {
            out->code_promotions[o - 1] = db_dup_str(a, q[1].out, row, 1);
        }
    }
    promo_store_settings_parse(a, q[2].out, &out->preload.settings, &out->preload.periods);
    st = promo_store_active_parse(a, q[3].out, &out->preload.active, &out->preload.n_active);
    for (int i = 0; i < 4; i++) {
        PQclear(q[i].out);
    }
    return st;
}
