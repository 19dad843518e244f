/* test_points_ledger.c -- points-svc over real gRPC against real PostgreSQL and Redis: the
 * service starts, applies its schema and reports SERVING. */
#include "grpc/health/v1/health.pb-c.h"
#include "harness.h"
#include "loyalty/v1/points.pb-c.h"

#include <criterion/criterion.h>

static svc_proc_t svc;
static arena_t arena;

static void setup(void) {
    harness_init();
    arena_init(&arena);
}

static void teardown(void) {
    if (svc.pid > 0) {
        cr_expect_eq(harness_stop(&svc), 0, "points-svc did not exit cleanly; see %s",
                     svc.log_path);
    }
    arena_free(&arena);
    harness_fini();
}

TestSuite(points_ledger, .init = setup, .fini = teardown, .timeout = 120);

Test(points_ledger, serves_health_for_points_service) {
    /* Goal: the binary migrates the points schema and answers Health for its service name. */
    harness_start(&svc, "points-svc", NULL);
    Grpc__Health__V1__HealthCheckRequest hreq = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    hreq.service = "loyalty.v1.PointsService";
    ProtobufCMessage *resp = NULL;
    status_t st = rpc_call(rpc_channel_get(svc.addr), &grpc__health__v1__health__descriptor,
                           "Check", &hreq.base, &arena, &resp, NULL);
    cr_assert_eq(st.code, STATUS_OK, "%s", st.message);
    cr_assert_eq(((Grpc__Health__V1__HealthCheckResponse *)resp)->status,
                 GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
}
