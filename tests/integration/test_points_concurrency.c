/* test_points_concurrency.c -- points-svc under real parallel clients against real PostgreSQL:
 * 100 holds on one member who can afford only some of them, parallel commits and releases,
 * concurrent retries of one idempotency key, and earns racing holds. The ledger must verify
 * clean after each. */
#include "points_it.h"

#include <pthread.h>

TestSuite(points_concurrency, .init = pt_setup, .fini = pt_teardown, .timeout = 180);

#define HOLDERS 100

typedef struct holder {
    const char *merchant;
    const char *member;
    int index;
    int64_t points;
    const char *key; /* NULL: a key of its own */
    status_t st;
    char hold_id[64];
} holder_t;

static void *hold_main(void *p) {
    holder_t *h = p;
    arena_t a;
    arena_init(&a);
    char ref[32], key[48];
    snprintf(ref, sizeof ref, "cart-%d", h->index);
    snprintf(key, sizeof key, "%s-hold-%d", h->merchant, h->index);
    Loyalty__V1__PointsHold *hold = NULL;
    h->st = pt_hold_in(&a, h->merchant, h->member, h->points, h->key ? "cart-same" : ref, 600,
                       h->key ? h->key : key, &hold);
    if (status_is_ok(&h->st)) {
        snprintf(h->hold_id, sizeof h->hold_id, "%s", hold->id);
    }
    arena_free(&a);
    return NULL;
}

typedef struct finisher {
    const char *merchant;
    const char *hold_id;
    bool commit;
    status_t st;
} finisher_t;

static void *finish_main(void *p) {
    finisher_t *f = p;
    arena_t a;
    arena_init(&a);
    char key[96];
    snprintf(key, sizeof key, "fin-%s", f->hold_id);
    if (f->commit) {
        Loyalty__V1__PointsCommitHoldRequest req = LOYALTY__V1__POINTS_COMMIT_HOLD_REQUEST__INIT;
        req.merchant_id = (char *)f->merchant;
        req.idempotency_key = key;
        req.target_case = LOYALTY__V1__POINTS_COMMIT_HOLD_REQUEST__TARGET_HOLD_ID;
        req.hold_id = (char *)f->hold_id;
        f->st = pcall_in(&a, "CommitHold", &req, NULL);
    } else {
        Loyalty__V1__PointsReleaseHoldRequest req = LOYALTY__V1__POINTS_RELEASE_HOLD_REQUEST__INIT;
        req.merchant_id = (char *)f->merchant;
        req.idempotency_key = key;
        req.target_case = LOYALTY__V1__POINTS_RELEASE_HOLD_REQUEST__TARGET_HOLD_ID;
        req.hold_id = (char *)f->hold_id;
        f->st = pcall_in(&a, "ReleaseHold", &req, NULL);
    }
    arena_free(&a);
    return NULL;
}

Test(points_concurrency, hundred_parallel_holds_only_affordable_ones_succeed) {
    /* Goal: 1000 points, 100 parallel holds of 15: exactly 66 succeed (990 points) and 34 fail
     * FAILED_PRECONDITION INSUFFICIENT_POINTS; then 33 parallel commits and 33 parallel
     * releases leave available 10 + 495 and nothing held; the ledger verifies clean. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("par");
    pt_configure(m);
    pt_earn_points(m, "mbr-1", 400, NULL);
    pt_earn_points(m, "mbr-1", 600, "2030-06-30");
    pthread_t threads[HOLDERS];
    holder_t args[HOLDERS];
    for (int i = 0; i < HOLDERS; i++) {
        args[i] = (holder_t){.merchant = m, .member = "mbr-1", .index = i, .points = 15};
        cr_assert_eq(pthread_create(&threads[i], NULL, hold_main, &args[i]), 0);
    }
    for (int i = 0; i < HOLDERS; i++) {
        pthread_join(threads[i], NULL);
    }
    int ok = 0, refused = 0;
    for (int i = 0; i < HOLDERS; i++) {
        if (status_is_ok(&args[i].st)) {
            ok++;
        } else {
            cr_assert_eq(args[i].st.code, STATUS_FAILED_PRECONDITION, "holder %d: %s (%s)", i,
                         status_code_name(args[i].st.code), args[i].st.message);
            cr_assert_str_eq(args[i].st.reason, "INSUFFICIENT_POINTS");
            refused++;
        }
    }
    cr_assert_eq(ok, 66);
    cr_assert_eq(refused, 34);
    assert_balance(m, "mbr-1", 10, 990, 0);
    pt_assert_ledger_clean(m);

    finisher_t fin[HOLDERS];
    int n = 0;
    for (int i = 0; i < HOLDERS; i++) {
        if (status_is_ok(&args[i].st)) {
            fin[n] = (finisher_t){.merchant = m, .hold_id = args[i].hold_id, .commit = n % 2 == 0};
            cr_assert_eq(pthread_create(&threads[n], NULL, finish_main, &fin[n]), 0);
            n++;
        }
    }
    for (int i = 0; i < n; i++) {
        pthread_join(threads[i], NULL);
        assert_ok(fin[i].st);
    }
    assert_balance(m, "mbr-1", 10 + 33 * 15, 0, 0);
    pt_assert_ledger_clean(m);
}

Test(points_concurrency, concurrent_retries_of_one_key_hold_once) {
    /* Goal: 20 clients retrying the same Hold (same idempotency key) at the same moment get
     * the same hold, and the points are held once. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("retry");
    pt_configure(m);
    pt_earn_points(m, "mbr-1", 100, NULL);
    enum { N = 20 };
    pthread_t threads[N];
    holder_t args[N];
    for (int i = 0; i < N; i++) {
        args[i] = (holder_t){
            .merchant = m, .member = "mbr-1", .index = i, .points = 70, .key = "saga-42:hold"};
        cr_assert_eq(pthread_create(&threads[i], NULL, hold_main, &args[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(threads[i], NULL);
    }
    for (int i = 0; i < N; i++) {
        assert_ok(args[i].st);
        cr_assert_str_eq(args[i].hold_id, args[0].hold_id);
    }
    assert_balance(m, "mbr-1", 30, 70, 0);
    pt_assert_ledger_clean(m);
}

typedef struct earner {
    const char *merchant;
    int index;
    status_t st;
} earner_t;

static void *earn_main(void *p) {
    earner_t *e = p;
    arena_t a;
    arena_init(&a);
    char key[64], ref[32];
    snprintf(key, sizeof key, "%s-earn-%d", e->merchant, e->index);
    snprintf(ref, sizeof ref, "gift-%d", e->index);
    Loyalty__V1__PointsEarnRequest req = LOYALTY__V1__POINTS_EARN_REQUEST__INIT;
    req.merchant_id = (char *)e->merchant;
    req.idempotency_key = key;
    req.member_id = "mbr-1";
    req.source = LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_PROMOTION;
    req.reference = ref;
    req.amount_case = LOYALTY__V1__POINTS_EARN_REQUEST__AMOUNT_POINTS;
    req.points = 10;
    e->st = pcall_in(&a, "Earn", &req, NULL);
    arena_free(&a);
    return NULL;
}

Test(points_concurrency, earns_race_holds_without_losing_a_point) {
    /* Goal: 40 earns of 10 and 40 holds of 10 on one member at once (starting from 0): every
     * earn succeeds, holds succeed or fail INSUFFICIENT_POINTS, and available + held equals
     * everything earned; the ledger verifies clean. */
    harness_start(&svc, "points-svc", NULL);
    const char *m = harness_merchant("race");
    pt_configure(m);
    enum { N = 40 };
    pthread_t et[N], ht[N];
    earner_t e[N];
    holder_t h[N];
    for (int i = 0; i < N; i++) {
        e[i] = (earner_t){.merchant = m, .index = i};
        h[i] = (holder_t){.merchant = m, .member = "mbr-1", .index = i, .points = 10};
        cr_assert_eq(pthread_create(&et[i], NULL, earn_main, &e[i]), 0);
        cr_assert_eq(pthread_create(&ht[i], NULL, hold_main, &h[i]), 0);
    }
    int held = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(et[i], NULL);
        pthread_join(ht[i], NULL);
        assert_ok(e[i].st);
        if (status_is_ok(&h[i].st)) {
            held++;
        } else {
            cr_assert_str_eq(h[i].st.reason, "INSUFFICIENT_POINTS", "%s", h[i].st.message);
        }
    }
    assert_balance(m, "mbr-1", N * 10 - held * 10, held * 10, 0);
    pt_assert_ledger_clean(m);
}
