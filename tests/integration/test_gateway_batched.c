/* test_gateway_batched.c -- the same random checkouts run twice through the whole suite: in one
 * shop by sixteen buyers at once (the gateway's steps then go to the participants in batches,
 * docs/architecture.md "Batched saga steps"), and in a second, identical shop one checkout after
 * another. Every checkout must end the same way in both shops (completed, or refused with the
 * same reason), and every buyer and every referrer must end with the same points, wallet money
 * and tier; both ledgers verify clean. */
#include "gateway_it.h"

#include <pthread.h>

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
        if (!transient(&st) || attempt == 30) {
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
            if (!transient(&st) || attempt == 30) {
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
    /* Batching is off by default (README): this test turns it on for the gateway's steps. */
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
