/* test_runtime_db_rowset.c -- row sets (db_rowset_append) against a real PostgreSQL: a
 * transaction's rows of one statement are written by one statement with its COMMIT, their
 * values arrive exactly (quotes, backslashes, commas, braces, NULL, the word NULL, non-ASCII
 * text), in the order they were added; other statements of the transaction do not send them,
 * db_rowset_flush makes the next one see them; they roll back with the transaction, and with a
 * failed db_tx_part while the transaction's own rows stay; a failing row fails the commit; more
 * sets than DB_ROWSETS_MAX all land. */
#include "db.h"
#include "harness.h"
#include "ids.h"
#include "rpc_server.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static db_t *db;
static PGconn *observer; /* a second session: sees committed rows only */
static char schema[32];

static void setup(void) {
    harness_init();
    harness_schema_name("rowset_test", schema);
    db = harness_db_create(schema, "rowset-test");
    char ddl[320];
    snprintf(ddl, sizeof ddl,
             "CREATE SCHEMA %s; CREATE TABLE %s.t (seq bigint GENERATED ALWAYS AS IDENTITY, "
             "k text PRIMARY KEY, v bigint, note text)",
             schema, schema);
    status_t st = db_exec_script(db, ddl);
    cr_assert(status_is_ok(&st), "%s", st.message);
    observer = harness_observer();
}

static void teardown(void) {
    harness_schema_drop(db, schema);
    db_destroy(db);
    PQfinish(observer);
    harness_fini();
}

TestSuite(runtime_db_rowset, .init = setup, .fini = teardown, .timeout = 60);

static const db_rowset_def_t T_ROWS = {
    .sql = "INSERT INTO t (k, v, note) SELECT k, v, note FROM unnest($1::text[], $2::bigint[], "
           " $3::text[]) WITH ORDINALITY AS x(k, v, note, ord) ORDER BY ord",
    .n_cols = 3,
};

static status_t add_row(db_t *d, const db_rowset_def_t *def, const char *k, int64_t v,
                        const char *note) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, k);
    db_param_int(&p, v);
    db_param_text(&p, note);
    return db_rowset_append(d, def, &p);
}

static int64_t observe_int(const char *fmt) {
    char sql[256];
    snprintf(sql, sizeof sql, fmt, schema);
    PGresult *r = PQexec(observer, sql);
    cr_assert(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
    int64_t v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

static int64_t committed_rows(void) {
    return observe_int("SELECT count(*) FROM %s.t");
}

/* The rows the transaction itself sees: 0 while its rows have not been sent. */
static int64_t count_in_tx(db_t *d, status_t *st) {
    PGresult *r = NULL;
    *st = db_exec(d, "SELECT count(*) FROM t", NULL, &r);
    if (!status_is_ok(st)) {
        return -1;
    }
    int64_t n = db_get_int(r, 0, 0);
    PQclear(r);
    return n;
}

static const char *const NOTES[] = {
    "plain", "quote \" and backslash \\ inside", "a,b {c} d", "NULL", "", "Zürich 東京 ✓",
};
#define N_NOTES (sizeof NOTES / sizeof NOTES[0])

typedef struct seen_arg {
    int64_t before_flush, after_flush;
} seen_arg_t;

static status_t values_tx(db_t *d, void *arg) {
    seen_arg_t *a = arg;
    status_t st = status_ok();
    for (size_t i = 0; i < N_NOTES && status_is_ok(&st); i++) {
        char k[16];
        snprintf(k, sizeof k, "k%zu", i);
        st = add_row(d, &T_ROWS, k, (int64_t)i * 1000000000000LL - 7, NOTES[i]);
    }
    if (status_is_ok(&st)) {
        st = add_row(d, &T_ROWS, "null", 0, NULL);
    }
    if (status_is_ok(&st)) {
        a->before_flush = count_in_tx(d, &st);
    }
    if (status_is_ok(&st)) {
        st = db_rowset_flush(d, &T_ROWS);
    }
    if (status_is_ok(&st)) {
        a->after_flush = count_in_tx(d, &st);
    }
    if (status_is_ok(&st)) { /* rows after a flush: a second statement at the commit */
        st = add_row(d, &T_ROWS, "late", 1, "after the flush");
    }
    return st;
}

Test(runtime_db_rowset, rows_land_exactly_in_order_with_the_commit_and_a_flush_shows_them) {
    seen_arg_t a = {-1, -1};
    status_t st = db_tx(db, values_tx, &a);
    cr_assert(status_is_ok(&st), "%s", st.message);
    cr_assert_eq(a.before_flush, 0, "a row was sent before the commit or a flush");
    cr_assert_eq(a.after_flush, (int64_t)N_NOTES + 1, "the flush did not carry the rows");
    cr_assert_eq(committed_rows(), (int64_t)N_NOTES + 2);
    for (size_t i = 0; i < N_NOTES; i++) {
        char sql[200];
        snprintf(sql, sizeof sql, "SELECT note, v, seq FROM %s.t WHERE k = 'k%zu'", schema, i);
        PGresult *r = PQexec(observer, sql);
        cr_assert(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1);
        cr_assert(!PQgetisnull(r, 0, 0), "row %zu: the text came back NULL", i);
        cr_assert_str_eq(PQgetvalue(r, 0, 0), NOTES[i]);
        cr_assert_eq(strtoll(PQgetvalue(r, 0, 1), NULL, 10), (int64_t)i * 1000000000000LL - 7);
        cr_assert_eq(strtoll(PQgetvalue(r, 0, 2), NULL, 10),
                     observe_int("SELECT min(seq) FROM %s.t") + (int64_t)i,
                     "row %zu is out of the order it was added in", i);
        PQclear(r);
    }
    cr_assert_eq(observe_int("SELECT count(*) FROM %s.t WHERE k = 'null' AND note IS NULL"), 1);
    cr_assert_eq(observe_int("SELECT max(seq) - (SELECT seq FROM %1$s.t WHERE k = 'late') "
                             "FROM %1$s.t"),
                 0, "the row added after the flush is not the last one");
}

static status_t add_then_fail_tx(db_t *d, void *arg) {
    (void)arg;
    status_t st = add_row(d, &T_ROWS, "gone", 1, "rolled back");
    return status_is_ok(&st)
               ? status_make_relayed(STATUS_ABORTED, "TEST_FAILURE", "the handler failed")
               : st;
}

Test(runtime_db_rowset, rows_roll_back_with_their_transaction) {
    status_t st = db_tx(db, add_then_fail_tx, NULL);
    cr_assert_eq(st.code, STATUS_ABORTED);
    cr_assert_eq(committed_rows(), 0, "a rolled-back transaction's row was written");
    /* the next transaction on the same handle starts with no rows waiting */
    st = db_tx(db, values_tx, &(seen_arg_t){0});
    cr_assert(status_is_ok(&st), "%s", st.message);
    cr_assert_eq(observe_int("SELECT count(*) FROM %s.t WHERE k = 'gone'"), 0);
}

static status_t duplicate_tx(db_t *d, void *arg) {
    (void)arg;
    status_t st = add_row(d, &T_ROWS, "same", 1, NULL);
    return status_is_ok(&st) ? add_row(d, &T_ROWS, "same", 2, NULL) : st;
}

Test(runtime_db_rowset, a_failing_row_fails_the_commit_and_nothing_lands) {
    status_t st = db_tx(db, duplicate_tx, NULL);
    cr_assert_eq(st.code, STATUS_ALREADY_EXISTS, "%d %s", st.code, st.message);
    cr_assert_eq(committed_rows(), 0);
}

static status_t part_fails(db_t *d, void *arg) {
    (void)arg;
    status_t st = add_row(d, &T_ROWS, "part", 2, "the part's");
    return status_is_ok(&st)
               ? status_make_relayed(STATUS_ABORTED, "TEST_FAILURE", "the part failed")
               : st;
}

static status_t part_keeps(db_t *d, void *arg) {
    (void)arg;
    return add_row(d, &T_ROWS, "kept part", 3, "a part that succeeded");
}

static status_t parts_tx(db_t *d, void *arg) {
    (void)arg;
    status_t st = add_row(d, &T_ROWS, "own", 1, "the transaction's");
    if (status_is_ok(&st)) {
        status_t failed = db_tx_part(d, part_fails, NULL);
        cr_assert_eq(failed.code, STATUS_ABORTED);
        st = db_tx_part(d, part_keeps, NULL);
    }
    return st;
}

Test(runtime_db_rowset, a_failed_part_drops_its_rows_and_keeps_the_transactions) {
    status_t st = db_tx(db, parts_tx, NULL);
    cr_assert(status_is_ok(&st), "%s", st.message);
    cr_assert_eq(observe_int("SELECT count(*) FROM %s.t WHERE k = 'own'"), 1);
    cr_assert_eq(observe_int("SELECT count(*) FROM %s.t WHERE k = 'kept part'"), 1);
    cr_assert_eq(observe_int("SELECT count(*) FROM %s.t WHERE k = 'part'"), 0,
                 "the failed part's row was written");
}

/* DB_ROWSETS_MAX + 3 definitions of the same statement: each is a set of its own. */
static db_rowset_def_t many_defs[DB_ROWSETS_MAX + 3];

static status_t many_sets_tx(db_t *d, void *arg) {
    (void)arg;
    status_t st = status_ok();
    for (int round = 0; round < 2 && status_is_ok(&st); round++) {
        for (size_t i = 0; i < sizeof many_defs / sizeof many_defs[0] && status_is_ok(&st); i++) {
            many_defs[i] = T_ROWS;
            char k[24];
            snprintf(k, sizeof k, "set%zu-%d", i, round);
            st = add_row(d, &many_defs[i], k, (int64_t)i, NULL);
        }
    }
    return st;
}

Test(runtime_db_rowset, more_sets_than_wait_at_once_all_land) {
    status_t st = db_tx(db, many_sets_tx, NULL);
    cr_assert(status_is_ok(&st), "%s", st.message);
    cr_assert_eq(committed_rows(), 2 * (int64_t)(sizeof many_defs / sizeof many_defs[0]));
}
