/* test_runtime_outbox.c -- the transactional outbox against real PostgreSQL and Redis: only
 * committed events are published, an outage delays but loses nothing, nothing is published
 * twice, two publishers racing publish every event exactly once, and a payload that did not
 * fit its buffer is refused rather than published cut; all of it both for the publisher that
 * marks published rows (retention on) and for the one that deletes them (the default). */
#include "cache.h"
#include "db.h"
#include "harness.h"
#include "ids.h"
#include "jsonw.h"
#include "outbox.h"
#include "rpc_server.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static redis_proc_t redis;
static arena_t arena;
static db_t *db;
static cache_t *cache;

/* Each test gets its own schema: a publisher takes every unpublished row of its outbox, and
 * the tests run in parallel, each with its own Redis. */
static char schema[32];

static void setup(void) {
    harness_init();
    arena_init(&arena);
    harness_redis_start(&redis);
    harness_schema_name("outbox_test", schema);
    db = harness_db_create(schema, "outbox-test");
    status_t st = db_migrate(db, runtime_migrations, NULL);
    cr_assert(status_is_ok(&st), "%s", st.message);
    cache = cache_create(redis.url, 60);
}

static void teardown(void) {
    harness_schema_drop(db, schema);
    cache_destroy(cache);
    db_destroy(db);
    harness_redis_stop(&redis);
    arena_free(&arena);
    harness_fini();
}

TestSuite(runtime_outbox, .init = setup, .fini = teardown, .timeout = 60);

typedef struct emit_arg {
    rpc_ctx_t *ctx;
    int count;
    bool fail;
    char ids[256][ID_MAX];
} emit_arg_t;

static status_t emit_tx(db_t *d, void *p) {
    (void)d;
    emit_arg_t *a = p;
    for (int i = 0; i < a->count; i++) {
        char payload[64];
        snprintf(payload, sizeof payload, "{\"n\":%d}", i);
        status_t st = outbox_emit(a->ctx, NULL, OUTBOX_EVENTS_STREAM, "test.happened", "subject-1",
                                  payload, a->ids[i]);
        if (!status_is_ok(&st)) {
            return st;
        }
    }
    return a->fail ? status_make_relayed(STATUS_FAILED_PRECONDITION, "NO", "roll back")
                   : status_ok();
}

static void emit(const char *merchant, int count, bool fail, emit_arg_t *a) {
    rpc_ctx_t ctx = {.arena = &arena, .db = db, .cache = cache, .merchant_id = merchant};
    memset(a, 0, sizeof *a);
    a->ctx = &ctx;
    a->count = count;
    a->fail = fail;
    status_t st = db_tx(db, emit_tx, a);
    cr_assert_eq(st.code, fail ? STATUS_FAILED_PRECONDITION : STATUS_OK, "%s", st.message);
}

/* Event ids of `merchant` in the events stream, in stream order. */
static int stream_ids(const char *merchant, char ids[][ID_MAX], int max) {
    redisContext *c = redisConnect("127.0.0.1", redis.port);
    cr_assert(c && !c->err);
    redisReply *r = redisCommand(c, "XRANGE %s - +", OUTBOX_EVENTS_STREAM);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY);
    int n = 0;
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *fields = r->element[i]->element[1];
        const char *id = NULL, *m = NULL;
        for (size_t k = 0; k + 1 < fields->elements; k += 2) {
            if (strcmp(fields->element[k]->str, "event_id") == 0) {
                id = fields->element[k + 1]->str;
            } else if (strcmp(fields->element[k]->str, "merchant_id") == 0) {
                m = fields->element[k + 1]->str;
            }
        }
        if (id && m && strcmp(m, merchant) == 0 && n < max) {
            snprintf(ids[n++], ID_MAX, "%s", id);
        }
    }
    freeReplyObject(r);
    redisFree(c);
    return n;
}

/* One publishing pass of the marking (keep) or the deleting publisher. */
static status_t publish_pass(bool keep, db_t *d, cache_t *c, int64_t batch_max, int64_t *n) {
    return keep ? outbox_publish_batch(d, c, "outbox-test", batch_max, 100000, n)
                : outbox_publish_batch_deleting(d, c, "outbox-test", batch_max, 100000, n);
}

static int64_t publish_all_with(bool keep, cache_t *c, db_t *d) {
    int64_t total = 0, n = 0;
    do {
        status_t st = publish_pass(keep, d, c, 50, &n);
        cr_assert(status_is_ok(&st), "%s", st.message);
        total += n;
    } while (n > 0);
    return total;
}

static int64_t publish_all(cache_t *c, db_t *d) {
    return publish_all_with(true, c, d);
}

/* One integer answer of `sql` (no parameters) on the test's handle. */
static int64_t sql_int(const char *sql) {
    PGresult *r = NULL;
    status_t st = db_exec(db, sql, NULL, &r);
    cr_assert(status_is_ok(&st), "%s: %s", sql, st.message);
    int64_t v = db_get_int(r, 0, 0);
    PQclear(r);
    return v;
}

Test(runtime_outbox, only_committed_events_are_published_once) {
    /* Goal: events of a committed transaction reach the stream in order with their ids; those of
     * a rolled-back one never do; publishing again publishes nothing. */
    const char *m = harness_merchant("obx");
    emit_arg_t kept, dropped;
    emit(m, 3, false, &kept);
    emit(m, 2, true, &dropped);
    publish_all(cache, db);
    char ids[16][ID_MAX];
    cr_assert_eq(stream_ids(m, ids, 16), 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_str_eq(ids[i], kept.ids[i]);
    }
    publish_all(cache, db);
    cr_assert_eq(stream_ids(m, ids, 16), 3, "nothing is published twice");
}

Test(runtime_outbox, redis_outage_delays_but_loses_nothing) {
    /* Goal: while Redis is down publishing fails and the entries wait; after it returns every
     * entry is published exactly once. */
    const char *m = harness_merchant("obxdown");
    harness_redis_stop(&redis);
    emit_arg_t a;
    emit(m, 4, false, &a);
    int64_t n = 0;
    status_t st = outbox_publish_batch(db, cache, "outbox-test", 50, 100000, &n);
    cr_assert_eq(st.code, STATUS_UNAVAILABLE);
    cr_assert_eq(n, 0);
    harness_redis_restart(&redis);
    usleep(1100 * 1000); /* past the reconnect back-off */
    cr_assert_geq(publish_all(cache, db), 4);
    char ids[16][ID_MAX];
    cr_assert_eq(stream_ids(m, ids, 16), 4);
    for (int i = 0; i < 4; i++) {
        cr_assert_str_eq(ids[i], a.ids[i]);
    }
}

typedef struct racer {
    bool keep;
    int64_t published;
} racer_t;

static void *racer_main(void *p) {
    racer_t *r = p;
    db_t *d = harness_db_create(schema, "outbox-test");
    cache_t *c = cache_create(redis.url, 60);
    int64_t n = 0;
    for (int round = 0; round < 50; round++) {
        status_t st = publish_pass(r->keep, d, c, 7, &n);
        if (status_is_ok(&st)) {
            r->published += n;
        }
    }
    cache_destroy(c);
    db_destroy(d);
    return NULL;
}

/* Two publishers (two replicas) working the same outbox of 200 events, then one more pass. */
static void race_publishers(bool keep, const char *m) {
    for (int i = 0; i < 4; i++) {
        emit_arg_t a;
        emit(m, 50, false, &a);
    }
    racer_t racers[2] = {{keep, 0}, {keep, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(pthread_create(&t[i], NULL, racer_main, &racers[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
    }
    publish_all_with(keep, cache, db);
    static char ids[400][ID_MAX];
    int n = stream_ids(m, ids, 400);
    cr_assert_eq(n, 200, "got %d stream entries", n);
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < i; k++) {
            cr_assert(strcmp(ids[i], ids[k]) != 0, "event %s published twice", ids[i]);
        }
    }
}

Test(runtime_outbox, racing_publishers_publish_each_event_once) {
    /* Goal: two publishers (two replicas) working the same outbox publish every one of 200
     * events exactly once. */
    race_publishers(true, harness_merchant("obxrace"));
}

Test(runtime_outbox, racing_deleting_publishers_publish_each_event_once) {
    /* Goal: the same with the publishers that delete what they published: every one of 200
     * events exactly once, and no row is left behind. */
    race_publishers(false, harness_merchant("obxracedel"));
    cr_assert_eq(sql_int("SELECT count(*) FROM outbox"), 0, "published rows are left");
}

Test(runtime_outbox, deleting_publisher_publishes_committed_events_once) {
    /* Goal: the deleting publisher publishes the events of a committed transaction in order
     * with their ids, never those of a rolled-back one, deletes what it published (so the
     * pending count the gauges read is 0), and publishes nothing a second time. */
    const char *m = harness_merchant("obxdel");
    emit_arg_t kept, dropped;
    emit(m, 3, false, &kept);
    emit(m, 2, true, &dropped);
    cr_assert_eq(sql_int("SELECT count(*) FROM outbox WHERE published_at IS NULL"), 3);
    cr_assert_eq(publish_all_with(false, cache, db), 3);
    char ids[16][ID_MAX];
    cr_assert_eq(stream_ids(m, ids, 16), 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_str_eq(ids[i], kept.ids[i]);
    }
    cr_assert_eq(sql_int("SELECT count(*) FROM outbox"), 0, "a published row is left");
    cr_assert_eq(publish_all_with(false, cache, db), 0);
    cr_assert_eq(stream_ids(m, ids, 16), 3, "nothing is published twice");
}

Test(runtime_outbox, deleting_publisher_keeps_rows_while_redis_is_down) {
    /* Goal: when the stream write fails the deleting publisher deletes nothing; once Redis is
     * back every entry is published exactly once. */
    const char *m = harness_merchant("obxdeldown");
    harness_redis_stop(&redis);
    emit_arg_t a;
    emit(m, 4, false, &a);
    int64_t n = 0;
    status_t st = publish_pass(false, db, cache, 50, &n);
    cr_assert_eq(st.code, STATUS_UNAVAILABLE);
    cr_assert_eq(n, 0);
    cr_assert_eq(sql_int("SELECT count(*) FROM outbox"), 4, "an unpublished row was deleted");
    harness_redis_restart(&redis);
    usleep(1100 * 1000); /* past the reconnect back-off */
    cr_assert_eq(publish_all_with(false, cache, db), 4);
    char ids[16][ID_MAX];
    cr_assert_eq(stream_ids(m, ids, 16), 4);
    cr_assert_eq(sql_int("SELECT count(*) FROM outbox"), 0);
}

Test(runtime_outbox, deleting_publisher_publishes_async_commits_after_the_wal_flush) {
    /* Goal: events of a transaction that committed without waiting for the disk (the test
     * stack's default) are published by the deleting publisher only once the WAL holding them
     * is on disk: when a pass that published them returns, the flushed WAL position has reached
     * the position right after their commit. */
    const char *m = harness_merchant("obxasync");
    emit_arg_t a;
    emit(m, 2, false, &a);
    PGresult *r = NULL;
    status_t st = db_exec(db, "SELECT pg_current_wal_insert_lsn()::text", NULL, &r);
    cr_assert(status_is_ok(&st), "%s", st.message);
    char *after_commit = arena_strdup(&arena, db_get_str(r, 0, 0));
    PQclear(r);
    cr_assert_eq(sql_int("SELECT count(*) FROM outbox WHERE commit_async"), 2,
                 "the events did not commit asynchronously: the test proves nothing");
    int64_t n = 0;
    st = publish_pass(false, db, cache, 50, &n);
    cr_assert(status_is_ok(&st), "%s", st.message);
    cr_assert_eq(n, 2);
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, after_commit);
    st = db_exec(db, "SELECT (pg_current_wal_flush_lsn() >= $1::pg_lsn)::int", &p, &r);
    cr_assert(status_is_ok(&st), "%s", st.message);
    cr_assert_eq(db_get_int(r, 0, 0), 1, "published before the WAL of their commit was flushed");
    PQclear(r);
    char ids[4][ID_MAX];
    cr_assert_eq(stream_ids(m, ids, 4), 2);
}

/* Emits one event whose payload overflowed its jsonw buffer, then one whole event. */
static status_t emit_cut_tx(db_t *d, void *p) {
    (void)d;
    emit_arg_t *a = p;
    char payload[64];
    jsonw_t w;
    jsonw_begin(&w, payload, sizeof payload);
    jsonw_str(&w, "member_id", "mbr_1");
    jsonw_str(&w, "note", "a value far longer than the sixty-four bytes of its buffer");
    jsonw_end(&w);
    status_t st = outbox_emit(a->ctx, NULL, OUTBOX_EVENTS_STREAM, "test.cut", "subject-1", payload,
                              a->ids[0]);
    if (!status_is_ok(&st)) {
        return st;
    }
    return outbox_emit(a->ctx, NULL, OUTBOX_EVENTS_STREAM, "test.whole", "subject-1", "{}",
                       a->ids[1]);
}

Test(runtime_outbox, payload_cut_by_its_buffer_is_refused) {
    /* Goal: an event payload that overflowed its jsonw buffer is refused by outbox_emit (a
     * status, not a cut object on the stream), and its transaction writes nothing. */
    const char *m = harness_merchant("obxcut");
    rpc_ctx_t ctx = {.arena = &arena, .db = db, .cache = cache, .merchant_id = m};
    emit_arg_t a;
    memset(&a, 0, sizeof a);
    a.ctx = &ctx;
    status_t st = db_tx(db, emit_cut_tx, &a);
    cr_assert_eq(st.code, STATUS_INTERNAL, "got %s: %s", status_code_name(st.code), st.message);
    cr_assert_str_eq(st.reason, "EVENT_TOO_LARGE");
    cr_assert_eq(ctx.outbox_emitted, 0);
    cr_assert_eq(publish_all(cache, db), 0, "nothing was written");
    char ids[4][ID_MAX];
    cr_assert_eq(stream_ids(m, ids, 4), 0);
}
