/* test_runtime_db.c -- deferred writes (db_exec_deferred) against a real PostgreSQL: they are
 * not sent until the transaction's next round trip, then run before the statement that carries
 * them; their errors, refused row counts and named constraints fail that statement and roll the
 * whole transaction back (also when the only thing after them is the COMMIT); values are copied
 * when deferred; more than DB_DEFERRED_MAX of them all land; refuse() in a statement fails it in
 * PostgreSQL, so a COMMIT in the same round trip does not commit. */
#include "db.h"
#include "harness.h"
#include "ids.h"
#include "rpc_server.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static db_t *db;
static PGconn *observer; /* a second session: sees locks and committed rows only */
static char schema[32];

static void setup(void) {
    harness_init();
    harness_schema_name("db_test", schema);
    db = harness_db_create(schema, "db-test");
    char ddl[256];
    snprintf(ddl, sizeof ddl,
             "CREATE SCHEMA %s; CREATE TABLE %s.t (k text PRIMARY KEY, v bigint NOT NULL, "
             "CONSTRAINT t_v_unique UNIQUE (v))",
             schema, schema);
    status_t st = db_exec_script(db, ddl);
    cr_assert(status_is_ok(&st), "%s", st.message);
    st = db_migrate(db, runtime_migrations, NULL); /* refuse() */
    cr_assert(status_is_ok(&st), "%s", st.message);
    observer = harness_observer();
}

static void teardown(void) {
    harness_schema_drop(db, schema);
    db_destroy(db);
    PQfinish(observer);
    harness_fini();
}

TestSuite(runtime_db, .init = setup, .fini = teardown, .timeout = 60);

static const char *const insert_sql = "INSERT INTO t (k, v) VALUES ($1, $2)";

static status_t defer_insert(db_t *d, const char *k, int64_t v, const db_expect_t *expect) {
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, k);
    db_param_int(&p, v);
    return db_exec_deferred(d, insert_sql, &p, expect);
}

static int64_t observe_int(const char *sql) {
    PGresult *r = PQexec(observer, sql);
    cr_assert(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
    int64_t v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

static int64_t committed_rows(void) {
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.t", schema);
    return observe_int(sql);
}

static int64_t lock_held(int64_t key) {
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %lld "
             "AND granted",
             (long long)key);
    return observe_int(sql);
}

typedef struct sent_arg {
    int64_t held_before, held_after, seen;
} sent_arg_t;

static status_t sent_tx(db_t *d, void *arg) {
    sent_arg_t *a = arg;
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, 424242);
    status_t st = db_exec_deferred(d, "SELECT pg_advisory_xact_lock($1::bigint)", &p, NULL);
    if (status_is_ok(&st)) {
        st = defer_insert(d, "a", 1, NULL);
    }
    if (!status_is_ok(&st)) {
        return st;
    }
    a->held_before = lock_held(424242);
    PGresult *r = NULL;
    st = db_exec(d, "SELECT count(*) FROM t", NULL, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    a->seen = db_get_int(r, 0, 0);
    PQclear(r);
    a->held_after = lock_held(424242);
    return status_ok();
}

Test(runtime_db, deferred_writes_wait_for_the_next_statement_and_run_before_it) {
    sent_arg_t a = {0};
    status_t st = db_tx(db, sent_tx, &a);
    cr_assert(status_is_ok(&st), "%s", st.message);
    cr_assert_eq(a.held_before, 0, "a deferred statement was sent before the next round trip");
    cr_assert_eq(a.held_after, 1, "the next statement did not carry the deferred ones");
    cr_assert_eq(a.seen, 1, "the statement did not see the deferred insert");
    cr_assert_eq(committed_rows(), 1);
}

typedef struct fail_arg {
    int second_value;
    bool last_is_commit; /* nothing after the failing write but the COMMIT */
    db_expect_t expect;
    bool update_instead;
} fail_arg_t;

static status_t fail_tx(db_t *d, void *arg) {
    const fail_arg_t *a = arg;
    PGresult *r = NULL;
    status_t st = db_exec(d, "INSERT INTO t (k, v) VALUES ('first', 100)", NULL, NULL);
    if (status_is_ok(&st)) {
        st = defer_insert(d, "ok", 7, NULL);
    }
    if (status_is_ok(&st) && a->update_instead) {
        db_params_t p;
        db_params_init(&p);
        db_param_text(&p, "nobody");
        st = db_exec_deferred(d, "UPDATE t SET v = v + 1 WHERE k = $1", &p, &a->expect);
    } else if (status_is_ok(&st)) {
        st = defer_insert(d, "dup", a->second_value, &a->expect);
    }
    if (!status_is_ok(&st) || a->last_is_commit) {
        return st;
    }
    st = db_exec(d, "SELECT count(*) FROM t", NULL, &r);
    PQclear(r);
    return st;
}

Test(runtime_db, a_failing_deferred_write_fails_the_statement_that_carries_it_and_rolls_back) {
    fail_arg_t a = {.second_value = 100, .expect = {.rows = -1}};
    status_t st = db_tx(db, fail_tx, &a);
    cr_assert_eq(st.code, STATUS_ALREADY_EXISTS, "%s", st.message);
    cr_assert_str_eq(db_last_constraint(db), "t_v_unique");
    cr_assert_eq(committed_rows(), 0, "a write of the failed transaction was committed");
    a.last_is_commit = true;
    st = db_tx(db, fail_tx, &a);
    cr_assert_eq(st.code, STATUS_ALREADY_EXISTS, "%s", st.message);
    cr_assert_eq(committed_rows(), 0, "the COMMIT behind a failed write committed");
}

Test(runtime_db, a_named_constraint_answers_the_refusal) {
    fail_arg_t a = {
        .second_value = 100,
        .expect = {.rows = -1,
                   .constraint = "t_v_unique",
                   .refusal = status_make_relayed(STATUS_ALREADY_EXISTS, "VALUE_TAKEN", "x")}};
    for (int last_is_commit = 0; last_is_commit <= 1; last_is_commit++) {
        a.last_is_commit = last_is_commit;
        status_t st = db_tx(db, fail_tx, &a);
        cr_assert_str_eq(st.reason, "VALUE_TAKEN", "%s", st.message);
    }
    cr_assert_eq(committed_rows(), 0);
}

Test(runtime_db, a_refused_row_count_rolls_back_even_when_only_the_commit_follows) {
    /* The row count is checked by the runtime, not by PostgreSQL: a COMMIT sent in the same
     * round trip would commit regardless. */
    fail_arg_t a = {
        .update_instead = true,
        .expect = {.rows = 1,
                   .refusal = status_make_relayed(STATUS_FAILED_PRECONDITION, "NOBODY", "x")}};
    for (int last_is_commit = 0; last_is_commit <= 1; last_is_commit++) {
        a.last_is_commit = last_is_commit;
        status_t st = db_tx(db, fail_tx, &a);
        cr_assert_str_eq(st.reason, "NOBODY", "%s", st.message);
        cr_assert_eq(committed_rows(), 0, "rows committed though a write was refused");
    }
    a.expect.rows = 0; /* the count it really touches: accepted */
    a.last_is_commit = true;
    status_t st = db_tx(db, fail_tx, &a);
    cr_assert(status_is_ok(&st), "%s", st.message);
    cr_assert_eq(committed_rows(), 2);
}

static status_t many_tx(db_t *d, void *arg) {
    (void)arg;
    for (int i = 0; i < 3 * DB_DEFERRED_MAX + 1; i++) {
        char k[16]; /* reused at once: the runtime must have copied it */
        snprintf(k, sizeof k, "k%d", i);
        status_t st = defer_insert(d, k, 1000 + i, NULL);
        memset(k, 'X', sizeof k - 1);
        k[sizeof k - 1] = '\0';
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    return status_ok();
}

Test(runtime_db, more_writes_than_wait_at_once_all_land_with_their_values) {
    status_t st = db_tx(db, many_tx, NULL);
    cr_assert(status_is_ok(&st), "%s", st.message);
    cr_assert_eq(committed_rows(), 3 * DB_DEFERRED_MAX + 1);
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.t WHERE k = 'k' || (v - 1000)", schema);
    cr_assert_eq(observe_int(sql), 3 * DB_DEFERRED_MAX + 1, "a deferred value was not copied");
}

typedef struct refuse_arg {
    bool deferred;
} refuse_arg_t;

static const char *const bump_sql =
    "WITH u AS (UPDATE t SET v = v + 1 WHERE k = $1 RETURNING 1) "
    "SELECT refuse('NOBODY_THERE') WHERE NOT EXISTS (SELECT FROM u)";

static status_t refuse_tx(db_t *d, void *arg) {
    const refuse_arg_t *a = arg;
    status_t st = defer_insert(d, "kept?", 5, NULL);
    if (!status_is_ok(&st)) {
        return st;
    }
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, "nobody");
    if (!a->deferred) {
        return db_exec(d, bump_sql, &p, NULL);
    }
    db_expect_t expect = {.rows = -1,
                          .refusal =
                              status_make_relayed(STATUS_FAILED_PRECONDITION, "BUMP_REFUSED", "x")};
    return db_exec_deferred(d, bump_sql, &p, &expect); /* the COMMIT follows in its round trip */
}

Test(runtime_db, refuse_in_a_statement_fails_it_and_the_commit_in_its_round_trip) {
    refuse_arg_t a = {.deferred = false};
    status_t st = db_tx(db, refuse_tx, &a);
    cr_assert_eq(st.code, STATUS_FAILED_PRECONDITION, "%s", st.message);
    cr_assert_str_eq(st.reason, "NOBODY_THERE");
    a.deferred = true;
    st = db_tx(db, refuse_tx, &a);
    cr_assert_str_eq(st.reason, "BUMP_REFUSED", "%s", st.message);
    cr_assert_eq(committed_rows(), 0, "the COMMIT behind a refused write committed");
}

typedef struct all_arg {
    bool fail_second;
    int64_t counts[3];
} all_arg_t;

static status_t all_tx(db_t *d, void *arg) {
    all_arg_t *a = arg;
    status_t st = a->fail_second ? defer_insert(d, "w", 3, NULL) : defer_insert(d, "x", 1, NULL);
    if (!status_is_ok(&st)) {
        return st;
    }
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, "x");
    db_exec_item_t items[3] = {
        {.sql = "SELECT count(*) FROM t"},
        {.sql = a->fail_second ? "INSERT INTO t (k, v) VALUES ('z', 1)"
                               : "INSERT INTO t (k, v) VALUES ('y', 2) RETURNING v"},
        {.sql = "SELECT count(*) FROM t WHERE k <> $1", .params = &p},
    };
    st = db_exec_all(d, items, 3);
    for (int i = 0; i < 3; i++) {
        if (!status_is_ok(&st)) {
            cr_assert_null(items[i].out, "no result of a failed round trip is handed out");
            continue;
        }
        a->counts[i] = db_get_int(items[i].out, 0, 0);
        PQclear(items[i].out);
    }
    return st;
}

Test(runtime_db, statements_sent_together_see_the_deferred_writes_and_each_other_in_order) {
    all_arg_t a = {0};
    status_t st = db_tx(db, all_tx, &a);
    cr_assert(status_is_ok(&st), "%s", st.message);
    cr_assert_eq(a.counts[0], 1, "the first statement sees the deferred insert");
    cr_assert_eq(a.counts[1], 2, "the second statement's own result");
    cr_assert_eq(a.counts[2], 1, "the third sees the second's row, with its own parameter");
    cr_assert_eq(committed_rows(), 2);

    /* The second fails (v = 1 is taken): its error, nothing handed out, all rolled back. */
    all_arg_t b = {.fail_second = true};
    st = db_tx(db, all_tx, &b);
    cr_assert_eq(st.code, STATUS_ALREADY_EXISTS, "%s", st.message);
    cr_assert_str_eq(db_last_constraint(db), "t_v_unique");
    cr_assert_eq(committed_rows(), 2);

    /* Outside a transaction: reads in one implicit transaction. */
    db_exec_item_t reads[2] = {{.sql = "SELECT count(*) FROM t"}, {.sql = "SELECT 41 + 1"}};
    st = db_exec_all(db, reads, 2);
    cr_assert(status_is_ok(&st), "%s", st.message);
    cr_assert_eq(db_get_int(reads[0].out, 0, 0), 2);
    cr_assert_eq(db_get_int(reads[1].out, 0, 0), 42);
    PQclear(reads[0].out);
    PQclear(reads[1].out);
}

typedef struct commit_result_arg {
    PGresult *out;
    bool refuse;
} commit_result_arg_t;

static status_t commit_result_tx(db_t *d, void *arg) {
    commit_result_arg_t *a = arg;
    status_t st = a->refuse ? defer_insert(d, "refused", 79, NULL)
                            : defer_insert(d, "before-commit", 77, NULL);
    if (!status_is_ok(&st)) {
        return st;
    }
    return db_tx_on_commit_result(d,
                                  a->refuse ? "SELECT refuse('NOT_TODAY')"
                                            : "UPDATE t SET v = v + 1 WHERE k = 'before-commit' "
                                              "RETURNING v",
                                  NULL, &a->out);
}

Test(runtime_db, the_statement_sent_with_the_commit_answers_or_refuses_the_whole_transaction) {
    commit_result_arg_t a = {0};
    status_t st = db_tx(db, commit_result_tx, &a);
    cr_assert(status_is_ok(&st), "%s", st.message);
    cr_assert_not_null(a.out, "the result of the statement sent with the COMMIT is handed out");
    cr_assert_eq(db_get_int(a.out, 0, 0), 78, "it ran after the deferred write");
    PQclear(a.out);
    cr_assert_eq(committed_rows(), 1);

    commit_result_arg_t b = {.refuse = true};
    st = db_tx(db, commit_result_tx, &b);
    cr_assert_eq(st.code, STATUS_FAILED_PRECONDITION, "%s", st.message);
    cr_assert_str_eq(st.reason, "NOT_TODAY");
    cr_assert_null(b.out);
    cr_assert_eq(committed_rows(), 1, "nothing of a refused transaction commits");
}

/* A transaction whose connection dies inside a part, the first time only. What the caller does
 * next is what a batch or a handler that took the failure for a refusal would do: another part,
 * another statement. Each must fail as the transaction did, never reach PostgreSQL on a new
 * connection of its own (where it would commit alone); db_tx then runs it all again, also when
 * fn answered the loss as something else. */
typedef struct lost_arg {
    int attempts;
    status_t in_part, next_part, next_statement;
} lost_arg_t;

static status_t part_kills_its_connection(db_t *d, void *arg) {
    lost_arg_t *a = arg;
    status_t st = defer_insert(d, "in-part", 2, NULL);
    if (status_is_ok(&st) && a->attempts == 1) {
        st = db_exec(d, "SELECT pg_terminate_backend(pg_backend_pid())", NULL, NULL);
    }
    return st;
}

static status_t part_after_the_loss(db_t *d, void *arg) {
    (void)arg;
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, "after-loss-in-part");
    db_param_int(&p, 3);
    return db_exec(d, insert_sql, &p, NULL);
}

static status_t lost_tx(db_t *d, void *arg) {
    lost_arg_t *a = arg;
    a->attempts++;
    status_t st = defer_insert(d, "before", 1, NULL);
    if (!status_is_ok(&st)) {
        return st;
    }
    st = db_tx_part(d, part_kills_its_connection, a);
    if (a->attempts > 1) {
        return st;
    }
    a->in_part = st;
    a->next_part = db_tx_part(d, part_after_the_loss, NULL);
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, "after-loss");
    db_param_int(&p, 4);
    a->next_statement = db_exec(d, insert_sql, &p, NULL);
    /* Taken for some other failure: the transaction is still run again. */
    return status_make(STATUS_INTERNAL, REASON_DATABASE_ERROR, "not a loss, says the caller");
}

static void assert_lost(const status_t *st, const char *what) {
    cr_assert_eq(st->code, STATUS_UNAVAILABLE, "%s: %s", what, st->message);
    cr_assert_str_eq(st->reason, "DATABASE_UNAVAILABLE", "%s", what);
}

Test(runtime_db, a_transaction_lost_in_a_part_fails_whatever_follows_and_runs_again) {
    lost_arg_t a = {0};
    status_t st = db_tx(db, lost_tx, &a);
    assert_lost(&a.in_part, "the part whose connection died");
    assert_lost(&a.next_part, "a part after the loss");
    assert_lost(&a.next_statement, "a statement after the loss");
    cr_assert(status_is_ok(&st), "run again on a new connection: %s", st.message);
    cr_assert_eq(a.attempts, 2);
    cr_assert_eq(committed_rows(), 2, "the second attempt's two rows, nothing else");
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.t WHERE k LIKE 'after-loss%%'", schema);
    cr_assert_eq(observe_int(sql), 0, "no statement after the loss ran on a connection of its own");
}

static status_t generic_tx(db_t *d, void *arg) {
    (void)arg;
    status_t st = defer_insert(d, "g", 1, NULL);
    if (status_is_ok(&st)) { /* an array statement: runs under the generic-plan SET */
        db_params_t p;
        db_params_init(&p);
        db_param_text(&p, "{a,b}");
        st = db_exec(d, "SELECT count(*) FROM unnest($1::text[])", &p, NULL);
    }
    return st;
}

Test(runtime_db, begin_commit_and_the_generic_plan_set_are_prepared_once_per_connection) {
    /* Goal: the statements the runtime sends in most transactions are parsed once per
     * connection, not in every transaction: they are among the session's prepared ones, each
     * once, after two transactions. */
    for (int i = 0; i < 2; i++) {
        status_t st = db_tx(db, generic_tx, NULL);
        cr_assert(status_is_ok(&st), "%s", st.message);
        st = db_exec(db, "DELETE FROM t", NULL, NULL);
        cr_assert(status_is_ok(&st), "%s", st.message);
    }
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "SELECT string_agg(statement, ' | ' ORDER BY statement) "
                          "FROM pg_prepared_statements WHERE statement IN ('BEGIN', 'COMMIT', "
                          " 'SET LOCAL plan_cache_mode = force_generic_plan')",
                          NULL, &r);
    cr_assert(status_is_ok(&st), "%s", st.message);
    /* Through a transaction pooler (pooler.core runs this suite through PgBouncer) nothing is
     * prepared: the next transaction may run on another server connection. */
    const char *pooler = getenv("LOYALTY_PG_POOLER");
    bool pooled = pooler != NULL && strcmp(pooler, "transaction") == 0;
    cr_assert_str_eq(db_get_str(r, 0, 0),
                     pooled ? ""
                            : "BEGIN | COMMIT | SET LOCAL plan_cache_mode = force_generic_plan");
    PQclear(r);
}

Test(runtime_db, a_migration_runs_longer_than_the_statement_timeout) {
    /* Goal: converting a large table takes longer than any call's statement may; a migration is
     * not cut off by the statement timeout (here 100 ms against a 300 ms statement), which
     * would leave the service failing to start again and again. */
    db_t *strict = harness_db_create_timeout(schema, "db-test-migrate", 100);
    status_t st = db_exec(strict, "SELECT pg_sleep(0.3)", NULL, NULL);
    cr_assert_eq(st.code, STATUS_DEADLINE_EXCEEDED,
                 "the timeout holds for a call's statement: %s %s", status_code_name(st.code),
                 st.reason);
    static const unsigned char slow_sql[] = "SELECT pg_sleep(0.3); "
                                            "INSERT INTO t (k, v) VALUES ('migrated', 42)";
    const embed_file_t slow[] = {{"001_slow.sql", slow_sql, sizeof slow_sql - 1}, {NULL, NULL, 0}};
    st = db_migrate(strict, NULL, slow);
    cr_assert(status_is_ok(&st), "%s %s", st.reason, st.message);
    PGresult *r = NULL;
    st = db_exec(strict, "SELECT v FROM t WHERE k = 'migrated'", NULL, &r);
    cr_assert(status_is_ok(&st));
    cr_assert_eq(PQntuples(r), 1);
    PQclear(r);
    db_destroy(strict);
}

typedef struct kv_row {
    char *k;
    int64_t v;
} kv_row_t;

static status_t kv_from_row(void *ctx, arena_t *a, const PGresult *r, int row, void *item) {
    kv_row_t *kv = item ? item : ctx;
    kv->k = db_dup_str(a, r, row, 0);
    kv->v = db_get_int(r, row, 1);
    return status_ok();
}

Test(runtime_db, db_rows_reads_a_query_into_an_array_and_db_row_find_one_row) {
    /* Goal: db_rows runs parameterised SQL and reads its rows in the query's order, up to a
     * limit that it reports as `more`; db_row_find says whether exactly one row came back and
     * reads only that one; db_row_get answers the caller's status without exactly one; all pass
     * on the database's errors. */
    /* db_exec, not db_exec_script: through a transaction pooler only a statement carries the
     * search_path (pooler.core runs this suite through PgBouncer). */
    status_t st =
        db_exec(db, "INSERT INTO t (k, v) VALUES ('a', 1), ('b', 2), ('c', 3)", NULL, NULL);
    cr_assert(status_is_ok(&st), "%s", st.message);
    arena_t a;
    arena_init(&a);
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, 1);
    db_rows_t rows = {.item_size = sizeof(kv_row_t), .limit = 1};
    st = db_rows(db, &a, "SELECT k, v FROM t WHERE v > $1 ORDER BY v DESC", &p, kv_from_row, NULL,
                 &rows);
    cr_assert(status_is_ok(&st), "%s", st.message);
    cr_assert_eq(rows.n, 1);
    cr_assert(rows.more);
    kv_row_t *kv = rows.items;
    cr_assert_str_eq(kv[0].k, "c");
    cr_assert_eq(kv[0].v, 3);
    rows = (db_rows_t){.item_size = sizeof(kv_row_t)};
    st = db_rows(db, &a, "SELECT k, v FROM t WHERE v > $1 ORDER BY v DESC", &p, kv_from_row, NULL,
                 &rows);
    cr_assert(status_is_ok(&st) && rows.n == 2 && !rows.more);
    kv = rows.items;
    cr_assert_str_eq(kv[1].k, "b");

    kv_row_t one = {0};
    bool found = false;
    db_params_init(&p);
    db_param_text(&p, "b");
    st = db_row_find(db, &a, "SELECT k, v FROM t WHERE k = $1", &p, kv_from_row, &one, &found);
    cr_assert(status_is_ok(&st) && found);
    cr_assert_eq(one.v, 2);
    db_params_init(&p);
    db_param_text(&p, "zz");
    one = (kv_row_t){0};
    st = db_row_find(db, &a, "SELECT k, v FROM t WHERE k = $1", &p, kv_from_row, &one, &found);
    cr_assert(status_is_ok(&st) && !found && one.k == NULL);
    st = db_row_find(db, &a, "SELECT k, v FROM t", NULL, kv_from_row, &one, &found);
    cr_assert(status_is_ok(&st) && !found, "three rows are not one");
    st = db_row_find(db, &a, "UPDATE t SET v = v + 10 WHERE k = 'a' RETURNING 1", NULL, NULL, NULL,
                     &found);
    cr_assert(status_is_ok(&st) && found, "a row function is optional");

    one = (kv_row_t){0};
    db_params_init(&p);
    db_param_text(&p, "c");
    st = db_row_get(db, &a, "SELECT k, v FROM t WHERE k = $1", &p, kv_from_row, &one,
                    STATUS_NOT_FOUND, REASON_MEMBER_NOT_FOUND, "no such key");
    cr_assert(status_is_ok(&st) && one.v == 3);
    st = db_row_get(db, &a, "SELECT k, v FROM t WHERE v > 1", NULL, kv_from_row, &one,
                    STATUS_NOT_FOUND, REASON_MEMBER_NOT_FOUND, "no such key");
    cr_assert_eq(st.code, STATUS_NOT_FOUND, "two rows are not one");
    cr_assert_str_eq(st.reason, "MEMBER_NOT_FOUND");
    cr_assert_str_eq(st.message, "no such key");

    st = db_rows(db, &a, "SELECT k, v FROM no_such_table", NULL, kv_from_row, NULL, NULL);
    cr_assert_eq(st.code, STATUS_INTERNAL, "%s", status_code_name(st.code));
    arena_free(&a);
}
