/* promo_store_coupons.c -- coupon templates, their stock and per-member allowance, and issued
 * coupons in PostgreSQL. */
#include "promo_store.h"

#include "ids.h"
#include "pb.h"
#include "promo_rules.h"

#define TEMPLATE_COLUMNS                                                                           \
    "id, merchant_id, name, kind, amount_off_cents, percent_off_bps, max_discount_cents, "         \
    "min_spend_cents, valid_days, valid_from_at, valid_until_at, per_member_max, total_max, "      \
    "issued_count, active, created_at"

static const db_col_t TEMPLATE_COL_TABLE[] = {
    DB_FIELD(DB_COL_TEXT, "id"),
    DB_FIELD(DB_COL_TEXT, "merchant_id"),
    DB_FIELD(DB_COL_TEXT, "name"),
    DB_FIELD(DB_COL_INT, "kind"),
    DB_FIELD(DB_COL_INT, "amount_off_cents"),
    DB_FIELD(DB_COL_INT, "percent_off_bps"),
    DB_FIELD(DB_COL_INT, "max_discount_cents"),
    DB_FIELD(DB_COL_INT, "min_spend_cents"),
    DB_FIELD(DB_COL_INT, "valid_days"),
    DB_FIELD(DB_COL_INT, "valid_from_at"),
    DB_FIELD(DB_COL_INT, "valid_until_at"),
    DB_FIELD(DB_COL_INT, "per_member_max"),
    DB_FIELD(DB_COL_INT, "total_max"),
    DB_FIELD(DB_COL_INT, "issued_count"),
    DB_FIELD(DB_COL_BOOL, "active"),
    DB_FIELD(DB_COL_INT, "created_at"),
};
static const db_cols_t TEMPLATE_COLS =
    DB_COLS_MESSAGE(TEMPLATE_COL_TABLE, &loyalty__v1__promo_coupon_template__descriptor);

status_t promo_store_template_insert(db_t *db, const char *merchant_id,
                                     const Loyalty__V1__PromoCouponTemplate *t) {
    db_params_t p;
    db_params_key(&p, merchant_id, t->id);
    db_param_text(&p, t->name);
    db_param_int(&p, t->kind);
    db_param_int(&p, t->amount_off_cents);
    db_param_int(&p, t->percent_off_bps);
    db_param_int(&p, t->max_discount_cents);
    db_param_int(&p, t->min_spend_cents);
    db_param_int(&p, t->valid_days);
    db_param_int(&p, t->valid_from_at);
    db_param_int(&p, t->valid_until_at);
    db_param_int(&p, t->per_member_max);
    db_param_int(&p, t->total_max);
    db_param_int(&p, t->created_at);
    return db_exec(db,
                   "INSERT INTO coupon_templates (merchant_id, id, name, kind, amount_off_cents, "
                   " percent_off_bps, max_discount_cents, min_spend_cents, valid_days, "
                   " valid_from_at, valid_until_at, per_member_max, total_max, created_at) "
                   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                   &p, NULL);
}

static status_t template_one(db_t *db, arena_t *a, const char *sql, const db_params_t *p,
                             Loyalty__V1__PromoCouponTemplate **out) {
    return db_row_get_cols(db, a, sql, p, &TEMPLATE_COLS, out, STATUS_NOT_FOUND,
                           REASON_TEMPLATE_NOT_FOUND, "coupon template not found");
}

status_t promo_store_template_get(db_t *db, arena_t *a, const char *merchant_id, const char *id,
                                  Loyalty__V1__PromoCouponTemplate **out) {
    db_params_t p;
    db_params_key(&p, merchant_id, id);
    return template_one(db, a,
                        "SELECT " TEMPLATE_COLUMNS " FROM coupon_templates "
                        "WHERE merchant_id = $1 AND id = $2",
                        &p, out);
}

status_t promo_store_templates_list(db_t *db, arena_t *a, const char *merchant_id,
                                    const char *after_id, int limit,
                                    Loyalty__V1__PromoCouponTemplate ***out, size_t *n,
                                    bool *more) {
    db_params_t p;
    db_params_key(&p, merchant_id, after_id);
    db_param_int(&p, limit + 1);
    db_rows_t rows = {.item_size = sizeof **out, .limit = limit};
    status_t st = db_rows_cols(db, a,
                               "SELECT " TEMPLATE_COLUMNS " FROM coupon_templates "
                               "WHERE merchant_id = $1 AND ($2 = '' OR id < $2) "
                               "ORDER BY id DESC LIMIT $3",
                               &p, &TEMPLATE_COLS, &rows);
    *out = rows.items;
    *n = rows.n;
    *more = rows.more;
    return st;
}

status_t promo_store_template_set_active(db_t *db, arena_t *a, const char *merchant_id,
                                         const char *id, bool active,
                                         Loyalty__V1__PromoCouponTemplate **out) {
    db_params_t p;
    db_params_key(&p, merchant_id, id);
    db_param_bool(&p, active);
    return template_one(db, a,
                        "UPDATE coupon_templates SET active = $3 "
                        "WHERE merchant_id = $1 AND id = $2 RETURNING " TEMPLATE_COLUMNS,
                        &p, out);
}

status_t promo_store_template_take(db_t *db, const char *merchant_id,
                                   const Loyalty__V1__PromoCouponTemplate *t,
                                   const char *member_id) {
    db_params_t p;
    db_params_key(&p, merchant_id, t->id);
    bool taken = false;
    /* One conditional update: concurrent issues queue on the row and re-check the stock. */
    status_t st = db_row_find(db, NULL,
                              "UPDATE coupon_templates SET issued_count = issued_count + 1 "
                              "WHERE merchant_id = $1 AND id = $2 "
                              " AND (total_max = 0 OR issued_count < total_max) RETURNING 1",
                              &p, NULL, NULL, &taken);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (!taken) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_TEMPLATE_OUT_OF_STOCK,
                           "every coupon of this template has been issued");
    }
    if (t->per_member_max == 0) {
        return status_ok();
    }
    db_param_text(&p, member_id);
    db_param_int(&p, t->per_member_max);
    st = db_row_find(db, NULL,
                     "INSERT INTO template_holdings (merchant_id, template_id, member_id, issued) "
                     "VALUES ($1, $2, $3, 1) ON CONFLICT (merchant_id, template_id, member_id) "
                     "DO UPDATE SET issued = template_holdings.issued + 1 "
                     "WHERE template_holdings.issued < $4 RETURNING 1",
                     &p, NULL, NULL, &taken);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (!taken) {
        return status_make(STATUS_FAILED_PRECONDITION, REASON_COUPON_LIMIT_REACHED,
                           "the member already holds %d coupons of this template",
                           t->per_member_max);
    }
    return status_ok();
}

/* ---- coupons ---- */

#define COUPON_COLUMNS                                                                             \
    "c.id, c.merchant_id, c.member_id, c.template_id, c.name, c.kind, c.amount_off_cents, "        \
    "c.percent_off_bps, c.max_discount_cents, c.min_spend_cents, c.source, c.status, "             \
    "c.valid_from_at, c.valid_until_at, c.issued_at, c.used_at, coalesce(c.checkout_id, ''), "     \
    "coalesce(c.code, '')"
/* Column 18 of a coupon read: whether a RESERVED coupon's reservation still holds it at `now`
 * (a parameter); an expired reservation frees the coupon before the job writes it back. */
#define COUPON_HELD_LIVE(now)                                                                      \
    "coalesce(c.status = 2 AND r.status = 1 AND r.expires_at > " now ", false)"
#define COUPON_JOIN_RESERVATION                                                                    \
    "LEFT JOIN reservations r ON r.merchant_id = c.merchant_id AND r.checkout_id = c.checkout_id "

static const db_col_t COUPON_COL_TABLE[] = {
    DB_FIELD(DB_COL_TEXT, "id"),
    DB_FIELD(DB_COL_TEXT, "merchant_id"),
    DB_FIELD(DB_COL_TEXT, "member_id"),
    DB_FIELD(DB_COL_TEXT, "template_id"),
    DB_FIELD(DB_COL_TEXT, "name"),
    DB_FIELD(DB_COL_INT, "kind"),
    DB_FIELD(DB_COL_INT, "amount_off_cents"),
    DB_FIELD(DB_COL_INT, "percent_off_bps"),
    DB_FIELD(DB_COL_INT, "max_discount_cents"),
    DB_FIELD(DB_COL_INT, "min_spend_cents"),
    DB_FIELD(DB_COL_INT, "source"),
    DB_FIELD(DB_COL_INT, "status"),
    DB_FIELD(DB_COL_INT, "valid_from_at"),
    DB_FIELD(DB_COL_INT, "valid_until_at"),
    DB_FIELD(DB_COL_INT, "issued_at"),
    DB_FIELD(DB_COL_INT, "used_at"),
    DB_FIELD(DB_COL_TEXT, "checkout_id"),
    DB_FIELD(DB_COL_TEXT, "code"),
};
static const db_cols_t COUPON_COLS =
    DB_COLS_MESSAGE(COUPON_COL_TABLE, &loyalty__v1__promo_coupon__descriptor);

/* A coupon with the status its member sees at `now`: COUPON_COLUMNS, then COUPON_HELD_LIVE. */
static status_t coupon_seen(arena_t *a, const PGresult *r, int row, int64_t now,
                            Loyalty__V1__PromoCoupon **out) {
    status_t st = db_cols_read(a, &COUPON_COLS, r, row, out);
    if (status_is_ok(&st)) {
        Loyalty__V1__PromoCoupon *c = *out;
        c->status =
            promo_rules_coupon_status(c->status, db_get_bool(r, row, 18), c->valid_until_at, now);
    }
    return st;
}

/* One insert under `code`; *inserted false when the code is taken (the id is fresh). */
static status_t coupon_insert_once(db_t *db, const char *merchant_id,
                                   const Loyalty__V1__PromoCoupon *c, const char *code,
                                   bool *inserted) {
    db_params_t p;
    db_params_key(&p, merchant_id, c->id);
    DB_PARAM_TEXTS(&p, c->member_id, c->template_id, c->name);
    db_param_int(&p, c->kind);
    db_param_int(&p, c->amount_off_cents);
    db_param_int(&p, c->percent_off_bps);
    db_param_int(&p, c->max_discount_cents);
    db_param_int(&p, c->min_spend_cents);
    db_param_int(&p, c->source);
    db_param_int(&p, c->valid_from_at);
    db_param_int(&p, c->valid_until_at);
    db_param_int(&p, c->issued_at);
    db_param_text(&p, code);
    /* ON CONFLICT without a target: the only conflict a fresh id can meet is the code's. */
    return db_row_find(db, NULL,
                       "INSERT INTO coupons (merchant_id, id, member_id, template_id, name, "
                       " kind, amount_off_cents, percent_off_bps, max_discount_cents, "
                       " min_spend_cents, source, valid_from_at, valid_until_at, issued_at, code) "
                       "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) "
                       "ON CONFLICT DO NOTHING RETURNING id",
                       &p, NULL, NULL, inserted);
}

status_t promo_store_coupon_insert(db_t *db, arena_t *a, const char *merchant_id,
                                   Loyalty__V1__PromoCoupon *c) {
    for (int attempt = 0; attempt < PROMO_COUPON_CODE_ATTEMPTS; attempt++) {
        char code[PROMO_COUPON_CODE_LEN + 1];
        id_random_token(PROMO_CODE_ALPHABET, PROMO_COUPON_CODE_LEN, code);
        bool inserted = false;
        status_t st = coupon_insert_once(db, merchant_id, c, code, &inserted);
        if (!status_is_ok(&st)) {
            return st;
        }
        if (inserted) {
            c->code = arena_strdup(a, code);
            return st;
        }
    }
    return status_make(STATUS_ABORTED, REASON_CODE_COLLISION,
                       "could not draw a unique coupon code; safe to retry");
}

status_t promo_store_coupon_get(db_t *db, arena_t *a, const char *merchant_id, const char *id,
                                int64_t now, Loyalty__V1__PromoCoupon **out) {
    db_params_t p;
    db_params_key(&p, merchant_id, id);
    db_param_int(&p, now);
    PGresult *r = NULL;
    // clang-format off
    status_t st = db_exec_row(db,
                              "SELECT " COUPON_COLUMNS ", " COUPON_HELD_LIVE("$3") " "
                              "FROM coupons c " COUPON_JOIN_RESERVATION
                              "WHERE c.merchant_id = $1 AND c.id = $2",
                              &p, &r, STATUS_NOT_FOUND, REASON_COUPON_NOT_FOUND, "coupon not found");
    // clang-format on
    if (!status_is_ok(&st)) {
        return st;
    }
    st = coupon_seen(a, r, 0, now, out);
    PQclear(r);
    return st;
}

/* coupon_seen at *ctx (an int64_t). */
static status_t coupon_seen_row(void *ctx, arena_t *a, const PGresult *r, int row, void *item) {
    return coupon_seen(a, r, row, *(const int64_t *)ctx, item);
}

status_t promo_store_coupons_list(db_t *db, arena_t *a, const char *merchant_id,
                                  const char *member_id, Loyalty__V1__PromoCouponStatus status,
                                  int64_t now, const char *after_id, int limit,
                                  Loyalty__V1__PromoCoupon ***out, size_t *n, bool *more) {
    db_params_t p;
    db_params_key(&p, merchant_id, member_id);
    db_param_int(&p, status);
    db_param_int(&p, now);
    db_param_text(&p, after_id);
    db_param_int(&p, limit + 1);
    /* The filter is on the status a member sees (promo_rules_coupon_status): EXPIRED is not
     * stored, and a RESERVED coupon whose reservation ended is free again before the job
     * writes it back. */
    // clang-format off
    static const char list_sql[] =
        "SELECT " COUPON_COLUMNS ", " COUPON_HELD_LIVE("$4") " "
        "FROM coupons c " COUPON_JOIN_RESERVATION
        "WHERE c.merchant_id = $1 AND c.member_id = $2 AND ($5 = '' OR c.id < $5) "
        " AND CASE $3::int WHEN 0 THEN true "
        "  WHEN 1 THEN (c.status = 1 OR (c.status = 2 AND NOT " COUPON_HELD_LIVE("$4") ")) "
        "   AND c.valid_until_at > $4 "
        "  WHEN 2 THEN c.status = 2 AND " COUPON_HELD_LIVE("$4") " "
        "  WHEN 4 THEN (c.status = 1 OR (c.status = 2 AND NOT " COUPON_HELD_LIVE("$4") ")) "
        "   AND c.valid_until_at <= $4 "
        "  ELSE c.status = $3::int END "
        "ORDER BY c.id DESC LIMIT $6";
    // clang-format on
    db_rows_t rows = {.item_size = sizeof **out, .limit = limit};
    status_t st = db_rows(db, a, list_sql, &p, coupon_seen_row, &now, &rows);
    *out = rows.items;
    *n = rows.n;
    *more = rows.more;
    return st;
}

status_t promo_store_coupons_for_cart(db_t *db, arena_t *a, const char *merchant_id,
                                      char *const *ids, size_t n, char *const *codes,
                                      size_t n_codes, int64_t now, bool lock,
                                      Loyalty__V1__PromoCoupon ***out, bool **held_live,
                                      size_t *n_out) {
    *n_out = 0;
    *out = arena_alloc(a, (n + n_codes + 1) * sizeof **out);
    *held_live = arena_alloc(a, (n + n_codes + 1) * sizeof **held_live);
    if (n + n_codes == 0) {
        return status_ok();
    }
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text_array(&p, a, ids, n);
    db_param_int(&p, now);
    db_param_text_array(&p, a, codes, n_codes);
// clang-format off
#define CART_COUPONS                                                                               \
    "SELECT " COUPON_COLUMNS ", " COUPON_HELD_LIVE("$3") " "                                       \
    "FROM coupons c " COUPON_JOIN_RESERVATION                                                      \
    "WHERE c.merchant_id = $1 AND (c.id = ANY($2::text[]) OR c.code = ANY($4::text[])) "           \
    "ORDER BY c.id"
    // clang-format on
    PGresult *r = NULL;
    status_t st = db_exec(db, lock ? CART_COUPONS " FOR UPDATE OF c" : CART_COUPONS, &p, &r);
#undef CART_COUPONS
    if (!status_is_ok(&st)) {
        return st;
    }
    for (int i = 0; i < PQntuples(r) && (size_t)i < n + n_codes && status_is_ok(&st); i++) {
        st = db_cols_read(a, &COUPON_COLS, r, i, &(*out)[i]);
        (*held_live)[i] = db_get_bool(r, i, 18);
        (*n_out)++;
    }
    PQclear(r);
    return st;
}

status_t promo_store_coupons_set_by_checkout(db_t *db, const char *merchant_id,
                                             const char *checkout_id,
                                             Loyalty__V1__PromoCouponStatus status, int64_t now) {
    db_params_t p;
    db_params_key(&p, merchant_id, checkout_id);
    db_param_int(&p, status);
    db_param_int(&p, now);
    return db_exec(db,
                   "UPDATE coupons SET status = $3::int, "
                   " used_at = CASE WHEN $3::int = 3 THEN $4::bigint ELSE 0 END, "
                   " checkout_id = CASE WHEN $3::int = 1 THEN NULL ELSE checkout_id END "
                   "WHERE merchant_id = $1 AND checkout_id = $2",
                   &p, NULL);
}
