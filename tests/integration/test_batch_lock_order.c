/* test_batch_lock_order.c -- merged batches (BatchService/Run) whose calls write rows shared with
 * other batches, against real PostgreSQL: wallet-svc's CaptureHold (the merchant accounts' shard
 * rows), referral-svc's ComputeRewards (the referrers' downline counters) and promo-svc's Reserve
 * (the usage counters of a per-store limit). Each call of a batch writes such rows of its own
 * member (a member's shard, a buyer's referrer, the store it buys in), so calls
 * writing them as they go would lock them in the order of their batch's members, and two
 * batches whose members' rows come in opposite orders would deadlock; the services write them
 * once, at the end of the merged run, in one order (promo-svc, which checks a counter against its
 * limit under its lock, locks every counter of the batch first, in one order). The tests make the
 * interleaving that would deadlock without relying on timing: a session of the test's own holds the
 * lock of batch Y's second member, so that Y stops between its two calls; batch X is sent and the
 * test waits until X has finished or waits for a lock itself; only then is Y let go on. No
 * transaction may have been retried (PostgreSQL ends one of two deadlocked transactions, and the
 * runtime runs it again), and every call must have run merged and answered. */
#include "promo_client.h"
#include "referral_client.h"
#include "wallet_client.h"
#include "wallet_rules.h"

#include "loyalty/v1/batch.pb-c.h"
#include "pb.h"

#include <pthread.h>
#include <time.h>

static svc_proc_t svc;
static arena_t arena;

static void setup(void) {
    harness_init();
    arena_init(&arena);
}

static void teardown(void) {
    if (svc.pid > 0) {
        cr_expect_eq(harness_stop(&svc), 0, "%s did not exit cleanly; see %s", svc.name,
                     svc.log_path);
    }
    arena_free(&arena);
    harness_fini();
}

TestSuite(batch_lock_order, .init = setup, .fini = teardown, .timeout = 240);

#define POLLS_MAX 600 /* x 50 ms */

/* A batch of two calls of one method, run in a thread of its own. */
typedef struct two_calls {
    const char *method; /* "/loyalty.v1.WalletService/CaptureHold" */
    const ProtobufCMessage *reqs[2];
    const char *lock_keys[2];
    Loyalty__V1__BatchRunResponse *resp;
    status_t st;
    arena_t a;
} two_calls_t;

static void *run_two_calls(void *arg) {
    two_calls_t *b = arg;
    arena_init(&b->a);
    Loyalty__V1__BatchRunRequest req = LOYALTY__V1__BATCH_RUN_REQUEST__INIT;
    req.method = (char *)b->method;
    req.n_calls = 2;
    req.calls = arena_alloc(&b->a, 2 * sizeof *req.calls);
    for (size_t i = 0; i < 2; i++) {
        Loyalty__V1__BatchCall *call = pb_new(&b->a, &loyalty__v1__batch_call__descriptor);
        call->request.data = pb_pack_arena(&b->a, b->reqs[i], &call->request.len);
        call->lock_key = (char *)b->lock_keys[i];
        req.calls[i] = call;
    }
    b->st = rpc_call(rpc_channel_get(svc.addr), &loyalty__v1__batch_service__descriptor, "Run",
                     &req.base, &b->a, (ProtobufCMessage **)&b->resp, NULL);
    return NULL;
}

static void pause_ms(long ms) {
    struct timespec t = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* Backends of this database that wait for a lock (not counting the asking one). */
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

/* How the method's calls ran in batches, and how often a transaction was retried after a
 * conflict (a deadlock is one). */
typedef struct counts {
    double merged, alone, retries;
} counts_t;

static counts_t counts_of(const char *method) {
    char *body = NULL;
    cr_assert_eq(harness_http_get(svc.metrics_port, "/metrics", &body), 200);
    counts_t c = {
        .merged = harness_metric(
            body, arena_printf(&arena, "loyalty_batch_calls_total{method=\"%s\",run=\"merged\"}",
                               method)),
        .alone = harness_metric(
            body,
            arena_printf(&arena, "loyalty_batch_calls_total{method=\"%s\",run=\"alone\"}", method)),
        .retries = harness_metric(body, "loyalty_db_serialization_retries_total"),
    };
    free(body);
    return c;
}

/* Runs y and x as the file's comment says, `lock_sql` (with p1, p2) locking the row y's second
 * call waits for; then checks that every call answered, merged, and nothing was retried. */
static void interleave(two_calls_t *y, two_calls_t *x, const char *lock_sql, const char *p1,
                       const char *p2) {
    counts_t before = counts_of(y->method);
    PGconn *pg = PQconnectdb(harness_pg_dsn());
    cr_assert_eq(PQstatus(pg), CONNECTION_OK);
    PGconn *watch = PQconnectdb(harness_pg_dsn());
    cr_assert_eq(PQstatus(watch), CONNECTION_OK);
    exec_ok(pg, "BEGIN", NULL, NULL);
    exec_ok(pg, lock_sql, p1, p2);
    pthread_t ty, tx;
    cr_assert_eq(pthread_create(&ty, NULL, run_two_calls, y), 0);
    for (int i = 0; lock_waiters(watch) < 1; i++) {
        cr_assert(i < POLLS_MAX, "batch Y never reached the lock of its second call");
        pause_ms(50);
    }
    /* X runs while Y waits: it finishes, or (were the shared rows written call by call) waits
     * for a row Y took with its first call. */
    cr_assert_eq(pthread_create(&tx, NULL, run_two_calls, x), 0);
    for (int i = 0;; i++) {
        counts_t now = counts_of(y->method);
        if (now.merged + now.alone >= before.merged + before.alone + 2 ||
            lock_waiters(watch) >= 2) {
            break;
        }
        cr_assert(i < POLLS_MAX, "batch X neither finished nor waited");
        pause_ms(50);
    }
    exec_ok(pg, "ROLLBACK", NULL, NULL); /* Y goes on */
    pthread_join(ty, NULL);
    pthread_join(tx, NULL);
    PQfinish(pg);
    PQfinish(watch);
    two_calls_t *batches[] = {x, y};
    for (int k = 0; k < 2; k++) {
        assert_status(batches[k]->st, STATUS_OK, "");
        cr_assert_eq(batches[k]->resp->n_results, 2);
        for (size_t i = 0; i < 2; i++) {
            const Loyalty__V1__BatchCallResult *r = batches[k]->resp->results[i];
            cr_assert_eq(r->code, 0, "batch %d call %zu: %s %s", k, i, r->reason, r->message);
        }
        arena_free(&batches[k]->a);
    }
    counts_t after = counts_of(y->method);
    cr_assert_eq(after.retries - before.retries, 0,
                 "a transaction was retried: the batches deadlocked");
    cr_assert_eq(after.alone - before.alone, 0, "a merged run was abandoned");
    cr_assert_eq(after.merged - before.merged, 4);
}

/* ---- wallet: the merchant accounts' shards ---- */

/* The first member id "<prefix><n>" whose shard is `shard`, or any but `not_shard` when
 * shard < 0. */
static const char *member_on(const char *prefix, int shard, int not_shard) {
    for (int n = 0;; n++) {
        const char *id = arena_printf(&arena, "%s%03d", prefix, n);
        int s = wallet_shard(id);
        if (shard >= 0 ? s == shard : s != not_shard) {
            return id;
        }
    }
}

static const ProtobufCMessage *capture_request(const wallet_client_t *wc, const char *hold_id) {
    Loyalty__V1__WalletCaptureHoldRequest *c =
        pb_new(&arena, &loyalty__v1__wallet_capture_hold_request__descriptor);
    c->merchant_id = (char *)wc->merchant;
    c->idempotency_key = arena_printf(&arena, "cap-%s", hold_id);
    c->hold_id = (char *)hold_id;
    c->amount_cents = 100;
    return &c->base;
}

Test(batch_lock_order, wallet_captures_with_shards_in_opposite_orders_do_not_deadlock) {
    harness_start(&svc, "wallet-svc", NULL);
    wallet_client_t wc = {.addr = svc.addr, .merchant = harness_merchant("wbat"), .arena = &arena};
    /* X = {A, B} and Y = {C, D} in lock-key order, shard(A) = shard(D) = sa and shard(B) =
     * shard(C) = sb: X's calls touch sa then sb, Y's sb then sa. */
    const char *a = member_on("a", -1, -1);
    int sa = wallet_shard(a);
    const char *b = member_on("b", -1, sa);
    int sb = wallet_shard(b);
    const char *c = member_on("c", sb, -1);
    const char *d = member_on("d", sa, -1);
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
    const char *method = "/loyalty.v1.WalletService/CaptureHold";
    two_calls_t y = {.method = method,
                     .reqs = {capture_request(&wc, holds[2]), capture_request(&wc, holds[3])},
                     .lock_keys = {c, d}};
    two_calls_t x = {.method = method,
                     .reqs = {capture_request(&wc, holds[0]), capture_request(&wc, holds[1])},
                     .lock_keys = {a, b}};
    interleave(&y, &x,
               "SELECT FROM wallet.accounts WHERE merchant_id = $1 AND member_id = $2 FOR UPDATE",
               wc.merchant, d);
    for (int i = 0; i < 4; i++) {
        assert_balance(wc_balance(&wc, members[i]), 900, 0, 0);
    }
    wc_assert_ledger_clean(&wc);
}

/* ---- referral: the referrers' downline counters ---- */

static const ProtobufCMessage *compute_request(const rc_t *rc, const char *buyer) {
    Loyalty__V1__ReferralComputeRewardsRequest *r =
        pb_new(&arena, &loyalty__v1__referral_compute_rewards_request__descriptor);
    r->merchant_id = (char *)rc->merchant;
    r->idempotency_key = arena_printf(&arena, "compute-%s", buyer);
    r->event = EV_BUY;
    r->member_id = (char *)buyer;
    r->paid_cents = 10000;
    r->reference = arena_printf(&arena, "order-%s", buyer);
    return &r->base;
}

Test(batch_lock_order, referral_computes_with_referrers_in_opposite_orders_do_not_deadlock) {
    harness_start(&svc, "referral-svc", NULL);
    rc_t rc = {.addr = svc.addr, .merchant = harness_merchant("rbat"), .arena = &arena};
    rc_program_t prog;
    rc_program_init(&prog);
    assert_status(rc_set_program(&rc, &prog.p, NULL), STATUS_OK, "");
    /* X = {A, B}, Y = {C, D} in lock-key order; A and D were referred by ra, B and C by rc:
     * X's calls reward ra then rc at level 1, Y's rc then ra. */
    rc_link(&rc, "x1-a", "ra");
    rc_link(&rc, "x2-b", "rc");
    rc_link(&rc, "y1-c", "rc");
    rc_link(&rc, "y2-d", "ra");
    const char *method = "/loyalty.v1.ReferralService/ComputeRewards";
    two_calls_t y = {.method = method,
                     .reqs = {compute_request(&rc, "y1-c"), compute_request(&rc, "y2-d")},
                     .lock_keys = {"y1-c", "y2-d"}};
    two_calls_t x = {.method = method,
                     .reqs = {compute_request(&rc, "x1-a"), compute_request(&rc, "x2-b")},
                     .lock_keys = {"x1-a", "x2-b"}};
    interleave(&y, &x,
               "SELECT FROM referral.referral_members WHERE merchant_id = $1 AND member_id = $2 "
               "FOR UPDATE",
               rc.merchant, "y2-d");
    /* Each referrer: two referees, and the counter of its level-1 rewards equal to them. */
    const char *referrers[] = {"ra", "rc"};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(rc_sql_int("SELECT members FROM referral.downline_stats WHERE merchant_id = "
                                "$1 AND member_id = $2 AND level = 1",
                                rc.merchant, referrers[i]),
                     2);
        int64_t rewarded = rc_sql_int("SELECT coalesce(sum(points), 0) FROM referral.rewards "
                                      "WHERE merchant_id = $1 AND beneficiary_id = $2 "
                                      "AND level = 1",
                                      rc.merchant, referrers[i]);
        cr_assert_gt(rewarded, 0);
        cr_assert_eq(rc_sql_int("SELECT reward_points FROM referral.downline_stats WHERE "
                                "merchant_id = $1 AND member_id = $2 AND level = 1",
                                rc.merchant, referrers[i]),
                     rewarded, "%s", referrers[i]);
    }
}

/* ---- promo: the usage counters of a per-store limit ---- */

static const ProtobufCMessage *reserve_request(const char *merchant, const char *member,
                                               const char *store) {
    Loyalty__V1__PromoCart *cart = pt_cart(&arena, member);
    cart->store_id = (char *)store;
    pt_line(&arena, cart, "sku-1", 1, 5000);
    Loyalty__V1__PromoReserveRequest *r =
        pb_new(&arena, &loyalty__v1__promo_reserve_request__descriptor);
    r->merchant_id = (char *)merchant;
    r->idempotency_key = arena_printf(&arena, "reserve-%s", member);
    r->checkout_id = arena_printf(&arena, "co-%s", member);
    r->cart = cart;
    return &r->base;
}

/* A promotion of 100 off with a per-member and a per-store limit on a new merchant. */
static const char *promo_with_store_limit(void) {
    harness_start(&svc, "promo-svc", NULL);
    const char *merchant = harness_merchant("pbat");
    Loyalty__V1__Promotion *p = pt_promotion(&arena, "store cap", 1);
    pt_amount_off(&arena, p, 100);
    pt_limit(&arena, p, SCOPE_MEMBER, PERIOD_LIFETIME, 5, 0);
    pt_limit(&arena, p, SCOPE_STORE, PERIOD_LIFETIME, 10, 0);
    assert_status(pt_create(svc.addr, merchant, &arena, p, NULL), STATUS_OK, "");
    return merchant;
}

/* The uses of the counters of scopes S:1, S:2, M:a .. M:d. */
static void assert_promo_uses(const char *merchant, int64_t per_store, int64_t per_member) {
    const char *scopes[] = {"S:1", "S:2", "M:a", "M:b", "M:c", "M:d"};
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(pt_sql_int("SELECT uses FROM promo.usage_counters WHERE merchant_id = $1 "
                                "AND scope_key = $2",
                                merchant, scopes[i]),
                     i < 2 ? per_store : per_member, "%s", scopes[i]);
    }
}

Test(batch_lock_order, promo_reserves_with_stores_in_opposite_orders_do_not_deadlock) {
    const char *merchant = promo_with_store_limit();
    /* X = {a at store 1, b at store 2}, Y = {c at store 2, d at store 1} in lock-key order: a
     * call locking its counters as it goes, X takes S:1 then S:2, Y S:2 then S:1. The test
     * holds d's member counter (a row it inserts and does not commit), which d's call creates
     * first: Y waits there, after c's call took S:2. */
    const char *method = "/loyalty.v1.PromoService/Reserve";
    two_calls_t y = {
        .method = method,
        .reqs = {reserve_request(merchant, "c", "2"), reserve_request(merchant, "d", "1")},
        .lock_keys = {"c", "d"}};
    two_calls_t x = {
        .method = method,
        .reqs = {reserve_request(merchant, "a", "1"), reserve_request(merchant, "b", "2")},
        .lock_keys = {"a", "b"}};
    interleave(
        &y, &x,
        "INSERT INTO promo.usage_counters (merchant_id, promotion_id, scope_key, period_key) "
        "SELECT $1, id, 'M:' || $2, 'L' FROM promo.promotions WHERE merchant_id = $1",
        merchant, "d");
    assert_promo_uses(merchant, 2, 1);
    cr_assert_eq(pt_sql_int("SELECT count(*) FROM promo.reservations WHERE merchant_id = $1 "
                            "AND status = 1 AND member_id = ANY(string_to_array($2, ','))",
                            merchant, "a,b,c,d"),
                 4);
    cr_assert_eq(pt_sql_int("SELECT sum(discount_cents) FROM promo.reservation_usages WHERE "
                            "merchant_id = $1 AND scope_key LIKE $2",
                            merchant, "S:%"),
                 400);
}

static const ProtobufCMessage *release_request(const char *merchant, const char *member) {
    Loyalty__V1__PromoReleaseRequest *r =
        pb_new(&arena, &loyalty__v1__promo_release_request__descriptor);
    r->merchant_id = (char *)merchant;
    r->idempotency_key = arena_printf(&arena, "release-%s", member);
    r->checkout_id = arena_printf(&arena, "co-%s", member);
    return &r->base;
}

Test(batch_lock_order, promo_releases_merged_give_every_use_back) {
    const char *merchant = promo_with_store_limit();
    const char *members[] = {"a", "b", "c", "d"}, *stores[] = {"1", "2", "2", "1"};
    for (int i = 0; i < 4; i++) {
        const Loyalty__V1__PromoReserveRequest *r =
            (const void *)reserve_request(merchant, members[i], stores[i]);
        assert_status(pt_reserve(svc.addr, merchant, &arena, r->checkout_id, r->idempotency_key,
                                 r->cart, 0, NULL),
                      STATUS_OK, "");
    }
    assert_promo_uses(merchant, 2, 1);
    /* The same interleaving for Release, merged: every use is given back and nothing retried.
     * Unlike the reserves, it has not been seen to deadlock with Release's merger removed: it
     * checks the merged releases, not (yet) the hazard. */
    const char *method = "/loyalty.v1.PromoService/Release";
    two_calls_t y = {.method = method,
                     .reqs = {release_request(merchant, "c"), release_request(merchant, "d")},
                     .lock_keys = {"c", "d"}};
    two_calls_t x = {.method = method,
                     .reqs = {release_request(merchant, "a"), release_request(merchant, "b")},
                     .lock_keys = {"a", "b"}};
    interleave(&y, &x,
               "SELECT FROM promo.usage_counters WHERE merchant_id = $1 AND scope_key = 'M:' || $2 "
               "FOR UPDATE",
               merchant, "d");
    assert_promo_uses(merchant, 0, 0);
    cr_assert_eq(pt_sql_int("SELECT count(*) FROM promo.reservations WHERE merchant_id = $1 "
                            "AND status = 3",
                            merchant, NULL),
                 4);
}
