/* cache.h -- Redis access for one thread: get/set/delete with TTL for read-through caches, and
 * raw commands for streams. Redis is never the source of truth (docs/architecture.md#caches-and-their-bounds): when it is
 * unreachable every call behaves as a miss or a no-op, the outage is logged once per process,
 * and reconnection is attempted at most once a second. Deletes that could not be sent are
 * remembered and replayed on reconnection, so an entry changed during an outage cannot
 * outlive it. Not thread-safe: every worker owns its own cache_t. */
#ifndef LOYALTY_CACHE_H
#define LOYALTY_CACHE_H

#include "arena.h"

#include <hiredis/hiredis.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cache cache_t;

/** A handle for `url` ("redis://[:password@]host[:port][/db]"); an empty url gives a handle
 *  that always misses. Connects on first use. Destroy with cache_destroy. */
cache_t *cache_create(const char *url, int64_t default_ttl_s);
void cache_destroy(cache_t *c);

/** Where and how to reach Redis: redis://[[user]:password@]host[:port][/db]. */
typedef struct cache_url {
    char host[256];
    int port;          /* 6379 when absent */
    char user[128];    /* an ACL user; empty for the default user */
    char password[256];
    int db;            /* 0..15 */
} cache_url_t;

/** Parses a redis:// URL (scheme in any letter case); false when malformed. `user` and
 *  `password` may come back empty; a user without a password is malformed. */
bool cache_url_parse(const char *url, cache_url_t *out);

/** Authenticates a fresh connection as the URL says: AUTH <user> <password> for an ACL user,
 *  AUTH <password> for the default user, nothing without a password. False when refused or
 *  the connection failed. */
bool cache_auth(redisContext *conn, const cache_url_t *u);

/** On a hit, copies the value into arena memory and returns true. Looks in the process's near
 *  cache first (near_cache.h), then in Redis. A miss takes a short fill lease on the key for this
 *  handle, so that the cache_set that follows stores the value only if no cache_del of the key
 *  happened in between (a reader that fetched the old row can never store it after a writer's
 *  delete). */
bool cache_get(cache_t *c, arena_t *a, const char *key, unsigned char **value, size_t *len);
/** Stores a value for ttl_s seconds (0 = the default TTL). After a cache_get miss of the same
 *  key it stores only under that miss's lease; otherwise it stores unconditionally (use that only
 *  for values read inside an already committed change). Failures are ignored (a miss later). */
void cache_set(cache_t *c, const char *key, const void *value, size_t len, int64_t ttl_s);
/** Deletes the key (and its lease) in Redis, drops it from this process's near cache and
 *  publishes it so every other replica drops it too. Deletes that cannot be sent during an
 *  outage are replayed on reconnection. */
void cache_del(cache_t *c, const char *key);

/** The live connection for other commands (streams), or NULL while Redis is unreachable. After
 *  a command fails with an I/O error the caller reports it with cache_mark_broken. */
redisContext *cache_conn(cache_t *c);
void cache_mark_broken(cache_t *c);

/** True when Redis answered the last attempt. */
bool cache_is_up(const cache_t *c);

#endif
