/* main.c -- member-svc: members, cards, tiers, statistics and segments (docs/domain.md#members-and-tiers). */
#include "member_handlers.h"
#include "member_rpc.h"
#include "rpc_server.h"

extern const embed_file_t member_svc_migrations[];

/* Replica-safe: each batch locks the due members it takes with SKIP LOCKED. */
static const rpc_job_t member_jobs[] = {
    {"member-tier-maintenance", member_job_maintenance, 0},
    {NULL, NULL, 0},
};

int main(int argc, char **argv) {
    const rpc_server_options_t opts = {
        .service_name = "member-svc",
        .default_port = 50051,
        .db_schema = "member",
        .migrations = member_svc_migrations,
        .services = &member_service,
        .service_count = 1,
        .jobs = member_jobs,
    };
    return rpc_server_main(&opts, argc, argv);
}
