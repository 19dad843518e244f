/* promo_store_checkout.c -- checkout reservations in PostgreSQL: one row per checkout with
 * its status, TTL and the quote it was taken for. */
#include "promo_store.h"

#include "pb.h"

#include <string.h>

#define RESERVATION_COLUMNS                                                                        \
    "checkout_id, merchant_id, member_id, status, expires_at, coalesce(order_id, ''), quote, "     \
    "usage_restored, coupons_restored, created_at, updated_at"

static Loyalty__V1__PromoReservation *reservation_from_row(arena_t *a, const PGresult *r) {
    Loyalty__V1__PromoReservation *v = pb_new(a, &loyalty__v1__promo_reservation__descriptor);
    v->checkout_id = arena_strdup(a, db_get_str(r, 0, 0));
    v->merchant_id = arena_strdup(a, db_get_str(r, 0, 1));
    v->member_id = arena_strdup(a, db_get_str(r, 0, 2));
    v->status = (Loyalty__V1__PromoReservationStatus)db_get_int(r, 0, 3);
    v->expires_at = db_get_int(r, 0, 4);
    v->order_id = arena_strdup(a, db_get_str(r, 0, 5));
    if (!db_is_null(r, 0, 6)) {
        size_t len = 0;
        unsigned char *bytes = PQunescapeBytea((const unsigned char *)db_get_str(r, 0, 6), &len);
        if (bytes != NULL) {
            v->quote = (Loyalty__V1__PromoQuoteResult *)pb_unpack_arena(
                a, &loyalty__v1__promo_quote_result__descriptor, bytes, len);
            PQfreemem(bytes);
        }
    }
    v->usage_restored = db_get_bool(r, 0, 7);
    v->coupons_restored = db_get_bool(r, 0, 8);
    v->created_at = db_get_int(r, 0, 9);
    v->updated_at = db_get_int(r, 0, 10);
    return v;
}

status_t promo_store_reservation_insert(db_t *db, const char *merchant_id,
                                        const Loyalty__V1__PromoReservation *v) {
    arena_t a;
    arena_init(&a);
    size_t len = 0;
    unsigned char *quote = pb_pack_arena(&a, &v->quote->base, &len);
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, v->checkout_id);
    db_param_text(&p, v->member_id);
    db_param_int(&p, v->status);
    db_param_int(&p, v->expires_at);
    db_param_bytes(&p, quote, len);
    db_param_int(&p, v->created_at);
    status_t st = db_exec(db,
                          "INSERT INTO reservations (merchant_id, checkout_id, member_id, status, "
                          " expires_at, quote, created_at, updated_at) "
                          "VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                          &p, NULL);
    arena_free(&a);
    if (st.code == STATUS_ALREADY_EXISTS) {
        return status_make(STATUS_ALREADY_EXISTS, "RESERVATION_EXISTS",
                           "checkout %s already has a reservation", v->checkout_id);
    }
    return st;
}

status_t promo_store_reservation_tombstone(db_t *db, const char *merchant_id,
                                           const char *checkout_id, int64_t now, bool *inserted) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, checkout_id);
    db_param_int(&p, now);
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "INSERT INTO reservations (merchant_id, checkout_id, status, expires_at, "
                          " created_at, updated_at) VALUES ($1, $2, 3, $3, $3, $3) "
                          "ON CONFLICT DO NOTHING RETURNING 1",
                          &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    *inserted = PQntuples(r) == 1;
    PQclear(r);
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
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, by_order ? order_id : checkout_id);
    PGresult *r = NULL;
    status_t st = db_exec(db, sql[by_order][for_update], &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    *found = PQntuples(r) == 1;
    if (*found) {
        *out = reservation_from_row(a, r);
    }
    PQclear(r);
    return status_ok();
}

status_t promo_store_reservation_claim_expired(db_t *db, arena_t *a, const char *merchant_id,
                                               const char *checkout_id, int64_t now,
                                               Loyalty__V1__PromoReservation **out, bool *found) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, checkout_id);
    db_param_int(&p, now);
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "SELECT " RESERVATION_COLUMNS " FROM reservations "
                          "WHERE merchant_id = $1 AND checkout_id = $2 AND status = 1 "
                          " AND expires_at <= $3 FOR UPDATE SKIP LOCKED",
                          &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    *found = PQntuples(r) == 1;
    if (*found) {
        *out = reservation_from_row(a, r);
    }
    PQclear(r);
    return status_ok();
}

status_t promo_store_reservation_update(db_t *db, const char *merchant_id,
                                        const Loyalty__V1__PromoReservation *v) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, v->checkout_id);
    db_param_int(&p, v->status);
    db_param_text(&p, v->order_id[0] ? v->order_id : NULL);
    db_param_bool(&p, v->usage_restored);
    db_param_bool(&p, v->coupons_restored);
    db_param_int(&p, v->updated_at);
    status_t st = db_exec(db,
                          "UPDATE reservations SET status = $3, order_id = $4, "
                          " usage_restored = $5, coupons_restored = $6, updated_at = $7 "
                          "WHERE merchant_id = $1 AND checkout_id = $2",
                          &p, NULL);
    if (st.code == STATUS_ALREADY_EXISTS) {
        return status_make(STATUS_ALREADY_EXISTS, "ORDER_ID_TAKEN",
                           "another checkout already has order id %s", v->order_id);
    }
    return st;
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
        st = db_exec(db,
                     "SELECT merchant_id, checkout_id FROM reservations "
                     "WHERE merchant_id = $3 AND status = 1 AND expires_at <= $1 "
                     "ORDER BY expires_at LIMIT $2",
                     &p, &r);
    } else {
        st = db_exec(db,
                     "SELECT merchant_id, checkout_id FROM reservations "
                     "WHERE status = 1 AND expires_at <= $1 ORDER BY expires_at LIMIT $2",
                     &p, &r);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    int rows = PQntuples(r);
    *out = arena_alloc(a, ((size_t)rows + 1) * sizeof **out);
    for (int i = 0; i < rows; i++) {
        (*out)[i].merchant_id = arena_strdup(a, db_get_str(r, i, 0));
        (*out)[i].checkout_id = arena_strdup(a, db_get_str(r, i, 1));
    }
    *n = (size_t)rows;
    PQclear(r);
    return status_ok();
}
