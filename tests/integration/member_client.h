/* member_client.h -- the member-svc integration tests' client: the service under test (svc, and
 * svc2 when a test starts a second replica), the suite's set-up and tear-down, calls, and one
 * way to create a member from whichever profile fields a test cares about. Static functions:
 * each test file includes it once. */
#ifndef MEMBER_CLIENT_H
#define MEMBER_CLIENT_H

#include "harness.h"
#include "loyalty/v1/member.pb-c.h"

#include <criterion/criterion.h>

#include <stdio.h>

static svc_proc_t svc, svc2;
static arena_t arena;

static inline void member_it_setup(void) {
    harness_init();
    arena_init(&arena);
}

static inline void member_it_teardown(void) {
    svc_proc_t *procs[] = {&svc, &svc2};
    for (int i = 0; i < 2; i++) {
        if (procs[i]->pid > 0) {
            cr_expect_eq(harness_stop(procs[i]), 0, "member-svc did not exit cleanly; see %s",
                         procs[i]->log_path);
        }
    }
    arena_free(&arena);
    harness_fini();
}

static inline status_t call_at(const char *addr, const char *method, const void *req,
                               void *resp_out, arena_t *a) {
    return rpc_call(rpc_channel_get(addr), &loyalty__v1__member_service__descriptor, method, req, a,
                    (ProtobufCMessage **)resp_out, NULL);
}

static inline status_t call(const char *method, const void *req, void *resp_out) {
    return call_at(svc.addr, method, req, resp_out, &arena);
}

/* The profile fields a test sets (NULL: not set); key NULL: a fresh idempotency key. */
typedef struct member_spec {
    const char *name, *phone, *email, *birthday, *tag, *key;
} member_spec_t;

static inline status_t member_create_at(const char *addr, arena_t *a, const char *m,
                                        const member_spec_t *s, Loyalty__V1__Member **out) {
    Loyalty__V1__MemberProfile p = LOYALTY__V1__MEMBER_PROFILE__INIT;
    p.name = (char *)s->name;
    p.phone = (char *)s->phone;
    p.email = (char *)s->email;
    p.birthday = (char *)s->birthday;
    char *tags[] = {(char *)s->tag};
    p.tags = tags;
    p.n_tags = s->tag ? 1 : 0;
    Loyalty__V1__CreateMemberRequest req = LOYALTY__V1__CREATE_MEMBER_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)(s->key ? s->key : harness_key());
    req.profile = &p;
    Loyalty__V1__CreateMemberResponse *resp = NULL;
    status_t st = call_at(addr, "CreateMember", &req, &resp, a);
    if (out) {
        *out = status_is_ok(&st) ? resp->member : NULL;
    }
    return st;
}

/* A new member of `m` on svc; the test fails unless it is created. Returns its id. */
static inline const char *member_create(const char *m, const member_spec_t *s) {
    Loyalty__V1__Member *mem = NULL;
    assert_ok(member_create_at(svc.addr, &arena, m, s, &mem));
    return mem->id;
}

#endif
