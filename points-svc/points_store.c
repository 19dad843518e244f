/* points_store.c -- SQL of the points schema (see points_store.h). Lists of lots and amounts
 * travel as text[]/bigint[] parameters unnested in one statement, so that a change of many
 * lots is one round trip. */
#include "points_store_internal.h"

#include "pb.h"
#include "pgarray.h"
#include "sql_time.h"

#include <stdlib.h>
#include <string.h>

void points_store_share_params(arena_t *a, db_params_t *p, const points_share_t *s, int n) {
    char **ids = arena_alloc(a, ((size_t)n + 1) * sizeof *ids);
    int64_t *pts = arena_alloc(a, ((size_t)n + 1) * sizeof *pts);
    for (int i = 0; i < n; i++) {
        ids[i] = (char *)s[i].lot_id;
        pts[i] = s[i].points;
    }
    db_param_text_array(p, a, ids, (size_t)n);
    db_param_int_array(p, a, pts, n);
}

/* The refusal of a deferred write that did not touch the rows the ledger says it must. */
static status_t ledger_mismatch(const char *what) {
    return status_make(STATUS_INTERNAL, REASON_LEDGER_MISMATCH,
                       "%s did not touch the expected rows", what);
}

/* ---- settings ---- */

#define SETTINGS_COLUMNS                                                                           \
    "time_zone, earn_unit_cents, earn_points_per_unit, event_points::text, expiry_policy, "        \
    "expiry_days, expiry_months, pending_days, redeem_points, redeem_value_cents, "                \
    "redeem_min_points, redeem_max_order_share_bps, growth_per_point_bps, growth_per_unit, "       \
    "version, " SQL_EPOCH_S_FLOOR("updated_at")

/* SETTINGS_COLUMNS; the event rules (3: points per event kind, in kind order) are unfolded by
 * settings_from_row. */
static const db_col_t SETTINGS_COL_TABLE[] = {
    DB_FIELD(DB_COL_TEXT, "time_zone"),
    DB_FIELD(DB_COL_INT, "earn_unit_cents"),
    DB_FIELD(DB_COL_INT, "earn_points_per_unit"),
    DB_COL_SKIPPED,
    DB_FIELD(DB_COL_INT, "expiry_policy"),
    DB_FIELD(DB_COL_INT, "expiry_days"),
    DB_FIELD(DB_COL_INT, "expiry_months"),
    DB_FIELD(DB_COL_INT, "pending_days"),
    DB_FIELD(DB_COL_INT, "redeem_points"),
    DB_FIELD(DB_COL_INT, "redeem_value_cents"),
    DB_FIELD(DB_COL_INT, "redeem_min_points"),
    DB_FIELD(DB_COL_INT, "redeem_max_order_share_bps"),
    DB_FIELD(DB_COL_INT, "growth_per_point_bps"),
    DB_FIELD(DB_COL_INT, "growth_per_unit"),
    DB_FIELD(DB_COL_INT, "version"),
    DB_FIELD(DB_COL_INT, "updated_at"),
};
static const db_cols_t SETTINGS_COLS =
    DB_COLS_MESSAGE(SETTINGS_COL_TABLE, &loyalty__v1__points_settings__descriptor);

static status_t settings_from_row(arena_t *a, const PGresult *r,
                                  Loyalty__V1__PointsSettings **out) {
    status_t st = db_cols_read(a, &SETTINGS_COLS, r, 0, out);
    if (!status_is_ok(&st)) {
        return st;
    }
    Loyalty__V1__PointsSettings *s = *out;
    char **items = NULL;
    size_t n = 0;
    if (!pgarray_decode(a, db_get_str(r, 0, 3), &items, &n)) {
        n = 0;
    }
    s->event_rules = arena_alloc(a, (n + 1) * sizeof *s->event_rules);
    for (size_t i = 0; i < n && i < POINTS_EVENT_KIND_MAX; i++) {
        int64_t points = strtoll(items[i], NULL, 10);
        if (points <= 0) {
            continue;
        }
        Loyalty__V1__PointsEventRule *rule = pb_new(a, &loyalty__v1__points_event_rule__descriptor);
        rule->kind = (Loyalty__V1__PointsEventKind)(i + 1);
        rule->points = points;
        s->event_rules[s->n_event_rules++] = rule;
    }
    return status_ok();
}

status_t points_store_get_settings(db_t *db, arena_t *a, const char *merchant,
                                   Loyalty__V1__PointsSettings **out) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant);
    PGresult *r = NULL;
    status_t st =
        db_exec(db, "SELECT " SETTINGS_COLUMNS " FROM settings WHERE merchant_id = $1", &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (PQntuples(r) == 1) {
        st = settings_from_row(a, r, out);
    } else {
        *out = pb_new(a, &loyalty__v1__points_settings__descriptor);
        points_rules_default_settings(*out);
    }
    PQclear(r);
    return st;
}

status_t points_store_put_settings(db_t *db, arena_t *a, const char *merchant,
                                   const Loyalty__V1__PointsSettings *s, bool has_expected,
                                   int64_t expected, Loyalty__V1__PointsSettings **out) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant);
    PGresult *r = NULL;
    status_t st =
        db_exec(db, "SELECT version FROM settings WHERE merchant_id = $1 FOR UPDATE", &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    int64_t current = PQntuples(r) == 1 ? db_get_int(r, 0, 0) : 0;
    PQclear(r);
    if (has_expected && current != expected) {
        return status_make(STATUS_ABORTED, REASON_SETTINGS_VERSION_MISMATCH,
                           "settings are at version %lld, not %lld; re-read and retry",
                           (long long)current, (long long)expected);
    }
    int64_t events[POINTS_EVENT_KIND_MAX] = {0};
    for (size_t i = 0; i < s->n_event_rules; i++) {
        events[s->event_rules[i]->kind - 1] = s->event_rules[i]->points;
    }
    db_param_text(&p, s->time_zone);
    db_param_int(&p, s->earn_unit_cents);
    db_param_int(&p, s->earn_points_per_unit);
    db_param_int_array(&p, a, events, POINTS_EVENT_KIND_MAX);
    db_param_int(&p, s->expiry_policy);
    db_param_int(&p, s->expiry_days);
    db_param_int(&p, s->expiry_months);
    db_param_int(&p, s->pending_days);
    db_param_int(&p, s->redeem_points);
    db_param_int(&p, s->redeem_value_cents);
    db_param_int(&p, s->redeem_min_points);
    db_param_int(&p, s->redeem_max_order_share_bps);
    db_param_int(&p, s->growth_per_point_bps);
    db_param_int(&p, s->growth_per_unit);
    db_param_int(&p, current);
    /* The WHERE guards against a concurrent first insert between our SELECT and this upsert. */
    st = db_exec_row(
        db,
        "INSERT INTO settings (merchant_id, time_zone, earn_unit_cents, "
        " earn_points_per_unit, event_points, expiry_policy, expiry_days, expiry_months, "
        " pending_days, redeem_points, redeem_value_cents, redeem_min_points, "
        " redeem_max_order_share_bps, growth_per_point_bps, growth_per_unit) "
        "VALUES ($1, $2, $3, $4, $5::bigint[], $6, $7, $8, $9, $10, $11, $12, $13, $14, "
        " $15) "
        "ON CONFLICT (merchant_id) DO UPDATE SET time_zone = EXCLUDED.time_zone, "
        " earn_unit_cents = EXCLUDED.earn_unit_cents, "
        " earn_points_per_unit = EXCLUDED.earn_points_per_unit, "
        " event_points = EXCLUDED.event_points, expiry_policy = EXCLUDED.expiry_policy, "
        " expiry_days = EXCLUDED.expiry_days, expiry_months = EXCLUDED.expiry_months, "
        " pending_days = EXCLUDED.pending_days, redeem_points = EXCLUDED.redeem_points, "
        " redeem_value_cents = EXCLUDED.redeem_value_cents, "
        " redeem_min_points = EXCLUDED.redeem_min_points, "
        " redeem_max_order_share_bps = EXCLUDED.redeem_max_order_share_bps, "
        " growth_per_point_bps = EXCLUDED.growth_per_point_bps, "
        " growth_per_unit = EXCLUDED.growth_per_unit, version = settings.version + 1, "
        " updated_at = now() "
        "WHERE settings.version = $16 "
        "RETURNING " SETTINGS_COLUMNS,
        &p, &r, STATUS_ABORTED, REASON_CONCURRENCY_CONFLICT,
        "settings changed concurrently, safe to retry");
    if (!status_is_ok(&st)) {
        return st;
    }
    st = settings_from_row(a, r, out);
    PQclear(r);
    return st;
}

status_t points_store_time_zone_exists(db_t *db, const char *tz, bool *exists) {
    return db_time_zone_known(db, tz, exists);
}

status_t points_store_local_clock(db_t *db, const char *tz, int64_t at_s, int64_t add_days,
                                  points_local_clock_t *out) {
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, at_s);
    db_param_text(&p, tz);
    db_param_int(&p, add_days);
    PGresult *r = NULL;
    status_t st =
        db_exec(db,
                "SELECT ((to_timestamp($1::bigint) AT TIME ZONE $2)::date - date '1970-01-01'), "
                " " SQL_EPOCH_S_FLOOR(
                    "((to_timestamp($1::bigint) AT TIME ZONE $2) + make_interval(days => $3::int)) "
                    "AT TIME ZONE $2") ", "
                                       " (((to_timestamp($1::bigint) AT TIME ZONE $2) + "
                                       "make_interval(days => $3::int))::date "
                                       "  - date '1970-01-01')",
                &p, &r);
    if (status_is_ok(&st)) {
        out->day = db_get_int(r, 0, 0);
        out->later_at_s = db_get_int(r, 0, 1);
        out->later_day = db_get_int(r, 0, 2);
        PQclear(r);
    }
    return st;
}

status_t points_store_local_day(db_t *db, const char *tz, int64_t at_s, points_local_day_t *out) {
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, at_s);
    db_param_text(&p, tz);
    PGresult *r = NULL;
    status_t st = db_exec(
        db,
        "SELECT d - date '1970-01-01', " SQL_EPOCH_S_FLOOR(
            "d::timestamp AT TIME ZONE "
            "$2") ", " SQL_EPOCH_S_FLOOR("(d + 1)::timestamp AT TIME ZONE $2") " "
                                                                               "FROM (SELECT "
                                                                               "(to_timestamp($1::"
                                                                               "bigint) "
                                                                               "AT TIME ZONE "
                                                                               "$2)::date AS d) x",
        &p, &r);
    if (status_is_ok(&st)) {
        out->day = db_get_int(r, 0, 0);
        out->start_at_s = db_get_int(r, 0, 1);
        out->end_at_s = db_get_int(r, 0, 2);
        PQclear(r);
    }
    return st;
}

status_t points_store_day_start(db_t *db, const char *tz, int64_t day, int64_t *at_s) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, tz);
    db_param_int(&p, day);
    PGresult *r = NULL;
    status_t st = db_exec(
        db, "SELECT " SQL_EPOCH_S_FLOOR("(date '1970-01-01' + $2::int)::timestamp AT TIME ZONE $1"),
        &p, &r);
    if (status_is_ok(&st)) {
        *at_s = db_get_int(r, 0, 0);
        PQclear(r);
    }
    return st;
}

/* ---- campaigns ---- */

#define CAMPAIGN_COLUMNS                                                                           \
    "id, name, multiplier_bps, to_char(start_date, 'YYYY-MM-DD'), "                                \
    "to_char(end_date, 'YYYY-MM-DD'), tier_ids::text, active, " SQL_EPOCH_S_FLOOR("created_at")

static const db_col_t CAMPAIGN_COL_TABLE[] = {
    DB_FIELD(DB_COL_TEXT, "id"),
    DB_FIELD(DB_COL_TEXT, "name"),
    DB_FIELD(DB_COL_INT, "multiplier_bps"),
    DB_FIELD(DB_COL_TEXT, "start_date"),
    DB_FIELD(DB_COL_TEXT, "end_date"),
    DB_FIELD(DB_COL_TEXT_ARRAY, "tier_ids"),
    DB_FIELD(DB_COL_BOOL, "active"),
    DB_FIELD(DB_COL_INT, "created_at"),
};
static const db_cols_t CAMPAIGN_COLS =
    DB_COLS_MESSAGE(CAMPAIGN_COL_TABLE, &loyalty__v1__points_campaign__descriptor);

static status_t campaign_one(db_t *db, arena_t *a, const char *sql, const db_params_t *p,
                             Loyalty__V1__PointsCampaign **out) {
    return db_row_get_cols(db, a, sql, p, &CAMPAIGN_COLS, out, STATUS_NOT_FOUND,
                           REASON_CAMPAIGN_NOT_FOUND, "campaign not found");
}

status_t points_store_insert_campaign(db_t *db, arena_t *a, const char *merchant, const char *id,
                                      const Loyalty__V1__PointsCampaign *c,
                                      Loyalty__V1__PointsCampaign **out) {
    db_params_t p;
    db_params_key(&p, merchant, id);
    db_param_text(&p, c->name);
    db_param_int(&p, c->multiplier_bps);
    db_param_text(&p, c->start_date);
    db_param_text(&p, c->end_date);
    db_param_text_array(&p, a, c->tier_ids, c->n_tier_ids);
    return campaign_one(db, a,
                        "INSERT INTO campaigns (merchant_id, id, name, multiplier_bps, start_date, "
                        " end_date, tier_ids) VALUES ($1, $2, $3, $4, $5::date, $6::date, "
                        " $7::text[]) RETURNING " CAMPAIGN_COLUMNS,
                        &p, out);
}

status_t points_store_end_campaign(db_t *db, arena_t *a, const char *merchant, const char *id,
                                   Loyalty__V1__PointsCampaign **out) {
    db_params_t p;
    db_params_key(&p, merchant, id);
    return campaign_one(db, a,
                        "UPDATE campaigns SET active = false WHERE merchant_id = $1 AND id = $2 "
                        "RETURNING " CAMPAIGN_COLUMNS,
                        &p, out);
}

status_t points_store_list_campaigns(db_t *db, arena_t *a, const char *merchant,
                                     const char *after_id, int32_t limit, bool include_inactive,
                                     Loyalty__V1__PointsCampaign ***out, size_t *n) {
    db_params_t p;
    db_params_key(&p, merchant, after_id);
    db_param_bool(&p, include_inactive);
    db_param_int(&p, limit);
    db_rows_t rows = {.item_size = sizeof **out};
    status_t st = db_rows_cols(db, a,
                               "SELECT " CAMPAIGN_COLUMNS " FROM campaigns WHERE merchant_id = $1 "
                               " AND ($2 = '' OR id < $2) AND ($3 OR active) "
                               "ORDER BY id DESC LIMIT $4",
                               &p, &CAMPAIGN_COLS, &rows);
    *out = rows.items;
    *n = rows.n;
    return st;
}

static const db_col_t CAMPAIGN_WINDOW_COL_TABLE[] = {
    DB_COL(DB_COL_TEXT, points_campaign_window_t, id),
    DB_COL(DB_COL_INT, points_campaign_window_t, multiplier_bps),
    DB_COL(DB_COL_INT, points_campaign_window_t, start_day),
    DB_COL(DB_COL_INT, points_campaign_window_t, end_day),
    DB_COL_ARRAY(DB_COL_TEXT_ARRAY, points_campaign_window_t, tier_ids, n_tier_ids),
};
static const db_cols_t CAMPAIGN_WINDOW_COLS = DB_COLS(CAMPAIGN_WINDOW_COL_TABLE);

/* A campaign on the day asked (active: the statement keeps only those), by *ctx's table. */
static status_t campaign_window_row(void *ctx, arena_t *a, const PGresult *r, int row, void *item) {
    points_campaign_window_t *c = item;
    c->active = true;
    return db_cols_read(a, ctx, r, row, c);
}

status_t points_store_campaigns_on(db_t *db, arena_t *a, const char *merchant, int64_t day,
                                   points_campaign_window_t **out, size_t *n) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant);
    db_param_int(&p, day);
    db_rows_t rows = {.item_size = sizeof **out};
    status_t st =
        db_rows(db, a,
                "SELECT id, multiplier_bps, start_date - " SQL_DAY_ZERO ", "
                " end_date - " SQL_DAY_ZERO ", tier_ids::text FROM campaigns "
                "WHERE merchant_id = $1 AND active "
                " AND start_date <= " SQL_DATE_OF_DAY("$2") " "
                                                            " AND end_date >= " SQL_DATE_OF_DAY(
                                                                "$2") " "
                                                                      "ORDER BY id LIMIT 1000",
                &p, campaign_window_row, (void *)&CAMPAIGN_WINDOW_COLS, &rows);
    *out = rows.items;
    *n = rows.n;
    return st;
}

/* ---- accounts ---- */

// clang-format off
#define ACCOUNT_COLUMNS                                                                            \
    "lots_points, held, pending, debt, lifetime_earned, growth, next_due_at IS NOT NULL, "         \
    "coalesce(" SQL_EPOCH_S_FLOOR("next_due_at") ", 0), last_check_in IS NOT NULL, "               \
    "coalesce(last_check_in - " SQL_DAY_ZERO ", 0), check_in_streak, version"
// clang-format on

static const db_col_t ACCOUNT_COL_TABLE[] = {
    DB_COL(DB_COL_INT, points_account_t, lots_points),
    DB_COL(DB_COL_INT, points_account_t, held),
    DB_COL(DB_COL_INT, points_account_t, pending),
    DB_COL(DB_COL_INT, points_account_t, debt),
    DB_COL(DB_COL_INT, points_account_t, lifetime_earned),
    DB_COL(DB_COL_INT, points_account_t, growth),
    DB_COL(DB_COL_BOOL, points_account_t, has_due),
    DB_COL(DB_COL_INT, points_account_t, next_due_at),
    DB_COL(DB_COL_BOOL, points_account_t, has_check_in),
    DB_COL(DB_COL_INT, points_account_t, last_check_in_day),
    DB_COL(DB_COL_INT, points_account_t, check_in_streak),
    DB_COL(DB_COL_INT, points_account_t, version),
};

/* Deferred account saves (points_store_account_save), one statement for a transaction's
 * members. The "= ANY (array)" conditions give the planner the accounts' key: joined to
 * unnest() alone (which it expects to yield 100 rows), the generic plan hashes a scan of every
 * account. Every statement on accounts flushes them first, so a member has at most one row
 * waiting; the count check refuses anything else (UPDATE ... FROM would apply one of two rows
 * for a member and drop the other). next_due_at is computed when the rows are written, from the
 * holds and lots as the transaction left them by then. */
// clang-format off
static const db_rowset_def_t ACCOUNT_SAVES = {
    .sql = "WITH v AS (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], "
           "  $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::int[], $10::int[], "
           "  $11::bigint[]) AS v(merchant_id, member_id, lots_points, held, pending, debt, "
           "  lifetime_earned, growth, check_in_day, check_in_streak, now_s)), "
           "u AS (UPDATE accounts a SET lots_points = v.lots_points, held = v.held, "
           "  pending = v.pending, debt = v.debt, lifetime_earned = v.lifetime_earned, "
           "  growth = v.growth, last_check_in = " SQL_DATE_OF_DAY("v.check_in_day") ", "
           "  check_in_streak = v.check_in_streak, version = a.version + 1, "
           "  updated_at = to_timestamp(v.now_s), "
           "  next_due_at = least("
           "   (SELECT min(expires_at) FROM holds h WHERE h.merchant_id = a.merchant_id "
           "     AND h.member_id = a.member_id AND h.status = 1), "
           "   (SELECT min(available_at) FROM lots l WHERE l.merchant_id = a.merchant_id "
           "     AND l.member_id = a.member_id AND l.status = 1), "
           "   (SELECT min(expires_at) FROM lots l WHERE l.merchant_id = a.merchant_id "
           "     AND l.member_id = a.member_id AND l.status = 2 AND l.remaining > 0)) "
           " FROM v WHERE a.merchant_id = ANY ($1::text[]) AND a.member_id = ANY ($2::text[]) "
           "  AND a.merchant_id = v.merchant_id AND a.member_id = v.member_id RETURNING 1) "
           "SELECT refuse('LEDGER_MISMATCH') WHERE (SELECT count(*) FROM u) <> (SELECT count(*) FROM v)",
    .n_cols = 11,
};
// clang-format on

/* The account in row `row` of r, its columns from `c0`. Numbers only: no arena is needed. */
static status_t account_from_row_at(const PGresult *r, int row, int c0, points_account_t *a) {
    db_cols_t cols = DB_COLS(ACCOUNT_COL_TABLE);
    cols.first = c0;
    return db_cols_read(NULL, &cols, r, row, a);
}

status_t points_store_account_get(db_t *db, const char *merchant, const char *member, bool lock,
                                  bool create, points_account_t *out, bool *found) {
    memset(out, 0, sizeof *out);
    *found = false;
    status_t flushed = db_rowset_flush(db, &ACCOUNT_SAVES); /* an account saved before */
    if (!status_is_ok(&flushed)) {
        return flushed;
    }
    db_params_t p;
    db_params_key(&p, merchant, member);
    const char *sql = lock ? "SELECT " ACCOUNT_COLUMNS " FROM accounts WHERE merchant_id = $1 "
                             " AND member_id = $2 FOR UPDATE"
                           : "SELECT " ACCOUNT_COLUMNS " FROM accounts WHERE merchant_id = $1 "
                             " AND member_id = $2";
    /* The account exists on every call but a member's first, so read first and create only
     * when missing: one statement on the common path. */
    for (int attempt = 0; attempt < 2; attempt++) {
        PGresult *r = NULL;
        status_t st = db_exec(db, sql, &p, &r);
        if (!status_is_ok(&st)) {
            return st;
        }
        if (PQntuples(r) == 1) {
            st = account_from_row_at(r, 0, 0, out);
            *found = status_is_ok(&st);
        }
        PQclear(r);
        if (*found || !create || attempt == 1 || !status_is_ok(&st)) {
            return st;
        }
        /* A concurrent first call may insert it too: DO NOTHING, then read what is there. */
        st = db_exec(db,
                     "INSERT INTO accounts (merchant_id, member_id) VALUES ($1, $2) "
                     "ON CONFLICT DO NOTHING",
                     &p, NULL);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    return status_ok();
}

// clang-format off
#define ACCOUNT_SAVE_SQL                                                                           \
    "UPDATE accounts SET lots_points = $3, held = $4, pending = $5, debt = $6, "                   \
    " lifetime_earned = $7, growth = $8, last_check_in = " SQL_DATE_OF_DAY("$9") ", "              \
    " check_in_streak = $10, version = version + 1, updated_at = to_timestamp($11::bigint), "      \
    " next_due_at = least("                                                                        \
    "  (SELECT min(expires_at) FROM holds WHERE merchant_id = $1 AND member_id = $2 "              \
    "    AND status = 1), "                                                                        \
    "  (SELECT min(available_at) FROM lots WHERE merchant_id = $1 AND member_id = $2 "             \
    "    AND status = 1), "                                                                        \
    "  (SELECT min(expires_at) FROM lots WHERE merchant_id = $1 AND member_id = $2 "               \
    "    AND status = 2 AND remaining > 0)) "                                                      \
    "WHERE merchant_id = $1 AND member_id = $2 "                                                   \
    "RETURNING next_due_at IS NOT NULL, "                                                          \
    "coalesce(" SQL_EPOCH_S_FLOOR("next_due_at") ", 0), version"
// clang-format on

status_t points_store_account_save(db_t *db, const char *merchant, const char *member, int64_t now,
                                   bool deferred, points_account_t *acct) {
    status_t st = deferred ? status_ok() : db_rowset_flush(db, &ACCOUNT_SAVES);
    if (!status_is_ok(&st)) {
        return st;
    }
    db_params_t p;
    db_params_key(&p, merchant, member);
    db_param_int(&p, acct->lots_points);
    db_param_int(&p, acct->held);
    db_param_int(&p, acct->pending);
    db_param_int(&p, acct->debt);
    db_param_int(&p, acct->lifetime_earned);
    db_param_int(&p, acct->growth);
    if (acct->has_check_in) {
        db_param_int(&p, acct->last_check_in_day);
    } else {
        db_param_null(&p);
    }
    db_param_int(&p, acct->check_in_streak);
    db_param_int(&p, now);
    if (deferred) {
        /* The row is locked since the ledger opened: it cannot vanish, no count to check (so
         * the write may go in the COMMIT's round trip), and nobody else can move its version,
         * which the statement raises by one. */
        acct->version += 1;
        return db_rowset_append(db, &ACCOUNT_SAVES, &p);
    }
    PGresult *r = NULL;
    st = db_exec_row(db, ACCOUNT_SAVE_SQL, &p, &r, STATUS_INTERNAL, REASON_LEDGER_MISMATCH,
                     "account row vanished");
    if (!status_is_ok(&st)) {
        return st;
    }
    acct->has_due = db_get_bool(r, 0, 0);
    acct->next_due_at = db_get_int(r, 0, 1);
    acct->version = db_get_int(r, 0, 2);
    PQclear(r);
    return status_ok();
}

status_t points_store_due_accounts(db_t *db, arena_t *a, const char *merchant, int64_t now,
                                   int limit, char ***merchants, char ***members, int *n) {
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, now);
    db_param_int(&p, limit);
    PGresult *r = NULL;
    status_t st;
    if (merchant != NULL) {
        db_param_text(&p, merchant);
        st = db_exec(db,
                     "SELECT merchant_id, member_id FROM accounts WHERE merchant_id = $3 "
                     " AND next_due_at <= to_timestamp($1::bigint) ORDER BY next_due_at "
                     "LIMIT $2 FOR UPDATE SKIP LOCKED",
                     &p, &r);
    } else {
        st = db_exec(db,
                     "SELECT merchant_id, member_id FROM accounts "
                     "WHERE next_due_at <= to_timestamp($1::bigint) ORDER BY next_due_at "
                     "LIMIT $2 FOR UPDATE SKIP LOCKED",
                     &p, &r);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    int rows = PQntuples(r);
    *merchants = arena_alloc(a, ((size_t)rows + 1) * sizeof **merchants);
    *members = arena_alloc(a, ((size_t)rows + 1) * sizeof **members);
    for (int i = 0; i < rows; i++) {
        (*merchants)[i] = db_dup_str(a, r, i, 0);
        (*members)[i] = db_dup_str(a, r, i, 1);
    }
    *n = rows;
    PQclear(r);
    return status_ok();
}

/* ---- lots ---- */

/* An earn's claim refused by its statement: refuse('ALREADY_EARNED') answers
 * FAILED_PRECONDITION, and a race lost at lots_earn_claim a bare unique violation; both are
 * ALREADY_EXISTS ALREADY_EARNED to callers. */
static status_t claim_status(db_t *db, status_t st) {
    bool earned =
        (st.code == STATUS_FAILED_PRECONDITION && strcmp(st.reason, "ALREADY_EARNED") == 0) ||
        (st.code == STATUS_ALREADY_EXISTS &&
         strcmp(db_last_constraint(db), "lots_earn_claim") == 0);
    if (earned) {
        return status_make(STATUS_ALREADY_EXISTS, REASON_ALREADY_EARNED,
                           "points were already earned for this source and reference");
    }
    return st;
}

// clang-format off
#define LOT_COLUMNS                                                                                \
    "id, member_id, source, reference, points, remaining, status, "                                \
    SQL_EPOCH_S_FLOOR("earned_at") ", " SQL_EPOCH_S_FLOOR("available_at") ", "                     \
    DAY_TEXT("expiry_date") ", coalesce(" SQL_EPOCH_S_FLOOR("expires_at") ", 0)"
// clang-format on

static const db_col_t LOT_COL_TABLE[] = {
    DB_FIELD(DB_COL_TEXT, "id"),          DB_FIELD(DB_COL_TEXT, "member_id"),
    DB_FIELD(DB_COL_INT, "source"),       DB_FIELD(DB_COL_TEXT, "reference"),
    DB_FIELD(DB_COL_INT, "points"),       DB_FIELD(DB_COL_INT, "remaining"),
    DB_FIELD(DB_COL_INT, "status"),       DB_FIELD(DB_COL_INT, "earned_at"),
    DB_FIELD(DB_COL_INT, "available_at"), DB_FIELD(DB_COL_TEXT, "expiry_date"),
    DB_FIELD(DB_COL_INT, "expires_at"),
};
static const db_cols_t LOT_COLS =
    DB_COLS_MESSAGE(LOT_COL_TABLE, &loyalty__v1__points_lot__descriptor);

status_t points_store_insert_lot(db_t *db, arena_t *a, const char *merchant,
                                 const points_new_lot_t *lot, Loyalty__V1__PointsLot **out) {
    db_params_t p;
    db_params_key(&p, merchant, lot->id);
    db_param_text(&p, lot->member_id);
    db_param_int(&p, lot->source);
    db_param_text(&p, lot->reference);
    db_param_int(&p, lot->points);
    db_param_int(&p, lot->pending ? LOYALTY__V1__POINTS_LOT_STATUS__POINTS_LOT_STATUS_PENDING
                                  : LOYALTY__V1__POINTS_LOT_STATUS__POINTS_LOT_STATUS_ACTIVE);
    db_param_int(&p, lot->earned_at);
    db_param_int(&p, lot->available_at);
    if (lot->has_expiry) {
        db_param_int(&p, lot->expiry_day);
    } else {
        db_param_null(&p);
    }
    db_param_text(&p, lot->time_zone);
    PGresult *r = NULL;
    status_t st;
    /* A lot is valid through its expiry day and expires at the next local midnight. */
    if (!lot->claim) {
        st = db_exec(db,
                     "INSERT INTO lots (merchant_id, id, member_id, source, reference, points, "
                     " remaining, status, earned_at, available_at, expiry_date, expires_at) "
                     "VALUES ($1, $2, $3, $4, $5, $6, $6, $7, to_timestamp($8::bigint), "
                     " to_timestamp($9::bigint), date '1970-01-01' + $10::int, "
                     " (date '1970-01-01' + ($10::int + 1))::timestamp AT TIME ZONE $11) "
                     "RETURNING " LOT_COLUMNS,
                     &p, &r);
    } else {
        /* The earn's claim, checked in the insert itself: taken by a lot or by a claim without
         * a lot (earn_refs), or an order reference another member redeemed with. Two earns
         * racing for one claim meet at lots_earn_claim. */
        db_param_int(&p, lot->claim_growth);
        st = db_exec(
            db,
            "WITH c AS (SELECT CASE "
            " WHEN EXISTS (SELECT FROM lots WHERE merchant_id = $1 AND source = $4 "
            "  AND reference = $5 AND earn_growth IS NOT NULL) "
            "  OR EXISTS (SELECT FROM earn_refs WHERE merchant_id = $1 AND source = $4 "
            "  AND reference = $5) THEN refuse('ALREADY_EARNED') "
            " WHEN $4 = 1 AND (EXISTS (SELECT FROM holds WHERE merchant_id = $1 "
            "  AND reference = $5 AND status = 2 AND member_id <> $3) "
            "  OR EXISTS (SELECT FROM orders WHERE merchant_id = $1 AND reference = $5 "
            "  AND member_id <> $3)) THEN refuse('REFERENCE_MEMBER_MISMATCH') ELSE 0 END AS ok) "
            "INSERT INTO lots (merchant_id, id, member_id, source, reference, points, "
            " remaining, status, earned_at, available_at, expiry_date, expires_at, earn_growth) "
            "SELECT $1, $2, $3, $4, $5, $6, $6, $7, to_timestamp($8::bigint), "
            " to_timestamp($9::bigint), date '1970-01-01' + $10::int, "
            " (date '1970-01-01' + ($10::int + 1))::timestamp AT TIME ZONE $11, $12 FROM c "
            "RETURNING " LOT_COLUMNS,
            &p, &r);
        st = claim_status(db, st);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    st = db_cols_read(a, &LOT_COLS, r, 0, out);
    PQclear(r);
    return st;
}

/* The lots of several credits in one statement, with the claims of points_store_insert_lot
 * checked row by row (the first refusal fails the statement); a claim taken twice in the rows
 * themselves meets at lots_earn_claim. The checks are scalar subqueries, not EXISTS: the planner
 * may run an EXISTS over unnest()'s rows as one hashed scan of the whole table. */
// clang-format off
static const char SQL_INSERT_LOTS[] =
    "WITH v AS (SELECT * FROM unnest($2::text[], $3::text[], $4::smallint[], $5::text[], "
    "  $6::bigint[], $7::smallint[], $8::bigint[], $9::bigint[], $10::int[], $11::text[], "
    "  $12::bigint[]) WITH ORDINALITY AS v(id, member_id, source, reference, points, status, "
    "  earned_at, available_at, expiry_day, time_zone, claim_growth, ord)), "
    "c AS (SELECT v.*, CASE WHEN v.claim_growth IS NULL THEN 0 "
    " WHEN (SELECT true FROM lots l WHERE l.merchant_id = $1 AND l.source = v.source "
    "  AND l.reference = v.reference AND l.earn_growth IS NOT NULL LIMIT 1) "
    "  OR (SELECT true FROM earn_refs r WHERE r.merchant_id = $1 AND r.source = v.source "
    "  AND r.reference = v.reference LIMIT 1) THEN refuse('ALREADY_EARNED') "
    " WHEN v.source = 1 AND ((SELECT true FROM holds h WHERE h.merchant_id = $1 "
    "  AND h.reference = v.reference AND h.status = 2 AND h.member_id <> v.member_id LIMIT 1) "
    "  OR (SELECT true FROM orders o WHERE o.merchant_id = $1 AND o.reference = v.reference "
    "  AND o.member_id <> v.member_id LIMIT 1)) THEN refuse('REFERENCE_MEMBER_MISMATCH') "
    " ELSE 0 END AS ok FROM v) "
    "INSERT INTO lots (merchant_id, id, member_id, source, reference, points, remaining, status, "
    " earned_at, available_at, expiry_date, expires_at, earn_growth) "
    "SELECT $1, id, member_id, source, reference, points, points, status, to_timestamp(earned_at), "
    " to_timestamp(available_at), date '1970-01-01' + expiry_day, "
    " (date '1970-01-01' + (expiry_day + 1))::timestamp AT TIME ZONE time_zone, claim_growth "
    "FROM c WHERE ok = 0 ORDER BY ord "
    "RETURNING " LOT_COLUMNS;
// clang-format on

status_t points_store_insert_lots(db_t *db, arena_t *a, const char *merchant,
                                  const points_new_lot_t *lots, size_t n,
                                  Loyalty__V1__PointsLot **out) {
    char **text[5];
    int64_t *num[5];
    for (int k = 0; k < 5; k++) {
        text[k] = arena_alloc(a, (n + 1) * sizeof *text[k]);
    }
    for (int k = 0; k < 5; k++) {
        num[k] = arena_alloc(a, (n + 1) * sizeof *num[k]);
    }
    for (size_t i = 0; i < n; i++) {
        const points_new_lot_t *l = &lots[i];
        text[0][i] = (char *)l->id;
        text[1][i] = (char *)l->member_id;
        text[2][i] = (char *)l->reference;
        text[3][i] = l->has_expiry ? arena_printf(a, "%lld", (long long)l->expiry_day) : NULL;
        text[4][i] = l->claim ? arena_printf(a, "%lld", (long long)l->claim_growth) : NULL;
        num[0][i] = l->source;
        num[1][i] = l->points;
        num[2][i] = l->pending ? LOYALTY__V1__POINTS_LOT_STATUS__POINTS_LOT_STATUS_PENDING
                               : LOYALTY__V1__POINTS_LOT_STATUS__POINTS_LOT_STATUS_ACTIVE;
        num[3][i] = l->earned_at;
        num[4][i] = l->available_at;
    }
    char **zones = arena_alloc(a, (n + 1) * sizeof *zones);
    for (size_t i = 0; i < n; i++) {
        zones[i] = (char *)lots[i].time_zone;
    }
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant);
    db_param_text_array(&p, a, text[0], n);
    db_param_text_array(&p, a, text[1], n);
    db_param_int_array(&p, a, num[0], n);
    db_param_text_array(&p, a, text[2], n);
    db_param_int_array(&p, a, num[1], n);
    db_param_int_array(&p, a, num[2], n);
    db_param_int_array(&p, a, num[3], n);
    db_param_int_array(&p, a, num[4], n);
    db_param_text(&p, pgarray_encode_nullable(a, text[3], n));
    db_param_text_array(&p, a, zones, n);
    db_param_text(&p, pgarray_encode_nullable(a, text[4], n));
    PGresult *r = NULL;
    status_t st = claim_status(db, db_exec(db, SQL_INSERT_LOTS, &p, &r));
    if (!status_is_ok(&st)) {
        return st;
    }
    int rows = PQntuples(r);
    for (size_t i = 0; i < n; i++) {
        out[i] = NULL;
    }
    for (int row = 0; row < rows && status_is_ok(&st); row++) {
        const char *id = PQgetvalue(r, row, 0);
        for (size_t i = 0; i < n; i++) {
            if (out[i] == NULL && strcmp(lots[i].id, id) == 0) {
                st = db_cols_read(a, &LOT_COLS, r, row, &out[i]);
                break;
            }
        }
    }
    PQclear(r);
    for (size_t i = 0; i < n && status_is_ok(&st); i++) {
        if (out[i] == NULL) { /* every row is inserted or the statement refused */
            st = status_make(STATUS_INTERNAL, REASON_LEDGER_MISMATCH, "a lot was not inserted");
        }
    }
    return st;
}

status_t points_store_get_lot(db_t *db, arena_t *a, const char *merchant, const char *lot_id,
                              Loyalty__V1__PointsLot **out) {
    db_params_t p;
    db_params_key(&p, merchant, lot_id);
    PGresult *r = NULL;
    status_t st =
        db_exec(db, "SELECT " LOT_COLUMNS " FROM lots WHERE merchant_id = $1 AND id = $2", &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    *out = NULL;
    if (PQntuples(r) == 1) {
        st = db_cols_read(a, &LOT_COLS, r, 0, out);
    }
    PQclear(r);
    return st;
}

static status_t shares_from_result(arena_t *a, PGresult *r, points_share_t **out, int *n) {
    int rows = PQntuples(r);
    *out = arena_alloc(a, ((size_t)rows + 1) * sizeof **out);
    for (int i = 0; i < rows; i++) {
        (*out)[i].lot_id = db_dup_str(a, r, i, 0);
        (*out)[i].points = db_get_int(r, i, 1);
        (*out)[i].expiry_date = db_dup_str(a, r, i, 2);
    }
    *n = rows;
    PQclear(r);
    return status_ok();
}

/* Most spends need a few lots: read a first page in spending order (an index range), and the
 * rest only when that page does not cover the need. */
#define SPENDABLE_FIRST_PAGE 32

// clang-format off
static const char SQL_SPENDABLE_FIRST_PAGE[] =
    "SELECT id, remaining, " DAY_TEXT("expiry_date") " FROM lots "
    "WHERE merchant_id = $1 AND member_id = $2 AND status = 2 "
    " AND remaining > 0 AND id <> $3 "
    "ORDER BY expires_at, earned_at, id LIMIT $4";

/* A running total in spending order: the lots up to the one that covers the need ($3). */
static const char SQL_SPENDABLE_COVERING[] =
    "SELECT id, remaining, " DAY_TEXT("expiry_date") " FROM ("
    " SELECT id, remaining, expiry_date, expires_at, earned_at, "
    "  sum(remaining) OVER (ORDER BY expires_at, earned_at, id) AS running "
    " FROM lots WHERE merchant_id = $1 AND member_id = $2 AND status = 2 AND remaining > 0 "
    "  AND id <> $4) s "
    "WHERE running - remaining < $3::bigint ORDER BY expires_at, earned_at, id";
// clang-format on

status_t points_store_spendable_lots(db_t *db, arena_t *a, const char *merchant, const char *member,
                                     int64_t need, const char *except_lot, points_share_t **lots,
                                     int *n) {
    db_params_t p;
    db_params_key(&p, merchant, member);
    db_param_text(&p, except_lot);
    db_param_int(&p, SPENDABLE_FIRST_PAGE);
    PGresult *r = NULL;
    status_t st = db_exec(db, SQL_SPENDABLE_FIRST_PAGE, &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    int rows = PQntuples(r);
    int64_t sum = 0;
    int keep = 0;
    while (keep < rows && sum < need) {
        sum += db_get_int(r, keep++, 1);
    }
    if (sum >= need || rows < SPENDABLE_FIRST_PAGE) {
        st = shares_from_result(a, r, lots, n);
        *n = keep;
        return st;
    }
    PQclear(r);
    db_params_key(&p, merchant, member);
    db_param_int(&p, need);
    db_param_text(&p, except_lot);
    st = db_exec(db, SQL_SPENDABLE_COVERING, &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    return shares_from_result(a, r, lots, n);
}

status_t points_store_add_to_lots(db_t *db, arena_t *a, const char *merchant,
                                  const points_share_t *shares, int n) {
    if (n == 0) {
        return status_ok();
    }
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant);
    points_store_share_params(a, &p, shares, n);
    db_param_int(&p, n);
    db_expect_t every_lot = {.rows = -1, .refusal = ledger_mismatch("lot update")};
    return db_exec_deferred(db,
                            "WITH u AS (UPDATE lots l SET remaining = l.remaining + v.d, "
                            "  status = CASE "
                            "  WHEN l.status = 3 AND l.remaining + v.d > 0 THEN 2 "
                            "  WHEN l.status = 1 AND l.remaining + v.d = 0 THEN 4 "
                            "  ELSE l.status END "
                            " FROM unnest($2::text[], $3::bigint[]) AS v(id, d) "
                            " WHERE l.merchant_id = $1 AND l.id = v.id RETURNING 1) "
                            "SELECT refuse('LEDGER_MISMATCH') WHERE (SELECT count(*) FROM u) <> $4",
                            &p, &every_lot);
}

status_t points_store_mature_lots(db_t *db, arena_t *a, const char *merchant, const char *member,
                                  int64_t now, Loyalty__V1__PointsLot ***out, int *n) {
    db_params_t p;
    db_params_key(&p, merchant, member);
    db_param_int(&p, now);
    db_rows_t rows = {.item_size = sizeof **out};
    status_t st = db_rows(db, a,
                          "UPDATE lots SET status = 2 WHERE merchant_id = $1 AND member_id = $2 "
                          " AND status = 1 AND available_at <= to_timestamp($3::bigint) "
                          "RETURNING " LOT_COLUMNS,
                          &p, db_row_read, (void *)&LOT_COLS, &rows);
    *out = rows.items;
    *n = (int)rows.n;
    return st;
}

status_t points_store_expire_lots(db_t *db, arena_t *a, const char *merchant, const char *member,
                                  int64_t now, points_share_t **out, int *n) {
    db_params_t p;
    db_params_key(&p, merchant, member);
    db_param_int(&p, now);
    PGresult *r = NULL;
    status_t st = db_exec(
        db,
        "WITH x AS (SELECT id, remaining FROM lots WHERE merchant_id = $1 AND member_id = $2 "
        "  AND status = 2 AND remaining > 0 AND expires_at <= to_timestamp($3::bigint) "
        "  FOR UPDATE) "
        "UPDATE lots l SET status = 3, remaining = 0 FROM x "
        "WHERE l.merchant_id = $1 AND l.id = x.id "
        "RETURNING l.id, x.remaining, " DAY_TEXT("l.expiry_date"),
        &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    return shares_from_result(a, r, out, n);
}

/* A member's lots by (expiry, earning, id) after a cursor; never-expiring lots sort last:
 * their key is far in the future. */
// clang-format off
static const char SQL_LIST_LOTS[] =
    "SELECT " LOT_COLUMNS ", k1, k2 FROM ("
    " SELECT *, coalesce(" SQL_EPOCH_S_FLOOR("expires_at") ", 9000000000000000) AS k1, "
    "  " SQL_EPOCH_S_FLOOR("earned_at") " AS k2 FROM lots "
    " WHERE merchant_id = $1 AND member_id = $2 "
    "  AND ($3 OR (status IN (1, 2) AND remaining > 0))) l "
    "WHERE (k1, k2, id) > ($4::bigint, $5::bigint, $6) "
    "ORDER BY k1, k2, id LIMIT $7";
// clang-format on

status_t points_store_list_lots(db_t *db, arena_t *a, const char *merchant, const char *member,
                                const char *after_key, const char *after_id, int32_t limit,
                                bool include_closed, Loyalty__V1__PointsLot ***out, size_t *n) {
    long long k1 = -1, k2 = -1;
    if (after_key[0] != '\0' && sscanf(after_key, "%lld:%lld", &k1, &k2) != 2) {
        return status_invalid_field("page.cursor", "malformed cursor");
    }
    db_params_t p;
    db_params_key(&p, merchant, member);
    db_param_bool(&p, include_closed);
    db_param_int(&p, k1);
    db_param_int(&p, k2);
    db_param_text(&p, after_id);
    db_param_int(&p, limit);
    db_rows_t rows = {.item_size = sizeof **out};
    status_t st = db_rows_cols(db, a, SQL_LIST_LOTS, &p, &LOT_COLS, &rows);
    *out = rows.items;
    *n = rows.n;
    return st;
}

/* Each figure is a range or a first row of the lots_spend index: the cost grows with the lots
 * expiring inside the window ($3), never with the member's history. */
// clang-format off
#define SPENDABLE \
    "FROM lots WHERE merchant_id = $1 AND member_id = $2 AND status = 2 AND remaining > 0 "
static const char SQL_EXPIRING_FIGURES[] =
    "WITH first AS (SELECT expires_at, expiry_date " SPENDABLE
    "  AND expires_at IS NOT NULL ORDER BY expires_at LIMIT 1) "
    "SELECT coalesce((SELECT sum(remaining) " SPENDABLE
    "   AND expires_at <= to_timestamp($3::bigint)), 0)::bigint, "
    " coalesce((SELECT to_char(expiry_date, 'YYYY-MM-DD') FROM first), ''), "
    " coalesce((SELECT sum(remaining) " SPENDABLE
    "   AND expires_at = (SELECT expires_at FROM first)), 0)::bigint, "
    " coalesce((SELECT " SQL_EPOCH_S_FLOOR("expires_at") " " SPENDABLE
    "   AND expires_at > to_timestamp($3::bigint) ORDER BY expires_at LIMIT 1), 0)";
// clang-format on
#undef SPENDABLE

status_t points_store_expiring(db_t *db, arena_t *a, const char *merchant, const char *member,
                               int64_t now, points_expiring_t *out) {
    db_params_t p;
    db_params_key(&p, merchant, member);
    db_param_int(&p, now + (int64_t)POINTS_EXPIRING_WINDOW_DAYS * 86400);
    PGresult *r = NULL;
    status_t st = db_exec(db, SQL_EXPIRING_FIGURES, &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    out->within_window = db_get_int(r, 0, 0);
    out->next_date = db_dup_str(a, r, 0, 1);
    out->next_points = db_get_int(r, 0, 2);
    int64_t next_outside = db_get_int(r, 0, 3);
    out->window_changes_at =
        next_outside ? next_outside - (int64_t)POINTS_EXPIRING_WINDOW_DAYS * 86400 : 0;
    PQclear(r);
    return status_ok();
}

static const db_col_t EXPIRING_BALANCE_COL_TABLE[] = {
    DB_FIELD(DB_COL_TEXT, "member_id"),
    DB_FIELD(DB_COL_INT, "points"),
    DB_FIELD(DB_COL_TEXT, "expiry_date"),
    DB_FIELD(DB_COL_INT, "expires_at"),
};
static const db_cols_t EXPIRING_BALANCE_COLS =
    DB_COLS_MESSAGE(EXPIRING_BALANCE_COL_TABLE, &loyalty__v1__points_expiring_balance__descriptor);

status_t points_store_list_expiring(db_t *db, arena_t *a, const char *merchant, int64_t from,
                                    int64_t to, const char *after_member, int limit,
                                    Loyalty__V1__PointsExpiringBalance ***out, size_t *n,
                                    bool *more) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant);
    db_param_int(&p, from);
    db_param_int(&p, to);
    db_param_text(&p, after_member);
    db_param_int(&p, (int64_t)limit + 1);
    /* From the lots_expiring index (spendable lots by expiry), grouped by member. */
    db_rows_t rows = {.item_size = sizeof **out, .limit = limit};
    status_t st = db_rows(
        db, a,
        "SELECT member_id, sum(remaining), to_char(min(expiry_date), 'YYYY-MM-DD'), "
        " " SQL_EPOCH_S(
            "min(expires_at)") " "
                               "FROM lots WHERE merchant_id = $1 AND status = 2 AND remaining > 0 "
                               " AND expires_at >= to_timestamp($2) AND expires_at < "
                               "to_timestamp($3) "
                               " AND member_id > $4 "
                               "GROUP BY member_id ORDER BY member_id LIMIT $5",
        &p, db_row_read, (void *)&EXPIRING_BALANCE_COLS, &rows);
    *out = rows.items;
    *n = rows.n;
    *more = rows.more;
    return st;
}

/* ---- holds ---- */

status_t points_store_insert_hold(db_t *db, const char *merchant, const char *id,
                                  const char *member, const char *reference, int64_t points,
                                  int64_t cash_value_cents, int64_t now, int64_t expires_at,
                                  const points_share_t *shares, int n) {
    arena_t scratch;
    arena_init(&scratch);
    db_params_t p;
    db_params_key(&p, merchant, id);
    db_param_text(&p, member);
    db_param_text(&p, reference);
    db_param_int(&p, points);
    db_param_int(&p, cash_value_cents);
    db_param_int(&p, now);
    db_param_int(&p, expires_at);
    /* A hold of one lot names it itself; only holds of several lots write hold_lots. */
    bool one_lot = n == 1 && -shares[0].points == points;
    db_param_text(&p, one_lot ? shares[0].lot_id : NULL);
    points_store_share_params(&scratch, &p, shares, one_lot ? 0 : n);
    db_expect_t live_reference = {
        .rows = -1,
        .constraint = "holds_live_reference",
        .refusal = status_make(STATUS_ALREADY_EXISTS, REASON_HOLD_EXISTS,
                               "an active or committed hold already uses this reference")};
    /* Deferred: the hold is written with the account, in one round trip (values copied). */
    status_t st = db_exec_deferred(
        db,
        "WITH h AS (INSERT INTO holds (merchant_id, id, member_id, reference, points, "
        "  cash_value_cents, status, created_at, expires_at, lot_id) VALUES ($1, $2, $3, $4, $5, "
        "  $6, 1, to_timestamp($7::bigint), to_timestamp($8::bigint), $9) RETURNING id) "
        "INSERT INTO hold_lots (merchant_id, hold_id, lot_id, points) "
        "SELECT $1, h.id, v.lot, -v.pts FROM h, unnest($10::text[], $11::bigint[]) AS v(lot, pts)",
        &p, &live_reference);
    arena_free(&scratch);
    return st;
}

/* The hold's lot shares ride along as three arrays (one round trip), in spending order: its
 * one lot when it names it, else its hold_lots. */
// clang-format off
#define HOLD_WITH_LOTS                                                                             \
    "SELECT h.id, h.member_id, h.reference, h.points, h.cash_value_cents, h.status, "              \
    " " SQL_EPOCH_S_FLOOR("h.created_at") ", " SQL_EPOCH_S_FLOOR("h.expires_at") ", "              \
    " coalesce(" SQL_EPOCH_S_FLOOR("h.finished_at") ", 0), "                                       \
    " CASE WHEN h.lot_id IS NOT NULL THEN ARRAY[h.lot_id] ELSE coalesce(s.ids, '{}') END, "        \
    " CASE WHEN h.lot_id IS NOT NULL THEN ARRAY[-h.points] ELSE coalesce(s.pts, '{}') END, "       \
    " CASE WHEN h.lot_id IS NOT NULL THEN ARRAY[" DAY_TEXT("l1.expiry_date") "] "                  \
    "  ELSE coalesce(s.days, '{}') END "                                                           \
    "FROM holds h LEFT JOIN lots l1 ON l1.merchant_id = h.merchant_id AND l1.id = h.lot_id "       \
    "LEFT JOIN LATERAL (SELECT "                                                                   \
    "  array_agg(hl.lot_id ORDER BY l.expires_at, l.earned_at, l.id) AS ids, "                     \
    "  array_agg(-hl.points ORDER BY l.expires_at, l.earned_at, l.id) AS pts, "                    \
    "  array_agg(" DAY_TEXT("l.expiry_date") " ORDER BY l.expires_at, l.earned_at, l.id) AS days " \
    "  FROM hold_lots hl JOIN lots l ON l.merchant_id = hl.merchant_id AND l.id = hl.lot_id "      \
    "  WHERE hl.merchant_id = h.merchant_id AND hl.hold_id = h.id) s ON true "
// clang-format on

static const db_col_t HOLD_COL_TABLE[] = {
    DB_FIELD(DB_COL_TEXT, "id"),
    DB_FIELD(DB_COL_TEXT, "member_id"),
    DB_FIELD(DB_COL_TEXT, "reference"),
    DB_FIELD(DB_COL_INT, "points"),
    DB_FIELD(DB_COL_INT, "cash_value_cents"),
    DB_FIELD(DB_COL_INT, "status"),
    DB_FIELD(DB_COL_INT, "created_at"),
    DB_FIELD(DB_COL_INT, "expires_at"),
    DB_FIELD(DB_COL_INT, "finished_at"),
};
static const db_cols_t HOLD_COLS =
    DB_COLS_MESSAGE(HOLD_COL_TABLE, &loyalty__v1__points_hold__descriptor);

/* A hold and its lot shares: three parallel arrays after its own columns (9..11). */
static status_t hold_from_row(arena_t *a, const PGresult *r, int row,
                              Loyalty__V1__PointsHold **out) {
    Loyalty__V1__PointsHold *h = NULL;
    status_t st = db_cols_read(a, &HOLD_COLS, r, row, &h);
    if (!status_is_ok(&st)) {
        return st;
    }
    char **ids = NULL, **pts = NULL, **days = NULL;
    size_t n_ids = 0, n_pts = 0, n_days = 0;
    bool decoded = pgarray_decode(a, db_get_str(r, row, 9), &ids, &n_ids) &&
                   pgarray_decode(a, db_get_str(r, row, 10), &pts, &n_pts) &&
                   pgarray_decode(a, db_get_str(r, row, 11), &days, &n_days);
    if (!decoded || n_pts != n_ids || n_days != n_ids) {
        return status_make(STATUS_INTERNAL, REASON_LEDGER_MISMATCH, "hold %s has unreadable lots",
                           h->id);
    }
    h->lots = arena_alloc(a, (n_ids + 1) * sizeof *h->lots);
    for (size_t i = 0; i < n_ids; i++) {
        Loyalty__V1__PointsLotShare *s = pb_new(a, &loyalty__v1__points_lot_share__descriptor);
        s->lot_id = ids[i];
        s->points = strtoll(pts[i], NULL, 10);
        s->expiry_date = days[i];
        h->lots[i] = s;
    }
    h->n_lots = n_ids;
    *out = h;
    return status_ok();
}

static status_t hold_from_result(arena_t *a, const PGresult *r, Loyalty__V1__PointsHold **out) {
    return hold_from_row(a, r, 0, out);
}

status_t points_store_get_hold(db_t *db, arena_t *a, const char *merchant, const char *hold_id,
                               const char *reference, Loyalty__V1__PointsHold **out) {
    db_params_t p;
    db_params_key(&p, merchant, hold_id ? hold_id : reference);
    PGresult *r = NULL;
    status_t st = db_exec_row(
        db,
        hold_id ? HOLD_WITH_LOTS "WHERE h.merchant_id = $1 AND h.id = $2"
                : HOLD_WITH_LOTS "WHERE h.merchant_id = $1 AND h.reference = $2 "
                                 "ORDER BY (h.status IN (1, 2)) DESC, h.created_at DESC, h.id DESC "
                                 "LIMIT 1",
        &p, &r, STATUS_NOT_FOUND, REASON_HOLD_NOT_FOUND, "hold not found");
    if (!status_is_ok(&st)) {
        return st;
    }
    st = hold_from_result(a, r, out);
    PQclear(r);
    return st;
}

status_t points_store_lock_batch(db_t *db, arena_t *a, const char *merchant,
                                 const char *const *members, size_t n_members,
                                 const char *const *hold_ids, size_t n_holds,
                                 points_batch_locks_t *out) {
    memset(out, 0, sizeof *out);
    status_t flushed = db_rowset_flush(db, &ACCOUNT_SAVES); /* accounts saved before */
    if (!status_is_ok(&flushed)) {
        return flushed;
    }
    db_params_t pl, ph;
    db_params_init(&pl);
    db_param_text(&pl, merchant);
    db_param_text_array(&pl, a, (char **)members, n_members);
    db_param_text_array(&pl, a, (char **)hold_ids, n_holds);
    db_params_init(&ph);
    db_param_text(&ph, merchant);
    db_param_text_array(&ph, a, (char **)hold_ids, n_holds);
    /* In member-id order as strcmp sorts (COLLATE "C"), the order every batch locks in; the
     * holds are read once their members' accounts are locked. The members are one array
     * (= ANY of an ARRAY), so that the accounts are found through their key: as an IN (subquery),
     * the generic plan joined a scan of every account of the merchant. */
    db_exec_item_t q[2] = {
        {.sql = "SELECT member_id, " ACCOUNT_COLUMNS " FROM accounts "
                "WHERE merchant_id = $1 AND member_id = ANY (ARRAY("
                " SELECT unnest($2::text[]) UNION ALL "
                " SELECT member_id FROM holds WHERE merchant_id = $1 AND id = ANY($3::text[]))) "
                "ORDER BY member_id COLLATE \"C\" FOR UPDATE",
         .params = &pl},
        {.sql = HOLD_WITH_LOTS "WHERE h.merchant_id = $1 AND h.id = ANY($2::text[])",
         .params = &ph},
    };
    status_t st = db_exec_all(db, q, n_holds > 0 ? 2 : 1);
    if (!status_is_ok(&st)) {
        return st;
    }
    int rows = PQntuples(q[0].out);
    out->members = arena_alloc(a, ((size_t)rows + 1) * sizeof *out->members);
    out->accounts = arena_alloc(a, ((size_t)rows + 1) * sizeof *out->accounts);
    for (int i = 0; i < rows && status_is_ok(&st); i++) {
        out->members[i] = db_dup_str(a, q[0].out, i, 0);
        st = account_from_row_at(q[0].out, i, 1, &out->accounts[i]);
    }
    out->n = (size_t)rows;
    int hold_rows = n_holds > 0 ? PQntuples(q[1].out) : 0;
    out->holds = arena_alloc(a, ((size_t)hold_rows + 1) * sizeof *out->holds);
    for (int i = 0; i < hold_rows && status_is_ok(&st); i++) {
        st = hold_from_row(a, q[1].out, i, &out->holds[i]);
    }
    out->n_holds = status_is_ok(&st) ? (size_t)hold_rows : 0;
    PQclear(q[0].out);
    PQclear(q[1].out);
    return st;
}

status_t points_store_finish_hold(db_t *db, const char *merchant, const char *hold_id, int status,
                                  int64_t now) {
    db_params_t p;
    db_params_key(&p, merchant, hold_id);
    db_param_int(&p, status);
    db_param_int(&p, now);
    db_expect_t the_hold = {.rows = -1, .refusal = ledger_mismatch("hold update")};
    return db_exec_deferred(db,
                            "WITH u AS (UPDATE holds SET status = $3, "
                            " finished_at = to_timestamp($4::bigint) "
                            " WHERE merchant_id = $1 AND id = $2 AND status = 1 RETURNING 1) "
                            "SELECT refuse('LEDGER_MISMATCH') WHERE NOT EXISTS (SELECT FROM u)",
                            &p, &the_hold);
}

status_t points_store_expired_holds(db_t *db, arena_t *a, const char *merchant, const char *member,
                                    int64_t now, char ***ids, int *n) {
    db_params_t p;
    db_params_key(&p, merchant, member);
    db_param_int(&p, now);
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "SELECT id FROM holds WHERE merchant_id = $1 AND member_id = $2 "
                          " AND status = 1 AND expires_at <= to_timestamp($3::bigint) "
                          "ORDER BY expires_at, id",
                          &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    int rows = PQntuples(r);
    *ids = arena_alloc(a, ((size_t)rows + 1) * sizeof **ids);
    for (int i = 0; i < rows; i++) {
        (*ids)[i] = db_dup_str(a, r, i, 0);
    }
    *n = rows;
    PQclear(r);
    return status_ok();
}

/* What a reversal can put back: the shares of holds that took from several lots, and the one
 * lot of the others, latest-expiring first. */
// clang-format off
static const char SQL_RESTORABLE[] =
    "SELECT x.lot_id, x.left_points, " DAY_TEXT("l.expiry_date") ", x.hold_id FROM ("
    " SELECT hl.hold_id, hl.lot_id, hl.points - hl.restored AS left_points "
    " FROM holds h JOIN hold_lots hl ON hl.merchant_id = h.merchant_id AND hl.hold_id = h.id "
    " WHERE h.merchant_id = $1 AND h.reference = $2 AND h.status = 2 "
    "  AND h.member_id = $3 AND hl.points > hl.restored "
    " UNION ALL "
    " SELECT h.id, h.lot_id, h.points - h.lot_restored FROM holds h "
    " WHERE h.merchant_id = $1 AND h.reference = $2 AND h.status = 2 "
    "  AND h.member_id = $3 AND h.lot_id IS NOT NULL AND h.points > h.lot_restored) x "
    "JOIN lots l ON l.merchant_id = $1 AND l.id = x.lot_id "
    "ORDER BY l.expires_at DESC NULLS FIRST, l.earned_at DESC, l.id DESC";
// clang-format on

status_t points_store_restorable(db_t *db, arena_t *a, const char *merchant, const char *member,
                                 const char *reference, points_share_t **shares,
                                 const char ***hold_ids, int *n) {
    db_params_t p;
    db_params_key(&p, merchant, reference);
    db_param_text(&p, member);
    PGresult *r = NULL;
    status_t st = db_exec(db, SQL_RESTORABLE, &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    int rows = PQntuples(r);
    *hold_ids = arena_alloc(a, ((size_t)rows + 1) * sizeof **hold_ids);
    for (int i = 0; i < rows; i++) {
        (*hold_ids)[i] = db_dup_str(a, r, i, 3);
    }
    return shares_from_result(a, r, shares, n);
}

status_t points_store_mark_restored(db_t *db, const char *merchant, const char *hold_id,
                                    const char *lot_id, int64_t points) {
    db_params_t p;
    db_params_key(&p, merchant, hold_id);
    db_param_text(&p, lot_id);
    db_param_int(&p, points);
    /* On the hold when it names the lot, else on its hold_lots share. */
    return db_exec_deferred(db,
                            "WITH one AS (UPDATE holds SET lot_restored = lot_restored + $4 "
                            " WHERE merchant_id = $1 AND id = $2 AND lot_id = $3 RETURNING 1) "
                            "UPDATE hold_lots SET restored = restored + $4 WHERE merchant_id = $1 "
                            " AND hold_id = $2 AND lot_id = $3 AND NOT EXISTS (SELECT FROM one)",
                            &p, NULL);
}

/* ---- earns, orders, check-ins, imports ---- */

status_t points_store_claim_earn(db_t *db, const char *merchant, int source, const char *reference,
                                 const char *member, int64_t growth, int64_t now) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant);
    db_param_int(&p, source);
    db_param_text(&p, reference);
    db_param_text(&p, member);
    db_param_int(&p, growth);
    db_param_int(&p, now);
    /* The same checks as a claiming lot's insert (points_store_insert_lot). Claims of one
     * member serialize on its account lock, and two lot claims meet at lots_earn_claim; what
     * no lock orders is a claim here racing another member's lot claim of the same (source,
     * reference) (each checks the other's table before the other commits): both would stand
     * (ReverseOrder reads one). A client's error only: one reference is one member's order. */
    status_t st = db_exec(
        db,
        "WITH c AS (SELECT CASE "
        " WHEN EXISTS (SELECT FROM lots WHERE merchant_id = $1 AND source = $2 "
        "  AND reference = $3 AND earn_growth IS NOT NULL) THEN refuse('ALREADY_EARNED') "
        " WHEN $2 = 1 AND (EXISTS (SELECT FROM holds WHERE merchant_id = $1 "
        "  AND reference = $3 AND status = 2 AND member_id <> $4) "
        "  OR EXISTS (SELECT FROM orders WHERE merchant_id = $1 AND reference = $3 "
        "  AND member_id <> $4)) THEN refuse('REFERENCE_MEMBER_MISMATCH') ELSE 0 END AS ok), "
        " i AS (INSERT INTO earn_refs (merchant_id, source, reference, member_id, lot_id, points, "
        "  growth, created_at) SELECT $1, $2, $3, $4, '', 0, $5, to_timestamp($6::bigint) "
        "  FROM c ON CONFLICT DO NOTHING RETURNING 1) "
        "SELECT refuse('ALREADY_EARNED') WHERE NOT EXISTS (SELECT FROM i)",
        &p, NULL);
    return claim_status(db, st);
}

status_t points_store_check_redeemer(db_t *db, const char *merchant, const char *reference,
                                     const char *member) {
    db_params_t p;
    db_params_key(&p, merchant, reference);
    db_param_text(&p, member);
    db_expect_t own_reference = {
        .rows = -1,
        .refusal = status_make(STATUS_FAILED_PRECONDITION, REASON_REFERENCE_MEMBER_MISMATCH,
                               "this reference belongs to another member")};
    /* The committed hold itself is the redemption's record: nothing is written here. As with
     * earn claims (points_store_claim_earn), two members' commit and earn of one reference at
     * the same instant are not ordered by any lock; each is refused once the other committed. */
    return db_exec_deferred(
        db,
        "SELECT refuse('REFERENCE_MEMBER_MISMATCH') WHERE EXISTS (SELECT FROM lots "
        " WHERE merchant_id = $1 AND source = 1 AND reference = $2 AND earn_growth IS NOT NULL "
        " AND member_id <> $3) OR EXISTS (SELECT FROM earn_refs WHERE merchant_id = $1 "
        " AND source = 1 AND reference = $2 AND member_id <> $3) OR EXISTS (SELECT FROM orders "
        " WHERE merchant_id = $1 AND reference = $2 AND member_id <> $3)",
        &p, &own_reference);
}

status_t points_store_order_get(db_t *db, arena_t *a, const char *merchant, const char *reference,
                                points_order_t *out) {
    db_params_t p;
    db_params_key(&p, merchant, reference);
    PGresult *r = NULL;
    /* The earn's claim (its lot, or earn_refs when it made none), the reversals' row and the
     * COMMITTED hold, of the one member who owns the reference. */
    status_t st = db_exec_row(
        db,
        "WITH e AS (SELECT member_id, points, earn_growth AS growth, id AS lot_id FROM lots "
        "  WHERE merchant_id = $1 AND source = 1 AND reference = $2 AND earn_growth IS NOT NULL "
        " UNION ALL SELECT member_id, points, growth, lot_id FROM earn_refs "
        "  WHERE merchant_id = $1 AND source = 1 AND reference = $2 LIMIT 1), "
        " o AS (SELECT member_id, reversed_bps, clawed_points, clawed_growth, restored_points "
        "  FROM orders WHERE merchant_id = $1 AND reference = $2), "
        " h AS (SELECT member_id, points FROM holds WHERE merchant_id = $1 AND reference = $2 "
        "  AND status = 2 AND member_id = coalesce((SELECT member_id FROM o), "
        "  (SELECT member_id FROM e), member_id) LIMIT 1) "
        "SELECT coalesce(o.member_id, e.member_id, h.member_id), coalesce(e.points, 0), "
        " coalesce(e.growth, 0), coalesce(e.lot_id, ''), coalesce(h.points, 0), "
        " coalesce(o.reversed_bps, 0), coalesce(o.clawed_points, 0), "
        " coalesce(o.clawed_growth, 0), coalesce(o.restored_points, 0) "
        "FROM (SELECT) x LEFT JOIN e ON true LEFT JOIN h ON true LEFT JOIN o ON true "
        "WHERE e.member_id IS NOT NULL OR h.member_id IS NOT NULL OR o.member_id IS NOT NULL",
        &p, &r, STATUS_NOT_FOUND, REASON_ORDER_NOT_FOUND,
        "nothing was earned or redeemed with this reference");
    if (!status_is_ok(&st)) {
        return st;
    }
    out->member_id = db_dup_str(a, r, 0, 0);
    out->earned_points = db_get_int(r, 0, 1);
    out->earned_growth = db_get_int(r, 0, 2);
    out->earn_lot_id = db_dup_str(a, r, 0, 3);
    out->redeemed_points = db_get_int(r, 0, 4);
    out->reversed_bps = db_get_int(r, 0, 5);
    out->clawed_points = db_get_int(r, 0, 6);
    out->clawed_growth = db_get_int(r, 0, 7);
    out->restored_points = db_get_int(r, 0, 8);
    PQclear(r);
    return status_ok();
}

status_t points_store_order_reversed(db_t *db, const char *merchant, const char *reference,
                                     const points_order_t *o) {
    db_params_t p;
    db_params_key(&p, merchant, reference);
    db_param_text(&p, o->member_id);
    db_param_int(&p, o->reversed_bps);
    db_param_int(&p, o->clawed_points);
    db_param_int(&p, o->clawed_growth);
    db_param_int(&p, o->restored_points);
    /* An order that only earned has no row until its first reversal. */
    return db_exec(db,
                   "INSERT INTO orders AS o (merchant_id, reference, member_id, reversed_bps, "
                   " clawed_points, clawed_growth, restored_points) "
                   "VALUES ($1, $2, $3, $4, $5, $6, $7) "
                   "ON CONFLICT (merchant_id, reference) DO UPDATE SET "
                   " reversed_bps = EXCLUDED.reversed_bps, clawed_points = EXCLUDED.clawed_points, "
                   " clawed_growth = EXCLUDED.clawed_growth, "
                   " restored_points = EXCLUDED.restored_points",
                   &p, NULL);
}

status_t points_store_insert_check_in(db_t *db, const char *merchant, const char *member,
                                      int64_t day, int64_t points, int64_t now) {
    db_params_t p;
    db_params_key(&p, merchant, member);
    db_param_int(&p, day);
    db_param_int(&p, points);
    db_param_int(&p, now);
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "INSERT INTO check_ins (merchant_id, member_id, day, points, created_at) "
                          "VALUES ($1, $2, date '1970-01-01' + $3::int, $4, "
                          " to_timestamp($5::bigint)) ON CONFLICT DO NOTHING RETURNING 1",
                          &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    bool ok = PQntuples(r) == 1;
    PQclear(r);
    if (!ok) {
        return status_make(STATUS_ALREADY_EXISTS, REASON_ALREADY_CHECKED_IN,
                           "the member already checked in on this day");
    }
    return status_ok();
}

status_t points_store_get_batch(db_t *db, const char *merchant, const char *batch_id,
                                const unsigned char *request, size_t request_len, bool *found,
                                bool *same, Loyalty__V1__PointsImportLotsResponse *out) {
    db_params_t p;
    db_params_key(&p, merchant, batch_id);
    db_param_bytes(&p, request, request_len);
    PGresult *r = NULL;
    /* Locked so that two concurrent imports of one batch serialize here. */
    status_t st = db_exec(db,
                          "SELECT request_hash = sha256($3), lots, points, growth "
                          "FROM import_batches WHERE merchant_id = $1 AND batch_id = $2 "
                          "FOR UPDATE",
                          &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    *found = PQntuples(r) == 1;
    *same = *found && db_get_bool(r, 0, 0);
    if (*found) {
        out->lots_imported = db_get_int(r, 0, 1);
        out->points_imported = db_get_int(r, 0, 2);
        out->growth_imported = db_get_int(r, 0, 3);
    }
    PQclear(r);
    return status_ok();
}

status_t points_store_insert_batch(db_t *db, const char *merchant, const char *batch_id,
                                   const unsigned char *request, size_t request_len,
                                   const Loyalty__V1__PointsImportLotsResponse *res, int64_t now) {
    db_params_t p;
    db_params_key(&p, merchant, batch_id);
    db_param_bytes(&p, request, request_len);
    db_param_int(&p, res->lots_imported);
    db_param_int(&p, res->points_imported);
    db_param_int(&p, res->growth_imported);
    db_param_int(&p, now);
    status_t st = db_exec(db,
                          "INSERT INTO import_batches (merchant_id, batch_id, request_hash, lots, "
                          " points, growth, created_at) VALUES ($1, $2, sha256($3), $4, $5, $6, "
                          " to_timestamp($7::bigint))",
                          &p, NULL);
    if (st.code == STATUS_ALREADY_EXISTS) {
        /* A concurrent import of the same batch committed first: let the caller retry, and
         * the retry replays or refuses it. */
        return status_make(STATUS_ABORTED, REASON_CONCURRENCY_CONFLICT,
                           "the batch was imported concurrently, safe to retry");
    }
    return st;
}
