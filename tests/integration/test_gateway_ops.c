/* test_gateway_ops.c -- the gateway's reads and operational paths with every real service: the
 * member overview (parallel reads, a section missing when its service is down), QuoteCheckout
 * reserving nothing, purchase rewards held through the return window and released later by the
 * recovery job, a permanent step failure (NEEDS_ATTENTION) fixed by an operator and retried with
 * RetrySaga (and recorded in the audit trail), plan checks refusing a checkout before anything is
 * reserved, a registration finished by the recovery job after a participant was down, and
 * idempotency-key reuse. */
#include "gateway_it.h"

#include "cache.h"
#include "loyalty/v1/audit.pb-c.h"

#include <hiredis/hiredis.h>

TestSuite(gateway_ops, .init = it_setup, .fini = it_teardown, .timeout = 300);

#define S_COMPLETED LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_COMPLETED
#define S_COMPLETING LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_COMPLETING
#define S_ATTENTION LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_NEEDS_ATTENTION

/* Runs one SQL statement with the merchant as $1 (moving time in another service's tables, as
 * participants' own tests do). */
static void sql(const char *stmt, const char *merchant) {
    PGconn *c = PQconnectdb(test_dsn());
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    const char *params[1] = {merchant};
    PGresult *r = PQexecParams(c, stmt, 1, NULL, params, NULL, NULL, 0);
    cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
              "%s: %s", stmt, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

/* Whether the events stream has an event of that type about that subject for the merchant
 * (waiting up to 10 s for the outbox publisher). */
static bool event_published(const char *m, const char *type, const char *subject) {
    const char *url = getenv("LOYALTY_REDIS_URL");
    cache_url_t u;
    cr_assert(cache_url_parse(url, &u));
    redisContext *rc = redisConnect(u.host, u.port);
    cr_assert(rc != NULL && rc->err == 0 && cache_auth(rc, &u));
    bool found = false;
    for (int attempt = 0; attempt < 50 && !found; attempt++) {
        redisReply *r = redisCommand(rc, "XREVRANGE loyalty:events + - COUNT 5000");
        for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements && !found; i++) {
            redisReply *fields = r->element[i]->element[1];
            const char *t = "", *mm = "", *subj = "";
            for (size_t f = 0; f + 1 < fields->elements; f += 2) {
                const char *k = fields->element[f]->str;
                const char *v = fields->element[f + 1]->str;
                t = strcmp(k, "type") == 0 ? v : t;
                mm = strcmp(k, "merchant_id") == 0 ? v : mm;
                subj = strcmp(k, "subject_id") == 0 ? v : subj;
            }
            found = strcmp(t, type) == 0 && strcmp(mm, m) == 0 && strcmp(subj, subject) == 0;
        }
        freeReplyObject(r);
        if (!found) {
            sleep_ms(200);
        }
    }
    redisFree(rc);
    return found;
}

Test(gateway_ops, domain_events) {
    /* Goal: member.registered, order.completed and order.refunded reach the events stream. */
    stack_start();
    shop_t s;
    open_shop(&s, "evt");
    Loyalty__V1__GatewayRegistration *reg = NULL;
    assert_ok(register_member(s.m, NULL, "Lee", "+6591000088", NULL, &reg));
    cr_assert(event_published(s.m, "member.registered", reg->member->id));
    Loyalty__V1__GatewayCheckout *co = NULL;
    assert_ok(begin_checkout(s.m, NULL, "order-e", reg->member->id, shirt_cart(), NULL, &co));
    assert_ok(complete_checkout(s.m, co->checkout_id, "psp-e", NULL));
    cr_assert(event_published(s.m, "order.completed", "order-e"));
    assert_ok(refund_amount(s.m, NULL, "order-e", 100, NULL));
    cr_assert(event_published(s.m, "order.refunded", "order-e"));
}

Test(gateway_ops, member_overview_and_quote) {
    stack_start();
    shop_t s;
    open_shop(&s, "ovw");
    const char *b = new_buyer(&s, 5000, 3000);
    issue_coupon(s.m, b, s.five_off->id);
    Loyalty__V1__GatewayGetMemberOverviewRequest r =
        LOYALTY__V1__GATEWAY_GET_MEMBER_OVERVIEW_REQUEST__INIT;
    r.merchant_id = (char *)s.m;
    r.member_id = (char *)b;
    Loyalty__V1__GatewayGetMemberOverviewResponse *o = NULL;
    assert_ok(gw("GetMemberOverview", &r, &o));
    cr_assert_str_eq(o->member->id, b);
    cr_assert_str_eq(o->tier->tier->name, "Bronze");
    cr_assert_str_eq(o->tier->next_tier->name, "Gold");
    cr_assert_eq(o->tier->value_to_next_tier, 80);
    cr_assert_eq(o->points->available, 5000);
    cr_assert_eq(o->wallet->available_cents, 3000);
    cr_assert_eq(o->n_coupons, 1);
    cr_assert_eq(strlen(o->referral_code), 8);
    cr_assert_str_eq(o->referral_code, referral_code(s.m, b));
    cr_assert_eq(o->n_downline, 3);
    cr_assert_eq(o->n_unavailable, 0);
    /* R1 has the buyer below it. */
    r.member_id = (char *)s.r1;
    assert_ok(gw("GetMemberOverview", &r, &o));
    cr_assert_eq(o->downline[0]->members, 1);
    /* A section whose service is down is named, the rest still answers. */
    harness_kill(&procs[SVC_PROMO]);
    r.member_id = (char *)b;
    assert_ok(gw("GetMemberOverview", &r, &o));
    cr_assert_eq(o->n_unavailable, 1);
    cr_assert_str_eq(o->unavailable[0], "coupons");
    cr_assert_eq(o->points->available, 5000);
    harness_restart(&procs[SVC_PROMO]);
    r.member_id = "mbr_nobody";
    assert_status(gw("GetMemberOverview", &r, &o), STATUS_NOT_FOUND, "MEMBER_NOT_FOUND");

    /* QuoteCheckout prices as Begin would and reserves nothing. */
    Loyalty__V1__GatewayCart *cart = shirt_cart();
    cart->codes[cart->n_codes++] = "SAVE10";
    Loyalty__V1__GatewayQuoteCheckoutRequest q = LOYALTY__V1__GATEWAY_QUOTE_CHECKOUT_REQUEST__INIT;
    q.merchant_id = (char *)s.m;
    q.member_id = (char *)b;
    q.cart = cart;
    q.payment = pay(9000, 3000);
    Loyalty__V1__GatewayQuoteCheckoutResponse *qr = NULL;
    assert_ok(gw("QuoteCheckout", &q, &qr));
    const Loyalty__V1__GatewayCheckoutBreakdown *k = qr->breakdown;
    /* 120.00 - 6.00 Bronze - 10.00 SAVE10 + 5.00 shipping = 109.00; 9000 points asked but at
     * most 50% (54.50) -> 5450 points; wallet 30.00; 24.50 due; earns on 54.50: 54 points. */
    cr_assert_eq(k->total_cents, 10900);
    cr_assert_eq(k->points_used, 5450);
    cr_assert_str_eq(k->points_note, "CAPPED_BY_ORDER_SHARE");
    cr_assert_eq(k->points_cash_cents, 5450);
    cr_assert_eq(k->wallet_cents, 3000);
    cr_assert_eq(k->amount_due_cents, 2450);
    cr_assert_eq(k->earn_estimate->points, 54);
    cr_assert_eq(k->points_available, 5000);
    cr_assert_eq(k->wallet_available_cents, 3000);
    Loyalty__V1__PointsBalance *pb = points_balance(s.m, b);
    cr_assert_eq(pb->held, 0, "a quote holds nothing");
    cr_assert_eq(wallet_balance(s.m, b)->held_cents, 0);
}

Test(gateway_ops, held_purchase_rewards_are_released_by_the_job) {
    /* Goal: with a one-day hold on purchase rewards, Complete grants nothing to the upline; once
     * the hold has passed (moved into the past here), the recovery job releases the rewards
     * and grants them, once. */
    stack_start();
    shop_t s;
    open_shop(&s, "held");
    int64_t reg[3] = {0, 0, 0};
    int32_t bps[3] = {1000, 500, 200};
    set_referral_program(s.m, 3, reg, bps, 0, 1);
    const char *b = new_buyer(&s, 5000, 3000);
    Loyalty__V1__GatewayCheckout *co = NULL;
    assert_ok(begin_checkout(s.m, NULL, "order-h", b, shirt_cart(), pay(0, 0), &co));
    Loyalty__V1__GatewayCheckout *done = NULL;
    assert_ok(complete_checkout(s.m, co->checkout_id, "psp-h", &done));
    cr_assert_eq(done->state, S_COMPLETED);
    cr_assert_eq(done->result->n_referral_rewards, 3);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_not(done->result->referral_rewards[i]->granted);
    }
    cr_assert_eq(points_balance(s.m, s.r1)->available, 0);
    sql("UPDATE referral.rewards SET held_until = now() - interval '1 minute' "
        "WHERE merchant_id = $1 AND state = 1",
        s.m);
    sql("UPDATE gateway.referral_release_due SET due_at = now() WHERE merchant_id = $1", s.m);
    /* 114.00 after Bronze + 5.00 shipping = 119.00 paid externally (no points, no wallet):
     * 10%, 5%, 2% -> 1190, 595, 238 points. */
    for (int i = 0; i < 100 && points_balance(s.m, s.r3)->available == 0; i++) {
        sleep_ms(200);
    }
    cr_assert_eq(points_balance(s.m, s.r1)->available, 1190);
    cr_assert_eq(points_balance(s.m, s.r2)->available, 595);
    cr_assert_eq(points_balance(s.m, s.r3)->available, 238);
    sleep_ms(2500); /* more recovery passes: nothing is granted twice */
    cr_assert_eq(points_balance(s.m, s.r1)->available, 1190);
    Loyalty__V1__GatewayListSagasRequest ls = LOYALTY__V1__GATEWAY_LIST_SAGAS_REQUEST__INIT;
    ls.merchant_id = (char *)s.m;
    ls.kind = LOYALTY__V1__GATEWAY_SAGA_KIND__GATEWAY_SAGA_KIND_REFERRAL_RELEASE;
    Loyalty__V1__GatewayListSagasResponse *l = NULL;
    assert_ok(gw("ListSagas", &ls, &l));
    cr_assert_eq(l->n_sagas, 1);
    cr_assert_eq(l->sagas[0]->state, S_COMPLETED);
    /* A full refund takes the granted rewards back. */
    assert_ok(refund_amount(s.m, NULL, "order-h", 11900, NULL));
    cr_assert_eq(points_balance(s.m, s.r1)->available, 0);
    cr_assert_eq(points_balance(s.m, s.r3)->available, 0);
    assert_ledgers_clean(s.m);
}

Test(gateway_ops, needs_attention_then_retry_saga) {
    /* Goal: a plan checked at Begin but deactivated before Complete stops the saga on a
     * permanent refusal: NEEDS_ATTENTION with the reason, everything before it done, nothing
     * lost; once the operator reactivates the plan, RetrySaga finishes it. Plans are also
     * checked at Begin, refusing before anything is reserved. */
    stack_start();
    shop_t s;
    open_shop(&s, "attn");
    const char *b = new_buyer(&s, 0, 0);
    Loyalty__V1__MemberPlan *plan = create_plan(s.m, s.gold->id, false);
    Loyalty__V1__GatewayCart *cart = new_cart();
    Loyalty__V1__GatewayCartLine *ml = add_line(cart, "gold", "gold-yearly", 1, 9900);
    ml->kind = LOYALTY__V1__GATEWAY_LINE_KIND__GATEWAY_LINE_KIND_MEMBERSHIP;
    ml->membership_plan_id = plan->id;
    assert_status(begin_checkout(s.m, NULL, "order-a", b, cart, NULL, NULL),
                  STATUS_FAILED_PRECONDITION, "PLAN_INACTIVE");
    ml->membership_plan_id = "plan_nope";
    assert_status(begin_checkout(s.m, NULL, "order-a", b, cart, NULL, NULL), STATUS_NOT_FOUND,
                  "PLAN_NOT_FOUND");
    ml->membership_plan_id = plan->id;
    set_plan_active(s.m, plan, true);
    Loyalty__V1__GatewayCheckout *co = NULL;
    assert_ok(begin_checkout(s.m, NULL, "order-a", b, cart, NULL, &co));
    set_plan_active(s.m, plan, false);
    Loyalty__V1__GatewayCheckout *done = NULL;
    assert_ok(complete_checkout(s.m, co->checkout_id, "psp-a", &done));
    cr_assert_eq(done->state, S_ATTENTION, "state %d", done->state);
    cr_assert_str_eq(done->reason, "PLAN_INACTIVE");
    cr_assert_eq(done->result->points_earned, 94, "the steps before it are done");
    /* The error line an operator is paged by names the merchant and the saga. */
    char ids_json[256];
    snprintf(ids_json, sizeof ids_json, "\"merchant_id\":\"%s\",\"saga_id\":\"%s\"", s.m,
             co->checkout_id);
    cr_assert(harness_file_contains(procs[SVC_GATEWAY].log_path, ids_json), "no %s in %s", ids_json,
              procs[SVC_GATEWAY].log_path);
    Loyalty__V1__GatewayListSagasRequest ls = LOYALTY__V1__GATEWAY_LIST_SAGAS_REQUEST__INIT;
    ls.merchant_id = (char *)s.m;
    ls.state = S_ATTENTION;
    Loyalty__V1__GatewayListSagasResponse *l = NULL;
    assert_ok(gw("ListSagas", &ls, &l));
    cr_assert_eq(l->n_sagas, 1);
    cr_assert_str_eq(l->sagas[0]->id, co->checkout_id);
    set_plan_active(s.m, plan, true);
    Loyalty__V1__GatewayRetrySagaRequest rs = LOYALTY__V1__GATEWAY_RETRY_SAGA_REQUEST__INIT;
    rs.merchant_id = (char *)s.m;
    rs.idempotency_key = (char *)harness_key();
    rs.saga_id = co->checkout_id;
    Loyalty__V1__GatewayRetrySagaResponse *rr = NULL;
    assert_ok(gw("RetrySaga", &rs, &rr));
    cr_assert_eq(rr->saga->state, S_COMPLETING);
    /* The audit trail has the retry: the saga's state and error before and after, and the
     * failed step put back to be called again. */
    Loyalty__V1__GatewayListAuditLogRequest al = LOYALTY__V1__GATEWAY_LIST_AUDIT_LOG_REQUEST__INIT;
    al.merchant_id = (char *)s.m;
    Loyalty__V1__GatewayListAuditLogResponse *trail = NULL;
    assert_ok(gw("ListAuditLog", &al, &trail));
    const Loyalty__V1__AuditEntry *retry = NULL;
    for (size_t i = 0; i < trail->n_entries && !retry; i++) {
        if (strcmp(trail->entries[i]->idempotency_key, rs.idempotency_key) == 0) {
            retry = trail->entries[i];
        }
    }
    cr_assert_not_null(retry, "RetrySaga is not in the audit trail");
    cr_assert_str_eq(retry->rpc, "/loyalty.v1.Gateway/RetrySaga");
    cr_assert_str_eq(retry->service, "gateway");
    cr_assert_eq(retry->n_changes, 1);
    cr_assert_str_eq(retry->changes[0]->table, "sagas");
    cr_assert_str_eq(retry->changes[0]->op, "UPDATE");
    char want[512];
    snprintf(want, sizeof want,
             "{\"id\": \"%s\", \"state\": \"GATEWAY_SAGA_STATE_NEEDS_ATTENTION\", "
             "\"error_reason\": \"PLAN_INACTIVE\", \"failed_steps\": 1}",
             co->checkout_id);
    cr_assert_str_eq(retry->changes[0]->before_json, want);
    snprintf(want, sizeof want,
             "{\"id\": \"%s\", \"state\": \"GATEWAY_SAGA_STATE_COMPLETING\", "
             "\"error_reason\": \"\", \"failed_steps\": 0}",
             co->checkout_id);
    cr_assert_str_eq(retry->changes[0]->after_json, want);
    Loyalty__V1__GatewaySaga *saga = wait_saga_final(s.m, co->checkout_id, 30);
    cr_assert_eq(saga->state, S_COMPLETED, "state %d (%s)", saga->state, saga->reason);
    Loyalty__V1__MemberTierStatus *ts = member_tier(s.m, b);
    cr_assert_str_eq(ts->tier->name, "Gold");
    cr_assert_eq(points_balance(s.m, b)->available, 94, "earned once");
    rs.idempotency_key = (char *)harness_key();
    assert_status(gw("RetrySaga", &rs, NULL), STATUS_FAILED_PRECONDITION, "SAGA_NOT_RETRYABLE");
    assert_ledgers_clean(s.m);
}

Test(gateway_ops, registration_finishes_after_a_participant_outage) {
    /* Goal: with promo-svc down, a registration creates the member and answers COMPLETING (the
     * welcome coupon waits); the recovery job issues the coupon once promo-svc is back. */
    stack_start();
    const char *m = harness_merchant("rgo");
    set_points_rules(m, 50, 0, 0);
    Loyalty__V1__PromoCouponTemplate *welcome = create_template(m, "Welcome", 500, 0, 0);
    char *tids[1] = {welcome->id};
    Loyalty__V1__GatewaySettings st = LOYALTY__V1__GATEWAY_SETTINGS__INIT;
    st.welcome_coupon_template_ids = tids;
    st.n_welcome_coupon_template_ids = 1;
    Loyalty__V1__GatewayUpdateSettingsRequest us =
        LOYALTY__V1__GATEWAY_UPDATE_SETTINGS_REQUEST__INIT;
    us.merchant_id = (char *)m;
    us.idempotency_key = (char *)harness_key();
    us.settings = &st;
    us.update_mask = HARNESS_MASK("welcome_coupon_template_ids");
    assert_ok(gw("UpdateGatewaySettings", &us, NULL));
    harness_kill(&procs[SVC_PROMO]);
    Loyalty__V1__GatewayRegistration *r = NULL;
    assert_ok(register_member(m, NULL, "Kim", "+6591000077", NULL, &r));
    cr_assert_eq(r->state, S_COMPLETING);
    cr_assert_eq(points_balance(m, r->member->id)->available, 50);
    harness_restart(&procs[SVC_PROMO]);
    Loyalty__V1__GatewaySaga *saga = wait_saga_final(m, r->saga_id, 30);
    cr_assert_eq(saga->state, S_COMPLETED, "state %d (%s)", saga->state, saga->reason);
    size_t n = 0;
    member_coupons(m, r->member->id,
                   LOYALTY__V1__PROMO_COUPON_STATUS__PROMO_COUPON_STATUS_AVAILABLE, &n);
    cr_assert_eq(n, 1, "the welcome coupon, once");
    cr_assert_eq(points_balance(m, r->member->id)->available, 50, "registration points once");
}

Test(gateway_ops, begin_key_reuse_and_order_reuse) {
    stack_start();
    shop_t s;
    open_shop(&s, "keys");
    const char *b = new_buyer(&s, 5000, 3000);
    const char *key = harness_key();
    Loyalty__V1__GatewayCheckout *co = NULL;
    assert_ok(begin_checkout(s.m, key, "order-k", b, shirt_cart(), pay(1000, 0), &co));
    /* The same key with another request (more points) is refused. */
    assert_status(begin_checkout(s.m, key, "order-k", b, shirt_cart(), pay(2000, 0), NULL),
                  STATUS_ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED");
    /* Checkout() with Begin's key and fields is another request too. */
    Loyalty__V1__GatewayCheckoutRequest c = LOYALTY__V1__GATEWAY_CHECKOUT_REQUEST__INIT;
    c.merchant_id = (char *)s.m;
    c.idempotency_key = (char *)key;
    c.order_id = "order-k";
    c.member_id = (char *)b;
    c.cart = shirt_cart();
    c.payment = pay(1000, 0);
    assert_status(gw("Checkout", &c, NULL), STATUS_ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED");
    cr_assert_eq(points_balance(s.m, b)->held, 1000, "held once");
}

Test(gateway_ops, a_step_too_old_to_replay_needs_attention) {
    /* Goal: a step left STARTED for longer than participants keep idempotency keys is not
     * called again (it could apply twice): the saga waits for an operator. */
    stack_start();
    shop_t s;
    open_shop(&s, "old");
    const char *b = new_buyer(&s, 5000, 3000);
    Loyalty__V1__GatewayCheckout *co = NULL;
    assert_ok(begin_checkout(s.m, NULL, "order-o", b, shirt_cart(), pay(0, 1000), &co));
    harness_kill(&procs[SVC_WALLET]);
    Loyalty__V1__GatewayCheckout *accepted = NULL;
    assert_ok(complete_checkout(s.m, co->checkout_id, "psp-o", &accepted));
    cr_assert_eq(accepted->state, S_COMPLETING);
    /* The gateway stopped first: a recovery pass in flight would write the steps it loaded
     * before this change back over it. */
    cr_assert_eq(harness_stop(&procs[SVC_GATEWAY]), 0);
    sql("UPDATE gateway.sagas s SET steps = ARRAY(SELECT ROW(u.name, u.seq, u.direction, "
        " u.state, u.attempts, u.response, u.error_code, u.error_reason, u.error_message, "
        " CASE WHEN u.name = 'wallet_capture' "
        "  THEN extract(epoch FROM now() - interval '21 days')::bigint ELSE u.started_at END, "
        " u.finished_at)::gateway.saga_step "
        " FROM unnest(s.steps) WITH ORDINALITY AS u(name, seq, direction, state, attempts, "
        "  response, error_code, error_reason, error_message, started_at, finished_at, ord) "
        " ORDER BY u.ord) "
        "WHERE merchant_id = $1 AND kind = 2",
        s.m);
    harness_restart(&procs[SVC_WALLET]);
    harness_restart(&procs[SVC_GATEWAY]);
    Loyalty__V1__GatewaySaga *saga = wait_saga_final(s.m, co->checkout_id, 30);
    cr_assert_eq(saga->state, S_ATTENTION, "state %d", saga->state);
    cr_assert_str_eq(saga->reason, "STEP_TOO_OLD");
    cr_assert_eq(wallet_balance(s.m, b)->held_cents, 1000, "never captured behind our back");
}
