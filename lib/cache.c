/* cache.c -- hiredis connection with lazy reconnect, outage logging and pending deletes. */
#include "cache.h"

#include "ids.h"
#include "log.h"
#include "near_cache.h"
#include "rpc_metrics.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#define CACHE_TIMEOUT_MS 250
#define CACHE_RETRY_MS 1000
#define CACHE_PENDING_DELETES_MAX 1024
#define CACHE_KEY_MAX 512
#define CACHE_LEASE_MS 10000
#define CACHE_LEASE_TOKEN_LEN 16

/* Fills a key only if this reader's lease is still there: a writer's cache_del removes the
 * lease with the value, so a reader that fetched the row before the write cannot store it
 * after the delete. KEYS[1] value key, KEYS[2] lease key; ARGV value, token, ttl seconds. */
static const char cache_fill_script[] =
    "if redis.call('GET', KEYS[2]) == ARGV[2] then "
    "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3]); redis.call('DEL', KEYS[2]); return 1 "
    "end return 0";

struct cache {
    bool enabled;
    cache_url_t url;
    int64_t default_ttl_s;
    redisContext *ctx;
    int64_t retry_at_ms;
    char *pending[CACHE_PENDING_DELETES_MAX]; /* keys whose delete could not be sent */
    int pending_count;
    /* The lease taken by the last miss: cache_set of that key fills only under it. */
    char lease_key[CACHE_KEY_MAX];
    char lease_token[CACHE_LEASE_TOKEN_LEN + 1];
    uint64_t lease_epoch; /* near-cache epoch before the miss */
};

/* One process-wide state so that N workers losing Redis at once produce one log line. */
static atomic_int g_redis_down;

static int64_t cache_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool cache_url_parse(const char *url, cache_url_t *out) {
    static const char prefix[] = "redis://";
    /* RFC 3986 §3.1: the scheme is case-insensitive. */
    if (strncasecmp(url, prefix, sizeof prefix - 1) != 0) {
        return false;
    }
    const char *p = url + sizeof prefix - 1;
    memset(out, 0, sizeof *out);
    out->port = 6379;
    const char *at = strchr(p, '@');
    if (at != NULL) {
        /* "user:password@" is an ACL user (Redis 6+); ":password@" and "password@" are the
         * default user's password, as before ACLs. */
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        size_t user_len = colon ? (size_t)(colon - p) : 0;
        size_t pw_len = (size_t)(at - pw);
        if (user_len >= sizeof out->user || pw_len >= sizeof out->password ||
            (user_len > 0 && pw_len == 0)) {
            return false;
        }
        memcpy(out->user, p, user_len);
        out->user[user_len] = '\0';
        memcpy(out->password, pw, pw_len);
        out->password[pw_len] = '\0';
        p = at + 1;
    }
    size_t host_len = strcspn(p, ":/");
    if (host_len == 0 || host_len >= sizeof out->host) {
        return false;
    }
    memcpy(out->host, p, host_len);
    out->host[host_len] = '\0';
    p += host_len;
    if (*p == ':') {
        char *end;
        long v = strtol(p + 1, &end, 10);
        if (end == p + 1 || v <= 0 || v > 65535) {
            return false;
        }
        out->port = (int)v;
        p = end;
    }
    if (*p == '/') {
        if (p[1] != '\0') {
            char *end;
            long v = strtol(p + 1, &end, 10);
            if (end == p + 1 || *end != '\0' || v < 0 || v > 15) {
                return false;
            }
            out->db = (int)v;
        }
    } else if (*p != '\0') {
        return false;
    }
    return true;
}

bool cache_auth(redisContext *conn, const cache_url_t *u) {
    if (u->password[0] == '\0') {
        return true;
    }
    /* AUTH <user> <password> for an ACL user: the one-argument form logs in as `default`. */
    const char *argv[] = {"AUTH", u->user, u->password};
    size_t lens[] = {4, strlen(u->user), strlen(u->password)};
    int argc = u->user[0] ? 3 : 2;
    if (argc == 2) {
        argv[1] = u->password;
        lens[1] = lens[2];
    }
    redisReply *r = redisCommandArgv(conn, argc, argv, lens);
    bool ok = r != NULL && r->type != REDIS_REPLY_ERROR;
    freeReplyObject(r);
    return ok;
}

cache_t *cache_create(const char *url, int64_t default_ttl_s) {
    cache_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        abort();
    }
    c->default_ttl_s = default_ttl_s;
    if (url != NULL && url[0] != '\0') {
        c->enabled = cache_url_parse(url, &c->url);
        if (!c->enabled) {
            log_msg(LOG_ERROR, "LOYALTY_REDIS_URL is malformed; caching disabled");
        }
    }
    return c;
}

static void cache_disconnect(cache_t *c) {
    if (c->ctx != NULL) {
        redisFree(c->ctx);
        c->ctx = NULL;
    }
}

void cache_destroy(cache_t *c) {
    if (c == NULL) {
        return;
    }
    cache_disconnect(c);
    for (int i = 0; i < c->pending_count; i++) {
        free(c->pending[i]);
    }
    free(c);
}

void cache_mark_broken(cache_t *c) {
    cache_disconnect(c);
    c->retry_at_ms = cache_now_ms() + CACHE_RETRY_MS;
    if (atomic_exchange(&g_redis_down, 1) == 0) {
        log_msg(LOG_WARN, "redis unreachable; serving from postgresql without cache");
    }
}

/* Sends a command and returns its reply, or NULL after marking the connection broken. */
static redisReply *cache_command(cache_t *c, int argc, const char **argv, const size_t *lens) {
    redisReply *r = redisCommandArgv(c->ctx, argc, argv, lens);
    rpc_metrics_redis_call(r != NULL);
    if (r == NULL) {
        cache_mark_broken(c);
    }
    return r;
}

static bool cache_authenticate(cache_t *c) {
    if (!cache_auth(c->ctx, &c->url)) {
        return false; /* the caller marks the connection broken */
    }
    if (c->url.db != 0) {
        char db[8];
        snprintf(db, sizeof db, "%d", c->url.db);
        const char *argv[] = {"SELECT", db};
        size_t lens[] = {6, strlen(db)};
        redisReply *r = cache_command(c, 2, argv, lens);
        bool ok = r && r->type != REDIS_REPLY_ERROR;
        freeReplyObject(r);
        return ok;
    }
    return true;
}

static bool cache_send_delete(cache_t *c, const char *key);

static void cache_replay_deletes(cache_t *c) {
    while (c->pending_count > 0 && c->ctx != NULL) {
        char *key = c->pending[c->pending_count - 1];
        if (!cache_send_delete(c, key)) {
            return;
        }
        free(key);
        c->pending_count--;
    }
}

redisContext *cache_conn(cache_t *c) {
    if (!c->enabled) {
        return NULL;
    }
    if (c->ctx != NULL) {
        return c->ctx;
    }
    if (cache_now_ms() < c->retry_at_ms) {
        return NULL;
    }
    struct timeval tv = {0, CACHE_TIMEOUT_MS * 1000};
    c->ctx = redisConnectWithTimeout(c->url.host, c->url.port, tv);
    if (c->ctx == NULL || c->ctx->err) {
        rpc_metrics_redis_call(false); /* found Redis down */
        cache_mark_broken(c);
        return NULL;
    }
    redisSetTimeout(c->ctx, tv);
    if (!cache_authenticate(c)) {
        cache_mark_broken(c);
        return NULL;
    }
    if (atomic_exchange(&g_redis_down, 0) == 1) {
        log_msg(LOG_INFO, "redis reachable again");
    }
    cache_replay_deletes(c);
    return c->ctx;
}

bool cache_is_up(const cache_t *c) {
    return c->enabled && c->ctx != NULL;
}

/* Takes a fill lease for `key` after a miss; at most one reader holds it at a time. */
static void cache_take_lease(cache_t *c, const char *key, uint64_t epoch) {
    c->lease_key[0] = '\0';
    char lease[CACHE_KEY_MAX + 8];
    if (snprintf(lease, sizeof lease, "%s:lease", key) >= (int)sizeof lease) {
        return;
    }
    char token[CACHE_LEASE_TOKEN_LEN + 1];
    id_random_token("0123456789abcdefghijklmnopqrstuvwxyz", CACHE_LEASE_TOKEN_LEN, token);
    char px[16];
    snprintf(px, sizeof px, "%d", CACHE_LEASE_MS);
    const char *argv[] = {"SET", lease, token, "NX", "PX", px};
    size_t lens[] = {3, strlen(lease), strlen(token), 2, 2, strlen(px)};
    redisReply *r = cache_command(c, 6, argv, lens);
    bool taken = r != NULL && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    if (taken) {
        snprintf(c->lease_key, sizeof c->lease_key, "%s", key);
        memcpy(c->lease_token, token, sizeof token);
        c->lease_epoch = epoch;
    }
}

bool cache_get(cache_t *c, arena_t *a, const char *key, unsigned char **value, size_t *len) {
    if (!c->enabled) {
        return false;
    }
    if (near_cache_get(key, a, value, len)) {
        return true;
    }
    uint64_t epoch = near_cache_epoch();
    if (cache_conn(c) == NULL) {
        return false;
    }
    /* GET and PTTL in one round trip: the near-cache copy must not outlive the entry. */
    const char *argv[] = {"GET", key};
    size_t lens[] = {3, strlen(key)};
    const char *ttl_argv[] = {"PTTL", key};
    size_t ttl_lens[] = {4, strlen(key)};
    void *replies[2] = {NULL, NULL};
    if (redisAppendCommandArgv(c->ctx, 2, argv, lens) != REDIS_OK ||
        redisAppendCommandArgv(c->ctx, 2, ttl_argv, ttl_lens) != REDIS_OK ||
        redisGetReply(c->ctx, &replies[0]) != REDIS_OK ||
        redisGetReply(c->ctx, &replies[1]) != REDIS_OK) {
        freeReplyObject(replies[0]);
        rpc_metrics_redis_call(false);
        cache_mark_broken(c);
        return false;
    }
    rpc_metrics_redis_call(true);
    redisReply *r = replies[0], *ttl = replies[1];
    bool hit = r->type == REDIS_REPLY_STRING;
    rpc_metrics_cache_request("redis", hit);
    if (hit) {
        *value = arena_alloc(a, r->len + 1);
        memcpy(*value, r->str, r->len);
        *len = r->len;
        if (ttl->type == REDIS_REPLY_INTEGER && ttl->integer > 0) {
            near_cache_put(key, r->str, r->len, epoch, ttl->integer);
        }
    }
    freeReplyObject(r);
    freeReplyObject(ttl);
    if (!hit && c->ctx != NULL) {
        cache_take_lease(c, key, epoch);
    }
    return hit;
}

void cache_set(cache_t *c, const char *key, const void *value, size_t len, int64_t ttl_s) {
    if (cache_conn(c) == NULL) {
        return;
    }
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%lld", (long long)(ttl_s > 0 ? ttl_s : c->default_ttl_s));
    if (c->lease_key[0] == '\0' || strcmp(c->lease_key, key) != 0) {
        const char *argv[] = {"SET", key, value, "EX", ttl};
        size_t lens[] = {3, strlen(key), len, 2, strlen(ttl)};
        freeReplyObject(cache_command(c, 5, argv, lens));
        return;
    }
    c->lease_key[0] = '\0';
    char lease[CACHE_KEY_MAX + 8];
    snprintf(lease, sizeof lease, "%s:lease", key);
    const char *argv[] = {"EVAL", cache_fill_script, "2", key, lease, value, c->lease_token, ttl};
    size_t lens[] = {4,   strlen(cache_fill_script), 1,          strlen(key), strlen(lease),
                     len, strlen(c->lease_token),    strlen(ttl)};
    redisReply *r = cache_command(c, 8, argv, lens);
    if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
        near_cache_put(key, value, len, c->lease_epoch,
                       (ttl_s > 0 ? ttl_s : c->default_ttl_s) * 1000);
    }
    freeReplyObject(r);
}

static void cache_remember_delete(cache_t *c, const char *key) {
    if (c->pending_count == CACHE_PENDING_DELETES_MAX) {
        /* Dropping the oldest is bounded staleness: it still expires by its TTL. */
        log_msg(LOG_WARN, "too many cache deletes pending during redis outage; oldest dropped");
        free(c->pending[0]);
        memmove(c->pending, c->pending + 1, sizeof(char *) * (CACHE_PENDING_DELETES_MAX - 1));
        c->pending_count--;
    }
    char *copy = strdup(key);
    if (copy == NULL) {
        abort();
    }
    c->pending[c->pending_count++] = copy;
}

/* Deletes the value and its fill lease and tells the other replicas, in one round trip; false
 * when Redis could not be reached. */
static bool cache_send_delete(cache_t *c, const char *key) {
    char lease[CACHE_KEY_MAX + 8];
    snprintf(lease, sizeof lease, "%s:lease", key);
    const char *del_argv[] = {"DEL", key, lease};
    size_t del_lens[] = {3, strlen(key), strlen(lease)};
    redisAppendCommandArgv(c->ctx, 3, del_argv, del_lens);
    const char *channel = near_cache_channel();
    int replies = 1;
    if (channel != NULL) {
        const char *pub_argv[] = {"PUBLISH", channel, key};
        size_t pub_lens[] = {7, strlen(channel), strlen(key)};
        redisAppendCommandArgv(c->ctx, 3, pub_argv, pub_lens);
        replies = 2;
    }
    for (int i = 0; i < replies; i++) {
        void *reply = NULL;
        if (redisGetReply(c->ctx, &reply) != REDIS_OK) {
            rpc_metrics_redis_call(false);
            cache_mark_broken(c);
            return false;
        }
        freeReplyObject(reply);
    }
    rpc_metrics_redis_call(true);
    return true;
}

void cache_del(cache_t *c, const char *key) {
    if (!c->enabled) {
        return;
    }
    near_cache_remove(key);
    if (cache_conn(c) == NULL || !cache_send_delete(c, key)) {
        cache_remember_delete(c, key);
    }
}
