/* points_jobs.c -- the settle job. Each batch locks due accounts with FOR UPDATE SKIP LOCKED, so
 * replicas share the work without waiting on each other, and settles them in one transaction;
 * a settle is idempotent (what it changes is no longer due), so nothing expires twice. */
#include "points_jobs.h"

#include "log.h"
#include "points_ops.h"

#define POINTS_JOB_BATCH 100
/* Per run: the rest waits for the next tick. Batches x batch size stays within the runtime's
 * RPC_INVALIDATIONS_MAX cache keys per job run. */
#define POINTS_JOB_BATCHES_MAX 10
_Static_assert(POINTS_JOB_BATCH *POINTS_JOB_BATCHES_MAX <= RPC_INVALIDATIONS_MAX,
               "a job run invalidates one cache key per member settled");

typedef struct settle_batch {
    rpc_ctx_t *ctx;
    int invalidations_before; /* a retried attempt drops the keys of the attempt it replaces */
    int settled;
    points_settle_stats_t stats;
} settle_batch_t;

static status_t settle_batch_tx(db_t *db, void *arg) {
    settle_batch_t *b = arg;
    b->ctx->invalidation_count = b->invalidations_before;
    b->settled = 0;
    b->stats = (points_settle_stats_t){0};
    char **merchants = NULL, **members = NULL;
    int n = 0;
    status_t st = points_store_due_accounts(db, b->ctx->arena, NULL, b->ctx->now_s,
                                            POINTS_JOB_BATCH, &merchants, &members, &n);
    for (int i = 0; i < n && status_is_ok(&st); i++) {
        points_ledger_t lg;
        st = points_ops_open(&lg, b->ctx, db, b->ctx->arena, merchants[i], members[i],
                             b->ctx->now_s, false);
        if (status_is_ok(&st) && lg.found) {
            st = points_ops_close(&lg);
            b->stats.lots_expired += lg.stats.lots_expired;
            b->stats.points_expired += lg.stats.points_expired;
            b->stats.holds_expired += lg.stats.holds_expired;
            b->stats.lots_matured += lg.stats.lots_matured;
        }
        b->settled++;
    }
    return st;
}

/* The runtime deletes the invalidated cache keys after the job returns; a cached balance of a
 * due member is already past its valid-until, so none is served stale in between. */
static status_t job_settle(rpc_ctx_t *ctx) {
    for (int i = 0; i < POINTS_JOB_BATCHES_MAX; i++) {
        settle_batch_t b = {.ctx = ctx, .invalidations_before = ctx->invalidation_count};
        status_t st = db_tx(ctx->db, settle_batch_tx, &b);
        if (!status_is_ok(&st)) {
            return st;
        }
        if (b.settled > 0) {
            log_msg(LOG_INFO,
                    "settled %d members: %lld lots expired (%lld points), %lld holds expired, "
                    "%lld lots matured",
                    b.settled, (long long)b.stats.lots_expired, (long long)b.stats.points_expired,
                    (long long)b.stats.holds_expired, (long long)b.stats.lots_matured);
        }
        if (b.settled < POINTS_JOB_BATCH) {
            break;
        }
    }
    return status_ok();
}

const rpc_job_t points_jobs[] = {
    {"points-settle", job_settle, 0},
    {NULL, NULL, 0},
};
