/* pg_crash.c -- PostgreSQL crashes in the middle of checkout load (run by
 * tests/durability/check_pg_crash on a private PostgreSQL with fsync on and a sleepy WAL writer;
 * PG_CRASH_CMD crashes it and starts it again). Participants commit saga steps without waiting
 * for the disk (docs/architecture.md, "Durability of saga steps"), so the crash can take back
 * steps whose saga write had not happened yet. Storefront threads run checkouts (Begin +
 * Complete, points and wallet money) and retry every call answered UNAVAILABLE, as storefronts
 * do, until it is answered. Afterwards: every checkout whose Complete was answered OK is
 * COMPLETED, every saga is terminal and none needs attention, the ledgers verify clean, and each
 * buyer's points and wallet balances are exactly the initial ones moved by the completed
 * checkouts' results. An immediate shutdown loses only WAL not yet handed to the operating
 * system (the WAL writer hands over every full page), so this shows recovery from a real crash
 * with steps in flight; that nothing acknowledged can be lost rests on the order of the WAL,
 * and test_saga_durability checks the half of it that is ours (steps asynchronous, the gateway's
 * own writes synchronous). */
#include "gateway_it.h"

#include <pthread.h>
#include <stdatomic.h>

TestSuite(pg_crash, .init = it_setup, .fini = it_teardown, .timeout = 1200);

#define THREADS 4
#define BUYERS 8
#define CHECKOUTS 48
#define CRASH_AFTER 16 /* checkouts completed before the crash */
#define INITIAL_POINTS 100000
#define INITIAL_WALLET_CENTS 1000000
#define RETRY_FOR_S 120

typedef struct checkout_rec {
    char checkout_id[64];
    int buyer;
    bool completed;    /* Complete answered OK */
    char refusal[160]; /* the definitive answer otherwise */
} checkout_rec_t;

static const char *merchant;
static const char *buyers[BUYERS];
static checkout_rec_t recs[CHECKOUTS];
static atomic_int next_checkout;
static atomic_int completed_count;

static bool retryable(const status_t *st) {
    return st->code == STATUS_UNAVAILABLE || st->code == STATUS_ABORTED ||
           st->code == STATUS_DEADLINE_EXCEEDED;
}

/* A call repeated while it is answered retryably, as a storefront does. */
static status_t call_until_answered(arena_t *a, const char *method, const void *req, void *resp) {
    time_t until = time(NULL) + RETRY_FOR_S;
    for (;;) {
        status_t st = call_in(a, SVC_GATEWAY, method, req, resp);
        if (!retryable(&st) || time(NULL) >= until) {
            return st;
        }
        sleep_ms(100);
    }
}

/* One tea at 40.00, paid with 500 points (5.00), 10.00 from the wallet and the rest outside. */
static void checkout_once(arena_t *a, int n) {
    checkout_rec_t *rec = &recs[n];
    rec->buyer = n % BUYERS;
    char order[32];
    snprintf(order, sizeof order, "crash-%d", n);
    Loyalty__V1__GatewayBeginCheckoutRequest *b =
        tea_checkout(a, merchant, buyers[rec->buyer], order, 500, 1000);
    Loyalty__V1__GatewayBeginCheckoutResponse *br = NULL;
    status_t st = call_until_answered(a, "BeginCheckout", b, &br);
    if (!status_is_ok(&st)) {
        snprintf(rec->refusal, sizeof rec->refusal, "Begin: %s %s", status_code_name(st.code),
                 st.reason);
        return;
    }
    snprintf(rec->checkout_id, sizeof rec->checkout_id, "%s", br->checkout->checkout_id);
    Loyalty__V1__GatewayCompleteCheckoutRequest c =
        LOYALTY__V1__GATEWAY_COMPLETE_CHECKOUT_REQUEST__INIT;
    c.merchant_id = (char *)merchant;
    c.checkout_id = rec->checkout_id;
    c.payment_ref = order;
    Loyalty__V1__GatewayCompleteCheckoutResponse *cr = NULL;
    st = call_until_answered(a, "CompleteCheckout", &c, &cr);
    if (!status_is_ok(&st)) {
        snprintf(rec->refusal, sizeof rec->refusal, "Complete: %s %s", status_code_name(st.code),
                 st.reason);
        return;
    }
    rec->completed = true;
    atomic_fetch_add(&completed_count, 1);
}

static void *runner_main(void *arg) {
    (void)arg;
    arena_t a;
    arena_init(&a);
    for (int n; (n = atomic_fetch_add(&next_checkout, 1)) < CHECKOUTS;) {
        checkout_once(&a, n);
        arena_reset(&a);
    }
    arena_free(&a);
    return NULL;
}

Test(pg_crash, acknowledged_checkouts_survive_and_balances_stay_exact) {
    const char *crash_cmd = getenv("PG_CRASH_CMD");
    cr_assert(crash_cmd != NULL, "PG_CRASH_CMD is not set: run through check_pg_crash");
    stack_start();
    merchant = harness_merchant("pgcrash");
    set_points_rules(merchant, 0, 0, 0);
    for (int i = 0; i < BUYERS; i++) {
        buyers[i] = create_member(merchant, "Buyer");
        give_points(merchant, buyers[i], INITIAL_POINTS);
        give_wallet(merchant, buyers[i], INITIAL_WALLET_CENTS);
    }
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++) {
        cr_assert_eq(pthread_create(&threads[i], NULL, runner_main, NULL), 0);
    }
    /* The crash lands while the runners are mid-checkout. */
    time_t until = time(NULL) + 300;
    while (atomic_load(&completed_count) < CRASH_AFTER && time(NULL) < until) {
        sleep_ms(20);
    }
    cr_assert_geq(atomic_load(&completed_count), CRASH_AFTER, "the checkouts did not run");
    cr_assert_eq(system(crash_cmd), 0, "%s failed", crash_cmd);
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
    }

    int64_t captured[BUYERS] = {0}, spent[BUYERS] = {0}, earned[BUYERS] = {0};
    int completed = 0;
    for (int n = 0; n < CHECKOUTS; n++) {
        const checkout_rec_t *rec = &recs[n];
        if (rec->checkout_id[0] == '\0') {
            continue; /* refused at Begin: checked by the balances below */
        }
        Loyalty__V1__GatewaySaga *saga = wait_saga_final(merchant, rec->checkout_id, 180);
        if (rec->completed) {
            cr_assert_eq(saga->state, LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_COMPLETED,
                         "checkout %d was acknowledged, but its saga is in state %d (%s)", n,
                         saga->state, saga->reason);
        }
        cr_assert(saga->state == LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_COMPLETED ||
                      saga->state == LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_CANCELLED,
                  "checkout %d ended in state %d (%s); %s", n, saga->state, saga->reason,
                  rec->refusal);
        if (saga->state != LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_COMPLETED) {
            continue;
        }
        completed++;
        Loyalty__V1__GatewayCheckout *co = get_checkout(merchant, rec->checkout_id);
        cr_assert(co->result != NULL, "checkout %d completed without a result", n);
        captured[rec->buyer] += co->result->wallet_captured_cents;
        spent[rec->buyer] += co->result->points_spent;
        earned[rec->buyer] += co->result->points_earned;
    }
    cr_log_info("%d of %d checkouts completed across the crash (%d acknowledged before it)",
                completed, CHECKOUTS, CRASH_AFTER);
    cr_assert_geq(completed, CRASH_AFTER);
    assert_ledgers_clean(merchant);
    for (int i = 0; i < BUYERS; i++) {
        Loyalty__V1__PointsBalance *pb = points_balance(merchant, buyers[i]);
        cr_assert_eq(pb->available, INITIAL_POINTS - spent[i] + earned[i],
                     "buyer %d: %lld points, want %lld - %lld + %lld", i, (long long)pb->available,
                     (long long)INITIAL_POINTS, (long long)spent[i], (long long)earned[i]);
        cr_assert_eq(pb->held, 0, "buyer %d: %lld points still held", i, (long long)pb->held);
        Loyalty__V1__WalletBalance *wb = wallet_balance(merchant, buyers[i]);
        cr_assert_eq(wb->available_cents, INITIAL_WALLET_CENTS - captured[i],
                     "buyer %d: %lld in the wallet, want %lld - %lld", i,
                     (long long)wb->available_cents, (long long)INITIAL_WALLET_CENTS,
                     (long long)captured[i]);
        cr_assert_eq(wb->held_cents, 0, "buyer %d: %lld cents still held", i,
                     (long long)wb->held_cents);
    }
}
