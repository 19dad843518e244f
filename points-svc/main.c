/* main.c -- points-svc: points lots, earn rules and campaigns, cash redemption with two-phase
 * holds, growth value, history, reversal, import and expiry (docs/domain.md#points). */
#include "points_jobs.h"
#include "points_rpc.h"
#include "rpc_server.h"

extern const embed_file_t points_svc_migrations[];

int main(int argc, char **argv) {
    const rpc_server_options_t opts = {
        .service_name = "points-svc",
        .default_port = 50052,
        .db_schema = "points",
        .migrations = points_svc_migrations,
        .services = &points_service,
        .service_count = 1,
        .jobs = points_jobs,
    };
    return rpc_server_main(&opts, argc, argv);
}
