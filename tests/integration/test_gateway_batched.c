/* test_gateway_batched.c -- checkouts whose steps go to the participants in batches
 * (docs/architecture.md "Batched saga steps"). The same random checkouts run twice through the
 * whole suite: in one shop by sixteen buyers at once, and in a second, identical shop one
 * checkout after another; every checkout must end the same way in both shops (completed, or
 * refused with the same reason), and every buyer and every referrer must end with the same
 * points, wallet money and tier. Then sixteen buyers check out while each participant and the
 * gateway are killed (SIGKILL) and restarted in turn, batches in flight: every saga ends
 * COMPLETED or CANCELLED, and every balance is exactly what the completed sagas say. Every
 * ledger verifies clean. */
#include "gateway_it.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

TestSuite(gateway_batched, .init = it_setup, .fini = it_teardown, .timeout = 600);

#define BUYERS 16
#define PER_BUYER 3

typedef struct plan {
    int64_t price_cents, redeem_points, wallet_cents;
    bool code;
} plan_t;

typedef struct outcome {
    status_code_t code;
    char reason[STATUS_REASON_MAX];
    int64_t paid_cents, points_earned;
} outcome_t;

typedef struct buyer_run {
    shop_t *shop;
    const char *member;
    int index;
    const plan_t *plans;
    outcome_t out[PER_BUYER];
} buyer_run_t;

static plan_t plans[BUYERS][PER_BUYER];
static int64_t opening_points[BUYERS], opening_wallet[BUYERS];
static atomic_int checkouts_done; /* checkouts that ended, however (the kill test's pace) */

/* A storefront's retries of one call while a service restarts (a restart under the sanitizers
 * on a busy machine can take seconds). */
#define RETRIES_MAX 150

static bool transient(const status_t *st) {
    return st->code == STATUS_UNAVAILABLE || st->code == STATUS_DEADLINE_EXCEEDED ||
           (st->code == STATUS_ABORTED && strcmp(st->reason, "SAGA_IN_PROGRESS") == 0);
}

/* Begin and Complete of one planned checkout, retrying transient answers with the same key as
 * a storefront does; thread-safe (its own arena). */
static void run_checkout(arena_t *a, buyer_run_t *b, int k) {
    const plan_t *p = &b->plans[k];
    outcome_t *o = &b->out[k];
    Loyalty__V1__GatewayCartLine line = LOYALTY__V1__GATEWAY_CART_LINE__INIT;
    line.line_id = "1";
    line.sku = "basket";
    line.quantity = 1;
    line.unit_price_cents = p->price_cents;
    Loyalty__V1__GatewayCartLine *lines[] = {&line};
    char *codes[] = {"SAVE10"};
    Loyalty__V1__GatewayCart cart = LOYALTY__V1__GATEWAY_CART__INIT;
    cart.lines = lines;
    cart.n_lines = 1;
    cart.codes = codes;
    cart.n_codes = p->code ? 1 : 0;
    Loyalty__V1__GatewayPaymentChoice pay_choice = LOYALTY__V1__GATEWAY_PAYMENT_CHOICE__INIT;
    pay_choice.redeem_points = p->redeem_points;
    pay_choice.wallet_cents = p->wallet_cents;
    char order[48];
    snprintf(order, sizeof order, "o-%d-%d", b->index, k);
    Loyalty__V1__GatewayBeginCheckoutRequest r = LOYALTY__V1__GATEWAY_BEGIN_CHECKOUT_REQUEST__INIT;
    r.merchant_id = (char *)b->shop->m;
    r.idempotency_key = order;
    r.order_id = order;
    r.member_id = (char *)b->member;
    r.cart = &cart;
    r.payment = &pay_choice;
    Loyalty__V1__GatewayBeginCheckoutResponse *br = NULL;
    status_t st;
    for (int attempt = 0;; attempt++) {
        st = call_in(a, SVC_GATEWAY, "BeginCheckout", &r, &br);
        if (!transient(&st) || attempt == RETRIES_MAX) {
            break;
        }
        usleep(200 * 1000);
    }
    if (status_is_ok(&st)) {
        Loyalty__V1__GatewayCompleteCheckoutRequest c =
            LOYALTY__V1__GATEWAY_COMPLETE_CHECKOUT_REQUEST__INIT;
        c.merchant_id = (char *)b->shop->m;
        c.checkout_id = br->checkout->checkout_id;
        c.payment_ref = order;
        Loyalty__V1__GatewayCompleteCheckoutResponse *cr = NULL;
        for (int attempt = 0;; attempt++) {
            st = call_in(a, SVC_GATEWAY, "CompleteCheckout", &c, &cr);
            if (!transient(&st) || attempt == RETRIES_MAX) {
                break;
            }
            usleep(200 * 1000);
        }
        if (status_is_ok(&st) && cr->checkout->state != S_COMPLETED) {
            /* Accepted as COMPLETING on a busy machine: the recovery job finishes it. */
            wait_saga_final(b->shop->m, cr->checkout->checkout_id, 120);
            st = status_ok();
        }
        if (status_is_ok(&st)) {
            Loyalty__V1__GatewayGetCheckoutRequest g =
                LOYALTY__V1__GATEWAY_GET_CHECKOUT_REQUEST__INIT;
            g.merchant_id = (char *)b->shop->m;
            g.target_case = LOYALTY__V1__GATEWAY_GET_CHECKOUT_REQUEST__TARGET_CHECKOUT_ID;
            g.checkout_id = br->checkout->checkout_id;
            Loyalty__V1__GatewayGetCheckoutResponse *gr = NULL;
            st = call_in(a, SVC_GATEWAY, "GetCheckout", &g, &gr);
            if (status_is_ok(&st)) {
                o->paid_cents = gr->checkout->breakdown->amount_due_cents;
                o->points_earned = gr->checkout->result ? gr->checkout->result->points_earned : 0;
            }
        }
    }
    o->code = st.code;
    snprintf(o->reason, sizeof o->reason, "%s", st.reason);
    atomic_fetch_add(&checkouts_done, 1);
}

static void *buyer_main(void *arg) {
    buyer_run_t *b = arg;
    arena_t a;
    arena_init(&a);
    for (int k = 0; k < PER_BUYER; k++) {
        run_checkout(&a, b, k);
    }
    arena_free(&a);
    return NULL;
}

static void open_buyers(shop_t *s, buyer_run_t *runs) {
    for (int i = 0; i < BUYERS; i++) {
        runs[i] = (buyer_run_t){.shop = s, .index = i, .plans = plans[i]};
        runs[i].member = new_buyer(s, opening_points[i], opening_wallet[i]);
    }
}

Test(gateway_batched, checkouts_at_once_end_as_one_by_one) {
    unsigned int seed = (unsigned int)time(NULL);
    cr_log_info("seed %u", seed);
    for (int i = 0; i < BUYERS; i++) {
        opening_points[i] = (rand_r(&seed) % 4) * 500;
        opening_wallet[i] = (rand_r(&seed) % 4) * 3000;
        for (int k = 0; k < PER_BUYER; k++) {
            plan_t *p = &plans[i][k];
            p->price_cents = 1000 + (rand_r(&seed) % 200) * 100;
            p->code = rand_r(&seed) % 2;
            p->redeem_points = (rand_r(&seed) % 3) * 400; /* 0, 400 or 800: may exceed */
            p->wallet_cents = (rand_r(&seed) % 3) * 2500; /* 0, 25.00 or 50.00: may too */
        }
    }
    /* Batching is on by default (README); said here so that the test batches whatever the
     * default becomes. */
    stack_start_with((const char *const[]){"RPC_CLIENT_BATCH_IN_FLIGHT=1", NULL});
    static shop_t at_once, one_by_one;
    open_shop(&at_once, "batched");
    open_shop(&one_by_one, "serial");
    buyer_run_t a[BUYERS], b[BUYERS];
    open_buyers(&at_once, a);
    open_buyers(&one_by_one, b);

    pthread_t th[BUYERS];
    for (int i = 0; i < BUYERS; i++) {
        cr_assert_eq(pthread_create(&th[i], NULL, buyer_main, &a[i]), 0);
    }
    for (int i = 0; i < BUYERS; i++) {
        pthread_join(th[i], NULL);
    }
    for (int i = 0; i < BUYERS; i++) {
        buyer_main(&b[i]);
    }

    int completed = 0;
    for (int i = 0; i < BUYERS; i++) {
        for (int k = 0; k < PER_BUYER; k++) {
            const outcome_t *x = &a[i].out[k], *y = &b[i].out[k];
            cr_assert(x->code == STATUS_OK || x->code == STATUS_FAILED_PRECONDITION,
                      "buyer %d checkout %d: %s %s", i, k, status_code_name(x->code), x->reason);
            cr_assert_eq(x->code, y->code, "buyer %d checkout %d: %s %s at once, %s %s alone", i, k,
                         status_code_name(x->code), x->reason, status_code_name(y->code),
                         y->reason);
            cr_assert_str_eq(x->reason, y->reason, "buyer %d checkout %d", i, k);
            cr_assert_eq(x->paid_cents, y->paid_cents, "buyer %d checkout %d", i, k);
            cr_assert_eq(x->points_earned, y->points_earned, "buyer %d checkout %d", i, k);
            completed += x->code == STATUS_OK;
        }
        Loyalty__V1__PointsBalance *pa = points_balance(at_once.m, a[i].member);
        Loyalty__V1__PointsBalance *pb = points_balance(one_by_one.m, b[i].member);
        cr_assert_eq(pa->available, pb->available, "buyer %d points", i);
        cr_assert_eq(pa->held, 0);
        cr_assert_eq(pb->held, 0);
        Loyalty__V1__WalletBalance *wa = wallet_balance(at_once.m, a[i].member);
        Loyalty__V1__WalletBalance *wb = wallet_balance(one_by_one.m, b[i].member);
        cr_assert_eq(wa->available_cents, wb->available_cents, "buyer %d wallet", i);
        cr_assert_eq(wa->held_cents, 0);
        Loyalty__V1__MemberTierStatus *ta = member_tier(at_once.m, a[i].member);
        Loyalty__V1__MemberTierStatus *tb = member_tier(one_by_one.m, b[i].member);
        cr_assert_eq(ta->period_value, tb->period_value, "buyer %d tier value", i);
        cr_assert_str_eq(ta->tier->name, tb->tier->name, "buyer %d tier", i);
    }
    const char *ra[] = {at_once.r1, at_once.r2, at_once.r3};
    const char *rb[] = {one_by_one.r1, one_by_one.r2, one_by_one.r3};
    for (int l = 0; l < 3; l++) {
        cr_assert_eq(points_balance(at_once.m, ra[l])->available,
                     points_balance(one_by_one.m, rb[l])->available, "referrer at level %d", l + 1);
    }
    cr_assert(completed > 0, "the plans must let some checkouts through");
    assert_ledgers_clean(at_once.m);
    assert_ledgers_clean(one_by_one.m);
    cr_log_info("%d of %d checkouts completed in each shop", completed, BUYERS * PER_BUYER);
}

/* The expected balance of a member, from the completed checkouts' results. */
typedef struct expected {
    const char *member;
    int64_t points, wallet_cents;
} expected_t;

static expected_t *expected_for(expected_t *e, int n, const char *member) {
    for (int i = 0; i < n; i++) {
        if (strcmp(e[i].member, member) == 0) {
            return &e[i];
        }
    }
    cr_assert_fail("no expected balance for %s", member);
    return NULL;
}

Test(gateway_batched, kills_with_batches_in_flight_end_every_saga_exactly) {
    /* Goal: sixteen buyers check out three times each while points-svc, wallet-svc, promo-svc,
     * referral-svc, member-svc and the gateway (three times) are killed and restarted one after
     * another, each once a few more checkouts have ended (so that calls and batches are in
     * flight). Every saga
     * ends COMPLETED or CANCELLED; each buyer's points and wallet money, and each referrer's
     * points, are exactly what the completed checkouts' results say; nothing stays held; both
     * ledgers verify clean. */
    enum { KILL_BUYERS = 16, KILL_PER_BUYER = 3 };
    _Static_assert(KILL_PER_BUYER <= PER_BUYER, "plans room");
    for (int i = 0; i < KILL_BUYERS; i++) {
        opening_points[i] = 100000;
        opening_wallet[i] = 1000000;
        for (int k = 0; k < KILL_PER_BUYER; k++) {
            plans[i][k] = (plan_t){.price_cents = 4000 + 100 * ((i * 7 + k * 13) % 170),
                                   .redeem_points = 400,
                                   .wallet_cents = 2500};
        }
    }
    stack_start_with((const char *const[]){
        "RPC_CLIENT_BATCH_IN_FLIGHT=1", "RPC_CLIENT_TIMEOUT_MS=1000", "GATEWAY_LEASE_S=2", NULL});
    static shop_t s;
    open_shop(&s, "killed");
    buyer_run_t runs[KILL_BUYERS];
    for (int i = 0; i < KILL_BUYERS; i++) {
        runs[i] = (buyer_run_t){.shop = &s, .index = i, .plans = plans[i]};
        runs[i].member = new_buyer(&s, opening_points[i], opening_wallet[i]);
    }
    atomic_store(&checkouts_done, 0);
    pthread_t th[KILL_BUYERS];
    for (int i = 0; i < KILL_BUYERS; i++) {
        cr_assert_eq(pthread_create(&th[i], NULL, buyer_main, &runs[i]), 0);
    }
    /* Killed in turn, each after two more checkouts have ended: progress, not time, paces it.
     * The gateway last, three times: from outside, then by its failpoint right after the
     * participants answered a settle and a grants step (whose batches then committed without
     * the gateway logging it: its recovery calls them again, and the keys must replay). */
    const int victims[] = {SVC_POINTS, SVC_WALLET,  SVC_PROMO,   SVC_REFERRAL,
                           SVC_MEMBER, SVC_GATEWAY, SVC_GATEWAY, SVC_GATEWAY};
    const char *failpoints[] = {NULL,
                                NULL,
                                NULL,
                                NULL,
                                NULL,
                                NULL,
                                "GATEWAY_FAILPOINT=sent:points_settle",
                                "GATEWAY_FAILPOINT=sent:referral_grants"};
    const int total = KILL_BUYERS * KILL_PER_BUYER;
    int killed_during_load = 0;
    for (size_t v = 0; v < sizeof victims / sizeof victims[0]; v++) {
        int seen = atomic_load(&checkouts_done);
        for (int poll = 0; poll < 3000 && atomic_load(&checkouts_done) < seen + 2 &&
                           atomic_load(&checkouts_done) < total;
             poll++) {
            sleep_ms(20);
        }
        svc_proc_t *p = &procs[victims[v]];
        if (failpoints[v] == NULL) {
            killed_during_load += atomic_load(&checkouts_done) < total;
            harness_kill(p);
            harness_restart(p);
            continue;
        }
        /* Restarted with the failpoint (same port), it kills itself at the first saga that
         * reaches it; if the checkouts all end first, it is killed from here. */
        int slot = 0;
        while (p->env[slot] != NULL) {
            slot++;
        }
        cr_assert_lt(slot, HARNESS_ENV_MAX);
        harness_kill(p);
        p->env[slot] = failpoints[v];
        int status = 0;
        pid_t got = 0;
        if (harness_restart_may_die(p, &status)) {
            pid_t pid = p->pid;
            while ((got = waitpid(pid, &status, WNOHANG)) == 0 &&
                   atomic_load(&checkouts_done) < total) {
                sleep_ms(20);
            }
            if (got == pid) {
                p->pid = 0;
            } else {
                harness_kill(p);
                status = 0;
            }
        }
        killed_during_load += WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
        p->env[slot] = NULL;
        harness_restart(p);
    }
    for (int i = 0; i < KILL_BUYERS; i++) {
        pthread_join(th[i], NULL);
    }
    cr_log_info("%d of %zu kills came while checkouts were running", killed_during_load,
                sizeof victims / sizeof victims[0]);

    expected_t e[KILL_BUYERS + 3];
    for (int i = 0; i < KILL_BUYERS; i++) {
        e[i] = (expected_t){runs[i].member, opening_points[i], opening_wallet[i]};
    }
    e[KILL_BUYERS] = (expected_t){s.r1, 0, 0};
    e[KILL_BUYERS + 1] = (expected_t){s.r2, 0, 0};
    e[KILL_BUYERS + 2] = (expected_t){s.r3, 0, 0};
    int completed = 0, cancelled = 0;
    for (int i = 0; i < KILL_BUYERS; i++) {
        for (int k = 0; k < KILL_PER_BUYER; k++) {
            char order[48];
            snprintf(order, sizeof order, "o-%d-%d", i, k);
            Loyalty__V1__GatewayGetCheckoutRequest g =
                LOYALTY__V1__GATEWAY_GET_CHECKOUT_REQUEST__INIT;
            g.merchant_id = (char *)s.m;
            g.target_case = LOYALTY__V1__GATEWAY_GET_CHECKOUT_REQUEST__TARGET_ORDER_ID;
            g.order_id = order;
            Loyalty__V1__GatewayGetCheckoutResponse *gr = NULL;
            status_t st = call(SVC_GATEWAY, "GetCheckout", &g, &gr);
            if (st.code == STATUS_NOT_FOUND) {
                continue; /* its Begin was never logged: nothing was reserved for it */
            }
            assert_ok(st);
            Loyalty__V1__GatewaySaga *saga = wait_saga_final(s.m, gr->checkout->checkout_id, 120);
            cr_assert(saga->state == S_COMPLETED ||
                          saga->state ==
                              LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_CANCELLED,
                      "order %s: state %d (%s)", order, saga->state, saga->reason);
            if (saga->state != S_COMPLETED) {
                cancelled++;
                continue;
            }
            completed++;
            Loyalty__V1__GatewayCheckout *co = get_checkout(s.m, gr->checkout->checkout_id);
            const Loyalty__V1__GatewayCheckoutResult *res = co->result;
            cr_assert_not_null(res, "order %s: completed without a result", order);
            expected_t *b = expected_for(e, KILL_BUYERS + 3, runs[i].member);
            b->points += res->points_earned - res->points_spent;
            b->wallet_cents -= res->wallet_captured_cents;
            for (size_t r = 0; r < res->n_referral_rewards; r++) {
                const Loyalty__V1__GatewayReferralGrant *grant = res->referral_rewards[r];
                if (grant->granted) {
                    expected_for(e, KILL_BUYERS + 3, grant->beneficiary_member_id)->points +=
                        grant->points;
                }
            }
        }
    }
    cr_log_info("%d completed, %d cancelled of %d", completed, cancelled,
                KILL_BUYERS * KILL_PER_BUYER);
    cr_assert(completed > 0, "some checkouts must complete");
    for (int i = 0; i < KILL_BUYERS + 3; i++) {
        Loyalty__V1__PointsBalance *pb = points_balance(s.m, e[i].member);
        cr_assert_eq(pb->available, e[i].points, "%s: %lld points, the sagas say %lld", e[i].member,
                     (long long)pb->available, (long long)e[i].points);
        cr_assert_eq(pb->held, 0, "%s: points held", e[i].member);
        if (i < KILL_BUYERS) {
            Loyalty__V1__WalletBalance *wb = wallet_balance(s.m, e[i].member);
            cr_assert_eq(wb->available_cents, e[i].wallet_cents,
                         "%s: %lld cents, the sagas say %lld", e[i].member,
                         (long long)wb->available_cents, (long long)e[i].wallet_cents);
            cr_assert_eq(wb->held_cents, 0, "%s: wallet money held", e[i].member);
        }
    }
    assert_ledgers_clean(s.m);
}
