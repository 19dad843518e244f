/* main.c -- referral-svc: referral codes and share links, the referral tree and its rewards
 * (docs/domain.md#referral). */
#include "referral_rpc.h"
#include "rpc_server.h"

extern const embed_file_t referral_svc_migrations[];

int main(int argc, char **argv) {
    const rpc_server_options_t opts = {
        .service_name = "referral-svc",
        .default_port = 50054,
        .db_schema = "referral",
        .migrations = referral_svc_migrations,
        .services = &referral_service,
        .service_count = 1,
    };
    return rpc_server_main(&opts, argc, argv);
}
