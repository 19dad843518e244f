/* outbox.c -- recording outbox entries and publishing them to Redis streams. */
#include "outbox.h"

#include "clock.h"
#include "ids.h"
#include "log.h"
#include "metrics.h"
#include "pgarray.h"
#include "rpc_metrics.h"
#include "sql_time.h"

#include <hiredis/hiredis.h>

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OUTBOX_BATCH_MAX 1000
/* How long a pass waits for the WAL of rows committed without waiting for the disk; the WAL
 * writer flushes them within 3 x wal_writer_delay. Past it the pass ends and the next retries. */
#define OUTBOX_FLUSH_WAIT_MS 2000

/* The events of a transaction (outbox_emit). Nothing reads them before it commits: the
 * publisher runs in transactions of its own. */
static const db_rowset_def_t OUTBOX_ROWS = {
    .sql = "INSERT INTO outbox (merchant_id, id, stream, type, subject_id, payload) "
           "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], "
           " $6::text[])",
    .n_cols = 6,
};

status_t outbox_emit(rpc_ctx_t *ctx, const char *merchant_id, const char *stream, const char *type,
                     const char *subject_id, const char *payload_json, char *event_id_out) {
    assert(db_in_tx(ctx->db)); /* an event must commit or roll back with its change */
    assert(strlen(type) > 0 && strlen(type) < OUTBOX_TYPE_MAX);
    size_t payload_len = strlen(payload_json);
    if (payload_len > OUTBOX_PAYLOAD_MAX) {
        return status_make(STATUS_INTERNAL, REASON_EVENT_TOO_LARGE, "event payload too large");
    }
    /* jsonw leaves "" when the object did not fit its buffer: an event must never carry a cut
     * object, and refusing it rolls back the change with it. */
    if (payload_len < 2 || payload_json[0] != '{' || payload_json[payload_len - 1] != '}') {
        return status_make(STATUS_INTERNAL, REASON_EVENT_TOO_LARGE,
                           "event payload is not a whole JSON object (too large for its buffer)");
    }
    char id[ID_MAX];
    id_generate("evt", id);
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, merchant_id && merchant_id[0] ? merchant_id : ctx->merchant_id);
    db_param_text(&p, id);
    db_param_text(&p, stream);
    db_param_text(&p, type);
    db_param_text(&p, subject_id ? subject_id : "");
    db_param_text(&p, payload_json);
    /* A row set: the transaction's events travel with its COMMIT, in one statement. */
    status_t st = db_rowset_append(ctx->db, &OUTBOX_ROWS, &p);
    if (status_is_ok(&st)) {
        ctx->outbox_emitted++;
        if (event_id_out) {
            memcpy(event_id_out, id, strlen(id) + 1);
        }
    }
    return st;
}

/* XADDs every selected row in one pipeline; false when Redis failed (nothing is marked). */
static bool outbox_xadd_all(cache_t *cache, const PGresult *r, const char *service,
                            int64_t stream_maxlen) {
    redisContext *conn = cache_conn(cache);
    if (conn == NULL) {
        return false;
    }
    int rows = PQntuples(r);
    char maxlen[24];
    snprintf(maxlen, sizeof maxlen, "%lld", (long long)stream_maxlen);
    for (int i = 0; i < rows; i++) {
        const char *argv[] = {"XADD",        db_get_str(r, i, 2),
                              "MAXLEN",      "~",
                              maxlen,        "*",
                              "event_id",    db_get_str(r, i, 1),
                              "type",        db_get_str(r, i, 3),
                              "merchant_id", db_get_str(r, i, 0),
                              "subject_id",  db_get_str(r, i, 4),
                              "occurred_at", db_get_str(r, i, 6),
                              "service",     service,
                              "payload",     db_get_str(r, i, 5)};
        size_t lens[20];
        for (int k = 0; k < 20; k++) {
            lens[k] = strlen(argv[k]);
        }
        if (redisAppendCommandArgv(conn, 20, argv, lens) != REDIS_OK) {
            rpc_metrics_redis_call(false);
            cache_mark_broken(cache);
            return false;
        }
    }
    bool ok = true;
    for (int i = 0; i < rows; i++) {
        void *reply = NULL;
        if (redisGetReply(conn, &reply) != REDIS_OK) {
            rpc_metrics_redis_call(false);
            cache_mark_broken(cache);
            return false;
        }
        redisReply *rr = reply;
        if (rr->type == REDIS_REPLY_ERROR) {
            log_msg(LOG_ERROR, "XADD refused: %s", rr->str);
            ok = false;
        }
        freeReplyObject(rr);
    }
    rpc_metrics_redis_call(true);
    return ok;
}

typedef struct publish_arg {
    cache_t *cache;
    const char *service;
    int64_t batch_max;
    int64_t stream_maxlen;
    bool keep_published;
    int64_t published;
} publish_arg_t;

static status_t outbox_publish_tx(db_t *db, void *arg) {
    publish_arg_t *a = arg;
    a->published = 0;
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, a->batch_max);
    PGresult *r = NULL;
    // clang-format off
    status_t st = db_exec(db,
                          "SELECT merchant_id, id, stream, type, subject_id, payload, "
                          " " SQL_EPOCH_S("created_at") ", commit_async, "
                          " pg_current_wal_insert_lsn()::text, ctid::text "
                          "FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1 "
                          "FOR UPDATE SKIP LOCKED",
                          &p, &r);
    // clang-format on
    if (!status_is_ok(&st)) {
        return st;
    }
    int rows = PQntuples(r);
    if (rows == 0) {
        PQclear(r);
        return st;
    }
    bool any_async = false;
    for (int i = 0; i < rows && !any_async; i++) {
        any_async = db_get_bool(r, i, 7);
    }
    if (any_async) {
        /* Their transactions committed before this statement began, so their WAL lies before
         * the insert position it read: once that is on disk, a crash cannot take them back. */
        st = db_wait_flushed(db, db_get_str(r, 0, 8), OUTBOX_FLUSH_WAIT_MS);
        if (!status_is_ok(&st)) {
            PQclear(r);
            return st;
        }
    }
    if (!outbox_xadd_all(a->cache, r, a->service, a->stream_maxlen)) {
        PQclear(r);
        return status_make(STATUS_UNAVAILABLE, REASON_REDIS_UNAVAILABLE,
                           "events stream unavailable");
    }
    arena_t arena;
    arena_init(&arena);
    char **tids = arena_alloc(&arena, (size_t)rows * sizeof *tids);
    char **merchants = arena_alloc(&arena, (size_t)rows * sizeof *merchants);
    for (int i = 0; i < rows; i++) {
        tids[i] = arena_strdup(&arena, db_get_str(r, i, 9));
        merchants[i] = arena_strdup(&arena, db_get_str(r, i, 0));
    }
    PQclear(r);
    db_params_init(&p);
    db_param_text(&p, pgarray_encode(&arena, tids, (size_t)rows));
    db_param_text(&p, pgarray_encode(&arena, merchants, (size_t)rows));
    /* Sent with the COMMIT (nothing to read back), and the commit does not wait for the disk:
     * a mark or delete lost in a crash only publishes its entries again, which consumers
     * already expect (every entry carries its event_id), so waiting would buy nothing. Without
     * retention the rows go now: a delete writes no new version of the row (its payload) and
     * leaves nothing for the purge. The rows are named by their ctid, which cannot change while
     * this transaction holds their locks: a TID scan reaches each one directly, where a join
     * with the ids' array was planned as a scan of the whole table and its dead rows. Their
     * merchants go with them, as in every statement (docs/architecture.md, "Distributing by
     * merchant"). */
    st = db_exec_deferred(db,
                          a->keep_published
                              ? "UPDATE outbox SET published_at = now() "
                                "FROM (SELECT set_config('synchronous_commit', 'off', true)) "
                                " AS nosync "
                                "WHERE ctid = ANY ($1::tid[]) AND merchant_id = ANY ($2::text[])"
                              : "DELETE FROM outbox "
                                "USING (SELECT set_config('synchronous_commit', 'off', true)) "
                                " AS nosync "
                                "WHERE ctid = ANY ($1::tid[]) AND merchant_id = ANY ($2::text[])",
                          &p, NULL);
    arena_free(&arena);
    if (status_is_ok(&st)) {
        a->published = rows;
    }
    return st;
}

static status_t outbox_publish_run(db_t *db, cache_t *cache, const char *service, int64_t batch_max,
                                   int64_t stream_maxlen, bool keep_published, int64_t *published) {
    publish_arg_t a = {cache,
                       service,
                       batch_max > 0 && batch_max <= OUTBOX_BATCH_MAX ? batch_max
                                                                      : OUTBOX_BATCH_MAX,
                       stream_maxlen,
                       keep_published,
                       0};
    status_t st = db_tx(db, outbox_publish_tx, &a);
    *published = status_is_ok(&st) ? a.published : 0;
    return st;
}

status_t outbox_publish_batch(db_t *db, cache_t *cache, const char *service, int64_t batch_max,
                              int64_t stream_maxlen, int64_t *published) {
    return outbox_publish_run(db, cache, service, batch_max, stream_maxlen, true, published);
}

status_t outbox_publish_batch_deleting(db_t *db, cache_t *cache, const char *service,
                                       int64_t batch_max, int64_t stream_maxlen,
                                       int64_t *published) {
    return outbox_publish_run(db, cache, service, batch_max, stream_maxlen, false, published);
}

void outbox_report_pending(db_t *db) {
    static int64_t last_ms; /* one caller: the publisher thread */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (!metrics_enabled() || (last_ms != 0 && now_ms - last_ms < OUTBOX_REPORT_MS)) {
        return;
    }
    last_ms = now_ms;
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "SELECT count(*), "
                          " coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 "
                          "FROM outbox WHERE published_at IS NULL",
                          NULL, &r);
    if (status_is_ok(&st)) {
        rpc_metrics_outbox(db_get_int(r, 0, 0), strtod(db_get_str(r, 0, 1), NULL));
        PQclear(r);
    }
}

status_t outbox_purge(db_t *db, int64_t retention_days, int64_t batch, int64_t *deleted) {
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, retention_days);
    db_param_int(&p, batch);
    PGresult *r = NULL;
    status_t st = db_exec(db,
                          "DELETE FROM outbox WHERE ctid IN (SELECT ctid FROM outbox "
                          " WHERE published_at < now() - make_interval(days => $1::int) LIMIT $2)",
                          &p, &r);
    if (status_is_ok(&st)) {
        *deleted = strtoll(PQcmdTuples(r), NULL, 10);
        PQclear(r);
    }
    return st;
}

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool kicked;
    bool stop;
} g_kick = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false};

void outbox_kick(void) {
    pthread_mutex_lock(&g_kick.mu);
    g_kick.kicked = true;
    pthread_cond_signal(&g_kick.cond);
    pthread_mutex_unlock(&g_kick.mu);
}

bool outbox_wait(int64_t timeout_ms) {
    struct timespec until = clock_realtime_after_ms(timeout_ms);
    pthread_mutex_lock(&g_kick.mu);
    while (!g_kick.kicked && !g_kick.stop) {
        if (pthread_cond_timedwait(&g_kick.cond, &g_kick.mu, &until) != 0) {
            break;
        }
    }
    g_kick.kicked = false;
    bool running = !g_kick.stop;
    pthread_mutex_unlock(&g_kick.mu);
    return running;
}

void outbox_stop(void) {
    pthread_mutex_lock(&g_kick.mu);
    g_kick.stop = true;
    pthread_cond_broadcast(&g_kick.cond);
    pthread_mutex_unlock(&g_kick.mu);
}
