/* test_gateway_db_outage.c -- the gateway's database goes away in the middle of a saga. A TCP
 * proxy (tests/support/pgproxy.h) stands between the gateway and PostgreSQL and cuts every
 * connection, refusing new ones, when the gateway writes a chosen step to its saga log: the
 * first time (the step's STARTED record, before the participant is called) or the second (its
 * outcome, after the participant answered), for every step of Begin, Complete, Cancel and
 * Refund. The gateway must stay up and answer UNAVAILABLE (or the outcome, when the write that
 * failed was not needed for it); once the database is back, the recovery job or the client's
 * retry ends the saga terminal with balances exactly as without the outage. */
#include "gateway_it.h"
#include "pgproxy.h"

#include <signal.h>
#include <sys/wait.h>

static void outage_setup(void) {
    it_setup();
}

static void outage_teardown(void) {
    it_teardown();
    pgproxy_stop();
}

TestSuite(gateway_db_outage, .init = outage_setup, .fini = outage_teardown, .timeout = 900);

#define S_COMPLETING LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_COMPLETING
#define STEP_DONE LOYALTY__V1__GATEWAY_STEP_STATE__GATEWAY_STEP_STATE_DONE

static char proxy_dsn_env[700];

/* The five participants on the test's database, the gateway on the same database through the
 * proxy. */
static void start_all(void) {
    for (int i = 0; i < SVC_GATEWAY; i++) {
        harness_start(&procs[i], svc_names[i], svc_env());
    }
    int port = pgproxy_start(pgproxy_dsn_port(test_dsn()));
    snprintf(proxy_dsn_env, sizeof proxy_dsn_env, "LOYALTY_PG_DSN=%s",
             pgproxy_dsn(test_dsn(), port));
    gw_extra_env[0] = proxy_dsn_env;
    gw_extra_env[1] = "GATEWAY_LEASE_S=3";
    gw_extra_env[2] = NULL;
    static const char *env[HARNESS_ENV_MAX + 1];
    gw_env(env);
    harness_start(&procs[SVC_GATEWAY], "gateway", env);
}

/* The cut happened, and the gateway lived through it. */
static void assert_cut_survived(const char *what, status_t st) {
    cr_assert(pgproxy_cut(), "%s: the gateway never wrote it", what);
    cr_assert(st.code == STATUS_OK || st.code == STATUS_UNAVAILABLE,
              "%s: answered %s (%s: %s), want UNAVAILABLE or the outcome", what,
              status_code_name(st.code), st.reason, st.message);
    int wst = 0;
    cr_assert_eq(waitpid(procs[SVC_GATEWAY].pid, &wst, WNOHANG), 0,
                 "%s: the gateway died (status %d); see %s", what, wst,
                 procs[SVC_GATEWAY].log_path);
    pgproxy_restore();
}

/* As a storefront does after UNAVAILABLE: the same call again until it is answered. */
static bool retryable(const status_t *st) {
    return st->code == STATUS_UNAVAILABLE || st->code == STATUS_ABORTED ||
           st->code == STATUS_DEADLINE_EXCEEDED;
}

static const char *checkout_of_order(const char *m, const char *order) {
    Loyalty__V1__GatewayGetCheckoutRequest g = LOYALTY__V1__GATEWAY_GET_CHECKOUT_REQUEST__INIT;
    g.merchant_id = (char *)m;
    g.target_case = LOYALTY__V1__GATEWAY_GET_CHECKOUT_REQUEST__TARGET_ORDER_ID;
    g.order_id = (char *)order;
    Loyalty__V1__GatewayGetCheckoutResponse *gr = NULL;
    status_t st = gw("GetCheckout", &g, &gr);
    if (st.code == STATUS_NOT_FOUND) {
        return NULL;
    }
    assert_ok(st);
    return gr->checkout->checkout_id;
}

/* The shop's checkout figures (test_gateway_rpc_checkout.c works them out). */
static void assert_completed_figures(shop_t *s, const char *b, const char *coupon_id,
                                     const char *what) {
    Loyalty__V1__PointsBalance *pb = points_balance(s->m, b);
    cr_assert_eq(pb->available, 5000 - 2000 + 84, "%s", what);
    cr_assert_eq(pb->held, 0, "%s", what);
    Loyalty__V1__WalletBalance *wb = wallet_balance(s->m, b);
    cr_assert_eq(wb->available_cents, 0, "%s", what);
    cr_assert_eq(wb->held_cents, 0, "%s", what);
    cr_assert_eq(points_balance(s->m, s->r1)->available, 840, "%s", what);
    cr_assert_eq(points_balance(s->m, s->r2)->available, 420, "%s", what);
    cr_assert_eq(points_balance(s->m, s->r3)->available, 168, "%s", what);
    cr_assert_eq(coupon_status(s->m, coupon_id), COUPON_USED, "%s", what);
    cr_assert_str_eq(member_tier(s->m, b)->tier->name, "Gold", "%s", what);
    assert_ledgers_clean(s->m);
}

static void assert_untouched(shop_t *s, const char *b, const char *coupon_id, const char *what) {
    Loyalty__V1__PointsBalance *pb = points_balance(s->m, b);
    cr_assert_eq(pb->available, 5000, "%s", what);
    cr_assert_eq(pb->held, 0, "%s", what);
    Loyalty__V1__WalletBalance *wb = wallet_balance(s->m, b);
    cr_assert_eq(wb->available_cents, 3000, "%s", what);
    cr_assert_eq(wb->held_cents, 0, "%s", what);
    cr_assert_eq(coupon_status(s->m, coupon_id), COUPON_AVAILABLE, "%s", what);
    cr_assert_eq(points_balance(s->m, s->r1)->available, 0, "%s", what);
    cr_assert_eq(points_balance(s->m, s->r2)->available, 0, "%s", what);
    cr_assert_eq(points_balance(s->m, s->r3)->available, 0, "%s", what);
    assert_ledgers_clean(s->m);
}

static Loyalty__V1__GatewayCart *outage_cart(const char *coupon_id) {
    Loyalty__V1__GatewayCart *cart = shirt_cart();
    cart->codes[cart->n_codes++] = "SAVE10";
    cart->coupon_ids[cart->n_coupon_ids++] = (char *)coupon_id;
    return cart;
}

/* A shop, its buyer (5,000 points, 30.00 in the wallet) and the buyer's 5.00 coupon. */
static const char *outage_shop(shop_t *s, const char *prefix, Loyalty__V1__PromoCoupon **coupon) {
    open_shop(s, prefix);
    const char *b = new_buyer(s, 5000, 3000);
    *coupon = issue_coupon(s->m, b, s->five_off->id);
    return b;
}

static void checkout_reserved(shop_t *s, const char *b, const char *coupon_id,
                              Loyalty__V1__GatewayCheckout **co) {
    assert_ok(
        begin_checkout(s->m, NULL, "order-1", b, outage_cart(coupon_id), pay(2000, 3000), co));
    cr_assert_eq((*co)->state, S_RESERVED);
}

static void complete_until_answered(const char *m, const char *checkout_id, const char *what) {
    status_t st;
    for (int attempt = 0; attempt < 60; attempt++) {
        st = complete_checkout(m, checkout_id, "psp-1", NULL);
        if (!retryable(&st)) {
            break;
        }
        sleep_ms(250);
    }
    assert_ok(st);
    Loyalty__V1__GatewaySaga *saga = wait_saga_final(m, checkout_id, 60);
    cr_assert_eq(saga->state, S_COMPLETED, "%s: state %d (%s)", what, saga->state, saga->reason);
    Loyalty__V1__GatewayCheckout *co = get_checkout(m, checkout_id);
    for (size_t i = 0; i < co->n_steps; i++) {
        cr_assert_eq(co->steps[i]->state, STEP_DONE, "%s: step %s", what, co->steps[i]->name);
    }
}

static const char *const begin_steps[] = {"promo_reserve", "points_hold", "wallet_hold"};
/* The holds run without a STARTED record (compensation finds them by the order id): they reach
 * the log once, with their outcome in Begin's last write. */
#define BEGIN_STEPS_WRITTEN_AHEAD 1
static const char *const complete_steps[] = {"wallet_capture",      "promo_confirm",
                                             "points_settle",       "referral_compute",
                                             "member_record_order", "referral_grants"};
/* Complete's second group (from member_record_order on) runs without a STARTED record (the saga
 * is durably COMPLETING and recovery calls it again with the same keys): its steps reach the log
 * once, with their outcome in the final write. */
#define COMPLETE_STEPS_WRITTEN_AHEAD 4
static const char *const cancel_steps[] = {"wallet_hold:undo", "points_hold:undo",
                                           "promo_reserve:undo"};
static const char *const refund_steps[] = {"wallet_refund",     "points_reverse",
                                           "referral_reverse",  "member_record_return",
                                           "referral_clawback", "promo_release_usage"};

Test(gateway_db_outage, at_every_step_of_begin) {
    /* Goal: Begin answers UNAVAILABLE and the gateway stays up; the interrupted Begin is
     * compensated by the recovery job (or was never written), and the same order then checks
     * out as if nothing had happened. */
    start_all();
    for (size_t i = 0; i < sizeof begin_steps / sizeof *begin_steps; i++) {
        int writes = i < BEGIN_STEPS_WRITTEN_AHEAD ? 2 : 1;
        for (int nth = 1; nth <= writes; nth++) {
            char what[128];
            snprintf(what, sizeof what, "Begin, write %d of %s", nth, begin_steps[i]);
            shop_t s;
            Loyalty__V1__PromoCoupon *coupon = NULL;
            const char *b = outage_shop(&s, "dob", &coupon);
            pgproxy_arm(begin_steps[i], nth);
            status_t st = begin_checkout(s.m, NULL, "order-1", b, outage_cart(coupon->id),
                                         pay(2000, 3000), NULL);
            assert_cut_survived(what, st);
            cr_assert_neq(st.code, STATUS_OK, "%s: Begin answered without its log", what);
            const char *id = checkout_of_order(s.m, "order-1");
            if (id != NULL) {
                Loyalty__V1__GatewaySaga *saga = wait_saga_final(s.m, id, 60);
                cr_assert_eq(saga->state, S_CANCELLED, "%s: state %d (%s)", what, saga->state,
                             saga->reason);
            }
            assert_untouched(&s, b, coupon->id, what);
            Loyalty__V1__GatewayCheckout *co = NULL;
            checkout_reserved(&s, b, coupon->id, &co);
            complete_until_answered(s.m, co->checkout_id, what);
            assert_completed_figures(&s, b, coupon->id, what);
        }
    }
    /* And the holds really are written once: no second write of the first. */
    shop_t s;
    Loyalty__V1__PromoCoupon *coupon = NULL;
    const char *b = outage_shop(&s, "dob", &coupon);
    pgproxy_arm(begin_steps[BEGIN_STEPS_WRITTEN_AHEAD], 2);
    Loyalty__V1__GatewayCheckout *co = NULL;
    status_t st =
        begin_checkout(s.m, NULL, "order-1", b, outage_cart(coupon->id), pay(2000, 3000), &co);
    cr_assert(!pgproxy_cut(), "%s was written ahead of its call",
              begin_steps[BEGIN_STEPS_WRITTEN_AHEAD]);
    pgproxy_restore();
    assert_status(st, STATUS_OK, "");
    cr_assert_eq(co->state, S_RESERVED);
}

Test(gateway_db_outage, at_every_step_of_complete) {
    /* Goal: a Complete cut off from its log is finished, exactly once, by the client's retry
     * or the recovery job once the database is back. */
    start_all();
    for (size_t i = 0; i < sizeof complete_steps / sizeof *complete_steps; i++) {
        int writes = i < COMPLETE_STEPS_WRITTEN_AHEAD ? 2 : 1;
        for (int nth = 1; nth <= writes; nth++) {
            char what[128];
            snprintf(what, sizeof what, "Complete, write %d of %s", nth, complete_steps[i]);
            shop_t s;
            Loyalty__V1__PromoCoupon *coupon = NULL;
            const char *b = outage_shop(&s, "doc", &coupon);
            Loyalty__V1__GatewayCheckout *co = NULL;
            checkout_reserved(&s, b, coupon->id, &co);
            pgproxy_arm(complete_steps[i], nth);
            status_t st = complete_checkout(s.m, co->checkout_id, "psp-1", NULL);
            assert_cut_survived(what, st);
            complete_until_answered(s.m, co->checkout_id, what);
            assert_completed_figures(&s, b, coupon->id, what);
        }
    }
    /* And the second group really is written once: no second write of its first step. */
    shop_t s;
    Loyalty__V1__PromoCoupon *coupon = NULL;
    const char *b = outage_shop(&s, "doc", &coupon);
    Loyalty__V1__GatewayCheckout *co = NULL;
    checkout_reserved(&s, b, coupon->id, &co);
    pgproxy_arm(complete_steps[COMPLETE_STEPS_WRITTEN_AHEAD], 2);
    status_t st = complete_checkout(s.m, co->checkout_id, "psp-1", NULL);
    cr_assert(!pgproxy_cut(), "%s was written ahead of its call",
              complete_steps[COMPLETE_STEPS_WRITTEN_AHEAD]);
    pgproxy_restore();
    assert_status(st, STATUS_OK, "");
    assert_completed_figures(&s, b, coupon->id, "Complete, no outage");
}

Test(gateway_db_outage, at_every_step_of_cancel) {
    /* Goal: a Cancel cut off from its log still releases every reservation exactly once. */
    start_all();
    for (size_t i = 0; i < sizeof cancel_steps / sizeof *cancel_steps; i++) {
        for (int nth = 1; nth <= 2; nth++) {
            char what[128];
            snprintf(what, sizeof what, "Cancel, write %d of %s", nth, cancel_steps[i]);
            shop_t s;
            Loyalty__V1__PromoCoupon *coupon = NULL;
            const char *b = outage_shop(&s, "dox", &coupon);
            Loyalty__V1__GatewayCheckout *co = NULL;
            checkout_reserved(&s, b, coupon->id, &co);
            pgproxy_arm(cancel_steps[i], nth);
            Loyalty__V1__GatewayCancelCheckoutRequest c =
                LOYALTY__V1__GATEWAY_CANCEL_CHECKOUT_REQUEST__INIT;
            c.merchant_id = (char *)s.m;
            c.checkout_id = co->checkout_id;
            status_t st = gw("CancelCheckout", &c, NULL);
            assert_cut_survived(what, st);
            for (int attempt = 0; attempt < 60 && retryable(&st); attempt++) {
                sleep_ms(250);
                st = gw("CancelCheckout", &c, NULL);
            }
            assert_ok(st);
            Loyalty__V1__GatewaySaga *saga = wait_saga_final(s.m, co->checkout_id, 60);
            cr_assert_eq(saga->state, S_CANCELLED, "%s: state %d (%s)", what, saga->state,
                         saga->reason);
            assert_untouched(&s, b, coupon->id, what);
        }
    }
}

Test(gateway_db_outage, at_every_step_of_refund) {
    /* Goal: a refund cut off from its log gives back exactly the whole order, once. */
    start_all();
    for (size_t i = 0; i < sizeof refund_steps / sizeof *refund_steps; i++) {
        for (int nth = 1; nth <= 2; nth++) {
            char what[128];
            snprintf(what, sizeof what, "Refund, write %d of %s", nth, refund_steps[i]);
            shop_t s;
            Loyalty__V1__PromoCoupon *coupon = NULL;
            const char *b = outage_shop(&s, "dor", &coupon);
            Loyalty__V1__GatewayCheckout *co = NULL;
            checkout_reserved(&s, b, coupon->id, &co);
            complete_until_answered(s.m, co->checkout_id, what);
            const char *key = harness_key();
            pgproxy_arm(refund_steps[i], nth);
            status_t st = refund_amount(s.m, key, "order-1", 10400, NULL);
            assert_cut_survived(what, st);
            for (int attempt = 0; attempt < 60 && retryable(&st); attempt++) {
                sleep_ms(250);
                st = refund_amount(s.m, key, "order-1", 10400, NULL);
            }
            assert_ok(st);
            Loyalty__V1__GatewayListSagasRequest ls = LOYALTY__V1__GATEWAY_LIST_SAGAS_REQUEST__INIT;
            ls.merchant_id = (char *)s.m;
            ls.kind = LOYALTY__V1__GATEWAY_SAGA_KIND__GATEWAY_SAGA_KIND_REFUND;
            Loyalty__V1__GatewayListSagasResponse *l = NULL;
            assert_ok(gw("ListSagas", &ls, &l));
            cr_assert_eq(l->n_sagas, 1, "%s", what);
            Loyalty__V1__GatewaySaga *saga = wait_saga_final(s.m, l->sagas[0]->id, 60);
            cr_assert_eq(saga->state, S_COMPLETED, "%s: state %d (%s)", what, saga->state,
                         saga->reason);
            assert_untouched(&s, b, coupon->id, what);
            cr_assert_str_eq(member_tier(s.m, b)->tier->name, "Bronze", "%s", what);
        }
    }
}
