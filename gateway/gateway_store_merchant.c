/* gateway_store_merchant.c -- SQL of the merchant settings record (gateway_rpc_merchant.c):
 * the record itself, one push row per service that keeps a copy of its time zone, and the
 * claims the push and verify job takes on them under leases (FOR UPDATE SKIP LOCKED, so that
 * gateway replicas share the work). Services are named by their names (member-svc, ...). */
#include "gateway_store.h"

#include "pb.h"
#include "sql_time.h"

#include <string.h>

static Loyalty__V1__GatewayMerchantSettings *record_defaults(arena_t *a) {
    Loyalty__V1__GatewayMerchantSettings *s =
        pb_new(a, &loyalty__v1__gateway_merchant_settings__descriptor);
    s->time_zone = "UTC";
    return s;
}

static Loyalty__V1__GatewayMerchantSettings *record_from_row(arena_t *a, const PGresult *r) {
    Loyalty__V1__GatewayMerchantSettings *s = record_defaults(a);
    if (PQntuples(r) == 1) {
        s->time_zone = db_dup_str(a, r, 0, 0);
        s->currency = db_dup_str(a, r, 0, 1);
        s->locale = db_dup_str(a, r, 0, 2);
        s->version = db_get_int(r, 0, 3);
        s->updated_at = db_get_int(r, 0, 4);
    }
    return s;
}

status_t gw_store_merchant_read(db_t *db, arena_t *a, const char *merchant_id,
                                Loyalty__V1__GatewayMerchantSettings **out) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "SELECT time_zone, currency, locale, version, " SQL_EPOCH_S(
                              "updated_at") " FROM merchant_settings WHERE merchant_id = $1",
                          &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    *out = record_from_row(a, r);
    PQclear(r);
    return status_ok();
}

status_t gw_store_merchant_write(db_t *db, arena_t *a, const char *merchant_id,
                                 const Loyalty__V1__GatewayMerchantSettings *s, bool push,
                                 const char *const *services, size_t n_services,
                                 Loyalty__V1__GatewayMerchantSettings **out) {
    db_params_t p;
    db_params_key(&p, merchant_id, s->time_zone);
    db_param_text(&p, s->currency);
    db_param_text(&p, s->locale);
    PGresult *r = NULL;
    status_t st = db_exec(
        db,
        "INSERT INTO merchant_settings AS s (merchant_id, time_zone, currency, locale, version) "
        "VALUES ($1, $2, $3, $4, 1) ON CONFLICT (merchant_id) DO UPDATE SET "
        " time_zone = excluded.time_zone, currency = excluded.currency, "
        " locale = excluded.locale, version = s.version + 1, updated_at = now() "
        "RETURNING time_zone, currency, locale, version, " SQL_EPOCH_S("updated_at"),
        &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    *out = record_from_row(a, r);
    PQclear(r);
    if (!push && (*out)->version > 1) {
        return status_ok();
    }
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text_array(&p, a, (char *const *)services, n_services);
    db_param_int(&p, (*out)->version);
    return db_exec(db,
                   "INSERT INTO merchant_settings_pushes (merchant_id, service, target_version) "
                   "SELECT $1, unnest($2::text[]), $3 "
                   "ON CONFLICT (merchant_id, service) DO UPDATE SET "
                   " target_version = excluded.target_version, attempts = 0, "
                   " next_attempt_at = now()",
                   &p, NULL);
}

/* The columns of gw_store_merchant_pushes's statement. */
static const db_col_t PUSH_COL_TABLE[] = {
    DB_FIELD(DB_COL_TEXT, "service"),    DB_FIELD(DB_COL_INT, "applied_version"),
    DB_FIELD(DB_COL_BOOL, "in_sync"),    DB_FIELD(DB_COL_INT, "attempts"),
    DB_FIELD(DB_COL_TEXT, "last_error"), DB_FIELD(DB_COL_INT, "next_attempt_at"),
    DB_FIELD(DB_COL_INT, "applied_at"),
};
static const db_cols_t PUSH_COLS =
    DB_COLS_MESSAGE(PUSH_COL_TABLE, &loyalty__v1__gateway_merchant_settings_push__descriptor);

status_t gw_store_merchant_pushes(db_t *db, arena_t *a, const char *merchant_id,
                                  Loyalty__V1__GatewayMerchantSettingsPush ***out, size_t *n) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_rows_t rows = {.item_size = sizeof **out};
    status_t st = db_rows_cols(
        db, a,
        "SELECT service, applied_version, "
        " applied_version >= target_version AND NOT resync_pending, attempts, "
        " last_error, CASE WHEN next_attempt_at = 'infinity' THEN 0 "
        "  ELSE " SQL_EPOCH_S("next_attempt_at") " END, "
                                                 " " SQL_EPOCH_S_OR_0(
                                                     "applied_at") " "
                                                                   "FROM merchant_settings_pushes "
                                                                   "WHERE merchant_id = $1",
        &p, &PUSH_COLS, &rows);
    *out = rows.items;
    *n = rows.n;
    return st;
}

status_t gw_store_merchant_time_zone(db_t *db, arena_t *a, const char *merchant_id,
                                     const char *fallback, const char **out) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    PGresult *r = NULL;
    status_t st =
        db_exec(db, "SELECT time_zone FROM merchant_settings WHERE merchant_id = $1", &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    *out = PQntuples(r) == 1 ? db_dup_str(a, r, 0, 0) : fallback;
    PQclear(r);
    return status_ok();
}

/* ---- the job's claims ---- */

/* The RETURNING columns of gw_store_merchant_pushes_claim. */
static const db_col_t CLAIMED_PUSH_COL_TABLE[] = {
    DB_COL(DB_COL_TEXT, gw_merchant_push_t, merchant_id),
    DB_COL(DB_COL_TEXT, gw_merchant_push_t, service),
    DB_COL(DB_COL_INT, gw_merchant_push_t, version),
    DB_COL(DB_COL_INT, gw_merchant_push_t, resync),
    DB_COL(DB_COL_INT, gw_merchant_push_t, attempts),
    DB_COL(DB_COL_TEXT, gw_merchant_push_t, time_zone),
};
static const db_cols_t CLAIMED_PUSH_COLS = DB_COLS(CLAIMED_PUSH_COL_TABLE);

status_t gw_store_merchant_pushes_claim(db_t *db, arena_t *a, int limit, int64_t lease_s,
                                        gw_merchant_push_t *out, int *n) {
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, limit);
    db_param_int(&p, lease_s);
    db_rows_t rows = {.item_size = sizeof *out, .limit = limit};
    status_t st = db_rows_cols(
        db, a,
        "WITH due AS (SELECT merchant_id, service FROM merchant_settings_pushes "
        " WHERE next_attempt_at <= now() AND lease_until <= now() "
        " ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) "
        "UPDATE merchant_settings_pushes x SET lease_until = now() + make_interval(secs => $2) "
        "FROM due JOIN merchant_settings s ON s.merchant_id = due.merchant_id "
        "WHERE (x.merchant_id, x.service) = (due.merchant_id, due.service) "
        "RETURNING x.merchant_id, x.service, s.version, x.resync, x.attempts, s.time_zone",
        &p, &CLAIMED_PUSH_COLS, &rows);
    *n = 0;
    if (status_is_ok(&st)) {
        memcpy(out, rows.items, rows.n * sizeof *out);
        *n = (int)rows.n;
    }
    return st;
}

status_t gw_store_merchant_push_done(db_t *db, const gw_merchant_push_t *x) {
    db_params_t p;
    db_params_key(&p, x->merchant_id, x->service);
    db_param_int(&p, x->version);
    db_param_int(&p, x->resync);
    /* In sync with the record: the row is parked (next_attempt_at 'infinity'); a newer target or
     * a resync asked for meanwhile makes it due again at once. */
    return db_exec(db,
                   "UPDATE merchant_settings_pushes SET "
                   " applied_version = greatest(applied_version, $3), "
                   " resync_pending = resync_pending AND resync <> $4, attempts = 0, "
                   " last_error = '', lease_until = '-infinity', applied_at = now(), "
                   " next_attempt_at = CASE WHEN greatest(applied_version, $3) >= target_version "
                   "  AND NOT (resync_pending AND resync <> $4) THEN 'infinity'::timestamptz "
                   "  ELSE now() END "
                   "WHERE merchant_id = $1 AND service = $2",
                   &p, NULL);
}

status_t gw_store_merchant_push_failed(db_t *db, const gw_merchant_push_t *x, const char *error,
                                       int64_t backoff_s) {
    db_params_t p;
    db_params_key(&p, x->merchant_id, x->service);
    db_param_int(&p, x->version);
    db_param_text(&p, error);
    db_param_int(&p, backoff_s);
    /* The backoff, unless a newer version is waiting. */
    return db_exec(db,
                   "UPDATE merchant_settings_pushes SET attempts = attempts + 1, "
                   " last_error = $4, lease_until = '-infinity', "
                   " next_attempt_at = CASE WHEN target_version > $3 THEN now() "
                   "  ELSE now() + make_interval(secs => $5) END "
                   "WHERE merchant_id = $1 AND service = $2",
                   &p, NULL);
}

status_t gw_store_merchant_push_resync(db_t *db, const char *merchant_id, const char *service,
                                       int64_t version) {
    db_params_t p;
    db_params_key(&p, merchant_id, service);
    db_param_int(&p, version);
    return db_exec(db,
                   "UPDATE merchant_settings_pushes SET resync = resync + 1, "
                   " resync_pending = true, next_attempt_at = now() "
                   "WHERE merchant_id = $1 AND service = $2 AND applied_version >= $3 "
                   " AND target_version <= $3 AND NOT resync_pending AND lease_until <= now()",
                   &p, NULL);
}

/* The RETURNING columns of gw_store_merchant_verify_claim. */
static const db_col_t RECORD_DUE_COL_TABLE[] = {
    DB_COL(DB_COL_TEXT, gw_merchant_record_t, merchant_id),
    DB_COL(DB_COL_TEXT, gw_merchant_record_t, time_zone),
    DB_COL(DB_COL_INT, gw_merchant_record_t, version),
};
static const db_cols_t RECORD_DUE_COLS = DB_COLS(RECORD_DUE_COL_TABLE);

status_t gw_store_merchant_verify_claim(db_t *db, arena_t *a, int64_t every_s, int limit,
                                        gw_merchant_record_t **out, size_t *n) {
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, every_s);
    db_param_int(&p, limit);
    db_rows_t rows = {.item_size = sizeof **out};
    status_t st =
        db_rows_cols(db, a,
                     "UPDATE merchant_settings SET verified_at = now() WHERE merchant_id IN ("
                     " SELECT merchant_id FROM merchant_settings "
                     " WHERE verified_at <= now() - make_interval(secs => $1) "
                     " ORDER BY verified_at LIMIT $2 FOR UPDATE SKIP LOCKED) "
                     "RETURNING merchant_id, time_zone, version",
                     &p, &RECORD_DUE_COLS, &rows);
    *out = rows.items;
    *n = rows.n;
    return st;
}
