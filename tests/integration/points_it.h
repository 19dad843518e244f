/* points_it.h -- helpers of the points-svc integration tests: one call per RPC with the usual
 * arguments, assertions on statuses, direct SQL for moving time (lots and holds are made due by
 * shifting their instants into the past), and a VerifyLedger check. Static functions: each test
 * file includes it once. */
#ifndef POINTS_IT_H
#define POINTS_IT_H

#include "cache.h"
#include "harness.h"
#include "loyalty/v1/points.pb-c.h"
#include "points_client.h"

#include <criterion/criterion.h>
#include <libpq-fe.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static svc_proc_t svc;
static arena_t arena;

static inline void pt_setup(void) {
    harness_init();
    arena_init(&arena);
}

static inline void pt_teardown(void) {
    if (svc.pid > 0) {
        cr_expect_eq(harness_stop(&svc), 0, "points-svc did not exit cleanly; see %s",
                     svc.log_path);
    }
    arena_free(&arena);
    harness_fini();
}

/* One call to the service under test; *resp in the test's arena. */
static inline status_t pcall_in(arena_t *a, const char *method, const void *req, void *resp_out) {
    return rpc_call(rpc_channel_get(svc.addr), &loyalty__v1__points_service__descriptor, method,
                    (const ProtobufCMessage *)req, a, (ProtobufCMessage **)resp_out, NULL);
}

static inline status_t pcall(const char *method, const void *req, void *resp_out) {
    return pcall_in(&arena, method, req, resp_out);
}

/* A typical merchant: 1 point per 1.00, 100 points = 1.00, min 100, 50% of an order, 1 growth
 * per point, no expiry, no pending period. Tests change fields through `s` before calling. */
static inline void pt_default_settings(Loyalty__V1__PointsSettings *s) {
    Loyalty__V1__PointsSettings init = LOYALTY__V1__POINTS_SETTINGS__INIT;
    *s = init;
    s->time_zone = "UTC";
    s->earn_unit_cents = 100;
    s->earn_points_per_unit = 1;
    s->expiry_policy = LOYALTY__V1__POINTS_EXPIRY_POLICY__POINTS_EXPIRY_POLICY_NEVER;
    s->redeem_points = 100;
    s->redeem_value_cents = 100;
    s->redeem_min_points = 100;
    s->redeem_max_order_share_bps = 5000;
    s->growth_per_point_bps = 10000;
}

static inline status_t pt_put_settings(const char *m, Loyalty__V1__PointsSettings *s) {
    Loyalty__V1__PointsUpdateSettingsRequest req =
        LOYALTY__V1__POINTS_UPDATE_SETTINGS_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    req.settings = s;
    /* The whole settings, as the tests build them (points_it_default_settings and changes). */
    req.update_mask =
        HARNESS_MASK("time_zone", "earn_unit_cents", "earn_points_per_unit", "event_rules",
                     "expiry_policy", "expiry_days", "expiry_months", "pending_days",
                     "redeem_points", "redeem_value_cents", "redeem_min_points",
                     "redeem_max_order_share_bps", "growth_per_point_bps", "growth_per_unit");
    return pcall("UpdateSettings", &req, NULL);
}

static inline void pt_configure(const char *m) {
    Loyalty__V1__PointsSettings s;
    pt_default_settings(&s);
    assert_ok(pt_put_settings(m, &s));
}

static inline status_t pt_earn_points_key(const char *m, const char *member, int64_t points,
                                          const char *reference, const char *expiry_date,
                                          const char *key, Loyalty__V1__PointsEarnResponse **out) {
    Loyalty__V1__PointsEarnRequest req = LOYALTY__V1__POINTS_EARN_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)key;
    req.member_id = (char *)member;
    req.source = LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_PROMOTION;
    req.reference = (char *)(reference ? reference : "");
    req.amount_case = LOYALTY__V1__POINTS_EARN_REQUEST__AMOUNT_POINTS;
    req.points = points;
    req.expiry_date = (char *)(expiry_date ? expiry_date : "");
    return pcall("Earn", &req, out);
}

static inline Loyalty__V1__PointsEarnResponse *
pt_earn_points(const char *m, const char *member, int64_t points, const char *expiry_date) {
    Loyalty__V1__PointsEarnResponse *r = NULL;
    assert_ok(pt_earn_points_key(m, member, points, NULL, expiry_date, harness_key(), &r));
    return r;
}

static inline status_t pt_earn_order(const char *m, const char *member, const char *reference,
                                     int64_t paid_cents, const char *key,
                                     Loyalty__V1__PointsEarnResponse **out) {
    Loyalty__V1__PointsOrderAmounts o = LOYALTY__V1__POINTS_ORDER_AMOUNTS__INIT;
    o.paid_cents = paid_cents;
    Loyalty__V1__PointsEarnRequest req = LOYALTY__V1__POINTS_EARN_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)(key ? key : harness_key());
    req.member_id = (char *)member;
    req.source = LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_ORDER;
    req.reference = (char *)reference;
    req.amount_case = LOYALTY__V1__POINTS_EARN_REQUEST__AMOUNT_ORDER;
    req.order = &o;
    return pcall("Earn", &req, out);
}

static inline Loyalty__V1__PointsBalance *pt_balance(const char *m, const char *member) {
    return points_balance_at(svc.addr, &arena, m, member);
}

#define assert_balance(m, member, want_available, want_held, want_pending)                         \
    do {                                                                                           \
        Loyalty__V1__PointsBalance *b_ = pt_balance(m, member);                                    \
        cr_assert_eq(b_->available, want_available, "available %lld, want %lld",                   \
                     (long long)b_->available, (long long)(want_available));                       \
        cr_assert_eq(b_->held, want_held, "held %lld, want %lld", (long long)b_->held,             \
                     (long long)(want_held));                                                      \
        cr_assert_eq(b_->pending, want_pending, "pending %lld, want %lld", (long long)b_->pending, \
                     (long long)(want_pending));                                                   \
    } while (0)

static inline status_t pt_hold_in(arena_t *a, const char *m, const char *member, int64_t points,
                                  const char *reference, int64_t ttl_s, const char *key,
                                  Loyalty__V1__PointsHold **out) {
    Loyalty__V1__PointsHoldRequest req = LOYALTY__V1__POINTS_HOLD_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)key;
    req.member_id = (char *)member;
    req.points = points;
    req.reference = (char *)reference;
    req.ttl_s = ttl_s;
    Loyalty__V1__PointsHoldResponse *r = NULL;
    status_t st = pcall_in(a, "Hold", &req, &r);
    if (out) {
        *out = status_is_ok(&st) ? r->hold : NULL;
    }
    return st;
}

static inline status_t pt_hold(const char *m, const char *member, int64_t points,
                               const char *reference, int64_t ttl_s,
                               Loyalty__V1__PointsHold **out) {
    return pt_hold_in(&arena, m, member, points, reference, ttl_s, harness_key(), out);
}

static inline status_t pt_commit(const char *m, const char *hold_id, const char *reference,
                                 Loyalty__V1__PointsHold **out) {
    Loyalty__V1__PointsCommitHoldRequest req = LOYALTY__V1__POINTS_COMMIT_HOLD_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    if (hold_id) {
        req.target_case = LOYALTY__V1__POINTS_COMMIT_HOLD_REQUEST__TARGET_HOLD_ID;
        req.hold_id = (char *)hold_id;
    } else {
        req.target_case = LOYALTY__V1__POINTS_COMMIT_HOLD_REQUEST__TARGET_REFERENCE;
        req.reference = (char *)reference;
    }
    Loyalty__V1__PointsCommitHoldResponse *r = NULL;
    status_t st = pcall("CommitHold", &req, &r);
    if (out) {
        *out = status_is_ok(&st) ? r->hold : NULL;
    }
    return st;
}

static inline status_t pt_release(const char *m, const char *hold_id, const char *reference,
                                  Loyalty__V1__PointsHold **out) {
    Loyalty__V1__PointsReleaseHoldRequest req = LOYALTY__V1__POINTS_RELEASE_HOLD_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    if (hold_id) {
        req.target_case = LOYALTY__V1__POINTS_RELEASE_HOLD_REQUEST__TARGET_HOLD_ID;
        req.hold_id = (char *)hold_id;
    } else {
        req.target_case = LOYALTY__V1__POINTS_RELEASE_HOLD_REQUEST__TARGET_REFERENCE;
        req.reference = (char *)reference;
    }
    Loyalty__V1__PointsReleaseHoldResponse *r = NULL;
    status_t st = pcall("ReleaseHold", &req, &r);
    if (out) {
        *out = status_is_ok(&st) ? r->hold : NULL;
    }
    return st;
}

static inline Loyalty__V1__PointsHold *pt_get_hold(const char *m, const char *hold_id) {
    Loyalty__V1__PointsGetHoldRequest req = LOYALTY__V1__POINTS_GET_HOLD_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.target_case = LOYALTY__V1__POINTS_GET_HOLD_REQUEST__TARGET_HOLD_ID;
    req.hold_id = (char *)hold_id;
    Loyalty__V1__PointsGetHoldResponse *r = NULL;
    assert_ok(pcall("GetHold", &req, &r));
    return r->hold;
}

static inline status_t pt_reverse_key(const char *m, const char *reference, int64_t share_bps,
                                      const char *key,
                                      Loyalty__V1__PointsReverseOrderResponse **out) {
    Loyalty__V1__PointsReverseOrderRequest req = LOYALTY__V1__POINTS_REVERSE_ORDER_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)key;
    req.reference = (char *)reference;
    req.share_bps = share_bps;
    req.reason = "customer return";
    return pcall("ReverseOrder", &req, out);
}

static inline Loyalty__V1__PointsListHistoryResponse *pt_history(const char *m,
                                                                 const char *member) {
    Loyalty__V1__PointsListHistoryRequest req = LOYALTY__V1__POINTS_LIST_HISTORY_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.member_id = (char *)member;
    Loyalty__V1__PointsListHistoryResponse *r = NULL;
    assert_ok(pcall("ListHistory", &req, &r));
    return r;
}

static inline Loyalty__V1__PointsListLotsResponse *pt_lots(const char *m, const char *member,
                                                           bool include_closed) {
    Loyalty__V1__PointsListLotsRequest req = LOYALTY__V1__POINTS_LIST_LOTS_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.member_id = (char *)member;
    req.include_closed = include_closed;
    Loyalty__V1__PointsListLotsResponse *r = NULL;
    assert_ok(pcall("ListLots", &req, &r));
    return r;
}

/* VerifyLedger for the merchant must find nothing; differences are printed. */
static inline void pt_assert_ledger_clean(const char *m) {
    Loyalty__V1__PointsVerifyLedgerRequest req = LOYALTY__V1__POINTS_VERIFY_LEDGER_REQUEST__INIT;
    req.merchant_id = (char *)m;
    Loyalty__V1__PointsVerifyLedgerResponse *r = NULL;
    assert_ok(pcall("VerifyLedger", &req, &r));
    for (size_t i = 0; i < r->n_differences; i++) {
        Loyalty__V1__PointsLedgerDifference *d = r->differences[i];
        cr_log_error("ledger difference %s member=%s subject=%s expected=%lld actual=%lld",
                     d->check, d->member_id, d->subject_id, (long long)d->expected,
                     (long long)d->actual);
    }
    cr_assert(r->ok, "VerifyLedger found %zu differences", r->n_differences);
    cr_assert(r->members_checked > 0, "VerifyLedger checked no member");
}

/* Runs SQL with up to three text parameters against the test database; returns the number of
 * rows affected or returned. */
/* The database the test's points-svc uses: its own (pt_start_alone) or the shared one. */
static char pt_private_dsn[640];

static inline const char *pt_dsn(void) {
    return pt_private_dsn[0] ? pt_private_dsn : harness_pg_dsn();
}

/* points-svc without jobs (JOB_INTERVAL_S=0) on a database of the test's own: no points-svc of
 * another test running alongside settles (expires, matures) this test's accounts behind its
 * back with its settle job, which sweeps every merchant of its database. */
static inline void pt_start_alone(svc_proc_t *p) {
    snprintf(pt_private_dsn, sizeof pt_private_dsn, "%s", harness_private_database());
    static char dsn_env[sizeof pt_private_dsn + 16];
    snprintf(dsn_env, sizeof dsn_env, "LOYALTY_PG_DSN=%s", pt_private_dsn);
    const char *env[] = {dsn_env, "JOB_INTERVAL_S=0", NULL};
    harness_start(p, "points-svc", env);
}

static inline int pt_sql(const char *sql, const char *p1, const char *p2, const char *p3) {
    PGconn *pg = PQconnectdb(pt_dsn());
    cr_assert_eq(PQstatus(pg), CONNECTION_OK);
    const char *params[] = {p1, p2, p3};
    int n = p3 ? 3 : p2 ? 2 : p1 ? 1 : 0;
    PGresult *r = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType rs = PQresultStatus(r);
    cr_assert(rs == PGRES_COMMAND_OK || rs == PGRES_TUPLES_OK, "%s: %s", sql,
              PQresultErrorMessage(r));
    int rows = rs == PGRES_TUPLES_OK ? PQntuples(r) : atoi(PQcmdTuples(r));
    PQclear(r);
    PQfinish(pg);
    return rows;
}

/* The first cell of a query as a string in the arena. */
static inline const char *pt_sql_value(const char *sql, const char *p1, const char *p2) {
    PGconn *pg = PQconnectdb(pt_dsn());
    cr_assert_eq(PQstatus(pg), CONNECTION_OK);
    const char *params[] = {p1, p2};
    PGresult *r = PQexecParams(pg, sql, p2 ? 2 : 1, NULL, params, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
    cr_assert_eq(PQntuples(r), 1, "%s: %d rows", sql, PQntuples(r));
    const char *v = arena_strdup(&arena, PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(pg);
    return v;
}

/* Time passing also ends the cached balance's validity: drop it as its valid-until would, in
 * Redis and in the service's near cache (through its invalidation channel). */
static inline void pt_forget_cached_balance(const char *m, const char *member) {
    const char *url = getenv("LOYALTY_REDIS_URL");
    cache_t *c = cache_create(url ? url : "", 60);
    char key[256];
    snprintf(key, sizeof key, "{m:%s}:points:balance:%s", m, member);
    cache_del(c, key);
    redisContext *rc = cache_conn(c);
    if (rc != NULL) {
        freeReplyObject(redisCommand(rc, "PUBLISH %s %s", "loyalty:invalidate:points-svc", key));
    }
    cache_destroy(c);
}

/* Counts entries of `type` for merchant `m` in the events stream, waiting up to 5 s for at
 * least `want` (the outbox publishes shortly after the commit). */
static inline int pt_count_events(const char *m, const char *type, int want) {
    const char *url = getenv("LOYALTY_REDIS_URL");
    cache_t *c = cache_create(url ? url : "", 60);
    int count = 0;
    for (int attempt = 0; attempt < 50; attempt++) {
        count = 0;
        redisContext *rc = cache_conn(c);
        cr_assert_not_null(rc, "redis unreachable");
        redisReply *r = redisCommand(rc, "XRANGE loyalty:events - +");
        cr_assert(r != NULL && r->type == REDIS_REPLY_ARRAY);
        for (size_t i = 0; i < r->elements; i++) {
            redisReply *fields = r->element[i]->element[1];
            bool merchant = false, kind = false;
            for (size_t f = 0; f + 1 < fields->elements; f += 2) {
                const char *k = fields->element[f]->str, *v = fields->element[f + 1]->str;
                merchant |= strcmp(k, "merchant_id") == 0 && strcmp(v, m) == 0;
                kind |= strcmp(k, "type") == 0 && strcmp(v, type) == 0;
            }
            count += merchant && kind;
        }
        freeReplyObject(r);
        if (count >= want) {
            break;
        }
        usleep(100 * 1000);
    }
    cache_destroy(c);
    return count;
}

/* Moves a member's lots' expiry into the past and marks the account due, as if that much time
 * had passed: the next read or settle expires them. A minute back: the service's clock counts
 * whole seconds and may lag PostgreSQL's now(), so one second back is not always past for it. */
static inline void pt_age_lots_expiry(const char *m, const char *member) {
    pt_forget_cached_balance(m, member);
    pt_sql("UPDATE points.lots SET expires_at = now() - interval '1 minute', "
           " expiry_date = current_date - 1 "
           "WHERE merchant_id = $1 AND member_id = $2 AND expires_at IS NOT NULL",
           m, member, NULL);
    pt_sql("UPDATE points.accounts SET next_due_at = now() - interval '1 minute' "
           "WHERE merchant_id = $1 AND member_id = $2",
           m, member, NULL);
}

/* Ends the pending window of a member's pending lots. */
static inline void pt_age_pending(const char *m, const char *member) {
    pt_forget_cached_balance(m, member);
    pt_sql("UPDATE points.lots SET available_at = now() - interval '1 minute' "
           "WHERE merchant_id = $1 AND member_id = $2 AND status = 1",
           m, member, NULL);
    pt_sql("UPDATE points.accounts SET next_due_at = now() - interval '1 minute' "
           "WHERE merchant_id = $1 AND member_id = $2",
           m, member, NULL);
}

#endif
