/* test_wallet_concurrency.c -- wallet-svc under parallel clients and retries: 100 parallel
 * holds against a wallet that affords only some of them, parallel top-ups, holds and refunds
 * on one wallet, idempotent replay of every mutation, input validation and merchant isolation.
 * Real gRPC, real PostgreSQL. */
#include "wallet_client.h"

#include <pthread.h>
#include <unistd.h>

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

TestSuite(wallet_concurrency, .init = setup, .fini = teardown, .timeout = 240);

static void start(const char *prefix) {
    harness_start(&svc, "wallet-svc", NULL);
    wc = (wallet_client_t){.addr = svc.addr, .merchant = harness_merchant(prefix), .arena = &arena};
}

#define PARALLEL_HOLDS 100

typedef struct hold_arg {
    const char *addr;
    const char *merchant;
    const char *key;
    char reference[32];
    int64_t amount;
    status_t st;
    char hold_id[64];
} hold_arg_t;

static void *hold_client(void *p) {
    hold_arg_t *h = p;
    arena_t a;
    arena_init(&a);
    wallet_client_t c = {.addr = h->addr, .merchant = h->merchant, .arena = &a};
    Loyalty__V1__WalletHoldResponse *r = NULL;
    h->st = wc_hold(&c, h->key, "m1", h->amount, h->reference, 0, &r);
    if (r) {
        snprintf(h->hold_id, sizeof h->hold_id, "%s", r->hold->id);
    }
    arena_free(&a);
    return NULL;
}

/* Runs args[0..n) in parallel threads. */
static void run_parallel(hold_arg_t *args, int n, void *(*fn)(void *)) {
    pthread_t threads[PARALLEL_HOLDS];
    for (int i = 0; i < n; i++) {
        cr_assert_eq(pthread_create(&threads[i], NULL, fn, &args[i]), 0);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(threads[i], NULL);
    }
}

Test(wallet_concurrency, hundred_parallel_holds_never_overspend) {
    /* Goal: 100 clients each hold 150 at once from a wallet of 10,000 (over two top-ups, one
     * with bonus): exactly 66 succeed, 34 fail INSUFFICIENT_FUNDS, nothing is overspent, and
     * the ledger verifies. Then all of them are captured or voided in parallel. */
    start("par");
    Loyalty__V1__WalletTopUpPlan *plan = NULL;
    assert_status(wc_create_plan(&wc, "P", 5000, 500, -1, &plan), STATUS_OK, "");
    assert_status(wc_top_up(&wc, harness_key(), "m1", 5000, plan->id, "psp-1", NULL), STATUS_OK,
                  "");
    assert_status(wc_top_up(&wc, harness_key(), "m1", 4500, NULL, "psp-2", NULL), STATUS_OK, "");
    hold_arg_t args[PARALLEL_HOLDS];
    for (int i = 0; i < PARALLEL_HOLDS; i++) {
        args[i] = (hold_arg_t){
            .addr = svc.addr, .merchant = wc.merchant, .key = harness_key(), .amount = 150};
        snprintf(args[i].reference, sizeof args[i].reference, "order-%d", i);
    }
    run_parallel(args, PARALLEL_HOLDS, hold_client);
    int ok = 0;
    for (int i = 0; i < PARALLEL_HOLDS; i++) {
        if (status_is_ok(&args[i].st)) {
            ok++;
        } else {
            assert_status(args[i].st, STATUS_FAILED_PRECONDITION, "INSUFFICIENT_FUNDS");
        }
    }
    cr_assert_eq(ok, 66, "%d holds succeeded", ok);
    Loyalty__V1__WalletBalance *b = wc_balance(&wc, "m1");
    cr_assert_eq(b->held_cents, 66 * 150);
    cr_assert_eq(b->available_cents, 10000 - 66 * 150);
    wc_assert_ledger_clean(&wc);
}

typedef struct mixed_arg {
    const char *addr;
    const char *merchant;
    const char *hold_id;
    const char *reference;
    const char *key;
    const char *key2;
    int op;
    status_t st;
} mixed_arg_t;

static void *mixed_client(void *p) {
    mixed_arg_t *m = p;
    arena_t a;
    arena_init(&a);
    wallet_client_t c = {.addr = m->addr, .merchant = m->merchant, .arena = &a};
    switch (m->op) {
    case 0: /* capture all, then refund a part */
        m->st = wc_capture(&c, m->key, m->hold_id, 150, NULL);
        if (status_is_ok(&m->st)) {
            m->st = wc_refund(&c, m->key2, m->reference, 50, NULL);
        }
        break;
    case 1: /* partial capture */
        m->st = wc_capture(&c, m->key, m->hold_id, 100, NULL);
        break;
    case 2:
        m->st = wc_void(&c, m->key, m->hold_id, NULL);
        break;
    default: /* a top-up racing with the rest */
        m->st = wc_top_up(&c, m->key, "m1", 10, NULL, m->key2, NULL);
        break;
    }
    arena_free(&a);
    return NULL;
}

Test(wallet_concurrency, parallel_captures_voids_refunds_and_top_ups) {
    /* Goal: captures, voids, refunds and top-ups racing on one wallet all apply exactly once
     * and leave the ledger consistent, with every figure accounted for. */
    start("mix");
    assert_status(wc_top_up(&wc, harness_key(), "m1", 6000, NULL, "psp-1", NULL), STATUS_OK, "");
    enum { N = 40 };
    hold_arg_t holds[N];
    for (int i = 0; i < N; i++) {
        holds[i] = (hold_arg_t){
            .addr = svc.addr, .merchant = wc.merchant, .key = harness_key(), .amount = 150};
        snprintf(holds[i].reference, sizeof holds[i].reference, "order-%d", i);
    }
    run_parallel(holds, N, hold_client);
    mixed_arg_t ops[N];
    for (int i = 0; i < N; i++) {
        assert_status(holds[i].st, STATUS_OK, "");
        ops[i] = (mixed_arg_t){.addr = svc.addr,
                               .merchant = wc.merchant,
                               .hold_id = holds[i].hold_id,
                               .reference = holds[i].reference,
                               .key = harness_key(),
                               .key2 = harness_key(),
                               .op = i % 4};
    }
    pthread_t threads[N];
    for (int i = 0; i < N; i++) {
        cr_assert_eq(pthread_create(&threads[i], NULL, mixed_client, &ops[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(threads[i], NULL);
    }
    for (int i = 0; i < N; i++) {
        assert_status(ops[i].st, STATUS_OK, "");
    }
    /* 10 holds captured 150 and refunded 50, 10 captured 100, 10 voided, 10 left pending (their
     * clients topped up 10 each). */
    int64_t spent = 10 * 100 + 10 * 100;
    Loyalty__V1__WalletBalance *b = wc_balance(&wc, "m1");
    cr_assert_eq(b->held_cents, 10 * 150);
    cr_assert_eq(b->available_cents, 6000 + 10 * 10 - spent - 10 * 150);
    Loyalty__V1__WalletReport *rep = wc_report(&wc, "", "");
    cr_assert_eq(rep->redeemed_principal_cents, spent);
    cr_assert_eq(rep->liability_principal_cents, 6000 + 100 - spent);
    wc_assert_ledger_clean(&wc);
}

Test(wallet_concurrency, every_mutation_is_idempotent) {
    /* Goal: the same key and request replays the first answer (same ids, same figures) and
     * applies once; the same key with another request fails IDEMPOTENCY_KEY_REUSED. */
    start("idem");
    Loyalty__V1__WalletTopUpPlan *plan = NULL;
    assert_status(wc_create_plan(&wc, "P", 1000, 100, -1, &plan), STATUS_OK, "");

    const char *k = harness_key();
    Loyalty__V1__WalletTopUpResponse *t1 = NULL, *t2 = NULL;
    assert_status(wc_top_up(&wc, k, "m1", 1000, plan->id, "psp-1", &t1), STATUS_OK, "");
    assert_status(wc_top_up(&wc, k, "m1", 1000, plan->id, "psp-1", &t2), STATUS_OK, "");
    cr_assert_str_eq(t1->top_up->id, t2->top_up->id);
    cr_assert_eq(t2->balance->available_cents, 1100, "the replay shows the first answer");
    assert_status(wc_top_up(&wc, k, "m1", 1000, plan->id, "psp-2", NULL), STATUS_ALREADY_EXISTS,
                  "IDEMPOTENCY_KEY_REUSED");
    assert_balance(wc_balance(&wc, "m1"), 1000, 100, 0);

    k = harness_key();
    Loyalty__V1__WalletHoldResponse *h1 = NULL, *h2 = NULL;
    assert_status(wc_hold(&wc, k, "m1", 400, "order-1", 0, &h1), STATUS_OK, "");
    assert_status(wc_hold(&wc, k, "m1", 400, "order-1", 0, &h2), STATUS_OK, "");
    cr_assert_str_eq(h1->hold->id, h2->hold->id);
    assert_status(wc_hold(&wc, k, "m1", 401, "order-1", 0, NULL), STATUS_ALREADY_EXISTS,
                  "IDEMPOTENCY_KEY_REUSED");
    assert_balance(wc_balance(&wc, "m1"), 600, 100, 400);

    k = harness_key();
    Loyalty__V1__WalletCaptureHoldResponse *c1 = NULL, *c2 = NULL;
    assert_status(wc_capture(&wc, k, h1->hold->id, 300, &c1), STATUS_OK, "");
    assert_status(wc_capture(&wc, k, h1->hold->id, 300, &c2), STATUS_OK, "");
    cr_assert_str_eq(c1->transfer_id, c2->transfer_id);
    cr_assert_eq(c2->released_cents, 100);
    assert_balance(wc_balance(&wc, "m1"), 700, 100, 0);

    k = harness_key();
    Loyalty__V1__WalletRefundResponse *r1 = NULL, *r2 = NULL;
    assert_status(wc_refund(&wc, k, "order-1", 120, &r1), STATUS_OK, "");
    assert_status(wc_refund(&wc, k, "order-1", 120, &r2), STATUS_OK, "");
    cr_assert_str_eq(r1->transfer_id, r2->transfer_id);
    cr_assert_eq(r2->refunded_cents, 120);
    assert_balance(wc_balance(&wc, "m1"), 820, 100, 0);

    Loyalty__V1__WalletHoldResponse *h3 = NULL;
    assert_status(wc_hold(&wc, harness_key(), "m1", 50, "order-2", 0, &h3), STATUS_OK, "");
    k = harness_key();
    Loyalty__V1__WalletVoidHoldResponse *v1 = NULL, *v2 = NULL;
    assert_status(wc_void(&wc, k, h3->hold->id, &v1), STATUS_OK, "");
    assert_status(wc_void(&wc, k, h3->hold->id, &v2), STATUS_OK, "");
    cr_assert_eq(v2->released_cents, 50, "the replay, not a second void");

    k = harness_key();
    Loyalty__V1__WalletRefundTopUpResponse *u1 = NULL, *u2 = NULL;
    assert_status(wc_refund_top_up(&wc, k, "psp-1", 200, &u1), STATUS_OK, "");
    assert_status(wc_refund_top_up(&wc, k, "psp-1", 200, &u2), STATUS_OK, "");
    cr_assert_str_eq(u1->transfer_id, u2->transfer_id);
    cr_assert_eq(u2->top_up->refunded_cents, 200);
    assert_balance(wc_balance(&wc, "m1"), 620, 80, 0);

    Loyalty__V1__WalletListStatementResponse *stmt = wc_statement(&wc, "m1", 50, "");
    cr_assert_eq(stmt->n_entries, 7, "top-up, hold, capture, refund, hold, void, top-up refund");
    wc_assert_ledger_clean(&wc);
}

Test(wallet_concurrency, validation_and_isolation) {
    /* Goal: bad input is INVALID_ARGUMENT naming the field, at and past each limit; nothing
     * of one merchant is visible to another. */
    start("val");
    assert_status(wc_top_up(&wc, harness_key(), "m1", 0, NULL, "p", NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_PAID_CENTS");
    assert_status(wc_top_up(&wc, harness_key(), "m1", -5, NULL, "p", NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_PAID_CENTS");
    assert_status(wc_top_up(&wc, harness_key(), "m1", 1000000000001LL, NULL, "p", NULL),
                  STATUS_INVALID_ARGUMENT, "INVALID_PAID_CENTS");
    assert_status(wc_top_up(&wc, harness_key(), "m1", 1000000000000LL, NULL, "p-max", NULL),
                  STATUS_OK, "");
    assert_status(wc_top_up(&wc, harness_key(), "bad member", 10, NULL, "p", NULL),
                  STATUS_INVALID_ARGUMENT, "INVALID_MEMBER_ID");
    assert_status(wc_top_up(&wc, harness_key(), "m1", 10, NULL, "", NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_PAYMENT_REF");
    assert_status(wc_top_up(&wc, "", "m1", 10, NULL, "p", NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_IDEMPOTENCY_KEY");
    assert_status(wc_hold(&wc, harness_key(), "m1", 10, "o", 604801, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_TTL_S");
    assert_status(wc_hold(&wc, harness_key(), "m1", 10, "o", -1, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_TTL_S");
    Loyalty__V1__WalletHoldResponse *h = NULL;
    assert_status(wc_hold(&wc, harness_key(), "m1", 10, "o", 604800, &h), STATUS_OK, "");
    assert_status(wc_hold(&wc, harness_key(), "m1", 10, "", 0, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_REFERENCE");
    assert_status(wc_capture(&wc, harness_key(), h->hold->id, 0, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_AMOUNT_CENTS");
    assert_status(wc_create_plan(&wc, "", 100, 0, -1, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_NAME");
    assert_status(wc_create_plan(&wc, "x", 100, 1001, -1, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_BONUS_CENTS");
    assert_status(wc_create_plan(&wc, "x", 100, 1000, 121, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_EXPIRY_MONTHS");
    assert_status(wc_create_plan(&wc, "x", 100, 1000, 120, NULL), STATUS_OK, "");
    Loyalty__V1__WalletUpdateSettingsRequest s = LOYALTY__V1__WALLET_UPDATE_SETTINGS_REQUEST__INIT;
    s.merchant_id = (char *)wc.merchant;
    s.idempotency_key = (char *)harness_key();
    Loyalty__V1__WalletSettings mars = LOYALTY__V1__WALLET_SETTINGS__INIT;
    mars.time_zone = "Mars/Olympus_Mons";
    s.settings = &mars;
    s.update_mask = HARNESS_MASK("time_zone");
    assert_status(wc_call(&wc, "UpdateSettings", &s.base, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_TIME_ZONE");
    /* The balance limit: 10^15 per wallet. */
    for (int i = 0; i < 999; i++) {
        char ref[32];
        snprintf(ref, sizeof ref, "bulk-%d", i);
        assert_status(wc_top_up(&wc, harness_key(), "m1", 1000000000000LL, NULL, ref, NULL),
                      STATUS_OK, "");
    }
    assert_status(wc_top_up(&wc, harness_key(), "m1", 1, NULL, "one-more", NULL),
                  STATUS_FAILED_PRECONDITION, "BALANCE_LIMIT_EXCEEDED");

    wallet_client_t other = {
        .addr = svc.addr, .merchant = harness_merchant("val2"), .arena = &arena};
    assert_status(wc_capture(&other, harness_key(), h->hold->id, 10, NULL), STATUS_NOT_FOUND,
                  "HOLD_NOT_FOUND");
    assert_balance(wc_balance(&other, "m1"), 0, 0, 0);
    cr_assert_eq(wc_lots(&other, "m1", true)->n_lots, 0);
    assert_status(wc_refund(&other, harness_key(), "o", 1, NULL), STATUS_NOT_FOUND,
                  "REFERENCE_NOT_FOUND");
    wc_assert_ledger_clean(&wc);
}
