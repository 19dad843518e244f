/* test_wallet_batch.c -- wallet-svc's merged batches (BatchService/Run of CaptureHold) against
 * real PostgreSQL: the calls of a batch write their merchant-account totals once, at the end, in
 * (code, shard) order, so that two batches whose members' shards come in opposite orders cannot
 * deadlock. The test makes the interleaving that would deadlock if each call wrote its own
 * totals, without relying on timing: it holds one member's wallet locked from a session of its
 * own, so that batch Y stops between its two calls, sends batch X, waits until X has finished
 * or waits for a lock itself, and only then lets Y go on. No transaction may then have been
 * retried (PostgreSQL ends one of two deadlocked transactions, and the runtime runs it again),
 * and every call must run merged, answer, and leave the ledger clean. */
#include "wallet_client.h"
#include "wallet_rules.h"

#include "loyalty/v1/batch.pb-c.h"
#include "pb.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <time.h>

static svc_proc_t svc;
static arena_t arena;
static wallet_client_t wc;

static void setup(void) {
    harness_init();
    arena_init(&arena);
}

static void teardown(void) {
    if (svc.pid > 0) {
        cr_expect_eq(harness_stop(&svc), 0, "wallet-svc did not exit cleanly; see %s",
                     svc.log_path);
    }
    arena_free(&arena);
    harness_fini();
}

TestSuite(wallet_batch, .init = setup, .fini = teardown, .timeout = 240);

#define POLLS_MAX 600 /* x 50 ms */
#define SERIES(run)                                                                                \
    "loyalty_batch_calls_total{method=\"/loyalty.v1.WalletService/CaptureHold\",run=\"" run "\"}"

/* A batch of two captures, run in a thread of its own. */
typedef struct capture_batch {
    const char *hold_ids[2];
    const char *members[2]; /* the lock keys */
    Loyalty__V1__BatchRunResponse *resp;
    status_t st;
    arena_t a;
} capture_batch_t;

static void *run_capture_batch(void *arg) {
    capture_batch_t *b = arg;
    arena_init(&b->a);
    Loyalty__V1__BatchRunRequest req = LOYALTY__V1__BATCH_RUN_REQUEST__INIT;
    req.method = "/loyalty.v1.WalletService/CaptureHold";
    req.n_calls = 2;
    req.calls = arena_alloc(&b->a, 2 * sizeof *req.calls);
    for (size_t i = 0; i < 2; i++) {
        Loyalty__V1__WalletCaptureHoldRequest c = LOYALTY__V1__WALLET_CAPTURE_HOLD_REQUEST__INIT;
        c.merchant_id = (char *)wc.merchant;
        c.idempotency_key = arena_printf(&b->a, "cap-%s", b->hold_ids[i]);
        c.hold_id = (char *)b->hold_ids[i];
        c.amount_cents = 100;
        Loyalty__V1__BatchCall *call = pb_new(&b->a, &loyalty__v1__batch_call__descriptor);
        call->request.data = pb_pack_arena(&b->a, &c.base, &call->request.len);
        call->lock_key = (char *)b->members[i];
        req.calls[i] = call;
    }
    b->st = rpc_call(rpc_channel_get(svc.addr), &loyalty__v1__batch_service__descriptor, "Run",
                     &req.base, &b->a, (ProtobufCMessage **)&b->resp, NULL);
    return NULL;
}

/* The first member id "<prefix><n>" (n from `from`) whose shard is `shard`, or any other
 * shard than `not_shard` when shard < 0. */
static const char *member_on(const char *prefix, int from, int shard, int not_shard) {
    for (int n = from;; n++) {
        const char *id = arena_printf(&arena, "%s%03d", prefix, n);
        int s = wallet_shard(id);
        if (shard >= 0 ? s == shard : s != not_shard) {
            return id;
        }
    }
}

/* Backends of this database that wait for a lock (not counting `self`). */
static int lock_waiters(PGconn *pg) {
    PGresult *r = PQexec(pg, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                             "current_database() AND wait_event_type = 'Lock' "
                             "AND pid <> pg_backend_pid()");
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
    int n = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

static void exec_ok(PGconn *pg, const char *sql, const char *p1, const char *p2) {
    const char *params[] = {p1, p2};
    PGresult *r = PQexecParams(pg, sql, p1 ? (p2 ? 2 : 1) : 0, NULL, params, NULL, NULL, 0);
    ExecStatusType rs = PQresultStatus(r);
    cr_assert(rs == PGRES_COMMAND_OK || rs == PGRES_TUPLES_OK, "%s: %s", sql,
              PQresultErrorMessage(r));
    PQclear(r);
}

static void pause_ms(long ms) {
    struct timespec t = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* How the captures ran, and how often a transaction was retried after a conflict (a deadlock
 * is one: PostgreSQL ends one of the two transactions, and the runtime runs it again). */
static void metric_counts(double *merged, double *alone, double *retries) {
    char *body = NULL;
    cr_assert_eq(harness_http_get(svc.metrics_port, "/metrics", &body), 200);
    *merged = harness_metric(body, SERIES("merged"));
    *alone = harness_metric(body, SERIES("alone"));
    *retries = harness_metric(body, "loyalty_db_serialization_retries_total");
    free(body);
}

Test(wallet_batch, batches_with_shards_in_opposite_orders_do_not_deadlock) {
    harness_start(&svc, "wallet-svc", NULL);
    wc = (wallet_client_t){.addr = svc.addr, .merchant = harness_merchant("wbat"), .arena = &arena};
    /* X = {A, B} and Y = {C, D} in lock-key order, shard(A) = shard(D) = sa and shard(B) =
     * shard(C) = sb: X's calls touch sa then sb, Y's sb then sa. */
    const char *a = member_on("a", 0, -1, -1);
    int sa = wallet_shard(a);
    const char *b = member_on("b", 0, -1, sa);
    int sb = wallet_shard(b);
    const char *c = member_on("c", 0, sb, -1);
    const char *d = member_on("d", 0, sa, -1);
    const char *members[] = {a, b, c, d};
    const char *holds[4];
    for (int i = 0; i < 4; i++) {
        assert_status(wc_top_up(&wc, harness_key(), members[i], 1000, NULL,
                                arena_printf(&arena, "psp-%s", members[i]), NULL),
                      STATUS_OK, "");
        Loyalty__V1__WalletHoldResponse *h = NULL;
        assert_status(wc_hold(&wc, harness_key(), members[i], 100,
                              arena_printf(&arena, "order-%s", members[i]), 0, &h),
                      STATUS_OK, "");
        holds[i] = arena_strdup(&arena, h->hold->id);
    }
    double merged0 = 0, alone0 = 0, retries0 = 0;
    metric_counts(&merged0, &alone0, &retries0);

    /* D's wallet locked: Y captures C, then waits to lock D. */
    PGconn *pg = PQconnectdb(harness_pg_dsn());
    cr_assert_eq(PQstatus(pg), CONNECTION_OK);
    PGconn *watch = PQconnectdb(harness_pg_dsn());
    cr_assert_eq(PQstatus(watch), CONNECTION_OK);
    exec_ok(pg, "BEGIN", NULL, NULL);
    exec_ok(pg, "SELECT FROM wallet.accounts WHERE merchant_id = $1 AND member_id = $2 FOR UPDATE",
            wc.merchant, d);
    capture_batch_t y = {.hold_ids = {holds[2], holds[3]}, .members = {c, d}};
    pthread_t ty, tx;
    cr_assert_eq(pthread_create(&ty, NULL, run_capture_batch, &y), 0);
    for (int i = 0; lock_waiters(watch) < 1; i++) {
        cr_assert(i < POLLS_MAX, "batch Y never reached D's lock");
        pause_ms(50);
    }
    /* X runs while Y waits: it finishes, or (were totals written call by call) waits for sb,
     * which Y would hold since C's capture. */
    capture_batch_t x = {.hold_ids = {holds[0], holds[1]}, .members = {a, b}};
    cr_assert_eq(pthread_create(&tx, NULL, run_capture_batch, &x), 0);
    for (int i = 0;; i++) {
        double merged = 0, alone = 0, retries = 0;
        metric_counts(&merged, &alone, &retries);
        if (merged + alone >= merged0 + alone0 + 2 || lock_waiters(watch) >= 2) {
            break;
        }
        cr_assert(i < POLLS_MAX, "batch X neither finished nor waited");
        pause_ms(50);
    }
    exec_ok(pg, "ROLLBACK", NULL, NULL); /* Y goes on: D, then its totals */
    pthread_join(ty, NULL);
    pthread_join(tx, NULL);
    PQfinish(pg);
    PQfinish(watch);

    capture_batch_t *batches[] = {&x, &y};
    for (int k = 0; k < 2; k++) {
        assert_status(batches[k]->st, STATUS_OK, "");
        cr_assert_eq(batches[k]->resp->n_results, 2);
        for (size_t i = 0; i < 2; i++) {
            const Loyalty__V1__BatchCallResult *r = batches[k]->resp->results[i];
            cr_assert_eq(r->code, 0, "batch %d call %zu: %s %s", k, i, r->reason, r->message);
        }
        arena_free(&batches[k]->a);
    }
    double merged = 0, alone = 0, retries = 0;
    metric_counts(&merged, &alone, &retries);
    cr_assert_eq(retries - retries0, 0, "a transaction was retried: the batches deadlocked");
    cr_assert_eq(alone - alone0, 0, "a merged run was abandoned");
    cr_assert_eq(merged - merged0, 4);
    for (int i = 0; i < 4; i++) {
        assert_balance(wc_balance(&wc, members[i]), 900, 0, 0);
    }
    wc_assert_ledger_clean(&wc);
}
