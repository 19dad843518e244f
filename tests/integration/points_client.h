/* points_client.h -- the test client kit's points-svc part: the calls any integration test
 * makes to points-svc (whichever suite it belongs to), with no suite state of its own: each
 * takes the address and the arena. Header-only (static inline) so each test file takes what it
 * uses. The points-svc suites' own set-up is in points_it.h. */
#ifndef POINTS_CLIENT_H
#define POINTS_CLIENT_H

#include "harness.h"
#include "loyalty/v1/points.pb-c.h"
#include "pb.h"

#include <criterion/criterion.h>

/* One PointsService call to addr; the response lives in a. */
static inline status_t points_call_at(const char *addr, arena_t *a, const char *method,
                                      const void *req, void *resp_out) {
    return rpc_call(rpc_channel_get(addr), &loyalty__v1__points_service__descriptor, method,
                    (const ProtobufCMessage *)req, a, (ProtobufCMessage **)resp_out, NULL);
}

/* The member's balance on addr; the test fails unless it is read. */
static inline Loyalty__V1__PointsBalance *points_balance_at(const char *addr, arena_t *a,
                                                            const char *m, const char *member_id) {
    Loyalty__V1__PointsGetBalanceRequest req = LOYALTY__V1__POINTS_GET_BALANCE_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.member_id = (char *)member_id;
    Loyalty__V1__PointsGetBalanceResponse *resp = NULL;
    status_t st = points_call_at(addr, a, "GetBalance", &req, &resp);
    cr_assert(status_is_ok(&st), "GetBalance: %s %s %s", status_code_name(st.code), st.reason,
              st.message);
    return resp->balance;
}

/* An Earn of `points` as a promotion (a fresh key and reference), arena memory: the caller
 * sets what else it needs (an expiry date) and sends it. */
static inline Loyalty__V1__PointsEarnRequest *
points_promotion_earn(arena_t *a, const char *m, const char *member_id, int64_t points) {
    Loyalty__V1__PointsEarnRequest *req = pb_new(a, &loyalty__v1__points_earn_request__descriptor);
    req->merchant_id = (char *)m;
    req->idempotency_key = (char *)harness_key();
    req->member_id = (char *)member_id;
    req->source = LOYALTY__V1__POINTS_SOURCE__POINTS_SOURCE_PROMOTION;
    req->reference = (char *)harness_key();
    req->amount_case = LOYALTY__V1__POINTS_EARN_REQUEST__AMOUNT_POINTS;
    req->points = points;
    return req;
}

#endif
