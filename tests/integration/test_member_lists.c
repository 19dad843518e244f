/* test_member_lists.c -- member-svc lists, counts, segments and imports over real gRPC against
 * real PostgreSQL and Redis: ListMembers filters and cursor paging (every member exactly once
 * while members are added), CountMembers counters, lifecycle segments and RFM from orders and
 * time, ImportMembers batches, and the maintenance timer running on two replicas at once. */
#include "member_it.h"

#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

TestSuite(member_lists, .init = member_it_setup, .fini = member_it_teardown, .timeout = 240);

#define DAY 86400
#define SEG(x) LOYALTY__V1__MEMBER_SEGMENT__MEMBER_SEGMENT_##x
#define KIND(x) LOYALTY__V1__MEMBER_CARD_KIND__MEMBER_CARD_KIND_##x

static const char *create_tier(const char *m, const char *name, int rank, int64_t up,
                               int64_t retain) {
    Loyalty__V1__MemberTier t = LOYALTY__V1__MEMBER_TIER__INIT;
    t.name = (char *)name;
    t.rank = rank;
    t.upgrade_threshold = up;
    t.retain_threshold = retain;
    t.period_months = 12;
    t.earn_multiplier_bps = 10000;
    return member_create_tier_id(svc.addr, &arena, m, &t);
}

/* A member's idempotency key by name and merchant, so that replicas creating the same member
 * meet on one key. */
static const char *key_by_name(arena_t *a, const char *m, const char *name) {
    char *key = arena_printf(a, "create-%s-%s", name, m);
    if (strlen(key) > 47) {
        key[47] = '\0'; /* the keys these tests have always used */
    }
    return key;
}

static void order(const char *m, const char *member, const char *order_id, int64_t spend,
                  int64_t growth, int64_t at) {
    Loyalty__V1__MemberRecordOrderRequest req = LOYALTY__V1__MEMBER_RECORD_ORDER_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    req.member_id = (char *)member;
    req.order_id = (char *)order_id;
    req.spend_cents = spend;
    req.growth_delta = growth;
    req.at = at;
    assert_status(call("RecordOrder", &req, NULL), STATUS_OK, "");
}

static Loyalty__V1__MemberListResponse *list(const char *m, Loyalty__V1__MemberListFilter *f,
                                             int size, const char *cursor, bool newest_first) {
    Loyalty__V1__PageRequest page = LOYALTY__V1__PAGE_REQUEST__INIT;
    page.page_size = size;
    page.cursor = (char *)cursor;
    Loyalty__V1__MemberListRequest req = LOYALTY__V1__MEMBER_LIST_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.filter = f;
    req.page = &page;
    req.newest_first = newest_first;
    Loyalty__V1__MemberListResponse *resp = NULL;
    assert_status(call("ListMembers", &req, &resp), STATUS_OK, "");
    return resp;
}

static status_t list_status(const char *m, Loyalty__V1__MemberListFilter *f, int size,
                            const char *cursor, bool newest_first) {
    Loyalty__V1__PageRequest page = LOYALTY__V1__PAGE_REQUEST__INIT;
    page.page_size = size;
    page.cursor = (char *)cursor;
    Loyalty__V1__MemberListRequest req = LOYALTY__V1__MEMBER_LIST_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.filter = f;
    req.page = &page;
    req.newest_first = newest_first;
    return call("ListMembers", &req, NULL);
}

/* The names listed by one page of a filter, joined with ',' in list order. */
static const char *names(const char *m, Loyalty__V1__MemberListFilter *f, bool newest_first) {
    Loyalty__V1__MemberListResponse *r = list(m, f, 100, "", newest_first);
    char *out = arena_strdup(&arena, "");
    for (size_t i = 0; i < r->n_members; i++) {
        out =
            arena_printf(&arena, "%s%s%s", out, i ? "," : "", r->members[i]->member->profile->name);
    }
    return out;
}

static Loyalty__V1__MemberCountResponse *counts(const char *m) {
    Loyalty__V1__MemberCountRequest req = LOYALTY__V1__MEMBER_COUNT_REQUEST__INIT;
    req.merchant_id = (char *)m;
    Loyalty__V1__MemberCountResponse *resp = NULL;
    assert_status(call("CountMembers", &req, &resp), STATUS_OK, "");
    return resp;
}

static int64_t segment_count(const Loyalty__V1__MemberCountResponse *c,
                             Loyalty__V1__MemberSegment s) {
    for (size_t i = 0; i < c->n_by_segment; i++) {
        if (c->by_segment[i]->segment == s) {
            return c->by_segment[i]->count;
        }
    }
    return -1;
}

static void set_lifecycle(const char *m, int new_days) {
    Loyalty__V1__MemberLifecycleRules l = LOYALTY__V1__MEMBER_LIFECYCLE_RULES__INIT;
    l.new_days = new_days;
    l.active_months_min = 3;
    l.sleeping_after_days = 90;
    l.lost_after_days = 90;
    l.sleeping_orders_max = 4;
    Loyalty__V1__MemberSettings s = LOYALTY__V1__MEMBER_SETTINGS__INIT;
    s.lifecycle = &l;
    char *mask[] = {"lifecycle"};
    Loyalty__V1__MemberUpdateSettingsRequest req =
        LOYALTY__V1__MEMBER_UPDATE_SETTINGS_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    req.settings = &s;
    req.update_mask = HARNESS_MASK_OF(mask, 1);
    assert_status(call("UpdateMemberSettings", &req, NULL), STATUS_OK, "");
}

static void maintain(const char *m) {
    Loyalty__V1__MemberRunTierMaintenanceRequest req =
        LOYALTY__V1__MEMBER_RUN_TIER_MAINTENANCE_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    assert_status(call("RunTierMaintenance", &req, NULL), STATUS_OK, "");
}

Test(member_lists, filters_select_exactly_the_matching_members) {
    /* Goal: each filter (tier, no tier, card kind, tag, birthday month and day, last order,
     * registration time) lists exactly its members, oldest first or newest first; bad filters
     * and cursors are refused by name. */
    harness_start(&svc, "member-svc", NULL);
    const char *m = harness_merchant("filters");
    const char *silver = create_tier(m, "Silver", 1, 1000, 800);
    const char *ann = member_create(m, &(member_spec_t){.name = "ann",
                                                        .birthday = "1992-02-29",
                                                        .tag = "VIP",
                                                        .key = key_by_name(&arena, m, "ann")});
    const char *ben = member_create(m, &(member_spec_t){.name = "ben",
                                                        .birthday = "1985-02-14",
                                                        .tag = "vip",
                                                        .key = key_by_name(&arena, m, "ben")});
    const char *cat = member_create(m, &(member_spec_t){.name = "cat",
                                                        .birthday = "1979-07-01",
                                                        .tag = "newsletter",
                                                        .key = key_by_name(&arena, m, "cat")});
    const char *dan =
        member_create(m, &(member_spec_t){.name = "dan", .key = key_by_name(&arena, m, "dan")});
    int64_t now = (int64_t)time(NULL);
    order(m, ann, "o-ann", 5000, 1000, now - 10 * DAY);
    order(m, cat, "o-cat", 100, 1, now - 200 * DAY);
    Loyalty__V1__MemberAssignTierRequest as = LOYALTY__V1__MEMBER_ASSIGN_TIER_REQUEST__INIT;
    as.merchant_id = (char *)m;
    as.idempotency_key = (char *)harness_key();
    as.member_id = (char *)dan;
    as.tier_id = (char *)silver;
    as.reason = "staff";
    assert_status(call("AssignTier", &as, NULL), STATUS_OK, "");

    cr_assert_str_eq(names(m, NULL, false), "ann,ben,cat,dan");
    cr_assert_str_eq(names(m, NULL, true), "dan,cat,ben,ann");
    Loyalty__V1__MemberListFilter f = LOYALTY__V1__MEMBER_LIST_FILTER__INIT;
    f._tier_id_case = LOYALTY__V1__MEMBER_LIST_FILTER___TIER_ID_TIER_ID;
    f.tier_id = (char *)silver;
    cr_assert_str_eq(names(m, &f, false), "ann,dan");
    f.tier_id = "";
    cr_assert_str_eq(names(m, &f, false), "ben,cat");
    f = (Loyalty__V1__MemberListFilter)LOYALTY__V1__MEMBER_LIST_FILTER__INIT;
    f.card_kind = KIND(INTERNAL);
    cr_assert_str_eq(names(m, &f, false), "dan");
    f.card_kind = KIND(TIER);
    cr_assert_str_eq(names(m, &f, false), "ann");
    f = (Loyalty__V1__MemberListFilter)LOYALTY__V1__MEMBER_LIST_FILTER__INIT;
    f.tag = "VIP";
    cr_assert_str_eq(names(m, &f, false), "ann,ben");
    f = (Loyalty__V1__MemberListFilter)LOYALTY__V1__MEMBER_LIST_FILTER__INIT;
    f.birthday_month = 2;
    cr_assert_str_eq(names(m, &f, false), "ann,ben");
    f.birthday_day = 29;
    cr_assert_str_eq(names(m, &f, false), "ann");
    f = (Loyalty__V1__MemberListFilter)LOYALTY__V1__MEMBER_LIST_FILTER__INIT;
    f.last_order_to_at = now - 100 * DAY; /* win-back: bought, but not for 100 days */
    cr_assert_str_eq(names(m, &f, false), "cat");
    f.last_order_to_at = 0;
    f.last_order_from_at = now - 30 * DAY;
    cr_assert_str_eq(names(m, &f, false), "ann");
    f = (Loyalty__V1__MemberListFilter)LOYALTY__V1__MEMBER_LIST_FILTER__INIT;
    f.registered_to_at = now - DAY;
    cr_assert_str_eq(names(m, &f, false), "");
    f.registered_to_at = 0;
    f.registered_from_at = now - 3600;
    cr_assert_str_eq(names(m, &f, false), "ann,ben,cat,dan");
    f = (Loyalty__V1__MemberListFilter)LOYALTY__V1__MEMBER_LIST_FILTER__INIT;
    f.segment = SEG(NEW);
    cr_assert_str_eq(names(m, &f, false), "ann,ben,cat,dan");
    /* A list item carries the tier, the card kind and the statistics. */
    Loyalty__V1__MemberListResponse *r = list(m, NULL, 1, "", false);
    cr_assert_str_eq(r->members[0]->tier->name, "Silver");
    cr_assert_eq(r->members[0]->card_kind, KIND(TIER));
    cr_assert_eq(r->members[0]->stats->total_spend_cents, 5000);
    cr_assert_str_eq(r->members[0]->member->profile->birthday, "1992-02-29");

    f = (Loyalty__V1__MemberListFilter)LOYALTY__V1__MEMBER_LIST_FILTER__INIT;
    f.birthday_day = 3;
    assert_status(list_status(m, &f, 0, "", false), STATUS_INVALID_ARGUMENT,
                  "INVALID_FILTER_BIRTHDAY_DAY");
    f.birthday_day = 0;
    f.birthday_month = 13;
    assert_status(list_status(m, &f, 0, "", false), STATUS_INVALID_ARGUMENT,
                  "INVALID_FILTER_BIRTHDAY_MONTH");
    f.birthday_month = 0;
    f.segment = 99;
    assert_status(list_status(m, &f, 0, "", false), STATUS_INVALID_ARGUMENT,
                  "INVALID_FILTER_SEGMENT");
    f.segment = 0;
    f.registered_from_at = 200;
    f.registered_to_at = 100;
    assert_status(list_status(m, &f, 0, "", false), STATUS_INVALID_ARGUMENT,
                  "INVALID_FILTER_REGISTERED_TO_AT");
    assert_status(list_status(m, NULL, 501, "", false), STATUS_INVALID_ARGUMENT,
                  "INVALID_PAGE_PAGE_SIZE");
    assert_status(list_status(m, NULL, 0, "garbage!", false), STATUS_INVALID_ARGUMENT,
                  "INVALID_PAGE_CURSOR");
    r = list(m, NULL, 2, "", false);
    cr_assert_str_neq(r->page_info->next_cursor, "");
    assert_status(list_status(m, NULL, 2, r->page_info->next_cursor, true), STATUS_INVALID_ARGUMENT,
                  "INVALID_PAGE_CURSOR");
    (void)ben;
}

#define INITIAL_MEMBERS 60
#define ADDED_MEMBERS 40

typedef struct adder {
    const char *m;
    int created;
} adder_t;

static void *add_members(void *p) {
    adder_t *a = p;
    arena_t local;
    arena_init(&local);
    for (int i = 0; i < ADDED_MEMBERS; i++) {
        char name[32];
        snprintf(name, sizeof name, "late-%02d", i);
        member_spec_t spec = {.name = name, .key = key_by_name(&local, a->m, name)};
        status_t st = member_create_at(svc.addr, &local, a->m, &spec, NULL);
        if (status_is_ok(&st)) {
            a->created++;
        }
    }
    arena_free(&local);
    return NULL;
}

static void page_through(const char *m, bool newest_first, const char **initial, int *seen) {
    const char *cursor = "";
    const char *all[INITIAL_MEMBERS + ADDED_MEMBERS + 1];
    int n_all = 0;
    for (int pages = 0; pages < 100; pages++) {
        Loyalty__V1__MemberListResponse *r = list(m, NULL, 7, cursor, newest_first);
        for (size_t i = 0; i < r->n_members; i++) {
            const char *id = r->members[i]->member->id;
            for (int k = 0; k < n_all; k++) {
                cr_assert_str_neq(all[k], id, "member listed twice");
            }
            cr_assert_lt(n_all, INITIAL_MEMBERS + ADDED_MEMBERS);
            all[n_all++] = id;
            for (int k = 0; k < INITIAL_MEMBERS; k++) {
                if (strcmp(initial[k], id) == 0) {
                    seen[k]++;
                }
            }
        }
        cursor = r->page_info->next_cursor;
        if (cursor[0] == '\0') {
            break;
        }
        usleep(20000); /* let the adder interleave */
    }
}

Test(member_lists, paging_lists_every_member_exactly_once_while_members_are_added) {
    /* Goal: keyset paging in both orders returns each member that existed when paging started
     * exactly once, while another client keeps adding members; no member twice. */
    harness_start(&svc, "member-svc", NULL);
    for (int pass = 0; pass < 2; pass++) { /* oldest first, then newest first */
        const char *m = harness_merchant(pass ? "paging-desc" : "paging-asc");
        const char *initial[INITIAL_MEMBERS];
        for (int i = 0; i < INITIAL_MEMBERS; i++) {
            initial[i] = member_create(
                m,
                &(member_spec_t){.name = arena_printf(&arena, "m-%02d", i),
                                 .key = key_by_name(&arena, m, arena_printf(&arena, "m-%02d", i))});
        }
        adder_t a = {.m = m};
        pthread_t t;
        cr_assert_eq(pthread_create(&t, NULL, add_members, &a), 0);
        int seen[INITIAL_MEMBERS] = {0};
        page_through(m, pass == 1, initial, seen);
        pthread_join(t, NULL);
        cr_assert_eq(a.created, ADDED_MEMBERS);
        for (int k = 0; k < INITIAL_MEMBERS; k++) {
            cr_assert_eq(seen[k], 1, "member %d seen %d times", k, seen[k]);
        }
        cr_assert_eq(counts(m)->total, INITIAL_MEMBERS + ADDED_MEMBERS);
    }
}

Test(member_lists, segments_and_rfm_follow_orders_returns_and_time) {
    /* Goal: with new_days 0 nobody is NEW; each segment is reached by its rule; counts by
     * segment match; a full return moves a member back; RFM scores rank the buyers. */
    const char *env[] = {"JOB_INTERVAL_S=1", NULL};
    harness_start(&svc, "member-svc", env);
    const char *m = harness_merchant("seg");
    const char *nop =
        member_create(m, &(member_spec_t){.name = "nop", .key = key_by_name(&arena, m, "nop")});
    cr_assert_eq(member_stats(m, nop)->segment, SEG(NEW));
    set_lifecycle(m, 0);
    /* The timer re-evaluates every member after a threshold change. */
    for (int i = 0; i < 100 && member_stats(m, nop)->segment != SEG(NO_PURCHASE); i++) {
        usleep(100000);
    }
    cr_assert_eq(member_stats(m, nop)->segment, SEG(NO_PURCHASE));
    int64_t now = (int64_t)time(NULL);
    const char *lost =
        member_create(m, &(member_spec_t){.name = "lost", .key = key_by_name(&arena, m, "lost")});
    order(m, lost, "lost-1", 1000, 10, now - 100 * DAY);
    const char *sleeping = member_create(
        m, &(member_spec_t){.name = "sleeping", .key = key_by_name(&arena, m, "sleeping")});
    order(m, sleeping, "sl-1", 2000, 10, now - 120 * DAY);
    order(m, sleeping, "sl-2", 2000, 10, now - 100 * DAY);
    const char *risk =
        member_create(m, &(member_spec_t){.name = "risk", .key = key_by_name(&arena, m, "risk")});
    for (int i = 0; i < 5; i++) {
        order(m, risk, arena_printf(&arena, "risk-%d", i), 3000, 10, now - (100 + i) * DAY);
    }
    const char *active = member_create(
        m, &(member_spec_t){.name = "active", .key = key_by_name(&arena, m, "active")});
    order(m, active, "ac-1", 50000, 10, now - 85 * DAY);
    order(m, active, "ac-2", 50000, 10, now - 45 * DAY);
    order(m, active, "ac-3", 50000, 10, now - 5 * DAY);
    const char *occ =
        member_create(m, &(member_spec_t){.name = "occ", .key = key_by_name(&arena, m, "occ")});
    order(m, occ, "occ-1", 700, 10, now - DAY);
    cr_assert_eq(member_stats(m, lost)->segment, SEG(LOST), "lost is %d",
                 member_stats(m, lost)->segment);
    cr_assert_eq(member_stats(m, sleeping)->segment, SEG(SLEEPING));
    cr_assert_eq(member_stats(m, risk)->segment, SEG(AT_RISK));
    Loyalty__V1__MemberStats *s = member_stats(m, active);
    cr_assert_eq(s->segment, SEG(ACTIVE));
    cr_assert_eq(s->months_with_purchases, 3);
    cr_assert_eq(member_stats(m, occ)->segment, SEG(OCCASIONAL));
    Loyalty__V1__MemberCountResponse *c = counts(m);
    cr_assert_eq(c->total, 6);
    cr_assert_eq(segment_count(c, SEG(NEW)), 0);
    cr_assert_eq(segment_count(c, SEG(NO_PURCHASE)), 1);
    cr_assert_eq(segment_count(c, SEG(LOST)), 1);
    cr_assert_eq(segment_count(c, SEG(SLEEPING)), 1);
    cr_assert_eq(segment_count(c, SEG(AT_RISK)), 1);
    cr_assert_eq(segment_count(c, SEG(ACTIVE)), 1);
    cr_assert_eq(segment_count(c, SEG(OCCASIONAL)), 1);
    Loyalty__V1__MemberListFilter f = LOYALTY__V1__MEMBER_LIST_FILTER__INIT;
    f.segment = SEG(SLEEPING);
    cr_assert_str_eq(names(m, &f, false), "sleeping");

    /* RFM over the 5 buyers: occ bought last, active next and spent most; risk bought most
     * often; the three who last bought ~100 days ago share the lowest recency. */
    maintain(m);
    cr_assert_eq(member_stats(m, occ)->rfm->recency, 5);
    s = member_stats(m, active);
    cr_assert_eq(s->rfm->recency, 4, "r=%d", s->rfm->recency);
    cr_assert_eq(s->rfm->monetary, 5, "m=%d", s->rfm->monetary);
    cr_assert_eq(member_stats(m, sleeping)->rfm->recency, 1);
    s = member_stats(m, risk);
    cr_assert_eq(s->rfm->frequency, 5, "f=%d", s->rfm->frequency);
    s = member_stats(m, lost);
    cr_assert_eq(s->rfm->frequency, 1);
    cr_assert_eq(s->rfm->monetary, 2, "only occ (700) spent less than lost (1000)");
    cr_assert_eq(member_stats(m, occ)->rfm->monetary, 1);
    cr_assert_eq(member_stats(m, nop)->rfm->recency, 0, "no orders: no score");

    /* Returning occ's only order: no purchase left. */
    Loyalty__V1__MemberRecordReturnRequest rr = LOYALTY__V1__MEMBER_RECORD_RETURN_REQUEST__INIT;
    rr.merchant_id = (char *)m;
    rr.idempotency_key = (char *)harness_key();
    rr.order_id = "occ-1";
    rr.spend_cents = 700;
    rr.growth_delta = 10;
    assert_status(call("RecordReturn", &rr, NULL), STATUS_OK, "");
    cr_assert_eq(member_stats(m, occ)->segment, SEG(NO_PURCHASE));
    c = counts(m);
    cr_assert_eq(segment_count(c, SEG(OCCASIONAL)), 0);
    cr_assert_eq(segment_count(c, SEG(NO_PURCHASE)), 2);
}

static Loyalty__V1__MemberImportItem *import_item(const char *external_id, const char *name,
                                                  const char *phone) {
    Loyalty__V1__MemberImportItem *it = arena_alloc(&arena, sizeof *it);
    loyalty__v1__member_import_item__init(it);
    Loyalty__V1__MemberProfile *p = arena_alloc(&arena, sizeof *p);
    loyalty__v1__member_profile__init(p);
    p->name = (char *)name;
    p->phone = (char *)phone;
    it->external_id = (char *)external_id;
    it->profile = p;
    return it;
}

static status_t import(const char *m, const char *batch, Loyalty__V1__MemberImportItem **items,
                       size_t n, Loyalty__V1__MemberImportResponse **out) {
    Loyalty__V1__MemberImportRequest req = LOYALTY__V1__MEMBER_IMPORT_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    req.batch_id = (char *)batch;
    req.items = items;
    req.n_items = n;
    Loyalty__V1__MemberImportResponse *resp = NULL;
    status_t st = call("ImportMembers", &req, &resp);
    if (out) {
        *out = resp;
    }
    return st;
}

Test(member_lists, import_batches_carry_profiles_tiers_statistics_and_cards) {
    /* Goal: a batch creates members with their tier and period, statistics and card; the same
     * batch again replays its results; another batch under the same id is refused; existing
     * external ids and taken phones are reported per item; an invalid item rejects the batch
     * naming the item. */
    harness_start(&svc, "member-svc", NULL);
    const char *m = harness_merchant("import");
    const char *silver = create_tier(m, "Silver", 1, 1000, 800);
    const char *gold = create_tier(m, "Gold", 2, 5000, 4000);
    int64_t now = (int64_t)time(NULL);
    Loyalty__V1__MemberImportItem *a = import_item("old-1", "Old One", "+6591110001");
    a->registered_at = now - 400 * DAY;
    a->tier_id = (char *)gold;
    a->tier_valid_to = "2099-12-31";
    a->period_value = 4500;
    Loyalty__V1__MemberStats st = LOYALTY__V1__MEMBER_STATS__INIT;
    st.order_count = 7;
    st.total_spend_cents = 123456;
    st.total_growth = 4500;
    st.first_order_at = now - 390 * DAY;
    st.last_order_at = now - 20 * DAY;
    st.months_with_purchases = 5;
    a->stats = &st;
    Loyalty__V1__MemberImportItem *b = import_item("old-2", "Old Two", "");
    Loyalty__V1__MemberCard card = LOYALTY__V1__MEMBER_CARD__INIT;
    Loyalty__V1__MemberTierRef ref = LOYALTY__V1__MEMBER_TIER_REF__INIT;
    ref.id = (char *)silver;
    card.kind = KIND(INTERNAL);
    card.tier = &ref;
    card.valid_from = "2020-01-01";
    card.reason = "migrated staff card";
    b->card = &card;
    Loyalty__V1__MemberImportItem *items[] = {a, b};
    Loyalty__V1__MemberImportResponse *r = NULL;
    assert_status(import(m, "batch-1", items, 2, &r), STATUS_OK, "");
    cr_assert_eq(r->created, 2);
    cr_assert_eq(r->n_results, 2);
    const char *one = r->results[0]->member_id;
    cr_assert_eq(r->results[1]->outcome,
                 LOYALTY__V1__MEMBER_IMPORT_OUTCOME__MEMBER_IMPORT_OUTCOME_CREATED);

    Loyalty__V1__MemberGetTierRequest gt = LOYALTY__V1__MEMBER_GET_TIER_REQUEST__INIT;
    gt.merchant_id = (char *)m;
    gt.member_id = (char *)one;
    Loyalty__V1__MemberGetTierResponse *tr = NULL;
    assert_status(call("GetMemberTier", &gt, &tr), STATUS_OK, "");
    cr_assert_str_eq(tr->status->tier->id, gold);
    cr_assert_str_eq(tr->status->period_end, "2099-12-31");
    cr_assert_eq(tr->status->period_value, 4500);
    Loyalty__V1__MemberStats *s = member_stats(m, one);
    cr_assert_eq(s->order_count, 7);
    cr_assert_eq(s->total_spend_cents, 123456);
    cr_assert_eq(s->months_with_purchases, 5);
    cr_assert_eq(s->segment, SEG(ACTIVE), "registered 400 days ago, bought 20 days ago");
    gt.member_id = r->results[1]->member_id;
    assert_status(call("GetMemberTier", &gt, &tr), STATUS_OK, "");
    cr_assert_eq(tr->status->card_kind, KIND(INTERNAL));
    cr_assert_str_eq(tr->status->card->reason, "migrated staff card");
    cr_assert_str_eq(tr->status->valid_to, "");

    /* The same batch again: the same results, nothing new. */
    Loyalty__V1__MemberImportResponse *again = NULL;
    assert_status(import(m, "batch-1", items, 2, &again), STATUS_OK, "");
    cr_assert_str_eq(again->results[0]->member_id, one);
    cr_assert_eq(again->created, 2);
    cr_assert_eq(counts(m)->total, 2);
    /* Other items under the same batch id. */
    Loyalty__V1__MemberImportItem *c = import_item("old-3", "Old Three", "");
    Loyalty__V1__MemberImportItem *other[] = {c};
    assert_status(import(m, "batch-1", other, 1, NULL), STATUS_ALREADY_EXISTS, "BATCH_ID_REUSED");
    /* Per-item conflicts in a new batch. */
    Loyalty__V1__MemberImportItem *dup = import_item("old-1", "Old One Again", "");
    Loyalty__V1__MemberImportItem *phone = import_item("old-4", "Phone Clash", "+65 9111 0001");
    Loyalty__V1__MemberImportItem *mixed[] = {dup, phone, c};
    assert_status(import(m, "batch-2", mixed, 3, &r), STATUS_OK, "");
    cr_assert_eq(r->created, 1);
    cr_assert_eq(r->skipped, 2);
    cr_assert_eq(r->results[0]->outcome,
                 LOYALTY__V1__MEMBER_IMPORT_OUTCOME__MEMBER_IMPORT_OUTCOME_ALREADY_EXISTS);
    cr_assert_str_eq(r->results[0]->member_id, one);
    cr_assert_eq(r->results[1]->outcome,
                 LOYALTY__V1__MEMBER_IMPORT_OUTCOME__MEMBER_IMPORT_OUTCOME_CONFLICT);
    cr_assert_str_eq(r->results[1]->reason, "PHONE_TAKEN");
    cr_assert_eq(counts(m)->total, 3);
    /* Invalid items reject the whole batch, naming the item. */
    Loyalty__V1__MemberImportItem *bad = import_item("old-5", "Bad", "");
    bad->tier_id = "tier_nope";
    Loyalty__V1__MemberImportItem *badv[] = {import_item("old-6", "Fine", ""), bad};
    status_t bst = import(m, "batch-3", badv, 2, NULL);
    assert_status(bst, STATUS_INVALID_ARGUMENT, "INVALID_TIER_ID");
    cr_assert(strstr(bst.message, "items[1].tier_id") != NULL, "%s", bst.message);
    Loyalty__V1__MemberImportItem *twice[] = {import_item("old-7", "A", ""),
                                              import_item("old-7", "B", "")};
    assert_status(import(m, "batch-4", twice, 2, NULL), STATUS_INVALID_ARGUMENT,
                  "INVALID_EXTERNAL_ID");
    assert_status(import(m, "batch-5", twice, 0, NULL), STATUS_INVALID_ARGUMENT, "INVALID_ITEMS");
    cr_assert_eq(counts(m)->total, 3, "rejected batches change nothing");
}

#define DUE_MEMBERS 120

Test(member_lists, the_timer_renews_due_tiers_once_on_two_replicas) {
    /* Goal: two replicas run the maintenance timer every second over the same database; members
     * whose Gold period ended yesterday are each renewed exactly once (one RENEWAL in their
     * history, carry-over applied once), and the counts stay exact. */
    const char *env[] = {"JOB_INTERVAL_S=1", NULL};
    harness_start(&svc, "member-svc", env);
    harness_start(&svc2, "member-svc", env);
    const char *m = harness_merchant("timer");
    create_tier(m, "Silver", 1, 1000, 800);
    const char *gold = create_tier(m, "Gold", 2, 5000, 4000);
    int64_t now = (int64_t)time(NULL);
    time_t y = (time_t)(now - DAY);
    struct tm tm;
    gmtime_r(&y, &tm);
    char *yesterday =
        arena_printf(&arena, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    Loyalty__V1__MemberImportItem *items[DUE_MEMBERS];
    for (int i = 0; i < DUE_MEMBERS; i++) {
        items[i] = import_item(arena_printf(&arena, "due-%d", i), "Due", "");
        items[i]->tier_id = (char *)gold;
        items[i]->tier_valid_to = yesterday;
        items[i]->period_value = 4500;
    }
    Loyalty__V1__MemberImportResponse *r = NULL;
    assert_status(import(m, "due-batch", items, DUE_MEMBERS, &r), STATUS_OK, "");
    cr_assert_eq(r->created, DUE_MEMBERS);
    /* Wait until every member has been renewed (period value 4500 - 4000 = 500). */
    int renewed = 0;
    for (int tries = 0; tries < 200 && renewed < DUE_MEMBERS; tries++) {
        usleep(100000);
        renewed = 0;
        for (int i = 0; i < DUE_MEMBERS; i++) {
            Loyalty__V1__MemberGetTierRequest gt = LOYALTY__V1__MEMBER_GET_TIER_REQUEST__INIT;
            gt.merchant_id = (char *)m;
            gt.member_id = r->results[i]->member_id;
            Loyalty__V1__MemberGetTierResponse *tr = NULL;
            assert_status(call_at(i % 2 ? svc2.addr : svc.addr, "GetMemberTier", &gt, &tr, &arena),
                          STATUS_OK, "");
            renewed += tr->status->period_value == 500;
        }
    }
    cr_assert_eq(renewed, DUE_MEMBERS);
    for (int i = 0; i < DUE_MEMBERS; i++) {
        Loyalty__V1__MemberListTierHistoryRequest hr =
            LOYALTY__V1__MEMBER_LIST_TIER_HISTORY_REQUEST__INIT;
        hr.merchant_id = (char *)m;
        hr.member_id = r->results[i]->member_id;
        Loyalty__V1__MemberListTierHistoryResponse *h = NULL;
        assert_status(call("ListTierHistory", &hr, &h), STATUS_OK, "");
        cr_assert_eq(h->n_changes, 2, "IMPORT and one RENEWAL, got %zu", h->n_changes);
        cr_assert_eq(h->changes[0]->reason,
                     LOYALTY__V1__MEMBER_TIER_CHANGE_REASON__MEMBER_TIER_CHANGE_REASON_RENEWAL);
    }
    Loyalty__V1__MemberCountResponse *c = counts(m);
    cr_assert_eq(c->total, DUE_MEMBERS);
    for (size_t i = 0; i < c->n_by_tier; i++) {
        if (strcmp(c->by_tier[i]->tier->id, gold) == 0) {
            cr_assert_eq(c->by_tier[i]->count, DUE_MEMBERS);
        }
    }
}
