/* referral_client.h -- thin ReferralService calls for the referral-svc integration tests, and
 * a programme builder. Header-only (static inline) so each test file takes what it uses. */
#ifndef REFERRAL_CLIENT_H
#define REFERRAL_CLIENT_H

#include "harness.h"
#include "loyalty/v1/referral.pb-c.h"

#include <criterion/criterion.h>
#include <libpq-fe.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EV_REG LOYALTY__V1__REFERRAL_EVENT__REFERRAL_EVENT_REGISTRATION
#define EV_BUY LOYALTY__V1__REFERRAL_EVENT__REFERRAL_EVENT_PURCHASE
#define ST_HELD LOYALTY__V1__REFERRAL_REWARD_STATE__REFERRAL_REWARD_STATE_HELD
#define ST_GRANTED LOYALTY__V1__REFERRAL_REWARD_STATE__REFERRAL_REWARD_STATE_GRANTED
#define ST_CANCELLED LOYALTY__V1__REFERRAL_REWARD_STATE__REFERRAL_REWARD_STATE_CANCELLED
#define K_NONE LOYALTY__V1__REFERRAL_PURCHASE_REWARD_KIND__REFERRAL_PURCHASE_REWARD_KIND_NONE
#define K_FIXED LOYALTY__V1__REFERRAL_PURCHASE_REWARD_KIND__REFERRAL_PURCHASE_REWARD_KIND_FIXED
#define K_BPS LOYALTY__V1__REFERRAL_PURCHASE_REWARD_KIND__REFERRAL_PURCHASE_REWARD_KIND_BPS

/* Where and as whom the calls go; responses live in `arena`. */
typedef struct rc {
    const char *addr;
    const char *merchant;
    arena_t *arena;
} rc_t;

static inline status_t rc_invoke(const rc_t *c, const char *method, const ProtobufCMessage *req,
                                 ProtobufCMessage **resp) {
    ProtobufCMessage *unused = NULL;
    return rpc_call(rpc_channel_get(c->addr), &loyalty__v1__referral_service__descriptor, method,
                    req, c->arena, resp ? resp : &unused, NULL);
}

/* A programme builder: the fixture owns the rule structs the programme points to. */
typedef struct rc_program {
    Loyalty__V1__ReferralProgram p;
    Loyalty__V1__ReferralLevelRule r[3];
    Loyalty__V1__ReferralLevelRule *rp[3];
} rc_program_t;

/* The suite's standard programme: welcome 50; level 1: registration 100, 5% capped at 300;
 * level 2: registration 30, fixed 20; level 3: registration 10, 1%; no hold. */
static inline void rc_program_init(rc_program_t *f) {
    memset(f, 0, sizeof *f);
    f->p = (Loyalty__V1__ReferralProgram)LOYALTY__V1__REFERRAL_PROGRAM__INIT;
    f->p.enabled = true;
    f->p.levels = 3;
    f->p.welcome_points = 50;
    f->p.share_url_template = "https://shop.example/join?ref={code}";
    f->p.share_message_template = "Join me at Shop & get 50 points: {url}";
    for (int i = 0; i < 3; i++) {
        f->r[i] = (Loyalty__V1__ReferralLevelRule)LOYALTY__V1__REFERRAL_LEVEL_RULE__INIT;
        f->r[i].level = i + 1;
        f->r[i].enabled = true;
        f->rp[i] = &f->r[i];
    }
    f->r[0].registration_points = 100;
    f->r[0].purchase_reward_kind = K_BPS;
    f->r[0].purchase_bps = 500;
    f->r[0].purchase_cap_points = 300;
    f->r[1].registration_points = 30;
    f->r[1].purchase_reward_kind = K_FIXED;
    f->r[1].purchase_fixed_points = 20;
    f->r[2].registration_points = 10;
    f->r[2].purchase_reward_kind = K_BPS;
    f->r[2].purchase_bps = 100;
    f->p.level_rules = f->rp;
    f->p.n_level_rules = 3;
}

static inline status_t rc_set_program(const rc_t *c, const Loyalty__V1__ReferralProgram *p,
                                      Loyalty__V1__ReferralProgram **out) {
    Loyalty__V1__ReferralSetProgramRequest req = LOYALTY__V1__REFERRAL_SET_PROGRAM_REQUEST__INIT;
    req.merchant_id = (char *)c->merchant;
    req.idempotency_key = (char *)harness_key();
    req.program = (Loyalty__V1__ReferralProgram *)p;
    ProtobufCMessage *resp = NULL;
    status_t st = rc_invoke(c, "SetReferralProgram", &req.base, &resp);
    if (out) {
        *out =
            status_is_ok(&st) ? ((Loyalty__V1__ReferralSetProgramResponse *)resp)->program : NULL;
    }
    return st;
}

static inline status_t rc_get_code(const rc_t *c, const char *member,
                                   Loyalty__V1__ReferralGetCodeResponse **out) {
    Loyalty__V1__ReferralGetCodeRequest req = LOYALTY__V1__REFERRAL_GET_CODE_REQUEST__INIT;
    req.merchant_id = (char *)c->merchant;
    req.member_id = (char *)member;
    ProtobufCMessage *resp = NULL;
    status_t st = rc_invoke(c, "GetReferralCode", &req.base, &resp);
    if (out) {
        *out = status_is_ok(&st) ? (Loyalty__V1__ReferralGetCodeResponse *)resp : NULL;
    }
    return st;
}

/* The member's code; fails the test when the call fails. */
static inline const char *rc_code(const rc_t *c, const char *member) {
    Loyalty__V1__ReferralGetCodeResponse *r = NULL;
    assert_status(rc_get_code(c, member, &r), STATUS_OK, "");
    return r->code;
}

static inline status_t rc_attach_key(const rc_t *c, const char *key, const char *referee,
                                     const char *code, Loyalty__V1__ReferralAttachResponse **out) {
    Loyalty__V1__ReferralAttachRequest req = LOYALTY__V1__REFERRAL_ATTACH_REQUEST__INIT;
    req.merchant_id = (char *)c->merchant;
    req.idempotency_key = (char *)key;
    req.referee_member_id = (char *)referee;
    req.code = (char *)code;
    ProtobufCMessage *resp = NULL;
    status_t st = rc_invoke(c, "AttachReferral", &req.base, &resp);
    if (out) {
        *out = status_is_ok(&st) ? (Loyalty__V1__ReferralAttachResponse *)resp : NULL;
    }
    return st;
}

static inline status_t rc_attach(const rc_t *c, const char *referee, const char *code) {
    return rc_attach_key(c, harness_key(), referee, code, NULL);
}

/* referee joins below referrer (using the referrer's code); fails the test on error. */
static inline void rc_link(const rc_t *c, const char *referee, const char *referrer) {
    assert_status(rc_attach(c, referee, rc_code(c, referrer)), STATUS_OK, "");
}

static inline status_t rc_compute_hold(const rc_t *c, const char *key, int event,
                                       const char *member, int64_t paid, const char *reference,
                                       bool has_hold, int64_t hold_until_at,
                                       Loyalty__V1__ReferralComputeRewardsResponse **out) {
    Loyalty__V1__ReferralComputeRewardsRequest req =
        LOYALTY__V1__REFERRAL_COMPUTE_REWARDS_REQUEST__INIT;
    req.merchant_id = (char *)c->merchant;
    req.idempotency_key = (char *)key;
    req.event = (Loyalty__V1__ReferralEvent)event;
    req.member_id = (char *)member;
    req.paid_cents = paid;
    req.reference = (char *)reference;
    if (has_hold) {
        req._hold_until_case =
            LOYALTY__V1__REFERRAL_COMPUTE_REWARDS_REQUEST___HOLD_UNTIL_HOLD_UNTIL_AT;
        req.hold_until_at = hold_until_at;
    }
    ProtobufCMessage *resp = NULL;
    status_t st = rc_invoke(c, "ComputeRewards", &req.base, &resp);
    if (out) {
        *out = status_is_ok(&st) ? (Loyalty__V1__ReferralComputeRewardsResponse *)resp : NULL;
    }
    return st;
}

static inline status_t rc_compute(const rc_t *c, int event, const char *member, int64_t paid,
                                  const char *reference,
                                  Loyalty__V1__ReferralComputeRewardsResponse **out) {
    return rc_compute_hold(c, harness_key(), event, member, paid, reference, false, 0, out);
}

static inline status_t rc_reverse_key(const rc_t *c, const char *key, int event,
                                      const char *reference, int32_t share_bps,
                                      Loyalty__V1__ReferralReverseRewardsResponse **out) {
    Loyalty__V1__ReferralReverseRewardsRequest req =
        LOYALTY__V1__REFERRAL_REVERSE_REWARDS_REQUEST__INIT;
    req.merchant_id = (char *)c->merchant;
    req.idempotency_key = (char *)key;
    req.event = (Loyalty__V1__ReferralEvent)event;
    req.reference = (char *)reference;
    req.share_bps = share_bps;
    ProtobufCMessage *resp = NULL;
    status_t st = rc_invoke(c, "ReverseRewards", &req.base, &resp);
    if (out) {
        *out = status_is_ok(&st) ? (Loyalty__V1__ReferralReverseRewardsResponse *)resp : NULL;
    }
    return st;
}

static inline status_t rc_reverse(const rc_t *c, int event, const char *reference,
                                  int32_t share_bps,
                                  Loyalty__V1__ReferralReverseRewardsResponse **out) {
    return rc_reverse_key(c, harness_key(), event, reference, share_bps, out);
}

static inline status_t rc_release(const rc_t *c, const char *key, int32_t limit,
                                  Loyalty__V1__ReferralReleaseHeldRewardsResponse **out) {
    Loyalty__V1__ReferralReleaseHeldRewardsRequest req =
        LOYALTY__V1__REFERRAL_RELEASE_HELD_REWARDS_REQUEST__INIT;
    req.merchant_id = (char *)c->merchant;
    req.idempotency_key = (char *)key;
    req.limit = limit;
    ProtobufCMessage *resp = NULL;
    status_t st = rc_invoke(c, "ReleaseHeldRewards", &req.base, &resp);
    if (out) {
        *out = status_is_ok(&st) ? (Loyalty__V1__ReferralReleaseHeldRewardsResponse *)resp : NULL;
    }
    return st;
}

static inline status_t rc_upline(const rc_t *c, const char *member,
                                 Loyalty__V1__ReferralGetUplineResponse **out) {
    Loyalty__V1__ReferralGetUplineRequest req = LOYALTY__V1__REFERRAL_GET_UPLINE_REQUEST__INIT;
    req.merchant_id = (char *)c->merchant;
    req.member_id = (char *)member;
    ProtobufCMessage *resp = NULL;
    status_t st = rc_invoke(c, "GetUpline", &req.base, &resp);
    if (out) {
        *out = status_is_ok(&st) ? (Loyalty__V1__ReferralGetUplineResponse *)resp : NULL;
    }
    return st;
}

static inline status_t rc_downline(const rc_t *c, const char *member, int level, int32_t page_size,
                                   const char *cursor,
                                   Loyalty__V1__ReferralListDownlineResponse **out) {
    Loyalty__V1__ReferralListDownlineRequest req =
        LOYALTY__V1__REFERRAL_LIST_DOWNLINE_REQUEST__INIT;
    Loyalty__V1__PageRequest page = LOYALTY__V1__PAGE_REQUEST__INIT;
    page.page_size = page_size;
    page.cursor = (char *)(cursor ? cursor : "");
    req.merchant_id = (char *)c->merchant;
    req.member_id = (char *)member;
    req.level = level;
    req.page = &page;
    ProtobufCMessage *resp = NULL;
    status_t st = rc_invoke(c, "ListDownline", &req.base, &resp);
    if (out) {
        *out = status_is_ok(&st) ? (Loyalty__V1__ReferralListDownlineResponse *)resp : NULL;
    }
    return st;
}

/* The reward of `beneficiary` in a list, or NULL. */
static inline Loyalty__V1__ReferralReward *rc_reward_of(Loyalty__V1__ReferralReward *const *rewards,
                                                        size_t n, const char *beneficiary) {
    for (size_t i = 0; i < n; i++) {
        if (strcmp(rewards[i]->beneficiary_member_id, beneficiary) == 0) {
            return rewards[i];
        }
    }
    return NULL;
}

/* One integer from a SQL query with up to two text parameters (the merchant first). */
static inline int64_t rc_sql_int(const char *sql, const char *p1, const char *p2) {
    PGconn *pg = PQconnectdb(harness_pg_dsn());
    cr_assert_eq(PQstatus(pg), CONNECTION_OK);
    const char *params[] = {p1, p2};
    PGresult *r = PQexecParams(pg, sql, p2 ? 2 : 1, NULL, params, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(pg));
    int64_t v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    PQfinish(pg);
    return v;
}

/* Runs a statement with up to two text parameters. */
static inline void rc_sql_exec(const char *sql, const char *p1, const char *p2) {
    PGconn *pg = PQconnectdb(harness_pg_dsn());
    cr_assert_eq(PQstatus(pg), CONNECTION_OK);
    const char *params[] = {p1, p2};
    PGresult *r = PQexecParams(pg, sql, p2 ? 2 : 1, NULL, params, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(pg));
    PQclear(r);
    PQfinish(pg);
}

#endif
