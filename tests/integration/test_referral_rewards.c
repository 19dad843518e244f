/* test_referral_rewards.c -- referral-svc's reward ledger over real gRPC against real
 * PostgreSQL: a 4-generation chain rewarded exactly, disabled levels, first-N purchases,
 * ComputeRewards recorded once per (event, reference) under retries and parallel calls,
 * partial and full reversals, held rewards released exactly once (also to parallel callers),
 * validation, and the ledger's counters agreeing with its rows. */
#include "referral_client.h"

#include <pthread.h>
#include <time.h>
#include <unistd.h>

static svc_proc_t svc;
static arena_t arena;
static rc_t C;

static void setup(void) {
    harness_init();
    arena_init(&arena);
}

/* The ledger's invariants for the merchant under test: counters equal the rows they count,
 * nothing reversed beyond the points or clawed back beyond what was granted, and every
 * reward's reversed total equals its reversal rows. */
static void check_ledger(const char *merchant) {
    cr_expect_eq(
        rc_sql_int("SELECT count(*) FROM (SELECT beneficiary_id, level, sum(points) p, "
                   " sum(reversed_points) r FROM referral.rewards WHERE merchant_id = $1 "
                   " AND level > 0 GROUP BY 1, 2) w FULL JOIN (SELECT member_id, level, "
                   " reward_points, reversed_points FROM referral.downline_stats "
                   " WHERE merchant_id = $1 AND (reward_points > 0 OR reversed_points > 0)) s "
                   " ON s.member_id = w.beneficiary_id AND s.level = w.level "
                   "WHERE w.p IS DISTINCT FROM s.reward_points OR w.r IS DISTINCT FROM "
                   " s.reversed_points",
                   merchant, NULL),
        0, "downline counters disagree with the reward rows");
    cr_expect_eq(rc_sql_int("SELECT count(*) FROM referral.rewards w WHERE merchant_id = $1 AND "
                            " reversed_points <> (SELECT coalesce(sum(reversed_points), 0) FROM "
                            "  referral.reward_reversals v WHERE v.merchant_id = w.merchant_id "
                            "  AND v.reward_id = w.id) OR clawed_back_points <> (SELECT "
                            "  coalesce(sum(clawback_points), 0) FROM referral.reward_reversals v "
                            "  WHERE v.merchant_id = w.merchant_id AND v.reward_id = w.id)",
                            merchant, NULL),
                 0, "reward totals disagree with their reversals");
}

static void teardown(void) {
    if (svc.pid > 0) {
        check_ledger(C.merchant);
        cr_expect_eq(harness_stop(&svc), 0, "referral-svc did not exit cleanly; see %s",
                     svc.log_path);
    }
    arena_free(&arena);
    harness_fini();
}

TestSuite(referral_rewards, .init = setup, .fini = teardown, .timeout = 180);

/* Starts the service with a fresh merchant running `prog` (the standard one when NULL). */
static void start(const char *prefix, rc_program_t *prog) {
    harness_start(&svc, "referral-svc", NULL);
    C = (rc_t){.addr = svc.addr, .merchant = harness_merchant(prefix), .arena = &arena};
    rc_program_t std;
    if (prog == NULL) {
        rc_program_init(&std);
        prog = &std;
    }
    assert_status(rc_set_program(&C, &prog->p, NULL), STATUS_OK, "");
}

/* a <- b <- c <- d: a refers b, b refers c, c refers d. */
static void chain(void) {
    rc_link(&C, "mbr_b", "mbr_a");
    rc_link(&C, "mbr_c", "mbr_b");
    rc_link(&C, "mbr_d", "mbr_c");
}

/* Asserts that `who` got exactly `points` in the list, GRANTED at once, at `level`. */
static void expect_reward(Loyalty__V1__ReferralReward *const *rewards, size_t n, const char *who,
                          int level, int64_t points) {
    Loyalty__V1__ReferralReward *w = rc_reward_of(rewards, n, who);
    cr_assert_not_null(w, "%s has no reward", who);
    cr_assert_eq(w->level, level, "%s level", who);
    cr_assert_eq(w->points, points, "%s points %lld", who, (long long)w->points);
    cr_assert(w->grant_now);
    cr_assert_eq(w->state, ST_GRANTED);
    cr_assert_eq(w->granted_points, points);
    cr_assert_eq(w->held_until_at, 0);
}

Test(referral_rewards, four_generation_chain_rewards_exactly_three_ancestors) {
    /* Goal: d's registration gives d the welcome and c, b, a their registration points; d's
     * purchase of 123.45 rewards exactly c (5% = 617.25, capped at 300), b (fixed 20) and
     * a (1% = 123.45, rounded down to 123); b's purchase rewards only a. */
    start("chain", NULL);
    chain();
    Loyalty__V1__ReferralComputeRewardsResponse *r = NULL;
    assert_status(rc_compute(&C, EV_REG, "mbr_d", 0, "reg-d", &r), STATUS_OK, "");
    cr_assert_eq(r->n_rewards, 4);
    expect_reward(r->rewards, r->n_rewards, "mbr_d", 0, 50);
    expect_reward(r->rewards, r->n_rewards, "mbr_c", 1, 100);
    expect_reward(r->rewards, r->n_rewards, "mbr_b", 2, 30);
    expect_reward(r->rewards, r->n_rewards, "mbr_a", 3, 10);
    cr_assert_eq(r->rewards[0]->rule,
                 LOYALTY__V1__REFERRAL_REWARD_RULE__REFERRAL_REWARD_RULE_WELCOME);
    cr_assert_eq(r->purchase_number, 0);

    assert_status(rc_compute(&C, EV_BUY, "mbr_d", 12345, "order-1", &r), STATUS_OK, "");
    cr_assert_eq(r->n_rewards, 3, "exactly three ancestors");
    cr_assert_eq(r->purchase_number, 1);
    expect_reward(r->rewards, r->n_rewards, "mbr_c", 1, 300);
    expect_reward(r->rewards, r->n_rewards, "mbr_b", 2, 20);
    expect_reward(r->rewards, r->n_rewards, "mbr_a", 3, 123);
    Loyalty__V1__ReferralReward *c = rc_reward_of(r->rewards, r->n_rewards, "mbr_c");
    cr_assert(c->capped);
    cr_assert_eq(c->base_cents, 12345);
    cr_assert_eq(c->rule_bps, 500);
    cr_assert_eq(c->rule, LOYALTY__V1__REFERRAL_REWARD_RULE__REFERRAL_REWARD_RULE_PURCHASE_BPS);
    cr_assert_str_eq(c->source_member_id, "mbr_d");
    cr_assert_str_eq(c->reference, "order-1");
    cr_assert_eq(c->event, EV_BUY);
    cr_assert_null(rc_reward_of(r->rewards, r->n_rewards, "mbr_d"), "no welcome on purchases");

    assert_status(rc_compute(&C, EV_BUY, "mbr_b", 1999, "order-2", &r), STATUS_OK, "");
    cr_assert_eq(r->n_rewards, 1);
    expect_reward(r->rewards, r->n_rewards, "mbr_a", 1, 99); /* 99.95 -> 99 */
    /* The root has no referrer: its purchases reward nobody, but are recorded. */
    assert_status(rc_compute(&C, EV_BUY, "mbr_a", 50000, "order-3", &r), STATUS_OK, "");
    cr_assert_eq(r->n_rewards, 0);
    cr_assert_eq(r->purchase_number, 0);
    cr_assert_eq(rc_sql_int("SELECT count(*) FROM referral.reward_events WHERE merchant_id = $1",
                            C.merchant, NULL),
                 4);
}

Test(referral_rewards, disabled_level_gives_nothing) {
    /* Goal: with level 2 disabled, d's purchase rewards c and a but not b; with one level,
     * only c; with the programme off, nobody (and the event is still recorded once). */
    rc_program_t prog;
    rc_program_init(&prog);
    prog.r[1].enabled = false;
    start("disabled", &prog);
    chain();
    Loyalty__V1__ReferralComputeRewardsResponse *r = NULL;
    assert_status(rc_compute(&C, EV_BUY, "mbr_d", 10000, "o1", &r), STATUS_OK, "");
    cr_assert_eq(r->n_rewards, 2);
    expect_reward(r->rewards, r->n_rewards, "mbr_c", 1, 300);
    expect_reward(r->rewards, r->n_rewards, "mbr_a", 3, 100);
    cr_assert_null(rc_reward_of(r->rewards, r->n_rewards, "mbr_b"));

    rc_program_init(&prog);
    prog.p.levels = 1;
    prog.p.n_level_rules = 1;
    assert_status(rc_set_program(&C, &prog.p, NULL), STATUS_OK, "");
    assert_status(rc_compute(&C, EV_BUY, "mbr_d", 10000, "o2", &r), STATUS_OK, "");
    cr_assert_eq(r->n_rewards, 1);
    expect_reward(r->rewards, r->n_rewards, "mbr_c", 1, 300);

    prog.p.enabled = false;
    assert_status(rc_set_program(&C, &prog.p, NULL), STATUS_OK, "");
    assert_status(rc_compute(&C, EV_BUY, "mbr_d", 10000, "o3", &r), STATUS_OK, "");
    cr_assert_eq(r->n_rewards, 0);
    prog.p.enabled = true;
    assert_status(rc_set_program(&C, &prog.p, NULL), STATUS_OK, "");
    assert_status(rc_compute(&C, EV_BUY, "mbr_d", 10000, "o3", &r), STATUS_OK, "");
    cr_assert_eq(r->n_rewards, 0, "a retry returns what was recorded, whatever changed since");
}

Test(referral_rewards, first_n_purchases_and_joining_window) {
    /* Goal: with level 1 limited to the first 2 purchases, the third rewards only level 2;
     * once the joining window of level 2 has passed, nothing. Purchase numbers count up. */
    rc_program_t prog;
    rc_program_init(&prog);
    prog.r[0].purchase_first_n = 2;
    prog.r[1].purchase_within_days = 30;
    start("firstn", &prog);
    chain();
    Loyalty__V1__ReferralComputeRewardsResponse *r = NULL;
    for (int i = 1; i <= 3; i++) {
        char ref[16];
        snprintf(ref, sizeof ref, "o%d", i);
        assert_status(rc_compute(&C, EV_BUY, "mbr_d", 2000, ref, &r), STATUS_OK, "");
        cr_assert_eq(r->purchase_number, i);
        cr_assert_eq(r->n_rewards, i <= 2 ? 3 : 2, "purchase %d", i);
    }
    cr_assert_null(rc_reward_of(r->rewards, r->n_rewards, "mbr_c"));
    /* Move d's attachment 30 days back: the window of level 2 is over. */
    rc_sql_exec("UPDATE referral.referral_members SET attached_at = attached_at - "
                "interval '30 days' WHERE merchant_id = $1 AND member_id = $2",
                C.merchant, "mbr_d");
    assert_status(rc_compute(&C, EV_BUY, "mbr_d", 2000, "o4", &r), STATUS_OK, "");
    cr_assert_eq(r->n_rewards, 1);
    expect_reward(r->rewards, r->n_rewards, "mbr_a", 3, 20);
}

typedef struct compute_arg {
    const char *addr, *merchant, *key;
    status_t st;
    char ids[4][64];
    size_t n;
} compute_arg_t;

static void *compute_main(void *p) {
    compute_arg_t *a = p;
    arena_t ar;
    arena_init(&ar);
    rc_t c = {.addr = a->addr, .merchant = a->merchant, .arena = &ar};
    Loyalty__V1__ReferralComputeRewardsResponse *r = NULL;
    a->st = rc_compute_hold(&c, a->key, EV_BUY, "mbr_d", 5000, "order-par", false, 0, &r);
    if (status_is_ok(&a->st)) {
        a->n = r->n_rewards;
        for (size_t i = 0; i < r->n_rewards && i < 4; i++) {
            snprintf(a->ids[i], sizeof a->ids[i], "%s", r->rewards[i]->id);
        }
    }
    arena_free(&ar);
    return NULL;
}

Test(referral_rewards, compute_is_recorded_once_per_event_reference) {
    /* Goal: a retry with the same key replays; another key with the same (event, reference)
     * returns the same rewards; 10 parallel calls for one new reference all return the same
     * three rewards and only three exist; the reference with another amount or member is
     * EVENT_REFERENCE_REUSED; a second registration reference is refused. */
    start("idem", NULL);
    chain();
    Loyalty__V1__ReferralComputeRewardsResponse *a = NULL, *b = NULL, *c = NULL;
    const char *key = harness_key();
    assert_status(rc_compute_hold(&C, key, EV_BUY, "mbr_d", 10000, "order-1", false, 0, &a),
                  STATUS_OK, "");
    assert_status(rc_compute_hold(&C, key, EV_BUY, "mbr_d", 10000, "order-1", false, 0, &b),
                  STATUS_OK, "");
    assert_status(rc_compute(&C, EV_BUY, "mbr_d", 10000, "order-1", &c), STATUS_OK, "");
    cr_assert_eq(a->n_rewards, 3);
    cr_assert_eq(b->n_rewards, 3);
    cr_assert_eq(c->n_rewards, 3);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_str_eq(a->rewards[i]->id, b->rewards[i]->id);
        cr_assert_str_eq(a->rewards[i]->id, c->rewards[i]->id);
        cr_assert_eq(a->rewards[i]->points, c->rewards[i]->points);
        cr_assert_eq(c->rewards[i]->grant_now, true);
    }
    cr_assert_eq(c->purchase_number, 1, "a retry does not count another purchase");
    assert_status(rc_compute_hold(&C, key, EV_BUY, "mbr_d", 10001, "order-1", false, 0, NULL),
                  STATUS_ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED");
    assert_status(rc_compute(&C, EV_BUY, "mbr_d", 10001, "order-1", NULL), STATUS_ALREADY_EXISTS,
                  "EVENT_REFERENCE_REUSED");
    assert_status(rc_compute(&C, EV_BUY, "mbr_c", 10000, "order-1", NULL), STATUS_ALREADY_EXISTS,
                  "EVENT_REFERENCE_REUSED");

    enum { N = 10 };
    pthread_t threads[N];
    compute_arg_t args[N];
    for (int i = 0; i < N; i++) {
        args[i] = (compute_arg_t){.addr = C.addr, .merchant = C.merchant, .key = harness_key()};
        cr_assert_eq(pthread_create(&threads[i], NULL, compute_main, &args[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(threads[i], NULL);
    }
    for (int i = 0; i < N; i++) {
        assert_status(args[i].st, STATUS_OK, "");
        cr_assert_eq(args[i].n, 3);
        for (size_t k = 0; k < 3; k++) {
            cr_assert_str_eq(args[i].ids[k], args[0].ids[k]);
        }
    }
    cr_assert_eq(rc_sql_int("SELECT count(*) FROM referral.rewards WHERE merchant_id = $1 "
                            "AND reference = $2",
                            C.merchant, "order-par"),
                 3);
    cr_assert_eq(rc_sql_int("SELECT purchase_count FROM referral.referral_members "
                            "WHERE merchant_id = $1 AND member_id = $2",
                            C.merchant, "mbr_d"),
                 2, "two distinct purchases");

    assert_status(rc_compute(&C, EV_REG, "mbr_d", 0, "reg-1", &a), STATUS_OK, "");
    cr_assert_eq(a->n_rewards, 4);
    assert_status(rc_compute(&C, EV_REG, "mbr_d", 0, "reg-1", &b), STATUS_OK, "");
    cr_assert_str_eq(a->rewards[0]->id, b->rewards[0]->id);
    assert_status(rc_compute(&C, EV_REG, "mbr_d", 0, "reg-2", NULL), STATUS_FAILED_PRECONDITION,
                  "REGISTRATION_ALREADY_REWARDED");
}

Test(referral_rewards, partial_reversals_claw_back_exactly_what_was_granted) {
    /* Goal: returns of 30%, 30% and then "50%" (capped at the 40% left) reverse
     * floor(points * cumulative share) per reward and then everything; each reversal of a
     * granted reward is clawed back; a retry replays; after 100% nothing more happens. */
    start("reverse", NULL);
    chain();
    Loyalty__V1__ReferralComputeRewardsResponse *r = NULL;
    /* c: 5% of 10,099 = 504.95 -> capped 300; b: 20; a: 1% = 100.99 -> 100 */
    assert_status(rc_compute(&C, EV_BUY, "mbr_d", 10099, "order-1", &r), STATUS_OK, "");
    cr_assert_eq(r->n_rewards, 3);

    Loyalty__V1__ReferralReverseRewardsResponse *v = NULL, *replay = NULL;
    const char *key = harness_key();
    assert_status(rc_reverse_key(&C, key, EV_BUY, "order-1", 3000, &v), STATUS_OK, "");
    cr_assert_eq(v->reversed_share_bps, 3000);
    cr_assert_eq(v->n_reversals, 3);
    int64_t want1[] = {90, 6, 30}; /* level order: c, b, a */
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(v->reversals[i]->level, i + 1);
        cr_assert_eq(v->reversals[i]->reversed_points, want1[i], "level %d", i + 1);
        cr_assert_eq(v->reversals[i]->clawback_points, want1[i], "granted: all clawed back");
        cr_assert(strncmp(v->reversals[i]->id, "rvs_", 4) == 0);
    }
    assert_status(rc_reverse_key(&C, key, EV_BUY, "order-1", 3000, &replay), STATUS_OK, "");
    cr_assert_str_eq(replay->reversals[0]->id, v->reversals[0]->id, "a retry replays");

    assert_status(rc_reverse(&C, EV_BUY, "order-1", 3000, &v), STATUS_OK, "");
    cr_assert_eq(v->reversed_share_bps, 6000);
    int64_t want2[] = {90, 6, 30}; /* totals 180, 12, 60 */
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(v->reversals[i]->reversed_points, want2[i], "level %d", i + 1);
    }
    assert_status(rc_reverse(&C, EV_BUY, "order-1", 5000, &v), STATUS_OK, "");
    cr_assert_eq(v->reversed_share_bps, 10000, "capped at the whole order");
    int64_t want3[] = {120, 8, 40};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(v->reversals[i]->reversed_points, want3[i], "level %d", i + 1);
        cr_assert_eq(v->reversals[i]->clawback_points, want3[i]);
        cr_assert_eq(v->rewards[i]->reversed_points, v->rewards[i]->points);
        cr_assert_eq(v->rewards[i]->clawed_back_points, v->rewards[i]->granted_points);
    }
    assert_status(rc_reverse(&C, EV_BUY, "order-1", 10000, &v), STATUS_OK, "");
    cr_assert_eq(v->n_reversals, 0, "nothing left to reverse");
    cr_assert_eq(rc_sql_int("SELECT sum(clawback_points) FROM referral.reward_reversals "
                            "WHERE merchant_id = $1",
                            C.merchant, NULL),
                 420, "300 + 20 + 100, never more");

    /* The counters show it: c's level 1 has 300 rewarded and 300 reversed. */
    Loyalty__V1__ReferralListDownlineResponse *down = NULL;
    assert_status(rc_downline(&C, "mbr_c", 1, 0, NULL, &down), STATUS_OK, "");
    cr_assert_eq(down->level_counts[0]->reward_points, 300);
    cr_assert_eq(down->level_counts[0]->reversed_points, 300);
    cr_assert_eq(down->members[0]->reversed_points, 300);

    assert_status(rc_reverse(&C, EV_BUY, "order-404", 100, NULL), STATUS_NOT_FOUND,
                  "EVENT_NOT_FOUND");
    assert_status(rc_reverse(&C, EV_BUY, "order-1", 0, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_SHARE_BPS");
    assert_status(rc_reverse(&C, EV_BUY, "order-1", 10001, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_SHARE_BPS");
}

static int64_t now_s(void) {
    return (int64_t)time(NULL);
}

Test(referral_rewards, held_rewards_are_released_once_after_the_hold) {
    /* Goal: with a 14-day hold, purchase rewards are HELD and not released early; with a hold
     * whose hold has ended they come back from ReleaseHeldRewards once (replayed for the same
     * key, never for another); a reversal while held reduces what is granted and claws back
     * nothing; one in full cancels the reward; a reversal after release claws back at most
     * what was granted. Registration rewards are never held. */
    rc_program_t prog;
    rc_program_init(&prog);
    prog.p.purchase_hold_days = 14;
    start("hold", &prog);
    chain();
    Loyalty__V1__ReferralComputeRewardsResponse *r = NULL;
    assert_status(rc_compute(&C, EV_REG, "mbr_d", 0, "reg-d", &r), STATUS_OK, "");
    cr_assert(r->rewards[0]->grant_now);
    int64_t t0 = now_s();
    assert_status(rc_compute(&C, EV_BUY, "mbr_d", 10000, "o-14d", &r), STATUS_OK, "");
    for (size_t i = 0; i < r->n_rewards; i++) {
        cr_assert_not(r->rewards[i]->grant_now);
        cr_assert_eq(r->rewards[i]->state, ST_HELD);
        cr_assert_eq(r->rewards[i]->granted_points, 0);
        int64_t until = r->rewards[i]->held_until_at;
        cr_assert(until >= t0 + 14 * 86400 && until <= now_s() + 14 * 86400);
    }
    int64_t later = now_s() + 3600; /* the hold is ended below by moving it back in SQL */
    assert_status(
        rc_compute_hold(&C, harness_key(), EV_BUY, "mbr_d", 10000, "o-soon", true, later, &r),
        STATUS_OK, "");
    cr_assert_eq(r->rewards[0]->held_until_at, later);
    assert_status(
        rc_compute_hold(&C, harness_key(), EV_BUY, "mbr_d", 10000, "o-part", true, later, NULL),
        STATUS_OK, "");
    assert_status(
        rc_compute_hold(&C, harness_key(), EV_BUY, "mbr_d", 10000, "o-gone", true, later, NULL),
        STATUS_OK, "");
    assert_status(rc_compute_hold(&C, harness_key(), EV_BUY, "mbr_d", 10000, "o-now", true, 0, &r),
                  STATUS_OK, "");
    cr_assert(r->rewards[0]->grant_now, "a hold ending now is no hold");

    Loyalty__V1__ReferralReleaseHeldRewardsResponse *rel = NULL;
    assert_status(rc_release(&C, harness_key(), 0, &rel), STATUS_OK, "");
    cr_assert_eq(rel->n_rewards, 0, "nothing has matured yet");

    Loyalty__V1__ReferralReverseRewardsResponse *v = NULL;
    assert_status(rc_reverse(&C, EV_BUY, "o-part", 5000, &v), STATUS_OK, "");
    cr_assert_eq(v->reversals[0]->reversed_points, 150);
    cr_assert_eq(v->reversals[0]->clawback_points, 0, "nothing was granted yet");
    assert_status(rc_reverse(&C, EV_BUY, "o-gone", 10000, &v), STATUS_OK, "");
    for (size_t i = 0; i < v->n_rewards; i++) {
        cr_assert_eq(v->rewards[i]->state, ST_CANCELLED);
        cr_assert_eq(v->reversals[i]->clawback_points, 0);
    }

    /* The hour passes: every hold but the 14-day one is moved into the past. A minute into it,
     * not a second: the service reads the time in whole seconds (time(), which may also lag
     * PostgreSQL's now() by a clock tick), so a hold ended 1 s before now() in the first
     * milliseconds of a second is not due yet by the service's clock. */
    rc_sql_exec("UPDATE referral.rewards SET held_until = now() - interval '1 minute' "
                "WHERE merchant_id = $1 AND state = 1 AND held_until < now() + interval '1 day'",
                C.merchant, NULL);
    const char *key = harness_key();
    assert_status(rc_release(&C, key, 0, &rel), STATUS_OK, "");
    cr_assert_eq(rel->n_rewards, 6, "o-soon and o-part, three each; o-gone was cancelled");
    cr_assert_not(rel->more);
    int64_t granted_part = 0;
    for (size_t i = 0; i < rel->n_rewards; i++) {
        cr_assert_eq(rel->rewards[i]->state, ST_GRANTED);
        cr_assert(rel->rewards[i]->granted_at >= t0);
        if (strcmp(rel->rewards[i]->reference, "o-part") == 0) {
            cr_assert_eq(rel->rewards[i]->granted_points,
                         rel->rewards[i]->points - rel->rewards[i]->reversed_points);
            granted_part += rel->rewards[i]->granted_points;
        } else {
            cr_assert_str_eq(rel->rewards[i]->reference, "o-soon");
            cr_assert_eq(rel->rewards[i]->granted_points, rel->rewards[i]->points);
        }
    }
    cr_assert_eq(granted_part, 150 + 10 + 50, "half of 300, 20 and 100");
    Loyalty__V1__ReferralReleaseHeldRewardsResponse *again = NULL;
    assert_status(rc_release(&C, key, 0, &again), STATUS_OK, "");
    cr_assert_eq(again->n_rewards, 6, "the same key replays the same list");
    cr_assert_str_eq(again->rewards[0]->id, rel->rewards[0]->id);
    assert_status(rc_release(&C, harness_key(), 0, &again), STATUS_OK, "");
    cr_assert_eq(again->n_rewards, 0, "released rewards are never handed out again");

    /* The rest of o-part comes back now: clawed back exactly what was granted. */
    assert_status(rc_reverse(&C, EV_BUY, "o-part", 5000, &v), STATUS_OK, "");
    int64_t clawed = 0;
    for (size_t i = 0; i < v->n_reversals; i++) {
        cr_assert_eq(v->reversals[i]->clawback_points, v->reversals[i]->reversed_points);
        clawed += v->reversals[i]->clawback_points;
    }
    cr_assert_eq(clawed, granted_part);
    assert_status(rc_release(&C, harness_key(), 501, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_LIMIT");
}

typedef struct release_arg {
    const char *addr, *merchant;
    char keys[40][48];
    char ids[64][64];
    int n;
    status_t st;
} release_arg_t;

static void *release_main(void *p) {
    release_arg_t *a = p;
    arena_t ar;
    arena_init(&ar);
    rc_t c = {.addr = a->addr, .merchant = a->merchant, .arena = &ar};
    for (int round = 0; round < 40; round++) {
        Loyalty__V1__ReferralReleaseHeldRewardsResponse *r = NULL;
        a->st = rc_release(&c, a->keys[round], 3, &r);
        if (!status_is_ok(&a->st) || (r->n_rewards == 0 && !r->more)) {
            break;
        }
        for (size_t i = 0; i < r->n_rewards && a->n < 64; i++) {
            snprintf(a->ids[a->n++], sizeof a->ids[0], "%s", r->rewards[i]->id);
        }
    }
    arena_free(&ar);
    return NULL;
}

Test(referral_rewards, parallel_release_hands_each_reward_out_once) {
    /* Goal: 8 callers releasing 3 at a time together hand out each of 60 matured rewards
     * exactly once. */
    start("prel", NULL);
    chain();
    int64_t later = now_s() + 3600;
    for (int i = 0; i < 20; i++) {
        char ref[16];
        snprintf(ref, sizeof ref, "o%02d", i);
        assert_status(
            rc_compute_hold(&C, harness_key(), EV_BUY, "mbr_d", 1000 + i, ref, true, later, NULL),
            STATUS_OK, "");
    }
    cr_assert_eq(rc_sql_int("SELECT count(*) FROM referral.rewards WHERE merchant_id = $1 "
                            "AND state = 1",
                            C.merchant, NULL),
                 60);
    rc_sql_exec("UPDATE referral.rewards SET held_until = now() - interval '1 minute' "
                "WHERE merchant_id = $1",
                C.merchant, NULL);
    enum { T = 8 };
    static release_arg_t args[T];
    pthread_t threads[T];
    for (int t = 0; t < T; t++) {
        memset(&args[t], 0, sizeof args[t]);
        args[t].addr = C.addr;
        args[t].merchant = C.merchant;
        for (int k = 0; k < 40; k++) {
            snprintf(args[t].keys[k], sizeof args[t].keys[k], "%s", harness_key());
        }
    }
    for (int t = 0; t < T; t++) {
        cr_assert_eq(pthread_create(&threads[t], NULL, release_main, &args[t]), 0);
    }
    for (int t = 0; t < T; t++) {
        pthread_join(threads[t], NULL);
    }
    int total = 0;
    for (int t = 0; t < T; t++) {
        assert_status(args[t].st, STATUS_OK, "");
        total += args[t].n;
        for (int i = 0; i < args[t].n; i++) {
            for (int u = 0; u <= t; u++) {
                for (int k = 0; k < (u == t ? i : args[u].n); k++) {
                    cr_assert_str_neq(args[t].ids[i], args[u].ids[k], "handed out twice");
                }
            }
        }
    }
    cr_assert_eq(total, 60);
    cr_assert_eq(rc_sql_int("SELECT count(*) FROM referral.rewards WHERE merchant_id = $1 "
                            "AND state = 2 AND granted_points = points",
                            C.merchant, NULL),
                 60);
}

Test(referral_rewards, requests_are_validated) {
    /* Goal: every malformed field is INVALID_ARGUMENT naming it; programme updates honour
     * expected_version. */
    start("valid", NULL);
    assert_status(rc_compute(&C, 0, "mbr_d", 0, "r1", NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_EVENT");
    assert_status(rc_compute(&C, EV_BUY, "", 0, "r1", NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_MEMBER_ID");
    assert_status(rc_compute(&C, EV_BUY, "mbr_d", -1, "r1", NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_PAID_CENTS");
    assert_status(rc_compute(&C, EV_BUY, "mbr_d", 10000000000001LL, "r1", NULL),
                  STATUS_INVALID_ARGUMENT, "INVALID_PAID_CENTS");
    assert_status(rc_compute(&C, EV_BUY, "mbr_d", 10000000000000LL, "r1", NULL), STATUS_OK, "");
    assert_status(rc_compute(&C, EV_REG, "mbr_d", 5, "r2", NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_PAID_CENTS");
    assert_status(rc_compute(&C, EV_BUY, "mbr_d", 1, "bad ref", NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_REFERENCE");
    assert_status(rc_compute_hold(&C, harness_key(), EV_REG, "mbr_d", 0, "r3", true, 5, NULL),
                  STATUS_INVALID_ARGUMENT, "INVALID_HOLD_UNTIL_AT");
    assert_status(rc_compute_hold(&C, harness_key(), EV_BUY, "mbr_d", 0, "r3", true,
                                  now_s() + 367 * 86400, NULL),
                  STATUS_INVALID_ARGUMENT, "INVALID_HOLD_UNTIL_AT");
    assert_status(rc_reverse(&C, 0, "r1", 10, NULL), STATUS_INVALID_ARGUMENT, "INVALID_EVENT");

    rc_program_t prog;
    rc_program_init(&prog);
    prog.p.levels = 4;
    assert_status(rc_set_program(&C, &prog.p, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_PROGRAM_LEVELS");
    rc_program_init(&prog);
    prog.r[0].purchase_bps = 10001;
    assert_status(rc_set_program(&C, &prog.p, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_PROGRAM_LEVEL_RULES_PURCHASE_BPS");
    Loyalty__V1__ReferralSetProgramRequest req = LOYALTY__V1__REFERRAL_SET_PROGRAM_REQUEST__INIT;
    rc_program_init(&prog);
    req.merchant_id = (char *)C.merchant;
    req.idempotency_key = (char *)harness_key();
    req.program = &prog.p;
    req._expected_version_case =
        LOYALTY__V1__REFERRAL_SET_PROGRAM_REQUEST___EXPECTED_VERSION_EXPECTED_VERSION;
    req.expected_version = 7;
    assert_status(rc_invoke(&C, "SetReferralProgram", &req.base, NULL), STATUS_ABORTED,
                  "VERSION_MISMATCH");
    req.expected_version = 1;
    req.idempotency_key = (char *)harness_key();
    ProtobufCMessage *resp = NULL;
    assert_status(rc_invoke(&C, "SetReferralProgram", &req.base, &resp), STATUS_OK, "");
    Loyalty__V1__ReferralProgram *p = ((Loyalty__V1__ReferralSetProgramResponse *)resp)->program;
    cr_assert_eq(p->version, 2);
    cr_assert_eq(p->n_level_rules, 3);
    cr_assert_eq(p->level_rules[0]->purchase_cap_points, 300);

    Loyalty__V1__ReferralGetProgramRequest g = LOYALTY__V1__REFERRAL_GET_PROGRAM_REQUEST__INIT;
    g.merchant_id = (char *)harness_merchant("never");
    assert_status(rc_invoke(&C, "GetReferralProgram", &g.base, &resp), STATUS_OK, "");
    cr_assert_not(((Loyalty__V1__ReferralGetProgramResponse *)resp)->program->enabled);
    cr_assert_eq(((Loyalty__V1__ReferralGetProgramResponse *)resp)->program->version, 0);
}

static status_t list_rewards(const char *member, int32_t size, const char *cursor,
                             Loyalty__V1__ReferralListRewardsResponse **out) {
    Loyalty__V1__ReferralListRewardsRequest req = LOYALTY__V1__REFERRAL_LIST_REWARDS_REQUEST__INIT;
    Loyalty__V1__PageRequest page = LOYALTY__V1__PAGE_REQUEST__INIT;
    page.page_size = size;
    page.cursor = (char *)cursor;
    req.merchant_id = (char *)C.merchant;
    req.beneficiary_member_id = (char *)member;
    req.page = &page;
    ProtobufCMessage *resp = NULL;
    status_t st = rc_invoke(&C, "ListRewards", &req.base, &resp);
    if (out) {
        *out = status_is_ok(&st) ? (Loyalty__V1__ReferralListRewardsResponse *)resp : NULL;
    }
    return st;
}

Test(referral_rewards, list_rewards_pages_newest_first) {
    /* Goal: a beneficiary's rewards come newest first in stable pages, each exactly once,
     * with their current state; other members' rewards never appear. */
    start("list", NULL);
    chain();
    assert_status(rc_compute(&C, EV_REG, "mbr_d", 0, "reg-d", NULL), STATUS_OK, "");
    for (int i = 0; i < 5; i++) {
        char ref[16];
        snprintf(ref, sizeof ref, "o%d", i);
        usleep(2000); /* ids order by millisecond: keep the rewards in distinct ones */
        assert_status(rc_compute(&C, EV_BUY, "mbr_d", 1000 * (i + 1), ref, NULL), STATUS_OK, "");
    }
    assert_status(rc_reverse(&C, EV_BUY, "o4", 10000, NULL), STATUS_OK, "");
    /* c has 6 rewards: the registration and five purchases (50, 100, 150, 200, 250 points). */
    const char *refs[] = {"o4", "o3", "o2", "o1", "o0", "reg-d"};
    const char *cursor = "";
    int seen = 0;
    for (int pages = 0; pages < 6; pages++) {
        Loyalty__V1__ReferralListRewardsResponse *r = NULL;
        assert_status(list_rewards("mbr_c", 4, cursor, &r), STATUS_OK, "");
        for (size_t i = 0; i < r->n_rewards; i++) {
            cr_assert_lt(seen, 6);
            cr_assert_str_eq(r->rewards[i]->reference, refs[seen]);
            cr_assert_str_eq(r->rewards[i]->beneficiary_member_id, "mbr_c");
            if (seen == 0) {
                cr_assert_eq(r->rewards[i]->points, 250);
                cr_assert_eq(r->rewards[i]->reversed_points, 250, "the current state");
            }
            seen++;
        }
        cursor = r->page_info->next_cursor;
        if (cursor[0] == '\0') {
            break;
        }
    }
    cr_assert_eq(seen, 6);
    Loyalty__V1__ReferralListRewardsResponse *d = NULL;
    assert_status(list_rewards("mbr_d", 0, "", &d), STATUS_OK, "");
    cr_assert_eq(d->n_rewards, 1, "d only has its welcome");
    cr_assert_eq(d->rewards[0]->level, 0);
    assert_status(list_rewards("", 0, "", NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_BENEFICIARY_MEMBER_ID");
    assert_status(list_rewards("mbr_c", 501, "", NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_PAGE_PAGE_SIZE");
    assert_status(list_rewards("mbr_c", 10, "garbage!", NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_PAGE_CURSOR");
}
