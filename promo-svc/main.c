/* main.c -- promo-svc: promotions, promo codes, coupons, the explained cart quote and the
 * checkout reservations of promotion usages and coupons (docs/domain.md#promotions-and-coupons). */
#include "promo_handlers.h"
#include "promo_rpc.h"
#include "rpc_server.h"

extern const embed_file_t promo_svc_migrations[];

static const rpc_job_t promo_jobs[] = {
    {"expire-reservations", promo_job_expire_reservations, 0},
    {NULL, NULL, 0},
};

int main(int argc, char **argv) {
    const rpc_server_options_t opts = {
        .service_name = "promo-svc",
        .default_port = 50055,
        .db_schema = "promo",
        .migrations = promo_svc_migrations,
        .services = &promo_service,
        .service_count = 1,
        .jobs = promo_jobs,
    };
    return rpc_server_main(&opts, argc, argv);
}
