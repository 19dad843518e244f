/* test_gateway_rules.c -- unit tests of the gateway's pure rules: the wallet amount, the
 * checkout's payment choice, the earn base, the refund split (pro rata, cumulative shares, exact
 * totals), line refunds, referral claw-back shares, error classes, backoff and failpoints. */
#include "gateway_rules.h"

#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

Test(gateway_rules, wallet_choice) {
    /* Goal: min(asked, due), or min(available, due) with use_max, never negative. */
    cr_assert_eq(gw_choose_wallet(1000, false, 0, 5000), 1000);
    cr_assert_eq(gw_choose_wallet(5000, false, 0, 5000), 5000, "at the due amount");
    cr_assert_eq(gw_choose_wallet(5001, false, 0, 5000), 5000, "one above");
    cr_assert_eq(gw_choose_wallet(0, true, 700, 5000), 700);
    cr_assert_eq(gw_choose_wallet(0, true, 7000, 5000), 5000);
    cr_assert_eq(gw_choose_wallet(100, false, 0, 0), 0, "nothing due");
    cr_assert_eq(gw_choose_wallet(100, false, 0, -5), 0);
}

Test(gateway_rules, payment_choice) {
    /* Goal: the quoted points with their cash value capped at the total, the wallet for what they
     * leave due, and nothing that was not asked for. */
    gw_payment_ask_t ask = {.total_cents = 5000, .redeem_points = 300, .wallet_cents = 1000};
    gw_payment_quote_t quote = {.points = 300, .points_cash_cents = 3000};
    gw_payment_split_t pay = gw_choose_payment(&ask, &quote);
    cr_assert_eq(pay.points, 300);
    cr_assert_eq(pay.points_cash_cents, 3000);
    cr_assert_eq(pay.wallet_cents, 1000);

    ask.wallet_cents = 2001; /* one above what the points leave due */
    pay = gw_choose_payment(&ask, &quote);
    cr_assert_eq(pay.wallet_cents, 2000, "the wallet pays at most what is due");

    quote.points_cash_cents = 5001; /* a quote above the total is never paid */
    pay = gw_choose_payment(&ask, &quote);
    cr_assert_eq(pay.points_cash_cents, 5000);
    cr_assert_eq(pay.wallet_cents, 0, "nothing left due");

    ask = (gw_payment_ask_t){.total_cents = 5000, .use_max_wallet = true};
    quote = (gw_payment_quote_t){
        .points = 999, .points_cash_cents = 999, .wallet_available_cents = 700};
    pay = gw_choose_payment(&ask, &quote);
    cr_assert_eq(pay.points, 0, "points not asked for are not used");
    cr_assert_eq(pay.points_cash_cents, 0);
    cr_assert_eq(pay.wallet_cents, 700, "use_max takes the available balance");

    ask = (gw_payment_ask_t){.total_cents = 0, .use_max_points = true, .wallet_cents = 10};
    cr_assert(!gw_payment_wants_points(&ask), "nothing to pay: no points");
    cr_assert(gw_payment_wants_wallet(&ask));
    pay = gw_choose_payment(&ask, &quote);
    cr_assert_eq(pay.points, 0);
    cr_assert_eq(pay.wallet_cents, 0, "nothing due");

    ask = (gw_payment_ask_t){.total_cents = 100};
    cr_assert(!gw_payment_wants_points(&ask));
    cr_assert(!gw_payment_wants_wallet(&ask));
}

Test(gateway_rules, earn_base_excludes_top_up_lines) {
    cr_assert_eq(gw_earn_base(3000, 2000, 0), 5000);
    cr_assert_eq(gw_earn_base(3000, 2000, 1500), 3500);
    cr_assert_eq(gw_earn_base(0, 1000, 1500), 0, "never negative");
}

static gw_order_figures_t order(int64_t pc, int64_t w, int64_t e, int64_t spend) {
    gw_order_figures_t o = {0};
    o.points_cash_cents = pc;
    o.wallet_cents = w;
    o.external_cents = e;
    o.total_cents = pc + w + e;
    o.refundable_cents = o.total_cents;
    o.spend_cents = spend;
    return o;
}

static void apply(gw_order_figures_t *o, int64_t amount, const gw_refund_split_t *s) {
    o->refunded_cents += amount;
    o->refunded_points_cash_cents += s->points_cash_cents;
    o->refunded_wallet_cents += s->wallet_cents;
    o->refunded_external_cents += s->external_cents;
    o->refunded_share_bps += s->share_bps;
    o->refunded_spend_cents += s->spend_cents;
}

Test(gateway_rules, refund_half_then_the_rest) {
    /* Goal: 10000 = 2000 points cash + 3000 wallet + 5000 external; half back, then the rest:
     * every part, share and spend is exact and the two refunds add up to the order. */
    gw_order_figures_t o = order(2000, 3000, 5000, 8000);
    gw_refund_split_t s;
    status_t st = gw_refund_split(&o, 5000, &s);
    cr_assert_eq(st.code, STATUS_OK);
    cr_assert_eq(s.points_cash_cents, 1000);
    cr_assert_eq(s.wallet_cents, 1500);
    cr_assert_eq(s.external_cents, 2500);
    cr_assert_eq(s.share_bps, 5000);
    cr_assert_eq(s.share_bps_total, 5000);
    cr_assert_eq(s.spend_cents, 4000);
    apply(&o, 5000, &s);
    st = gw_refund_split(&o, 5000, &s);
    cr_assert_eq(st.code, STATUS_OK);
    cr_assert_eq(s.points_cash_cents, 1000);
    cr_assert_eq(s.wallet_cents, 1500);
    cr_assert_eq(s.external_cents, 2500);
    cr_assert_eq(s.share_bps, 5000);
    cr_assert_eq(s.share_bps_total, 10000);
    cr_assert_eq(s.spend_cents, 4000);
    apply(&o, 5000, &s);
    st = gw_refund_split(&o, 1, &s);
    cr_assert_eq(st.code, STATUS_FAILED_PRECONDITION);
    cr_assert_str_eq(st.reason, "REFUND_EXCEEDS_ORDER", "never more than the order");
}

Test(gateway_rules, refund_boundaries_and_ties) {
    gw_order_figures_t o = order(1, 1, 1, 3);
    gw_refund_split_t s;
    status_t st = gw_refund_split(&o, 1, &s);
    cr_assert_eq(st.code, STATUS_OK);
    cr_assert_eq(s.points_cash_cents, 1, "ties go to points first");
    cr_assert_eq(s.wallet_cents + s.external_cents, 0);
    cr_assert_eq(s.share_bps, 3333, "floor(1 * 10000 / 3)");
    cr_assert_eq(s.spend_cents, 1);
    st = gw_refund_split(&o, 0, &s);
    cr_assert_str_eq(st.reason, "NOTHING_TO_REFUND");
    st = gw_refund_split(&o, 3, &s);
    cr_assert_eq(st.code, STATUS_OK, "exactly the total");
    cr_assert_eq(s.share_bps, 10000);
    st = gw_refund_split(&o, 4, &s);
    cr_assert_str_eq(st.reason, "REFUND_EXCEEDS_ORDER", "one above");
    /* Lines that cannot be refunded (membership) keep the share below 100%. */
    o = order(0, 0, 10000, 10000);
    o.refundable_cents = 8000;
    st = gw_refund_split(&o, 8000, &s);
    cr_assert_eq(st.code, STATUS_OK);
    cr_assert_eq(s.share_bps, 8000);
    cr_assert_eq(s.spend_cents, 8000);
    st = gw_refund_split(&o, 8001, &s);
    cr_assert_str_eq(st.reason, "REFUND_EXCEEDS_ORDER");
}

Test(gateway_rules, random_partial_refunds_add_up_exactly) {
    /* Goal: any sequence of partial refunds up to the total returns exactly what was paid by
     * each means, 10000 bps and the whole spend; no part ever exceeds what is left of it. */
    srand(12345);
    for (int round = 0; round < 500; round++) {
        gw_order_figures_t o =
            order(rand() % 5000, rand() % 5000, rand() % 5000 + 1, rand() % 20000);
        while (o.refunded_cents < o.total_cents) {
            int64_t left = o.total_cents - o.refunded_cents;
            int64_t amount = 1 + rand() % left;
            gw_refund_split_t s;
            status_t st = gw_refund_split(&o, amount, &s);
            cr_assert_eq(st.code, STATUS_OK);
            cr_assert_eq(s.points_cash_cents + s.wallet_cents + s.external_cents, amount);
            cr_assert(s.points_cash_cents >= 0 && s.wallet_cents >= 0 && s.external_cents >= 0);
            cr_assert(s.share_bps >= 0 && s.spend_cents >= 0);
            apply(&o, amount, &s);
            cr_assert(o.refunded_points_cash_cents <= o.points_cash_cents);
            cr_assert(o.refunded_wallet_cents <= o.wallet_cents);
            cr_assert(o.refunded_external_cents <= o.external_cents);
        }
        cr_assert_eq(o.refunded_points_cash_cents, o.points_cash_cents);
        cr_assert_eq(o.refunded_wallet_cents, o.wallet_cents);
        cr_assert_eq(o.refunded_external_cents, o.external_cents);
        cr_assert_eq(o.refunded_share_bps, 10000);
        cr_assert_eq(o.refunded_spend_cents, o.spend_cents);
    }
}

Test(gateway_rules, line_refunds_are_cumulative_floors) {
    /* 1000 cents over 3 units: 333, 333, 334. */
    cr_assert_eq(gw_line_refund_cents(1000, 3, 0, 1), 333);
    cr_assert_eq(gw_line_refund_cents(1000, 3, 1, 1), 333);
    cr_assert_eq(gw_line_refund_cents(1000, 3, 2, 1), 334);
    cr_assert_eq(gw_line_refund_cents(1000, 3, 0, 3), 1000);
    cr_assert_eq(gw_line_refund_cents(1000, 3, 1, 2), 667);
    cr_assert_eq(gw_line_refund_cents(0, 3, 0, 3), 0);
}

Test(gateway_rules, clawback_share) {
    /* Goal: the share whose cumulative floor(granted * share / 10000) is the claw-back. */
    bool exact = false;
    cr_assert_eq(gw_clawback_share_bps(100, 33, &exact), 3300);
    cr_assert(exact);
    cr_assert_eq(gw_clawback_share_bps(7, 3, &exact), 4286);
    cr_assert(exact);
    cr_assert_eq(gw_clawback_share_bps(7, 7, &exact), 10000);
    cr_assert_eq(gw_clawback_share_bps(7, 0, &exact), 0);
    for (int64_t g = 1; g <= 10000; g += 37) {
        for (int64_t c = 0; c <= g; c += 1 + g / 50) {
            int64_t s = gw_clawback_share_bps(g, c, &exact);
            cr_assert(exact, "exact whenever granted <= 10000");
            cr_assert_eq(g * s / 10000, c);
        }
    }
    cr_assert_eq(gw_clawback_share_bps(30000, 1, &exact), 0);
    cr_assert_not(exact, "a share step is 3 points here");
    cr_assert_eq(gw_clawback_share_bps(30000, 4, &exact), 1);
    cr_assert_not(exact);
}

Test(gateway_rules, error_classes_and_backoff) {
    status_t st = status_make(STATUS_UNAVAILABLE, REASON_NONE, "down");
    cr_assert_eq(gw_classify(&st), GW_ERR_TRANSIENT);
    st = status_make(STATUS_DEADLINE_EXCEEDED, REASON_NONE, "slow");
    cr_assert_eq(gw_classify(&st), GW_ERR_TRANSIENT);
    st = status_make(STATUS_ABORTED, REASON_CONCURRENCY_CONFLICT, "retry");
    cr_assert_eq(gw_classify(&st), GW_ERR_TRANSIENT);
    st = status_make(STATUS_INTERNAL, REASON_NONE, "bug");
    cr_assert_eq(gw_classify(&st), GW_ERR_LIMITED);
    st = status_make(STATUS_FAILED_PRECONDITION, REASON_HOLD_EXPIRED, "late");
    cr_assert_eq(gw_classify(&st), GW_ERR_PERMANENT);
    st = status_make(STATUS_ALREADY_EXISTS, REASON_IDEMPOTENCY_KEY_REUSED, "bug");
    cr_assert_eq(gw_classify(&st), GW_ERR_PERMANENT);
    st = status_make(STATUS_UNIMPLEMENTED, REASON_NONE, "missing");
    cr_assert_eq(gw_classify(&st), GW_ERR_PERMANENT);
    cr_assert_eq(gw_backoff_s(0), 1);
    cr_assert_eq(gw_backoff_s(1), 1);
    cr_assert_eq(gw_backoff_s(2), 2);
    cr_assert_eq(gw_backoff_s(9), 256);
    cr_assert_eq(gw_backoff_s(10), 300, "capped");
    cr_assert_eq(gw_backoff_s(1000), 300);
    cr_assert_eq(gw_retry_delay_ms(1), 50);
    cr_assert_eq(gw_retry_delay_ms(3), 800);
    cr_assert_eq(gw_retry_delay_ms(9), 800);
}

Test(gateway_rules, failpoints) {
    gw_failpoint_t fp;
    cr_assert(gw_failpoint_parse("", &fp));
    cr_assert_eq(fp.when, GW_FAIL_NONE);
    cr_assert(gw_failpoint_parse(NULL, &fp));
    cr_assert(gw_failpoint_parse("after:promo_reserve", &fp));
    cr_assert_eq(fp.when, GW_FAIL_AFTER);
    cr_assert(gw_failpoint_matches(&fp, GW_FAIL_AFTER, "promo_reserve"));
    cr_assert_not(gw_failpoint_matches(&fp, GW_FAIL_BEFORE, "promo_reserve"));
    cr_assert_not(gw_failpoint_matches(&fp, GW_FAIL_AFTER, "promo_reserve:undo"));
    cr_assert(gw_failpoint_parse("sent:referral_grant:*", &fp));
    cr_assert(gw_failpoint_matches(&fp, GW_FAIL_SENT, "referral_grant:rwd_1"));
    cr_assert_not(gw_failpoint_matches(&fp, GW_FAIL_SENT, "referral_grants"));
    cr_assert_not(gw_failpoint_matches(&fp, GW_FAIL_SENT, "referral_compute"));
    cr_assert(gw_failpoint_parse("before:wallet_hold", &fp));
    cr_assert_eq(fp.when, GW_FAIL_BEFORE);
    cr_assert_not(gw_failpoint_parse("during:x", &fp));
    cr_assert_not(gw_failpoint_parse("after:", &fp));
}
