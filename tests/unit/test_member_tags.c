/* test_member_tags.c -- unit tests of automatic tag rules: validation (each field, duplicates,
 * the limit), the stored text round trip, evaluation at, below and above each threshold, and
 * which points balance is kept. */
#include "member_tags.h"

#include <criterion/criterion.h>
#include <string.h>

#define METRIC(x) LOYALTY__V1__MEMBER_TAG_METRIC__MEMBER_TAG_METRIC_##x
#define OP(x) LOYALTY__V1__MEMBER_TAG_OPERATOR__MEMBER_TAG_OPERATOR_##x

static Loyalty__V1__MemberTagRule mk(const char *tag, int metric, int op, int64_t threshold) {
    Loyalty__V1__MemberTagRule r = LOYALTY__V1__MEMBER_TAG_RULE__INIT;
    r.tag = (char *)tag;
    r.metric = metric;
    r.op = op;
    r.threshold = threshold;
    return r;
}

static status_t check1(Loyalty__V1__MemberTagRule r, member_tag_rules_t *out) {
    Loyalty__V1__MemberTagRule *in[] = {&r};
    return member_tags_check(in, 1, out);
}

Test(member_tags, check_normalises_and_refuses_each_bad_field) {
    member_tag_rules_t out;
    status_t st = check1(mk("Big_Spender", METRIC(TOTAL_SPEND_CENTS), OP(GTE), 100000), &out);
    cr_assert(status_is_ok(&st));
    cr_assert_eq(out.n, 1);
    cr_assert_str_eq(out.r[0].tag, "big_spender");
    st = check1(mk("big spender", METRIC(ORDERS_COUNT), OP(GTE), 1), &out);
    cr_assert_str_eq(st.reason, "INVALID_RULES_0__TAG");
    st = check1(mk("", METRIC(ORDERS_COUNT), OP(GTE), 1), &out);
    cr_assert_str_eq(st.reason, "INVALID_RULES_0__TAG");
    st = check1(mk("a23456789012345678901234567890123", METRIC(ORDERS_COUNT), OP(GTE), 1), &out);
    cr_assert_str_eq(st.reason, "INVALID_RULES_0__TAG", "33 characters");
    st = check1(mk("x", METRIC(UNSPECIFIED), OP(GTE), 1), &out);
    cr_assert_str_eq(st.reason, "INVALID_RULES_0__METRIC");
    st = check1(mk("x", 9, OP(GTE), 1), &out);
    cr_assert_str_eq(st.reason, "INVALID_RULES_0__METRIC");
    st = check1(mk("x", METRIC(ORDERS_COUNT), OP(UNSPECIFIED), 1), &out);
    cr_assert_str_eq(st.reason, "INVALID_RULES_0__OP");
    st = check1(mk("x", METRIC(ORDERS_COUNT), OP(LTE), -1), &out);
    cr_assert_str_eq(st.reason, "INVALID_RULES_0__THRESHOLD");
    st = check1(mk("x", METRIC(ORDERS_COUNT), OP(LTE), MEMBER_TAG_THRESHOLD_MAX + 1), &out);
    cr_assert_str_eq(st.reason, "INVALID_RULES_0__THRESHOLD");
    st = check1(mk("x", METRIC(ORDERS_COUNT), OP(LTE), MEMBER_TAG_THRESHOLD_MAX), &out);
    cr_assert(status_is_ok(&st));
}

Test(member_tags, check_refuses_repeats_and_more_than_fifty) {
    member_tag_rules_t out;
    Loyalty__V1__MemberTagRule a = mk("x", METRIC(ORDERS_COUNT), OP(GTE), 1);
    Loyalty__V1__MemberTagRule b = mk("X", METRIC(ORDERS_COUNT), OP(GTE), 7);
    Loyalty__V1__MemberTagRule c = mk("x", METRIC(ORDERS_COUNT), OP(LTE), 9);
    Loyalty__V1__MemberTagRule d = mk("x", METRIC(POINTS_BALANCE), OP(GTE), 9);
    Loyalty__V1__MemberTagRule *dup[] = {&a, &b};
    status_t st = member_tags_check(dup, 2, &out);
    cr_assert_str_eq(st.reason, "INVALID_RULES_1_");
    Loyalty__V1__MemberTagRule *fine[] = {&a, &c, &d};
    st = member_tags_check(fine, 3, &out);
    cr_assert(status_is_ok(&st), "same tag by other metrics or operators");
    Loyalty__V1__MemberTagRule *many[MEMBER_TAG_RULES_MAX + 1];
    for (int i = 0; i <= MEMBER_TAG_RULES_MAX; i++) {
        many[i] = &a;
    }
    st = member_tags_check(many, MEMBER_TAG_RULES_MAX + 1, &out);
    cr_assert_str_eq(st.reason, "INVALID_RULES");
    st = member_tags_check(NULL, 0, &out);
    cr_assert(status_is_ok(&st));
    cr_assert_eq(out.n, 0);
}

Test(member_tags, stored_text_round_trips) {
    member_tag_rules_t rules;
    Loyalty__V1__MemberTagRule a = mk("regular", METRIC(ORDERS_COUNT), OP(GTE), 5);
    Loyalty__V1__MemberTagRule b = mk("low:points", METRIC(POINTS_BALANCE), OP(LTE), 0);
    Loyalty__V1__MemberTagRule *in[] = {&a, &b};
    status_t st = member_tags_check(in, 2, &rules);
    cr_assert(status_is_ok(&st));
    arena_t ar;
    arena_init(&ar);
    cr_assert_str_eq(member_tags_encode(&ar, &rules.r[0]), "orders_count >= 5 regular");
    cr_assert_str_eq(member_tags_encode(&ar, &rules.r[1]), "points_balance <= 0 low:points");
    for (int i = 0; i < 2; i++) {
        member_tag_rule_t back;
        cr_assert(member_tags_decode(member_tags_encode(&ar, &rules.r[i]), &back));
        cr_assert_eq(memcmp(&back, &rules.r[i], sizeof back), 0);
    }
    member_tag_rule_t junk;
    cr_assert(!member_tags_decode("orders_count => 5 regular", &junk));
    cr_assert(!member_tags_decode("visits >= 5 regular", &junk));
    cr_assert(!member_tags_decode("orders_count >= 5 regular extra", &junk));
    arena_free(&ar);
}

Test(member_tags, compute_at_below_and_above_each_threshold) {
    member_tag_rules_t rules;
    Loyalty__V1__MemberTagRule a = mk("regular", METRIC(ORDERS_COUNT), OP(GTE), 5);
    Loyalty__V1__MemberTagRule b = mk("big", METRIC(TOTAL_SPEND_CENTS), OP(GTE), 100000);
    Loyalty__V1__MemberTagRule c = mk("rich", METRIC(POINTS_BALANCE), OP(GTE), 5000);
    Loyalty__V1__MemberTagRule d = mk("dormant", METRIC(ORDERS_COUNT), OP(LTE), 0);
    Loyalty__V1__MemberTagRule e = mk("big", METRIC(POINTS_BALANCE), OP(GTE), 1000000);
    Loyalty__V1__MemberTagRule *in[] = {&a, &b, &c, &d, &e};
    status_t st = member_tags_check(in, 5, &rules);
    cr_assert(status_is_ok(&st));
    const char *out[MEMBER_TAG_RULES_MAX];
    member_tag_figures_t f = {.orders_count = 0, .total_spend_cents = 0, .points_balance = 0};
    cr_assert_eq(member_tags_compute(&rules, &f, out, MEMBER_TAG_RULES_MAX), 1);
    cr_assert_str_eq(out[0], "dormant");
    f = (member_tag_figures_t){
        .orders_count = 4, .total_spend_cents = 99999, .points_balance = 4999};
    cr_assert_eq(member_tags_compute(&rules, &f, out, MEMBER_TAG_RULES_MAX), 0);
    f = (member_tag_figures_t){
        .orders_count = 5, .total_spend_cents = 100000, .points_balance = 5000};
    cr_assert_eq(member_tags_compute(&rules, &f, out, MEMBER_TAG_RULES_MAX), 3);
    cr_assert_str_eq(out[0], "big", "sorted");
    cr_assert_str_eq(out[1], "regular");
    cr_assert_str_eq(out[2], "rich");
    /* Two rules giving "big": one tag. */
    f = (member_tag_figures_t){
        .orders_count = 6, .total_spend_cents = 200000, .points_balance = 2000000};
    cr_assert_eq(member_tags_compute(&rules, &f, out, MEMBER_TAG_RULES_MAX), 3);
    cr_assert_str_eq(out[0], "big");
}

Test(member_tags, learn_points_keeps_only_a_newer_balance) {
    /* Goal: a balance is taken when its version is higher than the kept one, never when it is
     * the same (a duplicate) or lower (stale), and an unversioned one (0) is taken without
     * moving the version. */
    int64_t balance = 0, version = 0;
    cr_assert(member_tags_learn_points(&balance, &version, 600, 3));
    cr_assert_eq(balance, 600);
    cr_assert_eq(version, 3);
    cr_assert_not(member_tags_learn_points(&balance, &version, 999, 3), "a duplicate");
    cr_assert_not(member_tags_learn_points(&balance, &version, 50, 2), "stale");
    cr_assert_eq(balance, 600);
    cr_assert_eq(version, 3);
    cr_assert(member_tags_learn_points(&balance, &version, 450, 4));
    cr_assert_eq(balance, 450);
    cr_assert(member_tags_learn_points(&balance, &version, -20, 0), "unversioned");
    cr_assert_eq(balance, -20);
    cr_assert_eq(version, 4);
    cr_assert_not(member_tags_learn_points(&balance, &version, 7, 4));
    cr_assert(member_tags_learn_points(&balance, &version, 7, 5));
    cr_assert_eq(balance, 7);
}
