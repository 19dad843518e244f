/* main.c -- member-svc: members, cards, tiers, statistics and segments
 * (docs/domain.md#members-and-tiers). */
#include "member_handlers.h"
#include "member_rpc.h"
#include "outbox.h"
#include "rpc_server.h"

extern const embed_file_t member_svc_migrations[];

/* Replica-safe: each batch locks the due members it takes with SKIP LOCKED. */
static const rpc_job_t member_jobs[] = {
    {"member-tier-maintenance", member_job_maintenance, 0},
    {NULL, NULL, 0},
};

/* Every replica reads in one group: each event is handled by one of them (consume.h). */
static const rpc_consumer_t member_consumers[] = {
    {"member-svc.points-balance", OUTBOX_EVENTS_STREAM, "points.", member_on_points_event,
     member_on_points_events},
    {NULL, NULL, NULL, NULL, NULL},
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
        .consumers = member_consumers,
    };
    return rpc_server_main(&opts, argc, argv);
}
