/* test_gateway_crash.c -- crash tests of the checkout saga. The gateway is SIGKILLed by its
 * test-only failpoint (GATEWAY_FAILPOINT) before, during ("sent": the participant answered,
 * the answer not logged) and after every step of Begin and of Complete, then restarted without
 * it; its recovery job must finish every saga from the log alone: an interrupted Begin is
 * compensated (CANCELLED, nothing held, the same order then checks out normally), an
 * interrupted Complete is driven to COMPLETED; in both cases balances, coupon and code usage,
 * referral rewards and tiers end exactly as without a crash, and the participants' ledgers
 * verify clean. Then each participant service is killed once mid-saga and restarted. */
#include "gateway_it.h"

#include <signal.h>
#include <sys/wait.h>

TestSuite(gateway_crash, .init = it_setup, .fini = it_teardown, .timeout = 600);

#define S_COMPLETED LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_COMPLETED
#define S_CANCELLED LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_CANCELLED
#define S_RESERVED LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_RESERVED
#define STEP_DONE LOYALTY__V1__GATEWAY_STEP_STATE__GATEWAY_STEP_STATE_DONE

/* Short timeouts: a dead executor's lease expires after 2 s, the job runs every second. */
static char failpoint_env[128];

static void participants_start(void) {
    for (int i = 0; i < SVC_GATEWAY; i++) {
        harness_start(&procs[i], svc_names[i], svc_env());
    }
}

/* (Re)starts the gateway on a new port, with a failpoint or none. */
static void gateway_start(const char *failpoint) {
    int n = 0;
    if (failpoint != NULL) {
        snprintf(failpoint_env, sizeof failpoint_env, "GATEWAY_FAILPOINT=%s", failpoint);
        gw_extra_env[n++] = failpoint_env;
    }
    gw_extra_env[n++] = "RPC_CLIENT_TIMEOUT_MS=1000";
    gw_extra_env[n++] = "GATEWAY_LEASE_S=2";
    gw_extra_env[n] = NULL;
    static const char *env[HARNESS_ENV_MAX + 1];
    gw_env(env);
    harness_start(&procs[SVC_GATEWAY], "gateway", env);
}

/* Waits for the gateway to have killed itself at its failpoint. */
static void gateway_died(void) {
    int st = harness_wait(&procs[SVC_GATEWAY]);
    cr_assert_eq(st, -SIGKILL, "the gateway should have died at its failpoint (status %d); see %s",
                 st, procs[SVC_GATEWAY].log_path);
}

/* The figures of the shop's checkout (test_gateway_rpc_checkout.c works them out): 2000 points
 * and 30.00 wallet used, 84 points earned, rewards 840/420/168, Gold. */
static void assert_completed_figures(shop_t *s, const char *b, const char *coupon_id) {
    Loyalty__V1__PointsBalance *pb = points_balance(s->m, b);
    cr_assert_eq(pb->available, 5000 - 2000 + 84);
    cr_assert_eq(pb->held, 0);
    Loyalty__V1__WalletBalance *wb = wallet_balance(s->m, b);
    cr_assert_eq(wb->available_cents, 0);
    cr_assert_eq(wb->held_cents, 0);
    cr_assert_eq(points_balance(s->m, s->r1)->available, 840);
    cr_assert_eq(points_balance(s->m, s->r2)->available, 420);
    cr_assert_eq(points_balance(s->m, s->r3)->available, 168);
    cr_assert_eq(coupon_status(s->m, coupon_id),
                 LOYALTY__V1__PROMO_COUPON_STATUS__PROMO_COUPON_STATUS_USED);
    cr_assert_str_eq(member_tier(s->m, b)->tier->name, "Gold");
    assert_ledgers_clean(s->m);
}

static void assert_untouched(shop_t *s, const char *b, const char *coupon_id) {
    Loyalty__V1__PointsBalance *pb = points_balance(s->m, b);
    cr_assert_eq(pb->available, 5000);
    cr_assert_eq(pb->held, 0);
    Loyalty__V1__WalletBalance *wb = wallet_balance(s->m, b);
    cr_assert_eq(wb->available_cents, 3000);
    cr_assert_eq(wb->held_cents, 0);
    cr_assert_eq(coupon_status(s->m, coupon_id),
                 LOYALTY__V1__PROMO_COUPON_STATUS__PROMO_COUPON_STATUS_AVAILABLE);
    cr_assert_eq(points_balance(s->m, s->r1)->available, 0);
    assert_ledgers_clean(s->m);
}

static Loyalty__V1__GatewayCart *crash_cart(const char *coupon_id) {
    Loyalty__V1__GatewayCart *cart = shirt_cart();
    cart->codes[cart->n_codes++] = "SAVE10";
    cart->coupon_ids[cart->n_coupon_ids++] = (char *)coupon_id;
    return cart;
}

/* Every step of the final checkout is DONE and the saga COMPLETED. */
static void assert_all_done(const char *m, const char *checkout_id) {
    /* Complete may answer COMPLETING (a participant slower than the client timeout on a busy
     * machine): what matters is where the saga ends. */
    wait_saga_final(m, checkout_id, 60);
    Loyalty__V1__GatewayCheckout *co = get_checkout(m, checkout_id);
    cr_assert_eq(co->state, S_COMPLETED, "state %d (%s)", co->state, co->reason);
    for (size_t i = 0; i < co->n_steps; i++) {
        cr_assert_eq(co->steps[i]->state, STEP_DONE, "step %s", co->steps[i]->name);
    }
}

static const char *const begin_steps[] = {"promo_reserve", "points_hold", "wallet_hold"};
static const char *const complete_steps[] = {"wallet_capture",      "promo_confirm",
                                             "points_settle",       "referral_compute",
                                             "member_record_order", "referral_grants"};
static const char *const whens[] = {"before", "sent", "after"};

Test(gateway_crash, kill_at_every_step_of_begin) {
    participants_start();
    for (size_t i = 0; i < sizeof begin_steps / sizeof *begin_steps; i++) {
        for (size_t w = 0; w < 3; w++) {
            char fp[96];
            snprintf(fp, sizeof fp, "%s:%s", whens[w], begin_steps[i]);
            shop_t s;
            open_shop(&s, "crb");
            const char *b = new_buyer(&s, 5000, 3000);
            Loyalty__V1__PromoCoupon *coupon = issue_coupon(s.m, b, s.five_off->id);
            gateway_start(fp);
            status_t st = begin_checkout(s.m, NULL, "order-1", b, crash_cart(coupon->id),
                                         pay(2000, 3000), NULL);
            cr_assert_neq(st.code, STATUS_OK, "%s: Begin answered although the gateway died", fp);
            gateway_died();
            gateway_start(NULL);
            /* The recovery job compensates the interrupted Begin. */
            Loyalty__V1__GatewayGetCheckoutRequest g =
                LOYALTY__V1__GATEWAY_GET_CHECKOUT_REQUEST__INIT;
            g.merchant_id = (char *)s.m;
            g.target_case = LOYALTY__V1__GATEWAY_GET_CHECKOUT_REQUEST__TARGET_ORDER_ID;
            g.order_id = "order-1";
            Loyalty__V1__GatewayGetCheckoutResponse *gr = NULL;
            assert_ok(gw("GetCheckout", &g, &gr));
            Loyalty__V1__GatewaySaga *saga = wait_saga_final(s.m, gr->checkout->checkout_id, 30);
            cr_assert_eq(saga->state, S_CANCELLED, "%s: state %d", fp, saga->state);
            cr_assert_str_eq(saga->reason, "INTERRUPTED", "%s", fp);
            assert_untouched(&s, b, coupon->id);
            /* The same order then checks out as if nothing had happened. */
            Loyalty__V1__GatewayCheckout *co = NULL;
            assert_ok(begin_checkout(s.m, NULL, "order-1", b, crash_cart(coupon->id),
                                     pay(2000, 3000), &co));
            assert_ok(complete_checkout(s.m, co->checkout_id, "psp-1", NULL));
            assert_all_done(s.m, co->checkout_id);
            assert_completed_figures(&s, b, coupon->id);
            cr_assert_eq(harness_stop(&procs[SVC_GATEWAY]), 0);
        }
    }
}

static void crash_complete(const char *fp) {
    shop_t s;
    open_shop(&s, "crc");
    const char *b = new_buyer(&s, 5000, 3000);
    Loyalty__V1__PromoCoupon *coupon = issue_coupon(s.m, b, s.five_off->id);
    gateway_start(fp);
    Loyalty__V1__GatewayCheckout *co = NULL;
    assert_ok(
        begin_checkout(s.m, NULL, "order-1", b, crash_cart(coupon->id), pay(2000, 3000), &co));
    cr_assert_eq(co->state, S_RESERVED);
    status_t st = complete_checkout(s.m, co->checkout_id, "psp-1", NULL);
    cr_assert_neq(st.code, STATUS_OK, "%s: Complete answered although the gateway died", fp);
    gateway_died();
    gateway_start(NULL);
    Loyalty__V1__GatewaySaga *saga = wait_saga_final(s.m, co->checkout_id, 30);
    cr_assert_eq(saga->state, S_COMPLETED, "%s: state %d (%s)", fp, saga->state, saga->reason);
    assert_all_done(s.m, co->checkout_id);
    assert_completed_figures(&s, b, coupon->id);
    /* And the order refunds exactly, as any completed one. */
    Loyalty__V1__GatewayRefund *r = NULL;
    assert_ok(refund_amount(s.m, NULL, "order-1", 10400, &r));
    cr_assert_eq(wait_saga_final(s.m, r->refund_id, 60)->state, S_COMPLETED, "%s", fp);
    cr_assert_eq(points_balance(s.m, b)->available, 5000, "%s", fp);
    cr_assert_eq(wallet_balance(s.m, b)->available_cents, 3000, "%s", fp);
    cr_assert_eq(points_balance(s.m, s.r1)->available, 0, "%s", fp);
    assert_ledgers_clean(s.m);
    cr_assert_eq(harness_stop(&procs[SVC_GATEWAY]), 0);
}

Test(gateway_crash, kill_at_every_step_of_complete_first_half) {
    participants_start();
    for (size_t i = 0; i < 4; i++) {
        for (size_t w = 0; w < 3; w++) {
            char fp[96];
            snprintf(fp, sizeof fp, "%s:%s", whens[w], complete_steps[i]);
            crash_complete(fp);
        }
    }
}

Test(gateway_crash, kill_at_every_step_of_complete_second_half) {
    participants_start();
    for (size_t i = 4; i < sizeof complete_steps / sizeof *complete_steps; i++) {
        for (size_t w = 0; w < 3; w++) {
            char fp[96];
            snprintf(fp, sizeof fp, "%s:%s", whens[w], complete_steps[i]);
            crash_complete(fp);
        }
    }
}

/* Runs SQL on the test's database with the merchant as $1. */
static void sql_m(const char *stmt, const char *merchant) {
    PGconn *c = PQconnectdb(test_dsn());
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    const char *params[1] = {merchant};
    PGresult *r = PQexecParams(c, stmt, 1, NULL, params, NULL, NULL, 0);
    cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
              "%s: %s", stmt, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

/* Turns the merchant's checkouts back into what a gateway before migration 057 wrote: the steps
 * as saga_steps rows, the saga's steps array NULL. */
static void steps_to_rows(const char *m) {
    sql_m("WITH moved AS (INSERT INTO gateway.saga_steps (merchant_id, saga_id, name, seq, "
          " direction, state, attempts, response, error_code, error_reason, error_message, "
          " started_at, finished_at) "
          "SELECT s.merchant_id, s.id, u.name, u.seq, u.direction, u.state, u.attempts, "
          " u.response, u.error_code, coalesce(u.error_reason, ''), "
          " coalesce(u.error_message, ''), to_timestamp(u.started_at), "
          " to_timestamp(u.finished_at) "
          "FROM gateway.sagas s CROSS JOIN LATERAL unnest(s.steps) u "
          "WHERE s.merchant_id = $1 AND s.kind = 2 RETURNING saga_id) "
          "UPDATE gateway.sagas SET steps = NULL WHERE merchant_id = $1 AND kind = 2 "
          " AND id IN (SELECT saga_id FROM moved)",
          m);
}

Test(gateway_crash, saga_logged_before_the_steps_array_recovers) {
    /* Goal: a saga in flight when the gateway was upgraded (its steps still saga_steps rows,
     * migration 057) is finished by the new gateway from those rows exactly as from its steps
     * array: an interrupted Begin is compensated, an interrupted Complete completed, and the
     * saga shows every step it logged. */
    participants_start();
    static const char *const fps[] = {"sent:points_hold", "sent:points_settle",
                                      "before:member_record_order"};
    for (size_t i = 0; i < sizeof fps / sizeof *fps; i++) {
        bool in_begin = i == 0;
        shop_t s;
        open_shop(&s, "crm");
        const char *b = new_buyer(&s, 5000, 3000);
        Loyalty__V1__PromoCoupon *coupon = issue_coupon(s.m, b, s.five_off->id);
        gateway_start(fps[i]);
        Loyalty__V1__GatewayCheckout *co = NULL;
        status_t st =
            begin_checkout(s.m, NULL, "order-1", b, crash_cart(coupon->id), pay(2000, 3000), &co);
        if (!in_begin) {
            assert_ok(st);
            st = complete_checkout(s.m, co->checkout_id, "psp-1", NULL);
        }
        cr_assert_neq(st.code, STATUS_OK, "%s: answered although the gateway died", fps[i]);
        gateway_died();
        steps_to_rows(s.m);
        gateway_start(NULL);
        Loyalty__V1__GatewayGetCheckoutRequest g = LOYALTY__V1__GATEWAY_GET_CHECKOUT_REQUEST__INIT;
        g.merchant_id = (char *)s.m;
        g.target_case = LOYALTY__V1__GATEWAY_GET_CHECKOUT_REQUEST__TARGET_ORDER_ID;
        g.order_id = "order-1";
        Loyalty__V1__GatewayGetCheckoutResponse *gr = NULL;
        assert_ok(gw("GetCheckout", &g, &gr));
        size_t logged = gr->checkout->n_steps;
        cr_assert_gt(logged, 0, "%s: the steps are read from saga_steps", fps[i]);
        Loyalty__V1__GatewaySaga *saga = wait_saga_final(s.m, gr->checkout->checkout_id, 30);
        co = get_checkout(s.m, gr->checkout->checkout_id);
        cr_assert_geq(co->n_steps, logged, "%s: no logged step is lost", fps[i]);
        if (in_begin) {
            cr_assert_eq(saga->state, S_CANCELLED, "%s: state %d", fps[i], saga->state);
            assert_untouched(&s, b, coupon->id);
        } else {
            cr_assert_eq(saga->state, S_COMPLETED, "%s: state %d (%s)", fps[i], saga->state,
                         saga->reason);
            assert_all_done(s.m, co->checkout_id);
            assert_completed_figures(&s, b, coupon->id);
        }
        cr_assert_eq(harness_stop(&procs[SVC_GATEWAY]), 0);
    }
}

Test(gateway_crash, kill_each_participant_mid_saga) {
    /* Goal: a participant killed between Begin and Complete (and, for wallet-svc, during
     * Begin) only delays the saga: Complete is accepted and answers COMPLETING, the recovery job
     * finishes it once the service is back; an interrupted Begin is resumed by the client's
     * retry with the same key. */
    participants_start();
    gw_extra_env[0] = "GATEWAY_BEGIN_GRACE_S=60";
    gw_extra_env[1] = "RPC_CLIENT_TIMEOUT_MS=1000";
    gw_extra_env[2] = "GATEWAY_LEASE_S=2";
    gw_extra_env[3] = NULL;
    static const char *env[HARNESS_ENV_MAX + 1];
    gw_env(env);
    harness_start(&procs[SVC_GATEWAY], "gateway", env);
    for (int victim = 0; victim < SVC_GATEWAY; victim++) {
        shop_t s;
        open_shop(&s, "crp");
        const char *b = new_buyer(&s, 5000, 3000);
        Loyalty__V1__PromoCoupon *coupon = issue_coupon(s.m, b, s.five_off->id);
        Loyalty__V1__GatewayCheckout *co = NULL;
        const char *key = harness_key();
        if (victim == SVC_WALLET) {
            /* Killed during Begin: the wallet hold times out, the Begin answers an error and
             * stays BEGINNING; the retry with the same key after the restart resumes it. */
            harness_kill(&procs[victim]);
            status_t st = begin_checkout(s.m, key, "order-1", b, crash_cart(coupon->id),
                                         pay(2000, 3000), NULL);
            cr_assert(st.code == STATUS_DEADLINE_EXCEEDED || st.code == STATUS_UNAVAILABLE,
                      "got %s", status_code_name(st.code));
            harness_restart(&procs[victim]);
            /* As a client does: retry (same key) while the gateway cannot reach it yet. */
            for (int attempt = 0; attempt < 20; attempt++) {
                st = begin_checkout(s.m, key, "order-1", b, crash_cart(coupon->id), pay(2000, 3000),
                                    &co);
                if (st.code != STATUS_DEADLINE_EXCEEDED && st.code != STATUS_UNAVAILABLE &&
                    st.code != STATUS_ABORTED) {
                    break;
                }
                sleep_ms(300);
            }
            assert_ok(st);
            cr_assert_eq(co->state, S_RESERVED);
            /* Accepted: COMPLETED, or COMPLETING when a participant just restarted answers
             * later than the client timeout (a busy machine); the saga ends COMPLETED below. */
            Loyalty__V1__GatewayCheckout *done = NULL;
            assert_ok(complete_checkout(s.m, co->checkout_id, "psp-1", &done));
            cr_assert(done->state == S_COMPLETED ||
                          done->state ==
                              LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_COMPLETING,
                      "state %d (%s)", done->state, done->reason);
        } else {
            assert_ok(begin_checkout(s.m, key, "order-1", b, crash_cart(coupon->id),
                                     pay(2000, 3000), &co));
            harness_kill(&procs[victim]);
            Loyalty__V1__GatewayCheckout *accepted = NULL;
            assert_ok(complete_checkout(s.m, co->checkout_id, "psp-1", &accepted));
            cr_assert_eq(accepted->state,
                         LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_COMPLETING,
                         "%s down: accepted, not finished", svc_names[victim]);
            harness_restart(&procs[victim]);
        }
        Loyalty__V1__GatewaySaga *saga = wait_saga_final(s.m, co->checkout_id, 60);
        cr_assert_eq(saga->state, S_COMPLETED, "%s: state %d (%s)", svc_names[victim], saga->state,
                     saga->reason);
        assert_all_done(s.m, co->checkout_id);
        assert_completed_figures(&s, b, coupon->id);
    }
}

Test(gateway_crash, kill_during_refund) {
    /* Goal: a refund interrupted at any of its steps is finished by the recovery job and gives
     * back exactly the whole order: points, wallet, referral rewards, once. */
    participants_start();
    static const char *const fps[] = {"sent:wallet_refund",       "after:points_reverse",
                                      "sent:referral_reverse",    "before:member_record_return",
                                      "sent:referral_clawback:*", "sent:promo_release_usage"};
    for (size_t i = 0; i < sizeof fps / sizeof *fps; i++) {
        shop_t s;
        open_shop(&s, "crr");
        const char *b = new_buyer(&s, 5000, 3000);
        Loyalty__V1__PromoCoupon *coupon = issue_coupon(s.m, b, s.five_off->id);
        gateway_start(NULL);
        Loyalty__V1__GatewayCheckout *co = NULL;
        assert_ok(
            begin_checkout(s.m, NULL, "order-1", b, crash_cart(coupon->id), pay(2000, 3000), &co));
        assert_ok(complete_checkout(s.m, co->checkout_id, "psp-1", NULL));
        assert_completed_figures(&s, b, coupon->id);
        cr_assert_eq(harness_stop(&procs[SVC_GATEWAY]), 0);
        gateway_start(fps[i]);
        status_t st = refund_amount(s.m, NULL, "order-1", 10400, NULL);
        cr_assert_neq(st.code, STATUS_OK, "%s: the refund answered although the gateway died",
                      fps[i]);
        gateway_died();
        gateway_start(NULL);
        Loyalty__V1__GatewayListSagasRequest ls = LOYALTY__V1__GATEWAY_LIST_SAGAS_REQUEST__INIT;
        ls.merchant_id = (char *)s.m;
        ls.kind = LOYALTY__V1__GATEWAY_SAGA_KIND__GATEWAY_SAGA_KIND_REFUND;
        Loyalty__V1__GatewayListSagasResponse *l = NULL;
        assert_ok(gw("ListSagas", &ls, &l));
        cr_assert_eq(l->n_sagas, 1, "%s", fps[i]);
        Loyalty__V1__GatewaySaga *saga = wait_saga_final(s.m, l->sagas[0]->id, 30);
        cr_assert_eq(saga->state, S_COMPLETED, "%s: state %d (%s)", fps[i], saga->state,
                     saga->reason);
        assert_untouched(&s, b, coupon->id);
        cr_assert_eq(points_balance(s.m, s.r2)->available, 0, "%s", fps[i]);
        cr_assert_eq(points_balance(s.m, s.r3)->available, 0, "%s", fps[i]);
        cr_assert_str_eq(member_tier(s.m, b)->tier->name, "Bronze", "%s", fps[i]);
        cr_assert_eq(harness_stop(&procs[SVC_GATEWAY]), 0);
    }
}
