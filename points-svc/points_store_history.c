/* points_store_history.c -- the points history in PostgreSQL: writing ledger entries (with
 * their lot shares: named on the entry when it touches one lot, else in entry_lots) and
 * tier-growth rows, and listing both for a member. */
#include "points_store_internal.h"

#include "ids.h"
#include "pb.h"
#include "pgarray.h"

#include <string.h>

/* ---- history ---- */

static Loyalty__V1__PointsLotShare **share_messages(arena_t *a, const points_share_t *s, int n) {
    Loyalty__V1__PointsLotShare **out = arena_alloc(a, ((size_t)n + 1) * sizeof *out);
    for (int i = 0; i < n; i++) {
        out[i] = pb_new(a, &loyalty__v1__points_lot_share__descriptor);
        out[i]->lot_id = (char *)s[i].lot_id;
        out[i]->points = s[i].points;
        out[i]->expiry_date = (char *)(s[i].expiry_date ? s[i].expiry_date : "");
    }
    return out;
}

/* A transaction's history entries and their lot shares, one statement each (row sets), written
 * with its COMMIT: nothing on a write path reads them back (the history readers flush first).
 * The entries keep the order they were made in: seq, which orders a member's history, follows it.
 */
// clang-format off
static const db_rowset_def_t ENTRY_ROWS = {
    .sql = "INSERT INTO entries (merchant_id, id, member_id, kind, available_delta, held_delta, "
           " pending_delta, available_after, source, reference, hold_id, reason, operator, "
           " created_at, lot_id, lot_points) "
           "SELECT merchant_id, id, member_id, kind, available_delta, held_delta, pending_delta, "
           " available_after, source, reference, hold_id, reason, operator, "
           " to_timestamp(created_at), lot_id, lot_points "
           "FROM unnest($1::text[], $2::text[], $3::text[], $4::smallint[], $5::bigint[], "
           " $6::bigint[], $7::bigint[], $8::bigint[], $9::smallint[], $10::text[], $11::text[], "
           " $12::text[], $13::text[], $14::bigint[], $15::text[], $16::bigint[]) WITH ORDINALITY "
           " AS v(merchant_id, id, member_id, kind, available_delta, held_delta, pending_delta, "
           "  available_after, source, reference, hold_id, reason, operator, created_at, lot_id, "
           "  lot_points, ord) "
           "ORDER BY ord",
    .n_cols = 16,
};
static const db_rowset_def_t ENTRY_LOT_ROWS = {
    .sql = "INSERT INTO entry_lots (merchant_id, entry_id, lot_id, points) "
           "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])",
    .n_cols = 4,
};
// clang-format on

status_t points_store_insert_entry(db_t *db, arena_t *a, const char *merchant,
                                   const points_new_entry_t *e, Loyalty__V1__PointsEntry **out) {
    char id[ID_MAX];
    id_generate("pen", id);
    db_params_t p;
    db_params_key(&p, merchant, id);
    db_param_text(&p, e->member_id);
    db_param_int(&p, e->kind);
    db_param_int(&p, e->available_delta);
    db_param_int(&p, e->held_delta);
    db_param_int(&p, e->pending_delta);
    db_param_int(&p, e->available_after);
    db_param_int(&p, e->source);
    DB_PARAM_TEXTS(&p, e->reference ? e->reference : "", e->hold_id ? e->hold_id : "",
                   e->reason ? e->reason : "", e->operator_name ? e->operator_name : "");
    db_param_int(&p, e->now);
    /* An entry of one lot names it itself; only entries of several lots write entry_lots. */
    bool one_lot = e->n_shares == 1;
    if (one_lot) {
        db_param_text(&p, e->shares[0].lot_id);
        db_param_int(&p, e->shares[0].points);
    } else {
        db_param_null(&p);
        db_param_null(&p);
    }
    status_t st = db_rowset_append(db, &ENTRY_ROWS, &p);
    for (int i = 0; !one_lot && i < e->n_shares && status_is_ok(&st); i++) {
        db_params_key(&p, merchant, id);
        db_param_text(&p, e->shares[i].lot_id);
        db_param_int(&p, e->shares[i].points);
        st = db_rowset_append(db, &ENTRY_LOT_ROWS, &p);
    }
    if (!status_is_ok(&st) || out == NULL) {
        return st;
    }
    Loyalty__V1__PointsEntry *m = pb_new(a, &loyalty__v1__points_entry__descriptor);
    m->id = arena_strdup(a, id);
    m->member_id = (char *)e->member_id;
    m->kind = (Loyalty__V1__PointsEntryKind)e->kind;
    m->available_delta = e->available_delta;
    m->held_delta = e->held_delta;
    m->pending_delta = e->pending_delta;
    m->available_after = e->available_after;
    m->source = (Loyalty__V1__PointsSource)e->source;
    m->reference = (char *)(e->reference ? e->reference : "");
    m->hold_id = (char *)(e->hold_id ? e->hold_id : "");
    m->reason = (char *)(e->reason ? e->reason : "");
    m->operator_ = (char *)(e->operator_name ? e->operator_name : "");
    m->lots = share_messages(a, e->shares, e->n_shares);
    m->n_lots = (size_t)e->n_shares;
    m->created_at = e->now;
    *out = m;
    return status_ok();
}

/* A transaction's tier-growth rows, as its entries (ENTRY_ROWS): one statement, in order. */
// clang-format off
static const db_rowset_def_t GROWTH_ROWS = {
    .sql = "INSERT INTO growth_entries (merchant_id, id, member_id, kind, growth, growth_after, "
           " source, reference, reason, created_at) "
           "SELECT merchant_id, id, member_id, kind, growth, growth_after, source, reference, "
           " reason, to_timestamp(created_at) "
           "FROM unnest($1::text[], $2::text[], $3::text[], $4::smallint[], $5::bigint[], "
           " $6::bigint[], $7::smallint[], $8::text[], $9::text[], $10::bigint[]) WITH ORDINALITY "
           " AS v(merchant_id, id, member_id, kind, growth, growth_after, source, reference, "
           "  reason, created_at, ord) "
           "ORDER BY ord",
    .n_cols = 10,
};
// clang-format on

status_t points_store_flush_history(db_t *db) {
    status_t st = db_rowset_flush(db, &ENTRY_ROWS);
    st = status_is_ok(&st) ? db_rowset_flush(db, &ENTRY_LOT_ROWS) : st;
    return status_is_ok(&st) ? db_rowset_flush(db, &GROWTH_ROWS) : st;
}

status_t points_store_insert_growth(db_t *db, const char *merchant, const char *member, int kind,
                                    int64_t growth, int64_t growth_after, int source,
                                    const char *reference, const char *reason, int64_t now) {
    char id[ID_MAX];
    id_generate("grw", id);
    db_params_t p;
    db_params_key(&p, merchant, id);
    db_param_text(&p, member);
    db_param_int(&p, kind);
    db_param_int(&p, growth);
    db_param_int(&p, growth_after);
    db_param_int(&p, source);
    db_param_text(&p, reference ? reference : "");
    db_param_text(&p, reason ? reason : "");
    db_param_int(&p, now);
    return db_rowset_append(db, &GROWTH_ROWS, &p);
}

// clang-format off
#define ENTRY_COLUMNS                                                                              \
    "e.seq, e.id, e.member_id, e.kind, e.available_delta, e.held_delta, e.pending_delta, "         \
    "e.available_after, e.source, e.reference, e.hold_id, e.reason, e.operator, "                  \
    SQL_EPOCH_S_FLOOR("e.created_at") ", e.lot_id IS NOT NULL, coalesce(e.lot_id, ''), "           \
    "coalesce(e.lot_points, 0), " DAY_TEXT("l.expiry_date")
// clang-format on
/* ENTRY_COLUMNS after the seq (the page's cursor); the lot share (15..17) only when 14 says so. */
static const db_col_t ENTRY_COL_TABLE[] = {
    DB_FIELD(DB_COL_TEXT, "id"),
    DB_FIELD(DB_COL_TEXT, "member_id"),
    DB_FIELD(DB_COL_INT, "kind"),
    DB_FIELD(DB_COL_INT, "available_delta"),
    DB_FIELD(DB_COL_INT, "held_delta"),
    DB_FIELD(DB_COL_INT, "pending_delta"),
    DB_FIELD(DB_COL_INT, "available_after"),
    DB_FIELD(DB_COL_INT, "source"),
    DB_FIELD(DB_COL_TEXT, "reference"),
    DB_FIELD(DB_COL_TEXT, "hold_id"),
    DB_FIELD(DB_COL_TEXT, "reason"),
    DB_FIELD(DB_COL_TEXT, "operator"),
    DB_FIELD(DB_COL_INT, "created_at"),
};
static const db_cols_t ENTRY_COLS = {.cols = ENTRY_COL_TABLE,
                                     .n = DB_COLS_N(ENTRY_COL_TABLE),
                                     .first = 1,
                                     .message = &loyalty__v1__points_entry__descriptor};
static const db_col_t ENTRY_LOT_COL_TABLE[] = {
    DB_FIELD(DB_COL_TEXT, "lot_id"),
    DB_FIELD(DB_COL_INT, "points"),
    DB_FIELD(DB_COL_TEXT, "expiry_date"),
};
static const db_cols_t ENTRY_LOT_COLS = {.cols = ENTRY_LOT_COL_TABLE,
                                         .n = DB_COLS_N(ENTRY_LOT_COL_TABLE),
                                         .first = 15,
                                         .message = &loyalty__v1__points_lot_share__descriptor};

/* Attaches the lot shares of the listed entries (one query for the page). */
static status_t attach_shares(db_t *db, arena_t *a, const char *merchant,
                              Loyalty__V1__PointsEntry **entries, size_t n) {
    if (n == 0) {
        return status_ok();
    }
    /* Entries that name their one lot have it already and no entry_lots rows. */
    char **ids = arena_alloc(a, n * sizeof *ids);
    size_t n_ids = 0;
    size_t *caps = arena_alloc(a, n * sizeof *caps);
    for (size_t i = 0; i < n; i++) {
        caps[i] = 0;
        if (entries[i]->n_lots == 0) {
            ids[n_ids++] = entries[i]->id;
            entries[i]->lots = arena_alloc(a, 8 * sizeof *entries[i]->lots);
            caps[i] = 8;
        }
    }
    if (n_ids == 0) {
        return status_ok();
    }
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant);
    db_param_text_array(&p, a, ids, n_ids);
    PGresult *r = NULL;
    status_t st = db_exec(
        db,
        "SELECT el.entry_id, el.lot_id, el.points, " DAY_TEXT(
            "l.expiry_date") " FROM entry_lots el JOIN lots l ON l.merchant_id = el.merchant_id "
                             " AND l.id = el.lot_id WHERE el.merchant_id = $1 "
                             " AND el.entry_id = ANY($2::text[]) "
                             "ORDER BY el.entry_id, l.expires_at, l.earned_at, l.id",
        &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    int rows = PQntuples(r);
    for (int i = 0; i < rows; i++) {
        const char *eid = db_get_str(r, i, 0);
        for (size_t k = 0; k < n; k++) {
            Loyalty__V1__PointsEntry *e = entries[k];
            if (caps[k] == 0 || strcmp(e->id, eid) != 0) {
                continue;
            }
            if (e->n_lots == caps[k]) { /* grow: arena memory is never freed, copy */
                Loyalty__V1__PointsLotShare **bigger = arena_alloc(a, caps[k] * 2 * sizeof *bigger);
                memcpy(bigger, e->lots, caps[k] * sizeof *bigger);
                e->lots = bigger;
                caps[k] *= 2;
            }
            Loyalty__V1__PointsLotShare *s = pb_new(a, &loyalty__v1__points_lot_share__descriptor);
            s->lot_id = db_dup_str(a, r, i, 1);
            s->points = db_get_int(r, i, 2);
            s->expiry_date = db_dup_str(a, r, i, 3);
            e->lots[e->n_lots++] = s;
            break;
        }
    }
    PQclear(r);
    return status_ok();
}

status_t points_store_list_entries(db_t *db, arena_t *a, const char *merchant, const char *member,
                                   int64_t before_seq, int32_t limit, const int *kinds,
                                   size_t n_kinds, Loyalty__V1__PointsEntry ***out, size_t *n,
                                   int64_t **seqs) {
    status_t flushed = points_store_flush_history(db);
    if (!status_is_ok(&flushed)) {
        return flushed;
    }
    int64_t k64[POINTS_HISTORY_KINDS_MAX];
    for (size_t i = 0; i < n_kinds && i < POINTS_HISTORY_KINDS_MAX; i++) {
        k64[i] = kinds[i];
    }
    db_params_t p;
    db_params_key(&p, merchant, member);
    db_param_int(&p, before_seq);
    db_param_int_array(&p, a, k64, (int)n_kinds);
    db_param_int(&p, limit);
    PGresult *r = NULL;
    /* The lot an entry names itself comes with it; entry_lots' shares follow per page. */
    status_t st = db_exec(db,
                          "SELECT " ENTRY_COLUMNS " FROM entries e LEFT JOIN lots l "
                          " ON l.merchant_id = e.merchant_id AND l.id = e.lot_id "
                          "WHERE e.merchant_id = $1 AND e.member_id = $2 "
                          " AND ($3::bigint = 0 OR e.seq < $3::bigint) "
                          " AND (cardinality($4::smallint[]) = 0 OR e.kind = ANY($4::smallint[])) "
                          "ORDER BY e.seq DESC LIMIT $5",
                          &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    int rows = PQntuples(r);
    *out = arena_alloc(a, ((size_t)rows + 1) * sizeof **out);
    *seqs = arena_alloc(a, ((size_t)rows + 1) * sizeof **seqs);
    for (int i = 0; i < rows && status_is_ok(&st); i++) {
        (*seqs)[i] = db_get_int(r, i, 0);
        st = db_cols_read(a, &ENTRY_COLS, r, i, &(*out)[i]);
        Loyalty__V1__PointsEntry *e = (*out)[i];
        if (status_is_ok(&st) && db_get_bool(r, i, 14)) {
            e->lots = arena_alloc(a, sizeof *e->lots);
            e->n_lots = 1;
            st = db_cols_read(a, &ENTRY_LOT_COLS, r, i, &e->lots[0]);
        }
    }
    *n = (size_t)rows;
    PQclear(r);
    return status_is_ok(&st) ? attach_shares(db, a, merchant, *out, *n) : st;
}

/* The growth statement's columns after the seq (the page's cursor). */
static const db_col_t GROWTH_COL_TABLE[] = {
    DB_FIELD(DB_COL_TEXT, "id"),          DB_FIELD(DB_COL_TEXT, "member_id"),
    DB_FIELD(DB_COL_INT, "kind"),         DB_FIELD(DB_COL_INT, "growth"),
    DB_FIELD(DB_COL_INT, "growth_after"), DB_FIELD(DB_COL_INT, "source"),
    DB_FIELD(DB_COL_TEXT, "reference"),   DB_FIELD(DB_COL_TEXT, "reason"),
    DB_FIELD(DB_COL_INT, "created_at"),
};
static const db_cols_t GROWTH_COLS = {.cols = GROWTH_COL_TABLE,
                                      .n = DB_COLS_N(GROWTH_COL_TABLE),
                                      .first = 1,
                                      .message = &loyalty__v1__points_growth_entry__descriptor};

status_t points_store_list_growth(db_t *db, arena_t *a, const char *merchant, const char *member,
                                  int64_t before_seq, int32_t limit,
                                  Loyalty__V1__PointsGrowthEntry ***out, size_t *n,
                                  int64_t **seqs) {
    status_t flushed = points_store_flush_history(db);
    if (!status_is_ok(&flushed)) {
        return flushed;
    }
    db_params_t p;
    db_params_key(&p, merchant, member);
    db_param_int(&p, before_seq);
    db_param_int(&p, limit);
    PGresult *r = NULL;
    status_t st = db_exec(
        db,
        "SELECT seq, id, member_id, kind, growth, growth_after, source, "
        " reference, reason, " SQL_EPOCH_S_FLOOR(
            "created_at") " FROM growth_entries "
                          "WHERE merchant_id = $1 AND member_id = $2 "
                          " AND ($3::bigint = 0 OR seq < $3::bigint) ORDER BY seq DESC LIMIT $4",
        &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    int rows = PQntuples(r);
    *out = arena_alloc(a, ((size_t)rows + 1) * sizeof **out);
    *seqs = arena_alloc(a, ((size_t)rows + 1) * sizeof **seqs);
    for (int i = 0; i < rows && status_is_ok(&st); i++) {
        (*seqs)[i] = db_get_int(r, i, 0);
        st = db_cols_read(a, &GROWTH_COLS, r, i, &(*out)[i]);
    }
    *n = (size_t)rows;
    PQclear(r);
    return st;
}
