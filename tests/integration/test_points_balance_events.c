/* test_points_balance_events.c -- points_balance tag rules follow changes made inside points-svc
 * alone, through the whole stack: points-svc's points.earned / points.balance events carry the
 * balance and the account version, member-svc's consumer group applies each newer one. An
 * admin Adjust, an expiry and pending points maturing move the tag; a referral reward earned in
 * someone else's checkout moves the referrer's; a forged duplicate or stale event changes
 * nothing; a change made while member-svc is down reaches it after its restart. Every wait polls
 * observable state (member-svc's stats, the consumer group's position) with a bound on the number
 * of polls, never on elapsed time. */
#include "gateway_it.h"

#include "cache.h"

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

TestSuite(points_balance_events, .init = it_setup, .fini = it_teardown, .timeout = 300);

#define POLLS_MAX 1200 /* x 100 ms between polls: generous, and within the suite's timeout */

/* Waits until member-svc holds `balance` for the member; answers its stats then. */
static Loyalty__V1__MemberStats *wait_balance(const char *m, const char *member, int64_t balance) {
    Loyalty__V1__MemberStats *st = NULL;
    for (int i = 0; i < POLLS_MAX; i++) {
        st = member_stats(m, member);
        if (st->points_balance == balance) {
            return st;
        }
        sleep_ms(100);
    }
    cr_assert_fail("member-svc never learnt the balance %lld (has %lld)", (long long)balance,
                   (long long)st->points_balance);
    return NULL;
}

static bool has_tag(const Loyalty__V1__MemberStats *st, const char *tag) {
    for (size_t i = 0; i < st->n_automatic_tags; i++) {
        if (strcmp(st->automatic_tags[i], tag) == 0) {
            return true;
        }
    }
    return false;
}

static void earn(const char *m, const char *member, int64_t points, const char *expiry_date,
                 int32_t pending_days) {
    Loyalty__V1__PointsEarnRequest r = LOYALTY__V1__POINTS_EARN_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.idempotency_key = (char *)harness_key();
    r.member_id = (char *)member;
    r.source = LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_PROMOTION;
    r.amount_case = LOYALTY__V1__POINTS_EARN_REQUEST__AMOUNT_POINTS;
    r.points = points;
    r.expiry_date = (char *)(expiry_date ? expiry_date : "");
    if (pending_days > 0) {
        r._pending_days_case = LOYALTY__V1__POINTS_EARN_REQUEST___PENDING_DAYS_PENDING_DAYS;
        r.pending_days = pending_days;
    }
    assert_ok(call(SVC_POINTS, "Earn", &r, NULL));
}

static void sql(const char *text, const char *p1, const char *p2) {
    PGconn *pg = PQconnectdb(test_dsn());
    cr_assert_eq(PQstatus(pg), CONNECTION_OK);
    const char *params[] = {p1, p2};
    PGresult *r = PQexecParams(pg, text, 2, NULL, params, NULL, NULL, 0);
    ExecStatusType rs = PQresultStatus(r);
    cr_assert(rs == PGRES_COMMAND_OK || rs == PGRES_TUPLES_OK, "%s: %s", text,
              PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(pg);
}

/* As if time had passed: the member's lots with an expiry expired, pending lots out of their
 * window, and the account due; then the settle RPC (the job's work) settles it. */
static void age_and_settle(const char *m, const char *member) {
    sql("UPDATE points.lots SET expires_at = now() - interval '1 minute', "
        " expiry_date = current_date - 1 "
        "WHERE merchant_id = $1 AND member_id = $2 AND expires_at IS NOT NULL "
        " AND status = 2 AND remaining > 0",
        m, member);
    sql("UPDATE points.lots SET available_at = now() - interval '1 minute' "
        "WHERE merchant_id = $1 AND member_id = $2 AND status = 1",
        m, member);
    sql("UPDATE points.accounts SET next_due_at = now() - interval '1 minute' "
        "WHERE merchant_id = $1 AND member_id = $2",
        m, member);
    Loyalty__V1__PointsExpirePointsRequest r = LOYALTY__V1__POINTS_EXPIRE_POINTS_REQUEST__INIT;
    r.merchant_id = (char *)m;
    r.idempotency_key = (char *)harness_key();
    assert_ok(call(SVC_POINTS, "ExpirePoints", &r, NULL));
}

/* ---- forged events and the consumer group's position ---- */

/* The test's Redis (the services' one); cache_destroy when done. */
static cache_t *redis(redisContext **conn) {
    const char *url = getenv("LOYALTY_REDIS_URL");
    cache_t *c = cache_create(url ? url : "", 60);
    *conn = cache_conn(c);
    cr_assert_not_null(*conn, "redis unreachable");
    return c;
}

/* XADDs an event as points-svc's outbox would; answers its stream id. */
static char *forge_balance_event(redisContext *c, const char *m, const char *member,
                                 int64_t available, int64_t version) {
    char payload[256];
    snprintf(payload, sizeof payload, "{\"member_id\":\"%s\",\"available\":%lld,\"version\":%lld}",
             member, (long long)available, (long long)version);
    redisReply *r = redisCommand(c,
                                 "XADD loyalty:events * event_id %s type points.balance "
                                 "merchant_id %s subject_id %s occurred_at 0 service points-svc "
                                 "payload %s",
                                 harness_key(), m, member, payload);
    cr_assert(r != NULL && r->type == REDIS_REPLY_STRING);
    char *id = arena_strdup(&arena, r->str);
    freeReplyObject(r);
    return id;
}

/* "a-b" stream ids in order. */
static int stream_id_cmp(const char *x, const char *y) {
    unsigned long long xa = 0, xb = 0, ya = 0, yb = 0;
    sscanf(x, "%llu-%llu", &xa, &xb);
    sscanf(y, "%llu-%llu", &ya, &yb);
    return xa != ya ? (xa < ya ? -1 : 1) : xb != yb ? (xb < yb ? -1 : 1) : 0;
}

/* True when member-svc's group (of this test's database) has read up to `id` and acknowledged
 * everything it read: the forged events were handled. */
static bool group_done_with(redisContext *c, const char *group, const char *id) {
    redisReply *r = redisCommand(c, "XINFO GROUPS loyalty:events");
    cr_assert(r != NULL && r->type == REDIS_REPLY_ARRAY);
    bool done = false;
    for (size_t g = 0; g < r->elements; g++) {
        const redisReply *f = r->element[g];
        const char *name = "", *last = "0-0";
        long long pending = -1;
        for (size_t k = 0; k + 1 < f->elements; k += 2) {
            const char *key = f->element[k]->str;
            const redisReply *v = f->element[k + 1];
            if (strcmp(key, "name") == 0) {
                name = v->str;
            } else if (strcmp(key, "last-delivered-id") == 0) {
                last = v->str;
            } else if (strcmp(key, "pending") == 0) {
                pending = v->integer;
            }
        }
        if (strcmp(name, group) == 0) {
            done = stream_id_cmp(last, id) >= 0 && pending == 0;
        }
    }
    freeReplyObject(r);
    return done;
}

static const char *member_group(void) {
    PGconn *pg = PQconnectdb(test_dsn());
    cr_assert_eq(PQstatus(pg), CONNECTION_OK);
    PGresult *r = PQexec(pg, "SELECT current_database()");
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK);
    const char *g = arena_printf(&arena, "member-svc.points-balance:%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(pg);
    return g;
}

Test(points_balance_events, adjust_expiry_and_maturing_move_the_tag_and_stale_events_do_not) {
    stack_start();
    const char *m = harness_merchant("pbev");
    set_points_rules(m, 0, 0, 0);
    set_balance_tag_rule(m, "points_rich", 5000);
    const char *b = create_member(m, "Saver");

    /* An admin adjustment over the threshold gives the tag, one under it takes it away. */
    give_points(m, b, 6000);
    cr_assert(has_tag(wait_balance(m, b, 6000), "points_rich"));
    give_points(m, b, -2000);
    cr_assert(!has_tag(wait_balance(m, b, 4000), "points_rich"));

    /* Points that expire: earned (7000, tagged), then expired by the settle (4000, untagged). */
    earn(m, b, 3000, "2030-01-31", 0);
    cr_assert(has_tag(wait_balance(m, b, 7000), "points_rich"));
    age_and_settle(m, b);
    cr_assert_eq(points_balance(m, b)->available, 4000);
    cr_assert(!has_tag(wait_balance(m, b, 4000), "points_rich"));

    /* Pending points: not in the balance until they mature, then they lift it over. */
    earn(m, b, 2000, NULL, 7);
    cr_assert_eq(points_balance(m, b)->available, 4000);
    age_and_settle(m, b);
    cr_assert_eq(points_balance(m, b)->available, 6000);
    cr_assert(has_tag(wait_balance(m, b, 6000), "points_rich"));

    /* A duplicate of the last event (same version, another balance) and a stale one (an older
     * version) are handled and change nothing. */
    int64_t version = points_balance(m, b)->version;
    cr_assert(version > 0);
    redisContext *c = NULL;
    cache_t *cache = redis(&c);
    forge_balance_event(c, m, b, 100, version);
    const char *last = forge_balance_event(c, m, b, 50, 1);
    const char *group = member_group();
    int polls = 0;
    while (!group_done_with(c, group, last)) {
        cr_assert(++polls < POLLS_MAX, "member-svc's group never handled the forged events");
        sleep_ms(100);
    }
    cache_destroy(cache);
    Loyalty__V1__MemberStats *st = member_stats(m, b);
    cr_assert_eq(st->points_balance, 6000);
    cr_assert(has_tag(st, "points_rich"));

    /* A real change after them still applies. */
    give_points(m, b, -1500);
    cr_assert(!has_tag(wait_balance(m, b, 4500), "points_rich"));
}

Test(points_balance_events, a_referral_reward_in_a_checkout_moves_the_referrers_tag) {
    stack_start();
    shop_t s;
    open_shop(&s, "pbref"); /* level 1 earns 10% of the paid amount as points */
    set_balance_tag_rule(s.m, "has_points", 1);
    const char *b = new_buyer(&s, 0, 0);
    cr_assert_eq(member_stats(s.m, s.r1)->n_automatic_tags, 0);

    Loyalty__V1__GatewayCheckout *co = NULL;
    assert_ok(begin_checkout(s.m, NULL, "order-ref-1", b, shirt_cart(), NULL, &co));
    Loyalty__V1__GatewayCheckout *done = NULL;
    assert_ok(complete_checkout(s.m, co->checkout_id, "psp-ref-1", &done));
    cr_assert_eq(done->state, S_COMPLETED);
    /* The referrers' balances moved in the buyer's checkout; member-svc learns each one from
     * the reward's points.earned event, with no call of the checkout for it. */
    const char *up[] = {s.r1, s.r2, s.r3};
    for (int i = 0; i < 3; i++) {
        int64_t available = points_balance(s.m, up[i])->available;
        cr_assert(available > 0, "level %d earned nothing", i + 1);
        cr_assert(has_tag(wait_balance(s.m, up[i], available), "has_points"), "level %d", i + 1);
    }
}

Test(points_balance_events, changes_made_while_member_svc_is_down_reach_the_tags_after_restart) {
    /* Goal: the consumer group keeps member-svc's position: a change published while member-svc
     * is dead (killed, not stopped) is handled by the restarted process. */
    stack_start();
    const char *m = harness_merchant("pbrst");
    set_points_rules(m, 0, 0, 0);
    set_balance_tag_rule(m, "points_rich", 5000);
    const char *b = create_member(m, "Sleeper");
    give_points(m, b, 6000);
    cr_assert(has_tag(wait_balance(m, b, 6000), "points_rich"));

    harness_kill(&procs[SVC_MEMBER]);
    give_points(m, b, -2000); /* points-svc alone: its event waits in the stream */
    cr_assert_eq(points_balance(m, b)->available, 4000);
    harness_restart(&procs[SVC_MEMBER]);
    cr_assert(!has_tag(wait_balance(m, b, 4000), "points_rich"));
}

Test(points_balance_events, without_a_balance_rule_the_balance_is_kept_for_a_rule_set_later) {
    /* Goal: a merchant with no points_balance rule has the referrers' balances kept all the same
     * (the consumer's one-statement path), so that a rule set later tags them from the kept
     * balance through the re-evaluation walk. */
    stack_start();
    shop_t s;
    open_shop(&s, "pbkeep");
    const char *b = new_buyer(&s, 0, 0);
    Loyalty__V1__GatewayCheckout *co = NULL;
    assert_ok(begin_checkout(s.m, NULL, "order-keep-1", b, shirt_cart(), NULL, &co));
    Loyalty__V1__GatewayCheckout *done = NULL;
    assert_ok(complete_checkout(s.m, co->checkout_id, "psp-keep-1", &done));
    cr_assert_eq(done->state, S_COMPLETED);
    int64_t available = points_balance(s.m, s.r1)->available;
    cr_assert(available > 0);
    cr_assert_eq(wait_balance(s.m, s.r1, available)->n_automatic_tags, 0);
    set_balance_tag_rule(s.m, "has_points", 1);
    for (int i = 0;; i++) {
        if (has_tag(member_stats(s.m, s.r1), "has_points")) {
            break;
        }
        cr_assert(i < POLLS_MAX, "the rule never tagged the referrer from its kept balance");
        sleep_ms(100);
    }
}

Test(points_balance_events, the_events_of_one_read_are_kept_as_a_set_the_newest_of_each_member) {
    /* Goal: without a balance rule, member-svc applies the events one read delivers in one
     * statement (member_on_points_events); a member's newest version wins whatever the order of
     * its events in the read, an older one or an unknown member changes nothing, and a rule set
     * afterwards sends the events one by one again (member_on_points_event), with its tags. The
     * events go into the stream in one MULTI/EXEC, so that one read takes them all. */
    stack_start();
    const char *m = harness_merchant("pbset");
    set_points_rules(m, 0, 0, 0);
    const char *a = create_member(m, "Ada");
    const char *b = create_member(m, "Bo");
    redisContext *c = NULL;
    cache_t *cache = redis(&c);
    const char *group = member_group();

    redisReply *r = redisCommand(c, "MULTI");
    cr_assert(r != NULL && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    struct {
        const char *member;
        int64_t available, version;
    } evs[] = {{a, 500, 5}, {b, 300, 3}, {a, 400, 4}, {"no-such-member", 9, 9},
               {b, 700, 7}, {a, 200, 2}, {b, 650, 6}};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++) {
        char payload[160];
        snprintf(payload, sizeof payload,
                 "{\"member_id\":\"%s\",\"available\":%lld,\"version\":%lld}", evs[i].member,
                 (long long)evs[i].available, (long long)evs[i].version);
        r = redisCommand(c,
                         "XADD loyalty:events * event_id %s type points.balance merchant_id %s "
                         "subject_id %s occurred_at 0 service points-svc payload %s",
                         harness_key(), m, evs[i].member, payload);
        cr_assert(r != NULL && r->type == REDIS_REPLY_STATUS); /* QUEUED */
        freeReplyObject(r);
    }
    r = redisCommand(c, "EXEC");
    cr_assert(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 7);
    const char *last = arena_strdup(&arena, r->element[6]->str);
    freeReplyObject(r);
    for (int polls = 0; !group_done_with(c, group, last); polls++) {
        cr_assert(polls < POLLS_MAX, "member-svc's group never handled the events");
        sleep_ms(100);
    }
    cr_assert_eq(member_stats(m, a)->points_balance, 500);
    cr_assert_eq(member_stats(m, b)->points_balance, 700);

    /* With a rule, the same kind of read goes one by one and tags. */
    set_balance_tag_rule(m, "points_rich", 5000);
    last = forge_balance_event(c, m, a, 6000, 8);
    forge_balance_event(c, m, a, 100, 6); /* older: nothing */
    last = forge_balance_event(c, m, b, 5000, 9);
    for (int polls = 0; !group_done_with(c, group, last); polls++) {
        cr_assert(polls < POLLS_MAX, "member-svc's group never handled the events");
        sleep_ms(100);
    }
    cache_destroy(cache);
    Loyalty__V1__MemberStats *st = member_stats(m, a);
    cr_assert_eq(st->points_balance, 6000);
    cr_assert(has_tag(st, "points_rich"));
    st = member_stats(m, b);
    cr_assert_eq(st->points_balance, 5000);
    cr_assert(has_tag(st, "points_rich"));
}
