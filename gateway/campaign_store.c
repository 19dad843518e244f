/* campaign_store.c -- campaigns and campaign deliveries in PostgreSQL. */
#include "campaign_store.h"

#include "pb.h"
#include "sql_time.h"

#include <stdio.h>
#include <string.h>

// clang-format off
#define CAMPAIGN_COLUMNS                                                                           \
    "config, merchant_id, " SQL_EPOCH_S("updated_at") ", " SQL_EPOCH_S_OR_0("last_run_at") ", "    \
    SQL_EPOCH_S("next_run_at")
// clang-format on
/* The stored config (column 0) is the campaign; the columns after it override its fields. */
static const db_col_t CAMPAIGN_COL_TABLE[] = {
    DB_FIELD(DB_COL_TEXT, "merchant_id"),
    DB_FIELD(DB_COL_INT, "updated_at"),
    DB_FIELD(DB_COL_INT, "last_run_at"),
    DB_FIELD(DB_COL_INT, "next_run_at"),
};
static const db_cols_t CAMPAIGN_COLS =
    DB_COLS_PACKED(CAMPAIGN_COL_TABLE, &loyalty__v1__campaign__descriptor);

/* Runs a query of CAMPAIGN_COLUMNS rows into an arena array. */
static status_t campaign_rows(db_t *db, arena_t *a, const char *sql, const db_params_t *p,
                              Loyalty__V1__Campaign ***out, size_t *n) {
    db_rows_t rows = {.item_size = sizeof **out};
    status_t st = db_rows_cols(db, a, sql, p, &CAMPAIGN_COLS, &rows);
    *out = rows.items;
    *n = rows.n;
    return st;
}

status_t campaign_store_put(db_t *db, arena_t *a, const char *merchant_id,
                            const Loyalty__V1__Campaign *c, Loyalty__V1__Campaign **out) {
    size_t len = 0;
    unsigned char *bytes = pb_pack_arena(a, &c->base, &len);
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_int(&p, c->kind);
    db_param_bool(&p, c->enabled);
    db_param_bytes(&p, bytes, len);
    Loyalty__V1__Campaign **rows = NULL;
    size_t n = 0;
    status_t st = campaign_rows(db, a,
                                "INSERT INTO campaigns (merchant_id, kind, enabled, config) "
                                "VALUES ($1, $2, $3, $4) ON CONFLICT (merchant_id, kind) DO UPDATE "
                                "SET enabled = EXCLUDED.enabled, config = EXCLUDED.config, "
                                " updated_at = now(), next_run_at = now() "
                                "RETURNING " CAMPAIGN_COLUMNS,
                                &p, &rows, &n);
    if (status_is_ok(&st)) {
        *out = rows[0];
    }
    return st;
}

status_t campaign_store_get(db_t *db, arena_t *a, const char *merchant_id,
                            Loyalty__V1__CampaignKind kind, Loyalty__V1__Campaign **out) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_int(&p, kind);
    Loyalty__V1__Campaign **rows = NULL;
    size_t n = 0;
    status_t st = campaign_rows(
        db, a, "SELECT " CAMPAIGN_COLUMNS " FROM campaigns WHERE merchant_id = $1 AND kind = $2",
        &p, &rows, &n);
    if (status_is_ok(&st) && n == 0) {
        return status_make(STATUS_NOT_FOUND, REASON_CAMPAIGN_NOT_FOUND, "campaign not configured");
    }
    if (status_is_ok(&st)) {
        *out = rows[0];
    }
    return st;
}

status_t campaign_store_list(db_t *db, arena_t *a, const char *merchant_id,
                             Loyalty__V1__Campaign ***out, size_t *n) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    return campaign_rows(
        db, a, "SELECT " CAMPAIGN_COLUMNS " FROM campaigns WHERE merchant_id = $1 ORDER BY kind",
        &p, out, n);
}

/* Moves the due campaigns' next run on and returns them (CAMPAIGN_COLUMNS but for last_run_at,
 * which the update has just set). */
// clang-format off
static const char TAKE_DUE_SQL[] =
    "UPDATE campaigns c SET last_run_at = now(), "
    " next_run_at = now() + make_interval(secs => $1) "
    "FROM (SELECT merchant_id, kind FROM campaigns "
    "      WHERE enabled AND next_run_at <= now() ORDER BY next_run_at "
    "      LIMIT $2 FOR UPDATE SKIP LOCKED) due "
    "WHERE c.merchant_id = due.merchant_id AND c.kind = due.kind "
    "RETURNING c.config, c.merchant_id, " SQL_EPOCH_S("c.updated_at") ", "
    " " SQL_EPOCH_S("c.last_run_at") ", " SQL_EPOCH_S("c.next_run_at");
// clang-format on

status_t campaign_store_take_due(db_t *db, arena_t *a, int64_t interval_s, int max,
                                 Loyalty__V1__Campaign ***out, size_t *n) {
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, interval_s);
    db_param_int(&p, max);
    return campaign_rows(db, a, TAKE_DUE_SQL, &p, out, n);
}

static void delivery_params(db_params_t *p, const char *merchant_id, Loyalty__V1__CampaignKind kind,
                            const char *period, const char *member_id) {
    db_params_init(p);
    db_param_text(p, merchant_id);
    db_param_int(p, kind);
    db_param_text(p, period);
    db_param_text(p, member_id);
}

status_t campaign_store_peek(db_t *db, const char *merchant_id, Loyalty__V1__CampaignKind kind,
                             const char *period, const char *member_id, campaign_claim_t *out) {
    db_params_t p;
    delivery_params(&p, merchant_id, kind, period, member_id);
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "SELECT state = 'DONE', claimed_until > now() FROM campaign_deliveries "
                          "WHERE merchant_id = $1 AND kind = $2 AND period = $3 AND member_id = $4",
                          &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    *out = CAMPAIGN_CLAIMED;
    if (PQntuples(r) == 1) {
        *out = db_get_bool(r, 0, 0)   ? CAMPAIGN_ALREADY_DONE
               : db_get_bool(r, 0, 1) ? CAMPAIGN_IN_PROGRESS
                                      : CAMPAIGN_CLAIMED;
    }
    PQclear(r);
    return st;
}

status_t campaign_store_claim(db_t *db, const char *merchant_id, Loyalty__V1__CampaignKind kind,
                              const char *period, const char *member_id, int64_t lease_s,
                              campaign_claim_t *out) {
    db_params_t p;
    delivery_params(&p, merchant_id, kind, period, member_id);
    db_param_int(&p, lease_s);
    bool claimed = false;
    /* New, or taken over when its holder's lease ran out; a live or DONE row is left alone. */
    status_t st =
        db_row_find(db, NULL,
                    "INSERT INTO campaign_deliveries (merchant_id, kind, period, member_id, "
                    " state, claimed_until) "
                    "VALUES ($1, $2, $3, $4, 'CLAIMED', now() + make_interval(secs => $5)) "
                    "ON CONFLICT (merchant_id, kind, period, member_id) DO UPDATE "
                    " SET claimed_until = EXCLUDED.claimed_until "
                    " WHERE campaign_deliveries.state = 'CLAIMED' "
                    "   AND campaign_deliveries.claimed_until < now() "
                    "RETURNING 1",
                    &p, NULL, NULL, &claimed);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (claimed) {
        *out = CAMPAIGN_CLAIMED;
        return st;
    }
    st = campaign_store_peek(db, merchant_id, kind, period, member_id, out);
    if (status_is_ok(&st) && *out == CAMPAIGN_CLAIMED) {
        *out = CAMPAIGN_IN_PROGRESS; /* its lease ended between the two statements */
    }
    return st;
}

status_t campaign_store_finish(db_t *db, const char *merchant_id, Loyalty__V1__CampaignKind kind,
                               const char *period, const char *member_id, int64_t points,
                               const char *coupon_id, const char *message_event_id,
                               const char *skip_reason) {
    db_params_t p;
    delivery_params(&p, merchant_id, kind, period, member_id);
    db_param_int(&p, points);
    DB_PARAM_TEXTS(&p, coupon_id, message_event_id, skip_reason);
    bool done = false;
    status_t st =
        db_row_find(db, NULL,
                    "UPDATE campaign_deliveries SET state = 'DONE', done_at = now(), "
                    " points = $5, coupon_id = $6, message_event_id = $7, skip_reason = $8 "
                    "WHERE merchant_id = $1 AND kind = $2 AND period = $3 AND member_id = $4 "
                    "  AND state = 'CLAIMED' RETURNING 1",
                    &p, NULL, NULL, &done);
    if (!status_is_ok(&st)) {
        return st;
    }
    return done ? st
                : status_make(STATUS_NOT_FOUND, REASON_DELIVERY_NOT_CLAIMED,
                              "the delivery was finished by another runner");
}

status_t campaign_store_local_date(db_t *db, int64_t at, const char *tz, char out[11]) {
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, at);
    db_param_text(&p, tz);
    /* The name is looked up first: PostgreSQL may evaluate AT TIME ZONE while planning, so an
     * unknown zone in the same statement fails as an error of its own, not as "no row". */
    bool known = false;
    status_t st = db_time_zone_known(db, tz, &known);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (!known) {
        return status_invalid_field("campaign.time_zone", "unknown time zone");
    }
    PGresult *r = NULL;
    st = db_exec(db, "SELECT to_char(to_timestamp($1) AT TIME ZONE $2, 'YYYY-MM-DD')", &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    snprintf(out, 11, "%s", db_get_str(r, 0, 0));
    PQclear(r);
    return st;
}
