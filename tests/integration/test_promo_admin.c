/* test_promo_admin.c -- promo-svc administration over real gRPC against real PostgreSQL and
 * Redis: promotions, promo codes, coupon templates, coupons and settings. */
#include "harness.h"
#include "loyalty/v1/promo.pb-c.h"

#include <criterion/criterion.h>

static svc_proc_t svc;
static arena_t arena;

static void setup(void) {
    harness_init();
    arena_init(&arena);
}

static void teardown(void) {
    if (svc.pid > 0) {
        cr_expect_eq(harness_stop(&svc), 0, "promo-svc did not exit cleanly; see %s", svc.log_path);
    }
    arena_free(&arena);
    harness_fini();
}

TestSuite(promo_admin, .init = setup, .fini = teardown, .timeout = 120);

Test(promo_admin, starts_and_serves_health) {
    /* Goal: the service applies its migrations and answers Health SERVING. */
    harness_start(&svc, "promo-svc", NULL);
    cr_assert(harness_is_serving(svc.addr));
}
