/* test_gateway_retention.c -- the gateway's retention job drops the step logs of sagas finished
 * long ago and keeps the saga itself (its state still answers), while recent sagas keep their
 * steps. Real gateway, member-svc and points-svc on a private database. */
#include "harness.h"
#include "loyalty/v1/gateway.pb-c.h"
#include "loyalty/v1/member.pb-c.h"
#include "member_client.h"

#include <criterion/criterion.h>
#include <libpq-fe.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static svc_proc_t member, points, gateway;
static arena_t arena;
static char pg_dsn[512];

static void setup(void) {
    harness_init();
    arena_init(&arena);
    snprintf(pg_dsn, sizeof pg_dsn, "%s", harness_private_database());
    static char pg_env[600];
    snprintf(pg_env, sizeof pg_env, "LOYALTY_PG_DSN=%s", pg_dsn);
    const char *env[] = {pg_env, NULL};
    harness_start(&member, "member-svc", env);
    harness_start(&points, "points-svc", env);
    static char addrs[2][96];
    snprintf(addrs[0], sizeof addrs[0], "MEMBER_SVC_ADDR=%s", member.addr);
    snprintf(addrs[1], sizeof addrs[1], "POINTS_SVC_ADDR=%s", points.addr);
    const char *gw_env[] = {pg_env, addrs[0], addrs[1], NULL};
    harness_start(&gateway, "gateway", gw_env);
}

static void teardown(void) {
    svc_proc_t *all[] = {&gateway, &points, &member};
    for (int i = 0; i < 3; i++) {
        if (all[i]->pid > 0) {
            cr_expect_eq(harness_stop(all[i]), 0, "%s did not exit cleanly", all[i]->name);
        }
    }
    arena_free(&arena);
    harness_fini();
}

TestSuite(gateway_retention, .init = setup, .fini = teardown, .timeout = 120);

static const char *check_in(const char *m, const char *member_id) {
    Loyalty__V1__GatewayCheckInRequest req = LOYALTY__V1__GATEWAY_CHECK_IN_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.idempotency_key = (char *)harness_key();
    req.member_id = (char *)member_id;
    ProtobufCMessage *resp = NULL;
    status_t st = rpc_call(rpc_channel_get(gateway.addr), &loyalty__v1__gateway__descriptor,
                           "CheckIn", &req.base, &arena, &resp, NULL);
    cr_assert(status_is_ok(&st), "CheckIn: %s %s", st.reason, st.message);
    return ((Loyalty__V1__GatewayCheckInResponse *)resp)->saga_id;
}

static Loyalty__V1__GatewaySaga *get_saga(const char *m, const char *id) {
    Loyalty__V1__GatewayGetSagaRequest req = LOYALTY__V1__GATEWAY_GET_SAGA_REQUEST__INIT;
    req.merchant_id = (char *)m;
    req.saga_id = (char *)id;
    ProtobufCMessage *resp = NULL;
    status_t st = rpc_call(rpc_channel_get(gateway.addr), &loyalty__v1__gateway__descriptor,
                           "GetSaga", &req.base, &arena, &resp, NULL);
    cr_assert(status_is_ok(&st), "GetSaga: %s %s", st.reason, st.message);
    return ((Loyalty__V1__GatewayGetSagaResponse *)resp)->saga;
}

Test(gateway_retention, old_finished_sagas_lose_their_step_logs_only) {
    /* Goal: after the job runs, a saga finished 100 days ago has no steps but still answers its
     * state; one finished today keeps its steps. */
    const char *m = harness_merchant("ret");
    const char *old_id =
        check_in(m, member_create_id(member.addr, &arena, m, &(member_spec_t){.name = "Ret"}));
    const char *new_id =
        check_in(m, member_create_id(member.addr, &arena, m, &(member_spec_t){.name = "Ret"}));
    cr_assert_gt(get_saga(m, old_id)->n_steps, 0);
    PGconn *pg = PQconnectdb(pg_dsn);
    cr_assert_eq(PQstatus(pg), CONNECTION_OK);
    const char *params[] = {m, old_id};
    PGresult *r = PQexecParams(pg,
                               "UPDATE gateway.sagas SET created_at = now() - interval '101 days', "
                               " updated_at = now() - interval '100 days' "
                               "WHERE merchant_id = $1 AND id = $2",
                               2, NULL, params, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(pg);
    /* The job runs when the gateway starts, then hourly. */
    cr_assert_eq(harness_stop(&gateway), 0);
    harness_restart(&gateway);
    Loyalty__V1__GatewaySaga *old_saga = NULL;
    for (int i = 0; i < 100; i++) {
        old_saga = get_saga(m, old_id);
        if (old_saga->n_steps == 0) {
            break;
        }
        usleep(100 * 1000);
    }
    cr_assert_eq(old_saga->n_steps, 0, "the old saga's steps were dropped");
    cr_assert_eq(old_saga->state, LOYALTY__V1__GATEWAY_SAGA_STATE__GATEWAY_SAGA_STATE_COMPLETED);
    cr_assert_gt(get_saga(m, new_id)->n_steps, 0, "a recent saga keeps its steps");
}
