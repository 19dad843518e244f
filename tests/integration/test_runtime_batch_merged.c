/* test_runtime_batch_merged.c -- batches whose method has a merger (rpc_merger_t), with
 * points-svc's EarnBatch as the vehicle against real PostgreSQL and Redis: calls of different
 * members run merged and answer exactly as alone; a call that shares a member with an earlier
 * one, or is refused, runs by itself (in order, failing only itself); keys replay inside and
 * across batches; a batch with every call refused; and a seeded random mix of calls whose
 * final balances equal those of the same calls made one by one. How each call ran is read
 * from loyalty_batch_calls_total, so a merger that silently never merges fails the tests. */
#include "points_it.h"

#include "loyalty/v1/batch.pb-c.h"
#include "pb.h"

TestSuite(runtime_batch_merged, .init = pt_setup, .fini = pt_teardown, .timeout = 240);

#define CALLS_MAX 24
#define SERIES(run)                                                                                \
    "loyalty_batch_calls_total{method=\"/loyalty.v1.PointsService/EarnBatch\",run=\"" run "\"}"

/* One EarnBatch call: a hold's commit (hold_id, may be NULL) and up to three earns of points. */
typedef struct earn_call {
    const char *key;
    const char *hold_id;
    const char *members[3];
    int64_t points[3];
} earn_call_t;

/* The earns' references follow from the key: the same call is the same request anywhere. */
static Loyalty__V1__PointsEarnBatchRequest *earn_request(const char *m, const earn_call_t *c) {
    Loyalty__V1__PointsEarnBatchRequest *req =
        pb_new(&arena, &loyalty__v1__points_earn_batch_request__descriptor);
    req->merchant_id = (char *)m;
    req->idempotency_key = (char *)c->key;
    req->commit_hold_id = (char *)(c->hold_id ? c->hold_id : "");
    req->omit_expiring = true;
    req->earns = arena_alloc(&arena, 3 * sizeof *req->earns);
    for (size_t k = 0; k < 3 && c->members[k]; k++) {
        Loyalty__V1__PointsEarnRequest *e =
            pb_new(&arena, &loyalty__v1__points_earn_request__descriptor);
        e->member_id = (char *)c->members[k];
        e->source = LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_REFERRAL;
        e->reference = arena_printf(&arena, "%s:%zu", c->key, k);
        e->amount_case = LOYALTY__V1__POINTS_EARN_REQUEST__AMOUNT_POINTS;
        e->points = c->points[k];
        e->_pending_days_case = LOYALTY__V1__POINTS_EARN_REQUEST___PENDING_DAYS_PENDING_DAYS;
        req->earns[req->n_earns++] = e;
    }
    return req;
}

/* One BatchService/Run of EarnBatch calls, lock keys their first member. */
static Loyalty__V1__BatchRunResponse *run_earns(const char *m, const earn_call_t *calls, size_t n) {
    Loyalty__V1__BatchRunRequest req = LOYALTY__V1__BATCH_RUN_REQUEST__INIT;
    req.method = "/loyalty.v1.PointsService/EarnBatch";
    req.n_calls = n;
    req.calls = arena_alloc(&arena, n * sizeof *req.calls);
    for (size_t i = 0; i < n; i++) {
        Loyalty__V1__BatchCall *c = pb_new(&arena, &loyalty__v1__batch_call__descriptor);
        c->request.data = pb_pack_arena(&arena, &earn_request(m, &calls[i])->base, &c->request.len);
        c->lock_key = (char *)(calls[i].members[0] ? calls[i].members[0] : "");
        req.calls[i] = c;
    }
    Loyalty__V1__BatchRunResponse *out = NULL;
    assert_ok(rpc_call(rpc_channel_get(svc.addr), &loyalty__v1__batch_service__descriptor, "Run",
                       &req.base, &arena, (ProtobufCMessage **)&out, NULL));
    cr_assert_eq(out->n_results, n);
    return out;
}

static Loyalty__V1__PointsEarnBatchResponse *earned(const Loyalty__V1__BatchRunResponse *r,
                                                    size_t i) {
    cr_assert_eq(r->results[i]->code, 0, "call %zu: %d %s %s", i, r->results[i]->code,
                 r->results[i]->reason, r->results[i]->message);
    Loyalty__V1__PointsEarnBatchResponse *e =
        (void *)pb_unpack_arena(&arena, &loyalty__v1__points_earn_batch_response__descriptor,
                                r->results[i]->response.data, r->results[i]->response.len);
    cr_assert_not_null(e);
    return e;
}

static void assert_refused(const Loyalty__V1__BatchRunResponse *r, size_t i, int code,
                           const char *reason) {
    cr_assert_eq(r->results[i]->code, code, "call %zu: %d %s", i, r->results[i]->code,
                 r->results[i]->reason);
    cr_assert_str_eq(r->results[i]->reason, reason);
    cr_assert_eq(r->results[i]->response.len, 0);
}

/* How many EarnBatch calls of batches ran merged and alone so far. */
static void runs_so_far(double *merged, double *alone) {
    char *body = NULL;
    int code = harness_http_get(svc.metrics_port, "/metrics", &body);
    cr_assert_eq(code, 200, "GET /metrics answered %d", code);
    *merged = harness_metric(body, SERIES("merged"));
    *alone = harness_metric(body, SERIES("alone"));
    free(body);
}

#define assert_runs(merged0, alone0, want_merged, want_alone)                                      \
    do {                                                                                           \
        double m1_, a1_;                                                                           \
        runs_so_far(&m1_, &a1_);                                                                   \
        cr_assert_eq(m1_ - (merged0), (want_merged), "merged %g, want %d", m1_ - (merged0),        \
                     (want_merged));                                                               \
        cr_assert_eq(a1_ - (alone0), (want_alone), "alone %g, want %d", a1_ - (alone0),            \
                     (want_alone));                                                                \
    } while (0)

Test(runtime_batch_merged, calls_of_different_members_merge_and_answer_as_alone) {
    /* Goal: four checkouts' settlements (a hold's commit and an earn each, four buyers) in one
     * batch run merged; each answer is the one its call gives alone (the hold committed, the
     * balance after its own movements); a call sent again alone with its key replays that
     * answer and moves nothing. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("merged");
    pt_configure(m);
    const char *buyers[] = {"b1", "b2", "b3", "b4"};
    earn_call_t calls[4];
    for (int i = 0; i < 4; i++) {
        pt_earn_points(m, buyers[i], 1000 * (i + 1), NULL);
        Loyalty__V1__PointsHold *h = NULL;
        assert_ok(pt_hold(m, buyers[i], 100, arena_printf(&arena, "order-%d", i), 600, &h));
        calls[i] = (earn_call_t){.key = arena_printf(&arena, "settle-%d", i),
                                 .hold_id = h->id,
                                 .members = {buyers[i]},
                                 .points = {10 + i}};
    }
    double merged0, alone0;
    runs_so_far(&merged0, &alone0);
    Loyalty__V1__BatchRunResponse *r = run_earns(m, calls, 4);
    assert_runs(merged0, alone0, 4, 0);
    for (int i = 0; i < 4; i++) {
        Loyalty__V1__PointsEarnBatchResponse *e = earned(r, (size_t)i);
        cr_assert_not_null(e->hold);
        cr_assert_str_eq(e->hold->id, calls[i].hold_id);
        cr_assert_eq(e->hold->status,
                     LOYALTY__V1__POINTS_HOLD_STATUS__POINTS_HOLD_STATUS_COMMITTED);
        cr_assert_eq(e->n_earns, 1);
        cr_assert_eq(e->earns[0]->points, 10 + i);
        int64_t want = 1000 * (i + 1) - 100 + 10 + i;
        cr_assert_eq(e->earns[0]->balance->available, want, "b%d: %lld, want %lld", i + 1,
                     (long long)e->earns[0]->balance->available, (long long)want);
        assert_balance(m, buyers[i], want, 0, 0);
    }
    /* Each key was recorded with its own answer: the third call alone replays it. */
    Loyalty__V1__PointsEarnBatchResponse *again = NULL;
    assert_ok(pcall("EarnBatch", earn_request(m, &calls[2]), &again));
    cr_assert_str_eq(again->hold->id, calls[2].hold_id);
    cr_assert_str_eq(again->earns[0]->lot->id, earned(r, 2)->earns[0]->lot->id);
    cr_assert_eq(again->earns[0]->balance->available, 3000 - 100 + 12);
    assert_balance(m, "b3", 3000 - 100 + 12, 0, 0);
    pt_assert_ledger_clean(m);
}

Test(runtime_batch_merged, a_call_sharing_a_member_runs_after_in_order) {
    /* Goal: calls 0 and 2 move ann, so call 2 is left out of the merged run and runs after it,
     * seeing call 0's points as it would one after the other; call 1 (bob, cy) merges. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("merged");
    pt_configure(m);
    earn_call_t calls[] = {
        {.key = "k0", .members = {"ann"}, .points = {100}},
        {.key = "k1", .members = {"bob", "cy"}, .points = {20, 30}},
        {.key = "k2", .members = {"dan", "ann"}, .points = {5, 50}},
    };
    double merged0, alone0;
    runs_so_far(&merged0, &alone0);
    Loyalty__V1__BatchRunResponse *r = run_earns(m, calls, 3);
    assert_runs(merged0, alone0, 2, 1);
    cr_assert_eq(earned(r, 0)->earns[0]->balance->available, 100);
    cr_assert_eq(earned(r, 1)->earns[1]->balance->available, 30);
    cr_assert_eq(earned(r, 2)->earns[0]->balance->available, 5);
    cr_assert_eq(earned(r, 2)->earns[1]->balance->available, 150, "after call 0's 100");
    assert_balance(m, "ann", 150, 0, 0);
    assert_balance(m, "bob", 20, 0, 0);
    pt_assert_ledger_clean(m);
}

Test(runtime_batch_merged, a_refused_call_fails_alone_and_the_others_merge) {
    /* Goal: a call whose hold does not exist and one with an invalid earn are refused as they
     * would be alone, leave nothing, and do not keep the three others from merging; the keys
     * of the refused calls stay free. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("merged");
    pt_configure(m);
    earn_call_t calls[] = {
        {.key = "ok-1", .members = {"ann"}, .points = {10}},
        {.key = "no-hold", .hold_id = "hld_missing", .members = {"bob"}, .points = {10}},
        {.key = "ok-2", .members = {"cy"}, .points = {20}},
        {.key = "bad", .members = {"dan"}, .points = {-5}},
        {.key = "ok-3", .members = {"eve"}, .points = {30}},
    };
    double merged0, alone0;
    runs_so_far(&merged0, &alone0);
    Loyalty__V1__BatchRunResponse *r = run_earns(m, calls, 5);
    assert_runs(merged0, alone0, 3, 2);
    cr_assert_eq(earned(r, 0)->earns[0]->balance->available, 10);
    assert_refused(r, 1, STATUS_NOT_FOUND, "HOLD_NOT_FOUND");
    cr_assert_eq(earned(r, 2)->earns[0]->balance->available, 20);
    assert_refused(r, 3, STATUS_INVALID_ARGUMENT, "INVALID_POINTS");
    cr_assert_eq(earned(r, 4)->earns[0]->balance->available, 30);
    assert_balance(m, "bob", 0, 0, 0);
    assert_balance(m, "dan", 0, 0, 0);
    earn_call_t fixed = {.key = "bad", .members = {"dan"}, .points = {5}};
    assert_ok(pcall("EarnBatch", earn_request(m, &fixed), NULL));
    assert_balance(m, "dan", 5, 0, 0);
    pt_assert_ledger_clean(m);
}

Test(runtime_batch_merged, keys_replay_across_batches) {
    /* Goal: a batch sent again, with a call under a used key but another request added: the
     * merged run cannot record keys already taken, so the calls run one by one: the two replay
     * their first answers and move nothing, the other is refused IDEMPOTENCY_KEY_REUSED. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("merged");
    pt_configure(m);
    earn_call_t calls[] = {
        {.key = "k-a", .members = {"ann"}, .points = {10}},
        {.key = "k-b", .members = {"bob"}, .points = {20}},
        {.key = "k-a", .members = {"cy"}, .points = {99}},
    };
    double merged0, alone0;
    runs_so_far(&merged0, &alone0);
    Loyalty__V1__BatchRunResponse *r = run_earns(m, calls, 2);
    assert_runs(merged0, alone0, 2, 0);
    const char *lot_a = earned(r, 0)->earns[0]->lot->id;
    r = run_earns(m, calls, 3);
    assert_runs(merged0, alone0, 2, 3);
    cr_assert_str_eq(earned(r, 0)->earns[0]->lot->id, lot_a);
    cr_assert_eq(earned(r, 0)->earns[0]->balance->available, 10);
    cr_assert_eq(earned(r, 1)->earns[0]->balance->available, 20);
    assert_refused(r, 2, STATUS_ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED");
    assert_balance(m, "ann", 10, 0, 0);
    assert_balance(m, "bob", 20, 0, 0);
    assert_balance(m, "cy", 0, 0, 0);
    pt_assert_ledger_clean(m);
}

Test(runtime_batch_merged, duplicate_keys_inside_one_fresh_batch) {
    /* Goal: a fresh batch carrying one call twice (same key, same request) and another request
     * under that key: the merged run cannot record the key twice, so the calls run one by one:
     * the call earns once, its copy replays the answer, the other is refused. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("merged");
    pt_configure(m);
    earn_call_t calls[] = {
        {.key = "dup", .members = {"ann"}, .points = {10}},
        {.key = "solo", .members = {"cy"}, .points = {3}},
        {.key = "dup", .members = {"ann"}, .points = {10}},
        {.key = "dup", .members = {"bob"}, .points = {7}},
    };
    double merged0, alone0;
    runs_so_far(&merged0, &alone0);
    Loyalty__V1__BatchRunResponse *r = run_earns(m, calls, 4);
    assert_runs(merged0, alone0, 0, 4);
    cr_assert_str_eq(earned(r, 0)->earns[0]->lot->id, earned(r, 2)->earns[0]->lot->id);
    cr_assert_eq(earned(r, 1)->earns[0]->balance->available, 3);
    assert_refused(r, 3, STATUS_ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED");
    assert_balance(m, "ann", 10, 0, 0);
    assert_balance(m, "bob", 0, 0, 0);
    pt_assert_ledger_clean(m);
}

Test(runtime_batch_merged, a_batch_with_every_call_refused) {
    /* Goal: every call refused, each with its own reason; nothing is written. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("merged");
    pt_configure(m);
    earn_call_t calls[] = {
        {.key = "r1", .hold_id = "hld_gone", .members = {"ann"}, .points = {10}},
        {.key = "r2", .members = {"bob"}, .points = {0}},
    };
    Loyalty__V1__BatchRunResponse *r = run_earns(m, calls, 2);
    assert_refused(r, 0, STATUS_NOT_FOUND, "HOLD_NOT_FOUND");
    assert_refused(r, 1, STATUS_INVALID_ARGUMENT, "INVALID_POINTS");
    assert_balance(m, "ann", 0, 0, 0);
    assert_balance(m, "bob", 0, 0, 0);
}

Test(runtime_batch_merged, random_calls_end_as_one_by_one) {
    /* Goal: a seeded random mix of calls over a few members (so that many share members), in
     * batches of random sizes on one merchant and one by one on another: every member's
     * balance ends the same on both. */
    harness_start(&svc, "points-svc", NULL);
    const char *batched = harness_merchant("merged-b");
    const char *alone = harness_merchant("merged-a");
    pt_configure(batched);
    pt_configure(alone);
    const char *members[] = {"m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7"};
    unsigned seed = 20261207;
    earn_call_t calls[CALLS_MAX];
    double merged0, alone0;
    runs_so_far(&merged0, &alone0);
    for (int round = 0; round < 6; round++) {
        size_t n = 2 + (size_t)(rand_r(&seed) % (CALLS_MAX - 1));
        for (size_t i = 0; i < n; i++) {
            earn_call_t *c = &calls[i];
            *c = (earn_call_t){.key = arena_printf(&arena, "r%d-%zu", round, i)};
            int earns = 1 + rand_r(&seed) % 3;
            for (int k = 0; k < earns; k++) {
                c->members[k] = members[rand_r(&seed) % 8];
                c->points[k] = 1 + rand_r(&seed) % 500;
            }
        }
        Loyalty__V1__BatchRunResponse *r = run_earns(batched, calls, n);
        for (size_t i = 0; i < n; i++) {
            (void)earned(r, i);
            assert_ok(pcall("EarnBatch", earn_request(alone, &calls[i]), NULL));
        }
    }
    double merged1, alone1;
    runs_so_far(&merged1, &alone1);
    cr_assert_gt(merged1 - merged0, 0, "some calls merged");
    cr_assert_gt(alone1 - alone0, 0, "some calls shared members and ran alone");
    for (int i = 0; i < 8; i++) {
        Loyalty__V1__PointsBalance *b = pt_balance(batched, members[i]);
        Loyalty__V1__PointsBalance *a = pt_balance(alone, members[i]);
        cr_assert_eq(b->available, a->available, "%s: %lld batched, %lld one by one", members[i],
                     (long long)b->available, (long long)a->available);
        cr_assert_eq(b->lifetime_earned, a->lifetime_earned);
    }
    pt_assert_ledger_clean(batched);
    pt_assert_ledger_clean(alone);
}

Test(runtime_batch_merged, a_method_without_a_merger_merges_in_sequence) {
    /* Goal: Hold has no merger of its own: its calls run one after another in one part, two
     * holds of one member included (the second sees the first's points held); a batch with a
     * refused call gives way to the calls one by one, so only that call fails. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("merged");
    pt_configure(m);
    pt_earn_points(m, "ann", 1000, NULL);
    pt_earn_points(m, "bob", 100, NULL);
    const char *series_merged =
        "loyalty_batch_calls_total{method=\"/loyalty.v1.PointsService/Hold\",run=\"merged\"}";
    const char *series_alone =
        "loyalty_batch_calls_total{method=\"/loyalty.v1.PointsService/Hold\",run=\"alone\"}";
    const char *members[] = {"ann", "ann", "bob", "bob"};
    int64_t points[] = {600, 400, 50, 80};
    Loyalty__V1__BatchRunRequest req = LOYALTY__V1__BATCH_RUN_REQUEST__INIT;
    req.method = "/loyalty.v1.PointsService/Hold";
    req.calls = arena_alloc(&arena, 4 * sizeof *req.calls);
    for (size_t i = 0; i < 4; i++) {
        Loyalty__V1__PointsHoldRequest h = LOYALTY__V1__POINTS_HOLD_REQUEST__INIT;
        h.merchant_id = (char *)m;
        h.idempotency_key = arena_printf(&arena, "hold-%zu", i);
        h.member_id = (char *)members[i];
        h.points = points[i];
        h.reference = arena_printf(&arena, "order-%zu", i);
        h.ttl_s = 600;
        Loyalty__V1__BatchCall *c = pb_new(&arena, &loyalty__v1__batch_call__descriptor);
        c->request.data = pb_pack_arena(&arena, &h.base, &c->request.len);
        c->lock_key = (char *)members[i];
        req.calls[i] = c;
    }
    for (int round = 0; round < 2; round++) {
        /* Round 0: ann's two holds alone (all fit). Round 1: the same keys again with bob's two
         * holds, the second more than bob has left. */
        req.n_calls = round == 0 ? 2 : 4;
        char *body = NULL;
        cr_assert_eq(harness_http_get(svc.metrics_port, "/metrics", &body), 200);
        double merged0 = harness_metric(body, series_merged);
        double alone0 = harness_metric(body, series_alone);
        free(body);
        Loyalty__V1__BatchRunResponse *r = NULL;
        assert_ok(rpc_call(rpc_channel_get(svc.addr), &loyalty__v1__batch_service__descriptor,
                           "Run", &req.base, &arena, (ProtobufCMessage **)&r, NULL));
        cr_assert_eq(harness_http_get(svc.metrics_port, "/metrics", &body), 200);
        double merged = harness_metric(body, series_merged) - merged0;
        double alone = harness_metric(body, series_alone) - alone0;
        free(body);
        for (size_t i = 0; i < 2; i++) {
            cr_assert_eq(r->results[i]->code, 0, "hold %zu: %s", i, r->results[i]->reason);
            Loyalty__V1__PointsHoldResponse *h =
                (void *)pb_unpack_arena(&arena, &loyalty__v1__points_hold_response__descriptor,
                                        r->results[i]->response.data, r->results[i]->response.len);
            cr_assert_eq(h->balance->available, i == 0 ? 400 : 0, "the second sees the first");
        }
        if (round == 0) {
            cr_assert_eq(merged, 2);
            cr_assert_eq(alone, 0);
        } else {
            cr_assert_eq(merged, 0);
            cr_assert_eq(alone, 4);
            cr_assert_eq(r->results[2]->code, 0);
            assert_refused(r, 3, STATUS_FAILED_PRECONDITION, "INSUFFICIENT_POINTS");
        }
    }
    assert_balance(m, "ann", 0, 1000, 0);
    assert_balance(m, "bob", 50, 50, 0);
    pt_assert_ledger_clean(m);
}
