/* member_list_bench.c -- member-svc at 1,000 and at 1,000,000 members of one merchant: latency
 * of filtered ListMembers pages (first and deep pages, each main filter) and of CountMembers,
 * so that "member listing and segment counts stay flat from 1,000 to 1,000,000 members"
 * (docs/architecture.md#performance-targets) is measured, together with what the counters replace (a GROUP BY over the
 * merchant's members) and the plans PostgreSQL picks for the list queries at 1,000,000.
 *
 * Usage: LOYALTY_PG_DSN=... member_list_bench [large] [samples]   (defaults 1000000, 300)
 * It starts build/member-svc/member-svc (or $MEMBER_SVC_BIN) on a free port with its timer off
 * (so that the seeded members are not maintained during the run; hence always its own service,
 * never $MEMBER_SVC_ADDR), its output to /dev/null. Members are seeded with SQL
 * (generate_series) straight into the `member` schema, as member-svc would have written them,
 * with the counters to match; the measured calls go over gRPC, one at a time. See
 * bench/README.md, section "member-svc"; bench/member_list_bench.sh runs it on a private stack. */
#include "arena.h"
#include "bench_util.h"
#include "loyalty/v1/member.pb-c.h"
#include "rpc_client.h"

#include <grpc/grpc.h>
#include <libpq-fe.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SAMPLES_MAX 5000
#define DEEP_PAGE 20

static const char *g_addr;
static PGconn *g_pg;

/* The timer off, so that the seeded members are not maintained during the run. */
static const char *const g_service_env[] = {"JOB_INTERVAL_S=0", NULL};

static status_t call(const char *method, const ProtobufCMessage *req, arena_t *a,
                     ProtobufCMessage **resp) {
    ProtobufCMessage *unused = NULL;
    return rpc_call(rpc_channel_get(g_addr), &loyalty__v1__member_service__descriptor, method, req,
                    a, resp ? resp : &unused, NULL);
}

typedef struct merchant {
    char id[64];
    char silver[48], gold[48], platinum[48];
    int64_t members;
} merchant_t;

static void create_tier(arena_t *a, const merchant_t *m, const char *name, int rank, int64_t up,
                        char *id_out) {
    Loyalty__V1__MemberTier t = LOYALTY__V1__MEMBER_TIER__INIT;
    t.name = (char *)name;
    t.rank = rank;
    t.upgrade_threshold = up;
    t.retain_threshold = up / 2;
    t.period_months = 12;
    t.discount_bps = 100 * rank;
    t.earn_multiplier_bps = 10000 + 2500 * rank;
    Loyalty__V1__MemberCreateTierRequest req = LOYALTY__V1__MEMBER_CREATE_TIER_REQUEST__INIT;
    req.merchant_id = (char *)m->id;
    req.idempotency_key = arena_printf(a, "bench-tier-%s-%d", m->id, rank);
    req.tier = &t;
    ProtobufCMessage *resp = NULL;
    bench_must(call("CreateTier", &req.base, a, &resp), "CreateTier");
    snprintf(id_out, 48, "%s", ((Loyalty__V1__MemberCreateTierResponse *)resp)->tier->id);
}

/* `n` members registered evenly over the last three years, with a spread of birthdays, tags,
 * tiers (60% none, 25% Silver, 10% Gold, 5% Platinum; 1% of those with an INTERNAL card),
 * statistics and segments, and the counters that member-svc would have kept for them. */
static void seed(arena_t *a, merchant_t *m, int64_t n) {
    create_tier(a, m, "Silver", 1, 1000, m->silver);
    create_tier(a, m, "Gold", 2, 5000, m->gold);
    create_tier(a, m, "Platinum", 3, 20000, m->platinum);
    char count[24];
    snprintf(count, sizeof count, "%lld", (long long)n);
    const char *p[] = {m->id, count, m->silver, m->gold, m->platinum};
    bench_sql(g_pg, "INSERT INTO member.settings (merchant_id) VALUES ($1) ON CONFLICT DO NOTHING",
              1, p);
    int64_t start = bench_now_us();
    /* h is a multiplicative hash of g: a deterministic spread that does not follow g. */
    bench_sql(g_pg,
              "INSERT INTO member.members (merchant_id, id, name, birthday, tags, created_at, "
              " updated_at, tier_id, base_tier_id, period_value, period_start, period_end, "
              " effective_tier_id, effective_kind, order_count, total_spend_cents, total_growth, "
              " first_order_at, last_order_at, months_with_purchases, segment, segment_since) "
              "SELECT $1, 'mbr_bench' || lpad(g::text, 9, '0'), 'Member ' || g, "
              " date '1950-01-01' + (h % 20000)::int, "
              " CASE WHEN h % 50 = 0 THEN '{vip}'::text[] WHEN h % 3 = 0 THEN '{newsletter}' "
              "  ELSE '{}' END, "
              " now() - interval '1095 days' + (g::float8 / $2::bigint) * interval '1095 days', "
              " now(), t, t, h % 5000, current_date - (h % 300)::int, "
              " CASE WHEN t IS NULL THEN NULL ELSE current_date + 65 + (h % 300)::int END, "
              " t, CASE WHEN t IS NULL THEN 1 WHEN h % 100 = 7 THEN 4 ELSE 2 END, "
              " h % 12, (h % 12) * 2500, (h % 12) * 25, "
              " CASE WHEN h % 12 > 0 THEN now() - interval '1000 days' END, "
              " CASE WHEN h % 12 > 0 THEN now() - ((h / 7) % 700) * interval '1 day' END, "
              " least(h % 12, 6), 1 + (h / 13) % 7, now() "
              "FROM (SELECT g, (g * 2654435761) % 4294967296 AS h FROM generate_series(1, "
              "      $2::bigint) g) s, "
              " LATERAL (SELECT CASE WHEN h % 20 = 1 THEN $5 WHEN h % 10 IN (2, 3) THEN $4 "
              "   WHEN h % 4 = 0 THEN $3 END AS t) tt",
              5, p);
    /* The counters of CountMembers, as member-svc keeps them (shard 0 here). */
    bench_sql(
        g_pg,
        "INSERT INTO member.counts (merchant_id, dim, key, shard, n) "
        "SELECT $1, d.dim, d.key, 0, count(*) FROM member.members, "
        " LATERAL (VALUES (0::smallint, ''), (1::smallint, segment::text), "
        "  (2::smallint, coalesce(effective_tier_id, '')), (3::smallint, effective_kind::text)) "
        "  d(dim, key) "
        "WHERE merchant_id = $1 GROUP BY d.dim, d.key",
        1, p);
    /* As autovacuum would leave the table: statistics, visibility map. */
    bench_sql(g_pg, "VACUUM (ANALYZE) member.members", 0, NULL);
    m->members = n;
    printf("seeded %lld members in %.1f s\n", (long long)n, (double)(bench_now_us() - start) / 1e6);
}

typedef struct figure {
    double p50_ms, p99_ms;
} figure_t;

static figure_t summarize(int64_t *us, int n) {
    return (figure_t){bench_percentile_ms(us, n, 0.50), bench_percentile_ms(us, n, 0.99)};
}

/* The filters measured; each names the index member_list_sql picks for it. */
typedef enum query {
    Q_SEGMENT,
    Q_SEGMENT_DEEP,
    Q_TIER_BIRTH_MONTH,
    Q_BIRTHDAY_TODAY,
    Q_TAG,
    Q_ALL_NEWEST,
    Q_COUNT,
    Q_SQL_GROUP_BY,
    Q_GET_TIER,
    Q_COUNT_OF
} query_t;

static const char *const query_names[Q_COUNT_OF] = {
    "ListMembers segment=SLEEPING, first page of 50",
    "ListMembers segment=SLEEPING, page 20 of 50",
    "ListMembers tier=Gold + birthday month, page of 50",
    "ListMembers birthday month+day, newest first",
    "ListMembers tag=vip (2%), page of 50",
    "ListMembers no filter, newest first, page of 50",
    "CountMembers (counters)",
    "SQL: GROUP BY segment over the merchant (no counters)",
    "GetMemberTier (cached: the checkout read)",
};

static void fill_request(query_t q, const merchant_t *m, Loyalty__V1__MemberListRequest *req,
                         Loyalty__V1__MemberListFilter *f, Loyalty__V1__PageRequest *page) {
    *req = (Loyalty__V1__MemberListRequest)LOYALTY__V1__MEMBER_LIST_REQUEST__INIT;
    *f = (Loyalty__V1__MemberListFilter)LOYALTY__V1__MEMBER_LIST_FILTER__INIT;
    *page = (Loyalty__V1__PageRequest)LOYALTY__V1__PAGE_REQUEST__INIT;
    page->page_size = 50;
    req->merchant_id = (char *)m->id;
    req->filter = f;
    req->page = page;
    switch (q) {
    case Q_SEGMENT:
    case Q_SEGMENT_DEEP:
        f->segment = LOYALTY__V1__MEMBER_SEGMENT__MEMBER_SEGMENT_SLEEPING;
        break;
    case Q_TIER_BIRTH_MONTH:
        f->_tier_id_case = LOYALTY__V1__MEMBER_LIST_FILTER___TIER_ID_TIER_ID;
        f->tier_id = (char *)m->gold;
        f->birthday_month = 5;
        break;
    case Q_BIRTHDAY_TODAY:
        f->birthday_month = 5;
        f->birthday_day = 17;
        req->newest_first = true;
        break;
    case Q_TAG:
        f->tag = "vip";
        break;
    default:
        req->newest_first = true;
        break;
    }
}

/* The cursor of page DEEP_PAGE of the segment list (followed once, outside the timing). */
static char *deep_cursor(arena_t *a, const merchant_t *m) {
    Loyalty__V1__MemberListRequest req;
    Loyalty__V1__MemberListFilter f;
    Loyalty__V1__PageRequest page;
    fill_request(Q_SEGMENT, m, &req, &f, &page);
    char *cursor = "";
    for (int i = 1; i < DEEP_PAGE; i++) {
        page.cursor = cursor;
        ProtobufCMessage *resp = NULL;
        bench_must(call("ListMembers", &req.base, a, &resp), "ListMembers");
        cursor = arena_strdup(a, ((Loyalty__V1__MemberListResponse *)resp)->page_info->next_cursor);
    }
    return cursor;
}

static int64_t one_call(query_t q, const merchant_t *m, const char *cursor, size_t *rows) {
    arena_t a;
    arena_init(&a);
    int64_t t0 = bench_now_us();
    if (q == Q_COUNT) {
        Loyalty__V1__MemberCountRequest req = LOYALTY__V1__MEMBER_COUNT_REQUEST__INIT;
        req.merchant_id = (char *)m->id;
        ProtobufCMessage *resp = NULL;
        bench_must(call("CountMembers", &req.base, &a, &resp), "CountMembers");
        *rows = (size_t)((Loyalty__V1__MemberCountResponse *)resp)->total;
    } else if (q == Q_GET_TIER) {
        Loyalty__V1__MemberGetTierRequest req = LOYALTY__V1__MEMBER_GET_TIER_REQUEST__INIT;
        req.merchant_id = (char *)m->id;
        req.member_id = "mbr_bench000000004"; /* one of the seeded members, with a tier */
        ProtobufCMessage *resp = NULL;
        bench_must(call("GetMemberTier", &req.base, &a, &resp), "GetMemberTier");
        *rows = 1;
    } else if (q == Q_SQL_GROUP_BY) {
        const char *p[] = {m->id};
        PGresult *r =
            bench_query(g_pg,
                        "SELECT segment, count(*) FROM member.members WHERE merchant_id = $1 "
                        "GROUP BY segment",
                        1, p);
        *rows = (size_t)PQntuples(r);
        PQclear(r);
    } else {
        Loyalty__V1__MemberListRequest req;
        Loyalty__V1__MemberListFilter f;
        Loyalty__V1__PageRequest page;
        fill_request(q, m, &req, &f, &page);
        page.cursor = (char *)cursor;
        ProtobufCMessage *resp = NULL;
        bench_must(call("ListMembers", &req.base, &a, &resp), query_names[q]);
        *rows = ((Loyalty__V1__MemberListResponse *)resp)->n_members;
    }
    int64_t us = bench_now_us() - t0;
    arena_free(&a);
    return us;
}

/* Both merchants call by call (small, large, small, ...), so that both sizes see the same load
 * of the machine and their ratio means something even when absolute figures drift. */
static void measure(const merchant_t *small, const merchant_t *big, int samples,
                    figure_t f_small[Q_COUNT_OF], figure_t f_big[Q_COUNT_OF]) {
    arena_t a;
    arena_init(&a);
    char *deep_small = deep_cursor(&a, small);
    char *deep_big = deep_cursor(&a, big);
    static int64_t us_small[SAMPLES_MAX], us_big[SAMPLES_MAX];
    printf("%-55s %-18s %-18s %s\n", "", "1,000 members", "large merchant", "ratio of p50");
    for (int q = 0; q < Q_COUNT_OF; q++) {
        size_t rows_small = 0, rows_big = 0;
        const char *cs = q == Q_SEGMENT_DEEP ? deep_small : "";
        const char *cb = q == Q_SEGMENT_DEEP ? deep_big : "";
        for (int i = 0; i < 10; i++) { /* warm: plans, caches, buffers */
            one_call((query_t)q, small, cs, &rows_small);
            one_call((query_t)q, big, cb, &rows_big);
        }
        int n = q == Q_SQL_GROUP_BY && big->members > 100000 ? samples / 10 : samples;
        for (int i = 0; i < n; i++) {
            us_small[i] = one_call((query_t)q, small, cs, &rows_small);
            us_big[i] = one_call((query_t)q, big, cb, &rows_big);
        }
        f_small[q] = summarize(us_small, n);
        f_big[q] = summarize(us_big, n);
        printf("%-55s p50 %6.3f p99 %6.3f  p50 %6.3f p99 %6.3f  %6.2fx  (rows %zu / %zu)\n",
               query_names[q], f_small[q].p50_ms, f_small[q].p99_ms, f_big[q].p50_ms,
               f_big[q].p99_ms, f_big[q].p50_ms / f_small[q].p50_ms, rows_small, rows_big);
    }
    arena_free(&a);
}

/* The plans of the list queries at this size, as member_list_sql (member-svc/
 * member_store_list.c) writes them: the index used and the rows touched. */
static void explain(const merchant_t *m) {
    const char *cols = "SELECT id FROM member.members WHERE merchant_id = $1";
    const char *const shapes[][2] = {
        {"segment", " AND segment = 4 ORDER BY created_at, id LIMIT 50"},
        {"tier + birthday month", " AND effective_tier_id = $2 AND birth_month = 5 "
                                  "ORDER BY created_at, id LIMIT 50"},
        {"birthday month + day", " AND birth_month = 5 AND birth_day = 17 "
                                 "ORDER BY created_at DESC, id DESC LIMIT 50"},
        {"tag", " AND tag_keys @> ARRAY[$1 || '|vip'] ORDER BY created_at, id LIMIT 50"},
        {"none, newest first", " ORDER BY created_at DESC, id DESC LIMIT 50"},
        {"counters", NULL},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        char text[512];
        const char *p[] = {m->id, m->gold};
        int np = 1;
        if (shapes[i][1] == NULL) {
            snprintf(text, sizeof text,
                     "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY OFF) "
                     "SELECT dim, key, sum(n) FROM member.counts WHERE merchant_id = $1 "
                     "GROUP BY dim, key");
        } else {
            snprintf(text, sizeof text,
                     "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY OFF) %s%s", cols,
                     shapes[i][1]);
            np = strstr(shapes[i][1], "$2") ? 2 : 1;
        }
        PGresult *r = bench_query(g_pg, text, np, p);
        printf("  -- %s\n", shapes[i][0]);
        for (int k = 0; k < PQntuples(r); k++) {
            printf("     %s\n", PQgetvalue(r, k, 0));
        }
        PQclear(r);
    }
}

static void cleanup(const merchant_t *m) {
    const char *p[] = {m->id};
    bench_sql(g_pg, "DELETE FROM member.members WHERE merchant_id = $1", 1, p);
    bench_sql(g_pg, "DELETE FROM member.counts WHERE merchant_id = $1", 1, p);
}

int main(int argc, char **argv) {
    int64_t large = argc > 1 ? atoll(argv[1]) : 1000000;
    int samples = argc > 2 ? atoi(argv[2]) : 300;
    if (large < 1000 || samples < 10 || samples > SAMPLES_MAX) {
        bench_fail("usage: member_list_bench [large >= 1000] [samples 10..5000]");
    }
    g_pg = bench_pg_connect();
    grpc_init();
    rpc_client_init(NULL);
    char addr[64];
    bench_start_service("member-svc", g_service_env, addr, sizeof addr);
    g_addr = addr;
    arena_t a;
    arena_init(&a);
    merchant_t small = {0}, big = {0};
    /* Distinct ids at every size, the smallest (large = 1000) included. */
    snprintf(small.id, sizeof small.id, "bench-small-1000-%lld", (long long)time(NULL));
    snprintf(big.id, sizeof big.id, "bench-large-%lld-%lld", (long long)large,
             (long long)time(NULL));
    seed(&a, &small, 1000);
    seed(&a, &big, large);
    figure_t f_small[Q_COUNT_OF], f_big[Q_COUNT_OF];
    printf("\nlatency in ms over gRPC, one call at a time, %d samples each; large merchant: %lld "
           "members\n",
           samples, (long long)large);
    measure(&small, &big, samples, f_small, f_big);
    printf("\nplans at %lld members:\n", (long long)large);
    explain(&big);
    if (getenv("BENCH_KEEP") == NULL) {
        cleanup(&small);
        cleanup(&big);
    }
    arena_free(&a);
    bench_stop_services();
    rpc_client_shutdown();
    grpc_shutdown();
    PQfinish(g_pg);
    return 0;
}
