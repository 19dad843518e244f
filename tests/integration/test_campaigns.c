/* test_campaigns.c -- campaigns over real gRPC with the real gateway, member-svc, points-svc and
 * promo-svc, real PostgreSQL and a private Redis: birthday rewards and messages, at most once per
 * member and period across repeated and concurrent runs, dry runs, win-back and welcome
 * targeting, and no message lost or doubled when Redis is down during a run; the gateway's
 * campaign counters (/metrics) move by exactly the runs, deliveries and skips made. */
#include "harness.h"
#include "loyalty/v1/campaign.pb-c.h"
#include "loyalty/v1/member.pb-c.h"
#include "loyalty/v1/points.pb-c.h"
#include "loyalty/v1/promo.pb-c.h"
#include "member_client.h"
#include "points_client.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static redis_proc_t redis;
static svc_proc_t member, points, promo, gateway;
static arena_t arena;

/* job_interval_env: JOB_INTERVAL_S=0 keeps the campaign scheduler off (the tests run their
 * campaigns themselves, so that the counts they check are their runs'), =1 lets it look for due
 * campaigns every second (60 s by default). */
static void setup_with(const char *job_interval_env) {
    harness_init();
    arena_init(&arena);
    harness_redis_start(&redis);
    /* A database of its own: every gateway publishes the whole gateway outbox to its Redis, so
     * a gateway of a test running alongside must not see this test's messages. */
    static char redis_env[96], pg_env[512];
    snprintf(redis_env, sizeof redis_env, "LOYALTY_REDIS_URL=%s", redis.url);
    snprintf(pg_env, sizeof pg_env, "LOYALTY_PG_DSN=%s", harness_private_database());
    const char *env[] = {redis_env, pg_env, NULL};
    harness_start(&member, "member-svc", env);
    harness_start(&points, "points-svc", env);
    harness_start(&promo, "promo-svc", env);
    static char addrs[3][96];
    snprintf(addrs[0], sizeof addrs[0], "MEMBER_SVC_ADDR=%s", member.addr);
    snprintf(addrs[1], sizeof addrs[1], "POINTS_SVC_ADDR=%s", points.addr);
    snprintf(addrs[2], sizeof addrs[2], "PROMO_SVC_ADDR=%s", promo.addr);
    const char *gw_env[] = {redis_env, pg_env,           addrs[0], addrs[1],
                            addrs[2],  job_interval_env, NULL};
    harness_start(&gateway, "gateway", gw_env);
}

static void setup(void) {
    setup_with("JOB_INTERVAL_S=0");
}

static void setup_scheduler(void) {
    setup_with("JOB_INTERVAL_S=1");
}

static void teardown(void) {
    svc_proc_t *all[] = {&gateway, &promo, &points, &member};
    for (int i = 0; i < 4; i++) {
        if (all[i]->pid > 0) {
            cr_expect_eq(harness_stop(all[i]), 0, "%s did not exit cleanly; see %s", all[i]->name,
                         all[i]->log_path);
        }
    }
    harness_redis_stop(&redis);
    arena_free(&arena);
    harness_fini();
}

TestSuite(campaigns, .init = setup, .fini = teardown, .timeout = 180);
TestSuite(campaign_scheduler, .init = setup_scheduler, .fini = teardown, .timeout = 180);

#define OK(expr)                                                                                   \
    do {                                                                                           \
        status_t st_ = (expr);                                                                     \
        cr_assert(status_is_ok(&st_), "%s: %s %s %s", #expr, status_code_name(st_.code),           \
                  st_.reason, st_.message);                                                        \
    } while (0)

static const char *today_utc(int64_t at) {
    char *buf = arena_alloc(&arena, 11);
    time_t t = (time_t)at;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, 11, "%Y-%m-%d", &tm);
    return buf;
}

/* `hour`:00 UTC on the UTC day of `at`. Tests that run a daily campaign twice on one day run it
 * at two such instants (say 08:00 and 16:00), not at `now` and an hour later: that would fall
 * on the next day when the test runs between 23:00 and midnight. */
static int64_t utc_day_at(int64_t at, int hour) {
    return at - at % 86400 + (int64_t)hour * 3600;
}

/* A birthday in 1990 on the month and day of `date` ("YYYY-MM-DD"). */
static char *birthday_on(const char *date) {
    return arena_printf(&arena, "1990-%.5s", date + 5);
}

static const char *create_template(const char *m) {
    Loyalty__V1__PromoCouponTemplate t = LOYALTY__V1__PROMO_COUPON_TEMPLATE__INIT;
    t.name = "Birthday 10 off";
    t.kind = LOYALTY__V1__PROMO_COUPON_KIND__PROMO_COUPON_KIND_AMOUNT_OFF;
    t.amount_off_cents = 1000;
    t.valid_days = 30;
    Loyalty__V1__PromoCreateCouponTemplateRequest req =
        LOYALTY__V1__PROMO_CREATE_COUPON_TEMPLATE_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    req.coupon_template = &t;
    ProtobufCMessage *resp = NULL;
    OK(rpc_call(rpc_channel_get(promo.addr), &loyalty__v1__promo_service__descriptor,
                "CreateCouponTemplate", &req.base, &arena, &resp, NULL));
    return ((Loyalty__V1__PromoCreateCouponTemplateResponse *)resp)->coupon_template->id;
}

static void set_campaign(Loyalty__V1__Campaign *c) {
    Loyalty__V1__CampaignSetRequest req = LOYALTY__V1__CAMPAIGN_SET_REQUEST__INIT;
    req.merchant_id = c->merchant_id;
    req.idempotency_key = (char *)harness_key();
    req.campaign = c;
    OK(rpc_call(rpc_channel_get(gateway.addr), &loyalty__v1__campaign_service__descriptor,
                "SetCampaign", &req.base, &arena, NULL, NULL));
}

static status_t run_campaign(const char *m, Loyalty__V1__CampaignKind kind, int64_t at,
                             bool dry_run, Loyalty__V1__CampaignRunResult **out, arena_t *a) {
    Loyalty__V1__CampaignRunRequest req = LOYALTY__V1__CAMPAIGN_RUN_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.kind = kind;
    req.at = at;
    req.dry_run = dry_run;
    ProtobufCMessage *resp = NULL;
    rpc_call_opts_t opts = {.timeout_ms = 60000};
    status_t st =
        rpc_call(rpc_channel_get(gateway.addr), &loyalty__v1__campaign_service__descriptor,
                 "RunCampaign", &req.base, a, &resp, &opts);
    if (status_is_ok(&st) && out) {
        *out = ((Loyalty__V1__CampaignRunResponse *)resp)->result;
    }
    return st;
}

static int64_t skipped(const Loyalty__V1__CampaignRunResult *r, const char *reason) {
    for (size_t i = 0; i < r->n_skipped_by_reason; i++) {
        if (strcmp(r->skipped_by_reason[i]->reason, reason) == 0) {
            return r->skipped_by_reason[i]->count;
        }
    }
    return 0;
}

static size_t coupons_of(const char *m, const char *member_id) {
    Loyalty__V1__PromoListCouponsRequest req = LOYALTY__V1__PROMO_LIST_COUPONS_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.member_id = (char *)member_id;
    ProtobufCMessage *resp = NULL;
    OK(rpc_call(rpc_channel_get(promo.addr), &loyalty__v1__promo_service__descriptor, "ListCoupons",
                &req.base, &arena, &resp, NULL));
    return ((Loyalty__V1__PromoListCouponsResponse *)resp)->n_coupons;
}

/* The notifications of merchant m on the stream: their member ids and texts, in order. Waits
 * until `want` are there (the outbox publishes asynchronously) or 10 s have passed. */
static int notifications(const char *m, int want, char members[][48], char texts[][256], int max) {
    int n = 0;
    for (int attempt = 0; attempt < 200; attempt++) {
        redisContext *c = redisConnect("127.0.0.1", redis.port);
        cr_assert(c && !c->err);
        redisReply *r = redisCommand(c, "XRANGE loyalty:notifications - +");
        n = 0;
        for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
            redisReply *f = r->element[i]->element[1];
            const char *merchant = "", *payload = "";
            for (size_t k = 0; k + 1 < f->elements; k += 2) {
                if (strcmp(f->element[k]->str, "merchant_id") == 0) {
                    merchant = f->element[k + 1]->str;
                } else if (strcmp(f->element[k]->str, "payload") == 0) {
                    payload = f->element[k + 1]->str;
                }
            }
            if (strcmp(merchant, m) != 0 || n >= max) {
                continue;
            }
            const char *mid = strstr(payload, "\"member_id\":\"");
            const char *text = strstr(payload, "\"text\":\"");
            cr_assert(mid && text, "payload %s", payload);
            sscanf(mid + 13, "%47[^\"]", members[n]);
            sscanf(text + 8, "%255[^\"]", texts[n]);
            n++;
        }
        freeReplyObject(r);
        redisFree(c);
        if (n >= want) {
            break;
        }
        usleep(50 * 1000);
    }
    return n;
}

static Loyalty__V1__Campaign birthday_campaign(const char *m, Loyalty__V1__CampaignReward *r) {
    Loyalty__V1__Campaign c = LOYALTY__V1__CAMPAIGN__INIT;
    c.merchant_id = (char *)m;
    c.kind = LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_BIRTHDAY;
    c.enabled = true; /* RunCampaign refuses a disabled one; the scheduler is off here */
    c.channel = LOYALTY__V1__CAMPAIGN_CHANNEL__CAMPAIGN_CHANNEL_SMS;
    c.birthday_timing = LOYALTY__V1__CAMPAIGN_BIRTHDAY_TIMING__CAMPAIGN_BIRTHDAY_TIMING_ON_DAY;
    c.message_template = "Happy birthday {{name}}: {{points}} points and coupon {{coupon_code}}";
    c.reward = r;
    return c;
}

/* The gateway's campaign counters (loyalty_campaign_*) as scraped now. */
typedef struct campaign_counts {
    double runs, deliveries, no_address, already_done;
} campaign_counts_t;

static campaign_counts_t campaign_counts(void) {
    char *text = NULL;
    int code = harness_http_get(gateway.metrics_port, "/metrics", &text);
    cr_assert_eq(code, 200, "GET /metrics answered %d", code);
    campaign_counts_t c = {
        .runs = harness_metric(text, "loyalty_campaign_runs_total"),
        .deliveries = harness_metric(text, "loyalty_campaign_deliveries_total"),
        .no_address = harness_metric(text, "loyalty_campaign_skips_total{reason=\"NO_ADDRESS\"}"),
        .already_done =
            harness_metric(text, "loyalty_campaign_skips_total{reason=\"ALREADY_DONE\"}"),
    };
    free(text);
    return c;
}

/* Asserts that the counters moved from `before` by exactly the given deltas. */
static void assert_campaign_deltas(campaign_counts_t before, double runs, double deliveries,
                                   double no_address, double already_done) {
    campaign_counts_t now = campaign_counts();
    cr_assert_eq(now.runs - before.runs, runs, "loyalty_campaign_runs_total moved by %g",
                 now.runs - before.runs);
    cr_assert_eq(now.deliveries - before.deliveries, deliveries,
                 "loyalty_campaign_deliveries_total moved by %g",
                 now.deliveries - before.deliveries);
    cr_assert_eq(now.no_address - before.no_address, no_address, "NO_ADDRESS skips moved by %g",
                 now.no_address - before.no_address);
    cr_assert_eq(now.already_done - before.already_done, already_done,
                 "ALREADY_DONE skips moved by %g", now.already_done - before.already_done);
}

Test(campaigns, birthday_rewards_and_messages_once_per_year) {
    /* Goal: members whose birthday is today get the points and the coupon and one SMS; a member
     * without a phone is rewarded but not messaged; others are untouched; a second run gives
     * nothing more; a dry run only counts. */
    const char *m = harness_merchant("bday");
    /* Both runs on one UTC day, whatever the time of day: Cy's birthday is the next day. */
    int64_t at = utc_day_at((int64_t)time(NULL), 8), again_at = utc_day_at(at, 16);
    const char *today = today_utc(at);
    const char *tomorrow = today_utc(at + 86400);
    const char *ana = member_create_id(
        member.addr, &arena, m,
        &(member_spec_t){.name = "Ana", .phone = "+6590000101", .birthday = birthday_on(today)});
    const char *bo = member_create_id(
        member.addr, &arena, m,
        &(member_spec_t){.name = "Bo", .email = "bo@example.com", .birthday = birthday_on(today)});
    const char *cy = member_create_id(
        member.addr, &arena, m,
        &(member_spec_t){.name = "Cy", .phone = "+6590000103", .birthday = birthday_on(tomorrow)});
    Loyalty__V1__CampaignReward reward = LOYALTY__V1__CAMPAIGN_REWARD__INIT;
    reward.points = 100;
    reward.coupon_template_id = (char *)create_template(m);
    Loyalty__V1__Campaign c = birthday_campaign(m, &reward);
    set_campaign(&c);

    /* The scheduler is off in this suite: the counters move by this test's runs only. */
    campaign_counts_t counts = campaign_counts();
    Loyalty__V1__CampaignRunResult *r = NULL;
    OK(run_campaign(m, c.kind, at, true, &r, &arena));
    cr_assert_eq(r->targeted, 2, "dry run targets 2, got %lld", (long long)r->targeted);
    cr_assert_eq(r->rewarded, 2);
    cr_assert_eq(r->messaged, 1);
    cr_assert_eq(points_balance_at(points.addr, &arena, m, ana)->available, 0,
                 "a dry run gives nothing");
    assert_campaign_deltas(counts, 0, 0, 0, 0); /* and counts nowhere */

    OK(run_campaign(m, c.kind, at, false, &r, &arena));
    cr_assert_str_eq(r->local_date, today);
    cr_assert_eq(r->targeted, 2);
    cr_assert_eq(r->rewarded, 2);
    cr_assert_eq(r->messaged, 1);
    cr_assert_eq(skipped(r, "NO_ADDRESS"), 1);
    cr_assert_eq(r->points_given, 200);
    cr_assert_eq(r->coupons_issued, 2);
    cr_assert_eq(points_balance_at(points.addr, &arena, m, ana)->available, 100);
    cr_assert_eq(points_balance_at(points.addr, &arena, m, bo)->available, 100);
    cr_assert_eq(points_balance_at(points.addr, &arena, m, cy)->available, 0);
    cr_assert_eq(member_stats_at(member.addr, &arena, m, ana)->points_balance, 100,
                 "member-svc learns the balance too");
    cr_assert_eq(member_stats_at(member.addr, &arena, m, cy)->points_balance, 0);
    cr_assert_eq(coupons_of(m, ana), 1);
    cr_assert_eq(coupons_of(m, cy), 0);
    assert_campaign_deltas(counts, 1, 2, 1, 0); /* Bo's delivery is done without a message */

    OK(run_campaign(m, c.kind, again_at, false, &r, &arena));
    cr_assert_str_eq(r->local_date, today);
    cr_assert_eq(r->rewarded, 0, "the second run of the year gives nothing");
    cr_assert_eq(skipped(r, "ALREADY_DONE"), 2);
    assert_campaign_deltas(counts, 2, 2, 1, 2);
    cr_assert_eq(points_balance_at(points.addr, &arena, m, ana)->available, 100);
    cr_assert_eq(coupons_of(m, ana), 1);

    char members[8][48], texts[8][256];
    int n = notifications(m, 1, members, texts, 8);
    usleep(300 * 1000);
    n = notifications(m, 1, members, texts, 8);
    cr_assert_eq(n, 1, "exactly one message, got %d", n);
    cr_assert_str_eq(members[0], ana);
    cr_assert(strncmp(texts[0], "Happy birthday Ana: 100 points and coupon ", 42) == 0, "%s",
              texts[0]);
}

typedef struct runner {
    const char *merchant;
    int64_t at;
    int64_t rewarded;
    status_t st;
} runner_t;

static void *runner_main(void *p) {
    runner_t *r = p;
    arena_t a;
    arena_init(&a);
    Loyalty__V1__CampaignRunResult *res = NULL;
    r->st = run_campaign(r->merchant, LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_BIRTHDAY, r->at,
                         false, &res, &a);
    if (status_is_ok(&r->st)) {
        r->rewarded = res->rewarded;
    }
    arena_free(&a);
    return NULL;
}

#define CROWD 30

Test(campaigns, concurrent_runners_reward_each_member_once) {
    /* Goal: two runs at once (as from two gateway replicas) reward each of 30 members exactly
     * once, and the stream holds exactly 30 messages, one per member. */
    const char *m = harness_merchant("crowd");
    int64_t now = (int64_t)time(NULL);
    const char *ids[CROWD];
    for (int i = 0; i < CROWD; i++) {
        char name[16], phone[16];
        snprintf(name, sizeof name, "Guest %d", i);
        snprintf(phone, sizeof phone, "+659100%04d", i);
        ids[i] = member_create_id(member.addr, &arena, m,
                                  &(member_spec_t){.name = arena_strdup(&arena, name),
                                                   .phone = arena_strdup(&arena, phone),
                                                   .birthday = birthday_on(today_utc(now))});
    }
    Loyalty__V1__CampaignReward reward = LOYALTY__V1__CAMPAIGN_REWARD__INIT;
    reward.points = 50;
    Loyalty__V1__Campaign c = birthday_campaign(m, &reward);
    c.message_template = "Happy birthday {{name}}";
    set_campaign(&c);
    runner_t runners[2] = {{m, now, 0, {0}}, {m, now, 0, {0}}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(pthread_create(&t[i], NULL, runner_main, &runners[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        OK(runners[i].st);
    }
    cr_assert_eq(runners[0].rewarded + runners[1].rewarded, CROWD, "rewarded %lld + %lld",
                 (long long)runners[0].rewarded, (long long)runners[1].rewarded);
    for (int i = 0; i < CROWD; i++) {
        cr_assert_eq(points_balance_at(points.addr, &arena, m, ids[i])->available, 50, "member %d",
                     i);
    }
    static char members[64][48], texts[64][256];
    int n = notifications(m, CROWD, members, texts, 64);
    usleep(300 * 1000);
    n = notifications(m, CROWD, members, texts, 64);
    cr_assert_eq(n, CROWD, "got %d messages", n);
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < i; k++) {
            cr_assert(strcmp(members[i], members[k]) != 0, "member %s messaged twice", members[i]);
        }
    }
}

Test(campaigns, redis_down_during_a_run_loses_and_doubles_nothing) {
    /* Goal: with Redis stopped during the run, members are still rewarded and the messages wait
     * in the outbox; when Redis is back they are all published, each once. */
    const char *m = harness_merchant("bdown");
    int64_t now = (int64_t)time(NULL);
    const char *ids[5];
    for (int i = 0; i < 5; i++) {
        char phone[16];
        snprintf(phone, sizeof phone, "+659200%04d", i);
        ids[i] = member_create_id(member.addr, &arena, m,
                                  &(member_spec_t){.name = "Dora",
                                                   .phone = arena_strdup(&arena, phone),
                                                   .birthday = birthday_on(today_utc(now))});
    }
    Loyalty__V1__CampaignReward reward = LOYALTY__V1__CAMPAIGN_REWARD__INIT;
    reward.points = 70;
    Loyalty__V1__Campaign c = birthday_campaign(m, &reward);
    c.message_template = "Hi {{name}}, {{points}} points";
    set_campaign(&c);
    harness_redis_stop(&redis);
    Loyalty__V1__CampaignRunResult *r = NULL;
    OK(run_campaign(m, c.kind, now, false, &r, &arena));
    cr_assert_eq(r->rewarded, 5);
    cr_assert_eq(r->messaged, 5);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(points_balance_at(points.addr, &arena, m, ids[i])->available, 70);
    }
    harness_redis_restart(&redis);
    char members[16][48], texts[16][256];
    int n = notifications(m, 5, members, texts, 16);
    usleep(1500 * 1000); /* a publisher that published twice would show it by now */
    n = notifications(m, 5, members, texts, 16);
    cr_assert_eq(n, 5, "got %d messages", n);
    cr_assert_str_eq(texts[0], "Hi Dora, 70 points");
}

static void record_order(const char *m, const char *member_id, int64_t at) {
    Loyalty__V1__MemberRecordOrderRequest req = LOYALTY__V1__MEMBER_RECORD_ORDER_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    req.member_id = (char *)member_id;
    req.order_id = (char *)harness_key();
    req.spend_cents = 5000;
    req.at = at;
    OK(rpc_call(rpc_channel_get(member.addr), &loyalty__v1__member_service__descriptor,
                "RecordOrder", &req.base, &arena, NULL, NULL));
}

Test(campaigns, win_back_and_welcome_target_the_right_members) {
    /* Goal: WIN_BACK reaches members whose last order crossed the inactivity threshold, once per
     * episode (a new order and a new lapse qualifies again); WELCOME_SERIES reaches members who
     * joined N days ago and never ordered. `at` in the future stands for the passing days. */
    const char *m = harness_merchant("winback");
    int64_t now = (int64_t)time(NULL);
    const char *lapsed = member_create_id(
        member.addr, &arena, m, &(member_spec_t){.name = "Lapsed", .phone = "+6593000001"});
    const char *loyal = member_create_id(member.addr, &arena, m,
                                         &(member_spec_t){.name = "Loyal", .phone = "+6593000002"});
    const char *fresh = member_create_id(member.addr, &arena, m,
                                         &(member_spec_t){.name = "Fresh", .phone = "+6593000003"});
    record_order(m, lapsed, now - 100 * 86400);
    record_order(m, loyal, now - 5 * 86400);

    Loyalty__V1__CampaignReward reward = LOYALTY__V1__CAMPAIGN_REWARD__INIT;
    reward.points = 300;
    reward.points_valid_days = 14;
    Loyalty__V1__Campaign wb = LOYALTY__V1__CAMPAIGN__INIT;
    wb.merchant_id = (char *)m;
    wb.kind = LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_WIN_BACK;
    wb.channel = LOYALTY__V1__CAMPAIGN_CHANNEL__CAMPAIGN_CHANNEL_WHATSAPP;
    wb.inactive_days = 90;
    wb.enabled = true;
    wb.reward = &reward;
    wb.message_template = "We miss you {{name}}: {{points}} points until {{expiry_date}}";
    set_campaign(&wb);
    Loyalty__V1__CampaignRunResult *r = NULL;
    OK(run_campaign(m, wb.kind, now, false, &r, &arena));
    cr_assert_eq(r->targeted, 1);
    cr_assert_eq(points_balance_at(points.addr, &arena, m, lapsed)->available, 300);
    cr_assert_eq(points_balance_at(points.addr, &arena, m, loyal)->available, 0);
    OK(run_campaign(m, wb.kind, now + 86400, false, &r, &arena));
    cr_assert_eq(r->rewarded, 0, "same episode");

    Loyalty__V1__Campaign wel = LOYALTY__V1__CAMPAIGN__INIT;
    wel.merchant_id = (char *)m;
    wel.kind = LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_WELCOME_SERIES;
    wel.channel = LOYALTY__V1__CAMPAIGN_CHANNEL__CAMPAIGN_CHANNEL_SMS;
    wel.welcome_reminder_days = 7;
    wel.enabled = true;
    wel.message_template = "{{name}}, your first order is waiting";
    set_campaign(&wel);
    OK(run_campaign(m, wel.kind, now + 3 * 86400, false, &r, &arena));
    cr_assert_eq(r->targeted, 0, "too early");
    OK(run_campaign(m, wel.kind, now + 8 * 86400, false, &r, &arena));
    cr_assert_eq(r->targeted, 1, "only the member without orders, got %lld",
                 (long long)r->targeted);
    cr_assert_eq(r->messaged, 1);
    char members[8][48], texts[8][256];
    int n = notifications(m, 2, members, texts, 8);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(members[1], fresh);
    cr_assert_str_eq(texts[1], "Fresh, your first order is waiting");
}

Test(campaigns, a_tag_narrows_the_targets_to_members_carrying_it) {
    /* Goal: a campaign with a tag reaches only members carrying it, an automatic tag (member-svc
     * tag rules, given by an order) as well as a manual one; kinds that do not list members
     * refuse a tag. */
    const char *m = harness_merchant("tagged");
    int64_t now = (int64_t)time(NULL);
    const char *today = birthday_on(today_utc(now));
    const char *buyer = member_create_id(
        member.addr, &arena, m,
        &(member_spec_t){.name = "Buyer", .phone = "+6590000301", .birthday = today});
    member_create_id(
        member.addr, &arena, m,
        &(member_spec_t){.name = "Browser", .phone = "+6590000302", .birthday = today});
    Loyalty__V1__MemberTagRule rule = LOYALTY__V1__MEMBER_TAG_RULE__INIT;
    rule.tag = "buyer";
    rule.metric = LOYALTY__V1__MEMBER_TAG_METRIC__MEMBER_TAG_METRIC_ORDERS_COUNT;
    rule.op = LOYALTY__V1__MEMBER_TAG_OPERATOR__MEMBER_TAG_OPERATOR_GTE;
    rule.threshold = 1;
    Loyalty__V1__MemberTagRule *rules[] = {&rule};
    Loyalty__V1__MemberSetTagRulesRequest tr = LOYALTY__V1__MEMBER_SET_TAG_RULES_REQUEST__INIT;
    tr.merchant_id = (char *)m;
    tr.idempotency_key = (char *)harness_key();
    tr.rules = rules;
    tr.n_rules = 1;
    OK(rpc_call(rpc_channel_get(member.addr), &loyalty__v1__member_service__descriptor,
                "SetTagRules", &tr.base, &arena, NULL, NULL));
    record_order(m, buyer, now - 86400);

    Loyalty__V1__CampaignReward reward = LOYALTY__V1__CAMPAIGN_REWARD__INIT;
    reward.points = 25;
    Loyalty__V1__Campaign c = birthday_campaign(m, &reward);
    c.tag = "Buyer";
    set_campaign(&c);
    Loyalty__V1__CampaignRunResult *r = NULL;
    OK(run_campaign(m, c.kind, now, false, &r, &arena));
    cr_assert_eq(r->targeted, 1, "only the member tagged by the rule, got %lld",
                 (long long)r->targeted);
    cr_assert_eq(points_balance_at(points.addr, &arena, m, buyer)->available, 25);

    Loyalty__V1__Campaign tp = birthday_campaign(m, NULL);
    tp.kind = LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_TIER_PROMOTION;
    tp.tag = "buyer";
    Loyalty__V1__CampaignSetRequest req = LOYALTY__V1__CAMPAIGN_SET_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    req.campaign = &tp;
    status_t st =
        rpc_call(rpc_channel_get(gateway.addr), &loyalty__v1__campaign_service__descriptor,
                 "SetCampaign", &req.base, &arena, NULL, NULL);
    cr_assert_str_eq(st.reason, "INVALID_CAMPAIGN_TAG");
    tp.kind = LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_BIRTHDAY;
    tp.tag = "two words";
    req.idempotency_key = (char *)harness_key();
    st = rpc_call(rpc_channel_get(gateway.addr), &loyalty__v1__campaign_service__descriptor,
                  "SetCampaign", &req.base, &arena, NULL, NULL);
    cr_assert_str_eq(st.reason, "INVALID_CAMPAIGN_TAG");
}

Test(campaigns, a_disabled_campaign_is_refused_but_can_be_dry_run) {
    /* Goal: RunCampaign of a disabled campaign is FAILED_PRECONDITION CAMPAIGN_DISABLED and gives
     * nothing; a dry run of it still counts (a preview before enabling); once enabled it runs. */
    const char *m = harness_merchant("off");
    int64_t now = (int64_t)time(NULL);
    const char *ana = member_create_id(member.addr, &arena, m,
                                       &(member_spec_t){.name = "Ana",
                                                        .phone = "+6590000201",
                                                        .birthday = birthday_on(today_utc(now))});
    Loyalty__V1__CampaignReward reward = LOYALTY__V1__CAMPAIGN_REWARD__INIT;
    reward.points = 40;
    Loyalty__V1__Campaign c = birthday_campaign(m, &reward);
    c.enabled = false;
    set_campaign(&c);
    campaign_counts_t counts = campaign_counts();
    Loyalty__V1__CampaignRunResult *r = NULL;
    status_t st = run_campaign(m, c.kind, now, false, &r, &arena);
    cr_assert_eq(st.code, STATUS_FAILED_PRECONDITION, "got %s %s", status_code_name(st.code),
                 st.reason);
    cr_assert_str_eq(st.reason, "CAMPAIGN_DISABLED");
    cr_assert_eq(points_balance_at(points.addr, &arena, m, ana)->available, 0,
                 "a refused run gives nothing");
    OK(run_campaign(m, c.kind, now, true, &r, &arena));
    cr_assert_eq(r->targeted, 1, "a dry run of a disabled campaign counts");
    cr_assert_eq(points_balance_at(points.addr, &arena, m, ana)->available, 0);
    assert_campaign_deltas(counts, 0, 0, 0, 0);
    c.enabled = true;
    set_campaign(&c);
    OK(run_campaign(m, c.kind, now, false, &r, &arena));
    cr_assert_eq(r->rewarded, 1);
    cr_assert_eq(points_balance_at(points.addr, &arena, m, ana)->available, 40);
}

Test(campaigns, configuration_is_validated) {
    /* Goal: bad configurations are INVALID_ARGUMENT naming the field; unknown kinds too. */
    const char *m = harness_merchant("cfg");
    Loyalty__V1__Campaign c = birthday_campaign(m, NULL);
    c.time_zone = "Mars/Olympus_Mons";
    Loyalty__V1__CampaignSetRequest req = LOYALTY__V1__CAMPAIGN_SET_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    req.campaign = &c;
    status_t st =
        rpc_call(rpc_channel_get(gateway.addr), &loyalty__v1__campaign_service__descriptor,
                 "SetCampaign", &req.base, &arena, NULL, NULL);
    cr_assert_str_eq(st.reason, "INVALID_CAMPAIGN_TIME_ZONE");
    c.time_zone = "Asia/Singapore";
    c.message_template = "Hi {{first_name}}";
    req.idempotency_key = (char *)harness_key();
    st = rpc_call(rpc_channel_get(gateway.addr), &loyalty__v1__campaign_service__descriptor,
                  "SetCampaign", &req.base, &arena, NULL, NULL);
    cr_assert_str_eq(st.reason, "INVALID_CAMPAIGN_MESSAGE_TEMPLATE");
    /* segments are MemberSegment values: one member-svc does not define is refused. */
    Loyalty__V1__MemberSegment segs[] = {
        LOYALTY__V1__MEMBER_SEGMENT__MEMBER_SEGMENT_LOST,
        (Loyalty__V1__MemberSegment)(LOYALTY__V1__MEMBER_SEGMENT__MEMBER_SEGMENT_NO_PURCHASE + 1)};
    Loyalty__V1__Campaign wb = birthday_campaign(m, NULL);
    wb.kind = LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_WIN_BACK;
    wb.segments = segs;
    wb.n_segments = 2;
    req.campaign = &wb;
    req.idempotency_key = (char *)harness_key();
    st = rpc_call(rpc_channel_get(gateway.addr), &loyalty__v1__campaign_service__descriptor,
                  "SetCampaign", &req.base, &arena, NULL, NULL);
    cr_assert_str_eq(st.reason, "INVALID_CAMPAIGN_SEGMENTS");
    wb.n_segments = 1;
    set_campaign(&wb);
    Loyalty__V1__CampaignGetRequest get = LOYALTY__V1__CAMPAIGN_GET_REQUEST__INIT;
    get.merchant_id = (char *)m;
    get.kind = wb.kind;
    ProtobufCMessage *resp = NULL;
    OK(rpc_call(rpc_channel_get(gateway.addr), &loyalty__v1__campaign_service__descriptor,
                "GetCampaign", &get.base, &arena, &resp, NULL));
    Loyalty__V1__Campaign *got = ((Loyalty__V1__CampaignGetResponse *)resp)->campaign;
    cr_assert_eq(got->n_segments, 1);
    cr_assert_eq(got->segments[0], LOYALTY__V1__MEMBER_SEGMENT__MEMBER_SEGMENT_LOST);
    st = run_campaign(m, LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_RE_ENGAGE, 0, false, NULL,
                      &arena);
    cr_assert_eq(st.code, STATUS_NOT_FOUND, "not configured: %s", status_code_name(st.code));
    st = run_campaign(m, (Loyalty__V1__CampaignKind)77, 0, false, NULL, &arena);
    cr_assert_str_eq(st.reason, "INVALID_KIND");
}

static void earn(const char *m, const char *member_id, int64_t amount, const char *expiry_date) {
    Loyalty__V1__PointsEarnRequest *req = points_promotion_earn(&arena, m, member_id, amount);
    req->expiry_date = (char *)expiry_date;
    OK(points_call_at(points.addr, &arena, "Earn", req, NULL));
}

Test(campaigns, expiry_reminders_once_per_expiry_date) {
    /* Goal: members whose points expire within the window are reminded once per expiry date,
     * with the points and the date in the message; points further out are not mentioned. */
    const char *m = harness_merchant("expiry");
    int64_t at = utc_day_at((int64_t)time(NULL), 8), again_at = utc_day_at(at, 16);
    const char *soon = member_create_id(
        member.addr, &arena, m, &(member_spec_t){.name = "Soon", .email = "soon@example.com"});
    const char *later = member_create_id(
        member.addr, &arena, m, &(member_spec_t){.name = "Later", .email = "later@example.com"});
    const char *soon_date = today_utc(at + 10 * 86400);
    earn(m, soon, 120, soon_date);
    earn(m, soon, 30, today_utc(at + 20 * 86400));
    earn(m, later, 500, today_utc(at + 90 * 86400));
    Loyalty__V1__Campaign c = LOYALTY__V1__CAMPAIGN__INIT;
    c.merchant_id = (char *)m;
    c.kind = LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_POINTS_EXPIRY_REMINDER;
    c.channel = LOYALTY__V1__CAMPAIGN_CHANNEL__CAMPAIGN_CHANNEL_EMAIL;
    c.expiring_within_days = 30;
    c.enabled = true;
    c.message_template = "{{name}}: {{expiring_points}} points expire from {{expiry_date}}";
    set_campaign(&c);
    Loyalty__V1__CampaignRunResult *r = NULL;
    OK(run_campaign(m, c.kind, at, false, &r, &arena));
    cr_assert_eq(r->targeted, 1);
    cr_assert_eq(r->messaged, 1);
    cr_assert_eq(r->rewarded, 0, "a reminder gives nothing");
    OK(run_campaign(m, c.kind, again_at, false, &r, &arena));
    cr_assert_eq(skipped(r, "ALREADY_DONE"), 1);
    char members[4][48], texts[4][256];
    int n = notifications(m, 1, members, texts, 4);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(members[0], soon);
    char want[128];
    snprintf(want, sizeof want, "Soon: 150 points expire from %s", soon_date);
    cr_assert_str_eq(texts[0], want);
    (void)later;
}

static void create_tier(const char *m, const char *name, int rank, int64_t threshold) {
    Loyalty__V1__MemberTier t = LOYALTY__V1__MEMBER_TIER__INIT;
    t.name = (char *)name;
    t.rank = rank;
    t.upgrade_threshold = threshold;
    t.retain_threshold = threshold;
    t.earn_multiplier_bps = 10000;
    (void)member_create_tier_id(member.addr, &arena, m, &t);
}

Test(campaigns, tier_promotion_congratulates_each_upgrade_once) {
    /* Goal: a member moving up a tier is congratulated once per upgrade, naming the new tier;
     * members who did not move up are not. */
    const char *m = harness_merchant("tierup");
    create_tier(m, "Silver", 1, 0);
    create_tier(m, "Gold", 2, 1000);
    const char *up = member_create_id(member.addr, &arena, m,
                                      &(member_spec_t){.name = "Uma", .phone = "+6595000001"});
    const char *flat = member_create_id(member.addr, &arena, m,
                                        &(member_spec_t){.name = "Flo", .phone = "+6595000002"});
    Loyalty__V1__MemberRecordOrderRequest o = LOYALTY__V1__MEMBER_RECORD_ORDER_REQUEST__INIT;
    o.merchant_id = (char *)m;
    o.idempotency_key = (char *)harness_key();
    o.member_id = (char *)up;
    o.order_id = "order-up-1";
    o.spend_cents = 150000;
    o.growth_delta = 1500;
    OK(rpc_call(rpc_channel_get(member.addr), &loyalty__v1__member_service__descriptor,
                "RecordOrder", &o.base, &arena, NULL, NULL));
    Loyalty__V1__Campaign c = LOYALTY__V1__CAMPAIGN__INIT;
    c.merchant_id = (char *)m;
    c.kind = LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_TIER_PROMOTION;
    c.channel = LOYALTY__V1__CAMPAIGN_CHANNEL__CAMPAIGN_CHANNEL_SMS;
    c.message_template = "Congratulations {{name}}, welcome to {{tier}}";
    c.enabled = true;
    set_campaign(&c);
    int64_t now = (int64_t)time(NULL);
    Loyalty__V1__CampaignRunResult *r = NULL;
    OK(run_campaign(m, c.kind, now + 1, false, &r, &arena));
    cr_assert_eq(r->targeted, 1, "targeted %lld", (long long)r->targeted);
    OK(run_campaign(m, c.kind, now + 2, false, &r, &arena));
    cr_assert_eq(skipped(r, "ALREADY_DONE"), 1);
    char members[4][48], texts[4][256];
    int n = notifications(m, 1, members, texts, 4);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(members[0], up);
    cr_assert_str_eq(texts[0], "Congratulations Uma, welcome to Gold");
    (void)flat;
}

Test(campaign_scheduler, runs_enabled_campaigns_by_itself) {
    /* Goal: an enabled campaign is run by the gateway's scheduler without any RunCampaign call,
     * and a disabled one is not. RE_ENGAGE by segment, once per calendar month. */
    const char *m = harness_merchant("sched");
    const char *quiet = member_create_id(member.addr, &arena, m,
                                         &(member_spec_t){.name = "Quiet", .phone = "+6594000001"});
    Loyalty__V1__CampaignReward reward = LOYALTY__V1__CAMPAIGN_REWARD__INIT;
    reward.points = 25;
    Loyalty__V1__MemberSegment segments[] = {
        LOYALTY__V1__MEMBER_SEGMENT__MEMBER_SEGMENT_NEW,
        LOYALTY__V1__MEMBER_SEGMENT__MEMBER_SEGMENT_NO_PURCHASE};
    Loyalty__V1__Campaign c = LOYALTY__V1__CAMPAIGN__INIT;
    c.merchant_id = (char *)m;
    c.kind = LOYALTY__V1__CAMPAIGN_KIND__CAMPAIGN_KIND_RE_ENGAGE;
    c.channel = LOYALTY__V1__CAMPAIGN_CHANNEL__CAMPAIGN_CHANNEL_SMS;
    c.segments = segments;
    c.n_segments = 2;
    c.reward = &reward;
    c.message_template = "{{name}}, {{points}} points to come back";
    c.enabled = true;
    set_campaign(&c);
    char members[4][48], texts[4][256];
    int n = notifications(m, 1, members, texts, 4);
    cr_assert_eq(n, 1, "the scheduler ran the campaign: %d messages", n);
    cr_assert_str_eq(members[0], quiet);
    cr_assert_str_eq(texts[0], "Quiet, 25 points to come back");
    cr_assert_eq(points_balance_at(points.addr, &arena, m, quiet)->available, 25,
                 "one reward, whatever segment matched");
    Loyalty__V1__CampaignGetRequest get = LOYALTY__V1__CAMPAIGN_GET_REQUEST__INIT;
    get.merchant_id = (char *)m;
    get.kind = c.kind;
    ProtobufCMessage *resp = NULL;
    OK(rpc_call(rpc_channel_get(gateway.addr), &loyalty__v1__campaign_service__descriptor,
                "GetCampaign", &get.base, &arena, &resp, NULL));
    Loyalty__V1__Campaign *got = ((Loyalty__V1__CampaignGetResponse *)resp)->campaign;
    cr_assert(got->last_run_at > 0 && got->next_run_at > got->last_run_at);
}
