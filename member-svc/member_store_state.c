/* member_store_state.c -- settings, tiers, plans, member state rows, orders, history, counters. */
#include "member_store_state.h"

#include "ids.h"
#include "pb.h"
#include "pgarray.h"
#include "sql_time.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends a day parameter; MEMBER_DAY_NONE becomes NULL. */
static void param_day(db_params_t *p, int64_t day) {
    if (day == MEMBER_DAY_NONE) {
        db_param_null(p);
    } else {
        db_param_int(p, day);
    }
}

/* Appends an instant parameter; 0 becomes NULL. */
static void param_instant(db_params_t *p, int64_t at) {
    if (at == 0) {
        db_param_null(p);
    } else {
        db_param_int(p, at);
    }
}

/* ---- settings ---- */

static void settings_default(member_settings_t *s) {
    memset(s, 0, sizeof *s);
    snprintf(s->time_zone, sizeof s->time_zone, "UTC");
    s->basis = MEMBER_BASIS(GROWTH);
    s->lifecycle = member_lifecycle_default();
}

/* Reads a bigint[] of exactly MEMBER_RFM_BOUNDS numbers; false otherwise. */
static bool bounds_col(const PGresult *r, int c, int64_t out[MEMBER_RFM_BOUNDS]) {
    if (db_is_null(r, 0, c)) {
        return false;
    }
    arena_t a;
    arena_init(&a);
    int64_t *v = NULL;
    size_t n = 0;
    bool ok = db_get_int_array(&a, r, 0, c, &v, &n) && n == MEMBER_RFM_BOUNDS;
    if (ok) {
        memcpy(out, v, MEMBER_RFM_BOUNDS * sizeof *out);
    }
    arena_free(&a);
    return ok;
}

/* The stored tag rules (texts member_tags_decode reads; one it cannot read is skipped). */
static void tag_rules_col(const PGresult *r, int c, member_tag_rules_t *out) {
    out->n = 0;
    if (db_is_null(r, 0, c)) {
        return;
    }
    arena_t a;
    arena_init(&a);
    char **items = NULL;
    size_t n = 0;
    if (pgarray_decode(&a, db_get_str(r, 0, c), &items, &n)) {
        for (size_t i = 0; i < n && out->n < MEMBER_TAG_RULES_MAX; i++) {
            if (member_tags_decode(items[i], &out->r[out->n])) {
                out->n++;
            }
        }
    }
    arena_free(&a);
}

/* The settings with the days of $2 and $3 in the merchant's zone (UTC without a row). */
// clang-format off
static const char SETTINGS_SQL[] =
    "SELECT s.time_zone, s.tier_basis, s.new_days, s.active_months_min, "
    " s.sleeping_after_days, s.lost_after_days, s.sleeping_orders_max, s.rfm_recency, "
    " s.rfm_frequency, s.rfm_monetary, "
    " " SQL_EPOCH_S_OR_0("s.rfm_computed_at") ", "
    " " SQL_EPOCH_S("s.updated_at") ", "
    " (to_timestamp($2) AT TIME ZONE z.tz)::date - " SQL_DAY_ZERO ", "
    " (to_timestamp($3) AT TIME ZONE z.tz)::date - " SQL_DAY_ZERO ", s.tag_rules "
    "FROM (SELECT $1::text AS m) q "
    "LEFT JOIN settings s ON s.merchant_id = q.m "
    "CROSS JOIN LATERAL (SELECT coalesce(s.time_zone, 'UTC') AS tz) z";
// clang-format on

static void settings_params(db_params_t *p, const char *merchant_id, int64_t now_s, int64_t at_s) {
    db_params_init(p);
    db_param_text(p, merchant_id);
    db_param_int(p, now_s);
    db_param_int(p, at_s);
}

/* SETTINGS_SQL's stored columns; the RFM bounds (7..9) and the tag rules (14) are read by
 * settings_from_result, the days (12, 13) are the caller's. */
static const db_col_t SETTINGS_COL_TABLE[] = {
    DB_COL(DB_COL_TEXT_IN, member_settings_t, time_zone),
    DB_COL(DB_COL_INT, member_settings_t, basis),
    DB_COL(DB_COL_INT, member_settings_t, lifecycle.new_days),
    DB_COL(DB_COL_INT, member_settings_t, lifecycle.active_months_min),
    DB_COL(DB_COL_INT, member_settings_t, lifecycle.sleeping_after_days),
    DB_COL(DB_COL_INT, member_settings_t, lifecycle.lost_after_days),
    DB_COL(DB_COL_INT, member_settings_t, lifecycle.sleeping_orders_max),
    DB_COL_SKIPPED,
    DB_COL_SKIPPED,
    DB_COL_SKIPPED,
    DB_COL(DB_COL_INT, member_settings_t, rfm_computed_at),
    DB_COL(DB_COL_INT, member_settings_t, updated_at),
};
static const db_cols_t SETTINGS_COLS = DB_COLS(SETTINGS_COL_TABLE);

static status_t settings_from_result(const PGresult *r, member_settings_t *out, int64_t *now_day,
                                     int64_t *at_day) {
    settings_default(out);
    if (!db_is_null(r, 0, 0)) {
        /* Numbers and a fixed buffer only: no arena is needed. */
        status_t st = db_cols_read(NULL, &SETTINGS_COLS, r, 0, out);
        if (!status_is_ok(&st)) {
            return st;
        }
        out->have_rfm = bounds_col(r, 7, out->rfm_recency) &&
                        bounds_col(r, 8, out->rfm_frequency) && bounds_col(r, 9, out->rfm_monetary);
        tag_rules_col(r, 14, &out->tag_rules);
    }
    if (now_day) {
        *now_day = db_get_int(r, 0, 12);
    }
    if (at_day) {
        *at_day = db_get_int(r, 0, 13);
    }
    return status_ok();
}

status_t member_settings_load(db_t *db, const char *merchant_id, int64_t now_s, int64_t at_s,
                              member_settings_t *out, int64_t *now_day, int64_t *at_day) {
    db_params_t p;
    settings_params(&p, merchant_id, now_s, at_s);
    PGresult *r = NULL;
    status_t st = db_exec(db, SETTINGS_SQL, &p, &r);
    if (!status_is_ok(&st)) {
        settings_default(out);
        return st;
    }
    st = settings_from_result(r, out, now_day, at_day);
    PQclear(r);
    return st;
}

status_t member_settings_ensure(db_t *db, const char *merchant_id) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    return db_exec(db, "INSERT INTO settings (merchant_id) VALUES ($1) ON CONFLICT DO NOTHING", &p,
                   NULL);
}

status_t member_settings_lock(db_t *db, const char *merchant_id) {
    status_t st = member_settings_ensure(db, merchant_id);
    if (!status_is_ok(&st)) {
        return st;
    }
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    return db_exec(db, "SELECT 1 FROM settings WHERE merchant_id = $1 FOR UPDATE", &p, NULL);
}

// clang-format off
static const char SETTINGS_SAVE_SQL[] =
    "INSERT INTO settings AS s (merchant_id, time_zone, tier_basis, new_days, "
    " active_months_min, sleeping_after_days, lost_after_days, sleeping_orders_max, "
    " resegment_after) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $9 THEN '' END) "
    "ON CONFLICT (merchant_id) DO UPDATE SET time_zone = $2, tier_basis = $3, new_days = $4, "
    " active_months_min = $5, sleeping_after_days = $6, lost_after_days = $7, "
    " sleeping_orders_max = $8, "
    " resegment_after = CASE WHEN $9 THEN '' ELSE s.resegment_after END, updated_at = now()";
// clang-format on

status_t member_settings_save(db_t *db, const char *merchant_id, const member_settings_t *s,
                              bool resegment) {
    db_params_t p;
    db_params_key(&p, merchant_id, s->time_zone);
    db_param_int(&p, s->basis);
    db_param_int(&p, s->lifecycle.new_days);
    db_param_int(&p, s->lifecycle.active_months_min);
    db_param_int(&p, s->lifecycle.sleeping_after_days);
    db_param_int(&p, s->lifecycle.lost_after_days);
    db_param_int(&p, s->lifecycle.sleeping_orders_max);
    db_param_bool(&p, resegment);
    return db_exec(db, SETTINGS_SAVE_SQL, &p, NULL);
}

status_t member_tag_rules_save(db_t *db, arena_t *a, const char *merchant_id,
                               const member_tag_rules_t *rules, bool *changed, bool *pending) {
    char **texts = arena_alloc(a, (size_t)(rules->n ? rules->n : 1) * sizeof *texts);
    for (int i = 0; i < rules->n; i++) {
        texts[i] = member_tags_encode(a, &rules->r[i]);
    }
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text_array(&p, a, texts, (size_t)rules->n);
    PGresult *r = NULL;
    /* Unchanged rules write nothing (no audit row, no walk); the answer says whether a walk is
     * under way either way. */
    status_t st = db_exec(
        db,
        "WITH upd AS (UPDATE settings SET tag_rules = $2::text[], resegment_after = '', "
        " updated_at = now() WHERE merchant_id = $1 AND tag_rules IS DISTINCT FROM $2::text[] "
        " RETURNING 1) "
        "SELECT EXISTS (SELECT 1 FROM upd), "
        " EXISTS (SELECT 1 FROM upd) OR (SELECT resegment_after IS NOT NULL FROM settings "
        "  WHERE merchant_id = $1)",
        &p, &r);
    if (status_is_ok(&st)) {
        *changed = db_get_bool(r, 0, 0);
        *pending = !db_is_null(r, 0, 1) && db_get_bool(r, 0, 1);
        PQclear(r);
    }
    return st;
}

status_t member_reeval_pending(db_t *db, const char *merchant_id, bool *pending) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "SELECT EXISTS (SELECT 1 FROM settings WHERE merchant_id = $1 "
                          " AND resegment_after IS NOT NULL)",
                          &p, &r);
    if (status_is_ok(&st)) {
        *pending = db_get_bool(r, 0, 0);
        PQclear(r);
    }
    return st;
}

status_t member_time_zone_known(db_t *db, const char *tz, bool *known) {
    return db_time_zone_known(db, tz, known);
}

// clang-format off
static const char RFM_REFRESH_SQL[] =
    "UPDATE settings s SET rfm_recency = q.r, rfm_frequency = q.f, rfm_monetary = q.m, "
    " rfm_computed_at = now() "
    "FROM (SELECT "
    "  percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP "
    "   (ORDER BY " SQL_EPOCH_S("last_order_at") ") AS r, "
    "  percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY order_count) AS f, "
    "  percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP "
    "   (ORDER BY total_spend_cents) AS m "
    " FROM members WHERE merchant_id = $1 AND order_count > 0) q "
    "WHERE s.merchant_id = $1";
// clang-format on

status_t member_rfm_refresh(db_t *db, const char *merchant_id) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    /* One pass over the merchant's buying members; percentile_disc picks actual values, so a
     * score compares a member with real members. */
    return db_exec(db, RFM_REFRESH_SQL, &p, NULL);
}

/* ---- background claims ---- */

/* The first column of a one-row result as an arena string, or NULL without a row. */
static char *claim_col(arena_t *a, const PGresult *r, int c) {
    return PQntuples(r) == 1 ? db_dup_str(a, r, 0, c) : NULL;
}

status_t member_reseg_claim(db_t *db, arena_t *a, char **merchant_id, char **after_id) {
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "SELECT merchant_id, resegment_after FROM settings "
                          "WHERE resegment_after IS NOT NULL LIMIT 1 FOR UPDATE SKIP LOCKED",
                          NULL, &r);
    if (status_is_ok(&st)) {
        *merchant_id = claim_col(a, r, 0);
        *after_id = claim_col(a, r, 1);
        PQclear(r);
    }
    return st;
}

status_t member_rfm_claim(db_t *db, arena_t *a, int64_t every_s, char **merchant_id) {
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, every_s);
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "SELECT merchant_id FROM settings WHERE rfm_computed_at IS NULL "
                          " OR rfm_computed_at < now() - make_interval(secs => $1) "
                          "LIMIT 1 FOR UPDATE SKIP LOCKED",
                          &p, &r);
    if (status_is_ok(&st)) {
        *merchant_id = claim_col(a, r, 0);
        PQclear(r);
    }
    return st;
}

status_t member_reseg_advance(db_t *db, const char *merchant_id, const char *last_id) {
    db_params_t p;
    db_params_key(&p, merchant_id, last_id);
    return db_exec(db, "UPDATE settings SET resegment_after = $2 WHERE merchant_id = $1", &p, NULL);
}

/* ---- tiers ---- */

// clang-format off
#define TIER_COLUMNS                                                                               \
    "id, name, rank, upgrade_threshold, retain_threshold, period_months, express_spend_cents, "    \
    "discount_bps, earn_multiplier_bps, birthday_bonus_points, "                                   \
    SQL_EPOCH_S("created_at") ", " SQL_EPOCH_S("updated_at")
// clang-format on
static const db_col_t TIER_COL_TABLE[] = {
    DB_COL(DB_COL_TEXT, member_tier_def_t, id),
    DB_COL(DB_COL_TEXT, member_tier_def_t, name),
    DB_COL(DB_COL_INT, member_tier_def_t, rank),
    DB_COL(DB_COL_INT, member_tier_def_t, upgrade_threshold),
    DB_COL(DB_COL_INT, member_tier_def_t, retain_threshold),
    DB_COL(DB_COL_INT, member_tier_def_t, period_months),
    DB_COL(DB_COL_INT, member_tier_def_t, express_spend_cents),
    DB_COL(DB_COL_INT, member_tier_def_t, discount_bps),
    DB_COL(DB_COL_INT, member_tier_def_t, earn_multiplier_bps),
    DB_COL(DB_COL_INT, member_tier_def_t, birthday_bonus_points),
    DB_COL(DB_COL_INT, member_tier_def_t, created_at),
    DB_COL(DB_COL_INT, member_tier_def_t, updated_at),
};
static const db_cols_t TIER_COLS = DB_COLS(TIER_COL_TABLE);

void member_tierset_index(member_tierset_t *ts) {
    /* Sort the defs by rank (insertion sort: n <= 10), then mirror them in the ladder. */
    for (int i = 1; i < ts->n; i++) {
        member_tier_def_t t = ts->defs[i];
        int k = i;
        while (k > 0 && ts->defs[k - 1].rank > t.rank) {
            ts->defs[k] = ts->defs[k - 1];
            k--;
        }
        ts->defs[k] = t;
    }
    ts->ladder.n = ts->n;
    for (int i = 0; i < ts->n; i++) {
        const member_tier_def_t *d = &ts->defs[i];
        ts->ladder.tiers[i] = (member_tier_rule_t){
            .rank = d->rank,
            .upgrade_threshold = d->upgrade_threshold,
            .retain_threshold = d->retain_threshold,
            .period_months = d->period_months,
            .express_spend_cents = d->express_spend_cents,
            .ref = i,
        };
    }
}

static const char TIERS_SQL[] = "SELECT " TIER_COLUMNS " FROM tiers WHERE merchant_id = $1 "
                                "ORDER BY rank";

static status_t tiers_from_result(arena_t *a, const PGresult *r, member_tierset_t *out) {
    memset(out, 0, sizeof *out);
    int n = PQntuples(r);
    assert(n <= MEMBER_TIERS_MAX); /* the ladder check keeps it so */
    for (int i = 0; i < n && i < MEMBER_TIERS_MAX; i++) {
        status_t st = db_cols_read(a, &TIER_COLS, r, i, &out->defs[i]);
        if (!status_is_ok(&st)) {
            return st;
        }
        out->n++;
    }
    member_tierset_index(out);
    return status_ok();
}

status_t member_tiers_load(db_t *db, arena_t *a, const char *merchant_id, bool for_update,
                           member_tierset_t *out) {
    memset(out, 0, sizeof *out);
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          for_update ? "SELECT " TIER_COLUMNS " FROM tiers WHERE merchant_id = $1 "
                                       "ORDER BY rank FOR UPDATE"
                                     : TIERS_SQL,
                          &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    st = tiers_from_result(a, r, out);
    PQclear(r);
    return st;
}

int member_tierset_level(const member_tierset_t *ts, const char *tier_id) {
    if (tier_id == NULL || tier_id[0] == '\0') {
        return 0;
    }
    for (int i = 0; i < ts->n; i++) {
        if (strcmp(ts->defs[i].id, tier_id) == 0) {
            return i + 1;
        }
    }
    return 0;
}

const char *member_tierset_id(const member_tierset_t *ts, int level) {
    return level > 0 && level <= ts->n ? ts->defs[level - 1].id : "";
}

static void tier_params(db_params_t *p, const char *merchant_id, const member_tier_def_t *t) {
    DB_PARAM_TEXTS(p, merchant_id, t->id, t->name);
    db_param_int(p, t->rank);
    db_param_int(p, t->upgrade_threshold);
    db_param_int(p, t->retain_threshold);
    db_param_int(p, t->period_months);
    db_param_int(p, t->express_spend_cents);
    db_param_int(p, t->discount_bps);
    db_param_int(p, t->earn_multiplier_bps);
    db_param_int(p, t->birthday_bonus_points);
}

status_t member_tier_insert(db_t *db, const char *merchant_id, const member_tier_def_t *t) {
    db_params_t p;
    db_params_init(&p);
    tier_params(&p, merchant_id, t);
    return db_exec(db,
                   "INSERT INTO tiers (merchant_id, id, name, rank, upgrade_threshold, "
                   " retain_threshold, period_months, express_spend_cents, discount_bps, "
                   " earn_multiplier_bps, birthday_bonus_points) "
                   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                   &p, NULL);
}

status_t member_tier_update(db_t *db, const char *merchant_id, const member_tier_def_t *t) {
    db_params_t p;
    db_params_init(&p);
    tier_params(&p, merchant_id, t);
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "UPDATE tiers SET name = $3, rank = $4, upgrade_threshold = $5, "
                          " retain_threshold = $6, period_months = $7, express_spend_cents = $8, "
                          " discount_bps = $9, earn_multiplier_bps = $10, "
                          " birthday_bonus_points = $11, updated_at = now() "
                          "WHERE merchant_id = $1 AND id = $2",
                          &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    bool found = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    return found ? status_ok()
                 : status_make(STATUS_NOT_FOUND, REASON_TIER_NOT_FOUND, "tier not found");
}

/* ---- plans ---- */

// clang-format off
#define PLAN_COLUMNS                                                                               \
    "id, name, tier_id, period, price_cents, active, " SQL_EPOCH_S("created_at") ", "     \
    SQL_EPOCH_S("updated_at")
// clang-format on
static const db_col_t PLAN_COL_TABLE[] = {
    DB_FIELD(DB_COL_TEXT, "id"),         DB_FIELD(DB_COL_TEXT, "name"),
    DB_FIELD(DB_COL_TEXT, "tier_id"),    DB_FIELD(DB_COL_INT, "period"),
    DB_FIELD(DB_COL_INT, "price_cents"), DB_FIELD(DB_COL_BOOL, "active"),
    DB_FIELD(DB_COL_INT, "created_at"),  DB_FIELD(DB_COL_INT, "updated_at"),
};
static const db_cols_t PLAN_COLS =
    DB_COLS_MESSAGE(PLAN_COL_TABLE, &loyalty__v1__member_plan__descriptor);

static status_t plan_one(db_t *db, arena_t *a, const char *sql, const db_params_t *p,
                         Loyalty__V1__MemberPlan **out) {
    status_t st = db_row_get_cols(db, a, sql, p, &PLAN_COLS, out, STATUS_NOT_FOUND,
                                  REASON_PLAN_NOT_FOUND, "plan not found");
    if (st.code == STATUS_FAILED_PRECONDITION) { /* the tier foreign key */
        return status_make(STATUS_NOT_FOUND, REASON_TIER_NOT_FOUND, "tier not found");
    }
    return st;
}

static void plan_params(db_params_t *p, const char *merchant_id,
                        const Loyalty__V1__MemberPlan *plan) {
    DB_PARAM_TEXTS(p, merchant_id, plan->id, plan->name, plan->tier_id);
    db_param_int(p, plan->period);
    db_param_int(p, plan->price_cents);
    db_param_bool(p, plan->active);
}

status_t member_plan_insert(db_t *db, arena_t *a, const char *merchant_id,
                            const Loyalty__V1__MemberPlan *plan, Loyalty__V1__MemberPlan **out) {
    db_params_t p;
    db_params_init(&p);
    plan_params(&p, merchant_id, plan);
    return plan_one(db, a,
                    "INSERT INTO plans (merchant_id, id, name, tier_id, period, price_cents, "
                    " active) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING " PLAN_COLUMNS,
                    &p, out);
}

status_t member_plan_update(db_t *db, arena_t *a, const char *merchant_id,
                            const Loyalty__V1__MemberPlan *plan, Loyalty__V1__MemberPlan **out) {
    db_params_t p;
    db_params_init(&p);
    plan_params(&p, merchant_id, plan);
    return plan_one(db, a,
                    "UPDATE plans SET name = $3, tier_id = $4, period = $5, price_cents = $6, "
                    " active = $7, updated_at = now() WHERE merchant_id = $1 AND id = $2 "
                    "RETURNING " PLAN_COLUMNS,
                    &p, out);
}

status_t member_plan_get(db_t *db, arena_t *a, const char *merchant_id, const char *plan_id,
                         Loyalty__V1__MemberPlan **out) {
    db_params_t p;
    db_params_key(&p, merchant_id, plan_id);
    return plan_one(db, a, "SELECT " PLAN_COLUMNS " FROM plans WHERE merchant_id = $1 AND id = $2",
                    &p, out);
}

status_t member_plan_list(db_t *db, arena_t *a, const char *merchant_id, bool include_inactive,
                          Loyalty__V1__MemberPlan ***out, size_t *n) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_bool(&p, include_inactive);
    db_rows_t rows = {.item_size = sizeof **out};
    status_t st = db_rows_cols(db, a,
                               "SELECT " PLAN_COLUMNS " FROM plans WHERE merchant_id = $1 "
                               " AND (active OR $2) ORDER BY created_at, id LIMIT 1000",
                               &p, &PLAN_COLS, &rows);
    *out = rows.items;
    *n = rows.n;
    return st;
}

/* ---- member rows ---- */

#define ROW_COLUMNS MEMBER_ROW_COLUMNS

#define ROW_MERCHANT_COLUMN 27

/* MEMBER_ROW_COLUMNS (member_store_state.h), one entry per column in its order. */
static const db_col_t MEMBER_ROW_COL_TABLE[MEMBER_ROW_COLUMN_COUNT] = {
    DB_COL(DB_COL_TEXT, member_row_t, id),
    DB_COL(DB_COL_INT, member_row_t, created_at),
    DB_COL(DB_COL_TEXT, member_row_t, tier_id),
    DB_COL(DB_COL_TEXT, member_row_t, base_tier_id),
    DB_COL(DB_COL_TEXT, member_row_t, express_tier_id),
    DB_COL(DB_COL_INT, member_row_t, period_value),
    DB_COL(DB_COL_INT, member_row_t, period_seq),
    DB_COL_OR(member_row_t, period_start, 0),
    DB_COL_OR(member_row_t, period_end, MEMBER_DAY_NONE),
    DB_COL(DB_COL_INT, member_row_t, card_kind),
    DB_COL(DB_COL_TEXT, member_row_t, card_tier_id),
    DB_COL(DB_COL_TEXT, member_row_t, card_plan_id),
    DB_COL_OR(member_row_t, card_valid_from, 0),
    DB_COL_OR(member_row_t, card_valid_to, MEMBER_DAY_NONE),
    DB_COL(DB_COL_TEXT, member_row_t, card_reason),
    DB_COL(DB_COL_TEXT, member_row_t, effective_tier_id),
    DB_COL(DB_COL_INT, member_row_t, effective_kind),
    DB_COL(DB_COL_INT, member_row_t, order_count),
    DB_COL(DB_COL_INT, member_row_t, total_spend_cents),
    DB_COL(DB_COL_INT, member_row_t, total_growth),
    DB_COL(DB_COL_INT, member_row_t, first_order_at),
    DB_COL(DB_COL_INT, member_row_t, last_order_at),
    DB_COL(DB_COL_INT, member_row_t, months_with_purchases),
    DB_COL(DB_COL_INT, member_row_t, segment),
    DB_COL(DB_COL_INT, member_row_t, segment_since),
    DB_COL(DB_COL_INT, member_row_t, tier_due_at),
    DB_COL(DB_COL_INT, member_row_t, segment_due_at),
    DB_COL_SKIPPED, /* merchant_id (member_due_lock reads it) */
    DB_COL_ARRAY(DB_COL_TEXT_ARRAY, member_row_t, auto_tags, n_auto_tags),
    DB_COL(DB_COL_INT, member_row_t, points_balance),
    DB_COL(DB_COL_INT, member_row_t, points_version),
};
const db_cols_t MEMBER_ROW_COLS = DB_COLS(MEMBER_ROW_COL_TABLE);

status_t member_row_from_result(arena_t *a, const PGresult *r, int i, int c0, member_row_t *m) {
    db_cols_t cols = MEMBER_ROW_COLS;
    cols.first = c0;
    return db_cols_read(a, &cols, r, i, m);
}

status_t member_rows_learn_points_unruled(db_t *db, arena_t *a, const char *merchant_id,
                                          char *const *member_ids, const int64_t *balances,
                                          const int64_t *versions, size_t n, bool *ruled) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text(&p, pgarray_encode(a, member_ids, n));
    db_param_text(&p, pgarray_encode_int64(a, balances, n));
    db_param_text(&p, pgarray_encode_int64(a, versions, n));
    PGresult *r = NULL;
    /* A rule is stored as "points_balance >= 5000 points rich" (member_tags.c). The newest
     * balance of each member is taken; the rows are locked in id order as strcmp sorts (COLLATE
     * "C"), the order the consumer's replicas and the merged batches of RecordOrder lock them
     * in, so that none of them can deadlock another. "m.id = ANY ($2)" gives the planner the
     * members' key: joined to unnest() alone, the generic plan hashed a scan of every member of
     * the merchant. */
    // clang-format off
    status_t st = db_exec_row(db,
        "WITH s AS (SELECT EXISTS (SELECT FROM settings, unnest(tag_rules) AS t(rule) "
        " WHERE merchant_id = $1 AND rule LIKE 'points\\_balance %') AS ruled), "
        "v AS (SELECT DISTINCT ON (id) id, balance, version "
        " FROM unnest($2::text[], $3::bigint[], $4::bigint[]) AS v(id, balance, version) "
        " ORDER BY id, version DESC), "
        "l AS (SELECT m.id, v.balance, v.version FROM members m JOIN v ON m.id = v.id "
        " WHERE m.merchant_id = $1 AND m.id = ANY ($2::text[]) AND m.points_version < v.version "
        " AND NOT (SELECT ruled FROM s) ORDER BY m.id COLLATE \"C\" FOR UPDATE OF m), "
        "u AS (UPDATE members m SET points_balance = l.balance, points_version = l.version "
        " FROM l WHERE m.merchant_id = $1 AND m.id = ANY ($2::text[]) AND m.id = l.id "
        " RETURNING 1) "
        "SELECT ruled, (SELECT count(*) FROM u) FROM s",
        &p, &r, STATUS_INTERNAL, REASON_DATABASE_ERROR, "no answer");
    // clang-format on
    if (!status_is_ok(&st)) {
        return st;
    }
    *ruled = db_get_bool(r, 0, 0);
    PQclear(r);
    return status_ok();
}

status_t member_row_learn_points_unruled(db_t *db, arena_t *a, const char *merchant_id,
                                         const char *member_id, int64_t balance, int64_t version,
                                         bool *ruled) {
    char *ids[] = {(char *)member_id};
    return member_rows_learn_points_unruled(db, a, merchant_id, ids, &balance, &version, 1, ruled);
}

bool member_row_learn_points(member_row_t *row, int64_t balance, int64_t version) {
    return member_tags_learn_points(&row->points_balance, &row->points_version, balance, version);
}

status_t member_row_get(db_t *db, arena_t *a, const char *merchant_id, const char *member_id,
                        bool for_update, member_row_t *out) {
    db_params_t p;
    db_params_key(&p, merchant_id, member_id);
    return db_row_get_cols(db, a,
                           for_update ? "SELECT " ROW_COLUMNS " FROM members "
                                        "WHERE merchant_id = $1 AND id = $2 FOR UPDATE"
                                      : "SELECT " ROW_COLUMNS " FROM members "
                                        "WHERE merchant_id = $1 AND id = $2",
                           &p, &MEMBER_ROW_COLS, out, STATUS_NOT_FOUND, REASON_MEMBER_NOT_FOUND,
                           "member not found");
}

/* The whole state row: $1 merchant, $2 member, $3..$30 as member_row_save appends them. */
// clang-format off
static const char MEMBER_ROW_SAVE_SQL[] =
    "UPDATE members SET tier_id = nullif($3, ''), base_tier_id = nullif($4, ''), "
    " express_tier_id = nullif($5, ''), period_value = $6, period_seq = $7, "
    " period_start = " SQL_DATE_OF_DAY("$8") ", period_end = " SQL_DATE_OF_DAY("$9") ", "
    " card_kind = $10, card_tier_id = nullif($11, ''), card_plan_id = nullif($12, ''), "
    " card_valid_from = " SQL_DATE_OF_DAY("$13") ", "
    " card_valid_to = " SQL_DATE_OF_DAY("$14") ", "
    " card_reason = $15, effective_tier_id = nullif($16, ''), effective_kind = $17, "
    " order_count = $18, total_spend_cents = $19, total_growth = $20, "
    " first_order_at = to_timestamp($21), last_order_at = to_timestamp($22), "
    " months_with_purchases = $23, segment = $24, segment_since = to_timestamp($25), "
    " tier_due_at = " SQL_DATE_OF_DAY("$26") "::timestamp AT TIME ZONE $28, "
    " segment_due_at = to_timestamp($27), auto_tags = $29::text[], points_balance = $30, "
    " points_version = $31 "
    "WHERE merchant_id = $1 AND id = $2";
// clang-format on

status_t member_row_save(db_t *db, arena_t *a, const char *merchant_id, const char *tz,
                         const member_row_t *m, int64_t tier_due_day) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);        /* 1 */
    db_param_text(&p, m->id);              /* 2 */
    db_param_text(&p, m->tier_id);         /* 3 */
    db_param_text(&p, m->base_tier_id);    /* 4 */
    db_param_text(&p, m->express_tier_id); /* 5 */
    db_param_int(&p, m->period_value);     /* 6 */
    db_param_int(&p, m->period_seq);       /* 7 */
    db_param_int(&p, m->period_start);     /* 8 */
    param_day(&p, m->period_end);          /* 9 */
    db_param_int(&p, m->card_kind);        /* 10 */
    db_param_text(&p, m->card_tier_id);    /* 11 */
    db_param_text(&p, m->card_plan_id);    /* 12 */
    if (m->card_kind == MEMBER_CARD(UNSPECIFIED)) {
        db_param_null(&p); /* 13 */
        db_param_null(&p); /* 14 */
    } else {
        db_param_int(&p, m->card_valid_from);
        param_day(&p, m->card_valid_to);
    }
    db_param_text(&p, m->card_reason);                        /* 15 */
    db_param_text(&p, m->effective_tier_id);                  /* 16 */
    db_param_int(&p, m->effective_kind);                      /* 17 */
    db_param_int(&p, m->order_count);                         /* 18 */
    db_param_int(&p, m->total_spend_cents);                   /* 19 */
    db_param_int(&p, m->total_growth);                        /* 20 */
    param_instant(&p, m->first_order_at);                     /* 21 */
    param_instant(&p, m->last_order_at);                      /* 22 */
    db_param_int(&p, m->months_with_purchases);               /* 23 */
    db_param_int(&p, m->segment);                             /* 24 */
    db_param_int(&p, m->segment_since);                       /* 25 */
    param_day(&p, tier_due_day);                              /* 26 */
    param_instant(&p, m->segment_due_at);                     /* 27 */
    db_param_text(&p, tz);                                    /* 28 */
    db_param_text_array(&p, a, m->auto_tags, m->n_auto_tags); /* 29 */
    db_param_int(&p, m->points_balance);                      /* 30 */
    db_param_int(&p, m->points_version);                      /* 31 */
    /* Deferred: the row travels with the transaction's next statement or its COMMIT. */
    return db_exec_deferred(db, MEMBER_ROW_SAVE_SQL, &p, NULL);
}

status_t member_due_lock(db_t *db, arena_t *a, const char *merchant_id, int64_t as_of, int limit,
                         member_row_t **rows, char ***merchants, int *n) {
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, as_of);
    db_param_int(&p, limit);
    PGresult *r = NULL;
    status_t st;
    if (merchant_id != NULL) {
        db_param_text(&p, merchant_id);
        st = db_exec(db,
                     "SELECT " ROW_COLUMNS " FROM members WHERE merchant_id = $3 "
                     " AND maintenance_due_at <= to_timestamp($1) "
                     "ORDER BY maintenance_due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                     &p, &r);
    } else {
        st = db_exec(db,
                     "SELECT " ROW_COLUMNS " FROM members "
                     "WHERE maintenance_due_at <= to_timestamp($1) "
                     "ORDER BY maintenance_due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                     &p, &r);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    *n = PQntuples(r);
    *rows = arena_alloc(a, (size_t)(*n ? *n : 1) * sizeof **rows);
    *merchants = arena_alloc(a, (size_t)(*n ? *n : 1) * sizeof **merchants);
    for (int i = 0; i < *n && status_is_ok(&st); i++) {
        st = db_cols_read(a, &MEMBER_ROW_COLS, r, i, &(*rows)[i]);
        (*merchants)[i] = db_dup_str(a, r, i, ROW_MERCHANT_COLUMN);
    }
    PQclear(r);
    return st;
}

status_t member_reseg_rows(db_t *db, arena_t *a, const char *merchant_id, const char *after_id,
                           int limit, member_row_t **rows, int *n) {
    db_params_t p;
    db_params_key(&p, merchant_id, after_id);
    db_param_int(&p, limit);
    db_rows_t read = {.item_size = sizeof **rows};
    status_t st =
        db_rows_cols(db, a,
                     "SELECT " ROW_COLUMNS " FROM members WHERE merchant_id = $1 AND id > $2 "
                     "ORDER BY id LIMIT $3 FOR UPDATE",
                     &p, &MEMBER_ROW_COLS, &read);
    *rows = read.items;
    *n = (int)read.n;
    return st;
}

/* ---- orders ---- */

// clang-format off
#define ORDER_COLUMNS                                                                              \
    "order_id, member_id, spend_cents, growth_delta, returned_spend_cents, returned_growth, "      \
    "fully_returned, period_seq, " SQL_EPOCH_S("ordered_at") ", "                         \
    "local_month - " SQL_DAY_ZERO ", coalesce(old_tier_id, ''), coalesce(new_tier_id, ''), reason"
// clang-format on

static const db_col_t ORDER_COL_TABLE[] = {
    DB_COL(DB_COL_TEXT, member_order_t, order_id),
    DB_COL(DB_COL_TEXT, member_order_t, member_id),
    DB_COL(DB_COL_INT, member_order_t, spend_cents),
    DB_COL(DB_COL_INT, member_order_t, growth_delta),
    DB_COL(DB_COL_INT, member_order_t, returned_spend_cents),
    DB_COL(DB_COL_INT, member_order_t, returned_growth),
    DB_COL(DB_COL_BOOL, member_order_t, fully_returned),
    DB_COL(DB_COL_INT, member_order_t, period_seq),
    DB_COL(DB_COL_INT, member_order_t, ordered_at),
    DB_COL(DB_COL_INT, member_order_t, local_month),
    DB_COL(DB_COL_TEXT, member_order_t, old_tier_id),
    DB_COL(DB_COL_TEXT, member_order_t, new_tier_id),
    DB_COL(DB_COL_INT, member_order_t, reason),
};
static const db_cols_t ORDER_COLS = DB_COLS(ORDER_COL_TABLE);

#define ORDER_SQL "SELECT " ORDER_COLUMNS " FROM orders WHERE merchant_id = $1 AND order_id = $2"
#define ROW_LOCK_SQL                                                                               \
    "SELECT " ROW_COLUMNS " FROM members WHERE merchant_id = $1 AND id = $2 FOR UPDATE"

status_t member_order_get(db_t *db, arena_t *a, const char *merchant_id, const char *order_id,
                          bool for_update, member_order_t *out) {
    db_params_t p;
    db_params_key(&p, merchant_id, order_id);
    return db_row_get_cols(db, a, for_update ? ORDER_SQL " FOR UPDATE" : ORDER_SQL, &p, &ORDER_COLS,
                           out, STATUS_NOT_FOUND, REASON_ORDER_NOT_FOUND, "order not recorded");
}

status_t member_order_reads(db_t *db, arena_t *a, const char *merchant_id, const char *member_id,
                            const char *order_id, int64_t now_s, int64_t at_s,
                            member_order_reads_t *out) {
    db_params_t ps, pt, pr, po;
    settings_params(&ps, merchant_id, now_s, at_s);
    db_params_init(&pt);
    db_param_text(&pt, merchant_id);
    db_params_key(&pr, merchant_id, member_id);
    db_params_key(&po, merchant_id, order_id);
    /* In this order on the server: the order is read once the member's lock is held. */
    db_exec_item_t q[4] = {{.sql = SETTINGS_SQL, .params = &ps},
                           {.sql = TIERS_SQL, .params = &pt},
                           {.sql = ROW_LOCK_SQL, .params = &pr},
                           {.sql = ORDER_SQL, .params = &po}};
    status_t st = db_exec_all(db, q, 4);
    if (!status_is_ok(&st)) {
        return st;
    }
    st = settings_from_result(q[0].out, &out->settings, &out->today, &out->at_day);
    if (status_is_ok(&st)) {
        st = tiers_from_result(a, q[1].out, &out->tiers);
    }
    if (status_is_ok(&st) && PQntuples(q[2].out) != 1) {
        st = status_make(STATUS_NOT_FOUND, REASON_MEMBER_NOT_FOUND, "member not found");
    } else if (status_is_ok(&st)) {
        st = db_cols_read(a, &MEMBER_ROW_COLS, q[2].out, 0, &out->row);
    }
    out->order_found = PQntuples(q[3].out) == 1;
    if (out->order_found && status_is_ok(&st)) {
        st = db_cols_read(a, &ORDER_COLS, q[3].out, 0, &out->order);
    }
    for (int i = 0; i < 4; i++) {
        PQclear(q[i].out);
    }
    return st;
}

status_t member_order_insert(db_t *db, const char *merchant_id, const member_order_t *o) {
    db_params_t p;
    db_params_key(&p, merchant_id, o->order_id);
    db_param_text(&p, o->member_id);
    db_param_int(&p, o->spend_cents);
    db_param_int(&p, o->growth_delta);
    db_param_int(&p, o->period_seq);
    db_param_int(&p, o->ordered_at);
    db_param_int(&p, o->local_month);
    db_param_text(&p, o->old_tier_id);
    db_param_text(&p, o->new_tier_id);
    db_param_int(&p, o->reason);
    db_expect_t new_order = {.rows = -1,
                             .constraint = "orders_pkey",
                             .refusal =
                                 status_make(STATUS_ALREADY_EXISTS, REASON_ORDER_ALREADY_RECORDED,
                                             "order already recorded with other figures")};
    // clang-format off
    return db_exec_deferred(db,
                            "INSERT INTO orders (merchant_id, order_id, member_id, spend_cents, "
                            " growth_delta, period_seq, ordered_at, local_month, old_tier_id, "
                            " new_tier_id, reason) "
                            "VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7), "
                            " " SQL_DATE_OF_DAY("$8") ", nullif($9, ''), nullif($10, ''), $11)",
                            &p, &new_order);
    // clang-format on
}

status_t member_order_set_returned(db_t *db, const char *merchant_id, const member_order_t *o) {
    db_params_t p;
    db_params_key(&p, merchant_id, o->order_id);
    db_param_int(&p, o->returned_spend_cents);
    db_param_int(&p, o->returned_growth);
    db_param_bool(&p, o->fully_returned);
    return db_exec(db,
                   "UPDATE orders SET returned_spend_cents = $3, returned_growth = $4, "
                   " fully_returned = $5 WHERE merchant_id = $1 AND order_id = $2",
                   &p, NULL);
}

status_t member_order_max_spend(db_t *db, const char *merchant_id, const char *member_id,
                                int32_t seq, int64_t *out) {
    db_params_t p;
    db_params_key(&p, merchant_id, member_id);
    db_param_int(&p, seq);
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "SELECT coalesce(max(spend_cents - returned_spend_cents), 0) "
                          "FROM orders WHERE merchant_id = $1 AND member_id = $2 "
                          " AND period_seq = $3",
                          &p, &r);
    if (status_is_ok(&st)) {
        *out = db_get_int(r, 0, 0);
        PQclear(r);
    }
    return st;
}

status_t member_order_first_last(db_t *db, const char *merchant_id, const char *member_id,
                                 int64_t *first_at, int64_t *last_at) {
    db_params_t p;
    db_params_key(&p, merchant_id, member_id);
    PGresult *r = NULL;
    // clang-format off
    status_t st = db_exec(db,
                          "SELECT " SQL_EPOCH_S_OR_0("min(ordered_at)") ", "
                          " " SQL_EPOCH_S_OR_0("max(ordered_at)") " "
                          "FROM orders WHERE merchant_id = $1 AND member_id = $2 "
                          " AND NOT fully_returned",
                          &p, &r);
    // clang-format on
    if (status_is_ok(&st)) {
        *first_at = db_get_int(r, 0, 0);
        *last_at = db_get_int(r, 0, 1);
        PQclear(r);
    }
    return st;
}

status_t member_month_add(db_t *db, const char *merchant_id, const char *member_id,
                          int64_t month_day, int delta, int *months_delta) {
    assert(delta == 1 || delta == -1);
    db_params_t p;
    db_params_key(&p, merchant_id, member_id);
    db_param_int(&p, month_day);
    PGresult *r = NULL;
    status_t st;
    if (delta > 0) {
        // clang-format off
        st = db_exec(db,
                     "INSERT INTO order_months AS o (merchant_id, member_id, month, orders) "
                     "VALUES ($1, $2, " SQL_DATE_OF_DAY("$3") ", 1) "
                     "ON CONFLICT (merchant_id, member_id, month) "
                     "DO UPDATE SET orders = o.orders + 1 RETURNING orders",
                     &p, &r);
        // clang-format on
    } else {
        // clang-format off
        st = db_exec(db,
                     "UPDATE order_months SET orders = orders - 1 "
                     "WHERE merchant_id = $1 AND member_id = $2 "
                     " AND month = " SQL_DATE_OF_DAY("$3") " "
                     " AND orders > 0 RETURNING orders",
                     &p, &r);
        // clang-format on
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    int64_t orders = PQntuples(r) == 1 ? db_get_int(r, 0, 0) : -1;
    PQclear(r);
    *months_delta = 0;
    if (delta > 0 && orders == 1) {
        *months_delta = 1;
    } else if (delta < 0 && orders == 0) {
        *months_delta = -1;
        // clang-format off
        st = db_exec(db,
                     "DELETE FROM order_months WHERE merchant_id = $1 AND member_id = $2 "
                     " AND month = " SQL_DATE_OF_DAY("$3"),
                     &p, NULL);
        // clang-format on
    }
    return st;
}

/* ---- card purchases ---- */

status_t member_purchase_get(db_t *db, arena_t *a, const char *merchant_id, const char *order_id,
                             member_purchase_t *out) {
    db_params_t p;
    db_params_key(&p, merchant_id, order_id);
    static const db_col_t cols[] = {
        DB_COL(DB_COL_TEXT, member_purchase_t, order_id),
        DB_COL(DB_COL_TEXT, member_purchase_t, member_id),
        DB_COL(DB_COL_TEXT, member_purchase_t, plan_id),
        DB_COL(DB_COL_INT, member_purchase_t, quantity),
        DB_COL(DB_COL_INT, member_purchase_t, valid_from),
        DB_COL(DB_COL_INT, member_purchase_t, valid_to),
    };
    static const db_cols_t purchase = DB_COLS(cols);
    return db_row_get_cols(
        db, a,
        "SELECT order_id, member_id, plan_id, quantity, valid_from - " SQL_DAY_ZERO
        ", valid_to - " SQL_DAY_ZERO " FROM card_purchases "
        "WHERE merchant_id = $1 AND order_id = $2",
        &p, &purchase, out, STATUS_NOT_FOUND, REASON_ORDER_NOT_FOUND, "no purchase for this order");
}

status_t member_purchase_insert(db_t *db, const char *merchant_id, const member_purchase_t *pu) {
    db_params_t p;
    db_params_key(&p, merchant_id, pu->order_id);
    db_param_text(&p, pu->member_id);
    db_param_text(&p, pu->plan_id);
    db_param_int(&p, pu->quantity);
    db_param_int(&p, pu->valid_from);
    db_param_int(&p, pu->valid_to);
    // clang-format off
    status_t st = db_exec(db,
                          "INSERT INTO card_purchases (merchant_id, order_id, member_id, plan_id, "
                          " quantity, valid_from, valid_to) "
                          "VALUES ($1, $2, $3, $4, $5, "
                          " " SQL_DATE_OF_DAY("$6") ", " SQL_DATE_OF_DAY("$7") ")",
                          &p, NULL);
    // clang-format on
    if (st.code == STATUS_ALREADY_EXISTS) {
        return status_make(STATUS_ALREADY_EXISTS, REASON_ORDER_ALREADY_RECORDED,
                           "order already recorded for another purchase");
    }
    return st;
}

/* ---- tier history ---- */

status_t member_history_insert(db_t *db, const char *merchant_id, const member_history_t *h) {
    char id[ID_MAX];
    id_generate("tch", id);
    db_params_t p;
    db_params_key(&p, merchant_id, h->member_id);
    DB_PARAM_TEXTS(&p, id, h->from_tier_id, h->to_tier_id, h->earned_tier_id);
    db_param_int(&p, h->reason);
    db_param_int(&p, h->card_kind);
    db_param_text(&p, h->note ? h->note : "");
    db_param_text(&p, h->order_id ? h->order_id : "");
    db_param_int(&p, h->period_value);
    return db_exec_deferred(db,
                            "INSERT INTO tier_history (merchant_id, member_id, id, from_tier_id, "
                            " to_tier_id, earned_tier_id, reason, card_kind, note, order_id, "
                            " period_value) VALUES ($1, $2, $3, nullif($4, ''), nullif($5, ''), "
                            " nullif($6, ''), $7, $8, $9, $10, $11)",
                            &p, NULL);
}

/* One MemberTierChange from columns id, from, to, earned, reason, card_kind, note, order_id,
 * period_value, at, starting at column `c`; tier refs carry only the id (the caller names
 * them). */
// clang-format off
#define HISTORY_COLUMNS                                                                            \
    "id, coalesce(from_tier_id, ''), coalesce(to_tier_id, ''), coalesce(earned_tier_id, ''), "     \
    "reason, card_kind, note, order_id, period_value, " SQL_EPOCH_S("created_at")
// clang-format on
/* The three tier refs (columns 1..3) are messages of their own, made by history_from_row. */
static const db_col_t HISTORY_COL_TABLE[] = {
    DB_FIELD(DB_COL_TEXT, "id"),
    DB_COL_SKIPPED,
    DB_COL_SKIPPED,
    DB_COL_SKIPPED,
    DB_FIELD(DB_COL_INT, "reason"),
    DB_FIELD(DB_COL_INT, "card_kind"),
    DB_FIELD(DB_COL_TEXT, "note"),
    DB_FIELD(DB_COL_TEXT, "order_id"),
    DB_FIELD(DB_COL_INT, "period_value"),
    DB_FIELD(DB_COL_INT, "at"),
};

/* A tier ref carrying only its id (the caller names it). */
static Loyalty__V1__MemberTierRef *tier_ref(arena_t *a, const PGresult *r, int i, int c) {
    Loyalty__V1__MemberTierRef *t = pb_new(a, &loyalty__v1__member_tier_ref__descriptor);
    t->id = db_dup_str(a, r, i, c);
    return t;
}

/* One MemberTierChange from HISTORY_COLUMNS starting at column `c`. */
static status_t history_from_row(arena_t *a, const PGresult *r, int i, int c, const char *member_id,
                                 Loyalty__V1__MemberTierChange **out) {
    db_cols_t cols =
        DB_COLS_MESSAGE(HISTORY_COL_TABLE, &loyalty__v1__member_tier_change__descriptor);
    cols.first = c;
    status_t st = db_cols_read(a, &cols, r, i, out);
    if (!status_is_ok(&st)) {
        return st;
    }
    Loyalty__V1__MemberTierChange *h = *out;
    h->member_id = arena_strdup(a, member_id);
    h->from_tier = tier_ref(a, r, i, c + 1);
    h->to_tier = tier_ref(a, r, i, c + 2);
    h->earned_tier = tier_ref(a, r, i, c + 3);
    return status_ok();
}

/* A page of history rows and the cursor its last row leaves (MEMBER_SEQ_MAX bytes). */
typedef struct history_page {
    const char *member_id; /* the member of every row, or NULL: the row's first column */
    char *cursor;
} history_page_t;

/* member_id, created_at in microseconds (the cursor), HISTORY_COLUMNS. */
static status_t history_window_row(void *ctx, arena_t *a, const PGresult *r, int row, void *item) {
    history_page_t *page = ctx;
    snprintf(page->cursor, MEMBER_SEQ_MAX, "%s", db_get_str(r, row, 1));
    return history_from_row(a, r, row, 2, db_get_str(r, row, 0), item);
}

/* HISTORY_COLUMNS, seq (the cursor). */
static status_t history_list_row(void *ctx, arena_t *a, const PGresult *r, int row, void *item) {
    history_page_t *page = ctx;
    snprintf(page->cursor, MEMBER_SEQ_MAX, "%s", db_get_str(r, row, 10));
    return history_from_row(a, r, row, 0, page->member_id, item);
}

status_t member_history_window(db_t *db, arena_t *a, const char *merchant_id, int64_t from_at,
                               int64_t to_at, const char *after_at_us, const char *after_id,
                               int32_t limit, Loyalty__V1__MemberTierChange ***out, size_t *n,
                               char last_at_us[MEMBER_SEQ_MAX]) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_int(&p, from_at);
    db_param_int(&p, to_at);
    db_param_text(&p, after_at_us);
    db_param_text(&p, after_id);
    db_param_int(&p, limit);
    history_page_t page = {.cursor = last_at_us};
    page.cursor[0] = '\0';
    db_rows_t rows = {.item_size = sizeof **out};
    /* Keyset on (created_at, id) in microseconds, so that a page never skips or repeats. */
    // clang-format off
    status_t st = db_rows(
        db, a,
        "SELECT member_id, " SQL_EPOCH_US("created_at") ", " HISTORY_COLUMNS
        " FROM tier_history WHERE merchant_id = $1 "
        " AND created_at >= to_timestamp($2) AND created_at < to_timestamp($3) "
        " AND ($4 = '' OR (created_at, id) > (to_timestamp(nullif($4, '')::numeric / 1000000), "
        "$5)) "
        "ORDER BY created_at, id LIMIT $6",
        &p, history_window_row, &page, &rows);
    // clang-format on
    if (status_is_ok(&st)) {
        *out = rows.items;
        *n = rows.n;
    }
    return st;
}

status_t member_history_list(db_t *db, arena_t *a, const char *merchant_id, const char *member_id,
                             const char *after_seq, int32_t limit,
                             Loyalty__V1__MemberTierChange ***out, size_t *n,
                             char last_seq[MEMBER_SEQ_MAX]) {
    db_params_t p;
    db_params_key(&p, merchant_id, member_id);
    db_param_text(&p, after_seq);
    db_param_int(&p, limit);
    history_page_t page = {.member_id = member_id, .cursor = last_seq};
    page.cursor[0] = '\0';
    db_rows_t rows = {.item_size = sizeof **out};
    /* seq follows the order of a member's changes; the cursor is the last seq returned. */
    status_t st =
        db_rows(db, a,
                "SELECT " HISTORY_COLUMNS ", seq "
                "FROM tier_history WHERE merchant_id = $1 AND member_id = $2 "
                " AND ($3 = '' OR seq < nullif($3, '')::bigint) ORDER BY seq DESC LIMIT $4",
                &p, history_list_row, &page, &rows);
    if (status_is_ok(&st)) {
        *out = rows.items;
        *n = rows.n;
    }
    return st;
}

/* ---- counters ---- */

#define MEMBER_COUNT_SHARDS 8

int member_count_shard(const char *member_id) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *s = member_id; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return (int)(h % MEMBER_COUNT_SHARDS);
}

void member_counts_add(member_counts_t *c, int dim, const char *key, int shard, int64_t n) {
    if (n == 0) {
        return;
    }
    for (int i = 0; i < c->n; i++) {
        member_count_delta_t *d = &c->d[i];
        if (d->dim == dim && d->shard == shard && strcmp(d->key, key) == 0) {
            d->n += n;
            return;
        }
    }
    /* Callers bound their batches (MAINTENANCE / IMPORT limits) well below this. */
    assert(c->n < MEMBER_COUNT_DELTAS_MAX);
    c->d[c->n++] = (member_count_delta_t){dim, key, shard, n};
}

static int delta_cmp(const void *x, const void *y) {
    const member_count_delta_t *a = x, *b = y;
    if (a->dim != b->dim) {
        return a->dim < b->dim ? -1 : 1;
    }
    int k = strcmp(a->key, b->key);
    if (k != 0) {
        return k;
    }
    return a->shard < b->shard ? -1 : a->shard > b->shard;
}

status_t member_counts_flush(db_t *db, const char *merchant_id, member_counts_t *c) {
    qsort(c->d, (size_t)c->n, sizeof c->d[0], delta_cmp);
    status_t st = status_ok();
    for (int i = 0; i < c->n && status_is_ok(&st); i++) {
        const member_count_delta_t *d = &c->d[i];
        if (d->n == 0) {
            continue;
        }
        db_params_t p;
        db_params_init(&p);
        db_param_text(&p, merchant_id);
        db_param_int(&p, d->dim);
        db_param_text(&p, d->key);
        db_param_int(&p, d->shard);
        db_param_int(&p, d->n);
        st = db_exec(db,
                     "INSERT INTO counts AS c (merchant_id, dim, key, shard, n) "
                     "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (merchant_id, dim, key, shard) "
                     "DO UPDATE SET n = c.n + EXCLUDED.n",
                     &p, NULL);
    }
    c->n = 0;
    return st;
}

static status_t count_row(void *ctx, arena_t *a, const PGresult *r, int row, void *item) {
    member_count_row_t *c = item;
    c->dim = (int)db_get_int(r, row, 0);
    c->key = db_dup_str(a, r, row, 1);
    c->n = db_get_int(r, row, 2);
    return status_ok();
}

status_t member_counts_read(db_t *db, arena_t *a, const char *merchant_id,
                            member_count_row_t **rows, int *n) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_rows_t read = {.item_size = sizeof **rows};
    status_t st = db_rows(db, a,
                          "SELECT dim, key, sum(n)::bigint FROM counts WHERE merchant_id = $1 "
                          "GROUP BY dim, key ORDER BY dim, key",
                          &p, count_row, NULL, &read);
    *rows = read.items;
    *n = (int)read.n;
    return st;
}
