/* test_points_rows.c -- the rows points-svc writes (issue 16, rows and WAL per checkout) over
 * real gRPC: an entry or hold of one lot names it itself while one of several lots keeps its
 * shares in entry_lots / hold_lots, an earn's claim lives in its lot (earn_refs only for an earn
 * that made no lot), an order reference's row is written only by a redemption or a reversal;
 * and data written the old way (before migrations 004-006) still reads, verifies and reverses
 * after them. Every test ends with a clean VerifyLedger. */
#include "points_it.h"

TestSuite(points_rows, .init = pt_setup, .fini = pt_teardown, .timeout = 120);

/* The number of rows a count query returns as an integer. */
static long long sql_count(const char *sql, const char *p1, const char *p2) {
    return atoll(pt_sql_value(sql, p1, p2));
}

static Loyalty__V1__PointsEntry *history_entry(Loyalty__V1__PointsListHistoryResponse *h, int kind,
                                               const char *hold_id) {
    for (size_t i = 0; i < h->n_entries; i++) {
        if ((int)h->entries[i]->kind == kind &&
            (hold_id == NULL || strcmp(h->entries[i]->hold_id, hold_id) == 0)) {
            return h->entries[i];
        }
    }
    cr_assert_fail("no entry of kind %d", kind);
    return NULL;
}

Test(points_rows, an_entry_or_hold_of_one_lot_names_it_and_several_lots_keep_their_shares) {
    /* Goal: a hold that takes from two lots writes its shares to hold_lots and its entry's to
     * entry_lots; a hold (and entry) of one lot names the lot itself and writes neither. Both
     * read back the same through GetHold and ListHistory, and reversals restore into the lots
     * the holds came from. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("rowslot");
    pt_configure(m);
    Loyalty__V1__PointsEarnResponse *a = pt_earn_points(m, "mbr", 300, "2099-01-01");
    Loyalty__V1__PointsEarnResponse *b = pt_earn_points(m, "mbr", 400, "2099-06-01");
    Loyalty__V1__PointsHold *two = NULL, *one = NULL;
    assert_ok(pt_hold(m, "mbr", 500, "ord-two", 600, &two));
    assert_ok(pt_hold(m, "mbr", 100, "ord-one", 600, &one));
    cr_assert_eq(two->n_lots, 2);
    cr_assert_eq(one->n_lots, 1);
    cr_assert_str_eq(one->lots[0]->lot_id, b->lot->id);

    cr_assert_eq(sql_count("SELECT count(*) FROM points.hold_lots WHERE merchant_id = $1 "
                           " AND hold_id = $2",
                           m, two->id),
                 2);
    cr_assert_eq(sql_count("SELECT count(*) FROM points.hold_lots WHERE merchant_id = $1 "
                           " AND hold_id = $2",
                           m, one->id),
                 0, "a hold of one lot wrote a hold_lots row");
    cr_assert_str_eq(pt_sql_value("SELECT coalesce(lot_id, 'none') FROM points.holds "
                                  "WHERE merchant_id = $1 AND id = $2",
                                  m, one->id),
                     b->lot->id);
    /* The earns and the one-lot hold name their lot; only the two-lot hold's entry has links. */
    cr_assert_eq(sql_count("SELECT count(*) FROM points.entries WHERE merchant_id = $1 "
                           " AND lot_id IS NOT NULL",
                           m, NULL),
                 3);
    cr_assert_eq(
        sql_count("SELECT count(*) FROM points.entry_lots WHERE merchant_id = $1", m, NULL), 2);

    Loyalty__V1__PointsHold *got = pt_get_hold(m, one->id);
    cr_assert_eq(got->n_lots, 1);
    cr_assert_eq(got->lots[0]->points, -100);
    cr_assert_str_eq(got->lots[0]->expiry_date, "2099-06-01");
    got = pt_get_hold(m, two->id);
    cr_assert_eq(got->n_lots, 2);
    cr_assert_str_eq(got->lots[0]->lot_id, a->lot->id);
    cr_assert_eq(got->lots[0]->points, -300);
    cr_assert_eq(got->lots[1]->points, -200);

    Loyalty__V1__PointsListHistoryResponse *h = pt_history(m, "mbr");
    cr_assert_eq(h->n_entries, 4);
    Loyalty__V1__PointsEntry *e =
        history_entry(h, LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_HOLD, one->id);
    cr_assert_eq(e->n_lots, 1);
    cr_assert_str_eq(e->lots[0]->lot_id, b->lot->id);
    cr_assert_eq(e->lots[0]->points, -100);
    cr_assert_str_eq(e->lots[0]->expiry_date, "2099-06-01");
    e = history_entry(h, LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_HOLD, two->id);
    cr_assert_eq(e->n_lots, 2);
    cr_assert_eq(e->lots[0]->points + e->lots[1]->points, -500);
    e = history_entry(h, LOYALTY__V1__POINTS_ENTRY_KIND__POINTS_ENTRY_KIND_EARN, NULL);
    cr_assert_eq(e->n_lots, 1);

    /* Commit both; reversals give the points back to the lots they came from. */
    assert_ok(pt_commit(m, two->id, NULL, NULL));
    assert_ok(pt_commit(m, one->id, NULL, NULL));
    Loyalty__V1__PointsReverseOrderResponse *rv = NULL;
    assert_ok(pt_reverse_key(m, "ord-one", 5000, harness_key(), &rv));
    cr_assert_eq(rv->points_restored, 50);
    cr_assert_str_eq(pt_sql_value("SELECT lot_restored FROM points.holds WHERE merchant_id = $1 "
                                  " AND id = $2",
                                  m, one->id),
                     "50");
    assert_ok(pt_reverse_key(m, "ord-one", 5000, harness_key(), &rv));
    cr_assert_eq(rv->points_restored, 50);
    cr_assert_eq(rv->reversed_bps_total, 10000);
    /* latest-expiring lot first: b's 200, then 300 of a */
    assert_ok(pt_reverse_key(m, "ord-two", 10000, harness_key(), &rv));
    cr_assert_eq(rv->points_restored, 500);
    assert_balance(m, "mbr", 700, 0, 0);
    Loyalty__V1__PointsListLotsResponse *lots = pt_lots(m, "mbr", false);
    cr_assert_eq(lots->n_lots, 2);
    cr_assert_eq(lots->lots[0]->remaining, 300);
    cr_assert_eq(lots->lots[1]->remaining, 400);
    pt_assert_ledger_clean(m);
}

Test(points_rows, an_earns_claim_lives_in_its_lot_and_its_reversal_reads_it_there) {
    /* Goal: an order's earn writes its lot (holding the claim and the growth) and no earn_refs
     * or orders row; a retry under another key is ALREADY_EARNED; the redemption with the same
     * reference writes no order row either (its committed hold is its record); ReverseOrder
     * claws back the earn read from its lot (points and growth, pro rata and capped), restores
     * the hold's points, and its first reversal writes the order's one row. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("rowsearn");
    pt_configure(m);
    pt_earn_points(m, "mbr", 1000, NULL);
    Loyalty__V1__PointsEarnResponse *er = NULL;
    assert_ok(pt_earn_order(m, "mbr", "ord-9", 5000, NULL, &er));
    cr_assert_eq(er->points, 50);
    cr_assert_eq(sql_count("SELECT count(*) FROM points.earn_refs WHERE merchant_id = $1", m, NULL),
                 0, "an earn with a lot wrote an earn_refs row");
    cr_assert_eq(sql_count("SELECT count(*) FROM points.orders WHERE merchant_id = $1", m, NULL), 0,
                 "an earn wrote an order row");
    cr_assert_str_eq(pt_sql_value("SELECT earn_growth FROM points.lots WHERE merchant_id = $1 "
                                  " AND id = $2",
                                  m, er->lot->id),
                     "50");
    assert_status(pt_earn_order(m, "mbr", "ord-9", 5000, NULL, NULL), STATUS_ALREADY_EXISTS,
                  "ALREADY_EARNED");

    Loyalty__V1__PointsHold *h = NULL;
    assert_ok(pt_hold(m, "mbr", 200, "ord-9", 600, &h));
    assert_ok(pt_commit(m, h->id, NULL, NULL));
    cr_assert_eq(sql_count("SELECT count(*) FROM points.orders WHERE merchant_id = $1", m, NULL), 0,
                 "a redemption wrote an order row: its committed hold is its record");

    Loyalty__V1__PointsReverseOrderResponse *rv = NULL;
    assert_ok(pt_reverse_key(m, "ord-9", 5000, harness_key(), &rv));
    cr_assert_eq(rv->points_clawed_back, 25);
    cr_assert_eq(rv->growth_delta, -25);
    cr_assert_eq(rv->points_restored, 100);
    cr_assert_str_eq(rv->member_id, "mbr");
    cr_assert_eq(sql_count("SELECT count(*) FROM points.orders WHERE merchant_id = $1", m, NULL), 1,
                 "the first reversal writes the order's row");
    assert_ok(pt_reverse_key(m, "ord-9", 5000, harness_key(), &rv));
    cr_assert_eq(rv->points_clawed_back, 25);
    cr_assert_eq(rv->points_restored, 100);
    cr_assert_eq(rv->reversed_bps_total, 10000);
    assert_balance(m, "mbr", 1000, 0, 0);
    cr_assert_eq(pt_balance(m, "mbr")->growth, 0);
    pt_assert_ledger_clean(m);
}

Test(points_rows, an_order_that_only_earned_gets_its_row_at_its_first_reversal) {
    /* Goal: ReverseOrder of a reference that only earned (no row in orders) finds the earn in
     * its lot, and its first reversal writes the row that caps the next ones; a reference that
     * another member earned refuses that member's redemption. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("rowsonly");
    pt_configure(m);
    assert_ok(pt_earn_order(m, "mbr-1", "ord-1", 10000, NULL, NULL));
    Loyalty__V1__PointsReverseOrderResponse *rv = NULL;
    assert_ok(pt_reverse_key(m, "ord-1", 3000, harness_key(), &rv));
    cr_assert_eq(rv->points_clawed_back, 30);
    cr_assert_str_eq(pt_sql_value("SELECT reversed_bps FROM points.orders "
                                  "WHERE merchant_id = $1 AND reference = $2",
                                  m, "ord-1"),
                     "3000");
    assert_ok(pt_reverse_key(m, "ord-1", 7000, harness_key(), &rv));
    cr_assert_eq(rv->points_clawed_back, 70);
    assert_status(pt_reverse_key(m, "ord-1", 1, harness_key(), NULL), STATUS_FAILED_PRECONDITION,
                  "REVERSAL_EXCEEDS_ORDER");
    assert_balance(m, "mbr-1", 0, 0, 0);
    assert_status(pt_reverse_key(m, "ord-none", 10000, harness_key(), NULL), STATUS_NOT_FOUND,
                  "ORDER_NOT_FOUND");

    /* ord-2 belongs to mbr-1 through its earn: mbr-2 cannot redeem with it. */
    assert_ok(pt_earn_order(m, "mbr-1", "ord-2", 10000, NULL, NULL));
    pt_earn_points(m, "mbr-2", 500, NULL);
    Loyalty__V1__PointsHold *h = NULL;
    assert_ok(pt_hold(m, "mbr-2", 100, "ord-2", 600, &h));
    assert_status(pt_commit(m, h->id, NULL, NULL), STATUS_FAILED_PRECONDITION,
                  "REFERENCE_MEMBER_MISMATCH");
    cr_assert_eq(pt_get_hold(m, h->id)->status,
                 LOYALTY__V1__POINTS_HOLD_STATUS__POINTS_HOLD_STATUS_ACTIVE);
    assert_ok(pt_release(m, h->id, NULL, NULL));
    pt_assert_ledger_clean(m);
}

Test(points_rows, a_reversal_touches_only_the_ledger_of_the_references_owner) {
    /* Goal: should two members' earn and redemption of one reference both stand (a commit and
     * an earn of another member at the same instant: no lock orders them), ReverseOrder acts on
     * the owner its claim names and restores only that member's holds: the other member's lots
     * and totals stay as they were and the ledger stays clean. The state is made with SQL. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("rowsowner");
    pt_configure(m);
    pt_earn_points(m, "mbr-a", 500, NULL);
    Loyalty__V1__PointsHold *h = NULL;
    assert_ok(pt_hold(m, "mbr-a", 100, "ord-x", 600, &h));
    assert_ok(pt_commit(m, h->id, NULL, NULL));
    Loyalty__V1__PointsEarnResponse *er = NULL;
    assert_ok(pt_earn_order(m, "mbr-b", "ord-y", 10000, NULL, &er));
    cr_assert_eq(pt_sql("UPDATE points.lots SET reference = 'ord-x' WHERE merchant_id = $1 "
                        " AND id = $2",
                        m, er->lot->id, NULL),
                 1);
    Loyalty__V1__PointsReverseOrderResponse *rv = NULL;
    assert_ok(pt_reverse_key(m, "ord-x", 10000, harness_key(), &rv));
    cr_assert_str_eq(rv->member_id, "mbr-b");
    cr_assert_eq(rv->points_clawed_back, 100);
    cr_assert_eq(rv->points_restored, 0);
    assert_balance(m, "mbr-a", 400, 0, 0);
    assert_balance(m, "mbr-b", 0, 0, 0);
    pt_assert_ledger_clean(m);
}

Test(points_rows, an_earn_without_points_claims_its_reference_in_earn_refs) {
    /* Goal: an order too small to earn a point makes no lot: its claim goes to earn_refs, a
     * second earn of the reference is ALREADY_EARNED, and its reversal finds it (nothing to
     * claw back). */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("rowszero");
    pt_configure(m);
    Loyalty__V1__PointsEarnResponse *er = NULL;
    assert_ok(pt_earn_order(m, "mbr", "ord-small", 50, NULL, &er));
    cr_assert_eq(er->points, 0);
    cr_assert_null(er->lot);
    cr_assert_eq(sql_count("SELECT count(*) FROM points.earn_refs WHERE merchant_id = $1 "
                           " AND reference = $2",
                           m, "ord-small"),
                 1);
    assert_status(pt_earn_order(m, "mbr", "ord-small", 5000, NULL, NULL), STATUS_ALREADY_EXISTS,
                  "ALREADY_EARNED");
    assert_status(pt_earn_order(m, "other", "ord-small", 5000, NULL, NULL), STATUS_ALREADY_EXISTS,
                  "ALREADY_EARNED");
    Loyalty__V1__PointsReverseOrderResponse *rv = NULL;
    assert_ok(pt_reverse_key(m, "ord-small", 10000, harness_key(), &rv));
    cr_assert_eq(rv->points_clawed_back, 0);
    cr_assert_str_eq(rv->member_id, "mbr");
    pt_earn_points(m, "mbr", 10, NULL); /* an account to verify */
    pt_assert_ledger_clean(m);
}

/* ---- data written before migrations 004-006 ---- */

/* Runs a script (several statements, no parameters) on the test's own database. */
static void exec_script(PGconn *pg, const char *sql) {
    PGresult *r = PQexec(pg, sql);
    cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
              "%.200s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = arena_alloc(&arena, (size_t)n + 1);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

/* Applies a migration file as the service would and records it as applied. */
static void apply_migration(PGconn *pg, const char *dir, const char *origin, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/%s", LOYALTY_TEST_SOURCE_DIR, dir, name);
    exec_script(pg, read_file(path));
    char sql[512];
    snprintf(sql, sizeof sql, "INSERT INTO schema_migrations (id) VALUES ('%s/%s')", origin, name);
    exec_script(pg, sql);
}

Test(points_rows, rows_written_before_the_migrations_read_verify_and_reverse_after_them) {
    /* Goal: a points schema at migration 003 holding one-lot and two-lot entries and holds in
     * entry_lots / hold_lots, and an order's earn in earn_refs and orders, is converted by
     * 004-006 when the service starts: the one-lot shares move onto their entries and holds,
     * the claim into its lot, order rows without reversals go; the ledger verifies, history and
     * holds read as before, the earn cannot be earned again, and both orders reverse. */
    snprintf(pt_private_dsn, sizeof pt_private_dsn, "%s", harness_private_database());
    PGconn *pg = PQconnectdb(pt_private_dsn);
    cr_assert_eq(PQstatus(pg), CONNECTION_OK);
    exec_script(pg, "SET client_min_messages = warning; CREATE SCHEMA points; "
                    "SET search_path TO points; CREATE TABLE schema_migrations ("
                    " id text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())");
    const char *runtime[] = {"001_idempotency.sql",
                             "002_outbox.sql",
                             "003_refuse.sql",
                             "004_audit.sql",
                             "005_audit_merchant_key.sql",
                             "006_audit_calls.sql",
                             "007_outbox_commit_async.sql"};
    for (size_t i = 0; i < sizeof runtime / sizeof runtime[0]; i++) {
        apply_migration(pg, "lib/migrations", "runtime", runtime[i]);
    }
    apply_migration(pg, "points-svc/migrations", "points", "001_points.sql");
    apply_migration(pg, "points-svc/migrations", "points", "002_lots_expiring.sql");
    apply_migration(pg, "points-svc/migrations", "points", "003_audit.sql");
    /* mbr: earned 100 (order ord-1, lot l1) and 50 (lot l2); hold h1 of 120 (ord-2: 100 of l1,
     * 20 of l2) committed; hold h2 of 10 (ord-3: l2) active. */
    exec_script(
        pg,
        "INSERT INTO lots (merchant_id, id, member_id, source, reference, points, remaining, "
        " status, earned_at, available_at) VALUES "
        " ('mig', 'l1', 'mbr', 1, 'ord-1', 100, 0, 2, now() - interval '3 days', "
        "  now() - interval '3 days'), "
        " ('mig', 'l2', 'mbr', 5, '', 50, 20, 2, now() - interval '2 days', "
        "  now() - interval '2 days'); "
        "INSERT INTO holds (merchant_id, id, member_id, reference, points, status, created_at, "
        " expires_at, finished_at) VALUES "
        " ('mig', 'h1', 'mbr', 'ord-2', 120, 2, now() - interval '1 day', now() + interval '1 "
        "day', now() - interval '1 day'), "
        " ('mig', 'h2', 'mbr', 'ord-3', 10, 1, now() - interval '1 hour', "
        "  now() + interval '1 day', NULL); "
        "INSERT INTO hold_lots (merchant_id, hold_id, lot_id, points) VALUES "
        " ('mig', 'h1', 'l1', 100), ('mig', 'h1', 'l2', 20), ('mig', 'h2', 'l2', 10); "
        "INSERT INTO entries (merchant_id, id, member_id, kind, available_delta, held_delta, "
        " available_after, source, reference, hold_id, created_at) VALUES "
        " ('mig', 'e1', 'mbr', 1, 100, 0, 100, 1, 'ord-1', '', now() - interval '3 days'), "
        " ('mig', 'e2', 'mbr', 1, 50, 0, 150, 5, '', '', now() - interval '2 days'), "
        " ('mig', 'e3', 'mbr', 3, -120, 120, 30, 0, 'ord-2', 'h1', now() - interval '1 day'), "
        " ('mig', 'e4', 'mbr', 6, 0, -120, 30, 0, 'ord-2', 'h1', now() - interval '1 day'), "
        " ('mig', 'e5', 'mbr', 3, -10, 10, 20, 0, 'ord-3', 'h2', now() - interval '1 hour'); "
        "INSERT INTO entry_lots (merchant_id, entry_id, lot_id, points) VALUES "
        " ('mig', 'e1', 'l1', 100), ('mig', 'e2', 'l2', 50), ('mig', 'e3', 'l1', -100), "
        " ('mig', 'e3', 'l2', -20), ('mig', 'e5', 'l2', -10); "
        "INSERT INTO growth_entries (merchant_id, id, member_id, kind, growth, growth_after, "
        " source, reference, created_at) VALUES "
        " ('mig', 'g1', 'mbr', 1, 100, 100, 1, 'ord-1', now() - interval '3 days'); "
        "INSERT INTO earn_refs (merchant_id, source, reference, member_id, lot_id, points, growth, "
        " created_at) VALUES ('mig', 1, 'ord-1', 'mbr', 'l1', 100, 100, now()); "
        "INSERT INTO orders (merchant_id, reference, member_id, earned_points, earned_growth, "
        " earn_lot_id, redeemed_points) VALUES "
        " ('mig', 'ord-1', 'mbr', 100, 100, 'l1', 0), ('mig', 'ord-2', 'mbr', 0, 0, '', 120); "
        "INSERT INTO accounts (merchant_id, member_id, lots_points, held, lifetime_earned, growth, "
        " next_due_at) VALUES ('mig', 'mbr', 20, 10, 150, 100, now() + interval '1 day')");
    PQfinish(pg);

    static char dsn_env[sizeof pt_private_dsn + 16];
    snprintf(dsn_env, sizeof dsn_env, "LOYALTY_PG_DSN=%s", pt_private_dsn);
    const char *env[] = {dsn_env, "JOB_INTERVAL_S=0", NULL};
    harness_start(&svc, "points-svc", env); /* migrates 004-006 */
    const char *m = "mig";
    pt_assert_ledger_clean(m);
    cr_assert_eq(
        sql_count("SELECT count(*) FROM points.entry_lots WHERE merchant_id = $1", m, NULL), 2,
        "only the two-lot entry keeps entry_lots rows");
    cr_assert_str_eq(pt_sql_value("SELECT lot_id || ':' || lot_points FROM points.entries "
                                  "WHERE merchant_id = $1 AND id = $2",
                                  m, "e5"),
                     "l2:-10");
    cr_assert_str_eq(pt_sql_value("SELECT coalesce(lot_id, 'none') FROM points.holds "
                                  "WHERE merchant_id = $1 AND id = $2",
                                  m, "h2"),
                     "l2");
    cr_assert_eq(sql_count("SELECT count(*) FROM points.hold_lots WHERE merchant_id = $1", m, NULL),
                 2);
    cr_assert_eq(sql_count("SELECT count(*) FROM points.earn_refs WHERE merchant_id = $1", m, NULL),
                 0);
    cr_assert_str_eq(pt_sql_value("SELECT earn_growth FROM points.lots WHERE merchant_id = $1 "
                                  " AND id = $2",
                                  m, "l1"),
                     "100");
    cr_assert_eq(sql_count("SELECT count(*) FROM points.orders WHERE merchant_id = $1", m, NULL), 0,
                 "order rows without reversals stay");

    /* Reads as before. */
    Loyalty__V1__PointsListHistoryResponse *h = pt_history(m, "mbr");
    cr_assert_eq(h->n_entries, 5);
    cr_assert_str_eq(h->entries[0]->id, "e5");
    cr_assert_eq(h->entries[0]->n_lots, 1);
    cr_assert_str_eq(h->entries[0]->lots[0]->lot_id, "l2");
    cr_assert_eq(h->entries[0]->lots[0]->points, -10);
    cr_assert_eq(h->entries[2]->n_lots, 2);
    cr_assert_eq(h->entries[4]->n_lots, 1);
    cr_assert_eq(h->entries[4]->lots[0]->points, 100);
    Loyalty__V1__PointsHold *h2 = pt_get_hold(m, "h2");
    cr_assert_eq(h2->n_lots, 1);
    cr_assert_str_eq(h2->lots[0]->lot_id, "l2");
    cr_assert_eq(h2->lots[0]->points, -10);
    assert_balance(m, "mbr", 20, 10, 0);
    assert_status(pt_earn_order(m, "mbr", "ord-1", 5000, NULL, NULL), STATUS_ALREADY_EXISTS,
                  "ALREADY_EARNED");

    /* The migrated one-lot hold releases into its lot; both orders reverse. */
    assert_ok(pt_release(m, "h2", NULL, NULL));
    assert_balance(m, "mbr", 30, 0, 0);
    Loyalty__V1__PointsReverseOrderResponse *rv = NULL;
    assert_ok(pt_reverse_key(m, "ord-1", 10000, harness_key(), &rv));
    cr_assert_eq(rv->points_clawed_back, 100);
    cr_assert_eq(rv->debt_added, 70);
    cr_assert_eq(rv->growth_delta, -100);
    assert_ok(pt_reverse_key(m, "ord-2", 10000, harness_key(), &rv));
    cr_assert_eq(rv->points_restored, 120);
    assert_balance(m, "mbr", 50, 0, 0);
    cr_assert_eq(pt_balance(m, "mbr")->debt, 0);
    pt_assert_ledger_clean(m);
}
