/* member_client.h -- the test client kit's member-svc part: the calls any integration test
 * makes to member-svc (whichever suite it belongs to), with no suite state of its own: each
 * takes the address and the arena. One way to build a CreateMember request from whichever
 * profile fields a test cares about, and to create a member or a tier. Header-only (static
 * inline) so each test file takes what it uses. The member-svc suites' own set-up is in
 * member_it.h. */
#ifndef MEMBER_CLIENT_H
#define MEMBER_CLIENT_H

#include "harness.h"
#include "loyalty/v1/member.pb-c.h"
#include "pb.h"

#include <criterion/criterion.h>

/* One MemberService call to addr; the response lives in a. */
static inline status_t member_call_at(const char *addr, arena_t *a, const char *method,
                                      const void *req, void *resp_out) {
    return rpc_call(rpc_channel_get(addr), &loyalty__v1__member_service__descriptor, method, req, a,
                    (ProtobufCMessage **)resp_out, NULL);
}

/* The profile fields a test sets (NULL: not set); key NULL: a fresh idempotency key. */
typedef struct member_spec {
    const char *name, *phone, *email, *birthday, *tag, *key;
} member_spec_t;

/* The CreateMember request of spec s for merchant m (arena memory). */
static inline Loyalty__V1__CreateMemberRequest *member_create_request(arena_t *a, const char *m,
                                                                      const member_spec_t *s) {
    Loyalty__V1__MemberProfile *p = pb_new(a, &loyalty__v1__member_profile__descriptor);
    p->name = (char *)s->name;
    p->phone = (char *)s->phone;
    p->email = (char *)s->email;
    p->birthday = (char *)s->birthday;
    if (s->tag != NULL) {
        p->tags = arena_alloc(a, sizeof *p->tags);
        p->tags[0] = (char *)s->tag;
        p->n_tags = 1;
    }
    Loyalty__V1__CreateMemberRequest *req =
        pb_new(a, &loyalty__v1__create_member_request__descriptor);
    req->merchant_id = (char *)m;
    req->idempotency_key = (char *)(s->key ? s->key : harness_key());
    req->profile = p;
    return req;
}

/* CreateMember on addr; *out (may be NULL) gets the member, NULL when it failed. */
static inline status_t member_create_at(const char *addr, arena_t *a, const char *m,
                                        const member_spec_t *s, Loyalty__V1__Member **out) {
    Loyalty__V1__CreateMemberResponse *resp = NULL;
    status_t st = member_call_at(addr, a, "CreateMember", member_create_request(a, m, s), &resp);
    if (out) {
        *out = status_is_ok(&st) ? resp->member : NULL;
    }
    return st;
}

/* A new member of m on addr; the test fails unless it is created. Returns its id. */
static inline const char *member_create_id(const char *addr, arena_t *a, const char *m,
                                           const member_spec_t *s) {
    Loyalty__V1__Member *mem = NULL;
    status_t st = member_create_at(addr, a, m, s, &mem);
    cr_assert(status_is_ok(&st), "CreateMember %s: %s %s %s", s->name ? s->name : "",
              status_code_name(st.code), st.reason, st.message);
    return mem->id;
}

/* CreateTier of t for merchant m on addr (a fresh key); the test fails unless it is created.
 * Returns the tier's id. */
static inline const char *member_create_tier_id(const char *addr, arena_t *a, const char *m,
                                                Loyalty__V1__MemberTier *t) {
    Loyalty__V1__MemberCreateTierRequest req = LOYALTY__V1__MEMBER_CREATE_TIER_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    req.tier = t;
    Loyalty__V1__MemberCreateTierResponse *resp = NULL;
    status_t st = member_call_at(addr, a, "CreateTier", &req, &resp);
    cr_assert(status_is_ok(&st), "CreateTier %s: %s %s %s", t->name, status_code_name(st.code),
              st.reason, st.message);
    return resp->tier->id;
}

/* The member's statistics on addr; the test fails unless they are read. */
static inline Loyalty__V1__MemberStats *member_stats_at(const char *addr, arena_t *a, const char *m,
                                                        const char *member_id) {
    Loyalty__V1__MemberGetStatsRequest req = LOYALTY__V1__MEMBER_GET_STATS_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.member_id = (char *)member_id;
    Loyalty__V1__MemberGetStatsResponse *resp = NULL;
    status_t st = member_call_at(addr, a, "GetMemberStats", &req, &resp);
    cr_assert(status_is_ok(&st), "GetMemberStats: %s %s %s", status_code_name(st.code), st.reason,
              st.message);
    return resp->stats;
}

#endif
