/* main.c -- wallet-svc: the stored-value wallet on a double-entry ledger (docs/domain.md#wallet).
 */
#include "rpc_server.h"
#include "wallet_ops.h"
#include "wallet_rpc.h"

extern const embed_file_t wallet_svc_migrations[];

/* Holds past their TTL are released and lapsed deposits expire every JOB_INTERVAL_S; requests
 * also settle the wallet they touch first, so correctness never waits for this timer. */
static const rpc_job_t wallet_jobs[] = {
    {"wallet-settle", wallet_job_settle, 0},
    {NULL, NULL, 0},
};

int main(int argc, char **argv) {
    const rpc_server_options_t opts = {
        .service_name = "wallet-svc",
        .default_port = 50053,
        .db_schema = "wallet",
        .migrations = wallet_svc_migrations,
        .services = &wallet_service,
        .service_count = 1,
        .jobs = wallet_jobs,
    };
    return rpc_server_main(&opts, argc, argv);
}
