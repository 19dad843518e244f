/* test_runtime_db_pool.c -- the process's connection pool (DB_POOL_SIZE) and the session-free
 * mode for a transaction pooler (LOYALTY_PG_POOLER=transaction) against a real PostgreSQL:
 * many threads' handles share a few connections, each held only while a statement or a
 * transaction runs; a handle that finds every connection busy past the wait gets UNAVAILABLE
 * DB_POOL_EXHAUSTED and nothing ran; through a pooler no prepared statement and no setting
 * outlives its transaction, while every statement still sees the service's schema and
 * statement timeout. */
#include "db.h"
#include "harness.h"
#include "ids.h"
#include "rpc_server.h"

#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static db_t *admin; /* creates and drops the test's schema */
static PGconn *observer;
static char schema[32];
static char app[48]; /* the application_name of this test's connections */

static void setup(void) {
    harness_init();
    harness_schema_name("pool_test", schema);
    snprintf(app, sizeof app, "pool-test-%s", schema + strlen("pool_test_"));
    admin = harness_db_create(schema, "pool-test-admin");
    char ddl[256];
    snprintf(ddl, sizeof ddl,
             "CREATE SCHEMA %s; CREATE TABLE %s.counter (k text PRIMARY KEY, n bigint NOT NULL); "
             "INSERT INTO %s.counter VALUES ('c', 0)",
             schema, schema, schema);
    status_t st = db_exec_script(admin, ddl);
    cr_assert(status_is_ok(&st), "%s", st.message);
    observer = harness_observer();
}

static void teardown(void) {
    harness_schema_drop(admin, schema);
    db_destroy(admin);
    PQfinish(observer);
    harness_fini();
}

TestSuite(runtime_db_pool, .init = setup, .fini = teardown, .timeout = 120);

static db_pool_t *pool_create(int size, int64_t wait_ms, bool transaction_pooler) {
    const char *pooler = getenv("LOYALTY_PG_POOLER");
    db_options_t opts = {
        .dsn = harness_pg_dsn(),
        .schema = schema,
        .application_name = app,
        .statement_timeout_ms = 10000,
        .transaction_pooler =
            transaction_pooler || (pooler != NULL && strcmp(pooler, "transaction") == 0),
        .pool_size = size,
        .pool_wait_ms = wait_ms,
    };
    return db_pool_create(&opts);
}

static int64_t observe_int(const char *sql) {
    PGresult *r = PQexec(observer, sql);
    cr_assert(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
    int64_t v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

static int64_t backends_of_this_test(void) {
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s'",
             app);
    return observe_int(sql);
}

/* The connections once closed: a backend whose client just hung up stays listed in
 * pg_stat_activity until it has exited, so the count is read again until it is 0 (30 s bound;
 * a connection left open stays listed and fails the check). */
static int64_t backends_after_close(void) {
    int64_t n = backends_of_this_test();
    for (int i = 0; n != 0 && i < 600; i++) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
        n = backends_of_this_test();
    }
    return n;
}

static status_t increment_tx(db_t *d, void *arg) {
    (void)arg;
    PGresult *r = NULL;
    status_t st = db_exec(d, "SELECT n FROM counter WHERE k = 'c' FOR UPDATE", NULL, &r);
    if (!status_is_ok(&st)) {
        return st;
    }
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, db_get_int(r, 0, 0) + 1);
    PQclear(r);
    return db_exec(d, "UPDATE counter SET n = $1 WHERE k = 'c'", &p, NULL);
}

#define SHARERS 6
#define INCREMENTS 25

typedef struct sharer {
    db_pool_t *pool;
    int failures;
    char first_error[320];
} sharer_t;

static void *sharer_main(void *arg) {
    sharer_t *s = arg;
    db_t *d = db_open(s->pool);
    for (int i = 0; i < INCREMENTS; i++) {
        status_t st = db_tx(d, increment_tx, NULL);
        PGresult *r = NULL;
        if (status_is_ok(&st)) { /* a lone read between transactions borrows too */
            st = db_exec(d, "SELECT n FROM counter WHERE k = 'c'", NULL, &r);
            PQclear(r);
        }
        if (!status_is_ok(&st) && s->failures++ == 0) {
            snprintf(s->first_error, sizeof s->first_error, "%s: %s", st.reason, st.message);
        }
    }
    db_destroy(d);
    return NULL;
}

Test(runtime_db_pool, threads_share_a_few_connections_each_held_only_while_it_runs) {
    /* Six threads, two connections, a 60 s wait: every transaction runs, and PostgreSQL never
     * sees more than two connections of this pool. */
    db_pool_t *pool = pool_create(2, 60000, false);
    sharer_t sharers[SHARERS];
    pthread_t threads[SHARERS];
    for (int i = 0; i < SHARERS; i++) {
        sharers[i] = (sharer_t){.pool = pool};
        cr_assert_eq(pthread_create(&threads[i], NULL, sharer_main, &sharers[i]), 0);
    }
    for (int i = 0; i < SHARERS; i++) {
        pthread_join(threads[i], NULL);
        cr_expect_eq(sharers[i].failures, 0, "thread %d: %s", i, sharers[i].first_error);
    }
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT n FROM %s.counter WHERE k = 'c'", schema);
    cr_assert_eq(observe_int(sql), SHARERS * INCREMENTS);
    int64_t backends = backends_of_this_test();
    cr_assert(backends >= 1 && backends <= 2, "%lld connections for a pool of 2",
              (long long)backends);
    db_pool_destroy(pool);
    cr_assert_eq(backends_after_close(), 0, "the pool closes its connections");
}

typedef struct holder {
    db_pool_t *pool;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool inside, release;
    status_t result;
} holder_t;

static status_t hold_tx(db_t *d, void *arg) {
    holder_t *h = arg;
    status_t st = db_exec(d, "UPDATE counter SET n = n + 1 WHERE k = 'c'", NULL, NULL);
    pthread_mutex_lock(&h->mu);
    h->inside = true;
    pthread_cond_broadcast(&h->cond);
    while (!h->release) {
        pthread_cond_wait(&h->cond, &h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    return st;
}

static void *holder_main(void *arg) {
    holder_t *h = arg;
    db_t *d = db_open(h->pool);
    h->result = db_tx(d, hold_tx, h);
    db_destroy(d);
    return NULL;
}

Test(runtime_db_pool, an_exhausted_pool_answers_unavailable_after_its_wait_and_runs_nothing) {
    holder_t h = {.pool = pool_create(1, 100, false)};
    pthread_mutex_init(&h.mu, NULL);
    pthread_cond_init(&h.cond, NULL);
    pthread_t thread;
    cr_assert_eq(pthread_create(&thread, NULL, holder_main, &h), 0);
    pthread_mutex_lock(&h.mu);
    while (!h.inside) {
        pthread_cond_wait(&h.cond, &h.mu);
    }
    pthread_mutex_unlock(&h.mu);

    /* The only connection is inside the holder's transaction until it is told to finish. */
    db_t *d = db_open(h.pool);
    status_t st = db_exec(d, "SELECT 1", NULL, NULL);
    cr_assert_eq(st.code, STATUS_UNAVAILABLE);
    cr_assert_str_eq(st.reason, DB_POOL_EXHAUSTED);
    st = db_tx(d, increment_tx, NULL);
    cr_assert_eq(st.code, STATUS_UNAVAILABLE);
    cr_assert_str_eq(st.reason, DB_POOL_EXHAUSTED);
    cr_assert(db_ping(d), "a pool busy with PostgreSQL is no outage");

    pthread_mutex_lock(&h.mu);
    h.release = true;
    pthread_cond_broadcast(&h.cond);
    pthread_mutex_unlock(&h.mu);
    pthread_join(thread, NULL);
    cr_assert(status_is_ok(&h.result), "%s", h.result.message);

    st = db_tx(d, increment_tx, NULL); /* the connection came back */
    cr_assert(status_is_ok(&st), "%s", st.message);
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT n FROM %s.counter WHERE k = 'c'", schema);
    cr_assert_eq(observe_int(sql), 2, "the holder's and the last increment, none refused");
    db_destroy(d);
    db_pool_destroy(h.pool);
    pthread_cond_destroy(&h.cond);
    pthread_mutex_destroy(&h.mu);
}

static void expect_text(db_t *d, const char *sql, const char *want) {
    PGresult *r = NULL;
    status_t st = db_exec(d, sql, NULL, &r);
    cr_assert(status_is_ok(&st), "%s: %s", sql, st.message);
    cr_expect_str_eq(db_get_str(r, 0, 0), want, "%s", sql);
    PQclear(r);
}

static status_t pooler_tx(db_t *d, void *arg) {
    (void)arg;
    /* First in its transaction, after the runtime's SET LOCALs: they take no snapshot. */
    status_t st = db_exec(d, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", NULL, NULL);
    if (!status_is_ok(&st)) {
        return st;
    }
    expect_text(d, "SELECT current_setting('transaction_isolation')", "repeatable read");
    expect_text(d, "SELECT current_setting('search_path')", schema);
    expect_text(d, "SELECT current_setting('statement_timeout')", "10s");
    expect_text(d, "SELECT count(*)::text FROM pg_prepared_statements", "0");
    /* An array statement (a generic plan when prepared) and a deferred write. */
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, "{1,2,3}");
    expect_text(d, "SELECT sum(x)::text FROM unnest('{1,2,3}'::bigint[]) AS x", "6");
    st = db_exec_deferred(d, "UPDATE counter SET n = n + 1 WHERE k = 'c'", NULL, NULL);
    if (!status_is_ok(&st)) {
        return st;
    }
    return db_exec(d, "SELECT sum(x) FROM unnest($1::bigint[]) AS x", &p, NULL);
}

Test(runtime_db_pool, through_a_transaction_pooler_nothing_outlives_a_transaction) {
    db_pool_t *pool = pool_create(1, 60000, true);
    db_t *d = db_open(pool);
    status_t st = db_migrate(d, runtime_migrations, NULL);
    cr_assert(status_is_ok(&st), "migrations: %s", st.message);
    /* A lone statement gets the service's settings in its own round trip. */
    expect_text(d, "SELECT current_setting('search_path')", schema);
    int runtime_count = 0;
    while (runtime_migrations[runtime_count].name != NULL) {
        runtime_count++;
    }
    char count[16];
    snprintf(count, sizeof count, "%d", runtime_count);
    expect_text(d, "SELECT count(*)::text FROM schema_migrations WHERE id LIKE 'runtime/%'", count);
    st = db_tx(d, pooler_tx, NULL);
    cr_assert(status_is_ok(&st), "%s", st.message);
    expect_text(d, "SELECT n::text FROM counter WHERE k = 'c'", "1");
    /* The session itself (what the next client of a pooled server connection would get) kept
     * nothing: a bare script sees PostgreSQL's defaults and no prepared statement. */
    st = db_exec_script(d, "DO $$ BEGIN "
                           "IF current_setting('search_path') <> '\"$user\", public' "
                           "OR current_setting('statement_timeout') <> '0' "
                           "OR (SELECT count(*) FROM pg_prepared_statements) <> 0 "
                           "OR EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                           "AND pid = pg_backend_pid()) "
                           "THEN RAISE EXCEPTION 'session state left behind'; END IF; END $$");
    cr_assert(status_is_ok(&st), "%s", st.message);
    db_destroy(d);
    db_pool_destroy(pool);
}
