/* test_runtime_cache.c -- the runtime's cache against a real Redis: fill leases refuse a stale
 * value after a writer's delete, the near cache drops keys invalidated by another process, and
 * two replicas of a real service stay coherent through pub/sub invalidation. */
#include "cache.h"
#include "harness.h"
#include "loyalty/v1/member.pb-c.h"
#include "member_client.h"
#include "near_cache.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static redis_proc_t redis;
static arena_t arena;

static void setup(void) {
    harness_init();
    arena_init(&arena);
    harness_redis_start(&redis);
}

static void teardown(void) {
    near_cache_stop();
    harness_redis_stop(&redis);
    arena_free(&arena);
    harness_fini();
}

TestSuite(runtime_cache, .init = setup, .fini = teardown, .timeout = 60);

static bool has(cache_t *c, const char *key, const char *want) {
    unsigned char *v = NULL;
    size_t n = 0;
    if (!cache_get(c, &arena, key, &v, &n)) {
        return false;
    }
    return n == strlen(want) && memcmp(v, want, n) == 0;
}

Test(runtime_cache, fill_lease_refuses_value_read_before_a_delete) {
    /* Goal: reader misses, writer deletes (after changing the row), reader's fill of the old
     * value is refused; a fill with no delete in between is stored. */
    cache_t *reader = cache_create(redis.url, 60);
    cache_t *writer = cache_create(redis.url, 60);
    unsigned char *v;
    size_t n;
    cr_assert_not(cache_get(reader, &arena, "{m:t}:k1", &v, &n));
    cache_del(writer, "{m:t}:k1");
    cache_set(reader, "{m:t}:k1", "old", 3, 0);
    cr_assert_not(has(writer, "{m:t}:k1", "old"), "a stale fill must not land");

    cr_assert_not(cache_get(reader, &arena, "{m:t}:k2", &v, &n));
    cache_set(reader, "{m:t}:k2", "fresh", 5, 0);
    cr_assert(has(writer, "{m:t}:k2", "fresh"));
    cache_destroy(reader);
    cache_destroy(writer);
}

Test(runtime_cache, near_cache_drops_keys_deleted_elsewhere) {
    /* Goal: a value held in this process's memory is dropped when another process deletes the
     * key, and no Redis round trip is needed while it is held. */
    cr_assert(near_cache_start(redis.url, "loyalty:invalidate:test", 128, 1 << 20, 60000));
    for (int i = 0; i < 100 && !({
                        near_cache_stats_t s;
                        near_cache_get_stats(&s);
                        s.subscribed;
                    });
         i++) {
        usleep(20 * 1000);
    }
    cache_t *c = cache_create(redis.url, 60);
    unsigned char *v;
    size_t n;
    cr_assert_not(cache_get(c, &arena, "{m:t}:near", &v, &n));
    cache_set(c, "{m:t}:near", "v1", 2, 0);
    cr_assert(has(c, "{m:t}:near", "v1"));
    near_cache_stats_t before, after;
    near_cache_get_stats(&before);
    cr_assert(has(c, "{m:t}:near", "v1"));
    near_cache_get_stats(&after);
    cr_assert_eq(after.hits, before.hits + 1, "served from memory");

    /* Another process: a raw DEL + PUBLISH, as cache_del in another replica sends. */
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "redis-cli -p %d DEL '{m:t}:near' >/dev/null && "
             "redis-cli -p %d PUBLISH loyalty:invalidate:test '{m:t}:near' >/dev/null",
             redis.port, redis.port);
    cr_assert_eq(system(cmd), 0);
    bool gone = false;
    for (int i = 0; i < 100 && !gone; i++) {
        gone = !has(c, "{m:t}:near", "v1");
        usleep(10 * 1000);
    }
    cr_assert(gone, "the invalidation reached this process");
    cache_destroy(c);
}

/* Puts a value into the near cache alone (what the gateway does with a participant's answer). */
static void near_put(const char *key, const char *value) {
    near_cache_put(key, value, strlen(value), near_cache_epoch(), 0);
}

static bool near_has(const char *key) {
    unsigned char *v;
    size_t n;
    return near_cache_get(key, &arena, &v, &n);
}

static void publish(const char *channel, const char *key) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "redis-cli -p %d PUBLISH %s '%s' >/dev/null", redis.port, channel,
             key);
    cr_assert_eq(system(cmd), 0);
}

Test(runtime_cache, near_cache_follows_another_service_and_drops_by_prefix) {
    /* Goal: a process that keeps copies of another service's values under that service's keys
     * drops them when that service publishes their invalidation, and an invalidation ending in
     * '*' drops every key it prefixes and nothing else. */
    cr_assert(near_cache_follow("loyalty:invalidate:other"));
    cr_assert(near_cache_start(redis.url, "loyalty:invalidate:own", 128, 1 << 20, 60000));
    for (int i = 0; i < 500 && !({
                        near_cache_stats_t s;
                        near_cache_get_stats(&s);
                        s.subscribed;
                    });
         i++) {
        usleep(20 * 1000);
    }
    near_put("{m:t}:member:tier:a", "A");
    near_put("{m:t}:member:tier:b", "B");
    near_put("{m:t}:member:tiers", "T");
    near_put("{m:u}:member:tier:a", "other merchant");
    cr_assert(near_has("{m:t}:member:tier:a") && near_has("{m:t}:member:tier:b"));

    publish("loyalty:invalidate:other", "{m:t}:member:tier:a");
    bool gone = false;
    for (int i = 0; i < 500 && !gone; i++) {
        gone = !near_has("{m:t}:member:tier:a");
        usleep(10 * 1000);
    }
    cr_assert(gone, "the followed service's invalidation reached this process");
    cr_assert(near_has("{m:t}:member:tier:b"), "only the published key goes");

    publish("loyalty:invalidate:other", "{m:t}:member:tier:*");
    gone = false;
    for (int i = 0; i < 500 && !gone; i++) {
        gone = !near_has("{m:t}:member:tier:b");
        usleep(10 * 1000);
    }
    cr_assert(gone, "a prefix invalidation drops the keys it prefixes");
    cr_assert(near_has("{m:t}:member:tiers"), "not a key it does not prefix");
    cr_assert(near_has("{m:u}:member:tier:a"), "nor another merchant's");

    publish("loyalty:invalidate:own", "{m:t}:member:tiers");
    gone = false;
    for (int i = 0; i < 500 && !gone; i++) {
        gone = !near_has("{m:t}:member:tiers");
        usleep(10 * 1000);
    }
    cr_assert(gone, "its own channel still counts");
    near_cache_stop();
}

static status_t get_name(const char *addr, const char *merchant, const char *id, char **name) {
    Loyalty__V1__GetMemberRequest req = LOYALTY__V1__GET_MEMBER_REQUEST__INIT;
    req.merchant_id = (char *)merchant;
    req.lookup_case = LOYALTY__V1__GET_MEMBER_REQUEST__LOOKUP_MEMBER_ID;
    req.member_id = (char *)id;
    ProtobufCMessage *resp = NULL;
    status_t st = rpc_call(rpc_channel_get(addr), &loyalty__v1__member_service__descriptor,
                           "GetMember", &req.base, &arena, &resp, NULL);
    if (status_is_ok(&st)) {
        *name = ((Loyalty__V1__GetMemberResponse *)resp)->member->profile->name;
    }
    return st;
}

Test(runtime_cache, replicas_stay_coherent) {
    /* Goal: two replicas of member-svc share PostgreSQL and Redis; after an update through one,
     * the other serves the new profile (within the pub/sub delivery delay) and never the old
     * one again. */
    char url_env[96];
    snprintf(url_env, sizeof url_env, "LOYALTY_REDIS_URL=%s", redis.url);
    const char *env[] = {url_env, NULL};
    svc_proc_t a, b;
    harness_start(&a, "member-svc", env);
    harness_start(&b, "member-svc", env);
    const char *m = harness_merchant("coh");

    const char *id = member_create_id(a.addr, &arena, m, &(member_spec_t){.name = "Version One"});

    for (int round = 2; round <= 6; round++) {
        char *name = NULL;
        for (int i = 0; i < 3; i++) { /* B now holds the current version in memory */
            cr_assert(status_is_ok(&(status_t){get_name(b.addr, m, id, &name).code}));
        }
        char next[32];
        snprintf(next, sizeof next, "Version %d", round);
        char *mask[] = {"name"};
        Loyalty__V1__MemberProfile p = LOYALTY__V1__MEMBER_PROFILE__INIT;
        p.name = next;
        Loyalty__V1__UpdateMemberRequest up = LOYALTY__V1__UPDATE_MEMBER_REQUEST__INIT;
        up.merchant_id = (char *)m;
        up.idempotency_key = (char *)harness_key();
        up.member_id = (char *)id;
        up.profile = &p;
        up.update_mask = HARNESS_MASK_OF(mask, 1);
        status_t st = rpc_call(rpc_channel_get(a.addr), &loyalty__v1__member_service__descriptor,
                               "UpdateMember", &up.base, &arena, NULL, NULL);
        cr_assert(status_is_ok(&st), "%s", st.message);
        bool fresh = false;
        for (int i = 0; i < 200 && !fresh; i++) {
            cr_assert(status_is_ok(&(status_t){get_name(b.addr, m, id, &name).code}));
            fresh = strcmp(name, next) == 0;
            if (!fresh) {
                usleep(5 * 1000);
            }
        }
        cr_assert(fresh, "replica B still serves '%s' after the update to '%s'", name, next);
        for (int i = 0; i < 20; i++) {
            cr_assert(status_is_ok(&(status_t){get_name(b.addr, m, id, &name).code}));
            cr_assert_str_eq(name, next, "B went back to an old version");
        }
    }
    cr_assert_eq(harness_stop(&a), 0);
    cr_assert_eq(harness_stop(&b), 0);
}

Test(runtime_cache, near_copy_never_outlives_the_entry) {
    /* Goal: a value stored for 1 s is served from memory meanwhile and not after it expired in
     * Redis, although the near cache keeps copies for up to a minute here. */
    cr_assert(near_cache_start(redis.url, "loyalty:invalidate:test", 128, 1 << 20, 60000));
    for (int i = 0; i < 100; i++) {
        near_cache_stats_t s;
        near_cache_get_stats(&s);
        if (s.subscribed) {
            break;
        }
        usleep(20 * 1000);
    }
    cache_t *c = cache_create(redis.url, 60);
    unsigned char *v;
    size_t n;
    cr_assert_not(cache_get(c, &arena, "{m:t}:short", &v, &n));
    cache_set(c, "{m:t}:short", "brief", 5, 1);
    cr_assert(has(c, "{m:t}:short", "brief"));
    near_cache_stats_t before, after;
    near_cache_get_stats(&before);
    cr_assert(has(c, "{m:t}:short", "brief"));
    near_cache_get_stats(&after);
    cr_assert_eq(after.hits, before.hits + 1, "served from memory while valid");
    usleep(1300 * 1000);
    cr_assert_not(has(c, "{m:t}:short", "brief"), "expired everywhere after its TTL");
    cache_destroy(c);
}

static void wait_subscribed(void) {
    for (int i = 0; i < 200; i++) {
        near_cache_stats_t s;
        near_cache_get_stats(&s);
        if (s.subscribed) {
            return;
        }
        usleep(20 * 1000);
    }
}

Test(runtime_cache, acl_user_of_the_url_logs_in) {
    /* Goal: redis://user:pass@host logs in as that ACL user (AUTH user pass), for the workers'
     * connections and the near cache's subscriber alike; the default user's password is
     * another one, so logging in as `default` with the user's password fails. */
    redisContext *admin = redisConnect("127.0.0.1", redis.port);
    cr_assert(admin && !admin->err);
    redisReply *r = redisCommand(admin, "ACL SETUSER app on >app-pass ~* &* +@all");
    cr_assert(r && r->type == REDIS_REPLY_STATUS, "%s", r ? r->str : "no reply");
    freeReplyObject(r);
    r = redisCommand(admin, "ACL SETUSER default resetpass >default-pass");
    cr_assert(r && r->type == REDIS_REPLY_STATUS, "%s", r ? r->str : "no reply");
    freeReplyObject(r);
    redisFree(admin);
    char url[128];
    snprintf(url, sizeof url, "redis://app:app-pass@127.0.0.1:%d/0", redis.port);
    cache_t *c = cache_create(url, 60);
    cache_set(c, "{m:acl}:k", "v", 1, 60);
    cr_assert(has(c, "{m:acl}:k", "v"), "stored and read as the ACL user");
    cr_assert(cache_is_up(c));
    cache_destroy(c);
    cr_assert(near_cache_start(url, "loyalty:invalidate:acl", 128, 1 << 20, 60000));
    wait_subscribed();
    near_cache_stats_t s;
    near_cache_get_stats(&s);
    cr_assert(s.subscribed, "the near cache's subscriber logged in as the ACL user");
}

Test(runtime_cache, near_cache_holds_at_most_its_byte_budget) {
    /* Goal: the near cache is bounded in bytes, not only in entries: 100 values of 60 KiB
     * against a 1 MiB budget keep it within 1 MiB (least recently used out), and small
     * entries are still kept. */
    const int64_t budget = 1 << 20;
    cr_assert(near_cache_start(redis.url, "loyalty:invalidate:bytes", 8192, budget, 60000));
    wait_subscribed();
    static unsigned char value[60 * 1024];
    memset(value, 'x', sizeof value);
    char key[32];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "{m:b}:%d", i);
        near_cache_put(key, value, sizeof value, near_cache_epoch(), 60000);
        near_cache_stats_t s;
        near_cache_get_stats(&s);
        cr_assert_leq(s.bytes, (uint64_t)budget, "after %d puts: %llu bytes", i + 1,
                      (unsigned long long)s.bytes);
    }
    near_cache_stats_t s;
    near_cache_get_stats(&s);
    cr_assert(s.subscribed);
    cr_assert_gt(s.entries, 0);
    cr_assert_lt(s.entries, 100, "large entries were evicted to stay in budget");
    near_cache_put("{m:b}:small", "tiny", 4, near_cache_epoch(), 60000);
    unsigned char *v = NULL;
    size_t n = 0;
    cr_assert(near_cache_get("{m:b}:small", &arena, &v, &n));
    cr_assert_eq(n, 4);
    cr_assert(memcmp(v, "tiny", 4) == 0);
}
