/* near_cache.h -- a process-wide, bounded, in-memory copy of hot Redis cache entries, so that
 * a cached read costs no network round trip. It stays coherent across replicas through Redis
 * pub/sub: every cache_del publishes the key on the service's invalidation channel, and a
 * subscriber thread drops the key in every replica. While the subscriber is not connected (Redis
 * down, reconnecting) the near cache is empty and bypassed, because invalidations could be
 * missed. A global epoch, bumped by every invalidation, keeps a read that raced with an
 * invalidation from storing the old value. Thread-safe. */
#ifndef LOYALTY_NEAR_CACHE_H
#define LOYALTY_NEAR_CACHE_H

#include "arena.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Starts the subscriber for `channel` on the Redis at `url`, holding at most `entries_max`
 *  entries and `bytes_max` bytes (values, keys and bookkeeping; each of the 16 shards holds a
 *  16th of both, least recently used out first) for at most ttl_ms each. Returns false (and
 *  the near cache stays off) when disabled by entries_max or bytes_max == 0, or a malformed
 *  url. Call once, before workers start. */
bool near_cache_start(const char *url, const char *channel, int64_t entries_max, int64_t bytes_max,
                      int64_t ttl_ms);
/** Before near_cache_start: also drop the keys published on another service's invalidation
 *  channel, for values read from that service and kept here under its own cache keys (the
 *  gateway's copy of member tiers). At most 4; false beyond that. near_cache_stop forgets them. */
bool near_cache_follow(const char *channel);
/** Stops the subscriber and frees every entry. */
void near_cache_stop(void);

/** The invalidation channel, or NULL when the near cache is not running. */
const char *near_cache_channel(void);

/** On a live hit, copies the value into `a` and returns true. */
bool near_cache_get(const char *key, arena_t *a, unsigned char **value, size_t *len);

/** The current epoch; read it before fetching a value from Redis or the database. */
uint64_t near_cache_epoch(void);

/** Keeps a copy of a value fetched when the epoch was `epoch_seen`, for at most ttl_ms (the
 *  entry's remaining life in Redis) and the near cache's own bound; ignored when an
 *  invalidation happened since, or while the subscriber is not connected. */
void near_cache_put(const char *key, const void *value, size_t len, uint64_t epoch_seen,
                    int64_t ttl_ms);

/** Drops a key here (the caller publishes it for the other replicas) and bumps the epoch. A key
 *  ending in '*' drops every key that starts with what precedes it. */
void near_cache_remove(const char *key);

/** Counters for tests and benchmarks. */
typedef struct near_cache_stats {
    uint64_t hits, misses, invalidations, entries;
    uint64_t bytes; /* what the entries cost, within the bytes_max of near_cache_start */
    bool subscribed;
} near_cache_stats_t;
void near_cache_get_stats(near_cache_stats_t *out);

#endif
