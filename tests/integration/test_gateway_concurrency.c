/* test_gateway_concurrency.c -- 200 checkouts in parallel by 50 members who share a promo code
 * limited to 30 orders and each hold limited points, wallet money and one coupon. Each member
 * runs four different checkouts at once (code + coupon + points + wallet; points + wallet; code
 * + points; wallet). Every checkout must end COMPLETED or refused with a domain reason (nothing
 * lost, nothing left in between); nothing is overspent: no balance below zero, no hold left,
 * the code used at most 30 times and each coupon at most once; every member's balances equal
 * their opening balances minus what their completed checkouts spent plus what they earned; the
 * ledgers verify clean. */
#include "gateway_it.h"

#include <pthread.h>

TestSuite(gateway_concurrency, .init = it_setup, .fini = it_teardown, .timeout = 600);

#define MEMBERS 50
#define PER_MEMBER 4
#define CHECKOUTS (MEMBERS * PER_MEMBER)
#define CODE_LIMIT 30
#define POINTS_EACH 2000
#define WALLET_EACH 5000

typedef struct job {
    const char *m;
    const char *member;
    const char *coupon_id;
    int kind; /* 0: code + coupon + points + wallet; 1: points + wallet; 2: code + points; 3: wallet
               */
    char order_id[48];
    /* outcome */
    status_t begin_st, complete_st;
    char checkout_id[64];
    int complete_state; /* as Complete answered: COMPLETED, or COMPLETING on a busy machine */
    bool completed;
    int64_t points_used, points_earned, wallet_used, promotion_discount, coupon_discount;
} job_t;

static job_t jobs[CHECKOUTS];

static void job_figures(job_t *j, const Loyalty__V1__GatewayCheckout *co);

static bool transient(const status_t *st) {
    return st->code == STATUS_UNAVAILABLE || st->code == STATUS_DEADLINE_EXCEEDED ||
           (st->code == STATUS_ABORTED && strcmp(st->reason, "SAGA_IN_PROGRESS") == 0);
}

/* One tea at 40.00: the line of every checkout here (thread-safe: on the caller's stack). */
static void tea_line(Loyalty__V1__GatewayCartLine *l) {
    loyalty__v1__gateway_cart_line__init(l);
    l->line_id = "1";
    l->sku = "tea";
    l->quantity = 1;
    l->unit_price_cents = 4000;
}

static void run_job(job_t *j, arena_t *a) {
    Loyalty__V1__GatewayCartLine l;
    tea_line(&l);
    Loyalty__V1__GatewayCartLine *lines[] = {&l};
    char *codes[] = {"LIMITED"};
    char *coupons[] = {(char *)j->coupon_id};
    Loyalty__V1__GatewayCart cart = LOYALTY__V1__GATEWAY_CART__INIT;
    cart.lines = lines;
    cart.n_lines = 1;
    Loyalty__V1__GatewayPaymentChoice p = LOYALTY__V1__GATEWAY_PAYMENT_CHOICE__INIT;
    switch (j->kind) {
    case 0:
        cart.codes = codes;
        cart.n_codes = 1;
        cart.coupon_ids = coupons;
        cart.n_coupon_ids = 1;
        p.redeem_points = 1500;
        p.wallet_cents = 2000;
        break;
    case 1:
        p.redeem_points = 1500;
        p.wallet_cents = 2000;
        break;
    case 2:
        cart.codes = codes;
        cart.n_codes = 1;
        p.redeem_points = 1500;
        break;
    default:
        p.wallet_cents = 2000;
        break;
    }
    Loyalty__V1__GatewayBeginCheckoutRequest r = LOYALTY__V1__GATEWAY_BEGIN_CHECKOUT_REQUEST__INIT;
    r.merchant_id = (char *)j->m;
    r.idempotency_key = j->order_id;
    r.order_id = j->order_id;
    r.member_id = (char *)j->member;
    r.cart = &cart;
    r.payment = &p;
    Loyalty__V1__GatewayBeginCheckoutResponse *br = NULL;
    /* As a storefront does: a transient answer (a busy machine) is retried with the same key. */
    for (int attempt = 0; attempt < 20; attempt++) {
        j->begin_st = call_in(a, SVC_GATEWAY, "BeginCheckout", &r, &br);
        if (!transient(&j->begin_st)) {
            break;
        }
        usleep(200 * 1000);
    }
    if (!status_is_ok(&j->begin_st)) {
        return;
    }
    Loyalty__V1__GatewayCompleteCheckoutRequest c =
        LOYALTY__V1__GATEWAY_COMPLETE_CHECKOUT_REQUEST__INIT;
    c.merchant_id = (char *)j->m;
    c.checkout_id = br->checkout->checkout_id;
    c.payment_ref = j->order_id;
    Loyalty__V1__GatewayCompleteCheckoutResponse *cr = NULL;
    for (int attempt = 0; attempt < 20; attempt++) {
        j->complete_st = call_in(a, SVC_GATEWAY, "CompleteCheckout", &c, &cr);
        if (!transient(&j->complete_st)) {
            break;
        }
        usleep(200 * 1000);
    }
    if (!status_is_ok(&j->complete_st)) {
        return;
    }
    snprintf(j->checkout_id, sizeof j->checkout_id, "%s", cr->checkout->checkout_id);
    j->complete_state = cr->checkout->state;
    job_figures(j, cr->checkout);
}

/* The figures of a job's checkout, once it is COMPLETED. */
static void job_figures(job_t *j, const Loyalty__V1__GatewayCheckout *co) {
    j->completed = co->state == LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_COMPLETED;
    j->points_used = co->breakdown->points_used;
    j->wallet_used = co->breakdown->wallet_cents;
    j->promotion_discount = co->breakdown->promotion_discount_cents;
    j->coupon_discount = co->breakdown->coupon_discount_cents;
    j->points_earned = co->result ? co->result->points_earned : 0;
}

static void *worker(void *arg) {
    intptr_t t = (intptr_t)arg;
    arena_t a;
    arena_init(&a);
    /* Thread t runs one checkout of four different members, so each member's four checkouts
     * run at the same time in four threads. */
    for (int k = 0; k < PER_MEMBER; k++) {
        run_job(&jobs[k * MEMBERS + (int)((t + 13 * k) % MEMBERS)], &a);
    }
    arena_free(&a);
    return NULL;
}

static bool domain_refusal(const status_t *st) {
    static const char *const ok[] = {"INSUFFICIENT_POINTS", "INSUFFICIENT_FUNDS", "CODE_USED_UP",
                                     "LIMIT_REACHED", "COUPON_ALREADY_USED"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        if (st->code == STATUS_FAILED_PRECONDITION && strcmp(st->reason, ok[i]) == 0) {
            return true;
        }
    }
    return false;
}

Test(gateway_concurrency, two_hundred_checkouts_share_limited_codes_and_balances) {
    stack_start();
    const char *m = harness_merchant("conc");
    set_points_rules(m, 0, 0, 0);
    create_tier(m, "Basic", 1, 0, 0, 10000);
    create_code_promotion(m, "LIMITED", 500, CODE_LIMIT);
    Loyalty__V1__PromoCouponTemplate *t = create_template(m, "3 off", 300, 0, 0);
    const char *members[MEMBERS];
    const char *coupons[MEMBERS];
    for (int i = 0; i < MEMBERS; i++) {
        members[i] = create_member(m, "Member");
        give_points(m, members[i], POINTS_EACH);
        give_wallet(m, members[i], WALLET_EACH);
        coupons[i] = issue_coupon(m, members[i], t->id)->id;
    }
    for (int k = 0; k < PER_MEMBER; k++) {
        for (int i = 0; i < MEMBERS; i++) {
            job_t *j = &jobs[k * MEMBERS + i];
            j->m = m;
            j->member = members[i];
            j->coupon_id = coupons[i];
            j->kind = k;
            snprintf(j->order_id, sizeof j->order_id, "o-%d-%d", i, k);
        }
    }
    pthread_t th[MEMBERS];
    for (intptr_t i = 0; i < MEMBERS; i++) {
        cr_assert_eq(pthread_create(&th[i], NULL, worker, (void *)i), 0);
    }
    for (int i = 0; i < MEMBERS; i++) {
        pthread_join(th[i], NULL);
    }
    /* A Complete may be accepted as COMPLETING when a participant answered later than the
     * client timeout (a busy machine): the recovery job finishes it; judge where it ends. */
    for (int n = 0; n < CHECKOUTS; n++) {
        job_t *j = &jobs[n];
        if (status_is_ok(&j->complete_st) &&
            j->complete_state == LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_COMPLETING) {
            wait_saga_final(m, j->checkout_id, 120);
            job_figures(j, get_checkout(m, j->checkout_id));
        }
    }

    int completed = 0, refused = 0, code_uses = 0;
    int64_t spent_points[MEMBERS] = {0}, earned[MEMBERS] = {0}, spent_wallet[MEMBERS] = {0};
    int coupon_uses[MEMBERS] = {0};
    for (int n = 0; n < CHECKOUTS; n++) {
        job_t *j = &jobs[n];
        int i = n % MEMBERS;
        if (!status_is_ok(&j->begin_st)) {
            cr_assert(domain_refusal(&j->begin_st), "%s: Begin failed %s %s (%s)", j->order_id,
                      status_code_name(j->begin_st.code), j->begin_st.reason, j->begin_st.message);
            refused++;
            continue;
        }
        cr_assert(status_is_ok(&j->complete_st), "%s: Complete failed %s %s", j->order_id,
                  status_code_name(j->complete_st.code), j->complete_st.message);
        cr_assert(j->completed, "%s accepted but not completed", j->order_id);
        completed++;
        spent_points[i] += j->points_used;
        earned[i] += j->points_earned;
        spent_wallet[i] += j->wallet_used;
        code_uses += j->promotion_discount > 0;
        coupon_uses[i] += j->coupon_discount > 0;
        if (j->kind == 0 || j->kind == 2) {
            cr_assert_eq(j->promotion_discount, 500, "%s: the code applied or it was refused",
                         j->order_id);
        }
    }
    cr_assert_eq(completed + refused, CHECKOUTS, "nothing lost");
    cr_assert(code_uses <= CODE_LIMIT, "code used %d times, limit %d", code_uses, CODE_LIMIT);
    cr_assert(completed > 0 && refused > 0, "the test must contend: %d completed, %d refused",
              completed, refused);
    for (int i = 0; i < MEMBERS; i++) {
        cr_assert(coupon_uses[i] <= 1, "member %d used the coupon %d times", i, coupon_uses[i]);
        cr_assert(spent_points[i] <= POINTS_EACH && spent_wallet[i] <= WALLET_EACH);
        Loyalty__V1__PointsBalance *pb = points_balance(m, members[i]);
        cr_assert_eq(pb->held, 0, "member %d: points left held", i);
        cr_assert_eq(pb->available, POINTS_EACH - spent_points[i] + earned[i], "member %d", i);
        Loyalty__V1__WalletBalance *wb = wallet_balance(m, members[i]);
        cr_assert_eq(wb->held_cents, 0, "member %d: wallet money left held", i);
        cr_assert_eq(wb->available_cents, WALLET_EACH - spent_wallet[i], "member %d", i);
    }
    /* No saga is left unfinished or needing attention. */
    for (int state = 1; state <= 7; state++) {
        if (state == 4 || state == 6) {
            continue; /* COMPLETED, CANCELLED */
        }
        Loyalty__V1__GatewayListSagasRequest ls = LOYALTY__V1__GATEWAY_LIST_SAGAS_REQUEST__INIT;
        ls.merchant_id = (char *)m;
        ls.state = state;
        Loyalty__V1__GatewayListSagasResponse *resp = NULL;
        assert_ok(gw("ListSagas", &ls, &resp));
        cr_assert_eq(resp->n_sagas, 0, "%zu sagas in state %d", resp->n_sagas, state);
    }
    assert_ledgers_clean(m);
    cr_log_info("%d completed, %d refused, code used %d times", completed, refused, code_uses);
}

/* ---- one idempotency key, many concurrent Begins ---- */

#define SAME_KEY_THREADS 20
#define SAME_KEY_ROUNDS 300

static struct {
    pthread_barrier_t start, done;
    const char *m, *member;
    char key[64];
    status_t st[SAME_KEY_THREADS];
    char checkout_id[SAME_KEY_THREADS][64];
} same_key;

static void *same_key_worker(void *arg) {
    intptr_t t = (intptr_t)arg;
    arena_t a;
    arena_init(&a);
    for (int round = 0; round < SAME_KEY_ROUNDS; round++) {
        pthread_barrier_wait(&same_key.start);
        Loyalty__V1__GatewayCartLine l;
        tea_line(&l);
        Loyalty__V1__GatewayCartLine *lines[] = {&l};
        Loyalty__V1__GatewayCart cart = LOYALTY__V1__GATEWAY_CART__INIT;
        cart.lines = lines;
        cart.n_lines = 1;
        Loyalty__V1__GatewayBeginCheckoutRequest r =
            LOYALTY__V1__GATEWAY_BEGIN_CHECKOUT_REQUEST__INIT;
        r.merchant_id = (char *)same_key.m;
        r.idempotency_key = same_key.key;
        r.order_id = same_key.key;
        r.member_id = (char *)same_key.member;
        r.cart = &cart;
        Loyalty__V1__GatewayBeginCheckoutResponse *br = NULL;
        same_key.st[t] = call_in(&a, SVC_GATEWAY, "BeginCheckout", &r, &br);
        snprintf(same_key.checkout_id[t], sizeof same_key.checkout_id[t], "%s",
                 status_is_ok(&same_key.st[t]) ? br->checkout->checkout_id : "");
        arena_free(&a);
        arena_init(&a);
        pthread_barrier_wait(&same_key.done);
    }
    arena_free(&a);
    return NULL;
}

Test(gateway_concurrency, same_key_begins_see_only_the_first_answer) {
    /* Goal: twenty Begins with one key and one request at the same instant, hundreds of times:
     * each answers the one checkout or ABORTED SAGA_IN_PROGRESS (retry), never a refusal that
     * would make a client abandon its own order (ORDER_ALREADY_CHECKED_OUT). */
    stack_start();
    same_key.m = harness_merchant("samekey");
    set_points_rules(same_key.m, 0, 0, 0);
    create_tier(same_key.m, "Basic", 1, 0, 0, 10000);
    same_key.member = create_member(same_key.m, "Member");
    cr_assert_eq(pthread_barrier_init(&same_key.start, NULL, SAME_KEY_THREADS + 1), 0);
    cr_assert_eq(pthread_barrier_init(&same_key.done, NULL, SAME_KEY_THREADS + 1), 0);
    pthread_t th[SAME_KEY_THREADS];
    for (intptr_t i = 0; i < SAME_KEY_THREADS; i++) {
        cr_assert_eq(pthread_create(&th[i], NULL, same_key_worker, (void *)i), 0);
    }
    int answered = 0, in_progress = 0;
    for (int round = 0; round < SAME_KEY_ROUNDS; round++) {
        snprintf(same_key.key, sizeof same_key.key, "same-key-%d", round);
        pthread_barrier_wait(&same_key.start);
        pthread_barrier_wait(&same_key.done);
        const char *first = NULL;
        for (int t = 0; t < SAME_KEY_THREADS; t++) {
            status_t st = same_key.st[t];
            if (st.code == STATUS_ABORTED && strcmp(st.reason, "SAGA_IN_PROGRESS") == 0) {
                in_progress++;
                continue;
            }
            cr_assert(status_is_ok(&st), "round %d: %s %s (%s)", round, status_code_name(st.code),
                      st.reason, st.message);
            answered++;
            first = first ? first : same_key.checkout_id[t];
            cr_assert_str_eq(same_key.checkout_id[t], first, "round %d: two checkouts", round);
        }
    }
    for (int i = 0; i < SAME_KEY_THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    cr_log_info("%d answers, %d SAGA_IN_PROGRESS", answered, in_progress);
    cr_assert_gt(answered, 0);
}

/* ---- Complete and Cancel of one checkout at the same instant ---- */

#define RACE_THREADS 6 /* even: Complete, odd: Cancel */
#define RACE_ROUNDS 60

static struct {
    pthread_barrier_t start, done;
    const char *m;
    char checkout_id[64];
    status_t st[RACE_THREADS];
    int state[RACE_THREADS]; /* the checkout as the call answered it */
} race;

static void *race_worker(void *arg) {
    intptr_t t = (intptr_t)arg;
    arena_t a;
    arena_init(&a);
    for (int round = 0; round < RACE_ROUNDS; round++) {
        pthread_barrier_wait(&race.start);
        Loyalty__V1__GatewayCheckout *co = NULL;
        if (t % 2 == 0) {
            Loyalty__V1__GatewayCompleteCheckoutRequest r =
                LOYALTY__V1__GATEWAY_COMPLETE_CHECKOUT_REQUEST__INIT;
            r.merchant_id = (char *)race.m;
            r.checkout_id = race.checkout_id;
            r.payment_ref = "psp-race";
            Loyalty__V1__GatewayCompleteCheckoutResponse *resp = NULL;
            race.st[t] = call_in(&a, SVC_GATEWAY, "CompleteCheckout", &r, &resp);
            co = status_is_ok(&race.st[t]) ? resp->checkout : NULL;
        } else {
            Loyalty__V1__GatewayCancelCheckoutRequest r =
                LOYALTY__V1__GATEWAY_CANCEL_CHECKOUT_REQUEST__INIT;
            r.merchant_id = (char *)race.m;
            r.checkout_id = race.checkout_id;
            Loyalty__V1__GatewayCancelCheckoutResponse *resp = NULL;
            race.st[t] = call_in(&a, SVC_GATEWAY, "CancelCheckout", &r, &resp);
            co = status_is_ok(&race.st[t]) ? resp->checkout : NULL;
        }
        race.state[t] = co ? (int)co->state : 0;
        arena_free(&a);
        arena_init(&a);
        pthread_barrier_wait(&race.done);
    }
    arena_free(&a);
    return NULL;
}

Test(gateway_concurrency, complete_and_cancel_race_to_one_outcome) {
    /* Goal: Completes and Cancels of one reserved checkout sent at the same instant, round after
     * round: the saga is driven by one of them only (a request takes the lease with its first
     * write, on condition that nobody wrote the saga since it read it), so it ends COMPLETED with
     * no compensation logged, or CANCELLED with nothing confirmed, and no call answers the
     * outcome the saga did not reach. */
    stack_start();
    race.m = harness_merchant("race");
    set_points_rules(race.m, 0, 0, 0);
    create_tier(race.m, "Basic", 1, 0, 0, 10000);
    const char *member = create_member(race.m, "Member");
    cr_assert_eq(pthread_barrier_init(&race.start, NULL, RACE_THREADS + 1), 0);
    cr_assert_eq(pthread_barrier_init(&race.done, NULL, RACE_THREADS + 1), 0);
    pthread_t th[RACE_THREADS];
    for (intptr_t i = 0; i < RACE_THREADS; i++) {
        cr_assert_eq(pthread_create(&th[i], NULL, race_worker, (void *)i), 0);
    }
    int completed = 0, cancelled = 0;
    for (int round = 0; round < RACE_ROUNDS; round++) {
        Loyalty__V1__GatewayCartLine l;
        tea_line(&l);
        Loyalty__V1__GatewayCartLine *lines[] = {&l};
        Loyalty__V1__GatewayCart cart = LOYALTY__V1__GATEWAY_CART__INIT;
        cart.lines = lines;
        cart.n_lines = 1;
        char order[32];
        snprintf(order, sizeof order, "race-%d", round);
        Loyalty__V1__GatewayCheckout *co = NULL;
        assert_ok(begin_checkout(race.m, NULL, order, member, &cart, NULL, &co));
        snprintf(race.checkout_id, sizeof race.checkout_id, "%s", co->checkout_id);
        pthread_barrier_wait(&race.start);
        pthread_barrier_wait(&race.done);
        Loyalty__V1__GatewaySaga *saga = wait_saga_final(race.m, race.checkout_id, 30);
        cr_assert(saga->state == S_COMPLETED || saga->state == S_CANCELLED, "round %d: state %d",
                  round, saga->state);
        for (int t = 0; t < RACE_THREADS; t++) {
            status_t st = race.st[t];
            if (!status_is_ok(&st)) {
                cr_assert(st.code == STATUS_ABORTED || st.code == STATUS_FAILED_PRECONDITION,
                          "round %d: %s %s (%s)", round, status_code_name(st.code), st.reason,
                          st.message);
                continue;
            }
            int other = saga->state == S_COMPLETED ? S_CANCELLED : S_COMPLETED;
            cr_assert_neq(race.state[t], other, "round %d: a call answered the other outcome",
                          round);
        }
        co = get_checkout(race.m, race.checkout_id);
        for (size_t i = 0; i < co->n_steps; i++) {
            const Loyalty__V1__GatewayStep *s = co->steps[i];
            if (saga->state == S_COMPLETED) {
                cr_assert_neq(
                    s->direction,
                    LOYALTY__V1__GATEWAY_STEP_DIRECTION__GATEWAY_STEP_DIRECTION_COMPENSATE,
                    "round %d: %s in a completed checkout", round, s->name);
            } else {
                cr_assert_str_neq(s->name, "promo_confirm", "round %d: confirmed and cancelled",
                                  round);
            }
        }
        completed += saga->state == S_COMPLETED;
        cancelled += saga->state == S_CANCELLED;
    }
    for (int i = 0; i < RACE_THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    cr_log_info("%d completed, %d cancelled", completed, cancelled);
    assert_ledgers_clean(race.m);
}
