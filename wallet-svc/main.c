/* main.c -- wallet-svc: the stored-value wallet on a double-entry ledger (DESIGN §2 "Wallet"). */
#include "rpc_server.h"
#include "wallet_rpc.h"

extern const embed_file_t wallet_svc_migrations[];

int main(int argc, char **argv) {
    const rpc_server_options_t opts = {
        .service_name = "wallet-svc",
        .default_port = 50053,
        .db_schema = "wallet",
        .migrations = wallet_svc_migrations,
        .services = &wallet_service,
        .service_count = 1,
    };
    return rpc_server_main(&opts, argc, argv);
}
