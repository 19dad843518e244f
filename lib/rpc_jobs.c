/* rpc_jobs.c -- the shared server's background threads: the monitor (migrations, PostgreSQL
 * probe), the outbox publisher, and the job lanes running the runtime's and the service's jobs. */
#include "rpc_server_internal.h"

#include "audit.h"
#include "auth.h"
#include "clock.h"
#include "credentials.h"
#include "health.h"
#include "idem.h"
#include "ids.h"
#include "log.h"
#include "near_cache.h"
#include "outbox.h"
#include "pb.h"
#include "reflection.h"
#include "request.h"
#include "rpc_client.h"
#include "rpc_metrics.h"
#include "trace.h"
#include "validate.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>

#include <assert.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

bool srv_background_sleep(int64_t ms) {
    struct timespec until = clock_realtime_after_ms(ms);
    pthread_mutex_lock(&g_srv.mu);
    while (!g_srv.stop_background) {
        if (pthread_cond_timedwait(&g_srv.cond, &g_srv.mu, &until) == ETIMEDOUT) {
            break;
        }
    }
    bool stop = g_srv.stop_background;
    pthread_mutex_unlock(&g_srv.mu);
    return stop;
}

/* Applies migrations until they succeed, then probes PostgreSQL for the health state. */
void *srv_monitor_main(void *arg) {
    (void)arg;
    db_t *db = srv_db_create();
    do {
        if (!health_is_migrated()) {
            status_t st = g_srv.config.db_migrate_on_start
                              ? db_migrate(db, runtime_migrations, g_srv.opts->migrations)
                              : srv_check_migrated(db);
            if (status_is_ok(&st)) {
                health_set_migrated(true);
                health_set_db_reachable(true);
                srv_watch_notify();
                rpc_metrics_db_up(true);
                log_msg(LOG_INFO, "migrations applied; serving");
            } else {
                log_msg(LOG_WARN, "migrations not applied yet: %s", st.message);
            }
        } else {
            health_set_db_reachable(db_ping(db));
            srv_watch_notify();
        }
    } while (!srv_background_sleep(health_is_migrated() ? MONITOR_PROBE_MS : 1000));
    db_destroy(db);
    rpc_client_thread_cleanup();
    return NULL;
}

static status_t job_purge_idempotency(rpc_ctx_t *ctx) {
    int64_t deleted = 0;
    status_t st =
        idem_purge(ctx->db, IDEMPOTENCY_RETENTION_DAYS, IDEMPOTENCY_PURGE_BATCH, &deleted);
    if (status_is_ok(&st) && deleted > 0) {
        log_msg(LOG_INFO, "purged %lld idempotency keys", (long long)deleted);
    }
    return st;
}

static status_t job_purge_outbox(rpc_ctx_t *ctx) {
    int64_t deleted = 0;
    return outbox_purge(ctx->db, ctx->config->outbox_retention_days, IDEMPOTENCY_PURGE_BATCH,
                        &deleted);
}

static const rpc_job_t runtime_jobs[] = {
    {"purge-idempotency-keys", job_purge_idempotency, 3600},
    {"purge-published-outbox", job_purge_outbox, 3600},
    {NULL, NULL, 0},
};

/* After a wake-up the publisher gathers the commits of this long before it publishes: under load
 * every change kicks it, and one publishing transaction (select, XADD, mark, commit) per event
 * cost a checkout about twenty SQL round trips; gathered, a burst goes in one. */
#define OUTBOX_GATHER_MS 10
/* Under steady load a kick arrives right after every pass, and a 10 ms gather still made about
 * one pass (two statements and a Redis pipeline) per checkout and service: a pass also waits
 * until this long after the previous one began, so at any load there are at most 20 passes a
 * second and each takes what the interval gathered. Events reach the stream at most this much
 * later; an idle publisher still answers a kick after OUTBOX_GATHER_MS. */
#define OUTBOX_PASS_INTERVAL_MS 50

/* How long a woken publisher waits before its pass (see OUTBOX_PASS_INTERVAL_MS). */
static int64_t outbox_gather_ms(int64_t last_pass_ms, int64_t now_ms) {
    int64_t until_interval = last_pass_ms + OUTBOX_PASS_INTERVAL_MS - now_ms;
    return until_interval > OUTBOX_GATHER_MS ? until_interval : OUTBOX_GATHER_MS;
}

/* Publishes outbox entries soon after the transactions that wrote them commit (woken by
 * outbox_kick), and every second anyway for entries left behind by an outage or a crash. */
void *srv_outbox_main(void *arg) {
    (void)arg;
    db_t *db = srv_db_create();
    cache_t *cache = cache_create(g_srv.config.redis_url, g_srv.config.cache_ttl_s);
    bool backlog = true;
    int64_t last_pass_ms = 0;
    while (outbox_wait(backlog ? 0 : 1000)) {
        if (!backlog) {
            int64_t gather_ms = outbox_gather_ms(last_pass_ms, clock_monotonic_ms());
            struct timespec gather = {gather_ms / 1000, (gather_ms % 1000) * 1000000L};
            nanosleep(&gather, NULL);
        }
        last_pass_ms = clock_monotonic_ms();
        backlog = false;
        if (health_is_migrated()) {
            outbox_report_pending(db);
        }
        if (!health_is_migrated() || g_srv.config.redis_url[0] == '\0') {
            continue;
        }
        int64_t published = 0;
        /* Without retention a published entry is deleted rather than marked: no second
         * version of the row and nothing for the purge to delete later. */
        status_t st =
            g_srv.config.outbox_retention_days > 0
                ? outbox_publish_batch(db, cache, g_srv.opts->service_name, 500,
                                       g_srv.config.events_stream_maxlen, &published)
                : outbox_publish_batch_deleting(db, cache, g_srv.opts->service_name, 500,
                                                g_srv.config.events_stream_maxlen, &published);
        backlog = status_is_ok(&st) && published == 500;
    }
    cache_destroy(cache);
    db_destroy(db);
    return NULL;
}

status_t srv_background_run(const char *name, db_t *db, cache_t *cache, const char *merchant_id,
                            status_t (*fn)(rpc_ctx_t *ctx, void *arg), void *arg) {
    arena_t arena;
    arena_init(&arena);
    char request_id[REQUEST_ID_MAX + 1];
    snprintf(request_id, sizeof request_id, "job-");
    id_random_token("0123456789abcdef", 16, request_id + 4);
    trace_ctx_t trace; /* every run is a trace of its own */
    trace_begin(&trace, NULL, 0, NULL, 0);
    rpc_ctx_t ctx = {
        .arena = &arena,
        .db = db,
        .cache = cache,
        .config = &g_srv.config,
        .service_state = g_srv.service_state,
        .method = name,
        .request_id = request_id,
        .trace = &trace,
        .merchant_id = merchant_id,
        .credential_id = "",
        .deadline = gpr_inf_future(GPR_CLOCK_MONOTONIC),
        .now_s = (int64_t)time(NULL),
    };
    srv_ctx_set_current(&ctx);
    log_bind_request(request_id, name);
    log_bind_trace(trace.trace_id, trace.span_id, trace.parent_span_id);
    int64_t start = srv_now_us();
    status_t st = fn(&ctx, arg);
    for (int i = 0; i < ctx.invalidation_count; i++) {
        cache_del(cache, ctx.invalidations[i]);
    }
    if (ctx.outbox_emitted > 0) {
        outbox_kick();
    }
    if (!status_is_ok(&st)) {
        log_msg(LOG_WARN, "job %s failed after %lld us: %s", name,
                (long long)(srv_now_us() - start), st.message);
    }
    log_bind_request(NULL, NULL);
    log_bind_trace(NULL, NULL, NULL);
    srv_ctx_set_current(NULL);
    arena_free(&arena);
    return st;
}

static status_t job_call(rpc_ctx_t *ctx, void *arg) {
    const rpc_job_t *job = arg;
    return job->fn(ctx);
}

static void job_run(const rpc_job_t *job, db_t *db, cache_t *cache) {
    (void)srv_background_run(job->name, db, cache, "", job_call, (void *)job);
}

/* A thread running some jobs on their timers: the runtime's own jobs share one, and every job
 * of the service has its own, so that a long run of one (a campaign over a million members)
 * never delays another (the gateway's saga recovery). */
typedef struct job_lane {
    const rpc_job_t *jobs;
    int count;
    pthread_t thread;
} job_lane_t;

#define JOB_LANES_MAX 16

static job_lane_t g_lanes[JOB_LANES_MAX];
static int g_lane_count;

static void *job_main(void *arg) {
    const job_lane_t *lane = arg;
    db_t *db = srv_db_create();
    cache_t *cache = cache_create(g_srv.config.redis_url, g_srv.config.cache_ttl_s);
    int64_t next_due[JOB_LANES_MAX * 4];
    memset(next_due, 0, sizeof next_due);
    do {
        if (!health_is_migrated()) {
            continue;
        }
        int64_t now = (int64_t)time(NULL);
        for (int i = 0; i < lane->count; i++) {
            const rpc_job_t *job = &lane->jobs[i];
            int64_t every = job->interval_s ? job->interval_s : g_srv.config.job_interval_s;
            if (every <= 0 || now < next_due[i]) {
                continue;
            }
            next_due[i] = now + every;
            job_run(job, db, cache);
        }
    } while (!srv_background_sleep(1000));
    cache_destroy(cache);
    db_destroy(db);
    rpc_client_thread_cleanup();
    return NULL;
}

void srv_jobs_start(void) {
    int runtime_count = 0;
    while (runtime_jobs[runtime_count].name) {
        runtime_count++;
    }
    assert(runtime_count <= JOB_LANES_MAX * 4);
    g_lanes[g_lane_count++] = (job_lane_t){.jobs = runtime_jobs, .count = runtime_count};
    for (int i = 0; g_srv.opts->jobs && g_srv.opts->jobs[i].name; i++) {
        if (g_lane_count == JOB_LANES_MAX) {
            log_msg(LOG_ERROR, "more than %d jobs; %s does not run", JOB_LANES_MAX - 1,
                    g_srv.opts->jobs[i].name);
            continue;
        }
        g_lanes[g_lane_count++] = (job_lane_t){.jobs = &g_srv.opts->jobs[i], .count = 1};
    }
    for (int i = 0; i < g_lane_count; i++) {
        if (pthread_create(&g_lanes[i].thread, NULL, job_main, &g_lanes[i]) != 0) {
            abort();
        }
    }
}

void srv_jobs_join(void) {
    for (int i = 0; i < g_lane_count; i++) {
        pthread_join(g_lanes[i].thread, NULL);
    }
    g_lane_count = 0;
}
