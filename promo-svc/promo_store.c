/* promo_store.c -- promotions, promo codes, per-merchant settings and limit counters in
 * PostgreSQL. */
#include "promo_store.h"

#include "ids.h"
#include "pb.h"

#include <stdlib.h>
#include <string.h>

#define STATUS_ACTIVE LOYALTY__V1__PROMO_STATUS__PROMO_STATUS_ACTIVE

/* ---- promotions ---- */

#define PROMOTION_COLUMNS "definition, status, version, created_at, updated_at"

/* The stored definition (column 0) is the promotion; the columns after it override its fields. */
static const db_col_t PROMOTION_COL_TABLE[] = {
    DB_FIELD(DB_COL_INT, "status"),
    DB_FIELD(DB_COL_INT, "version"),
    DB_FIELD(DB_COL_INT, "created_at"),
    DB_FIELD(DB_COL_INT, "updated_at"),
};
static const db_cols_t PROMOTION_COLS =
    DB_COLS_PACKED(PROMOTION_COL_TABLE, &loyalty__v1__promotion__descriptor);

/* The promotions of `r`, `limit` at the most (0: all); *more when there were more. */
static status_t promotions_from_result(arena_t *a, const PGresult *r, int limit,
                                       Loyalty__V1__Promotion ***out, size_t *n, bool *more) {
    db_rows_t rows = {.item_size = sizeof **out, .limit = limit};
    status_t st = db_result_rows(a, r, db_row_read, (void *)&PROMOTION_COLS, &rows);
    *out = rows.items;
    *n = rows.n;
    if (more != NULL) {
        *more = rows.more;
    }
    return st;
}

/* Serialises the changes to a merchant's set of active promotions and checks its size. */
static status_t active_room(db_t *db, const char *merchant_id) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    status_t st = db_exec(
        db, "SELECT pg_advisory_xact_lock(hashtextextended('promo-active:' || $1, 0))", &p, NULL);
    if (!status_is_ok(&st)) {
        return st;
    }
    PGresult *r = NULL;
    st = db_exec(db, "SELECT count(*) FROM promotions WHERE merchant_id = $1 AND status = 1", &p,
                 &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    int64_t active = db_get_int(r, 0, 0);
    PQclear(r);
    if (active >= PROMO_ACTIVE_MAX) {
        return status_make(STATUS_RESOURCE_EXHAUSTED, REASON_TOO_MANY_PROMOTIONS,
                           "at most %d active promotions per merchant; pause one first",
                           PROMO_ACTIVE_MAX);
    }
    return status_ok();
}

static status_t shared_code_insert(db_t *db, const char *merchant_id, const char *code,
                                   const char *promotion_id, int64_t now) {
    db_params_t p;
    db_params_key(&p, merchant_id, code);
    db_param_text(&p, promotion_id);
    db_param_int(&p, now);
    status_t st = db_exec(db,
                          "INSERT INTO codes (merchant_id, code, promotion_id, kind, created_at) "
                          "VALUES ($1, $2, $3, 1, $4)",
                          &p, NULL);
    if (st.code == STATUS_ALREADY_EXISTS) {
        return status_make(STATUS_ALREADY_EXISTS, REASON_CODE_TAKEN,
                           "the code %s is already used by another promotion", code);
    }
    return st;
}

status_t promo_store_promotion_insert(db_t *db, const char *merchant_id,
                                      const Loyalty__V1__Promotion *pr) {
    arena_t a;
    arena_init(&a);
    status_t st = pr->status == STATUS_ACTIVE ? active_room(db, merchant_id) : status_ok();
    if (status_is_ok(&st)) {
        size_t len = 0;
        unsigned char *def = pb_pack_arena(&a, &pr->base, &len);
        db_params_t p;
        db_params_key(&p, merchant_id, pr->id);
        db_param_int(&p, pr->status);
        db_param_int(&p, pr->trigger);
        db_param_int(&p, pr->code_kind);
        db_param_text(&p, pr->code[0] ? pr->code : NULL);
        db_param_int(&p, pr->priority);
        db_param_int(&p, pr->start_at);
        db_param_int(&p, pr->end_at);
        db_param_bytes(&p, def, len);
        db_param_int(&p, pr->created_at);
        st = db_exec(db,
                     "INSERT INTO promotions (merchant_id, id, status, trigger, code_kind, code, "
                     " priority, start_at, end_at, definition, created_at, updated_at) "
                     "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
                     &p, NULL);
    }
    if (status_is_ok(&st) && pr->code[0]) {
        st = shared_code_insert(db, merchant_id, pr->code, pr->id, pr->created_at);
    }
    arena_free(&a);
    return st;
}

status_t promo_store_promotion_get(db_t *db, arena_t *a, const char *merchant_id, const char *id,
                                   bool for_update, Loyalty__V1__Promotion **out) {
    db_params_t p;
    db_params_key(&p, merchant_id, id);
    return db_row_get_cols(db, a,
                           for_update ? "SELECT " PROMOTION_COLUMNS " FROM promotions "
                                        "WHERE merchant_id = $1 AND id = $2 FOR UPDATE"
                                      : "SELECT " PROMOTION_COLUMNS " FROM promotions "
                                        "WHERE merchant_id = $1 AND id = $2",
                           &p, &PROMOTION_COLS, out, STATUS_NOT_FOUND, REASON_PROMOTION_NOT_FOUND,
                           "promotion not found");
}

status_t promo_store_promotion_update(db_t *db, const char *merchant_id,
                                      const Loyalty__V1__Promotion *pr, const char *old_code) {
    arena_t a;
    arena_init(&a);
    size_t len = 0;
    unsigned char *def = pb_pack_arena(&a, &pr->base, &len);
    db_params_t p;
    db_params_key(&p, merchant_id, pr->id);
    db_param_int(&p, pr->trigger);
    db_param_int(&p, pr->code_kind);
    db_param_text(&p, pr->code[0] ? pr->code : NULL);
    db_param_int(&p, pr->priority);
    db_param_int(&p, pr->start_at);
    db_param_int(&p, pr->end_at);
    db_param_bytes(&p, def, len);
    db_param_int(&p, pr->updated_at);
    status_t st = db_exec(db,
                          "UPDATE promotions SET trigger = $3, code_kind = $4, code = $5, "
                          " priority = $6, start_at = $7, end_at = $8, definition = $9, "
                          " updated_at = $10, version = version + 1 "
                          "WHERE merchant_id = $1 AND id = $2",
                          &p, NULL);
    arena_free(&a);
    if (!status_is_ok(&st) || strcmp(old_code, pr->code) == 0) {
        return st;
    }
    if (old_code[0]) {
        db_params_key(&p, merchant_id, old_code);
        st = db_exec(db, "DELETE FROM codes WHERE merchant_id = $1 AND code = $2 AND kind = 1", &p,
                     NULL);
    }
    if (status_is_ok(&st) && pr->code[0]) {
        st = shared_code_insert(db, merchant_id, pr->code, pr->id, pr->updated_at);
    }
    return st;
}

status_t promo_store_promotion_set_status(db_t *db, const char *merchant_id, const char *id,
                                          Loyalty__V1__PromoStatus status, int64_t now) {
    status_t st = status == STATUS_ACTIVE ? active_room(db, merchant_id) : status_ok();
    if (!status_is_ok(&st)) {
        return st;
    }
    db_params_t p;
    db_params_key(&p, merchant_id, id);
    db_param_int(&p, status);
    db_param_int(&p, now);
    return db_exec(db,
                   "UPDATE promotions SET status = $3, updated_at = $4, version = version + 1 "
                   "WHERE merchant_id = $1 AND id = $2",
                   &p, NULL);
}

status_t promo_store_promotions_list(db_t *db, arena_t *a, const char *merchant_id,
                                     Loyalty__V1__PromoStatus status,
                                     Loyalty__V1__PromoTrigger trigger, const char *after_id,
                                     int limit, Loyalty__V1__Promotion ***out, size_t *n,
                                     bool *more) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_int(&p, status);
    db_param_int(&p, trigger);
    db_param_text(&p, after_id);
    db_param_int(&p, limit + 1);
    PGresult *r = NULL;
    status_t st =
        db_exec(db,
                "SELECT " PROMOTION_COLUMNS " FROM promotions WHERE merchant_id = $1 "
                " AND ($2::int = 0 OR status = $2::int) AND ($3::int = 0 OR trigger = $3::int) "
                " AND ($4 = '' OR id < $4) ORDER BY id DESC LIMIT $5",
                &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    st = promotions_from_result(a, r, limit, out, n, more);
    PQclear(r);
    return st;
}

static const char ACTIVE_SQL[] =
    "SELECT " PROMOTION_COLUMNS " FROM promotions WHERE merchant_id = $1 "
    " AND status = 1 AND (end_at = 0 OR end_at > $2) "
    "ORDER BY priority DESC, id";

void promo_store_active_query(db_exec_item_t *item, db_params_t *p, const char *merchant_id,
                              int64_t now) {
    db_params_init(p);
    db_param_text(p, merchant_id);
    db_param_int(p, now);
    *item = (db_exec_item_t){.sql = ACTIVE_SQL, .params = p};
}

status_t promo_store_active_parse(arena_t *a, const PGresult *r, Loyalty__V1__Promotion ***out,
                                  size_t *n) {
    return promotions_from_result(a, r, 0, out, n, NULL);
}

status_t promo_store_promotions_active(db_t *db, arena_t *a, const char *merchant_id, int64_t now,
                                       Loyalty__V1__Promotion ***out, size_t *n) {
    db_params_t p;
    db_exec_item_t q;
    promo_store_active_query(&q, &p, merchant_id, now);
    PGresult *r = NULL;
    status_t st = db_exec(db, q.sql, q.params, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    st = promo_store_active_parse(a, r, out, n);
    PQclear(r);
    return st;
}

/* ---- codes ---- */

static const db_col_t CODE_COL_TABLE[] = {
    DB_COL(DB_COL_TEXT, promo_code_row_t, code),
    DB_COL(DB_COL_TEXT, promo_code_row_t, promotion_id),
    DB_COL(DB_COL_TEXT, promo_code_row_t, batch_id),
    DB_COL(DB_COL_INT, promo_code_row_t, kind),
    DB_COL(DB_COL_INT, promo_code_row_t, status),
    DB_COL(DB_COL_TEXT, promo_code_row_t, checkout_id),
    DB_COL(DB_COL_INT, promo_code_row_t, created_at),
    DB_COL(DB_COL_BOOL, promo_code_row_t, held_live),
};
static const db_cols_t CODE_COLS = DB_COLS(CODE_COL_TABLE);

status_t promo_store_code_get(db_t *db, arena_t *a, const char *merchant_id, const char *code,
                              int64_t now, bool for_update, promo_code_row_t *out, bool *found) {
    db_params_t p;
    db_params_key(&p, merchant_id, code);
    db_param_int(&p, now);
#define CODE_SELECT                                                                                \
    "SELECT c.code, c.promotion_id, coalesce(c.batch_id, ''), c.kind, c.status, "                  \
    " coalesce(c.checkout_id, ''), c.created_at, "                                                 \
    " coalesce(c.status = 2 AND r.status = 1 AND r.expires_at > $3, false) "                       \
    "FROM codes c LEFT JOIN reservations r "                                                       \
    " ON r.merchant_id = c.merchant_id AND r.checkout_id = c.checkout_id "                         \
    "WHERE c.merchant_id = $1 AND c.code = $2"
    return db_row_find_cols(db, a, for_update ? CODE_SELECT " FOR UPDATE OF c" : CODE_SELECT, &p,
                            &CODE_COLS, out, found);
#undef CODE_SELECT
}

/* Reserves room for `count` more codes on the promotion (PROMO_UNIQUE_CODES_MAX in all). */
static status_t codes_room(db_t *db, const char *merchant_id, const char *promotion_id, int count) {
    db_params_t p;
    db_params_key(&p, merchant_id, promotion_id);
    db_param_int(&p, count);
    db_param_int(&p, PROMO_UNIQUE_CODES_MAX);
    bool ok = false;
    status_t st = db_row_find(db, NULL,
                              "UPDATE promotions SET unique_code_count = unique_code_count + $3 "
                              "WHERE merchant_id = $1 AND id = $2 AND unique_code_count + $3 <= $4 "
                              "RETURNING 1",
                              &p, NULL, NULL, &ok);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (!ok) {
        return status_make(STATUS_RESOURCE_EXHAUSTED, REASON_TOO_MANY_CODES,
                           "at most %d unique codes per promotion", PROMO_UNIQUE_CODES_MAX);
    }
    return status_ok();
}

#define CODES_INSERT_ATTEMPTS_MAX 5

status_t promo_store_codes_generate(db_t *db, arena_t *a, const char *merchant_id,
                                    const char *promotion_id, const char *batch_id,
                                    const char *prefix, int count, int64_t now) {
    status_t st = codes_room(db, merchant_id, promotion_id, count);
    size_t prefix_len = strlen(prefix);
    char **codes = arena_alloc(a, (size_t)count * sizeof *codes);
    /* A clash with an existing code (60 random bits: practically never) is skipped by ON
     * CONFLICT and that many new codes are drawn again. */
    for (int attempt = 0; status_is_ok(&st) && count > 0; attempt++) {
        if (attempt == CODES_INSERT_ATTEMPTS_MAX) {
            return status_make(STATUS_INTERNAL, REASON_CODE_GENERATION_FAILED,
                               "could not generate unique codes");
        }
        for (int i = 0; i < count; i++) {
            codes[i] = arena_alloc(a, prefix_len + PROMO_CODE_RANDOM_LEN + 1);
            memcpy(codes[i], prefix, prefix_len);
            id_random_token(PROMO_CODE_ALPHABET, PROMO_CODE_RANDOM_LEN, codes[i] + prefix_len);
        }
        db_params_t p;
        db_params_key(&p, merchant_id, promotion_id);
        db_param_text(&p, batch_id);
        db_param_int(&p, now);
        db_param_text_array(&p, a, codes, (size_t)count);
        PGresult *r = NULL;
        st = db_exec(db,
                     "WITH ins AS (INSERT INTO codes (merchant_id, code, promotion_id, kind, "
                     " batch_id, created_at) SELECT $1, c, $2, 2, $3, $4 FROM unnest($5::text[]) c "
                     " ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*) FROM ins",
                     &p, &r);
        if (status_is_ok(&st)) {
            count -= (int)db_get_int(r, 0, 0);
            PQclear(r);
        }
    }
    return st;
}

static const db_col_t PROMO_CODE_COL_TABLE[] = {
    DB_FIELD(DB_COL_TEXT, "code"),        DB_FIELD(DB_COL_TEXT, "promotion_id"),
    DB_FIELD(DB_COL_TEXT, "batch_id"),    DB_FIELD(DB_COL_INT, "status"),
    DB_FIELD(DB_COL_TEXT, "checkout_id"), DB_FIELD(DB_COL_INT, "created_at"),
};
static const db_cols_t PROMO_CODE_COLS =
    DB_COLS_MESSAGE(PROMO_CODE_COL_TABLE, &loyalty__v1__promo_code__descriptor);

status_t promo_store_codes_list(db_t *db, arena_t *a, const char *merchant_id,
                                const char *promotion_id, const char *batch_id,
                                Loyalty__V1__PromoCodeStatus status, const char *after_code,
                                int limit, int64_t now, Loyalty__V1__PromoCode ***out, size_t *n,
                                bool *more) {
    db_params_t p;
    db_params_key(&p, merchant_id, promotion_id);
    db_param_text(&p, batch_id);
    db_param_int(&p, status);
    db_param_text(&p, after_code);
    db_param_int(&p, limit + 1);
    db_param_int(&p, now);
    /* The status is the one a caller sees: a RESERVED code whose reservation ended (released,
     * expired past its TTL) is AVAILABLE again before the expiry job writes it back. */
    static const char list_sql[] =
        "SELECT code, promotion_id, batch_id, status, checkout_id, created_at FROM ("
        " SELECT c.code, c.promotion_id, coalesce(c.batch_id, '') AS batch_id, "
        "  CASE WHEN c.status = 2 AND NOT coalesce(r.status = 1 AND r.expires_at > $7, false) "
        "   THEN 1 ELSE c.status END AS status, "
        "  CASE WHEN c.status = 2 AND NOT coalesce(r.status = 1 AND r.expires_at > $7, false) "
        "   THEN '' ELSE coalesce(c.checkout_id, '') END AS checkout_id, c.created_at "
        " FROM codes c LEFT JOIN reservations r "
        "  ON r.merchant_id = c.merchant_id AND r.checkout_id = c.checkout_id "
        " WHERE c.merchant_id = $1 AND c.promotion_id = $2 "
        "  AND ($3::text = '' OR c.batch_id = $3::text) AND c.code > $5) v "
        "WHERE ($4::int = 0 OR status = $4::int) ORDER BY code LIMIT $6";
    db_rows_t rows = {.item_size = sizeof **out, .limit = limit};
    status_t st = db_rows_cols(db, a, list_sql, &p, &PROMO_CODE_COLS, &rows);
    *out = rows.items;
    *n = rows.n;
    *more = rows.more;
    return st;
}

status_t promo_store_codes_set_by_checkout(db_t *db, const char *merchant_id,
                                           const char *checkout_id,
                                           Loyalty__V1__PromoCodeStatus status) {
    db_params_t p;
    db_params_key(&p, merchant_id, checkout_id);
    db_param_int(&p, status);
    return db_exec(db,
                   "UPDATE codes SET status = $3::int, "
                   " checkout_id = CASE WHEN $3::int = 1 THEN NULL ELSE checkout_id END "
                   "WHERE merchant_id = $1 AND checkout_id = $2 AND kind = 2",
                   &p, NULL);
}

/* ---- settings ---- */

/* The aggregates turn "no row" into the defaults in the same round trip. */
static const char SETTINGS_SQL[] =
    "SELECT s.tz, s.ru, s.rc, "
    " 'D' || to_char(to_timestamp($2) AT TIME ZONE s.tz, 'YYYY-MM-DD'), "
    " 'W' || to_char(to_timestamp($2) AT TIME ZONE s.tz, 'IYYY-\"W\"IW'), "
    " 'M' || to_char(to_timestamp($2) AT TIME ZONE s.tz, 'YYYY-MM') "
    "FROM (SELECT coalesce(max(time_zone), 'UTC') AS tz, "
    " coalesce(bool_and(refund_restores_usage), true) AS ru, "
    " coalesce(bool_and(refund_restores_coupons), true) AS rc "
    " FROM settings WHERE merchant_id = $1) s";

void promo_store_settings_query(db_exec_item_t *item, db_params_t *p, const char *merchant_id,
                                int64_t at) {
    db_params_init(p);
    db_param_text(p, merchant_id);
    db_param_int(p, at);
    *item = (db_exec_item_t){.sql = SETTINGS_SQL, .params = p};
}

void promo_store_settings_parse(arena_t *a, const PGresult *r,
                                Loyalty__V1__PromoSettings **settings, promo_periods_t *periods) {
    Loyalty__V1__PromoSettings *s = pb_new(a, &loyalty__v1__promo_settings__descriptor);
    s->time_zone = db_dup_str(a, r, 0, 0);
    s->refund_restores_usage = db_get_bool(r, 0, 1);
    s->refund_restores_coupons = db_get_bool(r, 0, 2);
    periods->day = db_dup_str(a, r, 0, 3);
    periods->week = db_dup_str(a, r, 0, 4);
    periods->month = db_dup_str(a, r, 0, 5);
    *settings = s;
}

status_t promo_store_settings_get(db_t *db, arena_t *a, const char *merchant_id, int64_t at,
                                  Loyalty__V1__PromoSettings **settings, promo_periods_t *periods) {
    db_params_t p;
    db_exec_item_t q;
    promo_store_settings_query(&q, &p, merchant_id, at);
    PGresult *r = NULL;
    status_t st = db_exec(db, q.sql, q.params, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    promo_store_settings_parse(a, r, settings, periods);
    PQclear(r);
    return status_ok();
}

status_t promo_store_settings_put(db_t *db, const char *merchant_id,
                                  const Loyalty__V1__PromoSettings *s, int64_t now) {
    bool known = false;
    status_t st = db_time_zone_known(db, s->time_zone, &known);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (!known) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_INVALID_TIME_ZONE,
                           "unknown time zone %s", s->time_zone);
    }
    db_params_t p;
    db_params_key(&p, merchant_id, s->time_zone);
    db_param_bool(&p, s->refund_restores_usage);
    db_param_bool(&p, s->refund_restores_coupons);
    db_param_int(&p, now);
    return db_exec(db,
                   "INSERT INTO settings (merchant_id, time_zone, refund_restores_usage, "
                   " refund_restores_coupons, updated_at) VALUES ($1, $2, $3, $4, $5) "
                   "ON CONFLICT (merchant_id) DO UPDATE SET time_zone = $2, "
                   " refund_restores_usage = $3, refund_restores_coupons = $4, updated_at = $5",
                   &p, NULL);
}

/* ---- limit counters ---- */

static void counter_key_params(arena_t *a, db_params_t *p, const char *merchant_id,
                               const promo_counter_t *c, size_t n) {
    char **ids = arena_alloc(a, (n + 1) * sizeof *ids);
    char **scopes = arena_alloc(a, (n + 1) * sizeof *scopes);
    char **periods = arena_alloc(a, (n + 1) * sizeof *periods);
    for (size_t i = 0; i < n; i++) {
        ids[i] = (char *)c[i].promotion_id;
        scopes[i] = (char *)c[i].scope_key;
        periods[i] = (char *)c[i].period_key;
    }
    db_params_init(p);
    db_param_text(p, merchant_id);
    db_param_text_array(p, a, ids, n);
    db_param_text_array(p, a, scopes, n);
    db_param_text_array(p, a, periods, n);
}

/* Creates the missing counters and locks them all, one row after the other in key order, in one
 * statement: an insert of a key that another transaction is inserting waits for it and then
 * locks the row, and ON CONFLICT DO UPDATE locks the rows that exist (WHERE false: without
 * writing them). A transaction taking its counters this way waits only for keys after the ones
 * it holds, whether the rows exist or not; creating missing rows first and locking the rest
 * after (two passes) would let it hold a new row of a later key while it waits for an earlier
 * one. $5: reservations whose recorded usages are locked too; $6: the same, by order id. */
// clang-format off
static const char COUNTERS_LOCK_SQL[] =
    "INSERT INTO usage_counters AS c (merchant_id, promotion_id, scope_key, period_key) "
    "SELECT $1, k.p, k.s, k.t FROM ("
    " SELECT p, s, t FROM unnest($2::text[], $3::text[], $4::text[]) AS k(p, s, t) "
    " UNION SELECT u.promotion_id, u.scope_key, u.period_key FROM reservation_usages u "
    "  WHERE u.merchant_id = $1 AND (u.checkout_id = ANY($5::text[]) OR u.checkout_id IN ("
    "   SELECT r.checkout_id FROM reservations r "
    "   WHERE r.merchant_id = $1 AND r.order_id = ANY($6::text[])))) k "
    "ORDER BY k.p COLLATE \"C\", k.s COLLATE \"C\", k.t COLLATE \"C\" "
    "ON CONFLICT (merchant_id, promotion_id, scope_key, period_key) "
    " DO UPDATE SET uses = c.uses WHERE false";
// clang-format on

status_t promo_store_counters_lock(db_t *db, arena_t *a, const char *merchant_id,
                                   const promo_counter_t *counters, size_t n,
                                   char *const *checkout_ids, size_t n_checkouts,
                                   char *const *order_ids, size_t n_orders) {
    if (n + n_checkouts + n_orders == 0) {
        return status_ok();
    }
    db_params_t p;
    counter_key_params(a, &p, merchant_id, counters, n);
    db_param_text_array(&p, a, checkout_ids, n_checkouts);
    db_param_text_array(&p, a, order_ids, n_orders);
    return db_exec(db, COUNTERS_LOCK_SQL, &p, NULL);
}

typedef struct counter_list {
    promo_counter_t *counters;
    size_t n;
} counter_list_t;

/* (ordinality, uses, discount_cents) into the counter the ordinality names. */
static status_t counter_row(void *ctx, arena_t *a, const PGresult *r, int row, void *item) {
    counter_list_t *list = ctx;
    int64_t k = db_get_int(r, row, 0) - 1;
    if (k >= 0 && (size_t)k < list->n) {
        list->counters[k].uses = db_get_int(r, row, 1);
        list->counters[k].discount_cents = db_get_int(r, row, 2);
    }
    return status_ok();
}

status_t promo_store_counters_read(db_t *db, arena_t *a, const char *merchant_id,
                                   promo_counter_t *counters, size_t n, bool lock) {
    if (n == 0) {
        return status_ok();
    }
    db_params_t p;
    counter_key_params(a, &p, merchant_id, counters, n);
    status_t st = status_ok();
    PGresult *r = NULL;
    if (lock) {
        st = promo_store_counters_lock(db, a, merchant_id, counters, n, NULL, 0, NULL, 0);
        if (status_is_ok(&st)) { /* the rows are ours already: this reads them */
            st = db_exec(db,
                         "SELECT k.o, c.uses, c.discount_cents FROM usage_counters c "
                         "JOIN unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY "
                         " AS k(p, s, t, o) ON c.promotion_id = k.p AND c.scope_key = k.s "
                         " AND c.period_key = k.t WHERE c.merchant_id = $1 "
                         "ORDER BY c.promotion_id COLLATE \"C\", c.scope_key COLLATE \"C\", "
                         " c.period_key COLLATE \"C\" FOR UPDATE OF c",
                         &p, &r);
        }
    } else {
        st = db_exec(db,
                     "SELECT k.o, coalesce(c.uses, 0), coalesce(c.discount_cents, 0) "
                     "FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY "
                     " AS k(p, s, t, o) LEFT JOIN usage_counters c ON c.merchant_id = $1 "
                     " AND c.promotion_id = k.p AND c.scope_key = k.s AND c.period_key = k.t",
                     &p, &r);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    counter_list_t list = {counters, n};
    st = db_result_rows(a, r, counter_row, &list, NULL);
    PQclear(r);
    return st;
}
