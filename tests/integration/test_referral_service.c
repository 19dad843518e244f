/* test_referral_service.c -- referral-svc over real gRPC against real PostgreSQL and Redis:
 * the service starts, applies its migrations and serves its health check. */
#include "harness.h"
#include "grpc/health/v1/health.pb-c.h"
#include "loyalty/v1/referral.pb-c.h"

#include <criterion/criterion.h>

static svc_proc_t svc;
static arena_t arena;

static void setup(void) {
    harness_init();
    arena_init(&arena);
}

static void teardown(void) {
    if (svc.pid > 0) {
        cr_expect_eq(harness_stop(&svc), 0, "referral-svc did not exit cleanly; see %s",
                     svc.log_path);
    }
    arena_free(&arena);
    harness_fini();
}

TestSuite(referral_service, .init = setup, .fini = teardown, .timeout = 120);

Test(referral_service, serves_health_for_its_service) {
    /* Goal: the binary starts on its schema and answers Health for ReferralService. */
    harness_start(&svc, "referral-svc", NULL);
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    req.service = "loyalty.v1.ReferralService";
    ProtobufCMessage *resp = NULL;
    status_t st = rpc_call(rpc_channel_get(svc.addr), &grpc__health__v1__health__descriptor,
                           "Check", &req.base, &arena, &resp, NULL);
    cr_assert_eq(st.code, STATUS_OK, "%s", st.message);
    cr_assert_eq(((Grpc__Health__V1__HealthCheckResponse *)resp)->status,
                 GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
}
