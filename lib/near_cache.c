/* near_cache.c -- sharded LRU hash map plus a pub/sub subscriber thread. */
#include "near_cache.h"

#include "cache.h"
#include "log.h"
#include "rpc_metrics.h"

#include <hiredis/hiredis.h>

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define NC_SHARDS 16
#define NC_BUCKETS 1024 /* per shard, power of two */
#define NC_VALUE_MAX 65536
#define NC_KEY_MAX 512
#define NC_CHANNEL_MAX 128
#define NC_FOLLOW_MAX 4

typedef struct nc_entry {
    struct nc_entry *next;                /* bucket chain */
    struct nc_entry *lru_prev, *lru_next; /* most recent at head */
    uint64_t hash;
    int64_t expires_ms;
    size_t len;
    char *key;
    unsigned char *value;
} nc_entry_t;

typedef struct nc_shard {
    pthread_mutex_t mu;
    nc_entry_t *buckets[NC_BUCKETS];
    nc_entry_t *lru_head, *lru_tail;
    int64_t count;
    int64_t bytes; /* nc_entry_bytes of every entry */
} nc_shard_t;

static struct {
    bool running;
    atomic_bool subscribed;
    atomic_uint_fast64_t epoch;
    atomic_uint_fast64_t hits, misses, invalidations;
    int64_t per_shard_max;
    int64_t per_shard_bytes_max;
    int64_t ttl_ms;
    char channel[NC_CHANNEL_MAX];
    char follow[NC_FOLLOW_MAX][NC_CHANNEL_MAX]; /* near_cache_follow */
    int follow_count;
    cache_url_t url;
    nc_shard_t shards[NC_SHARDS];
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t conn_mu; /* guards `conn` for near_cache_stop's shutdown(2) */
    redisContext *conn;
} g_nc = {.conn_mu = PTHREAD_MUTEX_INITIALIZER};

static int64_t nc_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t nc_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

/* What an entry costs the process: the value, the key and the entry itself. The budget is in
 * these bytes, not in entries, since entries range from a few bytes to NC_VALUE_MAX. */
static int64_t nc_entry_bytes(size_t key_len, size_t value_len) {
    return (int64_t)(sizeof(nc_entry_t) + key_len + 1 + value_len);
}

static nc_shard_t *nc_shard(uint64_t h) {
    return &g_nc.shards[(h >> 32) % NC_SHARDS];
}

static void nc_lru_unlink(nc_shard_t *s, nc_entry_t *e) {
    if (e->lru_prev) {
        e->lru_prev->lru_next = e->lru_next;
    } else {
        s->lru_head = e->lru_next;
    }
    if (e->lru_next) {
        e->lru_next->lru_prev = e->lru_prev;
    } else {
        s->lru_tail = e->lru_prev;
    }
    e->lru_prev = e->lru_next = NULL;
}

static void nc_lru_push(nc_shard_t *s, nc_entry_t *e) {
    e->lru_prev = NULL;
    e->lru_next = s->lru_head;
    if (s->lru_head) {
        s->lru_head->lru_prev = e;
    }
    s->lru_head = e;
    if (s->lru_tail == NULL) {
        s->lru_tail = e;
    }
}

/* Unlinks and frees the entry for key, if any. Caller holds the shard lock. */
static void nc_delete_locked(nc_shard_t *s, const char *key, uint64_t h) {
    nc_entry_t **pp = &s->buckets[h % NC_BUCKETS];
    while (*pp) {
        nc_entry_t *e = *pp;
        if (e->hash == h && strcmp(e->key, key) == 0) {
            *pp = e->next;
            nc_lru_unlink(s, e);
            s->bytes -= nc_entry_bytes(strlen(e->key), e->len);
            free(e->key);
            free(e->value);
            free(e);
            s->count--;
            return;
        }
        pp = &e->next;
    }
}


const char *near_cache_channel(void) {
    return g_nc.running ? g_nc.channel : NULL;
}

uint64_t near_cache_epoch(void) {
    return atomic_load(&g_nc.epoch);
}

bool near_cache_get(const char *key, arena_t *a, unsigned char **value, size_t *len) {
    if (!g_nc.running || !atomic_load(&g_nc.subscribed)) {
        return false;
    }
    uint64_t h = nc_hash(key);
    nc_shard_t *s = nc_shard(h);
    bool hit = false;
    pthread_mutex_lock(&s->mu);
    for (nc_entry_t *e = s->buckets[h % NC_BUCKETS]; e; e = e->next) {
        if (e->hash == h && strcmp(e->key, key) == 0) {
            if (e->expires_ms > nc_now_ms()) {
                *value = arena_alloc(a, e->len + 1);
                memcpy(*value, e->value, e->len);
                *len = e->len;
                nc_lru_unlink(s, e);
                nc_lru_push(s, e);
                hit = true;
            } else {
                nc_delete_locked(s, key, h);
            }
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    atomic_fetch_add(hit ? &g_nc.hits : &g_nc.misses, 1);
    rpc_metrics_cache_request("near", hit);
    return hit;
}

void near_cache_put(const char *key, const void *value, size_t len, uint64_t epoch_seen,
                    int64_t ttl_ms) {
    size_t key_len = strlen(key);
    int64_t cost = nc_entry_bytes(key_len, len);
    if (!g_nc.running || !atomic_load(&g_nc.subscribed) || len > NC_VALUE_MAX ||
        key_len >= NC_KEY_MAX || cost > g_nc.per_shard_bytes_max) {
        return;
    }
    nc_entry_t *e = calloc(1, sizeof *e);
    char *k = strdup(key);
    unsigned char *v = malloc(len ? len : 1);
    if (e == NULL || k == NULL || v == NULL) {
        free(e);
        free(k);
        free(v);
        return; /* a cache may always decline */
    }
    memcpy(v, value, len);
    e->key = k;
    e->value = v;
    e->len = len;
    e->hash = nc_hash(key);
    e->expires_ms = nc_now_ms() + (ttl_ms > 0 && ttl_ms < g_nc.ttl_ms ? ttl_ms : g_nc.ttl_ms);
    nc_shard_t *s = nc_shard(e->hash);
    pthread_mutex_lock(&s->mu);
    /* Checked under the lock: an invalidation of this key takes the same lock after bumping
     * the epoch, so either it sees our entry and removes it, or we see its epoch. */
    if (atomic_load(&g_nc.epoch) != epoch_seen) {
        pthread_mutex_unlock(&s->mu);
        free(e->key);
        free(e->value);
        free(e);
        return;
    }
    nc_delete_locked(s, key, e->hash);
    /* Least recently used out until both bounds hold with the new entry. */
    while (s->lru_tail &&
           (s->count >= g_nc.per_shard_max || s->bytes + cost > g_nc.per_shard_bytes_max)) {
        nc_delete_locked(s, s->lru_tail->key, s->lru_tail->hash);
    }
    nc_entry_t **bucket = &s->buckets[e->hash % NC_BUCKETS];
    e->next = *bucket;
    *bucket = e;
    nc_lru_push(s, e);
    s->count++;
    s->bytes += cost;
    assert(s->bytes <= g_nc.per_shard_bytes_max);
    pthread_mutex_unlock(&s->mu);
}

/* Drops every entry whose key starts with `prefix`: a walk over every shard, for the rare
 * invalidation that stands for a family of keys (near_cache_remove of "<prefix>*"). */
static void nc_remove_prefix(const char *prefix, size_t len) {
    for (int i = 0; i < NC_SHARDS; i++) {
        nc_shard_t *s = &g_nc.shards[i];
        pthread_mutex_lock(&s->mu);
        nc_entry_t *e = s->lru_head;
        while (e) {
            nc_entry_t *next = e->lru_next;
            if (strncmp(e->key, prefix, len) == 0) {
                nc_delete_locked(s, e->key, e->hash);
            }
            e = next;
        }
        pthread_mutex_unlock(&s->mu);
    }
}

/* Drops everything (a subscription lost or renewed, a stop). */
static void nc_flush(void) {
    nc_remove_prefix("", 0);
}

void near_cache_remove(const char *key) {
    if (!g_nc.running) {
        return;
    }
    atomic_fetch_add(&g_nc.epoch, 1);
    atomic_fetch_add(&g_nc.invalidations, 1);
    size_t key_len = strlen(key);
    if (key_len > 0 && key[key_len - 1] == '*') {
        nc_remove_prefix(key, key_len - 1);
        return;
    }
    uint64_t h = nc_hash(key);
    nc_shard_t *s = nc_shard(h);
    pthread_mutex_lock(&s->mu);
    nc_delete_locked(s, key, h);
    pthread_mutex_unlock(&s->mu);
}

void near_cache_get_stats(near_cache_stats_t *out) {
    out->hits = atomic_load(&g_nc.hits);
    out->misses = atomic_load(&g_nc.misses);
    out->invalidations = atomic_load(&g_nc.invalidations);
    out->subscribed = atomic_load(&g_nc.subscribed);
    out->entries = 0;
    out->bytes = 0;
    for (int i = 0; i < NC_SHARDS; i++) {
        pthread_mutex_lock(&g_nc.shards[i].mu);
        out->entries += (uint64_t)g_nc.shards[i].count;
        out->bytes += (uint64_t)g_nc.shards[i].bytes;
        pthread_mutex_unlock(&g_nc.shards[i].mu);
    }
}

/* Marks the subscription lost: nothing is served from memory until it is back, and what is
 * held is dropped, since invalidations may be missed meanwhile. */
static void nc_unsubscribed(void) {
    atomic_store(&g_nc.subscribed, false);
    atomic_fetch_add(&g_nc.epoch, 1);
    nc_flush();
}

static redisContext *nc_connect(void) {
    struct timeval tv = {0, 250 * 1000};
    redisContext *c = redisConnectWithTimeout(g_nc.url.host, g_nc.url.port, tv);
    if (c == NULL || c->err) {
        if (c) {
            redisFree(c);
        }
        return NULL;
    }
    /* The same login as the workers' connections (an ACL user, a password with spaces). */
    if (!cache_auth(c, &g_nc.url)) {
        redisFree(c);
        return NULL;
    }
    /* Blocking reads without a timeout from here: near_cache_stop unblocks us. */
    struct timeval none = {0, 0};
    redisSetTimeout(c, none);
    /* One confirmation per channel: ours, then the followed services' (near_cache_follow). */
    const char *argv[1 + 1 + NC_FOLLOW_MAX] = {"SUBSCRIBE", g_nc.channel};
    int argc = 2;
    for (int i = 0; i < g_nc.follow_count; i++) {
        argv[argc++] = g_nc.follow[i];
    }
    redisAppendCommandArgv(c, argc, argv, NULL);
    bool ok = true;
    for (int i = 1; ok && i < argc; i++) {
        void *reply = NULL;
        ok = redisGetReply(c, &reply) == REDIS_OK && reply != NULL &&
             ((redisReply *)reply)->type == REDIS_REPLY_ARRAY;
        freeReplyObject(reply);
    }
    if (!ok) {
        redisFree(c);
        return NULL;
    }
    return c;
}

static void nc_sleep_ms(int64_t ms) {
    for (int64_t waited = 0; waited < ms && !atomic_load(&g_nc.stop); waited += 50) {
        struct timespec ts = {0, 50 * 1000000};
        nanosleep(&ts, NULL);
    }
}

static void *nc_subscriber(void *arg) {
    (void)arg;
    while (!atomic_load(&g_nc.stop)) {
        redisContext *c = nc_connect();
        if (c == NULL) {
            nc_sleep_ms(1000);
            continue;
        }
        pthread_mutex_lock(&g_nc.conn_mu);
        g_nc.conn = c;
        pthread_mutex_unlock(&g_nc.conn_mu);
        /* Anything cached before this point may have missed an invalidation. */
        nc_flush();
        atomic_fetch_add(&g_nc.epoch, 1);
        atomic_store(&g_nc.subscribed, true);
        while (!atomic_load(&g_nc.stop)) {
            void *reply = NULL;
            if (redisGetReply(c, &reply) != REDIS_OK || reply == NULL) {
                break;
            }
            redisReply *r = reply;
            if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
                r->element[0]->type == REDIS_REPLY_STRING &&
                strcmp(r->element[0]->str, "message") == 0 &&
                r->element[2]->type == REDIS_REPLY_STRING) {
                near_cache_remove(r->element[2]->str);
            }
            freeReplyObject(r);
        }
        nc_unsubscribed();
        pthread_mutex_lock(&g_nc.conn_mu);
        g_nc.conn = NULL;
        pthread_mutex_unlock(&g_nc.conn_mu);
        redisFree(c);
        if (!atomic_load(&g_nc.stop)) {
            nc_sleep_ms(1000);
        }
    }
    return NULL;
}

bool near_cache_follow(const char *channel) {
    assert(!g_nc.running);
    if (g_nc.follow_count == NC_FOLLOW_MAX || strlen(channel) >= NC_CHANNEL_MAX) {
        return false;
    }
    snprintf(g_nc.follow[g_nc.follow_count++], NC_CHANNEL_MAX, "%s", channel);
    return true;
}

bool near_cache_start(const char *url, const char *channel, int64_t entries_max, int64_t bytes_max,
                      int64_t ttl_ms) {
    assert(!g_nc.running);
    if (entries_max <= 0 || bytes_max <= 0 || url == NULL || url[0] == '\0' ||
        !cache_url_parse(url, &g_nc.url)) {
        return false;
    }
    snprintf(g_nc.channel, sizeof g_nc.channel, "%s", channel);
    g_nc.per_shard_max = entries_max / NC_SHARDS > 0 ? entries_max / NC_SHARDS : 1;
    g_nc.per_shard_bytes_max = bytes_max / NC_SHARDS;
    g_nc.ttl_ms = ttl_ms;
    for (int i = 0; i < NC_SHARDS; i++) {
        pthread_mutex_init(&g_nc.shards[i].mu, NULL);
    }
    atomic_store(&g_nc.stop, false);
    g_nc.running = true;
    if (pthread_create(&g_nc.thread, NULL, nc_subscriber, NULL) != 0) {
        g_nc.running = false;
        return false;
    }
    return true;
}

void near_cache_stop(void) {
    if (!g_nc.running) {
        return;
    }
    atomic_store(&g_nc.stop, true);
    pthread_mutex_lock(&g_nc.conn_mu);
    if (g_nc.conn != NULL) {
        shutdown(g_nc.conn->fd, SHUT_RDWR); /* wakes the blocked read */
    }
    pthread_mutex_unlock(&g_nc.conn_mu);
    pthread_join(g_nc.thread, NULL);
    atomic_store(&g_nc.subscribed, false);
    nc_flush();
    for (int i = 0; i < NC_SHARDS; i++) {
        pthread_mutex_destroy(&g_nc.shards[i].mu);
    }
    g_nc.running = false;
    g_nc.follow_count = 0;
}
