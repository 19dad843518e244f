/* test_member_tags.c -- member-svc automatic tags over real gRPC against real PostgreSQL and
 * Redis: tag rules set and listed (idempotent, invalid rules refused), members crossing an order
 * or spend threshold get the tag in the order's transaction, a return that drops them below
 * takes it away, the points_balance rule follows the balance passed with orders and returns,
 * manual tags stay untouched, ListMembers' tag filter matches automatic and manual tags, and
 * members who existed before the rules are re-tagged by the timer. */
#include "member_it.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

TestSuite(member_tags, .init = member_it_setup, .fini = member_it_teardown, .timeout = 240);

#define METRIC(x) LOYALTY__V1__MEMBER_TAG_METRIC__MEMBER_TAG_METRIC_##x
#define OP(x) LOYALTY__V1__MEMBER_TAG_OPERATOR__MEMBER_TAG_OPERATOR_##x

/* An order; points_balance < 0 = not passed. */
static Loyalty__V1__MemberStats *order(const char *m, const char *member, const char *order_id,
                                       int64_t spend, int64_t points_balance) {
    Loyalty__V1__MemberRecordOrderRequest req = LOYALTY__V1__MEMBER_RECORD_ORDER_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    req.member_id = (char *)member;
    req.order_id = (char *)order_id;
    req.spend_cents = spend;
    req.growth_delta = 1;
    if (points_balance >= 0) {
        req._points_balance_case =
            LOYALTY__V1__MEMBER_RECORD_ORDER_REQUEST___POINTS_BALANCE_POINTS_BALANCE;
        req.points_balance = points_balance;
    }
    Loyalty__V1__MemberRecordOrderResponse *resp = NULL;
    assert_status(call("RecordOrder", &req, &resp), STATUS_OK, "");
    return resp->stats;
}

static Loyalty__V1__MemberStats *give_back(const char *m, const char *order_id, int64_t spend,
                                           int64_t growth, int64_t points_balance) {
    Loyalty__V1__MemberRecordReturnRequest req = LOYALTY__V1__MEMBER_RECORD_RETURN_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    req.order_id = (char *)order_id;
    req.spend_cents = spend;
    req.growth_delta = growth;
    if (points_balance >= 0) {
        req._points_balance_case =
            LOYALTY__V1__MEMBER_RECORD_RETURN_REQUEST___POINTS_BALANCE_POINTS_BALANCE;
        req.points_balance = points_balance;
    }
    Loyalty__V1__MemberRecordReturnResponse *resp = NULL;
    assert_status(call("RecordReturn", &req, &resp), STATUS_OK, "");
    return resp->stats;
}

static Loyalty__V1__MemberTagRule *rule(const char *tag, Loyalty__V1__MemberTagMetric metric,
                                        Loyalty__V1__MemberTagOperator op, int64_t threshold) {
    Loyalty__V1__MemberTagRule *r = arena_alloc(&arena, sizeof *r);
    loyalty__v1__member_tag_rule__init(r);
    r->tag = (char *)tag;
    r->metric = metric;
    r->op = op;
    r->threshold = threshold;
    return r;
}

static status_t set_rules(const char *m, Loyalty__V1__MemberTagRule **rules, size_t n,
                          Loyalty__V1__MemberSetTagRulesResponse **resp) {
    Loyalty__V1__MemberSetTagRulesRequest req = LOYALTY__V1__MEMBER_SET_TAG_RULES_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    req.rules = rules;
    req.n_rules = n;
    return call("SetTagRules", &req, resp);
}

/* The merchant's usual rules: regular (5 orders), big_spender (1000.00), points_rich (5000). */
static void set_usual_rules(const char *m) {
    Loyalty__V1__MemberTagRule *rules[] = {
        rule("Regular", METRIC(ORDERS_COUNT), OP(GTE), 5),
        rule("big_spender", METRIC(TOTAL_SPEND_CENTS), OP(GTE), 100000),
        rule("points_rich", METRIC(POINTS_BALANCE), OP(GTE), 5000),
    };
    Loyalty__V1__MemberSetTagRulesResponse *resp = NULL;
    assert_status(set_rules(m, rules, 3, &resp), STATUS_OK, "");
    cr_assert_eq(resp->n_rules, 3);
    cr_assert_str_eq(resp->rules[0]->tag, "regular", "tags are stored lower-cased");
}

/* The member's automatic tags joined with ','. */
static const char *tags_of(const Loyalty__V1__MemberStats *s) {
    char *out = arena_strdup(&arena, "");
    for (size_t i = 0; i < s->n_automatic_tags; i++) {
        out = arena_printf(&arena, "%s%s%s", out, i ? "," : "", s->automatic_tags[i]);
    }
    return out;
}

/* The names ListMembers gives for a tag, joined with ',' in registration order. */
static const char *names_tagged(const char *m, const char *tag) {
    Loyalty__V1__MemberListFilter f = LOYALTY__V1__MEMBER_LIST_FILTER__INIT;
    f.tag = (char *)tag;
    Loyalty__V1__PageRequest page = LOYALTY__V1__PAGE_REQUEST__INIT;
    page.page_size = 100;
    Loyalty__V1__MemberListRequest req = LOYALTY__V1__MEMBER_LIST_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.filter = &f;
    req.page = &page;
    Loyalty__V1__MemberListResponse *resp = NULL;
    assert_status(call("ListMembers", &req, &resp), STATUS_OK, "");
    char *out = arena_strdup(&arena, "");
    for (size_t i = 0; i < resp->n_members; i++) {
        out = arena_printf(&arena, "%s%s%s", out, i ? "," : "",
                           resp->members[i]->member->profile->name);
    }
    return out;
}

Test(member_tags, orders_returns_and_points_move_the_tags_in_their_transaction) {
    harness_start(&svc, "member-svc", NULL);
    const char *m = harness_merchant("tags");
    set_usual_rules(m);
    const char *ann = member_create(m, &(member_spec_t){.name = "ann", .tag = "vip"});
    const char *bob = member_create(m, &(member_spec_t){.name = "bob", .tag = NULL});
    const char *cat =
        member_create(m, &(member_spec_t){.name = "cat",
                                          .tag = "regular"}); /* a manual tag named like a rule's */

    /* Orders: ann reaches 5 orders with the 5th, not before. */
    for (int i = 1; i <= 4; i++) {
        Loyalty__V1__MemberStats *s = order(m, ann, arena_printf(&arena, "ann-%d", i), 1000, -1);
        cr_assert_str_eq(tags_of(s), "", "after %d orders", i);
    }
    Loyalty__V1__MemberStats *s = order(m, ann, "ann-5", 1000, -1);
    cr_assert_str_eq(tags_of(s), "regular");
    cr_assert_str_eq(tags_of(member_stats(m, ann)), "regular");
    /* Spend: one big order of bob's. */
    s = order(m, bob, "bob-1", 100000, -1);
    cr_assert_str_eq(tags_of(s), "big_spender");

    /* ListMembers: the automatic tag and the manual one both match; cat carries "regular" by
     * hand only. */
    cr_assert_str_eq(names_tagged(m, "regular"), "ann,cat");
    cr_assert_str_eq(names_tagged(m, "REGULAR"), "ann,cat", "the filter ignores case");
    cr_assert_str_eq(names_tagged(m, "big_spender"), "bob");
    cr_assert_str_eq(names_tagged(m, "vip"), "ann");

    /* A partial return that keeps the order: still 5 orders. A full return of one order drops
     * ann to 4 and the tag goes; her manual tag stays. */
    s = give_back(m, "ann-5", 500, 0, -1);
    cr_assert_str_eq(tags_of(s), "regular");
    s = give_back(m, "ann-5", 500, 1, -1);
    cr_assert_eq(s->order_count, 4);
    cr_assert_str_eq(tags_of(s), "");
    cr_assert_str_eq(names_tagged(m, "regular"), "cat");
    cr_assert_str_eq(names_tagged(m, "vip"), "ann", "a rule never touches manual tags");
    /* Spend net of returns: bob returns 1 cent and falls below 1000.00. */
    s = give_back(m, "bob-1", 1, 0, -1);
    cr_assert_eq(s->total_spend_cents, 99999);
    cr_assert_str_eq(tags_of(s), "");
    cr_assert_str_eq(names_tagged(m, "big_spender"), "");

    /* Points: the balance passed with an order, then with a return. */
    s = order(m, cat, "cat-1", 100, 5000);
    cr_assert_eq(s->points_balance, 5000);
    cr_assert_str_eq(tags_of(s), "points_rich");
    s = order(m, cat, "cat-2", 100, -1);
    cr_assert_eq(s->points_balance, 5000, "an order without a balance leaves it as it was");
    cr_assert_str_eq(tags_of(s), "points_rich");
    cr_assert_str_eq(names_tagged(m, "points_rich"), "cat");
    s = give_back(m, "cat-2", 100, 1, 4999);
    cr_assert_eq(s->points_balance, 4999);
    cr_assert_str_eq(tags_of(s), "");
    cr_assert_str_eq(names_tagged(m, "points_rich"), "");
    cr_assert_str_eq(names_tagged(m, "regular"), "cat", "cat's manual tag is still there");
}

Test(member_tags, rules_are_validated_listed_idempotent_and_re_tag_existing_members) {
    const char *env[] = {"JOB_INTERVAL_S=1", NULL};
    harness_start(&svc, "member-svc", env);
    const char *m = harness_merchant("tagrules");
    const char *dan = member_create(m, &(member_spec_t){.name = "dan", .tag = NULL});
    order(m, dan, "dan-1", 2000, -1);
    order(m, dan, "dan-2", 2000, -1);

    /* Invalid rules are refused, naming the field; nothing is stored. */
    Loyalty__V1__MemberTagRule *bad_tag[] = {rule("big spender", METRIC(ORDERS_COUNT), OP(GTE), 1)};
    assert_status(set_rules(m, bad_tag, 1, NULL), STATUS_INVALID_ARGUMENT, "INVALID_RULES_0__TAG");
    Loyalty__V1__MemberTagRule *no_metric[] = {rule("x", METRIC(UNSPECIFIED), OP(GTE), 1)};
    assert_status(set_rules(m, no_metric, 1, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_RULES_0__METRIC");
    Loyalty__V1__MemberTagRule *no_op[] = {rule("x", METRIC(ORDERS_COUNT), OP(UNSPECIFIED), 1)};
    assert_status(set_rules(m, no_op, 1, NULL), STATUS_INVALID_ARGUMENT, "INVALID_RULES_0__OP");
    Loyalty__V1__MemberTagRule *negative[] = {rule("x", METRIC(ORDERS_COUNT), OP(GTE), -1)};
    assert_status(set_rules(m, negative, 1, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_RULES_0__THRESHOLD");
    Loyalty__V1__MemberTagRule *twice[] = {rule("x", METRIC(ORDERS_COUNT), OP(GTE), 1),
                                           rule("X", METRIC(ORDERS_COUNT), OP(GTE), 2)};
    assert_status(set_rules(m, twice, 2, NULL), STATUS_INVALID_ARGUMENT, "INVALID_RULES_1_");
    Loyalty__V1__MemberTagRule *many[51];
    for (int i = 0; i < 51; i++) {
        many[i] = rule(arena_printf(&arena, "t%d", i), METRIC(ORDERS_COUNT), OP(GTE), i);
    }
    assert_status(set_rules(m, many, 51, NULL), STATUS_INVALID_ARGUMENT, "INVALID_RULES");
    assert_status(set_rules(m, many, 50, NULL), STATUS_OK, "");

    /* Setting rules re-tags the members who existed before (the timer's walk). */
    Loyalty__V1__MemberTagRule *rules[] = {
        rule("two_plus", METRIC(ORDERS_COUNT), OP(GTE), 2),
        rule("small", METRIC(TOTAL_SPEND_CENTS), OP(LTE), 5000),
    };
    Loyalty__V1__MemberSetTagRulesResponse *resp = NULL;
    assert_status(set_rules(m, rules, 2, &resp), STATUS_OK, "");
    cr_assert(resp->retag_pending);
    for (int i = 0; i < 200 && strcmp(tags_of(member_stats(m, dan)), "small,two_plus") != 0; i++) {
        usleep(100000);
    }
    cr_assert_str_eq(tags_of(member_stats(m, dan)), "small,two_plus");
    cr_assert_str_eq(names_tagged(m, "two_plus"), "dan");
    cr_assert_str_eq(names_tagged(m, "t0"), "", "the replaced rules' tags are gone");
    Loyalty__V1__MemberListTagRulesResponse *listed = NULL;
    for (int i = 0; i < 200; i++) {
        Loyalty__V1__MemberListTagRulesRequest lr =
            LOYALTY__V1__MEMBER_LIST_TAG_RULES_REQUEST__INIT;
        lr.merchant_id = (char *)m;
        assert_status(call("ListTagRules", &lr, &listed), STATUS_OK, "");
        if (!listed->retag_pending) {
            break;
        }
        usleep(100000);
    }
    cr_assert(!listed->retag_pending, "the walk ends");
    cr_assert_eq(listed->n_rules, 2);
    cr_assert_str_eq(listed->rules[0]->tag, "two_plus");
    cr_assert_eq(listed->rules[0]->metric, METRIC(ORDERS_COUNT));
    cr_assert_eq(listed->rules[0]->op, OP(GTE));
    cr_assert_eq(listed->rules[0]->threshold, 2);
    cr_assert_str_eq(listed->rules[1]->tag, "small");
    cr_assert_eq(listed->rules[1]->op, OP(LTE));

    /* The same rules again: nothing changes, no walk starts. */
    assert_status(set_rules(m, rules, 2, &resp), STATUS_OK, "");
    cr_assert(!resp->retag_pending);
    cr_assert_eq(resp->n_rules, 2);

    /* No rules: every automatic tag goes (with the walk). */
    assert_status(set_rules(m, NULL, 0, &resp), STATUS_OK, "");
    for (int i = 0; i < 200 && strcmp(tags_of(member_stats(m, dan)), "") != 0; i++) {
        usleep(100000);
    }
    cr_assert_str_eq(tags_of(member_stats(m, dan)), "");
}
