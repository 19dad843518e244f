/* test_runtime_batch.c -- BatchService/Run (batch.proto) against a real points-svc, PostgreSQL
 * and Redis: each call of a batch answered as if alone (a refusal fails only itself), duplicate
 * keys inside one batch and across batches, two calls of one member in order, the lock_key
 * order, a batch with every call refused, methods that cannot be batched, and the client side:
 * concurrent batchable calls from many threads, each with the answer it would have had alone. */
#include "points_it.h"

#include "loyalty/v1/batch.pb-c.h"
#include "pb.h"

#include <pthread.h>

TestSuite(runtime_batch, .init = pt_setup, .fini = pt_teardown, .timeout = 180);

#define CALLS_MAX 16

typedef struct hold_call {
    const char *member;
    int64_t points;
    const char *key;
    const char *lock_key;
    const char *reference; /* NULL: "ref-" + key */
} hold_call_t;

/* One BatchService/Run of PointsService/Hold calls; *out gets the response. */
static status_t run_holds(const char *m, const hold_call_t *calls, size_t n,
                          Loyalty__V1__BatchRunResponse **out) {
    Loyalty__V1__BatchRunRequest req = LOYALTY__V1__BATCH_RUN_REQUEST__INIT;
    req.method = "/loyalty.v1.PointsService/Hold";
    req.n_calls = n;
    req.calls = arena_alloc(&arena, n * sizeof *req.calls);
    for (size_t i = 0; i < n; i++) {
        Loyalty__V1__PointsHoldRequest h = LOYALTY__V1__POINTS_HOLD_REQUEST__INIT;
        h.merchant_id = (char *)m;
        h.idempotency_key = (char *)calls[i].key;
        h.member_id = (char *)calls[i].member;
        h.points = calls[i].points;
        h.reference = calls[i].reference ? (char *)calls[i].reference
                                         : arena_printf(&arena, "ref-%s", calls[i].key);
        h.ttl_s = 600;
        Loyalty__V1__BatchCall *c = pb_new(&arena, &loyalty__v1__batch_call__descriptor);
        c->request.data = pb_pack_arena(&arena, &h.base, &c->request.len);
        c->lock_key = (char *)(calls[i].lock_key ? calls[i].lock_key : calls[i].member);
        req.calls[i] = c;
    }
    return rpc_call(rpc_channel_get(svc.addr), &loyalty__v1__batch_service__descriptor, "Run",
                    &req.base, &arena, (ProtobufCMessage **)out, NULL);
}

/* The hold of result i, asserting that it is OK. */
static Loyalty__V1__PointsHold *held(const Loyalty__V1__BatchRunResponse *r, size_t i) {
    cr_assert_lt(i, r->n_results);
    cr_assert_eq(r->results[i]->code, 0, "call %zu: %d %s %s", i, r->results[i]->code,
                 r->results[i]->reason, r->results[i]->message);
    Loyalty__V1__PointsHoldResponse *h =
        (void *)pb_unpack_arena(&arena, &loyalty__v1__points_hold_response__descriptor,
                                r->results[i]->response.data, r->results[i]->response.len);
    cr_assert_not_null(h);
    cr_assert_not_null(h->hold);
    return h->hold;
}

static void assert_refused(const Loyalty__V1__BatchRunResponse *r, size_t i, int code,
                           const char *reason) {
    cr_assert_lt(i, r->n_results);
    cr_assert_eq(r->results[i]->code, code, "call %zu: %d %s", i, r->results[i]->code,
                 r->results[i]->reason);
    cr_assert_str_eq(r->results[i]->reason, reason);
    cr_assert_eq(r->results[i]->response.len, 0);
}

Test(runtime_batch, a_refused_call_fails_alone) {
    /* Goal: three holds in one batch, the middle one more than its member has: the other two
     * are held, the middle one is refused as it would be alone, and nothing of it is left. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("batch");
    pt_configure(m);
    pt_earn_points(m, "ann", 1000, NULL);
    pt_earn_points(m, "bob", 100, NULL);
    pt_earn_points(m, "cy", 500, NULL);
    hold_call_t calls[] = {{"ann", 300, "k-ann"}, {"bob", 200, "k-bob"}, {"cy", 500, "k-cy"}};
    Loyalty__V1__BatchRunResponse *r = NULL;
    assert_ok(run_holds(m, calls, 3, &r));
    cr_assert_eq(r->n_results, 3);
    cr_assert_eq(held(r, 0)->points, 300);
    assert_refused(r, 1, STATUS_FAILED_PRECONDITION, "INSUFFICIENT_POINTS");
    cr_assert_eq(held(r, 2)->points, 500);
    assert_balance(m, "ann", 700, 300, 0);
    assert_balance(m, "bob", 100, 0, 0);
    assert_balance(m, "cy", 0, 500, 0);
    /* The refused call's key was not taken: the same key with fewer points succeeds. */
    hold_call_t again[] = {{"bob", 50, "k-bob"}};
    assert_ok(run_holds(m, again, 1, &r));
    cr_assert_eq(held(r, 0)->points, 50);
    assert_balance(m, "bob", 50, 50, 0);
}

Test(runtime_batch, keys_replay_inside_and_across_batches) {
    /* Goal: the same call twice in one batch holds once and answers the same hold twice; a
     * different call under a key used earlier in the batch is refused IDEMPOTENCY_KEY_REUSED;
     * the whole batch sent again answers the same and moves nothing. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("batch");
    pt_configure(m);
    pt_earn_points(m, "ann", 1000, NULL);
    hold_call_t calls[] = {{"ann", 300, "k-1"}, {"ann", 300, "k-1"}, {"ann", 100, "k-1"}};
    Loyalty__V1__BatchRunResponse *r = NULL;
    assert_ok(run_holds(m, calls, 3, &r));
    Loyalty__V1__PointsHold *first = held(r, 0);
    cr_assert_str_eq(held(r, 1)->id, first->id);
    assert_refused(r, 2, STATUS_ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED");
    assert_balance(m, "ann", 700, 300, 0);
    Loyalty__V1__BatchRunResponse *again = NULL;
    assert_ok(run_holds(m, calls, 3, &again));
    cr_assert_str_eq(held(again, 0)->id, first->id);
    cr_assert_str_eq(held(again, 1)->id, first->id);
    assert_refused(again, 2, STATUS_ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED");
    assert_balance(m, "ann", 700, 300, 0);
}

Test(runtime_batch, calls_of_one_member_run_in_lock_key_order) {
    /* Goal: two holds of one member that cannot both be held: the one first in lock_key order
     * is held, whatever its place in the request, and the other is refused as it would be
     * after it; with equal keys the request's order decides. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("batch");
    pt_configure(m);
    pt_earn_points(m, "ann", 500, NULL);
    pt_earn_points(m, "bob", 500, NULL);
    hold_call_t calls[] = {{"ann", 300, "k-late", "b"},
                           {"ann", 400, "k-early", "a"},
                           {"bob", 400, "k-bob-1", "c"},
                           {"bob", 300, "k-bob-2", "c"}};
    Loyalty__V1__BatchRunResponse *r = NULL;
    assert_ok(run_holds(m, calls, 4, &r));
    assert_refused(r, 0, STATUS_FAILED_PRECONDITION, "INSUFFICIENT_POINTS");
    cr_assert_eq(held(r, 1)->points, 400);
    cr_assert_eq(held(r, 2)->points, 400);
    assert_refused(r, 3, STATUS_FAILED_PRECONDITION, "INSUFFICIENT_POINTS");
    assert_balance(m, "ann", 100, 400, 0);
    assert_balance(m, "bob", 100, 400, 0);
}

Test(runtime_batch, a_batch_with_every_call_refused) {
    /* Goal: every call refused, each with its own reason (the request's own checks included);
     * nothing moved, and the batch itself is OK. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("batch");
    pt_configure(m);
    pt_earn_points(m, "ann", 100, NULL);
    hold_call_t calls[] = {{"ann", 200, "k-1"}, {"nobody", 10, "k-2"}, {"ann", 0, "k-3"}};
    Loyalty__V1__BatchRunResponse *r = NULL;
    assert_ok(run_holds(m, calls, 3, &r));
    assert_refused(r, 0, STATUS_FAILED_PRECONDITION, "INSUFFICIENT_POINTS");
    cr_assert_neq(r->results[1]->code, 0);
    cr_assert_eq(r->results[2]->code, STATUS_INVALID_ARGUMENT);
    assert_balance(m, "ann", 100, 0, 0);
}

Test(runtime_batch, only_mutating_methods_of_the_service_batch) {
    /* Goal: a read, another service's method, an unknown one and an empty batch are refused
     * as a whole, so that a caller knows to make its calls alone. */
    harness_start(&svc, "points-svc", NULL);
    const char *methods[] = {"/loyalty.v1.PointsService/GetBalance",
                             "/loyalty.v1.WalletService/Hold", "/loyalty.v1.PointsService/Nope"};
    for (size_t i = 0; i < 3; i++) {
        Loyalty__V1__BatchRunRequest req = LOYALTY__V1__BATCH_RUN_REQUEST__INIT;
        req.method = (char *)methods[i];
        Loyalty__V1__BatchCall call = LOYALTY__V1__BATCH_CALL__INIT;
        Loyalty__V1__BatchCall *calls[] = {&call};
        req.calls = calls;
        req.n_calls = 1;
        ProtobufCMessage *out = NULL;
        status_t st = rpc_call(rpc_channel_get(svc.addr), &loyalty__v1__batch_service__descriptor,
                               "Run", &req.base, &arena, &out, NULL);
        cr_assert_eq(st.code, STATUS_INVALID_ARGUMENT, "%s", methods[i]);
        cr_assert_str_eq(st.reason, "BATCH_NOT_SUPPORTED");
    }
    Loyalty__V1__BatchRunRequest empty = LOYALTY__V1__BATCH_RUN_REQUEST__INIT;
    empty.method = "/loyalty.v1.PointsService/Hold";
    ProtobufCMessage *out = NULL;
    status_t st = rpc_call(rpc_channel_get(svc.addr), &loyalty__v1__batch_service__descriptor,
                           "Run", &empty.base, &arena, &out, NULL);
    cr_assert_eq(st.code, STATUS_INVALID_ARGUMENT);
    cr_assert_str_eq(st.reason, "INVALID_CALLS");
}

#define THREADS 16
#define HOLDS_PER_THREAD 6

typedef struct client_run {
    const char *m;
    int thread;
    int ok, refused;
} client_run_t;

/* Batchable holds from one thread: each member has 500 points and asks for 100 six times, so
 * exactly five succeed whichever way the calls are grouped. */
static void *client_holds(void *arg) {
    client_run_t *run = arg;
    arena_t a;
    arena_init(&a);
    char member[32];
    snprintf(member, sizeof member, "m%d", run->thread);
    for (int k = 0; k < HOLDS_PER_THREAD; k++) {
        Loyalty__V1__PointsHoldRequest h = LOYALTY__V1__POINTS_HOLD_REQUEST__INIT;
        h.merchant_id = (char *)run->m;
        h.idempotency_key = arena_printf(&a, "t%d-k%d", run->thread, k);
        h.member_id = member;
        h.points = 100;
        h.reference = h.idempotency_key;
        h.ttl_s = 600;
        rpc_call_spec_t spec = {.channel = rpc_channel_get(svc.addr),
                                .service = &loyalty__v1__points_service__descriptor,
                                .method = "Hold",
                                .request = &h.base,
                                .batch = true,
                                .lock_key = member};
        rpc_call_many(&spec, 1, &a, NULL);
        if (status_is_ok(&spec.status)) {
            Loyalty__V1__PointsHoldResponse *r = (void *)spec.response;
            run->ok += r->hold != NULL && r->hold->points == 100;
        } else {
            run->refused += spec.status.code == STATUS_FAILED_PRECONDITION &&
                            strcmp(spec.status.reason, "INSUFFICIENT_POINTS") == 0;
        }
    }
    arena_free(&a);
    return NULL;
}

Test(runtime_batch, concurrent_batchable_calls_get_their_own_answers) {
    /* Goal: sixteen threads make batchable holds at once (the client batches those that find a
     * call of the method in flight): every call gets the answer it would have had alone. */
    harness_start(&svc, "points-svc", NULL);
    rpc_client_set_batch_in_flight(1);
    const char *m = harness_merchant("batch");
    pt_configure(m);
    client_run_t runs[THREADS];
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++) {
        char member[32];
        snprintf(member, sizeof member, "m%d", t);
        pt_earn_points(m, member, 500, NULL);
        runs[t] = (client_run_t){.m = m, .thread = t};
    }
    for (int t = 0; t < THREADS; t++) {
        cr_assert_eq(pthread_create(&threads[t], NULL, client_holds, &runs[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(threads[t], NULL);
    }
    for (int t = 0; t < THREADS; t++) {
        cr_assert_eq(runs[t].ok, 5, "thread %d: %d held", t, runs[t].ok);
        cr_assert_eq(runs[t].refused, 1, "thread %d: %d refused", t, runs[t].refused);
        char member[32];
        snprintf(member, sizeof member, "m%d", t);
        assert_balance(m, member, 0, 500, 0);
    }
}
