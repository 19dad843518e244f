/* test_member_tiers.c -- member-svc tiers and cards over real gRPC against real PostgreSQL and
 * Redis: a member's life from joining to Gold to a downgrade, express upgrades, returns that
 * cross a threshold back, idempotent orders under retries, parallel orders of one member, PAID
 * and INTERNAL cards with expiry, ladder validation, the cached tier read and its invalidation,
 * tier history, merchant isolation, tier.changed and member.updated events. */
#include "member_it.h"
#include "validate.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

TestSuite(member_tiers, .init = member_it_setup, .fini = member_it_teardown, .timeout = 180);

#define DAY 86400

static const char *create_tier(const char *m, const char *name, int rank, int64_t up,
                               int64_t retain, int months, int64_t express, int discount_bps) {
    Loyalty__V1__MemberTier t = LOYALTY__V1__MEMBER_TIER__INIT;
    t.name = (char *)name;
    t.rank = rank;
    t.upgrade_threshold = up;
    t.retain_threshold = retain;
    t.period_months = months;
    t.express_spend_cents = express;
    t.discount_bps = discount_bps;
    t.earn_multiplier_bps = 10000 + rank * 5000;
    t.birthday_bonus_points = 100 * rank;
    return member_create_tier_id(svc.addr, &arena, m, &t);
}

/* Silver 1000/800, Gold 5000/4000 (express 300000 cents), 12-month periods. */
static void standard_ladder(const char *m, const char **silver, const char **gold) {
    *silver = create_tier(m, "Silver", 1, 1000, 800, 12, 0, 300);
    *gold = create_tier(m, "Gold", 2, 5000, 4000, 12, 300000, 1000);
}

static status_t record_order(const char *m, const char *member, const char *order, int64_t spend,
                             int64_t growth, int64_t at, const char *key,
                             Loyalty__V1__MemberRecordOrderResponse **out) {
    Loyalty__V1__MemberRecordOrderRequest req = LOYALTY__V1__MEMBER_RECORD_ORDER_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)(key ? key : harness_key());
    req.member_id = (char *)member;
    req.order_id = (char *)order;
    req.spend_cents = spend;
    req.growth_delta = growth;
    req.at = at;
    Loyalty__V1__MemberRecordOrderResponse *resp = NULL;
    status_t st = call("RecordOrder", &req, &resp);
    if (out) {
        *out = resp;
    }
    return st;
}

static status_t record_return(const char *m, const char *order, int64_t spend, int64_t growth,
                              Loyalty__V1__MemberRecordReturnResponse **out) {
    Loyalty__V1__MemberRecordReturnRequest req = LOYALTY__V1__MEMBER_RECORD_RETURN_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    req.order_id = (char *)order;
    req.spend_cents = spend;
    req.growth_delta = growth;
    Loyalty__V1__MemberRecordReturnResponse *resp = NULL;
    status_t st = call("RecordReturn", &req, &resp);
    if (out) {
        *out = resp;
    }
    return st;
}

static Loyalty__V1__MemberTierStatus *get_tier(const char *m, const char *member) {
    Loyalty__V1__MemberGetTierRequest req = LOYALTY__V1__MEMBER_GET_TIER_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.member_id = (char *)member;
    Loyalty__V1__MemberGetTierResponse *resp = NULL;
    assert_status(call("GetMemberTier", &req, &resp), STATUS_OK, "");
    return resp->status;
}

static Loyalty__V1__MemberRunTierMaintenanceResponse *maintain(const char *m, int64_t as_of) {
    Loyalty__V1__MemberRunTierMaintenanceRequest req =
        LOYALTY__V1__MEMBER_RUN_TIER_MAINTENANCE_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    req.as_of_at = as_of;
    Loyalty__V1__MemberRunTierMaintenanceResponse *resp = NULL;
    assert_status(call("RunTierMaintenance", &req, &resp), STATUS_OK, "");
    return resp;
}

static Loyalty__V1__MemberListTierHistoryResponse *history(const char *m, const char *member,
                                                           int size, const char *cursor) {
    Loyalty__V1__PageRequest page = LOYALTY__V1__PAGE_REQUEST__INIT;
    page.page_size = size;
    page.cursor = (char *)cursor;
    Loyalty__V1__MemberListTierHistoryRequest req =
        LOYALTY__V1__MEMBER_LIST_TIER_HISTORY_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.member_id = (char *)member;
    req.page = &page;
    Loyalty__V1__MemberListTierHistoryResponse *resp = NULL;
    assert_status(call("ListTierHistory", &req, &resp), STATUS_OK, "");
    return resp;
}

static Loyalty__V1__MemberCountResponse *count_members(const char *m) {
    Loyalty__V1__MemberCountRequest req = LOYALTY__V1__MEMBER_COUNT_REQUEST__INIT;
    req.merchant_id = (char *)m;
    Loyalty__V1__MemberCountResponse *resp = NULL;
    assert_status(call("CountMembers", &req, &resp), STATUS_OK, "");
    return resp;
}

static int64_t tier_count(const Loyalty__V1__MemberCountResponse *c, const char *tier_id) {
    for (size_t i = 0; i < c->n_by_tier; i++) {
        if (strcmp(c->by_tier[i]->tier->id, tier_id) == 0) {
            return c->by_tier[i]->count;
        }
    }
    return -1;
}

static int64_t kind_count(const Loyalty__V1__MemberCountResponse *c,
                          Loyalty__V1__MemberCardKind kind) {
    for (size_t i = 0; i < c->n_by_card_kind; i++) {
        if (c->by_card_kind[i]->card_kind == kind) {
            return c->by_card_kind[i]->count;
        }
    }
    return -1;
}

#define REASON(x) LOYALTY__V1__MEMBER_TIER_CHANGE_REASON__MEMBER_TIER_CHANGE_REASON_##x
#define KIND(x) LOYALTY__V1__MEMBER_CARD_KIND__MEMBER_CARD_KIND_##x

/* "YYYY-MM-DD" of a UTC instant (the test merchants keep the default UTC zone). */
static const char *utc_date(int64_t at) {
    time_t t = (time_t)at;
    struct tm tm;
    gmtime_r(&t, &tm);
    return arena_printf(&arena, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

/* The last day of a 12-month period starting on the UTC day of `at`. */
static const char *year_later_last_day(int64_t at) {
    int y, m, d;
    date_civil_from_days(at / DAY, &y, &m, &d);
    int64_t end = d <= date_days_in_month(y + 1, m) ? date_days_from_civil(y + 1, m, d)
                                                    : date_days_from_civil(y + 1, m + 1, 1);
    return utc_date((end - 1) * DAY);
}

Test(member_tiers, a_members_life_from_join_to_gold_to_a_downgrade) {
    /* Goal: join (no tier, FREE) -> Silver exactly at its threshold -> Gold two levels of value
     * later; a year later the Gold value renews Gold with carry-over; a year after that, with
     * no new orders, the carry is below Gold's retain threshold: one level down to Silver with
     * the carry-over arithmetic of member.proto. Every step is in the history and the counts. */
    harness_start(&svc, "member-svc", NULL);
    const char *m = harness_merchant("life");
    const char *silver, *gold;
    standard_ladder(m, &silver, &gold);
    const char *ana = member_create(m, &(member_spec_t){.name = "Ana"});
    Loyalty__V1__MemberTierStatus *st = get_tier(m, ana);
    cr_assert_str_eq(st->tier->id, "");
    cr_assert_eq(st->card_kind, KIND(FREE));
    cr_assert_eq(st->earn_multiplier_bps, 10000);
    cr_assert_str_eq(st->next_tier->id, silver);
    cr_assert_eq(st->value_to_next_tier, 1000);

    Loyalty__V1__MemberRecordOrderResponse *o = NULL;
    assert_status(record_order(m, ana, "o-1", 99900, 999, 0, NULL, &o), STATUS_OK, "");
    cr_assert_eq(o->reason, REASON(UNSPECIFIED), "one below the threshold");
    cr_assert_eq(o->status->value_to_next_tier, 1);
    assert_status(record_order(m, ana, "o-2", 100, 1, 0, NULL, &o), STATUS_OK, "");
    cr_assert_eq(o->reason, REASON(UPGRADE));
    cr_assert_str_eq(o->old_tier->id, "");
    cr_assert_str_eq(o->new_tier->id, silver);
    cr_assert_str_eq(o->new_tier->name, "Silver");
    st = get_tier(m, ana); /* the cache was dropped by the order */
    cr_assert_str_eq(st->tier->id, silver);
    cr_assert_eq(st->card_kind, KIND(TIER));
    cr_assert_eq(st->discount_bps, 300);
    cr_assert_eq(st->earn_multiplier_bps, 15000);
    cr_assert_eq(st->birthday_bonus_points, 100);
    cr_assert_eq(st->period_value, 1000);
    cr_assert_eq(st->retain_threshold, 800);
    cr_assert_eq(st->value_to_retain, 0);
    int64_t now = (int64_t)time(NULL);
    cr_assert_str_eq(st->period_end, year_later_last_day(now), "a year from today");
    cr_assert_str_eq(st->valid_to, st->period_end);

    assert_status(record_order(m, ana, "o-3", 500000, 4000, 0, NULL, &o), STATUS_OK, "");
    cr_assert_eq(o->reason, REASON(UPGRADE));
    cr_assert_str_eq(o->old_tier->id, silver);
    cr_assert_str_eq(o->new_tier->id, gold);
    cr_assert_eq(o->stats->order_count, 3);
    cr_assert_eq(o->stats->total_spend_cents, 600000);
    cr_assert_eq(o->stats->total_growth, 5000);
    cr_assert_eq(o->stats->months_with_purchases, 1);
    st = get_tier(m, ana);
    cr_assert_str_eq(st->tier->id, gold);
    cr_assert_eq(st->discount_bps, 1000);
    cr_assert_eq(st->next_tier, NULL, "Gold is the top");

    /* Nothing is due before the period end. */
    Loyalty__V1__MemberRunTierMaintenanceResponse *r = maintain(m, now + 300 * DAY);
    cr_assert_eq(r->renewed + r->downgraded, 0);
    /* A year later: 5000 >= 4000 renews Gold and carries 1000 over. */
    r = maintain(m, now + 367 * DAY);
    cr_assert_eq(r->renewed, 1);
    cr_assert_eq(r->downgraded, 0);
    st = get_tier(m, ana);
    cr_assert_str_eq(st->tier->id, gold);
    cr_assert_eq(st->period_value, 1000);
    cr_assert_eq(st->value_to_retain, 3000);
    /* Another year without orders: 1000 < 4000 -> Silver, carry 1000 - 800 = 200. */
    r = maintain(m, now + 735 * DAY);
    cr_assert_eq(r->downgraded, 1);
    st = get_tier(m, ana);
    cr_assert_str_eq(st->tier->id, silver);
    cr_assert_eq(st->period_value, 200);
    cr_assert_eq(st->discount_bps, 300);

    Loyalty__V1__MemberListTierHistoryResponse *h = history(m, ana, 0, "");
    cr_assert_eq(h->n_changes, 4);
    Loyalty__V1__MemberTierChangeReason want[] = {REASON(DOWNGRADE), REASON(RENEWAL),
                                                  REASON(UPGRADE), REASON(UPGRADE)};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(h->changes[i]->reason, want[i], "history[%d] is %d", i,
                     (int)h->changes[i]->reason);
    }
    cr_assert_str_eq(h->changes[0]->from_tier->name, "Gold");
    cr_assert_str_eq(h->changes[0]->to_tier->name, "Silver");
    cr_assert_eq(h->changes[0]->period_value, 200);
    cr_assert(strstr(h->changes[0]->note, "1000 < retain 4000") != NULL, "%s", h->changes[0]->note);
    cr_assert_str_eq(h->changes[3]->order_id, "o-2");
    cr_assert_str_eq(h->page_info->next_cursor, "");
    /* Paging the history one change at a time gives the same changes in the same order. */
    const char *cursor = "";
    for (int i = 0; i < 4; i++) {
        Loyalty__V1__MemberListTierHistoryResponse *p = history(m, ana, 1, cursor);
        cr_assert_eq(p->n_changes, 1);
        cr_assert_str_eq(p->changes[0]->id, h->changes[i]->id);
        cursor = p->page_info->next_cursor;
    }
    cr_assert_eq(history(m, ana, 1, cursor)->n_changes, 0);

    Loyalty__V1__MemberCountResponse *c = count_members(m);
    cr_assert_eq(c->total, 1);
    cr_assert_eq(tier_count(c, silver), 1);
    cr_assert_eq(tier_count(c, gold), 0);
    cr_assert_eq(tier_count(c, ""), 0);
    cr_assert_eq(kind_count(c, KIND(TIER)), 1);
    cr_assert_eq(kind_count(c, KIND(FREE)), 0);
}

Test(member_tiers, express_upgrade_and_a_downgrade_a_year_later) {
    /* Goal: one order at Gold's express amount jumps from no tier straight to Gold with little
     * value; a year later that value (< Gold's retain) downgrades one level, to Silver. One
     * cent below the express amount does nothing. */
    harness_start(&svc, "member-svc", NULL);
    const char *m = harness_merchant("express");
    const char *silver, *gold;
    standard_ladder(m, &silver, &gold);
    const char *bo = member_create(m, &(member_spec_t){.name = "Bo"});
    Loyalty__V1__MemberRecordOrderResponse *o = NULL;
    assert_status(record_order(m, bo, "e-1", 299999, 10, 0, NULL, &o), STATUS_OK, "");
    cr_assert_eq(o->reason, REASON(UNSPECIFIED));
    assert_status(record_order(m, bo, "e-2", 300000, 10, 0, NULL, &o), STATUS_OK, "");
    cr_assert_eq(o->reason, REASON(EXPRESS));
    cr_assert_str_eq(o->new_tier->id, gold);
    cr_assert_eq(o->status->period_value, 20);
    int64_t now = (int64_t)time(NULL);
    Loyalty__V1__MemberRunTierMaintenanceResponse *r = maintain(m, now + 367 * DAY);
    cr_assert_eq(r->downgraded, 1);
    Loyalty__V1__MemberTierStatus *st = get_tier(m, bo);
    cr_assert_str_eq(st->tier->id, silver);
    cr_assert_eq(st->period_value, 0, "20 - Silver's retain 800 is below 0: nothing carries");
    /* And one more year: Silver with 0 < 800 -> no tier. */
    maintain(m, now + 735 * DAY);
    st = get_tier(m, bo);
    cr_assert_str_eq(st->tier->id, "");
    cr_assert_eq(st->card_kind, KIND(FREE));
}

Test(member_tiers, several_levels_at_once) {
    harness_start(&svc, "member-svc", NULL);
    const char *m = harness_merchant("jump");
    const char *silver, *gold;
    standard_ladder(m, &silver, &gold);
    const char *cy = member_create(m, &(member_spec_t){.name = "Cy"});
    Loyalty__V1__MemberRecordOrderResponse *o = NULL;
    assert_status(record_order(m, cy, "j-1", 1000, 6000, 0, NULL, &o), STATUS_OK, "");
    cr_assert_eq(o->reason, REASON(UPGRADE));
    cr_assert_str_eq(o->old_tier->id, "");
    cr_assert_str_eq(o->new_tier->id, gold);
    (void)silver;
}

Test(member_tiers, returns_deduct_and_cross_the_threshold_back) {
    /* Goal: partial returns deduct what they take back; at the threshold the tier holds, one
     * below it the upgrade of this period is undone (RETURN); returns never exceed the order;
     * a fully returned order stops counting in the statistics. */
    harness_start(&svc, "member-svc", NULL);
    const char *m = harness_merchant("ret");
    const char *silver, *gold;
    standard_ladder(m, &silver, &gold);
    const char *di = member_create(m, &(member_spec_t){.name = "Di"});
    Loyalty__V1__MemberRecordOrderResponse *o = NULL;
    assert_status(record_order(m, di, "r-1", 150000, 1500, 0, NULL, &o), STATUS_OK, "");
    cr_assert_str_eq(o->new_tier->id, silver);
    Loyalty__V1__MemberRecordReturnResponse *rr = NULL;
    assert_status(record_return(m, "r-1", 50000, 500, &rr), STATUS_OK, "");
    cr_assert_eq(rr->reason, REASON(UNSPECIFIED), "exactly at the threshold");
    cr_assert_str_eq(rr->member_id, di);
    cr_assert_eq(rr->remaining_spend_cents, 100000);
    cr_assert_eq(rr->remaining_growth, 1000);
    cr_assert_eq(rr->status->period_value, 1000);
    cr_assert_str_eq(get_tier(m, di)->tier->id, silver);
    assert_status(record_return(m, "r-1", 100, 1, &rr), STATUS_OK, "");
    cr_assert_eq(rr->reason, REASON(RETURN));
    cr_assert_str_eq(rr->old_tier->id, silver);
    cr_assert_str_eq(rr->new_tier->id, "");
    cr_assert_eq(rr->stats->order_count, 1, "partly returned: still an order");
    cr_assert_str_eq(get_tier(m, di)->tier->id, "", "the cached tier was dropped");
    /* More than the order still holds. */
    assert_status(record_return(m, "r-1", 99901, 0, NULL), STATUS_FAILED_PRECONDITION,
                  "RETURN_EXCEEDS_ORDER");
    assert_status(record_return(m, "r-1", 0, 1000, NULL), STATUS_FAILED_PRECONDITION,
                  "RETURN_EXCEEDS_ORDER");
    assert_status(record_return(m, "nope", 1, 0, NULL), STATUS_NOT_FOUND, "ORDER_NOT_FOUND");
    assert_status(record_return(m, "r-1", 0, 0, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_SPEND_CENTS");
    /* The rest of it: fully returned. */
    assert_status(record_return(m, "r-1", 99900, 999, &rr), STATUS_OK, "");
    cr_assert_eq(rr->remaining_spend_cents, 0);
    cr_assert_eq(rr->stats->order_count, 0);
    cr_assert_eq(rr->stats->total_spend_cents, 0);
    cr_assert_eq(rr->stats->total_growth, 0);
    cr_assert_eq(rr->stats->months_with_purchases, 0);
    cr_assert_eq(rr->stats->last_order_at, 0);
    cr_assert_eq(rr->status->period_value, 0);
    assert_status(record_return(m, "r-1", 1, 0, NULL), STATUS_FAILED_PRECONDITION,
                  "RETURN_EXCEEDS_ORDER");
    Loyalty__V1__MemberListTierHistoryResponse *h = history(m, di, 0, "");
    cr_assert_eq(h->n_changes, 2);
    cr_assert_eq(h->changes[0]->reason, REASON(RETURN));
    cr_assert_str_eq(h->changes[0]->order_id, "r-1");
    (void)gold;
}

Test(member_tiers, record_order_is_idempotent_under_retries) {
    /* Goal: the same order recorded again (another idempotency key, e.g. a retried saga step)
     * applies once and answers the first outcome; other figures under the same order id are
     * refused; the same idempotency key replays; the same key for another request is refused. */
    harness_start(&svc, "member-svc", NULL);
    const char *m = harness_merchant("idem");
    const char *silver, *gold;
    standard_ladder(m, &silver, &gold);
    const char *ed = member_create(m, &(member_spec_t){.name = "Ed"});
    const char *other = member_create(m, &(member_spec_t){.name = "Other"});
    Loyalty__V1__MemberRecordOrderResponse *first = NULL, *again = NULL;
    const char *key = harness_key();
    assert_status(record_order(m, ed, "i-1", 120000, 1200, 0, key, &first), STATUS_OK, "");
    cr_assert_eq(first->reason, REASON(UPGRADE));
    cr_assert_not(first->already_recorded);
    for (int i = 0; i < 3; i++) {
        assert_status(record_order(m, ed, "i-1", 120000, 1200, 0, NULL, &again), STATUS_OK, "");
        cr_assert(again->already_recorded);
        cr_assert_eq(again->reason, REASON(UPGRADE));
        cr_assert_str_eq(again->new_tier->id, silver);
        cr_assert_eq(again->stats->order_count, 1);
        cr_assert_eq(again->status->period_value, 1200);
    }
    assert_status(record_order(m, ed, "i-1", 120000, 1200, 0, key, &again), STATUS_OK, "");
    cr_assert_not(again->already_recorded, "the idempotency key replays the first answer");
    assert_status(record_order(m, ed, "i-1", 120001, 1200, 0, NULL, NULL), STATUS_ALREADY_EXISTS,
                  "ORDER_ALREADY_RECORDED");
    assert_status(record_order(m, other, "i-1", 120000, 1200, 0, NULL, NULL), STATUS_ALREADY_EXISTS,
                  "ORDER_ALREADY_RECORDED");
    assert_status(record_order(m, ed, "i-2", 1, 1, 0, key, NULL), STATUS_ALREADY_EXISTS,
                  "IDEMPOTENCY_KEY_REUSED");
    Loyalty__V1__MemberStats *s = member_stats(m, ed);
    cr_assert_eq(s->order_count, 1);
    cr_assert_eq(s->total_spend_cents, 120000);
    cr_assert_eq(member_stats(m, other)->order_count, 0);
    /* Validation of the figures. */
    assert_status(record_order(m, ed, "i-3", -1, 0, 0, NULL, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_SPEND_CENTS");
    assert_status(record_order(m, ed, "i-3", 1000000000001LL, 0, 0, NULL, NULL),
                  STATUS_INVALID_ARGUMENT, "INVALID_SPEND_CENTS");
    assert_status(record_order(m, ed, "i-3", 1000000000000LL, 1000000000001LL, 0, NULL, NULL),
                  STATUS_INVALID_ARGUMENT, "INVALID_GROWTH_DELTA");
    assert_status(record_order(m, ed, "i-3", 1, 1, (int64_t)time(NULL) + 3600, NULL, NULL),
                  STATUS_INVALID_ARGUMENT, "INVALID_AT");
    assert_status(record_order(m, ed, "", 1, 1, 0, NULL, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_ORDER_ID");
    assert_status(record_order(m, "mbr_nobody", "i-3", 1, 1, 0, NULL, NULL), STATUS_NOT_FOUND,
                  "MEMBER_NOT_FOUND");
}

#define PARALLEL_ORDERS 20

typedef struct order_arg {
    const char *m;
    const char *member;
    int index;
    status_t st;
} order_arg_t;

static void *parallel_order(void *p) {
    order_arg_t *a = p;
    arena_t local;
    arena_init(&local);
    Loyalty__V1__MemberRecordOrderRequest req = LOYALTY__V1__MEMBER_RECORD_ORDER_REQUEST__INIT;
    char order[32], key[32];
    snprintf(order, sizeof order, "par-%d", a->index);
    snprintf(key, sizeof key, "par-key-%d", a->index);
    req.merchant_id = (char *)a->m;
    req.idempotency_key = key;
    req.member_id = (char *)a->member;
    req.order_id = order;
    req.spend_cents = 1000 + a->index;
    req.growth_delta = 60;
    ProtobufCMessage *resp = NULL;
    a->st = rpc_call(rpc_channel_get(svc.addr), &loyalty__v1__member_service__descriptor,
                     "RecordOrder", &req.base, &local, &resp, NULL);
    arena_free(&local);
    return NULL;
}

Test(member_tiers, parallel_orders_of_one_member_add_up_exactly) {
    /* Goal: 20 clients record 20 orders of one member at once: statistics, period value and
     * tier are exactly the sum, and exactly one UPGRADE is in the history. */
    harness_start(&svc, "member-svc", NULL);
    const char *m = harness_merchant("par");
    const char *silver, *gold;
    standard_ladder(m, &silver, &gold);
    const char *fa = member_create(m, &(member_spec_t){.name = "Fa"});
    pthread_t threads[PARALLEL_ORDERS];
    order_arg_t args[PARALLEL_ORDERS];
    for (int i = 0; i < PARALLEL_ORDERS; i++) {
        args[i] = (order_arg_t){.m = m, .member = fa, .index = i};
        cr_assert_eq(pthread_create(&threads[i], NULL, parallel_order, &args[i]), 0);
    }
    for (int i = 0; i < PARALLEL_ORDERS; i++) {
        pthread_join(threads[i], NULL);
    }
    int64_t spend = 0;
    for (int i = 0; i < PARALLEL_ORDERS; i++) {
        assert_status(args[i].st, STATUS_OK, "");
        spend += 1000 + i;
    }
    Loyalty__V1__MemberStats *s = member_stats(m, fa);
    cr_assert_eq(s->order_count, PARALLEL_ORDERS);
    cr_assert_eq(s->total_spend_cents, spend);
    cr_assert_eq(s->total_growth, 60 * PARALLEL_ORDERS);
    Loyalty__V1__MemberTierStatus *st = get_tier(m, fa);
    cr_assert_eq(st->period_value, 1200);
    cr_assert_str_eq(st->tier->id, silver);
    Loyalty__V1__MemberListTierHistoryResponse *h = history(m, fa, 0, "");
    cr_assert_eq(h->n_changes, 1);
    cr_assert_eq(h->changes[0]->reason, REASON(UPGRADE));
    cr_assert_eq(h->changes[0]->period_value, 1020, "the 17th order crossed 1000");
    Loyalty__V1__MemberCountResponse *c = count_members(m);
    cr_assert_eq(tier_count(c, silver), 1);
    cr_assert_eq(tier_count(c, ""), 0);
    (void)gold;
}

static const char *create_plan(const char *m, const char *tier, bool yearly, bool active) {
    Loyalty__V1__MemberPlan p = LOYALTY__V1__MEMBER_PLAN__INIT;
    p.name = yearly ? "Gold yearly" : "Gold monthly";
    p.tier_id = (char *)tier;
    p.period = yearly ? LOYALTY__V1__MEMBER_PLAN_PERIOD__MEMBER_PLAN_PERIOD_YEARLY
                      : LOYALTY__V1__MEMBER_PLAN_PERIOD__MEMBER_PLAN_PERIOD_MONTHLY;
    p.price_cents = yearly ? 9900 : 990;
    p.active = active;
    Loyalty__V1__MemberCreatePlanRequest req = LOYALTY__V1__MEMBER_CREATE_PLAN_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    req.plan = &p;
    Loyalty__V1__MemberCreatePlanResponse *resp = NULL;
    assert_status(call("CreateMembershipPlan", &req, &resp), STATUS_OK, "");
    cr_assert_eq(resp->plan->active, active);
    return resp->plan->id;
}

static status_t purchase(const char *m, const char *member, const char *plan, int quantity,
                         const char *order, Loyalty__V1__MemberPurchaseResponse **out) {
    Loyalty__V1__MemberPurchaseRequest req = LOYALTY__V1__MEMBER_PURCHASE_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    req.member_id = (char *)member;
    req.plan_id = (char *)plan;
    req.quantity = quantity;
    req.order_id = (char *)order;
    Loyalty__V1__MemberPurchaseResponse *resp = NULL;
    status_t st = call("PurchaseMembership", &req, &resp);
    if (out) {
        *out = resp;
    }
    return st;
}

static status_t assign(const char *m, const char *member, const char *tier, const char *reason,
                       const char *valid_to, Loyalty__V1__MemberTierStatus **out) {
    Loyalty__V1__MemberAssignTierRequest req = LOYALTY__V1__MEMBER_ASSIGN_TIER_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    req.member_id = (char *)member;
    req.tier_id = (char *)tier;
    req.reason = (char *)reason;
    req.valid_to = (char *)valid_to;
    Loyalty__V1__MemberAssignTierResponse *resp = NULL;
    status_t st = call("AssignTier", &req, &resp);
    if (out) {
        *out = resp ? resp->status : NULL;
    }
    return st;
}

Test(member_tiers, paid_cards_extend_expire_and_fall_back) {
    /* Goal: buying a Gold plan gives a PAID Gold card from today; buying the same plan again
     * extends it; the same order id again is a replay; when the card ends the member falls
     * back to the earned tier (EXPIRED); inactive and unknown plans are refused. */
    harness_start(&svc, "member-svc", NULL);
    const char *m = harness_merchant("paid");
    const char *silver, *gold;
    standard_ladder(m, &silver, &gold);
    const char *monthly = create_plan(m, gold, false, true);
    const char *closed = create_plan(m, gold, true, false);
    const char *gi = member_create(m, &(member_spec_t){.name = "Gi"});
    assert_status(record_order(m, gi, "g-1", 1, 1000, 0, NULL, NULL), STATUS_OK, ""); /* Silver */
    int64_t now = (int64_t)time(NULL);
    Loyalty__V1__MemberPurchaseResponse *p = NULL;
    assert_status(purchase(m, gi, monthly, 1, "buy-1", &p), STATUS_OK, "");
    cr_assert_eq(p->card->kind, KIND(PAID));
    cr_assert_str_eq(p->card->tier->id, gold);
    cr_assert_str_eq(p->card->plan_id, monthly);
    cr_assert_str_eq(p->card->valid_from, utc_date(now));
    cr_assert_str_eq(p->status->tier->id, gold);
    cr_assert_eq(p->status->card_kind, KIND(PAID));
    cr_assert_str_eq(p->status->earned_tier->id, silver);
    const char *first_to = p->card->valid_to;
    Loyalty__V1__MemberTierStatus *st = get_tier(m, gi);
    cr_assert_str_eq(st->tier->id, gold);
    cr_assert_eq(st->discount_bps, 1000);
    cr_assert_str_eq(st->valid_to, first_to);
    /* The same order again: a replay, nothing extended. */
    assert_status(purchase(m, gi, monthly, 1, "buy-1", &p), STATUS_OK, "");
    cr_assert(p->already_recorded);
    cr_assert_str_eq(p->card->valid_to, first_to);
    assert_status(purchase(m, gi, monthly, 2, "buy-1", NULL), STATUS_ALREADY_EXISTS,
                  "ORDER_ALREADY_RECORDED");
    /* Two more months of the same plan: extended from the day after valid_to. */
    assert_status(purchase(m, gi, monthly, 2, "buy-2", &p), STATUS_OK, "");
    cr_assert_str_eq(p->card->valid_from, utc_date(now));
    cr_assert_str_gt(p->card->valid_to, first_to);
    assert_status(purchase(m, gi, closed, 1, "buy-3", NULL), STATUS_FAILED_PRECONDITION,
                  "PLAN_INACTIVE");
    assert_status(purchase(m, gi, "plan_nope", 1, "buy-4", NULL), STATUS_NOT_FOUND,
                  "PLAN_NOT_FOUND");
    assert_status(purchase(m, gi, monthly, 37, "buy-5", NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_QUANTITY");
    /* About three months later the card has ended: back to the earned Silver. */
    Loyalty__V1__MemberRunTierMaintenanceResponse *r = maintain(m, now + 100 * DAY);
    cr_assert_eq(r->cards_expired, 1);
    st = get_tier(m, gi);
    cr_assert_str_eq(st->tier->id, silver);
    cr_assert_eq(st->card_kind, KIND(TIER));
    cr_assert_null(st->card);
    Loyalty__V1__MemberListTierHistoryResponse *h = history(m, gi, 0, "");
    cr_assert_eq(h->changes[0]->reason, REASON(EXPIRED));
    cr_assert_str_eq(h->changes[0]->from_tier->id, gold);
    cr_assert_str_eq(h->changes[0]->to_tier->id, silver);
    cr_assert_eq(h->changes[1]->reason, REASON(PAID));
    cr_assert_str_eq(h->changes[1]->order_id, "buy-2");
}

Test(member_tiers, internal_cards_hold_their_tier_while_valid) {
    /* Goal: an INTERNAL Gold card (with a reason, until a date) holds Gold for a member who
     * earned nothing, also through the maintenance, and ends after valid_to; removing it works;
     * a valid_to before today and an unknown tier are refused. */
    harness_start(&svc, "member-svc", NULL);
    const char *m = harness_merchant("internal");
    const char *silver, *gold;
    standard_ladder(m, &silver, &gold);
    const char *hu = member_create(m, &(member_spec_t){.name = "Hu"});
    int64_t now = (int64_t)time(NULL);
    Loyalty__V1__MemberTierStatus *st = NULL;
    assert_status(assign(m, hu, gold, "store manager's friend", utc_date(now + 40 * DAY), &st),
                  STATUS_OK, "");
    cr_assert_str_eq(st->tier->id, gold);
    cr_assert_eq(st->card_kind, KIND(INTERNAL));
    cr_assert_str_eq(st->card->reason, "store manager's friend");
    cr_assert_str_eq(st->valid_to, utc_date(now + 40 * DAY));
    cr_assert_str_eq(get_tier(m, hu)->tier->id, gold);
    Loyalty__V1__MemberCountResponse *c = count_members(m);
    cr_assert_eq(kind_count(c, KIND(INTERNAL)), 1);
    cr_assert_eq(tier_count(c, gold), 1);
    maintain(m, now + 30 * DAY); /* still valid */
    cr_assert_str_eq(get_tier(m, hu)->tier->id, gold);
    Loyalty__V1__MemberRunTierMaintenanceResponse *r = maintain(m, now + 42 * DAY);
    cr_assert_eq(r->cards_expired, 1);
    st = get_tier(m, hu);
    cr_assert_str_eq(st->tier->id, "");
    cr_assert_eq(st->card_kind, KIND(FREE));
    c = count_members(m);
    cr_assert_eq(kind_count(c, KIND(INTERNAL)), 0);
    cr_assert_eq(kind_count(c, KIND(FREE)), 1);
    /* Open-ended, then removed. */
    assert_status(assign(m, hu, silver, "vip list", "", &st), STATUS_OK, "");
    cr_assert_str_eq(st->valid_to, "");
    assert_status(assign(m, hu, "", "left the vip list", "", &st), STATUS_OK, "");
    cr_assert_eq(st->card_kind, KIND(FREE));
    Loyalty__V1__MemberListTierHistoryResponse *h = history(m, hu, 0, "");
    cr_assert_eq(h->changes[0]->reason, REASON(MANUAL));
    cr_assert_str_eq(h->changes[0]->note, "left the vip list");
    assert_status(assign(m, hu, gold, "x", utc_date(now - 2 * DAY), NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_VALID_TO");
    assert_status(assign(m, hu, "tier_nope", "x", "", NULL), STATUS_NOT_FOUND, "TIER_NOT_FOUND");
    assert_status(assign(m, hu, gold, "", "", NULL), STATUS_INVALID_ARGUMENT, "INVALID_REASON");
}

Test(member_tiers, ladders_are_validated_and_tier_changes_reach_cached_reads) {
    /* Goal: inconsistent ladders and an 11th tier are refused; the basis cannot change once
     * tiers exist; a change of a tier's benefits reaches GetMemberTier at once although the
     * member's status is cached. */
    harness_start(&svc, "member-svc", NULL);
    const char *m = harness_merchant("ladder");
    const char *silver, *gold;
    standard_ladder(m, &silver, &gold);
    Loyalty__V1__MemberTier t = LOYALTY__V1__MEMBER_TIER__INIT;
    t.name = "Platinum";
    t.rank = 3;
    t.upgrade_threshold = 5000; /* not above Gold's */
    t.retain_threshold = 4000;
    t.period_months = 12;
    t.earn_multiplier_bps = 20000;
    Loyalty__V1__MemberCreateTierRequest req = LOYALTY__V1__MEMBER_CREATE_TIER_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    req.tier = &t;
    assert_status(call("CreateTier", &req, NULL), STATUS_INVALID_ARGUMENT, "INVALID_LADDER");
    t.upgrade_threshold = 5001;
    t.rank = 2; /* Gold's rank */
    req.idempotency_key = (char *)harness_key();
    assert_status(call("CreateTier", &req, NULL), STATUS_INVALID_ARGUMENT, "INVALID_LADDER");
    t.rank = 11;
    req.idempotency_key = (char *)harness_key();
    assert_status(call("CreateTier", &req, NULL), STATUS_INVALID_ARGUMENT, "INVALID_TIER_RANK");
    for (int rank = 3; rank <= 10; rank++) {
        create_tier(m, "T", rank, 10000 * rank, 4000, 12, 0, 0);
    }
    t.rank = 10;
    t.upgrade_threshold = 999999;
    req.idempotency_key = (char *)harness_key();
    assert_status(call("CreateTier", &req, NULL), STATUS_FAILED_PRECONDITION, "TIER_LIMIT_REACHED");

    Loyalty__V1__MemberSettings s = LOYALTY__V1__MEMBER_SETTINGS__INIT;
    s.tier_basis = LOYALTY__V1__MEMBER_TIER_BASIS__MEMBER_TIER_BASIS_SPEND;
    char *mask[] = {"tier_basis"};
    Loyalty__V1__MemberUpdateSettingsRequest us = LOYALTY__V1__MEMBER_UPDATE_SETTINGS_REQUEST__INIT;
    us.merchant_id = (char *)m;
    us.idempotency_key = (char *)harness_key();
    us.settings = &s;
    us.update_mask = HARNESS_MASK_OF(mask, 1);
    assert_status(call("UpdateMemberSettings", &us, NULL), STATUS_FAILED_PRECONDITION,
                  "TIERS_EXIST");

    const char *iv = member_create(m, &(member_spec_t){.name = "Iv"});
    assert_status(record_order(m, iv, "l-1", 1, 1000, 0, NULL, NULL), STATUS_OK, "");
    cr_assert_eq(get_tier(m, iv)->discount_bps, 300);
    cr_assert_eq(get_tier(m, iv)->discount_bps, 300); /* now from the cache */
    Loyalty__V1__MemberTier upd = LOYALTY__V1__MEMBER_TIER__INIT;
    upd.name = "Silver+";
    upd.rank = 1;
    upd.upgrade_threshold = 1000;
    upd.retain_threshold = 800;
    upd.period_months = 12;
    upd.discount_bps = 750;
    upd.earn_multiplier_bps = 12500;
    Loyalty__V1__MemberUpdateTierRequest ur = LOYALTY__V1__MEMBER_UPDATE_TIER_REQUEST__INIT;
    ur.merchant_id = (char *)m;
    ur.idempotency_key = (char *)harness_key();
    ur.tier_id = (char *)silver;
    ur.tier = &upd;
    ur.update_mask = HARNESS_MASK("name", "rank", "upgrade_threshold", "retain_threshold",
                                  "period_months", "discount_bps", "earn_multiplier_bps");
    Loyalty__V1__MemberUpdateTierResponse *uresp = NULL;
    assert_status(call("UpdateTier", &ur, &uresp), STATUS_OK, "");
    cr_assert_str_eq(uresp->tier->name, "Silver+");
    Loyalty__V1__MemberTierStatus *st = get_tier(m, iv);
    cr_assert_eq(st->discount_bps, 750);
    cr_assert_str_eq(st->tier->name, "Silver+");
    cr_assert_eq(st->earn_multiplier_bps, 12500);
    upd.upgrade_threshold = 6000; /* above Gold's: inconsistent */
    ur.idempotency_key = (char *)harness_key();
    assert_status(call("UpdateTier", &ur, NULL), STATUS_INVALID_ARGUMENT, "INVALID_LADDER");
    ur.tier_id = "tier_nope";
    upd.upgrade_threshold = 1000;
    ur.idempotency_key = (char *)harness_key();
    assert_status(call("UpdateTier", &ur, NULL), STATUS_NOT_FOUND, "TIER_NOT_FOUND");
    Loyalty__V1__MemberListTiersRequest lr = LOYALTY__V1__MEMBER_LIST_TIERS_REQUEST__INIT;
    lr.merchant_id = (char *)m;
    Loyalty__V1__MemberListTiersResponse *tiers = NULL;
    assert_status(call("ListTiers", &lr, &tiers), STATUS_OK, "");
    cr_assert_eq(tiers->n_tiers, 10);
    cr_assert_str_eq(tiers->tiers[0]->name, "Silver+");
    cr_assert_eq(tiers->tier_basis, LOYALTY__V1__MEMBER_TIER_BASIS__MEMBER_TIER_BASIS_GROWTH);
}

Test(member_tiers, spend_basis_counts_spend_and_a_tier_with_threshold_zero_is_for_everyone) {
    /* Goal: with the SPEND basis thresholds are cents of spend; a rank-1 tier with threshold 0
     * is given at registration. */
    harness_start(&svc, "member-svc", NULL);
    const char *m = harness_merchant("spend");
    Loyalty__V1__MemberSettings s = LOYALTY__V1__MEMBER_SETTINGS__INIT;
    s.tier_basis = LOYALTY__V1__MEMBER_TIER_BASIS__MEMBER_TIER_BASIS_SPEND;
    s.time_zone = "Asia/Singapore";
    char *mask[] = {"tier_basis", "time_zone"};
    Loyalty__V1__MemberUpdateSettingsRequest us = LOYALTY__V1__MEMBER_UPDATE_SETTINGS_REQUEST__INIT;
    us.merchant_id = (char *)m;
    us.idempotency_key = (char *)harness_key();
    us.settings = &s;
    us.update_mask = HARNESS_MASK_OF(mask, 2);
    Loyalty__V1__MemberUpdateSettingsResponse *sr = NULL;
    assert_status(call("UpdateMemberSettings", &us, &sr), STATUS_OK, "");
    cr_assert_str_eq(sr->settings->time_zone, "Asia/Singapore");
    cr_assert_eq(sr->settings->lifecycle->new_days, 30, "defaults are kept");
    s.time_zone = "Mars/Olympus";
    us.idempotency_key = (char *)harness_key();
    assert_status(call("UpdateMemberSettings", &us, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_SETTINGS_TIME_ZONE");
    const char *base = create_tier(m, "Member", 1, 0, 0, 0, 0, 0);
    const char *vip = create_tier(m, "VIP", 2, 100000, 50000, 12, 0, 500);
    const char *jo = member_create(m, &(member_spec_t){.name = "Jo"});
    Loyalty__V1__MemberTierStatus *st = get_tier(m, jo);
    cr_assert_str_eq(st->tier->id, base);
    cr_assert_eq(st->card_kind, KIND(TIER));
    cr_assert_str_eq(st->valid_to, "", "a tier without period never ends");
    cr_assert_eq(st->basis, LOYALTY__V1__MEMBER_TIER_BASIS__MEMBER_TIER_BASIS_SPEND);
    Loyalty__V1__MemberRecordOrderResponse *o = NULL;
    assert_status(record_order(m, jo, "s-1", 99999, 1000000, 0, NULL, &o), STATUS_OK, "");
    cr_assert_eq(o->reason, REASON(UNSPECIFIED), "growth does not count on the SPEND basis");
    assert_status(record_order(m, jo, "s-2", 1, 0, 0, NULL, &o), STATUS_OK, "");
    cr_assert_str_eq(o->new_tier->id, vip);
    cr_assert_eq(o->status->period_value, 100000);
}

Test(member_tiers, merchants_are_isolated) {
    /* Goal: nothing of merchant A is visible to or changed by a request for merchant B. */
    harness_start(&svc, "member-svc", NULL);
    const char *a = harness_merchant("iso-a");
    const char *b = harness_merchant("iso-b");
    const char *silver, *gold;
    standard_ladder(a, &silver, &gold);
    const char *ka = member_create(a, &(member_spec_t){.name = "Ka"});
    assert_status(record_order(a, ka, "shared-order", 100, 1000, 0, NULL, NULL), STATUS_OK, "");
    Loyalty__V1__MemberGetTierRequest gt = LOYALTY__V1__MEMBER_GET_TIER_REQUEST__INIT;
    gt.merchant_id = (char *)b;
    gt.member_id = (char *)ka;
    assert_status(call("GetMemberTier", &gt, NULL), STATUS_NOT_FOUND, "MEMBER_NOT_FOUND");
    assert_status(record_order(b, ka, "x-1", 1, 1, 0, NULL, NULL), STATUS_NOT_FOUND,
                  "MEMBER_NOT_FOUND");
    assert_status(record_return(b, "shared-order", 1, 0, NULL), STATUS_NOT_FOUND,
                  "ORDER_NOT_FOUND");
    assert_status(assign(b, ka, gold, "x", "", NULL), STATUS_NOT_FOUND, "MEMBER_NOT_FOUND");
    /* B may use the same order id for its own member. */
    const char *kb = member_create(b, &(member_spec_t){.name = "Kb"});
    assert_status(record_order(b, kb, "shared-order", 5, 5, 0, NULL, NULL), STATUS_OK, "");
    Loyalty__V1__MemberCountResponse *cb = count_members(b);
    cr_assert_eq(cb->total, 1);
    cr_assert_eq(cb->n_by_tier, 1, "B has no tiers: only 'no tier'");
    cr_assert_eq(count_members(a)->total, 1);
    cr_assert_eq(member_stats(a, ka)->total_spend_cents, 100);
    cr_assert_eq(history(a, ka, 0, "")->n_changes, 1);
    Loyalty__V1__MemberListTierHistoryRequest hr =
        LOYALTY__V1__MEMBER_LIST_TIER_HISTORY_REQUEST__INIT;
    hr.merchant_id = (char *)b;
    hr.member_id = (char *)ka;
    assert_status(call("ListTierHistory", &hr, NULL), STATUS_NOT_FOUND, "MEMBER_NOT_FOUND");
}

/* The payloads of `type` events of merchant m on the private Redis, waiting up to 10 s for
 * `want` of them; then a pause and a second look, so that a duplicate would show. */
static int tier_events(int port, const char *m, const char *type, int want, char out[][1024],
                       int max) {
    int n = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int attempt = 0; attempt < 200; attempt++) {
            redisContext *c = redisConnect("127.0.0.1", port);
            cr_assert(c && !c->err);
            redisReply *r = redisCommand(c, "XRANGE loyalty:events - +");
            n = 0;
            for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
                redisReply *f = r->element[i]->element[1];
                bool merchant = false, kind = false;
                const char *payload = "";
                for (size_t k = 0; k + 1 < f->elements; k += 2) {
                    const char *key = f->element[k]->str, *v = f->element[k + 1]->str;
                    merchant |= strcmp(key, "merchant_id") == 0 && strcmp(v, m) == 0;
                    kind |= strcmp(key, "type") == 0 && strcmp(v, type) == 0;
                    payload = strcmp(key, "payload") == 0 ? v : payload;
                }
                if (merchant && kind && n < max) {
                    snprintf(out[n++], 1024, "%s", payload);
                }
            }
            freeReplyObject(r);
            redisFree(c);
            if (n >= want) {
                break;
            }
            usleep(50 * 1000);
        }
        usleep(pass == 0 ? 400 * 1000 : 0);
    }
    return n;
}

Test(member_tiers, tier_changes_and_profile_updates_are_domain_events) {
    /* Goal: every change of the tier a member gets is one tier.changed event (from, to, ranks,
     * reason, order) on loyalty:events, published through the outbox: none for joining, a
     * replayed order or a renewal; a profile update is one member.updated event. */
    redis_proc_t redis;
    harness_redis_start(&redis);
    /* A database of its own too: every member-svc publishes the whole member outbox to its own
     * Redis, so one of a test running alongside must not take these events. */
    char redis_env[96], pg_env[512];
    snprintf(redis_env, sizeof redis_env, "LOYALTY_REDIS_URL=%s", redis.url);
    snprintf(pg_env, sizeof pg_env, "LOYALTY_PG_DSN=%s", harness_private_database());
    const char *env[] = {redis_env, pg_env, NULL};
    harness_start(&svc, "member-svc", env);
    const char *m = harness_merchant("events");
    const char *silver, *gold;
    standard_ladder(m, &silver, &gold);
    const char *lu = member_create(m, &(member_spec_t){.name = "Lu"});
    assert_status(record_order(m, lu, "ev-1", 100, 1000, 0, NULL, NULL), STATUS_OK, "");
    assert_status(record_order(m, lu, "ev-1", 100, 1000, 0, NULL, NULL), STATUS_OK, "");
    assert_status(record_order(m, lu, "ev-2", 300000, 10, 0, NULL, NULL), STATUS_OK, "");
    int64_t now = (int64_t)time(NULL);
    maintain(m, now + 367 * DAY); /* Gold with 1010 < 4000: down to Silver */
    static char ev[8][1024];
    int n = tier_events(redis.port, m, "tier.changed", 3, ev, 8);
    cr_assert_eq(n, 3, "got %d tier.changed events", n);
    cr_assert(strstr(ev[0], "\"from_tier_id\":\"\"") && strstr(ev[0], "\"to_rank\":1") &&
                  strstr(ev[0], "\"reason\":\"UPGRADE\"") && strstr(ev[0], "\"order_id\":\"ev-1\""),
              "%s", ev[0]);
    cr_assert(strstr(ev[1], "\"reason\":\"EXPRESS\"") && strstr(ev[1], "\"from_rank\":1") &&
                  strstr(ev[1], "\"to_rank\":2") && strstr(ev[1], "\"card_kind\":\"TIER\""),
              "%s", ev[1]);
    cr_assert(strstr(ev[2], "\"reason\":\"DOWNGRADE\"") && strstr(ev[2], "\"to_rank\":1"), "%s",
              ev[2]);
    /* A profile update. */
    Loyalty__V1__MemberProfile p = LOYALTY__V1__MEMBER_PROFILE__INIT;
    p.name = "Lu Xin";
    char *mask[] = {"name"};
    Loyalty__V1__UpdateMemberRequest ur = LOYALTY__V1__UPDATE_MEMBER_REQUEST__INIT;
    ur.merchant_id = (char *)m;
    ur.idempotency_key = (char *)harness_key();
    ur.member_id = (char *)lu;
    ur.profile = &p;
    ur.update_mask = HARNESS_MASK_OF(mask, 1);
    assert_status(call("UpdateMember", &ur, NULL), STATUS_OK, "");
    n = tier_events(redis.port, m, "member.updated", 1, ev, 8);
    cr_assert_eq(n, 1);
    cr_assert(strstr(ev[0], "\"fields\":\"name\"") && strstr(ev[0], "\"version\":2"), "%s", ev[0]);
    cr_expect_eq(harness_stop(&svc), 0);
    svc.pid = 0;
    harness_redis_stop(&redis);
}
