/* points_store_verify.c -- VerifyLedger for points: each check is one query whose rows are the
 * differences between the accounts, lots, holds and entries that must agree. */
#include "points_store_internal.h"

#include "pb.h"

/* ---- verification ---- */

/* One check: every row returned is a difference (member, subject, expected, actual). */
typedef struct verify_check {
    const char *name;
    const char *sql;
} verify_check_t;

static const verify_check_t verify_checks[] = {
    {"ACCOUNT_LOTS_VS_LOTS",
     "SELECT a.member_id, '', coalesce(l.s, 0), a.lots_points FROM accounts a LEFT JOIN ("
     " SELECT member_id, sum(remaining) s FROM lots WHERE merchant_id = $1 AND status = 2 "
     " GROUP BY member_id) l USING (member_id) "
     "WHERE a.merchant_id = $1 AND ($2 = '' OR a.member_id = $2) "
     " AND a.lots_points <> coalesce(l.s, 0)"},
    {"PENDING_VS_LOTS",
     "SELECT a.member_id, '', coalesce(l.s, 0), a.pending FROM accounts a LEFT JOIN ("
     " SELECT member_id, sum(remaining) s FROM lots WHERE merchant_id = $1 AND status = 1 "
     " GROUP BY member_id) l USING (member_id) "
     "WHERE a.merchant_id = $1 AND ($2 = '' OR a.member_id = $2) AND a.pending <> coalesce(l.s, "
     "0)"},
    {"HELD_VS_HOLDS",
     "SELECT a.member_id, '', coalesce(h.s, 0), a.held FROM accounts a LEFT JOIN ("
     " SELECT member_id, sum(points) s FROM holds WHERE merchant_id = $1 AND status = 1 "
     " GROUP BY member_id) h USING (member_id) "
     "WHERE a.merchant_id = $1 AND ($2 = '' OR a.member_id = $2) AND a.held <> coalesce(h.s, 0)"},
    {"AVAILABLE_VS_HISTORY",
     "SELECT a.member_id, '', coalesce(e.s, 0), a.lots_points - a.debt FROM accounts a LEFT JOIN ("
     " SELECT member_id, sum(available_delta) s FROM entries WHERE merchant_id = $1 "
     " GROUP BY member_id) e USING (member_id) "
     "WHERE a.merchant_id = $1 AND ($2 = '' OR a.member_id = $2) "
     " AND a.lots_points - a.debt <> coalesce(e.s, 0)"},
    {"HELD_VS_HISTORY",
     "SELECT a.member_id, '', coalesce(e.s, 0), a.held FROM accounts a LEFT JOIN ("
     " SELECT member_id, sum(held_delta) s FROM entries WHERE merchant_id = $1 "
     " GROUP BY member_id) e USING (member_id) "
     "WHERE a.merchant_id = $1 AND ($2 = '' OR a.member_id = $2) AND a.held <> coalesce(e.s, 0)"},
    {"PENDING_VS_HISTORY",
     "SELECT a.member_id, '', coalesce(e.s, 0), a.pending FROM accounts a LEFT JOIN ("
     " SELECT member_id, sum(pending_delta) s FROM entries WHERE merchant_id = $1 "
     " GROUP BY member_id) e USING (member_id) "
     "WHERE a.merchant_id = $1 AND ($2 = '' OR a.member_id = $2) AND a.pending <> coalesce(e.s, "
     "0)"},
    {"LIFETIME_VS_HISTORY",
     "SELECT a.member_id, '', coalesce(e.s, 0), a.lifetime_earned FROM accounts a LEFT JOIN ("
     " SELECT member_id, sum(available_delta + pending_delta) s FROM entries "
     " WHERE merchant_id = $1 AND kind IN (1, 9, 10, 12) GROUP BY member_id) e USING (member_id) "
     "WHERE a.merchant_id = $1 AND ($2 = '' OR a.member_id = $2) "
     " AND a.lifetime_earned <> coalesce(e.s, 0)"},
    {"GROWTH_VS_HISTORY",
     "SELECT a.member_id, '', coalesce(g.s, 0), a.growth FROM accounts a LEFT JOIN ("
     " SELECT member_id, sum(growth) s FROM growth_entries WHERE merchant_id = $1 "
     " GROUP BY member_id) g USING (member_id) "
     "WHERE a.merchant_id = $1 AND ($2 = '' OR a.member_id = $2) AND a.growth <> coalesce(g.s, 0)"},
    {"LAST_ENTRY_AVAILABLE",
     "SELECT a.member_id, '', e.available_after, a.lots_points - a.debt FROM accounts a "
     "JOIN LATERAL (SELECT available_after FROM entries WHERE merchant_id = $1 "
     " AND member_id = a.member_id ORDER BY seq DESC LIMIT 1) e ON true "
     "WHERE a.merchant_id = $1 AND ($2 = '' OR a.member_id = $2) "
     " AND e.available_after <> a.lots_points - a.debt"},
    {"DEBT_WITH_SPENDABLE_POINTS",
     "SELECT member_id, '', 0, lots_points FROM accounts WHERE merchant_id = $1 "
     " AND ($2 = '' OR member_id = $2) AND debt > 0 AND lots_points > 0"},
    {"NEGATIVE_TOTAL",
     "SELECT member_id, '', 0, least(lots_points, held, pending, debt) FROM accounts "
     "WHERE merchant_id = $1 AND ($2 = '' OR member_id = $2) "
     " AND least(lots_points, held, pending, debt) < 0"},
    {"LOT_OUT_OF_RANGE",
     "SELECT member_id, id, points, remaining FROM lots WHERE merchant_id = $1 "
     " AND ($2 = '' OR member_id = $2) AND (remaining < 0 OR remaining > points)"},
    {"CLOSED_LOT_NOT_EMPTY",
     "SELECT member_id, id, 0, remaining FROM lots WHERE merchant_id = $1 "
     " AND ($2 = '' OR member_id = $2) AND status IN (3, 4) AND remaining <> 0"},
    {"LOT_REMAINING_VS_HISTORY",
     "SELECT l.member_id, l.id, coalesce(s.s, 0), l.remaining FROM lots l LEFT JOIN ("
     " SELECT lot_id, sum(points) s FROM (SELECT lot_id, points FROM entry_lots "
     "  WHERE merchant_id = $1 UNION ALL SELECT lot_id, lot_points FROM entries "
     "  WHERE merchant_id = $1 AND lot_id IS NOT NULL) x GROUP BY lot_id) s "
     " ON s.lot_id = l.id "
     "WHERE l.merchant_id = $1 AND ($2 = '' OR l.member_id = $2) "
     " AND l.remaining <> coalesce(s.s, 0)"},
    {"HOLD_VS_LOT_SHARES",
     "SELECT h.member_id, h.id, coalesce(s.s, 0) + CASE WHEN h.lot_id IS NOT NULL "
     " THEN h.points ELSE 0 END, h.points FROM holds h LEFT JOIN ("
     " SELECT hold_id, sum(points) s FROM hold_lots WHERE merchant_id = $1 GROUP BY hold_id) s "
     " ON s.hold_id = h.id "
     "WHERE h.merchant_id = $1 AND ($2 = '' OR h.member_id = $2) "
     " AND h.points <> coalesce(s.s, 0) + CASE WHEN h.lot_id IS NOT NULL THEN h.points ELSE 0 END"},
};

status_t points_store_verify(db_t *db, arena_t *a, const char *merchant, const char *member,
                             size_t max, Loyalty__V1__PointsVerifyLedgerResponse *out) {
    status_t st = db_rowset_flush(db, NULL); /* what this transaction wrote, if anything */
    if (!status_is_ok(&st)) {
        return st;
    }
    db_params_t p;
    db_params_key(&p, merchant, member);
    PGresult *r = NULL;
    st = db_exec(db,
                 "SELECT (SELECT count(*) FROM accounts WHERE merchant_id = $1 "
                 "  AND ($2 = '' OR member_id = $2)), "
                 " (SELECT count(*) FROM lots WHERE merchant_id = $1 "
                 "  AND ($2 = '' OR member_id = $2))",
                 &p, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    out->members_checked = db_get_int(r, 0, 0);
    out->lots_checked = db_get_int(r, 0, 1);
    PQclear(r);
    out->differences = arena_alloc(a, (max + 1) * sizeof *out->differences);
    out->n_differences = 0;
    size_t n_checks = sizeof verify_checks / sizeof verify_checks[0];
    for (size_t c = 0; c < n_checks; c++) {
        st = db_exec(db, verify_checks[c].sql, &p, &r);
        if (!status_is_ok(&st)) {
            return st;
        }
        int rows = PQntuples(r);
        for (int i = 0; i < rows && out->n_differences < max; i++) {
            Loyalty__V1__PointsLedgerDifference *d =
                pb_new(a, &loyalty__v1__points_ledger_difference__descriptor);
            d->check = (char *)verify_checks[c].name;
            d->member_id = db_dup_str(a, r, i, 0);
            d->subject_id = db_dup_str(a, r, i, 1);
            d->expected = db_get_int(r, i, 2);
            d->actual = db_get_int(r, i, 3);
            out->differences[out->n_differences++] = d;
        }
        PQclear(r);
    }
    out->ok = out->n_differences == 0;
    return status_ok();
}
