/* referral_store.c -- programme, tree and reward rows <-> C structs and protobuf messages. */
#include "referral_store.h"

#include "ids.h"
#include "pb.h"
#include "sql_time.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The counter changes being gathered on this thread (a merged batch), or NULL. */
static _Thread_local referral_stats_sum_t *g_stats_gathered;

static void param_opt_text(db_params_t *p, const char *s) {
    db_param_text(p, s[0] ? s : NULL);
}

/* ---- programme ---- */

// clang-format off
static const char PROGRAM_SQL[] =
    "SELECT p.enabled, p.levels, p.welcome_points, p.purchase_hold_days, p.share_url_template, "
    " p.share_message_template, p.version, " SQL_EPOCH_S("p.updated_at") ", "
    " l.level, l.enabled, l.registration_points, l.purchase_reward_kind, "
    " l.purchase_fixed_points, l.purchase_bps, l.purchase_cap_points, l.purchase_first_n, "
    " l.purchase_within_days "
    "FROM programs p LEFT JOIN program_levels l "
    " ON l.merchant_id = p.merchant_id AND l.level <= p.levels "
    "WHERE p.merchant_id = $1 ORDER BY l.level";
// clang-format on

/* PROGRAM_SQL's row: the program (columns 0..7, the same on every row), then one level rule
 * (8..16; NULL level when the program has none). */
static const db_col_t PROGRAM_COL_TABLE[] = {
    DB_FIELD(DB_COL_BOOL, "enabled"),
    DB_FIELD(DB_COL_INT, "levels"),
    DB_FIELD(DB_COL_INT, "welcome_points"),
    DB_FIELD(DB_COL_INT, "purchase_hold_days"),
    DB_FIELD(DB_COL_TEXT, "share_url_template"),
    DB_FIELD(DB_COL_TEXT, "share_message_template"),
    DB_FIELD(DB_COL_INT, "version"),
    DB_FIELD(DB_COL_INT, "updated_at"),
};
static const db_cols_t PROGRAM_COLS =
    DB_COLS_MESSAGE(PROGRAM_COL_TABLE, &loyalty__v1__referral_program__descriptor);
static const db_col_t LEVEL_COL_TABLE[] = {
    DB_FIELD(DB_COL_INT, "level"),
    DB_FIELD(DB_COL_BOOL, "enabled"),
    DB_FIELD(DB_COL_INT, "registration_points"),
    DB_FIELD(DB_COL_INT, "purchase_reward_kind"),
    DB_FIELD(DB_COL_INT, "purchase_fixed_points"),
    DB_FIELD(DB_COL_INT, "purchase_bps"),
    DB_FIELD(DB_COL_INT, "purchase_cap_points"),
    DB_FIELD(DB_COL_INT, "purchase_first_n"),
    DB_FIELD(DB_COL_INT, "purchase_within_days"),
};
static const db_cols_t LEVEL_COLS = {.cols = LEVEL_COL_TABLE,
                                     .n = DB_COLS_N(LEVEL_COL_TABLE),
                                     .first = 8,
                                     .message = &loyalty__v1__referral_level_rule__descriptor};

static status_t program_from_result(arena_t *a, const PGresult *r,
                                    Loyalty__V1__ReferralProgram **out) {
    int rows = PQntuples(r);
    if (rows == 0) {
        *out = pb_new(a, &loyalty__v1__referral_program__descriptor);
        return status_ok();
    }
    status_t st = db_cols_read(a, &PROGRAM_COLS, r, 0, out);
    if (!status_is_ok(&st)) {
        return st;
    }
    Loyalty__V1__ReferralProgram *prog = *out;
    prog->level_rules = arena_alloc(a, REFERRAL_LEVELS_MAX * sizeof *prog->level_rules);
    for (int i = 0; i < rows && i < REFERRAL_LEVELS_MAX; i++) {
        if (!db_is_null(r, i, 8)) {
            st = db_cols_read(a, &LEVEL_COLS, r, i, &prog->level_rules[prog->n_level_rules++]);
            if (!status_is_ok(&st)) {
                return st;
            }
        }
    }
    return status_ok();
}

status_t referral_store_program_get(db_t *db, arena_t *a, const char *merchant_id,
                                    Loyalty__V1__ReferralProgram **out) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    PGresult *r = NULL;
    status_t st = db_exec(db, PROGRAM_SQL, &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    st = program_from_result(a, r, out);
    PQclear(r);
    return st;
}

/* Claims the next version of the programme row, honouring expected_version. */
static status_t program_bump(db_t *db, const char *merchant_id,
                             const Loyalty__V1__ReferralProgram *pr, bool has_expected,
                             int64_t expected_version, int64_t now_s) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    PGresult *r = NULL;
    status_t st =
        db_exec(db, "SELECT version FROM programs WHERE merchant_id = $1 FOR UPDATE", &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    int64_t current = PQntuples(r) == 1 ? db_get_int(r, 0, 0) : 0;
    PQclear(r);
    if (has_expected && expected_version != current) {
        return status_make(STATUS_ABORTED, REASON_VERSION_MISMATCH,
                           "programme changed since version %lld (now %lld); re-read and retry",
                           (long long)expected_version, (long long)current);
    }
    db_param_bool(&p, pr->enabled);
    db_param_int(&p, pr->levels);
    db_param_int(&p, pr->welcome_points);
    db_param_int(&p, pr->purchase_hold_days);
    db_param_text(&p, pr->share_url_template);
    db_param_text(&p, pr->share_message_template);
    db_param_int(&p, current + 1);
    db_param_int(&p, now_s);
    return db_exec(db,
                   "INSERT INTO programs (merchant_id, enabled, levels, welcome_points, "
                   " purchase_hold_days, share_url_template, share_message_template, version, "
                   " updated_at) "
                   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, to_timestamp($9)) "
                   "ON CONFLICT (merchant_id) DO UPDATE SET enabled = $2, levels = $3, "
                   " welcome_points = $4, purchase_hold_days = $5, share_url_template = $6, "
                   " share_message_template = $7, version = $8, updated_at = to_timestamp($9)",
                   &p, NULL);
}

status_t referral_store_program_put(db_t *db, arena_t *a, const char *merchant_id,
                                    const Loyalty__V1__ReferralProgram *pr, bool has_expected,
                                    int64_t expected_version, int64_t now_s,
                                    Loyalty__V1__ReferralProgram **out) {
    status_t st = program_bump(db, merchant_id, pr, has_expected, expected_version, now_s);
    if (!status_is_ok(&st)) {
        return st;
    }
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    st = db_exec(db, "DELETE FROM program_levels WHERE merchant_id = $1", &p, NULL);
    for (size_t i = 0; status_is_ok(&st) && i < pr->n_level_rules; i++) {
        const Loyalty__V1__ReferralLevelRule *l = pr->level_rules[i];
        db_params_init(&p);
        db_param_text(&p, merchant_id);
        db_param_int(&p, l->level);
        db_param_bool(&p, l->enabled);
        db_param_int(&p, l->registration_points);
        db_param_int(&p, l->purchase_reward_kind);
        db_param_int(&p, l->purchase_fixed_points);
        db_param_int(&p, l->purchase_bps);
        db_param_int(&p, l->purchase_cap_points);
        db_param_int(&p, l->purchase_first_n);
        db_param_int(&p, l->purchase_within_days);
        st = db_exec(db,
                     "INSERT INTO program_levels (merchant_id, level, enabled, "
                     " registration_points, purchase_reward_kind, purchase_fixed_points, "
                     " purchase_bps, purchase_cap_points, purchase_first_n, purchase_within_days) "
                     "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                     &p, NULL);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    return referral_store_program_get(db, a, merchant_id, out);
}

/* ---- members ---- */

// clang-format off
#define MEMBER_COLUMNS                                                                             \
    "member_id, code, coalesce(referrer_id, ''), coalesce(ancestor_2, ''), "                       \
    "coalesce(ancestor_3, ''), root_id, coalesce(attach_id, ''), coalesce(registration_ref, ''), " \
    SQL_EPOCH_S_OR_0("attached_at") ", purchase_count"
// clang-format on

static const db_col_t MEMBER_COL_TABLE[] = {
    DB_COL(DB_COL_TEXT, referral_member_row_t, member_id),
    DB_COL(DB_COL_TEXT, referral_member_row_t, code),
    DB_COL(DB_COL_TEXT, referral_member_row_t, referrer_id),
    DB_COL(DB_COL_TEXT, referral_member_row_t, ancestor_2),
    DB_COL(DB_COL_TEXT, referral_member_row_t, ancestor_3),
    DB_COL(DB_COL_TEXT, referral_member_row_t, root_id),
    DB_COL(DB_COL_TEXT, referral_member_row_t, attach_id),
    DB_COL(DB_COL_TEXT, referral_member_row_t, registration_ref),
    DB_COL(DB_COL_INT, referral_member_row_t, attached_at),
    DB_COL(DB_COL_INT, referral_member_row_t, purchase_count),
};
static const db_cols_t MEMBER_COLS = DB_COLS(MEMBER_COL_TABLE);

referral_node_t referral_store_node(const referral_member_row_t *row) {
    referral_node_t n = {.member_id = row->member_id,
                         .referrer_id = row->referrer_id,
                         .ancestor_2 = row->ancestor_2,
                         .ancestor_3 = row->ancestor_3,
                         .root_id = row->root_id};
    return n;
}

/* Runs a query returning at most one member row. */
static status_t member_one(db_t *db, arena_t *a, const char *sql, const db_params_t *p,
                           referral_member_row_t *out, bool *found) {
    return db_row_find_cols(db, a, sql, p, &MEMBER_COLS, out, found);
}

status_t referral_store_member_get(db_t *db, arena_t *a, const char *merchant_id,
                                   const char *member_id, bool for_update,
                                   referral_member_row_t *out, bool *found) {
    db_params_t p;
    db_params_key(&p, merchant_id, member_id);
    const char *sql = for_update ? "SELECT " MEMBER_COLUMNS " FROM referral_members "
                                   "WHERE merchant_id = $1 AND member_id = $2 FOR UPDATE"
                                 : "SELECT " MEMBER_COLUMNS " FROM referral_members "
                                   "WHERE merchant_id = $1 AND member_id = $2";
    return member_one(db, a, sql, &p, out, found);
}

status_t referral_store_member_ensure(db_t *db, arena_t *a, const char *merchant_id,
                                      const char *member_id, int64_t now_s,
                                      referral_member_row_t *out) {
    for (int attempt = 0; attempt < REFERRAL_CODE_ATTEMPTS_MAX; attempt++) {
        bool found = false;
        status_t st = referral_store_member_get(db, a, merchant_id, member_id, false, out, &found);
        if (!status_is_ok(&st) || found) {
            return st;
        }
        char code[REFERRAL_CODE_LEN + 1];
        referral_code_generate(code);
        db_params_t p;
        db_params_key(&p, merchant_id, member_id);
        db_param_text(&p, code);
        db_param_int(&p, now_s);
        /* ON CONFLICT without a target covers both the member (a concurrent creator, whose
         * row the next read sees) and the code (a collision: draw another). */
        st = member_one(db, a,
                        "INSERT INTO referral_members (merchant_id, member_id, code, root_id, "
                        " created_at) VALUES ($1, $2, $3, $2, to_timestamp($4)) "
                        "ON CONFLICT DO NOTHING RETURNING " MEMBER_COLUMNS,
                        &p, out, &found);
        if (!status_is_ok(&st) || found) {
            return st;
        }
    }
    return status_make(STATUS_ABORTED, REASON_CODE_COLLISION,
                       "could not draw a unique referral code; safe to retry");
}

status_t referral_store_member_by_code(db_t *db, arena_t *a, const char *merchant_id,
                                       const char *code, referral_member_row_t *out, bool *found) {
    db_params_t p;
    db_params_key(&p, merchant_id, code);
    return member_one(db, a,
                      "SELECT " MEMBER_COLUMNS " FROM referral_members "
                      "WHERE merchant_id = $1 AND code = $2",
                      &p, out, found);
}

status_t referral_store_lock_pair(db_t *db, arena_t *a, const char *merchant_id, const char *id_a,
                                  const char *id_b, referral_member_row_t *out_a,
                                  referral_member_row_t *out_b) {
    db_params_t p;
    db_params_key(&p, merchant_id, id_a);
    db_param_text(&p, id_b);
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "SELECT " MEMBER_COLUMNS " FROM referral_members "
                          "WHERE merchant_id = $1 AND member_id IN ($2, $3) "
                          "ORDER BY member_id COLLATE \"C\" FOR UPDATE",
                          &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    int got = 0;
    for (int i = 0; i < PQntuples(r) && status_is_ok(&st); i++) {
        const char *id = db_get_str(r, i, 0);
        if (strcmp(id, id_a) == 0) {
            st = db_cols_read(a, &MEMBER_COLS, r, i, out_a);
            got |= 1;
        } else if (strcmp(id, id_b) == 0) {
            st = db_cols_read(a, &MEMBER_COLS, r, i, out_b);
            got |= 2;
        }
    }
    PQclear(r);
    if (!status_is_ok(&st)) {
        return st;
    }
    if (got != 3) {
        return status_make(STATUS_ABORTED, REASON_CONCURRENCY_CONFLICT,
                           "a referral row vanished; safe to retry");
    }
    return status_ok();
}

status_t referral_store_has_downline(db_t *db, const char *merchant_id, const char *member_id,
                                     bool *out) {
    db_params_t p;
    db_params_key(&p, merchant_id, member_id);
    PGresult *r = NULL;
    /* The level-1 counter, not an EXISTS over referral_members: a generic plan of that query
     * cannot know that most referrer ids have no rows and may scan the merchant's members. The
     * counter is exact here: an attach below the member locks the member's row, which the
     * caller holds. */
    status_t st = db_exec(db,
                          "SELECT coalesce((SELECT members > 0 FROM downline_stats "
                          " WHERE merchant_id = $1 AND member_id = $2 AND level = 1), false)",
                          &p, &r);
    if (status_is_ok(&st)) {
        *out = db_get_bool(r, 0, 0);
        PQclear(r);
    }
    return st;
}

status_t referral_store_attach(db_t *db, arena_t *a, const char *merchant_id,
                               const char *referee_id, const referral_attach_plan_t *plan,
                               const char *attach_id, int64_t now_s) {
    db_params_t p;
    db_params_key(&p, merchant_id, referee_id);
    param_opt_text(&p, plan->ancestors[0]);
    param_opt_text(&p, plan->ancestors[1]);
    param_opt_text(&p, plan->ancestors[2]);
    db_param_text(&p, plan->root_id);
    db_param_text(&p, attach_id);
    db_param_int(&p, now_s);
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "UPDATE referral_members SET referrer_id = $3, ancestor_2 = $4, "
                          " ancestor_3 = $5, root_id = $6, attach_id = $7, "
                          " attached_at = to_timestamp($8) "
                          "WHERE merchant_id = $1 AND member_id = $2 AND referrer_id IS NULL",
                          &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    bool updated = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    if (!updated) { /* the row is locked by the caller, so this is a bug, not a race */
        return status_make(STATUS_INTERNAL, REASON_ATTACH_LOST,
                           "the referee's row changed under lock");
    }
    /* The ancestors' counters, in (member, level) order like every writer's, in one statement
     * (or with the merged batch's). */
    referral_stats_sum_t own = {0};
    referral_stats_sum_t *stats = g_stats_gathered ? g_stats_gathered : &own;
    for (int level = 1; level <= plan->n_ancestors; level++) {
        referral_stats_delta_t d = {
            .member_id = plan->ancestors[level - 1], .level = level, .members = 1};
        referral_rules_stats_add(stats, a, &d);
    }
    return stats == &own ? referral_store_stats_write(db, a, merchant_id, &own) : status_ok();
}

/* A downline_stats row into its level's count (ctx: the REFERRAL_LEVELS_MAX counts). */
static status_t level_count_row(void *ctx, arena_t *a, const PGresult *r, int row, void *item) {
    Loyalty__V1__ReferralLevelCount **counts = ctx;
    int64_t level = db_get_int(r, row, 0);
    if (level >= 1 && level <= REFERRAL_LEVELS_MAX) {
        Loyalty__V1__ReferralLevelCount *c = counts[level - 1];
        c->members = db_get_int(r, row, 1);
        c->reward_points = db_get_int(r, row, 2);
        c->reversed_points = db_get_int(r, row, 3);
    }
    return status_ok();
}

status_t referral_store_level_counts(db_t *db, arena_t *a, const char *merchant_id,
                                     const char *member_id,
                                     Loyalty__V1__ReferralLevelCount ***out) {
    db_params_t p;
    db_params_key(&p, merchant_id, member_id);
    Loyalty__V1__ReferralLevelCount **counts = arena_alloc(a, REFERRAL_LEVELS_MAX * sizeof *counts);
    for (int i = 0; i < REFERRAL_LEVELS_MAX; i++) {
        counts[i] = pb_new(a, &loyalty__v1__referral_level_count__descriptor);
        counts[i]->level = i + 1;
    }
    status_t st = db_rows(db, a,
                          "SELECT level, members, reward_points, reversed_points "
                          "FROM downline_stats WHERE merchant_id = $1 AND member_id = $2",
                          &p, level_count_row, counts, NULL);
    if (!status_is_ok(&st)) {
        return st;
    }
    *out = counts;
    return status_ok();
}

/* The downline queries, [level - 1][has cursor]: one index range each, newest first. */
// clang-format off
#define DOWNLINE_SQL(column, cursor)                                                               \
    "SELECT member_id, referrer_id, attach_id, " SQL_EPOCH_S("attached_at") " "                    \
    "FROM referral_members WHERE merchant_id = $1 AND " column " = $2" cursor                      \
    " ORDER BY attach_id DESC LIMIT $3"
// clang-format on
static const char *const downline_sql[REFERRAL_LEVELS_MAX][2] = {
    {DOWNLINE_SQL("referrer_id", ""), DOWNLINE_SQL("referrer_id", " AND attach_id < $4")},
    {DOWNLINE_SQL("ancestor_2", ""), DOWNLINE_SQL("ancestor_2", " AND attach_id < $4")},
    {DOWNLINE_SQL("ancestor_3", ""), DOWNLINE_SQL("ancestor_3", " AND attach_id < $4")},
};

typedef struct downline_list {
    Loyalty__V1__ReferralDownlineMember **rows;
    size_t n;
} downline_list_t;

/* A source member's reward sums into its rows of the list (ctx). */
static status_t downline_reward_row(void *ctx, arena_t *a, const PGresult *r, int row, void *item) {
    const downline_list_t *list = ctx;
    const char *source = db_get_str(r, row, 0);
    for (size_t i = 0; i < list->n; i++) {
        if (strcmp(list->rows[i]->member_id, source) == 0) {
            list->rows[i]->reward_count = db_get_int(r, row, 1);
            list->rows[i]->reward_points = db_get_int(r, row, 2);
            list->rows[i]->reversed_points = db_get_int(r, row, 3);
        }
    }
    return status_ok();
}

/* Fills what each listed downline member brought `member_id` (one indexed aggregate). */
static status_t downline_rewards(db_t *db, arena_t *a, const char *merchant_id,
                                 const char *member_id, Loyalty__V1__ReferralDownlineMember **rows,
                                 size_t n) {
    if (n == 0) {
        return status_ok();
    }
    char **ids = arena_alloc(a, n * sizeof *ids);
    for (size_t i = 0; i < n; i++) {
        ids[i] = rows[i]->member_id;
    }
    db_params_t p;
    db_params_key(&p, merchant_id, member_id);
    db_param_text_array(&p, a, ids, n);
    downline_list_t list = {rows, n};
    return db_rows(db, a,
                   "SELECT source_member_id, count(*), sum(points), sum(reversed_points) "
                   "FROM rewards WHERE merchant_id = $1 AND beneficiary_id = $2 "
                   " AND source_member_id = ANY ($3::text[]) GROUP BY source_member_id",
                   &p, downline_reward_row, &list, NULL);
}

typedef struct downline_page {
    int level;
    int32_t limit;
    const char *last_attach_id; /* of the page's last row: the next page's cursor */
} downline_page_t;

static status_t downline_row(void *ctx, arena_t *a, const PGresult *r, int row, void *item) {
    downline_page_t *page = ctx;
    Loyalty__V1__ReferralDownlineMember *m =
        pb_new(a, &loyalty__v1__referral_downline_member__descriptor);
    m->member_id = db_dup_str(a, r, row, 0);
    m->level = page->level;
    m->referrer_member_id = db_dup_str(a, r, row, 1);
    m->attached_at = db_get_int(r, row, 3);
    if (row == page->limit - 1) {
        page->last_attach_id = db_dup_str(a, r, row, 2);
    }
    *(Loyalty__V1__ReferralDownlineMember **)item = m;
    return status_ok();
}

status_t referral_store_downline_page(db_t *db, arena_t *a, const char *merchant_id,
                                      const char *member_id, int level, const char *after,
                                      int32_t limit, Loyalty__V1__ReferralDownlineMember ***out,
                                      size_t *n, const char **next) {
    db_params_t p;
    db_params_key(&p, merchant_id, member_id);
    db_param_int(&p, (int64_t)limit + 1);
    if (after[0]) {
        db_param_text(&p, after);
    }
    downline_page_t page = {.level = level, .limit = limit, .last_attach_id = ""};
    db_rows_t rows = {.item_size = sizeof **out, .limit = limit};
    status_t st =
        db_rows(db, a, downline_sql[level - 1][after[0] ? 1 : 0], &p, downline_row, &page, &rows);
    if (!status_is_ok(&st)) {
        return st;
    }
    *out = rows.items;
    *n = rows.n;
    *next = rows.more ? page.last_attach_id : "";
    return downline_rewards(db, a, merchant_id, member_id, *out, *n);
}

status_t referral_store_member_set_purchases(db_t *db, const char *merchant_id,
                                             const char *member_id, int64_t count) {
    db_params_t p;
    db_params_key(&p, merchant_id, member_id);
    db_param_int(&p, count);
    return db_exec_deferred(db,
                            "UPDATE referral_members SET purchase_count = $3 "
                            "WHERE merchant_id = $1 AND member_id = $2",
                            &p, NULL);
}

status_t referral_store_member_set_registration(db_t *db, const char *merchant_id,
                                                const char *member_id, const char *reference) {
    db_params_t p;
    db_params_key(&p, merchant_id, member_id);
    db_param_text(&p, reference);
    return db_exec(db,
                   "UPDATE referral_members SET registration_ref = $3 "
                   "WHERE merchant_id = $1 AND member_id = $2",
                   &p, NULL);
}

/* ---- events ---- */

#define EVENT_SQL                                                                                  \
    "SELECT member_id, paid_cents, purchase_number, program_version, reversed_share_bps "          \
    "FROM reward_events WHERE merchant_id = $1 AND event = $2 AND reference = $3"

static void event_params(db_params_t *p, const char *merchant_id, int event,
                         const char *reference) {
    db_params_init(p);
    db_param_text(p, merchant_id);
    db_param_int(p, event);
    db_param_text(p, reference);
}

static void event_from_result(arena_t *a, const PGresult *r, int event, const char *reference,
                              referral_event_row_t *out, bool *found) {
    *found = PQntuples(r) == 1;
    if (*found) {
        out->event = event;
        out->reference = arena_strdup(a, reference);
        out->member_id = db_dup_str(a, r, 0, 0);
        out->paid_cents = db_get_int(r, 0, 1);
        out->purchase_number = db_get_int(r, 0, 2);
        out->program_version = db_get_int(r, 0, 3);
        out->reversed_share_bps = (int32_t)db_get_int(r, 0, 4);
    }
}

status_t referral_store_event_get(db_t *db, arena_t *a, const char *merchant_id, int event,
                                  const char *reference, bool for_update, referral_event_row_t *out,
                                  bool *found) {
    db_params_t p;
    event_params(&p, merchant_id, event, reference);
    PGresult *r = NULL;
    status_t st = db_exec(db, for_update ? EVENT_SQL " FOR UPDATE" : EVENT_SQL, &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    event_from_result(a, r, event, reference, out, found);
    PQclear(r);
    return status_ok();
}

status_t referral_store_event_reads(db_t *db, arena_t *a, const char *merchant_id, int event,
                                    const char *reference, const char *member_id,
                                    referral_event_reads_t *out) {
    db_params_t pe, pp, pm;
    event_params(&pe, merchant_id, event, reference);
    db_params_init(&pp);
    db_param_text(&pp, merchant_id);
    db_params_key(&pm, merchant_id, member_id);
    db_exec_item_t q[3] = {
        {.sql = EVENT_SQL, .params = &pe},
        {.sql = PROGRAM_SQL, .params = &pp},
        {.sql = "SELECT " MEMBER_COLUMNS " FROM referral_members "
                "WHERE merchant_id = $1 AND member_id = $2 FOR UPDATE",
         .params = &pm},
    };
    status_t st = db_exec_all(db, q, 3);
    if (!status_is_ok(&st)) {
        return st;
    }
    event_from_result(a, q[0].out, event, reference, &out->event, &out->event_found);
    st = program_from_result(a, q[1].out, &out->program);
    out->member_found = PQntuples(q[2].out) == 1;
    if (out->member_found && status_is_ok(&st)) {
        st = db_cols_read(a, &MEMBER_COLS, q[2].out, 0, &out->member);
    }
    for (int i = 0; i < 3; i++) {
        PQclear(q[i].out);
    }
    return st;
}

status_t referral_store_event_insert(db_t *db, const char *merchant_id,
                                     const referral_event_row_t *ev, int64_t now_s,
                                     bool *inserted) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_int(&p, ev->event);
    db_param_text(&p, ev->reference);
    db_param_text(&p, ev->member_id);
    db_param_int(&p, ev->paid_cents);
    db_param_int(&p, ev->purchase_number);
    db_param_int(&p, ev->program_version);
    db_param_int(&p, now_s);
    return db_row_find(db, NULL,
                       "INSERT INTO reward_events (merchant_id, event, reference, member_id, "
                       " paid_cents, purchase_number, program_version, created_at) "
                       "VALUES ($1, $2, $3, $4, $5, $6, $7, to_timestamp($8)) "
                       "ON CONFLICT DO NOTHING RETURNING 1",
                       &p, NULL, NULL, inserted);
}

status_t referral_store_event_set_share(db_t *db, const char *merchant_id, int event,
                                        const char *reference, int32_t share_bps) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_int(&p, event);
    db_param_text(&p, reference);
    db_param_int(&p, share_bps);
    return db_exec(db,
                   "UPDATE reward_events SET reversed_share_bps = $4 "
                   "WHERE merchant_id = $1 AND event = $2 AND reference = $3",
                   &p, NULL);
}

/* ---- rewards ---- */

// clang-format off
#define REWARD_COLUMNS                                                                             \
    "id, event, reference, source_member_id, beneficiary_id, level, rule, points, base_cents, "    \
    "rule_bps, capped, grant_now, state, " SQL_EPOCH_S_OR_0("held_until") ", "                     \
    "granted_points, reversed_points, clawed_back_points, " SQL_EPOCH_S("created_at") ", "         \
    SQL_EPOCH_S_OR_0("granted_at")
// clang-format on

static const db_col_t REWARD_COL_TABLE[] = {
    DB_FIELD(DB_COL_TEXT, "id"),
    DB_FIELD(DB_COL_INT, "event"),
    DB_FIELD(DB_COL_TEXT, "reference"),
    DB_FIELD(DB_COL_TEXT, "source_member_id"),
    DB_FIELD(DB_COL_TEXT, "beneficiary_member_id"),
    DB_FIELD(DB_COL_INT, "level"),
    DB_FIELD(DB_COL_INT, "rule"),
    DB_FIELD(DB_COL_INT, "points"),
    DB_FIELD(DB_COL_INT, "base_cents"),
    DB_FIELD(DB_COL_INT, "rule_bps"),
    DB_FIELD(DB_COL_BOOL, "capped"),
    DB_FIELD(DB_COL_BOOL, "grant_now"),
    DB_FIELD(DB_COL_INT, "state"),
    DB_FIELD(DB_COL_INT, "held_until_at"),
    DB_FIELD(DB_COL_INT, "granted_points"),
    DB_FIELD(DB_COL_INT, "reversed_points"),
    DB_FIELD(DB_COL_INT, "clawed_back_points"),
    DB_FIELD(DB_COL_INT, "created_at"),
    DB_FIELD(DB_COL_INT, "granted_at"),
};
static const db_cols_t REWARD_COLS =
    DB_COLS_MESSAGE(REWARD_COL_TABLE, &loyalty__v1__referral_reward__descriptor);

/* Runs a query of reward rows into an arena array (of at least one slot). */
static status_t reward_rows(db_t *db, arena_t *a, const char *sql, const db_params_t *p,
                            Loyalty__V1__ReferralReward ***out, size_t *n) {
    db_rows_t rows = {.item_size = sizeof **out};
    status_t st = db_rows_cols(db, a, sql, p, &REWARD_COLS, &rows);
    *out = rows.items;
    *n = rows.n;
    return st;
}

/* One statement for all of an event's rewards: the reward rows and, for levels 1..3, the
 * beneficiaries' counters, in (member, level) order (referral_stats_sum_t; a beneficiary
 * appears once per event, so no counter row is hit twice). While a merged batch gathers the
 * counters (referral_store_stats_gather_begin), the rewards alone. */
// clang-format off
#define REWARDS_INSERT_WITH                                                                        \
    "WITH u AS (SELECT * FROM unnest($8::text[], $9::text[], $10::bigint[], $11::bigint[], "       \
    "  $12::bigint[], $13::bigint[], $14::bigint[], $15::boolean[]) "                              \
    "  AS u(id, beneficiary, level, rule, points, base_cents, rule_bps, capped)), "                \
    "ins AS (INSERT INTO rewards (merchant_id, id, event, reference, source_member_id, "           \
    "  beneficiary_id, level, rule, points, base_cents, rule_bps, capped, grant_now, state, "      \
    "  held_until, granted_points, created_at, granted_at) "                                       \
    " SELECT $1, u.id, $2, $3, $4, u.beneficiary, u.level, u.rule, u.points, u.base_cents, "       \
    "  u.rule_bps, u.capped, $5, CASE WHEN $5 THEN 2 ELSE 1 END, to_timestamp($6), "               \
    "  CASE WHEN $5 THEN u.points ELSE 0 END, to_timestamp($7), "                                  \
    "  CASE WHEN $5 THEN to_timestamp($7) END FROM u "                                             \
    " RETURNING " REWARD_COLUMNS ") "
static const char REWARDS_INSERT_SQL[] =
    REWARDS_INSERT_WITH
    ", stats AS (INSERT INTO downline_stats (merchant_id, member_id, level, reward_points) "
    " SELECT $1, u.beneficiary, u.level, u.points FROM u WHERE u.level > 0 "
    " ORDER BY u.beneficiary COLLATE \"C\", u.level "
    " ON CONFLICT (merchant_id, member_id, level) DO UPDATE "
    " SET reward_points = downline_stats.reward_points + excluded.reward_points) "
    "SELECT * FROM ins ORDER BY level";
static const char REWARDS_ONLY_INSERT_SQL[] = REWARDS_INSERT_WITH "SELECT * FROM ins ORDER BY level";
// clang-format on

void referral_store_stats_gather_begin(referral_stats_sum_t *s) {
    assert(g_stats_gathered == NULL);
    *s = (referral_stats_sum_t){0};
    g_stats_gathered = s;
}

referral_stats_sum_t *referral_store_stats_gathering(void) {
    return g_stats_gathered;
}

status_t referral_store_stats_gather_end(db_t *db, arena_t *a, const char *merchant_id,
                                         bool write) {
    referral_stats_sum_t *s = g_stats_gathered;
    assert(s != NULL);
    g_stats_gathered = NULL;
    return write ? referral_store_stats_write(db, a, merchant_id, s) : status_ok();
}

status_t referral_store_stats_write(db_t *db, arena_t *a, const char *merchant_id,
                                    referral_stats_sum_t *s) {
    if (s->n == 0) {
        return status_ok();
    }
    referral_rules_stats_sort(s);
    /* Counts added (attaches, rewards) or reversals, never both: a sum is one method's. */
    bool reversals = s->deltas[0].reversed_points != 0;
    char **members = arena_alloc(a, s->n * sizeof *members);
    int64_t *levels = arena_alloc(a, s->n * sizeof *levels);
    int64_t *attached = arena_alloc(a, s->n * sizeof *attached);
    int64_t *rewarded = arena_alloc(a, s->n * sizeof *rewarded);
    int64_t *reversed = arena_alloc(a, s->n * sizeof *reversed);
    for (size_t i = 0; i < s->n; i++) {
        const referral_stats_delta_t *d = &s->deltas[i];
        assert(reversals ? d->members == 0 && d->reward_points == 0 : d->reversed_points == 0);
        members[i] = (char *)d->member_id;
        levels[i] = d->level;
        attached[i] = d->members;
        rewarded[i] = d->reward_points;
        reversed[i] = d->reversed_points;
    }
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text_array(&p, a, members, s->n);
    db_param_int_array(&p, a, levels, s->n);
    /* The rows in the order of the arrays (sorted above), the order every writer locks them in:
     * an insert's conflicts are locked as its rows come, a reversal's rows (which exist: their
     * rewards made them) by the sorted FOR UPDATE before the update. Nothing to read back: it
     * travels with the next statement or the COMMIT. */
    const char *sql = NULL;
    if (reversals) {
        db_param_int_array(&p, a, reversed, s->n);
        sql = "WITH v AS (SELECT * FROM unnest($2::text[], $3::bigint[], $4::bigint[]) "
              " WITH ORDINALITY AS v(m, l, rv, n)), "
              "k AS (SELECT d.member_id, d.level, v.rv FROM downline_stats d JOIN v "
              " ON d.member_id = v.m AND d.level = v.l WHERE d.merchant_id = $1 "
              " ORDER BY v.n FOR UPDATE OF d) "
              "UPDATE downline_stats d SET reversed_points = d.reversed_points + k.rv FROM k "
              "WHERE d.merchant_id = $1 AND d.member_id = k.member_id AND d.level = k.level";
    } else {
        db_param_int_array(&p, a, attached, s->n);
        db_param_int_array(&p, a, rewarded, s->n);
        sql = "INSERT INTO downline_stats (merchant_id, member_id, level, members, reward_points) "
              "SELECT $1, v.m, v.l, v.ms, v.rw FROM unnest($2::text[], $3::bigint[], "
              " $4::bigint[], $5::bigint[]) WITH ORDINALITY AS v(m, l, ms, rw, n) ORDER BY v.n "
              "ON CONFLICT (merchant_id, member_id, level) DO UPDATE "
              "SET members = downline_stats.members + excluded.members, "
              " reward_points = downline_stats.reward_points + excluded.reward_points";
    }
    return db_in_tx(db) ? db_exec_deferred(db, sql, &p, NULL) : db_exec(db, sql, &p, NULL);
}

status_t referral_store_rewards_insert(db_t *db, arena_t *a, const char *merchant_id,
                                       const referral_event_row_t *ev,
                                       const referral_reward_spec_t *specs, int n,
                                       int64_t held_until_s, int64_t now_s,
                                       Loyalty__V1__ReferralReward ***out, size_t *n_out) {
    char **ids = arena_alloc(a, ((size_t)n + 1) * sizeof *ids);
    char **who = arena_alloc(a, ((size_t)n + 1) * sizeof *who);
    char **capped = arena_alloc(a, ((size_t)n + 1) * sizeof *capped);
    int64_t level[REFERRAL_REWARDS_PER_EVENT_MAX], rule[REFERRAL_REWARDS_PER_EVENT_MAX],
        points[REFERRAL_REWARDS_PER_EVENT_MAX], base[REFERRAL_REWARDS_PER_EVENT_MAX],
        bps[REFERRAL_REWARDS_PER_EVENT_MAX];
    for (int i = 0; i < n && i < REFERRAL_REWARDS_PER_EVENT_MAX; i++) {
        char id[ID_MAX];
        id_generate("rwd", id);
        ids[i] = arena_strdup(a, id);
        who[i] = (char *)specs[i].beneficiary_id;
        capped[i] = specs[i].capped ? "t" : "f";
        level[i] = specs[i].level;
        rule[i] = specs[i].rule;
        points[i] = specs[i].points;
        base[i] = specs[i].base_cents;
        bps[i] = specs[i].rule_bps;
    }
    bool grant_now = held_until_s == 0;
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_int(&p, ev->event);
    db_param_text(&p, ev->reference);
    db_param_text(&p, ev->member_id);
    db_param_bool(&p, grant_now);
    if (grant_now) {
        db_param_null(&p);
    } else {
        db_param_int(&p, held_until_s);
    }
    db_param_int(&p, now_s);
    db_param_text_array(&p, a, ids, (size_t)n);
    db_param_text_array(&p, a, who, (size_t)n);
    db_param_int_array(&p, a, level, (size_t)n);
    db_param_int_array(&p, a, rule, (size_t)n);
    db_param_int_array(&p, a, points, (size_t)n);
    db_param_int_array(&p, a, base, (size_t)n);
    db_param_int_array(&p, a, bps, (size_t)n);
    db_param_text_array(&p, a, capped, (size_t)n);
    referral_stats_sum_t *gathered = g_stats_gathered;
    for (int i = 0; gathered != NULL && i < n; i++) {
        if (specs[i].level > 0) {
            referral_stats_delta_t d = {.member_id = specs[i].beneficiary_id,
                                        .level = specs[i].level,
                                        .reward_points = specs[i].points};
            referral_rules_stats_add(gathered, a, &d);
        }
    }
    return reward_rows(db, a, gathered ? REWARDS_ONLY_INSERT_SQL : REWARDS_INSERT_SQL, &p, out,
                       n_out);
}

status_t referral_store_event_rewards(db_t *db, arena_t *a, const char *merchant_id, int event,
                                      const char *reference, bool for_update,
                                      Loyalty__V1__ReferralReward ***out, size_t *n) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_int(&p, event);
    db_param_text(&p, reference);
    const char *sql = for_update ? "SELECT " REWARD_COLUMNS " FROM rewards WHERE merchant_id = $1 "
                                   "AND event = $2 AND reference = $3 ORDER BY level FOR UPDATE"
                                 : "SELECT " REWARD_COLUMNS " FROM rewards WHERE merchant_id = $1 "
                                   "AND event = $2 AND reference = $3 ORDER BY level";
    return reward_rows(db, a, sql, &p, out, n);
}

status_t referral_store_reward_reverse(db_t *db, const char *merchant_id,
                                       const Loyalty__V1__ReferralReward *w, int64_t reversed_delta,
                                       int64_t clawback, const char *reversal_id, int64_t now_s) {
    db_params_t p;
    db_params_key(&p, merchant_id, w->id);
    db_param_int(&p, w->state);
    db_param_int(&p, w->reversed_points);
    db_param_int(&p, w->clawed_back_points);
    status_t st = db_exec(db,
                          "UPDATE rewards SET state = $3, reversed_points = $4, "
                          " clawed_back_points = $5 WHERE merchant_id = $1 AND id = $2",
                          &p, NULL);
    if (!status_is_ok(&st)) {
        return st;
    }
    db_params_key(&p, merchant_id, reversal_id);
    db_param_text(&p, w->id);
    db_param_int(&p, reversed_delta);
    db_param_int(&p, clawback);
    db_param_int(&p, now_s);
    st = db_exec(db,
                 "INSERT INTO reward_reversals (merchant_id, id, reward_id, reversed_points, "
                 " clawback_points, created_at) VALUES ($1, $2, $3, $4, $5, to_timestamp($6))",
                 &p, NULL);
    return st;
}

status_t referral_store_due_rewards(db_t *db, arena_t *a, const char *merchant_id, int64_t now_s,
                                    int32_t limit, Loyalty__V1__ReferralReward ***out, size_t *n,
                                    bool *more) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_int(&p, now_s);
    db_param_int(&p, (int64_t)limit + 1);
    status_t st = reward_rows(db, a,
                              "SELECT " REWARD_COLUMNS " FROM rewards WHERE merchant_id = $1 "
                              " AND state = 1 AND held_until <= to_timestamp($2) "
                              "ORDER BY held_until, id LIMIT $3 FOR UPDATE SKIP LOCKED",
                              &p, out, n);
    if (status_is_ok(&st)) {
        *more = *n > (size_t)limit;
        if (*more) {
            *n = (size_t)limit;
        }
    }
    return st;
}

status_t referral_store_rewards_released(db_t *db, arena_t *a, const char *merchant_id,
                                         Loyalty__V1__ReferralReward *const *rewards, size_t n,
                                         int64_t now_s) {
    if (n == 0) {
        return status_ok();
    }
    char **ids = arena_alloc(a, n * sizeof *ids);
    char **states = arena_alloc(a, n * sizeof *states);
    char **granted = arena_alloc(a, n * sizeof *granted);
    for (size_t i = 0; i < n; i++) {
        ids[i] = rewards[i]->id;
        states[i] = arena_printf(a, "%d", (int)rewards[i]->state);
        granted[i] = arena_printf(a, "%lld", (long long)rewards[i]->granted_points);
    }
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id);
    db_param_text_array(&p, a, ids, n);
    db_param_text_array(&p, a, states, n);
    db_param_text_array(&p, a, granted, n);
    db_param_int(&p, now_s);
    return db_exec(db,
                   "UPDATE rewards r SET state = u.state, granted_points = u.granted, "
                   " granted_at = CASE WHEN u.state = 2 THEN to_timestamp($5) END "
                   "FROM unnest($2::text[], $3::smallint[], $4::bigint[]) AS u(id, state, granted) "
                   "WHERE r.merchant_id = $1 AND r.id = u.id AND r.state = 1",
                   &p, NULL);
}

status_t referral_store_rewards_page(db_t *db, arena_t *a, const char *merchant_id,
                                     const char *beneficiary_id, const char *after, int32_t limit,
                                     Loyalty__V1__ReferralReward ***out, size_t *n,
                                     const char **next) {
    db_params_t p;
    db_params_key(&p, merchant_id, beneficiary_id);
    db_param_int(&p, (int64_t)limit + 1);
    if (after[0]) {
        db_param_text(&p, after);
    }
    const char *sql = after[0] ? "SELECT " REWARD_COLUMNS " FROM rewards WHERE merchant_id = $1 "
                                 "AND beneficiary_id = $2 AND id < $4 ORDER BY id DESC LIMIT $3"
                               : "SELECT " REWARD_COLUMNS " FROM rewards WHERE merchant_id = $1 "
                                 "AND beneficiary_id = $2 ORDER BY id DESC LIMIT $3";
    status_t st = reward_rows(db, a, sql, &p, out, n);
    if (!status_is_ok(&st)) {
        return st;
    }
    *next = "";
    if (*n > (size_t)limit) {
        *n = (size_t)limit;
        *next = (*out)[*n - 1]->id;
    }
    return status_ok();
}
