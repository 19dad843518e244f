/* test_points_batch.c -- PointsService.EarnBatch against real PostgreSQL: a hold's commit and
 * several earns in one transaction (what a checkout's Complete sends), all or nothing when one
 * earn is refused, replays by the batch's key, two earns of one member, the request's checks,
 * and concurrent batches over the same members in opposite orders (no deadlock). */
#include "points_it.h"

#include <pthread.h>

TestSuite(points_batch, .init = pt_setup, .fini = pt_teardown, .timeout = 180);

static Loyalty__V1__PointsEarnRequest *points_item(arena_t *a, const char *member, int64_t points,
                                                   const char *reference) {
    Loyalty__V1__PointsEarnRequest *e = arena_alloc(a, sizeof *e);
    loyalty__v1__points_earn_request__init(e);
    e->member_id = (char *)member;
    e->source = LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_ORDER;
    e->reference = (char *)reference;
    e->amount_case = LOYALTY__V1__POINTS_EARN_REQUEST__AMOUNT_POINTS;
    e->points = points;
    e->_pending_days_case = LOYALTY__V1__POINTS_EARN_REQUEST___PENDING_DAYS_PENDING_DAYS;
    return e;
}

static Loyalty__V1__PointsEarnRequest *order_item(arena_t *a, const char *member,
                                                  const char *reference, int64_t paid_cents) {
    Loyalty__V1__PointsOrderAmounts *o = arena_alloc(a, sizeof *o);
    loyalty__v1__points_order_amounts__init(o);
    o->paid_cents = paid_cents;
    Loyalty__V1__PointsEarnRequest *e = points_item(a, member, 0, reference);
    e->amount_case = LOYALTY__V1__POINTS_EARN_REQUEST__AMOUNT_ORDER;
    e->order = o;
    e->_pending_days_case = LOYALTY__V1__POINTS_EARN_REQUEST___PENDING_DAYS__NOT_SET;
    return e;
}

static status_t earn_batch_in(arena_t *a, const char *m, const char *key, const char *hold_id,
                              Loyalty__V1__PointsEarnRequest **earns, size_t n,
                              Loyalty__V1__PointsEarnBatchResponse **out) {
    Loyalty__V1__PointsEarnBatchRequest req = LOYALTY__V1__POINTS_EARN_BATCH_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)key;
    req.commit_hold_id = (char *)(hold_id ? hold_id : "");
    req.earns = earns;
    req.n_earns = n;
    req.omit_expiring = true;
    return pcall_in(a, "EarnBatch", &req, out);
}

static status_t earn_batch(const char *m, const char *key, const char *hold_id,
                           Loyalty__V1__PointsEarnRequest **earns, size_t n,
                           Loyalty__V1__PointsEarnBatchResponse **out) {
    return earn_batch_in(&arena, m, key, hold_id, earns, n, out);
}

Test(points_batch, a_checkout_settles_its_points_in_one_call) {
    /* Goal: the hold's commit and the buyer's order earn, and then three rewards to other
     * members (one of them twice), each in one call; the figures are those of the single calls,
     * and the replay of a key answers the same without moving anything. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("batch");
    pt_configure(m);
    pt_earn_points(m, "buyer", 1000, NULL);
    Loyalty__V1__PointsHold *h = NULL;
    assert_ok(pt_hold(m, "buyer", 300, "order-1", 600, &h));
    Loyalty__V1__PointsEarnRequest *settle[] = {order_item(&arena, "buyer", "order-1", 12345)};
    Loyalty__V1__PointsEarnBatchResponse *r = NULL;
    assert_ok(earn_batch(m, "settle-1", h->id, settle, 1, &r));
    cr_assert_not_null(r->hold);
    cr_assert_eq(r->hold->status, LOYALTY__V1__POINTS_HOLD_STATUS__POINTS_HOLD_STATUS_COMMITTED);
    cr_assert_eq(r->hold->points, 300);
    cr_assert_eq(r->n_earns, 1);
    cr_assert_eq(r->earns[0]->points, 123, "1 point per 1.00 of 123.45");
    cr_assert_eq(r->earns[0]->growth_delta, 123);
    cr_assert_eq(r->earns[0]->balance->available, 1000 - 300 + 123);
    assert_balance(m, "buyer", 823, 0, 0);
    cr_assert_eq(pt_get_hold(m, h->id)->status,
                 LOYALTY__V1__POINTS_HOLD_STATUS__POINTS_HOLD_STATUS_COMMITTED);

    Loyalty__V1__PointsEarnRequest *grants[] = {
        points_item(&arena, "ref-c", 30, "rr:rw-3"),
        points_item(&arena, "ref-a", 50, "rr:rw-1"),
        points_item(&arena, "ref-b", 40, "rr:rw-2"),
        points_item(&arena, "ref-a", 5, "rr:rw-4"),
    };
    assert_ok(earn_batch(m, "grants-1", NULL, grants, 4, &r));
    cr_assert_eq(r->n_earns, 4);
    cr_assert_null(r->hold);
    cr_assert_eq(r->earns[0]->points, 30);
    cr_assert_eq(r->earns[1]->points, 50);
    cr_assert_eq(r->earns[1]->balance->available, 55, "each balance is after the whole batch");
    cr_assert_eq(r->earns[3]->balance->available, 55);
    assert_balance(m, "ref-a", 55, 0, 0);
    assert_balance(m, "ref-b", 40, 0, 0);
    assert_balance(m, "ref-c", 30, 0, 0);

    /* Replays answer the same and move nothing. */
    assert_ok(earn_batch(m, "settle-1", h->id, settle, 1, &r));
    cr_assert_eq(r->earns[0]->points, 123);
    assert_ok(earn_batch(m, "grants-1", NULL, grants, 4, &r));
    assert_balance(m, "buyer", 823, 0, 0);
    assert_balance(m, "ref-a", 55, 0, 0);
    /* The same earns under another key: their references were earned already. */
    assert_status(earn_batch(m, "grants-2", NULL, grants, 4, NULL), STATUS_ALREADY_EXISTS,
                  "ALREADY_EARNED");
    /* The rewards are orders of their own: a return can take them back. */
    Loyalty__V1__PointsReverseOrderRequest rv = LOYALTY__V1__POINTS_REVERSE_ORDER_REQUEST__INIT;
    rv.merchant_id = (char *)m;
    rv.idempotency_key = (char *)harness_key();
    rv.reference = "rr:rw-1";
    rv.share_bps = 10000;
    assert_ok(pcall("ReverseOrder", &rv, NULL));
    assert_balance(m, "ref-a", 5, 0, 0);
    pt_assert_ledger_clean(m);
}

Test(points_batch, one_refused_earn_refuses_the_batch_and_writes_nothing) {
    /* Goal: all or nothing. An earn of a reference earned before refuses the batch; the hold
     * stays ACTIVE, nobody's balance moves, and the other earns' references stay free for a
     * later batch. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("batchno");
    pt_configure(m);
    pt_earn_points(m, "buyer", 1000, NULL);
    pt_earn_points(m, "other", 10, NULL);
    assert_ok(pt_earn_order(m, "other", "order-taken", 1000, NULL, NULL));
    Loyalty__V1__PointsHold *h = NULL;
    assert_ok(pt_hold(m, "buyer", 200, "order-2", 600, &h));
    Loyalty__V1__PointsEarnRequest *earns[] = {
        order_item(&arena, "buyer", "order-2", 5000),
        points_item(&arena, "ref-a", 50, "rr:x-1"),
        points_item(&arena, "ref-b", 40, "order-taken"),
    };
    assert_status(earn_batch(m, harness_key(), h->id, earns, 3, NULL), STATUS_ALREADY_EXISTS,
                  "ALREADY_EARNED");
    cr_assert_eq(pt_get_hold(m, h->id)->status,
                 LOYALTY__V1__POINTS_HOLD_STATUS__POINTS_HOLD_STATUS_ACTIVE);
    assert_balance(m, "buyer", 800, 200, 0);
    assert_balance(m, "ref-a", 0, 0, 0);
    assert_balance(m, "ref-b", 0, 0, 0);
    cr_assert_eq(pt_sql("SELECT 1 FROM points.lots WHERE merchant_id = $1 AND reference = $2 "
                        "UNION ALL SELECT 1 FROM points.earn_refs WHERE merchant_id = $1 "
                        " AND reference = $2",
                        m, "rr:x-1", NULL),
                 0, "a refused batch's claim was committed");
    /* Without the bad item the same batch goes through. */
    assert_ok(earn_batch(m, harness_key(), h->id, earns, 2, NULL));
    assert_balance(m, "buyer", 850, 0, 0);
    assert_balance(m, "ref-a", 50, 0, 0);
    /* A hold that was released cannot be committed by a batch either. */
    Loyalty__V1__PointsHold *h2 = NULL;
    assert_ok(pt_hold(m, "buyer", 100, "order-3", 600, &h2));
    assert_ok(pt_release(m, h2->id, NULL, NULL));
    Loyalty__V1__PointsEarnRequest *late[] = {order_item(&arena, "buyer", "order-3", 5000)};
    assert_status(earn_batch(m, harness_key(), h2->id, late, 1, NULL), STATUS_FAILED_PRECONDITION,
                  "HOLD_RELEASED");
    assert_balance(m, "buyer", 850, 0, 0);
    pt_assert_ledger_clean(m);
}

Test(points_batch, requests_are_checked_before_anything_is_written) {
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("batchchk");
    pt_configure(m);
    assert_status(earn_batch(m, harness_key(), NULL, NULL, 0, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_EARNS");
    Loyalty__V1__PointsEarnRequest *many[41];
    for (size_t i = 0; i < 41; i++) {
        many[i] = points_item(&arena, "mbr", 1, arena_printf(&arena, "rr:%zu", i));
    }
    assert_status(earn_batch(m, harness_key(), NULL, many, 41, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_EARNS");
    assert_ok(earn_batch(m, harness_key(), NULL, many, 40, NULL));
    assert_balance(m, "mbr", 40, 0, 0);
    Loyalty__V1__PointsEarnRequest *keyed = points_item(&arena, "mbr", 1, "rr:keyed");
    keyed->idempotency_key = "own-key";
    status_t st = earn_batch(m, harness_key(), NULL, &keyed, 1, NULL);
    assert_status(st, STATUS_INVALID_ARGUMENT, "INVALID_IDEMPOTENCY_KEY");
    cr_assert(strncmp(st.message, "earns[0]: ", 10) == 0, "message: %s", st.message);
    Loyalty__V1__PointsEarnRequest *foreign = points_item(&arena, "mbr", 1, "rr:foreign");
    foreign->merchant_id = "another-merchant";
    assert_status(earn_batch(m, harness_key(), NULL, &foreign, 1, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_MERCHANT_ID");
    Loyalty__V1__PointsEarnRequest *zero = points_item(&arena, "mbr", 0, "rr:zero");
    assert_status(earn_batch(m, harness_key(), NULL, &zero, 1, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_POINTS");
    assert_status(earn_batch(m, harness_key(), "hold_nope", NULL, 0, NULL), STATUS_NOT_FOUND,
                  "HOLD_NOT_FOUND");
    assert_balance(m, "mbr", 40, 0, 0);
    pt_assert_ledger_clean(m);
}

#define RACERS 6
#define ROUNDS 15

typedef struct racer {
    const char *merchant;
    int index;
    int failures;
    status_t last;
} racer_t;

/* Each round's batch names the two members in an order that alternates between racers: the
 * service must lock them in one order or the racers deadlock (PostgreSQL then aborts one). */
static void *racer_main(void *p) {
    racer_t *r = p;
    arena_t a;
    arena_init(&a);
    for (int round = 0; round < ROUNDS; round++) {
        char ref1[48], ref2[48], key[64];
        snprintf(ref1, sizeof ref1, "rr:%d-%d-a", r->index, round);
        snprintf(ref2, sizeof ref2, "rr:%d-%d-b", r->index, round);
        snprintf(key, sizeof key, "race-%d-%d", r->index, round);
        bool flip = (r->index + round) % 2 == 0;
        Loyalty__V1__PointsEarnRequest *earns[] = {
            points_item(&a, flip ? "mbr-x" : "mbr-y", 1, ref1),
            points_item(&a, flip ? "mbr-y" : "mbr-x", 2, ref2),
        };
        status_t st = earn_batch_in(&a, r->merchant, key, NULL, earns, 2, NULL);
        if (!status_is_ok(&st)) {
            r->failures++;
            r->last = st;
        }
        arena_reset(&a);
    }
    arena_free(&a);
    return NULL;
}

Test(points_batch, concurrent_batches_over_the_same_members_never_deadlock) {
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("batchrace");
    pt_configure(m);
    pthread_t t[RACERS];
    racer_t r[RACERS];
    for (int i = 0; i < RACERS; i++) {
        r[i] = (racer_t){.merchant = m, .index = i};
        cr_assert_eq(pthread_create(&t[i], NULL, racer_main, &r[i]), 0);
    }
    for (int i = 0; i < RACERS; i++) {
        pthread_join(t[i], NULL);
    }
    for (int i = 0; i < RACERS; i++) {
        cr_assert_eq(r[i].failures, 0, "racer %d: %d failures, last %s (%s: %s)", i, r[i].failures,
                     status_code_name(r[i].last.code), r[i].last.reason, r[i].last.message);
    }
    /* Every round gave 1 and 2 points to the two members, in one order or the other. */
    int64_t x = pt_balance(m, "mbr-x")->available, y = pt_balance(m, "mbr-y")->available;
    cr_assert_eq(x + y, (int64_t)RACERS * ROUNDS * 3);
    pt_assert_ledger_clean(m);
}

typedef struct batch_call {
    const char *merchant;
    status_t st;
} batch_call_t;

static void *batch_b_then_a(void *p) {
    batch_call_t *c = p;
    arena_t a;
    arena_init(&a);
    Loyalty__V1__PointsEarnRequest *earns[] = {points_item(&a, "mbr-b", 7, "rr:order-b"),
                                               points_item(&a, "mbr-a", 9, "rr:order-a")};
    c->st = earn_batch_in(&a, c->merchant, harness_key(), NULL, earns, 2, NULL);
    arena_free(&a);
    return NULL;
}

Test(points_batch, accounts_are_locked_in_member_order_whatever_the_request_order) {
    /* Goal: the batch names mbr-b before mbr-a; while another transaction holds mbr-a's account,
     * the batch must be waiting for mbr-a without having locked mbr-b (member-id order), which
     * is what keeps two batches over the same members from deadlocking. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("batchlock");
    pt_configure(m);
    pt_earn_points(m, "mbr-a", 1, NULL);
    pt_earn_points(m, "mbr-b", 1, NULL);
    PGconn *lock = PQconnectdb(harness_pg_dsn());
    cr_assert_eq(PQstatus(lock), CONNECTION_OK);
    PQclear(PQexec(lock, "BEGIN"));
    const char *pa[] = {m, "mbr-a"};
    PGresult *r = PQexecParams(lock,
                               "SELECT 1 FROM points.accounts WHERE merchant_id = $1 AND "
                               "member_id = $2 FOR UPDATE",
                               2, NULL, pa, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
    cr_assert_eq(PQntuples(r), 1);
    PQclear(r);
    batch_call_t c = {.merchant = m};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, batch_b_then_a, &c), 0);
    bool waiting = false;
    for (int i = 0; i < 600 && !waiting; i++) { /* up to 60 s */
        r = PQexec(lock, "SELECT pg_stat_clear_snapshot(); SELECT count(*) FROM pg_stat_activity "
                         "WHERE pg_backend_pid() = ANY (pg_blocking_pids(pid))");
        waiting = PQresultStatus(r) == PGRES_TUPLES_OK && atoi(PQgetvalue(r, 0, 0)) > 0;
        PQclear(r);
        if (!waiting) {
            usleep(100 * 1000);
        }
    }
    cr_assert(waiting, "the batch never reached mbr-a's lock");
    /* mbr-b's account is free: the batch has not locked it before waiting for mbr-a. */
    PGconn *probe = PQconnectdb(harness_pg_dsn());
    cr_assert_eq(PQstatus(probe), CONNECTION_OK);
    PQclear(PQexec(probe, "BEGIN"));
    const char *pb[] = {m, "mbr-b"};
    r = PQexecParams(probe,
                     "SELECT 1 FROM points.accounts WHERE merchant_id = $1 AND member_id = $2 "
                     "FOR UPDATE NOWAIT",
                     2, NULL, pb, NULL, NULL, 0);
    ExecStatusType probed = PQresultStatus(r);
    char probe_error[256];
    snprintf(probe_error, sizeof probe_error, "%s", PQresultErrorMessage(r));
    PQclear(r);
    PQclear(PQexec(probe, "ROLLBACK"));
    PQfinish(probe);
    PQclear(PQexec(lock, "COMMIT"));
    PQfinish(lock);
    pthread_join(t, NULL);
    cr_assert_eq(probed, PGRES_TUPLES_OK, "mbr-b was locked before mbr-a: %s", probe_error);
    assert_ok(c.st);
    assert_balance(m, "mbr-a", 10, 0, 0);
    assert_balance(m, "mbr-b", 8, 0, 0);
    pt_assert_ledger_clean(m);
}

Test(points_batch, a_hold_whose_ttl_passed_is_expired_not_committed) {
    /* Goal: the batch locks the accounts and reads the hold in one round trip, before opening
     * the account settles what fell due; a hold that the settle expires must be answered as
     * expired (its points back in the balance), never committed as the earlier read said. */
    pt_start_alone(&svc);
    const char *m = harness_merchant("batchttl");
    pt_configure(m);
    pt_earn_points(m, "buyer", 1000, NULL);
    Loyalty__V1__PointsHold *h = NULL;
    assert_ok(pt_hold(m, "buyer", 300, "order-ttl", 600, &h));
    assert_balance(m, "buyer", 700, 300, 0);
    /* Its TTL passes: the account falls due then. */
    pt_forget_cached_balance(m, "buyer");
    cr_assert_eq(pt_sql("UPDATE points.holds SET expires_at = now() - interval '1 second' "
                        "WHERE merchant_id = $1 AND id = $2",
                        m, h->id, NULL),
                 1);
    cr_assert_eq(pt_sql("UPDATE points.accounts SET next_due_at = now() - interval '1 second' "
                        "WHERE merchant_id = $1 AND member_id = $2",
                        m, "buyer", NULL),
                 1);
    Loyalty__V1__PointsEarnRequest *settle[] = {order_item(&arena, "buyer", "order-ttl", 5000)};
    assert_status(earn_batch(m, harness_key(), h->id, settle, 1, NULL), STATUS_FAILED_PRECONDITION,
                  "HOLD_EXPIRED");
    cr_assert_eq(pt_get_hold(m, h->id)->status,
                 LOYALTY__V1__POINTS_HOLD_STATUS__POINTS_HOLD_STATUS_EXPIRED);
    assert_balance(m, "buyer", 1000, 0, 0);
    pt_assert_ledger_clean(m);
}

/* pg_stat_statements' calls and buffers touched (hit + read) on the test's database of the
 * statements whose text is LIKE `pattern`. */
static void statement_use(const char *pattern, long long *calls, long long *buffers) {
    const char *v = pt_sql_value(
        "SELECT coalesce(sum(calls), 0)::bigint || ' ' || "
        " coalesce(sum(shared_blks_hit + shared_blks_read), 0)::bigint FROM pg_stat_statements "
        "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        " AND query LIKE $1",
        pattern, NULL);
    cr_assert_eq(sscanf(v, "%lld %lld", calls, buffers), 2, "%s", v);
}

/* The batch's lock statement, and the statement that writes a transaction's account saves. */
#define LOCK_STATEMENT "%FROM accounts WHERE merchant_id = $1 AND member_id%unnest($2::text[])%"
#define SAVES_STATEMENT "%UPDATE accounts a SET lots_points = v.lots_points%"

Test(points_batch, the_lock_finds_the_accounts_by_key_whatever_the_merchants_size) {
    /* Goal: the statement that locks a batch's accounts (a hold's and three earns') and the one
     * that saves them read each one through its key, so that their cost does not grow with the
     * merchant's members. Among
     * 2,000 accounts of two merchants (statistics fresh, as autovacuum keeps them) it reads
     * about 17 pages a call; the IN (subquery) form it had read 42, a scan of the merchant's
     * accounts, which grows with the merchant for as long as the planner keeps it. Measured with
     * pg_stat_statements (which scripts/test loads) on a database of the test's own. */
    pt_start_alone(&svc);
    const char *m = harness_merchant("lockkey");
    pt_configure(m);
    pt_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", NULL, NULL, NULL);
    pt_sql("INSERT INTO points.accounts (merchant_id, member_id) "
           "SELECT CASE WHEN g % 2 = 0 THEN $1 ELSE $1 || '-other' END, 'filler-' || g "
           "FROM generate_series(1, 2000) AS g",
           m, NULL, NULL);
    pt_sql("ANALYZE points.accounts", NULL, NULL, NULL);
    long long calls0 = 0, buffers0 = 0, saves0 = 0, save_buffers0 = 0;
    statement_use(LOCK_STATEMENT, &calls0, &buffers0);
    statement_use(SAVES_STATEMENT, &saves0, &save_buffers0);
    pt_earn_points(m, "buyer", 1000, NULL);
    for (int i = 0; i < 6; i++) {
        Loyalty__V1__PointsHold *h = NULL;
        assert_ok(pt_hold(m, "buyer", 10, arena_printf(&arena, "order-%d", i), 600, &h));
        Loyalty__V1__PointsEarnRequest *earns[] = {
            points_item(&arena, arena_printf(&arena, "a%d", i), 10,
                        arena_printf(&arena, "ra%d", i)),
            points_item(&arena, arena_printf(&arena, "b%d", i), 20,
                        arena_printf(&arena, "rb%d", i)),
            points_item(&arena, "filler-778", 1, arena_printf(&arena, "rf%d", i)),
        };
        assert_ok(earn_batch(m, harness_key(), h->id, earns, 3, NULL));
    }
    long long calls = 0, buffers = 0, saves = 0, save_buffers = 0;
    statement_use(LOCK_STATEMENT, &calls, &buffers);
    statement_use(SAVES_STATEMENT, &saves, &save_buffers);
    cr_assert_geq(calls - calls0, 6, "the lock statement was not found in pg_stat_statements");
    long long per_call = (buffers - buffers0) / (calls - calls0);
    cr_assert_lt(per_call, 30, "the lock statement read %lld pages a call", per_call);
    /* The saves of three members and their due instants: 19 pages a call through the keys; as
     * a hash join over a scan of the merchant's accounts, 53. */
    cr_assert_geq(saves - saves0, 6, "the saves' statement was not found in pg_stat_statements");
    long long per_save = (save_buffers - save_buffers0) / (saves - saves0);
    cr_assert_lt(per_save, 45, "the account saves read %lld pages a call", per_save);
    assert_balance(m, "filler-778", 6, 0, 0);
    pt_assert_ledger_clean(m);
}

Test(points_batch, the_lots_of_members_with_accounts_are_made_together_and_count_once) {
    /* Goal: the earns of a batch whose members have accounts make their lots in one statement
     * before the ledgers open, and each lot still counts exactly once: the balances, the
     * history and the ledger check are those of the earns made one by one. A pending earn, two
     * earns of one member, and an earn of a member without an account yet (whose lot is made
     * as it goes) are among them. A reference earned before, or twice in one batch, refuses
     * the whole batch and leaves nothing. */
    pt_start_alone(&svc);
    const char *m = harness_merchant("lotsmade");
    pt_configure(m);
    pt_earn_points(m, "ref-a", 5, NULL);
    pt_earn_points(m, "ref-b", 7, NULL);
    pt_earn_points(m, "buyer", 100, NULL);
    Loyalty__V1__PointsHold *h = NULL;
    assert_ok(pt_hold(m, "buyer", 40, "order-l1", 600, &h));
    Loyalty__V1__PointsEarnRequest *pending = points_item(&arena, "ref-b", 9, "rr:l-3");
    pending->pending_days = 3;
    Loyalty__V1__PointsEarnRequest *earns[] = {
        order_item(&arena, "buyer", "order-l1", 2000), points_item(&arena, "ref-a", 50, "rr:l-1"),
        points_item(&arena, "ref-a", 6, "rr:l-2"),     pending,
        points_item(&arena, "newcomer", 11, "rr:l-4"),
    };
    Loyalty__V1__PointsEarnBatchResponse *r = NULL;
    assert_ok(earn_batch(m, harness_key(), h->id, earns, 5, &r));
    /* Rows one statement inserted share its command id (cmin) within the transaction. */
    cr_assert_eq(pt_sql("SELECT DISTINCT cmin FROM points.lots WHERE merchant_id = $1 "
                        " AND reference IN ('order-l1', 'rr:l-1', 'rr:l-2', 'rr:l-3')",
                        m, NULL, NULL),
                 1, "the lots of members with accounts were not made in one statement");
    cr_assert_eq(pt_sql("SELECT DISTINCT cmin FROM points.lots WHERE merchant_id = $1 "
                        " AND reference IN ('order-l1', 'rr:l-4')",
                        m, NULL, NULL),
                 2, "the newcomer's lot was made with the others");
    cr_assert_eq(r->n_earns, 5);
    for (size_t i = 0; i < r->n_earns; i++) {
        cr_assert_not_null(r->earns[i]->lot, "earn %zu has no lot", i);
        cr_assert_str_eq(r->earns[i]->lot->member_id, earns[i]->member_id);
        cr_assert_str_eq(r->earns[i]->lot->reference, earns[i]->reference);
    }
    cr_assert_eq(r->earns[3]->lot->status,
                 LOYALTY__V1__POINTS_LOT_STATUS__POINTS_LOT_STATUS_PENDING);
    assert_balance(m, "buyer", 100 - 40 + 20, 0, 0);
    assert_balance(m, "ref-a", 5 + 50 + 6, 0, 0);
    assert_balance(m, "ref-b", 7, 0, 9);
    assert_balance(m, "newcomer", 11, 0, 0);
    cr_assert_eq(pt_sql("SELECT 1 FROM points.lots WHERE merchant_id = $1 AND reference LIKE $2", m,
                        "rr:l-%", NULL),
                 4, "one lot per earn");
    cr_assert_eq(pt_sql("SELECT 1 FROM points.entries WHERE merchant_id = $1 AND reference LIKE $2",
                        m, "rr:l-%", NULL),
                 4, "one entry per earn");
    /* Refusals: a reference earned before, and one reference twice in one batch. */
    long long lots_before =
        pt_sql("SELECT 1 FROM points.lots WHERE merchant_id = $1", m, NULL, NULL);
    Loyalty__V1__PointsEarnRequest *again[] = {
        points_item(&arena, "ref-b", 3, "rr:l-5"),
        points_item(&arena, "ref-a", 4, "rr:l-1"),
    };
    assert_status(earn_batch(m, harness_key(), NULL, again, 2, NULL), STATUS_ALREADY_EXISTS,
                  "ALREADY_EARNED");
    Loyalty__V1__PointsEarnRequest *twice[] = {
        points_item(&arena, "ref-a", 3, "rr:l-6"),
        points_item(&arena, "ref-b", 4, "rr:l-6"),
    };
    assert_status(earn_batch(m, harness_key(), NULL, twice, 2, NULL), STATUS_ALREADY_EXISTS,
                  "ALREADY_EARNED");
    cr_assert_eq(pt_sql("SELECT 1 FROM points.lots WHERE merchant_id = $1", m, NULL, NULL),
                 lots_before, "a refused batch left a lot");
    assert_balance(m, "ref-a", 61, 0, 0);
    assert_balance(m, "ref-b", 7, 0, 9);
    pt_assert_ledger_clean(m);
}
