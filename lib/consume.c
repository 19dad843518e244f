/* consume.c -- the event stream's consumer threads (see consume.h): XGROUP CREATE once,
 * XREADGROUP for new entries, XAUTOCLAIM for entries another consumer (a dead replica, or a
 * handler that failed) left unacknowledged, the handlers of one merchant's consecutive events in
 * one transaction (a part each), XACK after commit. */
#include "consume.h"

#include "clock.h"
#include "health.h"
#include "log.h"
#include "rpc_client.h"
#include "rpc_server_internal.h"

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONSUMERS_MAX 8
#define CONSUMER_NAME_MAX 128
#define CONSUME_FIELDS_MAX 16 /* field/value pairs of one entry (outbox writes 7) */

#define CONSUMER_GROUP_MAX 192

typedef struct consumer_thread {
    const rpc_consumer_t *c;
    char name[CONSUMER_NAME_MAX];   /* this process in the group: "<host>:<pid>" */
    char group[CONSUMER_GROUP_MAX]; /* "<c->group>:<database>" once known */
    int64_t started_ms;             /* wall clock at start: where a new group begins */
    pthread_t thread;
} consumer_thread_t;

static consumer_thread_t g_consumers[CONSUMERS_MAX];
static int g_consumer_count;

/* ---- payload ---- */

/* Skips a JSON string starting at its opening quote; returns the char after its closing quote,
 * or NULL when it does not end. */
static const char *json_skip_string(const char *p) {
    assert(*p == '"');
    for (p++; *p != '\0'; p++) {
        if (*p == '\\') {
            if (p[1] == '\0') {
                return NULL;
            }
            p++;
        } else if (*p == '"') {
            return p + 1;
        }
    }
    return NULL;
}

bool consume_payload_int(const char *json, const char *key, int64_t *out) {
    size_t key_len = strlen(key);
    int depth = 0;
    for (const char *p = json; p != NULL && *p != '\0';) {
        if (*p == '"') {
            const char *end = json_skip_string(p);
            if (end == NULL) {
                return false;
            }
            const char *after = end;
            while (*after == ' ') {
                after++;
            }
            /* a key of the top-level object: "key" followed by ':' at depth 1 */
            if (depth == 1 && *after == ':' && (size_t)(end - p - 2) == key_len &&
                memcmp(p + 1, key, key_len) == 0) {
                char *num_end = NULL;
                long long v = strtoll(after + 1, &num_end, 10);
                if (num_end == after + 1) {
                    return false;
                }
                *out = (int64_t)v;
                return true;
            }
            p = end;
            continue;
        }
        if (*p == '{' || *p == '[') {
            depth++;
        } else if (*p == '}' || *p == ']') {
            depth--;
        }
        p++;
    }
    return false;
}

/* ---- one entry ---- */

/* The event of a stream entry ([id, [field, value, ...]]); false when it is not one (a deleted
 * entry that XAUTOCLAIM returns with no fields). */
static bool entry_event(const redisReply *e, consume_event_t *ev) {
    memset(ev, 0, sizeof *ev);
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING) {
        return false;
    }
    ev->entry_id = e->element[0]->str;
    const redisReply *f = e->element[1];
    if (f->type != REDIS_REPLY_ARRAY || f->elements > 2 * CONSUME_FIELDS_MAX) {
        return false;
    }
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        if (f->element[i]->type != REDIS_REPLY_STRING ||
            f->element[i + 1]->type != REDIS_REPLY_STRING) {
            return false;
        }
        const char *k = f->element[i]->str;
        const char *v = f->element[i + 1]->str;
        if (strcmp(k, "event_id") == 0) {
            ev->event_id = v;
        } else if (strcmp(k, "type") == 0) {
            ev->type = v;
        } else if (strcmp(k, "merchant_id") == 0) {
            ev->merchant_id = v;
        } else if (strcmp(k, "subject_id") == 0) {
            ev->subject_id = v;
        } else if (strcmp(k, "service") == 0) {
            ev->service = v;
        } else if (strcmp(k, "payload") == 0) {
            ev->payload = v;
        } else if (strcmp(k, "occurred_at") == 0) {
            ev->occurred_at = strtoll(v, NULL, 10);
        }
    }
    return ev->event_id && ev->type && ev->merchant_id && ev->subject_id && ev->payload;
}

/* Consecutive events of one merchant, run in one transaction with a part each (db_tx_part):
 * a batch pays one BEGIN and one COMMIT (one wait for the disk) instead of one per event, and an
 * event whose handler fails is rolled back alone and left unacknowledged. A consumer with a
 * `many` handler first applies what it can of them as a set, in one part (a statement for
 * them all instead of a part and a statement each). */
typedef struct consume_batch {
    const rpc_consumer_t *c;
    const consume_event_t *evs;
    bool *handled; /* out, per event */
    int n;
    rpc_ctx_t *ctx;
    int invalidations_before; /* a retried attempt drops the keys of the attempt it replaces */
} consume_batch_t;

typedef struct consume_call {
    const rpc_consumer_t *c;
    const consume_event_t *ev;
    rpc_ctx_t *ctx;
} consume_call_t;

static status_t consume_part(db_t *db, void *arg) {
    (void)db;
    consume_call_t *x = arg;
    return x->c->fn(x->ctx, x->ev);
}

static status_t consume_many_part(db_t *db, void *arg) {
    (void)db;
    consume_batch_t *b = arg;
    return b->c->many(b->ctx, b->evs, b->n, b->handled);
}

static status_t consume_batch_tx(db_t *db, void *arg) {
    consume_batch_t *b = arg;
    b->ctx->invalidation_count = b->invalidations_before;
    for (int i = 0; i < b->n; i++) {
        b->handled[i] = false;
    }
    if (b->c->many != NULL) {
        /* The set first, in one part; what it leaves (or everything, when it failed) one by one. */
        status_t st = db_tx_part(db, consume_many_part, b);
        if (st.code == STATUS_UNAVAILABLE) {
            return st;
        }
        if (!status_is_ok(&st)) {
            log_msg(LOG_DEBUG, "%d events not handled together by %s; one by one: %s", b->n,
                    b->c->group, st.message);
            b->ctx->invalidation_count = b->invalidations_before;
            for (int i = 0; i < b->n; i++) {
                b->handled[i] = false;
            }
        }
    }
    for (int i = 0; i < b->n; i++) {
        if (b->handled[i]) {
            continue;
        }
        consume_call_t x = {.c = b->c, .ev = &b->evs[i], .ctx = b->ctx};
        status_t st = db_tx_part(db, consume_part, &x);
        b->handled[i] = status_is_ok(&st);
        if (st.code == STATUS_UNAVAILABLE) {
            return st; /* the transaction is gone with its connection: db_tx runs it again */
        }
        if (!b->handled[i]) {
            log_msg(LOG_WARN, "event %s (%s) not handled by %s; retried later: %s",
                    b->evs[i].event_id, b->evs[i].type, b->c->group, st.message);
        }
    }
    return status_ok();
}

static status_t consume_run(rpc_ctx_t *ctx, void *arg) {
    consume_batch_t *b = arg;
    b->ctx = ctx;
    b->invalidations_before = ctx->invalidation_count;
    return db_tx(ctx->db, consume_batch_tx, b);
}

/* Runs evs[0..n) (one merchant's) in one transaction; handled[i] says which may be acknowledged.
 */
static void events_run(const consumer_thread_t *t, db_t *db, cache_t *cache,
                       const consume_event_t *evs, bool *handled, int n) {
    consume_batch_t b = {.c = t->c, .evs = evs, .handled = handled, .n = n};
    status_t st = srv_background_run(t->c->group, db, cache, evs[0].merchant_id, consume_run, &b);
    if (!status_is_ok(&st)) {
        log_msg(LOG_WARN, "%d events not handled by %s; retried later: %s", n, t->c->group,
                st.message);
        for (int i = 0; i < n; i++) {
            handled[i] = false; /* nothing of the transaction committed */
        }
    }
}

/* ---- the group ---- */

/* Runs a command on the consumer's connection; NULL (and the connection marked broken) on an
 * I/O error. The caller frees the reply. */
static redisReply *consume_command(cache_t *cache, int argc, const char **argv) {
    redisContext *conn = cache_conn(cache);
    if (conn == NULL) {
        return NULL;
    }
    redisReply *r = redisCommandArgv(conn, argc, argv, NULL);
    if (r == NULL) {
        cache_mark_broken(cache);
    }
    return r;
}

/* The group's name: the consumer's with the database's, since what a handler changes lives in
 * that database: every replica on it shares the work, and a service on another database (a
 * test's private one, next to others on one Redis) reads every event for itself. */
static bool group_name(consumer_thread_t *t, db_t *db) {
    PGresult *r = NULL;
    status_t st = db_exec_row(db, "SELECT current_database()", NULL, &r, STATUS_INTERNAL,
                              REASON_DATABASE_ERROR, "no current database");
    if (!status_is_ok(&st)) {
        return false;
    }
    snprintf(t->group, sizeof t->group, "%s:%s", t->c->group, db_get_str(r, 0, 0));
    PQclear(r);
    return true;
}

/* Creates the group, with the stream if it does not exist yet, starting CONSUME_LOOKBACK_S
 * before this process started: the events of a first deployment's rollout are handled, but not
 * a whole stream's history (up to EVENTS_STREAM_MAXLEN entries). An existing group goes on
 * where it stopped. */
static bool group_create(const consumer_thread_t *t, cache_t *cache) {
    char start[32];
    snprintf(start, sizeof start, "%lld-0",
             (long long)(t->started_ms - (int64_t)CONSUME_LOOKBACK_S * 1000));
    const char *argv[] = {"XGROUP", "CREATE", t->c->stream, t->group, start, "MKSTREAM"};
    redisReply *r = consume_command(cache, 6, argv);
    if (r == NULL) {
        return false;
    }
    bool ok = r->type != REDIS_REPLY_ERROR || strncmp(r->str, "BUSYGROUP", 9) == 0;
    if (!ok) {
        log_msg(LOG_ERROR, "XGROUP CREATE %s refused: %s", t->group, r->str);
    }
    freeReplyObject(r);
    return ok;
}

/* Acknowledges the entries handled of a batch, in one XACK. */
static void entries_ack(const consumer_thread_t *t, cache_t *cache, const char **ids, int n) {
    if (n == 0) {
        return;
    }
    const char *argv[3 + CONSUME_BATCH_MAX];
    argv[0] = "XACK";
    argv[1] = t->c->stream;
    argv[2] = t->group;
    for (int i = 0; i < n; i++) {
        argv[3 + i] = ids[i];
    }
    redisReply *r = consume_command(cache, 3 + n, argv);
    if (r != NULL) {
        freeReplyObject(r);
    }
}

/* Handles a list of entries and acknowledges those handled; *failed counts the others. Entries
 * that carry no usable event, or an event not for this consumer, are acknowledged as they are;
 * the others run in one transaction per run of consecutive events of one merchant. */
static void entries_run(const consumer_thread_t *t, db_t *db, cache_t *cache,
                        const redisReply *list, int *failed) {
    if (list == NULL || list->type != REDIS_REPLY_ARRAY) {
        return;
    }
    const char *ids[CONSUME_BATCH_MAX];
    int n_ids = 0;
    consume_event_t evs[CONSUME_BATCH_MAX];
    bool handled[CONSUME_BATCH_MAX];
    int n_evs = 0;
    for (size_t i = 0; i < list->elements && n_ids + n_evs < CONSUME_BATCH_MAX; i++) {
        const redisReply *e = list->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 ||
            e->element[0]->type != REDIS_REPLY_STRING) {
            continue;
        }
        consume_event_t ev;
        if (!entry_event(e, &ev) ||
            strncmp(ev.type, t->c->type_prefix, strlen(t->c->type_prefix)) != 0) {
            ids[n_ids++] = e->element[0]->str; /* nothing for a handler: not retried forever */
            continue;
        }
        evs[n_evs++] = ev;
    }
    for (int start = 0; start < n_evs;) {
        int end = start + 1;
        while (end < n_evs && strcmp(evs[end].merchant_id, evs[start].merchant_id) == 0) {
            end++;
        }
        events_run(t, db, cache, &evs[start], &handled[start], end - start);
        for (int k = start; k < end; k++) {
            if (handled[k]) {
                ids[n_ids++] = evs[k].entry_id;
            } else {
                (*failed)++;
            }
        }
        start = end;
    }
    entries_ack(t, cache, ids, n_ids);
}

/* XAUTOCLAIM: entries idle for CONSUME_RETRY_IDLE_MS, from any consumer of the group; the
 * count of entries claimed goes to *claimed. */
static bool claim_and_run(const consumer_thread_t *t, db_t *db, cache_t *cache, int *claimed) {
    char idle[24], count[24];
    snprintf(idle, sizeof idle, "%d", CONSUME_RETRY_IDLE_MS);
    snprintf(count, sizeof count, "%d", CONSUME_BATCH_MAX);
    const char *argv[] = {"XAUTOCLAIM", t->c->stream, t->c->group, t->name,
                          idle,         "0-0",        "COUNT",     count};
    redisReply *r = consume_command(cache, 8, argv);
    if (r == NULL) {
        return false;
    }
    *claimed = 0;
    int failed = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
        *claimed = (int)r->element[1]->elements;
        entries_run(t, db, cache, r->element[1], &failed);
    } else if (r->type == REDIS_REPLY_ERROR) {
        log_msg(LOG_WARN, "XAUTOCLAIM %s: %s", t->group, r->str);
    }
    freeReplyObject(r);
    return true;
}

/* Drops the group's consumer names left by processes that are gone (CONSUME_PRUNE_IDLE_MS). */
static void prune_consumers(const consumer_thread_t *t, cache_t *cache) {
    const char *argv[] = {"XINFO", "CONSUMERS", t->c->stream, t->group};
    redisReply *r = consume_command(cache, 4, argv);
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements && i < CONSUME_PRUNE_MAX;
         i++) {
        const redisReply *f = r->element[i];
        const char *name = NULL;
        long long pending = -1, idle_ms = -1;
        for (size_t k = 0; f->type == REDIS_REPLY_ARRAY && k + 1 < f->elements; k += 2) {
            const redisReply *key = f->element[k], *v = f->element[k + 1];
            if (key->type != REDIS_REPLY_STRING) {
                continue;
            }
            if (strcmp(key->str, "name") == 0 && v->type == REDIS_REPLY_STRING) {
                name = v->str;
            } else if (strcmp(key->str, "pending") == 0 && v->type == REDIS_REPLY_INTEGER) {
                pending = v->integer;
            } else if (strcmp(key->str, "idle") == 0 && v->type == REDIS_REPLY_INTEGER) {
                idle_ms = v->integer;
            }
        }
        if (name == NULL || strcmp(name, t->name) == 0 || pending != 0 ||
            idle_ms < CONSUME_PRUNE_IDLE_MS) {
            continue;
        }
        const char *del[] = {"XGROUP", "DELCONSUMER", t->c->stream, t->group, name};
        redisReply *d = consume_command(cache, 5, del);
        if (d != NULL) {
            log_msg(LOG_INFO, "consumer %s of %s dropped (idle %lld ms, nothing pending)", name,
                    t->group, idle_ms);
            freeReplyObject(d);
        }
    }
    freeReplyObject(r);
}

/* XREADGROUP of new entries, waiting up to CONSUME_BLOCK_MS for some. */
static bool read_and_run(const consumer_thread_t *t, db_t *db, cache_t *cache) {
    char block[24], count[24];
    snprintf(block, sizeof block, "%d", CONSUME_BLOCK_MS);
    snprintf(count, sizeof count, "%d", CONSUME_BATCH_MAX);
    const char *argv[] = {"XREADGROUP", "GROUP", t->group,  t->name,      "COUNT", count,
                          "BLOCK",      block,   "STREAMS", t->c->stream, ">"};
    redisReply *r = consume_command(cache, 11, argv);
    if (r == NULL) {
        return false;
    }
    int failed = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2) {
        entries_run(t, db, cache, r->element[0]->element[1], &failed);
    } else if (r->type == REDIS_REPLY_ERROR) {
        /* NOGROUP: the stream was deleted (FLUSHALL); create the group again */
        log_msg(LOG_WARN, "XREADGROUP %s: %s", t->group, r->str);
        freeReplyObject(r);
        return false;
    }
    freeReplyObject(r);
    return true;
}

static void *consume_main(void *arg) {
    consumer_thread_t *t = arg;
    db_t *db = srv_db_create();
    cache_t *cache = cache_create(g_srv.config.redis_url, g_srv.config.cache_ttl_s);
    bool group_ready = false;
    int64_t next_claim_ms = 0;
    int64_t next_prune_ms = clock_monotonic_ms() + CONSUME_PRUNE_INTERVAL_MS;
    for (;;) {
        bool idle = !health_is_migrated() || g_srv.config.redis_url[0] == '\0';
        if (!idle && !group_ready) {
            group_ready = (t->group[0] != '\0' || group_name(t, db)) && group_create(t, cache);
            idle = !group_ready;
        }
        if (idle) {
            if (srv_background_sleep(1000)) {
                break;
            }
            continue;
        }
        int64_t now_ms = clock_monotonic_ms();
        bool ok = true;
        if (now_ms >= next_claim_ms) {
            int claimed = 0;
            ok = claim_and_run(t, db, cache, &claimed);
            /* a full batch: more may wait, claim again at once */
            next_claim_ms = claimed == CONSUME_BATCH_MAX ? now_ms : now_ms + CONSUME_RETRY_IDLE_MS;
        }
        if (ok && now_ms >= next_prune_ms) {
            next_prune_ms = now_ms + CONSUME_PRUNE_INTERVAL_MS;
            prune_consumers(t, cache);
        }
        if (ok) {
            ok = read_and_run(t, db, cache);
        }
        if (!ok) {
            group_ready = false;
            if (srv_background_sleep(1000)) {
                break;
            }
        } else if (srv_background_sleep(0)) {
            break;
        }
    }
    cache_destroy(cache);
    db_destroy(db);
    rpc_client_thread_cleanup(); /* a handler may have called another service */
    return NULL;
}

void consume_start(const rpc_consumer_t *consumers) {
    char host[64] = "";
    if (gethostname(host, sizeof host - 1) != 0) {
        snprintf(host, sizeof host, "host");
    }
    for (int i = 0; consumers != NULL && consumers[i].group != NULL; i++) {
        if (g_consumer_count == CONSUMERS_MAX) {
            log_msg(LOG_ERROR, "more than %d consumers; %s does not run", CONSUMERS_MAX,
                    consumers[i].group);
            continue;
        }
        consumer_thread_t *t = &g_consumers[g_consumer_count++];
        t->c = &consumers[i];
        snprintf(t->name, sizeof t->name, "%s:%ld", host, (long)getpid());
        struct timespec now = clock_realtime_after_ms(0);
        t->started_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
        if (pthread_create(&t->thread, NULL, consume_main, t) != 0) {
            abort();
        }
    }
}

void consume_join(void) {
    for (int i = 0; i < g_consumer_count; i++) {
        pthread_join(g_consumers[i].thread, NULL);
    }
    g_consumer_count = 0;
}
