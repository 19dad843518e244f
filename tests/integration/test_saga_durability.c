/* test_saga_durability.c -- a saga's participant steps commit without waiting for the disk,
 * and only they (docs/architecture.md "Durability of saga steps"): the gateway's calls carry
 * the PostgreSQL cluster's system identifier (loyalty-durable-with), a participant on that
 * cluster commits them asynchronously, and the gateway's own later commit makes them durable.
 * The outbox rows of a transaction tell how it committed (commit_async), so the test reads them
 * (in a database that, unlike the rest of the test stack, commits synchronously by default):
 * a checkout's points events are asynchronous, a direct call's are not, a call naming
 * another cluster is not, and a gateway told SAGA_STEPS_COMMIT_ASYNC=0 sends none. Events of
 * asynchronous transactions are still published (once their WAL is on disk). */
#include "gateway_it.h"
#include "rpc.h"

TestSuite(saga_durability, .init = it_setup, .fini = it_teardown, .timeout = 600);

static PGconn *sql_connect(void) {
    PGconn *c = PQconnectdb(test_dsn());
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    return c;
}

/* One integer (or text) answer of `sql` with $1 = merchant. */
static char *sql_value(const char *sql, const char *merchant) {
    PGconn *c = sql_connect();
    const char *params[1] = {merchant};
    PGresult *r =
        PQexecParams(c, sql, merchant ? 1 : 0, NULL, merchant ? params : NULL, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
    char *v = arena_strdup(&arena, PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    return v;
}

/* The merchant's outbox rows in `schema` committed with (async) or without waiting for the
 * disk. */
static int64_t events(const char *schema, const char *m, bool async) {
    char sql[200];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM %s.outbox WHERE merchant_id = $1 AND %scommit_async", schema,
             async ? "" : "NOT ");
    return strtoll(sql_value(sql, m), NULL, 10);
}

static int64_t points_events(const char *m, bool async) {
    return events("points", m, async);
}

/* Waits (generously) until every points event of the merchant is published. */
static void assert_all_published(const char *m) {
    for (int i = 0; i < 600; i++) {
        if (strcmp(sql_value("SELECT count(*) FROM points.outbox "
                             "WHERE merchant_id = $1 AND published_at IS NULL",
                             m),
                   "0") == 0) {
            return;
        }
        sleep_ms(50);
    }
    cr_assert_fail("points events of %s still unpublished after 30 s", m);
}

/* The test stack's PostgreSQL runs with synchronous_commit off (fsync off, for speed): this
 * test's database waits for the disk again, as production does, so that the commits the
 * services choose to make asynchronous stand out. Before the services connect. */
static void database_commits_synchronously(void) {
    PGconn *c = sql_connect();
    PGresult *r = PQexec(c, "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET "
                            "synchronous_commit = on', current_database()); END $$");
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

static void checkout(shop_t *s, const char *buyer, const char *order) {
    Loyalty__V1__GatewayCheckout *co = NULL;
    assert_ok(begin_checkout(s->m, order, order, buyer, shirt_cart(), pay(1000, 500), &co));
    assert_ok(complete_checkout(s->m, co->checkout_id, "pay-1", NULL));
}

/* An Earn of 100 points straight to points-svc, with `durable_with` as the header's value
 * (NULL: no header). */
static void earn_with(const char *m, const char *member, const char *key,
                      const char *durable_with) {
    Loyalty__V1__PointsEarnRequest r = LOYALTY__V1__POINTS_EARN_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.idempotency_key = (char *)key;
    r.member_id = (char *)member;
    r.source = LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_ORDER;
    r.reference = (char *)key;
    r.amount_case = LOYALTY__V1__POINTS_EARN_REQUEST__AMOUNT_POINTS;
    r.points = 100;
    rpc_call_opts_t opts = {.timeout_ms = 20000};
    if (durable_with != NULL) {
        opts.extra_count = 1;
        opts.extra_keys[0] = RPC_DURABLE_WITH_HEADER;
        opts.extra_values[0] = durable_with;
    }
    ProtobufCMessage *resp = NULL;
    assert_ok(rpc_call(rpc_channel_get(procs[SVC_POINTS].addr), svc_desc[SVC_POINTS], "Earn",
                       &r.base, &arena, &resp, &opts));
}

/* The test counts outbox rows after their publication: the services keep them. */
#define KEEP_PUBLISHED "OUTBOX_RETENTION_DAYS=1"

Test(saga_durability, checkout_steps_commit_async_admin_calls_do_not) {
    database_commits_synchronously();
    const char *extra[] = {KEEP_PUBLISHED, NULL};
    stack_start_with(extra);
    shop_t s;
    open_shop(&s, "durable");
    const char *b = new_buyer(&s, 5000, 5000);
    earn_with(s.m, b, "earn-direct", NULL);
    int64_t sync_before = points_events(s.m, false);
    cr_assert_gt(sync_before, 0, "the direct Earn left no event to tell how it committed");
    cr_assert_eq(points_events(s.m, true), 0, "a direct call committed asynchronously");

    checkout(&s, b, "order-1");
    cr_assert_gt(points_events(s.m, true), 0,
                 "the checkout's points steps waited for the disk (no asynchronous event)");
    cr_assert_eq(points_events(s.m, false), sync_before, "a checkout step committed synchronously");
    /* The gateway's final write (with order.completed) is the one that makes them durable. */
    cr_assert_gt(events("gateway", s.m, false), 0, "the gateway's final write left no event");
    cr_assert_eq(events("gateway", s.m, true), 0,
                 "a write of the gateway committed without waiting for the disk");
    assert_all_published(s.m);
    assert_ledgers_clean(s.m);

    /* The header is honoured for this cluster only. */
    const char *cluster =
        sql_value("SELECT system_identifier::text FROM pg_control_system()", NULL);
    int64_t async_before = points_events(s.m, true);
    earn_with(s.m, b, "earn-other-cluster", "12345");
    cr_assert_eq(points_events(s.m, true), async_before, "another cluster's promise was taken");
    earn_with(s.m, b, "earn-this-cluster", cluster);
    cr_assert_eq(points_events(s.m, true), async_before + 1,
                 "this cluster's promise was not taken");

    /* A connection that served steps (its session commits asynchronously) waits for the disk
     * again for the next call without the promise: more checkouts, then direct calls, which
     * land on the workers that served them. */
    for (int i = 0; i < 3; i++) {
        checkout(&s, b, arena_printf(&arena, "order-more-%d", i));
    }
    int64_t sync_now = points_events(s.m, false);
    async_before = points_events(s.m, true);
    for (int i = 0; i < 12; i++) {
        earn_with(s.m, b, arena_printf(&arena, "earn-direct-%d", i), NULL);
    }
    cr_assert_eq(points_events(s.m, true), async_before, "a direct call committed asynchronously");
    cr_assert_eq(points_events(s.m, false), sync_now + 12);
    assert_all_published(s.m);
}

Test(saga_durability, switched_off_every_step_waits_for_the_disk) {
    database_commits_synchronously();
    const char *extra[] = {"SAGA_STEPS_COMMIT_ASYNC=0", KEEP_PUBLISHED, NULL};
    stack_start_with(extra);
    shop_t s;
    open_shop(&s, "durable-off");
    const char *b = new_buyer(&s, 5000, 5000);
    checkout(&s, b, "order-1");
    cr_assert_eq(points_events(s.m, true), 0, "a step committed asynchronously: %s",
                 sql_value("SELECT string_agg(type || ' ' || id, ', ') FROM points.outbox "
                           "WHERE merchant_id = $1 AND commit_async",
                           s.m));
    cr_assert_gt(points_events(s.m, false), 0);
    assert_ledgers_clean(s.m);
}
