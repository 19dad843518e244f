/* test_wallet_rules.c -- unit tests of the wallet's pure rules and in-memory ledger: spending
 * order, allocation over lots, pro-rata refund splits, the cumulative bonus forfeit and the
 * refundable amount (at, one below and one above each boundary), expiry dates across month
 * ends and leap years, hold states, input limits, and that posted transfers keep balances and
 * lots consistent. */
#include "validate.h"
#include "wallet_ledger.h"
#include "wallet_rules.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t day(int y, int m, int d) {
    return date_days_from_civil(y, m, d);
}

Test(wallet_rules, spending_order) {
    /* Goal: soonest expiry first, never-expiring last, principal before bonus on equal expiry,
     * then the older lot (smaller id). */
    wallet_lot_key_t soon_p = {100, WALLET_ACC_PRINCIPAL, "lot_b"};
    wallet_lot_key_t soon_b = {100, WALLET_ACC_BONUS, "lot_a"};
    wallet_lot_key_t late_p = {200, WALLET_ACC_PRINCIPAL, "lot_a"};
    wallet_lot_key_t never_p = {0, WALLET_ACC_PRINCIPAL, "lot_0"};
    wallet_lot_key_t never_b = {0, WALLET_ACC_BONUS, "lot_0"};
    wallet_lot_key_t soon_p_older = {100, WALLET_ACC_PRINCIPAL, "lot_a"};
    cr_assert_lt(wallet_lot_order_cmp(&soon_p, &soon_b), 0, "principal before bonus");
    cr_assert_gt(wallet_lot_order_cmp(&soon_b, &soon_p), 0);
    cr_assert_lt(wallet_lot_order_cmp(&soon_b, &late_p), 0, "expiry beats kind");
    cr_assert_lt(wallet_lot_order_cmp(&late_p, &never_p), 0, "never-expiring last");
    cr_assert_gt(wallet_lot_order_cmp(&never_p, &soon_b), 0);
    cr_assert_lt(wallet_lot_order_cmp(&never_p, &never_b), 0);
    cr_assert_lt(wallet_lot_order_cmp(&soon_p_older, &soon_p), 0, "older lot first");
    cr_assert_eq(wallet_lot_order_cmp(&soon_p, &soon_p), 0);
}

Test(wallet_rules, take_in_order) {
    /* Goal: amounts are taken lot by lot in the given order; short funds take nothing. */
    int64_t avail[] = {100, 0, 50, 200};
    int64_t parts[4] = {-1, -1, -1, -1};
    cr_assert(wallet_take_in_order(avail, 4, 120, parts));
    cr_assert(parts[0] == 100 && parts[1] == 0 && parts[2] == 20 && parts[3] == 0);
    cr_assert(wallet_take_in_order(avail, 4, 350, parts), "exactly everything");
    cr_assert(parts[0] == 100 && parts[2] == 50 && parts[3] == 200);
    int64_t before[4] = {7, 7, 7, 7};
    memcpy(parts, before, sizeof parts);
    cr_assert_not(wallet_take_in_order(avail, 4, 351, parts), "one cent short");
    cr_assert_eq(memcmp(parts, before, sizeof parts), 0, "untouched on failure");
    cr_assert(wallet_take_in_order(avail, 4, 0, parts));
    cr_assert(parts[0] == 0 && parts[3] == 0);
    int64_t neg[] = {10, -1};
    cr_assert_not(wallet_take_in_order(neg, 2, 5, parts));
    cr_assert_not(wallet_take_in_order(avail, 4, -1, parts));
}

Test(wallet_rules, split_pro_rata_is_exact) {
    /* Goal: refunds split pro rata to what each lot may still take back, floors plus the
     * leftover cents to the largest remainders; parts sum exactly and never pass a lot. */
    int64_t parts[3];
    int64_t rem[] = {1000, 100};
    cr_assert(wallet_split_pro_rata(rem, 2, 100, parts));
    cr_assert(parts[0] == 91 && parts[1] == 9, "90.91 / 9.09 -> 91 / 9");
    cr_assert(wallet_split_pro_rata(rem, 2, 550, parts));
    cr_assert(parts[0] == 500 && parts[1] == 50);
    cr_assert(wallet_split_pro_rata(rem, 2, 1100, parts), "at the total");
    cr_assert(parts[0] == 1000 && parts[1] == 100);
    cr_assert_not(wallet_split_pro_rata(rem, 2, 1101, parts), "one above the total");
    cr_assert_not(wallet_split_pro_rata(rem, 2, 0, parts));
    int64_t three[] = {1, 1, 1};
    cr_assert(wallet_split_pro_rata(three, 3, 2, parts));
    cr_assert(parts[0] == 1 && parts[1] == 1 && parts[2] == 0, "ties to the earliest");
    int64_t with_zero[] = {0, 3, 0};
    cr_assert(wallet_split_pro_rata(with_zero, 3, 2, parts));
    cr_assert(parts[0] == 0 && parts[1] == 2 && parts[2] == 0);
    /* Exhaustive small cases: sum exact, each part within its lot. */
    for (int64_t a = 0; a <= 7; a++) {
        for (int64_t b = 0; b <= 7; b++) {
            int64_t w[] = {a, b, 3};
            for (int64_t amt = 1; amt <= a + b + 3; amt++) {
                cr_assert(wallet_split_pro_rata(w, 3, amt, parts));
                cr_assert_eq(parts[0] + parts[1] + parts[2], amt);
                cr_assert(parts[0] <= a && parts[1] <= b && parts[2] <= 3);
            }
        }
    }
}

Test(wallet_rules, forfeit_is_cumulative_and_rounds_up) {
    /* Goal: after refunds totalling R of a top-up paying P with bonus B, exactly ceil(B*R/P)
     * has been forfeited, whatever the steps; a full refund forfeits exactly B. */
    int64_t f = 0;
    cr_assert(wallet_forfeit_cents(1000, 100, 0, 505, &f));
    cr_assert_eq(f, 51, "50.5 rounds up");
    cr_assert(wallet_forfeit_cents(1000, 100, 505, 195, &f));
    cr_assert_eq(f, 19, "ceil(70) - ceil(50.5)");
    cr_assert(wallet_forfeit_cents(1000, 100, 0, 10, &f));
    cr_assert_eq(f, 1, "exactly 1.0");
    cr_assert(wallet_forfeit_cents(1000, 100, 0, 9, &f));
    cr_assert_eq(f, 1, "0.9 rounds up");
    cr_assert(wallet_forfeit_cents(1000, 100, 0, 11, &f));
    cr_assert_eq(f, 2, "1.1 rounds up");
    cr_assert(wallet_forfeit_cents(1000, 0, 0, 1000, &f));
    cr_assert_eq(f, 0, "no bonus, nothing to forfeit");
    cr_assert_not(wallet_forfeit_cents(1000, 100, 500, 501, &f), "past what was paid");
    cr_assert_not(wallet_forfeit_cents(0, 100, 0, 0, &f));
    cr_assert_not(wallet_forfeit_cents(1000, 100, -1, 1, &f));
    /* Any sequence of partial refunds: running total = ceil(B * R / P), full refund = B. */
    const int64_t paid = 997, bonus = 113;
    int64_t refunded = 0, forfeited = 0;
    unsigned seed = 7;
    while (refunded < paid) {
        int64_t step = 1 + (int64_t)(rand_r(&seed) % 60);
        if (step > paid - refunded) {
            step = paid - refunded;
        }
        cr_assert(wallet_forfeit_cents(paid, bonus, refunded, step, &f));
        refunded += step;
        forfeited += f;
        cr_assert_eq(forfeited, (bonus * refunded + paid - 1) / paid);
    }
    cr_assert_eq(forfeited, bonus);
}

Test(wallet_rules, top_up_refundable_boundaries) {
    /* Goal: the largest refund RefundTopUp accepts: capped by paid - refunded, by unspent
     * principal, and by the bonus left to forfeit; the forfeit of that amount fits and one
     * cent more does not. */
    cr_assert_eq(wallet_top_up_refundable(1000, 100, 0, 1000, 100), 1000);
    cr_assert_eq(wallet_top_up_refundable(1000, 100, 0, 700, 100), 700, "principal spent");
    cr_assert_eq(wallet_top_up_refundable(1000, 100, 0, 91, 9), 90, "bonus spent");
    cr_assert_eq(wallet_top_up_refundable(1000, 100, 505, 195, 49), 195);
    cr_assert_eq(wallet_top_up_refundable(1000, 100, 900, 5000, 100), 100, "paid - refunded");
    cr_assert_eq(wallet_top_up_refundable(1000, 0, 0, 300, 0), 300, "no bonus");
    cr_assert_eq(wallet_top_up_refundable(1000, 100, 0, 0, 100), 0);
    cr_assert_eq(wallet_top_up_refundable(1000, 100, 0, 500, 0), 0, "no bonus left at all");
    for (int64_t bav = 0; bav <= 100; bav++) {
        for (int64_t before = 0; before <= 1000; before += 97) {
            int64_t r = wallet_top_up_refundable(1000, 100, before, 1000 - before, bav);
            int64_t f = 0;
            if (r > 0) {
                cr_assert(wallet_forfeit_cents(1000, 100, before, r, &f));
                cr_assert_leq(f, bav, "the refundable amount's forfeit fits");
            }
            if (r < 1000 - before) {
                cr_assert(wallet_forfeit_cents(1000, 100, before, r + 1, &f));
                cr_assert_gt(f, bav, "one cent more would not fit");
            }
        }
    }
}

Test(wallet_rules, expiry_last_day_clamps_months) {
    /* Goal: N calendar months later on the same day, clamped to shorter months, across years
     * and leap years. */
    cr_assert_eq(wallet_expiry_last_day(day(2024, 1, 31), 1), day(2024, 2, 29), "leap year");
    cr_assert_eq(wallet_expiry_last_day(day(2023, 1, 31), 1), day(2023, 2, 28));
    cr_assert_eq(wallet_expiry_last_day(day(2024, 1, 30), 1), day(2024, 2, 29));
    cr_assert_eq(wallet_expiry_last_day(day(2024, 1, 29), 1), day(2024, 2, 29));
    cr_assert_eq(wallet_expiry_last_day(day(2024, 1, 28), 1), day(2024, 2, 28));
    cr_assert_eq(wallet_expiry_last_day(day(2024, 3, 31), 1), day(2024, 4, 30));
    cr_assert_eq(wallet_expiry_last_day(day(2024, 11, 15), 2), day(2025, 1, 15), "year wrap");
    cr_assert_eq(wallet_expiry_last_day(day(2024, 12, 31), 1), day(2025, 1, 31));
    cr_assert_eq(wallet_expiry_last_day(day(2024, 2, 29), 12), day(2025, 2, 28));
    cr_assert_eq(wallet_expiry_last_day(day(2024, 2, 29), 48), day(2028, 2, 29));
    cr_assert_eq(wallet_expiry_last_day(day(2024, 5, 17), 120), day(2034, 5, 17));
    cr_assert_eq(wallet_expiry_last_day(day(1999, 12, 31), 2), day(2000, 2, 29));
}

Test(wallet_rules, hold_states_and_capture_checks) {
    /* Goal: a pending hold expires at its expiry instant (not one second later); capture
     * refusals carry their reasons; the held amount is capturable, one cent more is not. */
    cr_assert_eq(wallet_hold_effective_state(WALLET_HOLD_PENDING, 100, 99), WALLET_HOLD_PENDING);
    cr_assert_eq(wallet_hold_effective_state(WALLET_HOLD_PENDING, 100, 100), WALLET_HOLD_EXPIRED);
    cr_assert_eq(wallet_hold_effective_state(WALLET_HOLD_CAPTURED, 100, 500), WALLET_HOLD_CAPTURED);
    cr_assert_eq(wallet_hold_effective_state(WALLET_HOLD_VOIDED, 100, 500), WALLET_HOLD_VOIDED);
    cr_assert_eq(wallet_check_capture(WALLET_HOLD_PENDING, 100, 99, 50, 50).code, STATUS_OK);
    status_t st = wallet_check_capture(WALLET_HOLD_PENDING, 100, 99, 50, 51);
    cr_assert_str_eq(st.reason, "CAPTURE_EXCEEDS_HOLD");
    cr_assert_eq(st.code, STATUS_FAILED_PRECONDITION);
    cr_assert_str_eq(wallet_check_capture(WALLET_HOLD_PENDING, 100, 100, 50, 1).reason,
                     "HOLD_EXPIRED");
    cr_assert_str_eq(wallet_check_capture(WALLET_HOLD_EXPIRED, 100, 10, 50, 1).reason,
                     "HOLD_EXPIRED");
    cr_assert_str_eq(wallet_check_capture(WALLET_HOLD_VOIDED, 100, 10, 50, 1).reason,
                     "HOLD_VOIDED");
    cr_assert_str_eq(wallet_check_capture(WALLET_HOLD_CAPTURED, 100, 10, 50, 1).reason,
                     "HOLD_ALREADY_CAPTURED");
}

Test(wallet_rules, input_limits) {
    /* Goal: every limit accepts its maximum and refuses one above. */
    cr_assert_eq(wallet_check_amount("amount_cents", 1).code, STATUS_OK);
    cr_assert_eq(wallet_check_amount("amount_cents", WALLET_AMOUNT_MAX).code, STATUS_OK);
    cr_assert_str_eq(wallet_check_amount("amount_cents", WALLET_AMOUNT_MAX + 1).reason,
                     "INVALID_AMOUNT_CENTS");
    cr_assert_str_eq(wallet_check_amount("amount_cents", 0).reason, "INVALID_AMOUNT_CENTS");
    int64_t ttl = 0;
    cr_assert_eq(wallet_hold_ttl(0, &ttl).code, STATUS_OK);
    cr_assert_eq(ttl, WALLET_HOLD_TTL_DEFAULT_S);
    cr_assert_eq(wallet_hold_ttl(WALLET_HOLD_TTL_MAX_S, &ttl).code, STATUS_OK);
    cr_assert_eq(ttl, WALLET_HOLD_TTL_MAX_S);
    cr_assert_str_eq(wallet_hold_ttl(WALLET_HOLD_TTL_MAX_S + 1, &ttl).reason, "INVALID_TTL_S");
    cr_assert_str_eq(wallet_hold_ttl(-1, &ttl).reason, "INVALID_TTL_S");
    cr_assert_eq(wallet_check_plan("P", 100, 1000, true, 120, 10, 0).code, STATUS_OK);
    cr_assert_str_eq(wallet_check_plan("P", 100, 1001, true, 1, 10, 0).reason,
                     "INVALID_BONUS_CENTS");
    cr_assert_str_eq(wallet_check_plan("P", 100, 0, true, 121, 10, 0).reason,
                     "INVALID_EXPIRY_MONTHS");
    cr_assert_str_eq(wallet_check_plan("P", 100, 0, true, -1, 10, 0).reason,
                     "INVALID_EXPIRY_MONTHS");
    cr_assert_eq(wallet_check_plan("P", 100, 0, false, -1, 10, 0).code, STATUS_OK,
                 "no expiry given: months ignored");
    cr_assert_str_eq(wallet_check_plan("P", 100, 0, false, 0, 10, 10).reason,
                     "INVALID_ACTIVE_UNTIL_AT");
    cr_assert_eq(wallet_check_plan("P", 100, 0, false, 0, 10, 11).code, STATUS_OK);
    cr_assert_str_eq(wallet_check_plan("", 100, 0, false, 0, 10, 0).reason, "INVALID_NAME");
    cr_assert_str_eq(wallet_check_plan("P", 0, 0, false, 0, 10, 0).reason, "INVALID_PAY_CENTS");
    cr_assert(wallet_plan_active(true, 10, 20, 10), "from is inclusive");
    cr_assert_not(wallet_plan_active(true, 10, 20, 20), "until is exclusive");
    cr_assert(wallet_plan_active(true, 10, 20, 19));
    cr_assert_not(wallet_plan_active(true, 10, 20, 9));
    cr_assert(wallet_plan_active(true, 10, 0, 1000000), "open-ended");
    cr_assert_not(wallet_plan_active(false, 10, 0, 11));
    cr_assert_str_eq(wallet_check_member_id("m 1").reason, "INVALID_MEMBER_ID");
}

Test(wallet_rules, shards_are_stable_and_in_range) {
    /* Goal: a member always maps to the same shard, within range, and members spread out. */
    int seen[WALLET_SHARDS] = {0};
    for (int i = 0; i < 1000; i++) {
        char id[32];
        snprintf(id, sizeof id, "mbr_%d", i);
        int s = wallet_shard(id);
        cr_assert(s >= 0 && s < WALLET_SHARDS);
        cr_assert_eq(s, wallet_shard(id));
        seen[s]++;
    }
    for (int s = 0; s < WALLET_SHARDS; s++) {
        cr_assert_gt(seen[s], 20, "shard %d got %d of 1000", s, seen[s]);
    }
}

/* ---- the in-memory ledger ---- */

static arena_t a;
static void ledger_setup(void) {
    arena_init(&a);
}
static void ledger_teardown(void) {
    arena_free(&a);
}
TestSuite(wallet_ledger_memory, .init = ledger_setup, .fini = ledger_teardown);

Test(wallet_ledger_memory, top_up_hold_capture_keeps_balances) {
    /* Goal: posting a top-up, a hold and a partial capture moves the member's accounts, its
     * lots and the merchant accounts exactly, every transfer balanced, and the merchant
     * changes come out in (code, shard) order. */
    wallet_tx_t tx;
    wallet_tx_init(&tx, &a, 1000);
    wallet_member_t *m = wallet_tx_member(&tx, "m1");
    m->exists = true;
    wallet_lot_t *p = wallet_tx_new_lot(&tx, m, WALLET_ACC_PRINCIPAL, WALLET_ORIGIN_TOP_UP, "t", 0);
    wallet_lot_t *b = wallet_tx_new_lot(&tx, m, WALLET_ACC_BONUS, WALLET_ORIGIN_TOP_UP, "t", 0);
    wallet_xfer_begin(&tx, WALLET_XFER_TOP_UP, m);
    wallet_post_merchant(&tx, m, WALLET_ACC_TOP_UP_FUNDING, true, false, 1000);
    wallet_post_member(&tx, m, WALLET_ACC_PRINCIPAL, p, false, false, 1000);
    wallet_post_merchant(&tx, m, WALLET_ACC_BONUS_EXPENSE, true, false, 100);
    wallet_post_member(&tx, m, WALLET_ACC_BONUS, b, false, false, 100);
    wallet_xfer_end(&tx, 0);
    cr_assert_eq(tx.xfers[0].amount_cents, 1100);
    cr_assert_eq(tx.xfers[0].balance_after_cents, 1100);
    cr_assert_eq(wallet_member_available(m), 1100);

    wallet_xfer_t *hold = wallet_xfer_begin(&tx, WALLET_XFER_HOLD, m);
    (void)hold;
    wallet_post_member(&tx, m, WALLET_ACC_PRINCIPAL, p, true, true, 600);
    wallet_post_merchant(&tx, m, WALLET_ACC_REDEEMED_PRINCIPAL, false, true, 600);
    wallet_xfer_end(&tx, 600);
    cr_assert_eq(wallet_member_available(m), 500);
    cr_assert_eq(wallet_member_held(m), 600);
    cr_assert_eq(wallet_member_balance(m), 1100, "held money is still the member's");
    cr_assert_eq(p->held_cents, 600);
    cr_assert_eq(wallet_lot_available(p), 400);

    wallet_xfer_begin(&tx, WALLET_XFER_CAPTURE, m);
    wallet_release_pending(&tx, m, WALLET_ACC_PRINCIPAL, p, WALLET_ACC_REDEEMED_PRINCIPAL, 600);
    wallet_post_member(&tx, m, WALLET_ACC_PRINCIPAL, p, true, false, 450);
    wallet_post_merchant(&tx, m, WALLET_ACC_REDEEMED_PRINCIPAL, false, false, 450);
    wallet_xfer_end(&tx, -600);
    cr_assert_eq(wallet_member_available(m), 650);
    cr_assert_eq(wallet_member_held(m), 0);
    cr_assert_eq(p->debited_cents, 450);
    cr_assert_eq(p->held_cents, 0);
    cr_assert_eq(tx.xfers[2].balance_after_cents, 650);
    cr_assert(wallet_tx_balanced(&tx));

    wallet_merchant_delta_t d[WALLET_MERCHANT_CODES * WALLET_SHARDS];
    int n = wallet_tx_merchant_deltas(&tx, d);
    cr_assert_eq(n, 3);
    cr_assert_eq(d[0].code, WALLET_ACC_TOP_UP_FUNDING);
    cr_assert_eq(d[0].delta.debits_posted, 1000);
    cr_assert_eq(d[1].code, WALLET_ACC_BONUS_EXPENSE);
    cr_assert_eq(d[2].code, WALLET_ACC_REDEEMED_PRINCIPAL);
    cr_assert_eq(d[2].delta.credits_posted, 450);
    cr_assert_eq(d[2].delta.credits_pending, 0, "pending credit made and released");
    cr_assert_eq(d[2].shard, wallet_shard("m1"));

    /* The sum over members mirrors the merchant accounts, as the report relies on. */
    int64_t liability = d[0].delta.debits_posted - d[2].delta.credits_posted;
    cr_assert_eq(liability, m->acc[0].credits_posted - m->acc[0].debits_posted);
}

Test(wallet_ledger_memory, merchant_totals_of_several_transactions_add_up) {
    /* Goal: a merged batch's sum (wallet_tx_add_merchant) has, per (code, shard), the sum of
     * each transaction's four columns, and only the rows some transaction touched. */
    wallet_tx_t t1, t2, sum;
    wallet_tx_init(&t1, &a, 1000);
    wallet_tx_init(&t2, &a, 1000);
    wallet_tx_init(&sum, NULL, 0);
    const char *ids[] = {"m1", "m2"};
    wallet_tx_t *txs[] = {&t1, &t2};
    for (int i = 0; i < 2; i++) {
        wallet_member_t *m = wallet_tx_member(txs[i], ids[i]);
        wallet_lot_t *p =
            wallet_tx_new_lot(txs[i], m, WALLET_ACC_PRINCIPAL, WALLET_ORIGIN_TOP_UP, "", 0);
        wallet_xfer_begin(txs[i], WALLET_XFER_TOP_UP, m);
        wallet_post_merchant(txs[i], m, WALLET_ACC_TOP_UP_FUNDING, true, false, 100 * (i + 1));
        wallet_post_member(txs[i], m, WALLET_ACC_PRINCIPAL, p, false, false, 100 * (i + 1));
        wallet_xfer_end(txs[i], 0);
        wallet_tx_add_merchant(&sum, txs[i]);
    }
    wallet_tx_add_merchant(&sum, &t1); /* t1 twice: its figures count twice */
    wallet_merchant_delta_t d[WALLET_MERCHANT_CODES * WALLET_SHARDS];
    int n = wallet_tx_merchant_deltas(&sum, d);
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        cr_assert_eq(d[i].code, WALLET_ACC_TOP_UP_FUNDING);
        total += d[i].delta.debits_posted;
        cr_assert_eq(
            d[i].delta.credits_posted + d[i].delta.debits_pending + d[i].delta.credits_pending, 0);
    }
    cr_assert_eq(total, 100 + 200 + 100);
    cr_assert_eq(n, wallet_shard("m1") == wallet_shard("m2") ? 1 : 2);
}

Test(wallet_ledger_memory, merchant_deltas_sorted_across_shards) {
    /* Goal: merchant-account changes of several members come out sorted by code, then shard,
     * the order every transaction locks them in. */
    wallet_tx_t tx;
    wallet_tx_init(&tx, &a, 1000);
    const char *ids[] = {"a", "b", "c", "d", "e", "f"};
    for (int i = 0; i < 6; i++) {
        wallet_member_t *m = wallet_tx_member(&tx, ids[i]);
        wallet_lot_t *p =
            wallet_tx_new_lot(&tx, m, WALLET_ACC_PRINCIPAL, WALLET_ORIGIN_TOP_UP, "", 0);
        wallet_xfer_begin(&tx, WALLET_XFER_TOP_UP, m);
        wallet_post_merchant(&tx, m, i % 2 ? WALLET_ACC_TOP_UP_FUNDING : WALLET_ACC_BONUS_EXPENSE,
                             true, false, 10);
        wallet_post_member(&tx, m, WALLET_ACC_PRINCIPAL, p, false, false, 10);
        wallet_xfer_end(&tx, 0);
    }
    wallet_merchant_delta_t d[WALLET_MERCHANT_CODES * WALLET_SHARDS];
    int n = wallet_tx_merchant_deltas(&tx, d);
    cr_assert_gt(n, 1);
    for (int i = 1; i < n; i++) {
        cr_assert(d[i - 1].code < d[i].code ||
                  (d[i - 1].code == d[i].code && d[i - 1].shard < d[i].shard));
    }
    wallet_lot_t *found = wallet_tx_find_lot(&tx, tx.lots[3]->id);
    cr_assert_eq(found, tx.lots[3]);
    cr_assert_null(wallet_tx_find_lot(&tx, "lot_missing"));
}
