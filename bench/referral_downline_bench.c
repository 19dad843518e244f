/* referral_downline_bench.c -- referral-svc with 100,000 members under one referrer: latency of
 * GetUpline, ListDownline (first page, deep pages, counts), AttachReferral and ComputeRewards,
 * against the same calls for a referrer with 1,000 (the flatness anchor, docs/architecture.md#performance-targets "referral
 * lookups stay flat") and against counting the 100,000 with SQL (what the counters replace).
 *
 * Usage: LOYALTY_PG_DSN=... referral_downline_bench [members] [samples]
 * It starts build/referral-svc/referral-svc (or $REFERRAL_SVC_BIN) on a free port, or uses
 * $REFERRAL_SVC_ADDR when set. The downlines are seeded with SQL into the `referral` schema
 * (one member and one purchase reward each), the measured calls go over gRPC. See
 * bench/README.md, section "referral-svc". */
#include "arena.h"
#include "bench_util.h"
#include "loyalty/v1/referral.pb-c.h"
#include "rpc_client.h"

#include <grpc/grpc.h>
#include <libpq-fe.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SAMPLES_MAX 5000

static const char *g_addr;
static char g_merchant[64];
static char g_big[16]; /* "100k": the size of the big downline, for labels */

static status_t call(const char *method, const ProtobufCMessage *req, arena_t *a,
                     ProtobufCMessage **resp) {
    ProtobufCMessage *unused = NULL;
    return rpc_call(rpc_channel_get(g_addr), &loyalty__v1__referral_service__descriptor, method,
                    req, a, resp ? resp : &unused, NULL);
}

static void set_program(arena_t *a) {
    Loyalty__V1__ReferralLevelRule r[3];
    Loyalty__V1__ReferralLevelRule *rp[3];
    for (int i = 0; i < 3; i++) {
        r[i] = (Loyalty__V1__ReferralLevelRule)LOYALTY__V1__REFERRAL_LEVEL_RULE__INIT;
        r[i].level = i + 1;
        r[i].enabled = true;
        r[i].registration_points = 10;
        r[i].purchase_reward_kind =
            LOYALTY__V1__REFERRAL_PURCHASE_REWARD_KIND__REFERRAL_PURCHASE_REWARD_KIND_BPS;
        r[i].purchase_bps = 100 * (3 - i);
        rp[i] = &r[i];
    }
    Loyalty__V1__ReferralProgram p = LOYALTY__V1__REFERRAL_PROGRAM__INIT;
    p.enabled = true;
    p.levels = 3;
    p.level_rules = rp;
    p.n_level_rules = 3;
    Loyalty__V1__ReferralSetProgramRequest req = LOYALTY__V1__REFERRAL_SET_PROGRAM_REQUEST__INIT;
    req.merchant_id = g_merchant;
    req.idempotency_key = "bench-program";
    req.program = &p;
    bench_must(call("SetReferralProgram", &req.base, a, NULL), "SetReferralProgram");
}

/* The referrer's row through the service, then `n` children below it with SQL, each with one
 * recorded purchase whose 3% reward went to the referrer; the counters are set to match. */
static void seed(PGconn *pg, arena_t *a, const char *top, const char *prefix, int n) {
    Loyalty__V1__ReferralGetCodeRequest req = LOYALTY__V1__REFERRAL_GET_CODE_REQUEST__INIT;
    req.merchant_id = g_merchant;
    req.member_id = (char *)top;
    bench_must(call("GetReferralCode", &req.base, a, NULL), "GetReferralCode");
    char count[16];
    snprintf(count, sizeof count, "%d", n);
    const char *p[] = {g_merchant, top, prefix, count};
    bench_sql(pg,
              "INSERT INTO referral.referral_members (merchant_id, member_id, code, referrer_id, "
              " root_id, attach_id, attached_at) "
              "SELECT $1, $3 || g, upper($3) || g, $2, $2, 'att_' || $3 || lpad(g::text, 9, '0'), "
              " now() - interval '1 day' FROM generate_series(1, $4::int) g",
              4, p);
    bench_sql(pg,
              "INSERT INTO referral.reward_events (merchant_id, event, reference, member_id, "
              " paid_cents, purchase_number, program_version) "
              "SELECT $1, 2, 'ord-' || $2 || g, $2 || g, 10000, 1, 1 "
              "FROM generate_series(1, $3::int) g",
              3, (const char *const[]){g_merchant, prefix, count});
    bench_sql(
        pg,
        "INSERT INTO referral.rewards (merchant_id, id, event, reference, source_member_id, "
        " beneficiary_id, level, rule, points, base_cents, rule_bps, grant_now, state, "
        " granted_points, granted_at) "
        "SELECT $1, 'rwd_' || $3 || lpad(g::text, 9, '0'), 2, 'ord-' || $3 || g, $3 || g, $2, "
        " 1, 4, 300, 10000, 300, true, 2, 300, now() FROM generate_series(1, $4::int) g",
        4, p);
    bench_sql(pg,
              "INSERT INTO referral.downline_stats (merchant_id, member_id, level, members, "
              " reward_points) VALUES ($1, $2, 1, $3::bigint, $3::bigint * 300)",
              3, (const char *const[]){g_merchant, top, count});
    bench_sql(pg, "ANALYZE referral.referral_members", 0, NULL);
    bench_sql(pg, "ANALYZE referral.rewards", 0, NULL);
}

static void report(const char *what, int64_t *us, int n) {
    printf("%-52s n=%-5d p50 %7.3f ms   p99 %7.3f ms\n", what, n, bench_percentile_ms(us, n, 0.5),
           bench_percentile_ms(us, n, 0.99));
}

/* One ListDownline of `top` at level 1, first page of `size`; returns microseconds. */
static int64_t first_page_us(const char *top, int32_t size) {
    arena_t a;
    arena_init(&a);
    Loyalty__V1__PageRequest page = LOYALTY__V1__PAGE_REQUEST__INIT;
    page.page_size = size;
    Loyalty__V1__ReferralListDownlineRequest req =
        LOYALTY__V1__REFERRAL_LIST_DOWNLINE_REQUEST__INIT;
    req.merchant_id = g_merchant;
    req.member_id = (char *)top;
    req.level = 1;
    req.page = &page;
    int64_t t = bench_now_us();
    bench_must(call("ListDownline", &req.base, &a, NULL), "ListDownline");
    int64_t us = bench_now_us() - t;
    arena_free(&a);
    return us;
}

/* Times the first page of `size` for the 1k and the 100k referrer, interleaved so that both
 * see the same machine load, and prints both and the ratio of their medians. */
static void compare_first_page(const char *what, int32_t size, int samples, int64_t *small,
                               int64_t *big) {
    for (int i = 0; i < samples; i++) {
        small[i] = first_page_us("top-small", size);
        big[i] = first_page_us("top-big", size);
    }
    char label[96];
    snprintf(label, sizeof label, "ListDownline 1k, %s (anchor)", what);
    report(label, small, samples);
    snprintf(label, sizeof label, "ListDownline %s, %s", g_big, what);
    report(label, big, samples);
    printf("  ratio %s / 1k, p50: %.2f\n", g_big,
           bench_percentile_ms(big, samples, 0.5) / bench_percentile_ms(small, samples, 0.5));
}

/* Pages through `pages` pages of 50 of the top's level 1, timing each page. */
static void time_deep_pages(const char *top, int pages, int64_t *us) {
    arena_t a;
    arena_init(&a);
    char *cursor = "";
    int n = 0;
    int64_t members = 0;
    for (; n < pages; n++) {
        Loyalty__V1__PageRequest page = LOYALTY__V1__PAGE_REQUEST__INIT;
        page.page_size = 50;
        page.cursor = cursor;
        Loyalty__V1__ReferralListDownlineRequest req =
            LOYALTY__V1__REFERRAL_LIST_DOWNLINE_REQUEST__INIT;
        req.merchant_id = g_merchant;
        req.member_id = (char *)top;
        req.level = 1;
        req.page = &page;
        ProtobufCMessage *resp = NULL;
        int64_t t = bench_now_us();
        bench_must(call("ListDownline", &req.base, &a, &resp), "ListDownline page");
        us[n] = bench_now_us() - t;
        Loyalty__V1__ReferralListDownlineResponse *r = (void *)resp;
        members += (int64_t)r->n_members;
        if (r->page_info->next_cursor[0] == '\0') {
            n++;
            break;
        }
        cursor = r->page_info->next_cursor;
    }
    char what[96];
    snprintf(what, sizeof what, "ListDownline %s, pages 1..%d of 50 (%lld members)", g_big, n,
             (long long)members);
    report(what, us, n);
    arena_free(&a);
}

static void time_upline(const char *leaf, int samples, int64_t *us) {
    for (int i = 0; i < samples; i++) {
        arena_t a;
        arena_init(&a);
        Loyalty__V1__ReferralGetUplineRequest req = LOYALTY__V1__REFERRAL_GET_UPLINE_REQUEST__INIT;
        req.merchant_id = g_merchant;
        req.member_id = (char *)leaf;
        int64_t t = bench_now_us();
        bench_must(call("GetUpline", &req.base, &a, NULL), "GetUpline");
        us[i] = bench_now_us() - t;
        arena_free(&a);
    }
    char what[64];
    snprintf(what, sizeof what, "GetUpline of a member of the %s", g_big);
    report(what, us, samples);
}

static void time_sql_count(PGconn *pg, const char *top, int samples, int64_t *us) {
    const char *p[] = {g_merchant, top};
    for (int i = 0; i < samples; i++) {
        int64_t t = bench_now_us();
        bench_sql(pg,
                  "SELECT count(*) FROM referral.referral_members WHERE merchant_id = $1 "
                  "AND referrer_id = $2",
                  2, p);
        us[i] = bench_now_us() - t;
    }
    char what[64];
    snprintf(what, sizeof what, "SQL count(*) of the %s (no counters; anchor)", g_big);
    report(what, us, samples);
}

/* Attaches `samples` new members below `top` and then a purchase by each. */
static void time_attach_and_compute(const char *top, int samples, int64_t *us) {
    arena_t a;
    arena_init(&a);
    Loyalty__V1__ReferralGetCodeRequest creq = LOYALTY__V1__REFERRAL_GET_CODE_REQUEST__INIT;
    creq.merchant_id = g_merchant;
    creq.member_id = (char *)top;
    ProtobufCMessage *resp = NULL;
    bench_must(call("GetReferralCode", &creq.base, &a, &resp), "GetReferralCode");
    char *code = ((Loyalty__V1__ReferralGetCodeResponse *)resp)->code;
    char id[64], key[64], ref[64];
    for (int i = 0; i < samples; i++) {
        snprintf(id, sizeof id, "new-%d", i);
        snprintf(key, sizeof key, "attach-%d", i);
        Loyalty__V1__ReferralAttachRequest req = LOYALTY__V1__REFERRAL_ATTACH_REQUEST__INIT;
        req.merchant_id = g_merchant;
        req.idempotency_key = key;
        req.referee_member_id = id;
        req.code = code;
        int64_t t = bench_now_us();
        bench_must(call("AttachReferral", &req.base, &a, NULL), "AttachReferral");
        us[i] = bench_now_us() - t;
    }
    char what[64];
    snprintf(what, sizeof what, "AttachReferral below the %s referrer", g_big);
    report(what, us, samples);
    for (int i = 0; i < samples; i++) {
        snprintf(id, sizeof id, "new-%d", i);
        snprintf(key, sizeof key, "compute-%d", i);
        snprintf(ref, sizeof ref, "order-new-%d", i);
        Loyalty__V1__ReferralComputeRewardsRequest req =
            LOYALTY__V1__REFERRAL_COMPUTE_REWARDS_REQUEST__INIT;
        req.merchant_id = g_merchant;
        req.idempotency_key = key;
        req.event = LOYALTY__V1__REFERRAL_EVENT__REFERRAL_EVENT_PURCHASE;
        req.member_id = id;
        req.paid_cents = 12345;
        req.reference = ref;
        int64_t t = bench_now_us();
        bench_must(call("ComputeRewards", &req.base, &a, NULL), "ComputeRewards");
        us[i] = bench_now_us() - t;
    }
    report("ComputeRewards (purchase) of those members", us, samples);
    arena_free(&a);
}

int main(int argc, char **argv) {
    int members = argc > 1 ? atoi(argv[1]) : 100000;
    int samples = argc > 2 ? atoi(argv[2]) : 300;
    if (members < 1000 || samples < 10 || samples > SAMPLES_MAX) {
        bench_fail("usage: referral_downline_bench [members >= 1000] [samples 10..5000]");
    }
    PGconn *pg = bench_pg_connect();
    grpc_init();
    rpc_client_init(NULL);
    g_addr = bench_service_addr("referral-svc", NULL, NULL);
    snprintf(g_merchant, sizeof g_merchant, "bench-%lld", (long long)time(NULL));
    arena_t a;
    arena_init(&a);
    set_program(&a);
    if (members % 1000000 == 0) {
        snprintf(g_big, sizeof g_big, "%dM", members / 1000000);
    } else if (members % 1000 == 0) {
        snprintf(g_big, sizeof g_big, "%dk", members / 1000);
    } else {
        snprintf(g_big, sizeof g_big, "%d", members);
    }
    int64_t t = bench_now_us();
    seed(pg, &a, "top-big", "b", members);
    seed(pg, &a, "top-small", "s", 1000);
    printf("merchant %s: seeded %d + 1,000 members with one reward each in %.1f s\n", g_merchant,
           members, (double)(bench_now_us() - t) / 1e6);

    static int64_t us[SAMPLES_MAX], big[SAMPLES_MAX], small[SAMPLES_MAX];
    for (int i = 0; i < 20; i++) { /* warm-up: connections, prepared statements */
        first_page_us("top-big", 50);
        first_page_us("top-small", 50);
    }
    time_upline("b1", samples, us);
    compare_first_page("first page of 50", 50, samples, small, big);
    compare_first_page("counts only (page of 1)", 1, samples, small, big);
    time_deep_pages("top-big", samples < 2000 ? samples : 2000, us);
    time_sql_count(pg, "top-big", samples < 100 ? samples : 100, us);
    time_attach_and_compute("top-big", samples, us);

    arena_free(&a);
    PQfinish(pg);
    rpc_client_shutdown();
    grpc_shutdown();
    bench_stop_services();
    return 0;
}
