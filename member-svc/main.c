/* main.c -- member-svc: members, cards, tiers, statistics and segments (DESIGN §2). */
#include "member_rpc.h"
#include "rpc_server.h"

extern const embed_file_t member_svc_migrations[];

int main(int argc, char **argv) {
    const rpc_server_options_t opts = {
        .service_name = "member-svc",
        .default_port = 50051,
        .db_schema = "member",
        .migrations = member_svc_migrations,
        .services = &member_service,
        .service_count = 1,
    };
    return rpc_server_main(&opts, argc, argv);
}
