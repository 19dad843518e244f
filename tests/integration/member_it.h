/* member_it.h -- the member-svc integration suites' state: the service under test (svc, and
 * svc2 when a test starts a second replica), the suite's set-up and tear-down, and calls to svc
 * through the client kit (member_client.h). Static state: each test file includes it once. */
#ifndef MEMBER_IT_H
#define MEMBER_IT_H

#include "member_client.h"

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
    return member_call_at(addr, a, method, req, resp_out);
}

static inline status_t call(const char *method, const void *req, void *resp_out) {
    return call_at(svc.addr, method, req, resp_out, &arena);
}

/* A new member of `m` on svc; the test fails unless it is created. Returns its id. */
static inline const char *member_create(const char *m, const member_spec_t *s) {
    return member_create_id(svc.addr, &arena, m, s);
}

/* The member's statistics on svc. */
static inline Loyalty__V1__MemberStats *member_stats(const char *m, const char *member_id) {
    return member_stats_at(svc.addr, &arena, m, member_id);
}

#endif
